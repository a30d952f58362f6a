//! Health, readiness, metrics and the OpenAPI description.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

use super::{ApiError, AppState};

/// The OpenAPI 3.1 description of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

pub async fn health() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Ready when every stored connector could be started.
pub async fn ready(State(s): State<AppState>) -> impl IntoResponse {
    let problems = s.runtime.problems().await;
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "ready": problems.is_empty(), "problems": problems })),
    )
}

/// Prometheus text; with `metrics_auth` set, only for a valid token.
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
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such route; see /api/v1/openapi.json",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_documents_exactly_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
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
}
