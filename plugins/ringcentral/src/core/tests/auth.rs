//! Sign-in: JWT, refresh rotation, revocation, authorization code, restarts.

use super::*;
use presence_connector_sdk::urlcode::query_value;

fn form(r: &Request) -> String {
    String::from_utf8(r.body.clone()).unwrap()
}

#[test]
fn jwt_sign_in_sends_the_jwt_bearer_grant_with_basic_client_auth() {
    let mut h = H::new(settings(&[]), Stored::default());
    let reqs = h.requests();
    assert_eq!(reqs.len(), 1, "only the token request before a token");
    let (_, r) = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.url, format!("{SERVER}/restapi/oauth/token"));
    let body = form(r);
    assert_eq!(
        query_value(&body, "grant_type").as_deref(),
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    );
    assert_eq!(
        query_value(&body, "assertion").as_deref(),
        Some("eyJ.jwt.credential")
    );
    assert!(!body.contains("client_secret"));
    let auth = r
        .headers
        .iter()
        .find(|(n, _)| n == "Authorization")
        .unwrap();
    // base64("cid:csecret")
    assert_eq!(auth.1, "Basic Y2lkOmNzZWNyZXQ=");
    assert!(r.headers.contains(&(
        "Content-Type".into(),
        "application/x-www-form-urlencoded".into()
    )));
    h.token(&reqs, 3600, "rt-1");
    // Then the directory, with the bearer token.
    let reqs = h.requests();
    assert!(h.kv(keys::TOKENS).is_some(), "tokens stored");
    let (_, d) = H::find(
        &reqs,
        "GET",
        "/restapi/v1.0/account/~/extension?page=1&perPage=1000",
    )
    .unwrap();
    assert!(
        d.headers
            .iter()
            .any(|(n, v)| n == "Authorization" && v.starts_with("Bearer at-"))
    );
    // A token of an hour is refreshed ten minutes ahead.
    assert!(h.log.contains(&Action::SetTimer(
        TimerKey::OAuth(TimerKind::Renew),
        3_000_000
    )));
}

#[test]
fn refresh_tokens_rotate_and_the_new_one_is_stored_at_once() {
    let mut h = H::new(settings(&[]), Stored::default());
    let reqs = h.requests();
    h.token(&reqs, 3600, "rt-1");
    h.requests();
    h.advance(3_000_000);
    h.timer(TimerKey::OAuth(TimerKind::Renew));
    let reqs = h.requests();
    let (_, r) = H::find(&reqs, "POST", "/restapi/oauth/token").unwrap();
    let body = form(r);
    assert_eq!(
        query_value(&body, "grant_type").as_deref(),
        Some("refresh_token")
    );
    assert_eq!(query_value(&body, "refresh_token").as_deref(), Some("rt-1"));
    h.token(&reqs, 3600, "rt-2");
    let first = h.take();
    // The rotated refresh token is the first thing stored.
    let stored = first
        .iter()
        .find_map(|a| match a {
            Action::KvSet(k, v) if k == keys::TOKENS => Some(String::from_utf8(v.clone()).unwrap()),
            _ => None,
        })
        .unwrap();
    assert!(stored.contains("rt-2") && !stored.contains("rt-1"));
    assert!(!stored.contains("csecret"));
}

#[test]
fn a_revoked_refresh_token_in_jwt_mode_presents_the_jwt_again() {
    let mut h = H::new(settings(&[]), Stored::default());
    let reqs = h.requests();
    h.token(&reqs, 3600, "rt-1");
    h.requests();
    h.advance(3_000_000);
    h.timer(TimerKey::OAuth(TimerKind::Renew));
    let reqs = h.requests();
    let (id, _) = H::find(&reqs, "POST", "/restapi/oauth/token").unwrap();
    h.answer(
        *id,
        resp(
            400,
            json!({"error": "invalid_grant", "error_description": "Token is revoked"}),
        ),
    );
    let reqs = h.requests();
    let (_, r) = H::find(&reqs, "POST", "/restapi/oauth/token").expect("the JWT again");
    assert_eq!(
        query_value(&form(r), "grant_type").as_deref(),
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    );
    assert_eq!(h.kv(keys::TOKENS), None, "the dead tokens are gone");
}

