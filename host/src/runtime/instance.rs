//! The host side of the WIT contract: the state each connector instance's
//! wasmtime store carries, and the imports the guest calls.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::convert;
use super::grants::{Grants, Scheme, UrlCheckError};
use super::status::StatusCell;
use super::wit::since_v0_2_0::presence::connector::{
    http, instance, kv, log, net, report, timers, websocket,
};
use super::wit::types::{self, HostError};
use super::writes::{WriteRegistry, WriteState};
use crate::engine::Board;
use crate::io::{HandleKind, HttpRequest, IoContext, IoError, WsOptions, WsOutgoing};
use crate::presence::ReportObserver;
use crate::store::{Store, StoreError, now_ms};
use crate::telemetry::{ConnectorLabels, Metrics};
use prometheus_client::metrics::gauge::Gauge;

/// Largest key and value a plugin may store.
const MAX_KV_KEY: usize = 512;
const MAX_KV_VALUE: usize = 256 * 1024;
/// How much of a guest's stderr is kept (panic messages end up there).
const STDERR_CAPTURE: usize = 16 * 1024;

/// Hub services an instance reports into.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn Store>,
    pub board: Arc<Board>,
    pub metrics: Arc<Metrics>,
    /// Told of every presence and endpoint report (the presence engine).
    pub observer: Arc<dyn ReportObserver>,
    /// Write-backs and their outcomes.
    pub writes: Arc<WriteRegistry>,
}

/// An observer that ignores everything (plugin description probes).
pub struct NoObserver;

impl ReportObserver for NoObserver {
    fn observed(&self, _: &str, _: &str, _: String) {}
    fn decision(&self, _: &str, _: Option<&str>, _: &str, _: String) {}
}

