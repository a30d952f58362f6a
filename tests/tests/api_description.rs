//! The API description end to end: the hub's served OpenAPI document
//! (generated from its code) is valid OpenAPI 3.1, and every route's real
//! requests and answers, success and error, conform to it (checked by
//! openapi-core through `Hub::check_api`); the live feed's messages conform
//! to its `FeedMessage` schema. And the feed's states: each carries when it
//! began (kept across a kill -9), `reasons` say why, error states name
//! their source.

use std::collections::BTreeSet;
use std::time::Duration;

use hub_e2e::{Hub, TOKEN, dist, sign, unix_now};
use serde_json::{Value, json};

const SECRET: &str = "a-shared-secret-of-32-bytes-long";
const AUTH: (&str, &str) = ("authorization", "Bearer test-admin-token-0123456789");

/// A signed http-push webhook, through the checked client; 202 when the
/// plugin took it.
async fn push(hub: &Hub, instance: &str, body: &Value) -> u16 {
    let body = serde_json::to_vec(body).unwrap();
    let ts = unix_now();
    let sig = sign(SECRET, ts, &body);
    let (s, _, _) = hub
        .send(
            "POST",
            &format!("/hooks/{instance}/presence"),
            &[
                ("x-hub-timestamp", &ts.to_string()),
                ("x-hub-signature", &sig),
            ],
            Some("application/json"),
            body,
        )
        .await;
    s
}

