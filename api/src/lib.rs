//! maestro's APIs, compatible with Maestro Next. This crate owns every wire
//! type, so the engine's types stay free of serialization concerns.
//!
//! - the protos (`api/proto`) are the one schema: their generated messages
//!   are the gRPC messages and the HTTP API's JSON (`json`), the OpenAPI
//!   document is generated from their descriptors (`schema`), and
//!   `convert` maps them to the engine's model;
//! - `rpc` is the one table of RPCs: each is answered by one typed function
//!   in `service`, called by a thin HTTP adapter ([`management_router`],
//!   [`rooms_router`], [`router`], over a [`Backend`], with [`ApiConfig`]
//!   for tokens and limits) and a thin gRPC adapter ([`grpc`], with health
//!   and reflection, to merge into the HTTP router of the same port);
//! - [`proto`]: the generated protobuf code: `proto::api::v1` (messages,
//!   clients, servers, protojson serde), `proto::eventforwarder` (the
//!   forwarder protocol) and `proto::internal::v1` (the worker protocol);
//! - [`room_token`]: the token the service gives each room's pod.

mod auth;
pub mod backend;
mod convert;
mod error;
pub mod grpc;
mod http;
mod json;
pub mod proto;
pub mod remote;
mod rpc;
mod schema;
mod service;

pub use auth::{ApiConfig, DEFAULT_BODY_LIMIT_BYTES, room_token};
pub use backend::{Backend, Reply, ReportError, Request, RoomReport, Unavailable};
pub use convert::operation::go_scheduler as go_scheduler_json;
pub use error::{ApiError, Code};
pub use http::{management_router, openapi_document, rooms_router, router};

/// A scheduler from the document a user would `POST /schedulers` (JSON),
/// read and converted exactly as that route does, so a file the planner
/// accepts is one the service accepts. Errors name the field path.
pub fn scheduler_from_json(body: &[u8]) -> Result<maestro_engine::scheduler::Scheduler, ApiError> {
    let request: proto::api::v1::CreateSchedulerRequest =
        json::from_body(body, ".api.v1.CreateSchedulerRequest")?;
    convert::scheduler::scheduler(request)
}
