//! The RingCentral connector (`plugins/ringcentral`) against the RingCentral
//! simulator (`hub_e2e::rc_sim`), through the real hub binary and its API.
//! Every request the connector sends is checked against the RingCentral
//! OpenAPI description by the simulator; a test whose connector sent an
//! invalid request fails when its simulator is dropped.

use std::time::{Duration, Instant};

use hub_e2e::Hub;
use hub_e2e::graph_sim::{GraphSim, SimConfig};
use hub_e2e::rc_sim::{RateLimits, RcSim, RcSimConfig};
use serde_json::{Value, json};

const ID: &str = "rc";

fn endpoints_path(id: &str) -> String {
    format!("/api/v1/connectors/{id}/endpoints")
}

fn status_path(id: &str) -> String {
    format!("/api/v1/connectors/{id}/status")
}

fn hub() -> Hub {
    Hub::start(&["plugins/ringcentral"], &[])
}

/// A hub on a fixed port whose public URL is that port, so webhook
/// addresses stay right across a restart.
fn hub_with_public_url() -> Hub {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let public = format!("http://127.0.0.1:{port}");
    Hub::start(
        &["plugins/ringcentral"],
        &[
            ("HUB_LISTEN", listen.as_str()),
            ("HUB_PUBLIC_URL", public.as_str()),
        ],
    )
}

