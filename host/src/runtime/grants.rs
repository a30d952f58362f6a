//! Deny-by-default network grants.
//!
//! A grant is written `scheme://host[:port]`: scheme one of udp, tcp, tls,
//! http, https, ws, wss; host an exact name or IP, `*`, or `*.suffix`; port a
//! number or `*` (http/https/ws/wss default to 80/443). A plugin may reach
//! what its manifest grants plus the exact addresses an operator configured
//! for the instance.

use std::fmt;

/// Transports a grant can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Udp,
    Tcp,
    Tls,
    Http,
    Https,
    Ws,
    Wss,
}

impl Scheme {
    fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "udp" => Self::Udp,
            "tcp" => Self::Tcp,
            "tls" => Self::Tls,
            "http" => Self::Http,
            "https" => Self::Https,
            "ws" => Self::Ws,
            "wss" => Self::Wss,
            _ => return None,
        })
    }

    /// The port a URL of this scheme uses when it names none.
    pub fn default_port(self) -> Option<u16> {
        match self {
            Self::Http | Self::Ws => Some(80),
            Self::Https | Self::Wss => Some(443),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Http => "http",
            Self::Https => "https",
            Self::Ws => "ws",
            Self::Wss => "wss",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Suffix(String),
    Exact(String),
}

/// One grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// `None`: any scheme (operator-configured addresses).
    scheme: Option<Scheme>,
    host: HostPattern,
    /// `None`: any port.
    port: Option<u16>,
}

/// Why a grant string is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("grant {grant:?}: {message}")]
pub struct GrantParseError {
    pub grant: String,
    pub message: String,
}

fn normalize_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

impl Grant {
    /// Parse `scheme://host[:port]`.
    pub fn parse(text: &str) -> Result<Self, GrantParseError> {
        let err = |message: &str| GrantParseError {
            grant: text.into(),
            message: message.into(),
        };
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| err("expected scheme://host[:port]"))?;
        let scheme = Scheme::parse(scheme)
            .ok_or_else(|| err("scheme must be udp, tcp, tls, http, https, ws or wss"))?;
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') {
            return Err(err("a grant names a host and port, not a path"));
        }
        let (host, port) = split_host_port(rest).map_err(|m| err(&m))?;
        if host.is_empty() {
            return Err(err("host is empty"));
        }
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            HostPattern::Suffix(normalize_host(suffix))
        } else if host.contains('*') {
            return Err(err(
                "`*` is allowed only as the whole host or as `*.suffix`",
            ));
        } else {
            HostPattern::Exact(normalize_host(host))
        };
        let port = match port {
            Some("*") => None,
            Some(p) => Some(p.parse().map_err(|_| err("port must be 1-65535 or *"))?),
            None => match scheme.default_port() {
                Some(p) => Some(p),
                None => return Err(err("udp, tcp and tls grants need a port (or *)")),
            },
        };
        if port == Some(0) {
            return Err(err("port must be 1-65535 or *"));
        }
        Ok(Self {
            scheme: Some(scheme),
            host,
            port,
        })
    }

    /// An operator-configured address: that host and port, any scheme.
    pub fn address(host: &str, port: u16) -> Self {
        Self {
            scheme: None,
            host: HostPattern::Exact(normalize_host(host)),
            port: Some(port),
        }
    }

    fn allows(&self, scheme: Scheme, host: &str, port: u16) -> bool {
        if self.scheme.is_some_and(|s| s != scheme) || self.port.is_some_and(|p| p != port) {
            return false;
        }
        match &self.host {
            HostPattern::Any => true,
            HostPattern::Exact(h) => *h == host,
            HostPattern::Suffix(s) => host
                .strip_suffix(s.as_str())
                .is_some_and(|head| head.ends_with('.')),
        }
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.scheme.map_or("*", Scheme::as_str);
        let host = match &self.host {
            HostPattern::Any => "*".to_string(),
            HostPattern::Suffix(s) => format!("*.{s}"),
            HostPattern::Exact(h) if h.contains(':') => format!("[{h}]"),
            HostPattern::Exact(h) => h.clone(),
        };
        match self.port {
            Some(p) => write!(f, "{scheme}://{host}:{p}"),
            None => write!(f, "{scheme}://{host}:*"),
        }
    }
}

/// Split `host[:port]`, accepting `[v6]:port`.
pub fn split_host_port(s: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "unclosed [ in IPv6 address".to_string())?;
        return match after {
            "" => Ok((host, None)),
            a => a
                .strip_prefix(':')
                .map(|p| (host, Some(p)))
                .ok_or_else(|| "expected :port after ]".to_string()),
        };
    }
    match s.rsplit_once(':') {
        Some((h, _)) if h.contains(':') => Ok((s, None)), // bare IPv6
        Some((h, p)) => Ok((h, Some(p))),
        None => Ok((s, None)),
    }
}

/// The set of grants one connector instance runs with.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    grants: Vec<Grant>,
}

/// A refused reach, naming the grant that would have allowed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not granted: {missing} (add it to the plugin manifest's grants.network, or configure this address on the instance)"
)]
pub struct Denied {
    /// E.g. `tcp://10.0.0.5:5061`.
    pub missing: String,
}

