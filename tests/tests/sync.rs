//! Bidirectional presence sync (issue 12) end to end: the real hub with a
//! sip-simple instance on a real Kamailio (calls by sipp) and a teams-graph
//! instance on the Graph simulator, one user (alice) on both. A
//! conversation on one platform sets do-not-disturb on the other and lifts
//! it when it ends; plain Busy does nothing; a manual change on a follower
//! is set back and logged; a write the platform refuses shows in the
//! connector's status and does not loop.
//!
//! Needs Kamailio and sipp (`bash .ci/install-test-deps.sh`); each test says
//! it is skipped and passes when they are not installed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hub_e2e::Hub;
use hub_e2e::graph_sim::{GraphSim, SimConfig};
use hub_e2e::kamailio::{AuthMode, Kamailio, SipWatcher, SippProcess, kamailio_available};
use serde_json::{Value, json};

/// alice's Teams UPN and SIP URI.
const UPN: &str = "alice@contoso.onmicrosoft.com";
const SIP: &str = "alice@127.0.0.1";
/// The connector instances.
const PBX: &str = "pbx";
const TEAMS: &str = "teams";

macro_rules! require_kamailio {
    () => {
        if !kamailio_available() {
            eprintln!(
                "skipped: kamailio/sipp are not installed (run `bash .ci/install-test-deps.sh`)"
            );
            return;
        }
    };
}

/// Everything a test runs against.
struct Rig {
    k: Arc<Kamailio>,
    sim: GraphSim,
    hub: Hub,
    /// alice's object id in the simulated tenant.
    alice: String,
}

/// The rules' `sync` object with every field given; `over` replaces some.
fn sync_rules(over: Value) -> Value {
    let mut s = json!({
        "everyone": false,
        "departments": {},
        "instances": null,
        "leading_instances": null,
        "profiles": {},
        "lease_seconds": 3600,
    });
    for (k, v) in over.as_object().unwrap() {
        s[k] = v.clone();
    }
    s
}

/// Kamailio, the Graph simulator (with `sim_cfg`) and a hub with both
/// instances; the rules' sync object is `sync`; alice gets the fields of
/// `user` on top of her SIP URI and UPN. Returns once both instances show
/// alice: the line idle at the PBX, Available in Teams.
async fn rig(sim_cfg: SimConfig, sync: Value, user: Value) -> Rig {
    let k = Arc::new(tokio::task::block_in_place(|| {
        Kamailio::start(AuthMode::None)
    }));
    let sim = GraphSim::start(sim_cfg).await;
    let alice = sim.add_user(UPN);
    sim.set_presence(&alice, "Available", "Available");
    let hub = tokio::task::block_in_place(|| {
        Hub::start(&["plugins/sip-simple", "plugins/teams-graph"], &[])
    });

    let mut rules = hub.get("/api/v1/settings/rules").await;
    rules["sync"] = sync;
    let (s, v) = hub
        .call("PUT", "/api/v1/settings/rules", Some(rules.clone()))
        .await;
    assert_eq!(s, 200, "PUT rules {rules}: {v}");

    let mut u = json!({
        "username": "alice",
        "display_name": "Alice",
        "department": "Sales",
        "sip_uri_rich": SIP,
        "teams_upn": UPN,
    });
    for (k, v) in user.as_object().unwrap() {
        u[k] = v.clone();
    }
    let (s, v) = hub.call("POST", "/api/v1/users", Some(u.clone())).await;
    assert!(s == 200 || s == 201, "POST user {u}: {s} {v}");

    let c = sim.config();
    for (id, plugin, config) in [
        (
            PBX,
            "sip-simple",
            json!({
                "server": format!("127.0.0.1:{}", k.port),
                "uri": "hub@127.0.0.1",
                "subscribe": "both",
                "expires": 120,
                "keepalive_seconds": 1,
            }),
        ),
        (
            TEAMS,
            "teams-graph",
            json!({
                "tenant_id": c.tenant,
                "client_id": c.client_id,
                "client_secret": c.client_secret,
                "authority": sim.authority(),
                "graph_base": sim.graph_base(),
                "poll_seconds": 1,
            }),
        ),
    ] {
        let (s, v) = hub
            .call(
                "POST",
                "/api/v1/connectors",
                Some(json!({"id": id, "plugin": plugin, "config": config})),
            )
            .await;
        assert_eq!(s, 201, "create {id}: {v}");
    }
    hub.wait_for(&endpoints(PBX), "alice's line idle at the PBX", |v| {
        v["endpoints"][SIP]["state"] == "active"
            && v["endpoints"][SIP]["telephony"]["line"] == "idle"
    })
    .await;
    hub.wait_for(&endpoints(TEAMS), "alice available in Teams", |v| {
        v["endpoints"][UPN]["state"] == "active"
            && v["endpoints"][UPN]["rich"]["availability"] == "available"
    })
    .await;
    Rig { k, sim, hub, alice }
}

