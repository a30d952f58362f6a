//! Health, readiness, metrics and the OpenAPI description.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

use super::{ApiError, AppState};

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    summary = "Liveness",
    responses(
        (status = 200, description = "The process answers", body = super::openapi::Health)
    )
)]
pub async fn health() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz[?require=ID,ID|*]`: readiness, with every connector that is
/// not up named and why.
///
/// Answers 200 `{"ready": true, ...}` when every stored connector could be
/// started (its plugin is loaded, its configuration fits) and every
/// *required* connector is up (running and `up-and-running`); otherwise 503
/// with the same body and `"ready": false`. Required connectors are those
/// named in `require` (comma-separated instance ids; `*` means every
/// enabled connector) and in the `ready_requires` setting
/// (`HUB_READY_REQUIRES`). Connectors that are down but not required do not
/// make the hub unready, but are listed under `down` and set `"degraded":
/// true`, so the answer never looks healthy while a platform is
/// unreachable.
///
/// Body: `ready` (bool), `degraded` (bool: some enabled connector is not
/// up), `problems` (strings: connectors that cannot start), `required`
/// (ids), `not_ready` (`[{id, reason}]`: required connectors not up),
/// `down` (`[{id, plugin, run_state, status, reason}]`: enabled connectors
/// not up), `up` (ids).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    summary = "Readiness",
    params(("require" = Option<String>, Query, description = "Comma-separated connector instance ids that must be up (`*`: every enabled one), beside HUB_READY_REQUIRES")),
    responses(
        (status = 200, description = "Ready", body = ReadinessReport),
        (status = 503, description = "Not ready; `problems` and `not_ready` say why", body = ReadinessReport)
    )
)]
pub async fn ready(State(s): State<AppState>, RawQuery(query): RawQuery) -> impl IntoResponse {
    let problems = s.runtime.problems().await;
    let connectors = s.runtime.connectors().await;
    let mut require: Vec<String> = s.ready_requires.as_ref().clone();
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if k == "require" {
            require.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|id| !id.is_empty())
                    .map(str::to_string),
            );
        }
    }
    let all = require.iter().any(|r| r == "*");
    let mut up = Vec::new();
    let mut down = Vec::new();
    let mut reasons = std::collections::BTreeMap::new();
    let share = s.runtime.placement().share();
    let mut elsewhere = Vec::new();
    for c in &connectors {
        // Run by another node of the cluster: that node's /readyz says how.
        if let (Some(node), Some(sh)) = (&c.node, &share)
            && *node != sh.node
        {
            elsewhere.push(c.id.clone());
            continue;
        }
        let why = match &c.status {
            Some(st) => st.why_not_up(),
            None => Some(
                c.problem
                    .clone()
                    .unwrap_or_else(|| "not started".to_string()),
            ),
        };
        match why {
            None => up.push(c.id.clone()),
            Some(reason) => {
                reasons.insert(c.id.clone(), reason.clone());
                if c.enabled {
                    down.push(ConnectorDown {
                        id: c.id.clone(),
                        plugin: c.plugin.clone(),
                        run_state: c.status.as_ref().map(|st| st.run_state),
                        status: c.status.as_ref().map(|st| st.status),
                        reason,
                    });
                }
            }
        }
    }
    if all {
        require.retain(|r| r != "*");
        require.extend(
            connectors
                .iter()
                .filter(|c| c.enabled)
                .map(|c| c.id.clone()),
        );
    }
    require.sort();
    require.dedup();
    let not_ready: Vec<_> = require
        .iter()
        .filter(|id| !up.contains(id))
        .map(|id| NotReady {
            id: id.clone(),
            reason: match reasons.get(id) {
                Some(r) => r.clone(),
                None => "no such connector".to_string(),
            },
        })
        .collect();
    // Required connectors run elsewhere count as up here.
    let not_ready: Vec<_> = not_ready
        .into_iter()
        .filter(|n| !elsewhere.contains(&n.id))
        .collect();
    let ready = problems.is_empty()
        && not_ready.is_empty()
        && share.as_ref().is_none_or(|sh| sh.holds_share);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(ReadinessReport {
            ready,
            degraded: !down.is_empty(),
            problems,
            required: require,
            not_ready,
            down,
            up,
            elsewhere,
            cluster: share,
        }),
    )
}

