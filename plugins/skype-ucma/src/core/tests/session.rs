//! The connection: upgrade, hello/welcome, setup, heartbeats, errors,
//! closes, reconnects.

use presence_connector_sdk::{ConnectorStatus, Failure, RefusedUpgrade};
use serde_json::json;

use super::harness::*;
use crate::core::HEARTBEAT_MS;
use presence_connector_sdk::plain::Core as _;

#[test]
fn upgrade_carries_the_derived_bearer_never_the_token() {
    let h = H::new(USER);
    let c = h.first_connect.clone();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].1, "wss://bridge.example.com:9443/");
    // PROTOCOL.md section 1's test vector for this token.
    assert_eq!(
        c[0].2,
        vec![(
            "Authorization".to_string(),
            "Bearer 3a45525d381fad8480771c6a3749236bbaf35aa3cbbeebf67c62b5ed15f0f657".to_string()
        )]
    );
    let everything = format!("{:?}", h.out);
    assert!(!everything.contains(TOKEN));
    let mut h = h;
    let (st, d) = h.status();
    assert_eq!(st, ConnectorStatus::ConnectionError);
    assert!(d.contains("connecting"), "{d}");
}

#[test]
fn proof_matches_the_documented_vector() {
    assert_eq!(
        crate::wire::proof(TOKEN, &"a".repeat(64), &"b".repeat(64), 1),
        "315c0528f26d7b337323d3ebacc3189240b2415bb11a8e354e86e23b18aa0e71"
    );
}

