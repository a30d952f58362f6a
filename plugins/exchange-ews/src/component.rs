//! The component: how a configuration and the stored lock-out guard become
//! a [`Core`], and what the plugin says about itself. The SDK's
//! [`Plain`] adapter runs the core's hooks and carries out its actions.

use presence_connector_sdk::plain::{Component, Plain};
use presence_connector_sdk::{
    self as sdk, Capabilities, Channels, Config, ConnectorError, Cx, EndpointKind, PluginInfo,
};

use crate::core::{Core, keys};
use crate::settings::Settings;

impl Component for Core {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "Exchange (EWS)".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "On-premises Exchange 2007 SP1 and later through EWS: today's and the next working day's calendar items (GetUserAvailability) and out-of-office replies (GetUserOofSettings); Basic, NTLMv2 or OAuth bearer; lock-out protection".into(),
            config_fields: crate::settings::fields(),
            endpoint_kinds: vec![EndpointKind {
                attribute: "email".into(),
                label: "Mailbox (SMTP address)".into(),
                feeds: Channels::CALENDAR,
            }],
            capabilities: Capabilities {
                batched_events: true,
                ..Capabilities::default()
            },
        }
    }

    fn build(cx: &mut Cx<Plain<Self>>, config: &Config) -> Result<Self, ConnectorError> {
        let settings = Settings::from_config(config)?;
        let guard = cx.kv_get(keys::GUARD).ok().flatten();
        // The core draws on the host's generator for NTLM nonces and jitter.
        Ok(Core::new(
            settings,
            guard,
            Box::new(sdk::instance::random_bytes),
        ))
    }
}

sdk::register_connector!(Plain<Core>);
