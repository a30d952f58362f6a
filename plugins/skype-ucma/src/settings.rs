//! The connector's configuration fields (names fixed: operators and tests
//! use them) and their validated form.
//!
//! The endpoint the bridge establishes is configured exactly as operators
//! know it from the Imagicle guide ("Configuration for Microsoft Skype for
//! Business Presence"): one of three endpoint types, each with its own
//! required fields. A wrong combination is refused naming the field that is
//! missing.
//!
//! A private CA for the bridge's certificate is not a field here: the hub
//! takes it per connector instance (`tls_ca_pem`), and the host's WebSocket
//! client checks the bridge against the system roots plus that CA.

use std::fmt;

use presence_connector_sdk::{
    Config, ConfigField, ConnectorConfig, ConnectorError, Secret, invalid_config,
};

/// How the bridge connects to the Front End pool (the seeds' three modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointType {
    /// A dedicated Lync / SfB user, plain SIP over TCP (port 5060).
    UserWithoutTls,
    /// The same over TLS (port 5061).
    UserWithTls,
    /// A trusted application endpoint (manually provisioned): application
    /// GRUU, certificate, MTLS.
    TrustedApplication,
}

impl EndpointType {
    /// The operator's value of `endpoint_type`.
    pub const CHOICES: [(&'static str, EndpointType); 3] = [
        ("user-endpoint-without-tls", EndpointType::UserWithoutTls),
        ("user-endpoint-with-tls", EndpointType::UserWithTls),
        (
            "trusted-application-endpoint",
            EndpointType::TrustedApplication,
        ),
    ];

    /// The operator's word for it.
    pub fn name(self) -> &'static str {
        match self {
            EndpointType::UserWithoutTls => "user-endpoint-without-tls",
            EndpointType::UserWithTls => "user-endpoint-with-tls",
            EndpointType::TrustedApplication => "trusted-application-endpoint",
        }
    }

    /// The Front End's SIP port when the operator gives none.
    pub fn default_port(self) -> u16 {
        match self {
            EndpointType::UserWithoutTls => 5060,
            EndpointType::UserWithTls | EndpointType::TrustedApplication => 5061,
        }
    }
}

/// The user endpoint's credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct UserEndpoint {
    pub user_name: String,
    pub sip_uri: String,
    pub password: String,
    pub domain: String,
}

/// The trusted application endpoint's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedApplication {
    pub contact_uri: String,
    pub gruu: String,
    pub certificate_name: String,
    pub host: String,
    pub port: u16,
}

/// The endpoint the bridge must establish.
#[derive(Clone, PartialEq, Eq)]
pub enum Endpoint {
    User(UserEndpoint),
    Trusted(TrustedApplication),
}

/// Validated settings.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// `wss://bridge.example.com:9443/ucma` (or `ws://` on loopback only).
    pub bridge_url: String,
    pub bridge_token: String,
    pub endpoint_type: EndpointType,
    pub server_fqdn: String,
    pub server_port: u16,
    pub endpoint: Endpoint,
    /// Targets per watch request.
    pub batch_size: usize,
}

// Written by hand so secrets never reach a log.
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Settings");
        d.field("bridge_url", &self.bridge_url)
            .field("bridge_token", &"***")
            .field("endpoint_type", &self.endpoint_type)
            .field("server_fqdn", &self.server_fqdn)
            .field("server_port", &self.server_port);
        match &self.endpoint {
            Endpoint::User(u) => d
                .field("user_name", &u.user_name)
                .field("sip_uri", &u.sip_uri)
                .field("password", &"***")
                .field("domain", &u.domain),
            Endpoint::Trusted(t) => d.field("application", t),
        };
        d.field("batch_size", &self.batch_size).finish()
    }
}

/// Targets per watch request unless configured (the field's `default`
/// below says the same).
pub const DEFAULT_BATCH: usize = 100;
/// The most targets one watch request may carry (the field's `range`).
pub const MAX_BATCH: usize = 500;

