//! A plugin's described configuration fields, and validation of an
//! operator's values against them.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::grants::{Grant, parse_url_authority, split_host_port};
use super::wit::ContractVersion;
use super::wit::types as wit;

/// A plugin's self-description.
#[derive(Debug, Clone, Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    /// The contract version, read from the component's export name.
    pub api_version: ContractVersion,
    pub description: String,
    pub config_fields: Vec<FieldSpec>,
    /// The user attributes it can watch; the first is the default.
    pub endpoint_kinds: Vec<EndpointKindSpec>,
    pub capabilities: CapabilitiesSpec,
}

/// A user attribute a plugin can watch, and the channels it feeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EndpointKindSpec {
    pub attribute: String,
    pub label: String,
    pub feeds: Vec<ChannelName>,
}

/// A presence channel, as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ChannelName {
    Rich,
    Telephony,
    Calendar,
}

/// What a plugin can do beyond reading.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CapabilitiesSpec {
    pub writes: Vec<ChannelName>,
    pub dnd_scopes: Vec<String>,
    pub restore: bool,
    pub expiry: bool,
    pub webhooks: bool,
    pub batched_events: bool,
}

fn channel_names(c: wit::Channels) -> Vec<ChannelName> {
    let mut v = Vec::new();
    if c.contains(wit::Channels::RICH) {
        v.push(ChannelName::Rich);
    }
    if c.contains(wit::Channels::TELEPHONY) {
        v.push(ChannelName::Telephony);
    }
    if c.contains(wit::Channels::CALENDAR) {
        v.push(ChannelName::Calendar);
    }
    v
}

/// One configuration field.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldSpec {
    pub name: String,
    pub label: String,
    pub description: String,
    pub kind: FieldKind,
    pub default: Option<String>,
    pub required: bool,
    pub secret: bool,
}

/// A field's kind.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum FieldKind {
    Text,
    Integer,
    Boolean,
    Choice { options: Vec<String> },
    ServerAddress { default_port: u16 },
    Url,
}

impl PluginInfo {
    /// A description in the newest contract's terms, from a component built
    /// against `api_version`.
    pub fn from_wit(i: wit::PluginInfo, api_version: ContractVersion) -> Self {
        Self {
            name: i.name,
            version: i.version,
            api_version,
            description: i.description,
            endpoint_kinds: i
                .endpoint_kinds
                .into_iter()
                .map(|k| EndpointKindSpec {
                    attribute: k.attribute,
                    label: k.label,
                    feeds: channel_names(k.feeds),
                })
                .collect(),
            capabilities: CapabilitiesSpec {
                writes: channel_names(i.capabilities.writes),
                dnd_scopes: i
                    .capabilities
                    .dnd_scopes
                    .iter()
                    .map(|s| match s {
                        wit::DndScope::AllCalls => "all-calls".to_string(),
                        wit::DndScope::QueueCalls => "queue-calls".to_string(),
                    })
                    .collect(),
                restore: i.capabilities.restore,
                expiry: i.capabilities.expiry,
                webhooks: i.capabilities.webhooks,
                batched_events: i.capabilities.batched_events,
            },
            config_fields: i
                .config_fields
                .into_iter()
                .map(|f| FieldSpec {
                    name: f.name,
                    label: f.label,
                    description: f.description,
                    kind: match f.kind {
                        wit::FieldKind::Text => FieldKind::Text,
                        wit::FieldKind::Integer => FieldKind::Integer,
                        wit::FieldKind::Boolean => FieldKind::Boolean,
                        wit::FieldKind::Choice(options) => FieldKind::Choice { options },
                        wit::FieldKind::ServerAddress(default_port) => {
                            FieldKind::ServerAddress { default_port }
                        }
                        wit::FieldKind::Url => FieldKind::Url,
                    },
                    default: f.default_value,
                    required: f.required,
                    secret: f.secret,
                })
                .collect(),
        }
    }
}

