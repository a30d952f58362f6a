//! The connector as the hub sees it, under the SDK's test kit: configure,
//! watch, push, reconfigure, with reports and answers checked.

use presence_connector_sdk::testkit::{TestHub, text, webhook};
use presence_connector_sdk::{
    Availability, Channels, Connector, ConnectorError, ConnectorStatus, EndpointState, Presence,
    WebhookRequest, WriteAction, WriteRequest,
};
use serde_json::{Value, json};

use super::HttpPush;
use crate::signature::sign;

const SECRET: &str = "0123456789abcdef";

fn configured() -> TestHub<HttpPush> {
    let mut hub = TestHub::new();
    hub.configure(&[("shared_secret", text(SECRET))]).unwrap();
    hub
}

/// A push signed at the fake hub clock.
fn signed(hub: &mut TestHub<HttpPush>, body: &Value) -> WebhookRequest {
    let timestamp = (hub.now() / 1000).to_string();
    let body = body.to_string().into_bytes();
    let signature = sign(SECRET.as_bytes(), &timestamp, &body);
    let headers = [
        ("X-Hub-Timestamp", timestamp.as_str()),
        ("X-Hub-Signature", signature.as_str()),
    ];
    webhook("POST", "/presence", &headers, &body)
}

/// Sends a signed push; the answer's status and JSON body.
fn push(hub: &mut TestHub<HttpPush>, body: &Value) -> (u16, Value) {
    let request = signed(hub, body);
    let response = hub.webhook(request);
    let answer = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    (response.status, answer)
}

fn away(endpoint: &str) -> Value {
    json!({"updates": [{"endpoint": endpoint, "rich": {"availability": "away"}}]})
}

#[test]
fn describes_two_kinds_and_no_writes() {
    let info = HttpPush::describe();
    let kinds: Vec<_> = info
        .endpoint_kinds
        .iter()
        .map(|kind| (kind.attribute.as_str(), kind.feeds))
        .collect();
    let both = Channels::TELEPHONY | Channels::RICH;
    assert_eq!(kinds, [("extension", both), ("username", both)]);
    let capabilities = info.capabilities;
    assert!(capabilities.webhooks);
    assert!(capabilities.writes.is_empty());
    assert!(!capabilities.restore && !capabilities.expiry);
}

#[test]
fn configuring_reports_up_and_running() {
    let mut hub = configured();
    assert_eq!(hub.status(), Some(ConnectorStatus::UpAndRunning));
}

#[test]
fn a_signed_push_is_accepted_and_reported() {
    let mut hub = configured();
    hub.watch(&["1001"]).unwrap();
    assert_eq!(
        hub.endpoint_states(),
        [(
            "1001".to_string(),
            EndpointState::Requesting,
            Some("waiting for the first push".to_string())
        )]
    );
    let (status, answer) = push(&mut hub, &away("1001"));
    assert_eq!((status, answer), (202, json!({"accepted": 1})));
    assert_eq!(
        hub.endpoint_states().last().map(|(_, state, _)| *state),
        Some(EndpointState::Active)
    );
    assert_eq!(
        hub.presence(),
        [Presence::new("1001").available(Availability::Away).build()]
    );
}

#[test]
fn a_bad_configuration_leaves_it_not_configured() {
    let mut hub = TestHub::<HttpPush>::new();
    let refused = hub.configure(&[("shared_secret", text("short"))]);
    assert!(matches!(refused, Err(ConnectorError::InvalidConfig(_))));
    assert_eq!(push(&mut hub, &away("1001")).0, 503);
    assert_eq!(hub.watch(&["1001"]), Err(ConnectorError::NotConfigured));
    assert!(hub.reports().is_empty());

    // A good configuration after a bad one works.
    hub.configure(&[("shared_secret", text(SECRET))]).unwrap();
    assert_eq!(push(&mut hub, &away("1001")).0, 202);
}

#[test]
fn a_replaced_secret_refuses_pushes_until_reconfigured_well() {
    let mut hub = configured();
    assert!(hub.configure(&[("shared_secret", text("x"))]).is_err());
    assert_eq!(push(&mut hub, &away("1001")).0, 503);
}

#[test]
fn reconfiguring_keeps_the_replay_guard() {
    let mut hub = configured();
    let request = signed(&mut hub, &away("1001"));
    assert_eq!(hub.webhook(request.clone()).status, 202);
    hub.configure(&[
        ("shared_secret", text(SECRET)),
        (
            "max_skew_seconds",
            presence_connector_sdk::ConfigValue::Integer(60),
        ),
    ])
    .unwrap();
    assert_eq!(hub.webhook(request).status, 409);
}

#[test]
fn writes_are_refused_with_no_outcome() {
    let mut hub = configured();
    let refused = hub.write(WriteRequest {
        id: 7,
        endpoint: "1001".into(),
        action: WriteAction::Restore,
    });
    assert!(matches!(refused, Err(ConnectorError::Unsupported(_))));
    assert!(hub.write_outcomes().is_empty());
}
