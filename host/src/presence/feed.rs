//! The live feed's events and a client's subscription to them.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::broadcast;

use super::UserPresence;

/// One change, numbered.
#[derive(Debug, Clone, Serialize)]
pub struct FeedEvent {
    pub seq: u64,
    #[serde(flatten)]
    pub kind: FeedKind,
}

/// What changed.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum FeedKind {
    /// A user's merged presence (or notes) changed.
    Presence(Box<UserPresence>),
    /// A user was deleted.
    Removed { username: String },
}

impl FeedKind {
    /// Whether a client following `names` (None: everyone) wants this.
    pub fn concerns(&self, names: Option<&BTreeSet<String>>) -> bool {
        let user = match self {
            FeedKind::Presence(p) => &p.username,
            FeedKind::Removed { username } => username,
        };
        names.is_none_or(|s| s.contains(user))
    }
}

/// A client's view of the feed: a snapshot (or the changes it missed), then
/// live changes.
pub struct Subscription {
    /// The sequence number the snapshot or replay is current to.
    pub seq: u64,
    /// Present when the client could not resume: everything it follows.
    pub snapshot: Option<Vec<UserPresence>>,
    /// Changes after the client's `since`, when it could resume.
    pub replay: Vec<Arc<FeedEvent>>,
    pub names: Option<BTreeSet<String>>,
    pub rx: broadcast::Receiver<Arc<FeedEvent>>,
}

/// The next live event for this client, or why it ends.
pub enum Next {
    Event(Arc<FeedEvent>),
    /// The client fell behind; it must reconnect (and will get a snapshot or
    /// a replay).
    Lagged,
    Closed,
}

impl Subscription {
    /// Wait for the next event this client follows, skipping those already
    /// covered by the snapshot or replay.
    pub async fn next(&mut self) -> Next {
        loop {
            match self.rx.recv().await {
                Ok(ev) if ev.seq <= self.seq => continue,
                Ok(ev) if !ev.kind.concerns(self.names.as_ref()) => continue,
                Ok(ev) => return Next::Event(ev),
                Err(broadcast::error::RecvError::Lagged(_)) => return Next::Lagged,
                Err(broadcast::error::RecvError::Closed) => return Next::Closed,
            }
        }
    }
}
