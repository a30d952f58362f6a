//! The connector's configuration, as operators know it from the seeds.

use presence_connector_sdk::{Config, ConfigField, ConnectorError, FieldKind, invalid_config};

use crate::sip::uri::presence_target;

/// Transport to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

/// Which event packages to subscribe per watched endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Events {
    pub presence: bool,
    pub dialog: bool,
    pub features: bool,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server_host: String,
    pub server_port: u16,
    pub transport: Transport,
    /// Our AOR user and domain (`uri = user@domain`).
    pub user: String,
    pub user_domain: String,
    pub auth_id: String,
    pub password: Option<String>,
    /// Domain for endpoints given as bare extensions.
    pub domain: String,
    pub expires: u32,
    pub events: Events,
    /// RLS list (RFC 4662) for presence, instead of one subscription per
    /// endpoint.
    pub list_uri: Option<String>,
    /// RLS list for dialog state: a busy lamp field list (BroadWorks,
    /// Yealink `blf_list_uri`), instead of one dialog subscription per
    /// endpoint.
    pub blf_list_uri: Option<String>,
    pub publish_expires: u32,
    pub keepalive_ms: u64,
}

/// The fields `describe` announces.
pub fn fields() -> Vec<ConfigField> {
    let f = presence_connector_sdk::config_field;
    vec![
        f(
            "server",
            "Server address",
            "Presence server or PBX, host[:port]",
            FieldKind::ServerAddress(5060),
            None,
            true,
            false,
        ),
        f(
            "transport",
            "Transport",
            "udp, tcp or tls",
            FieldKind::Choice(vec!["udp".into(), "tcp".into(), "tls".into()]),
            Some("udp"),
            false,
            false,
        ),
        f(
            "uri",
            "URI",
            "The hub's own SIP identity, user@domain",
            FieldKind::Text,
            None,
            true,
            false,
        ),
        f(
            "auth_id",
            "Auth ID",
            "Digest user name; defaults to the URI's user",
            FieldKind::Text,
            None,
            false,
            false,
        ),
        f(
            "password",
            "Password",
            "Digest password",
            FieldKind::Text,
            None,
            false,
            true,
        ),
        f(
            "domain",
            "Domain",
            "Domain for endpoints given as bare extensions; defaults to the URI's domain",
            FieldKind::Text,
            None,
            false,
            false,
        ),
        f(
            "subscribe",
            "Subscribe to",
            "presence (rich), dialog (telephony), or both",
            FieldKind::Choice(vec!["presence".into(), "dialog".into(), "both".into()]),
            Some("both"),
            false,
            false,
        ),
        f(
            "feature_events",
            "DND and forwarding",
            "Also subscribe to Broadsoft as-feature-event (DND, call forwarding)",
            FieldKind::Boolean,
            Some("false"),
            false,
            false,
        ),
        f(
            "list_uri",
            "Resource list URI",
            "Subscribe to this RLS list (RFC 4662) for rich presence instead of one subscription per user",
            FieldKind::Text,
            None,
            false,
            false,
        ),
        f(
            "blf_list_uri",
            "BLF list URI",
            "Subscribe to this busy lamp field list (RFC 4662, Event: dialog; BroadWorks and Yealink call it the BLF list URI) for telephony instead of one dialog subscription per user",
            FieldKind::Text,
            None,
            false,
            false,
        ),
        f(
            "expires",
            "Subscription expiry (s)",
            "Requested subscription duration",
            FieldKind::Integer,
            Some("3600"),
            false,
            false,
        ),
        f(
            "publish_expires",
            "Publication expiry (s)",
            "Requested PUBLISH duration for write-back",
            FieldKind::Integer,
            Some("3600"),
            false,
            false,
        ),
        f(
            "keepalive_seconds",
            "Keep-alive (s)",
            "OPTIONS ping interval that detects a lost or restarted server",
            FieldKind::Integer,
            Some("30"),
            false,
            false,
        ),
    ]
}

