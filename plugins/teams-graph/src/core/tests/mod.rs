//! Engine tests: the core driven by hand-written answers, no host involved.

use presence_connector_sdk::{
    Activity, Availability, Config, ConfigEntry, ConfigValue, ConnectorError, ConnectorStatus,
    EndpointState, PresenceIntent, PresenceUpdate, UpdateOrigin, WriteAction, WriteFailure,
    WriteId, WriteOutcome, WriteRequest,
};
use serde_json::{Value, json};

use super::*;
use presence_connector_sdk::plain::Core as _;

mod directory;
mod fuzz;
mod goodbye;
mod lookups;
mod reads;
mod safety;
mod sessions;

const T0: u64 = 1_767_264_900_000;
const CLIENT: &str = "22553876-f5ab-4529-bffb-cfe50aa89f87";
const SECRET: &str = "s3cret-value";
const GRAPH: &str = "https://graph.microsoft.com/v1.0";
const NOTIFY: &str = "https://hub.example.com/hooks/teams/notify";

/// Settings for the simulated tenant with `extra` fields on top. The user
/// directory is off unless `extra` turns it on (`("directory", "true")`),
/// so tests of other things see only their own requests.
fn settings(extra: &[(&str, &str)]) -> Settings {
    let mut entries = vec![
        ("tenant_id", "contoso.onmicrosoft.com"),
        ("client_id", CLIENT),
        ("client_secret", SECRET),
    ];
    if !extra.iter().any(|(k, _)| *k == "directory") {
        entries.push(("directory", "false"));
    }
    entries.extend_from_slice(extra);
    let entries = entries
        .into_iter()
        .map(|(k, v)| ConfigEntry {
            name: k.into(),
            value: if k.ends_with("_seconds") || k.ends_with("_minutes") {
                ConfigValue::Integer(v.parse().unwrap())
            } else if k == "directory" {
                ConfigValue::Boolean(v.parse().unwrap())
            } else {
                ConfigValue::Text(v.into())
            },
        })
        .collect();
    Settings::from_config(&Config::new(entries), None).unwrap()
}

/// Distinct, predictable "random" bytes.
fn entropy() -> Entropy {
    let mut n = 0u8;
    Box::new(move |len| {
        n = n.wrapping_add(1);
        vec![n; len as usize]
    })
}

fn guid(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

fn resp(status: u16, body: Value) -> Result<Response, String> {
    Ok(Response {
        status,
        headers: vec![],
        body: if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&body).unwrap()
        },
    })
}

/// A core and a clock.
struct H {
    core: Core,
    now: u64,
    log: Vec<Action>,
}

impl H {
    fn new(s: Settings, stored: Stored) -> H {
        let mut core = Core::new(s, stored, T0, entropy());
        core.start(T0);
        H {
            core,
            now: T0,
            log: Vec::new(),
        }
    }

    fn take(&mut self) -> Vec<Action> {
        let a = self.core.take_actions();
        self.log.extend(a.iter().cloned());
        a
    }

    fn requests(&mut self) -> Vec<(ReqId, Request)> {
        self.take()
            .into_iter()
            .filter_map(|a| match a {
                Action::Http(id, r) => Some((id, r)),
                _ => None,
            })
            .collect()
    }

    fn answer(&mut self, id: ReqId, r: Result<Response, String>) {
        self.core.on_http(id, r, self.now);
    }

    fn timer(&mut self, key: TimerKey) {
        self.core.on_timer(key, self.now);
    }

    /// Answer the pending token request with a token of `life` seconds.
    fn token(&mut self, reqs: &[(ReqId, Request)], life: u64, refresh: Option<&str>) {
        let (id, _) = reqs
            .iter()
            .find(|(_, r)| r.url.ends_with("/oauth2/v2.0/token"))
            .expect("a token request");
        let mut body =
            json!({"token_type": "Bearer", "expires_in": life, "access_token": format!("at-{id}")});
        if let Some(r) = refresh {
            body["refresh_token"] = json!(r);
        }
        self.answer(*id, resp(200, body));
    }

    fn statuses(&mut self) -> Vec<(ConnectorStatus, Option<String>)> {
        self.take();
        self.log
            .iter()
            .filter_map(|a| match a {
                Action::Status(s, d) => Some((*s, d.clone())),
                _ => None,
            })
            .collect()
    }

    fn last_status(&mut self) -> (ConnectorStatus, Option<String>) {
        self.statuses().last().cloned().expect("a status")
    }

    /// Every write outcome reported so far, in order.
    fn outcomes(&mut self) -> Vec<(WriteId, WriteOutcome)> {
        self.take();
        self.log
            .iter()
            .filter_map(|a| match a {
                Action::WriteOutcome(id, o) => Some((*id, o.clone())),
                _ => None,
            })
            .collect()
    }

    /// The presence updates reported since the last look.
    fn updates(&mut self) -> Vec<PresenceUpdate> {
        self.take()
            .into_iter()
            .filter_map(|a| match a {
                Action::Presence(u) => Some(u),
                _ => None,
            })
            .collect()
    }

    /// The duration the timer `key` was last set to.
    fn last_timer(&mut self, key: &TimerKey) -> u64 {
        self.take();
        self.log
            .iter()
            .rev()
            .find_map(|a| match a {
                Action::SetTimer(k, ms) if k == key => Some(*ms),
                _ => None,
            })
            .expect("the timer was set")
    }

    fn write(&mut self, id: WriteId, endpoint: &str, action: WriteAction) {
        let req = WriteRequest {
            id,
            endpoint: endpoint.into(),
            action,
        };
        self.core.write_presence(req, self.now).unwrap();
    }
}

