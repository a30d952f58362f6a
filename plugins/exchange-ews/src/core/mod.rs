//! The connector's engine, free of I/O: it takes HTTP answers, timer
//! expiries and watches through its [`plain::Core`] hooks, and returns
//! [`Action`]s that the SDK's [`plain::Plain`] adapter carries out.
//!
//! A *refresh* reads every watched calendar: `GetUserAvailability` in
//! batches of up to 100 mailboxes for today and the next working day, then
//! `GetUserOofSettings` per mailbox whose reply is older than
//! `oof_refresh_seconds`; then it reports each calendar and
//! waits for the next refresh. Requests go one at a time: gentle on the
//! server, and NTLM's handshake stays on one connection.
//!
//! Lock-out protection: a refused sign-in (HTTP 401) stops all requests.
//! The connector tries once more after `auth_retry_seconds`; a second
//! refusal stops it until the configuration changes. The count is kept in
//! the key-value store, so restarts do not reset it.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use presence_connector_sdk::backoff::Backoff;
use presence_connector_sdk::plain;
use presence_connector_sdk::{
    CalendarItem, CalendarPresence, ConnectorError, ConnectorStatus, EndpointState, OutOfOffice,
    PresenceUpdate, ShowAs, UpdateOrigin, VendorValue, WriteRequest,
};

use crate::ntlm;
use crate::settings::{AuthMode, Settings};
use crate::soap::{self, BusyType, Event, Oof};
use crate::tz::days_of_interest;
use crate::xml;

pub type ReqId = u64;

/// Key-value keys.
pub mod keys {
    /// The lock-out guard: `{fingerprint} {failures} {retry_at}`.
    pub const GUARD: &str = "auth/guard";
}

/// A request's timeout.
const HTTP_TIMEOUT_MS: u32 = 30_000;
/// Watches are gathered this long before a refresh reads them.
const SETTLE_MS: u64 = 200;
/// Longest wait an `ErrorServerBusy` or `Retry-After` is honoured for.
const MAX_BUSY_MS: u64 = 15 * 60_000;

/// Log levels; requests to send (their `Debug` hides the credentials) and
/// their answers, as plain data.
pub use presence_connector_sdk::plain::{Level, Request, Response};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKey {
    /// The next refresh.
    Refresh,
    /// Go on after a back-off (busy server, failure, refused sign-in).
    Resume,
}

/// What the core wants done (the SDK's vocabulary for I/O-free cores; the
/// glue hands each to `Cx::apply`).
pub type Action = presence_connector_sdk::plain::Action<TimerKey, ReqId>;

/// The lock-out guard's record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Guard {
    fingerprint: String,
    failures: u32,
    retry_at: u64,
}

