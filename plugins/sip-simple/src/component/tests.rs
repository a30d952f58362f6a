//! The connector under the SDK's test kit: the link to the server over the
//! host's sockets, framing, reconnects and identifiers, without a hub.

use presence_connector_sdk::testkit::{TestHub, text};
use presence_connector_sdk::{CloseInfo, Failure, HostError};

use super::SipSimple;

fn hub(transport: &str) -> TestHub<SipSimple> {
    let mut hub = TestHub::new();
    hub.configure(&[
        ("server", text("pbx.example.com")),
        ("transport", text(transport)),
        ("uri", text("hub@example.com")),
    ])
    .unwrap();
    hub
}

fn refused() -> CloseInfo {
    CloseInfo {
        code: None,
        reason: String::new(),
        failure: Some(Failure::Refused),
    }
}

#[test]
fn over_udp_subscribes_from_the_bound_address() {
    let mut hub = hub("udp");
    hub.watch(&["201"]).unwrap();
    let sent = hub.datagrams_sent_text("pbx.example.com");
    let subscribe = sent
        .iter()
        .find(|m| m.starts_with("SUBSCRIBE sip:201@example.com"))
        .unwrap_or_else(|| panic!("no SUBSCRIBE in {sent:?}"));
    assert!(
        subscribe.contains("Via: SIP/2.0/UDP 192.0.2.1:5060;"),
        "{subscribe}"
    );
    assert_eq!(hub.host().datagrams[0].1.port, 5060);
}

#[test]
fn identifiers_differ_between_subscriptions() {
    let mut hub = hub("udp");
    hub.watch(&["201", "202"]).unwrap();
    let call_ids: Vec<String> = hub
        .datagrams_sent_text("pbx")
        .iter()
        .filter(|m| m.starts_with("SUBSCRIBE"))
        .filter_map(|m| {
            m.lines()
                .find(|l| l.starts_with("Call-ID:"))
                .map(String::from)
        })
        .collect();
    assert!(call_ids.len() >= 2, "{call_ids:?}");
    let mut unique = call_ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), call_ids.len(), "{call_ids:?}");
}

#[test]
fn over_tls_waits_for_the_stream_then_subscribes() {
    let mut hub = hub("tls");
    hub.watch(&["201"]).unwrap();
    assert_eq!(hub.stream_sent_text("pbx"), "", "sent before connected");
    hub.stream_accept("pbx");
    let sent = hub.stream_sent_text("pbx");
    assert!(sent.contains("SUBSCRIBE sip:201@example.com"), "{sent}");
    assert!(sent.contains("Via: SIP/2.0/TLS 192.0.2.1:40000;"), "{sent}");
}

#[test]
fn a_closed_stream_is_reconnected_with_backoff() {
    let mut hub = hub("tcp");
    hub.stream_accept("pbx");
    hub.stream_drop("pbx", refused());
    assert!(
        hub.logs()
            .iter()
            .any(|(_, l)| l == "stream to the server closed: connection refused"),
        "{:?}",
        hub.logs()
    );
    assert_eq!(hub.host().streams.len(), 1);
    hub.advance(1_999);
    assert_eq!(hub.host().streams.len(), 1, "reconnected too early");
    hub.advance(1);
    assert_eq!(hub.host().streams.len(), 2);
}

#[test]
fn a_stream_out_of_sync_is_closed_and_reopened() {
    let mut hub = hub("tcp");
    hub.stream_accept("pbx");
    let first = hub.host().streams[0].0;
    hub.stream_receive("pbx", b"SIP/2.0 200 OK\r\nContent-Length: nine\r\n\r\n");
    assert!(
        hub.logs()
            .iter()
            .any(|(_, l)| l.starts_with("stream out of sync")),
        "{:?}",
        hub.logs()
    );
    assert_eq!(hub.host().net_closed, [first]);
    hub.advance(2_000);
    assert_eq!(hub.host().streams.len(), 2);
}

#[test]
fn a_refused_bind_shows_in_the_status_and_is_retried() {
    let mut hub = TestHub::<SipSimple>::new();
    hub.refuse(
        "pbx.example.com:5060",
        HostError::NotGranted("udp://pbx.example.com:5060".into()),
    );
    hub.configure(&[
        ("server", text("pbx.example.com")),
        ("uri", text("hub@example.com")),
    ])
    .unwrap();
    let statuses = hub.statuses();
    assert!(
        statuses
            .iter()
            .any(|(_, detail)| detail.as_deref().is_some_and(|d| d.contains("not-granted"))),
        "{statuses:?}"
    );
    hub.host().refusals.clear();
    hub.advance(2_000);
    assert_eq!(hub.host().udp.len(), 1);
}

#[test]
fn shutdown_closes_the_link_once_nothing_is_left_to_say() {
    let mut hub = hub("tcp");
    hub.stream_accept("pbx");
    hub.shutdown();
    assert_eq!(hub.host().net_closed.len(), 1);
    hub.advance(60_000);
    assert_eq!(hub.host().streams.len(), 1, "reconnected while stopping");
}

#[test]
fn shutdown_keeps_the_link_while_goodbyes_are_out() {
    let mut hub = hub("tcp");
    hub.watch(&["201"]).unwrap();
    hub.stream_accept("pbx");
    hub.shutdown();
    assert!(
        hub.host().net_closed.is_empty(),
        "closed before the goodbyes"
    );
    hub.stream_drop("pbx", refused());
    hub.advance(60_000);
    assert_eq!(hub.host().streams.len(), 1, "reconnected while stopping");
}

/// Fuzz target `sip-link`: every recorded SIP message, mutated, arriving
/// on a stream and in a datagram at a connector that is subscribing, so
/// the core's dialog handling and the link glue run on it, not only the
/// parser. No panic allowed; budget as the other SIP targets
/// (`FUZZ_SECONDS=<n>` runs longer).
#[test]
fn fuzz_sip_link() {
    use crate::body::robustness::{TOKENS, message_seeds};
    fuzzkit::check(
        "sip-link",
        &message_seeds(),
        TOKENS,
        fuzzkit::Budget::from_env(),
        |bytes| {
            let mut tcp = hub("tcp");
            tcp.watch(&["201"]).unwrap();
            tcp.stream_accept("pbx");
            tcp.stream_receive("pbx", bytes);
            tcp.advance(64_000);
            let mut udp = hub("udp");
            udp.watch(&["201"]).unwrap();
            udp.udp_receive("pbx", bytes);
            udp.advance(64_000);
        },
    );
}
