//! The presence service's inbox: what connectors report and what operators
//! ask, queued for the one task that owns presence state.
//!
//! Senders only convert and enqueue: a guest's `report.*` import takes this
//! inbox's lock for the time of a hash-map insert and never waits for the
//! presence work, so host work never counts against a plugin's CPU
//! deadline. Presence is state, so the latest value per endpoint wins: a
//! report still queued loses each channel (telephony, rich, calendar) that a
//! later report of the same endpoint carries, and goes when it has none
//! left (counted). At most one queued report per channel remains, which
//! bounds the queue by the number of endpoints, not by the rate; the
//! service then applies what remains in order, exactly as it would have
//! applied every report.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use crate::engine::sync::WriteResult;
use crate::engine::users::Channel;
use crate::engine::{DirectoryEntry, EndpointState, PresenceReport};
use crate::store::now_ms;
use crate::telemetry::PresenceCounters;

use super::command::Command;

/// Most distinct endpoints waiting at once; reports beyond it are dropped
/// and counted (a plugin reporting endless new endpoints cannot grow the
/// hub's memory).
const MAX_PENDING_ENDPOINTS: usize = 1_000_000;
/// Most directory pages and log entries waiting at once.
const MAX_PENDING_EVENTS: usize = 100_000;

/// A connector instance as the presence service needs to know it; the
/// runtime sends one whenever any of it changes.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceInfo {
    pub id: String,
    /// The plugin id (the "technology" of the instance's reports).
    pub plugin: String,
    /// Enabled and its run is starting, running or restarting.
    pub running: bool,
    /// The user attributes the plugin can watch, with the channel each
    /// feeds; the first is the default.
    pub endpoint_kinds: Vec<(String, Channel)>,
    /// Endpoints the operator asked the instance to watch for no user.
    pub operator_watches: Vec<String>,
    /// Bumped whenever a new actor takes the instance: its watch set must
    /// then be sent whole.
    pub incarnation: u64,
    /// The channels the plugin can write (its capabilities): where the
    /// sync can hold do-not-disturb.
    pub writes_rich: bool,
    pub writes_telephony: bool,
}

/// What a connector's reports about one endpoint left waiting.
#[derive(Debug, Default)]
pub(super) struct Pending {
    /// Reports in arrival order with when each was received (ms since the
    /// epoch); no channel appears in two of them.
    pub reports: Vec<(PresenceReport, u64)>,
    /// The latest watch state, with when it was received.
    pub state: Option<(EndpointState, Option<String>, u64)>,
}

impl Pending {
    /// Queue `later` behind what waits. Each channel it carries is taken
    /// from the earlier reports, and a report left with no channel goes:
    /// applying what remains in order ends where applying every report
    /// would. Returns how many queued reports went; a report older than the
    /// latest queued one (by sequence, within an epoch) is not queued, as
    /// the board would not take it either.
    fn push(&mut self, later: PresenceReport, at_ms: u64) -> u64 {
        if let Some((last, _)) = self.reports.last()
            && let (Some(new), Some(old)) = (&later.ordering, &last.ordering)
            && new.epoch == old.epoch
            && new.sequence < old.sequence
        {
            return 0;
        }
        for (r, _) in &mut self.reports {
            if later.telephony.is_some() {
                r.telephony = None;
            }
            if later.rich.is_some() {
                r.rich = None;
            }
            if later.calendar.is_some() {
                r.calendar = None;
            }
        }
        let before = self.reports.len();
        self.reports
            .retain(|(r, _)| r.telephony.is_some() || r.rich.is_some() || r.calendar.is_some());
        let gone = (before - self.reports.len()) as u64;
        self.reports.push((later, at_ms));
        gone
    }
}

/// Messages that keep their order.
pub(super) enum Event {
    /// Reports queued before the event that follows (taken out of the
    /// per-endpoint queue so that they are applied before it).
    Reports(HashMap<(Arc<str>, String), Pending>),
    Instance(InstanceInfo),
    InstanceRemoved(String),
    Running(String, bool),
    Directory {
        instance: Arc<str>,
        entries: Vec<DirectoryEntry>,
        first_page: bool,
        /// The last page: the directory is whole.
        complete: bool,
    },
    /// A decision or outcome for the event log, about an endpoint's user.
    Decision {
        instance: Arc<str>,
        endpoint: Option<String>,
        kind: &'static str,
        detail: String,
    },
    /// What became of a write-back (the sync engine's, or anyone's: the
    /// service looks it up by id).
    WriteSettled {
        id: u64,
        result: WriteResult,
    },
    Command(Command),
}