impl Guard {
    fn parse(bytes: &[u8]) -> Option<Guard> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut p = text.split(' ');
        Some(Guard {
            fingerprint: p.next()?.to_string(),
            failures: p.next()?.parse().ok()?,
            retry_at: p.next()?.parse().ok()?,
        })
    }
    fn encode(&self) -> Vec<u8> {
        format!("{} {} {}", self.fingerprint, self.failures, self.retry_at).into_bytes()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Job {
    /// Endpoint ids, as watched.
    Availability(Vec<String>),
    Oof(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Basic, bearer: one leg.
    Single,
    /// NTLM NEGOTIATE sent.
    Negotiate,
    /// NTLM AUTHENTICATE sent.
    Authenticate,
}

#[derive(Debug)]
struct Flight {
    id: ReqId,
    job: Job,
    stage: Stage,
}

#[derive(Debug)]
struct Cycle {
    jobs: VecDeque<Job>,
    started: u64,
    days: [(u64, u64); 2],
    cal: BTreeMap<String, soap::MailboxAnswer>,
    oof: BTreeMap<String, Option<Oof>>,
}

pub struct Core {
    s: Settings,
    entropy: Box<dyn FnMut(u32) -> Vec<u8>>,
    watched: BTreeSet<String>,
    states: BTreeMap<String, (EndpointState, Option<String>)>,
    cycle: Option<Cycle>,
    flight: Option<Flight>,
    /// A job waiting for the Resume timer.
    parked: Option<Job>,
    next_id: ReqId,
    guard: Guard,
    backoff: Backoff,
    /// No more requests until the configuration changes.
    stopped: bool,
    /// Waiting for the retry after a refused sign-in.
    auth_wait: bool,
    /// Watches changed during a refresh: refresh again right after it.
    rerun: bool,
    status: Option<(ConnectorStatus, Option<String>)>,
    oof_denied: BTreeSet<String>,
    /// The last out-of-office settings read per mailbox, and when.
    oof_cache: BTreeMap<String, (Option<Oof>, u64)>,
    actions: Vec<Action>,
}

fn show_as(b: BusyType) -> ShowAs {
    match b {
        BusyType::Free => ShowAs::Free,
        BusyType::Tentative => ShowAs::Tentative,
        BusyType::Busy => ShowAs::Busy,
        BusyType::Oof => ShowAs::OutOfOffice,
        BusyType::WorkingElsewhere => ShowAs::WorkingElsewhere,
        BusyType::NoData | BusyType::Other => ShowAs::Unknown,
    }
}

/// A calendar event as the contract carries it: a private item keeps only
/// its times and show-as.
pub fn item(e: &Event) -> CalendarItem {
    CalendarItem {
        start: e.start,
        end: e.end,
        show_as: show_as(e.busy),
        subject: if e.private { None } else { e.subject.clone() },
        location: if e.private { None } else { e.location.clone() },
        private: e.private,
    }
}

fn header<'a>(r: &'a Response, name: &str) -> impl Iterator<Item = &'a str> + 'a {
    let name = name.to_ascii_lowercase();
    r.headers
        .iter()
        .filter(move |(n, _)| n.to_ascii_lowercase() == name)
        .map(|(_, v)| v.as_str())
}

/// The NTLM CHALLENGE in `WWW-Authenticate: NTLM <base64>` headers.
fn ntlm_challenge(r: &Response) -> Option<Vec<u8>> {
    header(r, "www-authenticate")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|v| {
            let (scheme, token) = v.split_once(' ')?;
            if !scheme.eq_ignore_ascii_case("NTLM") {
                return None;
            }
            B64.decode(token.trim()).ok()
        })
}

impl Core {
    pub fn new(
        s: Settings,
        stored_guard: Option<Vec<u8>>,
        entropy: Box<dyn FnMut(u32) -> Vec<u8>>,
    ) -> Core {
        let fingerprint = s.fingerprint();
        let guard = stored_guard
            .as_deref()
            .and_then(Guard::parse)
            .filter(|g| g.fingerprint == fingerprint)
            .unwrap_or(Guard {
                fingerprint,
                failures: 0,
                retry_at: 0,
            });
        Core {
            s,
            entropy,
            watched: BTreeSet::new(),
            states: BTreeMap::new(),
            cycle: None,
            flight: None,
            parked: None,
            next_id: 1,
            guard,
            backoff: Backoff::new(5_000, 10 * 60_000),
            stopped: false,
            auth_wait: false,
            rerun: false,
            status: None,
            oof_denied: BTreeSet::new(),
            oof_cache: BTreeMap::new(),
            actions: Vec::new(),
        }
    }

    fn log(&mut self, level: Level, m: impl Into<String>) {
        self.actions.push(Action::Log(level, m.into()));
    }

    fn set_status(&mut self, st: ConnectorStatus, detail: Option<String>) {
        let now = Some((st, detail.clone()));
        if self.status != now {
            self.status = now;
            self.actions.push(Action::Status(st, detail));
        }
    }

    fn set_state(&mut self, ep: &str, st: EndpointState, detail: Option<String>) {
        let v = (st, detail.clone());
        if self.states.get(ep) != Some(&v) {
            self.states.insert(ep.to_string(), v);
            self.actions
                .push(Action::EndpointState(ep.to_string(), st, detail));
        }
    }

    fn random_u32(&mut self) -> u32 {
        let b = (self.entropy)(4);
        b.get(..4)
            .and_then(|s| s.try_into().ok())
            .map(u32::from_le_bytes)
            .unwrap_or(0)
    }

    fn next_backoff(&mut self) -> u64 {
        let r = self.random_u32();
        self.backoff.next_delay(r)
    }

    fn user(&self) -> &str {
        &self.s.username
    }

    fn blocked(&self) -> bool {
        self.stopped || self.auth_wait
    }

