//! What travels on the wire: Graph's calendar JSON, and its mapping to the
//! contract's calendar channel.

use presence_connector_sdk::time::{MissingZone, format_datetime, parse_datetime};
use presence_connector_sdk::{CalendarItem, OutOfOffice, ShowAs};
use serde::Deserialize;

use crate::zones::{self, Zone};

/// Most schedules one `getSchedule` request names.
pub const MAX_SCHEDULES: usize = 20;

/// `dateTimeTimeZone`.
#[derive(Debug, Clone, Deserialize)]
pub struct DateTimeTz {
    #[serde(rename = "dateTime")]
    pub date_time: String,
    #[serde(rename = "timeZone", default)]
    pub time_zone: Option<String>,
}

impl DateTimeTz {
    /// The UTC instant, reading a wall-clock time in its own zone (`zone`
    /// when it names none, or one the connector does not know).
    pub fn to_ms(&self, zone: &Zone) -> Option<u64> {
        // A written offset wins.
        if let Some(ms) = parse_datetime(&self.date_time, MissingZone::Reject) {
            return Some(ms);
        }
        let wall = parse_datetime(&self.date_time, MissingZone::Utc)? as i64;
        let z = self
            .time_zone
            .as_deref()
            .and_then(zones::lookup)
            .unwrap_or(*zone);
        u64::try_from(z.to_utc(wall)).ok()
    }
}

/// `{"value": [...]}`, with the next page's link where Graph pages.
#[derive(Debug, Clone, Deserialize)]
pub struct Page<T> {
    pub value: Vec<T>,
    #[serde(rename = "@odata.nextLink", default)]
    pub next_link: Option<String>,
}

/// `freeBusyError`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FreeBusyError {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub response_code: Option<String>,
}

/// `scheduleInformation`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleInformation {
    pub schedule_id: String,
    #[serde(default)]
    pub availability_view: Option<String>,
    #[serde(default)]
    pub schedule_items: Vec<ScheduleItem>,
    #[serde(default)]
    pub error: Option<FreeBusyError>,
}

/// `scheduleItem`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleItem {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub is_private: Option<bool>,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    pub start: DateTimeTz,
    pub end: DateTimeTz,
}

/// `location` of an event (only its name is used).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    #[serde(default)]
    pub display_name: Option<String>,
}

/// An `event` as calendarView returns it with the connector's `$select`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub location: Option<Location>,
    pub start: DateTimeTz,
    pub end: DateTimeTz,
    #[serde(default)]
    pub show_as: Option<String>,
    #[serde(default)]
    pub sensitivity: Option<String>,
    #[serde(default)]
    pub is_cancelled: Option<bool>,
}

/// `automaticRepliesSetting`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutomaticReplies {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub internal_reply_message: Option<String>,
    #[serde(default)]
    pub external_reply_message: Option<String>,
    #[serde(default)]
    pub scheduled_start_date_time: Option<DateTimeTz>,
    #[serde(default)]
    pub scheduled_end_date_time: Option<DateTimeTz>,
}

/// A change or lifecycle notification.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub subscription_id: String,
    #[serde(default)]
    pub client_state: Option<String>,
    #[serde(default)]
    pub lifecycle_event: Option<String>,
}

/// Graph's `freeBusyStatus` (getSchedule writes it in any case) as show-as.
pub fn show_as(status: Option<&str>) -> ShowAs {
    match status.map(str::to_ascii_lowercase).as_deref() {
        Some("free") => ShowAs::Free,
        Some("tentative") => ShowAs::Tentative,
        Some("busy") => ShowAs::Busy,
        Some("oof") => ShowAs::OutOfOffice,
        Some("workingelsewhere") => ShowAs::WorkingElsewhere,
        _ => ShowAs::Unknown,
    }
}

/// Whether a `sensitivity` hides the item's details: private and
/// confidential items never carry subject or location out.
pub fn is_private(sensitivity: Option<&str>) -> bool {
    matches!(
        sensitivity.map(str::to_ascii_lowercase).as_deref(),
        Some("private" | "confidential")
    )
}

