//! The connection to the bridge: upgrade, `hello`/`welcome` (version
//! negotiation, the bridge's proof), `setup`, heartbeats, errors, closes and
//! reconnects (PROTOCOL.md sections 1–5 and 8–10).

use hmac::{Hmac, Mac};
use presence_connector_sdk::plain::{self, CoreAction};
use presence_connector_sdk::{
    CloseInfo, ConnectorError, ConnectorStatus, Failure, WriteRequest, render_failure,
};
use sha2::Sha256;

use super::{Action, Core, Level, Req};
use crate::settings::{EndpointType, Settings};
use crate::wire::{self, BridgeMsg, ParseError};

/// The heartbeat interval both sides use (the protocol's hub default).
pub const HEARTBEAT_MS: u64 = 15_000;
/// `welcome` after `hello` (5 s by the protocol; some slack for the host).
const WELCOME_MS: u64 = 10_000;
/// `setup-result` after `setup` (60 s by the protocol, plus slack).
const SETUP_MS: u64 = 65_000;
/// After a refusal that a retry does not fix soon (token, proof, version,
/// credentials, certificate): try again this much later.
const SLOW_RETRY_MS: u64 = 5 * 60_000;
/// The back-off starts from the beginning once a connection has stayed
/// established this long.
const STABLE_MS: u64 = 60_000;

/// The bearer of the upgrade: lower-case hex HMAC-SHA256(token,
/// "ucma-bridge-hub").
pub fn hub_credential(token: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(token.as_bytes()).expect("any key length");
    mac.update(b"ucma-bridge-hub");
    wire::hex(&mac.finalize().into_bytes())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Upgrade under way.
    Connecting,
    /// `hello` sent, waiting for `welcome`.
    Hello,
    /// Negotiated; `setup` sent, or waiting to send it again.
    Setup,
    /// The endpoint is established.
    Live,
}

/// What `publish` can do on the established endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Any,
    OwnUri,
    Nothing,
}

/// One connection to the bridge.
#[derive(Debug)]
pub struct Session {
    pub conn: u64,
    phase: Phase,
    hub_nonce: String,
    /// The ordering epoch of this connection's pushes.
    pub epoch: String,
    bridge: String,
    pub max_batch: usize,
    pub scope: Scope,
    pub endpoint_uri: Option<String>,
    hello_deadline: Option<u64>,
    setup_deadline: Option<u64>,
    setup_retry_at: Option<u64>,
    next_ping: Option<u64>,
    /// The ping waiting for its pong, and when it is overdue.
    pong_wait: Option<(String, u64)>,
    last_rx: u64,
    established_at: Option<u64>,
    /// The bridge lost the endpoint and is re-establishing it.
    pub endpoint_lost: bool,
    /// Why the bridge said goodbye.
    bye: Option<String>,
    /// A refusal was met: the next connect waits [`SLOW_RETRY_MS`].
    slow: bool,
    /// The bridge named why it ends the connection (a fatal `error`): the
    /// close that follows keeps that problem.
    named: bool,
}

impl Session {
    pub fn live(&self) -> bool {
        self.phase == Phase::Live && !self.endpoint_lost
    }

    /// Whether `hello`/`welcome` went through (a `bye` makes sense).
    pub fn negotiated(&self) -> bool {
        matches!(self.phase, Phase::Setup | Phase::Live)
    }

    pub fn describe(&self, s: &Settings) -> String {
        let writes = match self.scope {
            Scope::Any => "writes for any user",
            Scope::OwnUri => "writes for its own URI only",
            Scope::Nothing => "no writes (the bridge does not publish)",
        };
        format!(
            "bridge {} at {}, endpoint {} on {}:{}; {writes}",
            if self.bridge.is_empty() {
                "(unnamed)"
            } else {
                &self.bridge
            },
            s.bridge_url,
            self.endpoint_uri.as_deref().unwrap_or("?"),
            s.server_fqdn,
            s.server_port,
        )
    }
}

