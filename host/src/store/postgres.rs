//! The shared store: PostgreSQL, for several hub nodes on one database
//! (`database_url`). Implements [`Store`] with SQLite's semantics and
//! [`Coordination`] (nodes, leases with fencing tokens, the cluster log).
//!
//! The driver is `postgres`, the blocking client of rust-postgres. It runs
//! its own Tokio runtime and panics when called on a runtime thread, and
//! every [`Store`] call is blocking and made from async code; so the store
//! owns a few worker OS threads, each with its own connection, fed jobs
//! over a channel. A worker whose connection broke reconnects at its next
//! job; meanwhile calls fail with [`StoreError::Postgres`]. One more
//! thread holds a `LISTEN` connection and turns notifications into
//! [`ClusterSignal`]s.
//!
//! Schema: versioned migrations in `host/migrations/postgres/`, applied by
//! refinery at connect under an advisory lock (nodes starting together
//! migrate once). Secrets and key-value values are sealed with the data
//! folder's `secret.key`, as in SQLite; every node needs the same file,
//! checked at connect against a sealed known text in `settings`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use base64::Engine as _;
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, Config, Transaction};
use tokio::sync::broadcast;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::cluster::{ClusterMessage, ClusterSignal, Coordination, Lease, NodeInfo};
use super::copy::{Counts, Dump, SealedConnector, SealedKv};
use super::sqlite::{SEAL_OVERHEAD, create_private_dir, write_dump};
use super::{
    ConnectorRecord, EventQuery, EventRecord, KvWrite, PluginRecord, SecretBox, Store, StoreError,
    TokenRecord,
};

mod embedded {
    refinery::embed_migrations!("migrations/postgres");
}

mod tls;

/// The notification channel of every change and message.
pub const CHANNEL: &str = "presence_hub_changes";
/// Worker threads (and connections) per store.
const WORKERS: usize = 4;
/// Advisory lock keys (one bigint key space, ASCII tags).
const MIGRATE_LOCK: i64 = 0x6875_625f_6d69_6772; // "hub_migr"
const PUBLISH_LOCK: i64 = 0x6875_625f_7075_626c; // "hub_publ"
/// The settings row holding `KEY_CHECK_PLAIN` sealed with the key of the
/// first node that connected; not part of the hub's settings (not dumped,
/// not counted).
const KEY_CHECK_SETTING: &str = "store.secret_key_check";
const KEY_CHECK_PLAIN: &[u8] = b"presence-hub secret.key check v1";
/// The tables whose changes are announced as [`ClusterSignal::Changed`].
const PLUGINS: &str = "plugins";
const CONNECTORS: &str = "connectors";
const USERS: &str = "users";
const NOTES: &str = "notes";
const TOKENS: &str = "tokens";
const SETTINGS: &str = "settings";

type Job = Box<dyn FnOnce(Result<&mut Client, StoreError>) + Send>;

/// PostgreSQL-backed [`Store`] and [`Coordination`].
pub struct PostgresStore {
    jobs: mpsc::Sender<Job>,
    secrets: SecretBox,
    node_id: String,
    /// The fence this node acts under, per instance (see
    /// [`Coordination::set_fence`]).
    fences: Mutex<HashMap<String, i64>>,
    signals: broadcast::Sender<ClusterSignal>,
    stop: Arc<AtomicBool>,
    /// Whether this store's first heartbeat was written (it sets the node's
    /// `started_at`).
    announced: AtomicBool,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // Workers end when `jobs` (the only sender) drops; the listener
        // sees the flag within its poll interval.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How [`PostgresStore::open`] treats the database's key check.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyCheck {
    /// Refuse a key that does not open the check; write it when missing.
    Verify,
    /// `copy-to-postgres --replace`: the check is rewritten with the load.
    Replace,
}

impl PostgresStore {
    /// Connect to `url` (a libpq URL or key=value string, e.g.
    /// `postgres://hub:pw@db.example.net/hub?sslmode=verify-full&sslrootcert=/etc/presence-hub/db-ca.pem`;
    /// `sslmode` disable, prefer (default), require, verify-ca or
    /// verify-full and `sslrootcert` as in libpq; see `postgres/tls.rs`), apply
    /// pending migrations, check the key, and return once the `LISTEN`
    /// connection is in place. Every connection (workers, `LISTEN`) uses
    /// the same TLS setup.
    /// `data_dir` holds `secret.key`, created by the first node to connect
    /// (which leaves a sealed check value in `settings`); every further
    /// node needs a copy of that file. `node_id` names this node in leases,
    /// heartbeats and notifications. Blocks (up to about 20 s when the
    /// database does not answer); fine on a Tokio thread.
    ///
    /// Errors: [`StoreError::Postgres`] when the URL is invalid (an
    /// unknown sslmode names the allowed ones; an unreadable sslrootcert
    /// names its path), the server's certificate is not trusted (naming
    /// the setting to change), or the database cannot be reached or
    /// migrated;
    /// [`StoreError::SecretKey`] when `secret.key` is missing or is not the
    /// first node's.
    pub fn connect(url: &str, data_dir: &Path, node_id: &str) -> Result<Self, StoreError> {
        Self::open(url, data_dir, node_id, KeyCheck::Verify)
    }

    /// [`Self::connect`] for `copy-to-postgres`: with `replace`, a key check
    /// of another key is not refused (the load replaces it).
    pub(super) fn connect_for_copy(
        url: &str,
        data_dir: &Path,
        replace: bool,
    ) -> Result<Self, StoreError> {
        let check = if replace {
            KeyCheck::Replace
        } else {
            KeyCheck::Verify
        };
        Self::open(url, data_dir, "copy-to-postgres", check)
    }

