//! The component glue: host HTTP, WebSocket, timers, key-value store and
//! reports around [`Core`].

use std::cell::RefCell;
use std::collections::HashMap;

use presence_connector_sdk::{
    self as sdk, Capabilities, Channels, Config, ConfigEntry, ConnectorError, DndScope, EndpointId,
    EndpointKind, Event, Failure, Guest, Header, PluginInfo, RequestId, TimerId, WebhookRequest,
    WebhookResponse, WebsocketId, WriteRequest, WsPayload, http, instance, kv, report, timers,
    websocket,
};

use crate::core::{Action, Core, Hook, Level, ReqId, Response, Stored, TimerKey, keys};
use crate::settings::Settings;

#[derive(Default)]
struct State {
    core: Option<Core>,
    requests: HashMap<RequestId, ReqId>,
    timers: HashMap<TimerKey, TimerId>,
    handles: HashMap<TimerId, TimerKey>,
    /// Host WebSocket handle <-> the core's connection number.
    sockets: HashMap<WebsocketId, u64>,
    conns: HashMap<u64, WebsocketId>,
}

thread_local! {
    // A component instance is single-threaded; the host serialises calls.
    static STATE: RefCell<State> = RefCell::new(State::default());
}

/// What the key-value store holds for this instance.
fn load_stored() -> Stored {
    let get = |key: &str| kv::get(key).ok().flatten();
    let exts = kv::list_keys(keys::EXT_PREFIX)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|k| {
            let v = get(&k)?;
            Some((k.strip_prefix(keys::EXT_PREFIX)?.to_string(), v))
        })
        .collect();
    Stored {
        tokens: get(keys::TOKENS),
        subscription: get(keys::SUBSCRIPTION),
        penalties: get(keys::PENALTIES),
        exts,
    }
}

