//! `/mode` and `/mode/{subject}`: READWRITE, READONLY, READONLY_OVERRIDE, IMPORT.

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
use crate::types::Mode;

#[derive(Serialize)]
struct ModeBody {
    mode: &'static str,
}

#[derive(Deserialize)]
struct ModeRequest {
    #[serde(default)]
    mode: Option<String>,
}

fn mode_response(mode: Mode) -> Response {
    http::ok(&ModeBody {
        mode: mode.as_str(),
    })
}

/// `GET /mode`.
pub(crate) async fn get_global(State(state): State<AppState>) -> Response {
    mode_response(state.store.read().await.global_mode())
}

/// `PUT /mode` `{"mode": "READONLY"}` (`?force=true` to enter IMPORT with subjects present) → echoes it.
pub(crate) async fn put_global(
    State(state): State<AppState>,
    Query(params): Query<Params>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    put(state, None, params, headers, body).await
}

/// `GET /mode/{subject}` (`?defaultToGlobal=true`): 40409 if the subject has no mode of its own.
pub(crate) async fn get_subject(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    Query(params): Query<Params>,
) -> Response {
    let store = state.store.read().await;
    let mode = if flag(&params, "defaultToGlobal") {
        Some(store.effective_mode(&subject))
    } else {
        store.subject(&subject).and_then(|s| s.mode)
    };
    respond(
        mode.map(mode_response)
            .ok_or_else(|| ApiError::mode_not_configured(&subject)),
    )
}

/// `PUT /mode/{subject}` `{"mode": "READONLY"}` → echoes it.
pub(crate) async fn put_subject(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    Query(params): Query<Params>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    put(state, Some(subject), params, headers, body).await
}

async fn put(
    state: AppState,
    subject: Option<String>,
    params: Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mode = match http::body::<ModeRequest>(&headers, &body).and_then(|r| {
        r.mode
            .as_deref()
            .and_then(Mode::parse)
            .ok_or_else(ApiError::invalid_mode)
    }) {
        Ok(m) => m,
        Err(e) => return respond(Err(e)),
    };
    let force = flag(&params, "force");
    let result = write(&state, move |store| {
        if let Some(s) = &subject {
            check_subject(s)?;
        }
        if mode == Mode::Import && !force {
            let busy = match &subject {
                Some(s) => store.has_subject(s, true),
                None => store.subjects().any(|(_, s)| !s.versions.is_empty()),
            };
            if busy {
                return Err(ApiError::not_permitted(
                    "Cannot import since found existing subjects",
                ));
            }
        }
        let record = Record::Mode {
            subject,
            mode: Some(mode.as_str().to_owned()),
        };
        Ok((Some(record.into()), ()))
    })
    .await;
    respond(result.map(|()| mode_response(mode)))
}

/// `DELETE /mode/{subject}`: back to the global mode; answers the mode it had (40401 if none).
pub(crate) async fn delete_subject(
    State(state): State<AppState>,
    Path(subject): Path<String>,
) -> Response {
    let result = write(&state, move |store| {
        let old = store
            .subject(&subject)
            .and_then(|s| s.mode)
            .ok_or_else(|| ApiError::subject_not_found(&subject))?;
        let record = Record::Mode {
            subject: Some(subject.clone()),
            mode: None,
        };
        Ok((Some(record.into()), old))
    })
    .await;
    respond(result.map(mode_response))
}
