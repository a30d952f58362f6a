//! The connector's engine, free of I/O: it takes HTTP answers, timer
//! expiries, watches and webhooks through its [`plain::Core`] hooks, and
//! returns [`Action`]s (send this request, set this timer, report this),
//! which the SDK's [`plain::Plain`] adapter carries out.
//!
//! Every refresh interval each watched calendar is due: its items (one
//! `getSchedule` per 20 mailboxes, or one `calendarView` per mailbox where
//! subjects are wanted) and its automatic replies (one `mailboxSettings`
//! read per mailbox). Work waits while there is no token, while Graph
//! throttles (its `Retry-After`) and while the connector's own request
//! budget is spent; a calendar is reported once both parts are in.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use presence_connector_sdk::graph::{self, AppToken, Budget, Gate, Outcome, TokenEvent};
use presence_connector_sdk::plain;
use presence_connector_sdk::{
    CalendarItem, CalendarPresence, ConnectorError, ConnectorStatus, EndpointState, OutOfOffice,
    PresenceUpdate, UpdateOrigin, VendorValue, WebhookRequest, WriteRequest, urlcode,
};

use crate::settings::Settings;
use crate::wire::{self, AutomaticReplies, Event, MAX_SCHEDULES, Page, ScheduleInformation};

/// A request's id.
pub type ReqId = u64;

/// A request's timeout.
const HTTP_TIMEOUT_MS: u32 = 20_000;
/// Requests in flight at once (Outlook allows four per mailbox).
const MAX_INFLIGHT: usize = 4;
/// Pages of one calendarView read, at most.
const MAX_PAGES: u32 = 20;
/// Events per calendarView page asked for.
const PAGE_SIZE: u32 = 50;
/// Graph refusing fresh tokens (401) is asked again at most this often.
const TOKEN_REJECT_GAP_MS: u64 = 60_000;

/// Log levels of [`Action::Log`]; requests to send (their `Debug` hides
/// the bearer token and the secret) and their answers, as plain data.
pub use presence_connector_sdk::plain::{Level, Request, Response};

/// Timers the core asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKey {
    /// Every calendar is due again.
    Poll,
    /// A token is due (renewal, or the wait after a failure is over).
    Token,
    /// The throttling or failure pause is over.
    Gate,
    /// The request budget has room again.
    Budget,
    /// Subscriptions due for renewal or a new try.
    Subs,
}

/// What the core wants done (the SDK's vocabulary for I/O-free cores; the
/// glue hands each to `Cx::apply`).
pub type Action = presence_connector_sdk::plain::Action<TimerKey, ReqId>;

/// Classes of Graph calls, for the permission a refusal names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Schedule,
    View,
    Replies,
}

impl Class {
    fn permission(self) -> &'static str {
        match self {
            Class::Schedule => "Calendars.Read (application)",
            Class::View => "Calendars.ReadBasic.All or Calendars.Read (application)",
            Class::Replies => "MailboxSettings.Read (application)",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Class::Schedule => "read free/busy (getSchedule)",
            Class::View => "read calendars (calendarView)",
            Class::Replies => "read automatic replies (mailboxSettings)",
        }
    }
}

#[derive(Debug, Clone)]
enum Purpose {
    Token,
    Schedule(Vec<String>),
    /// A calendarView read of one mailbox: the events of the pages so far.
    View(String, Vec<Event>, u32),
    Replies(String),
    CreateSub(String),
    RenewSub(String),
    Reauthorize(String),
    DeleteSub(String),
}

/// Why Graph requests are held back.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Hold {
    Throttled(String),
    Unreachable(String),
}

/// One watched mailbox.
#[derive(Debug, Clone, Default)]
struct Ep {
    state: Option<EndpointState>,
    /// The last items read; `None` before the first or after a failure.
    items: Option<Vec<CalendarItem>>,
    /// The last automatic replies read.
    replies: Option<Option<OutOfOffice>>,
    raw: Vec<VendorValue>,
    /// Parts asked for and not yet in.
    pending_items: bool,
    pending_replies: bool,
    /// A part came in since the last report.
    dirty: bool,
    /// When the items were last asked for.
    items_at: u64,
    /// An unknown mailbox is asked again later each time: not before this.
    skip_until: u64,
    misses: u32,
}

/// Where a mailbox's change-notification subscription stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SubPhase {
    /// To be created.
    Want,
    Creating,
    Live,
    Renewing,
    /// A lifecycle event asks for reauthorization.
    WantReauth,
    Reauthorizing,
    /// Graph refused it: polling only, asked again after this time.
    Refused(u64),
}

#[derive(Debug, Clone)]
struct Sub {
    /// Graph's id.
    gid: Option<String>,
    client_state: String,
    expires: u64,
    renew_at: u64,
    phase: SubPhase,
}

/// The engine.
pub struct Core {
    s: Settings,
    out: Vec<Action>,
    next_req: ReqId,
    inflight: HashMap<ReqId, Purpose>,
    token: AppToken,
    auth_problem: Option<(ConnectorStatus, String)>,
    gate: Gate,
    hold: Option<Hold>,
    /// After a throttled answer one request goes alone, until one passes.
    probing: bool,
    budget: Budget,
    eps: BTreeMap<String, Ep>,
    want_items: BTreeSet<String>,
    want_replies: BTreeSet<String>,
    /// calendarView pages to fetch next (the `@odata.nextLink`s).
    want_pages: Vec<(String, Vec<Event>, u32, String)>,
    forbidden: BTreeMap<Class, String>,
    last_status: Option<(ConnectorStatus, Option<String>)>,
    /// Graph requests sent (token requests are counted by the slot).
    pub graph_requests: u64,
    subs: BTreeMap<String, Sub>,
    /// Subscriptions to delete (Graph ids).
    to_delete: Vec<String>,
    sub_problem: Option<String>,
    entropy: Entropy,
}

/// Random bytes from the host's cryptographic generator.
pub type Entropy = Box<dyn FnMut(u32) -> Vec<u8>>;

/// How long a subscription on events is asked to live (Graph grants at
/// most 10080 minutes for Outlook resources, and may grant less).
const SUB_LIFE_MS: u64 = 3 * 24 * 3_600_000;
/// A refused subscription is asked for again after this long.
const SUB_RETRY_MS: u64 = 10 * 60_000;
/// Mailboxes followed by change notifications are read in full this many
/// refresh intervals apart anyway (automatic replies, the day boundary, a
/// notification lost).
const RESYNC_FACTOR: u64 = 5;

/// The day window: local midnight today to the end of the next working day.
pub fn window(s: &Settings, now: u64) -> (i64, i64) {
    const DAY: i64 = 86_400_000;
    let local = s.zone.to_local(now as i64);
    let today = local.div_euclid(DAY);
    let mut next = today + 1;
    for _ in 0..7 {
        if s.working_days[crate::zones::weekday(next) as usize] {
            break;
        }
        next += 1;
    }
    (today * DAY, (next + 1) * DAY)
}

