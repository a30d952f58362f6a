//! Operator health (issue 18): the connector status and `/readyz` agree
//! with what the connector says, `/metrics` shows every family an operator
//! alerts on, logs are plain text in the API's words, the event log says
//! who changed what and what became of each connector, and the admin token
//! survives a failed first start and can be rotated. Everything through the
//! real binary, on 127.0.0.1 only.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hub_e2e::{Hub, TOKEN, sign, unix_now};
use serde_json::{Value, json};

const SECRET: &str = "a-shared-secret-of-32-bytes-long";

/// A 127.0.0.1 port nothing listens on (bound, then closed).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A sip-simple instance toward a closed TCP port: it says
/// `connection-error` while its sandbox runs fine.
async fn unreachable_pbx(hub: &Hub, id: &str) {
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": id, "plugin": "sip-simple", "config": {
                "server": format!("127.0.0.1:{}", closed_port()),
                "transport": "tcp",
                "uri": "hub@127.0.0.1",
            }})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    hub.wait_for(
        &format!("/api/v1/connectors/{id}/status"),
        "connection-error with a detail naming the refusal",
        |v| {
            v["status"]["status"] == "connection-error"
                && v["status"]["status_detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("refused"))
        },
    )
    .await;
}

async fn create_push(hub: &Hub, id: &str) {
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": id, "plugin": "http-push", "config": {"shared_secret": SECRET}})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
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

async fn readyz(hub: &Hub, query: &str) -> (u16, Value) {
    let r = hub
        .http
        .get(hub.url(&format!("/readyz{query}")))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn metrics(hub: &Hub) -> String {
    hub.http
        .get(hub.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of one exposition line that starts with `series` (name and
/// labels as written), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Wait until `f` holds for the exposition, or fail showing it.
async fn wait_metrics(hub: &Hub, what: &str, f: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = metrics(hub).await;
        if f(&m) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `link` agrees with `status`: an instance that runs but cannot reach its
/// PBX is `offline`, never `online`. `/readyz` says ready (the hub itself
/// is fine) but degraded, naming the PBX and why; asked to require it (by
/// query or by `HUB_READY_REQUIRES`) it answers 503 naming it, and names an
/// unknown id as such. A connector that is up satisfies the requirement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_link_and_readiness_tell_the_truth() {
    let hub = Hub::start(
        &["plugins/sip-simple", "plugins/http-push"],
        &[("HUB_READY_REQUIRES", "push")],
    );
    unreachable_pbx(&hub, "pbx").await;
    let st = hub.get("/api/v1/connectors/pbx/status").await;
    assert_eq!(st["status"]["run_state"], "running", "{st}");
    assert_eq!(st["link"], "offline", "{st}");
    assert_eq!(st["online"], false, "{st}");

    // `push` is required by the setting and not created yet.
    let (s, v) = readyz(&hub, "").await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(
        v["not_ready"],
        json!([{"id": "push", "reason": "no such connector"}])
    );
    create_push(&hub, "push").await;
    hub.wait_for("/api/v1/connectors/push/status", "push up", |v| {
        v["status"]["status"] == "up-and-running"
    })
    .await;
    let push_link = hub.get("/api/v1/connectors/push/status").await;
    assert_ne!(push_link["link"], "offline", "{push_link}");

    let (s, v) = readyz(&hub, "").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["ready"], true);
    assert_eq!(v["degraded"], true, "{v}");
    assert_eq!(v["down"][0]["id"], "pbx", "{v}");
    assert_eq!(v["down"][0]["status"], "connection-error", "{v}");
    let reason = v["down"][0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("connection-error: ") && reason.contains("refused"),
        "{reason}"
    );
    assert_eq!(v["up"], json!(["push"]), "{v}");

    let (s, v) = readyz(&hub, "?require=pbx,ghost").await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["ready"], false);
    assert_eq!(v["required"], json!(["ghost", "pbx", "push"]), "{v}");
    let not_ready = v["not_ready"].as_array().unwrap();
    assert_eq!(not_ready.len(), 2, "{v}");
    assert_eq!(
        not_ready[0],
        json!({"id": "ghost", "reason": "no such connector"})
    );
    assert_eq!(not_ready[1]["id"], "pbx");
    assert!(
        not_ready[1]["reason"]
            .as_str()
            .unwrap()
            .starts_with("connection-error"),
        "{v}"
    );
    let (s, v) = readyz(&hub, "?require=*").await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["not_ready"][0]["id"], "pbx", "{v}");

    // Disabled, the PBX is neither down nor counted by `*`.
    let (s, v) = hub
        .call("POST", "/api/v1/connectors/pbx/disable", None)
        .await;
    assert_eq!(s, 200, "{v}");
    let st = hub.get("/api/v1/connectors/pbx/status").await;
    assert_eq!(st["link"], "offline", "{st}");
    let (s, v) = readyz(&hub, "?require=*").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["degraded"], false, "{v}");
}

/// Every family the README lists, with bounded labels: the status gauge
/// (one series per value, 1 for the current), `up`, restarts, quarantines,
/// denied reaches, feed clients by transport, webhooks by result, HTTP
/// requests by route template and status with a latency histogram, the
/// event-log queue and drops, and build_info.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_what_an_operator_alerts_on() {
    let hub = Hub::start(
        &[
            "plugins/sip-simple",
            "plugins/http-push",
            "test-plugins/chaos",
        ],
        &[
            ("HUB_QUARANTINE_AFTER", "2"),
            ("HUB_RESTART_BACKOFF_MIN_MS", "50"),
            ("HUB_RESTART_BACKOFF_MAX_MS", "100"),
        ],
    );
    let m = metrics(&hub).await;
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        m.lines().any(|l| l.starts_with("presence_hub_build_info{")
            && l.contains(&format!("version=\"{version}\""))
            && l.ends_with(" 1")),
        "{m}"
    );
    for family in [
        "presence_hub_event_log_queued ",
        "presence_hub_event_log_dropped_total ",
        "presence_hub_feed_clients{transport=\"sse\"} 0",
        "presence_hub_feed_clients{transport=\"websocket\"} 0",
    ] {
        assert!(m.contains(family), "{family} missing:\n{m}");
    }

    // PBX down: alertable by its status series and by `up`.
    unreachable_pbx(&hub, "pbx").await;
    let m = metrics(&hub).await;
    let pbx = "instance=\"pbx\",plugin=\"sip-simple\"";
    assert_eq!(
        sample(
            &m,
            &format!("presence_hub_connector_status{{{pbx},status=\"connection-error\"}}")
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            &format!("presence_hub_connector_status{{{pbx},status=\"up-and-running\"}}")
        ),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        m.lines()
            .filter(|l| l.starts_with(&format!("presence_hub_connector_status{{{pbx}")))
            .count(),
        8,
        "{m}"
    );
    assert_eq!(
        sample(&m, &format!("presence_hub_connector_up{{{pbx}}}")),
        Some(0.0)
    );
    // Counters that have not moved show as 0 rather than missing.
    assert_eq!(
        sample(&m, &format!("presence_hub_connector_denied_total{{{pbx}}}")),
        Some(0.0),
        "{m}"
    );

    // A reach outside the grants counts as denied.
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": "probe", "plugin": "chaos", "watches": ["connect:127.0.0.2:9"]})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let probe = "instance=\"probe\",plugin=\"chaos\"";
    wait_metrics(&hub, "a denied reach", |m| {
        sample(
            m,
            &format!("presence_hub_connector_denied_total{{{probe}}}"),
        ) == Some(1.0)
    })
    .await;

    // Crashing in configure: restarts, then quarantine.
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": "boom", "plugin": "chaos", "config": {"crash_on_configure": true}})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let boom = "instance=\"boom\",plugin=\"chaos\"";
    let m = wait_metrics(&hub, "a quarantine", |m| {
        sample(
            m,
            &format!("presence_hub_connector_quarantines_total{{{boom}}}"),
        ) == Some(1.0)
    })
    .await;
    assert_eq!(
        sample(
            &m,
            &format!("presence_hub_connector_restarts_total{{{boom}}}")
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, &format!("presence_hub_connector_quarantined{{{boom}}}")),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, &format!("presence_hub_connector_up{{{boom}}}")),
        Some(0.0)
    );

    // Feed clients by transport.
    let sse = hub
        .http
        .get(hub.url("/api/v1/feed/sse"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status().as_u16(), 200);
    let ws_url = format!(
        "{}/api/v1/feed/ws?access_token={TOKEN}",
        hub.base.replacen("http://", "ws://", 1)
    );
    let (ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    wait_metrics(&hub, "one client per transport", |m| {
        sample(m, "presence_hub_feed_clients{transport=\"sse\"}") == Some(1.0)
            && sample(m, "presence_hub_feed_clients{transport=\"websocket\"}") == Some(1.0)
    })
    .await;
    drop(sse);
    drop(ws);
    wait_metrics(&hub, "feed clients gone", |m| {
        sample(m, "presence_hub_feed_clients{transport=\"sse\"}") == Some(0.0)
            && sample(m, "presence_hub_feed_clients{transport=\"websocket\"}") == Some(0.0)
    })
    .await;

    // Webhooks by result.
    create_push(&hub, "cti").await;
    assert_eq!(
        push(
            &hub,
            "cti",
            &json!({"updates": [{"endpoint": "1001", "telephony": {"line": "idle"}}]})
        )
        .await,
        202
    );
    let bad = hub
        .http
        .post(hub.url("/hooks/cti/presence"))
        .header("X-Hub-Timestamp", unix_now().to_string())
        .header("X-Hub-Signature", "sha256=00")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(bad.status().is_client_error(), "{}", bad.status());
    let nobody = hub
        .http
        .post(hub.url("/hooks/nobody/x"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(nobody.status().as_u16(), 404);

    // HTTP requests by route template: two users, one series; a path no
    // route takes is `unmatched`, never its raw text.
    for name in ["ann", "bob"] {
        let (s, _) = hub
            .call("GET", &format!("/api/v1/users/{name}"), None)
            .await;
        assert_eq!(s, 404);
    }
    let (s, _) = hub.call("GET", "/no/such/route-xyz", None).await;
    assert_eq!(s, 404);
    let m = metrics(&hub).await;
    assert_eq!(
        sample(
            &m,
            "presence_hub_webhook_requests_total{result=\"accepted\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "presence_hub_webhook_requests_total{result=\"refused\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "presence_hub_webhook_requests_total{result=\"no-receiver\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "presence_hub_http_requests_total{method=\"GET\",route=\"/api/v1/users/{username}\",status=\"404\"}"
        ),
        Some(2.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "presence_hub_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert!(
        sample(
            &m,
            "presence_hub_http_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/users/{username}\"}"
        ) == Some(2.0),
        "{m}"
    );
    for raw in ["ann", "bob", "route-xyz", "127.0.0.2"] {
        assert!(!m.contains(raw), "a raw value {raw} became a label:\n{m}");
    }

    // A deleted instance's series go.
    let (s, _) = hub.call("DELETE", "/api/v1/connectors/boom", None).await;
    assert_eq!(s, 204);
    let m = metrics(&hub).await;
    assert!(!m.contains("instance=\"boom\""), "{m}");
}

/// The log file (not a terminal) has no colour codes and says statuses in
/// the API's words at the right level; the event log holds the connector's
/// lifecycle and status changes, reports in the API's words, and who made
/// each operator change (the token's name and id, never the token).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_the_event_log_speak_the_apis_words() {
    let hub = Hub::start(&["plugins/sip-simple", "plugins/http-push"], &[]);
    let (s, tok) = hub
        .call(
            "POST",
            "/api/v1/tokens",
            Some(json!({"name": "night-ops", "role": "admin"})),
        )
        .await;
    assert_eq!(s, 201, "{tok}");
    let ops_token = tok["token"].as_str().unwrap().to_string();
    let ops_id = tok["id"].as_str().unwrap().to_string();

    unreachable_pbx(&hub, "pbx").await;
    create_push(&hub, "cti").await;
    assert_eq!(
        push(
            &hub,
            "cti",
            &json!({"updates": [{"endpoint": "1001", "telephony": {"line": "in-call", "forward": {"number": "+4930123"}}}]})
        )
        .await,
        202
    );
    let r = hub
        .http
        .post(hub.url("/api/v1/connectors/pbx/disable"))
        .bearer_auth(&ops_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // A write to a connector that is not running says so in the API's words.
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors/pbx/endpoints/1001/presence",
            Some(json!({"action": "restore"})),
        )
        .await;
    assert!(s >= 400, "{s} {v}");
    let said = v["error"].as_str().unwrap_or_default();
    assert!(said.contains("(disabled)"), "{said}");
    let (s, _) = hub.call("DELETE", "/api/v1/connectors/pbx", None).await;
    assert_eq!(s, 204);

    let ev = hub
        .wait_for(
            "/api/v1/events?connector=pbx&limit=200",
            "pbx stopped",
            |v| {
                v["events"]
                    .as_array()
                    .is_some_and(|e| e.iter().any(|e| e["detail"] == "stopped"))
            },
        )
        .await;
    let details: Vec<(String, String)> = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let has = |kind: &str, f: &dyn Fn(&str) -> bool| details.iter().any(|(k, d)| k == kind && f(d));
    assert!(
        has("operator", &|d| d.starts_with(
            "POST /api/v1/connectors by the admin token: 201"
        )),
        "{details:#?}"
    );
    assert!(
        has("connector", &|d| d == "started (plugin sip-simple 0.1.0)"),
        "{details:#?}"
    );
    assert!(
        has("connector", &|d| d.starts_with("configured")),
        "{details:#?}"
    );
    assert!(
        // A status change, once (the plugin's retries repeat it).
        details
            .iter()
            .filter(|(k, d)| k == "connector" && d.starts_with("status connection-error: "))
            .count()
            == 1,
        "{details:#?}"
    );
    assert!(
        has("connector", &|d| d == "disabled: not running"),
        "{details:#?}"
    );
    assert!(
        has("operator", &|d| d
            == format!(
                "POST /api/v1/connectors/pbx/disable by token \"night-ops\" (id {ops_id}, admin): 200"
            )),
        "{details:#?}"
    );
    assert!(
        has("operator", &|d| d.starts_with(
            "DELETE /api/v1/connectors/pbx by the admin token: 204"
        )),
        "{details:#?}"
    );
    let all = ev.to_string();
    assert!(
        !all.contains(&ops_token) && !all.contains(TOKEN),
        "a token in the event log"
    );
    assert!(!all.contains("ConnectionError"), "{all}");

    let ev = hub
        .wait_for("/api/v1/events?connector=cti&limit=50", "the report", |v| {
            v["events"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["kind"] == "report"))
        })
        .await;
    let report = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "report")
        .unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        report.contains("telephony in-call forwarded to number \"+4930123\""),
        "{report}"
    );

    let log = hub.log();
    assert!(!log.contains('\u{1b}'), "ANSI codes in a log file:\n{log}");
    let status_line = log
        .lines()
        .find(|l| l.contains("connector status") && l.contains("status=connection-error"))
        .unwrap_or_else(|| panic!("no status line in the API's words:\n{log}"));
    assert!(status_line.contains(" WARN "), "{status_line}");
    assert!(log.contains("source=compiled"), "{log}");
    for debug_name in [
        "ConnectionError",
        "UpAndRunning",
        "InCall",
        "Compiled",
        "nofile=Some(",
    ] {
        assert!(!log.contains(debug_name), "{debug_name} in the log:\n{log}");
    }
}

/// The hub binary (as the test kit finds it: `HUB_BIN`, else the debug build).
fn hub_bin() -> std::path::PathBuf {
    std::env::var_os("HUB_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| hub_e2e::root().join("target/debug/presence-hub"))
}

/// Start the hub binary with no configured admin token; its stdout lines
/// until it says it listens (then it keeps running) or exits.
fn start_bare(data: &std::path::Path, listen: &str) -> (std::process::Child, Vec<String>) {
    let mut child = Command::new(hub_bin())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HUB_LISTEN", listen)
        .env("HUB_DATA_DIR", data)
        .env("HUB_PLUGINS_DIR", data.join("no-plugins"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.starts_with("presence-hub listening on ");
        lines.push(line);
        if done {
            break;
        }
    }
    (child, lines)
}

fn printed_token(lines: &[String]) -> Option<String> {
    lines
        .iter()
        .find_map(|l| l.strip_prefix("admin token (shown once, store it now): "))
        .map(str::to_string)
}

async fn users_status(base: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}/api/v1/users"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A first start that cannot bind its port prints no token and stores
/// none; the next start prints one (before it says it listens) that works.
/// `admin-token rotate` prints a new one; after a restart the old one is
/// refused and the new one works, and no token is printed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_token_survives_a_failed_start_and_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (mut child, lines) = start_bare(&data, &taken.local_addr().unwrap().to_string());
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert_eq!(printed_token(&lines), None, "{lines:?}");
    drop(taken);

    let (mut child, lines) = start_bare(&data, "127.0.0.1:0");
    let first = printed_token(&lines).unwrap_or_else(|| panic!("no token: {lines:?}"));
    let base = lines
        .last()
        .unwrap()
        .strip_prefix("presence-hub listening on ")
        .unwrap()
        .to_string();
    assert_eq!(users_status(&base, &first).await, 200);
    // A feed the old token opened, to see it end at the rotation.
    let mut feed = reqwest::Client::new()
        .get(format!("{base}/api/v1/feed/sse"))
        .bearer_auth(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status().as_u16(), 200);

    // Rotated while the hub runs.
    let out = Command::new(hub_bin())
        .env_clear()
        .args(["admin-token", "rotate", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let second = stdout
        .lines()
        .find_map(|l| l.strip_prefix("new admin token ")?.rsplit(": ").next())
        .unwrap_or_else(|| panic!("{stdout}"))
        .to_string();
    assert_ne!(first, second);
    let deadline = Instant::now() + Duration::from_secs(10);
    while users_status(&base, &first).await != 401 {
        assert!(Instant::now() < deadline, "the old token still works");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(users_status(&base, &second).await, 200);
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = feed.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the old token's feed is still open");
    let (_, ev) = {
        let r = reqwest::Client::new()
            .get(format!("{base}/api/v1/events?limit=50"))
            .bearer_auth(&second)
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    assert!(
        ev["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "operator"
                && e["detail"]
                    .as_str()
                    .unwrap()
                    .starts_with("admin token rotated")),
        "{ev}"
    );
    child.kill().unwrap();
    child.wait().unwrap();

    // And after a restart: no token printed, the new one works.
    let (mut child, lines) = start_bare(&data, "127.0.0.1:0");
    assert_eq!(printed_token(&lines), None, "printed again: {lines:?}");
    let base = lines
        .last()
        .unwrap()
        .strip_prefix("presence-hub listening on ")
        .unwrap()
        .to_string();
    assert_eq!(users_status(&base, &first).await, 401);
    assert_eq!(users_status(&base, &second).await, 200);
    child.kill().unwrap();
    child.wait().unwrap();

    // With the token configured, rotating is refused, naming why.
    let out = Command::new(hub_bin())
        .env_clear()
        .env("HUB_ADMIN_TOKEN", "configured-token-0123456789")
        .args(["admin-token", "rotate", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("HUB_ADMIN_TOKEN"),
        "{out:?}"
    );
}
