//! The OpenAPI 3.1 document of both APIs, served at `GET /openapi.json`.
//!
//! It is generated rather than written so that it cannot disagree with what
//! is served: the messages, their fields and their comments come from the
//! proto descriptors compiled into the crate ((`crate::proto::FILE_DESCRIPTOR_SET`)), the
//! operations from the route table the gRPC gateway serves through
//! ([`grpc::route_table`]), and each field's JSON type from protojson's
//! rules as grpc-gateway applies them (§2.0 of the reference): lowerCamelCase
//! names; 64-bit integers written as strings and read as a string or a
//! number; `Duration` as `"100s"`, `Timestamp` as RFC 3339, `Struct` as an
//! object; every field written, an unset message field as `null`, an unset
//! proto3 `optional` field left out.
//!
//! A message used both in requests and in answers has two schemas, `Name`
//! as written and `NameInput` as read, because protojson writes more
//! strictly than it reads (every field present, int64 as a string). A
//! request body without its path fields is `<Service><Rpc>Body`, as
//! grpc-gateway's own OpenAPI generator names it.
//!
//! What the protos cannot say sits in small tables here, each checked by
//! the tests against the descriptors and the route table: the values and
//! bounds the service checks ([`refinements`]), which routes can answer 409
//! or 429 ([`CONFLICTS`], [`LIMITED`]), and which take a room's token rather
//! than a management token ([`Auth`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

use maestro_engine::room::{PingStatus, RoomStatus};
use prost_types::FieldDescriptorProto;
use prost_types::field_descriptor_proto::{Label, Type};
use serde_json::{Map, Value, json};

use crate::auth::ApiConfig;
use crate::rpc::{self, Auth, Route};
use crate::schema::{self, Protos, SchemaError as DocumentError, has_presence};
use crate::service::{OPERATIONS_MAX_PER_PAGE, ROOMS_MAX_PER_PAGE};

/// The document for a router built with `config`: routes require a bearer
/// token only when `config` configures one for them.
pub fn openapi_document(config: &ApiConfig) -> Value {
    static BASE: OnceLock<Generated> = OnceLock::new();
    let base = BASE.get_or_init(|| {
        generate().unwrap_or_else(|e| {
            // The descriptors and the route table are compiled in, and the
            // tests generate the document: this is a build bug.
            panic!("cannot generate the OpenAPI document from the embedded protos: {e}")
        })
    });
    let mut document = base.document.clone();
    for (path, method, auth) in &base.operations {
        let scheme = match auth {
            Auth::Management if !config.management_tokens.is_empty() => MANAGEMENT_TOKEN,
            Auth::Room if config.rooms_secret.is_some() => ROOM_TOKEN,
            _ => continue,
        };
        let operation = document
            .get_mut("paths")
            .and_then(|paths| paths.get_mut(path))
            .and_then(|item| item.get_mut(method))
            .and_then(Value::as_object_mut);
        if let Some(operation) = operation {
            operation.insert("security".into(), json!([{ scheme: [] }]));
            if let Some(Value::Object(responses)) = operation.get_mut("responses") {
                responses.insert("401".into(), response_ref(401));
            }
        }
    }
    document
}

const MANAGEMENT_TOKEN: &str = "managementToken";
const ROOM_TOKEN: &str = "roomToken";

/// RPCs that can answer 409: AlreadyExists (a scheduler's name is taken, a
/// patch changes nothing) or Aborted (the operation is over).
pub(crate) const CONFLICTS: &[&str] = &["CreateScheduler", "PatchScheduler", "CancelOperation"];

/// RPCs that can answer 429 (ResourceExhausted): those that add a
/// scheduler or enqueue an operation, against maestro's limits.
pub(crate) const LIMITED: &[&str] = &[
    "CreateScheduler",
    "NewSchedulerVersion",
    "PatchScheduler",
    "SwitchActiveVersion",
    "DeleteScheduler",
];