/// The look-ups in a JSON batch request: (id, url) in order.
fn lookups(r: &Request) -> Vec<(String, String)> {
    assert_eq!(r.url, format!("{GRAPH}/$batch"));
    assert_eq!(r.method, "POST");
    body(r)["requests"]
        .as_array()
        .expect("a batch")
        .iter()
        .map(|q| {
            assert_eq!(q["method"], "GET");
            (
                q["id"].as_str().unwrap().to_string(),
                q["url"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A JSON batch answer: (request id, status, body) each.
fn batch_answer(items: &[(&str, u16, Value)]) -> Result<Response, String> {
    let responses: Vec<Value> = items
        .iter()
        .map(|(id, status, b)| json!({"id": id, "status": status, "headers": {"Content-Type": "application/json"}, "body": b}))
        .collect();
    resp(200, json!({ "responses": responses }))
}

/// Answer a presence read of `id` (alone or not) with `availability`.
fn read_ok(h: &mut H, req: ReqId, ids: &[String], availability: &str) {
    let value: Vec<Value> = ids
        .iter()
        .map(|i| json!({"id": i, "availability": availability, "activity": availability}))
        .collect();
    h.answer(req, resp(200, json!({ "value": value })));
}

fn form(r: &Request) -> String {
    String::from_utf8(r.body.clone()).unwrap()
}

fn body(r: &Request) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

/// Signed in with client credentials, `ids` watched and read once.
fn app_with_users(ids: &[String]) -> H {
    let mut h = H::new(settings(&[]), Stored::default());
    let reqs = h.requests();
    h.token(&reqs, 3600, None);
    h.core.watch(ids, h.now);
    h.timer(TimerKey::ReadSoon);
    h
}

#[test]
fn client_credentials_token_request_and_no_secret_in_logs() {
    let mut h = H::new(settings(&[]), Stored::default());
    let reqs = h.requests();
    let all: Vec<Action> = h.log.clone();
    let (_, r) = reqs
        .iter()
        .find(|(_, r)| r.url.ends_with("/token"))
        .expect("token request");
    assert_eq!(
        r.url,
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    );
    let f = form(r);
    assert!(f.contains("grant_type=client_credentials"), "{f}");
    assert!(
        f.contains("scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"),
        "{f}"
    );
    assert!(f.contains(&format!("client_secret={SECRET}")));
    for a in all {
        if let Action::Log(_, m) | Action::Status(_, Some(m)) = a {
            assert!(!m.contains(SECRET), "{m}");
        }
    }
    assert_eq!(h.last_status().0, ConnectorStatus::ConnectionError);
}

#[test]
fn first_state_reads_in_batches_of_650_and_maps() {
    let ids: Vec<String> = (0..700).map(guid).collect();
    let mut h = app_with_users(&ids);
    let reqs = h.requests();
    let reads: Vec<_> = reqs
        .iter()
        .filter(|(_, r)| r.url == format!("{GRAPH}/communications/getPresencesByUserId"))
        .collect();
    assert_eq!(reads.len(), 2);
    assert_eq!(body(&reads[0].1)["ids"].as_array().unwrap().len(), 650);
    assert_eq!(body(&reads[1].1)["ids"].as_array().unwrap().len(), 50);
    assert!(
        reads[0]
            .1
            .headers
            .iter()
            .any(|(k, v)| k == "Authorization" && v.starts_with("Bearer at-"))
    );
    // The second batch: one in a call, the rest unknown to Graph.
    let answer = json!({"value": [
        {"id": guid(650).to_uppercase(), "availability": "Busy", "activity": "InACall", "sequenceNumber": "0000000007"}
    ]});
    h.answer(reads[1].0, resp(200, answer));
    let actions = h.take();
    let update = actions
        .iter()
        .find_map(|a| match a {
            Action::Presence(u) if u.endpoint == guid(650) => Some(u.clone()),
            _ => None,
        })
        .expect("a presence update");
    let rich = update.rich.unwrap();
    assert_eq!(rich.availability, Availability::Busy);
    assert_eq!(rich.activity, Some(Activity::InACall));
    // Graph's sequenceNumber orders reads inside the connector only.
    assert_eq!(update.ordering, None);
    assert_eq!(update.origin, UpdateOrigin::Platform);
    assert!(
        update
            .raw
            .iter()
            .any(|v| v.name == "activity" && v.value == "InACall")
    );
    let not_found = actions
        .iter()
        .filter(|a| matches!(a, Action::EndpointState(_, EndpointState::NotFound, _)))
        .count();
    assert_eq!(not_found, 49);
    let (st, detail) = h.last_status();
    assert_eq!(st, ConnectorStatus::UpAndRunning);
    assert!(detail.unwrap().contains("49 not found"));
}

#[test]
fn older_sequence_numbers_are_dropped() {
    let ids = vec![guid(1)];
    let mut h = app_with_users(&ids);
    let reqs = h.requests();
    let p = |seq: &str, act: &str| json!({"value": [{"id": guid(1), "availability": "Busy", "activity": act, "sequenceNumber": seq}]});
    h.answer(reqs[0].0, resp(200, p("0000000009", "InACall")));
    h.take();
    h.core.to_read.insert(guid(1));
    h.core.pump(h.now);
    let reqs = h.requests();
    h.answer(reqs[0].0, resp(200, p("0000000008", "InAMeeting")));
    let stale = h
        .take()
        .into_iter()
        .any(|a| matches!(a, Action::Presence(_)));
    assert!(!stale, "an older read overwrote a newer state");
}

#[test]
fn retry_after_is_honoured_and_throttling_shown() {
    let ids = vec![guid(1)];
    let mut h = app_with_users(&ids);
    let reqs = h.requests();
    h.answer(
        reqs[0].0,
        Ok(Response {
            status: 429,
            headers: vec![("Retry-After".into(), "3".into())],
            body: vec![],
        }),
    );
    let actions = h.take();
    assert!(actions.contains(&Action::SetTimer(TimerKey::Gate, 3000)));
    let (st, detail) = h.last_status();
    assert_eq!(st, ConnectorStatus::Throttled);
    assert!(detail.unwrap().contains("429"));
    // Nothing goes to Graph while the gate is closed, whatever asks.
    h.now += 1000;
    h.timer(TimerKey::Poll);
    assert!(h.requests().is_empty());
    h.now += 2000;
    h.timer(TimerKey::Gate);
    let reqs = h.requests();
    assert_eq!(reqs.len(), 1, "the read is sent again after the wait");
    h.answer(
        reqs[0].0,
        resp(
            200,
            json!({"value": [{"id": guid(1), "availability": "Away", "activity": "Away"}]}),
        ),
    );
    assert_eq!(h.last_status().0, ConnectorStatus::UpAndRunning);
}

#[test]
fn throttling_without_retry_after_backs_off_exponentially() {
    let ids = vec![guid(1)];
    let mut h = app_with_users(&ids);
    let mut waits = Vec::new();
    for _ in 0..4 {
        let reqs = h.requests();
        let reqs: Vec<_> = reqs
            .into_iter()
            .filter(|(_, r)| r.url.contains("getPresences"))
            .collect();
        h.answer(reqs[0].0, resp(503, Value::Null));
        let wait = h.take().into_iter().find_map(|a| match a {
            Action::SetTimer(TimerKey::Gate, ms) => Some(ms),
            _ => None,
        });
        let wait = wait.expect("a back-off");
        waits.push(wait);
        h.now += wait;
        h.timer(TimerKey::Gate);
    }
    assert_eq!(waits, vec![2000, 2000, 4000, 8000]);
}

#[test]
fn tokens_are_refreshed_ahead_of_expiry_and_after_a_401() {
    let mut h = H::new(settings(&[]), Stored::default());
    let reqs = h.requests();
    h.token(&reqs, 6, None);
    let actions = h.take();
    // 6 s token: refreshed at two thirds of its life.
    assert!(actions.contains(&Action::SetTimer(
        TimerKey::OAuth(Slot::Primary, TimerKind::Renew),
        4000
    )));
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::KvSet(k, _) if k == keys::TOKEN_PRIMARY))
    );
    h.now += 4000;
    h.timer(TimerKey::OAuth(Slot::Primary, TimerKind::Renew));
    let reqs = h.requests();
    assert_eq!(reqs.len(), 1, "a new token is asked for");
    h.token(&reqs, 3600, None);
    // A 401 on a read: the token is replaced and the read sent again.
    h.core.watch(&[guid(1)], h.now);
    h.timer(TimerKey::ReadSoon);
    let reqs = h.requests();
    h.answer(
        reqs[0].0,
        resp(
            401,
            json!({"error": {"code": "InvalidAuthenticationToken", "message": "expired"}}),
        ),
    );
    let reqs = h.requests();
    assert!(reqs[0].1.url.ends_with("/token"), "{reqs:?}");
    h.token(&reqs, 3600, None);
    let reqs = h.requests();
    assert!(reqs[0].1.url.ends_with("getPresencesByUserId"));
}

#[test]
fn stored_tokens_are_used_and_foreign_ones_ignored() {
    let s = settings(&[("auth_flow", "device-code"), ("client_secret", "")]);
    // What a first run signed in by device code stored.
    let mut first = H::new(s.clone(), Stored::default());
    let reqs = first.requests();
    first.answer(
        reqs[0].0,
        resp(200, json!({"device_code": "dc", "user_code": "U", "verification_uri": "https://x", "interval": 1})),
    );
    first.timer(TimerKey::OAuth(Slot::Primary, TimerKind::DevicePoll));
    let reqs = first.requests();
    first.token(&reqs, 3600, Some("rt"));
    let stored = first
        .take()
        .into_iter()
        .find_map(|a| match a {
            Action::KvSet(k, v) if k == keys::TOKEN_PRIMARY => Some(v),
            _ => None,
        })
        .expect("tokens stored");
    let mut h = H::new(
        s.clone(),
        Stored {
            primary: Some(stored.clone()),
            ..Stored::default()
        },
    );
    h.core.watch(&[guid(1)], h.now);
    h.timer(TimerKey::ReadSoon);
    let reqs = h.requests();
    assert_eq!(reqs.len(), 1);
    assert!(
        reqs[0].1.url.ends_with("getPresencesByUserId"),
        "no new sign-in: {reqs:?}"
    );
    assert!(
        reqs[0]
            .1
            .headers
            .iter()
            .any(|(_, v)| v.starts_with("Bearer at-"))
    );
    // Another tenant's tokens: a new sign-in instead.
    let other = settings(&[
        ("auth_flow", "device-code"),
        ("client_secret", ""),
        ("tenant_id", "fabrikam.onmicrosoft.com"),
    ]);
    let mut h = H::new(
        other,
        Stored {
            primary: Some(stored),
            ..Stored::default()
        },
    );
    let reqs = h.requests();
    assert!(reqs[0].1.url.ends_with("/devicecode"), "{reqs:?}");
}

fn device_flow() -> H {
    H::new(
        settings(&[
            ("auth_flow", "device-code"),
            ("client_secret", ""),
            ("notification_url", NOTIFY),
        ]),
        Stored::default(),
    )
}

#[test]
fn device_code_sign_in_polls_at_the_interval() {
    let mut h = device_flow();
    let reqs = h.requests();
    assert!(reqs[0].1.url.ends_with("/oauth2/v2.0/devicecode"));
    assert!(form(&reqs[0].1).contains("offline_access"));
    h.answer(
        reqs[0].0,
        resp(200, json!({"device_code": "dc", "user_code": "ABCD-EFGH", "verification_uri": "https://microsoft.com/devicelogin", "expires_in": 900, "interval": 5, "message": "To sign in, enter ABCD-EFGH"})),
    );
    let actions = h.take();
    let step = actions.iter().find_map(|a| match a {
        Action::LoginStep(Some(s)) => Some(s.clone()),
        _ => None,
    });
    let step = step.expect("a login step");
    assert_eq!(step.user_code.as_deref(), Some("ABCD-EFGH"));
    assert_eq!(step.expires_at, Some(T0 + 900_000));
    assert!(actions.contains(&Action::SetTimer(
        TimerKey::OAuth(Slot::Primary, TimerKind::DevicePoll),
        5000
    )));
    assert_eq!(h.last_status().0, ConnectorStatus::LoginRequired);
    h.now += 5000;
    h.timer(TimerKey::OAuth(Slot::Primary, TimerKind::DevicePoll));
    let reqs = h.requests();
    assert!(form(&reqs[0].1).contains("device_code=dc"));
    assert!(!form(&reqs[0].1).contains("client_secret"));
    h.answer(reqs[0].0, resp(400, json!({"error": "slow_down"})));
    assert!(h.take().contains(&Action::SetTimer(
        TimerKey::OAuth(Slot::Primary, TimerKind::DevicePoll),
        10_000
    )));
    h.now += 10_000;
    h.timer(TimerKey::OAuth(Slot::Primary, TimerKind::DevicePoll));
    let reqs = h.requests();
    h.answer(
        reqs[0].0,
        resp(400, json!({"error": "authorization_pending"})),
    );
    assert!(h.take().contains(&Action::SetTimer(
        TimerKey::OAuth(Slot::Primary, TimerKind::DevicePoll),
        10_000
    )));
    h.now += 10_000;
    h.timer(TimerKey::OAuth(Slot::Primary, TimerKind::DevicePoll));
    let reqs = h.requests();
    h.token(&reqs, 3600, Some("rt-1"));
    let actions = h.take();
    assert!(actions.contains(&Action::LoginStep(None)));
    assert_eq!(h.last_status().0, ConnectorStatus::UpAndRunning);
}

#[test]
fn a_refused_refresh_token_asks_for_a_new_sign_in() {
    let mut h = device_flow();
    let reqs = h.requests();
    h.answer(
        reqs[0].0,
        resp(200, json!({"device_code": "dc", "user_code": "U", "verification_uri": "https://x", "interval": 1})),
    );
    h.timer(TimerKey::OAuth(Slot::Primary, TimerKind::DevicePoll));
    let reqs = h.requests();
    h.token(&reqs, 6, Some("rt-1"));
    h.now += 4000;
    h.timer(TimerKey::OAuth(Slot::Primary, TimerKind::Renew));
    let reqs = h.requests();
    assert!(form(&reqs[0].1).contains("grant_type=refresh_token"));
    assert!(form(&reqs[0].1).contains("refresh_token=rt-1"));
    h.answer(
        reqs[0].0,
        resp(
            400,
            json!({"error": "invalid_grant", "error_description": "AADSTS70008: expired"}),
        ),
    );
    let actions = h.take();
    assert!(actions.contains(&Action::KvDelete(keys::TOKEN_PRIMARY.into())));
    let reqs: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Http(_, r) => Some(r.url.clone()),
            _ => None,
        })
        .collect();
    assert!(reqs.iter().any(|u| u.ends_with("/devicecode")), "{reqs:?}");
}

