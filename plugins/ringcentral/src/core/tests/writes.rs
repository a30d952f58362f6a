//! Write-back: DND scopes, user status, restore, user-changed, superseded,
//! expiry, failures, restarts.

use super::reads::dnd;
use super::*;
use presence_connector_sdk::{
    Availability, ConnectorError, DndScope, PresenceIntent, WriteAction, WriteFailure, WriteRequest,
};

fn write(h: &mut H, id: u64, ep: &str, action: WriteAction) -> Vec<(ReqId, Request)> {
    h.core
        .write_presence(
            WriteRequest {
                id,
                endpoint: ep.into(),
                action,
            },
            h.now,
        )
        .unwrap();
    h.requests()
}

fn put(reqs: &[(ReqId, Request)]) -> (ReqId, Value) {
    let (id, r) = reqs.iter().find(|(_, r)| r.method == "PUT").expect("a PUT");
    assert_eq!(
        r.url,
        format!("{SERVER}/restapi/v1.0/account/~/extension/62000001/presence")
    );
    (*id, crate::core::body_json(r))
}

fn status(avail: Availability) -> PresenceIntent {
    PresenceIntent {
        availability: avail,
        activity: None,
        note: None,
        dnd_scope: None,
        expires_in_ms: None,
    }
}

/// The PUT answered, and its echo notified.
fn land(h: &mut H, conn: u64, id: ReqId, seq: u64, body: Value) {
    h.answer(id, resp(200, json!({})));
    h.ws_event(conn, event("62000001", seq, body));
}

#[test]
fn dnd_for_all_calls_is_applied_and_its_echo_marked() {
    let mut h = H::new(settings(&[]), Stored::default());
    let conn = h.live(&["101"]);
    let reqs = write(&mut h, 41, "101", WriteAction::Set(dnd(None)));
    let (id, body) = put(&reqs);
    assert_eq!(body, json!({"dndStatus": "DoNotAcceptAnyCalls"}));
    land(
        &mut h,
        conn,
        id,
        10,
        json!({"dndStatus": "DoNotAcceptAnyCalls", "telephonyStatus": "NoCall"}),
    );
    assert_eq!(h.outcomes(), vec![(41, WriteOutcome::Applied)]);
    let u = h.presences().last().unwrap().clone();
    assert_eq!(u.origin, UpdateOrigin::HubWrite(41));
    assert!(u.telephony.unwrap().do_not_disturb);
    // A later change of the line is the platform's own.
    h.ws_event(
        conn,
        event("62000001", 11, json!({"telephonyStatus": "Ringing"})),
    );
    assert_eq!(h.presences().last().unwrap().origin, UpdateOrigin::Platform);
}

#[test]
fn dnd_for_queue_calls_declines_department_calls_only() {
    let mut h = H::new(settings(&[]), Stored::default());
    h.live(&["101"]);
    let reqs = write(
        &mut h,
        5,
        "101",
        WriteAction::Set(dnd(Some(DndScope::QueueCalls))),
    );
    assert_eq!(
        put(&reqs).1,
        json!({"dndStatus": "DoNotAcceptDepartmentCalls"})
    );
}

#[test]
fn restore_puts_back_what_the_person_had() {
    let mut h = H::new(settings(&[]), Stored::default());
    let conn = h.live(&["101"]);
    let (id, _) = put(&write(&mut h, 1, "101", WriteAction::Set(dnd(None))));
    land(
        &mut h,
        conn,
        id,
        10,
        json!({"dndStatus": "DoNotAcceptAnyCalls"}),
    );
    let (id, body) = put(&write(&mut h, 2, "101", WriteAction::Restore));
    assert_eq!(body, json!({"dndStatus": "TakeAllCalls"}));
    land(&mut h, conn, id, 11, json!({"dndStatus": "TakeAllCalls"}));
    assert_eq!(
        h.outcomes(),
        vec![(1, WriteOutcome::Applied), (2, WriteOutcome::Restored)]
    );
    assert_eq!(
        h.presences().last().unwrap().origin,
        UpdateOrigin::HubWrite(2)
    );
    // Nothing standing: a second restore has nothing to do.
    let reqs = write(&mut h, 3, "101", WriteAction::Restore);
    assert!(reqs.iter().all(|(_, r)| r.method != "PUT"));
    assert_eq!(h.outcomes().last(), Some(&(3, WriteOutcome::Restored)));
}

