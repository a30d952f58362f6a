//! The connector's engine, free of I/O: it takes HTTP answers, timer
//! expiries, webhooks and commands through its [`plain::Core`] hooks, and
//! returns [`Action`]s (send this request, set this timer, store this,
//! report this), which the SDK's [`plain::Plain`] adapter carries out
//! through the host.
//!
//! Work is kept as *wants* (users to resolve, ids to read, subscriptions to
//! create or renew, writes to send) rather than as a queue of requests: a
//! failed or throttled request puts its want back, duplicates merge, and
//! [`Core::pump`] sends whatever may go now (a valid token, no back-off in
//! force, the read and look-up budgets not spent).

mod auth;
mod backoff;
mod directory;
mod lookups;
mod reads;
mod subs;
#[cfg(test)]
mod tests;
mod writes;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use presence_connector_sdk::oauth::{CallKind, TimerKind, TokenClient};
use presence_connector_sdk::plain;
use presence_connector_sdk::{
    ConnectorError, ConnectorStatus, EndpointState, UpdateOrigin, WebhookRequest, WriteFailure,
    WriteRequest,
};
use presence_connector_sdk::{graph, urlcode};

use crate::settings::Settings;
use crate::wire;

pub use auth::Slot;
use backoff::Refusal;
use reads::Snapshot;
#[cfg(test)]
use reads::{READ_BUDGET, READ_GATHER_MS, READ_WINDOW_MS};
use subs::{Sub, SubPhase};
use writes::{Echo, Pending, Standing, failure};

/// Identifies a request the core asked for.
pub type ReqId = u64;

/// Key-value keys the connector uses.
pub mod keys {
    /// Tokens of the primary (read) sign-in.
    pub const TOKEN_PRIMARY: &str = "auth/primary";
    /// Tokens of the application sign-in used for writes in delegated mode.
    pub const TOKEN_APP: &str = "auth/app";
    /// Change-notification subscriptions.
    pub const SUBS: &str = "subs";
    /// The UPN -> object id cache, one JSON object.
    pub const USERS: &str = "users";
    /// The hub's writes that stand on Graph, so a restore after a restart
    /// still clears them.
    pub const WRITES: &str = "writes";
}

/// Longest pause after failures without a `Retry-After`.
const MAX_BACKOFF_MS: u64 = 60_000;
/// A request's timeout.
const HTTP_TIMEOUT_MS: u32 = 20_000;

/// Requests, answers and log levels as the SDK's plain-data core types.
pub use presence_connector_sdk::plain::{Level, Request, Response};

/// An inbound webhook, as far as the core needs it.
#[derive(Debug, Clone)]
pub struct Hook<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub body: &'a [u8],
}

/// The answer to a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookAnswer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl HookAnswer {
    fn text(status: u16, body: impl Into<String>) -> HookAnswer {
        HookAnswer {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into().into_bytes(),
        }
    }
    fn html(status: u16, body: &str) -> HookAnswer {
        HookAnswer {
            status,
            content_type: "text/html; charset=utf-8",
            body: format!(
                "<!doctype html><html><head><title>presence hub</title></head><body><p>{}</p></body></html>",
                html_escape(body)
            )
            .into_bytes(),
        }
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Timers the core asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKey {
    /// A sign-in's timer: renew a token ahead of expiry or retry a failed
    /// sign-in, or poll during a device-code sign-in.
    OAuth(Slot, TimerKind),
    /// End of a back-off (throttling, unreachable Graph).
    Gate,
    /// Read users not covered by change notifications.
    Poll,
    /// Read users covered by change notifications anyway (safety net).
    Reread,
    /// Gathered ids are read now (or the read budget has room again).
    ReadSoon,
    /// Refused users are due to be read alone again.
    ReadRetry,
    /// The look-up budget has room again.
    LookupBudget,
    /// Refused look-ups are due again.
    LookupRetry,
    /// Renew a subscription ahead of expiry.
    Renew(u64),
    /// Bring subscriptions in line with the watched users.
    Reconcile,
    /// Judge a subscription that was silent while a read showed a change.
    Silent(u64),
    /// Renew a standing write-back before Graph lets it lapse.
    KeepAlive(String),
    /// A hub write for this endpoint has waited too long to be sent.
    WriteDeadline(String),
    /// The user directory is due to be read (again), or a refused page
    /// asked again.
    Directory,
}

/// What the core wants done; `component.rs` hands it to the SDK
/// (`Cx::apply`).
pub type Action = presence_connector_sdk::plain::Action<TimerKey, ReqId>;

/// What the key-value store held at start.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    pub primary: Option<Vec<u8>>,
    pub app: Option<Vec<u8>>,
    pub subs: Option<Vec<u8>>,
    pub users: Option<Vec<u8>>,
    pub writes: Option<Vec<u8>>,
}

