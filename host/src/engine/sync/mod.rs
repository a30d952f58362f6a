//! Bidirectional sync: while a user is in a conversation on one platform,
//! the hub holds do-not-disturb on the user's other platforms and lifts it
//! (contract `restore`) when no conversation remains, so nobody gets a
//! second call (aurenz Presence Hub admin guide, "How it works").
//!
//! Pure: [`UserSync::step`] takes one user's platforms as the board shows
//! them, the outcomes of the hub's writes and the time, and returns the
//! writes to make, the decisions for the event log and when to look again.
//! No wasm, socket, clock or database; the presence service calls it.
//!
//! Per platform (an instance and the endpoint the hub writes) a [`Hold`]
//! remembers the hub's own part: what it last asked for, the write in
//! flight, whether the platform took it. From that:
//! - echoes (updates marked with the hub's write id, or a DND the hub holds)
//!   are never read as a person's change or a conversation, so no loop;
//! - a write is issued only when what the hub wants changes, or to retry a
//!   failure (with backoff), to refresh a lease, or to set back a person's
//!   change on a follower;
//! - outcomes and echoes of earlier writes, duplicates and reorderings
//!   change nothing.

pub mod profile;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use profile::{Profile, ProfileRule};

use super::users::User;
use super::{Availability, EndpointState, EndpointView, UpdateOrigin};

/// The operator's sync rules (part of the rules, `sync`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SyncRules {
    /// Sync for every user (default off).
    pub everyone: bool,
    /// Per department (a user's `department`), overriding `everyone`.
    pub departments: BTreeMap<String, bool>,
    /// The connector instances that take part; none: every instance whose
    /// plugin can write presence.
    pub instances: Option<Vec<String>>,
    /// The leading systems for manual changes: a person's own DND there is
    /// propagated to the other platforms, a change on another platform
    /// while the hub holds DND there is set back. None: the instances that
    /// watch users by `teams-upn` (Microsoft Teams, as in the aurenz hub).
    pub leading_instances: Option<Vec<String>>,
    /// What counts as a conversation, per instance (default
    /// `calls-and-meetings`).
    pub profiles: BTreeMap<String, ProfileRule>,
    /// Each DND write lasts this long unless refreshed (the hub refreshes
    /// it at three quarters while the conversation goes on), so a DND the
    /// hub can no longer lift (the hub stopped for good, a SIP publication
    /// whose entity tag a crashed connector lost) lapses by itself within
    /// it. 0: no expiry. Default 900 (15 minutes).
    pub lease_seconds: u64,
}

impl Default for SyncRules {
    fn default() -> Self {
        Self {
            everyone: false,
            departments: BTreeMap::new(),
            instances: None,
            leading_instances: None,
            profiles: BTreeMap::new(),
            lease_seconds: 900,
        }
    }
}

impl SyncRules {
    /// Whether sync is on for `user`: the user's own switch, else the
    /// department's, else `everyone`.
    pub fn enabled_for(&self, user: &User) -> bool {
        user.sync
            .or_else(|| {
                user.department
                    .as_ref()
                    .and_then(|d| self.departments.get(d).copied())
            })
            .unwrap_or(self.everyone)
    }

    /// Whether `instance` takes part for `user`.
    pub fn takes_part(&self, user: &User, instance: &str) -> bool {
        self.instances
            .as_ref()
            .is_none_or(|l| l.iter().any(|i| i == instance))
            && user
                .sync_instances
                .as_ref()
                .is_none_or(|l| l.iter().any(|i| i == instance))
    }

    /// Check what an operator typed: `(field, what is allowed)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        for (instance, rule) in &self.profiles {
            profile::resolve(Some(rule)).map_err(|e| (format!("sync.profiles.{instance}"), e))?;
        }
        if self.lease_seconds != 0 && !(60..=86_400).contains(&self.lease_seconds) {
            return Err((
                "sync.lease_seconds".into(),
                "60-86400 (seconds), or 0 for no expiry".into(),
            ));
        }
        Ok(())
    }

    /// The profile of `instance`.
    pub fn profile(&self, instance: &str) -> Profile {
        // Rules are validated when set; a bad one reads as the default.
        profile::resolve(self.profiles.get(instance))
            .unwrap_or_else(|_| profile::resolve(None).expect("default profile"))
    }
}

/// The channel a platform's DND is written to and read back from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DndChannel {
    /// Availability do-not-disturb (Teams, SIP PIDF, Lync).
    Rich,
    /// The line's do-not-disturb (a PBX's DND feature, RingCentral).
    Telephony,
}

/// The endpoint the hub writes DND to on a platform.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub endpoint: &'a str,
    pub channel: DndChannel,
    /// What the platform last showed of it.
    pub view: Option<&'a EndpointView>,
}