/// The error answers, by HTTP status: the name of their entry in
/// `components.responses` and what they mean.
const ERRORS: &[(u16, &str, &str)] = &[
    (
        400,
        "BadRequest",
        "InvalidArgument or FailedPrecondition: a malformed body or parameter, or a \
         request the service refuses as it stands",
    ),
    (
        401,
        "Unauthorized",
        "Unauthenticated: the bearer token is missing or wrong",
    ),
    (
        404,
        "NotFound",
        "NotFound: no such scheduler, version, operation or room",
    ),
    (
        409,
        "Conflict",
        "AlreadyExists or Aborted: the name is taken, the patch changes nothing, or \
         the operation is over",
    ),
    (
        429,
        "TooManyRequests",
        "ResourceExhausted: maestro holds its limit of schedulers, or of pending \
         operations for the scheduler",
    ),
    (
        500,
        "InternalServerError",
        "Internal: a bug; the message ends with an error id that the server's log \
         records with the cause",
    ),
    (
        503,
        "ServiceUnavailable",
        "Unavailable: the worker cannot be reached",
    ),
];

/// The error statuses a route can answer, besides 401 (added with security).
fn error_statuses(route: &Route) -> Vec<u16> {
    let mut statuses = vec![400];
    if route.path.contains('{') || route.method == "GetSchedulersInfo" {
        statuses.push(404);
    }
    if CONFLICTS.contains(&route.method) {
        statuses.push(409);
    }
    if LIMITED.contains(&route.method) {
        statuses.push(429);
    }
    statuses.extend([500, 503]);
    statuses
}

fn response_ref(status: u16) -> Value {
    let name = ERRORS
        .iter()
        .find(|(s, _, _)| *s == status)
        .map_or("InternalServerError", |(_, name, _)| name);
    json!({ "$ref": format!("#/components/responses/{name}") })
}

/// What the protos cannot say about a field: allowed values and bounds the
/// service checks, merged into the field's schema wherever it appears.
pub(crate) struct Refinement {
    /// The message's name in `api.v1`.
    pub message: &'static str,
    /// The field's proto name.
    pub field: &'static str,
    pub schema: Value,
    /// A query parameter the request must have.
    pub required: bool,
}

pub(crate) fn refinements() -> Vec<Refinement> {
    let refine = |message, field, schema| Refinement {
        message,
        field,
        schema,
        required: false,
    };
    let room_statuses: Vec<&str> = RoomStatus::ALL.iter().map(|s| s.as_str()).collect();
    let ping_statuses: Vec<&str> = [
        PingStatus::Ready,
        PingStatus::Occupied,
        PingStatus::Terminating,
        PingStatus::Terminated,
    ]
    .iter()
    .map(|s| s.as_str())
    .collect();
    vec![
        Refinement {
            required: true,
            ..refine(
                "ListOperationsRequest",
                "stage",
                json!({ "enum": ["pending", "active", "final"] }),
            )
        },
        // Upstream's `"<field> [asc|desc]"`, where only createdAt exists.
        refine(
            "ListOperationsRequest",
            "order_by",
            json!({ "pattern": "^\\s*(createdAt(\\s+(asc|desc))?)?\\s*$" }),
        ),
        refine("ListOperationsRequest", "page", json!({ "minimum": 1 })),
        refine(
            "ListOperationsRequest",
            "per_page",
            json!({ "minimum": 1, "maximum": OPERATIONS_MAX_PER_PAGE }),
        ),
        refine("ListRoomsRequest", "page", json!({ "minimum": 1 })),
        refine(
            "ListRoomsRequest",
            "per_page",
            json!({ "minimum": 1, "maximum": ROOMS_MAX_PER_PAGE }),
        ),
        refine("ListRoomsRequest", "status", {
            let mut all = vec![""];
            all.extend(&room_statuses);
            json!({ "enum": all })
        }),
        refine("RoomItem", "status", json!({ "enum": room_statuses })),
        refine(
            "UpdateRoomWithPingRequest",
            "status",
            json!({ "enum": ping_statuses }),
        ),
        refine(
            "ForwardPlayerEventRequest",
            "event",
            json!({ "enum": ["playerJoin", "playerLeft"] }),
        ),
        refine(
            "ForwardPlayerEventRequest",
            "metadata",
            json!({ "required": ["playerId"], "properties": { "playerId": { "type": "string" } } }),
        ),
    ]
}

