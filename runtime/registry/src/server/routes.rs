//! The routing table: Confluent Schema Registry's paths.

use axum::Router;
use axum::routing::{get, post};

use super::AppState;
use super::handlers::{self, compatibility, config, mode, schemas, subjects, versions};

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
        .route("/schemas/types", get(schemas::types))
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
        .with_state(state)
}
