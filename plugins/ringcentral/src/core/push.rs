//! Notifications: the WebSocket API (default) or WebHook delivery.
//!
//! WebSocket (facts C6, RC-DOC `docs/notifications/websockets/*`):
//! `POST /restapi/oauth/wstoken` (Auth group) → connect to
//! `{uri}?access_token={ws_access_token}` → wait for `ConnectionDetails`
//! (nothing is sent before it) → `ClientRequest` `POST
//! /restapi/v1.0/subscription/` with `{eventFilters, deliveryMode:
//! {transportType: "WebSocket"}}` (one subscription per connection; a second
//! request replaces it, which is how watch changes are applied). The host
//! pings every 30 s. A lost connection is recovered within
//! `recoveryTimeout` (180 s) with a new token and `&wsc={wsc.token}`:
//! `recoveryState: Successful` keeps the subscription (missed events are
//! replayed), `Failed` means subscribe again and read presence again.
//! `WSG-902` (idle) and `WSG-903` (absolute timeout, 24 h) end the session:
//! a fresh connection follows. Reconnects back off with jitter (1 s to 60 s).
//!
//! WebHook (facts C5, RC-DOC `creating-webhooks.md`): `POST
//! /restapi/v1.0/subscription` with `address = {webhook-base-url}/notify`
//! and a random `verificationToken`, `expiresIn` 7 days asked; renewed with
//! `POST /restapi/v1.0/subscription/{id}/renew` a quarter of the *granted*
//! lifetime (at most an hour) before it ends; filters changed with `PUT
//! /restapi/v1.0/subscription/{id}`; re-created when lost (404, or
//! `Blacklisted`). The validation request is answered by echoing
//! `Validation-Token` with 200 and `Content-Type: application/json`, no
//! body; every delivery must carry the verification token (header
//! `Verification-Token`, or `Validation-Token` as the guide shows it).

use presence_connector_sdk::backoff::Backoff;
use presence_connector_sdk::time::{MissingZone, format_datetime, parse_datetime};
use presence_connector_sdk::urlcode;
use presence_connector_sdk::{CloseInfo, EndpointState, Failure};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Action, Core, Hook, HookAnswer, Level, Outcome, Purpose, Response, TimerKey, keys};
use crate::budget::Group;
use crate::settings::Delivery;
use crate::wire::{self, SubscriptionInfo};

/// Above this many watched extensions the account-wide filter replaces the
/// per-extension ones (a subscription of 2,000+ extension filters is
/// reported to work; 1,000 keeps well within it, and one account filter is
/// cheaper to send and to keep than a thousand).
pub const MAX_FILTERS: usize = 1000;
/// The WebHook lifetime asked for: seven days.
pub const WEBHOOK_EXPIRES_IN: u64 = 7 * 24 * 3600;
/// How long the gateway's `ConnectionDetails` may take.
const HELLO_MS: u64 = 20_000;
/// A WebSocket down longer than this makes the connector `connection-error`.
const DOWN_GRACE_MS: u64 = 30_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    #[default]
    Down,
    /// Asking for a WebSocket token.
    Token,
    Connecting,
    /// Open; waiting for `ConnectionDetails`.
    Hello,
    /// Subscribing (a `ClientRequest` is out).
    Subscribing,
    Live,
}

/// The WebSocket session.
#[derive(Debug)]
pub struct Ws {
    pub conn: u64,
    phase: Phase,
    wsc: Option<String>,
    last_contact: u64,
    recovery_ms: u64,
    recovering: bool,
    /// The gateway ended the session for good (idle or absolute timeout).
    no_recovery: bool,
    /// Presence may have changed unseen: read it again once subscribed.
    resync: bool,
    sub_id: Option<String>,
    /// The filters of the live subscription.
    filters: Vec<String>,
    sending: Vec<String>,
    sub_msg: Option<String>,
    backoff: Backoff,
    retry_at: u64,
    down_since: Option<u64>,
    last_error: Option<String>,
    sessions: u64,
}

