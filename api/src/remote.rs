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
//! Each call is one unary RPC whose payload is a JSON [`Call`] and whose
//! answer is a JSON [`Reply`]: the [`Backend`] methods, one variant each,
//! with the engine's own types. When management tokens are configured the
//! worker asks for one of them as a bearer token.

use std::sync::Arc;
use std::time::Duration;

use maestro_engine::room::{Room, RoomStatus};
use maestro_engine::scheduler::Scheduler;
use maestro_engine::{
    AllocateError, Allocation, Command, CommandError, CommandReply, Operation, Ping, PingError,
    VersionInfo,
};
use serde::{Deserialize, Serialize};
use tonic::transport::{Channel, Endpoint};

use crate::auth::{ApiConfig, check_management};
use crate::backend::{
    Backend, ReportError, RoomPage, RoomReport, SchedulerSummary, Stage, Unavailable,
};
use crate::proto::internal::v1::worker_client::WorkerClient;
use crate::proto::internal::v1::worker_server::{Worker, WorkerServer};
use crate::proto::internal::v1::{CallReply, CallRequest};

/// One [`Backend`] call.
// Each value is built, encoded and dropped at once: boxing the large
// variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Call {
    Command(Command),
    Ping(Ping),
    Allocate {
        scheduler: String,
        key: Option<String>,
    },
    Schedulers,
    Scheduler {
        name: String,
        version: Option<String>,
    },
    Versions {
        name: String,
    },
    Operations {
        scheduler: String,
        stage: Stage,
    },
    Operation {
        scheduler: String,
        id: String,
    },
    Rooms {
        scheduler: String,
        status: Option<RoomStatus>,
        offset: usize,
        limit: usize,
    },
    Room {
        scheduler: String,
        room: String,
    },
    Report(RoomReport),
}

/// The answer to a [`Call`], of the same variant.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Reply {
    Command(Result<CommandReply, CommandError>),
    Ping(Result<RoomStatus, PingError>),
    Allocate(Result<Allocation, AllocateError>),
    Schedulers(Result<Vec<SchedulerSummary>, Unavailable>),
    Scheduler(Result<Option<Scheduler>, Unavailable>),
    Versions(Result<Option<Vec<VersionInfo>>, Unavailable>),
    Operations(Result<Option<Vec<Operation>>, Unavailable>),
    Operation(Result<Option<Operation>, Unavailable>),
    Rooms(Result<Option<RoomPage>, Unavailable>),
    Room(Result<Option<Room>, Unavailable>),
    Report(Result<(), ReportError>),
}

async fn dispatch(backend: &dyn Backend, call: Call) -> Reply {
    match call {
        Call::Command(c) => Reply::Command(backend.command(c).await),
        Call::Ping(p) => Reply::Ping(backend.ping(p).await),
        Call::Allocate { scheduler, key } => {
            Reply::Allocate(backend.allocate(scheduler, key).await)
        }
        Call::Schedulers => Reply::Schedulers(backend.schedulers().await),
        Call::Scheduler { name, version } => {
            Reply::Scheduler(backend.scheduler(name, version).await)
        }
        Call::Versions { name } => Reply::Versions(backend.versions(name).await),
        Call::Operations { scheduler, stage } => {
            Reply::Operations(backend.operations(scheduler, stage).await)
        }
        Call::Operation { scheduler, id } => {
            Reply::Operation(backend.operation(scheduler, id).await)
        }
        Call::Rooms {
            scheduler,
            status,
            offset,
            limit,
        } => Reply::Rooms(backend.rooms(scheduler, status, offset, limit).await),
        Call::Room { scheduler, room } => Reply::Room(backend.room(scheduler, room).await),
        Call::Report(r) => Reply::Report(backend.report(r).await),
    }
}

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
        let call: Call = serde_json::from_slice(&request.into_inner().payload)
            .map_err(|e| tonic::Status::invalid_argument(format!("worker call: {e}")))?;
        let reply = dispatch(self.backend.as_ref(), call).await;
        let payload = serde_json::to_vec(&reply)
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

    async fn call(&self, call: Call) -> Result<Reply, Unavailable> {
        let payload = serde_json::to_vec(&call)
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
        serde_json::from_slice(&reply.into_inner().payload)
            .map_err(|e| Unavailable(format!("the worker's answer is not understood: {e}")))
    }
}

