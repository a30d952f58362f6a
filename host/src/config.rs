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
    /// Address of the REST API, webhooks, health and metrics.
    pub listen: SocketAddr,
    /// Where the database, uploaded plugins, the compiled-plugin cache and the
    /// secret key live.
    pub data_dir: PathBuf,
    /// Plugins shipped with the hub: one folder per plugin with `plugin.toml`.
    pub plugins_dir: PathBuf,
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
    /// Limits applied where a plugin manifest asks for more or says nothing.
    pub limits: Limits,
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
            plugins_dir: PathBuf::from("dist/plugins"),
            log_format: LogFormat::Text,
            log_filter: "info".into(),
            admin_token: None,
            public_url: None,
            metrics_auth: false,
            ready_requires: Vec::new(),
            tls_cert: None,
            tls_key: None,
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
            "HUB_LISTEN" => self.listen = parse(var, value)?,
            "HUB_DATA_DIR" => self.data_dir = value.into(),
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