impl Default for Ws {
    fn default() -> Self {
        Ws {
            conn: 0,
            phase: Phase::Down,
            wsc: None,
            last_contact: 0,
            recovery_ms: 180_000,
            recovering: false,
            no_recovery: false,
            resync: false,
            sub_id: None,
            filters: Vec::new(),
            sending: Vec::new(),
            sub_msg: None,
            backoff: Backoff::new(1_000, 60_000),
            retry_at: 0,
            down_since: None,
            last_error: None,
            sessions: 0,
        }
    }
}

impl Ws {
    pub fn summary(&self) -> String {
        match (self.phase, &self.sub_id) {
            (Phase::Live, Some(id)) => {
                format!(
                    "notifications over WebSocket (subscription {id}, {} filters)",
                    self.filters.len()
                )
            }
            (Phase::Live | Phase::Subscribing, None) => "WebSocket open, subscribing".into(),
            _ => "WebSocket connecting".into(),
        }
    }
}

/// The WebHook subscription as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubRec {
    pub id: String,
    pub token: String,
    pub address: String,
    pub filters: Vec<String>,
    pub granted_at: u64,
    pub expires_at: u64,
}

impl SubRec {
    /// A quarter of the granted lifetime before it ends, at most an hour.
    pub fn renew_at(&self) -> u64 {
        let life = self.expires_at.saturating_sub(self.granted_at);
        self.expires_at - (life / 4).min(3_600_000)
    }
}

/// The WebHook subscription state.
#[derive(Debug)]
pub struct Hooks {
    pub sub: Option<SubRec>,
    inflight: bool,
    pub renew_due: bool,
    /// The verification token of a create in flight (its validation and
    /// first deliveries may come before the answer).
    creating: Option<String>,
    backoff: Backoff,
    retry_at: u64,
    error: Option<String>,
}

impl Hooks {
    /// The stored subscription, if it was made for this address; it is
    /// renewed at once to learn whether it still exists.
    pub fn load(stored: Option<&[u8]>, address: Option<&str>) -> Hooks {
        let sub = stored
            .and_then(|b| serde_json::from_slice::<SubRec>(b).ok())
            .filter(|s| Some(s.address.as_str()) == address);
        Hooks {
            renew_due: sub.is_some(),
            sub,
            inflight: false,
            creating: None,
            backoff: Backoff::new(5_000, 5 * 60_000),
            retry_at: 0,
            error: None,
        }
    }

    pub fn request_failed(&mut self) {
        self.inflight = false;
    }

    pub fn summary(&self, _now: u64) -> String {
        match &self.sub {
            Some(s) => format!(
                "notifications by WebHook (subscription {}, {} filters, renewed before {})",
                s.id,
                s.filters.len(),
                format_datetime(s.expires_at)
            ),
            None => match &self.error {
                Some(e) => format!("WebHook subscription failing: {e}"),
                None => "WebHook subscription pending".into(),
            },
        }
    }
}

impl Core {
    /// The event filters the watched extensions need.
    pub(super) fn desired_filters(&self) -> Vec<String> {
        let exts = self.watched_exts();
        if exts.is_empty() {
            Vec::new()
        } else if exts.len() > MAX_FILTERS {
            vec![wire::account_filter(&self.s.account)]
        } else {
            exts.iter()
                .map(|e| wire::extension_filter(&self.s.account, e))
                .collect()
        }
    }

    /// Whether notifications for `ext` flow now: the live subscription's
    /// filters name it, or the account-wide filter covers it.
    pub(super) fn covered(&self, ext: &str) -> bool {
        let filters = match self.s.delivery {
            Delivery::WebSocket if self.ws.phase == Phase::Live && self.ws.sub_id.is_some() => {
                &self.ws.filters
            }
            Delivery::WebSocket => return false,
            Delivery::WebHook => match &self.hooks.sub {
                Some(sub) => &sub.filters,
                None => return false,
            },
        };
        let one = wire::extension_filter(&self.s.account, ext);
        let all = wire::account_filter(&self.s.account);
        filters.iter().any(|f| *f == one || *f == all)
    }

