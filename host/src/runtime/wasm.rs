//! The wasmtime engine: configuration, the epoch ticker behind CPU deadlines,
//! the linker, compilation with an on-disk cache of compiled components, and
//! the one way a run's store is set up.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, Store};

use super::host::{Identity, InstanceState, Services};
use super::manifest::EffectiveLimits;
use super::status::StatusCell;
use crate::io::{EventSink, IoContext, IoError};

use crate::timing::EPOCH_TICK;

/// The engine, its linker and the compiled-component cache.
pub struct WasmHost {
    pub engine: Engine,
    pub linker: Linker<InstanceState>,
    cache_dir: PathBuf,
    ticker_stop: Arc<AtomicBool>,
    /// Compiles in progress: each takes a core for seconds (and memory in
    /// proportion to the component), so they wait their turn.
    compiles: Arc<tokio::sync::Semaphore>,
}

/// How many components are compiled at once. Cranelift keeps one core busy
/// per compile; the API and the plugins need the others.
pub const MAX_CONCURRENT_COMPILES: usize = 1;

impl Drop for WasmHost {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// Where a compiled component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CompileSource {
    Compiled,
    Cache,
}

impl WasmHost {
    /// Build the engine; compiled components are cached in `cache_dir`.
    pub fn new(cache_dir: PathBuf) -> wasmtime::Result<Self> {
        let mut cfg = Config::new();
        cfg.wasm_component_model(true);
        cfg.epoch_interruption(true);
        // Profiling aid: name plugin functions for `perf` in
        // /tmp/perf-<pid>.map (see bench/README.md).
        if std::env::var_os("HUB_WASM_PERFMAP").is_some() {
            cfg.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&cfg)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        super::wit::add_to_linker(&mut linker)?;
        std::fs::create_dir_all(&cache_dir)?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (e, stop) = (engine.clone(), ticker_stop.clone());
        std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    e.increment_epoch();
                }
            })?;
        Ok(Self {
            engine,
            linker,
            cache_dir,
            ticker_stop,
            compiles: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_COMPILES)),
        })
    }

    /// Arm the CPU deadline of the next call: `ms` of the calling thread's
    /// CPU time (see [`super::call_clock`]).
    pub fn arm_deadline(store: &mut Store<InstanceState>, ms: u32) {
        let ticks = store.data_mut().call.start(ms);
        store.set_epoch_deadline(ticks);
    }

    /// The store of one run of `id`: an I/O context whose events go to
    /// `events` (TLS trusting `tls`), the sandboxed instance state, linear
    /// memory capped at `limits.memory_bytes` and a CPU deadline of
    /// `limits.call_timeout_ms` armed for the first call.
    ///
    /// Errors: the I/O context cannot be set up (its HTTP client).
    pub fn new_store(
        &self,
        id: Identity,
        events: EventSink,
        tls: Arc<rustls::ClientConfig>,
        services: Services,
        status: Arc<StatusCell>,
        limits: &EffectiveLimits,
    ) -> Result<Store<InstanceState>, IoError> {
        let io = IoContext::new(events, tls)?;
        let state = InstanceState::new(id, io, services, status, limits.memory_bytes);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.memory);
        store.epoch_deadline_callback(|mut ctx| Ok(ctx.data_mut().call.at_deadline()));
        Self::arm_deadline(&mut store, limits.call_timeout_ms);
        Ok(store)
    }

    /// The compatibility suffix of this engine's cache entries.
    fn engine_tag(&self) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        format!("{:016x}", h.finish())
    }

    fn cache_path(&self, sha256: &str) -> PathBuf {
        self.cache_dir
            .join(format!("{sha256}-{}.cwasm", self.engine_tag()))
    }

    /// Compile `bytes` (whose hash is `sha256`), or load the cached result,
    /// on a blocking thread and one compile at a time: never on the async
    /// workers, which serve the API meanwhile.
    pub async fn compile(
        &self,
        bytes: &[u8],
        sha256: &str,
    ) -> wasmtime::Result<(Component, CompileSource)> {
        let _turn = self
            .compiles
            .acquire()
            .await
            .map_err(|_| wasmtime::Error::msg("the hub is shutting down"))?;
        let engine = self.engine.clone();
        let path = self.cache_path(sha256);
        let bytes = bytes.to_vec();
        tokio::task::spawn_blocking(move || compile_blocking(&engine, &path, &bytes))
            .await
            .map_err(|e| wasmtime::Error::msg(format!("compile task failed: {e}")))?
    }

    /// Forget the compiled form of `sha256` (a component that was refused
    /// after compiling).
    pub fn forget(&self, sha256: &str) {
        let _ = std::fs::remove_file(self.cache_path(sha256));
    }

    /// Remove from the cache every compiled component that is not one of
    /// `keep` (by source hash), was compiled by another engine, or is a
    /// write that never finished: refused, replaced and deleted plugins
    /// leave nothing behind.
    pub fn prune_cache(&self, keep: &std::collections::HashSet<String>) {
        let tag = format!("-{}.cwasm", self.engine_tag());
        let Ok(rd) = std::fs::read_dir(&self.cache_dir) else {
            return;
        };
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let kept = name
                .strip_suffix(&tag)
                .is_some_and(|sha| keep.contains(sha));
            if !kept {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => tracing::debug!(file = %name, "pruned compiled-component cache"),
                    Err(e) => {
                        tracing::warn!(file = %name, error = %e, "cannot prune compiled-component cache")
                    }
                }
            }
        }
    }
}

/// Compile, or load the cached result at `path`.
fn compile_blocking(
    engine: &Engine,
    path: &std::path::Path,
    bytes: &[u8],
) -> wasmtime::Result<(Component, CompileSource)> {
    if path.exists() {
        // SAFETY: the cache holds only what `serialize` below wrote, keyed
        // by the source's hash and this engine's compatibility hash;
        // wasmtime still checks the header and refuses a mismatch.
        match unsafe { Component::deserialize_file(engine, path) } {
            Ok(c) => return Ok((c, CompileSource::Cache)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unusable compiled-component cache entry")
            }
        }
    }
    let component = Component::new(engine, bytes)?;
    match component.serialize() {
        Ok(compiled) => {
            let tmp = path.with_extension("tmp");
            if let Err(e) = std::fs::write(&tmp, compiled).and_then(|_| std::fs::rename(&tmp, path))
            {
                tracing::warn!(error = %e, "cannot write compiled-component cache");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot serialise compiled component"),
    }
    Ok((component, CompileSource::Compiled))
}
