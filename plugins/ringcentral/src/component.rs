//! The component: how a configuration, the hub's public webhook URL and
//! what the key-value store holds become a [`Core`], and what the plugin
//! says about itself. The SDK's [`Plain`] adapter runs the core's hooks and
//! carries out its actions; a new configuration builds a new core after the
//! old one said goodbye (subscription deleted, socket closed).

use presence_connector_sdk::plain::{Component, Plain};
use presence_connector_sdk::{
    self as sdk, Capabilities, Channels, Config, ConnectorError, Cx, DndScope, EndpointKind,
    PluginInfo,
};

use crate::core::{Core, Stored, keys};
use crate::settings::Settings;

/// What the key-value store holds for this instance.
fn load_stored(cx: &mut Cx<Plain<Core>>) -> Stored {
    let get = |cx: &mut Cx<Plain<Core>>, key: &str| cx.kv_get(key).ok().flatten();
    let exts = cx.kv_under(keys::EXT_PREFIX);
    Stored {
        tokens: get(cx, keys::TOKENS),
        subscription: get(cx, keys::SUBSCRIPTION),
        penalties: get(cx, keys::PENALTIES),
        exts,
    }
}

impl Component for Core {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "RingCentral".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "RingCentral (and Unify Office, Avaya Cloud Office, ...) presence: extension directory, WebSocket or WebHook notifications, DND / user status write-back, reflect-DND and forced queue-call acceptance; OAuth 2.0 JWT or authorization code".into(),
            config_fields: crate::settings::fields(),
            endpoint_kinds: vec![
                EndpointKind {
                    attribute: "ringcentral-extension-id".into(),
                    label: "RingCentral extension id or number".into(),
                    feeds: Channels::RICH | Channels::TELEPHONY,
                },
                EndpointKind {
                    attribute: "extension".into(),
                    label: "Extension number".into(),
                    feeds: Channels::RICH | Channels::TELEPHONY,
                },
            ],
            capabilities: Capabilities {
                writes: Channels::RICH | Channels::TELEPHONY,
                dnd_scopes: vec![DndScope::AllCalls, DndScope::QueueCalls],
                restore: true,
                expiry: true,
                webhooks: true,
                batched_events: true,
            },
        }
    }

    fn build(cx: &mut Cx<Plain<Self>>, config: &Config) -> Result<Self, ConnectorError> {
        let hub = cx.instance_info();
        let settings = Settings::from_config(config, hub.webhook_base_url.as_deref())?;
        let now = cx.now();
        let stored = load_stored(cx);
        // The core draws on the host's generator whenever it needs a nonce.
        let entropy = Box::new(sdk::instance::random_bytes);
        Ok(Core::new(settings, stored, now, entropy))
    }
}

sdk::register_connector!(Plain<Core>);
