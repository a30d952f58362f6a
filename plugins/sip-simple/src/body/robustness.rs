//! Fuzz targets `sip-bodies` and `sip-messages` on the shared engine
//! (`tools/fuzzkit`): every recorded body, mutated, through every body
//! parser, and every recorded SIP message through the message parser and
//! the stream framer, with no panic allowed. They run in the normal test
//! suite so CI (stable Rust, no cargo-fuzz) holds the parsers to the same
//! contract as the fuzz target in `fuzz/`. Budget: `fuzzkit::Budget::CI`
//! (20 000 inputs or 15 s per target); `FUZZ_SECONDS=<n>` runs longer.

use super::fixtures::corpus;
use super::*;

/// Fragments that steer mutations towards parser edge cases.
pub(crate) const TOKENS: &[&[u8]] = &[
    b"<",
    b">",
    b"/>",
    b"</",
    b"&",
    b"&amp;",
    b"&#x0;",
    b"&#xD800;",
    b"&#99999999;",
    b"<![CDATA[",
    b"]]>",
    b"<!--",
    b"-->",
    b"<?xml version=\"1.0\"?>",
    b"\"",
    b"'",
    b"=",
    b"xmlns=\"\"",
    b"xmlns:p=\"urn:x\"",
    b"p:",
    b"\r\n",
    b"\n",
    b"\r\n\r\n",
    b"--",
    b"--b1",
    b"--b1--",
    b"--abc123xyz\r\n",
    b"--boundary1\r\n",
    b"Content-ID: <",
    b"Content-Type: application/pidf+xml\r\n\r\n",
    b"\xEF\xBB\xBF",
    b"\xFF\xFE",
    b"\xC3",
    b"\0",
    b"<a><a><a><a><a><a><a><a>",
    b"version=\"18446744073709551616\"",
    b"2026-02-30T25:61:61.9999+99:99",
    // SIP header grammar: folding, colons, lists, numbers.
    b"\r\n ",
    b"\r\n\t",
    b":",
    b";",
    b",",
    b"Content-Length: 99999999999999999999\r\n",
    b"l: 0\r\n",
    b"CSeq: 1 X\r\n",
    b" SIP/2.0",
    b"SIP/2.0 ",
    // Content-type parameters (the first line of a body input).
    b"multipart/mixed; boundary=",
    b";boundary=\"",
    b";type=\"application/rlmi+xml\"",
    b";start=\"<",
];

const CONTENT_TYPES: &[&str] = &[
    "application/pidf+xml",
    "application/dialog-info+xml",
    "application/x-as-feature-event+xml",
    "multipart/mixed; boundary=boundary1",
    "multipart/related;type=\"application/rlmi+xml\";start=\"<rlmi@hub>\";boundary=\"b1\"",
    "multipart/related;boundary=\"abc123xyz\"",
];

/// Runs every parser and the state machines on one input.
fn exercise(content_type: &str, body: &[u8]) {
    if let Ok(doc) = parse_dialog_info(body) {
        let mut t = DialogTracker::new();
        let state = doc.line_state();
        t.apply(doc);
        let _ = (t.line_state(), t.raw(), state);
    }
    let _ = parse_pidf(body);
    let _ = parse_rlmi(body);
    let _ = parse_feature_event(body);
    let _ = media_type(content_type);
    let _ = parse_multipart(content_type, body);
    if let Ok(events) = parse_feature_events(content_type, body) {
        let mut st = FeatureState::new();
        st.apply_all(events);
        let _ = (st.dnd(), st.forward(), st.raw());
    }
    let _ = parse_rls_notify(content_type, body);
}

/// A body input is `content-type \n body`, as the cargo-fuzz target reads
/// it, so mutations garble the content type too. One input in four also
/// runs under one of the real content types.
fn exercise_typed(input: &[u8]) {
    let (ct, body) = match input.iter().position(|&b| b == b'\n') {
        Some(nl) => (String::from_utf8_lossy(&input[..nl]), &input[nl + 1..]),
        None => (String::new().into(), input),
    };
    exercise(&ct, body);
    if input.len().is_multiple_of(4) {
        exercise(CONTENT_TYPES[(input.len() / 4) % CONTENT_TYPES.len()], body);
    }
}

#[test]
fn fuzz_sip_bodies() {
    let seeds: Vec<Vec<u8>> = corpus()
        .into_iter()
        .map(|(ct, body)| format!("{ct}\n{body}").into_bytes())
        .collect();
    fuzzkit::check(
        "sip-bodies",
        &seeds,
        TOKENS,
        fuzzkit::Budget::from_env(),
        exercise_typed,
    );
}

