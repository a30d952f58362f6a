//! Test kit for end-to-end tests: start the real `presence-hub` binary on a
//! temporary data directory with chosen plugin folders, talk to its API,
//! kill it with SIGKILL and start it again on the same data.
//!
//! `cargo xtask test` builds the hub and packages the plugins first.

pub mod directory;
pub mod ews_sim;
pub mod genesys_sim;
pub mod graph_sim;
pub mod kamailio;
pub mod openapi;
pub mod postgres;
pub mod rc_sim;
pub mod slapd;
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
    /// With [`Hub::check_api`]: every exchange through [`Hub::call`],
    /// [`Hub::send`] and [`Hub::upload_raw`] is validated against the
    /// hub's served OpenAPI description.
    api_check: Option<std::sync::Arc<openapi::Checker>>,
}

impl Hub {
    /// Start a hub whose plugins directory holds copies of `plugins`
    /// (folders under `dist/`), with extra `HUB_*` settings.
    pub fn start(plugins: &[&str], env: &[(&str, &str)]) -> Hub {
        Self::start_with_nofile(plugins, env, None)
    }

    /// [`Hub::start`] after `prepare` has put files into the (empty) data
    /// folder, e.g. the `secret.key` every node of a cluster shares.
    pub fn start_prepared(
        plugins: &[&str],
        env: &[(&str, &str)],
        prepare: impl FnOnce(&Path),
    ) -> Hub {
        Self::start_inner(plugins, env, None, prepare)
    }

    /// [`Hub::start`] with the process's descriptor limit (soft and hard)
    /// set to `nofile`, as an operator's `ulimit -n` would.
    pub fn start_with_nofile(plugins: &[&str], env: &[(&str, &str)], nofile: Option<u64>) -> Hub {
        Self::start_inner(plugins, env, nofile, |_| {})
    }

    fn start_inner(
        plugins: &[&str],
        env: &[(&str, &str)],
        nofile: Option<u64>,
        prepare: impl FnOnce(&Path),
    ) -> Hub {
        let dir = tempfile::tempdir().unwrap();
        let pdir = dir.path().join("plugins");
        std::fs::create_dir_all(&pdir).unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        prepare(&dir.path().join("data"));
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
            // Never reuse a connection the hub may be closing: it ends an
            // idle keep-alive connection after its header timeout (10 s),
            // and a request sent as it does fails with IncompleteMessage.
            http: reqwest::Client::builder()
                .pool_idle_timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
            api_check: None,
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
        let (ctype, bytes) = match body {
            Some(b) => (
                Some("application/json"),
                serde_json::to_vec(&b).expect("JSON"),
            ),
            None => (None, Vec::new()),
        };
        let (status, _, body) = self
            .send(
                method,
                path,
                &[("authorization", &format!("Bearer {TOKEN}"))],
                ctype,
                bytes,
            )
            .await;
        let text = String::from_utf8_lossy(&body).into_owned();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Validate what this hub takes and answers from now on against the
    /// OpenAPI description it serves (see [`openapi`]).
    pub async fn check_api(&mut self) {
        let doc = self
            .http
            .get(self.url("/api/v1/openapi.json"))
            .send()
            .await
            .expect("hub answers")
            .bytes()
            .await
            .expect("the description");
        let spec = self.dir.path().join("openapi.json");
        std::fs::write(&spec, &doc).unwrap();
        self.api_check = Some(std::sync::Arc::new(openapi::Checker::start(&spec)));
    }

    /// The OpenAPI checker, when [`Hub::check_api`] turned it on.
    pub fn api_checker(&self) -> Option<&openapi::Checker> {
        self.api_check.as_deref()
    }

    /// Any request (`path` may carry a query); returns status, headers and
    /// body. Validated against the description when the check is on.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let mut req = self.http.request(method.parse().unwrap(), self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if !body.is_empty() || content_type.is_some() {
            req = req.body(body.clone());
        }
        let resp = req.send().await.expect("hub answers");
        let status = resp.status().as_u16();
        let resp_headers = resp.headers().clone();
        let resp_body = resp.bytes().await.unwrap().to_vec();
        if let Some(c) = &self.api_check {
            let (p, q) = path.split_once('?').unwrap_or((path, ""));
            c.assert_conforms(&openapi::Exchange {
                method: method.to_string(),
                path: p.to_string(),
                query: q.to_string(),
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                content_type: content_type.map(str::to_string),
                body,
                status,
                response_content_type: resp_headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                response_body: resp_body.clone(),
            });
        }
        (status, resp_headers, resp_body)
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
        // The multipart body is made by hand so that the same bytes can be
        // validated against the description (see `Hub::send`).
        let boundary = format!("hub-test-{:016x}", rand_u64());
        let mut body = Vec::new();
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"manifest\"\r\n\r\n{manifest}\r\n\
                 --{boundary}\r\nContent-Disposition: form-data; name=\"component\"; filename=\"component.wasm\"\r\n\
                 Content-Type: application/wasm\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&component);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let ctype = format!("multipart/form-data; boundary={boundary}");
        let (status, _, resp) = self
            .send(
                "POST",
                "/api/v1/plugins",
                &[("authorization", &format!("Bearer {TOKEN}"))],
                Some(&ctype),
                body,
            )
            .await;
        (status, serde_json::from_slice(&resp).unwrap_or(Value::Null))
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

/// A random number (multipart boundaries).
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
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
