//! `/schemas…`: every schema, schemas by global id, and the supported types.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::respond;
use super::subjects::paginate;
use crate::server::AppState;
use crate::server::error::ApiError;
use crate::server::http::{self, Params, flag};
use crate::server::store::{DEFAULT_CONTEXT, context_of};
use crate::types::{RegisteredSchema, SubjectVersion};

/// A schema id path segment. Confluent's `{id}` is a Java `Integer`: text that is not one does not match the
/// path (a plain 404); an integer that is no id (negative, unknown) is 40403.
fn parse_id(id: &str) -> Result<u32, ApiError> {
    let n = id.parse::<i32>().map_err(|_| ApiError::not_found())?;
    u32::try_from(n).map_err(|_| ApiError::schema_id_not_found(n))
}

/// The context a schema id is looked up in: the one of `?subject=` (`:.staging:` or `:.staging:orders-value`),
/// else the default context.
fn id_context(params: &Params) -> &str {
    params
        .get("subject")
        .map_or(DEFAULT_CONTEXT, |s| context_of(s))
}

/// Answers `part` of schema `id` in the context `?subject=` picks, else 40403.
async fn by_id_part(
    state: &AppState,
    id: &str,
    params: &Params,
    part: impl Fn(&crate::server::store::SchemaEntry) -> Bytes,
) -> Response {
    let id = match parse_id(id) {
        Ok(id) => id,
        Err(e) => return respond(Err(e)),
    };
    let body = state
        .store
        .read()
        .await
        .schema(id_context(params), id)
        .map(|e| part(e));
    match body {
        Some(body) => http::raw_json(StatusCode::OK, body),
        None => respond(Err(ApiError::schema_id_not_found(id))),
    }
}

/// `GET /schemas/ids/{id}` (`?subject=` picks the context) → `{schema, references?}`: a read lock and a body
/// serialized at registration.
pub(crate) async fn by_id(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<Params>,
) -> Response {
    by_id_part(&state, &id, &params, |e| e.by_id.clone()).await
}

/// `GET /schemas/ids/{id}/schema`: the schema text alone.
pub(crate) async fn by_id_schema(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<Params>,
) -> Response {
    by_id_part(&state, &id, &params, |e| Bytes::from(e.text.to_string())).await
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
    let ctx = id_context(params);
    let store = state.store.read().await;
    if store.schema(ctx, id).is_none() {
        return Err(ApiError::schema_id_not_found(id));
    }
    // `?subject=:.ctx:` names the context only; a whole subject names one subject.
    let only = only.filter(|o| !o.ends_with(':'));
    let found: Vec<SubjectVersion> = store
        .subjects()
        .filter(|(name, _)| context_of(name) == ctx)
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
    Ok(found)
}

/// `GET /schemas/ids/{id}/subjects` (`?deleted=true`, `?subject=`): each subject once, then `?offset=` and
/// `?limit=`.
pub(crate) async fn subjects(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<Params>,
) -> Response {
    respond(usages(&state, &id, &params).await.map(|found| {
        // Sorted by subject, so duplicates are adjacent.
        let mut names: Vec<String> = found.into_iter().map(|sv| sv.subject).collect();
        names.dedup();
        let names: Vec<String> = paginate(names.into_iter(), &params).collect();
        http::ok(&names)
    }))
}

/// `GET /schemas/ids/{id}/versions` (`?deleted=true`, `?subject=`, `?offset=`, `?limit=`) →
/// `[{subject, version}]`.
pub(crate) async fn versions(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<Params>,
) -> Response {
    respond(usages(&state, &id, &params).await.map(|found| {
        let found: Vec<SubjectVersion> = paginate(found.into_iter(), &params).collect();
        http::ok(&found)
    }))
}

/// `GET /schemas` (`?subjectPrefix=`, `?deleted=true`, `?latestOnly=true`, `?offset=`, `?limit=`): the
/// schema of every subject version, by subject then version, as `GET /subjects/{s}/versions/{v}` shows it.
/// As in Confluent's server, a `limit` of 0 or less means no limit.
pub(crate) async fn list(State(state): State<AppState>, Query(params): Query<Params>) -> Response {
    let prefix = params
        .get("subjectPrefix")
        .map(String::as_str)
        .filter(|p| *p != ":*:")
        .unwrap_or("");
    let deleted = flag(&params, "deleted");
    let latest_only = flag(&params, "latestOnly");
    let offset = params
        .get("offset")
        .and_then(|o| o.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let limit = params
        .get("limit")
        .and_then(|l| l.trim().parse::<i64>().ok())
        .filter(|l| *l > 0)
        .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
    let store = state.store.read().await;
    let mut out = Vec::new();
    for (name, subject) in store.subjects().filter(|(n, _)| n.starts_with(prefix)) {
        let mut versions: Vec<(u32, u32)> = subject
            .versions
            .iter()
            .filter(|(_, v)| deleted || !v.deleted)
            .map(|(n, v)| (*n, v.id))
            .collect();
        if latest_only {
            versions = versions.split_off(versions.len().saturating_sub(1));
        }
        for (version, id) in versions {
            if let Some(entry) = store.schema(context_of(name), id) {
                out.push(RegisteredSchema {
                    subject: name.clone(),
                    version,
                    id,
                    schema_type: None,
                    references: entry.references.clone(),
                    metadata: entry.contract.metadata.clone(),
                    rule_set: entry.contract.rule_set.clone(),
                    schema: entry.text.to_string(),
                });
            }
        }
    }
    let page: Vec<RegisteredSchema> = out.into_iter().skip(offset).take(limit).collect();
    http::ok(&page)
}

/// `GET /contexts`: every context, the default `.` first.
pub(crate) async fn contexts(State(state): State<AppState>) -> Response {
    http::ok(&state.store.read().await.context_names())
}

/// `GET /schemas/types`.
pub(crate) async fn types() -> Response {
    http::ok(&["AVRO"])
}