fn describe_close(close: &sdk::CloseInfo) -> (String, bool) {
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

impl State {
    fn set_timer(&mut self, key: TimerKey, ms: u64) {
        self.cancel_timer(&key);
        let h = timers::set_timer(ms);
        self.timers.insert(key.clone(), h);
        self.handles.insert(h, key);
    }

    fn cancel_timer(&mut self, key: &TimerKey) {
        if let Some(h) = self.timers.remove(key) {
            self.handles.remove(&h);
            timers::cancel(h);
        }
    }

    /// A new configuration replaces the running core: it says goodbye
    /// (subscription deleted, socket closed), then it is dropped with its
    /// timers, requests and sockets.
    fn replace(&mut self) {
        if let Some(core) = self.core.as_mut() {
            core.shutdown(timers::now());
            self.run();
        }
        self.core = None;
        for (_, h) in self.timers.drain() {
            timers::cancel(h);
        }
        self.handles.clear();
        for (h, _) in self.requests.drain() {
            http::cancel(h);
        }
        for (h, _) in self.sockets.drain() {
            websocket::close(h, 1000, "reconfigured");
        }
        self.conns.clear();
    }

    /// Carry out what the core asked for. Refusals by the host come back to
    /// the core as failures, which may produce more actions: bounded rounds.
    fn run(&mut self) {
        for _round in 0..64 {
            let Some(core) = self.core.as_mut() else {
                return;
            };
            let actions = core.take_actions();
            if actions.is_empty() {
                return;
            }
            let mut refused = Vec::new();
            let mut ws_refused = Vec::new();
            for a in actions {
                match a {
                    Action::Http(id, r) => {
                        let request = http::Request {
                            method: r.method.into(),
                            url: r.url,
                            headers: r
                                .headers
                                .into_iter()
                                .map(|(name, value)| Header { name, value })
                                .collect(),
                            body: r.body,
                            timeout_ms: Some(r.timeout_ms),
                        };
                        match http::send(&request) {
                            Ok(h) => {
                                self.requests.insert(h, id);
                            }
                            Err(e) => refused.push((id, sdk::render_host_error(&e))),
                        }
                    }
                    Action::WsConnect(conn, url) => {
                        let options = websocket::ConnectOptions {
                            headers: vec![],
                            subprotocols: vec![],
                            connect_timeout_ms: Some(15_000),
                            ping_interval_ms: Some(30_000),
                            pong_timeout_ms: Some(10_000),
                        };
                        match websocket::connect(&url, &options) {
                            Ok(h) => {
                                self.sockets.insert(h, conn);
                                self.conns.insert(conn, h);
                            }
                            Err(e) => ws_refused.push((conn, sdk::render_host_error(&e))),
                        }
                    }
                    Action::WsSend(conn, text) => {
                        if let Some(h) = self.conns.get(&conn)
                            && let Err(e) = websocket::send_text(*h, &text)
                        {
                            sdk::warn!("WebSocket send: {}", sdk::render_host_error(&e));
                        }
                    }
                    Action::WsClose(conn, code, reason) => {
                        if let Some(h) = self.conns.get(&conn) {
                            websocket::close(*h, code, &reason);
                        }
                    }
                    Action::SetTimer(k, ms) => self.set_timer(k, ms),
                    Action::CancelTimer(k) => self.cancel_timer(&k),
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
                    Action::LoginStep(step) => report::login_step(step.as_ref()),
                    Action::Directory(entries, complete) => report::directory(&entries, complete),
                    Action::WriteOutcome(id, outcome) => report::write_outcome(id, &outcome),
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
                for (id, why) in refused {
                    core.on_http(id, Err(why), now);
                }
                for (conn, why) in ws_refused {
                    core.on_ws_closed(conn, why, false, now);
                }
            }
        }
    }

    fn event(&mut self, event: Event) {
        let now = timers::now();
        let Some(core) = self.core.as_mut() else {
            return;
        };
        match event {
            Event::HttpResponse(r) => {
                let Some(id) = self.requests.remove(&r.request) else {
                    return;
                };
                let result = r
                    .outcome
                    .map(|resp| Response {
                        status: resp.status,
                        headers: resp
                            .headers
                            .into_iter()
                            .map(|h| (h.name, h.value))
                            .collect(),
                        body: resp.body,
                    })
                    .map_err(|f| sdk::render_failure(&f));
                core.on_http(id, result, now);
            }
            Event::WebsocketOpened(o) => {
                if let Some(conn) = self.sockets.get(&o.socket) {
                    core.on_ws_open(*conn, now);
                }
            }
            Event::WebsocketMessage(m) => {
                if let Some(conn) = self.sockets.get(&m.socket) {
                    let text = match m.payload {
                        WsPayload::Text(t) => t,
                        WsPayload::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
                    };
                    core.on_ws_text(*conn, &text, now);
                }
            }
            Event::WebsocketClosed(c) => {
                if let Some(conn) = self.sockets.remove(&c.socket) {
                    self.conns.remove(&conn);
                    let (why, unauthorized) = describe_close(&c.close);
                    core.on_ws_closed(conn, why, unauthorized, now);
                }
            }
            Event::Timer(h) => {
                let Some(key) = self.handles.remove(&h) else {
                    return;
                };
                self.timers.remove(&key);
                core.on_timer(key, now);
            }
            Event::Shutdown => core.shutdown(now),
            _ => {}
        }
        self.run();
    }
}

struct RingCentral;

impl Guest for RingCentral {
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

    fn configure(entries: Vec<ConfigEntry>) -> Result<(), ConnectorError> {
        let hub = instance::info();
        let settings =
            Settings::from_config(&Config::new(entries), hub.webhook_base_url.as_deref())?;
        STATE.with_borrow_mut(|st| {
            st.replace();
            let now = timers::now();
            let entropy = Box::new(instance::random_bytes);
            let mut core = Core::new(settings, load_stored(), now, entropy);
            core.start(now);
            st.core = Some(core);
            st.run();
        });
        Ok(())
    }

    fn handle_events(events: Vec<Event>) -> Result<(), ConnectorError> {
        STATE.with_borrow_mut(|st| {
            for event in events {
                st.event(event);
            }
        });
        Ok(())
    }

    fn handle_webhook(request: WebhookRequest) -> WebhookResponse {
        STATE.with_borrow_mut(|st| {
            let Some(core) = st.core.as_mut() else {
                return WebhookResponse {
                    status: 503,
                    headers: vec![],
                    body: b"not configured".to_vec(),
                };
            };
            let headers: Vec<(String, String)> = request
                .headers
                .into_iter()
                .map(|h| (h.name, h.value))
                .collect();
            let hook = Hook {
                method: &request.method,
                path: &request.path,
                query: &request.query,
                headers: &headers,
                body: &request.body,
            };
            let answer = core.on_webhook(&hook, timers::now());
            st.run();
            WebhookResponse {
                status: answer.status,
                headers: answer
                    .headers
                    .into_iter()
                    .map(|(name, value)| Header { name, value })
                    .collect(),
                body: answer.body,
            }
        })
    }

    fn watch(endpoints: Vec<EndpointId>) -> Result<(), ConnectorError> {
        STATE.with_borrow_mut(|st| {
            let core = st.core.as_mut().ok_or(ConnectorError::NotConfigured)?;
            core.watch(&endpoints, timers::now());
            st.run();
            Ok(())
        })
    }

    fn unwatch(endpoints: Vec<EndpointId>) -> Result<(), ConnectorError> {
        STATE.with_borrow_mut(|st| {
            let core = st.core.as_mut().ok_or(ConnectorError::NotConfigured)?;
            core.unwatch(&endpoints, timers::now());
            st.run();
            Ok(())
        })
    }

    fn write_presence(request: WriteRequest) -> Result<(), ConnectorError> {
        STATE.with_borrow_mut(|st| {
            let core = st.core.as_mut().ok_or(ConnectorError::NotConfigured)?;
            let r = core.write_presence(request, timers::now());
            st.run();
            r
        })
    }
}

// Exported only in the component: natively (tests) the crate is a plain
// library.
#[cfg(target_arch = "wasm32")]
sdk::export!(RingCentral);
