//! `/api/v1/directory/...`: users kept in step with a directory, on demand
//! and on a schedule, with a dry run:
//! - `ldap`: an LDAP directory or Active Directory;
//! - `connectors/{id}`: a connector instance's own directory (the people a
//!   plugin reports with `directory`, such as RingCentral's extensions),
//!   matched to users by email.
//!
//! The settings live in the store: the LDAP sync's in the setting
//! [`SETTING`] (JSON) with the bind password sealed like connector
//! secrets (never answered, only `bind_password_set`); each connector
//! instance's under its id in the key-value namespace
//! [`DIRECTORY_NAMESPACE`], so they go with the instance when it is
//! deleted. Deleting an instance also releases the users its sync made:
//! they stay (they are people) without its marker and endpoint
//! ([`DirectorySync::connector_deleted`]). The search is
//! [`crate::io::ldap`]'s, the plan [`crate::engine::directory`]'s; this
//! module stores, schedules and answers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::error::{ApiQuery, parse_json};
use super::{ApiError, AppState};
use crate::engine::directory::{
    self as policy, MARKER_ATTRIBUTE, Mapping, Removal, SyncReport, UsernameFrom,
};
use crate::engine::users::{ImportMode, ImportRow, User};
use crate::io::ldap::{self, LdapError, LdapQuery};
use crate::presence::{Presence, PresenceError};
use crate::store::{DIRECTORY_NAMESPACE, KvWrite, SecretBox, Store, StoreError};
use crate::timing;

/// The store setting holding the LDAP sync's settings.
pub const SETTING: &str = "directory.ldap";
/// The store setting that held the connector directory syncs' settings (a
/// JSON object by instance id) before they moved to
/// [`DIRECTORY_NAMESPACE`]; read once at start to move them, then left an
/// empty object.
pub const CONNECTORS_SETTING: &str = "directory.connectors";

/// The LDAP search scope (RFC 4516's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SearchScope {
    /// The base entry and everything below it.
    #[default]
    Sub,
    /// The base entry's children only.
    One,
    /// The base entry alone.
    Base,
}

fn default_filter() -> String {
    "(objectClass=inetOrgPerson)".into()
}

fn default_page_size() -> u32 {
    500
}

/// `PUT /api/v1/directory/ldap`: the settings.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LdapSettingsIn {
    /// `ldap://host[:port]` or `ldaps://host[:port]` (TLS by rustls,
    /// checked against the system's root certificates, or the Mozilla
    /// roots plus `ca_pem` when given).
    pub url: String,
    /// Upgrade `ldap://` with StartTLS (RFC 4511 §4.14) before binding.
    #[serde(default)]
    pub starttls: bool,
    /// PEM certificates of a private CA that signed the directory's
    /// certificate (`ldaps://` or StartTLS); left out or null: none.
    #[serde(default)]
    pub ca_pem: Option<String>,
    /// The DN to bind as (empty: anonymous), e.g.
    /// `CN=svc-presence,OU=Service,DC=corp,DC=example`.
    #[serde(default)]
    pub bind_dn: String,
    /// Write-only. Left out: the stored one is kept.
    #[serde(default)]
    pub bind_password: Option<String>,
    /// Where the search starts, e.g. `ou=people,dc=example,dc=com`.
    pub base_dn: String,
    /// RFC 4515 filter; default `(objectClass=inetOrgPerson)`.
    #[serde(default = "default_filter")]
    pub filter: String,
    #[serde(default)]
    pub scope: SearchScope,
    #[serde(default)]
    pub mapping: Mapping,
    /// Entries per page (RFC 2696), 1-1000 (Active Directory's
    /// `MaxPageSize` is 1000); default 500.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Seconds between scheduled syncs: 0 (default) syncs on demand only;
    /// otherwise 5 to 604800 (a week).
    #[serde(default)]
    pub interval_seconds: u64,
    /// Users the sync made whose entry is gone: `delete` (default) or
    /// `report` (listed as `missing`, kept).
    #[serde(default)]
    pub remove: Removal,
}

/// The settings as stored: the password sealed (base64).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    url: String,
    starttls: bool,
    #[serde(default)]
    ca_pem: Option<String>,
    bind_dn: String,
    sealed_password: Option<String>,
    base_dn: String,
    filter: String,
    scope: SearchScope,
    mapping: Mapping,
    page_size: u32,
    interval_seconds: u64,
    remove: Removal,
}

/// `GET /api/v1/directory/ldap`: the settings, without the password.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LdapSettings {
    pub url: String,
    pub starttls: bool,
    /// The private CA's PEM certificates, if any (public, not a secret).
    pub ca_pem: Option<String>,
    pub bind_dn: String,
    /// Whether a bind password is stored (it is never answered).
    pub bind_password_set: bool,
    pub base_dn: String,
    pub filter: String,
    pub scope: SearchScope,
    pub mapping: Mapping,
    pub page_size: u32,
    pub interval_seconds: u64,
    pub remove: Removal,
}

impl From<&Stored> for LdapSettings {
    fn from(s: &Stored) -> Self {
        Self {
            url: s.url.clone(),
            starttls: s.starttls,
            ca_pem: s.ca_pem.clone(),
            bind_dn: s.bind_dn.clone(),
            bind_password_set: s.sealed_password.is_some(),
            base_dn: s.base_dn.clone(),
            filter: s.filter.clone(),
            scope: s.scope,
            mapping: s.mapping.clone(),
            page_size: s.page_size,
            interval_seconds: s.interval_seconds,
            remove: s.remove,
        }
    }
}

