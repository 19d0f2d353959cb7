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

use std::sync::Arc;
use std::time::Duration;

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

/// Why a [`RemoteBackend`] could not be built.
#[derive(Debug, thiserror::Error)]
#[error("worker url {url:?}: {cause}")]
pub struct RemoteError {
    pub url: String,
    pub cause: String,
}

/// A [`Backend`] in another process: the worker at `--worker-url`.
#[derive(Clone)]
pub struct RemoteBackend {
    client: WorkerClient<Channel>,
    token: Option<String>,
}

/// A call that gets no answer in this long fails as unavailable.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

impl RemoteBackend {
    /// Connects lazily (the worker may start after the APIs), with
    /// keepalive so a lost worker is noticed in seconds.
    pub fn connect(url: &str, token: Option<String>) -> Result<RemoteBackend, RemoteError> {
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
        let client =
            WorkerClient::new(endpoint.connect_lazy()).max_decoding_message_size(usize::MAX >> 1);
        Ok(RemoteBackend { client, token })
    }
}

#[async_trait::async_trait]
impl Backend for RemoteBackend {
    async fn call(&self, call: Request) -> Result<Reply, Unavailable> {
        let payload = postcard::to_stdvec(&call)
            .map_err(|e| Unavailable(format!("cannot encode the worker call: {e}")))?;
        let mut request = tonic::Request::new(CallRequest { payload });
        if let Some(token) = &self.token {
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| Unavailable("the management token is not valid ASCII".into()))?;
            request.metadata_mut().insert("authorization", value);
        }
        let mut client = self.client.clone();
        let reply = client
            .call(request)
            .await
            .map_err(|s| Unavailable(format!("the worker did not answer: {}", s.message())))?;
        postcard::from_bytes::<Result<Reply, Unavailable>>(&reply.into_inner().payload)
            .map_err(|e| Unavailable(format!("the worker's answer is not understood: {e}")))?
    }
}
