//! The plugin runtime: the wasmtime engine, the plugin registry, and one
//! supervised actor per connector instance.

mod actor;
pub mod config_schema;
mod convert;
pub mod grants;
mod host;
pub mod manifest;
mod plugin;
pub mod probe;
mod status;
mod wasm;
pub mod wit;
pub mod writes;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::oneshot;

pub use actor::{CallError, WebhookCall};
pub use config_schema::{CapabilitiesSpec, ChannelName, EndpointKindSpec, FieldSpec, PluginInfo};
pub use convert::PresenceWrite;
pub use host::{NoObserver, Services, kv_writes_lost};
pub use plugin::{LoadError, PluginOrigin, sha256_hex};
pub use status::{InstanceStatus, RunState};
pub use wasm::CompileSource;
pub use wit::guest::{WebhookRequest, WebhookResponse};
pub use wit::types::Header;
pub use wit::{ContractVersion, WriteAccepted};
pub use writes::{WriteRecord, WriteRegistry, WriteState};

use actor::{ActorHandle, ActorInit, Control, RunSpec};
use grants::Grants;
use plugin::LoadedPlugin;
use wasm::WasmHost;

use crate::config::Limits;
use crate::io::Work;
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

/// A plugin as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PluginView {
    pub id: String,
    pub version: String,
    /// The contract version, read from the component.
    pub api_version: ContractVersion,
    pub name: String,
    pub description: String,
    pub sha256: String,
    pub size_bytes: usize,
    pub origin: PluginOrigin,
    pub grants: GrantsView,
    pub limits: LimitsView,
    pub config_fields: Vec<FieldSpec>,
    /// The user attributes its instances can watch; the first is the default.
    pub endpoint_kinds: Vec<EndpointKindSpec>,
    pub capabilities: CapabilitiesSpec,
    pub loaded_at_ms: u64,
    pub load_ms: f64,
    pub compile_source: CompileSource,
    pub instances: Vec<String>,
}

/// A plugin's grants.
#[derive(Debug, Clone, Serialize)]
pub struct GrantsView {
    pub network: Vec<String>,
    pub webhooks: bool,
    pub kv: bool,
}

/// Limits in force.
#[derive(Debug, Clone, Serialize)]
pub struct LimitsView {
    pub memory_mib: usize,
    pub call_timeout_ms: u32,
    pub queue: usize,
    pub kv_max_bytes: u64,
}

/// A plugin folder that could not be loaded.
#[derive(Debug, Clone, Serialize)]
pub struct FolderError {
    pub path: PathBuf,
    pub error: String,
}

/// A connector instance as the API shows it. Secrets never appear.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectorView {
    pub id: String,
    pub plugin: String,
    pub enabled: bool,
    pub config: BTreeMap<String, serde_json::Value>,
    /// Names of secret fields that have a value.
    pub secrets_set: Vec<String>,
    pub tls_ca_configured: bool,
    pub watches: Vec<String>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    /// Why the instance cannot run (its plugin is missing), if so.
    pub problem: Option<String>,
    pub status: Option<InstanceStatus>,
}

/// A request to create a connector instance.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewConnector {
    pub id: String,
    pub plugin: String,
    #[serde(default)]
    pub config: serde_json::Map<String, serde_json::Value>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub tls_ca_pem: Option<String>,
    #[serde(default)]
    pub watches: Vec<String>,
}

fn yes() -> bool {
    true
}

/// A change to a connector instance; absent fields stay as they are. A new
/// `config` replaces the old one, except that secret fields left out keep
/// their value.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorPatch {
    pub config: Option<serde_json::Map<String, serde_json::Value>>,
    pub enabled: Option<bool>,
    /// `null` removes the CA.
    #[serde(default, with = "double_option")]
    pub tls_ca_pem: Option<Option<String>>,
    pub watches: Option<Vec<String>>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Ok(Some(Option::deserialize(d)?))
    }
}

