//! grpc-gateway in reverse: a gRPC call becomes the HTTP request its route
//! describes, the HTTP router answers it in process, and the JSON answer
//! becomes the gRPC response. The HTTP handlers are the only implementation
//! of the API, so gRPC and HTTP cannot disagree on validation, defaults,
//! errors or authentication.
//!
//! The mapping follows grpc-gateway's rules for upstream's annotations:
//! `{field}` path segments are filled from the request's fields; with
//! `body: "*"` the other fields are the JSON body, otherwise they are query
//! parameters. Messages convert through protojson (pbjson): lowerCamelCase
//! names, int64 as strings, durations as `"30s"`, which is what the HTTP wire
//! types read and write.

use axum::Router;
use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tonic::Status;
use tonic::metadata::MetadataMap;
use tower::ServiceExt;

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
    /// grpc-gateway's `body: "*"`: the fields not in the path are the JSON
    /// body. Without it they are query parameters.
    pub body: bool,
}

/// Request metadata passed on as HTTP headers, so the routes' rules apply
/// unchanged: bearer tokens, and the key that makes an allocation idempotent.
const FORWARDED_METADATA: [&str; 2] = ["authorization", "idempotency-key"];

/// The gateway: every RPC is sent to this router.
#[derive(Clone)]
pub(crate) struct Gateway {
    router: Router,
}

impl Gateway {
    pub(crate) fn new(router: Router) -> Gateway {
        Gateway { router }
    }

    /// Serves one RPC through `route`.
    pub(crate) async fn call<Req, Resp>(
        &self,
        route: &Route,
        request: tonic::Request<Req>,
    ) -> Result<tonic::Response<Resp>, Status>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        let http_request = to_http(route, request.metadata(), request.get_ref())?;
        let response = match self.router.clone().oneshot(http_request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status();
        // The answer is this process's own JSON, already in memory: no limit
        // protects anything here.
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .map_err(|e| Status::internal(format!("cannot read the HTTP answer: {e}")))?;
        if !status.is_success() {
            return Err(error_status(status, &bytes));
        }
        serde_json::from_slice(&bytes)
            .map(tonic::Response::new)
            .map_err(|e| {
                // The wire types and the protos disagree: a bug the gateway
                // tests exist to catch.
                Status::internal(format!(
                    "the answer of {} {} does not fit {}.{}'s response: {e}",
                    route.http_method, route.path, route.service, route.method
                ))
            })
    }
}

/// The HTTP request for one call.
fn to_http<Req: Serialize>(
    route: &Route,
    metadata: &MetadataMap,
    message: &Req,
) -> Result<Request<Body>, Status> {
    let mut fields = match protojson(message) {
        Ok(Value::Object(fields)) => fields,
        Ok(other) => {
            return Err(Status::internal(format!(
                "{}.{}: the request is not a JSON object but {other}",
                route.service, route.method
            )));
        }
        Err(e) => {
            return Err(Status::internal(format!(
                "{}.{}: cannot convert the request to JSON: {e}",
                route.service, route.method
            )));
        }
    };
    let mut uri = fill_path(route.path, &mut fields)?;
    let body = if route.body {
        Body::from(Value::Object(fields).to_string())
    } else {
        let query = query_string(&fields)?;
        if !query.is_empty() {
            uri.push('?');
            uri.push_str(&query);
        }
        Body::empty()
    };
    let mut builder = Request::builder()
        .method(route.http_method.clone())
        .uri(&uri);
    if route.body {
        builder = builder.header(CONTENT_TYPE, "application/json");
    }
    for name in FORWARDED_METADATA {
        if let Some(value) = metadata.get(name) {
            let value = HeaderValue::from_bytes(value.as_bytes())
                .map_err(|_| Status::invalid_argument(format!("invalid {name} metadata")))?;
            let name = if name == "authorization" {
                AUTHORIZATION
            } else {
                HeaderName::from_static(name)
            };
            builder = builder.header(name, value);
        }
    }
    builder
        .body(body)
        .map_err(|e| Status::internal(format!("cannot build the HTTP request {uri}: {e}")))
}