fn endpoints(id: &str) -> String {
    format!("/api/v1/connectors/{id}/endpoints")
}

/// One platform of alice's sync detail (`GET /api/v1/presence/alice`).
fn platform(detail: &Value, instance: &str) -> Value {
    detail["sync"]["platforms"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["instance"] == instance))
        .cloned()
        .unwrap_or(Value::Null)
}

/// An instance's write-backs, newest first.
async fn writes(hub: &Hub, id: &str) -> Vec<Value> {
    hub.get(&format!("/api/v1/connectors/{id}/writes")).await["writes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// alice's event log entries of kind `sync`, newest first.
async fn sync_events(hub: &Hub) -> Vec<Value> {
    hub.get("/api/v1/events?user=alice&limit=1000").await["events"]
        .as_array()
        .map(|a| a.iter().filter(|e| e["kind"] == "sync").cloned().collect())
        .unwrap_or_default()
}

/// Wait until alice's sync log has an entry whose detail contains every
/// one of `words`; returns that entry.
async fn wait_sync_event(hub: &Hub, words: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let events = sync_events(hub).await;
        if let Some(e) = events.iter().find(|e| {
            let d = e["detail"].as_str().unwrap_or_default();
            words.iter().all(|w| d.contains(w))
        }) {
            return e.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no sync event naming {words:?} within 20 s; alice's sync events: {events:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The setPresence / clearPresence requests the simulator answered for
/// the user with object id `id`: (when, path, status).
fn presence_writes(sim: &GraphSim, id: &str, action: &str) -> Vec<(Instant, u16)> {
    let path = format!("/v1.0/users/{id}/presence/{action}");
    sim.requests()
        .into_iter()
        .filter(|l| l.method == "POST" && l.path.eq_ignore_ascii_case(&path))
        .map(|l| (l.at, l.status))
        .collect()
}

/// Poll `f` every 50 ms for up to `limit`; panics with `what` otherwise.
async fn until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether the hub's application session in the simulator shows DND.
fn dnd_session(sim: &GraphSim, id: &str) -> bool {
    let client = sim.config().client_id;
    sim.sessions(id).iter().any(|s| {
        s.session_id == client && s.availability == "DoNotDisturb" && s.activity == "Presenting"
    })
}

/// A call from bob to alice through Kamailio (`talk_ms` after the answer),
/// on a blocking thread; the handle gives sipp's exit status.
fn call_alice(k: &Arc<Kamailio>, talk_ms: u64) -> tokio::task::JoinHandle<bool> {
    let k = k.clone();
    tokio::task::spawn_blocking(move || k.sipp_call("bob", "alice", talk_ms).success())
}

/// bob calls alice (answered, `talk_ms` long) and the hub holds DND in
/// Teams for it: returns the call and alice's presence detail then. The
/// registration must stay alive for the call: keep the first value.
async fn call_until_held_in_teams(
    r: &Rig,
    talk_ms: u64,
) -> (SippProcess, tokio::task::JoinHandle<bool>, Value) {
    let uas = tokio::task::block_in_place(|| r.k.sipp_register_uas("alice", 300));
    let call = call_alice(&r.k, talk_ms);
    until(
        "the hub's DND session in Teams",
        Duration::from_secs(15),
        || dnd_session(&r.sim, &r.alice),
    )
    .await;
    let detail = r
        .hub
        .wait_for("/api/v1/presence/alice", "DND held in Teams", |v| {
            platform(v, TEAMS)["hold"] == "held"
        })
        .await;
    (uas, call, detail)
}

/// 1. A call through Kamailio (alice answers bob's call; the hub watches
/// her dialog state) sets DND in Teams as the hub's application session,
/// and hanging up lifts it (the session is cleared). The echo of the hub's
/// DND in Teams (DoNotDisturb/Presenting, a conversation activity) starts
/// nothing on the PBX side, and each write is sent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_through_kamailio_sets_dnd_in_teams_and_lifts_it_after_hang_up() {
    require_kamailio!();
    // Sync on for alice herself (everyone stays off).
    let r = rig(
        SimConfig::default(),
        sync_rules(json!({})),
        json!({"sync": true}),
    )
    .await;
    let (_uas, call, detail) = call_until_held_in_teams(&r, 5_000).await;
    assert_eq!(detail["sync"]["enabled"], true, "{detail:#}");
    let pbx = platform(&detail, PBX);
    let teams = platform(&detail, TEAMS);
    assert_eq!(pbx["in_conversation"], true, "{detail:#}");
    // Names the line as the conversation (its wording is the hub's).
    assert!(
        pbx["conversation"]
            .as_str()
            .is_some_and(|c| c.starts_with("line ")),
        "{detail:#}"
    );
    assert_eq!(pbx["endpoint"], SIP, "{detail:#}");
    assert_eq!(teams["endpoint"], UPN, "{detail:#}");
    assert_eq!(teams["in_conversation"], false, "{detail:#}");
    // By default Teams (watched by teams-upn) leads.
    assert_eq!(teams["leader"], true, "{detail:#}");
    assert_eq!(pbx["leader"], false, "{detail:#}");
    let set_id = teams["write_id"].as_u64().expect("the DND write's id");
    let w = r.hub.get(&format!("/api/v1/writes/{set_id}")).await;
    assert_eq!(w["state"], "applied", "{w}");
    assert_eq!(w["instance"], TEAMS, "{w}");
    assert_eq!(w["endpoint"], UPN, "{w}");
    assert!(
        w["action"]
            .as_str()
            .unwrap_or_default()
            .contains("do-not-disturb"),
        "{w}"
    );
    wait_sync_event(&r.hub, &[&set_id.to_string()]).await;

    assert!(call.await.unwrap(), "sipp call failed");
    until("the DND session lifted", Duration::from_secs(20), || {
        r.sim.sessions(&r.alice).is_empty()
    })
    .await;
    let detail = r
        .hub
        .wait_for("/api/v1/presence/alice", "sync at rest", |v| {
            platform(v, TEAMS)["hold"] == "none" && platform(v, PBX)["in_conversation"] == false
        })
        .await;
    assert_eq!(platform(&detail, PBX)["hold"], "none", "{detail:#}");
    let tw = writes(&r.hub, TEAMS).await;
    let restore = tw
        .iter()
        .find(|w| w["action"] == "restore")
        .unwrap_or_else(|| panic!("no restore write to Teams: {tw:#?}"));
    let restore_id = restore["id"].as_u64().unwrap();
    let restore = r
        .hub
        .wait_for(&format!("/api/v1/writes/{restore_id}"), "restored", |w| {
            w["state"] != "pending"
        })
        .await;
    assert_eq!(restore["state"], "restored", "{restore}");
    wait_sync_event(&r.hub, &[&restore_id.to_string()]).await;
    // A settle time for any late echo, then: one DND and one lift, no loop.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sets = presence_writes(&r.sim, &r.alice, "setPresence");
    let clears = presence_writes(&r.sim, &r.alice, "clearPresence");
    assert_eq!(sets.len(), 1, "setPresence requests: {sets:?}");
    assert_eq!(clears.len(), 1, "clearPresence requests: {clears:?}");
    assert_eq!(tw.len(), 2, "writes to Teams: {tw:#?}");
    let pw = writes(&r.hub, PBX).await;
    assert!(pw.is_empty(), "the PBX was written to: {pw:#?}");
}

/// 2. A Teams meeting sets DND on the PBX side: the hub's PUBLISH reaches a
/// SIP watcher of alice's presence on Kamailio (PIDF with do-not-disturb);
/// when the meeting ends it is lifted. Sync on for everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_meeting_sets_dnd_on_the_pbx_seen_by_a_sip_watcher() {
    require_kamailio!();
    let r = rig(
        SimConfig::default(),
        sync_rules(json!({"everyone": true})),
        json!({}),
    )
    .await;
    let watcher = SipWatcher::new(&r.k, "carol");
    watcher.subscribe("alice", "presence", 300);
    assert!(
        tokio::task::block_in_place(|| watcher.wait_active(
            "alice",
            "presence",
            Duration::from_secs(10)
        )),
        "the watcher's subscription was not accepted: {:?}",
        watcher.notifies()
    );
    let mark = watcher.count();
    r.sim.set_presence(&r.alice, "Busy", "InAMeeting");
    let dnd = tokio::task::block_in_place(|| {
        watcher.wait_for(mark, Duration::from_secs(20), |n| {
            n.target == "alice" && n.body.contains("do-not-disturb")
        })
    })
    .unwrap_or_else(|| {
        panic!(
            "no NOTIFY with DND for alice at the watcher: {:#?}\nhub log:\n{}",
            watcher.notifies_since(mark),
            r.hub.log()
        )
    });
    assert!(
        dnd.body.contains("entity=\"sip:alice@127.0.0.1\""),
        "{dnd:?}"
    );
    let detail = r
        .hub
        .wait_for("/api/v1/presence/alice", "DND held at the PBX", |v| {
            platform(v, PBX)["hold"] == "held"
        })
        .await;
    assert_eq!(detail["sync"]["enabled"], true, "{detail:#}");
    let teams = platform(&detail, TEAMS);
    assert_eq!(teams["in_conversation"], true, "{detail:#}");
    assert!(
        teams["conversation"]
            .as_str()
            .is_some_and(|c| c.contains("meeting")),
        "{detail:#}"
    );
    let set_id = platform(&detail, PBX)["write_id"]
        .as_u64()
        .expect("the DND write's id");
    let w = r.hub.get(&format!("/api/v1/writes/{set_id}")).await;
    assert_eq!(w["state"], "applied", "{w}");
    assert_eq!(w["instance"], PBX, "{w}");

    let mark = watcher.count();
    r.sim.set_presence(&r.alice, "Available", "Available");
    tokio::task::block_in_place(|| {
        watcher.wait_for(mark, Duration::from_secs(20), |n| {
            n.target == "alice" && !n.body.contains("do-not-disturb")
        })
    })
    .unwrap_or_else(|| {
        panic!(
            "DND not lifted at the watcher: {:#?}",
            watcher.notifies_since(mark)
        )
    });
    r.hub
        .wait_for("/api/v1/presence/alice", "lifted at the PBX", |v| {
            platform(v, PBX)["hold"] == "none"
        })
        .await;
    let pw = writes(&r.hub, PBX).await;
    assert!(
        pw.iter()
            .any(|w| w["action"] == "restore" && w["state"] == "restored"),
        "{pw:#?}"
    );
    // The echo of the PUBLISH at the hub's own PBX subscription started
    // nothing towards Teams, and the lift came once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tw = writes(&r.hub, TEAMS).await;
    assert!(tw.is_empty(), "Teams was written to: {tw:#?}");
    assert_eq!(writes(&r.hub, PBX).await.len(), 2, "{pw:#?}");
    let after = watcher.notifies_since(mark);
    assert!(
        after.iter().all(|n| !n.body.contains("do-not-disturb")),
        "DND came back at the watcher: {after:#?}"
    );
}

/// 3. Plain Busy in Teams (a calendar entry, a manual Busy) is no
/// conversation: nothing is written to the PBX. Then a call in Teams is,
/// so sync was on all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_busy_in_teams_changes_nothing() {
    require_kamailio!();
    let r = rig(
        SimConfig::default(),
        sync_rules(json!({"everyone": true})),
        json!({}),
    )
    .await;
    r.sim.set_presence(&r.alice, "Busy", "Busy");
    r.hub
        .wait_for(&endpoints(TEAMS), "alice busy in Teams", |v| {
            v["endpoints"][UPN]["rich"]["availability"] == "busy"
        })
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pw = writes(&r.hub, PBX).await;
    assert!(pw.is_empty(), "plain Busy wrote to the PBX: {pw:#?}");
    let detail = r.hub.get("/api/v1/presence/alice").await;
    assert_eq!(detail["sync"]["enabled"], true, "{detail:#}");
    assert_eq!(
        platform(&detail, TEAMS)["in_conversation"],
        false,
        "{detail:#}"
    );
    assert_eq!(platform(&detail, PBX)["hold"], "none", "{detail:#}");

    // The control: a Teams call is a conversation.
    r.sim.set_presence(&r.alice, "Busy", "InACall");
    r.hub
        .wait_for("/api/v1/presence/alice", "DND held at the PBX", |v| {
            platform(v, PBX)["hold"] == "held"
        })
        .await;
    assert_eq!(writes(&r.hub, PBX).await.len(), 1);
}

/// 4. With the PBX leading, Teams is a follower: while the hub holds DND
/// there for a PBX call, alice picks Available in Teams; the hub sets DND
/// back (a new setPresence) and the event log says so, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_change_on_a_follower_is_set_back_and_logged() {
    require_kamailio!();
    let r = rig(
        SimConfig::default(),
        sync_rules(json!({"everyone": true, "leading_instances": [PBX]})),
        json!({}),
    )
    .await;
    let (_uas, call, detail) = call_until_held_in_teams(&r, 9_000).await;
    assert_eq!(platform(&detail, PBX)["leader"], true, "{detail:#}");
    assert_eq!(platform(&detail, TEAMS)["leader"], false, "{detail:#}");
    let first_id = platform(&detail, TEAMS)["write_id"].as_u64().unwrap();
    // Teams shows the hub's DND (the connector polls every second) before
    // alice, seeing it, picks Available; a change within the same poll
    // would not be seen at all (Available before and after).
    r.hub
        .wait_for(&endpoints(TEAMS), "the DND echo from Teams", |v| {
            v["endpoints"][UPN]["rich"]["availability"] == "do-not-disturb"
        })
        .await;

    let manual = Instant::now();
    r.sim.user_sets_status(&r.alice, "Available", "Available");
    until(
        "the hub setting DND back in Teams",
        Duration::from_secs(15),
        || {
            presence_writes(&r.sim, &r.alice, "setPresence")
                .iter()
                .any(|(at, status)| *at > manual && *status == 200)
        },
    )
    .await;
    let event = wait_sync_event(&r.hub, &["set back"]).await;
    assert_eq!(event["username"], "alice", "{event}");
    let tw = writes(&r.hub, TEAMS).await;
    assert!(
        tw.iter().any(|w| w["id"].as_u64() != Some(first_id)
            && w["action"]
                .as_str()
                .unwrap_or_default()
                .contains("do-not-disturb")),
        "no second DND write: {tw:#?}"
    );
    // Once: alice's own choice still shows in Teams (a preferred presence
    // outranks every session), and the hub does not keep writing at it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again: Vec<_> = presence_writes(&r.sim, &r.alice, "setPresence")
        .into_iter()
        .filter(|(at, _)| *at > manual)
        .collect();
    assert!(
        (1..=2).contains(&again.len()),
        "setPresence after the manual change: {again:?}"
    );

    assert!(call.await.unwrap(), "sipp call failed");
    until("the DND session lifted", Duration::from_secs(20), || {
        r.sim.sessions(&r.alice).is_empty()
    })
    .await;
    let pw = writes(&r.hub, PBX).await;
    assert!(pw.is_empty(), "the PBX was written to: {pw:#?}");
}