/// The last sync and the next scheduled one.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct SyncStatus {
    /// Whether settings are stored.
    pub configured: bool,
    /// When the next scheduled sync is due (ms since the epoch); none when
    /// syncs run on demand only.
    pub next_at_ms: Option<u64>,
    pub last: Option<LastSync>,
}

/// One finished sync.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LastSync {
    /// When it started (ms since the epoch).
    pub at_ms: u64,
    /// `scheduled` or `manual`.
    pub trigger: String,
    pub dry_run: bool,
    /// Whether the directory answered and the plan was worked out.
    pub ok: bool,
    /// Why not, when not.
    pub error: Option<String>,
    pub report: Option<SyncReport>,
}

/// Why a sync could not run.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("no LDAP directory is configured; PUT /api/v1/directory/ldap first")]
    NotConfigured,
    #[error(
        "connector instance {0}'s directory is not synced; PUT /api/v1/directory/connectors/{0} first"
    )]
    NotConfiguredFor(String),
    #[error(
        "connector instance {0} has not reported a whole directory (yet): is it running, and does its plugin report one?"
    )]
    NoDirectory(String),
    #[error("{0}")]
    Ldap(#[from] LdapError),
    #[error("{0}")]
    Users(#[from] PresenceError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("the stored bind password cannot be opened with this hub's secret.key")]
    Sealed,
    /// Users of a deleted instance could not be stored released (the
    /// import's rejected rows).
    #[error("users of a deleted connector instance not released: {0}")]
    NotReleased(String),
}

/// Which directory a sync follows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    /// The LDAP directory or Active Directory.
    Ldap,
    /// A connector instance's own directory.
    Connector(String),
}

impl Source {
    /// How the log and the event log name its syncs.
    fn what(&self) -> String {
        match self {
            Source::Ldap => "ldap sync".into(),
            Source::Connector(i) => format!("directory sync of {i}"),
        }
    }

    fn instance(&self) -> Option<&str> {
        match self {
            Source::Ldap => None,
            Source::Connector(i) => Some(i),
        }
    }
}

/// One sync's status and its schedule's clock (started when the settings
/// were stored, or when the last scheduled sync began).
struct Schedule {
    status: SyncStatus,
    from: Instant,
}

impl Schedule {
    fn new() -> Self {
        Self {
            status: SyncStatus {
                configured: true,
                ..SyncStatus::default()
            },
            from: Instant::now(),
        }
    }
}

/// When a sync every `interval_seconds` (0: on demand only) is next due,
/// in ms since the epoch.
fn next_at(interval_seconds: u64) -> Option<u64> {
    (interval_seconds > 0).then(|| crate::store::now_ms() + interval_seconds * 1000)
}

/// The directory syncs (LDAP, and each connector instance's own
/// directory): their settings, one sync at a time, the schedules.
pub struct DirectorySync {
    store: Arc<dyn Store>,
    secrets: SecretBox,
    presence: Arc<Presence>,
    /// Held for a whole sync: a scheduled one and a manual one never
    /// interleave.
    running: tokio::sync::Mutex<()>,
    /// Per sync, this node's view of its status and its schedule's clock.
    schedules: Mutex<BTreeMap<Source, Schedule>>,
    /// Whether this node runs the scheduled syncs: in a cluster one node
    /// does (the first live one), not each.
    runs_schedules: std::sync::atomic::AtomicBool,
}

