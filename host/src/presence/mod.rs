//! The live presence service: users and their endpoints, every connector
//! instance's observations, the merged presence of every user (computed by
//! [`crate::engine::merge`]), notes, the live feed and the event log.
//!
//! One path, one direction: a connector's report goes into the [`Inbox`]
//! (the guest's import returns at once), the service's own thread
//! ([`service`]) applies it, recomputes the user and publishes to the feed;
//! which endpoints each instance must watch leaves as [`WatchChange`]s for
//! the runtime. [`Presence`] is the operators' handle: it writes the store
//! and then tells the service.

mod command;
mod feed;
mod inbox;
mod log;
mod service;

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot};

pub use feed::{FeedEvent, FeedKind, Next, Route, Subscription};
pub use inbox::{Inbox, InstanceInfo, Relayed};
pub use log::EventLog;

use crate::engine::EndpointView;
use crate::engine::InstanceBoard;
use crate::engine::merge::{RichOut, Rules, TelephonyOut};
use crate::engine::sync::{HoldRecord, SyncWrite, WriteIds};
use crate::engine::users::{ImportMode, ImportReport, ImportRow, User, UserError};
use crate::store::{EventRecord, KvWrite, Store, StoreError, now_ms};
use crate::telemetry::PresenceCounters;
use command::Command;
use service::{Loaded, Service};

/// A change of what one instance must watch, from the presence service to
/// the runtime. With `replace` the instance's actor is new: `add` is the
/// whole set and anything else it watches goes.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchChange {
    pub instance: String,
    pub replace: bool,
    pub add: Vec<Arc<str>>,
    pub remove: Vec<Arc<str>>,
}

/// A connector instance's directory (`directory` in the WIT contract).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceDirectory {
    pub entries: Vec<crate::engine::DirectoryEntry>,
    /// Its last page arrived: the whole directory is here.
    pub complete: bool,
}

/// An operator's note on a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Note {
    #[serde(default)]
    pub id: i64,
    pub text: String,
    pub author: String,
    pub at_ms: u64,
    pub expires_at_ms: Option<u64>,
}

/// One user's merged presence as consoles see it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
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
    /// The person's day beside their presence (never overriding it): the
    /// item in progress, when they are free again, the next item, an
    /// out-of-office reply in force. None when no connector reports a
    /// calendar for them.
    pub calendar: Option<crate::engine::calendar::CalendarOut>,
    /// When the user's presence as a whole (rich or telephony state) last
    /// changed, ms since the Unix epoch: the later of `rich.since_ms` and
    /// `telephony.since_ms`.
    pub since_ms: Option<u64>,
}

/// A user's presence with every source's own report.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserPresenceDetail {
    #[serde(flatten)]
    pub presence: UserPresence,
    pub sources: Vec<SourceDetail>,
    pub reasons: Vec<String>,
    pub sync: SyncDetail,
}

/// A user's bidirectional sync: whether it is on, and per platform what
/// the hub holds there and why.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SyncDetail {
    pub enabled: bool,
    pub platforms: Vec<crate::engine::sync::PlatformSync>,
}

/// What leaves the presence service for the runtime, one way: watch
/// changes and the sync's writes.
pub struct Flows {
    pub watches: mpsc::UnboundedReceiver<WatchChange>,
    pub writes: mpsc::UnboundedReceiver<SyncWrite>,
}

/// One source's view of a user.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
    /// An identifier (extension, SIP URI, UPN, email) another user holds.
    #[error("{0}")]
    Clash(crate::engine::users::Clash),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The presence service has stopped (the hub is shutting down).
    #[error("the presence service is not running; retry once the hub is up")]
    Stopped,
    /// Bulk import: every rejected row; nothing was imported.
    #[error("{} rows rejected; nothing was imported", .0.len())]
    Rejected(Vec<RowError>),
}

/// Why one import row was rejected.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RowError {
    /// 1-based row (CSV: after the header line).
    pub row: usize,
    pub field: String,
    pub error: String,
}

const RULES_KEY: &str = "rules";
/// The key-value namespace of the sync's holds (not an instance id).
const SYNC_NAMESPACE: &str = "#sync";
/// The key-value namespace of when each user's states began.
const SINCE_NAMESPACE: &str = "#since";

/// The writer of the sync's holds: the latest of each user, in batches,
/// off the service's thread.
fn store_sync(store: Arc<dyn Store>) -> mpsc::UnboundedSender<(String, Option<Vec<HoldRecord>>)> {
    store_latest(store, SYNC_NAMESPACE)
}

