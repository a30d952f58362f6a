//! The plugin runtime: the wasmtime engine, the plugin registry, and one
//! supervised actor per connector instance.

pub(crate) mod actor;
pub mod call_clock;
pub mod config_schema;
mod convert;
pub mod grants;
mod host;
pub mod manifest;
mod plugin;
mod status;
mod views;
mod wasm;
pub mod wit;
pub mod writes;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

pub use actor::{CallError, WebhookCall};
pub use config_schema::{CapabilitiesSpec, ChannelName, EndpointKindSpec, FieldSpec, PluginInfo};
pub use convert::PresenceWrite;
pub use host::{Services, kv_writes_lost};
pub use plugin::{LoadError, PluginOrigin, sha256_hex};
pub use status::{InstanceStatus, Link, RunState};
pub use views::{
    ConnectorPatch, ConnectorReplace, ConnectorView, FolderError, GrantsView, LimitsView,
    NewConnector, PluginView,
};
pub use wasm::CompileSource;
pub use wit::guest::{WebhookRequest, WebhookResponse};
pub use wit::types::Header;
pub use wit::{ContractVersion, WriteAccepted};
pub use writes::{WriteRecord, WriteRegistry, WriteState};

// Embedding one instance outside the supervisor (the benchmarks' probe):
// load a plugin, work out a record's run specification, set a store up as
// an actor does, and turn I/O events into the contract's.
pub use actor::{RunSpec, to_wit};
pub use host::{Identity, InstanceState};
pub use plugin::{LoadedPlugin, load as load_plugin};
pub use status::StatusCell;
pub use wasm::WasmHost;
/// The wasmtime store of one instance run ([`WasmHost::new_store`]).
pub type InstanceStore = wasmtime::Store<InstanceState>;

use actor::{ActorHandle, ActorInit, Control};
use grants::Grants;

use crate::config::Limits;
use crate::engine::sync::SyncWrite;
use crate::engine::users::Channel;
use crate::presence::{InstanceInfo, WatchChange};
use crate::store::{ConnectorRecord, PluginRecord, StoreError, now_ms};

