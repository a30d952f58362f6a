//! Presence across the nodes of a cluster.
//!
//! The connectors this node runs report into a relay inbox. Its own
//! thread hands everything to this node's presence service at once, and
//! publishes the reports, endpoint states and directory pages to the
//! cluster log, one message per instance and pass, fenced by the
//! instance's lease. It then keeps the latest of each endpoint's channels
//! in the key-value namespace `#presence/<instance>`: a node that starts
//! reads those first, then follows the log from where it stood before
//! reading, so it shows every user's presence at once without a replay of
//! the whole log (applying a report twice changes nothing: presence is
//! state, and reports carry their source's order).
//!
//! Every node follows the log and applies what other nodes published to
//! its own presence service, so each node merges the same reports with the
//! same rules, and any node's feed serves every user.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::presence::{Inbox, Relayed};
use crate::store::{ClusterSignal, Coordination, KvWrite, Store, StoreError};
use crate::telemetry::ClusterCounters;
use crate::timing;

/// The cluster log's topic for presence.
pub const TOPIC: &str = "presence";

/// One message: what one instance reported in one pass, in order.
#[derive(Debug, Serialize, Deserialize)]
struct Batch {
    instance: String,
    items: Vec<Relayed>,
}

/// The key-value namespace holding the latest of an instance's endpoints.
pub fn namespace(instance: &str) -> String {
    format!("{}{instance}", crate::store::PRESENCE_NAMESPACE_PREFIX)
}

/// The keys an item is latest for: one per channel it carries.
fn latest_keys(item: &Relayed) -> Vec<String> {
    match item {
        Relayed::Report { report } => {
            let mut keys = Vec::new();
            for (has, channel) in [
                (report.telephony.is_some(), "telephony"),
                (report.rich.is_some(), "rich"),
                (report.calendar.is_some(), "calendar"),
            ] {
                if has {
                    keys.push(format!("{}\u{1f}{channel}", report.endpoint));
                }
            }
            keys
        }
        Relayed::State { endpoint, .. } => vec![format!("{endpoint}\u{1f}state")],
        // Connectors send their directory again when they start; a node
        // that joins sees it then.
        Relayed::Directory { .. } => Vec::new(),
    }
}

/// Start relaying: the connectors of this node report into the returned
/// inbox.
pub fn start(
    coord: Arc<dyn Coordination>,
    store: Arc<dyn Store>,
    local: Inbox,
    counters: ClusterCounters,
) -> std::io::Result<Inbox> {
    let relay = local.relay_inbox();
    let inbox = relay.clone();
    // Two threads: this node's presence never waits on the database, and
    // while one publication is in flight the next batch grows (fewer,
    // larger messages under load).
    let (tx, rx) = std::sync::mpsc::channel::<Vec<(Arc<str>, Relayed)>>();
    std::thread::Builder::new()
        .name("cluster-relay".into())
        .spawn(move || {
            while let Some(items) = relay.relay(Instant::now() + Duration::from_millis(500), &local)
            {
                if !items.is_empty() && tx.send(items).is_err() {
                    return;
                }
            }
        })?;
    std::thread::Builder::new()
        .name("cluster-publish".into())
        .spawn(move || {
            while let Ok(mut items) = rx.recv() {
                while let Ok(more) = rx.try_recv() {
                    items.extend(more);
                }
                publish(coord.as_ref(), store.as_ref(), items, &counters);
            }
        })?;
    Ok(inbox)
}

/// One instance's message (a [`Batch`]) and the latest value of each of
/// its keys. Each item is serialised once, for both: the message is
/// spelled out around the items' JSON.
fn encode(instance: &str, items: &[Relayed]) -> (String, BTreeMap<String, Vec<u8>>) {
    let mut latest: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut payload = format!(
        "{{\"instance\":{},\"items\":[",
        serde_json::to_string(instance).expect("strings serialise")
    );
    for (n, item) in items.iter().enumerate() {
        let value = serde_json::to_string(item).expect("relayed items serialise");
        if n > 0 {
            payload.push(',');
        }
        payload.push_str(&value);
        for key in latest_keys(item) {
            latest.insert(key, value.clone().into_bytes());
        }
    }
    payload.push_str("]}");
    (payload, latest)
}

fn publish(
    coord: &dyn Coordination,
    store: &dyn Store,
    items: Vec<(Arc<str>, Relayed)>,
    counters: &ClusterCounters,
) {
    // Latest wins, as in the presence inbox: an item every channel of which
    // a later item of the same endpoint carries changes nothing once that
    // one is applied, so it is not sent.
    let mut seen: std::collections::HashSet<(Arc<str>, String)> = Default::default();
    let mut kept = Vec::with_capacity(items.len());
    for (instance, item) in items.into_iter().rev() {
        let keys = latest_keys(&item);
        let mut newest = keys.is_empty();
        for k in keys {
            newest |= seen.insert((instance.clone(), k));
        }
        if newest {
            kept.push((instance, item));
        }
    }
    let mut by_instance: BTreeMap<Arc<str>, Vec<Relayed>> = BTreeMap::new();
    for (instance, item) in kept.into_iter().rev() {
        by_instance.entry(instance).or_default().push(item);
    }
    for (instance, items) in by_instance {
        let (payload, latest) = encode(&instance, &items);
        match coord.publish(TOPIC, Some(&instance), &payload) {
            Ok(_) => counters.published.inc(),
            // The store logged the refusal: another node runs it now.
            Err(StoreError::Fenced { .. }) => continue,
            Err(e) => {
                tracing::warn!(instance = %instance, error = %e, "presence not published to the other nodes; they see it with this connector's next report");
                continue;
            }
        };
        let writes: Vec<KvWrite> = latest
            .into_iter()
            .map(|(key, value)| KvWrite::Set { key, value })
            .collect();
        if let Err(e) = store.kv_write(&namespace(&instance), &writes) {
            tracing::warn!(instance = %instance, error = %e, "latest presence not kept for nodes that join later");
        }
    }
}