/// The fields as the operator fills them in; `describe` announces them and
/// [`Settings::from_config`] reads them. Which of the endpoint's fields are
/// required depends on `endpoint_type`; that is checked there.
#[derive(ConnectorConfig)]
struct Fields {
    /// WebSocket URL of the UCMA bridge on the Windows host beside the Front
    /// End pool, e.g. wss://ucma-bridge.example.com:9443/presence (a private
    /// CA goes into the instance's TLS CA)
    #[config(label = "Bridge URL", url)]
    bridge_url: String,
    /// The bearer token set on the bridge
    #[config(label = "Bridge token")]
    bridge_token: Secret,
    /// user-endpoint-without-tls: a dedicated Lync / SfB user over plain SIP
    /// (TCP 5060); user-endpoint-with-tls: the same over TLS (5061, a Web
    /// Server certificate on the bridge host); trusted-application-endpoint:
    /// a manually provisioned trusted application (GRUU, certificate, bridge
    /// host joined to the domain)
    #[config(
        label = "Endpoint type",
        choice(
            "user-endpoint-without-tls",
            "user-endpoint-with-tls",
            "trusted-application-endpoint"
        ),
        default = "user-endpoint-with-tls"
    )]
    endpoint_type: String,
    /// FQDN of the Lync / SfB Front End server or pool, optionally with
    /// :port (default 5060 without TLS, 5061 otherwise)
    #[config(label = "Lync / SfB Server Address")]
    server_fqdn: String,
    /// User endpoints: the user name of the monitoring user created for the
    /// hub
    #[config(label = "Username")]
    user_name: Option<String>,
    /// User endpoints: the monitoring user's SIP address, e.g.
    /// presence.hub@example.com
    #[config(label = "URI")]
    sip_uri: Option<String>,
    /// User endpoints: the monitoring user's password
    #[config(label = "Password")]
    password: Option<Secret>,
    /// User endpoints: the domain of the presence server, e.g. EXAMPLE.COM
    #[config(label = "Domain")]
    domain: Option<String>,
    /// Trusted application: an existing Lync / SfB SIP URI the application
    /// endpoint uses as its contact
    #[config(label = "Application Contact URI")]
    application_contact_uri: Option<String>,
    /// Trusted application: the ServiceGruu value New-CsTrustedApplication
    /// returned
    #[config(label = "Application GRUU")]
    application_gruu: Option<String>,
    /// Trusted application: the Friendly Name of the certificate installed
    /// on the bridge host
    #[config(label = "Certificate Name")]
    certificate_name: Option<String>,
    /// Trusted application: the FQDN used as Identity in
    /// New-CsTrustedApplicationPool
    #[config(label = "Application Host")]
    application_host: Option<String>,
    /// Trusted application: the Port New-CsTrustedApplication returned
    #[config(label = "Application Port", range(min = 1))]
    application_port: Option<u16>,
    /// How many Lync URIs one watch request to the bridge carries (1 to 500;
    /// the bridge may allow fewer, at least 100)
    #[config(
        label = "Targets per watch request",
        default = 100,
        range(min = 1, max = 500)
    )]
    watch_batch_size: usize,
}

/// The fields `describe` announces.
pub fn fields() -> Vec<ConfigField> {
    Fields::config_fields()
}

/// A field the endpoint type needs: present and not blank, trimmed.
fn required(value: Option<&str>, name: &str, why: &str) -> Result<String, ConnectorError> {
    match value.map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v.to_string()),
        _ => Err(invalid_config(name, format!("is required {why}"))),
    }
}

fn port(value: i64, name: &str) -> Result<u16, ConnectorError> {
    u16::try_from(value)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| invalid_config(name, "must be a port number from 1 to 65535"))
}

/// `sip:` in front of a bare `user@domain`; kept as written otherwise.
pub fn sip_uri(text: &str) -> String {
    let t = text.trim();
    if t.len() >= 4 && t[..4].eq_ignore_ascii_case("sip:") {
        format!("sip:{}", &t[4..])
    } else {
        format!("sip:{t}")
    }
}

