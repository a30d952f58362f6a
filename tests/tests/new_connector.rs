//! From an empty folder to presence in the feed, as a connector author goes:
//! `cargo xtask new-connector` writes a crate from `sdk/template/` into a
//! temporary folder (outside this workspace, its own `[workspace]`, the SDK
//! by path), its own test-kit tests pass with `cargo test`, `cargo xtask
//! package` builds it for wasm32-wasip2 and derives its `plugin.toml`, the
//! real hub installs it through `POST /api/v1/plugins`, an instance polls a
//! line server on 127.0.0.1 and the presence it reports reaches the feed.
//! A second package with a new version hot-reloads the running instance.
//!
//! The generated crate builds into `target/new-connector/` (not the
//! workspace's own target directory, which the running `cargo test` may
//! hold locked) with a copy of the workspace's `Cargo.lock`, so no registry
//! is asked and, after the first run, only the generated crate compiles.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::routing::get;
use hub_e2e::{Hub, TOKEN, root};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const NAME: &str = "acme-lines";

/// Where the generated crate builds (see the module's comment).
fn crate_target() -> PathBuf {
    root().join("target/new-connector")
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.env("CARGO_TARGET_DIR", crate_target());
    cmd
}

/// Runs a command to success and returns its standard output.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `cargo xtask ARGS` typed in `cwd`: the xtask binary `cargo xtask test`
/// built (running it through cargo could wait for this test's own build
/// lock), with the generated crate's target directory.
fn xtask(cwd: &Path, args: &[&OsStr]) -> String {
    let xtask = root().join("target/debug/xtask");
    assert!(
        xtask.exists(),
        "{} is missing: run `cargo xtask test`",
        xtask.display()
    );
    run(Command::new(xtask)
        .env("CARGO_TARGET_DIR", crate_target())
        .current_dir(cwd)
        .args(args))
}

/// `cargo xtask package DIR`; returns the plugin folder.
fn package(crate_dir: &Path) -> PathBuf {
    xtask(
        crate_dir.parent().unwrap(),
        &["package".as_ref(), crate_dir.as_os_str()],
    );
    crate_dir.join("dist").join(NAME)
}

/// A line server: `GET /lines/{extension}` answers the state set for it.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<std::collections::HashMap<String, String>>>);

impl Lines {
    fn set(&self, extension: &str, state: &str) {
        self.0
            .lock()
            .unwrap()
            .insert(extension.into(), state.into());
    }

    async fn serve(self) -> String {
        let app = axum::Router::new()
            .route(
                "/lines/{extension}",
                get(
                    |State(lines): State<Lines>, UrlPath(extension): UrlPath<String>| async move {
                        let state = lines.0.lock().unwrap().get(&extension).cloned();
                        match state {
                            Some(state) => (axum::http::StatusCode::OK, state),
                            None => (axum::http::StatusCode::NOT_FOUND, String::new()),
                        }
                    },
                ),
            )
            .with_state(self);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }
}

/// A minimal reader of the SSE feed.
struct Feed {
    resp: reqwest::Response,
    buf: String,
}

impl Feed {
    async fn open(hub: &Hub, users: &str) -> Feed {
        let resp = hub
            .http
            .get(hub.url(&format!("/api/v1/feed/sse?users={users}")))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        Feed {
            resp,
            buf: String::new(),
        }
    }

