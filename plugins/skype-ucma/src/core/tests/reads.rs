//! Watching, presence, target and endpoint states, resubscription.

use presence_connector_sdk::{
    Activity, Availability, ConnectorStatus, EndpointState, Failure, LineState, TelephonySource,
    UpdateOrigin,
};
use serde_json::{Value, json};

use super::harness::*;
use presence_connector_sdk::plain::Core as _;

fn raw(u: &presence_connector_sdk::PresenceUpdate, name: &str) -> Option<String> {
    u.raw
        .iter()
        .find(|v| v.name == name)
        .map(|v| v.value.clone())
}

#[test]
fn watches_go_in_batches_of_the_smaller_limit() {
    let mut h = H::new(&with(USER, "watch_batch_size", "200"));
    h.open();
    h.welcome_with(TOKEN, 150);
    h.establish("self");
    let eps: Vec<String> = (0..400)
        .map(|i| format!("user{i:03}@contoso.com"))
        .collect();
    h.core.watch(&eps, h.now);
    h.collect();
    let w = h.sent_of("watch");
    let sizes: Vec<usize> = w
        .iter()
        .map(|m| m["targets"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [150, 150, 100]);
    assert!(w[0]["targets"][0].as_str().unwrap().starts_with("sip:user"));
    let states = h.states();
    assert_eq!(states.len(), 400);
    assert!(states.iter().all(|s| s.1 == EndpointState::Requesting));
}

#[test]
fn watching_before_the_endpoint_waits_for_it() {
    let mut h = H::new(USER);
    h.core.watch(&["alice@contoso.com".into()], h.now);
    h.collect();
    h.open();
    h.welcome();
    assert!(h.sent_of("watch").is_empty());
    h.establish("self");
    let w = h.sent_of("watch");
    assert_eq!(w[0]["targets"], json!(["sip:alice@contoso.com"]));
}

#[test]
fn watch_results_become_endpoint_states() {
    let mut h = H::new(USER);
    h.up("self");
    let eps = [
        "alice@contoso.com",
        "bob@contoso.com",
        "nobody@contoso.com",
        "ceo@contoso.com",
        "odd@contoso.com",
        "err@contoso.com",
    ];
    h.core.watch(&eps.map(String::from), h.now);
    h.collect();
    h.states();
    let w = h.sent_of("watch").pop().unwrap();
    h.bridge(json!({"v": 1, "type": "watch-result", "request_id": w["request_id"], "results": [
        {"target": "sip:alice@contoso.com", "status": "active", "mode": "persistent"},
        {"target": "sip:bob@contoso.com", "status": "active", "mode": "polling", "detail": "presentity limit"},
        {"target": "sip:ceo@contoso.com", "status": "refused", "detail": "403 Forbidden"},
        {"target": "sip:err@contoso.com", "status": "error", "detail": "boom"},
        {"target": "sip:nobody@contoso.com", "status": "not-found"},
        {"target": "sip:odd@contoso.com", "status": "invalid"}
    ]}));
    let states = h.states();
    let get = |ep: &str| states.iter().find(|s| s.0 == ep).cloned().unwrap();
    assert_eq!(get("alice@contoso.com").1, EndpointState::Active);
    let bob = get("bob@contoso.com");
    assert_eq!(bob.1, EndpointState::Active);
    assert!(bob.2.unwrap().contains("polling"));
    assert_eq!(get("ceo@contoso.com").1, EndpointState::AccessDenied);
    assert_eq!(get("nobody@contoso.com").1, EndpointState::NotFound);
    assert_eq!(get("odd@contoso.com").1, EndpointState::NotFound);
    assert_eq!(get("err@contoso.com").1, EndpointState::Error);
    let (_, d) = h.status();
    assert!(
        d.contains("6 targets watched")
            && d.contains("1 access denied")
            && d.contains("2 not found"),
        "{d}"
    );
    // Errors are retried after a minute, refusals after ten; invalid never.
    h.run_answering(61_000);
    let again = h.sent_of("watch");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["targets"], json!(["sip:err@contoso.com"]));
    h.answer_watch(&again[0]);
    h.run_answering(10 * 60_000);
    let again: Vec<Value> = h.sent_of("watch");
    assert_eq!(
        again[0]["targets"],
        json!(["sip:ceo@contoso.com", "sip:nobody@contoso.com"])
    );
}