/// 5. A tenant that consented to reading presence only: the DND write is
/// refused (403). The connector's status shows it, the merged presence does
/// not claim a DND that was never written, the log names the status, and
/// the hub does not loop: one setPresence per conversation start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_write_shows_in_status_and_does_not_loop() {
    require_kamailio!();
    let r = rig(
        SimConfig {
            app_roles: vec!["Presence.Read.All".into(), "User.Read.All".into()],
            ..SimConfig::default()
        },
        sync_rules(json!({"everyone": true})),
        json!({}),
    )
    .await;
    let _uas = tokio::task::block_in_place(|| r.k.sipp_register_uas("alice", 300));
    let call = call_alice(&r.k, 5_000);
    let st = r
        .hub
        .wait_for(
            &format!("/api/v1/connectors/{TEAMS}/status"),
            "a failed write",
            |v| v["status"]["writes_failed"].as_u64().unwrap_or(0) >= 1,
        )
        .await;
    let last = &st["status"]["last_write"];
    assert_eq!(last["state"], "failed", "{st:#}");
    assert_eq!(last["platform_status"], 403, "{st:#}");
    assert_eq!(last["instance"], TEAMS, "{st:#}");
    let detail = r
        .hub
        .wait_for("/api/v1/presence/alice", "the refusal in the detail", |v| {
            matches!(
                platform(v, TEAMS)["hold"].as_str(),
                Some("failed" | "refused")
            )
        })
        .await;
    assert_eq!(
        platform(&detail, PBX)["in_conversation"],
        true,
        "{detail:#}"
    );
    assert_ne!(detail["rich"]["state"], "do-not-disturb", "{detail:#}");
    wait_sync_event(&r.hub, &["403"]).await;
    assert!(call.await.unwrap(), "sipp call failed");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sets = presence_writes(&r.sim, &r.alice, "setPresence");
    assert_eq!(sets.len(), 1, "setPresence for one call: {sets:?}");
    assert!(sets.iter().all(|(_, s)| *s == 403), "{sets:?}");

    // A second conversation: at most one more attempt.
    let call = call_alice(&r.k, 3_000);
    assert!(call.await.unwrap(), "sipp call failed");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sets = presence_writes(&r.sim, &r.alice, "setPresence");
    assert!(
        (1..=2).contains(&sets.len()),
        "setPresence for two calls: {sets:?}"
    );
    let detail = r.hub.get("/api/v1/presence/alice").await;
    assert_ne!(detail["rich"]["state"], "do-not-disturb", "{detail:#}");
    let pw = writes(&r.hub, PBX).await;
    assert!(pw.is_empty(), "the PBX was written to: {pw:#?}");
}

