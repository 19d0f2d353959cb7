//! The HTTP API's JSON: the generated messages themselves, through their
//! protojson serde impls (pbjson, configured in `build.rs` to write zero
//! values and ignore unknown fields), plus the few rules of grpc-gateway's
//! protojson that pbjson does not follow. Each rule is a named step here,
//! driven by the descriptors, never a parallel struct:
//!
//! - [`unset_messages_as_null`]: an unset singular message field (without
//!   `optional`) is written `null`; pbjson leaves it out;
//! - [`utc_as_z`]: a `Timestamp` is written `…Z`; pbjson writes `…+00:00`;
//! - [`whole_numbers_as_integers`]: a whole `float`, `double` or `Struct`
//!   number is written `3`; serde writes `3.0`;
//! - [`describe_number_error`]: a malformed number is reported as an
//!   invalid value of its field, not as pbjson's internal enum.
//!
//! Errors name the field by its JSON path (`spec.containers[0].ports[0].port: …`).

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::schema::{self, Protos, SchemaError, has_presence};
use prost_types::field_descriptor_proto::{Label, Type};

/// Reads a request message from a JSON body.
///
/// As grpc-gateway, an empty body is an empty message (`{}`) and anything
/// but an object is refused (serde would read a message from an array).
pub(crate) fn from_body<T: DeserializeOwned>(bytes: &[u8], type_name: &str) -> Result<T, ApiError> {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let bytes: &[u8] = match start {
        None => b"{}",
        Some(i) if bytes[i] != b'{' => {
            return Err(ApiError::invalid_argument(
                "request body must be a JSON object",
            ));
        }
        Some(_) => bytes,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let message = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        field_error(error, |path, inner| {
            let inner = if is_number_error(inner) {
                number_error(bytes, type_name, path).unwrap_or_else(|| describe_number_error(inner))
            } else {
                inner.to_string()
            };
            format!("{path}: {inner}")
        })
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::invalid_argument(format!("invalid request body: {e}")))?;
    Ok(message)
}

/// Reads a request message from query parameters, as grpc-gateway does for
/// a route without a body: each parameter sets the field of that name
/// (proto or JSON spelling; the last one given wins), unknown ones are
/// ignored, numbers are parsed from their text.
pub(crate) fn from_query<T: DeserializeOwned>(pairs: Vec<(String, String)>) -> Result<T, ApiError> {
    let mut fields = Map::new();
    for (name, value) in pairs {
        fields.insert(json_name(&name), Value::String(value));
    }
    serde_path_to_error::deserialize(Value::Object(fields)).map_err(|error| {
        // grpc-gateway's wording for a query parameter that does not parse.
        field_error(error, |path, inner| {
            format!("parsing field {path:?}: {}", describe_number_error(inner))
        })
    })
}

fn field_error<E: std::fmt::Display>(
    error: serde_path_to_error::Error<E>,
    with_path: impl Fn(&str, &str) -> String,
) -> ApiError {
    // serde_path_to_error writes `.` for the root and `?` for a key it had
    // not read yet (for instance at the end of the input).
    let path = error.path().to_string();
    let path = path.trim_end_matches(".?");
    let inner = error.into_inner().to_string();
    if path == "." || path == "?" {
        let inner = describe_number_error(&inner);
        ApiError::invalid_argument(format!("invalid request body: {inner}"))
    } else {
        ApiError::invalid_argument(with_path(path, &inner))
    }
}

/// pbjson reads a number from a JSON number or a string through an
/// untagged enum, whose error says nothing of numbers, and parses strings
/// with `FromStr`, whose errors do not say which value was wrong. Both
/// become "invalid value: …", as serde words a wrong value; [`number_error`]
/// then says exactly what is wrong when the body and the field's type are
/// at hand.
fn describe_number_error(message: &str) -> String {
    if is_number_error(message) {
        "invalid value: expected a number, or a string holding one".to_string()
    } else {
        message.to_string()
    }
}

