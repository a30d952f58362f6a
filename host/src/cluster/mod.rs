//! One hub node of several sharing a PostgreSQL database.
//!
//! The database holds everything an operator sets, so every node serves
//! the same API. On top of it ([`crate::store::Coordination`]):
//! - [`leases`]: each connector instance runs on exactly one node, the
//!   holder of its lease; instances spread over the live nodes by
//!   rendezvous hashing, and a node that stops or dies has its instances
//!   taken by the others once its leases lapse;
//! - [`follow`]: a change an operator made on another node (plugins,
//!   connectors, users, notes, rules, tokens) is taken in here;
//! - [`relay`]: what the instances running here report goes to every node
//!   through the cluster log, so each node's presence service merges every
//!   user's presence and any node's feed serves it.

pub mod follow;
pub mod leases;
pub mod relay;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::runtime::InstanceStatus;
use crate::store::{Coordination, StoreError};

/// The instances this node holds, with the fence of each, and which node
/// runs each of the others (as of the last lease pass).
pub struct LeaseBook {
    node_id: String,
    coord: Arc<dyn Coordination>,
    held: RwLock<BTreeMap<String, i64>>,
    elsewhere: RwLock<BTreeMap<String, String>>,
    /// Where each live node's API answers.
    urls: RwLock<BTreeMap<String, String>>,
    /// What the last lease pass found: live nodes, and the runnable
    /// instances that belong on this node.
    share: RwLock<Share>,
    /// The status of each instance another node runs, as that node last
    /// stored it.
    statuses: RwLock<BTreeMap<String, InstanceStatus>>,
}

/// This node's share of a cluster's connector instances (`/readyz`).
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct Share {
    /// This node's id.
    pub node: String,
    /// Live nodes, this one included, by id.
    pub nodes: Vec<String>,
    /// Runnable instances that belong on this node (rendezvous hashing
    /// over the live nodes).
    pub belongs_here: Vec<String>,
    /// Instances this node runs.
    pub held: Vec<String>,
    /// Whether it runs every instance that belongs on it.
    pub holds_share: bool,
}

impl LeaseBook {
    pub fn new(coord: Arc<dyn Coordination>) -> Self {
        let node_id = coord.node_id().to_string();
        Self {
            coord,
            node_id: node_id.clone(),
            held: RwLock::default(),
            elsewhere: RwLock::default(),
            urls: RwLock::default(),
            statuses: RwLock::default(),
            share: RwLock::new(Share {
                node: node_id,
                ..Share::default()
            }),
        }
    }

    /// The status of `instance` as the node running it last stored it
    /// (within a lease check), when that is another node.
    pub fn status_elsewhere(&self, instance: &str) -> Option<InstanceStatus> {
        self.holder_elsewhere(instance)?;
        self.statuses
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(instance)
            .cloned()
    }

    fn set_statuses(&self, statuses: BTreeMap<String, InstanceStatus>) {
        *self.statuses.write().unwrap_or_else(|p| p.into_inner()) = statuses;
    }

    /// This node's share as of the last lease pass.
    pub fn share(&self) -> Share {
        let mut s = self.share.read().unwrap_or_else(|p| p.into_inner()).clone();
        s.held = self.held().into_keys().collect();
        s.holds_share = s.belongs_here.iter().all(|i| s.held.contains(i));
        s
    }

    fn set_share(&self, nodes: Vec<String>, belongs_here: Vec<String>) {
        let mut s = self.share.write().unwrap_or_else(|p| p.into_inner());
        s.nodes = nodes;
        s.belongs_here = belongs_here;
    }

    /// Check in the database, now, that this node still holds `instance`
    /// under its fence: what a write-back goes through before it reaches
    /// the plugin ([`StoreError::Fenced`] when another node holds it).
    pub async fn check_fence(&self, instance: &str) -> Result<(), StoreError> {
        let (coord, id) = (self.coord.clone(), instance.to_string());
        tokio::task::spawn_blocking(move || coord.check_fence(&id))
            .await
            .map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))?
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Whether this node holds `instance`.
    pub fn holds(&self, instance: &str) -> bool {
        self.held
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(instance)
    }

    /// The node that runs `instance` when it is not this one.
    pub fn holder_elsewhere(&self, instance: &str) -> Option<String> {
        self.elsewhere
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(instance)
            .cloned()
    }

    /// Where the node running `instance` answers, when it is another node.
    pub fn url_elsewhere(&self, instance: &str) -> Option<String> {
        self.url_of(&self.holder_elsewhere(instance)?)
    }

    /// Where live node `node` answers (its heartbeat's `api_url`, as of
    /// the last lease pass); None for a node not live.
    pub fn url_of(&self, node: &str) -> Option<String> {
        self.urls
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(node)
            .cloned()
    }

    fn set_urls(&self, urls: BTreeMap<String, String>) {
        *self.urls.write().unwrap_or_else(|p| p.into_inner()) = urls;
    }

    /// Held instances with their fences.
    pub fn held(&self) -> BTreeMap<String, i64> {
        self.held.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn hold(&self, instance: &str, fence: i64) {
        self.held
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(instance.to_string(), fence);
    }

    fn drop_held(&self, instance: &str) {
        self.held
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(instance);
    }

    /// Replace the map of instances held by other live nodes; returns the
    /// instances whose holder changed.
    fn set_elsewhere(&self, now: BTreeMap<String, String>) -> Vec<String> {
        let mut map = self.elsewhere.write().unwrap_or_else(|p| p.into_inner());
        let mut changed: Vec<String> = now
            .iter()
            .filter(|(k, v)| map.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .collect();
        changed.extend(map.keys().filter(|k| !now.contains_key(*k)).cloned());
        *map = now;
        changed
    }
}