    fn open(
        url: &str,
        data_dir: &Path,
        node_id: &str,
        check: KeyCheck,
    ) -> Result<Self, StoreError> {
        let (mut config, tls) = tls::parse(url)?;
        tracing::info!(sslmode = %tls.mode, certificate_check = %tls.check(), "PostgreSQL TLS");
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        if config.get_application_name().is_none() {
            config.application_name(&format!("presence-hub {node_id}"));
        }
        // A peer gone without a FIN (power loss, partition) is noticed
        // within about 20 s instead of the kernel's two hours.
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(2);

        let tls = Arc::new(tls);
        let jobs = spawn_workers(&config, &tls, WORKERS);
        let (signals, _) = broadcast::channel(4096);
        let stop = Arc::new(AtomicBool::new(false));

        // Migrations and the key check run on a worker: this may be called
        // on a Tokio thread, where the blocking client cannot run.
        run_on(&jobs, |c| {
            c.query_one("SELECT pg_advisory_lock($1)", &[&MIGRATE_LOCK])?;
            let r = embedded::migrations::runner()
                .run(c)
                .map(|_| ())
                .map_err(|e| StoreError::Postgres(format!("migrating the schema: {e}")));
            c.query_one("SELECT pg_advisory_unlock($1)", &[&MIGRATE_LOCK])?;
            r
        })?;

        create_private_dir(data_dir)?;
        let key_path = data_dir.join("secret.key");
        let stored: Option<String> = run_on(&jobs, |c| {
            Ok(c.query_opt(
                "SELECT value FROM settings WHERE key = $1",
                &[&KEY_CHECK_SETTING],
            )?
            .map(|r| r.get(0)))
        })?;
        if stored.is_some() && check == KeyCheck::Verify && !key_path.exists() {
            return Err(StoreError::SecretKey(format!(
                "{} is missing and the database's secrets are sealed with the first node's key: \
                 copy secret.key from the first node's data folder to {} (mode 0600)",
                key_path.display(),
                key_path.display()
            )));
        }
        let secrets = SecretBox::open_or_create(&key_path)?;
        let stored = match stored {
            Some(s) => Some(s),
            None if check == KeyCheck::Verify => {
                let mine =
                    base64::engine::general_purpose::STANDARD.encode(secrets.seal(KEY_CHECK_PLAIN));
                // Nodes starting together: the first insert wins, the
                // others check against it.
                run_on(&jobs, move |c| {
                    c.execute(
                        "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                        &[&KEY_CHECK_SETTING, &mine],
                    )?;
                    Ok(c.query_opt(
                        "SELECT value FROM settings WHERE key = $1",
                        &[&KEY_CHECK_SETTING],
                    )?
                    .map(|r| r.get::<_, String>(0)))
                })?
            }
            None => None,
        };
        if let (Some(stored), KeyCheck::Verify) = (stored, check) {
            let opens = base64::engine::general_purpose::STANDARD
                .decode(stored.as_bytes())
                .ok()
                .and_then(|sealed| secrets.open(&sealed).ok())
                .is_some_and(|plain| plain == KEY_CHECK_PLAIN);
            if !opens {
                return Err(StoreError::SecretKey(format!(
                    "{} is not the key this database's secrets are sealed with: \
                     copy secret.key from the first node's data folder to {} (mode 0600)",
                    key_path.display(),
                    key_path.display()
                )));
            }
        }

        // Wait until the LISTEN is in place: a change committed after
        // connect returns always wakes this node.
        let ready = spawn_listener(config, tls, signals.clone(), stop.clone());
        if ready.recv_timeout(Duration::from_secs(15)).is_err() {
            stop.store(true, Ordering::Relaxed);
            return Err(StoreError::Postgres(
                "the notification connection (LISTEN) did not come up within 15 s".into(),
            ));
        }
        Ok(Self {
            jobs,
            secrets,
            node_id: node_id.to_owned(),
            fences: Mutex::new(HashMap::new()),
            signals,
            stop,
            announced: AtomicBool::new(false),
        })
    }

    /// Run `f` on a worker's connection and wait for its result.
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        run_on(&self.jobs, f)
    }

    fn fence_of(&self, instance: &str) -> Option<i64> {
        self.fences
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(instance)
            .copied()
    }

    /// Log a fenced refusal where it happened (the caller's span names the
    /// instance and plugin).
    fn logged<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(StoreError::Fenced {
            instance,
            holder,
            fence,
            this_fence,
        }) = &r
        {
            tracing::warn!(
                instance = %instance,
                node = %self.node_id,
                fence = this_fence,
                holder = %holder.as_deref().unwrap_or("-"),
                holder_fence = fence.unwrap_or(0),
                "fenced: write refused, a newer lease holds the instance; this node stops acting for it"
            );
        }
        r
    }

    fn open_connector(&self, c: SealedConnector) -> Result<ConnectorRecord, StoreError> {
        let corrupt = |message: String| StoreError::Corrupt {
            what: format!("connector {}", c.id),
            message,
        };
        let mut rec: ConnectorRecord =
            serde_json::from_str(&c.record).map_err(|e| corrupt(e.to_string()))?;
        let plain = self.secrets.open(&c.secrets)?;
        rec.secrets = serde_json::from_slice(&plain).map_err(|e| corrupt(e.to_string()))?;
        Ok(rec)
    }

    /// How many rows of each kind the database holds (the key check not
    /// counted).
    pub fn counts(&self) -> Result<Counts, StoreError> {
        self.run(|c| {
            let r = c.query_one(
                "SELECT (SELECT count(*) FROM plugins), (SELECT count(*) FROM connectors),
                        (SELECT count(DISTINCT instance) FROM kv), (SELECT count(*) FROM kv),
                        (SELECT count(*) FROM users), (SELECT count(*) FROM notes),
                        (SELECT count(*) FROM tokens),
                        (SELECT count(*) FROM settings WHERE key <> $1),
                        (SELECT count(*) FROM events)",
                &[&KEY_CHECK_SETTING],
            )?;
            let n = |i: usize| r.get::<_, i64>(i) as u64;
            Ok(Counts {
                plugins: n(0),
                connectors: n(1),
                kv_instances: n(2),
                kv_entries: n(3),
                users: n(4),
                notes: n(5),
                tokens: n(6),
                settings: n(7),
                events: n(8),
            })
        })
    }

    /// Everything stored, as stored, read in one `REPEATABLE READ`
    /// transaction (a consistent snapshot while other nodes write).
    pub fn dump(&self) -> Result<Dump, StoreError> {
        self.run(|c| {
            let mut tx = c
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let d = read_dump(&mut tx)?;
            tx.commit()?;
            Ok(d)
        })
    }

    /// Write `dump` in one transaction (see [`super::copy`]): into an empty
    /// database, or with `replace` over its hub data (leases, fence
    /// counters and the cluster log stay). Unsealed key-value values are
    /// sealed on the way. Every node is told to re-read everything.
    pub fn load(&self, dump: &Dump, replace: bool) -> Result<(), StoreError> {
        let mut dump = dump.clone();
        for r in &mut dump.kv {
            if !r.sealed {
                r.value = self.secrets.seal(&r.value);
                r.sealed = true;
            }
        }
        dump.settings.retain(|(k, _)| k != KEY_CHECK_SETTING);
        let check =
            base64::engine::general_purpose::STANDARD.encode(self.secrets.seal(KEY_CHECK_PLAIN));
        let node = self.node_id.clone();
        self.run(move |c| {
            let mut tx = c.transaction()?;
            if replace {
                tx.batch_execute(
                    "TRUNCATE plugins, connectors, kv, settings, users, notes, tokens, events",
                )?;
            }
            write_dump_pg(&mut tx, &dump)?;
            tx.execute(
                "INSERT INTO settings (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&KEY_CHECK_SETTING, &check],
            )?;
            for table in [PLUGINS, CONNECTORS, USERS, NOTES, TOKENS, SETTINGS] {
                notify_change(&mut tx, table, &node)?;
            }
            tx.commit()?;
            Ok(())
        })
    }
}

