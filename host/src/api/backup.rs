//! `POST /api/v1/backup`: an online backup of the hub's data, made while it
//! serves (admin role). See [`crate::store::backup`] for the archive.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::store::Store;

/// What a backup reads: the store and the folder its files live in.
pub struct BackupSource {
    pub store: Arc<dyn Store>,
    pub data_dir: PathBuf,
}

/// `?secret_key=include|exclude`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BackupQuery {
    /// `include` (default): the archive restores on its own, and must be
    /// kept as secret as the connectors' passwords; `exclude`: it restores
    /// only beside the hub's `secret.key`, kept apart.
    #[serde(default)]
    #[param(inline)]
    pub secret_key: SecretKey,
}

#[derive(Debug, Default, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SecretKey {
    #[default]
    Include,
    Exclude,
}

#[utoipa::path(
    post,
    path = "/api/v1/backup",
    tag = "system",
    summary = "Online backup (tar: backup.json, hub.db, secret.key)",
    params(BackupQuery),
    responses(
        (status = 200, description = "The archive; restore with `presence-hub restore --from FILE --data DIR`", content_type = "application/x-tar"),
        (status = 400, description = "An unknown query parameter or value", body = super::openapi::ErrorBody),
        (status = 401, description = "No or unknown token", body = super::openapi::ErrorBody),
        (status = 403, description = "Not an admin token", body = super::openapi::ErrorBody),
        (status = 500, description = "The copy could not be made; the error says why", body = super::openapi::ErrorBody)
    )
)]
pub async fn backup(
    State(s): State<AppState>,
    Query(q): Query<BackupQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let source = s.backups.clone();
    let include = matches!(q.secret_key, SecretKey::Include);
    let now = crate::store::now_ms();
    // A database copy is file I/O for up to a second: off the async threads.
    let bytes = tokio::task::spawn_blocking(move || {
        crate::store::backup::archive(source.store.as_ref(), &source.data_dir, include, now)
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("backup task: {e}"),
        )
    })?
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("backup failed: {e}; see the hub log"),
        )
    })?;
    tracing::info!(bytes = bytes.len(), secret_key = include, "backup made");
    let name = format!("presence-hub-backup-{now}.tar");
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/x-tar".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    ))
}
