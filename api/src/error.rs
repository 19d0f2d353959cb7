//! Errors as grpc-gateway writes them: `{"code", "message", "details"}`
//! with the gRPC code, and the HTTP status grpc-gateway maps it to.

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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            code: self.code as i32,
            message: &self.message,
            details: [],
        };
        let mut response = (self.status(), Json(body)).into_response();
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
