//! Configuration fields (names fixed: operators and tests use them) and
//! their validated form.

use std::fmt;

use presence_connector_sdk::{
    Config, ConfigField, ConnectorConfig, ConnectorError, Secret, invalid_config,
};

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

/// The fields as the operator fills them in; `describe` announces them and
/// [`Settings::from_config`] reads them. What depends on another field (a
/// password for basic and ntlm, a token for oauth) is checked there.
#[derive(ConnectorConfig)]
struct Fields {
    /// Exchange Web Services endpoint, e.g.
    /// https://mail.example.com/ews/exchange.asmx (plain http only for tests)
    #[config(label = "EWS URL", url, validate = "http_url")]
    ews_url: String,
    /// ntlm (Windows integrated, Exchange's default), basic (over TLS only)
    /// or oauth (a bearer token, where the server is set up for OAuth)
    #[config(
        label = "Authentication",
        choice("ntlm", "basic", "oauth"),
        default = "ntlm"
    )]
    auth_mode: String,
    /// DOMAIN\user or user@domain of the account that reads the calendars
    /// (needs free/busy access with details to show subjects)
    #[config(label = "Service account")]
    username: Option<String>,
    /// The service account's password
    #[config(label = "Password")]
    password: Option<Secret>,
    /// NTLM domain when the account is written without one (optional)
    #[config(label = "NTLM domain")]
    domain: Option<String>,
    /// Access token for auth_mode oauth
    #[config(label = "OAuth bearer token")]
    oauth_token: Option<Secret>,
    /// RequestServerVersion sent with every request; Exchange2007_SP1 works
    /// with every server from 2007 SP1 on
    #[config(
        label = "Exchange version",
        choice(
            "Exchange2007_SP1",
            "Exchange2010",
            "Exchange2010_SP1",
            "Exchange2010_SP2",
            "Exchange2013",
            "Exchange2013_SP1"
        ),
        default = "Exchange2007_SP1"
    )]
    server_version: String,
    /// Seconds between calendar refreshes (5 to 3600); each refresh reads
    /// every watched calendar
    #[config(
        label = "Data refresh interval",
        default = 60,
        range(min = 5, max = 3600)
    )]
    refresh_seconds: u64,
    /// Where 'today' begins: UTC, UTC+hh:mm, or a name such as Europe/Rome,
    /// Europe/London, America/New_York
    #[config(label = "Time zone", default = "UTC")]
    time_zone: String,
    /// Comma-separated days (mon,tue,wed,thu,fri) that count as 'the next
    /// working day'
    #[config(label = "Working days", default = "mon,tue,wed,thu,fri")]
    working_days: String,
    /// Mailboxes per GetUserAvailability request (1 to 100, EWS's maximum)
    #[config(
        label = "Mailboxes per request",
        default = 100,
        range(min = 1, max = 100)
    )]
    batch_size: usize,
    /// Detailed or DetailedMerged (RequestedView)
    #[config(
        label = "Free/busy view",
        choice("Detailed", "DetailedMerged"),
        default = "Detailed"
    )]
    view: String,
    /// Read each mailbox's automatic reply (GetUserOofSettings, one request
    /// per mailbox)
    #[config(label = "Read out-of-office", default = true)]
    read_out_of_office: bool,
    /// Seconds between two reads of one mailbox's automatic reply (5 to
    /// 86400); calendars are read every refresh, automatic replies change
    /// seldom and cost a request per mailbox
    #[config(
        label = "Out-of-office refresh interval",
        default = 300,
        range(min = 5, max = 86400)
    )]
    oof_refresh_seconds: u64,
    /// After the server refuses the credentials, wait this long (5 to 86400
    /// s) and try once more; after a second refusal wait for a configuration
    /// change
    #[config(
        label = "Retry after a refused sign-in",
        default = 900,
        range(min = 5, max = 86400)
    )]
    auth_retry_seconds: u64,
}

/// The fields `describe` announces.
pub fn fields() -> Vec<ConfigField> {
    Fields::config_fields()
}

fn http_url(url: &str) -> Result<(), &'static str> {
    let lower = url.trim().to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
        return Err("must be an https URL such as https://mail.example.com/ews/exchange.asmx");
    }
    Ok(())
}

impl Settings {
    /// Validates the configuration `configure` received: an
    /// [`ConnectorError::InvalidConfig`] names the field and what is allowed.
    pub fn from_config(c: &Config) -> Result<Settings, ConnectorError> {
        let f = Fields::from_config(c)?;
        let auth = match f.auth_mode.as_str() {
            "basic" => AuthMode::Basic,
            "oauth" => AuthMode::OAuth,
            _ => AuthMode::Ntlm,
        };
        let username = f.username.as_deref().unwrap_or("").trim().to_string();
        let password = f.password.as_ref().map_or("", |p| p.expose()).to_string();
        let token = f
            .oauth_token
            .as_ref()
            .map_or("", |t| t.expose().trim())
            .to_string();
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
        let zone = Zone::parse(&f.time_zone).ok_or_else(|| {
            invalid_config(
                "time_zone",
                format!(
                    "`{}` is not a known zone: write UTC, UTC+hh:mm or a name such as Europe/Rome",
                    f.time_zone
                ),
            )
        })?;
        let working_days = WorkingDays::parse(&f.working_days).ok_or_else(|| {
            invalid_config(
                "working_days",
                "write day names such as mon,tue,wed,thu,fri",
            )
        })?;
        Ok(Settings {
            url: f.ews_url.trim().to_string(),
            auth,
            username,
            password,
            domain: f.domain.map(|d| d.trim().to_string()),
            token,
            version: f.server_version,
            refresh_ms: f.refresh_seconds * 1000,
            zone,
            working_days,
            batch_size: f.batch_size,
            view: match f.view.as_str() {
                "DetailedMerged" => View::DetailedMerged,
                _ => View::Detailed,
            },
            read_oof: f.read_out_of_office,
            oof_refresh_ms: f.oof_refresh_seconds * 1000,
            auth_retry_ms: f.auth_retry_seconds * 1000,
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

    /// The derived fields say what is allowed in the SDK's words, and the
    /// table marks the secrets.
    #[test]
    fn derived_fields_say_what_is_allowed() {
        let e = Settings::from_config(&cfg(&[
            ("ews_url", "https://mail.example.com/ews/exchange.asmx"),
            ("username", "svc"),
            ("password", "pw"),
            ("refresh_seconds", "4"),
        ]))
        .unwrap_err();
        let ConnectorError::InvalidConfig(e) = e else {
            panic!("{e:?}")
        };
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("refresh_seconds", "must be a whole number from 5 to 3600")
        );
        let secrets: Vec<_> = fields()
            .into_iter()
            .filter(|f| f.secret)
            .map(|f| f.name)
            .collect();
        assert_eq!(secrets, ["password", "oauth_token"]);
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
