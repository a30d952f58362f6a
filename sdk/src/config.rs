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

/// A configuration struct: the fields `describe` announces and the typed,
/// checked parse of what `configure` receives, from one declaration.
///
/// Derive it (`#[derive(ConnectorConfig)]`, re-exported from this crate)
/// rather than implementing it: each struct field is one configuration
/// field, described by `#[config(...)]` attributes.
///
/// ```
/// use presence_connector_sdk::{Config, ConfigEntry, ConfigValue, ConnectorConfig, Secret};
///
/// #[derive(ConnectorConfig, Debug)]
/// struct Settings {
///     /// The PBX to register with.
///     #[config(label = "Server", server_address(default_port = 5060))]
///     server: String,
///     /// SIP password; at least 8 bytes.
///     #[config(min_len = 8)]
///     password: Secret,
///     /// How long a subscription lasts (seconds).
///     #[config(label = "Expiry (seconds)", default = 3600, range(min = 60, max = 86400))]
///     expires: u32,
///     #[config(choice("udp", "tcp", "tls"), default = "tls")]
///     transport: String,
///     /// Only these users (comma-separated); empty: everyone.
///     users: Option<String>,
/// }
///
/// // In describe(): `config_fields: Settings::config_fields()`.
/// assert_eq!(Settings::config_fields()[2].default_value.as_deref(), Some("3600"));
///
/// // In new(): `let settings = Settings::from_config(config)?;`
/// let entry = |name: &str, value: ConfigValue| ConfigEntry { name: name.into(), value };
/// let config = Config::new(vec![
///     entry("server", ConfigValue::Text("pbx.example.com".into())),
///     entry("password", ConfigValue::Text("correct horse".into())),
///     entry("expires", ConfigValue::Integer(30)),
/// ]);
/// assert_eq!(
///     Settings::from_config(&config).unwrap_err(),
///     presence_connector_sdk::invalid_config("expires", "must be a whole number from 60 to 86400")
/// );
/// ```
///
/// The attributes:
///
/// | attribute | meaning |
/// | --- | --- |
/// | `name = "wire_name"` | the configuration name (default: the Rust field name) |
/// | `label = "..."` | the label operators read (default: the name, spaced and capitalised) |
/// | `description = "..."` | help text (default: the field's `///` comment) |
/// | `secret` | stored encrypted, never shown (implied by the [`Secret`] type) |
/// | `default = "x"` / `300` / `true` | used when absent or empty; the field is then not required |
/// | `range(min = A, max = B)` | bounds of an integer (either may be left out) |
/// | `min_len = N` | minimum length of a text, in bytes |
/// | `url` | an absolute http(s)/ws(s) URL (kind `url`) |
/// | `choice("a", "b")` | one of the values (kind `choice`) |
/// | `server_address(default_port = N)` | a server as `host[:port]` (kind `server-address`) |
/// | `validate = "path::to_fn"` | a further check, `fn(&T) -> Result<(), impl Into<String>>` (called for a present value) |
///
/// The Rust type gives the kind: `String` and [`Secret`] are text, `bool`
/// is boolean, `i64`, `u64`, `i32`, `u32`, `u16`, `u8` and `usize` are
/// integers bounded by the type as well as by `range`. `Option<T>` is
/// optional; any other field without a default is required. An attribute
/// that does not fit the type (`range` on a `String`) fails to compile.
///
/// An attribute that does not fit the type is refused by the compiler:
///
/// ```compile_fail
/// use presence_connector_sdk::ConnectorConfig;
///
/// #[derive(ConnectorConfig)]
/// struct Settings {
///     #[config(range(min = 1, max = 10))]
///     name: String,
/// }
/// ```
///
/// # Errors
///
/// `from_config` returns [`ConnectorError::InvalidConfig`] naming the field
/// and what is allowed: `is required`, `must be text`, `must be true or
/// false`, `must be a whole number from 60 to 86400`, `must be at least 16
/// bytes long`, `must be one of: udp, tcp, tls`, `must be an absolute
/// http(s) or ws(s) URL`, `must be a server as host[:port]`, or the message
/// of a `validate` function.
pub trait ConnectorConfig: Sized {
    /// The fields, in declaration order, for [`crate::PluginInfo`]'s
    /// `config_fields`.
    fn config_fields() -> Vec<crate::types::ConfigField>;

