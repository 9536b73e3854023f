//! `/connector-plugins`: the installed plugins and config validation.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;

use crate::connect::rest::AppState;
use crate::connect::rest::error::RestResult;
use crate::connect::rest::http::{flat_config, ok, parse_json};

/// `GET /connector-plugins` (`?connectorsOnly=` is accepted and moot: every plugin is a connector).
pub(crate) async fn list(State(state): State<AppState>) -> Response {
    ok(&state.api.plugins())
}

/// `PUT /connector-plugins/{plugin}/config/validate`: the body is a flat config.
pub(crate) async fn validate(
    State(state): State<AppState>,
    Path(plugin): Path<String>,
    body: Bytes,
) -> RestResult {
    let config = flat_config(parse_json(&body)?)?;
    Ok(ok(&state.api.validate(plugin, config)?))
}
