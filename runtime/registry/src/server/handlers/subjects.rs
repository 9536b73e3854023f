//! `/subjects` and `/subjects/{subject}`: list, look a schema up, delete.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::{SchemaRequest, respond, write};
use crate::server::AppState;
use crate::server::error::ApiError;
use crate::server::http::{self, Params, flag};
use crate::server::persist::Record;
use crate::server::schema::Contract;
use crate::server::store::context_of;
use crate::types::RegisteredSchema;

/// `GET /subjects` (`?deleted=true`, `?deletedOnly=true`, `?subjectPrefix=`, `?offset=`, `?limit=`).
pub(crate) async fn list(State(state): State<AppState>, Query(params): Query<Params>) -> Response {
    let deleted_only = flag(&params, "deletedOnly") || flag(&params, "deleted_only");
    let deleted = flag(&params, "deleted");
    // Confluent's default, `:*:`, is every context.
    let prefix = params
        .get("subjectPrefix")
        .map(String::as_str)
        .filter(|p| *p != ":*:")
        .unwrap_or("");
    let store = state.store.read().await;
    let names = store
        .subjects()
        .filter(|(name, _)| name.starts_with(prefix))
        .filter(|(_, s)| {
            let live = s.versions.values().any(|v| !v.deleted);
            let dead = s.versions.values().any(|v| v.deleted);
            if deleted_only {
                dead && !live
            } else if deleted {
                live || dead
            } else {
                live
            }
        })
        .map(|(name, _)| name.clone());
    let names: Vec<String> = paginate(names, &params).collect();
    http::ok(&names)
}

/// Applies `?offset=` and `?limit=` (a negative limit means all).
pub(crate) fn paginate<T>(
    items: impl Iterator<Item = T>,
    params: &Params,
) -> impl Iterator<Item = T> {
    let offset = params
        .get("offset")
        .and_then(|o| o.parse::<usize>().ok())
        .unwrap_or(0);
    let limit = params
        .get("limit")
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|l| *l >= 0)
        .map_or(usize::MAX, |l| l as usize);
    items.skip(offset).take(limit)
}

/// `POST /subjects/{subject}`: is this schema registered under the subject? (`?deleted=true` also looks at
/// deleted versions.)
pub(crate) async fn lookup(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    Query(params): Query<Params>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(
        async {
            let request: SchemaRequest = http::body(&headers, &body)?;
            let include_deleted = flag(&params, "deleted");
            let store = state.store.read().await;
            if !store.has_subject(&subject, include_deleted) {
                return Err(ApiError::subject_not_found(&subject));
            }
            let contract = request.contract();
            let ctx = context_of(&subject);
            let (_, _, parsed) =
                request.prepare(&store, ctx, &contract, flag(&params, "normalize"))?;
            // Without metadata or rules, the schema alone is looked up (whatever was registered with it).
            let found = if contract == Contract::default() {
                store.find_schema_in_subject(&subject, &parsed.schema_key, include_deleted)
            } else {
                store.find_in_subject(&subject, &parsed.key, include_deleted)
            };
            let (version, id) = found.ok_or_else(ApiError::schema_not_found)?;
            let entry = store
                .schema(ctx, id)
                .ok_or_else(ApiError::schema_not_found)?;
            Ok(http::ok(&RegisteredSchema {
                subject: subject.clone(),
                version,
                id,
                schema_type: None,
                references: entry.references.clone(),
                metadata: entry.contract.metadata.clone(),
                rule_set: entry.contract.rule_set.clone(),
                schema: entry.text.to_string(),
            }))
        }
        .await,
    )
}

/// `DELETE /subjects/{subject}` (soft; `?permanent=true` after a soft delete): the versions deleted.
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    Query(params): Query<Params>,
) -> Response {
    let permanent = flag(&params, "permanent");
    let result = write(&state, move |store| {
        let Some(s) = store
            .subject(&subject)
            .filter(|_| store.has_subject(&subject, true))
        else {
            return Err(ApiError::subject_not_found(&subject));
        };
        if store.effective_mode(&subject).is_read_only() {
            return Err(ApiError::read_only(Some(&subject)));
        }
        let live: Vec<u32> = s
            .versions
            .iter()
            .filter(|(_, v)| !v.deleted)
            .map(|(n, _)| *n)
            .collect();
        if !permanent && live.is_empty() {
            return Err(ApiError::subject_soft_deleted(&subject));
        }
        if permanent && !live.is_empty() {
            return Err(ApiError::subject_not_soft_deleted(&subject));
        }
        for n in s.versions.keys() {
            let by = store.referenced_by(&subject, *n);
            if !by.is_empty() {
                return Err(ApiError::reference_exists(&subject, *n, &by));
            }
        }
        let deleted: Vec<u32> = if permanent {
            s.versions.keys().copied().collect()
        } else {
            live
        };
        let record = Record::DeleteSubject {
            subject: subject.clone(),
            permanent,
        };
        Ok((Some(record.into()), deleted))
    })
    .await;
    respond(result.map(|versions| http::ok(&versions)))
}
