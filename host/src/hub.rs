//! Assembling the hub: store, runtime, API, admin token, serving.

use std::sync::Arc;

use rand::RngCore;
use tokio::net::TcpListener;

use crate::api::{self, AdminAuth, AppState};
use crate::cluster::LeaseBook;
use crate::cluster::leases::Keeper;
use crate::config::HubConfig;
use crate::engine::sync::WriteIds;
use crate::presence::Presence;
use crate::runtime::Placement;
use crate::runtime::{Runtime, Services, WriteRegistry};
use crate::store::{Coordination, SqliteStore, Store};
use crate::telemetry::Metrics;

const ADMIN_TOKEN_SETTING: &str = "admin_token_sha256";

/// How often a serving hub looks for an admin token rotated by
/// `presence-hub admin-token rotate` (a read of one stored setting).
const ADMIN_TOKEN_RECHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// A started hub, ready to serve.
pub struct Hub {
    pub config: HubConfig,
    pub runtime: Arc<Runtime>,
    state: AppState,
    /// A generated admin token, stored and printed only once the port is
    /// bound: a start that fails before (port taken, bad plugin folder)
    /// loses no token, the next start makes one.
    new_admin_token: Option<String>,
    store: Arc<dyn Store>,
    /// One node of a cluster: the shared database's coordination and this
    /// node's leases.
    cluster: Option<(Arc<dyn Coordination>, Arc<LeaseBook>)>,
}

impl Hub {
    /// Open the store, load plugins and start stored connectors.
    pub async fn start(config: HubConfig) -> anyhow::Result<Self> {
        if !config.plugins_dir.is_dir() && !config.plugins_dir_searched.is_empty() {
            let tried: Vec<String> = config
                .plugins_dir_searched
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            tracing::warn!(
                tried = %tried.join(", "),
                "no plugins directory found where one is looked for when HUB_PLUGINS_DIR is unset; set HUB_PLUGINS_DIR to the folder of plugin folders (`cargo xtask plugins` builds them into dist/plugins)"
            );
        }
        // Both default to folders relative to where the hub is started:
        // say where they are, so a start from another folder is obvious.
        tracing::info!(
            data_dir = %absolute(&config.data_dir).display(),
            plugins_dir = %absolute(&config.plugins_dir).display(),
            "data (HUB_DATA_DIR) and shipped plugins (HUB_PLUGINS_DIR)"
        );
        let (store, coord) = open_store(&config).await?;
        let book = coord.as_ref().map(|c| Arc::new(LeaseBook::new(c.clone())));
        let (hash, new_admin_token) = admin_hash(&config, store.as_ref())?;
        let store_handle = store.clone();
        let auth = Arc::new(AdminAuth::new(hash, store.clone())?);
        let metrics = Arc::new(Metrics::default());
        // Write ids start from the clock (µs): unique across restarts
        // without being stored.
        let write_ids = Arc::new(WriteIds::starting_at(
            crate::store::now_ms().saturating_mul(1000),
        ));
        let (presence, flows) =
            Presence::open(store.clone(), metrics.presence.clone(), write_ids.clone())?;
        // A cluster node's connectors report through the relay, which
        // hands everything to this node's presence service and publishes it
        // to the others.
        let reports = match &coord {
            Some(c) => crate::cluster::relay::start(
                c.clone(),
                store.clone(),
                presence.inbox(),
                metrics.cluster.clone(),
            )?,
            None => presence.inbox(),
        };
        let services = Services {
            store,
            metrics,
            presence: reports,
            writes: Arc::new(WriteRegistry::new(write_ids)),
        };
        let runtime = Runtime::new(
            services.clone(),
            config.limits.clone(),
            config.plugins_dir.clone(),
            config.data_dir.join("cache"),
            config
                .public_url
                .as_deref()
                .map(|u| format!("{}/hooks", u.trim_end_matches('/'))),
            match &book {
                Some(b) => Placement::Held(b.clone()),
                None => Placement::All,
            },
        )?;
        runtime.follow_watches(flows.watches);
        runtime.follow_sync_writes(flows.writes);
        runtime.boot().await?;
        // The directory sync seals its bind password with the connectors' key.
        let directory = api::directory::DirectorySync::new(
            store_handle.clone(),
            crate::store::SecretBox::open_or_create(&config.data_dir.join("secret.key"))?,
            presence.clone(),
        );
        directory.spawn_scheduler();
        let state = AppState {
            directory,
            presence,
            runtime: runtime.clone(),
            metrics: services.metrics.clone(),
            auth,
            max_webhook_bytes: config.limits.max_webhook_bytes,
            metrics_auth: config.metrics_auth,
            ready_requires: Arc::new(config.ready_requires.clone()),
            snapshots: Arc::default(),
            backups: Arc::new(api::backup::BackupSource {
                store: store_handle.clone(),
                data_dir: config.data_dir.clone(),
            }),
            feeds: Arc::new(api::FeedSlots::new(
                config.limits.max_feeds,
                config.limits.max_feeds_per_token,
            )),
        };
        Ok(Self {
            config,
            runtime,
            state,
            new_admin_token,
            store: store_handle,
            cluster: coord.zip(book),
        })
    }

