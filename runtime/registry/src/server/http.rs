//! HTTP plumbing: Confluent's content types, JSON bodies in and out, query flags, version ids.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::types::VersionId;

/// The content type of every response.
pub(crate) const CONTENT_TYPE_V1: &str = "application/vnd.schemaregistry.v1+json";

/// Request content types accepted, as Confluent's server accepts them.
const ACCEPTED: [&str; 4] = [
    "application/vnd.schemaregistry.v1+json",
    "application/vnd.schemaregistry+json",
    "application/json",
    "application/octet-stream",
];

/// A response with `body` (already JSON) and Confluent's content type.
pub(crate) fn raw_json(status: StatusCode, body: Bytes) -> Response {
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_V1))],
        body,
    )
        .into_response()
}

/// A JSON response with Confluent's content type.
pub(crate) fn json_response<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => raw_json(status, Bytes::from(body)),
        Err(e) => raw_json(
            StatusCode::INTERNAL_SERVER_ERROR,
            Bytes::from(format!(
                "{{\"error_code\":50001,\"message\":{}}}",
                serde_json::Value::String(e.to_string())
            )),
        ),
    }
}

/// A 200 JSON response.
pub(crate) fn ok<T: Serialize + ?Sized>(value: &T) -> Response {
    json_response(StatusCode::OK, value)
}

/// Parses a JSON request body, checking its content type as Confluent does.
pub(crate) fn body<T: DeserializeOwned>(headers: &HeaderMap, bytes: &Bytes) -> Result<T, ApiError> {
    if let Some(ct) = headers.get(CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !essence.is_empty() && !ACCEPTED.contains(&essence.as_str()) {
            return Err(ApiError::unsupported_media_type(ct));
        }
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("Request body is empty"));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        if e.is_data() {
            ApiError::invalid_schema(format!("invalid request body: {e}"))
        } else {
            ApiError::bad_request(format!("Invalid JSON request body: {e}"))
        }
    })
}

/// Query parameters.
pub(crate) type Params = HashMap<String, String>;

/// A boolean query flag: `true` (any case) is true, anything else false — Confluent's Jersey reading.
pub(crate) fn flag(params: &Params, name: &str) -> bool {
    params
        .get(name)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Parses a version path segment: `latest`, `-1`, or 1..=2^31-1 (else 42202).
pub(crate) fn version_id(s: &str) -> Result<VersionId, ApiError> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("latest") {
        return Ok(VersionId::Latest);
    }
    match t.parse::<i64>() {
        Ok(-1) => Ok(VersionId::Latest),
        Ok(n) if (1..=i64::from(i32::MAX)).contains(&n) => Ok(VersionId::Number(n as u32)),
        _ => Err(ApiError::invalid_version(s)),
    }
}
