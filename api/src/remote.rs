//! The worker protocol, for modules in separate processes.
//!
//! The worker owns the engine and the store; `management-api`, `rooms-api`
//! and `metrics-reporter` started without it are stateless and reach it
//! through [`RemoteBackend`], which implements [`Backend`] by calling the
//! worker's internal gRPC service `maestro.internal.v1.Worker` (served by
//! [`worker_service`] on the worker's internal port). So the APIs scale
//! horizontally and parse, validate and authenticate requests on their own;
//! only decisions cross the hop.
//!
//! Each call is one unary RPC carrying the backend's own [`Request`] and
//! answered with its [`Reply`] (or [`Unavailable`]), encoded with postcard
//! in the protobuf envelope's payload: one compact binary codec each way,
//! derived from the same Rust types the driver answers in process. Both
//! sides run the same build (the protocol is internal), so the encoding
//! needs no versioning of its own. When management tokens are configured
//! the worker asks for one of them as a bearer token.
//!
//! **Several workers.** With a shared store, one worker leads and the
//! others stand by ([`standby_service`] refuses every call, saying so). An
//! API process given several worker URLs calls the one that answered last
//! and, when a call is not served, tries the others, for a bounded time
//! (a takeover takes up to the lease's duration). A call is tried again
//! only when that is safe: when it is known not to have reached a leader
//! (a standby refused it, or no connection could be made), or when it is
//! safe to repeat ([`Request::is_retry_safe`]). No attempt but the first
//! outlives the fail-over time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tonic::transport::{Channel, Endpoint};

use crate::auth::{ApiConfig, check_management};
use crate::backend::{Backend, Reply, Request, Unavailable};
use crate::proto::internal::v1::worker_client::WorkerClient;
use crate::proto::internal::v1::worker_server::{Worker, WorkerServer};
use crate::proto::internal::v1::{CallReply, CallRequest};

/// The worker's side: answers calls with the in-process backend.
pub struct WorkerService {
    backend: Arc<dyn Backend>,
    config: ApiConfig,
}

/// The internal gRPC service to serve on the worker's internal port.
pub fn worker_service(
    backend: Arc<dyn Backend>,
    config: &ApiConfig,
) -> WorkerServer<WorkerService> {
    WorkerServer::new(WorkerService {
        backend,
        config: config.clone(),
    })
    // A whole scheduler (with its containers) fits easily; this bounds it.
    .max_decoding_message_size(config.body_limit_bytes.max(4 << 20))
}

#[tonic::async_trait]
impl Worker for WorkerService {
    async fn call(
        &self,
        request: tonic::Request<CallRequest>,
    ) -> Result<tonic::Response<CallReply>, tonic::Status> {
        let headers = request.metadata().clone().into_headers();
        if let Err(e) = check_management(&self.config, &headers) {
            return Err(tonic::Status::unauthenticated(format!(
                "the worker needs one of the management tokens: {}",
                e.message
            )));
        }
        let request: Request = postcard::from_bytes(&request.into_inner().payload)
            .map_err(|e| tonic::Status::invalid_argument(format!("worker call: {e}")))?;
        let reply: Result<Reply, Unavailable> = self.backend.call(request).await;
        let payload = postcard::to_stdvec(&reply)
            .map_err(|e| tonic::Status::internal(format!("worker reply: {e}")))?;
        Ok(tonic::Response::new(CallReply { payload }))
    }
}

/// The metadata key a standby's refusal carries, and its value.
const ROLE: (&str, &str) = ("x-maestro-worker", "standby");

/// The worker protocol on a standby worker: every call is refused as
/// UNAVAILABLE, marked as a standby's, so that the caller knows nothing
/// was done and tries another worker.
pub fn standby_service() -> WorkerServer<StandbyService> {
    WorkerServer::new(StandbyService)
}

pub struct StandbyService;

#[tonic::async_trait]
impl Worker for StandbyService {
    async fn call(
        &self,
        _request: tonic::Request<CallRequest>,
    ) -> Result<tonic::Response<CallReply>, tonic::Status> {
        let mut status = tonic::Status::unavailable("this worker is a standby: another one leads");
        status
            .metadata_mut()
            .insert(ROLE.0, tonic::metadata::MetadataValue::from_static(ROLE.1));
        Err(status)
    }
}

/// Why a [`RemoteBackend`] could not be built.
#[derive(Debug, thiserror::Error)]
#[error("worker url {url:?}: {cause}")]
pub struct RemoteError {
    pub url: String,
    pub cause: String,
}

/// A [`Backend`] in another process: the worker, or the one of several
/// that leads, at `--worker-url`.
#[derive(Clone)]
pub struct RemoteBackend {
    workers: Arc<[(String, WorkerClient<Channel>)]>,
    /// The worker that answered last: tried first.
    preferred: Arc<AtomicUsize>,
    token: Option<String>,
    failover: Duration,
}

/// A call that gets no answer in this long fails as unavailable.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a call looks for a worker that serves it, across a takeover;
/// above the default lease of 10 s.
pub const FAILOVER_TIMEOUT: Duration = Duration::from_secs(20);

