//! A strict Genesys Cloud CX simulator for the Genesys connector's
//! end-to-end tests (`plugins/genesys-cloud`, `tests/tests/genesys.rs`).
//!
//! It plays, on 127.0.0.1, what Genesys' public Platform API documents say
//! (sources in `plugins/genesys-cloud/README.md`), and refuses what they
//! refuse:
//!
//! - The login host is modelled by the path prefix `/login` (a region's
//!   `https://login.{domain}`); the API host is the root (`https://api.{domain}`).
//!   `POST /login/oauth/token`: client credentials only, the client
//!   authenticated with HTTP Basic, a form body; `invalid_client` (400) for
//!   wrong credentials. A token request on the API host is a 404.
//! - Every API call needs `Authorization: Bearer` with a live token (401
//!   `bad.credentials` otherwise), and the client's role must hold the
//!   permission an operation needs (403 `missing.any.permissions`, naming
//!   them in `messageParams.permissions`).
//! - `GET /api/v2/users` (pageSize 1–500, pageNumber ≥ 1, `expand` of
//!   presence / routingStatus, `state`), `GET /api/v2/presencedefinitions`,
//!   `GET /api/v2/users/{id}/presences/purecloud`,
//!   `GET /api/v2/users/{id}/routingstatus`.
//! - Notifications: `POST /api/v2/notifications/channels` (id, connectUri,
//!   expires after 24 h; at most 20 channels per client, the oldest goes),
//!   `GET|PUT|POST .../channels/{id}/subscriptions` (`[{"id": topic}]`, at
//!   most 1,000 topics per channel, topics of known users only), the
//!   channel's WebSocket with a `channel.metadata` "WebSocket Heartbeat"
//!   every 30 s (configurable), `{"message":"ping"}` answered `pong`,
//!   `v2.system.socket_closing` before the service closes a socket,
//!   `v2.users.{id}.presence`, `.routingStatus` and `.conversations` events.
//! - 429 with `Retry-After` (seconds) and `too.many.requests` when a test
//!   throttles.
//!
//! Every answer in the 4xx range other than those a test provokes
//! (throttling, wrong credentials, missing permissions) is recorded as a
//! violation; `violations()` lists them with the request that caused it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Topics one channel may hold (Genesys Notifications API limits).
pub const MAX_TOPICS_PER_CHANNEL: usize = 1000;
/// Channels one client may hold; creating one more removes the oldest.
pub const MAX_CHANNELS: usize = 20;
/// The permission the conversations topic needs in this simulator (the
/// Available Topics page lists a permission per topic; which one is
/// UNVERIFIED here, the choice is the simulator's).
pub const CONVERSATIONS_PERMISSION: &str = "conversation:communication:view";

/// The simulated organization's OAuth client and service knobs.
#[derive(Clone, Debug)]
pub struct GenesysSimConfig {
    pub client_id: String,
    pub client_secret: String,
    /// The permissions of the client's role.
    pub permissions: Vec<String>,
    /// Token lifetime (`expires_in`); Genesys' default is 24 h.
    pub token_ttl: Duration,
    /// Heartbeat interval on channel sockets (Genesys: 30 s).
    pub heartbeat: Duration,
    /// Channel lifetime (Genesys: 24 h).
    pub channel_ttl: Duration,
    /// Time between `v2.system.socket_closing` and the close (Genesys: about a minute).
    pub closing_grace: Duration,
}

impl Default for GenesysSimConfig {
    fn default() -> Self {
        Self {
            client_id: "8f6f1c5e-7c2a-4a51-9b57-1c0d2f7c9a10".into(),
            client_secret: "genesys-sim-secret-4b2d9e".into(),
            permissions: vec![CONVERSATIONS_PERMISSION.into()],
            token_ttl: Duration::from_secs(86_400),
            heartbeat: Duration::from_secs(30),
            channel_ttl: Duration::from_secs(86_400),
            closing_grace: Duration::from_secs(60),
        }
    }
}

