//! API errors: a status and a JSON body naming the field at fault.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::runtime::{CallError, LoadError, RuntimeError};
use crate::store::StoreError;

/// An error answer.
#[derive(Debug, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Self {
            status,
            error: error.into(),
            field: None,
        }
    }

    pub fn field(status: StatusCode, field: impl Into<String>, error: impl Into<String>) -> Self {
        Self {
            status,
            error: error.into(),
            field: Some(field.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self)).into_response()
    }
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> Self {
        let msg = e.to_string();
        match e {
            RuntimeError::NotFound { .. } => ApiError::new(StatusCode::NOT_FOUND, msg),
            RuntimeError::Conflict { field, .. } => {
                ApiError::field(StatusCode::CONFLICT, field, msg)
            }
            RuntimeError::Invalid { field, message } => {
                ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, field, message)
            }
            RuntimeError::Load(l) => {
                let field = l.field();
                let status = match l {
                    LoadError::Checksum { .. } | LoadError::MissingChecksum => {
                        StatusCode::BAD_REQUEST
                    }
                    _ => StatusCode::UNPROCESSABLE_ENTITY,
                };
                ApiError::field(status, field, msg)
            }
            RuntimeError::Store(StoreError::LimitExceeded(_)) => {
                ApiError::new(StatusCode::INSUFFICIENT_STORAGE, msg)
            }
            RuntimeError::Store(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, msg),
            RuntimeError::Unavailable(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, msg),
            RuntimeError::Call(CallError::Connector(_) | CallError::Rejected(_)) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, msg)
            }
            RuntimeError::Call(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, msg),
        }
    }
}

/// Parse a JSON body strictly, naming the offending field on failure.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "body",
            "a JSON body is required",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." || path.is_empty() {
            // serde names unknown fields only in its message: surface it.
            let inner = e.inner().to_string();
            inner
                .split('`')
                .nth(1)
                .filter(|_| {
                    inner.starts_with("unknown field") || inner.starts_with("missing field")
                })
                .unwrap_or("body")
                .to_string()
        } else {
            path
        };
        ApiError::field(StatusCode::BAD_REQUEST, field, e.inner().to_string())
    })
}

/// Query-string extractor whose errors are JSON naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let inner = e.inner().to_string();
                let path = e.path().to_string();
                let field = if path == "." || path.is_empty() {
                    inner.split('`').nth(1).unwrap_or("query").to_string()
                } else {
                    path
                };
                ApiError::field(
                    StatusCode::BAD_REQUEST,
                    field,
                    format!("query string: {inner}"),
                )
            })
    }
}
