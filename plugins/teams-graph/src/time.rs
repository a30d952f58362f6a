//! Date and time text as Graph writes it, to and from Unix milliseconds
//! (the RFC 3339 reading is the SDK's; HTTP dates are `sdk::retry`'s).

pub use presence_connector_sdk::time::format_datetime as format_rfc3339;
use presence_connector_sdk::time::{MissingZone, parse_datetime};

/// Parses an RFC 3339 date-time (Graph writes seven fraction digits) into
/// Unix milliseconds. Graph always writes a zone; a time without one is
/// refused rather than guessed.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    parse_datetime(text, MissingZone::Reject)
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
    fn durations_round_up_to_minutes() {
        assert_eq!(iso_minutes(3_600_000), "PT60M");
        assert_eq!(iso_minutes(61_000), "PT2M");
        assert_eq!(iso_minutes(300_000), "PT5M");
    }
}
