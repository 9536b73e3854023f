//! The routing table (Kafka Connect's paths plus `/health` and `/metrics`) and the layers around it: request
//! logging, trailing-slash tolerance (as Jersey's), the browser guard (JSON bodies, same origin, loopback
//! `Host`), auth, and Connect-shaped bodies for framework errors.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::http::uri::PathAndQuery;
use axum::http::{Method, Uri};
use axum::middleware::{Next, from_fn, from_fn_with_state, map_request, map_response};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};

use super::AppState;
use super::auth::require_token;
use super::error::RestError;
use super::guard::{Guard, guard};
use super::handlers::{admin, connectors, lifecycle, offsets, plugins, root};
use super::http::APPLICATION_JSON;

/// The whole service: logging → path normalisation → browser guard → auth → routing.
pub(crate) fn app(state: AppState, token: Option<Arc<str>>, browser: Arc<Guard>) -> Router {
    Router::new()
        .fallback_service(router(state))
        .layer(from_fn_with_state(token, require_token))
        .layer(from_fn_with_state(browser, guard))
        .layer(map_request(trim_trailing_slash))
        .layer(from_fn(log_request))
}

/// Every route, with Connect-style 404 and 405 answers for the rest.
fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(root::server_info))
        .route("/health", get(root::health))
        .route("/metrics", get(root::metrics))
        .route(
            "/connectors",
            get(connectors::list).post(connectors::create),
        )
        .route(
            "/connectors/{name}",
            get(connectors::get).delete(connectors::delete),
        )
        .route(
            "/connectors/{name}/config",
            get(connectors::get_config)
                .put(connectors::put_config)
                .patch(connectors::patch_config),
        )
        .route("/connectors/{name}/status", get(lifecycle::status))
        .route("/connectors/{name}/tasks", get(lifecycle::tasks))
        .route(
            "/connectors/{name}/tasks/{task}/status",
            get(lifecycle::task_status),
        )
        .route(
            "/connectors/{name}/tasks/{task}/restart",
            post(lifecycle::restart_task),
        )
        .route("/connectors/{name}/pause", put(lifecycle::pause))
        .route("/connectors/{name}/resume", put(lifecycle::resume))
        .route("/connectors/{name}/stop", put(lifecycle::stop))
        .route("/connectors/{name}/restart", post(lifecycle::restart))
        .route("/connectors/{name}/topics", get(lifecycle::topics))
        .route(
            "/connectors/{name}/topics/reset",
            put(lifecycle::reset_topics),
        )
        .route(
            "/connectors/{name}/offsets",
            get(offsets::get)
                .patch(offsets::alter)
                .delete(offsets::reset),
        )
        .route("/connector-plugins", get(plugins::list))
        .route("/connector-plugins/{plugin}/config", get(plugins::config))
        .route(
            "/connector-plugins/{plugin}/config/validate",
            put(plugins::validate),
        )
        .route("/admin/loggers", get(admin::loggers))
        .route(
            "/admin/loggers/{logger}",
            get(admin::logger).put(admin::set_logger),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(map_response(connect_errors))
        .with_state(state)
}

async fn not_found() -> RestError {
    RestError::not_found()
}

async fn method_not_allowed() -> RestError {
    RestError::method_not_allowed()
}

/// Logs each request's method, path (never its query or headers) and status.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let quiet = method == Method::GET && (path == "/health" || path == "/metrics") && status < 400;
    if quiet {
        tracing::debug!(%method, %path, status, "REST request");
    } else {
        tracing::info!(%method, %path, status, "REST request");
    }
    response
}

/// `/connectors/` is `/connectors`, as in Connect (Jersey ignores a trailing slash).
async fn trim_trailing_slash(mut request: Request) -> Request {
    let path = request.uri().path();
    if path.len() > 1 && path.ends_with('/') {
        let trimmed = path.trim_end_matches('/');
        let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
        let path_and_query = match request.uri().query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_owned(),
        };
        let mut parts = request.uri().clone().into_parts();
        if let Ok(pq) = PathAndQuery::try_from(path_and_query) {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
    }
    request
}

/// Rewrites errors the framework answers itself (undecodable paths or queries, oversized bodies) into
/// Connect's error body.
async fn connect_errors(response: Response) -> Response {
    let status = response.status();
    let ours = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v == APPLICATION_JSON);
    if ours || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let message = String::from_utf8_lossy(&body).trim().to_owned();
    let message = if message.is_empty() {
        format!(
            "HTTP {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("Error")
        )
    } else {
        message
    };
    RestError::new(status, message).into_response()
}