/// What a setup failure code means to operators (section 5's table):
/// status, words, and whether retrying soon can help.
fn setup_failure(code: &str) -> (ConnectorStatus, &'static str, bool) {
    match code {
        "forbidden" => (
            ConnectorStatus::Forbidden,
            "the Front End refused the endpoint's credentials (check user name, password and domain, or the trusted application's provisioning)",
            false,
        ),
        "not-found" => (
            ConnectorStatus::Forbidden,
            "not found: the endpoint's own URI is unknown to the pool (user not enabled for Lync / SfB, or the contact object is missing)",
            false,
        ),
        "certificate-error" => (
            ConnectorStatus::ConnectionError,
            "certificate problem on the bridge's side (the certificate named by its friendly name, or the Front End's certificate)",
            false,
        ),
        "invalid-setup" => (
            ConnectorStatus::NotConfigured,
            "configuration error: the bridge cannot use these endpoint settings",
            false,
        ),
        "connection-error" => (
            ConnectorStatus::ConnectionError,
            "the bridge cannot reach the Front End pool",
            true,
        ),
        "timeout" => (
            ConnectorStatus::ConnectionError,
            "establishing the endpoint timed out",
            true,
        ),
        _ => (
            ConnectorStatus::ConnectionError,
            "the bridge failed to establish the endpoint",
            true,
        ),
    }
}

impl Core {
    /// The next reconnect delay: the back-off's ceiling with ±20 % jitter
    /// (section 10), counting a failure.
    fn reconnect_delay(&mut self) -> u64 {
        let ceiling = self.backoff.ceiling();
        let r = self.random_u32();
        self.backoff.next_delay(r);
        let spread = ceiling * 2 / 5;
        let low = ceiling - ceiling / 5;
        low + if spread == 0 {
            0
        } else {
            u64::from(r) % (spread + 1)
        }
    }

    pub(super) fn connect(&mut self, now: u64) {
        self.reconnect_at = None;
        let conn = self.next_conn;
        self.next_conn += 1;
        let nonce = self.random_hex(32);
        self.sess = Some(Session {
            conn,
            phase: Phase::Connecting,
            epoch: format!("ucma/{}", &nonce[..16]),
            hub_nonce: nonce,
            bridge: String::new(),
            max_batch: self.s.batch_size,
            scope: Scope::Nothing,
            endpoint_uri: None,
            hello_deadline: None,
            setup_deadline: None,
            setup_retry_at: None,
            next_ping: None,
            pong_wait: None,
            last_rx: now,
            established_at: None,
            endpoint_lost: false,
            bye: None,
            slow: false,
            named: false,
        });
        self.out.push(Action::Connect {
            conn,
            url: self.s.bridge_url.clone(),
            headers: vec![(
                "Authorization".into(),
                format!("Bearer {}", self.credential),
            )],
        });
    }

    fn current(&self, conn: u64) -> bool {
        self.sess.as_ref().is_some_and(|s| s.conn == conn)
    }

    /// A broken protocol: `error` `bad-message` (fatal), close 4003,
    /// reconnect with back-off.
    fn protocol_error(&mut self, what: &str, now: u64) {
        self.log(
            Level::Warn,
            format!("the bridge sent {what}: closing (4003)"),
        );
        self.send(wire::error("bad-message", what, None, true));
        self.drop_session(4003, "protocol error", now);
        self.problem = Some((
            ConnectorStatus::ConnectionError,
            format!("the bridge broke the protocol ({what}); reconnecting"),
        ));
    }