const DESCRIPTION: &str = "Maestro Next's APIs as maestro serves them over HTTP/JSON \
    (grpc-gateway's mapping of the `api.v1` protos; the same services are served over gRPC). \
    `/schedulers…` is the management API and `/scheduler/…` the rooms API: by default they \
    are served on separate ports (8080 and 8070), and this document, served by the \
    management API, describes both.\n\n\
    JSON follows protojson: lowerCamelCase field names (snake_case is accepted too), \
    every field written (an unset message as `null`, an unset `optional` field left out), \
    64-bit integers written as strings and read as a string or a number, durations as \
    `\"100s\"`, timestamps as RFC 3339. Errors are `{code, message, details}` with the \
    gRPC code in `code`.";

/// The document without security, and each operation's place in it with
/// the token it takes when tokens are configured.
struct Generated {
    document: Value,
    operations: Vec<(String, String, Auth)>,
}

/// Every route served: the table and the additional bindings.
fn routes() -> Vec<&'static Route> {
    rpc::route_table()
        .chain(rpc::additional_bindings())
        .collect()
}

fn generate() -> Result<Generated, DocumentError> {
    let protos = schema::protos()?;
    let routes = routes();
    let refinements = refinements();
    let mut generator = Generator {
        protos,
        refinements: refinements
            .iter()
            .map(|r| ((r.message, r.field), r))
            .collect(),
        written: BTreeSet::new(),
        read: BTreeSet::new(),
        schemas: Map::new(),
    };
    generator.reach_all(&routes)?;

    let mut paths = Map::new();
    let mut operations = Vec::new();
    let mut bindings: HashMap<(&str, &str), usize> = HashMap::new();
    for route in &routes {
        let path = rpc::canonical_path(&routes, route.path);
        let method = route.http_method.as_str().to_ascii_lowercase();
        let nth = bindings.entry((route.service, route.method)).or_insert(0);
        *nth += 1;
        let operation = generator.operation(&routes, route, &path, *nth)?;
        let item = paths
            .entry(path.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(item) = item {
            item.insert(method.clone(), operation);
        }
        operations.push((path, method, route.auth));
    }
    generator.message_schemas()?;
    let mut schemas = generator.schemas;
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "description": "An error answer: grpc-gateway's google.rpc.Status.",
            "properties": {
                "code": { "type": "integer", "format": "int32", "description": "The gRPC status code." },
                "message": { "type": "string" },
                "details": { "type": "array", "items": { "type": "object" } }
            },
            "required": ["code", "message", "details"],
            "additionalProperties": false
        }),
    );
    let responses: Map<String, Value> = ERRORS
        .iter()
        .map(|(_, name, description)| {
            let response = json!({
                "description": description,
                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
            });
            (name.to_string(), response)
        })
        .collect();
    let mut tags = Vec::new();
    for route in &routes {
        let name = short_service(route.service);
        if !tags.iter().any(|t: &Value| t["name"] == name) {
            let mut tag = json!({ "name": name });
            describe(
                &mut tag,
                protos.services.get(route.service).cloned().flatten(),
            );
            tags.push(tag);
        }
    }
    let document = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "maestro",
            "version": env!("CARGO_PKG_VERSION"),
            "description": DESCRIPTION
        },
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": responses,
            "securitySchemes": {
                MANAGEMENT_TOKEN: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "One of the configured management tokens. The management \
                        routes and allocate take it, only when tokens are configured."
                },
                ROOM_TOKEN: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The room's own token: lowercase hex HMAC-SHA256 of \
                        `<scheduler>/<room>` under the rooms secret, given to the room's pod \
                        as MAESTRO_ROOM_TOKEN. A room's routes take it, only when a rooms \
                        secret is configured."
                }
            }
        }
    });
    Ok(Generated {
        document,
        operations,
    })
}

