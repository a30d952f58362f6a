//! Logs (`tracing`) and Prometheus metrics.
//!
//! Every family is described in the README ("Metrics"). Labels are bounded:
//! instance and plugin ids come from the operator's configuration, routes
//! are the API's route templates (never raw paths), statuses and results are
//! fixed vocabularies.

use std::io::IsTerminal;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tracing_subscriber::EnvFilter;

use crate::config::{HubConfig, LogFormat};
use crate::engine::ConnectorStatus;

/// Install the global `tracing` subscriber. Safe to call once per process.
///
/// Text logs carry ANSI colours only when stderr is a terminal and
/// `NO_COLOR` (<https://no-color.org>) is unset or empty: a file, a pipe or
/// journald gets plain text.
pub fn init_logging(cfg: &HubConfig) {
    let filter = EnvFilter::try_new(&cfg.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let colour = colour_wanted(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let _ = match cfg.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Colour on a terminal, unless `NO_COLOR` is set to anything non-empty.
fn colour_wanted(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// A value in the API's own words (its serde name: `connection-error`,
/// `in-call`, `do-not-disturb`), for logs and the event log, never a Rust
/// debug name (`ConnectionError`). A value that serialises to something
/// other than a string (`{"other":"lunch"}`) is shown as compact JSON.
pub fn term<T: serde::Serialize + ?Sized>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Object(m)) if m.len() == 1 => {
            let (k, v) = m.into_iter().next().expect("one entry");
            match v {
                serde_json::Value::String(s) => format!("{k} {s:?}"),
                v => format!("{k} {v}"),
            }
        }
        Ok(v) => v.to_string(),
        Err(_) => "?".into(),
    }
}

/// Every connector status, for the one-series-per-value status gauge.
pub const CONNECTOR_STATUSES: [ConnectorStatus; 8] = [
    ConnectorStatus::NotConfigured,
    ConnectorStatus::Disabled,
    ConnectorStatus::Forbidden,
    ConnectorStatus::ConnectionError,
    ConnectorStatus::UpAndRunning,
    ConnectorStatus::CredentialsNotFound,
    ConnectorStatus::LoginRequired,
    ConnectorStatus::Throttled,
];

/// Labels of every per-connector series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectorLabels {
    pub instance: String,
    pub plugin: String,
}

/// Labels of the connector status gauge: one series per status value.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub instance: String,
    pub plugin: String,
    /// A [`ConnectorStatus`] in the API's words (`up-and-running`, ...).
    pub status: String,
}

/// Labels of live-feed clients.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportLabels {
    /// `sse` or `websocket`.
    pub transport: String,
}

/// Labels of webhook requests.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// See [`WebhookResult`].
    pub result: String,
}

/// How an inbound webhook request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookResult {
    /// The connector answered with a 2xx.
    Accepted,
    /// The connector answered with a 4xx (a bad signature, an unknown
    /// subscription, ...).
    Refused,
    /// The connector answered with a 5xx or an invalid status.
    Failed,
    /// No running connector takes webhooks under that instance id.
    NoReceiver,
    /// The connector was busy (queue full) or did not answer in time.
    Unavailable,
}

impl WebhookResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Refused => "refused",
            Self::Failed => "failed",
            Self::NoReceiver => "no-receiver",
            Self::Unavailable => "unavailable",
        }
    }
}

/// Labels of API requests: the route template (`/api/v1/users/{username}`,
/// or `unmatched`), never the raw path, so the series stay bounded.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

/// [`RouteLabels`] with the answer's status code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatusLabels {
    pub method: String,
    pub route: String,
    pub status: String,
}

/// `build_info` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// The hub's version (Cargo package version).
    pub version: String,
    /// The newest connector API (WIT) version the hub implements.
    pub connector_api: String,
    /// `os/arch` the binary was built for.
    pub target: String,
}

/// The connector API version the host implements (the newest WIT package).
pub const CONNECTOR_API: &str = "0.2.0";

