//! Write-back: publish, restore, echoes, expiry, superseded writes.

use presence_connector_sdk::{
    Activity, Availability, ConnectorError, PresenceIntent, UpdateOrigin, WriteAction,
    WriteOutcome, WriteRequest,
};
use serde_json::{Value, json};

use super::harness::*;
use crate::core::{Held, keys};

fn dnd(id: u64, ep: &str, expires: Option<u64>) -> WriteRequest {
    WriteRequest {
        id,
        endpoint: ep.into(),
        action: WriteAction::Set(PresenceIntent {
            availability: Availability::DoNotDisturb,
            activity: None,
            note: None,
            dnd_scope: None,
            expires_in_ms: expires,
        }),
    }
}

fn restore(id: u64, ep: &str) -> WriteRequest {
    WriteRequest {
        id,
        endpoint: ep.into(),
        action: WriteAction::Restore,
    }
}

fn answer(h: &mut H, m: &Value, outcome: &str) {
    let op = if m["type"] == "publish" {
        "publish"
    } else {
        "restore"
    };
    h.bridge(json!({"v": 1, "type": "publish-result", "request_id": m["request_id"], "target": m["target"], "op": op, "outcome": outcome}));
}

fn trusted_live() -> H {
    let mut h = H::new(TRUSTED);
    h.up("any");
    h.watch_active(&["alice@contoso.com"]);
    h.presence("sip:alice@contoso.com", 1, 3500, None);
    h.updates();
    h
}

#[test]
fn dnd_is_published_applied_and_its_echo_marked() {
    let mut h = trusted_live();
    h.core
        .write_presence(dnd(7, "alice@contoso.com", None), h.now)
        .unwrap();
    h.collect();
    let p = h.sent_of("publish").pop().unwrap();
    assert_eq!(p["target"], "sip:alice@contoso.com");
    assert_eq!(p["availability"], 9500);
    assert_eq!(p["activity"], Value::Null);
    // The echo may come before the result.
    h.presence("sip:alice@contoso.com", 2, 9500, None);
    let u = h.updates().pop().unwrap();
    assert_eq!(u.origin, UpdateOrigin::HubWrite(7));
    answer(&mut h, &p, "applied");
    assert_eq!(h.outcomes(), vec![(7, WriteOutcome::Applied)]);
    // Later pushes are the platform's.
    h.presence("sip:alice@contoso.com", 3, 9500, None);
    assert_eq!(h.updates().pop().unwrap().origin, UpdateOrigin::Platform);
    // Kept in the store.
    let kv = h.kv();
    assert_eq!(kv.len(), 1);
    assert_eq!(
        kv[0].0,
        format!("{}sip:alice@contoso.com", keys::HELD_PREFIX)
    );
    let held: Held = serde_json::from_slice(kv[0].1.as_ref().unwrap()).unwrap();
    assert_eq!((held.id, held.availability), (7, 9500));
}

#[test]
fn a_push_in_another_band_before_the_echo_is_not_taken_for_it() {
    let mut h = trusted_live();
    h.core
        .write_presence(dnd(7, "alice@contoso.com", None), h.now)
        .unwrap();
    h.collect();
    let p = h.sent_of("publish").pop().unwrap();
    answer(&mut h, &p, "applied");
    h.presence("sip:alice@contoso.com", 2, 3500, None);
    assert_eq!(h.updates().pop().unwrap().origin, UpdateOrigin::Platform);
    h.presence("sip:alice@contoso.com", 3, 9500, None);
    assert_eq!(h.updates().pop().unwrap().origin, UpdateOrigin::HubWrite(7));
}

#[test]
fn restore_deletes_the_publication_and_is_restored() {
    let mut h = trusted_live();
    h.core
        .write_presence(dnd(7, "alice@contoso.com", None), h.now)
        .unwrap();
    h.collect();
    let p = h.sent_of("publish").pop().unwrap();
    answer(&mut h, &p, "applied");
    h.presence("sip:alice@contoso.com", 2, 9500, None);
    h.core
        .write_presence(restore(8, "alice@contoso.com"), h.now)
        .unwrap();
    h.collect();
    let r = h.sent_of("restore").pop().unwrap();
    assert_eq!(r["target"], "sip:alice@contoso.com");
    answer(&mut h, &r, "applied");
    h.presence("sip:alice@contoso.com", 3, 3500, None);
    assert_eq!(h.updates().pop().unwrap().origin, UpdateOrigin::HubWrite(8));
    let o = h.outcomes();
    assert_eq!(o.last().unwrap(), &(8, WriteOutcome::Restored));
    assert!(
        h.kv().iter().any(|(_, v)| v.is_none()),
        "held entry deleted"
    );
}

