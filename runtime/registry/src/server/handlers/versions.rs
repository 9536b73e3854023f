//! `/subjects/{subject}/versions…`: list, register, get, delete, referenced-by.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;

use super::{SchemaRequest, check_subject, respond, write};
use crate::server::AppState;
use crate::server::error::ApiError;
use crate::server::http::{self, Params, flag, version_id};
use crate::server::persist::Record;
use crate::server::schema;
use crate::server::store::context_of;
use crate::server::store::{Mutation, Store};
use crate::types::{Mode, RegisteredSchema, VersionId};

/// `GET /subjects/{subject}/versions` (`?deleted=true`, `?deletedOnly=true`).
pub(crate) async fn list(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    Query(params): Query<Params>,
) -> Response {
    let deleted_only = flag(&params, "deletedOnly") || flag(&params, "deleted_only");
    let deleted = flag(&params, "deleted") || deleted_only;
    let store = state.store.read().await;
    if !store.has_subject(&subject, deleted) {
        return respond(Err(ApiError::subject_not_found(&subject)));
    }
    let versions: Vec<u32> = store
        .subject(&subject)
        .map(|s| {
            s.versions
                .iter()
                .filter(|(_, v)| {
                    if deleted_only {
                        v.deleted
                    } else {
                        deleted || !v.deleted
                    }
                })
                .map(|(n, _)| *n)
                .collect()
        })
        .unwrap_or_default();
    http::ok(&versions)
}

/// Finds a version for a GET: 40401 if the subject has none, 40402 if not this one.
fn get_version(
    store: &Store,
    subject: &str,
    version: &str,
    include_deleted: bool,
) -> Result<RegisteredSchema, ApiError> {
    let v = version_id(version)?;
    let Some((n, entry)) = store.find_version(subject, v, include_deleted) else {
        if !store.has_subject(subject, include_deleted) {
            return Err(ApiError::subject_not_found(subject));
        }
        return Err(ApiError::version_not_found(match v {
            VersionId::Latest => -1,
            VersionId::Number(n) => i64::from(n),
        }));
    };
    let schema = store
        .schema(context_of(subject), entry.id)
        .ok_or_else(|| ApiError::schema_id_not_found(entry.id))?;
    Ok(RegisteredSchema {
        subject: subject.to_owned(),
        version: n,
        id: entry.id,
        schema_type: None,
        references: schema.references.clone(),
        metadata: schema.contract.metadata.clone(),
        rule_set: schema.contract.rule_set.clone(),
        schema: schema.text.to_string(),
    })
}

/// `GET /subjects/{subject}/versions/{version}` (`latest`, `-1` or a number; `?deleted=true`).
pub(crate) async fn get(
    State(state): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Query<Params>,
) -> Response {
    let store = state.store.read().await;
    respond(get_version(&store, &subject, &version, flag(&params, "deleted")).map(|r| http::ok(&r)))
}

/// `GET /subjects/{subject}/versions/{version}/schema`: the schema text alone.
pub(crate) async fn get_schema(
    State(state): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Query<Params>,
) -> Response {
    let store = state.store.read().await;
    respond(
        get_version(&store, &subject, &version, flag(&params, "deleted"))
            .map(|r| http::raw_json(StatusCode::OK, Bytes::from(r.schema))),
    )
}

/// `GET /subjects/{subject}/versions/{version}/referencedby`: ids of the schemas referencing it.
pub(crate) async fn referenced_by(
    State(state): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
) -> Response {
    let store = state.store.read().await;
    respond(
        get_version(&store, &subject, &version, true)
            .map(|r| http::ok(&store.referenced_by(&subject, r.version))),
    )
}

#[derive(Serialize)]
struct IdResponse {
    id: u32,
}

/// `POST /subjects/{subject}/versions` (`?normalize=true`: the normalized schema): registers a schema
/// (idempotently) → `{"id": N}`.
pub(crate) async fn register(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    Query(params): Query<Params>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: SchemaRequest = match http::body(&headers, &body) {
        Ok(r) => r,
        Err(e) => return respond(Err(e)),
    };
    let normalize = flag(&params, "normalize");
    let result = write(&state, move |store| {
        plan_register(store, &subject, &request, normalize)
    })
    .await;
    respond(result.map(|id| http::ok(&IdResponse { id })))
}