/// Validated configuration: non-secret values, and secrets in clear.
pub type SplitConfig = (BTreeMap<String, Value>, BTreeMap<String, String>);

/// A value that does not fit its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// `config.<name>`.
    pub field: String,
    pub message: String,
}

fn err(name: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: format!("config.{name}"),
        message: message.into(),
    }
}

impl PluginInfo {
    /// Problems with the description itself (duplicate names, defaults that do
    /// not fit their kind): a plugin that describes itself badly is refused.
    pub fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for f in &self.config_fields {
            if f.name.is_empty() || !seen.insert(f.name.as_str()) {
                return Err(format!(
                    "config field name {:?} is empty or repeated",
                    f.name
                ));
            }
            if let Some(d) = &f.default {
                parse_text(f, d).map_err(|e| format!("default of {}: {}", f.name, e.message))?;
            }
        }
        let mut kinds = std::collections::HashSet::new();
        for k in &self.endpoint_kinds {
            if !crate::engine::valid_attribute_name(&k.attribute) || !kinds.insert(&k.attribute) {
                return Err(format!(
                    "endpoint kind attribute {:?} is repeated or not 1-64 lowercase letters, digits and '-'",
                    k.attribute
                ));
            }
            if k.feeds.is_empty() {
                return Err(format!("endpoint kind {:?} feeds no channel", k.attribute));
            }
        }
        Ok(())
    }

    /// Validate an operator's values. Secret fields missing from `values` keep
    /// their value in `old_secrets`. Returns the non-secret and secret maps to
    /// store.
    pub fn validate(
        &self,
        values: &serde_json::Map<String, Value>,
        old_secrets: &BTreeMap<String, String>,
    ) -> Result<SplitConfig, FieldError> {
        if let Some(unknown) = values
            .keys()
            .find(|k| !self.config_fields.iter().any(|f| &f.name == *k))
        {
            let known: Vec<_> = self.config_fields.iter().map(|f| f.name.as_str()).collect();
            return Err(err(
                unknown,
                format!("unknown field; this plugin has: {}", known.join(", ")),
            ));
        }
        let mut public = BTreeMap::new();
        let mut secrets = BTreeMap::new();
        for f in &self.config_fields {
            match values.get(&f.name) {
                Some(Value::Null) | None => {
                    if f.secret
                        && let Some(old) = old_secrets.get(&f.name)
                    {
                        secrets.insert(f.name.clone(), old.clone());
                    } else if f.required && f.default.is_none() {
                        return Err(err(&f.name, "required"));
                    }
                }
                Some(v) => {
                    let cv = parse_json(f, v)?;
                    if f.secret {
                        let wit::ConfigValue::Text(s) = cv else {
                            return Err(err(&f.name, "a secret is a string"));
                        };
                        secrets.insert(f.name.clone(), s);
                    } else {
                        public.insert(f.name.clone(), v.clone());
                    }
                }
            }
        }
        Ok((public, secrets))
    }

    /// A secret goes where the instance's address fields (server
    /// addresses, URLs) point. When one of them changes, each stored
    /// secret must be given again in the same change, so that a stored
    /// password or client secret is never sent to an address it was not
    /// typed for.
    pub fn check_secrets_follow_addresses(
        &self,
        old_public: &BTreeMap<String, Value>,
        new_public: &BTreeMap<String, Value>,
        given: &serde_json::Map<String, Value>,
        old_secrets: &BTreeMap<String, String>,
    ) -> Result<(), FieldError> {
        let effective = |public: &BTreeMap<String, Value>, f: &FieldSpec| {
            public
                .get(&f.name)
                .cloned()
                .or_else(|| f.default.clone().map(Value::String))
        };
        let moved: Vec<&str> = self
            .config_fields
            .iter()
            .filter(|f| {
                !f.secret && matches!(f.kind, FieldKind::ServerAddress { .. } | FieldKind::Url)
            })
            .filter(|f| effective(old_public, f) != effective(new_public, f))
            .map(|f| f.name.as_str())
            .collect();
        if moved.is_empty() {
            return Ok(());
        }
        let kept = self.config_fields.iter().find(|f| {
            f.secret
                && old_secrets.contains_key(&f.name)
                && given.get(&f.name).is_none_or(Value::is_null)
        });
        match kept {
            None => Ok(()),
            Some(f) => Err(err(
                &f.name,
                format!(
                    "{} changed: give `{}` again in the same change (a stored secret is not \
                     sent to a new address)",
                    moved.join(", "),
                    f.name
                ),
            )),
        }
    }

    /// The entries passed to `configure` (defaults filled in) and the grants
    /// the configured addresses add.
    pub fn entries(
        &self,
        public: &BTreeMap<String, Value>,
        secrets: &BTreeMap<String, String>,
    ) -> Result<(Vec<wit::ConfigEntry>, Vec<Grant>), FieldError> {
        let mut entries = Vec::new();
        let mut grants = Vec::new();
        for f in &self.config_fields {
            let value = if let Some(s) = secrets.get(&f.name) {
                Some(parse_text(f, s)?)
            } else if let Some(v) = public.get(&f.name) {
                Some(parse_json(f, v)?)
            } else if let Some(d) = &f.default {
                Some(parse_text(f, d)?)
            } else {
                None
            };
            let Some(value) = value else { continue };
            if let wit::ConfigValue::Text(t) = &value {
                match &f.kind {
                    FieldKind::ServerAddress { default_port } => {
                        let (host, port) = server_address(&f.name, t, *default_port)?;
                        grants.push(Grant::address(&host, port));
                    }
                    FieldKind::Url => {
                        let (_, host, port) =
                            parse_url_authority(t).map_err(|e| err(&f.name, e.to_string()))?;
                        grants.push(Grant::address(&host, port));
                    }
                    _ => {}
                }
            }
            entries.push(wit::ConfigEntry {
                name: f.name.clone(),
                value,
            });
        }
        Ok((entries, grants))
    }
}