#[test]
fn authorization_code_sign_in_shows_the_url_and_exchanges_the_code_with_pkce() {
    let redirect = "https://hub.example.com/hooks/teams/auth/callback";
    let mut h = H::new(
        settings(&[
            ("auth_flow", "authorization-code"),
            ("redirect_url", redirect),
        ]),
        Stored::default(),
    );
    let actions = h.take();
    let url = actions
        .iter()
        .find_map(|a| match a {
            Action::LoginStep(Some(step)) => step.url.clone(),
            _ => None,
        })
        .expect("the authorization URL as the login step");
    assert!(
        url.starts_with(
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize?"
        ),
        "{url}"
    );
    let query = url.split_once('?').unwrap().1;
    assert_eq!(
        urlcode::query_value(query, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let (status, detail) = h.last_status();
    assert_eq!(status, ConnectorStatus::LoginRequired, "{detail:?}");
    let state = urlcode::query_value(query, "state").unwrap();
    let callback = |query| Hook {
        method: "GET",
        path: "/auth/callback",
        query,
        body: b"",
    };
    let answer = h.core.on_webhook(&callback("code=c1&state=forged"), h.now);
    assert_eq!(answer.status, 400);
    assert!(h.requests().is_empty(), "a forged state exchanges nothing");
    let query = format!("code=c1&state={state}");
    assert_eq!(h.core.on_webhook(&callback(&query), h.now).status, 200);
    let reqs = h.requests();
    let body = form(&reqs[0].1);
    assert!(body.contains("grant_type=authorization_code"), "{body}");
    assert!(body.contains("code_verifier="), "{body}");
    assert!(body.contains("client_secret="), "a confidential client");
    h.token(&reqs, 3600, Some("rt"));
    assert_eq!(h.last_status().0, ConnectorStatus::UpAndRunning);
}

/// Device flow signed in, one user watched, its subscription created.
fn subscribed() -> (H, String, String) {
    let mut h = device_flow();
    let reqs = h.requests();
    h.answer(
        reqs[0].0,
        resp(200, json!({"device_code": "dc", "user_code": "U", "verification_uri": "https://x", "interval": 1})),
    );
    h.timer(TimerKey::OAuth(Slot::Primary, TimerKind::DevicePoll));
    let reqs = h.requests();
    h.token(&reqs, 3600, Some("rt"));
    h.core.watch(&[guid(1)], h.now);
    h.timer(TimerKey::ReadSoon);
    // Subscribed once the presence could be read.
    let reqs = h.requests();
    read_ok(&mut h, reqs[0].0, &[guid(1)], "Available");
    h.timer(TimerKey::Reconcile);
    let reqs = h.requests();
    let (id, create) = reqs
        .iter()
        .find(|(_, r)| r.url.ends_with("/subscriptions"))
        .expect("a subscription request")
        .clone();
    let b = body(&create);
    assert_eq!(b["changeType"], "updated");
    assert_eq!(b["notificationUrl"], NOTIFY);
    assert_eq!(b["lifecycleNotificationUrl"], NOTIFY);
    assert_eq!(
        b["resource"],
        format!("/communications/presences?$filter=id in ('{}')", guid(1))
    );
    assert_eq!(b["includeResourceData"], false);
    assert_eq!(
        b["expirationDateTime"],
        crate::time::format_rfc3339(T0 + 59 * 60_000)
    );
    let client_state = b["clientState"].as_str().unwrap().to_string();
    assert_eq!(client_state.len(), 32);
    h.answer(
        id,
        resp(201, json!({"id": "sub-1", "expirationDateTime": crate::time::format_rfc3339(T0 + 3_600_000)})),
    );
    (h, "sub-1".into(), client_state)
}

fn hook<'a>(query: &'a str, body: &'a [u8]) -> Hook<'a> {
    Hook {
        method: "POST",
        path: "/notify",
        query,
        body,
    }
}

#[test]
fn subscription_renewed_five_minutes_ahead() {
    let (mut h, _, _) = subscribed();
    let actions = h.take();
    let renew = actions.iter().find_map(|a| match a {
        Action::SetTimer(TimerKey::Renew(l), ms) => Some((*l, *ms)),
        _ => None,
    });
    let (local, ms) = renew.expect("a renewal timer");
    assert_eq!(ms, 55 * 60_000);
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::KvSet(k, _) if k == keys::SUBS))
    );
    h.now += ms;
    h.timer(TimerKey::Renew(local));
    let reqs = h.requests();
    let patch = reqs
        .iter()
        .find(|(_, r)| r.method == "PATCH")
        .expect("a PATCH");
    assert!(patch.1.url.ends_with("/subscriptions/sub-1"));
    // Gone on Graph's side: a new subscription.
    h.answer(
        patch.0,
        resp(
            404,
            json!({"error": {"code": "ResourceNotFound", "message": "gone"}}),
        ),
    );
    let reqs = h.requests();
    assert!(
        reqs.iter()
            .any(|(_, r)| r.method == "POST" && r.url.ends_with("/subscriptions"))
    );
}

