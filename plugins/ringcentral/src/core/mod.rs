//! The connector's engine, free of I/O: it takes HTTP answers, WebSocket
//! frames, timer expiries, webhooks and commands through its
//! [`plain::Core`] hooks, and returns [`Action`]s, which the SDK's
//! [`plain::Plain`] adapter carries out through the host.
//!
//! Work is kept as *wants* (extensions to read, a subscription to bring in
//! line, writes to make) and [`Core::pump`] sends what may go now: a usable
//! token, and room in the request's throttling group ([`Budget`]) — requests
//! wait in the core, they are never sent into a 429.

mod auth;
mod presence;
mod push;
#[cfg(test)]
mod tests;
mod writes;

use std::collections::{BTreeMap, BTreeSet};

use presence_connector_sdk::plain;
use presence_connector_sdk::{
    CloseInfo, ConnectorError, ConnectorStatus, EndpointState, WebhookRequest, WriteRequest,
};

use presence_connector_sdk::oauth::{CallKind, TimerKind, TokenClient};

use crate::budget::{Budget, Group, retry_after_ms};
use crate::layers::ExtLayers;
use crate::settings::{Delivery, Settings};
use crate::wire;

use presence::{Directory, Ext};
use push::{Hooks, Ws};
use writes::{PendingWrite, PutCtx};

/// Identifies a request the core asked for.
pub type ReqId = u64;

/// Key-value keys.
pub mod keys {
    /// The OAuth tokens and what configuration they belong to.
    pub const TOKENS: &str = "auth/tokens";
    /// The WebHook subscription (id, verification token, expiry, filters).
    pub const SUBSCRIPTION: &str = "push/subscription";
    /// Rate-limit penalties in force.
    pub const PENALTIES: &str = "rate/penalties";
    /// Prefix of each extension's write layers (`ext/{id}`).
    pub const EXT_PREFIX: &str = "ext/";
}

/// A request's timeout.
const HTTP_TIMEOUT_MS: u32 = 20_000;
/// The status is looked at this often (online/connected, overdue writes,
/// lapsed echoes).
const TICK_MS: u64 = 30_000;
/// "Online" while something arrived from RingCentral within this time (the
/// aurenz console's five minutes).
const ONLINE_MS: u64 = 5 * 60_000;

pub use presence_connector_sdk::plain::{Level, Request, Response};

/// The body of a request as JSON (tests and logs).
#[cfg(test)]
pub fn body_json(r: &Request) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null)
}

/// An inbound webhook.
#[derive(Debug, Clone)]
pub struct Hook<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// The answer to a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HookAnswer {
    fn json(status: u16) -> HookAnswer {
        HookAnswer {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: Vec::new(),
        }
    }
    fn html(status: u16, text: &str) -> HookAnswer {
        let text = text
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        HookAnswer {
            status,
            headers: vec![("Content-Type".into(), "text/html; charset=utf-8".into())],
            body: format!(
                "<!doctype html><html><head><title>presence hub</title></head><body><p>{text}</p></body></html>"
            )
            .into_bytes(),
        }
    }
}

/// Timers the core asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKey {
    /// The OAuth client's: renew the access token ahead of expiry, retry
    /// a sign-in.
    OAuth(TimerKind),
    /// A throttling group has room again, or a back-off ended.
    Pump,
    /// Reconnect the WebSocket (or recover its session).
    Reconnect,
    /// The WebSocket opened but `ConnectionDetails` has not come.
    Hello(u64),
    /// Renew the WebHook subscription ahead of its granted expiry.
    Renew,
    /// Bring the subscription in line with the watched extensions.
    Reconcile,
    /// The hub's write on this extension lapses.
    Expire(String),
    /// Read the directory again.
    Directory,
    /// Status, overdue writes, lapsed echoes.
    Tick,
}

/// What the core wants done; the WebSocket key is the core's connection
/// number (each connection gets a new one).
pub type Action = presence_connector_sdk::plain::Action<TimerKey, ReqId, u64>;

/// What the key-value store held at start.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    pub tokens: Option<Vec<u8>>,
    pub subscription: Option<Vec<u8>>,
    pub penalties: Option<Vec<u8>>,
    /// `(extension id, layers)` from `ext/{id}`.
    pub exts: Vec<(String, Vec<u8>)>,
}

