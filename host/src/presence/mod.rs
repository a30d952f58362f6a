//! The live presence service: users and their endpoints, the merged presence
//! of every user (computed by [`crate::engine::merge`]), notes, the live feed
//! and the event log. Connectors' reports arrive through [`ReportObserver`];
//! which endpoints each connector must watch flows back through
//! [`Connectors::set_derived_watches`].

mod feed;
mod log;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

pub use feed::{FeedEvent, FeedKind, Next, Route, Subscription};
pub use log::EventLog;

use crate::engine::merge::{self, Merged, RichOut, Rules, SourceView, TelephonyOut};
use crate::engine::users::{Channel, Mapping, User, UserError};
use crate::engine::{Board, EndpointView};
use crate::store::{EventRecord, Store, StoreError, now_ms};

/// What the presence service needs to know of connector instances.
pub trait Connectors: Send + Sync {
    /// Every instance as `(id, technology = plugin id, running)`.
    fn instances(&self) -> Vec<(String, String, bool)>;
    /// Replace the endpoints an instance watches for users.
    fn set_derived_watches(&self, instance: &str, endpoints: BTreeSet<String>);
    /// The user attributes an instance's plugin can watch, and the channel
    /// each feeds; the first is its default.
    fn endpoint_kinds(&self, _instance: &str) -> Vec<(String, Channel)> {
        Vec::new()
    }
}

/// Called by the runtime for every report a connector makes.
pub trait ReportObserver: Send + Sync {
    /// A report about `endpoint` changed what the board holds.
    fn observed(&self, instance: &str, endpoint: &str, detail: String);
    /// A decision or outcome worth the event log that changes no presence
    /// (a write's outcome); `kind` is the event log's kind.
    fn decision(&self, instance: &str, endpoint: Option<&str>, kind: &str, detail: String);
}

/// An operator's note on a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    #[serde(default)]
    pub id: i64,
    pub text: String,
    pub author: String,
    pub at_ms: u64,
    pub expires_at_ms: Option<u64>,
}

/// One user's merged presence as consoles see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserPresence {
    pub username: String,
    pub display_name: String,
    pub department: Option<String>,
    pub extension: Option<String>,
    pub telephony: TelephonyOut,
    pub rich: RichOut,
    pub notes: Vec<Note>,
    /// A force-subscribe is in effect until then.
    pub forced_until_ms: Option<u64>,
}

/// A user's presence with every source's own report.
#[derive(Debug, Clone, Serialize)]
pub struct UserPresenceDetail {
    #[serde(flatten)]
    pub presence: UserPresence,
    pub sources: Vec<SourceDetail>,
    pub reasons: Vec<String>,
}

/// One source's view of a user.
#[derive(Debug, Clone, Serialize)]
pub struct SourceDetail {
    pub instance: String,
    pub technology: String,
    pub endpoint: String,
    pub channel: &'static str,
    pub running: bool,
    pub observed: Option<EndpointView>,
}

