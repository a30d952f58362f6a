//! Bearer-token authentication and role-based authorisation.
//!
//! Roles: `admin` (everything), `operator` (read everything, notes,
//! force-subscribe), `console` (read presence, follow the feed). The admin
//! token comes from the configuration or the first start; other tokens are
//! created and revoked through the API. Only SHA-256 hashes are stored.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ApiError, AppState};
use crate::store::{Store, StoreError, TokenRecord};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Console,
    Operator,
    Admin,
}

impl Role {
    fn parse(s: &str) -> Option<Role> {
        match s {
            "console" => Some(Role::Console),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Console => "console",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// Who made a request, for handlers (note authors).
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

/// Token hashes and their roles.
pub struct AdminAuth {
    admin: [u8; 32],
    store: Arc<dyn Store>,
    tokens: RwLock<HashMap<[u8; 32], (String, String, Role)>>,
}

impl AdminAuth {
    /// Load the API tokens; `admin` is the admin token's hash.
    pub fn new(admin: [u8; 32], store: Arc<dyn Store>) -> Result<Self, StoreError> {
        let mut tokens = HashMap::new();
        for t in store.tokens()? {
            if let (Ok(h), Some(role)) = (hex::decode(&t.sha256), Role::parse(&t.role))
                && let Ok(h) = <[u8; 32]>::try_from(h)
            {
                tokens.insert(h, (t.id, t.name, role));
            }
        }
        Ok(Self {
            admin,
            store,
            tokens: RwLock::new(tokens),
        })
    }

    /// SHA-256 of a token.
    pub fn hash(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    fn caller(&self, token: &str) -> Option<Caller> {
        let h = Self::hash(token);
        // Fixed-length comparison without early exit for the admin token;
        // other tokens are found by their hash (a lookup on a hash leaks
        // nothing useful about the token).
        if h.iter()
            .zip(self.admin.iter())
            .fold(0u8, |a, (x, y)| a | (x ^ y))
            == 0
        {
            return Some(Caller {
                name: "admin".into(),
                role: Role::Admin,
            });
        }
        self.tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&h)
            .map(|(_, name, role)| Caller {
                name: name.clone(),
                role: *role,
            })
    }

    /// Create a token; the clear token is returned once.
    pub fn create(&self, name: &str, role: Role) -> Result<(TokenRecord, String), StoreError> {
        use rand::RngCore;
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let token = hex::encode(raw);
        let mut id = [0u8; 8];
        rand::rng().fill_bytes(&mut id);
        let h = Self::hash(&token);
        let rec = TokenRecord {
            id: hex::encode(id),
            name: name.to_string(),
            role: role.as_str().to_string(),
            sha256: hex::encode(h),
            created_at_ms: crate::store::now_ms(),
        };
        self.store.put_token(&rec)?;
        self.tokens
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(h, (rec.id.clone(), rec.name.clone(), role));
        Ok((rec, token))
    }

    pub fn revoke(&self, id: &str) -> Result<bool, StoreError> {
        let found = self.store.delete_token(id)?;
        self.tokens
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (tid, _, _)| tid != id);
        Ok(found)
    }

    pub fn list(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.store.tokens()
    }
}

/// The least role a route needs.
fn required(method: &Method, path: &str) -> Role {
    let console = path.starts_with("/api/v1/presence") || path.starts_with("/api/v1/feed");
    if console && method == Method::GET {
        return Role::Console;
    }
    let operator_write =
        path.ends_with("/notes") || path.ends_with("/notes/{id}") || path.ends_with("/subscribe");
    if method == Method::GET && !path.starts_with("/api/v1/tokens") || operator_write {
        return Role::Operator;
    }
    Role::Admin
}

/// Middleware: 401 without a valid token, 403 when its role is too low.
pub async fn authorize(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .map(str::to_string)
        // Browsers' EventSource and WebSocket cannot set headers.
        .or_else(|| {
            req.uri().query().and_then(|q| {
                q.split('&')
                    .find_map(|kv| kv.strip_prefix("access_token=").map(str::to_string))
            })
        });
    let Some(token) = token else {
        return unauthorized(ApiError::field(
            StatusCode::UNAUTHORIZED,
            "Authorization",
            "send Authorization: Bearer <token> (the admin token is printed at first start, or set HUB_ADMIN_TOKEN)",
        ));
    };
    let Some(caller) = state.auth.caller(&token) else {
        return unauthorized(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid bearer token",
        ));
    };
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let need = required(req.method(), &path);
    if caller.role < need {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "this needs the {} role; the token has {}",
                need.as_str(),
                caller.role.as_str()
            ),
        )
        .into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

fn unauthorized(e: ApiError) -> Response {
    let mut r = e.into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_per_route() {
        assert_eq!(required(&Method::GET, "/api/v1/presence"), Role::Console);
        assert_eq!(required(&Method::GET, "/api/v1/feed/sse"), Role::Console);
        assert_eq!(required(&Method::GET, "/api/v1/users"), Role::Operator);
        assert_eq!(
            required(&Method::POST, "/api/v1/users/{username}/notes"),
            Role::Operator
        );
        assert_eq!(
            required(&Method::DELETE, "/api/v1/users/{username}/notes/{id}"),
            Role::Operator
        );
        assert_eq!(
            required(&Method::POST, "/api/v1/users/{username}/subscribe"),
            Role::Operator
        );
        assert_eq!(required(&Method::POST, "/api/v1/users"), Role::Admin);
        assert_eq!(required(&Method::GET, "/api/v1/tokens"), Role::Admin);
        assert_eq!(
            required(&Method::PUT, "/api/v1/settings/rules"),
            Role::Admin
        );
        assert_eq!(required(&Method::POST, "/api/v1/connectors"), Role::Admin);
    }
}
