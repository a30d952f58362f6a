//! One supervised actor per connector instance.
//!
//! The actor owns the instance's wasmtime store and drains, in this order of
//! priority: a small control queue (configuration, write-backs, reloads), the
//! presence service's watch changes, then the bounded I/O queue and the
//! bounded webhook queue. Each guest call runs under the plugin's CPU
//! deadline (counted in the thread's CPU time); a trap ends the run, its
//! sockets close with it, and the supervisor restarts it with backoff,
//! replaying configuration and watches, or quarantines it after repeated
//! crashes.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;
use wasmtime::Store;

use super::call_clock::Overrun;
use super::convert;
use super::grants::Grants;
use super::host::{Identity, InstanceState, Services};
use super::plugin::LoadedPlugin;
use super::status::{RunState, StatusCell};
use super::wasm::WasmHost;
use super::wit::{self, WriteAccepted, guest, types};
use crate::config::Limits;
use crate::engine::ConnectorStatus;
use crate::io::{EventSink, IoContext, IoEvent, IoMsg, WsPayload};
use crate::presence::WatchChange;
use crate::store::now_ms;
use crate::telemetry::ConnectorLabels;
use crate::timing::{CALL_WALL_FACTOR, GOODBYE_GRACE, GOODBYE_QUIET};
use prometheus_client::metrics::counter::Counter;

/// Most endpoints handed to one `watch` or `unwatch` call.
const WATCH_PAGE: usize = 256;
/// Most queued events handed to one `handle-events` call, for plugins that
/// take batches.
const EVENT_BATCH: usize = 64;

/// What a run needs besides the plugin: validated configuration, grants
/// (manifest plus configured addresses) and TLS trust.
#[derive(Clone)]
pub struct RunSpec {
    pub entries: Vec<types::ConfigEntry>,
    pub grants: Grants,
    pub tls: Arc<rustls::ClientConfig>,
}

/// An inbound webhook waiting for the guest's answer.
pub struct WebhookCall {
    pub request: guest::WebhookRequest,
    pub reply: oneshot::Sender<guest::WebhookResponse>,
}

/// Why a call into the guest did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The connector could not do it now (not connected yet, stopping):
    /// the same request may succeed later.
    #[error("{0}")]
    Connector(String),
    /// The connector refuses the request as such (unsupported, unknown
    /// endpoint, not configured): asking again changes nothing.
    #[error("{0}")]
    Rejected(String),
    #[error("the connector crashed: {0}")]
    Crashed(String),
    #[error("the connector is not running ({})", crate::telemetry::term(.0))]
    NotRunning(RunState),
}

/// What became of a run's `configure` call: the runtime answers an
/// operator's create or update by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Configured {
    /// The plugin took the configuration.
    Accepted,
    /// No run was started (the instance is disabled or quarantined).
    NotRun,
    /// The plugin refused it, in its own words; `field` is the
    /// configuration field it named (`invalid-config`), if any.
    Refused {
        field: Option<String>,
        message: String,
    },
    /// The run ended before `configure` answered (a trap, its deadline,
    /// an instantiation failure): why.
    Failed(String),
}

/// Commands from the runtime.
pub enum Control {
    /// New configuration: restart the run with it; the reply is what
    /// became of its `configure`.
    Configure(RunSpec, oneshot::Sender<Configured>),
    /// What became of the current run's `configure` (sent right after a
    /// spawn, it is answered once the first run has configured).
    Outcome(oneshot::Sender<Configured>),
    /// Start a write-back; the reply says whether the plugin took it.
    Write {
        request: types::WriteRequest,
        reply: oneshot::Sender<Result<WriteAccepted, CallError>>,
    },
    /// Move to another build of the plugin (hot reload).
    Reload(Arc<LoadedPlugin>, RunSpec, oneshot::Sender<()>),
    /// Enable (also lifts a quarantine) or disable; the reply is what
    /// became of the run's `configure` ([`Configured::NotRun`] when
    /// disabled).
    Enable(bool, oneshot::Sender<Configured>),
    Stop(oneshot::Sender<()>),
}