impl DirectorySync {
    /// `secrets`: the hub's key (`secret.key` in the data folder).
    pub fn new(store: Arc<dyn Store>, secrets: SecretBox, presence: Arc<Presence>) -> Arc<Self> {
        let me = Arc::new(Self {
            store,
            secrets,
            presence,
            running: tokio::sync::Mutex::new(()),
            schedules: Mutex::default(),
            runs_schedules: std::sync::atomic::AtomicBool::new(true),
        });
        match move_legacy_settings(&*me.store) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                instances = n,
                "connector directory sync settings moved to their own store entries"
            ),
            Err(e) => tracing::warn!(
                error = %e,
                "connector directory sync settings not moved from setting {CONNECTORS_SETTING}; PUT them again"
            ),
        }
        if let Ok(all) = intervals(&*me.store) {
            for (source, interval) in all {
                me.scheduled(source, interval);
            }
        }
        me
    }

    fn load(&self) -> Result<Option<Stored>, StoreError> {
        load_ldap(&*self.store)
    }

    /// `source`'s settings were stored: its schedule starts over.
    fn scheduled(&self, source: Source, interval_seconds: u64) {
        let mut all = self.schedules.lock().unwrap_or_else(|p| p.into_inner());
        let s = all.entry(source).or_insert_with(Schedule::new);
        s.from = Instant::now();
        s.status.configured = true;
        s.status.next_at_ms = next_at(interval_seconds);
    }

    fn status_of(&self, source: &Source) -> SyncStatus {
        self.schedules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(source)
            .map(|s| s.status.clone())
            .unwrap_or_default()
    }

    /// The settings, without the password.
    pub fn settings(&self) -> Result<Option<LdapSettings>, SyncError> {
        Ok(self.load()?.as_ref().map(LdapSettings::from))
    }

    /// Check and store new settings; `Err((field, why))` for a bad value.
    pub fn put(&self, new: LdapSettingsIn) -> Result<LdapSettings, PutError> {
        check(&new).map_err(|(f, e)| PutError::Invalid(f, e))?;
        let old = self.load()?;
        let sealed_password = match new.bind_password {
            Some(p) if p.is_empty() => None,
            Some(p) => Some(
                base64::engine::general_purpose::STANDARD.encode(self.secrets.seal(p.as_bytes())),
            ),
            None => old.and_then(|o| o.sealed_password),
        };
        let stored = Stored {
            url: new.url,
            starttls: new.starttls,
            ca_pem: new.ca_pem,
            bind_dn: new.bind_dn,
            sealed_password,
            base_dn: new.base_dn,
            filter: new.filter,
            scope: new.scope,
            mapping: new.mapping,
            page_size: new.page_size,
            interval_seconds: new.interval_seconds,
            remove: new.remove,
        };
        let json = serde_json::to_string(&stored).expect("settings serialise");
        self.store.set_setting(SETTING, &json)?;
        self.scheduled(Source::Ldap, stored.interval_seconds);
        Ok(LdapSettings::from(&stored))
    }

    pub fn status(&self) -> SyncStatus {
        self.status_of(&Source::Ldap)
    }

    /// Search the directory and bring the users in step (or, `dry_run`,
    /// say what that would change). `trigger`: `manual` or `scheduled`.
    pub async fn run(&self, dry_run: bool, trigger: &str) -> Result<SyncReport, SyncError> {
        self.run_source(&Source::Ldap, dry_run, trigger).await
    }

    /// Run one sync of `source` (no other runs meanwhile), log it and keep
    /// its outcome as the status's `last`.
    async fn run_source(
        &self,
        source: &Source,
        dry_run: bool,
        trigger: &str,
    ) -> Result<SyncReport, SyncError> {
        let _one = self.running.lock().await;
        let at_ms = crate::store::now_ms();
        let result = match source {
            Source::Ldap => self.run_once(dry_run).await,
            Source::Connector(instance) => self.run_connector_once(instance, dry_run).await,
        };
        let last = self.outcome(
            &source.what(),
            source.instance(),
            trigger,
            dry_run,
            at_ms,
            &result,
        );
        // A sync of nothing configured leaves no status behind.
        if !matches!(
            result,
            Err(SyncError::NotConfigured | SyncError::NotConfiguredFor(_))
        ) {
            self.schedules
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(source.clone())
                .or_insert_with(Schedule::new)
                .status
                .last = Some(last);
        }
        result
    }

    /// Log a finished sync (trace and event log) and make its status.
    fn outcome(
        &self,
        what: &str,
        instance: Option<&str>,
        trigger: &str,
        dry_run: bool,
        at_ms: u64,
        result: &Result<SyncReport, SyncError>,
    ) -> LastSync {
        let (ok, error, report) = match result {
            Ok(r) => (true, None, Some(r.clone())),
            Err(e) => (false, Some(e.to_string()), None),
        };
        let detail = match result {
            Ok(r) => format!(
                "{what} ({trigger}{}): {} entries, {} created, {} updated, {} unchanged, {} rejected, {} deleted, {} missing{}{}",
                if dry_run { ", dry run" } else { "" },
                r.entries,
                r.created,
                r.updated,
                r.unchanged,
                r.rejected,
                r.deleted,
                r.missing,
                if r.matched > 0 {
                    format!(", {} matched (not made by the sync, left alone)", r.matched)
                } else {
                    String::new()
                },
                if !dry_run && !r.applied {
                    "; nothing changed (a user clashed)"
                } else {
                    ""
                }
            ),
            Err(e) => format!("{what} ({trigger}) failed: {e}"),
        };
        let instance_field = instance.unwrap_or("");
        match result {
            Ok(_) => tracing::info!(instance = instance_field, trigger, dry_run, "{detail}"),
            Err(_) => tracing::warn!(instance = instance_field, trigger, dry_run, "{detail}"),
        }
        self.presence.record("directory", None, detail);
        LastSync {
            at_ms,
            trigger: trigger.into(),
            dry_run,
            ok,
            error,
            report,
        }
    }

    /// Every user, by username.
    async fn existing(&self) -> Result<BTreeMap<String, User>, SyncError> {
        Ok(self
            .presence
            .users()
            .await?
            .into_iter()
            .map(|u| (u.username.clone(), u.as_ref().clone()))
            .collect())
    }

    /// Plan `input` against `existing` (dry run) or carry it out: the
    /// import (all or nothing), then, when it applied and `deleting`, the
    /// users gone from the directory.
    async fn apply(
        &self,
        existing: &BTreeMap<String, User>,
        input: policy::SyncInput,
        entries: usize,
        dry_run: bool,
        deleting: bool,
    ) -> Result<SyncReport, SyncError> {
        if dry_run {
            let plan = crate::engine::users::plan_import(
                existing,
                input.rows.clone(),
                policy::SYNC_MODE,
                false,
            );
            return Ok(policy::report(
                true,
                entries,
                &plan.report,
                &input,
                deleting,
            ));
        }
        let import = self
            .presence
            .import_users(input.rows.clone(), policy::SYNC_MODE, false)
            .await?;
        if import.applied && deleting {
            for name in &input.gone {
                match self.presence.delete_user(name).await {
                    Ok(()) | Err(PresenceError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(policy::report(false, entries, &import, &input, deleting))
    }

    async fn run_once(&self, dry_run: bool) -> Result<SyncReport, SyncError> {
        let store = self.store.clone();
        let cfg = tokio::task::spawn_blocking(move || load_ldap(&*store))
            .await
            .map_err(|_| SyncError::Users(PresenceError::Stopped))??
            .ok_or(SyncError::NotConfigured)?;
        let password = match &cfg.sealed_password {
            None => String::new(),
            Some(b64) => {
                let sealed = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|_| SyncError::Sealed)?;
                let plain = self.secrets.open(&sealed).map_err(|_| SyncError::Sealed)?;
                String::from_utf8(plain).map_err(|_| SyncError::Sealed)?
            }
        };
        let query = LdapQuery {
            url: cfg.url.clone(),
            starttls: cfg.starttls,
            ca_pem: cfg.ca_pem.clone(),
            bind_dn: cfg.bind_dn.clone(),
            bind_password: password,
            base_dn: cfg.base_dn.clone(),
            scope: match cfg.scope {
                SearchScope::Sub => "sub",
                SearchScope::One => "one",
                SearchScope::Base => "base",
            }
            .into(),
            filter: cfg.filter.clone(),
            attributes: cfg.mapping.attributes(),
            page_size: cfg.page_size as i32,
            timeout: timing::DIRECTORY_TIMEOUT,
        };
        let entries = ldap::search(&query).await?;
        let existing = self.existing().await?;
        let input = policy::plan_sync(&existing, &entries, &cfg.mapping);
        self.apply(
            &existing,
            input,
            entries.len(),
            dry_run,
            cfg.remove == Removal::Delete,
        )
        .await
    }

    // ---- connector instances' own directories ---------------------------

    /// The sync settings of every connector instance that has them.
    pub fn connector_syncs(&self) -> Result<Vec<ConnectorSyncView>, SyncError> {
        Ok(connector_settings(&*self.store)?
            .into_iter()
            .map(|(instance, settings)| ConnectorSyncView::new(instance, settings))
            .collect())
    }

    /// The sync settings of `instance`, if it has them.
    pub fn connector_sync(&self, instance: &str) -> Result<Option<ConnectorSyncView>, SyncError> {
        Ok(connector_setting(&*self.store, instance)?
            .map(|settings| ConnectorSyncView::new(instance.to_string(), settings)))
    }

    /// Store the sync settings of `instance` (its schedule starts now),
    /// under its key in [`DIRECTORY_NAMESPACE`]: they go with the instance
    /// when it is deleted ([`Store::delete_connector`]).
    pub fn put_connector(
        &self,
        instance: &str,
        new: ConnectorSync,
    ) -> Result<ConnectorSyncView, PutError> {
        if instance == policy::MARKER_LDAP {
            return Err(PutError::Invalid(
                "id".into(),
                "users made by the LDAP sync are marked `directory: ldap`; a connector instance named ldap cannot sync its directory (give it another id)".into(),
            ));
        }
        let min = timing::DIRECTORY_MIN_INTERVAL.as_secs();
        if new.interval_seconds != 0 && !(min..=604_800).contains(&new.interval_seconds) {
            return Err(PutError::Invalid(
                "interval_seconds".into(),
                format!("0 (on demand only) or {min}-604800 seconds"),
            ));
        }
        self.store.kv_write(
            DIRECTORY_NAMESPACE,
            &[KvWrite::Set {
                key: instance.to_string(),
                value: serde_json::to_vec(&new).expect("settings serialise"),
            }],
        )?;
        self.scheduled(
            Source::Connector(instance.to_string()),
            new.interval_seconds,
        );
        Ok(ConnectorSyncView::new(instance.to_string(), new))
    }

    /// Stop syncing `instance`'s directory (its users stay, still marked:
    /// a sync set up again takes them back); false when it had no
    /// settings.
    pub fn delete_connector(&self, instance: &str) -> Result<bool, SyncError> {
        if connector_setting(&*self.store, instance)?.is_none() {
            return Ok(false);
        }
        self.store.kv_write(
            DIRECTORY_NAMESPACE,
            &[KvWrite::Delete {
                key: instance.to_string(),
            }],
        )?;
        self.forget(instance);
        Ok(true)
    }

    fn forget(&self, instance: &str) {
        self.schedules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&Source::Connector(instance.to_string()));
    }

    /// The last sync of `instance`'s directory and the next one due;
    /// `configured` as the store says (settings stored or deleted on
    /// another node of a cluster count).
    pub fn connector_status(&self, instance: &str) -> Result<SyncStatus, SyncError> {
        if connector_setting(&*self.store, instance)?.is_none() {
            self.forget(instance);
            return Ok(SyncStatus::default());
        }
        let mut status = self.status_of(&Source::Connector(instance.to_string()));
        status.configured = true;
        Ok(status)
    }

    /// Connector instance `instance` was deleted, and its sync settings
    /// with it (in the store's transaction): forget its sync here and
    /// release the users its sync made, who stay without its marker and
    /// its endpoint ([`policy::released`]). Idempotent. A failure is
    /// logged, and the next start of the hub finishes the job
    /// ([`Self::spawn_scheduler`]).
    pub async fn connector_deleted(&self, instance: &str) {
        self.forget(instance);
        let gone = instance.to_string();
        if let Err(e) = self.release(move |i| i == gone).await {
            tracing::warn!(instance, error = %e, "users made by the deleted connector's directory sync not released; retried at the next start");
        }
    }

    /// Release the users made by the syncs of every instance the store no
    /// longer has (deleted while this node was down, or before a crash
    /// ended [`Self::connector_deleted`]).
    async fn release_deleted(&self) -> Result<usize, SyncError> {
        let store = self.store.clone();
        let live: BTreeSet<String> = tokio::task::spawn_blocking(move || store.connectors())
            .await
            .map_err(|_| SyncError::Users(PresenceError::Stopped))??
            .into_iter()
            .map(|c| c.id)
            .collect();
        self.release(move |i| !live.contains(i)).await
    }

    /// Store the users [`policy::released`] names for `gone` instances, in
    /// one import; how many. No sync runs meanwhile (it could mark users
    /// for such an instance again).
    async fn release(&self, gone: impl Fn(&str) -> bool) -> Result<usize, SyncError> {
        let _one = self.running.lock().await;
        let existing = self.existing().await?;
        let users = policy::released(&existing, gone);
        if users.is_empty() {
            return Ok(0);
        }
        let instances: BTreeSet<&str> = users
            .iter()
            .filter_map(|u| existing.get(&u.username)?.attributes.get(MARKER_ATTRIBUTE))
            .map(String::as_str)
            .collect();
        let instances = instances.into_iter().collect::<Vec<_>>().join(", ");
        let names: Vec<String> = users.iter().map(|u| u.username.clone()).collect();
        let rows = users
            .into_iter()
            .enumerate()
            .map(|(i, user)| ImportRow {
                row: i + 1,
                line: None,
                columns: Vec::new(),
                user: Ok(user),
            })
            .collect();
        let report = self
            .presence
            .import_users(rows, ImportMode::Replace, false)
            .await?;
        if !report.applied {
            return Err(SyncError::NotReleased(format!("{:?}", report.rejected)));
        }
        let detail = format!(
            "connector instance {instances} deleted: {} users its directory sync made stay, without its marker and endpoint: {}",
            names.len(),
            names.join(", ")
        );
        tracing::info!(instance = %instances, users = names.len(), "{detail}");
        self.presence.record("directory", None, detail);
        Ok(names.len())
    }

    /// Bring the users in step with connector instance `instance`'s
    /// directory (or, `dry_run`, say what that would change).
    pub async fn run_connector(
        &self,
        instance: &str,
        dry_run: bool,
        trigger: &str,
    ) -> Result<SyncReport, SyncError> {
        self.run_source(&Source::Connector(instance.to_string()), dry_run, trigger)
            .await
    }

    async fn run_connector_once(
        &self,
        instance: &str,
        dry_run: bool,
    ) -> Result<SyncReport, SyncError> {
        let store = self.store.clone();
        let owned = instance.to_string();
        let cfg = tokio::task::spawn_blocking(move || connector_setting(&*store, &owned))
            .await
            .map_err(|_| SyncError::Users(PresenceError::Stopped))??
            .ok_or_else(|| SyncError::NotConfiguredFor(instance.to_string()))?;
        // Only a whole directory: one still arriving page by page would
        // look like people leaving.
        let dir = match self.presence.directory_of(instance).await? {
            Some(d) if d.complete => d,
            _ => return Err(SyncError::NoDirectory(instance.to_string())),
        };
        let existing = self.existing().await?;
        let input = policy::plan_connector_sync(&existing, instance, &dir.entries, cfg.username);
        self.apply(
            &existing,
            input,
            dir.entries.len(),
            dry_run,
            cfg.remove == Removal::Delete,
        )
        .await
    }

    /// Whether this node runs the scheduled syncs (see
    /// [`crate::cluster::leases`]: the first live node of a cluster does).
    pub fn set_runs_schedules(&self, on: bool) {
        self.runs_schedules
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Run scheduled syncs until the service is dropped; first, release
    /// the users of instances deleted while the hub was down.
    pub fn spawn_scheduler(self: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            if let Some(me) = weak.upgrade()
                && let Err(e) = me.release_deleted().await
            {
                tracing::warn!(error = %e, "users made by deleted connectors' directory syncs not released");
            }
            let mut tick = tokio::time::interval(timing::DIRECTORY_SCHEDULE_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(me) = weak.upgrade() else { break };
                if me.runs_schedules.load(std::sync::atomic::Ordering::Relaxed) {
                    me.run_due().await;
                }
            }
        });
    }

    /// Run the scheduled syncs that are due, one after another.
    async fn run_due(&self) {
        let store = self.store.clone();
        let Ok(Ok(all)) = tokio::task::spawn_blocking(move || intervals(&*store)).await else {
            return;
        };
        for (source, interval) in all {
            if interval == 0 {
                continue;
            }
            let due = {
                let mut schedules = self.schedules.lock().unwrap_or_else(|p| p.into_inner());
                let s = schedules
                    .entry(source.clone())
                    .or_insert_with(Schedule::new);
                let due = s.from.elapsed().as_secs() >= interval;
                if due {
                    s.from = Instant::now();
                }
                due
            };
            if !due {
                continue;
            }
            // The outcome is in the status and the event log.
            let _ = self.run_source(&source, false, "scheduled").await;
            if let Some(s) = self
                .schedules
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(&source)
            {
                s.status.configured = true;
                s.status.next_at_ms = next_at(interval);
            }
        }
    }
}

