//! Errors as HTTP answers: a status code and a JSON body naming the kind.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use inferix_core::blob::BlobError;
use inferix_core::protocol::ErrorCode;
use inferix_node::ClientError;

use crate::model::{ErrorBody, ErrorDetail};

/// A failed request: the status it is answered with, a machine-readable
/// kind and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Kind, e.g. `not_found`, `payment_required`.
    pub code: &'static str,
    /// Explanation.
    pub message: String,
}

impl ApiError {
    /// An error of kind `code` answered with `status`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// A request whose values are wrong (400).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// What does not exist, or is not the caller's to see (404).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// No valid API key (401).
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
}

/// The status and kind of each protocol error.
fn of_code(code: ErrorCode) -> (StatusCode, &'static str) {
    match code {
        ErrorCode::InvalidRequest => (StatusCode::BAD_REQUEST, "invalid_request"),
        ErrorCode::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        ErrorCode::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
        ErrorCode::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
        ErrorCode::PaymentRequired => (StatusCode::PAYMENT_REQUIRED, "payment_required"),
        ErrorCode::LimitExceeded => (StatusCode::TOO_MANY_REQUESTS, "limit_exceeded"),
        ErrorCode::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        ErrorCode::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        ErrorCode::VersionMismatch => (StatusCode::BAD_GATEWAY, "version_mismatch"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Refused { code, message } => {
                let (status, code) = of_code(code);
                Self::new(status, code, message)
            }
            ClientError::Transport(t) => Self::new(
                StatusCode::BAD_GATEWAY,
                "manager_unreachable",
                format!("the manager cannot be reached: {t}"),
            ),
            ClientError::Blob(b) => b.into(),
            other => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                other.to_string(),
            ),
        }
    }
}

impl From<BlobError> for ApiError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::NotFound(h) => Self::not_found(format!("blob {h} not found")),
            BlobError::TooLarge { limit } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("uploads are limited to {limit} bytes"),
            ),
            other => Self::new(StatusCode::BAD_GATEWAY, "storage", other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
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

    #[test]
    fn refusals_map_to_their_statuses() {
        for (code, status) in [
            (ErrorCode::NotFound, 404),
            (ErrorCode::Unauthorized, 401),
            (ErrorCode::Forbidden, 403),
            (ErrorCode::PaymentRequired, 402),
            (ErrorCode::LimitExceeded, 429),
            (ErrorCode::TooLarge, 413),
            (ErrorCode::InvalidRequest, 400),
            (ErrorCode::Unavailable, 503),
            (ErrorCode::Internal, 500),
        ] {
            let e: ApiError = ClientError::Refused {
                code,
                message: "m".into(),
            }
            .into();
            assert_eq!(e.status.as_u16(), status, "{code:?}");
        }
    }
}
