//! Write-back: the hub's writes as `setPresence` / `setUserPreferredPresence`
//! and their clears, one outcome per write id, the echo marks of the updates
//! a write caused, and what stands on Graph (kept in the key-value store so
//! a restore after a restart still clears it).
//!
//! Writes queue per endpoint: a newer write replaces one not yet sent
//! (`superseded`), and one endpoint never has two writes in flight, so Graph
//! sees them in the hub's order. Throttling and unreachable Graph fail a
//! write at once (`failed`, retryable, with Graph's `Retry-After`): the host
//! owns the retry policy. Only a refused token is retried here, since that
//! is the connector's own business.

use std::collections::BTreeMap;

use presence_connector_sdk::{
    ConnectorError, DndScope, PresenceIntent, UpdateOrigin, WriteAction, WriteFailure, WriteId,
    WriteOutcome, WriteRequest,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Action, Core, Gate, Level, OpClass, Outcome, Purpose, TimerKey, keys};
use crate::mapping::{self, Pair};
use crate::settings::WriteMode;
use crate::time;

/// Writes in flight at once.
const MAX_INFLIGHT: usize = 8;
/// The shortest and longest `expirationDuration` `setPresence` accepts.
const SESSION_MIN_MS: u64 = 5 * 60_000;
const SESSION_MAX_MS: u64 = 4 * 3_600_000;
/// `setUserPreferredPresence` documents no maximum, only the same minimum.
const PREFERRED_MIN_MS: u64 = 5 * 60_000;
/// How long after a write lands a read showing the written pair counts as
/// its echo.
const ECHO_WINDOW_MS: u64 = 60_000;
/// A write still unsent this long after it came (no token, Graph throttling,
/// the user still being looked up) is failed so the host hears of it.
const WRITE_DEADLINE_MS: u64 = 60_000;
/// An application's Available session times out after five minutes without
/// a `setPresence` call: it fades to Available/AvailableInactive, five
/// minutes later to Away/Away (setPresence, "Timeout, expiration, and keep
/// alive"). Other availabilities hold until `expirationDuration`.
const AVAILABLE_TIMEOUT_MS: u64 = 5 * 60_000;
/// How often an Available session is set again: a minute inside the
/// timeout, for the request's way and timer slack.
const AVAILABLE_REFRESH_MS: u64 = 4 * 60_000;

/// A write as Graph gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum WriteOp {
    /// `setPresence` as the application's session. `keep`: the write has no
    /// expiry of its own, so it is renewed until the hub restores.
    SetSession {
        pair: Pair,
        duration_ms: u64,
        keep: bool,
    },
    /// `setUserPreferredPresence`; no duration: Graph's default (a day for
    /// Busy and DoNotDisturb, a week otherwise).
    SetPreferred {
        pair: Pair,
        duration_ms: Option<u64>,
    },
    /// Undo what stands: `clearPresence` or `clearUserPreferredPresence`,
    /// whichever call set it.
    Restore,
}

impl WriteOp {
    fn pair(&self) -> Option<Pair> {
        match self {
            WriteOp::SetSession { pair, .. } | WriteOp::SetPreferred { pair, .. } => Some(*pair),
            WriteOp::Restore => None,
        }
    }
}

/// A write waiting or in flight: the host's id (none for the connector's own
/// keep-alive renewals, which owe no outcome) and what to send.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    pub id: Option<WriteId>,
    pub op: WriteOp,
}

/// A hub write that stands on Graph.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Standing {
    /// Set with `setUserPreferredPresence` (else `setPresence`): names the
    /// clear that undoes it.
    preferred: bool,
    /// When Graph drops it on its own; none where Graph's default applies.
    lapses_at: Option<u64>,
    /// The write the keep-alive sends again. Not stored: after a restart
    /// the state lapses at `lapses_at` (an Available session fades first)
    /// unless the hub writes again.
    #[serde(skip)]
    keep: Option<WriteOp>,
    /// When a session write with an expiry of its own was meant to end;
    /// none for one that stands until the hub restores.
    #[serde(skip)]
    ends_at: Option<u64>,
}

