//! The Teams connector (`plugins/teams-graph`) against the Graph simulator,
//! through the real hub binary and its API.

use std::time::{Duration, Instant};

use hub_e2e::Hub;
use hub_e2e::graph_sim::{GraphSim, SimConfig};
use serde_json::{Value, json};

const ID: &str = "teams";

fn status_path(id: &str) -> String {
    format!("/api/v1/connectors/{id}/status")
}

fn endpoints_path(id: &str) -> String {
    format!("/api/v1/connectors/{id}/endpoints")
}

fn rich(v: &Value, ep: &str) -> Value {
    v["endpoints"][ep]["rich"].clone()
}

fn raw(v: &Value, ep: &str, name: &str) -> Option<String> {
    v["endpoints"][ep]["raw"]
        .as_array()?
        .iter()
        .find(|p| p[0] == name)
        .and_then(|p| p[1].as_str().map(str::to_string))
}

/// A hub on a fixed port, so a notification URL stays right across a
/// restart.
fn hub_on_fixed_port() -> Hub {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    Hub::start(&["plugins/teams-graph"], &[("HUB_LISTEN", listen.as_str())])
}

fn hub() -> Hub {
    Hub::start(&["plugins/teams-graph"], &[])
}

/// Configuration for the simulator, with `extra` fields on top.
fn config(sim: &GraphSim, extra: Value) -> Value {
    let c = sim.config();
    let mut v = json!({
        "tenant_id": c.tenant,
        "client_id": c.client_id,
        "client_secret": c.client_secret,
        "authority": sim.authority(),
        "graph_base": sim.graph_base(),
        "poll_seconds": 1,
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

async fn create(hub: &Hub, id: &str, config: Value, watches: &[String]) {
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": id, "plugin": "teams-graph", "config": config, "watches": watches})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
}

async fn wait_status(hub: &Hub, id: &str, want: &str) -> Value {
    hub.wait_for(&status_path(id), want, |v| v["status"]["status"] == want)
        .await
}

/// Device-code sign-in: the login step shows the simulator's code; the
/// service account signs in; the connector comes up.
async fn device_sign_in(hub: &Hub, sim: &GraphSim, id: &str) {
    let st = wait_status(hub, id, "login-required").await;
    let step = &st["status"]["login_step"];
    let code = step["user_code"].as_str().expect("a user code is shown");
    assert!(sim.user_codes().contains(&code.to_string()), "{st}");
    assert_eq!(step["url"], format!("{}/devicelogin", sim.base));
    assert!(step["message"].as_str().unwrap().contains(code), "{st}");
    assert!(step["expires_at_ms"].as_u64().is_some(), "{st}");
    assert_eq!(sim.approve_device_codes(), 1);
    let st = wait_status(hub, id, "up-and-running").await;
    assert!(st["status"]["login_step"].is_null(), "{st}");
}

fn notify_url(hub: &Hub, id: &str) -> String {
    hub.url(&format!("/hooks/{id}/notify"))
}

/// First state of 700 watched users comes from getPresencesByUserId in
/// batches of at most 650; Teams values map to the normalized model with
/// the raw values kept; unknown users are not found; without a notification
/// URL the connector polls, says so, and picks up changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_state_by_batch_read_then_polling() {
    let sim = GraphSim::start(SimConfig::default()).await;
    let mut watches = Vec::new();
    for i in 0..700 {
        let id = sim.add_user(&format!("user{i}@contoso.onmicrosoft.com"));
        sim.set_presence(&id, "Available", "Available");
        watches.push(id);
    }
    let cases = [
        (
            "alice@contoso.onmicrosoft.com",
            "Busy",
            "InACall",
            "busy",
            json!("in-a-call"),
        ),
        (
            "bob@contoso.onmicrosoft.com",
            "Busy",
            "Busy",
            "busy",
            Value::Null,
        ),
        (
            "carol@contoso.onmicrosoft.com",
            "DoNotDisturb",
            "Presenting",
            "do-not-disturb",
            json!("presenting"),
        ),
        (
            "dave@contoso.onmicrosoft.com",
            "BeRightBack",
            "BeRightBack",
            "away",
            json!("be-right-back"),
        ),
        (
            "erin@contoso.onmicrosoft.com",
            "Offline",
            "OffWork",
            "offline",
            json!("off-work"),
        ),
        (
            "frank@contoso.onmicrosoft.com",
            "AvailableIdle",
            "Available",
            "available",
            json!("inactive"),
        ),
        (
            "grace@contoso.onmicrosoft.com",
            "Busy",
            "InAConferenceCall",
            "busy",
            json!("in-a-conference"),
        ),
        (
            "heidi@contoso.onmicrosoft.com",
            "Busy",
            "InAMeeting",
            "busy",
            json!("in-a-meeting"),
        ),
        (
            "ivan@contoso.onmicrosoft.com",
            "Available",
            "Focusing",
            "available",
            json!({"other": "Focusing"}),
        ),
        (
            "judy@contoso.onmicrosoft.com",
            "PresenceUnknown",
            "PresenceUnknown",
            "unknown",
            Value::Null,
        ),
        // As Microsoft's current pages list them: camelCase, with the
        // conversation in the availability.
        (
            "kim@contoso.onmicrosoft.com",
            "inACall",
            "busy",
            "busy",
            json!("in-a-call"),
        ),
        (
            "leo@contoso.onmicrosoft.com",
            "inAMeeting",
            "inAMeeting",
            "busy",
            json!("in-a-meeting"),
        ),
        (
            "mia@contoso.onmicrosoft.com",
            "presenting",
            "doNotDisturb",
            "do-not-disturb",
            json!("presenting"),
        ),
        (
            "ned@contoso.onmicrosoft.com",
            "focusing",
            "focusing",
            "do-not-disturb",
            json!({"other": "Focusing"}),
        ),
        (
            "oli@contoso.onmicrosoft.com",
            "beRightBack",
            "beRightBack",
            "away",
            json!("be-right-back"),
        ),
        (
            "pat@contoso.onmicrosoft.com",
            "doNotDisturb",
            "urgentInterruptionsOnly",
            "do-not-disturb",
            json!({"other": "UrgentInterruptionsOnly"}),
        ),
        // Unknown values stay visible in Graph's words.
        (
            "quinn@contoso.onmicrosoft.com",
            "Sleeping",
            "",
            "unknown",
            json!({"other": "Sleeping"}),
        ),
    ];
    for (upn, a, act, ..) in &cases {
        sim.add_user(upn);
        sim.set_presence(upn, a, act);
        watches.push(upn.to_string());
    }
    watches.push("nobody@contoso.onmicrosoft.com".into());
    watches.push("0badc0de-0000-4000-8000-000000000000".into());
    let hub = hub();
    let started = Instant::now();
    create(&hub, ID, config(&sim, json!({})), &watches).await;
    let known = 700 + cases.len();
    let v = hub
        .wait_for(&endpoints_path(ID), "all users active", |v| {
            watches[..known]
                .iter()
                .all(|w| v["endpoints"][w]["state"] == "active")
        })
        .await;
    let first_state = started.elapsed();
    for (upn, a, act, want, want_act) in &cases {
        assert_eq!(
            rich(&v, upn)["availability"],
            *want,
            "{upn}: {}",
            rich(&v, upn)
        );
        assert_eq!(
            rich(&v, upn)["activity"],
            *want_act,
            "{upn}: {}",
            rich(&v, upn)
        );
        assert_eq!(raw(&v, upn, "availability").as_deref(), Some(*a));
        assert_eq!(raw(&v, upn, "activity").as_deref(), Some(*act));
        assert_eq!(raw(&v, upn, "id"), Some(sim.id_of(upn)));
    }
    assert_eq!(rich(&v, &watches[0])["availability"], "available");
    let v = hub
        .wait_for(&endpoints_path(ID), "unknown users not found", |v| {
            v["endpoints"]["nobody@contoso.onmicrosoft.com"]["state"] == "not-found"
                && v["endpoints"]["0badc0de-0000-4000-8000-000000000000"]["state"] == "not-found"
        })
        .await;
    assert!(rich(&v, "nobody@contoso.onmicrosoft.com").is_null());
    // Batches: never more than 650 ids, the first read used full batches.
    let reads: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|l| l.path.ends_with("/getPresencesByUserId"))
        .collect();
    assert!(
        reads.iter().all(|l| l.status == 200 && l.ids <= 650),
        "{reads:?}"
    );
    assert!(reads.iter().any(|l| l.ids == 650), "{reads:?}");
    let st = wait_status(&hub, ID, "up-and-running").await;
    let detail = st["status"]["status_detail"].as_str().unwrap();
    assert!(
        detail.contains("polling") && detail.contains("no notification URL"),
        "{detail}"
    );
    // A change is picked up by the poll.
    sim.set_presence("bob@contoso.onmicrosoft.com", "Away", "Away");
    hub.wait_for(&endpoints_path(ID), "bob away", |v| {
        rich(v, "bob@contoso.onmicrosoft.com")["availability"] == "away"
    })
    .await;
    // UPNs were looked up in JSON batches of at most 20, never one by one,
    // and the unknown one only once: a refused look-up waits a minute,
    // not a poll.
    let log = sim.requests();
    assert!(
        log.iter()
            .filter(|l| l.path.starts_with("/v1.0/users/"))
            .all(|l| l.in_batch),
        "a look-up outside a batch"
    );
    let batches: Vec<_> = log.iter().filter(|l| l.path == "/v1.0/$batch").collect();
    assert!(!batches.is_empty());
    assert!(
        batches.iter().all(|l| l.status == 200 && l.ids <= 20),
        "{batches:?}"
    );
    let nobody = log
        .iter()
        .filter(|l| l.path.contains("/users/nobody@"))
        .count();
    assert_eq!(nobody, 1, "the unknown UPN was looked up again at once");
    eprintln!(
        "first state of {} users in {:?} with {} batch reads",
        watches.len(),
        first_state,
        reads.len()
    );
}

/// Device-code sign-in, then a subscription created through the validation
/// handshake against the hub's webhook; changes arrive by notification (the
/// poll is an hour); a notification with a wrong clientState is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_by_notification_after_device_code_sign_in() {
    let sim = GraphSim::start(SimConfig::default()).await;
    let alice = sim.add_user("alice@contoso.onmicrosoft.com");
    let bob = sim.add_user("bob@contoso.onmicrosoft.com");
    sim.set_presence(&alice, "Available", "Available");
    let hub = hub();
    let cfg = config(
        &sim,
        json!({
            "auth_flow": "device-code",
            "client_secret": null,
            "notification_url": notify_url(&hub, ID),
            "poll_seconds": 3600,
        }),
    );
    create(
        &hub,
        ID,
        cfg,
        &["alice@contoso.onmicrosoft.com".into(), bob.clone()],
    )
    .await;
    device_sign_in(&hub, &sim, ID).await;
    let st = hub
        .wait_for(&status_path(ID), "notifications", |v| {
            v["status"]["status_detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("2 users by change notification"))
        })
        .await;
    assert_eq!(st["status"]["status"], "up-and-running");
    let subs = sim.subscriptions();
    assert_eq!(subs.len(), 1, "{subs:?}");
    assert_eq!(subs[0].ids, 2);
    assert_eq!(subs[0].notification_url, notify_url(&hub, ID));
    hub.wait_for(&endpoints_path(ID), "alice available", |v| {
        rich(v, "alice@contoso.onmicrosoft.com")["availability"] == "available"
    })
    .await;
    let t = Instant::now();
    sim.set_presence(&alice, "Busy", "InACall");
    let v = hub
        .wait_for(&endpoints_path(ID), "alice in a call", |v| {
            rich(v, "alice@contoso.onmicrosoft.com")["activity"] == "in-a-call"
        })
        .await;
    let latency = t.elapsed();
    assert_eq!(
        rich(&v, "alice@contoso.onmicrosoft.com")["availability"],
        "busy"
    );
    sim.set_presence(&bob, "DoNotDisturb", "Presenting");
    hub.wait_for(&endpoints_path(ID), "bob presenting", |v| {
        rich(v, &bob)["activity"] == "presenting"
    })
    .await;
    // Graph's deliveries were accepted with 202.
    let deliveries = sim.deliveries();
    assert!(deliveries.len() >= 2, "{deliveries:?}");
    assert!(
        deliveries.iter().all(|d| d.status == Some(202)),
        "{deliveries:?}"
    );
    // A forged notification: right subscription id, wrong clientState.
    let forged = json!({"value": [{
        "subscriptionId": subs[0].id,
        "clientState": "guessed",
        "changeType": "updated",
        "resource": format!("communications/presences/{alice}"),
        "resourceData": {"id": alice},
    }]});
    let before = sim.requests().len();
    let resp = hub
        .http
        .post(notify_url(&hub, ID))
        .json(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reads_after = sim.requests()[before..]
        .iter()
        .filter(|l| l.path.ends_with("/getPresencesByUserId"))
        .count();
    assert_eq!(reads_after, 0, "a forged notification caused a read");
    eprintln!("notification to hub state: {latency:?}");
}

/// With subscriptions granted for 3 s, the connector renews each before it
/// runs out: the same subscription lives on and keeps delivering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_renewed_before_expiry_with_a_short_clock() {
    let sim = GraphSim::start(SimConfig {
        subscription_lifetime: Duration::from_secs(3),
        ..SimConfig::default()
    })
    .await;
    let alice = sim.add_user("alice@contoso.onmicrosoft.com");
    sim.set_presence(&alice, "Available", "Available");
    let hub = hub();
    let cfg = config(
        &sim,
        json!({
            "auth_flow": "device-code",
            "notification_url": notify_url(&hub, ID),
            "poll_seconds": 3600,
        }),
    );
    create(&hub, ID, cfg, std::slice::from_ref(&alice)).await;
    device_sign_in(&hub, &sim, ID).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while sim.subscriptions().is_empty() {
        assert!(Instant::now() < deadline, "no subscription");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = sim.subscriptions()[0].clone();
    // Three lifetimes.
    tokio::time::sleep(Duration::from_secs(9)).await;
    let subs = sim.subscriptions();
    assert_eq!(subs.len(), 1, "{subs:?}");
    assert_eq!(subs[0].id, first.id, "renewed, not re-created");
    assert!(!subs[0].expired, "{subs:?}");
    assert!(subs[0].renewals >= 2, "{subs:?}");
    let patches: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|l| l.method == "PATCH")
        .collect();
    assert!(patches.iter().all(|l| l.status == 200), "{patches:?}");
    sim.set_presence(&alice, "Away", "Away");
    hub.wait_for(&endpoints_path(ID), "alice away", |v| {
        rich(v, &alice)["availability"] == "away"
    })
    .await;
    eprintln!("{} renewals in 9 s of a 3 s subscription", subs[0].renewals);
}

/// Lifecycle notifications: reauthorizationRequired is answered with a fresh
/// token and `reauthorize`; missed with a re-read; subscriptionRemoved with
/// a new subscription that delivers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_notifications_reauthorize_reread_and_recreate() {
    let sim = GraphSim::start(SimConfig::default()).await;
    let alice = sim.add_user("alice@contoso.onmicrosoft.com");
    sim.set_presence(&alice, "Available", "Available");
    let hub = hub();
    let cfg = config(
        &sim,
        json!({
            "auth_flow": "device-code",
            "notification_url": notify_url(&hub, ID),
            "poll_seconds": 3600,
        }),
    );
    create(&hub, ID, cfg, std::slice::from_ref(&alice)).await;
    device_sign_in(&hub, &sim, ID).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while sim.subscriptions().is_empty() {
        assert!(Instant::now() < deadline, "no subscription");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = sim.subscriptions()[0].id.clone();

    // reauthorizationRequired: refresh the token, then reauthorize.
    let refreshes = sim.grants("refresh_token");
    assert_eq!(sim.lifecycle("reauthorizationRequired"), 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = &sim.subscriptions()[0];
        if s.reauthorizations == 1 && !s.paused {
            break;
        }
        assert!(Instant::now() < deadline, "not reauthorized: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(sim.grants("refresh_token") > refreshes, "no fresh token");
    sim.set_presence(&alice, "Busy", "InAMeeting");
    hub.wait_for(&endpoints_path(ID), "alice in a meeting", |v| {
        rich(v, &alice)["activity"] == "in-a-meeting"
    })
    .await;

    // missed: re-read.
    let reads = |sim: &GraphSim| {
        sim.requests()
            .iter()
            .filter(|l| l.path.ends_with("/getPresencesByUserId"))
            .count()
    };
    let before = reads(&sim);
    assert_eq!(sim.lifecycle("missed"), 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while reads(&sim) == before {
        assert!(Instant::now() < deadline, "missed did not cause a read");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // subscriptionRemoved: a new subscription, under a new clientState.
    let old_state = sim.subscriptions()[0].client_state.clone();
    assert_eq!(sim.lifecycle("subscriptionRemoved"), 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let subs = sim.subscriptions();
        if subs.len() == 1 && subs[0].id != first {
            break;
        }
        assert!(Instant::now() < deadline, "not re-created: {subs:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let new_state = sim.subscriptions()[0].client_state.clone();
    assert!(
        new_state.as_ref().is_some_and(|c| c.len() == 32),
        "{new_state:?}"
    );
    assert_ne!(new_state, old_state, "the clientState was reused");
    sim.set_presence(&alice, "DoNotDisturb", "DoNotDisturb");
    hub.wait_for(&endpoints_path(ID), "alice dnd", |v| {
        rich(v, &alice)["availability"] == "do-not-disturb"
    })
    .await;
    let lifecycle: Vec<_> = sim
        .deliveries()
        .into_iter()
        .filter(|d| d.lifecycle.is_some())
        .collect();
    assert!(
        lifecycle.iter().all(|d| d.status == Some(202)),
        "{lifecycle:?}"
    );
}

/// 429 and 503 with Retry-After: nothing is sent to Graph before the wait
/// is over, the status says `throttled` meanwhile and `up-and-running`
/// afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_honoured_and_shown() {
    let sim = GraphSim::start(SimConfig::default()).await;
    let alice = sim.add_user("alice@contoso.onmicrosoft.com");
    sim.set_presence(&alice, "Available", "Available");
    let hub = hub();
    create(
        &hub,
        ID,
        config(&sim, json!({})),
        std::slice::from_ref(&alice),
    )
    .await;
    hub.wait_for(&endpoints_path(ID), "alice active", |v| {
        v["endpoints"][&alice]["state"] == "active"
    })
    .await;
    wait_status(&hub, ID, "up-and-running").await;
    for (status, wait) in [(429u16, 2u64), (503, 1)] {
        let mark = sim.requests().len();
        sim.throttle_next(2, status, Some(wait));
        let st = wait_status(&hub, ID, "throttled").await;
        let detail = st["status"]["status_detail"].as_str().unwrap();
        assert!(detail.contains(&status.to_string()), "{detail}");
        wait_status(&hub, ID, "up-and-running").await;
        // No request got through within Retry-After of a throttled answer
        // (requests already in flight then were throttled themselves).
        let log: Vec<_> = sim.requests()[mark..]
            .iter()
            .filter(|l| l.is_graph())
            .cloned()
            .collect();
        let throttled: Vec<_> = log.iter().filter(|l| l.throttled).collect();
        assert_eq!(throttled.len(), 2, "{log:?}");
        for ok in log.iter().filter(|l| !l.throttled) {
            for t in throttled.iter().filter(|t| t.at < ok.at) {
                let gap = ok.at.duration_since(t.at);
                assert!(
                    gap >= Duration::from_secs(wait),
                    "sent after {gap:?}: {log:?}"
                );
            }
        }
        let last = throttled[1].at;
        if let Some(next) = log.iter().find(|l| l.at > last) {
            eprintln!(
                "HTTP {status}, Retry-After {wait} s: next request after {:?}",
                next.at.duration_since(last)
            );
        }
    }
    // And presence still flows.
    sim.set_presence(&alice, "Away", "Away");
    hub.wait_for(&endpoints_path(ID), "alice away", |v| {
        rich(v, &alice)["availability"] == "away"
    })
    .await;
}

/// Tokens live 4 s: the connector refreshes them ahead of expiry, keeps them
/// in its key-value store, and after a SIGKILL and restart of the hub signs
/// in with the stored refresh token (no new device code), adopts its
/// subscription and keeps receiving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_refresh_across_a_hub_restart() {
    let sim = GraphSim::start(SimConfig {
        token_lifetime: Duration::from_secs(4),
        ..SimConfig::default()
    })
    .await;
    let alice = sim.add_user("alice@contoso.onmicrosoft.com");
    sim.set_presence(&alice, "Available", "Available");
    let mut hub = hub_on_fixed_port();
    let cfg = config(
        &sim,
        json!({
            "auth_flow": "device-code",
            "client_secret": null,
            "notification_url": notify_url(&hub, ID),
            "poll_seconds": 3600,
        }),
    );
    create(&hub, ID, cfg, std::slice::from_ref(&alice)).await;
    device_sign_in(&hub, &sim, ID).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while sim.grants("refresh_token") < 2 || sim.subscriptions().is_empty() {
        assert!(Instant::now() < deadline, "no refresh");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Refreshed ahead of expiry: Graph never saw an expired token.
    let expired = sim
        .requests()
        .iter()
        .filter(|l| l.is_graph() && l.status == 401)
        .count();
    assert_eq!(expired, 0);
    let sub = sim.subscriptions()[0].id.clone();
    let refreshes = sim.grants("refresh_token");

    hub.restart();
    let st = wait_status(&hub, ID, "up-and-running").await;
    assert!(st["status"]["login_step"].is_null(), "{st}");
    assert_eq!(sim.user_codes().len(), 1, "a new device code was asked for");
    assert_eq!(
        sim.grants("urn:ietf:params:oauth:grant-type:device_code"),
        1
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while sim.grants("refresh_token") <= refreshes {
        assert!(Instant::now() < deadline, "no refresh after the restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sim.set_presence(&alice, "Busy", "InACall");
    hub.wait_for(&endpoints_path(ID), "alice in a call", |v| {
        rich(v, &alice)["activity"] == "in-a-call"
    })
    .await;
    let subs = sim.subscriptions();
    assert_eq!(subs.len(), 1, "{subs:?}");
    assert_eq!(subs[0].id, sub, "the stored subscription was adopted");
    assert!(
        !hub.log().contains("0.refresh."),
        "a refresh token reached the log"
    );
}

/// Write-back: DND as the application's setPresence session (sessionId =
/// client id, DoNotDisturb/Presenting, an expiration), cleared with
/// clearPresence; in preferred mode setUserPreferredPresence and its clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnd_written_back_and_cleared() {
    let sim = GraphSim::start(SimConfig::default()).await;
    let alice = sim.add_user("alice@contoso.onmicrosoft.com");
    let upn = "alice@contoso.onmicrosoft.com";
    sim.set_presence(&alice, "Available", "Available");
    let hub = hub();
    create(&hub, ID, config(&sim, json!({})), &[upn.into()]).await;
    create(
        &hub,
        "teams-pref",
        config(&sim, json!({"write_mode": "preferred"})),
        &[],
    )
    .await;
    hub.wait_for(&endpoints_path(ID), "alice active", |v| {
        v["endpoints"][upn]["state"] == "active"
    })
    .await;
    let write = |id: &str, body: Value| {
        let hub = &hub;
        let path = format!("/api/v1/connectors/{id}/endpoints/{upn}/presence");
        async move { hub.call("POST", &path, Some(body)).await }
    };
    let (s, v) = write(
        ID,
        json!({"action": "set", "availability": "do-not-disturb", "activity": "in-a-call"}),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while sim.sessions(&alice).is_empty() {
        assert!(Instant::now() < deadline, "no session");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sessions = sim.sessions(&alice);
    assert_eq!(sessions[0].session_id, sim.config().client_id);
    assert_eq!(
        (
            sessions[0].availability.as_str(),
            sessions[0].activity.as_str()
        ),
        ("DoNotDisturb", "Presenting")
    );
    // The default write-back duration (30 min), renewed while it stands.
    assert!(
        sessions[0].expires_in > Duration::from_secs(29 * 60),
        "{sessions:?}"
    );
    hub.wait_for(&endpoints_path(ID), "alice dnd", |v| {
        rich(v, upn)["availability"] == "do-not-disturb"
    })
    .await;
    // Graph's 200 comes back as the write's outcome, by the write's id.
    let write_id = v["id"].as_u64().expect("the write's id");
    let outcome = hub
        .wait_for(&format!("/api/v1/writes/{write_id}"), "outcome", |w| {
            w["state"] != "pending"
        })
        .await;
    assert_eq!(outcome["state"], "applied", "{outcome}");
    // An explicit expiry is passed on.
    let (s, _) = write(
        ID,
        json!({"action": "set", "availability": "busy", "activity": "in-a-conference", "expires_in_ms": 600_000}),
    )
    .await;
    assert_eq!(s, 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    while sim.sessions(&alice).first().map(|x| x.activity.clone())
        != Some("InAConferenceCall".into())
    {
        assert!(Instant::now() < deadline, "no conference session");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(sim.sessions(&alice)[0].expires_in <= Duration::from_secs(600));
    // Not a pair setPresence allows: refused by the connector.
    let (s, v) = write(ID, json!({"action": "set", "availability": "offline"})).await;
    assert_eq!(s, 422, "{v}");
    // Every token is revoked before the clear: Graph answers 401, the
    // connector signs in again and the clear still goes through.
    let grants = sim.grants("client_credentials");
    sim.expire_tokens();
    let (s, _) = write(ID, json!({"action": "clear"})).await;
    assert_eq!(s, 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sim.sessions(&alice).is_empty() {
        assert!(Instant::now() < deadline, "session not cleared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(sim.grants("client_credentials") > grants, "no new token");
    hub.wait_for(&endpoints_path(ID), "alice available again", |v| {
        rich(v, upn)["availability"] == "available"
    })
    .await;

    // Preferred presence.
    let (s, _) = write(
        "teams-pref",
        json!({"action": "set", "availability": "do-not-disturb"}),
    )
    .await;
    assert_eq!(s, 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    while sim.preferred(&alice).is_none() {
        assert!(Instant::now() < deadline, "no preferred presence");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        sim.preferred(&alice),
        Some(("DoNotDisturb".into(), "DoNotDisturb".into()))
    );
    let (s, _) = write("teams-pref", json!({"action": "clear"})).await;
    assert_eq!(s, 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    while sim.preferred(&alice).is_some() {
        assert!(Instant::now() < deadline, "preferred presence not cleared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Only the revoked tokens were refused; every write was well formed.
    let writes: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|l| l.path.contains("/presence/"))
        .collect();
    assert!(writes.iter().any(|l| l.status == 401), "{writes:?}");
    assert!(
        writes.iter().all(|l| l.status == 200 || l.status == 401),
        "{writes:?}"
    );
}

/// A wrong client secret is `forbidden` naming the identity platform's
/// answer (and the secret never reaches the log); revoked consent is
/// `forbidden` naming the missing permission, with endpoints access-denied,
/// until consent is back; an unreachable Graph is a connection error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_missing_consent_and_unreachable_graph() {
    let sim = GraphSim::start(SimConfig::default()).await;
    let alice = sim.add_user("alice@contoso.onmicrosoft.com");
    sim.set_presence(&alice, "Available", "Available");
    let hub = hub();
    create(
        &hub,
        "wrong",
        config(&sim, json!({"client_secret": "not-the-secret-42"})),
        std::slice::from_ref(&alice),
    )
    .await;
    let st = wait_status(&hub, "wrong", "forbidden").await;
    let detail = st["status"]["status_detail"].as_str().unwrap();
    assert!(
        detail.contains("invalid_client") && detail.contains("AADSTS7000215"),
        "{detail}"
    );

    create(
        &hub,
        ID,
        config(&sim, json!({})),
        std::slice::from_ref(&alice),
    )
    .await;
    hub.wait_for(&endpoints_path(ID), "alice active", |v| {
        v["endpoints"][&alice]["state"] == "active"
    })
    .await;
    sim.set_consent(false);
    let st = wait_status(&hub, ID, "forbidden").await;
    let detail = st["status"]["status_detail"].as_str().unwrap();
    assert!(detail.contains("Presence.Read.All"), "{detail}");
    hub.wait_for(&endpoints_path(ID), "alice access denied", |v| {
        v["endpoints"][&alice]["state"] == "access-denied"
    })
    .await;
    sim.set_consent(true);
    wait_status(&hub, ID, "up-and-running").await;
    hub.wait_for(&endpoints_path(ID), "alice active again", |v| {
        v["endpoints"][&alice]["state"] == "active"
    })
    .await;

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    create(
        &hub,
        "unreachable",
        config(
            &sim,
            json!({
                "graph_base": format!("http://127.0.0.1:{port}/v1.0"),
                "scopes": format!("{}/.default", sim.base),
            }),
        ),
        std::slice::from_ref(&alice),
    )
    .await;
    hub.wait_for(&status_path("unreachable"), "Graph unreachable", |v| {
        v["status"]["status"] == "connection-error"
            && v["status"]["status_detail"]
                .as_str()
                .is_some_and(|d| d.contains("Graph is unreachable"))
    })
    .await;
    let log = hub.log();
    assert!(
        !log.contains("not-the-secret-42"),
        "a secret reached the log"
    );
    assert!(
        !log.contains(&sim.config().client_secret),
        "a secret reached the log"
    );
}

/// Authorization code: the login step is the authorize URL; the identity
/// platform's redirect reaches the hub's callback, the code is exchanged
/// and the connector comes up. With a client secret beside the delegated
/// sign-in, write-back to another user uses an application token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_code_sign_in_through_the_redirect() {
    let sim = GraphSim::start(SimConfig::default()).await;
    let alice = sim.add_user("alice@contoso.onmicrosoft.com");
    sim.set_presence(&alice, "Busy", "InACall");
    let hub = hub();
    let cfg = config(
        &sim,
        json!({
            "auth_flow": "authorization-code",
            "redirect_url": hub.url(&format!("/hooks/{ID}/auth/callback")),
        }),
    );
    create(&hub, ID, cfg, std::slice::from_ref(&alice)).await;
    let st = wait_status(&hub, ID, "login-required").await;
    let url = st["status"]["login_step"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        url.starts_with(&format!(
            "{}/{}/oauth2/v2.0/authorize?",
            sim.base,
            sim.config().tenant
        )),
        "{url}"
    );
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = no_redirect.get(&url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&hub.url(&format!("/hooks/{ID}/auth/callback?code="))),
        "{location}"
    );
    // A forged state is refused.
    let forged = location.replace("state=", "state=x");
    assert_eq!(
        no_redirect
            .get(&forged)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        400
    );
    let resp = no_redirect.get(&location).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let st = wait_status(&hub, ID, "up-and-running").await;
    assert!(st["status"]["login_step"].is_null(), "{st}");
    hub.wait_for(&endpoints_path(ID), "alice in a call", |v| {
        rich(v, &alice)["activity"] == "in-a-call"
    })
    .await;
    assert_eq!(sim.grants("authorization_code"), 1);
    let (s, _) = hub
        .call(
            "POST",
            &format!("/api/v1/connectors/{ID}/endpoints/{alice}/presence"),
            Some(json!({"action": "set", "availability": "do-not-disturb"})),
        )
        .await;
    assert_eq!(s, 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    while sim.sessions(&alice).is_empty() {
        assert!(Instant::now() < deadline, "no session");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sim.grants("client_credentials"), 1);
}

/// The simulator itself refuses what Graph and the identity platform
/// refuse, so the tests above prove the connector stays inside the rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_refuses_what_graph_refuses() {
    let sim = GraphSim::start(SimConfig::default()).await;
    let alice = sim.add_user("alice@contoso.onmicrosoft.com");
    let c = sim.config();
    let http = reqwest::Client::new();
    let token_url = format!("{}/{}/oauth2/v2.0/token", sim.base, c.tenant);
    let token = |scope: String| {
        let (http, url, c) = (&http, &token_url, &c);
        async move {
            http.post(url)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", c.client_id.as_str()),
                    ("client_secret", c.client_secret.as_str()),
                    ("scope", scope.as_str()),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let bad_scope = token(format!("{}/Presence.Read.All", sim.base)).await;
    assert_eq!(bad_scope.status().as_u16(), 400);
    assert_eq!(
        bad_scope.json::<Value>().await.unwrap()["error"],
        "invalid_scope"
    );
    let ok: Value = token(format!("{}/.default", sim.base))
        .await
        .json()
        .await
        .unwrap();
    let bearer = ok["access_token"].as_str().unwrap().to_string();
    let g = |path: &str| format!("{}{path}", sim.graph_base());
    let status = |r: reqwest::Response| r.status().as_u16();

    // Wrong method, no token, unknown token.
    let r = http
        .get(g("/communications/getPresencesByUserId"))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 405);
    let r = http
        .post(g("/communications/getPresencesByUserId"))
        .json(&json!({"ids": [alice]}))
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 401);
    let r = http
        .post(g("/communications/getPresencesByUserId"))
        .bearer_auth("forged")
        .json(&json!({"ids": [alice]}))
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 401);
    // One user the app may not see refuses the whole batch read.
    let bob = sim.add_user("bob@contoso.onmicrosoft.com");
    sim.refuse_presence(&bob, true);
    for ids in [json!([alice, bob]), json!([bob])] {
        let r = http
            .post(g("/communications/getPresencesByUserId"))
            .bearer_auth(&bearer)
            .json(&json!({ "ids": ids }))
            .send()
            .await
            .unwrap();
        assert_eq!(status(r), 403);
    }
    let r = http
        .get(g(&format!("/users/{bob}/presence")))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 403);
    sim.refuse_presence(&bob, false);
    let r = http
        .post(g("/communications/getPresencesByUserId"))
        .bearer_auth(&bearer)
        .json(&json!({"ids": [alice, bob]}))
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 200);
    // JSON batches: at most 20, unique ids, relative URLs, a Content-Type
    // with a body, the batch's token; each request answered on its own.
    let batch = |body: Value, token: Option<&str>| {
        let (http, url) = (&http, g("/$batch"));
        let token = token.map(str::to_string);
        async move {
            let mut r = http.post(url).json(&body);
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            let r = r.send().await.unwrap();
            let st = r.status().as_u16();
            (st, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let get = |id: String, url: &str| json!({"id": id, "method": "GET", "url": url});
    let lookup = "/users/alice@contoso.onmicrosoft.com?$select=id,userPrincipalName";
    let too_many: Vec<Value> = (1..=21).map(|i| get(i.to_string(), lookup)).collect();
    assert_eq!(
        batch(json!({"requests": too_many}), Some(&bearer)).await.0,
        400
    );
    let twenty: Vec<Value> = (1..=20).map(|i| get(i.to_string(), lookup)).collect();
    assert_eq!(
        batch(json!({"requests": twenty}), Some(&bearer)).await.0,
        200
    );
    for bad in [
        json!({"requests": []}),
        json!({"requests": [get("1".into(), lookup), get("1".into(), lookup)]}),
        json!({"requests": [get("1".into(), &g(lookup))]}),
        json!({"requests": [{"id": "1", "url": lookup}]}),
        json!({"requests": [{"id": "1", "method": "GET"}]}),
        json!({"requests": [{"method": "GET", "url": lookup}]}),
        json!({"requests": [{"id": "1", "method": "POST", "url": "/communications/getPresencesByUserId", "body": {"ids": [alice]}}]}),
        json!({"requests": [{"id": "1", "method": "GET", "url": lookup, "dependsOn": ["9"]}]}),
        json!({"value": []}),
    ] {
        assert_eq!(batch(bad.clone(), Some(&bearer)).await.0, 400, "{bad}");
    }
    assert_eq!(
        batch(json!({"requests": [get("1".into(), lookup)]}), None)
            .await
            .0,
        401
    );
    let (st, answer) = batch(
        json!({"requests": [
            get("a".into(), lookup),
            get("b".into(), "users/ghost@contoso.onmicrosoft.com"),
            {"id": "c", "method": "POST", "url": "/communications/getPresencesByUserId",
             "headers": {"Content-Type": "application/json"}, "body": {"ids": [alice]}},
            get("d".into(), "/v1.0/users/alice@contoso.onmicrosoft.com"),
        ]}),
        Some(&bearer),
    )
    .await;
    assert_eq!(st, 200, "{answer}");
    let item = |id: &str| {
        answer["responses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(item("a")["status"], 200);
    assert_eq!(item("a")["body"]["id"], json!(alice));
    assert_eq!(item("b")["status"], 404);
    assert_eq!(
        item("b")["body"]["error"]["code"],
        "Request_ResourceNotFound"
    );
    assert_eq!(item("c")["status"], 200);
    assert_eq!(item("c")["body"]["value"][0]["id"], json!(alice));
    assert_eq!(item("d")["status"], 400, "URLs are relative to the version");
    // 651 ids, and ids that are not GUIDs.
    let many: Vec<String> = (0..651)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    let r = http
        .post(g("/communications/getPresencesByUserId"))
        .bearer_auth(&bearer)
        .json(&json!({"ids": many}))
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 400);
    let r = http
        .post(g("/communications/getPresencesByUserId"))
        .bearer_auth(&bearer)
        .json(&json!({"ids": ["alice@contoso.onmicrosoft.com"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 400);
    let r = http
        .post(g("/communications/getPresencesByUserId"))
        .bearer_auth(&bearer)
        .json(&json!({"ids": many[..650]}))
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 200);
    // setPresence: pairs, session id, duration.
    let set = |body: Value| {
        let (http, url, bearer) = (
            &http,
            g(&format!("/users/{alice}/presence/setPresence")),
            &bearer,
        );
        async move {
            http.post(url)
                .bearer_auth(bearer)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let sid = c.client_id.clone();
    assert_eq!(
        set(json!({"sessionId": sid, "availability": "Busy", "activity": "Busy"})).await,
        400
    );
    assert_eq!(
        set(json!({"sessionId": sid, "availability": "DoNotDisturb", "activity": "DoNotDisturb"}))
            .await,
        400
    );
    assert_eq!(
        set(json!({"sessionId": "other-app", "availability": "Busy", "activity": "InACall"})).await,
        400
    );
    assert_eq!(set(json!({"sessionId": sid, "availability": "Busy", "activity": "InACall", "expirationDuration": "PT1M"})).await, 400);
    assert_eq!(set(json!({"sessionId": sid, "availability": "Busy", "activity": "InACall", "expirationDuration": "PT5H"})).await, 400);
    assert_eq!(set(json!({"sessionId": sid, "availability": "Busy", "activity": "InACall", "expirationDuration": "PT1H"})).await, 200);
    // Subscriptions: no application permission; with a delegated token,
    // expiry at most an hour ahead, and the handshake must succeed.
    let soon = time::OffsetDateTime::now_utc() + time::Duration::minutes(30);
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let sub = |bearer: String, url: String, expiry: String| {
        let http = &http;
        let alice = &alice;
        let path = g("/subscriptions");
        async move {
            http.post(path)
                .bearer_auth(bearer)
                .json(&json!({
                    "changeType": "updated",
                    "notificationUrl": url,
                    "resource": format!("/communications/presences?$filter=id in ('{alice}')"),
                    "expirationDateTime": expiry,
                    "clientState": "x",
                }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        sub(bearer.clone(), format!("{}/nowhere", sim.base), fmt(soon)).await,
        403
    );
    // A delegated token from a device-code sign-in.
    let dc: Value = http
        .post(format!("{}/{}/oauth2/v2.0/devicecode", sim.base, c.tenant))
        .form(&[
            ("client_id", c.client_id.as_str()),
            ("scope", "offline_access Presence.Read.All"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let poll = || {
        let (http, url, c, dc) = (&http, &token_url, &c, &dc);
        async move {
            http.post(url)
                .form(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("client_id", c.client_id.as_str()),
                    ("device_code", dc["device_code"].as_str().unwrap()),
                ])
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(poll().await["error"], "authorization_pending");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    sim.approve_device_codes();
    let delegated = poll().await["access_token"].as_str().unwrap().to_string();
    let late = time::OffsetDateTime::now_utc() + time::Duration::minutes(61);
    assert_eq!(
        sub(
            delegated.clone(),
            format!("{}/nowhere", sim.base),
            fmt(late)
        )
        .await,
        400
    );
    // The simulator's own 404 is no validation echo.
    assert_eq!(
        sub(
            delegated.clone(),
            format!("{}/nowhere", sim.base),
            fmt(soon)
        )
        .await,
        400
    );
    // Expired tokens are refused.
    sim.expire_tokens();
    let r = http
        .post(g("/communications/getPresencesByUserId"))
        .bearer_auth(&bearer)
        .json(&json!({"ids": [alice]}))
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 401);
    // A wrong secret.
    let r = http
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", "wrong"),
            ("scope", &format!("{}/.default", sim.base)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
}

/// Write outcomes by write id: a tenant that consented to reading presence
/// only answers setPresence with 403 (named, not retryable); a throttled
/// setPresence answers 429 with Retry-After (retryable, with the wait).
/// Reads keep flowing meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_outcomes_name_refusals_and_throttling() {
    let read_only = GraphSim::start(SimConfig {
        app_roles: vec!["Presence.Read.All".into(), "User.Read.All".into()],
        ..SimConfig::default()
    })
    .await;
    let sim = GraphSim::start(SimConfig::default()).await;
    let upn = "alice@contoso.onmicrosoft.com";
    for s in [&read_only, &sim] {
        let alice = s.add_user(upn);
        s.set_presence(&alice, "Available", "Available");
    }
    let hub = hub();
    create(&hub, "ro", config(&read_only, json!({})), &[upn.into()]).await;
    create(&hub, ID, config(&sim, json!({})), &[upn.into()]).await;
    for id in ["ro", ID] {
        hub.wait_for(&endpoints_path(id), "alice active", |v| {
            v["endpoints"][upn]["state"] == "active"
        })
        .await;
    }
    let write = |id: &str| {
        let hub = &hub;
        let path = format!("/api/v1/connectors/{id}/endpoints/{upn}/presence");
        async move {
            let (s, v) = hub
                .call(
                    "POST",
                    &path,
                    Some(json!({"action": "set", "availability": "do-not-disturb"})),
                )
                .await;
            assert_eq!(s, 202, "{v}");
            v["id"].as_u64().expect("write id")
        }
    };
    let settled = |id: u64| {
        let hub = &hub;
        async move {
            hub.wait_for(&format!("/api/v1/writes/{id}"), "outcome", |w| {
                w["state"] != "pending"
            })
            .await
        }
    };

    let refused = settled(write("ro").await).await;
    assert_eq!(refused["state"], "failed", "{refused}");
    assert_eq!(refused["platform_status"], 403, "{refused}");
    assert_eq!(refused["retryable"], false, "{refused}");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("Presence.ReadWrite.All"),
        "{refused}"
    );
    let st = hub.get(&status_path("ro")).await;
    assert_eq!(st["status"]["writes_failed"], 1, "{st}");
    assert_eq!(st["status"]["last_write"]["state"], "failed", "{st}");

    sim.throttle_next_matching("/presence/setPresence", 1, 429, Some(2));
    let throttled = settled(write(ID).await).await;
    assert_eq!(throttled["state"], "failed", "{throttled}");
    assert_eq!(throttled["platform_status"], 429, "{throttled}");
    assert_eq!(throttled["retryable"], true, "{throttled}");
    assert_eq!(throttled["retry_after_ms"], 2000, "{throttled}");
    // The same write again, once the wait is over, lands.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let applied = settled(write(ID).await).await;
    assert_eq!(applied["state"], "applied", "{applied}");
    let log = hub
        .get(&format!("/api/v1/events?connector={ID}&limit=200"))
        .await
        .to_string();
    assert!(log.contains("-> failed (status 429)"), "{log}");
}

/// One user whose presence Graph refuses to show makes it refuse every
/// batch read naming that user. The connector finds the user, reads it
/// alone with a growing back-off, and keeps everyone else flowing in shared
/// batches: only that endpoint is access-denied, the connector stays
/// up-and-running, and the user comes back once Graph shows it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refused_user_does_not_poison_the_batch() {
    let sim = GraphSim::start(SimConfig::default()).await;
    let mut watches = Vec::new();
    for i in 0..40 {
        let id = sim.add_user(&format!("user{i}@contoso.onmicrosoft.com"));
        sim.set_presence(&id, "Available", "Available");
        watches.push(id);
    }
    let refused = watches[23].clone();
    sim.refuse_presence(&refused, true);
    let hub = hub();
    create(&hub, ID, config(&sim, json!({})), &watches).await;
    let others: Vec<&String> = watches.iter().filter(|w| **w != refused).collect();
    let v = hub
        .wait_for(&endpoints_path(ID), "the others active, one refused", |v| {
            others
                .iter()
                .all(|w| v["endpoints"][w.as_str()]["state"] == "active")
                && v["endpoints"][&refused]["state"] == "access-denied"
        })
        .await;
    assert!(rich(&v, &refused).is_null(), "{v}");
    // The others' changes keep flowing, poll after poll.
    let mark = Instant::now();
    for (n, who) in [watches[0].clone(), watches[39].clone(), watches[22].clone()]
        .iter()
        .enumerate()
    {
        let (a, act) = [
            ("Busy", "InACall"),
            ("Away", "Away"),
            ("DoNotDisturb", "Presenting"),
        ][n];
        sim.set_presence(who, a, act);
        let want = ["busy", "away", "do-not-disturb"][n];
        hub.wait_for(&endpoints_path(ID), "a change of another user", |v| {
            rich(v, who)["availability"] == want
        })
        .await;
        let st = hub.get(&status_path(ID)).await;
        assert_eq!(st["status"]["status"], "up-and-running", "{st}");
    }
    // Hold a while: the refused user is read alone, less and less often,
    // never again in a shared batch.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let reads: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|l| l.path.ends_with("/getPresencesByUserId") && l.at >= mark)
        .collect();
    let with_refused: Vec<_> = reads
        .iter()
        .filter(|l| l.user_ids.contains(&refused))
        .collect();
    assert!(
        with_refused
            .iter()
            .all(|l| l.user_ids.len() == 1 && l.status == 403),
        "{with_refused:?}"
    );
    // Polled every second for about ten seconds; read alone after 2, 4, 8 s.
    assert!(
        with_refused.len() <= 4,
        "{} refused reads",
        with_refused.len()
    );
    let shared_ok = reads
        .iter()
        .filter(|l| l.status == 200 && l.user_ids.len() == 39)
        .count();
    assert!(shared_ok >= 6, "{shared_ok} shared reads");
    let st = hub.get(&status_path(ID)).await;
    assert_eq!(st["status"]["status"], "up-and-running", "{st}");
    assert!(
        st["status"]["status_detail"]
            .as_str()
            .is_some_and(|d| d.contains("1 refused by Graph")),
        "{st}"
    );
    // Graph shows the user again: it comes back with the next try.
    sim.refuse_presence(&refused, false);
    sim.set_presence(&refused, "Busy", "InAMeeting");
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let v = hub.get(&endpoints_path(ID)).await;
        if v["endpoints"][&refused]["state"] == "active" {
            assert_eq!(rich(&v, &refused)["activity"], "in-a-meeting");
            break;
        }
        assert!(Instant::now() < deadline, "the user never came back: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Deleting a connector through the API ends its Graph subscription: the
/// connector deletes it (DELETE /subscriptions/{id}) in the grace period
/// the host gives after the shutdown event, so Graph stops posting to a
/// hook that is gone. Disabling it does too, and enabling creates one anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_or_deleting_the_connector_deletes_its_subscription() {
    let sim = GraphSim::start(SimConfig::default()).await;
    let alice = sim.add_user("alice@contoso.onmicrosoft.com");
    sim.set_presence(&alice, "Available", "Available");
    let hub = hub();
    let cfg = config(
        &sim,
        json!({
            "auth_flow": "device-code",
            "notification_url": notify_url(&hub, ID),
            "poll_seconds": 3600,
        }),
    );
    create(&hub, ID, cfg, std::slice::from_ref(&alice)).await;
    device_sign_in(&hub, &sim, ID).await;
    let wait_subs = |n: usize, what: &'static str| {
        let sim = &sim;
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let subs = sim.subscriptions();
                if subs.len() == n {
                    return subs;
                }
                assert!(Instant::now() < deadline, "{what}: {subs:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let first = wait_subs(1, "no subscription").await[0].id.clone();

    let (s, v) = hub
        .call("POST", &format!("/api/v1/connectors/{ID}/disable"), None)
        .await;
    assert_eq!(s, 200, "{v}");
    wait_subs(0, "disabling left the subscription").await;
    let (s, v) = hub
        .call("POST", &format!("/api/v1/connectors/{ID}/enable"), None)
        .await;
    assert_eq!(s, 200, "{v}");
    let again = wait_subs(1, "no subscription after enabling").await;
    assert_ne!(again[0].id, first);

    let (s, v) = hub
        .call("DELETE", &format!("/api/v1/connectors/{ID}"), None)
        .await;
    assert_eq!(s, 204, "{v}");
    wait_subs(0, "deleting left the subscription").await;
    let deletes: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|l| l.method == "DELETE" && l.path.starts_with("/v1.0/subscriptions/"))
        .collect();
    assert_eq!(deletes.len(), 2, "{deletes:?}");
    assert!(deletes.iter().all(|l| l.status == 204), "{deletes:?}");
}

/// Graph stops delivering without a word (the subscription stays "alive"):
/// the slow re-read of covered users still shows the change, the connector
/// warns, deletes the silent subscription and creates a new one (with a new
/// clientState), which delivers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_subscription_is_noticed_and_created_anew() {
    let sim = GraphSim::start(SimConfig::default()).await;
    let alice = sim.add_user("alice@contoso.onmicrosoft.com");
    sim.set_presence(&alice, "Available", "Available");
    let hub = hub();
    let cfg = config(
        &sim,
        json!({
            "auth_flow": "device-code",
            "notification_url": notify_url(&hub, ID),
            "poll_seconds": 3600,
            "reread_seconds": 2,
        }),
    );
    create(&hub, ID, cfg, std::slice::from_ref(&alice)).await;
    device_sign_in(&hub, &sim, ID).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while sim.subscriptions().is_empty() {
        assert!(Instant::now() < deadline, "no subscription");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let silent = sim.subscriptions()[0].clone();
    hub.wait_for(&endpoints_path(ID), "alice available", |v| {
        rich(v, &alice)["availability"] == "available"
    })
    .await;
    // Settled: the read that follows a new subscription (it catches what
    // changed before it existed) is done.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sim
        .requests()
        .iter()
        .any(|l| l.path.ends_with("/getPresencesByUserId") && l.at > silent.created)
    {
        assert!(Instant::now() < deadline, "no read after the subscription");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sim.mute_subscriptions(), 1);
    sim.set_presence(&alice, "Busy", "InACall");
    // The re-read shows it although Graph said nothing.
    hub.wait_for(&endpoints_path(ID), "alice in a call by re-read", |v| {
        rich(v, &alice)["activity"] == "in-a-call"
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let fresh = loop {
        let subs = sim.subscriptions();
        if subs.len() == 1 && subs[0].id != silent.id {
            break subs[0].clone();
        }
        if Instant::now() >= deadline {
            let log = hub.log();
            let plugin: Vec<&str> = log.lines().filter(|l| l.contains("plugin")).collect();
            panic!("not created anew: {subs:?}\n{}", plugin.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_ne!(fresh.client_state, silent.client_state);
    assert!(hub.log().contains("silent while reads show changes"));
    // The new one delivers: a change arrives by notification.
    let delivered = sim.deliveries().len();
    sim.set_presence(&alice, "DoNotDisturb", "Presenting");
    hub.wait_for(&endpoints_path(ID), "alice presenting", |v| {
        rich(v, &alice)["activity"] == "presenting"
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sim.deliveries()[delivered..]
        .iter()
        .any(|d| d.subscription == fresh.id && d.status == Some(202))
    {
        assert!(
            Instant::now() < deadline,
            "the new subscription did not deliver"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The simulator fades an Available application session that is not set
/// again within the timeout, as Graph does: Available/AvailableInactive,
/// then Away/Away; other availabilities hold until they expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_fades_an_available_session() {
    let sim = GraphSim::start(SimConfig {
        available_timeout: Duration::from_secs(1),
        ..SimConfig::default()
    })
    .await;
    let alice = sim.add_user("alice@contoso.onmicrosoft.com");
    let bob = sim.add_user("bob@contoso.onmicrosoft.com");
    let c = sim.config();
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{}/{}/oauth2/v2.0/token", sim.base, c.tenant))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.as_str()),
            ("scope", &format!("{}/.default", sim.base)),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = token["access_token"].as_str().unwrap().to_string();
    for (user, a, act) in [
        (&alice, "Available", "Available"),
        (&bob, "Busy", "InACall"),
    ] {
        let r = http
            .post(format!("{}/users/{user}/presence/setPresence", sim.graph_base()))
            .bearer_auth(&bearer)
            .json(&json!({"sessionId": c.client_id, "availability": a, "activity": act, "expirationDuration": "PT1H"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    let p = |s: &str, a: &str| (s.to_string(), a.to_string());
    assert_eq!(sim.presence(&alice), p("Available", "Available"));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(sim.presence(&alice), p("Available", "AvailableInactive"));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(sim.presence(&alice), p("Away", "Away"));
    assert_eq!(sim.presence(&bob), p("Busy", "InACall"));
}
