//! Write-back and the connector's rules, all through `PUT
//! /restapi/v1.0/account/{accountId}/extension/{id}/presence` (Medium group,
//! `EditPresence`; body `PresenceInfoRequest` with only the fields that
//! change: `dndStatus`, `dndStatusPersonal`, `acceptCallQueueCalls`,
//! `userStatus`).
//!
//! * `set` do-not-disturb: `dndStatus: DoNotAcceptAnyCalls` (scope all-calls
//!   or none) or `DoNotAcceptDepartmentCalls` (scope queue-calls); with the
//!   new communication handling `dndStatusPersonal: DoNotAcceptAnyCalls` or
//!   `acceptCallQueueCalls: false`.
//! * `set` another availability: `userStatus` Available, Busy (also for
//!   away: RingCentral's user status has no "away", and Busy is what tells
//!   colleagues the person is not readily reachable without holding calls
//!   back), Offline; a hub DND is lifted (one standing hub write per
//!   extension).
//! * `restore`: the person's own values back (kept in kv from before the
//!   hub's first write), unless they changed a field the hub held
//!   (`user-changed`).
//! * `expires-in-ms`: RingCentral has no expiry of its own; the connector
//!   lifts the hub's layer when it lapses.
//!
//! One write per extension is in flight at a time; a write that waits (for
//! the Medium budget, or behind another) is `superseded` by a newer one.
//! Rule writes are limited to [`RULE_WRITES`] per extension per
//! [`RULE_WINDOW_MS`], so a platform that does not take them is never
//! hammered.

use presence_connector_sdk::{
    Availability, ConnectorError, DndScope, WriteAction, WriteFailure, WriteId, WriteOutcome,
    WriteRequest,
};

use super::{Action, Core, Level, Outcome, Purpose, TimerKey, keys};
use crate::budget::Group;
use crate::layers::{Cause, HubLayer, Want, request_body};

/// Rule writes allowed per extension per window.
pub const RULE_WRITES: usize = 4;
pub const RULE_WINDOW_MS: u64 = 10 * 60_000;
/// A write not sent within this time fails (retryable).
const WRITE_WAIT_MS: u64 = 60_000;

/// A hub write waiting to be made.
#[derive(Debug, Clone)]
pub struct PendingWrite {
    pub id: WriteId,
    pub action: WriteAction,
    pub since: u64,
}

/// What a `PUT …/presence` is for.
#[derive(Debug, Clone)]
pub struct PutCtx {
    ext: String,
    put: u64,
    write: Option<WriteCtx>,
}

/// The hub write a `PUT` carries, and the layer it replaced (put back if
/// RingCentral refuses).
#[derive(Debug, Clone)]
struct WriteCtx {
    id: WriteId,
    restore: bool,
    prev: Option<HubLayer>,
    prev_overridden: bool,
}

/// A failed write's outcome.
pub fn failure(
    msg: impl Into<String>,
    retryable: bool,
    retry_after_ms: Option<u64>,
    status: Option<u16>,
) -> WriteOutcome {
    WriteOutcome::Failed(WriteFailure {
        message: msg.into(),
        retryable,
        retry_after_ms,
        status,
    })
}

impl Core {
    fn persist_layers(&mut self, ext: &str) {
        if let Some(e) = self.exts.get(ext) {
            let bytes = serde_json::to_vec(&e.layers).unwrap_or_default();
            self.out
                .push(Action::KvSet(format!("{}{ext}", keys::EXT_PREFIX), bytes));
        }
    }

    fn outcome(&mut self, id: WriteId, o: WriteOutcome) {
        self.out.push(Action::WriteOutcome(id, o));
    }

    /// Start a write-back (contract `write-presence`).
    pub fn write_presence(&mut self, req: WriteRequest, now: u64) -> Result<(), ConnectorError> {
        let ep = req.endpoint.trim().to_string();
        let ext = match self.endpoints.get(&ep).cloned().flatten() {
            Some(ext) => ext,
            None if self.dir.complete => match self.dir.resolve(&ep) {
                Some(ext) => ext,
                None => return Err(ConnectorError::UnknownEndpoint(ep)),
            },
            None => {
                self.outcome(
                    req.id,
                    failure(
                        "the account's extension list is still being read",
                        true,
                        Some(5_000),
                        None,
                    ),
                );
                return Ok(());
            }
        };
        if let WriteAction::Set(intent) = &req.action
            && intent.availability == Availability::Unknown
        {
            self.outcome(
                req.id,
                WriteOutcome::Unsupported(
                    "availability unknown cannot be written to RingCentral".into(),
                ),
            );
            return Ok(());
        }
        self.last_event = Some(now);
        let e = self.exts.entry(ext.clone()).or_default();
        if !e.layers.seen && !self.reading.contains(&ext) {
            self.to_read.insert(ext.clone());
        }
        let pending = PendingWrite {
            id: req.id,
            action: req.action,
            since: now,
        };
        if let Some(old) = self.pending_writes.insert(ext, pending) {
            self.outcome(old.id, WriteOutcome::Superseded);
        }
        self.pump(now);
        self.update_status(now);
        Ok(())
    }

