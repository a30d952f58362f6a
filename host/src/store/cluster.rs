//! What several hub nodes sharing one database coordinate through it:
//! which nodes are alive, which node runs each connector instance (a lease
//! with a fencing token), and an ordered log of messages every node reads
//! (presence reports, connector statuses), with a wake-up on every message
//! and on every change of what an operator sets.
//!
//! Only a shared database implements it (PostgreSQL, [`super::PostgresStore`]);
//! the embedded SQLite hub is a cluster of one and needs none of it.
//!
//! Fencing (Kleppmann, "How to do distributed locking", 2016): every grant
//! of a lease carries a fence one higher than any before it for that
//! instance. A node acts for an instance under the fence it was granted;
//! the database refuses its kv writes and published messages once a higher
//! fence has been granted to another node, so a node that was paused or cut
//! off past its lease cannot act for an instance another node now runs.

use std::time::Duration;

use super::StoreError;

/// A hub node as the database last saw it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct NodeInfo {
    pub id: String,
    /// Where this node's API answers, as it announced it (for operators).
    pub api_url: String,
    pub started_at_ms: u64,
    /// Until when the node's last heartbeat holds (database clock, ms
    /// since the Unix epoch): its heartbeat time plus the lease time.
    pub seen_at_ms: u64,
}

/// Who runs a connector instance, and under which fence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Lease {
    pub instance: String,
    pub node: String,
    /// Strictly increasing per instance over all grants.
    pub fence: i64,
    /// Database clock, ms since the Unix epoch.
    pub expires_at_ms: u64,
}

/// One entry of the cluster log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMessage {
    /// Increasing in commit order as readers see it (see
    /// [`Coordination::messages_after`]).
    pub seq: i64,
    /// The node that published it.
    pub origin: String,
    pub topic: String,
    pub payload: String,
    pub at_ms: u64,
}

/// A wake-up from the database, on any node's commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterSignal {
    /// A message was published (read it with `messages_after`).
    Message { seq: i64 },
    /// Something an operator sets changed: `table` is one of `plugins`,
    /// `connectors`, `users`, `notes`, `tokens`, `settings`.
    Changed { table: String, origin: String },
    /// The notification connection was lost and is back: anything may have
    /// been missed, so re-read everything.
    Reconnected,
}

/// Coordination through a shared database. All calls block (like
/// [`super::Store`]'s) and use the database's clock for expiry, never the
/// node's.
pub trait Coordination: Send + Sync + 'static {
    /// This node's id (`node_id` / `HUB_NODE_ID`, or generated at start).
    fn node_id(&self) -> &str;

    /// Mark this node alive until now + `ttl`, and return the nodes alive
    /// now (this one included), ordered by id.
    fn heartbeat(&self, api_url: &str, ttl: Duration) -> Result<Vec<NodeInfo>, StoreError>;

    /// A clean stop: this node's heartbeat and leases go at once, so other
    /// nodes take its instances without waiting for expiry.
    fn leave(&self) -> Result<(), StoreError>;

    /// Every lease, live or expired, ordered by instance.
    fn leases(&self) -> Result<Vec<Lease>, StoreError>;

    /// Take `instance` for this node when nobody holds an unexpired lease
    /// on it, with a fence one higher than the last granted; `None` when
    /// another node holds it.
    fn acquire(&self, instance: &str, ttl: Duration) -> Result<Option<Lease>, StoreError>;

    /// Extend this node's lease granted under `fence`; `false` when it is
    /// no longer this node's (taken by another after expiry, or released).
    fn renew(&self, instance: &str, fence: i64, ttl: Duration) -> Result<bool, StoreError>;

    /// [`Coordination::renew`] for every `(instance, fence)` this node
    /// holds, at once; returns the instances whose lease was extended (the
    /// others are no longer this node's). A store answers it in one round
    /// trip where it can, so a node holding many instances renews them in
    /// one statement per lease check.
    fn renew_all(
        &self,
        held: &[(String, i64)],
        ttl: Duration,
    ) -> Result<std::collections::BTreeSet<String>, StoreError> {
        let mut renewed = std::collections::BTreeSet::new();
        for (instance, fence) in held {
            if self.renew(instance, *fence, ttl)? {
                renewed.insert(instance.clone());
            }
        }
        Ok(renewed)
    }

    /// Give the lease up (a no-op when it is no longer this node's).
    fn release(&self, instance: &str, fence: i64) -> Result<(), StoreError>;

    /// The fence this node acts under for `instance`, or `None` to stop
    /// acting for it. While a fence is set, the store's kv writes for the
    /// instance, and messages published for it, are checked against the
    /// lease table in their own transaction and refused with
    /// [`StoreError::Fenced`] when the lease holds another fence.
    fn set_fence(&self, instance: &str, fence: Option<i64>);

    /// `Ok` when this node still holds `instance` under its fence (checked
    /// in the database now); [`StoreError::Fenced`] otherwise.
    fn check_fence(&self, instance: &str) -> Result<(), StoreError>;

    /// Append to the cluster log and wake every node. With `instance`, the
    /// append is fenced like a kv write. Returns the message's seq.
    fn publish(
        &self,
        topic: &str,
        instance: Option<&str>,
        payload: &str,
    ) -> Result<i64, StoreError>;

    /// Messages with seq > `after`, oldest first, at most `limit`. A reader
    /// that remembers the last seq it read sees every message exactly once,
    /// in order, even when commits interleave.
    fn messages_after(&self, after: i64, limit: usize) -> Result<Vec<ClusterMessage>, StoreError>;

    /// The seq of the newest message (0 when none).
    fn last_seq(&self) -> Result<i64, StoreError>;

    /// Drop messages older than `older_than_ms`; returns how many.
    fn prune_messages(&self, older_than_ms: u64) -> Result<usize, StoreError>;

    /// Wake-ups from every node's commits (this node's too).
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<ClusterSignal>;
}