#[test]
fn a_refused_jwt_is_a_credentials_problem_naming_the_field() {
    let mut h = H::new(settings(&[]), Stored::default());
    let reqs = h.requests();
    h.answer(
        reqs[0].0,
        resp(
            400,
            json!({"error": "invalid_grant", "error_description": "JWT is expired"}),
        ),
    );
    let (st, detail) = h.last_status();
    assert_eq!(st, ConnectorStatus::CredentialsNotFound);
    assert!(detail.contains("field jwt"), "{detail}");
    assert!(detail.starts_with("offline:"));
    // Not hammered: nothing until the retry timer.
    assert!(h.requests().is_empty());
    h.answer(999, resp(200, json!({})));
    let mut h = H::new(settings(&[]), Stored::default());
    let reqs = h.requests();
    h.answer(
        reqs[0].0,
        resp(
            401,
            json!({"error": "invalid_client", "error_description": "bad secret"}),
        ),
    );
    let (_, detail) = h.last_status();
    assert!(detail.contains("client_id and client_secret"), "{detail}");
}

#[test]
fn tokens_survive_a_restart() {
    let mut h = H::new(settings(&[]), Stored::default());
    let reqs = h.requests();
    h.token(&reqs, 3600, "rt-1");
    let stored = h.stored();
    let mut again = H::new(settings(&[]), stored);
    let reqs = again.requests();
    assert!(H::find(&reqs, "POST", "/restapi/oauth/token").is_none());
    assert!(H::find(&reqs, "GET", "/restapi/v1.0/account/~/extension").is_some());
    // Another JWT (another user): the stored tokens are void.
    let other = settings(&[("jwt", "eyJ.other")]);
    let mut h3 = H::new(other, h.stored());
    let reqs = h3.requests();
    assert!(H::find(&reqs, "POST", "/restapi/oauth/token").is_some());
}

#[test]
fn authorization_code_sign_in_through_the_login_step_and_the_callback() {
    let mut h = H::new(
        settings(&[("auth_mode", "authorization-code")]),
        Stored::default(),
    );
    assert!(h.requests().is_empty());
    let step = h
        .log
        .iter()
        .find_map(|a| match a {
            Action::LoginStep(Some(s)) => Some(s.clone()),
            _ => None,
        })
        .expect("a login step");
    let url = step.url.unwrap();
    assert!(url.starts_with(&format!("{SERVER}/restapi/oauth/authorize?")));
    let q = url.split_once('?').unwrap().1;
    assert_eq!(query_value(q, "response_type").as_deref(), Some("code"));
    assert_eq!(query_value(q, "client_id").as_deref(), Some("cid"));
    assert_eq!(
        query_value(q, "redirect_uri").as_deref(),
        Some("https://hub.example.com/hooks/rc/oauth/callback")
    );
    let state = query_value(q, "state").unwrap();
    assert_eq!(h.last_status().0, ConnectorStatus::LoginRequired);
    // A wrong state is refused.
    let hook = Hook {
        method: "GET",
        path: "/oauth/callback",
        query: "code=abc&state=wrong",
        headers: &[],
        body: b"",
    };
    assert_eq!(h.core.on_webhook(&hook, h.now).status, 400);
    assert!(h.requests().is_empty());
    let query = format!("code=U1BC%2Bcode&state={state}");
    let hook = Hook {
        method: "GET",
        path: "/oauth/callback",
        query: &query,
        headers: &[],
        body: b"",
    };
    assert_eq!(h.core.on_webhook(&hook, h.now).status, 200);
    let reqs = h.requests();
    let (_, r) = H::find(&reqs, "POST", "/restapi/oauth/token").unwrap();
    let body = form(r);
    assert_eq!(
        query_value(&body, "grant_type").as_deref(),
        Some("authorization_code")
    );
    assert_eq!(query_value(&body, "code").as_deref(), Some("U1BC+code"));
    assert_eq!(
        query_value(&body, "redirect_uri").as_deref(),
        Some("https://hub.example.com/hooks/rc/oauth/callback")
    );
    h.token(&reqs, 3600, "rt-1");
    assert!(
        h.take().contains(&Action::LoginStep(None)) || h.log.contains(&Action::LoginStep(None))
    );
    assert_ne!(h.last_status().0, ConnectorStatus::LoginRequired);
    // The refresh token is revoked later: login required again.
    h.requests();
    h.advance(3_000_000);
    h.timer(TimerKey::OAuth(TimerKind::Renew));
    let reqs = h.requests();
    let (id, _) = H::find(&reqs, "POST", "/restapi/oauth/token").unwrap();
    h.answer(*id, resp(400, json!({"error": "invalid_grant"})));
    let (st, detail) = h.last_status();
    assert_eq!(st, ConnectorStatus::LoginRequired);
    assert!(detail.contains("/restapi/oauth/authorize"), "{detail}");
}

