//! The component glue: host HTTP, timers, key-value store and reports
//! around [`Core`].

use std::cell::RefCell;
use std::collections::HashMap;

use presence_connector_sdk::{
    self as sdk, Capabilities, Channels, Config, ConfigEntry, ConnectorError, EndpointId,
    EndpointKind, Event, Guest, Header, PluginInfo, RequestId, TimerId, WebhookRequest,
    WebhookResponse, WriteRequest, http, instance, kv, report, timers,
};

use crate::core::{Action, Core, Level, ReqId, Response, TimerKey, keys};
use crate::settings::Settings;

#[derive(Default)]
struct State {
    core: Option<Core>,
    requests: HashMap<RequestId, ReqId>,
    timers: HashMap<TimerKey, TimerId>,
    handles: HashMap<TimerId, TimerKey>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

impl State {
    fn set_timer(&mut self, key: TimerKey, ms: u64) {
        self.cancel_timer(key);
        let h = timers::set_timer(ms);
        self.timers.insert(key, h);
        self.handles.insert(h, key);
    }

    fn cancel_timer(&mut self, key: TimerKey) {
        if let Some(h) = self.timers.remove(&key) {
            self.handles.remove(&h);
            timers::cancel(h);
        }
    }

    fn replace(&mut self) {
        if let Some(core) = self.core.as_mut() {
            core.shutdown();
        }
        self.core = None;
        for (_, h) in self.timers.drain() {
            timers::cancel(h);
        }
        self.handles.clear();
        for (h, _) in self.requests.drain() {
            http::cancel(h);
        }
    }

    /// Carry out what the core asked for; host refusals go back to it.
    fn run(&mut self) {
        for _round in 0..16 {
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
                    Action::SetTimer(k, ms) => self.set_timer(k, ms),
                    Action::CancelTimer(k) => self.cancel_timer(k),
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
            Event::Timer(h) => {
                let Some(key) = self.handles.remove(&h) else {
                    return;
                };
                self.timers.remove(&key);
                core.on_timer(key, now);
            }
            Event::Shutdown => core.shutdown(),
            _ => {}
        }
        self.run();
    }
}

struct ExchangeEws;

impl Guest for ExchangeEws {
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
                writes: Channels::empty(),
                dnd_scopes: vec![],
                restore: false,
                expiry: false,
                webhooks: false,
                batched_events: true,
            },
        }
    }

    fn configure(entries: Vec<ConfigEntry>) -> Result<(), ConnectorError> {
        let settings = Settings::from_config(&Config::new(entries))?;
        STATE.with_borrow_mut(|st| {
            // Watches survive a reconfiguration: the host does not replay
            // them for a running instance.
            let watched = st.core.as_ref().map(Core::watched).unwrap_or_default();
            st.replace();
            let now = timers::now();
            let guard = kv::get(keys::GUARD).ok().flatten();
            let mut core = Core::new(settings, guard, Box::new(instance::random_bytes));
            core.start(now);
            core.watch(&watched, now);
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

    fn handle_webhook(_request: WebhookRequest) -> WebhookResponse {
        WebhookResponse {
            status: 404,
            headers: vec![],
            body: b"no webhooks".to_vec(),
        }
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

    fn write_presence(_request: WriteRequest) -> Result<(), ConnectorError> {
        Err(ConnectorError::Unsupported(
            "Exchange calendars are read-only".into(),
        ))
    }
}

#[cfg(target_arch = "wasm32")]
sdk::export!(ExchangeEws);