fn plan_register(
    store: &Store,
    subject: &str,
    request: &SchemaRequest,
    normalize: bool,
) -> Result<(Option<Mutation>, u32), ApiError> {
    check_subject(subject)?;
    let mode = store.effective_mode(subject);
    if mode.is_read_only() {
        return Err(ApiError::read_only(Some(subject)));
    }
    let import = mode == Mode::Import;
    let given_id = request.id.filter(|id| *id > 0);
    let given_version = request.version.filter(|v| *v > 0);
    if !import && given_id.is_some() {
        return Err(ApiError::not_permitted(format!(
            "Subject {subject} is not in import mode"
        )));
    }
    // Metadata and rules not given are inherited from the subject's latest version, as Confluent does.
    let mut contract = request.contract();
    if contract.metadata.is_none() || contract.rule_set.is_none() {
        let latest = store.latest_contract(subject);
        contract.metadata = contract.metadata.or(latest.metadata);
        contract.rule_set = contract.rule_set.or(latest.rule_set);
    }
    let ctx = context_of(subject);
    let (text, references, parsed) = request.prepare(store, ctx, &contract, normalize)?;

    if let Some((version, id)) = store.find_in_subject(subject, &parsed.key, false) {
        let same_version = given_version.is_none_or(|v| v == i64::from(version));
        match given_id {
            Some(g) if g != i64::from(id) => {
                return Err(ApiError::id_does_not_match(id, g as u32));
            }
            _ if same_version => return Ok((None, id)),
            _ => {}
        }
    }

    let existing = store.id_for_key(ctx, &parsed.key);
    let id = match given_id {
        Some(g) => {
            let g = u32::try_from(g)
                .ok()
                .filter(|g| *g <= i32::MAX as u32)
                .ok_or_else(|| ApiError::not_permitted(format!("Invalid schema id {g}")))?;
            match existing {
                Some(e) if e != g => return Err(ApiError::id_does_not_match(e, g)),
                Some(_) => g,
                None if store.schema(ctx, g).is_some() => {
                    return Err(ApiError::not_permitted(format!(
                        "Overwrite new schema with id {g} is not permitted."
                    )));
                }
                None => g,
            }
        }
        None => existing.unwrap_or_else(|| store.next_id(ctx)),
    };
    let next = store.next_version(subject);
    let version = match given_version {
        Some(v) => {
            let v = u32::try_from(v)
                .ok()
                .filter(|v| *v <= i32::MAX as u32)
                .ok_or_else(|| ApiError::invalid_version(&v.to_string()))?;
            if store
                .find_version(subject, VersionId::Number(v), true)
                .is_some()
            {
                return Err(ApiError::not_permitted(format!(
                    "Overwrite new schema with version {v} is not permitted."
                )));
            }
            if !import && v != next {
                return Err(ApiError::not_permitted(format!(
                    "Version {v} is not the next version ({next}) of subject {subject}"
                )));
            }
            v
        }
        None => next,
    };

    if !import {
        let level = store.effective_level(subject);
        let history = store.history(subject);
        let report = schema::check(level, &parsed.set, &history);
        if !report.is_compatible {
            return Err(ApiError::incompatible(
                subject,
                &schema::messages(&report, level),
            ));
        }
    }

    let record = Record::Register {
        subject: subject.to_owned(),
        version,
        id,
        schema: text,
        references,
        metadata: contract.metadata,
        rule_set: contract.rule_set,
    };
    Ok((
        Some(Mutation {
            record,
            parsed: Some(parsed),
        }),
        id,
    ))
}

/// `DELETE /subjects/{subject}/versions/{version}` (soft; `?permanent=true` after a soft delete) → the version.
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Query<Params>,
) -> Response {
    let permanent = flag(&params, "permanent");
    let result = write(&state, move |store| {
        let v = version_id(&version)?;
        let found = store
            .find_version(&subject, v, permanent)
            .or_else(|| store.find_version(&subject, v, true));
        let Some((n, entry)) = found else {
            if !store.has_subject(&subject, true) {
                return Err(ApiError::subject_not_found(&subject));
            }
            return Err(ApiError::version_not_found(match v {
                VersionId::Latest => -1,
                VersionId::Number(n) => i64::from(n),
            }));
        };
        if !permanent && entry.deleted {
            return Err(ApiError::version_soft_deleted(&subject, n));
        }
        if permanent && !entry.deleted {
            return Err(ApiError::version_not_soft_deleted(&subject, n));
        }
        if store.effective_mode(&subject).is_read_only() {
            return Err(ApiError::read_only(Some(&subject)));
        }
        let by = store.referenced_by(&subject, n);
        if !by.is_empty() {
            return Err(ApiError::reference_exists(&subject, n, &by));
        }
        let record = Record::DeleteVersion {
            subject: subject.clone(),
            version: n,
            permanent,
        };
        Ok((Some(record.into()), n))
    })
    .await;
    respond(result.map(|n| http::ok(&n)))
}