/// One of the user's platforms (a connector instance) as the board shows
/// it now.
#[derive(Debug, Clone)]
pub struct Platform<'a> {
    pub instance: &'a str,
    /// The connector runs; a platform that does not is left as it is and
    /// its last observations do not count.
    pub up: bool,
    pub leader: bool,
    pub profile: &'a Profile,
    /// Every observation of the user there (rich and telephony endpoints).
    pub views: Vec<&'a EndpointView>,
    /// Where DND is written; none: the platform is only read.
    pub target: Option<Target<'a>>,
}

/// What became of one of the hub's writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteResult {
    /// Taken (or, for a plugin that reports no outcome, accepted).
    Applied,
    Restored,
    /// The restore left the state the person set after the hub's write.
    UserChanged,
    /// Another write to the endpoint replaced it.
    Superseded,
    Failed {
        message: String,
        retryable: bool,
        retry_after_ms: Option<u64>,
        status: Option<u16>,
    },
    /// The connector refused or cannot do it.
    Refused(String),
}

/// What a write asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncAction {
    /// Do-not-disturb for all calls, lasting `expires_in_ms` (none: until
    /// restored).
    SetDnd {
        expires_in_ms: Option<u64>,
    },
    Restore,
}

/// A write the engine decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncWrite {
    pub id: u64,
    pub instance: String,
    pub endpoint: String,
    pub action: SyncAction,
    /// Why, in the event log's words.
    pub why: WriteReason,
}

/// Why a write is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteReason {
    /// What the hub wants changed.
    Decision,
    /// The same write again after a failure.
    Retry,
    /// The lease is renewed.
    Refresh,
    /// A person's change on a follower is set back.
    SetBack,
}

/// The engine's timing (see `crate::timing` for the hub's values).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub retry_first_ms: u64,
    pub retry_max_ms: u64,
    /// How long a DND write lasts (none: until restored); refreshed at
    /// three quarters.
    pub lease_ms: Option<u64>,
    /// After the hub lifted its DND somewhere, a DND seen there within
    /// this long (unless the platform showed no DND since) is the tail of
    /// its own write, not a person's.
    pub echo_grace_ms: u64,
    /// A write with no outcome after this long is taken as failed and
    /// made again.
    pub write_timeout_ms: u64,
}

/// What one step decided.
#[derive(Debug, Default)]
pub struct Step {
    pub writes: Vec<SyncWrite>,
    /// Decisions for the event log, with the instance each concerns.
    pub log: Vec<(String, String)>,
    /// When to call again although nothing happened (retry, refresh, grace).
    pub wake_at: Option<u64>,
}

impl Step {
    fn wake(&mut self, at: u64) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing of the hub's there.
    Idle,
    /// A DND write is on its way.
    Setting,
    /// The platform took the DND. `confirmed`: it has shown it since (an
    /// update marked with the write's id), so a later update of the
    /// platform's own that does not show it is a person's change.
    Held {
        confirmed: bool,
        refresh_at: Option<u64>,
    },
    /// The person changed the state on the leading system while the hub
    /// held DND there: left as they set it until the conversation ends.
    Yielded,
    /// A restore is on its way.
    Lifting,
    /// The last write failed and will be made again at `at`.
    Retry { set: bool, at: u64 },
    /// The platform refused for good; nothing more until the hub wants
    /// something else.
    Refused { set: bool },
}

/// The hub's part on one platform of one user.
#[derive(Debug, Clone)]
struct Hold {
    phase: Phase,
    /// The hub's latest write here.
    write: Option<u64>,
    attempt: u32,
    /// A DND write of this hold may be in force: lifting needs a restore.
    written: bool,
    /// The target view's update count last judged.
    mark: u64,
    lifted_at: Option<u64>,
    detail: Option<String>,
    /// What the target's rich state last said about a conversation when
    /// the hub's DND did not hide it: while it does, that verdict stands
    /// (a stale echo of the hub's DND must not end a conversation).
    rich_verdict: Option<String>,
    /// The ids of the hub's latest DND writes here: an outcome or echo of
    /// an earlier one still says the platform may show the hub's DND.
    sets: Vec<u64>,
    /// DND writes whose outcome has not come: any of them may land.
    unsettled: Vec<u64>,
    /// The restore that last lifted the hub's DND here.
    restored_by: Option<u64>,
    /// After a restart, nothing is lifted before then unless every
    /// platform has reported.
    quiet_until: Option<u64>,
    /// When the write in flight was sent.
    sent_at: Option<u64>,
}

/// How many DND write ids a hold remembers.
const SETS_KEPT: usize = 8;

