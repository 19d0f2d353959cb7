//! The route table and the three services. Each `service!` block is the one
//! place an RPC is mapped: it generates the tonic trait impl on [`Gateway`]
//! (so an RPC without a mapping does not compile) and the table entry that
//! lists it (so tests and docs see exactly what is served).

use axum::http::Method;

use super::gateway::{Gateway, Route};
use crate::proto::api::v1;

macro_rules! service {
    (
        $table:ident, $server:path, $service:literal {
            $( $rpc:literal => $method:ident($request:ident) -> $response:ident,
               $verb:ident $path:literal $(, $body:ident)? ; )*
        }
    ) => {
        /// Every RPC of the service with the route that serves it.
        pub(crate) const $table: &[Route] = &[
            $( service!(@route $service, $rpc, $verb, $path $(, $body)?) ),*
        ];

        #[tonic::async_trait]
        impl $server for Gateway {
            $(
                async fn $method(
                    &self,
                    request: tonic::Request<v1::$request>,
                ) -> Result<tonic::Response<v1::$response>, tonic::Status> {
                    const ROUTE: Route = service!(@route $service, $rpc, $verb, $path $(, $body)?);
                    self.call(&ROUTE, request).await
                }
            )*
        }
    };
    (@route $service:literal, $rpc:literal, $verb:ident, $path:literal) => {
        Route { service: $service, method: $rpc, http_method: Method::$verb, path: $path, body: false }
    };
    (@route $service:literal, $rpc:literal, $verb:ident, $path:literal, body) => {
        Route { service: $service, method: $rpc, http_method: Method::$verb, path: $path, body: true }
    };
}

/// Routes the HTTP API serves besides the table's, as grpc-gateway's
/// `additional_bindings`: the gRPC gateway never takes them (an RPC has one
/// route), but the HTTP router serves them and the OpenAPI document lists them.
pub(crate) const ADDITIONAL_BINDINGS: &[Route] = &[
    // Upstream's older protos bound the ping to POST; rooms built against
    // them still send it.
    Route {
        service: "api.v1.RoomsService",
        method: "UpdateRoomWithPing",
        http_method: Method::POST,
        path: "/scheduler/{scheduler_name}/rooms/{room_name}/ping",
        body: true,
    },
];

service!(SCHEDULERS, v1::schedulers_service_server::SchedulersService, "api.v1.SchedulersService" {
    "ListSchedulers" => list_schedulers(ListSchedulersRequest) -> ListSchedulersResponse,
        GET "/schedulers";
    "GetScheduler" => get_scheduler(GetSchedulerRequest) -> GetSchedulerResponse,
        GET "/schedulers/{scheduler_name}";
    "GetSchedulerVersions" => get_scheduler_versions(GetSchedulerVersionsRequest) -> GetSchedulerVersionsResponse,
        GET "/schedulers/{scheduler_name}/versions";
    "CreateScheduler" => create_scheduler(CreateSchedulerRequest) -> CreateSchedulerResponse,
        POST "/schedulers", body;
    "NewSchedulerVersion" => new_scheduler_version(NewSchedulerVersionRequest) -> NewSchedulerVersionResponse,
        POST "/schedulers/{name}", body;
    "PatchScheduler" => patch_scheduler(PatchSchedulerRequest) -> PatchSchedulerResponse,
        PATCH "/schedulers/{name}", body;
    "SwitchActiveVersion" => switch_active_version(SwitchActiveVersionRequest) -> SwitchActiveVersionResponse,
        PUT "/schedulers/{scheduler_name}", body;
    "GetSchedulersInfo" => get_schedulers_info(GetSchedulersInfoRequest) -> GetSchedulersInfoResponse,
        GET "/schedulers/info";
    "DeleteScheduler" => delete_scheduler(DeleteSchedulerRequest) -> DeleteSchedulerResponse,
        DELETE "/schedulers/{scheduler_name}";
});

service!(OPERATIONS, v1::operations_service_server::OperationsService, "api.v1.OperationsService" {
    "ListOperations" => list_operations(ListOperationsRequest) -> ListOperationsResponse,
        GET "/schedulers/{scheduler_name}/operations";
    "CancelOperation" => cancel_operation(CancelOperationRequest) -> CancelOperationResponse,
        POST "/schedulers/{scheduler_name}/operations/{operation_id}/cancel";
    "GetOperation" => get_operation(GetOperationRequest) -> GetOperationResponse,
        GET "/schedulers/{scheduler_name}/operations/{operation_id}";
});

service!(ROOMS, v1::rooms_service_server::RoomsService, "api.v1.RoomsService" {
    "UpdateRoomWithPing" => update_room_with_ping(UpdateRoomWithPingRequest) -> UpdateRoomWithPingResponse,
        PUT "/scheduler/{scheduler_name}/rooms/{room_name}/ping", body;
    "ForwardRoomEvent" => forward_room_event(ForwardRoomEventRequest) -> ForwardRoomEventResponse,
        POST "/scheduler/{scheduler_name}/rooms/{room_name}/roomevent", body;
    "ForwardPlayerEvent" => forward_player_event(ForwardPlayerEventRequest) -> ForwardPlayerEventResponse,
        POST "/scheduler/{scheduler_name}/rooms/{room_name}/playerevent", body;
    "UpdateRoomStatus" => update_room_status(UpdateRoomStatusRequest) -> UpdateRoomStatusResponse,
        PUT "/scheduler/{scheduler_name}/rooms/{room_name}/status", body;
    "GetRoomAddress" => get_room_address(GetRoomAddressRequest) -> GetRoomAddressResponse,
        GET "/scheduler/{scheduler_name}/rooms/{room_name}/address";
    "AllocateRoom" => allocate_room(AllocateRoomRequest) -> AllocateRoomResponse,
        POST "/scheduler/{scheduler_name}/rooms/allocate", body;
    "ListRooms" => list_rooms(ListRoomsRequest) -> ListRoomsResponse,
        GET "/schedulers/{scheduler_name}/rooms";
});