fn check_sip(name: &str, text: &str) -> Result<String, ConnectorError> {
    let uri = sip_uri(text);
    let rest = &uri[4..];
    match rest.split_once('@') {
        Some((user, host)) if !user.is_empty() && !host.is_empty() && !rest.contains(' ') => {
            Ok(uri)
        }
        _ => Err(invalid_config(
            name,
            "must be a SIP address such as user@example.com",
        )),
    }
}

/// `fqdn[:port]`.
fn server(text: &str, default_port: u16) -> Result<(String, u16), ConnectorError> {
    let t = text.trim();
    let bad = || invalid_config("server_fqdn", "must be a host name, optionally with :port");
    let (host, p) = match t.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => {
            let p: i64 = p.parse().map_err(|_| bad())?;
            (h, port(p, "server_fqdn")?)
        }
        _ => (t, default_port),
    };
    if host.is_empty()
        || host.contains(['/', ' ', '@'])
        || host.starts_with('.')
        || host.ends_with('.') && host.len() == 1
    {
        return Err(bad());
    }
    Ok((host.to_ascii_lowercase(), p))
}

impl Settings {
    /// Validates the configuration `configure` received: an
    /// [`ConnectorError::InvalidConfig`] names the field and what is allowed
    /// (or that the endpoint type needs it).
    pub fn from_config(c: &Config) -> Result<Settings, ConnectorError> {
        let f = Fields::from_config(c)?;
        let bridge_url = f.bridge_url.trim().to_string();
        let lower = bridge_url.to_ascii_lowercase();
        if !lower.starts_with("wss://") && !lower.starts_with("ws://") {
            return Err(invalid_config(
                "bridge_url",
                "must be a wss:// URL (the bridge speaks WebSocket over TLS)",
            ));
        }
        if lower.starts_with("ws://") && !is_loopback(&lower["ws://".len()..]) {
            return Err(invalid_config(
                "bridge_url",
                "must be wss://: the token and the endpoint's password cross this connection (plain ws:// only to a bridge on loopback)",
            ));
        }
        let endpoint_type = EndpointType::CHOICES
            .iter()
            .find(|(n, _)| *n == f.endpoint_type)
            .map_or(EndpointType::UserWithTls, |(_, v)| *v);
        let (server_fqdn, server_port) = server(&f.server_fqdn, endpoint_type.default_port())?;
        let endpoint = match endpoint_type {
            EndpointType::UserWithoutTls | EndpointType::UserWithTls => {
                let why = "for a user endpoint";
                Endpoint::User(UserEndpoint {
                    user_name: required(f.user_name.as_deref(), "user_name", why)?,
                    sip_uri: check_sip(
                        "sip_uri",
                        &required(f.sip_uri.as_deref(), "sip_uri", why)?,
                    )?,
                    password: match &f.password {
                        Some(p) => p.expose().to_string(),
                        None => {
                            return Err(invalid_config(
                                "password",
                                "is required for a user endpoint",
                            ));
                        }
                    },
                    domain: required(f.domain.as_deref(), "domain", why)?,
                })
            }
            EndpointType::TrustedApplication => {
                let why = "for a trusted application endpoint";
                let contact = required(
                    f.application_contact_uri.as_deref(),
                    "application_contact_uri",
                    why,
                )?;
                let gruu = required(f.application_gruu.as_deref(), "application_gruu", why)?;
                if !gruu.to_ascii_lowercase().starts_with("sip:") {
                    return Err(invalid_config(
                        "application_gruu",
                        "must be the ServiceGruu as New-CsTrustedApplication printed it (sip:...;gruu;opaque=srvr:...)",
                    ));
                }
                Endpoint::Trusted(TrustedApplication {
                    contact_uri: check_sip("application_contact_uri", &contact)?,
                    gruu,
                    certificate_name: required(
                        f.certificate_name.as_deref(),
                        "certificate_name",
                        why,
                    )?,
                    host: required(f.application_host.as_deref(), "application_host", why)?,
                    port: f.application_port.ok_or_else(|| {
                        invalid_config(
                            "application_port",
                            "is required for a trusted application endpoint",
                        )
                    })?,
                })
            }
        };
        Ok(Settings {
            bridge_url,
            bridge_token: f.bridge_token.expose().to_string(),
            endpoint_type,
            server_fqdn,
            server_port,
            endpoint,
            batch_size: f.watch_batch_size,
        })
    }
}

