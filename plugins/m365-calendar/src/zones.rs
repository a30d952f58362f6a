//! The time zones the connector knows: an IANA or Windows name, the Windows
//! name Graph takes (`Prefer: outlook.timezone`, `dateTimeTimeZone`), the
//! standard offset and the daylight-saving rule in force since 2007.
//!
//! Written by hand (a small table) because a time-zone database would be
//! the largest part of the component; zones outside the table are refused
//! by name when the connector is configured.

/// Daylight-saving rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    None,
    /// European Union: last Sunday of March 01:00 UTC to last Sunday of
    /// October 01:00 UTC.
    Eu,
    /// United States and Canada: second Sunday of March 02:00 local to first
    /// Sunday of November 02:00 local.
    Us,
}

/// A known zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone {
    /// The name Graph takes.
    pub windows: &'static str,
    /// Standard offset from UTC, minutes.
    std_min: i64,
    rule: Rule,
}

const DAY: i64 = 86_400_000;

/// (IANA names, Windows name, standard offset in minutes, rule).
const TABLE: &[(&[&str], &str, i64, Rule)] = &[
    (&["UTC", "Etc/UTC", "GMT", "Etc/GMT"], "UTC", 0, Rule::None),
    (
        &["Europe/London", "Europe/Dublin", "Europe/Lisbon"],
        "GMT Standard Time",
        0,
        Rule::Eu,
    ),
    (
        &[
            "Europe/Berlin",
            "Europe/Amsterdam",
            "Europe/Rome",
            "Europe/Vienna",
            "Europe/Zurich",
            "Europe/Stockholm",
            "Europe/Oslo",
        ],
        "W. Europe Standard Time",
        60,
        Rule::Eu,
    ),
    (
        &[
            "Europe/Paris",
            "Europe/Brussels",
            "Europe/Madrid",
            "Europe/Copenhagen",
        ],
        "Romance Standard Time",
        60,
        Rule::Eu,
    ),
    (
        &["Europe/Warsaw", "Europe/Zagreb"],
        "Central European Standard Time",
        60,
        Rule::Eu,
    ),
    (
        &["Europe/Prague", "Europe/Budapest", "Europe/Belgrade"],
        "Central Europe Standard Time",
        60,
        Rule::Eu,
    ),
    (
        &[
            "Europe/Helsinki",
            "Europe/Kyiv",
            "Europe/Kiev",
            "Europe/Riga",
        ],
        "FLE Standard Time",
        120,
        Rule::Eu,
    ),
    (
        &["Europe/Athens", "Europe/Bucharest"],
        "GTB Standard Time",
        120,
        Rule::Eu,
    ),
    (
        &["America/New_York", "America/Toronto"],
        "Eastern Standard Time",
        -300,
        Rule::Us,
    ),
    (
        &["America/Chicago", "America/Winnipeg"],
        "Central Standard Time",
        -360,
        Rule::Us,
    ),
    (
        &["America/Denver", "America/Edmonton"],
        "Mountain Standard Time",
        -420,
        Rule::Us,
    ),
    (
        &["America/Phoenix"],
        "US Mountain Standard Time",
        -420,
        Rule::None,
    ),
    (
        &["America/Los_Angeles", "America/Vancouver"],
        "Pacific Standard Time",
        -480,
        Rule::Us,
    ),
    (&["Asia/Dubai"], "Arabian Standard Time", 240, Rule::None),
    (
        &["Asia/Kolkata", "Asia/Calcutta"],
        "India Standard Time",
        330,
        Rule::None,
    ),
    (
        &["Asia/Shanghai", "Asia/Hong_Kong"],
        "China Standard Time",
        480,
        Rule::None,
    ),
    (
        &["Asia/Singapore"],
        "Singapore Standard Time",
        480,
        Rule::None,
    ),
    (&["Asia/Tokyo"], "Tokyo Standard Time", 540, Rule::None),
];

