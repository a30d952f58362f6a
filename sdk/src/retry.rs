//! Retrying a failed request: `Retry-After` (RFC 9110 §10.2.3, delay-seconds
//! or an HTTP-date) and a [`Retry`] gate that honours it and otherwise backs
//! off exponentially with jitter ([`Backoff`]).
//!
//! Pure: the caller passes the current time (Unix ms) and a random number.

use crate::backoff::Backoff;
use crate::types::Header;

/// The longest `Retry-After` honoured, in ms (one hour): a server asking for
/// more is waited on this long, then asked again, so a wrong or hostile
/// header cannot park a connector for days.
pub const MAX_RETRY_AFTER_MS: u64 = 60 * 60_000;

/// Whether an HTTP status is worth retrying unchanged later: 408 Request
/// Timeout, 425 Too Early, 429 Too Many Requests and the 5xx server errors
/// except 501 Not Implemented and 505 HTTP Version Not Supported.
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 425 | 429)
        || (500..=599).contains(&status) && !matches!(status, 501 | 505)
}

/// How long a `Retry-After` value asks to wait, in ms, from `now_ms`:
/// delay-seconds (`120`) or an HTTP-date in any of the three forms a
/// recipient must accept (RFC 9110 §5.6.7). A date in the past means 0.
/// `None` when the value is neither. Decimal seconds (`1.5`), which some
/// services send, are read too.
pub fn parse_retry_after(value: &str, now_ms: u64) -> Option<u64> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(secs.saturating_mul(1000));
    }
    if let Ok(secs) = value.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some((secs * 1000.0) as u64);
    }
    parse_http_date(value).map(|at| at.saturating_sub(now_ms))
}

/// The `Retry-After` of a response's headers, in ms from `now_ms` (see
/// [`parse_retry_after`]); `None` when absent or unreadable.
pub fn retry_after_ms(headers: &[Header], now_ms: u64) -> Option<u64> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("retry-after"))
        .and_then(|h| parse_retry_after(&h.value, now_ms))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Parses an HTTP-date (RFC 9110 §5.6.7) into Unix ms: the IMF-fixdate
/// `Sun, 06 Nov 1994 08:49:37 GMT`, the obsolete RFC 850 form
/// `Sunday, 06-Nov-94 08:49:37 GMT` (two-digit years read as in the
/// 50-year window of RFC 9110, from 1970 here) and asctime
/// `Sun Nov  6 08:49:37 1994`. `None` for anything else.
pub fn parse_http_date(text: &str) -> Option<u64> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let (day, month, year, time) = match parts.as_slice() {
        [_, day, month, year, time, "GMT"] => (*day, *month, year.parse::<i64>().ok()?, *time),
        [_, date, time, "GMT"] => {
            let mut d = date.split('-');
            let (day, month, yy) = (d.next()?, d.next()?, d.next()?);
            if d.next().is_some() || yy.len() != 2 {
                return None;
            }
            let yy: i64 = yy.parse().ok()?;
            (
                day,
                month,
                if yy < 70 { 2000 + yy } else { 1900 + yy },
                *time,
            )
        }
        [_, month, day, time, year] => (*day, *month, year.parse::<i64>().ok()?, *time),
        _ => return None,
    };
    let month = MONTHS.iter().position(|m| *m == month)? as u32 + 1;
    let day: u32 = day.parse().ok()?;
    let mut hms = time.split(':').map(|p| p.parse::<u32>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some() || h > 23 || m > 59 || s > 60 || !(1..=31).contains(&day) {
        return None;
    }
    let secs = crate::time::days_from_civil(year, month, day) * 86_400
        + i64::from(h) * 3600
        + i64::from(m) * 60
        + i64::from(s.min(59));
    u64::try_from(secs).ok().map(|s| s * 1000)
}

/// When the next attempt may go after failures: the server's `Retry-After`
/// when it gave one (at most [`MAX_RETRY_AFTER_MS`]), otherwise the next
/// delay of an exponential back-off with jitter. A success resets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    backoff: Backoff,
    not_before: u64,
}

