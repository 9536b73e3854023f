//! `GET /` (server info), `GET /health` and `GET /metrics`.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::connect::rest::AppState;
use crate::connect::rest::http::{json, ok};

/// Prometheus' text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /`.
pub(crate) async fn server_info(State(state): State<AppState>) -> Response {
    ok(&state.api.server_info().await)
}

/// `GET /health`: 200 when the worker is ready, 503 otherwise.
pub(crate) async fn health(State(state): State<AppState>) -> Response {
    let health = state.api.health().await;
    let status = if health.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(status, &health)
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static(PROMETHEUS_TEXT))],
        state.api.metrics(),
    )
        .into_response()
}