    /// Serve until `shutdown` resolves, then stop connectors gracefully.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // A certificate that cannot be used stops the start before the port
        // is taken, with the file and what is wrong named.
        let tls = self
            .config
            .tls()?
            .map(crate::io::tls_server::ServerTls::load)
            .transpose()?;
        let listener = TcpListener::bind(self.config.listen).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {}: {e} (set `listen` or HUB_LISTEN)",
                self.config.listen
            )
        })?;
        let addr = listener.local_addr()?;
        if let Some(token) = &self.new_admin_token {
            // Stored only now: the hub is about to serve, so the token
            // printed next is the one that works.
            self.store
                .set_setting(ADMIN_TOKEN_SETTING, &hex::encode(AdminAuth::hash(token)))?;
            // Printed once, on purpose, to stdout only (never to the log).
            // Scripts (`cargo xtask demo`) read this exact line.
            println!("admin token (shown once, store it now): {token}");
            println!("(lost it? `presence-hub admin-token rotate` makes a new one)");
        }
        // Tests and scripts read this line to find the port.
        let scheme = if tls.is_some() { "https" } else { "http" };
        println!("presence-hub listening on {scheme}://{addr}");
        tracing::info!(%addr, "serving");
        if self.config.admin_token.as_deref().is_none_or(str::is_empty) {
            follow_admin_rotation(self.store.clone(), self.state.clone());
        }
        let keeper = self.cluster.as_ref().map(|(coord, book)| {
            let api_url = node_url(&self.config, scheme, addr, &host_name());
            let presence = self.state.presence.clone();
            let directory = self.state.directory.clone();
            let keeper = Keeper::new(
                coord.clone(),
                self.store.clone(),
                book.clone(),
                self.runtime.clone(),
                api_url,
                self.state.metrics.cluster.clone(),
                // The first live node writes the event log's derived
                // entries and runs the scheduled directory syncs.
                Box::new(move |first| {
                    presence.log().set_writes_derived(first);
                    directory.set_runs_schedules(first);
                }),
            );
            keeper.spawn();
            crate::cluster::follow::spawn(
                coord.clone(),
                self.runtime.clone(),
                self.state.presence.clone(),
                self.state.auth.clone(),
                keeper.clone(),
            );
            crate::cluster::relay::follow(
                coord.clone(),
                self.store.clone(),
                self.state.presence.inbox(),
                self.state.metrics.cluster.clone(),
            );
            crate::cluster::relay::prune(coord.clone(), crate::timing::CLUSTER_LOG_KEEP);
            keeper
        });
        let metrics = self.state.metrics.clone();
        let app = api::router(self.state, self.config.limits.max_upload_bytes)
            .layer(axum::middleware::from_fn_with_state(
                metrics,
                api::track_requests,
            ))
            .layer(
                // The span names the path only: a query string may hold a
                // feed's access token, which is never logged.
                tower_http::trace::TraceLayer::new_for_http().make_span_with(
                    |req: &http::Request<axum::body::Body>| {
                        tracing::debug_span!("request", method = %req.method(), path = %req.uri().path())
                    },
                ),
            );
        crate::io::listener::serve(listener, app, self.config.limits.listen(), tls, shutdown).await;
        self.runtime.shutdown().await;
        if let Some(keeper) = keeper {
            // The runs have stopped: hand the leases back at once.
            keeper.leave().await;
        }
        Ok(())
    }
}