/// The connector's configuration for `sim` (JWT sign-in, WebSocket
/// delivery), with `extra` fields on top.
fn config(sim: &RcSim, extra: Value) -> Value {
    let c = sim.config();
    let mut v = json!({
        "server_url": sim.base(),
        "client_id": c.client_id,
        "client_secret": c.client_secret,
        "jwt": c.jwt,
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

async fn create(hub: &Hub, id: &str, config: Value) {
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": id, "plugin": "ringcentral", "config": config})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
}

async fn add_user(hub: &Hub, user: Value) {
    let (s, v) = hub.call("POST", "/api/v1/users", Some(user.clone())).await;
    assert!(s == 200 || s == 201, "POST user {user}: {s} {v}");
}

async fn wait_status(hub: &Hub, id: &str, want: &str) -> Value {
    hub.wait_for(&status_path(id), want, |v| v["status"]["status"] == want)
        .await
}

/// The merged presence of `user` once `f` holds.
async fn wait_user(hub: &Hub, user: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    hub.wait_for(&format!("/api/v1/presence/{user}"), what, f)
        .await
}

/// A hub user with this email and no endpoint: the connector's directory
/// maps them.
async fn add_person(hub: &Hub, name: &str, email: &str) {
    add_user(
        hub,
        json!({"username": name, "display_name": name, "email": email}),
    )
    .await;
}

/// Alice as most tests need her: extension 101 in `sim`, a user of `hub`
/// mapped by email, connector `rc` made with `extra` configuration. Returns
/// her extension id and endpoint once her line shows idle.
async fn with_alice(sim: &RcSim, hub: &Hub, extra: Value) -> (u64, String) {
    let alice = sim.add_extension("101", "Alice Adams", "alice@example.com");
    add_person(hub, "alice", "alice@example.com").await;
    create(hub, ID, config(sim, extra)).await;
    let ep = alice.to_string();
    wait_line(hub, ID, &ep, "idle").await;
    (alice, ep)
}

/// The endpoint once its line shows `line`.
async fn wait_line(hub: &Hub, id: &str, ep: &str, line: &str) -> Value {
    wait_endpoint(hub, id, ep, &format!("line {line} at {id}/{ep}"), |e| {
        e["telephony"]["line"] == line
    })
    .await
}

/// The endpoint as the connector reports it, once `f` holds.
async fn wait_endpoint(
    hub: &Hub,
    id: &str,
    ep: &str,
    what: &str,
    f: impl Fn(&Value) -> bool,
) -> Value {
    let v = hub
        .wait_for(&endpoints_path(id), what, |v| f(&v["endpoints"][ep]))
        .await;
    v["endpoints"][ep].clone()
}

fn raw(ep: &Value, name: &str) -> Option<String> {
    ep["raw"]
        .as_array()?
        .iter()
        .find(|p| p[0] == name)
        .and_then(|p| p[1].as_str().map(str::to_string))
}

async fn until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The body of a do-not-disturb write for all calls.
fn dnd_all() -> Value {
    json!({"action": "set", "availability": "do-not-disturb"})
}

/// A write through the API; returns its id.
async fn write(hub: &Hub, id: &str, ep: &str, body: Value) -> u64 {
    let (s, v) = hub
        .call(
            "POST",
            &format!("/api/v1/connectors/{id}/endpoints/{ep}/presence"),
            Some(body),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    v["id"].as_u64().unwrap()
}

/// The write's record once it has an outcome.
async fn outcome(hub: &Hub, write: u64) -> Value {
    hub.wait_for(&format!("/api/v1/writes/{write}"), "an outcome", |v| {
        v["state"] != "pending"
    })
    .await
}

fn dnd(sim: &RcSim, ext: u64) -> String {
    sim.presence(ext)["dndStatus"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// First state: the directory (two pages), users mapped by email with no
/// endpoint given, each state mapped with its raw values, a manual endpoint
/// by extension number, an unknown number not found; then changes pushed
/// over the WebSocket API: a call rings, connects and ends, DND, a note.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_state_and_changes_over_websocket() {
    let sim = RcSim::start(RcSimConfig::default()).await;
    let alice = sim.add_extension("101", "Alice Adams", "alice@example.com");
    let bob = sim.add_extension("102", "Bob Brown", "bob@example.com");
    let carol = sim.add_extension("103", "Carol Clark", "carol@example.com");
    sim.add_department("800", "Sales queue");
    for i in 0..1100 {
        sim.add_extension(
            &format!("{}", 2000 + i),
            &format!("User {i}"),
            &format!("user{i}@example.com"),
        );
    }
    let call = sim.start_call(alice, "Inbound", false);
    sim.answer_call(&call);
    sim.user_sets_dnd(bob, "DoNotAcceptAnyCalls");
    sim.set_meeting(carol, true);
    sim.set_message(carol, "Back at 3");

    let hub = hub();
    for (name, email) in [
        ("alice", "alice@example.com"),
        ("bob", "Bob@Example.com"),
        ("carol", "carol@example.com"),
    ] {
        add_person(&hub, name, email).await;
    }
    add_user(
        &hub,
        json!({"username": "dave", "display_name": "Dave", "endpoints": {ID: "103"}}),
    )
    .await;
    add_user(
        &hub,
        json!({"username": "erin", "display_name": "Erin", "endpoints": {ID: "999"}}),
    )
    .await;
    create(&hub, ID, config(&sim, json!({}))).await;
    wait_status(&hub, ID, "up-and-running").await;

    let p = wait_user(&hub, "alice", "alice in a call", |v| {
        v["telephony"]["state"] == "busy"
    })
    .await;
    assert_eq!(p["telephony"]["source"], ID, "{p}");
    let ep = wait_line(&hub, ID, &alice.to_string(), "in-call").await;
    assert_eq!(
        raw(&ep, "telephonyStatus").as_deref(),
        Some("CallConnected"),
        "{ep}"
    );
    let ep = wait_endpoint(&hub, ID, &bob.to_string(), "bob's DND", |e| {
        e["telephony"]["do_not_disturb"] == true
    })
    .await;
    assert_eq!(
        raw(&ep, "dndStatus").as_deref(),
        Some("DoNotAcceptAnyCalls"),
        "{ep}"
    );
    let ep = wait_endpoint(&hub, ID, &carol.to_string(), "carol in a meeting", |e| {
        e["rich"]["activity"] == "in-a-meeting"
    })
    .await;
    assert_eq!(ep["rich"]["note"], "Back at 3", "{ep}");
    // Dave watched by the extension number, Erin's number unknown.
    wait_endpoint(&hub, ID, "103", "dave by number", |e| {
        e["rich"]["activity"] == "in-a-meeting"
    })
    .await;
    wait_endpoint(&hub, ID, "999", "erin's number not found", |e| {
        e["state"] == "not-found"
    })
    .await;
    // The whole directory, read page by page.
    let pages = sim
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/extension"))
        .count();
    assert!(pages >= 2, "the directory has two pages at most 1,000 each");

    // Pushed over the WebSocket API.
    assert!(sim.ws_connections() >= 1);
    let call = sim.start_call(bob, "Inbound", false);
    wait_line(&hub, ID, &bob.to_string(), "ringing").await;
    sim.answer_call(&call);
    wait_line(&hub, ID, &bob.to_string(), "in-call").await;
    sim.end_call(&call);
    sim.user_sets_dnd(bob, "TakeAllCalls");
    wait_endpoint(&hub, ID, &bob.to_string(), "bob idle, no DND", |e| {
        e["telephony"]["line"] == "idle" && e["telephony"]["do_not_disturb"] == false
    })
    .await;
    sim.set_message(alice, "On the phone");
    wait_user(&hub, "alice", "alice's note", |v| {
        v["rich"]["note"] == "On the phone"
    })
    .await;
    // No polling: after the first state, presence comes only by push.
    let reads = |sim: &RcSim| {
        sim.requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.ends_with("/presence"))
            .count()
    };
    let before = reads(&sim);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(reads(&sim), before, "presence is pushed, not polled");
    assert_eq!(sim.penalty_resets(), 0);
}

/// A forced disconnect: the connector recovers its WebSocket session with
/// the `wsc` token and gets the events it missed; no presence re-read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_disconnect_recovers_the_session() {
    let sim = RcSim::start(RcSimConfig::default()).await;
    let hub = hub();
    let (alice, ep) = with_alice(&sim, &hub, json!({})).await;
    until("a WebSocket", Duration::from_secs(10), || {
        sim.ws_connections() == 1
    })
    .await;

    assert_eq!(sim.force_disconnect(), 1);
    // Changes while the connector is away.
    let call = sim.start_call(alice, "Outbound", false);
    sim.answer_call(&call);
    wait_line(&hub, ID, &ep, "in-call").await;
    until("a recovery", Duration::from_secs(10), || {
        sim.ws_recoveries().iter().any(|r| r == "Successful")
    })
    .await;
    assert_eq!(sim.ws_connections(), 1);
    sim.end_call(&call);
    wait_line(&hub, ID, &ep, "idle").await;
}

/// WebHook delivery: the validation handshake, deliveries checked by the
/// verification token (a forged one changes nothing), renewal before the
/// granted lifetime ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_delivery_with_validation_and_renewal() {
    let sim = RcSim::start(RcSimConfig {
        max_expires_in_s: 8,
        ..RcSimConfig::default()
    })
    .await;
    let hub = hub_with_public_url();
    let (alice, ep) = with_alice(&sim, &hub, json!({"delivery": "webhook"})).await;
    until("a webhook subscription", Duration::from_secs(10), || {
        sim.subscriptions()
            .iter()
            .any(|s| s.transport == "WebHook" && s.active)
    })
    .await;
    assert_eq!(sim.ws_connections(), 0);

    let call = sim.start_call(alice, "Inbound", true);
    sim.answer_call(&call);
    wait_line(&hub, ID, &ep, "in-call").await;
    assert!(sim.deliveries().iter().all(|d| d.status == 200));

    // A forged notification: no token.
    let hook = sim.deliveries()[0].address.clone();
    let forged = json!({"uuid": "x", "event": format!("/restapi/v1.0/account/~/extension/{alice}/presence?detailedTelephonyState=true"),
        "timestamp": "2026-11-29T10:00:00.000Z", "subscriptionId": "forged", "ownerId": "1",
        "body": {"extensionId": alice.to_string(), "telephonyStatus": "NoCall", "sequence": 999999,
            "presenceStatus": "Available", "userStatus": "Available", "dndStatus": "TakeAllCalls"}});
    let r = reqwest::Client::new()
        .post(&hook)
        .json(&forged)
        .send()
        .await
        .unwrap();
    assert!(
        matches!(r.status().as_u16(), 401 | 403),
        "a delivery without the verification token is refused: {}",
        r.status()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let e = hub.get(&endpoints_path(ID)).await;
    assert_eq!(e["endpoints"][&ep]["telephony"]["line"], "in-call", "{e}");

    // Renewed before the granted 8 s run out, and still delivering.
    until("a renewal", Duration::from_secs(15), || {
        sim.subscriptions()
            .iter()
            .any(|s| s.active && s.renewals >= 1)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(9)).await;
    sim.end_call(&call);
    wait_line(&hub, ID, &ep, "idle").await;
}

/// Two RingCentral accounts feed one hub, each user mapped by email to the
/// account that has them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_accounts_at_once() {
    let east = RcSim::start(RcSimConfig {
        account_id: "111000".into(),
        ..RcSimConfig::default()
    })
    .await;
    let west = RcSim::start(RcSimConfig {
        account_id: "222000".into(),
        client_id: "west-client".into(),
        ..RcSimConfig::default()
    })
    .await;
    let alice = east.add_extension("101", "Alice", "alice@east.example.com");
    let bob = west.add_extension("101", "Bob", "bob@west.example.com");
    let hub = hub();
    add_person(&hub, "alice", "alice@east.example.com").await;
    add_person(&hub, "bob", "bob@west.example.com").await;
    create(&hub, "east", config(&east, json!({}))).await;
    create(&hub, "west", config(&west, json!({}))).await;
    wait_status(&hub, "east", "up-and-running").await;
    wait_status(&hub, "west", "up-and-running").await;
    let a = east.start_call(alice, "Inbound", false);
    east.answer_call(&a);
    let b = west.start_call(bob, "Inbound", false);
    wait_user(&hub, "alice", "alice in a call at east", |v| {
        v["telephony"]["state"] == "busy" && v["telephony"]["source"] == "east"
    })
    .await;
    wait_user(&hub, "bob", "bob ringing at west", |v| {
        v["telephony"]["source"] == "west" && v["telephony"]["state"] != "available"
    })
    .await;
    west.end_call(&b);
    // Each user comes from the account that has them only.
    for (user, instance) in [("alice", "east"), ("bob", "west")] {
        let p = hub.get(&format!("/api/v1/presence/{user}")).await;
        let sources: Vec<&str> = p["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["instance"].as_str().unwrap())
            .collect();
        assert_eq!(sources, [instance], "{p}");
    }
}

/// DND written and restored through the API with outcomes: all calls,
/// queue calls only; a restore after the person changed it leaves their
/// choice and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnd_write_back_and_restore_with_outcomes() {
    let sim = RcSim::start(RcSimConfig::default()).await;
    let hub = hub();
    let (alice, ep) = with_alice(&sim, &hub, json!({})).await;
    let plugin = hub.get("/api/v1/plugins/ringcentral").await;
    assert!(
        plugin
            .to_string()
            .contains("\"dnd_scopes\":[\"all-calls\",\"queue-calls\"]"),
        "{plugin}"
    );

    let w = write(&hub, ID, &ep, dnd_all()).await;
    assert_eq!(outcome(&hub, w).await["state"], "applied");
    assert_eq!(dnd(&sim, alice), "DoNotAcceptAnyCalls");
    wait_endpoint(&hub, ID, &ep, "DND shown", |e| {
        e["telephony"]["do_not_disturb"] == true
    })
    .await;
    let w = write(&hub, ID, &ep, json!({"action": "restore"})).await;
    assert_eq!(outcome(&hub, w).await["state"], "restored");
    assert_eq!(dnd(&sim, alice), "TakeAllCalls");

    // Queue calls only.
    let w = write(
        &hub,
        ID,
        &ep,
        json!({"action": "set", "availability": "do-not-disturb", "dnd_scope": "queue-calls"}),
    )
    .await;
    assert_eq!(outcome(&hub, w).await["state"], "applied");
    assert_eq!(dnd(&sim, alice), "DoNotAcceptDepartmentCalls");
    // The person takes over: restore leaves their choice.
    sim.user_sets_dnd(alice, "DoNotAcceptAnyCalls");
    wait_endpoint(&hub, ID, &ep, "alice's own DND", |e| {
        raw(e, "dndStatus").as_deref() == Some("DoNotAcceptAnyCalls")
    })
    .await;
    let w = write(&hub, ID, &ep, json!({"action": "restore"})).await;
    assert_eq!(outcome(&hub, w).await["state"], "user-changed");
    assert_eq!(dnd(&sim, alice), "DoNotAcceptAnyCalls");
    let bodies = sim.dnd_writes(alice);
    assert_eq!(bodies.len(), 3, "set, restore, set: {bodies:?}");
}

/// "Reflect DND": DND in RingCentral while the user is in a RingCentral
/// call (not while it only rings), back to what they had when it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflect_dnd_during_a_call() {
    let sim = RcSim::start(RcSimConfig::default()).await;
    let hub = hub();
    let (alice, ep) = with_alice(&sim, &hub, json!({"reflect_dnd": true})).await;
    let call = sim.start_call(alice, "Inbound", false);
    wait_line(&hub, ID, &ep, "ringing").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        dnd(&sim, alice),
        "TakeAllCalls",
        "no DND while it only rings"
    );
    sim.answer_call(&call);
    until("DND during the call", Duration::from_secs(10), || {
        dnd(&sim, alice) == "DoNotAcceptAnyCalls"
    })
    .await;
    sim.end_call(&call);
    until("DND lifted after the call", Duration::from_secs(10), || {
        dnd(&sim, alice) == "TakeAllCalls"
    })
    .await;
    assert_eq!(sim.dnd_writes(alice).len(), 2);
}

/// "Force accept queue calls": switched back on when a user switches it
/// off, except for an excluded user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_accept_queue_calls_with_an_exclusion() {
    let sim = RcSim::start(RcSimConfig::default()).await;
    let alice = sim.add_extension("101", "Alice Adams", "alice@example.com");
    let bob = sim.add_extension("102", "Bob Brown", "bob@example.com");
    let hub = hub();
    add_person(&hub, "alice", "alice@example.com").await;
    add_person(&hub, "bob", "bob@example.com").await;
    create(
        &hub,
        ID,
        config(
            &sim,
            json!({"force_accept_queue_calls": true, "force_accept_exclusions": "bob@example.com"}),
        ),
    )
    .await;
    for ext in [alice, bob] {
        wait_line(&hub, ID, &ext.to_string(), "idle").await;
    }
    sim.user_sets_accept_queue_calls(alice, false);
    sim.user_sets_accept_queue_calls(bob, false);
    until(
        "alice's queue calls on again",
        Duration::from_secs(10),
        || dnd(&sim, alice) == "TakeAllCalls",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        dnd(&sim, bob),
        "DoNotAcceptDepartmentCalls",
        "bob is excluded"
    );
    assert!(sim.dnd_writes(bob).is_empty());
}