    /// The hub write on `ext` becomes its layer. `None`: answered already.
    fn take_write(&mut self, ext: &str, w: PendingWrite, now: u64) -> Option<(WriteCtx, Cause)> {
        let e = self.exts.get_mut(ext)?;
        let prev_overridden = e.layers.hub_overridden;
        match w.action {
            WriteAction::Set(intent) => {
                let want = match intent.availability {
                    Availability::DoNotDisturb => match intent.dnd_scope {
                        Some(DndScope::QueueCalls) => Want::DndQueue,
                        _ => Want::DndAll,
                    },
                    Availability::Available => Want::Status("Available".into()),
                    Availability::Busy | Availability::Away => Want::Status("Busy".into()),
                    Availability::Offline => Want::Status("Offline".into()),
                    Availability::Unknown => return None,
                };
                let expires_at = intent.expires_in_ms.map(|ms| now + ms);
                let prev = e.layers.hub.replace(HubLayer {
                    id: w.id,
                    want,
                    expires_at,
                });
                e.layers.hub_overridden = false;
                match intent.expires_in_ms {
                    Some(ms) => self.set_timer(TimerKey::Expire(ext.to_string()), ms.max(1)),
                    None => self.cancel_timer(TimerKey::Expire(ext.to_string())),
                }
                Some((
                    WriteCtx {
                        id: w.id,
                        restore: false,
                        prev,
                        prev_overridden,
                    },
                    Cause::Hub(w.id),
                ))
            }
            WriteAction::Restore => {
                let Some(prev) = e.layers.hub.take() else {
                    let o = if e.layers.hub_overridden {
                        e.layers.hub_overridden = false;
                        WriteOutcome::UserChanged
                    } else {
                        WriteOutcome::Restored
                    };
                    self.persist_layers(ext);
                    self.outcome(w.id, o);
                    return None;
                };
                self.cancel_timer(TimerKey::Expire(ext.to_string()));
                Some((
                    WriteCtx {
                        id: w.id,
                        restore: true,
                        prev: Some(prev),
                        prev_overridden,
                    },
                    Cause::Hub(w.id),
                ))
            }
        }
    }

    /// Whether a rule may write on `ext` now (and count it).
    fn rule_allowed(&mut self, ext: &str, now: u64) -> bool {
        let log = self.rule_log.entry(ext.to_string()).or_default();
        log.retain(|t| t + RULE_WINDOW_MS > now);
        if log.len() >= RULE_WRITES {
            return false;
        }
        log.push(now);
        true
    }

    pub(super) fn pump_writes(&mut self, now: u64) {
        let mut candidates: Vec<String> = self.pending_writes.keys().cloned().collect();
        candidates.extend(self.dirty.keys().cloned());
        candidates.sort();
        candidates.dedup();
        for ext in candidates {
            if self.putting.contains(&ext) {
                continue;
            }
            let Some(seen) = self.exts.get(&ext).map(|e| e.layers.seen) else {
                self.pending_writes.remove(&ext);
                self.dirty.remove(&ext);
                continue;
            };
            if !seen {
                if !self.reading.contains(&ext) {
                    self.to_read.insert(ext.clone());
                }
                continue;
            }
            if !self.room(Group::Medium, now) {
                return;
            }
            let dirty = self.dirty.remove(&ext);
            let (write, back) = match self.pending_writes.remove(&ext) {
                Some(w) => match self.take_write(&ext, w, now) {
                    Some((ctx, cause)) => (Some(ctx), cause),
                    None => continue,
                },
                None => match dirty {
                    Some(c) => (None, c),
                    None => continue,
                },
            };
            let diff = self.exts[&ext].layers.diff(back);
            if diff.is_empty() {
                if let Some(ctx) = write {
                    let o = if ctx.restore {
                        WriteOutcome::Restored
                    } else {
                        WriteOutcome::Applied
                    };
                    self.outcome(ctx.id, o);
                }
                self.persist_layers(&ext);
                continue;
            }
            if write.is_none() && !self.rule_allowed(&ext, now) {
                self.log(
                    Level::Warn,
                    format!(
                        "extension {ext}: RingCentral did not keep the connector's last {RULE_WRITES} rule writes; not writing again for now"
                    ),
                );
                continue;
            }
            let put = self.next_put;
            self.next_put += 1;
            let fields = diff.iter().map(|(f, (v, _))| (*f, v.clone())).collect();
            if let Some(e) = self.exts.get_mut(&ext) {
                e.layers.expect(put, &diff, now);
            }
            self.persist_layers(&ext);
            let path = format!(
                "/restapi/v1.0/account/{}/extension/{ext}/presence",
                self.s.account
            );
            let req = self.api("PUT", &path, Some(request_body(&fields)));
            self.putting.insert(ext.clone());
            self.send(Purpose::Put(PutCtx { ext, put, write }), req, now);
        }
    }