/// The store the configuration names: PostgreSQL shared with other nodes
/// (`database_url`), else the embedded SQLite database in `data_dir`.
async fn open_store(
    config: &HubConfig,
) -> anyhow::Result<(Arc<dyn Store>, Option<Arc<dyn Coordination>>)> {
    let Some(url) = config.database_url.clone() else {
        return Ok((Arc::new(SqliteStore::open(&config.data_dir)?), None));
    };
    let node = node_id(config)?;
    check_node_url(config)?;
    let dir = config.data_dir.clone();
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("cannot create the data folder {}: {e}", dir.display()))?;
    let id = node.clone();
    let pg =
        tokio::task::spawn_blocking(move || crate::store::PostgresStore::connect(&url, &dir, &id))
            .await??;
    tracing::info!(node = %node, "one node of a cluster on PostgreSQL (database_url)");
    let pg = Arc::new(pg);
    Ok((pg.clone(), Some(pg)))
}

/// The machine's host name ("node" when it has none).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into())
}

/// Where the other nodes reach this one (`node_url`, checked at start;
/// else the bound address, `host` standing in for an unspecified IP).
/// Never `public_url`: that may name a load balancer, which could pass a
/// request meant for this node to any node.
fn node_url(config: &HubConfig, scheme: &str, addr: std::net::SocketAddr, host: &str) -> String {
    match &config.node_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None if addr.ip().is_unspecified() => format!("{scheme}://{host}:{}", addr.port()),
        None => format!("{scheme}://{addr}"),
    }
}

/// `node_url` must be an absolute http(s) URL with a host.
fn check_node_url(config: &HubConfig) -> anyhow::Result<()> {
    let Some(url) = &config.node_url else {
        return Ok(());
    };
    let ok = reqwest::Url::parse(url)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
    if !ok {
        anyhow::bail!(
            "node_url (HUB_NODE_URL) {url:?} must be this node's own http:// or https:// address, e.g. http://10.0.0.5:8740"
        );
    }
    Ok(())
}

/// This node's id: `node_id` / `HUB_NODE_ID`, else the host name and the
/// listen port.
fn node_id(config: &HubConfig) -> anyhow::Result<String> {
    let id = match &config.node_id {
        Some(id) => id.clone(),
        None => {
            let host = host_name();
            match config.listen.port() {
                // A port picked by the system: unique by a random suffix.
                0 => format!("{host}-{:08x}", rand::random::<u32>()),
                port => format!("{host}-{port}"),
            }
        }
    };
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        anyhow::bail!("node_id (HUB_NODE_ID) {id:?} must be 1-64 letters, digits, '-', '_' or '.'");
    }
    Ok(id)
}

/// The admin token's hash, and a newly generated token to store and print
/// once the hub serves. The configured token wins (an empty one counts as
/// unset); otherwise the stored hash; otherwise a new token.
fn admin_hash(config: &HubConfig, store: &dyn Store) -> anyhow::Result<([u8; 32], Option<String>)> {
    if let Some(token) = config.admin_token.as_deref().filter(|t| !t.is_empty()) {
        if token.len() < 16 {
            anyhow::bail!("admin_token (HUB_ADMIN_TOKEN) must be at least 16 characters");
        }
        let h = AdminAuth::hash(token);
        store.set_setting(ADMIN_TOKEN_SETTING, &hex::encode(h))?;
        return Ok((h, None));
    }
    if let Some(stored) = store.setting(ADMIN_TOKEN_SETTING)? {
        let bytes = hex::decode(&stored)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "stored admin token hash is corrupt; run `presence-hub admin-token rotate` \
                     or set HUB_ADMIN_TOKEN to replace it"
                )
            })?;
        return Ok((bytes, None));
    }
    let token = new_token();
    Ok((AdminAuth::hash(&token), Some(token)))
}

