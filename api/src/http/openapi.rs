//! The OpenAPI 3 description of both APIs, served at `GET /openapi.json`.
//!
//! Written by hand next to the wire types it describes; the route tests
//! check that every served route appears here.

use serde_json::{Map, Value, json};

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn string() -> Value {
    json!({ "type": "string" })
}

fn int32() -> Value {
    json!({ "type": "integer", "format": "int32" })
}

fn uint32() -> Value {
    json!({ "type": "integer", "format": "uint32" })
}

/// protojson writes int64 as a string and reads either.
fn int64() -> Value {
    json!({ "type": "string", "format": "int64", "description": "int64: written as a string; a number or a string is accepted" })
}

fn boolean() -> Value {
    json!({ "type": "boolean" })
}

fn number() -> Value {
    json!({ "type": "number" })
}

fn timestamp() -> Value {
    json!({ "type": "string", "format": "date-time" })
}

fn duration() -> Value {
    json!({ "type": "string", "example": "100s", "description": "google.protobuf.Duration in whole seconds; a number of seconds is accepted too" })
}

fn array(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}

fn string_map() -> Value {
    json!({ "type": "object", "additionalProperties": { "type": "string" } })
}

fn any_object() -> Value {
    json!({ "type": "object", "additionalProperties": true })
}

/// An object schema from `(name, schema)` pairs.
fn object(properties: &[(&str, Value)]) -> Value {
    let props: Map<String, Value> = properties
        .iter()
        .map(|(name, schema)| (name.to_string(), schema.clone()))
        .collect();
    json!({ "type": "object", "properties": props })
}

