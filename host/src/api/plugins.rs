//! `/api/v1/plugins`: list, upload (hot reload when the id exists), get,
//! delete, reload.

use axum::Json;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use super::{ApiError, AppState};

#[utoipa::path(
    get,
    path = "/api/v1/plugins",
    tag = "plugins",
    summary = "List plugins",
    responses(
        (status = 200, description = "Every loaded plugin and the folders that failed", body = super::openapi::PluginList)
    )
)]
pub async fn list(State(s): State<AppState>) -> impl IntoResponse {
    let (plugins, errors) = s.runtime.plugins().await;
    Json(json!({ "plugins": plugins, "folder_errors": errors }))
}

#[utoipa::path(
    get,
    path = "/api/v1/plugins/{id}",
    tag = "plugins",
    summary = "One plugin",
    params(("id" = String, Path, description = "Plugin id")),
    responses(
        (status = 200, description = "The plugin", body = crate::runtime::PluginView),
        (status = 404, description = "No such plugin", body = super::openapi::ErrorBody)
    )
)]
pub async fn get_one(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(s.runtime.plugin(&id).await?))
}

/// `multipart/form-data` with a `manifest` part (plugin.toml, including the
/// component's `sha256`) and a `component` part (the .wasm).
#[utoipa::path(
    post,
    path = "/api/v1/plugins",
    tag = "plugins",
    summary = "Upload a plugin (hot-reloads one of the same id)",
    request_body(content = super::openapi::PluginUpload, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Installed", body = crate::runtime::PluginView),
        (status = 400, description = "A missing or unknown part, or the component does not match the manifest's sha256", body = super::openapi::ErrorBody),
        (status = 409, description = "An instance does not fit the new build's configuration", body = super::openapi::ErrorBody),
        (status = 413, description = "Over max_upload_bytes", body = super::openapi::ErrorBody),
        (status = 422, description = "The manifest or component is refused", body = super::openapi::ErrorBody)
    )
)]
pub async fn upload(
    State(s): State<AppState>,
    mut form: Multipart,
) -> Result<impl IntoResponse, ApiError> {
    let bad = |field: &str, msg: String| ApiError::field(StatusCode::BAD_REQUEST, field, msg);
    // A body over the upload limit is 413, whichever part crosses it.
    let broken = |field: &str, e: axum::extract::multipart::MultipartError| {
        let status = e.status();
        let hint = if status == StatusCode::PAYLOAD_TOO_LARGE {
            " (the upload limit is max_upload_bytes)"
        } else {
            ""
        };
        ApiError::field(
            status,
            field,
            format!("multipart body: {}{hint}", e.body_text()),
        )
    };
    let mut manifest = None;
    let mut component = None;
    while let Some(part) = form.next_field().await.map_err(|e| broken("body", e))? {
        let name = part.name().unwrap_or_default().to_string();
        let data = part.bytes().await.map_err(|e| broken(&name, e))?;
        match name.as_str() {
            "manifest" => {
                manifest = Some(
                    String::from_utf8(data.to_vec())
                        .map_err(|_| bad("manifest", "manifest is not UTF-8 text".into()))?,
                )
            }
            "component" => component = Some(data),
            other => {
                return Err(bad(
                    other,
                    "unknown part; send `manifest` and `component`".into(),
                ));
            }
        }
    }
    let manifest =
        manifest.ok_or_else(|| bad("manifest", "the `manifest` part is missing".into()))?;
    let component =
        component.ok_or_else(|| bad("component", "the `component` part is missing".into()))?;
    let view = s.runtime.install(&manifest, &component).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/plugins/{id}",
    tag = "plugins",
    summary = "Delete an uploaded plugin",
    params(("id" = String, Path, description = "Plugin id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such plugin", body = super::openapi::ErrorBody),
        (status = 409, description = "Connectors use it; delete them first", body = super::openapi::ErrorBody),
        (status = 422, description = "A plugin of the plugins directory cannot be deleted through the API", body = super::openapi::ErrorBody)
    )
)]
pub async fn delete(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.runtime.delete_plugin(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/v1/plugins/{id}/reload",
    tag = "plugins",
    summary = "Reload a plugin and restart its instances",
    params(("id" = String, Path, description = "Plugin id")),
    responses(
        (status = 200, description = "Reloaded", body = crate::runtime::PluginView),
        (status = 404, description = "No such plugin", body = super::openapi::ErrorBody),
        (status = 409, description = "An instance does not fit the new build", body = super::openapi::ErrorBody),
        (status = 422, description = "The plugin cannot be loaded", body = super::openapi::ErrorBody)
    )
)]
pub async fn reload(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(s.runtime.reload_plugin(&id).await?))
}
