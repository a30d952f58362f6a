//! The tenant's user directory: read page by page after sign-in, reported
//! with `complete` on the last page, read again every 12 hours; throttling
//! asks the same page again after the wait; a 403 is `forbidden` naming the
//! permission while presence keeps flowing; the switch turns it off.

use presence_connector_sdk::DirectoryEntry;

use super::*;

const FIRST: &str = "/users?$select=id,displayName,mail,userPrincipalName&$top=999";

fn signed_in(extra: &[(&str, &str)]) -> H {
    let mut extra = extra.to_vec();
    extra.push(("directory", "true"));
    let mut h = H::new(settings(&extra), Stored::default());
    let reqs = h.requests();
    h.token(&reqs, 3600, None);
    h
}

/// The directory requests among `reqs`.
fn dir_reqs(reqs: &[(ReqId, Request)]) -> Vec<(ReqId, Request)> {
    reqs.iter()
        .filter(|(_, r)| r.url.starts_with(&format!("{GRAPH}/users?")))
        .cloned()
        .collect()
}

/// Every directory request sent so far, in order.
fn sent(h: &mut H) -> Vec<(ReqId, Request)> {
    h.take();
    let all: Vec<(ReqId, Request)> = h
        .log
        .iter()
        .filter_map(|a| match a {
            Action::Http(id, r) => Some((*id, r.clone())),
            _ => None,
        })
        .collect();
    dir_reqs(&all)
}

/// The directory pages reported since the last look.
fn pages(h: &mut H) -> Vec<(Vec<DirectoryEntry>, bool)> {
    h.take()
        .into_iter()
        .filter_map(|a| match a {
            Action::Directory(e, c) => Some((e, c)),
            _ => None,
        })
        .collect()
}

fn user(n: usize, mail: Option<&str>, name: &str) -> Value {
    json!({"id": guid(n), "displayName": name, "mail": mail,
        "userPrincipalName": format!("user{n}@contoso.onmicrosoft.com")})
}

fn page(users: Vec<Value>, next: Option<&str>) -> Result<Response, String> {
    let mut v = json!({"@odata.context": format!("{GRAPH}/$metadata#users(id,displayName,mail,userPrincipalName)"), "value": users});
    if let Some(n) = next {
        v["@odata.nextLink"] = json!(n);
    }
    resp(200, v)
}

fn next_link(token: &str) -> String {
    format!("{GRAPH}{FIRST}&$skiptoken={token}")
}

#[test]
fn the_directory_is_read_page_by_page_and_again_every_12_hours() {
    let mut h = signed_in(&[]);
    let reqs = dir_reqs(&h.requests());
    assert_eq!(reqs.len(), 1, "one page at a time");
    let (id, r) = &reqs[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.url, format!("{GRAPH}{FIRST}"));
    assert!(
        r.headers
            .iter()
            .any(|(k, v)| k == "Authorization" && v.starts_with("Bearer at-"))
    );
    let link = next_link("X'2");
    h.answer(
        *id,
        page(
            vec![
                user(1, Some("Alice.Adams@contoso.com"), "Alice Adams"),
                // No mailbox: reported without an email.
                user(2, None, "Meeting Room"),
            ],
            Some(&link),
        ),
    );
    let got = pages(&mut h);
    assert_eq!(got.len(), 1);
    assert!(!got[0].1, "more pages follow");
    assert_eq!(
        got[0].0,
        vec![
            DirectoryEntry {
                endpoint: "user1@contoso.onmicrosoft.com".into(),
                email: Some("Alice.Adams@contoso.com".into()),
                display_name: Some("Alice Adams".into()),
                extension: None,
            },
            DirectoryEntry {
                endpoint: "user2@contoso.onmicrosoft.com".into(),
                email: None,
                display_name: Some("Meeting Room".into()),
                extension: None,
            },
        ]
    );
    // The next page is Graph's link, as given.
    let reqs = sent(&mut h);
    assert_eq!(reqs.len(), 2);
    let (id, r) = reqs[1].clone();
    assert_eq!(r.url, link);
    h.answer(
        id,
        page(vec![user(3, Some("carol@contoso.com"), "Carol")], None),
    );
    let got = pages(&mut h);
    assert_eq!(got.len(), 1);
    assert!(got[0].1, "the last page is complete");
    assert_eq!(got[0].0[0].endpoint, "user3@contoso.onmicrosoft.com");
    assert_eq!(h.last_timer(&TimerKey::Directory), 12 * 3_600_000);
    let (st, detail) = h.last_status();
    assert_eq!(st, ConnectorStatus::UpAndRunning);
    assert!(detail.unwrap().contains("3 users in the directory"));
    // Nothing more until the 12 hours are up; then the first page again.
    // (The token of an hour is renewed on the way.)
    h.now += 3_600_000;
    h.timer(TimerKey::Poll);
    let reqs = h.requests();
    assert!(dir_reqs(&reqs).is_empty());
    h.token(&reqs, 86_400, None);
    assert!(dir_reqs(&h.requests()).is_empty());
    h.now += 11 * 3_600_000 - 1;
    h.timer(TimerKey::Poll);
    assert!(dir_reqs(&h.requests()).is_empty());
    h.now += 1;
    h.timer(TimerKey::Directory);
    let reqs = h.requests();
    let again = dir_reqs(&reqs);
    assert_eq!(again.len(), 1, "{reqs:?}");
    assert_eq!(again[0].1.url, format!("{GRAPH}{FIRST}"));
}