    pub(super) fn pump_push(&mut self, now: u64) {
        match self.s.delivery {
            Delivery::WebSocket => self.pump_ws(now),
            Delivery::WebHook => self.pump_hooks(now),
        }
    }

    /// Why notifications are not coming, if they are not.
    pub(super) fn push_down(&self, now: u64) -> Option<String> {
        match self.s.delivery {
            Delivery::WebSocket => {
                let since = self.ws.down_since?;
                (self.ws.phase != Phase::Live && now >= since + DOWN_GRACE_MS).then(|| {
                    format!(
                        "the WebSocket to RingCentral is down ({}); reconnecting",
                        self.ws.last_error.as_deref().unwrap_or("closed")
                    )
                })
            }
            Delivery::WebHook => match (&self.hooks.sub, &self.hooks.error) {
                (None, Some(e)) => Some(format!("no WebHook subscription: {e}")),
                _ => None,
            },
        }
    }

    /// Notifications disabled by the subscription (`disabledFilters`): the
    /// extensions concerned are access-denied.
    fn disabled(&mut self, filters: &[wire::DisabledFilter]) {
        for f in filters {
            let why = format!(
                "RingCentral disabled the event filter: {} {}",
                f.reason,
                f.message.as_deref().unwrap_or("")
            )
            .trim()
            .to_string();
            self.log(Level::Warn, format!("{}: {why}", f.filter));
            let ext = f
                .filter
                .split("/extension/")
                .nth(1)
                .and_then(|r| r.split(['/', '?']).next())
                .map(String::from);
            match ext {
                Some(ext) => self.ext_state(&ext, EndpointState::AccessDenied, why),
                None => {
                    for ext in self.watched_exts() {
                        self.ext_state(&ext, EndpointState::AccessDenied, why.clone());
                    }
                }
            }
        }
    }

    // ---- WebSocket ---------------------------------------------------------

    fn pump_ws(&mut self, now: u64) {
        let filters = self.desired_filters();
        match self.ws.phase {
            Phase::Down => {
                if filters.is_empty() {
                    return;
                }
                if now < self.ws.retry_at {
                    self.wake_in(self.ws.retry_at - now, now);
                    return;
                }
                if !self.room(Group::Auth, now) {
                    return;
                }
                let req = self.api("POST", "/restapi/oauth/wstoken", None);
                self.ws.phase = Phase::Token;
                self.send(Purpose::WsToken, req, now);
            }
            Phase::Live if !filters.is_empty() && filters != self.ws.filters => {
                if now < self.ws.retry_at {
                    self.wake_in(self.ws.retry_at - now, now);
                    return;
                }
                // The ClientRequest is a subscription call: counted as one
                // (Medium) though it travels over the socket (UNVERIFIED
                // whether the gateway counts it).
                if !self.room(Group::Medium, now) {
                    return;
                }
                self.budget.spend(Group::Medium, now);
                let id = self.random();
                let frame = wire::ws_subscribe_frame(&id, &filters);
                self.ws.sub_msg = Some(id);
                self.ws.sending = filters;
                self.ws.phase = Phase::Subscribing;
                self.out.push(Action::WsSend(self.ws.conn, frame));
            }
            _ => {}
        }
    }

    pub(super) fn ws_token_failed(&mut self, why: &str, now: u64) {
        self.ws.phase = Phase::Down;
        self.ws.down_since.get_or_insert(now);
        self.ws.last_error = Some(why.to_string());
        self.ws_retry(now);
    }

    fn ws_retry(&mut self, now: u64) {
        let r = self.random_u32();
        let wait = self.ws.backoff.next_delay(r);
        self.ws.retry_at = now + wait;
        self.set_timer(TimerKey::Reconnect, wait);
    }