/// A 429 stops the group for the whole penalty window, also across a
/// crash restart of the hub; the status shows `throttled` meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_with_the_penalty_kept_across_a_restart() {
    let sim = RcSim::start(RcSimConfig::default()).await;
    let mut hub = hub();
    let (alice, ep) = with_alice(&sim, &hub, json!({})).await;

    // A write meets the 429 (PUT presence is in the Medium group).
    sim.throttle_next("Medium", 6);
    let thrown = Instant::now();
    let w = write(&hub, ID, &ep, dnd_all()).await;
    let o = outcome(&hub, w).await;
    assert_eq!(o["state"], "failed", "{o}");
    assert_eq!(o["retryable"], true, "{o}");
    assert_eq!(o["platform_status"], 429, "{o}");
    wait_status(&hub, ID, "throttled").await;
    // A crash restart inside the window: the connector does not call the
    // Medium group until it is over.
    hub.restart();
    let w = write(&hub, ID, &ep, dnd_all()).await;
    let o = outcome(&hub, w).await;
    assert!(
        o["state"] == "applied" && thrown.elapsed() >= Duration::from_secs(6)
            || o["state"] == "failed" && o["retry_after_ms"].as_u64().is_some(),
        "{o}"
    );
    assert_eq!(
        sim.penalty_resets(),
        0,
        "no request inside the penalty window"
    );
    until(
        "the write after the penalty",
        Duration::from_secs(15),
        || dnd(&sim, alice) == "DoNotAcceptAnyCalls" || thrown.elapsed() > Duration::from_secs(7),
    )
    .await;
    wait_status(&hub, ID, "up-and-running").await;
    assert_eq!(sim.penalty_resets(), 0);
}

