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
                    LoadError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
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

/// Parse a JSON body strictly, naming the offending field on failure:
/// the answer says where (line and column), what was expected, and the
/// field's path where serde knows it (`config.expires`), else the field
/// its message names (`unknown field`, `missing field`), else `body`.
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
        let inner = e.inner();
        let text = inner.to_string();
        // serde_json ends its message with the position; it is said apart.
        let what = text
            .rsplit_once(" at line ")
            .map_or(text.as_str(), |(w, _)| w);
        let path = e.path().to_string();
        // `?` stands for a step serde could not name: keep what is known.
        let known = path
            .split('.')
            .take_while(|s| !s.is_empty() && !s.contains('?'))
            .collect::<Vec<_>>()
            .join(".");
        let named = what
            .split('`')
            .nth(1)
            .filter(|_| what.starts_with("unknown field") || what.starts_with("missing field"));
        let field = match (known.is_empty(), named) {
            (true, Some(n)) => n.to_string(),
            (true, None) => "body".to_string(),
            // serde_path_to_error ends the path with an unknown field's
            // name already, not with a missing one's.
            (false, Some(n)) if known != n && !known.ends_with(&format!(".{n}")) => {
                format!("{known}.{n}")
            }
            (false, _) => known,
        };
        let (line, column) = (inner.line(), inner.column());
        let message = match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => format!(
                "the body is not valid JSON: {what} at line {line}, column {column}; \
                 send one JSON object with Content-Type: application/json"
            ),
            serde_json::error::Category::Data => {
                format!("{what} (at line {line}, column {column}); see /api/v1/openapi.json")
            }
            serde_json::error::Category::Io => text.clone(),
        };
        ApiError::field(StatusCode::BAD_REQUEST, field, message)
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

/// The longest request target (path and query) the API reads; longer ones
/// are answered 414. (Heads beyond hyper's buffer, ~400 KiB, are refused
/// by hyper itself with a bare 431.)
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Marks a response whose body is a plugin's own answer (webhooks): it is
/// passed on as the plugin made it.
#[derive(Clone, Copy)]
pub struct PluginAnswer;

/// Middleware: every error leaves in one shape, `{"error": ..., "field"?}`
/// as JSON, including those the framework makes before a handler runs (an
/// unknown method, a body over its limit, a path that is not UTF-8, a
/// missing multipart boundary), which come as plain text or empty.
pub async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if req.uri().to_string().len() > MAX_URI_BYTES {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            format!("the request target is longer than {MAX_URI_BYTES} bytes"),
        )
        .into_response();
    }
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error())
        || is_json
        || resp.extensions().get::<PluginAnswer>().is_some()
    {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    // Framework messages are one line; more is not a framework message.
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            "this route does not take this method; see /api/v1/openapi.json".to_string()
        }
        StatusCode::PAYLOAD_TOO_LARGE => format!(
            "the request body is over this route's limit ({}); uploads are bounded by \
             max_upload_bytes, webhooks by max_webhook_bytes",
            if text.is_empty() {
                "length limit exceeded"
            } else {
                &text
            }
        ),
        _ if text.is_empty() => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_string(),
        _ => text,
    };
    let mut out = ApiError::new(status, error).into_response();
    // Keep what the framework said beside the body (Allow on a 405).
    for (name, value) in parts.headers.iter() {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    out
}

/// Middleware for JSON routes: a request with a body must say it is JSON
/// (a form post from another site's page cannot, without a preflight).
pub async fn require_json(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    // The two routes that take other bodies check their own types.
    if matches!(req.uri().path(), "/api/v1/plugins" | "/api/v1/users/import") {
        return next.run(req).await;
    }
    let headers = req.headers();
    let has_body = headers.contains_key(axum::http::header::TRANSFER_ENCODING)
        || headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|m| m == "application/json" || m.ends_with("+json"));
    if has_body && !json {
        return ApiError::field(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type",
            "this route takes JSON: send Content-Type: application/json",
        )
        .into_response();
    }
    next.run(req).await
}
