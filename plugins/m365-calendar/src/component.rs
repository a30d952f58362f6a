//! The component: how a configuration (with the hub's public webhook URL)
//! becomes a [`Core`], and what the plugin says about itself. The SDK's
//! [`Plain`] adapter runs the core's hooks and carries out its actions; a
//! new configuration builds a new core after the old one deleted its
//! subscriptions (those requests run on; their answers find nobody).
//! Watches survive: the host replays them.

use presence_connector_sdk::plain::{Component, Plain};
use presence_connector_sdk::{
    self as sdk, Capabilities, Channels, Config, ConnectorError, Cx, EndpointKind, PluginInfo,
};

use crate::core::Core;
use crate::settings::Settings;

impl Component for Core {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "Microsoft 365 calendar (Graph)".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Each colleague's day from Microsoft 365: getSchedule in batches of 20, calendarView where subjects are wanted, automatic replies; client credentials".into(),
            config_fields: crate::settings::fields(),
            endpoint_kinds: vec![
                EndpointKind {
                    attribute: "email".into(),
                    label: "Mailbox (SMTP address)".into(),
                    feeds: Channels::CALENDAR,
                },
                EndpointKind {
                    attribute: "teams-upn".into(),
                    label: "Teams UPN (the mailbox's user principal name)".into(),
                    feeds: Channels::CALENDAR,
                },
            ],
            capabilities: Capabilities {
                webhooks: true,
                batched_events: true,
                ..Capabilities::default()
            },
        }
    }

    fn build(cx: &mut Cx<Plain<Self>>, config: &Config) -> Result<Self, ConnectorError> {
        let hub = cx.instance_info();
        let settings = Settings::from_config(config, hub.webhook_base_url.as_deref())?;
        // The core draws on the host's generator for subscription secrets.
        Ok(Core::new(settings, Box::new(sdk::instance::random_bytes)))
    }
}

sdk::register_connector!(Plain<Core>);
