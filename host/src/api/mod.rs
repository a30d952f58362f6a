//! The REST admin API (`/api/v1`), webhooks (`/hooks/{instance}/...`),
//! health, readiness and metrics.

mod auth;
pub mod backup;
mod connectors;
mod console;
pub mod directory;
mod error;
mod forward;
mod hooks;
mod openapi;
mod plugins;
mod presence;
mod settings;
mod system;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{any, delete, get, post, put};

pub use auth::AdminAuth;
pub use error::ApiError;
pub use presence::FeedSlots;
pub use system::track as track_requests;

use crate::presence::Presence;
use crate::runtime::Runtime;
use crate::telemetry::Metrics;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub presence: Arc<Presence>,
    pub runtime: Arc<Runtime>,
    pub metrics: Arc<Metrics>,
    pub auth: Arc<AdminAuth>,
    pub max_webhook_bytes: usize,
    /// Whether `/metrics` wants a token (console role or more).
    pub metrics_auth: bool,
    /// Connector ids `/readyz` always requires up (`HUB_READY_REQUIRES`).
    pub ready_requires: Arc<Vec<String>>,
    /// Live-feed streams open, in all and per token.
    pub feeds: Arc<presence::FeedSlots>,
    /// The last snapshot sent to a feed client that follows everyone.
    pub snapshots: Arc<presence::SnapshotCache>,
    /// What `POST /api/v1/backup` copies.
    pub backups: Arc<backup::BackupSource>,
    /// The LDAP / Active Directory sync.
    pub directory: Arc<directory::DirectorySync>,
}

/// Every documented route, as `(method, path)`; the OpenAPI description
/// must list exactly these (checked by a test).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/plugins"),
    ("post", "/api/v1/plugins"),
    ("get", "/api/v1/plugins/{id}"),
    ("delete", "/api/v1/plugins/{id}"),
    ("post", "/api/v1/plugins/{id}/reload"),
    ("get", "/api/v1/connectors"),
    ("post", "/api/v1/connectors"),
    ("get", "/api/v1/connectors/{id}"),
    ("patch", "/api/v1/connectors/{id}"),
    ("put", "/api/v1/connectors/{id}"),
    ("delete", "/api/v1/connectors/{id}"),
    ("post", "/api/v1/connectors/{id}/enable"),
    ("post", "/api/v1/connectors/{id}/disable"),
    ("get", "/api/v1/connectors/{id}/status"),
    ("get", "/api/v1/connectors/{id}/endpoints"),
    ("put", "/api/v1/connectors/{id}/watches"),
    (
        "post",
        "/api/v1/connectors/{id}/endpoints/{endpoint}/presence",
    ),
    ("get", "/api/v1/connectors/{id}/writes"),
    ("get", "/api/v1/writes/{id}"),
    ("get", "/api/v1/users"),
    ("post", "/api/v1/users"),
    ("post", "/api/v1/users/import"),
    ("get", "/api/v1/users/{username}"),
    ("put", "/api/v1/users/{username}"),
    ("delete", "/api/v1/users/{username}"),
    ("get", "/api/v1/users/{username}/notes"),
    ("post", "/api/v1/users/{username}/notes"),
    ("delete", "/api/v1/users/{username}/notes/{id}"),
    ("post", "/api/v1/users/{username}/subscribe"),
    ("get", "/api/v1/presence"),
    ("get", "/api/v1/presence/{username}"),
    ("get", "/api/v1/feed/sse"),
    ("get", "/api/v1/feed/ws"),
    ("get", "/api/v1/events"),
    ("get", "/api/v1/settings/rules"),
    ("put", "/api/v1/settings/rules"),
    ("get", "/api/v1/sync/profiles"),
    ("get", "/api/v1/tokens"),
    ("post", "/api/v1/tokens"),
    ("delete", "/api/v1/tokens/{id}"),
    ("post", "/api/v1/backup"),
    ("get", "/api/v1/directory/ldap"),
    ("put", "/api/v1/directory/ldap"),
    ("post", "/api/v1/directory/ldap/sync"),
    ("get", "/api/v1/directory/ldap/status"),
    ("get", "/api/v1/directory/connectors"),
    ("get", "/api/v1/directory/connectors/{id}"),
    ("put", "/api/v1/directory/connectors/{id}"),
    ("delete", "/api/v1/directory/connectors/{id}"),
    ("post", "/api/v1/directory/connectors/{id}/sync"),
    ("get", "/api/v1/directory/connectors/{id}/status"),
    ("post", "/hooks/{instance}"),
    ("post", "/hooks/{instance}/{path}"),
];

/// A write, once its handler started, runs to its end even when its client
/// goes away: hyper drops a request's future when the connection closes,
/// and a write cut between its database change and the service's update
/// (a user deleted on disk but still in memory) left the two disagreeing:
/// deleted users came back after a restart, notes outlived their user.
/// Reads need no such care.
async fn run_writes_to_the_end(
    req: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    if matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    ) {
        return next.run(req).await;
    }
    match tokio::spawn(next.run(req)).await {
        Ok(resp) => resp,
        Err(e) => ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("the request failed: {e}"),
        )
        .into_response(),
    }
}

