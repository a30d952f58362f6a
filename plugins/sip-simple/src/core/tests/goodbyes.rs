//! Shutdown: the un-SUBSCRIBEs go out, digest challenges to them are
//! answered, and nothing new starts until they are answered.

use super::*;

#[test]
fn an_unsubscribe_challenged_at_shutdown_is_answered() {
    for (code, header) in [(401, "WWW-Authenticate"), (407, "Proxy-Authenticate")] {
        let mut c = up(settings());
        let sub = subscribed(&mut c);
        c.on_message(&notify(&sub, "active", "application/pidf+xml", PIDF));
        c.take_actions();
        c.shutdown();
        let a = c.take_actions();
        assert!(a.contains(&Action::CancelTimer(TimerKey::Keepalive)));
        let bye = requests(&a, "SUBSCRIBE").remove(0);
        assert_eq!(bye.header("expires"), Some("0"));
        assert_eq!(bye.header("call-id"), sub.header("call-id"));
        assert!(c.saying_goodbye());
        c.on_message(&reply(
            &bye,
            code,
            &format!("{header}: Digest realm=\"example.com\", nonce=\"bye\", qop=\"auth\"\r\n"),
        ));
        let again = requests(&c.take_actions(), "SUBSCRIBE").remove(0);
        let auth = if code == 401 {
            "authorization"
        } else {
            "proxy-authorization"
        };
        assert!(again.header(auth).unwrap().contains("nonce=\"bye\""));
        assert_eq!(again.header("expires"), Some("0"));
        assert_eq!(again.header("call-id"), sub.header("call-id"));
        assert!(again.header("to").unwrap().contains("tag=srv"));
        assert!(c.saying_goodbye());
        c.on_message(&reply(&again, 200, "Expires: 0\r\n"));
        assert!(!c.saying_goodbye(), "{code}");
        assert!(c.subs.is_empty());
    }
}

#[test]
fn nothing_new_starts_while_saying_goodbye() {
    let mut c = up(settings());
    let sub = subscribed(&mut c);
    let key = (Kind::Presence, "alice".to_string());
    c.shutdown();
    let bye = requests(&c.take_actions(), "SUBSCRIBE").remove(0);
    for t in [
        TimerKey::Refresh(key.clone()),
        TimerKey::Retry(key.clone()),
        TimerKey::TimerN(key.clone()),
        TimerKey::Keepalive,
        TimerKey::PublishRefresh("alice".into()),
    ] {
        c.on_timer(t.clone());
        let a = c.take_actions();
        assert!(sent(&a).is_empty(), "{t:?}: {a:?}");
    }
    c.watch(&["bob".into()]);
    assert!(c.take_actions().is_empty());
    assert!(
        c.write(set(1, "alice", Availability::Busy, None), NOW)
            .is_err()
    );
    // The server's final NOTIFY is still answered; the dialog is done.
    c.on_message(&notify(
        &bye,
        "terminated;reason=timeout",
        "application/pidf+xml",
        "",
    ));
    assert_eq!(sent_code(&c.take_actions()), Some(200));
    assert!(!c.saying_goodbye());
    drop(sub);
}