    fn dispatch(&mut self, msg: BridgeMsg, now: u64) {
        match msg {
            BridgeMsg::Welcome {
                version,
                nonce,
                proof,
                bridge,
                max_batch,
            } => self.on_welcome(version, &nonce, &proof, bridge, max_batch, now),
            BridgeMsg::SetupResult {
                request_id,
                outcome,
                endpoint_uri,
                publish,
                code,
                retryable,
                detail,
                sip_response_code,
            } => {
                if !matches!(self.requests.remove(&request_id), Some(Req::Setup)) {
                    self.log(
                        Level::Warn,
                        format!("setup-result for unknown request {request_id}"),
                    );
                    return;
                }
                if outcome == "established" {
                    self.on_established(endpoint_uri, publish.as_deref(), now);
                } else {
                    let mut detail = detail.unwrap_or_default();
                    if let Some(c) = sip_response_code {
                        detail.push_str(&format!(" (SIP {c})"));
                    }
                    self.on_setup_failed(
                        code.as_deref().unwrap_or("internal-error"),
                        retryable,
                        &detail,
                        now,
                    );
                }
            }
            BridgeMsg::WatchResult {
                request_id,
                results,
            } => self.on_watch_result(&request_id, results, now),
            BridgeMsg::UnwatchResult {
                request_id,
                results,
            } => {
                self.requests.remove(&request_id);
                let gone = results.iter().filter(|r| r.status == "not-watched").count();
                if gone > 0 {
                    self.log(
                        Level::Debug,
                        format!("unwatch {request_id}: {gone} target(s) were not watched"),
                    );
                }
            }
            BridgeMsg::Presence(p) => self.on_presence(p, now),
            BridgeMsg::TargetState {
                target,
                status,
                mode,
                detail,
            } => self.on_target_state(&target, &status, mode, detail, now),
            BridgeMsg::EndpointState {
                state,
                code,
                retry_in_ms,
                detail,
            } => self.on_endpoint_state(&state, code.as_deref(), retry_in_ms, detail, now),
            BridgeMsg::PublishResult {
                request_id,
                target,
                op,
                outcome,
                code,
                retryable,
                reason,
            } => self.on_publish_result(
                &request_id,
                &target,
                &op,
                &outcome,
                code.as_deref(),
                retryable,
                reason,
                now,
            ),
            BridgeMsg::Ping { request_id } => self.send(wire::pong(&request_id)),
            BridgeMsg::Pong { request_id } => {
                if let Some(s) = self.sess.as_mut()
                    && s.pong_wait
                        .as_ref()
                        .is_some_and(|(id, _)| *id == request_id)
                {
                    s.pong_wait = None;
                }
            }
            BridgeMsg::Bye { reason, detail } => {
                self.log(
                    Level::Info,
                    format!(
                        "the bridge says goodbye: {reason}{}",
                        detail.map(|d| format!(" ({d})")).unwrap_or_default()
                    ),
                );
                if let Some(s) = self.sess.as_mut() {
                    s.bye = Some(reason);
                }
            }
            BridgeMsg::Error {
                code,
                detail,
                request_id,
                fatal,
                supported,
            } => self.on_error(
                &code,
                detail.unwrap_or_default(),
                request_id,
                fatal,
                supported,
                now,
            ),
        }
    }

    fn on_welcome(
        &mut self,
        version: u32,
        nonce: &str,
        proof: &str,
        bridge: String,
        max_batch: usize,
        now: u64,
    ) {
        let Some(s) = self.sess.as_ref() else { return };
        if s.phase != Phase::Hello {
            self.protocol_error("a second welcome", now);
            return;
        }
        if !wire::VERSIONS.contains(&version) {
            self.protocol_error(&format!("welcome with version {version}, not offered"), now);
            return;
        }
        let expected = wire::proof(&self.s.bridge_token, &s.hub_nonce, nonce, version);
        if !wire::same(&expected, proof) {
            self.log(
                Level::Error,
                "the bridge's proof is wrong: it does not hold the same token (or is not the bridge); closing (4001)",
            );
            self.send(wire::error(
                "auth-failed",
                "the welcome's proof does not match the token",
                None,
                true,
            ));
            self.drop_session(4001, "auth-failed", now);
            self.problem = Some((
                ConnectorStatus::Forbidden,
                format!(
                    "bridge authentication failed: the service at {} could not prove it holds the bridge token (a different token on the bridge, or not the bridge); retrying in 5 min",
                    self.s.bridge_url
                ),
            ));
            self.reconnect_at = Some(now + SLOW_RETRY_MS);
            return;
        }
        let batch = self.s.batch_size.min(max_batch.max(1));
        self.log(
            Level::Info,
            format!(
                "connected to {bridge} (protocol version {version}, {batch} targets per watch)"
            ),
        );
        let Some(s) = self.sess.as_mut() else { return };
        s.phase = Phase::Setup;
        s.hello_deadline = None;
        s.bridge = bridge;
        s.max_batch = batch;
        s.next_ping = Some(now + HEARTBEAT_MS);
        self.send_setup(now);
    }