/// Why a request was sent.
#[derive(Debug, Clone)]
enum Purpose {
    Token(CallKind),
    WsToken,
    Directory(u32),
    /// One extension's presence; when it was sent.
    Read(String, u64),
    /// A page of account presence for these extensions; when it was sent.
    ReadAccount(u32, BTreeSet<String>, u64),
    CreateSub(String),
    RenewSub(String),
    UpdateSub(String, Vec<String>),
    DeleteSub(String),
    Put(PutCtx),
}

impl Purpose {
    /// The request's throttling group (facts C1, `x-throttling-group`).
    fn group(&self) -> Group {
        match self {
            Purpose::Token(_) | Purpose::WsToken => Group::Auth,
            Purpose::Read(..) | Purpose::RenewSub(_) => Group::Light,
            Purpose::ReadAccount(..) => Group::Heavy,
            Purpose::Directory(_)
            | Purpose::CreateSub(_)
            | Purpose::UpdateSub(..)
            | Purpose::DeleteSub(_)
            | Purpose::Put(_) => Group::Medium,
        }
    }
}

/// A RingCentral answer sorted by what to do with it.
#[derive(Debug)]
enum Outcome {
    Ok(Response),
    /// 401: the access token is no good.
    Unauthorized(String),
    /// 403, with the permission the body names.
    Forbidden(Option<String>, String),
    NotFound(String),
    /// 429, with `Retry-After`.
    Throttled(Option<u64>),
    /// Unreachable (no status), or a 5xx.
    Transient(Option<u16>, String),
    /// Another 4xx.
    Rejected(u16, String),
}

/// Random bytes from the host's cryptographic generator.
pub type Entropy = Box<dyn FnMut(u32) -> Vec<u8>>;

/// The engine.
pub struct Core {
    s: Settings,
    entropy: Entropy,
    next_req: ReqId,
    out: Vec<Action>,
    inflight: BTreeMap<ReqId, Purpose>,
    budget: Budget,
    oauth: TokenClient,
    /// The sign-in link while an operator must sign in.
    login_url: Option<String>,
    /// Why signing in fails until an operator acts.
    auth_problem: Option<(ConnectorStatus, String)>,
    dir: Directory,
    /// Watched endpoints (as the hub names them) -> extension id, once
    /// resolved.
    endpoints: BTreeMap<String, Option<String>>,
    ep_states: BTreeMap<String, EndpointState>,
    /// Extensions known to the core (watched, written, or with stored
    /// layers).
    exts: BTreeMap<String, Ext>,
    /// Extensions to read. A read waits until notifications for the
    /// extension flow, so no change falls between the read and the first
    /// notification.
    to_read: BTreeSet<String>,
    reading: BTreeSet<String>,
    /// Read while no notification covered them (push was down too long to
    /// wait): read again once one does.
    read_blind: BTreeSet<String>,
    ws: Ws,
    hooks: Hooks,
    pending_writes: BTreeMap<String, PendingWrite>,
    /// Extensions with a write in flight.
    putting: BTreeSet<String>,
    /// Extensions whose layers changed: write what differs, lifted fields
    /// carrying this cause.
    dirty: BTreeMap<String, crate::layers::Cause>,
    next_put: u64,
    /// When rules last wrote, per extension.
    rule_log: BTreeMap<String, Vec<u64>>,
    /// Refusals by permission: what RingCentral refused, naming the
    /// permission, for the status.
    forbidden: BTreeMap<&'static str, String>,
    /// The last transport failure, until something is answered again.
    unreachable: Option<String>,
    last_event: Option<u64>,
    last_status: Option<(ConnectorStatus, Option<String>)>,
    pump_at: Option<u64>,
    stopping: bool,
}

/// Sort an answer by what to do with it.
fn classify(result: Result<Response, String>) -> Outcome {
    let resp = match result {
        Ok(r) => r,
        Err(e) => return Outcome::Transient(None, e),
    };
    let text = || wire::error_text(resp.status, &resp.body);
    match resp.status {
        200..=299 => Outcome::Ok(resp),
        401 => Outcome::Unauthorized(text()),
        403 => Outcome::Forbidden(wire::missing_permission(&resp.body), text()),
        404 => Outcome::NotFound(text()),
        429 => Outcome::Throttled(retry_after_ms(&resp.headers)),
        500..=599 => Outcome::Transient(Some(resp.status), text()),
        s => Outcome::Rejected(s, text()),
    }
}

