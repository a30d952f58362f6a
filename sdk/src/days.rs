//! Day numbers (days since 1970-01-01, proleptic Gregorian) and the days
//! daylight-saving rules name: the EU changes clocks on the last Sunday of
//! March and October, the US on the second Sunday of March and the first
//! of November. Calendar connectors that map a zone's "today" use these.

pub use crate::time::{civil_from_days, days_from_civil};

/// Day of the week of a day number: 0 = Monday ... 6 = Sunday.
pub fn weekday(day: i64) -> u32 {
    // 1970-01-01 was a Thursday.
    (day + 3).rem_euclid(7) as u32
}

/// The day number of the last Sunday of `month` (1-12) in `year`.
pub fn last_sunday(year: i64, month: u32) -> i64 {
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    let last = days_from_civil(next_year, next_month, 1) - 1;
    last - i64::from((weekday(last) + 1) % 7)
}

/// The day number of the `n`-th (1-based) Sunday of `month` in `year`.
pub fn nth_sunday(year: i64, month: u32, n: u32) -> i64 {
    let first = days_from_civil(year, month, 1);
    let to_sunday = i64::from((6 + 7 - weekday(first)) % 7);
    first + to_sunday + 7 * (i64::from(n) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sundays_of_the_2026_clock_changes() {
        assert_eq!(weekday(days_from_civil(2026, 11, 29)), 6);
        assert_eq!(weekday(0), 3, "1970-01-01 was a Thursday");
        // EU: 29 March and 25 October 2026.
        assert_eq!(civil_from_days(last_sunday(2026, 3)), (2026, 3, 29));
        assert_eq!(civil_from_days(last_sunday(2026, 10)), (2026, 10, 25));
        assert_eq!(civil_from_days(last_sunday(2026, 12)), (2026, 12, 27));
        // US: 8 March and 1 November 2026.
        assert_eq!(civil_from_days(nth_sunday(2026, 3, 2)), (2026, 3, 8));
        assert_eq!(civil_from_days(nth_sunday(2026, 11, 1)), (2026, 11, 1));
    }
}