    fn send_setup(&mut self, now: u64) {
        let id = self.request_id("setup");
        self.requests.insert(id.clone(), Req::Setup);
        let text = wire::setup(&id, &self.s);
        if let Some(s) = self.sess.as_mut() {
            s.setup_deadline = Some(now + SETUP_MS);
            s.setup_retry_at = None;
        }
        self.send(text);
    }

    fn on_established(&mut self, uri: Option<String>, publish: Option<&str>, now: u64) {
        let Some(s) = self.sess.as_mut() else { return };
        s.phase = Phase::Live;
        s.setup_deadline = None;
        s.established_at = Some(now);
        s.endpoint_lost = false;
        s.endpoint_uri = uri;
        s.scope = match publish {
            Some("any") => Scope::Any,
            Some("self") => Scope::OwnUri,
            _ => Scope::Nothing,
        };
        let text = s.describe(&self.s);
        self.log(Level::Info, format!("endpoint established: {text}"));
        self.problem = None;
        self.down_since = None;
        self.stale_shown = false;
        self.rewatch_all();
    }

    fn on_setup_failed(&mut self, code: &str, retryable: Option<bool>, detail: &str, now: u64) {
        let (status, words, soon) = setup_failure(code);
        let soon = retryable.unwrap_or(soon) && soon;
        let wait = if soon {
            self.reconnect_delay()
        } else {
            SLOW_RETRY_MS
        };
        let why = format!(
            "{words} [{code}]: {detail}; trying again in {} s",
            wait.div_ceil(1000)
        );
        self.log(Level::Warn, format!("setup failed: {why}"));
        self.problem = Some((status, why));
        if let Some(s) = self.sess.as_mut() {
            s.phase = Phase::Setup;
            s.setup_deadline = None;
            s.setup_retry_at = Some(now + wait);
        }
    }

    fn on_endpoint_state(
        &mut self,
        state: &str,
        code: Option<&str>,
        retry_in_ms: Option<u64>,
        detail: Option<String>,
        now: u64,
    ) {
        let detail = detail.unwrap_or_default();
        match state {
            "lost" => {
                let retry = retry_in_ms
                    .map(|ms| format!("; the bridge tries again in {} s", ms.div_ceil(1000)))
                    .unwrap_or_default();
                let why = format!(
                    "the bridge lost the Lync / SfB endpoint [{}]: {detail}{retry}",
                    code.unwrap_or("connection-error")
                );
                self.log(Level::Warn, why.clone());
                self.problem = Some((ConnectorStatus::ConnectionError, why));
                if let Some(s) = self.sess.as_mut() {
                    s.endpoint_lost = true;
                }
                self.show_unknown("the bridge lost the endpoint");
            }
            "established" => {
                self.log(Level::Info, format!("endpoint re-established: {detail}"));
                if let Some(s) = self.sess.as_mut() {
                    s.endpoint_lost = false;
                    s.phase = Phase::Live;
                }
                self.problem = None;
                self.stale_shown = false;
            }
            _ => {
                // failed: back to negotiated, watches gone.
                self.show_unknown("the bridge gave the endpoint up");
                self.targets_lost();
                if let Some(s) = self.sess.as_mut() {
                    s.endpoint_lost = false;
                }
                self.on_setup_failed(code.unwrap_or("internal-error"), None, &detail, now);
            }
        }
    }

