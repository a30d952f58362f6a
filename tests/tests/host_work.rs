//! A plugin's CPU deadline is never reached because of host work (issue 11).
//!
//! The hub runs with a 50 ms CPU deadline for every guest call. An
//! http-push instance takes signed webhooks and a sip-simple instance takes
//! NOTIFYs from a real Kamailio, while the presence service is held busy:
//! 100,000 users imported as four CSVs of 25,000, user edits at 100,000
//! users, full user scans, and edits while the store is held locked by
//! another process (a slow store). Before the presence service owned its
//! state, a report import waited for the presence lock, so a user edit at
//! 100k users (1-2 s) ran a healthy plugin into its deadline: it crashed,
//! was quarantined, and the webhooks that came meanwhile got 503. Here every
//! webhook is answered 202, including those answered while an import or an
//! edit was in flight, neither instance ever crashes or restarts, the
//! NOTIFYs and webhooks reach presence and the feed, and every edit is
//! answered 200 and takes effect.
//!
//! The deadline is counted in wall-clock time (wasm epochs), so a call
//! whose thread is kept off the CPU long enough by other processes reaches
//! it without any host work; a failure says how long the instances' threads
//! waited for a CPU.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hub_e2e::kamailio::{AuthMode, Kamailio, password};
use hub_e2e::{Hub, TOKEN, sign, unix_now};
use serde_json::{Value, json};

const SECRET: &str = "a-shared-secret-of-32-bytes-long";
/// The CPU deadline of every guest call.
const DEADLINE_MS: u64 = 50;
/// Users imported, as CSVs of `CHUNK`.
const USERS: usize = 100_000;
const CHUNK: usize = 25_000;
/// Webhooks pushed at least (more while the host is still busy, up to
/// `MAX_WEBHOOKS`), one every `WEBHOOK_EVERY`.
const MIN_WEBHOOKS: usize = 200;
const MAX_WEBHOOKS: usize = 1_000;
const WEBHOOK_EVERY: Duration = Duration::from_millis(40);
/// Updates per webhook: the canary plus random imported users.
const UPDATES_PER_WEBHOOK: usize = 20;
/// PUBLISHes (each one a NOTIFY to the hub) at least, one every
/// `PUBLISH_EVERY` at most.
const MIN_PUBLISHES: usize = 16;
const PUBLISH_EVERY: Duration = Duration::from_millis(200);
/// Users with a presence account on Kamailio (`tests/kamailio/db`).
const SIP_USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];
/// The imported user every webhook reports on, with its note.
const CANARY: usize = 7;
/// Imported users edited at 100k users (a new extension and name each).
const EDITED: [usize; 5] = [11, 25_013, 50_017, 75_019, 99_991];
/// Edited while another process holds the store's write lock.
const EDITED_SLOW: [usize; 2] = [33_331, 66_661];
/// How long the store stays locked.
const STORE_LOCKED: Duration = Duration::from_millis(2_000);

fn username(i: usize) -> String {
    format!("u{i:06}")
}

fn extension(i: usize) -> String {
    format!("{}", 100_000 + i)
}

/// An edited user's new extension.
fn new_extension(i: usize) -> String {
    format!("{}", 900_000 + i)
}

fn pidf(user: &str, note: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:{user}@127.0.0.1">
  <tuple id="t-{user}"><status><basic>open</basic></status><note>{note}</note></tuple>
  <dm:person id="p-{user}"><rpid:activities><rpid:away/></rpid:activities></dm:person>
</presence>"#
    )
}

async fn ok(hub: &Hub, method: &str, path: &str, body: Option<Value>) -> Value {
    let (s, v) = hub.call(method, path, body).await;
    assert!((200..300).contains(&s), "{method} {path}: {s} {v}");
    v
}

/// What was going on in the admin task, for the webhooks to sample: 0 when
/// idle, else the number of the operation in flight (odd numbers imports,
/// even numbers edits and scans).
#[derive(Default)]
struct Busy {
    op: AtomicU64,
    next: AtomicU64,
    done: AtomicBool,
}

impl Busy {
    fn begin(&self, import: bool) {
        let n = self.next.fetch_add(1, Ordering::SeqCst) * 2 + 2;
        self.op.store(n + u64::from(import), Ordering::SeqCst);
    }

