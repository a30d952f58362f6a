//! The connector's engine, free of I/O: it takes WebSocket frames, closes,
//! wake-ups and the hub's commands through its [`plain::Core`] hooks, and
//! returns [`Action`]s, which the SDK's [`plain::Plain`] adapter carries
//! out through the host.
//!
//! One WebSocket connection to the bridge at a time (PROTOCOL.md section
//! 3): upgrade with the derived bearer, `hello` → `welcome` (version and the
//! bridge's proof checked) → `setup` (the configured endpoint) → `watch`
//! batches → `presence` pushes; `publish` / `restore` for writes; `ping` /
//! `pong` both ways. Every deadline the engine keeps (reconnect, heartbeat,
//! answers, write expiries) is one wake-up time, one timer for the SDK.

mod session;
mod targets;
#[cfg(test)]
mod tests;
mod writes;

use std::collections::{BTreeMap, BTreeSet};

use presence_connector_sdk::backoff::Backoff;
use presence_connector_sdk::plain::{self, CoreAction};
use presence_connector_sdk::{
    ConnectorStatus, EndpointState, PresenceUpdate, WriteId, WriteOutcome, WsOptions,
};

use crate::settings::Settings;

use session::Session;
pub use session::{HEARTBEAT_MS, hub_credential};
use targets::Target;
pub use writes::Held;
use writes::WriteSlot;

/// Key-value keys.
pub mod keys {
    /// Prefix of each target's write in force (`held/{target}`): what the
    /// hub published and when it lapses, so an expiry survives a restart.
    pub const HELD_PREFIX: &str = "held/";
}

/// Log levels of [`Action::Log`].
pub use presence_connector_sdk::plain::Level;

/// What the core wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Open WebSocket number `conn` to `url` with these upgrade headers.
    Connect {
        conn: u64,
        url: String,
        headers: Vec<(String, String)>,
    },
    Send(u64, String),
    Close(u64, u16, String),
    /// Wake the core this many milliseconds from now (replaces the last
    /// wake-up asked for).
    Wake(u64),
    KvSet(String, Vec<u8>),
    KvDelete(String),
    Presence(Box<PresenceUpdate>),
    EndpointState(String, EndpointState, Option<String>),
    Status(ConnectorStatus, Option<String>),
    WriteOutcome(WriteId, WriteOutcome),
    Log(Level, String),
}

/// Random bytes from the host's cryptographic generator.
pub type Entropy = Box<dyn FnMut(u32) -> Vec<u8>>;

/// What a request of the hub is waiting for.
#[derive(Debug, Clone)]
enum Req {
    Setup,
    /// A watch batch and when it is overdue.
    Watch(Vec<String>, u64),
    Unwatch,
    /// A publish or restore for this target.
    Write(String),
}

/// The engine.
pub struct Core {
    s: Settings,
    /// The bearer of the upgrade (derived from the token; section 1).
    credential: String,
    entropy: Entropy,
    out: Vec<Action>,
    next_conn: u64,
    next_req: u64,
    sess: Option<Session>,
    reconnect_at: Option<u64>,
    backoff: Backoff,
    /// The last problem with the bridge or the endpoint, until the endpoint
    /// is established again.
    problem: Option<(ConnectorStatus, String)>,
    /// Watched targets (`sip:` URIs) and the hub's endpoint ids for each.
    targets: BTreeMap<String, Target>,
    requests: BTreeMap<String, Req>,
    to_unwatch: BTreeSet<String>,
    writes: BTreeMap<String, WriteSlot>,
    /// The hub's publications in force, per target.
    held: BTreeMap<String, Held>,
    /// When the connection to the bridge was lost (cleared once live).
    down_since: Option<u64>,
    /// Whether the targets were shown unknown for the current outage.
    stale_shown: bool,
    wake_at: Option<u64>,
    last_status: Option<(ConnectorStatus, Option<String>)>,
    stopping: bool,
}

/// A connection down this long shows the watched targets as unknown.
pub const DOWN_GRACE_MS: u64 = 30_000;

impl Core {
    /// A core for `s`, with the writes in force the key-value store held
    /// (`(target, bytes)` from `held/{target}`).
    pub fn new(s: Settings, held: Vec<(String, Vec<u8>)>, entropy: Entropy) -> Core {
        let held = held
            .into_iter()
            .filter_map(|(t, b)| Some((t, serde_json::from_slice::<Held>(&b).ok()?)))
            .collect();
        Core {
            credential: hub_credential(&s.bridge_token),
            entropy,
            out: Vec::new(),
            next_conn: 1,
            next_req: 1,
            sess: None,
            reconnect_at: None,
            backoff: Backoff::new(1_000, 60_000),
            problem: None,
            targets: BTreeMap::new(),
            requests: BTreeMap::new(),
            to_unwatch: BTreeSet::new(),
            writes: BTreeMap::new(),
            held,
            down_since: None,
            stale_shown: false,
            wake_at: None,
            last_status: None,
            stopping: false,
            s,
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.s
    }

    /// Actions produced since the last call.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.out)
    }

    // ---- small helpers -------------------------------------------------

    fn random_hex(&mut self, len: u32) -> String {
        crate::wire::hex(&(self.entropy)(len))
    }

