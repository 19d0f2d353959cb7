//! Inputs the engine accepts besides time: management commands, pings,
//! runtime instance events; and what it answers.

use crate::operation::{OperationId, OperationStatus};
use crate::room::{Address, HostPort, InstanceStatus, PingStatus, Room, RoomId, RoomStatus};
use crate::scheduler::{Scheduler, ValidationErrors};
use crate::time::Time;
use crate::version::Version;

/// A management request. Replies come back synchronously; the shell
/// acknowledges the client only after flushing the persistence effects the
/// command emitted.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Command {
    /// Store the scheduler as v1.0.0 and enqueue create_scheduler.
    CreateScheduler(Scheduler),
    /// Enqueue create_new_scheduler_version (POST and PATCH on a scheduler).
    NewSchedulerVersion(Scheduler),
    SwitchActiveVersion {
        scheduler: String,
        version: String,
    },
    AddRooms {
        scheduler: String,
        amount: u64,
    },
    RemoveRooms {
        scheduler: String,
        amount: u64,
    },
    DeleteScheduler {
        scheduler: String,
    },
    CancelOperation {
        scheduler: String,
        operation_id: OperationId,
    },
}

impl Command {
    /// The scheduler the command is about.
    pub fn scheduler(&self) -> &str {
        match self {
            Command::CreateScheduler(s) | Command::NewSchedulerVersion(s) => &s.name,
            Command::SwitchActiveVersion { scheduler, .. }
            | Command::AddRooms { scheduler, .. }
            | Command::RemoveRooms { scheduler, .. }
            | Command::DeleteScheduler { scheduler }
            | Command::CancelOperation { scheduler, .. } => scheduler,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum CommandReply {
    /// The operation the command enqueued.
    Enqueued(OperationId),
    /// A scheduler created as stored (state `creating`, its first version,
    /// its creation time), with the operation that creates its resources.
    Created {
        operation_id: OperationId,
        scheduler: Box<Scheduler>,
    },
    Canceled,
}

impl CommandReply {
    /// The operation the command enqueued, if it enqueued one.
    pub fn operation_id(&self) -> Option<&OperationId> {
        match self {
            CommandReply::Enqueued(id)
            | CommandReply::Created {
                operation_id: id, ..
            } => Some(id),
            CommandReply::Canceled => None,
        }
    }
}

/// Why a command was refused. Each maps to one upstream error code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum CommandError {
    #[error("Validation Error:\n{0}")]
    Invalid(ValidationErrors),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// Upstream's FailedPrecondition (HTTP 400), e.g. a version operation already open.
    #[error("{0}")]
    Conflict(String),
    /// Upstream's Aborted (HTTP 409): the operation is not pending or in progress.
    #[error("operation is {}", .0.as_str())]
    NotCancelable(OperationStatus),
    #[error("{0}")]
    Unsupported(String),
    /// A bound was reached (queue length, scheduler count).
    #[error("{0}")]
    Exhausted(String),
    /// The shell could not reach the engine (never the engine's answer).
    #[error("{0}")]
    Unavailable(String),
}

/// A room's ping to the Rooms API.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Ping {
    pub scheduler: String,
    pub room: RoomId,
    pub status: PingStatus,
    pub running_matches: u64,
    /// Opaque JSON object.
    pub metadata_json: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum PingError {
    #[error("scheduler {0} not found")]
    SchedulerNotFound(String),
    /// A ping never creates a room (upstream re-created orphans).
    #[error("room {0} not found")]
    RoomNotFound(RoomId),
    #[error("cannot change game room status from {} to {}", .from.as_str(), .to.as_str())]
    InvalidTransition { from: RoomStatus, to: RoomStatus },
    /// The shell could not reach the engine (never the engine's answer).
    #[error("{0}")]
    Unavailable(String),
}

/// What a shell that runs the game servers itself (the simulated cluster)
/// knows of a room's pings, so that it need not deliver the pings that
/// change nothing (see [`crate::Engine::handle_liveness`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Liveness {
    pub scheduler: String,
    pub room: RoomId,
    pub pings: PingStream,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum PingStream {
    /// The game server pings on its cadence from now on, unchanged pings
    /// left out: no ping deadline applies until it stops.
    Steady,
    /// It stopped pinging; its last ping was at `last`.
    Stopped { last: Time },
}

/// What the runtime reports about a room's pod.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct InstanceEvent {
    pub scheduler: String,
    pub room: RoomId,
    pub kind: InstanceEventKind,
    pub status: InstanceStatus,
    pub description: String,
    pub address: Option<Address>,
    /// The pod's `version` label, used to adopt a pod maestro has no record of.
    pub version: Option<Version>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum InstanceEventKind {
    /// Added or updated.
    Upsert,
    Deleted,
}

/// A room handed out by the allocate API.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Allocation {
    pub room: RoomId,
    /// `None` until the pod has a node; the API answers that clearly.
    pub address: Option<Address>,
    pub host_ports: Vec<HostPort>,
}

impl Allocation {
    /// What a matchmaker is told of the room it was given.
    pub fn of(room: &Room) -> Allocation {
        Allocation {
            room: room.id.clone(),
            address: room.address.clone(),
            host_ports: room.host_ports.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum AllocateError {
    #[error("scheduler {0} not found")]
    SchedulerNotFound(String),
    #[error("no ready room available")]
    NoRoomAvailable,
    /// The shell could not reach the engine (never the engine's answer).
    #[error("{0}")]
    Unavailable(String),
}
