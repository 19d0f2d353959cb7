//! The API's one table: every RPC of `api.v1`, with the HTTP route that
//! serves it (upstream's `google.api.http` annotations), who may call it,
//! and the typed service function (`crate::service`) that answers it.
//!
//! Each `rpcs!` entry is the one place an RPC is mapped. It generates the
//! tonic trait impl on [`Services`] (so an RPC without an entry does not
//! compile), the HTTP endpoint builder (`crate::http` registers it), and
//! the table entry that tests and the OpenAPI document read. gRPC and HTTP
//! are two thin adapters over the same function: neither goes through the
//! other, and both check the caller with the same `auth::check`.

use std::sync::Arc;

use axum::http::{HeaderMap, Method};
use axum::routing::MethodRouter;

use crate::auth::{self, ApiConfig};
use crate::backend::Backend;
use crate::error::ApiError;
use crate::http::{AppState, PathValues, endpoint};
use crate::proto::api::v1;
use crate::service;

/// Who may call a route (see `crate::auth`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// Any management token, when some are configured.
    Management,
    /// The room's own token, when a rooms secret is configured: the routes
    /// of `RoomsService` that name a room.
    Room,
}

/// The HTTP route that serves one RPC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The fully qualified service, e.g. `api.v1.SchedulersService`.
    pub service: &'static str,
    /// The RPC's name in the proto, e.g. `ListSchedulers`.
    pub method: &'static str,
    pub http_method: Method,
    /// The path; `{field}` stands for the request field of that proto name.
    pub path: &'static str,
    /// The request fields the path sets, in the order the path names them.
    pub path_fields: &'static [&'static str],
    /// grpc-gateway's `body: "*"`: the fields not in the path are the JSON
    /// body. Without it they are query parameters.
    pub body: bool,
    pub auth: Auth,
}

/// What a service function is called with besides its message: the
/// backend, and the caller's headers (HTTP headers, or gRPC metadata as
/// headers), from which allocate reads `Idempotency-Key`.
pub(crate) struct Ctx {
    pub backend: Arc<dyn Backend>,
    pub headers: HeaderMap,
}

/// The gRPC services: one value serves all three.
#[derive(Clone)]
pub(crate) struct Services {
    backend: Arc<dyn Backend>,
    config: Arc<ApiConfig>,
}

impl Services {
    pub(crate) fn new(backend: Arc<dyn Backend>, config: &ApiConfig) -> Services {
        Services {
            backend,
            config: Arc::new(config.clone()),
        }
    }

    /// Checks a gRPC call: path fields must be set (an empty one would name
    /// another HTTP route, and proto3 cannot tell it from an unset one), and
    /// the caller must hold the route's token.
    fn admit(
        &self,
        auth: Auth,
        headers: &HeaderMap,
        path_fields: &[(&str, &str)],
    ) -> Result<(), ApiError> {
        if let Some((name, _)) = path_fields.iter().find(|(_, value)| value.is_empty()) {
            return Err(ApiError::invalid_argument(format!("{name}: is required")));
        }
        auth::check(&self.config, auth, headers, path_fields)
    }

    fn ctx(&self, headers: HeaderMap) -> Ctx {
        Ctx {
            backend: self.backend.clone(),
            headers,
        }
    }
}

