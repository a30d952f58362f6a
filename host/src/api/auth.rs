//! Bearer-token authentication of the admin API.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::{ApiError, AppState};

/// The admin token, kept only as a SHA-256 hash.
pub struct AdminAuth {
    token_sha256: [u8; 32],
}

impl AdminAuth {
    pub fn from_hash(token_sha256: [u8; 32]) -> Self {
        Self { token_sha256 }
    }

    /// SHA-256 of a token.
    pub fn hash(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    fn accepts(&self, token: &str) -> bool {
        // Comparing hashes of fixed length, byte by byte without early exit.
        let h = Self::hash(token);
        h.iter()
            .zip(self.token_sha256.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// Middleware: 401 unless `Authorization: Bearer <admin token>`.
pub async fn require_admin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match token {
        Some(t) if state.auth.accepts(t.trim()) => next.run(req).await,
        Some(_) => {
            let mut r =
                ApiError::new(StatusCode::UNAUTHORIZED, "invalid bearer token").into_response();
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static"));
            r
        }
        None => {
            let mut r = ApiError::field(
                StatusCode::UNAUTHORIZED,
                "Authorization",
                "send Authorization: Bearer <admin token> (printed at first start, or HUB_ADMIN_TOKEN)",
            )
            .into_response();
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static"));
            r
        }
    }
}
