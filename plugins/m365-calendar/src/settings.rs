//! The connector's configuration fields and their validated form.

use std::fmt;

use presence_connector_sdk::{
    Config, ConfigField, ConnectorConfig, ConnectorError, Secret, invalid_config,
};

use crate::zones::{self, Zone};

/// Validated settings.
#[derive(Clone, PartialEq)]
pub struct Settings {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// Identity platform base, without a trailing slash.
    pub authority: String,
    /// Graph base including the version, without a trailing slash.
    pub graph_base: String,
    pub zone: Zone,
    /// Working days, Monday = 0.
    pub working_days: [bool; 7],
    pub refresh_ms: u64,
    /// Subjects and locations of items that are not private.
    pub subjects: bool,
    pub requests_per_minute: usize,
    /// Public URL of `/hooks/{instance}/notify`: the operator's, else the
    /// hub's own; none: polling only.
    pub notification_url: Option<String>,
}

// Written by hand so the client secret never reaches a log.
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("authority", &self.authority)
            .field("graph_base", &self.graph_base)
            .field("zone", &self.zone.windows)
            .field("working_days", &self.working_days)
            .field("refresh_ms", &self.refresh_ms)
            .field("subjects", &self.subjects)
            .field("requests_per_minute", &self.requests_per_minute)
            .field("notification_url", &self.notification_url)
            .finish()
    }
}

/// The fields as the operator fills them in; `describe` announces them and
/// [`Settings::from_config`] reads them.
#[derive(ConnectorConfig)]
struct Fields {
    /// Directory (tenant) id or verified domain of the Microsoft 365 tenant
    #[config(label = "Directory (tenant) id", validate = "tenant")]
    tenant_id: String,
    /// Application (client) id of the app registration in Entra ID
    #[config(label = "Application (client) id", validate = "client")]
    client_id: String,
    /// Client secret of the app registration (application permissions
    /// Calendars.Read and MailboxSettings.Read, admin consent)
    #[config(label = "Client secret")]
    client_secret: Secret,
    /// https://login.microsoftonline.com; national clouds:
    /// https://login.microsoftonline.us, https://login.chinacloudapi.cn
    #[config(
        label = "Identity platform URL",
        url,
        default = "https://login.microsoftonline.com",
        validate = "http_url"
    )]
    authority: String,
    /// https://graph.microsoft.com/v1.0; national clouds:
    /// https://graph.microsoft.us/v1.0,
    /// https://microsoftgraph.chinacloudapi.cn/v1.0
    #[config(
        label = "Graph base URL",
        url,
        default = "https://graph.microsoft.com/v1.0",
        validate = "http_url"
    )]
    graph_base: String,
    /// The zone whose today and next working day are read: an IANA name
    /// (Europe/Rome) or a Windows name (W. Europe Standard Time)
    #[config(label = "Time zone", default = "UTC")]
    time_zone: String,
    /// Comma-separated days (mon,tue,wed,thu,fri): the next of them after
    /// today is read too
    #[config(label = "Working days", default = "mon,tue,wed,thu,fri")]
    working_days: String,
    /// How often every watched calendar is read (1-3600)
    #[config(
        label = "Data refresh interval (s)",
        default = 60,
        range(min = 1, max = 3600)
    )]
    refresh_seconds: u64,
    /// Read subjects and locations (calendarView) for items that are not
    /// private; off: free/busy only (getSchedule)
    #[config(label = "Show subjects", default = false)]
    subjects: bool,
    /// Public https URL that reaches /hooks/{instance}/notify on this hub,
    /// for change notifications on events; empty: the hub's public webhook
    /// URL, or polling only when the hub has none
    #[config(label = "Notification URL", url, validate = "http_url")]
    notification_url: Option<String>,
    /// The connector's own budget of Graph requests (1-10000); work beyond
    /// it waits for the next minute
    #[config(
        label = "Graph requests per minute",
        default = 600,
        range(min = 1, max = 10000)
    )]
    requests_per_minute: usize,
}

/// The fields `describe` announces.
pub fn fields() -> Vec<ConfigField> {
    Fields::config_fields()
}

fn tenant(id: &str) -> Result<(), &'static str> {
    let ok = id
        .trim()
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '.' | '_'));
    if ok {
        Ok(())
    } else {
        Err("a tenant id (GUID) or domain name")
    }
}

fn client(id: &str) -> Result<(), &'static str> {
    let ok = id
        .trim()
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || ch == '-');
    if ok {
        Ok(())
    } else {
        Err("an application (client) id (GUID)")
    }
}

fn http_url(url: &str) -> Result<(), &'static str> {
    let url = url.trim();
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(())
    } else {
        Err("an http(s) URL")
    }
}

