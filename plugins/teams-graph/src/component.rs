//! The component glue: host HTTP, timers, key-value store and reports around
//! [`Core`].

use std::cell::RefCell;
use std::collections::HashMap;

use presence_connector_sdk::{
    self as sdk, Capabilities, Channels, Config, ConfigEntry, ConnectorError, EndpointId,
    EndpointKind, Event, Guest, Header, PluginInfo, RequestId, TimerId, WebhookRequest,
    WebhookResponse, WriteRequest, http, instance, kv, report, timers,
};

use crate::core::{Action, Core, Hook, Level, ReqId, Response, Stored, TimerKey, keys};
use crate::settings::Settings;

#[derive(Default)]
struct State {
    core: Option<Core>,
    /// Host request handle -> the core's request id.
    requests: HashMap<RequestId, ReqId>,
    timers: HashMap<TimerKey, TimerId>,
    handles: HashMap<TimerId, TimerKey>,
}

thread_local! {
    // A component instance is single-threaded; the host serialises calls.
    static STATE: RefCell<State> = RefCell::new(State::default());
}

/// What the key-value store holds for this instance.
fn load_stored() -> Stored {
    let get = |key: &str| kv::get(key).ok().flatten();
    Stored {
        primary: get(keys::TOKEN_PRIMARY),
        app: get(keys::TOKEN_APP),
        subs: get(keys::SUBS),
        users: get(keys::USERS),
        writes: get(keys::WRITES),
    }
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

    /// A new configuration replaces the running core within this instance:
    /// it settles what it owes the hub and leaves its subscriptions to the
    /// new one, then it is dropped and its timers and requests abandoned.
    fn replace(&mut self) {
        if let Some(core) = self.core.as_mut() {
            core.make_way();
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
    }

    /// Carry out what the core asked for. A request the host refuses at once
    /// is answered to the core as a failure, which may produce more actions:
    /// the loop runs until none are left, bounded because each refusal
    /// consumes one request the core sent.
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
            Event::Timer(h) => {
                let Some(key) = self.handles.remove(&h) else {
                    return;
                };
                self.timers.remove(&key);
                if let Some(c) = self.core.as_mut() {
                    c.on_timer(key, now);
                }
            }
            // The instance stops. The core stays: the host keeps delivering
            // answers for a grace period, in which its subscription deletes
            // go out and are answered.
            Event::Shutdown => {
                if let Some(c) = self.core.as_mut() {
                    c.shutdown(now);
                }
            }
            _ => {}
        }
        self.run();
    }
}

struct TeamsGraph;

impl Guest for TeamsGraph {
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
            let hook = Hook {
                method: &request.method,
                path: &request.path,
                query: &request.query,
                body: &request.body,
            };
            let answer = core.on_webhook(&hook, timers::now());
            st.run();
            WebhookResponse {
                status: answer.status,
                headers: vec![Header {
                    name: "content-type".into(),
                    value: answer.content_type.into(),
                }],
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
// library, and the component's export names are not valid symbols.
#[cfg(target_arch = "wasm32")]
sdk::export!(TeamsGraph);