/// Follow the cluster log for as long as the hub runs: what other nodes'
/// connectors reported goes to this node's presence service. Starts with
/// the latest of every instance's endpoints.
pub fn follow(
    coord: Arc<dyn Coordination>,
    store: Arc<dyn Store>,
    local: Inbox,
    counters: ClusterCounters,
) {
    let me = coord.node_id().to_string();
    let mut signals = coord.subscribe();
    tokio::spawn(async move {
        let (c, s, l) = (coord.clone(), store.clone(), local.clone());
        let start = tokio::task::spawn_blocking(move || -> Result<i64, StoreError> {
            // Where the log stands before the latest is read: nothing
            // published in between is missed.
            let from = c.last_seq()?;
            for rec in s.connectors()? {
                let instance: Arc<str> = rec.id.as_str().into();
                for (_, value) in s.kv_all(&namespace(&rec.id))? {
                    if let Ok(item) = serde_json::from_slice::<Relayed>(&value) {
                        l.apply_relayed(&instance, item);
                    }
                }
            }
            Ok(from)
        })
        .await;
        let mut last = match start {
            Ok(Ok(seq)) => seq,
            other => {
                tracing::error!(error = ?other.err().map(|e| e.to_string()), "cannot read the cluster log: other nodes' presence is not shown here until a restart");
                return;
            }
        };
        loop {
            tokio::select! {
                signal = signals.recv() => match signal {
                    Ok(ClusterSignal::Changed { .. }) => continue,
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                _ = tokio::time::sleep(timing::CLUSTER_LOG_POLL) => {}
            }
            loop {
                let c = coord.clone();
                let read = tokio::task::spawn_blocking(move || c.messages_after(last, 1000)).await;
                let messages = match read {
                    Ok(Ok(m)) => m,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "cluster log read failed; trying again");
                        break;
                    }
                    Err(_) => return,
                };
                let full = messages.len() == 1000;
                for m in messages {
                    last = m.seq;
                    if m.origin == me || m.topic != TOPIC {
                        continue;
                    }
                    match serde_json::from_str::<Batch>(&m.payload) {
                        Ok(batch) => {
                            let instance: Arc<str> = batch.instance.as_str().into();
                            for item in batch.items {
                                local.apply_relayed(&instance, item);
                            }
                            counters.applied.inc();
                        }
                        Err(e) => {
                            tracing::warn!(seq = m.seq, origin = %m.origin, error = %e, "unreadable presence message from another node (a newer hub version?); skipped")
                        }
                    }
                }
                if !full {
                    break;
                }
            }
        }
    });
}

/// Drop log messages past `keep`, hourly (the latest state stays in the
/// key-value namespaces).
pub fn prune(coord: Arc<dyn Coordination>, keep: Duration) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        loop {
            every.tick().await;
            let c = coord.clone();
            let cutoff = crate::store::now_ms().saturating_sub(keep.as_millis() as u64);
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || c.prune_messages(cutoff)).await
            {
                tracing::warn!(error = %e, "cluster log retention failed");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{EndpointState, PresenceReport};

    #[test]
    fn a_message_spelled_out_is_the_batch_serde_writes() {
        let report: PresenceReport = serde_json::from_value(serde_json::json!({
            "endpoint": "sip:alice@example.com",
            "observed_at_ms": 5,
            "ordering": null,
            "origin": { "kind": "platform" },
            "telephony": null,
            "rich": null,
            "calendar": null,
            "valid_for_ms": null,
            "raw": [["note", "a \"quoted\" note"]]
        }))
        .expect("a report");
        let items = vec![
            Relayed::Report {
                report: Box::new(report),
            },
            Relayed::State {
                endpoint: "sip:bob@example.com".into(),
                state: EndpointState::Active,
                detail: Some("subscribed".into()),
            },
        ];
        let instance = "sip-\"1\"";
        let (payload, latest) = encode(instance, &items);
        let by_serde = serde_json::to_string(&Batch {
            instance: instance.into(),
            items: items.clone(),
        })
        .unwrap();
        assert_eq!(payload, by_serde);
        let back: Batch = serde_json::from_str(&payload).expect("a batch");
        assert_eq!(back.instance, instance);
        assert_eq!(back.items, items);
        assert_eq!(
            latest.keys().collect::<Vec<_>>(),
            vec!["sip:bob@example.com\u{1f}state"],
            "a report with no channel is latest for nothing"
        );
        assert!(encode("x", &[]).0 == r#"{"instance":"x","items":[]}"#);
    }
}
