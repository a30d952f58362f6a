//! Hardening: the hub against a hostile LAN client, a hostile plugin and
//! racing operators (issue 17). Every test is bounded in count and time and
//! talks to 127.0.0.1 only.

use std::time::{Duration, Instant};

use hub_e2e::{Hub, TOKEN};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connect and send the start of a request head, never its end.
async fn partial_header(hub: &Hub) -> TcpStream {
    let addr = hub.base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    s
}

/// Read until the peer closes (or `limit` passes); what was read.
async fn read_to_close(s: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut buf = Vec::new();
    match tokio::time::timeout(limit, s.read_to_end(&mut buf)).await {
        Ok(_) => Some(String::from_utf8_lossy(&buf).into_owned()),
        Err(_) => None,
    }
}

/// `GET /healthz` on a fresh connection; its status, or None on no answer
/// within a second.
async fn healthz(hub: &Hub) -> Option<u16> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    client
        .get(hub.url("/healthz"))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// 420 clients that send half a request head, against a hub allowed 400
/// descriptors (144 API connections after the reserve of 256): `/healthz`
/// answers at once all along (a connection that never finished its head
/// gives way to a new one), every slow client is closed by the header
/// timeout at the latest, the log is not flooded with accept errors, and
/// plugins still get descriptors.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_headers_cannot_exhaust_descriptors() {
    let hub = Hub::start_with_nofile(
        &["plugins/http-push"],
        &[("HUB_HEADER_TIMEOUT_MS", "2000")],
        Some(400),
    );
    assert_eq!(healthz(&hub).await, Some(200));
    let mut slow = Vec::new();
    for _ in 0..420 {
        slow.push(partial_header(&hub).await);
    }
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(
            healthz(&hub).await,
            Some(200),
            "/healthz beside 420 slow clients"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    for (i, s) in slow.iter_mut().enumerate() {
        assert!(
            read_to_close(s, Duration::from_secs(4)).await.is_some(),
            "slow client {i} still held after the header timeout"
        );
    }
    let accept_errors = hub.log().matches("cannot accept").count();
    assert!(accept_errors <= 10, "{accept_errors} accept error lines");
    // Plugins still get descriptors: an instance starts and runs.
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id":"cti","plugin":"http-push","config":{"shared_secret":"0123456789abcdef0123"}})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    hub.wait_for("/api/v1/connectors/cti/status", "running", |v| {
        v["status"]["status"] == "up-and-running"
    })
    .await;
}

/// When every connection slot is held by a client that did send its
/// request (live feeds here), one more is told why, in JSON, at once.
#[tokio::test]
async fn over_the_cap_is_refused_in_json() {
    let hub = Hub::start(&[], &[("HUB_MAX_CONNECTIONS", "3")]);
    let mut feeds = Vec::new();
    for _ in 0..3 {
        let r = hub
            .http
            .get(hub.url("/api/v1/feed/sse"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        feeds.push(r);
    }
    let mut s = partial_header(&hub).await;
    let text = read_to_close(&mut s, Duration::from_secs(3))
        .await
        .expect("refused at once");
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("HUB_MAX_CONNECTIONS"), "{text}");
    drop(feeds);
}

/// A body that trickles in is cut off at the body timeout, however steady
/// the trickle; a connection whose client stops reading is closed at the
/// idle timeout.
#[tokio::test]
async fn slow_bodies_are_cut_off() {
    let hub = Hub::start(&[], &[("HUB_BODY_TIMEOUT_MS", "1500")]);
    let addr = hub.base.trim_start_matches("http://").to_string();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    // One byte every 300 ms: never idle, never complete.
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "a trickling body was never cut off"
        );
        if s.write_all(b" ").await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(_) => {}
        }
    }
    assert!(started.elapsed() >= Duration::from_millis(1400));
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "answer: {text}");
}

/// Checks that a value is an error in the one shape every error has.
#[allow(dead_code)]
fn is_error_shape(v: &Value) -> bool {
    v["error"].is_string()
}

/// A request on a raw connection; the status and the body as JSON (Null
/// when it is not JSON).
async fn raw(hub: &Hub, request: String) -> (u16, Value, String) {
    let addr = hub.base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let text = read_to_close(&mut s, Duration::from_secs(10))
        .await
        .expect("an answer");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (
        status,
        serde_json::from_str(body).unwrap_or(Value::Null),
        head.to_string(),
    )
}

