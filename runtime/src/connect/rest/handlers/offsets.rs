//! `/connectors/{name}/offsets` (KIP-875): read, alter and reset a connector's committed offsets. The worker
//! refuses changes unless the connector is STOPPED.

use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::json;

use crate::connect::api::Offsets;
use crate::connect::rest::AppState;
use crate::connect::rest::error::{RestError, RestResult};
use crate::connect::rest::http::{from_value, ok, parse_json};

/// `GET /connectors/{name}/offsets`.
pub(crate) async fn get(State(state): State<AppState>, Path(name): Path<String>) -> RestResult {
    Ok(ok(&state.api.offsets(name).await?))
}

/// `PATCH /connectors/{name}/offsets`: 200 with Connect's message.
pub(crate) async fn alter(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> RestResult {
    let offsets: Offsets = from_value(parse_json(&body)?)?;
    if offsets.offsets.is_empty() {
        return Err(RestError::bad_request(
            "Partitions / offsets need to be provided for an alter offsets request",
        ));
    }
    state.api.alter_offsets(name, offsets).await?;
    Ok(ok(&json!({
        "message": "The offsets for this connector have been altered successfully"
    })))
}

/// `DELETE /connectors/{name}/offsets`: 200 with Connect's message.
pub(crate) async fn reset(State(state): State<AppState>, Path(name): Path<String>) -> RestResult {
    state.api.reset_offsets(name).await?;
    Ok(ok(&json!({
        "message": "The offsets for this connector have been reset successfully"
    })))
}