/// An HTTP endpoint for one route of the table.
pub(crate) type EndpointBuilder = fn(&'static Route) -> MethodRouter<AppState>;

macro_rules! rpcs {
    (
        $table:ident, $endpoints:ident, $server:path, $service:literal {
            $( $rpc:ident => $method:ident($request:ident) -> $response:ident,
               $verb:ident $path:literal [$($field:ident),*] $body:ident $auth:ident ; )*
        }
    ) => {
        /// Every RPC of the service with the route that serves it.
        pub(crate) static $table: &[Route] = &[
            $( Route {
                service: $service,
                method: stringify!($rpc),
                http_method: Method::$verb,
                path: $path,
                path_fields: &[$( stringify!($field) ),*],
                body: rpcs!(@body $body),
                auth: Auth::$auth,
            } ),*
        ];

        /// The HTTP endpoint builders, in the table's order.
        pub(crate) static $endpoints: &[EndpointBuilder] = &[
            $( |route| endpoint(
                route,
                |_message: &mut v1::$request, _path: &mut PathValues| {
                    $( _message.$field = _path.remove(stringify!($field)).unwrap_or_default(); )*
                },
                service::$method,
            ) ),*
        ];

        #[tonic::async_trait]
        impl $server for Services {
            $(
                async fn $method(
                    &self,
                    request: tonic::Request<v1::$request>,
                ) -> Result<tonic::Response<v1::$response>, tonic::Status> {
                    let (metadata, _, message) = request.into_parts();
                    let headers = metadata.into_headers();
                    self.admit(
                        Auth::$auth,
                        &headers,
                        &[$( (stringify!($field), message.$field.as_str()) ),*],
                    )?;
                    let answer = service::$method(self.ctx(headers), message).await?;
                    Ok(tonic::Response::new(answer))
                }
            )*
        }
    };
    (@body body) => { true };
    (@body query) => { false };
}

rpcs!(SCHEDULERS, SCHEDULER_ENDPOINTS, v1::schedulers_service_server::SchedulersService, "api.v1.SchedulersService" {
    ListSchedulers => list_schedulers(ListSchedulersRequest) -> ListSchedulersResponse,
        GET "/schedulers" [] query Management;
    GetScheduler => get_scheduler(GetSchedulerRequest) -> GetSchedulerResponse,
        GET "/schedulers/{scheduler_name}" [scheduler_name] query Management;
    GetSchedulerVersions => get_scheduler_versions(GetSchedulerVersionsRequest) -> GetSchedulerVersionsResponse,
        GET "/schedulers/{scheduler_name}/versions" [scheduler_name] query Management;
    CreateScheduler => create_scheduler(CreateSchedulerRequest) -> CreateSchedulerResponse,
        POST "/schedulers" [] body Management;
    NewSchedulerVersion => new_scheduler_version(NewSchedulerVersionRequest) -> NewSchedulerVersionResponse,
        POST "/schedulers/{name}" [name] body Management;
    PatchScheduler => patch_scheduler(PatchSchedulerRequest) -> PatchSchedulerResponse,
        PATCH "/schedulers/{name}" [name] body Management;
    SwitchActiveVersion => switch_active_version(SwitchActiveVersionRequest) -> SwitchActiveVersionResponse,
        PUT "/schedulers/{scheduler_name}" [scheduler_name] body Management;
    GetSchedulersInfo => get_schedulers_info(GetSchedulersInfoRequest) -> GetSchedulersInfoResponse,
        GET "/schedulers/info" [] query Management;
    DeleteScheduler => delete_scheduler(DeleteSchedulerRequest) -> DeleteSchedulerResponse,
        DELETE "/schedulers/{scheduler_name}" [scheduler_name] query Management;
});

rpcs!(OPERATIONS, OPERATION_ENDPOINTS, v1::operations_service_server::OperationsService, "api.v1.OperationsService" {
    ListOperations => list_operations(ListOperationsRequest) -> ListOperationsResponse,
        GET "/schedulers/{scheduler_name}/operations" [scheduler_name] query Management;
    CancelOperation => cancel_operation(CancelOperationRequest) -> CancelOperationResponse,
        POST "/schedulers/{scheduler_name}/operations/{operation_id}/cancel" [scheduler_name, operation_id] query Management;
    GetOperation => get_operation(GetOperationRequest) -> GetOperationResponse,
        GET "/schedulers/{scheduler_name}/operations/{operation_id}" [scheduler_name, operation_id] query Management;
});

rpcs!(ROOMS, ROOM_ENDPOINTS, v1::rooms_service_server::RoomsService, "api.v1.RoomsService" {
    UpdateRoomWithPing => update_room_with_ping(UpdateRoomWithPingRequest) -> UpdateRoomWithPingResponse,
        PUT "/scheduler/{scheduler_name}/rooms/{room_name}/ping" [scheduler_name, room_name] body Room;
    ForwardRoomEvent => forward_room_event(ForwardRoomEventRequest) -> ForwardRoomEventResponse,
        POST "/scheduler/{scheduler_name}/rooms/{room_name}/roomevent" [scheduler_name, room_name] body Room;
    ForwardPlayerEvent => forward_player_event(ForwardPlayerEventRequest) -> ForwardPlayerEventResponse,
        POST "/scheduler/{scheduler_name}/rooms/{room_name}/playerevent" [scheduler_name, room_name] body Room;
    UpdateRoomStatus => update_room_status(UpdateRoomStatusRequest) -> UpdateRoomStatusResponse,
        PUT "/scheduler/{scheduler_name}/rooms/{room_name}/status" [scheduler_name, room_name] body Room;
    GetRoomAddress => get_room_address(GetRoomAddressRequest) -> GetRoomAddressResponse,
        GET "/scheduler/{scheduler_name}/rooms/{room_name}/address" [scheduler_name, room_name] query Room;
    // A matchmaker, not a room, allocates; an operator lists rooms.
    AllocateRoom => allocate_room(AllocateRoomRequest) -> AllocateRoomResponse,
        POST "/scheduler/{scheduler_name}/rooms/allocate" [scheduler_name] body Management;
    ListRooms => list_rooms(ListRoomsRequest) -> ListRoomsResponse,
        GET "/schedulers/{scheduler_name}/rooms" [scheduler_name] query Management;
});

/// Routes the HTTP API serves besides the table's, as grpc-gateway's
/// `additional_bindings`: each is served by its RPC's endpoint, and the
/// OpenAPI document lists it.
pub(crate) static ADDITIONAL_BINDINGS: &[Route] = &[
    // Upstream's older protos bound the ping to POST; rooms built against
    // them still send it.
    Route {
        service: "api.v1.RoomsService",
        method: "UpdateRoomWithPing",
        http_method: Method::POST,
        path: "/scheduler/{scheduler_name}/rooms/{room_name}/ping",
        path_fields: &["scheduler_name", "room_name"],
        body: true,
        auth: Auth::Room,
    },
];

/// Every RPC of `api.v1` with the HTTP route that serves it.
pub fn route_table() -> impl Iterator<Item = &'static Route> {
    SCHEDULERS.iter().chain(OPERATIONS).chain(ROOMS)
}

