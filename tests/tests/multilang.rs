//! Connectors written in other languages, end to end: the Python
//! (componentize-py) and JavaScript (componentize-js) examples under
//! `examples/`, as `cargo xtask plugins` packaged them, are uploaded into a
//! running hub through the API, configured (a bad secret is refused naming
//! its field), pushed presence through their webhooks (bad input gets the
//! plugin's own 4xx), and seen in the user's presence and the live feed; a
//! kill -9 and restart loads the compiled component from the cache and the
//! connector re-reports its last states from its key-value store.

use std::time::Duration;

use hub_e2e::{Hub, TOKEN};
use serde_json::{Value, json};

const SECRET: &str = "example-secret-0123456789";

/// One example connector and how its webhook authenticates a push.
struct Example {
    id: &'static str,
    source: &'static str,
    secret_field: &'static str,
    auth: fn(&[u8]) -> Vec<(String, String)>,
}

const PYTHON: Example = Example {
    id: "example-python",
    source: "examples/python-connector",
    secret_field: "shared_secret",
    // HMAC-SHA256 over `<timestamp>.<body>`, as http-push signs.
    auth: |body| {
        let ts = hub_e2e::unix_now();
        vec![
            ("X-Hub-Timestamp".into(), ts.to_string()),
            ("X-Hub-Signature".into(), hub_e2e::sign(SECRET, ts, body)),
        ]
    },
};

const JAVASCRIPT: Example = Example {
    id: "example-js",
    source: "examples/js-connector",
    secret_field: "token",
    auth: |_| vec![("Authorization".into(), format!("Bearer {SECRET}"))],
};

/// The packaged example, or a failure that says how to get it built.
fn packaged(ex: &Example) -> std::path::PathBuf {
    let dir = hub_e2e::root().join("dist/examples").join(ex.id);
    assert!(
        dir.join("plugin.toml").exists(),
        "{} is missing: its toolchain is not installed, so `cargo xtask plugins` skipped it. \
         Run `bash .ci/install-test-deps.sh` (componentize-py into target/py-tools, \
         componentize-js into examples/js-connector/node_modules), then `cargo xtask test`; \
         see {}/README.md",
        dir.display(),
        ex.source
    );
    dir
}

/// POST a body to the instance's webhook; status and JSON answer.
async fn push(
    hub: &Hub,
    instance: &str,
    path: &str,
    body: &[u8],
    headers: Vec<(String, String)>,
) -> (u16, Value) {
    let mut req = hub
        .http
        .post(hub.url(&format!("/hooks/{instance}{path}")))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The plugin as `GET /api/v1/plugins` shows it.
async fn plugin_view(hub: &Hub, id: &str) -> Value {
    hub.get("/api/v1/plugins").await["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} is not loaded"))
}