impl Default for Hold {
    fn default() -> Self {
        Hold {
            phase: Phase::Idle,
            write: None,
            attempt: 0,
            written: false,
            mark: 0,
            lifted_at: None,
            detail: None,
            rich_verdict: None,
            sets: Vec::new(),
            unsettled: Vec::new(),
            restored_by: None,
            quiet_until: None,
            sent_at: None,
        }
    }
}

impl Hold {
    /// What the hub wants here now.
    fn wants_dnd(&self) -> bool {
        matches!(
            self.phase,
            Phase::Setting
                | Phase::Held { .. }
                | Phase::Yielded
                | Phase::Retry { set: true, .. }
                | Phase::Refused { set: true }
        )
    }

    /// The platform may be showing the hub's DND (`view`: what it shows).
    fn shows_hubs(&self, view: Option<&EndpointView>, now: u64, grace: u64) -> bool {
        self.may_hold()
            || matches!(self.phase, Phase::Setting | Phase::Lifting)
            || self.lifted_at.is_some_and(|t| now < t + grace)
            || view.is_some_and(|v| {
                matches!(v.origin, UpdateOrigin::HubWrite { write_id } if self.sets.contains(&write_id))
            })
    }

    /// A DND write of the hub's is in force here, or may land: lifting
    /// needs a restore.
    fn may_hold(&self) -> bool {
        self.written || !self.unsettled.is_empty()
    }

    fn name(&self) -> &'static str {
        match self.phase {
            Phase::Idle => "none",
            Phase::Setting => "setting",
            Phase::Held { .. } => "held",
            Phase::Yielded => "yielded",
            Phase::Lifting => "lifting",
            Phase::Retry { .. } => "failed",
            Phase::Refused { .. } => "refused",
        }
    }
}

/// Whether `view` shows do-not-disturb on `channel`: `None` when it shows
/// nothing of that channel.
fn shows_dnd(view: &EndpointView, channel: DndChannel) -> Option<bool> {
    match channel {
        DndChannel::Rich => view
            .rich
            .as_ref()
            .map(|r| r.availability == Availability::DoNotDisturb),
        DndChannel::Telephony => view.telephony.as_ref().map(|t| t.do_not_disturb),
    }
}

/// A time of day for the event log (UTC).
pub(crate) fn clock(ms: u64) -> String {
    let s = ms / 1000 % 86_400;
    format!("{:02}:{:02}:{:02} UTC", s / 3600, s / 60 % 60, s % 60)
}

/// One platform as the API shows its sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PlatformSync {
    pub instance: String,
    pub endpoint: Option<String>,
    pub leader: bool,
    pub in_conversation: bool,
    pub conversation: Option<String>,
    /// none, setting, held (the platform took the hub's DND), yielded,
    /// lifting, failed (to be retried), refused.
    pub hold: &'static str,
    pub write_id: Option<u64>,
    pub detail: Option<String>,
    pub profile: String,
}

/// The rule every DND decision applies, for the event log.
const RULE: &str = "do-not-disturb on the user's other platforms while in a conversation";

/// One user's sync state.
#[derive(Debug, Clone, Default)]
pub struct UserSync {
    holds: BTreeMap<(String, String), Hold>,
}

type Key = (String, String);

/// What of one hold survives a restart: the platform may show the hub's
/// do-not-disturb there, so after the restart the hub renews it if a
/// conversation still calls for it and restores it otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRecord {
    pub instance: String,
    pub endpoint: String,
    /// The hub's latest write there.
    pub write: Option<u64>,
    /// Its latest DND writes (an echo of one is the hub's).
    pub sets: Vec<u64>,
}

impl UserSync {
    /// The holds that may have left the hub's DND on a platform.
    pub fn records(&self) -> Vec<HoldRecord> {
        self.holds
            .iter()
            .filter(|(_, h)| h.may_hold() || matches!(h.phase, Phase::Setting | Phase::Lifting))
            .map(|((instance, endpoint), h)| HoldRecord {
                instance: instance.clone(),
                endpoint: endpoint.clone(),
                write: h.write,
                sets: h.sets.clone(),
            })
            .collect()
    }

    /// The holds as a restart finds them at `now`: taken, not seen since,
    /// renewed at once where a conversation still calls for them. Until
    /// every running platform has reported, at most until `quiet_until`,
    /// nothing is lifted (a call still going on must not see its DND
    /// elsewhere restored and set again); then what nothing calls for any
    /// more is restored.
    pub fn from_records(records: Vec<HoldRecord>, now: u64, quiet_until: u64) -> UserSync {
        let holds = records
            .into_iter()
            .map(|r| {
                let hold = Hold {
                    phase: Phase::Held {
                        confirmed: false,
                        refresh_at: Some(now),
                    },
                    quiet_until: Some(quiet_until),
                    write: r.write,
                    written: true,
                    sets: r.sets,
                    ..Hold::default()
                };
                ((r.instance, r.endpoint), hold)
            })
            .collect();
        UserSync { holds }
    }

