//! The one error type of the gateway and the one table that maps its codes onto gRPC and HTTP.
//!
//! Every refusal anywhere (validation, auth, not found, queue full, draining) is a
//! [`GatewayError`]; transports convert it with `From<GatewayError> for tonic::Status` and
//! `IntoResponse`, and nowhere else decide a status code.

use axum::response::{IntoResponse, Response};
use http::StatusCode;

/// Stable, machine-readable error codes (GATEWAY.md §8). The string form is part of the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidArgument,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    QueueFull,
    RateLimited,
    FailedPrecondition,
    Unavailable,
    Unimplemented,
    Internal,
}

impl ErrorCode {
    /// The one table: (code string, gRPC code, HTTP status).
    #[rustfmt::skip]
    fn row(self) -> (&'static str, tonic::Code, StatusCode) {
        use ErrorCode::*;
        match self {
            InvalidArgument => ("invalid_argument", tonic::Code::InvalidArgument, StatusCode::BAD_REQUEST),
            Unauthenticated => ("unauthenticated", tonic::Code::Unauthenticated, StatusCode::UNAUTHORIZED),
            PermissionDenied => ("permission_denied", tonic::Code::PermissionDenied, StatusCode::FORBIDDEN),
            NotFound => ("not_found", tonic::Code::NotFound, StatusCode::NOT_FOUND),
            MethodNotAllowed => ("method_not_allowed", tonic::Code::Unimplemented, StatusCode::METHOD_NOT_ALLOWED),
            Conflict => ("conflict", tonic::Code::AlreadyExists, StatusCode::CONFLICT),
            PayloadTooLarge => ("payload_too_large", tonic::Code::ResourceExhausted, StatusCode::PAYLOAD_TOO_LARGE),
            QueueFull => ("queue_full", tonic::Code::ResourceExhausted, StatusCode::TOO_MANY_REQUESTS),
            RateLimited => ("rate_limited", tonic::Code::ResourceExhausted, StatusCode::TOO_MANY_REQUESTS),
            FailedPrecondition => ("failed_precondition", tonic::Code::FailedPrecondition, StatusCode::BAD_REQUEST),
            Unavailable => ("unavailable", tonic::Code::Unavailable, StatusCode::SERVICE_UNAVAILABLE),
            Unimplemented => ("unimplemented", tonic::Code::Unimplemented, StatusCode::NOT_IMPLEMENTED),
            Internal => ("internal", tonic::Code::Internal, StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    pub fn as_str(self) -> &'static str {
        self.row().0
    }

    pub fn grpc(self) -> tonic::Code {
        self.row().1
    }

    pub fn http(self) -> StatusCode {
        self.row().2
    }
}

/// A refused call: a code from the table and a message for humans (the seeds' exact wording
/// where they have one).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct GatewayError {
    pub code: ErrorCode,
    pub message: String,
    /// Seconds, sent as `Retry-After` on HTTP when known.
    pub retry_after: Option<u64>,
}

pub type Result<T, E = GatewayError> = std::result::Result<T, E>;

impl GatewayError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), retry_after: None }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn session_not_found(key: &str) -> Self {
        Self::not_found(format!("Session not found: {key}"))
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    pub fn unauthenticated() -> Self {
        Self::new(ErrorCode::Unauthenticated, "Unauthorized")
    }

    pub fn failed_precondition(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::FailedPrecondition, message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::PayloadTooLarge, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    /// A caller was waiting on a run when the gateway shut down.
    pub fn shutting_down() -> Self {
        Self::unavailable(
            "The gateway is shutting down; a message that had not started stays queued and runs \
             after the next start",
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// A feature that a later piece of work delivers: refused clearly, never faked.
    /// 429 `rate_limited` (RESOURCE_EXHAUSTED), with `Retry-After` (also as gRPC metadata).
    pub fn rate_limited(message: impl Into<String>, retry_after: u64) -> Self {
        Self { retry_after: Some(retry_after.max(1)), ..Self::new(ErrorCode::RateLimited, message) }
    }

    pub fn unimplemented(what: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::Unimplemented, format!("Not implemented yet: {what}"))
    }

    /// The HTTP response with another status than the table's, for the few places where the
    /// seeds fixed one (steer's queue-full fallback answers 409).
    pub fn into_response_with(self, status: StatusCode) -> Response {
        let mut response = self.into_response();
        *response.status_mut() = status;
        response
    }
}

impl From<GatewayError> for tonic::Status {
    fn from(err: GatewayError) -> Self {
        let mut status = tonic::Status::new(err.code.grpc(), err.message);
        if let Some(seconds) = err.retry_after {
            status.metadata_mut().insert("retry-after", seconds.into());
        }
        status
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message, "code": self.code.as_str() });
        let mut response = (self.code.http(), axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_the_spec() {
        assert_eq!(ErrorCode::QueueFull.http(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(ErrorCode::QueueFull.grpc(), tonic::Code::ResourceExhausted);
        assert_eq!(ErrorCode::Conflict.grpc(), tonic::Code::AlreadyExists);
        assert_eq!(ErrorCode::FailedPrecondition.http(), StatusCode::BAD_REQUEST);
        assert_eq!(ErrorCode::Unavailable.as_str(), "unavailable");
    }
}
