//! The one owner of presence state: users, every instance's observations
//! (the board), who watches what, merged presence and the feed's ring.
//!
//! It runs on a thread of its own and takes everything from its [`Inbox`]:
//! connectors' reports (already folded per endpoint), instance changes and
//! operators' commands. Per batch it applies the reports, recomputes each
//! touched user once ([`crate::engine::merge`]), publishes what changed to
//! the feed, and sends the changes of the watch sets to the runtime, one
//! way, as [`WatchChange`]s. Nothing else holds this state, so nothing here
//! takes a lock that a plugin's call could wait for.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc};

mod sync;

use super::command::Command;
use super::feed::{FeedEvent, FeedKind, Route, Subscription};
use super::inbox::{Event, Inbox, InstanceInfo, Pending, Queue};
use super::log::EventLog;
use super::{Note, PresenceError, SourceDetail, UserPresence, UserPresenceDetail, WatchChange};
use crate::engine::calendar;
use crate::engine::merge::{self, Merged, Rules, SinceRecord, SourceView};
use crate::engine::sync::{HoldRecord, Profile, SyncWrite, UserSync, WriteIds};
use crate::engine::users::{Channel, Mapping, User, canonical_attribute};
use crate::engine::{DirectoryEntry, EndpointView, InstanceBoard, PresenceReport, UpdateOrigin};
use crate::store::{EventRecord, now_ms};

/// How many feed events are kept for clients that resume.
const RING: usize = 20_000;
/// How long a force-subscribe lasts.
const FORCE_MS: u64 = 60_000;

type UserId = usize;
type InstanceId = usize;

/// One endpoint of one instance: what the instance observed of it, and who
/// watches it.
#[derive(Default)]
struct Endpoint {
    view: EndpointView,
    /// Users this endpoint is a source of.
    users: Vec<UserId>,
    /// The operator listed it in the instance's own watches.
    operator: bool,
    /// The runtime was last told to watch it.
    watched: bool,
}

impl Endpoint {
    fn wanted(&self) -> bool {
        self.operator || !self.users.is_empty()
    }
}

struct InstanceSlot {
    name: Arc<str>,
    /// `None`: no such connector (yet, or any more); reports are kept.
    info: Option<InstanceInfo>,
    mapping: Mapping,
    /// Keys are the interned endpoint names users' sources share.
    endpoints: HashMap<Arc<str>, Endpoint>,
    directory: Vec<DirectoryEntry>,
    /// The last page of the directory arrived (a directory sync reads only
    /// a whole one: a half-read one would look like people leaving).
    directory_complete: bool,
    /// What counts as a conversation here (the sync rules' profile).
    profile: Profile,
    /// Directory as lowercase email to endpoint.
    by_email: HashMap<String, String>,
    directory_changed: bool,
    /// The incarnation whose actor got the whole watch set.
    sent_incarnation: Option<u64>,
    /// Deleted by an operator (not merely not announced yet).
    removed: bool,
    add: Vec<Arc<str>>,
    remove: Vec<Arc<str>>,
}

/// Where one of a user's channels comes from.
#[derive(Clone, PartialEq)]
struct Source {
    instance: InstanceId,
    endpoint: Arc<str>,
    channel: Channel,
}

struct UserSlot {
    name: Arc<str>,
    user: Arc<User>,
    sources: Vec<Source>,
    merged: Option<Arc<UserPresence>>,
    reasons: Vec<String>,
    notes: Vec<Note>,
    forced_until_ms: Option<u64>,
    /// The hub's do-not-disturb holds on the user's platforms.
    sync: UserSync,
    /// When each state began as stored before a restart, until the same
    /// state is reported again (see [`merge::stamp`]).
    since_memory: SinceRecord,
    /// What is stored of when each state began.
    since_stored: SinceRecord,
}

/// The presence state and the one thread that changes it.
pub(super) struct Service {
    inbox: Inbox,
    log: Arc<EventLog>,
    feed: broadcast::Sender<Arc<FeedEvent>>,
    watches: mpsc::UnboundedSender<WatchChange>,
    /// Where the sync's writes go (to the runtime, one way).
    sync_writes: mpsc::UnboundedSender<SyncWrite>,
    write_ids: Arc<WriteIds>,
    /// The user each pending sync write is for.
    write_owner: HashMap<u64, UserId>,
    /// When a user's sync wants another look (retry, lease, grace).
    wakes: BTreeSet<(u64, UserId)>,
    sync_store: mpsc::UnboundedSender<(String, Option<Vec<HoldRecord>>)>,
    since_store: mpsc::UnboundedSender<(String, Option<SinceRecord>)>,
    rules: Rules,
    instances: Vec<InstanceSlot>,
    instance_ids: HashMap<Arc<str>, InstanceId>,
    users: Vec<Option<UserSlot>>,
    free: Vec<UserId>,
    by_name: BTreeMap<Arc<str>, UserId>,
    seq: u64,
    ring: VecDeque<Arc<FeedEvent>>,
    /// Feed clients that follow named users, by user.
    routes: HashMap<String, Vec<Route>>,
    /// Users to recompute at the end of the batch.
    dirty: HashSet<UserId>,
    /// Reports taken in per user since the last flush: all of them reach
    /// the feed as one change of that user (counted as coalesced).
    absorbed: HashMap<UserId, u64>,
    /// Endpoints whose watched flag may have to change.
    touched: HashSet<(InstanceId, Arc<str>)>,
    last_tick: u64,
    tick_every: Option<Duration>,
    /// Matchings of one user against one instance (work done for edits).
    derivations: u64,
}

