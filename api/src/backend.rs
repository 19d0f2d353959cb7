//! What the APIs ask of the service. The service implements [`Backend`]
//! around the engine (in process for `maestro start all`); the HTTP and
//! gRPC layers only translate wire formats to these calls and back.

use maestro_engine::room::{FleetCounts, Room, RoomStatus};
use maestro_engine::scheduler::Scheduler;
use maestro_engine::{
    AllocateError, Allocation, Command, CommandError, CommandReply, Operation, Ping, PingError,
    VersionInfo,
};

/// A scheduler's active version with its fleet's counts (for the list and
/// `/schedulers/info` routes).
#[derive(Clone, Debug, PartialEq)]
pub struct SchedulerSummary {
    pub scheduler: Scheduler,
    pub counts: FleetCounts,
}

/// Which operations a listing asks for (upstream's stages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Pending,
    Active,
    Final,
}

/// A page of rooms and how many matched in all.
#[derive(Clone, Debug, PartialEq)]
pub struct RoomPage {
    pub rooms: Vec<Room>,
    pub total: usize,
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
    async fn schedulers(&self) -> Vec<SchedulerSummary>;

    /// The active version, or the given one.
    async fn scheduler(&self, name: String, version: Option<String>) -> Option<Scheduler>;

    /// Every stored version, newest first; `None` for an unknown scheduler.
    async fn versions(&self, name: String) -> Option<Vec<VersionInfo>>;

    /// Operations in one stage: pending in queue order, the others in any
    /// order (the API sorts and paginates). `None` for an unknown scheduler.
    async fn operations(&self, scheduler: String, stage: Stage) -> Option<Vec<Operation>>;

    async fn operation(&self, scheduler: String, id: String) -> Option<Operation>;

    /// Rooms by id, optionally only those in `status`, skipping `offset` and
    /// returning at most `limit`. `None` for an unknown scheduler.
    async fn rooms(
        &self,
        scheduler: String,
        status: Option<RoomStatus>,
        offset: usize,
        limit: usize,
    ) -> Option<RoomPage>;

    async fn room(&self, scheduler: String, room: String) -> Option<Room>;
}
