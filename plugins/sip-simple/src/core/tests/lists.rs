//! Resource lists: busy lamp field lists (RFC 4662 with dialog-info) and
//! presence lists.

use std::collections::BTreeMap;

use super::*;
use crate::corpus;

const BLF_LIST: &str = "sip:4601-blf@as.example.com";

/// `subscribe: both` with a BLF list: presence per user, dialog by list.
fn blf_settings() -> Settings {
    let mut s = settings();
    s.events = Events {
        presence: true,
        dialog: true,
        features: false,
    };
    s.blf_list_uri = Some(BLF_LIST.into());
    s
}

/// Watch `eps` and answer the list SUBSCRIBE (checked) with 200.
fn watch_list(c: &mut Core, eps: &[&str]) -> Message {
    c.take_actions();
    let eps: Vec<String> = eps.iter().map(|e| e.to_string()).collect();
    c.watch(&eps);
    let subs = requests(&c.take_actions(), "SUBSCRIBE");
    let dialog: Vec<&Message> = subs
        .iter()
        .filter(|m| m.header("event") == Some("dialog"))
        .collect();
    let [list] = dialog[..] else {
        panic!("one dialog SUBSCRIBE, for the list: {subs:?}")
    };
    assert_eq!(
        list.start,
        crate::sip::Start::Request {
            method: "SUBSCRIBE".into(),
            uri: BLF_LIST.into()
        }
    );
    assert_eq!(list.header("supported"), Some("eventlist"));
    let accept = list.header("accept").unwrap();
    for t in [
        "application/dialog-info+xml",
        "application/rlmi+xml",
        "multipart/related",
    ] {
        assert!(accept.contains(t), "{accept}");
    }
    let presence = subs
        .iter()
        .filter(|m| m.header("event") == Some("presence"))
        .count();
    let presence_wanted = if c.s.events.presence { eps.len() } else { 0 };
    assert_eq!(presence, presence_wanted, "presence stays per user");
    c.on_message(&reply(list, 200, "Expires: 3600\r\nRequire: eventlist\r\n"));
    c.take_actions();
    list.clone()
}

fn lines(actions: &[Action]) -> BTreeMap<String, LineState> {
    reports(actions)
        .into_iter()
        .filter_map(|p| Some((p.endpoint, p.telephony?.line)))
        .collect()
}

fn states(actions: &[Action]) -> BTreeMap<String, (EndpointState, Option<String>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::EndpointState(ep, st, d) => Some((ep.clone(), (*st, d.clone()))),
            _ => None,
        })
        .collect()
}

