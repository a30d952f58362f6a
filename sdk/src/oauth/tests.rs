//! Each flow driven through a connector under the test kit.

use super::*;
use crate::connector::Report;
use crate::testkit::{EPOCH_MS, TestHub, json_response, text};
use crate::types::{ConfigValue, Failure};
use crate::{Capabilities, Config, ConnectorError, PluginInfo, WebhookRequest, WebhookResponse};

const TOKEN_URL: &str = "https://id.example.com/token";
const DEVICE_URL: &str = "https://id.example.com/devicecode";
const AUTHORIZE_URL: &str = "https://id.example.com/authorize";
const REDIRECT: &str = "https://hub.example.com/hooks/test/auth/callback";

/// A connector that only signs in, reporting what the client says.
struct Demo {
    oauth: TokenClient,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Req {
    OAuth(Call),
}

impl From<Call> for Req {
    fn from(call: Call) -> Self {
        Req::OAuth(call)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Tick {
    OAuth(Timer),
}

impl From<Timer> for Tick {
    fn from(timer: Timer) -> Self {
        Tick::OAuth(timer)
    }
}

impl Connector for Demo {
    type TimerKey = Tick;
    type RequestKey = Req;
    type SocketKey = ();

    fn describe() -> PluginInfo {
        PluginInfo {
            name: "oauth-demo".into(),
            version: "0".into(),
            description: "signs in".into(),
            config_fields: vec![],
            endpoint_kinds: vec![],
            capabilities: Capabilities::default(),
        }
    }

    fn new(cx: &mut Cx<Self>, config: &Config) -> Result<Self, ConnectorError> {
        let flow = match config.text("flow")? {
            "client_credentials" => Flow::ClientCredentials,
            "jwt" => Flow::JwtBearer {
                assertion: "eyJ.signed.jwt".into(),
            },
            "code" => Flow::AuthorizationCode {
                authorize_url: AUTHORIZE_URL.into(),
                redirect_uri: REDIRECT.into(),
                pkce: true,
            },
            "device" => Flow::DeviceCode {
                device_authorization_url: DEVICE_URL.into(),
            },
            other => return Err(crate::invalid_config("flow", format!("unknown {other}"))),
        };
        let mut cfg = OAuthConfig::new("demo", TOKEN_URL, "app-id", flow)
            .scopes(["presence.read", "offline_access"]);
        if let Some(secret) = config.opt_text("secret")? {
            let auth = if config.opt_text("auth")? == Some("basic") {
                ClientAuth::Basic
            } else {
                ClientAuth::Post
            };
            cfg = cfg.secret(secret, auth);
        }
        let mut oauth = TokenClient::new(cfg);
        oauth.restore_from(cx);
        oauth.start(cx);
        if let Some((status, detail)) = oauth.problem().cloned() {
            cx.status(status, Some(&detail));
        }
        Ok(Demo { oauth })
    }

    fn on_timer(&mut self, cx: &mut Cx<Self>, key: Tick) {
        let Tick::OAuth(timer) = key;
        self.oauth.handle_timer(cx, timer);
    }

    fn on_http(&mut self, cx: &mut Cx<Self>, key: Req, outcome: Result<http::Response, HttpError>) {
        let Req::OAuth(call) = key;
        match self.oauth.handle_http(cx, call, outcome) {
            TokenEvent::Obtained => cx.status(ConnectorStatus::UpAndRunning, None),
            TokenEvent::Problem(status, detail) => cx.status(status, Some(&detail)),
            TokenEvent::Pending => {}
        }
    }

    fn webhook(&mut self, cx: &mut Cx<Self>, request: WebhookRequest) -> WebhookResponse {
        let (status, body) = match self.oauth.handle_redirect(cx, &request.query) {
            Ok(()) => (200, "signed in".to_string()),
            Err(e) => (e.status(), e.to_string()),
        };
        WebhookResponse {
            status,
            headers: vec![],
            body: body.into_bytes(),
        }
    }
}

fn hub(entries: &[(&str, &str)]) -> TestHub<Demo> {
    let mut hub = TestHub::<Demo>::new();
    let entries: Vec<(&str, ConfigValue)> = entries.iter().map(|(k, v)| (*k, text(v))).collect();
    hub.configure(&entries).expect("configured");
    hub
}

fn token(access: &str, refresh: Option<&str>, expires_in: u64) -> String {
    match refresh {
        Some(r) => format!(
            r#"{{"access_token":"{access}","token_type":"Bearer","expires_in":{expires_in},"refresh_token":"{r}"}}"#
        ),
        None => format!(
            r#"{{"access_token":"{access}","token_type":"Bearer","expires_in":"{expires_in}"}}"#
        ),
    }
}

fn form(body: &str, name: &str) -> Option<String> {
    urlcode::query_value(body, name)
}

fn token_bodies(hub: &mut TestHub<Demo>) -> Vec<String> {
    hub.requests()
        .iter()
        .filter(|r| r.request.url == TOKEN_URL)
        .map(|r| r.body_text())
        .collect()
}

fn last_status(hub: &mut TestHub<Demo>) -> (ConnectorStatus, Option<String>) {
    hub.statuses().last().cloned().expect("a status")
}

fn login_steps(hub: &mut TestHub<Demo>) -> Vec<Option<LoginStep>> {
    hub.reports()
        .into_iter()
        .filter_map(|r| match r {
            Report::LoginStep(step) => Some(step),
            _ => None,
        })
        .collect()
}

fn with_retry_after(status: u16, value: &str) -> Result<http::Response, Failure> {
    Ok(http::Response {
        status,
        headers: vec![Header {
            name: "Retry-After".into(),
            value: value.into(),
        }],
        body: Vec::new(),
    })
}

#[test]
fn client_credentials_signs_in_stores_renews_ahead_and_waits_after_a_refusal() {
    let mut hub = hub(&[("flow", "client_credentials"), ("secret", "s3cret")]);
    let sent = hub.open_requests();
    assert_eq!(sent.len(), 1);
    let body = sent[0].body_text();
    assert_eq!(
        form(&body, "grant_type").as_deref(),
        Some("client_credentials")
    );
    assert_eq!(form(&body, "client_id").as_deref(), Some("app-id"));
    assert_eq!(form(&body, "client_secret").as_deref(), Some("s3cret"));
    assert_eq!(
        form(&body, "scope").as_deref(),
        Some("presence.read offline_access")
    );
    hub.respond(TOKEN_URL, json_response(200, &token("at1", None, 3600)));
    assert_eq!(last_status(&mut hub).0, ConnectorStatus::UpAndRunning);
    let now = hub.now();
    assert_eq!(
        hub.connector().unwrap().oauth.access_token(now),
        Some("at1")
    );
    let stored = hub.host().kv.get("oauth/demo").cloned().expect("stored");
    assert!(String::from_utf8_lossy(&stored).contains("at1"));

    // Renewed five minutes before expiry, not earlier.
    hub.advance(3_300_000 - 1);
    assert!(hub.open_requests().is_empty());
    hub.advance(1);
    assert_eq!(hub.open_requests().len(), 1, "renewal ahead of expiry");
    hub.respond(
        TOKEN_URL,
        json_response(401, r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret.\r\nTrace ID: x"}"#),
    );
    let (status, detail) = last_status(&mut hub);
    assert_eq!(status, ConnectorStatus::Forbidden);
    let detail = detail.unwrap();
    assert!(
        detail.contains("invalid_client: AADSTS7000215: Invalid client secret."),
        "{detail}"
    );
    assert!(!detail.contains("Trace"));
    hub.advance(REFUSED_RETRY_MS - 1);
    assert!(
        hub.open_requests().is_empty(),
        "no retry before five minutes"
    );
    hub.advance(1);
    assert_eq!(hub.open_requests().len(), 1);
    // The secret never reaches the log.
    assert!(
        hub.logs()
            .iter()
            .all(|(_, line)| !line.contains("s3cret") && !line.contains("at1"))
    );
}

#[test]
fn unreachable_or_throttled_token_endpoint_honours_retry_after() {
    let mut hub = hub(&[("flow", "client_credentials"), ("secret", "s")]);
    hub.respond(TOKEN_URL, with_retry_after(503, "120"));
    let (status, detail) = last_status(&mut hub);
    assert_eq!(status, ConnectorStatus::ConnectionError);
    assert!(detail.unwrap().contains("retrying in 120 s"));
    hub.advance(119_999);
    assert!(hub.open_requests().is_empty());
    hub.advance(1);
    // An HTTP-date 30 s ahead (the fake clock starts at 2026-01-01).
    hub.respond(
        TOKEN_URL,
        with_retry_after(429, "Thu, 01 Jan 2026 00:02:30 GMT"),
    );
    assert_eq!(last_status(&mut hub).0, ConnectorStatus::Throttled);
    hub.advance(29_999);
    assert!(hub.open_requests().is_empty());
    hub.advance(1);
    // No Retry-After: a back-off within its jitter band (third failure: 2-4 s).
    hub.respond(TOKEN_URL, Err(Failure::Timeout));
    hub.advance(1_999);
    assert!(hub.open_requests().is_empty());
    hub.advance(2_001);
    assert_eq!(hub.open_requests().len(), 1);
    hub.respond(TOKEN_URL, json_response(200, &token("at", None, 3600)));
    assert_eq!(last_status(&mut hub).0, ConnectorStatus::UpAndRunning);
}

#[test]
fn jwt_bearer_presents_the_assertion_with_basic_client_auth() {
    let mut hub = hub(&[("flow", "jwt"), ("secret", "s:ecret"), ("auth", "basic")]);
    let sent = hub.open_requests();
    let body = sent[0].body_text();
    assert_eq!(
        form(&body, "grant_type").as_deref(),
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    );
    assert_eq!(form(&body, "assertion").as_deref(), Some("eyJ.signed.jwt"));
    assert_eq!(form(&body, "client_secret"), None, "Basic, not in the body");
    // base64("app-id:s%3Aecret"): the parts are form-encoded first.
    assert_eq!(
        sent[0].header("authorization"),
        Some("Basic YXBwLWlkOnMlM0FlY3JldA==")
    );
    hub.respond(
        TOKEN_URL,
        json_response(
            400,
            r#"{"error":"invalid_grant","error_description":"JWT expired"}"#,
        ),
    );
    let (status, detail) = last_status(&mut hub);
    assert_eq!(status, ConnectorStatus::Forbidden);
    assert!(
        detail
            .unwrap()
            .contains("jwt-bearer grant: invalid_grant: JWT expired")
    );
}

#[test]
fn authorization_code_with_pkce_rotates_refresh_tokens_and_asks_again_when_refused() {
    let mut hub = hub(&[("flow", "code"), ("secret", "cs")]);
    assert!(hub.open_requests().is_empty(), "waits for the operator");
    assert_eq!(last_status(&mut hub).0, ConnectorStatus::LoginRequired);
    let step = login_steps(&mut hub).pop().flatten().expect("a login step");
    let url = step.url.expect("the authorization URL");
    let query = url
        .strip_prefix(&format!("{AUTHORIZE_URL}?"))
        .expect("on the endpoint");
    assert_eq!(form(query, "response_type").as_deref(), Some("code"));
    assert_eq!(form(query, "redirect_uri").as_deref(), Some(REDIRECT));
    assert_eq!(
        form(query, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let challenge = form(query, "code_challenge").unwrap();
    let state = form(query, "state").unwrap();

    let mut callback = crate::testkit::webhook("GET", "/auth/callback", &[], b"");
    callback.query = "code=abc&state=forged".into();
    assert_eq!(hub.webhook(callback.clone()).status, 400);
    assert!(hub.open_requests().is_empty());
    callback.query = format!("code=abc%2B1&state={state}");
    assert_eq!(hub.webhook(callback.clone()).status, 200);
    let body = hub.open_requests()[0].body_text();
    assert_eq!(
        form(&body, "grant_type").as_deref(),
        Some("authorization_code")
    );
    assert_eq!(form(&body, "code").as_deref(), Some("abc+1"));
    assert_eq!(form(&body, "redirect_uri").as_deref(), Some(REDIRECT));
    let verifier = form(&body, "code_verifier").expect("the PKCE verifier");
    assert_eq!(verifier.len(), 43);
    assert_eq!(
        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
        challenge
    );
    hub.respond(
        TOKEN_URL,
        json_response(200, &token("at1", Some("rt1"), 3600)),
    );
    assert_eq!(last_status(&mut hub).0, ConnectorStatus::UpAndRunning);
    assert_eq!(
        login_steps(&mut hub).last(),
        Some(&None),
        "the login step is cleared"
    );
    // The code is used: the redirect again finds no login pending.
    assert_eq!(hub.webhook(callback).status, 409);

    hub.advance(3_300_000);
    let body = hub.open_requests()[0].body_text();
    assert_eq!(form(&body, "grant_type").as_deref(), Some("refresh_token"));
    assert_eq!(form(&body, "refresh_token").as_deref(), Some("rt1"));
    assert_eq!(form(&body, "client_secret").as_deref(), Some("cs"));
    hub.respond(
        TOKEN_URL,
        json_response(200, &token("at2", Some("rt2"), 3600)),
    );
    let stored = hub.host().kv.get("oauth/demo").cloned().unwrap();
    assert!(
        String::from_utf8_lossy(&stored).contains("rt2"),
        "the rotated token is kept"
    );
    hub.advance(3_300_000);
    let body = hub.open_requests()[0].body_text();
    assert_eq!(form(&body, "refresh_token").as_deref(), Some("rt2"));
    hub.respond(
        TOKEN_URL,
        json_response(
            400,
            r#"{"error":"invalid_grant","error_description":"AADSTS70008: expired"}"#,
        ),
    );
    let (status, detail) = last_status(&mut hub);
    assert_eq!(status, ConnectorStatus::LoginRequired);
    assert!(detail.unwrap().contains("refresh token was refused"));
    assert!(
        !hub.host().kv.contains_key("oauth/demo"),
        "the refused tokens are forgotten"
    );
    let step = login_steps(&mut hub)
        .pop()
        .flatten()
        .expect("a new login step");
    assert_ne!(form(step.url.as_deref().unwrap(), "state"), Some(state));
}

#[test]
fn device_code_shows_the_code_polls_slows_down_and_renews_an_expired_code() {
    let mut hub = hub(&[("flow", "device")]);
    let sent = hub.open_requests();
    assert_eq!(sent[0].request.url, DEVICE_URL);
    assert_eq!(
        form(&sent[0].body_text(), "client_id").as_deref(),
        Some("app-id")
    );
    hub.respond(
        DEVICE_URL,
        json_response(200, r#"{"device_code":"dc1","user_code":"ABCD-EFGH","verification_uri":"https://id.example.com/device","expires_in":900,"interval":5}"#),
    );
    assert_eq!(last_status(&mut hub).0, ConnectorStatus::LoginRequired);
    let step = login_steps(&mut hub).pop().flatten().unwrap();
    assert_eq!(step.user_code.as_deref(), Some("ABCD-EFGH"));
    assert_eq!(step.url.as_deref(), Some("https://id.example.com/device"));
    assert_eq!(step.expires_at, Some(EPOCH_MS + 900_000));
    assert!(step.message.contains("ABCD-EFGH"));

    hub.advance(4_999);
    assert!(hub.open_requests().is_empty());
    hub.advance(1);
    let body = hub.open_requests()[0].body_text();
    assert_eq!(
        form(&body, "grant_type").as_deref(),
        Some(GRANT_DEVICE_CODE)
    );
    assert_eq!(form(&body, "device_code").as_deref(), Some("dc1"));
    hub.respond(
        TOKEN_URL,
        json_response(400, r#"{"error":"authorization_pending"}"#),
    );
    hub.advance(5_000);
    hub.respond(TOKEN_URL, json_response(400, r#"{"error":"slow_down"}"#));
    hub.advance(9_999);
    assert!(
        hub.open_requests().is_empty(),
        "slow_down adds five seconds"
    );
    hub.advance(1);
    hub.respond(
        TOKEN_URL,
        json_response(400, r#"{"error":"expired_token"}"#),
    );
    let sent = hub.open_requests();
    assert_eq!(sent[0].request.url, DEVICE_URL, "a new code is asked for");
    hub.respond(
        DEVICE_URL,
        json_response(200, r#"{"device_code":"dc2","user_code":"IJKL","verification_uri":"https://id.example.com/device"}"#),
    );
    hub.advance(DEVICE_INTERVAL_S * 1000);
    assert_eq!(
        form(&hub.open_requests()[0].body_text(), "device_code").as_deref(),
        Some("dc2")
    );
    hub.respond(
        TOKEN_URL,
        json_response(200, &token("at", Some("rt"), 3600)),
    );
    assert_eq!(last_status(&mut hub).0, ConnectorStatus::UpAndRunning);
    assert_eq!(login_steps(&mut hub).last(), Some(&None));
    // Polling stopped.
    hub.advance(60_000);
    assert!(hub.open_requests().is_empty());
}

#[test]
fn stored_tokens_are_reused_only_by_the_same_configuration() {
    let mut first = hub(&[("flow", "client_credentials"), ("secret", "s")]);
    first.respond(TOKEN_URL, json_response(200, &token("at", None, 3600)));
    let kv = first.host().kv.clone();

    let mut same = TestHub::<Demo>::new();
    same.host().kv = kv.clone();
    same.configure(&[("flow", text("client_credentials")), ("secret", text("s"))])
        .unwrap();
    assert!(same.requests().is_empty(), "the stored token is used");
    let now = same.now();
    assert_eq!(
        same.connector().unwrap().oauth.access_token(now),
        Some("at")
    );
    // A restored token is renewed ahead of its expiry too.
    same.advance(3_300_000 - 1);
    assert!(same.requests().is_empty());
    same.advance(1);
    assert_eq!(token_bodies(&mut same).len(), 1);

    let mut changed = TestHub::<Demo>::new();
    changed.host().kv = kv;
    changed
        .configure(&[
            ("flow", text("client_credentials")),
            ("secret", text("other")),
        ])
        .unwrap();
    assert_eq!(
        token_bodies(&mut changed).len(),
        1,
        "a new secret gets a new token"
    );
}

#[test]
fn debug_output_leaves_secrets_and_tokens_out() {
    let mut client = TokenClient::new(
        OAuthConfig::new(
            "x",
            TOKEN_URL,
            "id",
            Flow::JwtBearer {
                assertion: "JWTJWT".into(),
            },
        )
        .secret("SECRET", ClientAuth::Post),
    );
    client.ensure(0, &mut |n| vec![7; n as usize]);
    let steps = client.take_steps();
    assert!(matches!(&steps[0], Step::Send(CallKind::Token, _)));
    let event = client.on_response(
        CallKind::Token,
        Ok((200, &[], token("TOKEN", Some("REFRESH"), 60).as_bytes())),
        0,
        &mut |n| vec![7; n as usize],
    );
    assert_eq!(event, TokenEvent::Obtained);
    let shown = format!("{client:?} {:?} {steps:?}", client.take_steps());
    for secret in ["SECRET", "JWTJWT", "TOKEN", "REFRESH"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    // A 60 s token renews at 40 s and is not sent in its last 6 s.
    let t = client.tokens().unwrap();
    assert_eq!(t.refresh_at(), 40_000);
    assert!(client.access_token(53_999).is_some());
    assert!(client.access_token(54_000).is_none());
}

#[test]
fn a_refused_token_is_replaced_at_once_a_refused_replacement_only_after_a_minute() {
    let mut client = TokenClient::new(
        OAuthConfig::new("x", TOKEN_URL, "id", Flow::ClientCredentials)
            .secret("s", ClientAuth::Post),
    );
    let rng = &mut |n: u32| vec![1; n as usize];
    let sent = |client: &mut TokenClient| {
        client
            .take_steps()
            .iter()
            .filter(|s| matches!(s, Step::Send(..)))
            .count()
    };
    let obtain = |client: &mut TokenClient, now: u64, rng: Rng<'_>| {
        let body = token("t", None, 3600);
        let answer = Ok((200, &[][..], body.as_bytes()));
        assert_eq!(
            client.on_response(CallKind::Token, answer, now, rng),
            TokenEvent::Obtained
        );
    };
    client.ensure(0, rng);
    assert_eq!(sent(&mut client), 1);
    obtain(&mut client, 0, rng);
    client.rejected(1_000, rng);
    assert_eq!(sent(&mut client), 1, "replaced at once");
    assert_eq!(
        client.access_token(1_000),
        None,
        "the refused token is not sent"
    );
    obtain(&mut client, 1_000, rng);
    client.rejected(2_000, rng);
    assert_eq!(
        sent(&mut client),
        0,
        "the replacement was refused too: wait"
    );
    client.rejected(2_500, rng);
    assert_eq!(sent(&mut client), 0);
    client.on_timer(TimerKind::Renew, 60_999, rng);
    assert_eq!(sent(&mut client), 0);
    client.on_timer(TimerKind::Renew, 61_000, rng);
    assert_eq!(
        sent(&mut client),
        1,
        "a minute after the replacement was issued"
    );
}

// ---- options, driven through the pure methods ---------------------------

fn jwt_client(cfg: impl FnOnce(OAuthConfig) -> OAuthConfig) -> TokenClient {
    let flow = Flow::JwtBearer {
        assertion: "eyJ.signed.jwt".into(),
    };
    let base =
        OAuthConfig::new("rc", TOKEN_URL, "app-id", flow).secret("s3cret", ClientAuth::Basic);
    TokenClient::new(cfg(base))
}

fn no_rng() -> impl FnMut(u32) -> Vec<u8> {
    |n| vec![7; n as usize]
}

/// Answers the request in flight with `body` (200) and returns the steps.
fn answer(client: &mut TokenClient, body: &str, now: u64) -> Vec<Step> {
    let event = client.on_response(
        CallKind::Token,
        Ok((200, &[], body.as_bytes())),
        now,
        &mut no_rng(),
    );
    assert_eq!(event, TokenEvent::Obtained);
    client.take_steps()
}

fn sent_grants(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Send(_, r) => form(&String::from_utf8_lossy(&r.body), "grant_type"),
            _ => None,
        })
        .collect()
}

fn renew_timer(steps: &[Step]) -> Option<u64> {
    steps.iter().find_map(|s| match s {
        Step::SetTimer(TimerKind::Renew, ms) => Some(*ms),
        _ => None,
    })
}

#[test]
fn renew_ahead_sets_when_an_hours_token_is_renewed() {
    let t0 = EPOCH_MS;
    // The default: a third of the life, at most five minutes.
    let mut default = jwt_client(|c| c);
    default.ensure(t0, &mut no_rng());
    default.take_steps();
    let steps = answer(&mut default, &token("at-1", None, 3600), t0);
    assert_eq!(renew_timer(&steps), Some(55 * 60_000));
    // A fifth, at most ten minutes: at 50 minutes.
    let mut early = jwt_client(|c| c.renew_ahead(5, 10 * 60_000));
    early.ensure(t0, &mut no_rng());
    early.take_steps();
    let steps = answer(&mut early, &token("at-1", None, 3600), t0);
    assert_eq!(renew_timer(&steps), Some(50 * 60_000));
    // A short life: a fifth of 100 s.
    let mut short = jwt_client(|c| c.renew_ahead(5, 10 * 60_000));
    short.ensure(t0, &mut no_rng());
    short.take_steps();
    let steps = answer(&mut short, &token("at-1", None, 100), t0);
    assert_eq!(renew_timer(&steps), Some(80_000));
    // The renewal timer then renews (at 50 minutes, not before).
    early.on_timer(TimerKind::Renew, t0 + 50 * 60_000 - 1, &mut no_rng());
    assert!(sent_grants(&early.take_steps()).is_empty(), "too early");
    early.on_timer(TimerKind::Renew, t0 + 50 * 60_000, &mut no_rng());
    assert_eq!(
        sent_grants(&early.take_steps()),
        ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    );
    // Restored tokens keep the option's timing.
    let mut restored = jwt_client(|c| c.renew_ahead(5, 10 * 60_000));
    let stored = early_store(&steps_of_sign_in(|c| c.renew_ahead(5, 10 * 60_000), t0));
    assert!(restored.restore(Some(&stored), t0 + 60_000));
    assert_eq!(renew_timer(&restored.take_steps()), Some(49 * 60_000));
}

fn steps_of_sign_in(cfg: impl FnOnce(OAuthConfig) -> OAuthConfig, t0: u64) -> Vec<Step> {
    let mut client = jwt_client(cfg);
    client.ensure(t0, &mut no_rng());
    client.take_steps();
    answer(&mut client, &token("at-1", Some("rt-1"), 3600), t0)
}

fn early_store(steps: &[Step]) -> Vec<u8> {
    steps
        .iter()
        .find_map(|s| match s {
            Step::Store(Some(b)) => Some(b.clone()),
            _ => None,
        })
        .expect("stored")
}

#[test]
fn an_expired_refresh_token_is_not_sent() {
    let t0 = EPOCH_MS;
    let mut client = jwt_client(|c| c);
    client.ensure(t0, &mut no_rng());
    client.take_steps();
    let body = r#"{"access_token":"at-1","expires_in":3600,"refresh_token":"rt-1","refresh_token_expires_in":"7200"}"#;
    let steps = answer(&mut client, body, t0);
    let tokens = client.tokens().unwrap();
    assert_eq!(tokens.refresh_expires_at, Some(t0 + 7_200_000));
    // Kept in the store, so it survives a restart.
    let stored = String::from_utf8(early_store(&steps)).unwrap();
    assert!(stored.contains("\"refresh_expires_at\""), "{stored}");
    // Renewed with the refresh token while it lives.
    client.on_timer(TimerKind::Renew, t0 + 3_300_000, &mut no_rng());
    assert_eq!(sent_grants(&client.take_steps()), ["refresh_token"]);
    // An answer without a refresh token keeps the old one, with its expiry.
    answer(&mut client, &token("at-2", None, 3600), t0 + 3_300_000);
    assert_eq!(
        client.tokens().unwrap().refresh_expires_at,
        Some(t0 + 7_200_000)
    );
    // Past its expiry the grant is presented again instead.
    client.invalidate();
    client.ensure(t0 + 7_200_000, &mut no_rng());
    assert_eq!(
        sent_grants(&client.take_steps()),
        ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    );
}

#[test]
fn deferred_clients_wait_for_the_budget_and_say_whether_they_would_send() {
    let t0 = EPOCH_MS;
    let mut client = jwt_client(|c| c);
    assert!(client.would_send(t0));
    client.defer_until(t0 + 30_000);
    assert!(!client.would_send(t0));
    client.ensure(t0, &mut no_rng());
    let steps = client.take_steps();
    assert!(sent_grants(&steps).is_empty(), "{steps:?}");
    assert_eq!(renew_timer(&steps), Some(30_000));
    assert!(client.would_send(t0 + 30_000));
    client.ensure(t0 + 30_000, &mut no_rng());
    assert_eq!(sent_grants(&client.take_steps()).len(), 1);
    // In flight: nothing more would go; with a fresh token neither.
    assert!(!client.would_send(t0 + 30_000));
    answer(&mut client, &token("at-1", None, 3600), t0 + 30_000);
    assert!(!client.would_send(t0 + 31_000));
    // An authorization-code client without tokens shows a link, sends nothing.
    let code = TokenClient::new(OAuthConfig::new(
        "code",
        TOKEN_URL,
        "app-id",
        Flow::AuthorizationCode {
            authorize_url: AUTHORIZE_URL.into(),
            redirect_uri: REDIRECT.into(),
            pkce: true,
        },
    ));
    assert!(!code.would_send(t0));
}

#[test]
fn adopted_tokens_are_stored_in_the_clients_format_and_renewed() {
    let t0 = EPOCH_MS;
    let mut client = jwt_client(|c| c.renew_ahead(5, 10 * 60_000));
    client.adopt(
        Tokens {
            access_token: "at-old".into(),
            refresh_token: Some("rt-old".into()),
            expires_at: t0 + 3_600_000,
            obtained_at: t0,
            scope: None,
            refresh_expires_at: None,
        },
        t0 + 600_000,
    );
    assert_eq!(client.access_token(t0 + 600_000), Some("at-old"));
    let steps = client.take_steps();
    assert_eq!(renew_timer(&steps), Some(40 * 60_000));
    let stored = early_store(&steps);
    // A restart takes them from the client's own key.
    let mut again = jwt_client(|c| c.renew_ahead(5, 10 * 60_000));
    assert!(again.restore(Some(&stored), t0 + 700_000));
    assert_eq!(again.access_token(t0 + 700_000), Some("at-old"));
}
