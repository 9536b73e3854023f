//! A connector's state and tasks: status, tasks, task status, topics (and their reset), pause, resume, stop,
//! and restarts of the connector or of one task.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use crate::connect::rest::AppState;
use crate::connect::rest::error::{RestError, RestResult};
use crate::connect::rest::http::{json as json_response, ok, query_flag};

/// `GET /connectors/{name}/status`.
pub(crate) async fn status(State(state): State<AppState>, Path(name): Path<String>) -> RestResult {
    Ok(ok(&state.api.status(name).await?))
}

/// `GET /connectors/{name}/tasks`.
pub(crate) async fn tasks(State(state): State<AppState>, Path(name): Path<String>) -> RestResult {
    Ok(ok(&state.api.tasks(name).await?))
}

/// `GET /connectors/{name}/tasks/{task}/status`: one task of the connector's status (404 as Jersey's for a
/// task id that is not a number).
pub(crate) async fn task_status(
    State(state): State<AppState>,
    Path((name, task)): Path<(String, String)>,
) -> RestResult {
    let Ok(task) = task.parse::<u32>() else {
        return Err(RestError::not_found());
    };
    let status = state.api.status(name.clone()).await?;
    status
        .tasks
        .into_iter()
        .find(|t| t.id == task)
        .map(|t| ok(&t))
        .ok_or_else(|| {
            RestError::new(
                StatusCode::NOT_FOUND,
                format!("No status found for task {name}-{task}"),
            )
        })
}

/// `GET /connectors/{name}/topics`: `{name: {"topics": [...]}}`.
pub(crate) async fn topics(State(state): State<AppState>, Path(name): Path<String>) -> RestResult {
    let topics = state.api.topics(name.clone()).await?;
    Ok(ok(&json!({ name: { "topics": topics } })))
}

/// `PUT /connectors/{name}/topics/reset`: 202.
pub(crate) async fn reset_topics(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> RestResult {
    state.api.reset_topics(name).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `POST /connectors/{name}/tasks/{task}/restart`: 204 (404 for a task that does not exist, or an id that
/// is not a number, as Jersey's).
pub(crate) async fn restart_task(
    State(state): State<AppState>,
    Path((name, task)): Path<(String, String)>,
) -> RestResult {
    let Ok(task) = task.parse::<u32>() else {
        return Err(RestError::not_found());
    };
    state.api.restart_task(name, task).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PUT /connectors/{name}/pause`: 202.
pub(crate) async fn pause(State(state): State<AppState>, Path(name): Path<String>) -> RestResult {
    state.api.pause(name).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `PUT /connectors/{name}/resume`: 202.
pub(crate) async fn resume(State(state): State<AppState>, Path(name): Path<String>) -> RestResult {
    state.api.resume(name).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `PUT /connectors/{name}/stop`: 204.
pub(crate) async fn stop(State(state): State<AppState>, Path(name): Path<String>) -> RestResult {
    state.api.stop(name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /connectors/{name}/restart?includeTasks=&onlyFailed=`: with both false (Connect's legacy form) 204
/// without a body; otherwise 202 with the connector's status.
pub(crate) async fn restart(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> RestResult {
    let include_tasks = query_flag(&query, "includeTasks");
    let only_failed = query_flag(&query, "onlyFailed");
    let status = state.api.restart(name, include_tasks, only_failed).await?;
    if !include_tasks && !only_failed {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(json_response(StatusCode::ACCEPTED, &status))
}