/// The next SSE messages' `data`, until `f` holds for one.
async fn sse_until(
    resp: &mut reqwest::Response,
    buf: &mut String,
    seen: &mut Vec<Value>,
    what: &str,
    f: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let data: String = block
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            if data.is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(&data).unwrap();
            let event = block
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or_default();
            assert_eq!(
                event, v["type"],
                "the SSE event is named by the message's type"
            );
            seen.push(v.clone());
            if f(&v) {
                return v;
            }
        }
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("no feed message with {what} within 20 s"))
            .unwrap()
            .expect("the feed stays open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}

fn assert_message(hub: &Hub, m: &Value) {
    let v = hub
        .api_checker()
        .unwrap()
        .check_message("FeedMessage", m.to_string().as_bytes());
    assert!(v.ok, "feed message not as described: {:?}\n{m:#}", v.errors);
}

#[tokio::test]
async fn the_checker_refuses_what_the_description_does_not_allow() {
    // The check bites: an answer of the wrong shape, an undocumented
    // status, an accepted request the description refuses, an undocumented
    // route, a feed message of no known kind.
    let mut hub = Hub::start(&[], &[]);
    hub.check_api().await;
    let c = hub.api_checker().unwrap();
    let x = |method: &str, path: &str, status: u16, body: &str| hub_e2e::openapi::Exchange {
        method: method.into(),
        path: path.into(),
        headers: vec![(AUTH.0.into(), AUTH.1.into())],
        status,
        response_content_type: Some("application/json".into()),
        response_body: body.as_bytes().to_vec(),
        ..Default::default()
    };
    assert!(c.check(&x("GET", "/healthz", 200, r#"{"status":"ok"}"#)).ok);
    assert!(!c.check(&x("GET", "/healthz", 200, r#"{"status":5}"#)).ok);
    assert!(
        !c.check(&x("GET", "/healthz", 418, r#"{"error":"teapot"}"#))
            .ok
    );
    let page = r#"{"seq":1,"total":0,"page":1,"per_page":50,"users":[]}"#;
    assert!(c.check(&x("GET", "/api/v1/presence", 200, page)).ok);
    let mut bad_query = x("GET", "/api/v1/presence", 200, page);
    bad_query.query = "page=first".into();
    assert!(!c.check(&bad_query).ok);
    assert!(
        !c.check(&x("GET", "/api/v1/presence", 200, r#"{"users":[]}"#))
            .ok,
        "missing fields"
    );
    assert!(
        !c.check(&x("GET", "/api/v1/nothing", 404, r#"{"error":"x"}"#))
            .ok
    );
    assert!(!c.check_message("FeedMessage", br#"{"type":"resync"}"#).ok);
    assert!(
        c.check_message(
            "FeedMessage",
            br#"{"type":"resync","reason":"client too slow"}"#
        )
        .ok
    );
}

#[tokio::test]
async fn every_route_answers_as_the_served_description_says() {
    let mut hub = Hub::start(&["plugins/http-push"], &[("HUB_MAX_FEEDS_PER_TOKEN", "2")]);
    hub.check_api().await;

    // The document is valid OpenAPI 3.1 by an independent validator, and
    // describes every route the hub serves (the unit test compares it with
    // the router's list).
    let spec = hub.dir.path().join("openapi.json");
    let validator = hub_e2e::root().join("target/openapi-venv/bin/openapi-spec-validator");
    let out = std::process::Command::new(&validator)
        .arg(&spec)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run `bash .ci/install-test-deps.sh`",
                validator.display()
            )
        });
    assert!(
        out.status.success(),
        "the served description is not valid OpenAPI: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&std::fs::read(&spec).unwrap()).unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    for state in [
        "busy",
        "forwarded-to-voicemail",
        "access-denied",
        "not-requested",
    ] {
        assert!(
            doc["components"]["schemas"]["ChannelState"]["enum"]
                .as_array()
                .unwrap()
                .contains(&json!(state)),
            "{state}"
        );
    }

    // ---- health --------------------------------------------------------
    assert_eq!(hub.call("GET", "/healthz", None).await.0, 200);
    assert_eq!(hub.call("GET", "/readyz", None).await.0, 200);
    assert_eq!(hub.call("GET", "/metrics", None).await.0, 200);
    let (s, served) = hub.call("GET", "/api/v1/openapi.json", None).await;
    assert_eq!((s, &served["openapi"]), (200, &doc["openapi"]));

    // ---- auth errors (401, 403), 404, 405, 414, 415 ---------------------
    let (s, _, _) = hub.send("GET", "/api/v1/users", &[], None, vec![]).await;
    assert_eq!(s, 401);
    let (s, tok) = hub
        .call(
            "POST",
            "/api/v1/tokens",
            Some(json!({"name": "wall board", "role": "console"})),
        )
        .await;
    assert_eq!(s, 201, "{tok}");
    let console = format!("Bearer {}", tok["token"].as_str().unwrap());
    let (s, _, _) = hub
        .send(
            "GET",
            "/api/v1/users",
            &[("authorization", &console)],
            None,
            vec![],
        )
        .await;
    assert_eq!(s, 403);
    let long = format!("/api/v1/users?q={}", "a".repeat(9000));
    let (s, _, _) = hub.send("GET", &long, &[AUTH], None, vec![]).await;
    assert_eq!(s, 414);
    let (s, _, _) = hub
        .send(
            "POST",
            "/api/v1/users",
            &[AUTH],
            Some("text/plain"),
            b"username=x".to_vec(),
        )
        .await;
    assert_eq!(s, 415);

    // ---- plugins --------------------------------------------------------
    let (s, v) = hub.call("GET", "/api/v1/plugins", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        hub.call("GET", "/api/v1/plugins/http-push", None).await.0,
        200
    );
    assert_eq!(
        hub.call("GET", "/api/v1/plugins/nothing", None).await.0,
        404
    );
    let (s, v) = hub.upload(&dist("test-plugins/chaos")).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = hub.call("POST", "/api/v1/plugins/chaos/reload", None).await;
    assert_eq!(s, 200, "{v}");

    // ---- connectors -----------------------------------------------------
    let cti = json!({"id": "cti", "plugin": "http-push", "config": {"shared_secret": SECRET}});
    let (s, v) = hub
        .call("POST", "/api/v1/connectors", Some(cti.clone()))
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        hub.call("POST", "/api/v1/connectors", Some(cti)).await.0,
        409
    );
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": "bad", "plugin": "http-push", "config": {"shared_secret": 5}})),
        )
        .await;
    assert!(matches!(s, 400 | 422), "{s} {v}");
    let (s, _, _) = hub
        .send(
            "POST",
            "/api/v1/connectors",
            &[AUTH],
            Some("application/json"),
            b"{".to_vec(),
        )
        .await;
    assert_eq!(s, 400);
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(
                json!({"id": "c1", "plugin": "chaos", "config": {"label": "c1"}, "watches": ["w"]}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    hub.wait_for("/api/v1/connectors/cti/status", "cti up", |v| {
        v["status"]["status"] == "up-and-running"
    })
    .await;
    assert_eq!(hub.call("GET", "/api/v1/connectors", None).await.0, 200);
    assert_eq!(hub.call("GET", "/api/v1/connectors/cti", None).await.0, 200);
    assert_eq!(
        hub.call("GET", "/api/v1/connectors/nothing", None).await.0,
        404
    );
    let (s, v) = hub
        .call(
            "PATCH",
            "/api/v1/connectors/cti",
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = hub
        .call(
            "PUT",
            "/api/v1/connectors/cti",
            Some(json!({"config": {"shared_secret": SECRET}, "enabled": true})),
        )
        .await;
    assert!(matches!(s, 200 | 405), "{s} {v}");
    assert_eq!(
        hub.call("POST", "/api/v1/connectors/c1/disable", None)
            .await
            .0,
        200
    );
    assert_eq!(
        hub.call("POST", "/api/v1/connectors/c1/enable", None)
            .await
            .0,
        200
    );
    assert_eq!(
        hub.call("GET", "/api/v1/connectors/cti/status", None)
            .await
            .0,
        200
    );
    let (s, v) = hub
        .call(
            "PUT",
            "/api/v1/connectors/c1/watches",
            Some(json!({"endpoints": ["w"]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let v = hub
        .wait_for_call(
            "POST",
            "/api/v1/connectors/c1/endpoints/w/presence",
            json!({"action": "set", "availability": "do-not-disturb"}),
            202,
        )
        .await;
    let write = v["id"].as_u64().unwrap();
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors/c1/endpoints/w/presence",
            Some(json!({"action": "set", "availability": "do-not-disturb", "expires_in_ms": 0})),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(
        hub.call("GET", &format!("/api/v1/writes/{write}"), None)
            .await
            .0,
        200
    );
    assert_eq!(hub.call("GET", "/api/v1/writes/first", None).await.0, 400);
    assert_eq!(
        hub.call("GET", "/api/v1/connectors/c1/writes", None)
            .await
            .0,
        200
    );
    hub.wait_for(
        "/api/v1/connectors/c1/endpoints",
        "write-back echoed",
        |v| v["endpoints"]["w"]["rich"]["availability"] == "do-not-disturb",
    )
    .await;

    // ---- users ----------------------------------------------------------
    let alice = json!({"username": "alice", "display_name": "Alice", "extension": "1001"});
    let (s, v) = hub.call("POST", "/api/v1/users", Some(alice.clone())).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        hub.call("POST", "/api/v1/users", Some(alice.clone()))
            .await
            .0,
        409
    );
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/users",
            Some(json!({"username": "Not Valid"})),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(
        hub.call("GET", "/api/v1/users?q=ali&per_page=10", None)
            .await
            .0,
        200
    );
    assert_eq!(
        hub.call("GET", "/api/v1/users?per_page=0", None).await.0,
        400
    );
    assert_eq!(hub.call("GET", "/api/v1/users/alice", None).await.0, 200);
    assert_eq!(hub.call("GET", "/api/v1/users/nobody", None).await.0, 404);
    let (s, v) = hub
        .call(
            "PUT",
            "/api/v1/users/alice",
            Some(json!({"username": "alice", "display_name": "Alice Adams", "extension": "1001"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let csv = b"username,display_name,extension\nbob,Bob,1002\n".to_vec();
    let (s, _, body) = hub
        .send(
            "POST",
            "/api/v1/users/import",
            &[AUTH],
            Some("text/csv"),
            csv,
        )
        .await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    let (s, _, _) = hub
        .send(
            "POST",
            "/api/v1/users/import",
            &[AUTH],
            Some("application/json"),
            br#"[{"username":"Carol!"}]"#.to_vec(),
        )
        .await;
    assert_eq!(s, 422);
    let (s, _, _) = hub
        .send(
            "POST",
            "/api/v1/users/import",
            &[AUTH],
            Some("text/plain"),
            b"x".to_vec(),
        )
        .await;
    assert_eq!(s, 415);
    let (s, note) = hub
        .call(
            "POST",
            "/api/v1/users/alice/notes",
            Some(json!({"text": "back at 3"})),
        )
        .await;
    assert_eq!(s, 201, "{note}");
    assert_eq!(
        hub.call("GET", "/api/v1/users/alice/notes", None).await.0,
        200
    );
    let (s, _) = hub
        .call(
            "DELETE",
            &format!("/api/v1/users/alice/notes/{}", note["id"]),
            None,
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(
        hub.call("POST", "/api/v1/users/alice/subscribe", None)
            .await
            .0,
        200
    );

    // ---- presence and the feed -------------------------------------------
    let mut sse = hub
        .http
        .get(hub.url("/api/v1/feed/sse?users=alice"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status().as_u16(), 200);
    let (mut buf, mut seen) = (String::new(), Vec::new());
    sse_until(&mut sse, &mut buf, &mut seen, "the snapshot", |v| {
        v["type"] == "snapshot"
    })
    .await;
    assert_eq!(
        push(
            &hub,
            "cti",
            &json!({"endpoint": "1001", "telephony": {"line": "in-call"}})
        )
        .await,
        202
    );
    let change = sse_until(&mut sse, &mut buf, &mut seen, "alice in a call", |v| {
        v["type"] == "presence" && v["telephony"]["line"] == "in-call"
    })
    .await;
    assert!(
        change["telephony"]["since_ms"].as_u64().is_some(),
        "{change}"
    );
    // A third stream for this token is over its cap (2): 429.
    let (ws, _) = tokio_tungstenite::connect_async(
        hub.url("/api/v1/feed/ws?users=alice&access_token=test-admin-token-0123456789")
            .replacen("http", "ws", 1),
    )
    .await
    .unwrap();
    let (s, _, _) = hub
        .send("GET", "/api/v1/feed/sse", &[AUTH], None, vec![])
        .await;
    assert_eq!(s, 429);
    let (s, _, _) = hub
        .send(
            "GET",
            "/api/v1/feed/sse?since=yesterday",
            &[AUTH],
            None,
            vec![],
        )
        .await;
    assert_eq!(s, 400);
    {
        use futures::StreamExt;
        let mut ws = ws;
        let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let m: Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
        assert_eq!(m["type"], "snapshot");
        seen.push(m);
    }
    for m in &seen {
        assert_message(&hub, m);
    }
    let (s, v) = hub
        .call("GET", "/api/v1/presence?telephony=busy", None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["users"][0]["username"], "alice", "{v}");
    assert_eq!(
        hub.call("GET", "/api/v1/presence?page=0", None).await.0,
        400
    );
    assert_eq!(hub.call("GET", "/api/v1/presence/alice", None).await.0, 200);
    assert_eq!(
        hub.call("GET", "/api/v1/presence/nobody", None).await.0,
        404
    );

    // ---- settings, events, tokens ----------------------------------------
    let (s, rules) = hub.call("GET", "/api/v1/settings/rules", None).await;
    assert_eq!(s, 200);
    assert_eq!(
        hub.call("PUT", "/api/v1/settings/rules", Some(rules))
            .await
            .0,
        200
    );
    let (s, v) = hub
        .call(
            "PUT",
            "/api/v1/settings/rules",
            Some(json!({"event_retention_days": 0})),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(hub.call("GET", "/api/v1/sync/profiles", None).await.0, 200);
    assert_eq!(
        hub.call("GET", "/api/v1/events?user=alice&limit=20", None)
            .await
            .0,
        200
    );
    assert_eq!(hub.call("GET", "/api/v1/events?limit=0", None).await.0, 400);
    assert_eq!(hub.call("GET", "/api/v1/tokens", None).await.0, 200);
    let (s, _) = hub
        .call(
            "DELETE",
            &format!("/api/v1/tokens/{}", tok["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(
        hub.call("DELETE", "/api/v1/tokens/nothing", None).await.0,
        404
    );

    // ---- backup ------------------------------------------------------------
    let (s, h, tar) = hub
        .send(
            "POST",
            "/api/v1/backup?secret_key=exclude",
            &[AUTH],
            None,
            vec![],
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(h["content-type"], "application/x-tar");
    assert!(tar.len() > 1024, "{} bytes", tar.len());
    let (s, _, _) = hub
        .send(
            "POST",
            "/api/v1/backup?secret_key=maybe",
            &[AUTH],
            None,
            vec![],
        )
        .await;
    assert_eq!(s, 400);

    // ---- directory sync (LDAP); the sync itself: tests/tests/ldap_sync.rs --
    assert_eq!(hub.call("GET", "/api/v1/directory/ldap", None).await.0, 404);
    let (s, e) = hub
        .call(
            "PUT",
            "/api/v1/directory/ldap",
            Some(json!({"url": "http://x", "base_dn": "dc=example,dc=com"})),
        )
        .await;
    assert_eq!((s, e["field"].as_str()), (422, Some("url")), "{e}");
    // A closed port: the sync answers 502 naming the directory's URL.
    let (s, v) = hub
        .call(
            "PUT",
            "/api/v1/directory/ldap",
            Some(
                json!({"url": "ldap://127.0.0.1:1", "bind_dn": "cn=admin,dc=example,dc=com",
                "bind_password": "pw", "base_dn": "dc=example,dc=com"}),
            ),
        )
        .await;
    assert_eq!((s, &v["bind_password_set"]), (200, &json!(true)), "{v}");
    assert!(v.get("bind_password").is_none());
    assert_eq!(hub.call("GET", "/api/v1/directory/ldap", None).await.0, 200);
    let (s, e) = hub
        .call("POST", "/api/v1/directory/ldap/sync?dry_run=true", None)
        .await;
    assert_eq!(s, 502, "{e}");
    let (s, st) = hub.call("GET", "/api/v1/directory/ldap/status", None).await;
    assert_eq!((s, &st["last"]["ok"]), (200, &json!(false)), "{st}");

    // ---- directory sync from a connector's own directory; the sync itself:
    // tests/tests/directory_connectors.rs --------------------------------
    let (s, v) = hub.call("GET", "/api/v1/directory/connectors", None).await;
    assert_eq!((s, v), (200, json!([])));
    let (s, _) = hub
        .call(
            "PUT",
            "/api/v1/directory/connectors/nothing",
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 404);
    let (s, e) = hub
        .call(
            "PUT",
            "/api/v1/directory/connectors/c1",
            Some(json!({"interval_seconds": 1})),
        )
        .await;
    assert_eq!(
        (s, e["field"].as_str()),
        (422, Some("interval_seconds")),
        "{e}"
    );
    let (s, v) = hub
        .call(
            "PUT",
            "/api/v1/directory/connectors/c1",
            Some(json!({"remove": "delete"})),
        )
        .await;
    assert_eq!((s, &v["username"]), (200, &json!("local-part")), "{v}");
    let got = hub.get("/api/v1/directory/connectors/c1").await;
    assert_eq!(got["remove"], "delete", "{got}");
    // The chaos plugin reports no directory: nothing to sync from.
    let (s, e) = hub
        .call(
            "POST",
            "/api/v1/directory/connectors/c1/sync?dry_run=true",
            None,
        )
        .await;
    assert_eq!(s, 409, "{e}");
    let st = hub.get("/api/v1/directory/connectors/c1/status").await;
    assert_eq!(
        (&st["configured"], &st["last"]["ok"]),
        (&json!(true), &json!(false)),
        "{st}"
    );
    assert_eq!(
        hub.call("DELETE", "/api/v1/directory/connectors/c1", None)
            .await
            .0,
        204
    );
    assert_eq!(
        hub.call("GET", "/api/v1/directory/connectors/c1", None)
            .await
            .0,
        404
    );

    // ---- webhooks: unknown instance, and the deletes ---------------------
    assert_eq!(push(&hub, "nothing", &json!({"endpoint": "1"})).await, 404);
    // A webhook to an instance's root path.
    let (s, _, _) = hub
        .send(
            "POST",
            "/hooks/nothing",
            &[],
            Some("application/json"),
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(s, 404);
    assert_eq!(hub.call("DELETE", "/api/v1/users/bob", None).await.0, 204);
    assert_eq!(
        hub.call("DELETE", "/api/v1/plugins/chaos", None).await.0,
        409
    );
    assert_eq!(
        hub.call("DELETE", "/api/v1/connectors/c1", None).await.0,
        204
    );
    assert_eq!(
        hub.call("DELETE", "/api/v1/plugins/chaos", None).await.0,
        204
    );

    // Every route of the description was exercised (and validated).
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    let checked: BTreeSet<String> = hub
        .api_checker()
        .unwrap()
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, op, _)| op.clone())
        .collect();
    // The live feed's streams are read outside the request/answer check
    // (their messages are checked against FeedMessage above).
    let streamed = BTreeSet::from(["GET /api/v1/feed/ws".to_string()]);
    let missing: Vec<_> = documented
        .difference(&checked)
        .filter(|r| !streamed.contains(*r))
        .collect();
    assert!(missing.is_empty(), "routes never exercised: {missing:?}");
}

#[tokio::test]
async fn states_carry_their_start_keep_it_across_a_restart_and_name_their_source() {
    let mut hub = Hub::start(&["plugins/http-push"], &[]);
    hub.check_api().await;
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": "cti", "plugin": "http-push", "config": {"shared_secret": SECRET}})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/users",
            Some(json!({"username": "alice", "extension": "1001"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    hub.wait_for("/api/v1/connectors/cti/status", "cti up", |v| {
        v["status"]["status"] == "up-and-running"
    })
    .await;
    let before = unix_now() * 1000;
    assert_eq!(
        push(
            &hub,
            "cti",
            &json!({"endpoint": "1001", "telephony": {"line": "in-call"}})
        )
        .await,
        202
    );
    let p = hub
        .wait_for("/api/v1/presence/alice", "alice in a call", |v| {
            v["telephony"]["line"] == "in-call"
        })
        .await;
    let since = p["telephony"]["since_ms"].as_u64().expect("since_ms");
    assert!(since + 1000 >= before, "{since} vs {before}");
    assert_eq!(p["since_ms"].as_u64(), Some(since), "{p}");
    assert_eq!(p["telephony"]["source"], "cti");
    assert_eq!(p["telephony"]["source_plugin"], "http-push");
    // Why: the one source with a current state, and nothing left out.
    let reasons: Vec<String> = serde_json::from_value(p["reasons"].clone()).unwrap();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("telephony: cti is the only source with a current state")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r == "rich: no source has a current state; left out: cti (1001) no state of this kind reported yet"),
        "{reasons:?}"
    );

    // The same state reported again keeps its start; a new one starts anew.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        push(
            &hub,
            "cti",
            &json!({"endpoint": "1001", "telephony": {"line": "in-call"}})
        )
        .await,
        202
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let p = hub.get("/api/v1/presence/alice").await;
    assert_eq!(p["telephony"]["since_ms"].as_u64(), Some(since), "{p}");

    // kill -9 and start again: the call, reported again, is still the
    // same call (its start is stored).
    hub.restart();
    hub.check_api().await;
    hub.wait_for("/api/v1/connectors/cti/status", "cti up again", |v| {
        v["status"]["status"] == "up-and-running"
    })
    .await;
    assert_eq!(
        push(
            &hub,
            "cti",
            &json!({"endpoint": "1001", "telephony": {"line": "in-call"}})
        )
        .await,
        202
    );
    let p = hub
        .wait_for("/api/v1/presence/alice", "alice in a call again", |v| {
            v["telephony"]["line"] == "in-call"
        })
        .await;
    assert_eq!(p["telephony"]["since_ms"].as_u64(), Some(since), "{p}");
    // The call ends: a new state, a new start.
    assert_eq!(
        push(
            &hub,
            "cti",
            &json!({"endpoint": "1001", "telephony": {"line": "idle"}})
        )
        .await,
        202
    );
    let p = hub
        .wait_for("/api/v1/presence/alice", "alice idle", |v| {
            v["telephony"]["state"] == "available"
        })
        .await;
    assert!(
        p["telephony"]["since_ms"].as_u64().unwrap() > since + 1000,
        "{p}"
    );

    // An error state names its source and its words: a chaos instance
    // told to connect where its grants do not reach reports its watch in
    // error.
    let (s, v) = hub.upload(&dist("test-plugins/chaos")).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = hub
        .call(
            "POST",
            "/api/v1/connectors",
            Some(json!({"id": "lab", "plugin": "chaos", "config": {"label": "lab"}})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = hub
        .call(
            "PUT",
            "/api/v1/users/alice",
            Some(json!({"username": "alice", "extension": "1001",
                        "endpoints": {"lab": "connect:192.0.2.1:5060"}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let p = hub
        .wait_for("/api/v1/presence/alice", "lab in error", |v| {
            v["rich"]["state"] == "error"
        })
        .await;
    assert_eq!(p["rich"]["source"], "lab", "{p}");
    assert_eq!(p["rich"]["source_plugin"], "chaos", "{p}");
    assert!(
        p["rich"]["source_detail"]
            .as_str()
            .is_some_and(|d| d.contains("192.0.2.1")),
        "{p}"
    );
    let reasons = p["reasons"].to_string();
    assert!(
        reasons.contains("rich: no source has a current state; left out: cti (1001) no state of this kind reported yet; lab (connect:192.0.2.1:5060) its watch is in error: not-granted: tcp://192.0.2.1:5060"),
        "{reasons}"
    );
    // The connector stops: the reasons say so, naming it.
    let (s, v) = hub
        .call("POST", "/api/v1/connectors/cti/disable", None)
        .await;
    assert_eq!(s, 200, "{v}");
    hub.wait_for("/api/v1/presence/alice", "cti down in the reasons", |v| {
        v["reasons"][1]
            .as_str()
            .is_some_and(|r| r.starts_with("telephony: no source has a current state; left out: cti (1001) its connector is not running"))
    })
    .await;
}