/// Authorization-code sign-in; the access token expires and is refreshed
/// with the stored refresh token across a crash restart (no new login); a
/// revoked session asks for a login again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_refresh_across_a_hub_restart() {
    // Six-second access tokens: with RingCentral's five sign-ins a minute
    // (the Auth group) this test would wait on the budget, so allow more.
    let sim = RcSim::start(RcSimConfig {
        access_ttl_s: 6,
        limits: RateLimits {
            auth: 30,
            ..RateLimits::default()
        },
        ..RcSimConfig::default()
    })
    .await;
    let alice = sim.add_extension("101", "Alice Adams", "alice@example.com");
    let mut hub = hub_with_public_url();
    add_person(&hub, "alice", "alice@example.com").await;
    create(
        &hub,
        ID,
        config(
            &sim,
            json!({"auth_mode": "authorization-code", "jwt": null}),
        ),
    )
    .await;
    let st = wait_status(&hub, ID, "login-required").await;
    let url = st["status"]["login_step"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        url.starts_with(&format!("{}/restapi/oauth/authorize?", sim.base())),
        "{url}"
    );
    // The operator signs in: the simulator consents at once and redirects
    // to the hub's callback.
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(
        r.status().as_u16(),
        200,
        "{}",
        r.text().await.unwrap_or_default()
    );
    wait_status(&hub, ID, "up-and-running").await;
    assert_eq!(sim.grants("authorization_code"), 1);
    let ep = alice.to_string();
    wait_line(&hub, ID, &ep, "idle").await;

    hub.restart();
    // Past the access token's life: refreshed, not signed in again.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let call = sim.start_call(alice, "Inbound", false);
    sim.answer_call(&call);
    wait_line(&hub, ID, &ep, "in-call").await;
    let w = write(&hub, ID, &ep, dnd_all()).await;
    assert_eq!(outcome(&hub, w).await["state"], "applied");
    assert!(sim.grants("refresh_token") >= 1);
    assert_eq!(sim.grants("authorization_code"), 1, "no second login");
    wait_status(&hub, ID, "up-and-running").await;

    sim.revoke_all_tokens();
    let st = wait_status(&hub, ID, "login-required").await;
    assert!(st["status"]["login_step"]["url"].is_string(), "{st}");
}