    pub(super) fn on_ws_token(&mut self, outcome: Outcome, now: u64) {
        match outcome {
            Outcome::Ok(resp) => {
                let Some((token, uri)) = serde_json::from_slice::<wire::WsToken>(&resp.body)
                    .ok()
                    .and_then(|t| Some((t.ws_access_token.clone(), t.uri?)))
                else {
                    self.ws_token_failed("the WebSocket token answer has no uri", now);
                    return;
                };
                self.forbidden.remove("WebSocketsSubscriptions");
                let sep = if uri.contains('?') { '&' } else { '?' };
                let mut url = format!(
                    "{uri}{sep}access_token={}",
                    urlcode::encode_component(&token)
                );
                match (&self.ws.wsc, self.ws.recovering) {
                    (Some(wsc), true) => {
                        url.push_str(&format!("&wsc={}", urlcode::encode_component(wsc)));
                    }
                    _ => self.ws.recovering = false,
                }
                self.ws.conn += 1;
                self.ws.phase = Phase::Connecting;
                self.out
                    .push(Action::WsConnect(self.ws.conn, url, ws_options()));
                self.set_timer(TimerKey::Hello(self.ws.conn), HELLO_MS);
            }
            Outcome::Forbidden(perm, text) => {
                self.forbid(
                    "WebSocketsSubscriptions",
                    perm.or(Some("WebSocketsSubscriptions".into())),
                    "hand out a WebSocket token",
                    &text,
                );
                self.ws.phase = Phase::Down;
                self.ws.retry_at = now + 5 * 60_000;
                self.set_timer(TimerKey::Reconnect, 5 * 60_000);
            }
            other => self.ws_token_failed(&format!("{other:?}"), now),
        }
    }

    /// The WebSocket `conn` opened.
    pub(super) fn ws_opened(&mut self, conn: u64, now: u64) {
        if conn == self.ws.conn && self.ws.phase == Phase::Connecting {
            self.ws.phase = Phase::Hello;
            self.ws.last_contact = now;
        }
    }

    /// A text frame on WebSocket `conn`.
    pub(super) fn ws_text(&mut self, conn: u64, text: &str, now: u64) {
        if conn != self.ws.conn || self.stopping {
            return;
        }
        let Some(frame) = wire::parse_frame(text) else {
            self.log(Level::Debug, "unreadable WebSocket frame ignored");
            return;
        };
        self.ws.last_contact = now;
        if let Some(wsc) = &frame.wsc {
            self.ws.wsc = Some(wsc.clone());
        }
        match frame.kind.as_str() {
            "ConnectionDetails" => self.on_connection_details(&frame, now),
            "ClientRequest"
                if frame.message_id.is_some() && frame.message_id == self.ws.sub_msg =>
            {
                self.on_ws_subscribed(&frame, now)
            }
            "ServerNotification" => {
                let epoch = self
                    .ws
                    .sub_id
                    .clone()
                    .unwrap_or_else(|| format!("ws-session-{}", self.ws.sessions));
                self.on_notification(&frame.body, &epoch, now);
            }
            "Heartbeat" => {
                let id = frame.message_id.clone().unwrap_or_else(|| self.random());
                self.out
                    .push(Action::WsSend(conn, wire::heartbeat_frame(&id)));
            }
            "Error" => {
                let code = frame
                    .body
                    .get("errorCode")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let msg = frame
                    .body
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if code == "WSG-902" || code == "WSG-903" {
                    // Idle or absolute timeout: the session ends; a new one
                    // follows when the gateway closes the socket.
                    self.ws.no_recovery = true;
                    self.log(Level::Info, format!("WebSocket session ends: {code} {msg}"));
                } else {
                    self.log(Level::Warn, format!("WebSocket error {code}: {msg}"));
                    if self.ws.phase == Phase::Subscribing
                        && frame.message_id.is_some()
                        && frame.message_id == self.ws.sub_msg
                    {
                        self.on_ws_subscribed(&frame, now);
                    }
                }
            }
            _ => {}
        }
        self.pump(now);
        self.update_status(now);
    }