impl Core {
    pub fn new(s: Settings, entropy: Entropy) -> Core {
        let token = AppToken::new(
            &s.authority,
            &s.tenant_id,
            &s.client_id,
            &s.client_secret,
            &s.scope(),
        );
        let budget = Budget::new(s.requests_per_minute, 60_000);
        Core {
            s,
            out: Vec::new(),
            next_req: 1,
            inflight: HashMap::new(),
            token,
            auth_problem: None,
            gate: Gate::default(),
            hold: None,
            probing: false,
            budget,
            eps: BTreeMap::new(),
            want_items: BTreeSet::new(),
            want_replies: BTreeSet::new(),
            want_pages: Vec::new(),
            forbidden: BTreeMap::new(),
            last_status: None,
            graph_requests: 0,
            subs: BTreeMap::new(),
            to_delete: Vec::new(),
            sub_problem: None,
            entropy,
        }
    }

    /// Token requests sent so far.
    pub fn token_requests(&self) -> u64 {
        self.token.requests
    }

    fn log(&mut self, level: Level, msg: impl Into<String>) {
        self.out.push(Action::Log(level, msg.into()));
    }

    fn timer(&mut self, key: TimerKey, ms: u64) {
        self.out.push(Action::SetTimer(key, ms));
    }

    /// Ask for a mailbox's items, its replies, or both.
    fn due(&mut self, ep: &str, items: bool, replies: bool, now: u64) {
        if !ep.contains('@') {
            return;
        }
        let Some(e) = self.eps.get_mut(ep) else {
            return;
        };
        if items {
            e.pending_items = true;
            e.items_at = now;
            self.want_items.insert(ep.to_string());
        }
        if replies {
            e.pending_replies = true;
            self.want_replies.insert(ep.to_string());
        }
    }

    /// Whether change notifications follow this mailbox.
    fn notified(&self, ep: &str) -> bool {
        self.subs
            .get(ep)
            .is_some_and(|x| matches!(x.phase, SubPhase::Live | SubPhase::Renewing))
    }

    fn set_state(&mut self, ep: &str, state: EndpointState, detail: Option<String>) {
        let Some(e) = self.eps.get_mut(ep) else {
            return;
        };
        if e.state != Some(state) || state != EndpointState::Active {
            e.state = Some(state);
            self.out
                .push(Action::EndpointState(ep.to_string(), state, detail));
        }
    }

    fn send(&mut self, purpose: Purpose, req: Request, now: u64) {
        let id = self.next_req;
        self.next_req += 1;
        if !matches!(purpose, Purpose::Token) {
            self.budget.spend(now);
            self.graph_requests += 1;
        }
        self.inflight.insert(id, purpose);
        self.out.push(Action::Http(id, req));
    }

    fn graph_inflight(&self) -> usize {
        self.inflight
            .values()
            .filter(|p| !matches!(p, Purpose::Token))
            .count()
    }

    fn get(&self, url: String, token: &str) -> Request {
        Request {
            method: "GET",
            url,
            headers: vec![
                ("Authorization".into(), format!("Bearer {token}")),
                ("Accept".into(), "application/json".into()),
                (
                    "Prefer".into(),
                    format!("outlook.timezone=\"{}\"", self.s.zone.windows),
                ),
            ],
            body: Vec::new(),
            timeout_ms: HTTP_TIMEOUT_MS,
        }
    }

    fn user_url(&self, ep: &str, rest: &str) -> String {
        format!(
            "{}/users/{}/{rest}",
            self.s.graph_base,
            urlcode::encode_component(ep).replace("%40", "@")
        )
    }

    /// Send whatever may go now.
    fn pump(&mut self, now: u64) {
        if let Some(t) = self.token.request(now) {
            let req = Request {
                method: "POST",
                url: t.url,
                headers: vec![
                    (
                        "Content-Type".into(),
                        "application/x-www-form-urlencoded".into(),
                    ),
                    ("Accept".into(), "application/json".into()),
                ],
                body: t.body,
                timeout_ms: HTTP_TIMEOUT_MS,
            };
            self.send(Purpose::Token, req, now);
        }
        let Some(token) = self.token.usable(now).map(str::to_string) else {
            return;
        };
        if !self.gate.open(now) {
            return;
        }
        let (start, end) = window(&self.s, now);
        loop {
            let cap = if self.probing { 1 } else { MAX_INFLIGHT };
            if self.graph_inflight() >= cap {
                return;
            }
            if self.budget.room(now) == 0 {
                if let Some(at) = self.budget.next_room_at(now) {
                    self.timer(TimerKey::Budget, at.saturating_sub(now).max(1));
                }
                return;
            }
            if let Some((ep, events, pages, link)) = self.want_pages.pop() {
                let req = self.get(link, &token);
                self.send(Purpose::View(ep, events, pages), req, now);
            } else if !self.want_items.is_empty() && !self.s.subjects {
                let batch: Vec<String> = self
                    .want_items
                    .iter()
                    .take(MAX_SCHEDULES)
                    .cloned()
                    .collect();
                for ep in &batch {
                    self.want_items.remove(ep);
                }
                let req = self.schedule_request(&batch, start, end, &token);
                self.send(Purpose::Schedule(batch), req, now);
            } else if let Some(ep) = self.want_items.pop_first() {
                let url = self.user_url(
                    &ep,
                    &format!(
                        "calendarView?startDateTime={}&endDateTime={}&$select=subject,location,start,end,showAs,sensitivity,isCancelled&$orderby=start/dateTime&$top={PAGE_SIZE}",
                        urlcode::encode_component(&graph_time(self.s.zone.to_utc(start))),
                        urlcode::encode_component(&graph_time(self.s.zone.to_utc(end))),
                    ),
                );
                let req = self.get(url, &token);
                self.send(Purpose::View(ep, Vec::new(), 1), req, now);
            } else if let Some(ep) = self.want_replies.pop_first() {
                let url = self.user_url(&ep, "mailboxSettings/automaticRepliesSetting");
                let req = self.get(url, &token);
                self.send(Purpose::Replies(ep), req, now);
            } else if let Some((purpose, req)) = self.next_sub_request(&token, now) {
                self.send(purpose, req, now);
            } else {
                return;
            }
        }
    }

