//! Hub configuration: a TOML file plus `HUB_*` environment overrides, with
//! defaults that need no file at all.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::timing;

/// Everything the hub reads at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubConfig {
    /// Address of the REST API, webhooks, health and metrics: an IP
    /// address and port (`127.0.0.1:8740`, `[::]:8740`), or a host name
    /// and port (`localhost:8740`), resolved once at start to its first
    /// IPv4 address (else its first address).
    #[serde(deserialize_with = "deserialize_listen")]
    pub listen: SocketAddr,
    /// Where the database, uploaded plugins, the compiled-plugin cache and the
    /// secret key live.
    pub data_dir: PathBuf,
    /// Plugins shipped with the hub: one folder per plugin with `plugin.toml`.
    /// Unset, the first that exists of [`HubConfig::plugins_dir_searched`]:
    /// `dist/plugins` in the working directory, then beside the binary
    /// (`<exe>/../share/presence-hub/plugins`, `<exe>/plugins`), then the
    /// workspace's `dist/plugins` when the binary runs from its `target/`.
    pub plugins_dir: PathBuf,
    /// Where the plugins directory was looked for when it was not set
    /// (empty when it was).
    #[serde(skip)]
    pub plugins_dir_searched: Vec<PathBuf>,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// `tracing` filter, e.g. `info,presence_hub=debug`.
    pub log_filter: String,
    /// Admin bearer token. When unset, one is generated at first start and
    /// printed once.
    pub admin_token: Option<String>,
    /// The address senders of webhooks reach this hub at
    /// (`https://hub.example.com`, behind whatever proxy). Plugins learn
    /// their webhook base URL (`{public_url}/hooks/{instance}`) from it;
    /// unset, they are told none and operators type it into the connector.
    pub public_url: Option<String>,
    /// Whether `/metrics` (which names every instance and plugin) wants an
    /// API token, as the other routes do.
    pub metrics_auth: bool,
    /// Connector instance ids `/readyz` requires up (running and
    /// `up-and-running`); `*` means every enabled one. Empty: readiness
    /// does not wait on any platform. Env: `HUB_READY_REQUIRES=pbx,teams`.
    pub ready_requires: Vec<String>,
    /// PEM certificate chain (leaf first) for TLS on the listener (API,
    /// console, feeds, webhooks); with `tls_key`, the hub serves HTTPS
    /// only. Reloaded when the file changes or on `SIGHUP`. Env:
    /// `HUB_TLS_CERT`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1). Env:
    /// `HUB_TLS_KEY`.
    pub tls_key: Option<PathBuf>,
    /// A PostgreSQL database shared by several hub nodes
    /// (`postgres://user:password@host:5432/hub`, libpq's URL form).
    /// Unset, the hub keeps everything in its embedded SQLite database in
    /// `data_dir`. Every node sharing a database must have the same
    /// `secret.key` in its `data_dir`. Env: `HUB_DATABASE_URL`. Never
    /// logged (it may hold a password).
    pub database_url: Option<String>,
    /// This node's id in a cluster (letters, digits, `-`, `_`, `.`; at
    /// most 64). Unset: the host name and the listen port. Env:
    /// `HUB_NODE_ID`.
    pub node_id: Option<String>,
    /// Where the other nodes of a cluster reach this node's API
    /// (`http://10.0.0.5:8740`): its own address, never a load balancer's,
    /// since nodes pass webhooks and instance-scoped API requests to the
    /// node that runs the instance at this URL. Unset: the listen address,
    /// with the host name when the hub listens on every interface. Env:
    /// `HUB_NODE_URL`.
    pub node_url: Option<String>,
    /// Limits applied where a plugin manifest asks for more or says nothing.
    pub limits: Limits,
}

/// The plugins directory when none is set, relative to the working
/// directory (the workspace root, where `cargo xtask plugins` puts them).
const DEFAULT_PLUGINS_DIR: &str = "dist/plugins";

/// What `listen` / `HUB_LISTEN` takes, for error messages.
const LISTEN_FORMS: &str = "an address and port to listen on: 127.0.0.1:8740 (this machine \
    only), 0.0.0.0:8740 (every IPv4 interface), [::]:8740 (every interface), or a host name \
    that resolves here with a port, such as localhost:8740";