/// What the service starts with (loaded from the store).
pub(super) struct Loaded {
    /// How often the service looks at the clock by itself (`None`: only
    /// when told, in tests that drive the clock).
    pub tick_every: Option<Duration>,
    pub rules: Rules,
    pub users: Vec<User>,
    pub notes: Vec<(String, Note)>,
    /// The sync's holds as the last run left them, by user.
    pub sync: Vec<(String, Vec<HoldRecord>)>,
    /// Where changed holds go to be stored (user, holds; none: forget).
    pub sync_store: mpsc::UnboundedSender<(String, Option<Vec<HoldRecord>>)>,
    /// When each user's states began, as the last run left them.
    pub since: Vec<(String, SinceRecord)>,
    /// Where changed start times go to be stored (user, record; none:
    /// forget).
    pub since_store: mpsc::UnboundedSender<(String, Option<SinceRecord>)>,
}

impl Service {
    pub fn new(
        loaded: Loaded,
        inbox: Inbox,
        log: Arc<EventLog>,
        feed: broadcast::Sender<Arc<FeedEvent>>,
        watches: mpsc::UnboundedSender<WatchChange>,
        sync_writes: mpsc::UnboundedSender<SyncWrite>,
        write_ids: Arc<WriteIds>,
    ) -> Self {
        let mut s = Self {
            inbox,
            log,
            feed,
            watches,
            sync_writes,
            write_ids,
            write_owner: HashMap::new(),
            wakes: BTreeSet::new(),
            sync_store: loaded.sync_store.clone(),
            since_store: loaded.since_store.clone(),
            rules: loaded.rules,
            instances: Vec::new(),
            instance_ids: HashMap::new(),
            users: Vec::new(),
            free: Vec::new(),
            by_name: BTreeMap::new(),
            // Sequence numbers stay increasing across restarts, so a client
            // resuming with an old number gets a fresh snapshot, never a
            // repeated number.
            seq: now_ms() * 1000,
            ring: VecDeque::new(),
            routes: HashMap::new(),
            dirty: HashSet::new(),
            absorbed: HashMap::new(),
            touched: HashSet::new(),
            last_tick: 0,
            tick_every: loaded.tick_every,
            derivations: 0,
        };
        for u in loaded.users {
            s.put_user(u);
        }
        for (name, note) in loaded.notes {
            if let Some(&id) = s.by_name.get(name.as_str()) {
                s.slot_mut(id).notes.push(note);
            }
        }
        for (name, record) in loaded.since {
            match s.by_name.get(name.as_str()) {
                Some(&id) => {
                    let slot = s.slot_mut(id);
                    slot.since_memory = record.clone();
                    slot.since_stored = record;
                }
                None => {
                    let _ = s.since_store.send((name, None));
                }
            }
        }
        let now = now_ms();
        for (name, records) in loaded.sync {
            match s.by_name.get(name.as_str()) {
                Some(&id) => {
                    let quiet = now + crate::timing::SYNC_RESTART_SETTLE.as_millis() as u64;
                    s.slot_mut(id).sync = UserSync::from_records(records, now, quiet);
                }
                None => {
                    let _ = s.sync_store.send((name, None));
                }
            }
        }
        s.flush(now_ms());
        s
    }

    /// Serve the inbox until it is closed.
    pub fn run(mut self) {
        // Without a tick of its own the service still wakes now and then.
        let every = self.tick_every.unwrap_or(Duration::from_secs(3600));
        let mut next_tick = Instant::now() + every;
        loop {
            let queue = self
                .inbox
                .take(self.next_wake().map_or(next_tick, |w| w.min(next_tick)));
            let closed = queue.closed;
            self.handle(queue);
            self.wake_due(now_ms());
            if Instant::now() >= next_tick {
                if self.tick_every.is_some() {
                    self.tick(now_ms());
                }
                next_tick = Instant::now() + every;
            }
            if closed {
                return;
            }
        }
    }

    fn handle(&mut self, queue: Queue) {
        let now = now_ms();
        for event in queue.events {
            match event {
                Event::Reports(reports) => {
                    for ((instance, endpoint), pending) in reports {
                        self.observe(&instance, endpoint, pending);
                    }
                }
                Event::Instance(info) => self.instance(info),
                Event::InstanceRemoved(id) => self.instance_removed(&id),
                Event::Running(id, running) => self.running(&id, running),
                Event::Directory {
                    instance,
                    entries,
                    first_page,
                    complete,
                } => self.directory(&instance, entries, first_page, complete),
                Event::Decision {
                    instance,
                    endpoint,
                    kind,
                    detail,
                } => {
                    let username = endpoint
                        .as_deref()
                        .and_then(|e| self.first_user(&instance, e));
                    self.log.record(EventRecord {
                        at_ms: now,
                        kind: kind.into(),
                        username,
                        instance: Some(instance.to_string()),
                        detail,
                    });
                }
                Event::WriteSettled { id, result } => self.write_settled(id, result, now),
                Event::Command(c) => self.command(c),
            }
        }
        // Reports sent after the last event.
        for ((instance, endpoint), pending) in queue.endpoints {
            self.observe(&instance, endpoint, pending);
        }
        for i in 0..self.instances.len() {
            if std::mem::take(&mut self.instances[i].directory_changed) {
                self.rederive_instance(i);
            }
        }
        self.flush(now);
    }