/// Parses one message as a datagram and as stream bytes (in two pieces),
/// and builds the answer an unreadable request would get.
fn exercise_message(bytes: &[u8]) {
    use crate::sip::{Message, framing::Framer};
    match Message::parse(bytes) {
        Ok(m) => {
            let _ = (m.cseq(), m.branch(), m.content_type(), m.retry_after_secs());
        }
        Err(e) => {
            let _ = (e.answer(), e.start_line(), e.to_string());
        }
    }
    // Where the stream is cut: anywhere, chosen by the input itself.
    let split = bytes.first().map_or(0, |&b| {
        (usize::from(b) * 131 + bytes.len() / 2) % (bytes.len() + 1)
    });
    let mut framer = Framer::default();
    for chunk in [&bytes[..split], &bytes[split..]] {
        for frame in framer.push(chunk) {
            if let crate::sip::framing::Frame::Message(m) = frame {
                let _ = Message::parse(&m);
            }
        }
    }
}

pub(crate) fn message_seeds() -> Vec<Vec<u8>> {
    use crate::sip::torture;
    let mut messages: Vec<Vec<u8>> = torture::valid().into_iter().map(|(_, m)| m).collect();
    messages.extend(
        torture::INVALID_REQUESTS
            .iter()
            .map(|(_, t, _)| torture::wire(t)),
    );
    messages.extend(
        torture::INVALID_RESPONSES
            .iter()
            .map(|(_, t)| torture::wire(t)),
    );
    messages
}

#[test]
fn fuzz_sip_messages() {
    fuzzkit::check(
        "sip-messages",
        &message_seeds(),
        TOKENS,
        fuzzkit::Budget::from_env(),
        exercise_message,
    );
}

/// Seeds the cargo-fuzz corpus (`fuzz/corpus/bodies/`, not committed)
/// with every recorded body and SIP message, so fuzzing starts deep:
/// `cargo test -p sip-simple -- --ignored seed_fuzz_corpus`.
#[test]
#[ignore = "writes files into fuzz/corpus/bodies"]
fn seed_fuzz_corpus() {
    use crate::sip::torture;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/bodies");
    std::fs::create_dir_all(&dir).unwrap();
    for (index, (content_type, body)) in corpus().into_iter().enumerate() {
        std::fs::write(dir.join(format!("body-{index:02}")), body).unwrap();
        // The target also reads a first line as the content type.
        let typed = format!("{content_type}\n{body}");
        std::fs::write(dir.join(format!("typed-body-{index:02}")), typed).unwrap();
    }
    for (name, message) in torture::valid() {
        std::fs::write(dir.join(format!("sip-{name}")), message).unwrap();
    }
    for (name, text, _) in torture::INVALID_REQUESTS {
        std::fs::write(dir.join(format!("sip-{name}")), torture::wire(text)).unwrap();
    }
    for (name, text) in torture::INVALID_RESPONSES {
        std::fs::write(dir.join(format!("sip-{name}")), torture::wire(text)).unwrap();
    }
}

#[test]
fn limits_hold_for_every_entry_point() {
    let big = vec![b'<'; MAX_BODY_BYTES + 1];
    let too_large = |r: Result<(), BodyError>| matches!(r, Err(BodyError::TooLarge { .. }));
    assert!(too_large(parse_pidf(&big).map(|_| ())));
    assert!(too_large(parse_dialog_info(&big).map(|_| ())));
    assert!(too_large(parse_rlmi(&big).map(|_| ())));
    assert!(too_large(parse_feature_event(&big).map(|_| ())));
    assert!(too_large(
        parse_feature_events("application/x-as-feature-event+xml", &big).map(|_| ())
    ));
    assert!(too_large(
        parse_multipart("multipart/mixed;boundary=b", &big).map(|_| ())
    ));
    assert!(too_large(
        parse_rls_notify("multipart/related;boundary=b", &big).map(|_| ())
    ));
    // Deep nesting inside an otherwise valid PIDF.
    let deep = format!(
        r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b">{}{}</presence>"#,
        "<x>".repeat(MAX_XML_DEPTH),
        "</x>".repeat(MAX_XML_DEPTH)
    );
    assert_eq!(
        parse_pidf(deep.as_bytes()).unwrap_err(),
        BodyError::TooDeep {
            limit: MAX_XML_DEPTH
        }
    );
    // Deeply nested multipart-looking input stays linear and bounded.
    let many = "--b\r\n\r\n\r\n".repeat(20_000);
    assert!(parse_multipart("multipart/mixed;boundary=b", many.as_bytes()).is_err());
}
