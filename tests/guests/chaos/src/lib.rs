//! `chaos`: a deliberately misbehaving connector for the host's isolation
//! tests. What it does is chosen by the endpoint names passed to `watch`,
//! handled one at a time in order:
//!
//! | endpoint            | behaviour                                                      |
//! |---------------------|----------------------------------------------------------------|
//! | `loop`              | spins forever                                                  |
//! | `bomb`              | allocates memory in 1 MiB chunks forever                       |
//! | `panic`             | panics                                                         |
//! | `connect:HOST:PORT` | opens a plain TCP stream                                       |
//! | `udp:HOST:PORT`     | binds a UDP socket toward the address and sends "ping"         |
//! | `http:URL`          | sends a GET request                                            |
//! | `kv:KEY=VALUE`      | stores the value, reports presence with the value read back    |
//! | `kvget:KEY`         | reports presence with the stored value, or "missing"           |
//! | anything else       | reports presence `available` (note = endpoint) and `active`    |
//!
//! Network commands report `error` with the rendered host error when the host
//! refuses, `requesting` ("connecting") when it accepts, and later `active` or
//! `error` as events arrive. Configuration `crash_on_configure = true` makes
//! `configure` panic; the `wrong-api` feature makes `describe` claim contract
//! version 0.2.0.

mod command;
mod misbehave;

use std::cell::RefCell;
use std::collections::HashMap;

use presence_connector_sdk::{
    self as sdk, Availability, Config, ConfigEntry, ConfigField, ConnectorError, ConnectorStatus,
    EndpointId, EndpointState, Event, FieldKind, Guest, Handle, Header, HostError, PluginInfo,
    PresenceUpdate, PresenceWrite, RichPresence, VendorValue, WebhookRequest, WebhookResponse,
    WsPayload, http, kv, net, render_host_error, report, websocket,
};

use command::Command;

/// The release `describe` claims; `next-version` plays a newer build for
/// hot-reload tests.
#[cfg(not(feature = "next-version"))]
const RELEASE: &str = env!("CARGO_PKG_VERSION");
#[cfg(feature = "next-version")]
const RELEASE: &str = "0.1.1";

/// The contract version `describe` claims.
#[cfg(not(feature = "wrong-api"))]
const CLAIMED_API_VERSION: &str = sdk::API_VERSION;
#[cfg(feature = "wrong-api")]
const CLAIMED_API_VERSION: &str = "0.2.0";

