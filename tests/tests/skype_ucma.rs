//! The Skype for Business / Lync connector (`plugins/skype-ucma`) against
//! the UCMA bridge simulator (`hub_e2e::ucma_sim`, which plays a correct
//! bridge over a simulated Front End pool and checks every message the
//! connector sends against the bridge protocol's JSON Schema), through the
//! real hub binary and its API.

use std::time::{Duration, Instant};

use hub_e2e::Hub;
use hub_e2e::ucma_sim::{POOL_FQDN, UcmaSim, UcmaSimConfig};
use serde_json::{Value, json};

const ID: &str = "lync";

fn hub() -> Hub {
    Hub::start(&["plugins/skype-ucma"], &[])
}

fn endpoints_path(id: &str) -> String {
    format!("/api/v1/connectors/{id}/endpoints")
}

/// The connector's configuration for a user endpoint of `sim` (with or
/// without TLS to the pool).
fn user_config(sim: &UcmaSim, tls: bool) -> Value {
    let ep = sim.user_endpoint(tls);
    json!({
        "bridge_url": sim.url(),
        "bridge_token": sim.token(),
        "endpoint_type": if tls { "user-endpoint-with-tls" } else { "user-endpoint-without-tls" },
        "server_fqdn": POOL_FQDN,
        "user_name": ep["user_name"],
        "sip_uri": ep["sip_uri"],
        "password": ep["password"],
        "domain": ep["domain"],
    })
}

/// The connector's configuration for `sim`'s trusted application.
fn app_config(sim: &UcmaSim) -> Value {
    let ep = sim.trusted_application_endpoint();
    json!({
        "bridge_url": sim.url(),
        "bridge_token": sim.token(),
        "endpoint_type": "trusted-application-endpoint",
        "server_fqdn": POOL_FQDN,
        "application_contact_uri": ep["application_contact_uri"],
        "application_gruu": ep["application_gruu"],
        "certificate_name": ep["certificate_friendly_name"],
        "application_host": ep["application_host"],
        "application_port": ep["application_port"],
    })
}

/// Create connector `id` trusting the simulator's private CA.
async fn create(hub: &Hub, id: &str, sim: &UcmaSim, config: Value) -> (u16, Value) {
    hub.call(
        "POST",
        "/api/v1/connectors",
        Some(
            json!({"id": id, "plugin": "skype-ucma", "config": config, "tls_ca_pem": sim.ca_pem()}),
        ),
    )
    .await
}

async fn create_ok(hub: &Hub, id: &str, sim: &UcmaSim, config: Value) {
    let (s, v) = create(hub, id, sim, config).await;
    assert_eq!(s, 201, "{v}");
}

async fn add_user(hub: &Hub, name: &str, uri: &str) {
    let u = json!({"username": name, "display_name": name, "lync_uri": uri});
    let (s, v) = hub.call("POST", "/api/v1/users", Some(u.clone())).await;
    assert!(s == 200 || s == 201, "POST user {u}: {s} {v}");
}

async fn wait_status(hub: &Hub, id: &str, want: &str) -> Value {
    hub.wait_for(&format!("/api/v1/connectors/{id}/status"), want, |v| {
        v["status"]["status"] == want
    })
    .await
}

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

fn uri(name: &str) -> String {
    format!("sip:{name}@contoso.com")
}

