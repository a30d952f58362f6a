//! The presence state built from connectors' reports.
//!
//! Pure and I/O free: the runtime converts each report to the normalized model
//! below and hands it here. This first part keeps, per connector instance and
//! endpoint, the latest telephony and rich presence with the source's raw
//! values, the endpoint's watch state, and the instance's reported status.

pub mod merge;
mod model;
pub mod users;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

pub use model::*;
pub use users::valid_attribute_name;

/// The latest observations of every instance.
#[derive(Default)]
pub struct Board {
    instances: Mutex<BTreeMap<String, InstanceBoard>>,
    /// Counts directory changes (and instance removals).
    directories: AtomicU64,
}

/// What one connector instance reported.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct InstanceBoard {
    pub endpoints: BTreeMap<String, EndpointView>,
    pub directory: Vec<DirectoryEntry>,
}

impl Board {
    /// Record a presence report; channels the report leaves out keep their
    /// last value. Reports older than the last one (by the source's sequence
    /// number) are ignored and `false` is returned.
    pub fn presence(&self, instance: &str, report: PresenceReport, now_ms: u64) -> bool {
        let mut all = self.instances.lock().unwrap_or_else(|p| p.into_inner());
        let ep = all
            .entry(instance.to_owned())
            .or_default()
            .endpoints
            .entry(report.endpoint.clone())
            .or_default();
        // Sequences compare only within one epoch; a new epoch (a new
        // subscription) starts a new order.
        if let (Some(new), Some(old)) = (&report.ordering, &ep.ordering)
            && new.epoch == old.epoch
            && new.sequence < old.sequence
        {
            return false;
        }
        if report.telephony.is_some() {
            ep.telephony = report.telephony;
        }
        if report.rich.is_some() {
            ep.rich = report.rich;
        }
        if let Some(c) = report.calendar {
            ep.calendar = Some(c.masked());
        }
        ep.ordering = report.ordering.or(ep.ordering.take());
        ep.valid_until_ms = report.valid_for_ms.map(|v| now_ms.saturating_add(v));
        ep.origin = report.origin;
        ep.observed_at_ms = Some(report.observed_at_ms.unwrap_or(now_ms));
        ep.received_at_ms = Some(now_ms);
        ep.raw = report.raw;
        true
    }

    /// Record an endpoint's watch state; `false` when it was that already
    /// (same state and detail: only the time is updated).
    pub fn endpoint_state(
        &self,
        instance: &str,
        endpoint: &str,
        state: EndpointState,
        detail: Option<String>,
        now_ms: u64,
    ) -> bool {
        let mut all = self.instances.lock().unwrap_or_else(|p| p.into_inner());
        let ep = all
            .entry(instance.to_owned())
            .or_default()
            .endpoints
            .entry(endpoint.to_owned())
            .or_default();
        let changed = ep.state != Some(state) || ep.state_detail != detail;
        ep.state = Some(state);
        ep.state_detail = detail;
        ep.state_at_ms = Some(now_ms);
        changed
    }

    /// Replace (first page) or extend the instance's directory.
    pub fn directory(&self, instance: &str, entries: Vec<DirectoryEntry>, first_page: bool) {
        let mut all = self.instances.lock().unwrap_or_else(|p| p.into_inner());
        let dir = &mut all.entry(instance.to_owned()).or_default().directory;
        if first_page {
            dir.clear();
        }
        dir.extend(entries);
        self.directories.fetch_add(1, Ordering::Relaxed);
    }

    /// Changes whenever a directory changes.
    pub fn directory_generation(&self) -> u64 {
        self.directories.load(Ordering::Relaxed)
    }

    /// A copy of one endpoint's observations.
    pub fn endpoint(&self, instance: &str, endpoint: &str) -> Option<EndpointView> {
        let all = self.instances.lock().unwrap_or_else(|p| p.into_inner());
        all.get(instance)?.endpoints.get(endpoint).cloned()
    }

    /// The (instance, endpoint) pairs whose last presence report arrived
    /// between `from` and `to` (inclusive).
    pub fn received_between(&self, from: u64, to: u64) -> Vec<(String, String)> {
        let all = self.instances.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for (instance, b) in all.iter() {
            for (endpoint, v) in &b.endpoints {
                if v.received_at_ms.is_some_and(|t| t >= from && t <= to) {
                    out.push((instance.clone(), endpoint.clone()));
                }
            }
        }
        out
    }

    /// Endpoints whose declared validity ends within `[from, to]`.
    pub fn lapsing_between(&self, from: u64, to: u64) -> Vec<(String, String)> {
        let all = self.instances.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for (instance, b) in all.iter() {
            for (endpoint, v) in &b.endpoints {
                if v.valid_until_ms.is_some_and(|t| t >= from && t <= to) {
                    out.push((instance.clone(), endpoint.clone()));
                }
            }
        }
        out
    }