/// Why a request was sent.
#[derive(Debug, Clone)]
enum Purpose {
    /// A request of a sign-in's OAuth client.
    OAuth(Slot, CallKind),
    /// A JSON batch of UPN look-ups, in this order.
    Lookup(Vec<String>),
    Read(Vec<String>),
    CreateSub(u64),
    RenewSub(u64),
    Reauthorize(u64),
    DeleteSub(String),
    Write(String, Pending),
    /// A page of the tenant's user list.
    Directory(directory::Page),
}

/// Classes of Graph calls, for permission problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum OpClass {
    Users,
    Read,
    Write,
    /// Listing the tenant's users for the directory.
    Directory,
}

/// A Graph answer sorted by what to do with it.
enum Outcome {
    Ok(Response),
    /// 401: the token is no good.
    Unauthorized(String),
    Forbidden(String),
    NotFound(String),
    /// 429 or 503; the wait Graph asked for, if it did.
    Throttled(u16, Option<u64>),
    /// Unreachable (no status), or a server error worth retrying.
    Transient(Option<u16>, String),
    /// Another 4xx: retrying the same request will not help.
    Rejected(u16, String),
}

/// Why Graph requests are held back.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Gate {
    Throttled(String),
    Unreachable(String),
}

/// One watched endpoint (UPN or object id as the hub names it).
#[derive(Debug, Clone, Default)]
struct Ep {
    id: Option<String>,
    state: Option<EndpointState>,
    /// Graph refused to look the UPN up.
    refused: Option<Refusal>,
}

/// What is known of one user object id.
#[derive(Debug, Clone, Default)]
struct IdInfo {
    endpoints: BTreeSet<String>,
    sequence: Option<String>,
    last: Option<Snapshot>,
    /// When a read last answered for this user.
    read_at: Option<u64>,
    /// Graph returned nothing for this id.
    missing: bool,
    /// Graph refused to read this user: it is read alone, later each time.
    refused: Option<Refusal>,
}

/// Random bytes from the host's cryptographic generator.
pub type Entropy = Box<dyn FnMut(u32) -> Vec<u8>>;

/// The engine.
pub struct Core {
    s: Settings,
    entropy: Entropy,
    next_req: ReqId,
    out: Vec<Action>,
    inflight: HashMap<ReqId, Purpose>,
    timers: BTreeSet<TimerKey>,
    primary: TokenClient,
    app: Option<TokenClient>,
    /// 401s in a row from Graph per sign-in since it last took a token.
    rejected: BTreeMap<Slot, u32>,
    endpoints: BTreeMap<String, Ep>,
    ids: BTreeMap<String, IdInfo>,
    upn_cache: BTreeMap<String, String>,
    /// Cache entries not yet stored.
    users_dirty: usize,
    to_resolve: BTreeSet<String>,
    resolving: BTreeSet<String>,
    /// When recent look-ups went out, for the look-up budget.
    lookup_log: VecDeque<u64>,
    to_read: BTreeSet<String>,
    /// Batches read as they are, not merged with other ids: the halves of a
    /// batch Graph refused, batches sent again after throttling, and what
    /// the read budget held back.
    kept: VecDeque<Vec<String>>,
    /// The refused user read on behalf of all while Graph refuses everyone.
    canary: Option<String>,
    read_failed: BTreeSet<String>,
    read_log: VecDeque<u64>,
    subs: Vec<Sub>,
    next_sub: u64,
    /// Subscriptions refused: not before this time, and why.
    sub_block: Option<(u64, String)>,
    to_delete: Vec<String>,
    /// Writes waiting to be sent, one per endpoint.
    writes: BTreeMap<String, Pending>,
    /// Endpoints with a write in flight.
    writing: BTreeSet<String>,
    /// Endpoints whose state the hub's writes set on Graph.
    standing: BTreeMap<String, Standing>,
    /// Updates writes should cause, per endpoint.
    echoes: BTreeMap<String, Echo>,
    gate: Option<Gate>,
    gate_until: u64,
    failures: u32,
    forbidden: BTreeMap<OpClass, String>,
    auth_problem: Option<(ConnectorStatus, String)>,
    last_status: Option<(ConnectorStatus, Option<String>)>,
    /// The instance is stopping: only its goodbyes (subscription deletes)
    /// still go out.
    stopping: bool,
    /// The read of the tenant's user directory.
    dir: directory::DirRead,
}

