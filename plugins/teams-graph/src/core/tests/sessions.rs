//! Application presence sessions hold as meant: an Available session is set
//! again inside Graph's five-minute timeout (else it fades to
//! AvailableInactive, then Away); other availabilities only need renewing
//! before their expirationDuration.

use super::*;

fn with_expiry(availability: Availability, ms: Option<u64>) -> WriteAction {
    WriteAction::Set(PresenceIntent {
        availability,
        activity: None,
        note: None,
        dnd_scope: None,
        expires_in_ms: ms,
    })
}

/// Write `action` for guid(1) and let Graph take it; returns the body sent.
fn land(h: &mut H, id: WriteId, action: WriteAction) -> Value {
    h.write(id, &guid(1), action);
    let w = writes(&h.requests());
    assert_eq!(w.len(), 1);
    h.answer(w[0].0, resp(200, Value::Null));
    body(&w[0].1)
}

/// The keep-alive timer, if one is set.
fn keep_alive(h: &mut H) -> Option<u64> {
    let key = TimerKey::KeepAlive(guid(1));
    h.core.timers.contains(&key).then(|| h.last_timer(&key))
}

/// The keep-alive fires after `ms`: the refresh goes out and lands.
fn refresh(h: &mut H, ms: u64) -> Value {
    h.now += ms;
    h.timer(TimerKey::KeepAlive(guid(1)));
    let w = writes(&h.requests());
    assert_eq!(w.len(), 1, "a refresh");
    h.answer(w[0].0, resp(200, Value::Null));
    body(&w[0].1)
}

#[test]
fn an_available_session_is_set_again_inside_the_timeout() {
    let mut h = app_with_users(&[guid(1)]);
    let sent = land(&mut h, 1, with_expiry(Availability::Available, None));
    assert_eq!(sent["availability"], "Available");
    assert_eq!(sent["expirationDuration"], "PT30M");
    // Every four minutes, for as long as it stands.
    for _ in 0..8 {
        assert_eq!(keep_alive(&mut h), Some(4 * 60_000));
        let again = refresh(&mut h, 4 * 60_000);
        assert_eq!(again, sent);
    }
    assert_eq!(h.outcomes().len(), 1, "refreshes owe the hub nothing");
    // A restore ends the refreshes.
    h.write(2, &guid(1), WriteAction::Restore);
    let w = writes(&h.requests());
    assert!(w[0].1.url.ends_with("/clearPresence"));
    h.answer(w[0].0, resp(200, Value::Null));
    assert_eq!(keep_alive(&mut h), None);
}

#[test]
fn other_sessions_are_renewed_only_before_they_expire() {
    for availability in [
        Availability::Busy,
        Availability::DoNotDisturb,
        Availability::Away,
    ] {
        let mut h = app_with_users(&[guid(1)]);
        land(&mut h, 1, with_expiry(availability, None));
        assert_eq!(keep_alive(&mut h), Some(24 * 60_000), "{availability:?}");
        // With an expiry of its own it simply lapses.
        land(&mut h, 2, with_expiry(availability, Some(3_600_000)));
        assert_eq!(keep_alive(&mut h), None, "{availability:?}");
    }
}

#[test]
fn an_available_session_with_an_expiry_is_refreshed_until_it_ends() {
    let mut h = app_with_users(&[guid(1)]);
    let sent = land(
        &mut h,
        1,
        with_expiry(Availability::Available, Some(10 * 60_000)),
    );
    assert_eq!(sent["expirationDuration"], "PT10M");
    assert_eq!(keep_alive(&mut h), Some(4 * 60_000));
    // Set again for what is left of the ten minutes (Graph's least is five).
    let again = refresh(&mut h, 4 * 60_000);
    assert_eq!(again["expirationDuration"], "PT6M");
    assert_eq!(keep_alive(&mut h), Some(4 * 60_000));
    let again = refresh(&mut h, 4 * 60_000);
    assert_eq!(again["expirationDuration"], "PT5M");
    // It now lasts past the end and no longer fades before it: done.
    assert_eq!(keep_alive(&mut h), None);
    // One that ends within the timeout never needs it.
    land(
        &mut h,
        2,
        with_expiry(Availability::Available, Some(5 * 60_000)),
    );
    assert_eq!(keep_alive(&mut h), None);
}

#[test]
fn a_short_write_back_duration_renews_available_before_it_expires() {
    let mut h = H::new(
        settings(&[("write_expiration_minutes", "5")]),
        Stored::default(),
    );
    let reqs = h.requests();
    h.token(&reqs, 3600, None);
    h.core.watch(&[guid(1)], h.now);
    h.timer(TimerKey::ReadSoon);
    let sent = land(&mut h, 1, with_expiry(Availability::Available, None));
    assert_eq!(sent["expirationDuration"], "PT5M");
    // Renewed a minute ahead of both the expiry and the timeout.
    assert_eq!(keep_alive(&mut h), Some(4 * 60_000));
}
