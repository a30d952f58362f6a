//! Reflect-DND and forced queue-call acceptance, and how they layer with the
//! hub's writes and the person's own changes.

use super::reads::dnd;
use super::*;
use presence_connector_sdk::{DndScope, WriteAction, WriteRequest};

fn puts(h: &mut H) -> Vec<(ReqId, Value)> {
    h.requests()
        .into_iter()
        .filter(|(_, r)| r.method == "PUT")
        .map(|(id, r)| (id, crate::core::body_json(&r)))
        .collect()
}

fn call(h: &mut H, conn: u64, seq: u64, status: &str) {
    h.ws_event(
        conn,
        event("62000001", seq, json!({"telephonyStatus": status})),
    );
}

const REFLECT: &str = "reflect-dnd";
const FORCE: &str = "force-accept-queue-calls";

#[test]
fn reflect_dnd_holds_calls_back_during_a_call_not_while_ringing() {
    let mut h = H::new(settings(&[("reflect_dnd", "true")]), Stored::default());
    let conn = h.live(&["101"]);
    call(&mut h, conn, 10, "Ringing");
    assert!(
        puts(&mut h).is_empty(),
        "DND while ringing would turn the ringing call away"
    );
    call(&mut h, conn, 11, "CallConnected");
    let p = puts(&mut h);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].1, json!({"dndStatus": "DoNotAcceptAnyCalls"}));
    h.answer(p[0].0, resp(200, json!({})));
    h.ws_event(
        conn,
        event("62000001", 12, json!({"dndStatus": "DoNotAcceptAnyCalls"})),
    );
    assert_eq!(
        h.presences().last().unwrap().origin,
        UpdateOrigin::ConnectorRule(REFLECT.into())
    );
    // On hold: still in the call, nothing more.
    call(&mut h, conn, 13, "OnHold");
    assert!(puts(&mut h).is_empty());
    call(&mut h, conn, 14, "NoCall");
    let p = puts(&mut h);
    assert_eq!(p[0].1, json!({"dndStatus": "TakeAllCalls"}));
    h.answer(p[0].0, resp(200, json!({})));
    h.ws_event(
        conn,
        event("62000001", 15, json!({"dndStatus": "TakeAllCalls"})),
    );
    assert_eq!(
        h.presences().last().unwrap().origin,
        UpdateOrigin::ConnectorRule(REFLECT.into())
    );
    assert!(h.outcomes().is_empty(), "rules report no write outcomes");
}

#[test]
fn a_hub_dnd_during_a_reflected_call_is_not_lifted_when_the_call_ends() {
    let mut h = H::new(settings(&[("reflect_dnd", "true")]), Stored::default());
    let conn = h.live(&["101"]);
    call(&mut h, conn, 10, "CallConnected");
    let p = puts(&mut h);
    h.answer(p[0].0, resp(200, json!({})));
    h.ws_event(
        conn,
        event("62000001", 11, json!({"dndStatus": "DoNotAcceptAnyCalls"})),
    );
    // The hub wants DND too (e.g. a Teams meeting): already there.
    h.core
        .write_presence(
            WriteRequest {
                id: 7,
                endpoint: "101".into(),
                action: WriteAction::Set(dnd(None)),
            },
            h.now,
        )
        .unwrap();
    assert!(puts(&mut h).is_empty());
    assert_eq!(h.outcomes(), vec![(7, WriteOutcome::Applied)]);
    call(&mut h, conn, 12, "NoCall");
    assert!(puts(&mut h).is_empty(), "the hub's DND stays");
    // The hub restores: the person's own value comes back.
    h.core
        .write_presence(
            WriteRequest {
                id: 8,
                endpoint: "101".into(),
                action: WriteAction::Restore,
            },
            h.now,
        )
        .unwrap();
    let p = puts(&mut h);
    assert_eq!(p[0].1, json!({"dndStatus": "TakeAllCalls"}));
}

#[test]
fn a_person_with_dnd_of_their_own_keeps_it_after_the_call() {
    let mut h = H::new(settings(&[("reflect_dnd", "true")]), Stored::default());
    let conn = h.live(&["101"]);
    h.ws_event(
        conn,
        event("62000001", 10, json!({"dndStatus": "DoNotAcceptAnyCalls"})),
    );
    call(&mut h, conn, 11, "CallConnected");
    call(&mut h, conn, 12, "NoCall");
    assert!(puts(&mut h).is_empty());
}