    fn begin_cycle(&mut self, now: u64) {
        self.rerun = false;
        self.parked = None;
        if self.watched.is_empty() {
            self.cycle = None;
            self.actions
                .push(Action::SetTimer(TimerKey::Refresh, self.s.refresh_ms));
            return;
        }
        let eps: Vec<String> = self.watched.iter().cloned().collect();
        let mut jobs: VecDeque<Job> = eps
            .chunks(self.s.batch_size)
            .map(|c| Job::Availability(c.to_vec()))
            .collect();
        if self.s.read_oof {
            // Each mailbox's reply at most every `oof_refresh_seconds`
            // (less a refresh's worth of slack, so a reply due "soon" is
            // read now rather than one whole refresh late).
            let slack = self.s.refresh_ms / 2;
            jobs.extend(
                eps.iter()
                    .filter(|e| !self.oof_denied.contains(*e))
                    .filter(|e| {
                        self.oof_cache
                            .get(*e)
                            .is_none_or(|(_, at)| now + slack >= at + self.s.oof_refresh_ms)
                    })
                    .map(|e| Job::Oof(e.clone())),
            );
        }
        self.cycle = Some(Cycle {
            jobs,
            started: now,
            days: days_of_interest(&self.s.zone, &self.s.working_days, now),
            cal: BTreeMap::new(),
            oof: BTreeMap::new(),
        });
        self.send_next(now);
    }

    fn send_next(&mut self, now: u64) {
        loop {
            let Some(cycle) = self.cycle.as_mut() else {
                return;
            };
            let Some(job) = cycle.jobs.pop_front() else {
                self.finish_cycle(now);
                return;
            };
            // Out-of-office only for mailboxes whose calendar was read and
            // that are still watched.
            if let Job::Oof(ep) = &job
                && (!matches!(cycle.cal.get(ep), Some(Ok(_))) || !self.watched.contains(ep))
            {
                continue;
            }
            self.send(job, now);
            return;
        }
    }

    fn body(&self, job: &Job) -> Vec<u8> {
        let inner = match job {
            Job::Availability(eps) => {
                let (start, end) = self
                    .cycle
                    .as_ref()
                    .map(|c| (c.days[0].0, c.days[1].1))
                    .unwrap_or((0, 0));
                soap::get_user_availability(eps, start, end, self.s.view)
            }
            Job::Oof(ep) => soap::get_user_oof_settings(ep),
        };
        soap::envelope(&self.s.version, &inner).into_bytes()
    }

    fn send(&mut self, job: Job, now: u64) {
        let stage = match self.s.auth {
            AuthMode::Ntlm => Stage::Negotiate,
            _ => Stage::Single,
        };
        let auth = match self.s.auth {
            AuthMode::Basic => format!(
                "Basic {}",
                B64.encode(format!("{}:{}", self.s.username, self.s.password))
            ),
            AuthMode::OAuth => format!("Bearer {}", self.s.token),
            AuthMode::Ntlm => format!("NTLM {}", B64.encode(ntlm::negotiate())),
        };
        self.send_with(job, stage, auth, now);
    }

    fn send_with(&mut self, job: Job, stage: Stage, auth: String, _now: u64) {
        let id = self.next_id;
        self.next_id += 1;
        let request = Request {
            method: "POST",
            url: self.s.url.clone(),
            headers: vec![
                ("Content-Type".into(), "text/xml; charset=utf-8".into()),
                ("Accept".into(), "text/xml".into()),
                ("Authorization".into(), auth),
            ],
            body: self.body(&job),
            timeout_ms: HTTP_TIMEOUT_MS,
        };
        self.actions.push(Action::Http(id, request));
        self.flight = Some(Flight { id, job, stage });
    }

    /// Put the job back and go on after `delay_ms`.
    fn park(&mut self, job: Job, delay_ms: u64) {
        self.parked = Some(job);
        self.actions
            .push(Action::SetTimer(TimerKey::Resume, delay_ms));
    }

    fn fail(&mut self, job: Job, status: ConnectorStatus, why: String) {
        let delay = self.next_backoff();
        self.log(
            Level::Warn,
            format!("{why}; next try in {} s", delay / 1000),
        );
        self.set_status(
            status,
            Some(format!("{why}; next try in {} s", delay.div_ceil(1000))),
        );
        self.park(job, delay);
    }

    fn busy(&mut self, job: Job, delay: u64, why: &str) {
        self.log(
            Level::Info,
            format!("Exchange is busy ({why}); backing off {delay} ms"),
        );
        self.set_status(
            ConnectorStatus::Throttled,
            Some(format!(
                "Exchange is busy ({why}); backing off {} s",
                delay.div_ceil(1000)
            )),
        );
        self.park(job, delay);
    }

