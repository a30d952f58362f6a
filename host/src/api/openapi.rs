//! The OpenAPI 3.1 description of the API (`GET /api/v1/openapi.json`),
//! generated with utoipa from the handlers' `#[utoipa::path]` attributes and
//! the types they take and answer, so it cannot drift from the code by
//! hand. Answers written as ad-hoc JSON objects are described by the
//! envelope types below; `tests/tests/api_description.rs` validates real
//! requests and answers of every route against the served document.
//!
//! The live feed's messages (SSE events and WebSocket text frames) are the
//! component `FeedMessage`; the state vocabulary consoles show is the enum
//! `ChannelState` (and `Availability`, `Activity`, `LineState`,
//! `ConnectorStatus`, `EndpointState`, `RunState`).

use std::sync::{Arc, LazyLock};

use serde::Serialize;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, HttpMethod, Ref, RefOr};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::engine::sync::profile::Profile;
use crate::presence::{Note, UserPresence};
use crate::runtime::{ConnectorView, FolderError, InstanceStatus, PluginView, WriteRecord};
use crate::store::{EventRecord, TokenRecord};

/// An error answer: every 4xx and 5xx of the API has this body.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What went wrong and what is allowed, in words.
    pub error: String,
    /// The request field, parameter or header at fault, when there is one
    /// (a JSON path such as `config.server`, `Content-Type`, `page`).
    pub field: Option<String>,
}

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the process answers.
    pub status: String,
}

/// `GET /api/v1/plugins`.
#[derive(Serialize, ToSchema)]
pub struct PluginList {
    pub plugins: Vec<PluginView>,
    /// Folders of the plugins directory that could not be loaded.
    pub folder_errors: Vec<FolderError>,
}

/// `GET /api/v1/connectors`.
#[derive(Serialize, ToSchema)]
pub struct ConnectorList {
    pub connectors: Vec<ConnectorView>,
}

/// `GET /api/v1/connectors/{id}`: the instance and what counts as a
/// conversation on it for the sync.
#[derive(Serialize, ToSchema)]
pub struct ConnectorDetail {
    #[serde(flatten)]
    pub connector: ConnectorView,
    pub sync_profile: Profile,
}

/// `GET /api/v1/connectors/{id}/status`.
#[derive(Serialize, ToSchema)]
pub struct ConnectorHealth {
    pub id: String,
    pub plugin: String,
    pub enabled: bool,
    /// Why the instance cannot run (its plugin is missing), if so.
    pub problem: Option<String>,
    /// Events came in the last 5 minutes.
    pub online: bool,
    /// `online` (events in the last 5 minutes), `connected` (running but
    /// quiet) or `offline` (not running).
    pub link: String,
    pub status: Option<InstanceStatus>,
}

/// `PUT /api/v1/connectors/{id}/watches` (request and answer).
#[derive(Serialize, ToSchema)]
pub struct WatchList {
    /// Endpoints (in the plugin's endpoint kind) the operator asks the
    /// instance to watch, beside those users' attributes give it.
    pub endpoints: Vec<String>,
}

/// `GET /api/v1/connectors/{id}/writes`: newest first, at most 200.
#[derive(Serialize, ToSchema)]
pub struct WriteList {
    pub writes: Vec<WriteRecord>,
}

/// `GET /api/v1/users`.
#[derive(Serialize, ToSchema)]
pub struct UserPage {
    /// Users matching the search, over all pages.
    pub total: usize,
    pub page: usize,
    pub per_page: usize,
    pub users: Vec<crate::engine::users::User>,
}

/// `POST /api/v1/users/import`: 200 when every row was taken, 422 (nothing
/// imported, `applied: false`) with every rejected row's reason otherwise.
#[derive(Serialize, ToSchema)]
pub struct ImportResult {
    #[serde(flatten)]
    pub report: crate::engine::users::ImportReport,
    /// On 422: how many rows were rejected, in words.
    pub error: Option<String>,
}

/// `GET /api/v1/users/{username}/notes`.
#[derive(Serialize, ToSchema)]
pub struct NoteList {
    pub notes: Vec<Note>,
}

/// `POST /api/v1/users/{username}/subscribe`.
#[derive(Serialize, ToSchema)]
pub struct Subscribed {
    pub username: String,
    /// The force-subscribe holds until then (ms since the Unix epoch).
    pub until_ms: u64,
}

