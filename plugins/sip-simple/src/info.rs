//! What the connector says about itself (`describe`).

use presence_connector_sdk::{Capabilities, Channels, EndpointKind, PluginInfo};

pub fn plugin_info() -> PluginInfo {
    PluginInfo {
        name: "SIP/SIMPLE".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description: "Presence and busy lamp field from SIP/SIMPLE presence servers and IP-PBXs (SUBSCRIBE/NOTIFY, PIDF/RPID, dialog-info, RLS), write-back by PUBLISH".into(),
        config_fields: crate::settings::fields(),
        endpoint_kinds: endpoint_kinds(),
        capabilities: Capabilities {
            // PIDF availability, activity and note by PUBLISH.
            writes: Channels::RICH,
            // RPID knows one do-not-disturb, for every call.
            dnd_scopes: vec![],
            // Removing our publication shows the person's own again.
            restore: true,
            // PUBLISH Expires.
            expiry: true,
            webhooks: false,
            batched_events: true,
        },
    }
}

/// Every endpoint gets the subscriptions the instance's `subscribe`
/// setting names, whatever attribute it came from (the connector sees
/// only the id): these are the most each kind can feed. With `presence`
/// only rich presence flows, with `dialog` only telephony.
fn endpoint_kinds() -> Vec<EndpointKind> {
    let kind = |attribute: &str, label: &str, feeds| EndpointKind {
        attribute: attribute.into(),
        label: label.into(),
        feeds,
    };
    vec![
        // A person's address: PIDF, and their line's dialog state.
        kind(
            "sip-uri",
            "SIP URI (presence)",
            Channels::RICH | Channels::TELEPHONY,
        ),
        // A phone's or line's address, for busy lamp field.
        kind(
            "telephony-sip-uri",
            "SIP URI (telephony)",
            Channels::TELEPHONY,
        ),
        // Becomes sip:<extension>@<domain>.
        kind("extension", "Extension", Channels::TELEPHONY),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri_is_the_default_kind_and_writes_are_rich() {
        let info = plugin_info();
        let attributes: Vec<&str> = info
            .endpoint_kinds
            .iter()
            .map(|k| k.attribute.as_str())
            .collect();
        assert_eq!(attributes, ["sip-uri", "telephony-sip-uri", "extension"]);
        assert_eq!(
            info.endpoint_kinds[0].feeds,
            Channels::RICH | Channels::TELEPHONY
        );
        assert_eq!(info.capabilities.writes, Channels::RICH);
        assert!(info.capabilities.restore && info.capabilities.expiry);
        assert!(info.capabilities.batched_events && !info.capabilities.webhooks);
    }
}