/// The simulator's OpenAPI check bites: a malformed request gets a 400 and
/// is recorded as a violation (so a connector sending one fails its test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_check_fails_a_malformed_request() {
    let sim = RcSim::start(RcSimConfig::default()).await;
    let alice = sim.add_extension("101", "Alice Adams", "alice@example.com");
    let http = reqwest::Client::new();
    let token = sim.jwt_sign_in().await;
    let bearer = token["access_token"].as_str().unwrap();
    let url = format!(
        "{}/restapi/v1.0/account/~/extension/{alice}/presence",
        sim.base()
    );
    let good = http
        .put(&url)
        .bearer_auth(bearer)
        .json(&json!({"dndStatus": "DoNotAcceptAnyCalls"}))
        .send()
        .await
        .unwrap();
    assert_eq!(good.status().as_u16(), 200);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    let bad = http
        .put(&url)
        .bearer_auth(bearer)
        .json(&json!({"dndStatus": "Nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let v = sim.take_violations();
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].contains("Nope"), "{v:?}");
    assert_eq!(dnd(&sim, alice), "DoNotAcceptAnyCalls", "nothing changed");
}

/// The hub's sync (issue 12) with RingCentral beside Teams, for alice on
/// both (one email): a RingCentral call sets DND in Teams and its end lifts
/// it; a Teams meeting sets DND in RingCentral (`DoNotAcceptAnyCalls`) and
/// its end restores what alice had. With "reflect DND" on, the connector's
/// own DND during the call is marked as its rule, so the sync never takes
/// it for alice's change: nothing is set back, nothing loops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_with_teams_both_ways() {
    const UPN: &str = "alice@contoso.onmicrosoft.com";
    let rc = RcSim::start(RcSimConfig::default()).await;
    let ext = rc.add_extension("101", "Alice Adams", UPN);
    let graph = GraphSim::start(SimConfig::default()).await;
    let alice = graph.add_user(UPN);
    graph.set_presence(&alice, "Available", "Available");
    let hub = Hub::start(&["plugins/ringcentral", "plugins/teams-graph"], &[]);
    let mut rules = hub.get("/api/v1/settings/rules").await;
    rules["sync"]["everyone"] = json!(true);
    let (s, v) = hub
        .call("PUT", "/api/v1/settings/rules", Some(rules.clone()))
        .await;
    assert_eq!(s, 200, "{v}");
    add_user(
        &hub,
        json!({"username": "alice", "display_name": "Alice", "email": UPN, "teams_upn": UPN}),
    )
    .await;
    create(&hub, ID, config(&rc, json!({"reflect_dnd": true}))).await;
    let c = graph.config();
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": "teams", "plugin": "teams-graph", "config": {
                "tenant_id": c.tenant, "client_id": c.client_id, "client_secret": c.client_secret,
                "authority": graph.authority(), "graph_base": graph.graph_base(), "poll_seconds": 1,
            }})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let ep = ext.to_string();
    wait_line(&hub, ID, &ep, "idle").await;
    wait_endpoint(&hub, "teams", UPN, "alice available in Teams", |e| {
        e["rich"]["availability"] == "available"
    })
    .await;
    let hub_session = |graph: &GraphSim| {
        let client = graph.config().client_id;
        graph
            .sessions(&alice)
            .iter()
            .any(|s| s.session_id == client && s.availability == "DoNotDisturb")
    };

    // A RingCentral call: DND in Teams, and the connector's reflected DND
    // in RingCentral.
    let call = rc.start_call(ext, "Inbound", false);
    rc.answer_call(&call);
    until("DND in Teams", Duration::from_secs(20), || {
        hub_session(&graph)
    })
    .await;
    until("the reflected DND", Duration::from_secs(10), || {
        dnd(&rc, ext) == "DoNotAcceptAnyCalls"
    })
    .await;
    let p = hub
        .wait_for("/api/v1/presence/alice", "the reflected DND seen", |v| {
            v["sources"].as_array().is_some_and(|a| {
                a.iter().any(|s| {
                    s["instance"] == ID
                        && s["observed"]["telephony"]["do_not_disturb"] == true
                        && s["observed"]["origin"]["kind"] == "connector-rule"
                })
            })
        })
        .await;
    assert!(p.to_string().contains("reflect-dnd"), "{p:#}");
    rc.end_call(&call);
    until("DND in Teams lifted", Duration::from_secs(20), || {
        graph.sessions(&alice).is_empty()
    })
    .await;
    until("the reflected DND lifted", Duration::from_secs(10), || {
        dnd(&rc, ext) == "TakeAllCalls"
    })
    .await;

    // A Teams meeting: DND in RingCentral, restored after.
    graph.set_presence(&alice, "Busy", "InAMeeting");
    until("DND in RingCentral", Duration::from_secs(20), || {
        dnd(&rc, ext) == "DoNotAcceptAnyCalls"
    })
    .await;
    let w = hub
        .wait_for(
            "/api/v1/presence/alice",
            "the hub holds DND in RingCentral",
            |v| {
                v["sync"]["platforms"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|p| p["instance"] == ID && p["hold"] == "held"))
            },
        )
        .await;
    let write_id = w["sync"]["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["instance"] == ID)
        .unwrap()["write_id"]
        .as_u64()
        .unwrap();
    assert_eq!(outcome(&hub, write_id).await["state"], "applied");
    graph.set_presence(&alice, "Available", "Available");
    until("DND in RingCentral lifted", Duration::from_secs(20), || {
        dnd(&rc, ext) == "TakeAllCalls"
    })
    .await;
    hub.wait_for("/api/v1/presence/alice", "sync at rest", |v| {
        v["sync"]["platforms"]
            .as_array()
            .is_some_and(|a| a.iter().all(|p| p["hold"] == "none"))
    })
    .await;
    // Nothing set back, nothing looped: two reflected writes and the hub's
    // set and restore.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let events = hub.get("/api/v1/events?user=alice&limit=1000").await;
    assert!(!events.to_string().contains("set back"), "{events:#}");
    let puts = rc.dnd_writes(ext);
    assert_eq!(puts.len(), 4, "{puts:#?}");
}

