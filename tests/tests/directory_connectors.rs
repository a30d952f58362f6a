//! Users kept in step with a connector instance's own directory: the
//! RingCentral connector (`plugins/ringcentral`) against the RingCentral
//! simulator (`hub_e2e::rc_sim`), through the real hub and its API. A dry
//! run lists the users it would create and changes nothing; the sync
//! creates them (marked `directory: rc`, their endpoint in `endpoints.rc`)
//! and they show the connector's presence merged; a renamed extension
//! renames its user; a person an operator made (same email) is never
//! touched nor duplicated; an extension removed from the account is
//! reported (`remove: report`), then deleted (`remove: delete`); a
//! scheduled sync runs by itself.

use hub_e2e::Hub;
use hub_e2e::rc_sim::{RcSim, RcSimConfig};
use serde_json::{Value, json};

const ID: &str = "rc";

fn action<'a>(report: &'a Value, user: &str) -> &'a str {
    report["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == user)
        .and_then(|u| u["action"].as_str())
        .unwrap_or("absent")
}

async fn sync(hub: &Hub, dry_run: bool) -> Value {
    let (s, r) = hub
        .call(
            "POST",
            &format!("/api/v1/directory/connectors/{ID}/sync?dry_run={dry_run}"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{r}");
    r
}

async fn put(hub: &Hub, body: Value) {
    let (s, v) = hub
        .call(
            "PUT",
            &format!("/api/v1/directory/connectors/{ID}"),
            Some(body),
        )
        .await;
    assert_eq!(s, 200, "{v}");
}

/// The instance's directory as the hub holds it, once `f` holds.
async fn wait_directory(hub: &Hub, what: &str, f: impl Fn(&[Value]) -> bool) {
    hub.wait_for(&format!("/api/v1/connectors/{ID}/endpoints"), what, |v| {
        v["directory"].as_array().is_some_and(|d| f(d))
    })
    .await;
}

fn has(dir: &[Value], endpoint: u64) -> bool {
    dir.iter()
        .any(|e| e["endpoint"] == json!(endpoint.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_follow_the_connectors_directory() {
    let sim = RcSim::start(RcSimConfig::default()).await;
    let alice = sim.add_extension("101", "Alice Adams", "Alice.Adams@example.com");
    let bob = sim.add_extension("102", "Bob Brown", "bob@example.com");
    let carol = sim.add_extension("103", "Carol Clark", "carol@example.com");
    // A call queue: no email, so nobody to match.
    let queue = sim.add_department("800", "Sales queue");
    let mut hub = Hub::start(&["plugins/ringcentral"], &[]);
    hub.check_api().await;

    // Carol is a user an operator made, under another name, by email.
    let carla = json!({"username": "carla", "display_name": "Carla (front desk)",
        "email": "Carol@Example.com", "department": "Reception"});
    let (s, v) = hub.call("POST", "/api/v1/users", Some(carla)).await;
    assert_eq!(s, 201, "{v}");
    let carla = hub.get("/api/v1/users/carla").await;

    let c = sim.config();
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": ID, "plugin": "ringcentral", "config": {
                "server_url": sim.base(), "client_id": c.client_id,
                "client_secret": c.client_secret, "jwt": c.jwt}})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    put(&hub, json!({"remove": "report"})).await;
    // The simulated account also has its owner's extension (admin@).
    wait_directory(&hub, "the extension directory", |d| d.len() == 5).await;

    // Dry run: the plan, and nothing changes.
    let plan = sync(&hub, true).await;
    assert_eq!(
        (plan["dry_run"].as_bool(), plan["applied"].as_bool()),
        (Some(true), Some(false)),
        "{plan}"
    );
    assert_eq!(plan["entries"], 5, "{plan}");
    assert_eq!(
        (
            plan["created"].as_u64(),
            plan["matched"].as_u64(),
            plan["rejected"].as_u64()
        ),
        (Some(3), Some(1), Some(1)),
        "{plan}"
    );
    assert_eq!(action(&plan, "alice.adams"), "created", "{plan}");
    assert_eq!(action(&plan, "bob"), "created", "{plan}");
    assert_eq!(action(&plan, "carla"), "matched", "{plan}");
    let rejected = plan["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["action"] == "rejected")
        .unwrap();
    assert_eq!(
        (&rejected["endpoint"], &rejected["field"]),
        (&json!(queue.to_string()), &json!("email")),
        "{rejected}"
    );
    assert_eq!(hub.call("GET", "/api/v1/users/bob", None).await.0, 404);

    // The sync creates them, marked and tied to their extension.
    let r = sync(&hub, false).await;
    assert_eq!(
        (r["applied"].as_bool(), r["created"].as_u64()),
        (Some(true), Some(3)),
        "{r}"
    );
    let a = hub.get("/api/v1/users/alice.adams").await;
    assert_eq!(a["display_name"], "Alice Adams", "{a}");
    assert_eq!(a["email"], "Alice.Adams@example.com", "{a}");
    assert_eq!(a["endpoints"][ID], alice.to_string(), "{a}");
    assert_eq!(a["attributes"]["directory"], ID, "{a}");
    // The operator's user is untouched, and not doubled.
    assert_eq!(hub.get("/api/v1/users/carla").await, carla);
    for name in ["carol", "carol@example.com"] {
        let path = format!("/api/v1/users/{name}");
        assert_eq!(hub.call("GET", &path, None).await.0, 404, "{name}");
    }
    let users = hub.get("/api/v1/users").await;
    let carols = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| {
            u["email"]
                .as_str()
                .is_some_and(|e| e.eq_ignore_ascii_case("carol@example.com"))
        })
        .count();
    assert_eq!(carols, 1, "{users}");

    // The new users show the connector's presence, merged.
    let call = sim.start_call(alice, "Inbound", false);
    sim.answer_call(&call);
    let p = hub
        .wait_for("/api/v1/presence/alice.adams", "alice in a call", |v| {
            v["telephony"]["state"] == "busy"
        })
        .await;
    assert_eq!(p["telephony"]["source"], ID, "{p}");
    sim.user_sets_dnd(bob, "DoNotAcceptAnyCalls");
    hub.wait_for("/api/v1/presence/bob", "bob's DND", |v| {
        v["rich"]["state"] == "do-not-disturb" && v["rich"]["source"] == ID
    })
    .await;
    let _ = carol;

    // A renamed extension renames its user; a removed one is reported.
    sim.rename_extension(alice, "Alice Meyer");
    sim.remove_extension(bob);
    // The connector reads its directory again when it starts.
    for step in ["disable", "enable"] {
        let (s, v) = hub
            .call("POST", &format!("/api/v1/connectors/{ID}/{step}"), None)
            .await;
        assert!(s == 200 || s == 204, "{step}: {s} {v}");
    }
    wait_directory(&hub, "bob gone from the directory", |d| {
        d.len() == 4 && !has(d, bob)
    })
    .await;
    // The whole directory is in (a half-read one answers 409).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let path = format!("/api/v1/directory/connectors/{ID}/sync?dry_run=true");
        let (s, v) = hub.call("POST", &path, None).await;
        match s {
            200 => break,
            409 if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await
            }
            _ => panic!("dry run: {s} {v}"),
        }
    }
    let r = sync(&hub, false).await;
    assert_eq!(action(&r, "alice.adams"), "updated", "{r}");
    assert_eq!(action(&r, "bob"), "missing", "{r}");
    assert_eq!(action(&r, "carla"), "matched", "{r}");
    assert_eq!(
        hub.get("/api/v1/users/alice.adams").await["display_name"],
        "Alice Meyer"
    );
    assert_eq!(hub.call("GET", "/api/v1/users/bob", None).await.0, 200);

    // With remove=delete bob goes; carla (same email as a directory entry,
    // made by an operator) stays as she was.
    put(&hub, json!({"remove": "delete"})).await;
    let r = sync(&hub, false).await;
    assert_eq!(
        (action(&r, "bob"), r["deleted"].as_u64()),
        ("deleted", Some(1)),
        "{r}"
    );
    assert_eq!(hub.call("GET", "/api/v1/users/bob", None).await.0, 404);
    assert_eq!(hub.get("/api/v1/users/carla").await, carla);

    // The schedule: a new extension arrives by itself.
    let dora = sim.add_extension("104", "Dora Diaz", "dora@example.com");
    for step in ["disable", "enable"] {
        hub.call("POST", &format!("/api/v1/connectors/{ID}/{step}"), None)
            .await;
    }
    wait_directory(&hub, "dora in the directory", |d| has(d, dora)).await;
    put(&hub, json!({"remove": "delete", "interval_seconds": 5})).await;
    let st = hub
        .get(&format!("/api/v1/directory/connectors/{ID}/status"))
        .await;
    assert!(st["next_at_ms"].as_u64().is_some(), "{st}");
    hub.wait_for("/api/v1/users/dora", "the scheduled sync", |v| {
        v["endpoints"][ID] == json!(dora.to_string())
    })
    .await;
    let st = hub
        .get(&format!("/api/v1/directory/connectors/{ID}/status"))
        .await;
    assert_eq!(
        (&st["last"]["trigger"], &st["last"]["ok"]),
        (&json!("scheduled"), &json!(true)),
        "{st}"
    );
    hub.wait_for(
        "/api/v1/events?limit=100",
        "the sync in the event log",
        |v| v.to_string().contains("directory sync of rc (scheduled)"),
    )
    .await;
}
