//! The component: how a configuration, the hub's public webhook URL and
//! what the key-value store holds become a [`Core`], and what the plugin
//! says about itself. The SDK's [`Plain`] adapter runs the core's hooks and
//! carries out its actions. A new configuration replaces the core within
//! the instance: the old one makes way (it settles what it owes the hub and
//! leaves its subscriptions to the new one), then its timers and requests
//! are dropped. On shutdown the core stays: the host keeps delivering
//! answers for a grace period, in which its subscription deletes go out.

use presence_connector_sdk::plain::{Component, Plain};
use presence_connector_sdk::{
    self as sdk, Capabilities, Channels, Config, ConnectorError, Cx, EndpointKind, PluginInfo,
};

use crate::core::{Core, Stored, keys};
use crate::settings::Settings;

impl Component for Core {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "Microsoft Teams (Graph)".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Teams presence through Microsoft Graph: getPresencesByUserId batches, change notifications or polling, setPresence / setUserPreferredPresence write-back, OAuth 2.0 with refresh tokens".into(),
            config_fields: crate::settings::fields(),
            endpoint_kinds: vec![
                EndpointKind {
                    attribute: "teams-upn".into(),
                    label: "Teams UPN or object id".into(),
                    feeds: Channels::RICH,
                },
                EndpointKind {
                    attribute: "email".into(),
                    label: "Email (looked up as a UPN)".into(),
                    feeds: Channels::RICH,
                },
            ],
            capabilities: Capabilities {
                writes: Channels::RICH,
                dnd_scopes: vec![],
                restore: true,
                expiry: true,
                webhooks: true,
                // Each event is handled on its own, in order.
                batched_events: true,
            },
        }
    }

    fn build(cx: &mut Cx<Plain<Self>>, config: &Config) -> Result<Self, ConnectorError> {
        let hub = cx.instance_info();
        let settings = Settings::from_config(config, hub.webhook_base_url.as_deref())?;
        let get = |cx: &mut Cx<Plain<Self>>, key: &str| cx.kv_get(key).ok().flatten();
        let stored = Stored {
            primary: get(cx, keys::TOKEN_PRIMARY),
            app: get(cx, keys::TOKEN_APP),
            subs: get(cx, keys::SUBS),
            users: get(cx, keys::USERS),
            writes: get(cx, keys::WRITES),
        };
        // The core draws on the host's generator for clientState and OAuth state.
        let entropy = Box::new(sdk::instance::random_bytes);
        Ok(Core::new(settings, stored, cx.now(), entropy))
    }
}

sdk::register_connector!(Plain<Core>);