/// Ids are compared in lower case: Graph's GUIDs are case-insensitive.
fn norm_id(id: &str) -> String {
    id.to_ascii_lowercase()
}

impl Core {
    /// A core for `s`, resuming from what the key-value store held.
    pub fn new(s: Settings, stored: Stored, now: u64, entropy: Entropy) -> Core {
        let primary = auth::client(Slot::Primary, &s, stored.primary.as_deref(), now);
        let app = (s.flow.delegated() && s.client_secret.is_some())
            .then(|| auth::client(Slot::App, &s, stored.app.as_deref(), now));
        let mut core = Core {
            entropy,
            next_req: 1,
            out: Vec::new(),
            inflight: HashMap::new(),
            timers: BTreeSet::new(),
            primary,
            app,
            rejected: BTreeMap::new(),
            endpoints: BTreeMap::new(),
            ids: BTreeMap::new(),
            upn_cache: stored
                .users
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default(),
            users_dirty: 0,
            to_resolve: BTreeSet::new(),
            resolving: BTreeSet::new(),
            lookup_log: VecDeque::new(),
            to_read: BTreeSet::new(),
            kept: VecDeque::new(),
            canary: None,
            read_failed: BTreeSet::new(),
            read_log: VecDeque::new(),
            subs: Vec::new(),
            next_sub: 1,
            sub_block: None,
            to_delete: Vec::new(),
            writes: BTreeMap::new(),
            writing: BTreeSet::new(),
            standing: BTreeMap::new(),
            echoes: BTreeMap::new(),
            gate: None,
            gate_until: 0,
            failures: 0,
            forbidden: BTreeMap::new(),
            auth_problem: None,
            last_status: None,
            stopping: false,
            dir: directory::DirRead::default(),
            s,
        };
        core.adopt_subs(stored.subs.as_deref(), now);
        core.adopt_writes(stored.writes.as_deref(), now);
        core
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.s
    }

    // ---- small helpers ---------------------------------------------------