    /// The platforms (instance, endpoint) where the hub keeps a hold.
    pub fn targets(&self) -> Vec<(String, String)> {
        self.holds.keys().cloned().collect()
    }

    /// Nothing of the hub's anywhere: the state can be forgotten.
    pub fn is_idle(&self) -> bool {
        self.holds
            .values()
            .all(|h| h.phase == Phase::Idle && !h.may_hold() && h.lifted_at.is_none())
    }

    /// Whether `id` is one of this user's writes.
    pub fn owns(&self, id: u64) -> bool {
        self.holds.values().any(|h| h.write == Some(id))
    }

    /// Where the hub holds DND that the platform took, by instance.
    pub fn held(&self) -> Vec<String> {
        self.holds
            .iter()
            .filter(|(_, h)| matches!(h.phase, Phase::Held { .. }))
            .map(|((i, _), _)| i.clone())
            .collect()
    }

    /// The user's sync as the API shows it.
    pub fn describe(&self, platforms: &[Platform], now: u64, timing: &Timing) -> Vec<PlatformSync> {
        platforms
            .iter()
            .map(|p| {
                let hold = p
                    .target
                    .and_then(|t| self.holds.get(&(p.instance.into(), t.endpoint.into())));
                let conversation = self.conversation(p, now, timing);
                PlatformSync {
                    instance: p.instance.to_owned(),
                    endpoint: p.target.map(|t| t.endpoint.to_owned()),
                    leader: p.leader,
                    in_conversation: conversation.is_some(),
                    conversation,
                    hold: hold.map_or("none", Hold::name),
                    write_id: hold.and_then(|h| h.write),
                    detail: hold.and_then(|h| h.detail.clone()),
                    profile: p.profile.name.clone(),
                }
            })
            .collect()
    }

    fn hold_of(&self, p: &Platform) -> Option<&Hold> {
        let t = p.target?;
        self.holds
            .get(&(p.instance.to_owned(), t.endpoint.to_owned()))
    }

    /// Why platform `p` reads as a conversation now, if it does.
    fn conversation(&self, p: &Platform, now: u64, timing: &Timing) -> Option<String> {
        if !p.up {
            return None;
        }
        let target_view = p.target.and_then(|t| t.view);
        let hold = self
            .hold_of(p)
            .filter(|h| h.shows_hubs(target_view, now, timing.echo_grace_ms));
        p.views.iter().find_map(|v| {
            let is_target = p
                .target
                .and_then(|t| t.view)
                .is_some_and(|t| std::ptr::eq(t, *v));
            match hold {
                Some(h) if is_target && profile::masked(v) => {
                    p.profile.line(v).or_else(|| h.rich_verdict.clone())
                }
                _ => p.profile.conversation(v, false, now),
            }
        })
    }

    /// Remember each target's rich verdict while the hub's DND does not
    /// hide it.
    fn remember_verdicts(&mut self, platforms: &[Platform], now: u64, timing: &Timing) {
        for p in platforms {
            let Some(t) = p.target else { continue };
            let Some(view) = t.view else { continue };
            let key = (p.instance.to_owned(), t.endpoint.to_owned());
            let Some(h) = self.holds.get_mut(&key) else {
                continue;
            };
            if !(h.shows_hubs(Some(view), now, timing.echo_grace_ms) && profile::masked(view)) {
                h.rich_verdict = p.profile.rich(view, now);
            }
        }
    }

    /// A person's own DND on a leading platform, to propagate.
    fn leader_dnd(&self, p: &Platform, now: u64, timing: &Timing, step: &mut Step) -> bool {
        if !p.up || !p.leader {
            return false;
        }
        if let Some(h) = self.hold_of(p) {
            // The hub's own DND, or its tail after a lift (an echo still
            // shown, a platform that has not caught up): not the person's.
            if h.wants_dnd()
                || h.shows_hubs(p.target.and_then(|t| t.view), now, timing.echo_grace_ms)
            {
                if let Some(t) = h.lifted_at {
                    step.wake(t + timing.echo_grace_ms);
                }
                return false;
            }
        }
        let channel = p.target.map_or(DndChannel::Rich, |t| t.channel);
        let view = p.target.and_then(|t| t.view);
        let views: Vec<&EndpointView> = match view {
            Some(v) => vec![v],
            None => p.views.clone(),
        };
        // The hub holds nothing there (an echo of its restore shows the
        // person's own state); a connector's own rule is not the person.
        views.iter().any(|v| {
            !matches!(v.origin, UpdateOrigin::ConnectorRule { .. })
                && shows_dnd(v, channel) == Some(true)
        })
    }

