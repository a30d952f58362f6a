//! The embedded store: SQLite, WAL, `synchronous=FULL`, versioned migrations.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use super::copy::{Dump, SealedConnector, SealedKv};
use super::{
    ConnectorRecord, EventQuery, EventRecord, KvWrite, PluginRecord, SecretBox, Store, StoreError,
    TokenRecord,
};

/// Schema migrations, applied in order; `PRAGMA user_version` records how many
/// ran. Append only: a released migration never changes.
const MIGRATIONS: &[&str] = &[
    // 1: plugins, connectors, connector key-value data, settings.
    "CREATE TABLE plugins (
        id TEXT PRIMARY KEY,
        version TEXT NOT NULL,
        manifest TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        component BLOB NOT NULL,
        uploaded_at_ms INTEGER NOT NULL
    );
    CREATE TABLE connectors (
        id TEXT PRIMARY KEY,
        plugin TEXT NOT NULL,
        record TEXT NOT NULL,
        secrets BLOB NOT NULL
    );
    CREATE TABLE kv (
        instance TEXT NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        PRIMARY KEY (instance, key)
    ) WITHOUT ROWID;
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );",
    // 2: users, notes, API tokens, the event log.
    "CREATE TABLE users (
        username TEXT PRIMARY KEY,
        record TEXT NOT NULL
    );
    CREATE TABLE notes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        username TEXT NOT NULL,
        record TEXT NOT NULL
    );
    CREATE INDEX notes_user ON notes (username);
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        sha256 TEXT NOT NULL UNIQUE,
        created_at_ms INTEGER NOT NULL
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms INTEGER NOT NULL,
        kind TEXT NOT NULL,
        username TEXT,
        instance TEXT,
        detail TEXT NOT NULL
    );
    CREATE INDEX events_at ON events (at_ms);
    CREATE INDEX events_user ON events (username, at_ms);
    CREATE INDEX events_instance ON events (instance, at_ms);",
    // 3: plugins' key-value data is sealed like connector secrets (OAuth
    // refresh tokens live there); rows written before are sealed at open.
    "ALTER TABLE kv ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0;",
];

/// What sealing adds to a value (nonce and tag); not counted against a
/// plugin's key-value limit.
pub(super) const SEAL_OVERHEAD: i64 = 12 + 16;

/// SQLite-backed [`Store`].
pub struct SqliteStore {
    conn: Mutex<Connection>,
    secrets: SecretBox,
}