/// Read the SSE feed until a presence event satisfies `f`.
async fn feed_until(resp: &mut reqwest::Response, what: &str, f: impl Fn(&Value) -> bool) {
    let mut buf = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let data: String = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            if let Ok(v) = serde_json::from_str::<Value>(&data)
                && v["type"] == "presence"
                && f(&v)
            {
                return;
            }
        }
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("no feed event with {what} within 30 s"))
            .unwrap()
            .expect("the feed stays open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}

async fn end_to_end(ex: &Example) {
    let folder = packaged(ex);
    let size = std::fs::metadata(folder.join(format!("{}.wasm", ex.id)))
        .unwrap()
        .len();
    let mut hub = Hub::start(&[], &[]);

    // Installed through the API: compiled once, at upload.
    let (s, v) = hub.upload(&folder).await;
    assert_eq!(s, 201, "{v}");
    let p = plugin_view(&hub, ex.id).await;
    assert_eq!(p["api_version"], "0.2.0", "{p}");
    assert_eq!(p["compile_source"], "compiled", "{p}");
    assert_eq!(p["capabilities"]["webhooks"], true, "{p}");
    assert_eq!(p["endpoint_kinds"][0]["attribute"], "extension", "{p}");
    let first_load_ms = p["load_ms"].as_f64().unwrap();

    for (username, ext) in [("ada", "2001"), ("bob", "2002")] {
        let (s, v) = hub
            .call(
                "POST",
                "/api/v1/users",
                Some(json!({"username": username, "display_name": username, "extension": ext})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }

    // A secret that is too short: the plugin's `configure` names the
    // field, and no instance is created (issue 18).
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": "short", "plugin": ex.id, "config": {ex.secret_field: "short"}})),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["field"], format!("config.{}", ex.secret_field), "{v}");
    let (s, v) = hub.call("GET", "/api/v1/connectors/short", None).await;
    assert_eq!(s, 404, "{v}");

    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": "px", "plugin": ex.id,
                "config": {ex.secret_field: SECRET, "heartbeat_seconds": 1}})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    // Watched by extension (the plugin's first endpoint kind); nothing
    // pushed yet.
    hub.wait_for("/api/v1/connectors/px/endpoints", "watches", |v| {
        v["endpoints"]["2001"]["state"] == "requesting"
            && v["endpoints"]["2002"]["state"] == "requesting"
    })
    .await;
    // The heartbeat timer refreshes the status.
    hub.wait_for("/api/v1/connectors/px/status", "a heartbeat", |v| {
        v["status"]["status"] == "up-and-running"
            && v["status"]["status_detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("heartbeat ") && d.contains("2 watched"))
    })
    .await;

    let mut feed = hub
        .http
        .get(hub.url("/api/v1/feed/sse?users=ada"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status().as_u16(), 200);

    // A push with rich and telephony presence, and a batch.
    let body = json!({
        "endpoint": "2001", "sequence": 7,
        "telephony": {"line": "in-call", "dnd": false, "forward": {"number": "+4930123"}},
        "rich": {"availability": "busy", "activity": "in-a-call", "note": "with a customer"}
    })
    .to_string();
    let (s, v) = push(
        &hub,
        "px",
        "/presence",
        body.as_bytes(),
        (ex.auth)(body.as_bytes()),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v, json!({"accepted": 1, "reported": 1}));
    let batch = json!({"updates": [
        {"endpoint": "2002", "rich": {"availability": "away", "activity": "lunch-break"}},
        {"endpoint": "9999", "telephony": {"line": "ringing"}}
    ]})
    .to_string();
    let (s, v) = push(
        &hub,
        "px",
        "/presence",
        batch.as_bytes(),
        (ex.auth)(batch.as_bytes()),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    // 9999 is nobody's: kept, not reported.
    assert_eq!(v, json!({"accepted": 2, "reported": 1}));

    let p = hub
        .wait_for("/api/v1/presence/ada", "ada's pushed presence", |v| {
            v["rich"]["state"] == "busy" && v["telephony"]["line"] == "in-call"
        })
        .await;
    assert_eq!(p["rich"]["note"], "with a customer", "{p}");
    assert_eq!(p["rich"]["source"], "px", "{p}");
    assert_eq!(p["telephony"]["source"], "px", "{p}");
    feed_until(&mut feed, "ada busy", |v| {
        v["username"] == "ada" && v["rich"]["note"] == "with a customer"
    })
    .await;
    let eps = hub
        .wait_for("/api/v1/connectors/px/endpoints", "2002 active", |v| {
            v["endpoints"]["2002"]["state"] == "active"
        })
        .await;
    assert_eq!(eps["endpoints"]["2001"]["state"], "active", "{eps}");
    assert_eq!(
        eps["endpoints"]["2001"]["telephony"]["forward"]["number"], "+4930123",
        "{eps}"
    );
    assert_eq!(
        eps["endpoints"]["2002"]["rich"]["activity"],
        json!({"other": "lunch-break"}),
        "{eps}"
    );

    // Bad input gets the plugin's own answers.
    let bad = br#"{"endpoint": "2001", "rich": {"availability": "sleepy"}}"#;
    let (s, v) = push(&hub, "px", "/presence", bad, (ex.auth)(bad)).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["field"], "rich.availability", "{v}");
    let bad = br#"{"updates": [{"endpoint": "2001", "rich": {"availability": "away"}}, {"endpoint": ""}]}"#;
    let (s, v) = push(&hub, "px", "/presence", bad, (ex.auth)(bad)).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["field"], "updates[1].endpoint", "{v}");
    let (s, v) = push(&hub, "px", "/presence", b"not json", (ex.auth)(b"not json")).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("not JSON"), "{v}");
    let (s, v) = push(&hub, "px", "/presence", body.as_bytes(), vec![]).await;
    assert_eq!(s, 401, "{v}");
    let mut other = SECRET.to_string();
    other.push('x');
    let (s, v) = push(
        &hub,
        "px",
        "/presence",
        body.as_bytes(),
        (ex.auth)(b"something else")
            .into_iter()
            .map(|(k, v)| (k, v.replace(SECRET, &other)))
            .collect(),
    )
    .await;
    assert_eq!(s, 401, "{v}");
    let (s, v) = push(&hub, "px", "/elsewhere", b"{}", (ex.auth)(b"{}")).await;
    assert_eq!(s, 404, "{v}");
    // Nothing bad was applied: ada is still busy.
    assert_eq!(
        hub.get("/api/v1/presence/ada").await["rich"]["state"],
        "busy"
    );

    // The state kept in kv, read back through the webhook.
    let resp = hub
        .http
        .get(hub.url("/hooks/px/state/9999"))
        .headers(
            (ex.auth)(b"")
                .into_iter()
                .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
                .collect(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let kept: Value = resp.json().await.unwrap();
    assert_eq!(kept["telephony"]["line"], "ringing", "{kept}");

    // Write-back: the plugin's `write-presence` refuses it as unsupported.
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors/px/endpoints/2001/presence",
            Some(json!({"action": "set", "availability": "do-not-disturb"})),
        )
        .await;
    assert!((400..500).contains(&s), "{s} {v}");
    assert!(
        v.to_string().contains("read-only"),
        "the plugin's refusal: {v}"
    );

    // kill -9 and start again: the compiled component comes from the cache,
    // and the connector re-reports its kept states as soon as it is watched.
    hub.restart();
    let p = plugin_view(&hub, ex.id).await;
    assert_eq!(p["compile_source"], "cache", "{p}");
    let cached_load_ms = p["load_ms"].as_f64().unwrap();
    let p = hub
        .wait_for("/api/v1/presence/ada", "ada again after a restart", |v| {
            v["rich"]["state"] == "busy" && v["telephony"]["line"] == "in-call"
        })
        .await;
    assert_eq!(p["rich"]["note"], "with a customer", "{p}");
    let eps = hub.get("/api/v1/connectors/px/endpoints").await;
    assert!(
        eps["endpoints"]["2001"]["state_detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("restored from kv")),
        "{eps}"
    );
    eprintln!(
        "multilang: {}: {:.1} MB, first load (compile) {first_load_ms:.0} ms, \
         after restart (cache) {cached_load_ms:.0} ms",
        ex.id,
        size as f64 / 1e6
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_connector_reports_presence_end_to_end() {
    end_to_end(&PYTHON).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javascript_connector_reports_presence_end_to_end() {
    end_to_end(&JAVASCRIPT).await;
}
