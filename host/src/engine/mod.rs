//! The presence state built from connectors' reports.
//!
//! Pure and I/O free: the runtime converts each report to the normalized model
//! below; the presence service keeps, per connector instance and endpoint, an
//! [`EndpointView`] (latest telephony, rich and calendar presence with the
//! source's raw values and the endpoint's watch state) and takes reports in
//! with [`EndpointView::apply_report`]; [`merge`] turns a user's views into
//! the merged presence.

pub mod calendar;
pub mod directory;
pub mod merge;
mod model;
pub mod sync;
pub mod users;

use std::collections::BTreeMap;

pub use model::*;
pub use users::valid_attribute_name;

/// What one connector instance reported, as the API shows it.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct InstanceBoard {
    pub endpoints: BTreeMap<String, EndpointView>,
    pub directory: Vec<DirectoryEntry>,
}

impl EndpointView {
    /// Take in a presence report received at `now_ms`; channels the report
    /// leaves out keep their last value. A report older than the last one
    /// (by the source's sequence, within one epoch) changes nothing and
    /// `false` is returned.
    pub fn apply_report(&mut self, report: PresenceReport, now_ms: u64) -> bool {
        // Sequences compare only within one epoch; a new epoch (a new
        // subscription) starts a new order.
        if let (Some(new), Some(old)) = (&report.ordering, &self.ordering)
            && new.epoch == old.epoch
            && new.sequence < old.sequence
        {
            return false;
        }
        if report.telephony.is_some() {
            self.telephony = report.telephony;
        }
        if report.rich.is_some() {
            self.rich = report.rich;
        }
        if let Some(c) = report.calendar {
            self.calendar = Some(c.masked());
        }
        self.ordering = report.ordering.or(self.ordering.take());
        self.valid_until_ms = report.valid_for_ms.map(|v| now_ms.saturating_add(v));
        self.origin = report.origin;
        self.observed_at_ms = Some(report.observed_at_ms.unwrap_or(now_ms));
        self.received_at_ms = Some(now_ms);
        self.raw = report.raw;
        self.updates += 1;
        true
    }

    /// Take in the endpoint's watch state; `false` when it was that already
    /// (same state and detail: only the time is updated).
    pub fn apply_state(
        &mut self,
        state: EndpointState,
        detail: Option<String>,
        now_ms: u64,
    ) -> bool {
        let changed = self.state != Some(state) || self.state_detail != detail;
        self.state = Some(state);
        self.state_detail = detail;
        self.state_at_ms = Some(now_ms);
        changed
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
        let mut ep = EndpointView::default();
        assert!(ep.apply_report(report("a", Some(2), Some(Availability::Busy)), 10));
        let tel = PresenceReport {
            telephony: Some(TelephonyPresence {
                line: LineState::InCall,
                do_not_disturb: false,
                forward: None,
                source: TelephonySource::PbxLine,
            }),
            ..report("a", Some(3), None)
        };
        assert!(ep.apply_report(tel, 11));
        assert!(!ep.apply_report(report("a", Some(1), Some(Availability::Available)), 12));
        assert_eq!(ep.rich.as_ref().unwrap().availability, Availability::Busy);
        assert_eq!(ep.telephony.as_ref().unwrap().line, LineState::InCall);
        assert_eq!(ep.received_at_ms, Some(11));
    }

    #[test]
    fn sequences_compare_only_within_an_epoch() {
        let mut ep = EndpointView::default();
        assert!(ep.apply_report(in_epoch("sub-1", "a", Some(7), Some(Availability::Busy)), 1));
        // A new subscription restarts its versions at 0: not stale.
        assert!(ep.apply_report(
            in_epoch("sub-2", "a", Some(0), Some(Availability::Available)),
            2
        ));
        assert!(ep.apply_report(
            in_epoch("sub-2", "a", Some(5), Some(Availability::Available)),
            3
        ));
        // Within the epoch an older version is stale.
        assert!(!ep.apply_report(in_epoch("sub-2", "a", Some(3), Some(Availability::Away)), 4));
        assert_eq!(
            ep.rich.as_ref().unwrap().availability,
            Availability::Available
        );
    }

    #[test]
    fn private_calendar_items_lose_subject_and_location() {
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
        let mut ep = EndpointView::default();
        assert!(ep.apply_report(r, 1));
        let cal = ep.calendar.clone().unwrap();
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
    fn repeated_endpoint_states_change_nothing() {
        let mut ep = EndpointView::default();
        assert!(ep.apply_state(EndpointState::NotFound, Some("404".into()), 5));
        assert!(!ep.apply_state(EndpointState::NotFound, Some("404".into()), 6));
        assert_eq!(ep.state_at_ms, Some(6));
        assert!(ep.apply_state(EndpointState::Active, None, 7));
    }
}