    /// A fresh secret (clientState, OAuth state): 128 bits from the host's
    /// cryptographic generator, as hex.
    fn random(&mut self) -> String {
        (self.entropy)(16)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn log(&mut self, level: Level, msg: impl Into<String>) {
        self.out.push(Action::Log(level, msg.into()));
    }

    fn set_timer(&mut self, key: TimerKey, ms: u64) {
        self.timers.insert(key.clone());
        self.out.push(Action::SetTimer(key, ms));
    }

    fn cancel_timer(&mut self, key: TimerKey) {
        if self.timers.remove(&key) {
            self.out.push(Action::CancelTimer(key));
        }
    }

    fn send(&mut self, purpose: Purpose, req: Request) {
        let id = self.next_req;
        self.next_req += 1;
        self.inflight.insert(id, purpose);
        self.out.push(Action::Http(id, req));
    }

    fn graph_request(
        &self,
        method: &'static str,
        path: &str,
        body: Option<serde_json::Value>,
        token: &str,
    ) -> Request {
        let mut headers = vec![
            ("Authorization".to_string(), format!("Bearer {token}")),
            ("Accept".to_string(), "application/json".to_string()),
        ];
        let body = match body {
            Some(b) => {
                headers.push(("Content-Type".into(), "application/json".into()));
                serde_json::to_vec(&b).unwrap_or_default()
            }
            None => Vec::new(),
        };
        Request {
            method,
            url: format!("{}{path}", self.s.graph_base),
            headers,
            body,
            timeout_ms: HTTP_TIMEOUT_MS,
        }
    }

    /// The slot whose token writes use: the application token where a
    /// delegated sign-in also has a client secret (writing another user's
    /// presence needs the application permission Presence.ReadWrite.All).
    fn write_slot(&self) -> Slot {
        if self.app.is_some() {
            Slot::App
        } else {
            Slot::Primary
        }
    }

    fn id_of(&self, endpoint: &str) -> Option<String> {
        if wire::is_guid(endpoint) {
            return Some(norm_id(endpoint));
        }
        if let Some(id) = self.endpoints.get(endpoint).and_then(|e| e.id.clone()) {
            return Some(id);
        }
        self.upn_cache.get(&endpoint.to_ascii_lowercase()).cloned()
    }

    /// Put every endpoint of these Graph user ids in `state`, saying why.
    fn ids_state(&mut self, ids: &[String], state: EndpointState, why: &str) {
        for id in ids {
            let endpoints = self
                .ids
                .get(id)
                .map(|i| i.endpoints.clone())
                .unwrap_or_default();
            for ep in endpoints {
                self.endpoint_state(&ep, state, Some(why.to_string()));
            }
        }
    }

    fn endpoint_state(&mut self, ep: &str, state: EndpointState, detail: Option<String>) {
        if let Some(e) = self.endpoints.get_mut(ep) {
            if e.state == Some(state) && state == EndpointState::Active {
                return;
            }
            e.state = Some(state);
            self.out
                .push(Action::EndpointState(ep.to_string(), state, detail));
        }
    }

    // ---- commands ----------------------------------------------------------

    /// An endpoint now has a user id: read it, then cover it by a
    /// subscription.
    fn bind(&mut self, ep: &str, id: &str) {
        let Some(e) = self.endpoints.get_mut(ep) else {
            return;
        };
        e.id = Some(id.to_string());
        let info = self.ids.entry(id.to_string()).or_default();
        info.endpoints.insert(ep.to_string());
        if let Some(last) = info.last.clone() {
            // Another endpoint names the same user: it knows the state already.
            let seq = info.sequence.clone();
            self.report(ep, id, &last, seq.as_deref(), UpdateOrigin::Platform);
        } else {
            self.to_read.insert(id.to_string());
            self.schedule_read();
        }
        self.schedule_reconcile();
    }

    // ---- timers --------------------------------------------------------------

    // ---- sending ---------------------------------------------------------------

    /// Send whatever may go now.
    fn pump(&mut self, now: u64) {
        if self.stopping {
            self.pump_goodbyes(now);
            return;
        }
        self.settle_idle_restores(now);
        self.ensure_token(Slot::Primary, now);
        if !self.writes.is_empty() && self.write_slot() == Slot::App {
            self.ensure_token(Slot::App, now);
        }
        if now < self.gate_until {
            return;
        }
        if let Some(token) = self.primary.access_token(now).map(str::to_string) {
            self.pump_lookups(&token, now);
            self.pump_reads(&token, now);
            self.pump_directory(&token, now);
            self.pump_deletes(&token);
            self.pump_subs(&token, now);
        }
        if let Some(token) = self
            .client(self.write_slot())
            .and_then(|t| t.access_token(now))
            .map(str::to_string)
        {
            self.pump_writes(&token);
        }
    }

    /// While stopping: the subscription deletes, with a token refreshed
    /// first if need be (never a new interactive sign-in).
    fn pump_goodbyes(&mut self, now: u64) {
        if self.to_delete.is_empty() {
            return;
        }
        if self.silent_sign_in() {
            self.ensure_token(Slot::Primary, now);
        }
        if now < self.gate_until {
            return;
        }
        if let Some(token) = self.primary.access_token(now).map(str::to_string) {
            self.pump_deletes(&token);
        }
    }

    // ---- answers ---------------------------------------------------------------

    /// Graph answered (whatever it said): it is reachable and not
    /// throttling, and it took the token.
    fn graph_answered(&mut self, slot: Slot) {
        self.failures = 0;
        self.gate = None;
        self.rejected.remove(&slot);
        if let Some((ConnectorStatus::Forbidden, m)) = &self.auth_problem
            && m.starts_with("Graph rejects")
        {
            self.auth_problem = None;
        }
    }

    fn backoff(&mut self) -> u64 {
        self.failures = self.failures.saturating_add(1);
        (1000u64 << (self.failures - 1).min(6)).min(MAX_BACKOFF_MS)
    }

    fn close_gate(&mut self, gate: Gate, wait: u64, now: u64) {
        self.gate = Some(gate);
        self.gate_until = self.gate_until.max(now + wait);
        self.set_timer(TimerKey::Gate, self.gate_until - now);
    }

    fn throttled(&mut self, status: u16, wait: Option<u64>, now: u64) {
        let wait = match wait {
            Some(ms) => {
                self.failures = self.failures.saturating_add(1);
                ms.min(10 * 60_000)
            }
            None => self.backoff().max(2_000),
        };
        let detail = format!(
            "Graph is throttling (HTTP {status}); retrying in {} s as it asked",
            wait.div_ceil(1000)
        );
        self.log(Level::Warn, detail.clone());
        self.close_gate(Gate::Throttled(detail), wait, now);
    }

    fn unreachable(&mut self, msg: String, now: u64) {
        let wait = self.backoff();
        let detail = format!("Graph is unreachable: {msg}; retrying in {} s", wait / 1000);
        self.log(Level::Warn, detail.clone());
        self.close_gate(Gate::Unreachable(detail), wait, now);
    }

    /// Graph throttled or could not be reached: a hub write fails with
    /// `why`, any other work is done again after the back-off.
    fn retry_or_fail(&mut self, purpose: Purpose, why: WriteFailure) {
        match purpose {
            Purpose::Write(ep, p) => self.write_not_taken(ep, p, why),
            other => self.requeue(other),
        }
    }

    /// Put the work of a request that did not go through back into the wants.
    fn requeue(&mut self, purpose: Purpose) {
        match purpose {
            Purpose::Lookup(eps) => {
                for ep in eps {
                    self.lookup_again(ep);
                }
            }
            // The same batch again: merged with others it could take a
            // refused user back in.
            Purpose::Read(ids) => self.kept.push_back(ids),
            Purpose::CreateSub(local) => self.sub_phase(local, SubPhase::NeedCreate),
            Purpose::RenewSub(local) => self.sub_phase(local, SubPhase::NeedRenew),
            Purpose::Reauthorize(local) => self.sub_phase(local, SubPhase::NeedReauth),
            Purpose::DeleteSub(gid) => self.to_delete.push(gid),
            Purpose::Write(ep, p) => self.requeue_write(ep, p),
            Purpose::Directory(page) => self.directory_again(page),
            Purpose::OAuth(..) => {}
        }
    }

    fn on_graph(&mut self, purpose: Purpose, outcome: Outcome, now: u64) {
        match purpose {
            Purpose::Lookup(eps) => self.on_lookups(eps, outcome, now),
            Purpose::Read(ids) => {
                self.on_read(ids, outcome, now);
                self.flush_users();
            }
            Purpose::CreateSub(local) => self.on_sub_created(local, outcome, now),
            Purpose::RenewSub(local) => self.on_sub_renewed(local, outcome, now),
            Purpose::Reauthorize(local) => self.on_reauthorized(local, outcome, now),
            Purpose::DeleteSub(gid) => self.on_sub_deleted(gid, outcome),
            Purpose::Write(ep, p) => self.on_write(ep, p, outcome, now),
            Purpose::Directory(page) => self.on_directory(page, outcome, now),
            Purpose::OAuth(..) => {}
        }
    }

    fn permission(&self, class: OpClass) -> &'static str {
        match (class, self.s.flow.delegated()) {
            (OpClass::Users | OpClass::Directory, true) => "User.ReadBasic.All (delegated)",
            (OpClass::Users | OpClass::Directory, false) => "User.Read.All (application)",
            (OpClass::Read, true) => "Presence.Read.All (delegated)",
            (OpClass::Read, false) => "Presence.Read.All (application)",
            (OpClass::Write, _) if self.write_slot() == Slot::App || !self.s.flow.delegated() => {
                "Presence.ReadWrite.All (application)"
            }
            (OpClass::Write, _) => "Presence.ReadWrite (delegated, own presence only)",
        }
    }

