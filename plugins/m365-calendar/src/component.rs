//! The component glue: [`Core`] as an SDK [`Connector`]. The SDK owns the
//! instance, the not-configured checks, the timer and request handles and
//! the refusals; this file hands the core's actions to the SDK.

use presence_connector_sdk::{
    self as sdk, Capabilities, Channels, Config, Connector, ConnectorError, Cx, EndpointId,
    EndpointKind, Header, HttpError, PluginInfo, WebhookRequest, WebhookResponse, WriteRequest,
    http, plain,
};

use crate::core::{Core, ReqId, TimerKey};
use crate::settings::Settings;

struct M365Calendar {
    core: Core,
}

impl M365Calendar {
    /// Hands what the core asked for to the SDK.
    fn flush(&mut self, cx: &mut Cx<Self>) {
        for action in self.core.take_actions() {
            cx.apply(action);
        }
    }
}

impl Connector for M365Calendar {
    type TimerKey = TimerKey;
    type RequestKey = ReqId;
    type SocketKey = ();

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

    /// A new configuration builds a new core; the SDK's default
    /// `reconfigure` lets the old one delete its subscriptions first (those
    /// requests run on; their answers find nobody). Watches survive: the
    /// host replays them.
    fn new(cx: &mut Cx<Self>, config: &Config) -> Result<Self, ConnectorError> {
        let hub = cx.instance_info();
        let settings = Settings::from_config(config, hub.webhook_base_url.as_deref())?;
        // The core draws on the host's generator for subscription secrets.
        let entropy = Box::new(sdk::instance::random_bytes);
        let mut core = Core::new(settings, entropy);
        core.start(cx.now());
        let mut connector = Self { core };
        connector.flush(cx);
        Ok(connector)
    }

    fn on_timer(&mut self, cx: &mut Cx<Self>, key: TimerKey) {
        self.core.on_timer(key, cx.now());
        self.flush(cx);
    }

    fn on_http(
        &mut self,
        cx: &mut Cx<Self>,
        id: ReqId,
        outcome: Result<http::Response, HttpError>,
    ) {
        self.core.on_http(id, plain::outcome(outcome), cx.now());
        self.flush(cx);
    }

    fn on_shutdown(&mut self, cx: &mut Cx<Self>) {
        self.core.shutdown(cx.now());
        self.flush(cx);
    }

    /// Graph's change notifications and their validation handshake.
    fn webhook(&mut self, cx: &mut Cx<Self>, request: WebhookRequest) -> WebhookResponse {
        let (status, content_type, body) =
            self.core
                .on_webhook(&request.method, &request.query, &request.body, cx.now());
        self.flush(cx);
        WebhookResponse {
            status,
            headers: vec![Header {
                name: "content-type".into(),
                value: content_type.into(),
            }],
            body,
        }
    }

    fn watch(
        &mut self,
        cx: &mut Cx<Self>,
        endpoints: Vec<EndpointId>,
    ) -> Result<(), ConnectorError> {
        self.core.watch(&endpoints, cx.now());
        self.flush(cx);
        Ok(())
    }

    fn unwatch(
        &mut self,
        cx: &mut Cx<Self>,
        endpoints: Vec<EndpointId>,
    ) -> Result<(), ConnectorError> {
        self.core.unwatch(&endpoints, cx.now());
        self.flush(cx);
        Ok(())
    }

    fn write(&mut self, _: &mut Cx<Self>, _: WriteRequest) -> Result<(), ConnectorError> {
        Err(ConnectorError::Unsupported(
            "a calendar connector does not write presence".into(),
        ))
    }
}

sdk::register_connector!(M365Calendar);
