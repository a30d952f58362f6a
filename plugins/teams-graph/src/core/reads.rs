//! Presence reads: `getPresencesByUserId` in batches of at most 650 users,
//! the poll of users no subscription covers, the slow re-read of those a
//! subscription covers (a safety net should Graph stop delivering), and the
//! read budget.
//!
//! Graph refuses a whole batch (403, 404, another 4xx) when it refuses one
//! of its users. Such a batch is split in halves, and the halves read on
//! their own, down to the users refused; those are then read alone, later
//! each time ([`Refusal`]), and only their endpoints are reported, while
//! the others keep flowing in shared batches. When every user is refused
//! the refusal is the app's (consent revoked): the connector is `forbidden`,
//! one user stands for all in each retry, and the first success lets every
//! user back.

use std::collections::{BTreeSet, VecDeque};

use presence_connector_sdk::{EndpointState, PresenceUpdate, UpdateOrigin, VendorValue};
use serde_json::json;

use super::backoff::Refusal;
use super::{Action, Core, Level, OpClass, Outcome, Purpose, Response, TimerKey};
use crate::mapping;
use crate::wire::{self, Collection, Presence};

/// Presence reads per 30 s the connector allows itself. Graph allows 1,500
/// requests per 30 s per app and tenant for presence; the rest is left for
/// writes, subscriptions and other instances of the same app.
pub(super) const READ_BUDGET: usize = 1_000;
pub(super) const READ_WINDOW_MS: u64 = 30_000;
/// How long notifications and resolved users gather before one batch read.
pub(super) const READ_GATHER_MS: u64 = 50;
/// The longest wait before a refused user is read again.
const REFUSED_MAX_MS: u64 = 30 * 60_000;

/// What a read shows of a user: availability, activity, automatic replies
/// and the status note.
pub(super) type Snapshot = (String, String, bool, Option<String>);

impl Core {
    pub(super) fn schedule_read(&mut self) {
        if !self.timers.contains(&TimerKey::ReadSoon) {
            self.set_timer(TimerKey::ReadSoon, READ_GATHER_MS);
        }
    }

    /// `every` stretched so that a round of batch reads of `users` stays
    /// inside the read budget.
    fn within_budget(every: u64, users: usize) -> u64 {
        let batches = users.div_ceil(wire::MAX_IDS) as u64;
        every.max(batches * READ_WINDOW_MS / READ_BUDGET as u64)
    }

    /// The poll interval in force: the configured one, stretched so a full
    /// round of reads stays inside the read budget.
    pub(super) fn poll_interval(&self) -> u64 {
        Self::within_budget(self.s.poll_ms, self.ids.len())
    }

    pub(super) fn arm_poll(&mut self) {
        let ms = self.poll_interval();
        self.set_timer(TimerKey::Poll, ms);
    }

    /// How often users a subscription covers are read anyway.
    pub(super) fn reread_interval(&self) -> u64 {
        Self::within_budget(self.s.reread_ms, self.ids.len())
    }

    pub(super) fn arm_reread(&mut self) {
        let ms = self.reread_interval();
        self.set_timer(TimerKey::Reread, ms);
    }

    /// Users whose read is in flight or waits in a kept batch: a round does
    /// not read them again.
    fn reading(&self) -> BTreeSet<String> {
        let in_flight = self.inflight.values().filter_map(|p| match p {
            Purpose::Read(ids) => Some(ids.iter()),
            _ => None,
        });
        in_flight
            .flatten()
            .chain(self.kept.iter().flatten())
            .cloned()
            .collect()
    }

