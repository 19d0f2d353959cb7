//! Game rooms: one room is one pod. Statuses, the room record, and the fleet
//! index that keeps per-status counts incrementally.

mod fleet;
mod status;

pub use fleet::{ExpiryTimeouts, Fleet, FleetCounts};
pub use status::{
    InstanceStatus, PingStatus, RoomStatus, StatusInputs, calculate_status, composite_status,
};

use crate::time::Time;
use crate::version::Version;

/// A room's name, which is also its pod's name.
pub type RoomId = String;

/// Why a room is being deleted. Recorded on the pod as a Kubernetes Event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum RemovalReason {
    ExpiredRoom,
    ScaleDown,
    RollingUpdateReplace,
    NewVersionValidationFinished,
    NewVersionRollback,
    UserRequest,
    SchedulerDeleted,
}

impl RemovalReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RemovalReason::ExpiredRoom => "expired_room",
            RemovalReason::ScaleDown => "scale_down",
            RemovalReason::RollingUpdateReplace => "rolling_update_replace",
            RemovalReason::NewVersionValidationFinished => "new_version_validation_finished",
            RemovalReason::NewVersionRollback => "new_version_rollback",
            RemovalReason::UserRequest => "user_request",
            RemovalReason::SchedulerDeleted => "scheduler_deleted",
        }
    }

    /// Removals that must never pick a busy room: the fleet is shrinking or
    /// being replaced, not repaired.
    pub fn spares_busy_rooms(self) -> bool {
        matches!(
            self,
            RemovalReason::ScaleDown | RemovalReason::RollingUpdateReplace
        )
    }
}

/// A host port given to one container port of a room.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct HostPort {
    pub container: String,
    pub name: String,
    pub protocol: String,
    pub container_port: i64,
    pub host_port: u16,
}

/// Where players reach the room, once its pod has a node.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Address {
    pub host: String,
    pub ports: Vec<AddressPort>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AddressPort {
    pub name: String,
    pub port: u16,
    pub protocol: String,
}

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Room {
    pub id: RoomId,
    pub scheduler: String,
    pub version: Version,
    pub status: RoomStatus,
    pub ping_status: PingStatus,
    pub instance_status: InstanceStatus,
    /// The runtime's explanation of an error or pending instance status.
    pub instance_description: String,
    pub address: Option<Address>,
    pub host_ports: Vec<HostPort>,
    pub running_matches: u64,
    /// The last ping's metadata, an opaque JSON object.
    pub metadata_json: String,
    pub is_validation_room: bool,
    pub created_at: Time,
    /// Server time of the last ping; the creation time until the first one.
    pub last_ping_at: Time,
    pub allocated_at: Option<Time>,
    /// Set once maestro decided to delete the room. The room stays
    /// `terminating` from then on, whatever it pings, and the deletion is
    /// retried after the deletion timeout.
    pub deletion: Option<Deletion>,
    /// Loaded from the store at start-up and not yet confirmed by a ping or
    /// a runtime report: its recorded status may be stale, so it is neither
    /// allocated nor removed to scale down or roll out until confirmed.
    pub restored: bool,
    /// The shell vouches that the room's game server pings on its cadence
    /// ([`crate::PingStream::Steady`]), so no ping deadline applies until it
    /// reports the pings stopped. Only the simulated cluster says so; rooms
    /// of the service are timed by the pings they send. Not stored, so that
    /// a restored room waits for a real ping again and the store's and the
    /// recordings' formats are unchanged.
    #[cfg_attr(feature = "serde", serde(skip))]
    pub steady_pings: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Deletion {
    pub requested_at: Time,
    pub reason: RemovalReason,
}

impl Room {
    /// The status calculators' view of this room, honouring a pending deletion.
    pub fn status_inputs(&self, max_matches: u64) -> StatusInputs {
        StatusInputs {
            current: self.status,
            ping: self.ping_status,
            instance: self.instance_status,
            running_matches: self.running_matches,
            max_matches,
            allocated_at: self.allocated_at,
        }
    }
}
