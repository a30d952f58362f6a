//! Date and time text as Graph and HTTP write it, to and from Unix
//! milliseconds (the RFC 3339 reading is the SDK's).

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

pub use presence_connector_sdk::time::format_datetime as format_rfc3339;
use presence_connector_sdk::time::{MissingZone, days_from_civil, parse_datetime};

/// Parses an RFC 3339 date-time (Graph writes seven fraction digits) into
/// Unix milliseconds. Graph always writes a zone; a time without one is
/// refused rather than guessed.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    parse_datetime(text, MissingZone::Reject)
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form of
/// `Retry-After` when it is a date.
pub fn parse_http_date(text: &str) -> Option<u64> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let month = MONTHS.iter().position(|m| m == month)? as u32 + 1;
    let day: u32 = day.parse().ok()?;
    let year: i64 = year.parse().ok()?;
    let mut hms = time.split(':').map(|p| p.parse::<u32>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some() || h > 23 || m > 59 || s > 60 || !(1..=31).contains(&day) {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400
        + i64::from(h) * 3600
        + i64::from(m) * 60
        + i64::from(s.min(59));
    u64::try_from(secs).ok().map(|s| s * 1000)
}

/// An ISO 8601 duration in whole minutes, rounded up (`PT45M`).
pub fn iso_minutes(ms: u64) -> String {
    format!("PT{}M", ms.div_ceil(60_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip_and_graph_precision() {
        let ms = 1_767_264_900_123; // 2026-01-01T10:55:00.123Z
        assert_eq!(format_rfc3339(ms), "2026-01-01T10:55:00.123Z");
        assert_eq!(parse_rfc3339("2026-01-01T10:55:00.123Z"), Some(ms));
        assert_eq!(
            parse_rfc3339("2026-01-01T10:55:00.1234567Z"),
            Some(ms),
            "Graph's seven fraction digits"
        );
        assert_eq!(parse_rfc3339("2026-01-01T11:55:00+01:00"), Some(ms - 123));
        assert_eq!(parse_rfc3339("2026-01-01T10:55:00"), None);
        assert_eq!(parse_rfc3339("2026-13-01T10:55:00Z"), None);
        assert_eq!(parse_rfc3339("garbage"), None);
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777_000)
        );
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT"), None);
    }

    #[test]
    fn durations_round_up_to_minutes() {
        assert_eq!(iso_minutes(3_600_000), "PT60M");
        assert_eq!(iso_minutes(61_000), "PT2M");
        assert_eq!(iso_minutes(300_000), "PT5M");
    }
}