/// A URL without surrounding spaces or a trailing slash.
fn base_url(url: &str) -> String {
    url.trim().trim_end_matches('/').to_string()
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Settings {
    /// Validate the configuration `configure` received. `webhook_base` is
    /// the hub's public URL of this instance's webhooks, where it knows one.
    pub fn from_config(c: &Config, webhook_base: Option<&str>) -> Result<Settings, ConnectorError> {
        let f = Fields::from_config(c)?;
        let zone_name = f.time_zone.as_str();
        let zone = zones::lookup(zone_name).ok_or_else(|| {
            invalid_config(
                "time_zone",
                format!(
                    "unknown time zone '{zone_name}': give an IANA name such as Europe/Rome or a Windows name such as W. Europe Standard Time (see the README for the list)"
                ),
            )
        })?;
        let mut working_days = [false; 7];
        for part in f
            .working_days
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let lower = part.to_ascii_lowercase();
            let Some(i) = DAYS.iter().position(|d| lower.starts_with(d)) else {
                return Err(invalid_config(
                    "working_days",
                    format!("'{part}' is not a day: use mon,tue,wed,thu,fri,sat,sun"),
                ));
            };
            working_days[i] = true;
        }
        if !working_days.iter().any(|d| *d) {
            return Err(invalid_config("working_days", "name at least one day"));
        }
        let notification_url = match &f.notification_url {
            Some(url) => Some(base_url(url)),
            None => webhook_base.map(|b| format!("{}/notify", b.trim_end_matches('/'))),
        };
        Ok(Settings {
            notification_url,
            tenant_id: f.tenant_id.trim().to_string(),
            client_id: f.client_id.trim().to_string(),
            client_secret: f.client_secret.expose().to_string(),
            authority: base_url(&f.authority),
            graph_base: base_url(&f.graph_base),
            zone,
            working_days,
            refresh_ms: f.refresh_seconds * 1000,
            subjects: f.subjects,
            requests_per_minute: f.requests_per_minute,
        })
    }

    /// The client-credentials scope: `{Graph origin}/.default`.
    pub fn scope(&self) -> String {
        let origin = match self.graph_base.find("://") {
            Some(i) => {
                let rest = &self.graph_base[i + 3..];
                let host_end = rest.find('/').map_or(self.graph_base.len(), |j| i + 3 + j);
                &self.graph_base[..host_end]
            }
            None => self.graph_base.as_str(),
        };
        format!("{origin}/.default")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use presence_connector_sdk::{ConfigEntry, ConfigValue};

    fn text(name: &str, v: &str) -> ConfigEntry {
        ConfigEntry {
            name: name.into(),
            value: ConfigValue::Text(v.into()),
        }
    }

    fn base() -> Vec<ConfigEntry> {
        vec![
            text("tenant_id", "contoso.onmicrosoft.com"),
            text("client_id", "22553876-f5ab-4529-bffb-cfe50aa89f87"),
            text("client_secret", "s3cret"),
        ]
    }

    /// The derived fields say what is allowed in the SDK's words, and the
    /// table marks the secret.
    #[test]
    fn derived_fields_say_what_is_allowed() {
        let mut e = base();
        e.push(ConfigEntry {
            name: "requests_per_minute".into(),
            value: ConfigValue::Integer(10_001),
        });
        match Settings::from_config(&Config::new(e), None) {
            Err(ConnectorError::InvalidConfig(e)) => assert_eq!(
                (e.field.as_str(), e.message.as_str()),
                (
                    "requests_per_minute",
                    "must be a whole number from 1 to 10000"
                )
            ),
            other => panic!("{other:?}"),
        }
        let secrets: Vec<_> = fields()
            .into_iter()
            .filter(|f| f.secret)
            .map(|f| f.name)
            .collect();
        assert_eq!(secrets, ["client_secret"]);
    }

    fn field_of(r: Result<Settings, ConnectorError>) -> String {
        match r {
            Err(ConnectorError::InvalidConfig(e)) => e.field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_and_errors_naming_the_field() {
        let s = Settings::from_config(&Config::new(base()), None).unwrap();
        assert_eq!(s.refresh_ms, 60_000);
        assert!(!s.subjects);
        assert_eq!(s.zone.windows, "UTC");
        assert_eq!(s.scope(), "https://graph.microsoft.com/.default");
        assert!(!format!("{s:?}").contains("s3cret"));
        for (name, value) in [
            ("time_zone", "Mars/Olympus"),
            ("working_days", "mon,funday"),
            ("graph_base", "ftp://x"),
            ("tenant_id", "a b"),
        ] {
            let mut e = base();
            e.push(text(name, value));
            assert_eq!(field_of(Settings::from_config(&Config::new(e), None)), name);
        }
        let mut e = base();
        e.push(ConfigEntry {
            name: "refresh_seconds".into(),
            value: ConfigValue::Integer(0),
        });
        assert_eq!(
            field_of(Settings::from_config(&Config::new(e), None)),
            "refresh_seconds"
        );
        let e: Vec<ConfigEntry> = base().into_iter().take(2).collect();
        assert_eq!(
            field_of(Settings::from_config(&Config::new(e), None)),
            "client_secret"
        );
        let mut e = base();
        e.push(text("graph_base", "http://127.0.0.1:9/v1.0"));
        let s = Settings::from_config(&Config::new(e), None).unwrap();
        assert_eq!(s.scope(), "http://127.0.0.1:9/.default");
    }
}
