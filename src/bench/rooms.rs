//! A pinger's or a matchmaker's connection to the Rooms API, over either
//! of the protocols maestro serves it on: HTTP/1.1 with JSON bodies
//! (`maestro bench rooms-api`) or gRPC (`maestro bench grpc`). The load
//! loops are the same for both; only these calls differ.

use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use hyper::Method;
use maestro_api::proto::api::v1::rooms_service_client::RoomsServiceClient;
use maestro_api::proto::api::v1::{AllocateRoomRequest, UpdateRoomWithPingRequest};
use tonic::transport::{Channel, Endpoint};

use super::client::{Connection, TIMEOUT};

/// The protocol the bench speaks to the Rooms API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Grpc,
}

pub enum RoomsClient {
    Http(Connection),
    /// One channel, one HTTP/2 connection.
    Grpc(RoomsServiceClient<Channel>),
}

/// What a call came to.
pub enum Outcome<T> {
    /// Answered with success: a ping accepted, an allocation's room (or
    /// `None` when no room was ready).
    Answered(T),
    /// Answered with a refusal (a 4xx or 5xx, or a gRPC error status).
    Refused,
    /// Not answered: the connection broke or timed out.
    Failed,
}

impl RoomsClient {
    pub async fn open(protocol: Protocol, authority: &str) -> Result<RoomsClient> {
        Ok(match protocol {
            Protocol::Http => RoomsClient::Http(Connection::open(authority, None).await?),
            Protocol::Grpc => {
                let endpoint = Endpoint::from_shared(format!("http://{authority}"))
                    .with_context(|| format!("`{authority}` is not a gRPC endpoint"))?
                    .tcp_nodelay(true)
                    .connect_timeout(TIMEOUT)
                    .timeout(TIMEOUT);
                let channel = endpoint
                    .connect()
                    .await
                    .with_context(|| format!("connecting to {authority} (gRPC)"))?;
                RoomsClient::Grpc(RoomsServiceClient::new(channel))
            }
        })
    }

    /// A room pings `ready`.
    pub async fn ping(&mut self, scheduler: &str, room: &str) -> Outcome<()> {
        match self {
            RoomsClient::Http(conn) => {
                let path = format!("/scheduler/{scheduler}/rooms/{room}/ping");
                let body =
                    Bytes::from_static(br#"{"status":"ready","runningMatches":0,"timestamp":1}"#);
                match conn.send(Method::PUT, &path, body).await {
                    Ok((200, _)) => Outcome::Answered(()),
                    Ok(_) => Outcome::Refused,
                    Err(_) => Outcome::Failed,
                }
            }
            RoomsClient::Grpc(client) => {
                let request = UpdateRoomWithPingRequest {
                    scheduler_name: scheduler.to_string(),
                    room_name: room.to_string(),
                    metadata: None,
                    status: "ready".to_string(),
                    timestamp: 1,
                    running_matches: 0,
                };
                match client.update_room_with_ping(request).await {
                    Ok(answer) if answer.get_ref().success => Outcome::Answered(()),
                    Ok(_) => Outcome::Refused,
                    Err(status) => grpc_failure(&status),
                }
            }
        }
    }

    /// A matchmaker asks for a room: `Answered(None)` when none is ready.
    pub async fn allocate(&mut self, scheduler: &str) -> Outcome<Option<String>> {
        let room = match self {
            RoomsClient::Http(conn) => {
                let path = format!("/scheduler/{scheduler}/rooms/allocate");
                match conn.json(Method::POST, &path, &serde_json::json!({})).await {
                    Ok((200, body)) => body["roomId"].as_str().unwrap_or_default().to_string(),
                    Ok(_) => return Outcome::Refused,
                    Err(_) => return Outcome::Failed,
                }
            }
            RoomsClient::Grpc(client) => {
                let request = AllocateRoomRequest {
                    scheduler_name: scheduler.to_string(),
                    idempotency_key: String::new(),
                };
                match client.allocate_room(request).await {
                    Ok(answer) => answer.into_inner().room_id,
                    Err(status) => return grpc_failure(&status),
                }
            }
        };
        Outcome::Answered((!room.is_empty()).then_some(room))
    }

    /// After a failure: a new HTTP connection (the old one may be gone; a
    /// gRPC channel reconnects by itself). Waits a little if that fails.
    pub async fn recover(&mut self) {
        if let RoomsClient::Http(conn) = self {
            match Connection::open(conn.authority(), None).await {
                Ok(c) => *conn = c,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

/// A gRPC error status: a refusal, or no answer (`UNAVAILABLE`,
/// `DEADLINE_EXCEEDED`: the transport's failures).
fn grpc_failure<T>(status: &tonic::Status) -> Outcome<T> {
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => Outcome::Failed,
        _ => Outcome::Refused,
    }
}
