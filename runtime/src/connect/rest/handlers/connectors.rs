//! `/connectors` and `/connectors/{name}[/config]`: list (with `?expand=`), create, read, reconfigure and
//! delete connectors.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Map, Value};

use std::collections::BTreeMap;

use crate::connect::api::{ApiError, ConnectorInfo, FlatConfig, State as TargetState};
use crate::connect::rest::AppState;
use crate::connect::rest::error::{RestError, RestResult};
use crate::connect::rest::http::{
    connector_location, flat_config, from_value, json, ok, parse_json, query_all,
};

/// The config key that names a connector.
const NAME_CONFIG: &str = "name";

/// `GET /connectors[?expand=status][&expand=info]`: the names, or with any `expand` a map of each name to the
/// requested expansions (unknown ones ignored, connectors deleted meanwhile left out), as Connect answers.
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
) -> RestResult {
    let names = state.api.connectors().await;
    if !query.iter().any(|(k, _)| k == "expand") {
        return Ok(ok(&names));
    }
    let expansions: Vec<&str> = query_all(&query, "expand").collect();
    let mut out = Map::new();
    'connectors: for name in names {
        let mut entry = Map::new();
        for &expansion in &expansions {
            let value = match expansion {
                "status" => to_value(state.api.status(name.clone()).await),
                "info" => to_value(state.api.connector(name.clone()).await),
                _ => continue,
            };
            match value {
                Ok(value) => {
                    entry.insert(expansion.to_owned(), value);
                }
                Err(Expansion::Gone) => continue 'connectors,
                Err(Expansion::Failed(e)) => return Err(e),
            }
        }
        out.insert(name, Value::Object(entry));
    }
    Ok(ok(&out))
}

enum Expansion {
    /// The connector was deleted while listing.
    Gone,
    Failed(RestError),
}

fn to_value<T: serde::Serialize>(result: Result<T, ApiError>) -> Result<Value, Expansion> {
    match result {
        Ok(v) => serde_json::to_value(v).map_err(|e| {
            Expansion::Failed(RestError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                e.to_string(),
            ))
        }),
        Err(ApiError::NotFound(_)) => Err(Expansion::Gone),
        Err(e) => Err(Expansion::Failed(e.into())),
    }
}

/// `POST /connectors`' body (Connect's `CreateConnectorRequest`).
#[derive(Deserialize)]
struct CreateRequest {
    name: Option<String>,
    config: Option<Value>,
    initial_state: Option<String>,
}

/// `POST /connectors`: 201 with the new connector, 409 if it exists, 400 on a bad body or config.
pub(crate) async fn create(State(state): State<AppState>, body: Bytes) -> RestResult {
    let request: CreateRequest = from_value(parse_json(&body)?)?;
    // As Connect: surrounding whitespace is trimmed and a missing name is empty (then refused).
    let name = request
        .name
        .as_deref()
        .map(str::trim)
        .unwrap_or("")
        .to_owned();
    let Some(config) = request.config.filter(|c| !c.is_null()) else {
        return Err(RestError::bad_request(
            "Connector configuration must be provided",
        ));
    };
    let mut config = flat_config(config)?;
    let initial = initial_state(request.initial_state.as_deref())?;
    check_name(&name)?;
    check_and_put_name(&name, &mut config)?;
    refuse_references(&state, &config).await?;
    let info = state.api.create_connector(name, config, initial).await?;
    Ok(created(info))
}

/// `initial_state` (KIP-980): RUNNING (the default), PAUSED or STOPPED, in any case.
fn initial_state(initial_state: Option<&str>) -> Result<TargetState, RestError> {
    match initial_state.map(str::to_ascii_uppercase).as_deref() {
        None | Some("RUNNING") => Ok(TargetState::Running),
        Some("PAUSED") => Ok(TargetState::Paused),
        Some("STOPPED") => Ok(TargetState::Stopped),
        Some(_) => Err(RestError::bad_request(format!(
            "Invalid initial_state '{}': expected one of RUNNING, PAUSED, STOPPED",
            initial_state.unwrap_or_default()
        ))),
    }
}