/// Parse a listen address: an IP address and port, or a host name and
/// port resolved now (its first IPv4 address, else its first address).
pub fn parse_listen(value: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let value = value.trim();
    if let Ok(a) = value.parse::<SocketAddr>() {
        return Ok(a);
    }
    let Some((host, port)) = value.rsplit_once(':') else {
        return Err(format!("expected {LISTEN_FORMS}; got {value:?} (no port)"));
    };
    if port.parse::<u16>().is_err() || host.is_empty() {
        return Err(format!("expected {LISTEN_FORMS}; got {value:?}"));
    }
    match (host, port.parse::<u16>().unwrap_or(0)).to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            addrs
                .iter()
                .find(|a| a.is_ipv4())
                .or(addrs.first())
                .copied()
                .ok_or_else(|| format!("{host:?} resolves to no address; expected {LISTEN_FORMS}"))
        }
        Err(e) => Err(format!(
            "cannot resolve {host:?} ({e}); expected {LISTEN_FORMS}"
        )),
    }
}

fn deserialize_listen<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    parse_listen(&text).map_err(serde::de::Error::custom)
}

/// Where an unset plugins directory is looked for, in order: the working
/// directory's `dist/plugins`, then the install layouts around the binary
/// `exe`: `<prefix>/bin/presence-hub` with `<prefix>/share/presence-hub/plugins`,
/// an unpacked archive with `plugins/` beside the binary, and a build in a
/// workspace (`<ws>/target/<profile>/presence-hub`) with `<ws>/dist/plugins`.
pub fn plugins_dir_candidates(cwd: Option<&Path>, exe: Option<&Path>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(cwd) = cwd {
        out.push(cwd.join(DEFAULT_PLUGINS_DIR));
    }
    if let Some(bin) = exe.and_then(Path::parent) {
        if let Some(prefix) = bin.parent() {
            out.push(prefix.join("share/presence-hub/plugins"));
        }
        out.push(bin.join("plugins"));
        // `target/<profile>/` or `target/<triple>/<profile>/`.
        if let Some(ws) = bin
            .ancestors()
            .take(4)
            .find(|a| a.file_name().is_some_and(|n| n == "target"))
            .and_then(Path::parent)
        {
            out.push(ws.join(DEFAULT_PLUGINS_DIR));
        }
    }
    out.dedup();
    out
}

/// Upper bounds for every connector instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Memory cap per instance (MiB), the most a manifest may ask for.
    pub max_memory_mib: u32,
    /// Default CPU deadline per guest call (ms).
    pub call_timeout_ms: u32,
    /// Most a manifest may ask for as its CPU deadline (ms).
    pub max_call_timeout_ms: u32,
    /// Default event queue length per instance.
    pub queue: usize,
    /// Crashes within `crash_window_secs` that quarantine an instance.
    pub quarantine_after: u32,
    pub crash_window_secs: u64,
    /// First and last restart delay (ms); doubles in between.
    pub restart_backoff_min_ms: u64,
    pub restart_backoff_max_ms: u64,
    /// Largest plugin upload (bytes).
    pub max_upload_bytes: usize,
    /// Largest webhook body (bytes).
    pub max_webhook_bytes: usize,
    /// Most API connections open at once (WebSocket and SSE included).
    pub max_connections: usize,
    /// Most live-feed streams (SSE and WebSocket) open at once, and per
    /// API token.
    pub max_feeds: usize,
    pub max_feeds_per_token: usize,
    /// File descriptors kept free for plugins' sockets, the store and the
    /// plugin cache: API connections are capped below RLIMIT_NOFILE minus
    /// this.
    pub fd_reserve: usize,
    /// Time to send a request's head; also the keep-alive idle time (ms).
    pub header_timeout_ms: u64,
    /// Time for a request's whole body, from its head (ms).
    pub body_timeout_ms: u64,
    /// Time an API connection may move no byte while a request is handled
    /// or answered (ms).
    pub idle_timeout_ms: u64,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8740)),
            data_dir: PathBuf::from("data"),
            plugins_dir: PathBuf::from(DEFAULT_PLUGINS_DIR),
            plugins_dir_searched: Vec::new(),
            log_format: LogFormat::Text,
            log_filter: "info".into(),
            admin_token: None,
            public_url: None,
            metrics_auth: false,
            ready_requires: Vec::new(),
            tls_cert: None,
            tls_key: None,
            database_url: None,
            node_id: None,
            node_url: None,
            limits: Limits::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_memory_mib: 256,
            call_timeout_ms: 1000,
            max_call_timeout_ms: 10_000,
            queue: 4096,
            quarantine_after: 5,
            crash_window_secs: 600,
            restart_backoff_min_ms: 100,
            restart_backoff_max_ms: 30_000,
            max_upload_bytes: 64 * 1024 * 1024,
            max_webhook_bytes: 1024 * 1024,
            max_connections: 1024,
            max_feeds: 512,
            max_feeds_per_token: 32,
            fd_reserve: 256,
            header_timeout_ms: ms(timing::HEADER_READ_TIMEOUT),
            body_timeout_ms: ms(timing::BODY_READ_TIMEOUT),
            idle_timeout_ms: ms(timing::IDLE_TIMEOUT),
        }
    }
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Limits {
    /// The API listener's share of these limits.
    pub fn listen(&self) -> crate::io::listener::ListenLimits {
        use std::time::Duration;
        crate::io::listener::ListenLimits {
            max_connections: self.max_connections,
            fd_reserve: self.fd_reserve,
            header_timeout: Duration::from_millis(self.header_timeout_ms.max(1)),
            body_timeout: Duration::from_millis(self.body_timeout_ms.max(1)),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms.max(1)),
        }
    }
}

