//! The connector's configuration: the fields it declares and their validation,
//! from one struct (`#[derive(ConnectorConfig)]`).

use std::fmt;

use presence_connector_sdk::{Config, ConfigField, ConnectorConfig, ConnectorError, Secret};

// The field names, for the tests; the fields of `Fields` below are the names.
#[cfg(test)]
const SHARED_SECRET: &str = "shared_secret";
#[cfg(test)]
const MAX_SKEW_SECONDS: &str = "max_skew_seconds";
#[cfg(test)]
const STATE_VALID_SECONDS: &str = "state_valid_seconds";
/// The range of a declared validity (seconds), here and in payloads; the
/// field's `range` below says the same.
pub const VALID_SECONDS_RANGE: std::ops::RangeInclusive<u64> = 1..=86_400;

/// The fields as the operator fills them in; `describe` announces them and
/// [`Settings::from_config`] reads them.
///
/// The secret's floor: shorter keys are guessable; 16 bytes is the floor
/// RFC 2104 suggests for SHA-256 (half its output length). The skew's
/// ceiling: an hour covers any sane clock drift; a longer window only widens
/// the time a captured request stays interesting and the replay set's size.
#[derive(ConnectorConfig)]
struct Fields {
    /// HMAC-SHA256 key the sender signs each request with; at least 16 bytes.
    #[config(label = "Shared secret", min_len = 16)]
    shared_secret: Secret,
    /// How far the sender's X-Hub-Timestamp may be from the hub's clock;
    /// also how long a signature is remembered to refuse replays.
    #[config(
        label = "Maximum clock skew (seconds)",
        default = 300,
        range(min = 1, max = 3600)
    )]
    max_skew_seconds: u64,
    /// How long a pushed state holds unless pushed again (an update's own
    /// valid_for_seconds wins). Set it when the sender re-sends its state
    /// periodically, so that a sender that dies does not leave its last
    /// state standing; empty: a state holds until the sender changes it.
    #[config(label = "State valid for (seconds)", range(min = 1, max = 86400))]
    state_valid_seconds: Option<u64>,
}

/// The fields `describe` announces.
pub fn config_fields() -> Vec<ConfigField> {
    Fields::config_fields()
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
    /// Validates the configuration `configure` received: an
    /// [`ConnectorError::InvalidConfig`] names the field and what is allowed
    /// (`must be a whole number from 1 to 3600`).
    pub fn from_config(config: &Config) -> Result<Self, ConnectorError> {
        let fields = Fields::from_config(config)?;
        Ok(Self {
            secret: fields.shared_secret.expose().as_bytes().to_vec(),
            max_skew_secs: fields.max_skew_seconds,
            state_valid_ms: fields.state_valid_seconds.map(|v| v * 1000),
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
    fn rejects_a_validity_out_of_range_and_names_the_bounds() {
        let err = Settings::from_config(&config(&[
            (SHARED_SECRET, ConfigValue::Text(SECRET.into())),
            (STATE_VALID_SECONDS, ConfigValue::Integer(86_401)),
        ]))
        .unwrap_err();
        let err = field_error(err);
        assert_eq!(err.field, STATE_VALID_SECONDS);
        assert_eq!(err.message, "must be a whole number from 1 to 86400");
        let ok = Settings::from_config(&config(&[
            (SHARED_SECRET, ConfigValue::Text(SECRET.into())),
            (STATE_VALID_SECONDS, ConfigValue::Integer(60)),
        ]))
        .unwrap();
        assert_eq!(ok.state_valid_ms, Some(60_000));
    }

    #[test]
    fn declares_its_fields() {
        let fields = config_fields();
        assert_eq!(fields[0].name, SHARED_SECRET);
        assert!(fields[0].required && fields[0].secret);
        assert_eq!(fields[1].name, MAX_SKEW_SECONDS);
        assert_eq!(fields[1].default_value.as_deref(), Some("300"));
        assert!(!fields[1].required);
        assert_eq!(fields[1].label, "Maximum clock skew (seconds)");
        assert_eq!(fields[2].name, STATE_VALID_SECONDS);
        assert!(!fields[2].required && fields[2].default_value.is_none());
        assert!(
            fields[2]
                .description
                .starts_with("How long a pushed state holds")
        );
    }
}
