//! JSON answers to webhook requests.

use presence_connector_sdk::{Header, WebhookResponse};
use serde_json::{Value, json};

/// A response with a JSON body.
pub fn json(status: u16, body: &Value) -> WebhookResponse {
    WebhookResponse {
        status,
        headers: vec![header("content-type", "application/json")],
        body: body.to_string().into_bytes(),
    }
}

/// An error response: `{"error": message}`.
pub fn error(status: u16, message: &str) -> WebhookResponse {
    json(status, &json!({ "error": message }))
}

/// Adds a header to a response.
pub fn with_header(mut response: WebhookResponse, name: &str, value: &str) -> WebhookResponse {
    response.headers.push(header(name, value));
    response
}

fn header(name: &str, value: &str) -> Header {
    Header {
        name: name.into(),
        value: value.into(),
    }
}