    /// Every user record of the next event (a snapshot's list or a change).
    async fn next_users(&mut self) -> Vec<Value> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let data: String = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                let Ok(v) = serde_json::from_str::<Value>(&data) else {
                    continue; // a keep-alive comment
                };
                return match v["users"].as_array() {
                    Some(users) => users.clone(),
                    None => vec![v],
                };
            }
            let chunk = self
                .resp
                .chunk()
                .await
                .unwrap()
                .expect("the feed stays open");
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Waits for `user`'s rich state to be `state`; returns the record.
    async fn until_rich(&mut self, user: &str, state: &str) -> Value {
        let wait = async {
            loop {
                for v in self.next_users().await {
                    if v["username"] == user && v["rich"]["state"] == state {
                        return v;
                    }
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .unwrap_or_else(|_| panic!("{user} never showed {state} in the feed within 30 s"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_connector_goes_from_an_empty_folder_to_the_feed() {
    let started = Instant::now();
    let work = tempfile::tempdir().unwrap();
    let crate_dir = work.path().join(NAME);

    // 1. Generate, outside this workspace.
    let said = xtask(work.path(), &["new-connector".as_ref(), NAME.as_ref()]);
    assert!(
        said.contains(&format!("wrote {}", crate_dir.display())),
        "{said}"
    );
    let cargo_toml = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    assert!(cargo_toml.contains("[workspace]"), "{cargo_toml}");
    let sdk = root().join("sdk").canonicalize().unwrap();
    assert!(cargo_toml.contains(&format!("path = \"{}\"", sdk.display())));
    std::fs::copy(root().join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();
    let generated = started.elapsed();

    // 2. Its own test-kit tests.
    let tested = run(cargo().current_dir(&crate_dir).args(["test", "--offline"]));
    assert!(tested.contains("test result: ok. 4 passed"), "{tested}");
    let tests_done = started.elapsed();

    // 3. Build for wasm32-wasip2 and package: the manifest is derived.
    let dist = package(&crate_dir);
    let manifest = std::fs::read_to_string(dist.join("plugin.toml")).unwrap();
    let wasm = std::fs::read(dist.join(format!("{NAME}.wasm"))).unwrap();
    for line in [
        format!("id = \"{NAME}\""),
        "version = \"0.1.0\"".into(),
        "api-version = \"0.2.0\"".into(),
        format!("component = \"{NAME}.wasm\""),
        format!("sha256 = \"{}\"", hex::encode(Sha256::digest(&wasm))),
        format!("description = \"Presence connector {NAME}: line states polled over HTTP\""),
        "[grants]".into(),
        "memory-mib = 16".into(),
    ] {
        assert!(
            manifest.lines().any(|l| l == line),
            "{line} missing:\n{manifest}"
        );
    }
    let packaged = started.elapsed();

    // 4. Install into a real hub through the API.
    let lines = Lines::default();
    lines.set("201", "busy");
    let server = lines.clone().serve().await;
    let hub = Hub::start(&[], &[]);
    let (s, v) = hub.upload(&dist).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["id"], NAME);
    assert_eq!(v["version"], "0.1.0");
    assert_eq!(v["api_version"], "0.2.0");
    // The fields come from the derive, through describe().
    let fields: Vec<&str> = v["config_fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["server", "token", "poll_seconds"], "{v}");
    assert_eq!(v["config_fields"][1]["secret"], true, "{v}");
    assert_eq!(v["config_fields"][2]["default"], "30", "{v}");

    // 5. A user, an instance, and the presence in the feed.
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/users",
            Some(json!({"username": "alice", "display_name": "Alice", "extension": "201"})),
        )
        .await;
    assert!((200..300).contains(&s), "{s} {v}");
    let mut feed = Feed::open(&hub, "alice").await;
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": "lines", "plugin": NAME,
                        "config": {"server": server, "poll_seconds": 1}})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let alice = feed.until_rich("alice", "busy").await;
    assert_eq!(alice["rich"]["source"], "lines", "{alice}");
    lines.set("201", "away");
    feed.until_rich("alice", "away").await;
    let in_feed = started.elapsed();

    // A value the connector refuses (the hub only knows it is an integer)
    // is a 422 in the derive's words, naming the field.
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": "bad", "plugin": NAME,
                        "config": {"server": server, "poll_seconds": 0}})),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["field"], "config.poll_seconds", "{v}");
    assert!(
        v.to_string()
            .contains("must be a whole number from 1 to 3600"),
        "{v}"
    );

    // 6. Hot reload: a new version, packaged and uploaded again.
    let bumped = cargo_toml.replacen("version = \"0.1.0\"", "version = \"0.1.1\"", 1);
    std::fs::write(crate_dir.join("Cargo.toml"), bumped).unwrap();
    let dist = package(&crate_dir);
    let (s, v) = hub.upload(&dist).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["version"], "0.1.1");
    hub.wait_for("/api/v1/connectors/lines", "the instance on 0.1.1", |v| {
        v.to_string().contains("0.1.1")
    })
    .await;
    lines.set("201", "available");
    feed.until_rich("alice", "available").await;

    eprintln!(
        "new_connector: generated {:.1} s, cargo test {:.1} s, package {:.1} s, \
         installed and in the feed {:.1} s, hot reload {:.1} s (total)",
        generated.as_secs_f64(),
        (tests_done - generated).as_secs_f64(),
        (packaged - tests_done).as_secs_f64(),
        (in_feed - packaged).as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
