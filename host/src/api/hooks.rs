//! Inbound webhooks, routed by connector instance to its plugin.

use axum::extract::{Path, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState, forward};
use crate::runtime::{Header, WebhookRequest};

#[utoipa::path(
    post,
    path = "/hooks/{instance}",
    tag = "webhooks",
    summary = "A webhook for a connector instance, answered by its plugin (any method is passed on)",
    params(("instance" = String, Path, description = "Connector instance id")),
    request_body(content = serde_json::Value, description = "Whatever the platform sends (any media type; the plugin reads it)", content_type = "*/*"),
    responses(
        (status = 200, description = "The plugin's answer, as the plugin made it (status, headers and body are the plugin's; any media type)", content_type = "*/*", body = serde_json::Value),
        (status = "default", description = "Another status the plugin chose (e.g. 401 for a bad signature), with its body", content_type = "*/*", body = serde_json::Value),
        (status = 404, description = "No such instance taking webhooks (unknown, disabled and webhook-less instances answer alike)", body = super::openapi::ErrorBody),
        (status = 413, description = "Over max_webhook_bytes", body = super::openapi::ErrorBody),
        (status = 502, description = "In a cluster: the node running the instance failed to answer", body = super::openapi::ErrorBody),
        (status = 503, description = "In a cluster: the instance is being taken over by another node (or a passed request reached a node that does not run it); deliver again after Retry-After seconds", body = super::openapi::ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait")))
    )
)]
pub async fn root(
    State(s): State<AppState>,
    Path(instance): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    dispatch(s, instance, String::new(), req).await
}

#[utoipa::path(
    post,
    path = "/hooks/{instance}/{path}",
    tag = "webhooks",
    summary = "A webhook for a connector instance, answered by its plugin (any method is passed on)",
    params(("instance" = String, Path, description = "Connector instance id"), ("path" = String, Path, description = "The rest of the path, passed to the plugin")),
    request_body(content = serde_json::Value, description = "Whatever the platform sends (any media type; the plugin reads it)", content_type = "*/*"),
    responses(
        (status = 200, description = "The plugin's answer, as the plugin made it (status, headers and body are the plugin's; any media type)", content_type = "*/*", body = serde_json::Value),
        (status = "default", description = "Another status the plugin chose (e.g. 401 for a bad signature), with its body", content_type = "*/*", body = serde_json::Value),
        (status = 404, description = "No such instance taking webhooks (unknown, disabled and webhook-less instances answer alike)", body = super::openapi::ErrorBody),
        (status = 413, description = "Over max_webhook_bytes", body = super::openapi::ErrorBody),
        (status = 502, description = "In a cluster: the node running the instance failed to answer", body = super::openapi::ErrorBody),
        (status = 503, description = "In a cluster: the instance is being taken over by another node (or a passed request reached a node that does not run it); deliver again after Retry-After seconds", body = super::openapi::ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait")))
    )
)]
pub async fn handle(
    State(s): State<AppState>,
    Path((instance, path)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    dispatch(s, instance, path, req).await
}

async fn dispatch(
    s: AppState,
    instance: String,
    path: String,
    req: Request,
) -> Result<Response, ApiError> {
    let forward::Received {
        method,
        uri,
        headers,
        body,
    } = match forward::receive(req).await {
        Ok(r) => r,
        Err(answer) => return Ok(answer),
    };
    // Another node of the cluster runs the instance: pass the request on,
    // once; while nobody does, ask the sender to deliver again.
    match forward::route(&s.runtime, &instance, forward::is_forwarded(&headers)) {
        forward::Route::Here => {}
        forward::Route::Later(message, wait) => return Ok(forward::later(message, wait)),
        forward::Route::There { node, url } => {
            return Ok(forward::pass(
                &url,
                &forward::target(&uri),
                &method,
                &headers,
                body,
                &forward::node_id(&s.runtime),
                &format!("node {node}, which runs connector {instance},"),
            )
            .await);
        }
    }
    let request = WebhookRequest {
        method: method.to_string(),
        path: format!("/{path}"),
        query: uri.query().unwrap_or_default().to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| Header {
                name: k.as_str().to_owned(),
                value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
            })
            .collect(),
        body: body.to_vec(),
    };
    // Unknown, disabled and webhook-less instances answer alike, naming
    // nothing: the answer does not tell which instance ids exist.
    use crate::telemetry::WebhookResult;
    let resp = match s.runtime.webhook(&instance, request).await {
        Err(crate::runtime::RuntimeError::NotFound { .. }) => {
            s.metrics.webhook(WebhookResult::NoReceiver);
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                crate::runtime::actor::NO_WEBHOOK_RECEIVER,
            ));
        }
        Err(e) => {
            s.metrics.webhook(WebhookResult::Unavailable);
            return Err(e.into());
        }
        Ok(r) => r,
    };
    s.metrics.webhook(match resp.status {
        200..=299 => WebhookResult::Accepted,
        400..=499 => WebhookResult::Refused,
        _ => WebhookResult::Failed,
    });
    let status = StatusCode::from_u16(resp.status).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("the connector answered with invalid status {}", resp.status),
        )
    })?;
    let mut out = (status, resp.body).into_response();
    out.extensions_mut().insert(super::error::PluginAnswer);
    // The guest's headers replace the defaults (a validation echo must be
    // text/plain, not the octet-stream a byte body gets by default); a header
    // the guest repeats keeps every value.
    let mut set = std::collections::HashSet::new();
    for h in resp.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_str(&h.value),
        ) {
            if set.insert(name.clone()) {
                out.headers_mut().insert(name, value);
            } else {
                out.headers_mut().append(name, value);
            }
        }
    }
    Ok(out)
}
