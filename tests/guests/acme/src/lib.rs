//! `acme-presence`: a made-up third-party connector on contract 0.2.0, for
//! the host's tests of plugin-defined endpoint kinds. Its users are known by
//! an attribute of its own, `acme-badge` (the badge number).
//!
//! - `watch`: for each badge, presence `available` with note
//!   `badge <endpoint>`, then endpoint state `active`;
//! - `POST /hooks/{instance}/presence` with
//!   `{"endpoint": "<badge>", "availability": "busy"}` (any contract
//!   availability in kebab-case) reports that availability for the badge,
//!   watched or not, and answers `200 {"ok":true}`. There is no
//!   authentication: it is a test guest. Errors answer `{"error": "..."}`:
//!   400 for a bad body, 404 for another path, 405 for another method;
//! - writes are refused as unsupported; events are ignored (it opens
//!   nothing).

use presence_connector_sdk::{
    self as sdk, Availability, Capabilities, Channels, ConfigEntry, ConnectorError,
    ConnectorStatus, EndpointId, EndpointKind, EndpointState, Event, Guest, Header, PluginInfo,
    PresenceUpdate, RichPresence, UpdateOrigin, WebhookRequest, WebhookResponse, WriteRequest,
    report,
};
use serde::Deserialize;
use serde_json::json;

/// The one webhook route, below `/hooks/{instance}`.
const PUSH_PATH: &str = "/presence";

/// The exported connector.
struct Acme;

impl Guest for Acme {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "acme-presence".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "ACME badge presence (a made-up third-party connector for tests)".into(),
            config_fields: Vec::new(),
            endpoint_kinds: vec![EndpointKind {
                attribute: "acme-badge".into(),
                label: "ACME badge number".into(),
                feeds: Channels::RICH,
            }],
            capabilities: Capabilities {
                writes: Channels::empty(),
                dnd_scopes: Vec::new(),
                restore: false,
                expiry: false,
                webhooks: true,
                batched_events: false,
            },
        }
    }

    fn configure(_config: Vec<ConfigEntry>) -> Result<(), ConnectorError> {
        report::status(ConnectorStatus::UpAndRunning, None);
        Ok(())
    }

    fn handle_events(_events: Vec<Event>) -> Result<(), ConnectorError> {
        Ok(())
    }

    fn handle_webhook(request: WebhookRequest) -> WebhookResponse {
        match parse_push(&request) {
            Ok(push) => {
                report_badge(&push.endpoint, push.availability.into());
                report::endpoint_state(&push.endpoint, EndpointState::Active, None);
                json_response(200, &json!({"ok": true}))
            }
            Err(refusal) => refusal,
        }
    }

    fn watch(endpoints: Vec<EndpointId>) -> Result<(), ConnectorError> {
        for endpoint in endpoints {
            report_badge(&endpoint, Availability::Available);
            report::endpoint_state(&endpoint, EndpointState::Active, None);
        }
        Ok(())
    }

    fn unwatch(_endpoints: Vec<EndpointId>) -> Result<(), ConnectorError> {
        Ok(())
    }

    fn write_presence(_request: WriteRequest) -> Result<(), ConnectorError> {
        Err(ConnectorError::Unsupported(
            "acme-presence cannot write presence".into(),
        ))
    }
}

/// A presence change pushed to the webhook.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Push {
    endpoint: EndpointId,
    availability: AvailabilityIn,
}

/// The contract's availabilities by their WIT names.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
enum AvailabilityIn {
    Available,
    Away,
    Busy,
    DoNotDisturb,
    Offline,
    Unknown,
}

impl From<AvailabilityIn> for Availability {
    fn from(value: AvailabilityIn) -> Self {
        match value {
            AvailabilityIn::Available => Availability::Available,
            AvailabilityIn::Away => Availability::Away,
            AvailabilityIn::Busy => Availability::Busy,
            AvailabilityIn::DoNotDisturb => Availability::DoNotDisturb,
            AvailabilityIn::Offline => Availability::Offline,
            AvailabilityIn::Unknown => Availability::Unknown,
        }
    }
}