fn warnings(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Warn(w) => Some(w.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_broadworks_blf_list_reports_each_line() {
    let mut c = up(blf_settings());
    let list = watch_list(&mut c, &["4605", "4607", "4699"]);
    let epoch = list.header("call-id").unwrap().to_string();
    c.on_message(&notify_n(
        &list,
        171,
        "active;expires=3600",
        corpus::BLF_CONTENT_TYPE,
        corpus::BLF_FULL,
    ));
    let a = c.take_actions();
    assert_eq!(sent_code(&a), Some(200));
    // Matched although the list names them at the application server:
    // 4605 idle (empty dialog-info), 4607 ringing; 4699 is not in it.
    assert_eq!(
        lines(&a),
        BTreeMap::from([
            ("4605".into(), LineState::Idle),
            ("4607".into(), LineState::Ringing)
        ])
    );
    for p in reports(&a) {
        assert_eq!(
            p.ordering,
            Some(Ordering {
                epoch: epoch.clone(),
                sequence: 171
            })
        );
        assert_eq!(p.telephony.unwrap().source, TelephonySource::SipDerived);
        assert!(p.rich.is_none());
    }
    // Active by the list while its presence subscription still waits.
    assert_eq!(states(&a)["4607"], (EndpointState::Active, None), "{a:?}");
    assert!(warnings(&a).is_empty(), "{a:?}");
    // Partial: 4607 answered; 4605 listed without its state.
    c.on_message(&notify_n(
        &list,
        172,
        "active",
        corpus::BLF_CONTENT_TYPE,
        corpus::BLF_PARTIAL,
    ));
    let a = c.take_actions();
    assert_eq!(
        lines(&a),
        BTreeMap::from([("4607".into(), LineState::InCall)])
    );
    // A newly watched member: the list is refreshed for its state.
    c.watch(&["4607".into(), "4611".into()]);
    let again = requests(&c.take_actions(), "SUBSCRIBE");
    let refresh = again
        .iter()
        .find(|m| m.header("event") == Some("dialog"))
        .expect("a refresh of the list");
    assert_eq!(refresh.header("call-id"), Some(epoch.as_str()));
    c.watch(&["4611".into()]);
    assert!(requests(&c.take_actions(), "SUBSCRIBE").is_empty());
    // An older list NOTIFY arriving late is answered, not applied.
    c.on_message(&notify_n(
        &list,
        171,
        "active",
        corpus::BLF_CONTENT_TYPE,
        corpus::BLF_FULL,
    ));
    let a = c.take_actions();
    assert_eq!(sent_code(&a), Some(200));
    assert!(reports(&a).is_empty(), "{a:?}");
    // Unwatching one keeps the list; the last one ends it.
    c.unwatch(&["4605".into(), "4607".into()]);
    assert!(
        requests(&c.take_actions(), "SUBSCRIBE")
            .iter()
            .all(|m| m.header("event") == Some("presence"))
    );
    c.unwatch(&["4699".into(), "4611".into()]);
    let ends = requests(&c.take_actions(), "SUBSCRIBE");
    let end = ends
        .iter()
        .find(|m| m.header("event") == Some("dialog"))
        .unwrap();
    assert_eq!(end.header("expires"), Some("0"));
    assert_eq!(end.header("call-id"), Some(epoch.as_str()));
}

#[test]
fn every_resource_of_a_blf_list_gets_its_due() {
    let mut s = blf_settings();
    s.events.presence = false;
    let mut c = up(s);
    let eps = [
        "4611", "4612", "4613", "4614", "4615", "4616", "4617", "4618", "4619",
    ];
    let list = watch_list(&mut c, &eps);
    c.on_message(&notify_n(
        &list,
        2,
        "active",
        corpus::BLF_NEIGHBOURS_CONTENT_TYPE,
        corpus::BLF_NEIGHBOURS,
    ));
    let a = c.take_actions();
    assert_eq!(sent_code(&a), Some(200));
    assert_eq!(
        lines(&a),
        BTreeMap::from([
            // An empty part: nothing published, no calls.
            ("4611".into(), LineState::Idle),
            ("4616".into(), LineState::OnHold),
            // Another host's case and URI parameters still match.
            ("4617".into(), LineState::Dialing),
            // Full state without an instance: no state at the server.
            ("4619".into(), LineState::Idle),
        ])
    );
    let st = states(&a);
    // The part that cannot be read is logged with its resource.
    let w = warnings(&a);
    assert!(
        w.iter()
            .any(|w| w.contains("sip:4612@example.com") && w.contains("cannot be read")),
        "{w:?}"
    );
    assert_eq!(st["4612"].0, EndpointState::Error);
    assert!(st["4612"].1.as_deref().unwrap().contains("unreadable"));
    // A presence document where dialog state was asked for.
    assert!(w.iter().any(|w| w.contains("4613")), "{w:?}");
    assert_eq!(st["4613"].0, EndpointState::Error);
    assert_eq!(
        st["4614"],
        (EndpointState::AccessDenied, Some("rejected".into()))
    );
    assert_eq!(
        st["4615"],
        (
            EndpointState::Requesting,
            Some("pending at the server".into())
        )
    );
    // Not in the list: left as it was.
    assert!(!st.contains_key("4618"));
    // 4617's document is partial before any full one: the list is
    // refreshed in its dialog for full state.
    let refresh = requests(&a, "SUBSCRIBE").remove(0);
    assert_eq!(refresh.header("call-id"), list.header("call-id"));
    assert_eq!(refresh.header("event"), Some("dialog"));
    assert!(refresh.header("to").unwrap().contains("tag=srv"));
}

#[test]
fn a_dialog_part_of_a_presence_list_and_lapsed_presence() {
    let mut s = settings();
    s.list_uri = Some("sip:team@example.com".into());
    let mut c = up(s);
    c.take_actions();
    c.watch(&["alice".into(), "2001".into()]);
    let list = requests(&c.take_actions(), "SUBSCRIBE").remove(0);
    assert_eq!(list.header("event"), Some("presence"));
    c.on_message(&reply(&list, 200, "Expires: 600\r\n"));
    c.take_actions();
    // alice in a meeting, and 2001's dialog-info where presence was
    // asked for.
    let ct = r#"multipart/related;type="application/rlmi+xml";boundary="x""#;
    let full = format!(
        "--x\r\nContent-Type: application/rlmi+xml\r\n\r\n\
<list xmlns=\"urn:ietf:params:xml:ns:rlmi\" uri=\"sip:team@example.com\" version=\"0\" fullState=\"true\">\
<resource uri=\"sip:alice@example.com\"><instance id=\"a1\" state=\"active\" cid=\"a@x\"/></resource>\
<resource uri=\"sip:2001@example.com\"><instance id=\"b1\" state=\"active\" cid=\"b@x\"/></resource></list>\r\n\
--x\r\nContent-ID: <a@x>\r\nContent-Type: application/pidf+xml\r\n\r\n{PIDF}\r\n\
--x\r\nContent-ID: <b@x>\r\nContent-Type: application/dialog-info+xml\r\n\r\n\
<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"0\" state=\"full\"/>\r\n--x--\r\n"
    );
    c.on_message(&notify_n(&list, 1, "active", ct, &full));
    let a = c.take_actions();
    let alice = reports(&a).remove(0);
    assert_eq!(alice.endpoint, "alice");
    assert_eq!(alice.rich.unwrap().availability, Availability::Away);
    assert_eq!(states(&a)["2001"].0, EndpointState::Error);
    // alice's publication lapses: an empty part, offline.
    let body = "--x\r\nContent-Type: application/rlmi+xml\r\n\r\n\
<list xmlns=\"urn:ietf:params:xml:ns:rlmi\" version=\"1\" fullState=\"false\">\
<resource uri=\"sip:alice@example.com\"><instance id=\"a1\" state=\"active\" cid=\"a@x\"/></resource></list>\r\n\
--x\r\nContent-ID: <a@x>\r\nContent-Type: application/pidf+xml\r\n\r\n\r\n--x--\r\n";
    c.on_message(&notify_n(&list, 2, "active", ct, body));
    let a = c.take_actions();
    let alice = reports(&a).remove(0);
    assert_eq!(alice.rich.unwrap().availability, Availability::Offline);
}