/// What an operator sets and reads about sync through the API: the
/// profiles with their descriptions, each connector's profile, and clear
/// errors for bad values (nothing stored).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_settings_are_described_and_checked() {
    let hub = Hub::start(&["plugins/http-push"], &[]);
    let (code, profiles) = hub.call("GET", "/api/v1/sync/profiles", None).await;
    assert_eq!(code, 200, "{profiles}");
    let names: Vec<&str> = profiles["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "calls-and-meetings",
            "calls-including-ringing",
            "calls-only",
            "calls-meetings-and-calendar"
        ]
    );
    for p in profiles["profiles"].as_array().unwrap() {
        let d = p["description"].as_str().unwrap();
        assert!(d.contains("Plain Busy"), "{d}");
    }

    let (code, body) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": "cti", "plugin": "http-push",
                        "config": {"shared_secret": "0123456789abcdef0123"}})),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let c = hub.get("/api/v1/connectors/cti").await;
    assert_eq!(c["sync_profile"]["name"], "calls-and-meetings");

    // A profile per instance, with an override: described in its own words.
    let mut rules = hub.get("/api/v1/settings/rules").await;
    assert_eq!(rules["sync"]["everyone"], false, "sync is off by default");
    rules["sync"]["profiles"] =
        json!({"cti": {"preset": "calls-only", "line_states": ["ringing", "in-call"]}});
    let (code, body) = hub
        .call("PUT", "/api/v1/settings/rules", Some(rules.clone()))
        .await;
    assert_eq!(code, 200, "{body}");
    let c = hub.get("/api/v1/connectors/cti").await;
    assert_eq!(c["sync_profile"]["name"], "custom (calls-only)");
    let d = c["sync_profile"]["description"].as_str().unwrap();
    assert!(d.contains("ringing") && d.contains("connected"), "{d}");

    // Bad values: 422 naming the field and what is allowed; rules unchanged.
    for (bad, field) in [
        (json!({"cti": {"preset": "always"}}), "sync.profiles.cti"),
        (
            json!({"cti": {"line_states": ["idle"]}}),
            "sync.profiles.cti",
        ),
    ] {
        let mut r = rules.clone();
        r["sync"]["profiles"] = bad;
        let (code, body) = hub.call("PUT", "/api/v1/settings/rules", Some(r)).await;
        assert_eq!(code, 422, "{body}");
        assert_eq!(body["field"], field, "{body}");
    }
    let mut r = rules.clone();
    r["sync"]["lease_seconds"] = json!(5);
    let (code, body) = hub.call("PUT", "/api/v1/settings/rules", Some(r)).await;
    assert_eq!(
        (code, body["field"].as_str()),
        (422, Some("sync.lease_seconds")),
        "{body}"
    );
    let mut r = rules.clone();
    r["sync"]["everyone"] = json!("yes");
    let (code, body) = hub.call("PUT", "/api/v1/settings/rules", Some(r)).await;
    // A value of the wrong type is a malformed body, named all the same.
    assert_eq!(
        (code, body["field"].as_str()),
        (400, Some("sync.everyone")),
        "{body}"
    );
    assert_eq!(
        hub.get("/api/v1/connectors/cti").await["sync_profile"]["name"],
        "custom (calls-only)"
    );

    // Per user: on, and which platforms; a bad instance list is refused.
    let (code, body) = hub
        .call(
            "POST",
            "/api/v1/users",
            Some(json!({"username": "alice", "extension": "2001",
                        "sync": true, "sync_instances": ["cti"]})),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let u = hub.get("/api/v1/users/alice").await;
    assert_eq!(
        (u["sync"].as_bool(), u["sync_instances"].clone()),
        (Some(true), json!(["cti"]))
    );
    let detail = hub.get("/api/v1/presence/alice").await;
    assert_eq!(detail["sync"]["enabled"], true, "{detail}");
    let (code, body) = hub
        .call(
            "PUT",
            "/api/v1/users/alice",
            Some(json!({"username": "alice", "sync_instances": [""]})),
        )
        .await;
    assert_eq!(
        (code, body["field"].as_str()),
        (422, Some("sync_instances")),
        "{body}"
    );
}

