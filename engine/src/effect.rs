//! Effects: what the engine asks the world to do, as plain data.
//!
//! The shell executes effects. Runtime effects carry an [`EffectId`]; the
//! shell reports each one's outcome with `Engine::handle_effect_result`,
//! failures included. Store and forward effects carry no id: a store write
//! that fails is fatal for the process (it restarts and recovers from what was
//! flushed), and forwarding is the forwarder outbox's job to retry.

use std::fmt;
use std::sync::Arc;

use crate::operation::{Operation, OperationId};
use crate::room::{Address, HostPort, PingStatus, RemovalReason, Room, RoomId};
use crate::scheduler::Scheduler;
use crate::version::Version;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct EffectId(pub u64);

impl fmt::Display for EffectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "effect#{}", self.0)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Runtime: create the scheduler's namespace and disruption budget, for
    /// its active version `spec`.
    CreateSchedulerResources { id: EffectId, spec: Arc<Scheduler> },
    /// Runtime: delete the scheduler's namespace (and with it every pod).
    DeleteSchedulerResources { id: EffectId, scheduler: String },
    /// Runtime: create the room's pod from `spec`.
    CreateRoom {
        id: EffectId,
        scheduler: String,
        room: RoomId,
        version: Version,
        spec: Arc<Scheduler>,
        host_ports: Vec<HostPort>,
        is_validation_room: bool,
    },
    /// Runtime: delete the room's pod, recording `reason` as an event on it.
    DeleteRoom {
        id: EffectId,
        scheduler: String,
        room: RoomId,
        reason: RemovalReason,
    },
    /// Runtime: keep `min_available` of the scheduler's rooms available
    /// during node drains (see [`crate::disruption`]).
    SetDisruptionBudget {
        id: EffectId,
        scheduler: String,
        min_available: u32,
    },
    /// Store: write this version of the scheduler; `active` says whether it
    /// is now the active one. Flushed before any reply that depends on it.
    PersistScheduler {
        scheduler: Arc<Scheduler>,
        active: bool,
    },
    /// Store: forget the scheduler, its versions and its operations.
    DeleteSchedulerData { scheduler: String },
    /// Store: write the operation as it is now.
    PersistOperation(Box<Operation>),
    /// Store: drop expired finished operations.
    DeleteOperations {
        scheduler: String,
        ids: Vec<OperationId>,
    },
    /// Store: write the room record. Soft state: the shell may coalesce and
    /// batch these (the last write per room wins) instead of syncing each.
    SaveRoom(Arc<Room>),
    /// Store: the room is gone.
    ForgetRoom { scheduler: String, room: RoomId },
    /// Forwarders: tell the scheduler's enabled forwarders about a room.
    /// `scheduler` is the active version when the event happened; the shell
    /// fans the event out to its enabled forwarders.
    Forward {
        event: Box<ForwardEvent>,
        scheduler: Arc<Scheduler>,
    },
}

impl Effect {
    /// The id of a runtime effect, which expects a result.
    pub fn id(&self) -> Option<EffectId> {
        match self {
            Effect::CreateSchedulerResources { id, .. }
            | Effect::DeleteSchedulerResources { id, .. }
            | Effect::CreateRoom { id, .. }
            | Effect::DeleteRoom { id, .. }
            | Effect::SetDisruptionBudget { id, .. } => Some(*id),
            _ => None,
        }
    }
}

/// A room event for the forwarders: what happened, to which room, with the
/// room's metadata and address at that moment. The engine emits resyncs and
/// terminations; the shell builds room and player events reported through
/// the rooms API, which change no state.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ForwardEvent {
    pub scheduler: String,
    pub game: String,
    pub room: RoomId,
    pub kind: ForwardKind,
    pub metadata_json: String,
    pub address: Option<Address>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum ForwardKind {
    /// Every accepted ping: a resync with the ping's status.
    Resync(PingStatus),
    /// The room is gone (upstream's `SendRoomStatus` with `terminated`).
    Terminated,
    /// A room event (`POST …/roomevent`, upstream's `SendRoomEvent`).
    RoomEvent { event: String },
    /// A player event (`POST …/playerevent`, upstream's `SendPlayerEvent`).
    PlayerEvent {
        player_id: String,
        event: PlayerEventKind,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum PlayerEventKind {
    /// `playerJoin`
    Join,
    /// `playerLeft`
    Left,
}

impl PlayerEventKind {
    /// Parses upstream's event names.
    pub fn parse(text: &str) -> Option<PlayerEventKind> {
        match text {
            "playerJoin" => Some(PlayerEventKind::Join),
            "playerLeft" => Some(PlayerEventKind::Left),
            _ => None,
        }
    }
}

/// How a runtime call failed. The kinds are those the runtime interface
/// distinguishes; the engine decides per kind whether to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum RuntimeErrorKind {
    NotFound,
    AlreadyExists,
    Conflict,
    RateLimited,
    Unavailable,
    Invalid,
    Internal,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?}: {message}")]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RuntimeError {
    pub kind: RuntimeErrorKind,
    pub message: String,
}

impl RuntimeError {
    pub fn new(kind: RuntimeErrorKind, message: impl Into<String>) -> RuntimeError {
        RuntimeError {
            kind,
            message: message.into(),
        }
    }
}
