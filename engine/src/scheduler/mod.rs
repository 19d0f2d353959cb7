//! The scheduler: the description of one fleet of game rooms.
//!
//! Field names and meanings follow Maestro Next's `entities.Scheduler`. Enum-like
//! fields (pull policy, protocol, restart policy, policy type) are kept as the
//! strings the user sent, so validation can name the offending value; `validate`
//! is the gate every scheduler passes before the engine accepts it.

pub mod change;
mod max_surge;
pub mod patch;
pub mod quantity;
mod validate;

use std::collections::BTreeMap;

use crate::time::Time;

pub use max_surge::MaxSurge;
pub use validate::{FieldError, ValidationErrors, validate, validate_name};

/// Lifecycle state of a scheduler, as upstream reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum SchedulerState {
    Creating,
    InSync,
    OnError,
    Terminating,
}

impl SchedulerState {
    pub fn as_str(self) -> &'static str {
        match self {
            SchedulerState::Creating => "creating",
            SchedulerState::InSync => "in-sync",
            SchedulerState::OnError => "on-error",
            SchedulerState::Terminating => "terminating",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Scheduler {
    pub name: String,
    pub game: String,
    pub state: SchedulerState,
    pub spec: Spec,
    /// Legacy scheduler-wide host port range; exclusive with per-port ranges.
    pub port_range: Option<PortRange>,
    /// Fixed fleet size when autoscaling is absent or disabled. Signed so a
    /// negative input reaches validation instead of wrapping.
    pub rooms_replicas: i64,
    /// `"N"` (N ≥ 1) or `"N%"`.
    pub max_surge: String,
    pub autoscaling: Option<Autoscaling>,
    pub forwarders: Vec<Forwarder>,
    pub annotations: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub match_allocation: MatchAllocation,
    pub created_at: Time,
    pub last_downscale_at: Option<Time>,
    /// The version that was active before this one (upstream's RollbackVersion).
    pub rollback_version: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Spec {
    /// `vMAJOR.MINOR.PATCH`, assigned by maestro.
    pub version: String,
    /// Seconds; upstream stores a Go duration.
    pub termination_grace_period_secs: i64,
    pub containers: Vec<Container>,
    pub toleration: String,
    pub affinity: String,
    /// `Always`, `OnFailure` or `Never`. Unlike upstream, it is persisted.
    pub restart_policy: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Container {
    pub name: String,
    pub image: String,
    pub image_pull_policy: String,
    pub command: Vec<String>,
    pub environment: Vec<EnvVar>,
    pub requests: Resources,
    pub limits: Resources,
    pub ports: Vec<ContainerPort>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Resources {
    pub memory: String,
    pub cpu: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct EnvVar {
    pub name: String,
    pub value: Option<String>,
    pub value_from: Option<EnvVarSource>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct EnvVarSource {
    pub field_ref: Option<FieldRef>,
    pub secret_key_ref: Option<SecretKeyRef>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FieldRef {
    pub field_path: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ContainerPort {
    pub name: String,
    /// `tcp` or `udp` (lower case). `sctp` is rejected by validation.
    pub protocol: String,
    pub port: i64,
    /// Filled per room by the port allocator; ignored when comparing versions.
    pub host_port: i64,
    pub host_port_range: Option<PortRange>,
}

/// An inclusive range of host ports, `start < end` (upstream treats `end` as inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PortRange {
    pub start: i64,
    pub end: i64,
}

#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Autoscaling {
    pub enabled: bool,
    pub min: i64,
    /// `-1` means unlimited.
    pub max: i64,
    /// Seconds between two downscales.
    pub cooldown_secs: i64,
    pub policy: AutoscalingPolicy,
}

#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AutoscalingPolicy {
    /// `roomOccupancy` or `fixedBuffer`.
    pub kind: String,
    pub room_occupancy: Option<RoomOccupancyParams>,
    pub fixed_buffer: Option<FixedBufferParams>,
}

pub const POLICY_ROOM_OCCUPANCY: &str = "roomOccupancy";
pub const POLICY_FIXED_BUFFER: &str = "fixedBuffer";

#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RoomOccupancyParams {
    /// Fraction of match slots kept free, in (0, 1).
    pub ready_target: f64,
    /// Downscale only when desired free slots / free slots ≤ this, in (0, 1].
    pub down_threshold: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FixedBufferParams {
    pub amount: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Forwarder {
    pub name: String,
    pub enabled: bool,
    /// Only `gRPC` exists.
    pub forward_type: String,
    pub address: String,
    pub options: Option<ForwarderOptions>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ForwarderOptions {
    pub timeout_ms: i64,
    /// Opaque JSON object merged into every forwarded message's metadata.
    pub metadata_json: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MatchAllocation {
    /// Matches one room can host, 1..=35.
    pub max_matches: i64,
}

impl Default for MatchAllocation {
    fn default() -> Self {
        MatchAllocation { max_matches: 1 }
    }
}

impl Scheduler {
    /// The autoscaling block, when present and enabled.
    pub fn active_autoscaling(&self) -> Option<&Autoscaling> {
        self.autoscaling.as_ref().filter(|a| a.enabled)
    }

    pub fn has_enabled_forwarders(&self) -> bool {
        self.forwarders.iter().any(|f| f.enabled)
    }

    /// The surge, parsed. Validation guarantees it parses; a stored value that
    /// does not falls back to one room, as upstream's `ComputeMaxSurge` does.
    pub fn parsed_max_surge(&self) -> MaxSurge {
        MaxSurge::parse(&self.max_surge).unwrap_or(MaxSurge::Absolute(1))
    }
}

#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures {
    //! Test objects shared by the engine's tests and, through the
    //! `fixtures` feature, by the other crates' tests and benchmarks.
    use super::*;

    /// A valid single-container scheduler with a per-port host port range.
    pub fn scheduler(name: &str) -> Scheduler {
        Scheduler {
            name: name.to_string(),
            game: "game".to_string(),
            state: SchedulerState::Creating,
            spec: Spec {
                version: "v1.0.0".to_string(),
                termination_grace_period_secs: 30,
                containers: vec![Container {
                    name: "game".to_string(),
                    image: "registry.example/game:1".to_string(),
                    image_pull_policy: "IfNotPresent".to_string(),
                    command: vec!["./run".to_string()],
                    environment: vec![EnvVar {
                        name: "MODE".to_string(),
                        value: Some("prod".to_string()),
                        value_from: None,
                    }],
                    requests: Resources {
                        memory: "128Mi".to_string(),
                        cpu: "100m".to_string(),
                    },
                    limits: Resources {
                        memory: "256Mi".to_string(),
                        cpu: "200m".to_string(),
                    },
                    ports: vec![ContainerPort {
                        name: "game".to_string(),
                        protocol: "udp".to_string(),
                        port: 7777,
                        host_port: 0,
                        host_port_range: Some(PortRange {
                            start: 20000,
                            end: 30000,
                        }),
                    }],
                }],
                toleration: String::new(),
                affinity: String::new(),
                restart_policy: "Never".to_string(),
            },
            port_range: None,
            rooms_replicas: 2,
            max_surge: "25%".to_string(),
            autoscaling: None,
            forwarders: Vec::new(),
            annotations: BTreeMap::new(),
            labels: BTreeMap::new(),
            match_allocation: MatchAllocation::default(),
            created_at: Time::ZERO,
            last_downscale_at: None,
            rollback_version: None,
        }
    }

    /// A room of scheduler `s` at v1.0.0 whose pod is ready and whose ping
    /// matches `status` (one running match when occupied), created and last
    /// pinged at 1 s.
    pub fn room(scheduler: &str, id: &str, status: crate::room::RoomStatus) -> crate::room::Room {
        use crate::room::{InstanceStatus, PingStatus, Room, RoomStatus};
        let occupied = status == RoomStatus::Occupied;
        Room {
            id: id.to_string(),
            scheduler: scheduler.to_string(),
            version: crate::version::Version::FIRST,
            status,
            ping_status: if occupied {
                PingStatus::Occupied
            } else {
                PingStatus::Ready
            },
            instance_status: InstanceStatus::Ready,
            instance_description: String::new(),
            address: None,
            host_ports: Vec::new(),
            running_matches: u64::from(occupied),
            metadata_json: String::new(),
            is_validation_room: false,
            created_at: Time(1_000),
            last_ping_at: Time(1_000),
            allocated_at: None,
            deletion: None,
            restored: false,
            steady_pings: false,
        }
    }

    pub fn room_occupancy(min: i64, max: i64, ready_target: f64) -> Autoscaling {
        Autoscaling {
            enabled: true,
            min,
            max,
            cooldown_secs: 0,
            policy: AutoscalingPolicy {
                kind: POLICY_ROOM_OCCUPANCY.to_string(),
                room_occupancy: Some(RoomOccupancyParams {
                    ready_target,
                    down_threshold: 0.99,
                }),
                fixed_buffer: None,
            },
        }
    }

    pub fn fixed_buffer(min: i64, max: i64, amount: i64) -> Autoscaling {
        Autoscaling {
            enabled: true,
            min,
            max,
            cooldown_secs: 0,
            policy: AutoscalingPolicy {
                kind: POLICY_FIXED_BUFFER.to_string(),
                room_occupancy: None,
                fixed_buffer: Some(FixedBufferParams { amount }),
            },
        }
    }
}