    fn auth_refused(&mut self, now: u64) {
        self.cycle = None;
        self.parked = None;
        self.guard.failures += 1;
        let field = self.s.credential_field();
        if self.guard.failures >= 2 {
            self.stopped = true;
            self.guard.retry_at = 0;
            self.actions
                .push(Action::KvSet(keys::GUARD.into(), self.guard.encode()));
            self.actions.push(Action::CancelTimer(TimerKey::Refresh));
            let d = format!(
                "Exchange refused the credentials of `{}` twice (HTTP 401); no more attempts until the configuration changes, so the account is not locked out: check field {field}",
                self.user()
            );
            self.log(Level::Error, d.clone());
            self.set_status(ConnectorStatus::CredentialsNotFound, Some(d));
        } else {
            self.auth_wait = true;
            self.guard.retry_at = now + self.s.auth_retry_ms;
            self.actions
                .push(Action::KvSet(keys::GUARD.into(), self.guard.encode()));
            self.actions.push(Action::CancelTimer(TimerKey::Refresh));
            self.actions
                .push(Action::SetTimer(TimerKey::Resume, self.s.auth_retry_ms));
            let d = format!(
                "Exchange refused the credentials of `{}` (HTTP 401; check field {field}); one more try in {} s, then none until the configuration changes",
                self.user(),
                self.s.auth_retry_ms / 1000
            );
            self.log(Level::Warn, d.clone());
            self.set_status(ConnectorStatus::CredentialsNotFound, Some(d));
        }
    }

    fn on_soap(&mut self, job: Job, r: Response, now: u64) {
        let root = match xml::parse(&r.body) {
            Ok(root) => root,
            Err(e) => {
                self.fail(
                    job,
                    ConnectorStatus::ConnectionError,
                    format!("unreadable answer from Exchange (HTTP {}): {e}", r.status),
                );
                return;
            }
        };
        if let Some(f) = soap::fault(&root) {
            if f.code == "ErrorServerBusy" {
                let delay = f
                    .back_off_ms
                    .unwrap_or_else(|| self.next_backoff())
                    .clamp(1_000, MAX_BUSY_MS);
                self.busy(job, delay, "ErrorServerBusy");
            } else {
                self.fail(
                    job,
                    ConnectorStatus::ConnectionError,
                    format!("Exchange refused the request: {}: {}", f.code, f.message),
                );
            }
            return;
        }
        if r.status != 200 {
            self.fail(
                job,
                ConnectorStatus::ConnectionError,
                format!("Exchange answered HTTP {} without a SOAP fault", r.status),
            );
            return;
        }
        let outcome = match &job {
            Job::Availability(eps) => soap::availability(&root, eps.len()).map(|answers| {
                if let Some(c) = self.cycle.as_mut() {
                    for (ep, a) in eps.iter().zip(answers) {
                        c.cal.insert(ep.clone(), a);
                    }
                }
            }),
            Job::Oof(ep) => soap::oof(&root).map(|answer| match answer {
                Ok(o) => {
                    self.oof_cache.insert(ep.clone(), (Some(o.clone()), now));
                    if let Some(c) = self.cycle.as_mut() {
                        c.oof.insert(ep.clone(), Some(o));
                    }
                }
                Err((code, msg)) => {
                    self.oof_denied.insert(ep.clone());
                    self.actions.push(Action::Log(
                        Level::Warn,
                        format!("out-of-office of {ep} not readable ({code}: {msg}); not asked again until the configuration changes"),
                    ));
                }
            }),
        };
        if let Err(e) = outcome {
            self.fail(
                job,
                ConnectorStatus::ConnectionError,
                format!("unexpected answer from Exchange: {e}"),
            );
            return;
        }
        self.backoff.reset();
        if self.guard.failures > 0 {
            self.guard.failures = 0;
            self.actions.push(Action::KvDelete(keys::GUARD.into()));
        }
        self.send_next(now);
    }

