//! The Genesys Cloud CX connector (`plugins/genesys-cloud`, Python on the
//! SDK in `sdk/python`) against the Genesys simulator
//! (`hub_e2e::genesys_sim`), through the real hub binary and its API: the
//! component `cargo xtask plugins` packaged is uploaded, configured, signs
//! in, maps users by email, follows presence, routing status and calls over
//! the Notifications API, survives a channel's closing, honours a 429 and
//! names wrong credentials and a missing permission in `forbidden`.

use std::time::Duration;

use hub_e2e::genesys_sim::{CONVERSATIONS_PERMISSION, GenesysSim, GenesysSimConfig};
use hub_e2e::{Hub, TOKEN};
use serde_json::{Value, json};

const PLUGIN: &str = "genesys-cloud";

/// The packaged plugin, or a failure that says how to get it built.
fn packaged() -> std::path::PathBuf {
    // GENESYS_PLUGIN_DIR: another build of the plugin (to see these tests
    // fail against a broken connector).
    let dir = std::env::var_os("GENESYS_PLUGIN_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| hub_e2e::root().join("dist/examples").join(PLUGIN));
    assert!(
        dir.join("plugin.toml").exists(),
        "{} is missing: componentize-py is not installed, so `cargo xtask plugins` skipped it. \
         Run `bash .ci/install-test-deps.sh` (componentize-py into target/py-tools), then \
         `cargo xtask test --test genesys`; see plugins/genesys-cloud/README.md",
        dir.display()
    );
    dir
}

/// A hub with the Genesys plugin uploaded through the API (compiled once).
async fn hub() -> Hub {
    let hub = Hub::start(&[], &[]);
    let (s, v) = hub.upload(&packaged()).await;
    assert_eq!(s, 201, "{v}");
    let plugins = hub.get("/api/v1/plugins").await;
    let p = plugins["plugins"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["id"] == PLUGIN))
        .expect("the plugin is loaded");
    assert_eq!(p["compile_source"], "compiled", "{p}");
    eprintln!("genesys-cloud: compiled at upload in {} ms", p["load_ms"]);
    hub
}

async fn create(hub: &Hub, id: &str, config: Value) {
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": id, "plugin": PLUGIN, "config": config})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
}

fn config(sim: &GenesysSim, secret: Option<&str>) -> Value {
    let c = sim.config();
    json!({
        "region": "mypurecloud.ie",
        "client_id": c.client_id,
        "client_secret": secret.unwrap_or(&c.client_secret),
        "api_url": sim.api_url(),
        "login_url": sim.login_url(),
    })
}

async fn add_user(hub: &Hub, user: Value) {
    let (s, v) = hub.call("POST", "/api/v1/users", Some(user.clone())).await;
    assert!(s == 200 || s == 201, "POST user {user}: {s} {v}");
}

async fn wait_status(hub: &Hub, id: &str, want: &str) -> Value {
    hub.wait_for(&format!("/api/v1/connectors/{id}/status"), want, |v| {
        v["status"]["status"] == want
    })
    .await["status"]
        .clone()
}

/// The endpoint as the connector reports it, once `f` holds.
async fn wait_endpoint(hub: &Hub, ep: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    hub.wait_for("/api/v1/connectors/gc/endpoints", what, |v| {
        f(&v["endpoints"][ep])
    })
    .await["endpoints"][ep]
        .clone()
}

fn raw(ep: &Value, name: &str) -> Option<String> {
    ep["raw"]
        .as_array()?
        .iter()
        .find(|p| p[0] == name)
        .and_then(|p| p[1].as_str().map(str::to_string))
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

fn count(sim: &GenesysSim, method: &str, path: &str, status: u16) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.method == method && r.target.starts_with(path) && r.status == status)
        .count()
}