/// Take an admin token rotated while the hub serves: the old one is refused
/// within [`ADMIN_TOKEN_RECHECK`], its feeds end, and the event log says so.
fn follow_admin_rotation(store: Arc<dyn Store>, state: AppState) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(ADMIN_TOKEN_RECHECK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let s = store.clone();
            let Ok(Ok(Some(stored))) =
                tokio::task::spawn_blocking(move || s.setting(ADMIN_TOKEN_SETTING)).await
            else {
                continue;
            };
            let Some(hash) = hex::decode(&stored)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
            else {
                continue;
            };
            if state.auth.replace_admin(hash) {
                tracing::info!("admin token rotated: the old one is refused from now on");
                state.presence.log().record(crate::store::EventRecord {
                    at_ms: crate::store::now_ms(),
                    kind: "operator".into(),
                    username: None,
                    instance: None,
                    detail: "admin token rotated (presence-hub admin-token rotate); the old one is refused".into(),
                });
            }
        }
    });
}

fn new_token() -> String {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    hex::encode(raw)
}

/// Why the admin token cannot be rotated.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(
        "the admin token is configured (admin_token / HUB_ADMIN_TOKEN) and wins over a stored \
         one: change it there instead"
    )]
    Configured,
    #[error("cannot open the hub's data folder {dir}: {source}")]
    Store {
        dir: std::path::PathBuf,
        source: crate::store::StoreError,
    },
    #[error("cannot store the new admin token's hash: {0}")]
    Write(crate::store::StoreError),
}

/// `presence-hub admin-token rotate`: make a new admin token, store its hash
/// in `config.data_dir` and return it (to print once). The old admin token
/// stops working: a stopped hub starts with the new one, a running hub on
/// the same data takes it within [`ADMIN_TOKEN_RECHECK`] (2 s). Refused
/// when the token is configured, since the configured one would win.
pub fn rotate_admin_token(config: &HubConfig) -> Result<String, RotateError> {
    if config.admin_token.as_deref().is_some_and(|t| !t.is_empty()) {
        return Err(RotateError::Configured);
    }
    let store = SqliteStore::open(&config.data_dir).map_err(|source| RotateError::Store {
        dir: config.data_dir.clone(),
        source,
    })?;
    let token = new_token();
    store
        .set_setting(ADMIN_TOKEN_SETTING, &hex::encode(AdminAuth::hash(&token)))
        .map_err(RotateError::Write)?;
    Ok(token)
}

/// `path` made absolute against the working directory, for the log.
fn absolute(path: &std::path::Path) -> std::path::PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    #[test]
    fn other_nodes_reach_this_one_at_its_own_address_never_the_public_one() {
        let mut c = HubConfig {
            public_url: Some("https://hub.example.com".into()),
            ..HubConfig::default()
        };
        let any: SocketAddr = "0.0.0.0:8740".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        assert_eq!(node_url(&c, "http", any, "hub-a"), "http://hub-a:8740");
        assert_eq!(node_url(&c, "https", lo, "hub-a"), "https://127.0.0.1:9000");
        c.node_url = Some("http://10.0.0.5:8740/".into());
        assert_eq!(node_url(&c, "http", any, "hub-a"), "http://10.0.0.5:8740");
        assert!(check_node_url(&c).is_ok());
        for bad in ["10.0.0.5:8740", "ftp://10.0.0.5", "http://", "/relative"] {
            c.node_url = Some(bad.into());
            let e = check_node_url(&c).unwrap_err().to_string();
            assert!(e.contains("HUB_NODE_URL"), "{bad}: {e}");
        }
    }
}
