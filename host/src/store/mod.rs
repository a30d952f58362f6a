//! Persistence: everything an operator sets, and the connectors' own
//! key-value data, behind [`Store`] so a shared database can serve it later.
//!
//! The embedded default is SQLite in WAL mode with `synchronous=FULL`: a call
//! that returned has been committed and survives `kill -9`.

pub mod backup;
pub mod cluster;
pub mod copy;
mod postgres;
mod secrets;
mod sqlite;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use cluster::{ClusterMessage, ClusterSignal, Coordination, Lease, NodeInfo};
pub use postgres::PostgresStore;
pub use secrets::SecretBox;
pub use sqlite::SqliteStore;

/// The key-value namespace `#presence/<instance>`: the latest presence of
/// each of the instance's endpoints, kept by the cluster relay
/// ([`crate::cluster::relay`]) for nodes that join later.
pub const PRESENCE_NAMESPACE_PREFIX: &str = "#presence/";
/// The key-value namespace holding each instance's connector status as the
/// node running it stored it ([`crate::cluster::leases`]); key: the
/// instance id, value: the status as the API shows it (JSON).
pub const STATUS_NAMESPACE: &str = "#status";
/// The key-value namespace holding each instance's directory sync settings
/// ([`crate::api::directory`]); key: the instance id, value: JSON.
pub const DIRECTORY_NAMESPACE: &str = "#directory";

/// What the hub keeps about a connector instance outside its record and
/// its own key-value namespace, declared here once: [`Store::delete_connector`]
/// drops all of it in the transaction that deletes the record, so nothing
/// of a deleted instance stays behind (and a new instance given the same
/// id starts clean). The hub's own namespaces start with `#`, which no
/// instance id has (ids are 1-64 of a-z, 0-9, `-` and `_`), so none of
/// them is ever an instance's own namespace.
pub const INSTANCE_DATA: &[InstanceData] = &[
    InstanceData::Namespace(PRESENCE_NAMESPACE_PREFIX),
    InstanceData::Key(STATUS_NAMESPACE),
    InstanceData::Key(DIRECTORY_NAMESPACE),
];

/// One kind of an instance's data in [`INSTANCE_DATA`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceData {
    /// The whole namespace `<prefix><instance>`.
    Namespace(&'static str),
    /// The key `<instance>` in this namespace.
    Key(&'static str),
}

/// The key-value rows [`Store::delete_connector`] drops with instance
/// `id`: the whole namespaces (its own first) and the namespaces in which
/// the key `id` goes.
pub(crate) fn instance_kv(id: &str) -> (Vec<String>, Vec<&'static str>) {
    let mut whole = vec![id.to_owned()];
    let mut keyed = Vec::new();
    for d in INSTANCE_DATA {
        match d {
            InstanceData::Namespace(prefix) => whole.push(format!("{prefix}{id}")),
            InstanceData::Key(namespace) => keyed.push(*namespace),
        }
    }
    (whole, keyed)
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("stored data is corrupt ({what}): {message}")]
    Corrupt { what: String, message: String },
    #[error("{0}")]
    LimitExceeded(String),
    #[error("cannot open the secret key: {0}")]
    SecretKey(String),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// PostgreSQL refused a statement, or the connection is down (the
    /// store reconnects at the next call).
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    /// A write for `instance` under `this_fence` was refused: the lease
    /// table holds another node (`holder`) or a newer `fence` (both `None`
    /// when nobody holds the instance any more). See [`Coordination`].
    #[error("{}", fenced_message(.instance, .holder.as_deref(), *.fence, *.this_fence))]
    Fenced {
        instance: String,
        holder: Option<String>,
        fence: Option<i64>,
        this_fence: i64,
    },
}

fn fenced_message(instance: &str, holder: Option<&str>, fence: Option<i64>, this: i64) -> String {
    let held = match (holder, fence) {
        (Some(h), Some(f)) => format!("node {h} holds it under fence {f}"),
        _ => "no node holds it now".to_owned(),
    };
    format!(
        "write refused for connector instance {instance} under fence {this}: {held}; \
         a newer grant exists, so this node must stop acting for the instance"
    )
}

impl From<::postgres::Error> for StoreError {
    fn from(e: ::postgres::Error) -> Self {
        // rust-postgres' Display says only "db error"; the server's
        // severity, code and message are its source. Connection errors
        // never carry the password.
        StoreError::Postgres(crate::io::failure::chain(&e))
    }
}

/// A plugin uploaded through the API (shipped plugins live in the plugins
/// directory and are not stored).
#[derive(Debug, Clone)]
pub struct PluginRecord {
    pub id: String,
    pub version: String,
    /// The manifest as uploaded (TOML).
    pub manifest: String,
    pub sha256: String,
    pub component: Vec<u8>,
    pub uploaded_at_ms: u64,
}

