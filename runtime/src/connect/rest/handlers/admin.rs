//! `/admin/loggers[/{logger}]`: the worker's log levels, read and changed at run time (Kafka Connect's
//! KIP-495 API over the process's tracing filter).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

use crate::connect::rest::AppState;
use crate::connect::rest::error::{RestError, RestResult};
use crate::connect::rest::http::{from_value, ok, parse_json, query_all};

/// `GET /admin/loggers`: the loggers with a level of their own.
pub(crate) async fn loggers(State(state): State<AppState>) -> RestResult {
    Ok(ok(&state.api.loggers()))
}

/// `GET /admin/loggers/{logger}` (`root`: the default level).
pub(crate) async fn logger(
    State(state): State<AppState>,
    Path(logger): Path<String>,
) -> RestResult {
    Ok(ok(&state.api.logger(logger)?))
}

/// `PUT /admin/loggers/{logger}`'s body.
#[derive(Deserialize)]
struct LevelRequest {
    level: Option<String>,
}

/// `PUT /admin/loggers/{logger}` with `{"level": "DEBUG"}`: 200 with the loggers changed. `scope=cluster` is
/// refused: each worker's level is set on that worker.
pub(crate) async fn set_logger(
    State(state): State<AppState>,
    Path(logger): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> RestResult {
    if query_all(&query, "scope").any(|s| s.eq_ignore_ascii_case("cluster")) {
        return Err(RestError::bad_request(
            "scope=cluster is not supported: set the level on each worker (scope=worker)",
        ));
    }
    let request: LevelRequest = from_value(parse_json(&body)?)?;
    let Some(level) = request.level else {
        return Err(RestError::bad_request(
            "Desired 'level' parameter was not specified in the request.",
        ));
    };
    Ok(ok(&state.api.set_logger_level(logger, level)?))
}