/// What the connector remembers between calls.
#[derive(Default)]
struct State {
    /// The operator's `label`, echoed in presence so tests can see that the
    /// configuration was replayed after a restart.
    label: Option<String>,
    /// Which endpoint asked for each open handle.
    pending: HashMap<Handle, EndpointId>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

/// The exported connector.
struct Chaos;

impl Guest for Chaos {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "chaos".into(),
            version: RELEASE.into(),
            api_version: CLAIMED_API_VERSION.into(),
            description: "Deliberately misbehaving connector for the host's isolation tests".into(),
            config_fields: vec![
                ConfigField {
                    name: "label".into(),
                    label: "Label".into(),
                    description: "Free text echoed in every presence report.".into(),
                    kind: FieldKind::Text,
                    default_value: None,
                    required: false,
                    secret: false,
                },
                ConfigField {
                    name: "crash_on_configure".into(),
                    label: "Crash on configure".into(),
                    description: "Panic in configure, to test quarantine.".into(),
                    kind: FieldKind::Boolean,
                    default_value: Some("false".into()),
                    required: false,
                    secret: false,
                },
            ],
        }
    }

    fn configure(entries: Vec<ConfigEntry>) -> Result<(), ConnectorError> {
        let config = Config::new(entries);
        let label = config.opt_text("label")?.map(str::to_owned);
        if config.opt_boolean("crash_on_configure")?.unwrap_or(false) {
            panic!("chaos: asked to crash in configure");
        }
        STATE.with_borrow_mut(|state| state.label = label);
        report::status(ConnectorStatus::UpAndRunning, None);
        Ok(())
    }

    fn handle_event(event: Event) -> Result<(), ConnectorError> {
        match event {
            Event::StreamConnected(info) => {
                if let Some(endpoint) = pending(info.stream) {
                    report::endpoint_state(&endpoint, EndpointState::Active, Some("connected"));
                }
            }
            Event::StreamClosed(closed) => {
                if let Some(endpoint) = take_pending(closed.handle) {
                    let message = closed.error.as_deref().unwrap_or("closed");
                    report::endpoint_state(&endpoint, EndpointState::Error, Some(message));
                }
            }
            Event::Datagram(datagram) => {
                if let Some(endpoint) = pending(datagram.socket) {
                    let from = &datagram.from;
                    let detail = format!("datagram from {}:{}", from.host, from.port);
                    report::endpoint_state(&endpoint, EndpointState::Active, Some(&detail));
                }
            }
            Event::WebsocketOpened(socket) if pending(socket).is_some() => {
                let _ = websocket::send_text(socket, "hello");
            }
            Event::WebsocketMessage(message) => {
                if let (Some(endpoint), WsPayload::Text(text)) =
                    (pending(message.socket), &message.payload)
                {
                    report_note(&endpoint, text);
                    report::endpoint_state(&endpoint, EndpointState::Active, Some("echoed"));
                }
            }
            Event::WebsocketClosed(closed) => {
                if let Some(endpoint) = take_pending(closed.handle)
                    && let Some(message) = closed.error.as_deref()
                {
                    report::endpoint_state(&endpoint, EndpointState::Error, Some(message));
                }
            }
            Event::HttpResponse(result) => {
                if let Some(endpoint) = take_pending(result.request) {
                    match result.outcome {
                        Ok(response) => {
                            let detail = format!("status {}", response.status);
                            report::endpoint_state(&endpoint, EndpointState::Active, Some(&detail));
                        }
                        Err(message) => {
                            report::endpoint_state(&endpoint, EndpointState::Error, Some(&message));
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn handle_webhook(request: WebhookRequest) -> WebhookResponse {
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/ping") => text_response(200, "pong"),
            ("POST", "/loop") => misbehave::spin(),
            _ => text_response(404, "not found"),
        }
    }

    fn watch(endpoints: Vec<EndpointId>) -> Result<(), ConnectorError> {
        for endpoint in endpoints {
            match Command::parse(&endpoint) {
                Ok(command) => run(&endpoint, command),
                Err(message) => {
                    report::endpoint_state(&endpoint, EndpointState::Error, Some(&message))
                }
            }
        }
        Ok(())
    }

    fn unwatch(_endpoints: Vec<EndpointId>) -> Result<(), ConnectorError> {
        Ok(())
    }

    fn set_presence(endpoint: EndpointId, write: PresenceWrite) -> Result<(), ConnectorError> {
        // Echo the write as presence so a test can see it arrived.
        let (rich, mut raw) = match write {
            PresenceWrite::Set(intent) => {
                let mut raw = vec![vendor("write", "set")];
                if let Some(expires) = intent.expires_in_ms {
                    raw.push(vendor("expires-in-ms", &expires.to_string()));
                }
                let rich = RichPresence {
                    availability: intent.availability,
                    activity: intent.activity,
                    note: intent.note,
                };
                (rich, raw)
            }
            PresenceWrite::Clear => {
                let rich = RichPresence {
                    availability: Availability::Unknown,
                    activity: None,
                    note: None,
                };
                (rich, vec![vendor("write", "clear")])
            }
        };
        raw.extend(label_value());
        report::presence(&PresenceUpdate {
            endpoint,
            observed_at: None,
            sequence: None,
            telephony: None,
            rich: Some(rich),
            raw,
        });
        Ok(())
    }
}

/// Carries out one command for `endpoint`.
fn run(endpoint: &str, command: Command) {
    match command {
        Command::Loop => misbehave::spin(),
        Command::Bomb => misbehave::bomb(),
        Command::Panic => panic!("chaos: asked to panic"),
        Command::Connect(to) => {
            started(
                endpoint,
                net::stream_connect(&to, net::StreamSecurity::Plain),
            );
        }
        Command::Tls(to) => {
            started(endpoint, net::stream_connect(&to, net::StreamSecurity::Tls));
        }
        Command::WebSocket(url) => started(endpoint, websocket::connect(&url, &[])),
        Command::Udp(to) => {
            let sent = net::udp_bind(&to).and_then(|socket| {
                net::udp_send(socket.handle, &to, b"ping")
                    .map(|()| socket.handle)
                    .inspect_err(|_| net::close(socket.handle))
            });
            started(endpoint, sent);
        }
        Command::Http(url) => {
            let request = http::Request {
                method: "GET".into(),
                url,
                headers: Vec::new(),
                body: Vec::new(),
                timeout_ms: None,
            };
            started(endpoint, http::send(&request));
        }
        Command::KvSet { key, value } => {
            match kv::set(&key, value.as_bytes()).and_then(|()| kv::get(&key)) {
                Ok(stored) => report_note(endpoint, &stored_text(stored)),
                Err(error) => report_host_error(endpoint, &error),
            }
        }
        Command::KvGet(key) => match kv::get(&key) {
            Ok(stored) => report_note(endpoint, &stored_text(stored)),
            Err(error) => report_host_error(endpoint, &error),
        },
        Command::Echo => {
            report_note(endpoint, endpoint);
            report::endpoint_state(endpoint, EndpointState::Active, None);
        }
    }
}

/// Reports how starting a network operation went, and remembers its handle
/// so the events that follow can be matched to the endpoint.
fn started(endpoint: &str, result: Result<Handle, HostError>) {
    match result {
        Ok(handle) => {
            remember(handle, endpoint);
            report::endpoint_state(endpoint, EndpointState::Requesting, Some("connecting"));
        }
        Err(error) => report_host_error(endpoint, &error),
    }
}

fn report_host_error(endpoint: &str, error: &HostError) {
    let detail = render_host_error(error);
    report::endpoint_state(endpoint, EndpointState::Error, Some(&detail));
}

/// Reports the endpoint available with `note`.
fn report_note(endpoint: &str, note: &str) {
    report::presence(&PresenceUpdate {
        endpoint: endpoint.into(),
        observed_at: None,
        sequence: None,
        telephony: None,
        rich: Some(RichPresence {
            availability: Availability::Available,
            activity: None,
            note: Some(note.into()),
        }),
        raw: label_value().into_iter().collect(),
    });
}

fn stored_text(stored: Option<Vec<u8>>) -> String {
    stored.map_or_else(
        || "missing".to_owned(),
        |bytes| String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn label_value() -> Option<VendorValue> {
    STATE.with_borrow(|state| state.label.as_deref().map(|label| vendor("label", label)))
}

fn vendor(name: &str, value: &str) -> VendorValue {
    VendorValue {
        name: name.into(),
        value: value.into(),
    }
}

fn remember(handle: Handle, endpoint: &str) {
    STATE.with_borrow_mut(|state| state.pending.insert(handle, endpoint.to_owned()));
}

fn pending(handle: Handle) -> Option<EndpointId> {
    STATE.with_borrow(|state| state.pending.get(&handle).cloned())
}

fn take_pending(handle: Handle) -> Option<EndpointId> {
    STATE.with_borrow_mut(|state| state.pending.remove(&handle))
}

fn text_response(status: u16, body: &str) -> WebhookResponse {
    WebhookResponse {
        status,
        headers: vec![Header {
            name: "content-type".into(),
            value: "text/plain".into(),
        }],
        body: body.as_bytes().to_vec(),
    }
}

sdk::export!(Chaos);
