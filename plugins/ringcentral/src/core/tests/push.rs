//! WebSocket framing, recovery and reconnects; WebHook validation,
//! verification and renewal with the granted lifetime.

use super::*;
use presence_connector_sdk::{LineState, Ordering};

fn closes(h: &mut H, conn: u64, why: &str) {
    h.core.ws_closed(conn, why.into(), false, h.now);
}

#[test]
fn websocket_connects_subscribes_after_connection_details_and_reports_in_sequence() {
    let mut h = H::new(settings(&[]), Stored::default());
    h.ready();
    let reqs = h.watch_only(&["101", "102"]);
    assert!(
        !reqs.iter().any(|(_, r)| r.url.contains("/presence")),
        "reads wait until notifications flow"
    );
    let (conn, url) = h.ws_token(&reqs);
    assert_eq!(url, "wss://ws-api.ringcentral.com/ws?access_token=wst%2F1");
    h.core.on_ws_open(conn, h.now);
    assert!(h.sent_frames().is_empty());
    h.core.on_ws_text(conn, &details(None), h.now);
    let frames = h.sent_frames();
    assert_eq!(frames.len(), 1);
    let f = &frames[0];
    assert_eq!(f[0]["type"], "ClientRequest");
    assert_eq!(f[0]["method"], "POST");
    assert_eq!(f[0]["path"], "/restapi/v1.0/subscription/");
    assert!(f[0]["messageId"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(f[1]["deliveryMode"], json!({"transportType": "WebSocket"}));
    assert_eq!(
        f[1]["eventFilters"],
        json!([
            "/restapi/v1.0/account/~/extension/62000001/presence?detailedTelephonyState=true&sipData=true",
            "/restapi/v1.0/account/~/extension/62000002/presence?detailedTelephonyState=true&sipData=true"
        ])
    );
    h.ws_subscribed(conn, f);
    // Subscribed: now the first state is read.
    let reqs = h.requests();
    assert_eq!(
        reqs.iter()
            .filter(|(_, r)| r.url.contains("/presence?"))
            .count(),
        2
    );
    h.answer_reads(&reqs, "NoCall");
    let before = h.presences().len();
    h.ws_event(conn, event("62000001", 7, json!({"telephonyStatus": "Ringing", "activeCalls": [{"id": "c1", "direction": "Inbound", "telephonyStatus": "Ringing"}]})));
    // An older one after it is dropped.
    h.ws_event(
        conn,
        event("62000001", 6, json!({"telephonyStatus": "NoCall"})),
    );
    let p = h.presences();
    assert_eq!(p.len(), before + 1);
    let u = p.last().unwrap();
    assert_eq!(u.endpoint, "101");
    assert_eq!(u.telephony.as_ref().unwrap().line, LineState::Ringing);
    assert_eq!(
        u.ordering,
        Some(Ordering {
            epoch: "sub-1".into(),
            sequence: 7
        })
    );
    assert_eq!(u.observed_at, Some(1_767_264_900_000));
    assert!(
        h.last_status().1.starts_with("online:"),
        "{}",
        h.last_status().1
    );
    // A server heartbeat is answered.
    h.core
        .on_ws_text(conn, r#"[{"type":"Heartbeat","messageId":"hb-1"}]"#, h.now);
    assert_eq!(
        h.sent_frames(),
        vec![json!([{"type": "Heartbeat", "messageId": "hb-1"}])]
    );
    // Quiet for five minutes: "connected".
    h.advance(5 * 60_000);
    h.timer(TimerKey::Tick);
    assert!(h.last_status().1.starts_with("connected:"));
}

#[test]
fn a_lost_session_is_recovered_with_the_wsc_token() {
    let mut h = H::new(settings(&[]), Stored::default());
    let conn = h.live(&["101"]);
    h.requests();
    h.advance(10_000);
    closes(&mut h, conn, "connection reset");
    // Back at once (under a second of jitter).
    let delay = h.take().into_iter().find_map(|a| match a {
        Action::SetTimer(TimerKey::Reconnect, ms) => Some(ms),
        _ => None,
    });
    assert!(delay.is_some_and(|d| d <= 1_000), "{delay:?}");
    h.advance(1_000);
    h.timer(TimerKey::Reconnect);
    let reqs = h.requests();
    let (conn2, url) = h.ws_token(&reqs);
    assert!(url.ends_with("&wsc=wsc-token-1"), "{url}");
    h.core.on_ws_open(conn2, h.now);
    h.core
        .on_ws_text(conn2, &details(Some("Successful")), h.now);
    assert!(h.sent_frames().is_empty(), "the subscription was kept");
    assert!(
        !h.requests()
            .iter()
            .any(|(_, r)| r.url.contains("/presence")),
        "nothing to read again"
    );
    // Events on the recovered session keep the subscription's order.
    h.ws_event(
        conn2,
        event("62000001", 9, json!({"telephonyStatus": "CallConnected"})),
    );
    assert_eq!(
        h.presences()
            .last()
            .unwrap()
            .ordering
            .as_ref()
            .unwrap()
            .epoch,
        "sub-1"
    );
}

#[test]
fn a_huge_recovery_timeout_neither_overflows_nor_ends_recovery() {
    // Found by the ringcentral-ws fuzz target: `recoveryTimeout` × 1000
    // overflowed (a panic in debug builds, a wrapped window in release).
    let mut h = H::new(settings(&[]), Stored::default());
    h.ready();
    let reqs = h.watch_only(&["101"]);
    let (conn, _) = h.ws_token(&reqs);
    h.core.on_ws_open(conn, h.now);
    let frame = details(None).replace(
        "\"recoveryTimeout\":180",
        "\"recoveryTimeout\":600000000000000000",
    );
    assert!(frame.contains("600000000000000000"));
    h.core.on_ws_text(conn, &frame, h.now);
    let frames = h.sent_frames();
    let sub = frames
        .iter()
        .find(|f| f[0]["type"] == "ClientRequest")
        .expect("a subscribe request")
        .clone();
    h.ws_subscribed(conn, &sub);
    h.requests();
    h.advance(10_000);
    closes(&mut h, conn, "connection reset");
    h.advance(1_000);
    h.timer(TimerKey::Reconnect);
    let reqs = h.requests();
    let (_, url) = h.ws_token(&reqs);
    assert!(url.ends_with("&wsc=wsc-token-1"), "recovers: {url}");
}

#[test]
fn a_failed_recovery_subscribes_again_and_reads_presence_again() {
    let mut h = H::new(settings(&[]), Stored::default());
    let conn = h.live(&["101"]);
    h.requests();
    closes(&mut h, conn, "connection reset");
    h.advance(1_000);
    h.timer(TimerKey::Reconnect);
    let reqs = h.requests();
    let (conn2, _) = h.ws_token(&reqs);
    h.core.on_ws_open(conn2, h.now);
    h.core.on_ws_text(conn2, &details(Some("Failed")), h.now);
    let all = h.take();
    let frames: Vec<Value> = all
        .iter()
        .filter_map(|a| match a {
            Action::WsSend(_, t) => Some(serde_json::from_str(t).unwrap()),
            _ => None,
        })
        .collect();
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0][0]["type"], "ClientRequest");
    // Presence is read again once the new subscription stands.
    assert!(
        !all.iter()
            .any(|a| matches!(a, Action::Http(_, r) if r.url.contains("62000001/presence")))
    );
    h.requests();
    h.ws_subscribed(conn2, &frames[0]);
    assert!(
        h.requests()
            .iter()
            .any(|(_, r)| r.url.contains("62000001/presence"))
    );
}

#[test]
fn an_idle_or_absolute_timeout_starts_a_fresh_session() {
    let mut h = H::new(settings(&[]), Stored::default());
    let conn = h.live(&["101"]);
    h.requests();
    h.core.on_ws_text(
        conn,
        r#"[{"type":"Error","messageId":"e","status":401},{"errorCode":"WSG-903","message":"Absolute timeout expired"}]"#,
        h.now,
    );
    closes(&mut h, conn, "close code 1000");
    h.advance(1_000);
    h.timer(TimerKey::Reconnect);
    let reqs = h.requests();
    let (conn2, url) = h.ws_token(&reqs);
    assert!(!url.contains("wsc="), "{url}");
    h.core.on_ws_open(conn2, h.now);
    h.core.on_ws_text(conn2, &details(None), h.now);
    let frames = h.sent_frames();
    let sub = frames
        .iter()
        .find(|f| f[0]["type"] == "ClientRequest")
        .expect("a new subscription");
    h.requests();
    h.ws_subscribed(conn2, sub);
    assert!(
        h.requests()
            .iter()
            .any(|(_, r)| r.url.contains("62000001/presence"))
    );
}

#[test]
fn reconnects_back_off_with_jitter_up_to_a_minute() {
    let mut h = H::new(settings(&[]), Stored::default());
    h.ready();
    let mut reqs = h.watch_only(&["101"]);
    let mut delays = Vec::new();
    for _ in 0..9 {
        let (conn, _) = h.ws_token(&reqs);
        closes(&mut h, conn, "connection refused");
        let d = h
            .take()
            .into_iter()
            .find_map(|a| match a {
                Action::SetTimer(TimerKey::Reconnect, ms) => Some(ms),
                _ => None,
            })
            .unwrap();
        delays.push(d);
        h.advance(d);
        h.timer(TimerKey::Reconnect);
        reqs = h.requests();
        // Keep the Auth budget out of the way.
        h.advance(60_000);
    }
    for (i, d) in delays.iter().enumerate() {
        let ceiling = (1_000u64 << i).min(60_000);
        assert!(
            *d >= ceiling / 2 && *d <= ceiling,
            "delay {i}: {d} not within {ceiling}"
        );
    }
    assert!(
        h.last_status().1.contains("WebSocket"),
        "{}",
        h.last_status().1
    );
    assert_eq!(h.last_status().0, ConnectorStatus::ConnectionError);
}

#[test]
fn watch_changes_replace_the_websocket_subscription() {
    let mut h = H::new(settings(&[]), Stored::default());
    let conn = h.live(&["101"]);
    h.core.watch(&["103".to_string()], h.now);
    let frames = h.sent_frames();
    let sub = frames
        .iter()
        .find(|f| f[0]["type"] == "ClientRequest")
        .expect("a new subscription");
    assert_eq!(sub[1]["eventFilters"].as_array().unwrap().len(), 2);
    h.ws_subscribed(conn, sub);
    h.core.unwatch(&["101".to_string()], h.now);
    let frames = h.sent_frames();
    let sub = frames
        .iter()
        .find(|f| f[0]["type"] == "ClientRequest")
        .unwrap();
    assert_eq!(
        sub[1]["eventFilters"],
        json!([
            "/restapi/v1.0/account/~/extension/62000003/presence?detailedTelephonyState=true&sipData=true"
        ])
    );
}

#[test]
fn disabled_filters_make_their_endpoints_access_denied() {
    let mut h = H::new(settings(&[]), Stored::default());
    h.ready();
    let reqs = h.watch_only(&["101", "102"]);
    let (conn, _) = h.ws_token(&reqs);
    h.core.on_ws_open(conn, h.now);
    h.core.on_ws_text(conn, &details(None), h.now);
    let frames = h.sent_frames();
    let answer = json!([{"type": "ClientRequest", "messageId": frames[0][0]["messageId"], "status": 200},
        {"id": "sub-1", "eventFilters": [], "status": "Active",
         "disabledFilters": [{"filter": "/restapi/v1.0/account/~/extension/62000002/presence?detailedTelephonyState=true&sipData=true",
            "reason": "Permission", "message": "Insufficient permissions"}]}]);
    h.core.on_ws_text(conn, &answer.to_string(), h.now);
    let reads: Vec<(ReqId, Request)> = h
        .requests()
        .into_iter()
        .filter(|(_, r)| r.url.contains("62000001/presence"))
        .collect();
    h.answer_reads(&reads, "NoCall");
    assert_eq!(h.ep_state("102"), Some(EndpointState::AccessDenied));
    assert_eq!(h.ep_state("101"), Some(EndpointState::Active));
}

#[test]
fn a_refused_websocket_token_names_the_permission() {
    let mut h = H::new(settings(&[]), Stored::default());
    h.ready();
    let reqs = h.watch_only(&["101"]);
    let (id, _) = H::find(&reqs, "POST", "/restapi/oauth/wstoken").unwrap();
    h.answer(*id, resp(403, json!({"errorCode": "CMN-401", "message": "In order to call this API endpoint, application needs to have [WebSocketsSubscriptions] permission"})));
    let (st, detail) = h.last_status();
    assert_eq!(st, ConnectorStatus::Forbidden);
    assert!(detail.contains("WebSocketsSubscriptions"), "{detail}");
}

// ---- WebHook -----------------------------------------------------------------

fn webhook_live(h: &mut H) -> (String, String) {
    h.ready();
    let reqs = h.watch(&["101"]);
    let (id, r) = H::find(&reqs, "POST", "/restapi/v1.0/subscription")
        .expect("a create")
        .clone();
    let body = crate::core::body_json(&r);
    let token = body["deliveryMode"]["verificationToken"]
        .as_str()
        .unwrap()
        .to_string();
    h.answer(id, resp(200, json!({"id": "hook-1", "uri": "x", "eventFilters": body["eventFilters"],
        "expiresIn": 60, "expirationTime": "2026-01-01T10:56:00.000Z", "status": "Active",
        "creationTime": "2026-01-01T10:55:00.000Z", "deliveryMode": {"transportType": "WebHook", "address": HOOKS}})));
    // The subscription stands: the first state is read.
    let reqs = h.requests();
    h.answer_reads(&reqs, "NoCall");
    ("hook-1".into(), token)
}

#[test]
fn webhook_subscription_body_and_the_validation_handshake() {
    let mut h = H::new(settings(&[("delivery", "webhook")]), Stored::default());
    h.ready();
    let reqs = h.watch(&["101"]);
    assert!(H::find(&reqs, "POST", "/restapi/oauth/wstoken").is_none());
    let (_, r) = H::find(&reqs, "POST", "/restapi/v1.0/subscription").unwrap();
    let body = crate::core::body_json(r);
    assert_eq!(body["deliveryMode"]["transportType"], "WebHook");
    assert_eq!(
        body["deliveryMode"]["address"],
        "https://hub.example.com/hooks/rc/notify"
    );
    assert_eq!(
        body["deliveryMode"]["verificationToken"]
            .as_str()
            .unwrap()
            .len(),
        32
    );
    assert_eq!(body["expiresIn"], 604_800);
    assert_eq!(body["eventFilters"].as_array().unwrap().len(), 1);
    assert_eq!(body.as_object().unwrap().len(), 3);
    // RingCentral validates the address before it answers.
    let headers = vec![("Validation-Token".to_string(), "vt-123".to_string())];
    let hook = Hook {
        method: "POST",
        path: "/notify",
        query: "",
        headers: &headers,
        body: b"",
    };
    let a = h.core.on_webhook(&hook, h.now);
    assert_eq!(a.status, 200);
    assert!(
        a.headers
            .contains(&("Validation-Token".into(), "vt-123".into()))
    );
    assert!(
        a.headers
            .contains(&("Content-Type".into(), "application/json".into()))
    );
    let size: usize = a
        .headers
        .iter()
        .map(|(n, v)| n.len() + v.len() + 4)
        .sum::<usize>()
        + a.body.len();
    assert!(size < 1024);
}

#[test]
fn deliveries_must_carry_the_verification_token() {
    let mut h = H::new(settings(&[("delivery", "webhook")]), Stored::default());
    let (_, token) = webhook_live(&mut h);
    let n = h.presences().len();
    let ev = event("62000001", 3, json!({"telephonyStatus": "CallConnected"}));
    // Wrong token: 403, nothing reported.
    assert_eq!(
        h.notify("wrong-token-wrong-token-wrong-to", &ev).status,
        403
    );
    // No token: 401.
    let body = serde_json::to_vec(&ev).unwrap();
    let hook = Hook {
        method: "POST",
        path: "/notify",
        query: "",
        headers: &[],
        body: &body,
    };
    assert_eq!(h.core.on_webhook(&hook, h.now).status, 401);
    assert_eq!(h.presences().len(), n);
    // The right one, as Verification-Token or as Validation-Token.
    let a = h.notify(&token, &ev);
    assert_eq!(a.status, 200);
    assert_eq!(h.presences().len(), n + 1);
    let ordering = h.presences().last().unwrap().ordering.clone().unwrap();
    assert_eq!(ordering.sequence, 3);
    let headers = vec![("validation-token".to_string(), token.clone())];
    let body =
        serde_json::to_vec(&event("62000001", 4, json!({"telephonyStatus": "NoCall"}))).unwrap();
    let hook = Hook {
        method: "POST",
        path: "/notify",
        query: "",
        headers: &headers,
        body: &body,
    };
    assert_eq!(h.core.on_webhook(&hook, h.now).status, 200);
    assert_eq!(h.presences().len(), n + 2);
}

#[test]
fn renewal_follows_the_granted_lifetime_and_a_lost_subscription_is_made_again() {
    let mut h = H::new(settings(&[("delivery", "webhook")]), Stored::default());
    webhook_live(&mut h);
    h.take();
    // Granted 60 s (asked 7 days): renewed 15 s before the end.
    assert!(
        h.log.contains(&Action::SetTimer(TimerKey::Renew, 45_000)),
        "{:?}",
        h.log
            .iter()
            .filter(|a| matches!(a, Action::SetTimer(TimerKey::Renew, _)))
            .collect::<Vec<_>>()
    );
    let stored: Value = serde_json::from_slice(&h.kv(keys::SUBSCRIPTION).unwrap()).unwrap();
    assert_eq!(stored["id"], "hook-1");
    h.requests();
    h.advance(45_000);
    h.timer(TimerKey::Renew);
    let reqs = h.requests();
    let (id, r) = H::find(&reqs, "POST", "/restapi/v1.0/subscription/hook-1/renew")
        .expect("a renewal")
        .clone();
    assert!(r.body.is_empty());
    h.answer(
        id,
        resp(
            404,
            json!({"errorCode": "SUB-504", "message": "Subscription not found"}),
        ),
    );
    let reqs = h.requests();
    let (id, _) = H::find(&reqs, "POST", "/restapi/v1.0/subscription")
        .expect("created again")
        .clone();
    h.answer(
        id,
        resp(
            200,
            json!({"id": "hook-2", "expiresIn": 604800, "status": "Active",
                "eventFilters": ["/restapi/v1.0/account/~/extension/62000001/presence?detailedTelephonyState=true&sipData=true"]}),
        ),
    );
    // ...and presence is read again once it stands (events may have been
    // lost meanwhile).
    assert!(
        h.requests()
            .iter()
            .any(|(_, r)| r.url.contains("62000001/presence"))
    );
    h.take();
    assert!(
        h.log
            .contains(&Action::SetTimer(TimerKey::Renew, 604_800_000 - 3_600_000))
    );
}

#[test]
fn a_blacklisted_subscription_is_made_again() {
    let mut h = H::new(settings(&[("delivery", "webhook")]), Stored::default());
    webhook_live(&mut h);
    h.requests();
    h.advance(45_000);
    h.timer(TimerKey::Renew);
    let reqs = h.requests();
    let (id, _) = H::find(&reqs, "POST", "/restapi/v1.0/subscription/hook-1/renew")
        .unwrap()
        .clone();
    h.answer(
        id,
        resp(
            200,
            json!({"id": "hook-1", "status": "Blacklisted", "expiresIn": 60,
        "blacklistedData": {"reason": "Webhook responses are too slow"}}),
        ),
    );
    let reqs = h.requests();
    assert!(
        H::find(&reqs, "POST", "/restapi/v1.0/subscription")
            .is_some_and(|(_, r)| !r.url.ends_with("/renew"))
    );
}

#[test]
fn a_stored_webhook_subscription_is_adopted_and_checked_by_renewing() {
    let mut h = H::new(settings(&[("delivery", "webhook")]), Stored::default());
    webhook_live(&mut h);
    let stored = h.stored();
    let mut again = H::new(settings(&[("delivery", "webhook")]), stored);
    let reqs = again.requests();
    assert!(H::find(&reqs, "POST", "/restapi/v1.0/subscription/hook-1/renew").is_some());
    assert!(
        H::find(&reqs, "POST", "/restapi/v1.0/subscription")
            .is_some_and(|(_, r)| r.url.ends_with("/renew"))
    );
}

#[test]
fn webhook_delivery_without_a_public_url_names_hub_public_url() {
    let s = settings_with_hooks(&[("delivery", "webhook")], None);
    let mut h = H::new(s, Stored::default());
    h.ready();
    let reqs = h.watch(&["101"]);
    assert!(H::find(&reqs, "POST", "/restapi/v1.0/subscription").is_none());
    let (st, detail) = h.last_status();
    assert_eq!(st, ConnectorStatus::NotConfigured);
    assert!(detail.contains("HUB_PUBLIC_URL"), "{detail}");
}

#[test]
fn shutdown_deletes_the_webhook_subscription_and_closes_the_websocket() {
    let mut h = H::new(settings(&[("delivery", "webhook")]), Stored::default());
    webhook_live(&mut h);
    h.requests();
    h.core.shutdown(h.now);
    let reqs = h.requests();
    assert!(H::find(&reqs, "DELETE", "/restapi/v1.0/subscription/hook-1").is_some());
    assert_eq!(h.kv(keys::SUBSCRIPTION), None);
    let mut w = H::new(settings(&[]), Stored::default());
    let conn = w.live(&["101"]);
    w.core.shutdown(w.now);
    assert!(
        w.take()
            .contains(&Action::WsClose(conn, 1000, "shutdown".into()))
    );
}

#[test]
fn with_push_down_past_its_grace_presence_is_read_blind_and_again_once_subscribed() {
    let mut h = H::new(settings(&[]), Stored::default());
    h.ready();
    let reqs = h.watch_only(&["101"]);
    let (conn, _) = h.ws_token(&reqs);
    closes(&mut h, conn, "connection refused");
    assert!(
        !h.requests()
            .iter()
            .any(|(_, r)| r.url.contains("/presence")),
        "a read waits for the subscription while push may still come"
    );
    // Down past the grace: the first state is read without notifications.
    h.advance(31_000);
    h.timer(TimerKey::Tick);
    h.timer(TimerKey::Reconnect);
    let reqs = h.requests();
    assert!(
        reqs.iter()
            .any(|(_, r)| r.url.contains("62000001/presence")),
        "read blind"
    );
    h.answer_reads(&reqs, "NoCall");
    // Push comes back: read again, since a change may have fallen between
    // the blind read and the subscription.
    let (conn, _) = h.ws_token(&reqs);
    h.core.on_ws_open(conn, h.now);
    h.core.on_ws_text(conn, &details(None), h.now);
    let frames = h.sent_frames();
    h.requests();
    h.ws_subscribed(conn, &frames[0]);
    assert!(
        h.requests()
            .iter()
            .any(|(_, r)| r.url.contains("62000001/presence"))
    );
}