#[test]
fn restore_after_the_person_changed_it_is_user_changed() {
    let mut h = H::new(settings(&[]), Stored::default());
    let conn = h.live(&["101"]);
    let (id, _) = put(&write(&mut h, 1, "101", WriteAction::Set(dnd(None))));
    land(
        &mut h,
        conn,
        id,
        10,
        json!({"dndStatus": "DoNotAcceptAnyCalls"}),
    );
    // The person takes DND off in the app.
    h.ws_event(
        conn,
        event("62000001", 11, json!({"dndStatus": "TakeAllCalls"})),
    );
    assert_eq!(h.presences().last().unwrap().origin, UpdateOrigin::Platform);
    assert!(
        h.requests().iter().all(|(_, r)| r.method != "PUT"),
        "not fought"
    );
    let reqs = write(&mut h, 2, "101", WriteAction::Restore);
    assert!(reqs.iter().all(|(_, r)| r.method != "PUT"));
    assert_eq!(h.outcomes().last(), Some(&(2, WriteOutcome::UserChanged)));
}

#[test]
fn a_waiting_write_is_superseded_by_a_newer_one() {
    let mut h = H::new(settings(&[("rate_limits", "medium=2")]), Stored::default());
    // medium=2: the directory and the subscription used this minute's.
    h.live(&["101"]);
    assert!(write(&mut h, 1, "101", WriteAction::Set(dnd(None))).is_empty());
    assert!(
        write(
            &mut h,
            2,
            "101",
            WriteAction::Set(status(Availability::Busy))
        )
        .is_empty()
    );
    assert_eq!(h.outcomes(), vec![(1, WriteOutcome::Superseded)]);
    h.advance(60_000);
    h.timer(TimerKey::Pump);
    let reqs = h.requests();
    let (id, body) = put(&reqs);
    assert_eq!(body, json!({"userStatus": "Busy"}));
    h.answer(id, resp(200, json!({})));
    assert_eq!(h.outcomes().last(), Some(&(2, WriteOutcome::Applied)));
}

#[test]
fn other_availabilities_write_the_user_status_and_lift_a_hub_dnd() {
    let mut h = H::new(settings(&[]), Stored::default());
    let conn = h.live(&["101"]);
    let (id, _) = put(&write(&mut h, 1, "101", WriteAction::Set(dnd(None))));
    land(
        &mut h,
        conn,
        id,
        10,
        json!({"dndStatus": "DoNotAcceptAnyCalls"}),
    );
    let (id, body) = put(&write(
        &mut h,
        2,
        "101",
        WriteAction::Set(status(Availability::Away)),
    ));
    assert_eq!(
        body,
        json!({"dndStatus": "TakeAllCalls", "userStatus": "Busy"})
    );
    land(
        &mut h,
        conn,
        id,
        11,
        json!({"dndStatus": "TakeAllCalls", "userStatus": "Busy"}),
    );
    assert_eq!(
        h.presences().last().unwrap().origin,
        UpdateOrigin::HubWrite(2)
    );
    for (n, (a, v)) in [
        (Availability::Offline, "Offline"),
        (Availability::Available, "Available"),
    ]
    .into_iter()
    .enumerate()
    {
        let (id, body) = put(&write(
            &mut h,
            3 + n as u64,
            "101",
            WriteAction::Set(status(a)),
        ));
        assert_eq!(body, json!({"userStatus": v}));
        land(&mut h, conn, id, 12 + n as u64, json!({"userStatus": v}));
    }
    let reqs = write(
        &mut h,
        9,
        "101",
        WriteAction::Set(status(Availability::Unknown)),
    );
    assert!(reqs.is_empty());
    assert!(matches!(
        h.outcomes().last(),
        Some((9, WriteOutcome::Unsupported(_)))
    ));
}

#[test]
fn an_expiring_write_is_lifted_by_the_connector() {
    let mut h = H::new(settings(&[]), Stored::default());
    let conn = h.live(&["101"]);
    let mut intent = dnd(None);
    intent.expires_in_ms = Some(120_000);
    let reqs = write(&mut h, 1, "101", WriteAction::Set(intent));
    assert!(h.log.contains(&Action::SetTimer(
        TimerKey::Expire("62000001".into()),
        120_000
    )));
    let (id, _) = put(&reqs);
    land(
        &mut h,
        conn,
        id,
        10,
        json!({"dndStatus": "DoNotAcceptAnyCalls"}),
    );
    h.advance(120_000);
    h.timer(TimerKey::Expire("62000001".into()));
    let (id, body) = put(&h.requests());
    assert_eq!(body, json!({"dndStatus": "TakeAllCalls"}));
    land(&mut h, conn, id, 11, json!({"dndStatus": "TakeAllCalls"}));
    assert_eq!(
        h.presences().last().unwrap().origin,
        UpdateOrigin::HubWrite(1)
    );
    assert_eq!(
        h.outcomes(),
        vec![(1, WriteOutcome::Applied)],
        "one outcome per write"
    );
}

