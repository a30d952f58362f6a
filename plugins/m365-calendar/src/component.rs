//! The component glue: host HTTP, timers and reports around [`Core`].

use std::cell::RefCell;
use std::collections::HashMap;

use presence_connector_sdk::{
    self as sdk, Capabilities, Channels, Config, ConfigEntry, ConnectorError, EndpointId,
    EndpointKind, Event, Guest, Header, PluginInfo, RequestId, TimerId, WebhookRequest,
    WebhookResponse, WriteRequest, http, instance, report, timers,
};

use crate::core::{Action, Core, Level, ReqId, Response, TimerKey};
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
        if let Some(h) = self.timers.remove(&key) {
            self.handles.remove(&h);
            timers::cancel(h);
        }
        let h = timers::set_timer(ms);
        self.timers.insert(key, h);
        self.handles.insert(h, key);
    }

    /// A new configuration replaces the running core: its subscriptions
    /// are deleted first (those requests are left to run; their answers
    /// find nobody), its timers and reads abandoned.
    fn reset(&mut self) {
        if let Some(core) = self.core.as_mut() {
            core.shutdown(timers::now());
        }
        let before: std::collections::HashSet<RequestId> = self.requests.keys().copied().collect();
        self.run();
        self.core = None;
        for (_, h) in self.timers.drain() {
            timers::cancel(h);
        }
        self.handles.clear();
        for (h, _) in self.requests.drain() {
            if before.contains(&h) {
                http::cancel(h);
            }
        }
    }

    /// Carry out what the core asked for; a request the host refuses at
    /// once is answered to the core as a failure.
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
                if let Some(c) = self.core.as_mut() {
                    c.on_http(id, result, now);
                }
            }
            Event::Shutdown => {
                if let Some(c) = self.core.as_mut() {
                    c.shutdown(now);
                }
            }
            Event::Timer(h) => {
                let Some(key) = self.handles.remove(&h) else {
                    return;
                };
                self.timers.remove(&key);
                if let Some(c) = self.core.as_mut() {
                    c.on_timer(key, now);
                }
            }
            _ => {}
        }
        self.run();
    }
}

struct M365Calendar;

impl Guest for M365Calendar {
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
                writes: Channels::empty(),
                dnd_scopes: vec![],
                restore: false,
                expiry: false,
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
            // Watches survive a new configuration: the host replays them.
            st.reset();
            let now = timers::now();
            let entropy = Box::new(instance::random_bytes);
            let mut core = Core::new(settings, entropy);
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
            let (status, content_type, body) = core.on_webhook(
                &request.method,
                &request.query,
                &request.body,
                timers::now(),
            );
            st.run();
            WebhookResponse {
                status,
                headers: vec![Header {
                    name: "content-type".into(),
                    value: content_type.into(),
                }],
                body,
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

    fn write_presence(_request: WriteRequest) -> Result<(), ConnectorError> {
        Err(ConnectorError::Unsupported(
            "a calendar connector does not write presence".into(),
        ))
    }
}

#[cfg(target_arch = "wasm32")]
sdk::export!(M365Calendar);