    fn end(&self) {
        self.op.store(0, Ordering::SeqCst);
    }

    fn now(&self) -> u64 {
        self.op.load(Ordering::SeqCst)
    }
}

/// One webhook's outcome.
struct Pushed {
    status: u16,
    body: String,
    /// The admin operation in flight both when it was sent and when it was
    /// answered (0: none).
    inside: u64,
    took: Duration,
}

async fn push(hub: &Hub, body: &Value) -> (u16, String) {
    let body = serde_json::to_vec(body).unwrap();
    let ts = unix_now();
    let r = hub
        .http
        .post(hub.url("/hooks/push/presence"))
        .header("content-type", "application/json")
        .header("X-Hub-Timestamp", ts.to_string())
        .header("X-Hub-Signature", sign(SECRET, ts, &body))
        .body(body)
        .send()
        .await
        .expect("the hub answers a webhook");
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}

/// The CSV of users `start..start + CHUNK`.
fn csv(start: usize) -> String {
    let mut s = String::from("username,display_name,department,extension\n");
    for i in start..(start + CHUNK).min(USERS) {
        s.push_str(&format!(
            "{},User {i},Dept {},{}\n",
            username(i),
            i % 50,
            extension(i)
        ));
    }
    s
}

/// Hold the write lock of the store in `dir` from another process (the
/// `sqlite3` shell) for `STORE_LOCKED`; returns once the lock is taken,
/// with the process (`None` without `sqlite3`).
fn lock_store(dir: &std::path::Path) -> Option<std::process::Child> {
    use std::io::Write;
    let sqlite3 = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain(["/usr/bin", "/usr/local/bin"].map(Into::into))
        .map(|d| d.join("sqlite3"))
        .find(|p| p.is_file())?;
    let db = dir.join("data/hub.db");
    let marker = dir.join("store-locked");
    let mut child = std::process::Command::new(sqlite3)
        .arg(&db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start sqlite3");
    write!(
        child.stdin.take().unwrap(),
        ".timeout 10000\nBEGIN IMMEDIATE;\n.shell touch '{}'; sleep {}\nCOMMIT;\n",
        marker.display(),
        STORE_LOCKED.as_secs_f64()
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !marker.exists() {
        if let Ok(Some(s)) = child.try_wait() {
            panic!("sqlite3 ended with {s} before it held the store's lock");
        }
        assert!(
            Instant::now() < deadline,
            "sqlite3 did not get the store's write lock"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Some(child)
}

/// Follow the feed for the SIP users until `stop`; the notes seen per user.
async fn follow_feed(hub: &Hub, stop: &AtomicBool) -> HashMap<String, Vec<String>> {
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    let mut resp = hub
        .http
        .get(hub.url(&format!("/api/v1/feed/sse?users={}", SIP_USERS.join(","))))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut buf = String::new();
    while !stop.load(Ordering::SeqCst) {
        let chunk = match tokio::time::timeout(Duration::from_millis(200), resp.chunk()).await {
            Err(_) => continue,
            Ok(c) => c.unwrap().expect("the feed stays open"),
        };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let data: String = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            if let Ok(v) = serde_json::from_str::<Value>(&data) {
                take_notes(&v, &mut seen);
            }
        }
    }
    seen
}

/// The notes of a feed message (a snapshot or a change), per user.
fn take_notes(data: &Value, seen: &mut HashMap<String, Vec<String>>) {
    let mut one = |u: &Value| {
        if let (Some(name), Some(note)) = (u["username"].as_str(), u["rich"]["note"].as_str()) {
            let notes = seen.entry(name.to_string()).or_default();
            if notes.last().map(String::as_str) != Some(note) {
                notes.push(note.to_string());
            }
        }
    };
    match data["type"].as_str() {
        Some("snapshot") => data["users"].as_array().into_iter().flatten().for_each(one),
        Some("presence") => one(data),
        Some("resync") => panic!("the feed cut its client off: {data}"),
        _ => {}
    }
}

/// Anything wrong with an instance's status: a restart, a run that is not
/// running, or an error.
fn anomaly(id: &str, v: &Value) -> Option<String> {
    let st = &v["status"];
    let wrong = st["restarts"] != 0
        || st["run_state"] != "running"
        || !st["last_error"].is_null()
        || st["quarantine_reason"].is_string();
    wrong.then(|| format!("{id}: {st}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50ms_plugin_keeps_going_while_the_presence_service_is_busy() {
    let started = Instant::now();
    let k = Arc::new(Kamailio::start(AuthMode::None));
    for user in SIP_USERS {
        k.sipp_publish(user, &pidf(user, "start"), 600);
    }
    // The manifests ask for 500 ms; the hub's cap brings both to 50 ms.
    let config = tempfile::tempdir().unwrap();
    let config_file = config.path().join("hub.toml");
    std::fs::write(
        &config_file,
        format!("[limits]\ncall_timeout_ms = {DEADLINE_MS}\nmax_call_timeout_ms = {DEADLINE_MS}\n"),
    )
    .unwrap();
    let hub = Hub::start(
        &["plugins/sip-simple", "plugins/http-push"],
        &[("HUB_CONFIG", config_file.to_str().unwrap())],
    );
    for plugin in ["sip-simple", "http-push"] {
        let p = hub.get(&format!("/api/v1/plugins/{plugin}")).await;
        assert_eq!(p["limits"]["call_timeout_ms"], DEADLINE_MS, "{p}");
    }

    // pbx watches SIP URIs only (four subscriptions), push watches
    // extensions (every one of the 100k users). The instances come before
    // the users, so that every watch reaches a running instance as an
    // addition: a new instance's first, whole watch set can get lost (the
    // runtime announces a connector to the presence service before it puts
    // it in its table, and a watch change for an instance not in the table
    // is dropped).
    ok(
        &hub,
        "PUT",
        "/api/v1/settings/rules",
        Some(json!({"instance_fields": {"pbx": "sip-uri", "push": "extension"}})),
    )
    .await;
    ok(
        &hub,
        "POST",
        "/api/v1/connectors",
        Some(json!({"id": "pbx", "plugin": "sip-simple", "config": {
            "server": format!("127.0.0.1:{}", k.port), "uri": "hub@127.0.0.1",
            "password": password("hub"), "subscribe": "presence", "expires": 60,
            "keepalive_seconds": 1,
        }})),
    )
    .await;
    ok(
        &hub,
        "POST",
        "/api/v1/connectors",
        Some(json!({"id": "push", "plugin": "http-push", "config": {"shared_secret": SECRET}})),
    )
    .await;
    for (n, user) in SIP_USERS.iter().enumerate() {
        ok(
            &hub,
            "POST",
            "/api/v1/users",
            Some(json!({
                "username": user, "display_name": user, "extension": format!("{}", 2001 + n),
                "sip_uri_rich": format!("{user}@127.0.0.1"),
            })),
        )
        .await;
    }
    for user in SIP_USERS {
        hub.wait_for(
            &format!("/api/v1/presence/{user}"),
            "the first NOTIFY",
            |v| v["rich"]["note"] == "start",
        )
        .await;
    }
    hub.wait_for("/api/v1/connectors/push", "push up", |v| {
        v["status"]["status"] == "up-and-running"
    })
    .await;
    for id in ["pbx", "push"] {
        let v = hub.get(&format!("/api/v1/connectors/{id}")).await;
        assert_eq!(anomaly(id, &v), None);
    }
    let ready = started.elapsed();

    // ---- the load ------------------------------------------------------
    let busy = Busy::default();
    let stop_feed = AtomicBool::new(false);
    let anomalies: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let load_started = Instant::now();

    // Operators: imports, edits and scans at 100k users, a slow store.
    let admin = async {
        let mut ops: Vec<(String, u16, Duration)> = Vec::new();
        for start in (0..USERS).step_by(CHUNK) {
            let body = csv(start);
            let t = Instant::now();
            busy.begin(true);
            let r = hub
                .http
                .post(hub.url("/api/v1/users/import"))
                .bearer_auth(TOKEN)
                .header("content-type", "text/csv")
                .body(body)
                .send()
                .await
                .unwrap();
            busy.end();
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            assert_eq!(status, 200, "import from {start}: {v}");
            assert_eq!(v["imported"], CHUNK, "{v}");
            ops.push((format!("import {start}.."), status, t.elapsed()));
        }
        let edit = |i: usize| {
            json!({
                "username": username(i), "display_name": format!("Edited {i}"),
                "department": "Edited", "extension": new_extension(i),
            })
        };
        for i in EDITED {
            let t = Instant::now();
            busy.begin(false);
            let (s, v) = hub
                .call(
                    "PUT",
                    &format!("/api/v1/users/{}", username(i)),
                    Some(edit(i)),
                )
                .await;
            busy.end();
            assert_eq!(s, 200, "edit {}: {v}", username(i));
            ops.push((format!("edit {}", username(i)), s, t.elapsed()));
        }
        // A full scan of the users on the service (a search).
        for q in ["u099999", "Edited"] {
            let t = Instant::now();
            busy.begin(false);
            let (s, v) = hub
                .call("GET", &format!("/api/v1/users?q={q}&per_page=10"), None)
                .await;
            busy.end();
            assert_eq!(s, 200, "search {q}: {v}");
            assert!(v["total"].as_u64().unwrap() >= 1, "{v}");
            ops.push((format!("search {q}"), s, t.elapsed()));
        }
        // A slow store: another process holds its write lock meanwhile.
        let mut slow_store = false;
        let dir = hub.dir.path().to_path_buf();
        let locker = tokio::task::spawn_blocking(move || lock_store(&dir))
            .await
            .unwrap();
        if locker.is_none() {
            eprintln!("sqlite3 is not installed: the slow-store edits run on a free store");
        }
        for i in EDITED_SLOW {
            let t = Instant::now();
            busy.begin(false);
            let (s, v) = hub
                .call(
                    "PUT",
                    &format!("/api/v1/users/{}", username(i)),
                    Some(edit(i)),
                )
                .await;
            busy.end();
            assert_eq!(s, 200, "edit {} on a locked store: {v}", username(i));
            ops.push((
                format!("edit {} (store locked)", username(i)),
                s,
                t.elapsed(),
            ));
        }
        if let Some(mut locker) = locker {
            let out = tokio::task::spawn_blocking(move || {
                let status = locker.wait().unwrap();
                let mut err = String::new();
                use std::io::Read;
                locker
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                (status, err)
            })
            .await
            .unwrap();
            assert!(out.0.success() && out.1.is_empty(), "sqlite3: {out:?}");
            slow_store = true;
        }
        busy.done.store(true, Ordering::SeqCst);
        (ops, slow_store)
    };

    // A sender pushing batches: the canary with a counting note, and random
    // imported users' lines.
    let webhooks = async {
        let mut out: Vec<Pushed> = Vec::new();
        let mut rng = fastrand::Rng::with_seed(11);
        let mut next = tokio::time::Instant::now();
        while out.len() < MIN_WEBHOOKS
            || (!busy.done.load(Ordering::SeqCst) && out.len() < MAX_WEBHOOKS)
        {
            tokio::time::sleep_until(next).await;
            next += WEBHOOK_EVERY;
            let n = out.len();
            let seq = 1_000_000 + n as u64;
            let mut updates = vec![json!({
                "endpoint": extension(CANARY), "sequence": seq,
                "rich": {"availability": "busy", "note": format!("w{n}")},
            })];
            for _ in 1..UPDATES_PER_WEBHOOK {
                let line = ["idle", "ringing", "in-call", "on-hold"][rng.usize(0..4)];
                updates.push(json!({
                    "endpoint": extension(rng.usize(0..USERS)), "sequence": seq,
                    "telephony": {"line": line},
                }));
            }
            let before = busy.now();
            let t = Instant::now();
            let (status, body) = push(&hub, &json!({ "updates": updates })).await;
            let took = t.elapsed();
            let inside = if before != 0 && busy.now() == before {
                before
            } else {
                0
            };
            out.push(Pushed {
                status,
                body,
                inside,
                took,
            });
        }
        out
    };

    // NOTIFYs: PUBLISHes to Kamailio, which notifies the hub.
    let notifies = async {
        let mut last: HashMap<&str, String> = HashMap::new();
        let mut n = 0;
        let mut next = tokio::time::Instant::now();
        while n < MIN_PUBLISHES || !busy.done.load(Ordering::SeqCst) {
            // Paced: each PUBLISH starts a sipp process, whose CPU would
            // otherwise compete with the hub's.
            tokio::time::sleep_until(next).await;
            next += PUBLISH_EVERY;
            let user = SIP_USERS[n % SIP_USERS.len()];
            let note = format!("n{n}");
            let (k2, body) = (k.clone(), pidf(user, &note));
            tokio::task::spawn_blocking(move || k2.sipp_publish(user, &body, 600))
                .await
                .unwrap();
            last.insert(user, note);
            n += 1;
        }
        (n, last)
    };

    // The instances' status, watched all along.
    let monitor = async {
        let mut polls = 0;
        while !busy.done.load(Ordering::SeqCst) {
            for id in ["pbx", "push"] {
                let (s, v) = hub
                    .call("GET", &format!("/api/v1/connectors/{id}"), None)
                    .await;
                let found = if s != 200 {
                    Some(format!("GET {id}: {s} {v}"))
                } else {
                    anomaly(id, &v)
                };
                if let Some(a) = found {
                    anomalies.lock().unwrap().push(a);
                }
            }
            polls += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        polls
    };

    // How the scheduler treated the instances' threads: the deadline counts
    // wall-clock time, so a thread kept off the CPU by other processes
    // reaches it too. Reported with any failure.
    let scheduling = async {
        let pid = hub.pid().expect("the hub runs");
        let mut threads: Vec<Starved> = ["connector push", "connector pbx"]
            .into_iter()
            .map(Starved::new)
            .collect();
        while !busy.done.load(Ordering::SeqCst) {
            for t in &mut threads {
                t.sample(pid);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        threads
            .iter()
            .map(Starved::summary)
            .collect::<Vec<_>>()
            .join("; ")
    };

    let feed = follow_feed(&hub, &stop_feed);
    let load = async {
        let r = tokio::join!(admin, webhooks, notifies, monitor, scheduling);
        stop_feed.store(true, Ordering::SeqCst);
        r
    };
    let (((ops, slow_store), pushed, (publishes, last_notes), polls, cpu), seen) =
        tokio::join!(load, feed);
    let load_took = load_started.elapsed();

    // ---- what must hold ------------------------------------------------
    // Every webhook was answered 202, also those inside an import or edit.
    let failed: Vec<String> = pushed
        .iter()
        .enumerate()
        .filter(|(_, p)| p.status != 202)
        .map(|(n, p)| format!("webhook {n}: {} {}", p.status, p.body))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} webhooks failed:\n{}\n{cpu}\nlog tail:\n{}",
        failed.len(),
        pushed.len(),
        failed.join("\n"),
        tail(&hub.log())
    );
    let inside_imports = pushed.iter().filter(|p| p.inside % 2 == 1).count();
    let inside_edits = pushed
        .iter()
        .filter(|p| p.inside != 0 && p.inside % 2 == 0)
        .count();
    // Each of these was handled by the plugin while the service was at work
    // for operators; the store alone stays locked for 2 s.
    if slow_store {
        assert!(
            inside_edits >= 5,
            "only {inside_edits} webhooks were answered while an edit was in flight"
        );
    }
    assert!(
        inside_imports + inside_edits >= 5,
        "only {inside_imports} + {inside_edits} webhooks were answered inside host work"
    );

    // Neither instance ever crashed, restarted or reported an error.
    let anomalies = anomalies.into_inner().unwrap();
    assert!(polls > 0);
    assert!(
        anomalies.is_empty(),
        "status during the load:\n{}\n{cpu}",
        anomalies.join("\n")
    );
    for id in ["pbx", "push"] {
        let v = hub.get(&format!("/api/v1/connectors/{id}")).await;
        assert_eq!(anomaly(id, &v), None, "{cpu}");
        assert_eq!(v["status"]["status"], "up-and-running", "{v}");
        assert_eq!(v["status"]["events_dropped"], 0, "{v}");
    }
    let log = hub.log();
    for bad in ["CPU deadline", "connector crashed", "quarantined"] {
        assert!(
            !log.contains(bad),
            "the hub logged {bad:?}:\n{}",
            tail(&log)
        );
    }

    // The NOTIFYs reached presence and the feed: each SIP user's last note.
    for (user, note) in &last_notes {
        hub.wait_for(
            &format!("/api/v1/presence/{user}"),
            "the last NOTIFY",
            |v| v["rich"]["note"] == note.as_str() && v["rich"]["source"] == "pbx",
        )
        .await;
        let notes = seen.get(*user).cloned().unwrap_or_default();
        assert!(
            notes.contains(note),
            "the feed never showed {user}'s last note {note}: {notes:?}"
        );
    }
    // The webhooks reached presence: the canary's last note.
    let last = format!("w{}", pushed.len() - 1);
    hub.wait_for(
        &format!("/api/v1/presence/{}", username(CANARY)),
        "the last webhook",
        |v| v["rich"]["note"] == last.as_str() && v["rich"]["source"] == "push",
    )
    .await;

    // Every edit took effect: the user is known by its new extension.
    assert_eq!(
        hub.get("/api/v1/users?per_page=1").await["total"],
        USERS + SIP_USERS.len()
    );
    let edited: Vec<usize> = EDITED.iter().chain(&EDITED_SLOW).copied().collect();
    let updates: Vec<Value> = edited
        .iter()
        .map(|&i| json!({"endpoint": new_extension(i), "telephony": {"line": "in-call"}}))
        .collect();
    let (s, b) = push(&hub, &json!({ "updates": updates })).await;
    assert_eq!(s, 202, "{b}");
    for &i in &edited {
        let v = hub
            .wait_for(
                &format!("/api/v1/presence/{}", username(i)),
                "the edited extension's line",
                |v| v["telephony"]["line"] == "in-call" && v["telephony"]["source"] == "push",
            )
            .await;
        assert_eq!(v["display_name"], format!("Edited {i}"), "{v}");
    }
    let v = hub
        .get(&format!("/api/v1/users/{}", username(EDITED[0])))
        .await;
    assert_eq!(v["extension"], new_extension(EDITED[0]), "{v}");

    let slowest = pushed.iter().map(|p| p.took).max().unwrap();
    eprintln!(
        "host_work: ready in {ready:.1?}, load {load_took:.1?}, total {:.1?}; \
         {} webhooks (slowest answer {slowest:.0?}; {inside_imports} inside an import, \
         {inside_edits} inside an edit or scan), {publishes} PUBLISHes, slow store: {slow_store}; {cpu}",
        started.elapsed(),
        pushed.len()
    );
    for (op, s, took) in &ops {
        eprintln!("host_work:   {op}: {s} in {took:.0?}");
    }
}

/// One hub thread as the scheduler treated it (Linux
/// `/proc/<pid>/task/<tid>/schedstat`: time on a CPU, and time runnable but
/// waiting for one, which grows when a wait ends).
struct Starved {
    name: &'static str,
    path: Option<std::path::PathBuf>,
    first: Option<(u64, u64)>,
    last: (u64, u64),
    /// The most waiting that ended between two samples (5 ms apart).
    worst: u64,
}

impl Starved {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            path: None,
            first: None,
            last: (0, 0),
            worst: 0,
        }
    }

    fn sample(&mut self, pid: u32) {
        if self.path.is_none() {
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                return;
            };
            self.path = tasks.flatten().map(|t| t.path()).find(|t| {
                std::fs::read_to_string(t.join("comm")).is_ok_and(|c| c.trim_end() == self.name)
            });
        }
        let Some(stat) = self
            .path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p.join("schedstat")).ok())
        else {
            return;
        };
        let mut f = stat
            .split_whitespace()
            .map(|x| x.parse::<u64>().unwrap_or(0));
        let (Some(run), Some(wait)) = (f.next(), f.next()) else {
            return;
        };
        if self.first.is_some() {
            self.worst = self.worst.max(wait.saturating_sub(self.last.1));
        } else {
            self.first = Some((run, wait));
        }
        self.last = (run, wait);
    }

    fn summary(&self) -> String {
        let Some((run0, wait0)) = self.first else {
            return format!("{}: no scheduler statistics", self.name);
        };
        format!(
            "{} ran {} ms and waited {} ms for a CPU, once about {} ms at a stretch",
            self.name,
            (self.last.0 - run0) / 1_000_000,
            (self.last.1 - wait0) / 1_000_000,
            self.worst / 1_000_000
        )
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<_> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
