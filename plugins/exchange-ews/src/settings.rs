//! Configuration fields (names fixed: operators and tests use them) and
//! their validated form.

use std::fmt;

use presence_connector_sdk::{Config, ConfigField, ConnectorError, FieldKind, invalid_config};

use crate::soap::View;
use crate::tz::{WorkingDays, Zone};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Basic over TLS.
    Basic,
    /// NTLMv2 (Windows integrated authentication), Exchange's default.
    Ntlm,
    /// An OAuth bearer token (Exchange 2013 SP1+/2016/2019 with hybrid
    /// modern authentication, where configured).
    OAuth,
}

/// The RequestServerVersion values from Exchange 2007 SP1 on.
pub const VERSIONS: &[&str] = &[
    "Exchange2007_SP1",
    "Exchange2010",
    "Exchange2010_SP1",
    "Exchange2010_SP2",
    "Exchange2013",
    "Exchange2013_SP1",
];

#[derive(Clone, PartialEq)]
pub struct Settings {
    pub url: String,
    pub auth: AuthMode,
    pub username: String,
    pub password: String,
    pub domain: Option<String>,
    pub token: String,
    pub version: String,
    pub refresh_ms: u64,
    pub zone: Zone,
    pub working_days: WorkingDays,
    pub batch_size: usize,
    pub view: View,
    pub read_oof: bool,
    pub oof_refresh_ms: u64,
    pub auth_retry_ms: u64,
    pub workstation: String,
}

// By hand, so secrets never reach a log.
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("url", &self.url)
            .field("auth", &self.auth)
            .field("username", &self.username)
            .field("password", &"***")
            .field("token", &"***")
            .field("version", &self.version)
            .field("refresh_ms", &self.refresh_ms)
            .field("zone", &self.zone)
            .field("batch_size", &self.batch_size)
            .finish()
    }
}

pub fn fields() -> Vec<ConfigField> {
    let f = presence_connector_sdk::config_field;
    vec![
        f(
            "ews_url",
            "EWS URL",
            "Exchange Web Services endpoint, e.g. https://mail.example.com/ews/exchange.asmx (plain http only for tests)",
            FieldKind::Url,
            None,
            true,
            false,
        ),
        f(
            "auth_mode",
            "Authentication",
            "ntlm (Windows integrated, Exchange's default), basic (over TLS only) or oauth (a bearer token, where the server is set up for OAuth)",
            FieldKind::Choice(vec!["ntlm".into(), "basic".into(), "oauth".into()]),
            Some("ntlm"),
            false,
            false,
        ),
        f(
            "username",
            "Service account",
            "DOMAIN\\user or user@domain of the account that reads the calendars (needs free/busy access with details to show subjects)",
            FieldKind::Text,
            None,
            false,
            false,
        ),
        f(
            "password",
            "Password",
            "The service account's password",
            FieldKind::Text,
            None,
            false,
            true,
        ),
        f(
            "domain",
            "NTLM domain",
            "NTLM domain when the account is written without one (optional)",
            FieldKind::Text,
            None,
            false,
            false,
        ),
        f(
            "oauth_token",
            "OAuth bearer token",
            "Access token for auth_mode oauth",
            FieldKind::Text,
            None,
            false,
            true,
        ),
        f(
            "server_version",
            "Exchange version",
            "RequestServerVersion sent with every request; Exchange2007_SP1 works with every server from 2007 SP1 on",
            FieldKind::Choice(VERSIONS.iter().map(|v| v.to_string()).collect()),
            Some("Exchange2007_SP1"),
            false,
            false,
        ),
        f(
            "refresh_seconds",
            "Data refresh interval",
            "Seconds between calendar refreshes (5 to 3600); each refresh reads every watched calendar",
            FieldKind::Integer,
            Some("60"),
            false,
            false,
        ),
        f(
            "time_zone",
            "Time zone",
            "Where 'today' begins: UTC, UTC+hh:mm, or a name such as Europe/Rome, Europe/London, America/New_York",
            FieldKind::Text,
            Some("UTC"),
            false,
            false,
        ),
        f(
            "working_days",
            "Working days",
            "Comma-separated days (mon,tue,wed,thu,fri) that count as 'the next working day'",
            FieldKind::Text,
            Some("mon,tue,wed,thu,fri"),
            false,
            false,
        ),
        f(
            "batch_size",
            "Mailboxes per request",
            "Mailboxes per GetUserAvailability request (1 to 100, EWS's maximum)",
            FieldKind::Integer,
            Some("100"),
            false,
            false,
        ),
        f(
            "view",
            "Free/busy view",
            "Detailed or DetailedMerged (RequestedView)",
            FieldKind::Choice(vec!["Detailed".into(), "DetailedMerged".into()]),
            Some("Detailed"),
            false,
            false,
        ),
        f(
            "read_out_of_office",
            "Read out-of-office",
            "Read each mailbox's automatic reply (GetUserOofSettings, one request per mailbox)",
            FieldKind::Boolean,
            Some("true"),
            false,
            false,
        ),
        f(
            "oof_refresh_seconds",
            "Out-of-office refresh interval",
            "Seconds between two reads of one mailbox's automatic reply (5 to 86400); calendars are read every refresh, automatic replies change seldom and cost a request per mailbox",
            FieldKind::Integer,
            Some("300"),
            false,
            false,
        ),
        f(
            "auth_retry_seconds",
            "Retry after a refused sign-in",
            "After the server refuses the credentials, wait this long (5 to 86400 s) and try once more; after a second refusal wait for a configuration change",
            FieldKind::Integer,
            Some("900"),
            false,
            false,
        ),
    ]
}