/// Admin answers (a new token, users, configurations) are never kept by a
/// browser or a proxy cache.
async fn no_store(mut resp: axum::response::Response) -> axum::response::Response {
    resp.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    resp
}

/// The whole HTTP surface.
pub fn router(state: AppState, max_upload_bytes: usize) -> Router {
    let admin = Router::new()
        .route(
            "/api/v1/plugins",
            get(plugins::list)
                .post(plugins::upload)
                .layer(DefaultBodyLimit::max(max_upload_bytes)),
        )
        .route(
            "/api/v1/plugins/{id}",
            get(plugins::get_one).delete(plugins::delete),
        )
        .route("/api/v1/plugins/{id}/reload", post(plugins::reload))
        .route(
            "/api/v1/connectors",
            get(connectors::list).post(connectors::create),
        )
        .route(
            "/api/v1/connectors/{id}",
            get(connectors::get_one)
                .patch(connectors::update)
                .put(connectors::replace)
                .delete(connectors::delete),
        )
        .route("/api/v1/connectors/{id}/enable", post(connectors::enable))
        .route("/api/v1/connectors/{id}/disable", post(connectors::disable))
        .route("/api/v1/connectors/{id}/status", get(connectors::status))
        .route(
            "/api/v1/connectors/{id}/endpoints",
            get(connectors::endpoints),
        )
        .route("/api/v1/connectors/{id}/watches", put(connectors::watches))
        .route(
            "/api/v1/connectors/{id}/endpoints/{endpoint}/presence",
            post(connectors::set_presence),
        )
        .route("/api/v1/connectors/{id}/writes", get(connectors::writes))
        .route("/api/v1/writes/{id}", get(connectors::write))
        .route("/api/v1/users", get(users::list).post(users::create))
        .route("/api/v1/users/import", post(users::import))
        .route(
            "/api/v1/users/{username}",
            get(users::get_one)
                .put(users::replace)
                .delete(users::delete),
        )
        .route(
            "/api/v1/users/{username}/notes",
            get(users::notes).post(users::add_note),
        )
        .route(
            "/api/v1/users/{username}/notes/{id}",
            delete(users::delete_note),
        )
        .route("/api/v1/users/{username}/subscribe", post(users::subscribe))
        .route("/api/v1/presence", get(presence::list))
        .route("/api/v1/presence/{username}", get(presence::one))
        .route("/api/v1/feed/sse", get(presence::sse))
        .route("/api/v1/feed/ws", get(presence::ws))
        .route("/api/v1/events", get(settings::events))
        .route(
            "/api/v1/settings/rules",
            get(settings::rules).put(settings::set_rules),
        )
        .route("/api/v1/sync/profiles", get(settings::sync_profiles))
        .route(
            "/api/v1/tokens",
            get(settings::tokens).post(settings::create_token),
        )
        .route("/api/v1/tokens/{id}", delete(settings::revoke_token))
        .route("/api/v1/backup", post(backup::backup))
        .route(
            "/api/v1/directory/ldap",
            get(directory::get_settings).put(directory::put_settings),
        )
        .route("/api/v1/directory/ldap/sync", post(directory::sync))
        .route("/api/v1/directory/ldap/status", get(directory::status))
        .route(
            "/api/v1/directory/connectors",
            get(directory::list_connectors),
        )
        .route(
            "/api/v1/directory/connectors/{id}",
            get(directory::get_connector)
                .put(directory::put_connector)
                .delete(directory::delete_connector),
        )
        .route(
            "/api/v1/directory/connectors/{id}/sync",
            post(directory::sync_connector),
        )
        .route(
            "/api/v1/directory/connectors/{id}/status",
            get(directory::connector_status),
        )
        // Innermost: a request passed to the node running its instance
        // has been authorized here already (and is again there).
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            forward::to_holder,
        ))
        .route_layer(middleware::from_fn(error::require_json))
        .route_layer(middleware::map_response(no_store))
        .route_layer(middleware::from_fn(run_writes_to_the_end))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
        ));
    let hook_limit = DefaultBodyLimit::max(state.max_webhook_bytes);
    Router::new()
        .route("/healthz", get(system::health))
        .route("/readyz", get(system::ready))
        .route("/metrics", get(system::metrics))
        .route("/api/v1/openapi.json", get(system::openapi))
        .route("/hooks/{instance}", any(hooks::root).layer(hook_limit))
        .route(
            "/hooks/{instance}/{*path}",
            any(hooks::handle).layer(hook_limit),
        )
        .merge(console::routes())
        .merge(admin)
        .fallback(system::not_found)
        .with_state(state)
        .layer(middleware::from_fn(error::json_errors))
}