/// Send `f` to a worker and wait for its result.
fn run_on<T: Send + 'static>(
    jobs: &mpsc::Sender<Job>,
    f: impl FnOnce(&mut Client) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let (reply, result) = mpsc::sync_channel(1);
    let job: Job = Box::new(move |client| {
        let r = client.and_then(f);
        let _ = reply.send(r);
    });
    jobs.send(job)
        .map_err(|_| StoreError::Postgres("the store's worker threads have stopped".into()))?;
    result.recv().map_err(|_| {
        StoreError::Postgres("a store worker failed during the call (see the log)".into())
    })?
}

/// `n` threads, each owning one connection, taking jobs from one queue.
fn spawn_workers(config: &Config, tls: &Arc<tls::Tls>, n: usize) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..n {
        let rx = rx.clone();
        let config = config.clone();
        let tls = tls.clone();
        std::thread::Builder::new()
            .name(format!("pg-store-{i}"))
            .spawn(move || {
                let mut client: Option<Client> = None;
                loop {
                    let job = {
                        let rx = rx.lock().unwrap_or_else(|p| p.into_inner());
                        rx.recv()
                    };
                    let Ok(job) = job else { return };
                    if client.as_ref().is_some_and(Client::is_closed) {
                        tracing::warn!("PostgreSQL connection lost; reconnecting");
                        client = None;
                    }
                    if client.is_none() {
                        match config.connect(tls.connector()) {
                            Ok(c) => client = Some(c),
                            Err(e) => {
                                job(Err(StoreError::Postgres(format!(
                                    "cannot connect to the database (retried at the next call): {}",
                                    tls.explain(&e)
                                ))));
                                continue;
                            }
                        }
                    }
                    let c = client.as_mut().expect("connected above");
                    let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Ok(c))));
                    if ok.is_err() {
                        // The caller sees its reply channel close; the
                        // connection may be mid-transaction, so it goes.
                        client = None;
                    }
                }
            })
            .expect("spawn a store worker thread");
    }
    tx
}

/// `LISTEN` on [`CHANNEL`] and forward notifications as signals until
/// `stop`; reconnects (backing off up to 5 s) and then sends
/// [`ClusterSignal::Reconnected`]. The returned channel receives `()` once
/// the first `LISTEN` is in place.
fn spawn_listener(
    config: Config,
    tls: Arc<tls::Tls>,
    signals: broadcast::Sender<ClusterSignal>,
    stop: Arc<AtomicBool>,
) -> mpsc::Receiver<()> {
    let (ready_tx, ready) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("pg-listen".into())
        .spawn(move || {
            let mut first = true;
            let mut backoff = Duration::from_millis(100);
            while !stop.load(Ordering::Relaxed) {
                let connector: MakeRustlsConnect = tls.connector();
                let mut client = match config
                    .connect(connector)
                    .and_then(|mut c| c.batch_execute(&format!("LISTEN {CHANNEL}")).map(|_| c))
                {
                    Ok(c) => c,
                    Err(e) => {
                        let error = tls.explain(&e);
                        tracing::warn!(%error, "PostgreSQL LISTEN connection failed; retrying in {backoff:?}");
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                };
                backoff = Duration::from_millis(100);
                if first {
                    let _ = ready_tx.send(());
                } else {
                    tracing::info!("PostgreSQL LISTEN connection back");
                    let _ = signals.send(ClusterSignal::Reconnected);
                }
                first = false;
                let mut idle = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let next = {
                        let mut n = client.notifications();
                        let mut it = n.timeout_iter(Duration::from_millis(250));
                        it.next()
                    };
                    match next {
                        Ok(Some(n)) => {
                            idle = 0;
                            if let Some(s) = parse_signal(n.payload()) {
                                let _ = signals.send(s);
                            }
                        }
                        Ok(None) => {
                            idle += 1;
                            // Every 5 s of quiet, make sure the server is
                            // still there (notifications arriving meanwhile
                            // are queued, not lost).
                            if idle >= 20 {
                                idle = 0;
                                if let Err(e) = client.batch_execute("SELECT 1") {
                                    tracing::warn!(error = %e, "PostgreSQL LISTEN connection lost");
                                    break;
                                }
                            }
                            if client.is_closed() {
                                break;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "PostgreSQL LISTEN connection lost");
                            break;
                        }
                    }
                }
            }
        })
        .expect("spawn the LISTEN thread");
    ready
}

/// `msg:<seq>` or `<table>:<origin node>`.
fn parse_signal(payload: &str) -> Option<ClusterSignal> {
    let (head, rest) = payload.split_once(':')?;
    if head == "msg" {
        return rest.parse().ok().map(|seq| ClusterSignal::Message { seq });
    }
    Some(ClusterSignal::Changed {
        table: head.to_owned(),
        origin: rest.to_owned(),
    })
}

fn notify_change(tx: &mut Transaction<'_>, table: &str, node: &str) -> Result<(), StoreError> {
    tx.execute(
        "SELECT pg_notify($1, $2)",
        &[&CHANNEL, &format!("{table}:{node}")],
    )?;
    Ok(())
}

/// Refuse unless the lease on `instance` is `node`'s under `this_fence`.
/// `FOR SHARE` holds the lease row until commit, so no takeover can land
/// between this check and the write it guards.
fn check_fence_tx(
    tx: &mut Transaction<'_>,
    instance: &str,
    node: &str,
    this_fence: i64,
) -> Result<(), StoreError> {
    let row = tx.query_opt(
        "SELECT node, fence FROM leases WHERE instance = $1 FOR SHARE",
        &[&instance],
    )?;
    let (holder, fence) = match row {
        Some(r) => (Some(r.get::<_, String>(0)), Some(r.get::<_, i64>(1))),
        None => (None, None),
    };
    if holder.as_deref() == Some(node) && fence == Some(this_fence) {
        return Ok(());
    }
    Err(StoreError::Fenced {
        instance: instance.to_owned(),
        holder,
        fence,
        this_fence,
    })
}

