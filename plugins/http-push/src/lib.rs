//! `http-push`: a presence connector for systems without a plugin of their own
//! (a CTI/TAPI bridge, a script, a monitoring tool). They push presence to the
//! hub as JSON on an HMAC-signed webhook, `POST /hooks/{instance}/presence`.
//!
//! The modules below hold the logic and never call the host; this file is the
//! thin layer that reads the clock, keeps the state and sends the reports.

mod payload;
mod receiver;
mod replay;
mod response;
mod settings;
mod signature;

use std::cell::RefCell;

use presence_connector_sdk::{
    self as sdk, Capabilities, Channels, Config, ConfigEntry, ConnectorError, ConnectorStatus,
    EndpointId, EndpointKind, Event, Guest, PluginInfo, WebhookRequest, WebhookResponse,
    WriteRequest, report, timers,
};

use receiver::{Receiver, Report};
use settings::Settings;

thread_local! {
    // A component instance is single-threaded; the host serialises calls.
    static RECEIVER: RefCell<Receiver> = RefCell::new(Receiver::default());
}

/// The exported connector.
struct HttpPush;

impl Guest for HttpPush {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "http-push".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Presence pushed by any system over an HMAC-signed webhook".into(),
            config_fields: settings::config_fields(),
            endpoint_kinds: endpoint_kinds(),
            capabilities: Capabilities {
                writes: Channels::empty(),
                dnd_scopes: Vec::new(),
                restore: false,
                expiry: false,
                webhooks: true,
                batched_events: false,
            },
        }
    }

    fn configure(entries: Vec<ConfigEntry>) -> Result<(), ConnectorError> {
        match Settings::from_config(&Config::new(entries)) {
            Ok(settings) => {
                let skew = settings.max_skew_secs;
                RECEIVER.with_borrow_mut(|receiver| receiver.configure(settings));
                sdk::info!("configured; accepting pushes with up to {skew} s clock skew");
                report::status(
                    ConnectorStatus::UpAndRunning,
                    Some("accepting pushes on POST /presence"),
                );
                Ok(())
            }
            Err(error) => {
                // Refuse pushes rather than keep checking them with a
                // configuration the operator has replaced.
                RECEIVER.with_borrow_mut(Receiver::unconfigure);
                Err(error)
            }
        }
    }

    fn handle_events(_events: Vec<Event>) -> Result<(), ConnectorError> {
        // Nothing is ever opened, so no event concerns this connector.
        Ok(())
    }

    fn handle_webhook(request: WebhookRequest) -> WebhookResponse {
        let now_ms = timers::now();
        let outcome =
            RECEIVER.with_borrow_mut(|receiver| receiver.handle_webhook(&request, now_ms));
        if let Some((level, message)) = &outcome.log {
            sdk::log::log(*level, message);
        }
        send(outcome.reports);
        outcome.response
    }

    fn watch(endpoints: Vec<EndpointId>) -> Result<(), ConnectorError> {
        send(RECEIVER.with_borrow_mut(|receiver| receiver.watch(endpoints)));
        Ok(())
    }

    fn unwatch(endpoints: Vec<EndpointId>) -> Result<(), ConnectorError> {
        RECEIVER.with_borrow_mut(|receiver| receiver.unwatch(&endpoints));
        Ok(())
    }

    fn write_presence(_request: WriteRequest) -> Result<(), ConnectorError> {
        // Refusing the call means no write outcome follows, as the contract
        // asks of a refused write.
        Err(ConnectorError::Unsupported(
            "http-push receives presence only; it cannot write back".into(),
        ))
    }
}

/// The user attributes a sender may key its pushes by. The sender picks the
/// endpoint id, so the connector cannot tell one kind from another: both
/// kinds feed whatever channel a push carries. Extension comes first (the
/// default) because the typical sender is a CTI/TAPI bridge or PBX script
/// that knows lines by extension number.
fn endpoint_kinds() -> Vec<EndpointKind> {
    let pushed = Channels::TELEPHONY | Channels::RICH;
    vec![
        EndpointKind {
            attribute: "extension".into(),
            label: "Extension number".into(),
            feeds: pushed,
        },
        EndpointKind {
            attribute: "username".into(),
            label: "Username".into(),
            feeds: pushed,
        },
    ]
}

/// Carries out the receiver's reports through the `report` import.
fn send(reports: Vec<Report>) {
    for item in reports {
        match item {
            Report::Presence(update) => report::presence(&update),
            Report::EndpointState {
                endpoint,
                state,
                detail,
            } => report::endpoint_state(&endpoint, state, detail.as_deref()),
        }
    }
}

sdk::export!(HttpPush);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_two_kinds_and_no_writes() {
        let info = HttpPush::describe();
        let kinds: Vec<_> = info
            .endpoint_kinds
            .iter()
            .map(|kind| (kind.attribute.as_str(), kind.feeds))
            .collect();
        let both = Channels::TELEPHONY | Channels::RICH;
        assert_eq!(kinds, [("extension", both), ("username", both)]);
        let capabilities = info.capabilities;
        assert!(capabilities.webhooks);
        assert!(capabilities.writes.is_empty());
        assert!(!capabilities.restore && !capabilities.expiry);
    }
}