    fn finish_cycle(&mut self, now: u64) {
        let Some(cycle) = self.cycle.take() else {
            return;
        };
        let valid = self.s.refresh_ms + (self.s.refresh_ms / 2).clamp(15_000, 300_000);
        let mut read = 0;
        for (ep, answer) in &cycle.cal {
            if !self.watched.contains(ep) {
                continue;
            }
            match answer {
                Ok(events) => {
                    read += 1;
                    let mut items: Vec<CalendarItem> = events
                        .iter()
                        .filter(|e| {
                            cycle
                                .days
                                .iter()
                                .any(|(s, en)| e.start < *en && e.end > *s || e.start == *s)
                        })
                        .map(item)
                        .collect();
                    items.sort_by_key(|i| (i.start, i.end));
                    let oof = match cycle.oof.get(ep) {
                        Some(o) => o.clone(),
                        None => self.oof_cache.get(ep).and_then(|(o, _)| o.clone()),
                    };
                    let mut raw = vec![VendorValue {
                        name: "ews.events".into(),
                        value: events.len().to_string(),
                    }];
                    if let Some(o) = &oof {
                        raw.push(VendorValue {
                            name: "ews.OofState".into(),
                            value: o.state.clone(),
                        });
                    }
                    let out_of_office = oof.filter(|o| o.in_force(now)).map(|o| OutOfOffice {
                        message: o.internal.or(o.external),
                        start: (o.state == "Scheduled").then_some(o.start).flatten(),
                        end: (o.state == "Scheduled").then_some(o.end).flatten(),
                    });
                    self.actions.push(Action::Presence(PresenceUpdate {
                        endpoint: ep.clone(),
                        observed_at: Some(now),
                        ordering: None,
                        origin: UpdateOrigin::Platform,
                        telephony: None,
                        rich: None,
                        calendar: Some(CalendarPresence {
                            items,
                            out_of_office,
                        }),
                        valid_for_ms: Some(valid),
                        raw,
                    }));
                    self.set_state(ep, EndpointState::Active, None);
                }
                Err((code, msg)) => {
                    let st = match code.as_str() {
                        "ErrorMailRecipientNotFound"
                        | "ErrorNonExistentMailbox"
                        | "ErrorInvalidSmtpAddress" => EndpointState::NotFound,
                        "ErrorNoFreeBusyAccess"
                        | "ErrorAccessDenied"
                        | "ErrorFreeBusyGenerationFailed" => EndpointState::AccessDenied,
                        _ => EndpointState::Error,
                    };
                    let detail = if msg.is_empty() {
                        code.clone()
                    } else {
                        format!("{code}: {msg}")
                    };
                    self.set_state(ep, st, Some(detail));
                }
            }
        }
        self.set_status(
            ConnectorStatus::UpAndRunning,
            Some(format!(
                "{read} calendars read; next refresh in {} s",
                self.s.refresh_ms / 1000
            )),
        );
        let next = if self.rerun {
            SETTLE_MS
        } else {
            (cycle.started + self.s.refresh_ms)
                .saturating_sub(now)
                .max(1_000)
        };
        self.rerun = false;
        self.actions.push(Action::SetTimer(TimerKey::Refresh, next));
    }
}

impl plain::Core for Core {
    type TimerKey = TimerKey;
    type RequestKey = ReqId;
    type SocketKey = ();

    /// Start (after `configure`): honour a lock-out guard carried over.
    fn start(&mut self, now: u64) {
        if self.guard.failures == 0 {
            self.actions.push(Action::KvDelete(keys::GUARD.into()));
            return;
        }
        let field = self.s.credential_field();
        if self.guard.failures >= 2 {
            self.stopped = true;
            let d = format!(
                "Exchange refused the credentials of `{}` twice (HTTP 401); no more attempts until the configuration changes, so the account is not locked out: check field {field}",
                self.user()
            );
            self.set_status(ConnectorStatus::CredentialsNotFound, Some(d));
            return;
        }
        self.auth_wait = true;
        let wait = self.guard.retry_at.saturating_sub(now);
        let d = format!(
            "Exchange refused the credentials of `{}` (HTTP 401; check field {field}); one more try in {} s, then none until the configuration changes",
            self.user(),
            wait.div_ceil(1000)
        );
        self.set_status(ConnectorStatus::CredentialsNotFound, Some(d));
        self.actions.push(Action::SetTimer(TimerKey::Resume, wait));
    }

    fn on_timer(&mut self, key: TimerKey, now: u64) {
        match key {
            TimerKey::Refresh => {
                if !self.blocked() && self.cycle.is_none() && self.flight.is_none() {
                    self.begin_cycle(now);
                }
            }
            TimerKey::Resume => {
                if self.stopped {
                    return;
                }
                if self.auth_wait {
                    // The one retry after a refused sign-in.
                    self.auth_wait = false;
                    self.log(Level::Info, "retrying the sign-in refused earlier, once");
                    self.begin_cycle(now);
                    return;
                }
                match self.parked.take() {
                    Some(job) if self.cycle.is_some() => self.send(job, now),
                    _ => self.begin_cycle(now),
                }
            }
        }
    }