#[test]
fn an_unanswered_watch_is_an_error_and_retried() {
    let mut h = H::new(USER);
    h.up("self");
    h.core.watch(&["alice@contoso.com".into()], h.now);
    h.collect();
    h.sent_of("watch");
    h.states();
    h.run_answering(20_000);
    let s = h.states();
    assert_eq!(s[0].1, EndpointState::Error);
    h.run_answering(60_000);
    assert_eq!(h.sent_of("watch").len(), 1);
}

#[test]
fn a_target_left_out_of_the_result_is_an_error() {
    let mut h = H::new(USER);
    h.up("self");
    h.core.watch(&["a@x.com".into(), "b@x.com".into()], h.now);
    h.collect();
    h.states();
    let w = h.sent_of("watch").pop().unwrap();
    h.bridge(
        json!({"v": 1, "type": "watch-result", "request_id": w["request_id"], "results": [
        {"target": "sip:a@x.com", "status": "active", "mode": "persistent"}]}),
    );
    let s = h.states();
    assert!(
        s.iter()
            .any(|s| s.0 == "b@x.com" && s.1 == EndpointState::Error)
    );
}

#[test]
fn endpoint_ids_that_are_not_sip_addresses_are_not_found_at_once() {
    let mut h = H::new(USER);
    h.up("self");
    h.core
        .watch(&["1234".into(), "tel:+41441234567".into()], h.now);
    h.collect();
    let s = h.states();
    assert_eq!(s.len(), 2);
    assert!(s.iter().all(|s| s.1 == EndpointState::NotFound));
    assert!(h.sent_of("watch").is_empty());
}

#[test]
fn presence_maps_every_band_and_token_and_keeps_raw_values() {
    let mut h = H::new(USER);
    h.up("self");
    h.watch_active(&["alice@contoso.com"]);
    h.updates();
    let cases: [(i64, Option<&str>, Availability, Option<Activity>); 14] = [
        (3500, None, Availability::Available, None),
        (
            5000,
            None,
            Availability::Available,
            Some(Activity::Inactive),
        ),
        (6500, None, Availability::Busy, None),
        (7500, None, Availability::Busy, Some(Activity::Inactive)),
        (9500, None, Availability::DoNotDisturb, None),
        (12500, None, Availability::Away, Some(Activity::BeRightBack)),
        (15500, None, Availability::Away, None),
        (18500, None, Availability::Offline, None),
        (-1, None, Availability::Unknown, None),
        (
            6500,
            Some("on-the-phone"),
            Availability::Busy,
            Some(Activity::InACall),
        ),
        (
            6500,
            Some("in-a-conference"),
            Availability::Busy,
            Some(Activity::InAConference),
        ),
        (
            6500,
            Some("in-a-meeting"),
            Availability::Busy,
            Some(Activity::InAMeeting),
        ),
        (
            15500,
            Some("out-of-office"),
            Availability::Away,
            Some(Activity::OutOfOffice),
        ),
        (
            6900,
            Some("urgent-interruptions-only"),
            Availability::DoNotDisturb,
            Some(Activity::Other(crate::mapping::URGENT_ONLY.into())),
        ),
    ];
    for (i, (n, token, a, act)) in cases.into_iter().enumerate() {
        h.presence("sip:alice@contoso.com", i as u64 + 1, n, token);
        let u = h.updates().pop().expect("an update");
        assert_eq!(u.endpoint, "alice@contoso.com");
        let rich = u.rich.clone().unwrap();
        assert_eq!(
            (rich.availability, rich.activity),
            (a, act),
            "{n} {token:?}"
        );
        assert_eq!(raw(&u, "availability"), Some(n.to_string()));
        assert_eq!(raw(&u, "activity-token"), token.map(String::from));
        assert_eq!(u.ordering.as_ref().unwrap().sequence, i as u64 + 1);
        assert_eq!(u.origin, UpdateOrigin::Platform);
        assert_eq!(u.observed_at, Some(1_714_986_753_123));
    }
}

