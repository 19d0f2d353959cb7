//! Errors as grpc-gateway writes them: `{"code", "message", "details"}`
//! with the gRPC code, and the HTTP status grpc-gateway maps it to.
//!
//! An internal error (any 5xx) gets an error id: it ends the answer's
//! message (`… (error id 1f3a…)`, which gRPC clients see in the status
//! message), comes back in the `x-error-id` header, and stands in the one
//! log line that records the error with its cause, so an operator goes
//! from a user's report to the cause in one search.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maestro_engine::CommandError;
use serde::Serialize;

/// The gRPC status codes the APIs answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    Unknown = 2,
    InvalidArgument = 3,
    NotFound = 5,
    AlreadyExists = 6,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
}

impl Code {
    /// grpc-gateway's `HTTPStatusFromCode`.
    pub fn http_status(self) -> StatusCode {
        match self {
            Code::InvalidArgument | Code::FailedPrecondition => StatusCode::BAD_REQUEST,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            Code::Unknown | Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        }
    }
}

/// An error answer. Handlers return it with `?`; it renders itself.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    /// Overrides the status the code maps to (only 405 needs it).
    status: Option<StatusCode>,
}

impl From<crate::backend::Unavailable> for ApiError {
    fn from(e: crate::backend::Unavailable) -> ApiError {
        ApiError::new(Code::Unavailable, e.0)
    }
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            status: None,
        }
    }

    pub fn invalid_argument(message: impl Into<String>) -> ApiError {
        ApiError::new(Code::InvalidArgument, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(Code::NotFound, message)
    }

    pub fn failed_precondition(message: impl Into<String>) -> ApiError {
        ApiError::new(Code::FailedPrecondition, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> ApiError {
        ApiError::new(Code::Unauthenticated, message)
    }

    /// A method the path does not serve; the code is grpc-gateway's, the
    /// status is HTTP's own 405.
    pub fn method_not_allowed() -> ApiError {
        ApiError {
            status: Some(StatusCode::METHOD_NOT_ALLOWED),
            ..ApiError::new(Code::Unimplemented, "Method Not Allowed")
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status.unwrap_or_else(|| self.code.http_status())
    }
}

/// Each engine refusal maps to the code upstream answers with.
impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> ApiError {
        let code = match &error {
            CommandError::Invalid(_) | CommandError::InvalidArgument(_) => Code::InvalidArgument,
            CommandError::NotFound(_) => Code::NotFound,
            CommandError::AlreadyExists(_) => Code::AlreadyExists,
            CommandError::Conflict(_) | CommandError::Unsupported(_) => Code::FailedPrecondition,
            CommandError::NotCancelable(_) => Code::Aborted,
            CommandError::Exhausted(_) => Code::ResourceExhausted,
            CommandError::Unavailable(_) => Code::Unavailable,
        };
        // `Invalid` displays as "Validation Error:\n" and one
        // "path: message" line per field, upstream's format.
        ApiError::new(code, error.to_string())
    }
}

#[derive(Serialize)]
struct Body<'a> {
    code: i32,
    message: &'a str,
    details: [(); 0],
}

/// The header an internal error's id comes back in.
pub const ERROR_ID_HEADER: &str = "x-error-id";

/// A fresh id for one internal error: unique within the process (a
/// counter) and unlikely to repeat across processes (hashed with a
/// per-process random key).
fn new_error_id() -> String {
    static KEY: OnceLock<RandomState> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}", KEY.get_or_init(RandomState::new).hash_one(n))
}

impl ApiError {
    /// The message the caller gets and the error's id. An internal error
    /// (5xx) gets a fresh id, and this is the one log line that records it
    /// with its cause.
    fn report(&self) -> (String, Option<String>) {
        let status = self.status();
        if !status.is_server_error() {
            return (self.message.clone(), None);
        }
        let id = new_error_id();
        tracing::error!(
            error_id = %id,
            code = self.code as i32,
            status = status.as_u16(),
            cause = %self.message,
            "request failed"
        );
        (format!("{} (error id {id})", self.message), Some(id))
    }
}