fn server_address(name: &str, text: &str, default_port: u16) -> Result<(String, u16), FieldError> {
    let bad = || err(name, format!("expected host[:port], got {text:?}"));
    let (host, port) = split_host_port(text.trim()).map_err(|_| bad())?;
    if host.is_empty() || host.contains(['/', ' ', '@']) {
        return Err(bad());
    }
    let port = match port {
        None => default_port,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?,
    };
    Ok((host.to_owned(), port))
}

/// What a JSON value is, as an error message names it (`the string "5"`).
fn got(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("{b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.len() > 64 => "a string".into(),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// The whole numbers an integer field holds (the contract's `s64`); the
/// plugin may allow fewer, and says so when it refuses one.
const INTEGER_RANGE: &str = "from -9223372036854775808 to 9223372036854775807";

fn parse_json(f: &FieldSpec, v: &Value) -> Result<wit::ConfigValue, FieldError> {
    let name = &f.name;
    match (&f.kind, v) {
        (FieldKind::Integer, Value::Number(n)) => {
            n.as_i64().map(wit::ConfigValue::Integer).ok_or_else(|| {
                err(
                    name,
                    format!("expected a whole number {INTEGER_RANGE}, got {}", got(v)),
                )
            })
        }
        (FieldKind::Integer, Value::String(s)) if s.trim().parse::<i64>().is_ok() => Err(err(
            name,
            format!(
                "expected a whole number as a JSON number, got {}: write \"{name}\": {} without quotes",
                got(v),
                s.trim()
            ),
        )),
        (FieldKind::Integer, _) => Err(err(
            name,
            format!(
                "expected a whole number (a JSON number such as 60), got {}",
                got(v)
            ),
        )),
        (FieldKind::Boolean, Value::Bool(b)) => Ok(wit::ConfigValue::Boolean(*b)),
        (FieldKind::Boolean, _) => Err(err(
            name,
            format!("expected true or false (without quotes), got {}", got(v)),
        )),
        (_, Value::String(s)) => parse_text(f, s),
        (FieldKind::Choice { options }, _) => Err(err(
            name,
            format!(
                "expected one of {} (a string), got {}",
                options.join(", "),
                got(v)
            ),
        )),
        _ => Err(err(name, format!("expected a string, got {}", got(v)))),
    }
}

/// The longest text a configuration field takes (a private key or a
/// certificate chain in PEM fits).
pub const MAX_CONFIG_TEXT_BYTES: usize = 16 * 1024;

fn parse_text(f: &FieldSpec, s: &str) -> Result<wit::ConfigValue, FieldError> {
    if s.len() > MAX_CONFIG_TEXT_BYTES {
        return Err(err(
            &f.name,
            format!("at most {MAX_CONFIG_TEXT_BYTES} bytes"),
        ));
    }
    Ok(match &f.kind {
        FieldKind::Text => wit::ConfigValue::Text(s.to_owned()),
        FieldKind::Integer => wit::ConfigValue::Integer(s.trim().parse().map_err(|_| {
            err(
                &f.name,
                format!("expected a whole number {INTEGER_RANGE}, got {s:?}"),
            )
        })?),
        FieldKind::Boolean => wit::ConfigValue::Boolean(match s.trim() {
            "true" => true,
            "false" => false,
            _ => return Err(err(&f.name, format!("expected true or false, got {s:?}"))),
        }),
        FieldKind::Choice { options } => {
            if !options.iter().any(|o| o == s) {
                return Err(err(
                    &f.name,
                    format!("expected one of {}, got {s:?}", options.join(", ")),
                ));
            }
            wit::ConfigValue::Text(s.to_owned())
        }
        FieldKind::ServerAddress { default_port } => {
            server_address(&f.name, s, *default_port)?;
            wit::ConfigValue::Text(s.trim().to_owned())
        }
        FieldKind::Url => {
            parse_url_authority(s).map_err(|e| err(&f.name, e.to_string()))?;
            wit::ConfigValue::Text(s.to_owned())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(name: &str, kind: FieldKind, required: bool, secret: bool) -> FieldSpec {
        FieldSpec {
            name: name.into(),
            label: name.into(),
            description: String::new(),
            kind,
            default: None,
            required,
            secret,
        }
    }

    #[test]
    fn a_new_address_needs_its_secrets_again() {
        let i = info();
        let stored: BTreeMap<String, String> = [("password".to_string(), "pw".to_string())].into();
        let old: BTreeMap<String, Value> =
            [("server".to_string(), json!("pbx.example.com"))].into();
        let moved: BTreeMap<String, Value> =
            [("server".to_string(), json!("evil.example.net"))].into();
        let given_without = serde_json::Map::new();
        let e = i
            .check_secrets_follow_addresses(&old, &moved, &given_without, &stored)
            .unwrap_err();
        assert_eq!(e.field, "config.password");
        assert!(e.message.contains("server"), "{}", e.message);
        let mut given_with = serde_json::Map::new();
        given_with.insert("password".into(), json!("new"));
        assert!(
            i.check_secrets_follow_addresses(&old, &moved, &given_with, &stored)
                .is_ok()
        );
        // Text is bounded.
        let mut long = serde_json::Map::new();
        long.insert("server".into(), json!("pbx.example.com"));
        long.insert(
            "password".into(),
            json!("x".repeat(MAX_CONFIG_TEXT_BYTES + 1)),
        );
        assert_eq!(
            i.validate(&long, &BTreeMap::new()).unwrap_err().field,
            "config.password"
        );
        // The same address (or another field changing) keeps the secret.
        let mut same = old.clone();
        same.insert("expires".into(), json!(60));
        assert!(
            i.check_secrets_follow_addresses(&old, &same, &given_without, &stored)
                .is_ok()
        );
    }

    fn info() -> PluginInfo {
        let mut transport = field(
            "transport",
            FieldKind::Choice {
                options: vec!["udp".into(), "tcp".into()],
            },
            false,
            false,
        );
        transport.default = Some("udp".into());
        PluginInfo {
            name: "t".into(),
            version: "1.0.0".into(),
            api_version: ContractVersion::V0_2_0,
            description: String::new(),
            endpoint_kinds: Vec::new(),
            capabilities: CapabilitiesSpec::default(),
            config_fields: vec![
                field(
                    "server",
                    FieldKind::ServerAddress { default_port: 5060 },
                    true,
                    false,
                ),
                transport,
                field("password", FieldKind::Text, true, true),
                field("expires", FieldKind::Integer, false, false),
            ],
        }
    }

    fn map(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn valid_config_splits_secrets_fills_defaults_and_widens_grants() {
        let i = info();
        let (public, secrets) = i
            .validate(
                &map(json!({"server": "pbx.local", "password": "pw", "expires": 600})),
                &BTreeMap::new(),
            )
            .unwrap();
        assert!(!public.contains_key("password"));
        assert_eq!(secrets["password"], "pw");
        let (entries, grants) = i.entries(&public, &secrets).unwrap();
        let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["server", "transport", "password", "expires"]);
        assert_eq!(grants, vec![Grant::address("pbx.local", 5060)]);
    }

    #[test]
    fn errors_name_the_field() {
        let i = info();
        let cases = [
            (json!({"password": "pw"}), "config.server"),
            (
                json!({"server": "pbx", "password": "pw", "bogus": 1}),
                "config.bogus",
            ),
            (
                json!({"server": "pbx:99999", "password": "pw"}),
                "config.server",
            ),
            (
                json!({"server": "pbx", "password": "pw", "transport": "sctp"}),
                "config.transport",
            ),
            (
                json!({"server": "pbx", "password": "pw", "expires": "soon"}),
                "config.expires",
            ),
            (json!({"server": "pbx", "password": 5}), "config.password"),
            (json!({"server": "pbx"}), "config.password"),
        ];
        for (v, field) in cases {
            let e = i.validate(&map(v.clone()), &BTreeMap::new()).unwrap_err();
            assert_eq!(e.field, field, "{v}");
        }
    }

    #[test]
    fn type_errors_say_the_type_and_what_came() {
        let i = info();
        let msg = |v: Value| i.validate(&map(v), &BTreeMap::new()).unwrap_err().message;
        let m = msg(json!({"server": "pbx", "password": "pw", "expires": "5"}));
        assert!(
            m.contains("whole number")
                && m.contains("the string \"5\"")
                && m.contains("without quotes"),
            "{m}"
        );
        let m = msg(json!({"server": "pbx", "password": "pw", "expires": 1.5}));
        assert!(m.contains("the number 1.5"), "{m}");
        let m = msg(json!({"server": "pbx", "password": "pw", "expires": 1e30}));
        assert!(m.contains(INTEGER_RANGE), "{m}");
        let m = msg(json!({"server": "pbx", "password": "pw", "transport": 5}));
        assert!(m.contains("udp, tcp") && m.contains("the number 5"), "{m}");
    }

    #[test]
    fn omitted_secret_keeps_its_old_value() {
        let i = info();
        let old = BTreeMap::from([("password".to_string(), "old".to_string())]);
        let (_, secrets) = i.validate(&map(json!({"server": "pbx"})), &old).unwrap();
        assert_eq!(secrets["password"], "old");
    }

    #[test]
    fn bad_descriptions_are_refused() {
        let mut i = info();
        i.config_fields[3].default = Some("x".into());
        assert!(i.check().is_err());
        let mut i = info();
        i.config_fields.push(i.config_fields[0].clone());
        assert!(i.check().is_err());
    }
}