    fn schedule_request(&self, batch: &[String], start: i64, end: i64, token: &str) -> Request {
        let zone = self.s.zone.windows;
        let body = serde_json::json!({
            "schedules": batch,
            "startTime": {"dateTime": wire::wall_clock(start), "timeZone": zone},
            "endTime": {"dateTime": wire::wall_clock(end), "timeZone": zone},
            "availabilityViewInterval": 15,
        });
        let mut req = self.get(self.user_url(&batch[0], "calendar/getSchedule"), token);
        req.method = "POST";
        req.headers
            .push(("Content-Type".into(), "application/json".into()));
        req.body = serde_json::to_vec(&body).unwrap_or_default();
        req
    }

    // ---- change notifications ----------------------------------------------

    fn random(&mut self) -> String {
        (self.entropy)(16)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn sub_phase(&mut self, ep: &str, phase: SubPhase) {
        if let Some(x) = self.subs.get_mut(ep) {
            x.phase = phase;
        }
    }

    fn json_request(
        &self,
        method: &'static str,
        url: String,
        body: serde_json::Value,
        token: &str,
    ) -> Request {
        let mut req = self.get(url, token);
        req.method = method;
        req.headers.retain(|(n, _)| n != "Prefer");
        req.headers
            .push(("Content-Type".into(), "application/json".into()));
        req.body = serde_json::to_vec(&body).unwrap_or_default();
        req
    }

    /// The next subscription request to send, if any: deletes first, then
    /// creations, reauthorizations and renewals that are due.
    fn next_sub_request(&mut self, token: &str, now: u64) -> Option<(Purpose, Request)> {
        if let Some(gid) = self.to_delete.pop() {
            let mut req = self.get(
                format!(
                    "{}/subscriptions/{}",
                    self.s.graph_base,
                    urlcode::encode_component(&gid)
                ),
                token,
            );
            req.method = "DELETE";
            return Some((Purpose::DeleteSub(gid), req));
        }
        let url = self.s.notification_url.clone()?;
        let (ep, phase) = self.subs.iter().find_map(|(ep, x)| match x.phase {
            SubPhase::Want | SubPhase::WantReauth => Some((ep.clone(), x.phase.clone())),
            SubPhase::Live if now >= x.renew_at => Some((ep.clone(), SubPhase::Live)),
            SubPhase::Refused(until) if now >= until => Some((ep.clone(), SubPhase::Want)),
            _ => None,
        })?;
        match phase {
            SubPhase::Want | SubPhase::Refused(_) => {
                let client_state = self.random();
                let body = serde_json::json!({
                    "changeType": "created,updated,deleted",
                    "notificationUrl": url,
                    "lifecycleNotificationUrl": url,
                    "resource": format!("/users/{ep}/events"),
                    "expirationDateTime": presence_connector_sdk::time::format_datetime(now + SUB_LIFE_MS),
                    "clientState": client_state,
                    "latestSupportedTlsVersion": "v1_2",
                });
                if let Some(x) = self.subs.get_mut(&ep) {
                    x.client_state = client_state;
                    x.phase = SubPhase::Creating;
                }
                let req = self.json_request(
                    "POST",
                    format!("{}/subscriptions", self.s.graph_base),
                    body,
                    token,
                );
                Some((Purpose::CreateSub(ep), req))
            }
            SubPhase::WantReauth => {
                let gid = self.subs.get(&ep)?.gid.clone()?;
                self.sub_phase(&ep, SubPhase::Reauthorizing);
                let mut req = self.json_request(
                    "POST",
                    format!("{}/subscriptions/{gid}/reauthorize", self.s.graph_base),
                    serde_json::json!({}),
                    token,
                );
                req.body.clear();
                req.headers.retain(|(n, _)| n != "Content-Type");
                Some((Purpose::Reauthorize(ep), req))
            }
            _ => {
                let gid = self.subs.get(&ep)?.gid.clone()?;
                self.sub_phase(&ep, SubPhase::Renewing);
                let body = serde_json::json!({
                    "expirationDateTime": presence_connector_sdk::time::format_datetime(now + SUB_LIFE_MS),
                });
                let req = self.json_request(
                    "PATCH",
                    format!("{}/subscriptions/{gid}", self.s.graph_base),
                    body,
                    token,
                );
                Some((Purpose::RenewSub(ep), req))
            }
        }
    }

    /// The subscription timer: arm it for the next renewal or retry.
    fn subs_due(&mut self, now: u64) {
        let next = self
            .subs
            .values()
            .filter_map(|x| match x.phase {
                SubPhase::Live => Some(x.renew_at),
                SubPhase::Refused(until) => Some(until),
                _ => None,
            })
            .min();
        if let Some(at) = next {
            self.timer(
                TimerKey::Subs,
                at.saturating_sub(now).clamp(1_000, 3_600_000),
            );
        }
    }

    fn sub_granted(&mut self, ep: &str, body: &[u8], now: u64) -> bool {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let gid = v["id"].as_str().map(str::to_string);
        let expires = v["expirationDateTime"].as_str().and_then(|t| {
            presence_connector_sdk::time::parse_datetime(
                t,
                presence_connector_sdk::time::MissingZone::Utc,
            )
        });
        let Some(x) = self.subs.get_mut(ep) else {
            return false;
        };
        let Some(expires) = expires.filter(|e| *e > now) else {
            return false;
        };
        if let Some(gid) = gid {
            x.gid = Some(gid);
        }
        x.expires = expires;
        // Renewed at two thirds of the life granted.
        x.renew_at = now + (expires - now) * 2 / 3;
        x.phase = SubPhase::Live;
        true
    }

    fn sub_refused(&mut self, ep: &str, what: &str, msg: &str, now: u64) {
        let text = format!(
            "Graph refused to {what} a change-notification subscription ({msg}); polling every {} s, asking again in {} min",
            self.s.refresh_ms / 1000,
            SUB_RETRY_MS / 60_000
        );
        if self.sub_problem.as_deref() != Some(text.as_str()) {
            self.log(Level::Warn, text.clone());
        }
        self.sub_problem = Some(text);
        if let Some(x) = self.subs.get_mut(ep) {
            x.gid = None;
            x.phase = SubPhase::Refused(now + SUB_RETRY_MS);
        }
    }

    fn on_sub_created(&mut self, ep: String, outcome: Outcome, body: &[u8], now: u64) {
        if !self.subs.contains_key(&ep) {
            // Unwatched meanwhile: the new subscription goes again.
            if let Some(gid) = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_string))
            {
                self.to_delete.push(gid);
            }
            return;
        }
        match outcome {
            Outcome::Ok if self.sub_granted(&ep, body, now) => {
                self.sub_problem = None;
                self.log(Level::Debug, format!("change notifications for {ep}"));
            }
            Outcome::Ok => self.sub_refused(&ep, "create", "unreadable answer", now),
            Outcome::Forbidden(m) | Outcome::NotFound(m) | Outcome::Rejected(_, m) => {
                self.sub_refused(&ep, "create", &m, now)
            }
            _ => self.sub_phase(&ep, SubPhase::Want),
        }
        self.subs_due(now);
    }

    fn on_sub_renewed(&mut self, ep: String, outcome: Outcome, body: &[u8], now: u64) {
        match outcome {
            Outcome::Ok if self.sub_granted(&ep, body, now) => {}
            // Gone (expired, removed): a new one.
            Outcome::NotFound(_) | Outcome::Ok => {
                if let Some(x) = self.subs.get_mut(&ep) {
                    x.gid = None;
                    x.phase = SubPhase::Want;
                }
            }
            Outcome::Forbidden(m) | Outcome::Rejected(_, m) => {
                self.sub_refused(&ep, "renew", &m, now)
            }
            _ => self.sub_phase(&ep, SubPhase::Live),
        }
        self.subs_due(now);
    }

    fn on_reauthorized(&mut self, ep: String, outcome: Outcome, now: u64) {
        match outcome {
            Outcome::Ok => {
                self.sub_phase(&ep, SubPhase::Live);
                // Changes while paused were not notified.
                self.due(&ep, true, false, now);
            }
            Outcome::NotFound(_) => {
                if let Some(x) = self.subs.get_mut(&ep) {
                    x.gid = None;
                    x.phase = SubPhase::Want;
                }
            }
            Outcome::Forbidden(m) | Outcome::Rejected(_, m) => {
                self.sub_refused(&ep, "reauthorize", &m, now)
            }
            _ => self.sub_phase(&ep, SubPhase::WantReauth),
        }
    }

    /// An inbound request on `/hooks/{instance}/...`: the validation
    /// handshake, change and lifecycle notifications. Returns status,
    /// content type and body.
    pub fn on_webhook(
        &mut self,
        method: &str,
        query: &str,
        body: &[u8],
        now: u64,
    ) -> (u16, &'static str, Vec<u8>) {
        if let Some(token) = urlcode::query_value(query, "validationToken") {
            return (200, "text/plain; charset=utf-8", token.into_bytes());
        }
        if !method.eq_ignore_ascii_case("POST") {
            return (
                405,
                "text/plain; charset=utf-8",
                b"POST notifications here".to_vec(),
            );
        }
        let Ok(list) = serde_json::from_slice::<Page<wire::Notification>>(body) else {
            return (
                400,
                "text/plain; charset=utf-8",
                b"not a notification collection".to_vec(),
            );
        };
        for n in list.value {
            let Some(ep) = self
                .subs
                .iter()
                .find(|(_, x)| {
                    x.gid
                        .as_deref()
                        .is_some_and(|g| g.eq_ignore_ascii_case(&n.subscription_id))
                })
                .map(|(ep, _)| ep.clone())
            else {
                continue;
            };
            if self.subs[&ep].client_state != n.client_state.clone().unwrap_or_default() {
                self.log(
                    Level::Warn,
                    format!("a notification for {ep} with the wrong clientState was ignored"),
                );
                continue;
            }
            match n
                .lifecycle_event
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("reauthorizationrequired") => self.sub_phase(&ep, SubPhase::WantReauth),
                Some("subscriptionremoved") => {
                    if let Some(x) = self.subs.get_mut(&ep) {
                        x.gid = None;
                        x.phase = SubPhase::Want;
                    }
                    self.due(&ep, true, false, now);
                }
                Some(_) => self.due(&ep, true, false, now),
                None => self.due(&ep, true, false, now),
            }
        }
        self.pump(now);
        self.update_status();
        (202, "text/plain; charset=utf-8", Vec::new())
    }

    fn on_token(&mut self, result: Result<Response, String>, now: u64) {
        let event = match &result {
            Ok(r) => self.token.on_response(Ok((r.status, &r.body)), now),
            Err(e) => self.token.on_response(Err(e), now),
        };
        match event {
            TokenEvent::Obtained => {
                self.auth_problem = None;
                let at = self.token.refresh_at().saturating_sub(now);
                self.timer(TimerKey::Token, at.max(1));
            }
            TokenEvent::Refused(text) => {
                let detail = format!(
                    "the Microsoft identity platform refused the sign-in ({text}): check tenant_id, client_id and client_secret; asking again in {} min",
                    graph::REFUSED_RETRY_MS / 60_000
                );
                self.log(Level::Error, detail.clone());
                self.auth_problem = Some((ConnectorStatus::Forbidden, detail));
                let at = self.token.retry_at().saturating_sub(now);
                self.timer(TimerKey::Token, at.max(1));
            }
            TokenEvent::Unreachable(text) => {
                let detail = format!("cannot reach the Microsoft identity platform: {text}");
                self.log(Level::Warn, detail.clone());
                if self.token.usable(now).is_none() {
                    self.auth_problem = Some((ConnectorStatus::ConnectionError, detail));
                }
                let at = self.token.retry_at().saturating_sub(now);
                self.timer(TimerKey::Token, at.max(1));
            }
        }
    }

    /// Put the work of a request that did not go through back.
    fn requeue(&mut self, purpose: Purpose) {
        match purpose {
            Purpose::Token => {}
            Purpose::Schedule(eps) => {
                for ep in eps.into_iter().filter(|e| self.eps.contains_key(e)) {
                    self.want_items.insert(ep);
                }
            }
            Purpose::View(ep, _, _) => {
                // Paging starts over: a nextLink may not outlive a pause.
                if self.eps.contains_key(&ep) {
                    self.want_items.insert(ep);
                }
            }
            Purpose::Replies(ep) => {
                if self.eps.contains_key(&ep) {
                    self.want_replies.insert(ep);
                }
            }
            Purpose::CreateSub(ep) => self.sub_phase(&ep, SubPhase::Want),
            Purpose::RenewSub(ep) => self.sub_phase(&ep, SubPhase::Live),
            Purpose::Reauthorize(ep) => self.sub_phase(&ep, SubPhase::WantReauth),
            Purpose::DeleteSub(gid) => self.to_delete.push(gid),
        }
    }

    fn forbid(&mut self, class: Class, msg: &str) -> String {
        let text = format!(
            "Graph refused to {} ({msg}): the app registration needs the permission {} with admin consent",
            class.what(),
            class.permission()
        );
        if self.forbidden.get(&class) != Some(&text) {
            self.log(Level::Warn, text.clone());
        }
        self.forbidden.insert(class, text.clone());
        text
    }

    fn on_graph(&mut self, purpose: Purpose, outcome: Outcome, body: &[u8], now: u64) {
        match purpose {
            Purpose::Token => {}
            Purpose::Schedule(eps) => self.on_schedule(eps, outcome, body, now),
            Purpose::View(ep, events, pages) => self.on_view(ep, events, pages, outcome, body, now),
            Purpose::Replies(ep) => self.on_replies(ep, outcome, body, now),
            Purpose::CreateSub(ep) => self.on_sub_created(ep, outcome, body, now),
            Purpose::RenewSub(ep) => self.on_sub_renewed(ep, outcome, body, now),
            Purpose::Reauthorize(ep) => self.on_reauthorized(ep, outcome, now),
            Purpose::DeleteSub(_) => {}
        }
    }

    fn on_schedule(&mut self, eps: Vec<String>, outcome: Outcome, body: &[u8], now: u64) {
        match outcome {
            Outcome::Ok => {
                self.forbidden.remove(&Class::Schedule);
                let answer = match serde_json::from_slice::<Page<ScheduleInformation>>(body) {
                    Ok(a) => a,
                    Err(e) => {
                        for ep in &eps {
                            self.items_failed(
                                ep,
                                EndpointState::Error,
                                format!("unreadable getSchedule answer: {e}"),
                                now,
                            );
                        }
                        return;
                    }
                };
                let mut seen = BTreeSet::new();
                for info in &answer.value {
                    let Some(ep) = eps
                        .iter()
                        .find(|e| e.eq_ignore_ascii_case(&info.schedule_id))
                        .cloned()
                    else {
                        continue;
                    };
                    seen.insert(ep.clone());
                    if let Some(err) = &info.error {
                        let code = err.response_code.clone().unwrap_or_default();
                        let msg = format!("{code}: {}", err.message.clone().unwrap_or_default());
                        let state = if code.contains("NotFound") || code.contains("Recipient") {
                            EndpointState::NotFound
                        } else if code.contains("AccessDenied") {
                            EndpointState::AccessDenied
                        } else {
                            EndpointState::Error
                        };
                        self.items_failed(&ep, state, msg, now);
                        continue;
                    }
                    let items = wire::schedule_items(info, &self.s.zone, false);
                    if let Some(e) = self.eps.get_mut(&ep) {
                        e.raw = info
                            .availability_view
                            .iter()
                            .map(|v| VendorValue {
                                name: "availabilityView".into(),
                                value: v.clone(),
                            })
                            .collect();
                    }
                    self.items_in(&ep, items, now);
                }
                for ep in eps.iter().filter(|e| !seen.contains(*e)) {
                    self.items_failed(
                        ep,
                        EndpointState::Error,
                        "getSchedule left this mailbox out".into(),
                        now,
                    );
                }
            }
            Outcome::Forbidden(msg) => {
                let text = self.forbid(Class::Schedule, &msg);
                for ep in &eps {
                    self.items_failed(ep, EndpointState::AccessDenied, text.clone(), now);
                }
            }
            Outcome::NotFound(msg) => {
                // The mailbox the request was made as does not exist: that
                // one is not found, the others are asked again without it.
                let first = eps[0].clone();
                self.items_failed(&first, EndpointState::NotFound, msg, now);
                for ep in eps.into_iter().skip(1) {
                    self.want_items.insert(ep);
                }
            }
            Outcome::Rejected(status, msg) => {
                let text = format!("Graph rejected getSchedule (HTTP {status}): {msg}");
                self.log(Level::Warn, text.clone());
                for ep in &eps {
                    self.items_failed(ep, EndpointState::Error, text.clone(), now);
                }
            }
            _ => {}
        }
    }

    fn on_view(
        &mut self,
        ep: String,
        mut events: Vec<Event>,
        pages: u32,
        outcome: Outcome,
        body: &[u8],
        now: u64,
    ) {
        if !self.eps.contains_key(&ep) {
            return;
        }
        match outcome {
            Outcome::Ok => {
                self.forbidden.remove(&Class::View);
                match serde_json::from_slice::<Page<Event>>(body) {
                    Ok(page) => {
                        events.extend(page.value);
                        match page.next_link {
                            Some(link) if pages < MAX_PAGES => {
                                self.want_pages.push((ep, events, pages + 1, link));
                            }
                            _ => {
                                let items = wire::event_items(&events, &self.s.zone, true);
                                if let Some(e) = self.eps.get_mut(&ep) {
                                    e.raw.clear();
                                }
                                self.items_in(&ep, items, now);
                            }
                        }
                    }
                    Err(e) => self.items_failed(
                        &ep,
                        EndpointState::Error,
                        format!("unreadable calendarView answer: {e}"),
                        now,
                    ),
                }
            }
            Outcome::Forbidden(msg) => {
                let text = self.forbid(Class::View, &msg);
                self.items_failed(&ep, EndpointState::AccessDenied, text, now);
            }
            Outcome::NotFound(msg) => self.items_failed(&ep, EndpointState::NotFound, msg, now),
            Outcome::Rejected(status, msg) => self.items_failed(
                &ep,
                EndpointState::Error,
                format!("Graph rejected calendarView (HTTP {status}): {msg}"),
                now,
            ),
            _ => {}
        }
    }

    fn on_replies(&mut self, ep: String, outcome: Outcome, body: &[u8], now: u64) {
        let replies = match outcome {
            Outcome::Ok => {
                self.forbidden.remove(&Class::Replies);
                serde_json::from_slice::<AutomaticReplies>(body)
                    .ok()
                    .and_then(|r| wire::out_of_office(&r, &self.s.zone, now))
            }
            Outcome::Forbidden(msg) => {
                // The day is still shown; the status names the permission.
                self.forbid(Class::Replies, &msg);
                None
            }
            _ => None,
        };
        if let Some(e) = self.eps.get_mut(&ep) {
            e.replies = Some(replies);
            e.pending_replies = false;
            e.dirty = true;
        }
        self.maybe_report(&ep, now);
    }

    fn items_in(&mut self, ep: &str, items: Vec<CalendarItem>, now: u64) {
        if let Some(e) = self.eps.get_mut(ep) {
            e.misses = 0;
            e.skip_until = 0;
            e.items = Some(items);
            e.pending_items = false;
            e.dirty = true;
        }
        self.maybe_report(ep, now);
    }

    fn items_failed(&mut self, ep: &str, state: EndpointState, detail: String, now: u64) {
        let refresh = self.s.refresh_ms;
        let Some(e) = self.eps.get_mut(ep) else {
            return;
        };
        e.items = None;
        e.pending_items = false;
        if state == EndpointState::NotFound {
            // Read again after 2, 4, ... up to 32 intervals.
            e.misses = e.misses.saturating_add(1);
            e.skip_until = now + refresh * (1u64 << e.misses.min(5));
        }
        if e.state != Some(state) {
            e.state = Some(state);
            self.out
                .push(Action::EndpointState(ep.to_string(), state, Some(detail)));
        }
    }

    fn maybe_report(&mut self, ep: &str, now: u64) {
        // A report holds until shortly after the next read of its items.
        let every = if self.notified(ep) {
            self.s.refresh_ms * RESYNC_FACTOR
        } else {
            self.s.refresh_ms
        };
        let valid = every + (every / 2).max(10_000);
        let Some(e) = self.eps.get_mut(ep) else {
            return;
        };
        if e.pending_items || e.pending_replies || !e.dirty {
            return;
        }
        let (Some(items), Some(replies)) = (&e.items, &e.replies) else {
            return;
        };
        e.dirty = false;
        let update = PresenceUpdate {
            endpoint: ep.to_string(),
            observed_at: Some(now),
            ordering: None,
            origin: UpdateOrigin::Platform,
            telephony: None,
            rich: None,
            calendar: Some(CalendarPresence {
                items: items.clone(),
                out_of_office: replies.clone(),
            }),
            valid_for_ms: Some(valid),
            raw: e.raw.clone(),
        };
        let newly = e.state != Some(EndpointState::Active);
        e.state = Some(EndpointState::Active);
        self.out.push(Action::Presence(update));
        if newly {
            self.out.push(Action::EndpointState(
                ep.to_string(),
                EndpointState::Active,
                None,
            ));
        }
    }

    fn summary(&self) -> String {
        let count = |st| self.eps.values().filter(|e| e.state == Some(st)).count();
        let notified = self.eps.keys().filter(|ep| self.notified(ep)).count();
        let how = match (&self.s.notification_url, &self.sub_problem) {
            (None, _) => "polling: no notification URL".to_string(),
            (Some(_), Some(p)) if notified == 0 => p.clone(),
            (Some(_), _) => format!(
                "{notified} by change notification (read in full every {} s)",
                self.s.refresh_ms * RESYNC_FACTOR / 1000
            ),
        };
        let mut text = format!(
            "{} calendars read every {} s ({}), {} in {}; {how}",
            self.eps.len(),
            self.s.refresh_ms / 1000,
            if self.s.subjects {
                "calendarView with subjects"
            } else {
                "getSchedule, free/busy only"
            },
            "today and the next working day",
            self.s.zone.windows
        );
        let missing = count(EndpointState::NotFound);
        if missing > 0 {
            text.push_str(&format!("; {missing} not found"));
        }
        let denied = count(EndpointState::AccessDenied);
        if denied > 0 {
            text.push_str(&format!("; {denied} refused (access denied)"));
        }
        text
    }

    fn desired_status(&self) -> (ConnectorStatus, Option<String>) {
        if let Some((st, d)) = &self.auth_problem {
            return (*st, Some(d.clone()));
        }
        if let Some(m) = self.forbidden.values().next() {
            return (ConnectorStatus::Forbidden, Some(m.clone()));
        }
        match &self.hold {
            Some(Hold::Throttled(d)) => return (ConnectorStatus::Throttled, Some(d.clone())),
            Some(Hold::Unreachable(d)) => {
                return (ConnectorStatus::ConnectionError, Some(d.clone()));
            }
            None => {}
        }
        if !self.token.signed_in() {
            return (
                ConnectorStatus::ConnectionError,
                Some("signing in to the Microsoft identity platform".into()),
            );
        }
        (ConnectorStatus::UpAndRunning, Some(self.summary()))
    }

    fn update_status(&mut self) {
        let st = self.desired_status();
        if self.last_status.as_ref() != Some(&st) {
            self.last_status = Some(st.clone());
            self.out.push(Action::Status(st.0, st.1));
        }
    }
}