/// The `/readyz` answer, the same with 200 and 503.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ReadinessReport {
    /// Every stored connector could be started and every required one is up.
    pub ready: bool,
    /// Some enabled connector is not up (required or not).
    pub degraded: bool,
    /// One line per stored connector that could not be started.
    pub problems: Vec<String>,
    /// Connector ids required up (`require` and `HUB_READY_REQUIRES`, `*`
    /// expanded), sorted.
    pub required: Vec<String>,
    /// Required connectors that are not up, and why.
    pub not_ready: Vec<NotReady>,
    /// Enabled connectors that are not up.
    pub down: Vec<ConnectorDown>,
    /// Connectors running and `up-and-running`.
    pub up: Vec<String>,
    /// Connectors another node of the cluster runs (its `/readyz` tells
    /// how they are).
    pub elsewhere: Vec<String>,
    /// One node of a cluster: its share of the connector instances. The
    /// node is ready only while it runs every instance that belongs on it.
    pub cluster: Option<crate::cluster::Share>,
}

/// A required connector that is not up.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct NotReady {
    pub id: String,
    /// Why, in one line (`connection-error: pbx:5060 unreachable: ...`,
    /// `quarantined: ...`, `disabled`, `no such connector`).
    pub reason: String,
}

/// An enabled connector that is not up.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ConnectorDown {
    pub id: String,
    pub plugin: String,
    /// Absent when the instance could not be started at all.
    pub run_state: Option<crate::runtime::RunState>,
    pub status: Option<crate::engine::ConnectorStatus>,
    pub reason: String,
}

/// Prometheus text; with `metrics_auth` set, only for a valid token.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    summary = "Prometheus metrics (OpenMetrics text)",
    responses(
        (status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
        (status = 401, description = "With HUB_METRICS_AUTH: no valid token", body = super::openapi::ErrorBody)
    )
)]
pub async fn metrics(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    if s.metrics_auth {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if token.and_then(|t| s.auth.caller(t)).is_none() {
            let mut e = ApiError::field(
                StatusCode::UNAUTHORIZED,
                "Authorization",
                "metrics need a token here (HUB_METRICS_AUTH): send Authorization: Bearer <token>",
            )
            .into_response();
            e.headers_mut()
                .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static"));
            return e;
        }
    }
    // Gauges read from their source at scrape time: the status the API
    // shows, and the event log's queue.
    let connectors = s.runtime.connectors().await;
    s.metrics.set_statuses(connectors.into_iter().map(|c| {
        let (status, up) = c.status.as_ref().map_or(
            (crate::engine::ConnectorStatus::NotConfigured, false),
            |st| (st.status, st.is_up()),
        );
        (c.id, c.plugin, status, up)
    }));
    s.metrics
        .presence
        .log_queued
        .set(i64::try_from(s.presence.log().queued()).unwrap_or(i64::MAX));
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

/// Middleware: count every answered request in `http_requests` and
/// `http_request_duration_seconds`, by method, route template (never the
/// raw path: `/api/v1/users/{username}`; `unmatched` for a path no route
/// takes) and status. Methods outside the standard ones count as `other`.
pub async fn track(
    State(metrics): State<std::sync::Arc<crate::telemetry::Metrics>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let method = match req.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => m.to_string(),
        _ => "other".to_string(),
    };
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let resp = next.run(req).await;
    metrics.http_request(
        &method,
        &route,
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    resp
}

/// The OpenAPI 3.1 description of this API, generated from the code
/// (`api/openapi.rs`).
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "health",
    responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json", body = Object)))]
pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi::DOCUMENT.to_string(),
    )
}

pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such route; see /api/v1/openapi.json",
    )
}