/// `GET /api/v1/presence`.
#[derive(Serialize, ToSchema)]
pub struct PresencePage {
    /// The feed's sequence number this list is current to (resume the
    /// feed with `since=` it).
    pub seq: u64,
    pub total: usize,
    pub page: usize,
    pub per_page: usize,
    pub users: Vec<UserPresence>,
}

/// `GET /api/v1/events`: newest first.
#[derive(Serialize, ToSchema)]
pub struct EventList {
    pub events: Vec<EventRecord>,
    /// Entries lost because the event log's writer fell behind.
    pub dropped: u64,
}

/// `GET /api/v1/sync/profiles`.
#[derive(Serialize, ToSchema)]
pub struct ProfileList {
    pub profiles: Vec<Profile>,
}

/// `GET /api/v1/tokens`.
#[derive(Serialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenRecord>,
}

/// `POST /api/v1/tokens`: the token's value is in this answer only.
#[derive(Serialize, ToSchema)]
pub struct NewTokenAnswer {
    /// The bearer token (shown once; only its hash is kept).
    pub token: String,
    pub id: String,
    pub name: String,
    pub role: String,
    pub created_at_ms: u64,
}

/// `POST /api/v1/plugins`: a `multipart/form-data` body.
// Described only: the handler reads the multipart body part by part.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct PluginUpload {
    /// The plugin's `plugin.toml`, including the component's `sha256`.
    pub manifest: String,
    /// The component (`.wasm`).
    // OpenAPI 3.1: a file's bytes are no JSON value; the media type
    // describes them (no `type`).
    #[schema(content_media_type = "application/wasm", value_type = serde_json::Value)]
    pub component: Vec<u8>,
}

/// Any message of the live feed, as an SSE event's `data` (the event's
/// name is the message's `type`, its `id` the `seq`) or a WebSocket text
/// frame: first a `snapshot` (or, when resuming, the missed `presence` and
/// `removed` events), then every change; `resync` and `revoked` end the
/// stream.
// Described only: each message is written from its own type.
#[allow(dead_code)]
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum FeedMessage {
    Snapshot(super::presence::FeedSnapshot<'static>),
    Change(crate::presence::FeedEvent),
    End(super::presence::FeedNotice),
}

/// The generated document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Presence hub API",
        description = "Admin REST API, live presence feed and webhooks of the presence connector hub. \
            Admin routes take `Authorization: Bearer <token>`; each operation says the least role it needs \
            (console < operator < admin). Every error answer is `{\"error\": ..., \"field\"?: ...}`.",
        license(name = "Apache-2.0 OR MIT")
    ),
    paths(
        super::system::health,
        super::system::ready,
        super::system::metrics,
        super::system::openapi,
        super::plugins::list,
        super::plugins::upload,
        super::plugins::get_one,
        super::plugins::delete,
        super::plugins::reload,
        super::connectors::list,
        super::connectors::create,
        super::connectors::get_one,
        super::connectors::update,
        super::connectors::replace,
        super::connectors::delete,
        super::connectors::enable,
        super::connectors::disable,
        super::connectors::status,
        super::connectors::endpoints,
        super::connectors::watches,
        super::connectors::set_presence,
        super::connectors::writes,
        super::connectors::write,
        super::users::list,
        super::users::create,
        super::users::import,
        super::users::get_one,
        super::users::replace,
        super::users::delete,
        super::users::notes,
        super::users::add_note,
        super::users::delete_note,
        super::users::subscribe,
        super::presence::list,
        super::presence::one,
        super::presence::sse,
        super::presence::ws,
        super::settings::events,
        super::settings::rules,
        super::settings::set_rules,
        super::settings::sync_profiles,
        super::settings::tokens,
        super::settings::create_token,
        super::settings::revoke_token,
        super::backup::backup,
        super::directory::get_settings,
        super::directory::put_settings,
        super::directory::sync,
        super::directory::status,
        super::directory::list_connectors,
        super::directory::get_connector,
        super::directory::put_connector,
        super::directory::delete_connector,
        super::directory::sync_connector,
        super::directory::connector_status,
        super::hooks::root,
        super::hooks::handle,
    ),
    components(schemas(FeedMessage, crate::engine::merge::ChannelState)),
    modifiers(&Conventions),
    tags(
        (name = "health", description = "Liveness, readiness, metrics and this description"),
        (name = "plugins", description = "Connector plugins (WebAssembly components)"),
        (name = "connectors", description = "Connector instances, their status, observations and write-back"),
        (name = "users", description = "Users, notes, bulk import"),
        (name = "presence", description = "Merged presence and the live feed"),
        (name = "settings", description = "Rules, sync profiles, the event log and API tokens"),
        (name = "webhooks", description = "Inbound webhooks, answered by the instance's plugin"),
        (name = "system", description = "Online backup of the hub's data"),
        (name = "directory", description = "Users kept in step with LDAP / Active Directory or a connector instance's own directory"),
    )
)]
pub struct ApiDoc;