    /// What to tell of Graph refusing a class of calls: the permission to
    /// grant.
    fn refusal_text(&self, class: OpClass, what: &str, msg: &str) -> String {
        format!(
            "Graph refused to {what} ({msg}): the app registration needs the permission {} with admin consent",
            self.permission(class)
        )
    }

    /// Record that Graph refuses a class of calls (the connector is
    /// `forbidden`); returns the text naming the permission to grant.
    fn forbid(&mut self, class: OpClass, what: &str, msg: &str) -> String {
        let text = self.refusal_text(class, what, msg);
        if self.forbidden.get(&class) != Some(&text) {
            self.log(Level::Warn, text.clone());
        }
        self.forbidden.insert(class, text.clone());
        text
    }

    // ---- webhooks --------------------------------------------------------------

    /// An inbound request on `/hooks/{instance}/...`.
    pub fn on_webhook(&mut self, hook: &Hook<'_>, now: u64) -> HookAnswer {
        let answer = if hook.path.starts_with("/auth/callback") {
            self.on_auth_callback(hook)
        } else if let Some(token) = urlcode::query_value(hook.query, "validationToken") {
            // The subscription validation handshake: echo the decoded token
            // as plain text within 10 s.
            HookAnswer::text(200, token)
        } else if hook.method.eq_ignore_ascii_case("POST") {
            self.on_notifications(hook.body, now)
        } else {
            HookAnswer::text(405, "POST change notifications here")
        };
        self.pump(now);
        self.update_status(now);
        answer
    }

