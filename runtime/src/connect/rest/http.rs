//! HTTP plumbing: JSON responses, request bodies parsed as Connect (Jackson) accepts them, query flags, and
//! `Location` paths.

use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::RestError;
use crate::connect::api::FlatConfig;

/// The content type of every JSON response.
pub(crate) const APPLICATION_JSON: &str = "application/json";

/// A JSON response with `status`.
pub(crate) fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (
            status,
            [(CONTENT_TYPE, HeaderValue::from_static(APPLICATION_JSON))],
            body,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(CONTENT_TYPE, HeaderValue::from_static(APPLICATION_JSON))],
            serde_json::json!({"error_code": 500, "message": e.to_string()}).to_string(),
        )
            .into_response(),
    }
}

/// A 200 JSON response.
pub(crate) fn ok<T: Serialize + ?Sized>(value: &T) -> Response {
    json(StatusCode::OK, value)
}

/// Parses a request body as JSON (the guard has already refused bodies not sent as `application/json`).
pub(crate) fn parse_json(bytes: &Bytes) -> Result<Value, RestError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(RestError::bad_request("Request body must not be empty"));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| RestError::bad_request(format!("Malformed JSON in request body: {e}")))
}

/// Converts a parsed body into `T`, answering 400 when it has the wrong shape.
pub(crate) fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, RestError> {
    serde_json::from_value(value)
        .map_err(|e| RestError::bad_request(format!("Cannot deserialize request body: {e}")))
}

/// A connector config as Connect reads it: an object whose scalar values are taken as strings (Jackson turns
/// `"tasks.max": 1` into `"1"`); `null`, objects and arrays are refused.
pub(crate) fn flat_config(value: Value) -> Result<FlatConfig, RestError> {
    let Value::Object(map) = value else {
        return Err(RestError::bad_request(format!(
            "Cannot deserialize request body: expected a JSON object of config keys to string values, found {}",
            kind(&value)
        )));
    };
    map.into_iter()
        .map(|(key, value)| {
            let value = match value {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => {
                    return Err(RestError::bad_request(format!(
                        "Cannot deserialize value of config key '{key}': expected a string, found {}",
                        kind(&other)
                    )));
                }
            };
            Ok((key, value))
        })
        .collect()
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A boolean query parameter as JAX-RS reads one (`Boolean.valueOf`): `true` in any case is true, anything
/// else (including Python's `False`) false; absent is `false`.
pub(crate) fn query_flag(query: &[(String, String)], name: &str) -> bool {
    query
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .is_some_and(|(_, v)| v.eq_ignore_ascii_case("true"))
}

/// Every value of a repeated query parameter, in order.
pub(crate) fn query_all<'a>(
    query: &'a [(String, String)],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    query
        .iter()
        .filter(move |(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `/connectors/{name}` with the name percent-encoded as one path segment.
pub(crate) fn connector_location(name: &str) -> String {
    let mut out = String::from("/connectors/");
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
