//! Users kept in step with the Teams connector's directory: the tenant's
//! users as the Teams connector (`plugins/teams-graph`) reads them from the
//! Graph simulator (`hub_e2e::graph_sim`, `GET /v1.0/users` paged by
//! `@odata.nextLink`), through the real hub and its API. A dry run lists
//! the users it would create and changes nothing; the sync creates them
//! (marked `directory: teams`, their UPN in `endpoints.teams`) and they
//! show Teams presence merged; a person an operator made (same email) is
//! never touched nor duplicated; accounts without a mailbox are rejected
//! naming the email; a renamed user renames its hub user; a user removed
//! from the tenant is reported (`remove: report`), then deleted
//! (`remove: delete`). Without User.Read.All the connector is forbidden
//! naming it, and presence still flows.

use std::time::Duration;

use hub_e2e::Hub;
use hub_e2e::directory::{ConnectorDirectory, first_plan, has, operator_carla};
use hub_e2e::graph_sim::{GraphSim, SimConfig};
use serde_json::{Value, json};

const ID: &str = "teams";

fn config(sim: &GraphSim) -> Value {
    let c = sim.config();
    json!({
        "tenant_id": c.tenant,
        "client_id": c.client_id,
        "client_secret": c.client_secret,
        "authority": sim.authority(),
        "graph_base": sim.graph_base(),
        "poll_seconds": 1,
    })
}

async fn create(hub: &Hub, config: Value, watches: &[String]) {
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": ID, "plugin": "teams-graph", "config": config, "watches": watches})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
}

/// The `GET /v1.0/users` pages the simulator answered so far.
fn user_pages(sim: &GraphSim) -> Vec<String> {
    sim.requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path == "/v1.0/users" && r.status == 200)
        .map(|r| r.query)
        .collect()
}