    /// The instance's directory as email (lowercase) to endpoint.
    pub fn directory_by_email(&self, instance: &str) -> std::collections::HashMap<String, String> {
        let all = self.instances.lock().unwrap_or_else(|p| p.into_inner());
        all.get(instance)
            .map(|b| {
                b.directory
                    .iter()
                    .filter_map(|d| {
                        Some((d.email.as_ref()?.to_ascii_lowercase(), d.endpoint.clone()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A copy of one instance's observations.
    pub fn instance(&self, instance: &str) -> InstanceBoard {
        let all = self.instances.lock().unwrap_or_else(|p| p.into_inner());
        all.get(instance).cloned().unwrap_or_default()
    }

    /// Forget an instance (deleted).
    pub fn remove(&self, instance: &str) {
        let mut all = self.instances.lock().unwrap_or_else(|p| p.into_inner());
        all.remove(instance);
        self.directories.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(ep: &str, seq: Option<u64>, rich: Option<Availability>) -> PresenceReport {
        in_epoch("e1", ep, seq, rich)
    }

    fn in_epoch(
        epoch: &str,
        ep: &str,
        seq: Option<u64>,
        rich: Option<Availability>,
    ) -> PresenceReport {
        PresenceReport {
            endpoint: ep.into(),
            observed_at_ms: None,
            ordering: seq.map(|sequence| ReportOrdering {
                epoch: epoch.into(),
                sequence,
            }),
            origin: UpdateOrigin::Platform,
            calendar: None,
            valid_for_ms: None,
            telephony: None,
            rich: rich.map(|availability| RichPresence {
                availability,
                activity: None,
                note: None,
            }),
            raw: vec![],
        }
    }

    #[test]
    fn channels_merge_and_stale_sequences_are_ignored() {
        let b = Board::default();
        assert!(b.presence("i", report("a", Some(2), Some(Availability::Busy)), 10));
        let tel = PresenceReport {
            telephony: Some(TelephonyPresence {
                line: LineState::InCall,
                do_not_disturb: false,
                forward: None,
                source: TelephonySource::PbxLine,
            }),
            ..report("a", Some(3), None)
        };
        assert!(b.presence("i", tel, 11));
        assert!(!b.presence("i", report("a", Some(1), Some(Availability::Available)), 12));
        let ep = &b.instance("i").endpoints["a"];
        assert_eq!(ep.rich.as_ref().unwrap().availability, Availability::Busy);
        assert_eq!(ep.telephony.as_ref().unwrap().line, LineState::InCall);
        assert_eq!(ep.received_at_ms, Some(11));
    }

    #[test]
    fn sequences_compare_only_within_an_epoch() {
        let b = Board::default();
        assert!(b.presence(
            "i",
            in_epoch("sub-1", "a", Some(7), Some(Availability::Busy)),
            1
        ));
        // A new subscription restarts its versions at 0: not stale.
        assert!(b.presence(
            "i",
            in_epoch("sub-2", "a", Some(0), Some(Availability::Available)),
            2
        ));
        assert!(b.presence(
            "i",
            in_epoch("sub-2", "a", Some(5), Some(Availability::Available)),
            3
        ));
        // Within the epoch an older version is stale.
        assert!(!b.presence(
            "i",
            in_epoch("sub-2", "a", Some(3), Some(Availability::Away)),
            4
        ));
        let ep = &b.instance("i").endpoints["a"];
        assert_eq!(
            ep.rich.as_ref().unwrap().availability,
            Availability::Available
        );
    }

    #[test]
    fn private_calendar_items_lose_subject_and_location() {
        let b = Board::default();
        let item = |private| CalendarItem {
            start_ms: 1,
            end_ms: 2,
            show_as: ShowAs::Busy,
            subject: Some("Board meeting".into()),
            location: Some("Room 4".into()),
            private,
        };
        let r = PresenceReport {
            calendar: Some(CalendarPresence {
                items: vec![item(true), item(false)],
                out_of_office: None,
            }),
            ..report("a", None, None)
        };
        assert!(b.presence("i", r, 1));
        let cal = b.instance("i").endpoints["a"].calendar.clone().unwrap();
        assert_eq!(
            (
                cal.items[0].subject.as_deref(),
                cal.items[0].location.as_deref()
            ),
            (None, None)
        );
        assert_eq!(cal.items[1].subject.as_deref(), Some("Board meeting"));
    }

    #[test]
    fn endpoint_states_and_removal() {
        let b = Board::default();
        b.endpoint_state("i", "x", EndpointState::NotFound, Some("404".into()), 5);
        assert_eq!(
            b.instance("i").endpoints["x"].state,
            Some(EndpointState::NotFound)
        );
        b.remove("i");
        assert!(b.instance("i").endpoints.is_empty());
    }
}
