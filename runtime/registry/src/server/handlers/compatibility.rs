//! `/compatibility/subjects/{subject}/versions[/{version}]`: would this schema be compatible?

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Serialize;
use ursa_avro::schema::SchemaSet;

use super::{SchemaRequest, respond};
use crate::server::AppState;
use crate::server::error::ApiError;
use crate::server::http::{self, Params, flag, version_id};
use crate::server::schema;
use crate::server::store::context_of;
use crate::types::VersionId;

#[derive(Serialize)]
struct CheckResponse {
    is_compatible: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<Vec<String>>,
}

/// `POST /compatibility/subjects/{subject}/versions/{version}` (`?verbose=true`): against that version (or
/// the latest; compatible if the subject has none).
pub(crate) async fn version(
    State(state): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Query<Params>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(check(&state, &subject, Some(&version), &params, &headers, &body).await)
}

/// `POST /compatibility/subjects/{subject}/versions` (`?verbose=true`): against the versions a registration
/// would be checked against.
pub(crate) async fn all(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    Query(params): Query<Params>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(check(&state, &subject, None, &params, &headers, &body).await)
}

async fn check(
    state: &AppState,
    subject: &str,
    version: Option<&str>,
    params: &Params,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let request: SchemaRequest = http::body(headers, body)?;
    let verbose = flag(params, "verbose");
    let version = version.map(version_id).transpose()?;
    let store = state.store.read().await;
    let (_, _, parsed) = request.prepare(
        &store,
        context_of(subject),
        &request.contract(),
        flag(params, "normalize"),
    )?;
    let history: Vec<Arc<SchemaSet>> = match version {
        None => store.history(subject),
        Some(VersionId::Latest) => store
            .find_version(subject, VersionId::Latest, false)
            .and_then(|(_, v)| store.parsed_set(context_of(subject), v.id))
            .into_iter()
            .collect(),
        Some(VersionId::Number(n)) => {
            if !store.has_subject(subject, false) {
                return Err(ApiError::subject_not_found(subject));
            }
            let (_, v) = store
                .find_version(subject, VersionId::Number(n), false)
                .ok_or_else(|| ApiError::version_not_found(n))?;
            store
                .parsed_set(context_of(subject), v.id)
                .into_iter()
                .collect()
        }
    };
    let level = store.effective_level(subject);
    let report = schema::check(level, &parsed.set, &history);
    Ok(http::ok(&CheckResponse {
        is_compatible: report.is_compatible,
        messages: verbose.then(|| schema::messages(&report, level)),
    }))
}