    fn on_connection_details(&mut self, frame: &wire::Frame, _now: u64) {
        self.cancel_timer(TimerKey::Hello(self.ws.conn));
        let b = &frame.body;
        if let Some(t) = b.get("recoveryTimeout").and_then(Value::as_u64) {
            // Outside input: a huge timeout must not overflow (found by
            // the ringcentral-ws fuzz target).
            self.ws.recovery_ms = t.saturating_mul(1000);
        }
        let state = b.get("recoveryState").and_then(Value::as_str);
        let recovered =
            self.ws.recovering && state == Some("Successful") && self.ws.sub_id.is_some();
        if recovered {
            self.log(
                Level::Info,
                "WebSocket session recovered; missed events follow",
            );
            self.ws.phase = Phase::Live;
        } else {
            if self.ws.recovering {
                self.log(
                    Level::Info,
                    "WebSocket session recovery failed: subscribing again and reading presence again",
                );
            }
            if self.ws.recovering || self.ws.resync {
                self.reread_all();
            }
            self.ws.sessions += 1;
            self.ws.sub_id = None;
            self.ws.filters.clear();
            self.ws.phase = Phase::Live;
        }
        self.ws.recovering = false;
        self.ws.no_recovery = false;
        self.ws.resync = false;
        self.ws.backoff.reset();
        self.ws.down_since = None;
        self.ws.last_error = None;
    }

    fn on_ws_subscribed(&mut self, frame: &wire::Frame, now: u64) {
        self.ws.sub_msg = None;
        self.ws.phase = Phase::Live;
        let status = frame.status.unwrap_or(200);
        if (200..300).contains(&status) && frame.kind == "ClientRequest" {
            match serde_json::from_value::<SubscriptionInfo>(frame.body.clone()) {
                Ok(info) => {
                    self.log(
                        Level::Info,
                        format!(
                            "WebSocket subscription {} for {} filters",
                            info.id,
                            self.ws.sending.len()
                        ),
                    );
                    self.ws.sub_id = Some(info.id.clone());
                    self.ws.filters = std::mem::take(&mut self.ws.sending);
                    self.disabled(&info.disabled_filters);
                }
                Err(e) => {
                    self.log(Level::Warn, format!("subscription answer unreadable: {e}"));
                    self.ws.filters = std::mem::take(&mut self.ws.sending);
                }
            }
            return;
        }
        let body = serde_json::to_vec(&frame.body).unwrap_or_default();
        let text = wire::error_text(status, &body);
        if status == 403 {
            let perm = wire::missing_permission(&body).or(Some("ReadPresence".into()));
            let msg = self.forbid("ReadPresence", perm, "subscribe to presence", &text);
            for ext in self.watched_exts() {
                self.ext_state(&ext, EndpointState::AccessDenied, msg.clone());
            }
        } else {
            self.log(
                Level::Warn,
                format!("WebSocket subscription refused: {text}"),
            );
        }
        // Asked again in a minute.
        self.ws.sending.clear();
        self.ws.retry_at = now + 60_000;
        self.wake_in(60_000, now);
    }

    /// WebSocket `conn` closed (or never opened): `why` for operators,
    /// `unauthorized` when the upgrade was refused with 401.
    pub fn ws_closed(&mut self, conn: u64, why: String, unauthorized: bool, now: u64) {
        if conn != self.ws.conn || self.stopping {
            return;
        }
        let was_live = matches!(self.ws.phase, Phase::Live | Phase::Subscribing);
        self.ws.phase = Phase::Down;
        self.ws.sub_msg = None;
        self.ws.down_since.get_or_insert(now);
        self.ws.last_error = Some(why.clone());
        if unauthorized {
            self.rejected(now);
        }
        let can_recover = self.ws.wsc.is_some()
            && self.ws.sub_id.is_some()
            && !self.ws.no_recovery
            && now < self.ws.last_contact.saturating_add(self.ws.recovery_ms);
        self.ws.recovering = can_recover;
        if !can_recover {
            self.ws.wsc = None;
            self.ws.sub_id = None;
            self.ws.filters.clear();
            self.ws.resync = true;
        }
        self.log(
            Level::Info,
            format!(
                "WebSocket closed ({why}); {}",
                if can_recover {
                    "recovering the session"
                } else {
                    "opening a new session"
                }
            ),
        );
        if was_live && self.ws.backoff.failures() == 0 {
            // Straight back, with a little jitter.
            self.ws.backoff.next_delay(0);
            let wait = u64::from(self.random_u32() % 1000);
            self.ws.retry_at = now + wait;
            self.set_timer(TimerKey::Reconnect, wait.max(1));
        } else {
            self.ws_retry(now);
        }
        self.pump(now);
        self.update_status(now);
    }