/// A presence definition (system or organization-defined).
#[derive(Clone, Debug)]
struct Def {
    id: String,
    label: String,
    /// As presence definitions spell it: "Available", "On Queue".
    system: String,
    primary: bool,
}

#[derive(Clone, Debug)]
struct User {
    id: String,
    name: String,
    email: String,
    extension: String,
    def_id: String,
    message: String,
    modified: String,
    routing: String,
    routing_start: String,
}

struct Channel {
    id: String,
    seq: u64,
    topics: BTreeSet<String>,
    expires: SystemTime,
    conn: Option<mpsc::UnboundedSender<WsOut>>,
    closing_at: Option<Instant>,
}

enum WsOut {
    Text(String),
    Close(u16, String),
}

/// One request as the simulator answered it.
#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    /// Path and query, with the `/login` prefix for the login host.
    pub target: String,
    pub status: u16,
}

struct Sim {
    cfg: GenesysSimConfig,
    base: String,
    defs: Vec<Def>,
    users: Vec<User>,
    tokens: HashMap<String, Instant>,
    channels: Vec<Channel>,
    next: u64,
    throttle: u32,
    retry_after_s: u64,
    log: Vec<Logged>,
    violations: Vec<String>,
    channels_created: usize,
    cut_by_service: usize,
}

type Shared = Arc<Mutex<Sim>>;

fn lock(st: &Shared) -> MutexGuard<'_, Sim> {
    st.lock().unwrap_or_else(|p| p.into_inner())
}

/// A uuid-shaped id from a counter (Genesys ids are UUIDs).
fn uuid(n: u64) -> String {
    format!(
        "{:08x}-{:04x}-4000-8000-{:012x}",
        n as u32,
        (n >> 32) as u16,
        n
    )
}

fn iso(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formats")
}

fn system_upper(system: &str) -> String {
    system.to_ascii_uppercase().replace(' ', "_")
}

/// Genesys' error body: `{"message", "code", "status", ...}`.
fn error(status: u16, code: &str, message: &str) -> Response {
    json_answer(
        status,
        json!({"message": message, "code": code, "status": status, "contextId": "genesys-sim"}),
    )
}

