//! A connector built against `presence:connector@0.9.0`, a contract version
//! no hub knows (`wit/connector.wit` is a copy of 0.2.0 under that version).
//! The host reads the version from the component's export name and must
//! refuse the plugin before it instantiates anything, so none of the code
//! below is meant to run; it only has to make a valid component. xtask
//! packages it as `test-plugins/chaos-wrong-api`.

wit_bindgen::generate!({
    path: "wit",
    world: "connector-plugin",
});

use exports::presence::connector::connector::{Event, Guest, WebhookRequest, WebhookResponse};
use presence::connector::types::{
    Capabilities, Channels, ConfigEntry, ConnectorError, EndpointId, PluginInfo, WriteRequest,
};

/// The exported connector: describes itself, accepts any configuration and
/// supports nothing else.
struct UnknownVersion;

impl Guest for UnknownVersion {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "chaos-wrong-api".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Built against a contract version no hub knows".into(),
            config_fields: Vec::new(),
            endpoint_kinds: Vec::new(),
            capabilities: Capabilities {
                writes: Channels::empty(),
                dnd_scopes: Vec::new(),
                restore: false,
                expiry: false,
                webhooks: false,
                batched_events: false,
            },
        }
    }

    fn configure(_config: Vec<ConfigEntry>) -> Result<(), ConnectorError> {
        Ok(())
    }

    fn handle_events(_events: Vec<Event>) -> Result<(), ConnectorError> {
        Ok(())
    }

    fn handle_webhook(_request: WebhookRequest) -> WebhookResponse {
        WebhookResponse {
            status: 404,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn watch(_endpoints: Vec<EndpointId>) -> Result<(), ConnectorError> {
        Err(unsupported())
    }

    fn unwatch(_endpoints: Vec<EndpointId>) -> Result<(), ConnectorError> {
        Ok(())
    }

    fn write_presence(_request: WriteRequest) -> Result<(), ConnectorError> {
        Err(unsupported())
    }
}

fn unsupported() -> ConnectorError {
    ConnectorError::Unsupported("this test guest only exists to be refused".into())
}

export!(UnknownVersion);