#[test]
fn restore_after_the_person_changed_is_user_changed() {
    let mut h = trusted_live();
    h.core
        .write_presence(dnd(7, "alice@contoso.com", None), h.now)
        .unwrap();
    h.collect();
    let p = h.sent_of("publish").pop().unwrap();
    answer(&mut h, &p, "applied");
    h.presence("sip:alice@contoso.com", 2, 9500, None);
    // The person's own state shows instead of the hub's.
    h.presence("sip:alice@contoso.com", 3, 15500, None);
    assert_eq!(h.updates().pop().unwrap().origin, UpdateOrigin::Platform);
    h.core
        .write_presence(restore(8, "alice@contoso.com"), h.now)
        .unwrap();
    h.collect();
    let r = h.sent_of("restore").pop().unwrap();
    answer(&mut h, &r, "applied");
    assert_eq!(
        h.outcomes().last().unwrap(),
        &(8, WriteOutcome::UserChanged)
    );
}

#[test]
fn restore_without_a_known_write_is_still_sent() {
    let mut h = trusted_live();
    h.core
        .write_presence(restore(9, "bob@contoso.com"), h.now)
        .unwrap();
    h.collect();
    let r = h.sent_of("restore").pop().unwrap();
    assert_eq!(r["target"], "sip:bob@contoso.com");
    answer(&mut h, &r, "applied");
    assert_eq!(h.outcomes(), vec![(9, WriteOutcome::Restored)]);
}

#[test]
fn a_waiting_write_is_superseded_one_on_the_wire_is_not() {
    let mut h = trusted_live();
    h.core
        .write_presence(dnd(1, "alice@contoso.com", None), h.now)
        .unwrap();
    h.core
        .write_presence(dnd(2, "alice@contoso.com", None), h.now)
        .unwrap();
    h.core
        .write_presence(restore(3, "alice@contoso.com"), h.now)
        .unwrap();
    h.collect();
    assert_eq!(h.outcomes(), vec![(2, WriteOutcome::Superseded)]);
    let p = h.sent_of("publish");
    assert_eq!(p.len(), 1);
    assert!(
        h.sent_of("restore").is_empty(),
        "one write per target at a time"
    );
    answer(&mut h, &p[0], "applied");
    let r = h.sent_of("restore").pop().unwrap();
    answer(&mut h, &r, "applied");
    assert_eq!(
        h.outcomes(),
        vec![(1, WriteOutcome::Applied), (3, WriteOutcome::Restored)]
    );
}

#[test]
fn a_user_endpoint_publishes_only_its_own_uri() {
    let mut h = H::new(USER);
    h.up("self");
    h.core
        .write_presence(dnd(1, "alice@contoso.com", None), h.now)
        .unwrap();
    h.core
        .write_presence(dnd(2, "Imagicle.Presence@contoso.com", None), h.now)
        .unwrap();
    h.collect();
    let o = h.outcomes();
    assert!(
        matches!(&o[0], (1, WriteOutcome::Unsupported(m)) if m.contains("trusted application")),
        "{o:?}"
    );
    let p = h.sent_of("publish");
    assert_eq!(p.len(), 1);
    assert_eq!(p[0]["target"], "sip:Imagicle.Presence@contoso.com");
}

#[test]
fn a_bridge_without_publishing_refuses_writes() {
    let mut h = H::new(TRUSTED);
    h.up("none");
    h.core
        .write_presence(dnd(1, "alice@contoso.com", None), h.now)
        .unwrap();
    h.collect();
    assert!(matches!(
        &h.outcomes()[0],
        (1, WriteOutcome::Unsupported(_))
    ));
}

#[test]
fn unknown_availability_and_bad_endpoints() {
    let mut h = trusted_live();
    let mut w = dnd(1, "alice@contoso.com", None);
    if let WriteAction::Set(i) = &mut w.action {
        i.availability = Availability::Unknown;
    }
    h.core.write_presence(w, h.now).unwrap();
    h.collect();
    assert!(matches!(
        &h.outcomes()[0],
        (1, WriteOutcome::Unsupported(_))
    ));
    let e = h
        .core
        .write_presence(dnd(2, "4711", None), h.now)
        .unwrap_err();
    assert_eq!(e, ConnectorError::UnknownEndpoint("4711".into()));
    h.collect();
    assert!(h.outcomes().is_empty(), "a refused write has no outcome");
}

