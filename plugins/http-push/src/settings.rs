//! The connector's configuration: the fields it declares and their validation.

use std::fmt;

use presence_connector_sdk::{Config, ConfigField, ConnectorError, FieldKind, invalid_config};

/// Name of the HMAC key field.
pub const SHARED_SECRET: &str = "shared_secret";
/// Name of the allowed clock difference field.
pub const MAX_SKEW_SECONDS: &str = "max_skew_seconds";
/// Name of the field giving pushed states a validity.
pub const STATE_VALID_SECONDS: &str = "state_valid_seconds";
/// The range of a declared validity (seconds), here and in payloads.
pub const VALID_SECONDS_RANGE: std::ops::RangeInclusive<u64> = 1..=86_400;

/// Shorter keys are guessable; 16 bytes is the floor RFC 2104 suggests for
/// SHA-256 (half its output length).
const MIN_SECRET_BYTES: usize = 16;
const DEFAULT_MAX_SKEW_SECONDS: i64 = 300;
/// An hour covers any sane clock drift; a longer window only widens the
/// time a captured request stays interesting and the replay set's size.
const MAX_SKEW_RANGE: std::ops::RangeInclusive<i64> = 1..=3600;

/// The fields `describe` announces.
pub fn config_fields() -> Vec<ConfigField> {
    vec![
        ConfigField {
            name: SHARED_SECRET.into(),
            label: "Shared secret".into(),
            description: format!(
                "HMAC-SHA256 key the sender signs each request with; at least \
                 {MIN_SECRET_BYTES} bytes."
            ),
            kind: FieldKind::Text,
            default_value: None,
            required: true,
            secret: true,
        },
        ConfigField {
            name: MAX_SKEW_SECONDS.into(),
            label: "Maximum clock skew (seconds)".into(),
            description: "How far the sender's X-Hub-Timestamp may be from the hub's clock; \
                          also how long a signature is remembered to refuse replays."
                .into(),
            kind: FieldKind::Integer,
            default_value: Some(DEFAULT_MAX_SKEW_SECONDS.to_string()),
            required: false,
            secret: false,
        },
        ConfigField {
            name: STATE_VALID_SECONDS.into(),
            label: "State valid for (seconds)".into(),
            description: "How long a pushed state holds unless pushed again (an update's own \
                          valid_for_seconds wins). Set it when the sender re-sends its state \
                          periodically, so that a sender that dies does not leave its last \
                          state standing; empty: a state holds until the sender changes it."
                .into(),
            kind: FieldKind::Integer,
            default_value: None,
            required: false,
            secret: false,
        },
    ]
}

/// A validated configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// The HMAC-SHA256 key.
    pub secret: Vec<u8>,
    /// Allowed difference between the sender's timestamp and the hub clock,
    /// which is also the replay window.
    pub max_skew_secs: u64,
    /// How long a pushed state holds unless the update says (ms).
    pub state_valid_ms: Option<u64>,
}

impl Settings {
    /// Validates the configuration `configure` received.
    pub fn from_config(config: &Config) -> Result<Self, ConnectorError> {
        let secret = config.text(SHARED_SECRET)?;
        if secret.len() < MIN_SECRET_BYTES {
            return Err(invalid_config(
                SHARED_SECRET,
                format!("must be at least {MIN_SECRET_BYTES} bytes long"),
            ));
        }
        // The host should fill in the default, but an absent optional field
        // must not stop the connector.
        let skew = config
            .opt_integer(MAX_SKEW_SECONDS)?
            .unwrap_or(DEFAULT_MAX_SKEW_SECONDS);
        if !MAX_SKEW_RANGE.contains(&skew) {
            return Err(invalid_config(
                MAX_SKEW_SECONDS,
                format!(
                    "must be between {} and {} seconds",
                    MAX_SKEW_RANGE.start(),
                    MAX_SKEW_RANGE.end()
                ),
            ));
        }
        let valid = config.opt_integer(STATE_VALID_SECONDS)?;
        if let Some(v) = valid
            && !u64::try_from(v).is_ok_and(|v| VALID_SECONDS_RANGE.contains(&v))
        {
            return Err(invalid_config(
                STATE_VALID_SECONDS,
                format!(
                    "must be between {} and {} seconds, or left empty",
                    VALID_SECONDS_RANGE.start(),
                    VALID_SECONDS_RANGE.end()
                ),
            ));
        }
        Ok(Self {
            secret: secret.as_bytes().to_vec(),
            max_skew_secs: skew.unsigned_abs(),
            state_valid_ms: valid.map(|v| v.unsigned_abs() * 1000),
        })
    }
}

/// Keeps the key out of logs and panic messages.
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("secret", &"<redacted>")
            .field("max_skew_secs", &self.max_skew_secs)
            .field("state_valid_ms", &self.state_valid_ms)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use presence_connector_sdk::{ConfigEntry, ConfigValue, FieldError};

    fn config(entries: &[(&str, ConfigValue)]) -> Config {
        Config::new(
            entries
                .iter()
                .map(|(name, value)| ConfigEntry {
                    name: (*name).into(),
                    value: value.clone(),
                })
                .collect(),
        )
    }

    fn field_error(err: ConnectorError) -> FieldError {
        match err {
            ConnectorError::InvalidConfig(e) => e,
            other => panic!("expected invalid-config, got {other:?}"),
        }
    }

    const SECRET: &str = "0123456789abcdef";

    #[test]
    fn accepts_a_good_configuration_and_defaults_the_skew() {
        let settings = Settings::from_config(&config(&[(
            SHARED_SECRET,
            ConfigValue::Text(SECRET.into()),
        )]))
        .unwrap();
        assert_eq!(settings.secret, SECRET.as_bytes());
        assert_eq!(settings.max_skew_secs, 300);
        assert!(!format!("{settings:?}").contains(SECRET));
    }

    #[test]
    fn rejects_a_missing_or_short_secret() {
        let err = Settings::from_config(&config(&[])).unwrap_err();
        assert_eq!(field_error(err).field, SHARED_SECRET);
        let err = Settings::from_config(&config(&[(
            SHARED_SECRET,
            ConfigValue::Text("too-short".into()),
        )]))
        .unwrap_err();
        let err = field_error(err);
        assert_eq!(err.field, SHARED_SECRET);
        assert!(err.message.contains("16 bytes"), "{}", err.message);
    }

    #[test]
    fn rejects_a_skew_out_of_range() {
        for skew in [0, -5, 3601] {
            let err = Settings::from_config(&config(&[
                (SHARED_SECRET, ConfigValue::Text(SECRET.into())),
                (MAX_SKEW_SECONDS, ConfigValue::Integer(skew)),
            ]))
            .unwrap_err();
            assert_eq!(field_error(err).field, MAX_SKEW_SECONDS, "skew {skew}");
        }
        let ok = Settings::from_config(&config(&[
            (SHARED_SECRET, ConfigValue::Text(SECRET.into())),
            (MAX_SKEW_SECONDS, ConfigValue::Integer(3600)),
        ]))
        .unwrap();
        assert_eq!(ok.max_skew_secs, 3600);
    }

    #[test]
    fn declares_its_fields() {
        let fields = config_fields();
        assert_eq!(fields[0].name, SHARED_SECRET);
        assert!(fields[0].required && fields[0].secret);
        assert_eq!(fields[1].name, MAX_SKEW_SECONDS);
        assert_eq!(fields[1].default_value.as_deref(), Some("300"));
        assert!(!fields[1].required);
    }
}