    /// Take in what happened and decide. `enabled`: sync is on for the
    /// user. `outcomes`: results of writes, by id (others' ids are
    /// ignored). `ids` gives each new write its id.
    pub fn step(
        &mut self,
        enabled: bool,
        platforms: &[Platform],
        outcomes: &[(u64, WriteResult)],
        now: u64,
        timing: &Timing,
        ids: &mut dyn FnMut(&str, &str, &SyncAction) -> u64,
    ) -> Step {
        let mut step = Step::default();
        for (id, result) in outcomes {
            self.outcome(*id, result, now, timing, &mut step);
        }
        // Platforms no longer among the user's: lift what the hub holds
        // there, best effort, and forget them.
        let present: Vec<Key> = platforms
            .iter()
            .filter_map(|p| Some((p.instance.to_owned(), p.target?.endpoint.to_owned())))
            .collect();
        let gone: Vec<Key> = self
            .holds
            .keys()
            .filter(|k| !present.contains(k))
            .cloned()
            .collect();
        for key in gone {
            let h = self.holds.remove(&key).expect("listed");
            if h.may_hold() || matches!(h.phase, Phase::Setting | Phase::Lifting) {
                let action = SyncAction::Restore;
                let id = ids(&key.0, &key.1, &action);
                step.log.push((
                    key.0.clone(),
                    format!(
                        "trigger: {}/{} no longer takes part in the user's sync; target {}/{}; write {id} restore",
                        key.0, key.1, key.0, key.1
                    ),
                ));
                step.writes.push(SyncWrite {
                    id,
                    instance: key.0,
                    endpoint: key.1,
                    action,
                    why: WriteReason::Decision,
                });
            }
        }
        for p in platforms {
            self.observe(p, now, &mut step, ids, timing);
        }
        self.remember_verdicts(platforms, now, timing);
        let mut echoing: Vec<Key> = Vec::new();
        // What the hub wants now.
        let conversations: Vec<Option<String>> = platforms
            .iter()
            .map(|p| self.conversation(p, now, timing))
            .collect();
        let leaders: Vec<bool> = platforms
            .iter()
            .map(|p| self.leader_dnd(p, now, timing, &mut step))
            .collect();
        // Every running platform has reported the user's presence, or said
        // it never will (not found, access denied, error): after a restart,
        // lifts wait for that. A watch that is merely active says nothing
        // of a call yet.
        let all_reported = platforms.iter().filter(|p| p.up).all(|p| {
            p.views.iter().any(|v| {
                v.updates > 0
                    || matches!(
                        v.state,
                        Some(
                            EndpointState::NotFound
                                | EndpointState::AccessDenied
                                | EndpointState::Error
                        )
                    )
            })
        });
        for (n, p) in platforms.iter().enumerate() {
            let Some(target) = p.target else { continue };
            if !p.up {
                continue;
            }
            let trigger = platforms.iter().enumerate().find_map(|(m, q)| {
                if m == n {
                    return None;
                }
                if let Some(c) = &conversations[m] {
                    return Some(format!("{} in a conversation ({c})", q.instance));
                }
                (leaders[m] && !p.leader)
                    .then(|| format!("{} set to do-not-disturb on the leading system", q.instance))
            });
            let want = enabled && conversations[n].is_none() && trigger.is_some();
            let key = (p.instance.to_owned(), target.endpoint.to_owned());
            // A new hold has judged what the platform shows so far.
            let hold = self.holds.entry(key.clone()).or_insert_with(|| Hold {
                mark: target.view.map_or(0, |v| v.updates),
                ..Hold::default()
            });
            let why_not = || {
                if !enabled {
                    "sync is off for the user".to_owned()
                } else if let Some(c) = &conversations[n] {
                    format!("{} itself in a conversation ({c})", p.instance)
                } else {
                    "no conversation remains".to_owned()
                }
            };
            match (want, hold.wants_dnd()) {
                (true, false) => {
                    let trigger = trigger.unwrap_or_default();
                    issue(
                        hold,
                        &key,
                        true,
                        WriteReason::Decision,
                        &trigger,
                        now,
                        timing,
                        ids,
                        &mut step,
                    );
                }
                (false, true) if hold.quiet_until.is_some_and(|t| now < t) && !all_reported => {
                    step.wake(hold.quiet_until.unwrap_or(now));
                }
                (false, true) => {
                    hold.quiet_until = None;
                    let why = why_not();
                    if hold.may_hold()
                        || matches!(
                            hold.phase,
                            Phase::Setting | Phase::Held { .. } | Phase::Yielded
                        )
                    {
                        issue(
                            hold,
                            &key,
                            false,
                            WriteReason::Decision,
                            &why,
                            now,
                            timing,
                            ids,
                            &mut step,
                        );
                    } else {
                        // Nothing of the hub's was taken: nothing to lift.
                        hold.phase = Phase::Idle;
                        hold.detail = None;
                        step.log.push((
                            key.0.clone(),
                            format!(
                                "trigger: {why}; target {}/{}: nothing of the hub's to lift",
                                key.0, key.1
                            ),
                        ));
                    }
                }
                _ => {}
            }
            // Retries and lease refreshes that are due.
            match hold.phase {
                Phase::Retry { set, at } if at <= now => {
                    issue(
                        hold,
                        &key,
                        set,
                        WriteReason::Retry,
                        "the last write failed",
                        now,
                        timing,
                        ids,
                        &mut step,
                    );
                }
                Phase::Retry { at, .. } => step.wake(at),
                Phase::Held {
                    refresh_at: Some(at),
                    confirmed,
                } if at <= now && want => {
                    issue(
                        hold,
                        &key,
                        true,
                        WriteReason::Refresh,
                        "the lease runs out",
                        now,
                        timing,
                        ids,
                        &mut step,
                    );
                    hold.phase = Phase::Held {
                        confirmed,
                        refresh_at: None,
                    };
                }
                Phase::Held {
                    refresh_at: Some(at),
                    ..
                } if at > now => step.wake(at),
                _ => {}
            }
            // After a lift the platform may go on showing the hub's DND for
            // a while (Graph catches up in seconds to minutes): that tail
            // ends once it shows no DND, or after the grace.
            if let Some(t) = hold.lifted_at {
                let cleared = target.view.and_then(|v| shows_dnd(v, target.channel)) == Some(false);
                if cleared || now >= t + timing.echo_grace_ms {
                    hold.lifted_at = None;
                } else {
                    step.wake(t + timing.echo_grace_ms);
                }
            }
            // A view that is still the echo of one of the hub's DND writes
            // keeps the hold (and its write ids) known.
            if target.view.is_some_and(|v| {
                matches!(v.origin, UpdateOrigin::HubWrite { write_id } if hold.sets.contains(&write_id))
                    && shows_dnd(v, target.channel) == Some(true)
            }) {
                echoing.push(key.clone());
            }
            // A write the platform never answered (a lost outcome, a
            // plugin that owes one) is taken as failed and made again.
            let awaiting = match hold.phase {
                Phase::Setting | Phase::Lifting => true,
                // A lease renewal in flight.
                Phase::Held { .. } => hold.write.is_some_and(|w| hold.unsettled.contains(&w)),
                _ => false,
            };
            if awaiting && let Some(sent) = hold.sent_at {
                let due = sent + timing.write_timeout_ms;
                if now >= due {
                    let set = hold.phase != Phase::Lifting;
                    if set {
                        hold.written = true;
                    }
                    hold.detail = Some(format!(
                        "no outcome within {} s",
                        timing.write_timeout_ms / 1000
                    ));
                    step.log.push((
                        key.0.clone(),
                        format!(
                            "write {} to {}/{}: no outcome within {} s; made again",
                            hold.write.unwrap_or_default(),
                            key.0,
                            key.1,
                            timing.write_timeout_ms / 1000
                        ),
                    ));
                    hold.attempt += 1;
                    issue(
                        hold,
                        &key,
                        set,
                        WriteReason::Retry,
                        "the last write was never answered",
                        now,
                        timing,
                        ids,
                        &mut step,
                    );
                } else {
                    step.wake(due);
                }
            }
        }
        self.holds.retain(|k, h| {
            h.phase != Phase::Idle || h.may_hold() || h.lifted_at.is_some() || echoing.contains(k)
        });
        step
    }

