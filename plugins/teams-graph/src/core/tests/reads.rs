//! A user Graph refuses to read does not poison the batches it was in: the
//! batch is split down to that user, who is read alone later each time,
//! while everyone else keeps flowing.

use super::*;

const REFUSED: &str = "Insufficient privileges to complete the operation.";

fn refused() -> Result<Response, String> {
    resp(
        403,
        json!({"error": {"code": "Forbidden", "message": REFUSED}}),
    )
}

/// The presence reads among `reqs`, with the ids each names.
fn reads(reqs: &[(ReqId, Request)]) -> Vec<(ReqId, Vec<String>)> {
    reqs.iter()
        .filter(|(_, r)| r.url.ends_with("/communications/getPresencesByUserId"))
        .map(|(id, r)| {
            let ids = body(r)["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            (*id, ids)
        })
        .collect()
}

/// Answer reads the way Graph does while it refuses `bad`: any read naming
/// one of them is refused whole. Runs until no read is left; returns how
/// many reads were sent.
fn answer_until_settled(h: &mut H, bad: &[String]) -> usize {
    let mut sent = 0;
    loop {
        let pending = reads(&h.requests());
        if pending.is_empty() {
            return sent;
        }
        sent += pending.len();
        for (req, ids) in pending {
            if ids.iter().any(|i| bad.contains(i)) {
                h.answer(req, refused());
            } else {
                read_ok(h, req, &ids, "Available");
            }
        }
    }
}

fn states(h: &mut H) -> Vec<(String, EndpointState)> {
    h.take();
    let mut last: BTreeMap<String, EndpointState> = BTreeMap::new();
    for a in &h.log {
        if let Action::EndpointState(ep, st, _) = a {
            last.insert(ep.clone(), *st);
        }
    }
    last.into_iter().collect()
}

fn state_of(h: &mut H, ep: &str) -> EndpointState {
    states(h)
        .into_iter()
        .find(|(e, _)| e == ep)
        .map(|(_, s)| s)
        .expect("a state")
}

#[test]
fn one_refused_user_is_isolated_and_the_rest_keep_flowing() {
    let ids: Vec<String> = (0..40).map(guid).collect();
    let mut h = app_with_users(&ids);
    let bad = vec![guid(17)];
    let sent = answer_until_settled(&mut h, &bad);
    // Halving 40 down to one: about two reads per level.
    assert!(sent <= 2 * 6 + 1, "{sent} reads to find one user");
    for id in &ids {
        let want = if *id == bad[0] {
            EndpointState::AccessDenied
        } else {
            EndpointState::Active
        };
        assert_eq!(state_of(&mut h, id), want, "{id}");
    }
    // Only the endpoint is refused, not the connector.
    let (st, detail) = h.last_status();
    assert_eq!(st, ConnectorStatus::UpAndRunning, "{detail:?}");
    assert!(detail.unwrap().contains("1 refused by Graph"));
    assert!(
        !h.statuses()
            .iter()
            .any(|(s, _)| *s == ConnectorStatus::Forbidden)
    );
    // The next polls read the others in one batch, without the refused user.
    for _ in 0..3 {
        h.now += 1_000;
        h.timer(TimerKey::Poll);
        let r = reads(&h.requests());
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].1.len(), 39);
        assert!(!r[0].1.contains(&bad[0]));
        read_ok(&mut h, r[0].0, &r[0].1, "Busy");
    }
    h.take();
    let busy = h
        .log
        .iter()
        .filter(|a| matches!(a, Action::Presence(u) if u.rich.as_ref().unwrap().availability == Availability::Busy))
        .count();
    assert_eq!(busy, 39, "the others' changes flow");
}

#[test]
fn refused_users_in_both_halves_are_both_found() {
    let ids: Vec<String> = (0..16).map(guid).collect();
    let mut h = app_with_users(&ids);
    let bad = vec![guid(1), guid(14)];
    answer_until_settled(&mut h, &bad);
    for id in &ids {
        let st = state_of(&mut h, id);
        assert_eq!(st == EndpointState::AccessDenied, bad.contains(id), "{id}");
    }
    assert_eq!(h.last_status().0, ConnectorStatus::UpAndRunning);
}

#[test]
fn a_refused_user_is_read_alone_later_each_time_and_comes_back() {
    let ids: Vec<String> = (0..4).map(guid).collect();
    let mut h = app_with_users(&ids);
    let bad = vec![guid(2)];
    answer_until_settled(&mut h, &bad);
    // Polled every 30 s: the refused user waits 30 s, 60 s, 120 s ...
    let mut waits = Vec::new();
    for _ in 0..4 {
        let wait = h.last_timer(&TimerKey::ReadRetry);
        waits.push(wait);
        // Polls meanwhile leave it out.
        h.now += wait - 1;
        h.timer(TimerKey::Poll);
        let r = reads(&h.requests());
        assert!(r.iter().all(|(_, ids)| !ids.contains(&bad[0])), "{r:?}");
        for (req, ids) in r {
            read_ok(&mut h, req, &ids, "Available");
        }
        h.now += 1;
        h.timer(TimerKey::ReadRetry);
        let r = reads(&h.requests());
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].1, bad, "read alone");
        h.answer(r[0].0, refused());
    }
    assert_eq!(waits, [30_000, 60_000, 120_000, 240_000]);
    // Consent for the user comes: the next retry reads it, and from then on
    // it is in the shared batch again.
    h.now += 480_000;
    h.timer(TimerKey::ReadRetry);
    let r = reads(&h.requests());
    read_ok(&mut h, r[0].0, &r[0].1, "Busy");
    assert_eq!(state_of(&mut h, &bad[0]), EndpointState::Active);
    h.timer(TimerKey::Poll);
    let r = reads(&h.requests());
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].1.len(), 4);
}