/// Every availability band and activity token of the issue, each on its
/// own target, mapped to the normalized model with the raw values kept;
/// then changes pushed, and the device state as the line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_band_and_activity_token_mapped_and_changes_pushed() {
    let sim = UcmaSim::start(UcmaSimConfig::default()).await;
    // (name, availability, token, availability, activity)
    let cases: [(&str, u32, Option<&str>, &str, Value); 13] = [
        ("available", 3500, None, "available", Value::Null),
        ("idle", 5000, None, "available", json!("inactive")),
        ("busy", 6500, None, "busy", Value::Null),
        (
            "phone",
            6500,
            Some("on-the-phone"),
            "busy",
            json!("in-a-call"),
        ),
        (
            "conference",
            6500,
            Some("in-a-conference"),
            "busy",
            json!("in-a-conference"),
        ),
        (
            "meeting",
            6500,
            Some("in-a-meeting"),
            "busy",
            json!("in-a-meeting"),
        ),
        ("busyidle", 8000, None, "busy", json!("inactive")),
        ("dnd", 9500, None, "do-not-disturb", Value::Null),
        (
            "urgent",
            6900,
            Some("urgent-interruptions-only"),
            "do-not-disturb",
            Value::Null,
        ),
        ("brb", 12500, None, "away", json!("be-right-back")),
        ("away", 15500, None, "away", Value::Null),
        ("offline", 18500, None, "offline", Value::Null),
        (
            "oof",
            15500,
            Some("out-of-office"),
            "away",
            json!("out-of-office"),
        ),
    ];
    let hub = hub();
    for (name, n, token, ..) in &cases {
        let u = uri(name);
        sim.add_user(&u);
        sim.set_presence(&u, *n, *token, Some(&format!("note of {name}")));
        add_user(&hub, name, &u).await;
    }
    create_ok(&hub, ID, &sim, user_config(&sim, true)).await;
    wait_status(&hub, ID, "up-and-running").await;
    for (name, n, token, availability, activity) in &cases {
        let ep = wait_endpoint(&hub, ID, &uri(name), name, |e| {
            e["state"] == "active" && e["rich"].is_object()
        })
        .await;
        assert_eq!(ep["rich"]["availability"], *availability, "{name}: {ep}");
        if !activity.is_null() {
            assert_eq!(ep["rich"]["activity"], *activity, "{name}: {ep}");
        }
        assert_eq!(ep["rich"]["note"], format!("note of {name}"), "{ep}");
        assert_eq!(raw(&ep, "availability"), Some(n.to_string()), "{ep}");
        if let Some(t) = token {
            assert!(ep["raw"].to_string().contains(t), "{ep}");
        }
    }
    // A custom activity is kept in the source's words.
    sim.set_custom_activity(&uri("busy"), Some("Lunch with the CEO"));
    wait_endpoint(&hub, ID, &uri("busy"), "custom activity", |e| {
        e["rich"]["activity"] == json!({"other": "Lunch with the CEO"})
    })
    .await;
    // Pushed: a change on the pool shows at once.
    sim.set_presence(&uri("available"), 6500, Some("on-the-phone"), None);
    let p = hub
        .wait_for("/api/v1/presence/available", "a call pushed", |v| {
            v["rich"]["activity"] == "in-a-call"
        })
        .await;
    assert_eq!(p["rich"]["source"], ID, "{p}");
    // The phone's state, where UCMA gives it, is the line.
    sim.set_device(&uri("away"), Some("in-a-call"));
    wait_endpoint(&hub, ID, &uri("away"), "device in a call", |e| {
        e["telephony"]["line"] == "in-call"
    })
    .await;
    assert!(sim.take_schema_violations().is_empty());
}

