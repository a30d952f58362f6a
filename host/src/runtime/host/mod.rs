//! The host side of the WIT contract: the state each connector instance's
//! wasmtime store carries. Each host interface's imports live in their own
//! file beside this one.

mod http;
mod instance;
mod kv;
mod kv_cache;
mod log;
mod net;
mod report;
mod timers;
mod websocket;

pub use kv_cache::kv_writes_lost;

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::call_clock::CallClock;
use super::grants::{Grants, Scheme, UrlCheckError};
use super::status::StatusCell;
use super::wit::types::{self, HostError};
use super::writes::WriteRegistry;
use crate::io::{IoContext, IoError};
use crate::presence::Inbox;
use crate::store::{Store, StoreError};
use crate::telemetry::{ConnectorLabels, Metrics};
use kv_cache::KvCache;
use prometheus_client::metrics::gauge::Gauge;

/// How much of a guest's stderr is kept (panic messages end up there).
const STDERR_CAPTURE: usize = 16 * 1024;

/// Hub services an instance reports into.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    /// Where presence, endpoint states, directories and decisions go (the
    /// presence service's inbox).
    pub presence: Inbox,
    /// Write-backs and their outcomes.
    pub writes: Arc<WriteRegistry>,
}

impl Services {
    /// A write was settled: into the event log beside its endpoint's user,
    /// and to the sync that may have made it.
    pub fn write_settled(&self, record: &super::writes::WriteRecord) {
        self.presence.decision(
            &Arc::from(record.instance.as_str()),
            Some(record.endpoint.clone()),
            "write",
            record.summary(),
        );
        if let Some(result) = record.result() {
            self.presence.write_settled(record.id, result);
        }
    }
}

/// Who the guest is and what it may do.
pub struct Identity {
    pub instance: Arc<str>,
    pub labels: ConnectorLabels,
    pub grants: Grants,
    pub kv_enabled: bool,
    pub kv_max_bytes: u64,
    /// `https://hub.example.com/hooks/{instance}`, where the hub knows its
    /// public address.
    pub webhook_base_url: Option<String>,
}

/// Caps linear memory; remembers a refusal so a crash can be explained, and
/// keeps the run's total in `presence_hub_connector_memory_bytes`.
pub struct MemoryCap {
    pub max_bytes: usize,
    pub refused: bool,
    /// Linear memory of this run, all memories together.
    pub total: usize,
    gauge: Option<Gauge>,
}

impl Drop for MemoryCap {
    fn drop(&mut self) {
        // The run's memories go with its store.
        if let Some(g) = &self.gauge {
            g.dec_by(self.total as i64);
        }
    }
}

/// What one table element is counted as against the memory cap: a
/// table's elements live in host memory too (a function reference is a
/// pointer and its type, 16 bytes on 64-bit hosts).
pub const TABLE_ELEMENT_BYTES: usize = 16;

impl MemoryCap {
    /// Count `grown` more bytes of the run against the cap: the cap holds
    /// for all of an instance's memories and tables together, not for each
    /// (20 memories of 15 MiB are 300 MiB, not 15).
    fn grow(&mut self, grown: usize) -> bool {
        let total = self.total.saturating_add(grown);
        if total > self.max_bytes {
            self.refused = true;
            return false;
        }
        self.total = total;
        if let Some(g) = &self.gauge {
            g.inc_by(grown as i64);
        }
        true
    }
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.grow(desired.saturating_sub(current)))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let grown = desired.saturating_sub(current);
        Ok(desired <= 100_000 && self.grow(grown.saturating_mul(TABLE_ELEMENT_BYTES)))
    }
}

