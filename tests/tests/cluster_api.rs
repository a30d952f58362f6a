//! The same API on every node of a cluster (issue 21): two hub nodes on
//! one PostgreSQL database (a throw-away cluster the test kit starts) and
//! a SIP/SIMPLE instance run by one of them (X), whose "server" is a UDP
//! socket of this test. On the other node (Y): a write-back answers 202
//! and reaches the plugin on X, and its record is readable on Y and X; a
//! change the plugin refuses answers 422 in the plugin's words and the
//! stored configuration stays on every node; a valid change answers 200
//! and X's running instance takes it (no restart from the store) and uses
//! it; a request already passed on once is never passed on again; with X
//! gone, Y answers 503 with Retry-After until it has taken the instance
//! over, then handles the request itself.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hub_e2e::postgres::Postgres;
use hub_e2e::{Hub, TOKEN};
use serde_json::{Value, json};

const ID: &str = "pbx";

fn start_node(url: &str, id: &str, key: &[u8; 32]) -> Hub {
    Hub::start_prepared(
        &["plugins/sip-simple"],
        &[
            ("HUB_DATABASE_URL", url),
            ("HUB_NODE_ID", id),
            ("HUB_LOG", "info,presence_hub=debug"),
        ],
        |data| std::fs::write(data.join("secret.key"), key).unwrap(),
    )
}

