//! The live feed's events and a client's subscription to them.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use prometheus_client::metrics::counter::Counter;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

use super::UserPresence;

/// One change, numbered.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
    /// Events taken from the source and folded, waiting to be sent.
    ready: VecDeque<Arc<FeedEvent>>,
    /// Counts events skipped because a newer one of the same user was
    /// waiting for this client too.
    folded: Option<Counter>,
    /// Events were lost to this client: it must resynchronise once what
    /// was taken before the gap is sent.
    gap: bool,
}

/// A client this many events behind gets, of what waits for it, only each
/// user's latest event: presence is state, and a slow console wants where
/// everyone is now, not every step in between.
pub const FOLD_AT: usize = 64;

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
            ready: VecDeque::new(),
            folded: None,
            gap: false,
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
            ready: VecDeque::new(),
            folded: None,
            gap: false,
        };
        (sub, routes)
    }

    /// Count events skipped for this client in `counter`.
    pub fn count_folded(mut self, counter: Counter) -> Self {
        self.folded = Some(counter);
        self
    }

    /// Wait for the next event this client follows, skipping those already
    /// covered by the snapshot or replay. When the client has fallen
    /// [`FOLD_AT`] events behind, what waits is folded to each user's
    /// latest event (still in sequence order, so resuming from any event
    /// sent stays exact: a skipped event is always followed by a newer
    /// one of its user).
    pub async fn next(&mut self) -> Next {
        loop {
            if let Some(ev) = self.ready.pop_front() {
                if ev.seq <= self.seq {
                    continue;
                }
                return Next::Event(ev);
            }
            let first = match self.recv().await {
                Ok(ev) => ev,
                Err(end) => return end,
            };
            if self.backlog() < FOLD_AT {
                self.ready.push_back(first);
                continue;
            }
            let mut waiting = vec![first];
            while let Some(ev) = self.try_recv() {
                waiting.push(ev);
            }
            let mut latest: HashMap<&str, u64> = HashMap::new();
            for ev in &waiting {
                latest.insert(ev.kind.username(), ev.seq);
            }
            let keep: Vec<Arc<FeedEvent>> = waiting
                .iter()
                .filter(|ev| latest.get(ev.kind.username()) == Some(&ev.seq))
                .cloned()
                .collect();
            if let Some(c) = &self.folded {
                c.inc_by((waiting.len() - keep.len()) as u64);
            }
            self.ready.extend(keep);
        }
    }

    fn backlog(&self) -> usize {
        match &self.source {
            Source::All(rx) => rx.len(),
            Source::Named { rx, .. } => rx.len(),
        }
    }

    /// The next event already waiting; a gap in the broadcast (the client
    /// fell a whole channel behind while draining) marks it lagged.
    fn try_recv(&mut self) -> Option<Arc<FeedEvent>> {
        match &mut self.source {
            Source::All(rx) => match rx.try_recv() {
                Ok(ev) => Some(ev),
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    self.gap = true;
                    None
                }
                Err(_) => None,
            },
            Source::Named { rx, .. } => rx.try_recv().ok(),
        }
    }

    async fn recv(&mut self) -> Result<Arc<FeedEvent>, Next> {
        if self.gap {
            return Err(Next::Lagged);
        }
        match &mut self.source {
            Source::All(rx) => match rx.recv().await {
                Ok(ev) => Ok(ev),
                Err(broadcast::error::RecvError::Lagged(_)) => Err(Next::Lagged),
                Err(broadcast::error::RecvError::Closed) => Err(Next::Closed),
            },
            Source::Named { rx, lagged, .. } => {
                if lagged.load(Ordering::Relaxed) {
                    return Err(Next::Lagged);
                }
                rx.recv().await.ok_or(Next::Closed)
            }
        }
    }
}