/// The runtime's handle on an actor.
#[derive(Clone)]
pub struct ActorHandle {
    pub control: mpsc::Sender<Control>,
    /// Inbound webhooks, bounded like the I/O queue.
    pub webhooks: mpsc::Sender<WebhookCall>,
    /// Watch changes from the presence service. Unbounded so that one busy
    /// actor never holds up the changes of the others; the service sends
    /// differences only, so it stays small.
    pub watches: mpsc::UnboundedSender<WatchChange>,
    pub status: Arc<StatusCell>,
}

/// A run: the instance's store and the plugin's exports in it.
struct Guest {
    store: Store<InstanceState>,
    exports: wit::Guest,
}

struct Actor {
    instance: Arc<str>,
    plugin: Arc<LoadedPlugin>,
    spec: RunSpec,
    /// The instance's watch set as the presence service last sent it: the
    /// service owns it; this copy is what a new run is given again.
    watches: BTreeSet<Arc<str>>,
    enabled: bool,
    wasm: Arc<WasmHost>,
    services: Services,
    status: Arc<StatusCell>,
    /// Whether the presence service was last told the instance runs.
    told_running: Option<bool>,
    /// This instance's series of the event counters, looked up once.
    events_in: Counter,
    event_batches: Counter,
    policy: Limits,
    /// The run's I/O events (bounded: the plugin's queue limit).
    io_tx: mpsc::Sender<IoMsg>,
    io_rx: mpsc::Receiver<IoMsg>,
    webhooks: mpsc::Receiver<WebhookCall>,
    watch_rx: mpsc::UnboundedReceiver<WatchChange>,
    dropped: Arc<AtomicU64>,
    generation: u64,
    guest: Option<Guest>,
    crashes: VecDeque<Instant>,
    restart_at: Option<tokio::time::Instant>,
    hooks_base_url: Option<String>,
    /// Webhooks that arrived while a run said goodbye, for the next run.
    deferred: VecDeque<WebhookCall>,
    /// The run's `configure` refused the configuration: the plugin's words
    /// stay the instance's last error (its later "not configured" answers
    /// to watches say nothing new).
    configure_refused: bool,
    /// What became of the last run's `configure`.
    configured: Configured,
}

/// Everything needed to spawn an actor.
pub struct ActorInit {
    pub instance: String,
    pub plugin: Arc<LoadedPlugin>,
    pub spec: RunSpec,
    pub enabled: bool,
    pub wasm: Arc<WasmHost>,
    pub services: Services,
    pub policy: Limits,
    /// The public base URL of webhooks (`https://hub.example.com/hooks`).
    pub hooks_base_url: Option<String>,
}

/// Start an actor task for an instance.
pub fn spawn(init: ActorInit) -> ActorHandle {
    let (control_tx, control_rx) = mpsc::channel(64);
    let (io_tx, io_rx) = mpsc::channel(init.plugin.limits.queue);
    let (hooks_tx, hooks_rx) = mpsc::channel(init.plugin.limits.queue);
    let (watch_tx, watch_rx) = mpsc::unbounded_channel();
    let status = Arc::new(StatusCell::new(&init.plugin.manifest.version));
    let span = tracing::info_span!(
        "connector",
        instance = %init.instance,
        plugin = %init.plugin.manifest.id,
        plugin_version = %init.plugin.manifest.version,
    );
    let instance_name = init.instance.clone();
    let labels = ConnectorLabels {
        instance: init.instance.clone(),
        plugin: init.plugin.manifest.id.clone(),
    };
    // Every series of the instance shows from its start, at 0.
    init.services.metrics.register_instance(&labels);
    let events_in = init
        .services
        .metrics
        .events_in
        .get_or_create(&labels)
        .clone();
    let event_batches = init
        .services
        .metrics
        .event_batches
        .get_or_create(&labels)
        .clone();
    let actor = Actor {
        instance: init.instance.as_str().into(),
        plugin: init.plugin,
        spec: init.spec,
        watches: BTreeSet::new(),
        enabled: init.enabled,
        wasm: init.wasm,
        services: init.services,
        status: status.clone(),
        told_running: None,
        events_in,
        event_batches,
        policy: init.policy,
        io_tx,
        io_rx,
        webhooks: hooks_rx,
        watch_rx,
        dropped: Arc::default(),
        generation: 0,
        guest: None,
        crashes: VecDeque::new(),
        restart_at: None,
        configure_refused: false,
        configured: Configured::NotRun,
        hooks_base_url: init.hooks_base_url,
        deferred: VecDeque::new(),
    };
    let run = actor.run(control_rx).instrument(span);
    // Each instance runs on a thread of its own, with its own single-thread
    // runtime for its I/O tasks. A plugin handles one call at a time anyway;
    // on its own thread it is scheduled by the kernel like any process
    // instead of queueing behind the shared workers' tasks (a thousand feed
    // clients), its socket readers wake it without crossing threads, and a
    // call that runs to its CPU deadline stalls only its own instance, not a
    // worker that serves the API and the feeds.
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => {
            let spawned = std::thread::Builder::new()
                .name(format!("connector {instance_name}"))
                .spawn(move || rt.block_on(run));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start the connector's thread");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "no runtime of its own for the connector; sharing the hub's");
            tokio::spawn(run);
        }
    }
    ActorHandle {
        control: control_tx,
        webhooks: hooks_tx,
        watches: watch_tx,
        status,
    }
}

