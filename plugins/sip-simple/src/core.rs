//! The connector's protocol engine, free of I/O: it takes messages, timer
//! expiries and commands, and returns [`Action`]s (send these bytes, set this
//! timer, report this). `lib.rs` carries the actions out through the host.
//!
//! It implements non-INVITE client transactions (RFC 3261 §17.1.2: Timer E
//! retransmissions over UDP, Timer F), subscriptions (RFC 6665: refresh,
//! Expires as granted, 423/Min-Expires, Subscription-State with every reason,
//! 481/489, Timer N, unsubscribe), publications (RFC 3903: SIP-ETag,
//! SIP-If-Match, refresh, remove, 412; one PUBLISH in flight per endpoint,
//! see `publication.rs`), digest authentication on 401/407, and an OPTIONS
//! keep-alive that notices a lost or restarted server. Resource lists
//! (RFC 4662) carry presence or, as busy lamp field lists, dialog state
//! (`blf.rs`). At shutdown it says goodbye (un-SUBSCRIBE, removal of its
//! publications) and keeps answering challenges until that is done.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use presence_connector_sdk::{
    Availability, ConnectorError, ConnectorStatus, DndScope, EndpointState, LineState, Ordering,
    PresenceUpdate, RichPresence, TelephonyPresence, TelephonySource, UpdateOrigin, VendorValue,
    WriteAction, WriteFailure, WriteId, WriteOutcome, WriteRequest,
};

use crate::blf::Lines;
use crate::body;
use crate::body::rlmi::{ResourceBody, ResourceState};
use crate::echo::Echoes;
use crate::endpoint_state::EndpointStates;
use crate::publication::{self, Publication, Publish, State};
use crate::settings::{Settings, Transport};
use crate::sip::auth::Challenge;
use crate::sip::message::{Message, param, uri_of};
use crate::sip::request::{Local, Template, response};
use crate::sip::uri::entity_key;

const T1: u64 = 500;
const T2: u64 = 4_000;
const TIMER_F: u64 = 64 * T1;
const TIMER_N: u64 = 64 * T1;
const USER_AGENT: &str = concat!("presence-hub-sip-simple/", env!("CARGO_PKG_VERSION"));
/// Longest pause between retries of a failing subscription.
const MAX_BACKOFF_MS: u64 = 60_000;
/// Most SUBSCRIBE transactions in flight. Watching thousands of endpoints
/// at once would otherwise send thousands of SUBSCRIBEs in a burst, and the
/// server's answers and first NOTIFYs with them: over UDP most would be
/// lost and retransmitted until nothing gets through. New dialogs wait
/// their turn instead.
const MAX_SUBSCRIBING: usize = 64;

/// The event package of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Presence,
    Dialog,
    Features,
    /// A resource list (RFC 4662) for presence.
    PresenceList,
    /// A busy lamp field list: a resource list for dialog state.
    DialogList,
}

impl Kind {
    fn event(self) -> &'static str {
        match self {
            Kind::Presence | Kind::PresenceList => "presence",
            Kind::Dialog | Kind::DialogList => "dialog",
            Kind::Features => "as-feature-event",
        }
    }

    fn accept(self) -> &'static str {
        match self {
            Kind::Presence => "application/pidf+xml",
            Kind::PresenceList => "application/pidf+xml, application/rlmi+xml, multipart/related",
            Kind::Dialog => "application/dialog-info+xml",
            Kind::DialogList => {
                "application/dialog-info+xml, application/rlmi+xml, multipart/related"
            }
            Kind::Features => "application/x-as-feature-event+xml",
        }
    }

    /// A list subscription: its key names the list, not an endpoint.
    pub fn is_list(self) -> bool {
        matches!(self, Kind::PresenceList | Kind::DialogList)
    }

    /// The subscription in operators' words.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Presence => "presence",
            Kind::Dialog => "dialog",
            Kind::Features => "as-feature-event",
            Kind::PresenceList => "presence list",
            Kind::DialogList => "BLF list",
        }
    }
}

/// A subscription's identity: event package and endpoint (or list URI).
pub type SubKey = (Kind, String);

/// Timers the core asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TimerKey {
    Retransmit(String),
    TxTimeout(String),
    Refresh(SubKey),
    TimerN(SubKey),
    Retry(SubKey),
    PublishRefresh(String),
    Keepalive,
}

/// What the core wants done.
// Presence reports are the large variant and the common one (one per
// NOTIFY); actions are drained at once, so boxing them would only add an
// allocation per report.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Send(Vec<u8>),
    SetTimer(TimerKey, u64),
    CancelTimer(TimerKey),
    Presence(PresenceUpdate),
    EndpointState(String, EndpointState, Option<String>),
    Status(ConnectorStatus, Option<String>),
    /// What became of a write the core accepted (exactly one per write).
    Outcome(WriteId, WriteOutcome),
    Warn(String),
    Info(String),
}

/// `len` random bytes for identifiers (Call-ID, tags, branches, cnonces):
/// the host's cryptographic generator in the component.
pub type RandomBytes = Box<dyn FnMut(u32) -> Vec<u8>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubPhase {
    /// SUBSCRIBE sent, no 2xx or NOTIFY yet.
    Trying,
    Pending,
    Active,
    /// Waiting for a retry timer.
    Waiting,
    /// Given up (rejected, noresource, 489...): only a new watch revives it.
    Dead,
    /// Expires: 0 sent.
    Ending,
}

struct Sub {
    target: String,
    phase: SubPhase,
    call_id: String,
    local_tag: String,
    remote_tag: Option<String>,
    remote_target: Option<String>,
    route_set: Vec<String>,
    cseq: u32,
    expires: u32,
    failures: u32,
    tracker: body::DialogTracker,
    /// The lines of a BLF list's resources.
    lines: Lines,
    features: body::FeatureState,
    /// A 2xx arrived for the initial SUBSCRIBE (the dialog exists).
    established: bool,
    /// Waiting in the backlog for its initial SUBSCRIBE to be sent.
    queued: bool,
}

#[derive(Debug, Clone)]
enum Purpose {
    Subscribe(SubKey),
    Publish(String),
    Keepalive,
}

#[derive(Clone)]
struct Tx {
    purpose: Purpose,
    template: Template,
    bytes: Vec<u8>,
    interval: u64,
    /// Challenges answered so far for this request (by nonce).
    answered: Vec<String>,
}

/// The protocol engine.
pub struct Core {
    s: Settings,
    /// SIP messages that could not be parsed (answered 400 when requests).
    unreadable_messages: u64,
    local: Option<Local>,
    random: RandomBytes,
    txs: HashMap<String, Tx>,
    subs: BTreeMap<SubKey, Sub>,
    /// The subscription of each dialog, by Call-ID: a NOTIFY finds its
    /// subscription without scanning all of them.
    dialogs: HashMap<String, SubKey>,
    /// SUBSCRIBE transactions in flight.
    subscribing: usize,
    /// New dialogs waiting for fewer SUBSCRIBEs in flight.
    backlog: VecDeque<SubKey>,
    /// Our publications, by endpoint, while something of ours is at the
    /// server or on its way.
    pubs: BTreeMap<String, Publication>,
    /// What our writes published, to mark their echoes.
    echoes: Echoes,
    /// Endpoints watched, for lists and for replay after a server restart.
    watched: BTreeMap<String, ()>,
    /// What each subscription says about each endpoint.
    states: EndpointStates,
    /// Endpoints whose presence was published (a PIDF document arrived):
    /// a NOTIFY without a body then means the publication lapsed.
    published: BTreeSet<String>,
    /// `shutdown` was called: goodbyes only, nothing new.
    stopping: bool,
    /// Last challenge per realm and its nonce count, for the next request.
    nc: HashMap<String, u32>,
    server_up: Option<bool>,
    status: Option<(ConnectorStatus, Option<String>)>,
    out: Vec<Action>,
}

