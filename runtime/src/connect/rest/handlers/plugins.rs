//! `/connector-plugins`: the installed plugins and config validation.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::connect::rest::AppState;
use crate::connect::rest::error::{RestError, RestResult};
use crate::connect::rest::http::{flat_config, ok, parse_json};

/// `GET /connector-plugins` (`?connectorsOnly=` is accepted and moot: every plugin is a connector).
pub(crate) async fn list(State(state): State<AppState>) -> Response {
    ok(&state.api.plugins())
}

/// `GET /connector-plugins/{plugin}/config` (KIP-769): every key's definition, as validate shows them.
pub(crate) async fn config(
    State(state): State<AppState>,
    Path(plugin): Path<String>,
) -> RestResult {
    Ok(ok(&state.api.plugin_config(plugin)?))
}

/// `PUT /connector-plugins/{plugin}/config/validate`: the body is a flat config. A secret reference the
/// worker does not allow over REST is an error of its key, and is neither resolved nor validated further.
pub(crate) async fn validate(
    State(state): State<AppState>,
    Path(plugin): Path<String>,
    body: Bytes,
) -> RestResult {
    let config = flat_config(parse_json(&body)?)?;
    let refused = state.references.refused(&config).await;
    let mut allowed = config.clone();
    for key in refused.keys() {
        allowed.remove(key);
    }
    // Resolving references reads files: off the async threads.
    let api = Arc::clone(&state.api);
    let mut result = tokio::task::spawn_blocking(move || api.validate(plugin, allowed))
        .await
        .map_err(|e| RestError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    for (key, why) in refused {
        result.set_errors(&key, config.get(&key).map(String::as_str), vec![why]);
    }
    Ok(ok(&result))
}
