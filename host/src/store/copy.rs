//! Moving a whole hub between stores: `presence-hub copy-to-postgres`
//! (SQLite → PostgreSQL) and a PostgreSQL hub's backup snapshot
//! (PostgreSQL → a SQLite file, so `POST /api/v1/backup` and
//! `presence-hub restore` work for both).
//!
//! Both go through a [`Dump`]: everything a hub stores, read in one
//! transaction of the source, written in one transaction of the target.
//! Secrets and key-value data travel sealed, as stored: the target must be
//! opened with the same `secret.key`.

use std::fmt;
use std::path::Path;

use super::{EventRecord, PluginRecord, PostgresStore, SqliteStore, StoreError, TokenRecord};

/// A connector row as stored: the record JSON and its sealed secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedConnector {
    pub id: String,
    pub plugin: String,
    /// [`super::ConnectorRecord`] as JSON, secrets left out.
    pub record: String,
    /// The secret fields as JSON, sealed with `secret.key`.
    pub secrets: Vec<u8>,
}

/// A key-value row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedKv {
    pub instance: String,
    pub key: String,
    pub value: Vec<u8>,
    /// Whether `value` is sealed (SQLite rows written before sealing
    /// existed are not, until the store's next open).
    pub sealed: bool,
}

/// Everything a hub stores, as stored. Held in memory whole: the event log
/// dominates its size (about 200 bytes an event).
#[derive(Debug, Clone, Default)]
pub struct Dump {
    pub plugins: Vec<PluginRecord>,
    pub connectors: Vec<SealedConnector>,
    pub kv: Vec<SealedKv>,
    /// `(username, JSON record)`.
    pub users: Vec<(String, String)>,
    /// `(id, username, JSON record)`; ids are kept.
    pub notes: Vec<(i64, String, String)>,
    pub tokens: Vec<TokenRecord>,
    /// `(key, value)`.
    pub settings: Vec<(String, String)>,
    /// `(id, event)`, oldest first; ids are kept.
    pub events: Vec<(i64, EventRecord)>,
}

impl Dump {
    pub fn counts(&self) -> Counts {
        let mut instances: Vec<&str> = self.kv.iter().map(|r| r.instance.as_str()).collect();
        instances.dedup();
        Counts {
            plugins: self.plugins.len() as u64,
            connectors: self.connectors.len() as u64,
            kv_instances: instances.len() as u64,
            kv_entries: self.kv.len() as u64,
            users: self.users.len() as u64,
            notes: self.notes.len() as u64,
            tokens: self.tokens.len() as u64,
            settings: self.settings.len() as u64,
            events: self.events.len() as u64,
        }
    }
}

/// How many rows of each kind a store holds (or a [`Dump`] carries).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub plugins: u64,
    pub connectors: u64,
    /// Instances with key-value data.
    pub kv_instances: u64,
    pub kv_entries: u64,
    pub users: u64,
    pub notes: u64,
    pub tokens: u64,
    pub settings: u64,
    pub events: u64,
}

impl Counts {
    pub fn is_empty(&self) -> bool {
        *self == Counts::default()
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} plugins, {} connectors, {} key-value entries of {} instances, {} users, \
             {} notes, {} tokens, {} settings, {} events",
            self.plugins,
            self.connectors,
            self.kv_entries,
            self.kv_instances,
            self.users,
            self.notes,
            self.tokens,
            self.settings,
            self.events
        )
    }
}

/// Why a copy did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(
        "{0} holds no hub database (hub.db): give the data folder of the SQLite hub to copy (--data / HUB_DATA_DIR)"
    )]
    NoSqliteHub(String),
    #[error(
        "the target database is not empty ({0}); pass --replace to delete its hub data and copy over it"
    )]
    TargetNotEmpty(Counts),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What [`sqlite_to_postgres`] did.
#[derive(Debug, Clone)]
pub struct CopyReport {
    /// What was read from the SQLite hub.
    pub read: Counts,
    /// What the PostgreSQL database holds afterwards (read back).
    pub written: Counts,
}

/// Copy the SQLite hub in `data_dir` into the PostgreSQL database at
/// `url`, in one transaction. The target must hold no hub data unless
/// `replace` (then its hub data goes first; its leases and fence counters
/// stay, so fences keep growing). The hub should not run on `data_dir`
/// meanwhile: what it writes after the read is not copied.
///
/// Secrets stay sealed with `data_dir/secret.key`: every node on the
/// database needs that file.
pub fn sqlite_to_postgres(
    data_dir: &Path,
    url: &str,
    replace: bool,
) -> Result<CopyReport, CopyError> {
    if !data_dir.join("hub.db").is_file() {
        return Err(CopyError::NoSqliteHub(data_dir.display().to_string()));
    }
    let source = SqliteStore::open(data_dir)?;
    let dump = source.dump()?;
    drop(source);
    let target = PostgresStore::connect_for_copy(url, data_dir, replace)?;
    if !replace {
        let there = target.counts()?;
        if !there.is_empty() {
            return Err(CopyError::TargetNotEmpty(there));
        }
    }
    target.load(&dump, replace)?;
    Ok(CopyReport {
        read: dump.counts(),
        written: target.counts()?,
    })
}
