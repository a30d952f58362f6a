//! Fuzz target `graph-json` (`tools/fuzzkit`): every Graph and identity
//! platform answer and every notification body the connector reads, from
//! the seeds in `fuzz/corpus/graph-json/`, mutated; no panic allowed.
//! `FUZZ_SECONDS=<n> cargo test -p teams-graph fuzz` runs longer. The same
//! seeds also go to the whole engine as notifications
//! (`core::tests::fuzz`, target `graph-notifications`).

use presence_connector_sdk::{graph, oauth, retry, urlcode};

use crate::mapping;
use crate::time;
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
    b"\"\\ud800\"",
    b"\"\\u0000\"",
    b"\\",
    b"\"value\":",
    b"\"id\":",
    b"\"availability\":",
    b"\"activity\":",
    b"\"statusMessage\":{\"message\":{\"content\":",
    b"\"outOfOfficeSettings\":{\"isOutOfOffice\":true}",
    b"\"resourceData\":{\"id\":",
    b"\"resource\":\"communications/presences/",
    b"\"lifecycleEvent\":",
    b"\"responses\":",
    b"\"status\":",
    b"\"headers\":{\"Retry-After\":",
    b"\"body\":",
    b"\"expires_in\":",
    b"\"error\":{\"code\":",
    b"\"error_description\":",
    b"fa8bf3dc-eca7-46b7-bad1-db199b62afc3",
    b"Sun, 01 Mar 2026 12:00:05 GMT",
    b"2026-03-01T11:00:00.000Z",
    b"<b>",
    b"%",
    b"%e9",
    b"+",
    b"&",
    b"=",
];

const NOW_MS: u64 = 1_772_360_000_000;

fn exercise(body: &[u8]) {
    if let Ok(list) = serde_json::from_slice::<Collection<Presence>>(body) {
        for p in list.value {
            let rich = mapping::to_rich(
                p.availability.as_deref().unwrap_or(""),
                p.activity.as_deref().unwrap_or(""),
                p.out_of_office(),
                p.note(),
            );
            let _ = (rich, p.sequence_number.as_deref().map(str::parse::<u64>));
        }
    }
    if let Ok(list) = serde_json::from_slice::<Collection<Notification>>(body) {
        for n in list.value {
            let _ = n.user_id();
            let _ = n.lifecycle_event.as_deref().map(Lifecycle::parse);
        }
    }
    if let Ok(answer) = serde_json::from_slice::<BatchAnswer>(body) {
        for r in answer.responses {
            let headers = r.header_list();
            let _ = graph::retry_after_ms(&headers, NOW_MS);
            let inner = r.body_bytes();
            let _ = serde_json::from_slice::<Collection<Presence>>(&inner);
            let _ = graph::graph_error_text(r.status, &inner);
        }
    }
    if let Ok(sub) = serde_json::from_slice::<Subscription>(body) {
        let _ = time::parse_rfc3339(&sub.expiration_date_time);
    }
    let _ = serde_json::from_slice::<User>(body);
    // The identity platform's answers, as the sign-in reads them.
    for kind in [oauth::CallKind::DeviceAuthorization, oauth::CallKind::Token] {
        let flow = oauth::Flow::DeviceCode {
            device_authorization_url: "https://login.example/t/oauth2/v2.0/devicecode".into(),
        };
        let cfg = oauth::OAuthConfig::new(
            "fuzz",
            "https://login.example/t/oauth2/v2.0/token",
            "c",
            flow,
        );
        let mut client = oauth::TokenClient::new(cfg);
        client.ensure(NOW_MS, &mut |n| vec![7; n as usize]);
        for status in [200, 400, 429] {
            let _ = client.on_response(kind, Ok((status, &[], body)), NOW_MS, &mut |n| {
                vec![7; n as usize]
            });
        }
    }
    let _ = oauth::ErrorAnswer::parse(body).text(400);
    let _ = graph::graph_error_text(403, body);
    // Headers and query strings arrive as text.
    let text = String::from_utf8_lossy(body);
    let _ = graph::retry_after_ms(&[("Retry-After".into(), text.to_string())], NOW_MS);
    let _ = retry::parse_http_date(&text);
    let _ = time::parse_rfc3339(&text);
    let _ = urlcode::query_value(&text, "validationToken");
    let _ = (
        urlcode::decode_component(&text),
        is_guid(&text),
        Lifecycle::parse(&text),
    );
}

#[test]
fn fuzz_graph_json() {
    let corpus = fuzzkit::load_corpus(env!("CARGO_MANIFEST_DIR"), "graph-json");
    fuzzkit::check(
        "graph-json",
        &corpus,
        DICTIONARY,
        fuzzkit::Budget::from_env(),
        exercise,
    );
}