/// The LDAP sync's settings, as stored.
fn load_ldap(store: &dyn Store) -> Result<Option<Stored>, StoreError> {
    Ok(store
        .setting(SETTING)?
        .and_then(|j| serde_json::from_str(&j).ok()))
}

/// Every connector instance's directory sync settings, by instance id (an
/// unreadable entry is logged and skipped).
fn connector_settings(store: &dyn Store) -> Result<BTreeMap<String, ConnectorSync>, StoreError> {
    let mut all = BTreeMap::new();
    for (instance, value) in store.kv_all(DIRECTORY_NAMESPACE)? {
        match serde_json::from_slice(&value) {
            Ok(s) => {
                all.insert(instance, s);
            }
            Err(e) => {
                tracing::warn!(instance, error = %e, "unreadable directory sync settings skipped")
            }
        }
    }
    Ok(all)
}

fn connector_setting(
    store: &dyn Store,
    instance: &str,
) -> Result<Option<ConnectorSync>, StoreError> {
    Ok(store
        .kv_get(DIRECTORY_NAMESPACE, instance)?
        .and_then(|v| serde_json::from_slice(&v).ok()))
}

/// Every configured sync and its interval in seconds (0: on demand only).
fn intervals(store: &dyn Store) -> Result<Vec<(Source, u64)>, StoreError> {
    let mut all = Vec::new();
    if let Some(s) = load_ldap(store)? {
        all.push((Source::Ldap, s.interval_seconds));
    }
    for (instance, cfg) in connector_settings(store)? {
        all.push((Source::Connector(instance), cfg.interval_seconds));
    }
    Ok(all)
}