#[derive(Default)]
pub(super) struct Queue {
    pub endpoints: HashMap<(Arc<str>, String), Pending>,
    pub events: VecDeque<Event>,
    pub closed: bool,
}

pub(super) struct Shared {
    /// Nobody reads this inbox (a plugin's description probe): drop all.
    detached: bool,
    queue: Mutex<Queue>,
    ready: Condvar,
    pub counters: PresenceCounters,
}

/// Where connectors and operators send to the presence service. Cheap to
/// clone; every method returns at once.
#[derive(Clone)]
pub struct Inbox(pub(super) Arc<Shared>);

impl Inbox {
    pub(super) fn new(counters: PresenceCounters) -> Self {
        Self::with(false, counters)
    }

    /// An inbox nobody reads: everything sent is dropped (a plugin's
    /// description probe, a benchmark of the plugin alone).
    pub fn detached() -> Self {
        Self::with(true, PresenceCounters::default())
    }

    fn with(detached: bool, counters: PresenceCounters) -> Self {
        Self(Arc::new(Shared {
            detached,
            queue: Mutex::default(),
            ready: Condvar::new(),
            counters,
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.0.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The inbox's counters.
    pub fn counters(&self) -> &PresenceCounters {
        &self.0.counters
    }

    fn pending(&self, instance: &Arc<str>, endpoint: String, f: impl FnOnce(&mut Pending)) {
        let c = &self.0.counters;
        c.received.inc();
        if self.0.detached {
            return;
        }
        let mut q = self.lock();
        let full = q.endpoints.len() >= MAX_PENDING_ENDPOINTS;
        let key = (instance.clone(), endpoint);
        let was_empty = q.endpoints.is_empty() && q.events.is_empty();
        match q.endpoints.get_mut(&key) {
            Some(p) => f(p),
            None if full => {
                c.dropped.inc();
                return;
            }
            None => f(q.endpoints.entry(key).or_default()),
        }
        drop(q);
        if was_empty {
            self.0.ready.notify_one();
        }
    }

    /// A connector's presence report (RFC 3863 PIDF, dialog-info, Graph
    /// presence... already normalized).
    pub fn report(&self, instance: &Arc<str>, report: PresenceReport) {
        let endpoint = report.endpoint.clone();
        let now = now_ms();
        let counters = &self.0.counters;
        self.pending(instance, endpoint, |p| {
            counters.coalesced.inc_by(p.push(report, now));
        });
    }

    /// A connector's watch state of an endpoint (RFC 6665 subscription
    /// state, or its equivalent).
    pub fn endpoint_state(
        &self,
        instance: &Arc<str>,
        endpoint: String,
        state: EndpointState,
        detail: Option<String>,
    ) {
        let now = now_ms();
        self.pending(instance, endpoint, |p| {
            p.state = Some((state, detail, now));
        });
    }

    fn push(&self, event: Event, droppable: bool) {
        if self.0.detached {
            return;
        }
        let mut q = self.lock();
        if droppable && q.events.len() >= MAX_PENDING_EVENTS {
            self.0.counters.dropped.inc();
            return;
        }
        let was_empty = q.endpoints.is_empty() && q.events.is_empty();
        // An instance change or a command sees every report sent before it,
        // and no report sent after it.
        let barrier = !matches!(event, Event::Decision { .. } | Event::Directory { .. });
        if barrier && !q.endpoints.is_empty() {
            let before = std::mem::take(&mut q.endpoints);
            q.events.push_back(Event::Reports(before));
        }
        q.events.push_back(event);
        drop(q);
        if was_empty {
            self.0.ready.notify_one();
        }
    }

    /// A page of an instance's directory; the first page replaces it,
    /// the `complete` one ends it.
    pub fn directory(
        &self,
        instance: &Arc<str>,
        entries: Vec<DirectoryEntry>,
        first_page: bool,
        complete: bool,
    ) {
        self.push(
            Event::Directory {
                instance: instance.clone(),
                entries,
                first_page,
                complete,
            },
            false,
        );
    }

    /// A decision or outcome worth the event log that changes no presence
    /// (a write's outcome); `kind` is the event log's kind.
    pub fn decision(
        &self,
        instance: &Arc<str>,
        endpoint: Option<String>,
        kind: &'static str,
        detail: String,
    ) {
        self.push(
            Event::Decision {
                instance: instance.clone(),
                endpoint,
                kind,
                detail,
            },
            true,
        );
    }

    /// An instance was created or changed.
    pub fn instance(&self, info: InstanceInfo) {
        self.push(Event::Instance(info), false);
    }

    /// A write-back was settled. Ordered with the reports: an echo the
    /// plugin reported before the outcome is applied first.
    pub fn write_settled(&self, id: u64, result: WriteResult) {
        // Never dropped: the sync would wait for it forever.
        self.push(Event::WriteSettled { id, result }, false);
    }

    /// An instance was deleted: its observations go with it.
    pub fn instance_removed(&self, id: &str) {
        self.push(Event::InstanceRemoved(id.to_string()), false);
    }

    /// An instance's run started or ended.
    pub fn running(&self, id: &str, running: bool) {
        self.push(Event::Running(id.to_string(), running), false);
    }

    pub(super) fn command(&self, c: Command) {
        self.push(Event::Command(c), false);
    }

    /// Stop the presence service (its task ends after the queue drains).
    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.0.ready.notify_one();
    }

    /// Wait until something is queued or `until` passes; take everything.
    pub(super) fn take(&self, until: Instant) -> Queue {
        let mut q = self.lock();
        while q.endpoints.is_empty() && q.events.is_empty() && !q.closed {
            let now = Instant::now();
            if now >= until {
                break;
            }
            q = self
                .0
                .ready
                .wait_timeout(q, until - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let closed = q.closed;
        let mut taken = std::mem::take(&mut *q);
        taken.closed = closed;
        q.closed = closed;
        taken
    }
}

/// A connector's report as it crosses from the node that runs the
/// connector to the others (see [`crate::cluster::relay`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Relayed {
    Report {
        report: Box<PresenceReport>,
    },
    State {
        endpoint: String,
        state: EndpointState,
        detail: Option<String>,
    },
    Directory {
        entries: Vec<DirectoryEntry>,
        first_page: bool,
        /// The last page (a directory sync reads only a whole directory).
        #[serde(default)]
        complete: bool,
    },
}

impl Inbox {
    /// A second inbox whose queue a relay drains with [`Inbox::relay`]
    /// instead of the presence service (a cluster node's connectors report
    /// into it). It counts into the same counters.
    pub fn relay_inbox(&self) -> Inbox {
        Self::with(false, self.0.counters.clone())
    }

    /// Take what waits in this relay inbox (waiting until something does
    /// or `until` passes), hand all of it to `local` in order, and return
    /// what other nodes must apply too: reports, endpoint states and
    /// directory pages, by instance, in order. `None` once closed.
    pub fn relay(&self, until: Instant, local: &Inbox) -> Option<Vec<(Arc<str>, Relayed)>> {
        let q = self.take(until);
        let mut out = Vec::new();
        fn reports(
            local: &Inbox,
            pending: HashMap<(Arc<str>, String), Pending>,
            out: &mut Vec<(Arc<str>, Relayed)>,
        ) {
            for ((instance, endpoint), p) in pending {
                for (report, _) in p.reports {
                    local.report(&instance, report.clone());
                    out.push((
                        instance.clone(),
                        Relayed::Report {
                            report: Box::new(report),
                        },
                    ));
                }
                if let Some((state, detail, _)) = p.state {
                    local.endpoint_state(&instance, endpoint.clone(), state, detail.clone());
                    out.push((
                        instance.clone(),
                        Relayed::State {
                            endpoint,
                            state,
                            detail,
                        },
                    ));
                }
            }
        }
        for ev in q.events {
            match ev {
                Event::Reports(pending) => reports(local, pending, &mut out),
                Event::Directory {
                    instance,
                    entries,
                    first_page,
                    complete,
                } => {
                    local.directory(&instance, entries.clone(), first_page, complete);
                    out.push((
                        instance,
                        Relayed::Directory {
                            entries,
                            first_page,
                            complete,
                        },
                    ));
                }
                Event::Instance(info) => local.instance(info),
                Event::InstanceRemoved(id) => local.instance_removed(&id),
                Event::Running(id, running) => local.running(&id, running),
                Event::Decision {
                    instance,
                    endpoint,
                    kind,
                    detail,
                } => local.decision(&instance, endpoint, kind, detail),
                Event::WriteSettled { id, result } => local.write_settled(id, result),
                Event::Command(c) => local.command(c),
            }
        }
        reports(local, q.endpoints, &mut out);
        (!q.closed).then_some(out)
    }

    /// Apply what another node's connector reported.
    pub fn apply_relayed(&self, instance: &Arc<str>, item: Relayed) {
        match item {
            Relayed::Report { report } => self.report(instance, *report),
            Relayed::State {
                endpoint,
                state,
                detail,
            } => self.endpoint_state(instance, endpoint, state, detail),
            Relayed::Directory {
                entries,
                first_page,
                complete,
            } => self.directory(instance, entries, first_page, complete),
        }
    }

    /// Stop a relay inbox: [`Inbox::relay`] answers `None` once drained.
    pub fn close_relay(&self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{
        Availability, EndpointView, LineState, ReportOrdering, RichPresence, TelephonyPresence,
        TelephonySource, UpdateOrigin,
    };

    fn report(seq: u64, line: Option<LineState>, rich: Option<Availability>) -> PresenceReport {
        PresenceReport {
            endpoint: "a".into(),
            observed_at_ms: None,
            ordering: Some(ReportOrdering {
                epoch: String::new(),
                sequence: seq,
            }),
            origin: UpdateOrigin::Platform,
            calendar: None,
            valid_for_ms: None,
            telephony: line.map(|line| TelephonyPresence {
                line,
                do_not_disturb: false,
                forward: None,
                source: TelephonySource::PbxLine,
            }),
            rich: rich.map(|availability| RichPresence {
                availability,
                activity: None,
                note: None,
            }),
            raw: vec![],
        }
    }

    /// The view after `start`, then `reports` one by one; and after `start`,
    /// then what the queue keeps of them.
    fn both_ways(
        start: &[PresenceReport],
        reports: &[PresenceReport],
    ) -> (EndpointView, EndpointView, u64) {
        let mut one_by_one = EndpointView::default();
        for r in start.iter().chain(reports) {
            one_by_one.apply_report(r.clone(), 5);
        }
        let mut queued = EndpointView::default();
        for r in start {
            queued.apply_report(r.clone(), 5);
        }
        let mut p = Pending::default();
        let gone: u64 = reports.iter().map(|r| p.push(r.clone(), 5)).sum();
        assert!(p.reports.len() <= 3, "at most one report per channel waits");
        for (r, at) in p.reports {
            queued.apply_report(r, at);
        }
        // Folding takes in fewer reports; what they leave is the same.
        one_by_one.updates = 0;
        queued.updates = 0;
        (one_by_one, queued, gone)
    }

    #[test]
    fn what_the_queue_keeps_ends_where_every_report_would() {
        use Availability::*;
        use LineState::*;
        let cases: Vec<(Vec<PresenceReport>, Vec<PresenceReport>)> = vec![
            // Many changes of both channels.
            (
                vec![],
                (1..=50)
                    .map(|i| {
                        report(
                            i,
                            (i % 3 == 0).then_some(if i % 2 == 0 { InCall } else { Idle }),
                            (i % 3 != 0).then_some(if i % 2 == 0 { Busy } else { Away }),
                        )
                    })
                    .collect(),
            ),
            // A late retry older than what the board holds, then a newer
            // report of another channel: the retry must stay refused.
            (
                vec![report(10, Some(Idle), None)],
                vec![report(9, Some(InCall), None), report(11, None, Some(Busy))],
            ),
            // A newer report, then an older one (refused in the queue too).
            (
                vec![],
                vec![
                    report(5, Some(InCall), Some(Busy)),
                    report(4, Some(Idle), None),
                ],
            ),
        ];
        for (start, reports) in cases {
            let (a, b, _) = both_ways(&start, &reports);
            assert_eq!(a, b, "start {start:?}, reports {reports:?}");
        }
        let (_, _, gone) = both_ways(
            &[],
            &(1..=20)
                .map(|i| report(i, None, Some(Busy)))
                .collect::<Vec<_>>(),
        );
        assert_eq!(gone, 19, "each superseded report is counted");
    }
}