impl Standing {
    fn lapsed(&self, now: u64) -> bool {
        self.lapses_at.is_some_and(|t| now >= t)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredWrites {
    /// [`Settings::session_identity`](crate::settings::Settings::session_identity).
    session: String,
    writes: BTreeMap<String, Standing>,
}

/// When a write of `duration_ms` that Graph took by `now` lapses at the
/// latest: Graph gets the duration in whole minutes, rounded up, and counts
/// from before its answer.
fn lapses_at(now: u64, duration_ms: u64) -> u64 {
    now + duration_ms.div_ceil(60_000) * 60_000
}

/// In how long a session write that Graph took at `now` is to be sent
/// again, if at all. One that stands until the hub restores (`ends_at`
/// none) is renewed ahead of its `expirationDuration`, and an Available one
/// inside its timeout too; one with an expiry of its own needs it only when
/// Available and meant to outlast the timeout.
fn refresh_in(pair: Pair, duration_ms: u64, ends_at: Option<u64>, now: u64) -> Option<u64> {
    let fades = pair.times_out();
    match ends_at {
        None => {
            let lead = (duration_ms / 5).max(60_000);
            let before_expiry = duration_ms.saturating_sub(lead).max(1_000);
            Some(if fades {
                before_expiry.min(AVAILABLE_REFRESH_MS)
            } else {
                before_expiry
            })
        }
        Some(end) => (fades && end > now + AVAILABLE_TIMEOUT_MS).then_some(AVAILABLE_REFRESH_MS),
    }
}

/// An update a write should cause: the pair it wrote, watched for from the
/// moment it is sent until [`ECHO_WINDOW_MS`] after it landed.
#[derive(Debug, Clone)]
pub(super) struct Echo {
    write: WriteId,
    pair: Pair,
    until: Option<u64>,
}

/// A failed write's outcome detail.
pub(super) fn failure(
    message: String,
    retryable: bool,
    retry_after_ms: Option<u64>,
    status: Option<u16>,
) -> WriteFailure {
    WriteFailure {
        message,
        retryable,
        retry_after_ms,
        status,
    }
}

impl Core {
    /// Take over what an earlier run wrote and has not lapsed.
    pub(super) fn adopt_writes(&mut self, stored: Option<&[u8]>, now: u64) {
        let Some(st) = stored.and_then(|b| serde_json::from_slice::<StoredWrites>(b).ok()) else {
            return;
        };
        if st.session == self.s.session_identity() {
            self.standing = st
                .writes
                .into_iter()
                .filter(|(_, w)| !w.lapsed(now))
                .collect();
        }
    }

    fn persist_writes(&mut self) {
        let st = StoredWrites {
            session: self.s.session_identity(),
            writes: self.standing.clone(),
        };
        if let Ok(bytes) = serde_json::to_vec(&st) {
            self.out.push(Action::KvSet(keys::WRITES.into(), bytes));
        }
    }

    /// Accept a write from the hub; its outcome follows as
    /// [`Action::WriteOutcome`], possibly at once. Refused (no outcome) when
    /// Graph cannot express it.
    pub fn write_presence(&mut self, req: WriteRequest, now: u64) -> Result<(), ConnectorError> {
        let WriteRequest {
            id,
            endpoint,
            action,
        } = req;
        if endpoint.trim().is_empty() {
            return Err(ConnectorError::UnknownEndpoint(endpoint));
        }
        let op = match action {
            WriteAction::Set(intent) => self.set_op(&intent)?,
            WriteAction::Restore => WriteOp::Restore,
        };
        self.queue_write(endpoint.clone(), Pending { id: Some(id), op });
        self.settle_idle_restores(now);
        if self.writes.contains_key(&endpoint)
            && self.id_of(&endpoint).is_none()
            && !self.resolving.contains(&endpoint)
        {
            self.to_resolve.insert(endpoint.clone());
        }
        self.pump(now);
        if self.writes.get(&endpoint).is_some_and(|p| p.id == Some(id)) {
            self.set_timer(TimerKey::WriteDeadline(endpoint), WRITE_DEADLINE_MS);
        }
        self.update_status(now);
        Ok(())
    }

    /// The Graph write for an intent in the configured mode. The expiry is
    /// clamped to what Graph accepts; without one a session write is kept
    /// alive until the hub restores.
    fn set_op(&self, intent: &PresenceIntent) -> Result<WriteOp, ConnectorError> {
        if intent.dnd_scope == Some(DndScope::QueueCalls) {
            return Err(ConnectorError::Unsupported(
                "Teams has no do-not-disturb for queue calls only".into(),
            ));
        }
        let unwritable = |e: mapping::Unwritable| ConnectorError::Unsupported(e.0);
        Ok(match self.s.write_mode {
            WriteMode::Session => WriteOp::SetSession {
                pair: mapping::session_pair(intent).map_err(unwritable)?,
                duration_ms: intent
                    .expires_in_ms
                    .unwrap_or(self.s.write_expiration_ms)
                    .clamp(SESSION_MIN_MS, SESSION_MAX_MS),
                keep: intent.expires_in_ms.is_none(),
            },
            WriteMode::Preferred => WriteOp::SetPreferred {
                pair: mapping::preferred_pair(intent).map_err(unwritable)?,
                duration_ms: intent.expires_in_ms.map(|ms| ms.max(PREFERRED_MIN_MS)),
            },
        })
    }

    /// Queue a write; one still waiting for the endpoint is superseded.
    fn queue_write(&mut self, ep: String, p: Pending) {
        if let Some(old) = self.writes.insert(ep, p) {
            self.settle(old.id, WriteOutcome::Superseded);
        }
    }

    /// Report a write's outcome; the connector's own renewals owe none.
    fn settle(&mut self, id: Option<WriteId>, outcome: WriteOutcome) {
        if let Some(id) = id {
            self.out.push(Action::WriteOutcome(id, outcome));
        }
    }

    /// Take the write waiting for an endpoint off the queue, with its
    /// deadline.
    fn take_queued(&mut self, ep: &str) -> Option<Pending> {
        let p = self.writes.remove(ep)?;
        self.cancel_timer(TimerKey::WriteDeadline(ep.to_string()));
        Some(p)
    }

    /// Restores with nothing to undo (the hub never wrote there, or what it
    /// wrote has lapsed) are done at once, with no call to Graph.
    pub(super) fn settle_idle_restores(&mut self, now: u64) {
        let idle: Vec<String> = self
            .writes
            .iter()
            .filter(|(ep, p)| p.op == WriteOp::Restore && !self.writing.contains(*ep))
            .filter(|(ep, _)| self.standing.get(*ep).is_none_or(|w| w.lapsed(now)))
            .map(|(ep, _)| ep.clone())
            .collect();
        for ep in idle {
            let Some(p) = self.take_queued(&ep) else {
                continue;
            };
            if self.standing.remove(&ep).is_some() {
                self.persist_writes();
            }
            self.settle(p.id, WriteOutcome::Restored);
        }
    }

    /// Send the writes that may go: the user id known, nothing in flight for
    /// the endpoint, at most [`MAX_INFLIGHT`] at once.
    pub(super) fn pump_writes(&mut self, token: &str) {
        let ready: Vec<(String, String)> = self
            .writes
            .keys()
            .filter(|ep| !self.writing.contains(*ep))
            .filter_map(|ep| self.id_of(ep).map(|id| (ep.clone(), id)))
            .take(MAX_INFLIGHT.saturating_sub(self.writing.len()))
            .collect();
        for (ep, user) in ready {
            let Some(p) = self.take_queued(&ep) else {
                continue;
            };
            let session = &self.s.client_id;
            let (action, body) = match &p.op {
                WriteOp::SetSession {
                    pair, duration_ms, ..
                } => (
                    "setPresence",
                    Some(json!({
                        "sessionId": session,
                        "availability": pair.availability,
                        "activity": pair.activity,
                        "expirationDuration": time::iso_minutes(*duration_ms),
                    })),
                ),
                WriteOp::SetPreferred { pair, duration_ms } => {
                    let mut b = json!({
                        "availability": pair.availability,
                        "activity": pair.activity,
                    });
                    if let Some(ms) = duration_ms {
                        b["expirationDuration"] = json!(time::iso_minutes(*ms));
                    }
                    ("setUserPreferredPresence", Some(b))
                }
                // settle_idle_restores ran first: something stands.
                WriteOp::Restore => match self.standing.get(&ep) {
                    Some(w) if w.preferred => ("clearUserPreferredPresence", None),
                    _ => ("clearPresence", Some(json!({ "sessionId": session }))),
                },
            };
            let req = self.graph_request(
                "POST",
                &format!("/users/{user}/presence/{action}"),
                body,
                token,
            );
            if let (Some(id), Some(pair)) = (p.id, p.op.pair()) {
                self.echoes.insert(
                    ep.clone(),
                    Echo {
                        write: id,
                        pair,
                        until: None,
                    },
                );
            }
            self.writing.insert(ep.clone());
            self.send(Purpose::Write(ep, p), req);
        }
    }

    fn drop_echo(&mut self, ep: &str, id: Option<WriteId>) {
        if id.is_some() && self.echoes.get(ep).map(|e| e.write) == id {
            self.echoes.remove(ep);
        }
    }

    /// A write Graph did not take because of the token: send it again with a
    /// fresh one, unless a newer write for the endpoint came meanwhile.
    pub(super) fn requeue_write(&mut self, ep: String, p: Pending) {
        self.writing.remove(&ep);
        self.drop_echo(&ep, p.id);
        if self.writes.contains_key(&ep) {
            self.settle(p.id, WriteOutcome::Superseded);
        } else {
            if p.id.is_some() {
                self.set_timer(TimerKey::WriteDeadline(ep.clone()), WRITE_DEADLINE_MS);
            }
            self.writes.insert(ep, p);
        }
    }

    /// Graph throttled or could not be reached: a hub write fails at once
    /// (the host decides when to try again); a keep-alive renewal is sent
    /// again after the back-off.
    pub(super) fn write_not_taken(&mut self, ep: String, p: Pending, why: WriteFailure) {
        if p.id.is_none() {
            self.requeue_write(ep, p);
            return;
        }
        self.writing.remove(&ep);
        self.drop_echo(&ep, p.id);
        self.settle(p.id, WriteOutcome::Failed(why));
    }

    /// Graph answered a write.
    pub(super) fn on_write(&mut self, ep: String, p: Pending, outcome: Outcome, now: u64) {
        self.writing.remove(&ep);
        let result = match outcome {
            Outcome::Ok(_) => {
                self.forbidden.remove(&OpClass::Write);
                self.log(Level::Info, format!("wrote {:?} for {ep}", p.op));
                Ok(self.landed(&ep, &p, now))
            }
            Outcome::Forbidden(m) => Err(failure(
                self.forbid(OpClass::Write, "write presence", &m),
                false,
                None,
                Some(403),
            )),
            Outcome::NotFound(m) => Err(failure(
                format!("no such user in the tenant ({m})"),
                false,
                None,
                Some(404),
            )),
            Outcome::Rejected(status, m) => Err(failure(
                format!("Graph refused the write: {m}"),
                false,
                None,
                Some(status),
            )),
            // Handled before; kept for completeness of the match.
            Outcome::Unauthorized(_) | Outcome::Throttled(..) | Outcome::Transient(..) => return,
        };
        match result {
            Ok(outcome) => self.settle(p.id, outcome),
            Err(why) => {
                self.log(
                    Level::Warn,
                    format!("write-back to {ep} failed: {}", why.message),
                );
                self.drop_echo(&ep, p.id);
                self.settle(p.id, WriteOutcome::Failed(why));
            }
        }
    }

    /// Record what a write that Graph took leaves standing, and what it
    /// reports to the hub.
    fn landed(&mut self, ep: &str, p: &Pending, now: u64) -> WriteOutcome {
        let keep_key = TimerKey::KeepAlive(ep.to_string());
        let outcome = match &p.op {
            WriteOp::Restore => {
                self.standing.remove(ep);
                self.cancel_timer(keep_key);
                WriteOutcome::Restored
            }
            WriteOp::SetSession {
                pair,
                duration_ms,
                keep,
            } => {
                let ends_at = match (keep, p.id) {
                    (true, _) => None,
                    (false, Some(_)) => Some(now + duration_ms),
                    // A refresh carries the end of the write it refreshes.
                    (false, None) => self.standing.get(ep).and_then(|w| w.ends_at),
                };
                // Sent again so the state stands as meant; should the hub
                // die, Graph lets it fade and lapse on its own.
                let refresh = refresh_in(*pair, *duration_ms, ends_at, now);
                match refresh {
                    Some(at) => self.set_timer(keep_key, at),
                    None => self.cancel_timer(keep_key),
                }
                let standing = Standing {
                    preferred: false,
                    lapses_at: Some(lapses_at(now, *duration_ms)),
                    keep: refresh.map(|_| p.op.clone()),
                    ends_at,
                };
                self.standing.insert(ep.to_string(), standing);
                WriteOutcome::Applied
            }
            WriteOp::SetPreferred { duration_ms, .. } => {
                self.cancel_timer(keep_key);
                let standing = Standing {
                    preferred: true,
                    lapses_at: duration_ms.map(|ms| lapses_at(now, ms)),
                    keep: None,
                    ends_at: None,
                };
                self.standing.insert(ep.to_string(), standing);
                WriteOutcome::Applied
            }
        };
        self.persist_writes();
        if let Some(echo) = self.echoes.get_mut(ep)
            && Some(echo.write) == p.id
        {
            echo.until = Some(now + ECHO_WINDOW_MS);
        }
        outcome
    }

    /// The keep-alive timer of a standing session write fired.
    pub(super) fn keep_alive_due(&mut self, ep: String, now: u64) {
        let Some(w) = self.standing.get(&ep) else {
            return;
        };
        let Some(mut op) = w.keep.clone() else {
            return;
        };
        if let (WriteOp::SetSession { duration_ms, .. }, Some(end)) = (&mut op, w.ends_at) {
            // A write with an expiry of its own is set again for what is
            // left of it (at least Graph's five minutes).
            let left = end.saturating_sub(now);
            if left == 0 {
                return;
            }
            *duration_ms = left.clamp(SESSION_MIN_MS, SESSION_MAX_MS);
        }
        // A hub write already waiting replaces the refresh.
        self.writes.entry(ep).or_insert(Pending { id: None, op });
    }

    /// A write waited too long to be sent: fail it, saying what held it.
    pub(super) fn write_overdue(&mut self, ep: String, now: u64) {
        let Some(id) = self.writes.get(&ep).and_then(|p| p.id) else {
            return;
        };
        let slot = self.write_slot();
        let (message, retry_after) = if now < self.gate_until {
            let why = match &self.gate {
                Some(Gate::Throttled(d) | Gate::Unreachable(d)) => d.clone(),
                None => "Graph asked to wait".into(),
            };
            (why, Some(self.gate_until - now))
        } else if self
            .client(slot)
            .and_then(|t| t.access_token(now))
            .is_none()
        {
            let why = self
                .auth_problem
                .clone()
                .or_else(|| self.sign_in_problem())
                .map(|(_, d)| d)
                .unwrap_or_else(|| "signing in to the Microsoft identity platform".into());
            (format!("not signed in for write-back: {why}"), None)
        } else if self.id_of(&ep).is_none() {
            ("the user is still being looked up".into(), None)
        } else {
            ("earlier writes are still waiting for Graph".into(), None)
        };
        self.take_queued(&ep);
        self.settle(
            Some(id),
            WriteOutcome::Failed(failure(
                format!("not sent within {} s: {message}", WRITE_DEADLINE_MS / 1000),
                true,
                retry_after,
                None,
            )),
        );
    }

    /// The write waiting for an endpoint cannot be sent at all (no such
    /// user, no permission to look it up).
    pub(super) fn fail_queued_write(&mut self, ep: &str, why: WriteFailure) {
        if let Some(p) = self.take_queued(ep) {
            self.log(
                Level::Warn,
                format!("write-back to {ep} dropped: {}", why.message),
            );
            self.settle(p.id, WriteOutcome::Failed(why));
        }
    }

    /// The origin of an update showing `availability`/`activity` for an
    /// endpoint: the echo of the hub's write if it shows the written pair in
    /// time. An echo marks one update only.
    pub(super) fn echo_origin(
        &mut self,
        ep: &str,
        availability: &str,
        activity: &str,
        now: u64,
    ) -> UpdateOrigin {
        let Some(echo) = self.echoes.get(ep) else {
            return UpdateOrigin::Platform;
        };
        if echo.until.is_some_and(|t| now > t) {
            self.echoes.remove(ep);
            return UpdateOrigin::Platform;
        }
        let shows = echo.pair.availability.eq_ignore_ascii_case(availability)
            && echo.pair.activity.eq_ignore_ascii_case(activity);
        if !shows {
            return UpdateOrigin::Platform;
        }
        let id = echo.write;
        self.echoes.remove(ep);
        UpdateOrigin::HubWrite(id)
    }

    /// The instance stops: every write accepted and not yet answered fails,
    /// retryable, since no answer will be delivered any more.
    pub(super) fn abandon_writes(&mut self) {
        let in_flight: Vec<Option<WriteId>> = self
            .inflight
            .values()
            .filter_map(|p| match p {
                Purpose::Write(_, p) => Some(p.id),
                _ => None,
            })
            .collect();
        for id in in_flight {
            self.settle(
                id,
                WriteOutcome::Failed(failure(
                    "the connector stopped before Graph answered; the write may have landed".into(),
                    true,
                    None,
                    None,
                )),
            );
        }
        for p in std::mem::take(&mut self.writes).into_values() {
            self.settle(
                p.id,
                WriteOutcome::Failed(failure(
                    "not sent: the connector stopped".into(),
                    true,
                    None,
                    None,
                )),
            );
        }
        self.writing.clear();
        self.inflight
            .retain(|_, p| !matches!(p, Purpose::Write(..)));
    }
}