fn clean(s: Option<&str>) -> Option<String> {
    let t = s?.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// A calendar item, with subject and location only where `subjects` is on
/// and the item is not private.
pub fn item(
    start: u64,
    end: u64,
    show: ShowAs,
    subject: Option<&str>,
    location: Option<&str>,
    private: bool,
    subjects: bool,
) -> CalendarItem {
    let open = subjects && !private;
    CalendarItem {
        start,
        end,
        show_as: show,
        subject: if open { clean(subject) } else { None },
        location: if open { clean(location) } else { None },
        private,
    }
}

/// The items of a getSchedule answer.
pub fn schedule_items(
    info: &ScheduleInformation,
    zone: &Zone,
    subjects: bool,
) -> Vec<CalendarItem> {
    let mut items: Vec<CalendarItem> = info
        .schedule_items
        .iter()
        .filter_map(|s| {
            let private = s.is_private.unwrap_or(false);
            Some(item(
                s.start.to_ms(zone)?,
                s.end.to_ms(zone)?,
                show_as(s.status.as_deref()),
                s.subject.as_deref(),
                s.location.as_deref(),
                private,
                subjects,
            ))
        })
        .collect();
    items.sort_by_key(|i| (i.start, i.end));
    items
}

/// The items of calendarView pages.
pub fn event_items(events: &[Event], zone: &Zone, subjects: bool) -> Vec<CalendarItem> {
    let mut items: Vec<CalendarItem> = events
        .iter()
        .filter(|e| !e.is_cancelled.unwrap_or(false))
        .filter_map(|e| {
            Some(item(
                e.start.to_ms(zone)?,
                e.end.to_ms(zone)?,
                show_as(e.show_as.as_deref()),
                e.subject.as_deref(),
                e.location.as_ref().and_then(|l| l.display_name.as_deref()),
                is_private(e.sensitivity.as_deref()),
                subjects,
            ))
        })
        .collect();
    items.sort_by_key(|i| (i.start, i.end));
    items
}

/// The out-of-office reply in force at `now`, if any: `alwaysEnabled`, or
/// `scheduled` with `now` inside its window. The internal message (what
/// colleagues get), else the external one, as plain text.
pub fn out_of_office(r: &AutomaticReplies, zone: &Zone, now: u64) -> Option<OutOfOffice> {
    let status = r.status.as_deref()?.to_ascii_lowercase();
    let message = r
        .internal_reply_message
        .as_deref()
        .map(plain_text)
        .filter(|m| !m.is_empty())
        .or_else(|| {
            r.external_reply_message
                .as_deref()
                .map(plain_text)
                .filter(|m| !m.is_empty())
        });
    match status.as_str() {
        "alwaysenabled" => Some(OutOfOffice {
            message,
            start: None,
            end: None,
        }),
        "scheduled" => {
            let start = r.scheduled_start_date_time.as_ref()?.to_ms(zone)?;
            let end = r.scheduled_end_date_time.as_ref()?.to_ms(zone)?;
            (start <= now && now < end).then_some(OutOfOffice {
                message,
                start: Some(start),
                end: Some(end),
            })
        }
        _ => None,
    }
}

/// HTML as Outlook writes reply messages, as plain text: tags dropped,
/// `<br>` and block ends as line breaks, common entities decoded, runs of
/// blank space folded.
pub fn plain_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find('>') else {
            rest = "";
            break;
        };
        let tag = rest[i + 1..i + j]
            .trim_start_matches('/')
            .to_ascii_lowercase();
        let name: String = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if matches!(name.as_str(), "br" | "p" | "div" | "li" | "tr") {
            out.push('\n');
        }
        rest = &rest[i + j + 1..];
    }
    out.push_str(rest);
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    decoded
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A wall-clock time as Graph takes it in `dateTimeTimeZone`
/// (`2026-11-30T00:00:00`).
pub fn wall_clock(local_ms: i64) -> String {
    let s = format_datetime(local_ms.max(0) as u64);
    s[..19].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_privacy_and_replies() {
        let zone = zones::lookup("Europe/Berlin").unwrap();
        let info: ScheduleInformation = serde_json::from_str(
            r#"{"scheduleId":"a@x","availabilityView":"0220","scheduleItems":[
                {"isPrivate":true,"status":"Busy","subject":"Doctor","location":"Clinic",
                 "start":{"dateTime":"2026-07-01T12:00:00.0000000","timeZone":"W. Europe Standard Time"},
                 "end":{"dateTime":"2026-07-01T13:00:00.0000000","timeZone":"W. Europe Standard Time"}},
                {"status":"workingElsewhere","subject":"Review","location":"Room 1",
                 "start":{"dateTime":"2026-07-01T08:00:00.0000000","timeZone":"UTC"},
                 "end":{"dateTime":"2026-07-01T09:00:00.0000000","timeZone":"UTC"}}]}"#,
        )
        .unwrap();
        let items = schedule_items(&info, &zone, true);
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].show_as, ShowAs::WorkingElsewhere);
        assert_eq!(items[0].subject.as_deref(), Some("Review"));
        assert_eq!(items[1].start, 1_782_900_000_000, "12:00 CEST is 10:00 UTC");
        assert!(items[1].private);
        assert_eq!(items[1].subject, None);
        assert_eq!(items[1].location, None);
        let quiet = schedule_items(&info, &zone, false);
        assert!(quiet.iter().all(|i| i.subject.is_none()));
        for (s, want) in [
            ("free", ShowAs::Free),
            ("Tentative", ShowAs::Tentative),
            ("oof", ShowAs::OutOfOffice),
            ("unknown", ShowAs::Unknown),
        ] {
            assert_eq!(show_as(Some(s)), want);
        }
        let r: AutomaticReplies = serde_json::from_str(
            r#"{"status":"scheduled","internalReplyMessage":"<html><body><p>Back on Monday&nbsp;&amp; reachable</p></body></html>",
                "scheduledStartDateTime":{"dateTime":"2026-07-01T00:00:00.0000000","timeZone":"UTC"},
                "scheduledEndDateTime":{"dateTime":"2026-07-03T00:00:00.0000000","timeZone":"UTC"}}"#,
        )
        .unwrap();
        let o = out_of_office(&r, &zone, 1_782_900_000_000).unwrap();
        assert_eq!(o.message.as_deref(), Some("Back on Monday & reachable"));
        assert!(out_of_office(&r, &zone, 1_700_000_000_000).is_none());
        assert_eq!(wall_clock(1_782_900_000_000), "2026-07-01T10:00:00");
    }
}