#[test]
fn activities_and_notes_are_published() {
    let mut h = trusted_live();
    let w = WriteRequest {
        id: 4,
        endpoint: "alice@contoso.com".into(),
        action: WriteAction::Set(PresenceIntent {
            availability: Availability::Busy,
            activity: Some(Activity::InACall),
            note: Some("In a Teams call".into()),
            dnd_scope: None,
            expires_in_ms: None,
        }),
    };
    h.core.write_presence(w, h.now).unwrap();
    h.collect();
    let p = h.sent_of("publish").pop().unwrap();
    assert_eq!(p["availability"], 6500);
    assert_eq!(
        p["activity"],
        json!({"token": "on-the-phone", "custom": null})
    );
    assert_eq!(p["note"], "In a Teams call");
}

#[test]
fn failures_and_unsupported_answers_are_reported_once() {
    let mut h = trusted_live();
    h.core
        .write_presence(dnd(1, "alice@contoso.com", None), h.now)
        .unwrap();
    h.collect();
    let p = h.sent_of("publish").pop().unwrap();
    h.bridge(json!({"v": 1, "type": "publish-result", "request_id": p["request_id"], "target": p["target"], "op": "publish", "outcome": "failed", "code": "forbidden", "retryable": false, "reason": "403 Forbidden"}));
    let o = h.outcomes();
    assert!(
        matches!(&o[..], [(1, WriteOutcome::Failed(f))] if !f.retryable && f.message.contains("forbidden")),
        "{o:?}"
    );
    h.core
        .write_presence(dnd(2, "alice@contoso.com", None), h.now)
        .unwrap();
    h.collect();
    let p = h.sent_of("publish").pop().unwrap();
    h.bridge(json!({"v": 1, "type": "publish-result", "request_id": p["request_id"], "target": p["target"], "op": "publish", "outcome": "failed", "code": "endpoint-lost", "retryable": true, "reason": "not established"}));
    assert!(matches!(&h.outcomes()[..], [(2, WriteOutcome::Failed(f))] if f.retryable));
    h.core
        .write_presence(dnd(3, "alice@contoso.com", None), h.now)
        .unwrap();
    h.collect();
    let p = h.sent_of("publish").pop().unwrap();
    h.bridge(json!({"v": 1, "type": "publish-result", "request_id": p["request_id"], "target": p["target"], "op": "publish", "outcome": "unsupported", "reason": "nope"}));
    assert_eq!(
        h.outcomes(),
        vec![(3, WriteOutcome::Unsupported("nope".into()))]
    );
    // An error answer instead of a result.
    h.core
        .write_presence(dnd(4, "alice@contoso.com", None), h.now)
        .unwrap();
    h.collect();
    let p = h.sent_of("publish").pop().unwrap();
    h.bridge(json!({"v": 1, "type": "error", "code": "bad-message", "detail": "availability out of range", "request_id": p["request_id"], "fatal": false}));
    assert!(matches!(&h.outcomes()[..], [(4, WriteOutcome::Failed(_))]));
}

#[test]
fn a_connection_lost_before_the_answer_fails_retryably() {
    let mut h = trusted_live();
    h.core
        .write_presence(dnd(1, "alice@contoso.com", None), h.now)
        .unwrap();
    h.collect();
    h.sent_of("publish");
    h.close(None, Some(presence_connector_sdk::Failure::Reset));
    let o = h.outcomes();
    assert!(
        matches!(&o[..], [(1, WriteOutcome::Failed(f))] if f.retryable && f.message.contains("may have landed")),
        "{o:?}"
    );
}

#[test]
fn an_unanswered_write_fails_after_35_s() {
    let mut h = trusted_live();
    h.core
        .write_presence(dnd(1, "alice@contoso.com", None), h.now)
        .unwrap();
    h.collect();
    h.run_answering(34_000);
    assert!(h.outcomes().is_empty());
    h.run_answering(2_000);
    assert!(matches!(&h.outcomes()[..], [(1, WriteOutcome::Failed(f))] if f.retryable));
}