    pub(super) fn hello_overdue(&mut self, conn: u64, now: u64) {
        if conn == self.ws.conn && matches!(self.ws.phase, Phase::Connecting | Phase::Hello) {
            self.out
                .push(Action::WsClose(conn, 1000, "no ConnectionDetails".into()));
            self.ws_closed(conn, "no ConnectionDetails in time".into(), false, now);
        }
    }

    pub(super) fn ws_goodbye(&mut self) {
        if self.ws.phase != Phase::Down && self.ws.phase != Phase::Token {
            self.out
                .push(Action::WsClose(self.ws.conn, 1000, "shutdown".into()));
        }
        self.ws.phase = Phase::Down;
    }

    // ---- WebHook -----------------------------------------------------------

    fn pump_hooks(&mut self, now: u64) {
        let Some(address) = self.s.notify_url() else {
            return;
        };
        if self.hooks.inflight {
            return;
        }
        if now < self.hooks.retry_at {
            self.wake_in(self.hooks.retry_at - now, now);
            return;
        }
        let filters = self.desired_filters();
        let Some(sub) = self.hooks.sub.clone() else {
            if filters.is_empty() || !self.room(Group::Medium, now) {
                return;
            }
            let token = self.random();
            let body = wire::webhook_subscription(&filters, &address, &token, WEBHOOK_EXPIRES_IN);
            let req = self.api("POST", "/restapi/v1.0/subscription", Some(body));
            self.hooks.creating = Some(token.clone());
            self.hooks.inflight = true;
            self.send(Purpose::CreateSub(token), req, now);
            return;
        };
        if !filters.is_empty() && filters != sub.filters {
            if !self.room(Group::Medium, now) {
                return;
            }
            let body = json!({"eventFilters": filters, "expiresIn": WEBHOOK_EXPIRES_IN});
            let req = self.api(
                "PUT",
                &format!("/restapi/v1.0/subscription/{}", sub.id),
                Some(body),
            );
            self.hooks.inflight = true;
            self.send(Purpose::UpdateSub(sub.id, filters), req, now);
        } else if self.hooks.renew_due || now >= sub.renew_at() {
            if !self.room(Group::Light, now) {
                return;
            }
            let req = self.api(
                "POST",
                &format!("/restapi/v1.0/subscription/{}/renew", sub.id),
                None,
            );
            self.hooks.inflight = true;
            self.hooks.renew_due = false;
            self.send(Purpose::RenewSub(sub.id), req, now);
        }
    }

    /// Take a granted subscription: its lifetime as granted, stored.
    fn took_sub(&mut self, info: &SubscriptionInfo, token: String, filters: Vec<String>, now: u64) {
        let expires_at = info
            .expiration_time
            .as_deref()
            .and_then(|t| parse_datetime(t, MissingZone::Utc))
            .filter(|t| *t > now)
            .or_else(|| info.expires_in.map(|s| now + s * 1000))
            .unwrap_or(now + WEBHOOK_EXPIRES_IN * 1000);
        let rec = SubRec {
            id: info.id.clone(),
            token,
            address: self.s.notify_url().unwrap_or_default(),
            filters,
            granted_at: now,
            expires_at,
        };
        let renew = rec.renew_at().saturating_sub(now);
        self.out.push(Action::KvSet(
            keys::SUBSCRIPTION.into(),
            serde_json::to_vec(&rec).unwrap_or_default(),
        ));
        self.hooks.sub = Some(rec);
        self.hooks.error = None;
        self.hooks.backoff.reset();
        self.set_timer(TimerKey::Renew, renew.max(1));
        self.disabled(&info.disabled_filters);
    }