fn schemas() -> Value {
    let port_range = object(&[("start", int32()), ("end", int32())]);
    let resources = object(&[("memory", string()), ("cpu", string())]);
    let container_port = object(&[
        ("name", string()),
        ("protocol", string()),
        ("port", int32()),
        ("hostPort", int32()),
        ("hostPortRange", reference("PortRange")),
    ]);
    let environment = object(&[
        ("name", string()),
        ("value", string()),
        (
            "valueFrom",
            object(&[
                ("fieldRef", object(&[("fieldPath", string())])),
                (
                    "secretKeyRef",
                    object(&[("name", string()), ("key", string())]),
                ),
            ]),
        ),
    ]);
    let container = object(&[
        ("name", string()),
        ("image", string()),
        ("imagePullPolicy", string()),
        ("command", array(string())),
        ("environment", array(reference("ContainerEnvironment"))),
        ("requests", reference("ContainerResources")),
        ("limits", reference("ContainerResources")),
        ("ports", array(reference("ContainerPort"))),
    ]);
    let spec = object(&[
        ("version", string()),
        ("terminationGracePeriod", duration()),
        ("containers", array(reference("Container"))),
        ("toleration", string()),
        ("affinity", string()),
        ("restartPolicy", string()),
    ]);
    let policy = object(&[
        (
            "type",
            json!({ "type": "string", "enum": ["roomOccupancy", "fixedBuffer"] }),
        ),
        (
            "parameters",
            object(&[
                (
                    "roomOccupancy",
                    object(&[("readyTarget", number()), ("downThreshold", number())]),
                ),
                ("fixedBuffer", object(&[("amount", int32())])),
            ]),
        ),
    ]);
    let autoscaling = object(&[
        ("enabled", boolean()),
        ("min", int32()),
        ("max", int32()),
        ("policy", reference("AutoscalingPolicy")),
        ("cooldown", int32()),
    ]);
    let forwarder = object(&[
        ("name", string()),
        ("enable", boolean()),
        ("type", json!({ "type": "string", "enum": ["gRPC"] })),
        ("address", string()),
        (
            "options",
            object(&[("timeout", int64()), ("metadata", any_object())]),
        ),
    ]);
    let match_allocation = object(&[("maxMatches", int32())]);
    let scheduler_fields = [
        ("name", string()),
        ("game", string()),
        ("portRange", reference("PortRange")),
        ("maxSurge", string()),
        ("roomsReplicas", int32()),
        ("spec", reference("Spec")),
        ("autoscaling", reference("Autoscaling")),
        ("forwarders", array(reference("Forwarder"))),
        ("annotations", string_map()),
        ("labels", string_map()),
        ("matchAllocation", reference("MatchAllocation")),
    ];
    let mut scheduler_out = scheduler_fields.to_vec();
    scheduler_out.extend([("state", string()), ("createdAt", timestamp())]);
    let optional_container = object(&[
        ("name", string()),
        ("image", string()),
        ("imagePullPolicy", string()),
        ("command", array(string())),
        ("environment", array(reference("ContainerEnvironment"))),
        ("requests", reference("ContainerResources")),
        ("limits", reference("ContainerResources")),
        ("ports", array(reference("ContainerPort"))),
    ]);
    let patch = object(&[
        (
            "spec",
            object(&[
                ("terminationGracePeriod", duration()),
                ("containers", array(optional_container)),
                ("toleration", string()),
                ("affinity", string()),
            ]),
        ),
        ("portRange", reference("PortRange")),
        ("maxSurge", string()),
        ("roomsReplicas", int32()),
        (
            "autoscaling",
            object(&[
                ("enabled", boolean()),
                ("min", int32()),
                ("max", int32()),
                ("policy", reference("AutoscalingPolicy")),
                ("cooldown", int32()),
            ]),
        ),
        ("forwarders", array(reference("Forwarder"))),
        ("annotations", string_map()),
        ("labels", string_map()),
        ("matchAllocation", reference("MatchAllocation")),
    ]);
    let without_spec = object(&[
        ("name", string()),
        ("game", string()),
        ("state", string()),
        ("version", string()),
        ("portRange", reference("PortRange")),
        ("createdAt", timestamp()),
        ("maxSurge", string()),
        ("roomsReplicas", int32()),
        ("matchAllocation", reference("MatchAllocation")),
    ]);
    let info = object(&[
        ("name", string()),
        ("game", string()),
        ("state", string()),
        ("roomsReplicas", int32()),
        ("roomsReady", int32()),
        ("roomsOccupied", int32()),
        ("roomsPending", int32()),
        ("roomsTerminating", int32()),
        (
            "autoscaling",
            object(&[
                ("enabled", boolean()),
                ("min", int32()),
                ("max", int32()),
                ("cooldown", int32()),
            ]),
        ),
        ("matchAllocation", reference("MatchAllocation")),
    ]);
    let version = object(&[
        ("version", string()),
        ("isActive", boolean()),
        ("createdAt", timestamp()),
    ]);
    let item_fields = [
        ("id", string()),
        (
            "status",
            json!({ "type": "string", "enum": ["pending", "in_progress", "canceled", "finished", "evicted", "error"] }),
        ),
        ("definitionName", string()),
        ("lease", object(&[("ttl", timestamp())])),
        ("schedulerName", string()),
        ("createdAt", timestamp()),
    ];
    let mut operation = item_fields.to_vec();
    operation.extend([
        ("input", any_object()),
        (
            "executionHistory",
            array(object(&[("createdAt", timestamp()), ("event", string())])),
        ),
    ]);
    let port = object(&[
        ("name", string()),
        ("protocol", string()),
        ("port", int64()),
    ]);
    let room_status = json!({ "type": "string", "enum": ["pending", "unready", "ready", "occupied", "terminating", "error", "terminated", "active", "allocated"] });
    let ping_status =
        json!({ "type": "string", "enum": ["ready", "occupied", "terminating", "terminated"] });
    json!({
        "Error": object(&[("code", int32()), ("message", string()), ("details", array(any_object()))]),
        "PortRange": port_range,
        "ContainerResources": resources,
        "ContainerPort": container_port,
        "ContainerEnvironment": environment,
        "Container": container,
        "Spec": spec,
        "AutoscalingPolicy": policy,
        "Autoscaling": autoscaling,
        "Forwarder": forwarder,
        "MatchAllocation": match_allocation,
        "SchedulerRequest": object(&scheduler_fields),
        "Scheduler": object(&scheduler_out),
        "SchedulerWithoutSpec": without_spec,
        "SchedulerInfo": info,
        "SchedulerVersion": version,
        "PatchSchedulerRequest": patch,
        "SwitchActiveVersionRequest": object(&[("version", string())]),
        "SchedulerResponse": object(&[("scheduler", reference("Scheduler"))]),
        "ListSchedulersResponse": object(&[("schedulers", array(reference("SchedulerWithoutSpec")))]),
        "GetSchedulersInfoResponse": object(&[("schedulers", array(reference("SchedulerInfo")))]),
        "GetSchedulerVersionsResponse": object(&[("versions", array(reference("SchedulerVersion")))]),
        "OperationIdResponse": object(&[("operationId", string())]),
        "ListOperationItem": object(&item_fields),
        "Operation": object(&operation),
        "ListOperationsResponse": object(&[
            ("page", uint32()),
            ("pageSize", uint32()),
            ("total", uint32()),
            ("operations", array(reference("ListOperationItem"))),
        ]),
        "GetOperationResponse": object(&[("operation", reference("Operation"))]),
        "CancelOperationResponse": object(&[]),
        "RoomItem": object(&[
            ("id", string()),
            ("status", room_status),
            ("version", string()),
            ("runningMatches", int32()),
            ("lastPingAt", timestamp()),
            ("address", object(&[("host", string()), ("ports", array(reference("Port")))])),
        ]),
        "ListRoomsResponse": object(&[
            ("page", uint32()),
            ("pageSize", uint32()),
            ("total", uint32()),
            ("rooms", array(reference("RoomItem"))),
        ]),
        "PingRequest": object(&[
            ("metadata", any_object()),
            ("status", ping_status.clone()),
            ("timestamp", int64()),
            ("runningMatches", int64()),
        ]),
        "PingResponse": object(&[("success", boolean())]),
        "RoomEventRequest": object(&[("metadata", any_object()), ("event", string()), ("timestamp", int64())]),
        "PlayerEventRequest": object(&[
            ("metadata", any_object()),
            ("event", json!({ "type": "string", "enum": ["playerJoin", "playerLeft"] })),
            ("timestamp", int64()),
        ]),
        "EventResponse": object(&[("success", boolean()), ("message", string())]),
        "StatusRequest": object(&[
            ("metadata", any_object()),
            ("status", ping_status),
            ("timestamp", int64()),
            ("runningMatches", int64()),
        ]),
        "StatusResponse": object(&[("success", boolean())]),
        "Port": port,
        "RoomAddressResponse": object(&[
            ("ports", array(reference("Port"))),
            ("host", string()),
            ("ipv6Label", string()),
        ]),
        "AllocateRequest": object(&[("idempotencyKey", string())]),
        "AllocateResponse": object(&[
            ("roomId", string()),
            ("success", boolean()),
            ("message", string()),
            ("ports", array(reference("Port"))),
            ("host", string()),
        ]),
    })
}