#[test]
fn throttling_asks_the_same_page_again_after_the_wait() {
    let mut h = signed_in(&[]);
    let reqs = dir_reqs(&h.requests());
    let link = next_link("p2");
    h.answer(
        reqs[0].0,
        page(vec![user(1, Some("a@contoso.com"), "A")], Some(&link)),
    );
    assert_eq!(pages(&mut h).len(), 1);
    let reqs = sent(&mut h);
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].1.url, link);
    h.answer(
        reqs[1].0,
        Ok(Response {
            status: 429,
            headers: vec![("Retry-After".into(), "5".into())],
            body: br#"{"error":{"code":"TooManyRequests","message":"Too many requests"}}"#.to_vec(),
        }),
    );
    let actions = h.take();
    assert!(actions.contains(&Action::SetTimer(TimerKey::Gate, 5000)));
    assert!(!actions.iter().any(|a| matches!(a, Action::Directory(..))));
    assert_eq!(h.last_status().0, ConnectorStatus::Throttled);
    // Nothing goes before the wait is over, whatever asks.
    h.now += 4000;
    h.timer(TimerKey::Directory);
    assert!(h.requests().is_empty());
    h.now += 1000;
    h.timer(TimerKey::Gate);
    let reqs = dir_reqs(&h.requests());
    assert_eq!(reqs.len(), 1, "the same page again, not the first");
    assert_eq!(reqs[0].1.url, link);
    h.answer(
        reqs[0].0,
        page(vec![user(2, Some("b@contoso.com"), "B")], None),
    );
    let got = pages(&mut h);
    assert_eq!(got.len(), 1);
    assert!(got[0].1);
    assert_eq!(h.last_status().0, ConnectorStatus::UpAndRunning);
}

#[test]
fn a_refusal_is_forbidden_naming_the_permission_and_presence_flows() {
    for (extra, permission) in [
        (vec![], "User.Read.All (application)"),
        (
            vec![("auth_flow", "device-code"), ("client_secret", "")],
            "User.ReadBasic.All (delegated)",
        ),
    ] {
        let mut h = H::new(
            settings(&[extra.as_slice(), &[("directory", "true")]].concat()),
            Stored::default(),
        );
        if extra.is_empty() {
            let reqs = h.requests();
            h.token(&reqs, 3600, None);
        } else {
            // Device code, then the token.
            let reqs = h.requests();
            h.answer(
                reqs[0].0,
                resp(200, json!({"device_code": "dc", "user_code": "U", "verification_uri": "https://x", "interval": 1})),
            );
            h.timer(TimerKey::OAuth(Slot::Primary, TimerKind::DevicePoll));
            let reqs = h.requests();
            h.token(&reqs, 3600, Some("rt"));
        }
        h.core.watch(&[guid(1)], h.now);
        h.timer(TimerKey::ReadSoon);
        h.take();
        let reqs: Vec<(ReqId, Request)> = h
            .log
            .iter()
            .filter_map(|a| match a {
                Action::Http(id, r) => Some((*id, r.clone())),
                _ => None,
            })
            .collect();
        let dir = dir_reqs(&reqs);
        assert_eq!(dir.len(), 1, "{extra:?}");
        h.answer(
            dir[0].0,
            resp(403, json!({"error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges to complete the operation."}})),
        );
        let (st, detail) = h.last_status();
        assert_eq!(st, ConnectorStatus::Forbidden, "{extra:?}");
        let detail = detail.unwrap();
        assert!(detail.contains(permission), "{detail}");
        assert!(detail.contains("list the tenant's users"), "{detail}");
        assert!(pages(&mut h).is_empty());
        // Presence still flows.
        let read = reqs
            .iter()
            .find(|(_, r)| r.url.ends_with("getPresencesByUserId"))
            .expect("a presence read")
            .0;
        read_ok(&mut h, read, &[guid(1)], "Busy");
        let ups = h.updates();
        assert_eq!(ups.len(), 1, "{extra:?}");
        assert_eq!(ups[0].endpoint, guid(1));
        // Asked again after a minute, then 2 ...; consent granted meanwhile.
        assert_eq!(h.last_timer(&TimerKey::Directory), 60_000);
        h.now += 30_000;
        h.timer(TimerKey::Directory);
        assert!(dir_reqs(&h.requests()).is_empty(), "not before its time");
        h.now += 30_000;
        h.timer(TimerKey::Directory);
        let dir = dir_reqs(&h.requests());
        assert_eq!(dir.len(), 1);
        h.answer(
            dir[0].0,
            resp(403, json!({"error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges to complete the operation."}})),
        );
        assert_eq!(h.last_timer(&TimerKey::Directory), 120_000);
        h.now += 120_000;
        h.timer(TimerKey::Directory);
        let dir = dir_reqs(&h.requests());
        assert_eq!(dir.len(), 1);
        h.answer(
            dir[0].0,
            page(vec![user(1, Some("a@contoso.com"), "A")], None),
        );
        assert_eq!(pages(&mut h).len(), 1);
        assert_eq!(
            h.last_status().0,
            ConnectorStatus::UpAndRunning,
            "{extra:?}"
        );
    }
}