    // ---- status ------------------------------------------------------------------

    fn summary(&self) -> String {
        let users = self.ids.len();
        let covered = self.ids.keys().filter(|id| self.covered(id)).count();
        let subs = self.subs.iter().filter(|s| s.live()).count();
        let polled = users - covered;
        let why = match (&self.sub_block, self.s.notifications_possible()) {
            (_, Err(why)) => why.to_string(),
            (Some((_, why)), Ok(_)) => why.clone(),
            (None, Ok(_)) => "subscriptions pending".to_string(),
        };
        let subs = if subs == 1 {
            "1 subscription".to_string()
        } else {
            format!("{subs} subscriptions")
        };
        let mut text = if polled == 0 && users > 0 {
            format!("{users} users by change notification ({subs})")
        } else if covered == 0 {
            format!(
                "polling {users} users every {} s: {why}",
                self.poll_interval() / 1000
            )
        } else {
            format!(
                "{covered} users by change notification ({subs}), {polled} by polling every {} s",
                self.poll_interval() / 1000
            )
        };
        let count = |state| {
            self.endpoints
                .values()
                .filter(|e| e.state == Some(state))
                .count()
        };
        let missing = count(EndpointState::NotFound);
        if missing > 0 {
            text.push_str(&format!("; {missing} not found"));
        }
        let refused = count(EndpointState::AccessDenied);
        if refused > 0 {
            text.push_str(&format!("; {refused} refused by Graph (access denied)"));
        }
        if let Some(n) = self.dir.last_count {
            text.push_str(&format!("; {n} users in the directory"));
        }
        text
    }

    fn desired_status(&self, now: u64) -> (ConnectorStatus, Option<String>) {
        if let Some((st, d)) = self.auth_problem.clone().or_else(|| self.sign_in_problem()) {
            return (st, Some(d));
        }
        let read_problem = self
            .forbidden
            .get(&OpClass::Read)
            .or_else(|| self.forbidden.get(&OpClass::Users));
        if let Some(m) = read_problem {
            return (ConnectorStatus::Forbidden, Some(m.clone()));
        }
        match &self.gate {
            Some(Gate::Throttled(d)) => return (ConnectorStatus::Throttled, Some(d.clone())),
            Some(Gate::Unreachable(d)) => {
                return (ConnectorStatus::ConnectionError, Some(d.clone()));
            }
            None => {}
        }
        // Presence still flows without these: shown, but after throttling.
        let other = self
            .forbidden
            .get(&OpClass::Write)
            .or_else(|| self.forbidden.get(&OpClass::Directory));
        if let Some(m) = other {
            return (ConnectorStatus::Forbidden, Some(m.clone()));
        }
        if self.primary.access_token(now).is_none() && self.primary.tokens().is_none() {
            return (
                ConnectorStatus::ConnectionError,
                Some("signing in to the Microsoft identity platform".into()),
            );
        }
        (ConnectorStatus::UpAndRunning, Some(self.summary()))
    }

