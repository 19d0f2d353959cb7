//! The JSON wire format of Maestro Next's APIs (grpc-gateway over the
//! protos in `proto/api/v1`), as serde types with conversions to and from
//! the engine's model. The engine's types stay free of serialisation; this
//! module is the only place that knows field names.
//!
//! Rules (protojson as grpc-gateway configures it): lowerCamelCase names on
//! output, zero values written, unset proto3 `optional` fields left out;
//! camelCase or snake_case accepted on input, unknown fields ignored,
//! numbers accepted as strings, int64 written as strings, durations as
//! `"100s"` and timestamps as RFC 3339.

pub(crate) mod codec;
pub mod operation;
pub mod room;
pub mod scheduler;
pub mod time;

pub use operation::{
    CancelOperationResponse, GetOperationResponse, Lease, ListOperationItem,
    ListOperationsResponse, Operation, OperationEvent, definition_input,
};
pub use room::{
    AllocateRequest, AllocateResponse, EventRequest, EventResponse, ListRoomsResponse, PingRequest,
    PingRequestError, PingResponse, Port, RoomAddress, RoomAddressResponse, RoomItem,
    StatusResponse,
};
pub use scheduler::{
    Autoscaling, AutoscalingInfo, AutoscalingPolicy, Container, ContainerEnvironment,
    ContainerEnvironmentValueFrom, ContainerEnvironmentValueFromFieldRef,
    ContainerEnvironmentValueFromSecretKeyRef, ContainerPort, ContainerResources, FixedBuffer,
    Forwarder, ForwarderOptions, GetSchedulerVersionsResponse, GetSchedulersInfoResponse,
    ListSchedulersResponse, MatchAllocation, OperationIdResponse, OptionalAutoscaling,
    OptionalContainer, OptionalSpec, PatchSchedulerRequest, PolicyParameters, PortRange,
    RoomOccupancy, Scheduler, SchedulerInfo, SchedulerRequest, SchedulerResponse, SchedulerVersion,
    SchedulerWithoutSpec, Spec, SwitchActiveVersionRequest,
};
