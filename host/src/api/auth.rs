//! Bearer-token authentication and role-based authorisation.
//!
//! Roles: `admin` (everything), `operator` (read everything, notes,
//! force-subscribe), `console` (read presence, follow the feed). The admin
//! token comes from the configuration or the first start; other tokens are
//! created and revoked through the API. Only SHA-256 hashes are stored.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ApiError, AppState};
use crate::store::{Store, StoreError, TokenRecord};

/// What a token may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
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

/// Who made a request, for handlers (note authors, feed limits).
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    /// The API token's id; None for the admin token.
    pub token_id: Option<String>,
    /// Becomes true when the token is revoked: long-lived answers (the live
    /// feed) end then.
    pub revoked: watch::Receiver<bool>,
}

/// A created token as held in memory.
struct Held {
    id: String,
    name: String,
    role: Role,
    revoked: watch::Sender<bool>,
}

/// The admin token's hash, and what its feeds watch: set to true when the
/// token is replaced (`presence-hub admin-token rotate`), ending them.
struct AdminHeld {
    hash: [u8; 32],
    revoked: watch::Sender<bool>,
}

/// Token hashes and their roles.
pub struct AdminAuth {
    admin: RwLock<AdminHeld>,
    store: Arc<dyn Store>,
    tokens: RwLock<HashMap<[u8; 32], Held>>,
}

impl AdminAuth {
    /// Load the API tokens; `admin` is the admin token's hash.
    pub fn new(admin: [u8; 32], store: Arc<dyn Store>) -> Result<Self, StoreError> {
        let mut tokens = HashMap::new();
        for t in store.tokens()? {
            if let (Ok(h), Some(role)) = (hex::decode(&t.sha256), Role::parse(&t.role))
                && let Ok(h) = <[u8; 32]>::try_from(h)
            {
                tokens.insert(
                    h,
                    Held {
                        id: t.id,
                        name: t.name,
                        role,
                        revoked: watch::channel(false).0,
                    },
                );
            }
        }
        Ok(Self {
            admin: RwLock::new(AdminHeld {
                hash: admin,
                revoked: watch::channel(false).0,
            }),
            store,
            tokens: RwLock::new(tokens),
        })
    }

    /// Take in tokens another node of a cluster created or revoked in the
    /// shared store: a revoked token's feeds end here too.
    pub fn follow_store(&self) -> Result<(), StoreError> {
        let stored: HashMap<[u8; 32], TokenRecord> = self
            .store
            .tokens()?
            .into_iter()
            .filter_map(|t| {
                let h = <[u8; 32]>::try_from(hex::decode(&t.sha256).ok()?).ok()?;
                Some((h, t))
            })
            .collect();
        let mut tokens = self.tokens.write().unwrap_or_else(|p| p.into_inner());
        tokens.retain(|h, held| {
            let keep = stored.contains_key(h);
            if !keep {
                held.revoked.send_replace(true);
            }
            keep
        });
        for (h, t) in stored {
            if tokens.contains_key(&h) {
                continue;
            }
            if let Some(role) = Role::parse(&t.role) {
                tokens.insert(
                    h,
                    Held {
                        id: t.id,
                        name: t.name,
                        role,
                        revoked: watch::channel(false).0,
                    },
                );
            }
        }
        Ok(())
    }

    /// SHA-256 of a token.
    pub fn hash(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    pub fn caller(&self, token: &str) -> Option<Caller> {
        let h = Self::hash(token);
        // Fixed-length comparison without early exit for the admin token;
        // other tokens are found by their hash (a lookup on a hash leaks
        // nothing useful about the token).
        let admin = self.admin.read().unwrap_or_else(|p| p.into_inner());
        if h.iter()
            .zip(admin.hash.iter())
            .fold(0u8, |a, (x, y)| a | (x ^ y))
            == 0
        {
            return Some(Caller {
                name: "admin".into(),
                role: Role::Admin,
                token_id: None,
                revoked: admin.revoked.subscribe(),
            });
        }
        drop(admin);
        self.tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&h)
            .map(|t| Caller {
                name: t.name.clone(),
                role: t.role,
                token_id: Some(t.id.clone()),
                revoked: t.revoked.subscribe(),
            })
    }