    /// Take in what the target endpoint shows: the hub's echo confirms its
    /// write; a person's change while the hub holds DND is set back on a
    /// follower and left alone on the leading system.
    fn observe(
        &mut self,
        p: &Platform,
        now: u64,
        step: &mut Step,
        ids: &mut dyn FnMut(&str, &str, &SyncAction) -> u64,
        timing: &Timing,
    ) {
        let Some(target) = p.target else { return };
        let Some(view) = target.view else { return };
        let key = (p.instance.to_owned(), target.endpoint.to_owned());
        let Some(hold) = self.holds.get_mut(&key) else {
            return;
        };
        if view.updates <= hold.mark {
            return;
        }
        hold.mark = view.updates;
        let echo_of_ours = matches!(view.origin, UpdateOrigin::HubWrite { write_id } if Some(write_id) == hold.write);
        let dnd = shows_dnd(view, target.channel);
        match hold.phase {
            Phase::Setting if echo_of_ours => {
                hold.phase = Phase::Held {
                    confirmed: true,
                    refresh_at: timing.lease_ms.map(|l| now + l * 3 / 4),
                };
                hold.written = true;
                hold.attempt = 0;
            }
            // Only the echo marked with the write's id confirms it: a DND
            // seen otherwise may be an older update delivered again.
            Phase::Held {
                confirmed: false,
                refresh_at,
            } if echo_of_ours => {
                hold.phase = Phase::Held {
                    confirmed: true,
                    refresh_at,
                };
            }
            Phase::Held {
                confirmed: true, ..
            } if view.origin == UpdateOrigin::Platform && dnd == Some(false) && p.up => {
                person_changed(hold, &key, p.leader, "", now, timing, ids, step);
            }
            _ => {}
        }
    }

