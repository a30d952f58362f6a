//! The component glue: the host's WebSocket client, one timer, the
//! key-value store and reports around [`Core`].

use std::cell::RefCell;
use std::collections::HashMap;

use presence_connector_sdk::{
    self as sdk, Capabilities, Channels, Config, ConfigEntry, ConnectorError, EndpointId,
    EndpointKind, Event, Guest, Header, PluginInfo, TimerId, WebhookRequest, WebhookResponse,
    WebsocketId, WriteRequest, WsPayload, instance, kv, report, timers, websocket,
};

use crate::core::{Action, Core, Level, keys};
use crate::settings::Settings;

/// The glue's state: the core, the one wake-up timer, and the host's
/// WebSocket handles by the core's connection numbers.
#[derive(Default)]
struct Glue {
    core: Option<Core>,
    wake: Option<TimerId>,
    by_handle: HashMap<WebsocketId, u64>,
    by_conn: HashMap<u64, WebsocketId>,
}

thread_local! {
    // A component instance is single-threaded; the host serialises calls.
    static GLUE: RefCell<Glue> = RefCell::new(Glue::default());
}

/// The writes in force the key-value store holds.
fn stored_writes() -> Vec<(String, Vec<u8>)> {
    kv::list_keys(keys::HELD_PREFIX)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|k| {
            let v = kv::get(&k).ok().flatten()?;
            Some((k.strip_prefix(keys::HELD_PREFIX)?.to_string(), v))
        })
        .collect()
}

impl Glue {
    fn with_core(&mut self, f: impl FnOnce(&mut Core, u64)) {
        if let Some(core) = self.core.as_mut() {
            f(core, timers::now());
        }
        self.carry_out();
    }

    /// Carry out the core's actions; a connect the host refuses comes back
    /// to the core as a close, which may produce more (bounded rounds).
    fn carry_out(&mut self) {
        for _ in 0..16 {
            let Some(core) = self.core.as_mut() else {
                return;
            };
            let actions = core.take_actions();
            if actions.is_empty() {
                return;
            }
            let mut refused = Vec::new();
            for a in actions {
                match a {
                    Action::Connect { conn, url, headers } => {
                        let options = websocket::ConnectOptions {
                            headers: headers
                                .into_iter()
                                .map(|(name, value)| Header { name, value })
                                .collect(),
                            subprotocols: vec![],
                            connect_timeout_ms: Some(15_000),
                            // The protocol's own ping/pong does the heartbeat.
                            ping_interval_ms: None,
                            pong_timeout_ms: None,
                        };
                        match websocket::connect(&url, &options) {
                            Ok(h) => {
                                self.by_handle.insert(h, conn);
                                self.by_conn.insert(conn, h);
                            }
                            Err(e) => refused.push((conn, sdk::render_host_error(&e))),
                        }
                    }
                    Action::Send(conn, text) => {
                        if let Some(h) = self.by_conn.get(&conn)
                            && let Err(e) = websocket::send_text(*h, &text)
                        {
                            sdk::warn!("sending to the bridge: {}", sdk::render_host_error(&e));
                        }
                    }
                    Action::Close(conn, code, reason) => {
                        if let Some(h) = self.by_conn.remove(&conn) {
                            self.by_handle.remove(&h);
                            websocket::close(h, code, &reason);
                        }
                    }
                    Action::Wake(ms) => {
                        if let Some(t) = self.wake.take() {
                            timers::cancel(t);
                        }
                        self.wake = Some(timers::set_timer(ms));
                    }
                    Action::KvSet(k, v) => {
                        if let Err(e) = kv::set(&k, &v) {
                            sdk::error!("storing {k}: {}", sdk::render_host_error(&e));
                        }
                    }
                    Action::KvDelete(k) => {
                        if let Err(e) = kv::delete(&k) {
                            sdk::warn!("deleting {k}: {}", sdk::render_host_error(&e));
                        }
                    }
                    Action::Presence(u) => report::presence(&u),
                    Action::EndpointState(ep, st, detail) => {
                        report::endpoint_state(&ep, st, detail.as_deref())
                    }
                    Action::Status(st, detail) => report::status(st, detail.as_deref()),
                    Action::WriteOutcome(id, o) => report::write_outcome(id, &o),
                    Action::Log(level, m) => match level {
                        Level::Debug => sdk::debug!("{m}"),
                        Level::Info => sdk::info!("{m}"),
                        Level::Warn => sdk::warn!("{m}"),
                        Level::Error => sdk::error!("{m}"),
                    },
                }
            }
            let now = timers::now();
            if let Some(core) = self.core.as_mut() {
                for (conn, why) in refused {
                    let close = sdk::CloseInfo {
                        code: None,
                        reason: String::new(),
                        failure: Some(sdk::Failure::Other(why)),
                    };
                    core.on_closed(conn, &close, now);
                }
            }
        }
    }