fn json_answer(status: u16, v: Value) -> Response {
    (
        StatusCode::from_u16(status).expect("valid status"),
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn query(uri: &Uri) -> Vec<(String, String)> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

impl Sim {
    fn def(&self, id: &str) -> Option<&Def> {
        self.defs.iter().find(|d| d.id == id)
    }

    fn user(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    fn presence_json(&self, u: &User, events: bool) -> Value {
        let d = self.def(&u.def_id).expect("users hold known definitions");
        // Events spell system presences in upper case ("ON_QUEUE"); the
        // REST resources as the definitions do ("On Queue").
        let system = if events {
            system_upper(&d.system)
        } else {
            d.system.clone()
        };
        json!({
            "source": "PURECLOUD",
            "presenceDefinition": {"id": d.id, "systemPresence": system},
            "primary": true,
            "message": u.message,
            "modifiedDate": u.modified,
        })
    }

    fn user_json(&self, u: &User, expand: &[String]) -> Value {
        let mut v = json!({
            "id": u.id,
            "name": u.name,
            "email": u.email,
            "state": "active",
            "primaryContactInfo": [{"address": u.email, "mediaType": "EMAIL", "type": "PRIMARY"}],
            "addresses": [{"display": u.extension, "mediaType": "PHONE", "type": "WORK",
                           "extension": u.extension}],
            "selfUri": format!("/api/v2/users/{}", u.id),
        });
        if expand.iter().any(|e| e == "presence") {
            v["presence"] = self.presence_json(u, false);
        }
        if expand.iter().any(|e| e == "routingStatus") {
            v["routingStatus"] =
                json!({"userId": u.id, "status": u.routing, "startTime": u.routing_start});
        }
        v
    }

    /// Send an event to every socket whose channel holds `topic`.
    fn publish(&mut self, topic: &str, body: Value) {
        self.next += 1;
        let frame = json!({
            "topicName": topic,
            "version": "2",
            "eventBody": body,
            "metadata": {"CorrelationId": uuid(self.next)},
        })
        .to_string();
        for c in &self.channels {
            if c.topics.contains(topic)
                && let Some(tx) = &c.conn
            {
                let _ = tx.send(WsOut::Text(frame.clone()));
            }
        }
    }

    fn violation(&mut self, what: String) {
        self.violations.push(what);
    }

    fn token_ok(&mut self, headers: &HeaderMap) -> bool {
        let Some(token) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        self.tokens
            .get(token)
            .is_some_and(|exp| *exp > Instant::now())
    }

    fn missing(&self, needed: &[&str]) -> Vec<String> {
        needed
            .iter()
            .filter(|p| !self.cfg.permissions.iter().any(|h| h == *p))
            .map(|p| p.to_string())
            .collect()
    }

    fn tick(&mut self) {
        let now = SystemTime::now();
        let instant = Instant::now();
        let mut gone = Vec::new();
        for c in &self.channels {
            if c.expires <= now || c.closing_at.is_some_and(|t| t <= instant) {
                gone.push(c.id.clone());
            }
        }
        for id in gone {
            self.drop_channel(&id, 1001, "channel expired");
        }
    }

    fn drop_channel(&mut self, id: &str, code: u16, reason: &str) {
        if let Some(i) = self.channels.iter().position(|c| c.id == id) {
            let c = self.channels.remove(i);
            if let Some(tx) = c.conn {
                if !tx.is_closed() {
                    self.cut_by_service += 1;
                }
                let _ = tx.send(WsOut::Close(code, reason.into()));
            }
        }
    }
}

/// The running simulator.
pub struct GenesysSim {
    base: String,
    state: Shared,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for GenesysSim {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        let conns: Vec<_> = self
            .lock()
            .channels
            .iter_mut()
            .filter_map(|c| c.conn.take())
            .collect();
        for tx in conns {
            let _ = tx.send(WsOut::Close(1001, "simulator stopped".into()));
        }
    }
}

/// Route one HTTP request; the answer and whether a 4xx is a violation.
fn route(
    s: &mut Sim,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> (Response, bool) {
    let path = uri.path();
    if path == "/login/oauth/token" {
        return token(s, method, headers, body);
    }
    if path == "/oauth/token" {
        return (
            error(404, "not.found", "the token endpoint is on the login host"),
            true,
        );
    }
    if !path.starts_with("/api/v2/") {
        return (error(404, "not.found", "no such resource"), true);
    }
    if !s.token_ok(headers) {
        return (
            error(
                401,
                "bad.credentials",
                "Invalid login credentials (a missing, unknown or expired bearer token)",
            ),
            true,
        );
    }
    if s.throttle > 0 {
        s.throttle -= 1;
        let after = s.retry_after_s;
        let mut r = error(
            429,
            "too.many.requests",
            &format!("Rate limit exceeded the maximum. Retry the request in [{after}] seconds"),
        );
        r.headers_mut()
            .insert("retry-after", after.to_string().parse().expect("header"));
        return (r, false);
    }
    let segs: Vec<&str> = path["/api/v2/".len()..].split('/').collect();
    let q = query(uri);
    match (method.clone(), segs.as_slice()) {
        (Method::GET, ["users"]) => users(s, &q),
        (Method::GET, ["presencedefinitions"]) => defs(s, &q),
        (Method::GET, ["users", id, "presences", "purecloud"]) => {
            if !q.is_empty() {
                return (error(400, "bad.request", "no query parameters here"), true);
            }
            match s.user(id).cloned() {
                Some(u) => (json_answer(200, s.presence_json(&u, false)), false),
                None => (error(404, "not.found", "user not found"), true),
            }
        }
        (Method::GET, ["users", id, "routingstatus"]) => match s.user(id).cloned() {
            Some(u) => (
                json_answer(
                    200,
                    json!({"userId": u.id, "status": u.routing, "startTime": u.routing_start}),
                ),
                false,
            ),
            None => (error(404, "not.found", "user not found"), true),
        },
        (Method::POST, ["notifications", "channels"]) => create_channel(s, body),
        (m, ["notifications", "channels", id, "subscriptions"]) => subscriptions(s, &m, id, body),
        (_, ["users"] | ["presencedefinitions"] | ["notifications", "channels"])
        | (_, ["users", _, "presences", "purecloud"] | ["users", _, "routingstatus"]) => {
            (error(405, "method.not.allowed", "method not allowed"), true)
        }
        _ => (error(404, "not.found", "no such resource"), true),
    }
}

fn token(s: &mut Sim, method: &Method, headers: &HeaderMap, body: &[u8]) -> (Response, bool) {
    let oauth = |status: u16, err: &str, desc: &str| {
        json_answer(
            status,
            json!({"error": err, "description": desc, "error_description": desc}),
        )
    };
    if method != Method::POST {
        return (oauth(405, "invalid_request", "use POST"), true);
    }
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ctype.starts_with("application/x-www-form-urlencoded") {
        return (
            oauth(
                400,
                "invalid_request",
                "the body must be application/x-www-form-urlencoded",
            ),
            true,
        );
    }
    let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return (
            oauth(
                400,
                "unsupported_grant_type",
                "this client may use grant_type=client_credentials only",
            ),
            true,
        );
    }
    if form.contains_key("client_secret") {
        // Genesys documents Basic authentication for this grant.
        return (
            oauth(
                400,
                "invalid_request",
                "send the client credentials with HTTP Basic authentication",
            ),
            true,
        );
    }
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let Some((id, secret)) = basic.as_deref().and_then(|b| b.split_once(':')) else {
        return (
            oauth(400, "invalid_client", "client authentication is required"),
            true,
        );
    };
    if id != s.cfg.client_id || secret != s.cfg.client_secret {
        // Unverified: the status Genesys gives a wrong client (400 here, as
        // its answers name `invalid_client` with `description`).
        return (oauth(400, "invalid_client", "client not found"), false);
    }
    s.next += 1;
    let token = format!("gsim-{:016x}{:08x}", fastrand::u64(..), s.next);
    s.tokens
        .insert(token.clone(), Instant::now() + s.cfg.token_ttl);
    (
        json_answer(
            200,
            json!({"access_token": token, "token_type": "bearer",
                   "expires_in": s.cfg.token_ttl.as_secs()}),
        ),
        false,
    )
}

fn paging(q: &[(String, String)], default: usize) -> Result<(usize, usize), String> {
    let mut size = default;
    let mut number = 1;
    for (k, v) in q {
        match k.as_str() {
            "pageSize" => {
                size = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=500).contains(n))
                    .ok_or("pageSize must be 1 to 500")?
            }
            "pageNumber" => {
                number = v
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or("pageNumber must be 1 or more")?
            }
            _ => {}
        }
    }
    Ok((size, number))
}

fn page_doc(entities: Vec<Value>, total: usize, size: usize, number: usize) -> Value {
    json!({
        "entities": entities,
        "pageSize": size,
        "pageNumber": number,
        "total": total,
        "pageCount": total.div_ceil(size),
    })
}

fn users(s: &mut Sim, q: &[(String, String)]) -> (Response, bool) {
    let mut expand = Vec::new();
    for (k, v) in q {
        match k.as_str() {
            "pageSize" | "pageNumber" => {}
            "expand" => {
                for e in v.split(',') {
                    if ![
                        "presence",
                        "routingStatus",
                        "station",
                        "authorization",
                        "locations",
                    ]
                    .contains(&e)
                    {
                        return (
                            error(400, "bad.request", &format!("unknown expand {e}")),
                            true,
                        );
                    }
                    expand.push(e.to_string());
                }
            }
            "state" if ["active", "inactive", "deleted", "any"].contains(&v.as_str()) => {}
            other => {
                return (
                    error(
                        400,
                        "bad.request",
                        &format!("unknown query parameter {other}"),
                    ),
                    true,
                );
            }
        }
    }
    let (size, number) = match paging(q, 25) {
        Ok(p) => p,
        Err(e) => return (error(400, "bad.request", &e), true),
    };
    let total = s.users.len();
    let entities = s
        .users
        .iter()
        .skip((number - 1) * size)
        .take(size)
        .map(|u| s.user_json(u, &expand))
        .collect();
    (
        json_answer(200, page_doc(entities, total, size, number)),
        false,
    )
}

fn defs(s: &mut Sim, q: &[(String, String)]) -> (Response, bool) {
    if let Some((k, _)) = q
        .iter()
        .find(|(k, _)| !["pageSize", "pageNumber", "deactivated"].contains(&k.as_str()))
    {
        return (
            error(400, "bad.request", &format!("unknown query parameter {k}")),
            true,
        );
    }
    let (size, number) = match paging(q, 25) {
        Ok(p) => p,
        Err(e) => return (error(400, "bad.request", &e), true),
    };
    let total = s.defs.len();
    let entities = s
        .defs
        .iter()
        .skip((number - 1) * size)
        .take(size)
        .map(|d| {
            json!({"id": d.id, "languageLabels": {"en_US": d.label}, "systemPresence": d.system,
                   "deactivated": false, "primary": d.primary,
                   "selfUri": format!("/api/v2/presencedefinitions/{}", d.id)})
        })
        .collect();
    (
        json_answer(200, page_doc(entities, total, size, number)),
        false,
    )
}

fn create_channel(s: &mut Sim, body: &[u8]) -> (Response, bool) {
    if !body.is_empty() && body != b"{}" {
        return (
            error(400, "bad.request", "a channel is created with no body"),
            true,
        );
    }
    if s.channels.len() >= MAX_CHANNELS {
        let oldest = s.channels[0].id.clone();
        s.drop_channel(
            &oldest,
            1000,
            "channel limit reached: the oldest channel was removed",
        );
    }
    s.next += 1;
    s.channels_created += 1;
    let id = format!("streaming-0-{}", uuid(s.next).replace('-', ""));
    let expires = SystemTime::now() + s.cfg.channel_ttl;
    let connect = format!("{}/channels/{id}", s.base.replacen("http://", "ws://", 1));
    s.channels.push(Channel {
        id: id.clone(),
        seq: s.next,
        topics: BTreeSet::new(),
        expires,
        conn: None,
        closing_at: None,
    });
    (
        json_answer(
            200,
            json!({"id": id, "connectUri": connect, "expires": iso(expires)}),
        ),
        false,
    )
}

fn subscriptions(s: &mut Sim, method: &Method, id: &str, body: &[u8]) -> (Response, bool) {
    let Some(i) = s.channels.iter().position(|c| c.id == id) else {
        return (error(404, "not.found", "channel not found"), true);
    };
    let listing = |c: &Channel| json!({"entities": c.topics.iter().map(|t| json!({"id": t})).collect::<Vec<_>>()});
    if method == Method::GET {
        return (json_answer(200, listing(&s.channels[i])), false);
    }
    if method != Method::PUT && method != Method::POST {
        return (error(405, "method.not.allowed", "method not allowed"), true);
    }
    let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(body) else {
        return (
            error(
                400,
                "bad.request",
                "the body must be a JSON array of {\"id\": topic}",
            ),
            true,
        );
    };
    let mut topics = BTreeSet::new();
    let mut needed = Vec::new();
    for item in &items {
        let Some(topic) = item.get("id").and_then(Value::as_str) else {
            return (
                error(400, "bad.request", "each subscription needs an id"),
                true,
            );
        };
        let parts: Vec<&str> = topic.split('.').collect();
        let known = matches!(parts.as_slice(), ["v2", "users", uid, "presence" | "routingStatus" | "conversations"]
            if s.user(uid).is_some());
        if !known {
            return (
                error(
                    400,
                    "notification.invalid.topic",
                    &format!("invalid topic {topic}"),
                ),
                true,
            );
        }
        if parts[3] == "conversations" {
            needed.push(CONVERSATIONS_PERMISSION);
        }
        topics.insert(topic.to_string());
    }
    let missing = s.missing(&needed);
    if !missing.is_empty() {
        let list = format!("[{}]", missing.join(", "));
        let mut r = json!({
            "message": format!("Unable to perform the requested action. You are missing the following permission(s): {list}"),
            "code": "missing.any.permissions",
            "status": 403,
            "messageParams": {"permissions": list},
            "contextId": "genesys-sim",
        });
        r["messageWithParams"] = json!(
            "Unable to perform the requested action. You are missing the following permission(s): {permissions}"
        );
        return (json_answer(403, r), false);
    }
    let c = &mut s.channels[i];
    if method == Method::PUT {
        c.topics = topics;
    } else {
        c.topics.extend(topics);
    }
    if c.topics.len() > MAX_TOPICS_PER_CHANNEL {
        return (
            error(
                400,
                "bad.request",
                &format!("a channel holds at most {MAX_TOPICS_PER_CHANNEL} topics"),
            ),
            true,
        );
    }
    (json_answer(200, listing(c)), false)
}

async fn http_handler(
    st: Shared,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = lock(&st);
    let (resp, violation) = route(&mut s, &method, &uri, &headers, &body);
    let status = resp.status().as_u16();
    let target = uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    if violation {
        let what = format!("{method} {target} -> {status}");
        s.violation(what);
    }
    s.log.push(Logged {
        method: method.to_string(),
        target,
        status,
    });
    resp
}

async fn ws_conn(st: Shared, mut socket: WebSocket, id: String) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let beat = {
        let mut s = lock(&st);
        let Some(c) = s.channels.iter_mut().find(|c| c.id == id) else {
            return;
        };
        // One socket per channel: a new connection replaces the old.
        if let Some(old) = c.conn.replace(tx) {
            let _ = old.send(WsOut::Close(1000, "replaced by a new connection".into()));
        }
        s.cfg.heartbeat
    };
    let heartbeat = json!({"topicName": "channel.metadata",
                           "eventBody": {"message": "WebSocket Heartbeat"}})
    .to_string();
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + beat, beat);
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(WsOut::Text(t)) => {
                    if socket.send(Message::Text(t.into())).await.is_err() {
                        break;
                    }
                }
                Some(WsOut::Close(code, reason)) => {
                    let frame = CloseFrame { code, reason: reason.into() };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    break;
                }
                None => break,
            },
            _ = ticker.tick() => {
                if socket.send(Message::Text(heartbeat.clone().into())).await.is_err() {
                    break;
                }
            }
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                    if v["message"] == "ping" {
                        let pong = json!({"topicName": "channel.metadata", "eventBody": {"message": "pong"}});
                        if socket.send(Message::Text(pong.to_string().into())).await.is_err() {
                            break;
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
    }
    drop(rx);
    let mut s = lock(&st);
    if let Some(c) = s.channels.iter_mut().find(|c| c.id == id)
        && c.conn.as_ref().is_some_and(|t| t.is_closed())
    {
        c.conn = None;
    }
}