#[test]
fn validation_token_is_echoed_as_plain_text() {
    let (mut h, _, _) = subscribed();
    let a = h.core.on_webhook(
        &hook(
            "validationToken=Validation%3A+Testing+client+application",
            b"",
        ),
        h.now,
    );
    assert_eq!(a.status, 200);
    assert!(a.content_type.starts_with("text/plain"));
    assert_eq!(a.body, b"Validation: Testing client application");
}

#[test]
fn notifications_need_the_client_state() {
    let (mut h, sub, cs) = subscribed();
    // The read after the subscription came into being.
    h.timer(TimerKey::ReadSoon);
    h.take();
    let n = |cs: &str| {
        serde_json::to_vec(&json!({"value": [{
            "subscriptionId": sub, "clientState": cs, "changeType": "updated",
            "resource": format!("communications/presences/{}", guid(1)),
            "resourceData": {"id": guid(1)}
        }]}))
        .unwrap()
    };
    let forged = n("guess");
    assert_eq!(h.core.on_webhook(&hook("", &forged), h.now).status, 403);
    assert!(
        !h.take()
            .contains(&Action::SetTimer(TimerKey::ReadSoon, READ_GATHER_MS))
    );
    let real = n(&cs);
    assert_eq!(h.core.on_webhook(&hook("", &real), h.now).status, 202);
    assert!(
        h.take()
            .contains(&Action::SetTimer(TimerKey::ReadSoon, READ_GATHER_MS))
    );
    h.timer(TimerKey::ReadSoon);
    let reqs = h.requests();
    assert_eq!(body(&reqs[0].1)["ids"], json!([guid(1)]));
    assert_eq!(h.core.on_webhook(&hook("", b"{"), h.now).status, 400);
}

#[test]
fn reauthorization_required_refreshes_then_reauthorizes() {
    let (mut h, sub, cs) = subscribed();
    h.take();
    let n = serde_json::to_vec(&json!({"value": [{
        "subscriptionId": sub, "clientState": cs, "lifecycleEvent": "reauthorizationRequired",
        "subscriptionExpirationDateTime": "2026-01-01T11:55:00.0000000Z"
    }]}))
    .unwrap();
    assert_eq!(h.core.on_webhook(&hook("", &n), h.now).status, 202);
    let reqs = h.requests();
    assert_eq!(reqs.len(), 1);
    assert!(form(&reqs[0].1).contains("grant_type=refresh_token"));
    h.token(&reqs, 3600, Some("rt-2"));
    let reqs = h.requests();
    let (id, r) = &reqs[0];
    assert_eq!(r.url, format!("{GRAPH}/subscriptions/sub-1/reauthorize"));
    h.answer(*id, resp(204, Value::Null));
    h.timer(TimerKey::ReadSoon);
    let reqs = h.requests();
    assert!(
        reqs[0].1.url.ends_with("getPresencesByUserId"),
        "re-read after the pause"
    );
}