    fn on_error(
        &mut self,
        code: &str,
        detail: String,
        request_id: Option<String>,
        fatal: bool,
        supported: Option<Vec<u32>>,
        now: u64,
    ) {
        self.log(
            if fatal { Level::Warn } else { Level::Debug },
            format!("the bridge reports error {code}: {detail}"),
        );
        if code == "version-unsupported" {
            let theirs = supported
                .unwrap_or_default()
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            self.problem = Some((
                ConnectorStatus::ConnectionError,
                format!(
                    "protocol version mismatch: the bridge speaks version(s) {theirs}, this connector speaks {}; retrying in 5 min",
                    wire::VERSIONS.map(|v| v.to_string()).join(", ")
                ),
            ));
            if let Some(s) = self.sess.as_mut() {
                s.slow = true;
                s.named = true;
            }
        } else if fatal {
            self.problem = Some((
                ConnectorStatus::ConnectionError,
                format!("the bridge ended the connection: {code}: {detail}"),
            ));
            if let Some(s) = self.sess.as_mut() {
                s.named = true;
            }
        }
        if let Some(id) = request_id {
            self.bad_answer(Some(&id), &format!("{code}: {detail}"), now);
        }
    }

    /// A request the bridge answered with an error instead of its answer.
    fn bad_answer(&mut self, id: Option<&str>, why: &str, now: u64) {
        let Some(req) = id.and_then(|id| self.requests.remove(id)) else {
            return;
        };
        match req {
            Req::Setup => self.on_setup_failed("internal-error", Some(true), why, now),
            Req::Watch(batch, _) => self.watch_failed(batch, why, now),
            Req::Unwatch => {}
            Req::Write(target) => self.write_failed(&target, why, true, now),
        }
    }

    /// Close the current connection on the hub's initiative and reconnect
    /// with back-off.
    pub(super) fn drop_session(&mut self, code: u16, reason: &str, now: u64) {
        if let Some(s) = &self.sess {
            self.out.push(Action::Close(s.conn, code, reason.into()));
        }
        self.session_ended(now);
        let wait = self.reconnect_delay();
        self.reconnect_at = Some(now + wait);
    }

    /// What ends with a connection: its requests, the watches, open writes.
    fn session_ended(&mut self, now: u64) {
        self.sess = None;
        if self.down_since.is_none() {
            self.down_since = Some(now);
        }
        self.requests.clear();
        self.to_unwatch.clear();
        self.targets_lost();
        self.writes_lost(now);
    }

    /// What is due on the connection.
    pub(super) fn session_due(&mut self, now: u64) {
        if self.reconnect_at.is_some_and(|t| t <= now) && self.sess.is_none() {
            self.connect(now);
            return;
        }
        let Some(s) = self.sess.as_mut() else { return };
        if s.established_at.is_some_and(|t| t + STABLE_MS <= now) {
            s.established_at = None;
            self.backoff.reset();
        }
        let Some(s) = self.sess.as_mut() else { return };
        if s.hello_deadline.is_some_and(|t| t <= now) {
            self.log(Level::Warn, "no welcome from the bridge within 10 s");
            self.problem = Some((
                ConnectorStatus::ConnectionError,
                "the bridge did not answer the hello".into(),
            ));
            self.drop_session(4003, "no welcome", now);
            return;
        }
        if s.setup_deadline.is_some_and(|t| t <= now) {
            self.log(Level::Warn, "no setup-result from the bridge within 65 s");
            self.problem = Some((
                ConnectorStatus::ConnectionError,
                "the bridge did not answer the setup within 65 s".into(),
            ));
            self.drop_session(4003, "no setup-result", now);
            return;
        }
        // (While connecting, the host's connect timeout is the limit.)
        let silent =
            s.phase != Phase::Connecting && now.saturating_sub(s.last_rx) >= 3 * HEARTBEAT_MS;
        if silent || s.pong_wait.as_ref().is_some_and(|(_, t)| *t <= now) {
            self.log(
                Level::Warn,
                "heartbeat timeout: the bridge stopped answering; closing (4004)",
            );
            self.problem = Some((
                ConnectorStatus::ConnectionError,
                "heartbeat timeout: the bridge stopped answering".into(),
            ));
            self.drop_session(4004, "heartbeat timeout", now);
            return;
        }
        if s.setup_retry_at.is_some_and(|t| t <= now) {
            self.send_setup(now);
        }
        let Some(s) = self.sess.as_mut() else { return };
        if let Some(at) = s.next_ping
            && at <= now
        {
            s.next_ping = Some(now + HEARTBEAT_MS);
            let id = format!("hb-{}", self.next_req);
            self.next_req += 1;
            let Some(s) = self.sess.as_mut() else { return };
            if s.pong_wait.is_none() {
                s.pong_wait = Some((id.clone(), now + HEARTBEAT_MS));
            }
            self.send(wire::ping(&id));
        }
    }