#[test]
fn lifting_the_reflected_dnd_during_the_call_is_respected() {
    let mut h = H::new(settings(&[("reflect_dnd", "true")]), Stored::default());
    let conn = h.live(&["101"]);
    call(&mut h, conn, 10, "CallConnected");
    let p = puts(&mut h);
    h.answer(p[0].0, resp(200, json!({})));
    h.ws_event(
        conn,
        event("62000001", 11, json!({"dndStatus": "DoNotAcceptAnyCalls"})),
    );
    h.ws_event(
        conn,
        event("62000001", 12, json!({"dndStatus": "TakeAllCalls"})),
    );
    assert_eq!(h.presences().last().unwrap().origin, UpdateOrigin::Platform);
    call(&mut h, conn, 13, "OnHold");
    call(&mut h, conn, 14, "NoCall");
    assert!(puts(&mut h).is_empty(), "no fight, nothing to lift");
}

#[test]
fn queue_calls_switched_off_are_switched_on_again() {
    let mut h = H::new(
        settings(&[("force_accept_queue_calls", "true")]),
        Stored::default(),
    );
    let conn = h.live(&["101"]);
    h.ws_event(
        conn,
        event(
            "62000001",
            10,
            json!({"dndStatus": "DoNotAcceptDepartmentCalls"}),
        ),
    );
    assert_eq!(h.presences().last().unwrap().origin, UpdateOrigin::Platform);
    let p = puts(&mut h);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].1, json!({"dndStatus": "TakeAllCalls"}));
    h.answer(p[0].0, resp(200, json!({})));
    h.ws_event(
        conn,
        event("62000001", 11, json!({"dndStatus": "TakeAllCalls"})),
    );
    assert_eq!(
        h.presences().last().unwrap().origin,
        UpdateOrigin::ConnectorRule(FORCE.into())
    );
    assert!(puts(&mut h).is_empty());
}

#[test]
fn the_hubs_queue_dnd_is_never_undone_by_the_forced_acceptance() {
    let mut h = H::new(
        settings(&[("force_accept_queue_calls", "true")]),
        Stored::default(),
    );
    let conn = h.live(&["101"]);
    h.core
        .write_presence(
            WriteRequest {
                id: 3,
                endpoint: "101".into(),
                action: WriteAction::Set(dnd(Some(DndScope::QueueCalls))),
            },
            h.now,
        )
        .unwrap();
    let p = puts(&mut h);
    assert_eq!(p[0].1, json!({"dndStatus": "DoNotAcceptDepartmentCalls"}));
    h.answer(p[0].0, resp(200, json!({})));
    h.ws_event(
        conn,
        event(
            "62000001",
            10,
            json!({"dndStatus": "DoNotAcceptDepartmentCalls"}),
        ),
    );
    assert_eq!(
        h.presences().last().unwrap().origin,
        UpdateOrigin::HubWrite(3)
    );
    assert!(puts(&mut h).is_empty());
}

#[test]
fn excluded_people_are_left_alone() {
    for exclusion in ["62000001", "101", "Alice@Example.com"] {
        let s = settings(&[
            ("force_accept_queue_calls", "true"),
            ("force_accept_exclusions", &format!("999, {exclusion}")),
        ]);
        let mut h = H::new(s, Stored::default());
        let conn = h.live(&["101"]);
        h.ws_event(
            conn,
            event(
                "62000001",
                10,
                json!({"dndStatus": "DoNotAcceptDepartmentCalls"}),
            ),
        );
        assert!(puts(&mut h).is_empty(), "{exclusion}");
    }
}

#[test]
fn new_communication_handling_queue_acceptance_is_forced_on() {
    let mut h = H::new(
        settings(&[("force_accept_queue_calls", "true")]),
        Stored::default(),
    );
    let conn = h.live(&["101"]);
    h.ws_event(
        conn,
        event(
            "62000001",
            10,
            json!({"dndStatus": "Unknown",
        "dndStatusPersonal": "TakeAllCalls", "acceptCallQueueCalls": false}),
        ),
    );
    let p = puts(&mut h);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].1, json!({"acceptCallQueueCalls": true}));
}

#[test]
fn a_platform_that_does_not_keep_rule_writes_is_not_hammered() {
    let mut h = H::new(
        settings(&[("force_accept_queue_calls", "true")]),
        Stored::default(),
    );
    let conn = h.live(&["101"]);
    let mut writes = 0;
    for seq in 0..10 {
        h.ws_event(
            conn,
            event(
                "62000001",
                10 + seq * 2,
                json!({"dndStatus": "DoNotAcceptDepartmentCalls"}),
            ),
        );
        for (id, _) in puts(&mut h) {
            writes += 1;
            h.answer(id, resp(200, json!({})));
        }
        // The echo never comes: the platform shows the person's value again.
        h.advance(31_000);
        h.timer(TimerKey::Tick);
        h.ws_event(
            conn,
            event(
                "62000001",
                11 + seq * 2,
                json!({"dndStatus": "TakeAllCalls"}),
            ),
        );
        puts(&mut h);
    }
    assert!(
        writes <= crate::core::writes::RULE_WRITES,
        "{writes} rule writes"
    );
}