    fn sub_lost(&mut self, why: &str) {
        self.log(
            Level::Warn,
            format!("WebHook subscription lost ({why}): creating a new one"),
        );
        self.hooks.sub = None;
        self.out.push(Action::KvDelete(keys::SUBSCRIPTION.into()));
        // Presence may have changed while nothing was delivered.
        self.reread_all();
    }

    fn hooks_failed(&mut self, why: String, now: u64) {
        self.log(Level::Warn, format!("WebHook subscription: {why}"));
        self.hooks.error = Some(why);
        let r = self.random_u32();
        let wait = self.hooks.backoff.next_delay(r);
        self.hooks.retry_at = now + wait;
        self.wake_in(wait, now);
    }

    fn blacklisted(info: &SubscriptionInfo) -> bool {
        info.status.as_deref().is_some_and(|s| {
            s.eq_ignore_ascii_case("Blacklisted") || s.eq_ignore_ascii_case("Suspended")
        })
    }

    pub(super) fn on_sub_created(&mut self, token: String, outcome: Outcome, now: u64) {
        self.hooks.inflight = false;
        self.hooks.creating = None;
        match outcome {
            Outcome::Ok(resp) => match serde_json::from_slice::<SubscriptionInfo>(&resp.body) {
                Ok(info) if Self::blacklisted(&info) => self.hooks_failed(
                    format!("created {} but it is {:?}", info.id, info.status),
                    now,
                ),
                Ok(info) => {
                    self.log(
                        Level::Info,
                        format!("WebHook subscription {} created", info.id),
                    );
                    self.forbidden.remove("ReadPresence");
                    let filters = self.desired_filters();
                    self.took_sub(&info, token, filters, now);
                }
                Err(e) => self.hooks_failed(format!("answer unreadable: {e}"), now),
            },
            Outcome::Forbidden(perm, text) => {
                let msg = self.forbid("ReadPresence", perm, "subscribe to presence", &text);
                self.hooks_failed(msg, now);
            }
            Outcome::NotFound(text) | Outcome::Rejected(_, text) => {
                self.hooks_failed(format!("RingCentral refused to create it: {text}"), now)
            }
            other => self.hooks_failed(format!("{other:?}"), now),
        }
    }

    pub(super) fn on_sub_renewed(&mut self, id: String, outcome: Outcome, now: u64) {
        self.hooks.inflight = false;
        let Some(sub) = self.hooks.sub.clone().filter(|s| s.id == id) else {
            return;
        };
        match outcome {
            Outcome::Ok(resp) => match serde_json::from_slice::<SubscriptionInfo>(&resp.body) {
                Ok(info) if Self::blacklisted(&info) => self.sub_lost("blacklisted"),
                Ok(info) => self.took_sub(&info, sub.token, sub.filters, now),
                Err(_) => self.sub_lost("renewal answer unreadable"),
            },
            Outcome::NotFound(_) => self.sub_lost("404 on renewal"),
            Outcome::Rejected(_, text) => self.sub_lost(&text),
            other => self.hooks_failed(format!("renewal failed: {other:?}"), now),
        }
    }

    pub(super) fn on_sub_updated(
        &mut self,
        id: String,
        filters: Vec<String>,
        outcome: Outcome,
        now: u64,
    ) {
        self.hooks.inflight = false;
        let Some(sub) = self.hooks.sub.clone().filter(|s| s.id == id) else {
            return;
        };
        match outcome {
            Outcome::Ok(resp) => match serde_json::from_slice::<SubscriptionInfo>(&resp.body) {
                Ok(info) if Self::blacklisted(&info) => self.sub_lost("blacklisted"),
                Ok(info) => self.took_sub(&info, sub.token, filters, now),
                Err(_) => self.sub_lost("update answer unreadable"),
            },
            Outcome::NotFound(_) => self.sub_lost("404 on update"),
            Outcome::Forbidden(perm, text) => {
                let msg = self.forbid("ReadPresence", perm, "subscribe to presence", &text);
                self.hooks_failed(msg, now);
            }
            other => self.hooks_failed(format!("update failed: {other:?}"), now),
        }
    }