/// A cluster node's lease and relay figures; clones share the values.
#[derive(Clone, Debug, Default)]
pub struct ClusterCounters {
    pub leases_held: Gauge,
    pub nodes_alive: Gauge,
    pub takeovers: Counter,
    pub leases_lost: Counter,
    pub published: Counter,
    pub applied: Counter,
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
    /// Event-log entries queued for the writer, not yet on disk.
    pub log_queued: Gauge,
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
    /// This node's share of a cluster (all 0 on a single hub).
    pub cluster: ClusterCounters,
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
    /// Times an instance was quarantined (crashed too often).
    pub quarantines: Family<ConnectorLabels, Counter>,
    /// Host calls refused by the plugin's grants.
    pub denied: Family<ConnectorLabels, Counter>,
    /// 1 while an instance is quarantined.
    pub quarantined: Family<ConnectorLabels, Gauge>,
    /// Linear memory of an instance's current run (bytes; 0 while down).
    pub memory: Family<ConnectorLabels, Gauge>,
    /// 1 for an instance's current status, 0 for the other values; set
    /// when `/metrics` is read, from the same status the API shows.
    pub status: Family<StatusLabels, Gauge>,
    /// 1 while an instance is running and says `up-and-running`.
    pub up: Family<ConnectorLabels, Gauge>,
    /// Live-feed streams open, by transport.
    pub feed_clients: Family<TransportLabels, Gauge>,
    /// Inbound webhook requests, by result.
    pub webhooks: Family<ResultLabels, Counter>,
    /// API requests answered, by route template and status.
    pub http_requests: Family<RouteStatusLabels, Counter>,
    /// Time to answer an API request (to the response head; a feed
    /// stream counts until it starts), seconds.
    pub http_duration: Family<RouteLabels, Histogram>,
    /// Serialises status refreshes so two scrapes never interleave their
    /// clear-and-set.
    status_refresh: std::sync::Mutex<()>,
}

fn latency_histogram() -> Histogram {
    // 1 ms to ~16 s, doubling.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
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
            quarantines: Family::default(),
            denied: Family::default(),
            quarantined: Family::default(),
            memory: Family::default(),
            status: Family::default(),
            up: Family::default(),
            feed_clients: Family::default(),
            webhooks: Family::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency_histogram),
            status_refresh: std::sync::Mutex::new(()),
            presence: PresenceCounters::default(),
            cluster: ClusterCounters::default(),
            registry: Registry::default(),
        };
        registry.register(
            "cluster_leases_held",
            "Connector instances whose lease this node holds (it runs them)",
            m.cluster.leases_held.clone(),
        );
        registry.register(
            "cluster_nodes_alive",
            "Hub nodes with a live heartbeat in the shared database, this one included",
            m.cluster.nodes_alive.clone(),
        );
        registry.register(
            "cluster_takeovers",
            "Connector instances this node took over from another node whose lease lapsed or was handed back",
            m.cluster.takeovers.clone(),
        );
        registry.register(
            "cluster_leases_lost",
            "Leases this node could not renew (another node took the instance): its run here was stopped",
            m.cluster.leases_lost.clone(),
        );
        registry.register(
            "cluster_messages_published",
            "Reports and statuses of this node's connectors published to the other nodes",
            m.cluster.published.clone(),
        );
        registry.register(
            "cluster_messages_applied",
            "Reports and statuses from other nodes' connectors applied here",
            m.cluster.applied.clone(),
        );
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
            "connector_quarantines",
            "Times the connector was quarantined after crashing too often",
            m.quarantines.clone(),
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
        registry.register(
            "connector_status",
            "1 for the connector's current status (label status), 0 for the other values",
            m.status.clone(),
        );
        registry.register(
            "connector_up",
            "1 while the connector runs and says up-and-running, else 0",
            m.up.clone(),
        );
        registry.register(
            "event_log_queued",
            "Event-log entries waiting for the writer",
            m.presence.log_queued.clone(),
        );
        registry.register(
            "feed_clients",
            "Live-feed streams open, by transport (sse, websocket)",
            m.feed_clients.clone(),
        );
        registry.register(
            "webhook_requests",
            "Inbound webhook requests, by result",
            m.webhooks.clone(),
        );
        registry.register(
            "http_requests",
            "API requests answered, by method, route template and status code",
            m.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an API request, to the response head, by method and route template",
            m.http_duration.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").into(),
                connector_api: CONNECTOR_API.into(),
                target: format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
            })
            .set(1);
        registry.register("build_info", "The hub's build; always 1", build);
        // Both transports show from the start, at 0.
        for t in ["sse", "websocket"] {
            let _ = m.feed_clients.get_or_create(&TransportLabels {
                transport: t.into(),
            });
        }
        Self { registry, ..m }
    }
}