/// The data of one instance run's wasmtime store.
pub struct InstanceState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub memory: MemoryCap,
    pub stderr: MemoryOutputPipe,
    pub id: Identity,
    pub io: IoContext,
    pub services: Services,
    pub status: Arc<StatusCell>,
    /// Whether the last directory page was the last one (the next page then
    /// starts a new directory).
    directory_complete: bool,
    /// The instance's key-value data, loaded at the run's start; `None`
    /// without the kv grant.
    kv: Option<Result<KvCache, StoreError>>,
    /// The current call's CPU deadline.
    pub call: CallClock,
    /// This instance's series of `connector_reports_out` (none for a
    /// description probe, which has no instance).
    reports_out: Option<prometheus_client::metrics::counter::Counter>,
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl InstanceState {
    /// A sandbox with no filesystem, no environment, no sockets of WASI's
    /// own: everything goes through the contract's imports.
    pub fn new(
        id: Identity,
        io: IoContext,
        services: Services,
        status: Arc<StatusCell>,
        memory_bytes: usize,
    ) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE);
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        // Probes that only describe a plugin have no instance to account to.
        let gauge = (!id.labels.instance.is_empty())
            .then(|| services.metrics.memory.get_or_create(&id.labels).clone());
        // Loaded here, before any guest call, so the guest's kv calls touch
        // memory only.
        let kv = id.kv_enabled.then(|| {
            KvCache::load(&services.store, &id.instance, id.kv_max_bytes).inspect_err(
                |e| tracing::error!(error = %e, "cannot load the connector's key-value data"),
            )
        });
        let reports_out = (!id.labels.instance.is_empty()).then(|| {
            services
                .metrics
                .reports_out
                .get_or_create(&id.labels)
                .clone()
        });
        Self {
            reports_out,
            call: CallClock::new(0),
            wasi,
            table: ResourceTable::new(),
            memory: MemoryCap {
                max_bytes: memory_bytes,
                refused: false,
                total: 0,
                gauge,
            },
            stderr,
            id,
            io,
            services,
            status,
            directory_complete: true,
            kv,
        }
    }

    fn denied(&self, missing: String) -> HostError {
        self.services
            .metrics
            .denied
            .get_or_create(&self.id.labels)
            .inc();
        tracing::warn!(grant = %missing, "plugin reach refused: not granted");
        HostError::NotGranted(missing)
    }

    fn check(&self, scheme: Scheme, host: &str, port: u16) -> Result<(), HostError> {
        self.id
            .grants
            .check(scheme, host, port)
            .map_err(|d| self.denied(d.missing))
    }

    fn check_url(&self, url: &str) -> Result<(), HostError> {
        match self.id.grants.check_url(url) {
            Ok(_) => Ok(()),
            Err(UrlCheckError::Denied(d)) => Err(self.denied(d.missing)),
            Err(e @ UrlCheckError::Invalid(_)) => Err(HostError::InvalidArgument(e.to_string())),
        }
    }

    fn reported(&self) {
        if let Some(c) = &self.reports_out {
            c.inc();
        }
    }
}

fn io_err(e: IoError) -> HostError {
    match e {
        IoError::UnknownHandle(h) => HostError::UnknownHandle(h),
        IoError::Limit(m) => HostError::LimitExceeded(m),
        IoError::Invalid(m) => HostError::InvalidArgument(m),
        IoError::Io(m) => HostError::Io(m),
    }
}

fn store_err(e: StoreError) -> HostError {
    match e {
        StoreError::LimitExceeded(m) => HostError::LimitExceeded(m),
        other => HostError::Other(other.to_string()),
    }
}

fn sockaddr(a: std::net::SocketAddr) -> types::SocketAddress {
    types::SocketAddress {
        host: a.ip().to_string(),
        port: a.port(),
    }
}

impl types::Host for InstanceState {}

#[cfg(test)]
mod tests {
    use wasmtime::ResourceLimiter;

    use super::*;

    #[test]
    fn the_memory_cap_holds_for_all_memories_and_tables_together() {
        const MIB: usize = 1 << 20;
        let mut cap = MemoryCap {
            max_bytes: 16 * MIB,
            refused: false,
            total: 0,
            gauge: None,
        };
        // One memory of 15 MiB fits; a second of 15 MiB does not, although
        // each alone is under the cap.
        assert!(cap.memory_growing(0, 15 * MIB, None).unwrap());
        assert!(!cap.memory_growing(0, 15 * MIB, None).unwrap());
        assert!(cap.refused);
        // Tables count too.
        assert!(cap.table_growing(0, 1000, None).unwrap());
        assert_eq!(cap.total, 15 * MIB + 1000 * TABLE_ELEMENT_BYTES);
        assert!(!cap.table_growing(1000, 100_000, None).unwrap());
        // Growing the first memory within what is left still works.
        assert!(
            cap.memory_growing(15 * MIB, 15 * MIB + 64 * 1024, None)
                .unwrap()
        );
    }
}
