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

/// What each kind can feed. The connector sees only endpoint ids, not the
/// attribute they came from, so every endpoint gets the subscriptions the
/// instance's `subscribe` setting names. With the default, `both`, a
/// person's `sip-uri` (the first kind, which the host watches unless told
/// otherwise) gets presence and dialog on the same URI, so one instance
/// feeds both channels of each user. Where a user's line has an address of
/// its own (`extension`, `telephony-sip-uri`), the host can watch it too,
/// for telephony: it gets a presence subscription as well, which the host
/// does not read from a telephony kind, and whose failure does not spoil
/// the line's state (`endpoint_state.rs`). With `presence` only rich
/// presence flows, with `dialog` only telephony.
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