/// 7. The hub's holds survive a crash: the hub is killed (SIGKILL) while it
/// holds DND in Teams for a PBX call; the call ends while it is down; once
/// it is back it lifts the DND it left (the session is cleared), rather
/// than waiting for the write's lease to lapse or reading its own DND as
/// a Teams conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnd_left_by_a_killed_hub_is_lifted_after_its_restart() {
    require_kamailio!();
    let mut r = rig(
        SimConfig::default(),
        sync_rules(json!({"everyone": true})),
        json!({}),
    )
    .await;
    let (_uas, call, _) = call_until_held_in_teams(&r, 4_000).await;
    assert!(dnd_session(&r.sim, &r.alice));
    // Holds are stored off the service's thread: give the writer a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::block_in_place(|| r.hub.kill9());
    assert!(call.await.unwrap(), "sipp call failed");
    assert!(
        dnd_session(&r.sim, &r.alice),
        "the DND stays while the hub is down"
    );
    tokio::task::block_in_place(|| r.hub.restart());
    until(
        "the DND the killed hub left lifted",
        Duration::from_secs(30),
        || r.sim.sessions(&r.alice).is_empty(),
    )
    .await;
    wait_sync_event(&r.hub, &["restore"]).await;
    // Nothing was written to the PBX: the hub's own DND in Teams
    // (DoNotDisturb/Presenting) was not taken for a Teams conversation.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pw = writes(&r.hub, PBX).await;
    assert!(pw.is_empty(), "the PBX was written to: {pw:#?}");
    assert!(r.sim.sessions(&r.alice).is_empty());
}