    /// A new configuration replaces the running core, which says goodbye
    /// first.
    fn replace(&mut self) {
        self.with_core(|core, now| core.shutdown("reconfigured", now));
        self.core = None;
        if let Some(t) = self.wake.take() {
            timers::cancel(t);
        }
        for (h, _) in self.by_handle.drain() {
            websocket::close(h, 1000, "reconfigured");
        }
        self.by_conn.clear();
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::WebsocketOpened(o) => {
                let Some(conn) = self.by_handle.get(&o.socket).copied() else {
                    return;
                };
                self.with_core(|core, now| core.on_open(conn, now));
            }
            Event::WebsocketMessage(m) => {
                let Some(conn) = self.by_handle.get(&m.socket).copied() else {
                    return;
                };
                match m.payload {
                    WsPayload::Text(text) => {
                        self.with_core(|core, now| core.on_text(conn, &text, now))
                    }
                    // Binary frames are a protocol error (section 1).
                    WsPayload::Binary(_) => self.with_core(|core, now| core.on_binary(conn, now)),
                }
            }
            Event::WebsocketClosed(c) => {
                let Some(conn) = self.by_handle.remove(&c.socket) else {
                    return;
                };
                self.by_conn.remove(&conn);
                self.with_core(|core, now| core.on_closed(conn, &c.close, now));
            }
            Event::Timer(t) => {
                if self.wake != Some(t) {
                    return;
                }
                self.wake = None;
                self.with_core(|core, now| core.on_wake(now));
            }
            Event::Shutdown => self.with_core(|core, now| core.shutdown("hub-stopping", now)),
            _ => {}
        }
    }
}

struct SkypeUcma;

impl Guest for SkypeUcma {
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
                dnd_scopes: vec![],
                restore: true,
                expiry: true,
                webhooks: false,
                batched_events: true,
            },
        }
    }

    fn configure(entries: Vec<ConfigEntry>) -> Result<(), ConnectorError> {
        let settings = Settings::from_config(&Config::new(entries))?;
        GLUE.with_borrow_mut(|g| {
            g.replace();
            let entropy = Box::new(instance::random_bytes);
            let mut core = Core::new(settings, stored_writes(), entropy);
            core.start(timers::now());
            g.core = Some(core);
            g.carry_out();
        });
        Ok(())
    }

    fn handle_events(events: Vec<Event>) -> Result<(), ConnectorError> {
        GLUE.with_borrow_mut(|g| events.into_iter().for_each(|e| g.event(e)));
        Ok(())
    }

    fn handle_webhook(_request: WebhookRequest) -> WebhookResponse {
        WebhookResponse {
            status: 404,
            headers: vec![],
            body: b"no webhooks".to_vec(),
        }
    }

    fn watch(endpoints: Vec<EndpointId>) -> Result<(), ConnectorError> {
        GLUE.with_borrow_mut(|g| {
            if g.core.is_none() {
                return Err(ConnectorError::NotConfigured);
            }
            g.with_core(|core, now| core.watch(&endpoints, now));
            Ok(())
        })
    }

    fn unwatch(endpoints: Vec<EndpointId>) -> Result<(), ConnectorError> {
        GLUE.with_borrow_mut(|g| {
            if g.core.is_none() {
                return Err(ConnectorError::NotConfigured);
            }
            g.with_core(|core, now| core.unwatch(&endpoints, now));
            Ok(())
        })
    }

    fn write_presence(request: WriteRequest) -> Result<(), ConnectorError> {
        GLUE.with_borrow_mut(|g| {
            let core = g.core.as_mut().ok_or(ConnectorError::NotConfigured)?;
            let r = core.write_presence(request, timers::now());
            g.carry_out();
            r
        })
    }
}

// Exported only in the component: natively (tests) the crate is a plain
// library.
#[cfg(target_arch = "wasm32")]
sdk::export!(SkypeUcma);
