//! A person's day as consoles show it beside their presence: "in a meeting
//! until 14:30", "free from 15:00", "out of office until Monday: message".
//!
//! Calendar never overrides live presence (a person who left a meeting
//! early and took a call is on the phone, whatever the calendar says); it
//! is a channel of its own. Pure and deterministic: the caller passes the
//! time; times are milliseconds since the Unix epoch, UTC, and consoles
//! format them in their own time zone.

use serde::{Deserialize, Serialize};

use super::merge::{Rules, SourceView};
use super::model::{CalendarItem, CalendarPresence, ShowAs};

/// Operator rules for the calendar channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CalendarRules {
    /// Show subjects and locations of items that are not private. Off by
    /// default: consoles then see only when a person is taken, not by what
    /// (private items never carry them, whatever this says).
    pub show_subjects: bool,
}

/// One calendar item as consoles get it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ItemOut {
    pub start_ms: u64,
    pub end_ms: u64,
    pub show_as: ShowAs,
    /// Only with `show_subjects`, and never for a private item.
    pub subject: Option<String>,
    pub location: Option<String>,
    pub private: bool,
}

/// An automatic out-of-office reply in force now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AwayOut {
    pub message: Option<String>,
    /// The scheduled end, where the person set one.
    pub until_ms: Option<u64>,
}

/// The calendar channel of a merged presence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CalendarOut {
    /// The connector instance the calendar comes from.
    pub source: String,
    /// The item in progress that takes the person's time (busy, tentative,
    /// out of office, working elsewhere), the one ending last if several.
    pub now: Option<ItemOut>,
    /// When the person is free again: the end of the run of items that
    /// take their time from now on, back to back or overlapping. None when
    /// free now.
    pub free_from_ms: Option<u64>,
    /// The next item that takes the person's time and starts later.
    pub next: Option<ItemOut>,
    /// An automatic reply in force now.
    pub out_of_office: Option<AwayOut>,
    /// Every item the source reported (today's and the next working
    /// day's), in time order, subjects as the rules allow.
    pub items: Vec<ItemOut>,
}

/// Whether an item takes the person's time.
fn takes_time(show_as: ShowAs) -> bool {
    matches!(
        show_as,
        ShowAs::Busy | ShowAs::Tentative | ShowAs::OutOfOffice | ShowAs::WorkingElsewhere
    )
}

fn item_out(i: &CalendarItem, rules: &CalendarRules) -> ItemOut {
    let shown = rules.show_subjects && !i.private;
    ItemOut {
        start_ms: i.start_ms,
        end_ms: i.end_ms,
        show_as: i.show_as,
        subject: i.subject.clone().filter(|_| shown),
        location: i.location.clone().filter(|_| shown),
        private: i.private,
    }
}

/// The calendar of the sources' freshest report that has one (a calendar
/// connector beside a presence connector: each instance reports its own),
/// as consoles see it at `now_ms`. None when no running source has one.
pub fn day_view(sources: &[SourceView], rules: &Rules, now_ms: u64) -> Option<CalendarOut> {
    let (instance, cal) = sources
        .iter()
        .filter(|s| s.connector_ok)
        .filter_map(|s| {
            let o = s.observed?;
            let fresh = o.valid_until_ms.is_none_or(|t| now_ms <= t);
            Some((s.instance, o.calendar.as_ref()?, o.received_at_ms, fresh))
        })
        .filter(|(.., fresh)| *fresh)
        .max_by_key(|(_, _, received, _)| *received)
        .map(|(i, c, ..)| (i, c))?;
    Some(view_of(instance, cal, &rules.calendar, now_ms))
}