/// The zone named (IANA or Windows name, any case).
pub fn lookup(name: &str) -> Option<Zone> {
    let name = name.trim();
    TABLE
        .iter()
        .find(|(iana, windows, _, _)| {
            windows.eq_ignore_ascii_case(name) || iana.iter().any(|i| i.eq_ignore_ascii_case(name))
        })
        .map(|&(_, windows, std_min, rule)| Zone {
            windows,
            std_min,
            rule,
        })
}

/// Day of the week of a day number: 0 = Monday ... 6 = Sunday.
pub use presence_connector_sdk::days::weekday;
use presence_connector_sdk::days::{civil_from_days, last_sunday, nth_sunday};

impl Zone {
    /// Offset from UTC at a UTC instant, in ms.
    pub fn offset_at(&self, utc_ms: i64) -> i64 {
        let std = self.std_min * 60_000;
        let (year, _, _) = civil_from_days(utc_ms.div_euclid(DAY));
        let dst = match self.rule {
            Rule::None => false,
            Rule::Eu => {
                let start = last_sunday(year, 3) * DAY + 3_600_000;
                let end = last_sunday(year, 10) * DAY + 3_600_000;
                (start..end).contains(&utc_ms)
            }
            Rule::Us => {
                let start = nth_sunday(year, 3, 2) * DAY + 2 * 3_600_000 - std;
                let end = nth_sunday(year, 11, 1) * DAY + 2 * 3_600_000 - (std + 3_600_000);
                (start..end).contains(&utc_ms)
            }
        };
        std + if dst { 3_600_000 } else { 0 }
    }

    /// The wall-clock time at a UTC instant, as ms since 1970 "local".
    pub fn to_local(&self, utc_ms: i64) -> i64 {
        utc_ms + self.offset_at(utc_ms)
    }

    /// The UTC instant of a wall-clock time (in a gap the later offset, in
    /// an overlap the earlier instant).
    pub fn to_utc(&self, local_ms: i64) -> i64 {
        let guess = local_ms - self.std_min * 60_000;
        let first = local_ms - self.offset_at(guess);
        let second = local_ms - self.offset_at(first);
        first.min(second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use presence_connector_sdk::days::days_from_civil;

    fn utc(y: i64, m: u32, d: u32, h: i64) -> i64 {
        days_from_civil(y, m, d) * DAY + h * 3_600_000
    }

    #[test]
    fn names_and_offsets() {
        let berlin = lookup("europe/berlin").unwrap();
        assert_eq!(berlin.windows, "W. Europe Standard Time");
        assert_eq!(lookup("W. Europe Standard Time"), Some(berlin));
        assert!(lookup("Mars/Olympus").is_none());
        // 2026: EU summer time from 29 March to 25 October, 01:00 UTC.
        assert_eq!(berlin.offset_at(utc(2026, 3, 29, 0)), 3_600_000);
        assert_eq!(berlin.offset_at(utc(2026, 3, 29, 1)), 7_200_000);
        assert_eq!(berlin.offset_at(utc(2026, 10, 25, 0)), 7_200_000);
        assert_eq!(berlin.offset_at(utc(2026, 10, 25, 1)), 3_600_000);
        // 2026: US daylight time from 8 March to 1 November, 02:00 local.
        let ny = lookup("America/New_York").unwrap();
        assert_eq!(ny.offset_at(utc(2026, 3, 8, 6)), -5 * 3_600_000);
        assert_eq!(ny.offset_at(utc(2026, 3, 8, 7)), -4 * 3_600_000);
        assert_eq!(ny.offset_at(utc(2026, 11, 1, 5)), -4 * 3_600_000);
        assert_eq!(ny.offset_at(utc(2026, 11, 1, 6)), -5 * 3_600_000);
        let local = berlin.to_local(utc(2026, 7, 1, 22));
        assert_eq!(local, utc(2026, 7, 2, 0));
        assert_eq!(berlin.to_utc(local), utc(2026, 7, 1, 22));
        assert_eq!(weekday(days_from_civil(2026, 11, 29)), 6, "a Sunday");
    }
}
