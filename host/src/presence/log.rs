//! The event log: every report and every decision, connector lifecycle
//! (created, configured, started, status changes, restarted, quarantined,
//! deleted) and every operator change with who made it, written in batches
//! by a background task so the engine never waits on the disk.
//!
//! Details use the API's vocabulary (`connection-error`, `in-call`), never
//! Rust debug names; see [`crate::telemetry::term`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::store::{EventQuery, EventRecord, Store, StoreError, now_ms};

/// Events queued beyond this are dropped (and counted) rather than let the
/// engine's memory grow without bound.
const QUEUE: usize = 100_000;
const BATCH: usize = 2_000;

/// Handle on the writer task.
pub struct EventLog {
    tx: mpsc::Sender<EventRecord>,
    store: Arc<dyn Store>,
    dropped: prometheus_client::metrics::counter::Counter,
    /// Whether this node writes the entries every node's presence service
    /// derives alike from the same reports (`report`, `decision`, `sync`).
    /// In a cluster one node writes them to the shared log, not each.
    writes_derived: std::sync::atomic::AtomicBool,
}

/// Entries every node of a cluster derives alike from the same reports.
const DERIVED_KINDS: [&str; 3] = ["report", "decision", "sync"];

impl EventLog {
    /// Start the writer; entries dropped under overload count in `dropped`.
    pub fn start(
        store: Arc<dyn Store>,
        dropped: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<EventRecord>(QUEUE);
        let writer = store.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            loop {
                let n = rx.recv_many(&mut batch, BATCH).await;
                if n == 0 {
                    return;
                }
                let s = writer.clone();
                let mut chunk = std::mem::take(&mut batch);
                let result = tokio::task::spawn_blocking(move || {
                    let r = s.append_events(&chunk);
                    chunk.clear();
                    r
                })
                .await;
                if let Ok(Err(e)) = result {
                    tracing::warn!(error = %e, "event log write failed");
                }
                // Let a burst gather into the next batch.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Self {
            tx,
            store,
            dropped,
            writes_derived: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Whether this node writes derived entries (see
    /// [`crate::cluster::leases`]: the first live node does).
    pub fn set_writes_derived(&self, on: bool) {
        self.writes_derived
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Queue an entry.
    pub fn record(&self, e: EventRecord) {
        if !self
            .writes_derived
            .load(std::sync::atomic::Ordering::Relaxed)
            && DERIVED_KINDS.contains(&e.kind.as_str())
        {
            return;
        }
        if self.tx.try_send(e).is_err() {
            self.dropped.inc();
        }
    }

    /// Entries queued for the writer, not yet written (at most 100,000;
    /// beyond that entries are dropped and counted).
    pub fn queued(&self) -> usize {
        QUEUE - self.tx.capacity()
    }

    /// Entries dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }

    /// Query (newest first).
    pub fn query(&self, q: &EventQuery) -> Result<Vec<EventRecord>, StoreError> {
        self.store.events(q)
    }

    /// Drop entries older than the retention.
    pub fn prune(&self, days: u32) {
        let cutoff = now_ms().saturating_sub(u64::from(days) * 86_400_000);
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = store.prune_events(cutoff) {
                tracing::warn!(error = %e, "event log retention failed");
            }
        });
    }
}