impl SqliteStore {
    /// Open (or create) `hub.db` and `secret.key` in `data_dir` and migrate.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        create_private_dir(data_dir)?;
        let secrets = SecretBox::open_or_create(&data_dir.join("secret.key"))?;
        let db = data_dir.join("hub.db");
        private_file(&db)?;
        let mut conn = Connection::open(&db)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Freed pages are zeroed: a value replaced by its sealed form (or a
        // deleted token) does not linger in the file.
        conn.pragma_update(None, "secure_delete", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        seal_plain_kv(&mut conn, &secrets)?;
        Ok(Self {
            conn: Mutex::new(conn),
            secrets,
        })
    }

    /// Everything stored, as stored (secrets and key-value data sealed), in
    /// one read: see [`super::copy`].
    pub fn dump(&self) -> Result<Dump, StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            let mut d = Dump::default();
            {
                let mut st = tx.prepare(
                    "SELECT id, version, manifest, sha256, component, uploaded_at_ms FROM plugins ORDER BY id",
                )?;
                d.plugins = st
                    .query_map([], |r| {
                        Ok(PluginRecord {
                            id: r.get(0)?,
                            version: r.get(1)?,
                            manifest: r.get(2)?,
                            sha256: r.get(3)?,
                            component: r.get(4)?,
                            uploaded_at_ms: r.get::<_, i64>(5)? as u64,
                        })
                    })?
                    .collect::<Result<_, _>>()?;
                let mut st =
                    tx.prepare("SELECT id, plugin, record, secrets FROM connectors ORDER BY id")?;
                d.connectors = st
                    .query_map([], |r| {
                        Ok(SealedConnector {
                            id: r.get(0)?,
                            plugin: r.get(1)?,
                            record: r.get(2)?,
                            secrets: r.get(3)?,
                        })
                    })?
                    .collect::<Result<_, _>>()?;
                let mut st = tx.prepare(
                    "SELECT instance, key, value, sealed FROM kv ORDER BY instance, key",
                )?;
                d.kv = st
                    .query_map([], |r| {
                        Ok(SealedKv {
                            instance: r.get(0)?,
                            key: r.get(1)?,
                            value: r.get(2)?,
                            sealed: r.get(3)?,
                        })
                    })?
                    .collect::<Result<_, _>>()?;
                let mut st = tx.prepare("SELECT username, record FROM users ORDER BY username")?;
                d.users = st
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                let mut st = tx.prepare("SELECT id, username, record FROM notes ORDER BY id")?;
                d.notes = st
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<Result<_, _>>()?;
                let mut st = tx.prepare(
                    "SELECT id, name, role, sha256, created_at_ms FROM tokens ORDER BY created_at_ms",
                )?;
                d.tokens = st
                    .query_map([], |r| {
                        Ok(TokenRecord {
                            id: r.get(0)?,
                            name: r.get(1)?,
                            role: r.get(2)?,
                            sha256: r.get(3)?,
                            created_at_ms: r.get::<_, i64>(4)? as u64,
                        })
                    })?
                    .collect::<Result<_, _>>()?;
                let mut st = tx.prepare("SELECT key, value FROM settings ORDER BY key")?;
                d.settings = st
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                let mut st = tx.prepare(
                    "SELECT id, at_ms, kind, username, instance, detail FROM events ORDER BY id",
                )?;
                d.events = st
                    .query_map([], |r| {
                        Ok((
                            r.get(0)?,
                            EventRecord {
                                at_ms: r.get::<_, i64>(1)? as u64,
                                kind: r.get(2)?,
                                username: r.get(3)?,
                                instance: r.get(4)?,
                                detail: r.get(5)?,
                            },
                        ))
                    })?
                    .collect::<Result<_, _>>()?;
            }
            tx.commit()?;
            Ok(d)
        })
    }

    fn open_kv(&self, value: Vec<u8>, sealed: bool) -> Result<Vec<u8>, StoreError> {
        if sealed {
            self.secrets.open(&value)
        } else {
            Ok(value)
        }
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // A poisoned lock only means another thread panicked mid-call; SQLite
        // rolled that transaction back, so the connection is still sound.
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn)
    }
}