    fn outcome(
        &mut self,
        id: u64,
        result: &WriteResult,
        now: u64,
        timing: &Timing,
        step: &mut Step,
    ) {
        for h in self.holds.values_mut() {
            h.unsettled.retain(|&w| w != id);
        }
        // An earlier DND write that landed: the platform shows the hub's
        // DND whatever the hub wants now, so a restore must follow.
        if let Some(h) = self
            .holds
            .values_mut()
            .find(|h| h.write != Some(id) && h.sets.contains(&id))
        {
            // Writes to one endpoint are applied in order: one made before
            // the last completed restore is gone.
            if *result == WriteResult::Applied && h.restored_by.is_none_or(|r| id > r) {
                h.written = true;
            }
            return;
        }
        let Some((key, hold)) = self.holds.iter_mut().find(|(_, h)| h.write == Some(id)) else {
            return;
        };
        let target = format!("{}/{}", key.0, key.1);
        let setting = matches!(hold.phase, Phase::Setting | Phase::Held { .. });
        let lifting = hold.phase == Phase::Lifting;
        let mut log = |s: String| step.log.push((key.0.clone(), s));
        match result {
            WriteResult::Applied | WriteResult::Restored | WriteResult::UserChanged if setting => {
                let confirmed = matches!(
                    hold.phase,
                    Phase::Held {
                        confirmed: true,
                        ..
                    }
                );
                hold.phase = Phase::Held {
                    confirmed,
                    refresh_at: timing.lease_ms.map(|l| now + l * 3 / 4),
                };
                hold.written = true;
                hold.attempt = 0;
                hold.detail = None;
                log(format!(
                    "write {id} to {target}: applied; do-not-disturb held"
                ));
            }
            WriteResult::Applied
            | WriteResult::Restored
            | WriteResult::UserChanged
            | WriteResult::Superseded
                if lifting =>
            {
                hold.phase = Phase::Idle;
                hold.written = false;
                hold.attempt = 0;
                hold.lifted_at = Some(now);
                hold.restored_by = Some(id);
                hold.detail = (*result == WriteResult::UserChanged)
                    .then(|| "the person had changed it; left as they set it".to_owned());
                log(format!(
                    "write {id} to {target}: {}",
                    match result {
                        WriteResult::UserChanged =>
                            "the person had changed it since; left as they set it",
                        WriteResult::Superseded =>
                            "replaced by another write; the hub's DND is gone",
                        _ => "restored; do-not-disturb lifted",
                    }
                ));
            }
            WriteResult::Superseded if setting => {
                hold.phase = Phase::Yielded;
                hold.written = true;
                hold.detail = Some("another write replaced the hub's".into());
                log(format!(
                    "write {id} to {target}: replaced by another write; the hub steps back until the conversation ends"
                ));
            }
            WriteResult::Failed {
                message,
                retryable: true,
                retry_after_ms,
                status,
            } if setting || lifting => {
                // A DND write that failed may still have landed (the
                // connector stopped before the platform answered): a lift
                // then needs a restore, which is cheap where it did not.
                if setting {
                    hold.written = true;
                }
                hold.attempt += 1;
                let backoff = timing
                    .retry_first_ms
                    .saturating_mul(1 << (hold.attempt - 1).min(20))
                    .min(timing.retry_max_ms);
                let at = now
                    + retry_after_ms
                        .unwrap_or(backoff)
                        .max(backoff.min(timing.retry_first_ms));
                hold.phase = Phase::Retry { set: setting, at };
                hold.detail = Some(failure_text(message, *status));
                step.wake(at);
                step.log.push((
                    key.0.clone(),
                    format!(
                        "write {id} to {target}: failed{}: {message}; retry {} in {} ms",
                        status.map(|s| format!(" (status {s})")).unwrap_or_default(),
                        hold.attempt,
                        at - now
                    ),
                ));
            }
            WriteResult::Failed {
                message, status, ..
            } if setting || lifting => {
                hold.phase = Phase::Refused { set: setting };
                hold.detail = Some(failure_text(message, *status));
                log(format!(
                    "write {id} to {target}: refused{}: {message}; not retried until the conversation changes",
                    status.map(|s| format!(" (status {s})")).unwrap_or_default()
                ));
            }
            WriteResult::Refused(message) if setting || lifting => {
                hold.phase = Phase::Refused { set: setting };
                hold.detail = Some(message.clone());
                log(format!(
                    "write {id} to {target}: refused: {message}; not retried until the conversation changes"
                ));
            }
            _ => {}
        }
    }
}