    /// Reads and checks every field; the first bad field is the error.
    fn from_config(config: &Config) -> Result<Self, ConnectorError>;
}

/// A secret configuration text (a password, a key): `Debug` prints
/// `Secret(<redacted>)`, so a settings struct can derive `Debug` and still
/// be logged. A field of this type is declared `secret` to the host.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret text.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; pass it on, never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// What `#[derive(ConnectorConfig)]` expands to; not part of the API.
#[doc(hidden)]
pub mod derive {
    use super::{Config, Secret};
    use crate::errors::invalid_config;
    use crate::types::{ConfigField, ConfigValue, ConnectorError, FieldKind};

    /// The kind of value a Rust type holds.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum ValueKind {
        Text,
        Integer,
        Boolean,
    }

    /// A field's kind beyond its Rust type.
    #[derive(Clone, Copy, Debug)]
    pub enum Shape {
        Plain,
        Url,
        Choice(&'static [&'static str]),
        ServerAddress(u16),
    }

    /// A field's default, as declared.
    #[derive(Clone, Copy, Debug)]
    pub enum DefaultValue {
        Text(&'static str),
        Integer(i64),
        Boolean(bool),
    }

    impl DefaultValue {
        fn value(self) -> ConfigValue {
            match self {
                Self::Text(t) => ConfigValue::Text(t.into()),
                Self::Integer(n) => ConfigValue::Integer(n),
                Self::Boolean(b) => ConfigValue::Boolean(b),
            }
        }
        fn typed(self) -> String {
            match self {
                Self::Text(t) => t.into(),
                Self::Integer(n) => n.to_string(),
                Self::Boolean(b) => b.to_string(),
            }
        }
    }

    /// One field as declared by the derive's attributes.
    #[derive(Clone, Copy, Debug)]
    pub struct FieldSpec {
        pub name: &'static str,
        pub label: &'static str,
        pub description: &'static str,
        pub secret: bool,
        pub default: Option<DefaultValue>,
        pub min: Option<i64>,
        pub max: Option<i64>,
        pub min_len: Option<usize>,
        pub shape: Shape,
    }

    impl FieldSpec {
        /// The field as `describe` announces it, for a field of type `T`.
        pub fn field<T: FieldValue>(&self) -> ConfigField {
            let kind = match self.shape {
                Shape::Plain => match T::VALUE_KIND {
                    ValueKind::Text => FieldKind::Text,
                    ValueKind::Integer => FieldKind::Integer,
                    ValueKind::Boolean => FieldKind::Boolean,
                },
                Shape::Url => FieldKind::Url,
                Shape::Choice(values) => {
                    FieldKind::Choice(values.iter().map(|v| (*v).into()).collect())
                }
                Shape::ServerAddress(port) => FieldKind::ServerAddress(port),
            };
            ConfigField {
                name: self.name.into(),
                label: self.label.into(),
                description: self.description.into(),
                kind,
                default_value: self.default.map(DefaultValue::typed),
                required: !T::OPTIONAL && self.default.is_none(),
                secret: self.secret || T::SECRET,
            }
        }

        /// The value sent, or the default; `None` when neither (empty text
        /// counts as not sent).
        fn value(&self, config: &Config) -> Option<ConfigValue> {
            match config.get(self.name) {
                Some(ConfigValue::Text(t)) if t.is_empty() => None,
                Some(value) => Some(value.clone()),
                None => None,
            }
            .or_else(|| self.default.map(DefaultValue::value))
        }

        fn error(&self, message: impl Into<String>) -> ConnectorError {
            invalid_config(self.name, message)
        }

        fn text(&self, value: ConfigValue) -> Result<String, ConnectorError> {
            let ConfigValue::Text(text) = value else {
                return Err(self.error("must be text"));
            };
            if let Some(min) = self.min_len
                && text.len() < min
            {
                return Err(self.error(format!("must be at least {min} bytes long")));
            }
            match self.shape {
                Shape::Plain => {}
                Shape::Choice(values) => {
                    if !values.contains(&text.as_str()) {
                        return Err(self.error(format!("must be one of: {}", values.join(", "))));
                    }
                }
                Shape::Url => {
                    if !is_absolute_url(&text) {
                        return Err(self.error("must be an absolute http(s) or ws(s) URL"));
                    }
                }
                Shape::ServerAddress(_) => {
                    if !is_server_address(&text) {
                        return Err(self.error("must be a server as host[:port]"));
                    }
                }
            }
            Ok(text)
        }

        /// `value` as an integer within `range` and `lo..=hi` (the type's
        /// bounds).
        fn integer(&self, value: ConfigValue, lo: i64, hi: i64) -> Result<i64, ConnectorError> {
            let min = self.min.map_or(lo, |m| m.max(lo));
            let max = self.max.map_or(hi, |m| m.min(hi));
            match value {
                ConfigValue::Integer(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(self.error(integer_words(min, max))),
            }
        }
    }

    /// `must be a whole number from 60 to 86400`, with the open ends left out.
    fn integer_words(min: i64, max: i64) -> String {
        match (min == i64::MIN, max == i64::MAX) {
            (true, true) => "must be a whole number".into(),
            (false, true) => format!("must be a whole number of at least {min}"),
            (true, false) => format!("must be a whole number of at most {max}"),
            (false, false) => format!("must be a whole number from {min} to {max}"),
        }
    }

    /// `scheme://authority...` with a scheme the host's `url` kind accepts.
    fn is_absolute_url(text: &str) -> bool {
        ["http://", "https://", "ws://", "wss://"]
            .iter()
            .any(|scheme| {
                text.len() > scheme.len()
                    && text[..scheme.len()].eq_ignore_ascii_case(scheme)
                    && !text[scheme.len()..].starts_with('/')
            })
    }

    /// `host`, `host:port` or `[v6]:port`, with a port from 1 to 65535.
    fn is_server_address(text: &str) -> bool {
        if text.is_empty() || text.contains(['/', ' ', '@']) {
            return false;
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            match rest.split_once(']') {
                Some((host, "")) => (host, None),
                Some((host, port)) => match port.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return false,
                },
                None => return false,
            }
        } else {
            match text.rsplit_once(':') {
                Some((host, port)) if !host.contains(':') => (host, Some(port)),
                Some(_) => return false,
                None => (text, None),
            }
        };
        !host.is_empty() && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p != 0))
    }

    /// A Rust type a configuration field can hold.
    pub trait FieldValue: Sized {
        const VALUE_KIND: ValueKind;
        /// `Option<T>`: absent is fine.
        const OPTIONAL: bool = false;
        /// Declared secret to the host whatever the attributes say.
        const SECRET: bool = false;
        /// What a `validate` function receives.
        type Inner;
        fn present(&self) -> Option<&Self::Inner>;
        fn read(config: &Config, spec: &FieldSpec) -> Result<Self, ConnectorError>;
    }

    /// A type read from one present value.
    pub trait Scalar: Sized {
        const VALUE_KIND: ValueKind;
        const SECRET: bool = false;
        fn from_value(spec: &FieldSpec, value: ConfigValue) -> Result<Self, ConnectorError>;
    }

    impl<T: Scalar> FieldValue for T {
        const VALUE_KIND: ValueKind = T::VALUE_KIND;
        const SECRET: bool = <T as Scalar>::SECRET;
        type Inner = T;
        fn present(&self) -> Option<&T> {
            Some(self)
        }
        fn read(config: &Config, spec: &FieldSpec) -> Result<Self, ConnectorError> {
            match spec.value(config) {
                Some(value) => T::from_value(spec, value),
                None => Err(spec.error("is required")),
            }
        }
    }

    impl<T: Scalar> FieldValue for Option<T> {
        const VALUE_KIND: ValueKind = T::VALUE_KIND;
        const OPTIONAL: bool = true;
        const SECRET: bool = <T as Scalar>::SECRET;
        type Inner = T;
        fn present(&self) -> Option<&T> {
            self.as_ref()
        }
        fn read(config: &Config, spec: &FieldSpec) -> Result<Self, ConnectorError> {
            spec.value(config)
                .map(|value| T::from_value(spec, value))
                .transpose()
        }
    }

    impl Scalar for String {
        const VALUE_KIND: ValueKind = ValueKind::Text;
        fn from_value(spec: &FieldSpec, value: ConfigValue) -> Result<Self, ConnectorError> {
            spec.text(value)
        }
    }

    impl Scalar for Secret {
        const VALUE_KIND: ValueKind = ValueKind::Text;
        const SECRET: bool = true;
        fn from_value(spec: &FieldSpec, value: ConfigValue) -> Result<Self, ConnectorError> {
            spec.text(value).map(Secret)
        }
    }

    impl Scalar for bool {
        const VALUE_KIND: ValueKind = ValueKind::Boolean;
        fn from_value(spec: &FieldSpec, value: ConfigValue) -> Result<Self, ConnectorError> {
            match value {
                ConfigValue::Boolean(b) => Ok(b),
                _ => Err(spec.error("must be true or false")),
            }
        }
    }

    macro_rules! integers {
        ($($ty:ty),*) => {$(
            impl Scalar for $ty {
                const VALUE_KIND: ValueKind = ValueKind::Integer;
                fn from_value(spec: &FieldSpec, value: ConfigValue) -> Result<Self, ConnectorError> {
                    let lo = i64::try_from(<$ty>::MIN).unwrap_or(i64::MIN);
                    let hi = i64::try_from(<$ty>::MAX).unwrap_or(i64::MAX);
                    let n = spec.integer(value, lo, hi)?;
                    // In range by the check above.
                    <$ty>::try_from(n).map_err(|_| spec.error(integer_words(lo, hi)))
                }
            }
        )*};
    }
    integers!(i64, u64, i32, u32, i16, u16, u8, usize);
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