/// Sign-in, the directory mapped by email (and an email as a manual
/// endpoint), presence (system, on-queue routing, organization-defined),
/// a call's events reaching the feed, the channel's closing survived with
/// its state read again, and a 429 honoured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signs_in_maps_by_email_and_follows_presence_calls_and_channel_closing() {
    let sim = GenesysSim::start(GenesysSimConfig {
        heartbeat: Duration::from_secs(1),
        closing_grace: Duration::from_secs(8),
        ..GenesysSimConfig::default()
    })
    .await;
    let alice = sim.add_user("Alice Adams", "alice@example.com", "1001");
    let bob = sim.add_user("Bob Brown", "bob@example.com", "1002");
    let carol = sim.add_user("Carol Clark", "carol@example.com", "1003");
    // Nobody in the hub: in the directory only.
    sim.add_user("Zed Zimmer", "zed@example.com", "1099");
    sim.add_org_presence("Lunch walk", "Meal");
    sim.set_presence(&bob, "Busy", "on a deadline");

    let hub = hub().await;
    add_user(
        &hub,
        json!({"username": "alice", "display_name": "Alice", "email": "alice@example.com"}),
    )
    .await;
    add_user(
        &hub,
        json!({"username": "bob", "display_name": "Bob", "email": "Bob@Example.com"}),
    )
    .await;
    // Carol's hub account has another email: mapped by hand, by her Genesys email.
    add_user(
        &hub,
        json!({"username": "carol", "display_name": "Carol", "email": "c.clark@example.org",
               "endpoints": {"gc": "carol@example.com"}}),
    )
    .await;
    create(&hub, "gc", config(&sim, None)).await;

    // Signed in, the directory read, one channel with three topics a user.
    let st = wait_status(&hub, "gc", "up-and-running").await;
    assert!(
        st["status_detail"]
            .as_str()
            .is_some_and(|d| d.contains("3 users on 1 notification channel")),
        "{st}"
    );
    assert_eq!(count(&sim, "POST", "/login/oauth/token", 200), 1);
    let chans = sim.channels();
    assert_eq!(chans.len(), 1, "{chans:?}");
    assert_eq!(chans[0].1.len(), 9, "{chans:?}");
    assert!(
        chans[0]
            .1
            .contains(&format!("v2.users.{alice}.conversations"))
    );
    // Mapped by email: the endpoint is the Genesys user id.
    let ep = wait_endpoint(&hub, &alice, "alice active", |e| e["state"] == "active").await;
    assert_eq!(ep["rich"]["availability"], "available", "{ep}");
    assert_eq!(ep["telephony"]["line"], "idle", "{ep}");
    let ep = wait_endpoint(&hub, &bob, "bob busy", |e| {
        e["rich"]["availability"] == "busy"
    })
    .await;
    assert_eq!(ep["rich"]["note"], "on a deadline", "{ep}");
    assert_eq!(raw(&ep, "systemPresence").as_deref(), Some("BUSY"), "{ep}");
    wait_endpoint(&hub, "carol@example.com", "carol by email", |e| {
        e["state"] == "active" && e["rich"]["availability"] == "available"
    })
    .await;
    let p = hub.get("/api/v1/presence/bob").await;
    assert_eq!(p["rich"]["state"], "busy", "{p}");
    assert_eq!(p["rich"]["source"], "gc", "{p}");
    let _ = carol;

    let mut feed = hub
        .http
        .get(hub.url("/api/v1/feed/sse?users=alice"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status().as_u16(), 200);

    // Presence changes over the WebSocket.
    sim.set_presence(&alice, "Meeting", "weekly sync");
    feed_until(&mut feed, "alice in a meeting", |v| {
        v["username"] == "alice" && v["rich"]["note"] == "weekly sync"
    })
    .await;
    let ep = wait_endpoint(&hub, &alice, "alice in a meeting", |e| {
        e["rich"]["activity"] == "in-a-meeting"
    })
    .await;
    assert_eq!(ep["rich"]["availability"], "busy", "{ep}");
    sim.set_presence(&alice, "Lunch walk", "");
    let ep = wait_endpoint(&hub, &alice, "alice's own presence", |e| {
        e["rich"]["activity"] == json!({"other": "Lunch walk"})
    })
    .await;
    assert_eq!(ep["rich"]["availability"], "away", "{ep}");
    assert_eq!(raw(&ep, "systemPresence").as_deref(), Some("MEAL"), "{ep}");
    sim.set_presence(&alice, "On Queue", "");
    sim.set_routing(&alice, "INTERACTING");
    wait_endpoint(&hub, &alice, "alice interacting on queue", |e| {
        e["rich"]["availability"] == "busy"
            && e["rich"]["activity"] == json!({"other": "interacting"})
    })
    .await;
    sim.set_routing(&alice, "IDLE");
    wait_endpoint(&hub, &alice, "alice idle on queue", |e| {
        e["rich"]["availability"] == "available"
            && e["rich"]["activity"] == json!({"other": "on-queue"})
    })
    .await;

    // A call rings, connects, is held, ends; the feed sees it.
    sim.call_event(&alice, "conv-1", "alerting", false);
    wait_endpoint(&hub, &alice, "ringing", |e| {
        e["telephony"]["line"] == "ringing"
    })
    .await;
    sim.call_event(&alice, "conv-1", "connected", false);
    feed_until(&mut feed, "alice in a call", |v| {
        v["username"] == "alice" && v["telephony"]["line"] == "in-call"
    })
    .await;
    sim.call_event(&alice, "conv-1", "connected", true);
    wait_endpoint(&hub, &alice, "on hold", |e| {
        e["telephony"]["line"] == "on-hold"
    })
    .await;
    sim.call_event(&alice, "conv-1", "disconnected", false);
    feed_until(&mut feed, "alice's call ended", |v| {
        v["username"] == "alice" && v["telephony"]["line"] == "idle"
    })
    .await;

    // The service closes the socket (channel expiry): a new channel takes
    // the topics over, the state is read again; the next channel request
    // is throttled once and retried after its Retry-After.
    let reads_before = count(
        &sim,
        "GET",
        &format!("/api/v2/users/{alice}/presences/purecloud"),
        200,
    );
    sim.throttle(1, 3);
    sim.warn_socket_closing();
    let st = wait_status(&hub, "gc", "throttled").await;
    assert!(
        st["status_detail"]
            .as_str()
            .is_some_and(|d| d.contains("429") && d.contains("3 s")),
        "{st}"
    );
    wait_status(&hub, "gc", "up-and-running").await;
    let log = sim.requests();
    let throttled = log
        .iter()
        .position(|r| r.status == 429)
        .expect("a 429 was answered");
    assert_eq!(log[throttled].target, "/api/v2/notifications/channels");
    assert!(
        log[throttled + 1..]
            .iter()
            .any(|r| r.target == "/api/v2/notifications/channels" && r.status == 200),
        "the channel request was sent again"
    );
    assert_eq!(sim.channels_created(), 2);
    // The old channel is gone after its grace; the new one holds the topics.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while sim.channels().len() != 1 {
        assert!(std::time::Instant::now() < deadline, "{:?}", sim.channels());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let chans = sim.channels();
    assert_eq!(chans[0].1.len(), 9, "{chans:?}");
    assert!(chans[0].2, "the new channel's socket is open");
    // The connector left the old socket itself once the new channel held
    // the topics: the service never had to cut it (no gap).
    assert_eq!(sim.sockets_cut_by_service(), 0);
    assert!(
        count(
            &sim,
            "GET",
            &format!("/api/v2/users/{alice}/presences/purecloud"),
            200
        ) > reads_before,
        "alice's presence was read again after the new channel"
    );
    sim.set_presence(&alice, "Available", "back");
    feed_until(&mut feed, "alice over the new channel", |v| {
        v["username"] == "alice" && v["rich"]["note"] == "back"
    })
    .await;

    // Heartbeats came every second all along; the socket was never replaced for silence.
    assert_eq!(sim.channels_created(), 2);

    // kill -9 and start again: the token comes from kv (no second
    // sign-in), a new channel, the state read again.
    let mut hub = hub;
    hub.restart();
    wait_status(&hub, "gc", "up-and-running").await;
    wait_endpoint(&hub, &alice, "alice after the restart", |e| {
        e["rich"]["note"] == "back"
    })
    .await;
    assert_eq!(count(&sim, "POST", "/login/oauth/token", 200), 1);
    assert_eq!(sim.channels_created(), 3);
    assert_eq!(sim.violations(), Vec::<String>::new());
}

