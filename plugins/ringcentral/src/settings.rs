//! The connector's configuration fields (names fixed: operators and tests
//! use them) and their validated form.

use std::fmt;

use presence_connector_sdk::{Config, ConfigField, ConnectorError, FieldKind, invalid_config};

use crate::budget::{Group, Limits};

/// How the connector signs in (facts C7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` with the JWT
    /// credential from the Developer Console (RFC 7523).
    Jwt,
    /// An operator opens the authorize URL once; refresh tokens keep the
    /// connector signed in.
    AuthorizationCode,
}

/// How notifications arrive (facts C5, C6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    WebSocket,
    WebHook,
}

/// Validated settings.
#[derive(Clone, PartialEq)]
pub struct Settings {
    /// API server without a trailing slash, e.g. `https://platform.ringcentral.com`.
    pub server: String,
    pub auth: AuthMode,
    pub client_id: String,
    pub client_secret: String,
    pub jwt: Option<String>,
    /// `~` (the account of the signed-in user) or an account id.
    pub account: String,
    pub delivery: Delivery,
    pub reflect_dnd: bool,
    pub force_accept: bool,
    /// Extension ids, numbers and emails (lower case) the forced queue-call
    /// acceptance leaves alone.
    pub exclusions: Vec<String>,
    pub limits: Limits,
    /// `{webhook-base-url}`, the hub's public base for this instance, if it
    /// knows one.
    pub hook_base: Option<String>,
}

// Written by hand so secrets never reach a log.
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("server", &self.server)
            .field("auth", &self.auth)
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .field("jwt", &self.jwt.as_ref().map(|_| "***"))
            .field("account", &self.account)
            .field("delivery", &self.delivery)
            .field("reflect_dnd", &self.reflect_dnd)
            .field("force_accept", &self.force_accept)
            .field("exclusions", &self.exclusions)
            .field("limits", &self.limits)
            .field("hook_base", &self.hook_base)
            .finish()
    }
}

/// RingCentral's production API server.
pub const DEFAULT_SERVER: &str = "https://platform.ringcentral.com";

/// The fields `describe` announces.
pub fn fields() -> Vec<ConfigField> {
    let f = presence_connector_sdk::config_field;
    vec![
        f(
            "server_url",
            "Server URL",
            "RingCentral API server; a white-label brand (Unify Office, Avaya Cloud Office, ...) or the sandbox https://platform.devtest.ringcentral.com differ only here",
            FieldKind::Url,
            Some(DEFAULT_SERVER),
            false,
            false,
        ),
        f(
            "auth_mode",
            "Sign-in",
            "jwt: a JWT credential of a service user (no login step); authorization-code: an operator signs a user in once through the login step, refresh tokens keep it signed in",
            FieldKind::Choice(vec!["jwt".into(), "authorization-code".into()]),
            Some("jwt"),
            false,
            false,
        ),
        f(
            "client_id",
            "Client id",
            "Client id of the app in the RingCentral Developer Console",
            FieldKind::Text,
            None,
            true,
            false,
        ),
        f(
            "client_secret",
            "Client secret",
            "Client secret of the app",
            FieldKind::Text,
            None,
            true,
            true,
        ),
        f(
            "jwt",
            "JWT credential",
            "The user's JWT credential (Developer Console > Credentials); required when sign-in is jwt",
            FieldKind::Text,
            None,
            false,
            true,
        ),
        f(
            "account_id",
            "Account",
            "Account id, or ~ for the account of the signed-in user",
            FieldKind::Text,
            Some("~"),
            false,
            false,
        ),
        f(
            "delivery",
            "Notifications",
            "websocket: RingCentral's WebSocket API (no public URL needed); webhook: RingCentral posts to {hub public URL}/hooks/{instance}/notify",
            FieldKind::Choice(vec!["websocket".into(), "webhook".into()]),
            Some("websocket"),
            false,
            false,
        ),
        f(
            "reflect_dnd",
            "Reflect DND back to RingCentral",
            "Set the user to Do Not Disturb in RingCentral while they are in a RingCentral call (connected or on hold), so no second call rings; lifted when the call ends",
            FieldKind::Boolean,
            Some("false"),
            false,
            false,
        ),
        f(
            "force_accept_queue_calls",
            "Force 'Accept queue calls'",
            "When a user switches 'Accept queue calls' off, switch it on again",
            FieldKind::Boolean,
            Some("false"),
            false,
            false,
        ),
        f(
            "force_accept_exclusions",
            "Exclusions from forced queue calls",
            "Comma-separated extension ids, extension numbers or emails left alone by the forced 'Accept queue calls'",
            FieldKind::Text,
            Some(""),
            false,
            false,
        ),
        f(
            "rate_limits",
            "Rate limits",
            "Requests per 60 s per throttling group, e.g. light=50,medium=40,heavy=10,auth=5 (RingCentral's defaults); headers X-Rate-Limit-* override them when sent",
            FieldKind::Text,
            Some("light=50,medium=40,heavy=10,auth=5"),
            false,
            false,
        ),
    ]
}