    // ---- slots ---------------------------------------------------------

    fn slot(&self, id: UserId) -> &UserSlot {
        self.users[id].as_ref().expect("live user id")
    }

    fn slot_mut(&mut self, id: UserId) -> &mut UserSlot {
        self.users[id].as_mut().expect("live user id")
    }

    fn instance_id(&mut self, name: &str) -> InstanceId {
        if let Some(&i) = self.instance_ids.get(name) {
            return i;
        }
        let name: Arc<str> = name.into();
        let i = self.instances.len();
        self.instances.push(InstanceSlot {
            name: name.clone(),
            info: None,
            mapping: Mapping::Kinds(Vec::new()),
            endpoints: HashMap::new(),
            directory: Vec::new(),
            directory_complete: false,
            profile: self.rules.sync.profile(&name),
            by_email: HashMap::new(),
            directory_changed: false,
            sent_incarnation: None,
            removed: false,
            add: Vec::new(),
            remove: Vec::new(),
        });
        self.instance_ids.insert(name, i);
        i
    }

    /// The endpoint's shared name, creating its entry.
    fn intern(&mut self, instance: InstanceId, endpoint: &str) -> Arc<str> {
        let eps = &mut self.instances[instance].endpoints;
        if let Some((k, _)) = eps.get_key_value(endpoint) {
            return k.clone();
        }
        let k: Arc<str> = endpoint.into();
        eps.insert(k.clone(), Endpoint::default());
        k
    }

    fn first_user(&self, instance: &str, endpoint: &str) -> Option<String> {
        let i = *self.instance_ids.get(instance)?;
        let e = self.instances[i].endpoints.get(endpoint)?;
        e.users.first().map(|&u| self.slot(u).name.to_string())
    }

    // ---- reports -------------------------------------------------------

    fn observe(&mut self, instance: &str, endpoint: String, pending: Pending) {
        let i = self.instance_id(instance);
        let key = self.intern(i, &endpoint);
        let Pending { reports, state } = pending;
        let mut details = Vec::new();
        let ep = self.instances[i]
            .endpoints
            .get_mut(&key)
            .expect("interned above");
        if let Some((state, detail, at_ms)) = state {
            let text = format!(
                "endpoint {}{}",
                crate::telemetry::term(&state),
                detail
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            );
            // A repeated state (a plugin may confirm it with every update)
            // changes nothing: no log entry, no recomputation.
            if ep.view.apply_state(state, detail, at_ms) {
                details.push((at_ms, text));
            }
        }
        let mut taken = 0;
        for (report, at_ms) in reports {
            let text = describe(&report);
            // Reports older than the last one (by source sequence) change
            // nothing.
            if ep.view.apply_report(report, at_ms) {
                details.push((at_ms, text));
                taken += 1;
            }
        }
        if details.is_empty() {
            return;
        }
        let users = ep.users.clone();
        for &u in &users {
            *self.absorbed.entry(u).or_default() += taken;
        }
        for (at_ms, detail) in details {
            self.log.record(EventRecord {
                at_ms,
                kind: "report".into(),
                username: users.first().map(|&u| self.slot(u).name.to_string()),
                instance: Some(instance.to_string()),
                detail: format!("{endpoint}: {detail}"),
            });
        }
        self.dirty.extend(users);
    }

    // ---- instances -----------------------------------------------------

    fn instance(&mut self, info: InstanceInfo) {
        let i = self.instance_id(&info.id);
        let mut info = info;
        // Once an actor has the instance, it alone says whether it runs
        // (`Running`); the runtime's word counts for a new actor only.
        if let Some(old) = &self.instances[i].info
            && old.incarnation == info.incarnation
        {
            info.running = old.running;
        }
        self.instances[i].removed = false;
        let old = self.instances[i].info.replace(info.clone());
        let mapping_changed = old
            .as_ref()
            .is_none_or(|o| o.plugin != info.plugin || o.endpoint_kinds != info.endpoint_kinds);
        if old.as_ref().is_none_or(|o| o.running != info.running) {
            self.dirty_instance(i);
        }
        let old_ops: BTreeSet<String> = old
            .map(|o| o.operator_watches.into_iter().collect())
            .unwrap_or_default();
        let new_ops: BTreeSet<String> = info.operator_watches.iter().cloned().collect();
        for e in old_ops.difference(&new_ops) {
            let eps = &mut self.instances[i].endpoints;
            if let Some(k) = eps.get_key_value(e.as_str()).map(|(k, _)| k.clone()) {
                eps.get_mut(&k).expect("present").operator = false;
                self.touched.insert((i, k));
            }
        }
        for e in new_ops.difference(&old_ops) {
            let k = self.intern(i, e);
            self.instances[i]
                .endpoints
                .get_mut(&k)
                .expect("interned")
                .operator = true;
            self.touched.insert((i, k));
        }
        if mapping_changed {
            self.instances[i].mapping = self.mapping_for(i);
            self.rederive_instance(i);
        }
    }