impl Grants {
    pub fn new(grants: Vec<Grant>) -> Self {
        Self { grants }
    }

    /// Add a grant (an operator-configured address).
    pub fn widen(&mut self, grant: Grant) {
        self.grants.push(grant);
    }

    /// Allow or refuse `scheme://host:port`.
    pub fn check(&self, scheme: Scheme, host: &str, port: u16) -> Result<(), Denied> {
        let host = normalize_host(host);
        if self.grants.iter().any(|g| g.allows(scheme, &host, port)) {
            Ok(())
        } else {
            let shown = if host.contains(':') {
                format!("[{host}]")
            } else {
                host
            };
            Err(Denied {
                missing: format!("{}://{shown}:{port}", scheme.as_str()),
            })
        }
    }

    /// Check an absolute URL; returns its scheme, host and port.
    pub fn check_url(&self, url: &str) -> Result<(Scheme, String, u16), UrlCheckError> {
        let (scheme, host, port) = parse_url_authority(url)?;
        self.check(scheme, &host, port)?;
        Ok((scheme, host, port))
    }
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlCheckError {
    #[error(
        "invalid URL {0:?}: expected scheme://host[:port]/path with scheme http, https, ws or wss"
    )]
    Invalid(String),
    #[error(transparent)]
    Denied(#[from] Denied),
}

/// Scheme, host and port of an http(s)/ws(s) URL.
pub fn parse_url_authority(url: &str) -> Result<(Scheme, String, u16), UrlCheckError> {
    let bad = || UrlCheckError::Invalid(url.into());
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let scheme = Scheme::parse(scheme)
        .filter(|s| s.default_port().is_some())
        .ok_or_else(bad)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        // userinfo in URLs hides the real host from casual readers; refuse it.
        return Err(bad());
    }
    let (host, port) = split_host_port(authority).map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    let port = match port {
        Some(p) => p.parse().map_err(|_| bad())?,
        None => scheme.default_port().expect("filtered above"),
    };
    Ok((scheme, normalize_host(host), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(list: &[&str]) -> Grants {
        Grants::new(list.iter().map(|g| Grant::parse(g).unwrap()).collect())
    }

    #[test]
    fn deny_by_default() {
        let g = Grants::default();
        let e = g.check(Scheme::Udp, "pbx.local", 5060).unwrap_err();
        assert_eq!(e.missing, "udp://pbx.local:5060");
    }

    #[test]
    fn exact_wildcard_and_suffix() {
        let g = grants(&[
            "udp://*:5060",
            "https://graph.microsoft.com",
            "tcp://*.example.com:*",
        ]);
        assert!(g.check(Scheme::Udp, "10.0.0.1", 5060).is_ok());
        assert!(g.check(Scheme::Udp, "10.0.0.1", 5061).is_err());
        assert!(g.check(Scheme::Tcp, "10.0.0.1", 5060).is_err());
        assert!(g.check(Scheme::Https, "GRAPH.microsoft.com", 443).is_ok());
        assert!(g.check(Scheme::Http, "graph.microsoft.com", 443).is_err());
        assert!(g.check(Scheme::Tcp, "a.example.com", 1).is_ok());
        assert!(g.check(Scheme::Tcp, "example.com", 1).is_err());
        assert!(g.check(Scheme::Tcp, "badexample.com", 1).is_err());
    }

    #[test]
    fn configured_address_widens_every_scheme_for_that_port_only() {
        let mut g = Grants::default();
        g.widen(Grant::address("PBX.local", 5060));
        assert!(g.check(Scheme::Udp, "pbx.local", 5060).is_ok());
        assert!(g.check(Scheme::Tcp, "pbx.local", 5060).is_ok());
        assert!(g.check(Scheme::Tcp, "pbx.local", 5061).is_err());
        assert!(g.check(Scheme::Tcp, "other", 5060).is_err());
    }

    #[test]
    fn urls() {
        let g = grants(&["https://login.microsoftonline.com", "http://127.0.0.1:*"]);
        assert!(
            g.check_url("https://login.microsoftonline.com/tenant/oauth2/v2.0/token")
                .is_ok()
        );
        assert!(g.check_url("http://127.0.0.1:8080/x?y").is_ok());
        assert!(matches!(
            g.check_url("https://evil.com/"),
            Err(UrlCheckError::Denied(_))
        ));
        assert!(matches!(
            g.check_url("https://login.microsoftonline.com@evil.com/"),
            Err(UrlCheckError::Invalid(_))
        ));
        assert!(matches!(
            g.check_url("ftp://x/"),
            Err(UrlCheckError::Invalid(_))
        ));
        let (_, h, p) = parse_url_authority("wss://[::1]:9000/ws").unwrap();
        assert_eq!((h.as_str(), p), ("::1", 9000));
    }

    #[test]
    fn malformed_grants_say_why() {
        for bad in [
            "pbx:5060",
            "smtp://x:25",
            "udp://pbx",
            "tcp://a*b:1",
            "tcp://x:0",
            "https://x/path",
        ] {
            assert!(Grant::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Grant::parse("udp://[::1]:5060").unwrap().to_string(),
            "udp://[::1]:5060"
        );
    }
}