/// Each endpoint type the seeds configure is accepted and comes up; a
/// wrong combination is refused naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_endpoint_type_configured_and_validated() {
    let sim = UcmaSim::start(UcmaSimConfig::default()).await;
    sim.add_user(&uri("alice"));
    sim.set_presence(&uri("alice"), 3500, None, None);
    let hub = hub();
    add_user(&hub, "alice", &uri("alice")).await;
    for (id, config) in [
        ("plain", user_config(&sim, false)),
        ("tls", user_config(&sim, true)),
        ("app", app_config(&sim)),
    ] {
        create_ok(&hub, id, &sim, config).await;
        wait_status(&hub, id, "up-and-running").await;
        wait_endpoint(&hub, id, &uri("alice"), "alice via each", |e| {
            e["rich"]["availability"] == "available"
        })
        .await;
    }
    // A trusted application without its GRUU, a user endpoint without a
    // password: refused, naming the field (at create, or in the status).
    for (id, mut config, field) in [
        ("nogruu", app_config(&sim), "application_gruu"),
        ("nopass", user_config(&sim, true), "password"),
    ] {
        config.as_object_mut().unwrap().remove(field);
        let (s, v) = create(&hub, id, &sim, config).await;
        if s == 201 {
            hub.wait_for(&format!("/api/v1/connectors/{id}/status"), field, |v| {
                v["status"]["status"] != "up-and-running" && v.to_string().contains(field)
            })
            .await;
        } else {
            assert!(s == 400 || s == 422, "{s} {v}");
            assert!(v.to_string().contains(field), "{v}");
        }
    }
}

/// The bridge restarts (bye, close 1012, all its state gone): the connector
/// reconnects, sets the endpoint up again and watches every target again;
/// changes after the restart arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_restart_is_survived_with_resubscription() {
    let sim = UcmaSim::start(UcmaSimConfig::default()).await;
    let hub = hub();
    for name in ["alice", "bob"] {
        sim.add_user(&uri(name));
        sim.set_presence(&uri(name), 3500, None, None);
        add_user(&hub, name, &uri(name)).await;
    }
    create_ok(&hub, ID, &sim, user_config(&sim, true)).await;
    for name in ["alice", "bob"] {
        wait_endpoint(&hub, ID, &uri(name), "available", |e| {
            e["rich"]["availability"] == "available"
        })
        .await;
    }
    let connects = sim.connects();
    sim.restart().await;
    until("a new connection", Duration::from_secs(15), || {
        sim.connects() > connects && sim.watched().len() == 2
    })
    .await;
    sim.set_presence(&uri("bob"), 9500, None, None);
    wait_endpoint(&hub, ID, &uri("bob"), "bob DND after the restart", |e| {
        e["rich"]["availability"] == "do-not-disturb"
    })
    .await;
    wait_status(&hub, ID, "up-and-running").await;
    // Dropped without a close frame: the same again.
    let connects = sim.connects();
    sim.drop_connections();
    until("reconnected", Duration::from_secs(15), || {
        sim.connects() > connects && sim.watched().len() == 2
    })
    .await;
    sim.set_presence(&uri("alice"), 15500, None, None);
    wait_endpoint(&hub, ID, &uri("alice"), "alice away", |e| {
        e["rich"]["availability"] == "away"
    })
    .await;
    assert!(sim.take_schema_violations().is_empty());
}

/// The error states operators see, in the seeds' words: bad credentials
/// are forbidden, an unreachable pool a connection error, a certificate
/// problem named as such; a target the pool does not know is not found, a
/// refused subscription access-denied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_states_as_the_seeds_name_them() {
    let sim = UcmaSim::start(UcmaSimConfig::default()).await;
    sim.add_user(&uri("alice"));
    sim.add_user(&uri("carol"));
    sim.refuse_subscription(&uri("carol"));
    let hub = hub();
    add_user(&hub, "alice", &uri("alice")).await;
    add_user(&hub, "carol", &uri("carol")).await;
    add_user(&hub, "nobody", &uri("nobody")).await;

    let mut wrong = user_config(&sim, true);
    wrong["password"] = json!("not-the-password");
    create_ok(&hub, "wrong", &sim, wrong).await;
    let st = wait_status(&hub, "wrong", "forbidden").await;
    assert!(
        !st.to_string().contains("not-the-password"),
        "the password is never shown: {st}"
    );

    let mut far = user_config(&sim, true);
    far["server_fqdn"] = json!("other-pool.sim.test");
    create_ok(&hub, "far", &sim, far).await;
    wait_status(&hub, "far", "connection-error").await;

    create_ok(&hub, ID, &sim, user_config(&sim, true)).await;
    wait_status(&hub, ID, "up-and-running").await;
    wait_endpoint(&hub, ID, &uri("nobody"), "nobody not found", |e| {
        e["state"] == "not-found"
    })
    .await;
    wait_endpoint(&hub, ID, &uri("carol"), "carol refused", |e| {
        e["state"] == "access-denied"
    })
    .await;

    // The pool's certificate goes bad: the next set-up fails, named.
    sim.set_certificate_ok(false);
    let connects = sim.connects();
    sim.drop_connections();
    until("a new attempt", Duration::from_secs(15), || {
        sim.connects() > connects
    })
    .await;
    let st = hub
        .wait_for(
            &format!("/api/v1/connectors/{ID}/status"),
            "a certificate problem",
            |v| {
                v["status"]["status"] != "up-and-running"
                    && v.to_string().to_lowercase().contains("certificate")
            },
        )
        .await;
    assert_eq!(st["status"]["status"], "connection-error", "{st}");
    assert!(sim.take_schema_violations().is_empty());
}