    fn random_u32(&mut self) -> u32 {
        (self.entropy)(4)
            .iter()
            .fold(0u32, |acc, x| (acc << 8) | u32::from(*x))
    }

    fn log(&mut self, level: Level, msg: impl Into<String>) {
        self.out.push(Action::Log(level, msg.into()));
    }

    fn request_id(&mut self, prefix: &str) -> String {
        let id = format!("{prefix}-{}", self.next_req);
        self.next_req += 1;
        id
    }

    /// Send on the current connection.
    fn send(&mut self, text: String) {
        if let Some(s) = &self.sess {
            self.out.push(Action::Send(s.conn, text));
        }
    }

    fn live(&self) -> bool {
        self.sess.as_ref().is_some_and(Session::live)
    }

    // ---- entry points ----------------------------------------------------

    /// The instance stops (`hub-stopping`) or is configured anew
    /// (`reconfigured`): say goodbye, answer every write still open.
    pub fn leave(&mut self, reason: &str, now: u64) {
        if self.stopping {
            return;
        }
        if let Some(s) = self.sess.take() {
            if s.negotiated() {
                self.out
                    .push(Action::Send(s.conn, crate::wire::bye(reason)));
            }
            self.out.push(Action::Close(s.conn, 1000, reason.into()));
        }
        self.fail_open_writes("the connector is stopping", now);
        self.stopping = true;
        self.wake_at = None;
    }

    /// After every entry point: send what may go, report the status, and
    /// ask for the next wake-up.
    fn finish(&mut self, now: u64) {
        if self.stopping {
            return;
        }
        if self.live() {
            self.pump_watches(now);
            self.pump_writes(now);
        }
        self.update_status(now);
        let next = [
            self.session_deadline(),
            self.targets_deadline(),
            self.writes_deadline(),
        ]
        .into_iter()
        .flatten()
        .min();
        if let Some(at) = next
            && self.wake_at != Some(at)
        {
            self.wake_at = Some(at);
            self.out.push(Action::Wake(at.saturating_sub(now).max(1)));
        }
    }

    // ---- status ----------------------------------------------------------

    fn summary(&self) -> String {
        let mut count: BTreeMap<&'static str, usize> = BTreeMap::new();
        for t in self.targets.values() {
            *count.entry(t.summary_word()).or_default() += 1;
        }
        let mut text = format!(
            "{} target{} watched",
            self.targets.len(),
            if self.targets.len() == 1 { "" } else { "s" }
        );
        for (word, n) in count {
            if !word.is_empty() {
                text.push_str(&format!(", {n} {word}"));
            }
        }
        text
    }

    fn desired_status(&self, now: u64) -> (ConnectorStatus, Option<String>) {
        if let Some((st, why)) = &self.problem {
            return (*st, Some(format!("offline: {why}")));
        }
        match &self.sess {
            Some(s) if s.live() => (
                ConnectorStatus::UpAndRunning,
                Some(format!(
                    "connected: {}; {}",
                    s.describe(&self.s),
                    self.summary()
                )),
            ),
            _ => {
                let since = self
                    .down_since
                    .map(|t| format!(" (down for {} s)", now.saturating_sub(t) / 1000))
                    .unwrap_or_default();
                (
                    ConnectorStatus::ConnectionError,
                    Some(format!(
                        "offline: connecting to the bridge at {}{since}",
                        self.s.bridge_url
                    )),
                )
            }
        }
    }

    fn update_status(&mut self, now: u64) {
        let st = self.desired_status(now);
        // The outage time alone is no reason to report again.
        let same = |a: &(ConnectorStatus, Option<String>),
                    b: &(ConnectorStatus, Option<String>)| {
            a.0 == b.0
                && a.1.as_deref().map(|t| t.split(" (down for").next())
                    == b.1.as_deref().map(|t| t.split(" (down for").next())
        };
        if self.last_status.as_ref().is_none_or(|l| !same(l, &st)) {
            self.last_status = Some(st.clone());
            self.out.push(Action::Status(st.0, st.1));
        }
    }
}

impl From<Action> for CoreAction<Core> {
    fn from(action: Action) -> Self {
        match action {
            Action::Connect { conn, url, headers } => {
                // The protocol's own ping/pong does the heartbeat.
                let options = headers
                    .into_iter()
                    .fold(WsOptions::default(), |o, (name, value)| {
                        o.header(name, value)
                    })
                    .connect_timeout_ms(15_000);
                plain::Action::WsConnect(conn, url, options)
            }
            Action::Send(conn, text) => plain::Action::WsSend(conn, text),
            Action::Close(conn, code, reason) => plain::Action::WsClose(conn, code, reason),
            // The core keeps every deadline as one wake-up time.
            Action::Wake(ms) => plain::Action::SetTimer((), ms),
            Action::KvSet(key, value) => plain::Action::KvSet(key, value),
            Action::KvDelete(key) => plain::Action::KvDelete(key),
            Action::Presence(update) => plain::Action::Presence(*update),
            Action::EndpointState(ep, state, detail) => {
                plain::Action::EndpointState(ep, state, detail)
            }
            Action::Status(status, detail) => plain::Action::Status(status, detail),
            Action::WriteOutcome(id, outcome) => plain::Action::WriteOutcome(id, outcome),
            Action::Log(level, message) => plain::Action::Log(level, message),
        }
    }
}