/// The message as protojson writes it, as a JSON value.
///
/// Through text rather than `serde_json::to_value`, which would widen a
/// `float` to f64 digits (0.7 becomes 0.699999988079071); the text keeps
/// the float's shortest form, as protojson does. Whole numbers are then
/// written without a fraction, as protojson writes doubles (a Struct's
/// `3` is the double 3.0 and must reach the HTTP API as `3`, not `3.0`).
fn protojson<Req: Serialize>(message: &Req) -> Result<Value, serde_json::Error> {
    let text = serde_json::to_vec(message)?;
    let mut value: Value = serde_json::from_slice(&text)?;
    whole_numbers_as_integers(&mut value);
    Ok(value)
}

/// Below 2^53 every whole double is exact, and protojson prints it as an
/// integer; larger ones keep their float form.
fn whole_numbers_as_integers(value: &mut Value) {
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

/// `template` with each `{field}` replaced by that field's value, which is
/// taken out of `fields` (grpc-gateway does not repeat path fields in the
/// body or the query).
///
/// An empty path field is refused: proto3 cannot tell it from an unset one,
/// and an empty segment would name another route (`/schedulers/` is not
/// `/schedulers/{name}`).
fn fill_path(template: &str, fields: &mut Map<String, Value>) -> Result<String, Status> {
    let mut path = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|i| open + i) else {
            break;
        };
        path.push_str(&rest[..open]);
        let field = &rest[open + 1..close];
        let value = match fields.remove(&json_name(field)) {
            Some(Value::String(s)) if !s.is_empty() => s,
            _ => return Err(Status::invalid_argument(format!("{field}: is required"))),
        };
        percent_encode(&value, &mut path);
        rest = &rest[close + 1..];
    }
    path.push_str(rest);
    Ok(path)
}

/// protojson's JSON name of a proto field: lowerCamelCase.
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

/// The fields as `name=value&…`. protojson leaves unset and zero fields
/// out, so only what the caller set is sent (an absent parameter is the
/// HTTP API's default, as an unset field is gRPC's).
fn query_string(fields: &Map<String, Value>) -> Result<String, Status> {
    let mut out = String::new();
    let mut push = |name: &str, value: &str| {
        if !out.is_empty() {
            out.push('&');
        }
        percent_encode(name, &mut out);
        out.push('=');
        percent_encode(value, &mut out);
    };
    for (name, value) in fields {
        match value {
            Value::Null => {}
            Value::String(s) => push(name, s),
            Value::Bool(b) => push(name, if *b { "true" } else { "false" }),
            Value::Number(n) => push(name, &n.to_string()),
            Value::Array(items) => {
                for item in items {
                    match item {
                        Value::String(s) => push(name, s),
                        Value::Number(n) => push(name, &n.to_string()),
                        Value::Bool(b) => push(name, if *b { "true" } else { "false" }),
                        _ => return Err(not_a_query_field(name)),
                    }
                }
            }
            Value::Object(_) => return Err(not_a_query_field(name)),
        }
    }
    Ok(out)
}

/// Only scalars travel in a query string; a route whose request has a
/// message field must take a body (a bug in the route table).
fn not_a_query_field(name: &str) -> Status {
    Status::internal(format!(
        "field {name} cannot be a query parameter: its route needs a body"
    ))
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so a
/// value is one path segment or one query value whatever it contains.
fn percent_encode(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

/// The HTTP error answer `{code, message, details}` as a gRPC status with
/// the same code and message.
fn error_status(status: StatusCode, body: &[u8]) -> Status {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        code: i32,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(error) if error.code != 0 => {
            Status::new(tonic::Code::from_i32(error.code), error.message)
        }
        _ => Status::new(
            code_of_http_status(status),
            format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ),
        ),
    }
}

