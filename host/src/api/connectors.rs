//! `/api/v1/connectors`: connector instances, their status, observations,
//! watches and write-back.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::{ApiQuery, parse_json};
use super::{ApiError, AppState};
use crate::runtime::{ConnectorPatch, ConnectorReplace, NewConnector, PresenceWrite};

#[utoipa::path(
    get,
    path = "/api/v1/connectors",
    tag = "connectors",
    summary = "List connector instances",
    responses(
        (status = 200, description = "Every instance", body = super::openapi::ConnectorList)
    )
)]
pub async fn list(State(s): State<AppState>) -> impl IntoResponse {
    Json(json!({ "connectors": s.runtime.connectors().await }))
}

#[utoipa::path(
    post,
    path = "/api/v1/connectors",
    tag = "connectors",
    summary = "Create a connector instance",
    request_body = crate::runtime::NewConnector,
    responses(
        (status = 201, description = "Created", body = crate::runtime::ConnectorView),
        (status = 400, description = "The body is not valid JSON or not of this shape; `field` names the JSON path", body = super::openapi::ErrorBody),
        (status = 409, description = "An instance of this id exists", body = super::openapi::ErrorBody),
        (status = 422, description = "The configuration is refused (by the host or the plugin's configure); `field` names it", body = super::openapi::ErrorBody)
    )
)]
pub async fn create(State(s): State<AppState>, body: Bytes) -> Result<impl IntoResponse, ApiError> {
    let req: NewConnector = parse_json(&body)?;
    let view = s.runtime.create_connector(req).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(
    get,
    path = "/api/v1/connectors/{id}",
    tag = "connectors",
    summary = "One connector instance and its sync profile",
    params(("id" = String, Path, description = "Connector instance id")),
    responses(
        (status = 200, description = "The instance", body = super::openapi::ConnectorDetail),
        (status = 404, description = "No such connector", body = super::openapi::ErrorBody)
    )
)]
pub async fn get_one(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let view = s.runtime.connector(&id).await?;
    // What counts as a conversation on this instance, for the sync.
    let profile = s.presence.rules().await?.sync.profile(&id);
    let mut v = serde_json::to_value(view)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    v["sync_profile"] = serde_json::to_value(profile)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(v))
}

/// `PATCH`: a JSON merge patch (RFC 7396) over the instance; its `config`
/// is merged into the stored one (`null` removes a field). 422 names the
/// field when the host's check or the plugin's `configure` refuses it; the
/// old configuration is kept then.
#[utoipa::path(
    patch,
    path = "/api/v1/connectors/{id}",
    tag = "connectors",
    summary = "Change part of an instance (JSON merge patch of config)",
    params(("id" = String, Path, description = "Connector instance id")),
    request_body = crate::runtime::ConnectorPatch,
    responses(
        (status = 200, description = "Changed", body = crate::runtime::ConnectorView),
        (status = 400, description = "The body is not valid JSON or not of this shape; `field` names the JSON path", body = super::openapi::ErrorBody),
        (status = 404, description = "No such connector", body = super::openapi::ErrorBody),
        (status = 422, description = "The configuration is refused; the old one is kept", body = super::openapi::ErrorBody)
    )
)]
pub async fn update(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let patch: ConnectorPatch = parse_json(&body)?;
    let view = s.runtime.update_connector(&id, patch).await?;
    Ok(Json(view))
}

/// `PUT`: the instance's settings in full (see [`ConnectorReplace`]);
/// refusals as for `PATCH`.
#[utoipa::path(
    put,
    path = "/api/v1/connectors/{id}",
    tag = "connectors",
    summary = "Replace an instance's settings",
    params(("id" = String, Path, description = "Connector instance id")),
    request_body = crate::runtime::ConnectorReplace,
    responses(
        (status = 200, description = "Replaced", body = crate::runtime::ConnectorView),
        (status = 400, description = "The body is not valid JSON or not of this shape; `field` names the JSON path", body = super::openapi::ErrorBody),
        (status = 404, description = "No such connector", body = super::openapi::ErrorBody),
        (status = 422, description = "The configuration is refused; the old one is kept", body = super::openapi::ErrorBody)
    )
)]
pub async fn replace(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let req: ConnectorReplace = parse_json(&body)?;
    let view = s.runtime.replace_connector(&id, req).await?;
    Ok(Json(view))
}

#[utoipa::path(
    delete,
    path = "/api/v1/connectors/{id}",
    tag = "connectors",
    summary = "Delete an instance",
    params(("id" = String, Path, description = "Connector instance id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such connector", body = super::openapi::ErrorBody)
    )
)]
pub async fn delete(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.runtime.delete_connector(&id).await?;
    s.directory.connector_deleted(&id).await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/v1/connectors/{id}/enable",
    tag = "connectors",
    summary = "Enable (and lift a quarantine)",
    params(("id" = String, Path, description = "Connector instance id")),
    responses(
        (status = 200, description = "Enabled", body = crate::runtime::ConnectorView),
        (status = 404, description = "No such connector", body = super::openapi::ErrorBody)
    )
)]
pub async fn enable(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let view = s.runtime.set_enabled(&id, true).await?;
    Ok(Json(view))
}