const ALICE: &str = "alice@contoso.onmicrosoft.com";
const BOB: &str = "bob@contoso.onmicrosoft.com";
const CAROL: &str = "carol@contoso.onmicrosoft.com";
const ROOM: &str = "room1@contoso.onmicrosoft.com";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_follow_the_teams_directory() {
    let sim = GraphSim::start(SimConfig::default()).await;
    let alice = sim.add_person(ALICE, "Alice Adams", Some("Alice.Adams@contoso.com"));
    sim.add_person(BOB, "Bob Brown", Some("bob@contoso.com"));
    sim.add_person(CAROL, "Carol Clark", Some("carol@contoso.com"));
    // A meeting room: no mailbox address, so nobody to match.
    sim.add_person(ROOM, "Room 1", None);
    // Two users a page: the five (with the service account) take three.
    sim.set_users_page_limit(2);
    let mut hub = Hub::start(&["plugins/teams-graph"], &[]);
    hub.check_api().await;

    // Carol is a user an operator made, under another name, by email.
    let carla = operator_carla(&hub, "Carol@Contoso.com").await;

    create(&hub, config(&sim), &[]).await;
    let d = ConnectorDirectory::new(&hub, ID);
    d.put(json!({"remove": "report"})).await;
    let eps = d
        .wait_directory("the tenant's users", |d| d.len() == 5)
        .await;
    let dir = eps["directory"].as_array().unwrap();
    let a = dir.iter().find(|e| e["endpoint"] == ALICE).expect("alice");
    assert_eq!(a["email"], "Alice.Adams@contoso.com", "{a}");
    assert_eq!(a["display_name"], "Alice Adams", "{a}");
    let pages = user_pages(&sim);
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert_eq!(
        pages[0], "$select=id,displayName,mail,userPrincipalName&$top=999",
        "{pages:?}"
    );
    assert!(pages[1].contains("$skiptoken="), "{pages:?}");

    // Dry run: the plan, and nothing changes.
    let plan = d.plan_when_whole().await;
    first_plan(&plan, [2, 1, 2]);
    let rejected: Vec<&Value> = plan["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["action"] == "rejected")
        .collect();
    assert!(
        rejected
            .iter()
            .any(|u| u["endpoint"] == ROOM && u["field"] == "email"),
        "{plan}"
    );
    assert_eq!(hub.call("GET", "/api/v1/users/bob", None).await.0, 404);

    // The sync creates them, marked and tied to their UPN.
    let r = d.sync(false).await;
    assert_eq!(
        (r["applied"].as_bool(), r["created"].as_u64()),
        (Some(true), Some(2)),
        "{r}"
    );
    let a = hub.get("/api/v1/users/alice.adams").await;
    assert_eq!(a["display_name"], "Alice Adams", "{a}");
    assert_eq!(a["email"], "Alice.Adams@contoso.com", "{a}");
    assert_eq!(a["endpoints"][ID], ALICE, "{a}");
    assert_eq!(a["attributes"]["directory"], ID, "{a}");
    // The operator's user is untouched, and not doubled.
    assert_eq!(hub.get("/api/v1/users/carla").await, carla);
    assert_eq!(hub.call("GET", "/api/v1/users/carol", None).await.0, 404);

    // The new users show Teams presence, merged.
    sim.set_presence(&alice, "Busy", "InACall");
    let p = hub
        .wait_for("/api/v1/presence/alice.adams", "alice in a call", |v| {
            v["rich"]["state"] == "busy"
        })
        .await;
    assert_eq!(p["rich"]["source"], ID, "{p}");
    let bob = sim.id_of(BOB);
    sim.set_presence(&bob, "DoNotDisturb", "Presenting");
    hub.wait_for("/api/v1/presence/bob", "bob presenting", |v| {
        v["rich"]["state"] == "do-not-disturb" && v["rich"]["source"] == ID
    })
    .await;

    // A renamed user renames its hub user; a removed one is reported.
    sim.rename_user(ALICE, "Alice Meyer");
    sim.remove_user(BOB);
    // The connector reads its directory again when it starts.
    d.restart_connector().await;
    d.wait_directory("bob gone from the directory", |d| {
        d.len() == 4 && !has(d, BOB)
    })
    .await;
    d.renamed_and_removed(&carla).await;
    hub.wait_for(
        "/api/v1/events?limit=100",
        "the sync in the event log",
        |v| v.to_string().contains("directory sync of teams"),
    )
    .await;
}

/// Without User.Read.All the directory read is refused: the connector is
/// forbidden naming the permission, presence of a watched object id still
/// flows, and no directory reaches the hub. With `directory: false` the
/// connector does not ask.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_directory_names_the_permission_and_presence_flows() {
    let sim = GraphSim::start(SimConfig {
        app_roles: vec!["Presence.Read.All".into(), "Presence.ReadWrite.All".into()],
        ..SimConfig::default()
    })
    .await;
    let alice = sim.add_person(ALICE, "Alice Adams", Some("alice@contoso.com"));
    sim.set_presence(&alice, "Away", "Away");
    let mut hub = Hub::start(&["plugins/teams-graph"], &[]);
    hub.check_api().await;
    create(&hub, config(&sim), std::slice::from_ref(&alice)).await;
    let st = hub
        .wait_for(
            &format!("/api/v1/connectors/{ID}/status"),
            "forbidden",
            |v| v["status"]["status"] == "forbidden",
        )
        .await;
    let detail = st["status"]["status_detail"].as_str().unwrap_or_default();
    assert!(detail.contains("User.Read.All (application)"), "{st}");
    assert!(detail.contains("list the tenant's users"), "{st}");
    hub.wait_for(
        &format!("/api/v1/connectors/{ID}/endpoints"),
        "alice's presence",
        |v| v["endpoints"][alice.as_str()]["rich"]["availability"] == "away",
    )
    .await;
    let eps = hub.get(&format!("/api/v1/connectors/{ID}/endpoints")).await;
    assert!(
        eps["directory"].as_array().is_none_or(|d| d.is_empty()),
        "{eps}"
    );
    ConnectorDirectory::new(&hub, ID)
        .put(json!({"remove": "report"}))
        .await;
    let (s, v) = hub
        .call(
            "POST",
            &format!("/api/v1/directory/connectors/{ID}/sync?dry_run=true"),
            None,
        )
        .await;
    assert_eq!(s, 409, "no directory, no sync: {v}");
    let refused = sim
        .requests()
        .iter()
        .filter(|r| r.path == "/v1.0/users" && r.status == 403)
        .count();
    assert_eq!(refused, 1, "asked once, then later each time");

    // Switched off: not asked at all.
    let (s, v) = hub
        .call("DELETE", &format!("/api/v1/connectors/{ID}"), None)
        .await;
    assert!(s == 200 || s == 204, "{s} {v}");
    let mut cfg = config(&sim);
    cfg["directory"] = json!(false);
    create(&hub, cfg, std::slice::from_ref(&alice)).await;
    let st = hub
        .wait_for(
            &format!("/api/v1/connectors/{ID}/status"),
            "up and running",
            |v| v["status"]["status"] == "up-and-running",
        )
        .await;
    assert!(!st.to_string().contains("User.Read.All"), "{st}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let asked = sim
        .requests()
        .iter()
        .filter(|r| r.path == "/v1.0/users")
        .count();
    assert_eq!(asked, 1, "no directory read with directory: false");
}

/// An application token from the simulator (client credentials).
async fn app_token(http: &reqwest::Client, sim: &GraphSim) -> String {
    let c = sim.config();
    let ok: Value = http
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
    ok["access_token"].as_str().unwrap().to_string()
}

async fn get(http: &reqwest::Client, url: &str, bearer: Option<&str>) -> (u16, Value) {
    let mut r = http.get(url);
    if let Some(b) = bearer {
        r = r.bearer_auth(b);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.json::<Value>().await.unwrap())
}

/// The simulator's `GET /v1.0/users` is as strict as Graph: a token, the
/// permission, `$top` 1 to 999 (Graph's 400 `Request_UnsupportedQuery`
/// beyond), known `$select` properties, a valid `$skiptoken`; pages follow
/// `@odata.nextLink` with `$select` and `$top` kept, `mail` null where the
/// account has no mailbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_user_list_refuses_what_graph_refuses() {
    let http = reqwest::Client::new();
    let select = "$select=id,displayName,mail,userPrincipalName";
    // A token without User.Read.All is refused.
    let weak = GraphSim::start(SimConfig {
        app_roles: vec!["Presence.Read.All".into()],
        ..SimConfig::default()
    })
    .await;
    let t = app_token(&http, &weak).await;
    let url = format!("{}/users?{select}", weak.graph_base());
    let (s, v) = get(&http, &url, Some(&t)).await;
    assert_eq!(
        (s, &v["error"]["code"]),
        (403, &json!("Authorization_RequestDenied")),
        "{v}"
    );

    let sim = GraphSim::start(SimConfig::default()).await;
    for n in 0..3 {
        sim.add_person(
            &format!("user{n}@contoso.onmicrosoft.com"),
            &format!("User {n}"),
            (n != 1).then(|| format!("user{n}@contoso.com")).as_deref(),
        );
    }
    let users = |q: &str| format!("{}/users?{q}", sim.graph_base());
    let (s, v) = get(&http, &users(select), None).await;
    assert_eq!(
        (s, &v["error"]["code"]),
        (401, &json!("InvalidAuthenticationToken")),
        "{v}"
    );
    let t = app_token(&http, &sim).await;
    let t = Some(t.as_str());
    let (s, v) = get(&http, &users(&format!("{select}&$top=1000")), t).await;
    assert_eq!(
        (s, &v["error"]["code"]),
        (400, &json!("Request_UnsupportedQuery")),
        "{v}"
    );
    assert!(
        v["error"]["message"].as_str().unwrap().contains("999"),
        "{v}"
    );
    let (s, v) = get(&http, &users("$top=0"), t).await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = get(&http, &users("$select=id,shoeSize"), t).await;
    assert_eq!(
        (s, &v["error"]["code"]),
        (400, &json!("Request_BadRequest")),
        "{v}"
    );
    let (s, v) = get(&http, &users("$skiptoken=forged"), t).await;
    assert_eq!(s, 400, "{v}");

    // Pages of two: the service account and three users take two pages.
    let (s, first) = get(&http, &users(&format!("{select}&$top=2")), t).await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["value"].as_array().unwrap().len(), 2, "{first}");
    assert_eq!(
        first["value"][0]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["displayName", "id", "mail", "userPrincipalName"],
        "only what $select names"
    );
    let next = first["@odata.nextLink"].as_str().expect("a next page");
    assert!(next.starts_with(&sim.graph_base()), "{next}");
    assert!(next.contains("$top=2") && next.contains(select), "{next}");
    let (s, second) = get(&http, next, t).await;
    assert_eq!(s, 200, "{second}");
    let page = second["value"].as_array().unwrap();
    assert_eq!(page.len(), 2, "{second}");
    assert!(
        second.get("@odata.nextLink").is_none(),
        "the last page: {second}"
    );
    let nomail = page
        .iter()
        .chain(first["value"].as_array().unwrap())
        .find(|u| u["userPrincipalName"] == "user1@contoso.onmicrosoft.com")
        .expect("user1");
    assert!(nomail["mail"].is_null(), "{nomail}");
}