/// Who the guest is and what it may do.
pub struct Identity {
    pub instance: String,
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

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.refused = true;
            return Ok(false);
        }
        let grown = desired.saturating_sub(current);
        self.total += grown;
        if let Some(g) = &self.gauge {
            g.inc_by(grown as i64);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
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
        Self {
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
        self.services
            .metrics
            .reports_out
            .get_or_create(&self.id.labels)
            .inc();
    }

    fn kv_allowed(&self) -> Result<(), HostError> {
        if self.id.kv_enabled {
            Ok(())
        } else {
            Err(self.denied("kv (set grants.kv = true in the plugin manifest)".into()))
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

impl log::Host for InstanceState {
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let message: String = message.chars().take(4096).collect();
        match level {
            log::Level::Trace => tracing::trace!(target: "plugin", "{message}"),
            log::Level::Debug => tracing::debug!(target: "plugin", "{message}"),
            log::Level::Info => tracing::info!(target: "plugin", "{message}"),
            log::Level::Warn => tracing::warn!(target: "plugin", "{message}"),
            log::Level::Error => tracing::error!(target: "plugin", "{message}"),
        }
        Ok(())
    }
}

impl net::Host for InstanceState {
    fn udp_bind(
        &mut self,
        toward: types::SocketAddress,
    ) -> wasmtime::Result<Result<net::UdpSocket, HostError>> {
        if let Err(e) = self.check(Scheme::Udp, &toward.host, toward.port) {
            return Ok(Err(e));
        }
        Ok(self
            .io
            .udp_bind(&toward.host, toward.port)
            .map(|(socket, local)| net::UdpSocket {
                socket,
                local: sockaddr(local),
            })
            .map_err(io_err))
    }

    fn udp_send(
        &mut self,
        socket: u32,
        to: types::SocketAddress,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), HostError>> {
        if let Err(e) = self.check(Scheme::Udp, &to.host, to.port) {
            return Ok(Err(e));
        }
        Ok(self
            .io
            .udp_send(socket, &to.host, to.port, &data)
            .map_err(io_err))
    }

    fn stream_connect(
        &mut self,
        to: types::SocketAddress,
        options: net::StreamOptions,
    ) -> wasmtime::Result<Result<u32, HostError>> {
        let tls = matches!(options.security, net::StreamSecurity::Tls);
        let scheme = if tls { Scheme::Tls } else { Scheme::Tcp };
        if let Err(e) = self.check(scheme, &to.host, to.port) {
            return Ok(Err(e));
        }
        let timeout = options
            .connect_timeout_ms
            .map(|ms| Duration::from_millis(ms.into()));
        Ok(self
            .io
            .stream_connect(&to.host, to.port, tls, timeout)
            .map_err(io_err))
    }

    fn stream_send(
        &mut self,
        stream: u32,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), HostError>> {
        Ok(self.io.stream_send(stream, data).map_err(io_err))
    }

    fn close(&mut self, socket: u32) -> wasmtime::Result<()> {
        self.io.close(HandleKind::Socket, socket);
        Ok(())
    }
}

impl http::Host for InstanceState {
    fn send(&mut self, request: http::Request) -> wasmtime::Result<Result<u32, HostError>> {
        if let Err(e) = self.check_url(&request.url) {
            return Ok(Err(e));
        }
        let req = HttpRequest {
            method: request.method,
            url: request.url,
            headers: request
                .headers
                .into_iter()
                .map(|h| (h.name, h.value))
                .collect(),
            body: request.body,
            timeout: request
                .timeout_ms
                .map(|ms| Duration::from_millis(ms.into())),
        };
        Ok(self.io.http_send(req).map_err(io_err))
    }

    fn cancel(&mut self, request: u32) -> wasmtime::Result<()> {
        self.io.close(HandleKind::Request, request);
        Ok(())
    }
}

impl websocket::Host for InstanceState {
    fn connect(
        &mut self,
        url: String,
        options: websocket::ConnectOptions,
    ) -> wasmtime::Result<Result<u32, HostError>> {
        if !url.starts_with("ws://") && !url.starts_with("wss://") {
            return Ok(Err(HostError::InvalidArgument(format!(
                "websocket URL must start with ws:// or wss://, got {url:?}"
            ))));
        }
        if let Err(e) = self.check_url(&url) {
            return Ok(Err(e));
        }
        let ms = |v: Option<u32>| v.map(|ms| Duration::from_millis(ms.into()));
        let options = WsOptions {
            headers: options
                .headers
                .into_iter()
                .map(|h| (h.name, h.value))
                .collect(),
            subprotocols: options.subprotocols,
            connect_timeout: ms(options.connect_timeout_ms),
            ping_interval: ms(options.ping_interval_ms).filter(|d| !d.is_zero()),
            pong_timeout: ms(options.pong_timeout_ms),
        };
        Ok(self.io.ws_connect(&url, options).map_err(io_err))
    }

    fn send_text(&mut self, socket: u32, text: String) -> wasmtime::Result<Result<(), HostError>> {
        Ok(self
            .io
            .ws_send(socket, WsOutgoing::Text(text))
            .map_err(io_err))
    }

    fn send_binary(
        &mut self,
        socket: u32,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), HostError>> {
        Ok(self
            .io
            .ws_send(socket, WsOutgoing::Binary(data))
            .map_err(io_err))
    }

    fn close(&mut self, socket: u32, code: u16, reason: String) -> wasmtime::Result<()> {
        let _ = self.io.ws_send(socket, WsOutgoing::Close(code, reason));
        Ok(())
    }
}

impl timers::Host for InstanceState {
    fn set_timer(&mut self, after_ms: u64) -> wasmtime::Result<u32> {
        // Running out of timer handles is a guest leak; end the run rather
        // than hand out a handle that never fires.
        self.io
            .set_timer(Duration::from_millis(after_ms.min(30 * 24 * 3600 * 1000)))
            .map_err(|e| wasmtime::format_err!("set-timer: {e}"))
    }

    fn cancel(&mut self, timer: u32) -> wasmtime::Result<()> {
        self.io.close(HandleKind::Timer, timer);
        Ok(())
    }

    fn now(&mut self) -> wasmtime::Result<u64> {
        Ok(now_ms())
    }
}

/// Most random bytes one call hands out.
const MAX_RANDOM: u32 = 4096;

impl instance::Host for InstanceState {
    fn info(&mut self) -> wasmtime::Result<instance::InstanceInfo> {
        Ok(instance::InstanceInfo {
            id: self.id.instance.clone(),
            webhook_base_url: self.id.webhook_base_url.clone(),
            hub_version: env!("CARGO_PKG_VERSION").into(),
        })
    }

    fn random_bytes(&mut self, len: u32) -> wasmtime::Result<Vec<u8>> {
        use rand::RngCore;
        let mut buf = vec![0u8; len.min(MAX_RANDOM) as usize];
        rand::rng().fill_bytes(&mut buf);
        Ok(buf)
    }
}

impl kv::Host for InstanceState {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, HostError>> {
        if let Err(e) = self.kv_allowed() {
            return Ok(Err(e));
        }
        Ok(self
            .services
            .store
            .kv_get(&self.id.instance, &key)
            .map_err(store_err))
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), HostError>> {
        if let Err(e) = self.kv_allowed() {
            return Ok(Err(e));
        }
        if key.is_empty() || key.len() > MAX_KV_KEY {
            return Ok(Err(HostError::InvalidArgument(format!(
                "key must be 1-{MAX_KV_KEY} bytes"
            ))));
        }
        if value.len() > MAX_KV_VALUE {
            return Ok(Err(HostError::LimitExceeded(format!(
                "value of {} bytes exceeds {MAX_KV_VALUE}",
                value.len()
            ))));
        }
        Ok(self
            .services
            .store
            .kv_set(&self.id.instance, &key, &value, self.id.kv_max_bytes)
            .map_err(store_err))
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), HostError>> {
        if let Err(e) = self.kv_allowed() {
            return Ok(Err(e));
        }
        Ok(self
            .services
            .store
            .kv_delete(&self.id.instance, &key)
            .map_err(store_err))
    }

    fn list_keys(&mut self, prefix: String) -> wasmtime::Result<Result<Vec<String>, HostError>> {
        if let Err(e) = self.kv_allowed() {
            return Ok(Err(e));
        }
        Ok(self
            .services
            .store
            .kv_keys(&self.id.instance, &prefix)
            .map_err(store_err))
    }
}

impl report::Host for InstanceState {
    fn presence(&mut self, update: types::PresenceUpdate) -> wasmtime::Result<()> {
        self.reported();
        let report = convert::presence(update);
        // An echo must name a write of this instance; anything else is the
        // plugin's mistake, taken as the platform's own change.
        let report = match report.origin {
            crate::engine::UpdateOrigin::HubWrite { write_id }
                if self
                    .services
                    .writes
                    .get(write_id)
                    .is_none_or(|w| w.instance != self.id.instance) =>
            {
                tracing::warn!(
                    write_id,
                    "presence update names a write this instance never had; taken as the platform's"
                );
                crate::engine::PresenceReport {
                    origin: crate::engine::UpdateOrigin::Platform,
                    ..report
                }
            }
            _ => report,
        };
        let endpoint = report.endpoint.clone();
        let detail = describe_report(&report);
        // Reports older than the last one (by source sequence) change nothing.
        if self
            .services
            .board
            .presence(&self.id.instance, report, now_ms())
        {
            self.services
                .observer
                .observed(&self.id.instance, &endpoint, detail);
        }
        Ok(())
    }

    fn endpoint_state(
        &mut self,
        endpoint: String,
        state: types::EndpointState,
        detail: Option<String>,
    ) -> wasmtime::Result<()> {
        self.reported();
        let state = convert::endpoint_state(state);
        let text = format!(
            "endpoint {:?}{}",
            state,
            detail
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        );
        // A repeated state (a plugin may confirm it with every update)
        // changes nothing: no log entry, no recomputation.
        if self
            .services
            .board
            .endpoint_state(&self.id.instance, &endpoint, state, detail, now_ms())
        {
            self.services
                .observer
                .observed(&self.id.instance, &endpoint, text);
        }
        Ok(())
    }

    fn status(
        &mut self,
        status: types::ConnectorStatus,
        detail: Option<String>,
    ) -> wasmtime::Result<()> {
        self.reported();
        let status = convert::status(status);
        tracing::info!(
            ?status,
            detail = detail.as_deref().unwrap_or(""),
            "connector status"
        );
        self.status.update(|s| {
            s.status = status;
            s.status_detail = detail;
        });
        Ok(())
    }

    fn login_step(&mut self, step: Option<types::LoginStep>) -> wasmtime::Result<()> {
        self.reported();
        self.status
            .update(|s| s.login_step = step.map(convert::login_step));
        Ok(())
    }

    fn directory(
        &mut self,
        entries: Vec<types::DirectoryEntry>,
        complete: bool,
    ) -> wasmtime::Result<()> {
        self.reported();
        let first_page = std::mem::replace(&mut self.directory_complete, complete);
        self.services.board.directory(
            &self.id.instance,
            entries.into_iter().map(convert::directory_entry).collect(),
            first_page,
        );
        Ok(())
    }

    fn write_outcome(&mut self, write: u64, outcome: types::WriteOutcome) -> wasmtime::Result<()> {
        self.reported();
        let Some(record) = self
            .services
            .writes
            .outcome(&self.id.instance, write, outcome)
        else {
            tracing::warn!(
                write,
                "outcome for an unknown or already settled write ignored"
            );
            return Ok(());
        };
        if record.state.is_failure() {
            tracing::warn!(write, "{}", record.summary());
        } else {
            tracing::info!(write, "{}", record.summary());
        }
        self.status.update(|s| {
            if record.state.is_failure() {
                s.writes_failed += 1;
            } else if record.state != WriteState::Superseded {
                s.writes_applied += 1;
            }
            s.last_write = Some(record.clone());
        });
        self.services.observer.decision(
            &self.id.instance,
            Some(&record.endpoint),
            "write",
            record.summary(),
        );
        Ok(())
    }
}

/// A report in one line for the event log.
fn describe_report(r: &crate::engine::PresenceReport) -> String {
    let mut parts = Vec::new();
    match &r.origin {
        crate::engine::UpdateOrigin::Platform => {}
        crate::engine::UpdateOrigin::HubWrite { write_id } => {
            parts.push(format!("echo of hub write {write_id}"))
        }
        crate::engine::UpdateOrigin::ConnectorRule { rule } => {
            parts.push(format!("caused by the connector's rule {rule:?}"))
        }
    }
    if let Some(c) = &r.calendar {
        parts.push(format!(
            "calendar {} items{}",
            c.items.len(),
            if c.out_of_office.is_some() {
                ", out of office"
            } else {
                ""
            }
        ));
    }
    if let Some(t) = &r.telephony {
        parts.push(format!(
            "telephony {:?}{}{}",
            t.line,
            if t.do_not_disturb { " dnd" } else { "" },
            t.forward
                .as_ref()
                .map(|f| format!(" forward {f:?}"))
                .unwrap_or_default()
        ));
    }
    if let Some(x) = &r.rich {
        parts.push(format!(
            "rich {:?}{}{}",
            x.availability,
            x.activity
                .as_ref()
                .map(|a| format!(" {a:?}"))
                .unwrap_or_default(),
            x.note
                .as_ref()
                .map(|n| format!(" note {:?}", n.chars().take(80).collect::<String>()))
                .unwrap_or_default()
        ));
    }
    parts.join("; ")
}