#[test]
fn note_custom_text_and_phone_state() {
    let mut h = H::new(USER);
    h.up("self");
    h.watch_active(&["sip:alice@contoso.com"]);
    h.bridge(json!({"v": 1, "type": "presence", "target": "sip:alice@contoso.com", "seq": 1, "ts": "2024-05-06T09:12:33.1234567Z", "initial": true, "availability": 6500, "band": "busy", "activity": {"token": "on-the-phone", "custom": null}, "note": "Back at 3", "out_of_office_note": null, "device": {"phone": "in-a-call", "availability": 6500, "activity_token": "on-the-phone"}, "display_name": "Alice Example", "source_ts": "2024-05-06T09:12:31.000Z"}));
    let u = h.updates().pop().unwrap();
    assert_eq!(u.rich.as_ref().unwrap().note.as_deref(), Some("Back at 3"));
    let tel = u.telephony.clone().unwrap();
    assert_eq!(tel.line, LineState::InCall);
    assert_eq!(tel.source, TelephonySource::SipDerived);
    assert!(!tel.do_not_disturb);
    assert_eq!(raw(&u, "device-phone").as_deref(), Some("in-a-call"));
    assert_eq!(u.observed_at, Some(1_714_986_751_000), "source_ts first");
    h.bridge(json!({"v": 1, "type": "presence", "target": "sip:alice@contoso.com", "seq": 2, "ts": "2024-05-06T09:40:02.5Z", "initial": false, "availability": 3500, "band": "available", "activity": {"token": null, "custom": "Working from the Basel office"}, "note": null, "device": null}));
    let u = h.updates().pop().unwrap();
    let rich = u.rich.unwrap();
    assert_eq!(
        rich.activity,
        Some(Activity::Other("Working from the Basel office".into()))
    );
    assert_eq!(rich.note, None);
    // The phone state went away: unknown, not a lingering call.
    assert_eq!(u.telephony.unwrap().line, LineState::Unknown);
    h.bridge(json!({"v": 1, "type": "presence", "target": "sip:alice@contoso.com", "seq": 3, "ts": "2024-05-06T09:41:02Z", "initial": false, "availability": 9500, "band": "do-not-disturb", "activity": null, "note": null, "device": {"phone": "idle", "availability": null, "activity_token": null}}));
    let tel = h.updates().pop().unwrap().telephony.unwrap();
    assert_eq!((tel.line, tel.do_not_disturb), (LineState::Idle, true));
    // Without a phone state ever, telephony is left alone.
    h.watch_active(&["bob@contoso.com"]);
    h.presence("sip:bob@contoso.com", 1, 3500, None);
    assert_eq!(h.updates().pop().unwrap().telephony, None);
}

