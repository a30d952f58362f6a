//! Which node runs each connector instance.
//!
//! Every [`timing::LEASE_CHECK`] a node renews its heartbeat and its
//! leases, then takes the runnable instances that rendezvous hashing
//! (highest random weight over the live nodes' ids) gives it and that
//! nobody holds, and hands back those it holds that now belong to a node
//! that has been up for [`timing::REBALANCE_SETTLE`]. An instance whose
//! lease lapsed and that its preferred node does not take (that node
//! cannot run its plugin, say) is taken by any node after one more lease
//! time. A lease this node can no longer renew stops the instance's run
//! here before anything else. Expiry is the database's clock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use super::LeaseBook;
use crate::runtime::Runtime;
use crate::store::{Coordination, KvWrite, Lease, NodeInfo, Store, StoreError};

/// The key-value namespace where each node stores the statuses of the
/// instances it runs (key: instance id; value: the status as the API
/// shows it).
const STATUS_NAMESPACE: &str = crate::store::STATUS_NAMESPACE;
use crate::telemetry::ClusterCounters;
use crate::timing;

/// The rendezvous weight of `node` for `instance`.
fn weight(node: &str, instance: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(node.as_bytes());
    h.update([0]);
    h.update(instance.as_bytes());
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().expect("32 bytes"))
}

/// The live node `instance` belongs on.
pub fn preferred<'a>(nodes: &'a [NodeInfo], instance: &str) -> Option<&'a str> {
    nodes
        .iter()
        .max_by_key(|n| (weight(&n.id, instance), n.id.as_str()))
        .map(|n| n.id.as_str())
}

/// What one pass decided; pure, so it can be tested without a database.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Instances to take (free, or their lease lapsed).
    pub acquire: Vec<String>,
    /// Instances held here to give back (not runnable any more, or they
    /// belong on another settled node).
    pub release: Vec<String>,
}

/// What a pass sees. `now_ms` is the database's clock (this node's last
/// heartbeat); `fallback` are instances this node took though another
/// node was preferred (never handed back to it, or they would flap);
/// `free_since` is when this node first saw each instance that nobody
/// has ever leased (a new one) free.
pub struct Seen<'a> {
    pub now_ms: u64,
    pub nodes: &'a [NodeInfo],
    pub runnable: &'a BTreeSet<String>,
    pub leases: &'a BTreeMap<String, Lease>,
    pub held: &'a BTreeSet<String>,
    pub fallback: &'a BTreeSet<String>,
    pub free_since: &'a BTreeMap<String, u64>,
}

/// Decide a pass of node `me`.
pub fn plan(me: &str, seen: &Seen<'_>) -> Plan {
    let Seen {
        now_ms,
        nodes,
        runnable,
        leases,
        held,
        fallback,
        free_since,
    } = *seen;
    let settle = timing::REBALANCE_SETTLE.as_millis() as u64;
    let ttl = timing::LEASE_TTL.as_millis() as u64;
    let mut out = Plan::default();
    for id in runnable {
        let Some(pref) = preferred(nodes, id) else {
            continue;
        };
        if held.contains(id) {
            let settled = nodes
                .iter()
                .any(|n| n.id == pref && n.started_at_ms + settle <= now_ms);
            if pref != me && settled && !fallback.contains(id) {
                out.release.push(id.clone());
            }
            continue;
        }
        let lapsed_for = match leases.get(id) {
            Some(l) if l.expires_at_ms > now_ms => continue,
            Some(l) => now_ms - l.expires_at_ms,
            None => now_ms.saturating_sub(free_since.get(id).copied().unwrap_or(now_ms)),
        };
        if pref == me || lapsed_for >= ttl {
            out.acquire.push(id.clone());
        }
    }
    out.release
        .extend(held.iter().filter(|id| !runnable.contains(*id)).cloned());
    out
}

/// The lease keeper of one node.
pub struct Keeper {
    coord: Arc<dyn Coordination>,
    store: Arc<dyn Store>,
    book: Arc<LeaseBook>,
    runtime: Arc<Runtime>,
    api_url: String,
    counters: ClusterCounters,
    /// A pass now (a connector was created or changed somewhere).
    poke: Arc<Notify>,
    fallback: std::sync::Mutex<BTreeSet<String>>,
    /// When this node first saw each never-leased instance free.
    free_since: std::sync::Mutex<BTreeMap<String, u64>>,
    /// The statuses this node last stored for the instances it runs.
    stored_statuses: std::sync::Mutex<BTreeMap<String, Vec<u8>>>,
    /// Told each pass whether this node is the first live one (by id):
    /// that node does the work one node does for all (the event log's
    /// derived entries).
    on_first: Box<dyn Fn(bool) + Send + Sync>,
}