fn path_param(name: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } })
}

fn query_param(name: &str, schema: Value, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false, "schema": schema, "description": description })
}

/// One operation: parameters, optional request body, the 200 answer and
/// the error answer, all by schema name.
fn op(
    id: &str,
    tag: &str,
    summary: &str,
    parameters: Vec<Value>,
    body: Option<&str>,
    response: &str,
) -> Value {
    let security = if tag == "rooms" {
        json!([{ "roomToken": [] }])
    } else {
        json!([{ "managementToken": [] }])
    };
    let mut operation = json!({
        "operationId": id,
        "tags": [tag],
        "summary": summary,
        "parameters": parameters,
        "security": security,
        "responses": {
            "200": {
                "description": "Success",
                "content": { "application/json": { "schema": reference(response) } }
            },
            "default": {
                "description": "An error, with the gRPC code in `code`",
                "content": { "application/json": { "schema": reference("Error") } }
            }
        }
    });
    if let (Some(body), Some(map)) = (body, operation.as_object_mut()) {
        map.insert(
            "requestBody".to_string(),
            json!({
                "required": false,
                "content": { "application/json": { "schema": reference(body) } }
            }),
        );
    }
    operation
}

const DESCRIPTION: &str = "Maestro Next compatible APIs. `/schedulers…` is the management API, \
    `/scheduler/…` the rooms API; they may be served on separate listeners. JSON follows \
    grpc-gateway: camelCase or snake_case input, int64 as strings, zero values present. \
    Errors are `{code, message, details}` with the gRPC code.";

const ROOM_TOKEN: &str = "Lowercase hex HMAC-SHA256 of `<scheduler>/<room>` under the rooms \
    secret (the pod's MAESTRO_ROOM_TOKEN); not required when no secret is configured";