/// Hubs before issue 21 kept every instance's settings in the one JSON
/// setting [`CONNECTORS_SETTING`], where a deleted instance's entry stayed
/// behind. Move those of instances that exist to their own keys in
/// [`DIRECTORY_NAMESPACE`] (which go with the instance), drop the others,
/// and leave the setting an empty object; how many moved.
fn move_legacy_settings(store: &dyn Store) -> Result<usize, StoreError> {
    let Some(json) = store.setting(CONNECTORS_SETTING)? else {
        return Ok(0);
    };
    let legacy: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(&json).unwrap_or_default();
    if legacy.is_empty() {
        return Ok(0);
    }
    let live: BTreeSet<String> = store.connectors()?.into_iter().map(|c| c.id).collect();
    let writes: Vec<KvWrite> = legacy
        .into_iter()
        .filter(|(id, _)| live.contains(id))
        .map(|(id, v)| KvWrite::Set {
            key: id,
            value: v.to_string().into_bytes(),
        })
        .collect();
    store.kv_write(DIRECTORY_NAMESPACE, &writes)?;
    store.set_setting(CONNECTORS_SETTING, "{}")?;
    Ok(writes.len())
}

fn default_removal_report() -> Removal {
    Removal::Report
}

/// `PUT /api/v1/directory/connectors/{id}`: keep users in step with that
/// connector instance's own directory.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectorSync {
    /// A new user's username: `local-part` (default) of the email, or the
    /// whole `email`; the whole email where the local part is taken.
    #[serde(default)]
    pub username: UsernameFrom,
    /// Users this sync made whose person left the directory: `report`
    /// (default: listed as `missing`, kept) or `delete`.
    #[serde(default = "default_removal_report")]
    pub remove: Removal,
    /// Seconds between scheduled syncs: 0 (default) syncs on demand only;
    /// otherwise 5 to 604800 (a week).
    #[serde(default)]
    pub interval_seconds: u64,
}