impl Keeper {
    pub fn new(
        coord: Arc<dyn Coordination>,
        store: Arc<dyn Store>,
        book: Arc<LeaseBook>,
        runtime: Arc<Runtime>,
        api_url: String,
        counters: ClusterCounters,
        on_first: Box<dyn Fn(bool) + Send + Sync>,
    ) -> Arc<Self> {
        Arc::new(Self {
            coord,
            store,
            book,
            runtime,
            api_url,
            counters,
            poke: Arc::new(Notify::new()),
            fallback: Default::default(),
            free_since: Default::default(),
            stored_statuses: Default::default(),
            on_first,
        })
    }

    /// Ask for a pass now.
    pub fn poke(&self) {
        self.poke.notify_one();
    }

    /// Run passes until the hub stops.
    pub fn spawn(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = me.pass().await {
                    tracing::warn!(node = %me.coord.node_id(), error = %e, "lease pass failed; the next one tries again (leases lapse after {} s without renewal)", timing::LEASE_TTL.as_secs());
                }
                tokio::select! {
                    _ = tokio::time::sleep(timing::LEASE_CHECK) => {}
                    _ = me.poke.notified() => {}
                }
            }
        });
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Coordination) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let c = self.coord.clone();
        tokio::task::spawn_blocking(move || f(c.as_ref()))
            .await
            .map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))?
    }

    /// One pass: heartbeat, renew, plan, take and hand back.
    pub async fn pass(&self) -> Result<(), StoreError> {
        let me = self.coord.node_id().to_string();
        let url = self.api_url.clone();
        let nodes = self
            .blocking(move |c| c.heartbeat(&url, timing::LEASE_TTL))
            .await?;
        self.counters.nodes_alive.set(nodes.len() as i64);
        (self.on_first)(nodes.first().is_none_or(|n| n.id == me));
        self.book.set_urls(
            nodes
                .iter()
                .map(|n| (n.id.clone(), n.api_url.clone()))
                .collect(),
        );
        // Renew first: a lease this node lost stops its run here before
        // anything else happens.
        let held: Vec<(String, i64)> = self.book.held().into_iter().collect();
        let ask = held.clone();
        let renewed = self
            .blocking(move |c| c.renew_all(&ask, timing::LEASE_TTL))
            .await?;
        for (id, fence) in held.into_iter().filter(|(id, _)| !renewed.contains(id)) {
            tracing::warn!(instance = %id, node = %me, fence, "lease lost (it lapsed and another node took it): stopping the connector here");
            self.stop_here(&id).await;
            self.counters.leases_lost.inc();
        }
        // The database's clock now: this node's heartbeat holds until a
        // lease time from now.
        let now_ms = nodes
            .iter()
            .find(|n| n.id == me)
            .map(|n| {
                n.seen_at_ms
                    .saturating_sub(timing::LEASE_TTL.as_millis() as u64)
            })
            .unwrap_or_else(crate::store::now_ms);
        let leases: BTreeMap<String, Lease> = self
            .blocking(|c| c.leases())
            .await?
            .into_iter()
            .map(|l| (l.instance.clone(), l))
            .collect();
        // Who runs what elsewhere, for this node's views of those instances.
        let alive: BTreeSet<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
        let elsewhere: BTreeMap<String, String> = leases
            .values()
            .filter(|l| l.node != me && l.expires_at_ms > now_ms && alive.contains(l.node.as_str()))
            .map(|l| (l.instance.clone(), l.node.clone()))
            .collect();
        for id in self.book.set_elsewhere(elsewhere) {
            self.runtime.reannounce(&id).await;
        }
        let runnable: BTreeSet<String> = self.runtime.runnable().into_iter().collect();
        let held: BTreeSet<String> = self.book.held().into_keys().collect();
        let fallback = self
            .fallback
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let free_since = {
            let mut f = self.free_since.lock().unwrap_or_else(|p| p.into_inner());
            f.retain(|id, _| runnable.contains(id) && !leases.contains_key(id));
            for id in runnable.iter().filter(|id| !leases.contains_key(*id)) {
                f.entry(id.clone()).or_insert(now_ms);
            }
            f.clone()
        };
        let plan = plan(
            &me,
            &Seen {
                now_ms,
                nodes: &nodes,
                runnable: &runnable,
                leases: &leases,
                held: &held,
                fallback: &fallback,
                free_since: &free_since,
            },
        );
        self.book.set_share(
            nodes.iter().map(|n| n.id.clone()).collect(),
            runnable
                .iter()
                .filter(|i| preferred(&nodes, i) == Some(me.as_str()))
                .cloned()
                .collect(),
        );
        for id in plan.release {
            let fence = self.book.held().get(&id).copied();
            tracing::info!(instance = %id, node = %me, "handing the connector to the node it belongs on");
            self.stop_here(&id).await;
            if let Some(fence) = fence {
                let i = id.clone();
                self.blocking(move |c| c.release(&i, fence)).await?;
            }
        }
        let mut adopted = Vec::new();
        for id in plan.acquire {
            let i = id.clone();
            let Some(lease) = self
                .blocking(move |c| c.acquire(&i, timing::LEASE_TTL))
                .await?
            else {
                continue;
            };
            let previous = leases.get(&id).map(|l| l.node.clone());
            if preferred(&nodes, &id) != Some(me.as_str()) {
                self.fallback
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.clone());
            }
            self.coord.set_fence(&id, Some(lease.fence));
            self.book.hold(&id, lease.fence);
            if previous.as_deref().is_some_and(|p| p != me) {
                self.counters.takeovers.inc();
                tracing::info!(instance = %id, node = %me, fence = lease.fence, from = previous.as_deref().unwrap_or(""), "took over the connector's lease");
            } else {
                tracing::info!(instance = %id, node = %me, fence = lease.fence, "took the connector's lease");
            }
            adopted.push(id);
        }
        // Started together: a node taking over many instances starts them
        // at once, not one after another.
        let starts = adopted.iter().map(|id| async move {
            if let Err(e) = self.runtime.adopt(id).await {
                tracing::warn!(instance = %id, error = %e, "leased connector could not start here");
            }
        });
        futures::future::join_all(starts).await;
        self.share_statuses().await?;
        self.counters.leases_held.set(self.book.held().len() as i64);
        tracing::debug!(node = %me, nodes = nodes.len(), held = self.book.held().len(), "lease pass done");
        Ok(())
    }

    /// Store the statuses of the instances this node runs (those that
    /// changed), and read those of the others: every node's API shows
    /// every instance's status, within a lease check.
    async fn share_statuses(&self) -> Result<(), StoreError> {
        let mut writes = Vec::new();
        {
            let mut stored = self
                .stored_statuses
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let held = self.book.held();
            stored.retain(|id, _| held.contains_key(id));
            for id in held.keys() {
                let Ok(view) = self.runtime.connector_now(id) else {
                    continue;
                };
                let Some(status) = view.status else { continue };
                let value = serde_json::to_vec(&status).expect("statuses serialise");
                if stored.get(id) != Some(&value) {
                    stored.insert(id.clone(), value.clone());
                    writes.push(KvWrite::Set {
                        key: id.clone(),
                        value,
                    });
                }
            }
        }
        let store = self.store.clone();
        let all = tokio::task::spawn_blocking(move || {
            if !writes.is_empty() {
                store.kv_write(STATUS_NAMESPACE, &writes)?;
            }
            store.kv_all(STATUS_NAMESPACE)
        })
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))??;
        self.book.set_statuses(
            all.into_iter()
                .filter_map(|(id, v)| Some((id, serde_json::from_slice(&v).ok()?)))
                .collect(),
        );
        Ok(())
    }

    /// Stop `id`'s run here, then stop acting for it: the fence stays set
    /// until the run has stopped, so its last writes are still checked.
    async fn stop_here(&self, id: &str) {
        self.book.drop_held(id);
        self.fallback
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        self.runtime.relinquish(id).await;
        self.coord.set_fence(id, None);
    }

    /// A clean stop: runs were stopped by the runtime; give every lease
    /// back and leave, so other nodes take over at once.
    pub async fn leave(&self) {
        if let Err(e) = self.blocking(|c| c.leave()).await {
            tracing::warn!(error = %e, "could not leave the cluster cleanly; other nodes take over once the leases lapse");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, started_at_ms: u64) -> NodeInfo {
        NodeInfo {
            id: id.into(),
            api_url: String::new(),
            started_at_ms,
            seen_at_ms: 100_000,
        }
    }

    /// A pass with no instance new.
    fn plan7(
        me: &str,
        now_ms: u64,
        nodes: &[NodeInfo],
        runnable: &BTreeSet<String>,
        leases: &BTreeMap<String, Lease>,
        held: &BTreeSet<String>,
        fallback: &BTreeSet<String>,
    ) -> Plan {
        plan(
            me,
            &Seen {
                now_ms,
                nodes,
                runnable,
                leases,
                held,
                fallback,
                free_since: &BTreeMap::new(),
            },
        )
    }

    fn set(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rendezvous_spreads_instances_and_moves_few_when_a_node_goes() {
        let three = [node("a", 0), node("b", 0), node("c", 0)];
        let ids: Vec<String> = (0..300).map(|i| format!("conn-{i}")).collect();
        let mut per: BTreeMap<&str, usize> = BTreeMap::new();
        for id in &ids {
            *per.entry(preferred(&three, id).unwrap()).or_default() += 1;
        }
        assert_eq!(per.len(), 3);
        assert!(per.values().all(|n| *n > 60), "{per:?}");
        // Only c's instances move when c goes.
        let two = [node("a", 0), node("b", 0)];
        for id in &ids {
            let before = preferred(&three, id).unwrap();
            let after = preferred(&two, id).unwrap();
            if before != "c" {
                assert_eq!(before, after);
            }
        }
    }

    #[test]
    fn a_node_takes_its_free_instances_and_lapsed_ones_after_a_lease_time() {
        let nodes = [node("a", 0), node("b", 0)];
        let ids: Vec<String> = (0..40).map(|i| format!("i{i}")).collect();
        let runnable: BTreeSet<String> = ids.iter().cloned().collect();
        let none = BTreeMap::new();
        let p = plan7("a", 100_000, &nodes, &runnable, &none, &set(&[]), &set(&[]));
        let mine: BTreeSet<&String> = ids
            .iter()
            .filter(|i| preferred(&nodes, i) == Some("a"))
            .collect();
        // New instances: only those that belong here, not b's too.
        assert_eq!(p.acquire.iter().collect::<BTreeSet<_>>(), mine);
        // b's instance whose lease lapsed just now stays b's (b may be
        // slow); after a whole lease time, a takes it.
        let theirs = ids
            .iter()
            .find(|i| preferred(&nodes, i) == Some("b"))
            .unwrap()
            .clone();
        let lease = |expires_at_ms| {
            BTreeMap::from([(
                theirs.clone(),
                Lease {
                    instance: theirs.clone(),
                    node: "b".into(),
                    fence: 3,
                    expires_at_ms,
                },
            )])
        };
        let only: BTreeSet<String> = [theirs.clone()].into();
        let p = plan7(
            "a",
            100_000,
            &nodes,
            &only,
            &lease(99_000),
            &set(&[]),
            &set(&[]),
        );
        assert!(p.acquire.is_empty());
        let p = plan7(
            "a",
            100_000,
            &nodes,
            &only,
            &lease(90_000),
            &set(&[]),
            &set(&[]),
        );
        assert_eq!(p.acquire, vec![theirs.clone()]);
        // A new instance (never leased) is its preferred node's at first;
        // once this node has seen it free for a lease time, any node's.
        let new_since = BTreeMap::from([(theirs.clone(), 99_000)]);
        let none = BTreeMap::new();
        let p = plan(
            "a",
            &Seen {
                now_ms: 100_000,
                nodes: &nodes,
                runnable: &only,
                leases: &none,
                held: &set(&[]),
                fallback: &set(&[]),
                free_since: &new_since,
            },
        );
        assert!(p.acquire.is_empty());
        let new_since = BTreeMap::from([(theirs.clone(), 90_000)]);
        let p = plan(
            "a",
            &Seen {
                now_ms: 100_000,
                nodes: &nodes,
                runnable: &only,
                leases: &none,
                held: &set(&[]),
                fallback: &set(&[]),
                free_since: &new_since,
            },
        );
        assert_eq!(p.acquire, vec![theirs.clone()]);
        // A live lease is never taken.
        let p = plan7(
            "a",
            100_000,
            &nodes,
            &only,
            &lease(105_000),
            &set(&[]),
            &set(&[]),
        );
        assert!(p.acquire.is_empty());
    }

    #[test]
    fn held_instances_go_back_to_a_settled_preferred_node_unless_taken_as_fallback() {
        let ids: Vec<String> = (0..40).map(|i| format!("i{i}")).collect();
        let nodes = [node("a", 0), node("b", 95_000)];
        let theirs = ids
            .iter()
            .find(|i| preferred(&nodes, i) == Some("b"))
            .unwrap()
            .clone();
        let only: BTreeSet<String> = [theirs.clone()].into();
        let held = only.clone();
        let none = BTreeMap::new();
        // b joined 5 s ago: not settled, a keeps it.
        let p = plan7("a", 100_000, &nodes, &only, &none, &held, &set(&[]));
        assert!(p.release.is_empty());
        // Settled: a hands it over.
        let p = plan7("a", 106_000, &nodes, &only, &none, &held, &set(&[]));
        assert_eq!(p.release, vec![theirs.clone()]);
        // Taken as a fallback: kept.
        let p = plan7("a", 106_000, &nodes, &only, &none, &held, &held);
        assert!(p.release.is_empty());
        // Deleted or disabled: released.
        let p = plan7("a", 106_000, &nodes, &set(&[]), &none, &held, &set(&[]));
        assert_eq!(p.release, vec![theirs]);
    }
}