impl Actor {
    fn labels(&self) -> ConnectorLabels {
        ConnectorLabels {
            instance: self.instance.to_string(),
            plugin: self.plugin.manifest.id.clone(),
        }
    }

    fn set_run_state(&self, state: RunState) {
        let before = self.status.get().run_state;
        if before != state {
            self.lifecycle(state);
        }
        self.status.update(|s| {
            s.run_state = state;
            if state == RunState::Disabled {
                s.status = ConnectorStatus::Disabled;
                s.status_detail = None;
            }
        });
    }

    /// A run-state change, in the event log beside the instance (the
    /// operator's record of when it started, was disabled, stopped).
    fn lifecycle(&self, state: RunState) {
        let detail = match state {
            RunState::Running => format!(
                "started (plugin {} {})",
                self.plugin.manifest.id, self.plugin.manifest.version
            ),
            RunState::Disabled => "disabled: not running".into(),
            RunState::Stopped => "stopped".into(),
            // Starting is shown by the `started` that follows; restarting
            // and quarantined are recorded with their cause in `crashed`.
            RunState::Starting | RunState::Restarting | RunState::Quarantined => return,
        };
        tracing::info!(run_state = %crate::telemetry::term(&state), "{detail}");
        self.services
            .presence
            .decision(&self.instance, None, "connector", detail);
    }

    async fn run(mut self, mut control: mpsc::Receiver<Control>) {
        if self.enabled {
            self.start().await;
        } else {
            self.set_run_state(RunState::Disabled);
        }
        loop {
            // Whatever the last step did to the run (started, crashed,
            // quarantined, disabled), the presence service hears it before
            // the actor waits again.
            self.tell_running();
            // Webhooks held over a goodbye go to the run that followed (or
            // are refused when there is none), before anything newer.
            while let Some(call) = self.deferred.pop_front() {
                self.webhook(call).await;
            }
            let restart_at = self.restart_at;
            let restart = async move {
                match restart_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                cmd = control.recv() => match cmd {
                    Some(cmd) => if !self.control(cmd).await { break },
                    None => { self.stop_guest().await; break }
                },
                Some(change) = self.watch_rx.recv() => self.apply_watches(change).await,
                _ = restart => {
                    self.restart_at = None;
                    self.start().await;
                }
                Some(msg) = self.io_rx.recv() => self.io_event(msg).await,
                Some(call) = self.webhooks.recv() => self.webhook(call).await,
            }
        }
        self.set_run_state(RunState::Stopped);
        self.tell_running();
    }

    /// Tell the presence service when the instance starts or stops running
    /// (its sources then count, or not, in users' presence).
    fn tell_running(&mut self) {
        let running = self.enabled
            && matches!(
                self.status.get().run_state,
                RunState::Running | RunState::Starting | RunState::Restarting
            );
        if self.told_running != Some(running) {
            self.told_running = Some(running);
            self.services.presence.running(&self.instance, running);
        }
    }