fn is_number_error(message: &str) -> bool {
    const PARSE_ERRORS: [&str; 6] = [
        "invalid digit found in string",
        "cannot parse integer from empty string",
        "number too large to fit in target type",
        "number too small to fit in target type",
        "invalid float literal",
        "cannot parse float from empty string",
    ];
    message.starts_with("data did not match any variant of untagged enum")
        || PARSE_ERRORS.iter().any(|e| message.starts_with(e))
}

/// What is wrong with the number at `path` in `body`, a message of type
/// `type_name`: not a number, not whole, or out of the field's range.
/// `None` when the path does not lead to a numeric field.
fn number_error(body: &[u8], type_name: &str, path: &str) -> Option<String> {
    let protos = schema::protos().ok()?;
    let mut message = protos.message(type_name).ok()?;
    let mut value: &Value = &serde_json::from_slice::<Value>(body).ok()?;
    let segments: Vec<&str> = path.split('.').collect();
    let mut kind = None;
    for (i, segment) in segments.iter().enumerate() {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (*segment, None),
        };
        let field = message
            .proto
            .field
            .iter()
            .find(|f| f.json_name() == name || f.name() == name)?;
        value = value.get(name).or_else(|| value.get(field.name()))?;
        if let Some(index) = index {
            value = value.get(index)?;
        }
        if i + 1 == segments.len() {
            kind = Some(field.r#type());
        } else {
            message = protos.message(field.type_name()).ok()?;
        }
    }
    let kind = kind?;
    let (name, min, max) = match kind {
        Type::Int32 | Type::Sint32 | Type::Sfixed32 => {
            ("int32", i128::from(i32::MIN), i128::from(i32::MAX))
        }
        Type::Uint32 | Type::Fixed32 => ("uint32", 0, i128::from(u32::MAX)),
        Type::Int64 | Type::Sint64 | Type::Sfixed64 => {
            ("int64", i128::from(i64::MIN), i128::from(i64::MAX))
        }
        Type::Uint64 | Type::Fixed64 => ("uint64", 0, i128::from(u64::MAX)),
        Type::Float | Type::Double => {
            return Some(format!("invalid value: {value} is not a number"));
        }
        _ => return None,
    };
    let number: Option<f64> = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(text) => text.trim().parse::<f64>().ok(),
        _ => None,
    };
    Some(match number {
        None => format!("invalid value: {value} is not a number"),
        Some(n) if n.fract() != 0.0 => format!("invalid value: {value} is not a whole number"),
        Some(n) if (n as i128) < min || (n as i128) > max => {
            format!("invalid value: {value} is out of range for {name}")
        }
        Some(_) => format!("invalid value: {value} is not a valid {name}"),
    })
}

