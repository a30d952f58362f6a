//! The component glue: [`Core`] as an SDK [`Connector`]. The SDK owns the
//! instance, the not-configured checks, the timer, request and WebSocket
//! handles and the refusals; this file converts between the core's types and
//! the contract's.

use presence_connector_sdk::{
    self as sdk, Capabilities, Channels, CloseInfo, Config, Connector, ConnectorError, Cx,
    DndScope, EndpointId, EndpointKind, Failure, HttpError, PluginInfo, WebhookRequest,
    WebhookResponse, WebsocketOpen, WriteRequest, WsPayload, http,
};

use crate::core::{Core, Hook, ReqId, Stored, TimerKey, keys};
use crate::settings::Settings;

struct RingCentral {
    core: Core,
}

/// What the key-value store holds for this instance.
fn load_stored(cx: &mut Cx<RingCentral>) -> Stored {
    let get = |cx: &mut Cx<RingCentral>, key: &str| cx.kv_get(key).ok().flatten();
    let exts = cx.kv_under(keys::EXT_PREFIX);
    Stored {
        tokens: get(cx, keys::TOKENS),
        subscription: get(cx, keys::SUBSCRIPTION),
        penalties: get(cx, keys::PENALTIES),
        exts,
    }
}

fn describe_close(close: &CloseInfo) -> (String, bool) {
    let mut why = match close.code {
        Some(code) if close.reason.is_empty() => format!("close code {code}"),
        Some(code) => format!("close code {code}: {}", close.reason),
        None => "closed".to_string(),
    };
    let mut unauthorized = false;
    if let Some(f) = &close.failure {
        why = sdk::render_failure(f);
        unauthorized = matches!(f, Failure::UpgradeRefused(a) if a.status == 401);
    }
    (why, unauthorized)
}

impl RingCentral {
    /// Hands what the core asked for to the SDK.
    fn flush(&mut self, cx: &mut Cx<Self>) {
        for action in self.core.take_actions() {
            cx.apply(action);
        }
    }
}

impl Connector for RingCentral {
    type TimerKey = TimerKey;
    type RequestKey = ReqId;
    /// The core's WebSocket connection number.
    type SocketKey = u64;

    fn describe() -> PluginInfo {
        PluginInfo {
            name: "RingCentral".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "RingCentral (and Unify Office, Avaya Cloud Office, ...) presence: extension directory, WebSocket or WebHook notifications, DND / user status write-back, reflect-DND and forced queue-call acceptance; OAuth 2.0 JWT or authorization code".into(),
            config_fields: crate::settings::fields(),
            endpoint_kinds: vec![
                EndpointKind {
                    attribute: "ringcentral-extension-id".into(),
                    label: "RingCentral extension id or number".into(),
                    feeds: Channels::RICH | Channels::TELEPHONY,
                },
                EndpointKind {
                    attribute: "extension".into(),
                    label: "Extension number".into(),
                    feeds: Channels::RICH | Channels::TELEPHONY,
                },
            ],
            capabilities: Capabilities {
                writes: Channels::RICH | Channels::TELEPHONY,
                dnd_scopes: vec![DndScope::AllCalls, DndScope::QueueCalls],
                restore: true,
                expiry: true,
                webhooks: true,
                batched_events: true,
            },
        }
    }

    /// A new configuration builds a new core; the SDK's default
    /// `reconfigure` lets the old one say goodbye (subscription deleted,
    /// socket closed) and drops its timers and sockets first.
    fn new(cx: &mut Cx<Self>, config: &Config) -> Result<Self, ConnectorError> {
        let hub = cx.instance_info();
        let settings = Settings::from_config(config, hub.webhook_base_url.as_deref())?;
        let now = cx.now();
        let stored = load_stored(cx);
        // The core draws on the host's generator whenever it needs a nonce.
        let entropy = Box::new(sdk::instance::random_bytes);
        let mut core = Core::new(settings, stored, now, entropy);
        core.start(now);
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
        self.core
            .on_http(id, sdk::plain::outcome(outcome), cx.now());
        self.flush(cx);
    }

    fn on_ws_open(&mut self, cx: &mut Cx<Self>, conn: u64, _: WebsocketOpen) {
        self.core.on_ws_open(conn, cx.now());
        self.flush(cx);
    }

    fn on_ws_message(&mut self, cx: &mut Cx<Self>, conn: u64, payload: WsPayload) {
        let text = match payload {
            WsPayload::Text(t) => t,
            WsPayload::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
        };
        self.core.on_ws_text(conn, &text, cx.now());
        self.flush(cx);
    }

    fn on_ws_closed(&mut self, cx: &mut Cx<Self>, conn: u64, close: CloseInfo) {
        let (why, unauthorized) = describe_close(&close);
        self.core.on_ws_closed(conn, why, unauthorized, cx.now());
        self.flush(cx);
    }

    fn on_shutdown(&mut self, cx: &mut Cx<Self>) {
        self.core.shutdown(cx.now());
        self.flush(cx);
    }

    fn webhook(&mut self, cx: &mut Cx<Self>, request: WebhookRequest) -> WebhookResponse {
        let headers_in = sdk::plain::pairs(request.headers);
        let hook = Hook {
            method: &request.method,
            path: &request.path,
            query: &request.query,
            headers: &headers_in,
            body: &request.body,
        };
        let answer = self.core.on_webhook(&hook, cx.now());
        self.flush(cx);
        WebhookResponse {
            status: answer.status,
            headers: sdk::plain::headers(answer.headers),
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

sdk::register_connector!(RingCentral);