/// A runtime operation that failed, shaped for API answers.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{kind} {id:?} not found")]
    NotFound { kind: &'static str, id: String },
    #[error("{message}")]
    Conflict { field: String, message: String },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Call(#[from] CallError),
}

fn invalid(field: &str, message: impl Into<String>) -> RuntimeError {
    RuntimeError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// One row of the connector table. Rows are replaced whole, never changed
/// in place, so readers hold a consistent copy without a lock.
struct Connector {
    record: ConnectorRecord,
    actor: Option<ActorHandle>,
    problem: Option<String>,
    /// How long a webhook may wait for the plugin's answer; `None` when
    /// the plugin takes no webhooks.
    hook_timeout: Option<Duration>,
    /// Which actor this is (see [`InstanceInfo::incarnation`]).
    incarnation: u64,
}

/// The runtime.
pub struct Runtime {
    /// `{public_url}/hooks`, where the hub knows its public address.
    hooks_base_url: Option<String>,
    wasm: Arc<WasmHost>,
    services: Services,
    limits: Limits,
    plugins_dir: PathBuf,
    plugins: RwLock<BTreeMap<String, Arc<LoadedPlugin>>>,
    folder_errors: Mutex<Vec<FolderError>>,
    /// Changes to plugins and instances, one at a time (they span awaits).
    admin: tokio::sync::Mutex<()>,
    /// The one connector table. Readers (webhooks, watch changes, views)
    /// take it for a lookup; it changes only under `admin`.
    connectors: RwLock<BTreeMap<String, Arc<Connector>>>,
    incarnations: AtomicU64,
    /// Which instances run on this node: all of them, or (one node of a
    /// cluster) those it holds a lease on.
    placement: Placement,
}

/// Which connector instances a runtime runs.
#[derive(Clone, Default)]
pub enum Placement {
    /// Every stored instance (a single hub).
    #[default]
    All,
    /// Those this node holds (see [`crate::cluster`]); the others are
    /// listed, and run elsewhere.
    Held(Arc<crate::cluster::LeaseBook>),
}

impl Placement {
    fn runs_here(&self, instance: &str) -> bool {
        match self {
            Placement::All => true,
            Placement::Held(book) => book.holds(instance),
        }
    }

    /// A write-back to `instance` is about to reach its plugin: in a
    /// cluster, check in the database that this node still holds it under
    /// its fence (a node that was paused past its lease must not write).
    async fn check_fence(&self, instance: &str) -> Result<(), RuntimeError> {
        match self {
            Placement::All => Ok(()),
            Placement::Held(book) => book.check_fence(instance).await.map_err(|e| {
                tracing::warn!(instance = %instance, error = %e, "write-back refused by its fence: another node runs the connector now");
                RuntimeError::Unavailable(format!(
                    "connector {instance} is run by another node now; send the write there ({e})"
                ))
            }),
        }
    }

    /// This node's share of a cluster's instances; None on a single hub.
    pub fn share(&self) -> Option<crate::cluster::Share> {
        match self {
            Placement::All => None,
            Placement::Held(book) => Some(book.share()),
        }
    }

    /// Where the node running `instance` answers, when it is another
    /// node of the cluster.
    pub fn url_elsewhere(&self, instance: &str) -> Option<String> {
        match self {
            Placement::All => None,
            Placement::Held(book) => book.url_elsewhere(instance),
        }
    }

    fn held_elsewhere(&self, instance: &str) -> bool {
        match self {
            Placement::All => false,
            Placement::Held(book) => book.holder_elsewhere(instance).is_some(),
        }
    }
}

/// Identifiers used in URLs: 1-64 of a-z, 0-9, - and _.
/// The most PEM text an instance's own CA certificates may take.
pub const MAX_CA_PEM_BYTES: usize = 64 * 1024;

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

impl Runtime {
    /// Create the runtime; the compiled-component cache lives in `cache_dir`.
    pub fn new(
        services: Services,
        limits: Limits,
        plugins_dir: PathBuf,
        cache_dir: PathBuf,
        hooks_base_url: Option<String>,
        placement: Placement,
    ) -> anyhow::Result<Arc<Self>> {
        let wasm = WasmHost::new(cache_dir).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        Ok(Arc::new(Self {
            hooks_base_url,
            wasm: Arc::new(wasm),
            services,
            limits,
            plugins_dir,
            plugins: RwLock::default(),
            folder_errors: Mutex::default(),
            admin: tokio::sync::Mutex::new(()),
            connectors: RwLock::default(),
            incarnations: AtomicU64::new(0),
            placement,
        }))
    }

    /// Load the plugins directory, then uploaded plugins (which win over a
    /// folder of the same id), then start every stored connector instance.
    pub async fn boot(&self) -> Result<(), StoreError> {
        let mut folders: Vec<PathBuf> = match std::fs::read_dir(&self.plugins_dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join("plugin.toml").exists())
                .collect(),
            Err(e) => {
                tracing::warn!(dir = %self.plugins_dir.display(), error = %e, "no plugins directory: set HUB_PLUGINS_DIR (or plugins_dir in the config file) to the folder holding one folder per plugin; only uploaded plugins are available");
                Vec::new()
            }
        };
        folders.sort();
        for dir in folders {
            let loaded = match plugin::read_folder(&dir) {
                Ok((text, bytes)) => {
                    self.load(
                        &text,
                        &bytes,
                        PluginOrigin::Directory { path: dir.clone() },
                        false,
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            match loaded {
                Ok(p) => self.register(p),
                Err(e) => {
                    tracing::error!(path = %dir.display(), error = %e, "plugin not loaded");
                    self.folder_errors
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(FolderError {
                            path: dir,
                            error: e.to_string(),
                        });
                }
            }
        }
        for rec in self.services.store.plugins()? {
            match self
                .load(&rec.manifest, &rec.component, PluginOrigin::Uploaded, true)
                .await
            {
                Ok(p) => self.register(p),
                Err(e) => tracing::error!(plugin = %rec.id, error = %e, "stored plugin not loaded"),
            }
        }
        self.prune_compiled();
        let _admin = self.admin.lock().await;
        for record in self.services.store.connectors()? {
            let c = self.spawn_connector(record);
            self.put(c);
        }
        Ok(())
    }

    fn table(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Connector>>> {
        self.connectors.read().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, id: &str) -> Option<Arc<Connector>> {
        self.table().get(id).cloned()
    }

    /// Put a row in the table and tell the presence service about it.
    fn put(&self, c: Connector) -> Arc<Connector> {
        let c = Arc::new(c);
        self.connectors
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(c.record.id.clone(), c.clone());
        // After the row is in: the watch set the service sends back must
        // find the actor.
        self.announce(&c);
        c
    }

    /// What the presence service needs to know of an instance.
    fn announce(&self, c: &Connector) {
        let plugin = self.plugin_arc(&c.record.plugin);
        let endpoint_kinds = plugin
            .as_ref()
            .map(|p| {
                p.info
                    .endpoint_kinds
                    .iter()
                    .map(|k| (k.attribute.clone(), channel_of(&k.feeds)))
                    .collect()
            })
            .unwrap_or_default();
        let writes = |ch: ChannelName| {
            plugin
                .as_ref()
                .is_some_and(|p| p.info.capabilities.writes.contains(&ch))
        };
        let running = c.record.enabled
            && match &c.actor {
                Some(a) => matches!(
                    a.status.get().run_state,
                    RunState::Running | RunState::Starting | RunState::Restarting
                ),
                // Run by another node of the cluster: its reports arrive
                // through the cluster log.
                None => self.placement.held_elsewhere(&c.record.id),
            };
        self.services.presence.instance(InstanceInfo {
            id: c.record.id.clone(),
            plugin: c.record.plugin.clone(),
            running,
            endpoint_kinds,
            operator_watches: c.record.watches.clone(),
            incarnation: c.incarnation,
            writes_rich: writes(ChannelName::Rich),
            writes_telephony: writes(ChannelName::Telephony),
        });
    }

    /// Apply the presence service's watch changes, in order, for as long as
    /// the hub runs. A change for an instance without an actor is dropped:
    /// its next actor gets the whole set.
    pub fn follow_watches(self: &Arc<Self>, mut changes: mpsc::UnboundedReceiver<WatchChange>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(change) = changes.recv().await {
                let Some(rt) = me.upgrade() else { return };
                if let Some(actor) = rt.get(&change.instance).and_then(|c| c.actor.clone()) {
                    let _ = actor.watches.send(change);
                }
            }
        });
    }

    async fn load(
        &self,
        manifest: &str,
        component: &[u8],
        origin: PluginOrigin,
        require_checksum: bool,
    ) -> Result<LoadedPlugin, LoadError> {
        plugin::load(
            &self.wasm,
            &self.services,
            &self.limits,
            manifest,
            component,
            origin,
            require_checksum,
        )
        .await
    }

    fn register(&self, p: LoadedPlugin) {
        tracing::info!(plugin = %p.manifest.id, version = %p.manifest.version, load_ms = p.load_ms, source = %crate::telemetry::term(&p.compile_source), "plugin loaded");
        self.plugins
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(p.manifest.id.clone(), Arc::new(p));
    }

    fn plugin_arc(&self, id: &str) -> Option<Arc<LoadedPlugin>> {
        self.plugins
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// The run specification of `record` on `plugin`: its configuration
    /// checked and converted, the manifest's grants widened by the
    /// configured addresses, TLS trust.
    pub fn run_spec(
        plugin: &LoadedPlugin,
        record: &ConnectorRecord,
    ) -> Result<RunSpec, RuntimeError> {
        let (entries, addresses) = plugin
            .info
            .entries(&record.config, &record.secrets)
            .map_err(|e| invalid(&e.field, e.message))?;
        let mut grants = Grants::new(plugin.manifest.network_grants());
        for a in addresses {
            grants.widen(a);
        }
        if record
            .tls_ca_pem
            .as_ref()
            .is_some_and(|p| p.len() > MAX_CA_PEM_BYTES)
        {
            return Err(invalid(
                "tls_ca_pem",
                format!("at most {MAX_CA_PEM_BYTES} bytes of PEM certificates"),
            ));
        }
        let tls = crate::io::tls::client_config(record.tls_ca_pem.as_deref())
            .map_err(|e| invalid("tls_ca_pem", e.to_string()))?;
        Ok(RunSpec {
            entries,
            grants,
            tls,
        })
    }

    /// A table row for `record`, with an actor when its plugin is loaded
    /// and the configuration fits it.
    fn spawn_connector(&self, record: ConnectorRecord) -> Connector {
        let incarnation = self.incarnations.fetch_add(1, Ordering::Relaxed) + 1;
        let row = |problem: String| Connector {
            record: record.clone(),
            actor: None,
            problem: Some(problem),
            hook_timeout: None,
            incarnation,
        };
        let Some(plugin) = self.plugin_arc(&record.plugin) else {
            let problem = format!(
                "plugin {:?} is not loaded; upload it to start this connector",
                record.plugin
            );
            tracing::warn!(instance = %record.id, "{problem}");
            return row(problem);
        };
        let spec = match Self::run_spec(&plugin, &record) {
            Ok(s) => s,
            Err(e) => return row(format!("configuration does not fit the plugin: {e}")),
        };
        if !self.placement.runs_here(&record.id) {
            // Another node runs it (or will, once a node takes its lease).
            return Connector {
                record,
                actor: None,
                problem: None,
                hook_timeout: None,
                incarnation,
            };
        }
        let actor = actor::spawn(ActorInit {
            instance: record.id.clone(),
            plugin: plugin.clone(),
            spec,
            enabled: record.enabled,
            wasm: self.wasm.clone(),
            services: self.services.clone(),
            policy: self.limits.clone(),
            hooks_base_url: self.hooks_base_url.clone(),
        });
        Connector {
            hook_timeout: plugin
                .manifest
                .grants
                .webhooks
                .then(|| Duration::from_millis(u64::from(plugin.limits.call_timeout_ms) + 5_000)),
            record,
            actor: Some(actor),
            problem: None,
            incarnation,
        }
    }

    // ---- plugins -------------------------------------------------------

    /// The instances of a plugin.
    fn users_of(&self, plugin: &str) -> Vec<String> {
        self.table()
            .values()
            .filter(|c| c.record.plugin == plugin)
            .map(|c| c.record.id.clone())
            .collect()
    }

    fn plugin_view(&self, p: &LoadedPlugin, instances: Vec<String>) -> PluginView {
        PluginView {
            id: p.manifest.id.clone(),
            version: p.manifest.version.clone(),
            api_version: p.info.api_version,
            name: p.info.name.clone(),
            description: if p.manifest.description.is_empty() {
                p.info.description.clone()
            } else {
                p.manifest.description.clone()
            },
            sha256: p.sha256.clone(),
            size_bytes: p.size_bytes,
            origin: p.origin.clone(),
            grants: GrantsView {
                network: p.manifest.grants.network.clone(),
                webhooks: p.manifest.grants.webhooks,
                kv: p.manifest.grants.kv,
            },
            limits: LimitsView {
                memory_mib: p.limits.memory_bytes >> 20,
                call_timeout_ms: p.limits.call_timeout_ms,
                queue: p.limits.queue,
                kv_max_bytes: p.limits.kv_max_bytes,
            },
            config_fields: p.info.config_fields.clone(),
            endpoint_kinds: p.info.endpoint_kinds.clone(),
            capabilities: p.info.capabilities.clone(),
            loaded_at_ms: p.loaded_at_ms,
            load_ms: p.load_ms,
            compile_source: p.compile_source,
            instances,
        }
    }

    /// Every loaded plugin, and folders that failed to load.
    pub async fn plugins(&self) -> (Vec<PluginView>, Vec<FolderError>) {
        let plugins: Vec<_> = self
            .plugins
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let views = plugins
            .iter()
            .map(|p| self.plugin_view(p, self.users_of(&p.manifest.id)))
            .collect();
        let errors = self
            .folder_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        (views, errors)
    }

    /// One plugin.
    pub async fn plugin(&self, id: &str) -> Result<PluginView, RuntimeError> {
        let p = self.plugin_arc(id).ok_or_else(|| RuntimeError::NotFound {
            kind: "plugin",
            id: id.into(),
        })?;
        Ok(self.plugin_view(&p, self.users_of(id)))
    }

    /// Install an uploaded plugin, or replace one (hot reload of every
    /// instance using it). Nothing changes unless the new build loads and
    /// every instance's configuration fits it.
    pub async fn install(
        &self,
        manifest: &str,
        component: &[u8],
    ) -> Result<PluginView, RuntimeError> {
        let p = self
            .load(manifest, component, PluginOrigin::Uploaded, true)
            .await?;
        let _admin = self.admin.lock().await;
        let r = self.replace(p, Some((manifest, component))).await;
        self.prune_compiled();
        r
    }

    /// Keep in the compiled-component cache only what loaded plugins use.
    fn prune_compiled(&self) {
        let keep: std::collections::HashSet<String> = self
            .plugins
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|p| p.sha256.clone())
            .collect();
        self.wasm.prune_cache(&keep);
    }

    /// Load a plugin again from where it came from and move its instances.
    pub async fn reload_plugin(&self, id: &str) -> Result<PluginView, RuntimeError> {
        let current = self.plugin_arc(id).ok_or_else(|| RuntimeError::NotFound {
            kind: "plugin",
            id: id.into(),
        })?;
        let p = match &current.origin {
            PluginOrigin::Directory { path } => {
                let (text, bytes) = plugin::read_folder(path)?;
                self.load(&text, &bytes, current.origin.clone(), false)
                    .await?
            }
            PluginOrigin::Uploaded => {
                let rec = self
                    .services
                    .store
                    .plugins()?
                    .into_iter()
                    .find(|r| r.id == id)
                    .ok_or_else(|| RuntimeError::NotFound {
                        kind: "stored plugin",
                        id: id.into(),
                    })?;
                self.load(&rec.manifest, &rec.component, PluginOrigin::Uploaded, true)
                    .await?
            }
        };
        if p.manifest.id != id {
            return Err(invalid(
                "manifest.id",
                format!("the plugin on disk is now {:?}, not {id:?}", p.manifest.id),
            ));
        }
        let _admin = self.admin.lock().await;
        self.replace(p, None).await
    }

    /// Move every instance of plugin `p.id` to the new build; the caller
    /// holds `admin`.
    async fn replace(
        &self,
        p: LoadedPlugin,
        persist: Option<(&str, &[u8])>,
    ) -> Result<PluginView, RuntimeError> {
        let id = p.manifest.id.clone();
        let users: Vec<String> = self.users_of(&id);
        let mut specs = Vec::new();
        for u in &users {
            let c = self.get(u).expect("listed above");
            let rec = &c.record;
            // Re-validate: the new build may have other fields.
            let mut values = serde_json::Map::new();
            values.extend(rec.config.clone());
            p.info
                .validate(&values, &rec.secrets)
                .map_err(|e| RuntimeError::Conflict {
                    field: e.field.clone(),
                    message: format!(
                        "connector {u:?} does not fit the new plugin build: {}: {}. Update it first",
                        e.field, e.message
                    ),
                })?;
            specs.push(Self::run_spec(&p, rec)?);
        }
        if let Some((manifest, component)) = persist {
            self.services.store.put_plugin(&PluginRecord {
                id: id.clone(),
                version: p.manifest.version.clone(),
                manifest: manifest.to_owned(),
                sha256: p.sha256.clone(),
                component: component.to_vec(),
                uploaded_at_ms: now_ms(),
            })?;
        }
        let p = Arc::new(p);
        self.plugins
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), p.clone());
        for (u, spec) in users.iter().zip(specs) {
            let c = self.get(u).expect("listed above");
            match &c.actor {
                Some(a) => {
                    let (tx, rx) = oneshot::channel();
                    let _ = a.control.send(Control::Reload(p.clone(), spec, tx)).await;
                    let _ = rx.await;
                    // The new build may watch other kinds of endpoints.
                    self.announce(&c);
                }
                None => {
                    let record = c.record.clone();
                    self.put(self.spawn_connector(record));
                }
            }
        }
        // Instances stored before their plugin arrived start now.
        Ok(self.plugin_view(&p, users))
    }

    /// Remove a plugin that no instance uses.
    pub async fn delete_plugin(&self, id: &str) -> Result<(), RuntimeError> {
        let _admin = self.admin.lock().await;
        let users = self.users_of(id);
        if !users.is_empty() {
            return Err(RuntimeError::Conflict {
                field: "id".into(),
                message: format!(
                    "plugin {id:?} is used by connector(s) {}; delete them first",
                    users.join(", ")
                ),
            });
        }
        let removed = self
            .plugins
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        let stored = self.services.store.delete_plugin(id)?;
        if removed.is_none() && !stored {
            return Err(RuntimeError::NotFound {
                kind: "plugin",
                id: id.into(),
            });
        }
        self.prune_compiled();
        Ok(())
    }

    // ---- connectors ----------------------------------------------------

    fn connector_view(&self, c: &Connector) -> ConnectorView {
        let r = &c.record;
        let node = match &self.placement {
            Placement::All => None,
            Placement::Held(book) if c.actor.is_some() => Some(book.node_id().to_string()),
            Placement::Held(book) => book.holder_elsewhere(&r.id),
        };
        ConnectorView {
            node,
            id: r.id.clone(),
            plugin: r.plugin.clone(),
            enabled: r.enabled,
            config: r.config.clone(),
            secrets_set: r.secrets.keys().cloned().collect(),
            tls_ca_configured: r.tls_ca_pem.is_some(),
            watches: r.watches.clone(),
            created_at_ms: r.created_at_ms,
            updated_at_ms: r.updated_at_ms,
            problem: c.problem.clone(),
            status: match (&c.actor, &self.placement) {
                (Some(a), _) => Some(a.status.get()),
                // Run by another node: its status as that node stored it.
                (None, Placement::Held(book)) => book.status_elsewhere(&r.id),
                (None, Placement::All) => None,
            },
        }
    }

    /// All connector instances.
    pub async fn connectors(&self) -> Vec<ConnectorView> {
        self.table()
            .values()
            .map(|c| self.connector_view(c))
            .collect()
    }

    /// One connector instance, without waiting (for callers outside async).
    pub fn connector_now(&self, id: &str) -> Result<ConnectorView, RuntimeError> {
        self.get(id)
            .map(|c| self.connector_view(&c))
            .ok_or_else(|| not_found(id))
    }

    /// One connector instance.
    pub async fn connector(&self, id: &str) -> Result<ConnectorView, RuntimeError> {
        self.get(id)
            .map(|c| self.connector_view(&c))
            .ok_or_else(|| not_found(id))
    }

    fn check_watches(watches: &[String]) -> Result<(), RuntimeError> {
        for (i, w) in watches.iter().enumerate() {
            if w.trim().is_empty() || w.len() > 512 {
                return Err(invalid(
                    &format!("watches[{i}]"),
                    "an endpoint is 1-512 characters",
                ));
            }
        }
        Ok(())
    }

    /// Create a connector instance and start it.
    pub async fn create_connector(&self, req: NewConnector) -> Result<ConnectorView, RuntimeError> {
        if !valid_id(&req.id) {
            return Err(invalid("id", "use 1-64 characters a-z, 0-9, - and _"));
        }
        Self::check_watches(&req.watches)?;
        let _admin = self.admin.lock().await;
        if self.get(&req.id).is_some() {
            return Err(RuntimeError::Conflict {
                field: "id".into(),
                message: format!("connector {:?} exists already", req.id),
            });
        }
        let plugin = self
            .plugin_arc(&req.plugin)
            .ok_or_else(|| invalid("plugin", format!("no plugin {:?} is loaded", req.plugin)))?;
        let (config, secrets) = plugin
            .info
            .validate(&req.config, &BTreeMap::new())
            .map_err(|e| invalid(&e.field, e.message))?;
        let now = now_ms();
        let mut watches = req.watches;
        watches.sort();
        watches.dedup();
        let record = ConnectorRecord {
            id: req.id.clone(),
            plugin: req.plugin,
            config,
            secrets,
            enabled: req.enabled,
            tls_ca_pem: req.tls_ca_pem,
            watches,
            created_at_ms: now,
            updated_at_ms: now,
        };
        Self::run_spec(&plugin, &record)?;
        self.services.store.put_connector(&record)?;
        let c = self.put(self.spawn_connector(record));
        // The plugin has the last word on its configuration: a refusal is
        // the operator's answer, and nothing stays behind.
        if let Some(actor) = &c.actor {
            let (tx, rx) = oneshot::channel();
            let _ = actor.control.send(Control::Outcome(tx)).await;
            let outcome = self.configure_wait(&plugin, rx).await;
            if let Err(e) = check_configured(outcome, "nothing was created") {
                self.discard(&req.id).await;
                return Err(e);
            }
        }
        Ok(self.connector_view(&c))
    }

    /// Wait, bounded, for an actor's answer about its `configure`: the
    /// call's CPU deadline times the wall factor, plus instantiation.
    async fn configure_wait(
        &self,
        plugin: &LoadedPlugin,
        rx: oneshot::Receiver<actor::Configured>,
    ) -> Option<actor::Configured> {
        let bound = configure_bound(plugin);
        match tokio::time::timeout(bound, rx).await {
            Ok(Ok(c)) => Some(c),
            // The actor is gone: it stopped (or ended) before answering.
            Ok(Err(_)) => Some(actor::Configured::Failed("the connector stopped".into())),
            Err(_) => None,
        }
    }

    /// Undo a creation the plugin refused: stop the actor (bounded), drop
    /// the row, the stored record and its key-value data.
    async fn discard(&self, id: &str) {
        let c = self
            .connectors
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        if let Some(a) = c.as_ref().and_then(|c| c.actor.as_ref()) {
            let (tx, rx) = oneshot::channel();
            if a.control.send(Control::Stop(tx)).await.is_ok() {
                let _ = tokio::time::timeout(crate::timing::STOP_WAIT, rx).await;
            }
        }
        if let Err(e) = self.services.store.delete_connector(id) {
            tracing::error!(instance = %id, error = %e, "a refused connector could not be removed from the store");
        }
        self.services.presence.instance_removed(id);
    }

    /// Change a connector instance: `patch.config` is a JSON merge patch
    /// (RFC 7396) over the stored configuration. The plugin has the last
    /// word: when the running instance refuses the new configuration (or
    /// an instance being enabled refuses its configuration), the old one
    /// is put back and the answer names the field.
    pub async fn update_connector(
        &self,
        id: &str,
        patch: ConnectorPatch,
    ) -> Result<ConnectorView, RuntimeError> {
        let config = patch.config.as_ref().map(ConfigChange::Merge);
        self.change_connector(id, &patch, config).await
    }

    /// Replace a connector instance's settings (`PUT`): what is not given
    /// takes its default, except secret fields, which keep their stored
    /// value unless given (they cannot be read back to send again); `null`
    /// removes one. The plugin cannot change.
    pub async fn replace_connector(
        &self,
        id: &str,
        req: ConnectorReplace,
    ) -> Result<ConnectorView, RuntimeError> {
        if req.id.as_deref().is_some_and(|i| i != id) {
            return Err(invalid(
                "id",
                "must match the URL; delete and create to rename",
            ));
        }
        let patch = ConnectorPatch {
            config: Some(req.config),
            enabled: Some(req.enabled),
            tls_ca_pem: Some(req.tls_ca_pem),
            watches: Some(req.watches),
        };
        let replace = patch.config.as_ref().map(ConfigChange::Replace);
        if let Some(p) = &req.plugin {
            let c = self.get(id).ok_or_else(|| not_found(id))?;
            if *p != c.record.plugin {
                return Err(invalid(
                    "plugin",
                    format!(
                        "connector {id:?} runs plugin {:?}; a connector cannot change its plugin: create a new one",
                        c.record.plugin
                    ),
                ));
            }
        }
        self.change_connector(id, &patch, replace).await
    }

    async fn change_connector(
        &self,
        id: &str,
        patch: &ConnectorPatch,
        config: Option<ConfigChange<'_>>,
    ) -> Result<ConnectorView, RuntimeError> {
        let _admin = self.admin.lock().await;
        let c = self.get(id).ok_or_else(|| not_found(id))?;
        let mut record = c.record.clone();
        if let Some(w) = &patch.watches {
            Self::check_watches(w)?;
            let mut w = w.clone();
            w.sort();
            w.dedup();
            record.watches = w;
        }
        if let Some(enabled) = patch.enabled {
            record.enabled = enabled;
        }
        if let Some(ca) = &patch.tls_ca_pem {
            record.tls_ca_pem = ca.clone();
        }
        let plugin = self.plugin_arc(&record.plugin);
        if let Some(change) = &config {
            let plugin = plugin.as_ref().ok_or_else(|| {
                RuntimeError::Unavailable(format!("plugin {:?} is not loaded", record.plugin))
            })?;
            let (public, secrets) = change.apply(&plugin.info, &record)?;
            record.config = public;
            record.secrets = secrets;
        }
        let spec = match &plugin {
            Some(p) => Some(Self::run_spec(p, &record)?),
            None => None,
        };
        record.updated_at_ms = now_ms();
        let old = c.record.clone();
        if c.actor.is_none() && spec.is_some() {
            // It could not start before (its configuration did not fit the
            // plugin); now it fits: start it, unless the plugin refuses.
            self.services.store.put_connector(&record)?;
            let started = self.put(self.spawn_connector(record));
            if let (Some(actor), Some(p)) = (&started.actor, &plugin) {
                let (tx, rx) = oneshot::channel();
                let _ = actor.control.send(Control::Outcome(tx)).await;
                let outcome = self.configure_wait(p, rx).await;
                if let Err(e) = check_configured(outcome, "the connector was left as it was") {
                    if let Some(a) = &started.actor {
                        let (tx, rx) = oneshot::channel();
                        if a.control.send(Control::Stop(tx)).await.is_ok() {
                            let _ = tokio::time::timeout(crate::timing::STOP_WAIT, rx).await;
                        }
                    }
                    self.services.store.put_connector(&old)?;
                    self.put(Connector {
                        record: old,
                        actor: None,
                        problem: c.problem.clone(),
                        hook_timeout: c.hook_timeout,
                        incarnation: c.incarnation,
                    });
                    return Err(e);
                }
            }
            return Ok(self.connector_view(&started));
        }
        let reconfigure = config.is_some() || patch.tls_ca_pem.is_some();
        let enabling = patch.enabled.is_some() && old.enabled != record.enabled;
        if let (Some(actor), Some(p), Some(spec)) = (&c.actor, &plugin, &spec) {
            // Ask the plugin before anything is stored: a refusal leaves
            // the instance as it was.
            let mut outcome = None;
            if enabling && !record.enabled {
                let (tx, rx) = oneshot::channel();
                let _ = actor.control.send(Control::Enable(false, tx)).await;
                let _ = rx.await;
            }
            if reconfigure {
                let (tx, rx) = oneshot::channel();
                let _ = actor
                    .control
                    .send(Control::Configure(spec.clone(), tx))
                    .await;
                outcome = Some(self.configure_wait(p, rx).await);
            }
            if enabling && record.enabled {
                let (tx, rx) = oneshot::channel();
                let _ = actor.control.send(Control::Enable(true, tx)).await;
                outcome = Some(self.configure_wait(p, rx).await);
            }
            if let Some(outcome) = outcome
                && let Err(e) = check_configured(outcome, "the previous configuration was kept")
            {
                // Put the old settings back in the running actor.
                if reconfigure && let Ok(old_spec) = Self::run_spec(p, &old) {
                    let (tx, rx) = oneshot::channel();
                    let _ = actor.control.send(Control::Configure(old_spec, tx)).await;
                    let _ = self.configure_wait(p, rx).await;
                }
                if enabling {
                    let (tx, rx) = oneshot::channel();
                    let _ = actor.control.send(Control::Enable(old.enabled, tx)).await;
                    let _ = self.configure_wait(p, rx).await;
                }
                self.announce(&c);
                return Err(e);
            }
        }
        self.services.store.put_connector(&record)?;
        let c = self.put(Connector {
            record,
            actor: c.actor.clone(),
            problem: c.problem.clone(),
            hook_timeout: c.hook_timeout,
            incarnation: c.incarnation,
        });
        // The run state may have changed with the configuration.
        self.announce(&c);
        Ok(self.connector_view(&c))
    }

    /// Enable (lifting a quarantine) or disable an instance.
    pub async fn set_enabled(
        &self,
        id: &str,
        enabled: bool,
    ) -> Result<ConnectorView, RuntimeError> {
        {
            let _admin = self.admin.lock().await;
            let c = self.get(id).ok_or_else(|| not_found(id))?;
            // Enabling an enabled but quarantined instance lifts the quarantine.
            if c.record.enabled == enabled {
                if let Some(a) = &c.actor {
                    let (tx, rx) = oneshot::channel();
                    let _ = a.control.send(Control::Enable(enabled, tx)).await;
                    let _ = rx.await;
                }
                return Ok(self.connector_view(&c));
            }
        }
        self.update_connector(
            id,
            ConnectorPatch {
                enabled: Some(enabled),
                ..Default::default()
            },
        )
        .await
    }

    /// Stop and delete an instance with its key-value data.
    pub async fn delete_connector(&self, id: &str) -> Result<(), RuntimeError> {
        let _admin = self.admin.lock().await;
        let c = self
            .connectors
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
            .ok_or_else(|| not_found(id))?;
        if let Some(a) = &c.actor {
            let (tx, rx) = oneshot::channel();
            let _ = a.control.send(Control::Stop(tx)).await;
            let _ = rx.await;
        }
        // A deleted instance's series go with it (ids do not pile up).
        self.services
            .metrics
            .forget_instance(&crate::telemetry::ConnectorLabels {
                instance: id.to_string(),
                plugin: c.record.plugin.clone(),
            });
        self.services.store.delete_connector(id)?;
        // Gone everywhere: no user's source any more, its observations go.
        self.services.presence.instance_removed(id);
        Ok(())
    }

    // ---- one node of a cluster ----------------------------------------

    /// This node now holds `id`'s lease: run it, from its record as stored
    /// now (another node may have changed it). A no-op when it runs here.
    pub async fn adopt(&self, id: &str) -> Result<(), RuntimeError> {
        let store = self.services.store.clone();
        let owned = id.to_string();
        let record = tokio::task::spawn_blocking(move || store.connectors())
            .await
            .map_err(|_| RuntimeError::Unavailable("the store task ended".into()))??
            .into_iter()
            .find(|r| r.id == owned);
        let _admin = self.admin.lock().await;
        if self.get(id).is_some_and(|c| c.actor.is_some()) {
            return Ok(());
        }
        match record {
            Some(record) => {
                tracing::info!(instance = %id, plugin = %record.plugin, "connector taken over: running on this node");
                self.put(self.spawn_connector(record));
            }
            None => tracing::debug!(instance = %id, "leased instance is no longer stored"),
        }
        Ok(())
    }

    /// This node lost (or gave up) `id`'s lease: stop its run here, bounded,
    /// and keep listing it. Returns once the actor has stopped (or
    /// [`crate::timing::STOP_WAIT`] passed), so nothing of the run acts
    /// after the caller drops its fence.
    pub async fn relinquish(&self, id: &str) {
        let _admin = self.admin.lock().await;
        let Some(c) = self.get(id) else { return };
        let Some(a) = &c.actor else { return };
        tracing::info!(instance = %id, "connector handed over: no longer running on this node");
        let (tx, rx) = oneshot::channel();
        if a.control.send(Control::Stop(tx)).await.is_ok() {
            let _ = tokio::time::timeout(crate::timing::STOP_WAIT, rx).await;
        }
        self.put(Connector {
            record: c.record.clone(),
            actor: None,
            problem: None,
            hook_timeout: None,
            incarnation: self.incarnations.fetch_add(1, Ordering::Relaxed) + 1,
        });
    }

    /// Tell the presence service again what it must know of `id` (its
    /// holder elsewhere changed).
    pub async fn reannounce(&self, id: &str) {
        let _admin = self.admin.lock().await;
        let Some(c) = self.get(id) else { return };
        if c.actor.is_some() {
            return;
        }
        // A new incarnation: the presence service takes the runtime's word
        // on whether it runs only for a new one.
        self.put(Connector {
            record: c.record.clone(),
            actor: None,
            problem: c.problem.clone(),
            hook_timeout: c.hook_timeout,
            incarnation: self.incarnations.fetch_add(1, Ordering::Relaxed) + 1,
        });
    }

    /// Which instances run here.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// Instances this node runs now.
    pub fn running_here(&self) -> Vec<String> {
        self.table()
            .values()
            .filter(|c| c.actor.is_some())
            .map(|c| c.record.id.clone())
            .collect()
    }

    /// Every stored instance that should run somewhere (enabled, its
    /// plugin loaded): what a cluster's nodes share out.
    pub fn runnable(&self) -> Vec<String> {
        self.table()
            .values()
            .filter(|c| c.record.enabled && self.plugin_arc(&c.record.plugin).is_some())
            .map(|c| c.record.id.clone())
            .collect()
    }

    /// Take in connector instances another node created, changed or
    /// deleted in the shared store. A changed instance running here starts
    /// again on its new record (the plugin checks it then; a refusal shows
    /// in its status, as the node that took the change could not ask).
    pub async fn follow_stored_connectors(&self) -> Result<(), RuntimeError> {
        let store = self.services.store.clone();
        let stored = tokio::task::spawn_blocking(move || store.connectors())
            .await
            .map_err(|_| RuntimeError::Unavailable("the store task ended".into()))??;
        let _admin = self.admin.lock().await;
        let stored: BTreeMap<String, ConnectorRecord> =
            stored.into_iter().map(|r| (r.id.clone(), r)).collect();
        let gone: Vec<String> = self
            .table()
            .keys()
            .filter(|id| !stored.contains_key(*id))
            .cloned()
            .collect();
        for id in gone {
            let c = self
                .connectors
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            if let Some(a) = c.as_ref().and_then(|c| c.actor.as_ref()) {
                let (tx, rx) = oneshot::channel();
                if a.control.send(Control::Stop(tx)).await.is_ok() {
                    let _ = tokio::time::timeout(crate::timing::STOP_WAIT, rx).await;
                }
            }
            tracing::info!(instance = %id, "connector deleted on another node");
            self.services.presence.instance_removed(&id);
        }
        for (id, record) in stored {
            let current = self.get(&id);
            if current.as_ref().is_some_and(|c| c.record == record) {
                continue;
            }
            if let Some(a) = current.as_ref().and_then(|c| c.actor.as_ref()) {
                let (tx, rx) = oneshot::channel();
                if a.control.send(Control::Stop(tx)).await.is_ok() {
                    let _ = tokio::time::timeout(crate::timing::STOP_WAIT, rx).await;
                }
            }
            tracing::info!(instance = %id, "connector created or changed on another node");
            self.put(self.spawn_connector(record));
        }
        Ok(())
    }

    /// Take in plugins another node uploaded, replaced or deleted in the
    /// shared store; each node compiles (and caches) them itself.
    pub async fn follow_stored_plugins(&self) -> Result<(), RuntimeError> {
        let store = self.services.store.clone();
        let stored = tokio::task::spawn_blocking(move || store.plugins())
            .await
            .map_err(|_| RuntimeError::Unavailable("the store task ended".into()))??;
        for rec in &stored {
            // An upload wins over a folder of the same id, even with the
            // same bytes.
            if self.plugin_arc(&rec.id).is_some_and(|p| {
                p.sha256 == rec.sha256 && matches!(p.origin, PluginOrigin::Uploaded)
            }) {
                continue;
            }
            let p = match self
                .load(&rec.manifest, &rec.component, PluginOrigin::Uploaded, true)
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(plugin = %rec.id, error = %e, "plugin uploaded on another node does not load here");
                    continue;
                }
            };
            let _admin = self.admin.lock().await;
            if let Err(e) = self.replace(p, None).await {
                tracing::error!(plugin = %rec.id, error = %e, "plugin uploaded on another node not taken in");
            }
        }
        let _admin = self.admin.lock().await;
        let uploaded_gone: Vec<String> = self
            .plugins
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|p| matches!(p.origin, PluginOrigin::Uploaded))
            .filter(|p| !stored.iter().any(|r| r.id == p.manifest.id))
            .map(|p| p.manifest.id.clone())
            .collect();
        for id in uploaded_gone {
            if self.users_of(&id).is_empty() {
                self.plugins
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
            }
        }
        self.prune_compiled();
        Ok(())
    }

    /// Ask a connector to write presence back to its platform. The write
    /// gets an id at once; the record says whether the plugin took it, and
    /// its outcome arrives later (see [`Runtime::write`]).
    pub async fn set_presence(
        &self,
        id: &str,
        endpoint: &str,
        write: PresenceWrite,
    ) -> Result<WriteRecord, RuntimeError> {
        if let Some(url) = self.placement.url_elsewhere(id) {
            return Err(RuntimeError::Unavailable(format!(
                "connector {id} runs on another node of the cluster ({url}); send the write there"
            )));
        }
        let control = self.control_of(id)?;
        self.placement.check_fence(id).await?;
        let action = convert::write_action(write);
        let write_id = self.services.writes.open(id, endpoint, &action);
        let answer = hand_write(&control, write_id, endpoint, action).await;
        self.take_answer(id, write_id, answer)?;
        self.services
            .writes
            .get(write_id)
            .ok_or_else(|| RuntimeError::Unavailable("the write was forgotten".into()))
    }

    /// Make the sync's writes, in the order the presence service decided
    /// them, for as long as the hub runs. Each instance has a queue of its
    /// own, so a busy or restarting actor holds up no other instance's
    /// writes; within an instance they reach the actor in order, and the
    /// plugin's answers are awaited beside.
    pub fn follow_sync_writes(self: &Arc<Self>, mut writes: mpsc::UnboundedReceiver<SyncWrite>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut queues: BTreeMap<String, mpsc::UnboundedSender<SyncWrite>> = BTreeMap::new();
            while let Some(w) = writes.recv().await {
                let Some(rt) = me.upgrade() else { return };
                queues.retain(|_, q| !q.is_closed());
                let queue = queues.entry(w.instance.clone()).or_insert_with(|| {
                    let (tx, rx) = mpsc::unbounded_channel();
                    tokio::spawn(rt.clone().send_sync_writes(rx));
                    tx
                });
                let _ = queue.send(w);
            }
        });
    }

    /// One instance's sync writes, in order; ends when the instance has
    /// had nothing to write for a minute (a new queue starts on demand).
    async fn send_sync_writes(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<SyncWrite>) {
        while let Ok(Some(w)) = tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            if self.placement.held_elsewhere(&w.instance) {
                // Every node of a cluster decides the same writes; the node
                // running the instance makes it. Here it counts as made, so
                // this node's view of the sync follows the holder's.
                let result = match w.action {
                    crate::engine::sync::SyncAction::Restore => {
                        crate::engine::sync::WriteResult::Restored
                    }
                    _ => crate::engine::sync::WriteResult::Applied,
                };
                self.services.presence.write_settled(w.id, result);
                continue;
            }
            let action = convert::write_action(convert::sync_write(w.action));
            self.services
                .writes
                .open_as(w.id, &w.instance, &w.endpoint, &action);
            let fenced = self.placement.check_fence(&w.instance).await;
            let control = match fenced.and_then(|()| self.control_of(&w.instance)) {
                Ok(c) => c,
                Err(e) => {
                    let _ = self.take_answer(
                        &w.instance,
                        w.id,
                        Some(Err(CallError::Connector(e.to_string()))),
                    );
                    continue;
                }
            };
            let (tx, reply) = oneshot::channel();
            let request = wit::types::WriteRequest {
                id: w.id,
                endpoint: w.endpoint,
                action,
            };
            let sent = control.send(Control::Write { request, reply: tx }).await;
            let rt = self.clone();
            let instance = w.instance;
            tokio::spawn(async move {
                let answer = match sent {
                    Ok(()) => reply.await.ok(),
                    Err(_) => None,
                };
                let _ = rt.take_answer(&instance, w.id, answer);
            });
        }
    }

    /// The actor's control channel of instance `id`, if it runs.
    fn control_of(&self, id: &str) -> Result<mpsc::Sender<Control>, RuntimeError> {
        let c = self.get(id).ok_or_else(|| not_found(id))?;
        c.actor
            .as_ref()
            .map(|a| a.control.clone())
            .ok_or_else(|| RuntimeError::Unavailable(c.problem.clone().unwrap_or_default()))
    }

    /// Settle a write by the plugin's answer to `write-presence` where the
    /// answer settles it (refused, no outcome to come, connector gone).
    fn take_answer(
        &self,
        instance: &str,
        write_id: u64,
        answer: Option<Result<WriteAccepted, CallError>>,
    ) -> Result<(), RuntimeError> {
        let settle = |state, detail: String| {
            if let Some(r) =
                self.services
                    .writes
                    .settle(instance, write_id, state, Some(detail), None)
            {
                self.services.write_settled(&r);
            }
        };
        match answer {
            Some(Ok(WriteAccepted::OutcomeFollows)) => Ok(()),
            Some(Ok(WriteAccepted::NoOutcome)) => {
                settle(
                    WriteState::Accepted,
                    "accepted; the plugin is on contract 0.1.0, which reports no outcome".into(),
                );
                Ok(())
            }
            Some(Err(e @ CallError::Rejected(_))) => {
                settle(WriteState::Refused, e.to_string());
                Err(e.into())
            }
            // Not connected yet, stopping, crashed, not running: the
            // write did not happen now and may later.
            Some(Err(e)) => {
                self.fail_retryable(instance, write_id, e.to_string());
                Err(e.into())
            }
            None => {
                self.fail_retryable(instance, write_id, "the connector stopped".into());
                Err(RuntimeError::Unavailable("connector stopped".into()))
            }
        }
    }

    fn fail_retryable(&self, instance: &str, write_id: u64, message: String) {
        let failure = wit::types::WriteFailure {
            message: message.clone(),
            retryable: true,
            retry_after_ms: None,
            status: None,
        };
        if let Some(r) = self.services.writes.settle(
            instance,
            write_id,
            WriteState::Failed,
            Some(message),
            Some(&failure),
        ) {
            self.services.write_settled(&r);
        }
    }

    /// A write-back by id.
    pub fn write(&self, write_id: u64) -> Result<WriteRecord, RuntimeError> {
        self.services
            .writes
            .get(write_id)
            .ok_or_else(|| RuntimeError::NotFound {
                kind: "write",
                id: write_id.to_string(),
            })
    }

    /// An instance's recent write-backs, newest first.
    pub fn writes_of(&self, instance: &str, limit: usize) -> Vec<WriteRecord> {
        self.services.writes.of_instance(instance, limit)
    }

    /// Hand an inbound webhook to its instance and wait for the answer.
    pub async fn webhook(
        &self,
        instance: &str,
        request: WebhookRequest,
    ) -> Result<WebhookResponse, RuntimeError> {
        let (webhooks, timeout) = self
            .get(instance)
            .and_then(|c| Some((c.actor.as_ref()?.webhooks.clone(), c.hook_timeout?)))
            .ok_or_else(|| RuntimeError::NotFound {
                kind: "webhook route for connector",
                id: instance.into(),
            })?;
        let (tx, rx) = oneshot::channel();
        webhooks
            .try_send(WebhookCall { request, reply: tx })
            .map_err(|_| {
                RuntimeError::Unavailable(format!(
                    "connector {instance} is busy (event queue full); retry later"
                ))
            })?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(resp)) => Ok(resp),
            _ => Err(RuntimeError::Unavailable(format!(
                "connector {instance} did not answer in time"
            ))),
        }
    }

    /// Stop every instance gracefully, all at once: each says goodbye
    /// (unsubscribes) within its grace, bounded by [`crate::timing::STOP_WAIT`].
    pub async fn shutdown(&self) {
        let controls: Vec<_> = self
            .table()
            .values()
            .filter_map(|c| c.actor.as_ref().map(|a| a.control.clone()))
            .collect();
        let stops = controls.into_iter().map(|control| async move {
            let (tx, rx) = oneshot::channel();
            if control.send(Control::Stop(tx)).await.is_ok() {
                let _ = tokio::time::timeout(crate::timing::STOP_WAIT, rx).await;
            }
        });
        futures::future::join_all(stops).await;
    }

    /// Whether every stored instance could be started (readiness).
    pub async fn problems(&self) -> Vec<String> {
        self.table()
            .values()
            .filter_map(|c| c.problem.as_ref().map(|p| format!("{}: {p}", c.record.id)))
            .collect()
    }
}