/// protojson's JSON name of a proto field: lowerCamelCase. A name that is
/// already a JSON name stays as it is.
pub(crate) fn json_name(proto_name: &str) -> String {
    let mut out = String::with_capacity(proto_name.len());
    let mut upper = false;
    for c in proto_name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Writes `message`, of the proto type `type_name` (`.api.v1.X`), as the
/// HTTP API answers it.
pub(crate) fn to_value<T: Serialize>(message: &T, type_name: &str) -> Result<Value, ApiError> {
    let internal = |e: &dyn std::fmt::Display| {
        ApiError::new(
            crate::error::Code::Internal,
            format!("cannot write {type_name} as JSON: {e}"),
        )
    };
    // Through text rather than `serde_json::to_value`, which would widen a
    // `float` to f64 digits (0.7 becomes 0.699999988079071); the text keeps
    // the float's shortest form, as protojson does.
    let text = serde_json::to_vec(message).map_err(|e| internal(&e))?;
    let mut value: Value = serde_json::from_slice(&text).map_err(|e| internal(&e))?;
    let protos = schema::protos().map_err(|e| internal(&e))?;
    adapt(protos, type_name, &mut value).map_err(|e| internal(&e))?;
    whole_numbers_as_integers(&mut value);
    Ok(value)
}

/// How the answers of one message type are written: straight through
/// pbjson when none of the protojson steps can apply to it (it has no
/// message, `float` or `double` field: a ping's answer), through
/// [`to_value`] otherwise.
pub(crate) struct Writer {
    type_name: String,
    plain: bool,
}

impl Writer {
    pub(crate) fn new(type_name: &str) -> Result<Writer, SchemaError> {
        let message = schema::protos()?.message(type_name)?;
        let plain = message
            .proto
            .field
            .iter()
            .all(|f| !matches!(f.r#type(), Type::Message | Type::Float | Type::Double));
        Ok(Writer {
            type_name: type_name.to_string(),
            plain,
        })
    }

    pub(crate) fn write<T: Serialize>(&self, message: &T) -> Result<Vec<u8>, ApiError> {
        let text = if self.plain {
            serde_json::to_vec(message)
        } else {
            serde_json::to_vec(&to_value(message, &self.type_name)?)
        };
        text.map_err(|e| {
            ApiError::new(
                crate::error::Code::Internal,
                format!("cannot write {} as JSON: {e}", self.type_name),
            )
        })
    }
}

const TIMESTAMP: &str = ".google.protobuf.Timestamp";

/// Applies [`unset_messages_as_null`] and [`utc_as_z`] to `value`, a
/// message of type `type_name`, and to every message inside it.
fn adapt(protos: &Protos<'_>, type_name: &str, value: &mut Value) -> Result<(), SchemaError> {
    // Well-known types have their own JSON forms.
    if type_name.starts_with(".google.protobuf.") {
        return Ok(());
    }
    let Value::Object(fields) = value else {
        return Ok(());
    };
    let message = protos.message(type_name)?;
    for field in &message.proto.field {
        if field.r#type() != Type::Message {
            continue;
        }
        let name = field.json_name();
        if protos.map_entry(field).is_some() {
            // Map values here are strings: nothing inside to adapt.
            continue;
        }
        let nested = field.type_name();
        match fields.get_mut(name) {
            None if field.label() != Label::Repeated && !has_presence(field) => {
                unset_messages_as_null(fields, name);
            }
            None => {}
            Some(Value::Array(items)) => {
                for item in items {
                    adapt_one(protos, nested, item)?;
                }
            }
            Some(item) => adapt_one(protos, nested, item)?,
        }
    }
    Ok(())
}

fn adapt_one(protos: &Protos<'_>, type_name: &str, value: &mut Value) -> Result<(), SchemaError> {
    if type_name == TIMESTAMP {
        utc_as_z(value);
        Ok(())
    } else {
        adapt(protos, type_name, value)
    }
}

/// protojson writes an unset singular message field as `null` when it
/// writes zero values; pbjson leaves it out.
fn unset_messages_as_null(fields: &mut Map<String, Value>, name: &str) {
    fields.insert(name.to_string(), Value::Null);
}

/// pbjson writes a Timestamp with chrono's `+00:00`; protojson's form ends
/// with `Z` (the fraction, 0, 3, 6 or 9 digits, is the same in both).
fn utc_as_z(value: &mut Value) {
    if let Value::String(text) = value
        && let Some(stem) = text.strip_suffix("+00:00")
    {
        *text = format!("{stem}Z");
    }
}

/// Below 2^53 every whole double is exact, and protojson prints it as an
/// integer (a `Struct`'s `3` is the double 3.0); larger ones keep their
/// float form. Integer fields are already integers or (64-bit) strings.
pub(crate) fn whole_numbers_as_integers(value: &mut Value) {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < EXACT
            {
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers_as_integers),
        Value::Object(fields) => fields.values_mut().for_each(whole_numbers_as_integers),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::proto::api::v1;

    const CREATE: &str = ".api.v1.CreateSchedulerRequest";

    #[test]
    fn json_names_are_lower_camel_case() {
        assert_eq!(json_name("scheduler_name"), "schedulerName");
        assert_eq!(json_name("per_page"), "perPage");
        assert_eq!(json_name("perPage"), "perPage");
    }

    #[test]
    fn errors_name_the_field() {
        let body = br#"{"name": "s", "spec": {"containers": [{"ports": [{"port": "x"}]}]}}"#;
        let error = from_body::<v1::CreateSchedulerRequest>(body, CREATE).unwrap_err();
        assert!(
            error.message.starts_with(
                "spec.containers[0].ports[0].port: invalid value: \"x\" is not a number"
            ),
            "{}",
            error.message
        );
        let error = from_body::<v1::CreateSchedulerRequest>(br#"{"roomsReplicas": 1.5}"#, CREATE)
            .unwrap_err();
        assert!(
            error.message == "roomsReplicas: invalid value: 1.5 is not a whole number",
            "{}",
            error.message
        );
    }

    #[test]
    fn empty_bodies_and_non_objects() {
        assert_eq!(
            from_body::<v1::CreateSchedulerRequest>(b"  ", CREATE).unwrap(),
            v1::CreateSchedulerRequest::default()
        );
        for body in [&b"[]"[..], b"null", b"\"x\"", b"{", b"{} {}"] {
            assert!(
                from_body::<v1::CreateSchedulerRequest>(body, CREATE).is_err(),
                "{body:?}"
            );
        }
    }

    #[test]
    fn query_parameters_take_either_spelling_and_the_last_wins() {
        let pairs = |p: &[(&str, &str)]| {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let request: v1::ListOperationsRequest = from_query(pairs(&[
            ("per_page", "5"),
            ("perPage", "7"),
            ("order_by", "createdAt"),
            ("unknown", "x"),
        ]))
        .unwrap();
        assert_eq!(request.per_page, Some(7));
        assert_eq!(request.order_by, "createdAt");
        let error = from_query::<v1::ListOperationsRequest>(pairs(&[("page", "x")])).unwrap_err();
        assert!(
            error.message.starts_with("parsing field \"page\": "),
            "{}",
            error.message
        );
    }

    #[test]
    fn answers_follow_protojson() {
        let item = v1::RoomItem {
            id: "r".into(),
            last_ping_at: Some(pbjson_types::Timestamp {
                seconds: 1,
                nanos: 250_000_000,
            }),
            ..Default::default()
        };
        let value = to_value(&item, ".api.v1.RoomItem").unwrap();
        assert_eq!(
            value,
            json!({"id": "r", "status": "", "version": "", "runningMatches": 0,
                   "lastPingAt": "1970-01-01T00:00:01.250Z", "address": null})
        );
        let occupancy = v1::RoomOccupancy {
            ready_target: 0.7,
            down_threshold: Some(1.0),
        };
        let value = to_value(&occupancy, ".api.v1.RoomOccupancy").unwrap();
        // The float keeps its shortest form, a whole one is an integer;
        // integers and floats compare unequal in serde_json.
        assert_eq!(value, json!({"readyTarget": 0.7, "downThreshold": 1}));
        assert_eq!(value["downThreshold"].to_string(), "1");
    }

    #[test]
    fn plain_answers_skip_the_adapter_and_read_the_same() {
        let ping = v1::UpdateRoomWithPingResponse { success: false };
        let writer = Writer::new(".api.v1.UpdateRoomWithPingResponse").unwrap();
        assert!(writer.plain);
        assert_eq!(writer.write(&ping).unwrap(), br#"{"success":false}"#);
        let item = v1::RoomItem::default();
        let writer = Writer::new(".api.v1.RoomItem").unwrap();
        assert!(!writer.plain);
        let text = writer.write(&item).unwrap();
        let value: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(value, to_value(&item, ".api.v1.RoomItem").unwrap());
    }
}