/// gRPC's mapping of an HTTP status to a code, for an answer without our
/// error body (none of our routes gives one; this is a safety net).
fn code_of_http_status(status: StatusCode) -> tonic::Code {
    match status.as_u16() {
        400 => tonic::Code::Internal,
        401 => tonic::Code::Unauthenticated,
        403 => tonic::Code::PermissionDenied,
        404 => tonic::Code::Unimplemented,
        429 | 502..=504 => tonic::Code::Unavailable,
        _ => tonic::Code::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn route(path: &'static str, body: bool) -> Route {
        Route {
            service: "s",
            method: "m",
            http_method: if body { Method::POST } else { Method::GET },
            path,
            body,
        }
    }

    #[test]
    fn json_names_are_lower_camel_case() {
        assert_eq!(json_name("scheduler_name"), "schedulerName");
        assert_eq!(json_name("per_page"), "perPage");
        assert_eq!(json_name("name"), "name");
    }

    #[test]
    fn path_fields_are_encoded_and_not_repeated() {
        let message = json!({"schedulerName": "a b/c", "operationId": "x%y", "stage": "final"});
        let request = to_http(
            &route(
                "/schedulers/{scheduler_name}/operations/{operation_id}",
                false,
            ),
            &MetadataMap::new(),
            &message,
        )
        .unwrap();
        assert_eq!(
            request.uri().to_string(),
            "/schedulers/a%20b%2Fc/operations/x%25y?stage=final"
        );
    }

    #[test]
    fn empty_path_fields_are_refused() {
        let error = to_http(
            &route("/schedulers/{scheduler_name}", false),
            &MetadataMap::new(),
            &json!({"version": "v1"}),
        )
        .unwrap_err();
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
        assert_eq!(error.message(), "scheduler_name: is required");
    }

    #[test]
    fn body_routes_send_the_other_fields_as_json() {
        let mut metadata = MetadataMap::new();
        metadata.insert("authorization", "Bearer t".parse().unwrap());
        metadata.insert("idempotency-key", "k".parse().unwrap());
        metadata.insert("x-other", "no".parse().unwrap());
        let request = to_http(
            &route("/scheduler/{scheduler_name}/rooms/allocate", true),
            &metadata,
            &json!({"schedulerName": "s", "idempotencyKey": "b"}),
        )
        .unwrap();
        assert_eq!(request.uri(), "/scheduler/s/rooms/allocate");
        assert_eq!(request.headers()["authorization"], "Bearer t");
        assert_eq!(request.headers()["idempotency-key"], "k");
        assert_eq!(request.headers()["content-type"], "application/json");
        assert!(request.headers().get("x-other").is_none());
    }

    #[test]
    fn numbers_are_written_as_protojson_writes_them() {
        #[derive(Serialize)]
        struct Probe {
            float: f32,
            double: f64,
            whole: f64,
            nested: Vec<f64>,
            huge: f64,
        }
        let value = protojson(&Probe {
            float: 0.7,
            double: 0.1,
            whole: 3.0,
            nested: vec![-2.0, 2.5],
            huge: 1e300,
        })
        .unwrap();
        // Integers and floats compare unequal in serde_json: `whole` must be
        // the integer 3.
        assert_eq!(
            value,
            json!({"float": 0.7, "double": 0.1, "whole": 3, "nested": [-2, 2.5], "huge": 1e300})
        );
        assert_eq!(value["whole"].to_string(), "3");
    }

    #[test]
    fn queries_take_scalars_only() {
        let fields = json!({"a": "x&y", "n": 3, "b": true, "r": ["1", 2]});
        let Value::Object(fields) = fields else {
            unreachable!()
        };
        let query = query_string(&fields).unwrap();
        let mut pairs: Vec<&str> = query.split('&').collect();
        pairs.sort_unstable();
        assert_eq!(pairs, ["a=x%26y", "b=true", "n=3", "r=1", "r=2"]);
        let Value::Object(nested) = json!({"o": {"k": 1}}) else {
            unreachable!()
        };
        assert_eq!(
            query_string(&nested).unwrap_err().code(),
            tonic::Code::Internal
        );
    }

    #[test]
    fn errors_keep_code_and_message() {
        let status = error_status(
            StatusCode::NOT_FOUND,
            br#"{"code": 5, "message": "scheduler x not found", "details": []}"#,
        );
        assert_eq!(status.code(), tonic::Code::NotFound);
        assert_eq!(status.message(), "scheduler x not found");
        let status = error_status(StatusCode::BAD_GATEWAY, b"oops");
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(status.message(), "HTTP 502 Bad Gateway: oops");
    }
}
