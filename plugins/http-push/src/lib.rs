//! `http-push`: a presence connector for systems without a plugin of their own
//! (a CTI/TAPI bridge, a script, a monitoring tool). They push presence to the
//! hub as JSON on an HMAC-signed webhook, `POST /hooks/{instance}/presence`.
//!
//! The modules below hold the logic and never call the host; this file hands
//! the SDK's calls to [`Receiver`] and its reports back to the SDK.

mod payload;
mod receiver;
mod replay;
mod response;
mod settings;
mod signature;

use presence_connector_sdk::{
    self as sdk, Capabilities, Channels, Config, Connector, ConnectorError, ConnectorStatus, Cx,
    EndpointId, EndpointKind, PluginInfo, WebhookRequest, WebhookResponse, WriteRequest,
};

use receiver::Receiver;
use settings::Settings;

/// The exported connector.
struct HttpPush {
    receiver: Receiver,
}

impl HttpPush {
    fn apply(&mut self, cx: &mut Cx<Self>, settings: Settings) {
        let skew = settings.max_skew_secs;
        self.receiver.configure(settings);
        cx.info(format!(
            "configured; accepting pushes with up to {skew} s clock skew"
        ));
        cx.status(
            ConnectorStatus::UpAndRunning,
            Some("accepting pushes on POST /presence"),
        );
    }
}

impl Connector for HttpPush {
    // Nothing is ever opened: no timers, requests or sockets.
    type TimerKey = ();
    type RequestKey = ();
    type SocketKey = ();

    fn describe() -> PluginInfo {
        PluginInfo {
            name: "http-push".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Presence pushed by any system over an HMAC-signed webhook".into(),
            config_fields: settings::config_fields(),
            endpoint_kinds: endpoint_kinds(),
            // Reads only, from its webhook.
            capabilities: Capabilities {
                webhooks: true,
                ..Capabilities::default()
            },
        }
    }

    fn new(cx: &mut Cx<Self>, config: &Config) -> Result<Self, ConnectorError> {
        let mut connector = Self {
            receiver: Receiver::default(),
        };
        connector.apply(cx, Settings::from_config(config)?);
        Ok(connector)
    }

    /// Keeps the replay guard and what was seen and watched. A bad
    /// configuration leaves the connector not configured, so pushes are
    /// refused rather than checked with settings the operator replaced.
    fn reconfigure(&mut self, cx: &mut Cx<Self>, config: &Config) -> Result<(), ConnectorError> {
        self.apply(cx, Settings::from_config(config)?);
        Ok(())
    }

    fn webhook(&mut self, cx: &mut Cx<Self>, request: WebhookRequest) -> WebhookResponse {
        let outcome = self.receiver.handle_webhook(&request, cx.now());
        if let Some((level, message)) = outcome.log {
            cx.log(level, message);
        }
        outcome.reports.into_iter().for_each(|r| cx.report(r));
        outcome.response
    }

    fn watch(
        &mut self,
        cx: &mut Cx<Self>,
        endpoints: Vec<EndpointId>,
    ) -> Result<(), ConnectorError> {
        self.receiver
            .watch(endpoints)
            .into_iter()
            .for_each(|r| cx.report(r));
        Ok(())
    }

    fn unwatch(
        &mut self,
        _: &mut Cx<Self>,
        endpoints: Vec<EndpointId>,
    ) -> Result<(), ConnectorError> {
        self.receiver.unwatch(&endpoints);
        Ok(())
    }

    fn write(&mut self, _: &mut Cx<Self>, _: WriteRequest) -> Result<(), ConnectorError> {
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

sdk::register_connector!(HttpPush);

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
