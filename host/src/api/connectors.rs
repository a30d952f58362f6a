//! `/api/v1/connectors`: connector instances, their status, observations,
//! watches and write-back.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use super::error::parse_json;
use super::{ApiError, AppState};
use crate::runtime::{ConnectorPatch, ConnectorReplace, NewConnector, PresenceWrite};

pub async fn list(State(s): State<AppState>) -> impl IntoResponse {
    Json(json!({ "connectors": s.runtime.connectors().await }))
}

pub async fn create(State(s): State<AppState>, body: Bytes) -> Result<impl IntoResponse, ApiError> {
    let req: NewConnector = parse_json(&body)?;
    let view = s.runtime.create_connector(req).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

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
pub async fn replace(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let req: ConnectorReplace = parse_json(&body)?;
    let view = s.runtime.replace_connector(&id, req).await?;
    Ok(Json(view))
}

pub async fn delete(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.runtime.delete_connector(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn enable(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let view = s.runtime.set_enabled(&id, true).await?;
    Ok(Json(view))
}

pub async fn disable(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let view = s.runtime.set_enabled(&id, false).await?;
    Ok(Json(view))
}

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

pub async fn endpoints(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.runtime.connector(&id).await?;
    Ok(Json(s.presence.observations(&id).await?))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Watches {
    endpoints: Vec<String>,
}

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
    let location = format!("/api/v1/writes/{}", record.id);
    Ok((
        StatusCode::ACCEPTED,
        [(axum::http::header::LOCATION, location)],
        Json(record),
    ))
}

/// One write-back and its outcome.
pub async fn write(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id: u64 = id.parse().map_err(|_| {
        ApiError::field(
            StatusCode::BAD_REQUEST,
            "id",
            "a write id is a whole number",
        )
    })?;
    Ok(Json(s.runtime.write(id)?))
}

/// An instance's recent write-backs, newest first.
pub async fn writes(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.runtime.connector(&id).await?;
    Ok(Json(json!({ "writes": s.runtime.writes_of(&id, 200) })))
}