    fn on_http(&mut self, id: ReqId, result: Result<Response, String>, now: u64) {
        let Some(flight) = self.flight.take_if(|f| f.id == id) else {
            return;
        };
        let Flight { job, stage, .. } = flight;
        let r = match result {
            Ok(r) => r,
            Err(why) => {
                self.fail(
                    job,
                    ConnectorStatus::ConnectionError,
                    format!("cannot reach {}: {why}", self.s.url),
                );
                return;
            }
        };
        match r.status {
            401 if stage == Stage::Negotiate => {
                match ntlm_challenge(&r).map(|c| ntlm::parse_challenge(&c)) {
                    Some(Ok(ch)) => {
                        let cc: [u8; 8] = (self.entropy)(8)
                            .get(..8)
                            .and_then(|s| s.try_into().ok())
                            .unwrap_or([0x5a; 8]);
                        let id = ntlm::Identity::parse(&self.s.username, self.s.domain.as_deref());
                        let msg = ntlm::authenticate(
                            &id,
                            &self.s.password,
                            &self.s.workstation,
                            &ch,
                            cc,
                            now,
                        );
                        self.send_with(
                            job,
                            Stage::Authenticate,
                            format!("NTLM {}", B64.encode(msg)),
                            now,
                        );
                    }
                    Some(Err(e)) => {
                        self.fail(
                            job,
                            ConnectorStatus::ConnectionError,
                            format!("unreadable NTLM challenge: {e}"),
                        );
                    }
                    None => {
                        let offered: Vec<&str> = header(&r, "www-authenticate").collect();
                        self.stopped = true;
                        self.cycle = None;
                        self.set_status(
                        ConnectorStatus::Forbidden,
                        Some(format!(
                            "the server offers no NTLM authentication (WWW-Authenticate: {}); choose another auth_mode",
                            offered.join(", ")
                        )),
                    );
                    }
                }
            }
            401 => self.auth_refused(now),
            403 => {
                let why = format!(
                    "Exchange forbids `{}` to use EWS (HTTP 403; check field username and the account's EWS access)",
                    self.user()
                );
                self.log(Level::Warn, why.clone());
                self.set_status(ConnectorStatus::Forbidden, Some(why));
                self.park(job, self.s.auth_retry_ms);
            }
            503 => {
                let retry_after = header(&r, "retry-after")
                    .next()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| s * 1000);
                let delay = retry_after
                    .unwrap_or_else(|| self.next_backoff())
                    .clamp(1_000, MAX_BUSY_MS);
                self.busy(job, delay, "HTTP 503");
            }
            200 | 500 => self.on_soap(job, r, now),
            other => self.fail(
                job,
                ConnectorStatus::ConnectionError,
                format!("Exchange answered HTTP {other}"),
            ),
        }
    }

    fn watch(&mut self, eps: &[String], _now: u64) {
        let mut added = false;
        for ep in eps {
            if self.watched.insert(ep.clone()) {
                added = true;
                if !self.blocked() {
                    self.set_state(ep, EndpointState::Requesting, None);
                }
            }
        }
        if added && !self.blocked() {
            if self.cycle.is_some() {
                self.rerun = true;
            } else if self.parked.is_none() {
                self.actions
                    .push(Action::SetTimer(TimerKey::Refresh, SETTLE_MS));
            }
        }
    }

    fn unwatch(&mut self, eps: &[String], _now: u64) {
        for ep in eps {
            self.watched.remove(ep);
            self.states.remove(ep);
            self.oof_cache.remove(ep);
        }
    }

    /// The watched endpoints, kept across a reconfiguration: the host does
    /// not replay them for a running instance.
    fn watched(&self) -> Vec<String> {
        self.watched.iter().cloned().collect()
    }

    /// Calendars are read from Exchange, never written.
    fn write(&mut self, _: WriteRequest, _: u64) -> Result<(), ConnectorError> {
        Err(ConnectorError::Unsupported(
            "Exchange calendars are read-only".into(),
        ))
    }

    /// The instance is stopping or being replaced.
    fn shutdown(&mut self, _: u64) {
        self.cycle = None;
        self.flight = None;
        self.parked = None;
    }

    fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }
}