struct Connector {
    record: ConnectorRecord,
    actor: Option<ActorHandle>,
    problem: Option<String>,
    /// The watches the actor was last told: the operator's plus the users'.
    applied: BTreeSet<String>,
}

/// Routing data for webhooks, readable without the admin lock.
#[derive(Clone)]
struct HookRoute {
    work: tokio::sync::mpsc::Sender<Work>,
    timeout: Duration,
}

/// An instance as the presence engine sees it: plugin id, status, enabled.
type RegistryEntry = (String, Option<Arc<status::StatusCell>>, bool);

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
    connectors: tokio::sync::Mutex<BTreeMap<String, Connector>>,
    hooks: RwLock<HashMap<String, HookRoute>>,
    /// Endpoints the presence engine wants watched, per instance.
    derived: Mutex<HashMap<String, BTreeSet<String>>>,
    /// Instances as the presence engine sees them, readable without the
    /// admin lock: plugin id, status, enabled.
    registry: RwLock<BTreeMap<String, RegistryEntry>>,
}

/// Identifiers used in URLs: 1-64 of a-z, 0-9, - and _.
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
            connectors: tokio::sync::Mutex::default(),
            hooks: RwLock::default(),
            derived: Mutex::default(),
            registry: RwLock::default(),
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
                tracing::warn!(dir = %self.plugins_dir.display(), error = %e, "no plugins directory; only uploaded plugins are available");
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
        let mut connectors = self.connectors.lock().await;
        for record in self.services.store.connectors()? {
            let c = self.spawn_connector(record);
            connectors.insert(c.record.id.clone(), c);
        }
        Ok(())
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
        tracing::info!(plugin = %p.manifest.id, version = %p.manifest.version, load_ms = p.load_ms, source = ?p.compile_source, "plugin loaded");
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

    /// The run specification of `record` on `plugin`.
    fn run_spec(plugin: &LoadedPlugin, record: &ConnectorRecord) -> Result<RunSpec, RuntimeError> {
        let (entries, addresses) = plugin
            .info
            .entries(&record.config, &record.secrets)
            .map_err(|e| invalid(&e.field, e.message))?;
        let mut grants = Grants::new(plugin.manifest.network_grants());
        for a in addresses {
            grants.widen(a);
        }
        let tls = crate::io::tls::client_config(record.tls_ca_pem.as_deref())
            .map_err(|e| invalid("tls_ca_pem", e.to_string()))?;
        Ok(RunSpec {
            entries,
            grants,
            tls,
        })
    }

    /// The watches an instance should have: the operator's and the users'.
    fn desired_watches(&self, record: &ConnectorRecord) -> BTreeSet<String> {
        let mut set: BTreeSet<String> = record.watches.iter().cloned().collect();
        if let Some(d) = self
            .derived
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&record.id)
        {
            set.extend(d.iter().cloned());
        }
        set
    }

    fn register_instance(&self, c: &Connector) {
        self.registry
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                c.record.id.clone(),
                (
                    c.record.plugin.clone(),
                    c.actor.as_ref().map(|a| a.status.clone()),
                    c.record.enabled,
                ),
            );
    }

    /// Tell the actor the difference between what it watches and what it
    /// should.
    async fn sync_watches(&self, c: &mut Connector) {
        let desired = self.desired_watches(&c.record);
        let Some(actor) = &c.actor else {
            c.applied = desired;
            return;
        };
        let add: Vec<String> = desired.difference(&c.applied).cloned().collect();
        let remove: Vec<String> = c.applied.difference(&desired).cloned().collect();
        if !add.is_empty() {
            let _ = actor.control.send(Control::Watch(add)).await;
        }
        if !remove.is_empty() {
            let _ = actor.control.send(Control::Unwatch(remove)).await;
        }
        c.applied = desired;
    }

    /// The presence engine's wish for an instance's watches.
    pub async fn set_derived_watches(&self, instance: &str, endpoints: BTreeSet<String>) {
        self.derived
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(instance.to_string(), endpoints);
        let mut connectors = self.connectors.lock().await;
        if let Some(c) = connectors.get_mut(instance) {
            self.sync_watches(c).await;
        }
    }

    /// Instances for the presence engine: id, plugin, running.
    /// The endpoint kinds an instance's plugin declares (none when the
    /// instance or its plugin is unknown).
    pub fn endpoint_kinds(&self, instance: &str) -> Vec<EndpointKindSpec> {
        let plugin = self
            .registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(instance)
            .map(|(plugin, _, _)| plugin.clone());
        plugin
            .and_then(|p| self.plugin_arc(&p))
            .map(|p| p.info.endpoint_kinds.clone())
            .unwrap_or_default()
    }

    pub fn instance_list(&self) -> Vec<(String, String, bool)> {
        self.registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, (plugin, status, enabled))| {
                let running = *enabled
                    && status.as_ref().is_some_and(|s| {
                        matches!(
                            s.get().run_state,
                            RunState::Running | RunState::Starting | RunState::Restarting
                        )
                    });
                (id.clone(), plugin.clone(), running)
            })
            .collect()
    }

    fn spawn_connector(&self, record: ConnectorRecord) -> Connector {
        let c = self.spawn_connector_inner(record);
        self.register_instance(&c);
        c
    }

    fn spawn_connector_inner(&self, record: ConnectorRecord) -> Connector {
        let applied = self.desired_watches(&record);
        let Some(plugin) = self.plugin_arc(&record.plugin) else {
            let problem = format!(
                "plugin {:?} is not loaded; upload it to start this connector",
                record.plugin
            );
            tracing::warn!(instance = %record.id, "{problem}");
            return Connector {
                record,
                actor: None,
                problem: Some(problem),
                applied,
            };
        };
        let spec = match Self::run_spec(&plugin, &record) {
            Ok(s) => s,
            Err(e) => {
                return Connector {
                    record,
                    actor: None,
                    problem: Some(format!("configuration does not fit the plugin: {e}")),
                    applied,
                };
            }
        };
        let actor = actor::spawn(ActorInit {
            instance: record.id.clone(),
            plugin: plugin.clone(),
            spec,
            watches: applied.clone(),
            enabled: record.enabled,
            wasm: self.wasm.clone(),
            services: self.services.clone(),
            policy: self.limits.clone(),
            hooks_base_url: self.hooks_base_url.clone(),
        });
        if plugin.manifest.grants.webhooks {
            self.hooks
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(
                    record.id.clone(),
                    HookRoute {
                        work: actor.work.clone(),
                        timeout: Duration::from_millis(
                            u64::from(plugin.limits.call_timeout_ms) + 5_000,
                        ),
                    },
                );
        }
        Connector {
            record,
            actor: Some(actor),
            problem: None,
            applied,
        }
    }

    // ---- plugins -------------------------------------------------------

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
        let connectors = self.connectors.lock().await;
        let plugins: Vec<_> = self
            .plugins
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let views = plugins
            .iter()
            .map(|p| self.plugin_view(p, users_of(&connectors, &p.manifest.id)))
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
        let connectors = self.connectors.lock().await;
        let p = self.plugin_arc(id).ok_or_else(|| RuntimeError::NotFound {
            kind: "plugin",
            id: id.into(),
        })?;
        Ok(self.plugin_view(&p, users_of(&connectors, id)))
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
        let mut connectors = self.connectors.lock().await;
        self.replace(&mut connectors, p, Some((manifest, component)))
            .await
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
        let mut connectors = self.connectors.lock().await;
        self.replace(&mut connectors, p, None).await
    }

    async fn replace(
        &self,
        connectors: &mut BTreeMap<String, Connector>,
        p: LoadedPlugin,
        persist: Option<(&str, &[u8])>,
    ) -> Result<PluginView, RuntimeError> {
        let id = p.manifest.id.clone();
        let users: Vec<String> = users_of(connectors, &id);
        let mut specs = Vec::new();
        for u in &users {
            let rec = &connectors[u].record;
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
            let c = connectors.get_mut(u).expect("listed above");
            match &c.actor {
                Some(a) => {
                    let (tx, rx) = oneshot::channel();
                    let _ = a.control.send(Control::Reload(p.clone(), spec, tx)).await;
                    let _ = rx.await;
                }
                None => {
                    let record = c.record.clone();
                    *c = self.spawn_connector(record);
                }
            }
        }
        // Instances stored before their plugin arrived start now.
        Ok(self.plugin_view(&p, users))
    }

    /// Remove a plugin that no instance uses.
    pub async fn delete_plugin(&self, id: &str) -> Result<(), RuntimeError> {
        let connectors = self.connectors.lock().await;
        let users = users_of(&connectors, id);
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
        Ok(())
    }

    // ---- connectors ----------------------------------------------------

    fn connector_view(c: &Connector) -> ConnectorView {
        let r = &c.record;
        ConnectorView {
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
            status: c.actor.as_ref().map(|a| a.status.get()),
        }
    }

    /// All connector instances.
    pub async fn connectors(&self) -> Vec<ConnectorView> {
        self.connectors
            .lock()
            .await
            .values()
            .map(Self::connector_view)
            .collect()
    }

    /// One connector instance.
    pub async fn connector(&self, id: &str) -> Result<ConnectorView, RuntimeError> {
        self.connectors
            .lock()
            .await
            .get(id)
            .map(Self::connector_view)
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
        let mut connectors = self.connectors.lock().await;
        if connectors.contains_key(&req.id) {
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
        let c = self.spawn_connector(record);
        let view = Self::connector_view(&c);
        connectors.insert(req.id, c);
        Ok(view)
    }

    /// Change a connector instance.
    pub async fn update_connector(
        &self,
        id: &str,
        patch: ConnectorPatch,
    ) -> Result<ConnectorView, RuntimeError> {
        let mut connectors = self.connectors.lock().await;
        let c = connectors.get_mut(id).ok_or_else(|| not_found(id))?;
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
        if let Some(config) = &patch.config {
            let plugin = plugin.as_ref().ok_or_else(|| {
                RuntimeError::Unavailable(format!("plugin {:?} is not loaded", record.plugin))
            })?;
            let (public, secrets) = plugin
                .info
                .validate(config, &record.secrets)
                .map_err(|e| invalid(&e.field, e.message))?;
            record.config = public;
            record.secrets = secrets;
        }
        let spec = match &plugin {
            Some(p) => Some(Self::run_spec(p, &record)?),
            None => None,
        };
        record.updated_at_ms = now_ms();
        self.services.store.put_connector(&record)?;
        let old = std::mem::replace(&mut c.record, record);
        if let Some(actor) = &c.actor {
            if patch.config.is_some() || patch.tls_ca_pem.is_some() {
                let (tx, rx) = oneshot::channel();
                let _ = actor
                    .control
                    .send(Control::Configure(spec.expect("plugin present"), tx))
                    .await;
                let _ = rx.await;
            }
            if patch.enabled.is_some() && old.enabled != c.record.enabled {
                let (tx, rx) = oneshot::channel();
                let _ = actor
                    .control
                    .send(Control::Enable(c.record.enabled, tx))
                    .await;
                let _ = rx.await;
            }
        }
        self.sync_watches(c).await;
        self.register_instance(c);
        Ok(Self::connector_view(c))
    }

    /// Enable (lifting a quarantine) or disable an instance.
    pub async fn set_enabled(
        &self,
        id: &str,
        enabled: bool,
    ) -> Result<ConnectorView, RuntimeError> {
        {
            let connectors = self.connectors.lock().await;
            let c = connectors.get(id).ok_or_else(|| not_found(id))?;
            // Enabling an enabled but quarantined instance lifts the quarantine.
            if c.record.enabled == enabled {
                if let Some(a) = &c.actor {
                    let (tx, rx) = oneshot::channel();
                    let _ = a.control.send(Control::Enable(enabled, tx)).await;
                    let _ = rx.await;
                }
                return Ok(Self::connector_view(c));
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
        let mut connectors = self.connectors.lock().await;
        let c = connectors.remove(id).ok_or_else(|| not_found(id))?;
        self.hooks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        if let Some(a) = c.actor {
            let (tx, rx) = oneshot::channel();
            let _ = a.control.send(Control::Stop(tx)).await;
            let _ = rx.await;
        }
        self.services.store.delete_connector(id)?;
        // Gone everywhere: the presence service stops listing it as a
        // source at its next look at the instances.
        self.registry
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        self.services.board.remove(id);
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
        let control = {
            let connectors = self.connectors.lock().await;
            let c = connectors.get(id).ok_or_else(|| not_found(id))?;
            c.actor
                .as_ref()
                .map(|a| a.control.clone())
                .ok_or_else(|| RuntimeError::Unavailable(c.problem.clone().unwrap_or_default()))?
        };
        let action = convert::write_action(write);
        let writes = &self.services.writes;
        let write_id = writes.open(id, endpoint, &action);
        let (tx, rx) = oneshot::channel();
        let request = wit::types::WriteRequest {
            id: write_id,
            endpoint: endpoint.to_owned(),
            action,
        };
        let sent = control.send(Control::Write { request, reply: tx }).await;
        let answer = match sent {
            Ok(()) => rx.await.ok(),
            Err(_) => None,
        };
        let settle = |state, detail: String| {
            let record = writes.settle(id, write_id, state, Some(detail), None);
            if let Some(r) = &record {
                self.services
                    .observer
                    .decision(id, Some(endpoint), "write", r.summary());
            }
            record
        };
        match answer {
            Some(Ok(WriteAccepted::OutcomeFollows)) => {}
            Some(Ok(WriteAccepted::NoOutcome)) => {
                settle(
                    WriteState::Accepted,
                    "accepted; the plugin is on contract 0.1.0, which reports no outcome".into(),
                );
            }
            Some(Err(e)) => {
                settle(WriteState::Refused, e.to_string());
                return Err(e.into());
            }
            None => {
                settle(WriteState::Refused, "the connector stopped".into());
                return Err(RuntimeError::Unavailable("connector stopped".into()));
            }
        }
        writes
            .get(write_id)
            .ok_or_else(|| RuntimeError::Unavailable("the write was forgotten".into()))
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
        let route = self
            .hooks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(instance)
            .cloned()
            .ok_or_else(|| RuntimeError::NotFound {
                kind: "webhook route for connector",
                id: instance.into(),
            })?;
        let (tx, rx) = oneshot::channel();
        route
            .work
            .try_send(Work::Webhook(WebhookCall { request, reply: tx }))
            .map_err(|_| {
                RuntimeError::Unavailable(format!(
                    "connector {instance} is busy (event queue full); retry later"
                ))
            })?;
        match tokio::time::timeout(route.timeout, rx).await {
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
            .connectors
            .lock()
            .await
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
        self.connectors
            .lock()
            .await
            .values()
            .filter_map(|c| c.problem.as_ref().map(|p| format!("{}: {p}", c.record.id)))
            .collect()
    }
}

fn not_found(id: &str) -> RuntimeError {
    RuntimeError::NotFound {
        kind: "connector",
        id: id.into(),
    }
}

fn users_of(connectors: &BTreeMap<String, Connector>, plugin: &str) -> Vec<String> {
    connectors
        .values()
        .filter(|c| c.record.plugin == plugin)
        .map(|c| c.record.id.clone())
        .collect()
}