/// An instant as calendarView takes it (`2026-11-29T23:00:00Z`).
fn graph_time(utc_ms: i64) -> String {
    format!("{}Z", wire::wall_clock(utc_ms))
}

impl plain::Core for Core {
    type TimerKey = TimerKey;
    type RequestKey = ReqId;
    type SocketKey = ();

    /// Begin: sign in and arm the refresh.
    fn start(&mut self, now: u64) {
        self.log(
            Level::Info,
            format!(
                "starting: calendars of today and the next working day in {}, every {} s, {}",
                self.s.zone.windows,
                self.s.refresh_ms / 1000,
                if self.s.subjects {
                    "with subjects (calendarView)"
                } else {
                    "free/busy only (getSchedule)"
                }
            ),
        );
        self.timer(TimerKey::Poll, self.s.refresh_ms);
        if self.s.notification_url.is_some() {
            self.timer(TimerKey::Subs, 60_000);
        }
        self.pump(now);
        self.update_status();
    }

    /// A timer fired.
    fn on_timer(&mut self, key: TimerKey, now: u64) {
        if key == TimerKey::Poll {
            let eps: Vec<String> = self.eps.keys().cloned().collect();
            let resync = self.s.refresh_ms * RESYNC_FACTOR;
            for ep in eps {
                if self.eps.get(&ep).is_some_and(|e| now < e.skip_until) {
                    continue;
                }
                // Followed by notifications: the items only now and then.
                let items = !self.notified(&ep)
                    || self
                        .eps
                        .get(&ep)
                        .is_some_and(|e| now.saturating_sub(e.items_at) + 500 >= resync);
                self.due(&ep, items, true, now);
            }
            self.timer(TimerKey::Poll, self.s.refresh_ms);
        }
        if key == TimerKey::Subs {
            self.subs_due(now);
        }
        self.pump(now);
        self.update_status();
    }

