//! The safety net under change notifications: covered users are re-read
//! slowly, and a subscription that stays silent while reads show changes is
//! deleted and created again.

use super::*;

/// Subscribed as in [`subscribed`], the read after creation answered
/// (Available), and a minute gone by.
fn settled() -> (H, String, String) {
    let (mut h, sub, cs) = subscribed();
    h.timer(TimerKey::ReadSoon);
    let reqs = h.requests();
    let read = reqs
        .iter()
        .find(|(_, r)| r.url.ends_with("getPresencesByUserId"))
        .expect("the read after creation");
    read_ok(&mut h, read.0, &[guid(1)], "Available");
    h.now += 60_000;
    (h, sub, cs)
}

/// The re-read round: returns its request.
fn reread(h: &mut H) -> ReqId {
    h.timer(TimerKey::Reread);
    h.timer(TimerKey::ReadSoon);
    let reqs = h.requests();
    let (id, r) = reqs
        .iter()
        .find(|(_, r)| r.url.ends_with("getPresencesByUserId"))
        .expect("a re-read")
        .clone();
    assert_eq!(body(&r)["ids"], json!([guid(1)]));
    id
}

fn silent_timer(h: &mut H) -> Option<(u64, u64)> {
    h.take();
    h.log.iter().rev().find_map(|a| match a {
        Action::SetTimer(TimerKey::Silent(local), ms) => Some((*local, *ms)),
        _ => None,
    })
}

#[test]
fn covered_users_are_read_again_at_the_re_read_interval() {
    let (mut h, _, _) = settled();
    assert!(h.log.contains(&Action::SetTimer(TimerKey::Reread, 300_000)));
    // The poll leaves covered users alone; the re-read does not.
    h.timer(TimerKey::Poll);
    assert!(h.requests().is_empty());
    let id = reread(&mut h);
    read_ok(&mut h, id, &[guid(1)], "Available");
    assert_eq!(h.last_timer(&TimerKey::Reread), 300_000);
    // Nothing changed: nothing to suspect.
    assert!(silent_timer(&mut h).is_none());
}

#[test]
fn a_subscription_silent_about_a_change_is_created_anew() {
    let (mut h, sub, cs) = settled();
    h.now += 240_000;
    let id = reread(&mut h);
    read_ok(&mut h, id, &[guid(1)], "Busy");
    // The change reaches the hub at once ...
    h.take();
    let busy = h.log.iter().any(|a| {
        matches!(a, Action::Presence(u) if u.rich.as_ref().unwrap().availability == Availability::Busy)
    });
    assert!(busy);
    // ... and after a grace without a word from Graph, the subscription is
    // deleted and created again under a new clientState.
    let (local, grace) = silent_timer(&mut h).expect("the subscription is suspect");
    assert_eq!(grace, 15_000);
    h.now += grace;
    h.timer(TimerKey::Silent(local));
    let reqs = h.requests();
    assert!(h.log.iter().any(
        |a| matches!(a, Action::Log(Level::Warn, m) if m.contains("silent while reads show changes"))
    ));
    assert!(
        reqs.iter()
            .any(|(_, r)| r.method == "DELETE" && r.url.ends_with(&format!("/subscriptions/{sub}"))),
        "{reqs:?}"
    );
    let create = reqs
        .iter()
        .find(|(_, r)| r.method == "POST" && r.url.ends_with("/subscriptions"))
        .expect("a new subscription");
    let fresh = body(&create.1)["clientState"].as_str().unwrap().to_string();
    assert_eq!(fresh.len(), 32);
    assert_ne!(fresh, cs);
}

#[test]
fn a_notification_within_the_grace_clears_the_suspicion() {
    let (mut h, sub, cs) = settled();
    let id = reread(&mut h);
    read_ok(&mut h, id, &[guid(1)], "Busy");
    let (local, grace) = silent_timer(&mut h).expect("suspect");
    // The notification was on its way.
    h.now += 1_000;
    let n = serde_json::to_vec(&json!({"value": [{
        "subscriptionId": sub, "clientState": cs, "changeType": "updated",
        "resource": format!("communications/presences/{}", guid(1)),
    }]}))
    .unwrap();
    assert_eq!(h.core.on_webhook(&hook("", &n), h.now).status, 202);
    h.now += grace;
    h.timer(TimerKey::Silent(local));
    let reqs = h.requests();
    assert!(reqs.iter().all(|(_, r)| r.method != "DELETE"), "{reqs:?}");
    assert!(reqs.iter().all(|(_, r)| !r.url.ends_with("/subscriptions")));
}

#[test]
fn the_re_read_interval_stretches_within_the_read_budget() {
    let mut h = H::new(
        settings(&[
            ("auth_flow", "device-code"),
            ("client_secret", ""),
            ("notification_url", NOTIFY),
            ("reread_seconds", "2"),
        ]),
        Stored::default(),
    );
    assert!(
        h.take()
            .contains(&Action::SetTimer(TimerKey::Reread, 2_000))
    );
    let ids: Vec<String> = (0..650 * 40).map(guid).collect();
    h.core.watch(&ids, h.now);
    // 40 batches per round inside 1,000 reads per 30 s.
    assert_eq!(h.core.reread_interval(), 2_000);
    let ids: Vec<String> = (0..650 * 80).map(guid).collect();
    h.core.watch(&ids, h.now);
    assert_eq!(h.core.reread_interval(), 2_400);
}
