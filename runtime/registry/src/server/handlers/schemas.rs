//! `/schemas/…`: schemas by global id, and the supported types.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::respond;
use super::subjects::paginate;
use crate::server::AppState;
use crate::server::error::ApiError;
use crate::server::http::{self, Params, flag};
use crate::types::SubjectVersion;

fn parse_id(id: &str) -> Result<u32, ApiError> {
    id.trim()
        .parse::<u32>()
        .map_err(|_| ApiError::schema_id_not_found(id))
}

/// `GET /schemas/ids/{id}` → `{schema, references?}`: a read lock and a body serialized at registration.
pub(crate) async fn by_id(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return respond(Err(e)),
    };
    let body = state.store.read().await.schema(id).map(|e| e.by_id.clone());
    match body {
        Some(body) => http::raw_json(StatusCode::OK, body),
        None => respond(Err(ApiError::schema_id_not_found(id))),
    }
}

/// `GET /schemas/ids/{id}/schema`: the schema text alone.
pub(crate) async fn by_id_schema(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return respond(Err(e)),
    };
    let text = state.store.read().await.schema(id).map(|e| e.text.clone());
    match text {
        Some(text) => http::raw_json(StatusCode::OK, Bytes::from(text.to_string())),
        None => respond(Err(ApiError::schema_id_not_found(id))),
    }
}

/// The (subject, version) pairs holding schema `id`.
async fn usages(
    state: &AppState,
    id: &str,
    params: &Params,
) -> Result<Vec<SubjectVersion>, ApiError> {
    let id = parse_id(id)?;
    let deleted = flag(params, "deleted");
    let only = params.get("subject");
    let store = state.store.read().await;
    if store.schema(id).is_none() {
        return Err(ApiError::schema_id_not_found(id));
    }
    let found: Vec<SubjectVersion> = store
        .subjects()
        .filter(|(name, _)| only.is_none_or(|o| o == *name))
        .flat_map(|(name, s)| {
            s.versions
                .iter()
                .filter(move |(_, v)| v.id == id && (deleted || !v.deleted))
                .map(move |(n, _)| SubjectVersion {
                    subject: name.clone(),
                    version: *n,
                })
        })
        .collect();
    Ok(paginate(found.into_iter(), params).collect())
}

/// `GET /schemas/ids/{id}/subjects` (`?deleted=true`).
pub(crate) async fn subjects(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<Params>,
) -> Response {
    respond(usages(&state, &id, &params).await.map(|found| {
        let mut names: Vec<String> = found.into_iter().map(|sv| sv.subject).collect();
        names.dedup();
        http::ok(&names)
    }))
}

/// `GET /schemas/ids/{id}/versions` (`?deleted=true`) → `[{subject, version}]`.
pub(crate) async fn versions(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<Params>,
) -> Response {
    respond(
        usages(&state, &id, &params)
            .await
            .map(|found| http::ok(&found)),
    )
}

/// `GET /schemas/types`.
pub(crate) async fn types() -> Response {
    http::ok(&["AVRO"])
}