fn assert_error_shape(what: &str, status: u16, want: u16, v: &Value, head: &str) {
    assert_eq!(status, want, "{what}: {head}\n{v}");
    assert!(
        v["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{what}: not an error in the API's shape: {v}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{what}: {head}"
    );
}

/// Errors made by the framework before a handler runs leave in the API's
/// one shape, with the right status: unknown method, body over the limit
/// (plain and multipart), request target too long, a path that is not
/// UTF-8, an upload that is not multipart, a JSON route sent another type,
/// a page number that would overflow.
#[tokio::test]
async fn every_error_is_json_in_one_shape() {
    let hub = Hub::start(&[], &[("HUB_MAX_UPLOAD_BYTES", "1000000")]);
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    let get =
        |path: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n");

    let (s, v, h) = raw(
        &hub,
        format!("DELETE /api/v1/users HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"),
    )
    .await;
    assert_error_shape("405", s, 405, &v, &h);
    assert!(h.to_ascii_lowercase().contains("allow:"), "{h}");

    let big = format!(
        "{{\"username\":\"a\",\"display_name\":\"{}\"}}",
        "x".repeat(3 << 20)
    );
    let (s, v, h) = raw(&hub, format!("POST /api/v1/users HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{big}", big.len())).await;
    assert_error_shape("413 (body limit)", s, 413, &v, &h);

    let (s, v, h) = raw(&hub, get(&format!("/api/v1/users?q={}", "a".repeat(9000)))).await;
    assert_error_shape("414", s, 414, &v, &h);

    let (s, v, h) = raw(&hub, get("/api/v1/users/%FF%FE")).await;
    assert_error_shape("invalid UTF-8 path", s, 400, &v, &h);

    let (s, v, h) = raw(&hub, format!("POST /api/v1/plugins HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}")).await;
    assert!(s == 400 || s == 415, "non-multipart upload: {s}");
    assert_error_shape("non-multipart upload", s, s, &v, &h);

    // Multipart over the upload limit: 413, not "error parsing multipart".
    let form = reqwest::multipart::Form::new()
        .text("manifest", "id = \"x\"")
        .part(
            "component",
            reqwest::multipart::Part::bytes(vec![0u8; 2_000_000]),
        );
    let r = hub
        .http
        .post(hub.url("/api/v1/plugins"))
        .bearer_auth(TOKEN)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("max_upload_bytes"),
        "{v}"
    );

    let body = r#"{"username":"bob"}"#;
    let (s, v, h) = raw(&hub, format!("POST /api/v1/users HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())).await;
    assert_error_shape("JSON route, form body", s, 415, &v, &h);
    assert_eq!(v["field"], "Content-Type", "{v}");

    for q in ["page=18446744073709551615", "page=1000001&per_page=1000"] {
        let (s, v) = hub.call("GET", &format!("/api/v1/users?{q}"), None).await;
        assert_eq!(s, 400, "{q}: {v}");
        assert_eq!(v["field"], "page", "{v}");
        let (s, v) = hub
            .call("GET", &format!("/api/v1/presence?{q}"), None)
            .await;
        assert_eq!(s, 400, "{q}: {v}");
    }
    assert_eq!(healthz(&hub).await, Some(200), "still serving");
}

/// A manifest error names the key at fault under `manifest.`; usernames
/// have one canonical form and what is not in it is refused; every free
/// text field has a maximum.
#[tokio::test]
async fn input_is_named_and_bounded() {
    let hub = Hub::start(&[], &[]);
    let chaos = hub_e2e::dist("test-plugins/chaos");
    let manifest = std::fs::read_to_string(chaos.join("plugin.toml")).unwrap();
    let component = std::fs::read(chaos.join("chaos.wasm")).unwrap();
    let (s, v) = hub
        .upload_raw(
            manifest.replace("id = \"chaos\"", "id = 5"),
            component.clone(),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["field"], "manifest.id", "{v}");
    let (s, v) = hub
        .upload_raw(
            manifest.replace(
                "component = \"chaos.wasm\"",
                "component = \"chaos.wasm\"\ncomponnet = 1",
            ),
            component,
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["field"], "manifest.componnet", "{v}");

    for bad in [".", "..", "Alice", "\u{430}lice", "-x"] {
        let (s, v) = hub
            .call("POST", "/api/v1/users", Some(json!({"username": bad})))
            .await;
        assert_eq!(s, 422, "{bad:?}: {v}");
        assert_eq!(v["field"], "username", "{v}");
    }
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/users",
            Some(json!({"username": "carol", "department": "d".repeat(100_000)})),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["field"], "department", "{v}");
}

/// A quarantined instance is never shown `up-and-running`, whatever it
/// said before it went down.
#[tokio::test]
async fn quarantined_is_not_up() {
    let hub = Hub::start(
        &["test-plugins/chaos"],
        &[
            ("HUB_QUARANTINE_AFTER", "2"),
            ("HUB_RESTART_BACKOFF_MAX_MS", "200"),
        ],
    );
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": "p", "plugin": "chaos", "config": {"label": "p"}})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    hub.wait_for("/api/v1/connectors/p/status", "up", |v| {
        v["status"]["status"] == "up-and-running"
    })
    .await;
    let (s, v) = hub
        .call(
            "PUT",
            "/api/v1/connectors/p/watches",
            Some(json!({"endpoints": ["panic"]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let v = hub
        .wait_for("/api/v1/connectors/p/status", "quarantine", |v| {
            v["status"]["run_state"] == "quarantined"
        })
        .await;
    assert_ne!(v["status"]["status"], "up-and-running", "{v}");
    let list = hub.get("/api/v1/connectors").await;
    assert!(!list.to_string().contains("up-and-running"), "{list}");
}

/// Tokens: a token in the query string is taken by the feed routes only;
/// admin answers are never cached; a revoked token's open feed streams end;
/// `/metrics` wants a token when HUB_METRICS_AUTH says so; webhooks answer
/// alike for unknown and disabled instances; the query token is not logged.
#[tokio::test]
async fn tokens_stay_where_they_belong() {
    let hub = Hub::start(&["plugins/http-push"], &[("HUB_METRICS_AUTH", "true")]);
    let plain = reqwest::Client::new();
    let r = plain
        .get(hub.url(&format!("/api/v1/users?access_token={TOKEN}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "query token off the feed routes");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["field"], "access_token", "{v}");

    let r = plain
        .post(hub.url("/api/v1/tokens"))
        .bearer_auth(TOKEN)
        .json(&json!({"name": "wall", "role": "console"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let t: Value = r.json().await.unwrap();
    let console = t["token"].as_str().unwrap().to_string();

    // The console token follows the feed by query string (as a browser's
    // EventSource would), then is revoked: the stream ends.
    let mut sse = plain
        .get(hub.url(&format!("/api/v1/feed/sse?access_token={console}")))
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status().as_u16(), 200);
    let first = tokio::time::timeout(Duration::from_secs(5), sse.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains("snapshot"));
    let (s, _) = hub
        .call(
            "DELETE",
            &format!("/api/v1/tokens/{}", t["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        let mut text = String::new();
        while let Ok(Some(c)) = sse.chunk().await {
            text.push_str(&String::from_utf8_lossy(&c));
        }
        text
    })
    .await
    .expect("a revoked token's stream ends");
    assert!(ended.contains("revoked"), "{ended}");
    assert!(!hub.log().contains(&console), "the query token was logged");

    let r = plain.get(hub.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = plain
        .get(hub.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id":"off","plugin":"http-push","enabled":false,"config":{"shared_secret":"0123456789abcdef0123"}})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let mut answers = Vec::new();
    for id in ["off", "nosuch"] {
        let r = plain
            .post(hub.url(&format!("/hooks/{id}/presence")))
            .body("{}")
            .send()
            .await
            .unwrap();
        answers.push((r.status().as_u16(), r.text().await.unwrap()));
    }
    assert_eq!(answers[0], answers[1], "unknown and disabled answer alike");
    assert!(!answers[1].1.contains("nosuch"), "{answers:?}");
}

/// Changing where a connector sends its secret (a server address or URL
/// field) needs the secret again; without it, 422 names the secret field.
#[tokio::test]
async fn a_secret_does_not_follow_a_new_address() {
    let hub = Hub::start(&["plugins/sip-simple"], &[]);
    let config =
        json!({"server": "127.0.0.1:5999", "uri": "hub@127.0.0.1", "password": "pw-0123456789"});
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": "pbx", "plugin": "sip-simple", "config": config})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let moved = json!({"config": {"server": "127.0.0.2:5999", "uri": "hub@127.0.0.1"}});
    let (s, v) = hub
        .call("PATCH", "/api/v1/connectors/pbx", Some(moved))
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["field"], "config.password", "{v}");
    let again = json!({"config": {"server": "127.0.0.2:5999", "uri": "hub@127.0.0.1", "password": "pw-0123456789"}});
    let (s, v) = hub
        .call("PATCH", "/api/v1/connectors/pbx", Some(again))
        .await;
    assert_eq!(s, 200, "{v}");
    // Another field changing keeps the stored secret.
    let same = json!({"config": {"server": "127.0.0.2:5999", "uri": "hub2@127.0.0.1"}});
    let (s, v) = hub
        .call("PATCH", "/api/v1/connectors/pbx", Some(same))
        .await;
    assert_eq!(s, 200, "{v}");
}

/// Operators racing: DELETE against PUT and notes against DELETE on 300
/// users, with clients that give up at random moments (hyper then drops
/// the request). What the hub shows afterwards is what it has on disk: the
/// same after a kill -9 and restart, and a user created again under a
/// deleted name has no notes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_operators_leave_one_truth() {
    let mut hub = Hub::start(&[], &[]);
    const N: usize = 300;
    // Rounds make a cut between a write's database change and the
    // service's update likely to be hit at least once without the fix
    // (one round alone hit it about every other run).
    for round in 0..4usize {
        let mut creates = Vec::new();
        for i in 0..N {
            let base = hub.base.clone();
            creates.push(tokio::spawn(async move {
                reqwest::Client::new()
                    .post(format!("{base}/api/v1/users"))
                    .bearer_auth(TOKEN)
                    .json(&json!({"username": format!("u{i}")}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            }));
        }
        for c in creates {
            let s = c.await.unwrap().unwrap();
            assert!(s == 201 || s == 409, "create: {s}");
        }
        let mut tasks = Vec::new();
        for i in 0..N {
            let base = hub.base.clone();
            tasks.push(tokio::spawn(async move {
                // Each client gives up after 0-30 ms: some requests are
                // cut before their handler, some inside it.
                let client = |ms: usize| {
                    reqwest::Client::builder()
                        .timeout(Duration::from_millis((ms % 31) as u64))
                        .build()
                        .unwrap()
                };
                let k = i + round * 7;
                let name = format!("u{i}");
                let del = client(k)
                    .delete(format!("{base}/api/v1/users/{name}"))
                    .bearer_auth(TOKEN)
                    .send();
                let put = client(k * 7)
                    .put(format!("{base}/api/v1/users/{name}"))
                    .bearer_auth(TOKEN)
                    .json(&json!({"username": name, "display_name": "again"}))
                    .send();
                let note = client(k * 5)
                    .post(format!("{base}/api/v1/users/{name}/notes"))
                    .bearer_auth(TOKEN)
                    .json(&json!({"text": "racing"}))
                    .send();
                let _ = tokio::join!(del, put, note);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
    // Let every started write finish.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let state = |hub: &Hub| {
        let hub_base = hub.base.clone();
        async move {
            let c = reqwest::Client::new();
            let mut out = Vec::new();
            for i in 0..N {
                let name = format!("u{i}");
                let r = c
                    .get(format!("{hub_base}/api/v1/users/{name}/notes"))
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let v: Value = r.json().await.unwrap_or(Value::Null);
                let notes = v["notes"].as_array().map_or(0, Vec::len);
                out.push((status, notes));
            }
            out
        }
    };
    let before = state(&hub).await;
    let deleted = before.iter().filter(|(s, _)| *s == 404).count();
    hub.restart();
    let after = state(&hub).await;
    let differ: Vec<_> = (0..N).filter(|&i| before[i] != after[i]).collect();
    assert!(
        differ.is_empty(),
        "{} of {N} users differ after a restart (e.g. u{}: {:?} then {:?}); {deleted} were deleted",
        differ.len(),
        differ[0],
        before[differ[0]],
        after[differ[0]]
    );
    // A new user under a deleted name starts without notes.
    for (i, (s, _)) in after.iter().enumerate() {
        if *s == 404 {
            let (s, v) = hub
                .call(
                    "POST",
                    "/api/v1/users",
                    Some(json!({"username": format!("u{i}")})),
                )
                .await;
            assert_eq!(s, 201, "{v}");
            let v = hub.get(&format!("/api/v1/users/u{i}/notes")).await;
            assert_eq!(v["notes"], json!([]), "u{i} inherited notes");
        }
    }
}

/// Feed streams are capped per token and in all, and a WebSocket client
/// cannot send big messages.
#[tokio::test]
async fn feeds_are_bounded() {
    let hub = Hub::start(&[], &[("HUB_MAX_FEEDS_PER_TOKEN", "3")]);
    let mut open = Vec::new();
    for _ in 0..3 {
        let r = hub
            .http
            .get(hub.url("/api/v1/feed/sse"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        open.push(r);
    }
    let r = hub
        .http
        .get(hub.url("/api/v1/feed/sse"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("HUB_MAX_FEEDS_PER_TOKEN"),
        "{v}"
    );
    drop(open);
    // The slots come back when the streams close.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = hub
            .http
            .get(hub.url("/api/v1/feed/sse"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        if r.status().as_u16() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "slots never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let ws_url = format!(
        "{}/api/v1/feed/ws?access_token={TOKEN}",
        hub.base.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let _snapshot = ws.next().await;
    let big = "x".repeat(1 << 20);
    let _ = ws.send(Message::Text(big.into())).await;
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "a 1 MiB message from a console was taken");
}

/// A component refused after it was compiled (its contract version does not
/// fit) leaves no compiled file in the cache, and the cache holds only what
/// loaded plugins use.
#[tokio::test]
async fn refused_uploads_leave_no_compiled_files() {
    let hub = Hub::start(&["test-plugins/chaos"], &[]);
    let cache = hub.dir.path().join("data/cache");
    let files = || {
        let mut v: Vec<String> = std::fs::read_dir(&cache)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let before = files();
    assert_eq!(before.len(), 1, "{before:?}");
    // Its manifest claims the contract it lacks: refused after compiling.
    let wrong = hub_e2e::dist("test-plugins/chaos-wrong-api");
    let mut manifest = String::new();
    let mut component = Vec::new();
    for e in std::fs::read_dir(&wrong).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "wasm") {
            component = std::fs::read(&p).unwrap();
        } else if p.file_name().is_some_and(|n| n == "plugin.toml") {
            manifest = std::fs::read_to_string(&p)
                .unwrap()
                .replace("api-version = \"0.9.0\"", "api-version = \"0.2.0\"");
        }
    }
    let (s, v) = hub.upload_raw(manifest, component).await;
    assert_eq!(s, 422, "{v}");
    assert!(v["error"].as_str().unwrap().contains("0.9.0"), "{v}");
    assert_eq!(files(), before, "a refused component left a compiled file");
    // A stale entry (another build, a crash mid-write) is pruned at start.
    std::fs::write(cache.join("0000-stale.cwasm"), b"x").unwrap();
    let mut hub = hub;
    hub.restart();
    assert_eq!(files(), before);
}

/// A connection on which no byte moves for the idle time is closed, even
/// in the middle of an answer (here a live feed with nothing to say, under
/// an idle time shorter than the feed's keep-alive).
#[tokio::test]
async fn idle_connections_are_closed() {
    let hub = Hub::start(&[], &[("HUB_IDLE_TIMEOUT_MS", "1500")]);
    let addr = hub.base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!(
            "GET /api/v1/feed/sse HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let started = Instant::now();
    let text = read_to_close(&mut s, Duration::from_secs(8))
        .await
        .expect("an idle connection is closed");
    assert!(text.contains("snapshot"), "{text}");
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(1400) && after < Duration::from_secs(5),
        "closed after {after:?}"
    );
}