    /// An HTTP answer (or transport failure) arrived.
    fn on_http(&mut self, id: ReqId, result: Result<Response, String>, now: u64) {
        let Some(purpose) = self.inflight.remove(&id) else {
            return;
        };
        if let Purpose::Token = purpose {
            self.on_token(result, now);
        } else {
            let outcome = match &result {
                Ok(r) => graph::classify(Ok((r.status, &r.headers, &r.body)), now),
                Err(e) => graph::classify(Err(e), now),
            };
            match outcome {
                Outcome::Unauthorized(msg) => {
                    self.log(Level::Warn, format!("Graph refused the token ({msg})"));
                    self.token.rejected(now, TOKEN_REJECT_GAP_MS);
                    self.requeue(purpose);
                }
                Outcome::Throttled(status, wait) => {
                    let w = self.gate.close(wait, 2_000, now);
                    let detail = format!(
                        "Graph is throttling (HTTP {status}); retrying in {} s{}",
                        w.div_ceil(1000),
                        if wait.is_some() { " as it asked" } else { "" }
                    );
                    self.log(Level::Warn, detail.clone());
                    self.hold = Some(Hold::Throttled(detail));
                    self.probing = true;
                    self.timer(TimerKey::Gate, w);
                    self.requeue(purpose);
                }
                Outcome::Transient(status, msg) => {
                    let w = self.gate.close(None, 1_000, now);
                    let detail = format!(
                        "Graph failed or could not be reached ({}{msg}); retrying in {} s",
                        status.map(|s| format!("HTTP {s}: ")).unwrap_or_default(),
                        w.div_ceil(1000)
                    );
                    self.log(Level::Warn, detail.clone());
                    self.hold = Some(Hold::Unreachable(detail));
                    self.timer(TimerKey::Gate, w);
                    self.requeue(purpose);
                }
                other => {
                    self.gate.success();
                    self.hold = None;
                    self.probing = false;
                    let body = result.map(|r| r.body).unwrap_or_default();
                    self.on_graph(purpose, other, &body, now);
                }
            }
        }
        self.pump(now);
        self.update_status();
    }