impl Settings {
    pub fn from_config(c: &Config) -> Result<Settings, ConnectorError> {
        let server = c.text("server")?;
        let (server_host, server_port) = split_host_port(server)
            .ok_or_else(|| invalid_config("server", "expected host[:port]"))?;
        let transport = match c.opt_text("transport")?.unwrap_or("udp") {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            "tls" => Transport::Tls,
            _ => return Err(invalid_config("transport", "udp, tcp or tls")),
        };
        let uri = c.text("uri")?;
        let uri = uri
            .trim()
            .trim_start_matches("sips:")
            .trim_start_matches("sip:")
            .to_string();
        let (user, user_domain) = uri
            .split_once('@')
            .filter(|(u, d)| !u.is_empty() && !d.is_empty())
            .ok_or_else(|| invalid_config("uri", "expected user@domain"))?;
        let events = match c.opt_text("subscribe")?.unwrap_or("both") {
            "presence" => Events {
                presence: true,
                dialog: false,
                features: false,
            },
            "dialog" => Events {
                presence: false,
                dialog: true,
                features: false,
            },
            "both" => Events {
                presence: true,
                dialog: true,
                features: false,
            },
            _ => return Err(invalid_config("subscribe", "presence, dialog or both")),
        };
        let events = Events {
            features: c.opt_boolean("feature_events")?.unwrap_or(false),
            ..events
        };
        let domain = c.opt_text("domain")?.unwrap_or(user_domain).to_string();
        // List URIs take the same forms as endpoints (pres:, a bare name in
        // our domain), not just `sip:`.
        let list = |name: &str| -> Result<Option<String>, ConnectorError> {
            Ok(c.opt_text(name)?
                .map(|u| presence_target(u.trim(), &domain)))
        };
        let blf_list_uri = list("blf_list_uri")?;
        if blf_list_uri.is_some() && !events.dialog {
            return Err(invalid_config(
                "blf_list_uri",
                "a BLF list carries dialog state: set subscribe to dialog or both",
            ));
        }
        let int = |name: &str, default: i64, lo: i64, hi: i64| -> Result<i64, ConnectorError> {
            let v = c.opt_integer(name)?.unwrap_or(default);
            if v < lo || v > hi {
                return Err(invalid_config(name, format!("must be {lo}..={hi}")));
            }
            Ok(v)
        };
        Ok(Settings {
            server_host,
            server_port,
            transport,
            auth_id: c.opt_text("auth_id")?.unwrap_or(user).to_string(),
            user: user.to_string(),
            user_domain: user_domain.to_string(),
            password: c.opt_text("password")?.map(str::to_string),
            list_uri: list("list_uri")?,
            domain,
            expires: int("expires", 3600, 0, 86_400)? as u32,
            events,
            blf_list_uri,
            publish_expires: int("publish_expires", 3600, 60, 86_400)? as u32,
            keepalive_ms: int("keepalive_seconds", 30, 1, 3600)? as u64 * 1000,
        })
    }

    /// The SIP URI of a watched endpoint (see [`presence_target`]: SIP URIs
    /// as given, `pres:`/`im:` URIs as the SIP URI of the same user, bare
    /// extensions in our domain).
    pub fn target_uri(&self, endpoint: &str) -> String {
        presence_target(endpoint, &self.domain)
    }

    pub fn aor(&self) -> String {
        format!("sip:{}@{}", self.user, self.user_domain)
    }
}

fn split_host_port(s: &str) -> Option<(String, u16)> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => 5060,
        };
        return Some((h.to_string(), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h.to_string(), p.parse().ok()?)),
        _ if !s.is_empty() => Some((s.to_string(), 5060)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use presence_connector_sdk::{ConfigEntry, ConfigValue};

    fn parse(extra: &[(&str, &str)]) -> Result<Settings, ConnectorError> {
        let mut entries = vec![("server", "pbx.example.com"), ("uri", "hub@example.com")];
        entries.extend_from_slice(extra);
        let entries = entries
            .into_iter()
            .map(|(name, value)| ConfigEntry {
                name: name.into(),
                value: ConfigValue::Text(value.into()),
            })
            .collect();
        Settings::from_config(&Config::new(entries))
    }

    #[test]
    fn by_default_one_instance_feeds_both_channels() {
        // Imagicle's seeds: presence and BLF both from the SIP server.
        let s = parse(&[]).unwrap();
        assert!(s.events.presence && s.events.dialog && !s.events.features);
        let field = fields()
            .into_iter()
            .find(|f| f.name == "subscribe")
            .unwrap();
        assert_eq!(field.default_value.as_deref(), Some("both"));
        assert_eq!((s.list_uri, s.blf_list_uri), (None, None));
    }

    #[test]
    fn a_blf_list_needs_the_dialog_package() {
        let s = parse(&[("blf_list_uri", "4601-blf@as.example.com")]).unwrap();
        assert_eq!(
            s.blf_list_uri.as_deref(),
            Some("sip:4601-blf@as.example.com")
        );
        let s = parse(&[
            ("subscribe", "dialog"),
            ("blf_list_uri", " sip:blf@example.com "),
            ("list_uri", "team@example.com"),
        ])
        .unwrap();
        assert_eq!(s.blf_list_uri.as_deref(), Some("sip:blf@example.com"));
        assert_eq!(s.list_uri.as_deref(), Some("sip:team@example.com"));
        let e = parse(&[
            ("subscribe", "presence"),
            ("blf_list_uri", "blf@example.com"),
        ])
        .unwrap_err();
        assert!(
            matches!(&e, ConnectorError::InvalidConfig(f) if f.field == "blf_list_uri"),
            "{e:?}"
        );
    }
}