/// What every operation shares, added once here rather than on each
/// handler: the bearer scheme and 401/403 on admin routes (with the least
/// role each needs), 414 (request target over 8 KiB) and 408 (request head
/// not sent in time) everywhere, 415 and 413 where a JSON body is taken,
/// and 503 (the hub is shutting down or at its connection cap).
struct Conventions;

fn error_response(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                Content::new(Some(RefOr::Ref(Ref::from_schema_name("Error")))),
            )
            .build(),
    )
}

fn add(op: &mut Operation, code: &str, description: &str) {
    op.responses
        .responses
        .entry(code.to_string())
        .or_insert_with(|| error_response(description));
}

/// A route a cluster node passes to the node running its instance
/// ([`super::forward::ROUTES`]): say so, with the 502 and 503 it adds.
fn passed_to_holder(op: &mut Operation) {
    let note = "In a cluster, a node that does not run the instance passes this request \
        (method, path, query, body, the caller's Authorization) to the node that does, \
        and answers with that node's status, headers and body.";
    op.description = Some(match op.description.take() {
        Some(d) => format!("{d}\n\n{note}"),
        None => note.to_string(),
    });
    let retry = utoipa::openapi::header::HeaderBuilder::new()
        .schema(Some(utoipa::openapi::Object::with_type(Type::Integer)))
        .description(Some(
            "Seconds to wait before trying again (a lease check: by then another node \
             has taken the instance over)",
        ))
        .build();
    let busy = ResponseBuilder::new()
        .description(
            "The instance is being taken over (no live node holds its lease now), or a request \
             another node passed here reached a node that does not run the instance (the \
             error names the node believed to), or the hub is starting, shutting down or at \
             its connection cap: retry after `Retry-After`",
        )
        .content(
            "application/json",
            Content::new(Some(RefOr::Ref(Ref::from_schema_name("Error")))),
        )
        .header("Retry-After", retry)
        .build();
    op.responses
        .responses
        .insert("503".to_string(), RefOr::T(busy));
    add(op, "502", "The node running the instance did not answer");
}