    /// Start watching these mailboxes: read at once.
    fn watch(&mut self, endpoints: &[String], now: u64) {
        for ep in endpoints {
            if self.eps.contains_key(ep) {
                continue;
            }
            if !ep.contains('@') {
                self.eps.insert(
                    ep.clone(),
                    Ep {
                        state: Some(EndpointState::NotFound),
                        ..Ep::default()
                    },
                );
                self.out.push(Action::EndpointState(
                    ep.clone(),
                    EndpointState::NotFound,
                    Some("a mailbox is named by its SMTP address or UPN (name@domain)".into()),
                ));
                continue;
            }
            self.eps.insert(ep.clone(), Ep::default());
            self.set_state(ep, EndpointState::Requesting, None);
            self.due(ep, true, true, now);
            if self.s.notification_url.is_some() {
                self.subs.insert(
                    ep.clone(),
                    Sub {
                        gid: None,
                        client_state: String::new(),
                        expires: 0,
                        renew_at: 0,
                        phase: SubPhase::Want,
                    },
                );
            }
        }
        self.pump(now);
        self.update_status();
    }

    /// Stop watching.
    fn unwatch(&mut self, endpoints: &[String], now: u64) {
        for ep in endpoints {
            self.eps.remove(ep);
            if let Some(gid) = self.subs.remove(ep).and_then(|x| x.gid) {
                self.to_delete.push(gid);
            }
            self.want_items.remove(ep);
            self.want_replies.remove(ep);
            self.want_pages.retain(|p| &p.0 != ep);
        }
        self.pump(now);
        self.update_status();
    }