    fn instance_removed(&mut self, id: &str) {
        let Some(&i) = self.instance_ids.get(id) else {
            return;
        };
        let slot = &mut self.instances[i];
        slot.info = None;
        slot.removed = true;
        slot.sent_incarnation = None;
        slot.directory.clear();
        slot.directory_complete = false;
        slot.by_email.clear();
        slot.add.clear();
        slot.remove.clear();
        let endpoints = std::mem::take(&mut slot.endpoints);
        let mut users: HashSet<UserId> = HashSet::new();
        for ep in endpoints.values() {
            users.extend(ep.users.iter().copied());
        }
        self.touched.retain(|(inst, _)| *inst != i);
        for u in users {
            let slot = self.slot_mut(u);
            slot.sources.retain(|s| s.instance != i);
            self.dirty.insert(u);
        }
    }

    fn running(&mut self, id: &str, running: bool) {
        let Some(&i) = self.instance_ids.get(id) else {
            return;
        };
        if let Some(info) = &mut self.instances[i].info
            && info.running != running
        {
            info.running = running;
            self.dirty_instance(i);
        }
    }

    fn dirty_instance(&mut self, i: InstanceId) {
        for ep in self.instances[i].endpoints.values() {
            self.dirty.extend(ep.users.iter().copied());
        }
    }

    fn directory(
        &mut self,
        instance: &str,
        entries: Vec<DirectoryEntry>,
        first_page: bool,
        complete: bool,
    ) {
        let i = self.instance_id(instance);
        let slot = &mut self.instances[i];
        slot.directory_complete = complete;
        if first_page {
            slot.directory.clear();
            slot.by_email.clear();
        }
        for d in &entries {
            if let Some(email) = &d.email {
                slot.by_email
                    .insert(email.to_ascii_lowercase(), d.endpoint.clone());
            }
        }
        slot.directory.extend(entries);
        // Pages arrive in bursts: the users are matched again once per
        // batch, not once per page.
        slot.directory_changed = true;
    }

