//! The live feed's events and a client's subscription to them.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

use super::UserPresence;

/// One change, numbered.
#[derive(Debug, Clone, Serialize)]
pub struct FeedEvent {
    pub seq: u64,
    #[serde(flatten)]
    pub kind: FeedKind,
    /// The JSON text, made once for all the clients that get this event.
    #[serde(skip)]
    json: OnceLock<String>,
}

impl FeedEvent {
    pub fn new(seq: u64, kind: FeedKind) -> Self {
        Self {
            seq,
            kind,
            json: OnceLock::new(),
        }
    }

    /// The event as JSON (as the feed sends it).
    pub fn json(&self) -> &str {
        self.json
            .get_or_init(|| serde_json::to_string(self).unwrap_or_default())
    }
}

/// What changed.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum FeedKind {
    /// A user's merged presence (or notes) changed.
    Presence(Arc<UserPresence>),
    /// A user was deleted.
    Removed { username: String },
}

impl FeedKind {
    /// The user this is about.
    pub fn username(&self) -> &str {
        match self {
            FeedKind::Presence(p) => &p.username,
            FeedKind::Removed { username } => username,
        }
    }

    /// Whether a client following `names` (None: everyone) wants this.
    pub fn concerns(&self, names: Option<&BTreeSet<String>>) -> bool {
        names.is_none_or(|s| s.contains(self.username()))
    }
}

/// How many events a client may fall behind before it is cut off (told to
/// resynchronise).
pub const CLIENT_BACKLOG: usize = 4096;

/// Where the events of one user go for one client that follows named
/// users. Clients that follow everyone share a broadcast channel instead;
/// routing the others by user means an event wakes only the clients that
/// follow its user, not every client.
pub struct Route {
    tx: mpsc::Sender<Arc<FeedEvent>>,
    lagged: Arc<AtomicBool>,
}

impl Route {
    /// Hand `ev` over; `false` when this route is finished (the client is
    /// gone, or fell too far behind and is marked for a resync).
    pub fn offer(&self, ev: &Arc<FeedEvent>) -> bool {
        match self.tx.try_send(ev.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.lagged.store(true, Ordering::Relaxed);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Where a subscription's live events come from.
enum Source {
    /// Everyone's events.
    All(broadcast::Receiver<Arc<FeedEvent>>),
    /// The events of the followed users only. The sender kept here keeps
    /// the channel open while no route exists (an empty `users` list).
    Named {
        rx: mpsc::Receiver<Arc<FeedEvent>>,
        lagged: Arc<AtomicBool>,
        _keep: mpsc::Sender<Arc<FeedEvent>>,
    },
}

/// A client's view of the feed: a snapshot (or the changes it missed), then
/// live changes.
pub struct Subscription {
    /// The sequence number the snapshot or replay is current to.
    pub seq: u64,
    /// Present when the client could not resume: everything it follows.
    pub snapshot: Option<Vec<Arc<UserPresence>>>,
    /// Changes after the client's `since`, when it could resume.
    pub replay: Vec<Arc<FeedEvent>>,
    source: Source,
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
    /// A subscription to everyone's events.
    pub fn all(
        seq: u64,
        snapshot: Option<Vec<Arc<UserPresence>>>,
        replay: Vec<Arc<FeedEvent>>,
        rx: broadcast::Receiver<Arc<FeedEvent>>,
    ) -> Self {
        Self {
            seq,
            snapshot,
            replay,
            source: Source::All(rx),
        }
    }

    /// A subscription to the events of `users` named users, and the route to
    /// give each of them.
    pub fn named(
        seq: u64,
        snapshot: Option<Vec<Arc<UserPresence>>>,
        replay: Vec<Arc<FeedEvent>>,
        users: usize,
    ) -> (Self, Vec<Route>) {
        let (tx, rx) = mpsc::channel(CLIENT_BACKLOG);
        let lagged = Arc::new(AtomicBool::new(false));
        let routes = (0..users)
            .map(|_| Route {
                tx: tx.clone(),
                lagged: lagged.clone(),
            })
            .collect();
        let sub = Self {
            seq,
            snapshot,
            replay,
            source: Source::Named {
                rx,
                lagged,
                _keep: tx,
            },
        };
        (sub, routes)
    }

    /// Wait for the next event this client follows, skipping those already
    /// covered by the snapshot or replay.
    pub async fn next(&mut self) -> Next {
        loop {
            match &mut self.source {
                Source::All(rx) => match rx.recv().await {
                    Ok(ev) if ev.seq <= self.seq => continue,
                    Ok(ev) => return Next::Event(ev),
                    Err(broadcast::error::RecvError::Lagged(_)) => return Next::Lagged,
                    Err(broadcast::error::RecvError::Closed) => return Next::Closed,
                },
                Source::Named { rx, lagged, .. } => {
                    if lagged.load(Ordering::Relaxed) {
                        return Next::Lagged;
                    }
                    match rx.recv().await {
                        Some(ev) if ev.seq <= self.seq => continue,
                        Some(ev) => return Next::Event(ev),
                        None => return Next::Closed,
                    }
                }
            }
        }
    }
}