impl Core {
    /// A core for `s`, resuming from what the key-value store held.
    pub fn new(s: Settings, stored: Stored, now: u64, entropy: Entropy) -> Core {
        let budget = Budget::new(s.limits, stored.penalties.as_deref(), now);
        let oauth = auth::client(&s, stored.tokens.as_deref(), now);
        let mut exts = BTreeMap::new();
        for (id, bytes) in stored.exts {
            if let Ok(layers) = serde_json::from_slice::<ExtLayers>(&bytes) {
                exts.insert(id, Ext::with_layers(layers));
            }
        }
        let hooks = Hooks::load(stored.subscription.as_deref(), s.notify_url().as_deref());
        Core {
            entropy,
            next_req: 1,
            out: Vec::new(),
            inflight: BTreeMap::new(),
            budget,
            oauth,
            login_url: None,
            auth_problem: None,
            dir: Directory::default(),
            endpoints: BTreeMap::new(),
            ep_states: BTreeMap::new(),
            exts,
            to_read: BTreeSet::new(),
            reading: BTreeSet::new(),
            read_blind: BTreeSet::new(),
            ws: Ws::default(),
            hooks,
            pending_writes: BTreeMap::new(),
            putting: BTreeSet::new(),
            dirty: BTreeMap::new(),
            next_put: 1,
            rule_log: BTreeMap::new(),
            forbidden: BTreeMap::new(),
            unreachable: None,
            last_event: None,
            last_status: None,
            pump_at: None,
            stopping: false,
            s,
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.s
    }

    // ---- small helpers -------------------------------------------------

    /// 128 bits from the host's generator, as hex (OAuth state, verification
    /// tokens, message ids).
    fn random(&mut self) -> String {
        (self.entropy)(16)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn random_u32(&mut self) -> u32 {
        let b = (self.entropy)(4);
        b.iter().fold(0u32, |acc, x| (acc << 8) | u32::from(*x))
    }

    fn log(&mut self, level: Level, msg: impl Into<String>) {
        self.out.push(Action::Log(level, msg.into()));
    }

    fn set_timer(&mut self, key: TimerKey, ms: u64) {
        self.out.push(Action::SetTimer(key, ms));
    }

    fn cancel_timer(&mut self, key: TimerKey) {
        self.out.push(Action::CancelTimer(key));
    }

    /// Wake the pump when a group has room again (one timer, the earliest).
    fn wake_in(&mut self, wait: u64, now: u64) {
        let at = now + wait.max(1);
        if self.pump_at.is_none_or(|t| t <= now || at < t) {
            self.pump_at = Some(at);
            self.set_timer(TimerKey::Pump, wait.max(1));
        }
    }

    /// Whether a request of `group` may go now; if not, the pump wakes when
    /// it may.
    fn room(&mut self, group: Group, now: u64) -> bool {
        match self.budget.room(group, now) {
            Ok(()) => true,
            Err(wait) => {
                self.wake_in(wait, now);
                false
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.s.server)
    }

    fn api(&self, method: &'static str, path: &str, body: Option<serde_json::Value>) -> Request {
        let mut headers = vec![("Accept".to_string(), "application/json".to_string())];
        if let Some(t) = self.oauth.tokens() {
            headers.push(("Authorization".into(), format!("Bearer {}", t.access_token)));
        }
        let body = match body {
            Some(b) => {
                headers.push(("Content-Type".into(), "application/json".into()));
                serde_json::to_vec(&b).unwrap_or_default()
            }
            None => Vec::new(),
        };
        Request {
            method,
            url: self.url(path),
            headers,
            body,
            timeout_ms: HTTP_TIMEOUT_MS,
        }
    }

    /// Send `req` for `purpose`, counting it against its group (the caller
    /// checked [`room`](Self::room)).
    fn send(&mut self, purpose: Purpose, req: Request, now: u64) {
        self.budget.spend(purpose.group(), now);
        let id = self.next_req;
        self.next_req += 1;
        self.inflight.insert(id, purpose);
        self.out.push(Action::Http(id, req));
    }

    fn store_penalties(&mut self, now: u64) {
        let bytes = self.budget.stored(now);
        self.out.push(Action::KvSet(keys::PENALTIES.into(), bytes));
    }

    /// Record a refusal naming the permission; returns the text.
    fn forbid(
        &mut self,
        class: &'static str,
        perm: Option<String>,
        what: &str,
        text: &str,
    ) -> String {
        let perm = perm.unwrap_or_else(|| class.to_string());
        let msg = format!(
            "RingCentral refused to {what} ({text}): the app needs the permission {perm} (Developer Console > app > Settings > Application scopes)"
        );
        if self.forbidden.get(class) != Some(&msg) {
            self.log(Level::Warn, msg.clone());
        }
        self.forbidden.insert(class, msg.clone());
        msg
    }

    // ---- entry points --------------------------------------------------

    /// A request did not go through (throttled, unreachable, token
    /// refused): its work is wanted again, a hub write fails retryably.
    fn not_done(
        &mut self,
        purpose: Purpose,
        retry_after: Option<u64>,
        status: Option<u16>,
        why: &str,
        now: u64,
    ) {
        match purpose {
            Purpose::Token(_) => {}
            Purpose::WsToken => self.ws_token_failed(why, now),
            Purpose::Directory(page) => self.dir.retry(page),
            Purpose::Read(ext, _) => {
                self.reading.remove(&ext);
                self.to_read.insert(ext);
            }
            Purpose::ReadAccount(_, exts, _) => {
                for e in exts {
                    self.reading.remove(&e);
                    self.to_read.insert(e);
                }
            }
            Purpose::CreateSub(_)
            | Purpose::RenewSub(_)
            | Purpose::UpdateSub(..)
            | Purpose::DeleteSub(_) => self.hooks.request_failed(),
            Purpose::Put(ctx) => self.put_failed(ctx, why, true, retry_after, status, now),
        }
    }

    fn on_answer(&mut self, purpose: Purpose, outcome: Outcome, now: u64) {
        match purpose {
            Purpose::Token(_) => {}
            Purpose::WsToken => self.on_ws_token(outcome, now),
            Purpose::Directory(page) => self.on_directory(page, outcome, now),
            Purpose::Read(ext, sent) => self.on_read(ext, sent, outcome, now),
            Purpose::ReadAccount(page, exts, sent) => {
                self.on_read_account(page, exts, sent, outcome, now)
            }
            Purpose::CreateSub(token) => self.on_sub_created(token, outcome, now),
            Purpose::RenewSub(id) => self.on_sub_renewed(id, outcome, now),
            Purpose::UpdateSub(id, filters) => self.on_sub_updated(id, filters, outcome, now),
            Purpose::DeleteSub(_) => {}
            Purpose::Put(ctx) => self.on_put(ctx, outcome, now),
        }
    }

    /// An inbound request on `/hooks/{instance}/...`.
    pub fn on_webhook(&mut self, hook: &Hook<'_>, now: u64) -> HookAnswer {
        let answer = if hook.path.starts_with("/oauth/callback") {
            self.on_auth_callback(hook, now)
        } else if hook.path.starts_with("/notify") {
            self.on_notify(hook, now)
        } else {
            HookAnswer::json(404)
        };
        self.pump(now);
        self.update_status(now);
        answer
    }

    /// Send whatever may go now.
    fn pump(&mut self, now: u64) {
        if self.stopping {
            return;
        }
        self.ensure_token(now);
        let Some(_) = self.usable(now) else {
            return;
        };
        self.pump_directory(now);
        self.pump_push(now);
        self.pump_writes(now);
        self.pump_reads(now);
    }

    fn tick(&mut self, now: u64) {
        for ext in self.exts.values_mut() {
            ext.layers.sweep(now);
        }
        self.overdue_writes(now);
    }

    // ---- status ----------------------------------------------------------

    fn push_summary(&self, now: u64) -> String {
        match self.s.delivery {
            Delivery::WebSocket => self.ws.summary(),
            Delivery::WebHook => self.hooks.summary(now),
        }
    }

    fn summary(&self, now: u64) -> String {
        let watched = self.endpoints.len();
        let count = |st| self.ep_states.values().filter(|s| **s == st).count();
        let mut text = format!(
            "{watched} endpoint{} watched, {} extensions in the directory; {}",
            if watched == 1 { "" } else { "s" },
            self.dir.len(),
            self.push_summary(now)
        );
        for (st, word) in [
            (EndpointState::NotFound, "not found"),
            (EndpointState::AccessDenied, "access denied"),
        ] {
            let n = count(st);
            if n > 0 {
                text.push_str(&format!("; {n} {word}"));
            }
        }
        if let Some(m) = self.forbidden.get("EditPresence") {
            text.push_str(&format!("; writes refused: {m}"));
        }
        text
    }

    fn desired_status(&self, now: u64) -> (ConnectorStatus, Option<String>) {
        if let Some((st, d)) = &self.auth_problem {
            return (*st, Some(format!("offline: {d}")));
        }
        if let Some(msg) = self.login_message() {
            return (
                ConnectorStatus::LoginRequired,
                Some(format!("offline: {msg}")),
            );
        }
        if let Some(why) = self.s.missing_public_url() {
            return (
                ConnectorStatus::NotConfigured,
                Some(format!("offline: {why}")),
            );
        }
        for class in ["ReadPresence", "WebSocketsSubscriptions", "ReadAccounts"] {
            if let Some(m) = self.forbidden.get(class) {
                return (ConnectorStatus::Forbidden, Some(format!("offline: {m}")));
            }
        }
        let penalties = self.budget.penalties(now);
        if let Some((g, until)) = penalties.first() {
            return (
                ConnectorStatus::Throttled,
                Some(format!(
                    "throttled: RingCentral answered 429; the {} group waits {} s (until its penalty ends); requests are queued",
                    g.name(),
                    until.saturating_sub(now).div_ceil(1000)
                )),
            );
        }
        if let Some(m) = &self.unreachable {
            return (
                ConnectorStatus::ConnectionError,
                Some(format!("offline: RingCentral could not be reached: {m}")),
            );
        }
        if self.usable(now).is_none() {
            return (
                ConnectorStatus::ConnectionError,
                Some(format!("offline: signing in to {}", self.s.server)),
            );
        }
        if let Some(m) = self.push_down(now) {
            return (
                ConnectorStatus::ConnectionError,
                Some(format!("offline: {m}")),
            );
        }
        let word = if self.last_event.is_some_and(|t| now < t + ONLINE_MS) {
            "online"
        } else {
            "connected"
        };
        (
            ConnectorStatus::UpAndRunning,
            Some(format!("{word}: {}", self.summary(now))),
        )
    }

    fn update_status(&mut self, now: u64) {
        if self.stopping {
            return;
        }
        let st = self.desired_status(now);
        if self.last_status.as_ref() != Some(&st) {
            self.last_status = Some(st.clone());
            self.out.push(Action::Status(st.0, st.1));
        }
    }
}

impl plain::Core for Core {
    type TimerKey = TimerKey;
    type RequestKey = ReqId;
    /// The WebSocket connection number.
    type SocketKey = u64;

    /// Begin: sign in (or resume), read the directory, arm timers.
    fn start(&mut self, now: u64) {
        self.out.push(Action::LoginStep(None));
        self.log(
            Level::Info,
            format!(
                "starting: {} sign-in at {}, notifications by {}",
                match self.s.auth {
                    crate::settings::AuthMode::Jwt => "JWT",
                    crate::settings::AuthMode::AuthorizationCode => "authorization-code",
                },
                self.s.server,
                match self.s.delivery {
                    Delivery::WebSocket => "WebSocket",
                    Delivery::WebHook => "WebHook",
                }
            ),
        );
        if let Some(why) = self.s.missing_public_url() {
            self.log(Level::Warn, why);
        }
        let penalties = self.budget.penalties(now);
        for (g, until) in &penalties {
            self.log(
                Level::Warn,
                format!(
                    "the {} group is still in RingCentral's penalty for {} s (kept across the restart)",
                    g.name(),
                    (until - now).div_ceil(1000)
                ),
            );
        }
        self.start_client(now);
        self.arm_expiries(now);
        self.set_timer(TimerKey::Tick, TICK_MS);
        self.pump(now);
        self.update_status(now);
    }

    /// Start watching endpoints (extension ids or numbers).
    fn watch(&mut self, endpoints: &[String], now: u64) {
        for ep in endpoints {
            let ep = ep.trim().to_string();
            if ep.is_empty() || self.endpoints.contains_key(&ep) {
                continue;
            }
            self.endpoints.insert(ep.clone(), None);
            self.ep_states.remove(&ep);
            self.set_ep_state(&ep, EndpointState::Requesting, None);
            if self.dir.complete {
                self.bind(&ep);
            }
        }
        self.last_event = Some(now);
        self.reconcile_soon();
        self.pump(now);
        self.update_status(now);
    }

    /// Stop watching endpoints.
    fn unwatch(&mut self, endpoints: &[String], now: u64) {
        for ep in endpoints {
            if let Some(Some(ext)) = self.endpoints.remove(ep.trim())
                && let Some(e) = self.exts.get_mut(&ext)
            {
                e.endpoints.remove(ep.trim());
            }
            self.ep_states.remove(ep.trim());
        }
        self.reconcile_soon();
        self.pump(now);
        self.update_status(now);
    }

    /// A timer fired.
    fn on_timer(&mut self, key: TimerKey, now: u64) {
        match key {
            TimerKey::OAuth(kind) => self.token_timer(kind, now),
            TimerKey::Pump => self.pump_at = None,
            TimerKey::Reconnect => {}
            TimerKey::Hello(conn) => self.hello_overdue(conn, now),
            TimerKey::Renew => self.hooks.renew_due = true,
            TimerKey::Reconcile => {}
            TimerKey::Expire(ext) => self.expire(&ext, now),
            TimerKey::Directory => self.dir.refresh_due = true,
            TimerKey::Tick => {
                self.tick(now);
                self.set_timer(TimerKey::Tick, TICK_MS);
            }
        }
        self.pump(now);
        self.update_status(now);
    }

    /// An HTTP answer (or transport failure) arrived.
    fn on_http(&mut self, id: ReqId, result: Result<Response, String>, now: u64) {
        let Some(purpose) = self.inflight.remove(&id) else {
            return;
        };
        let group = purpose.group();
        if let Ok(r) = &result {
            self.budget.learn(group, &r.headers, now);
            if r.status != 429 {
                self.budget.answered(group);
            }
            self.unreachable = None;
        }
        if self.stopping {
            self.goodbye_answer(purpose, result);
            return;
        }
        match purpose {
            Purpose::Token(kind) => self.on_token(kind, result, now),
            other => {
                let outcome = classify(result);
                match outcome {
                    Outcome::Throttled(wait) => {
                        let until = self.budget.penalize(group, wait, now);
                        self.store_penalties(now);
                        self.log(
                            Level::Warn,
                            format!(
                                "RingCentral answered 429 for the {} group: nothing of it is sent for {} s",
                                group.name(),
                                (until - now).div_ceil(1000)
                            ),
                        );
                        self.wake_in(until - now, now);
                        self.not_done(
                            other,
                            Some(until - now),
                            Some(429),
                            "throttled (HTTP 429)",
                            now,
                        );
                    }
                    Outcome::Transient(status, msg) => {
                        if status.is_none() {
                            self.unreachable = Some(msg.clone());
                        }
                        self.wake_in(5_000, now);
                        self.not_done(other, None, status, &msg, now);
                    }
                    Outcome::Unauthorized(msg) => {
                        self.rejected(now);
                        self.not_done(other, None, Some(401), &msg, now);
                    }
                    outcome => self.on_answer(other, outcome, now),
                }
            }
        }
        self.pump(now);
        self.update_status(now);
    }

    fn on_ws_open(&mut self, conn: u64, now: u64) {
        self.ws_opened(conn, now);
    }

    fn on_ws_text(&mut self, conn: u64, text: &str, now: u64) {
        self.ws_text(conn, text, now);
    }

    /// RingCentral sends text; a binary frame is read as UTF-8 all the same.
    fn on_ws_binary(&mut self, conn: u64, data: &[u8], now: u64) {
        self.ws_text(conn, &String::from_utf8_lossy(data), now);
    }

    fn on_ws_closed(&mut self, conn: u64, close: &CloseInfo, now: u64) {
        let (why, unauthorized) = push::describe_close(close);
        self.ws_closed(conn, why, unauthorized, now);
    }

    /// Notifications by WebHook, and the authorization-code redirect.
    fn webhook(&mut self, request: WebhookRequest, now: u64) -> Response {
        let headers = plain::pairs(request.headers);
        let hook = Hook {
            method: &request.method,
            path: &request.path,
            query: &request.query,
            headers: &headers,
            body: &request.body,
        };
        let HookAnswer {
            status,
            headers,
            body,
        } = self.on_webhook(&hook, now);
        Response {
            status,
            headers,
            body,
        }
    }

    fn write(&mut self, request: WriteRequest, now: u64) -> Result<(), ConnectorError> {
        self.write_presence(request, now)
    }

    /// The instance stops: delete the WebHook subscription, close the
    /// WebSocket; answers still arriving are taken for the goodbye only.
    fn shutdown(&mut self, now: u64) {
        self.stopping = true;
        self.ws_goodbye();
        self.hooks_goodbye(now);
        // Whatever the hub still waits for gets its one outcome.
        let pending: Vec<(String, PendingWrite)> = std::mem::take(&mut self.pending_writes)
            .into_iter()
            .collect();
        for (_, w) in pending {
            self.out.push(Action::WriteOutcome(
                w.id,
                writes::failure("the connector is stopping", true, None, None),
            ));
        }
    }

    /// Actions produced since the last call.
    fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.out)
    }
}