fn view_of(source: &str, cal: &CalendarPresence, rules: &CalendarRules, now: u64) -> CalendarOut {
    let mut items: Vec<&CalendarItem> =
        cal.items.iter().filter(|i| i.end_ms > i.start_ms).collect();
    items.sort_by_key(|i| (i.start_ms, i.end_ms));
    let taking: Vec<&&CalendarItem> = items.iter().filter(|i| takes_time(i.show_as)).collect();
    let current = taking
        .iter()
        .filter(|i| i.start_ms <= now && now < i.end_ms)
        .max_by_key(|i| i.end_ms);
    // Free again: follow items that start before the run ends.
    let free_from_ms = current.map(|c| {
        let mut end = c.end_ms;
        for i in &taking {
            if i.start_ms <= end && i.end_ms > end {
                end = i.end_ms;
            }
        }
        end
    });
    let next = taking
        .iter()
        .find(|i| i.start_ms > now)
        .map(|i| item_out(i, rules));
    let out_of_office = cal.out_of_office.as_ref().and_then(|o| {
        let started = o.start_ms.is_none_or(|s| s <= now);
        let running = o.end_ms.is_none_or(|e| now < e);
        (started && running).then(|| AwayOut {
            message: o.message.clone(),
            until_ms: o.end_ms,
        })
    });
    CalendarOut {
        source: source.to_owned(),
        now: current.map(|i| item_out(i, rules)),
        free_from_ms,
        next,
        out_of_office,
        items: items.iter().map(|i| item_out(i, rules)).collect(),
    }
}