    fn update_status(&mut self, now: u64) {
        let st = self.desired_status(now);
        if self.last_status.as_ref() != Some(&st) {
            self.last_status = Some(st.clone());
            self.out.push(Action::Status(st.0, st.1));
        }
    }
}

/// Sort a Graph answer by what to do with it.
fn classify(result: Result<Response, String>, now: u64) -> Outcome {
    let resp = match result {
        Ok(r) => r,
        Err(e) => return Outcome::Transient(None, e),
    };
    let text = || graph::graph_error_text(resp.status, &resp.body);
    match resp.status {
        200..=299 => Outcome::Ok(resp),
        401 => Outcome::Unauthorized(text()),
        403 => Outcome::Forbidden(text()),
        404 => Outcome::NotFound(text()),
        429 | 503 => {
            let wait = graph::retry_after_ms(&resp.headers, now);
            Outcome::Throttled(resp.status, wait)
        }
        500..=599 => Outcome::Transient(Some(resp.status), text()),
        _ => Outcome::Rejected(resp.status, text()),
    }
}

impl plain::Core for Core {
    type TimerKey = TimerKey;
    type RequestKey = ReqId;
    type SocketKey = ();

    /// Begin: clear an old login step, arm the poll and sign in.
    fn start(&mut self, now: u64) {
        self.out.push(Action::LoginStep(None));
        self.log(
            Level::Info,
            format!(
                "starting: {:?} sign-in, {}",
                self.s.flow,
                match self.s.notifications_possible() {
                    Ok(url) => format!("change notifications to {url}"),
                    Err(why) => format!("polling ({why})"),
                }
            ),
        );
        self.start_clients();
        self.arm_poll();
        if self.s.notifications_possible().is_ok() {
            self.arm_reread();
        }
        self.set_timer(TimerKey::Reconcile, 300);
        self.directory_due();
        self.pump(now);
        self.update_status(now);
    }

    /// Start watching endpoints (UPNs or object ids).
    fn watch(&mut self, endpoints: &[String], now: u64) {
        for ep in endpoints {
            if self.endpoints.contains_key(ep) {
                continue;
            }
            self.endpoints.insert(ep.clone(), Ep::default());
            self.endpoint_state(ep, EndpointState::Requesting, None);
            match self.id_of(ep) {
                Some(id) => self.bind(ep, &id),
                None => {
                    self.to_resolve.insert(ep.clone());
                }
            }
        }
        self.pump(now);
        self.update_status(now);
    }

    /// Stop watching endpoints.
    fn unwatch(&mut self, endpoints: &[String], now: u64) {
        for ep in endpoints {
            let Some(e) = self.endpoints.remove(ep) else {
                continue;
            };
            self.to_resolve.remove(ep);
            if let Some(id) = e.id
                && let Some(info) = self.ids.get_mut(&id)
            {
                info.endpoints.remove(ep);
                if info.endpoints.is_empty() {
                    self.ids.remove(&id);
                    self.to_read.remove(&id);
                    self.read_failed.remove(&id);
                    if self.canary.as_ref() == Some(&id) {
                        // Another refused user stands in for all.
                        self.canary = None;
                        self.set_timer(TimerKey::ReadRetry, 0);
                    }
                }
            }
        }
        self.schedule_reconcile();
        self.update_status(now);
    }