    /// Handle a command; `false` ends the actor.
    async fn control(&mut self, cmd: Control) -> bool {
        match cmd {
            Control::Configure(spec, reply) => {
                self.spec = spec;
                self.stop_guest().await;
                if self.enabled {
                    self.crashes.clear();
                    self.restart_at = None;
                    self.start().await;
                } else {
                    self.configured = Configured::NotRun;
                }
                let _ = reply.send(self.configured.clone());
            }
            Control::Outcome(reply) => {
                let _ = reply.send(self.configured.clone());
            }
            Control::Write { request, reply } => {
                let outcome = self.write(request).await;
                let _ = reply.send(outcome);
            }
            Control::Reload(plugin, spec, reply) => {
                self.stop_guest().await;
                tracing::info!(from = %self.plugin.manifest.version, to = %plugin.manifest.version, "hot reload");
                self.plugin = plugin;
                self.spec = spec;
                self.status
                    .update(|s| s.plugin_version = self.plugin.manifest.version.clone());
                if self.enabled && self.restart_at.is_none() && !self.quarantined() {
                    self.start().await;
                }
                let _ = reply.send(());
            }
            Control::Enable(enabled, reply) => {
                self.enabled = enabled;
                if enabled {
                    self.crashes.clear();
                    self.restart_at = None;
                    self.status.update(|s| s.quarantine_reason = None);
                    self.services
                        .metrics
                        .quarantined
                        .get_or_create(&self.labels())
                        .set(0);
                    if self.guest.is_none() {
                        self.start().await;
                    }
                } else {
                    self.stop_guest().await;
                    self.restart_at = None;
                    self.set_run_state(RunState::Disabled);
                    self.configured = Configured::NotRun;
                }
                let _ = reply.send(self.configured.clone());
            }
            Control::Stop(reply) => {
                self.stop_guest().await;
                // Heard before the runtime goes on (a delete, then perhaps
                // a new instance of the same id).
                self.set_run_state(RunState::Stopped);
                self.tell_running();
                let _ = reply.send(());
                return false;
            }
        }
        true
    }

    /// Apply a change of the watch set from the presence service: unwatch
    /// what goes, then watch what comes.
    async fn apply_watches(&mut self, change: WatchChange) {
        let gone: Vec<Arc<str>> = if change.replace {
            let keep: BTreeSet<&Arc<str>> = change.add.iter().collect();
            let gone: Vec<Arc<str>> = self
                .watches
                .iter()
                .filter(|e| !keep.contains(e))
                .cloned()
                .collect();
            for e in &gone {
                self.watches.remove(e);
            }
            gone
        } else {
            change
                .remove
                .into_iter()
                .filter(|e| self.watches.remove(e))
                .collect()
        };
        if !gone.is_empty() {
            self.call_watch(gone, false).await;
        }
        let new: Vec<Arc<str>> = change
            .add
            .into_iter()
            .filter(|e| self.watches.insert(e.clone()))
            .collect();
        if !new.is_empty() {
            self.call_watch(new, true).await;
        }
    }

    /// Hold a webhook that arrived during a goodbye for the next run, up
    /// to the queue's limit; beyond it the sender is told to retry.
    fn defer(&mut self, call: WebhookCall) {
        if self.deferred.len() >= self.plugin.limits.queue {
            let _ = call.reply.send(json_response(
                503,
                &format!(
                    "connector {} is restarting and has {} requests waiting; retry later",
                    self.instance,
                    self.deferred.len()
                ),
            ));
            return;
        }
        self.deferred.push_back(call);
    }

    fn quarantined(&self) -> bool {
        self.status.get().run_state == RunState::Quarantined
    }

