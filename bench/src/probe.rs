//! One plugin instance driven directly, without a supervisor, for the
//! benchmarks that time a single call through the host/plugin boundary
//! (`overhead`) and the steps of an instance start (`lifecycle`).
//!
//! It is built from the hub's public pieces for embedding one instance
//! (`presence_hub::runtime`: [`WasmHost`], [`load_plugin`],
//! [`Runtime::run_spec`], [`WasmHost::new_store`], [`to_wit`]), so the
//! instance is set up as an actor sets up a run (same engine settings,
//! linker, host imports, grants widened by the configured addresses, memory
//! cap, CPU deadline), but the caller decides when each event is delivered,
//! and errors come back instead of a restart.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use presence_hub::config::Limits;
use presence_hub::io::{EventSink, IoEvent, IoMsg};
use presence_hub::runtime::wit::{self, guest, types};
use presence_hub::runtime::{
    Identity, InstanceStore, LoadedPlugin, PluginOrigin, Runtime, Services, StatusCell, WasmHost,
    load_plugin, to_wit,
};
use presence_hub::store::ConnectorRecord;
use presence_hub::telemetry::ConnectorLabels;
use tokio::sync::mpsc;

/// How long each step of [`Probe::start`] took.
#[derive(Debug, Clone, Copy)]
pub struct StartTimings {
    /// A new store and instance of the loaded component.
    pub instantiate: Duration,
    /// The plugin's `configure` call (it may open sockets and set timers).
    pub configure: Duration,
}

/// What [`Probe::pump`] delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pumped {
    /// A datagram arrived on the plugin's socket with this handle.
    Datagram { socket: u32 },
    /// Another event (timer, stream, HTTP, WebSocket).
    Other,
}

/// A plugin instance and the queue its host I/O reports into.
pub struct Probe {
    /// The engine (its epoch ticker runs while this lives).
    _wasm: WasmHost,
    store: InstanceStore,
    bindings: wit::Guest,
    events: mpsc::Receiver<IoMsg>,
    timeout_ms: u32,
}

impl Probe {
    /// Load `component` (through the compiled-component cache in
    /// `cache_dir`), instantiate it with `services` as the host's, and
    /// configure it with `config` (field values as the API takes them).
    pub async fn start(
        manifest: &str,
        component: &[u8],
        config: serde_json::Map<String, serde_json::Value>,
        services: Services,
        cache_dir: PathBuf,
    ) -> anyhow::Result<(Self, StartTimings)> {
        let wasm = WasmHost::new(cache_dir).map_err(|e| anyhow!("{e:#}"))?;
        let limits = Limits::default();
        let p: LoadedPlugin = load_plugin(
            &wasm,
            &services,
            &limits,
            manifest,
            component,
            PluginOrigin::Uploaded,
            false,
        )
        .await?;
        let (public, secrets) = p
            .info
            .validate(&config, &BTreeMap::new())
            .map_err(|e| anyhow!("{}: {}", e.field, e.message))?;
        let record = ConnectorRecord {
            id: "probe".into(),
            plugin: p.manifest.id.clone(),
            config: public,
            secrets,
            enabled: true,
            tls_ca_pem: None,
            watches: vec![],
            created_at_ms: 0,
            updated_at_ms: 0,
        };
        let spec = Runtime::run_spec(&p, &record).map_err(|e| anyhow!("{e}"))?;
        let t = Instant::now();
        let (tx, events) = mpsc::channel(p.limits.queue.max(1));
        let labels = ConnectorLabels {
            instance: record.id.clone(),
            plugin: p.manifest.id.clone(),
        };
        let id = Identity {
            instance: record.id.as_str().into(),
            labels,
            grants: spec.grants.clone(),
            kv_enabled: p.manifest.grants.kv,
            kv_max_bytes: p.limits.kv_max_bytes,
            webhook_base_url: None,
        };
        let mut store = wasm
            .new_store(
                id,
                EventSink::new(tx, 1, Arc::default()),
                spec.tls.clone(),
                services,
                Arc::new(StatusCell::new(&p.manifest.version)),
                &p.limits,
            )
            .map_err(|e| anyhow!("{e}"))?;
        let bindings = p
            .pre
            .instantiate(&mut store)
            .await
            .map_err(|e| anyhow!("instantiate: {e:#}"))?;
        let instantiate = t.elapsed();
        let mut probe = Probe {
            _wasm: wasm,
            store,
            bindings,
            events,
            timeout_ms: p.limits.call_timeout_ms,
        };
        let t = Instant::now();
        probe.deadline();
        let r = probe
            .bindings
            .configure(&mut probe.store, &spec.entries)
            .await?;
        r.map_err(|e| anyhow!("configure: {e:?}"))?;
        let configure = t.elapsed();
        Ok((
            probe,
            StartTimings {
                instantiate,
                configure,
            },
        ))
    }

    fn deadline(&mut self) {
        WasmHost::arm_deadline(&mut self.store, self.timeout_ms);
    }

    /// Call `watch` with `endpoints`.
    pub async fn watch(&mut self, endpoints: &[String]) -> anyhow::Result<()> {
        self.deadline();
        self.bindings
            .watch(&mut self.store, endpoints, true)
            .await?
            .map_err(|e| anyhow!("watch: {e:?}"))
    }

    /// Deliver the next event the instance's sockets and timers produced,
    /// as its actor would; `None` when nothing came within `wait`.
    pub async fn pump(&mut self, wait: Duration) -> anyhow::Result<Option<Pumped>> {
        let Ok(Some(msg)) = tokio::time::timeout(wait, self.events.recv()).await else {
            return Ok(None);
        };
        let pumped = match &msg.event {
            IoEvent::Datagram { socket, .. } => Pumped::Datagram { socket: *socket },
            _ => Pumped::Other,
        };
        let event = to_wit(msg.event, &mut self.store.data_mut().io);
        self.call(&event).await?;
        Ok(Some(pumped))
    }

    /// Deliver a datagram as if it had arrived on `socket` from `from`.
    pub async fn datagram(
        &mut self,
        socket: u32,
        from: SocketAddr,
        data: Vec<u8>,
    ) -> anyhow::Result<()> {
        let event = guest::Event::Datagram(guest::Datagram {
            socket,
            from: types::SocketAddress {
                host: from.ip().to_string(),
                port: from.port(),
            },
            data,
        });
        self.call(&event).await
    }

    /// The cheapest call: a timer event for a handle the plugin never set,
    /// which a plugin ignores.
    pub async fn empty_call(&mut self) -> anyhow::Result<()> {
        self.call(&guest::Event::Timer(u32::MAX)).await
    }

    async fn call(&mut self, event: &guest::Event) -> anyhow::Result<()> {
        self.deadline();
        self.bindings
            .handle_events(&mut self.store, std::slice::from_ref(event))
            .await?
            .map_err(|e| anyhow!("handle-events: {e:?}"))
    }
}