    /// How an instance maps users to endpoints: the attribute the operator
    /// picked, else the plugin's endpoint kinds, else `username`. No plugin
    /// is known here by name.
    fn mapping_for(&self, i: InstanceId) -> Mapping {
        let slot = &self.instances[i];
        let kinds = slot
            .info
            .as_ref()
            .map(|i| i.endpoint_kinds.clone())
            .unwrap_or_default();
        let picked = self
            .rules
            .instance_fields
            .get(&*slot.name)
            .map(|a| canonical_attribute(a));
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
            None => Mapping::Kinds(kinds),
        }
    }

    // ---- who watches what ---------------------------------------------

    /// A user's sources on instance `i`, as its mapping and directory say.
    fn derive(&mut self, user: UserId, i: InstanceId) -> Vec<Source> {
        let slot = &self.instances[i];
        if slot.info.is_none() {
            return Vec::new();
        }
        self.derivations += 1;
        let found = self
            .slot(user)
            .user
            .endpoints_for(&slot.name, &slot.mapping, |email| {
                slot.by_email.get(email).cloned()
            });
        found
            .into_iter()
            .map(|(ep, channel)| Source {
                instance: i,
                endpoint: self.intern(i, &ep),
                channel,
            })
            .collect()
    }

    /// Replace a user's sources, keeping the endpoints' user lists in step.
    /// Sources are ordered by instance name, as the merge expects them.
    fn set_sources(&mut self, user: UserId, mut sources: Vec<Source>) {
        sources.sort_by(|a, b| {
            self.instances[a.instance]
                .name
                .cmp(&self.instances[b.instance].name)
        });
        let old = std::mem::take(&mut self.slot_mut(user).sources);
        if old == sources {
            self.slot_mut(user).sources = old;
            return;
        }
        for s in old.iter().filter(|s| !sources.contains(s)) {
            if let Some(ep) = self.instances[s.instance].endpoints.get_mut(&s.endpoint) {
                ep.users.retain(|&u| u != user);
            }
            self.touched.insert((s.instance, s.endpoint.clone()));
        }
        for s in sources.iter().filter(|s| !old.contains(s)) {
            if let Some(ep) = self.instances[s.instance].endpoints.get_mut(&s.endpoint)
                && !ep.users.contains(&user)
            {
                ep.users.push(user);
            }
            self.touched.insert((s.instance, s.endpoint.clone()));
        }
        self.slot_mut(user).sources = sources;
        self.dirty.insert(user);
    }

    /// Match one user against every instance: work in proportion to that
    /// user, not to all users.
    fn rederive_user(&mut self, user: UserId) {
        let mut sources = Vec::new();
        for i in 0..self.instances.len() {
            sources.extend(self.derive(user, i));
        }
        self.set_sources(user, sources);
    }

    /// Match every user against instance `i` (its mapping or directory
    /// changed).
    fn rederive_instance(&mut self, i: InstanceId) {
        let ids: Vec<UserId> = self.by_name.values().copied().collect();
        for u in ids {
            let mut sources: Vec<Source> = self
                .slot(u)
                .sources
                .iter()
                .filter(|s| s.instance != i)
                .cloned()
                .collect();
            sources.extend(self.derive(u, i));
            self.set_sources(u, sources);
        }
    }

    /// Tell the runtime what to watch now: the whole set to an instance's
    /// new actor, the difference to the others.
    fn send_watches(&mut self) {
        for (i, key) in std::mem::take(&mut self.touched) {
            let slot = &mut self.instances[i];
            let Some(ep) = slot.endpoints.get_mut(&key) else {
                continue;
            };
            let wanted = ep.wanted();
            if wanted != ep.watched {
                ep.watched = wanted;
                if wanted {
                    slot.add.push(key.clone());
                } else {
                    slot.remove.push(key.clone());
                }
            }
            // Nothing left to keep of an endpoint nobody watches and that
            // never reported.
            if !wanted && ep.view == EndpointView::default() {
                slot.endpoints.remove(&key);
            }
        }
        for slot in &mut self.instances {
            let Some(info) = &slot.info else { continue };
            let add = std::mem::take(&mut slot.add);
            let remove = std::mem::take(&mut slot.remove);
            let change = if slot.sent_incarnation != Some(info.incarnation) {
                slot.sent_incarnation = Some(info.incarnation);
                WatchChange {
                    instance: slot.name.to_string(),
                    replace: true,
                    add: slot
                        .endpoints
                        .iter()
                        .filter(|(_, e)| e.watched)
                        .map(|(k, _)| k.clone())
                        .collect(),
                    remove: Vec::new(),
                }
            } else if add.is_empty() && remove.is_empty() {
                continue;
            } else {
                WatchChange {
                    instance: slot.name.to_string(),
                    replace: false,
                    add,
                    remove,
                }
            };
            let _ = self.watches.send(change);
        }
    }

    // ---- merging -------------------------------------------------------

    /// A user's merged presence (stamped with when each state began), the
    /// merge's reasons, and what is left of the user's remembered start
    /// times once this presence is taken.
    fn compute(&self, user: UserId, now: u64) -> (UserPresence, Vec<String>, SinceRecord) {
        let slot = self.slot(user);
        let mut rich = Vec::new();
        let mut tel = Vec::new();
        // Any of the user's sources may carry the calendar channel (a
        // calendar connector maps like a rich one).
        let mut calendar_sources = Vec::new();
        for s in &slot.sources {
            let inst = &self.instances[s.instance];
            let (technology, running) = inst
                .info
                .as_ref()
                .map_or(("", false), |i| (i.plugin.as_str(), i.running));
            let view = SourceView {
                instance: &inst.name,
                technology,
                endpoint: &s.endpoint,
                observed: inst.endpoints.get(&s.endpoint).map(|e| &e.view),
                connector_ok: running,
            };
            calendar_sources.push(view.clone());
            // A source that reports a calendar and never a rich presence
            // (a calendar connector) is no rich source: with no presence
            // source the user's rich channel is not configured, not
            // unknown.
            let calendar_only = view
                .observed
                .is_some_and(|o| o.calendar.is_some() && o.rich.is_none());
            match s.channel {
                Channel::Rich if calendar_only => {}
                Channel::Rich => rich.push(view),
                Channel::Telephony => tel.push(view),
                Channel::Both => {
                    rich.push(view.clone());
                    tel.push(view);
                }
            }
        }
        let u = &slot.user;
        let calendar = calendar::day_view(&calendar_sources, &self.rules, now);
        let Merged {
            mut telephony,
            mut rich,
            reasons,
        } = merge::merge(&rich, &tel, u.voicemail_number.as_deref(), &self.rules, now);
        let mut memory = slot.since_memory.clone();
        merge::stamp(
            slot.merged.as_deref().map(|m| (&m.telephony, &m.rich)),
            &mut telephony,
            &mut rich,
            &mut memory,
            now,
        );
        let since_ms = rich.since_ms.max(telephony.since_ms);
        let p = UserPresence {
            username: slot.name.to_string(),
            display_name: u.display_name.clone(),
            department: u.department.clone(),
            extension: u.extension.clone(),
            telephony,
            rich,
            notes: slot
                .notes
                .iter()
                .filter(|n| n.expires_at_ms.is_none_or(|e| e > now))
                .cloned()
                .collect(),
            forced_until_ms: slot.forced_until_ms,
            calendar,
            since_ms,
        };
        (p, reasons, memory)
    }

    /// Recompute one user; publish a feed event when it changed (and say
    /// whether it did).
    fn recompute(&mut self, user: UserId, now: u64) -> bool {
        if self.users.get(user).is_none_or(Option::is_none) {
            return false;
        }
        let (p, reasons, memory) = self.compute(user, now);
        let slot = self.slot(user);
        if slot.merged.as_deref() == Some(&p) {
            return false;
        }
        let stored = merge::remember(&slot.since_stored, &p.telephony, &p.rich);
        if stored != slot.since_stored {
            let _ = self
                .since_store
                .send((slot.name.to_string(), Some(stored.clone())));
        }
        let slot = self.slot_mut(user);
        slot.since_memory = memory;
        slot.since_stored = stored;
        let slot = self.slot(user);
        let name = slot.name.to_string();
        // A user's first merge (at start, at an import) is no decision
        // worth a log line; every change after it is.
        let first = slot.merged.is_none();
        if !first && !reasons.is_empty() && slot.reasons != reasons {
            for r in &reasons {
                self.log.record(EventRecord {
                    at_ms: now,
                    kind: "decision".into(),
                    username: Some(name.clone()),
                    instance: None,
                    detail: r.clone(),
                });
            }
        }
        if !first {
            self.log.record(EventRecord {
                at_ms: now,
                kind: "decision".into(),
                username: Some(name),
                instance: p.rich.source.clone().or(p.telephony.source.clone()),
                detail: format!(
                    "merged: rich {} (from {}), telephony {} (from {})",
                    p.rich.state.as_str(),
                    p.rich.source.as_deref().unwrap_or("-"),
                    p.telephony.state.as_str(),
                    p.telephony.source.as_deref().unwrap_or("-")
                ),
            });
        }
        let p = Arc::new(p);
        let slot = self.slot_mut(user);
        slot.merged = Some(p.clone());
        slot.reasons = reasons;
        self.publish(FeedKind::Presence(p));
        true
    }

    /// Recompute the users the batch touched and send the watch changes.
    fn flush(&mut self, now: u64) {
        // In name order, so a batch's feed events come in a stable order.
        let mut dirty: Vec<(Arc<str>, UserId)> = std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|u| Some((self.users.get(u)?.as_ref()?.name.clone(), u)))
            .collect();
        dirty.sort_unstable();
        let coalesced = self.inbox.counters().coalesced.clone();
        for (_, u) in dirty {
            let taken = self.absorbed.remove(&u).unwrap_or(0);
            let published = self.recompute(u, now);
            // Several reports of one user in one batch make one change in
            // the feed: all but the one it shows were superseded. With no
            // change at all, two or more reports undid each other.
            coalesced.inc_by(match (published, taken) {
                (true, n) => n.saturating_sub(1),
                (false, n) if n >= 2 => n,
                (false, _) => 0,
            });
            self.sync(u, &[], now);
        }
        self.absorbed.clear();
        self.send_watches();
    }

    fn publish(&mut self, kind: FeedKind) {
        self.seq += 1;
        let ev = Arc::new(FeedEvent::new(self.seq, kind));
        self.ring.push_back(ev.clone());
        if self.ring.len() > RING {
            self.ring.pop_front();
        }
        // Clients that follow this user by name; a finished route (client
        // gone, or too far behind: it gets a resync) is dropped.
        let user = ev.kind.username();
        if let Some(routes) = self.routes.get_mut(user) {
            routes.retain(|r| r.offer(&ev));
            if routes.is_empty() {
                self.routes.remove(user);
            }
        }
        // Clients that follow everyone. No receivers is fine; slow ones lag
        // and are cut off by the feed.
        let _ = self.feed.send(ev);
    }

    /// Age sources out, end force-subscribes and expired notes. Only users
    /// whose presence time can have changed since the last tick are
    /// recomputed (everyone at the first tick).
    pub(super) fn tick(&mut self, now: u64) {
        let last = std::mem::replace(&mut self.last_tick, now);
        if last == 0 {
            self.dirty.extend(self.by_name.values().copied());
        } else {
            let stale = self.rules.stale_after_seconds.map(|s| s * 1000);
            for slot in &self.instances {
                for ep in slot.endpoints.values() {
                    if ep.users.is_empty() {
                        continue;
                    }
                    let v = &ep.view;
                    // A declared validity lapses at its own time; under an
                    // operator's limit a source is fresh while
                    // now - received <= stale.
                    let lapsed = v.valid_until_ms.is_some_and(|t| t >= last && t <= now);
                    // A meeting starts or ends, an out-of-office reply
                    // begins or runs out: the day view changes by time.
                    let calendar_turned = v
                        .calendar
                        .as_ref()
                        .is_some_and(|c| calendar::boundaries(c).any(|t| t > last && t <= now));
                    let aged = stale.is_some_and(|stale| {
                        v.received_at_ms.is_some_and(|t| {
                            t >= last.saturating_sub(stale + 1) && t <= now.saturating_sub(stale)
                        })
                    });
                    if lapsed || aged || calendar_turned {
                        self.dirty.extend(ep.users.iter().copied());
                    }
                }
            }
            for (id, slot) in self.users.iter().enumerate() {
                let Some(slot) = slot else { continue };
                let forced_ended = slot.forced_until_ms.is_some_and(|t| t <= now);
                let note_ended = slot
                    .notes
                    .iter()
                    .any(|n| n.expires_at_ms.is_some_and(|e| e >= last && e <= now));
                if forced_ended || note_ended {
                    self.dirty.insert(id);
                }
            }
        }
        // Forget feed clients that left while following users who did not
        // change since.
        self.routes.retain(|_, routes| {
            routes.retain(|r| !r.is_closed());
            !routes.is_empty()
        });
        let ended: Vec<UserId> = self
            .dirty
            .iter()
            .copied()
            .filter(|&u| {
                self.users[u]
                    .as_ref()
                    .is_some_and(|s| s.forced_until_ms.is_some_and(|t| t <= now))
            })
            .collect();
        for u in ended {
            self.slot_mut(u).forced_until_ms = None;
        }
        self.flush(now);
    }

    // ---- users ---------------------------------------------------------

    fn put_user(&mut self, user: User) {
        let id = match self.by_name.get(user.username.as_str()) {
            Some(&id) => {
                self.slot_mut(id).user = Arc::new(user);
                id
            }
            None => {
                let name: Arc<str> = user.username.as_str().into();
                let slot = UserSlot {
                    name: name.clone(),
                    user: Arc::new(user),
                    sources: Vec::new(),
                    merged: None,
                    reasons: Vec::new(),
                    notes: Vec::new(),
                    forced_until_ms: None,
                    sync: UserSync::default(),
                    since_memory: SinceRecord::default(),
                    since_stored: SinceRecord::default(),
                };
                let id = match self.free.pop() {
                    Some(id) => {
                        self.users[id] = Some(slot);
                        id
                    }
                    None => {
                        self.users.push(Some(slot));
                        self.users.len() - 1
                    }
                };
                self.by_name.insert(name, id);
                id
            }
        };
        self.rederive_user(id);
        self.dirty.insert(id);
    }

    fn delete_user(&mut self, name: &str) {
        let Some(&id) = self.by_name.get(name) else {
            return;
        };
        // The hub's DND goes with the user: with no platforms left the
        // sync lifts what it holds.
        self.sync_step(id, &[], now_ms(), false);
        let _ = self.sync_store.send((name.to_string(), None));
        let _ = self.since_store.send((name.to_string(), None));
        self.by_name.remove(name);
        self.write_owner.retain(|_, u| *u != id);
        self.set_sources(id, Vec::new());
        self.dirty.remove(&id);
        self.users[id] = None;
        self.free.push(id);
        self.publish(FeedKind::Removed {
            username: name.to_string(),
        });
    }

    fn user_id(&self, name: &str) -> Option<UserId> {
        self.by_name.get(name).copied()
    }

    // ---- commands ------------------------------------------------------

    fn command(&mut self, c: Command) {
        let now = now_ms();
        match c {
            Command::PutUsers(users, reply) => {
                for u in users {
                    self.put_user(u);
                }
                self.flush(now);
                let _ = reply.send(());
            }
            Command::DeleteUser(name, reply) => {
                self.delete_user(&name);
                self.flush(now);
                let _ = reply.send(());
            }
            Command::SetRules(rules, reply) => {
                self.rules = rules;
                for i in 0..self.instances.len() {
                    let mapping = self.mapping_for(i);
                    self.instances[i].mapping = mapping;
                    self.instances[i].profile = self.rules.sync.profile(&self.instances[i].name);
                }
                let ids: Vec<UserId> = self.by_name.values().copied().collect();
                for u in ids {
                    self.rederive_user(u);
                    self.dirty.insert(u);
                }
                self.flush(now);
                let _ = reply.send(());
            }
            Command::AddNote(name, note, reply) => {
                if let Some(u) = self.user_id(&name) {
                    self.slot_mut(u).notes.push(note);
                    self.dirty.insert(u);
                }
                self.flush(now);
                let _ = reply.send(());
            }
            Command::DeleteNote(name, id, reply) => {
                if let Some(u) = self.user_id(&name) {
                    self.slot_mut(u).notes.retain(|n| n.id != id);
                    self.dirty.insert(u);
                }
                self.flush(now);
                let _ = reply.send(());
            }
            Command::ForceSubscribe(name, reply) => {
                let _ = reply.send(self.force_subscribe(&name, now));
            }
            Command::Snapshot(names, reply) => {
                self.flush(now);
                let _ = reply.send((self.seq, self.merged(names.as_ref())));
            }
            Command::Detail(name, reply) => {
                self.flush(now);
                let _ = reply.send(self.user_id(&name).map(|u| self.detail(u, now)));
            }
            Command::Subscribe {
                names,
                since,
                reply,
            } => {
                self.flush(now);
                let _ = reply.send(self.subscribe(names, since));
            }
            Command::Users(reply) => {
                let _ = reply.send(
                    self.by_name
                        .values()
                        .map(|&u| self.slot(u).user.clone())
                        .collect(),
                );
            }
            Command::User(name, reply) => {
                let _ = reply.send(self.user_id(&name).map(|u| (*self.slot(u).user).clone()));
            }
            Command::HasNote(name, id, reply) => {
                let _ = reply.send(
                    self.user_id(&name)
                        .is_some_and(|u| self.slot(u).notes.iter().any(|n| n.id == id)),
                );
            }
            Command::Observations(instance, reply) => {
                let board = self
                    .instance_ids
                    .get(instance.as_str())
                    .map(|&i| {
                        let slot = &self.instances[i];
                        InstanceBoard {
                            endpoints: slot
                                .endpoints
                                .iter()
                                .filter(|(_, e)| e.view != EndpointView::default())
                                .map(|(k, e)| (k.to_string(), e.view.clone()))
                                .collect(),
                            directory: slot.directory.clone(),
                        }
                    })
                    .unwrap_or_default();
                let _ = reply.send(board);
            }
            Command::Directory(instance, reply) => {
                let dir = self.instance_ids.get(instance.as_str()).map(|&i| {
                    let slot = &self.instances[i];
                    super::InstanceDirectory {
                        entries: slot.directory.clone(),
                        complete: slot.directory_complete,
                    }
                });
                let _ = reply.send(dir);
            }
            #[cfg(test)]
            Command::Tick(at, reply) => {
                self.tick(at);
                let _ = reply.send(());
            }
            #[cfg(test)]
            Command::Derivations(reply) => {
                let _ = reply.send(self.derivations);
            }
        }
    }

    fn merged(&self, names: Option<&BTreeSet<String>>) -> Vec<Arc<UserPresence>> {
        let pick = |u: UserId| self.slot(u).merged.clone();
        match names {
            None => self.by_name.values().filter_map(|&u| pick(u)).collect(),
            Some(names) => names
                .iter()
                .filter_map(|n| self.user_id(n))
                .filter_map(pick)
                .collect(),
        }
    }

    fn detail(&self, user: UserId, now: u64) -> UserPresenceDetail {
        let (presence, reasons, _) = self.compute(user, now);
        let sources = self
            .slot(user)
            .sources
            .iter()
            .map(|s| {
                let inst = &self.instances[s.instance];
                let (technology, running) = inst
                    .info
                    .as_ref()
                    .map_or((String::new(), false), |i| (i.plugin.clone(), i.running));
                SourceDetail {
                    instance: inst.name.to_string(),
                    technology,
                    endpoint: s.endpoint.to_string(),
                    channel: match s.channel {
                        Channel::Rich => "rich",
                        Channel::Telephony => "telephony",
                        Channel::Both => "both",
                    },
                    running,
                    observed: inst.endpoints.get(&s.endpoint).map(|e| e.view.clone()),
                }
            })
            .collect();
        UserPresenceDetail {
            presence,
            sources,
            reasons,
            sync: self.sync_detail(user, now),
        }
    }

    /// Follow the feed: replay after `since` when possible, else a snapshot.
    fn subscribe(&mut self, names: Option<BTreeSet<String>>, since: Option<u64>) -> Subscription {
        let oldest = self.ring.front().map(|e| e.seq);
        let replay = match since {
            Some(s) if s == self.seq => Some(Vec::new()),
            Some(s) if s < self.seq && oldest.is_some_and(|o| o <= s + 1) => Some(
                self.ring
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
            None => Some(self.merged(names.as_ref())),
        };
        let (seq, replay) = (self.seq, replay.unwrap_or_default());
        let folded = self.inbox.counters().feed_folded.clone();
        let Some(names) = names else {
            return Subscription::all(seq, snapshot, replay, self.feed.subscribe())
                .count_folded(folded);
        };
        let (sub, routes) = Subscription::named(seq, snapshot, replay, names.len());
        let sub = sub.count_folded(folded);
        for (name, route) in names.into_iter().zip(routes) {
            let list = self.routes.entry(name).or_default();
            // Forget clients that left since this user last changed.
            list.retain(|r| !r.is_closed());
            list.push(route);
        }
        sub
    }

    /// The seeds' "subscribe" action: subscribe the user anew on every
    /// connector now, marked for one minute.
    fn force_subscribe(&mut self, name: &str, now: u64) -> Result<u64, PresenceError> {
        let u = self
            .user_id(name)
            .ok_or_else(|| PresenceError::NotFound(name.into()))?;
        // Watch changes decided before this one go first.
        self.flush(now);
        let until = now + FORCE_MS;
        self.slot_mut(u).forced_until_ms = Some(until);
        // Dropping the user's endpoints from the watched sets and putting
        // them back makes each connector unsubscribe and subscribe again.
        for s in self.slot(u).sources.clone() {
            let slot = &self.instances[s.instance];
            let watched = slot.endpoints.get(&s.endpoint).is_some_and(|e| e.watched);
            if slot.info.is_none() || !watched {
                continue;
            }
            for (add, remove) in [
                (vec![], vec![s.endpoint.clone()]),
                (vec![s.endpoint], vec![]),
            ] {
                let _ = self.watches.send(WatchChange {
                    instance: slot.name.to_string(),
                    replace: false,
                    add,
                    remove,
                });
            }
        }
        self.log.record(EventRecord {
            at_ms: now,
            kind: "subscribe".into(),
            username: Some(name.to_string()),
            instance: None,
            detail: "force-subscribed for one minute".into(),
        });
        self.dirty.insert(u);
        self.flush(now);
        Ok(until)
    }
}