/// A writer of one JSON record per user into `namespace`: the latest of
/// each user, in batches, off the service's thread.
fn store_latest<T: Serialize + Send + 'static>(
    store: Arc<dyn Store>,
    namespace: &'static str,
) -> mpsc::UnboundedSender<(String, Option<T>)> {
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, Option<T>)>();
    tokio::spawn(async move {
        let mut batch = Vec::new();
        while rx.recv_many(&mut batch, 1000).await > 0 {
            let latest: std::collections::BTreeMap<_, _> = batch.drain(..).collect();
            let writes: Vec<KvWrite> = latest
                .into_iter()
                .map(|(key, records)| match records {
                    Some(r) => KvWrite::Set {
                        key,
                        value: serde_json::to_vec(&r).unwrap_or_default(),
                    },
                    None => KvWrite::Delete { key },
                })
                .collect();
            let s = store.clone();
            if let Ok(Err(e)) =
                tokio::task::spawn_blocking(move || s.kv_write(namespace, &writes)).await
            {
                tracing::warn!(error = %e, namespace, "storing per-user records failed");
            }
        }
    });
    tx
}

/// The operators' handle on the presence service.
pub struct Presence {
    inbox: Inbox,
    store: Arc<dyn Store>,
    log: Arc<EventLog>,
    /// Store writes and the service's view of them happen in one order:
    /// one edit at a time.
    edits: tokio::sync::Mutex<()>,
    /// The rules the service merges with, as of the last edit: read
    /// without a round trip, so an API call that only reads them answers
    /// while the service works through a burst (a takeover re-merges every
    /// user of the instances taken over).
    rules: std::sync::RwLock<Arc<Rules>>,
}

fn corrupt(what: String, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        what,
        message: e.to_string(),
    }
}

impl Presence {
    /// Load users, notes and rules, and start the service's thread. The
    /// flows carry the watch changes and sync writes the runtime must
    /// apply; write ids come from `write_ids`, shared with the runtime's
    /// own writes.
    pub fn open(
        store: Arc<dyn Store>,
        counters: PresenceCounters,
        write_ids: Arc<WriteIds>,
    ) -> Result<(Arc<Self>, Flows), StoreError> {
        Self::open_ticking(
            store,
            counters,
            write_ids,
            Some(crate::timing::PRESENCE_TICK),
        )
    }

    fn open_ticking(
        store: Arc<dyn Store>,
        counters: PresenceCounters,
        write_ids: Arc<WriteIds>,
        tick_every: Option<std::time::Duration>,
    ) -> Result<(Arc<Self>, Flows), StoreError> {
        let rules = match store.setting(RULES_KEY)? {
            Some(r) => serde_json::from_str(&r).map_err(|e| corrupt("rules".into(), e))?,
            None => Rules::default(),
        };
        let mut users = Vec::new();
        for (name, rec) in store.users()? {
            users.push(serde_json::from_str(&rec).map_err(|e| corrupt(format!("user {name}"), e))?);
        }
        let mut notes = Vec::new();
        for (id, user, rec) in store.notes()? {
            if let Ok(mut n) = serde_json::from_str::<Note>(&rec) {
                n.id = id;
                notes.push((user, n));
            }
        }
        let mut sync = Vec::new();
        for (name, rec) in store.kv_all(SYNC_NAMESPACE)? {
            match serde_json::from_slice(&rec) {
                Ok(records) => sync.push((name, records)),
                // Unreadable holds are dropped: the platforms' DND leases
                // lapse by themselves.
                Err(e) => {
                    tracing::warn!(user = %name, error = %e, "stored sync holds unreadable; dropped")
                }
            }
        }
        let mut since = Vec::new();
        for (name, rec) in store.kv_all(SINCE_NAMESPACE)? {
            // Unreadable: the states' start times are learned anew.
            if let Ok(record) = serde_json::from_slice(&rec) {
                since.push((name, record));
            }
        }
        let shared_rules = Arc::new(rules.clone());
        let log = Arc::new(EventLog::start(store.clone(), counters.log_dropped.clone()));
        let inbox = Inbox::new(counters);
        let (watch_tx, watch_rx) = mpsc::unbounded_channel();
        let (write_tx, write_rx) = mpsc::unbounded_channel();
        let (feed, _) = broadcast::channel(4096);
        let service = Service::new(
            Loaded {
                tick_every,
                rules,
                users,
                notes,
                sync,
                sync_store: store_sync(store.clone()),
                since,
                since_store: store_latest(store.clone(), SINCE_NAMESPACE),
            },
            inbox.clone(),
            log.clone(),
            feed,
            watch_tx,
            write_tx,
            write_ids,
        );
        std::thread::Builder::new()
            .name("presence".into())
            .spawn(move || service.run())
            .map_err(StoreError::Io)?;
        let me = Arc::new(Self {
            inbox,
            store,
            log,
            edits: tokio::sync::Mutex::new(()),
            rules: std::sync::RwLock::new(shared_rules),
        });
        me.prune_hourly();
        Ok((
            me,
            Flows {
                watches: watch_rx,
                writes: write_rx,
            },
        ))
    }