/// Whether the authority at the start of `rest` (after `ws://`) is loopback.
fn is_loopback(rest: &str) -> bool {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    host == "localhost" || host == "::1" || host.starts_with("127.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use presence_connector_sdk::{ConfigEntry, ConfigValue, FieldError, FieldKind};

    fn cfg(pairs: &[(&str, &str)]) -> Config {
        Config::new(
            pairs
                .iter()
                .map(|(k, v)| ConfigEntry {
                    name: (*k).into(),
                    value: match v.parse::<i64>() {
                        Ok(n) if k.ends_with("port") || k.ends_with("size") => {
                            ConfigValue::Integer(n)
                        }
                        _ => ConfigValue::Text((*v).into()),
                    },
                })
                .collect(),
        )
    }

    pub const USER: &[(&str, &str)] = &[
        ("bridge_url", "wss://bridge.example.com:9443/presence"),
        ("bridge_token", "t0ken"),
        ("endpoint_type", "user-endpoint-with-tls"),
        ("server_fqdn", "sfb.example.com"),
        ("user_name", "presence.hub"),
        ("sip_uri", "presence.hub@example.com"),
        ("password", "s3cret"),
        ("domain", "EXAMPLE.COM"),
    ];

    pub const TRUSTED: &[(&str, &str)] = &[
        ("bridge_url", "wss://bridge.example.com:9443/presence"),
        ("bridge_token", "t0ken"),
        ("endpoint_type", "trusted-application-endpoint"),
        ("server_fqdn", "sfb.example.com:5061"),
        ("application_contact_uri", "sip:presence-app@example.com"),
        (
            "application_gruu",
            "sip:app.example.com@example.com;gruu;opaque=srvr:presencehub:abc",
        ),
        ("certificate_name", "OCSConnector"),
        ("application_host", "app.example.com"),
        ("application_port", "6001"),
    ];

    fn without(base: &[(&str, &str)], drop: &str) -> Config {
        let v: Vec<_> = base.iter().copied().filter(|(k, _)| *k != drop).collect();
        cfg(&v)
    }

    fn with(base: &[(&str, &str)], key: &'static str, value: &'static str) -> Config {
        let mut v: Vec<_> = base.iter().copied().filter(|(k, _)| *k != key).collect();
        v.push((key, value));
        cfg(&v)
    }

    /// The derived fields say what is allowed in the SDK's words.
    #[test]
    fn derived_fields_say_what_is_allowed() {
        match Settings::from_config(&with(USER, "watch_batch_size", "5000")) {
            Err(ConnectorError::InvalidConfig(e)) => assert_eq!(
                (e.field.as_str(), e.message.as_str()),
                ("watch_batch_size", "must be a whole number from 1 to 500")
            ),
            other => panic!("{other:?}"),
        }
    }

    fn field_of(e: ConnectorError) -> String {
        match e {
            ConnectorError::InvalidConfig(FieldError { field, .. }) => field,
            other => panic!("not invalid-config: {other:?}"),
        }
    }

    #[test]
    fn user_endpoint_with_tls() {
        let s = Settings::from_config(&cfg(USER)).unwrap();
        assert_eq!(s.endpoint_type, EndpointType::UserWithTls);
        assert_eq!(
            (s.server_fqdn.as_str(), s.server_port),
            ("sfb.example.com", 5061)
        );
        let Endpoint::User(u) = &s.endpoint else {
            panic!()
        };
        assert_eq!(u.sip_uri, "sip:presence.hub@example.com");
        assert_eq!(u.domain, "EXAMPLE.COM");
        assert_eq!(s.batch_size, DEFAULT_BATCH);
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("t0ken"),
            "{shown}"
        );
    }

    #[test]
    fn user_endpoint_without_tls_defaults_to_5060() {
        let s = Settings::from_config(&with(USER, "endpoint_type", "user-endpoint-without-tls"))
            .unwrap();
        assert_eq!(s.endpoint_type, EndpointType::UserWithoutTls);
        assert_eq!(s.server_port, 5060);
        let s = Settings::from_config(&with(USER, "server_fqdn", "SFB.example.com:5070")).unwrap();
        assert_eq!(
            (s.server_fqdn.as_str(), s.server_port),
            ("sfb.example.com", 5070)
        );
    }

    #[test]
    fn user_endpoint_needs_each_credential() {
        for f in ["user_name", "sip_uri", "password", "domain"] {
            let e = Settings::from_config(&without(USER, f)).unwrap_err();
            assert_eq!(field_of(e), f);
        }
        let e = Settings::from_config(&with(USER, "sip_uri", "no-at-sign")).unwrap_err();
        assert_eq!(field_of(e), "sip_uri");
    }

    #[test]
    fn trusted_application() {
        let s = Settings::from_config(&cfg(TRUSTED)).unwrap();
        let Endpoint::Trusted(t) = &s.endpoint else {
            panic!()
        };
        assert_eq!(t.port, 6001);
        assert_eq!(t.contact_uri, "sip:presence-app@example.com");
        assert_eq!(s.server_port, 5061);
        // A user endpoint's password is not needed.
        assert!(!format!("{s:?}").contains("password"));
    }

    #[test]
    fn trusted_application_needs_gruu_port_and_the_rest() {
        for f in [
            "application_contact_uri",
            "application_gruu",
            "certificate_name",
            "application_host",
            "application_port",
        ] {
            let e = Settings::from_config(&without(TRUSTED, f)).unwrap_err();
            assert_eq!(field_of(e), f, "{f}");
        }
        let e = Settings::from_config(&with(TRUSTED, "application_port", "70000")).unwrap_err();
        assert_eq!(field_of(e), "application_port");
        let e = Settings::from_config(&with(TRUSTED, "application_gruu", "opaque")).unwrap_err();
        assert_eq!(field_of(e), "application_gruu");
        // A user endpoint's fields do not make a trusted application.
        let mut mixed: Vec<_> = USER.to_vec();
        mixed.retain(|(k, _)| *k != "endpoint_type");
        mixed.push(("endpoint_type", "trusted-application-endpoint"));
        let e = Settings::from_config(&cfg(&mixed)).unwrap_err();
        assert_eq!(field_of(e), "application_contact_uri");
    }

    #[test]
    fn bridge_and_common_fields_are_checked() {
        for (k, v) in [
            ("bridge_url", "https://bridge.example.com"),
            ("bridge_url", "ws://bridge.example.com/presence"),
            ("endpoint_type", "client"),
            ("server_fqdn", "sfb.example.com:0"),
            ("server_fqdn", "http://sfb"),
            ("watch_batch_size", "0"),
            ("watch_batch_size", "5000"),
        ] {
            let e = Settings::from_config(&with(USER, k, v)).unwrap_err();
            assert_eq!(field_of(e), k, "{k}={v}");
        }
        for f in ["bridge_url", "bridge_token", "server_fqdn"] {
            let e = Settings::from_config(&without(USER, f)).unwrap_err();
            assert_eq!(field_of(e), f);
        }
        // Plain ws:// to a bridge on loopback (tests, a local tunnel).
        assert!(Settings::from_config(&with(USER, "bridge_url", "ws://127.0.0.1:9000/")).is_ok());
        // The endpoint type defaults to a user endpoint with TLS.
        let s = Settings::from_config(&without(USER, "endpoint_type")).unwrap();
        assert_eq!(s.endpoint_type, EndpointType::UserWithTls);
    }

    #[test]
    fn fields_are_described_with_secrets_marked() {
        let f = fields();
        let secret: Vec<_> = f
            .iter()
            .filter(|f| f.secret)
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(secret, ["bridge_token", "password"]);
        assert!(
            f.iter()
                .any(|f| f.name == "bridge_url" && f.kind == FieldKind::Url)
        );
    }
}
