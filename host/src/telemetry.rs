//! Logs (`tracing`) and Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tracing_subscriber::EnvFilter;

use crate::config::{HubConfig, LogFormat};

/// Install the global `tracing` subscriber. Safe to call once per process.
pub fn init_logging(cfg: &HubConfig) {
    let filter = EnvFilter::try_new(&cfg.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match cfg.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Labels of every per-connector series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectorLabels {
    pub instance: String,
    pub plugin: String,
}

/// The presence pipeline's counters; clones share the values.
#[derive(Clone, Debug, Default)]
pub struct PresenceCounters {
    /// Presence reports and endpoint states connectors made.
    pub received: Counter,
    /// Reports no client saw as a change of their own: folded into a
    /// later report of the same endpoint while queued, or applied in one
    /// batch with other reports of the same user, which reach the feed as
    /// one change.
    pub coalesced: Counter,
    /// Reports and log entries dropped because the inbox was full.
    pub dropped: Counter,
    /// Event-log entries dropped because the writer could not keep up.
    pub log_dropped: Counter,
    /// Feed events not sent to a client that had fallen behind, because a
    /// newer event of the same user was waiting for it too.
    pub feed_folded: Counter,
    /// Do-not-disturb writes and restores the sync made.
    pub sync_writes: Counter,
    /// Of those, retries after a failure.
    pub sync_retries: Counter,
    /// Of those, a person's change on a follower set back.
    pub sync_set_backs: Counter,
}

/// The hub's metrics, served at `/metrics`.
pub struct Metrics {
    /// The presence pipeline (not per connector).
    pub presence: PresenceCounters,
    registry: Registry,
    /// Events delivered to a connector (datagrams, stream data, timers, ...).
    pub events_in: Family<ConnectorLabels, Counter>,
    /// Calls that handed events to a connector (one per batch).
    pub event_batches: Family<ConnectorLabels, Counter>,
    /// Events dropped because the connector's queue was full.
    pub events_dropped: Family<ConnectorLabels, Counter>,
    /// Reports (presence, endpoint states, status) a connector made.
    pub reports_out: Family<ConnectorLabels, Counter>,
    /// Guest calls that returned an error or trapped.
    pub errors: Family<ConnectorLabels, Counter>,
    /// Restarts after a crash.
    pub restarts: Family<ConnectorLabels, Counter>,
    /// Host calls refused by the plugin's grants.
    pub denied: Family<ConnectorLabels, Counter>,
    /// 1 while an instance is quarantined.
    pub quarantined: Family<ConnectorLabels, Gauge>,
    /// Linear memory of an instance's current run (bytes; 0 while down).
    pub memory: Family<ConnectorLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("presence_hub");
        let m = Self {
            events_in: Family::default(),
            event_batches: Family::default(),
            events_dropped: Family::default(),
            reports_out: Family::default(),
            errors: Family::default(),
            restarts: Family::default(),
            denied: Family::default(),
            quarantined: Family::default(),
            memory: Family::default(),
            presence: PresenceCounters::default(),
            registry: Registry::default(),
        };
        for (name, help, c) in [
            (
                "presence_reports",
                "Presence reports and endpoint states received from connectors",
                &m.presence.received,
            ),
            (
                "presence_coalesced",
                "Reports that reached the feed inside a later change of the same user: folded into a newer report of the same endpoint while queued, or applied in the same batch as other reports of that user",
                &m.presence.coalesced,
            ),
            (
                "presence_dropped",
                "Reports and log entries dropped on a full presence inbox",
                &m.presence.dropped,
            ),
            (
                "feed_folded",
                "Feed events a slow client skipped: a newer one of the same user was waiting",
                &m.presence.feed_folded,
            ),
            (
                "sync_writes",
                "Do-not-disturb writes and restores made by the sync",
                &m.presence.sync_writes,
            ),
            (
                "sync_retries",
                "Sync writes made again after a failure",
                &m.presence.sync_retries,
            ),
            (
                "sync_set_backs",
                "Sync writes setting back a person's change on a follower",
                &m.presence.sync_set_backs,
            ),
            (
                "event_log_dropped",
                "Event-log entries dropped because the writer could not keep up",
                &m.presence.log_dropped,
            ),
        ] {
            registry.register(name, help, c.clone());
        }
        registry.register(
            "connector_events_in",
            "Events delivered to a connector",
            m.events_in.clone(),
        );
        registry.register(
            "connector_event_calls",
            "Calls that handed events to a connector (several events each when batched)",
            m.event_batches.clone(),
        );
        registry.register(
            "connector_events_dropped",
            "Events dropped on a full connector queue",
            m.events_dropped.clone(),
        );
        registry.register(
            "connector_reports_out",
            "Reports made by a connector",
            m.reports_out.clone(),
        );
        registry.register(
            "connector_errors",
            "Guest calls that failed or trapped",
            m.errors.clone(),
        );
        registry.register(
            "connector_restarts",
            "Connector restarts after a crash",
            m.restarts.clone(),
        );
        registry.register(
            "connector_denied",
            "Host calls refused by the plugin's grants",
            m.denied.clone(),
        );
        registry.register(
            "connector_quarantined",
            "1 while the connector is quarantined",
            m.quarantined.clone(),
        );
        registry.register(
            "connector_memory_bytes",
            "Linear memory of the connector's current run",
            m.memory.clone(),
        );
        Self { registry, ..m }
    }
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
