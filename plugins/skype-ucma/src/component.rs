//! The component glue: [`Core`] as an SDK [`Connector`]. The SDK owns the
//! instance, the not-configured checks, the wake-up timer, the WebSocket
//! handles and the refused connects (they come back as closes); this file
//! hands the core's actions to the SDK.

use presence_connector_sdk::{
    self as sdk, Capabilities, Channels, CloseInfo, Config, Connector, ConnectorError, Cx,
    EndpointId, EndpointKind, PluginInfo, WebsocketOpen, WriteRequest, WsOptions, WsPayload,
};

use crate::core::{Action, Core, keys};
use crate::settings::Settings;

struct SkypeUcma {
    core: Core,
}

impl SkypeUcma {
    /// Hands what the core asked for to the SDK.
    fn flush(&mut self, cx: &mut Cx<Self>) {
        for action in self.core.take_actions() {
            match action {
                Action::Connect { conn, url, headers } => {
                    // The protocol's own ping/pong does the heartbeat.
                    let options = headers
                        .into_iter()
                        .fold(WsOptions::default(), |o, (name, value)| {
                            o.header(name, value)
                        })
                        .connect_timeout_ms(15_000);
                    cx.ws_connect(conn, url, options);
                }
                Action::Send(conn, text) => cx.ws_send_text(conn, text),
                Action::Close(conn, code, reason) => cx.ws_close(conn, code, reason),
                // The core keeps every deadline as one wake-up time.
                Action::Wake(ms) => cx.set_timer((), ms),
                Action::KvSet(k, v) => cx.kv_set_logged(&k, &v),
                Action::KvDelete(k) => cx.kv_delete_logged(&k),
                Action::Presence(u) => cx.presence(*u),
                Action::EndpointState(ep, st, detail) => {
                    cx.endpoint_state(ep, st, detail.as_deref())
                }
                Action::Status(st, detail) => cx.status(st, detail.as_deref()),
                Action::WriteOutcome(id, o) => cx.write_outcome(id, o),
                Action::Log(level, m) => cx.log(level, m),
            }
        }
    }
}

impl Connector for SkypeUcma {
    /// The core's one wake-up.
    type TimerKey = ();
    type RequestKey = ();
    /// The core's connection number.
    type SocketKey = u64;

    fn describe() -> PluginInfo {
        PluginInfo {
            name: "Skype for Business / Lync (UCMA bridge)".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Skype for Business Server / Lync Server presence through a UCMA bridge on the Front End's Windows side (WebSocket+TLS, docs/ucma-bridge/PROTOCOL.md): user endpoint with or without TLS, or trusted application endpoint; availability ranges, activity tokens, notes and phone state; presence write-back and restore".into(),
            config_fields: crate::settings::fields(),
            endpoint_kinds: vec![EndpointKind {
                attribute: "lync-uri".into(),
                label: "Lync / SfB SIP URI".into(),
                feeds: Channels::RICH | Channels::TELEPHONY,
            }],
            capabilities: Capabilities {
                writes: Channels::RICH,
                restore: true,
                expiry: true,
                batched_events: true,
                ..Capabilities::default()
            },
        }
    }

    fn new(cx: &mut Cx<Self>, config: &Config) -> Result<Self, ConnectorError> {
        let settings = Settings::from_config(config)?;
        let held = cx.kv_under(keys::HELD_PREFIX);
        // The core draws on the host's generator for nonces and jitter.
        let entropy = Box::new(sdk::instance::random_bytes);
        let mut core = Core::new(settings, held, entropy);
        core.start(cx.now());
        let mut connector = Self { core };
        connector.flush(cx);
        Ok(connector)
    }

    /// As the default, but the bridge hears `bye` with `reconfigured`.
    fn reconfigure(&mut self, cx: &mut Cx<Self>, config: &Config) -> Result<(), ConnectorError> {
        self.core.shutdown("reconfigured", cx.now());
        self.flush(cx);
        cx.reset();
        *self = Self::new(cx, config)?;
        Ok(())
    }

    fn on_timer(&mut self, cx: &mut Cx<Self>, (): ()) {
        self.core.on_wake(cx.now());
        self.flush(cx);
    }

    fn on_ws_open(&mut self, cx: &mut Cx<Self>, conn: u64, _: WebsocketOpen) {
        self.core.on_open(conn, cx.now());
        self.flush(cx);
    }

    fn on_ws_message(&mut self, cx: &mut Cx<Self>, conn: u64, payload: WsPayload) {
        match payload {
            WsPayload::Text(text) => self.core.on_text(conn, &text, cx.now()),
            // Binary frames are a protocol error (section 1).
            WsPayload::Binary(_) => self.core.on_binary(conn, cx.now()),
        }
        self.flush(cx);
    }

    fn on_ws_closed(&mut self, cx: &mut Cx<Self>, conn: u64, close: CloseInfo) {
        self.core.on_closed(conn, &close, cx.now());
        self.flush(cx);
    }

    fn on_shutdown(&mut self, cx: &mut Cx<Self>) {
        self.core.shutdown("hub-stopping", cx.now());
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

    fn write(&mut self, cx: &mut Cx<Self>, request: WriteRequest) -> Result<(), ConnectorError> {
        let result = self.core.write_presence(request, cx.now());
        self.flush(cx);
        result
    }
}

sdk::register_connector!(SkypeUcma);
