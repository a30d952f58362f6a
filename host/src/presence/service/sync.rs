//! The sync's side of the presence service: building each user's
//! platforms from the board for the pure engine ([`crate::engine::sync`]),
//! sending the writes it decides to the runtime, taking their outcomes
//! back, waking users whose retries, leases or graces fall due, and storing
//! the holds so that they survive a restart.

use std::time::{Duration, Instant};

use super::{InstanceId, Service, Source, UserId};
use crate::engine::sync::{
    DndChannel, Platform, PlatformSync, Profile, Target, Timing, WriteReason, WriteResult,
};
use crate::engine::users::{Channel, Mapping};
use crate::presence::SyncDetail;
use crate::store::{EventRecord, now_ms};

/// The profile of a platform the hub knows only from a stored hold.
static DEFAULT_PROFILE: std::sync::LazyLock<Profile> =
    std::sync::LazyLock::new(|| crate::engine::sync::profile::resolve(None).expect("default"));

impl Service {
    fn sync_timing(&self) -> Timing {
        use crate::timing::{
            SYNC_ECHO_GRACE, SYNC_RETRY_FIRST, SYNC_RETRY_MAX, SYNC_WRITE_TIMEOUT,
        };
        Timing {
            retry_first_ms: SYNC_RETRY_FIRST.as_millis() as u64,
            retry_max_ms: SYNC_RETRY_MAX.as_millis() as u64,
            lease_ms: (self.rules.sync.lease_seconds > 0)
                .then(|| self.rules.sync.lease_seconds * 1000),
            echo_grace_ms: SYNC_ECHO_GRACE.as_millis() as u64,
            write_timeout_ms: SYNC_WRITE_TIMEOUT.as_millis() as u64,
        }
    }

    /// Whether `instance` leads manual changes: the operator's list, else
    /// the instances that watch users by Teams UPN.
    fn leads(&self, i: InstanceId) -> bool {
        let slot = &self.instances[i];
        match &self.rules.sync.leading_instances {
            Some(list) => list.iter().any(|l| **l == *slot.name),
            None => match &slot.mapping {
                Mapping::Picked { attribute, .. } => attribute == "teams-upn",
                Mapping::Kinds(kinds) => kinds.iter().any(|(a, _)| a == "teams-upn"),
            },
        }
    }

