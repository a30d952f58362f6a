//! `presence-hubctl` against the real hub binary (issue 20): daily tasks,
//! clear failures with their exit codes, and an online backup made under
//! write load that `presence-hub restore` brings back to the same state.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use hub_e2e::{Hub, TOKEN, hub_binary, sign, unix_now};
use serde_json::{Value, json};

const SECRET: &str = "cli-test-shared-secret-0123456789";

/// Run the CLI against `hub` (or `url`); exit code, stdout, stderr.
fn ctl(url: &str, token: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_presence-hubctl"));
    cmd.env_clear().arg("--url").arg(url).args(args);
    if let Some(t) = token {
        cmd.env("HUB_TOKEN", t);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn ok(url: &str, args: &[&str]) -> String {
    let (code, out, err) = ctl(url, Some(TOKEN), args);
    assert_eq!(code, 0, "presence-hubctl {args:?}: {out}{err}");
    out
}

async fn push(hub: &Hub, instance: &str, body: &Value) -> u16 {
    let body = serde_json::to_vec(body).unwrap();
    let ts = unix_now();
    hub.http
        .post(hub.url(&format!("/hooks/{instance}/presence")))
        .header("X-Hub-Timestamp", ts.to_string())
        .header("X-Hub-Signature", sign(SECRET, ts, &body))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn daily_tasks_through_the_cli() {
    let hub = Hub::start(&["plugins/http-push"], &[]);
    let url = hub.base.clone();
    let dir = tempfile::tempdir().unwrap();

    let out = ok(&url, &["status"]);
    assert!(
        out.contains("health: ok") && out.contains("ready: yes"),
        "{out}"
    );

    // Connectors: create from a file, list, disable, enable, show (no secret).
    let file = dir.path().join("pbx.json");
    std::fs::write(
        &file,
        json!({"id": "push", "plugin": "http-push", "config": {"shared_secret": SECRET}})
            .to_string(),
    )
    .unwrap();
    assert!(
        ok(&url, &["connectors", "create", file.to_str().unwrap()])
            .contains("created connector push")
    );
    hub.wait_for("/api/v1/connectors/push/status", "up", |v| {
        v["status"]["status"] == "up-and-running"
    })
    .await;
    let list = ok(&url, &["connectors", "list"]);
    assert!(
        list.contains("push") && list.contains("http-push") && list.contains("up-and-running"),
        "{list}"
    );
    ok(&url, &["connectors", "disable", "push"]);
    let list = ok(&url, &["connectors", "list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("push") && l.contains(" no ")),
        "{list}"
    );
    ok(&url, &["connectors", "enable", "push"]);
    let shown = ok(&url, &["connectors", "show", "push", "--json"]);
    assert!(!shown.contains(SECRET), "secret shown: {shown}");
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["secrets_set"], json!(["shared_secret"]));

    // Users: import a CSV, export, re-import the export unchanged.
    let csv = dir.path().join("users.csv");
    std::fs::write(
        &csv,
        "username,display_name,extension\nalice,Alice A,1001\nbob,Bob B,1002\n",
    )
    .unwrap();
    let out = ok(&url, &["users", "import", csv.to_str().unwrap()]);
    assert!(out.contains("2 created"), "{out}");
    let export = dir.path().join("users.json");
    ok(
        &url,
        &["users", "export", "--out", export.to_str().unwrap()],
    );
    let exported: Vec<Value> = serde_json::from_slice(&std::fs::read(&export).unwrap()).unwrap();
    assert_eq!(exported.len(), 2);
    let out = ok(&url, &["users", "import", export.to_str().unwrap()]);
    assert!(out.contains("2 unchanged"), "{out}");
    let out = ok(&url, &["users", "list"]);
    assert!(out.contains("Alice A") && out.contains("2 users"), "{out}");

    // A rejected import: exit 1, every rejected row named, nothing taken.
    std::fs::write(&csv, "username,extension\ncarol,1003\n,1004\n").unwrap();
    let (code, out, err) = ctl(
        &url,
        Some(TOKEN),
        &["users", "import", csv.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("row 2") && out.contains("nothing was imported"),
        "{out}"
    );
    assert_eq!(hub.get("/api/v1/users").await["total"], 2);

    // Tokens: create (value shown once), list (never values), revoke.
    let out = ok(
        &url,
        &[
            "tokens",
            "create",
            "wallboard",
            "--role",
            "console",
            "--json",
        ],
    );
    let made: Value = serde_json::from_str(&out).unwrap();
    let value = made["token"].as_str().unwrap().to_string();
    let id = made["id"].as_str().unwrap().to_string();
    let list = ok(&url, &["tokens", "list"]);
    assert!(
        list.contains("wallboard") && !list.contains(&value),
        "{list}"
    );
    // The console token reads but may not change.
    let (code, _, err) = ctl(&url, Some(&value), &["connectors", "disable", "push"]);
    assert_eq!(code, 1);
    assert!(err.contains("403"), "{err}");
    ok(&url, &["tokens", "revoke", &id]);
    let (code, _, err) = ctl(&url, Some(&value), &["connectors", "list"]);
    assert_eq!(code, 1);
    assert!(err.contains("401"), "{err}");

    // The event log shows the operator's changes.
    let out = ok(&url, &["events", "--limit", "200"]);
    assert!(out.contains("push"), "{out}");

    // Failures say what to do, with distinct exit codes.
    let (code, _, err) = ctl(&url, Some("wrong-token-0123456789"), &["status"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("401"), "{err}");
    let (code, _, err) = ctl("http://127.0.0.1:9", Some(TOKEN), &["status"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("cannot reach the hub") && err.contains("HUB_URL"),
        "{err}"
    );
    let (code, _, err) = ctl(&url, Some(TOKEN), &["users", "import", "users.txt"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(".csv") && err.contains(".json"), "{err}");
}

/// The state an operator sees, without what changes by itself (times of
/// status, runtime counters).
async fn state(hub: &Hub) -> Value {
    let mut connectors = hub.get("/api/v1/connectors").await["connectors"].clone();
    for c in connectors.as_array_mut().unwrap() {
        c.as_object_mut().unwrap().remove("status");
    }
    let mut users = Vec::new();
    for page in 1.. {
        let v = hub
            .get(&format!("/api/v1/users?page={page}&per_page=1000"))
            .await;
        let got = v["users"].as_array().unwrap().clone();
        if got.is_empty() {
            break;
        }
        users.extend(got);
    }
    json!({
        "connectors": connectors,
        "users": users,
        "tokens": hub.get("/api/v1/tokens").await,
        "rules": hub.get("/api/v1/settings/rules").await,
        "notes": hub.get("/api/v1/users/u0/notes").await,
    })
}

fn restore(archive: &Path, data: &Path, extra: &[&str]) -> (bool, String) {
    let out = Command::new(hub_binary())
        .env_clear()
        .args(["restore", "--from"])
        .arg(archive)
        .arg("--data")
        .arg(data)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn a_backup_under_write_load_restores_to_the_same_state() {
    let hub = Hub::start(&["plugins/http-push"], &[]);
    let url = hub.base.clone();
    let dir = tempfile::tempdir().unwrap();
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": "push", "plugin": "http-push", "config": {"shared_secret": SECRET}})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, _) = hub
        .call(
            "POST",
            "/api/v1/users",
            Some(json!({"username": "u0", "extension": "1000"})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, _) = hub
        .call(
            "POST",
            "/api/v1/users/u0/notes",
            Some(json!({"text": "back at 3"})),
        )
        .await;
    assert_eq!(s, 201);
    ok(&url, &["tokens", "create", "wallboard"]);

    // Writers create users u1, u2, ... one after another while the backup
    // is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicUsize::new(1));
    let writer = {
        let (stop, made) = (stop.clone(), made.clone());
        let (http, base) = (hub.http.clone(), hub.base.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) && made.load(Ordering::Relaxed) < 5000 {
                let n = made.load(Ordering::Relaxed);
                let r = http
                    .post(format!("{base}/api/v1/users"))
                    .bearer_auth(TOKEN)
                    .json(&json!({"username": format!("u{n}"), "extension": format!("{}", 1000 + n), "department": "load"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 201);
                made.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    while made.load(Ordering::Relaxed) < 50 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let before = made.load(Ordering::Relaxed);
    let archive = dir.path().join("hub.tar");
    let url2 = url.clone();
    let a2 = archive.clone();
    let out =
        tokio::task::spawn_blocking(move || ok(&url2, &["backup", "--out", a2.to_str().unwrap()]))
            .await
            .unwrap();
    let after = made.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert!(out.contains("holds the secret key"), "{out}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Restored into a new folder and started: the users are exactly u0..uk
    // for one k taken while the load ran (no gap, no half-written user).
    let data = dir.path().join("restored");
    let (okay, said) = restore(&archive, &data, &[]);
    assert!(okay, "{said}");
    let copy = Hub::start(
        &["plugins/http-push"],
        &[("HUB_DATA_DIR", data.to_str().unwrap())],
    );
    let restored = state(&copy).await;
    let users = restored["users"].as_array().unwrap();
    let k = users.len();
    assert!(k >= before && k <= after + 1, "{before} <= {k} <= {after}");
    let mut names: Vec<usize> = users
        .iter()
        .map(|u| u["username"].as_str().unwrap()[1..].parse().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        (0..k).collect::<Vec<_>>(),
        "a gap in the restored users"
    );
    // Each restored user is the source's, field for field.
    let source = state(&hub).await;
    for u in users {
        let name = &u["username"];
        let src = source["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| &s["username"] == name)
            .unwrap();
        assert_eq!(u, src);
    }
    for part in ["connectors", "tokens", "rules", "notes"] {
        assert_eq!(restored[part], source[part], "{part} differs after restore");
    }
    // The secret came back usable: the restored connector checks a push
    // signed with it.
    copy.wait_for("/api/v1/connectors/push/status", "up", |v| {
        v["status"]["status"] == "up-and-running"
    })
    .await;
    assert_eq!(
        push(
            &copy,
            "push",
            &json!({"endpoint": "1000", "rich": {"availability": "busy"}})
        )
        .await,
        202
    );
    drop(copy);

    // Quiescent now: a second backup restores to exactly the source's state.
    let archive2 = dir.path().join("hub2.tar");
    ok(
        &url,
        &[
            "backup",
            "--out",
            archive2.to_str().unwrap(),
            "--without-secret-key",
        ],
    );
    let data2 = dir.path().join("restored2");
    let (okay, said) = restore(&archive2, &data2, &[]);
    assert!(!okay && said.contains("--secret-key"), "{said}");
    assert!(!data2.exists(), "a refused restore leaves nothing");
    let key = hub.dir.path().join("data/secret.key");
    let (okay, said) = restore(&archive2, &data2, &["--secret-key", key.to_str().unwrap()]);
    assert!(okay, "{said}");
    let copy2 = Hub::start(
        &["plugins/http-push"],
        &[("HUB_DATA_DIR", data2.to_str().unwrap())],
    );
    assert_eq!(state(&copy2).await, state(&hub).await);
}
