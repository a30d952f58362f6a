//! The component glue: [`Core`] as an SDK [`Connector`]. The SDK owns the
//! instance, the not-configured checks, the timer and request handles and
//! the refusals; this file hands the core's actions to the SDK.

use presence_connector_sdk::{
    self as sdk, Capabilities, Channels, Config, Connector, ConnectorError, Cx, EndpointId,
    EndpointKind, HttpError, PluginInfo, WriteRequest, http, plain,
};

use crate::core::{Core, ReqId, TimerKey, keys};
use crate::settings::Settings;

struct ExchangeEws {
    core: Core,
}

impl ExchangeEws {
    /// Hands what the core asked for to the SDK.
    fn flush(&mut self, cx: &mut Cx<Self>) {
        for action in self.core.take_actions() {
            cx.apply(action);
        }
    }

    /// A core for `settings`, with the lock-out guard the store holds.
    fn start(cx: &mut Cx<Self>, settings: Settings, watched: &[String]) -> Self {
        let now = cx.now();
        let guard = cx.kv_get(keys::GUARD).ok().flatten();
        // The core draws on the host's generator for NTLM nonces and jitter.
        let mut core = Core::new(settings, guard, Box::new(sdk::instance::random_bytes));
        core.start(now);
        core.watch(watched, now);
        let mut connector = Self { core };
        connector.flush(cx);
        connector
    }
}

impl Connector for ExchangeEws {
    type TimerKey = TimerKey;
    type RequestKey = ReqId;
    type SocketKey = ();

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

    fn new(cx: &mut Cx<Self>, config: &Config) -> Result<Self, ConnectorError> {
        let settings = Settings::from_config(config)?;
        Ok(Self::start(cx, settings, &[]))
    }

    /// As the default, but the watches survive: the host does not replay
    /// them for a running instance.
    fn reconfigure(&mut self, cx: &mut Cx<Self>, config: &Config) -> Result<(), ConnectorError> {
        let settings = Settings::from_config(config)?;
        let watched = self.core.watched();
        self.core.shutdown();
        cx.reset();
        *self = Self::start(cx, settings, &watched);
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
        self.core.on_http(id, plain::outcome(outcome), cx.now());
        self.flush(cx);
    }

    fn on_shutdown(&mut self, cx: &mut Cx<Self>) {
        self.core.shutdown();
        self.flush(cx);
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
            "Exchange calendars are read-only".into(),
        ))
    }
}

sdk::register_connector!(ExchangeEws);