#[test]
fn a_removed_subscription_comes_back_with_a_new_client_state() {
    let (mut h, sub, cs) = subscribed();
    h.take();
    let n = serde_json::to_vec(&json!({"value": [{
        "subscriptionId": sub, "clientState": cs, "lifecycleEvent": "subscriptionRemoved"
    }]}))
    .unwrap();
    assert_eq!(h.core.on_webhook(&hook("", &n), h.now).status, 202);
    let reqs = h.requests();
    let create = reqs
        .iter()
        .find(|(_, r)| r.method == "POST" && r.url.ends_with("/subscriptions"))
        .expect("a new subscription");
    let fresh = body(&create.1)["clientState"].as_str().unwrap().to_string();
    assert_eq!(fresh.len(), 32);
    assert_ne!(fresh, cs);
}

#[test]
fn client_credentials_poll_and_say_why() {
    let s = settings(&[("notification_url", NOTIFY)]);
    let mut h = H::new(s, Stored::default());
    let reqs = h.requests();
    h.token(&reqs, 3600, None);
    h.core.watch(&[guid(1)], h.now);
    h.timer(TimerKey::Reconcile);
    let reqs = h.requests();
    assert!(reqs.iter().all(|(_, r)| !r.url.ends_with("/subscriptions")));
    let (_, detail) = h.last_status();
    assert!(detail.unwrap().contains("need a delegated sign-in"));
}

fn intent(availability: Availability, activity: Option<Activity>) -> WriteAction {
    WriteAction::Set(PresenceIntent {
        availability,
        activity,
        note: None,
        dnd_scope: None,
        expires_in_ms: None,
    })
}

fn dnd() -> WriteAction {
    intent(Availability::DoNotDisturb, Some(Activity::InACall))
}

fn failed(outcome: &WriteOutcome) -> &WriteFailure {
    match outcome {
        WriteOutcome::Failed(f) => f,
        other => panic!("not a failure: {other:?}"),
    }
}

/// The write requests among `reqs`.
fn writes(reqs: &[(ReqId, Request)]) -> Vec<(ReqId, Request)> {
    reqs.iter()
        .filter(|(_, r)| r.url.contains("/presence/"))
        .cloned()
        .collect()
}

#[test]
fn write_back_pairs_session_id_and_keep_alive() {
    let mut h = app_with_users(&[guid(1)]);
    h.take();
    h.write(1, &guid(1), dnd());
    let reqs = h.requests();
    let (id, r) = &reqs[0];
    assert_eq!(
        r.url,
        format!("{GRAPH}/users/{}/presence/setPresence", guid(1))
    );
    assert_eq!(
        body(r),
        json!({"sessionId": CLIENT, "availability": "DoNotDisturb", "activity": "Presenting", "expirationDuration": "PT30M"})
    );
    h.answer(*id, resp(200, Value::Null));
    let key = TimerKey::KeepAlive(guid(1));
    let actions = h.take();
    assert!(actions.contains(&Action::SetTimer(key.clone(), 24 * 60_000)));
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::KvSet(k, _) if k == keys::WRITES)),
        "what stands is stored"
    );
    assert_eq!(h.outcomes(), vec![(1, WriteOutcome::Applied)]);
    h.timer(key);
    let reqs = h.requests();
    assert!(reqs[0].1.url.ends_with("/setPresence"), "renewed");
    h.answer(reqs[0].0, resp(200, Value::Null));
    assert_eq!(h.outcomes().len(), 1, "a renewal owes the hub no outcome");
    let offline = intent(Availability::Offline, None);
    let refused = h.core.write_presence(
        WriteRequest {
            id: 2,
            endpoint: guid(1),
            action: offline,
        },
        h.now,
    );
    assert!(matches!(refused, Err(ConnectorError::Unsupported(_))));
    assert_eq!(h.outcomes().len(), 1, "a refused write has no outcome");
}

#[test]
fn expiry_maps_to_the_duration_graph_allows() {
    let mut h = app_with_users(&[guid(1)]);
    h.take();
    let mut sent = Vec::new();
    for (n, ms) in [(1, 90 * 60_000), (2, 60_000), (3, 24 * 3_600_000)] {
        h.write(
            n,
            &guid(1),
            WriteAction::Set(PresenceIntent {
                availability: Availability::Busy,
                activity: None,
                note: None,
                dnd_scope: None,
                expires_in_ms: Some(ms),
            }),
        );
        let reqs = h.requests();
        sent.push(body(&reqs[0].1)["expirationDuration"].clone());
        h.answer(reqs[0].0, resp(200, Value::Null));
        assert!(
            !h.take()
                .iter()
                .any(|a| matches!(a, Action::SetTimer(TimerKey::KeepAlive(_), _))),
            "a write with its own expiry is not kept alive"
        );
    }
    assert_eq!(sent, vec![json!("PT90M"), json!("PT5M"), json!("PT240M")]);
}

#[test]
fn set_presence_200_is_applied() {
    let mut h = app_with_users(&[guid(1)]);
    h.take();
    h.write(7, &guid(1), intent(Availability::Busy, None));
    let reqs = writes(&h.requests());
    assert_eq!(body(&reqs[0].1)["activity"], "InACall");
    assert!(h.outcomes().is_empty(), "no outcome before Graph answers");
    h.answer(reqs[0].0, resp(200, Value::Null));
    assert_eq!(h.outcomes(), vec![(7, WriteOutcome::Applied)]);
}

#[test]
fn set_presence_403_fails_naming_the_permission() {
    let mut h = app_with_users(&[guid(1)]);
    h.take();
    h.write(1, &guid(1), dnd());
    let reqs = writes(&h.requests());
    h.answer(
        reqs[0].0,
        resp(403, json!({"error": {"code": "Forbidden", "message": "Insufficient privileges to complete the operation."}})),
    );
    let outcomes = h.outcomes();
    assert_eq!(outcomes.len(), 1);
    let f = failed(&outcomes[0].1);
    assert!(!f.retryable);
    assert_eq!(f.status, Some(403));
    assert!(
        f.message.contains("Presence.ReadWrite.All"),
        "{}",
        f.message
    );
    assert_eq!(h.last_status().0, ConnectorStatus::Forbidden);
    assert!(writes(&h.requests()).is_empty(), "not sent again");
}