fn short_service(service: &str) -> &str {
    service.rsplit('.').next().unwrap_or(service)
}

/// The message's name in `api.v1` (what the refinements are keyed by).
fn short_message(full: &str) -> &str {
    full.strip_prefix(".api.v1.").unwrap_or(full)
}

// ----- schemas ----------------------------------------------------------------

/// Whether a schema describes what the service reads or what it writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Read,
    Written,
}

struct Generator<'a> {
    protos: &'a Protos<'a>,
    refinements: HashMap<(&'static str, &'static str), &'a Refinement>,
    /// Messages (fully qualified) that answers contain.
    written: BTreeSet<String>,
    /// Messages that request bodies contain.
    read: BTreeSet<String>,
    /// `components.schemas`.
    schemas: Map<String, Value>,
}

impl Generator<'_> {
    /// Collects the messages each direction needs.
    fn reach_all(&mut self, routes: &[&Route]) -> Result<(), DocumentError> {
        for route in routes {
            let method = self.protos.method(route)?;
            let mut written = std::mem::take(&mut self.written);
            self.reach(&method.output, &mut written)?;
            self.written = written;
            if route.body {
                let input = self.protos.message(&method.input)?;
                let path_fields = path_fields(route.path);
                let mut read = std::mem::take(&mut self.read);
                if path_fields.is_empty() {
                    // The body is the request message itself.
                    self.reach(&method.input, &mut read)?;
                } else {
                    // The body is its own schema; the messages in it are shared.
                    for field in &input.proto.field {
                        if !path_fields.contains(&field.name()) {
                            self.reach_field(field, &mut read)?;
                        }
                    }
                }
                self.read = read;
            }
        }
        Ok(())
    }

    fn reach(&self, message: &str, seen: &mut BTreeSet<String>) -> Result<(), DocumentError> {
        if well_known(message).is_some() || !seen.insert(message.into()) {
            return Ok(());
        }
        for field in &self.protos.message(message)?.proto.field {
            self.reach_field(field, seen)?;
        }
        Ok(())
    }

    fn reach_field(
        &self,
        field: &FieldDescriptorProto,
        seen: &mut BTreeSet<String>,
    ) -> Result<(), DocumentError> {
        if field.r#type() != Type::Message {
            return Ok(());
        }
        match self.protos.map_entry(field) {
            Some(entry) => match entry.field.get(1) {
                Some(value) => self.reach_field(value, seen),
                None => Err(DocumentError::Unsupported(
                    field.name().into(),
                    "a map entry without a value",
                )),
            },
            None => self.reach(field.type_name(), seen),
        }
    }

    /// The name of a message's schema in a direction.
    fn schema_name(&self, message: &str, direction: Direction) -> String {
        let short = short_message(message)
            .trim_start_matches('.')
            .replace('.', "_");
        if direction == Direction::Read && self.written.contains(message) {
            format!("{short}Input")
        } else {
            short
        }
    }

    fn reference(&self, message: &str, direction: Direction) -> Value {
        json!({ "$ref": format!("#/components/schemas/{}", self.schema_name(message, direction)) })
    }

    /// Every message schema both directions need.
    fn message_schemas(&mut self) -> Result<(), DocumentError> {
        let needed: Vec<(String, Direction)> = (self.written.iter())
            .map(|m| (m.clone(), Direction::Written))
            .chain(self.read.iter().map(|m| (m.clone(), Direction::Read)))
            .collect();
        for (message, direction) in needed {
            let schema = self.message_schema(&message, direction, &[])?;
            let name = self.schema_name(&message, direction);
            self.insert_schema(name, schema)?;
        }
        Ok(())
    }

    fn insert_schema(&mut self, name: String, schema: Value) -> Result<(), DocumentError> {
        match self.schemas.get(&name) {
            Some(existing) if *existing != schema => Err(DocumentError::Unsupported(
                name,
                "two different schemas would have this name",
            )),
            _ => {
                self.schemas.insert(name, schema);
                Ok(())
            }
        }
    }

    /// An object schema for `message` without the fields named in `skip`.
    fn message_schema(
        &self,
        message: &str,
        direction: Direction,
        skip: &[&str],
    ) -> Result<Value, DocumentError> {
        let info = self.protos.message(message)?;
        let mut properties = Map::new();
        let mut required = Vec::new();
        for (field, comment) in info.proto.field.iter().zip(&info.field_comments) {
            if skip.contains(&field.name()) {
                continue;
            }
            let mut schema = self.field_schema(message, field, direction)?;
            describe(&mut schema, comment.clone());
            let name = json_name(field)?;
            if direction == Direction::Written && !has_presence(field) {
                required.push(name.clone());
            }
            properties.insert(name, schema);
        }
        let mut schema = json!({ "type": "object", "properties": properties });
        if direction == Direction::Written {
            // Everything protojson writes, and nothing else.
            schema["required"] = json!(required);
            schema["additionalProperties"] = json!(false);
        }
        describe(&mut schema, info.comment.clone());
        Ok(schema)
    }

    /// A field's schema: repeated fields are arrays, maps objects, and
    /// written message fields that protojson writes unset are nullable.
    fn field_schema(
        &self,
        message: &str,
        field: &FieldDescriptorProto,
        direction: Direction,
    ) -> Result<Value, DocumentError> {
        if let Some(entry) = self.protos.map_entry(field) {
            let Some(value) = entry.field.get(1) else {
                return Err(DocumentError::Unsupported(
                    field.name().into(),
                    "a map entry without a value",
                ));
            };
            // JSON object keys are strings, whatever the key type.
            let values = self.single_schema(message, value, direction)?;
            return Ok(json!({ "type": "object", "additionalProperties": values }));
        }
        let single = self.single_schema(message, field, direction)?;
        Ok(if field.label() == Label::Repeated {
            json!({ "type": "array", "items": single })
        } else if direction == Direction::Written
            && field.r#type() == Type::Message
            && !has_presence(field)
        {
            nullable(single)
        } else {
            single
        })
    }

    /// The schema of one value of the field, refined.
    fn single_schema(
        &self,
        message: &str,
        field: &FieldDescriptorProto,
        direction: Direction,
    ) -> Result<Value, DocumentError> {
        let mut schema = match field.r#type() {
            Type::Double => json!({ "type": "number", "format": "double" }),
            Type::Float => json!({ "type": "number", "format": "float" }),
            Type::Int32 | Type::Sint32 | Type::Sfixed32 => json!({
                "type": "integer", "format": "int32", "minimum": i32::MIN, "maximum": i32::MAX
            }),
            Type::Uint32 | Type::Fixed32 => json!({
                "type": "integer", "format": "uint32", "minimum": 0, "maximum": u32::MAX
            }),
            Type::Int64 | Type::Sint64 | Type::Sfixed64 => int64(direction, true),
            Type::Uint64 | Type::Fixed64 => int64(direction, false),
            Type::Bool => json!({ "type": "boolean" }),
            Type::String => json!({ "type": "string" }),
            Type::Bytes => json!({ "type": "string", "contentEncoding": "base64" }),
            Type::Enum => {
                let proto =
                    self.protos.enums.get(field.type_name()).ok_or_else(|| {
                        DocumentError::Missing(format!("enum {}", field.type_name()))
                    })?;
                let names: Vec<&str> = proto.value.iter().map(|v| v.name()).collect();
                json!({ "type": "string", "enum": names })
            }
            Type::Message => match well_known(field.type_name()) {
                Some(schema) => schema,
                None if field.type_name().starts_with(".google.protobuf.") => {
                    return Err(DocumentError::Unsupported(
                        field.type_name().into(),
                        "a well-known type the generator does not map",
                    ));
                }
                None => self.reference(field.type_name(), direction),
            },
            Type::Group => {
                return Err(DocumentError::Unsupported(
                    field.name().into(),
                    "groups have no JSON mapping",
                ));
            }
        };
        if let Some(refinement) = self
            .refinements
            .get(&(short_message(message), field.name()))
            && let (Value::Object(schema), Value::Object(extra)) = (&mut schema, &refinement.schema)
        {
            schema.extend(extra.clone());
        }
        Ok(schema)
    }

    // ----- operations -----------------------------------------------------

    /// One route's operation. `nth` counts the routes of the same RPC: the
    /// operation id of an additional binding gets its number, as
    /// grpc-gateway's generator does (`UpdateRoomWithPing2`).
    fn operation(
        &mut self,
        routes: &[&Route],
        route: &Route,
        path: &str,
        nth: usize,
    ) -> Result<Value, DocumentError> {
        let protos = self.protos;
        let method = protos.method(route)?;
        let input = protos.message(&method.input)?;
        let own_fields = path_fields(route.path);
        let names = path_fields(path);
        let mut parameters = Vec::new();
        for (index, (field_name, name)) in own_fields.iter().zip(&names).enumerate() {
            let (field, comment) = input
                .proto
                .field
                .iter()
                .zip(&input.field_comments)
                .find(|(f, _)| f.name() == *field_name)
                .ok_or_else(|| {
                    DocumentError::Missing(format!("field {field_name} of {}", method.input))
                })?;
            let mut schema = self.single_schema(&method.input, field, Direction::Read)?;
            if field.r#type() == Type::String {
                // An empty segment names another route, or none.
                schema["minLength"] = json!(1);
            }
            let mut parameter =
                json!({ "name": name, "in": "path", "required": true, "schema": schema });
            // Said in words, not as a `not` in the schema: the value is
            // valid, it only reaches another route (upstream's protos say
            // it the same way), and fuzzers would send it as an invalid
            // value and then judge the other route's answer by this one's.
            let rivals = static_rivals(routes, path, index);
            let note = (!rivals.is_empty()).then(|| {
                let rivals: Vec<String> = rivals.iter().map(|r| format!("`{r}`")).collect();
                format!(
                    "Cannot be {}: that path is another route.",
                    rivals.join(" or ")
                )
            });
            describe(&mut parameter, note);
            describe(&mut parameter, comment.clone());
            parameters.push(parameter);
        }
        let mut body = None;
        if route.body {
            let schema = if own_fields.is_empty() {
                self.reference(&method.input, Direction::Read)
            } else {
                let name = format!("{}{}Body", short_service(route.service), route.method);
                let schema = self.message_schema(&method.input, Direction::Read, &own_fields)?;
                self.insert_schema(name.clone(), schema)?;
                json!({ "$ref": format!("#/components/schemas/{name}") })
            };
            body = Some(json!({
                "required": false,
                "content": { "application/json": { "schema": schema } }
            }));
        } else {
            for (field, comment) in input.proto.field.iter().zip(&input.field_comments) {
                if own_fields.contains(&field.name()) {
                    continue;
                }
                if field.r#type() == Type::Message {
                    return Err(DocumentError::Unsupported(
                        format!("{}.{}", method.input, field.name()),
                        "a message field cannot be a query parameter: the route needs a body",
                    ));
                }
                parameters.push(self.query_parameter(&method.input, field, comment.clone())?);
            }
        }
        let mut responses = Map::new();
        let answer = protos.message(&method.output)?;
        responses.insert(
            "200".into(),
            json!({
                "description": answer.comment.clone().unwrap_or_else(|| "OK".into()),
                "content": { "application/json": {
                    "schema": self.reference(&method.output, Direction::Written)
                } }
            }),
        );
        for status in error_statuses(route) {
            responses.insert(status.to_string(), response_ref(status));
        }
        let operation_id = if nth == 1 {
            route.method.to_string()
        } else {
            format!("{}{nth}", route.method)
        };
        let mut operation = json!({
            "operationId": operation_id,
            "tags": [short_service(route.service)],
            "parameters": parameters,
            "responses": responses,
        });
        if let Some(comment) = &method.comment {
            operation["summary"] = json!(first_sentence(comment));
            operation["description"] = json!(comment);
            if comment.starts_with("Deprecated") {
                operation["deprecated"] = json!(true);
            }
        }
        if let Some(body) = body {
            operation["requestBody"] = body;
        }
        Ok(operation)
    }

    fn query_parameter(
        &self,
        message: &str,
        field: &FieldDescriptorProto,
        comment: Option<String>,
    ) -> Result<Value, DocumentError> {
        let single = self.single_schema(message, field, Direction::Read)?;
        let schema = if field.label() == Label::Repeated {
            json!({ "type": "array", "items": single })
        } else {
            single
        };
        let required = self
            .refinements
            .get(&(short_message(message), field.name()))
            .is_some_and(|r| r.required);
        let mut parameter = json!({
            "name": field.name(),
            "in": "query",
            "required": required,
            "schema": schema
        });
        let alias = json_name(field)?;
        let alias_note = (alias != field.name()).then(|| format!("Also accepted as `{alias}`."));
        let description = match (comment, alias_note) {
            (Some(c), Some(n)) => Some(format!("{c}\n\n{n}")),
            (c, n) => c.or(n),
        };
        describe(&mut parameter, description);
        Ok(parameter)
    }
}

