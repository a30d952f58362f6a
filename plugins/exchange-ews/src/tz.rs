//! The configured time zone: where "today" and "the next working day" begin
//! and end. A fixed offset, or a standard offset with the European Union's
//! or the United States' daylight-saving rule (which covers the zones an
//! operator names here); no tz database in the component.

use presence_connector_sdk::days::{civil_from_days, last_sunday, nth_sunday, weekday};

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dst {
    None,
    /// Last Sunday of March 01:00 UTC to last Sunday of October 01:00 UTC.
    Eu,
    /// Second Sunday of March 02:00 local to first Sunday of November 02:00
    /// local.
    Us,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone {
    /// Standard time's offset east of UTC, in minutes.
    pub std_offset_min: i32,
    pub dst: Dst,
}

/// Zones known by name, with the standard offset and rule (as in force
/// since 2007 in the US and 1996 in the EU).
const NAMED: &[(&str, i32, Dst)] = &[
    ("UTC", 0, Dst::None),
    ("Etc/UTC", 0, Dst::None),
    ("Europe/London", 0, Dst::Eu),
    ("Europe/Dublin", 0, Dst::Eu),
    ("Europe/Lisbon", 0, Dst::Eu),
    ("Europe/Amsterdam", 60, Dst::Eu),
    ("Europe/Berlin", 60, Dst::Eu),
    ("Europe/Brussels", 60, Dst::Eu),
    ("Europe/Copenhagen", 60, Dst::Eu),
    ("Europe/Luxembourg", 60, Dst::Eu),
    ("Europe/Madrid", 60, Dst::Eu),
    ("Europe/Oslo", 60, Dst::Eu),
    ("Europe/Paris", 60, Dst::Eu),
    ("Europe/Prague", 60, Dst::Eu),
    ("Europe/Rome", 60, Dst::Eu),
    ("Europe/Stockholm", 60, Dst::Eu),
    ("Europe/Vienna", 60, Dst::Eu),
    ("Europe/Warsaw", 60, Dst::Eu),
    ("Europe/Zurich", 60, Dst::Eu),
    ("Europe/Budapest", 60, Dst::Eu),
    ("Europe/Athens", 120, Dst::Eu),
    ("Europe/Bucharest", 120, Dst::Eu),
    ("Europe/Helsinki", 120, Dst::Eu),
    ("Europe/Sofia", 120, Dst::Eu),
    ("America/New_York", -300, Dst::Us),
    ("America/Chicago", -360, Dst::Us),
    ("America/Denver", -420, Dst::Us),
    ("America/Phoenix", -420, Dst::None),
    ("America/Los_Angeles", -480, Dst::Us),
    ("Asia/Tokyo", 540, Dst::None),
    ("Asia/Shanghai", 480, Dst::None),
    ("Asia/Singapore", 480, Dst::None),
    ("Asia/Kolkata", 330, Dst::None),
    ("Asia/Dubai", 240, Dst::None),
];

impl Zone {
    pub const UTC: Zone = Zone {
        std_offset_min: 0,
        dst: Dst::None,
    };

    /// `UTC`, a name from the table above, or `UTC+hh:mm` / `UTC-hh:mm`.
    pub fn parse(text: &str) -> Option<Zone> {
        let t = text.trim();
        if let Some((_, off, dst)) = NAMED.iter().find(|(n, _, _)| n.eq_ignore_ascii_case(t)) {
            return Some(Zone {
                std_offset_min: *off,
                dst: *dst,
            });
        }
        let rest = t.strip_prefix("UTC").or_else(|| t.strip_prefix("GMT"))?;
        let (sign, hm) = match rest.as_bytes().first()? {
            b'+' => (1, &rest[1..]),
            b'-' => (-1, &rest[1..]),
            _ => return None,
        };
        let (h, m) = hm.split_once(':').unwrap_or((hm, "0"));
        let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
        if h > 14 || m > 59 || h < 0 || m < 0 {
            return None;
        }
        Some(Zone {
            std_offset_min: sign * (h * 60 + m),
            dst: Dst::None,
        })
    }

    /// The offset east of UTC in force at this instant, in minutes.
    pub fn offset_at(&self, utc_ms: u64) -> i32 {
        let t = utc_ms as i64;
        let year = civil_from_days(t.div_euclid(DAY_MS)).0;
        let std = i64::from(self.std_offset_min) * 60_000;
        let in_dst = match self.dst {
            Dst::None => false,
            Dst::Eu => {
                let start = last_sunday(year, 3) * DAY_MS + 3_600_000;
                let end = last_sunday(year, 10) * DAY_MS + 3_600_000;
                (start..end).contains(&t)
            }
            Dst::Us => {
                // 02:00 local standard time, 02:00 local daylight time.
                let start = nth_sunday(year, 3, 2) * DAY_MS + 7_200_000 - std;
                let end = nth_sunday(year, 11, 1) * DAY_MS + 7_200_000 - std - 3_600_000;
                (start..end).contains(&t)
            }
        };
        self.std_offset_min + if in_dst { 60 } else { 0 }
    }

    /// The local date (days since 1970-01-01) at this instant.
    pub fn local_day(&self, utc_ms: u64) -> i64 {
        let local = utc_ms as i64 + i64::from(self.offset_at(utc_ms)) * 60_000;
        local.div_euclid(DAY_MS)
    }

    /// The instant local midnight begins `day`.
    pub fn midnight(&self, day: i64) -> u64 {
        let naive = day * DAY_MS;
        // The offset at the instant itself: start from the standard offset
        // and correct once.
        let guess = naive - i64::from(self.std_offset_min) * 60_000;
        let off = self.offset_at(guess.max(0) as u64);
        (naive - i64::from(off) * 60_000).max(0) as u64
    }
}

/// Working days as a set of weekdays (bit 0 = Monday).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkingDays(pub u8);

impl WorkingDays {
    /// `mon,tue,wed,thu,fri` (English three-letter names, any case).
    pub fn parse(text: &str) -> Option<WorkingDays> {
        const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        let mut bits = 0u8;
        for part in text.split([',', ' ', ';']).filter(|p| !p.is_empty()) {
            let p = part.trim().to_ascii_lowercase();
            let i = NAMES.iter().position(|n| p.starts_with(n))?;
            bits |= 1 << i;
        }
        (bits != 0).then_some(WorkingDays(bits))
    }

    pub fn contains(&self, day: i64) -> bool {
        self.0 & (1 << weekday(day)) != 0
    }

    /// The first working day after `day`.
    pub fn next_after(&self, day: i64) -> i64 {
        (1..=7)
            .map(|i| day + i)
            .find(|d| self.contains(*d))
            .unwrap_or(day + 1)
    }
}

/// The days the connector reads: today and the next working day, as
/// half-open UTC intervals.
pub fn days_of_interest(zone: &Zone, work: &WorkingDays, now_ms: u64) -> [(u64, u64); 2] {
    let today = zone.local_day(now_ms);
    let next = work.next_after(today);
    [
        (zone.midnight(today), zone.midnight(today + 1)),
        (zone.midnight(next), zone.midnight(next + 1)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use presence_connector_sdk::days::days_from_civil;
    use presence_connector_sdk::time::{MissingZone, parse_datetime};

    fn at(s: &str) -> u64 {
        parse_datetime(s, MissingZone::Reject).unwrap()
    }

    #[test]
    fn eu_and_us_rules() {
        let rome = Zone::parse("Europe/Rome").unwrap();
        assert_eq!(rome.offset_at(at("2026-01-15T12:00:00Z")), 60);
        assert_eq!(rome.offset_at(at("2026-07-15T12:00:00Z")), 120);
        // 2026: last Sunday of March is the 29th, of October the 25th.
        assert_eq!(rome.offset_at(at("2026-03-29T00:59:59Z")), 60);
        assert_eq!(rome.offset_at(at("2026-03-29T01:00:00Z")), 120);
        assert_eq!(rome.offset_at(at("2026-10-25T00:59:59Z")), 120);
        assert_eq!(rome.offset_at(at("2026-10-25T01:00:00Z")), 60);
        let ny = Zone::parse("america/new_york").unwrap();
        // 2026: 8 March and 1 November.
        assert_eq!(ny.offset_at(at("2026-03-08T06:59:00Z")), -300);
        assert_eq!(ny.offset_at(at("2026-03-08T07:00:00Z")), -240);
        assert_eq!(ny.offset_at(at("2026-11-01T05:59:00Z")), -240);
        assert_eq!(ny.offset_at(at("2026-11-01T06:00:00Z")), -300);
        assert_eq!(Zone::parse("UTC+05:30").unwrap().std_offset_min, 330);
        assert_eq!(Zone::parse("UTC-3").unwrap().std_offset_min, -180);
        assert!(Zone::parse("Mars/Olympus").is_none());
        assert!(Zone::parse("UTC+15").is_none());
    }

    #[test]
    fn today_and_the_next_working_day() {
        let rome = Zone::parse("Europe/Rome").unwrap();
        let work = WorkingDays::parse("mon,tue,wed,thu,fri").unwrap();
        // Friday 2026-07-17 10:00 in Rome: today and Monday the 20th.
        let days = days_of_interest(&rome, &work, at("2026-07-17T08:00:00Z"));
        assert_eq!(
            days[0],
            (at("2026-07-16T22:00:00Z"), at("2026-07-17T22:00:00Z"))
        );
        assert_eq!(
            days[1],
            (at("2026-07-19T22:00:00Z"), at("2026-07-20T22:00:00Z"))
        );
        // Just after midnight local, still "today" locally.
        let d = days_of_interest(&rome, &work, at("2026-07-16T22:30:00Z"));
        assert_eq!(d[0].0, at("2026-07-16T22:00:00Z"));
        assert_eq!(WorkingDays::parse("Sun, Thu").unwrap().0, 0b100_1000);
        assert!(WorkingDays::parse("").is_none());
        assert!(WorkingDays::parse("mon,xyz").is_none());
        assert_eq!(weekday(days_from_civil(2026, 11, 29)), 6);
    }
}