#[test]
fn restore_works_across_a_restart() {
    let mut h = H::new(settings(&[]), Stored::default());
    let conn = h.live(&["101"]);
    let (id, _) = put(&write(&mut h, 1, "101", WriteAction::Set(dnd(None))));
    land(
        &mut h,
        conn,
        id,
        10,
        json!({"dndStatus": "DoNotAcceptAnyCalls"}),
    );
    let stored = h.stored();
    assert!(!stored.exts.is_empty());
    let mut again = H::new(settings(&[]), stored);
    again.requests();
    let reqs = again.requests();
    let _ = reqs;
    // Signed in from the store: directory, then the watch and its read,
    // which shows the hub's DND still standing.
    let reqs = {
        let mut all = again
            .log
            .iter()
            .filter_map(|a| match a {
                Action::Http(id, r) => Some((*id, r.clone())),
                _ => None,
            })
            .collect::<Vec<_>>();
        all.retain(|(_, r)| r.url.contains("/extension?"));
        all
    };
    again.answer(reqs[0].0, resp(200, directory_body()));
    let reqs = again.watch(&["101"]);
    let rid = reqs
        .iter()
        .find(|(_, r)| r.url.contains("62000001/presence"))
        .unwrap()
        .0;
    again.answer(
        rid,
        resp(
            200,
            presence_body("62000001", "DoNotAcceptAnyCalls", "NoCall"),
        ),
    );
    assert_eq!(
        again.presences().last().unwrap().origin,
        UpdateOrigin::Platform
    );
    assert!(
        again.requests().iter().all(|(_, r)| r.method != "PUT"),
        "the hub's DND is not taken for the person's"
    );
    let (_, body) = put(&write(&mut again, 2, "101", WriteAction::Restore));
    assert_eq!(body, json!({"dndStatus": "TakeAllCalls"}));
}

#[test]
fn refused_and_throttled_writes_fail_with_the_platforms_answer() {
    let mut h = H::new(settings(&[]), Stored::default());
    h.live(&["101"]);
    let (id, _) = put(&write(&mut h, 1, "101", WriteAction::Set(dnd(None))));
    h.answer(id, resp(403, json!({"errorCode": "InsufficientPermissions",
        "message": "In order to call this API endpoint, application needs to have [EditPresence] permission"})));
    let Some((
        1,
        WriteOutcome::Failed(WriteFailure {
            retryable,
            status,
            message,
            ..
        }),
    )) = h.outcomes().last().cloned()
    else {
        panic!("{:?}", h.outcomes());
    };
    assert!(!retryable);
    assert_eq!(status, Some(403));
    assert!(message.contains("EditPresence"));
    assert!(h.last_status().1.contains("EditPresence"));
    // The refused write left nothing standing: a restore has nothing to do.
    write(&mut h, 2, "101", WriteAction::Restore);
    assert_eq!(h.outcomes().last(), Some(&(2, WriteOutcome::Restored)));
    let (id, _) = put(&write(&mut h, 3, "101", WriteAction::Set(dnd(None))));
    h.answer(id, resp_h(429, &[("Retry-After", "20")], json!({})));
    assert_eq!(
        h.outcomes().last(),
        Some(&(
            3,
            WriteOutcome::Failed(WriteFailure {
                message: "RingCentral did not take it: throttled (HTTP 429)".into(),
                retryable: true,
                retry_after_ms: Some(20_000),
                status: Some(429),
            })
        ))
    );
}

#[test]
fn unknown_endpoints_are_refused_and_unsent_writes_fail_in_time() {
    let mut h = H::new(settings(&[]), Stored::default());
    h.live(&["101"]);
    let r = h.core.write_presence(
        WriteRequest {
            id: 1,
            endpoint: "999".into(),
            action: WriteAction::Restore,
        },
        h.now,
    );
    assert_eq!(r, Err(ConnectorError::UnknownEndpoint("999".into())));
    // A write to an extension not read yet waits for its read; unanswered
    // for a minute, it fails retryably.
    let reqs = write(&mut h, 2, "102", WriteAction::Set(dnd(None)));
    assert!(
        reqs.iter()
            .any(|(_, r)| r.url.contains("62000002/presence"))
    );
    h.advance(60_000);
    h.timer(TimerKey::Tick);
    assert!(matches!(h.outcomes().last(), Some((2, WriteOutcome::Failed(f))) if f.retryable));
}
