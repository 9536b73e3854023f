//! `/config` and `/config/{subject}`: compatibility levels.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::{check_subject, respond, write};
use crate::server::AppState;
use crate::server::error::ApiError;
use crate::server::http::{self, Params, flag};
use crate::server::persist::Record;
use crate::types::{CompatibilityLevel, parse_level};

#[derive(Serialize)]
struct LevelResponse {
    #[serde(rename = "compatibilityLevel")]
    compatibility_level: &'static str,
}

#[derive(Serialize)]
struct UpdateResponse {
    compatibility: &'static str,
}

#[derive(Deserialize)]
struct UpdateRequest {
    #[serde(default)]
    compatibility: Option<String>,
    #[serde(rename = "compatibilityLevel", default)]
    compatibility_level: Option<String>,
}

fn level_of(headers: &HeaderMap, body: &Bytes) -> Result<CompatibilityLevel, ApiError> {
    let request: UpdateRequest = http::body(headers, body)?;
    request
        .compatibility
        .or(request.compatibility_level)
        .as_deref()
        .and_then(parse_level)
        .ok_or_else(ApiError::invalid_compatibility)
}

fn level_response(level: CompatibilityLevel) -> Response {
    http::ok(&LevelResponse {
        compatibility_level: level.as_str(),
    })
}

/// `GET /config`.
pub(crate) async fn get_global(State(state): State<AppState>) -> Response {
    level_response(state.store.read().await.global_level().unwrap_or_default())
}

/// `PUT /config` `{"compatibility": "FULL"}` → echoes it.
pub(crate) async fn put_global(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    put(state, None, headers, body).await
}

/// `DELETE /config`: back to the default; answers the level it had.
pub(crate) async fn delete_global(State(state): State<AppState>) -> Response {
    let result = write(&state, |store| {
        if store.global_mode().is_read_only() {
            return Err(ApiError::read_only(None));
        }
        let old = store.global_level().unwrap_or_default();
        let record = Record::Config {
            subject: None,
            compatibility: None,
        };
        Ok((Some(record.into()), old))
    })
    .await;
    respond(result.map(level_response))
}

/// `GET /config/{subject}` (`?defaultToGlobal=true`): 40408 if the subject has no level of its own.
pub(crate) async fn get_subject(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    Query(params): Query<Params>,
) -> Response {
    let store = state.store.read().await;
    let own = store.subject(&subject).and_then(|s| s.compatibility);
    let level = if flag(&params, "defaultToGlobal") {
        Some(store.effective_level(&subject))
    } else {
        own
    };
    respond(
        level
            .map(level_response)
            .ok_or_else(|| ApiError::compatibility_not_configured(&subject)),
    )
}

/// `PUT /config/{subject}` `{"compatibility": "FULL"}` → echoes it.
pub(crate) async fn put_subject(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    put(state, Some(subject), headers, body).await
}

async fn put(
    state: AppState,
    subject: Option<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let level = match level_of(&headers, &body) {
        Ok(l) => l,
        Err(e) => return respond(Err(e)),
    };
    let result = write(&state, move |store| {
        if let Some(s) = &subject {
            check_subject(s)?;
        }
        let mode = match &subject {
            Some(s) => store.effective_mode(s),
            None => store.global_mode(),
        };
        if mode.is_read_only() {
            return Err(ApiError::read_only(subject.as_deref()));
        }
        let record = Record::Config {
            subject,
            compatibility: Some(level.as_str().to_owned()),
        };
        Ok((Some(record.into()), ()))
    })
    .await;
    respond(result.map(|()| {
        http::ok(&UpdateResponse {
            compatibility: level.as_str(),
        })
    }))
}

/// `DELETE /config/{subject}`: back to the global level; answers the level it had (40401 if none).
pub(crate) async fn delete_subject(
    State(state): State<AppState>,
    Path(subject): Path<String>,
) -> Response {
    let result = write(&state, move |store| {
        let old = store
            .subject(&subject)
            .and_then(|s| s.compatibility)
            .ok_or_else(|| ApiError::subject_not_found(&subject))?;
        if store.effective_mode(&subject).is_read_only() {
            return Err(ApiError::read_only(Some(&subject)));
        }
        let record = Record::Config {
            subject: Some(subject.clone()),
            compatibility: None,
        };
        Ok((Some(record.into()), old))
    })
    .await;
    respond(result.map(level_response))
}
