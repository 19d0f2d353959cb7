//! maestro's deterministic engine: every scheduling decision, and no IO.
//!
//! Inputs (commands, pings, runtime events, effect results, timer expiries)
//! come in with the current time; effects (create a pod, persist an
//! operation, forward an event) go out as data. The engine reads no clock,
//! spawns nothing and owns its seeded RNG, so the same seed and the same
//! inputs produce the same effects, bit for bit. The service and the
//! simulator drive the same engine.
//!
//! Map: [`scheduler`] (the fleet description and its validation),
//! [`version`], [`room`] (statuses and the indexed fleet), [`operation`],
//! [`autoscale`] and [`health`] (pure decisions), [`effect`], [`input`],
//! and [`Engine`], which ties them together.

pub mod autoscale;
pub mod config;
pub mod disruption;
pub mod effect;
mod engine;
pub mod health;
pub mod id_index;
pub mod input;
pub mod operation;
mod rng;
pub mod room;
pub mod scheduler;
pub mod time;
pub mod version;

pub use config::EngineConfig;
pub use effect::{
    Effect, EffectId, ForwardEvent, ForwardKind, PlayerEventKind, RuntimeError, RuntimeErrorKind,
};
pub use engine::query;
pub use engine::{Engine, RestoreError, StoredScheduler, StoredVersion, VersionInfo};
pub use input::{
    AllocateError, Allocation, Command, CommandError, CommandReply, InstanceEvent,
    InstanceEventKind, Liveness, Ping, PingError, PingStream,
};
pub use operation::{Definition, Operation, OperationId, OperationStatus};
pub use time::{Millis, Time};
