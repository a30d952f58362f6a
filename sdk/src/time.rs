//! Date-times as protocols write them (xs:dateTime in PIDF, RFC 3339 in
//! Graph and most JSON APIs) to and from Unix milliseconds.
//!
//! Written by hand because a date crate would be the largest dependency of
//! a connector for these few functions.

/// What a date-time without a zone means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingZone {
    /// Read it as UTC (xs:dateTime leaves it undefined; lenient readers
    /// such as PIDF's take UTC).
    Utc,
    /// Refuse it: a local time of an unknown zone is not to be guessed.
    Reject,
}

/// Parses `YYYY-MM-DDThh:mm:ss[.fraction][Z|±hh:mm]` into Unix milliseconds.
///
/// Lenient where servers are: `t`/space separators, lowercase `z`, offsets
/// written `±hhmm` or `±hh`, any number of fraction digits (truncated to
/// milliseconds; Graph writes seven), a leap second `60` (read as `59.999`).
/// A missing zone is read as `missing` says. Dates before 1970 or after 9999
/// give `None`.
pub fn parse_datetime(text: &str, missing: MissingZone) -> Option<u64> {
    let s = text.trim().as_bytes();
    let year = digits(s, 0, 4)?;
    expect(s, 4, b'-')?;
    let month = digits(s, 5, 2)?;
    expect(s, 7, b'-')?;
    let day = digits(s, 8, 2)?;
    if !matches!(s.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let hour = digits(s, 11, 2)?;
    expect(s, 13, b':')?;
    let minute = digits(s, 14, 2)?;
    expect(s, 16, b':')?;
    let mut second = digits(s, 17, 2)?;
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
        for _ in (pos - start)..3 {
            millis *= 10;
        }
    }
    let offset_minutes: i64 = match s.get(pos) {
        None if missing == MissingZone::Utc => 0,
        None => return None,
        Some(b'Z' | b'z') if pos + 1 == s.len() => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let hh = digits(s, pos + 1, 2)?;
            let mm = match s.len() - (pos + 3) {
                0 => 0,
                2 => digits(s, pos + 3, 2)?,
                3 if s[pos + 3] == b':' => digits(s, pos + 4, 2)?,
                _ => return None,
            };
            if hh > 14 || mm > 59 {
                return None;
            }
            let m = (hh * 60 + mm) as i64;
            if sign == b'+' { m } else { -m }
        }
        _ => return None,
    };

    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    if second == 60 {
        second = 59;
        millis = 999;
    }
    let days = days_from_civil(year as i64, month, day);
    let secs = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64 - offset_minutes * 60;
    let ms = secs.checked_mul(1000)?.checked_add(millis as i64)?;
    u64::try_from(ms).ok()
}

/// Formats Unix milliseconds as `YYYY-MM-DDThh:mm:ss.sssZ` (valid
/// xs:dateTime and RFC 3339).
pub fn format_datetime(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let millis = ms % 1000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

fn digits(s: &[u8], at: usize, n: usize) -> Option<u32> {
    let slice = s.get(at..at + n)?;
    slice.iter().try_fold(0u32, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

fn expect(s: &[u8], at: usize, byte: u8) -> Option<()> {
    (s.get(at) == Some(&byte)).then_some(())
}

fn is_leap(y: u32) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_zones_and_fractions() {
        assert_eq!(
            parse_datetime("1970-01-01T00:00:00Z", MissingZone::Utc),
            Some(0)
        );
        assert_eq!(
            parse_datetime("2026-01-01T10:00:00Z", MissingZone::Utc),
            Some(1_767_261_600_000)
        );
        assert_eq!(
            parse_datetime("2026-01-01T11:30:00+01:30", MissingZone::Utc),
            Some(1_767_261_600_000)
        );
        assert_eq!(
            parse_datetime("2026-01-01T05:00:00.25-05:00", MissingZone::Utc),
            Some(1_767_261_600_250)
        );
        assert_eq!(
            parse_datetime(" 2026-01-01t10:00:00.123456789z ", MissingZone::Utc),
            Some(1_767_261_600_123)
        );
        assert_eq!(
            parse_datetime("2026-01-01T12:00:00+0200", MissingZone::Utc),
            Some(1_767_261_600_000)
        );
        assert_eq!(
            parse_datetime("2026-01-01T10:00:00", MissingZone::Utc),
            Some(1_767_261_600_000)
        );
        assert_eq!(
            parse_datetime("2026-01-01T10:00:00", MissingZone::Reject),
            None
        );
        assert_eq!(
            parse_datetime("2024-02-29T00:00:00Z", MissingZone::Utc),
            Some(1_709_164_800_000)
        );
        assert_eq!(
            parse_datetime("2016-12-31T23:59:60Z", MissingZone::Utc),
            Some(1_483_228_799_999)
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "2026",
            "2026-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00Zjunk",
            "2026-01-01T00:00:00+25:00",
            "2026-01-01T00:00:00+01:0",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:00:00+01:00",
            "２026-01-01T00:00:00Z",
            "-2026-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_datetime(bad, MissingZone::Utc), None, "{bad}");
        }
    }

    #[test]
    fn format_round_trips() {
        // Far-future values must format without overflow even if unparsable.
        assert!(format_datetime(u64::MAX).ends_with('Z'));
        for ms in [0, 1_767_261_600_123, 1_709_164_800_000, 253_402_300_799_999] {
            assert_eq!(
                parse_datetime(&format_datetime(ms), MissingZone::Reject),
                Some(ms)
            );
        }
        assert_eq!(
            format_datetime(1_767_261_600_123),
            "2026-01-01T10:00:00.123Z"
        );
    }
}