impl Core {
    pub fn new(s: Settings, random: RandomBytes) -> Core {
        Core {
            s,
            unreadable_messages: 0,
            local: None,
            random,
            txs: HashMap::new(),
            subs: BTreeMap::new(),
            dialogs: HashMap::new(),
            subscribing: 0,
            backlog: VecDeque::new(),
            pubs: BTreeMap::new(),
            echoes: Echoes::default(),
            watched: BTreeMap::new(),
            states: EndpointStates::default(),
            published: BTreeSet::new(),
            stopping: false,
            nc: HashMap::new(),
            server_up: None,
            status: None,
            out: Vec::new(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.s
    }

    /// Actions produced since the last call.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.out)
    }

    /// 64 random bits in hex: unguessable tags and Call-IDs keep other
    /// parties from forging in-dialog requests (RFC 3261 §19.3).
    fn random(&mut self) -> String {
        hex::encode((self.random)(8))
    }

    fn status(&mut self, st: ConnectorStatus, detail: Option<String>) {
        let new = (st, detail);
        if self.status.as_ref() != Some(&new) {
            self.status = Some(new.clone());
            self.out.push(Action::Status(new.0, new.1));
        }
    }

    /// What a subscription's state means for its endpoints.
    fn ep_state(&mut self, key: &SubKey, st: EndpointState, detail: Option<String>) {
        if key.0.is_list() {
            // A list's state applies to every endpoint it covers.
            let eps: Vec<String> = self.watched.keys().cloned().collect();
            for ep in eps {
                self.report_state(&ep, key.0, st, detail.clone());
            }
        } else {
            self.report_state(&key.1.clone(), key.0, st, detail);
        }
    }

    /// Report an endpoint's state as the `kind` subscription sees it,
    /// combined with what its other subscriptions say.
    fn report_state(
        &mut self,
        endpoint: &str,
        kind: Kind,
        st: EndpointState,
        detail: Option<String>,
    ) {
        if !self.watched.contains_key(endpoint) {
            return;
        }
        let (st, detail) = self.states.set(endpoint, kind, st, detail);
        self.out
            .push(Action::EndpointState(endpoint.to_string(), st, detail));
    }

    // ---- transport -------------------------------------------------------

    /// The transport is usable from `local`: (re)start every subscription
    /// and the keep-alive.
    pub fn transport_up(&mut self, local: Local) {
        self.local = Some(local);
        if self.stopping {
            return; // too late for anything new
        }
        self.keepalive();
        let keys: Vec<SubKey> = self.subs.keys().cloned().collect();
        for key in keys {
            self.restart_sub(&key);
        }
        self.send_backlog();
    }

    /// The transport is gone (stream closed): everything waits for it,
    /// except writes, which fail (the hub may write again).
    pub fn transport_down(&mut self, why: &str) {
        self.local = None;
        let branches: Vec<String> = self.txs.keys().cloned().collect();
        for b in branches {
            self.end_tx(&b);
        }
        if self.stopping {
            // The goodbyes still out cannot be answered any more.
            let keys: Vec<SubKey> = self.subs.keys().cloned().collect();
            for key in keys {
                self.drop_sub(&key);
            }
            self.pubs.clear();
            return;
        }
        let eps: Vec<String> = self.pubs.keys().cloned().collect();
        for ep in eps {
            if let Some(p) = self.pubs.get_mut(&ep) {
                p.abandon(publication::unanswered(format!(
                    "connection to the server lost: {why}"
                )));
            }
            self.pump(&ep);
        }
        self.server_lost(why);
    }

    fn server_lost(&mut self, why: &str) {
        if self.server_up != Some(false) {
            self.server_up = Some(false);
            self.status(
                ConnectorStatus::ConnectionError,
                Some(format!(
                    "{}:{} unreachable: {why}",
                    self.s.server_host, self.s.server_port
                )),
            );
            let keys: Vec<SubKey> = self.subs.keys().cloned().collect();
            for key in keys {
                if self.subs[&key].phase != SubPhase::Dead {
                    self.ep_state(
                        &key,
                        EndpointState::Error,
                        Some("server unreachable".into()),
                    );
                }
            }
        }
    }

    fn server_reached(&mut self) {
        let was_down = self.server_up == Some(false);
        self.server_up = Some(true);
        if matches!(
            self.status.as_ref().map(|s| s.0),
            None | Some(ConnectorStatus::ConnectionError)
        ) {
            self.status(ConnectorStatus::UpAndRunning, None);
        }
        if was_down {
            // The server may have restarted and forgotten our subscriptions.
            self.out.push(Action::Info(
                "server reachable again; subscribing anew".into(),
            ));
            let keys: Vec<SubKey> = self.subs.keys().cloned().collect();
            for key in keys {
                if self.subs[&key].phase != SubPhase::Ending {
                    self.restart_sub(&key);
                }
            }
        }
    }

    fn keepalive(&mut self) {
        if self.local.is_none() || self.stopping {
            return;
        }
        let target = format!(
            "sip:{}:{}",
            bracket(&self.s.server_host),
            self.s.server_port
        );
        let tag = self.random();
        let call_id = format!("{}@hub", self.random());
        let t = Template {
            method: "OPTIONS",
            request_uri: target.clone(),
            from: format!("<{}>;tag={tag}", self.s.aor()),
            to: format!("<{target}>"),
            call_id,
            cseq: 1,
            routes: vec![],
            headers: vec![("Accept".into(), "application/sdp".into())],
            body: None,
        };
        let _ = self.start_tx(Purpose::Keepalive, t);
    }

    // ---- transactions ----------------------------------------------------

    fn start_tx(&mut self, purpose: Purpose, template: Template) -> Option<String> {
        let local = self.local.clone()?;
        let branch = format!("z9hG4bK{}", self.random());
        let bytes = template.build(&local, &branch, USER_AGENT);
        self.out.push(Action::Send(bytes.clone()));
        let timeout = match purpose {
            Purpose::Keepalive => (self.s.keepalive_ms * 2).clamp(2_000, TIMER_F),
            _ => TIMER_F,
        };
        if self.s.transport == Transport::Udp {
            self.out
                .push(Action::SetTimer(TimerKey::Retransmit(branch.clone()), T1));
        }
        self.out.push(Action::SetTimer(
            TimerKey::TxTimeout(branch.clone()),
            timeout,
        ));
        if matches!(purpose, Purpose::Subscribe(_)) {
            self.subscribing += 1;
        }
        self.txs.insert(
            branch.clone(),
            Tx {
                purpose,
                template,
                bytes,
                interval: T1,
                answered: Vec::new(),
            },
        );
        Some(branch)
    }

    fn end_tx(&mut self, branch: &str) -> Option<Tx> {
        let tx = self.txs.remove(branch)?;
        if matches!(tx.purpose, Purpose::Subscribe(_)) {
            self.subscribing -= 1;
        }
        self.out.push(Action::CancelTimer(TimerKey::Retransmit(
            branch.to_string(),
        )));
        self.out
            .push(Action::CancelTimer(TimerKey::TxTimeout(branch.to_string())));
        Some(tx)
    }

    /// A timer fired.
    pub fn on_timer(&mut self, key: TimerKey) {
        match key {
            TimerKey::Retransmit(b) => {
                if let Some(tx) = self.txs.get_mut(&b) {
                    self.out.push(Action::Send(tx.bytes.clone()));
                    tx.interval = (tx.interval * 2).min(T2);
                    let next = tx.interval;
                    self.out
                        .push(Action::SetTimer(TimerKey::Retransmit(b), next));
                }
            }
            TimerKey::TxTimeout(b) => {
                if let Some(tx) = self.end_tx(&b) {
                    self.timed_out(tx);
                }
            }
            TimerKey::Refresh(key) => self.refresh(&key),
            TimerKey::TimerN(key) => {
                if let Some(sub) = self.subs.get(&key)
                    && matches!(sub.phase, SubPhase::Trying)
                {
                    // RFC 6665 §4.1.2.4: no NOTIFY within Timer N.
                    self.sub_failed(&key, "no NOTIFY arrived within 32 s (Timer N)", true);
                }
            }
            TimerKey::Retry(key) => {
                if self.subs.contains_key(&key) {
                    self.restart_sub(&key);
                }
            }
            // Our publications are being removed.
            TimerKey::PublishRefresh(_) if self.stopping => {}
            TimerKey::PublishRefresh(ep) => self.publish_timer(&ep),
            TimerKey::Keepalive => self.keepalive(),
        }
        self.send_backlog();
    }

    fn timed_out(&mut self, tx: Tx) {
        match tx.purpose {
            Purpose::Keepalive => {
                self.server_lost("no answer to OPTIONS");
                self.out
                    .push(Action::SetTimer(TimerKey::Keepalive, self.s.keepalive_ms));
            }
            Purpose::Subscribe(key) => {
                self.sub_failed(&key, "no answer to SUBSCRIBE (Timer F)", true);
            }
            Purpose::Publish(ep) => {
                self.out
                    .push(Action::Warn(format!("PUBLISH for {ep} timed out")));
                self.publish_failed(
                    &ep,
                    publication::unanswered("no answer to PUBLISH (Timer F)"),
                );
            }
        }
    }

    // ---- incoming --------------------------------------------------------

    /// A datagram or a framed stream message arrived.
    pub fn on_message(&mut self, bytes: &[u8]) {
        let msg = match Message::parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                // A request is owed an answer (400 naming the fault, 505
                // for another version), or its sender retransmits until
                // its transaction times out. Logged without the body.
                self.unreadable_messages += 1;
                let answer = e.answer();
                let what = if answer.is_some() {
                    "request, answered"
                } else {
                    "message, dropped"
                };
                if let Some(a) = answer {
                    self.out.push(Action::Send(a));
                }
                self.out.push(Action::Warn(format!(
                    "unreadable SIP {what} (#{}: {e}): {:?}",
                    self.unreadable_messages,
                    e.start_line()
                )));
                return;
            }
        };
        if msg.code().is_some() {
            self.on_response(msg);
        } else {
            self.on_request(msg);
        }
        self.send_backlog();
    }

    fn on_response(&mut self, msg: Message) {
        let Some(code) = msg.code() else { return };
        let Some(branch) = msg.branch() else { return };
        if !self.txs.contains_key(&branch) {
            return; // a retransmission of a response we already handled
        }
        if code < 200 {
            // Provisional: stop retransmitting at T1 pace (§17.1.2.2).
            if let Some(tx) = self.txs.get_mut(&branch) {
                tx.interval = T2;
            }
            return;
        }
        let Some(tx) = self.end_tx(&branch) else {
            return;
        };
        if !matches!(tx.purpose, Purpose::Keepalive) || code != 408 {
            self.server_reached();
        }
        if code == 401 || code == 407 {
            if self.retry_with_auth(tx.clone(), &msg, code) {
                return;
            }
            return self.auth_failed(tx, &msg);
        }
        match tx.purpose.clone() {
            Purpose::Keepalive => {
                self.out
                    .push(Action::SetTimer(TimerKey::Keepalive, self.s.keepalive_ms));
            }
            Purpose::Subscribe(key) => self.subscribe_response(key, tx, &msg, code),
            Purpose::Publish(ep) => self.publish_response(ep, &msg, code),
        }
    }

    /// Answer a challenge; `false` when we cannot (no password, or the same
    /// nonce was refused already and is not stale).
    fn retry_with_auth(&mut self, mut tx: Tx, msg: &Message, code: u16) -> bool {
        let Some(password) = self.s.password.clone() else {
            return false;
        };
        let header = if code == 401 {
            "www-authenticate"
        } else {
            "proxy-authenticate"
        };
        let challenge = msg
            .headers_named(header)
            .find_map(|v| Challenge::parse(v, code == 407).ok());
        let Some(ch) = challenge else {
            self.out.push(Action::Warn(format!(
                "{code} without a digest challenge we can answer: {:?}",
                msg.header(header)
            )));
            return false;
        };
        if tx.answered.contains(&ch.nonce) && !ch.stale {
            return false;
        }
        // A fresh challenge after our answer (not stale) means wrong credentials.
        if !tx.answered.is_empty() && !ch.stale {
            return false;
        }
        tx.answered.push(ch.nonce.clone());
        let nc = self.nc.entry(ch.nonce.clone()).or_insert(0);
        *nc += 1;
        let nc = *nc;
        let cnonce = self.random();
        let (name, value) = ch.answer(
            &self.s.auth_id,
            &password,
            tx.template.method,
            &tx.template.request_uri,
            nc,
            &cnonce,
        );
        tx.template.remove_header("Authorization");
        tx.template.remove_header("Proxy-Authorization");
        tx.template.set_header(name, value);
        tx.template.cseq += 1;
        if let Purpose::Subscribe(key) = &tx.purpose
            && let Some(sub) = self.subs.get_mut(key)
        {
            sub.cseq = tx.template.cseq;
        }
        let answered = tx.answered.clone();
        // The retry is a new transaction that remembers what it answered.
        if let Some(b) = self.start_tx(tx.purpose, tx.template)
            && let Some(new) = self.txs.get_mut(&b)
        {
            new.answered = answered;
        }
        true
    }

    fn auth_failed(&mut self, tx: Tx, msg: &Message) {
        let (status, detail) = if self.s.password.is_none() {
            (
                ConnectorStatus::CredentialsNotFound,
                "the server asks for credentials and no password is configured".to_string(),
            )
        } else {
            (
                ConnectorStatus::Forbidden,
                format!(
                    "authentication as {:?} failed ({}): check auth ID and password",
                    self.s.auth_id,
                    msg.code().unwrap_or(0)
                ),
            )
        };
        self.status(status, Some(detail.clone()));
        match tx.purpose {
            Purpose::Subscribe(key)
                if self
                    .subs
                    .get(&key)
                    .is_some_and(|s| s.phase == SubPhase::Ending) =>
            {
                // An un-SUBSCRIBE refused: the subscription expires on its own.
                self.out.push(Action::Warn(format!(
                    "un-SUBSCRIBE of {} for {}: {detail}",
                    key.0.label(),
                    key.1
                )));
                self.drop_sub(&key);
            }
            Purpose::Subscribe(key) => {
                self.ep_state(&key, EndpointState::AccessDenied, Some(detail));
                self.wait_retry(&key, 300_000);
            }
            Purpose::Publish(ep) => {
                self.out
                    .push(Action::Warn(format!("PUBLISH for {ep}: {detail}")));
                // Retrying cannot help until the credentials change.
                let failure = WriteFailure {
                    message: detail,
                    retryable: false,
                    retry_after_ms: None,
                    status: msg.code(),
                };
                self.publish_failed(&ep, failure);
            }
            Purpose::Keepalive => self
                .out
                .push(Action::SetTimer(TimerKey::Keepalive, self.s.keepalive_ms)),
        }
    }

    fn on_request(&mut self, msg: Message) {
        let method = msg.method().unwrap_or("").to_ascii_uppercase();
        match method.as_str() {
            "NOTIFY" => self.on_notify(msg),
            "OPTIONS" => {
                let r = response(&msg, 200, "OK", &[("Allow", "NOTIFY, OPTIONS".into())]);
                self.out.push(Action::Send(r));
            }
            "ACK" => {}
            _ => {
                let r = response(
                    &msg,
                    405,
                    "Method Not Allowed",
                    &[("Allow", "NOTIFY, OPTIONS".into())],
                );
                self.out.push(Action::Send(r));
            }
        }
    }

    // ---- subscriptions ---------------------------------------------------

    /// The event packages each endpoint gets a subscription of its own
    /// for: those the settings name and no list carries.
    fn own_kinds(&self) -> Vec<Kind> {
        let e = self.s.events;
        [
            (Kind::Presence, e.presence && self.s.list_uri.is_none()),
            (Kind::Dialog, e.dialog && self.s.blf_list_uri.is_none()),
            (Kind::Features, e.features),
        ]
        .into_iter()
        .filter_map(|(k, on)| on.then_some(k))
        .collect()
    }

    /// The list subscriptions: presence by `list_uri`, dialog (BLF) by
    /// `blf_list_uri`.
    fn lists(&self) -> Vec<SubKey> {
        let e = self.s.events;
        [
            (Kind::PresenceList, &self.s.list_uri, e.presence),
            (Kind::DialogList, &self.s.blf_list_uri, e.dialog),
        ]
        .into_iter()
        .filter_map(|(k, uri, on)| Some((k, uri.clone().filter(|_| on)?)))
        .collect()
    }

    /// Watch endpoints: one subscription per configured event package, or
    /// the list subscriptions that carry them.
    pub fn watch(&mut self, endpoints: &[String]) {
        if self.stopping {
            return;
        }
        let own = self.own_kinds();
        let lists = self.lists();
        let mut added = false;
        for ep in endpoints {
            added |= self.watched.insert(ep.clone(), ()).is_none();
            for &k in &own {
                self.new_sub((k, ep.clone()));
            }
            // Every subscription of the endpoint waits; one report says so.
            let mut waiting = (EndpointState::Requesting, None);
            for k in own.iter().chain(lists.iter().map(|(k, _)| k)) {
                waiting = self.states.set(ep, *k, EndpointState::Requesting, None);
            }
            self.out
                .push(Action::EndpointState(ep.clone(), waiting.0, waiting.1));
        }
        for key in lists {
            if !self.subs.contains_key(&key) {
                self.new_sub(key);
            } else if added {
                // The list's state of the new ones went by unread: a
                // refresh brings full state (RFC 4662).
                self.refresh(&key);
            }
        }
        self.send_backlog();
    }

    /// Stop watching: unsubscribe with Expires: 0.
    pub fn unwatch(&mut self, endpoints: &[String]) {
        for ep in endpoints {
            self.watched.remove(ep);
            self.states.forget(ep);
            self.published.remove(ep);
            for k in [Kind::Presence, Kind::Dialog, Kind::Features] {
                self.end_sub(&(k, ep.clone()));
            }
            if let Some(list) = self.blf_list_mut() {
                list.lines.forget(ep);
            }
        }
        if self.watched.is_empty() {
            for key in self.lists() {
                self.end_sub(&key);
            }
        }
    }

    fn blf_list(&self) -> Option<&Sub> {
        let uri = self.s.blf_list_uri.clone()?;
        self.subs.get(&(Kind::DialogList, uri))
    }

    fn blf_list_mut(&mut self) -> Option<&mut Sub> {
        let uri = self.s.blf_list_uri.clone()?;
        self.subs.get_mut(&(Kind::DialogList, uri))
    }

    /// Unsubscribe everything and remove our publications (the instance
    /// stops: nobody would refresh them). Writes still waiting for an
    /// answer fail, as none will be delivered. From now on nothing new
    /// starts; the goodbyes' answers (digest challenges among them) are
    /// still handled until [`Core::saying_goodbye`] turns false.
    pub fn shutdown(&mut self) {
        self.stopping = true;
        self.out.push(Action::CancelTimer(TimerKey::Keepalive));
        self.backlog.clear();
        let keys: Vec<SubKey> = self.subs.keys().cloned().collect();
        for k in keys {
            self.end_sub(&k);
        }
        let eps: Vec<String> = self.pubs.keys().cloned().collect();
        for ep in eps {
            if let Some(p) = self.pubs.get_mut(&ep) {
                p.abandon(publication::unanswered(
                    "the connector stopped before the server answered",
                ));
                p.withdraw();
            }
            self.out
                .push(Action::CancelTimer(TimerKey::PublishRefresh(ep.clone())));
            self.pump(&ep);
        }
    }

    /// After [`Core::shutdown`]: un-SUBSCRIBEs or publication removals
    /// are still waiting for their answers.
    pub fn saying_goodbye(&self) -> bool {
        self.stopping
            && (!self.pubs.is_empty() || self.subs.values().any(|s| s.phase == SubPhase::Ending))
    }

    fn new_sub(&mut self, key: SubKey) {
        // Watched again while its unsubscribe is under way: the old dialog
        // ends on its own, a new one starts now.
        if self
            .subs
            .get(&key)
            .is_some_and(|s| s.phase != SubPhase::Ending)
        {
            return;
        }
        let target = if key.0.is_list() {
            key.1.clone()
        } else {
            self.s.target_uri(&key.1)
        };
        let sub = Sub {
            target,
            phase: SubPhase::Trying,
            call_id: String::new(),
            local_tag: String::new(),
            remote_tag: None,
            remote_target: None,
            route_set: vec![],
            cseq: 0,
            expires: self.s.expires,
            failures: 0,
            tracker: body::DialogTracker::default(),
            lines: Lines::default(),
            features: body::FeatureState::default(),
            established: false,
            queued: false,
        };
        self.drop_sub(&key);
        self.subs.insert(key.clone(), sub);
        self.restart_sub(&key);
    }

    /// A fresh subscription (new dialog) for `key`.
    fn restart_sub(&mut self, key: &SubKey) {
        if self.stopping {
            return;
        }
        let (call_id, tag) = (format!("{}@hub", self.random()), self.random());
        let Some(sub) = self.subs.get_mut(key) else {
            return;
        };
        self.out
            .push(Action::CancelTimer(TimerKey::Refresh(key.clone())));
        self.out
            .push(Action::CancelTimer(TimerKey::Retry(key.clone())));
        let old = std::mem::replace(&mut sub.call_id, call_id.clone());
        if self.dialogs.get(&old) == Some(key) {
            self.dialogs.remove(&old);
        }
        self.dialogs.insert(call_id, key.clone());
        sub.local_tag = tag;
        sub.remote_tag = None;
        sub.remote_target = None;
        sub.route_set.clear();
        sub.cseq = 1;
        sub.established = false;
        sub.phase = SubPhase::Trying;
        sub.tracker = body::DialogTracker::default();
        sub.lines = Lines::default();
        // Sent by `send_backlog` as soon as fewer than MAX_SUBSCRIBING
        // SUBSCRIBEs are in flight (at the end of this very call if so).
        if !sub.queued {
            sub.queued = true;
            self.backlog.push_back(key.clone());
        }
    }

    /// Send the initial SUBSCRIBEs of waiting dialogs while fewer than
    /// MAX_SUBSCRIBING are in flight. Every entry point that can start a
    /// subscription or end a transaction calls this last.
    fn send_backlog(&mut self) {
        while self.subscribing < MAX_SUBSCRIBING && self.local.is_some() {
            let Some(key) = self.backlog.pop_front() else {
                break;
            };
            let Some(sub) = self.subs.get_mut(&key) else {
                continue;
            };
            if !std::mem::replace(&mut sub.queued, false) || sub.phase != SubPhase::Trying {
                continue;
            }
            self.send_subscribe(&key, None);
            self.out
                .push(Action::SetTimer(TimerKey::TimerN(key.clone()), TIMER_N));
        }
    }

    fn send_subscribe(&mut self, key: &SubKey, expires: Option<u32>) {
        let aor = self.s.aor();
        let user = self.s.user.clone();
        let Some(local) = self.local.clone() else {
            return; // sent when the transport comes up
        };
        let Some(sub) = self.subs.get(key) else {
            return;
        };
        let expires = expires.unwrap_or(sub.expires);
        let to = match &sub.remote_tag {
            Some(t) => format!("<{}>;tag={t}", sub.target),
            None => format!("<{}>", sub.target),
        };
        let mut headers = vec![
            ("Contact".to_string(), local.contact(&user)),
            ("Event".to_string(), key.0.event().to_string()),
            ("Expires".to_string(), expires.to_string()),
            ("Accept".to_string(), key.0.accept().to_string()),
            ("Allow".to_string(), "NOTIFY, OPTIONS".to_string()),
        ];
        if key.0.is_list() {
            headers.push(("Supported".into(), "eventlist".into()));
        }
        let t = Template {
            method: "SUBSCRIBE",
            request_uri: sub
                .remote_target
                .clone()
                .unwrap_or_else(|| sub.target.clone()),
            from: format!("<{aor}>;tag={}", sub.local_tag),
            to,
            call_id: sub.call_id.clone(),
            cseq: sub.cseq,
            routes: sub.route_set.clone(),
            headers,
            body: None,
        };
        let _ = self.start_tx(Purpose::Subscribe(key.clone()), t);
    }

    fn refresh(&mut self, key: &SubKey) {
        let Some(sub) = self.subs.get_mut(key) else {
            return;
        };
        if !matches!(sub.phase, SubPhase::Active | SubPhase::Pending) {
            return;
        }
        sub.cseq += 1;
        self.send_subscribe(key, None);
    }

    fn end_sub(&mut self, key: &SubKey) {
        let Some(sub) = self.subs.get_mut(key) else {
            return;
        };
        for t in [
            TimerKey::Refresh(key.clone()),
            TimerKey::Retry(key.clone()),
            TimerKey::TimerN(key.clone()),
        ] {
            self.out.push(Action::CancelTimer(t));
        }
        sub.phase = SubPhase::Ending;
        if sub.established || sub.remote_tag.is_some() {
            sub.cseq += 1;
            self.send_subscribe(key, Some(0));
        } else if !self.subscribing_now(key) {
            // Never sent or never answered: nothing to end at the server.
            self.drop_sub(key);
        }
        // Else its first SUBSCRIBE is out: the server may be creating the
        // subscription now, and its 2xx is answered with Expires: 0 in the
        // new dialog (`subscribe_response`).
    }

    /// A SUBSCRIBE of `key` is waiting for its answer.
    fn subscribing_now(&self, key: &SubKey) -> bool {
        self.txs
            .values()
            .any(|t| matches!(&t.purpose, Purpose::Subscribe(k) if k == key))
    }

    /// Forget a subscription and its dialog.
    fn drop_sub(&mut self, key: &SubKey) {
        if let Some(sub) = self.subs.remove(key)
            && self.dialogs.get(&sub.call_id) == Some(key)
        {
            self.dialogs.remove(&sub.call_id);
        }
    }

    fn schedule_refresh(&mut self, key: &SubKey, expires: u32) {
        let secs = u64::from(expires);
        let refresh_ms = if secs > 64 {
            (secs - 32) * 1000
        } else {
            secs * 900
        };
        self.out
            .push(Action::CancelTimer(TimerKey::Refresh(key.clone())));
        self.out.push(Action::SetTimer(
            TimerKey::Refresh(key.clone()),
            refresh_ms.max(500),
        ));
    }

    fn wait_retry(&mut self, key: &SubKey, ms: u64) {
        if let Some(sub) = self.subs.get_mut(key) {
            sub.phase = SubPhase::Waiting;
            self.out
                .push(Action::CancelTimer(TimerKey::Refresh(key.clone())));
            self.out
                .push(Action::CancelTimer(TimerKey::TimerN(key.clone())));
            self.out
                .push(Action::SetTimer(TimerKey::Retry(key.clone()), ms));
        }
    }

    fn sub_failed(&mut self, key: &SubKey, why: &str, retry: bool) {
        let Some(sub) = self.subs.get_mut(key) else {
            return;
        };
        if sub.phase == SubPhase::Ending {
            self.drop_sub(key);
            return;
        }
        sub.failures += 1;
        let backoff = (1000u64 << sub.failures.min(6)).min(MAX_BACKOFF_MS);
        self.ep_state(key, EndpointState::Error, Some(why.to_string()));
        if retry {
            self.wait_retry(key, backoff);
        } else if let Some(sub) = self.subs.get_mut(key) {
            sub.phase = SubPhase::Dead;
        }
    }

    fn subscribe_response(&mut self, key: SubKey, tx: Tx, msg: &Message, code: u16) {
        let Some(sub) = self.subs.get_mut(&key) else {
            return;
        };
        if sub.call_id != tx.template.call_id {
            return; // a response for an earlier dialog of this key
        }
        if sub.phase == SubPhase::Ending {
            if (200..300).contains(&code) && !sub.established {
                // Ended while its first SUBSCRIBE was out, which the server
                // took: end it in the dialog the 2xx made.
                sub.remote_tag = msg.header("to").and_then(|t| param(t, "tag"));
                if let Some(c) = msg.header("contact") {
                    sub.remote_target = Some(uri_of(c));
                }
                sub.route_set = route_set(msg);
                sub.established = true;
                sub.cseq += 1;
                self.send_subscribe(&key, Some(0));
            } else {
                self.drop_sub(&key);
            }
            return;
        }
        match code {
            200..=299 => {
                sub.failures = 0;
                if sub.remote_tag.is_none() {
                    sub.remote_tag = msg.header("to").and_then(|t| param(t, "tag"));
                }
                if let Some(c) = msg.header("contact") {
                    sub.remote_target = Some(uri_of(c));
                }
                if !sub.established {
                    sub.route_set = route_set(msg);
                }
                sub.established = true;
                let granted = msg.int_header("expires").unwrap_or(sub.expires);
                if granted == 0 {
                    // The notifier ended it at once; a final NOTIFY follows.
                    return;
                }
                if sub.phase == SubPhase::Trying {
                    sub.phase = SubPhase::Pending;
                }
                self.schedule_refresh(&key, granted);
            }
            423 => {
                // Interval too brief: retry with the server's minimum.
                let min = msg.int_header("min-expires").unwrap_or(sub.expires * 2);
                sub.expires = min.min(86_400);
                sub.cseq += 1;
                self.send_subscribe(&key, None);
            }
            481 => {
                // The server forgot the dialog (restart, expiry): start anew.
                self.out.push(Action::Info(format!(
                    "{} subscription for {} no longer exists at the server; subscribing anew",
                    key.0.event(),
                    key.1
                )));
                self.restart_sub(&key);
            }
            489 => self.sub_failed(
                &key,
                &format!(
                    "the server does not support the {} event package (489)",
                    key.0.event()
                ),
                false,
            ),
            403 => {
                self.ep_state(
                    &key,
                    EndpointState::AccessDenied,
                    Some(format!("403 {}", reason(msg))),
                );
                if let Some(s) = self.subs.get_mut(&key) {
                    s.phase = SubPhase::Dead;
                }
            }
            404 | 604 => {
                self.ep_state(
                    &key,
                    EndpointState::NotFound,
                    Some(format!("{code} {}", reason(msg))),
                );
                if let Some(s) = self.subs.get_mut(&key) {
                    s.phase = SubPhase::Dead;
                }
            }
            _ => {
                let retry_after = msg.retry_after_secs().map(|s| u64::from(s) * 1000);
                let why = format!("SUBSCRIBE answered {code} {}", reason(msg));
                self.sub_failed(&key, &why, true);
                if let Some(ms) = retry_after {
                    self.wait_retry(&key, ms.min(3_600_000));
                }
            }
        }
    }

    fn on_notify(&mut self, msg: Message) {
        let call_id = msg.header("call-id").unwrap_or("").to_string();
        let event = msg
            .header("event")
            .map(|e| {
                e.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let key = self
            .dialogs
            .get(&call_id)
            .filter(|k| {
                k.0.event() == event && self.subs.get(*k).is_some_and(|s| s.call_id == call_id)
            })
            .cloned();
        let Some(key) = key else {
            let r = response(&msg, 481, "Subscription Does Not Exist", &[]);
            self.out.push(Action::Send(r));
            return;
        };
        let Some(state) = msg.header("subscription-state").map(str::to_string) else {
            // RFC 6665 §4.1.3: Subscription-State is mandatory.
            self.out.push(Action::Send(response(
                &msg,
                400,
                "Missing Subscription-State",
                &[],
            )));
            return;
        };
        self.out.push(Action::Send(response(&msg, 200, "OK", &[])));
        self.out
            .push(Action::CancelTimer(TimerKey::TimerN(key.clone())));
        self.server_reached();
        let sub = self.subs.get_mut(&key).expect("found above");
        if sub.remote_tag.is_none() {
            sub.remote_tag = msg.header("from").and_then(|f| param(f, "tag"));
        }
        if let Some(c) = msg.header("contact") {
            sub.remote_target = Some(uri_of(c));
        }
        if !sub.established && sub.route_set.is_empty() {
            sub.route_set = msg
                .headers_named("record-route")
                .map(str::to_string)
                .collect();
        }
        let value = state
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let ending = sub.phase == SubPhase::Ending;
        match value.as_str() {
            "active" | "pending" => {
                if ending {
                    return;
                }
                sub.phase = if value == "active" {
                    SubPhase::Active
                } else {
                    SubPhase::Pending
                };
                if let Some(exp) = param(&state, "expires").and_then(|e| e.parse::<u32>().ok())
                    && exp > 0
                {
                    self.schedule_refresh(&key, exp);
                }
                if value == "pending" {
                    self.ep_state(
                        &key,
                        EndpointState::Requesting,
                        Some("subscription pending authorization at the server".into()),
                    );
                }
                self.notify_body(&key, &msg);
            }
            "terminated" => {
                if !msg.body.is_empty() {
                    self.notify_body(&key, &msg);
                }
                if ending {
                    self.drop_sub(&key);
                    return;
                }
                self.terminated(&key, &state);
            }
            other => self.out.push(Action::Warn(format!(
                "NOTIFY with unknown Subscription-State {other:?}"
            ))),
        }
    }

    /// RFC 6665 §4.1.3: what each termination reason asks of the subscriber.
    fn terminated(&mut self, key: &SubKey, state: &str) {
        let reason = param(state, "reason").map(|r| r.to_ascii_lowercase());
        let retry_after = param(state, "retry-after")
            .and_then(|r| r.parse::<u64>().ok())
            .map(|s| s * 1000);
        self.out
            .push(Action::CancelTimer(TimerKey::Refresh(key.clone())));
        match reason.as_deref() {
            Some("deactivated") | Some("timeout") => self.restart_sub(key),
            Some("probation") | Some("giveup") => {
                self.ep_state(
                    key,
                    EndpointState::Requesting,
                    Some(format!("terminated: {}", reason.unwrap_or_default())),
                );
                self.wait_retry(key, retry_after.unwrap_or(30_000));
            }
            Some("rejected") => {
                self.ep_state(
                    key,
                    EndpointState::AccessDenied,
                    Some("subscription rejected by the server".into()),
                );
                if let Some(s) = self.subs.get_mut(key) {
                    s.phase = SubPhase::Dead;
                }
            }
            Some("noresource") => {
                self.ep_state(
                    key,
                    EndpointState::NotFound,
                    Some("no such resource at the server".into()),
                );
                if let Some(s) = self.subs.get_mut(key) {
                    s.phase = SubPhase::Dead;
                }
            }
            Some("invariant") => {
                self.ep_state(
                    key,
                    EndpointState::Error,
                    Some("terminated: invariant (will not retry)".into()),
                );
                if let Some(s) = self.subs.get_mut(key) {
                    s.phase = SubPhase::Dead;
                }
            }
            _ => {
                if let Some(ms) = retry_after {
                    self.wait_retry(key, ms);
                } else {
                    self.restart_sub(key);
                }
            }
        }
    }

    fn notify_body(&mut self, key: &SubKey, msg: &Message) {
        let ctype = msg.header("content-type").unwrap_or("").to_string();
        // Reports are ordered within the subscription's dialog: by the
        // NOTIFY's CSeq (RFC 3261 §12.2.1.1), dialog-info by its version
        // (RFC 4235 §4.1). Both start again in a new dialog, so the
        // dialog's Call-ID is the epoch.
        let epoch = msg.header("call-id").unwrap_or("").to_string();
        let cseq = msg.cseq().map(|(n, _)| n);
        let by_cseq = cseq.map(|n| Ordering {
            epoch: epoch.clone(),
            sequence: u64::from(n),
        });
        match key.0 {
            Kind::Presence => self.presence_body(key.1.clone(), Kind::Presence, &msg.body, by_cseq),
            Kind::PresenceList | Kind::DialogList => {
                self.list_body(key, &ctype, &msg.body, cseq, by_cseq)
            }
            Kind::Dialog => self.dialog_body(key, &msg.body, epoch),
            Kind::Features => self.features_body(key, &ctype, &msg.body, by_cseq),
        }
    }

    /// A presence document for `endpoint`, from its own subscription or a
    /// list (`kind`).
    fn presence_body(
        &mut self,
        endpoint: String,
        kind: Kind,
        body: &[u8],
        ordering: Option<Ordering>,
    ) {
        if blank(body) {
            return self.nothing_published(endpoint, kind, ordering);
        }
        match body::parse_pidf(body) {
            Ok(p) => self.report_pidf(endpoint, kind, p, ordering),
            Err(e) => {
                self.out
                    .push(Action::Warn(format!("unreadable PIDF for {endpoint}: {e}")));
                self.report_state(
                    &endpoint,
                    kind,
                    EndpointState::Error,
                    Some(format!("unreadable PIDF: {e}")),
                );
            }
        }
    }

    /// No presence document (RFC 3856 §6.6.2: the server has no state for
    /// the presentity). Before the first publication that says nothing:
    /// unknown. After one, its publication ended without being removed
    /// (the device crashed or lost its network and the publication lapsed):
    /// offline, as a removed publication shows.
    fn nothing_published(&mut self, endpoint: String, kind: Kind, ordering: Option<Ordering>) {
        let lapsed = self.published.contains(&endpoint);
        let (availability, detail, raw) = if lapsed {
            (
                Availability::Offline,
                "the presence publication ended",
                "empty: publication ended",
            )
        } else {
            (Availability::Unknown, "no presence published yet", "empty")
        };
        self.report_state(&endpoint, kind, EndpointState::Active, Some(detail.into()));
        self.out.push(Action::Presence(PresenceUpdate {
            endpoint,
            observed_at: None,
            ordering,
            origin: UpdateOrigin::Platform,
            telephony: None,
            rich: Some(RichPresence {
                availability,
                activity: None,
                note: None,
            }),
            calendar: None,
            valid_for_ms: None,
            raw: vec![VendorValue {
                name: "body".into(),
                value: raw.into(),
            }],
        }));
    }

    fn report_pidf(
        &mut self,
        endpoint: String,
        kind: Kind,
        p: body::Pidf,
        ordering: Option<Ordering>,
    ) {
        let origin = self.echoes.origin(&endpoint, &p);
        self.published.insert(endpoint.clone());
        self.report_state(&endpoint, kind, EndpointState::Active, None);
        self.out.push(Action::Presence(PresenceUpdate {
            endpoint,
            observed_at: p.observed_at_ms,
            ordering,
            origin,
            telephony: None,
            rich: Some(p.rich),
            calendar: None,
            valid_for_ms: None,
            raw: p.raw,
        }));
    }

    /// A resource list NOTIFY (RFC 4662): presence or, from a BLF list,
    /// dialog state per resource. One resource's trouble never hides the
    /// others'.
    fn list_body(
        &mut self,
        key: &SubKey,
        ctype: &str,
        body: &[u8],
        cseq: Option<u32>,
        ordering: Option<Ordering>,
    ) {
        if blank(body) {
            return; // a list's state travels in its RLMI document
        }
        let notify = match body::parse_rls_notify(ctype, body) {
            Ok(n) => n,
            Err(e) => {
                self.out.push(Action::Warn(format!(
                    "unreadable NOTIFY of {} {}: {e}",
                    key.0.label(),
                    key.1
                )));
                return;
            }
        };
        if key.0 == Kind::DialogList
            && let Some(sub) = self.subs.get_mut(key)
            && !sub.lines.newer(cseq)
        {
            return;
        }
        let members = Members::new(&self.s, self.watched.keys());
        let full_state = notify.list.full_state;
        let mut refresh = false;
        for ResourceState {
            uri,
            instance,
            body,
        } in notify.resources
        {
            // Full state naming a resource without any instance: the
            // server has no state for it, as with an empty part (Kamailio's
            // rls drops a back-end NOTIFY without a body, so a line with no
            // dialog state is listed so).
            let body = match body {
                ResourceBody::NoState if instance.is_none() && full_state => ResourceBody::Empty,
                body => body,
            };
            let instance = instance.unwrap_or_default();
            if let ResourceBody::Error(e) = &body {
                self.out.push(Action::Warn(format!(
                    "{} {}: the part for {uri} (instance {instance:?}) cannot be read: {e}",
                    key.0.label(),
                    key.1
                )));
            }
            let Some(ep) = members.endpoint(&uri) else {
                continue; // in the list, not watched by the hub
            };
            refresh |= self.resource_body(key, ep, &instance, body, ordering.clone());
        }
        if refresh && let Some(sub) = self.subs.get_mut(key) {
            // A lost partial document: a refresh brings the list's full
            // state, as for a subscription of one's own.
            sub.cseq += 1;
            self.send_subscribe(key, None);
        }
    }

    /// One resource instance of a list NOTIFY; `true` when the list's
    /// state needs a refresh.
    fn resource_body(
        &mut self,
        key: &SubKey,
        ep: String,
        instance: &str,
        body: ResourceBody,
        ordering: Option<Ordering>,
    ) -> bool {
        let kind = key.0;
        match body {
            ResourceBody::Pidf(p) if kind == Kind::PresenceList => {
                self.report_pidf(ep, kind, p, ordering)
            }
            ResourceBody::Empty if kind == Kind::PresenceList => {
                self.nothing_published(ep, kind, ordering)
            }
            ResourceBody::DialogInfo(doc) if kind == Kind::DialogList => {
                let Some(sub) = self.subs.get_mut(key) else {
                    return false;
                };
                let version = doc.version;
                let applied = sub.lines.apply(&ep, instance, doc);
                if applied.applied {
                    let raw = format!("version {version}, line {:?}", sub.lines.line(&ep));
                    self.report_line(ep, kind, ordering, raw);
                }
                return applied.needs_refresh;
            }
            ResourceBody::Empty if kind == Kind::DialogList => {
                if let Some(sub) = self.subs.get_mut(key) {
                    sub.lines.clear(&ep, instance);
                }
                self.report_line(ep, kind, ordering, NO_DIALOGS.into());
            }
            ResourceBody::Terminated { reason } => {
                if let Some(sub) = self.subs.get_mut(key) {
                    sub.lines.remove(&ep, instance);
                }
                let st = match reason.as_deref() {
                    Some("noresource") => EndpointState::NotFound,
                    Some("rejected") => EndpointState::AccessDenied,
                    _ => EndpointState::Error,
                };
                self.report_state(&ep, kind, st, reason);
            }
            ResourceBody::Pending => self.report_state(
                &ep,
                kind,
                EndpointState::Requesting,
                Some("pending at the server".into()),
            ),
            // Nothing said about it in this NOTIFY.
            ResourceBody::NoState => {}
            ResourceBody::Error(e) => self.report_state(
                &ep,
                kind,
                EndpointState::Error,
                Some(format!("unreadable resource body: {e}")),
            ),
            // A presence document in a BLF list or dialog-info in a
            // presence list: not what the list was asked for.
            other => {
                let what = match other {
                    ResourceBody::Pidf(_) => "a presence document",
                    _ => "a dialog-info document",
                };
                self.out.push(Action::Warn(format!(
                    "{} {}: {what} for {ep}, ignored",
                    kind.label(),
                    key.1
                )));
                self.report_state(
                    &ep,
                    kind,
                    EndpointState::Error,
                    Some(format!("the {} sent {what}", kind.label())),
                );
            }
        }
        false
    }

    /// The telephony channel of `endpoint` as its dialog (or BLF list) and
    /// feature subscriptions know it.
    fn telephony(&self, endpoint: &str) -> TelephonyPresence {
        let line = match self.subs.get(&(Kind::Dialog, endpoint.to_string())) {
            Some(own) => own.tracker.line_state(),
            None => self
                .blf_list()
                .map_or(LineState::Unknown, |list| list.lines.line(endpoint)),
        };
        let features = self.subs.get(&(Kind::Features, endpoint.to_string()));
        TelephonyPresence {
            line,
            do_not_disturb: features.is_some_and(|f| f.features.dnd()),
            forward: features
                .and_then(|f| f.features.forward())
                .map(presence_connector_sdk::ForwardTarget::Number),
            source: TelephonySource::SipDerived,
        }
    }

    /// Report `endpoint`'s telephony after its line changed.
    fn report_line(
        &mut self,
        endpoint: String,
        kind: Kind,
        ordering: Option<Ordering>,
        raw: String,
    ) {
        let telephony = self.telephony(&endpoint);
        self.report_state(&endpoint, kind, EndpointState::Active, None);
        self.out.push(Action::Presence(PresenceUpdate {
            endpoint,
            observed_at: None,
            ordering,
            origin: UpdateOrigin::Platform,
            raw: vec![VendorValue {
                name: "dialog-info".into(),
                value: raw,
            }],
            telephony: Some(telephony),
            rich: None,
            calendar: None,
            valid_for_ms: None,
        }));
    }

    fn dialog_body(&mut self, key: &SubKey, body: &[u8], epoch: String) {
        let Some(sub) = self.subs.get_mut(key) else {
            return;
        };
        if blank(body) {
            // No dialog state at the server: no calls. Ordered as the last
            // document (not older, so it is taken).
            sub.tracker.clear();
            let ordering = Ordering {
                epoch,
                sequence: sub.tracker.version().unwrap_or(0),
            };
            return self.report_line(key.1.clone(), key.0, Some(ordering), NO_DIALOGS.into());
        }
        let doc = match body::parse_dialog_info(body) {
            Ok(d) => d,
            Err(e) => {
                self.report_state(
                    &key.1,
                    key.0,
                    EndpointState::Error,
                    Some(format!("unreadable dialog-info: {e}")),
                );
                return;
            }
        };
        let version = doc.version;
        let applied = sub.tracker.apply(doc);
        if applied.needs_refresh {
            // A lost partial update: refresh to get full state.
            sub.cseq += 1;
            self.send_subscribe(key, None);
        }
        if !applied.applied {
            return;
        }
        let line = self.telephony(&key.1).line;
        let ordering = Ordering {
            epoch,
            sequence: version,
        };
        self.report_line(
            key.1.clone(),
            key.0,
            Some(ordering),
            format!("version {version}, line {line:?}"),
        );
    }

    fn features_body(
        &mut self,
        key: &SubKey,
        ctype: &str,
        body: &[u8],
        ordering: Option<Ordering>,
    ) {
        if body.is_empty() {
            return;
        }
        let read = match body::parse_feature_events(ctype, body) {
            Ok(r) => r,
            Err(e) => {
                self.out.push(Action::Warn(format!(
                    "unreadable as-feature-event for {}: {e}",
                    key.1
                )));
                return;
            }
        };
        // One unreadable part never drops the others.
        for (part, e) in &read.refused {
            self.out.push(Action::Warn(format!(
                "as-feature-event for {}: MIME part {part} unreadable, the other parts applied: {e}",
                key.1
            )));
        }
        let Some(sub) = self.subs.get_mut(key) else {
            return;
        };
        sub.features.apply_all(read.events);
        // Every forwarding rule (busy, no answer) for operators to see; the
        // merge uses the immediate forward.
        let mut raw = sub.features.raw();
        let telephony = self.telephony(&key.1);
        raw.insert(
            0,
            VendorValue {
                name: "as-feature-event".into(),
                value: format!(
                    "dnd={} forward={:?}",
                    telephony.do_not_disturb, telephony.forward
                ),
            },
        );
        self.out.push(Action::Presence(PresenceUpdate {
            endpoint: key.1.clone(),
            observed_at: None,
            ordering,
            origin: UpdateOrigin::Platform,
            calendar: None,
            valid_for_ms: None,
            raw,
            telephony: Some(telephony),
            rich: None,
        }));
    }

    // ---- publications ----------------------------------------------------

    /// Start the hub's write: PUBLISH a state, or remove ours for a
    /// restore. `Ok` means accepted; one [`Action::Outcome`] follows,
    /// possibly at once.
    pub fn write(&mut self, request: WriteRequest, now_ms: u64) -> Result<(), ConnectorError> {
        let WriteRequest {
            id,
            endpoint,
            action,
        } = request;
        if self.stopping {
            return Err(ConnectorError::Other("the connector is stopping".into()));
        }
        match action {
            WriteAction::Set(intent) => {
                if intent.dnd_scope == Some(DndScope::QueueCalls) {
                    return Err(ConnectorError::Unsupported(
                        "SIP presence has no do-not-disturb for queue calls only".into(),
                    ));
                }
                if self.local.is_none() {
                    return Err(not_connected());
                }
                let target = self.s.target_uri(&endpoint);
                let tuple = hub_tuple(&target);
                let body = body::build_pidf(&target, &tuple, &intent, now_ms).into_bytes();
                // What the document reads as on its own: a NOTIFY that
                // reads so with our tuple in it is this write's echo.
                let shows = body::parse_pidf(&body)
                    .map_err(|e| ConnectorError::Other(format!("unreadable own PIDF: {e}")))?
                    .rich;
                self.echoes.record(&endpoint, &tuple, id, shows);
                let state = State::new(id, body, intent.expires_in_ms, self.s.publish_expires);
                self.pubs
                    .entry(endpoint.clone())
                    .or_insert_with(|| Publication::new(target))
                    .set(state);
            }
            WriteAction::Restore => {
                let connected = self.local.is_some();
                match self.pubs.get_mut(&endpoint) {
                    // Nothing of ours at the server: the person's own state shows.
                    None => self.out.push(Action::Outcome(id, WriteOutcome::Restored)),
                    Some(_) if !connected => return Err(not_connected()),
                    Some(p) => {
                        p.restore(id);
                        self.out.push(Action::CancelTimer(TimerKey::PublishRefresh(
                            endpoint.clone(),
                        )));
                    }
                }
            }
        }
        self.pump(&endpoint);
        Ok(())
    }

    /// After every change to `endpoint`'s publication: send what it has to
    /// send, report the outcomes it decided, and forget it once idle.
    fn pump(&mut self, endpoint: &str) {
        while let Some(p) = self.pubs.get_mut(endpoint) {
            let next = p.next();
            let target = p.target.clone();
            for (id, outcome) in p.take_outcomes() {
                self.out.push(Action::Outcome(id, outcome));
            }
            let Some(publish) = next else {
                if p.is_idle() {
                    self.pubs.remove(endpoint);
                }
                return;
            };
            if self.send_publish(endpoint, target, publish) {
                return;
            }
            if let Some(p) = self.pubs.get_mut(endpoint) {
                p.failed(publication::unanswered("not connected to the server"));
            }
        }
    }

    /// Send a PUBLISH; `false` without a transport.
    fn send_publish(&mut self, endpoint: &str, target: String, publish: Publish) -> bool {
        let tag = self.random();
        let call_id = format!("{}@hub", self.random());
        let mut headers = vec![
            ("Event".to_string(), "presence".to_string()),
            ("Expires".to_string(), publish.expires.to_string()),
        ];
        if let Some(etag) = publish.etag {
            headers.push(("SIP-If-Match".into(), etag));
        }
        let t = Template {
            method: "PUBLISH",
            request_uri: target.clone(),
            from: format!("<{}>;tag={tag}", self.s.aor()),
            to: format!("<{target}>"),
            call_id,
            cseq: 1,
            routes: vec![],
            headers,
            body: publish
                .body
                .map(|b| ("application/pidf+xml".to_string(), b)),
        };
        self.start_tx(Purpose::Publish(endpoint.to_string()), t)
            .is_some()
    }

    fn publish_timer(&mut self, endpoint: &str) {
        if let Some(p) = self.pubs.get_mut(endpoint) {
            p.timer_fired();
        }
        self.pump(endpoint);
    }

    fn publish_failed(&mut self, endpoint: &str, failure: WriteFailure) {
        if let Some(p) = self.pubs.get_mut(endpoint) {
            p.failed(failure);
        }
        self.pump(endpoint);
    }

    fn publish_response(&mut self, endpoint: String, msg: &Message, code: u16) {
        let Some(p) = self.pubs.get_mut(&endpoint) else {
            return;
        };
        match code {
            200..=299 => {
                let etag = msg.header("sip-etag").map(str::to_string);
                let granted = msg.int_header("expires");
                if let Some(ms) = p.succeeded(etag, granted) {
                    self.out.push(Action::SetTimer(
                        TimerKey::PublishRefresh(endpoint.clone()),
                        ms,
                    ));
                }
                self.out.push(Action::Info(format!(
                    "PUBLISH for {endpoint} answered {code} {}",
                    reason(msg)
                )));
            }
            // Our entity tag expired at the server: publish afresh.
            412 => p.etag_unknown(),
            423 => p.too_brief(msg.int_header("min-expires")),
            _ => {
                self.out.push(Action::Warn(format!(
                    "PUBLISH for {endpoint} answered {code} {}",
                    reason(msg)
                )));
                p.failed(publication::refused(
                    code,
                    &reason(msg),
                    msg.retry_after_secs(),
                ));
            }
        }
        self.pump(&endpoint);
    }
}

fn not_connected() -> ConnectorError {
    ConnectorError::Other("not connected to the server yet; try again shortly".into())
}

/// The id of the hub's tuple in what it publishes for `target`: stable
/// per endpoint, so a NOTIFY shows whether it holds ours.
fn hub_tuple(target: &str) -> String {
    use sha2::{Digest, Sha256};
    format!(
        "hub-{}",
        hex::encode(&Sha256::digest(target.as_bytes())[..6])
    )
}

/// The route set a 2xx to a dialog-creating request makes: its
/// Record-Route in reverse (RFC 3261 §12.1.2).
fn route_set(msg: &Message) -> Vec<String> {
    let mut rr: Vec<String> = msg
        .headers_named("record-route")
        .map(str::to_string)
        .collect();
    rr.reverse();
    rr
}

fn reason(msg: &Message) -> String {
    match &msg.start {
        crate::sip::Start::Response { reason, .. } => reason.clone(),
        _ => String::new(),
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// A body with nothing in it (some servers send a line break).
fn blank(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

/// The raw value of a line with no dialog state at the server.
const NO_DIALOGS: &str = "none: no dialog state at the server";

/// The watched endpoints by the URIs a resource list names them with.
struct Members {
    by_uri: HashMap<String, String>,
    /// Bare extensions and user names by themselves: BroadWorks names list
    /// members by their address at its application server
    /// (`sip:4605@as.example.com`), which need not be the domain bare
    /// endpoints are completed with.
    by_user: HashMap<String, String>,
}

impl Members {
    fn new<'a>(s: &Settings, watched: impl Iterator<Item = &'a String>) -> Members {
        let mut m = Members {
            by_uri: HashMap::new(),
            by_user: HashMap::new(),
        };
        for ep in watched {
            m.by_uri.insert(entity_key(&s.target_uri(ep)), ep.clone());
            if !ep.contains('@') && !ep.contains(':') {
                m.by_user.insert(ep.clone(), ep.clone());
            }
        }
        m
    }

    fn endpoint(&self, uri: &str) -> Option<String> {
        let uri = entity_key(uri);
        self.by_uri
            .get(&uri)
            .or_else(|| self.by_user.get(uri.split('@').next()?))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Events;
    use presence_connector_sdk::{Availability, PresenceIntent};

    fn settings() -> Settings {
        Settings {
            server_host: "127.0.0.1".into(),
            server_port: 5060,
            transport: Transport::Udp,
            user: "hub".into(),
            user_domain: "example.com".into(),
            auth_id: "hub".into(),
            password: Some("pw".into()),
            domain: "example.com".into(),
            expires: 600,
            events: Events {
                presence: true,
                dialog: false,
                features: false,
            },
            list_uri: None,
            blf_list_uri: None,
            publish_expires: 3600,
            keepalive_ms: 30_000,
        }
    }

    #[test]
    fn an_unreadable_request_is_answered_400_and_a_response_dropped() {
        let mut c = up(settings());
        c.take_actions();
        // A NOTIFY without From, To and CSeq: unreadable, but answerable.
        c.on_message(
            b"NOTIFY sip:hub@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bK-bad-1\r\n\
Call-ID: bad-1@192.0.2.20\r\nContent-Length: 0\r\n\r\n",
        );
        let actions = c.take_actions();
        let answer = actions.iter().find_map(|a| match a {
            Action::Send(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        });
        let answer = answer.expect("an answer to the sender");
        assert!(answer.starts_with("SIP/2.0 400 "), "{answer}");
        assert!(answer.contains("z9hG4bK-bad-1"), "{answer}");
        assert!(
            actions
                .iter()
                .any(|a| matches!(a, Action::Warn(w) if w.contains("#1")))
        );
        // A response nobody can answer is dropped, and counted.
        c.on_message(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP x\r\n\r\n");
        let actions = c.take_actions();
        assert!(!actions.iter().any(|a| matches!(a, Action::Send(_))));
        assert_eq!(c.unreadable_messages, 2);
    }

    /// Distinct counter bytes: identifiers only need to differ.
    fn counter() -> RandomBytes {
        let mut n = 0u64;
        Box::new(move |len| {
            n += 1;
            let mut bytes = n.to_be_bytes().to_vec();
            bytes.resize(len as usize, 0);
            bytes
        })
    }

    fn up(s: Settings) -> Core {
        let mut c = Core::new(s, counter());
        c.transport_up(Local {
            transport: "UDP",
            host: "127.0.0.1".into(),
            port: 5070,
        });
        c
    }

    fn sent(actions: &[Action]) -> Vec<Message> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(b) => Some(Message::parse(b).unwrap()),
                _ => None,
            })
            .collect()
    }

    fn requests(actions: &[Action], method: &str) -> Vec<Message> {
        sent(actions)
            .into_iter()
            .filter(|m| m.method() == Some(method))
            .collect()
    }

    fn reply(req: &Message, code: u16, extra: &str) -> Vec<u8> {
        let mut s = format!("SIP/2.0 {code} X\r\n");
        for v in req.headers_named("via") {
            s.push_str(&format!("Via: {v}\r\n"));
        }
        s.push_str(&format!(
            "From: {}\r\nTo: {};tag=srv\r\nCall-ID: {}\r\nCSeq: {}\r\n{extra}Content-Length: 0\r\n\r\n",
            req.header("from").unwrap(),
            req.header("to").unwrap(),
            req.header("call-id").unwrap(),
            req.header("cseq").unwrap()
        ));
        s.into_bytes()
    }

    fn notify(sub: &Message, state: &str, ctype: &str, body: &str) -> Vec<u8> {
        notify_n(sub, 1, state, ctype, body)
    }

    /// A NOTIFY in `sub`'s dialog with CSeq `n`.
    fn notify_n(sub: &Message, n: u32, state: &str, ctype: &str, body: &str) -> Vec<u8> {
        format!(
            "NOTIFY sip:hub@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKn{n}-{}\r\n\
From: {};tag=srv\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {n} NOTIFY\r\nEvent: {}\r\n\
Subscription-State: {state}\r\nContact: <sip:127.0.0.1:5060>\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len(),
            sub.header("to").unwrap(),
            sub.header("from").unwrap(),
            sub.header("call-id").unwrap(),
            sub.header("event").unwrap(),
            body.len()
        )
        .into_bytes()
    }

    const PIDF: &str = r#"<?xml version="1.0"?><presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:alice@example.com"><tuple id="t"><status><basic>open</basic></status></tuple><dm:person id="p"><rpid:activities><rpid:away/></rpid:activities><dm:note>lunch</dm:note></dm:person></presence>"#;

    /// Watch alice and answer the challenge and the SUBSCRIBE.
    fn subscribed(c: &mut Core) -> Message {
        c.take_actions();
        c.watch(&["alice".into()]);
        let a = c.take_actions();
        let sub = requests(&a, "SUBSCRIBE").remove(0);
        assert_eq!(sub.header("event"), Some("presence"));
        assert_eq!(
            sub.start,
            crate::sip::Start::Request {
                method: "SUBSCRIBE".into(),
                uri: "sip:alice@example.com".into()
            }
        );
        c.on_message(&reply(
            &sub,
            407,
            "Proxy-Authenticate: Digest realm=\"example.com\", nonce=\"abc\", qop=\"auth\"\r\n",
        ));
        let a = c.take_actions();
        let sub2 = requests(&a, "SUBSCRIBE").remove(0);
        assert!(
            sub2.header("proxy-authorization")
                .unwrap()
                .contains("nc=00000001")
        );
        assert_eq!(sub2.cseq().unwrap().0, sub.cseq().unwrap().0 + 1);
        assert_eq!(sub2.header("call-id"), sub.header("call-id"));
        c.on_message(&reply(
            &sub2,
            200,
            "Expires: 120\r\nContact: <sip:127.0.0.1:5060>\r\n",
        ));
        let a = c.take_actions();
        assert!(
            a.contains(&Action::SetTimer(
                TimerKey::Refresh((Kind::Presence, "alice".into())),
                88_000
            )),
            "{a:?}"
        );
        sub2
    }

    #[test]
    fn subscribe_auth_notify_and_report() {
        let mut c = up(settings());
        let sub = subscribed(&mut c);
        c.on_message(&notify(
            &sub,
            "active;expires=100",
            "application/pidf+xml",
            PIDF,
        ));
        let a = c.take_actions();
        let ok = sent(&a);
        assert_eq!(ok[0].code(), Some(200));
        let p = a
            .iter()
            .find_map(|x| match x {
                Action::Presence(p) => Some(p.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(p.endpoint, "alice");
        // Ordered by the NOTIFY's CSeq within the dialog; not our write.
        assert_eq!(
            p.ordering,
            Some(Ordering {
                epoch: sub.header("call-id").unwrap().into(),
                sequence: 1
            })
        );
        assert_eq!(p.origin, UpdateOrigin::Platform);
        let rich = p.rich.unwrap();
        assert_eq!(rich.availability, Availability::Away);
        assert_eq!(rich.note.as_deref(), Some("lunch"));
        assert!(a.contains(&Action::EndpointState(
            "alice".into(),
            EndpointState::Active,
            None
        )));
        // The Subscription-State expires reschedules the refresh.
        assert!(a.contains(&Action::SetTimer(
            TimerKey::Refresh((Kind::Presence, "alice".into())),
            68_000
        )));
    }

    #[test]
    fn empty_notify_unknown_xml_and_bad_bodies_do_not_break() {
        let mut c = up(settings());
        let sub = subscribed(&mut c);
        c.on_message(&notify(&sub, "active", "application/pidf+xml", ""));
        let a = c.take_actions();
        assert!(a.iter().any(|x| matches!(x, Action::EndpointState(_, EndpointState::Active, Some(d)) if d.contains("no presence"))));
        c.on_message(&notify(
            &sub,
            "active",
            "application/pidf+xml",
            "<presence><oops",
        ));
        let a = c.take_actions();
        assert_eq!(sent(&a)[0].code(), Some(200));
        assert!(
            a.iter()
                .any(|x| matches!(x, Action::EndpointState(_, EndpointState::Error, _)))
        );
        // Garbage datagrams are dropped with a warning.
        c.on_message(b"\x00\x01garbage");
        assert!(matches!(c.take_actions()[0], Action::Warn(_)));
    }

    #[test]
    fn refresh_423_481_and_unsubscribe() {
        let mut c = up(settings());
        let sub = subscribed(&mut c);
        let key = (Kind::Presence, "alice".to_string());
        c.on_timer(TimerKey::Refresh(key.clone()));
        let a = c.take_actions();
        let refresh = requests(&a, "SUBSCRIBE").remove(0);
        assert_eq!(refresh.header("call-id"), sub.header("call-id"));
        assert!(refresh.header("to").unwrap().contains("tag=srv"));
        assert_eq!(
            refresh.start,
            crate::sip::Start::Request {
                method: "SUBSCRIBE".into(),
                uri: "sip:127.0.0.1:5060".into()
            }
        );
        // 423 with Min-Expires: retried with it.
        c.on_message(&reply(&refresh, 423, "Min-Expires: 1800\r\n"));
        let again = requests(&c.take_actions(), "SUBSCRIBE").remove(0);
        assert_eq!(again.header("expires"), Some("1800"));
        // 481: the server forgot us; a new dialog starts.
        c.on_message(&reply(&again, 481, ""));
        let fresh = requests(&c.take_actions(), "SUBSCRIBE").remove(0);
        assert_ne!(fresh.header("call-id"), sub.header("call-id"));
        assert!(!fresh.header("to").unwrap().contains("tag="));
        c.on_message(&reply(&fresh, 200, "Expires: 1800\r\n"));
        c.take_actions();
        // Unwatch: Expires 0 in the dialog.
        c.unwatch(&["alice".into()]);
        let bye = requests(&c.take_actions(), "SUBSCRIBE").remove(0);
        assert_eq!(bye.header("expires"), Some("0"));
        assert_eq!(bye.header("call-id"), fresh.header("call-id"));
        c.on_message(&notify(
            &bye,
            "terminated;reason=timeout",
            "application/pidf+xml",
            "",
        ));
        assert_eq!(sent(&c.take_actions())[0].code(), Some(200));
        assert!(c.subs.is_empty());
    }

    #[test]
    fn termination_reasons() {
        for (reason, want_new, state) in [
            ("deactivated", true, None),
            ("timeout", true, None),
            ("rejected", false, Some(EndpointState::AccessDenied)),
            ("noresource", false, Some(EndpointState::NotFound)),
            (
                "probation;retry-after=5",
                false,
                Some(EndpointState::Requesting),
            ),
            ("giveup", false, Some(EndpointState::Requesting)),
        ] {
            let mut c = up(settings());
            let sub = subscribed(&mut c);
            c.on_message(&notify(
                &sub,
                &format!("terminated;reason={reason}"),
                "application/pidf+xml",
                "",
            ));
            let a = c.take_actions();
            let resubscribed = !requests(&a, "SUBSCRIBE").is_empty();
            assert_eq!(resubscribed, want_new, "{reason}: {a:?}");
            if let Some(st) = state {
                assert!(
                    a.iter()
                        .any(|x| matches!(x, Action::EndpointState(_, s, _) if *s == st)),
                    "{reason}: {a:?}"
                );
            }
            if reason.starts_with("probation") {
                assert!(a.contains(&Action::SetTimer(
                    TimerKey::Retry((Kind::Presence, "alice".into())),
                    5_000
                )));
            }
        }
    }

    #[test]
    fn unknown_notify_gets_481_and_missing_state_400() {
        let mut c = up(settings());
        let sub = subscribed(&mut c);
        let mut other = notify(&sub, "active", "application/pidf+xml", "");
        let s = String::from_utf8(other.clone())
            .unwrap()
            .replace(sub.header("call-id").unwrap(), "nope");
        other = s.into_bytes();
        c.on_message(&other);
        assert_eq!(sent(&c.take_actions())[0].code(), Some(481));
        let s = String::from_utf8(notify(&sub, "active", "application/pidf+xml", ""))
            .unwrap()
            .replace("Subscription-State: active\r\n", "");
        c.on_message(s.as_bytes());
        assert_eq!(sent(&c.take_actions())[0].code(), Some(400));
    }

    #[test]
    fn wrong_password_is_forbidden_and_no_password_is_credentials_not_found() {
        let mut c = up(settings());
        c.take_actions();
        c.watch(&["alice".into()]);
        let sub = requests(&c.take_actions(), "SUBSCRIBE").remove(0);
        let ch = "WWW-Authenticate: Digest realm=\"r\", nonce=\"n1\"\r\n";
        c.on_message(&reply(&sub, 401, ch));
        let sub2 = requests(&c.take_actions(), "SUBSCRIBE").remove(0);
        assert!(sub2.header("authorization").is_some());
        c.on_message(&reply(
            &sub2,
            401,
            "WWW-Authenticate: Digest realm=\"r\", nonce=\"n2\"\r\n",
        ));
        let a = c.take_actions();
        assert!(
            a.iter()
                .any(|x| matches!(x, Action::Status(ConnectorStatus::Forbidden, _))),
            "{a:?}"
        );
        assert!(
            a.iter()
                .any(|x| matches!(x, Action::EndpointState(_, EndpointState::AccessDenied, _)))
        );
        // A stale nonce is answered again, not treated as a failure.
        let mut c = up(settings());
        c.take_actions();
        c.watch(&["alice".into()]);
        let sub = requests(&c.take_actions(), "SUBSCRIBE").remove(0);
        c.on_message(&reply(&sub, 401, ch));
        let sub2 = requests(&c.take_actions(), "SUBSCRIBE").remove(0);
        c.on_message(&reply(
            &sub2,
            401,
            "WWW-Authenticate: Digest realm=\"r\", nonce=\"n3\", stale=true\r\n",
        ));
        assert_eq!(requests(&c.take_actions(), "SUBSCRIBE").len(), 1);

        let mut s = settings();
        s.password = None;
        let mut c = up(s);
        c.take_actions();
        c.watch(&["alice".into()]);
        let sub = requests(&c.take_actions(), "SUBSCRIBE").remove(0);
        c.on_message(&reply(&sub, 401, ch));
        let a = c.take_actions();
        assert!(
            a.iter()
                .any(|x| matches!(x, Action::Status(ConnectorStatus::CredentialsNotFound, _)))
        );
    }

    #[test]
    fn many_watches_subscribe_a_window_at_a_time_and_notifies_find_their_dialog() {
        let mut c = up(settings());
        c.take_actions();
        let eps: Vec<String> = (0..200).map(|i| format!("u{i}")).collect();
        c.watch(&eps);
        let first = requests(&c.take_actions(), "SUBSCRIBE");
        assert_eq!(first.len(), MAX_SUBSCRIBING);
        // Each answer lets one more out, until all 200 went.
        let mut sent = first.len();
        let mut pending = first;
        while let Some(sub) = pending.pop() {
            c.on_message(&reply(&sub, 200, "Expires: 600\r\n"));
            let more = requests(&c.take_actions(), "SUBSCRIBE");
            sent += more.len();
            pending.extend(more);
        }
        assert_eq!(sent, 200);
        // A NOTIFY for any of the 200 dialogs is matched to it.
        c.watch(&["late".into()]);
        let sub = requests(&c.take_actions(), "SUBSCRIBE").remove(0);
        c.on_message(&notify(
            &sub,
            "active;expires=600",
            "application/pidf+xml",
            PIDF,
        ));
        let a = c.take_actions();
        assert_eq!(sent_code(&a), Some(200));
        assert!(
            a.iter()
                .any(|x| matches!(x, Action::Presence(p) if p.endpoint == "late"))
        );
    }

    fn reports(actions: &[Action]) -> Vec<PresenceUpdate> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Presence(p) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn dialog_versions_are_ordered_within_their_dialog() {
        let mut s = settings();
        s.events = Events {
            presence: false,
            dialog: true,
            features: false,
        };
        let mut c = up(s);
        c.take_actions();
        c.watch(&["2001".into()]);
        let dl = requests(&c.take_actions(), "SUBSCRIBE").remove(0);
        c.on_message(&reply(&dl, 200, "Expires: 600\r\n"));
        c.take_actions();
        let doc = |v: u64| {
            format!(
                r#"<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="{v}" state="full" entity="sip:2001@example.com"/>"#
            )
        };
        c.on_message(&notify(
            &dl,
            "active",
            "application/dialog-info+xml",
            &doc(7),
        ));
        let p = reports(&c.take_actions()).remove(0);
        let first = dl.header("call-id").unwrap().to_string();
        assert_eq!(
            p.ordering,
            Some(Ordering {
                epoch: first.clone(),
                sequence: 7
            })
        );
        assert_eq!(p.origin, UpdateOrigin::Platform);
        // The server forgets the dialog: a new one counts from 0 again,
        // in an order of its own.
        c.on_timer(TimerKey::Refresh((Kind::Dialog, "2001".into())));
        let refresh = requests(&c.take_actions(), "SUBSCRIBE").remove(0);
        c.on_message(&reply(&refresh, 481, ""));
        let fresh = requests(&c.take_actions(), "SUBSCRIBE").remove(0);
        c.on_message(&reply(&fresh, 200, "Expires: 600\r\n"));
        c.on_message(&notify(
            &fresh,
            "active",
            "application/dialog-info+xml",
            &doc(0),
        ));
        let p = reports(&c.take_actions()).remove(0);
        let second = fresh.header("call-id").unwrap().to_string();
        assert_ne!(second, first);
        assert_eq!(
            p.ordering,
            Some(Ordering {
                epoch: second,
                sequence: 0
            })
        );
    }

    fn sent_code(actions: &[Action]) -> Option<u16> {
        sent(actions).first().and_then(|m| m.code())
    }

    #[test]
    fn udp_retransmits_and_timer_f_then_timer_n() {
        let mut c = up(settings());
        c.take_actions();
        c.watch(&["alice".into()]);
        let a = c.take_actions();
        let sub = requests(&a, "SUBSCRIBE").remove(0);
        let branch = sub.branch().unwrap();
        assert!(a.contains(&Action::SetTimer(TimerKey::Retransmit(branch.clone()), T1)));
        c.on_timer(TimerKey::Retransmit(branch.clone()));
        let a = c.take_actions();
        assert_eq!(requests(&a, "SUBSCRIBE")[0].branch(), Some(branch.clone()));
        assert!(a.contains(&Action::SetTimer(
            TimerKey::Retransmit(branch.clone()),
            2 * T1
        )));
        c.on_timer(TimerKey::TxTimeout(branch));
        let a = c.take_actions();
        assert!(a.iter().any(|x| matches!(x, Action::EndpointState(_, EndpointState::Error, Some(d)) if d.contains("Timer F"))));
        assert!(
            a.iter()
                .any(|x| matches!(x, Action::SetTimer(TimerKey::Retry(_), _)))
        );
        // Timer N: a 2xx but no NOTIFY is not a failure; no 2xx and no NOTIFY is.
        let mut c = up(settings());
        c.take_actions();
        c.watch(&["alice".into()]);
        c.take_actions();
        c.on_timer(TimerKey::TimerN((Kind::Presence, "alice".into())));
        let a = c.take_actions();
        assert!(a.iter().any(|x| matches!(x, Action::EndpointState(_, EndpointState::Error, Some(d)) if d.contains("Timer N"))));
    }

    #[test]
    fn lost_server_then_back_resubscribes() {
        let mut c = up(settings());
        let sub = subscribed(&mut c);
        let a = c.take_actions();
        assert!(a.is_empty());
        c.on_timer(TimerKey::Keepalive);
        let opt = requests(&c.take_actions(), "OPTIONS").remove(0);
        c.on_timer(TimerKey::TxTimeout(opt.branch().unwrap()));
        let a = c.take_actions();
        assert!(
            a.iter()
                .any(|x| matches!(x, Action::Status(ConnectorStatus::ConnectionError, _)))
        );
        c.on_timer(TimerKey::Keepalive);
        let opt = requests(&c.take_actions(), "OPTIONS").remove(0);
        c.on_message(&reply(&opt, 200, ""));
        let a = c.take_actions();
        assert!(
            a.iter()
                .any(|x| matches!(x, Action::Status(ConnectorStatus::UpAndRunning, _)))
        );
        let fresh = requests(&a, "SUBSCRIBE").remove(0);
        assert_ne!(fresh.header("call-id"), sub.header("call-id"));
    }

    const NOW: u64 = 1_700_000_000_000;

    fn set(
        id: WriteId,
        endpoint: &str,
        a: Availability,
        expires_in_ms: Option<u64>,
    ) -> WriteRequest {
        WriteRequest {
            id,
            endpoint: endpoint.into(),
            action: WriteAction::Set(PresenceIntent {
                availability: a,
                activity: None,
                note: None,
                dnd_scope: None,
                expires_in_ms,
            }),
        }
    }

    fn restore(id: WriteId, endpoint: &str) -> WriteRequest {
        WriteRequest {
            id,
            endpoint: endpoint.into(),
            action: WriteAction::Restore,
        }
    }

    fn outcomes(actions: &[Action]) -> Vec<(WriteId, WriteOutcome)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Outcome(id, o) => Some((*id, o.clone())),
                _ => None,
            })
            .collect()
    }

    /// Write `id` for alice and return its PUBLISH.
    fn publishing(c: &mut Core, id: WriteId, a: Availability) -> Message {
        c.write(set(id, "alice", a, None), NOW).unwrap();
        requests(&c.take_actions(), "PUBLISH").remove(0)
    }

    #[test]
    fn publish_etag_refresh_modify_remove_and_412() {
        let mut c = up(settings());
        c.take_actions();
        let p = publishing(&mut c, 1, Availability::DoNotDisturb);
        assert_eq!(p.header("event"), Some("presence"));
        assert!(p.header("sip-if-match").is_none());
        assert!(String::from_utf8_lossy(&p.body).contains("do-not-disturb"));
        c.on_message(&reply(&p, 200, "SIP-ETag: e1\r\nExpires: 120\r\n"));
        let a = c.take_actions();
        assert!(a.contains(&Action::SetTimer(
            TimerKey::PublishRefresh("alice".into()),
            88_000
        )));
        assert_eq!(outcomes(&a), [(1, WriteOutcome::Applied)]);
        c.on_timer(TimerKey::PublishRefresh("alice".into()));
        let r = requests(&c.take_actions(), "PUBLISH").remove(0);
        assert_eq!(r.header("sip-if-match"), Some("e1"));
        assert!(r.body.is_empty());
        // 412: the etag is gone; publish the state afresh.
        c.on_message(&reply(&r, 412, ""));
        let fresh = requests(&c.take_actions(), "PUBLISH").remove(0);
        assert!(fresh.header("sip-if-match").is_none() && !fresh.body.is_empty());
        c.on_message(&reply(&fresh, 200, "SIP-ETag: e2\r\nExpires: 120\r\n"));
        assert!(outcomes(&c.take_actions()).is_empty());
        let modify = publishing(&mut c, 2, Availability::Away);
        assert_eq!(modify.header("sip-if-match"), Some("e2"));
        assert!(!modify.body.is_empty());
        c.on_message(&reply(&modify, 200, "SIP-ETag: e3\r\nExpires: 120\r\n"));
        assert_eq!(outcomes(&c.take_actions()), [(2, WriteOutcome::Applied)]);
        c.write(restore(3, "alice"), NOW).unwrap();
        let a = c.take_actions();
        assert!(a.contains(&Action::CancelTimer(TimerKey::PublishRefresh(
            "alice".into()
        ))));
        let rm = requests(&a, "PUBLISH").remove(0);
        assert_eq!(rm.header("expires"), Some("0"));
        assert_eq!(rm.header("sip-if-match"), Some("e3"));
        c.on_message(&reply(&rm, 200, ""));
        assert_eq!(outcomes(&c.take_actions()), [(3, WriteOutcome::Restored)]);
        assert!(c.pubs.is_empty());
        // Nothing of ours left: restored at once.
        c.write(restore(4, "alice"), NOW).unwrap();
        let a = c.take_actions();
        assert_eq!(outcomes(&a), [(4, WriteOutcome::Restored)]);
        assert!(requests(&a, "PUBLISH").is_empty());
    }

    #[test]
    fn a_modify_that_hits_412_reports_after_the_fresh_publish() {
        let mut c = up(settings());
        c.take_actions();
        let p = publishing(&mut c, 1, Availability::Busy);
        c.on_message(&reply(&p, 200, "SIP-ETag: e1\r\n"));
        c.take_actions();
        let modify = publishing(&mut c, 2, Availability::Away);
        c.on_message(&reply(&modify, 412, ""));
        let a = c.take_actions();
        assert!(outcomes(&a).is_empty());
        let fresh = requests(&a, "PUBLISH").remove(0);
        assert!(fresh.header("sip-if-match").is_none());
        assert!(String::from_utf8_lossy(&fresh.body).contains("rpid:away"));
        c.on_message(&reply(&fresh, 200, "SIP-ETag: e2\r\n"));
        assert_eq!(outcomes(&c.take_actions()), [(2, WriteOutcome::Applied)]);
    }

    #[test]
    fn final_refusals_fail_the_write() {
        for (code, extra, retryable, retry_after_ms) in [
            (403, "", false, None),
            (
                503,
                "Retry-After: 120 (maintenance)\r\n",
                true,
                Some(120_000),
            ),
            (500, "", true, None),
            (603, "", false, None),
        ] {
            let mut c = up(settings());
            c.take_actions();
            let p = publishing(&mut c, 7, Availability::Busy);
            c.on_message(&reply(&p, code, extra));
            let a = c.take_actions();
            let [(7, WriteOutcome::Failed(f))] = &outcomes(&a)[..] else {
                panic!("{code}: {a:?}");
            };
            assert_eq!(
                (f.retryable, f.retry_after_ms, f.status),
                (retryable, retry_after_ms, Some(code)),
                "{code}"
            );
            assert!(f.message.contains(&code.to_string()), "{}", f.message);
            // Nothing of ours went up: nothing to keep.
            assert!(c.pubs.is_empty());
        }
    }

    #[test]
    fn challenges_are_answered_not_reported() {
        let mut c = up(settings());
        c.take_actions();
        let p = publishing(&mut c, 1, Availability::Busy);
        let challenge = "Proxy-Authenticate: Digest realm=\"r\", nonce=\"n1\"\r\n";
        c.on_message(&reply(&p, 407, challenge));
        let a = c.take_actions();
        assert!(outcomes(&a).is_empty());
        let answered = requests(&a, "PUBLISH").remove(0);
        assert!(answered.header("proxy-authorization").is_some());
        c.on_message(&reply(&answered, 200, "SIP-ETag: e1\r\n"));
        assert_eq!(outcomes(&c.take_actions()), [(1, WriteOutcome::Applied)]);
        // Wrong credentials: a fresh challenge to our answer.
        let p = publishing(&mut c, 2, Availability::Away);
        c.on_message(&reply(&p, 407, challenge));
        let answered = requests(&c.take_actions(), "PUBLISH").remove(0);
        c.on_message(&reply(
            &answered,
            407,
            "Proxy-Authenticate: Digest realm=\"r\", nonce=\"n2\"\r\n",
        ));
        let a = c.take_actions();
        let [(2, WriteOutcome::Failed(f))] = &outcomes(&a)[..] else {
            panic!("{a:?}");
        };
        assert_eq!((f.retryable, f.status), (false, Some(407)));
    }

    #[test]
    fn a_newer_write_supersedes_the_one_in_flight() {
        let mut c = up(settings());
        c.take_actions();
        let first = publishing(&mut c, 1, Availability::Busy);
        c.write(set(2, "alice", Availability::Away, None), NOW)
            .unwrap();
        let a = c.take_actions();
        assert_eq!(outcomes(&a), [(1, WriteOutcome::Superseded)]);
        // RFC 3903 §4.1: one PUBLISH in flight; 2 needs 1's entity tag.
        assert!(requests(&a, "PUBLISH").is_empty());
        c.on_message(&reply(&first, 200, "SIP-ETag: e1\r\n"));
        let a = c.take_actions();
        assert!(outcomes(&a).is_empty());
        let second = requests(&a, "PUBLISH").remove(0);
        assert_eq!(second.header("sip-if-match"), Some("e1"));
        assert!(String::from_utf8_lossy(&second.body).contains("rpid:away"));
        c.on_message(&reply(&second, 200, "SIP-ETag: e2\r\n"));
        assert_eq!(outcomes(&c.take_actions()), [(2, WriteOutcome::Applied)]);
    }

    #[test]
    fn unanswered_writes_fail_retryable_and_unconnected_ones_are_refused() {
        let mut c = up(settings());
        c.take_actions();
        let p = publishing(&mut c, 1, Availability::Busy);
        c.on_timer(TimerKey::TxTimeout(p.branch().unwrap()));
        let a = c.take_actions();
        let [(1, WriteOutcome::Failed(f))] = &outcomes(&a)[..] else {
            panic!("{a:?}");
        };
        assert!(f.retryable && f.status.is_none() && f.message.contains("Timer F"));
        publishing(&mut c, 2, Availability::Busy);
        c.transport_down("connection reset");
        let a = c.take_actions();
        let [(2, WriteOutcome::Failed(f))] = &outcomes(&a)[..] else {
            panic!("{a:?}");
        };
        assert!(f.retryable && f.message.contains("connection reset"));
        assert!(
            c.write(set(3, "alice", Availability::Away, None), NOW)
                .is_err()
        );
        assert!(outcomes(&c.take_actions()).is_empty());
    }

    #[test]
    fn an_expiring_write_lasts_its_expiry_and_is_not_refreshed() {
        let mut c = up(settings());
        c.take_actions();
        c.write(set(1, "alice", Availability::Busy, Some(90_000)), NOW)
            .unwrap();
        let p = requests(&c.take_actions(), "PUBLISH").remove(0);
        assert_eq!(p.header("expires"), Some("90"));
        c.on_message(&reply(&p, 200, "SIP-ETag: e1\r\nExpires: 90\r\n"));
        let a = c.take_actions();
        assert_eq!(outcomes(&a), [(1, WriteOutcome::Applied)]);
        assert!(a.contains(&Action::SetTimer(
            TimerKey::PublishRefresh("alice".into()),
            90_000
        )));
        // The server dropped it as the write lapsed: nothing to send.
        c.on_timer(TimerKey::PublishRefresh("alice".into()));
        assert!(requests(&c.take_actions(), "PUBLISH").is_empty());
        assert!(c.pubs.is_empty());
        c.write(restore(2, "alice"), NOW).unwrap();
        assert_eq!(outcomes(&c.take_actions()), [(2, WriteOutcome::Restored)]);
    }

    #[test]
    fn shutdown_fails_writes_in_flight_and_removes_ours() {
        let mut c = up(settings());
        c.take_actions();
        let p = publishing(&mut c, 1, Availability::Busy);
        c.on_message(&reply(&p, 200, "SIP-ETag: e1\r\n"));
        c.take_actions();
        publishing(&mut c, 2, Availability::Away);
        c.shutdown();
        let a = c.take_actions();
        assert!(matches!(
            &outcomes(&a)[..],
            [(2, WriteOutcome::Failed(f))] if f.retryable
        ));
        let rm = requests(&a, "PUBLISH").remove(0);
        assert_eq!(
            (rm.header("expires"), rm.header("sip-if-match")),
            (Some("0"), Some("e1"))
        );
    }

    #[test]
    fn queue_calls_dnd_is_refused() {
        let mut c = up(settings());
        c.take_actions();
        let mut w = set(1, "alice", Availability::DoNotDisturb, None);
        if let WriteAction::Set(i) = &mut w.action {
            i.dnd_scope = Some(DndScope::QueueCalls);
        }
        assert!(matches!(
            c.write(w, NOW),
            Err(ConnectorError::Unsupported(_))
        ));
        assert!(c.take_actions().is_empty());
    }

    #[test]
    fn a_notify_showing_our_write_is_its_echo() {
        let mut c = up(settings());
        let sub = subscribed(&mut c);
        let p = publishing(&mut c, 5, Availability::DoNotDisturb);
        let ours = String::from_utf8(p.body).unwrap();
        let shown = |c: &mut Core, doc: &str| {
            c.on_message(&notify(&sub, "active", "application/pidf+xml", doc));
            reports(&c.take_actions()).remove(0)
        };
        let echo = shown(&mut c, &ours);
        assert_eq!(echo.origin, UpdateOrigin::HubWrite(5));
        assert_eq!(echo.rich.unwrap().availability, Availability::DoNotDisturb);
        // Composed with the person's idle phone, it still reads as ours.
        let phone = r#"<tuple id="phone"><status><basic>open</basic></status></tuple>"#;
        let composed = ours.replace("</presence>", &format!("{phone}</presence>"));
        assert_eq!(shown(&mut c, &composed).origin, UpdateOrigin::HubWrite(5));
        // The phone goes on a call: the person's change, though ours is in it.
        let call = r#"<dm:person id="pp"><rpid:activities><rpid:on-the-phone/></rpid:activities></dm:person>"#;
        let calling = composed.replace("</presence>", &format!("{call}</presence>"));
        assert_eq!(shown(&mut c, &calling).origin, UpdateOrigin::Platform);
        // Not ours at all.
        assert_eq!(shown(&mut c, PIDF).origin, UpdateOrigin::Platform);
    }

    #[test]
    fn in_dialog_rechallenge_489_and_404() {
        let mut c = up(settings());
        let sub = subscribed(&mut c);
        let key = (Kind::Presence, "alice".to_string());
        c.on_timer(TimerKey::Refresh(key.clone()));
        let refresh = requests(&c.take_actions(), "SUBSCRIBE").remove(0);
        c.on_message(&reply(
            &refresh,
            401,
            "WWW-Authenticate: Digest realm=\"r\", nonce=\"fresh\", qop=\"auth\"\r\n",
        ));
        let again = requests(&c.take_actions(), "SUBSCRIBE").remove(0);
        assert!(
            again
                .header("authorization")
                .unwrap()
                .contains("nonce=\"fresh\"")
        );
        assert_eq!(again.header("call-id"), sub.header("call-id"));
        assert!(again.header("to").unwrap().contains("tag=srv"));

        let mut s = settings();
        s.events.dialog = true;
        let mut c = up(s);
        c.take_actions();
        c.watch(&["ghost".into()]);
        let subs = requests(&c.take_actions(), "SUBSCRIBE");
        let dialog = subs
            .iter()
            .find(|m| m.header("event") == Some("dialog"))
            .unwrap();
        let presence = subs
            .iter()
            .find(|m| m.header("event") == Some("presence"))
            .unwrap();
        c.on_message(&reply(dialog, 489, "Allow-Events: presence\r\n"));
        let a = c.take_actions();
        // Presence may still work: the endpoint waits for it, naming what
        // failed.
        assert!(a.iter().any(|x| matches!(x, Action::EndpointState(_, EndpointState::Requesting, Some(d)) if d.contains("dialog: the server does not support the dialog event package"))), "{a:?}");
        assert!(
            !a.iter()
                .any(|x| matches!(x, Action::SetTimer(TimerKey::Retry(_), _))),
            "489 is not retried"
        );
        c.on_message(&reply(presence, 404, ""));
        let a = c.take_actions();
        assert!(
            a.iter()
                .any(|x| matches!(x, Action::EndpointState(_, EndpointState::NotFound, _)))
        );
    }

    #[test]
    fn feature_events_and_dialog_make_telephony() {
        let mut s = settings();
        s.events = Events {
            presence: false,
            dialog: true,
            features: true,
        };
        let mut c = up(s);
        c.take_actions();
        c.watch(&["2001".into()]);
        let subs = requests(&c.take_actions(), "SUBSCRIBE");
        let fe = subs
            .iter()
            .find(|m| m.header("event") == Some("as-feature-event"))
            .unwrap()
            .clone();
        let dl = subs
            .iter()
            .find(|m| m.header("event") == Some("dialog"))
            .unwrap()
            .clone();
        for m in [&fe, &dl] {
            c.on_message(&reply(m, 200, "Expires: 600\r\n"));
        }
        c.take_actions();
        let ns = "http://www.ecma-international.org/standards/ecma-323/csta/ed3";
        let fwd = format!(
            r#"<ForwardingEvent xmlns="{ns}"><device>2001</device><forwardingType>forwardImmediate</forwardingType><forwardStatus>true</forwardStatus><forwardTo>700</forwardTo></ForwardingEvent>"#
        );
        c.on_message(&notify(
            &fe,
            "active",
            "application/x-as-feature-event+xml",
            &fwd,
        ));
        let dialog = r#"<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="3" state="full" entity="sip:2001@example.com"><dialog id="d1" direction="recipient"><state>confirmed</state></dialog></dialog-info>"#;
        c.on_message(&notify(
            &dl,
            "active",
            "application/dialog-info+xml",
            dialog,
        ));
        let dnd = format!(
            r#"<DoNotDisturbEvent xmlns="{ns}"><device>2001</device><doNotDisturbOn>true</doNotDisturbOn></DoNotDisturbEvent>"#
        );
        c.on_message(&notify(
            &fe,
            "active",
            "application/x-as-feature-event+xml",
            &dnd,
        ));
        let last = c
            .take_actions()
            .into_iter()
            .rev()
            .find_map(|a| match a {
                Action::Presence(p) => p.telephony,
                _ => None,
            })
            .unwrap();
        assert_eq!(last.line, LineState::InCall);
        assert!(last.do_not_disturb);
        assert_eq!(
            last.forward,
            Some(presence_connector_sdk::ForwardTarget::Number("700".into()))
        );
        assert_eq!(last.source, TelephonySource::SipDerived);
    }

    // Issue 22's kinds, by topic.
    mod empty_bodies;
    mod goodbyes;
    mod lists;
}
