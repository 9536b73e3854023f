//! Request handlers, one module per resource.

pub(crate) mod compatibility;
pub(crate) mod config;
pub(crate) mod mode;
pub(crate) mod schemas;
pub(crate) mod subjects;
pub(crate) mod versions;

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use super::http;
use super::schema::{Contract, Parsed};
use super::store::{Mutation, Store};
use crate::types::Reference;

/// `GET /`: an empty object, as Confluent answers (and a health check).
pub(crate) async fn root() -> Response {
    http::ok(&serde_json::json!({}))
}

/// Unknown paths.
pub(crate) async fn not_found() -> Response {
    ApiError::not_found().into_response()
}

/// Known paths, wrong method.
pub(crate) async fn method_not_allowed() -> Response {
    ApiError::method_not_allowed().into_response()
}

/// Turns a handler result into a response.
pub(crate) fn respond(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Runs `plan` under the write lock and commits the mutation it returns (logged and synced first), on a task of
/// its own so that a client going away cannot interrupt a write between the log and memory.
pub(crate) async fn write<T, F>(state: &AppState, plan: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Store) -> Result<(Option<Mutation>, T), ApiError> + Send + 'static,
{
    let store = Arc::clone(&state.store);
    tokio::spawn(async move {
        let mut guard = store.write().await;
        let (mutation, out) = plan(&guard)?;
        if let Some(m) = mutation {
            guard.commit(m).await?;
        }
        Ok(out)
    })
    .await
    .map_err(|e| ApiError::store(format!("internal error: {e}")))?
}

/// The body of register, lookup and compatibility requests.
#[derive(Debug, Deserialize)]
pub(crate) struct SchemaRequest {
    #[serde(default)]
    pub(crate) schema: Option<String>,
    #[serde(rename = "schemaType", default)]
    pub(crate) schema_type: Option<String>,
    #[serde(default)]
    pub(crate) references: Option<Vec<Reference>>,
    #[serde(default)]
    pub(crate) id: Option<i64>,
    #[serde(default)]
    pub(crate) version: Option<i64>,
    #[serde(default)]
    pub(crate) metadata: Option<serde_json::Value>,
    #[serde(rename = "ruleSet", default)]
    pub(crate) rule_set: Option<serde_json::Value>,
}

impl SchemaRequest {
    /// The metadata and rule set given (`null` counts as not given).
    pub(crate) fn contract(&self) -> Contract {
        Contract {
            metadata: self.metadata.clone().filter(|v| !v.is_null()),
            rule_set: self.rule_set.clone().filter(|v| !v.is_null()),
        }
    }

    /// The schema text, parsed with its references: (text, normalized references, parsed), the schema's
    /// identity including `contract`. With `normalize` (`?normalize=true`), the text is the schema's normalized
    /// text ([`super::schema::normalized_text`]) and the references are sorted, duplicates removed: what is
    /// stored, or looked up.
    pub(crate) fn prepare(
        &self,
        store: &Store,
        ctx: &str,
        contract: &Contract,
        normalize: bool,
    ) -> Result<(String, Vec<Reference>, Parsed), ApiError> {
        match self.schema_type.as_deref() {
            None => {}
            Some(t) if t.eq_ignore_ascii_case("AVRO") => {}
            Some(t) => {
                return Err(ApiError::invalid_schema(format!(
                    "unsupported schema type {t:?} (this registry supports AVRO)"
                )));
            }
        }
        let text = match self.schema.as_deref() {
            Some(t) if !t.trim().is_empty() => t.to_owned(),
            _ => return Err(ApiError::invalid_schema("Empty schema")),
        };
        let references = store
            .normalize_references(ctx, self.references.clone().unwrap_or_default())
            .map_err(ApiError::invalid_schema)?;
        let parsed = store
            .prepare(ctx, &text, &references, contract)
            .map_err(ApiError::invalid_schema)?;
        if !normalize {
            return Ok((text, references, parsed));
        }
        let mut references = references;
        references.sort();
        references.dedup();
        let text = super::schema::normalized_text(&parsed.set);
        let parsed = store
            .prepare(ctx, &text, &references, contract)
            .map_err(ApiError::invalid_schema)?;
        Ok((text, references, parsed))
    }
}

/// Confluent refuses subjects with control characters (and empty ones).
pub(crate) fn check_subject(subject: &str) -> Result<(), ApiError> {
    if subject.is_empty() || subject.chars().any(char::is_control) {
        return Err(ApiError::invalid_subject(subject));
    }
    Ok(())
}