/// Routes the HTTP API serves besides [`route_table`]'s, each for an RPC of
/// the table (grpc-gateway's `additional_bindings`).
pub fn additional_bindings() -> impl Iterator<Item = &'static Route> {
    ADDITIONAL_BINDINGS.iter()
}

/// Every HTTP route with the builder of its endpoint: the table's, then
/// the additional bindings, each served by its RPC's builder.
pub(crate) fn http_endpoints() -> Vec<(&'static Route, EndpointBuilder)> {
    let table: Vec<(&'static Route, EndpointBuilder)> = SCHEDULERS
        .iter()
        .zip(SCHEDULER_ENDPOINTS.iter().copied())
        .chain(OPERATIONS.iter().zip(OPERATION_ENDPOINTS.iter().copied()))
        .chain(ROOMS.iter().zip(ROOM_ENDPOINTS.iter().copied()))
        .collect();
    let extra: Vec<(&'static Route, EndpointBuilder)> = ADDITIONAL_BINDINGS
        .iter()
        .filter_map(|binding| {
            table
                .iter()
                .find(|(route, _)| {
                    route.service == binding.service && route.method == binding.method
                })
                .map(|(_, build)| (binding, *build))
        })
        .collect();
    table.into_iter().chain(extra).collect()
}

/// The path as the document names it: the template of the first route of
/// the same shape. OpenAPI allows one path per shape, and routes name
/// their parameters after their own request's fields
/// (`/schedulers/{scheduler_name}` and `/schedulers/{name}` are one path).
pub(crate) fn canonical_path(routes: &[&Route], template: &str) -> String {
    let shape = |t: &str| -> Vec<String> {
        t.split('/')
            .map(|s| {
                if s.starts_with('{') {
                    "{}".into()
                } else {
                    s.into()
                }
            })
            .collect()
    };
    let wanted = shape(template);
    routes
        .iter()
        .map(|r| r.path)
        .find(|p| shape(p) == wanted)
        .unwrap_or(template)
        .to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use prost::Message;

    use super::*;
    use crate::proto::FILE_DESCRIPTOR_SET;

    /// Every RPC the protos declare in `api.v1` has exactly one route, and
    /// the table names no RPC the protos lack.
    #[test]
    fn every_rpc_has_a_route() {
        let fds = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap();
        let mut declared = BTreeSet::new();
        for file in fds.file.iter().filter(|f| f.package() == "api.v1") {
            for service in &file.service {
                for method in &service.method {
                    declared.insert(format!("api.v1.{}/{}", service.name(), method.name()));
                }
            }
        }
        let mapped: Vec<String> = route_table()
            .map(|r| format!("{}/{}", r.service, r.method))
            .collect();
        let mapped_set: BTreeSet<String> = mapped.iter().cloned().collect();
        assert_eq!(mapped.len(), mapped_set.len(), "an RPC is mapped twice");
        assert_eq!(declared, mapped_set);
        assert_eq!(declared.len(), 19);
        // Every route and binding has an endpoint.
        assert_eq!(
            http_endpoints().len(),
            route_table().count() + additional_bindings().count()
        );
    }

    /// Path templates name fields the request message has, and a room's
    /// token is checked only where the path names the room.
    #[test]
    fn path_fields_exist() {
        let fds = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap();
        let files: Vec<_> = fds
            .file
            .iter()
            .filter(|f| f.package() == "api.v1")
            .collect();
        for route in route_table().chain(additional_bindings()) {
            let method = files
                .iter()
                .flat_map(|f| &f.service)
                .filter(|s| route.service.ends_with(s.name()))
                .flat_map(|s| &s.method)
                .find(|m| m.name() == route.method)
                .unwrap();
            let input = method.input_type().trim_start_matches(".api.v1.");
            let message = files
                .iter()
                .flat_map(|f| &f.message_type)
                .find(|m| m.name() == input)
                .unwrap();
            let mut rest = route.path;
            let mut named = Vec::new();
            while let Some(open) = rest.find('{') {
                let close = open + rest[open..].find('}').unwrap();
                let field = &rest[open + 1..close];
                assert!(
                    message.field.iter().any(|f| f.name() == field),
                    "{}: {input} has no field {field}",
                    route.path
                );
                named.push(field);
                rest = &rest[close + 1..];
            }
            assert_eq!(named, route.path_fields, "{}", route.path);
            assert_eq!(
                route.auth == Auth::Room,
                route.path.contains("{room_name}"),
                "{}",
                route.path
            );
        }
    }
}