#[test]
fn hello_offers_version_1_with_a_fresh_nonce_and_heartbeat() {
    let mut h = H::new(USER);
    let hello = h.open();
    assert_eq!(hello["v"], 1);
    assert_eq!(hello["versions"], json!([1]));
    assert_eq!(hello["heartbeat_ms"], HEARTBEAT_MS);
    let nonce = hello["nonce"].as_str().unwrap();
    assert_eq!(nonce.len(), 64);
    assert!(
        nonce
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    // A new connection, a new nonce.
    h.close(Some(1011), None);
    h.run_for(70_000);
    let again = h.open();
    assert_ne!(again["nonce"], hello["nonce"]);
}

#[test]
fn user_endpoint_setup_is_sent_as_configured() {
    let mut h = H::new(USER);
    h.open();
    h.welcome();
    let setup = h.sent_of("setup").pop().unwrap();
    assert_eq!(
        setup["endpoint"],
        json!({"kind": "user", "tls": true, "server_fqdn": "sfb-pool.contoso.com", "server_port": 5061,
               "user_name": "imagicle.presence", "sip_uri": "sip:imagicle.presence@contoso.com",
               "password": "s3cret!", "domain": "CONTOSO"})
    );
    assert_eq!(setup["v"], 1);
    // The password is never logged.
    let logs = format!(
        "{:?}",
        h.take(|a| match a {
            crate::core::Action::Log(_, m) => Some(m.clone()),
            _ => None,
        })
    );
    assert!(!logs.contains("s3cret"), "{logs}");
}

#[test]
fn user_endpoint_without_tls_and_trusted_application_setups() {
    let mut h = H::new(&with(USER, "endpoint_type", "user-endpoint-without-tls"));
    h.open();
    h.welcome();
    let setup = h.sent_of("setup").pop().unwrap();
    assert_eq!(setup["endpoint"]["tls"], false);
    assert_eq!(setup["endpoint"]["server_port"], 5060);

    let mut h = H::new(TRUSTED);
    h.open();
    h.welcome();
    let setup = h.sent_of("setup").pop().unwrap();
    assert_eq!(
        setup["endpoint"],
        json!({"kind": "trusted-application", "server_fqdn": "sfb-pool.contoso.com", "server_port": 5061,
               "application_contact_uri": "sip:presence-app@contoso.com",
               "application_gruu": "sip:hubapp.contoso.com@contoso.com;gruu;opaque=srvr:presencehub:atifA",
               "certificate_friendly_name": "OCSConnector", "application_host": "hubapp.contoso.com",
               "application_port": 14001})
    );
}

#[test]
fn established_endpoint_is_up_and_running() {
    let mut h = H::new(USER);
    h.up("self");
    let (st, d) = h.status();
    assert_eq!(st, ConnectorStatus::UpAndRunning);
    assert!(d.contains("Sim.UcmaBridge/1.0"), "{d}");
    assert!(d.contains("sip:imagicle.presence@contoso.com"), "{d}");
    assert!(d.contains("own URI only"), "{d}");
}

#[test]
fn a_wrong_proof_is_refused_with_4001_and_retried_slowly() {
    let mut h = H::new(USER);
    h.open();
    h.welcome_with("another token of at least thirty-two chars", 500);
    let err = h.sent_of("error").pop().expect("error sent");
    assert_eq!(err["code"], "auth-failed");
    assert_eq!(err["fatal"], true);
    assert_eq!(h.closes(), vec![(1, 4001)]);
    assert!(h.sent_of("setup").is_empty());
    let (st, d) = h.status();
    assert_eq!(st, ConnectorStatus::Forbidden);
    assert!(d.contains("bridge authentication failed"), "{d}");
    h.run_for(4 * 60_000);
    assert!(h.connects().is_empty(), "retried too soon");
    h.run_for(61_000);
    assert_eq!(h.connects().len(), 1);
}

#[test]
fn a_refused_token_is_forbidden() {
    let mut h = H::new(USER);
    h.close(
        None,
        Some(Failure::UpgradeRefused(RefusedUpgrade {
            status: 401,
            headers: vec![],
            body: vec![],
        })),
    );
    let (st, d) = h.status();
    assert_eq!(st, ConnectorStatus::Forbidden);
    assert!(d.contains("refused the token"), "{d}");
    h.run_for(4 * 60_000);
    assert!(h.connects().is_empty());
}

#[test]
fn a_certificate_problem_is_named() {
    let mut h = H::new(USER);
    h.close(None, Some(Failure::TlsCertificate("unknown issuer".into())));
    let (st, d) = h.status();
    assert_eq!(st, ConnectorStatus::ConnectionError);
    assert!(d.contains("certificate problem"), "{d}");
    assert!(
        d.contains("unknown issuer") && d.contains("tls_ca_pem"),
        "{d}"
    );
}

#[test]
fn an_unreachable_bridge_is_a_connection_error_with_capped_jittered_backoff() {
    let mut h = H::new(USER);
    let mut delays = Vec::new();
    for _ in 0..9 {
        h.connects();
        let start = h.now;
        h.close(None, Some(Failure::Refused));
        if let Some((st, d)) = h.statuses().pop() {
            assert_eq!(st, ConnectorStatus::ConnectionError);
            assert!(d.contains("connection refused"), "{d}");
        }
        while h.connects().is_empty() {
            let w = h.wake.take().expect("a wake-up");
            h.at(w);
        }
        delays.push(h.now - start);
    }
    // 1 s, 2 s, 4 s ... capped at 60 s, each within ±20 %.
    let ceilings = [
        1_000u64, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000,
    ];
    for (d, c) in delays.iter().zip(ceilings) {
        assert!(*d >= c * 4 / 5 && *d <= c * 6 / 5, "{d} vs {c}: {delays:?}");
    }
}

#[test]
fn version_unsupported_shows_both_lists_and_retries_slowly() {
    let mut h = H::new(USER);
    h.open();
    h.bridge(json!({"v": 1, "type": "error", "code": "version-unsupported", "detail": "bridge speaks 2", "fatal": true, "supported": [2]}));
    h.close(Some(4002), None);
    let (st, d) = h.status();
    assert_eq!(st, ConnectorStatus::ConnectionError);
    assert!(d.contains("version(s) 2") && d.contains("speaks 1"), "{d}");
    h.run_for(4 * 60_000);
    assert!(h.connects().is_empty());
}

#[test]
fn a_welcome_choosing_an_unoffered_version_is_a_protocol_error() {
    let mut h = H::new(USER);
    h.open();
    h.bridge(json!({"v": 1, "type": "welcome", "version": 3, "nonce": "b".repeat(64), "proof": "0".repeat(64), "bridge": "x", "max_batch": 100}));
    assert_eq!(h.closes(), vec![(1, 4003)]);
}

#[test]
fn setup_failures_show_the_seeds_statuses() {
    let cases = [
        (
            "forbidden",
            false,
            ConnectorStatus::Forbidden,
            "credentials",
            300_000,
        ),
        (
            "not-found",
            false,
            ConnectorStatus::Forbidden,
            "not found",
            300_000,
        ),
        (
            "certificate-error",
            false,
            ConnectorStatus::ConnectionError,
            "certificate problem",
            300_000,
        ),
        (
            "invalid-setup",
            false,
            ConnectorStatus::NotConfigured,
            "configuration error",
            300_000,
        ),
        (
            "connection-error",
            true,
            ConnectorStatus::ConnectionError,
            "cannot reach",
            1_200,
        ),
        (
            "timeout",
            true,
            ConnectorStatus::ConnectionError,
            "timed out",
            1_200,
        ),
        (
            "internal-error",
            true,
            ConnectorStatus::ConnectionError,
            "failed to establish",
            1_200,
        ),
    ];
    for (code, retryable, status, words, retry_within) in cases {
        let mut h = H::new(USER);
        h.open();
        h.welcome();
        let setup = h.sent_of("setup").pop().unwrap();
        h.bridge(json!({"v": 1, "type": "setup-result", "request_id": setup["request_id"], "outcome": "failed", "code": code, "retryable": retryable, "detail": "RegisterException: 401 Unauthorized", "sip_response_code": 401}));
        let (st, d) = h.status();
        assert_eq!(st, status, "{code}: {d}");
        assert!(
            d.contains(words) && d.contains(code) && d.contains("SIP 401"),
            "{code}: {d}"
        );
        // The connection stays; setup is sent again on it later.
        assert!(h.closes().is_empty());
        h.run_answering(retry_within);
        assert_eq!(h.sent_of("setup").len(), 1, "{code}");
        assert!(h.connects().is_empty());
    }
}

#[test]
fn heartbeats_both_ways() {
    let mut h = H::new(USER);
    h.up("self");
    h.bridge(json!({"v": 1, "type": "ping", "request_id": "hb-b1"}));
    let pong = h.sent_of("pong").pop().unwrap();
    assert_eq!(pong["request_id"], "hb-b1");
    let pings = h.run_answering(60_000);
    assert_eq!(pings, 4, "one ping per 15 s");
    assert!(h.closes().is_empty());
}

#[test]
fn a_missing_pong_closes_with_4004_and_reconnects() {
    let mut h = H::new(USER);
    h.up("self");
    h.statuses();
    h.advance(HEARTBEAT_MS);
    assert_eq!(h.sent_of("ping").len(), 1);
    // The bridge says other things but never pongs.
    h.advance(HEARTBEAT_MS / 2);
    h.bridge(json!({"v": 1, "type": "ping", "request_id": "x1"}));
    h.advance(HEARTBEAT_MS / 2);
    assert_eq!(h.closes(), vec![(1, 4004)]);
    let (st, d) = h.status();
    assert_eq!(st, ConnectorStatus::ConnectionError);
    assert!(d.contains("heartbeat timeout"), "{d}");
    h.run_for(1_300);
    assert_eq!(h.connects().len(), 1);
}

#[test]
fn silence_before_the_welcome_is_a_dead_bridge() {
    let mut h = H::new(USER);
    h.open();
    h.advance(10_000);
    assert_eq!(h.closes(), vec![(1, 4003)]);
    let (_, d) = h.status();
    assert!(d.contains("did not answer the hello"), "{d}");
}

#[test]
fn a_bridge_restart_reconnects_after_about_a_second() {
    let mut h = H::new(USER);
    h.up("any");
    h.bridge(
        json!({"v": 1, "type": "bye", "reason": "bridge-restarting", "detail": "service update"}),
    );
    h.close(Some(1012), None);
    let wake = h.wake.unwrap() - h.now;
    assert!((1_000..1_250).contains(&wake), "{wake}");
    h.run_for(1_250);
    assert_eq!(h.connects().len(), 1);
    assert_eq!(h.conn, 2);
}

#[test]
fn backoff_resets_after_a_minute_established() {
    let mut h = H::new(USER);
    for _ in 0..4 {
        h.close(None, Some(Failure::Refused));
        h.run_for(20_000);
    }
    h.up("self");
    h.run_answering(61_000);
    h.close(Some(1011), None);
    let wake = h.wake.unwrap() - h.now;
    assert!(wake <= 1_200, "{wake}");
}

#[test]
fn garbage_and_binary_frames_are_protocol_errors_unknown_types_are_not() {
    let mut h = H::new(USER);
    h.up("self");
    h.bridge(json!({"v": 1, "type": "surprise"}));
    assert_eq!(h.sent_of("error").pop().unwrap()["code"], "unknown-type");
    assert!(h.closes().is_empty());
    // A known type that does not fit: said, not fatal.
    h.bridge(json!({"v": 1, "type": "presence", "target": "sip:a@b"}));
    let e = h.sent_of("error").pop().unwrap();
    assert_eq!(
        (e["code"].as_str(), e["fatal"].as_bool()),
        (Some("bad-message"), Some(false))
    );
    assert!(h.closes().is_empty());
    // A message with another version after negotiation: fatal.
    h.bridge(json!({"v": 2, "type": "ping", "request_id": "p"}));
    assert_eq!(h.closes(), vec![(1, 4003)]);

    let mut h = H::new(USER);
    h.up("self");
    h.bridge_text("{not json");
    assert_eq!(h.closes(), vec![(1, 4003)]);

    let mut h = H::new(USER);
    h.up("self");
    h.core.on_ws_binary(h.conn, &[0], h.now);
    h.collect();
    assert_eq!(h.closes(), vec![(1, 4003)]);
}

#[test]
fn shutdown_says_bye_and_closes() {
    let mut h = H::new(USER);
    h.up("self");
    h.core.leave("hub-stopping", h.now);
    h.collect();
    assert_eq!(h.sent_of("bye").pop().unwrap()["reason"], "hub-stopping");
    assert_eq!(h.closes(), vec![(1, 1000)]);
    // Nothing more happens afterwards.
    h.close(Some(1000), None);
    h.run_for(120_000);
    assert!(h.connects().is_empty());
}

#[test]
fn a_stale_close_of_an_old_connection_is_ignored() {
    let mut h = H::new(USER);
    h.up("self");
    h.advance(HEARTBEAT_MS);
    h.advance(HEARTBEAT_MS);
    // Heartbeat timeout dropped connection 1; connection 2 comes.
    h.run_for(2_000);
    assert_eq!(h.conn, 2);
    h.statuses();
    h.connects();
    let close = presence_connector_sdk::CloseInfo {
        code: Some(4004),
        reason: String::new(),
        failure: None,
    };
    h.core.on_ws_closed(1, &close, h.now);
    h.collect();
    assert!(h.statuses().is_empty());
    assert!(h.connects().is_empty());
}