#[test]
fn pushes_out_of_order_are_dropped_and_ordering_is_per_connection() {
    let mut h = H::new(USER);
    h.up("self");
    h.watch_active(&["alice@contoso.com"]);
    h.presence("sip:alice@contoso.com", 1, 3500, None);
    h.presence("sip:alice@contoso.com", 2, 6500, None);
    h.presence("sip:alice@contoso.com", 2, 9500, None);
    h.presence("sip:alice@contoso.com", 1, 9500, None);
    let u = h.updates();
    assert_eq!(u.len(), 2);
    let epoch1 = u[0].ordering.clone().unwrap().epoch;
    // A gap is taken (a full snapshot), not dropped.
    h.presence("sip:alice@contoso.com", 5, 15500, None);
    assert_eq!(h.updates().len(), 1);
    // A new connection: seq 1 again, in a new epoch.
    h.close(Some(1011), None);
    h.run_for(1_300);
    h.up("self");
    let w = h.sent_of("watch").pop().unwrap();
    h.answer_watch(&w);
    h.presence("sip:alice@contoso.com", 1, 3500, None);
    let u = h.updates().pop().unwrap();
    let o = u.ordering.unwrap();
    assert_eq!(o.sequence, 1);
    assert_ne!(o.epoch, epoch1);
}

#[test]
fn presence_for_targets_not_watched_is_ignored() {
    let mut h = H::new(USER);
    h.up("self");
    h.presence("sip:stranger@contoso.com", 1, 3500, None);
    assert!(h.updates().is_empty());
}

#[test]
fn two_endpoint_ids_of_one_target_share_one_subscription() {
    let mut h = H::new(USER);
    h.up("self");
    h.watch_active(&["alice@contoso.com", "sip:alice@contoso.com"]);
    h.presence("sip:alice@contoso.com", 1, 3500, None);
    let mut eps: Vec<String> = h.updates().into_iter().map(|u| u.endpoint).collect();
    eps.sort();
    assert_eq!(eps, ["alice@contoso.com", "sip:alice@contoso.com"]);
    // Unwatching one keeps the other.
    h.core.unwatch(&["alice@contoso.com".into()], h.now);
    h.collect();
    assert!(h.sent_of("unwatch").is_empty());
    h.core.unwatch(&["sip:alice@contoso.com".into()], h.now);
    h.collect();
    let u = h.sent_of("unwatch").pop().unwrap();
    assert_eq!(u["targets"], json!(["sip:alice@contoso.com"]));
    h.bridge(json!({"v": 1, "type": "unwatch-result", "request_id": u["request_id"], "results": [{"target": "sip:alice@contoso.com", "status": "removed"}]}));
    h.presence("sip:alice@contoso.com", 2, 6500, None);
    assert!(h.updates().is_empty());
}

#[test]
fn target_state_changes() {
    let mut h = H::new(USER);
    h.up("self");
    h.watch_active(&["ceo@contoso.com"]);
    h.states();
    h.bridge(json!({"v": 1, "type": "target-state", "target": "sip:ceo@contoso.com", "status": "retrying"}));
    assert_eq!(h.states()[0].1, EndpointState::Requesting);
    h.bridge(json!({"v": 1, "type": "target-state", "target": "sip:ceo@contoso.com", "status": "active", "mode": "polling"}));
    let s = h.states();
    assert_eq!(s[0].1, EndpointState::Active);
    assert!(s[0].2.as_deref().unwrap().contains("polling"));
    h.bridge(json!({"v": 1, "type": "target-state", "target": "sip:ceo@contoso.com", "status": "refused", "detail": "subscription terminated: 403"}));
    let s = h.states();
    assert_eq!(s[0].1, EndpointState::AccessDenied);
    assert_eq!(s[0].2.as_deref(), Some("subscription terminated: 403"));
    h.run_answering(10 * 60_000);
    assert_eq!(h.sent_of("watch").len(), 1);
}