/// The same code and message as the HTTP answer, with the error id in the
/// `x-error-id` metadata.
impl From<ApiError> for tonic::Status {
    fn from(error: ApiError) -> tonic::Status {
        let (message, error_id) = error.report();
        let mut status = tonic::Status::new(tonic::Code::from_i32(error.code as i32), message);
        if let Some(id) = error_id
            && let Ok(value) = id.parse()
        {
            status.metadata_mut().insert(ERROR_ID_HEADER, value);
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (message, error_id) = self.report();
        let body = Body {
            code: self.code as i32,
            message: &message,
            details: [],
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(id) = error_id
            && let Ok(value) = header::HeaderValue::from_str(&id)
        {
            response.headers_mut().insert(ERROR_ID_HEADER, value);
        }
        if self.code == Code::Unauthenticated {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maestro_engine::OperationStatus;
    use std::sync::{Arc, Mutex};

    /// Log lines written while `f` runs.
    fn logged(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Lines(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = lines.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    async fn render(error: ApiError) -> (StatusCode, Option<String>, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let id = response
            .headers()
            .get(ERROR_ID_HEADER)
            .map(|v| v.to_str().unwrap().to_string());
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, id, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn an_internal_error_has_an_id_in_the_answer_and_the_log() {
        let mut rendered = None;
        let log = logged(|| {
            let error = ApiError::new(Code::Unavailable, "the store failed: disk full");
            rendered = Some(error.into_response());
        });
        let response = rendered.unwrap();
        let id = response.headers()[ERROR_ID_HEADER]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(id.len(), 16, "{id}");
        let line: Vec<&str> = log.lines().filter(|l| l.contains(&id)).collect();
        assert_eq!(line.len(), 1, "one log line with the id: {log}");
        assert!(line[0].contains("the store failed: disk full"), "{log}");

        let (status, id, body) = render(ApiError::new(Code::Internal, "the engine broke")).await;
        let id = id.expect("an id");
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body["message"],
            format!("the engine broke (error id {id})"),
            "{body}"
        );
        let (_, other, _) = render(ApiError::new(Code::Internal, "again")).await;
        assert_ne!(other.unwrap(), id, "every error gets its own id");
    }

    #[tokio::test]
    async fn a_client_error_has_no_id() {
        let (status, id, body) = render(ApiError::not_found("scheduler x not found")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(id, None);
        assert_eq!(body["message"], "scheduler x not found");
    }
    use maestro_engine::scheduler::{FieldError, ValidationErrors};

    #[test]
    fn command_errors_map_to_upstream_statuses() {
        let invalid = CommandError::Invalid(ValidationErrors(vec![
            FieldError {
                path: "name".into(),
                message: "is required".into(),
            },
            FieldError {
                path: "spec.containers".into(),
                message: "must have at least one container".into(),
            },
        ]));
        let table = [
            (invalid, StatusCode::BAD_REQUEST, 3),
            (
                CommandError::InvalidArgument("x".into()),
                StatusCode::BAD_REQUEST,
                3,
            ),
            (CommandError::NotFound("s".into()), StatusCode::NOT_FOUND, 5),
            (
                CommandError::AlreadyExists("s".into()),
                StatusCode::CONFLICT,
                6,
            ),
            (
                CommandError::Conflict("x".into()),
                StatusCode::BAD_REQUEST,
                9,
            ),
            (
                CommandError::NotCancelable(OperationStatus::Finished),
                StatusCode::CONFLICT,
                10,
            ),
            (
                CommandError::Unsupported("x".into()),
                StatusCode::BAD_REQUEST,
                9,
            ),
            (
                CommandError::Exhausted("x".into()),
                StatusCode::TOO_MANY_REQUESTS,
                8,
            ),
            (
                CommandError::Unavailable("x".into()),
                StatusCode::SERVICE_UNAVAILABLE,
                14,
            ),
        ];
        for (error, status, code) in table {
            let api = ApiError::from(error);
            assert_eq!((api.status(), api.code as i32), (status, code), "{api:?}");
        }
        let api = ApiError::from(CommandError::Invalid(ValidationErrors(vec![FieldError {
            path: "game".into(),
            message: "is required".into(),
        }])));
        assert_eq!(api.message, "Validation Error:\ngame: is required");
    }
}
