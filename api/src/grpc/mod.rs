//! Maestro Next's gRPC services (`api.v1.SchedulersService`,
//! `OperationsService`, `RoomsService`), gRPC health and reflection, served
//! on the same ports as the HTTP API.
//!
//! Upstream serves its API only as HTTP/JSON (grpc-gateway over the protos,
//! with no gRPC listener); we serve the protos' services over gRPC too.
//! Each RPC calls the same typed service function as its HTTP route (see
//! `crate::rpc`), after the same caller check: validation, defaults, error
//! codes and messages are the same on both.
//!
//! [`management_routes`] and [`rooms_routes`] are axum routers without a
//! fallback, to be merged into the HTTP router of the same port (which owns
//! the fallbacks; axum refuses to merge two routers that both have one). The
//! port must speak HTTP/2 without TLS (axum's `http2` feature; `axum::serve`
//! then accepts h2c with prior knowledge, which is what gRPC clients send,
//! next to HTTP/1.1).

use std::sync::Arc;

use axum::Router;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic_health::server::HealthReporter;

use crate::auth::ApiConfig;
use crate::backend::Backend;
use crate::proto::FILE_DESCRIPTOR_SET;
use crate::proto::api::v1::operations_service_server::OperationsServiceServer;
use crate::proto::api::v1::rooms_service_server::RoomsServiceServer;
use crate::proto::api::v1::schedulers_service_server::SchedulersServiceServer;
use crate::rpc::Services;
pub use crate::rpc::{Auth, Route, additional_bindings, route_table};

/// The gRPC health service, always served.
pub const HEALTH_SERVICE: &str = "grpc.health.v1.Health";
/// The gRPC reflection services, always served (v1alpha for older clients).
pub const REFLECTION_SERVICES: [&str; 2] = [
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// `SchedulersService` and `OperationsService`, with health and reflection,
/// for the management port.
pub async fn management_routes(backend: Arc<dyn Backend>, config: &ApiConfig) -> Router {
    build(backend, config, Serve::Management).await
}

/// `RoomsService`, with health and reflection, for the rooms port.
///
/// `RoomsService.ListRooms` (maestro's extension) and `AllocateRoom` are
/// called by operators and matchmakers rather than rooms: they take a
/// management token, as their HTTP routes do.
pub async fn rooms_routes(backend: Arc<dyn Backend>, config: &ApiConfig) -> Router {
    build(backend, config, Serve::Rooms).await
}

/// Every service, for one port serving both APIs (see [`crate::router`]).
pub async fn routes(backend: Arc<dyn Backend>, config: &ApiConfig) -> Router {
    build(backend, config, Serve::Both).await
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Serve {
    Management,
    Rooms,
    Both,
}

async fn build(backend: Arc<dyn Backend>, config: &ApiConfig, serve: Serve) -> Router {
    let services = Services::new(backend, config);
    let (reporter, health) = tonic_health::server::health_reporter();
    let mut names: Vec<&'static str> = vec![HEALTH_SERVICE];
    // No fallback: the HTTP router this is merged into has one.
    let mut routes = Routes::from(Router::new());
    if serve != Serve::Rooms {
        let schedulers = SchedulersServiceServer::new(services.clone());
        let operations = OperationsServiceServer::new(services.clone());
        serving(&reporter, &mut names, &schedulers).await;
        serving(&reporter, &mut names, &operations).await;
        routes = routes.add_service(schedulers).add_service(operations);
    }
    if serve != Serve::Management {
        let rooms = RoomsServiceServer::new(services);
        serving(&reporter, &mut names, &rooms).await;
        routes = routes.add_service(rooms);
    }
    routes = routes.add_service(health);
    for name in REFLECTION_SERVICES {
        names.push(name);
    }
    // The descriptor sets are compiled in and checked by the tests: building
    // cannot fail at run time, and if it ever did the API would still be
    // served, only without reflection.
    if let Ok(v1) = reflection(&names).build_v1() {
        routes = routes.add_service(v1);
    }
    if let Ok(v1alpha) = reflection(&names).build_v1alpha() {
        routes = routes.add_service(v1alpha);
    }
    routes.into_axum_router()
}

/// Reports `service` SERVING and lists it for reflection.
async fn serving<S: NamedService>(
    reporter: &HealthReporter,
    names: &mut Vec<&'static str>,
    _service: &S,
) {
    reporter.set_serving::<S>().await;
    names.push(S::NAME);
}

/// Reflection over our protos and the health proto, listing only `names`:
/// what this port serves, not every service the descriptor set describes
/// (the forwarder and worker protocols are clients' or another port's).
fn reflection(names: &[&'static str]) -> tonic_reflection::server::Builder<'static> {
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
    for name in names {
        builder = builder.with_service_name(*name);
    }
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflection_builds() {
        let names = [HEALTH_SERVICE, "api.v1.SchedulersService"];
        assert!(reflection(&names).build_v1().is_ok());
        assert!(reflection(&names).build_v1alpha().is_ok());
    }
}