/// How a change gives an instance's configuration.
enum ConfigChange<'a> {
    /// A JSON merge patch (RFC 7396) over the stored configuration: given
    /// fields change, `null` removes one (a secret too), the rest stays.
    Merge(&'a serde_json::Map<String, serde_json::Value>),
    /// The whole configuration; secret fields not given keep their stored
    /// value, `null` removes one.
    Replace(&'a serde_json::Map<String, serde_json::Value>),
}

impl ConfigChange<'_> {
    /// The new non-secret and secret values, checked against the plugin's
    /// fields.
    fn apply(
        &self,
        info: &PluginInfo,
        record: &ConnectorRecord,
    ) -> Result<config_schema::SplitConfig, RuntimeError> {
        let (given, mut values) = match self {
            ConfigChange::Merge(g) => (
                *g,
                record
                    .config
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<serde_json::Map<_, _>>(),
            ),
            ConfigChange::Replace(g) => (*g, serde_json::Map::new()),
        };
        let mut kept_secrets = record.secrets.clone();
        for (k, v) in given {
            if !info.config_fields.iter().any(|f| &f.name == k) {
                let known: Vec<_> = info.config_fields.iter().map(|f| f.name.as_str()).collect();
                return Err(invalid(
                    &format!("config.{k}"),
                    format!("unknown field; this plugin has: {}", known.join(", ")),
                ));
            }
            if v.is_null() {
                values.remove(k);
                kept_secrets.remove(k);
            } else {
                values.insert(k.clone(), v.clone());
            }
        }
        let (public, secrets) = info
            .validate(&values, &kept_secrets)
            .map_err(|e| invalid(&e.field, e.message))?;
        info.check_secrets_follow_addresses(&record.config, &public, given, &record.secrets)
            .map_err(|e| invalid(&e.field, e.message))?;
        Ok((public, secrets))
    }
}

