//! Stopping ends the instance's Graph subscriptions (DELETE), within the
//! grace period the host gives after the shutdown event.

use super::*;

fn deletes(reqs: &[(ReqId, Request)]) -> Vec<(ReqId, String)> {
    reqs.iter()
        .filter(|(_, r)| r.method == "DELETE")
        .map(|(id, r)| (*id, r.url.clone()))
        .collect()
}

fn stored_subs(actions: &[Action]) -> Option<Value> {
    actions.iter().rev().find_map(|a| match a {
        Action::KvSet(k, v) if k == keys::SUBS => Some(serde_json::from_slice(v).unwrap()),
        _ => None,
    })
}

#[test]
fn shutdown_deletes_the_subscriptions_and_forgets_them_once_confirmed() {
    let (mut h, sub, _) = subscribed();
    h.take();
    h.core.shutdown(h.now);
    let actions = h.take();
    let d: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Http(id, r) if r.method == "DELETE" => Some((*id, r.url.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(d, vec![(d[0].0, format!("{GRAPH}/subscriptions/{sub}"))]);
    // Still stored until Graph confirms: a restart after an unfinished
    // goodbye adopts it rather than leaving it to post to nobody.
    assert_eq!(stored_subs(&actions), None);
    // Nothing else goes out any more, whatever fires.
    h.timer(TimerKey::Poll);
    h.timer(TimerKey::Reread);
    h.timer(TimerKey::Reconcile);
    assert!(h.requests().is_empty());
    h.answer(d[0].0, resp(204, Value::Null));
    let stored = stored_subs(&h.take()).expect("stored again");
    assert_eq!(stored["subs"], json!([]));
}

#[test]
fn answers_for_presence_are_dropped_while_stopping() {
    let mut h = app_with_users(&[guid(1)]);
    let reqs = h.requests();
    h.core.shutdown(h.now);
    h.take();
    read_ok(&mut h, reqs[0].0, &[guid(1)], "Busy");
    let late = h.take();
    assert!(
        late.iter()
            .all(|a| !matches!(a, Action::Presence(_) | Action::Http(..))),
        "{late:?}"
    );
}

#[test]
fn an_expired_token_is_refreshed_for_the_goodbye() {
    let (mut h, sub, _) = subscribed();
    h.take();
    h.now += 3_590_000;
    h.core.shutdown(h.now);
    let reqs = h.requests();
    assert_eq!(reqs.len(), 1);
    assert!(form(&reqs[0].1).contains("grant_type=refresh_token"));
    h.token(&reqs, 3600, Some("rt-2"));
    let d = deletes(&h.requests());
    assert_eq!(d.len(), 1);
    assert!(d[0].1.ends_with(&format!("/subscriptions/{sub}")));
    // A delete refused for its token goes again with a fresh one.
    h.answer(
        d[0].0,
        resp(
            401,
            json!({"error": {"code": "InvalidAuthenticationToken", "message": "expired"}}),
        ),
    );
    let reqs = h.requests();
    h.token(&reqs, 3600, Some("rt-3"));
    assert_eq!(deletes(&h.requests()).len(), 1);
}

#[test]
fn a_subscription_created_while_stopping_is_deleted() {
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
    let reqs = h.requests();
    read_ok(&mut h, reqs[0].0, &[guid(1)], "Available");
    h.timer(TimerKey::Reconcile);
    let reqs = h.requests();
    let (create, _) = reqs
        .iter()
        .find(|(_, r)| r.url.ends_with("/subscriptions"))
        .unwrap();
    h.core.shutdown(h.now);
    assert!(deletes(&h.requests()).is_empty());
    h.answer(
        *create,
        resp(201, json!({"id": "late-1", "expirationDateTime": crate::time::format_rfc3339(T0 + 3_600_000)})),
    );
    let d = deletes(&h.requests());
    assert_eq!(d.len(), 1);
    assert!(d[0].1.ends_with("/subscriptions/late-1"));
}

#[test]
fn a_new_configuration_in_the_same_instance_leaves_them_to_adopt() {
    let (mut h, _, _) = subscribed();
    h.take();
    h.core.make_way(h.now);
    assert!(deletes(&h.requests()).is_empty());
}

#[test]
fn stored_subscriptions_posting_elsewhere_are_deleted() {
    let (mut h, sub, _) = subscribed();
    let stored = stored_subs(&h.take()).unwrap();
    let moved = settings(&[
        ("auth_flow", "device-code"),
        ("client_secret", ""),
        (
            "notification_url",
            "https://elsewhere.example.com/hooks/teams/notify",
        ),
    ]);
    let mut h = H::new(
        moved,
        Stored {
            subs: Some(serde_json::to_vec(&stored).unwrap()),
            primary: None,
            ..Stored::default()
        },
    );
    let reqs = h.requests();
    assert!(h.log.contains(&Action::KvDelete(keys::SUBS.into())));
    h.answer(
        reqs[0].0,
        resp(200, json!({"device_code": "dc", "user_code": "U", "verification_uri": "https://x", "interval": 1})),
    );
    h.timer(TimerKey::OAuth(Slot::Primary, TimerKind::DevicePoll));
    let reqs = h.requests();
    h.token(&reqs, 3600, Some("rt"));
    let d = deletes(&h.requests());
    assert_eq!(d.len(), 1);
    assert!(d[0].1.ends_with(&format!("/subscriptions/{sub}")));
}

#[test]
fn a_restart_after_a_crash_adopts_before_the_first_read() {
    let (mut h, sub, _) = subscribed();
    let stored = stored_subs(&h.take()).unwrap();
    let s = h.core.settings().clone();
    let mut h = H::new(
        s,
        Stored {
            subs: Some(serde_json::to_vec(&stored).unwrap()),
            ..Stored::default()
        },
    );
    h.core.watch(&[guid(1)], h.now);
    // Nothing read yet (not even signed in): the subscription stays.
    h.timer(TimerKey::Reconcile);
    assert!(deletes(&h.requests()).is_empty());
    assert_eq!(h.core.subs.len(), 1);
    assert_eq!(h.core.subs[0].graph_id.as_deref(), Some(sub.as_str()));
}
