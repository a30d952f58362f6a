//! UPN look-ups go in JSON batches of up to 20, paced, and a refused one is
//! asked again later each time rather than at the poll rate.

use super::*;

fn signed_in() -> H {
    let mut h = H::new(settings(&[]), Stored::default());
    let reqs = h.requests();
    h.token(&reqs, 3600, None);
    h
}

fn upn(n: usize) -> String {
    format!("user{n}@contoso.com")
}

/// The JSON batches among `reqs`.
fn batches(reqs: &[(ReqId, Request)]) -> Vec<(ReqId, Vec<(String, String)>)> {
    reqs.iter()
        .filter(|(_, r)| r.url.ends_with("/$batch"))
        .map(|(id, r)| (*id, lookups(r)))
        .collect()
}

/// Every look-up in the batch found, user n as guid(n).
fn found(batch: &[(String, String)]) -> Result<Response, String> {
    let items: Vec<(&str, u16, Value)> = batch
        .iter()
        .map(|(id, url)| {
            let n: usize = url
                .trim_start_matches("/users/user")
                .split('@')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            (id.as_str(), 200, json!({"id": guid(n)}))
        })
        .collect();
    batch_answer(&items)
}

#[test]
fn look_ups_go_in_batches_of_twenty_two_at_a_time() {
    let mut h = signed_in();
    let eps: Vec<String> = (0..45).map(upn).collect();
    h.core.watch(&eps, h.now);
    let first = batches(&h.requests());
    assert_eq!(first.len(), 2, "two batches in flight");
    assert!(first.iter().all(|(_, b)| b.len() == 20));
    let ids: Vec<&String> = first
        .iter()
        .flat_map(|(_, b)| b.iter().map(|(i, _)| i))
        .collect();
    assert_eq!(
        ids.iter().filter(|i| i.as_str() == "1").count(),
        2,
        "ids per batch"
    );
    for (_, b) in &first {
        let unique: BTreeSet<&String> = b.iter().map(|(i, _)| i).collect();
        assert_eq!(unique.len(), b.len());
        assert!(
            b.iter()
                .all(|(_, u)| u.ends_with("?$select=id,userPrincipalName"))
        );
    }
    h.answer(first[0].0, found(&first[0].1));
    let third = batches(&h.requests());
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].1.len(), 5);
    h.answer(first[1].0, found(&first[1].1));
    h.answer(third[0].0, found(&third[0].1));
    assert!(batches(&h.requests()).is_empty());
    h.timer(TimerKey::ReadSoon);
    let reads: Vec<_> = h
        .requests()
        .into_iter()
        .filter(|(_, r)| r.url.ends_with("getPresencesByUserId"))
        .collect();
    assert_eq!(reads.len(), 1);
    assert_eq!(body(&reads[0].1)["ids"].as_array().unwrap().len(), 45);
}

#[test]
fn the_look_up_budget_paces_them() {
    let mut h = signed_in();
    for _ in 0..995 {
        h.core.lookup_log.push_back(h.now);
    }
    let eps: Vec<String> = (0..30).map(upn).collect();
    h.core.watch(&eps, h.now);
    let b = batches(&h.requests());
    assert_eq!(b.len(), 1, "only what the budget has room for");
    assert_eq!(b[0].1.len(), 5);
    assert_eq!(h.last_timer(&TimerKey::LookupBudget), 10_000);
    h.answer(b[0].0, found(&b[0].1));
    assert!(batches(&h.requests()).is_empty());
    h.now += 10_000;
    h.timer(TimerKey::LookupBudget);
    let b = batches(&h.requests());
    assert_eq!(b.iter().map(|(_, x)| x.len()).sum::<usize>(), 25);
}

#[test]
fn a_refused_look_up_is_asked_again_later_each_time() {
    let mut h = signed_in();
    h.core.watch(&[upn(1), upn(2)], h.now);
    let b = batches(&h.requests());
    let (id1, _) = b[0]
        .1
        .iter()
        .find(|(_, u)| u.contains("user1@"))
        .unwrap()
        .clone();
    let (id2, _) = b[0]
        .1
        .iter()
        .find(|(_, u)| u.contains("user2@"))
        .unwrap()
        .clone();
    let denied = json!({"error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges"}});
    h.answer(
        b[0].0,
        batch_answer(&[
            (&id1, 403, denied.clone()),
            (&id2, 200, json!({"id": guid(2)})),
        ]),
    );
    h.take();
    let denied_detail = h.log.iter().find_map(|a| match a {
        Action::EndpointState(e, EndpointState::AccessDenied, d) if *e == upn(1) => d.clone(),
        _ => None,
    });
    assert!(
        denied_detail
            .unwrap()
            .contains("User.Read.All (application)")
    );
    // One user refused is not the app's permission.
    assert_eq!(h.last_status().0, ConnectorStatus::UpAndRunning);
    let mut waits = Vec::new();
    for _ in 0..3 {
        let wait = h.last_timer(&TimerKey::LookupRetry);
        waits.push(wait);
        // Polls do not look it up again.
        h.now += wait - 1;
        h.timer(TimerKey::Poll);
        assert!(batches(&h.requests()).is_empty());
        h.now += 1;
        h.timer(TimerKey::LookupRetry);
        let b = batches(&h.requests());
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].1.len(), 1);
        h.answer(b[0].0, batch_answer(&[(&b[0].1[0].0, 403, denied.clone())]));
    }
    assert_eq!(waits, [60_000, 120_000, 240_000]);
    // Consent is granted: the next try finds the user, who is then read.
    let wait = h.last_timer(&TimerKey::LookupRetry);
    h.now += wait;
    h.timer(TimerKey::LookupRetry);
    let b = batches(&h.requests());
    h.answer(
        b[0].0,
        batch_answer(&[(&b[0].1[0].0, 200, json!({"id": guid(1)}))]),
    );
    h.timer(TimerKey::ReadSoon);
    let reqs = h.requests();
    assert!(
        reqs.iter()
            .any(|(_, r)| r.url.ends_with("getPresencesByUserId")
                && body(r)["ids"].as_array().unwrap().contains(&json!(guid(1))))
    );
}