fn failure_text(message: &str, status: Option<u16>) -> String {
    match status {
        Some(s) => format!("status {s}: {message}"),
        None => message.to_owned(),
    }
}

/// The person's change on a platform where the hub holds DND: respected
/// on the leading system, set back on a follower.
#[allow(clippy::too_many_arguments)]
fn person_changed(
    hold: &mut Hold,
    key: &Key,
    leader: bool,
    why: &str,
    now: u64,
    timing: &Timing,
    ids: &mut dyn FnMut(&str, &str, &SyncAction) -> u64,
    step: &mut Step,
) {
    let trigger = if why.is_empty() {
        format!(
            "the person changed {}/{} while the hub held do-not-disturb there",
            key.0, key.1
        )
    } else {
        why.to_owned()
    };
    if leader {
        hold.phase = Phase::Yielded;
        hold.detail = Some("the person changed it on the leading system".into());
        step.log.push((
            key.0.clone(),
            format!(
                "trigger: {trigger}; rule: a manual change on the leading system is respected; \
                 left as set until the conversation ends"
            ),
        ));
    } else {
        issue(
            hold,
            key,
            true,
            WriteReason::SetBack,
            &trigger,
            now,
            timing,
            ids,
            step,
        );
    }
}

/// Make a write for `hold` and log the decision.
#[allow(clippy::too_many_arguments)]
fn issue(
    hold: &mut Hold,
    key: &Key,
    set: bool,
    why: WriteReason,
    trigger: &str,
    now: u64,
    timing: &Timing,
    ids: &mut dyn FnMut(&str, &str, &SyncAction) -> u64,
    step: &mut Step,
) {
    let action = if set {
        SyncAction::SetDnd {
            expires_in_ms: timing.lease_ms,
        }
    } else {
        SyncAction::Restore
    };
    let id = ids(&key.0, &key.1, &action);
    hold.write = Some(id);
    hold.sent_at = Some(now);
    if set {
        if hold.sets.len() == SETS_KEPT {
            hold.sets.remove(0);
        }
        hold.sets.push(id);
        hold.unsettled.push(id);
    }
    if why != WriteReason::Retry {
        hold.attempt = 0;
    }
    hold.phase = if set { Phase::Setting } else { Phase::Lifting };
    hold.lifted_at = None;
    let what = if set {
        match timing.lease_ms {
            Some(l) => format!("set do-not-disturb (all calls) for {} s", l / 1000),
            None => "set do-not-disturb (all calls)".to_owned(),
        }
    } else {
        "restore what the person had".to_owned()
    };
    let rule = match why {
        WriteReason::Decision => RULE,
        WriteReason::Retry => "a failed write is retried with backoff",
        WriteReason::Refresh => "the hub's do-not-disturb is renewed before its lease runs out",
        WriteReason::SetBack => {
            "a manual change on a follower is set back while the hub holds do-not-disturb"
        }
    };
    step.log.push((
        key.0.clone(),
        format!(
            "trigger: {trigger}; rule: {rule}; target {}/{}; write {id} {what}{}",
            key.0,
            key.1,
            if why == WriteReason::SetBack {
                " (set back)"
            } else {
                ""
            }
        ),
    ));
    step.writes.push(SyncWrite {
        id,
        instance: key.0.clone(),
        endpoint: key.1.clone(),
        action,
        why,
    });
}

/// Write ids: chosen by the host, unique per hub and never reused (contract
/// 0.2.0 `write-id`). One counter serves the operators' writes and the
/// sync's, so an echo names one write only.
#[derive(Debug)]
pub struct WriteIds(std::sync::atomic::AtomicU64);

impl WriteIds {
    /// Ids from `first` on. The hub starts from the clock in microseconds,
    /// so ids stay unique across restarts without being stored.
    pub fn starting_at(first: u64) -> WriteIds {
        WriteIds(std::sync::atomic::AtomicU64::new(first))
    }

    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}