#[cfg(test)]
mod derive_tests {
    use crate::types::{ConfigEntry, ConfigValue, FieldError, FieldKind};
    use crate::{Config, ConnectorConfig, ConnectorError, Secret};

    fn no_spaces(text: &str) -> Result<(), String> {
        if text.contains(' ') {
            Err("must not contain spaces".into())
        } else {
            Ok(())
        }
    }

    #[derive(ConnectorConfig, Debug, PartialEq)]
    struct Settings {
        /// The PBX to register with.
        #[config(label = "Server", server_address(default_port = 5060))]
        server: String,
        /// SIP password.
        #[config(min_len = 8)]
        password: Secret,
        #[config(
            label = "Expiry (seconds)",
            description = "How long a registration lasts.",
            default = 3600,
            range(min = 60, max = 86400)
        )]
        expires: u32,
        #[config(choice("udp", "tcp", "tls"), default = "tls")]
        transport: String,
        #[config(name = "base-url", url)]
        base_url: Option<String>,
        #[config(default = false)]
        verbose: bool,
        /// Offset (minutes); may be negative.
        #[config(range(min = -720, max = 840))]
        offset: Option<i64>,
        #[config(secret, validate = "no_spaces")]
        token: Option<String>,
        port: Option<u16>,
    }

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

    fn text(t: &str) -> ConfigValue {
        ConfigValue::Text(t.into())
    }

    fn minimal() -> Vec<(&'static str, ConfigValue)> {
        vec![
            ("server", text("pbx.example.com")),
            ("password", text("s3cret-pass")),
        ]
    }

    fn refused(extra: (&'static str, ConfigValue)) -> FieldError {
        let mut entries = minimal();
        entries.push(extra);
        match Settings::from_config(&config(&entries)) {
            Err(ConnectorError::InvalidConfig(e)) => e,
            other => panic!("expected invalid-config, got {other:?}"),
        }
    }

    fn field_error(field: &str, message: &str) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }

    #[test]
    fn parses_values_and_fills_defaults() {
        let settings = Settings::from_config(&config(&minimal())).unwrap();
        assert_eq!(
            settings,
            Settings {
                server: "pbx.example.com".into(),
                password: Secret::new("s3cret-pass"),
                expires: 3600,
                transport: "tls".into(),
                base_url: None,
                verbose: false,
                offset: None,
                token: None,
                port: None,
            }
        );
        let mut entries = minimal();
        entries.extend([
            ("expires", ConfigValue::Integer(60)),
            ("transport", text("udp")),
            ("base-url", text("https://api.example.com/v1")),
            ("verbose", ConfigValue::Boolean(true)),
            ("offset", ConfigValue::Integer(-300)),
            ("token", text("abc")),
            ("port", ConfigValue::Integer(65535)),
            ("server", text("[2001:db8::1]:5061")),
        ]);
        let settings = Settings::from_config(&config(&entries)).unwrap();
        assert_eq!(settings.expires, 60);
        assert_eq!(settings.transport, "udp");
        assert_eq!(
            settings.base_url.as_deref(),
            Some("https://api.example.com/v1")
        );
        assert!(settings.verbose);
        assert_eq!(settings.offset, Some(-300));
        assert_eq!(settings.token.as_deref(), Some("abc"));
        assert_eq!(settings.port, Some(65535));
        assert_eq!(settings.server, "[2001:db8::1]:5061");
        // Empty text is "not set": the default applies, or a required
        // field is missing.
        let mut entries = minimal();
        entries.push(("transport", text("")));
        let settings = Settings::from_config(&config(&entries)).unwrap();
        assert_eq!(settings.transport, "tls");
        assert_eq!(
            refused(("server", text(""))),
            field_error("server", "is required")
        );
    }

    #[test]
    fn errors_name_the_field_and_what_is_allowed() {
        assert_eq!(
            Settings::from_config(&config(&[])),
            Err(ConnectorError::InvalidConfig(field_error(
                "server",
                "is required"
            )))
        );
        let cases = [
            (
                ("expires", ConfigValue::Integer(59)),
                field_error("expires", "must be a whole number from 60 to 86400"),
            ),
            (
                ("expires", text("600")),
                field_error("expires", "must be a whole number from 60 to 86400"),
            ),
            (
                ("port", ConfigValue::Integer(70000)),
                field_error("port", "must be a whole number from 0 to 65535"),
            ),
            (
                ("offset", ConfigValue::Integer(-721)),
                field_error("offset", "must be a whole number from -720 to 840"),
            ),
            (
                ("password", text("short")),
                field_error("password", "must be at least 8 bytes long"),
            ),
            (
                ("transport", text("sctp")),
                field_error("transport", "must be one of: udp, tcp, tls"),
            ),
            (
                ("base-url", text("api.example.com")),
                field_error("base-url", "must be an absolute http(s) or ws(s) URL"),
            ),
            (
                ("server", text("sip:pbx/x")),
                field_error("server", "must be a server as host[:port]"),
            ),
            (
                ("server", text("pbx:0")),
                field_error("server", "must be a server as host[:port]"),
            ),
            (
                ("verbose", text("yes")),
                field_error("verbose", "must be true or false"),
            ),
            (
                ("transport", ConfigValue::Integer(1)),
                field_error("transport", "must be text"),
            ),
            (
                ("token", text("a b")),
                field_error("token", "must not contain spaces"),
            ),
        ];
        for (entry, expected) in cases {
            assert_eq!(refused(entry.clone()), expected, "{}", entry.0);
        }
    }

    #[test]
    fn declares_the_fields_describe_announces() {
        let fields = Settings::config_fields();
        let names: Vec<_> = fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "server",
                "password",
                "expires",
                "transport",
                "base-url",
                "verbose",
                "offset",
                "token",
                "port"
            ]
        );
        let server = &fields[0];
        assert_eq!(server.label, "Server");
        assert_eq!(server.description, "The PBX to register with.");
        assert_eq!(server.kind, FieldKind::ServerAddress(5060));
        assert!(server.required && !server.secret);
        let password = &fields[1];
        assert_eq!(password.label, "Password");
        assert!(
            password.required && password.secret,
            "Secret implies secret"
        );
        let expires = &fields[2];
        assert_eq!(expires.kind, FieldKind::Integer);
        assert_eq!(expires.description, "How long a registration lasts.");
        assert_eq!(expires.default_value.as_deref(), Some("3600"));
        assert!(!expires.required, "a default makes a field optional");
        assert_eq!(
            fields[3].kind,
            FieldKind::Choice(vec!["udp".into(), "tcp".into(), "tls".into()])
        );
        assert_eq!(fields[3].default_value.as_deref(), Some("tls"));
        assert_eq!(fields[4].kind, FieldKind::Url);
        assert!(!fields[4].required, "Option is optional");
        assert_eq!(fields[5].kind, FieldKind::Boolean);
        assert_eq!(fields[5].default_value.as_deref(), Some("false"));
        assert_eq!(fields[6].description, "Offset (minutes); may be negative.");
        assert!(fields[7].secret && !fields[7].required);
        assert_eq!(fields[8].label, "Port");
    }

    #[test]
    fn debug_of_a_secret_is_redacted() {
        let settings = Settings::from_config(&config(&minimal())).unwrap();
        let printed = format!("{settings:?}");
        assert!(!printed.contains("s3cret-pass"), "{printed}");
        assert!(printed.contains("Secret(<redacted>)"), "{printed}");
    }
}
