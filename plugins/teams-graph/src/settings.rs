//! The connector's configuration fields and their validated form.

use std::fmt;

use presence_connector_sdk::{
    Config, ConfigField, ConnectorConfig, ConnectorError, Secret, invalid_config,
};

/// How the connector signs in to the Microsoft identity platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFlow {
    /// Application permissions, `grant_type=client_credentials`.
    ClientCredentials,
    /// Delegated: an operator signs a service account in once with a code
    /// shown in the admin API; refresh tokens keep it signed in.
    DeviceCode,
    /// Delegated: an operator opens the authorize URL shown in the admin
    /// API; the redirect comes back to `/hooks/{instance}/auth/callback`.
    AuthorizationCode,
}

impl AuthFlow {
    /// Whether tokens act for a signed-in user (delegated permissions).
    pub fn delegated(self) -> bool {
        !matches!(self, AuthFlow::ClientCredentials)
    }

    fn name(self) -> &'static str {
        match self {
            AuthFlow::ClientCredentials => "client-credentials",
            AuthFlow::DeviceCode => "device-code",
            AuthFlow::AuthorizationCode => "authorization-code",
        }
    }
}

/// Which Graph action write-backs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// `setPresence` / `clearPresence` as an application session whose id is
    /// the client id.
    Session,
    /// `setUserPreferredPresence` / `clearUserPreferredPresence`: what the
    /// user would pick in Teams; wins over every session.
    Preferred,
}

/// Validated settings.
#[derive(Clone, PartialEq)]
pub struct Settings {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub flow: AuthFlow,
    /// Identity platform base, without a trailing slash.
    pub authority: String,
    /// Graph base including the version, without a trailing slash.
    pub graph_base: String,
    /// Scopes asked for by the primary (read) token.
    pub scopes: Vec<String>,
    /// Public URL of `/hooks/{instance}/notify`: the operator's, else the
    /// hub's own.
    pub notification_url: Option<String>,
    /// Public URL of `/hooks/{instance}/auth/callback`: the operator's, else
    /// the hub's own.
    pub redirect_url: Option<String>,
    pub write_mode: WriteMode,
    pub poll_ms: u64,
    /// How often users followed by change notifications are read anyway, in
    /// case Graph stops delivering without a word.
    pub reread_ms: u64,
    /// How long a write-back without its own expiry lasts on Graph before it
    /// is renewed (keep-alive).
    pub write_expiration_ms: u64,
    /// Read the tenant's user directory (`GET /users`) and report it to the
    /// hub, for mapping and syncing users by email.
    pub directory: bool,
}

// Written by hand so the client secret can never reach a log.
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "***"))
            .field("flow", &self.flow)
            .field("authority", &self.authority)
            .field("graph_base", &self.graph_base)
            .field("scopes", &self.scopes)
            .field("notification_url", &self.notification_url)
            .field("redirect_url", &self.redirect_url)
            .field("write_mode", &self.write_mode)
            .field("poll_ms", &self.poll_ms)
            .field("reread_ms", &self.reread_ms)
            .field("write_expiration_ms", &self.write_expiration_ms)
            .field("directory", &self.directory)
            .finish()
    }
}