fn ms(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn read_dump(tx: &mut Transaction<'_>) -> Result<Dump, StoreError> {
    let mut d = Dump::default();
    for r in tx.query(
        "SELECT id, version, manifest, sha256, component, uploaded_at_ms FROM plugins ORDER BY id",
        &[],
    )? {
        d.plugins.push(PluginRecord {
            id: r.get(0),
            version: r.get(1),
            manifest: r.get(2),
            sha256: r.get(3),
            component: r.get(4),
            uploaded_at_ms: r.get::<_, i64>(5) as u64,
        });
    }
    for r in tx.query(
        "SELECT id, plugin, record, secrets FROM connectors ORDER BY id",
        &[],
    )? {
        d.connectors.push(SealedConnector {
            id: r.get(0),
            plugin: r.get(1),
            record: r.get(2),
            secrets: r.get(3),
        });
    }
    for r in tx.query(
        "SELECT instance, key, value FROM kv ORDER BY instance, key",
        &[],
    )? {
        d.kv.push(SealedKv {
            instance: r.get(0),
            key: r.get(1),
            value: r.get(2),
            sealed: true,
        });
    }
    for r in tx.query("SELECT username, record FROM users ORDER BY username", &[])? {
        d.users.push((r.get(0), r.get(1)));
    }
    for r in tx.query("SELECT id, username, record FROM notes ORDER BY id", &[])? {
        d.notes.push((r.get(0), r.get(1), r.get(2)));
    }
    for r in tx.query(
        "SELECT id, name, role, sha256, created_at_ms FROM tokens ORDER BY created_at_ms, id",
        &[],
    )? {
        d.tokens.push(TokenRecord {
            id: r.get(0),
            name: r.get(1),
            role: r.get(2),
            sha256: r.get(3),
            created_at_ms: r.get::<_, i64>(4) as u64,
        });
    }
    for r in tx.query(
        "SELECT key, value FROM settings WHERE key <> $1 ORDER BY key",
        &[&KEY_CHECK_SETTING],
    )? {
        d.settings.push((r.get(0), r.get(1)));
    }
    for r in tx.query(
        "SELECT id, at_ms, kind, username, instance, detail FROM events ORDER BY id",
        &[],
    )? {
        d.events.push((
            r.get(0),
            EventRecord {
                at_ms: r.get::<_, i64>(1) as u64,
                kind: r.get(2),
                username: r.get(3),
                instance: r.get(4),
                detail: r.get(5),
            },
        ));
    }
    Ok(d)
}

/// Insert a dump's rows, a table at a time (`unnest` of arrays: one
/// statement per table, not per row), and move the id sequences past the
/// copied ids.
fn write_dump_pg(tx: &mut Transaction<'_>, d: &Dump) -> Result<(), StoreError> {
    for p in &d.plugins {
        tx.execute(
            "INSERT INTO plugins (id, version, manifest, sha256, component, uploaded_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &p.id,
                &p.version,
                &p.manifest,
                &p.sha256,
                &p.component,
                &ms(p.uploaded_at_ms),
            ],
        )?;
    }
    for c in &d.connectors {
        tx.execute(
            "INSERT INTO connectors (id, plugin, record, secrets) VALUES ($1, $2, $3, $4)",
            &[&c.id, &c.plugin, &c.record, &c.secrets],
        )?;
    }
    let col = |f: fn(&SealedKv) -> &str| d.kv.iter().map(f).collect::<Vec<_>>();
    let values: Vec<&[u8]> = d.kv.iter().map(|r| r.value.as_slice()).collect();
    tx.execute(
        "INSERT INTO kv (instance, key, value) SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[])",
        &[&col(|r| &r.instance), &col(|r| &r.key), &values],
    )?;
    let (names, records): (Vec<&str>, Vec<&str>) = d
        .users
        .iter()
        .map(|(u, r)| (u.as_str(), r.as_str()))
        .unzip();
    tx.execute(
        "INSERT INTO users (username, record) SELECT * FROM unnest($1::text[], $2::text[])",
        &[&names, &records],
    )?;
    let ids: Vec<i64> = d.notes.iter().map(|n| n.0).collect();
    let users: Vec<&str> = d.notes.iter().map(|n| n.1.as_str()).collect();
    let records: Vec<&str> = d.notes.iter().map(|n| n.2.as_str()).collect();
    tx.execute(
        "INSERT INTO notes (id, username, record) SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[])",
        &[&ids, &users, &records],
    )?;
    for t in &d.tokens {
        tx.execute(
            "INSERT INTO tokens (id, name, role, sha256, created_at_ms) VALUES ($1, $2, $3, $4, $5)",
            &[&t.id, &t.name, &t.role, &t.sha256, &ms(t.created_at_ms)],
        )?;
    }
    for (k, v) in &d.settings {
        tx.execute("INSERT INTO settings (key, value) VALUES ($1, $2)", &[k, v])?;
    }
    for chunk in d.events.chunks(10_000) {
        let ids: Vec<i64> = chunk.iter().map(|e| e.0).collect();
        let at: Vec<i64> = chunk.iter().map(|e| ms(e.1.at_ms)).collect();
        let kind: Vec<&str> = chunk.iter().map(|e| e.1.kind.as_str()).collect();
        let user: Vec<Option<&str>> = chunk.iter().map(|e| e.1.username.as_deref()).collect();
        let inst: Vec<Option<&str>> = chunk.iter().map(|e| e.1.instance.as_deref()).collect();
        let detail: Vec<&str> = chunk.iter().map(|e| e.1.detail.as_str()).collect();
        tx.execute(
            "INSERT INTO events (id, at_ms, kind, username, instance, detail)
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[])",
            &[&ids, &at, &kind, &user, &inst, &detail],
        )?;
    }
    tx.batch_execute(
        "SELECT setval(pg_get_serial_sequence('notes', 'id'), COALESCE((SELECT max(id) FROM notes), 0) + 1, false);
         SELECT setval(pg_get_serial_sequence('events', 'id'), COALESCE((SELECT max(id) FROM events), 0) + 1, false);",
    )?;
    Ok(())
}

impl PostgresStore {
    /// An operator write: `f` in one transaction, then a change of `table`
    /// announced to every node ([`ClusterSignal::Changed`]), then commit
    /// (the notification goes out with the commit, or not at all).
    fn write<T: Send + 'static>(
        &self,
        table: &'static str,
        f: impl FnOnce(&mut Transaction<'_>, &str) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let node = self.node_id.clone();
        self.run(move |c| {
            let mut tx = c.transaction()?;
            let out = f(&mut tx, &node)?;
            notify_change(&mut tx, table, &node)?;
            tx.commit()?;
            Ok(out)
        })
    }
}

