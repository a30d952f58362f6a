//! Directory, endpoint resolution, first reads, rate budget and penalties.

use super::*;
use presence_connector_sdk::{Activity, Availability, DirectoryEntry, LineState};

#[test]
fn the_directory_is_reported_page_by_page_for_mapping_by_email() {
    let mut h = H::new(settings(&[]), Stored::default());
    let reqs = h.requests();
    h.token(&reqs, 3600, "rt-1");
    let reqs = h.requests();
    let (id, _) = H::find(
        &reqs,
        "GET",
        "/restapi/v1.0/account/~/extension?page=1&perPage=1000",
    )
    .unwrap();
    let mut page1 = directory_body();
    page1["paging"] = json!({"page": 1, "totalPages": 2, "perPage": 1000});
    h.answer(*id, resp(200, page1));
    let reqs = h.requests();
    let (id, _) = H::find(
        &reqs,
        "GET",
        "/restapi/v1.0/account/~/extension?page=2&perPage=1000",
    )
    .expect("page 2");
    h.answer(*id, resp(200, json!({"records": [{"id": 62000009, "extensionNumber": "109",
        "contact": {"email": "zed@example.com", "firstName": "Zed"}}], "paging": {"page": 2, "totalPages": 2}})));
    h.take();
    let dirs: Vec<(Vec<DirectoryEntry>, bool)> = h
        .log
        .iter()
        .filter_map(|a| match a {
            Action::Directory(e, c) => Some((e.clone(), *c)),
            _ => None,
        })
        .collect();
    assert_eq!(dirs.len(), 2);
    assert!(!dirs[0].1 && dirs[1].1);
    let alice = &dirs[0].0[0];
    assert_eq!(alice.endpoint, "62000001");
    assert_eq!(alice.email.as_deref(), Some("alice@example.com"));
    assert_eq!(alice.extension.as_deref(), Some("101"));
    assert_eq!(alice.display_name.as_deref(), Some("Alice Smith"));
    assert_eq!(dirs[1].0[0].display_name.as_deref(), Some("Zed"));
}

#[test]
fn endpoints_by_id_or_number_are_read_and_unknown_ones_not_found() {
    let mut h = H::new(settings(&[]), Stored::default());
    h.ready();
    let reqs = h.watch(&["101", "62000002", "999"]);
    assert_eq!(h.ep_state("999"), Some(EndpointState::NotFound));
    let paths: Vec<String> = reqs
        .iter()
        .filter(|(_, r)| r.method == "GET")
        .map(|(_, r)| r.url.trim_start_matches(SERVER).to_string())
        .collect();
    assert_eq!(
        paths,
        [
            "/restapi/v1.0/account/~/extension/62000001/presence?detailedTelephonyState=true&sipData=true",
            "/restapi/v1.0/account/~/extension/62000002/presence?detailedTelephonyState=true&sipData=true",
        ]
    );
    h.answer_reads(&reqs, "CallConnected");
    let p = h.presences();
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].endpoint, "101");
    let t = p[0].telephony.as_ref().unwrap();
    assert_eq!(t.line, LineState::InCall);
    let r = p[0].rich.as_ref().unwrap();
    assert_eq!(
        (r.availability, r.activity.clone()),
        (Availability::Busy, Some(Activity::InACall))
    );
    assert_eq!(p[0].origin, UpdateOrigin::Platform);
    assert!(
        p[0].raw
            .iter()
            .any(|v| v.name == "telephonyStatus" && v.value == "CallConnected")
    );
    assert_eq!(h.ep_state("101"), Some(EndpointState::Active));
    assert_eq!(p[1].endpoint, "62000002");
}

#[test]
fn refused_and_missing_extensions() {
    let mut h = H::new(settings(&[]), Stored::default());
    h.ready();
    let reqs = h.watch(&["101", "102"]);
    let a = reqs
        .iter()
        .find(|(_, r)| r.url.contains("62000001/presence"))
        .unwrap()
        .0;
    let b = reqs
        .iter()
        .find(|(_, r)| r.url.contains("62000002/presence"))
        .unwrap()
        .0;
    h.answer(a, resp(403, json!({"errorCode": "InsufficientPermissions",
        "message": "In order to call this API endpoint, application needs to have [ReadPresence] permission"})));
    h.answer(b, resp(404, json!({"errorCode": "CMN-102", "message": "Resource for parameter [extensionId] is not found"})));
    assert_eq!(h.ep_state("101"), Some(EndpointState::AccessDenied));
    assert_eq!(h.ep_state("102"), Some(EndpointState::NotFound));
    let detail = h.log.iter().rev().find_map(|a| match a {
        Action::EndpointState(e, _, Some(d)) if e == "101" => Some(d.clone()),
        _ => None,
    });
    assert!(detail.unwrap().contains("ReadPresence"));
}