    /// Drop event-log entries past the retention, hourly.
    fn prune_hourly(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
            loop {
                every.tick().await;
                let Some(p) = me.upgrade() else { return };
                if let Ok(rules) = p.rules().await {
                    p.log.prune(rules.event_retention_days);
                }
            }
        });
    }

    /// Where connectors report.
    pub fn inbox(&self) -> Inbox {
        self.inbox.clone()
    }

    /// The event log.
    pub fn log(&self) -> &EventLog {
        &self.log
    }

    async fn ask<T>(
        &self,
        f: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, PresenceError> {
        let (tx, rx) = oneshot::channel();
        self.inbox.command(f(tx));
        rx.await.map_err(|_| PresenceError::Stopped)
    }

    /// Run a blocking store call off the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, PresenceError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|_| PresenceError::Stopped)?
            .map_err(PresenceError::Store)
    }

    pub(crate) fn record(&self, kind: &str, username: Option<&str>, detail: String) {
        self.log.record(EventRecord {
            at_ms: now_ms(),
            kind: kind.into(),
            username: username.map(str::to_string),
            instance: None,
            detail,
        });
    }

    /// The rules in force (answered at once, without the service).
    pub async fn rules(&self) -> Result<Rules, PresenceError> {
        Ok(Rules::clone(
            &self.rules.read().unwrap_or_else(|p| p.into_inner()),
        ))
    }

    /// Hand the service new rules, then show them to readers.
    async fn apply_rules(&self, rules: Rules) -> Result<(), PresenceError> {
        self.ask(|r| Command::SetRules(rules.clone(), r)).await?;
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(rules);
        Ok(())
    }

    /// Replace the rules; applied at once.
    pub async fn set_rules(&self, rules: Rules) -> Result<Rules, PresenceError> {
        let _edit = self.edits.lock().await;
        let text = serde_json::to_string(&rules).expect("rules serialise");
        let stored = text.clone();
        self.blocking(move |s| s.set_setting(RULES_KEY, &stored))
            .await?;
        self.record("settings", None, format!("rules changed: {text}"));
        self.apply_rules(rules.clone()).await?;
        Ok(rules)
    }

    /// Take in users, notes and rules another node of a cluster changed in
    /// the shared store: the service's view is made equal to the store's
    /// (users created, replaced or gone; notes added or gone; the rules).
    pub async fn follow_store(&self) -> Result<(), PresenceError> {
        let _edit = self.edits.lock().await;
        let (users, notes, rules) = self
            .blocking(|s| Ok((s.users()?, s.notes()?, s.setting(RULES_KEY)?)))
            .await?;
        let mut stored = Vec::with_capacity(users.len());
        for (name, rec) in users {
            let user: User = serde_json::from_str(&rec)
                .map_err(|e| PresenceError::Store(corrupt(format!("user {name}"), e)))?;
            stored.push(user);
        }
        let current: std::collections::HashMap<String, Arc<User>> = self
            .users()
            .await?
            .into_iter()
            .map(|u| (u.username.clone(), u))
            .collect();
        let names: std::collections::HashSet<&str> =
            stored.iter().map(|u| u.username.as_str()).collect();
        for gone in current.keys().filter(|n| !names.contains(n.as_str())) {
            self.ask(|r| Command::DeleteUser(gone.clone(), r)).await?;
        }
        let changed: Vec<User> = stored
            .into_iter()
            .filter(|u| current.get(&u.username).is_none_or(|c| **c != *u))
            .collect();
        if !changed.is_empty() {
            self.ask(|r| Command::PutUsers(changed, r)).await?;
        }
        // Notes, by id.
        let (_, shown) = self.snapshot(None).await?;
        let mut have: std::collections::HashSet<(String, i64)> = shown
            .iter()
            .flat_map(|p| p.notes.iter().map(|n| (p.username.clone(), n.id)))
            .collect();
        for (id, user, rec) in notes {
            if have.remove(&(user.clone(), id)) {
                continue;
            }
            if let Ok(mut n) = serde_json::from_str::<Note>(&rec) {
                n.id = id;
                self.ask(|r| Command::AddNote(user, n, r)).await?;
            }
        }
        for (user, id) in have {
            self.ask(|r| Command::DeleteNote(user, id, r)).await?;
        }
        if let Some(text) = rules
            && let Ok(rules) = serde_json::from_str::<Rules>(&text)
            && self.rules().await? != rules
        {
            self.apply_rules(rules).await?;
        }
        Ok(())
    }

    /// Every user's presence (optionally only `names`), with the current
    /// sequence number.
    pub async fn snapshot(
        &self,
        names: Option<BTreeSet<String>>,
    ) -> Result<(u64, Vec<Arc<UserPresence>>), PresenceError> {
        self.ask(|r| Command::Snapshot(names, r)).await
    }

    /// One user's presence with each source's report and the reasons.
    pub async fn detail(&self, name: &str) -> Result<UserPresenceDetail, PresenceError> {
        self.ask(|r| Command::Detail(name.to_string(), r))
            .await?
            .ok_or_else(|| PresenceError::NotFound(name.into()))
    }

    /// Follow the feed: replay after `since` when possible, else a snapshot.
    pub async fn subscribe(
        &self,
        names: Option<BTreeSet<String>>,
        since: Option<u64>,
    ) -> Result<Subscription, PresenceError> {
        self.ask(|reply| Command::Subscribe {
            names,
            since,
            reply,
        })
        .await
    }

    /// What an instance observed of every endpoint, and its directory.
    pub async fn observations(&self, instance: &str) -> Result<InstanceBoard, PresenceError> {
        self.ask(|r| Command::Observations(instance.to_string(), r))
            .await
    }

    /// An instance's directory as it last reported it, with whether the
    /// last page has arrived; `None` when the instance never reported one
    /// and is not known.
    pub async fn directory_of(
        &self,
        instance: &str,
    ) -> Result<Option<InstanceDirectory>, PresenceError> {
        self.ask(|r| Command::Directory(instance.to_string(), r))
            .await
    }

    /// Every user (shared: listing 100k users copies no user).
    pub async fn users(&self) -> Result<Vec<Arc<User>>, PresenceError> {
        self.ask(Command::Users).await
    }

    pub async fn user(&self, name: &str) -> Result<Option<User>, PresenceError> {
        self.ask(|r| Command::User(name.to_string(), r)).await
    }

    /// Create (`create`) or replace a user. An identifier another user
    /// holds is refused ([`PresenceError::Clash`]) unless both share it;
    /// that check reads every user (a scan of their identifiers), the rest
    /// costs work in proportion to this user.
    pub async fn put_user(&self, user: User, create: bool) -> Result<User, PresenceError> {
        user.validate()?;
        let _edit = self.edits.lock().await;
        let exists = self.user(&user.username).await?.is_some();
        if create && exists {
            return Err(PresenceError::Exists(user.username));
        }
        if !create && !exists {
            return Err(PresenceError::NotFound(user.username));
        }
        let others = self.users().await?;
        let index = crate::engine::users::IdentifierIndex::new(
            others
                .iter()
                .map(|u| u.as_ref())
                .filter(|u| u.username != user.username),
        );
        if let Some(c) = index.clash(&user) {
            return Err(PresenceError::Clash(c));
        }
        let row = (
            user.username.clone(),
            serde_json::to_string(&user).expect("users serialise"),
        );
        self.blocking(move |s| s.put_users(&[row])).await?;
        self.record(
            "user",
            Some(&user.username),
            if create { "created" } else { "updated" }.into(),
        );
        self.ask(|r| Command::PutUsers(vec![user.clone()], r))
            .await?;
        Ok(user)
    }

    /// Import many users at once in replace mode (each row is its user):
    /// all or nothing; the number of users stored.
    pub async fn import(
        &self,
        users: Vec<(usize, Result<User, RowError>)>,
    ) -> Result<usize, PresenceError> {
        let rows = users
            .into_iter()
            .map(|(row, u)| ImportRow {
                row,
                line: None,
                columns: Vec::new(),
                user: u.map_err(|e| (e.field, e.error)),
            })
            .collect();
        let report = self.import_users(rows, ImportMode::Replace, false).await?;
        if !report.applied {
            return Err(PresenceError::Rejected(
                report
                    .rejected
                    .into_iter()
                    .map(|r| RowError {
                        row: r.row,
                        field: r.field.unwrap_or_default(),
                        error: r.error.unwrap_or_default(),
                    })
                    .collect(),
            ));
        }
        Ok(report.imported)
    }

    /// Import many users at once: all or nothing (with any row rejected
    /// nothing changes, and the report says why per row). See
    /// [`crate::engine::users::plan_import`] for the modes.
    pub async fn import_users(
        &self,
        rows: Vec<ImportRow>,
        mode: ImportMode,
        delete_missing: bool,
    ) -> Result<ImportReport, PresenceError> {
        let _edit = self.edits.lock().await;
        let existing: std::collections::BTreeMap<String, User> = self
            .users()
            .await?
            .into_iter()
            .map(|u| (u.username.clone(), u.as_ref().clone()))
            .collect();
        let plan = crate::engine::users::plan_import(&existing, rows, mode, delete_missing);
        if !plan.report.applied {
            return Ok(plan.report);
        }
        let stored: Vec<(String, String)> = plan
            .put
            .iter()
            .map(|u| {
                (
                    u.username.clone(),
                    serde_json::to_string(u).expect("users serialise"),
                )
            })
            .collect();
        if !stored.is_empty() {
            self.blocking(move |s| s.put_users(&stored)).await?;
        }
        for name in &plan.delete {
            let owned = name.clone();
            self.blocking(move |s| s.delete_user(&owned)).await?;
            self.ask(|r| Command::DeleteUser(name.clone(), r)).await?;
        }
        let r = &plan.report;
        self.record(
            "user",
            None,
            format!(
                "import ({:?} mode): {} created, {} updated, {} unchanged, {} deleted",
                r.mode,
                r.created,
                r.updated,
                r.unchanged,
                r.deleted.len()
            )
            .to_lowercase(),
        );
        if !plan.put.is_empty() {
            self.ask(|r| Command::PutUsers(plan.put, r)).await?;
        }
        Ok(plan.report)
    }

    pub async fn delete_user(&self, name: &str) -> Result<(), PresenceError> {
        let _edit = self.edits.lock().await;
        let owned = name.to_string();
        if !self.blocking(move |s| s.delete_user(&owned)).await? {
            return Err(PresenceError::NotFound(name.into()));
        }
        self.record("user", Some(name), "deleted".into());
        self.ask(|r| Command::DeleteUser(name.to_string(), r)).await
    }

    /// Attach a note; every console sees it at once.
    pub async fn add_note(&self, name: &str, mut note: Note) -> Result<Note, PresenceError> {
        if note.text.trim().is_empty() || note.text.len() > 2000 {
            return Err(UserError {
                field: "text".into(),
                message: "1-2000 characters".into(),
            }
            .into());
        }
        let _edit = self.edits.lock().await;
        if self.user(name).await?.is_none() {
            return Err(PresenceError::NotFound(name.into()));
        }
        note.at_ms = now_ms();
        let (owner, text) = (
            name.to_string(),
            serde_json::to_string(&note).expect("notes serialise"),
        );
        note.id = self.blocking(move |s| s.add_note(&owner, &text)).await?;
        self.record(
            "note",
            Some(name),
            format!("note by {}: {}", note.author, note.text),
        );
        self.ask(|r| Command::AddNote(name.to_string(), note.clone(), r))
            .await?;
        Ok(note)
    }

    pub async fn delete_note(&self, name: &str, id: i64) -> Result<(), PresenceError> {
        let _edit = self.edits.lock().await;
        if !self
            .ask(|r| Command::HasNote(name.to_string(), id, r))
            .await?
        {
            return Err(PresenceError::NotFound(format!("{name} note {id}")));
        }
        self.blocking(move |s| s.delete_note(id)).await?;
        self.ask(|r| Command::DeleteNote(name.to_string(), id, r))
            .await
    }

    /// The seeds' "subscribe" action: subscribe the user anew on every
    /// connector now, marked for one minute. Returns until when (ms).
    pub async fn force_subscribe(&self, name: &str) -> Result<u64, PresenceError> {
        self.ask(|r| Command::ForceSubscribe(name.to_string(), r))
            .await?
    }

    /// Run the periodic tick now with the clock at `at` (tests).
    #[cfg(test)]
    async fn tick_at(&self, at: u64) {
        let _ = self.ask(|r| Command::Tick(at, r)).await;
    }

    #[cfg(test)]
    async fn derivations(&self) -> u64 {
        self.ask(Command::Derivations).await.unwrap_or_default()
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        self.inbox.close();
    }
}

#[cfg(test)]
mod tests;
