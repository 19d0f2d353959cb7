//! What the APIs ask of the service, written once.
//!
//! A backend call is one [`Request`] answered by one [`Reply`]. The
//! service's driver answers them in process (`maestro start all`), the
//! worker protocol carries the same two values between processes
//! (`remote.rs`), and the test harnesses answer them on a simulated
//! cluster. Read-only questions are the engine's own [`Query`] and
//! [`Answer`], answered by `Engine::query` wherever the engine is. The
//! typed methods of [`Backend`] are conveniences over [`Backend::call`]
//! for the HTTP and gRPC handlers; no implementation overrides them.

use maestro_engine::query::{Answer, Query, RoomPage, SchedulerSummary, Stage};
use maestro_engine::room::{Room, RoomStatus};
use maestro_engine::scheduler::Scheduler;
use maestro_engine::{
    AllocateError, Allocation, Command, CommandError, CommandReply, ForwardKind, Operation, Ping,
    PingError, VersionInfo,
};
use serde::{Deserialize, Serialize};

/// The backend could not answer: the worker is unreachable or stopping.
/// The APIs answer 503 (gRPC `Unavailable`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// A room or player event a room reported about itself, for its
/// scheduler's forwarders. It changes no state in maestro.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoomReport {
    pub scheduler: String,
    pub room: String,
    /// [`ForwardKind::RoomEvent`] or [`ForwardKind::PlayerEvent`].
    pub kind: ForwardKind,
    /// The request's metadata, a JSON object.
    pub metadata_json: String,
}

/// Why a reported event was not accepted for forwarding.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ReportError {
    #[error("room {room} of scheduler {scheduler} not found")]
    RoomNotFound { scheduler: String, room: String },
    /// The forwarder is unreachable for long enough that its durable queue
    /// is full; the room should retry later.
    #[error(
        "forwarder {forwarder} of scheduler {scheduler} has too many undelivered events; retry later"
    )]
    Backlog {
        scheduler: String,
        forwarder: String,
    },
    #[error("{0}")]
    Unavailable(String),
}

/// One backend call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// A management command; the reply comes once its writes are durable.
    /// Boxed: a whole scheduler dwarfs the other requests, which queue by
    /// the thousand in the driver's channel.
    Command(Box<Command>),
    Ping(Ping),
    /// Allocates a ready room; `key` makes retries idempotent. Answered
    /// once the allocation is durable.
    Allocate {
        scheduler: String,
        key: Option<String>,
    },
    /// Accepts a room or player event for the scheduler's enabled
    /// forwarders. `Ok` means it is durably queued for each of them (or
    /// there are none): delivery happens later, with retries.
    Report(RoomReport),
    Query(Query),
}

impl Request {
    /// Whether sending it again, after an attempt whose outcome is unknown
    /// (the worker died mid-call), cannot do anything twice: a read, a ping
    /// (the same status again), an event report (forwarding is at least
    /// once anyway). A command is not (it would create or enqueue again),
    /// nor is an allocation, even with an idempotency key: keys live in the
    /// leader's memory, so a successor would not know the first attempt's.
    pub fn is_retry_safe(&self) -> bool {
        match self {
            Request::Query(_) | Request::Ping(_) | Request::Report(_) => true,
            Request::Allocate { .. } | Request::Command(_) => false,
        }
    }
}

/// The answer to a [`Request`], of the same variant.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    Command(Result<CommandReply, CommandError>),
    Ping(Result<RoomStatus, PingError>),
    Allocate(Result<Allocation, AllocateError>),
    Report(Result<(), ReportError>),
    Query(Answer),
}

fn mismatch(reply: &Reply) -> String {
    format!("the backend answered another call: {reply:?}")
}