impl Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            let admin = path.starts_with("/api/v1/") && path != "/api/v1/openapi.json";
            for (method, op) in [
                (HttpMethod::Get, &mut item.get),
                (HttpMethod::Post, &mut item.post),
                (HttpMethod::Put, &mut item.put),
                (HttpMethod::Patch, &mut item.patch),
                (HttpMethod::Delete, &mut item.delete),
            ] {
                let Some(op) = op.as_mut() else { continue };
                // A parameter is absent or has a value, never `null`: an
                // optional one is `required: false` with its plain type
                // (tools read `type: [string, "null"]` in a query string as
                // a list).
                for p in op.parameters.iter_mut().flatten() {
                    if let RefOr::T(p) = p
                        && let Some(RefOr::T(Schema::Object(o))) = p.schema.as_mut()
                        && let SchemaType::Array(types) = &o.schema_type
                        && let [t] = types
                            .iter()
                            .filter(|t| **t != Type::Null)
                            .cloned()
                            .collect::<Vec<_>>()
                            .as_slice()
                    {
                        o.schema_type = SchemaType::Type(t.clone());
                    }
                }
                // Handlers share names across modules (`list`, `delete`):
                // the tag makes each operation id unique.
                if let (Some(tag), Some(id)) = (
                    op.tags.as_ref().and_then(|t| t.first()).cloned(),
                    op.operation_id.as_mut(),
                ) {
                    *id = format!("{tag}_{id}");
                }
                let name = match method {
                    HttpMethod::Get => "get",
                    HttpMethod::Post => "post",
                    HttpMethod::Put => "put",
                    HttpMethod::Patch => "patch",
                    _ => "delete",
                };
                if super::forward::ROUTES.contains(&(name, path.as_str())) {
                    passed_to_holder(op);
                }
                add(op, "408", "The request head was not sent in time");
                add(op, "414", "The request target is longer than 8 KiB");
                add(
                    op,
                    "503",
                    "The hub is starting, shutting down or at its connection cap; retry",
                );
                if op.request_body.is_some() {
                    add(op, "413", "The request body is over this route's limit");
                }
                if !admin {
                    continue;
                }
                let m = match method {
                    HttpMethod::Get => axum::http::Method::GET,
                    HttpMethod::Post => axum::http::Method::POST,
                    HttpMethod::Put => axum::http::Method::PUT,
                    HttpMethod::Patch => axum::http::Method::PATCH,
                    _ => axum::http::Method::DELETE,
                };
                let role = super::auth::required(&m, path).as_str();
                op.security = Some(vec![SecurityRequirement::new::<_, _, &str>("bearer", [])]);
                let need = format!("Needs a token with the `{role}` role or more.");
                op.description = Some(match op.description.take() {
                    Some(d) => format!("{d}\n\n{need}"),
                    None => need,
                });
                add(op, "401", "No token, or not a valid one");
                add(op, "403", "The token's role is too low for this route");
                if op.request_body.is_some()
                    && !matches!(path.as_str(), "/api/v1/plugins" | "/api/v1/users/import")
                {
                    add(op, "415", "A body that is not JSON");
                }
            }
        }
    }
}

/// The document as served, made once.
pub static DOCUMENT: LazyLock<Arc<str>> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes")
        .into()
});

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> serde_json::Value {
        serde_json::from_str(&DOCUMENT).unwrap()
    }

    #[test]
    fn documents_exactly_the_routes() {
        let doc = doc();
        let mut documented = Vec::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                if method != "parameters" {
                    documented.push((method.clone(), path.clone()));
                }
            }
        }
        let mut routes: Vec<_> = super::super::ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        documented.sort();
        routes.sort();
        assert_eq!(documented, routes);
    }

    #[test]
    fn every_operation_has_a_success_answer_and_its_path_parameters() {
        let doc = doc();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            let names: Vec<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            for (method, op) in ops.as_object().unwrap() {
                let codes: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
                assert!(
                    codes.iter().any(|c| c.starts_with('2') || *c == "101"),
                    "{method} {path}: no success answer in {codes:?}"
                );
                for n in &names {
                    assert!(
                        op["parameters"].as_array().is_some_and(|ps| ps
                            .iter()
                            .any(|p| p["name"] == *n && p["in"] == "path")),
                        "{method} {path}: path parameter {n} undocumented"
                    );
                }
                if path.starts_with("/api/v1/") && path != "/api/v1/openapi.json" {
                    assert!(codes.iter().any(|c| *c == "401"), "{method} {path}: no 401");
                    assert!(
                        op["description"]
                            .as_str()
                            .is_some_and(|d| d.contains("role")),
                        "{method} {path}: the role it needs"
                    );
                }
            }
        }
    }

    #[test]
    fn operation_ids_are_unique() {
        let doc = doc();
        let mut ids = std::collections::BTreeSet::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap_or_default().to_string();
                assert!(
                    ids.insert(id.clone()),
                    "{method} {path}: operationId {id} twice"
                );
            }
        }
    }

    #[test]
    fn the_state_vocabulary_is_enumerated() {
        let doc = doc();
        let s = &doc["components"]["schemas"];
        let states = s["ChannelState"]["enum"].as_array().unwrap();
        assert!(states.iter().any(|v| v == "forwarded-to-voicemail"));
        assert!(states.iter().any(|v| v == "server-not-configured"));
        assert!(s["FeedMessage"].is_object(), "feed messages described");
        assert!(
            s["ConnectorStatus"]["enum"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v == "up-and-running")
        );
    }
}