/// protojson's name of a field: the descriptor's `json_name`, which the
/// compiler fills in (lowerCamelCase of the proto name).
fn json_name(field: &FieldDescriptorProto) -> Result<String, DocumentError> {
    match field.json_name() {
        "" => Err(DocumentError::Unsupported(
            field.name().into(),
            "the descriptor has no json_name",
        )),
        name => Ok(name.to_string()),
    }
}

/// protojson's 64-bit integers: written as a decimal string, read from a
/// string or a number.
fn int64(direction: Direction, signed: bool) -> Value {
    let (format, pattern) = if signed {
        ("int64", "^-?[0-9]+$")
    } else {
        ("uint64", "^[0-9]+$")
    };
    match direction {
        Direction::Written => json!({ "type": "string", "format": format, "pattern": pattern }),
        Direction::Read if signed => json!({
            "type": ["string", "integer"], "format": format, "pattern": pattern,
            "minimum": i64::MIN, "maximum": i64::MAX
        }),
        Direction::Read => json!({
            "type": ["string", "integer"], "format": format, "pattern": pattern,
            "minimum": 0, "maximum": u64::MAX
        }),
    }
}

/// The JSON form protojson gives a well-known type, or `None` for any
/// other message. Only those the protos use or may soon: another one is an
/// error, not a wrong schema.
fn well_known(message: &str) -> Option<Value> {
    Some(match message {
        ".google.protobuf.Duration" => json!({
            "type": "string",
            "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$",
            "description": "A duration in seconds with an `s` suffix, e.g. `\"100s\"`.",
            "examples": ["100s"]
        }),
        ".google.protobuf.Timestamp" => json!({ "type": "string", "format": "date-time" }),
        ".google.protobuf.Struct" => json!({ "type": "object" }),
        ".google.protobuf.Value" => json!({}),
        ".google.protobuf.ListValue" => json!({ "type": "array" }),
        ".google.protobuf.Empty" => json!({ "type": "object" }),
        _ => return None,
    })
}