/// A report in one line for the event log, in the API's words
/// (`telephony in-call`, `rich busy in-a-call`).
fn describe(r: &PresenceReport) -> String {
    use crate::telemetry::term;
    let mut parts = Vec::new();
    match &r.origin {
        UpdateOrigin::Platform => {}
        UpdateOrigin::HubWrite { write_id } => parts.push(format!("echo of hub write {write_id}")),
        UpdateOrigin::ConnectorRule { rule } => {
            parts.push(format!("caused by the connector's rule {rule:?}"))
        }
    }
    if let Some(c) = &r.calendar {
        parts.push(format!(
            "calendar {} items{}",
            c.items.len(),
            if c.out_of_office.is_some() {
                ", out of office"
            } else {
                ""
            }
        ));
    }
    if let Some(t) = &r.telephony {
        parts.push(format!(
            "telephony {}{}{}",
            term(&t.line),
            if t.do_not_disturb {
                " do-not-disturb"
            } else {
                ""
            },
            t.forward
                .as_ref()
                .map(|f| format!(" forwarded to {}", term(f)))
                .unwrap_or_default()
        ));
    }
    if let Some(x) = &r.rich {
        parts.push(format!(
            "rich {}{}{}",
            term(&x.availability),
            x.activity
                .as_ref()
                .map(|a| format!(" {}", term(a)))
                .unwrap_or_default(),
            x.note
                .as_ref()
                .map(|n| format!(" note {:?}", n.chars().take(80).collect::<String>()))
                .unwrap_or_default()
        ));
    }
    parts.join("; ")
}
