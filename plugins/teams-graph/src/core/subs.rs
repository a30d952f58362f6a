//! Change-notification subscriptions on `/communications/presences`: at most
//! 650 users each, created with the validation handshake, renewed before the
//! one-hour expiry, reauthorized, re-created when Graph removes them or falls
//! silent, deleted when the instance stops, kept in the key-value store so a
//! restart after a crash adopts them instead of duplicating them.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Action, Core, HookAnswer, Level, Outcome, Purpose, TimerKey, keys};
use crate::time;
use crate::wire::{self, Collection, Lifecycle, Notification, Subscription};

/// The expiry asked for: just under Graph's one-hour maximum for presence,
/// so clock differences never make a request exceed it.
const ASK_LIFETIME_MS: u64 = 59 * 60_000;
/// How long a refused subscription waits before it is tried again.
const BLOCK_FORBIDDEN_MS: u64 = 10 * 60_000;
const BLOCK_REJECTED_MS: u64 = 5 * 60_000;
/// How long a subscription may stay silent about a change a read showed
/// before it is judged dead: a notification still on its way arrives within
/// seconds. Never longer than one re-read interval, so a subscription is
/// judged before the next round.
const SILENCE_GRACE_MS: u64 = 15_000;

/// Where a subscription stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubPhase {
    NeedCreate,
    Creating,
    Active,
    NeedRenew,
    Renewing,
    /// Graph paused notifications until the subscription is reauthorized.
    NeedReauth,
    Reauthorizing,
}

/// One subscription.
#[derive(Debug, Clone)]
pub struct Sub {
    pub local: u64,
    pub graph_id: Option<String>,
    pub client_state: String,
    /// The users in the subscription's resource filter.
    pub ids: BTreeSet<String>,
    pub expires_at: u64,
    pub granted_at: u64,
    pub phase: SubPhase,
    /// The subscription this one replaces once it exists.
    pub replaces: Option<u64>,
    /// When Graph last delivered anything for it (or it came into being).
    pub last_notice: u64,
    /// A read showed a change that happened after this time, and the
    /// subscription has said nothing since.
    pub silent_since: Option<u64>,
}

impl Sub {
    /// Whether Graph is delivering notifications for it.
    pub fn live(&self) -> bool {
        self.graph_id.is_some()
            && matches!(
                self.phase,
                SubPhase::Active | SubPhase::NeedRenew | SubPhase::Renewing
            )
    }