#[test]
fn set_presence_429_fails_retryable_with_retry_after() {
    let mut h = app_with_users(&[guid(1)]);
    h.take();
    h.write(1, &guid(1), dnd());
    let reqs = writes(&h.requests());
    h.answer(
        reqs[0].0,
        Ok(Response {
            status: 429,
            headers: vec![("Retry-After".into(), "7".into())],
            body: vec![],
        }),
    );
    let outcomes = h.outcomes();
    assert_eq!(outcomes.len(), 1);
    let f = failed(&outcomes[0].1);
    assert!(f.retryable);
    assert_eq!(f.retry_after_ms, Some(7000));
    assert_eq!(f.status, Some(429));
    // The host retries, not the connector.
    h.now += 7000;
    h.timer(TimerKey::Gate);
    assert!(writes(&h.requests()).is_empty());
}

#[test]
fn unreachable_graph_fails_a_write_retryable_without_status() {
    let mut h = app_with_users(&[guid(1)]);
    h.take();
    h.write(1, &guid(1), dnd());
    let reqs = writes(&h.requests());
    h.answer(reqs[0].0, Err("connection reset".into()));
    let outcomes = h.outcomes();
    let f = failed(&outcomes[0].1);
    assert!(f.retryable);
    assert_eq!(f.status, None);
    assert!(f.message.contains("connection reset"), "{}", f.message);
}

#[test]
fn a_write_to_an_unknown_user_fails_for_good() {
    let mut h = H::new(settings(&[]), Stored::default());
    let reqs = h.requests();
    h.token(&reqs, 3600, None);
    h.write(1, "ghost@contoso.com", dnd());
    let reqs = h.requests();
    let l = lookups(&reqs[0].1);
    assert!(l[0].1.starts_with("/users/ghost@contoso.com?"));
    h.answer(
        reqs[0].0,
        batch_answer(&[(
            "1",
            404,
            json!({"error": {"code": "Request_ResourceNotFound", "message": "no"}}),
        )]),
    );
    let outcomes = h.outcomes();
    let f = failed(&outcomes[0].1);
    assert!(!f.retryable);
    assert_eq!(f.status, Some(404));
}

#[test]
fn restore_clears_the_session_and_is_restored() {
    let mut h = app_with_users(&[guid(1)]);
    h.take();
    h.write(1, &guid(1), dnd());
    let reqs = writes(&h.requests());
    h.answer(reqs[0].0, resp(200, Value::Null));
    h.write(2, &guid(1), WriteAction::Restore);
    let reqs = writes(&h.requests());
    assert_eq!(
        reqs[0].1.url,
        format!("{GRAPH}/users/{}/presence/clearPresence", guid(1))
    );
    assert_eq!(body(&reqs[0].1), json!({"sessionId": CLIENT}));
    h.answer(reqs[0].0, resp(200, Value::Null));
    assert_eq!(
        h.outcomes(),
        vec![(1, WriteOutcome::Applied), (2, WriteOutcome::Restored)]
    );
    assert!(
        h.log
            .contains(&Action::CancelTimer(TimerKey::KeepAlive(guid(1)))),
        "no more renewals"
    );
    // Nothing stands any more: a second restore is done at once.
    h.write(3, &guid(1), WriteAction::Restore);
    assert!(writes(&h.requests()).is_empty());
    assert_eq!(h.outcomes()[2], (3, WriteOutcome::Restored));
}

#[test]
fn restore_where_the_hub_never_wrote_is_restored_at_once() {
    let mut h = app_with_users(&[guid(1)]);
    h.take();
    h.write(1, &guid(1), WriteAction::Restore);
    assert!(writes(&h.requests()).is_empty(), "nothing to clear");
    // Not even a look-up for a user never written to.
    h.write(2, "carol@contoso.com", WriteAction::Restore);
    assert!(h.requests().is_empty());
    assert_eq!(
        h.outcomes(),
        vec![(1, WriteOutcome::Restored), (2, WriteOutcome::Restored)]
    );
}

#[test]
fn restore_after_the_write_lapsed_is_restored_at_once() {
    let mut h = app_with_users(&[guid(1)]);
    h.take();
    let brief = WriteAction::Set(PresenceIntent {
        availability: Availability::Busy,
        activity: None,
        note: None,
        dnd_scope: None,
        expires_in_ms: Some(10 * 60_000),
    });
    h.write(1, &guid(1), brief);
    let reqs = writes(&h.requests());
    h.answer(reqs[0].0, resp(200, Value::Null));
    h.now += 10 * 60_000;
    h.write(2, &guid(1), WriteAction::Restore);
    assert!(writes(&h.requests()).is_empty(), "Graph dropped it already");
    assert_eq!(
        h.outcomes(),
        vec![(1, WriteOutcome::Applied), (2, WriteOutcome::Restored)]
    );
}

#[test]
fn do_not_disturb_for_queue_calls_only_is_refused() {
    let mut h = app_with_users(&[guid(1)]);
    let queue_only = WriteAction::Set(PresenceIntent {
        availability: Availability::DoNotDisturb,
        activity: None,
        note: None,
        dnd_scope: Some(presence_connector_sdk::DndScope::QueueCalls),
        expires_in_ms: None,
    });
    let r = h.core.write_presence(
        WriteRequest {
            id: 1,
            endpoint: guid(1),
            action: queue_only,
        },
        h.now,
    );
    assert!(matches!(r, Err(ConnectorError::Unsupported(_))));
    assert!(h.outcomes().is_empty());
}

#[test]
fn a_newer_write_supersedes_one_not_yet_sent() {
    let mut h = app_with_users(&[guid(1)]);
    h.take();
    h.write(1, &guid(1), dnd());
    let first = writes(&h.requests());
    // While the first is in flight, two more come: the second never goes.
    h.write(2, &guid(1), intent(Availability::Away, None));
    h.write(3, &guid(1), intent(Availability::Busy, None));
    assert!(
        writes(&h.requests()).is_empty(),
        "one write in flight per user"
    );
    assert_eq!(h.outcomes(), vec![(2, WriteOutcome::Superseded)]);
    h.answer(first[0].0, resp(200, Value::Null));
    let third = writes(&h.requests());
    assert_eq!(body(&third[0].1)["availability"], "Busy");
    h.answer(third[0].0, resp(200, Value::Null));
    assert_eq!(
        h.outcomes(),
        vec![
            (2, WriteOutcome::Superseded),
            (1, WriteOutcome::Applied),
            (3, WriteOutcome::Applied),
        ]
    );
}

#[test]
fn a_write_refused_for_its_token_goes_again_with_a_new_one() {
    let mut h = app_with_users(&[guid(1)]);
    h.take();
    h.write(1, &guid(1), dnd());
    let reqs = writes(&h.requests());
    h.answer(
        reqs[0].0,
        resp(
            401,
            json!({"error": {"code": "InvalidAuthenticationToken", "message": "expired"}}),
        ),
    );
    let reqs = h.requests();
    assert!(h.outcomes().is_empty());
    h.token(&reqs, 3600, None);
    let reqs = writes(&h.requests());
    assert_eq!(reqs.len(), 1, "sent again");
    h.answer(reqs[0].0, resp(200, Value::Null));
    assert_eq!(h.outcomes(), vec![(1, WriteOutcome::Applied)]);
}

