//! Kafka Connect's error responses: `{"error_code": <http status>, "message": "…"}` with that HTTP status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::http::json;
use crate::connect::api::ApiError;

/// An error answered to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RestError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error_code: u16,
    message: &'a str,
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        json(
            self.status,
            &Body {
                error_code: self.status.as_u16(),
                message: &self.message,
            },
        )
    }
}

impl From<ApiError> for RestError {
    fn from(e: ApiError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        RestError::new(status, e.to_string())
    }
}

impl RestError {
    /// An error with `status` and `message`.
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        RestError {
            status,
            message: message.into(),
        }
    }

    /// 400 with `message`.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 for a path no route serves, worded as Jersey does.
    pub(crate) fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "HTTP 404 Not Found")
    }

    /// 405 for a method a route does not serve, worded as Jersey does.
    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "HTTP 405 Method Not Allowed",
        )
    }

    /// 401 for a missing or wrong bearer token.
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
}

/// The result of a handler.
pub(crate) type RestResult = Result<Response, RestError>;