/// A connector instance's directory sync settings.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConnectorSyncView {
    /// The connector instance's id; users the sync makes carry
    /// `attributes.directory` = this id.
    pub instance: String,
    pub username: UsernameFrom,
    pub remove: Removal,
    pub interval_seconds: u64,
}

impl ConnectorSyncView {
    fn new(instance: String, s: ConnectorSync) -> Self {
        Self {
            instance,
            username: s.username,
            remove: s.remove,
            interval_seconds: s.interval_seconds,
        }
    }
}

/// Why settings were not stored.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error("{0}: {1}")]
    Invalid(String, String),
    #[error("{0}")]
    Store(#[from] StoreError),
}

fn check(s: &LdapSettingsIn) -> Result<(), (String, String)> {
    let bad = |f: &str, e: &str| Err((f.to_string(), e.to_string()));
    let rest = s
        .url
        .strip_prefix("ldap://")
        .or_else(|| s.url.strip_prefix("ldaps://"));
    match rest {
        None => return bad("url", "ldap://host[:port] or ldaps://host[:port]"),
        Some(r) if r.trim_end_matches('/').is_empty() || r.contains(char::is_whitespace) => {
            return bad("url", "a host is required: ldap://host[:port]");
        }
        _ => {}
    }
    if s.starttls && s.url.starts_with("ldaps://") {
        return bad(
            "starttls",
            "StartTLS upgrades ldap:// only; ldaps:// is TLS already",
        );
    }
    if let Some(pem) = &s.ca_pem {
        if pem.len() > crate::runtime::MAX_CA_PEM_BYTES {
            return Err((
                "ca_pem".into(),
                format!("at most {} bytes of PEM", crate::runtime::MAX_CA_PEM_BYTES),
            ));
        }
        if let Err(e) = crate::io::tls::parse_ca(pem) {
            return Err(("ca_pem".into(), e.to_string()));
        }
    }
    if s.base_dn.trim().is_empty() {
        return bad("base_dn", "required, e.g. ou=people,dc=example,dc=com");
    }
    if !ldap::valid_filter(&s.filter) {
        return bad(
            "filter",
            "an RFC 4515 filter in brackets, e.g. (&(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))",
        );
    }
    if !(1..=1000).contains(&s.page_size) {
        return bad(
            "page_size",
            "1-1000 (Active Directory answers at most 1000 entries a page)",
        );
    }
    let min = timing::DIRECTORY_MIN_INTERVAL.as_secs();
    if s.interval_seconds != 0 && !(min..=604_800).contains(&s.interval_seconds) {
        return Err((
            "interval_seconds".into(),
            format!("0 (on demand only) or {min}-604800 seconds"),
        ));
    }
    s.mapping.check()
}

