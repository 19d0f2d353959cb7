//! The real HTTP and gRPC stacks over turmoil's simulated network: axum
//! serving on a simulated listener, an HTTP/1.1 client, and the tonic
//! connector the forwarding lanes reach the forwarder with.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tonic::transport::{Channel, Endpoint};
use turmoil::net::{TcpListener, TcpStream};

use super::world::World;
use crate::forwarding::Connect;

/// axum's listener over a simulated one.
struct Listener(TcpListener);

impl axum::serve::Listener for Listener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.0.accept().await {
                Ok(accepted) => return accepted,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// Serves `router` on `port` of this host until the host stops.
pub async fn serve(port: u16, router: Router) -> std::io::Result<()> {
    let listener = TcpListener::bind(("0.0.0.0", port)).await?;
    axum::serve(Listener(listener), router).await
}

/// How long a client waits for an answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// An HTTP/1.1 client of maestro's `port` with one keep-alive connection
/// to the host that serves (the leader), opened again after any failure or
/// when another host serves.
pub struct Client {
    world: Arc<World>,
    port: u16,
    connection: Option<(&'static str, SendRequest<Full<Bytes>>)>,
}

/// An answer: its status and JSON body (`Null` if it had none).
pub type Answer = (u16, Value);

impl Client {
    pub fn new(world: Arc<World>, port: u16) -> Client {
        Client {
            world,
            port,
            connection: None,
        }
    }

    async fn connect(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, String> {
        let serving = self.world.state().serving_host();
        let Some(host) = serving else {
            self.connection = None;
            return Err("no maestro serves".to_string());
        };
        let stale = self
            .connection
            .as_ref()
            .is_none_or(|(to, c)| *to != host || c.is_closed());
        if stale {
            self.connection = None;
            let stream = TcpStream::connect((host, self.port))
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            self.connection = Some((host, sender));
        }
        self.connection
            .as_mut()
            .map(|(_, c)| c)
            .ok_or_else(|| "no connection".to_string())
    }

    /// Sends one request; `Err` when no answer came (refused, cut off,
    /// timed out), which tells the caller nothing about whether maestro
    /// acted on it.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, String> {
        let result =
            tokio::time::timeout(REQUEST_TIMEOUT, self.send_once(method, path, body)).await;
        let result = result.unwrap_or_else(|_| Err("timed out".to_string()));
        if result.is_err() {
            self.connection = None;
        }
        result
    }

    async fn send_once(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, String> {
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "maestro");
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string()))),
            None => request.body(Full::new(Bytes::new())),
        }
        .map_err(|e| format!("request: {e}"))?;
        let connection = self.connect().await?;
        connection
            .ready()
            .await
            .map_err(|e| format!("connection: {e}"))?;
        let response = connection
            .send_request(request)
            .await
            .map_err(|e| format!("send: {e}"))?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, value))
    }
}

/// Forwarders reached over the simulated network.
pub fn connect() -> Connect {
    Arc::new(|endpoint: Endpoint| -> Channel {
        endpoint.connect_with_connector_lazy(tower::service_fn(|uri: axum::http::Uri| async move {
            let host = uri.host().unwrap_or_default().to_string();
            let port = uri.port_u16().unwrap_or(80);
            let stream = TcpStream::connect((host.as_str(), port)).await?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }))
    })
}