/// Connect's name rule (`NonEmptyStringWithoutControlChars`).
fn check_name(name: &str) -> Result<(), RestError> {
    if name.is_empty() {
        return Err(RestError::bad_request("Connector name must not be empty"));
    }
    if name.chars().any(char::is_control) {
        return Err(RestError::bad_request(
            "Connector name must not contain ISO control characters",
        ));
    }
    Ok(())
}

/// The `name` in a config must match the connector's; absent, it is added (Connect's rule and message).
fn check_and_put_name(name: &str, config: &mut FlatConfig) -> Result<(), RestError> {
    match config.get(NAME_CONFIG) {
        Some(included) if included != name => Err(RestError::bad_request(format!(
            "Connector name configuration ({included}) doesn't match connector name in the URL ({name})"
        ))),
        Some(_) => Ok(()),
        None => {
            config.insert(NAME_CONFIG.to_owned(), name.to_owned());
            Ok(())
        }
    }
}

/// 400 when the config holds secret references the worker does not allow over REST (nothing is resolved).
pub(crate) async fn refuse_references(
    state: &AppState,
    config: &FlatConfig,
) -> Result<(), RestError> {
    let refused = state.references.refused(config).await;
    if refused.is_empty() {
        return Ok(());
    }
    let errors: Vec<String> = refused
        .iter()
        .map(|(key, why)| format!("{key}: {why}"))
        .collect();
    Err(RestError::bad_request(format!(
        "Connector configuration is invalid: {}",
        errors.join("; ")
    )))
}

/// 201 with `Location: /connectors/{name}`.
fn created(info: ConnectorInfo) -> axum::response::Response {
    let location = connector_location(&info.name);
    let mut response = json(StatusCode::CREATED, &info);
    if let Ok(value) = location.parse() {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// `GET /connectors/{name}`.
pub(crate) async fn get(State(state): State<AppState>, Path(name): Path<String>) -> RestResult {
    Ok(ok(&state.api.connector(name).await?))
}

/// `GET /connectors/{name}/config`.
pub(crate) async fn get_config(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> RestResult {
    Ok(ok(&state.api.connector(name).await?.config))
}

/// `PUT /connectors/{name}/config`: 201 if it created the connector, 200 if it updated it.
pub(crate) async fn put_config(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> RestResult {
    let mut config = flat_config(parse_json(&body)?)?;
    check_name(&name)?;
    check_and_put_name(&name, &mut config)?;
    refuse_references(&state, &config).await?;
    match state.api.put_connector(name, config, false).await? {
        (true, info) => Ok(created(info)),
        (false, info) => Ok(ok(&info)),
    }
}

/// `PATCH /connectors/{name}/config` (KIP-477): a JSON object of keys to set, `null` removing a key; 200
/// with the connector, 404 if it does not exist.
pub(crate) async fn patch_config(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> RestResult {
    let value = parse_json(&body)?;
    let Value::Object(map) = value else {
        return Err(RestError::bad_request(
            "Cannot deserialize request body: expected a JSON object of config keys",
        ));
    };
    let mut patch: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut set = FlatConfig::new();
    for (key, value) in map {
        if value.is_null() {
            patch.insert(key, None);
        } else {
            let one = flat_config(Value::Object(Map::from_iter([(key.clone(), value)])))?;
            if let Some(v) = one.get(&key) {
                set.insert(key.clone(), v.clone());
                patch.insert(key, Some(v.clone()));
            }
        }
    }
    if let Some(Some(included)) = patch.get(NAME_CONFIG)
        && *included != name
    {
        return Err(RestError::bad_request(format!(
            "Connector name configuration ({included}) doesn't match connector name in the URL ({name})"
        )));
    }
    refuse_references(&state, &set).await?;
    Ok(ok(&state.api.patch_connector(name, patch).await?))
}

/// `DELETE /connectors/{name}`: 204.
pub(crate) async fn delete(State(state): State<AppState>, Path(name): Path<String>) -> RestResult {
    state.api.delete(name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