/// The fields as operators fill them in: `describe` announces them and
/// [`Settings::from_config`] reads them (`#[derive(ConnectorConfig)]`).
#[derive(ConnectorConfig)]
struct Fields {
    /// Directory (tenant) id or verified domain of the Microsoft 365 tenant
    #[config(label = "Tenant", validate = "tenant_id")]
    tenant_id: String,
    /// Application (client) id of the app registration; also the setPresence
    /// session id
    #[config(label = "Client id", validate = "client_id")]
    client_id: String,
    /// Client secret of the app registration: required for
    /// client-credentials; with a delegated flow it adds an application token
    /// for write-back
    #[config(label = "Client secret")]
    client_secret: Option<Secret>,
    /// client-credentials (application permissions), device-code or
    /// authorization-code (delegated, a service account signs in once)
    #[config(
        label = "Sign-in flow",
        choice("client-credentials", "device-code", "authorization-code"),
        default = "client-credentials"
    )]
    auth_flow: String,
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
    /// Space-separated scopes; empty: <graph>/.default for
    /// client-credentials, offline_access plus Presence.Read.All,
    /// Presence.ReadWrite and User.ReadBasic.All for delegated flows
    #[config(label = "Scopes")]
    scopes: Option<String>,
    /// Public https URL that reaches /hooks/{instance}/notify on this hub;
    /// empty: the hub's public webhook URL, or polling when the hub has none
    #[config(label = "Notification URL", url, validate = "http_url")]
    notification_url: Option<String>,
    /// Public URL that reaches /hooks/{instance}/auth/callback on this hub
    /// (authorization-code flow); empty: the hub's public webhook URL
    #[config(label = "Redirect URL", url, validate = "http_url")]
    redirect_url: Option<String>,
    /// session: setPresence as this application's session; preferred:
    /// setUserPreferredPresence (overrides what the user picked)
    #[config(
        label = "Write-back",
        choice("session", "preferred"),
        default = "session"
    )]
    write_mode: String,
    /// How often to read presence for users not covered by change
    /// notifications (stretched to stay inside Graph's limits)
    #[config(label = "Poll interval (s)", default = 30, range(min = 1, max = 3600))]
    poll_seconds: u64,
    /// How often users followed by change notifications are read anyway, as
    /// a safety net should Graph stop delivering (stretched to stay inside
    /// Graph's limits)
    #[config(
        label = "Re-read interval (s)",
        default = 300,
        range(min = 1, max = 86400)
    )]
    reread_seconds: u64,
    /// expirationDuration of a write-back that has no expiry of its own; it
    /// is renewed while it stands
    #[config(
        label = "Write-back duration (min)",
        default = 30,
        range(min = 5, max = 240)
    )]
    write_expiration_minutes: u64,
    /// Read the tenant's users (id, displayName, mail, userPrincipalName)
    /// at start and every 12 hours and report them as this connector's
    /// directory, so the hub can map and create users by email; needs
    /// User.Read.All (application) or User.ReadBasic.All (delegated)
    #[config(label = "Read the user directory", default = true)]
    directory: bool,
}

fn tenant_id(v: &str) -> Result<(), &'static str> {
    let ok = v
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '.' | '_'));
    if ok {
        Ok(())
    } else {
        Err("a tenant id (GUID) or domain name")
    }
}

fn client_id(v: &str) -> Result<(), &'static str> {
    let ok = v.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-');
    if ok {
        Ok(())
    } else {
        Err("an application (client) id (GUID)")
    }
}

fn http_url(v: &str) -> Result<(), &'static str> {
    if v.starts_with("https://") || v.starts_with("http://") {
        Ok(())
    } else {
        Err("an http(s) URL")
    }
}

/// The fields `describe` announces.
pub fn fields() -> Vec<ConfigField> {
    Fields::config_fields()
}