fn int(
    c: &Config,
    name: &str,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, ConnectorError> {
    let v = c.opt_integer(name)?.unwrap_or(default);
    if !range.contains(&v) {
        return Err(invalid_config(
            name,
            format!("must be from {} to {}", range.start(), range.end()),
        ));
    }
    Ok(v)
}

impl Settings {
    pub fn from_config(c: &Config) -> Result<Settings, ConnectorError> {
        let url = c.text("ews_url")?.trim().to_string();
        let lower = url.to_ascii_lowercase();
        let rest = lower
            .strip_prefix("https://")
            .or_else(|| lower.strip_prefix("http://"));
        if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
            return Err(invalid_config(
                "ews_url",
                "must be an https URL such as https://mail.example.com/ews/exchange.asmx",
            ));
        }
        let auth = match c.opt_text("auth_mode")?.map(str::trim) {
            None => AuthMode::Ntlm,
            Some(m) if m.eq_ignore_ascii_case("ntlm") => AuthMode::Ntlm,
            Some(m) if m.eq_ignore_ascii_case("basic") => AuthMode::Basic,
            Some(m) if m.eq_ignore_ascii_case("oauth") => AuthMode::OAuth,
            Some(_) => return Err(invalid_config("auth_mode", "must be ntlm, basic or oauth")),
        };
        let username = c.opt_text("username")?.unwrap_or("").trim().to_string();
        let password = c.opt_text("password")?.unwrap_or("").to_string();
        let token = c.opt_text("oauth_token")?.unwrap_or("").trim().to_string();
        match auth {
            AuthMode::Basic | AuthMode::Ntlm => {
                if username.is_empty() {
                    return Err(invalid_config(
                        "username",
                        "is required for basic and ntlm authentication",
                    ));
                }
                if username.contains(':') && auth == AuthMode::Basic {
                    return Err(invalid_config(
                        "username",
                        "may not contain ':' with basic authentication",
                    ));
                }
                if password.is_empty() {
                    return Err(invalid_config(
                        "password",
                        "is required for basic and ntlm authentication",
                    ));
                }
            }
            AuthMode::OAuth => {
                if token.is_empty() {
                    return Err(invalid_config(
                        "oauth_token",
                        "is required for oauth authentication",
                    ));
                }
            }
        }
        let version = c
            .opt_text("server_version")?
            .map(str::trim)
            .unwrap_or("Exchange2007_SP1");
        let version = VERSIONS
            .iter()
            .find(|v| v.eq_ignore_ascii_case(version))
            .ok_or_else(|| {
                invalid_config(
                    "server_version",
                    format!("must be one of {}", VERSIONS.join(", ")),
                )
            })?
            .to_string();
        let zone_text = c.opt_text("time_zone")?.unwrap_or("UTC");
        let zone = Zone::parse(zone_text).ok_or_else(|| {
            invalid_config(
                "time_zone",
                format!("`{zone_text}` is not a known zone: write UTC, UTC+hh:mm or a name such as Europe/Rome"),
            )
        })?;
        let days_text = c.opt_text("working_days")?.unwrap_or("mon,tue,wed,thu,fri");
        let working_days = WorkingDays::parse(days_text).ok_or_else(|| {
            invalid_config(
                "working_days",
                "write day names such as mon,tue,wed,thu,fri",
            )
        })?;
        let view = match c.opt_text("view")?.map(str::trim) {
            None => View::Detailed,
            Some(v) if v.eq_ignore_ascii_case("Detailed") => View::Detailed,
            Some(v) if v.eq_ignore_ascii_case("DetailedMerged") => View::DetailedMerged,
            Some(_) => return Err(invalid_config("view", "must be Detailed or DetailedMerged")),
        };
        Ok(Settings {
            url,
            auth,
            username,
            password,
            domain: c.opt_text("domain")?.map(|d| d.trim().to_string()),
            token,
            version,
            refresh_ms: int(c, "refresh_seconds", 60, 5..=3600)? as u64 * 1000,
            zone,
            working_days,
            batch_size: int(c, "batch_size", 100, 1..=100)? as usize,
            view,
            read_oof: c.opt_boolean("read_out_of_office")?.unwrap_or(true),
            oof_refresh_ms: int(c, "oof_refresh_seconds", 300, 5..=86_400)? as u64 * 1000,
            auth_retry_ms: int(c, "auth_retry_seconds", 900, 5..=86_400)? as u64 * 1000,
            workstation: "PRESENCEHUB".into(),
        })
    }

    /// The field an operator must fix when the server refuses to sign in.
    pub fn credential_field(&self) -> &'static str {
        match self.auth {
            AuthMode::OAuth => "oauth_token",
            _ => "password",
        }
    }

    /// What the lock-out guard's count belongs to: any change of the
    /// configuration starts afresh. A 64-bit FNV-1a digest, no secret in
    /// clear.
    pub fn fingerprint(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let text = format!(
            "{}|{:?}|{}|{}|{:?}|{}|{}|{}|{:?}|{}|{}|{:?}|{}|{}|{}",
            self.url,
            self.auth,
            self.username,
            self.password,
            self.domain,
            self.token,
            self.version,
            self.refresh_ms,
            self.zone,
            self.working_days.0,
            self.batch_size,
            self.view,
            self.read_oof,
            self.oof_refresh_ms,
            self.auth_retry_ms
        );
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use presence_connector_sdk::{ConfigEntry, ConfigValue, FieldError};

    pub fn cfg(pairs: &[(&str, &str)]) -> Config {
        Config::new(
            pairs
                .iter()
                .map(|(k, v)| ConfigEntry {
                    name: k.to_string(),
                    value: match *v {
                        "true" => ConfigValue::Boolean(true),
                        "false" => ConfigValue::Boolean(false),
                        v if v.parse::<i64>().is_ok() && !k.contains("pass") => {
                            ConfigValue::Integer(v.parse().unwrap())
                        }
                        v => ConfigValue::Text(v.into()),
                    },
                })
                .collect(),
        )
    }

    fn field_of(e: ConnectorError) -> String {
        match e {
            ConnectorError::InvalidConfig(FieldError { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_and_secrets_kept_out_of_debug() {
        let s = Settings::from_config(&cfg(&[
            ("ews_url", "https://mail.example.com/ews/exchange.asmx"),
            ("username", "CONTOSO\\svc"),
            ("password", "s3cret"),
        ]))
        .unwrap();
        assert_eq!(s.auth, AuthMode::Ntlm);
        assert_eq!(s.refresh_ms, 60_000);
        assert_eq!(s.batch_size, 100);
        assert_eq!(s.version, "Exchange2007_SP1");
        assert!(s.read_oof);
        assert!(!format!("{s:?}").contains("s3cret"));
        assert_eq!(s.credential_field(), "password");
    }

    #[test]
    fn bad_values_name_their_field() {
        let base = [
            ("ews_url", "https://mail.example.com/ews/exchange.asmx"),
            ("username", "svc"),
            ("password", "pw"),
        ];
        for (field, value) in [
            ("ews_url", "ftp://x"),
            ("auth_mode", "kerberos"),
            ("server_version", "Exchange2003"),
            ("refresh_seconds", "4"),
            ("time_zone", "Mars/Olympus"),
            ("working_days", "someday"),
            ("batch_size", "101"),
            ("view", "FreeBusy"),
            ("auth_retry_seconds", "0"),
            ("oof_refresh_seconds", "1"),
        ] {
            let mut pairs = base.to_vec();
            pairs.push((field, value));
            let e = Settings::from_config(&cfg(&pairs)).unwrap_err();
            assert_eq!(field_of(e), field, "{field}={value}");
        }
        let e = Settings::from_config(&cfg(&[("ews_url", "https://x/ews"), ("username", "u")]))
            .unwrap_err();
        assert_eq!(field_of(e), "password");
        let e = Settings::from_config(&cfg(&[
            ("ews_url", "https://x/ews"),
            ("auth_mode", "oauth"),
        ]))
        .unwrap_err();
        assert_eq!(field_of(e), "oauth_token");
        let e = Settings::from_config(&cfg(&[("username", "u"), ("password", "p")])).unwrap_err();
        assert_eq!(field_of(e), "ews_url");
    }
}
