//! Write-back (PROTOCOL.md section 7): `set` becomes a `publish` of the
//! hub-owned category instance, `restore` deletes it so the Front End shows
//! what the person's own clients publish.
//!
//! * One write per target on the wire at a time; a write still waiting is
//!   `superseded` by a newer one for the same target.
//! * Exactly one outcome per accepted write: `applied`, `restored`,
//!   `user-changed` (restore, when the person's own state had replaced the
//!   hub's since the write), `failed` (retryable when the bridge says so,
//!   or when the connection ended before the answer — the write may have
//!   landed), `unsupported`.
//! * Echo: the first push of the target after a `publish` whose band is
//!   the published one (after a `restore`: the first push whose band
//!   differs from it, or the next push) carries `hub-write(id)`.
//! * `expires-in-ms`: the bridge has no expiry; the connector restores
//!   when it lapses. The writes in force are kept in the key-value store
//!   (`held/{target}`), so a lapse due while the connector was down is
//!   restored once it is back, and restores wanted while the bridge was
//!   unreachable are sent after the reconnect.

use presence_connector_sdk::{
    ConnectorError, UpdateOrigin, WriteAction, WriteFailure, WriteId, WriteOutcome, WriteRequest,
};
use serde::{Deserialize, Serialize};

use super::session::Scope;
use super::targets::target_of;
use super::{Action, Core, Level, Req, keys};
use crate::mapping::{self, Band, Publication};
use crate::wire;

/// A write not sent within this time (the bridge unreachable) fails,
/// retryably.
pub const WRITE_WAIT_MS: u64 = 30_000;
/// `publish-result` within this time (30 s by the protocol, plus slack).
const RESULT_MS: u64 = 35_000;
/// An echo not seen within this time is no longer expected.
const ECHO_MS: u64 = 30_000;
/// A restore of the connector's own (a lapse) that failed is tried again
/// after this long.
const RESTORE_RETRY_MS: u64 = 30_000;

/// A write of the hub in force on a target, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub id: WriteId,
    pub availability: i64,
    /// When it lapses (ms since the epoch), if it does.
    #[serde(default)]
    pub expires_at: Option<u64>,
    /// The person's own state replaced the hub's since the write.
    #[serde(default)]
    pub overridden: bool,
}

#[derive(Debug, Clone)]
enum Op {
    Publish(Publication, Option<u64>),
    Restore,
}

/// A write to make: the hub's (with its id) or the connector's own restore
/// after a lapse.
#[derive(Debug, Clone)]
struct Job {
    id: Option<WriteId>,
    op: Op,
    since: u64,
    /// Not before this time (a retry of the connector's own restore).
    not_before: u64,
}

/// An echo the target's pushes are expected to show.
#[derive(Debug, Clone)]
struct Echo {
    id: WriteId,
    /// `Some`: a push in this band; `None` (restore): a push out of
    /// `from`'s band, or any push when nothing was held.
    band: Option<Band>,
    from: Option<Band>,
    until: u64,
}

/// The writes of one target.
#[derive(Debug, Default)]
pub struct WriteSlot {
    inflight: Option<(String, Job, u64)>,
    queued: Option<Job>,
    echo: Option<Echo>,
}

fn failed(msg: impl Into<String>, retryable: bool) -> WriteOutcome {
    WriteOutcome::Failed(WriteFailure {
        message: msg.into(),
        retryable,
        retry_after_ms: None,
        status: None,
    })
}

impl Core {
    fn outcome(&mut self, id: WriteId, o: WriteOutcome) {
        self.out.push(Action::WriteOutcome(id, o));
    }

    fn store_held(&mut self, target: &str) {
        let key = format!("{}{target}", keys::HELD_PREFIX);
        match self.held.get(target) {
            Some(h) => {
                let bytes = serde_json::to_vec(h).unwrap_or_default();
                self.out.push(Action::KvSet(key, bytes));
            }
            None => self.out.push(Action::KvDelete(key)),
        }
    }

