//! `/api/v1/directory/ldap`: users kept in step with an LDAP directory or
//! Active Directory, on demand and on a schedule, with a dry run.
//!
//! The settings live in the store (setting [`SETTING`], JSON) with the
//! bind password sealed like connector secrets; it is never answered, only
//! `bind_password_set`. The search is [`crate::io::ldap`]'s, the plan
//! [`crate::engine::directory`]'s; this module stores, schedules and
//! answers.

use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::error::{ApiQuery, parse_json};
use super::{ApiError, AppState};
use crate::engine::directory::{self as policy, Mapping, Removal, SyncReport};
use crate::engine::users::User;
use crate::io::ldap::{self, LdapError, LdapQuery};
use crate::presence::{Presence, PresenceError};
use crate::store::{SecretBox, Store, StoreError};
use crate::timing;

/// The store setting holding the LDAP sync's settings.
pub const SETTING: &str = "directory.ldap";

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
    /// checked against the system's root certificates).
    pub url: String,
    /// Upgrade `ldap://` with StartTLS before binding.
    #[serde(default)]
    pub starttls: bool,
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
    #[error("{0}")]
    Ldap(#[from] LdapError),
    #[error("{0}")]
    Users(#[from] PresenceError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("the stored bind password cannot be opened with this hub's secret.key")]
    Sealed,
}

/// The LDAP sync: its settings, one sync at a time, the schedule.
pub struct DirectorySync {
    store: Arc<dyn Store>,
    secrets: SecretBox,
    presence: Arc<Presence>,
    /// Held for a whole sync: a scheduled one and a manual one never
    /// interleave.
    running: tokio::sync::Mutex<()>,
    status: Mutex<SyncStatus>,
    /// When the schedule's clock started (settings stored, or the last
    /// scheduled sync began).
    schedule_from: Mutex<Instant>,
}

impl DirectorySync {
    /// `secrets`: the hub's key (`secret.key` in the data folder).
    pub fn new(store: Arc<dyn Store>, secrets: SecretBox, presence: Arc<Presence>) -> Arc<Self> {
        let me = Arc::new(Self {
            store,
            secrets,
            presence,
            running: tokio::sync::Mutex::new(()),
            status: Mutex::new(SyncStatus::default()),
            schedule_from: Mutex::new(Instant::now()),
        });
        if let Ok(Some(s)) = me.load() {
            me.set_schedule(&s);
        }
        me
    }

    fn load(&self) -> Result<Option<Stored>, StoreError> {
        Ok(self
            .store
            .setting(SETTING)?
            .and_then(|j| serde_json::from_str(&j).ok()))
    }

    fn set_schedule(&self, s: &Stored) {
        let now = Instant::now();
        *self.schedule_from.lock().unwrap_or_else(|p| p.into_inner()) = now;
        let mut st = self.status.lock().unwrap_or_else(|p| p.into_inner());
        st.configured = true;
        st.next_at_ms =
            (s.interval_seconds > 0).then(|| crate::store::now_ms() + s.interval_seconds * 1000);
    }

    /// The settings, without the password.
    pub fn settings(&self) -> Result<Option<LdapSettings>, StoreError> {
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
        self.set_schedule(&stored);
        Ok(LdapSettings::from(&stored))
    }

    pub fn status(&self) -> SyncStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Search the directory and bring the users in step (or, `dry_run`,
    /// say what that would change). `trigger`: `manual` or `scheduled`.
    pub async fn run(&self, dry_run: bool, trigger: &str) -> Result<SyncReport, SyncError> {
        let _one = self.running.lock().await;
        let at_ms = crate::store::now_ms();
        let result = self.run_once(dry_run).await;
        let (ok, error, report) = match &result {
            Ok(r) => (true, None, Some(r.clone())),
            Err(e) => (false, Some(e.to_string()), None),
        };
        let detail = match &result {
            Ok(r) => format!(
                "ldap sync ({trigger}{}): {} entries, {} created, {} updated, {} unchanged, {} rejected, {} deleted, {} missing{}",
                if dry_run { ", dry run" } else { "" },
                r.entries,
                r.created,
                r.updated,
                r.unchanged,
                r.rejected,
                r.deleted,
                r.missing,
                if !dry_run && !r.applied {
                    "; nothing changed (a user clashed)"
                } else {
                    ""
                }
            ),
            Err(e) => format!("ldap sync ({trigger}) failed: {e}"),
        };
        match &result {
            Ok(_) => tracing::info!(trigger, dry_run, "{detail}"),
            Err(_) => tracing::warn!(trigger, dry_run, "{detail}"),
        }
        self.presence.record("directory", None, detail);
        let mut st = self.status.lock().unwrap_or_else(|p| p.into_inner());
        st.last = Some(LastSync {
            at_ms,
            trigger: trigger.into(),
            dry_run,
            ok,
            error,
            report,
        });
        drop(st);
        result
    }

    async fn run_once(&self, dry_run: bool) -> Result<SyncReport, SyncError> {
        let store = self.store.clone();
        let cfg = tokio::task::spawn_blocking(move || store.setting(SETTING))
            .await
            .map_err(|_| SyncError::Users(PresenceError::Stopped))??
            .and_then(|j| serde_json::from_str::<Stored>(&j).ok())
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
        let existing: std::collections::BTreeMap<String, User> = self
            .presence
            .users()
            .await?
            .into_iter()
            .map(|u| (u.username.clone(), u.as_ref().clone()))
            .collect();
        let input = policy::plan_sync(&existing, &entries, &cfg.mapping);
        let deleting = cfg.remove == Removal::Delete;
        if dry_run {
            let plan = crate::engine::users::plan_import(
                &existing,
                input.rows.clone(),
                policy::SYNC_MODE,
                false,
            );
            return Ok(policy::report(
                true,
                entries.len(),
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
        Ok(policy::report(
            false,
            entries.len(),
            &import,
            &input,
            deleting,
        ))
    }

    /// Run scheduled syncs until the service is dropped.
    pub fn spawn_scheduler(self: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(timing::DIRECTORY_SCHEDULE_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(me) = weak.upgrade() else { break };
                let interval = match me.load() {
                    Ok(Some(s)) if s.interval_seconds > 0 => s.interval_seconds,
                    _ => continue,
                };
                let due = {
                    let from = me.schedule_from.lock().unwrap_or_else(|p| p.into_inner());
                    from.elapsed().as_secs() >= interval
                };
                if !due {
                    continue;
                }
                *me.schedule_from.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
                // The outcome is in the status and the event log.
                let _ = me.run(false, "scheduled").await;
                let mut st = me.status.lock().unwrap_or_else(|p| p.into_inner());
                st.next_at_ms = Some(crate::store::now_ms() + interval * 1000);
            }
        });
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

impl From<SyncError> for ApiError {
    fn from(e: SyncError) -> Self {
        let msg = e.to_string();
        match e {
            SyncError::NotConfigured => ApiError::new(StatusCode::NOT_FOUND, msg),
            SyncError::Ldap(LdapError::Timeout(_)) => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, msg)
            }
            SyncError::Ldap(LdapError::Bind { .. }) => {
                ApiError::field(StatusCode::BAD_GATEWAY, "bind_dn", msg)
            }
            SyncError::Ldap(_) => ApiError::new(StatusCode::BAD_GATEWAY, msg),
            SyncError::Users(p) => p.into(),
            SyncError::Store(_) | SyncError::Sealed => {
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
    let settings = tokio::task::spawn_blocking(move || d.settings())
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    match settings {
        Some(v) => Ok(Json(v)),
        None => Err(SyncError::NotConfigured.into()),
    }
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
    let out = tokio::task::spawn_blocking(move || d.put(new))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    match out {
        Ok(v) => Ok(Json(v)),
        Err(PutError::Invalid(field, error)) => Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            field,
            error,
        )),
        Err(PutError::Store(e)) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        )),
    }
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
    let status = if !q.dry_run && !report.applied {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((status, Json(report)))
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