    pub(super) fn session_deadline(&self) -> Option<u64> {
        let Some(s) = &self.sess else {
            return self.reconnect_at;
        };
        let silence = (s.phase != Phase::Connecting).then_some(s.last_rx + 3 * HEARTBEAT_MS);
        [
            s.hello_deadline,
            s.setup_deadline,
            s.setup_retry_at,
            s.next_ping,
            s.pong_wait.as_ref().map(|(_, t)| *t),
            s.established_at.map(|t| t + STABLE_MS),
            silence,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// The operator's words for the endpoint type (statuses, README).
pub fn endpoint_words(t: EndpointType) -> &'static str {
    match t {
        EndpointType::UserWithoutTls => "user endpoint without TLS",
        EndpointType::UserWithTls => "user endpoint with TLS",
        EndpointType::TrustedApplication => "trusted application endpoint",
    }
}

/// The core's hooks: the session's own events here, watches in
/// `targets.rs`, writes in `writes.rs`.
impl plain::Core for Core {
    /// The core's one wake-up.
    type TimerKey = ();
    type RequestKey = ();
    /// The core's connection number.
    type SocketKey = u64;

    /// The core's own [`Action`]s, as the SDK carries them out.
    fn take_actions(&mut self) -> Vec<CoreAction<Self>> {
        std::mem::take(&mut self.out)
            .into_iter()
            .map(Into::into)
            .collect()
    }

    /// Begin: connect to the bridge.
    fn start(&mut self, now: u64) {
        let ty = endpoint_words(self.s.endpoint_type);
        self.log(
            Level::Info,
            format!(
                "starting: bridge {}, {ty} on {}:{}",
                self.s.bridge_url, self.s.server_fqdn, self.s.server_port
            ),
        );
        if !self.held.is_empty() {
            self.log(
                Level::Info,
                format!(
                    "{} write(s) of the hub in force from before the restart",
                    self.held.len()
                ),
            );
        }
        // Writes that lapsed while the connector was down are restored
        // once the bridge is there.
        self.writes_due(now);
        self.connect(now);
        self.finish(now);
    }

    /// The wake-up time came (or any time: only what is due happens).
    fn on_timer(&mut self, (): (), now: u64) {
        self.wake_at = None;
        self.session_due(now);
        self.targets_due(now);
        self.writes_due(now);
        self.finish(now);
    }

    /// The WebSocket is open: say hello.
    fn on_ws_open(&mut self, conn: u64, now: u64) {
        if !self.current(conn) {
            return;
        }
        let Some(s) = self.sess.as_mut() else { return };
        s.phase = Phase::Hello;
        s.last_rx = now;
        s.hello_deadline = Some(now + WELCOME_MS);
        let hello = wire::hello(&s.hub_nonce, HEARTBEAT_MS);
        self.send(hello);
        self.finish(now);
    }

    /// A text message from the bridge.
    fn on_ws_text(&mut self, conn: u64, text: &str, now: u64) {
        if !self.current(conn) || self.stopping {
            return;
        }
        if let Some(s) = self.sess.as_mut() {
            s.last_rx = now;
        }
        match wire::parse(text) {
            Ok((v, msg)) => {
                let negotiated = self.sess.as_ref().is_some_and(Session::negotiated);
                if negotiated && !wire::VERSIONS.contains(&v) || !negotiated && v != 1 {
                    self.protocol_error(&format!("a message with v {v}"), now);
                } else {
                    self.dispatch(msg, now);
                }
            }
            Err(ParseError::UnknownType(t)) => {
                self.log(
                    Level::Warn,
                    format!("the bridge sent an unknown type {t:?}"),
                );
                self.send(wire::error(
                    "unknown-type",
                    &format!("type {t:?} is not part of version 1"),
                    None,
                    false,
                ));
            }
            Err(ParseError::Version(v)) => {
                self.protocol_error(&format!("a message with v {v}"), now)
            }
            Err(ParseError::Bad(why)) => {
                let object = serde_json::from_str::<serde_json::Value>(text)
                    .ok()
                    .filter(|v| v.get("type").is_some() && v.get("v").is_some());
                match object {
                    // A known type with fields that do not fit: said, not fatal.
                    Some(v) => {
                        self.log(Level::Warn, format!("the bridge sent a bad message: {why}"));
                        let id = v.get("request_id").and_then(|i| i.as_str());
                        self.send(wire::error("bad-message", &why, id, false));
                        self.bad_answer(id, &why, now);
                    }
                    None => self.protocol_error(&format!("a message that is not one: {why}"), now),
                }
            }
        }
        self.finish(now);
    }

    /// A binary frame: a protocol error (section 1).
    fn on_ws_binary(&mut self, conn: u64, _: &[u8], now: u64) {
        if self.current(conn) && !self.stopping {
            self.protocol_error("a binary frame", now);
            self.finish(now);
        }
    }

    /// The connection ended (the host's `websocket-closed`, or a refused
    /// connect).
    fn on_ws_closed(&mut self, conn: u64, close: &CloseInfo, now: u64) {
        if !self.current(conn) || self.stopping {
            return;
        }
        let Some(s) = self.sess.as_ref() else { return };
        let was_live = s.live();
        let slow = s.slow;
        let named = s.named && close.failure.is_none();
        let restart = s.bye.as_deref() == Some("bridge-restarting") || close.code == Some(1012);
        let mut status = ConnectorStatus::ConnectionError;
        let mut slow_retry = slow || close.code == Some(4002);
        let why = match &close.failure {
            Some(Failure::TlsCertificate(d)) => format!(
                "certificate problem: the bridge's TLS certificate was refused ({d}); give the instance the bridge's CA (tls_ca_pem) or fix the certificate's name or expiry"
            ),
            Some(Failure::UpgradeRefused(a)) if a.status == 401 => {
                status = ConnectorStatus::Forbidden;
                slow_retry = true;
                "the bridge refused the token (HTTP 401): the bridge token differs on the two sides"
                    .into()
            }
            Some(Failure::UpgradeRefused(a)) if a.status == 503 => {
                "the bridge is busy (HTTP 503: too many hub connections)".into()
            }
            Some(f) => format!(
                "the bridge at {} could not be reached: {}",
                self.s.bridge_url,
                render_failure(f)
            ),
            None => match close.code {
                Some(c) => format!(
                    "the bridge closed the connection ({c}{})",
                    if close.reason.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", close.reason)
                    }
                ),
                None => "the connection to the bridge ended".into(),
            },
        };
        let wait = if slow_retry {
            SLOW_RETRY_MS
        } else if restart {
            // 1 s after a bridge restart (section 9), with a little jitter.
            1_000 + u64::from(self.random_u32() % 250)
        } else {
            self.reconnect_delay()
        };
        self.log(
            if was_live { Level::Warn } else { Level::Info },
            format!("{why}; reconnecting in {} ms", wait),
        );
        // A problem the bridge named before closing (version, fatal error)
        // stays.
        if !named {
            let retry = if slow_retry {
                "; retrying in 5 min"
            } else {
                ""
            };
            self.problem = Some((status, format!("{why}{retry}")));
        }
        self.session_ended(now);
        self.reconnect_at = Some(now + wait);
        self.finish(now);
    }

    fn watch(&mut self, endpoints: &[String], now: u64) {
        self.watch_targets(endpoints, now);
    }

    fn unwatch(&mut self, endpoints: &[String], now: u64) {
        self.unwatch_targets(endpoints, now);
    }

    fn write(&mut self, request: WriteRequest, now: u64) -> Result<(), ConnectorError> {
        self.write_presence(request, now)
    }

    fn shutdown(&mut self, now: u64) {
        self.leave("hub-stopping", now);
    }

    /// The bridge hears `bye` with `reconfigured`.
    fn make_way(&mut self, now: u64) {
        self.leave("reconfigured", now);
    }
}
