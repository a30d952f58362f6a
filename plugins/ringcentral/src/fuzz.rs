//! Fuzz target `ringcentral-json` (`tools/fuzzkit`): token answers,
//! directory and presence pages, subscriptions, notifications (WebHook
//! bodies and the `[meta, body]` WebSocket frames) and error bodies, from
//! the seeds in `fuzz/corpus/ringcentral-json/`, mutated; no panic allowed.
//! `FUZZ_SECONDS=<n> cargo test -p ringcentral fuzz` runs longer. The same
//! seeds also drive the whole engine over a live WebSocket
//! (`core::tests::fuzz`, target `ringcentral-ws`).

use serde_json::Value;

use crate::mapping;
use crate::wire::*;

pub(crate) const DICTIONARY: &[&[u8]] = &[
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
    b"9999999999999999999",
    b"\"\\ud800\"",
    b"\"\\u0000\"",
    b"\\",
    b"[{\"type\":\"ServerNotification\",\"messageId\":\"1\"},",
    b"{\"type\":\"ConnectionDetails\",\"wsc\":{\"token\":\"t\",\"sequence\":1}}",
    b"\"type\":",
    b"\"status\":",
    b"\"wsc\":{\"token\":",
    b"\"records\":",
    b"\"navigation\":{\"nextPage\":{\"uri\":\"u\"}}",
    b"\"paging\":{\"page\":1,\"totalPages\":2}",
    b"\"extensionId\":",
    b"\"extension\":{\"id\":",
    b"\"presenceStatus\":",
    b"\"telephonyStatus\":\"Ringing\"",
    b"\"dndStatus\":\"DoNotAcceptAnyCalls\"",
    b"\"userStatus\":",
    b"\"meetingStatus\":\"Connected\"",
    b"\"activeCalls\":[{",
    b"\"sequence\":",
    b"\"event\":\"/restapi/v1.0/account/~/extension/1/presence?detailedTelephonyState=true\"",
    b"\"body\":",
    b"\"errors\":[{\"errorCode\":",
    b"\"permissionName\":",
    b"[ReadPresence]",
    b"[",
    b"\"expires_in\":",
    b"\"disabledFilters\":[{\"filter\":",
];

fn presence(p: &mapping::Presence) {
    let _ = presence_extension(p);
    let _ = (
        mapping::line_state(p),
        mapping::in_call(p),
        mapping::direct_calls_blocked(p),
        mapping::telephony(p),
        mapping::rich(p),
        mapping::raw(p),
    );
    let mut merged = p.clone();
    mapping::merge(&mut merged, p);
}

fn notification(v: &Value) {
    if let Ok(n) = serde_json::from_value::<Notification>(v.clone())
        && let Some(Value::Object(body)) = &n.body
    {
        presence(body);
    }
}

fn exercise(body: &[u8]) {
    let _ = serde_json::from_slice::<TokenInfo>(body);
    let _ = serde_json::from_slice::<WsToken>(body);
    let _ = serde_json::from_slice::<SubscriptionInfo>(body);
    let _ = extension_page(body);
    if let Some((records, _)) = account_presence_page(body) {
        records.iter().for_each(presence);
    }
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        notification(&v);
        if let Value::Object(p) = &v {
            presence(p);
        }
    }
    let _ = (
        error_text(400, body),
        oauth_error(body),
        missing_permission(body),
    );
    let text = String::from_utf8_lossy(body);
    if let Some(frame) = parse_frame(&text) {
        notification(&frame.body);
        let _ = (frame.kind, frame.message_id, frame.status, frame.wsc);
    }
}

#[test]
fn fuzz_ringcentral_json() {
    let corpus = fuzzkit::load_corpus(env!("CARGO_MANIFEST_DIR"), "ringcentral-json");
    fuzzkit::check(
        "ringcentral-json",
        &corpus,
        DICTIONARY,
        fuzzkit::Budget::from_env(),
        exercise,
    );
}