    /// When to renew: five minutes ahead, or at two thirds of a shorter
    /// granted lifetime.
    fn renew_at(&self) -> u64 {
        let life = self.expires_at.saturating_sub(self.granted_at);
        self.expires_at - (life / 3).min(5 * 60_000)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredSub {
    graph_id: String,
    client_state: String,
    ids: Vec<String>,
    expires_at: u64,
    granted_at: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredSubs {
    fingerprint: String,
    notification_url: String,
    subs: Vec<StoredSub>,
}

impl Core {
    /// Take over subscriptions an earlier run created (one that crashed or
    /// was killed before it could delete them), if they belong to this
    /// configuration and have not run out. They are renewed at once, which
    /// also proves they still exist. Those of the same sign-in that post
    /// elsewhere are deleted.
    pub(super) fn adopt_subs(&mut self, stored: Option<&[u8]>, now: u64) {
        let Some(st) = stored.and_then(|b| serde_json::from_slice::<StoredSubs>(b).ok()) else {
            return;
        };
        if st.fingerprint != self.s.fingerprint() {
            // Another tenant, app or sign-in: this token cannot touch them;
            // they run out within the hour.
            self.out.push(Action::KvDelete(keys::SUBS.into()));
            return;
        }
        let live = st.subs.into_iter().filter(|s| s.expires_at > now + 5_000);
        if self.s.notifications_possible() != Ok(st.notification_url.as_str()) {
            self.to_delete.extend(live.map(|s| s.graph_id));
            self.out.push(Action::KvDelete(keys::SUBS.into()));
            return;
        }
        for s in live {
            let local = self.next_sub;
            self.next_sub += 1;
            self.subs.push(Sub {
                local,
                graph_id: Some(s.graph_id),
                client_state: s.client_state,
                ids: s.ids.into_iter().collect(),
                expires_at: s.expires_at,
                granted_at: s.granted_at,
                phase: SubPhase::NeedRenew,
                replaces: None,
                last_notice: now,
                silent_since: None,
            });
        }
    }

    fn persist_subs(&mut self) {
        let Ok(url) = self.s.notifications_possible() else {
            return;
        };
        let st = StoredSubs {
            fingerprint: self.s.fingerprint(),
            notification_url: url.to_string(),
            subs: self
                .subs
                .iter()
                .filter_map(|s| {
                    Some(StoredSub {
                        graph_id: s.graph_id.clone()?,
                        client_state: s.client_state.clone(),
                        ids: s.ids.iter().cloned().collect(),
                        expires_at: s.expires_at,
                        granted_at: s.granted_at,
                    })
                })
                .collect(),
        };
        if let Ok(bytes) = serde_json::to_vec(&st) {
            self.out.push(Action::KvSet(keys::SUBS.into(), bytes));
        }
    }

    /// Whether a live subscription covers the user (else it is polled).
    pub(super) fn covered(&self, id: &str) -> bool {
        self.subs.iter().any(|s| s.live() && s.ids.contains(id))
    }

    pub(super) fn sub_phase(&mut self, local: u64, phase: SubPhase) {
        if let Some(s) = self.subs.iter_mut().find(|s| s.local == local) {
            s.phase = phase;
        }
    }

    pub(super) fn schedule_reconcile(&mut self) {
        if !self.timers.contains(&TimerKey::Reconcile) {
            self.set_timer(TimerKey::Reconcile, 300);
        }
    }

    /// Bring the subscriptions in line with the watched users: retire those
    /// no longer needed, put new users into a subscription with room (a
    /// replacement, since a subscription's resource cannot be changed) or
    /// into new ones.
    pub(super) fn reconcile(&mut self, now: u64) {
        if self.s.notifications_possible().is_err() {
            return;
        }
        if !self.to_resolve.is_empty() || !self.resolving.is_empty() {
            // Users are still being looked up: wait for the whole picture.
            self.schedule_reconcile();
            return;
        }
        if let Some((until, _)) = &self.sub_block {
            if now < *until {
                let wait = until - now;
                self.set_timer(TimerKey::Reconcile, wait);
                return;
            }
            self.sub_block = None;
        }
        // Users Graph shows; a subscription is kept while it covers one.
        let wanted: BTreeSet<String> = self
            .ids
            .iter()
            .filter(|(_, i)| !i.missing && i.refused.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        // Retire subscriptions without a wanted user; a replacement in
        // flight keeps the one it replaces until it exists.
        let replaced: BTreeSet<u64> = self.subs.iter().filter_map(|s| s.replaces).collect();
        let mut retire = Vec::new();
        for s in &self.subs {
            let useful = s.ids.iter().any(|i| wanted.contains(i));
            if !useful && s.phase != SubPhase::Creating && !replaced.contains(&s.local) {
                retire.push(s.local);
            }
        }
        for local in retire {
            self.retire(local);
        }
        // Users join a subscription once their presence could be read:
        // Graph would refuse a whole subscription for one user it refuses
        // to show.
        let mut missing: Vec<String> = {
            let have: BTreeSet<&String> = self.subs.iter().flat_map(|s| s.ids.iter()).collect();
            wanted
                .iter()
                .filter(|i| !have.contains(i))
                .filter(|i| self.ids.get(*i).is_some_and(|x| x.read_at.is_some()))
                .cloned()
                .collect()
        };
        if missing.is_empty() {
            return;
        }
        // Fill subscriptions not yet sent, then replace live ones with room.
        let replacing: BTreeSet<u64> = self.subs.iter().filter_map(|s| s.replaces).collect();
        let mut replacements = Vec::new();
        for s in self.subs.iter_mut() {
            if missing.is_empty() {
                break;
            }
            let room = wire::MAX_IDS.saturating_sub(s.ids.len());
            if room == 0 || replacing.contains(&s.local) {
                continue;
            }
            let take: Vec<String> = missing.drain(..room.min(missing.len())).collect();
            match s.phase {
                SubPhase::NeedCreate => s.ids.extend(take),
                SubPhase::Active | SubPhase::NeedRenew => {
                    let ids: BTreeSet<String> = s
                        .ids
                        .iter()
                        .filter(|i| wanted.contains(*i))
                        .cloned()
                        .chain(take)
                        .collect();
                    replacements.push((s.local, ids));
                }
                _ => missing.extend(take),
            }
        }
        for (old, ids) in replacements {
            self.new_sub(ids, Some(old));
        }
        for chunk in wire::batches(&missing) {
            self.new_sub(chunk.into_iter().collect(), None);
        }
    }

    fn new_sub(&mut self, ids: BTreeSet<String>, replaces: Option<u64>) {
        let local = self.next_sub;
        self.next_sub += 1;
        let client_state = self.random();
        self.subs.push(Sub {
            local,
            graph_id: None,
            client_state,
            ids,
            expires_at: 0,
            granted_at: 0,
            phase: SubPhase::NeedCreate,
            replaces,
            last_notice: 0,
            silent_since: None,
        });
    }

    fn retire(&mut self, local: u64) {
        let Some(pos) = self.subs.iter().position(|s| s.local == local) else {
            return;
        };
        let s = self.subs.remove(pos);
        self.cancel_timer(TimerKey::Renew(local));
        if let Some(gid) = s.graph_id {
            self.to_delete.push(gid);
        }
        self.persist_subs();
    }

    /// Send the subscription deletes that are due.
    pub(super) fn pump_deletes(&mut self, token: &str) {
        for gid in std::mem::take(&mut self.to_delete) {
            let req = self.graph_request("DELETE", &format!("/subscriptions/{gid}"), None, token);
            self.send(Purpose::DeleteSub(gid), req);
        }
    }

    /// Send subscription requests that are due.
    pub(super) fn pump_subs(&mut self, token: &str, now: u64) {
        let Ok(url) = self.s.notifications_possible().map(str::to_string) else {
            return;
        };
        let due: Vec<(u64, SubPhase)> = self
            .subs
            .iter()
            .filter(|s| {
                matches!(
                    s.phase,
                    SubPhase::NeedCreate | SubPhase::NeedRenew | SubPhase::NeedReauth
                )
            })
            .map(|s| (s.local, s.phase))
            .collect();
        for (local, phase) in due {
            let Some(s) = self.subs.iter().find(|s| s.local == local).cloned() else {
                continue;
            };
            let expiration = time::format_rfc3339(now + ASK_LIFETIME_MS);
            match (phase, &s.graph_id) {
                (SubPhase::NeedCreate, _) | (_, None) => {
                    let body = wire::NewSubscription {
                        change_type: "updated",
                        notification_url: &url,
                        lifecycle_notification_url: &url,
                        resource: wire::presence_resource(&s.ids),
                        expiration_date_time: expiration,
                        client_state: &s.client_state,
                        // Basic notifications: resource data would need an
                        // encryption certificate; the changed users are read
                        // in one batch instead.
                        include_resource_data: false,
                        latest_supported_tls_version: "v1_2",
                    };
                    let req = self.graph_request(
                        "POST",
                        "/subscriptions",
                        serde_json::to_value(&body).ok(),
                        token,
                    );
                    self.sub_phase(local, SubPhase::Creating);
                    self.send(Purpose::CreateSub(local), req);
                }
                (SubPhase::NeedRenew, Some(gid)) => {
                    let req = self.graph_request(
                        "PATCH",
                        &format!("/subscriptions/{gid}"),
                        Some(json!({ "expirationDateTime": expiration })),
                        token,
                    );
                    self.sub_phase(local, SubPhase::Renewing);
                    self.send(Purpose::RenewSub(local), req);
                }
                (_, Some(gid)) => {
                    let req = self.graph_request(
                        "POST",
                        &format!("/subscriptions/{gid}/reauthorize"),
                        None,
                        token,
                    );
                    self.sub_phase(local, SubPhase::Reauthorizing);
                    self.send(Purpose::Reauthorize(local), req);
                }
            }
        }
    }

    /// Take the expiry Graph granted (it may be shorter than asked) and
    /// schedule the renewal.
    fn granted(&mut self, local: u64, sub: Option<Subscription>, now: u64) {
        let Some(s) = self.subs.iter_mut().find(|s| s.local == local) else {
            return;
        };
        let expires = sub
            .as_ref()
            .and_then(|x| time::parse_rfc3339(&x.expiration_date_time))
            .unwrap_or(now + ASK_LIFETIME_MS);
        if let Some(x) = sub {
            s.graph_id = Some(x.id);
        }
        s.expires_at = expires;
        s.granted_at = now;
        s.phase = SubPhase::Active;
        let at = s.renew_at().saturating_sub(now).max(500);
        self.set_timer(TimerKey::Renew(local), at);
        self.persist_subs();
    }

    pub(super) fn on_sub_created(&mut self, local: u64, outcome: Outcome, now: u64) {
        match outcome {
            Outcome::Ok(resp) => {
                let Ok(sub) = serde_json::from_slice::<Subscription>(&resp.body) else {
                    self.log(Level::Error, "unreadable subscription answer");
                    self.sub_failed(local, "unreadable subscription answer".into(), now);
                    return;
                };
                if self.stopping {
                    // Created while the instance stops: ended at once.
                    self.subs.retain(|s| s.local != local);
                    self.to_delete.push(sub.id);
                    return;
                }
                self.log(
                    Level::Info,
                    format!(
                        "subscription {} created, expires {}",
                        sub.id, sub.expiration_date_time
                    ),
                );
                self.granted(local, Some(sub), now);
                if let Some(s) = self.subs.iter_mut().find(|s| s.local == local) {
                    s.last_notice = now;
                    s.silent_since = None;
                }
                // Changes between the last read and now came with no
                // notification: read the subscription's users once.
                let Some(s) = self.subs.iter().find(|s| s.local == local) else {
                    return;
                };
                let (ids, replaces) = (s.ids.clone(), s.replaces);
                self.to_read
                    .extend(ids.into_iter().filter(|i| self.ids.contains_key(i)));
                self.schedule_read();
                if let Some(old) = replaces {
                    if let Some(s) = self.subs.iter_mut().find(|s| s.local == local) {
                        s.replaces = None;
                    }
                    self.retire(old);
                }
            }
            Outcome::Forbidden(m) => {
                self.sub_failed(
                    local,
                    format!("Graph refused the presence subscription ({m}): polling instead"),
                    now,
                );
            }
            Outcome::NotFound(m) | Outcome::Rejected(_, m) => {
                self.sub_failed(
                    local,
                    format!("Graph did not create the presence subscription ({m}); check that the notification URL reaches this hub: polling meanwhile"),
                    now,
                );
            }
            Outcome::Unauthorized(_) | Outcome::Throttled(..) | Outcome::Transient(..) => {}
        }
    }

    /// Creation failed: drop the attempt, poll its users, and try again
    /// later.
    fn sub_failed(&mut self, local: u64, why: String, now: u64) {
        self.log(Level::Warn, why.clone());
        let wait = if why.contains("refused") {
            BLOCK_FORBIDDEN_MS
        } else {
            BLOCK_REJECTED_MS
        };
        self.sub_block = Some((now + wait, why));
        self.subs.retain(|s| s.local != local);
        self.set_timer(TimerKey::Reconcile, wait);
    }

    pub(super) fn on_sub_renewed(&mut self, local: u64, outcome: Outcome, now: u64) {
        match outcome {
            Outcome::Ok(resp) => {
                let sub = serde_json::from_slice::<Subscription>(&resp.body).ok();
                self.granted(local, sub, now);
            }
            Outcome::NotFound(m) | Outcome::Forbidden(m) | Outcome::Rejected(_, m) => {
                // Expired or removed on Graph's side: a new one is needed,
                // and whatever changed meanwhile is read after it exists.
                self.log(
                    Level::Warn,
                    format!("subscription renewal failed ({m}); creating a new one"),
                );
                self.recreate(local);
            }
            Outcome::Unauthorized(_) | Outcome::Throttled(..) | Outcome::Transient(..) => {}
        }
    }

    pub(super) fn on_reauthorized(&mut self, local: u64, outcome: Outcome, now: u64) {
        match outcome {
            Outcome::Ok(_) => {
                self.log(Level::Info, "subscription reauthorized");
                self.sub_phase(local, SubPhase::Active);
                // Notifications were paused until now.
                if let Some(s) = self.subs.iter_mut().find(|s| s.local == local) {
                    s.last_notice = now;
                    s.silent_since = None;
                }
                if let Some(s) = self.subs.iter().find(|s| s.local == local) {
                    let ids: Vec<String> = s
                        .ids
                        .iter()
                        .filter(|i| self.ids.contains_key(*i))
                        .cloned()
                        .collect();
                    self.to_read.extend(ids);
                    self.schedule_read();
                }
            }
            Outcome::NotFound(m) | Outcome::Forbidden(m) | Outcome::Rejected(_, m) => {
                self.log(
                    Level::Warn,
                    format!("reauthorization failed ({m}); creating a new subscription"),
                );
                self.recreate(local);
            }
            Outcome::Unauthorized(_) | Outcome::Throttled(..) | Outcome::Transient(..) => {}
        }
    }

    /// Create a subscription again, under a new clientState: the old one
    /// may have leaked with the subscription Graph removed.
    fn recreate(&mut self, local: u64) {
        self.cancel_timer(TimerKey::Renew(local));
        let client_state = self.random();
        if let Some(s) = self.subs.iter_mut().find(|s| s.local == local) {
            s.graph_id = None;
            s.phase = SubPhase::NeedCreate;
            s.client_state = client_state;
        }
        self.persist_subs();
    }

    /// The renewal timer fired.
    pub(super) fn renew_due(&mut self, local: u64, now: u64) {
        let Some(s) = self.subs.iter_mut().find(|s| s.local == local) else {
            return;
        };
        if now >= s.expires_at {
            // Renewal came too late (Graph unreachable meanwhile).
            self.recreate(local);
        } else if s.phase == SubPhase::Active {
            s.phase = SubPhase::NeedRenew;
        }
    }

    /// Change and lifecycle notifications.
    pub(super) fn on_notifications(&mut self, body: &[u8], now: u64) -> HookAnswer {
        let batch = match serde_json::from_slice::<Collection<Notification>>(body) {
            Ok(b) => b.value,
            Err(e) => return HookAnswer::text(400, format!("not a notification collection: {e}")),
        };
        let mut accepted = 0usize;
        for n in &batch {
            // The clientState proves the notification comes from the
            // subscription this connector made; anything else is dropped.
            let cs = n.client_state.as_deref().unwrap_or("").as_bytes();
            let Some(sub) = self.subs.iter().find(|s| {
                let ours = s.graph_id.as_deref() == Some(n.subscription_id.as_str())
                    // A notification may overtake the creation answer.
                    || (s.phase == SubPhase::Creating && s.graph_id.is_none());
                ours && same(cs, s.client_state.as_bytes())
            }) else {
                continue;
            };
            accepted += 1;
            let local = sub.local;
            if let Some(s) = self.subs.iter_mut().find(|s| s.local == local) {
                s.last_notice = now;
            }
            match n.lifecycle_event.as_deref() {
                Some(ev) => self.lifecycle(local, ev),
                None => {
                    if let Some(id) = n.user_id()
                        && self.ids.contains_key(&id)
                    {
                        self.to_read.insert(id);
                        self.schedule_read();
                    }
                }
            }
        }
        if accepted == 0 && !batch.is_empty() {
            self.log(
                Level::Warn,
                format!(
                    "dropped {} notification(s) with an unknown subscription or wrong clientState",
                    batch.len()
                ),
            );
            return HookAnswer::text(403, "unknown subscription or clientState");
        }
        HookAnswer::text(202, "")
    }

    fn lifecycle(&mut self, local: u64, event: &str) {
        let Some(kind) = Lifecycle::parse(event) else {
            self.log(Level::Warn, format!("unknown lifecycle event {event:?}"));
            return;
        };
        self.log(Level::Info, format!("lifecycle notification: {event}"));
        match kind {
            Lifecycle::ReauthorizationRequired => {
                // Reauthorize with a fresh token.
                self.force_refresh();
                self.sub_phase(local, SubPhase::NeedReauth);
            }
            Lifecycle::SubscriptionRemoved => self.recreate(local),
            Lifecycle::Missed => {
                if let Some(s) = self.subs.iter().find(|s| s.local == local) {
                    let ids: Vec<String> = s
                        .ids
                        .iter()
                        .filter(|i| self.ids.contains_key(*i))
                        .cloned()
                        .collect();
                    self.to_read.extend(ids);
                    self.schedule_read();
                }
            }
        }
    }
}

impl Core {
    /// A read showed a change of `id` that happened after `since` (its
    /// previous read). A live subscription covering the user that has said
    /// nothing since then may have stopped delivering: it is judged after a
    /// grace in which a notification still on its way can arrive.
    pub(super) fn changed_since(&mut self, id: &str, since: u64) {
        let grace = SILENCE_GRACE_MS.min(self.s.reread_ms);
        let Some(s) = self
            .subs
            .iter_mut()
            .find(|s| s.live() && s.ids.contains(id))
        else {
            return;
        };
        // A notification from the time of that read or before vouches for
        // nothing newer.
        if s.last_notice > since || s.silent_since.is_some() {
            return;
        }
        s.silent_since = Some(since);
        let local = s.local;
        self.set_timer(TimerKey::Silent(local), grace);
    }

    /// The grace of a silent subscription is over: if it still has said
    /// nothing, it is deleted and created again (a new clientState too).
    pub(super) fn silence_due(&mut self, local: u64) {
        let Some(s) = self.subs.iter_mut().find(|s| s.local == local) else {
            return;
        };
        let Some(since) = s.silent_since.take() else {
            return;
        };
        if !s.live() || s.last_notice > since {
            return;
        }
        let gid = s.graph_id.clone().unwrap_or_default();
        let users = s.ids.len();
        self.log(
            Level::Warn,
            format!(
                "subscription {gid} ({users} users) has been silent while reads show changes; deleting it and creating a new one"
            ),
        );
        self.to_delete.push(gid);
        self.recreate(local);
    }

    /// The instance stops: every subscription Graph knows is to be deleted.
    /// They stay in the key-value store until Graph confirms, so a restart
    /// after an unfinished goodbye adopts them rather than leaving them to
    /// post to nobody. Returns how many.
    pub(super) fn end_subscriptions(&mut self) -> usize {
        let gids: Vec<String> = self
            .subs
            .iter()
            .filter_map(|s| s.graph_id.clone())
            .collect();
        let n = gids.len() + self.to_delete.len();
        self.to_delete.extend(gids);
        n
    }

    /// Graph answered a subscription delete.
    pub(super) fn on_sub_deleted(&mut self, gid: String, outcome: Outcome) {
        match outcome {
            Outcome::Ok(_) => self.log(Level::Info, format!("subscription {gid} deleted")),
            // Gone already (expired, removed by Graph).
            Outcome::NotFound(_) => {}
            Outcome::Rejected(_, m) | Outcome::Forbidden(m) => {
                self.log(Level::Warn, format!("deleting subscription {gid}: {m}"));
            }
            Outcome::Unauthorized(_) | Outcome::Throttled(..) | Outcome::Transient(..) => return,
        }
        let before = self.subs.len();
        self.subs
            .retain(|s| s.graph_id.as_deref() != Some(gid.as_str()));
        if self.subs.len() != before {
            self.persist_subs();
        }
    }
}

/// Compare secrets in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
