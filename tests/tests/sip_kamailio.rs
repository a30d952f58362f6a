//! The SIP/SIMPLE connector against a real Kamailio presence server and call
//! proxy, through the real hub binary and its API.

use std::time::{Duration, Instant};

use hub_e2e::Hub;
use hub_e2e::kamailio::{AuthMode, Kamailio, password};
use serde_json::{Value, json};

fn pidf(user: &str, basic: &str, activity: &str, note: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:{user}@127.0.0.1">
  <tuple id="t-{user}"><status><basic>{basic}</basic></status><note>{note}</note></tuple>
  <dm:person id="p-{user}"><rpid:activities>{activity}</rpid:activities></dm:person>
</presence>"#
    )
}

async fn sip_connector(
    hub: &Hub,
    id: &str,
    k: &Kamailio,
    transport: &str,
    subscribe: &str,
    pw: &str,
    watches: &[&str],
) {
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({
                "id": id,
                "plugin": "sip-simple",
                "config": {
                    "server": format!("127.0.0.1:{}", k.port),
                    "transport": transport,
                    "uri": "hub@127.0.0.1",
                    "password": pw,
                    "subscribe": subscribe,
                    "expires": 60,
                    "keepalive_seconds": 1,
                },
                "watches": watches,
            })),
        )
        .await;
    assert_eq!(s, 201, "{v}");
}

fn endpoints(id: &str) -> String {
    format!("/api/v1/connectors/{id}/endpoints")
}

fn rich(v: &Value, ep: &str) -> Value {
    v["endpoints"][ep]["rich"].clone()
}