#[test]
fn a_write_that_cannot_be_sent_fails_after_the_deadline() {
    // No token yet: the write waits, then fails so the host hears of it.
    let mut h = H::new(settings(&[]), Stored::default());
    h.take();
    h.write(1, &guid(1), dnd());
    assert!(
        h.take()
            .contains(&Action::SetTimer(TimerKey::WriteDeadline(guid(1)), 60_000))
    );
    h.now += 60_000;
    h.timer(TimerKey::WriteDeadline(guid(1)));
    let outcomes = h.outcomes();
    assert_eq!(outcomes.len(), 1);
    let f = failed(&outcomes[0].1);
    assert!(f.retryable);
    assert!(f.message.contains("not signed in"), "{}", f.message);
}

#[test]
fn shutdown_fails_writes_not_yet_answered() {
    let mut h = app_with_users(&[guid(1), guid(2)]);
    h.take();
    h.write(1, &guid(1), dnd());
    h.write(2, &guid(1), intent(Availability::Away, None));
    h.requests();
    h.core.shutdown(h.now);
    let outcomes = h.outcomes();
    assert_eq!(outcomes.len(), 2);
    assert!(outcomes.iter().all(|(_, o)| failed(o).retryable));
}

#[test]
fn the_update_a_write_caused_carries_its_id() {
    let mut h = app_with_users(&[guid(1)]);
    let reqs = h.requests();
    let read = |a: &str, act: &str| json!({"value": [{"id": guid(1), "availability": a, "activity": act}]});
    h.answer(reqs[0].0, resp(200, read("Available", "Available")));
    h.take();
    h.write(42, &guid(1), dnd());
    let reqs = writes(&h.requests());
    h.answer(reqs[0].0, resp(200, Value::Null));
    h.take();
    // A change that is not the written pair is the platform's.
    let read_now = |h: &mut H, a: &str, act: &str| {
        h.core.to_read.insert(guid(1));
        h.core.pump(h.now);
        let reqs = h.requests();
        h.answer(reqs[0].0, resp(200, read(a, act)));
        h.updates()
    };
    let u = read_now(&mut h, "Busy", "InAMeeting");
    assert_eq!(u[0].origin, UpdateOrigin::Platform);
    h.now += 5_000;
    let u = read_now(&mut h, "DoNotDisturb", "Presenting");
    assert_eq!(u[0].origin, UpdateOrigin::HubWrite(42));
    // One update per write: the next change is the person's again.
    h.now += 5_000;
    let u = read_now(&mut h, "Available", "Available");
    assert_eq!(u[0].origin, UpdateOrigin::Platform);
    let u = read_now(&mut h, "DoNotDisturb", "Presenting");
    assert_eq!(u[0].origin, UpdateOrigin::Platform);
}

#[test]
fn an_echo_too_late_is_the_platforms() {
    let mut h = app_with_users(&[guid(1)]);
    let reqs = h.requests();
    h.answer(
        reqs[0].0,
        resp(
            200,
            json!({"value": [{"id": guid(1), "availability": "Available", "activity": "Available"}]}),
        ),
    );
    h.write(5, &guid(1), dnd());
    let reqs = writes(&h.requests());
    h.answer(reqs[0].0, resp(200, Value::Null));
    h.now += 61_000;
    h.core.to_read.insert(guid(1));
    h.core.pump(h.now);
    let reqs = h.requests();
    h.answer(
        reqs[0].0,
        resp(
            200,
            json!({"value": [{"id": guid(1), "availability": "DoNotDisturb", "activity": "Presenting"}]}),
        ),
    );
    assert_eq!(h.updates()[0].origin, UpdateOrigin::Platform);
}

#[test]
fn preferred_write_back_and_restore_without_body() {
    let mut h = H::new(settings(&[("write_mode", "preferred")]), Stored::default());
    let reqs = h.requests();
    h.token(&reqs, 3600, None);
    let brb = WriteAction::Set(PresenceIntent {
        availability: Availability::Away,
        activity: Some(Activity::BeRightBack),
        note: None,
        dnd_scope: None,
        expires_in_ms: Some(3_600_000),
    });
    h.write(1, &guid(2), brb);
    let reqs = h.requests();
    assert!(reqs[0].1.url.ends_with("/setUserPreferredPresence"));
    assert_eq!(
        body(&reqs[0].1),
        json!({"availability": "BeRightBack", "activity": "BeRightBack", "expirationDuration": "PT60M"})
    );
    h.answer(reqs[0].0, resp(200, Value::Null));
    h.write(2, &guid(2), WriteAction::Restore);
    let reqs = h.requests();
    assert!(reqs[0].1.url.ends_with("/clearUserPreferredPresence"));
    assert!(reqs[0].1.body.is_empty());
    h.answer(reqs[0].0, resp(200, Value::Null));
    assert_eq!(
        h.outcomes(),
        vec![(1, WriteOutcome::Applied), (2, WriteOutcome::Restored)]
    );
}

#[test]
fn a_restore_after_a_restart_clears_what_the_last_run_wrote() {
    let mut h = H::new(settings(&[("write_mode", "preferred")]), Stored::default());
    let reqs = h.requests();
    h.token(&reqs, 3600, None);
    h.write(1, &guid(2), intent(Availability::DoNotDisturb, None));
    let reqs = h.requests();
    h.answer(reqs[0].0, resp(200, Value::Null));
    let stored = h.take().into_iter().find_map(|a| match a {
        Action::KvSet(k, v) if k == keys::WRITES => Some(v),
        _ => None,
    });
    // Restarted in session mode: the clear still matches how it was set.
    let mut h = H::new(
        settings(&[]),
        Stored {
            writes: stored,
            ..Stored::default()
        },
    );
    let reqs = h.requests();
    h.token(&reqs, 3600, None);
    h.write(9, &guid(2), WriteAction::Restore);
    let reqs = h.requests();
    assert!(
        reqs[0].1.url.ends_with("/clearUserPreferredPresence"),
        "{reqs:?}"
    );
    h.answer(reqs[0].0, resp(200, Value::Null));
    assert_eq!(h.outcomes(), vec![(9, WriteOutcome::Restored)]);
}

#[test]
fn missing_permission_is_forbidden_naming_it() {
    let mut h = app_with_users(&[guid(1)]);
    let reqs = h.requests();
    h.answer(
        reqs[0].0,
        resp(403, json!({"error": {"code": "Forbidden", "message": "Insufficient privileges to complete the operation."}})),
    );
    let (st, detail) = h.last_status();
    assert_eq!(st, ConnectorStatus::Forbidden);
    assert!(detail.unwrap().contains("Presence.Read.All (application)"));
    assert!(
        h.log
            .iter()
            .any(|a| matches!(a, Action::EndpointState(_, EndpointState::AccessDenied, _)))
    );
}

