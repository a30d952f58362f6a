//! Three hub nodes on one PostgreSQL database (a throw-away cluster the
//! test kit starts): configuration made on one node is seen on the others;
//! each connector instance runs on exactly one node; a webhook sent to any
//! node reaches the node running its connector; a presence change reported
//! on one node reaches a feed client on another; a node killed with
//! SIGKILL has its instances taken over within 10 s; a node paused past
//! its lease does not act for its old instances when it wakes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hub_e2e::kamailio::{AuthMode, Kamailio, password};
use hub_e2e::postgres::Postgres;
use hub_e2e::{Hub, TOKEN, sign, unix_now};
use serde_json::{Value, json};

fn pidf(user: &str, activity: &str, note: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:{user}@127.0.0.1">
  <tuple id="t-{user}"><status><basic>open</basic></status><note>{note}</note></tuple>
  <dm:person id="p-{user}"><rpid:activities>{activity}</rpid:activities></dm:person>
</presence>"#
    )
}

const SECRET: &str = "a-shared-secret-of-32-bytes-long";
const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];

fn start_node(url: &str, id: &str, key: &[u8; 32]) -> Hub {
    Hub::start_prepared(
        &["plugins/http-push", "plugins/sip-simple"],
        &[
            ("HUB_DATABASE_URL", url),
            ("HUB_NODE_ID", id),
            ("HUB_LOG", "info,presence_hub=debug"),
        ],
        |data| std::fs::write(data.join("secret.key"), key).unwrap(),
    )
}

/// A list answer's items (`{"<key>": [...]}` or a bare array).
fn items<'a>(v: &'a Value, key: &str) -> Vec<&'a Value> {
    v.get(key)
        .unwrap_or(v)
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

async fn ok(hub: &Hub, method: &str, path: &str, body: Option<Value>) -> Value {
    let (s, v) = hub.call(method, path, body).await;
    assert!((200..300).contains(&s), "{method} {path}: {s} {v}");
    v
}