/// The document. Built on every call (it is requested rarely).
pub fn openapi_document() -> Value {
    let name = || path_param("name");
    let room_params = || vec![path_param("scheduler"), path_param("room")];
    let paging = |default: u32, max: u32| {
        vec![
            query_param("page", uint32(), "Page number, from 1 (default 1)"),
            query_param(
                "per_page",
                uint32(),
                &format!("Page size, 1 to {max} (default {default}); also `perPage`"),
            ),
        ]
    };
    let mut operations_params = vec![
        name(),
        json!({ "name": "stage", "in": "query", "required": true,
                "schema": { "type": "string", "enum": ["pending", "active", "final"] } }),
        query_param(
            "order_by",
            string(),
            "`createdAt [asc|desc]` (default `createdAt desc`); also `orderBy`",
        ),
    ];
    operations_params.extend(paging(15, 100));
    let mut rooms_params = vec![
        name(),
        query_param("status", string(), "Only rooms in this status"),
    ];
    rooms_params.extend(paging(100, 1000));

    let paths = json!({
        "/schedulers": {
            "get": op("ListSchedulers", "schedulers", "List schedulers (active versions)", vec![
                query_param("name", string(), "Exact name"),
                query_param("game", string(), "Exact game"),
                query_param("version", string(), "Exact active version"),
            ], None, "ListSchedulersResponse"),
            "post": op("CreateScheduler", "schedulers", "Create a scheduler", vec![], Some("SchedulerRequest"), "SchedulerResponse"),
        },
        "/schedulers/info": {
            "get": op("GetSchedulersInfo", "schedulers", "Schedulers with their room counts",
                vec![query_param("game", string(), "Only this game's schedulers")], None, "GetSchedulersInfoResponse"),
        },
        "/schedulers/{name}": {
            "get": op("GetScheduler", "schedulers", "The active version, or the given one",
                vec![name(), query_param("version", string(), "A stored version")], None, "SchedulerResponse"),
            "post": op("NewSchedulerVersion", "schedulers", "Enqueue a new version", vec![name()], Some("SchedulerRequest"), "OperationIdResponse"),
            "patch": op("PatchScheduler", "schedulers", "Enqueue a new version from the active one with these fields changed", vec![name()], Some("PatchSchedulerRequest"), "OperationIdResponse"),
            "put": op("SwitchActiveVersion", "schedulers", "Enqueue a switch of the active version", vec![name()], Some("SwitchActiveVersionRequest"), "OperationIdResponse"),
            "delete": op("DeleteScheduler", "schedulers", "Enqueue the scheduler's deletion", vec![name()], None, "OperationIdResponse"),
        },
        "/schedulers/{name}/versions": {
            "get": op("GetSchedulerVersions", "schedulers", "Stored versions, newest first", vec![name()], None, "GetSchedulerVersionsResponse"),
        },
        "/schedulers/{name}/operations": {
            "get": op("ListOperations", "operations", "Operations in one stage", operations_params, None, "ListOperationsResponse"),
        },
        "/schedulers/{name}/operations/{id}": {
            "get": op("GetOperation", "operations", "One operation with its input and history",
                vec![name(), path_param("id")], None, "GetOperationResponse"),
        },
        "/schedulers/{name}/operations/{id}/cancel": {
            "post": op("CancelOperation", "operations", "Cancel a pending or in-progress operation (done when answered)",
                vec![name(), path_param("id")], None, "CancelOperationResponse"),
        },
        "/schedulers/{name}/rooms": {
            "get": op("ListRooms", "schedulers", "The scheduler's rooms by id (maestro only)", rooms_params, None, "ListRoomsResponse"),
        },
        "/scheduler/{scheduler}/rooms/{room}/ping": {
            "put": op("UpdateRoomWithPing", "rooms", "A room's ping", room_params(), Some("PingRequest"), "PingResponse"),
            "post": op("UpdateRoomWithPingPost", "rooms", "A room's ping (older clients)", room_params(), Some("PingRequest"), "PingResponse"),
        },
        "/scheduler/{scheduler}/rooms/{room}/roomevent": {
            "post": op("ForwardRoomEvent", "rooms", "A room event for the forwarders", room_params(), Some("RoomEventRequest"), "EventResponse"),
        },
        "/scheduler/{scheduler}/rooms/{room}/playerevent": {
            "post": op("ForwardPlayerEvent", "rooms", "A player event for the forwarders", room_params(), Some("PlayerEventRequest"), "EventResponse"),
        },
        "/scheduler/{scheduler}/rooms/{room}/status": {
            "put": op("UpdateRoomStatus", "rooms", "Deprecated (Maestro v9): accepted and ignored", room_params(), Some("StatusRequest"), "StatusResponse"),
        },
        "/scheduler/{scheduler}/rooms/{room}/address": {
            "get": op("GetRoomAddress", "rooms", "Deprecated: the room's host and ports", room_params(), None, "RoomAddressResponse"),
        },
        "/scheduler/{scheduler}/rooms/allocate": {
            "post": op("AllocateRoom", "allocation", "Allocate a ready room; optional `Idempotency-Key` header",
                vec![path_param("scheduler")], Some("AllocateRequest"), "AllocateResponse"),
        },
    });

    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "maestro",
            "version": env!("CARGO_PKG_VERSION"),
            "description": DESCRIPTION
        },
        "tags": [
            { "name": "schedulers" },
            { "name": "operations" },
            { "name": "rooms" },
            { "name": "allocation" }
        ],
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "managementToken": {
                    "type": "http", "scheme": "bearer",
                    "description": "One of the configured management tokens; not required when none is configured"
                },
                "roomToken": {
                    "type": "http", "scheme": "bearer",
                    "description": ROOM_TOKEN
                }
            }
        }
    })
}