/// A UDP socket standing in for the SIP server: it keeps the first line
/// of every datagram the connector sends it.
struct SipPeer {
    addr: String,
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SipPeer {
    async fn start() -> SipPeer {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let keep = seen.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, _)) = socket.recv_from(&mut buf).await {
                let text = String::from_utf8_lossy(&buf[..n]);
                let first = text.lines().next().unwrap_or_default().to_string();
                keep.lock().unwrap().push(first);
            }
        });
        SipPeer { addr, seen, task }
    }

    fn saw(&self, method: &str) -> bool {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with(method))
    }

    async fn wait_for(&self, method: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.saw(method) {
            assert!(
                Instant::now() < deadline,
                "no {method} reached {} within {within:?}; saw {:?}",
                self.addr,
                self.seen.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SipPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The node each live node says runs `ID`, once they agree.
async fn holder(hubs: &[(&str, &Hub)]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut seen = Vec::new();
        for (_, hub) in hubs {
            // A node may not have taken the new instance in yet (404).
            let (_, c) = hub
                .call("GET", &format!("/api/v1/connectors/{ID}"), None)
                .await;
            seen.push(c["node"].as_str().map(str::to_string));
        }
        if let Some(Some(n)) = seen.first()
            && seen.iter().all(|s| s.as_deref() == Some(n.as_str()))
        {
            return n.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the nodes do not agree who runs {ID}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How often X's log says it took a change of `ID` from the store (the
/// old path: a change made on another node restarted the run).
fn restarts_from_store(hub: &Hub) -> usize {
    hub.log()
        .lines()
        .filter(|l| {
            l.contains("connector created or changed on another node")
                && l.contains(&format!("instance={ID}"))
        })
        .count()
}

async fn send(
    hub: &Hub,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let auth = format!("Bearer {TOKEN}");
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    let (ctype, bytes) = match body {
        Some(b) => (Some("application/json"), serde_json::to_vec(&b).unwrap()),
        None => (None, Vec::new()),
    };
    let (s, h, b) = hub.send(method, path, &headers, ctype, bytes).await;
    (s, h, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_answers_for_the_instance_as_the_node_running_it() {
    let started = Instant::now();
    let pg = Postgres::shared();
    let url = pg.create_database("cluster_api");
    let mut key = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut key).unwrap();
    let mut a = start_node(&url, "node-a", &key);
    let mut b = start_node(&url, "node-b", &key);
    let first = SipPeer::start().await;
    let second = SipPeer::start().await;

    let (s, _, v) = send(
        &a,
        "POST",
        "/api/v1/connectors",
        &[],
        Some(json!({
            "id": ID,
            "plugin": "sip-simple",
            "config": {"server": first.addr, "uri": "hub@127.0.0.1", "password": "pw-0123456789"},
            "watches": ["alice@127.0.0.1"],
        })),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let x_id = holder(&[("node-a", &a), ("node-b", &b)]).await;
    // X runs the instance, Y is the other node; Y is held to the API
    // description it serves.
    let (x, y) = if x_id == "node-a" {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    let y_id = if x_id == "node-a" { "node-b" } else { "node-a" };
    y.check_api().await;
    let (x, y) = (&*x, &*y);
    first.wait_for("SUBSCRIBE", Duration::from_secs(10)).await;
    let restarts_before = restarts_from_store(x);

    // A write-back on Y: 202, made by the plugin on X (its PUBLISH reaches
    // the server), its record at the answer's Location on both nodes.
    let write_path = format!("/api/v1/connectors/{ID}/endpoints/alice@127.0.0.1/presence");
    let deadline = Instant::now() + Duration::from_secs(10);
    let (location, record) = loop {
        let (s, h, v) = send(
            y,
            "POST",
            &write_path,
            &[],
            Some(json!({"action": "set", "availability": "do-not-disturb"})),
        )
        .await;
        // The plugin refuses (422) until its socket is open on X.
        if s == 422 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        assert_eq!(s, 202, "a write-back on {y_id} for {ID} run by {x_id}: {v}");
        let location = h
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or_default()
            .to_string();
        break (location, v);
    };
    assert_eq!(
        location,
        format!("/api/v1/writes/{}?node={x_id}", record["id"]),
        "{record}"
    );
    first.wait_for("PUBLISH", Duration::from_secs(10)).await;
    for (name, hub) in [(y_id, y), (x_id.as_str(), x)] {
        let (s, _, w) = send(hub, "GET", &location, &[], None).await;
        assert_eq!(s, 200, "{location} on {name}: {w}");
        assert_eq!(
            (&w["id"], &w["instance"]),
            (&record["id"], &json!(ID)),
            "{name}: {w}"
        );
    }
    let writes = y.get(&format!("/api/v1/connectors/{ID}/writes")).await;
    assert!(
        writes["writes"]
            .as_array()
            .is_some_and(|ws| ws.iter().any(|w| w["id"] == record["id"])),
        "the instance's writes, asked on {y_id}: {writes}"
    );
    // A node that is not live has no records to pass the GET to.
    let gone = format!("/api/v1/writes/{}?node=node-z", record["id"]);
    let (s, _, v) = send(y, "GET", &gone, &[], None).await;
    assert_eq!((s, v["field"].as_str()), (404, Some("node")), "{v}");

    // A change the plugin refuses: 422 on Y in the plugin's words; the
    // stored configuration is unchanged everywhere.
    let (s, _, v) = send(
        y,
        "PATCH",
        &format!("/api/v1/connectors/{ID}"),
        &[],
        Some(json!({"config": {"uri": "not a uri"}})),
    )
    .await;
    assert_eq!(s, 422, "a refused change on {y_id}: {v}");
    assert_eq!(v["field"], "config.uri", "{v}");
    let words = v["error"].as_str().unwrap_or_default();
    assert!(
        words.contains("user@domain") && words.contains("previous configuration was kept"),
        "{v}"
    );
    // Long enough for a stored change to reach every node (milliseconds).
    tokio::time::sleep(Duration::from_millis(500)).await;
    for hub in [x, y] {
        let c = hub.get(&format!("/api/v1/connectors/{ID}")).await;
        assert_eq!(c["config"]["uri"], "hub@127.0.0.1", "{c}");
    }

    // A valid change: 200 on Y, taken by the running instance on X (not
    // by a restart from the store), which now talks to the new server.
    assert!(!second.saw("SUBSCRIBE"));
    let (s, _, v) = send(
        y,
        "PATCH",
        &format!("/api/v1/connectors/{ID}"),
        &[],
        Some(json!({"config": {"server": second.addr, "password": "pw-0123456789"}})),
    )
    .await;
    assert_eq!(s, 200, "a valid change on {y_id}: {v}");
    assert_eq!(v["config"]["server"], json!(second.addr), "{v}");
    assert_eq!(v["node"], json!(x_id), "{v}");
    second.wait_for("SUBSCRIBE", Duration::from_secs(10)).await;
    y.wait_for(&format!("/api/v1/connectors/{ID}"), "the change", |c| {
        c["config"]["server"] == json!(second.addr)
    })
    .await;
    assert_eq!(
        restarts_from_store(x),
        restarts_before,
        "{x_id} restarted {ID} from the store instead of taking the change"
    );

    // A request passed on once is never passed on again: Y, which does
    // not run the instance, answers 503 naming X; X handles it.
    let patch = json!({"config": {"expires": 900}});
    let marked = [("x-presence-hub-forwarded", "node-z")];
    let path = format!("/api/v1/connectors/{ID}");
    let (s, h, v) = send(y, "PATCH", &path, &marked, Some(patch.clone())).await;
    assert_eq!(s, 503, "{v}");
    assert!(h.contains_key("retry-after"), "{h:?}");
    let words = v["error"].as_str().unwrap_or_default();
    assert!(
        words.contains(&x_id) && words.contains("not passed on again"),
        "{v}"
    );
    let (s, _, v) = send(x, "PATCH", &path, &marked, Some(patch)).await;
    assert_eq!(s, 200, "{v}");

    // X gone: Y answers 503 with Retry-After (X refuses connections, then
    // the instance is being taken over), until Y runs it and answers.
    let (x, y) = if x_id == "node-a" {
        (&mut a, &b)
    } else {
        (&mut b, &a)
    };
    x.kill9();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut waits = Vec::new();
    let mut hooks = Vec::new();
    loop {
        // A platform's webhook first: until the change below is taken, no
        // live node ran the instance when it arrived either.
        let (hook, hook_h, hook_v) =
            send(y, "POST", &format!("/hooks/{ID}"), &[], Some(json!({}))).await;
        let (s, h, v) = send(
            y,
            "PATCH",
            &path,
            &[],
            Some(json!({"config": {"expires": 1200}})),
        )
        .await;
        if s == 200 {
            assert_eq!(v["node"], json!(y_id), "{v}");
            break;
        }
        assert_eq!(s, 503, "while {x_id} is gone: {v}");
        assert_eq!(
            hook, 503,
            "a webhook while {ID} moves is to be delivered again, not unknown: {hook_v}"
        );
        assert!(hook_h.contains_key("retry-after"), "{hook_h:?}");
        hooks.push(hook);
        let retry = h
            .get("retry-after")
            .and_then(|r| r.to_str().ok())
            .and_then(|r| r.parse::<u64>().ok());
        assert!(retry.is_some_and(|r| r >= 1), "Retry-After: {h:?}");
        waits.push(v["error"].as_str().unwrap_or_default().to_string());
        assert!(
            Instant::now() < deadline,
            "{y_id} did not take {ID} over: {waits:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(!waits.is_empty(), "{y_id} answered for {ID} at once");
    println!(
        "{} answers of 503 while {ID} moved (and {} to webhooks); the test took {:?}",
        waits.len(),
        hooks.len(),
        started.elapsed()
    );
}