impl Store for PostgresStore {
    /// A SQLite hub database with everything this one holds, read in one
    /// `REPEATABLE READ` transaction: what `presence-hub restore` takes.
    fn snapshot(&self, dest: &Path) -> Result<(), StoreError> {
        let dump = self.dump()?;
        write_dump(dest, &dump)
    }

    fn put_plugin(&self, p: &PluginRecord) -> Result<(), StoreError> {
        let p = p.clone();
        self.write(PLUGINS, move |tx, _| {
            tx.execute(
                "INSERT INTO plugins (id, version, manifest, sha256, component, uploaded_at_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, manifest = EXCLUDED.manifest,
                    sha256 = EXCLUDED.sha256, component = EXCLUDED.component,
                    uploaded_at_ms = EXCLUDED.uploaded_at_ms",
                &[&p.id, &p.version, &p.manifest, &p.sha256, &p.component, &ms(p.uploaded_at_ms)],
            )?;
            Ok(())
        })
    }

    fn delete_plugin(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(PLUGINS, move |tx, _| {
            Ok(tx.execute("DELETE FROM plugins WHERE id = $1", &[&id])? > 0)
        })
    }

    fn plugins(&self) -> Result<Vec<PluginRecord>, StoreError> {
        self.run(|c| {
            Ok(c.query(
                "SELECT id, version, manifest, sha256, component, uploaded_at_ms FROM plugins ORDER BY id",
                &[],
            )?
            .into_iter()
            .map(|r| PluginRecord {
                id: r.get(0),
                version: r.get(1),
                manifest: r.get(2),
                sha256: r.get(3),
                component: r.get(4),
                uploaded_at_ms: r.get::<_, i64>(5) as u64,
            })
            .collect())
        })
    }

    fn put_connector(&self, rec: &ConnectorRecord) -> Result<(), StoreError> {
        let record = serde_json::to_string(rec).map_err(|e| StoreError::Corrupt {
            what: format!("connector {}", rec.id),
            message: e.to_string(),
        })?;
        let secrets = serde_json::to_vec(&rec.secrets).expect("a string map serialises");
        let sealed = self.secrets.seal(&secrets);
        let (id, plugin) = (rec.id.clone(), rec.plugin.clone());
        self.write(CONNECTORS, move |tx, _| {
            tx.execute(
                "INSERT INTO connectors (id, plugin, record, secrets) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO UPDATE SET plugin = EXCLUDED.plugin, record = EXCLUDED.record,
                    secrets = EXCLUDED.secrets",
                &[&id, &plugin, &record, &sealed],
            )?;
            Ok(())
        })
    }

    fn delete_connector(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        let (whole, keyed) = super::instance_kv(&id);
        self.write(CONNECTORS, move |tx, _| {
            let n = tx.execute("DELETE FROM connectors WHERE id = $1", &[&id])?;
            tx.execute(
                "DELETE FROM kv WHERE instance = ANY($1::text[])
                    OR (instance = ANY($2::text[]) AND key = $3)",
                &[&whole, &keyed, &id],
            )?;
            Ok(n > 0)
        })
    }

    fn connectors(&self) -> Result<Vec<ConnectorRecord>, StoreError> {
        let rows = self.run(|c| {
            Ok(c.query(
                "SELECT id, plugin, record, secrets FROM connectors ORDER BY id",
                &[],
            )?
            .into_iter()
            .map(|r| SealedConnector {
                id: r.get(0),
                plugin: r.get(1),
                record: r.get(2),
                secrets: r.get(3),
            })
            .collect::<Vec<_>>())
        })?;
        rows.into_iter().map(|c| self.open_connector(c)).collect()
    }

    fn kv_get(&self, instance: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (instance, key) = (instance.to_owned(), key.to_owned());
        let sealed: Option<Vec<u8>> = self.run(move |c| {
            Ok(c.query_opt(
                "SELECT value FROM kv WHERE instance = $1 AND key = $2",
                &[&instance, &key],
            )?
            .map(|r| r.get(0)))
        })?;
        sealed.map(|v| self.secrets.open(&v)).transpose()
    }

    fn kv_set(
        &self,
        instance: &str,
        key: &str,
        value: &[u8],
        max_total_bytes: u64,
    ) -> Result<(), StoreError> {
        let fence = self.fence_of(instance);
        let sealed = self.secrets.seal(value);
        let (instance, key, node) = (instance.to_owned(), key.to_owned(), self.node_id.clone());
        let len = value.len() as u64;
        let r = self.run(move |c| {
            let mut tx = c.transaction()?;
            if let Some(f) = fence {
                check_fence_tx(&mut tx, &instance, &node, f)?;
            }
            // One writer per instance at a time, so two writes cannot both
            // pass the limit.
            tx.execute(
                "SELECT pg_advisory_xact_lock(1, hashtext($1))",
                &[&instance],
            )?;
            let others: i64 = tx
                .query_one(
                    "SELECT COALESCE(SUM(octet_length(key) + octet_length(value) - $3::bigint), 0)::bigint
                     FROM kv WHERE instance = $1 AND key <> $2",
                    &[&instance, &key, &SEAL_OVERHEAD],
                )?
                .get(0);
            let total = others as u64 + key.len() as u64 + len;
            if total > max_total_bytes {
                return Err(StoreError::LimitExceeded(format!(
                    "key-value data would grow to {total} bytes; the plugin's limit is {max_total_bytes} (manifest limits.kv-max-bytes)"
                )));
            }
            tx.execute(
                "INSERT INTO kv (instance, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT (instance, key) DO UPDATE SET value = EXCLUDED.value",
                &[&instance, &key, &sealed],
            )?;
            tx.commit()?;
            Ok(())
        });
        self.logged(r)
    }

    fn kv_delete(&self, instance: &str, key: &str) -> Result<(), StoreError> {
        self.kv_write(
            instance,
            &[KvWrite::Delete {
                key: key.to_owned(),
            }],
        )
    }

    fn kv_keys(&self, instance: &str, prefix: &str) -> Result<Vec<String>, StoreError> {
        let (instance, prefix) = (instance.to_owned(), prefix.to_owned());
        self.run(move |c| {
            // starts_with rather than LIKE: keys may contain % and _.
            Ok(c.query(
                "SELECT key FROM kv WHERE instance = $1 AND starts_with(key, $2) ORDER BY key",
                &[&instance, &prefix],
            )?
            .into_iter()
            .map(|r| r.get(0))
            .collect())
        })
    }

