//! The decision trace hash: one number that changes when any decision of
//! the engine changes.
//!
//! A decision is what the engine asks of the world that a policy decides:
//! rooms created and deleted (and why), operations as they move, scheduler
//! versions and resources, disruption budgets, each with its time. Room
//! records, forwarded events and pings are left out: they follow from the
//! decisions and from how often game servers report, which the planner may
//! elide without changing a decision (see [`crate::cluster`]). The hash is
//! XXH3 over a fixed byte layout, so it is the same on every machine and
//! build.

use maestro_engine::{Effect, Time};
use xxhash_rust::xxh3::Xxh3;

#[derive(Clone)]
pub struct DecisionTrace {
    hasher: Xxh3,
    decisions: u64,
    timed: bool,
}

impl Default for DecisionTrace {
    fn default() -> Self {
        DecisionTrace {
            hasher: Xxh3::new(),
            decisions: 0,
            timed: true,
        }
    }
}

impl DecisionTrace {
    /// A trace of decisions without their times (see [`crate::record`]).
    pub fn untimed() -> DecisionTrace {
        DecisionTrace {
            timed: false,
            ..DecisionTrace::default()
        }
    }

    pub fn record(&mut self, now: Time, effect: &Effect) {
        let h = &mut self.hasher;
        let mut field = |bytes: &[u8]| {
            h.update(&(bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        match effect {
            Effect::CreateSchedulerResources { spec, .. } => {
                field(b"create-resources");
                field(spec.name.as_bytes());
            }
            Effect::DeleteSchedulerResources { scheduler, .. } => {
                field(b"delete-resources");
                field(scheduler.as_bytes());
            }
            Effect::CreateRoom {
                scheduler,
                room,
                version,
                ..
            } => {
                field(b"create-room");
                field(scheduler.as_bytes());
                field(room.as_bytes());
                field(version.to_string().as_bytes());
            }
            Effect::DeleteRoom {
                scheduler,
                room,
                reason,
                ..
            } => {
                field(b"delete-room");
                field(scheduler.as_bytes());
                field(room.as_bytes());
                field(reason.as_str().as_bytes());
            }
            Effect::SetDisruptionBudget {
                scheduler,
                min_available,
                ..
            } => {
                field(b"disruption-budget");
                field(scheduler.as_bytes());
                field(&min_available.to_le_bytes());
            }
            Effect::PersistScheduler { scheduler, active } => {
                field(b"scheduler");
                field(scheduler.name.as_bytes());
                field(scheduler.spec.version.as_bytes());
                field(&[u8::from(*active)]);
            }
            Effect::DeleteSchedulerData { scheduler } => {
                field(b"delete-scheduler");
                field(scheduler.as_bytes());
            }
            Effect::PersistOperation(op) => {
                field(b"operation");
                field(op.scheduler.as_bytes());
                field(op.id.as_bytes());
                field(op.definition.name().as_bytes());
                field(op.status.as_str().as_bytes());
            }
            Effect::DeleteOperations { .. }
            | Effect::SaveRoom(_)
            | Effect::ForgetRoom { .. }
            | Effect::Forward { .. } => return,
        }
        if self.timed {
            self.hasher.update(&now.0.to_le_bytes());
        }
        self.decisions += 1;
    }

    /// The hash of every decision so far, as 16 hex digits.
    pub fn hash(&self) -> String {
        format!("{:016x}", self.hasher.digest())
    }

    pub fn decisions(&self) -> u64 {
        self.decisions
    }
}