    /// A timer fired.
    fn on_timer(&mut self, key: TimerKey, now: u64) {
        self.timers.remove(&key);
        if self.stopping {
            // Only what the goodbyes need: a token and the end of a back-off.
            match key {
                TimerKey::OAuth(Slot::Primary, TimerKind::Renew) if self.silent_sign_in() => {
                    self.token_timer(Slot::Primary, TimerKind::Renew, now)
                }
                TimerKey::Gate => self.gate_until = 0,
                _ => return,
            }
            self.pump(now);
            return;
        }
        match key {
            TimerKey::OAuth(slot, kind) => self.token_timer(slot, kind, now),
            TimerKey::Gate => self.gate_until = 0,
            TimerKey::Poll => {
                self.poll_tick();
                self.arm_poll();
            }
            TimerKey::Reread => {
                self.reread_tick();
                self.arm_reread();
            }
            TimerKey::ReadSoon | TimerKey::LookupBudget => {}
            TimerKey::ReadRetry => self.refusals_due(now),
            TimerKey::LookupRetry => self.lookups_due(now),
            TimerKey::Renew(local) => self.renew_due(local, now),
            TimerKey::Reconcile => self.reconcile(now),
            TimerKey::Silent(local) => self.silence_due(local),
            TimerKey::KeepAlive(ep) => self.keep_alive_due(ep, now),
            TimerKey::WriteDeadline(ep) => self.write_overdue(ep, now),
            // The page waits for its time in `dir`; the pump below sends it.
            TimerKey::Directory => {}
        }
        self.pump(now);
        self.update_status(now);
    }

    /// An HTTP answer (or transport failure) arrived.
    fn on_http(&mut self, id: ReqId, result: Result<Response, String>, now: u64) {
        let Some(purpose) = self.inflight.remove(&id) else {
            return;
        };
        if self.stopping
            && !matches!(
                purpose,
                Purpose::OAuth(..) | Purpose::DeleteSub(_) | Purpose::CreateSub(_)
            )
        {
            // Nobody listens to presence any more.
            return;
        }
        match purpose {
            Purpose::OAuth(slot, kind) => self.on_oauth(slot, kind, result, now),
            graph => {
                let slot = match graph {
                    Purpose::Write(..) => self.write_slot(),
                    _ => Slot::Primary,
                };
                match classify(result, now) {
                    Outcome::Unauthorized(msg) => {
                        self.unauthorized(slot, &msg, now);
                        self.requeue(graph);
                    }
                    Outcome::Throttled(status, wait) => {
                        self.throttled(status, wait, now);
                        let why = format!("Graph is throttling (HTTP {status})");
                        self.retry_or_fail(graph, failure(why, true, wait, Some(status)));
                    }
                    Outcome::Transient(status, msg) => {
                        let why = format!("Graph failed or could not be reached: {msg}");
                        self.unreachable(msg, now);
                        self.retry_or_fail(graph, failure(why, true, None, status));
                    }
                    outcome => {
                        self.graph_answered(slot);
                        self.on_graph(graph, outcome, now);
                    }
                }
            }
        }
        self.pump(now);
        if !self.stopping {
            self.update_status(now);
        }
    }

    /// Graph's change notifications, their validation handshake, and the
    /// sign-in redirect.
    fn webhook(&mut self, request: WebhookRequest, now: u64) -> Response {
        let hook = Hook {
            method: &request.method,
            path: &request.path,
            query: &request.query,
            body: &request.body,
        };
        let answer = self.on_webhook(&hook, now);
        Response::new(answer.status, answer.content_type, answer.body)
    }

    fn write(&mut self, request: WriteRequest, now: u64) -> Result<(), ConnectorError> {
        self.write_presence(request, now)
    }

    /// The instance stops (deleted, disabled, the hub shutting down, a new
    /// configuration on the way): writes not yet answered fail, retryable,
    /// and its subscriptions are deleted, so Graph stops posting to a hook
    /// that is going away. The host keeps the instance's I/O flowing for a
    /// short grace period after this: the deletes are sent (after a token
    /// refresh if need be) and their answers still arrive.
    fn shutdown(&mut self, now: u64) {
        if self.stopping {
            return;
        }
        self.abandon_writes();
        self.stopping = true;
        self.to_read.clear();
        self.kept.clear();
        self.to_resolve.clear();
        let ended = self.end_subscriptions();
        self.log(
            Level::Info,
            format!("stopping; deleting {ended} subscription(s)"),
        );
        self.pump(now);
    }

    /// A new configuration replaces this one inside the same instance, with
    /// no grace period: writes not yet answered fail, retryable, and the
    /// subscriptions are left for the new configuration to adopt.
    fn make_way(&mut self, _: u64) {
        self.log(Level::Info, "making way for a new configuration");
        self.abandon_writes();
        self.stopping = true;
    }

    /// Actions produced since the last call.
    fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.out)
    }
}
