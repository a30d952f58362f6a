//! `legacy`: a connector built against the frozen contract 0.1.0
//! (`wit/since_v0.1.0`), as a plugin compiled before 0.2.0 would be. The
//! host's compatibility tests load it to check that 0.1.0 plugins keep
//! working through the conversions at the boundary.
//!
//! - `watch`: for each endpoint, presence `available` with note
//!   `legacy:<endpoint>`, then endpoint state `active`;
//! - `set-presence`: `set` reports the written availability, activity and
//!   note; `clear` reports the endpoint's own state again (as `watch` did);
//! - `handle-webhook`: any request is answered `200 {"ok":true}`;
//! - `configure` accepts anything and reports `up-and-running`; events are
//!   ignored (it opens nothing).
//!
//! It uses wit-bindgen directly, not the SDK, which binds the newest
//! contract.

wit_bindgen::generate!({
    path: "../../../wit/since_v0.1.0",
    world: "connector-plugin",
});

use exports::presence::connector::connector::{Event, Guest, WebhookRequest, WebhookResponse};
use presence::connector::report;
use presence::connector::types::{
    Availability, ConfigEntry, ConnectorError, ConnectorStatus, EndpointId, EndpointState, Header,
    PluginInfo, PresenceUpdate, PresenceWrite, RichPresence,
};

/// The contract this guest is built against; 0.1.0 plugins state it in
/// `describe` as well as in the manifest.
const API_VERSION: &str = "0.1.0";

/// The exported connector.
struct Legacy;

impl Guest for Legacy {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "legacy".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            api_version: API_VERSION.into(),
            description: "A connector built against contract 0.1.0".into(),
            config_fields: Vec::new(),
        }
    }

    fn configure(_config: Vec<ConfigEntry>) -> Result<(), ConnectorError> {
        report::status(ConnectorStatus::UpAndRunning, None);
        Ok(())
    }

    fn handle_event(_event: Event) -> Result<(), ConnectorError> {
        Ok(())
    }

    fn handle_webhook(_request: WebhookRequest) -> WebhookResponse {
        WebhookResponse {
            status: 200,
            headers: vec![Header {
                name: "content-type".into(),
                value: "application/json".into(),
            }],
            body: br#"{"ok":true}"#.to_vec(),
        }
    }

    fn watch(endpoints: Vec<EndpointId>) -> Result<(), ConnectorError> {
        for endpoint in endpoints {
            report_rich(&endpoint, own_state(&endpoint));
            report::endpoint_state(&endpoint, EndpointState::Active, None);
        }
        Ok(())
    }

    fn unwatch(_endpoints: Vec<EndpointId>) -> Result<(), ConnectorError> {
        Ok(())
    }

    fn set_presence(endpoint: EndpointId, write: PresenceWrite) -> Result<(), ConnectorError> {
        let rich = match write {
            PresenceWrite::Set(intent) => RichPresence {
                availability: intent.availability,
                activity: intent.activity,
                note: intent.note,
            },
            // 0.1.0's `clear` removes what the hub set: the endpoint shows
            // its own state again.
            PresenceWrite::Clear => own_state(&endpoint),
        };
        report_rich(&endpoint, rich);
        Ok(())
    }
}

/// What an endpoint shows on its own: available, noted `legacy:<endpoint>`.
fn own_state(endpoint: &str) -> RichPresence {
    RichPresence {
        availability: Availability::Available,
        activity: None,
        note: Some(format!("legacy:{endpoint}")),
    }
}

fn report_rich(endpoint: &str, rich: RichPresence) {
    report::presence(&PresenceUpdate {
        endpoint: endpoint.into(),
        observed_at: None,
        sequence: None,
        telephony: None,
        rich: Some(rich),
        raw: Vec::new(),
    });
}

export!(Legacy);