/// Write `dump` into a new SQLite hub database at `dest` (a file that must
/// not exist), with this store's schema, in one transaction: a PostgreSQL
/// hub's backup snapshot. Sealed values stay sealed.
pub(super) fn write_dump(dest: &Path, dump: &Dump) -> Result<(), StoreError> {
    if dest.exists() {
        return Err(StoreError::Io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} exists", dest.display()),
        )));
    }
    private_file(dest)?;
    let mut conn = Connection::open(dest)?;
    migrate(&mut conn)?;
    let tx = conn.transaction()?;
    {
        let mut st = tx.prepare(
            "INSERT INTO plugins (id, version, manifest, sha256, component, uploaded_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for p in &dump.plugins {
            st.execute(params![
                p.id,
                p.version,
                p.manifest,
                p.sha256,
                p.component,
                p.uploaded_at_ms as i64
            ])?;
        }
        let mut st = tx.prepare(
            "INSERT INTO connectors (id, plugin, record, secrets) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for c in &dump.connectors {
            st.execute(params![c.id, c.plugin, c.record, c.secrets])?;
        }
        let mut st =
            tx.prepare("INSERT INTO kv (instance, key, value, sealed) VALUES (?1, ?2, ?3, ?4)")?;
        for r in &dump.kv {
            st.execute(params![r.instance, r.key, r.value, r.sealed])?;
        }
        let mut st = tx.prepare("INSERT INTO users (username, record) VALUES (?1, ?2)")?;
        for (u, r) in &dump.users {
            st.execute(params![u, r])?;
        }
        let mut st = tx.prepare("INSERT INTO notes (id, username, record) VALUES (?1, ?2, ?3)")?;
        for (id, u, r) in &dump.notes {
            st.execute(params![id, u, r])?;
        }
        let mut st = tx.prepare(
            "INSERT INTO tokens (id, name, role, sha256, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for t in &dump.tokens {
            st.execute(params![
                t.id,
                t.name,
                t.role,
                t.sha256,
                t.created_at_ms as i64
            ])?;
        }
        let mut st = tx.prepare("INSERT INTO settings (key, value) VALUES (?1, ?2)")?;
        for (k, v) in &dump.settings {
            st.execute(params![k, v])?;
        }
        let mut st = tx.prepare(
            "INSERT INTO events (id, at_ms, kind, username, instance, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for (id, e) in &dump.events {
            st.execute(params![
                id,
                e.at_ms as i64,
                e.kind,
                e.username,
                e.instance,
                e.detail
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The data directory, created readable by the hub's user only (it holds
/// the database and the key that opens its secrets). One that exists is
/// left as the operator made it.
pub(super) fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)?;
    Ok(())
}

/// The database file, 0600 (SQLite gives its -wal and -shm files the same
/// mode). An existing file is narrowed to it.
pub(super) fn private_file(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Seal the key-value rows written before values were sealed.
fn seal_plain_kv(conn: &mut Connection, secrets: &SecretBox) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    let plain: Vec<(String, String, Vec<u8>)> = {
        let mut st = tx.prepare("SELECT instance, key, value FROM kv WHERE sealed = 0")?;
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?
    };
    for (instance, key, value) in plain {
        tx.execute(
            "UPDATE kv SET value = ?3, sealed = 1 WHERE instance = ?1 AND key = ?2",
            params![instance, key, secrets.seal(&value)],
        )?;
    }
    tx.commit()?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let done: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if done > MIGRATIONS.len() {
        return Err(StoreError::Corrupt {
            what: "schema".into(),
            message: format!(
                "database is at schema version {done}, this hub knows {}; run a newer hub",
                MIGRATIONS.len()
            ),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}

impl Store for SqliteStore {
    fn snapshot(&self, dest: &Path) -> Result<(), StoreError> {
        let dest = dest.to_str().ok_or_else(|| StoreError::Corrupt {
            what: "backup path".into(),
            message: format!("{} is not UTF-8", dest.display()),
        })?;
        // One read transaction, so the copy is consistent; the store's
        // writes queue behind it on this connection for its length (well
        // under a second for 100k users).
        self.with(|c| {
            c.execute("VACUUM INTO ?1", [dest])?;
            Ok(())
        })?;
        private_file(Path::new(dest))?;
        Ok(())
    }

    fn put_plugin(&self, p: &PluginRecord) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO plugins (id, version, manifest, sha256, component, uploaded_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![p.id, p.version, p.manifest, p.sha256, p.component, p.uploaded_at_ms as i64],
            )?;
            Ok(())
        })
    }

    fn delete_plugin(&self, id: &str) -> Result<bool, StoreError> {
        self.with(|c| Ok(c.execute("DELETE FROM plugins WHERE id = ?1", [id])? > 0))
    }

    fn plugins(&self) -> Result<Vec<PluginRecord>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT id, version, manifest, sha256, component, uploaded_at_ms FROM plugins ORDER BY id",
            )?;
            let rows = st.query_map([], |r| {
                Ok(PluginRecord {
                    id: r.get(0)?,
                    version: r.get(1)?,
                    manifest: r.get(2)?,
                    sha256: r.get(3)?,
                    component: r.get(4)?,
                    uploaded_at_ms: r.get::<_, i64>(5)? as u64,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn put_connector(&self, rec: &ConnectorRecord) -> Result<(), StoreError> {
        let record = serde_json::to_string(rec).map_err(|e| StoreError::Corrupt {
            what: format!("connector {}", rec.id),
            message: e.to_string(),
        })?;
        let secrets = serde_json::to_vec(&rec.secrets).expect("a string map serialises");
        let sealed = self.secrets.seal(&secrets);
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO connectors (id, plugin, record, secrets) VALUES (?1, ?2, ?3, ?4)",
                params![rec.id, rec.plugin, record, sealed],
            )?;
            Ok(())
        })
    }

    fn delete_connector(&self, id: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            let n = tx.execute("DELETE FROM connectors WHERE id = ?1", [id])?;
            let (whole, keyed) = super::instance_kv(id);
            for namespace in whole {
                tx.execute("DELETE FROM kv WHERE instance = ?1", [namespace])?;
            }
            for namespace in keyed {
                tx.execute(
                    "DELETE FROM kv WHERE instance = ?1 AND key = ?2",
                    [namespace, id],
                )?;
            }
            tx.commit()?;
            Ok(n > 0)
        })
    }

    fn connectors(&self) -> Result<Vec<ConnectorRecord>, StoreError> {
        let rows: Vec<(String, String, Vec<u8>)> = self.with(|c| {
            let mut st = c.prepare("SELECT id, record, secrets FROM connectors ORDER BY id")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })?;
        rows.into_iter()
            .map(|(id, record, sealed)| {
                let corrupt = |message: String| StoreError::Corrupt {
                    what: format!("connector {id}"),
                    message,
                };
                let mut rec: ConnectorRecord =
                    serde_json::from_str(&record).map_err(|e| corrupt(e.to_string()))?;
                let plain = self.secrets.open(&sealed)?;
                rec.secrets = serde_json::from_slice::<BTreeMap<String, String>>(&plain)
                    .map_err(|e| corrupt(e.to_string()))?;
                Ok(rec)
            })
            .collect()
    }

    fn kv_get(&self, instance: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row: Option<(Vec<u8>, bool)> = self.with(|c| {
            Ok(c.query_row(
                "SELECT value, sealed FROM kv WHERE instance = ?1 AND key = ?2",
                params![instance, key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
        })?;
        row.map(|(v, sealed)| self.open_kv(v, sealed)).transpose()
    }

    fn kv_set(
        &self,
        instance: &str,
        key: &str,
        value: &[u8],
        max_total_bytes: u64,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            let others: i64 = tx.query_row(
                "SELECT COALESCE(SUM(length(key) + length(value) - sealed * ?3), 0) FROM kv WHERE instance = ?1 AND key <> ?2",
                params![instance, key, SEAL_OVERHEAD],
                |r| r.get(0),
            )?;
            let total = others as u64 + key.len() as u64 + value.len() as u64;
            if total > max_total_bytes {
                return Err(StoreError::LimitExceeded(format!(
                    "key-value data would grow to {total} bytes; the plugin's limit is {max_total_bytes} (manifest limits.kv-max-bytes)"
                )));
            }
            tx.execute(
                "INSERT OR REPLACE INTO kv (instance, key, value, sealed) VALUES (?1, ?2, ?3, 1)",
                params![instance, key, self.secrets.seal(value)],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn kv_delete(&self, instance: &str, key: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM kv WHERE instance = ?1 AND key = ?2",
                params![instance, key],
            )?;
            Ok(())
        })
    }

    fn kv_keys(&self, instance: &str, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.with(|c| {
            // substr comparison rather than LIKE: keys may contain % and _.
            let mut st = c.prepare(
                "SELECT key FROM kv WHERE instance = ?1 AND substr(key, 1, length(?2)) = ?2 ORDER BY key",
            )?;
            let rows = st.query_map(params![instance, prefix], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn kv_all(&self, instance: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let rows: Vec<(String, Vec<u8>, bool)> = self.with(|c| {
            let mut st =
                c.prepare("SELECT key, value, sealed FROM kv WHERE instance = ?1 ORDER BY key")?;
            let rows = st.query_map([instance], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })?;
        rows.into_iter()
            .map(|(k, v, sealed)| Ok((k, self.open_kv(v, sealed)?)))
            .collect()
    }

    fn kv_write(&self, instance: &str, writes: &[KvWrite]) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut set = tx.prepare_cached(
                    "INSERT OR REPLACE INTO kv (instance, key, value, sealed) VALUES (?1, ?2, ?3, 1)",
                )?;
                let mut delete =
                    tx.prepare_cached("DELETE FROM kv WHERE instance = ?1 AND key = ?2")?;
                for w in writes {
                    match w {
                        KvWrite::Set { key, value } => {
                            set.execute(params![instance, key, self.secrets.seal(value)])?
                        }
                        KvWrite::Delete { key } => delete.execute(params![instance, key])?,
                    };
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn put_users(&self, users: &[(String, String)]) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            for (name, record) in users {
                tx.execute(
                    "INSERT OR REPLACE INTO users (username, record) VALUES (?1, ?2)",
                    params![name, record],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn delete_user(&self, username: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            let n = tx.execute("DELETE FROM users WHERE username = ?1", [username])?;
            tx.execute("DELETE FROM notes WHERE username = ?1", [username])?;
            tx.commit()?;
            Ok(n > 0)
        })
    }

    fn users(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT username, record FROM users ORDER BY username")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn add_note(&self, username: &str, record: &str) -> Result<i64, StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO notes (username, record) VALUES (?1, ?2)",
                params![username, record],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    fn delete_note(&self, id: i64) -> Result<bool, StoreError> {
        self.with(|c| Ok(c.execute("DELETE FROM notes WHERE id = ?1", [id])? > 0))
    }

    fn notes(&self) -> Result<Vec<(i64, String, String)>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT id, username, record FROM notes ORDER BY id")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn put_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO tokens (id, name, role, sha256, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![t.id, t.name, t.role, t.sha256, t.created_at_ms as i64],
            )?;
            Ok(())
        })
    }

    fn delete_token(&self, id: &str) -> Result<bool, StoreError> {
        self.with(|c| Ok(c.execute("DELETE FROM tokens WHERE id = ?1", [id])? > 0))
    }

    fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT id, name, role, sha256, created_at_ms FROM tokens ORDER BY created_at_ms",
            )?;
            let rows = st.query_map([], |r| {
                Ok(TokenRecord {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    role: r.get(2)?,
                    sha256: r.get(3)?,
                    created_at_ms: r.get::<_, i64>(4)? as u64,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn append_events(&self, events: &[EventRecord]) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT INTO events (at_ms, kind, username, instance, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for e in events {
                    st.execute(params![e.at_ms as i64, e.kind, e.username, e.instance, e.detail])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn events(&self, q: &EventQuery) -> Result<Vec<EventRecord>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT at_ms, kind, username, instance, detail FROM events
                 WHERE (?1 IS NULL OR username = ?1) AND (?2 IS NULL OR instance = ?2)
                   AND at_ms >= ?3 AND at_ms <= ?4
                 ORDER BY id DESC LIMIT ?5",
            )?;
            let rows = st.query_map(
                params![
                    q.username,
                    q.instance,
                    q.since_ms as i64,
                    q.until_ms.min(i64::MAX as u64) as i64,
                    q.limit as i64
                ],
                |r| {
                    Ok(EventRecord {
                        at_ms: r.get::<_, i64>(0)? as u64,
                        kind: r.get(1)?,
                        username: r.get(2)?,
                        instance: r.get(3)?,
                        detail: r.get(4)?,
                    })
                },
            )?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn prune_events(&self, older_than_ms: u64) -> Result<usize, StoreError> {
        self.with(|c| {
            Ok(c.execute(
                "DELETE FROM events WHERE at_ms < ?1",
                [older_than_ms as i64],
            )?)
        })
    }

    fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            Ok(
                c.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                    r.get(0)
                })
                .optional()?,
            )
        })
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO settings (key, value) VALUES (?1, ?2)",
                params![key, value],
            )?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connector(id: &str) -> ConnectorRecord {
        ConnectorRecord {
            id: id.into(),
            plugin: "p".into(),
            config: BTreeMap::from([("server".into(), serde_json::json!("pbx:5060"))]),
            secrets: BTreeMap::from([("password".into(), "s3cret-value".into())]),
            enabled: true,
            tls_ca_pem: None,
            watches: vec!["1001".into()],
            created_at_ms: 1,
            updated_at_ms: 2,
        }
    }

    #[test]
    fn connectors_round_trip_with_secrets_encrypted() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        s.put_connector(&connector("a")).unwrap();
        assert_eq!(s.connectors().unwrap(), vec![connector("a")]);
        assert_eq!(
            s.connectors().unwrap()[0].secrets["password"],
            "s3cret-value"
        );
        drop(s);
        let raw = std::fs::read(dir.path().join("hub.db")).unwrap();
        let wal = std::fs::read(dir.path().join("hub.db-wal")).unwrap_or_default();
        for bytes in [raw, wal] {
            assert!(!bytes.windows(12).any(|w| w == b"s3cret-value"));
        }
        let s = SqliteStore::open(dir.path()).unwrap();
        assert!(s.delete_connector("a").unwrap());
        assert!(s.connectors().unwrap().is_empty());
    }

    #[test]
    fn kv_values_are_sealed_and_files_private() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let s = SqliteStore::open(&data).unwrap();
        s.kv_set("t", "refresh", b"refresh-token-abcdef", 1000)
            .unwrap();
        s.kv_write(
            "t",
            &[KvWrite::Set {
                key: "access".into(),
                value: b"access-token-ghijkl".to_vec(),
            }],
        )
        .unwrap();
        // A value written before sealing existed is sealed at the next open.
        s.with(|c| {
            c.execute(
                "INSERT INTO kv (instance, key, value) VALUES ('t', 'old', CAST('old-plain-token-mnop' AS BLOB))",
                [],
            )?;
            Ok(())
        })
        .unwrap();
        drop(s);
        let s = SqliteStore::open(&data).unwrap();
        assert_eq!(
            s.kv_get("t", "refresh").unwrap().unwrap(),
            b"refresh-token-abcdef"
        );
        assert_eq!(s.kv_all("t").unwrap().len(), 3);
        assert_eq!(
            s.kv_get("t", "old").unwrap().unwrap(),
            b"old-plain-token-mnop"
        );
        // The limit counts what the plugin stored, not the seal.
        s.kv_set("u", "k", &[7; 90], 91).unwrap();
        drop(s);
        for f in std::fs::read_dir(&data).unwrap() {
            let bytes = std::fs::read(f.unwrap().path()).unwrap();
            for plain in [&b"refresh-token"[..], b"access-token", b"old-plain-token"] {
                assert!(!bytes.windows(plain.len()).any(|w| w == plain));
            }
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&data), 0o700);
            assert_eq!(mode(&data.join("hub.db")), 0o600);
            assert_eq!(mode(&data.join("secret.key")), 0o600);
        }
    }

    #[test]
    fn kv_write_applies_in_order_and_kv_all_reads_one_instance() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        s.kv_set("b", "k", b"other", 100).unwrap();
        let set = |k: &str, v: &[u8]| KvWrite::Set {
            key: k.into(),
            value: v.to_vec(),
        };
        s.kv_write(
            "a",
            &[
                set("k", b"1"),
                set("j", b"2"),
                KvWrite::Delete { key: "k".into() },
                set("k", b"3"),
            ],
        )
        .unwrap();
        assert_eq!(
            s.kv_all("a").unwrap(),
            vec![("j".into(), b"2".to_vec()), ("k".into(), b"3".to_vec())]
        );
    }

    #[test]
    fn kv_is_per_instance_bounded_and_prefix_listed() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        s.kv_set("a", "tok/1", b"x", 100).unwrap();
        s.kv_set("a", "tok/2", b"y", 100).unwrap();
        s.kv_set("a", "other%", b"z", 100).unwrap();
        s.kv_set("b", "tok/3", b"w", 100).unwrap();
        assert_eq!(s.kv_keys("a", "tok/").unwrap(), vec!["tok/1", "tok/2"]);
        assert_eq!(s.kv_keys("a", "other%").unwrap(), vec!["other%"]);
        assert_eq!(s.kv_get("b", "tok/1").unwrap(), None);
        let err = s.kv_set("a", "big", &[0; 200], 100).unwrap_err();
        assert!(matches!(err, StoreError::LimitExceeded(_)));
        // Replacing a value counts its new size only.
        s.kv_set("a", "tok/1", &[1; 50], 100).unwrap();
        s.kv_delete("a", "tok/1").unwrap();
        assert_eq!(s.kv_get("a", "tok/1").unwrap(), None);
        s.put_connector(&connector("a")).unwrap();
        s.delete_connector("a").unwrap();
        assert!(s.kv_keys("a", "").unwrap().is_empty());
    }

    #[test]
    fn migrations_are_recorded_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path()).unwrap());
        let s = SqliteStore::open(dir.path()).unwrap();
        s.set_setting("k", "v").unwrap();
        let v: usize = s
            .with(|c| Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len());
    }
}