/// A rejected request, naming the field.
#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    #[error("{0}")]
    Invalid(#[from] UserError),
    #[error("user {0:?} not found")]
    NotFound(String),
    #[error("user {0:?} exists already")]
    Exists(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Bulk import: every rejected row; nothing was imported.
    #[error("{} rows rejected; nothing was imported", .0.len())]
    Rejected(Vec<RowError>),
}

/// Why one import row was rejected.
#[derive(Debug, Clone, Serialize)]
pub struct RowError {
    /// 1-based row (CSV: after the header line).
    pub row: usize,
    pub field: String,
    pub error: String,
}

#[derive(Default)]
struct Inner {
    users: BTreeMap<String, User>,
    rules: Rules,
    notes: BTreeMap<String, Vec<Note>>,
    merged: BTreeMap<String, (UserPresence, Vec<String>)>,
    /// (instance, endpoint) -> users.
    index: HashMap<(String, String), Vec<String>>,
    /// user -> (instance, endpoint, channel).
    sources: BTreeMap<String, Vec<(String, String, Channel)>>,
    forced: BTreeMap<String, u64>,
    instances: BTreeMap<String, (String, bool)>,
    watches: BTreeMap<String, BTreeSet<String>>,
    seq: u64,
    ring: VecDeque<Arc<FeedEvent>>,
    /// Feed clients that follow named users, by user.
    routes: HashMap<String, Vec<Route>>,
    /// The board's directory generation the index was built from.
    directories: u64,
    /// When the periodic tick last ran (0: never).
    last_tick: u64,
}

/// How many feed events are kept for clients that resume.
const RING: usize = 20_000;
/// Users recomputed per hold of the lock by the periodic tick.
const TICK_SLICE: usize = 256;
/// How long a force-subscribe lasts.
const FORCE_MS: u64 = 60_000;
const RULES_KEY: &str = "rules";

/// The service.
pub struct Presence {
    store: Arc<dyn Store>,
    board: Arc<Board>,
    connectors: OnceLock<Arc<dyn Connectors>>,
    inner: Mutex<Inner>,
    feed: broadcast::Sender<Arc<FeedEvent>>,
    log: EventLog,
}

impl Presence {
    /// Load users, notes and rules.
    pub fn open(store: Arc<dyn Store>, board: Arc<Board>) -> Result<Arc<Self>, StoreError> {
        let mut inner = Inner {
            // Sequence numbers stay increasing across restarts, so a client
            // resuming with an old number gets a fresh snapshot, never a
            // repeated number.
            seq: now_ms() * 1000,
            ..Default::default()
        };
        if let Some(r) = store.setting(RULES_KEY)? {
            inner.rules = serde_json::from_str(&r).map_err(|e| StoreError::Corrupt {
                what: "rules".into(),
                message: e.to_string(),
            })?;
        }
        for (name, rec) in store.users()? {
            let u: User = serde_json::from_str(&rec).map_err(|e| StoreError::Corrupt {
                what: format!("user {name}"),
                message: e.to_string(),
            })?;
            inner.users.insert(name, u);
        }
        for (id, user, rec) in store.notes()? {
            if let Ok(mut n) = serde_json::from_str::<Note>(&rec) {
                n.id = id;
                inner.notes.entry(user).or_default().push(n);
            }
        }
        let (feed, _) = broadcast::channel(4096);
        let log = EventLog::start(store.clone());
        Ok(Arc::new(Self {
            store,
            board,
            connectors: OnceLock::new(),
            inner: Mutex::new(inner),
            feed,
            log,
        }))
    }

    /// Connect to the runtime and compute everything once.
    fn connect(&self, connectors: Arc<dyn Connectors>) {
        let _ = self.connectors.set(connectors);
        self.connectors_changed();
    }

    /// Connect to the runtime, compute everything once, and tick every 2 s.
    pub fn attach(self: &Arc<Self>, connectors: Arc<dyn Connectors>) {
        self.connect(connectors);
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
            let mut last_prune = 0u64;
            loop {
                tick.tick().await;
                let Some(p) = me.upgrade() else { return };
                // Recomputing every user is CPU work for a while with many
                // users: off the async workers, which serve reports and feeds.
                let t = p.clone();
                let _ = tokio::task::spawn_blocking(move || t.tick(now_ms())).await;
                if now_ms() - last_prune > 3_600_000 {
                    last_prune = now_ms();
                    let days = p.rules().event_retention_days;
                    p.log.prune(days);
                }
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The event log.
    pub fn log(&self) -> &EventLog {
        &self.log
    }

    // ---- mapping -------------------------------------------------------

    /// How an instance maps users to endpoints: the attribute the operator
    /// picked, else the plugin's endpoint kinds, else `username`. No plugin
    /// is known here by name.
    fn mapping_for(rules: &Rules, instance: &str, kinds: &[(String, Channel)]) -> Mapping {
        let picked = rules
            .instance_fields
            .get(instance)
            .map(|a| crate::engine::users::canonical_attribute(a));
        match picked {
            Some(attribute) => {
                let channel = kinds
                    .iter()
                    .find(|(k, _)| *k == attribute)
                    .map(|(_, c)| *c)
                    .unwrap_or_else(|| Channel::of_well_known(&attribute));
                Mapping::Picked { attribute, channel }
            }
            None if kinds.is_empty() => Mapping::Picked {
                attribute: "username".into(),
                channel: Channel::Rich,
            },
            None => Mapping::Kinds(kinds.to_vec()),
        }
    }

    /// Take the instances from the runtime; `true` when the set of
    /// instances or their technologies changed (which changes who is
    /// watched where), not only whether they run.
    fn refresh_instances(&self, inner: &mut Inner) -> bool {
        let Some(c) = self.connectors.get() else {
            return false;
        };
        let fresh: BTreeMap<String, (String, bool)> = c
            .instances()
            .into_iter()
            .map(|(id, tech, ok)| (id, (tech, ok)))
            .collect();
        let moved = fresh.len() != inner.instances.len()
            || fresh
                .iter()
                .zip(&inner.instances)
                .any(|((a, (ta, _)), (b, (tb, _)))| a != b || ta != tb);
        inner.instances = fresh;
        moved
    }

    /// Recompute who is watched where, and tell the connectors.
    fn reindex(&self, inner: &mut Inner) {
        self.refresh_instances(inner);
        inner.directories = self.board.directory_generation();
        inner.index.clear();
        inner.sources.clear();
        let mut desired: BTreeMap<String, BTreeSet<String>> = inner
            .instances
            .keys()
            .map(|i| (i.clone(), BTreeSet::new()))
            .collect();
        let dirs: HashMap<String, HashMap<String, String>> = inner
            .instances
            .keys()
            .map(|i| (i.clone(), self.board.directory_by_email(i)))
            .collect();
        // Each instance's mapping once, not once per user.
        let mappings: HashMap<String, Mapping> = inner
            .instances
            .keys()
            .map(|i| {
                let kinds = self
                    .connectors
                    .get()
                    .map(|c| c.endpoint_kinds(i))
                    .unwrap_or_default();
                (i.clone(), Self::mapping_for(&inner.rules, i, &kinds))
            })
            .collect();
        for (name, user) in &inner.users {
            let mut srcs = Vec::new();
            for instance in inner.instances.keys() {
                let mapping = &mappings[instance];
                let dir = &dirs[instance];
                for (ep, ch) in
                    user.endpoints_for(instance, mapping, |email| dir.get(email).cloned())
                {
                    inner
                        .index
                        .entry((instance.clone(), ep.clone()))
                        .or_default()
                        .push(name.clone());
                    desired
                        .get_mut(instance)
                        .expect("listed")
                        .insert(ep.clone());
                    srcs.push((instance.clone(), ep, ch));
                }
            }
            inner.sources.insert(name.clone(), srcs);
        }
        if let Some(c) = self.connectors.get() {
            for (instance, set) in desired {
                if inner.watches.get(&instance) != Some(&set) {
                    c.set_derived_watches(&instance, set.clone());
                    inner.watches.insert(instance, set);
                }
            }
        }
    }

    // ---- merging -------------------------------------------------------

    fn compute(
        &self,
        inner: &Inner,
        name: &str,
        now: u64,
    ) -> Option<(UserPresence, Vec<String>, Vec<SourceDetail>)> {
        let user = inner.users.get(name)?;
        let srcs = inner.sources.get(name).cloned().unwrap_or_default();
        let details: Vec<SourceDetail> = srcs
            .iter()
            .map(|(instance, ep, ch)| {
                let (tech, ok) = inner.instances.get(instance).cloned().unwrap_or_default();
                SourceDetail {
                    instance: instance.clone(),
                    technology: tech,
                    endpoint: ep.clone(),
                    channel: match ch {
                        Channel::Rich => "rich",
                        Channel::Telephony => "telephony",
                        Channel::Both => "both",
                    },
                    running: ok,
                    observed: self.board.endpoint(instance, ep),
                }
            })
            .collect();
        fn view(d: &SourceDetail) -> SourceView<'_> {
            SourceView {
                instance: &d.instance,
                technology: &d.technology,
                endpoint: &d.endpoint,
                observed: d.observed.as_ref(),
                connector_ok: d.running,
            }
        }
        let rich: Vec<SourceView> = details
            .iter()
            .filter(|d| d.channel != "telephony")
            .map(view)
            .collect();
        let tel: Vec<SourceView> = details
            .iter()
            .filter(|d| d.channel != "rich")
            .map(view)
            .collect();
        let Merged {
            telephony,
            rich,
            reasons,
        } = merge::merge(
            &rich,
            &tel,
            user.voicemail_number.as_deref(),
            &inner.rules,
            now,
        );
        let notes: Vec<Note> = inner
            .notes
            .get(name)
            .map(|n| {
                n.iter()
                    .filter(|n| n.expires_at_ms.is_none_or(|e| e > now))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let p = UserPresence {
            username: name.to_string(),
            display_name: user.display_name.clone(),
            department: user.department.clone(),
            extension: user.extension.clone(),
            telephony,
            rich,
            notes,
            forced_until_ms: inner.forced.get(name).copied(),
        };
        Some((p, reasons, details))
    }

    /// Recompute one user; publish a feed event when it changed.
    fn recompute(&self, inner: &mut Inner, name: &str, now: u64) {
        let Some((p, reasons, _)) = self.compute(inner, name, now) else {
            return;
        };
        if inner.merged.get(name).map(|(old, _)| old) == Some(&p) {
            return;
        }
        if !reasons.is_empty() && inner.merged.get(name).map(|(_, r)| r) != Some(&reasons) {
            for r in &reasons {
                self.log.record(EventRecord {
                    at_ms: now,
                    kind: "decision".into(),
                    username: Some(name.to_string()),
                    instance: None,
                    detail: r.clone(),
                });
            }
        }
        self.log.record(EventRecord {
            at_ms: now,
            kind: "decision".into(),
            username: Some(name.to_string()),
            instance: p.rich.source.clone().or(p.telephony.source.clone()),
            detail: format!(
                "merged: rich {} (from {}), telephony {} (from {})",
                p.rich.state.as_str(),
                p.rich.source.as_deref().unwrap_or("-"),
                p.telephony.state.as_str(),
                p.telephony.source.as_deref().unwrap_or("-")
            ),
        });
        inner.merged.insert(name.to_string(), (p.clone(), reasons));
        self.publish(inner, FeedKind::Presence(Box::new(p)));
    }

    fn publish(&self, inner: &mut Inner, kind: FeedKind) {
        inner.seq += 1;
        let ev = Arc::new(FeedEvent::new(inner.seq, kind));
        inner.ring.push_back(ev.clone());
        if inner.ring.len() > RING {
            inner.ring.pop_front();
        }
        // Clients that follow this user by name; a finished route (client
        // gone, or too far behind: it gets a resync) is dropped.
        let user = ev.kind.username();
        if let Some(routes) = inner.routes.get_mut(user) {
            routes.retain(|r| r.offer(&ev));
            if routes.is_empty() {
                inner.routes.remove(user);
            }
        }
        // Clients that follow everyone. No receivers is fine; slow ones lag
        // and are cut off by the feed.
        let _ = self.feed.send(ev);
    }

    fn recompute_all(&self, inner: &mut Inner, now: u64) {
        let names: Vec<String> = inner.users.keys().cloned().collect();
        for n in names {
            self.recompute(inner, &n, now);
        }
    }

    /// Instances were created, deleted, enabled or disabled.
    pub fn connectors_changed(&self) {
        let mut inner = self.lock();
        self.reindex(&mut inner);
        self.recompute_all(&mut inner, now_ms());
    }

    /// Age sources out, end force-subscribes and expired notes, pick up
    /// connector status changes and directories.
    ///
    /// Only what time or the connectors' state can have changed since the
    /// last tick is recomputed: users with a source that went stale, a note
    /// that expired or a force-subscribe that ended, or everyone when an
    /// instance started, stopped or changed. Who is watched where is
    /// rebuilt only when the instances or the directories changed (users
    /// and rules rebuild it themselves). The users are recomputed a slice
    /// at a time, so that reports waiting for the lock wait for one slice.
    pub fn tick(&self, now: u64) {
        let names: Vec<String> = {
            let mut inner = self.lock();
            let mut due = BTreeSet::new();
            inner.forced.retain(|name, until| {
                let keep = *until > now;
                if !keep {
                    due.insert(name.clone());
                }
                keep
            });
            let before = inner.instances.clone();
            let moved = self.refresh_instances(&mut inner);
            if moved || self.board.directory_generation() != inner.directories {
                self.reindex(&mut inner);
            }
            let last = std::mem::replace(&mut inner.last_tick, now);
            if last == 0 || moved || before != inner.instances {
                inner.users.keys().cloned().collect()
            } else {
                // Under an operator's limit a source is fresh while
                // now - received <= stale: it went stale since the last tick
                // if received + stale is in [last, now]. A declared validity
                // lapses at its own time.
                let mut keys = self.board.lapsing_between(last, now);
                if let Some(stale) = inner.rules.stale_after_seconds.map(|s| s * 1000) {
                    keys.extend(self.board.received_between(
                        last.saturating_sub(stale + 1),
                        now.saturating_sub(stale),
                    ));
                }
                for key in keys {
                    if let Some(users) = inner.index.get(&key) {
                        due.extend(users.iter().cloned());
                    }
                }
                for (name, notes) in &inner.notes {
                    if notes
                        .iter()
                        .any(|n| n.expires_at_ms.is_some_and(|e| e >= last && e <= now))
                    {
                        due.insert(name.clone());
                    }
                }
                due.into_iter().collect()
            }
        };
        for slice in names.chunks(TICK_SLICE) {
            let mut inner = self.lock();
            for n in slice {
                self.recompute(&mut inner, n, now);
            }
        }
    }

    // ---- queries ---------------------------------------------------------

    pub fn rules(&self) -> Rules {
        self.lock().rules.clone()
    }

    /// Replace the rules; applied at once.
    pub fn set_rules(&self, rules: Rules) -> Result<Rules, StoreError> {
        self.store.set_setting(
            RULES_KEY,
            &serde_json::to_string(&rules).expect("rules serialise"),
        )?;
        let mut inner = self.lock();
        inner.rules = rules.clone();
        self.log.record(EventRecord {
            at_ms: now_ms(),
            kind: "settings".into(),
            username: None,
            instance: None,
            detail: format!(
                "rules changed: {}",
                serde_json::to_string(&rules).unwrap_or_default()
            ),
        });
        self.reindex(&mut inner);
        self.recompute_all(&mut inner, now_ms());
        Ok(rules)
    }

    /// Every user's presence (optionally only `names`), with the current
    /// sequence number.
    pub fn snapshot(&self, names: Option<&BTreeSet<String>>) -> (u64, Vec<UserPresence>) {
        let inner = self.lock();
        let list = inner
            .merged
            .iter()
            .filter(|(n, _)| names.is_none_or(|s| s.contains(*n)))
            .map(|(_, (p, _))| p.clone())
            .collect();
        (inner.seq, list)
    }

    /// One user's presence with each source's report and the reasons.
    pub fn detail(&self, name: &str) -> Result<UserPresenceDetail, PresenceError> {
        let inner = self.lock();
        let (presence, reasons, sources) = self
            .compute(&inner, name, now_ms())
            .ok_or_else(|| PresenceError::NotFound(name.into()))?;
        Ok(UserPresenceDetail {
            presence,
            sources,
            reasons,
        })
    }

    /// Follow the feed: replay after `since` when possible, else a snapshot.
    pub fn subscribe(&self, names: Option<BTreeSet<String>>, since: Option<u64>) -> Subscription {
        let mut inner = self.lock();
        let oldest = inner.ring.front().map(|e| e.seq);
        let replay = match since {
            Some(s) if s == inner.seq => Some(Vec::new()),
            Some(s) if s < inner.seq && oldest.is_some_and(|o| o <= s + 1) => Some(
                inner
                    .ring
                    .iter()
                    .filter(|e| e.seq > s)
                    .filter(|e| e.kind.concerns(names.as_ref()))
                    .cloned()
                    .collect(),
            ),
            _ => None,
        };
        let snapshot = match replay {
            Some(_) => None,
            None => Some(
                inner
                    .merged
                    .iter()
                    .filter(|(n, _)| names.as_ref().is_none_or(|s| s.contains(*n)))
                    .map(|(_, (p, _))| p.clone())
                    .collect(),
            ),
        };
        let (seq, replay) = (inner.seq, replay.unwrap_or_default());
        let Some(names) = names else {
            return Subscription::all(seq, snapshot, replay, self.feed.subscribe());
        };
        let (sub, routes) = Subscription::named(seq, snapshot, replay, names.len());
        for (name, route) in names.into_iter().zip(routes) {
            let list = inner.routes.entry(name).or_default();
            // Forget clients that left since this user last changed.
            list.retain(|r| !r.is_closed());
            list.push(route);
        }
        sub
    }

    // ---- users -----------------------------------------------------------

    pub fn users(&self) -> Vec<User> {
        self.lock().users.values().cloned().collect()
    }

    pub fn user(&self, name: &str) -> Option<User> {
        self.lock().users.get(name).cloned()
    }

    /// Create (`create`) or replace a user.
    pub fn put_user(&self, user: User, create: bool) -> Result<User, PresenceError> {
        user.validate()?;
        let mut inner = self.lock();
        let exists = inner.users.contains_key(&user.username);
        if create && exists {
            return Err(PresenceError::Exists(user.username));
        }
        if !create && !exists {
            return Err(PresenceError::NotFound(user.username));
        }
        self.store.put_users(&[(
            user.username.clone(),
            serde_json::to_string(&user).expect("users serialise"),
        )])?;
        self.log.record(EventRecord {
            at_ms: now_ms(),
            kind: "user".into(),
            username: Some(user.username.clone()),
            instance: None,
            detail: if create { "created" } else { "updated" }.into(),
        });
        let name = user.username.clone();
        inner.users.insert(name.clone(), user.clone());
        self.reindex(&mut inner);
        self.recompute(&mut inner, &name, now_ms());
        Ok(user)
    }

    /// Import many users at once: all or nothing.
    pub fn import(
        &self,
        users: Vec<(usize, Result<User, RowError>)>,
    ) -> Result<usize, PresenceError> {
        let mut rejected = Vec::new();
        let mut seen = BTreeSet::new();
        let mut ok = Vec::new();
        for (row, u) in users {
            match u {
                Err(e) => rejected.push(e),
                Ok(u) => {
                    if let Err(e) = u.validate() {
                        rejected.push(RowError {
                            row,
                            field: e.field,
                            error: e.message,
                        });
                    } else if !seen.insert(u.username.clone()) {
                        rejected.push(RowError {
                            row,
                            field: "username".into(),
                            error: format!("{} appears twice in this import", u.username),
                        });
                    } else {
                        ok.push(u);
                    }
                }
            }
        }
        if !rejected.is_empty() {
            return Err(PresenceError::Rejected(rejected));
        }
        let rows: Vec<(String, String)> = ok
            .iter()
            .map(|u| {
                (
                    u.username.clone(),
                    serde_json::to_string(u).expect("users serialise"),
                )
            })
            .collect();
        self.store.put_users(&rows)?;
        let mut inner = self.lock();
        let n = ok.len();
        let names: Vec<String> = ok.iter().map(|u| u.username.clone()).collect();
        for u in ok {
            inner.users.insert(u.username.clone(), u);
        }
        self.log.record(EventRecord {
            at_ms: now_ms(),
            kind: "user".into(),
            username: None,
            instance: None,
            detail: format!("imported {n} users"),
        });
        self.reindex(&mut inner);
        // Only the imported users can look different now; the others are
        // not recomputed (with many users that holds the lock for long,
        // and reports wait for it).
        drop(inner);
        let now = now_ms();
        for slice in names.chunks(TICK_SLICE) {
            let mut inner = self.lock();
            for name in slice {
                self.recompute(&mut inner, name, now);
            }
        }
        Ok(n)
    }

    pub fn delete_user(&self, name: &str) -> Result<(), PresenceError> {
        if !self.store.delete_user(name)? {
            return Err(PresenceError::NotFound(name.into()));
        }
        let mut inner = self.lock();
        inner.users.remove(name);
        inner.notes.remove(name);
        inner.merged.remove(name);
        self.reindex(&mut inner);
        self.publish(
            &mut inner,
            FeedKind::Removed {
                username: name.to_string(),
            },
        );
        Ok(())
    }

    // ---- notes, force-subscribe -------------------------------------------

    /// Attach a note; every console sees it at once.
    pub fn add_note(&self, name: &str, mut note: Note) -> Result<Note, PresenceError> {
        if !self.lock().users.contains_key(name) {
            return Err(PresenceError::NotFound(name.into()));
        }
        if note.text.trim().is_empty() || note.text.len() > 2000 {
            return Err(UserError {
                field: "text".into(),
                message: "1-2000 characters".into(),
            }
            .into());
        }
        note.at_ms = now_ms();
        note.id = self.store.add_note(
            name,
            &serde_json::to_string(&note).expect("notes serialise"),
        )?;
        let mut inner = self.lock();
        inner
            .notes
            .entry(name.to_string())
            .or_default()
            .push(note.clone());
        self.log.record(EventRecord {
            at_ms: note.at_ms,
            kind: "note".into(),
            username: Some(name.to_string()),
            instance: None,
            detail: format!("note by {}: {}", note.author, note.text),
        });
        self.recompute(&mut inner, name, now_ms());
        Ok(note)
    }

    pub fn delete_note(&self, name: &str, id: i64) -> Result<(), PresenceError> {
        let mut inner = self.lock();
        let found = inner
            .notes
            .get(name)
            .is_some_and(|n| n.iter().any(|n| n.id == id));
        if !found {
            return Err(PresenceError::NotFound(format!("{name} note {id}")));
        }
        self.store.delete_note(id)?;
        if let Some(n) = inner.notes.get_mut(name) {
            n.retain(|n| n.id != id);
        }
        self.recompute(&mut inner, name, now_ms());
        Ok(())
    }

    /// The seeds' "subscribe" action: subscribe the user anew on every
    /// connector now, marked for one minute.
    pub fn force_subscribe(&self, name: &str) -> Result<u64, PresenceError> {
        let mut inner = self.lock();
        if !inner.users.contains_key(name) {
            return Err(PresenceError::NotFound(name.into()));
        }
        let until = now_ms() + FORCE_MS;
        inner.forced.insert(name.to_string(), until);
        // Dropping the user's endpoints from the watched sets and putting
        // them back makes each connector unsubscribe and subscribe again.
        if let Some(c) = self.connectors.get() {
            let srcs = inner.sources.get(name).cloned().unwrap_or_default();
            for (instance, ep, _) in srcs {
                if let Some(set) = inner.watches.get(&instance) {
                    let mut without = set.clone();
                    without.remove(&ep);
                    c.set_derived_watches(&instance, without);
                    c.set_derived_watches(&instance, set.clone());
                }
            }
        }
        self.log.record(EventRecord {
            at_ms: now_ms(),
            kind: "subscribe".into(),
            username: Some(name.to_string()),
            instance: None,
            detail: "force-subscribed for one minute".into(),
        });
        self.recompute(&mut inner, name, now_ms());
        Ok(until)
    }
}

impl ReportObserver for Presence {
    fn observed(&self, instance: &str, endpoint: &str, detail: String) {
        let now = now_ms();
        let mut inner = self.lock();
        let users = inner
            .index
            .get(&(instance.to_string(), endpoint.to_string()))
            .cloned()
            .unwrap_or_default();
        self.log.record(EventRecord {
            at_ms: now,
            kind: "report".into(),
            username: users.first().cloned(),
            instance: Some(instance.to_string()),
            detail: format!("{endpoint}: {detail}"),
        });
        for u in users {
            self.recompute(&mut inner, &u, now);
        }
    }

    fn decision(&self, instance: &str, endpoint: Option<&str>, kind: &str, detail: String) {
        let username = endpoint.and_then(|e| {
            self.lock()
                .index
                .get(&(instance.to_string(), e.to_string()))
                .and_then(|u| u.first().cloned())
        });
        self.log.record(EventRecord {
            at_ms: now_ms(),
            kind: kind.into(),
            username,
            instance: Some(instance.to_string()),
            detail,
        });
    }
}

#[cfg(test)]
mod tests;