    fn kv_all(&self, instance: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let instance = instance.to_owned();
        let rows: Vec<(String, Vec<u8>)> = self.run(move |c| {
            Ok(c.query(
                "SELECT key, value FROM kv WHERE instance = $1 ORDER BY key",
                &[&instance],
            )?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
        })?;
        rows.into_iter()
            .map(|(k, v)| Ok((k, self.secrets.open(&v)?)))
            .collect()
    }

    fn kv_write(&self, instance: &str, writes: &[KvWrite]) -> Result<(), StoreError> {
        let fence = self.fence_of(instance);
        // Sealed here, on the caller's thread, so workers only talk SQL.
        let writes: Vec<(String, Option<Vec<u8>>)> = writes
            .iter()
            .map(|w| match w {
                KvWrite::Set { key, value } => (key.clone(), Some(self.secrets.seal(value))),
                KvWrite::Delete { key } => (key.clone(), None),
            })
            .collect();
        // The last write of each key decides it: two statements whatever
        // the batch's size (a round trip per key capped the cluster relay).
        let mut last: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
        for (key, value) in writes {
            last.insert(key, value);
        }
        let (mut set_keys, mut set_values, mut deleted) = (Vec::new(), Vec::new(), Vec::new());
        for (key, value) in last {
            match value {
                Some(v) => {
                    set_keys.push(key);
                    set_values.push(v);
                }
                None => deleted.push(key),
            }
        }
        let (instance, node) = (instance.to_owned(), self.node_id.clone());
        let r = self.run(move |c| {
            let mut tx = c.transaction()?;
            if let Some(f) = fence {
                check_fence_tx(&mut tx, &instance, &node, f)?;
            }
            if !set_keys.is_empty() {
                tx.execute(
                    "INSERT INTO kv (instance, key, value)
                     SELECT $1, k, v FROM unnest($2::text[], $3::bytea[]) AS t(k, v)
                     ON CONFLICT (instance, key) DO UPDATE SET value = EXCLUDED.value",
                    &[&instance, &set_keys, &set_values],
                )?;
            }
            if !deleted.is_empty() {
                tx.execute(
                    "DELETE FROM kv WHERE instance = $1 AND key = ANY($2::text[])",
                    &[&instance, &deleted],
                )?;
            }
            tx.commit()?;
            Ok(())
        });
        self.logged(r)
    }

    fn put_users(&self, users: &[(String, String)]) -> Result<(), StoreError> {
        let (names, records): (Vec<String>, Vec<String>) = users.iter().cloned().unzip();
        self.write(USERS, move |tx, _| {
            // A name given twice: the last record wins, as with SQLite's
            // INSERT OR REPLACE row by row (ON CONFLICT cannot touch a row
            // twice in one statement).
            tx.execute(
                "INSERT INTO users (username, record)
                 SELECT DISTINCT ON (u) u, r FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(u, r, i)
                 ORDER BY u, i DESC
                 ON CONFLICT (username) DO UPDATE SET record = EXCLUDED.record",
                &[&names, &records],
            )?;
            Ok(())
        })
    }

    fn delete_user(&self, username: &str) -> Result<bool, StoreError> {
        let username = username.to_owned();
        self.write(USERS, move |tx, node| {
            let n = tx.execute("DELETE FROM users WHERE username = $1", &[&username])?;
            let notes = tx.execute("DELETE FROM notes WHERE username = $1", &[&username])?;
            if notes > 0 {
                notify_change(tx, NOTES, node)?;
            }
            Ok(n > 0)
        })
    }

    fn users(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.run(|c| {
            Ok(
                c.query("SELECT username, record FROM users ORDER BY username", &[])?
                    .into_iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect(),
            )
        })
    }

    fn add_note(&self, username: &str, record: &str) -> Result<i64, StoreError> {
        let (username, record) = (username.to_owned(), record.to_owned());
        self.write(NOTES, move |tx, _| {
            Ok(tx
                .query_one(
                    "INSERT INTO notes (username, record) VALUES ($1, $2) RETURNING id",
                    &[&username, &record],
                )?
                .get(0))
        })
    }

    fn delete_note(&self, id: i64) -> Result<bool, StoreError> {
        self.write(NOTES, move |tx, _| {
            Ok(tx.execute("DELETE FROM notes WHERE id = $1", &[&id])? > 0)
        })
    }

    fn notes(&self) -> Result<Vec<(i64, String, String)>, StoreError> {
        self.run(|c| {
            Ok(
                c.query("SELECT id, username, record FROM notes ORDER BY id", &[])?
                    .into_iter()
                    .map(|r| (r.get(0), r.get(1), r.get(2)))
                    .collect(),
            )
        })
    }

    fn put_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
        let t = t.clone();
        self.write(TOKENS, move |tx, _| {
            tx.execute(
                "INSERT INTO tokens (id, name, role, sha256, created_at_ms) VALUES ($1, $2, $3, $4, $5)",
                &[&t.id, &t.name, &t.role, &t.sha256, &ms(t.created_at_ms)],
            )?;
            Ok(())
        })
    }

    fn delete_token(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(TOKENS, move |tx, _| {
            Ok(tx.execute("DELETE FROM tokens WHERE id = $1", &[&id])? > 0)
        })
    }

    fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.run(|c| {
            Ok(c.query(
                "SELECT id, name, role, sha256, created_at_ms FROM tokens ORDER BY created_at_ms, id",
                &[],
            )?
            .into_iter()
            .map(|r| TokenRecord {
                id: r.get(0),
                name: r.get(1),
                role: r.get(2),
                sha256: r.get(3),
                created_at_ms: r.get::<_, i64>(4) as u64,
            })
            .collect())
        })
    }

    fn append_events(&self, events: &[EventRecord]) -> Result<(), StoreError> {
        let at: Vec<i64> = events.iter().map(|e| ms(e.at_ms)).collect();
        let kind: Vec<String> = events.iter().map(|e| e.kind.clone()).collect();
        let user: Vec<Option<String>> = events.iter().map(|e| e.username.clone()).collect();
        let inst: Vec<Option<String>> = events.iter().map(|e| e.instance.clone()).collect();
        let detail: Vec<String> = events.iter().map(|e| e.detail.clone()).collect();
        self.run(move |c| {
            // WITH ORDINALITY keeps the given order in the ids.
            c.execute(
                "INSERT INTO events (at_ms, kind, username, instance, detail)
                 SELECT a, k, u, n, d FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[])
                     WITH ORDINALITY AS t(a, k, u, n, d, i)
                 ORDER BY i",
                &[&at, &kind, &user, &inst, &detail],
            )?;
            Ok(())
        })
    }

    fn events(&self, q: &EventQuery) -> Result<Vec<EventRecord>, StoreError> {
        let (user, inst) = (q.username.clone(), q.instance.clone());
        let (since, until) = (ms(q.since_ms), ms(q.until_ms));
        let limit = q.limit.min(i64::MAX as usize) as i64;
        self.run(move |c| {
            Ok(c.query(
                "SELECT at_ms, kind, username, instance, detail FROM events
                 WHERE ($1::text IS NULL OR username = $1) AND ($2::text IS NULL OR instance = $2)
                   AND at_ms >= $3 AND at_ms <= $4
                 ORDER BY id DESC LIMIT $5",
                &[&user, &inst, &since, &until, &limit],
            )?
            .into_iter()
            .map(|r| EventRecord {
                at_ms: r.get::<_, i64>(0) as u64,
                kind: r.get(1),
                username: r.get(2),
                instance: r.get(3),
                detail: r.get(4),
            })
            .collect())
        })
    }

    fn prune_events(&self, older_than_ms: u64) -> Result<usize, StoreError> {
        let t = ms(older_than_ms);
        self.run(move |c| Ok(c.execute("DELETE FROM events WHERE at_ms < $1", &[&t])? as usize))
    }

    fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        self.run(move |c| {
            Ok(
                c.query_opt("SELECT value FROM settings WHERE key = $1", &[&key])?
                    .map(|r| r.get(0)),
            )
        })
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.write(SETTINGS, move |tx, _| {
            tx.execute(
                "INSERT INTO settings (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&key, &value],
            )?;
            Ok(())
        })
    }
}

impl Coordination for PostgresStore {
    fn node_id(&self) -> &str {
        &self.node_id
    }

    fn heartbeat(&self, api_url: &str, ttl: Duration) -> Result<Vec<NodeInfo>, StoreError> {
        let (node, url, ttl) = (self.node_id.clone(), api_url.to_owned(), secs(ttl));
        // The first heartbeat of this store (re)starts the node: a node id
        // reused after a restart gets a new started_at.
        let restart = !self.announced.load(Ordering::Relaxed);
        let nodes = self.run(move |c| {
            c.execute(
                "INSERT INTO nodes (id, api_url, started_at, seen_until)
                 VALUES ($1, $2, clock_timestamp(), clock_timestamp() + make_interval(secs => $3::float8))
                 ON CONFLICT (id) DO UPDATE SET api_url = EXCLUDED.api_url,
                    seen_until = EXCLUDED.seen_until,
                    started_at = CASE WHEN $4::bool THEN EXCLUDED.started_at ELSE nodes.started_at END",
                &[&node, &url, &ttl, &restart],
            )?;
            Ok(c.query(
                "SELECT id, api_url, hub_ms(started_at), hub_ms(seen_until) FROM nodes
                 WHERE seen_until > clock_timestamp() ORDER BY id",
                &[],
            )?
            .into_iter()
            .map(|r| NodeInfo {
                id: r.get(0),
                api_url: r.get(1),
                started_at_ms: r.get::<_, i64>(2) as u64,
                seen_at_ms: r.get::<_, i64>(3) as u64,
            })
            .collect())
        })?;
        self.announced.store(true, Ordering::Relaxed);
        Ok(nodes)
    }

    fn leave(&self) -> Result<(), StoreError> {
        // The fences stay set: a write still in flight after this (a
        // write-behind flush) is refused instead of landing unchecked on an
        // instance another node may hold by then.
        let node = self.node_id.clone();
        self.run(move |c| {
            let mut tx = c.transaction()?;
            tx.execute("DELETE FROM leases WHERE node = $1", &[&node])?;
            tx.execute("DELETE FROM nodes WHERE id = $1", &[&node])?;
            tx.commit()?;
            Ok(())
        })
    }

    fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        self.run(|c| {
            Ok(c.query(
                "SELECT instance, node, fence, hub_ms(expires_at) FROM leases ORDER BY instance",
                &[],
            )?
            .into_iter()
            .map(|r| Lease {
                instance: r.get(0),
                node: r.get(1),
                fence: r.get(2),
                expires_at_ms: r.get::<_, i64>(3) as u64,
            })
            .collect())
        })
    }

    /// When this node already holds an unexpired lease on `instance`, it is
    /// extended and returned with its fence unchanged.
    fn acquire(&self, instance: &str, ttl: Duration) -> Result<Option<Lease>, StoreError> {
        let (instance, node, ttl) = (instance.to_owned(), self.node_id.clone(), secs(ttl));
        self.run(move |c| {
            let mut tx = c.transaction()?;
            // The fence counter row serialises acquirers of one instance.
            tx.execute(
                "INSERT INTO fences (instance, last) VALUES ($1, 0) ON CONFLICT (instance) DO NOTHING",
                &[&instance],
            )?;
            let last: i64 = tx
                .query_one(
                    "SELECT last FROM fences WHERE instance = $1 FOR UPDATE",
                    &[&instance],
                )?
                .get(0);
            let current = tx.query_opt(
                "SELECT node, expires_at > clock_timestamp() FROM leases WHERE instance = $1",
                &[&instance],
            )?;
            let row = match current {
                Some(r) if r.get::<_, bool>(1) && r.get::<_, String>(0) != node => {
                    tx.rollback()?;
                    return Ok(None);
                }
                Some(r) if r.get::<_, bool>(1) => tx.query_one(
                    "UPDATE leases SET expires_at = clock_timestamp() + make_interval(secs => $2::float8)
                     WHERE instance = $1
                     RETURNING instance, node, fence, hub_ms(expires_at)",
                    &[&instance, &ttl],
                )?,
                _ => {
                    let fence = last + 1;
                    tx.execute(
                        "UPDATE fences SET last = $2 WHERE instance = $1",
                        &[&instance, &fence],
                    )?;
                    tx.query_one(
                        "INSERT INTO leases (instance, node, fence, expires_at)
                         VALUES ($1, $2, $3, clock_timestamp() + make_interval(secs => $4::float8))
                         ON CONFLICT (instance) DO UPDATE SET node = EXCLUDED.node,
                            fence = EXCLUDED.fence, expires_at = EXCLUDED.expires_at
                         RETURNING instance, node, fence, hub_ms(expires_at)",
                        &[&instance, &node, &fence, &ttl],
                    )?
                }
            };
            tx.commit()?;
            Ok(Some(Lease {
                instance: row.get(0),
                node: row.get(1),
                fence: row.get(2),
                expires_at_ms: row.get::<_, i64>(3) as u64,
            }))
        })
    }

    /// Also renews a lease that expired unnoticed while no other node took
    /// it: its fence is still the newest, so acting under it stays safe.
    fn renew(&self, instance: &str, fence: i64, ttl: Duration) -> Result<bool, StoreError> {
        let (instance, node, ttl) = (instance.to_owned(), self.node_id.clone(), secs(ttl));
        self.run(move |c| {
            Ok(c.execute(
                "UPDATE leases SET expires_at = clock_timestamp() + make_interval(secs => $4::float8)
                 WHERE instance = $1 AND node = $2 AND fence = $3",
                &[&instance, &node, &fence, &ttl],
            )? == 1)
        })
    }

    fn renew_all(
        &self,
        held: &[(String, i64)],
        ttl: Duration,
    ) -> Result<std::collections::BTreeSet<String>, StoreError> {
        if held.is_empty() {
            return Ok(Default::default());
        }
        let (instances, fences): (Vec<String>, Vec<i64>) = held.iter().cloned().unzip();
        let (node, ttl) = (self.node_id.clone(), secs(ttl));
        self.run(move |c| {
            let rows = c.query(
                "UPDATE leases l
                 SET expires_at = clock_timestamp() + make_interval(secs => $3::float8)
                 FROM unnest($1::text[], $2::int8[]) AS h(instance, fence)
                 WHERE l.instance = h.instance AND l.fence = h.fence AND l.node = $4
                 RETURNING l.instance",
                &[&instances, &fences, &ttl, &node],
            )?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn release(&self, instance: &str, fence: i64) -> Result<(), StoreError> {
        let (instance, node) = (instance.to_owned(), self.node_id.clone());
        self.run(move |c| {
            c.execute(
                "DELETE FROM leases WHERE instance = $1 AND node = $2 AND fence = $3",
                &[&instance, &node, &fence],
            )?;
            Ok(())
        })
    }

    fn set_fence(&self, instance: &str, fence: Option<i64>) {
        let mut fences = self.fences.lock().unwrap_or_else(|p| p.into_inner());
        match fence {
            Some(f) => fences.insert(instance.to_owned(), f),
            None => fences.remove(instance),
        };
    }

    fn check_fence(&self, instance: &str) -> Result<(), StoreError> {
        let fence = self.fence_of(instance);
        let (instance, node) = (instance.to_owned(), self.node_id.clone());
        let r = self.run(move |c| {
            let mut tx = c.transaction()?;
            match fence {
                Some(f) => check_fence_tx(&mut tx, &instance, &node, f)?,
                None => {
                    return Err(StoreError::Fenced {
                        instance,
                        holder: None,
                        fence: None,
                        this_fence: 0,
                    });
                }
            }
            tx.commit()?;
            Ok(())
        });
        self.logged(r)
    }

    /// Publishers take one transaction-scoped advisory lock before taking
    /// their seq: a bigserial value is drawn before commit, so without it a
    /// publisher could commit seq 8 while seq 7 is still uncommitted, a
    /// reader at `messages_after(6)` would see 8, move on, and never see 7.
    /// Holding the lock until commit makes commit order equal seq order.
    fn publish(
        &self,
        topic: &str,
        instance: Option<&str>,
        payload: &str,
    ) -> Result<i64, StoreError> {
        let (inst, fence) = match instance.and_then(|i| self.fence_of(i).map(|f| (i, f))) {
            Some((i, f)) => (Some(i.to_owned()), Some(f)),
            None => (None, None),
        };
        let (topic, payload, node) = (topic.to_owned(), payload.to_owned(), self.node_id.clone());
        let r = self.run(move |c| {
            // One statement, so one round trip and its own transaction
            // (migration V2: the fence check FOR SHARE, the lock, the
            // append, the NOTIFY).
            let row = c.query_one(
                "SELECT o_seq, o_holder, o_fence FROM hub_publish($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &node,
                    &topic,
                    &payload,
                    &inst,
                    &fence,
                    &PUBLISH_LOCK,
                    &CHANNEL,
                ],
            )?;
            match row.get::<_, Option<i64>>(0) {
                Some(seq) => Ok(seq),
                None => Err(StoreError::Fenced {
                    instance: inst.unwrap_or_default(),
                    holder: row.get(1),
                    fence: row.get(2),
                    this_fence: fence.unwrap_or_default(),
                }),
            }
        });
        self.logged(r)
    }

    fn messages_after(&self, after: i64, limit: usize) -> Result<Vec<ClusterMessage>, StoreError> {
        let limit = limit.min(i64::MAX as usize) as i64;
        self.run(move |c| {
            Ok(c.query(
                "SELECT seq, origin, topic, payload, hub_ms(at) FROM cluster_log
                 WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&after, &limit],
            )?
            .into_iter()
            .map(|r| ClusterMessage {
                seq: r.get(0),
                origin: r.get(1),
                topic: r.get(2),
                payload: r.get(3),
                at_ms: r.get::<_, i64>(4) as u64,
            })
            .collect())
        })
    }

    fn last_seq(&self) -> Result<i64, StoreError> {
        self.run(|c| {
            Ok(
                c.query_one("SELECT COALESCE(max(seq), 0) FROM cluster_log", &[])?
                    .get(0),
            )
        })
    }

    fn prune_messages(&self, older_than_ms: u64) -> Result<usize, StoreError> {
        let t = ms(older_than_ms);
        self.run(move |c| {
            Ok(c.execute(
                "DELETE FROM cluster_log WHERE at < to_timestamp($1::bigint / 1000.0)",
                &[&t],
            )? as usize)
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<ClusterSignal> {
        self.signals.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse() {
        assert_eq!(
            parse_signal("msg:42"),
            Some(ClusterSignal::Message { seq: 42 })
        );
        assert_eq!(
            parse_signal("users:node-a:1"),
            Some(ClusterSignal::Changed {
                table: "users".into(),
                origin: "node-a:1".into()
            })
        );
        assert_eq!(parse_signal("msg:x"), None);
        assert_eq!(parse_signal("garbage"), None);
    }

    #[test]
    fn a_bad_url_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = PostgresStore::connect("postgres://[bad", dir.path(), "n")
            .err()
            .unwrap();
        assert!(err.to_string().contains("database_url"), "{err}");
    }
}