/// Routes and parses a webhook request; a refused request comes back as the
/// answer to send (404, 405 or 400, each `{"error": "..."}`).
fn parse_push(request: &WebhookRequest) -> Result<Push, WebhookResponse> {
    if request.path != PUSH_PATH {
        return Err(error_response(404, "no such route; push to POST /presence"));
    }
    if request.method != "POST" {
        let mut response = error_response(405, "only POST is allowed on /presence");
        response.headers.push(header("allow", "POST"));
        return Err(response);
    }
    let push: Push = serde_json::from_slice(&request.body)
        .map_err(|error| error_response(400, &format!("bad body: {error}")))?;
    if push.endpoint.trim().is_empty() {
        return Err(error_response(400, "endpoint must not be empty"));
    }
    Ok(push)
}

/// Reports a badge's presence, noted `badge <endpoint>`.
fn report_badge(endpoint: &str, availability: Availability) {
    report::presence(&PresenceUpdate {
        endpoint: endpoint.into(),
        observed_at: None,
        ordering: None,
        origin: UpdateOrigin::Platform,
        telephony: None,
        rich: Some(RichPresence {
            availability,
            activity: None,
            note: Some(format!("badge {endpoint}")),
        }),
        calendar: None,
        valid_for_ms: None,
        raw: Vec::new(),
    });
}

fn json_response(status: u16, body: &serde_json::Value) -> WebhookResponse {
    WebhookResponse {
        status,
        headers: vec![header("content-type", "application/json")],
        body: body.to_string().into_bytes(),
    }
}

fn error_response(status: u16, message: &str) -> WebhookResponse {
    json_response(status, &json!({ "error": message }))
}

fn header(name: &str, value: &str) -> Header {
    Header {
        name: name.into(),
        value: value.into(),
    }
}

sdk::export!(Acme);

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, path: &str, body: &str) -> WebhookRequest {
        WebhookRequest {
            method: method.into(),
            path: path.into(),
            query: String::new(),
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn status(result: Result<Push, WebhookResponse>) -> u16 {
        result.expect_err("should be refused").status
    }

    #[test]
    fn parses_a_push() {
        let push = parse_push(&request(
            "POST",
            "/presence",
            r#"{"endpoint": "4711", "availability": "do-not-disturb"}"#,
        ))
        .unwrap();
        assert_eq!(push.endpoint, "4711");
        assert_eq!(
            Availability::from(push.availability),
            Availability::DoNotDisturb
        );
    }

    #[test]
    fn refuses_other_routes_methods_and_bad_bodies() {
        let good = r#"{"endpoint": "1", "availability": "busy"}"#;
        assert_eq!(status(parse_push(&request("POST", "/other", good))), 404);
        let refused = parse_push(&request("GET", "/presence", good)).unwrap_err();
        assert_eq!(refused.status, 405);
        assert!(refused.headers.contains(&header("allow", "POST")));
        for body in [
            "not json",
            r#"{"endpoint": "1", "availability": "sleeping"}"#,
            r#"{"endpoint": "1"}"#,
            r#"{"endpoint": " ", "availability": "busy"}"#,
            r#"{"endpoint": "1", "availability": "busy", "extra": 1}"#,
        ] {
            assert_eq!(status(parse_push(&request("POST", "/presence", body))), 400);
        }
    }

    #[test]
    fn declares_one_endpoint_kind_of_its_own() {
        let info = Acme::describe();
        assert_eq!(info.endpoint_kinds.len(), 1);
        assert_eq!(info.endpoint_kinds[0].attribute, "acme-badge");
        assert_eq!(info.endpoint_kinds[0].feeds, Channels::RICH);
        assert!(info.capabilities.webhooks && info.capabilities.writes.is_empty());
    }
}
