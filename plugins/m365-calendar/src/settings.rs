//! The connector's configuration fields and their validated form.

use std::fmt;

use presence_connector_sdk::{Config, ConfigField, ConnectorError, FieldKind, invalid_config};

use crate::zones::{self, Zone};

const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
const DEFAULT_GRAPH: &str = "https://graph.microsoft.com/v1.0";

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

/// The fields `describe` announces.
pub fn fields() -> Vec<ConfigField> {
    let f = presence_connector_sdk::config_field;
    vec![
        f(
            "tenant_id",
            "Directory (tenant) id",
            "Directory (tenant) id or verified domain of the Microsoft 365 tenant",
            FieldKind::Text,
            None,
            true,
            false,
        ),
        f(
            "client_id",
            "Application (client) id",
            "Application (client) id of the app registration in Entra ID",
            FieldKind::Text,
            None,
            true,
            false,
        ),
        f(
            "client_secret",
            "Client secret",
            "Client secret of the app registration (application permissions Calendars.Read and MailboxSettings.Read, admin consent)",
            FieldKind::Text,
            None,
            true,
            true,
        ),
        f(
            "authority",
            "Identity platform URL",
            "https://login.microsoftonline.com; national clouds: https://login.microsoftonline.us, https://login.chinacloudapi.cn",
            FieldKind::Url,
            Some(DEFAULT_AUTHORITY),
            false,
            false,
        ),
        f(
            "graph_base",
            "Graph base URL",
            "https://graph.microsoft.com/v1.0; national clouds: https://graph.microsoft.us/v1.0, https://microsoftgraph.chinacloudapi.cn/v1.0",
            FieldKind::Url,
            Some(DEFAULT_GRAPH),
            false,
            false,
        ),
        f(
            "time_zone",
            "Time zone",
            "The zone whose today and next working day are read: an IANA name (Europe/Rome) or a Windows name (W. Europe Standard Time)",
            FieldKind::Text,
            Some("UTC"),
            false,
            false,
        ),
        f(
            "working_days",
            "Working days",
            "Comma-separated days (mon,tue,wed,thu,fri): the next of them after today is read too",
            FieldKind::Text,
            Some("mon,tue,wed,thu,fri"),
            false,
            false,
        ),
        f(
            "refresh_seconds",
            "Data refresh interval (s)",
            "How often every watched calendar is read (1-3600)",
            FieldKind::Integer,
            Some("60"),
            false,
            false,
        ),
        f(
            "subjects",
            "Show subjects",
            "Read subjects and locations (calendarView) for items that are not private; off: free/busy only (getSchedule)",
            FieldKind::Boolean,
            Some("false"),
            false,
            false,
        ),
        f(
            "notification_url",
            "Notification URL",
            "Public https URL that reaches /hooks/{instance}/notify on this hub, for change notifications on events; empty: the hub's public webhook URL, or polling only when the hub has none",
            FieldKind::Url,
            None,
            false,
            false,
        ),
        f(
            "requests_per_minute",
            "Graph requests per minute",
            "The connector's own budget of Graph requests (1-10000); work beyond it waits for the next minute",
            FieldKind::Integer,
            Some("600"),
            false,
            false,
        ),
    ]
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Settings {
    /// Validate the configuration `configure` received. `webhook_base` is
    /// the hub's public URL of this instance's webhooks, where it knows one.
    pub fn from_config(c: &Config, webhook_base: Option<&str>) -> Result<Settings, ConnectorError> {
        let tenant_id = c.text("tenant_id")?.trim().to_string();
        if !tenant_id
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '.' | '_'))
        {
            return Err(invalid_config(
                "tenant_id",
                "a tenant id (GUID) or domain name",
            ));
        }
        let client_id = c.text("client_id")?.trim().to_string();
        if !client_id
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
        {
            return Err(invalid_config(
                "client_id",
                "an application (client) id (GUID)",
            ));
        }
        let client_secret = c.text("client_secret")?.to_string();
        let authority = http_url(c, "authority", DEFAULT_AUTHORITY)?;
        let graph_base = http_url(c, "graph_base", DEFAULT_GRAPH)?;
        let zone_name = c.opt_text("time_zone")?.unwrap_or("UTC");
        let zone = zones::lookup(zone_name).ok_or_else(|| {
            invalid_config(
                "time_zone",
                format!(
                    "unknown time zone '{zone_name}': give an IANA name such as Europe/Rome or a Windows name such as W. Europe Standard Time (see the README for the list)"
                ),
            )
        })?;
        let mut working_days = [false; 7];
        for part in c
            .opt_text("working_days")?
            .unwrap_or("mon,tue,wed,thu,fri")
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
        let int = |name: &str, default: i64, lo: i64, hi: i64| -> Result<u64, ConnectorError> {
            let v = c.opt_integer(name)?.unwrap_or(default);
            if !(lo..=hi).contains(&v) {
                return Err(invalid_config(name, format!("must be {lo}..={hi}")));
            }
            Ok(v as u64)
        };
        let notification_url = match c.opt_text("notification_url")? {
            Some(_) => Some(http_url(c, "notification_url", "")?),
            None => webhook_base.map(|b| format!("{}/notify", b.trim_end_matches('/'))),
        };
        Ok(Settings {
            notification_url,
            tenant_id,
            client_id,
            client_secret,
            authority,
            graph_base,
            zone,
            working_days,
            refresh_ms: int("refresh_seconds", 60, 1, 3600)? * 1000,
            subjects: c.opt_boolean("subjects")?.unwrap_or(false),
            requests_per_minute: int("requests_per_minute", 600, 1, 10_000)? as usize,
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

fn http_url(c: &Config, name: &str, default: &str) -> Result<String, ConnectorError> {
    let v = c.opt_text(name)?.unwrap_or(default).trim();
    if !(v.starts_with("https://") || v.starts_with("http://")) {
        return Err(invalid_config(name, "an http(s) URL"));
    }
    Ok(v.trim_end_matches('/').to_string())
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
