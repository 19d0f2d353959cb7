//! maestro's APIs, compatible with Maestro Next. This crate owns every wire
//! type, so the engine's types stay free of serialization concerns.
//!
//! - [`wire`]: the JSON messages and their conversions to the engine's model;
//! - [`management_router`], [`rooms_router`] and [`router`]: the HTTP/JSON
//!   APIs over a [`Backend`], with [`ApiConfig`] for tokens and limits;
//! - [`room_token`]: the token the service gives each room's pod.

mod auth;
mod backend;
mod error;
mod http;
pub mod wire;

pub use auth::{ApiConfig, DEFAULT_BODY_LIMIT_BYTES, room_token};
pub use backend::{Backend, RoomPage, SchedulerSummary, Stage};
pub use error::{ApiError, Code};
pub use http::{management_router, openapi_document, rooms_router, router};