impl Retry {
    /// A gate whose back-off starts at `base_ms` and never exceeds `cap_ms`.
    pub const fn new(base_ms: u64, cap_ms: u64) -> Self {
        Self {
            backoff: Backoff::new(base_ms, cap_ms),
            not_before: 0,
        }
    }

    /// Whether an attempt may go at `now_ms`.
    pub fn ready(&self, now_ms: u64) -> bool {
        now_ms >= self.not_before
    }

    /// The earliest time (Unix ms) of the next attempt; 0 when unrestricted.
    pub fn not_before(&self) -> u64 {
        self.not_before
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.backoff.failures()
    }

    /// An attempt failed at `now_ms`; `retry_after_ms` is what the server
    /// asked for ([`retry_after_ms`]), if anything. Returns the wait in ms
    /// before the next attempt. `random` is any uniformly random number (the
    /// host's `random-bytes`), for the jitter.
    pub fn failed(&mut self, retry_after_ms: Option<u64>, random: u32, now_ms: u64) -> u64 {
        let backoff = self.backoff.next_delay(random);
        let wait = match retry_after_ms {
            Some(ms) => ms.min(MAX_RETRY_AFTER_MS),
            None => backoff,
        };
        self.not_before = now_ms.saturating_add(wait);
        wait
    }

    /// Holds attempts back until `at_ms` at least (e.g. after a refusal an
    /// operator must fix), without counting a failure.
    pub fn hold_until(&mut self, at_ms: u64) {
        self.not_before = self.not_before.max(at_ms);
    }

    /// An attempt succeeded: no wait, and the back-off starts over.
    pub fn succeeded(&mut self) {
        self.backoff.reset();
        self.not_before = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 784_111_777_000; // Sun, 06 Nov 1994 08:49:37 GMT

    #[test]
    fn retry_after_reads_seconds_and_all_three_date_forms() {
        assert_eq!(parse_retry_after("120", NOW), Some(120_000));
        assert_eq!(parse_retry_after(" 1.5 ", NOW), Some(1_500));
        for date in [
            "Sun, 06 Nov 1994 08:50:37 GMT",
            "Sunday, 06-Nov-94 08:50:37 GMT",
            "Sun Nov  6 08:50:37 1994",
        ] {
            assert_eq!(parse_retry_after(date, NOW), Some(60_000), "{date}");
        }
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", NOW),
            Some(0),
            "a date in the past means now"
        );
        for bad in [
            "",
            "-5",
            "soon",
            "Sun, 06 Nov 1994 25:00:00 GMT",
            "Sun, 06 Foo 1994 08:00:00 GMT",
        ] {
            assert_eq!(parse_retry_after(bad, NOW), None, "{bad:?}");
        }
        let headers = vec![Header {
            name: "Retry-After".into(),
            value: "7".into(),
        }];
        assert_eq!(retry_after_ms(&headers, NOW), Some(7_000));
        assert_eq!(retry_after_ms(&[], NOW), None);
    }

    #[test]
    fn retry_honours_retry_after_else_backs_off_and_resets() {
        let mut r = Retry::new(1_000, 8_000);
        assert!(r.ready(0));
        assert_eq!(r.failed(Some(30_000), 0, 100), 30_000);
        assert!(!r.ready(30_099));
        assert!(r.ready(30_100));
        // The back-off counted that failure: the second delay is in [1, 2] s.
        let wait = r.failed(None, 12_345, 40_000);
        assert!((1_000..=2_000).contains(&wait), "{wait}");
        assert_eq!(r.failures(), 2);
        assert_eq!(r.failed(Some(u64::MAX), 0, 0), MAX_RETRY_AFTER_MS);
        r.succeeded();
        assert!(r.ready(0));
        assert_eq!(r.failures(), 0);
        r.hold_until(5_000);
        assert!(!r.ready(4_999));
        assert!(retryable_status(503) && retryable_status(429) && retryable_status(408));
        assert!(!retryable_status(501) && !retryable_status(404) && !retryable_status(200));
    }
}