    /// A new run: fresh store and sockets, configure, replay watches.
    async fn start(&mut self) {
        self.set_run_state(RunState::Starting);
        self.generation += 1;
        let sink = EventSink::new(self.io_tx.clone(), self.generation, self.dropped.clone());
        let limits = self.plugin.limits;
        let id = Identity {
            instance: self.instance.clone(),
            labels: self.labels(),
            grants: self.spec.grants.clone(),
            kv_enabled: self.plugin.manifest.grants.kv,
            kv_max_bytes: limits.kv_max_bytes,
            webhook_base_url: self
                .hooks_base_url
                .as_ref()
                .filter(|_| self.plugin.manifest.grants.webhooks)
                .map(|base| format!("{}/{}", base.trim_end_matches('/'), self.instance)),
        };
        let store = self.wasm.new_store(
            id,
            sink,
            self.spec.tls.clone(),
            self.services.clone(),
            self.status.clone(),
            &limits,
        );
        let mut store = match store {
            Ok(store) => store,
            Err(e) => {
                self.status.error(format!("cannot set up I/O: {e}"));
                self.configured = Configured::Failed(format!("cannot set up I/O: {e}"));
                return;
            }
        };
        match self.plugin.pre.instantiate(&mut store).await {
            Ok(exports) => self.guest = Some(Guest { store, exports }),
            Err(e) => {
                let reason = explain("instantiate", &e, store.data(), limits.call_timeout_ms);
                self.configured = Configured::Failed(reason.clone());
                self.crashed(reason);
                return;
            }
        }
        self.set_run_state(RunState::Running);
        let entries = self.spec.entries.clone();
        let configured = self
            .invoke("configure", async |g: &mut Guest| {
                g.exports.configure(&mut g.store, &entries).await
            })
            .await;
        self.configure_refused = matches!(configured, Some(Err(_)));
        self.configured = match &configured {
            Some(Ok(())) => Configured::Accepted,
            Some(Err(types::ConnectorError::InvalidConfig(f))) => Configured::Refused {
                field: Some(f.field.clone()),
                message: f.message.clone(),
            },
            Some(Err(e)) => Configured::Refused {
                field: None,
                message: convert::connector_error(e),
            },
            None => Configured::Failed(
                self.status
                    .get()
                    .last_error
                    .map(|e| e.message)
                    .unwrap_or_else(|| "the run ended during configure".into()),
            ),
        };
        match configured {
            Some(Ok(())) => {
                self.services.presence.decision(
                    &self.instance,
                    None,
                    "connector",
                    "configured: the plugin took the configuration".into(),
                );
                let all: Vec<Arc<str>> = self.watches.iter().cloned().collect();
                if !all.is_empty() {
                    self.call_watch(all, true).await;
                }
            }
            Some(Err(e)) => {
                let msg = convert::connector_error(&e);
                tracing::warn!(error = %msg, "configure refused");
                self.status.error(format!("configure: {msg}"));
                // The operator reads why in the event log too, beside the
                // instance (a reload or a restart may refuse a stored
                // configuration that was taken before).
                self.services.presence.decision(
                    &self.instance,
                    None,
                    "connector",
                    format!("configuration refused by the plugin: {msg}"),
                );
                self.status.update(|s| {
                    if s.status == ConnectorStatus::UpAndRunning {
                        s.status = ConnectorStatus::NotConfigured;
                    }
                });
            }
            None => {}
        }
    }

    /// Say goodbye to the running guest (it may unsubscribe), give its
    /// goodbyes time to be answered, and drop it.
    async fn stop_guest(&mut self) {
        if self.guest.is_some() {
            let _ = self
                .invoke("shutdown", async |g: &mut Guest| {
                    g.exports
                        .handle_events(&mut g.store, &[guest::Event::Shutdown])
                        .await
                })
                .await;
            self.goodbye().await;
        }
        // Dropping the store drops its IoContext: sockets close, timers stop.
        self.guest = None;
        self.abandon_writes("the connector stopped before reporting the outcome");
    }

    /// After `shutdown`: keep delivering the run's I/O events so that its
    /// goodbyes (un-SUBSCRIBEs and their digest challenges, subscription
    /// deletes) are sent and answered. Ends after [`GOODBYE_GRACE`], or
    /// sooner once no I/O event has arrived for [`GOODBYE_QUIET`] and no
    /// HTTP request is in flight. Webhooks that arrive meanwhile wait for
    /// the next run (a reload, a reconfiguration), or are refused if there
    /// is none.
    async fn goodbye(&mut self) {
        let deadline = tokio::time::Instant::now() + GOODBYE_GRACE;
        let mut quiet_at = tokio::time::Instant::now() + GOODBYE_QUIET;
        loop {
            tokio::select! {
                msg = self.io_rx.recv() => match msg {
                    Some(msg) => {
                        quiet_at = tokio::time::Instant::now() + GOODBYE_QUIET;
                        self.io_event(msg).await;
                    }
                    None => return,
                },
                Some(call) = self.webhooks.recv() => self.defer(call),
                _ = tokio::time::sleep_until(quiet_at) => {
                    let in_flight = self
                        .guest
                        .as_ref()
                        .map_or(0, |g| g.store.data().io.requests_in_flight());
                    if in_flight == 0 {
                        return;
                    }
                    quiet_at = tokio::time::Instant::now() + GOODBYE_QUIET;
                }
                _ = tokio::time::sleep_until(deadline) => return,
            }
            if self.guest.is_none() {
                return;
            }
        }
    }