#[test]
fn endpoint_lost_shows_unknown_then_recovers() {
    let mut h = H::new(USER);
    h.up("self");
    h.watch_active(&["alice@contoso.com"]);
    h.presence("sip:alice@contoso.com", 1, 6500, None);
    h.updates();
    h.statuses();
    h.bridge(json!({"v": 1, "type": "endpoint-state", "state": "lost", "code": "connection-error", "retry_in_ms": 1000, "detail": "pool fe01 failed over"}));
    let (st, d) = h.status();
    assert_eq!(st, ConnectorStatus::ConnectionError);
    assert!(d.contains("lost") && d.contains("fe01"), "{d}");
    let u = h.updates().pop().unwrap();
    assert_eq!(u.rich.unwrap().availability, Availability::Unknown);
    h.bridge(json!({"v": 1, "type": "endpoint-state", "state": "established", "detail": "re-established on fe02"}));
    assert_eq!(h.status().0, ConnectorStatus::UpAndRunning);
    // The bridge re-subscribed by itself: seq continues, initial.
    h.presence("sip:alice@contoso.com", 2, 3500, None);
    assert_eq!(
        h.updates().pop().unwrap().rich.unwrap().availability,
        Availability::Available
    );
    assert!(h.sent_of("watch").is_empty());
}

#[test]
fn endpoint_given_up_is_set_up_again_and_everything_rewatched() {
    let mut h = H::new(USER);
    h.up("self");
    h.watch_active(&["alice@contoso.com", "bob@contoso.com"]);
    h.presence("sip:alice@contoso.com", 1, 6500, None);
    h.bridge(json!({"v": 1, "type": "endpoint-state", "state": "failed", "code": "forbidden", "detail": "credentials now refused"}));
    let (st, _) = h.status();
    assert_eq!(st, ConnectorStatus::Forbidden);
    assert_eq!(
        h.updates().pop().unwrap().rich.unwrap().availability,
        Availability::Unknown
    );
    h.run_answering(5 * 60_000 + 1_000);
    h.establish("self");
    let w = h.sent_of("watch").pop().unwrap();
    assert_eq!(w["targets"].as_array().unwrap().len(), 2);
}

#[test]
fn reconnect_resubscribes_every_target() {
    let mut h = H::new(USER);
    h.up("self");
    let eps: Vec<String> = (0..250).map(|i| format!("u{i}@contoso.com")).collect();
    h.core.watch(&eps, h.now);
    h.collect();
    for w in h.sent_of("watch") {
        h.answer_watch(&w);
    }
    h.bridge(json!({"v": 1, "type": "bye", "reason": "bridge-restarting"}));
    h.close(Some(1012), None);
    h.run_for(1_300);
    assert_eq!(h.connects().len(), 1);
    h.up("self");
    let w = h.sent_of("watch");
    let n: usize = w
        .iter()
        .map(|m| m["targets"].as_array().unwrap().len())
        .sum();
    assert_eq!((w.len(), n), (3, 250));
}

#[test]
fn a_long_outage_shows_the_targets_unknown() {
    let mut h = H::new(USER);
    h.up("self");
    h.watch_active(&["alice@contoso.com"]);
    h.presence("sip:alice@contoso.com", 1, 6500, None);
    h.updates();
    h.close(None, Some(Failure::Reset));
    h.run_for(20_000);
    assert!(
        h.updates().is_empty(),
        "a short outage keeps the last state"
    );
    h.run_for(11_000);
    let u = h.updates();
    assert_eq!(u.len(), 1);
    assert_eq!(
        u[0].rich.as_ref().unwrap().availability,
        Availability::Unknown
    );
    assert_eq!(
        raw(&u[0], "unknown-because").as_deref(),
        Some("the bridge is unreachable")
    );
}

#[test]
fn a_band_that_disagrees_with_the_number_is_logged_and_the_number_wins() {
    let mut h = H::new(USER);
    h.up("self");
    h.watch_active(&["alice@contoso.com"]);
    h.bridge(json!({"v": 1, "type": "presence", "target": "sip:alice@contoso.com", "seq": 1, "ts": "2024-05-06T09:12:33Z", "initial": true, "availability": 9500, "band": "busy", "activity": null, "note": null, "device": null}));
    let u = h.updates().pop().unwrap();
    assert_eq!(
        u.rich.clone().unwrap().availability,
        Availability::DoNotDisturb
    );
    assert_eq!(raw(&u, "band").as_deref(), Some("busy"));
}