#[utoipa::path(
    post,
    path = "/api/v1/connectors/{id}/disable",
    tag = "connectors",
    summary = "Disable",
    params(("id" = String, Path, description = "Connector instance id")),
    responses(
        (status = 200, description = "Disabled", body = crate::runtime::ConnectorView),
        (status = 404, description = "No such connector", body = super::openapi::ErrorBody)
    )
)]
pub async fn disable(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let view = s.runtime.set_enabled(&id, false).await?;
    Ok(Json(view))
}

#[utoipa::path(
    get,
    path = "/api/v1/connectors/{id}/status",
    tag = "connectors",
    summary = "An instance's health",
    params(("id" = String, Path, description = "Connector instance id")),
    responses(
        (status = 200, description = "Status and link", body = super::openapi::ConnectorHealth),
        (status = 404, description = "No such connector", body = super::openapi::ErrorBody)
    )
)]
pub async fn status(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let c = s.runtime.connector(&id).await?;
    // aurenz's sense, bound to the status: online = up and reported in the
    // last 5 minutes; connected = up but quiet; offline = not up (not
    // running, or its status is anything but up-and-running). See
    // `runtime::Link`.
    let link = c
        .status
        .as_ref()
        .map_or(crate::runtime::Link::Offline, |st| {
            st.link(crate::store::now_ms())
        });
    let online = link == crate::runtime::Link::Online;
    Ok(Json(json!({
        "id": c.id,
        "plugin": c.plugin,
        "enabled": c.enabled,
        "problem": c.problem,
        "online": online,
        "link": link,
        "status": c.status,
    })))
}

#[utoipa::path(
    get,
    path = "/api/v1/connectors/{id}/endpoints",
    tag = "connectors",
    summary = "What the instance observed, per endpoint, and its directory",
    params(("id" = String, Path, description = "Connector instance id")),
    responses(
        (status = 200, description = "Observations", body = crate::engine::InstanceBoard),
        (status = 404, description = "No such connector", body = super::openapi::ErrorBody)
    )
)]
pub async fn endpoints(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.runtime.connector(&id).await?;
    Ok(Json(s.presence.observations(&id).await?))
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Watches {
    endpoints: Vec<String>,
}

#[utoipa::path(
    put,
    path = "/api/v1/connectors/{id}/watches",
    tag = "connectors",
    summary = "Replace the endpoints an operator asks the instance to watch",
    params(("id" = String, Path, description = "Connector instance id")),
    request_body = Watches,
    responses(
        (status = 200, description = "The watch list now", body = super::openapi::WatchList),
        (status = 400, description = "The body is not valid JSON or not of this shape; `field` names the JSON path", body = super::openapi::ErrorBody),
        (status = 404, description = "No such connector", body = super::openapi::ErrorBody),
        (status = 422, description = "A value is refused; `field` names it and the error says what is allowed", body = super::openapi::ErrorBody)
    )
)]
pub async fn watches(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let w: Watches = parse_json(&body)?;
    let patch = ConnectorPatch {
        watches: Some(w.endpoints),
        ..Default::default()
    };
    let view = s.runtime.update_connector(&id, patch).await.map_err(|e| {
        let mut e = ApiError::from(e);
        if let Some(f) = e.field.as_mut()
            && f.starts_with("watches")
        {
            *f = f.replacen("watches", "endpoints", 1);
        }
        e
    })?;
    Ok(Json(json!({ "endpoints": view.watches })))
}

/// The longest a write-back may be asked to hold (30 days).
pub const MAX_WRITE_EXPIRY_MS: u64 = 30 * 24 * 3600 * 1000;