/// DND written back through a trusted application (which may publish for
/// any user) and restored, with outcomes; a user endpoint may publish only
/// for itself, so a write for someone else is unsupported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnd_written_back_and_restored_with_outcomes() {
    let sim = UcmaSim::start(UcmaSimConfig::default()).await;
    sim.add_user(&uri("alice"));
    sim.set_presence(&uri("alice"), 3500, None, None);
    let hub = hub();
    add_user(&hub, "alice", &uri("alice")).await;
    create_ok(&hub, ID, &sim, app_config(&sim)).await;
    let alice = uri("alice");
    wait_endpoint(&hub, ID, &alice, "alice available", |e| {
        e["rich"]["availability"] == "available"
    })
    .await;

    let write = |body: Value| {
        let hub = &hub;
        let path = format!("/api/v1/connectors/{ID}/endpoints/{alice}/presence");
        async move {
            let (s, v) = hub.call("POST", &path, Some(body)).await;
            assert_eq!(s, 202, "{v}");
            let id = v["id"].as_u64().unwrap();
            hub.wait_for(&format!("/api/v1/writes/{id}"), "an outcome", |w| {
                w["state"] != "pending"
            })
            .await
        }
    };
    let w =
        write(json!({"action": "set", "availability": "do-not-disturb", "activity": "in-a-call"}))
            .await;
    assert_eq!(w["state"], "applied", "{w}");
    let published = sim.hub_publication(&alice).expect("the hub's publication");
    assert!(published.to_string().contains("9500"), "{published}");
    let ep = wait_endpoint(&hub, ID, &alice, "alice DND", |e| {
        e["rich"]["availability"] == "do-not-disturb"
    })
    .await;
    assert_eq!(
        ep["origin"]["kind"], "hub-write",
        "the echo is marked: {ep}"
    );
    let w = write(json!({"action": "restore"})).await;
    assert_eq!(w["state"], "restored", "{w}");
    assert!(sim.hub_publication(&alice).is_none());
    wait_endpoint(&hub, ID, &alice, "alice available again", |e| {
        e["rich"]["availability"] == "available"
    })
    .await;

    // A user endpoint publishes only for itself.
    create_ok(&hub, "self", &sim, user_config(&sim, true)).await;
    wait_endpoint(&hub, "self", &alice, "alice via the user endpoint", |e| {
        e["rich"]["availability"] == "available"
    })
    .await;
    let (s, v) = hub
        .call(
            "POST",
            &format!("/api/v1/connectors/self/endpoints/{alice}/presence"),
            Some(json!({"action": "set", "availability": "do-not-disturb"})),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_u64().unwrap();
    let w = hub
        .wait_for(&format!("/api/v1/writes/{id}"), "an outcome", |w| {
            w["state"] != "pending"
        })
        .await;
    assert_eq!(w["state"], "unsupported", "{w}");
    assert!(sim.take_schema_violations().is_empty());
}