    /// The user's platforms as the sync engine sees them: one per instance
    /// among the user's sources that takes part.
    fn platforms<'a>(
        &'a self,
        user: UserId,
        leaders: &[bool],
        held: &'a [(String, String)],
    ) -> Vec<Platform<'a>> {
        let slot = self.slot(user);
        let mut out: Vec<Platform<'a>> = Vec::new();
        let mut seen: Vec<InstanceId> = Vec::new();
        for s in &slot.sources {
            if seen.contains(&s.instance) {
                continue;
            }
            seen.push(s.instance);
            let inst = &self.instances[s.instance];
            let Some(info) = &inst.info else { continue };
            if !self.rules.sync.takes_part(&slot.user, &inst.name) {
                continue;
            }
            let sources: Vec<&Source> = slot
                .sources
                .iter()
                .filter(|x| x.instance == s.instance)
                .collect();
            let view_of = |x: &Source| inst.endpoints.get(&x.endpoint).map(|e| &e.view);
            let feeding = |want: Channel| {
                sources
                    .iter()
                    .find(|x| x.channel == want || x.channel == Channel::Both)
                    .copied()
            };
            // A line's DND where the plugin writes it and a line is
            // watched, else availability DND.
            let target = match (info.writes_telephony, info.writes_rich) {
                (true, _) if feeding(Channel::Telephony).is_some() => {
                    feeding(Channel::Telephony).map(|x| (x, DndChannel::Telephony))
                }
                (_, true) => feeding(Channel::Rich)
                    .or(sources.first().copied())
                    .map(|x| (x, DndChannel::Rich)),
                (true, false) => sources.first().map(|x| (*x, DndChannel::Telephony)),
                (false, false) => None,
            }
            .map(|(x, channel)| Target {
                endpoint: &x.endpoint,
                channel,
                view: view_of(x),
            });
            out.push(Platform {
                instance: &inst.name,
                up: info.running,
                leader: leaders[s.instance],
                profile: &inst.profile,
                views: sources.iter().filter_map(|x| view_of(x)).collect(),
                target,
            });
        }
        // Holds on instances not announced yet (the hub is starting) stay
        // as they are until their instance says whether it runs; holds on
        // deleted instances, or where the user has no source or does not
        // take part any more, are absent: the engine lifts them.
        for (instance, endpoint) in held {
            if out.iter().any(|p| p.instance == instance) {
                continue;
            }
            let waiting = match self.instance_ids.get(instance.as_str()) {
                None => true,
                Some(&i) => self.instances[i].info.is_none() && !self.instances[i].removed,
            };
            if waiting {
                out.push(Platform {
                    instance,
                    up: false,
                    leader: false,
                    profile: &DEFAULT_PROFILE,
                    views: Vec::new(),
                    target: Some(Target {
                        endpoint,
                        channel: DndChannel::Rich,
                        view: None,
                    }),
                });
            }
        }
        out
    }

    /// Run the user's sync with the board as it is now.
    pub(super) fn sync(&mut self, user: UserId, outcomes: &[(u64, WriteResult)], now: u64) {
        self.sync_step(user, outcomes, now, true);
    }

    /// One step of the user's sync; `with_platforms` false: the user is
    /// going, so the hub lifts whatever it holds.
    pub(super) fn sync_step(
        &mut self,
        user: UserId,
        outcomes: &[(u64, WriteResult)],
        now: u64,
        with_platforms: bool,
    ) {
        if self.users.get(user).is_none_or(Option::is_none) {
            return;
        }
        let enabled = self.rules.sync.enabled_for(&self.slot(user).user);
        if !enabled && self.slot(user).sync.is_idle() {
            return;
        }
        let timing = self.sync_timing();
        let mut state = std::mem::take(&mut self.slot_mut(user).sync);
        let leaders: Vec<bool> = (0..self.instances.len()).map(|i| self.leads(i)).collect();
        let ids = self.write_ids.clone();
        let held = state.targets();
        let step = {
            let platforms = if with_platforms {
                self.platforms(user, &leaders, &held)
            } else {
                Vec::new()
            };
            state.step(
                enabled,
                &platforms,
                outcomes,
                now,
                &timing,
                &mut |_, _, _| ids.next(),
            )
        };
        let name = self.slot(user).name.to_string();
        if !step.log.is_empty() || !step.writes.is_empty() {
            let records = state.records();
            let _ = self
                .sync_store
                .send((name.clone(), (!records.is_empty()).then_some(records)));
        }
        self.slot_mut(user).sync = state;
        for (instance, detail) in step.log {
            self.log.record(EventRecord {
                at_ms: now,
                kind: "sync".into(),
                username: Some(name.clone()),
                instance: Some(instance),
                detail,
            });
        }
        let counters = self.inbox.counters();
        for w in step.writes {
            counters.sync_writes.inc();
            match w.why {
                WriteReason::Retry => {
                    counters.sync_retries.inc();
                }
                WriteReason::SetBack => {
                    counters.sync_set_backs.inc();
                }
                WriteReason::Decision | WriteReason::Refresh => {}
            }
            self.write_owner.insert(w.id, user);
            // In the API's words, not Rust debug names.
            let action = match w.action {
                crate::engine::sync::SyncAction::SetDnd {
                    expires_in_ms: Some(ms),
                } => format!("set do-not-disturb for {ms} ms"),
                crate::engine::sync::SyncAction::SetDnd {
                    expires_in_ms: None,
                } => "set do-not-disturb".to_string(),
                crate::engine::sync::SyncAction::Restore => "restore".to_string(),
            };
            let why = match w.why {
                WriteReason::Decision => "decision",
                WriteReason::Retry => "retry",
                WriteReason::Refresh => "refresh",
                WriteReason::SetBack => "set-back",
            };
            tracing::info!(user = %name, instance = %w.instance, write = w.id, %action, why, "sync write");
            let _ = self.sync_writes.send(w);
        }
        if let Some(at) = step.wake_at {
            self.wakes.insert((at, user));
        }
    }

    /// A write was settled: the user whose sync made it takes the outcome.
    pub(super) fn write_settled(&mut self, id: u64, result: WriteResult, now: u64) {
        let Some(user) = self.write_owner.remove(&id) else {
            return;
        };
        // Reports queued before the outcome are in the board; a user
        // recomputed later in this batch steps again, which is harmless.
        self.sync(user, &[(id, result)], now);
    }

    pub(super) fn next_wake(&self) -> Option<Instant> {
        let (at, _) = self.wakes.first()?;
        let now = now_ms();
        Some(Instant::now() + Duration::from_millis(at.saturating_sub(now)))
    }

    /// Users whose sync asked to be looked at again by now.
    pub(super) fn wake_due(&mut self, now: u64) {
        let mut due = Vec::new();
        while let Some(&(at, user)) = self.wakes.first() {
            if at > now {
                break;
            }
            self.wakes.pop_first();
            due.push(user);
        }
        if due.is_empty() {
            return;
        }
        due.sort_unstable();
        due.dedup();
        for u in due {
            self.sync(u, &[], now);
        }
    }

    /// A user's sync as the API shows it.
    pub(super) fn sync_detail(&self, user: UserId, now: u64) -> SyncDetail {
        let slot = self.slot(user);
        let leaders: Vec<bool> = (0..self.instances.len()).map(|i| self.leads(i)).collect();
        let held = slot.sync.targets();
        let platforms: Vec<PlatformSync> = slot.sync.describe(
            &self.platforms(user, &leaders, &held),
            now,
            &self.sync_timing(),
        );
        SyncDetail {
            enabled: self.rules.sync.enabled_for(&slot.user),
            platforms,
        }
    }
}
