//! The component: how a configuration and the writes in force the store
//! holds become a [`Core`], and what the plugin says about itself. The
//! SDK's [`Plain`] adapter runs the core's hooks and carries out its
//! actions (the wake-up timer, the WebSocket handles, refused connects,
//! which come back as closes).

use presence_connector_sdk::plain::{Component, Plain};
use presence_connector_sdk::{
    self as sdk, Capabilities, Channels, Config, ConnectorError, Cx, EndpointKind, PluginInfo,
};

use crate::core::{Core, keys};
use crate::settings::Settings;

impl Component for Core {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "Skype for Business / Lync (UCMA bridge)".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Skype for Business Server / Lync Server presence through a UCMA bridge on the Front End's Windows side (WebSocket+TLS, docs/ucma-bridge/PROTOCOL.md): user endpoint with or without TLS, or trusted application endpoint; availability ranges, activity tokens, notes and phone state; presence write-back and restore".into(),
            config_fields: crate::settings::fields(),
            endpoint_kinds: vec![EndpointKind {
                attribute: "lync-uri".into(),
                label: "Lync / SfB SIP URI".into(),
                feeds: Channels::RICH | Channels::TELEPHONY,
            }],
            capabilities: Capabilities {
                writes: Channels::RICH,
                restore: true,
                expiry: true,
                batched_events: true,
                ..Capabilities::default()
            },
        }
    }

    fn build(cx: &mut Cx<Plain<Self>>, config: &Config) -> Result<Self, ConnectorError> {
        let settings = Settings::from_config(config)?;
        let held = cx.kv_under(keys::HELD_PREFIX);
        // The core draws on the host's generator for nonces and jitter.
        Ok(Core::new(
            settings,
            held,
            Box::new(sdk::instance::random_bytes),
        ))
    }
}

sdk::register_connector!(Plain<Core>);
