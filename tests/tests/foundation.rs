//! The foundation end to end: real hub binary, real plugins built from
//! `plugins/` and `tests/guests/`, driven through the admin API.

use std::time::Duration;

use hub_e2e::{Hub, TOKEN, dist, sign, unix_now};
use serde_json::{Value, json};

const SECRET: &str = "a-shared-secret-of-32-bytes-long";

async fn push(hub: &Hub, instance: &str, body: &Value) -> (u16, Value) {
    let body = serde_json::to_vec(body).unwrap();
    let ts = unix_now();
    let resp = hub
        .http
        .post(hub.url(&format!("/hooks/{instance}/presence")))
        .header("X-Hub-Timestamp", ts.to_string())
        .header("X-Hub-Signature", sign(SECRET, ts, &body))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
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
    assert!(!v.to_string().contains(SECRET), "secret leaked: {v}");
    hub.wait_for(
        &format!("/api/v1/connectors/{id}/status"),
        "up and running",
        |v| v["status"]["status"] == "up-and-running",
    )
    .await;
}

async fn create_chaos(hub: &Hub, id: &str, watches: &[&str]) {
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": id, "plugin": "chaos", "config": {"label": id}, "watches": watches})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
}

async fn watch(hub: &Hub, id: &str, endpoints: &[&str]) {
    let (s, v) = hub
        .call(
            "PUT",
            &format!("/api/v1/connectors/{id}/watches"),
            Some(json!({ "endpoints": endpoints })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
}

/// The healthy connector and the API still work.
async fn assert_hub_serving(hub: &Hub, push_id: &str, endpoint: &str) {
    let (s, v) = push(
        hub,
        push_id,
        &json!({"endpoint": endpoint, "rich": {"availability": "busy"}}),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    hub.wait_for(
        &format!("/api/v1/connectors/{push_id}/endpoints"),
        "pushed presence",
        |v| v["endpoints"][endpoint]["rich"]["availability"] == "busy",
    )
    .await;
    assert_eq!(hub.get("/healthz").await["status"], "ok");
}

#[tokio::test]
async fn http_push_reports_come_back_through_the_api() {
    let hub = Hub::start(&["plugins/http-push"], &[]);
    // Unauthenticated admin calls are refused.
    let r = hub
        .http
        .get(hub.url("/api/v1/plugins"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let plugins = hub.get("/api/v1/plugins").await;
    assert_eq!(plugins["plugins"][0]["id"], "http-push");

    create_push(&hub, "cti").await;
    let (s, v) = push(
        &hub,
        "cti",
        &json!({"updates": [
            {"endpoint": "1001", "telephony": {"line": "in-call", "forward": {"number": "+4930123"}}},
            {"endpoint": "alice@example.com", "rich": {"availability": "away", "activity": "be-right-back", "note": "lunch"}, "raw": {"state": "BRB"}}
        ]}),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["accepted"], 2);
    let eps = hub
        .wait_for("/api/v1/connectors/cti/endpoints", "two endpoints", |v| {
            v["endpoints"].as_object().is_some_and(|m| m.len() == 2)
        })
        .await;
    assert_eq!(eps["endpoints"]["1001"]["telephony"]["line"], "in-call");
    assert_eq!(
        eps["endpoints"]["1001"]["telephony"]["forward"]["number"],
        "+4930123"
    );
    assert_eq!(
        eps["endpoints"]["alice@example.com"]["rich"]["note"],
        "lunch"
    );
    assert_eq!(eps["endpoints"]["alice@example.com"]["raw"][0][1], "BRB");

    // Bad signature, bad body (the field is named), unknown instance.
    let r = hub
        .http
        .post(hub.url("/hooks/cti/presence"))
        .header("X-Hub-Timestamp", unix_now().to_string())
        .header("X-Hub-Signature", "sha256=00")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let (s, v) = push(
        &hub,
        "cti",
        &json!({"endpoint": "1001", "rich": {"availability": "sleepy"}}),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["field"], "rich.availability", "{v}");
    let (s, _) = push(&hub, "nope", &json!({})).await;
    assert_eq!(s, 404);

    // Metrics count per connector.
    let m = hub
        .http
        .get(hub.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.lines().any(
            |l| l.starts_with("presence_hub_connector_reports_out_total")
                && l.contains("instance=\"cti\"")
        ),
        "{m}"
    );
    assert!(m.contains("presence_hub_connector_events_in_total"), "{m}");

    // Config validation names the field; nothing is created.
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": "x", "plugin": "http-push", "config": {"max_skew_seconds": "soon", "shared_secret": SECRET}})),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["field"], "config.max_skew_seconds");
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": "x", "plugin": "http-push", "confg": {}})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["field"], "confg", "{v}");
    let (s, _) = hub.call("GET", "/api/v1/connectors/x", None).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn misbehaving_guests_fail_alone() {
    let hub = Hub::start(
        &["plugins/http-push", "test-plugins/chaos"],
        &[
            ("HUB_RESTART_BACKOFF_MIN_MS", "20"),
            ("HUB_QUARANTINE_AFTER", "3"),
        ],
    );
    create_push(&hub, "good").await;

    // Endless loop: the CPU deadline ends the call, the instance restarts.
    create_chaos(&hub, "looper", &[]).await;
    watch(&hub, "looper", &["loop"]).await;
    let st = hub
        .wait_for("/api/v1/connectors/looper/status", "a restart", |v| {
            v["status"]["restarts"].as_u64() >= Some(1)
        })
        .await;
    let err = st["status"]["last_error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(err.contains("CPU deadline"), "{err}");
    assert_hub_serving(&hub, "good", "a").await;

    // Memory bomb.
    create_chaos(&hub, "bomber", &[]).await;
    watch(&hub, "bomber", &["bomb"]).await;
    let st = hub
        .wait_for("/api/v1/connectors/bomber/status", "a crash", |v| {
            v["status"]["last_error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("memory"))
        })
        .await;
    assert!(st["status"]["restarts"].as_u64() >= Some(1), "{st}");
    assert_hub_serving(&hub, "good", "b").await;

    // Panic: the message from the guest's stderr is kept.
    create_chaos(&hub, "panicker", &[]).await;
    watch(&hub, "panicker", &["panic"]).await;
    hub.wait_for("/api/v1/connectors/panicker/status", "a panic", |v| {
        v["status"]["last_error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("panicked") && m.contains("chaos: asked to panic"))
    })
    .await;
    assert_hub_serving(&hub, "good", "c").await;

    // Every crash above replays the watches into a fresh instance, which
    // crashes again, until the quarantine stops it, with the reason shown.
    for id in ["looper", "bomber", "panicker"] {
        let st = hub
            .wait_for(
                &format!("/api/v1/connectors/{id}/status"),
                "quarantine",
                |v| v["status"]["run_state"] == "quarantined",
            )
            .await;
        let reason = st["status"]["quarantine_reason"].as_str().unwrap();
        assert!(reason.contains("3 crashes"), "{reason}");
    }
    // Unwatching the poison and enabling lifts the quarantine.
    watch(&hub, "panicker", &["fine"]).await;
    let (s, v) = hub
        .call("POST", "/api/v1/connectors/panicker/enable", None)
        .await;
    assert_eq!(s, 200, "{v}");
    hub.wait_for("/api/v1/connectors/panicker/endpoints", "fresh run", |v| {
        v["endpoints"]["fine"]["state"] == "active"
    })
    .await;
    assert_eq!(
        hub.get("/api/v1/connectors/panicker/status").await["status"]["run_state"],
        "running"
    );
    assert_hub_serving(&hub, "good", "d").await;
}

#[tokio::test]
async fn forbidden_reach_is_refused_before_any_network_activity() {
    let hub = Hub::start(&["test-plugins/chaos"], &[]);
    // A listener the plugin is not granted (its grants name 127.0.0.1 only).
    let listener = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let granted = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gport = granted.local_addr().unwrap().port();
    let forbidden = format!("connect:127.0.0.2:{port}");
    let allowed = format!("connect:127.0.0.1:{gport}");
    create_chaos(
        &hub,
        "reach",
        &[&forbidden, &allowed, "http:http://10.1.2.3/x"],
    )
    .await;
    let eps = hub
        .wait_for("/api/v1/connectors/reach/endpoints", "three answers", |v| {
            v["endpoints"][&forbidden]["state"] == "error"
                && v["endpoints"][&allowed]["state"] == "active"
                && v["endpoints"]["http:http://10.1.2.3/x"]["state"] == "error"
        })
        .await;
    let detail = eps["endpoints"][&forbidden]["state_detail"]
        .as_str()
        .unwrap();
    assert!(
        detail.contains("not-granted") && detail.contains(&format!("tcp://127.0.0.2:{port}")),
        "{detail}"
    );
    let detail = eps["endpoints"]["http:http://10.1.2.3/x"]["state_detail"]
        .as_str()
        .unwrap();
    assert!(detail.contains("http://10.1.2.3:80"), "{detail}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        listener.accept().is_err(),
        "the refused connect reached the network"
    );
    let m = hub
        .http
        .get(hub.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.lines()
            .any(|l| l.starts_with("presence_hub_connector_denied_total")
                && l.contains("reach")
                && l.ends_with(" 2")),
        "{m}"
    );
}

#[tokio::test]
async fn bad_plugins_are_refused_and_the_hub_keeps_serving() {
    let hub = Hub::start(&["plugins/http-push", "test-plugins/chaos-wrong-api"], &[]);
    // A malformed manifest in the plugins directory.
    let bad = hub.plugins_dir().join("broken");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("plugin.toml"), "id = \"broken\"\nversion = [").unwrap();
    let mut hub = hub;
    hub.restart();
    let plugins = hub.get("/api/v1/plugins").await;
    let errors = plugins["folder_errors"].to_string();
    assert!(
        errors.contains("chaos-wrong-api") && errors.contains("0.9.0"),
        "{errors}"
    );
    assert!(
        errors.contains("broken") && errors.contains("TOML"),
        "{errors}"
    );
    assert_eq!(plugins["plugins"].as_array().unwrap().len(), 1);

    // Uploads: wrong contract version, malformed manifest, wrong checksum.
    let wrong = dist("test-plugins/chaos-wrong-api");
    let (s, v) = hub.upload(&wrong).await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["field"], "manifest.api-version", "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(e.contains("0.9.0") && e.contains("0.1.0, 0.2.0"), "{v}");
    // The version is read from the component, not from what the manifest
    // (or the plugin) claims: the same component under a manifest that says
    // 0.2.0 is refused too, naming the versions the hub loads.
    let manifest = std::fs::read_to_string(wrong.join("plugin.toml"))
        .unwrap()
        .replace("api-version = \"0.9.0\"", "api-version = \"0.2.0\"");
    let component_file = std::fs::read_dir(&wrong)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "wasm"))
        .unwrap();
    let (s, v) = hub
        .upload_raw(manifest, std::fs::read(component_file).unwrap())
        .await;
    assert_eq!(s, 422, "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(
        e.contains("presence:connector@0.9.0") && e.contains("0.1.0, 0.2.0"),
        "{v}"
    );
    let component = std::fs::read(dist("test-plugins/chaos").join("chaos.wasm")).unwrap();
    let (s, v) = hub.upload_raw("id = 5".into(), component.clone()).await;
    assert_eq!(s, 422, "{v}");
    assert!(v["error"].as_str().unwrap().contains("manifest"), "{v}");
    let manifest = std::fs::read_to_string(dist("test-plugins/chaos").join("plugin.toml")).unwrap();
    let mut corrupt = component.clone();
    corrupt[100] ^= 0xff;
    let (s, v) = hub.upload_raw(manifest.clone(), corrupt).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["field"], "manifest.sha256");
    let (s, v) = hub.upload_raw(manifest.clone(), b"not wasm".to_vec()).await;
    assert_eq!(s, 400, "{v}");

    // A good upload still works, and so does everything else.
    let (s, v) = hub.upload_raw(manifest, component).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["origin"]["kind"], "uploaded");
    create_push(&hub, "p").await;
    assert_eq!(hub.get("/readyz").await["ready"], true);
}

#[tokio::test]
async fn everything_configured_survives_kill_9() {
    let mut hub = Hub::start(&["plugins/http-push"], &[]);
    // An uploaded plugin, instances with secrets, watches and stored data.
    let (s, v) = hub.upload(&dist("test-plugins/chaos")).await;
    assert_eq!(s, 201, "{v}");
    create_push(&hub, "push").await;
    create_chaos(&hub, "kvuser", &["kv:token=refresh-123", "watched-1"]).await;
    hub.wait_for("/api/v1/connectors/kvuser/endpoints", "kv written", |v| {
        v["endpoints"]["kv:token=refresh-123"]["rich"]["note"] == "refresh-123"
    })
    .await;
    let (s, _) = hub
        .call(
            "PATCH",
            "/api/v1/connectors/push",
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(s, 200);

    hub.restart(); // SIGKILL, then start on the same data

    let plugins = hub.get("/api/v1/plugins").await;
    let ids: Vec<_> = plugins["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].clone())
        .collect();
    assert!(
        ids.contains(&json!("chaos")) && ids.contains(&json!("http-push")),
        "{plugins}"
    );
    let push_view = hub.get("/api/v1/connectors/push").await;
    assert_eq!(push_view["enabled"], false);
    assert_eq!(push_view["secrets_set"], json!(["shared_secret"]));
    assert_eq!(push_view["status"]["run_state"], "disabled");
    let all = hub.get("/api/v1/connectors").await.to_string();
    assert!(!all.contains(SECRET), "secret returned by the API");
    assert!(!hub.log().contains(SECRET), "secret written to the log");
    // Watches replayed into the restarted instance; its stored data is back.
    let (s, v) = hub
        .call(
            "PUT",
            "/api/v1/connectors/kvuser/watches",
            Some(json!({"endpoints": ["watched-1", "kvget:token"]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    hub.wait_for(
        "/api/v1/connectors/kvuser/endpoints",
        "state after restart",
        |v| {
            v["endpoints"]["watched-1"]["state"] == "active"
                && v["endpoints"]["kvget:token"]["rich"]["note"] == "refresh-123"
        },
    )
    .await;
    // The secret still works after restart.
    let (s, _) = hub
        .call("POST", "/api/v1/connectors/push/enable", None)
        .await;
    assert_eq!(s, 200);
    hub.wait_for("/api/v1/connectors/push/status", "running", |v| {
        v["status"]["status"] == "up-and-running"
    })
    .await;
    assert_hub_serving(&hub, "push", "after-restart").await;
}

#[tokio::test]
async fn hot_reload_moves_instances_with_their_state() {
    let hub = Hub::start(&["test-plugins/chaos"], &[]);
    create_chaos(&hub, "c1", &["kv:k=kept", "w"]).await;
    hub.wait_for("/api/v1/connectors/c1/endpoints", "first run", |v| {
        v["endpoints"]["kv:k=kept"]["rich"]["note"] == "kept"
    })
    .await;
    assert_eq!(
        hub.get("/api/v1/connectors/c1/status").await["status"]["plugin_version"],
        "0.1.0"
    );

    // Webhooks keep being answered while the new build is uploaded.
    let pinger = {
        let http = hub.http.clone();
        let url = hub.url("/hooks/c1/ping");
        tokio::spawn(async move {
            let mut codes = Vec::new();
            for _ in 0..100 {
                let r = http.get(&url).send().await.unwrap();
                codes.push(r.status().as_u16());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            codes
        })
    };
    let (s, v) = hub.upload(&dist("test-plugins/chaos-next")).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["version"], "0.1.1");
    let codes = pinger.await.unwrap();
    assert!(
        codes.iter().all(|c| *c == 200),
        "webhooks lost during reload: {codes:?}"
    );

    let st = hub.get("/api/v1/connectors/c1/status").await;
    assert_eq!(st["status"]["plugin_version"], "0.1.1");
    assert_eq!(st["status"]["restarts"], 0, "a reload is not a crash");
    let (s, _) = hub
        .call(
            "PUT",
            "/api/v1/connectors/c1/watches",
            Some(json!({"endpoints": ["w", "kvget:k"]})),
        )
        .await;
    assert_eq!(s, 200);
    hub.wait_for("/api/v1/connectors/c1/endpoints", "state kept", |v| {
        v["endpoints"]["kvget:k"]["rich"]["note"] == "kept"
    })
    .await;
    // Write-back reaches the new build.
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors/c1/endpoints/w/presence",
            Some(json!({"action": "set", "availability": "do-not-disturb"})),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    hub.wait_for(
        "/api/v1/connectors/c1/endpoints",
        "write-back echoed",
        |v| v["endpoints"]["w"]["rich"]["availability"] == "do-not-disturb",
    )
    .await;
    let _ = TOKEN;
}

#[tokio::test]
async fn reload_from_the_plugins_directory() {
    let hub = Hub::start(&["test-plugins/chaos"], &[]);
    create_chaos(&hub, "r1", &["kv:k=v"]).await;
    hub.wait_for("/api/v1/connectors/r1/endpoints", "first run", |v| {
        v["endpoints"]["kv:k=v"]["rich"]["note"] == "v"
    })
    .await;
    // An operator drops a new build into the folder and asks for a reload.
    let next = dist("test-plugins/chaos-next");
    for f in ["plugin.toml", "chaos.wasm"] {
        std::fs::copy(next.join(f), hub.plugins_dir().join("chaos").join(f)).unwrap();
    }
    let (s, v) = hub.call("POST", "/api/v1/plugins/chaos/reload", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"], "0.1.1");
    assert_eq!(v["instances"], json!(["r1"]));
    assert_eq!(
        hub.get("/api/v1/connectors/r1/status").await["status"]["plugin_version"],
        "0.1.1"
    );
    // A broken build in the folder is refused and the running one stays.
    std::fs::write(
        hub.plugins_dir().join("chaos").join("chaos.wasm"),
        b"garbage",
    )
    .unwrap();
    let (s, v) = hub.call("POST", "/api/v1/plugins/chaos/reload", None).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["field"], "manifest.sha256");
    assert_eq!(hub.get("/api/v1/plugins/chaos").await["version"], "0.1.1");
    let (s, v) = hub.call("DELETE", "/api/v1/plugins/chaos", None).await;
    assert_eq!(s, 409, "{v}");
    let (s, _) = hub.call("DELETE", "/api/v1/connectors/r1", None).await;
    assert_eq!(s, 204);
    let (s, _) = hub.call("DELETE", "/api/v1/plugins/chaos", None).await;
    assert_eq!(s, 204);
    let (s, _) = hub.call("GET", "/api/v1/plugins/chaos", None).await;
    assert_eq!(s, 404);
}