    /// Writes the ended run accepted but never settled fail, retryable: no
    /// write waits for an outcome that cannot come.
    fn abandon_writes(&self, why: &str) {
        for record in self.services.writes.abandon(&self.instance, why) {
            self.status.update(|s| {
                s.writes_failed += 1;
                s.last_write = Some(record.clone());
            });
            self.services.write_settled(&record);
        }
    }

    /// Run one guest call under the CPU deadline. `None` means it trapped
    /// (the run is over and a restart is scheduled) or nothing is running.
    async fn invoke<T>(
        &mut self,
        what: &'static str,
        f: impl AsyncFnOnce(&mut Guest) -> wasmtime::Result<T>,
    ) -> Option<T> {
        let timeout = self.plugin.limits.call_timeout_ms;
        let guest = self.guest.as_mut()?;
        WasmHost::arm_deadline(&mut guest.store, timeout);
        // Epoch checks run only while wasm runs: a call suspended in a WASI
        // wait (a sleep, a poll) is bounded here instead.
        let wall = Duration::from_millis(u64::from(timeout)) * CALL_WALL_FACTOR;
        let outcome = match tokio::time::timeout(wall, f(guest)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                guest.store.data_mut().call.overrun = Some(Overrun::Wall);
                Err(wasmtime::Error::msg("the call did not return"))
            }
        };
        match outcome {
            Ok(v) => Some(v),
            Err(e) => {
                let reason = explain(what, &e, guest.store.data(), timeout);
                self.guest = None;
                self.crashed(reason);
                None
            }
        }
    }

    fn crashed(&mut self, reason: String) {
        self.abandon_writes(&format!("the connector crashed: {reason}"));
        let labels = self.labels();
        tracing::error!(%reason, "connector crashed");
        self.services.metrics.errors.get_or_create(&labels).inc();
        self.status.error(reason.clone());
        let now = Instant::now();
        let window = Duration::from_secs(self.policy.crash_window_secs);
        while self
            .crashes
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            self.crashes.pop_front();
        }
        self.crashes.push_back(now);
        if self.crashes.len() as u32 >= self.policy.quarantine_after.max(1) {
            tracing::error!(crashes = self.crashes.len(), "connector quarantined");
            self.services
                .metrics
                .quarantined
                .get_or_create(&labels)
                .set(1);
            self.services
                .metrics
                .quarantines
                .get_or_create(&labels)
                .inc();
            self.services.presence.decision(
                &self.instance,
                None,
                "connector",
                format!(
                    "quarantined after {} crashes within {} s; last: {reason}",
                    self.crashes.len(),
                    self.policy.crash_window_secs
                ),
            );
            self.status.update(|s| {
                s.run_state = RunState::Quarantined;
                s.quarantine_reason = Some(format!(
                    "{} crashes within {} s; last: {reason}. Fix the cause, then enable the connector again",
                    self.crashes.len(),
                    self.policy.crash_window_secs
                ));
            });
            self.restart_at = None;
            return;
        }
        let exp = (self.crashes.len() as u32 - 1).min(20);
        let backoff = self
            .policy
            .restart_backoff_min_ms
            .saturating_mul(1 << exp)
            .min(self.policy.restart_backoff_max_ms);
        self.services.metrics.restarts.get_or_create(&labels).inc();
        self.services.presence.decision(
            &self.instance,
            None,
            "connector",
            format!("crashed: {reason}; restarting in {backoff} ms"),
        );
        self.status.update(|s| {
            s.run_state = RunState::Restarting;
            s.restarts += 1;
        });
        self.restart_at = Some(tokio::time::Instant::now() + Duration::from_millis(backoff));
    }

    /// Watch or unwatch `endpoints`, in pages of [`WATCH_PAGE`]: each page
    /// is a call of its own, under its own CPU deadline, so a long list
    /// (every user of a large site at start) neither runs into the deadline
    /// nor makes the plugin hold the work for all of it at once.
    async fn call_watch(&mut self, endpoints: Vec<Arc<str>>, watch: bool) {
        for page in endpoints.chunks(WATCH_PAGE) {
            let page: Vec<String> = page.iter().map(|e| e.to_string()).collect();
            let page = &page[..];
            let outcome = self
                .invoke(
                    if watch { "watch" } else { "unwatch" },
                    async |g: &mut Guest| g.exports.watch(&mut g.store, page, watch).await,
                )
                .await;
            match outcome {
                Some(Err(e)) => self.guest_error(&e),
                Some(Ok(())) => {}
                // Crashed: the restart replays every watch.
                None => return,
            }
            // Take in what this page's requests brought back (answers,
            // first notifications) before the next page, so that the
            // plugin has one page of requests in flight, not all of them.
            for _ in 0..2 * WATCH_PAGE {
                let Ok(msg) = self.io_rx.try_recv() else {
                    break;
                };
                self.io_event(msg).await;
                if self.guest.is_none() {
                    return;
                }
            }
        }
    }

    fn guest_error(&self, e: &types::ConnectorError) {
        let msg = convert::connector_error(e);
        tracing::warn!(error = %msg, "connector returned an error");
        self.services
            .metrics
            .errors
            .get_or_create(&self.labels())
            .inc();
        // After a refused configuration the plugin's reason (naming the
        // field) is what the operator needs; "not configured" hides it.
        if self.configure_refused && matches!(e, types::ConnectorError::NotConfigured) {
            return;
        }
        self.status.error(msg);
    }

    async fn write(&mut self, request: types::WriteRequest) -> Result<WriteAccepted, CallError> {
        if self.guest.is_none() {
            return Err(CallError::NotRunning(self.status.get().run_state));
        }
        let outcome = self
            .invoke("write-presence", async |g: &mut Guest| {
                g.exports.write_presence(&mut g.store, &request).await
            })
            .await;
        match outcome {
            Some(Ok(accepted)) => Ok(accepted),
            Some(Err(e @ types::ConnectorError::Other(_))) => {
                Err(CallError::Connector(convert::connector_error(&e)))
            }
            Some(Err(e)) => Err(CallError::Rejected(convert::connector_error(&e))),
            None => Err(CallError::Crashed(
                self.status
                    .get()
                    .last_error
                    .map(|e| e.message)
                    .unwrap_or_default(),
            )),
        }
    }

    /// Count `n` events handed to the plugin (one status update per call,
    /// not per event).
    fn count_events(&self, n: usize) {
        self.events_in.inc_by(n as u64);
        let dropped = self.dropped.load(Ordering::Relaxed);
        self.status.update(|s| {
            s.last_event_at_ms = Some(now_ms());
            s.events_dropped = dropped;
        });
    }

    /// Hand an event to the plugin, with whatever else has queued up behind
    /// it when the plugin takes batches (in queue order, so each handle's
    /// order is kept).
    async fn io_event(&mut self, msg: IoMsg) {
        let batched = self.plugin.info.capabilities.batched_events;
        let generation = self.generation;
        let Some(g) = self.guest.as_mut() else { return };
        let io = &mut g.store.data_mut().io;
        let mut events = Vec::new();
        // Events of an earlier run belong to sockets that no longer exist.
        if msg.generation == generation {
            events.push(to_wit(msg.event, io));
        }
        while batched && events.len() < EVENT_BATCH {
            match self.io_rx.try_recv() {
                Ok(m) if m.generation == generation => events.push(to_wit(m.event, io)),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        if !events.is_empty() {
            self.count_events(events.len());
            self.event_batches.inc();
            let outcome = self
                .invoke("handle-events", async |g: &mut Guest| {
                    g.exports.handle_events(&mut g.store, &events).await
                })
                .await;
            if let Some(Err(e)) = outcome {
                self.guest_error(&e);
            }
        }
    }

    async fn webhook(&mut self, call: WebhookCall) {
        // Its sender gave up waiting (the API's timeout): nobody would
        // read the answer, and the plugin's work for it would be wasted.
        if call.reply.is_closed() {
            return;
        }
        if self.guest.is_none() {
            // A sender learns nothing from a webhook address: one of an
            // instance that is not running (disabled, quarantined) is
            // answered like one of no instance at all.
            let _ = call.reply.send(json_response(404, NO_WEBHOOK_RECEIVER));
            return;
        }
        self.count_events(1);
        let request = call.request;
        let outcome = self
            .invoke("handle-webhook", async |g: &mut Guest| {
                g.exports.handle_webhook(&mut g.store, &request).await
            })
            .await;
        let response = outcome.unwrap_or_else(|| {
            json_response(
                500,
                "the connector crashed handling this request; it is being restarted",
            )
        });
        let _ = call.reply.send(response);
    }
}

/// A JSON error response produced by the host on the guest's behalf.
/// The answer to a webhook for no instance, or for one that is not
/// running: the same, so the address tells nothing.
pub const NO_WEBHOOK_RECEIVER: &str =
    "no webhook receiver at this address; check the URL the sender was given";

pub fn json_response(status: u16, message: &str) -> guest::WebhookResponse {
    guest::WebhookResponse {
        status,
        headers: vec![types::Header {
            name: "content-type".into(),
            value: "application/json".into(),
        }],
        body: serde_json::to_vec(&serde_json::json!({ "error": message })).unwrap_or_default(),
    }
}

/// Turn an I/O event into the contract's event, retiring handles whose work
/// is over.
pub fn to_wit(event: IoEvent, io: &mut IoContext) -> guest::Event {
    let addr = |a: std::net::SocketAddr| types::SocketAddress {
        host: a.ip().to_string(),
        port: a.port(),
    };
    match event {
        IoEvent::Datagram { socket, from, data } => guest::Event::Datagram(guest::Datagram {
            socket,
            from: addr(from),
            data,
        }),
        IoEvent::StreamConnected {
            stream,
            local,
            remote,
        } => guest::Event::StreamConnected(guest::StreamInfo {
            socket: stream,
            local: addr(local),
            remote: addr(remote),
        }),
        IoEvent::StreamData { stream, data } => guest::Event::StreamData(guest::StreamData {
            socket: stream,
            data,
        }),
        IoEvent::StreamClosed { stream, close } => {
            io.finished(stream);
            guest::Event::StreamClosed(guest::StreamClosed {
                socket: stream,
                close: convert::close_info(close),
            })
        }
        IoEvent::HttpResponse { request, outcome } => {
            io.finished(request);
            guest::Event::HttpResponse(guest::HttpResult {
                request,
                outcome: outcome
                    .map(|r| guest::Response {
                        status: r.status,
                        headers: convert::header_list(r.headers),
                        body: r.body,
                    })
                    .map_err(convert::failure),
            })
        }
        IoEvent::WsOpened {
            socket,
            headers,
            subprotocol,
        } => guest::Event::WebsocketOpened(guest::WebsocketOpen {
            socket,
            headers: convert::header_list(headers),
            subprotocol,
        }),
        IoEvent::WsMessage { socket, payload } => {
            guest::Event::WebsocketMessage(guest::WsMessage {
                socket,
                payload: match payload {
                    WsPayload::Text(t) => guest::WsPayload::Text(t),
                    WsPayload::Binary(b) => guest::WsPayload::Binary(b),
                },
            })
        }
        IoEvent::WsClosed { socket, close } => {
            io.finished(socket);
            guest::Event::WebsocketClosed(guest::WebsocketClosed {
                socket,
                close: convert::close_info(close),
            })
        }
        IoEvent::Timer { timer } => {
            io.finished(timer);
            guest::Event::Timer(timer)
        }
    }
}

/// Why a run ended, in words an operator can act on.
fn explain(what: &str, e: &wasmtime::Error, state: &InstanceState, timeout_ms: u32) -> String {
    let stderr = String::from_utf8_lossy(&state.stderr.contents())
        .trim()
        .to_string();
    let tail: String = stderr
        .lines()
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join(" | ");
    let base = if state.call.overrun == Some(Overrun::Wall) {
        format!(
            "{what} waited {CALL_WALL_FACTOR}x its CPU deadline of {timeout_ms} ms without getting the CPU: the machine is overloaded"
        )
    } else if matches!(
        e.downcast_ref::<wasmtime::Trap>(),
        Some(wasmtime::Trap::Interrupt)
    ) {
        format!("{what} exceeded its CPU deadline of {timeout_ms} ms (endless loop?)")
    } else if state.memory.refused {
        format!(
            "{what} ran out of memory: the limit is {} MiB (manifest limits.memory-mib)",
            state.memory.max_bytes >> 20
        )
    } else if stderr.contains("panicked") {
        format!("{what} panicked")
    } else {
        format!("{what} trapped: {e}")
    };
    if tail.is_empty() {
        base
    } else {
        format!("{base}: {tail}")
    }
}