#[test]
fn many_extensions_are_read_account_wide_in_one_heavy_request() {
    let mut h = H::new(settings(&[]), Stored::default());
    h.ready();
    // 3 extensions with light=2: 3 * heavy(10) > 1 page * 2 -> account read.
    let mut h2 = H::new(settings(&[("rate_limits", "light=2")]), Stored::default());
    h2.ready();
    let reqs = h2.watch(&["101", "102", "103"]);
    let gets: Vec<&Request> = reqs
        .iter()
        .map(|(_, r)| r)
        .filter(|r| r.method == "GET")
        .collect();
    assert_eq!(gets.len(), 1);
    assert_eq!(
        gets[0].url,
        format!(
            "{SERVER}/restapi/v1.0/account/~/presence?detailedTelephonyState=true&sipData=true&page=1&perPage=1000"
        )
    );
    let id = reqs
        .iter()
        .find(|(_, r)| r.url.contains("/account/~/presence?"))
        .unwrap()
        .0;
    h2.answer(
        id,
        resp(
            200,
            json!({"records": [
        presence_body("62000001", "TakeAllCalls", "NoCall"),
        presence_body("62000002", "DoNotAcceptAnyCalls", "NoCall"),
        presence_body("62000003", "TakeAllCalls", "Ringing"),
    ], "paging": {"page": 1, "totalPages": 1}}),
        ),
    );
    let p = h2.presences();
    assert_eq!(p.len(), 3);
    assert!(p[1].telephony.as_ref().unwrap().do_not_disturb);
    // Two extensions with the default limits: one by one (2 * 10 <= 50).
    let reqs = h.watch(&["101", "102"]);
    assert_eq!(
        reqs.iter()
            .filter(|(_, r)| r.url.contains("/extension/6200000"))
            .count(),
        2
    );
}

#[test]
fn a_429_stops_the_group_for_retry_after_and_shows_throttled() {
    let mut h = H::new(settings(&[]), Stored::default());
    h.ready();
    let reqs = h.watch(&["101"]);
    let id = reqs
        .iter()
        .find(|(_, r)| r.url.contains("62000001/presence"))
        .unwrap()
        .0;
    h.answer(
        id,
        resp_h(
            429,
            &[("Retry-After", "45"), ("X-Rate-Limit-Group", "Light")],
            json!({"errorCode": "CMN-301"}),
        ),
    );
    let (st, detail) = h.last_status();
    assert_eq!(st, ConnectorStatus::Throttled);
    assert!(detail.contains("light"), "{detail}");
    assert!(h.kv(keys::PENALTIES).is_some());
    // Nothing of the Light group inside the penalty, even when asked.
    h.advance(44_000);
    h.timer(TimerKey::Pump);
    assert!(
        !h.requests()
            .iter()
            .any(|(_, r)| r.url.contains("/presence"))
    );
    h.advance(1_000);
    h.timer(TimerKey::Pump);
    let reqs = h.requests();
    assert!(
        reqs.iter()
            .any(|(_, r)| r.url.contains("62000001/presence"))
    );
    assert_ne!(h.last_status().0, ConnectorStatus::Throttled);
}

#[test]
fn a_penalty_survives_a_crash_restart() {
    let mut h = H::new(settings(&[]), Stored::default());
    h.ready();
    let reqs = h.watch(&["101"]);
    let id = reqs
        .iter()
        .find(|(_, r)| r.url.contains("62000001/presence"))
        .unwrap()
        .0;
    h.answer(id, resp(429, json!({})));
    let stored = h.stored();
    // Restarted 10 s later: the 30 s default penalty still holds.
    let mut core = Core::new(settings(&[]), stored, T0 + 10_000, entropy());
    core.start(T0 + 10_000);
    let actions = core.take_actions();
    let status = actions.iter().rev().find_map(|a| match a {
        Action::Status(s, _) => Some(*s),
        _ => None,
    });
    assert_ne!(status, Some(ConnectorStatus::UpAndRunning));
    let mut h2 = H {
        core,
        now: T0 + 10_000,
        log: actions,
        cursors: [0; 3],
        conn: None,
    };
    let id = h2
        .log
        .iter()
        .find_map(|a| match a {
            Action::Http(id, r) if r.url.contains("/extension?") => Some(*id),
            _ => None,
        })
        .unwrap();
    h2.answer(id, resp(200, directory_body()));
    h2.requests();
    let reqs = h2.watch(&["101"]);
    assert!(
        !reqs.iter().any(|(_, r)| r.url.contains("/presence")),
        "held until the penalty ends"
    );
    assert_eq!(h2.last_status().0, ConnectorStatus::Throttled);
    h2.advance(20_000);
    h2.timer(TimerKey::Pump);
    assert!(
        h2.requests()
            .iter()
            .any(|(_, r)| r.url.contains("62000001/presence"))
    );
}

#[test]
fn requests_wait_for_room_in_their_group_instead_of_being_sent() {
    let mut h = H::new(settings(&[("rate_limits", "medium=3")]), Stored::default());
    // Token (Auth), directory (Medium 1 of 3), the WebSocket subscription
    // (Medium 2 of 3).
    h.ready();
    let reqs = h.watch(&["101", "102", "103"]);
    h.answer_reads(&reqs, "NoCall");
    h.requests();
    // Writes to three extensions: one PUT fits (the second Medium), two wait.
    for (i, ep) in ["101", "102", "103"].iter().enumerate() {
        h.core
            .write_presence(
                presence_connector_sdk::WriteRequest {
                    id: 10 + i as u64,
                    endpoint: ep.to_string(),
                    action: presence_connector_sdk::WriteAction::Set(dnd(None)),
                },
                h.now,
            )
            .unwrap();
    }
    let puts = h
        .requests()
        .into_iter()
        .filter(|(_, r)| r.method == "PUT")
        .count();
    assert_eq!(puts, 1);
    h.advance(60_000);
    h.timer(TimerKey::Pump);
    let puts = h
        .requests()
        .into_iter()
        .filter(|(_, r)| r.method == "PUT")
        .count();
    assert_eq!(puts, 2);
}

pub fn dnd(
    scope: Option<presence_connector_sdk::DndScope>,
) -> presence_connector_sdk::PresenceIntent {
    presence_connector_sdk::PresenceIntent {
        availability: Availability::DoNotDisturb,
        activity: None,
        note: None,
        dnd_scope: scope,
        expires_in_ms: None,
    }
}