    /// Why the established endpoint cannot publish for `target`, if it
    /// cannot.
    fn refusal(&self, target: &str) -> Option<String> {
        let s = self.sess.as_ref().filter(|s| s.live())?;
        match s.scope {
            Scope::Any => None,
            Scope::Nothing => {
                Some("the bridge does not implement publishing (setup-result publish: none)".into())
            }
            Scope::OwnUri => {
                let own = s.endpoint_uri.as_deref().unwrap_or("");
                (!own.eq_ignore_ascii_case(target)).then(|| {
                    format!(
                        "a user endpoint publishes only its own presence ({own}); writing other users' presence needs a trusted application endpoint"
                    )
                })
            }
        }
    }

    /// Start a write-back (contract `write-presence`).
    pub fn write_presence(&mut self, req: WriteRequest, now: u64) -> Result<(), ConnectorError> {
        let target = match target_of(&req.endpoint) {
            Some(t) => t,
            None => return Err(ConnectorError::UnknownEndpoint(req.endpoint)),
        };
        let op = match &req.action {
            WriteAction::Set(intent) => {
                let Some(p) = mapping::publish(intent) else {
                    self.outcome(
                        req.id,
                        WriteOutcome::Unsupported(
                            "availability unknown cannot be published to Lync / SfB".into(),
                        ),
                    );
                    return Ok(());
                };
                Op::Publish(p, intent.expires_in_ms)
            }
            WriteAction::Restore => Op::Restore,
        };
        if let Some(why) = self.refusal(&target) {
            self.outcome(req.id, WriteOutcome::Unsupported(why));
            return Ok(());
        }
        let job = Job {
            id: Some(req.id),
            op,
            since: now,
            not_before: now,
        };
        let slot = self.writes.entry(target).or_default();
        if let Some(old) = slot.queued.replace(job)
            && let Some(id) = old.id
        {
            self.outcome(id, WriteOutcome::Superseded);
        }
        self.finish(now);
        Ok(())
    }

    /// Send each target's next write, where none is on the wire.
    pub(super) fn pump_writes(&mut self, now: u64) {
        let ready: Vec<String> = self
            .writes
            .iter()
            .filter(|(_, s)| {
                s.inflight.is_none() && s.queued.as_ref().is_some_and(|j| j.not_before <= now)
            })
            .map(|(t, _)| t.clone())
            .collect();
        for target in ready {
            let Some(job) = self.writes.get_mut(&target).and_then(|s| s.queued.take()) else {
                continue;
            };
            if let Some(why) = self.refusal(&target) {
                match job.id {
                    Some(id) => self.outcome(id, WriteOutcome::Unsupported(why)),
                    None => {
                        self.log(Level::Warn, format!("cannot restore {target}: {why}"));
                        self.held.remove(&target);
                        self.store_held(&target);
                    }
                }
                continue;
            }
            let (rid, text, echo) = match &job.op {
                Op::Publish(p, _) => {
                    let rid = self.request_id("p");
                    let text = wire::publish(
                        &rid,
                        &target,
                        p.availability,
                        p.token,
                        p.custom.as_deref(),
                        p.note.as_deref(),
                    );
                    (rid, text, job.id.map(|id| (id, Some(p.band()))))
                }
                Op::Restore => {
                    let rid = self.request_id("r");
                    let text = wire::restore(&rid, &target);
                    (rid, text, job.id.map(|id| (id, None)))
                }
            };
            let from = self.held.get(&target).map(|h| Band::of(h.availability));
            self.requests
                .insert(rid.clone(), Req::Write(target.clone()));
            self.send(text);
            let slot = self.writes.entry(target.clone()).or_default();
            slot.echo = echo.map(|(id, band)| Echo {
                id,
                band,
                from,
                until: now + ECHO_MS,
            });
            slot.inflight = Some((rid, job, now + RESULT_MS));
        }
    }