/// The instants at which `cal`'s view changes by time alone: every item's
/// start and end, and the out-of-office window's edges. The presence
/// service recomputes a user when one passes.
pub fn boundaries(cal: &CalendarPresence) -> impl Iterator<Item = u64> + '_ {
    let oof = cal
        .out_of_office
        .iter()
        .flat_map(|o| o.start_ms.into_iter().chain(o.end_ms));
    cal.items
        .iter()
        .flat_map(|i| [i.start_ms, i.end_ms])
        .chain(oof)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::{EndpointView, OutOfOffice};

    const H: u64 = 3_600_000;
    /// 2026-11-30 00:00 UTC.
    const DAY: u64 = 1_796_083_200_000;

    fn item(
        start_h: u64,
        end_h: u64,
        show_as: ShowAs,
        subject: &str,
        private: bool,
    ) -> CalendarItem {
        CalendarItem {
            start_ms: DAY + start_h * H,
            end_ms: DAY + end_h * H,
            show_as,
            subject: Some(subject.into()),
            location: Some("Room 1".into()),
            private,
        }
    }

    fn view(items: Vec<CalendarItem>, oof: Option<OutOfOffice>) -> EndpointView {
        EndpointView {
            calendar: Some(
                CalendarPresence {
                    items,
                    out_of_office: oof,
                }
                .masked(),
            ),
            received_at_ms: Some(DAY),
            ..EndpointView::default()
        }
    }

    fn source<'a>(instance: &'a str, v: &'a EndpointView) -> SourceView<'a> {
        SourceView {
            instance,
            technology: "calendar",
            endpoint: "alice@example.com",
            observed: Some(v),
            connector_ok: true,
        }
    }

    fn rules(show_subjects: bool) -> Rules {
        Rules {
            calendar: CalendarRules { show_subjects },
            ..Rules::default()
        }
    }

    #[test]
    fn in_a_meeting_until_and_free_from_the_end_of_back_to_back_items() {
        let v = view(
            vec![
                item(9, 10, ShowAs::Free, "focus", false),
                item(13, 14, ShowAs::Busy, "Sales review", false),
                item(14, 15, ShowAs::Tentative, "Coffee", false),
                item(16, 17, ShowAs::Busy, "1:1", false),
            ],
            None,
        );
        let out = day_view(&[source("ews", &v)], &rules(true), DAY + 13 * H + 1).unwrap();
        assert_eq!(out.source, "ews");
        let now = out.now.unwrap();
        assert_eq!(now.end_ms, DAY + 14 * H);
        assert_eq!(now.subject.as_deref(), Some("Sales review"));
        assert_eq!(
            out.free_from_ms,
            Some(DAY + 15 * H),
            "through the tentative item"
        );
        assert_eq!(out.next.unwrap().start_ms, DAY + 14 * H);
        assert_eq!(out.items.len(), 4);
        // In a free item: not taken, next is the 13:00 meeting.
        let out = day_view(&[source("ews", &v)], &rules(true), DAY + 9 * H).unwrap();
        assert!(out.now.is_none() && out.free_from_ms.is_none());
        assert_eq!(out.next.unwrap().start_ms, DAY + 13 * H);
    }

    #[test]
    fn subjects_only_when_the_rules_say_and_never_for_private_items() {
        let v = view(
            vec![
                item(13, 14, ShowAs::Busy, "Sales review", false),
                item(15, 16, ShowAs::Busy, "Doctor", true),
            ],
            None,
        );
        let hidden = day_view(&[source("m365", &v)], &rules(false), DAY).unwrap();
        assert!(
            hidden
                .items
                .iter()
                .all(|i| i.subject.is_none() && i.location.is_none())
        );
        let shown = day_view(&[source("m365", &v)], &rules(true), DAY).unwrap();
        assert_eq!(shown.items[0].subject.as_deref(), Some("Sales review"));
        assert_eq!(shown.items[0].location.as_deref(), Some("Room 1"));
        assert!(shown.items[1].private);
        assert!(shown.items[1].subject.is_none() && shown.items[1].location.is_none());
    }

    #[test]
    fn out_of_office_only_inside_its_window() {
        let oof = OutOfOffice {
            message: Some("Back on Monday".into()),
            start_ms: Some(DAY + 12 * H),
            end_ms: Some(DAY + 72 * H),
        };
        let v = view(vec![], Some(oof));
        let before = day_view(&[source("m365", &v)], &rules(false), DAY + 11 * H).unwrap();
        assert!(before.out_of_office.is_none());
        let during = day_view(&[source("m365", &v)], &rules(false), DAY + 12 * H).unwrap();
        let away = during.out_of_office.unwrap();
        assert_eq!(away.message.as_deref(), Some("Back on Monday"));
        assert_eq!(away.until_ms, Some(DAY + 72 * H));
        let after = day_view(&[source("m365", &v)], &rules(false), DAY + 72 * H).unwrap();
        assert!(after.out_of_office.is_none());
    }

    #[test]
    fn the_freshest_running_source_with_a_calendar_wins_and_lapsed_ones_do_not() {
        let mut old = view(vec![item(13, 14, ShowAs::Busy, "old", false)], None);
        old.received_at_ms = Some(DAY - H);
        let mut new = view(vec![item(15, 16, ShowAs::Busy, "new", false)], None);
        new.received_at_ms = Some(DAY);
        let presence_only = EndpointView {
            received_at_ms: Some(DAY + H),
            ..EndpointView::default()
        };
        let sources = [
            source("ews", &old),
            source("m365", &new),
            source("teams", &presence_only),
        ];
        let out = day_view(&sources, &rules(true), DAY).unwrap();
        assert_eq!(out.source, "m365");
        // A polling source's calendar lapses with its declared validity.
        new.valid_until_ms = Some(DAY + 60_000);
        let sources = [source("ews", &old), source("m365", &new)];
        let out = day_view(&sources, &rules(true), DAY + 120_000).unwrap();
        assert_eq!(out.source, "ews");
        // A stopped connector's calendar does not count.
        let mut stopped = source("ews", &old);
        stopped.connector_ok = false;
        assert!(day_view(&[stopped], &rules(true), DAY).is_none());
    }

    #[test]
    fn boundaries_are_every_start_and_end() {
        let cal = CalendarPresence {
            items: vec![item(13, 14, ShowAs::Busy, "a", false)],
            out_of_office: Some(OutOfOffice {
                message: None,
                start_ms: None,
                end_ms: Some(DAY + 20 * H),
            }),
        };
        let b: Vec<u64> = boundaries(&cal).collect();
        assert_eq!(b, [DAY + 13 * H, DAY + 14 * H, DAY + 20 * H]);
    }
}