#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Answers one request. `Err` only when the backend could not be
    /// reached or is stopping.
    async fn call(&self, request: Request) -> Result<Reply, Unavailable>;

    async fn command(&self, command: Command) -> Result<CommandReply, CommandError> {
        match self.call(Request::Command(Box::new(command))).await {
            Ok(Reply::Command(r)) => r,
            Ok(other) => Err(CommandError::Unavailable(mismatch(&other))),
            Err(e) => Err(CommandError::Unavailable(e.0)),
        }
    }

    async fn ping(&self, ping: Ping) -> Result<RoomStatus, PingError> {
        match self.call(Request::Ping(ping)).await {
            Ok(Reply::Ping(r)) => r,
            Ok(other) => Err(PingError::Unavailable(mismatch(&other))),
            Err(e) => Err(PingError::Unavailable(e.0)),
        }
    }

    async fn allocate(
        &self,
        scheduler: String,
        key: Option<String>,
    ) -> Result<Allocation, AllocateError> {
        match self.call(Request::Allocate { scheduler, key }).await {
            Ok(Reply::Allocate(r)) => r,
            Ok(other) => Err(AllocateError::Unavailable(mismatch(&other))),
            Err(e) => Err(AllocateError::Unavailable(e.0)),
        }
    }

    async fn report(&self, report: RoomReport) -> Result<(), ReportError> {
        match self.call(Request::Report(report)).await {
            Ok(Reply::Report(r)) => r,
            Ok(other) => Err(ReportError::Unavailable(mismatch(&other))),
            Err(e) => Err(ReportError::Unavailable(e.0)),
        }
    }

    async fn query(&self, query: Query) -> Result<Answer, Unavailable> {
        match self.call(Request::Query(query)).await? {
            Reply::Query(answer) => Ok(answer),
            other => Err(Unavailable(mismatch(&other))),
        }
    }

    /// Every scheduler's active version with its counts, by name.
    async fn schedulers(&self) -> Result<Vec<SchedulerSummary>, Unavailable> {
        match self.query(Query::Schedulers).await? {
            Answer::Schedulers(s) => Ok(s),
            other => Err(Unavailable(format!("unexpected answer {other:?}"))),
        }
    }

    /// The active version, or the given one.
    async fn scheduler(
        &self,
        name: String,
        version: Option<String>,
    ) -> Result<Option<Scheduler>, Unavailable> {
        match self.query(Query::Scheduler { name, version }).await? {
            Answer::Scheduler(s) => Ok(s),
            other => Err(Unavailable(format!("unexpected answer {other:?}"))),
        }
    }

    /// Every stored version, newest first; `None` for an unknown scheduler.
    async fn versions(&self, name: String) -> Result<Option<Vec<VersionInfo>>, Unavailable> {
        match self.query(Query::Versions { name }).await? {
            Answer::Versions(v) => Ok(v),
            other => Err(Unavailable(format!("unexpected answer {other:?}"))),
        }
    }

    /// Operations in one stage (see [`Stage`]); `None` for an unknown
    /// scheduler.
    async fn operations(
        &self,
        scheduler: String,
        stage: Stage,
    ) -> Result<Option<Vec<Operation>>, Unavailable> {
        match self.query(Query::Operations { scheduler, stage }).await? {
            Answer::Operations(o) => Ok(o),
            other => Err(Unavailable(format!("unexpected answer {other:?}"))),
        }
    }

    async fn operation(
        &self,
        scheduler: String,
        id: String,
    ) -> Result<Option<Operation>, Unavailable> {
        match self.query(Query::Operation { scheduler, id }).await? {
            Answer::Operation(o) => Ok(o),
            other => Err(Unavailable(format!("unexpected answer {other:?}"))),
        }
    }

    /// Rooms by id, optionally only those in `status`, skipping `offset` and
    /// returning at most `limit`. `None` for an unknown scheduler.
    async fn rooms(
        &self,
        scheduler: String,
        status: Option<RoomStatus>,
        offset: usize,
        limit: usize,
    ) -> Result<Option<RoomPage>, Unavailable> {
        let query = Query::Rooms {
            scheduler,
            status,
            offset,
            limit,
        };
        match self.query(query).await? {
            Answer::Rooms(r) => Ok(r),
            other => Err(Unavailable(format!("unexpected answer {other:?}"))),
        }
    }

    async fn room(&self, scheduler: String, room: String) -> Result<Option<Room>, Unavailable> {
        match self.query(Query::Room { scheduler, room }).await? {
            Answer::Room(r) => Ok(r),
            other => Err(Unavailable(format!("unexpected answer {other:?}"))),
        }
    }
}
