//! `/api/v1/settings/rules`, `/api/v1/events` and `/api/v1/tokens`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::auth::Role;
use super::error::{ApiQuery, parse_json};
use super::{ApiError, AppState};
use crate::engine::merge::Rules;
use crate::store::EventQuery;

#[utoipa::path(
    get,
    path = "/api/v1/settings/rules",
    tag = "settings",
    summary = "The merge, sync and calendar rules",
    responses(
        (status = 200, description = "The rules", body = crate::engine::merge::Rules)
    )
)]
pub async fn rules(State(s): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(s.presence.rules().await?))
}

/// Replace the merge rules; applied at once.
#[utoipa::path(
    put,
    path = "/api/v1/settings/rules",
    tag = "settings",
    summary = "Replace the rules (applied at once)",
    request_body = crate::engine::merge::Rules,
    responses(
        (status = 200, description = "The rules now", body = crate::engine::merge::Rules),
        (status = 400, description = "The body is not valid JSON or not of this shape; `field` names the JSON path", body = super::openapi::ErrorBody),
        (status = 422, description = "A value is refused; `field` names it and the error says what is allowed", body = super::openapi::ErrorBody)
    )
)]
pub async fn set_rules(
    State(s): State<AppState>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let r: Rules = parse_json(&body)?;
    if r.stale_after_seconds == Some(0) {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "stale_after_seconds",
            "at least 1 (seconds), or null for no time limit",
        ));
    }
    if r.event_retention_days == 0 || r.event_retention_days > 3650 {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "event_retention_days",
            "1-3650",
        ));
    }
    if r.forward_visible_digits == Some(0) {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "forward_visible_digits",
            "at least 1, or null for all",
        ));
    }
    if let Err((field, allowed)) = r.sync.validate() {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            &field,
            &allowed,
        ));
    }
    let r = s.presence.set_rules(r).await?;
    Ok(Json(r))
}

/// The sync's mapping profiles: what each counts as a conversation, in
/// plain words.
#[utoipa::path(
    get,
    path = "/api/v1/sync/profiles",
    tag = "settings",
    summary = "The sync's mapping profiles",
    responses(
        (status = 200, description = "Presets", body = super::openapi::ProfileList)
    )
)]
pub async fn sync_profiles() -> impl IntoResponse {
    Json(json!({ "profiles": crate::engine::sync::profile::presets() }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    user: Option<String>,
    connector: Option<String>,
    since_ms: Option<u64>,
    until_ms: Option<u64>,
    limit: Option<usize>,
}

/// The event log, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "settings",
    summary = "The event log, newest first",
    params(EventsQuery),
    responses(
        (status = 200, description = "Events", body = super::openapi::EventList),
        (status = 400, description = "A parameter is out of range", body = super::openapi::ErrorBody)
    )
)]
pub async fn events(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 10_000 {
        return Err(ApiError::field(StatusCode::BAD_REQUEST, "limit", "1-10000"));
    }
    let events = s
        .presence
        .log()
        .query(&EventQuery {
            username: q.user,
            instance: q.connector,
            since_ms: q.since_ms.unwrap_or(0),
            until_ms: q.until_ms.unwrap_or(u64::MAX),
            limit,
        })
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(
        json!({ "events": events, "dropped": s.presence.log().dropped() }),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    role: Role,
}

#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "settings",
    summary = "API tokens (never their values)",
    responses(
        (status = 200, description = "Tokens", body = super::openapi::TokenList)
    )
)]
pub async fn tokens(State(s): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let list = s
        .auth
        .list()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(json!({ "tokens": list })))
}

/// Create a token; its value is shown in this answer only.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "settings",
    summary = "Create an API token",
    request_body = NewToken,
    responses(
        (status = 201, description = "Created; the value is shown here only", body = super::openapi::NewTokenAnswer),
        (status = 400, description = "The body is not valid JSON or not of this shape; `field` names the JSON path", body = super::openapi::ErrorBody),
        (status = 422, description = "A value is refused; `field` names it and the error says what is allowed", body = super::openapi::ErrorBody)
    )
)]
pub async fn create_token(
    State(s): State<AppState>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let t: NewToken = parse_json(&body)?;
    if t.name.trim().is_empty() || t.name.len() > 100 {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "name",
            "1-100 characters",
        ));
    }
    let (rec, token) = s
        .auth
        .create(t.name.trim(), t.role)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "token": token, "id": rec.id, "name": rec.name, "role": rec.role, "created_at_ms": rec.created_at_ms }),
        ),
    ))
}

#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    tag = "settings",
    summary = "Revoke a token (its open feeds end)",
    params(("id" = String, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such token", body = super::openapi::ErrorBody)
    )
)]
pub async fn revoke_token(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    match s.auth.revoke(&id) {
        Ok(true) => Ok(StatusCode::NO_CONTENT),
        Ok(false) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("token {id:?} not found"),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        )),
    }
}