    /// Users due for a round: covered by a subscription or not, neither
    /// being read nor refused (those are read alone, on their own clock).
    fn round(&self, covered: bool) -> Vec<String> {
        let reading = self.reading();
        self.ids
            .iter()
            .filter(|(id, info)| {
                info.refused.is_none() && !reading.contains(*id) && self.covered(id) == covered
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The poll: users no subscription covers.
    pub(super) fn poll_tick(&mut self) {
        let due = self.round(false);
        self.to_read.extend(due);
        self.to_read.extend(std::mem::take(&mut self.read_failed));
    }

    /// The safety net: users a subscription covers, read slowly in case
    /// Graph stopped delivering without a word.
    pub(super) fn reread_tick(&mut self) {
        let due = self.round(true);
        if !due.is_empty() {
            self.to_read.extend(due);
            self.schedule_read();
        }
    }

    /// Send the reads that may go: kept batches as they are, refused users
    /// alone, everyone else in batches of at most 650, while the budget
    /// lasts.
    pub(super) fn pump_reads(&mut self, token: &str, now: u64) {
        if (self.kept.is_empty() && self.to_read.is_empty())
            || self.timers.contains(&TimerKey::ReadSoon)
        {
            return;
        }
        while self
            .read_log
            .front()
            .is_some_and(|t| now.saturating_sub(*t) >= READ_WINDOW_MS)
        {
            self.read_log.pop_front();
        }
        let (alone, shared): (Vec<String>, Vec<String>) = std::mem::take(&mut self.to_read)
            .into_iter()
            .partition(|id| self.ids.get(id).is_some_and(|i| i.refused.is_some()));
        let mut batches: VecDeque<Vec<String>> = std::mem::take(&mut self.kept);
        batches.extend(alone.into_iter().map(|id| vec![id]));
        batches.extend(wire::batches(&shared));
        while let Some(batch) = batches.pop_front() {
            let batch: Vec<String> = batch
                .into_iter()
                .filter(|i| self.ids.contains_key(i))
                .collect();
            if batch.is_empty() {
                continue;
            }
            if self.read_log.len() >= READ_BUDGET {
                // Out of budget: the rest waits, as cut, until the window
                // frees up.
                self.kept.push_back(batch);
                self.kept.extend(batches);
                let oldest = self.read_log.front().copied().unwrap_or(now);
                let wait = (oldest + READ_WINDOW_MS).saturating_sub(now).max(1);
                self.set_timer(TimerKey::ReadSoon, wait);
                self.log(
                    Level::Warn,
                    format!("presence read budget spent; next read in {wait} ms"),
                );
                return;
            }
            self.read_log.push_back(now);
            let req = self.graph_request(
                "POST",
                "/communications/getPresencesByUserId",
                Some(json!({ "ids": batch })),
                token,
            );
            self.send(Purpose::Read(batch), req);
        }
    }

    /// Graph answered a read (other than with a token, throttling or
    /// transport problem).
    pub(super) fn on_read(&mut self, ids: Vec<String>, outcome: Outcome, now: u64) {
        match outcome {
            Outcome::Ok(resp) => self.read_answered(ids, resp, now),
            Outcome::Forbidden(m) => self.read_refused(ids, EndpointState::AccessDenied, m, now),
            Outcome::NotFound(m) => self.read_refused(ids, EndpointState::NotFound, m, now),
            Outcome::Rejected(_, m) => self.read_refused(ids, EndpointState::Error, m, now),
            Outcome::Unauthorized(_) | Outcome::Throttled(..) | Outcome::Transient(..) => {}
        }
    }

    fn read_answered(&mut self, ids: Vec<String>, resp: Response, now: u64) {
        let list = match serde_json::from_slice::<Collection<Presence>>(&resp.body) {
            Ok(c) => c.value,
            Err(e) => {
                self.log(Level::Error, format!("unreadable presence answer: {e}"));
                self.read_failed.extend(ids);
                return;
            }
        };
        // Every user refused, and now one is read: the refusal was the
        // app's, and it is over.
        let app_refused = self.every_user_refused();
        self.forbidden.remove(&OpClass::Read);
        let mut seen = BTreeSet::new();
        for p in list {
            seen.insert(super::norm_id(&p.id));
            self.on_presence(p, now);
        }
        let mut first_reads = false;
        for id in &ids {
            if let Some(info) = self.ids.get_mut(id) {
                first_reads |= info.read_at.is_none();
                info.read_at = Some(now);
                info.refused = None;
            }
            if self.canary.as_ref() == Some(id) {
                self.canary = None;
            }
        }
        if app_refused {
            self.let_refused_back();
        }
        if first_reads {
            // Users are subscribed once their presence could be read.
            self.schedule_reconcile();
        }
        for id in ids.iter().filter(|i| !seen.contains(*i)) {
            self.missing(id);
        }
        self.arm_refusals(now);
    }

    /// A user Graph returned nothing for.
    fn missing(&mut self, id: &str) {
        let Some(info) = self.ids.get_mut(id) else {
            return;
        };
        info.missing = true;
        let eps = info.endpoints.clone();
        // A cached UPN may point at a deleted user: look it up afresh next
        // time it is watched.
        for ep in eps.iter().filter(|e| !wire::is_guid(e)) {
            if self.upn_cache.remove(&ep.to_ascii_lowercase()).is_some() {
                self.users_dirty += 1;
            }
        }
        for ep in eps {
            self.endpoint_state(
                &ep,
                EndpointState::NotFound,
                Some(format!("Graph has no presence for user id {id}")),
            );
        }
    }

    /// Graph refused a read. A batch is split in halves that are read on
    /// their own; a single user is refused.
    fn read_refused(&mut self, ids: Vec<String>, state: EndpointState, m: String, now: u64) {
        if ids.len() > 1 {
            let (a, b) = ids.split_at(ids.len() / 2);
            self.log(
                Level::Debug,
                format!(
                    "presence read of {} users refused ({m}); reading {} and {} on their own to find the users refused",
                    ids.len(),
                    a.len(),
                    b.len()
                ),
            );
            self.kept.push_back(a.to_vec());
            self.kept.push_back(b.to_vec());
            return;
        }
        let Some(id) = ids.into_iter().next() else {
            return;
        };
        let base = self.s.poll_ms.clamp(2_000, 60_000);
        let Some(info) = self.ids.get_mut(&id) else {
            return;
        };
        let r = Refusal::strike(info.refused, now, base, REFUSED_MAX_MS);
        info.refused = Some(r);
        let wait_s = (r.until - now).div_ceil(1000);
        if self.canary.as_ref() == Some(&id) {
            // It stood for every refused user: they all wait as long.
            self.canary = None;
            for info in self.ids.values_mut() {
                if let Some(other) = info.refused.as_mut() {
                    other.until = other.until.max(r.until);
                    other.strikes = other.strikes.max(r.strikes);
                }
            }
        }
        let every = self.every_user_refused();
        if every && state == EndpointState::AccessDenied {
            self.forbid(OpClass::Read, "read presence", &m);
        } else {
            let level = if r.strikes == 1 {
                Level::Warn
            } else {
                Level::Debug
            };
            self.log(
                level,
                format!(
                    "Graph refused the presence of user {id} ({m}); the others are read without it, it is read alone again in {wait_s} s"
                ),
            );
        }
        let detail = format!("{m}; read again in {wait_s} s");
        self.ids_state(&[id], state, &detail);
        self.schedule_reconcile();
        self.arm_refusals(now);
    }

    /// Whether Graph refuses every user watched.
    fn every_user_refused(&self) -> bool {
        !self.ids.is_empty() && self.ids.values().all(|i| i.refused.is_some())
    }

    /// Every refused user goes back into the shared batches.
    fn let_refused_back(&mut self) {
        let back: Vec<String> = self
            .ids
            .iter_mut()
            .filter_map(|(id, info)| info.refused.take().map(|_| id.clone()))
            .collect();
        if !back.is_empty() {
            self.log(
                Level::Info,
                format!(
                    "Graph reads presence again; {} refused users are read with the others",
                    back.len()
                ),
            );
            self.to_read.extend(back);
            self.schedule_read();
        }
    }

    /// The retry timer of refused users fired: read those due alone. When
    /// every user is refused, one stands for all.
    pub(super) fn refusals_due(&mut self, now: u64) {
        let queued = self.reading();
        let due: Vec<String> = self
            .ids
            .iter()
            .filter(|(id, info)| {
                info.refused.is_some_and(|r| r.due(now))
                    && !queued.contains(*id)
                    && !self.to_read.contains(*id)
            })
            .map(|(id, _)| id.clone())
            .collect();
        if self.every_user_refused() {
            if self.canary.is_none()
                && let Some(first) = due.into_iter().next()
            {
                self.canary = Some(first.clone());
                self.to_read.insert(first);
            }
        } else {
            self.to_read.extend(due);
        }
        self.arm_refusals(now);
    }

    /// Set the retry timer for the next refused user not yet due.
    pub(super) fn arm_refusals(&mut self, now: u64) {
        let next = self
            .ids
            .values()
            .filter_map(|i| i.refused)
            .filter(|r| !r.due(now))
            .map(|r| r.until)
            .min();
        match next {
            Some(at) => self.set_timer(TimerKey::ReadRetry, at - now),
            None => self.cancel_timer(TimerKey::ReadRetry),
        }
    }

    /// One presence from a read.
    fn on_presence(&mut self, p: Presence, now: u64) {
        let id = super::norm_id(&p.id);
        let Some(info) = self.ids.get_mut(&id) else {
            return;
        };
        // sequenceNumber is a lexicographically sortable version stamp: an
        // older one (a read that overtook a newer one) is dropped.
        if let (Some(new), Some(old)) = (&p.sequence_number, &info.sequence)
            && new < old
        {
            return;
        }
        let snapshot: Snapshot = (
            p.availability.clone().unwrap_or_default(),
            p.activity.clone().unwrap_or_default(),
            p.out_of_office(),
            p.note(),
        );
        info.missing = false;
        info.sequence = p.sequence_number.clone().or(info.sequence.take());
        let changed = info.last.as_ref().is_some_and(|l| *l != snapshot);
        let first = info.last.is_none();
        let previous_read = info.read_at;
        info.last = Some(snapshot.clone());
        let eps = info.endpoints.clone();
        if changed && let Some(since) = previous_read {
            self.changed_since(&id, since);
        }
        for ep in eps {
            let was_active =
                self.endpoints.get(&ep).and_then(|e| e.state) == Some(EndpointState::Active);
            let origin = self.echo_origin(&ep, &snapshot.0, &snapshot.1, now);
            if changed || first || !was_active {
                self.report(&ep, &id, &snapshot, p.sequence_number.as_deref(), origin);
            }
        }
    }

    pub(super) fn report(
        &mut self,
        ep: &str,
        id: &str,
        snap: &Snapshot,
        sequence: Option<&str>,
        origin: UpdateOrigin,
    ) {
        let (availability, activity, oof, note) = snap;
        let mut raw = vec![
            VendorValue {
                name: "availability".into(),
                value: availability.clone(),
            },
            VendorValue {
                name: "activity".into(),
                value: activity.clone(),
            },
            VendorValue {
                name: "id".into(),
                value: id.to_string(),
            },
        ];
        if *oof {
            raw.push(VendorValue {
                name: "outOfOffice".into(),
                value: "true".into(),
            });
        }
        if let Some(seq) = sequence {
            raw.push(VendorValue {
                name: "sequenceNumber".into(),
                value: seq.to_string(),
            });
        }
        self.out.push(Action::Presence(PresenceUpdate {
            endpoint: ep.to_string(),
            observed_at: None,
            // Graph's sequenceNumber is an opaque, lexicographically sortable
            // string, not a number the hub could compare: the connector
            // drops reads that are older by it (on_presence), so updates
            // reach the hub in order without an ordering of their own.
            ordering: None,
            origin,
            telephony: None,
            rich: Some(mapping::to_rich(availability, activity, *oof, note.clone())),
            calendar: None,
            valid_for_ms: None,
            raw,
        }));
        self.endpoint_state(ep, EndpointState::Active, None);
    }
}