async fn presence_round_trip(transport: &str) {
    let k = Kamailio::start(AuthMode::None);
    k.sipp_publish(
        "alice",
        &pidf("alice", "open", "<rpid:away/>", "at lunch"),
        300,
    );
    let hub = Hub::start(&["plugins/sip-simple"], &[]);
    sip_connector(
        &hub,
        "pbx",
        &k,
        transport,
        "presence",
        &password("hub"),
        &["alice", "bob"],
    )
    .await;
    let v = hub
        // Both subscriptions' first NOTIFYs, in whichever order they come.
        .wait_for(&endpoints("pbx"), "alice away, bob watched", |v| {
            rich(v, "alice")["availability"] == "away" && v["endpoints"]["bob"]["state"] == "active"
        })
        .await;
    assert_eq!(rich(&v, "alice")["note"], "at lunch");
    assert_eq!(v["endpoints"]["alice"]["state"], "active");
    // bob published nothing yet: watched, active, unknown.
    assert_eq!(rich(&v, "bob")["availability"], "unknown");
    assert_eq!(
        hub.get("/api/v1/connectors/pbx/status").await["status"]["status"],
        "up-and-running"
    );
    // A change is pushed.
    k.sipp_publish(
        "alice",
        &pidf("alice", "open", "<rpid:on-the-phone/>", "call"),
        300,
    );
    let v = hub
        .wait_for(&endpoints("pbx"), "alice on the phone", |v| {
            rich(v, "alice")["activity"] == "in-a-call"
        })
        .await;
    assert_eq!(rich(&v, "alice")["availability"], "busy");
    // Unwatch sends Expires: 0 in the subscription's dialog.
    let (s, _) = hub
        .call(
            "PUT",
            "/api/v1/connectors/pbx/watches",
            Some(json!({"endpoints": ["bob"]})),
        )
        .await;
    assert_eq!(s, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = k.log();
        if log
            .lines()
            .any(|l| l.contains("RX SUBSCRIBE sip:") && l.contains("event=presence expires=0"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no SUBSCRIBE with Expires: 0 reached Kamailio:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn presence_published_then_watched_over_udp() {
    presence_round_trip("udp").await;
}

#[tokio::test]
async fn presence_published_then_watched_over_tcp() {
    presence_round_trip("tcp").await;
}

#[tokio::test]
async fn digest_auth_401_and_407_with_right_and_wrong_password() {
    for mode in [AuthMode::Www, AuthMode::Proxy] {
        let k = Kamailio::start(mode);
        k.sipp_publish("carol", &pidf("carol", "open", "<rpid:busy/>", "busy"), 300);
        let hub = Hub::start(&["plugins/sip-simple"], &[]);
        sip_connector(
            &hub,
            "good",
            &k,
            "udp",
            "presence",
            &password("hub"),
            &["carol"],
        )
        .await;
        sip_connector(
            &hub,
            "bad",
            &k,
            "udp",
            "presence",
            "wrong-password",
            &["carol"],
        )
        .await;
        hub.wait_for(&endpoints("good"), "carol busy", |v| {
            rich(v, "carol")["availability"] == "busy"
        })
        .await;
        let st = hub
            .wait_for("/api/v1/connectors/bad/status", "forbidden", |v| {
                v["status"]["status"] == "forbidden"
            })
            .await;
        assert!(
            st["status"]["status_detail"]
                .as_str()
                .unwrap()
                .contains("hub"),
            "{st}"
        );
        let eps = hub.get(&endpoints("bad")).await;
        assert_eq!(eps["endpoints"]["carol"]["state"], "access-denied", "{eps}");
        assert!(
            !hub.log().contains("wrong-password"),
            "a password reached the log"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialog_state_of_a_real_call_through_the_proxy() {
    let k = Kamailio::start(AuthMode::None);
    let hub = Hub::start(&["plugins/sip-simple"], &[]);
    sip_connector(&hub, "blf", &k, "udp", "dialog", &password("hub"), &["bob"]).await;
    hub.wait_for(&endpoints("blf"), "bob watched", |v| {
        v["endpoints"]["bob"]["state"] == "active"
    })
    .await;
    let _uas = k.sipp_register_uas("bob", 1500);
    // Record the line states the hub shows while the call runs.
    let poller = {
        let (http, url) = (hub.http.clone(), hub.url(&endpoints("blf")));
        tokio::spawn(async move {
            let mut seen: Vec<String> = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                let v: Value = http
                    .get(&url)
                    .bearer_auth(hub_e2e::TOKEN)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if let Some(line) = v["endpoints"]["bob"]["telephony"]["line"].as_str()
                    && seen.last().map(String::as_str) != Some(line)
                {
                    seen.push(line.to_string());
                }
                if seen.iter().any(|s| s == "in-call")
                    && seen.last().map(String::as_str) == Some("idle")
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            seen
        })
    };
    let status = tokio::task::block_in_place(|| k.sipp_call("alice", "bob", 1500));
    assert!(status.success(), "sipp call failed");
    let seen = poller.await.unwrap();
    assert!(seen.iter().any(|s| s == "ringing"), "{seen:?}");
    assert!(seen.iter().any(|s| s == "in-call"), "{seen:?}");
    assert_eq!(seen.last().map(String::as_str), Some("idle"), "{seen:?}");
    let v = hub.get(&endpoints("blf")).await;
    assert_eq!(v["endpoints"]["bob"]["telephony"]["source"], "sip-derived");
}

#[tokio::test]
async fn server_killed_and_restarted_then_recovered() {
    let mut k = Kamailio::start(AuthMode::None);
    k.sipp_publish("dave", &pidf("dave", "open", "<rpid:away/>", "before"), 300);
    let hub = Hub::start(&["plugins/sip-simple"], &[]);
    sip_connector(
        &hub,
        "pbx",
        &k,
        "udp",
        "presence",
        &password("hub"),
        &["dave"],
    )
    .await;
    hub.wait_for(&endpoints("pbx"), "dave away", |v| {
        rich(v, "dave")["note"] == "before"
    })
    .await;
    k.kill9();
    let st = hub
        .wait_for("/api/v1/connectors/pbx/status", "connection error", |v| {
            v["status"]["status"] == "connection-error"
        })
        .await;
    assert!(
        st["status"]["status_detail"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{st}"
    );
    hub.wait_for(&endpoints("pbx"), "dave in error", |v| {
        v["endpoints"]["dave"]["state"] == "error"
    })
    .await;
    k.start_again();
    hub.wait_for("/api/v1/connectors/pbx/status", "up again", |v| {
        v["status"]["status"] == "up-and-running"
    })
    .await;
    // Re-subscribed by itself: a change after the restart arrives.
    k.sipp_publish("dave", &pidf("dave", "open", "<rpid:busy/>", "after"), 300);
    hub.wait_for(&endpoints("pbx"), "dave after restart", |v| {
        rich(v, "dave")["note"] == "after" && v["endpoints"]["dave"]["state"] == "active"
    })
    .await;
}

#[tokio::test]
async fn write_back_by_publish_is_seen_by_another_watcher() {
    let k = Kamailio::start(AuthMode::Www);
    let hub = Hub::start(&["plugins/sip-simple"], &[]);
    // The writer watches carol too, so it sees its own write come back.
    sip_connector(
        &hub,
        "writer",
        &k,
        "udp",
        "presence",
        &password("hub"),
        &["carol"],
    )
    .await;
    sip_connector(
        &hub,
        "watcher",
        &k,
        "tcp",
        "presence",
        &password("hub"),
        &["carol"],
    )
    .await;
    hub.wait_for("/api/v1/connectors/writer/status", "writer up", |v| {
        v["status"]["status"] == "up-and-running"
    })
    .await;
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors/writer/endpoints/carol/presence",
            Some(
                json!({"action": "set", "availability": "do-not-disturb", "note": "in a PBX call"}),
            ),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let set_id = v["id"].as_u64().expect("write id");
    let v = hub
        .wait_for(&endpoints("watcher"), "carol DND", |v| {
            rich(v, "carol")["availability"] == "do-not-disturb"
        })
        .await;
    assert_eq!(rich(&v, "carol")["note"], "in a PBX call");
    // Kamailio's 200 is the write's outcome, by its id.
    let w = hub
        .wait_for(&format!("/api/v1/writes/{set_id}"), "outcome", |w| {
            w["state"] != "pending"
        })
        .await;
    assert_eq!(w["state"], "applied", "{w}");
    // The writer's own NOTIFY carrying the hub's tuple is the echo of the
    // write; the other watcher's is the platform's.
    let ep = hub
        .wait_for(&endpoints("writer"), "echo at the writer", |v| {
            rich(v, "carol")["availability"] == "do-not-disturb"
        })
        .await;
    assert_eq!(
        ep["endpoints"]["carol"]["origin"],
        json!({"kind": "hub-write", "write_id": set_id}),
        "{ep}"
    );
    let log = hub
        .wait_for(
            "/api/v1/events?connector=writer&limit=200",
            "echo logged",
            |v| {
                v.to_string()
                    .contains(&format!("echo of hub write {set_id}"))
            },
        )
        .await;
    assert!(log.to_string().contains("-> applied"), "{log}");
    // Restoring removes the publication (`clear`, the 0.1.0 word, still works).
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors/writer/endpoints/carol/presence",
            Some(json!({"action": "clear"})),
        )
        .await;
    assert_eq!(s, 202);
    let restore_id = v["id"].as_u64().unwrap();
    hub.wait_for(&endpoints("watcher"), "carol cleared", |v| {
        rich(v, "carol")["availability"] != "do-not-disturb"
    })
    .await;
    let w = hub
        .wait_for(&format!("/api/v1/writes/{restore_id}"), "restored", |w| {
            w["state"] != "pending"
        })
        .await;
    assert_eq!(w["state"], "restored", "{w}");
}

/// A PUBLISH the server refuses (403: the credentials are another user's)
/// comes back as the write's outcome, not retryable, with the status.
#[tokio::test]
async fn write_back_refused_by_the_server_is_reported_by_id() {
    let k = Kamailio::start(AuthMode::Www);
    let hub = Hub::start(&["plugins/sip-simple"], &[]);
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({
                "id": "impostor",
                "plugin": "sip-simple",
                "config": {
                    "server": format!("127.0.0.1:{}", k.port),
                    "transport": "udp",
                    "uri": "hub@127.0.0.1",
                    // Alice's valid credentials under the hub's name:
                    // Kamailio answers 403 Forbidden auth ID.
                    "auth_id": "alice",
                    "password": password("alice"),
                    "subscribe": "presence",
                    "expires": 60,
                    "keepalive_seconds": 1,
                },
            })),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let path = "/api/v1/connectors/impostor/endpoints/carol/presence";
    let id = hub
        .wait_for_call(
            "POST",
            path,
            json!({"action": "set", "availability": "busy"}),
            202,
        )
        .await["id"]
        .as_u64()
        .expect("write id");
    let w = hub
        .wait_for(&format!("/api/v1/writes/{id}"), "outcome", |w| {
            w["state"] != "pending"
        })
        .await;
    assert_eq!(w["state"], "failed", "{w}");
    assert_eq!(w["platform_status"], 403, "{w}");
    assert_eq!(w["retryable"], false, "{w}");
    let st = hub.get("/api/v1/connectors/impostor/status").await;
    assert_eq!(st["status"]["writes_failed"], 1, "{st}");
}

#[tokio::test]
async fn resource_list_one_subscription_for_many_users() {
    use hub_e2e::kamailio::ResourceList;
    let k = Kamailio::start_with_lists(
        AuthMode::None,
        &[ResourceList {
            owner: "hub".into(),
            name: "team".into(),
            members: vec!["alice".into(), "bob".into()],
        }],
    );
    k.sipp_publish(
        "alice",
        &pidf("alice", "open", "<rpid:meeting/>", "standup"),
        300,
    );
    let hub = Hub::start(&["plugins/sip-simple"], &[]);
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({
                "id": "rls",
                "plugin": "sip-simple",
                "config": {
                    "server": format!("127.0.0.1:{}", k.port),
                    "uri": "hub@127.0.0.1",
                    "password": password("hub"),
                    "subscribe": "presence",
                    "list_uri": "team@127.0.0.1",
                    "expires": 60,
                    "keepalive_seconds": 1,
                },
                "watches": ["alice", "bob"],
            })),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let v = hub
        .wait_for(&endpoints("rls"), "alice through the list", |v| {
            rich(v, "alice")["activity"] == "in-a-meeting"
        })
        .await;
    assert_eq!(rich(&v, "alice")["note"], "standup");
    k.sipp_publish("bob", &pidf("bob", "open", "<rpid:away/>", "gone"), 300);
    hub.wait_for(&endpoints("rls"), "bob through the list", |v| {
        rich(v, "bob")["availability"] == "away"
    })
    .await;
    // One list subscription from the hub, not one per user (Kamailio's RLS
    // itself subscribes to the members from its own port).
    let own = format!("from 127.0.0.1:{}/", k.port);
    let log = k.log();
    let hub_subs: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("RX SUBSCRIBE") && l.contains("event=presence") && !l.contains(&own))
        .collect();
    assert!(hub_subs.iter().any(|l| l.contains("sip:team@")), "{log}");
    let subs = hub_subs
        .iter()
        .filter(|l| l.contains("sip:alice@") || l.contains("sip:bob@"))
        .count();
    assert_eq!(subs, 0, "per-user SUBSCRIBEs were sent:\n{log}");
}

fn line(v: &Value, ep: &str) -> Value {
    v["endpoints"][ep]["telephony"]["line"].clone()
}

/// The hub's SUBSCRIBEs for `event` that Kamailio received (its own rls
/// back-end ones have Call-IDs of their own): (request line, Call-ID).
fn hub_subscribes(k: &Kamailio, event: &str) -> Vec<(String, String)> {
    k.log()
        .lines()
        .filter(|l| l.contains("RX SUBSCRIBE") && l.contains(&format!("event={event} ")))
        .filter_map(|l| {
            let cid = l.split("cid=").nth(1)?.split_whitespace().next()?;
            cid.ends_with("@hub")
                .then(|| (l.to_string(), cid.to_string()))
        })
        .collect()
}

/// A BLF list (BroadWorks, Yealink): one SUBSCRIBE with `Event: dialog` to
/// the list, and each member's line from Kamailio's rls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blf_list_one_dialog_subscription_for_many_lines() {
    use hub_e2e::kamailio::ResourceList;
    let k = Kamailio::start_with_lists(
        AuthMode::None,
        &[ResourceList {
            owner: "hub".into(),
            name: "blf".into(),
            members: vec!["alice".into(), "bob".into()],
        }],
    );
    let hub = Hub::start(&["plugins/sip-simple"], &[]);
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({
                "id": "blf",
                "plugin": "sip-simple",
                "config": {
                    "server": format!("127.0.0.1:{}", k.port),
                    "uri": "hub@127.0.0.1",
                    "password": password("hub"),
                    "subscribe": "dialog",
                    "blf_list_uri": "blf@127.0.0.1",
                    "expires": 60,
                    "keepalive_seconds": 1,
                },
                "watches": ["alice", "bob"],
            })),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    // Nobody is on the phone: no dialog state at the server, idle lines.
    hub.wait_for(&endpoints("blf"), "idle lines through the list", |v| {
        line(v, "alice") == "idle" && line(v, "bob") == "idle"
    })
    .await;
    let _uas = k.sipp_register_uas("bob", 1500);
    let poller = {
        let (http, url) = (hub.http.clone(), hub.url(&endpoints("blf")));
        tokio::spawn(async move {
            let mut seen: Vec<(String, String)> = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                let v: Value = http
                    .get(&url)
                    .bearer_auth(hub_e2e::TOKEN)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                for who in ["alice", "bob"] {
                    if let Some(l) = line(&v, who).as_str()
                        && !seen.iter().any(|(w, s)| w == who && s == l)
                    {
                        seen.push((who.to_string(), l.to_string()));
                    }
                }
                let done = seen.iter().any(|(w, s)| w == "bob" && s == "in-call")
                    && line(&v, "bob") == "idle"
                    && line(&v, "alice") == "idle";
                if done {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            seen
        })
    };
    let status = tokio::task::block_in_place(|| k.sipp_call("alice", "bob", 1500));
    assert!(status.success(), "sipp call failed");
    let seen = poller.await.unwrap();
    let saw = |who: &str, state: &str| seen.iter().any(|(w, s)| w == who && s == state);
    assert!(saw("bob", "ringing"), "{seen:?}");
    assert!(saw("bob", "in-call"), "{seen:?}");
    assert!(saw("alice", "in-call"), "{seen:?}");
    let v = hub.get(&endpoints("blf")).await;
    assert_eq!(
        (line(&v, "alice"), line(&v, "bob")),
        ("idle".into(), "idle".into())
    );
    assert_eq!(v["endpoints"]["bob"]["state"], "active", "{v}");
    // One dialog subscription from the hub, to the list.
    let subs = hub_subscribes(&k, "dialog");
    assert!(!subs.is_empty(), "{}", k.log());
    assert!(
        subs.iter().all(|(l, _)| l.contains("SUBSCRIBE sip:blf@")),
        "per-line SUBSCRIBEs were sent: {subs:?}"
    );
}

/// Kamailio notifies without a body when nothing is published: a line
/// with no dialog state is idle, a presentity whose publication lapsed is
/// offline while one that never published stays unknown.
#[tokio::test]
async fn empty_notify_bodies_mean_an_idle_line_and_a_lapsed_publication() {
    let k = Kamailio::start(AuthMode::None);
    let hub = Hub::start(&["plugins/sip-simple"], &[]);
    sip_connector(
        &hub,
        "pbx",
        &k,
        "udp",
        "both",
        &password("hub"),
        &["alice", "bob"],
    )
    .await;
    let v = hub
        .wait_for(&endpoints("pbx"), "idle lines, unknown presence", |v| {
            line(v, "alice") == "idle"
                && line(v, "bob") == "idle"
                && rich(v, "alice")["availability"] == "unknown"
        })
        .await;
    assert_eq!(v["endpoints"]["alice"]["state"], "active", "{v}");
    // alice's device publishes for 10 s, then vanishes without removing it.
    k.sipp_publish("alice", &pidf("alice", "open", "<rpid:away/>", "brb"), 10);
    hub.wait_for(&endpoints("pbx"), "alice away", |v| {
        rich(v, "alice")["availability"] == "away"
    })
    .await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let v = hub
        .wait_for(&endpoints("pbx"), "alice's lapsed publication", |v| {
            rich(v, "alice")["availability"] == "offline"
        })
        .await;
    // bob never published: still unknown.
    assert_eq!(rich(&v, "bob")["availability"], "unknown", "{v}");
    assert_eq!(line(&v, "alice"), "idle", "{v}");
}

/// With the default `subscribe` (both), one instance feeds both channels
/// of a user from the user's SIP URI.
#[tokio::test]
async fn by_default_one_instance_feeds_both_channels_of_a_user() {
    let k = Kamailio::start(AuthMode::None);
    k.sipp_publish(
        "alice",
        &pidf("alice", "open", "<rpid:meeting/>", "standup"),
        300,
    );
    let hub = Hub::start(&["plugins/sip-simple"], &[]);
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/users",
            Some(json!({"username": "alice", "display_name": "Alice", "sip_uri_rich": "alice@127.0.0.1"})),
        )
        .await;
    assert!(s == 200 || s == 201, "{s} {v}");
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({
                "id": "pbx",
                "plugin": "sip-simple",
                "config": {
                    "server": format!("127.0.0.1:{}", k.port),
                    "uri": "hub@127.0.0.1",
                    "password": password("hub"),
                    "expires": 60,
                    "keepalive_seconds": 1,
                },
            })),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let v = hub
        // Every state names its source, "requesting" too: wait for the
        // states the NOTIFYs bring.
        .wait_for("/api/v1/presence/alice", "both channels", |v| {
            v["rich"]["source"] == "pbx"
                && v["telephony"]["source"] == "pbx"
                && v["rich"]["state"] != "requesting"
                && v["telephony"]["state"] != "requesting"
        })
        .await;
    assert_eq!(v["rich"]["state"], "busy", "{v}");
    assert_eq!(v["telephony"]["state"], "available", "{v}");
}

/// Deleting a connector ends its subscriptions at the server: the
/// un-SUBSCRIBEs (presence and dialog, `subscribe: both`) are written
/// before the stream closes, their digest challenges answered, and
/// Kamailio confirms each with its final NOTIFY.
#[tokio::test]
async fn unsubscribes_answered_when_the_connector_is_deleted() {
    for (transport, mode) in [("tcp", AuthMode::Www), ("udp", AuthMode::Proxy)] {
        let k = Kamailio::start(mode);
        k.sipp_publish("alice", &pidf("alice", "open", "<rpid:away/>", "x"), 300);
        let hub = Hub::start(&["plugins/sip-simple"], &[]);
        sip_connector(
            &hub,
            "gone",
            &k,
            transport,
            "both",
            &password("hub"),
            &["alice"],
        )
        .await;
        hub.wait_for(&endpoints("gone"), "alice on both channels", |v| {
            rich(v, "alice")["availability"] == "away" && line(v, "alice") == "idle"
        })
        .await;
        let cids: std::collections::BTreeSet<String> = ["presence", "dialog"]
            .iter()
            .flat_map(|e| hub_subscribes(&k, e))
            .map(|(_, cid)| cid)
            .collect();
        assert_eq!(cids.len(), 2, "{transport}: {cids:?}");
        let (s, v) = hub.call("DELETE", "/api/v1/connectors/gone", None).await;
        assert!((200..300).contains(&s), "{s} {v}");
        // Each un-SUBSCRIBE is challenged, answered and accepted: the
        // server's final NOTIFY follows the last one.
        let ended = |log: &str, cid: &str| {
            let lines: Vec<&str> = log.lines().collect();
            let byes: Vec<usize> = (0..lines.len())
                .filter(|&i| {
                    lines[i].contains(&format!("cid={cid} ")) && lines[i].contains("expires=0")
                })
                .collect();
            byes.len() >= 2
                && lines[byes[byes.len() - 1]..]
                    .iter()
                    .any(|l| l.contains("TX local NOTIFY") && l.contains(&format!("cid={cid}")))
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cids.iter().all(|cid| ended(&k.log(), cid)) {
            assert!(
                Instant::now() < deadline,
                "{transport}: un-SUBSCRIBEs not accepted at Kamailio:\n{}",
                k.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The server forgot them: a change notifies nobody there.
        let notifies = |log: &str| {
            log.lines()
                .filter(|l| {
                    l.contains("TX local NOTIFY")
                        && cids.iter().any(|c| l.contains(&format!("cid={c}")))
                })
                .count()
        };
        let before = notifies(&k.log());
        k.sipp_publish("alice", &pidf("alice", "open", "<rpid:busy/>", "y"), 300);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(notifies(&k.log()), before, "{transport}: still subscribed");
    }
}