impl Settings {
    /// Validate the configuration `configure` received. `webhook_base` is
    /// the hub's public URL of this instance's webhooks, where it knows one:
    /// the notification and redirect URLs default to routes below it.
    pub fn from_config(c: &Config, webhook_base: Option<&str>) -> Result<Settings, ConnectorError> {
        let f = Fields::from_config(c)?;
        let flow = match f.auth_flow.as_str() {
            "device-code" => AuthFlow::DeviceCode,
            "authorization-code" => AuthFlow::AuthorizationCode,
            _ => AuthFlow::ClientCredentials,
        };
        let client_secret = f.client_secret.map(|s| s.expose().to_string());
        if flow == AuthFlow::ClientCredentials && client_secret.is_none() {
            return Err(invalid_config(
                "client_secret",
                "is required for the client-credentials flow",
            ));
        }
        let url = |v: String| v.trim().trim_end_matches('/').to_string();
        let graph_base = url(f.graph_base);
        let scopes: Vec<String> = match f.scopes {
            Some(s) => s.split_whitespace().map(str::to_string).collect(),
            None => default_scopes(flow, &graph_base),
        };
        if scopes.is_empty() {
            return Err(invalid_config("scopes", "name at least one scope"));
        }
        let below_hub =
            |route: &str| webhook_base.map(|base| format!("{}{route}", base.trim_end_matches('/')));
        let notification_url = f.notification_url.map(url).or_else(|| below_hub("/notify"));
        let redirect_url = f
            .redirect_url
            .map(url)
            .or_else(|| below_hub("/auth/callback"));
        if flow == AuthFlow::AuthorizationCode && redirect_url.is_none() {
            return Err(invalid_config(
                "redirect_url",
                "is required for the authorization-code flow: the hub has no public webhook URL to derive it from",
            ));
        }
        Ok(Settings {
            tenant_id: f.tenant_id.trim().to_string(),
            client_id: f.client_id.trim().to_string(),
            client_secret,
            flow,
            authority: url(f.authority),
            graph_base,
            scopes,
            notification_url,
            redirect_url,
            write_mode: if f.write_mode == "preferred" {
                WriteMode::Preferred
            } else {
                WriteMode::Session
            },
            poll_ms: f.poll_seconds * 1000,
            reread_ms: f.reread_seconds * 1000,
            write_expiration_ms: f.write_expiration_minutes * 60_000,
            directory: f.directory,
        })
    }

    /// The OAuth 2.0 token endpoint of the tenant.
    pub fn token_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.authority, self.tenant_id)
    }

    /// The device authorization endpoint of the tenant.
    pub fn devicecode_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/devicecode",
            self.authority, self.tenant_id
        )
    }

    /// The authorize endpoint of the tenant.
    pub fn authorize_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/authorize",
            self.authority, self.tenant_id
        )
    }

    /// The application-permission scope of this Graph (`<origin>/.default`).
    pub fn app_scope(&self) -> String {
        format!("{}/.default", origin(&self.graph_base))
    }

    /// Whether change notifications can be used at all: they need a public
    /// URL and a delegated token (Graph supports no application permission
    /// for presence subscriptions).
    pub fn notifications_possible(&self) -> Result<&str, &'static str> {
        match (&self.notification_url, self.flow.delegated()) {
            (None, _) => Err("no notification URL is configured"),
            (Some(_), false) => Err(
                "presence change notifications need a delegated sign-in (Graph supports no application permission for them)",
            ),
            (Some(url), true) => Ok(url),
        }
    }

    /// What identifies the presence session the connector's writes set: the
    /// cloud, the tenant and the app (whose client id is the session id).
    /// Unlike [`Settings::fingerprint`] it survives a change of sign-in flow.
    pub fn session_identity(&self) -> String {
        format!("{}|{}|{}", self.graph_base, self.tenant_id, self.client_id)
    }

    /// What identifies stored tokens and subscriptions as belonging to this
    /// configuration: a change of tenant, app, cloud or flow invalidates them.
    pub fn fingerprint(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            self.authority,
            self.tenant_id,
            self.client_id,
            self.flow.name(),
            self.graph_base
        )
    }
}

