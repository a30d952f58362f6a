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
}

impl Drop for WasmHost {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// Where a compiled component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
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

    fn cache_path(&self, sha256: &str) -> PathBuf {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        self.cache_dir
            .join(format!("{sha256}-{:016x}.cwasm", h.finish()))
    }

    /// Compile `bytes` (whose hash is `sha256`), or load the cached result.
    pub fn compile(
        &self,
        bytes: &[u8],
        sha256: &str,
    ) -> wasmtime::Result<(Component, CompileSource)> {
        let path = self.cache_path(sha256);
        if path.exists() {
            // SAFETY: the cache holds only what `serialize` below wrote, keyed
            // by the source's hash and this engine's compatibility hash;
            // wasmtime still checks the header and refuses a mismatch.
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(c) => return Ok((c, CompileSource::Cache)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring unusable compiled-component cache entry")
                }
            }
        }
        let component = Component::new(&self.engine, bytes)?;
        match component.serialize() {
            Ok(compiled) => {
                let tmp = path.with_extension("tmp");
                if let Err(e) =
                    std::fs::write(&tmp, compiled).and_then(|_| std::fs::rename(&tmp, &path))
                {
                    tracing::warn!(error = %e, "cannot write compiled-component cache");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot serialise compiled component"),
        }
        Ok((component, CompileSource::Compiled))
    }
}