    /// The origin of a push of `target` in `band`: the echo of a write, or
    /// the platform (and then, with a hub write in force, the person's own
    /// change).
    pub(super) fn origin_for(&mut self, target: &str, band: Band, now: u64) -> UpdateOrigin {
        if let Some(slot) = self.writes.get_mut(target)
            && let Some(e) = slot.echo.clone()
        {
            let hit = match e.band {
                Some(b) => b == band,
                None => e.from.is_none_or(|f| f != band),
            };
            if hit && now <= e.until {
                slot.echo = None;
                return UpdateOrigin::HubWrite(e.id);
            }
            if now > e.until {
                slot.echo = None;
            } else {
                // Still waiting for the echo: not the person's change.
                return UpdateOrigin::Platform;
            }
        }
        if let Some(h) = self.held.get_mut(target)
            && Band::of(h.availability) != band
            && !h.overridden
        {
            h.overridden = true;
            self.store_held(target);
        }
        UpdateOrigin::Platform
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_publish_result(
        &mut self,
        rid: &str,
        target: &str,
        op: &str,
        outcome: &str,
        code: Option<&str>,
        retryable: Option<bool>,
        reason: Option<String>,
        now: u64,
    ) {
        let Some(Req::Write(t)) = self.requests.remove(rid) else {
            self.log(
                Level::Warn,
                format!("publish-result for unknown request {rid}"),
            );
            return;
        };
        if t != target {
            self.log(
                Level::Warn,
                format!("publish-result {rid} names {target}, the request was for {t}"),
            );
        }
        let Some((_, job, _)) = self.writes.get_mut(&t).and_then(|s| s.inflight.take()) else {
            return;
        };
        let reason = reason.unwrap_or_default();
        match outcome {
            "applied" => self.applied(&t, job, now),
            "unsupported" => {
                if let Some(e) = self.writes.get_mut(&t) {
                    e.echo = None;
                }
                match job.id {
                    Some(id) => self.outcome(id, WriteOutcome::Unsupported(reason)),
                    None => {
                        self.log(Level::Warn, format!("restore of {t} unsupported: {reason}"));
                        self.held.remove(&t);
                        self.store_held(&t);
                    }
                }
            }
            _ => {
                let code = code.unwrap_or("internal-error");
                let retryable = retryable
                    .unwrap_or(matches!(code, "timeout" | "endpoint-lost" | "rate-limited"));
                let msg = format!("the bridge could not {op} [{code}]: {reason}");
                if let Some(e) = self.writes.get_mut(&t) {
                    e.echo = None;
                }
                match job.id {
                    Some(id) => self.outcome(id, failed(msg, retryable)),
                    None if retryable => {
                        self.log(Level::Warn, format!("{msg}; trying again"));
                        self.requeue(&t, job, now);
                    }
                    None => {
                        self.log(Level::Warn, msg);
                        self.held.remove(&t);
                        self.store_held(&t);
                    }
                }
            }
        }
        if op != "publish" && op != "restore" {
            self.log(Level::Debug, format!("publish-result {rid} with op {op:?}"));
        }
    }

    fn applied(&mut self, target: &str, job: Job, now: u64) {
        match job.op {
            Op::Publish(p, expires) => {
                let Some(id) = job.id else { return };
                self.held.insert(
                    target.to_string(),
                    Held {
                        id,
                        availability: p.availability,
                        expires_at: expires.map(|ms| now + ms),
                        overridden: false,
                    },
                );
                self.store_held(target);
                self.outcome(id, WriteOutcome::Applied);
            }
            Op::Restore => {
                let was = self.held.remove(target);
                self.store_held(target);
                if let Some(id) = job.id {
                    let o = if was.is_some_and(|h| h.overridden) {
                        WriteOutcome::UserChanged
                    } else {
                        WriteOutcome::Restored
                    };
                    self.outcome(id, o);
                } else {
                    self.log(
                        Level::Info,
                        format!("the hub's write on {target} lapsed: restored"),
                    );
                }
            }
        }
    }

    /// Put the connector's own restore back in the queue, unless a newer
    /// write took its place.
    fn requeue(&mut self, target: &str, mut job: Job, now: u64) {
        let slot = self.writes.entry(target.to_string()).or_default();
        if slot.queued.is_none() {
            job.not_before = now + RESTORE_RETRY_MS;
            slot.queued = Some(job);
        }
    }

    /// The bridge answered a write's request with an `error`.
    pub(super) fn write_failed(&mut self, target: &str, why: &str, retryable: bool, now: u64) {
        let Some((_, job, _)) = self.writes.get_mut(target).and_then(|s| s.inflight.take()) else {
            return;
        };
        match job.id {
            Some(id) => self.outcome(
                id,
                failed(format!("the bridge refused the request: {why}"), retryable),
            ),
            None => self.requeue(target, job, now),
        }
    }

    /// The connection ended: writes on the wire may or may not have landed.
    pub(super) fn writes_lost(&mut self, now: u64) {
        let targets: Vec<String> = self.writes.keys().cloned().collect();
        for t in targets {
            let Some((_, job, _)) = self.writes.get_mut(&t).and_then(|s| s.inflight.take()) else {
                continue;
            };
            match job.id {
                Some(id) => self.outcome(
                    id,
                    failed(
                        "the connection to the bridge ended before it answered; the write may have landed",
                        true,
                    ),
                ),
                None => self.requeue(&t, job, now),
            }
        }
    }

    /// Every write still open gets its one outcome (the connector stops).
    pub(super) fn fail_open_writes(&mut self, why: &str, _now: u64) {
        let slots = std::mem::take(&mut self.writes);
        for (_, s) in slots {
            for job in s.inflight.map(|(_, j, _)| j).into_iter().chain(s.queued) {
                if let Some(id) = job.id {
                    self.outcome(id, failed(why, true));
                }
            }
        }
    }

    pub(super) fn writes_due(&mut self, now: u64) {
        // Lapsed hub writes: restore (the connector's own).
        let lapsed: Vec<String> = self
            .held
            .iter()
            .filter(|(_, h)| h.expires_at.is_some_and(|t| t <= now))
            .map(|(t, _)| t.clone())
            .collect();
        for t in lapsed {
            let slot = self.writes.entry(t.clone()).or_default();
            if slot.inflight.is_none() && slot.queued.is_none() {
                slot.queued = Some(Job {
                    id: None,
                    op: Op::Restore,
                    since: now,
                    not_before: now,
                });
            }
        }
        let live = self.live();
        let mut outcomes = Vec::new();
        let mut requeue = Vec::new();
        for (t, slot) in self.writes.iter_mut() {
            if let Some((rid, _, at)) = &slot.inflight
                && *at <= now
            {
                let rid = rid.clone();
                let (_, job, _) = slot.inflight.take().expect("checked");
                self.requests.remove(&rid);
                match job.id {
                    Some(id) => outcomes.push((
                        id,
                        failed(
                            "the bridge did not answer within 35 s; the write may have landed",
                            true,
                        ),
                    )),
                    None => requeue.push((t.clone(), job)),
                }
            }
            if !live
                && let Some(job) = &slot.queued
                && job.id.is_some()
                && job.since + WRITE_WAIT_MS <= now
            {
                let job = slot.queued.take().expect("checked");
                outcomes.push((
                    job.id.expect("checked"),
                    failed("not connected to the bridge", true),
                ));
            }
            if slot.echo.as_ref().is_some_and(|e| e.until < now) {
                slot.echo = None;
            }
        }
        for (id, o) in outcomes {
            self.outcome(id, o);
        }
        for (t, job) in requeue {
            self.requeue(&t, job, now);
        }
        self.writes
            .retain(|_, s| s.inflight.is_some() || s.queued.is_some() || s.echo.is_some());
    }

    pub(super) fn writes_deadline(&self) -> Option<u64> {
        let live = self.live();
        let slots = self.writes.values().flat_map(|s| {
            [
                s.inflight.as_ref().map(|(_, _, at)| *at),
                s.queued.as_ref().and_then(|j| {
                    if !live && j.id.is_some() {
                        Some(j.since + WRITE_WAIT_MS)
                    } else if live {
                        Some(j.not_before)
                    } else {
                        None
                    }
                }),
                s.echo.as_ref().map(|e| e.until + 1),
            ]
        });
        // A lapse whose restore is queued or on the wire waits for no time.
        let lapses = self
            .held
            .iter()
            .filter(|(t, _)| {
                self.writes
                    .get(*t)
                    .is_none_or(|s| s.inflight.is_none() && s.queued.is_none())
            })
            .filter_map(|(_, h)| h.expires_at);
        slots.flatten().chain(lapses).min()
    }
}