/// How long the runtime waits for an actor's word on `configure`:
/// instantiation and the call, each under the plugin's CPU deadline
/// (times the wall factor), with room for the actor to finish what it is
/// doing.
fn configure_bound(plugin: &LoadedPlugin) -> Duration {
    Duration::from_millis(u64::from(plugin.limits.call_timeout_ms))
        * (2 * crate::timing::CALL_WALL_FACTOR)
        + crate::timing::GOODBYE_GRACE
        + Duration::from_secs(2)
}

/// The operator's answer for what became of a `configure`; `undone` says
/// what was done about a refusal. A run that crashed or ran past its
/// deadline in `configure` is the plugin's fault, not the operator's: the
/// instance stays, supervised (restarts, then quarantine), and its status
/// says why.
fn check_configured(outcome: Option<actor::Configured>, undone: &str) -> Result<(), RuntimeError> {
    use actor::Configured;
    match outcome {
        Some(Configured::Accepted | Configured::NotRun | Configured::Failed(_)) => Ok(()),
        Some(Configured::Refused { field, message }) => Err(RuntimeError::Invalid {
            field: field.map_or_else(|| "config".to_string(), |f| format!("config.{f}")),
            message: format!("the plugin refused the configuration: {message}; {undone}"),
        }),
        None => Err(RuntimeError::Unavailable(format!(
            "the plugin did not answer its configuration in time; {undone}. \
             Retry, or raise the plugin's call_timeout_ms"
        ))),
    }
}

fn not_found(id: &str) -> RuntimeError {
    RuntimeError::NotFound {
        kind: "connector",
        id: id.into(),
    }
}

/// The channel a plugin's endpoint kind feeds, as the merge reads it.
/// Hand a write to an actor and wait for the plugin's answer (`None`: the
/// actor is gone).
async fn hand_write(
    control: &mpsc::Sender<Control>,
    write_id: u64,
    endpoint: &str,
    action: wit::types::WriteAction,
) -> Option<Result<WriteAccepted, CallError>> {
    let (tx, rx) = oneshot::channel();
    let request = wit::types::WriteRequest {
        id: write_id,
        endpoint: endpoint.to_owned(),
        action,
    };
    control
        .send(Control::Write { request, reply: tx })
        .await
        .ok()?;
    rx.await.ok()
}

fn channel_of(feeds: &[ChannelName]) -> Channel {
    let rich = feeds.contains(&ChannelName::Rich) || feeds.contains(&ChannelName::Calendar);
    let telephony = feeds.contains(&ChannelName::Telephony);
    match (rich, telephony) {
        (true, true) => Channel::Both,
        (false, true) => Channel::Telephony,
        _ => Channel::Rich,
    }
}