    /// Graph's change notifications and their validation handshake.
    fn webhook(&mut self, request: WebhookRequest, now: u64) -> Response {
        let (status, content_type, body) =
            self.on_webhook(&request.method, &request.query, &request.body, now);
        Response::new(status, content_type, body)
    }

    /// A calendar connector reads; it does not write presence.
    fn write(&mut self, _: WriteRequest, _: u64) -> Result<(), ConnectorError> {
        Err(ConnectorError::Unsupported(
            "a calendar connector does not write presence".into(),
        ))
    }

    /// The instance stops: its subscriptions are deleted.
    fn shutdown(&mut self, now: u64) {
        let gids: Vec<String> = self
            .subs
            .values_mut()
            .filter_map(|x| x.gid.take())
            .collect();
        self.subs.clear();
        self.eps.clear();
        self.want_items.clear();
        self.want_replies.clear();
        self.want_pages.clear();
        self.to_delete.extend(gids);
        self.pump(now);
    }

    /// Actions produced since the last call.
    fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use presence_connector_sdk::plain::Core as _;
    use presence_connector_sdk::{Config, ConfigEntry, ConfigValue};

    fn settings(extra: &[(&str, ConfigValue)]) -> Settings {
        let mut e = vec![
            ConfigEntry {
                name: "tenant_id".into(),
                value: ConfigValue::Text("t".into()),
            },
            ConfigEntry {
                name: "client_id".into(),
                value: ConfigValue::Text("c".into()),
            },
            ConfigEntry {
                name: "client_secret".into(),
                value: ConfigValue::Text("s".into()),
            },
        ];
        for (k, v) in extra {
            e.push(ConfigEntry {
                name: k.to_string(),
                value: v.clone(),
            });
        }
        Settings::from_config(&Config::new(e), None).unwrap()
    }