    pub(super) fn on_put(&mut self, ctx: PutCtx, outcome: Outcome, now: u64) {
        match outcome {
            Outcome::Ok(_) => {
                self.putting.remove(&ctx.ext);
                self.forbidden.remove("EditPresence");
                if let Some(e) = self.exts.get_mut(&ctx.ext) {
                    e.layers.put_done(ctx.put, true);
                }
                if let Some(w) = ctx.write {
                    let o = if w.restore {
                        WriteOutcome::Restored
                    } else {
                        WriteOutcome::Applied
                    };
                    self.outcome(w.id, o);
                }
            }
            Outcome::Forbidden(perm, text) => {
                let msg = self.forbid("EditPresence", perm, "change presence", &text);
                self.put_failed(ctx, &msg, false, None, Some(403), now);
            }
            Outcome::NotFound(text) => self.put_failed(ctx, &text, false, None, Some(404), now),
            Outcome::Rejected(status, text) => {
                self.put_failed(ctx, &text, false, None, Some(status), now)
            }
            Outcome::Unauthorized(text) => self.put_failed(ctx, &text, true, None, Some(401), now),
            Outcome::Throttled(wait) => {
                self.put_failed(ctx, "throttled", true, wait, Some(429), now)
            }
            Outcome::Transient(status, text) => {
                self.put_failed(ctx, &text, true, None, status, now)
            }
        }
    }

    /// A `PUT` did not land: its values are no longer expected; a hub write
    /// puts the layer it replaced back and fails; a rule write is tried
    /// again later when that may help.
    pub(super) fn put_failed(
        &mut self,
        ctx: PutCtx,
        why: &str,
        retryable: bool,
        retry_after: Option<u64>,
        status: Option<u16>,
        _now: u64,
    ) {
        self.putting.remove(&ctx.ext);
        let Some(e) = self.exts.get_mut(&ctx.ext) else {
            return;
        };
        e.layers.put_done(ctx.put, false);
        match ctx.write {
            Some(w) => {
                e.layers.hub = w.prev.clone();
                e.layers.hub_overridden = w.prev_overridden;
                if let Some(at) = w.prev.as_ref().and_then(|h| h.expires_at) {
                    let ms = at.saturating_sub(_now).max(1);
                    self.set_timer(TimerKey::Expire(ctx.ext.clone()), ms);
                }
                self.outcome(
                    w.id,
                    failure(
                        format!("RingCentral did not take it: {why}"),
                        retryable,
                        retry_after,
                        status,
                    ),
                );
            }
            None => {
                self.log(
                    Level::Warn,
                    format!("extension {}: a rule's write failed: {why}", ctx.ext),
                );
                if retryable {
                    self.dirty
                        .entry(ctx.ext.clone())
                        .or_insert(Cause::Rule(crate::layers::REFLECT_DND));
                }
            }
        }
        self.persist_layers(&ctx.ext);
    }

    /// The hub's write on `ext` lapsed (`expires-in-ms`).
    pub(super) fn expire(&mut self, ext: &str, now: u64) {
        let Some(e) = self.exts.get_mut(ext) else {
            return;
        };
        let Some(h) = e.layers.hub.clone() else {
            return;
        };
        match h.expires_at {
            Some(at) if at <= now => {
                e.layers.hub = None;
                self.dirty.insert(ext.to_string(), Cause::Hub(h.id));
                self.log(
                    Level::Info,
                    format!("extension {ext}: the hub's write {} lapsed; the person's own state goes back", h.id),
                );
                self.persist_layers(ext);
            }
            Some(at) => self.set_timer(TimerKey::Expire(ext.to_string()), at - now),
            None => {}
        }
    }

    /// Timers for stored hub writes with an expiry.
    pub(super) fn arm_expiries(&mut self, now: u64) {
        let due: Vec<(String, u64)> = self
            .exts
            .iter()
            .filter_map(|(id, e)| Some((id.clone(), e.layers.hub.as_ref()?.expires_at?)))
            .collect();
        for (ext, at) in due {
            self.set_timer(TimerKey::Expire(ext), at.saturating_sub(now).max(1));
        }
    }

    /// Writes that could not be sent in time fail, retryably.
    pub(super) fn overdue_writes(&mut self, now: u64) {
        let overdue: Vec<String> = self
            .pending_writes
            .iter()
            .filter(|(_, w)| now >= w.since + WRITE_WAIT_MS)
            .map(|(ext, _)| ext.clone())
            .collect();
        let why = self.desired_status(now).1.unwrap_or_default();
        for ext in overdue {
            if let Some(w) = self.pending_writes.remove(&ext) {
                self.outcome(
                    w.id,
                    failure(
                        format!("not sent within {} s: {why}", WRITE_WAIT_MS / 1000),
                        true,
                        None,
                        None,
                    ),
                );
            }
        }
    }
}