    /// Take a new admin token hash (rotated while the hub runs): the old
    /// token is refused from now on and the feeds it opened end. Returns
    /// whether it changed.
    pub fn replace_admin(&self, hash: [u8; 32]) -> bool {
        let mut admin = self.admin.write().unwrap_or_else(|p| p.into_inner());
        if admin.hash == hash {
            return false;
        }
        admin.revoked.send_replace(true);
        *admin = AdminHeld {
            hash,
            revoked: watch::channel(false).0,
        };
        true
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
            .insert(
                h,
                Held {
                    id: rec.id.clone(),
                    name: rec.name.clone(),
                    role,
                    revoked: watch::channel(false).0,
                },
            );
        Ok((rec, token))
    }

    /// Revoke a token: it is refused from now on, and the feed streams it
    /// opened end.
    pub fn revoke(&self, id: &str) -> Result<bool, StoreError> {
        let found = self.store.delete_token(id)?;
        self.tokens
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, t| {
                if t.id == id {
                    t.revoked.send_replace(true);
                }
                t.id != id
            });
        Ok(found)
    }

    pub fn list(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.store.tokens()
    }
}

/// The least role a route needs.
pub(super) fn required(method: &Method, path: &str) -> Role {
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

/// The routes a browser opens without being able to set a header
/// (`EventSource`, `WebSocket`): the only ones that take `access_token` in
/// the query string. Everywhere else a token in a URL (kept in histories,
/// proxy logs, Referer headers) is refused.
pub const QUERY_TOKEN_ROUTES: [&str; 2] = ["/api/v1/feed/sse", "/api/v1/feed/ws"];

/// The `access_token` query parameter, decoded.
fn query_token(req: &Request) -> Option<String> {
    let q = req.uri().query()?;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v.into_owned())
}

/// Middleware: 401 without a valid token, 403 when its role is too low.
pub async fn authorize(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let header_token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .map(str::to_string);
    let query = query_token(&req);
    if header_token.is_none() && query.is_some() && !QUERY_TOKEN_ROUTES.contains(&req.uri().path())
    {
        return unauthorized(ApiError::field(
            StatusCode::UNAUTHORIZED,
            "access_token",
            "a token in the query string is taken only by the live feed (/api/v1/feed/sse, \
             /api/v1/feed/ws); send Authorization: Bearer <token>",
        ));
    }
    let token = header_token.or(query);
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
    let audit = (!matches!(*req.method(), Method::GET | Method::HEAD)).then(|| {
        (
            req.method().clone(),
            path.clone(),
            req.uri().path().to_string(),
        )
    });
    let who = who(&caller);
    req.extensions_mut().insert(caller);
    let mut resp = next.run(req).await;
    // A change another node made (it ran the instance) is that node's to
    // log: the event log is shared.
    if let Some((method, route, raw)) = audit
        && resp.status().is_success()
        && resp.extensions().get::<super::forward::Passed>().is_none()
    {
        // A created connector is named in the answer, not the path.
        let mut created = None;
        if method == Method::POST && route == "/api/v1/connectors" {
            let (parts, body) = resp.into_parts();
            let bytes = axum::body::to_bytes(body, 1 << 20)
                .await
                .unwrap_or_default();
            created = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_string));
            resp = Response::from_parts(parts, axum::body::Body::from(bytes));
        }
        record_change(&state, &who, &method, &route, &raw, resp.status(), created);
    }
    resp
}

/// The caller as the event log names it: the token's name and id (never
/// the token).
fn who(caller: &Caller) -> String {
    match &caller.token_id {
        Some(id) => format!(
            "token {:?} (id {id}, {})",
            caller.name,
            caller.role.as_str()
        ),
        None => "the admin token".to_string(),
    }
}

/// An operator's change, with who made it, in the event log (kind
/// `operator`): the route template, its parameters and the answer. The
/// instance (`{id}` of a connector route, `{instance}`) and the user
/// (`{username}`) are set so the log's filters find the entry.
fn record_change(
    state: &AppState,
    who: &str,
    method: &Method,
    route: &str,
    raw: &str,
    status: StatusCode,
    created: Option<String>,
) {
    let mut params = Vec::new();
    for (t, v) in route.split('/').zip(raw.split('/')) {
        if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            let v = form_urlencoded::parse(format!("v={v}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            params.push((name.trim_start_matches('*').to_string(), v));
        }
    }
    let param = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let instance = if route.starts_with("/api/v1/connectors/") {
        param("id")
    } else {
        param("instance").or(created)
    };
    state.presence.log().record(crate::store::EventRecord {
        at_ms: crate::store::now_ms(),
        kind: "operator".into(),
        username: param("username"),
        instance,
        detail: format!("{method} {raw} by {who}: {}", status.as_u16()),
    });
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