impl Metrics {
    /// Create every per-connector series of an instance at 0, so a
    /// counter that has not moved yet (denied reaches, quarantines) shows
    /// as 0 rather than missing.
    pub fn register_instance(&self, l: &ConnectorLabels) {
        let _ = self.events_in.get_or_create(l);
        let _ = self.event_batches.get_or_create(l);
        let _ = self.events_dropped.get_or_create(l);
        let _ = self.reports_out.get_or_create(l);
        let _ = self.errors.get_or_create(l);
        let _ = self.restarts.get_or_create(l);
        let _ = self.quarantines.get_or_create(l);
        let _ = self.denied.get_or_create(l);
        let _ = self.quarantined.get_or_create(l);
        let _ = self.memory.get_or_create(l);
    }

    /// Drop a deleted instance's series, so deleted instances do not
    /// accumulate.
    pub fn forget_instance(&self, l: &ConnectorLabels) {
        self.events_in.remove(l);
        self.event_batches.remove(l);
        self.events_dropped.remove(l);
        self.reports_out.remove(l);
        self.errors.remove(l);
        self.restarts.remove(l);
        self.quarantines.remove(l);
        self.denied.remove(l);
        self.quarantined.remove(l);
        self.memory.remove(l);
    }

    /// Set the status gauges from `(instance, plugin, status, up)` of every
    /// instance now configured; instances gone lose their series.
    pub fn set_statuses(
        &self,
        now: impl IntoIterator<Item = (String, String, ConnectorStatus, bool)>,
    ) {
        let _one = self
            .status_refresh
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.status.clear();
        self.up.clear();
        for (instance, plugin, current, up) in now {
            for s in CONNECTOR_STATUSES {
                self.status
                    .get_or_create(&StatusLabels {
                        instance: instance.clone(),
                        plugin: plugin.clone(),
                        status: term(&s),
                    })
                    .set(i64::from(s == current));
            }
            self.up
                .get_or_create(&ConnectorLabels { instance, plugin })
                .set(i64::from(up));
        }
    }

    /// A live-feed stream opened (`sse` or `websocket`); the gauge goes
    /// down when the returned guard is dropped.
    pub fn feed_client(self: &std::sync::Arc<Self>, transport: &'static str) -> FeedClientGuard {
        let labels = TransportLabels {
            transport: transport.into(),
        };
        self.feed_clients.get_or_create(&labels).inc();
        FeedClientGuard {
            metrics: self.clone(),
            labels,
        }
    }

    /// Count an inbound webhook request.
    pub fn webhook(&self, result: WebhookResult) {
        self.webhooks
            .get_or_create(&ResultLabels {
                result: result.as_str().into(),
            })
            .inc();
    }

    /// Count an answered API request.
    pub fn http_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.http_requests
            .get_or_create(&RouteStatusLabels {
                method: method.into(),
                route: route.into(),
                status: status.to_string(),
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                method: method.into(),
                route: route.into(),
            })
            .observe(seconds);
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Holds one live-feed client in [`Metrics::feed_clients`].
pub struct FeedClientGuard {
    metrics: std::sync::Arc<Metrics>,
    labels: TransportLabels,
}

impl Drop for FeedClientGuard {
    fn drop(&mut self) {
        self.metrics.feed_clients.get_or_create(&self.labels).dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(colour_wanted(true, None));
        assert!(colour_wanted(true, Some(OsStr::new(""))));
        assert!(!colour_wanted(true, Some(OsStr::new("1"))));
        assert!(!colour_wanted(false, None));
    }

    #[test]
    fn terms_are_the_apis_words() {
        assert_eq!(term(&ConnectorStatus::ConnectionError), "connection-error");
        assert_eq!(term(&crate::engine::LineState::InCall), "in-call");
        assert_eq!(
            term(&crate::engine::Activity::Other("lunch".into())),
            "other \"lunch\""
        );
    }

    #[test]
    fn status_gauge_has_one_series_per_value_and_forgets_deleted_instances() {
        let m = Metrics::default();
        m.set_statuses([(
            "pbx".into(),
            "sip-simple".into(),
            ConnectorStatus::ConnectionError,
            false,
        )]);
        let text = m.encode();
        assert!(text.contains(
            "presence_hub_connector_status{instance=\"pbx\",plugin=\"sip-simple\",status=\"connection-error\"} 1"
        ), "{text}");
        assert_eq!(
            text.matches("presence_hub_connector_status{instance=\"pbx\"")
                .count(),
            8
        );
        m.set_statuses([]);
        assert!(!m.encode().contains("instance=\"pbx\""));
    }
}