#[test]
fn unknown_and_invalid_users_are_isolated_too() {
    let ids: Vec<String> = (0..6).map(guid).collect();
    let mut h = app_with_users(&ids);
    loop {
        let pending = reads(&h.requests());
        if pending.is_empty() {
            break;
        }
        for (req, ids) in pending {
            if ids.contains(&guid(0)) {
                h.answer(
                    req,
                    resp(
                        404,
                        json!({"error": {"code": "NotFound", "message": "no such user"}}),
                    ),
                );
            } else if ids.contains(&guid(5)) {
                h.answer(
                    req,
                    resp(
                        400,
                        json!({"error": {"code": "BadRequest", "message": "bad id"}}),
                    ),
                );
            } else {
                read_ok(&mut h, req, &ids, "Away");
            }
        }
    }
    assert_eq!(state_of(&mut h, &guid(0)), EndpointState::NotFound);
    assert_eq!(state_of(&mut h, &guid(5)), EndpointState::Error);
    for i in 1..5 {
        assert_eq!(state_of(&mut h, &guid(i)), EndpointState::Active);
    }
    assert_eq!(h.last_status().0, ConnectorStatus::UpAndRunning);
}

#[test]
fn every_user_refused_is_the_apps_permission_and_one_read_stands_for_all() {
    let ids: Vec<String> = (0..8).map(guid).collect();
    let mut h = app_with_users(&ids);
    let sent = answer_until_settled(&mut h, &ids);
    assert_eq!(sent, 15, "the whole halving, once");
    let (st, detail) = h.last_status();
    assert_eq!(st, ConnectorStatus::Forbidden);
    assert!(detail.unwrap().contains("Presence.Read.All (application)"));
    // Each retry reads one user on behalf of all.
    for _ in 0..3 {
        h.now += 10 * 60_000;
        h.timer(TimerKey::ReadRetry);
        h.timer(TimerKey::Poll);
        let r = reads(&h.requests());
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].1.len(), 1);
        h.answer(r[0].0, refused());
    }
    // Consent is back: the stand-in is read, and everyone with it.
    h.now += 10 * 60_000;
    h.timer(TimerKey::ReadRetry);
    let r = reads(&h.requests());
    assert_eq!(r.len(), 1);
    read_ok(&mut h, r[0].0, &r[0].1, "Available");
    h.timer(TimerKey::ReadSoon);
    let r = reads(&h.requests());
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].1.len(), 7, "the other seven together");
    read_ok(&mut h, r[0].0, &r[0].1, "Available");
    assert_eq!(h.last_status().0, ConnectorStatus::UpAndRunning);
    for id in &ids {
        assert_eq!(state_of(&mut h, id), EndpointState::Active);
    }
}

#[test]
fn a_throttled_batch_goes_again_as_it_was() {
    let ids: Vec<String> = (0..4).map(guid).collect();
    let mut h = app_with_users(&ids);
    let r = reads(&h.requests());
    h.answer(r[0].0, refused());
    let halves = reads(&h.requests());
    assert_eq!(halves.len(), 2);
    h.answer(
        halves[0].0,
        Ok(Response {
            status: 429,
            headers: vec![("Retry-After".into(), "2".into())],
            body: vec![],
        }),
    );
    h.now += 2_000;
    h.timer(TimerKey::Gate);
    h.timer(TimerKey::Poll);
    let again = reads(&h.requests());
    assert!(
        again.iter().any(|(_, ids)| *ids == halves[0].1),
        "{again:?} should hold {:?} as it was",
        halves[0].1
    );
}

#[test]
fn users_are_subscribed_once_readable_and_refused_ones_are_left_out() {
    let mut h = device_flow();
    let reqs = h.requests();
    h.answer(
        reqs[0].0,
        resp(200, json!({"device_code": "dc", "user_code": "U", "verification_uri": "https://x", "interval": 1})),
    );
    h.timer(TimerKey::OAuth(Slot::Primary, TimerKind::DevicePoll));
    let reqs = h.requests();
    h.token(&reqs, 3600, Some("rt"));
    let ids: Vec<String> = (0..4).map(guid).collect();
    h.core.watch(&ids, h.now);
    // Not read yet: nobody to subscribe.
    h.timer(TimerKey::Reconcile);
    assert!(
        h.requests()
            .iter()
            .all(|(_, r)| !r.url.ends_with("/subscriptions"))
    );
    h.timer(TimerKey::ReadSoon);
    answer_until_settled(&mut h, &[guid(3)]);
    h.timer(TimerKey::Reconcile);
    let reqs = h.requests();
    let create = reqs
        .iter()
        .find(|(_, r)| r.url.ends_with("/subscriptions"))
        .expect("a subscription");
    let resource = body(&create.1)["resource"].as_str().unwrap().to_string();
    assert!(!resource.contains(&guid(3)), "{resource}");
    for i in 0..3 {
        assert!(resource.contains(&guid(i)), "{resource}");
    }
}
