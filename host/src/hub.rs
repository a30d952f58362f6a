//! Assembling the hub: store, runtime, API, admin token, serving.

use std::sync::Arc;

use rand::RngCore;
use tokio::net::TcpListener;

use crate::api::{self, AdminAuth, AppState};
use crate::config::HubConfig;
use crate::engine::sync::WriteIds;
use crate::presence::Presence;
use crate::runtime::{Runtime, Services, WriteRegistry};
use crate::store::{SqliteStore, Store};
use crate::telemetry::Metrics;

const ADMIN_TOKEN_SETTING: &str = "admin_token_sha256";

/// A started hub, ready to serve.
pub struct Hub {
    pub config: HubConfig,
    pub runtime: Arc<Runtime>,
    state: AppState,
}

impl Hub {
    /// Open the store, load plugins and start stored connectors.
    pub async fn start(config: HubConfig) -> anyhow::Result<Self> {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&config.data_dir)?);
        let auth = Arc::new(AdminAuth::new(
            admin_hash(&config, store.as_ref())?,
            store.clone(),
        )?);
        let metrics = Arc::new(Metrics::default());
        // Write ids start from the clock (µs): unique across restarts
        // without being stored.
        let write_ids = Arc::new(WriteIds::starting_at(
            crate::store::now_ms().saturating_mul(1000),
        ));
        let (presence, flows) =
            Presence::open(store.clone(), metrics.presence.clone(), write_ids.clone())?;
        let services = Services {
            store,
            metrics,
            presence: presence.inbox(),
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
        )?;
        runtime.follow_watches(flows.watches);
        runtime.follow_sync_writes(flows.writes);
        runtime.boot().await?;
        let state = AppState {
            presence,
            runtime: runtime.clone(),
            metrics: services.metrics.clone(),
            auth,
            max_webhook_bytes: config.limits.max_webhook_bytes,
            metrics_auth: config.metrics_auth,
            snapshots: Arc::default(),
            feeds: Arc::new(api::FeedSlots::new(
                config.limits.max_feeds,
                config.limits.max_feeds_per_token,
            )),
        };
        Ok(Self {
            config,
            runtime,
            state,
        })
    }

    /// Serve until `shutdown` resolves, then stop connectors gracefully.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let listener = TcpListener::bind(self.config.listen).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {}: {e} (set `listen` or HUB_LISTEN)",
                self.config.listen
            )
        })?;
        let addr = listener.local_addr()?;
        // Tests and scripts read this line to find the port.
        println!("presence-hub listening on http://{addr}");
        tracing::info!(%addr, "serving");
        let app = api::router(self.state, self.config.limits.max_upload_bytes)
            .layer(
                // The span names the path only: a query string may hold a
                // feed's access token, which is never logged.
                tower_http::trace::TraceLayer::new_for_http().make_span_with(
                    |req: &http::Request<axum::body::Body>| {
                        tracing::debug_span!("request", method = %req.method(), path = %req.uri().path())
                    },
                ),
            );
        crate::io::listener::serve(listener, app, self.config.limits.listen(), shutdown).await;
        self.runtime.shutdown().await;
        Ok(())
    }
}

/// The configured token wins; otherwise the stored hash; otherwise a new
/// token is generated and printed once.
fn admin_hash(config: &HubConfig, store: &dyn Store) -> anyhow::Result<[u8; 32]> {
    if let Some(token) = &config.admin_token {
        if token.len() < 16 {
            anyhow::bail!("admin_token (HUB_ADMIN_TOKEN) must be at least 16 characters");
        }
        let h = AdminAuth::hash(token);
        store.set_setting(ADMIN_TOKEN_SETTING, &hex::encode(h))?;
        return Ok(h);
    }
    if let Some(stored) = store.setting(ADMIN_TOKEN_SETTING)? {
        let bytes = hex::decode(&stored)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "stored admin token hash is corrupt; set HUB_ADMIN_TOKEN to replace it"
                )
            })?;
        return Ok(bytes);
    }
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let token = hex::encode(raw);
    let h = AdminAuth::hash(&token);
    store.set_setting(ADMIN_TOKEN_SETTING, &hex::encode(h))?;
    // Printed once, on purpose, to the terminal only (never to the log).
    println!("admin token (shown once, store it now): {token}");
    Ok(h)
}