/// 8. A restart in the middle of a call keeps the DND without a flap: the
/// hub comes back while the PBX call goes on, renews its DND in Teams
/// (never clearing it first), and lifts it once the call ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_during_a_call_keeps_the_dnd_without_a_flap() {
    require_kamailio!();
    let mut r = rig(
        SimConfig::default(),
        sync_rules(json!({"everyone": true})),
        json!({}),
    )
    .await;
    let (_uas, call, _) = call_until_held_in_teams(&r, 14_000).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::block_in_place(|| r.hub.restart());
    // Back, the call still on: the hold is renewed, never lifted.
    r.hub
        .wait_for(
            "/api/v1/presence/alice",
            "the DND renewed after the restart",
            |v| platform(v, TEAMS)["hold"] == "held" && platform(v, PBX)["in_conversation"] == true,
        )
        .await;
    assert!(
        presence_writes(&r.sim, &r.alice, "clearPresence").is_empty(),
        "the DND was cleared during the call"
    );
    assert!(dnd_session(&r.sim, &r.alice));
    assert!(call.await.unwrap(), "sipp call failed");
    until(
        "the DND lifted after the call",
        Duration::from_secs(20),
        || r.sim.sessions(&r.alice).is_empty(),
    )
    .await;
    assert_eq!(presence_writes(&r.sim, &r.alice, "clearPresence").len(), 1);
}