fn mismatch() -> Unavailable {
    Unavailable("the worker answered another call".to_string())
}

#[async_trait::async_trait]
impl Backend for RemoteBackend {
    async fn command(&self, command: Command) -> Result<CommandReply, CommandError> {
        match self.call(Call::Command(command)).await {
            Ok(Reply::Command(r)) => r,
            Ok(_) => Err(CommandError::Unavailable(mismatch().0)),
            Err(e) => Err(CommandError::Unavailable(e.0)),
        }
    }

    async fn ping(&self, ping: Ping) -> Result<RoomStatus, PingError> {
        match self.call(Call::Ping(ping)).await {
            Ok(Reply::Ping(r)) => r,
            Ok(_) => Err(PingError::Unavailable(mismatch().0)),
            Err(e) => Err(PingError::Unavailable(e.0)),
        }
    }

    async fn allocate(
        &self,
        scheduler: String,
        key: Option<String>,
    ) -> Result<Allocation, AllocateError> {
        match self.call(Call::Allocate { scheduler, key }).await {
            Ok(Reply::Allocate(r)) => r,
            Ok(_) => Err(AllocateError::Unavailable(mismatch().0)),
            Err(e) => Err(AllocateError::Unavailable(e.0)),
        }
    }

    async fn schedulers(&self) -> Result<Vec<SchedulerSummary>, Unavailable> {
        match self.call(Call::Schedulers).await? {
            Reply::Schedulers(r) => r,
            _ => Err(mismatch()),
        }
    }

    async fn scheduler(
        &self,
        name: String,
        version: Option<String>,
    ) -> Result<Option<Scheduler>, Unavailable> {
        match self.call(Call::Scheduler { name, version }).await? {
            Reply::Scheduler(r) => r,
            _ => Err(mismatch()),
        }
    }

    async fn versions(&self, name: String) -> Result<Option<Vec<VersionInfo>>, Unavailable> {
        match self.call(Call::Versions { name }).await? {
            Reply::Versions(r) => r,
            _ => Err(mismatch()),
        }
    }

    async fn operations(
        &self,
        scheduler: String,
        stage: Stage,
    ) -> Result<Option<Vec<Operation>>, Unavailable> {
        match self.call(Call::Operations { scheduler, stage }).await? {
            Reply::Operations(r) => r,
            _ => Err(mismatch()),
        }
    }

    async fn operation(
        &self,
        scheduler: String,
        id: String,
    ) -> Result<Option<Operation>, Unavailable> {
        match self.call(Call::Operation { scheduler, id }).await? {
            Reply::Operation(r) => r,
            _ => Err(mismatch()),
        }
    }

    async fn rooms(
        &self,
        scheduler: String,
        status: Option<RoomStatus>,
        offset: usize,
        limit: usize,
    ) -> Result<Option<RoomPage>, Unavailable> {
        let call = Call::Rooms {
            scheduler,
            status,
            offset,
            limit,
        };
        match self.call(call).await? {
            Reply::Rooms(r) => r,
            _ => Err(mismatch()),
        }
    }

    async fn room(&self, scheduler: String, room: String) -> Result<Option<Room>, Unavailable> {
        match self.call(Call::Room { scheduler, room }).await? {
            Reply::Room(r) => r,
            _ => Err(mismatch()),
        }
    }

    async fn report(&self, report: RoomReport) -> Result<(), ReportError> {
        match self.call(Call::Report(report)).await {
            Ok(Reply::Report(r)) => r,
            Ok(_) => Err(ReportError::Unavailable(mismatch().0)),
            Err(e) => Err(ReportError::Unavailable(e.0)),
        }
    }
}
