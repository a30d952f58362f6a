//! NOTIFYs without a body (baresip through Kamailio): the server has no
//! state for the entity.

use super::*;

fn dialog_settings(features: bool) -> Settings {
    let mut s = settings();
    s.events = Events {
        presence: false,
        dialog: true,
        features,
    };
    s
}

/// The SUBSCRIBEs `c` sends for watching `ep`, each answered 200.
fn answered(c: &mut Core, ep: &str) -> Vec<Message> {
    c.take_actions();
    c.watch(&[ep.into()]);
    let subs = requests(&c.take_actions(), "SUBSCRIBE");
    for s in &subs {
        c.on_message(&reply(s, 200, "Expires: 600\r\n"));
    }
    c.take_actions();
    subs
}

fn by_event(subs: &[Message], event: &str) -> Message {
    subs.iter()
        .find(|m| m.header("event") == Some(event))
        .unwrap()
        .clone()
}

fn dialog_doc(version: u64, dialogs: &str) -> String {
    format!(
        r#"<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="{version}" state="full" entity="sip:2001@example.com">{dialogs}</dialog-info>"#
    )
}

const DI: &str = "application/dialog-info+xml";

fn telephony(actions: &[Action]) -> TelephonyPresence {
    reports(actions)
        .pop()
        .and_then(|p| p.telephony)
        .expect("a telephony report")
}

#[test]
fn no_dialog_state_at_the_server_is_an_idle_line() {
    let mut c = up(dialog_settings(false));
    let dl = answered(&mut c, "2001").remove(0);
    let epoch = dl.header("call-id").unwrap().to_string();
    // Nothing published yet: idle at once, not `requesting` until a call.
    for body in ["", "\r\n"] {
        c.on_message(&notify_n(&dl, 1, "active;expires=600", DI, body));
        let a = c.take_actions();
        assert_eq!(sent_code(&a), Some(200));
        assert!(a.contains(&Action::EndpointState(
            "2001".into(),
            EndpointState::Active,
            None
        )));
        let p = reports(&a).remove(0);
        assert_eq!(p.telephony.unwrap().line, LineState::Idle);
        assert_eq!(
            p.ordering,
            Some(Ordering {
                epoch: epoch.clone(),
                sequence: 0
            })
        );
    }
    // A call; then the phone vanishes and the call's dialog publications
    // expire: the server's NOTIFY without a body ends it.
    let call = r#"<dialog id="a" direction="initiator"><state>confirmed</state></dialog>"#;
    c.on_message(&notify_n(&dl, 2, "active", DI, &dialog_doc(5, call)));
    assert_eq!(telephony(&c.take_actions()).line, LineState::InCall);
    c.on_message(&notify_n(&dl, 3, "active", DI, ""));
    let a = c.take_actions();
    let p = reports(&a).remove(0);
    assert_eq!(p.telephony.unwrap().line, LineState::Idle);
    // Ordered with the call's last document, so the hub takes it.
    assert_eq!(p.ordering.unwrap().sequence, 5);
    // The next call continues the count.
    let ringing = r#"<dialog id="b" direction="recipient"><state>early</state></dialog>"#;
    c.on_message(&notify_n(&dl, 4, "active", DI, &dialog_doc(6, ringing)));
    assert_eq!(telephony(&c.take_actions()).line, LineState::Ringing);
    // The final NOTIFY of an ended subscription carries no state at all.
    c.on_message(&notify_n(&dl, 5, "terminated;reason=noresource", DI, ""));
    assert!(reports(&c.take_actions()).is_empty());
}

#[test]
fn a_line_nobody_spoke_of_is_unknown() {
    let mut c = up(dialog_settings(true));
    let subs = answered(&mut c, "2001");
    let (fe, dl) = (
        by_event(&subs, "as-feature-event"),
        by_event(&subs, "dialog"),
    );
    let dnd = r#"<DoNotDisturbEvent xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3"><device>2001</device><doNotDisturbOn>true</doNotDisturbOn></DoNotDisturbEvent>"#;
    // DND arrives before any dialog state: the line is not idle, unknown.
    c.on_message(&notify(
        &fe,
        "active",
        "application/x-as-feature-event+xml",
        dnd,
    ));
    let t = telephony(&c.take_actions());
    assert_eq!((t.line, t.do_not_disturb), (LineState::Unknown, true));
    c.on_message(&notify(&dl, "active", DI, ""));
    let t = telephony(&c.take_actions());
    assert_eq!((t.line, t.do_not_disturb), (LineState::Idle, true));
}

fn rich(actions: &[Action]) -> RichPresence {
    reports(actions)
        .pop()
        .and_then(|p| p.rich)
        .expect("a rich report")
}

#[test]
fn a_presence_publication_that_lapsed_is_offline() {
    let mut c = up(settings());
    let sub = subscribed(&mut c);
    const PIDF_TYPE: &str = "application/pidf+xml";
    // Never published: unknown.
    c.on_message(&notify_n(&sub, 1, "active", PIDF_TYPE, ""));
    let a = c.take_actions();
    assert_eq!(rich(&a).availability, Availability::Unknown);
    assert!(a.contains(&Action::EndpointState(
        "alice".into(),
        EndpointState::Active,
        Some("no presence published yet".into())
    )));
    c.on_message(&notify_n(&sub, 2, "active", PIDF_TYPE, PIDF));
    assert_eq!(rich(&c.take_actions()).availability, Availability::Away);
    // The device crashed; its publication lapsed and the server notifies
    // without a body: offline, as a removed publication shows.
    c.on_message(&notify_n(&sub, 3, "active", PIDF_TYPE, ""));
    let a = c.take_actions();
    assert_eq!(rich(&a).availability, Availability::Offline);
    let p = reports(&a).remove(0);
    assert_eq!(p.raw[0].value, "empty: publication ended");
    assert_eq!(p.ordering.unwrap().sequence, 3);
    assert!(a.contains(&Action::EndpointState(
        "alice".into(),
        EndpointState::Active,
        Some("the presence publication ended".into())
    )));
    // Watched anew, the hub knows of no publication: unknown again.
    c.unwatch(&["alice".into()]);
    c.take_actions();
    c.watch(&["alice".into()]);
    let fresh = requests(&c.take_actions(), "SUBSCRIBE").remove(0);
    c.on_message(&reply(&fresh, 200, "Expires: 600\r\n"));
    c.on_message(&notify(&fresh, "active", PIDF_TYPE, ""));
    assert_eq!(rich(&c.take_actions()).availability, Availability::Unknown);
}