impl From<PutError> for ApiError {
    fn from(e: PutError) -> Self {
        match e {
            PutError::Invalid(field, error) => {
                ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, field, error)
            }
            PutError::Store(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

/// Run a blocking settings call (store reads and writes) off the async
/// workers.
async fn blocking<T: Send + 'static, E: Into<ApiError> + Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(Into::into)
}

impl From<SyncError> for ApiError {
    fn from(e: SyncError) -> Self {
        let msg = e.to_string();
        match e {
            SyncError::NotConfigured | SyncError::NotConfiguredFor(_) => {
                ApiError::new(StatusCode::NOT_FOUND, msg)
            }
            SyncError::NoDirectory(_) => ApiError::new(StatusCode::CONFLICT, msg),
            SyncError::Ldap(LdapError::Timeout(_)) => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, msg)
            }
            SyncError::Ldap(LdapError::Bind { .. }) => {
                ApiError::field(StatusCode::BAD_GATEWAY, "bind_dn", msg)
            }
            SyncError::Ldap(_) => ApiError::new(StatusCode::BAD_GATEWAY, msg),
            SyncError::Users(p) => p.into(),
            SyncError::Store(_) | SyncError::Sealed | SyncError::NotReleased(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, msg)
            }
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/directory/ldap",
    tag = "directory",
    summary = "The LDAP / Active Directory sync settings (never the password)",
    responses(
        (status = 200, description = "The settings", body = LdapSettings),
        (status = 404, description = "No directory configured", body = super::openapi::ErrorBody)
    )
)]
pub async fn get_settings(State(s): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let d = s.directory.clone();
    blocking(move || d.settings())
        .await?
        .map(Json)
        .ok_or_else(|| SyncError::NotConfigured.into())
}

#[utoipa::path(
    put,
    path = "/api/v1/directory/ldap",
    tag = "directory",
    summary = "Store the LDAP / Active Directory sync settings",
    request_body = LdapSettingsIn,
    responses(
        (status = 200, description = "The settings now (without the password)", body = LdapSettings),
        (status = 400, description = "Not JSON of this shape; `field` names the JSON path", body = super::openapi::ErrorBody),
        (status = 422, description = "A value is refused; `field` names it and the error says what is allowed", body = super::openapi::ErrorBody)
    )
)]
pub async fn put_settings(
    State(s): State<AppState>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let new: LdapSettingsIn = parse_json(&body)?;
    let d = s.directory.clone();
    Ok(Json(blocking(move || d.put(new)).await?))
}

/// A sync's answer: the report, with 422 when a clash stopped a sync that
/// was to change something (nothing changed), else 200.
fn answer(dry_run: bool, report: SyncReport) -> (StatusCode, Json<SyncReport>) {
    let status = if !dry_run && !report.applied {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    (status, Json(report))
}

/// `?dry_run=true|false`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SyncQuery {
    /// `true`: answer the plan and change nothing (default `false`).
    #[serde(default)]
    pub dry_run: bool,
}

#[utoipa::path(
    post,
    path = "/api/v1/directory/ldap/sync",
    tag = "directory",
    summary = "Sync users from the directory now (or, dry_run=true, show the plan)",
    params(SyncQuery),
    responses(
        (status = 200, description = "What changed (or would change), per user; rejected entries with their DN", body = SyncReport),
        (status = 400, description = "An unknown query parameter or value", body = super::openapi::ErrorBody),
        (status = 404, description = "No directory configured", body = super::openapi::ErrorBody),
        (status = 422, description = "A user clashed with another; nothing changed (the report says which)", body = SyncReport),
        (status = 502, description = "The directory refused the bind (`field`: bind_dn) or the search, or cannot be reached", body = super::openapi::ErrorBody),
        (status = 504, description = "The directory did not answer in time", body = super::openapi::ErrorBody)
    )
)]
pub async fn sync(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<SyncQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let report = s.directory.run(q.dry_run, "manual").await?;
    Ok(answer(q.dry_run, report))
}

#[utoipa::path(
    get,
    path = "/api/v1/directory/ldap/status",
    tag = "directory",
    summary = "The last directory sync and when the next is due",
    responses(
        (status = 200, description = "The status", body = SyncStatus)
    )
)]
pub async fn status(State(s): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(s.directory.status()))
}

// ---- connector instances' own directories -------------------------------