#[test]
fn authorization_code_without_a_public_url_names_hub_public_url() {
    let s = settings_with_hooks(&[("auth_mode", "authorization-code")], None);
    let mut h = H::new(s, Stored::default());
    let (st, detail) = h.last_status();
    assert_eq!(st, ConnectorStatus::NotConfigured);
    assert!(detail.contains("HUB_PUBLIC_URL"), "{detail}");
}

#[test]
fn an_api_401_gets_a_new_token_and_the_work_is_done_again() {
    let mut h = H::new(settings(&[]), Stored::default());
    let reqs = h.requests();
    h.token(&reqs, 3600, "rt-1");
    let reqs = h.requests();
    let (id, _) = H::find(&reqs, "GET", "/restapi/v1.0/account/~/extension").unwrap();
    h.answer(*id, resp(401, json!({"errorCode": "TokenInvalid"})));
    let reqs = h.requests();
    let (id, r) = H::find(&reqs, "POST", "/restapi/oauth/token").expect("a refresh");
    assert_eq!(
        query_value(&form(r), "grant_type").as_deref(),
        Some("refresh_token")
    );
    let id = *id;
    h.answer(
        id,
        resp(
            200,
            json!({"access_token": "at-new", "expires_in": 3600, "refresh_token": "rt-2",
        "token_type": "bearer", "scope": "", "session_id": "s"}),
        ),
    );
    let reqs = h.requests();
    let (_, d) =
        H::find(&reqs, "GET", "/restapi/v1.0/account/~/extension").expect("the directory again");
    assert!(
        d.headers
            .contains(&("Authorization".into(), "Bearer at-new".into()))
    );
}

#[test]
fn tokens_kept_in_the_older_format_are_used_once_and_stored_anew() {
    // What this connector stored before it signed in with the SDK's client.
    let s = settings(&[]);
    let now = H::new(settings(&[]), Stored::default()).now;
    let old = json!({
        "fingerprint": s.fingerprint(),
        "tokens": {"access": "at-old", "refresh": "rt-old", "expires_at": now + 3_000_000,
            "refresh_expires_at": now + 604_800_000, "obtained_at": now - 600_000}
    });
    let stored = Stored {
        tokens: Some(serde_json::to_vec(&old).unwrap()),
        ..Stored::default()
    };
    let mut h = H::new(s, stored);
    let reqs = h.requests();
    assert!(
        H::find(&reqs, "POST", "/restapi/oauth/token").is_none(),
        "no new sign-in"
    );
    let (_, d) = H::find(&reqs, "GET", "/restapi/v1.0/account/~/extension").unwrap();
    assert!(
        d.headers
            .contains(&("Authorization".into(), "Bearer at-old".into()))
    );
    // Stored in the client's format, which the next start reads.
    let kept = String::from_utf8(h.kv(keys::TOKENS).unwrap()).unwrap();
    assert!(kept.contains("\"access_token\":\"at-old\""), "{kept}");
    let mut again = H::new(settings(&[]), h.stored());
    let reqs = again.requests();
    assert!(H::find(&reqs, "POST", "/restapi/oauth/token").is_none());
    // The renewal uses the old refresh token.
    again.advance(3_000_000);
    again.timer(TimerKey::OAuth(TimerKind::Renew));
    let reqs = again.requests();
    let (_, r) = H::find(&reqs, "POST", "/restapi/oauth/token").expect("a renewal");
    assert_eq!(
        query_value(&form(r), "refresh_token").as_deref(),
        Some("rt-old")
    );
}

#[test]
fn token_requests_wait_for_room_in_the_auth_group() {
    let mut h = H::new(settings(&[]), Stored::default());
    let reqs = h.requests();
    let (id, _) = H::find(&reqs, "POST", "/restapi/oauth/token").unwrap();
    h.answer(
        *id,
        resp_h(
            429,
            &[("Retry-After", "60")],
            json!({"errorCode": "CMN-301"}),
        ),
    );
    assert_eq!(h.last_status().0, ConnectorStatus::Throttled);
    // Restarted within the penalty: only the Auth group knows to wait.
    let mut again = H::new(settings(&[]), h.stored());
    assert!(H::find(&again.requests(), "POST", "/restapi/oauth/token").is_none());
    again.advance(30_000);
    again.timer(TimerKey::OAuth(TimerKind::Renew));
    assert!(H::find(&again.requests(), "POST", "/restapi/oauth/token").is_none());
    again.advance(30_000);
    again.timer(TimerKey::OAuth(TimerKind::Renew));
    assert!(H::find(&again.requests(), "POST", "/restapi/oauth/token").is_some());
}