async fn ws_handler(st: Shared, id: String, upgrade: WebSocketUpgrade) -> Response {
    let known = {
        let mut s = lock(&st);
        let known = s.channels.iter().any(|c| c.id == id);
        s.log.push(Logged {
            method: "GET".into(),
            target: format!("/channels/{id}"),
            status: if known { 101 } else { 404 },
        });
        if !known {
            s.violation(format!("WebSocket to unknown channel {id}"));
        }
        known
    };
    if !known {
        return error(404, "not.found", "channel not found");
    }
    upgrade.on_upgrade(move |socket| ws_conn(st, socket, id))
}

/// The system presences every organization has (label, system presence).
const SYSTEM_PRESENCES: &[&str] = &[
    "Available",
    "Away",
    "Busy",
    "Break",
    "Meal",
    "Meeting",
    "Training",
    "On Queue",
    "Offline",
    "Idle",
];

impl GenesysSim {
    /// Start on 127.0.0.1 with `cfg`.
    pub async fn start(cfg: GenesysSimConfig) -> GenesysSim {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the simulator");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let defs = SYSTEM_PRESENCES
            .iter()
            .enumerate()
            .map(|(i, label)| Def {
                id: uuid(0xdef0 + i as u64),
                label: label.to_string(),
                system: label.to_string(),
                primary: true,
            })
            .collect();
        let state = Arc::new(Mutex::new(Sim {
            cfg,
            base: base.clone(),
            defs,
            users: Vec::new(),
            tokens: HashMap::new(),
            channels: Vec::new(),
            next: 1,
            throttle: 0,
            retry_after_s: 0,
            log: Vec::new(),
            violations: Vec::new(),
            channels_created: 0,
            cut_by_service: 0,
        }));
        let st_http = state.clone();
        let st_ws = state.clone();
        let app = axum::Router::new()
            .route(
                "/channels/{id}",
                axum::routing::get(
                    move |axum::extract::Path(id): axum::extract::Path<String>,
                          up: WebSocketUpgrade| {
                        let st = st_ws.clone();
                        async move { ws_handler(st, id, up).await }
                    },
                ),
            )
            .fallback(
                move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                    let st = st_http.clone();
                    async move { http_handler(st, method, uri, headers, body).await }
                },
            );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let st = state.clone();
        let clock = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                lock(&st).tick();
            }
        });
        GenesysSim {
            base,
            state,
            tasks: vec![server, clock],
        }
    }

    fn lock(&self) -> MutexGuard<'_, Sim> {
        lock(&self.state)
    }

    /// The API host (`https://api.{domain}` in production): the connector's `api_url`.
    pub fn api_url(&self) -> String {
        self.base.clone()
    }

    /// The login host (`https://login.{domain}`): the connector's `login_url`.
    pub fn login_url(&self) -> String {
        format!("{}/login", self.base)
    }

    pub fn config(&self) -> GenesysSimConfig {
        self.lock().cfg.clone()
    }

    /// Add a user (Available, off queue); returns their id.
    pub fn add_user(&self, name: &str, email: &str, extension: &str) -> String {
        let mut s = self.lock();
        s.next += 1;
        let id = uuid(s.next);
        let def_id = s.defs[0].id.clone();
        let now = iso(SystemTime::now());
        s.users.push(User {
            id: id.clone(),
            name: name.into(),
            email: email.into(),
            extension: extension.into(),
            def_id,
            message: String::new(),
            modified: now.clone(),
            routing: "OFF_QUEUE".into(),
            routing_start: now,
        });
        id
    }

    /// The id of the presence definition labelled `label`.
    pub fn def_id(&self, label: &str) -> String {
        self.lock()
            .defs
            .iter()
            .find(|d| d.label == label)
            .unwrap_or_else(|| panic!("no presence definition {label}"))
            .id
            .clone()
    }

    /// An organization-defined presence under system presence `system`.
    pub fn add_org_presence(&self, label: &str, system: &str) -> String {
        let mut s = self.lock();
        s.next += 1;
        let id = uuid(s.next);
        s.defs.push(Def {
            id: id.clone(),
            label: label.into(),
            system: system.into(),
            primary: false,
        });
        id
    }

    /// The user picks the presence labelled `label` (system or the
    /// organization's), with a status message: `v2.users.{id}.presence`.
    pub fn set_presence(&self, user: &str, label: &str, message: &str) {
        let def = self.def_id(label);
        let mut s = self.lock();
        let now = iso(SystemTime::now());
        let u = s
            .users
            .iter_mut()
            .find(|u| u.id == user)
            .expect("a known user");
        u.def_id = def;
        u.message = message.into();
        u.modified = now;
        let u = u.clone();
        let body = s.presence_json(&u, true);
        s.publish(&format!("v2.users.{user}.presence"), body);
    }

    /// The routing status changes (`IDLE`, `INTERACTING`, `OFF_QUEUE`, ...):
    /// `v2.users.{id}.routingStatus`.
    pub fn set_routing(&self, user: &str, status: &str) {
        let mut s = self.lock();
        let now = iso(SystemTime::now());
        let u = s
            .users
            .iter_mut()
            .find(|u| u.id == user)
            .expect("a known user");
        u.routing = status.into();
        u.routing_start = now.clone();
        s.publish(
            &format!("v2.users.{user}.routingStatus"),
            json!({"routingStatus": {"status": status, "startTime": now}}),
        );
    }

    /// A voice conversation of `user` with an outside caller, the user's
    /// participant in `state` (`alerting`, `connected`, `disconnected`),
    /// `held` or not: `v2.users.{id}.conversations`.
    pub fn call_event(&self, user: &str, conversation: &str, state: &str, held: bool) {
        let mut s = self.lock();
        let caller_state = if state == "disconnected" {
            "disconnected"
        } else {
            "connected"
        };
        let body = json!({
            "id": conversation,
            "participants": [
                {"id": format!("{conversation}-c"), "purpose": "customer", "address": "tel:+4930123456",
                 "calls": [{"id": format!("{conversation}-c1"), "state": caller_state, "held": false,
                            "direction": "inbound"}]},
                {"id": format!("{conversation}-a"), "purpose": "agent", "userId": user,
                 "calls": [{"id": format!("{conversation}-a1"), "state": state, "held": held,
                            "direction": "inbound"}]}
            ]
        });
        s.publish(&format!("v2.users.{user}.conversations"), body);
    }

    /// The service warns every open socket (`v2.system.socket_closing`) and
    /// closes it, removing its channel, after the configured grace.
    pub fn warn_socket_closing(&self) {
        let mut s = self.lock();
        let at = Instant::now() + s.cfg.closing_grace;
        let frame = json!({"topicName": "v2.system.socket_closing",
                           "eventBody": {"message": "Socket closing"}})
        .to_string();
        for c in &mut s.channels {
            if let Some(tx) = &c.conn {
                let _ = tx.send(WsOut::Text(frame.clone()));
                c.closing_at = Some(at);
            }
        }
    }

    /// The next `n` API calls are answered 429 with `Retry-After: secs`.
    pub fn throttle(&self, n: u32, secs: u64) {
        let mut s = self.lock();
        s.throttle = n;
        s.retry_after_s = secs;
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<Logged> {
        self.lock().log.clone()
    }

    /// Channels created so far.
    pub fn channels_created(&self) -> usize {
        self.lock().channels_created
    }

    /// The live channels: (id, topics, a socket connected).
    pub fn channels(&self) -> Vec<(String, Vec<String>, bool)> {
        let mut cs: Vec<_> = self
            .lock()
            .channels
            .iter()
            .map(|c| {
                (
                    c.seq,
                    c.id.clone(),
                    c.topics.iter().cloned().collect(),
                    c.conn.as_ref().is_some_and(|t| !t.is_closed()),
                )
            })
            .collect();
        cs.sort();
        cs.into_iter()
            .map(|(_, id, t, open)| (id, t, open))
            .collect()
    }

    /// Sockets the service closed itself (a channel expired, a
    /// `socket_closing` grace ran out, the channel limit) while the client
    /// still held them.
    pub fn sockets_cut_by_service(&self) -> usize {
        self.lock().cut_by_service
    }

    /// Requests the documents refuse that no test provoked.
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }
}