/// Each push carries the next `sequence`: bodies differ (a signature is
/// accepted once) and the source's order is plain.
static SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn sequenced(body: &Value) -> Vec<u8> {
    let mut body = body.clone();
    body["sequence"] = json!(SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    serde_json::to_vec(&body).unwrap()
}

async fn push(hub: &Hub, instance: &str, body: &Value) -> (u16, String) {
    let body = sequenced(body);
    let ts = unix_now();
    let r = hub
        .http
        .post(hub.url(&format!("/hooks/{instance}/presence")))
        .header("X-Hub-Timestamp", ts.to_string())
        .header("X-Hub-Signature", sign(SECRET, ts, &body))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Which node runs each instance, as each live node's API says; panics
/// when two nodes disagree.
async fn placement(hubs: &[(&str, &Hub)]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (name, hub) in hubs {
        let list = hub.get("/api/v1/connectors").await;
        for c in items(&list, "connectors") {
            let id = c["id"].as_str().unwrap().to_string();
            let Some(node) = c["node"].as_str() else {
                continue;
            };
            // A node that runs it shows its status; the others show none.
            if node == *name {
                assert!(
                    c["status"].is_object(),
                    "{name} runs {id} but shows no status: {c}"
                );
            }
            out.insert(format!("{name}:{id}"), node.to_string());
        }
    }
    out
}

/// Wait until every node says each of `ids` runs on one and the same node
/// (not `not_on`); returns instance → node.
async fn settled(
    hubs: &[(&str, &Hub)],
    ids: &[&str],
    not_on: Option<&str>,
    within: Duration,
) -> BTreeMap<String, String> {
    let deadline = Instant::now() + within;
    loop {
        let seen = placement(hubs).await;
        let mut agreed = BTreeMap::new();
        let all = ids.iter().all(|id| {
            let nodes: Vec<&String> = hubs
                .iter()
                .filter_map(|(n, _)| seen.get(&format!("{n}:{id}")))
                .collect();
            let one = nodes.len() == hubs.len()
                && nodes.iter().all(|n| *n == nodes[0])
                && Some(nodes[0].as_str()) != not_on;
            if one {
                agreed.insert(id.to_string(), nodes[0].clone());
            }
            one
        });
        if all {
            return agreed;
        }
        if Instant::now() > deadline {
            for (n, h) in hubs {
                let log = h.log();
                let _ = std::fs::write(format!("/tmp/cluster-{n}.log"), &log);
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                eprintln!("---- {n} log tail ----");
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
            panic!("instances not placed on one live node within {within:?}: {seen:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How many of `ids` each node says it runs (`cluster_leases_held`).
async fn leases_held(hub: &Hub) -> i64 {
    let text = hub
        .http
        .get(hub.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("presence_hub_cluster_leases_held "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no cluster_leases_held in /metrics:\n{text}"))
}

async fn wait_presence(hub: &Hub, user: &str, f: impl Fn(&Value) -> bool, what: &str) -> Value {
    hub.wait_for(&format!("/api/v1/presence/{user}"), what, f)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_configuration_run_each_instance_once_and_take_over() {
    let k = Kamailio::start(AuthMode::None);
    k.sipp_publish("carol", &pidf("carol", "<rpid:away/>", "at lunch"), 300);
    let pg = Postgres::shared();
    let url = pg.create_database("cluster");
    let mut key = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut key).unwrap();
    let mut hubs: BTreeMap<&str, Hub> = NODES
        .iter()
        .map(|n| (*n, start_node(&url, n, &key)))
        .collect();
    let (a, b, c) = (&hubs[NODES[0]], &hubs[NODES[1]], &hubs[NODES[2]]);

    // Configuration made on one node is seen on the others.
    let ids = [
        "push-1", "push-2", "push-3", "push-4", "push-5", "push-6", "pbx",
    ];
    ok(
        c,
        "POST",
        "/api/v1/users",
        Some(json!({"username": "carol", "display_name": "Carol", "sip_uri_rich": "carol@127.0.0.1"})),
    )
    .await;
    ok(
        a,
        "POST",
        "/api/v1/connectors",
        Some(json!({"id": "pbx", "plugin": "sip-simple", "config": {
            "server": format!("127.0.0.1:{}", k.port), "uri": "hub@127.0.0.1",
            "password": password("hub"), "subscribe": "presence", "expires": 60, "keepalive_seconds": 1
        }})),
    )
    .await;
    for id in &ids[..6] {
        ok(
            a,
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": id, "plugin": "http-push", "config": {"shared_secret": SECRET}})),
        )
        .await;
    }
    for (i, name) in ["alice", "bob"].iter().enumerate() {
        ok(
            b,
            "POST",
            "/api/v1/users",
            Some(json!({"username": name, "display_name": name, "extension": format!("200{}", i + 1)})),
        )
        .await;
    }
    ok(
        c,
        "PUT",
        "/api/v1/settings/rules",
        Some(json!({"voicemail_pilot": "8000", "instance_fields": {"push-1": "extension"}})),
    )
    .await;
    let v = c
        .wait_for("/api/v1/connectors", "six connectors on c", |v| {
            items(v, "connectors").len() == 7
        })
        .await;
    assert!(
        items(&v, "connectors")
            .iter()
            .all(|c| c["config"]["shared_secret"].is_null()),
        "secrets are never answered: {v}"
    );
    a.wait_for("/api/v1/users", "alice and bob on a", |v| {
        items(v, "users").len() == 3
    })
    .await;
    a.wait_for("/api/v1/settings/rules", "rules on a", |v| {
        v["voicemail_pilot"] == "8000"
    })
    .await;
    // A plugin uploaded to one node is loaded (compiled) by every node.
    let (s, up) = a.upload(&hub_e2e::dist("plugins/http-push")).await;
    assert!((200..300).contains(&s), "{s} {up}");
    for (n, h) in &hubs {
        h.wait_for("/api/v1/plugins/http-push", "the uploaded build", |v| {
            v["origin"] == up["origin"] && v["sha256"] == up["sha256"]
        })
        .await;
        let _ = n;
    }

    // A token made on one node works on another.
    let tok = ok(
        b,
        "POST",
        "/api/v1/tokens",
        Some(json!({"name": "console-wall", "role": "console"})),
    )
    .await;
    let secret = tok["token"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = c
            .http
            .get(c.url("/api/v1/presence"))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if s == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "token made on b refused on c ({s})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Each instance runs on exactly one node, all nodes agree, and the
    // instances spread (rendezvous hashing over three nodes).
    let hubs_ref: Vec<(&str, &Hub)> = hubs.iter().map(|(n, h)| (*n, h)).collect();
    let placed = settled(&hubs_ref, &ids, None, Duration::from_secs(30)).await;
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for n in placed.values() {
        *per_node.entry(n.as_str()).or_default() += 1;
    }
    println!("placement: {placed:?}");
    assert!(
        per_node.len() >= 2,
        "instances spread over the nodes: {placed:?}"
    );
    let mut held_total = 0;
    for (_, h) in &hubs_ref {
        held_total += leases_held(h).await;
    }
    assert_eq!(held_total, 7, "each instance is held once");
    // The SIP/SIMPLE connector subscribed to Kamailio from the node that
    // runs it; every node shows what it learnt.
    for (n, h) in &hubs_ref {
        wait_presence(h, "carol", |v| v["rich"]["state"] == "away", n).await;
    }

    // A webhook sent to a node that does not run push-1 is passed to the
    // one that does; the change reaches every node's presence.
    let holder = placed["push-1"].clone();
    let other: Vec<&(&str, &Hub)> = hubs_ref.iter().filter(|(n, _)| *n != holder).collect();
    let (s, body) = push(
        other[0].1,
        "push-1",
        &json!({"endpoint": "2001", "telephony": {"line": "in-call"}}),
    )
    .await;
    assert_eq!(s, 202, "{body}");
    for (n, h) in &hubs_ref {
        let p = wait_presence(h, "alice", |v| v["telephony"]["line"] == "in-call", n).await;
        assert_eq!(p["telephony"]["source"], "push-1", "{n}: {p}");
    }

    // Presence reported on the holder reaches a feed client on another
    // node: latency over 1,000 changes (printed, not asserted).
    let feed_node = other[1].1;
    let mut ws = feed_ws(feed_node).await;
    let holder_hub = hubs_ref.iter().find(|(n, _)| *n == holder).unwrap().1;
    let mut lat = Vec::with_capacity(1000);
    for i in 0..1000u32 {
        let line = if i % 2 == 0 { "idle" } else { "in-call" };
        let t0 = Instant::now();
        let (s, body) = push(
            holder_hub,
            "push-1",
            &json!({"endpoint": "2001", "telephony": {"line": line}}),
        )
        .await;
        assert_eq!(s, 202, "{body}");
        if tokio::time::timeout(
            Duration::from_secs(10),
            ws.until(|v| v["username"] == "alice" && v["telephony"]["line"] == line),
        )
        .await
        .is_err()
        {
            for (n, h) in &hubs_ref {
                let _ = std::fs::write(format!("/tmp/cluster-{n}.log"), h.log());
            }
            panic!(
                "change {i} ({line}) did not reach the feed on another node; logs in /tmp/cluster-*.log"
            );
        }
        lat.push(t0.elapsed());
    }
    lat.sort();
    println!(
        "cross-node propagation (push on {holder}, feed on another node), 1000 changes: p50 {:?}, p99 {:?}, max {:?}",
        lat[500], lat[989], lat[999]
    );

    // A console that followed one node's feed resumes on another: the
    // event id it last saw is from the first node's sequence, so the other
    // node answers with a snapshot of the current state, never a replay
    // that could skip changes.
    let resumed = other[0].1;
    let mut sse = resumed
        .http
        .get(resumed.url("/api/v1/feed/sse?users=alice"))
        .bearer_auth(TOKEN)
        .header(
            "Last-Event-ID",
            feed_seq(&mut ws, holder_hub).await.to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status().as_u16(), 200);
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), sse.chunk())
            .await
            .expect("a first feed event within 10 s")
            .unwrap()
            .expect("feed open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("event: snapshot"), "{text}");
    assert!(
        text.contains("\"line\":\"on-hold\""),
        "the current state: {text}"
    );
    drop(sse);

    // Every node shows every instance's status, as the node running it
    // stored it.
    for (n, h) in &hubs_ref {
        let v = h
            .wait_for("/api/v1/connectors/pbx", "pbx's status", |v| {
                v["status"]["status"] == "up-and-running"
            })
            .await;
        assert_eq!(v["node"], placed["pbx"].as_str(), "{n}: {v}");
    }

    // Every node holds its share: /readyz says so.
    for (n, h) in &hubs_ref {
        let v = h
            .wait_for("/readyz", "its share", |v| {
                v["cluster"]["holds_share"] == true
            })
            .await;
        assert_eq!(v["cluster"]["node"], *n, "{v}");
        assert_eq!(v["cluster"]["nodes"].as_array().unwrap().len(), 3, "{v}");
        assert!(
            v["down"].as_array().unwrap().is_empty(),
            "instances run elsewhere are not down here: {v}"
        );
    }

    // Notes: added on one node, shown on another.
    ok(
        a,
        "POST",
        "/api/v1/users/bob/notes",
        Some(json!({"text": "back at 3pm"})),
    )
    .await;
    wait_presence(
        c,
        "bob",
        |v| v["notes"].as_array().is_some_and(|n| n.len() == 1),
        "note on c",
    )
    .await;

    // SIGKILL the node running the SIP/SIMPLE connector: its instances run
    // on the others within 10 s, its subscriptions to Kamailio come back
    // (a new PUBLISH reaches every live node), webhooks reach push-1 there.
    drop(ws);
    let killed = placed["pbx"].clone();
    let mut victim = hubs.remove(killed.as_str()).unwrap();
    let t0 = Instant::now();
    victim.kill9();
    let alive: Vec<(&str, &Hub)> = hubs.iter().map(|(n, h)| (*n, h)).collect();
    let moved = settled(&alive, &ids, Some(&killed), Duration::from_secs(10)).await;
    let takeover = t0.elapsed();
    println!("takeover after SIGKILL of {killed}: {takeover:?} ({moved:?})");
    let new_holder = moved["push-1"].clone();
    k.sipp_publish(
        "carol",
        &pidf("carol", "<rpid:on-the-phone/>", "back soon"),
        300,
    );
    for (n, h) in &alive {
        wait_presence(h, "carol", |v| v["rich"]["note"] == "back soon", n).await;
    }
    let (s, body) = push(
        alive[0].1,
        "push-1",
        &json!({"endpoint": "2001", "telephony": {"line": "ringing"}}),
    )
    .await;
    assert_eq!(s, 202, "{body}");
    for (n, h) in &alive {
        wait_presence(h, "alice", |v| v["telephony"]["line"] == "ringing", n).await;
    }

    // SIGSTOP the new holder past its lease: the last node takes over;
    // when the paused node wakes it stops acting for push-1, and what it
    // still tried was refused by its fence.
    let (paused_name, paused) = alive.iter().find(|(n, _)| *n == new_holder).unwrap();
    let (last_name, last) = alive.iter().find(|(n, _)| *n != new_holder).unwrap();
    let pid = paused.pid().unwrap() as i32;
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = last.get("/api/v1/connectors/push-1").await;
        if list["node"] == *last_name && list["status"].is_object() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{last_name} did not take push-1 from the paused {paused_name}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A webhook waits in the paused node's socket; it is handled when the
    // node wakes, before or after it learns it lost the lease.
    let queued = {
        let http = paused.http.clone();
        let target = paused.url("/hooks/push-1/presence");
        let body =
            serde_json::to_vec(&json!({"endpoint": "2001", "telephony": {"line": "on-hold"}}))
                .unwrap();
        tokio::spawn(async move {
            let ts = unix_now();
            http.post(target)
                .header("X-Hub-Timestamp", ts.to_string())
                .header("X-Hub-Signature", sign(SECRET, ts, &body))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let _ = tokio::time::timeout(Duration::from_secs(15), queued).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let log = paused.log();
        if log.contains("lease lost") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the paused node did not notice its lost lease:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // It no longer runs push-1; the last node does.
    let v = paused
        .wait_for("/api/v1/connectors/push-1", "push-1 elsewhere", |v| {
            v["node"] == *last_name
        })
        .await;
    assert_eq!(v["node"], *last_name);
    let log = paused.log();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("fenced: write refused") || l.contains("refused by its fence"))
        .collect();
    println!("paused node's fencing: {refused:#?}");
    // The webhook waiting in its socket was handled as the node woke,
    // before it learnt of its lost lease: what it published for push-1
    // under its old fence was refused by the database.
    assert!(
        refused.iter().any(|l| l.contains("instance=push-1")),
        "no refused write for push-1 in the paused node's log:\n{log}"
    );
    drop(victim);
}

/// Make one more change on `holder` and return its feed event's `seq`.
async fn feed_seq(ws: &mut Feed, holder: &Hub) -> u64 {
    let (s, body) = push(
        holder,
        "push-1",
        &json!({"endpoint": "2001", "telephony": {"line": "on-hold"}}),
    )
    .await;
    assert_eq!(s, 202, "{body}");
    let v = ws
        .until(|v| v["username"] == "alice" && v["telephony"]["line"] == "on-hold")
        .await;
    v["seq"].as_u64().expect("feed events carry seq")
}

/// A live-feed reader over WebSocket.
struct Feed {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

async fn feed_ws(hub: &Hub) -> Feed {
    let url = hub.url("/api/v1/feed/ws").replace("http://", "ws://");
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    Feed { ws }
}

impl Feed {
    async fn until(&mut self, f: impl Fn(&Value) -> bool) -> Value {
        use futures::StreamExt;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no matching feed event within 20 s; saw {seen:?}"))
                .expect("feed open")
                .unwrap();
            let Ok(text) = msg.into_text() else { continue };
            let Ok(v) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if seen.len() < 5 {
                seen.push(text.to_string());
            }
            // A snapshot carries every user; a change is one user.
            if let Some(users) = v["users"].as_array() {
                if let Some(u) = users.iter().find(|u| f(u)) {
                    return u.clone();
                }
                continue;
            }
            if f(&v) {
                return v;
            }
        }
    }
}
