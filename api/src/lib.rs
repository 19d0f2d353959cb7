//! maestro's APIs, compatible with Maestro Next. This crate owns every wire
//! type, so the engine's types stay free of serialization concerns.

mod backend;

pub use backend::{Backend, RoomPage, SchedulerSummary, Stage};
