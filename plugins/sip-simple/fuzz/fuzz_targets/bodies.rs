//! Feeds arbitrary bytes to every message-body parser of `sip_simple::body`
//! and to the SIP message parser and stream framer of `sip_simple::sip`.
//! Any panic is a bug: these parsers read what remote servers send.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_simple::body;
use sip_simple::sip::Message;
use sip_simple::sip::framing::{Frame, Framer};

/// Content types the bodies arrive with; multipart ones with the boundaries
/// used in the unit-test corpus so mutations can hit real delimiters.
const CONTENT_TYPES: &[&str] = &[
    "application/pidf+xml",
    "application/dialog-info+xml",
    "application/x-as-feature-event+xml",
    "multipart/mixed; boundary=boundary1",
    "multipart/related;type=\"application/rlmi+xml\";start=\"<rlmi@hub>\";boundary=\"b1\"",
];

fn exercise(content_type: &str, data: &[u8]) {
    let _ = body::parse_pidf(data);
    if let Ok(doc) = body::parse_dialog_info(data) {
        let mut tracker = body::DialogTracker::new();
        tracker.apply(doc);
        let _ = (tracker.line_state(), tracker.raw());
    }
    let _ = body::parse_rlmi(data);
    let _ = body::parse_feature_event(data);
    if let Ok(events) = body::parse_feature_events(content_type, data) {
        let mut state = body::FeatureState::new();
        state.apply_all(events);
        let _ = (state.dnd(), state.forward(), state.raw());
    }
    let _ = body::media_type(content_type);
    let _ = body::parse_multipart(content_type, data);
    let _ = body::parse_rls_notify(content_type, data);
}

fuzz_target!(|data: &[u8]| {
    for content_type in CONTENT_TYPES {
        exercise(content_type, data);
    }
    // Also let the input choose its own content type: first line = header
    // value, the rest = body.
    if let Some(nl) = data.iter().position(|&b| b == b'\n') {
        let content_type = String::from_utf8_lossy(&data[..nl]);
        exercise(&content_type, &data[nl + 1..]);
    }
    // The SIP message parser, the answer to an unreadable request, and the
    // stream framer fed in two pieces.
    match Message::parse(data) {
        Ok(m) => {
            let _ = (m.cseq(), m.branch(), m.content_type(), m.retry_after_secs());
        }
        Err(e) => {
            let _ = (e.answer(), e.start_line());
        }
    }
    let mut framer = Framer::default();
    let (a, b) = data.split_at(data.len() / 2);
    for chunk in [a, b] {
        for frame in framer.push(chunk) {
            if let Frame::Message(m) = frame {
                let _ = Message::parse(&m);
            }
        }
    }
});
