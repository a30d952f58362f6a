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
use hub_e2e::directory::{ConnectorDirectory, action, first_plan, has, operator_carla};
use hub_e2e::rc_sim::{RcSim, RcSimConfig};
use serde_json::json;

const ID: &str = "rc";

async fn create(hub: &Hub, sim: &RcSim) {
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
    let carla = operator_carla(&hub, "Carol@Example.com").await;

    create(&hub, &sim).await;
    let d = ConnectorDirectory::new(&hub, ID);
    d.put(json!({"remove": "report"})).await;
    // The simulated account also has its owner's extension (admin@).
    d.wait_directory("the extension directory", |d| d.len() == 5)
        .await;

    // Dry run: the plan, and nothing changes.
    let plan = d.sync(true).await;
    first_plan(&plan, [3, 1, 1]);
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
    let r = d.sync(false).await;
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
    d.restart_connector().await;
    d.wait_directory("bob gone from the directory", |d| {
        d.len() == 4 && !has(d, &bob.to_string())
    })
    .await;
    d.renamed_and_removed(&carla).await;

    // The schedule: a new extension arrives by itself.
    let dora = sim.add_extension("104", "Dora Diaz", "dora@example.com");
    d.restart_connector().await;
    d.wait_directory("dora in the directory", |d| has(d, &dora.to_string()))
        .await;
    d.put(json!({"remove": "delete", "interval_seconds": 5}))
        .await;
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

/// Deleting the connector instance leaves nothing of its directory sync
/// behind: its settings go (the list and the settings answer without it, a
/// sync answers 404, not 409), and the users its sync made stay (they are
/// people) without its `directory` marker and its `endpoints` entry, so a
/// new instance given the same id lists them as `matched` instead of
/// taking them over. A user an operator tied to the instance by hand keeps
/// what the operator wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_instance_leaves_nothing_of_its_sync_behind() {
    let sim = RcSim::start(RcSimConfig::default()).await;
    let alice = sim.add_extension("101", "Alice Adams", "alice@example.com");
    sim.add_extension("102", "Bob Brown", "bob@example.com");
    let mut hub = Hub::start(&["plugins/ringcentral"], &[]);
    hub.check_api().await;
    let dora = json!({"username": "dora", "display_name": "Dora by hand",
        "endpoints": {ID: "999"}});
    let (s, v) = hub.call("POST", "/api/v1/users", Some(dora)).await;
    assert_eq!(s, 201, "{v}");
    let dora = hub.get("/api/v1/users/dora").await;

    create(&hub, &sim).await;
    let d = ConnectorDirectory::new(&hub, ID);
    d.put(json!({"remove": "delete", "interval_seconds": 3600}))
        .await;
    d.plan_when_whole().await;
    let r = d.sync(false).await;
    assert_eq!(r["created"], 3, "alice, bob and the owner: {r}");
    let a = hub.get("/api/v1/users/alice").await;
    assert_eq!(
        (&a["attributes"]["directory"], &a["endpoints"][ID]),
        (&json!(ID), &json!(alice.to_string())),
        "{a}"
    );

    let (s, v) = hub
        .call("DELETE", &format!("/api/v1/connectors/{ID}"), None)
        .await;
    assert_eq!(s, 204, "{v}");
    assert_eq!(hub.get("/api/v1/directory/connectors").await, json!([]));
    let path = format!("/api/v1/directory/connectors/{ID}");
    assert_eq!(hub.call("GET", &path, None).await.0, 404);
    let st = hub.get(&format!("{path}/status")).await;
    assert_eq!(st["configured"], false, "{st}");
    let (s, v) = hub.call("POST", &format!("{path}/sync"), None).await;
    assert_eq!(s, 404, "not synced any more, rather than 409: {v}");
    for name in ["alice", "bob"] {
        let u = hub.get(&format!("/api/v1/users/{name}")).await;
        assert!(u["attributes"].get("directory").is_none(), "{u}");
        assert!(u["endpoints"].get(ID).is_none(), "{u}");
        assert_eq!(u["email"], format!("{name}@example.com"), "{u}");
    }
    assert_eq!(hub.get("/api/v1/users/dora").await, dora);
    hub.wait_for(
        "/api/v1/events?limit=100",
        "the release in the event log",
        |v| {
            v.to_string()
                .contains("connector instance rc deleted: 3 users")
        },
    )
    .await;

    // A new instance with the same id: its sync starts clean and does not
    // adopt the users of the old one.
    create(&hub, &sim).await;
    let (s, v) = hub.call("POST", &format!("{path}/sync"), None).await;
    assert_eq!(s, 404, "{v}");
    d.put(json!({"remove": "delete"})).await;
    let plan = d.plan_when_whole().await;
    assert_eq!(
        (action(&plan, "alice"), action(&plan, "bob")),
        ("matched", "matched"),
        "{plan}"
    );
    assert_eq!(
        (&plan["created"], &plan["deleted"]),
        (&json!(0), &json!(0)),
        "{plan}"
    );
}
