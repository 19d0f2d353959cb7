//! Request parsing that answers in the API's error format: every failure
//! is a 400 with a message naming the offending field, never a panic or a
//! 500 (axum's own extractors answer in plain text).

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use http_body_util::LengthLimitError;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Reads a JSON object body of at most `limit` bytes into `T`.
///
/// As grpc-gateway, an empty body is an empty message (`{}`). Errors name
/// the field by its JSON path, e.g.
/// `spec.containers[0].ports[0].port: invalid type: …`.
pub(crate) async fn read_json<T: DeserializeOwned>(
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(error) => {
            let too_large = std::error::Error::source(&error)
                .is_some_and(|source| source.is::<LengthLimitError>());
            return Err(ApiError::invalid_argument(if too_large {
                format!("request body is larger than the limit of {limit} bytes")
            } else {
                format!("cannot read the request body: {error}")
            }));
        }
    };
    parse_json(&bytes)
}

/// Parses a JSON object into `T`; see [`read_json`].
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let bytes: &[u8] = match start {
        None => b"{}",
        // serde would read a struct from an array too; protojson only
        // takes an object.
        Some(i) if bytes[i] != b'{' => {
            return Err(ApiError::invalid_argument(
                "request body must be a JSON object",
            ));
        }
        Some(_) => bytes,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        // serde_path_to_error writes `.` for the root and `?` for a key it
        // had not read yet (for instance at the end of the input).
        let path = error.path().to_string();
        let path = path.trim_end_matches(".?");
        let inner = error.into_inner();
        if path == "." || path == "?" {
            ApiError::invalid_argument(format!("invalid request body: {inner}"))
        } else {
            ApiError::invalid_argument(format!("{path}: {inner}"))
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::invalid_argument(format!("invalid request body: {e}")))?;
    Ok(value)
}

/// The query string as name/value pairs.
pub(crate) struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    /// The last value given under any of `names` (grpc-gateway accepts the
    /// proto name and the JSON name of a field, e.g. `per_page` and `perPage`).
    pub fn get(&self, names: &[&str]) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(name, _)| names.contains(&name.as_str()))
            .map(|(_, value)| value.as_str())
    }

    /// Like [`get`](Self::get), with an empty value read as absent (proto3's
    /// zero string means "not set").
    pub fn non_empty(&self, names: &[&str]) -> Option<&str> {
        self.get(names).filter(|v| !v.is_empty())
    }

    /// An unsigned integer parameter, with grpc-gateway's kind of message
    /// when it does not parse.
    pub fn u32(&self, names: &[&str]) -> Result<Option<u32>, ApiError> {
        match self.get(names) {
            None => Ok(None),
            Some(text) => text.parse::<u32>().map(Some).map_err(|_| {
                ApiError::invalid_argument(format!(
                    "parsing field {:?}: {text:?} is not an unsigned 32-bit integer",
                    names[0]
                ))
            }),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map(|Query(pairs)| QueryParams(pairs))
            .map_err(|e| ApiError::invalid_argument(format!("invalid query string: {e}")))
    }
}

/// Path parameters, with the API's error format.
pub(crate) struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| PathParams(value))
            .map_err(|e| ApiError::invalid_argument(e.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::SchedulerRequest;

    #[test]
    fn errors_name_the_field() {
        let body = br#"{"name": "s", "spec": {"containers": [{"ports": [{"port": "x"}]}]}}"#;
        let error = parse_json::<SchedulerRequest>(body).unwrap_err();
        assert!(
            error
                .message
                .starts_with("spec.containers[0].ports[0].port: "),
            "{}",
            error.message
        );
        let error = parse_json::<SchedulerRequest>(br#"{"roomsReplicas": true}"#).unwrap_err();
        assert!(
            error.message.starts_with("roomsReplicas: "),
            "{}",
            error.message
        );
    }

    #[test]
    fn empty_bodies_and_non_objects() {
        assert_eq!(
            parse_json::<SchedulerRequest>(b"  ").unwrap(),
            SchedulerRequest::default()
        );
        for body in [&b"[]"[..], b"null", b"\"x\"", b"{", b"{} {}"] {
            assert!(parse_json::<SchedulerRequest>(body).is_err(), "{body:?}");
        }
    }
}