/// What an operator sees when something is wrong: a wrong client secret
/// names the field, an unreachable server is a connection error, an
/// extension the app may not read is access-denied naming the permission.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_an_operator_sees() {
    let sim = RcSim::start(RcSimConfig::default()).await;
    let alice = sim.add_extension("101", "Alice Adams", "alice@example.com");
    let bob = sim.add_extension("102", "Bob Brown", "bob@example.com");
    sim.refuse_presence(bob, true);
    let hub = hub();
    add_person(&hub, "alice", "alice@example.com").await;
    add_person(&hub, "bob", "bob@example.com").await;

    create(
        &hub,
        "wrong-secret",
        config(&sim, json!({"client_secret": "not-the-secret"})),
    )
    .await;
    let st = wait_status(&hub, "wrong-secret", "credentials-not-found").await;
    let detail = st["status"]["status_detail"].as_str().unwrap_or_default();
    assert!(detail.contains("client_secret"), "{st}");
    assert!(
        !st.to_string().contains("not-the-secret"),
        "the secret is never shown: {st}"
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    create(
        &hub,
        "unreachable",
        config(
            &sim,
            json!({"server_url": format!("http://127.0.0.1:{port}")}),
        ),
    )
    .await;
    wait_status(&hub, "unreachable", "connection-error").await;

    create(&hub, ID, config(&sim, json!({}))).await;
    wait_endpoint(&hub, ID, &alice.to_string(), "alice active", |e| {
        e["state"] == "active"
    })
    .await;
    let e = wait_endpoint(&hub, ID, &bob.to_string(), "bob refused", |e| {
        e["state"] == "access-denied"
    })
    .await;
    assert!(e.to_string().contains("ReadPresence"), "{e}");
}