#[test]
fn a_next_link_elsewhere_is_not_followed() {
    let mut h = signed_in(&[]);
    let reqs = dir_reqs(&h.requests());
    h.answer(
        reqs[0].0,
        page(
            vec![user(1, Some("a@contoso.com"), "A")],
            Some("https://attacker.example/v1.0/users?$skiptoken=x"),
        ),
    );
    let actions = h.take();
    assert!(!actions.iter().any(|a| matches!(a, Action::Directory(..))));
    assert!(!actions.iter().any(|a| matches!(a, Action::Http(..))));
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Log(Level::Warn, m) if m.contains("not followed")))
    );
    // Asked again later, from the same page.
    assert_eq!(h.last_timer(&TimerKey::Directory), 60_000);
    h.now += 60_000;
    h.timer(TimerKey::Directory);
    let reqs = dir_reqs(&h.requests());
    assert_eq!(reqs[0].1.url, format!("{GRAPH}{FIRST}"));
}

#[test]
fn pages_count_against_the_look_up_budget() {
    let mut h = signed_in(&[]);
    let reqs = dir_reqs(&h.requests());
    let link = next_link("p2");
    // The budget is spent by look-ups in this window: the next page waits.
    for _ in 0..(lookups_budget() - 1) {
        h.core.lookup_log.push_back(h.now);
    }
    h.answer(
        reqs[0].0,
        page(vec![user(1, Some("a@contoso.com"), "A")], Some(&link)),
    );
    assert_eq!(pages(&mut h).len(), 1);
    assert_eq!(sent(&mut h).len(), 1, "the second page waits");
    assert_eq!(h.last_timer(&TimerKey::LookupBudget), 10_000);
    h.now += 10_000;
    h.timer(TimerKey::LookupBudget);
    let reqs = dir_reqs(&h.requests());
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].1.url, link);
}

fn lookups_budget() -> usize {
    super::super::lookups::LOOKUP_BUDGET
}

#[test]
fn the_switch_turns_it_off_and_it_is_on_by_default() {
    let mut h = H::new(settings(&[("directory", "false")]), Stored::default());
    let reqs = h.requests();
    h.token(&reqs, 3600, None);
    h.core.watch(&[guid(1)], h.now);
    h.timer(TimerKey::ReadSoon);
    let reqs = h.requests();
    assert!(!reqs.is_empty());
    assert!(dir_reqs(&reqs).is_empty());
    h.now += 12 * 3_600_000;
    h.timer(TimerKey::Directory);
    assert!(dir_reqs(&h.requests()).is_empty());
    // Left out of the configuration, it is on.
    let s = Settings::from_config(
        &Config::new(vec![
            ConfigEntry {
                name: "tenant_id".into(),
                value: ConfigValue::Text("t".into()),
            },
            ConfigEntry {
                name: "client_id".into(),
                value: ConfigValue::Text("c".into()),
            },
            ConfigEntry {
                name: "client_secret".into(),
                value: ConfigValue::Text("s".into()),
            },
        ]),
        None,
    )
    .unwrap();
    assert!(s.directory);
}