#[test]
fn a_subscribe_still_out_at_shutdown_is_ended_in_its_dialog() {
    let mut c = up(settings());
    c.take_actions();
    c.watch(&["alice".into()]);
    let first = requests(&c.take_actions(), "SUBSCRIBE").remove(0);
    c.shutdown();
    assert!(requests(&c.take_actions(), "SUBSCRIBE").is_empty());
    assert!(c.saying_goodbye());
    // The server took it: end it at once, in the dialog its 2xx made.
    c.on_message(&reply(
        &first,
        200,
        "Expires: 600\r\nContact: <sip:127.0.0.1:5060>\r\nRecord-Route: <sip:p1;lr>\r\nRecord-Route: <sip:p2;lr>\r\n",
    ));
    let bye = requests(&c.take_actions(), "SUBSCRIBE").remove(0);
    assert_eq!(bye.header("expires"), Some("0"));
    assert_eq!(bye.header("call-id"), first.header("call-id"));
    assert!(bye.header("to").unwrap().contains("tag=srv"));
    let routes: Vec<&str> = bye.headers_named("route").collect();
    assert_eq!(routes, ["<sip:p2;lr>", "<sip:p1;lr>"]);
    c.on_message(&reply(&bye, 200, ""));
    assert!(!c.saying_goodbye());
    // Never sent at all (waiting for its turn): nothing to end.
    let mut c = up(settings());
    c.take_actions();
    let eps: Vec<String> = (0..MAX_SUBSCRIBING + 1).map(|i| format!("u{i}")).collect();
    c.watch(&eps);
    c.take_actions();
    c.shutdown();
    let byes = requests(&c.take_actions(), "SUBSCRIBE");
    assert!(byes.is_empty());
    assert_eq!(c.subs.len(), MAX_SUBSCRIBING);
}

#[test]
fn a_refused_or_unanswerable_goodbye_ends_too() {
    // Wrong credentials: the un-SUBSCRIBE is not retried, the subscription
    // expires at the server on its own.
    let mut c = up(settings());
    let sub = subscribed(&mut c);
    c.shutdown();
    let bye = requests(&c.take_actions(), "SUBSCRIBE").remove(0);
    c.on_message(&reply(
        &bye,
        401,
        "WWW-Authenticate: Digest realm=\"r\", nonce=\"n1\"\r\n",
    ));
    let again = requests(&c.take_actions(), "SUBSCRIBE").remove(0);
    c.on_message(&reply(
        &again,
        401,
        "WWW-Authenticate: Digest realm=\"r\", nonce=\"n2\"\r\n",
    ));
    let a = c.take_actions();
    assert!(requests(&a, "SUBSCRIBE").is_empty());
    assert!(
        !a.iter()
            .any(|x| matches!(x, Action::SetTimer(TimerKey::Retry(_), _)))
    );
    assert!(!c.saying_goodbye());
    drop(sub);
    // The stream closes before the answers: nothing more to wait for, and
    // no reconnect-and-resubscribe.
    let mut c = up(settings());
    subscribed(&mut c);
    c.write(set(1, "alice", Availability::Busy, None), NOW)
        .unwrap();
    let p = requests(&c.take_actions(), "PUBLISH").remove(0);
    c.on_message(&reply(&p, 200, "SIP-ETag: e1\r\n"));
    c.take_actions();
    c.shutdown();
    let a = c.take_actions();
    assert_eq!(requests(&a, "PUBLISH")[0].header("expires"), Some("0"));
    assert!(c.saying_goodbye());
    c.transport_down("connection reset");
    assert!(!c.saying_goodbye());
    c.transport_up(Local {
        transport: "TCP",
        host: "127.0.0.1".into(),
        port: 5070,
    });
    assert!(sent(&c.take_actions()).is_empty());
}

#[test]
fn a_publication_removal_is_a_goodbye_too() {
    let mut c = up(settings());
    c.take_actions();
    c.write(set(1, "alice", Availability::Busy, None), NOW)
        .unwrap();
    let p = requests(&c.take_actions(), "PUBLISH").remove(0);
    c.on_message(&reply(&p, 200, "SIP-ETag: e1\r\n"));
    c.take_actions();
    c.shutdown();
    let rm = requests(&c.take_actions(), "PUBLISH").remove(0);
    assert!(c.saying_goodbye());
    c.on_message(&reply(
        &rm,
        407,
        "Proxy-Authenticate: Digest realm=\"r\", nonce=\"n\"\r\n",
    ));
    let rm2 = requests(&c.take_actions(), "PUBLISH").remove(0);
    assert!(rm2.header("proxy-authorization").is_some());
    assert_eq!(rm2.header("sip-if-match"), Some("e1"));
    c.on_message(&reply(&rm2, 200, ""));
    assert!(!c.saying_goodbye());
}
