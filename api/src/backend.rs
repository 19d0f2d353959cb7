//! What the APIs ask of the service. The service implements [`Backend`]
//! around the engine (in process for `maestro start all`); the HTTP and
//! gRPC layers only translate wire formats to these calls and back.

use maestro_engine::room::{FleetCounts, Room, RoomStatus};
use maestro_engine::scheduler::Scheduler;
use maestro_engine::{
    AllocateError, Allocation, Command, CommandError, CommandReply, ForwardKind, Operation, Ping,
    PingError, VersionInfo,
};
use serde::{Deserialize, Serialize};

/// A scheduler's active version with its fleet's counts (for the list and
/// `/schedulers/info` routes and the metrics reporter).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SchedulerSummary {
    pub scheduler: Scheduler,
    pub counts: FleetCounts,
    /// The rooms the health check aims for now.
    pub desired: u64,
}

/// The backend could not answer: the worker is unreachable or stopping.
/// The APIs answer 503 (gRPC `Unavailable`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// Which operations a listing asks for (upstream's stages).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    Pending,
    Active,
    Final,
}

/// A page of rooms and how many matched in all.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoomPage {
    pub rooms: Vec<Room>,
    pub total: usize,
}

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

#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// A management command; the reply comes once its writes are durable.
    async fn command(&self, command: Command) -> Result<CommandReply, CommandError>;

    async fn ping(&self, ping: Ping) -> Result<RoomStatus, PingError>;

    /// Allocates a ready room; `key` makes retries idempotent.
    async fn allocate(
        &self,
        scheduler: String,
        key: Option<String>,
    ) -> Result<Allocation, AllocateError>;

    /// Every scheduler's active version with its counts, by name.
    async fn schedulers(&self) -> Result<Vec<SchedulerSummary>, Unavailable>;

    /// The active version, or the given one.
    async fn scheduler(
        &self,
        name: String,
        version: Option<String>,
    ) -> Result<Option<Scheduler>, Unavailable>;

    /// Every stored version, newest first; `None` for an unknown scheduler.
    async fn versions(&self, name: String) -> Result<Option<Vec<VersionInfo>>, Unavailable>;

    /// Operations in one stage: pending in queue order, the others in any
    /// order (the API sorts and paginates). `None` for an unknown scheduler.
    async fn operations(
        &self,
        scheduler: String,
        stage: Stage,
    ) -> Result<Option<Vec<Operation>>, Unavailable>;

    async fn operation(
        &self,
        scheduler: String,
        id: String,
    ) -> Result<Option<Operation>, Unavailable>;

    /// Rooms by id, optionally only those in `status`, skipping `offset` and
    /// returning at most `limit`. `None` for an unknown scheduler.
    async fn rooms(
        &self,
        scheduler: String,
        status: Option<RoomStatus>,
        offset: usize,
        limit: usize,
    ) -> Result<Option<RoomPage>, Unavailable>;

    async fn room(&self, scheduler: String, room: String) -> Result<Option<Room>, Unavailable>;

    /// Accepts a room or player event for the scheduler's enabled
    /// forwarders. `Ok` means it is durably queued for each of them (or
    /// there are none): delivery happens later, with retries.
    async fn report(&self, report: RoomReport) -> Result<(), ReportError>;
}