#[utoipa::path(
    get,
    path = "/api/v1/directory/connectors",
    tag = "directory",
    summary = "The connector instances whose own directory users follow",
    responses(
        (status = 200, description = "Each instance's sync settings", body = [ConnectorSyncView])
    )
)]
pub async fn list_connectors(State(s): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let d = s.directory.clone();
    Ok(Json(blocking(move || d.connector_syncs()).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/directory/connectors/{id}",
    tag = "directory",
    summary = "A connector instance's directory sync settings",
    params(("id" = String, Path, description = "Connector instance id")),
    responses(
        (status = 200, description = "The settings", body = ConnectorSyncView),
        (status = 404, description = "The instance's directory is not synced", body = super::openapi::ErrorBody)
    )
)]
pub async fn get_connector(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let d = s.directory.clone();
    let name = id.clone();
    blocking(move || d.connector_sync(&name))
        .await?
        .map(Json)
        .ok_or_else(|| SyncError::NotConfiguredFor(id).into())
}

#[utoipa::path(
    put,
    path = "/api/v1/directory/connectors/{id}",
    tag = "directory",
    summary = "Keep users in step with a connector instance's own directory (matched by email)",
    params(("id" = String, Path, description = "Connector instance id")),
    request_body = ConnectorSync,
    responses(
        (status = 200, description = "The settings now", body = ConnectorSyncView),
        (status = 400, description = "Not JSON of this shape; `field` names the JSON path", body = super::openapi::ErrorBody),
        (status = 404, description = "No such connector instance", body = super::openapi::ErrorBody),
        (status = 422, description = "A value is refused; `field` names it and the error says what is allowed", body = super::openapi::ErrorBody)
    )
)]
pub async fn put_connector(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let new: ConnectorSync = parse_json(&body)?;
    s.runtime.connector(&id).await?;
    let d = s.directory.clone();
    Ok(Json(blocking(move || d.put_connector(&id, new)).await?))
}

#[utoipa::path(
    delete,
    path = "/api/v1/directory/connectors/{id}",
    tag = "directory",
    summary = "Stop following a connector instance's directory (its users stay, still marked: set up again, the sync takes them back)",
    params(("id" = String, Path, description = "Connector instance id")),
    responses(
        (status = 204, description = "No longer synced"),
        (status = 404, description = "The instance's directory was not synced", body = super::openapi::ErrorBody)
    )
)]
pub async fn delete_connector(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let d = s.directory.clone();
    let name = id.clone();
    if blocking(move || d.delete_connector(&name)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(SyncError::NotConfiguredFor(id).into())
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/directory/connectors/{id}/sync",
    tag = "directory",
    summary = "Sync users from a connector instance's directory now (or, dry_run=true, show the plan)",
    params(("id" = String, Path, description = "Connector instance id"), SyncQuery),
    responses(
        (status = 200, description = "What changed (or would change), per user; each with the directory entry's `endpoint`", body = SyncReport),
        (status = 400, description = "An unknown query parameter or value", body = super::openapi::ErrorBody),
        (status = 404, description = "The instance's directory is not synced", body = super::openapi::ErrorBody),
        (status = 409, description = "The instance has not reported a whole directory (not running, still reading it, or its plugin reports none)", body = super::openapi::ErrorBody),
        (status = 422, description = "A user clashed with another; nothing changed (the report says which)", body = SyncReport)
    )
)]
pub async fn sync_connector(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<SyncQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let report = s.directory.run_connector(&id, q.dry_run, "manual").await?;
    Ok(answer(q.dry_run, report))
}

#[utoipa::path(
    get,
    path = "/api/v1/directory/connectors/{id}/status",
    tag = "directory",
    summary = "The last sync of a connector instance's directory and when the next is due",
    params(("id" = String, Path, description = "Connector instance id")),
    responses(
        (status = 200, description = "The status (`configured: false` when not synced)", body = SyncStatus)
    )
)]
pub async fn connector_status(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let d = s.directory.clone();
    Ok(Json(blocking(move || d.connector_status(&id)).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ConnectorRecord, SqliteStore};

    /// Settings a hub kept in the one JSON setting move to their own keys;
    /// those of an instance deleted before (the leftover this move ends)
    /// are dropped; a second start moves nothing.
    #[test]
    fn legacy_settings_move_to_their_own_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        store
            .put_connector(&ConnectorRecord {
                id: "rc".into(),
                plugin: "ringcentral".into(),
                config: BTreeMap::new(),
                secrets: BTreeMap::new(),
                enabled: true,
                tls_ca_pem: None,
                watches: Vec::new(),
                created_at_ms: 1,
                updated_at_ms: 1,
            })
            .unwrap();
        store
            .set_setting(
                CONNECTORS_SETTING,
                r#"{"rc": {"username": "email", "remove": "delete", "interval_seconds": 60},
                    "deleted": {"username": "local-part", "remove": "report", "interval_seconds": 0}}"#,
            )
            .unwrap();
        assert_eq!(move_legacy_settings(&store).unwrap(), 1);
        let all = connector_settings(&store).unwrap();
        assert_eq!(all.keys().collect::<Vec<_>>(), ["rc"]);
        assert_eq!(
            (
                all["rc"].username,
                all["rc"].remove,
                all["rc"].interval_seconds
            ),
            (UsernameFrom::Email, Removal::Delete, 60)
        );
        assert_eq!(
            store.setting(CONNECTORS_SETTING).unwrap().as_deref(),
            Some("{}")
        );
        assert_eq!(move_legacy_settings(&store).unwrap(), 0);
        // They go with the instance now.
        store.delete_connector("rc").unwrap();
        assert!(connector_settings(&store).unwrap().is_empty());
    }
}