#[test]
fn throttled_and_token_refusals_inside_a_batch_are_handled_once() {
    let mut h = signed_in();
    let eps: Vec<String> = (0..3).map(upn).collect();
    h.core.watch(&eps, h.now);
    let b = batches(&h.requests());
    let ids: Vec<String> = b[0].1.iter().map(|(i, _)| i.clone()).collect();
    let slow = json!({"error": {"code": "TooManyRequests", "message": "slow down"}});
    let answer = resp(
        200,
        json!({"responses": [
            {"id": ids[0], "status": 429, "headers": {"Retry-After": "7"}, "body": slow},
            {"id": ids[1], "status": 429, "headers": {"Retry-After": "3"}, "body": slow},
            {"id": ids[2], "status": 200, "body": {"id": guid(2)}},
        ]}),
    );
    h.answer(b[0].0, answer);
    assert_eq!(
        h.last_timer(&TimerKey::Gate),
        7_000,
        "the longest wait asked"
    );
    assert_eq!(h.last_status().0, ConnectorStatus::Throttled);
    h.now += 7_000;
    h.timer(TimerKey::Gate);
    let b = batches(&h.requests());
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].1.len(), 2, "the two throttled ones again");
    // A token refused for every look-up in a batch: one refresh, not a
    // rejected sign-in.
    let expired = json!({"error": {"code": "InvalidAuthenticationToken", "message": "expired"}});
    h.answer(
        b[0].0,
        batch_answer(&[
            (&b[0].1[0].0, 401, expired.clone()),
            (&b[0].1[1].0, 401, expired),
        ]),
    );
    let reqs = h.requests();
    assert_eq!(reqs.len(), 1);
    assert!(reqs[0].1.url.ends_with("/token"));
    assert_ne!(h.last_status().0, ConnectorStatus::Forbidden);
    h.token(&reqs, 3600, None);
    let b = batches(&h.requests());
    assert_eq!(b[0].1.len(), 2);
}

#[test]
fn a_look_up_missing_from_the_answer_is_asked_again() {
    let mut h = signed_in();
    h.core.watch(&[upn(1), upn(2)], h.now);
    let b = batches(&h.requests());
    let (id1, _) = b[0]
        .1
        .iter()
        .find(|(_, u)| u.contains("user1@"))
        .unwrap()
        .clone();
    h.answer(b[0].0, batch_answer(&[(&id1, 200, json!({"id": guid(1)}))]));
    let again = batches(&h.requests());
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].1.len(), 1);
    assert!(again[0].1[0].1.contains("user2@"));
}

#[test]
fn every_look_up_refused_is_the_apps_permission() {
    let mut h = signed_in();
    h.core.watch(&[upn(1), upn(2), guid(9)], h.now);
    let b = batches(&h.requests());
    let denied = json!({"error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges"}});
    let items: Vec<(&str, u16, Value)> = b[0]
        .1
        .iter()
        .map(|(id, _)| (id.as_str(), 403, denied.clone()))
        .collect();
    h.answer(b[0].0, batch_answer(&items));
    let (st, detail) = h.last_status();
    assert_eq!(st, ConnectorStatus::Forbidden);
    assert!(detail.unwrap().contains("User.Read.All (application)"));
    // Granted: the next tries find them, and the connector is up.
    h.now += 60_000;
    h.timer(TimerKey::LookupRetry);
    let b = batches(&h.requests());
    h.answer(b[0].0, found(&b[0].1));
    assert_eq!(h.last_status().0, ConnectorStatus::UpAndRunning);
}

#[test]
fn a_batch_graph_refuses_whole_is_tried_again_later() {
    let mut h = signed_in();
    h.core.watch(&[upn(1)], h.now);
    h.write(7, &upn(2), dnd());
    let b = batches(&h.requests());
    assert_eq!(b.len(), 2);
    for (req, _) in b {
        h.answer(
            req,
            resp(
                400,
                json!({"error": {"code": "BadRequest", "message": "Invalid batch payload"}}),
            ),
        );
    }
    let outcomes = h.outcomes();
    let f = failed(&outcomes[0].1);
    assert!(!f.retryable);
    assert_eq!(f.status, Some(400));
    assert!(
        h.log.iter().any(
            |a| matches!(a, Action::EndpointState(e, EndpointState::Error, _) if *e == upn(1))
        )
    );
    assert_eq!(h.last_timer(&TimerKey::LookupRetry), 60_000);
    // An answer that is no batch answer is taken alike.
    h.now += 60_000;
    h.timer(TimerKey::LookupRetry);
    let b = batches(&h.requests());
    h.answer(b[0].0, resp(200, json!({"value": []})));
    assert_eq!(h.last_timer(&TimerKey::LookupRetry), 120_000);
}
