//! Date and time text as Graph and HTTP write it, to and from Unix
//! milliseconds.
//!
//! Written by hand because a date crate would be the largest dependency of
//! the connector for four functions.

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `2026-01-01T10:55:00.000Z` (what Graph's `expirationDateTime` takes).
pub fn format_rfc3339(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

fn num(s: &[u8], at: usize, len: usize) -> Option<u32> {
    let part = s.get(at..at + len)?;
    if !part.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(part).ok()?.parse().ok()
}

/// Parses `YYYY-MM-DDThh:mm:ss[.fraction](Z|±hh:mm)` into Unix milliseconds.
/// Graph writes seven fraction digits; any number is read (truncated to
/// milliseconds). Times before 1970 give `None`.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let s = text.trim().as_bytes();
    let (year, month, day) = (num(s, 0, 4)?, num(s, 5, 2)?, num(s, 8, 2)?);
    if s.get(4) != Some(&b'-') || s.get(7) != Some(&b'-') {
        return None;
    }
    if !matches!(s.get(10), Some(b'T' | b't' | b' ')) || s.get(13) != Some(&b':') {
        return None;
    }
    let (hour, minute, second) = (num(s, 11, 2)?, num(s, 14, 2)?, num(s, 17, 2)?);
    if s.get(16) != Some(&b':') {
        return None;
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let mut pos = 19;
    let mut millis = 0u64;
    if s.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while s.get(pos).is_some_and(u8::is_ascii_digit) {
            if pos - start < 3 {
                millis = millis * 10 + u64::from(s[pos] - b'0');
            }
            pos += 1;
        }
        if pos == start {
            return None;
        }
        for _ in (pos - start).min(3)..3 {
            millis *= 10;
        }
    }
    let offset_min: i64 = match s.get(pos) {
        Some(b'Z' | b'z') if pos + 1 == s.len() => 0,
        Some(&sign @ (b'+' | b'-')) if s.len() == pos + 6 && s[pos + 3] == b':' => {
            let m = i64::from(num(s, pos + 1, 2)?) * 60 + i64::from(num(s, pos + 4, 2)?);
            if sign == b'+' { m } else { -m }
        }
        // Graph always writes a zone; a local time is not something to guess.
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), month, day);
    let secs =
        days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second.min(59))
            - offset_min * 60;
    u64::try_from(secs).ok().map(|s| s * 1000 + millis)
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
