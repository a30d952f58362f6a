//! Deterministic mutation tests: every recorded body, mutated many times,
//! through every body parser, and every recorded SIP message through the
//! message parser and the stream framer, with no panic allowed. They run
//! in the normal test suite so CI (stable Rust, no cargo-fuzz) holds the
//! parsers to the same contract as the fuzz target in `fuzz/`.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::fixtures::corpus;
use super::*;

/// Mutations in total, spread evenly over the recorded bodies. Each one
/// goes through every parser, so this is ~8 parser runs per mutation; in an
/// unoptimised test build that takes a few seconds. Set
/// `SIP_BODY_MUTATIONS` to run more (e.g. 400000 with `--release`).
const DEFAULT_MUTATIONS: usize = 20_000;

fn total_mutations() -> usize {
    std::env::var("SIP_BODY_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MUTATIONS)
}

/// xorshift64*: tiny, deterministic, good enough to pick mutations.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Fragments that steer mutations towards parser edge cases.
const TOKENS: &[&[u8]] = &[
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
];

fn mutate(rng: &mut XorShift, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = out.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                out[i] = rng.next() as u8;
            }
            2 => out.truncate(rng.below(len + 1)),
            3 => {
                let i = rng.below(len + 1);
                let tok = TOKENS[rng.below(TOKENS.len())];
                out.splice(i..i, tok.iter().copied());
            }
            4 if len > 0 => {
                let a = rng.below(len);
                let b = (a + rng.below(64)).min(len);
                out.drain(a..b);
            }
            5 if len > 0 => {
                let a = rng.below(len);
                let b = (a + rng.below(128)).min(len);
                let chunk = out[a..b].to_vec();
                let at = rng.below(len + 1);
                out.splice(at..at, chunk);
            }
            6 => {
                let i = rng.below(len + 1);
                let n = rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                out.splice(i..i, bytes);
            }
            _ if len > 1 => {
                let a = rng.below(len);
                let b = rng.below(len);
                out.swap(a, b);
            }
            _ => {}
        }
    }
    out
}

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

#[test]
fn mutated_bodies_never_panic() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let bodies = corpus();
    let per_body = total_mutations().div_ceil(bodies.len());
    let mut runs = 0usize;
    for (index, (content_type, body)) in bodies.iter().copied().enumerate() {
        // The unmutated body first.
        exercise(content_type, body.as_bytes());
        for i in 0..per_body {
            let mutated = mutate(&mut rng, body.as_bytes());
            // Now and then garble the content type too.
            let ct_owned;
            let ct = if rng.below(16) == 0 {
                ct_owned = String::from_utf8_lossy(&mutate(&mut rng, content_type.as_bytes()))
                    .into_owned();
                ct_owned.as_str()
            } else if rng.below(4) == 0 {
                CONTENT_TYPES[rng.below(CONTENT_TYPES.len())]
            } else {
                content_type
            };
            let outcome = catch_unwind(AssertUnwindSafe(|| exercise(ct, &mutated)));
            assert!(
                outcome.is_ok(),
                "panic on corpus body {index}, mutation {i}, content type {ct:?}, input {:?}",
                String::from_utf8_lossy(&mutated)
            );
            runs += 1;
        }
    }
    assert_eq!(runs, bodies.len() * per_body);
}

/// Parses one message as a datagram and as stream bytes (in two pieces),
/// and builds the answer an unreadable request would get.
fn exercise_message(bytes: &[u8], split: usize) {
    use crate::sip::{Message, framing::Framer};
    match Message::parse(bytes) {
        Ok(m) => {
            let _ = (m.cseq(), m.branch(), m.content_type(), m.retry_after_secs());
        }
        Err(e) => {
            let _ = (e.answer(), e.start_line(), e.to_string());
        }
    }
    let mut framer = Framer::default();
    let split = split.min(bytes.len());
    for chunk in [&bytes[..split], &bytes[split..]] {
        for frame in framer.push(chunk) {
            if let crate::sip::framing::Frame::Message(m) = frame {
                let _ = Message::parse(&m);
            }
        }
    }
}

#[test]
fn mutated_messages_never_panic() {
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
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    let per_message = total_mutations().div_ceil(messages.len());
    for (index, message) in messages.iter().enumerate() {
        exercise_message(message, message.len() / 2);
        for i in 0..per_message {
            let mutated = mutate(&mut rng, message);
            let split = rng.below(mutated.len() + 1);
            let outcome = catch_unwind(AssertUnwindSafe(|| exercise_message(&mutated, split)));
            assert!(
                outcome.is_ok(),
                "panic on message {index}, mutation {i}, input {:?}",
                String::from_utf8_lossy(&mutated)
            );
        }
    }
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