/// A configured connector instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConnectorRecord {
    pub id: String,
    pub plugin: String,
    /// Non-secret configuration values by field name.
    pub config: BTreeMap<String, serde_json::Value>,
    /// Secret configuration values by field name, in clear in memory only.
    #[serde(skip)]
    pub secrets: BTreeMap<String, String>,
    pub enabled: bool,
    /// Extra CA certificates (PEM) trusted for this instance's TLS.
    pub tls_ca_pem: Option<String>,
    /// Endpoints an operator asked this instance to watch.
    pub watches: Vec<String>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

/// An API token (only its hash is kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub role: String,
    #[serde(skip)]
    pub sha256: String,
    pub created_at_ms: u64,
}

/// One entry of the event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EventRecord {
    pub at_ms: u64,
    /// `report`, `decision`, `note`, `user`, `connector`.
    pub kind: String,
    pub username: Option<String>,
    pub instance: Option<String>,
    pub detail: String,
}

/// One change to a connector's key-value data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvWrite {
    Set { key: String, value: Vec<u8> },
    Delete { key: String },
}

/// A filter over the event log.
#[derive(Debug, Clone)]
pub struct EventQuery {
    pub username: Option<String>,
    pub instance: Option<String>,
    pub since_ms: u64,
    pub until_ms: u64,
    pub limit: usize,
}

/// The hub's persistent state.
pub trait Store: Send + Sync + 'static {
    /// Write a consistent copy of the whole database to `dest` (a file that
    /// must not exist) while writes go on: every write is in it whole or
    /// not at all. Secrets stay sealed in it. See [`backup`].
    fn snapshot(&self, dest: &std::path::Path) -> Result<(), StoreError>;
    fn put_plugin(&self, plugin: &PluginRecord) -> Result<(), StoreError>;
    fn delete_plugin(&self, id: &str) -> Result<bool, StoreError>;
    fn plugins(&self) -> Result<Vec<PluginRecord>, StoreError>;

    fn put_connector(&self, connector: &ConnectorRecord) -> Result<(), StoreError>;
    /// Deletes the connector, its key-value data and what the hub keeps
    /// about it ([`INSTANCE_DATA`]), in one transaction; true when the
    /// connector existed (its data goes either way, so a call again after
    /// a failure finishes the job).
    fn delete_connector(&self, id: &str) -> Result<bool, StoreError>;
    fn connectors(&self) -> Result<Vec<ConnectorRecord>, StoreError>;

    fn kv_get(&self, instance: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Fails with [`StoreError::LimitExceeded`] when the instance's data would
    /// exceed `max_total_bytes`.
    fn kv_set(
        &self,
        instance: &str,
        key: &str,
        value: &[u8],
        max_total_bytes: u64,
    ) -> Result<(), StoreError>;
    fn kv_delete(&self, instance: &str, key: &str) -> Result<(), StoreError>;
    fn kv_keys(&self, instance: &str, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Every `(key, value)` of the instance, keys in byte order: what a run
    /// loads once at its start.
    fn kv_all(&self, instance: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut all = Vec::new();
        for key in self.kv_keys(instance, "")? {
            if let Some(value) = self.kv_get(instance, &key)? {
                all.push((key, value));
            }
        }
        Ok(all)
    }
    /// Apply `writes` in order, atomically where the store can. No quota is
    /// checked: the caller keeps it (the write-behind queue checked it in
    /// memory before the write was queued).
    fn kv_write(&self, instance: &str, writes: &[KvWrite]) -> Result<(), StoreError> {
        for w in writes {
            match w {
                KvWrite::Set { key, value } => self.kv_set(instance, key, value, u64::MAX)?,
                KvWrite::Delete { key } => self.kv_delete(instance, key)?,
            }
        }
        Ok(())
    }

    /// Insert or replace users, `(username, JSON record)`, in one transaction.
    fn put_users(&self, users: &[(String, String)]) -> Result<(), StoreError>;
    /// Deletes the user and their notes.
    fn delete_user(&self, username: &str) -> Result<bool, StoreError>;
    fn users(&self) -> Result<Vec<(String, String)>, StoreError>;

    /// Returns the note's id.
    fn add_note(&self, username: &str, record: &str) -> Result<i64, StoreError>;
    fn delete_note(&self, id: i64) -> Result<bool, StoreError>;
    /// `(id, username, JSON record)`.
    fn notes(&self) -> Result<Vec<(i64, String, String)>, StoreError>;

    fn put_token(&self, token: &TokenRecord) -> Result<(), StoreError>;
    fn delete_token(&self, id: &str) -> Result<bool, StoreError>;
    fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;

    /// Append to the event log in one transaction.
    fn append_events(&self, events: &[EventRecord]) -> Result<(), StoreError>;
    /// Newest first.
    fn events(&self, query: &EventQuery) -> Result<Vec<EventRecord>, StoreError>;
    /// Retention: drop events older than the given time; returns how many.
    fn prune_events(&self, older_than_ms: u64) -> Result<usize, StoreError>;

    fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;
    fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError>;
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