/// How one attempt at one worker went wrong.
enum Failure {
    /// Certainly not done: a standby refused it, or no connection was made.
    NotServed(String),
    /// Perhaps done: the worker went away during the call.
    Unknown(String),
    /// Refused for a reason another worker would give too.
    Refused(String),
}

impl RemoteBackend {
    /// Connects lazily (the workers may start after the APIs), with
    /// keepalive so a lost worker is noticed in seconds. `urls` is one URL
    /// or several separated by commas.
    pub fn connect(urls: &str, token: Option<String>) -> Result<RemoteBackend, RemoteError> {
        let mut workers = Vec::new();
        for url in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            let error = |cause: String| RemoteError {
                url: url.to_string(),
                cause,
            };
            if !url.starts_with("http://") {
                return Err(error("must start with http://".to_string()));
            }
            let endpoint = Endpoint::from_shared(url.to_string())
                .map_err(|e| error(e.to_string()))?
                .connect_timeout(Duration::from_secs(5))
                .timeout(CALL_TIMEOUT)
                .http2_keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(Duration::from_secs(5))
                .keep_alive_while_idle(true)
                .tcp_nodelay(true);
            let client = WorkerClient::new(endpoint.connect_lazy())
                .max_decoding_message_size(usize::MAX >> 1);
            workers.push((url.to_string(), client));
        }
        if workers.is_empty() {
            return Err(RemoteError {
                url: urls.to_string(),
                cause: "no worker URL".to_string(),
            });
        }
        Ok(RemoteBackend {
            workers: workers.into(),
            preferred: Arc::new(AtomicUsize::new(0)),
            token,
            failover: FAILOVER_TIMEOUT,
        })
    }

    /// Sets how long a call looks for a worker that serves it.
    pub fn with_failover(mut self, failover: Duration) -> RemoteBackend {
        self.failover = failover;
        self
    }

    async fn call_one(&self, index: usize, payload: Vec<u8>) -> Result<Vec<u8>, Failure> {
        let (url, client) = &self.workers[index];
        let mut request = tonic::Request::new(CallRequest { payload });
        if let Some(token) = &self.token {
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| Failure::Refused("the management token is not valid ASCII".into()))?;
            request.metadata_mut().insert("authorization", value);
        }
        match client.clone().call(request).await {
            Ok(reply) => Ok(reply.into_inner().payload),
            Err(status) => {
                let why = format!("worker {url}: {}", status.message());
                if status.metadata().get(ROLE.0).is_some_and(|v| v == ROLE.1)
                    || never_connected(&status)
                {
                    Err(Failure::NotServed(why))
                } else if matches!(
                    status.code(),
                    tonic::Code::Unavailable
                        | tonic::Code::Unknown
                        | tonic::Code::Cancelled
                        | tonic::Code::DeadlineExceeded
                        | tonic::Code::Internal
                ) {
                    Err(Failure::Unknown(why))
                } else {
                    Err(Failure::Refused(why))
                }
            }
        }
    }
}

/// Whether the call failed making a connection, so it was never sent.
fn never_connected(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error.is::<tonic::ConnectError>() {
            return true;
        }
        source = error.source();
    }
    false
}

#[async_trait::async_trait]
impl Backend for RemoteBackend {
    async fn call(&self, call: Request) -> Result<Reply, Unavailable> {
        let payload = postcard::to_stdvec(&call)
            .map_err(|e| Unavailable(format!("cannot encode the worker call: {e}")))?;
        let retry_unknown = call.is_retry_safe();
        let deadline = tokio::time::Instant::now() + self.failover;
        let mut pauses = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(1))
            .with_jitter()
            .without_max_times()
            .build();
        let count = self.workers.len();
        let mut attempted = false;
        loop {
            let first = self.preferred.load(Ordering::Relaxed) % count;
            let mut last = String::new();
            for offset in 0..count {
                let index = (first + offset) % count;
                // After the first attempt, none outlives the deadline.
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let attempt = self.call_one(index, payload.clone());
                let outcome = if attempted {
                    match tokio::time::timeout(left, attempt).await {
                        Ok(outcome) => outcome,
                        Err(_) => Err(Failure::Unknown(format!(
                            "worker {}: no answer within the fail-over time",
                            self.workers[index].0
                        ))),
                    }
                } else {
                    attempt.await
                };
                attempted = true;
                match outcome {
                    Ok(answer) => {
                        self.preferred.store(index, Ordering::Relaxed);
                        return postcard::from_bytes::<Result<Reply, Unavailable>>(&answer)
                            .map_err(|e| {
                                Unavailable(format!("the worker's answer is not understood: {e}"))
                            })?;
                    }
                    Err(Failure::NotServed(why)) => last = why,
                    Err(Failure::Unknown(why)) if retry_unknown => last = why,
                    Err(Failure::Unknown(why) | Failure::Refused(why)) => {
                        return Err(Unavailable(format!("the worker did not answer: {why}")));
                    }
                }
            }
            let pause = pauses.next().unwrap_or(Duration::from_secs(1));
            if tokio::time::Instant::now() + pause > deadline {
                return Err(Unavailable(format!(
                    "the worker did not answer: no worker served the call within {:?} ({last})",
                    self.failover
                )));
            }
            tokio::time::sleep(pause).await;
        }
    }
}