/// A wrong client secret, and a role without the conversations topic's
/// permission: `forbidden`, naming what to fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_and_a_missing_permission_are_forbidden() {
    let sim = GenesysSim::start(GenesysSimConfig::default()).await;
    sim.add_user("Alice Adams", "alice@example.com", "1001");
    let weak = GenesysSim::start(GenesysSimConfig {
        permissions: vec![],
        ..GenesysSimConfig::default()
    })
    .await;
    weak.add_user("Alice Adams", "alice@example.com", "1001");

    let hub = hub().await;
    add_user(
        &hub,
        json!({"username": "alice", "display_name": "Alice", "email": "alice@example.com"}),
    )
    .await;
    create(&hub, "wrong", config(&sim, Some("not-the-secret"))).await;
    let st = wait_status(&hub, "wrong", "forbidden").await;
    let d = st["status_detail"].as_str().unwrap_or_default();
    assert!(
        d.contains("invalid_client") && d.contains("client_id and client_secret"),
        "{st}"
    );
    assert!(
        !d.contains("not-the-secret"),
        "the secret is never shown: {st}"
    );
    assert_eq!(count(&sim, "POST", "/login/oauth/token", 400), 1);
    assert_eq!(
        count(&sim, "GET", "/api/v2/", 200),
        0,
        "nothing was asked without a token"
    );

    create(&hub, "weak", config(&weak, None)).await;
    let st = wait_status(&hub, "weak", "forbidden").await;
    let d = st["status_detail"].as_str().unwrap_or_default();
    assert!(
        d.contains("missing.any.permissions") && d.contains(CONVERSATIONS_PERMISSION),
        "{st}"
    );
    assert!(!hub.log().contains(&sim.config().client_secret));
    assert_eq!(sim.violations(), Vec::<String>::new());
    assert_eq!(weak.violations(), Vec::<String>::new());
}

/// The connector's own tests and the SDK's, under plain CPython with the
/// SDK's test kit (no wasm, no hub): `python3 -m unittest` in each folder.
#[test]
fn the_connector_and_sdk_tests_pass_under_cpython() {
    for dir in ["plugins/genesys-cloud", "sdk/python"] {
        let out = std::process::Command::new("python3")
            .args(["-B", "-m", "unittest", "discover", "-s", "tests", "-t", "."])
            .current_dir(hub_e2e::root().join(dir))
            .output()
            .expect("python3 (3.11 or later) is needed for the Python SDK's tests");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{dir}: python3 -m unittest failed:\n{err}"
        );
        assert!(err.contains("OK"), "{dir}: {err}");
        eprintln!("{dir}: {}", err.lines().rev().nth(2).unwrap_or(""));
    }
}
