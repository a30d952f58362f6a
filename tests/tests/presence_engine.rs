//! The presence engine end to end: users, two connector instances (the
//! SIP/SIMPLE connector against Kamailio, and http-push sources), merge and
//! priority, notes, the live feed over SSE and WebSocket with resume, the
//! event log, roles, bad input, and persistence across kill -9.

use std::time::Duration;

use futures::StreamExt;
use hub_e2e::kamailio::{AuthMode, Kamailio, password};
use hub_e2e::{Hub, TOKEN, sign, unix_now};
use serde_json::{Value, json};

const SECRET: &str = "a-shared-secret-of-32-bytes-long";

fn pidf(user: &str, activity: &str, note: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:{user}@127.0.0.1">
  <tuple id="t-{user}"><status><basic>open</basic></status><note>{note}</note></tuple>
  <dm:person id="p-{user}"><rpid:activities>{activity}</rpid:activities></dm:person>
</presence>"#
    )
}

async fn push(hub: &Hub, instance: &str, body: Value) {
    let body = serde_json::to_vec(&body).unwrap();
    let ts = unix_now();
    let r = hub
        .http
        .post(hub.url(&format!("/hooks/{instance}/presence")))
        .header("X-Hub-Timestamp", ts.to_string())
        .header("X-Hub-Signature", sign(SECRET, ts, &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202, "{}", r.text().await.unwrap());
}

async fn ok(hub: &Hub, method: &str, path: &str, body: Option<Value>) -> Value {
    let (s, v) = hub.call(method, path, body).await;
    assert!((200..300).contains(&s), "{method} {path}: {s} {v}");
    v
}

/// A minimal Server-Sent Events reader.
struct Sse {
    resp: reqwest::Response,
    buf: String,
}

impl Sse {
    async fn open(hub: &Hub, query: &str, last_event_id: Option<u64>) -> Sse {
        let mut req = hub
            .http
            .get(hub.url(&format!("/api/v1/feed/sse?{query}")))
            .bearer_auth(TOKEN);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        Sse {
            resp,
            buf: String::new(),
        }
    }

    /// The next event as (event name, id, data).
    async fn next(&mut self) -> (String, Option<u64>, Value) {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut event, mut id, mut data) = (String::new(), None, String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if event.is_empty() && data.is_empty() {
                    continue; // keep-alive comment
                }
                return (
                    event,
                    id,
                    serde_json::from_str(&data).unwrap_or(Value::Null),
                );
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.resp.chunk())
                .await
                .expect("feed event within 20 s")
                .unwrap()
                .expect("feed still open");
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Skip events until one satisfies `f`.
    async fn until(&mut self, what: &str, f: impl Fn(&Value) -> bool) -> (Option<u64>, Value) {
        // Keep-alives would reset `next`'s own timeout: bound the whole wait.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        for _ in 0..200 {
            let Ok((_, id, v)) = tokio::time::timeout_at(deadline, self.next()).await else {
                break;
            };
            if f(&v) {
                return (id, v);
            }
        }
        panic!("no feed event with {what} within 30 s or 200 events");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_priority_notes_feed_and_persistence() {
    let k = Kamailio::start(AuthMode::None);
    k.sipp_publish("alice", &pidf("alice", "<rpid:away/>", "at lunch"), 300);
    let mut hub = Hub::start(&["plugins/sip-simple", "plugins/http-push"], &[]);

    // Users first; connectors then watch what the users need.
    ok(
        &hub,
        "POST",
        "/api/v1/users",
        Some(json!({
            "username": "alice", "display_name": "Alice Liddell", "department": "Sales",
            "email": "alice@example.com", "extension": "2001", "voicemail_number": "7001",
            "sip_uri_rich": "alice@127.0.0.1"
        })),
    )
    .await;
    ok(&hub, "POST", "/api/v1/users", Some(json!({
        "username": "bob", "display_name": "Bob", "extension": "2002", "sip_uri_rich": "bob@127.0.0.1"
    }))).await;
    ok(
        &hub,
        "PUT",
        "/api/v1/settings/rules",
        Some(json!({
            "voicemail_pilot": "8000", "forward_visible_digits": 4,
            // The seeds' choice: SIP/SIMPLE wins rich presence. The hub
            // favours no plugin by name unless the operator says so.
            "winning_technology": ["sip-simple"],
            "instance_fields": {"cti": "username", "tapi": "extension"}
        })),
    )
    .await;
    for (id, plugin, config) in [
        (
            "pbx",
            "sip-simple",
            json!({"server": format!("127.0.0.1:{}", k.port), "uri": "hub@127.0.0.1",
            "password": password("hub"), "subscribe": "presence", "expires": 60, "keepalive_seconds": 1}),
        ),
        ("cti", "http-push", json!({"shared_secret": SECRET})),
        ("tapi", "http-push", json!({"shared_secret": SECRET})),
    ] {
        ok(
            &hub,
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": id, "plugin": plugin, "config": config})),
        )
        .await;
    }

    // The feed: a snapshot first.
    let mut feed = Sse::open(&hub, "users=alice", None).await;
    let (name, _, snap) = feed.next().await;
    assert_eq!(name, "snapshot");
    assert!(snap["seq"].as_u64().is_some());

    // The SIP connector was told to watch alice's SIP URI without anyone
    // configuring watches; her presence arrives and merges: already in the
    // snapshot when it was quicker than the feed client, else as a change.
    let in_snapshot = snap["users"]
        .as_array()
        .and_then(|u| u.iter().find(|u| u["username"] == "alice"))
        .filter(|u| u["rich"]["state"] == "away")
        .cloned();
    let v = match in_snapshot {
        Some(v) => v,
        None => {
            feed.until("alice away", |v| v["rich"]["state"] == "away")
                .await
                .1
        }
    };
    assert_eq!(v["rich"]["source"], "pbx");
    assert_eq!(v["rich"]["note"], "at lunch");
    let pbx = hub.get("/api/v1/connectors/pbx").await;
    assert!(pbx["watches"].as_array().unwrap().is_empty(), "{pbx}");

    // A second rich source disagrees: the winning technology (SIP/SIMPLE,
    // set above) decides, then the operator changes the priority at run time.
    push(
        &hub,
        "cti",
        json!({"endpoint": "alice", "rich": {"availability": "busy", "activity": "in-a-meeting"}}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let p = hub.get("/api/v1/presence/alice").await;
    assert_eq!(p["rich"]["state"], "away", "{p}");
    assert!(
        p["reasons"]
            .to_string()
            .contains("winning technology sip-simple"),
        "{p}"
    );
    // pbx feeds both channels by its endpoint kinds: alice's SIP URI for
    // rich presence and her extension for the line; cti and tapi one each.
    let sources = p["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 4, "{p}");
    let pbx: Vec<(&str, &str)> = sources
        .iter()
        .filter(|s| s["instance"] == "pbx")
        .map(|s| {
            (
                s["endpoint"].as_str().unwrap(),
                s["channel"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        pbx,
        vec![("alice@127.0.0.1", "rich"), ("2001", "telephony")],
        "{p}"
    );
    ok(
        &hub,
        "PUT",
        "/api/v1/settings/rules",
        Some(json!({
            "winning_technology": ["http-push", "sip-simple"], "voicemail_pilot": "8000",
            "forward_visible_digits": 4, "instance_fields": {"cti": "username", "tapi": "extension"}
        })),
    )
    .await;
    let (_, v) = feed
        .until("cti wins", |v| v["rich"]["source"] == "cti")
        .await;
    assert_eq!(v["rich"]["state"], "busy");
    assert_eq!(v["rich"]["activity"], "in-a-meeting");

    // Telephony from the CTI line: forwarded to her voicemail, to a number
    // (masked), and DND over forwarded.
    push(
        &hub,
        "tapi",
        json!({"endpoint": "2001", "telephony": {"line": "idle", "forward": {"number": "7001"}}}),
    )
    .await;
    feed.until("voicemail", |v| {
        v["telephony"]["state"] == "forwarded-to-voicemail"
    })
    .await;
    push(&hub, "tapi", json!({"endpoint": "2001", "telephony": {"line": "in-call", "forward": {"number": "+49301234567"}}})).await;
    let (_, v) = feed
        .until("number", |v| {
            v["telephony"]["state"] == "forwarded-to-number"
        })
        .await;
    assert_eq!(v["telephony"]["forward_to"], "********4567");
    push(&hub, "tapi", json!({"endpoint": "2001", "telephony": {"line": "in-call", "dnd": true, "forward": {"number": "8000"}}})).await;
    feed.until("dnd", |v| v["telephony"]["state"] == "do-not-disturb")
        .await;

    // A note reaches the feed at once.
    let note = ok(
        &hub,
        "POST",
        "/api/v1/users/alice/notes",
        Some(json!({"text": "back at 3pm"})),
    )
    .await;
    assert_eq!(note["author"], "admin");
    let (last_id, _) = feed
        .until("note", |v| v["notes"][0]["text"] == "back at 3pm")
        .await;
    let last_id = last_id.expect("events carry ids");
    drop(feed);

    // Missed while disconnected: resume gives exactly what was missed.
    push(
        &hub,
        "tapi",
        json!({"endpoint": "2001", "telephony": {"line": "idle"}}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut feed = Sse::open(&hub, "users=alice", Some(last_id)).await;
    let (name, id, v) = feed.next().await;
    assert_eq!(name, "presence", "resume must not send a snapshot: {v}");
    assert_eq!(id, Some(last_id + 1), "{v}");
    assert_eq!(v["telephony"]["state"], "available");
    drop(feed);

    // The WebSocket feed: snapshot, then changes.
    let ws_url = hub
        .url("/api/v1/feed/ws?users=alice")
        .replace("http://", "ws://");
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(ws_url)
            .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let first: Value =
        serde_json::from_str(&ws.next().await.unwrap().unwrap().into_text().unwrap()).unwrap();
    assert_eq!(first["type"], "snapshot");
    assert_eq!(first["users"][0]["username"], "alice");
    k.sipp_publish("alice", &pidf("alice", "<rpid:away/>", "coffee"), 300);
    ok(&hub, "PUT", "/api/v1/settings/rules", Some(json!({"voicemail_pilot": "8000", "instance_fields": {"cti": "username", "tapi": "extension"}}))).await;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_str(&msg.into_text().unwrap()).unwrap();
        if v["rich"]["note"] == "coffee" {
            assert_eq!(v["rich"]["source"], "pbx");
            break;
        }
    }

    // The event log holds reports and the decisions.
    let ev = hub.get("/api/v1/events?user=alice&limit=500").await;
    let text = ev["events"].to_string();
    assert!(
        text.contains("\"kind\":\"report\"") && text.contains("\"kind\":\"decision\""),
        "{ev}"
    );
    assert!(
        text.contains("forward to 7001 is the user's voicemail number"),
        "{ev}"
    );
    let ev = hub.get("/api/v1/events?connector=tapi&limit=5").await;
    assert!(
        ev["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["instance"] == "tapi"),
        "{ev}"
    );

    // Filters of the diagnostics list.
    let l = hub.get("/api/v1/presence?rich=away").await;
    assert_eq!(l["users"].as_array().unwrap().len(), 1, "{l}");
    let l = hub.get("/api/v1/presence?q=bob").await;
    assert_eq!(l["users"][0]["username"], "bob");

    // Force-subscribe: a fresh SUBSCRIBE for alice reaches Kamailio.
    let count = |log: &str| {
        log.lines()
            .filter(|l| {
                l.contains("RX SUBSCRIBE sip:alice@")
                    && !l.contains("expires=0")
                    && !l.contains(&format!("from 127.0.0.1:{}/", k.port))
            })
            .count()
    };
    let before = count(&k.log());
    let f = ok(&hub, "POST", "/api/v1/users/alice/subscribe", None).await;
    assert!(f["until_ms"].as_u64().unwrap() > 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while count(&k.log()) <= before {
        assert!(std::time::Instant::now() < deadline, "no fresh SUBSCRIBE");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        hub.get("/api/v1/presence/alice").await["forced_until_ms"]
            .as_u64()
            .is_some()
    );

    // Roles: a console token reads presence but may not change users.
    let t = ok(
        &hub,
        "POST",
        "/api/v1/tokens",
        Some(json!({"name": "wallboard", "role": "console"})),
    )
    .await;
    let console = t["token"].as_str().unwrap().to_string();
    let r = hub
        .http
        .get(hub.url("/api/v1/presence"))
        .bearer_auth(&console)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = hub
        .http
        .post(hub.url("/api/v1/users"))
        .bearer_auth(&console)
        .json(&json!({"username": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let listed = hub.get("/api/v1/tokens").await;
    assert!(!listed.to_string().contains(&console), "token value listed");

    // Bad input names the field; nothing half-written.
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/users",
            Some(json!({"username": "carol", "extension": "12ab"})),
        )
        .await;
    assert_eq!((s, v["field"].as_str()), (422, Some("extension")), "{v}");
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/users",
            Some(json!({"username": "carol", "extnsion": "1"})),
        )
        .await;
    assert_eq!((s, v["field"].as_str()), (400, Some("extnsion")), "{v}");
    let (s, v) = hub
        .call(
            "PUT",
            "/api/v1/settings/rules",
            Some(json!({"stale_after_seconds": 0})),
        )
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (422, Some("stale_after_seconds")),
        "{v}"
    );
    let (s, v) = hub.call("GET", "/api/v1/users?page=abc", None).await;
    assert_eq!((s, v["field"].as_str()), (400, Some("page")), "{v}");
    let (s, v) = hub.call("GET", "/api/v1/events?limt=5", None).await;
    assert_eq!((s, v["field"].as_str()), (400, Some("limt")), "{v}");
    let (s, v) = hub
        .call("DELETE", "/api/v1/users/alice/notes/x", None)
        .await;
    assert_eq!((s, v["field"].as_str()), (400, Some("id")), "{v}");
    let csv = "username,display_name,extension\ncarol,Carol,2003\ndave,Dave,not-a-number\nerin,Erin,2005\n";
    let r = hub
        .http
        .post(hub.url("/api/v1/users/import"))
        .bearer_auth(TOKEN)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["rejected"][0]["row"], 2, "{v}");
    assert_eq!(v["rejected"][0]["field"], "extension", "{v}");
    assert_eq!(
        hub.get("/api/v1/users?q=carol").await["total"],
        0,
        "half-imported"
    );
    let csv = "username,display_name,extension\ncarol,Carol,2003\nerin,Erin,2005\n";
    let r = hub
        .http
        .post(hub.url("/api/v1/users/import"))
        .bearer_auth(TOKEN)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let page = hub.get("/api/v1/users?per_page=2&page=2").await;
    assert_eq!(page["total"], 4);
    assert_eq!(page["users"].as_array().unwrap().len(), 2);

    // Everything set survives kill -9.
    hub.restart();
    assert_eq!(hub.get("/api/v1/users").await["total"], 4);
    assert_eq!(
        hub.get("/api/v1/users/alice/notes").await["notes"][0]["text"],
        "back at 3pm"
    );
    assert_eq!(
        hub.get("/api/v1/settings/rules").await["voicemail_pilot"],
        "8000"
    );
    let r = hub
        .http
        .get(hub.url("/api/v1/presence"))
        .bearer_auth(&console)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "token lost");
    hub.wait_for(
        "/api/v1/presence/alice",
        "alice from the SIP server again",
        |v| v["rich"]["note"] == "coffee",
    )
    .await;
    // Revoked tokens stop working.
    ok(
        &hub,
        "DELETE",
        &format!("/api/v1/tokens/{}", t["id"].as_str().unwrap()),
        None,
    )
    .await;
    let r = hub
        .http
        .get(hub.url("/api/v1/presence"))
        .bearer_auth(&console)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_feed_client_is_cut_off_without_slowing_others() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hub = Hub::start(&["plugins/http-push"], &[]);
    let users: Vec<Value> = (0..50)
        .map(|i| json!({"username": format!("u{i}"), "extension": format!("{}", 3000 + i)}))
        .collect();
    let r = hub
        .http
        .post(hub.url("/api/v1/users/import"))
        .bearer_auth(TOKEN)
        .json(&users)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    ok(
        &hub,
        "POST",
        "/api/v1/connectors",
        Some(json!({"id": "cti", "plugin": "http-push", "config": {"shared_secret": SECRET}})),
    )
    .await;
    // A client that subscribes to everything and then does not read, with a
    // small receive buffer so the backlog stays on the hub's side.
    let addr: std::net::SocketAddr = hub.base.trim_start_matches("http://").parse().unwrap();
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut slow = sock.connect(addr).await.unwrap();
    slow.write_all(format!("GET /api/v1/feed/sse HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut fast = Sse::open(&hub, "users=u7", None).await;
    fast.next().await; // snapshot
    // Far more (and larger) changes than the feed buffers for one client.
    let note = "x".repeat(600);
    for round in 0..300 {
        let updates: Vec<Value> = (0..50)
            .map(|i| {
                json!({"endpoint": format!("{}", 3000 + i), "sequence": round,
                "telephony": {"line": if round % 2 == 0 { "in-call" } else { "idle" }},
                "raw": {"note": format!("{note}{round}")}})
            })
            .collect();
        push(&hub, "cti", json!({"updates": updates})).await;
        // The fast client keeps up all along.
        if round % 50 == 49 {
            fast.until("u7 round", |v| v["username"] == "u7").await;
        }
    }
    fast.until("u7 final", |v| {
        v["username"] == "u7" && v["telephony"]["state"] == "available"
    })
    .await;
    // The slow one was cut off: the hub ends its stream after a resync event.
    let mut all = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), slow.read_to_end(&mut all)).await;
    assert!(read.is_ok(), "the slow client was not cut off");
    let text = String::from_utf8_lossy(&all);
    assert!(
        text.contains("event: resync"),
        "{}",
        &text[text.len().saturating_sub(300)..]
    );
    assert_eq!(hub.get("/healthz").await["status"], "ok");
}

/// `cargo xtask demo` drives the hub from outside, as any webhook sender
/// would: here it is attached to a test hub.
struct Demo(std::process::Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_demo_shows_presence_changing_live() {
    let hub = Hub::start(&["plugins/http-push"], &[]);
    let xtask = hub_e2e::root().join("target/debug/xtask");
    assert!(
        xtask.exists(),
        "{} is missing: run the tests with `cargo xtask test`",
        xtask.display()
    );
    let _demo = Demo(
        std::process::Command::new(&xtask)
            .args(["demo", "--attach", &hub.base])
            .env("HUB_ADMIN_TOKEN", TOKEN)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("the demo starts"),
    );
    let mut feed = Sse::open(&hub, "", None).await;
    feed.next().await; // snapshot
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let (_, v) = feed
            .until("a live change", |v| v["type"] == "presence")
            .await;
        seen.insert(v["username"].as_str().unwrap_or("").to_string());
    }
    assert!(!seen.is_empty());
    let list = hub.get("/api/v1/presence").await;
    assert_eq!(list["total"], 6, "{list}");
}

/// A hub with user alice, watched by http-push instance `cti` by username,
/// and alice's first push (busy) sent.
async fn alice_busy_on_cti() -> Hub {
    let hub = Hub::start(&["plugins/http-push"], &[]);
    ok(
        &hub,
        "POST",
        "/api/v1/users",
        Some(json!({"username": "alice", "display_name": "Alice"})),
    )
    .await;
    ok(
        &hub,
        "PUT",
        "/api/v1/settings/rules",
        Some(json!({"instance_fields": {"cti": "username"}})),
    )
    .await;
    ok(
        &hub,
        "POST",
        "/api/v1/connectors",
        Some(json!({"id": "cti", "plugin": "http-push", "config": {"shared_secret": SECRET}})),
    )
    .await;
    push(
        &hub,
        "cti",
        json!({"endpoint": "alice", "rich": {"availability": "busy"}}),
    )
    .await;
    hub
}

/// A connector deleted through the API is gone everywhere: no user lists it
/// as a source any more, and users created afterwards never see it.
#[tokio::test]
async fn a_deleted_connector_is_gone_everywhere() {
    let hub = alice_busy_on_cti().await;
    hub.wait_for("/api/v1/presence/alice", "cti reports", |v| {
        v["rich"]["source"] == "cti"
    })
    .await;
    ok(&hub, "DELETE", "/api/v1/connectors/cti", None).await;
    let p = hub
        .wait_for("/api/v1/presence/alice", "cti gone", |v| {
            v["sources"].as_array().is_some_and(|s| s.is_empty())
        })
        .await;
    assert!(p["rich"]["source"].is_null(), "{p}");
    ok(
        &hub,
        "POST",
        "/api/v1/users",
        Some(json!({"username": "bob", "display_name": "Bob"})),
    )
    .await;
    let b = hub.get("/api/v1/presence/bob").await;
    assert_eq!(b["sources"], json!([]), "{b}");
}

/// A source that sends only changes keeps its state while it vouches for
/// it: no time limit by default. An operator's limit, when set, ages it out;
/// lifting the limit brings the state back at once.
#[tokio::test]
async fn a_quiet_source_keeps_its_state_unless_the_operator_sets_a_limit() {
    let hub = alice_busy_on_cti().await;
    hub.wait_for("/api/v1/presence/alice", "busy", |v| {
        v["rich"]["state"] == "busy"
    })
    .await;
    // Quiet past what a 2 s limit would allow (the tick runs every 2 s).
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let p = hub.get("/api/v1/presence/alice").await;
    assert_eq!(p["rich"]["state"], "busy", "{p}");
    ok(
        &hub,
        "PUT",
        "/api/v1/settings/rules",
        Some(json!({"instance_fields": {"cti": "username"}, "stale_after_seconds": 2})),
    )
    .await;
    hub.wait_for("/api/v1/presence/alice", "aged out", |v| {
        v["rich"]["state"] == "unknown"
    })
    .await;
    ok(
        &hub,
        "PUT",
        "/api/v1/settings/rules",
        Some(json!({"instance_fields": {"cti": "username"}, "stale_after_seconds": null})),
    )
    .await;
    hub.wait_for("/api/v1/presence/alice", "busy again", |v| {
        v["rich"]["state"] == "busy"
    })
    .await;
    // A source that declares how long its state holds (a sender that
    // re-sends periodically) ages out when it stops.
    push(
        &hub,
        "cti",
        json!({"endpoint": "alice", "rich": {"availability": "away"}, "valid_for_seconds": 1}),
    )
    .await;
    hub.wait_for("/api/v1/presence/alice", "away", |v| {
        v["rich"]["state"] == "away"
    })
    .await;
    hub.wait_for("/api/v1/presence/alice", "lapsed", |v| {
        v["rich"]["state"] == "unknown"
    })
    .await;
}
