//! Test kit for end-to-end tests: start the real `presence-hub` binary on a
//! temporary data directory with chosen plugin folders, talk to its API,
//! kill it with SIGKILL and start it again on the same data.
//!
//! `cargo xtask test` builds the hub and packages the plugins first.

pub mod ews_sim;
pub mod genesys_sim;
pub mod graph_sim;
pub mod kamailio;
pub mod rc_sim;
pub mod ucma_sim;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// The admin token every test hub uses.
pub const TOKEN: &str = "test-admin-token-0123456789";

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_path_buf()
}

/// A packaged plugin folder under `dist/` (e.g. `plugins/http-push`).
pub fn dist(rel: &str) -> PathBuf {
    let p = root().join("dist").join(rel);
    assert!(
        p.join("plugin.toml").exists(),
        "{} is missing: run `cargo xtask test` (it builds the plugins)",
        p.display()
    );
    p
}

/// The hub binary the tests run (`HUB_BIN`, else `target/debug/presence-hub`).
pub fn hub_binary() -> PathBuf {
    let p = std::env::var_os("HUB_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/debug/presence-hub"));
    assert!(
        p.exists(),
        "{} is missing: run `cargo xtask test` (it builds the hub)",
        p.display()
    );
    p
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// A running hub process.
pub struct Hub {
    child: Option<Child>,
    pub base: String,
    pub dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    /// RLIMIT_NOFILE for the hub process, if lowered.
    nofile: Option<u64>,
    pub http: reqwest::Client,
}

impl Hub {
    /// Start a hub whose plugins directory holds copies of `plugins`
    /// (folders under `dist/`), with extra `HUB_*` settings.
    pub fn start(plugins: &[&str], env: &[(&str, &str)]) -> Hub {
        Self::start_with_nofile(plugins, env, None)
    }

    /// [`Hub::start`] with the process's descriptor limit (soft and hard)
    /// set to `nofile`, as an operator's `ulimit -n` would.
    pub fn start_with_nofile(plugins: &[&str], env: &[(&str, &str)], nofile: Option<u64>) -> Hub {
        let dir = tempfile::tempdir().unwrap();
        let pdir = dir.path().join("plugins");
        std::fs::create_dir_all(&pdir).unwrap();
        for p in plugins {
            let src = dist(p);
            copy_dir(&src, &pdir.join(src.file_name().unwrap()));
        }
        let mut hub = Hub {
            child: None,
            base: String::new(),
            dir,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            nofile,
            http: reqwest::Client::new(),
        };
        hub.spawn();
        hub
    }

    /// The process id of the running hub.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The plugins directory of this hub.
    pub fn plugins_dir(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(hub_binary());
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HUB_LISTEN", "127.0.0.1:0")
            .env("HUB_DATA_DIR", self.dir.path().join("data"))
            .env("HUB_PLUGINS_DIR", self.plugins_dir())
            .env("HUB_ADMIN_TOKEN", TOKEN)
            .env("HUB_LOG", "info,presence_hub=debug")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.path().join("hub.log"))
                    .unwrap(),
            ));
        if let Some(n) = self.nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs
            // between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().expect("start presence-hub");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("presence-hub listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(url) => self.base = url,
            Err(_) => {
                let _ = child.kill();
                panic!("hub did not start; log:\n{}", self.log());
            }
        }
        self.child = Some(child);
    }

    /// The hub's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("hub.log")).unwrap_or_default()
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// Start again on the same data and plugins directory.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// An authenticated request; returns status and JSON body (Null if none).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), self.url(path))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("hub answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> Value {
        let (s, v) = self.call("GET", path, None).await;
        assert_eq!(s, 200, "GET {path}: {v}");
        v
    }

    /// Wait until `f` holds for `GET path`, or fail with the last answer.
    pub async fn wait_for(&self, path: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, v) = self.call("GET", path, None).await;
            if f(&v) {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what} at {path}; last: {v:#}\nlog tail:\n{}",
                    tail(&self.log())
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Repeat a call until it answers `want` (a connector refuses some
    /// calls while it is still connecting), or fail with the last answer.
    /// Returns the answer's body.
    pub async fn wait_for_call(&self, method: &str, path: &str, body: Value, want: u16) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (s, v) = self.call(method, path, Some(body.clone())).await;
            if s == want {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "{method} {path} never answered {want}; last: {s} {v:#}\nlog tail:\n{}",
                    tail(&self.log())
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Upload a plugin folder (manifest + component) through the API.
    pub async fn upload(&self, folder: &Path) -> (u16, Value) {
        let manifest = std::fs::read_to_string(folder.join("plugin.toml")).unwrap();
        let table: toml_lite::Manifest = toml_lite::parse(&manifest);
        let component = std::fs::read(folder.join(&table.component)).unwrap();
        self.upload_raw(manifest, component).await
    }

    pub async fn upload_raw(&self, manifest: String, component: Vec<u8>) -> (u16, Value) {
        let form = reqwest::multipart::Form::new()
            .text("manifest", manifest)
            .part("component", reqwest::multipart::Part::bytes(component));
        let resp = self
            .http
            .post(self.url("/api/v1/plugins"))
            .bearer_auth(TOKEN)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("hub log tail:\n{}", tail(&self.log()));
        }
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<_> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Just enough of plugin.toml to find the component file.
mod toml_lite {
    pub struct Manifest {
        pub component: String,
    }
    pub fn parse(text: &str) -> Manifest {
        let component = text
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == "component").then(|| v.trim().trim_matches('"').to_string())
            })
            .expect("manifest names its component");
        Manifest { component }
    }
}

/// Sign an http-push body: `X-Hub-Timestamp` and `X-Hub-Signature` values.
pub fn sign(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// For test WebSocket servers (`accept_hdr_async`): select the subprotocol
/// the chaos guest offers (`chaos.v1`); a client that offers one refuses a
/// server that picks none (RFC 6455 §4.1).
#[allow(clippy::result_large_err)]
pub fn choose_chaos_v1(
    _req: &tokio_tungstenite::tungstenite::handshake::server::Request,
    mut resp: tokio_tungstenite::tungstenite::handshake::server::Response,
) -> Result<
    tokio_tungstenite::tungstenite::handshake::server::Response,
    tokio_tungstenite::tungstenite::handshake::server::ErrorResponse,
> {
    resp.headers_mut().insert(
        "sec-websocket-protocol",
        tokio_tungstenite::tungstenite::http::HeaderValue::from_static("chaos.v1"),
    );
    Ok(resp)
}
