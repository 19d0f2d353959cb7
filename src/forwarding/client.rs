//! Calls to forwarders over gRPC: one lazily connected channel per address,
//! with keepalive so a dead connection is noticed in seconds (upstream
//! #625/#627), and each call bounded by the forwarder's timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use maestro_api::proto::eventforwarder::grpc_forwarder_client::GrpcForwarderClient;
use maestro_engine::scheduler::Forwarder;
use tonic::transport::{Channel, Endpoint};

use super::message::Call;

/// How a call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The forwarder answered. Its `Response.code` is recorded but, as
    /// upstream decided (#614), any answer counts as delivered: the
    /// forwarder has the event, and what it thinks of it is its business.
    Delivered { code: i32 },
    /// Worth trying again later: unreachable, timed out, overloaded.
    Retry(String),
    /// Trying again cannot help: a bad address, or the forwarder refused
    /// the call itself (unimplemented, invalid, not allowed).
    Reject(String),
}

/// The channels, by address. Channels reconnect by themselves, so one per
/// address lives as long as the process.
pub struct Clients {
    channels: Mutex<HashMap<String, Channel>>,
    connect: Connect,
}

/// Turns a forwarder's endpoint into a channel: over TCP
/// ([`tcp`]), or over the simulated network of the chaos harness.
pub type Connect = Arc<dyn Fn(Endpoint) -> Channel + Send + Sync>;

/// Channels over TCP, connected on first use.
pub fn tcp() -> Connect {
    Arc::new(|endpoint: Endpoint| endpoint.connect_lazy())
}

impl Clients {
    pub fn new(connect: Connect) -> Clients {
        Clients {
            channels: Mutex::new(HashMap::new()),
            connect,
        }
    }
}

/// Establishing a connection takes at most this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

impl Clients {
    fn channel(&self, address: &str) -> Result<Channel, String> {
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(channel) = channels.get(address) {
            return Ok(channel.clone());
        }
        let uri = if address.starts_with("http://") {
            address.to_string()
        } else if address.starts_with("https://") {
            return Err(format!(
                "forwarder address {address:?}: TLS is not supported; use host:port"
            ));
        } else {
            format!("http://{address}")
        };
        let endpoint = Endpoint::from_shared(uri)
            .map_err(|e| format!("forwarder address {address:?} is not valid: {e}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .tcp_nodelay(true);
        let channel = (self.connect)(endpoint);
        channels.insert(address.to_string(), channel.clone());
        Ok(channel)
    }

    /// Sends one call to the forwarder, within its timeout.
    pub async fn send(&self, forwarder: &Forwarder, call: Call) -> Outcome {
        let channel = match self.channel(&forwarder.address) {
            Ok(channel) => channel,
            Err(e) => return Outcome::Reject(e),
        };
        let timeout = timeout(forwarder);
        let mut client = GrpcForwarderClient::new(channel);
        let answer = tokio::time::timeout(timeout, async move {
            match call {
                Call::RoomResync(m) => client.send_room_resync(request(m, timeout)).await,
                Call::RoomStatus(m) => client.send_room_status(request(m, timeout)).await,
                Call::RoomEvent(m) => client.send_room_event(request(m, timeout)).await,
                Call::PlayerEvent(m) => client.send_player_event(request(m, timeout)).await,
            }
        })
        .await;
        match answer {
            Err(_) => Outcome::Retry(format!(
                "no answer within the forwarder's timeout of {} ms",
                timeout.as_millis()
            )),
            Ok(Ok(response)) => Outcome::Delivered {
                code: response.into_inner().code,
            },
            Ok(Err(status)) => classify(&status),
        }
    }
}

/// The forwarder's timeout in milliseconds (upstream's unit), at least 1.
fn timeout(forwarder: &Forwarder) -> Duration {
    let ms = forwarder
        .options
        .as_ref()
        .map_or(1, |o| o.timeout_ms)
        .max(1);
    Duration::from_millis(u64::try_from(ms).unwrap_or(1))
}

fn request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

fn classify(status: &tonic::Status) -> Outcome {
    use tonic::Code;
    let text = format!("{:?}: {}", status.code(), status.message());
    match status.code() {
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::ResourceExhausted
        | Code::Aborted
        | Code::Internal
        | Code::Unknown
        | Code::Cancelled => Outcome::Retry(text),
        Code::Ok
        | Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::FailedPrecondition
        | Code::OutOfRange
        | Code::Unimplemented
        | Code::DataLoss
        | Code::Unauthenticated => Outcome::Reject(text),
    }
}