    pub(super) fn hooks_goodbye(&mut self, now: u64) {
        let Some(sub) = self.hooks.sub.take() else {
            return;
        };
        self.out.push(Action::KvDelete(keys::SUBSCRIPTION.into()));
        if self.usable(now).is_some() && self.budget.room(Group::Medium, now).is_ok() {
            let req = self.api(
                "DELETE",
                &format!("/restapi/v1.0/subscription/{}", sub.id),
                None,
            );
            self.send(Purpose::DeleteSub(sub.id), req, now);
        }
    }

    /// An answer while stopping: only logged.
    pub(super) fn goodbye_answer(&mut self, purpose: Purpose, result: Result<Response, String>) {
        if let Purpose::DeleteSub(id) = purpose {
            let how = match result {
                Ok(r) => format!("HTTP {}", r.status),
                Err(e) => e,
            };
            self.log(
                Level::Info,
                format!("WebHook subscription {id} deleted: {how}"),
            );
        }
    }

    /// `POST /hooks/{instance}/notify`: the validation request or a delivery.
    pub(super) fn on_notify(&mut self, hook: &Hook<'_>, now: u64) -> HookAnswer {
        let validation = wire::header(hook.headers, "validation-token");
        let body_empty = hook.body.iter().all(u8::is_ascii_whitespace);
        if let (Some(token), true) = (validation, body_empty) {
            // The subscription's validation handshake: echo the token at
            // once, the whole answer well under 1,024 bytes.
            let mut a = HookAnswer::json(200);
            a.headers
                .push(("Validation-Token".into(), token.chars().take(512).collect()));
            return a;
        }
        let presented = wire::header(hook.headers, "verification-token").or(validation);
        let Some(presented) = presented else {
            self.log(
                Level::Warn,
                "a WebHook delivery without a verification token was refused",
            );
            return HookAnswer::json(401);
        };
        let known = self
            .hooks
            .sub
            .as_ref()
            .map(|s| s.token.as_str())
            .into_iter()
            .chain(self.hooks.creating.as_deref())
            .any(|t| wire::same_secret(t, presented));
        if !known {
            self.log(
                Level::Warn,
                "a WebHook delivery with a wrong verification token was refused",
            );
            return HookAnswer::json(403);
        }
        let Ok(v) = serde_json::from_slice::<Value>(hook.body) else {
            return HookAnswer::json(400);
        };
        let epoch = self
            .hooks
            .sub
            .as_ref()
            .map(|s| s.id.clone())
            .unwrap_or_else(|| "webhook".into());
        self.on_notification(&v, &epoch, now);
        HookAnswer::json(200)
    }
}

/// RingCentral's WebSocket: a connect timeout of 15 s, and a ping every
/// 30 s that must be answered within 10 s (a dead socket is noticed before
/// the platform's own heartbeat interval).
pub(super) fn ws_options() -> presence_connector_sdk::WsOptions {
    presence_connector_sdk::WsOptions::default()
        .connect_timeout_ms(15_000)
        .ping(30_000, 10_000)
}

/// A WebSocket close as [`Core::ws_closed`] takes it: what operators read,
/// and whether the upgrade was refused with 401 (the token is stale).
pub(super) fn describe_close(close: &CloseInfo) -> (String, bool) {
    let mut why = match close.code {
        Some(code) if close.reason.is_empty() => format!("close code {code}"),
        Some(code) => format!("close code {code}: {}", close.reason),
        None => "closed".to_string(),
    };
    let mut unauthorized = false;
    if let Some(f) = &close.failure {
        why = presence_connector_sdk::render_failure(f);
        unauthorized = matches!(f, Failure::UpgradeRefused(a) if a.status == 401);
    }
    (why, unauthorized)
}