/// `schema` or `null`.
fn nullable(schema: Value) -> Value {
    match schema.get("type") {
        Some(Value::String(kind)) => {
            let mut schema = schema.clone();
            schema["type"] = json!([kind, "null"]);
            schema
        }
        // Any value (google.protobuf.Value) includes null.
        _ if schema == json!({}) => schema,
        _ => json!({ "anyOf": [schema, { "type": "null" }] }),
    }
}

/// Sets the description of a schema, parameter or tag, before any it has.
fn describe(target: &mut Value, description: Option<String>) {
    let (Some(description), Value::Object(target)) = (description, target) else {
        return;
    };
    let text = match target.get("description").and_then(Value::as_str) {
        Some(existing) => format!("{description}\n\n{existing}"),
        None => description,
    };
    target.insert("description".into(), Value::String(text));
}

/// The text up to the first full stop.
fn first_sentence(text: &str) -> &str {
    match text.find(". ") {
        Some(end) => &text[..=end],
        None => text.lines().next().unwrap_or(text),
    }
}

// ----- paths ------------------------------------------------------------------

/// The `{field}` names of a path template, in order.
fn path_fields(template: &str) -> Vec<&str> {
    template
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

fn is_parameter(segment: &str) -> bool {
    segment.starts_with('{')
}

/// The literal segments that another route has where `path` has its
/// parameter number `index`, all else equal: `info` for the parameter of
/// `/schedulers/{scheduler_name}`, since `/schedulers/info` is another route.
fn static_rivals(routes: &[&Route], path: &str, index: usize) -> Vec<String> {
    let segments: Vec<&str> = path.split('/').collect();
    let Some(position) = segments
        .iter()
        .enumerate()
        .filter(|(_, s)| is_parameter(s))
        .nth(index)
        .map(|(i, _)| i)
    else {
        return Vec::new();
    };
    let mut rivals = BTreeSet::new();
    for route in routes {
        let other: Vec<&str> = route.path.split('/').collect();
        if other.len() != segments.len() || is_parameter(other[position]) {
            continue;
        }
        let same_elsewhere = (0..segments.len()).filter(|&k| k != position).all(|k| {
            segments[k] == other[k] || (is_parameter(segments[k]) && is_parameter(other[k]))
        });
        if same_elsewhere {
            rivals.insert(other[position].to_string());
        }
    }
    rivals.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_generates() {
        let generated = generate().unwrap();
        assert_eq!(generated.document["openapi"], "3.1.0");
        // 19 RPCs and the POST ping.
        assert_eq!(generated.operations.len(), 20);
    }

    /// Each refinement names a field of a message the document describes,
    /// so a renamed field cannot silently lose its bounds.
    #[test]
    fn refinements_name_real_fields() {
        let protos = schema::protos().unwrap();
        for r in refinements() {
            let message = protos.message(&format!(".api.v1.{}", r.message)).unwrap();
            assert!(
                message.proto.field.iter().any(|f| f.name() == r.field),
                "{}.{}",
                r.message,
                r.field
            );
            assert!(r.schema.is_object());
        }
    }

    #[test]
    fn error_tables_name_real_rpcs() {
        let rpcs: Vec<&str> = routes().iter().map(|r| r.method).collect();
        for rpc in CONFLICTS.iter().chain(LIMITED) {
            assert!(rpcs.contains(rpc), "{rpc}");
        }
    }

    #[test]
    fn comments_become_descriptions() {
        let protos = schema::protos().unwrap();
        let spec = protos.message(".api.v1.Spec").unwrap();
        assert_eq!(spec.comment.as_deref(), Some("What one game room runs."));
        // A comment over two lines is one paragraph.
        let stage = protos
            .message(".api.v1.ListOperationsRequest")
            .unwrap()
            .field_comments[2]
            .clone()
            .unwrap();
        assert!(
            stage.starts_with("pending, active or final (required). Paging"),
            "{stage}"
        );
        let method = &protos.methods["api.v1.RoomsService/GetRoomAddress"];
        assert!(method.comment.as_deref().unwrap().starts_with("Deprecated"));
    }

    #[test]
    fn paths_have_one_template_per_shape() {
        let routes = routes();
        assert_eq!(
            rpc::canonical_path(&routes, "/schedulers/{name}"),
            "/schedulers/{scheduler_name}"
        );
        assert_eq!(
            static_rivals(&routes, "/schedulers/{scheduler_name}", 0),
            ["info"]
        );
        assert!(static_rivals(&routes, "/schedulers/{scheduler_name}/versions", 0).is_empty());
    }

    #[test]
    fn nullable_keeps_the_schema() {
        assert_eq!(
            nullable(json!({ "type": "string", "format": "date-time" })),
            json!({ "type": ["string", "null"], "format": "date-time" })
        );
        assert_eq!(
            nullable(json!({ "$ref": "#/x" })),
            json!({ "anyOf": [{ "$ref": "#/x" }, { "type": "null" }] })
        );
        assert_eq!(nullable(json!({})), json!({}));
    }
}
