//! The routing table: Confluent Schema Registry's paths.

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::map_response;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::AppState;
use super::error::ApiError;
use super::handlers::{self, compatibility, config, mode, schemas, subjects, versions};
use super::http::CONTENT_TYPE_V1;

/// Every route, with Confluent-style 404 and 405 answers for the rest.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(handlers::root))
        .route("/subjects", get(subjects::list))
        .route(
            "/subjects/{subject}",
            post(subjects::lookup).delete(subjects::delete),
        )
        .route(
            "/subjects/{subject}/versions",
            get(versions::list).post(versions::register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(versions::get).delete(versions::delete),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(versions::get_schema),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(versions::referenced_by),
        )
        .route("/schemas", get(schemas::list))
        .route("/schemas/types", get(schemas::types))
        .route("/contexts", get(schemas::contexts))
        .route("/schemas/ids/{id}", get(schemas::by_id))
        .route("/schemas/ids/{id}/schema", get(schemas::by_id_schema))
        .route("/schemas/ids/{id}/subjects", get(schemas::subjects))
        .route("/schemas/ids/{id}/versions", get(schemas::versions))
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compatibility::all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatibility::version),
        )
        .route(
            "/config",
            get(config::get_global)
                .put(config::put_global)
                .delete(config::delete_global),
        )
        .route(
            "/config/{subject}",
            get(config::get_subject)
                .put(config::put_subject)
                .delete(config::delete_subject),
        )
        .route("/mode", get(mode::get_global).put(mode::put_global))
        .route(
            "/mode/{subject}",
            get(mode::get_subject)
                .put(mode::put_subject)
                .delete(mode::delete_subject),
        )
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(map_response(confluent_errors))
        .with_state(state)
}

/// Rewrites errors the framework answers itself (undecodable paths or queries, oversized bodies) into
/// Confluent's error body.
async fn confluent_errors(response: Response) -> Response {
    let ours = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v == CONTENT_TYPE_V1);
    if ours || !(response.status().is_client_error() || response.status().is_server_error()) {
        return response;
    }
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let message = String::from_utf8_lossy(&body).trim().to_owned();
    let message = if message.is_empty() {
        status.to_string()
    } else {
        message
    };
    ApiError::from_status(status, message).into_response()
}