#[test]
fn writes_wait_for_the_bridge_a_while() {
    let mut h = H::new(TRUSTED);
    h.core
        .write_presence(dnd(1, "alice@contoso.com", None), h.now)
        .unwrap();
    h.collect();
    assert!(h.outcomes().is_empty());
    h.up("any");
    assert_eq!(h.sent_of("publish").len(), 1);

    let mut h = H::new(TRUSTED);
    h.core
        .write_presence(dnd(1, "alice@contoso.com", None), h.now)
        .unwrap();
    h.collect();
    h.close(None, Some(presence_connector_sdk::Failure::Refused));
    h.run_for(31_000);
    let o = h.outcomes();
    assert!(
        matches!(&o[..], [(1, WriteOutcome::Failed(f))] if f.retryable && f.message.contains("not connected")),
        "{o:?}"
    );
}

#[test]
fn an_expiring_write_is_restored_when_it_lapses() {
    let mut h = trusted_live();
    h.core
        .write_presence(dnd(1, "alice@contoso.com", Some(60_000)), h.now)
        .unwrap();
    h.collect();
    let p = h.sent_of("publish").pop().unwrap();
    answer(&mut h, &p, "applied");
    let held: Held = serde_json::from_slice(h.kv()[0].1.as_ref().unwrap()).unwrap();
    assert_eq!(held.expires_at, Some(h.now + 60_000));
    h.run_answering(59_000);
    assert!(h.sent_of("restore").is_empty());
    h.run_answering(1_500);
    let r = h.sent_of("restore").pop().expect("restored at the lapse");
    answer(&mut h, &r, "applied");
    assert!(
        h.outcomes().iter().all(|(id, _)| *id == 1),
        "no outcome for the connector's own restore"
    );
    assert!(h.kv().iter().any(|(_, v)| v.is_none()));
}

#[test]
fn a_newer_write_replaces_the_expiry() {
    let mut h = trusted_live();
    h.core
        .write_presence(dnd(1, "alice@contoso.com", Some(60_000)), h.now)
        .unwrap();
    h.collect();
    let p = h.sent_of("publish").pop().unwrap();
    answer(&mut h, &p, "applied");
    h.run_answering(30_000);
    h.core
        .write_presence(dnd(2, "alice@contoso.com", Some(60_000)), h.now)
        .unwrap();
    h.collect();
    let p = h.sent_of("publish").pop().unwrap();
    answer(&mut h, &p, "applied");
    h.run_answering(45_000);
    assert!(
        h.sent_of("restore").is_empty(),
        "the first expiry no longer holds"
    );
    h.run_answering(16_000);
    assert_eq!(h.sent_of("restore").len(), 1);
}

#[test]
fn a_lapse_missed_while_stopped_is_restored_after_the_restart() {
    let held = Held {
        id: 5,
        availability: 9500,
        expires_at: Some(1_000),
        overridden: false,
    };
    let stored = vec![(
        "sip:alice@contoso.com".to_string(),
        serde_json::to_vec(&held).unwrap(),
    )];
    let mut h = H::with_held(TRUSTED, stored);
    h.run_for(1_000);
    assert!(h.sent_of("restore").is_empty());
    h.up("any");
    let r = h
        .sent_of("restore")
        .pop()
        .expect("restore after the reconnect");
    assert_eq!(r["target"], "sip:alice@contoso.com");
    answer(&mut h, &r, "applied");
    assert!(h.outcomes().is_empty());
    // A failing restore of its own is tried again.
    let stored = vec![(
        "sip:bob@contoso.com".to_string(),
        serde_json::to_vec(&held).unwrap(),
    )];
    let mut h = H::with_held(TRUSTED, stored);
    h.up("any");
    let r = h.sent_of("restore").pop().unwrap();
    h.bridge(json!({"v": 1, "type": "publish-result", "request_id": r["request_id"], "target": r["target"], "op": "restore", "outcome": "failed", "code": "timeout", "retryable": true, "reason": "timed out"}));
    assert!(h.sent_of("restore").is_empty());
    h.run_answering(31_000);
    assert_eq!(h.sent_of("restore").len(), 1);
}

#[test]
fn shutdown_fails_every_open_write_once() {
    let mut h = trusted_live();
    h.core
        .write_presence(dnd(1, "alice@contoso.com", None), h.now)
        .unwrap();
    h.core
        .write_presence(restore(2, "alice@contoso.com"), h.now)
        .unwrap();
    h.core
        .write_presence(dnd(3, "bob@contoso.com", None), h.now)
        .unwrap();
    h.collect();
    h.core.leave("hub-stopping", h.now);
    h.collect();
    let mut ids: Vec<u64> = h.outcomes().into_iter().map(|(id, _)| id).collect();
    ids.sort();
    assert_eq!(ids, [1, 2, 3]);
}
