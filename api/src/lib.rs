//! maestro's APIs, compatible with Maestro Next. This crate owns every wire
//! type, so the engine's types stay free of serialization concerns.
//!
//! - [`wire`]: the JSON messages and their conversions to the engine's model;
//! - [`management_router`], [`rooms_router`] and [`router`]: the HTTP/JSON
//!   APIs over a [`Backend`], with [`ApiConfig`] for tokens and limits;
//! - [`grpc`]: the same APIs as gRPC services (`api.v1`), with health and
//!   reflection, to merge into the HTTP router of the same port. Every RPC
//!   is served by its HTTP route, so the two cannot disagree;
//! - [`proto`]: the generated protobuf code: `proto::api::v1` (messages,
//!   clients, servers, protojson serde), `proto::eventforwarder` (the
//!   forwarder protocol) and `proto::internal::v1` (the worker protocol);
//! - [`room_token`]: the token the service gives each room's pod.

mod auth;
pub mod backend;
mod error;
pub mod grpc;
mod http;
pub mod proto;
pub mod remote;
pub mod wire;

pub use auth::{ApiConfig, DEFAULT_BODY_LIMIT_BYTES, room_token};
pub use backend::{Backend, Reply, ReportError, Request, RoomReport, Unavailable};
pub use error::{ApiError, Code};
pub use http::{management_router, openapi_document, rooms_router, router};
