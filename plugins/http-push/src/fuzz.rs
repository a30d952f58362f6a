//! Fuzz target `webhook-bodies` (`tools/fuzzkit`): the pushed request body
//! (one update or `{"updates": [...]}`), and the signature headers, from
//! the seeds in `fuzz/corpus/webhook-bodies/`, mutated; no panic allowed.
//! `FUZZ_SECONDS=<n> cargo test -p http-push fuzz` runs longer.

use presence_connector_sdk::Header;

use crate::{payload, signature};

const DICTIONARY: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\"",
    b"null",
    b"true",
    b"false",
    b"0",
    b"-1",
    b"1e400",
    b"18446744073709551616",
    b"\"\\ud800\"",
    b"\"\\u0000\"",
    b"\\",
    b"\"updates\":",
    b"\"endpoint\":",
    b"\"observed_at\":",
    b"\"sequence\":",
    b"\"valid_for_seconds\":",
    b"\"telephony\":{\"line\":",
    b"\"forward\":{\"voicemail\":true}",
    b"\"forward\":{\"number\":",
    b"\"source\":\"sip-derived\"",
    b"\"rich\":{\"availability\":",
    b"\"activity\":",
    b"\"note\":",
    b"\"raw\":{",
    b"\"in-call\"",
    b"\"do-not-disturb\"",
    b"sha256=",
    b"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
];

const NOW_MS: u64 = 1_772_360_000_000;

fn exercise(body: &[u8]) {
    if let Err(e) = payload::parse(body) {
        let _ = (e.message, e.field);
    }
    // The same bytes as header values: timestamp and signature.
    let text = String::from_utf8_lossy(body).into_owned();
    let header = |name: &str, value: &str| Header {
        name: name.into(),
        value: value.into(),
    };
    let headers = [
        header(signature::TIMESTAMP_HEADER, &text),
        header(signature::SIGNATURE_HEADER, &text),
    ];
    if let Err(e) = signature::verify(&headers, body, b"secret", 300, NOW_MS) {
        let _ = e.message();
    }
    // A correctly signed request whose timestamp is the input's digits.
    let digits: String = text.chars().filter(char::is_ascii_digit).take(24).collect();
    let signed = [
        header(signature::TIMESTAMP_HEADER, &digits),
        header(
            signature::SIGNATURE_HEADER,
            &signature::sign(b"secret", &digits, body),
        ),
    ];
    if let Err(e) = signature::verify(&signed, body, b"secret", 300, NOW_MS) {
        let _ = e.message();
    }
}

#[test]
fn fuzz_webhook_bodies() {
    let corpus = fuzzkit::load_corpus(env!("CARGO_MANIFEST_DIR"), "webhook-bodies");
    fuzzkit::check(
        "webhook-bodies",
        &corpus,
        DICTIONARY,
        fuzzkit::Budget::from_env(),
        exercise,
    );
}
