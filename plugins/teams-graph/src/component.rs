//! The component glue: [`Core`] as an SDK [`Connector`]. The SDK owns the
//! instance, the not-configured checks, timer and request handles and the
//! refusals; this file hands the core's actions to the effects context.

use presence_connector_sdk::{
    self as sdk, Capabilities, Channels, Config, Connector, ConnectorError, Cx, EndpointId,
    EndpointKind, Header, HttpError, PluginInfo, WebhookRequest, WebhookResponse, WriteRequest,
    http,
};

use crate::core::{Core, Hook, ReqId, Stored, TimerKey, keys};
use crate::settings::Settings;

struct TeamsGraph {
    core: Core,
}

impl TeamsGraph {
    fn build(cx: &mut Cx<Self>, settings: Settings) -> Self {
        let get = |cx: &mut Cx<Self>, key: &str| cx.kv_get(key).ok().flatten();
        let stored = Stored {
            primary: get(cx, keys::TOKEN_PRIMARY),
            app: get(cx, keys::TOKEN_APP),
            subs: get(cx, keys::SUBS),
            users: get(cx, keys::USERS),
            writes: get(cx, keys::WRITES),
        };
        let now = cx.now();
        // The core draws on the host's generator for clientState and OAuth state.
        let mut core = Core::new(settings, stored, now, Box::new(sdk::instance::random_bytes));
        core.start(now);
        let mut connector = Self { core };
        connector.flush(cx);
        connector
    }

    fn settings(cx: &mut Cx<Self>, config: &Config) -> Result<Settings, ConnectorError> {
        let hub = cx.instance_info();
        Settings::from_config(config, hub.webhook_base_url.as_deref())
    }

    /// Hands what the core asked for to the SDK.
    fn flush(&mut self, cx: &mut Cx<Self>) {
        for action in self.core.take_actions() {
            cx.apply(action);
        }
    }
}

impl Connector for TeamsGraph {
    type TimerKey = TimerKey;
    type RequestKey = ReqId;
    type SocketKey = ();

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

    fn new(cx: &mut Cx<Self>, config: &Config) -> Result<Self, ConnectorError> {
        let settings = Self::settings(cx, config)?;
        Ok(Self::build(cx, settings))
    }

    /// A new configuration replaces the core within this instance: the old
    /// one settles what it owes the hub and leaves its subscriptions to the
    /// new one (no goodbye), then its timers and requests are dropped.
    fn reconfigure(&mut self, cx: &mut Cx<Self>, config: &Config) -> Result<(), ConnectorError> {
        let settings = Self::settings(cx, config)?;
        self.core.make_way();
        self.flush(cx);
        cx.reset();
        *self = Self::build(cx, settings);
        Ok(())
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
        let result = sdk::plain::outcome(outcome);
        self.core.on_http(id, result, cx.now());
        self.flush(cx);
    }

    /// The instance stops. The core stays: the host keeps delivering answers
    /// for a grace period, in which its subscription deletes go out.
    fn on_shutdown(&mut self, cx: &mut Cx<Self>) {
        self.core.shutdown(cx.now());
        self.flush(cx);
    }

    fn webhook(&mut self, cx: &mut Cx<Self>, request: WebhookRequest) -> WebhookResponse {
        let hook = Hook {
            method: &request.method,
            path: &request.path,
            query: &request.query,
            body: &request.body,
        };
        let answer = self.core.on_webhook(&hook, cx.now());
        self.flush(cx);
        WebhookResponse {
            status: answer.status,
            headers: vec![Header {
                name: "content-type".into(),
                value: answer.content_type.into(),
            }],
            body: answer.body,
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

    fn write(&mut self, cx: &mut Cx<Self>, request: WriteRequest) -> Result<(), ConnectorError> {
        let result = self.core.write_presence(request, cx.now());
        self.flush(cx);
        result
    }
}

sdk::register_connector!(TeamsGraph);