#[utoipa::path(
    post,
    path = "/api/v1/connectors/{id}/endpoints/{endpoint}/presence",
    tag = "connectors",
    summary = "Write presence back to the platform",
    params(("id" = String, Path, description = "Connector instance id"), ("endpoint" = String, Path, description = "The endpoint (in the plugin's endpoint kind)")),
    request_body = crate::runtime::PresenceWrite,
    responses(
        (status = 202, description = "Accepted; the outcome comes later under the write id", body = crate::runtime::WriteRecord, headers(("Location" = String, description = "`/api/v1/writes/{id}`; in a cluster `/api/v1/writes/{id}?node={node}`, naming the node that made the write and keeps its record, so the address works on every node"))),
        (status = 400, description = "The body is not valid JSON or not of this shape; `field` names the JSON path", body = super::openapi::ErrorBody),
        (status = 404, description = "No such connector", body = super::openapi::ErrorBody),
        (status = 422, description = "A value is refused, or the plugin cannot write", body = super::openapi::ErrorBody)
    )
)]
pub async fn set_presence(
    State(s): State<AppState>,
    Path((id, endpoint)): Path<(String, String)>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let write: PresenceWrite = parse_json(&body)?;
    if let PresenceWrite::Set {
        expires_in_ms,
        note,
        ..
    } = &write
    {
        // Bounded before a plugin adds it to a clock.
        if expires_in_ms.is_some_and(|ms| ms == 0 || ms > MAX_WRITE_EXPIRY_MS) {
            return Err(ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "expires_in_ms",
                format!("1-{MAX_WRITE_EXPIRY_MS} (at most 30 days), or absent for no expiry"),
            ));
        }
        if note.as_ref().is_some_and(|n| n.len() > 2000) {
            return Err(ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "note",
                "at most 2000 characters",
            ));
        }
    }
    let record = s.runtime.set_presence(&id, &endpoint, write).await?;
    // Write ids are this node's: in a cluster the address names the node,
    // which any node passes a GET to.
    let node = super::forward::node_id(&s.runtime);
    let location = if node.is_empty() {
        format!("/api/v1/writes/{}", record.id)
    } else {
        format!("/api/v1/writes/{}?node={node}", record.id)
    };
    Ok((
        StatusCode::ACCEPTED,
        [(axum::http::header::LOCATION, location)],
        Json(record),
    ))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WriteQuery {
    /// The cluster node that made the write (as the write-back's
    /// `Location` names it); absent: this node.
    node: Option<String>,
}

/// One write-back and its outcome. Write ids are given by the node that
/// makes the write, which keeps its record (in memory, the last 10,000).
/// In a cluster the write-back's `Location` adds `?node=`, and a node that
/// gets a GET for another node's write passes it to that node and answers
/// with its answer; without `node` the id is this node's.
#[utoipa::path(
    get,
    path = "/api/v1/writes/{id}",
    tag = "connectors",
    summary = "One write-back and its outcome",
    params(("id" = String, Path, description = "Write id (a whole number)"), WriteQuery),
    responses(
        (status = 200, description = "The write", body = crate::runtime::WriteRecord),
        (status = 400, description = "The id is not a whole number, or an unknown query parameter", body = super::openapi::ErrorBody),
        (status = 404, description = "No such write; or `node` names no live node of this cluster (`field`: `node`; its records went with it)", body = super::openapi::ErrorBody),
        (status = 502, description = "The node that made the write did not answer", body = super::openapi::ErrorBody),
        (status = 503, description = "The hub is starting, shutting down or at its connection cap; or a GET one node passed on reached a node other than `node` (nodes sharing one address): retry", body = super::openapi::ErrorBody)
    )
)]
pub async fn write(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<WriteQuery>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id: u64 = id.parse().map_err(|_| {
        ApiError::field(
            StatusCode::BAD_REQUEST,
            "id",
            "a write id is a whole number",
        )
    })?;
    let me = super::forward::node_id(&s.runtime);
    if let Some(node) = q.node.as_deref()
        && node != me
    {
        let crate::runtime::Placement::Held(book) = s.runtime.placement() else {
            return Err(ApiError::field(
                StatusCode::NOT_FOUND,
                "node",
                "this hub is not a node of a cluster: its write ids name no node; leave `node` out",
            ));
        };
        if super::forward::is_forwarded(&headers) {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "a GET for node {node}'s write {id} was passed to this node ({me}): \
                     give each node its own public_url; retry"
                ),
            ));
        }
        let Some(url) = book.url_of(node) else {
            return Err(ApiError::field(
                StatusCode::NOT_FOUND,
                "node",
                format!(
                    "node {node}, which made write {id}, is not live: a write's record is kept \
                     by the node that made it and went with it"
                ),
            ));
        };
        return Ok(super::forward::pass(
            &url,
            &super::forward::target(&uri),
            &Method::GET,
            &headers,
            Bytes::new(),
            &me,
            &format!("node {node}, which made write {id},"),
        )
        .await);
    }
    Ok(Json(s.runtime.write(id)?).into_response())
}

/// An instance's recent write-backs, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/connectors/{id}/writes",
    tag = "connectors",
    summary = "An instance's recent write-backs, newest first",
    params(("id" = String, Path, description = "Connector instance id")),
    responses(
        (status = 200, description = "At most 200", body = super::openapi::WriteList),
        (status = 404, description = "No such connector", body = super::openapi::ErrorBody)
    )
)]
pub async fn writes(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.runtime.connector(&id).await?;
    Ok(Json(json!({ "writes": s.runtime.writes_of(&id, 200) })))
}