    fn http(actions: &[Action]) -> Vec<(ReqId, Request)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Http(id, r) => Some((*id, r.clone())),
                _ => None,
            })
            .collect()
    }

    fn ok(body: &str) -> Result<Response, String> {
        Ok(Response {
            status: 200,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        })
    }

    #[test]
    fn a_round_reads_schedules_in_twenties_and_replies_then_reports() {
        let mut c = Core::new(
            settings(&[("time_zone", ConfigValue::Text("Europe/Berlin".into()))]),
            Box::new(|n| vec![7; n as usize]),
        );
        c.start(1_000);
        let reqs = http(&c.take_actions());
        assert_eq!(reqs.len(), 1, "a token first");
        c.on_http(
            reqs[0].0,
            ok(r#"{"access_token":"tok","expires_in":3600}"#),
            1_000,
        );
        let eps: Vec<String> = (0..25).map(|i| format!("u{i}@contoso.com")).collect();
        c.watch(&eps, 1_000);
        let reqs = http(&c.take_actions());
        assert_eq!(reqs.len(), MAX_INFLIGHT);
        let first = &reqs[0].1;
        assert!(
            first
                .url
                .ends_with("/users/u0@contoso.com/calendar/getSchedule"),
            "{first:?}"
        );
        let body: serde_json::Value = serde_json::from_slice(&first.body).unwrap();
        assert_eq!(body["schedules"].as_array().unwrap().len(), 20);
        assert_eq!(body["startTime"]["timeZone"], "W. Europe Standard Time");
        assert!(first.headers.contains(&(
            "Prefer".into(),
            "outlook.timezone=\"W. Europe Standard Time\"".into()
        )));
        // The answer for u0 (others left out: error), then its replies.
        c.on_http(
            reqs[0].0,
            ok(r#"{"value":[{"scheduleId":"U0@contoso.com","availabilityView":"2","scheduleItems":[
                {"status":"busy","isPrivate":true,"subject":"x","start":{"dateTime":"2026-07-01T12:00:00.0000000","timeZone":"W. Europe Standard Time"},
                 "end":{"dateTime":"2026-07-01T13:00:00.0000000","timeZone":"W. Europe Standard Time"}}]}]}"#),
            2_000,
        );
        let acts = c.take_actions();
        assert!(
            !acts.iter().any(|a| matches!(a, Action::Presence(_))),
            "replies still awaited"
        );
        let replies = http(&acts)
            .into_iter()
            .chain(reqs[1..].iter().cloned())
            .find(|(_, r)| {
                r.url
                    .contains("/users/u0@contoso.com/mailboxSettings/automaticRepliesSetting")
            })
            .expect("u0's replies read");
        c.on_http(
            replies.0,
            ok(r#"{"status":"alwaysEnabled","internalReplyMessage":"<p>Away</p>"}"#),
            3_000,
        );
        let acts = c.take_actions();
        let update = acts
            .iter()
            .find_map(|a| match a {
                Action::Presence(u) => Some(u.clone()),
                _ => None,
            })
            .expect("a report");
        let cal = update.calendar.unwrap();
        assert_eq!(cal.items.len(), 1);
        assert!(cal.items[0].private && cal.items[0].subject.is_none());
        assert_eq!(cal.out_of_office.unwrap().message.as_deref(), Some("Away"));
        assert_eq!(update.valid_for_ms, Some(90_000));
    }

    #[test]
    fn throttling_holds_everything_back_and_refused_credentials_wait() {
        let mut c = Core::new(settings(&[]), Box::new(|n| vec![7; n as usize]));
        c.start(0);
        let reqs = http(&c.take_actions());
        c.on_http(
            reqs[0].0,
            ok(r#"{"access_token":"tok","expires_in":3600}"#),
            0,
        );
        c.watch(&["a@x.com".to_string()], 0);
        let reqs = http(&c.take_actions());
        assert_eq!(reqs.len(), 2);
        c.on_http(
            reqs[0].0,
            Ok(Response {
                status: 429,
                headers: vec![("Retry-After".into(), "3".into())],
                body: vec![],
            }),
            10,
        );
        let acts = c.take_actions();
        assert!(http(&acts).is_empty());
        assert!(acts.contains(&Action::SetTimer(TimerKey::Gate, 3000)));
        assert!(
            acts.iter()
                .any(|a| matches!(a, Action::Status(ConnectorStatus::Throttled, _)))
        );
        c.on_http(
            reqs[1].0,
            Ok(Response {
                status: 429,
                headers: vec![("Retry-After".into(), "3".into())],
                body: vec![],
            }),
            20,
        );
        c.on_timer(TimerKey::Gate, 2_000);
        assert!(http(&c.take_actions()).is_empty(), "not before Retry-After");
        c.on_timer(TimerKey::Gate, 3_030);
        let probe = http(&c.take_actions());
        assert_eq!(probe.len(), 1, "one request alone after throttling");
        c.on_http(
            probe[0].0,
            ok(r#"{"value":[{"scheduleId":"a@x.com","scheduleItems":[]}]}"#),
            3_040,
        );
        assert_eq!(http(&c.take_actions()).len(), 1, "then the rest");

        let mut c = Core::new(settings(&[]), Box::new(|n| vec![7; n as usize]));
        c.start(0);
        let reqs = http(&c.take_actions());
        c.on_http(
            reqs[0].0,
            Ok(Response {
                status: 401,
                headers: vec![],
                body: br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#.to_vec(),
            }),
            0,
        );
        let acts = c.take_actions();
        assert!(acts.iter().any(|a| matches!(a, Action::Status(ConnectorStatus::Forbidden, Some(d)) if d.contains("AADSTS7000215"))));
        for t in 1..10 {
            c.on_timer(TimerKey::Poll, t * 1_000);
        }
        assert_eq!(c.token_requests(), 1, "no hammering");
    }

    #[test]
    fn notifications_validate_check_client_state_and_follow_lifecycle() {
        let mut c = Core::new(
            settings(&[(
                "notification_url",
                ConfigValue::Text("https://hub.example.com/hooks/cal/notify".into()),
            )]),
            Box::new(|n| vec![0xab; n as usize]),
        );
        c.start(0);
        let reqs = http(&c.take_actions());
        c.on_http(
            reqs[0].0,
            ok(r#"{"access_token":"tok","expires_in":3600}"#),
            0,
        );
        c.watch(&["a@x.com".to_string()], 0);
        let reqs = http(&c.take_actions());
        let create = reqs
            .iter()
            .find(|(_, r)| r.url.ends_with("/subscriptions"))
            .expect("a subscription is asked for")
            .clone();
        let body: serde_json::Value = serde_json::from_slice(&create.1.body).unwrap();
        assert_eq!(body["resource"], "/users/a@x.com/events");
        assert_eq!(body["changeType"], "created,updated,deleted");
        let cs = body["clientState"].as_str().unwrap().to_string();
        assert_eq!(cs.len(), 32);
        c.on_http(
            create.0,
            Ok(Response {
                status: 201,
                headers: vec![],
                body: br#"{"id":"sub-1","expirationDateTime":"2100-01-01T00:00:00Z"}"#.to_vec(),
            }),
            10,
        );
        // Answer the first reads so nothing is pending.
        for (id, r) in reqs
            .iter()
            .filter(|(_, r)| !r.url.ends_with("/subscriptions"))
        {
            let body = if r.url.contains("getSchedule") {
                r#"{"value":[{"scheduleId":"a@x.com","scheduleItems":[]}]}"#
            } else {
                r#"{"status":"disabled"}"#
            };
            c.on_http(*id, ok(body), 20);
        }
        c.take_actions();
        let (status, ct, echo) = c.on_webhook("POST", "validationToken=a%20b%2Bc", b"", 30);
        assert_eq!(
            (status, ct, echo.as_slice()),
            (200, "text/plain; charset=utf-8", b"a b+c".as_slice())
        );
        let wrong = br#"{"value":[{"subscriptionId":"sub-1","clientState":"forged","changeType":"created"}]}"#;
        assert_eq!(c.on_webhook("POST", "", wrong, 40).0, 202);
        assert!(
            http(&c.take_actions()).is_empty(),
            "a forged notification reads nothing"
        );
        let right = format!(
            r#"{{"value":[{{"subscriptionId":"sub-1","clientState":"{cs}","changeType":"created"}}]}}"#
        );
        assert_eq!(c.on_webhook("POST", "", right.as_bytes(), 50).0, 202);
        let reads = http(&c.take_actions());
        assert_eq!(reads.len(), 1, "the items at once: {reads:?}");
        assert!(reads[0].1.url.contains("getSchedule"));
        let reauth = format!(
            r#"{{"value":[{{"subscriptionId":"sub-1","clientState":"{cs}","lifecycleEvent":"reauthorizationRequired"}}]}}"#
        );
        c.on_webhook("POST", "", reauth.as_bytes(), 60);
        assert!(http(&c.take_actions()).iter().any(
            |(_, r)| r.method == "POST" && r.url.ends_with("/subscriptions/sub-1/reauthorize")
        ));
    }

    #[test]
    fn the_window_reaches_to_the_end_of_the_next_working_day() {
        let s = settings(&[]);
        // Friday 2026-11-27 10:00 UTC: Friday to the end of Monday.
        let fri = 1_795_773_600_000;
        let (a, b) = window(&s, fri);
        assert_eq!(wire::wall_clock(a), "2026-11-27T00:00:00");
        assert_eq!(wire::wall_clock(b), "2026-12-01T00:00:00");
    }
}