/// `scheme://host[:port]` of a URL.
pub fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// The default scopes of a flow.
pub fn default_scopes(flow: AuthFlow, graph_base: &str) -> Vec<String> {
    let o = origin(graph_base);
    if flow.delegated() {
        vec![
            "offline_access".into(),
            format!("{o}/Presence.Read.All"),
            format!("{o}/Presence.ReadWrite"),
            format!("{o}/User.ReadBasic.All"),
        ]
    } else {
        vec![format!("{o}/.default")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use presence_connector_sdk::{ConfigEntry, ConfigValue};

    fn config(pairs: &[(&str, &str)]) -> Config {
        Config::new(
            pairs
                .iter()
                .map(|(k, v)| ConfigEntry {
                    name: (*k).into(),
                    value: ConfigValue::Text((*v).into()),
                })
                .collect(),
        )
    }

    #[test]
    fn client_credentials_defaults() {
        let s = Settings::from_config(
            &config(&[
                ("tenant_id", "contoso.onmicrosoft.com"),
                ("client_id", "22553876-f5ab-4529-bffb-cfe50aa89f87"),
                ("client_secret", "s3cret"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(s.flow, AuthFlow::ClientCredentials);
        assert_eq!(s.scopes, vec!["https://graph.microsoft.com/.default"]);
        assert_eq!(
            s.token_url(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(s.poll_ms, 30_000);
        assert_eq!(s.reread_ms, 300_000);
        assert!(s.notifications_possible().is_err());
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn delegated_scopes_follow_the_cloud() {
        let s = Settings::from_config(
            &config(&[
                ("tenant_id", "t"),
                ("client_id", "c"),
                ("auth_flow", "device-code"),
                ("graph_base", "https://graph.microsoft.us/v1.0/"),
                (
                    "notification_url",
                    "https://hub.example.com/hooks/teams/notify",
                ),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(s.graph_base, "https://graph.microsoft.us/v1.0");
        assert_eq!(s.scopes[0], "offline_access");
        assert_eq!(s.scopes[1], "https://graph.microsoft.us/Presence.Read.All");
        assert_eq!(
            s.notifications_possible(),
            Ok("https://hub.example.com/hooks/teams/notify")
        );
        assert_eq!(s.app_scope(), "https://graph.microsoft.us/.default");
    }

    #[test]
    fn required_fields_per_flow() {
        let e = Settings::from_config(&config(&[("tenant_id", "t"), ("client_id", "c")]), None);
        assert!(matches!(e, Err(ConnectorError::InvalidConfig(f)) if f.field == "client_secret"));
        let e = Settings::from_config(
            &config(&[
                ("tenant_id", "t"),
                ("client_id", "c"),
                ("auth_flow", "authorization-code"),
            ]),
            None,
        );
        assert!(matches!(e, Err(ConnectorError::InvalidConfig(f)) if f.field == "redirect_url"));
        let e = Settings::from_config(
            &config(&[("tenant_id", "t/../x"), ("client_id", "c")]),
            None,
        );
        assert!(matches!(e, Err(ConnectorError::InvalidConfig(f)) if f.field == "tenant_id"));
    }

    #[test]
    fn webhook_urls_default_below_the_hubs_public_url() {
        let base = Some("https://hub.example.com/hooks/teams/");
        let s = Settings::from_config(
            &config(&[
                ("tenant_id", "t"),
                ("client_id", "c"),
                ("auth_flow", "authorization-code"),
            ]),
            base,
        )
        .unwrap();
        assert_eq!(
            s.notifications_possible(),
            Ok("https://hub.example.com/hooks/teams/notify")
        );
        assert_eq!(
            s.redirect_url.as_deref(),
            Some("https://hub.example.com/hooks/teams/auth/callback")
        );
        // The operator's URLs win.
        let s = Settings::from_config(
            &config(&[
                ("tenant_id", "t"),
                ("client_id", "c"),
                ("auth_flow", "device-code"),
                ("notification_url", "https://proxy.example.com/graph/notify"),
            ]),
            base,
        )
        .unwrap();
        assert_eq!(
            s.notifications_possible(),
            Ok("https://proxy.example.com/graph/notify")
        );
        // Neither: notifications give way to polling, and the
        // authorization-code flow is refused naming the field.
        let s = Settings::from_config(
            &config(&[
                ("tenant_id", "t"),
                ("client_id", "c"),
                ("auth_flow", "device-code"),
            ]),
            None,
        )
        .unwrap();
        assert!(s.notifications_possible().is_err());
        let e = Settings::from_config(
            &config(&[
                ("tenant_id", "t"),
                ("client_id", "c"),
                ("auth_flow", "authorization-code"),
            ]),
            None,
        );
        assert!(matches!(e, Err(ConnectorError::InvalidConfig(f)) if f.field == "redirect_url"));
    }

    #[test]
    fn origin_of_urls() {
        assert_eq!(
            origin("http://127.0.0.1:8080/v1.0"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            origin("https://graph.microsoft.com"),
            "https://graph.microsoft.com"
        );
    }
}