#[test]
fn upns_are_resolved_once_and_cached() {
    let mut h = H::new(settings(&[]), Stored::default());
    let reqs = h.requests();
    h.token(&reqs, 3600, None);
    h.core.watch(
        &["Alice@Contoso.com".into(), "ghost@contoso.com".into()],
        h.now,
    );
    let reqs = h.requests();
    assert_eq!(reqs.len(), 1, "one JSON batch");
    let l = lookups(&reqs[0].1);
    let alice = l.iter().find(|(_, u)| u.contains("Alice")).unwrap();
    assert_eq!(
        alice.1,
        "/users/Alice@Contoso.com?$select=id,userPrincipalName"
    );
    let ghost = l.iter().find(|(_, u)| u.contains("ghost")).unwrap();
    // Answers come in any order.
    h.answer(
        reqs[0].0,
        batch_answer(&[
            (
                &ghost.0,
                404,
                json!({"error": {"code": "Request_ResourceNotFound", "message": "no"}}),
            ),
            (&alice.0, 200, json!({"id": guid(3).to_uppercase()})),
        ]),
    );
    let actions = h.take();
    let stored = actions.iter().find_map(|a| match a {
        Action::KvSet(k, v) if k == keys::USERS => Some(v.clone()),
        _ => None,
    });
    let stored: Value = serde_json::from_slice(&stored.expect("the cache is stored")).unwrap();
    assert_eq!(stored, json!({"alice@contoso.com": guid(3)}));
    assert!(actions.iter().any(|a| matches!(a, Action::EndpointState(e, EndpointState::NotFound, _) if e == "ghost@contoso.com")));
    // A restart with the cache: no look-up.
    let mut h = H::new(
        settings(&[]),
        Stored {
            users: Some(serde_json::to_vec(&json!({"alice@contoso.com": guid(3)})).unwrap()),
            ..Stored::default()
        },
    );
    let reqs = h.requests();
    h.token(&reqs, 3600, None);
    h.core.watch(&["alice@contoso.com".into()], h.now);
    assert!(h.requests().is_empty());
    h.timer(TimerKey::ReadSoon);
    assert!(h.requests()[0].1.url.ends_with("getPresencesByUserId"));
}

#[test]
fn the_read_budget_defers_reads() {
    let mut h = app_with_users(&[guid(1)]);
    h.requests();
    for _ in 0..READ_BUDGET {
        h.core.read_log.push_back(h.now);
    }
    h.core.to_read.insert(guid(1));
    h.core.pump(h.now);
    let actions = h.take();
    assert!(actions.iter().all(|a| !matches!(a, Action::Http(..))));
    assert!(actions.contains(&Action::SetTimer(TimerKey::ReadSoon, READ_WINDOW_MS)));
    h.now += READ_WINDOW_MS;
    h.timer(TimerKey::ReadSoon);
    assert_eq!(h.requests().len(), 1);
}

#[test]
fn poll_interval_stretches_for_many_users() {
    let h = {
        let ids: Vec<String> = (0..650 * 40).map(guid).collect();
        app_with_users(&ids)
    };
    // 40 batches per round must fit 1,000 reads per 30 s: the configured
    // 30 s stays; with a 1 s poll it would be stretched to 1.2 s.
    assert_eq!(h.core.poll_interval(), 30_000);
    let mut fast = H::new(settings(&[("poll_seconds", "1")]), Stored::default());
    let reqs = fast.requests();
    fast.token(&reqs, 3600, None);
    let ids: Vec<String> = (0..650 * 40).map(guid).collect();
    fast.core.watch(&ids, fast.now);
    assert_eq!(fast.core.poll_interval(), 1_200);
}

#[test]
fn unreachable_graph_is_a_connection_error() {
    let mut h = app_with_users(&[guid(1)]);
    let reqs = h.requests();
    h.answer(reqs[0].0, Err("connection refused".into()));
    let (st, detail) = h.last_status();
    assert_eq!(st, ConnectorStatus::ConnectionError);
    assert!(detail.unwrap().contains("connection refused"));
}

#[test]
fn a_wrong_secret_is_forbidden() {
    let mut h = H::new(settings(&[]), Stored::default());
    let reqs = h.requests();
    h.answer(
        reqs[0].0,
        resp(401, json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x"})),
    );
    let (st, detail) = h.last_status();
    assert_eq!(st, ConnectorStatus::Forbidden);
    assert!(
        detail
            .unwrap()
            .ends_with("invalid_client: AADSTS7000215: Invalid client secret provided.")
    );
    assert!(h.log.contains(&Action::SetTimer(
        TimerKey::OAuth(Slot::Primary, TimerKind::Renew),
        300_000
    )));
}

#[test]
fn unwatching_every_user_deletes_the_subscription() {
    let (mut h, _, _) = subscribed();
    h.take();
    h.core.unwatch(&[guid(1)], h.now);
    h.timer(TimerKey::Reconcile);
    let reqs = h.requests();
    assert!(
        reqs.iter()
            .any(|(_, r)| r.method == "DELETE" && r.url.ends_with("/subscriptions/sub-1")),
        "{reqs:?}"
    );
}

#[test]
fn a_new_user_replaces_the_subscription_with_one_covering_both() {
    let (mut h, _, _) = subscribed();
    h.timer(TimerKey::ReadSoon);
    h.take();
    h.core.watch(&[guid(2)], h.now);
    h.timer(TimerKey::ReadSoon);
    let reqs = h.requests();
    read_ok(&mut h, reqs[0].0, &[guid(2)], "Busy");
    h.timer(TimerKey::Reconcile);
    let reqs = h.requests();
    let (id, create) = reqs
        .iter()
        .find(|(_, r)| r.method == "POST" && r.url.ends_with("/subscriptions"))
        .expect("a replacement")
        .clone();
    let resource = body(&create)["resource"].as_str().unwrap().to_string();
    assert!(
        resource.contains(&guid(1)) && resource.contains(&guid(2)),
        "{resource}"
    );
    h.answer(
        id,
        resp(201, json!({"id": "sub-2", "expirationDateTime": crate::time::format_rfc3339(T0 + 3_600_000)})),
    );
    let reqs = h.requests();
    assert!(
        reqs.iter()
            .any(|(_, r)| r.method == "DELETE" && r.url.ends_with("/subscriptions/sub-1")),
        "the replaced subscription is deleted: {reqs:?}"
    );
}

#[test]
fn adopted_subscriptions_are_renewed_at_start() {
    let (mut h, _, _) = subscribed();
    let stored = h.take().into_iter().find_map(|a| match a {
        Action::KvSet(k, v) if k == keys::SUBS => Some(v),
        _ => None,
    });
    let s = h.core.settings().clone();
    let mut h = H::new(
        s,
        Stored {
            subs: stored,
            ..Stored::default()
        },
    );
    // Signed in again (no stored tokens in this test).
    let reqs = h.requests();
    h.answer(
        reqs[0].0,
        resp(200, json!({"device_code": "dc", "user_code": "U", "verification_uri": "https://x", "interval": 1})),
    );
    h.timer(TimerKey::OAuth(Slot::Primary, TimerKind::DevicePoll));
    let reqs = h.requests();
    h.token(&reqs, 3600, Some("rt"));
    let reqs = h.requests();
    assert!(
        reqs.iter()
            .any(|(_, r)| r.method == "PATCH" && r.url.ends_with("/subscriptions/sub-1")),
        "{reqs:?}"
    );
}