/// A configuration problem, naming the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
}

impl HubConfig {
    /// Load defaults, then the file (if any), then `HUB_*` variables from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut cfg = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: path.to_owned(),
                    source: Box::new(source),
                })?
            }
            None => HubConfig::default(),
        };
        for (var, value) in env {
            cfg.apply_env(&var, &value)?;
        }
        cfg.tls()?;
        if cfg.plugins_dir == Path::new(DEFAULT_PLUGINS_DIR) {
            let exe = std::env::current_exe().ok();
            let cwd = std::env::current_dir().ok();
            cfg.resolve_plugins_dir(plugins_dir_candidates(cwd.as_deref(), exe.as_deref()));
        }
        Ok(cfg)
    }

    /// The listener's TLS files, when both are set; one without the other
    /// is an error naming the missing one.
    pub fn tls(&self) -> Result<Option<crate::io::tls_server::TlsFiles>, ConfigError> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(crate::io::tls_server::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(ConfigError::Env {
                var: "HUB_TLS_KEY".into(),
                message: "tls_cert is set but tls_key is not: set both (PEM files) to serve \
                          HTTPS, or neither to serve plain HTTP"
                    .into(),
            }),
            (None, Some(_)) => Err(ConfigError::Env {
                var: "HUB_TLS_CERT".into(),
                message: "tls_key is set but tls_cert is not: set both (PEM files) to serve \
                          HTTPS, or neither to serve plain HTTP"
                    .into(),
            }),
        }
    }

    /// Take the first of `candidates` that exists as the plugins directory;
    /// when none does, keep the default and remember where it was looked
    /// for (the hub's warning names them and `HUB_PLUGINS_DIR`).
    pub fn resolve_plugins_dir(&mut self, candidates: Vec<PathBuf>) {
        if let Some(found) = candidates.iter().find(|p| p.is_dir()) {
            self.plugins_dir = found.clone();
        }
        self.plugins_dir_searched = candidates;
    }

    fn apply_env(&mut self, var: &str, value: &str) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(var: &str, value: &str) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value.parse().map_err(|e: T::Err| ConfigError::Env {
                var: var.into(),
                message: format!("{e} (got {value:?})"),
            })
        }
        let l = &mut self.limits;
        match var {
            "HUB_LISTEN" => {
                self.listen = parse_listen(value).map_err(|message| ConfigError::Env {
                    var: var.into(),
                    message,
                })?
            }
            "HUB_DATA_DIR" => self.data_dir = value.into(),
            "HUB_DATABASE_URL" => {
                self.database_url = Some(value.into()).filter(|v: &String| !v.is_empty())
            }
            "HUB_NODE_ID" => self.node_id = Some(value.into()).filter(|v: &String| !v.is_empty()),
            "HUB_NODE_URL" => self.node_url = Some(value.into()).filter(|v: &String| !v.is_empty()),
            "HUB_PLUGINS_DIR" => self.plugins_dir = value.into(),
            "HUB_LOG_FORMAT" => {
                self.log_format = match value {
                    "text" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    _ => {
                        return Err(ConfigError::Env {
                            var: var.into(),
                            message: format!("expected `text` or `json`, got {value:?}"),
                        });
                    }
                }
            }
            "HUB_LOG" => self.log_filter = value.into(),
            "HUB_ADMIN_TOKEN" => self.admin_token = Some(value.into()),
            "HUB_PUBLIC_URL" => self.public_url = Some(value.into()),
            "HUB_TLS_CERT" => self.tls_cert = Some(value.into()),
            "HUB_TLS_KEY" => self.tls_key = Some(value.into()),
            "HUB_METRICS_AUTH" => self.metrics_auth = parse(var, value)?,
            "HUB_READY_REQUIRES" => {
                self.ready_requires = value
                    .split(',')
                    .map(str::trim)
                    .filter(|id| !id.is_empty())
                    .map(str::to_string)
                    .collect()
            }
            "HUB_MAX_MEMORY_MIB" => l.max_memory_mib = parse(var, value)?,
            "HUB_CALL_TIMEOUT_MS" => l.call_timeout_ms = parse(var, value)?,
            "HUB_QUEUE" => l.queue = parse(var, value)?,
            "HUB_QUARANTINE_AFTER" => l.quarantine_after = parse(var, value)?,
            "HUB_RESTART_BACKOFF_MIN_MS" => l.restart_backoff_min_ms = parse(var, value)?,
            "HUB_RESTART_BACKOFF_MAX_MS" => l.restart_backoff_max_ms = parse(var, value)?,
            "HUB_MAX_UPLOAD_BYTES" => l.max_upload_bytes = parse(var, value)?,
            "HUB_MAX_WEBHOOK_BYTES" => l.max_webhook_bytes = parse(var, value)?,
            "HUB_MAX_FEEDS" => l.max_feeds = parse(var, value)?,
            "HUB_MAX_FEEDS_PER_TOKEN" => l.max_feeds_per_token = parse(var, value)?,
            "HUB_MAX_CONNECTIONS" => l.max_connections = parse(var, value)?,
            "HUB_FD_RESERVE" => l.fd_reserve = parse(var, value)?,
            "HUB_HEADER_TIMEOUT_MS" => l.header_timeout_ms = parse(var, value)?,
            "HUB_BODY_TIMEOUT_MS" => l.body_timeout_ms = parse(var, value)?,
            "HUB_IDLE_TIMEOUT_MS" => l.idle_timeout_ms = parse(var, value)?,
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_file() {
        let cfg = HubConfig::load(None, []).unwrap();
        assert_eq!(cfg.listen.port(), 8740);
        assert_eq!(cfg.log_format, LogFormat::Text);
    }

    #[test]
    fn env_overrides_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\n[limits]\nqueue = 10\n").unwrap();
        let cfg = HubConfig::load(
            Some(&path),
            [("HUB_LISTEN".to_string(), "127.0.0.1:9001".to_string())],
        )
        .unwrap();
        assert_eq!(cfg.listen.port(), 9001);
        assert_eq!(cfg.limits.queue, 10);
    }

    #[test]
    fn listen_takes_host_names_and_says_what_it_takes() {
        let cfg = HubConfig::load(None, [("HUB_LISTEN".into(), "localhost:8741".into())]).unwrap();
        assert_eq!(cfg.listen, SocketAddr::from(([127, 0, 0, 1], 8741)));
        let err = HubConfig::load(None, [("HUB_LISTEN".into(), "localhost".into())]).unwrap_err();
        let err = err.to_string();
        assert!(
            err.contains("HUB_LISTEN") && err.contains("127.0.0.1:8740") && err.contains("no port"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.toml");
        std::fs::write(&path, "listen = \"localhost:9002\"\n").unwrap();
        assert_eq!(
            HubConfig::load(Some(&path), []).unwrap().listen.port(),
            9002
        );
    }

    #[test]
    fn plugins_dir_is_found_beside_the_binary() {
        let root = tempfile::tempdir().unwrap();
        let ws = root.path().join("ws");
        let exe = ws.join("target/release/presence-hub");
        let elsewhere = root.path().join("elsewhere");
        let tried = plugins_dir_candidates(Some(&elsewhere), Some(&exe));
        assert_eq!(
            tried,
            vec![
                elsewhere.join("dist/plugins"),
                ws.join("target/share/presence-hub/plugins"),
                ws.join("target/release/plugins"),
                ws.join("dist/plugins"),
            ]
        );
        std::fs::create_dir_all(ws.join("dist/plugins")).unwrap();
        let mut cfg = HubConfig::default();
        cfg.resolve_plugins_dir(tried.clone());
        assert_eq!(cfg.plugins_dir, ws.join("dist/plugins"));
        // Installed: <prefix>/bin and <prefix>/share.
        let prefix = root.path().join("usr");
        std::fs::create_dir_all(prefix.join("share/presence-hub/plugins")).unwrap();
        let mut cfg = HubConfig::default();
        cfg.resolve_plugins_dir(plugins_dir_candidates(
            Some(&elsewhere),
            Some(&prefix.join("bin/presence-hub")),
        ));
        assert_eq!(cfg.plugins_dir, prefix.join("share/presence-hub/plugins"));
    }

    #[test]
    fn bad_values_name_the_setting() {
        let err = HubConfig::load(None, [("HUB_QUEUE".into(), "many".into())]).unwrap_err();
        assert!(err.to_string().contains("HUB_QUEUE"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.toml");
        std::fs::write(&path, "listne = 1\n").unwrap();
        let err = HubConfig::load(Some(&path), []).unwrap_err();
        assert!(err.to_string().contains("listne"), "{err}");
    }
}