fn choice<T: Copy>(
    config: &Config,
    name: &str,
    default: T,
    options: &[(&str, T)],
) -> Result<T, ConnectorError> {
    let Some(text) = config.opt_text(name)? else {
        return Ok(default);
    };
    options
        .iter()
        .find(|(o, _)| o.eq_ignore_ascii_case(text.trim()))
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(o, _)| *o).collect();
            invalid_config(name, format!("must be one of {}", names.join(", ")))
        })
}

/// Parses `light=50,medium=40,heavy=10,auth=5` (any subset, any order;
/// `;` or `,` between). Each value is requests per 60 s, 1..=100000.
pub fn parse_limits(text: &str) -> Result<Limits, String> {
    let mut limits = Limits::default();
    for part in text
        .split([',', ';'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}`: write group=number, e.g. light=50"))?;
        let group = Group::parse(name.trim()).ok_or_else(|| {
            format!(
                "unknown group `{}` (light, medium, heavy, auth)",
                name.trim()
            )
        })?;
        let n: u32 = value
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=100_000).contains(n))
            .ok_or_else(|| format!("`{part}`: the limit must be a number from 1 to 100000"))?;
        limits.set(group, n);
    }
    Ok(limits)
}

impl Settings {
    /// Validates a configuration. `hook_base` is the hub's public base URL of
    /// this instance (`instance.info().webhook-base-url`).
    pub fn from_config(c: &Config, hook_base: Option<&str>) -> Result<Settings, ConnectorError> {
        let server = c
            .opt_text("server_url")?
            .unwrap_or(DEFAULT_SERVER)
            .trim()
            .trim_end_matches('/')
            .to_string();
        if !(server.starts_with("https://") || server.starts_with("http://"))
            || server.split("://").nth(1).is_none_or(str::is_empty)
        {
            return Err(invalid_config(
                "server_url",
                "must be an http(s) URL such as https://platform.ringcentral.com",
            ));
        }
        let auth = choice(
            c,
            "auth_mode",
            AuthMode::Jwt,
            &[
                ("jwt", AuthMode::Jwt),
                ("authorization-code", AuthMode::AuthorizationCode),
            ],
        )?;
        let client_id = c.text("client_id")?.trim().to_string();
        let client_secret = c.text("client_secret")?.to_string();
        let jwt = c.opt_text("jwt")?.map(|j| j.trim().to_string());
        if auth == AuthMode::Jwt && jwt.is_none() {
            return Err(invalid_config(
                "jwt",
                "is required when auth_mode is jwt (the JWT credential from the Developer Console)",
            ));
        }
        let account = c.opt_text("account_id")?.unwrap_or("~").trim().to_string();
        if account.is_empty()
            || !account
                .chars()
                .all(|ch| ch == '~' || ch.is_ascii_alphanumeric())
        {
            return Err(invalid_config("account_id", "must be ~ or an account id"));
        }
        let delivery = choice(
            c,
            "delivery",
            Delivery::WebSocket,
            &[
                ("websocket", Delivery::WebSocket),
                ("webhook", Delivery::WebHook),
            ],
        )?;
        let exclusions = c
            .opt_text("force_accept_exclusions")?
            .unwrap_or("")
            .split([',', ';', '\n'])
            .map(|e| e.trim().to_ascii_lowercase())
            .filter(|e| !e.is_empty())
            .collect();
        let limits = match c.opt_text("rate_limits")? {
            Some(text) => parse_limits(text).map_err(|m| invalid_config("rate_limits", m))?,
            None => Limits::default(),
        };
        Ok(Settings {
            server,
            auth,
            client_id,
            client_secret,
            jwt,
            account,
            delivery,
            reflect_dnd: c.opt_boolean("reflect_dnd")?.unwrap_or(false),
            force_accept: c.opt_boolean("force_accept_queue_calls")?.unwrap_or(false),
            exclusions,
            limits,
            hook_base: hook_base
                .map(|b| b.trim_end_matches('/').to_string())
                .filter(|b| !b.is_empty()),
        })
    }

    /// Where RingCentral posts WebHook notifications.
    pub fn notify_url(&self) -> Option<String> {
        self.hook_base.as_ref().map(|b| format!("{b}/notify"))
    }

    /// The OAuth redirect URI.
    pub fn redirect_url(&self) -> Option<String> {
        self.hook_base
            .as_ref()
            .map(|b| format!("{b}/oauth/callback"))
    }

    /// What a missing public URL prevents, if anything: WebHook delivery
    /// and the authorization-code redirect need it.
    pub fn missing_public_url(&self) -> Option<String> {
        if self.hook_base.is_some() {
            return None;
        }
        let mut needs = Vec::new();
        if self.delivery == Delivery::WebHook {
            needs.push("delivery=webhook");
        }
        if self.auth == AuthMode::AuthorizationCode {
            needs.push("auth_mode=authorization-code");
        }
        (!needs.is_empty()).then(|| {
            format!(
                "{} needs the hub's public URL: set HUB_PUBLIC_URL so RingCentral can reach /hooks/{{instance}}/...",
                needs.join(" and ")
            )
        })
    }

    /// What stored tokens belong to: a change of server, app, sign-in mode
    /// or JWT makes them void. Holds no secret in clear (a 64-bit FNV-1a
    /// digest of the JWT).
    pub fn fingerprint(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.jwt.as_deref().unwrap_or("").bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!(
            "{}|{}|{:?}|{h:016x}",
            self.server, self.client_id, self.auth
        )
    }

    /// Whether the forced queue-call acceptance leaves this extension alone
    /// (matched by id, number or email, case-insensitive).
    pub fn excluded(&self, id: &str, number: Option<&str>, email: Option<&str>) -> bool {
        let hit = |v: &str| self.exclusions.iter().any(|e| e.eq_ignore_ascii_case(v));
        hit(id) || number.is_some_and(hit) || email.is_some_and(hit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use presence_connector_sdk::{ConfigEntry, ConfigValue, FieldError};

    fn cfg(pairs: &[(&str, &str)]) -> Config {
        Config::new(
            pairs
                .iter()
                .map(|(k, v)| ConfigEntry {
                    name: k.to_string(),
                    value: match *v {
                        "true" => ConfigValue::Boolean(true),
                        "false" => ConfigValue::Boolean(false),
                        v => ConfigValue::Text(v.into()),
                    },
                })
                .collect(),
        )
    }

    fn err(field: &str) -> impl Fn(ConnectorError) -> bool + '_ {
        move |e| matches!(e, ConnectorError::InvalidConfig(FieldError { field: f, .. }) if f == field)
    }

    #[test]
    fn defaults() {
        let s = Settings::from_config(
            &cfg(&[
                ("client_id", "cid"),
                ("client_secret", "sec"),
                ("jwt", "eyJ"),
            ]),
            Some("https://hub.example.com/hooks/rc/"),
        )
        .unwrap();
        assert_eq!(s.server, DEFAULT_SERVER);
        assert_eq!(s.auth, AuthMode::Jwt);
        assert_eq!(s.account, "~");
        assert_eq!(s.delivery, Delivery::WebSocket);
        assert!(!s.reflect_dnd && !s.force_accept);
        assert_eq!(s.limits, Limits::default());
        assert_eq!(
            s.notify_url().as_deref(),
            Some("https://hub.example.com/hooks/rc/notify")
        );
        assert_eq!(
            s.redirect_url().as_deref(),
            Some("https://hub.example.com/hooks/rc/oauth/callback")
        );
        assert!(!format!("{s:?}").contains("sec\""));
        assert!(!format!("{s:?}").contains("eyJ"));
    }

    #[test]
    fn jwt_mode_needs_the_jwt_and_names_it() {
        let e = Settings::from_config(&cfg(&[("client_id", "c"), ("client_secret", "s")]), None)
            .unwrap_err();
        assert!(err("jwt")(e));
        let ok = Settings::from_config(
            &cfg(&[
                ("client_id", "c"),
                ("client_secret", "s"),
                ("auth_mode", "authorization-code"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(ok.auth, AuthMode::AuthorizationCode);
        assert!(ok.missing_public_url().unwrap().contains("HUB_PUBLIC_URL"));
    }

    #[test]
    fn bad_values_name_their_field() {
        let base = [("client_id", "c"), ("client_secret", "s"), ("jwt", "j")];
        for (field, value) in [
            ("server_url", "ftp://x"),
            ("auth_mode", "password"),
            ("delivery", "pubnub"),
            ("rate_limits", "light=0"),
            ("rate_limits", "extreme=5"),
            ("rate_limits", "light"),
            ("account_id", "a/b"),
        ] {
            let mut pairs = base.to_vec();
            pairs.push((field, value));
            let e = Settings::from_config(&cfg(&pairs), None).unwrap_err();
            assert!(err(field)(e), "{field}={value}");
        }
        let e = Settings::from_config(&cfg(&[("client_id", "c"), ("jwt", "j")]), None).unwrap_err();
        assert!(err("client_secret")(e));
    }

    #[test]
    fn options_limits_and_exclusions() {
        let s = Settings::from_config(
            &cfg(&[
                ("client_id", "c"),
                ("client_secret", "s"),
                ("jwt", "j"),
                ("server_url", "http://127.0.0.1:9000/"),
                ("delivery", "webhook"),
                ("reflect_dnd", "true"),
                ("force_accept_queue_calls", "true"),
                (
                    "force_accept_exclusions",
                    " 101, Boss@Example.com ,62000001",
                ),
                ("rate_limits", "heavy=2; light=7"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(s.server, "http://127.0.0.1:9000");
        assert_eq!(s.delivery, Delivery::WebHook);
        assert!(s.reflect_dnd && s.force_accept);
        assert!(s.excluded("62000001", None, None));
        assert!(s.excluded("9", Some("101"), None));
        assert!(s.excluded("9", None, Some("boss@example.com")));
        assert!(!s.excluded("9", Some("102"), Some("x@example.com")));
        assert_eq!(s.limits.get(Group::Heavy), 2);
        assert_eq!(s.limits.get(Group::Light), 7);
        assert_eq!(s.limits.get(Group::Medium), 40);
        assert!(s.missing_public_url().unwrap().contains("delivery=webhook"));
        let mut other = s.clone();
        other.jwt = Some("k".into());
        assert_ne!(s.fingerprint(), other.fingerprint());
    }
}
