//! Typed access to the configuration `configure` receives.

use std::fmt;

use crate::errors::invalid_config;
use crate::types::{ConfigEntry, ConfigValue, ConnectorError};

/// The configuration entries passed to `configure`, with typed getters.
///
/// The host has already checked each value against its field's kind; the
/// getters still check, because a connector must not trust that a field it
/// needs was sent at all. Every failure is a
/// [`ConnectorError::InvalidConfig`] naming the field, ready to return from
/// `configure` with `?`.
///
/// Empty text counts as missing: an operator who clears a field means "not
/// set".
///
/// `Debug` prints field names only, so secrets never reach a log.
#[derive(Clone, Default, PartialEq)]
pub struct Config {
    entries: Vec<ConfigEntry>,
}

impl Config {
    /// Wraps the entries `configure` received.
    pub fn new(entries: Vec<ConfigEntry>) -> Self {
        Self { entries }
    }

    /// All entries, in the order the host sent them.
    pub fn entries(&self) -> &[ConfigEntry] {
        &self.entries
    }

    /// The raw value of `name`, if it was sent. When a name appears more than
    /// once the last entry wins, as it would in a form.
    pub fn get(&self, name: &str) -> Option<&ConfigValue> {
        self.entries
            .iter()
            .rev()
            .find(|entry| entry.name == name)
            .map(|entry| &entry.value)
    }

    /// Required, non-empty text.
    pub fn text(&self, name: &str) -> Result<&str, ConnectorError> {
        self.opt_text(name)?.ok_or_else(|| missing(name))
    }

    /// Optional text; `None` when absent or empty.
    pub fn opt_text(&self, name: &str) -> Result<Option<&str>, ConnectorError> {
        match self.get(name) {
            None => Ok(None),
            Some(ConfigValue::Text(text)) if text.is_empty() => Ok(None),
            Some(ConfigValue::Text(text)) => Ok(Some(text)),
            Some(_) => Err(invalid_config(name, "must be text")),
        }
    }

    /// A required integer.
    pub fn integer(&self, name: &str) -> Result<i64, ConnectorError> {
        self.opt_integer(name)?.ok_or_else(|| missing(name))
    }

    /// An optional integer; `None` when absent.
    pub fn opt_integer(&self, name: &str) -> Result<Option<i64>, ConnectorError> {
        match self.get(name) {
            None => Ok(None),
            Some(ConfigValue::Integer(value)) => Ok(Some(*value)),
            Some(_) => Err(invalid_config(name, "must be an integer")),
        }
    }

    /// A required boolean.
    pub fn boolean(&self, name: &str) -> Result<bool, ConnectorError> {
        self.opt_boolean(name)?.ok_or_else(|| missing(name))
    }

    /// An optional boolean; `None` when absent.
    pub fn opt_boolean(&self, name: &str) -> Result<Option<bool>, ConnectorError> {
        match self.get(name) {
            None => Ok(None),
            Some(ConfigValue::Boolean(value)) => Ok(Some(*value)),
            Some(_) => Err(invalid_config(name, "must be true or false")),
        }
    }
}

impl From<Vec<ConfigEntry>> for Config {
    fn from(entries: Vec<ConfigEntry>) -> Self {
        Self::new(entries)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field(
                "fields",
                &self.entries.iter().map(|e| &e.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn missing(name: &str) -> ConnectorError {
    invalid_config(name, "is required")
}

/// A configuration field for `describe`, in one call.
///
/// `default` is written as an operator would type it; the host checks it
/// against `kind` when the plugin loads.
pub fn config_field(
    name: &str,
    label: &str,
    description: &str,
    kind: crate::types::FieldKind,
    default: Option<&str>,
    required: bool,
    secret: bool,
) -> crate::types::ConfigField {
    crate::types::ConfigField {
        name: name.into(),
        label: label.into(),
        description: description.into(),
        kind,
        default_value: default.map(Into::into),
        required,
        secret,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::FieldError;

    fn entry(name: &str, value: ConfigValue) -> ConfigEntry {
        ConfigEntry {
            name: name.into(),
            value,
        }
    }

    fn config() -> Config {
        Config::new(vec![
            entry("server", ConfigValue::Text("pbx.example.com".into())),
            entry("empty", ConfigValue::Text(String::new())),
            entry("port", ConfigValue::Integer(5060)),
            entry("tls", ConfigValue::Boolean(true)),
        ])
    }

    fn field_error(field: &str, message: &str) -> ConnectorError {
        ConnectorError::InvalidConfig(FieldError {
            field: field.into(),
            message: message.into(),
        })
    }

    #[test]
    fn typed_getters_return_values() {
        let config = config();
        assert_eq!(config.text("server"), Ok("pbx.example.com"));
        assert_eq!(config.opt_text("server"), Ok(Some("pbx.example.com")));
        assert_eq!(config.integer("port"), Ok(5060));
        assert_eq!(config.boolean("tls"), Ok(true));
        assert_eq!(config.opt_integer("absent"), Ok(None));
        assert_eq!(config.opt_boolean("absent"), Ok(None));
    }

    #[test]
    fn missing_and_empty_values_are_errors_naming_the_field() {
        let config = config();
        assert_eq!(
            config.text("absent"),
            Err(field_error("absent", "is required"))
        );
        assert_eq!(
            config.text("empty"),
            Err(field_error("empty", "is required"))
        );
        assert_eq!(config.opt_text("empty"), Ok(None));
        assert_eq!(
            config.integer("absent"),
            Err(field_error("absent", "is required"))
        );
        assert_eq!(
            config.boolean("absent"),
            Err(field_error("absent", "is required"))
        );
    }

    #[test]
    fn wrong_kinds_are_errors_naming_the_field() {
        let config = config();
        assert_eq!(
            config.text("port"),
            Err(field_error("port", "must be text"))
        );
        assert_eq!(
            config.integer("server"),
            Err(field_error("server", "must be an integer"))
        );
        assert_eq!(
            config.boolean("port"),
            Err(field_error("port", "must be true or false"))
        );
    }

    #[test]
    fn last_entry_wins_and_debug_hides_values() {
        let mut entries = config().entries().to_vec();
        entries.push(entry("port", ConfigValue::Integer(5061)));
        let config = Config::from(entries);
        assert_eq!(config.integer("port"), Ok(5061));
        assert!(!format!("{config:?}").contains("pbx.example.com"));
    }
}
