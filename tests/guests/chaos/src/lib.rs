//! `chaos`: a deliberately misbehaving connector for the host's isolation
//! tests, and a probe of the contract's host functions for its end-to-end
//! tests. What it does is chosen by the endpoint names passed to `watch`,
//! handled one at a time in order:
//!
//! | endpoint            | behaviour                                                      |
//! |---------------------|----------------------------------------------------------------|
//! | `loop`              | spins forever                                                  |
//! | `bomb`              | allocates memory in 1 MiB chunks forever                       |
//! | `panic`             | panics                                                         |
//! | `connect:HOST:PORT` | opens a plain TCP stream                                       |
//! | `tls:HOST:PORT`     | opens a TLS stream (certificate checked by the host)           |
//! | `udp:HOST:PORT`     | binds a UDP socket toward the address and sends "ping"         |
//! | `http:URL`          | sends a GET request                                            |
//! | `ws:URL`            | opens a WebSocket (subprotocol `chaos.v1`, pings every 200 ms, |
//! |                     | pong timeout 400 ms), sends "hello", reports replies as notes  |
//! | `kv:KEY=VALUE`      | stores the value, reports presence with the value read back    |
//! | `kvget:KEY`         | reports presence with the stored value, or "missing"           |
//! | `info`              | reports presence, note `id=<id> hooks=<url or none> hub=<ver>` |
//! | `random`            | reports presence, note = 16 random bytes in hex                |
//! | anything else       | reports presence `available` (note = endpoint) and `active`    |
//!
//! Network commands report `error` with the rendered host error when the host
//! refuses, `requesting` ("connecting") when it accepts, and later, as events
//! arrive:
//!
//! - stream connected: `active` "connected"; datagram: `active`
//!   "datagram from HOST:PORT"; HTTP answer: `active` "status N";
//! - WebSocket opened: `active` "opened subprotocol=<chosen or none>"; each
//!   text message: presence with the text as note (the state is left alone,
//!   so a test can still read the "opened" detail);
//! - stream or WebSocket closed: `error`
//!   "closed code=<code or none> reason=<reason> failure=<failure or none>";
//!   failed HTTP request: `error` "failure=<failure>", where a failure reads
//!   `kind` or `kind: detail` in the contract's words (`refused`,
//!   `tls-certificate: <text>`, `upgrade-refused: status 403`, ...).
//!
//! Writes always succeed: `set` reports outcome `applied`, then the written
//! presence marked as the echo of the write; `restore` reports `restored`,
//! then the last presence chaos reported for the endpoint on its own (or
//! `unknown`), also marked as the echo.
//!
//! Configuration `crash_on_configure = true` makes `configure` panic. The
//! `next-version` feature makes `describe` claim release 0.1.1. (A component
//! of an unknown contract version is `tests/guests/unknown-version`.)

mod command;
mod misbehave;
mod render;

use std::cell::RefCell;
use std::collections::HashMap;

use presence_connector_sdk::{
    self as sdk, Availability, Capabilities, Channels, Config, ConfigEntry, ConfigField,
    ConnectorError, ConnectorStatus, DndScope, EndpointId, EndpointKind, EndpointState, Event,
    FieldKind, Guest, Header, HostError, PluginInfo, PresenceUpdate, RequestId, RichPresence,
    SocketId, UpdateOrigin, VendorValue, WebhookRequest, WebhookResponse, WebsocketId, WriteAction,
    WriteOutcome, WriteRequest, WsPayload, http, instance, kv, net, render_host_error, report,
    websocket,
};

use command::Command;

/// The release `describe` claims; `next-version` plays a newer build for
/// hot-reload tests.
#[cfg(not(feature = "next-version"))]
const RELEASE: &str = env!("CARGO_PKG_VERSION");
#[cfg(feature = "next-version")]
const RELEASE: &str = "0.1.1";

/// The subprotocol `ws:` offers, so tests can see the server's choice.
const WS_SUBPROTOCOL: &str = "chaos.v1";
/// Ping interval and pong timeout of `ws:`; short, so a test of a silent
/// peer finishes quickly.
const WS_PING_INTERVAL_MS: u32 = 200;
const WS_PONG_TIMEOUT_MS: u32 = 400;
/// How many bytes `random` asks for.
const RANDOM_LEN: u32 = 16;

/// An open handle. The contract numbers each kind separately, so a socket
/// and a request may share a number: the kind is part of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Handle {
    Socket(SocketId),
    Request(RequestId),
    WebSocket(WebsocketId),
}

/// What the connector remembers between calls.
#[derive(Default)]
struct State {
    /// The operator's `label`, echoed in presence so tests can see that the
    /// configuration was replayed after a restart.
    label: Option<String>,
    /// Which endpoint asked for each open handle.
    pending: HashMap<Handle, EndpointId>,
    /// The last presence chaos reported for each endpoint on its own (not
    /// as a write's echo): what `restore` puts back.
    own: HashMap<EndpointId, RichPresence>,
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
            // Any name is a command or an echo, so users can be mapped by
            // the well-known attribute every user has.
            endpoint_kinds: vec![EndpointKind {
                attribute: "username".into(),
                label: "Username (or a chaos command)".into(),
                feeds: Channels::RICH,
            }],
            capabilities: Capabilities {
                writes: Channels::RICH,
                dnd_scopes: vec![DndScope::AllCalls, DndScope::QueueCalls],
                restore: true,
                // It echoes `expires-in-ms` but does not keep or lapse the
                // state itself.
                expiry: false,
                webhooks: true,
                // Events are handled one by one either way; declaring batches
                // lets the host's batching path be tested.
                batched_events: true,
            },
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

    fn handle_events(events: Vec<Event>) -> Result<(), ConnectorError> {
        events.into_iter().for_each(handle_event);
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

    fn write_presence(request: WriteRequest) -> Result<(), ConnectorError> {
        let WriteRequest {
            id,
            endpoint,
            action,
        } = request;
        // The outcome comes first, then the echo, as a platform that confirms
        // a write before notifying its change would do.
        let (rich, mut raw) = match action {
            WriteAction::Set(intent) => {
                report::write_outcome(id, &WriteOutcome::Applied);
                let mut raw = vec![vendor("write", "set")];
                if let Some(expires) = intent.expires_in_ms {
                    raw.push(vendor("expires-in-ms", &expires.to_string()));
                }
                if let Some(scope) = intent.dnd_scope {
                    let scope = match scope {
                        DndScope::AllCalls => "all-calls",
                        DndScope::QueueCalls => "queue-calls",
                    };
                    raw.push(vendor("dnd-scope", scope));
                }
                let rich = RichPresence {
                    availability: intent.availability,
                    activity: intent.activity,
                    note: intent.note,
                };
                (rich, raw)
            }
            WriteAction::Restore => {
                report::write_outcome(id, &WriteOutcome::Restored);
                let own = STATE.with_borrow(|state| state.own.get(&endpoint).cloned());
                let rich = own.unwrap_or(RichPresence {
                    availability: Availability::Unknown,
                    activity: None,
                    note: None,
                });
                (rich, vec![vendor("write", "restore")])
            }
        };
        raw.extend(label_value());
        report::presence(&PresenceUpdate {
            endpoint,
            observed_at: None,
            ordering: None,
            origin: UpdateOrigin::HubWrite(id),
            telephony: None,
            rich: Some(rich),
            calendar: None,
            valid_for_ms: None,
            raw,
        });
        Ok(())
    }
}

/// Reports what one event means for the endpoint that opened its handle.
/// Events for handles chaos no longer tracks are ignored.
fn handle_event(event: Event) {
    match event {
        Event::StreamConnected(info) => {
            if let Some(endpoint) = pending(Handle::Socket(info.socket)) {
                report::endpoint_state(&endpoint, EndpointState::Active, Some("connected"));
            }
        }
        Event::StreamClosed(closed) => {
            if let Some(endpoint) = take_pending(Handle::Socket(closed.socket)) {
                let detail = render::close(&closed.close);
                report::endpoint_state(&endpoint, EndpointState::Error, Some(&detail));
            }
        }
        Event::Datagram(datagram) => {
            if let Some(endpoint) = pending(Handle::Socket(datagram.socket)) {
                let from = &datagram.from;
                let detail = format!("datagram from {}:{}", from.host, from.port);
                report::endpoint_state(&endpoint, EndpointState::Active, Some(&detail));
            }
        }
        Event::WebsocketOpened(open) => {
            if let Some(endpoint) = pending(Handle::WebSocket(open.socket)) {
                let detail = render::opened(open.subprotocol.as_deref());
                report::endpoint_state(&endpoint, EndpointState::Active, Some(&detail));
                if let Err(error) = websocket::send_text(open.socket, "hello") {
                    report_host_error(&endpoint, &error);
                }
            }
        }
        Event::WebsocketMessage(message) => {
            if let (Some(endpoint), WsPayload::Text(text)) =
                (pending(Handle::WebSocket(message.socket)), &message.payload)
            {
                report_note(&endpoint, text);
            }
        }
        Event::WebsocketClosed(closed) => {
            if let Some(endpoint) = take_pending(Handle::WebSocket(closed.socket)) {
                let detail = render::close(&closed.close);
                report::endpoint_state(&endpoint, EndpointState::Error, Some(&detail));
            }
        }
        Event::HttpResponse(result) => {
            if let Some(endpoint) = take_pending(Handle::Request(result.request)) {
                match result.outcome {
                    Ok(response) => {
                        let detail = format!("status {}", response.status);
                        report::endpoint_state(&endpoint, EndpointState::Active, Some(&detail));
                    }
                    Err(failure) => {
                        let detail = render::request_failure(&failure);
                        report::endpoint_state(&endpoint, EndpointState::Error, Some(&detail));
                    }
                }
            }
        }
        Event::StreamData(_) | Event::Timer(_) | Event::Shutdown => {}
    }
}

/// Carries out one command for `endpoint`.
fn run(endpoint: &str, command: Command) {
    match command {
        Command::Loop => misbehave::spin(),
        Command::Bomb => misbehave::bomb(),
        Command::Panic => panic!("chaos: asked to panic"),
        Command::Connect(to) => connect_stream(endpoint, &to, net::StreamSecurity::Plain),
        Command::Tls(to) => connect_stream(endpoint, &to, net::StreamSecurity::Tls),
        Command::WebSocket(url) => {
            let options = websocket::ConnectOptions {
                headers: Vec::new(),
                subprotocols: vec![WS_SUBPROTOCOL.into()],
                connect_timeout_ms: None,
                ping_interval_ms: Some(WS_PING_INTERVAL_MS),
                pong_timeout_ms: Some(WS_PONG_TIMEOUT_MS),
            };
            let opened = websocket::connect(&url, &options).map(Handle::WebSocket);
            started(endpoint, opened);
        }
        Command::Udp(to) => {
            let sent = net::udp_bind(&to).and_then(|bound| {
                net::udp_send(bound.socket, &to, b"ping")
                    .map(|()| Handle::Socket(bound.socket))
                    .inspect_err(|_| net::close(bound.socket))
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
            started(endpoint, http::send(&request).map(Handle::Request));
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
        Command::Info => {
            let info = instance::info();
            let hooks = info.webhook_base_url.as_deref().unwrap_or("none");
            let note = format!("id={} hooks={hooks} hub={}", info.id, info.hub_version);
            report_note(endpoint, &note);
            report::endpoint_state(endpoint, EndpointState::Active, None);
        }
        Command::Random => {
            let bytes = instance::random_bytes(RANDOM_LEN);
            report_note(endpoint, &render::hex(&bytes));
            report::endpoint_state(endpoint, EndpointState::Active, None);
        }
        Command::Echo => {
            report_note(endpoint, endpoint);
            report::endpoint_state(endpoint, EndpointState::Active, None);
        }
    }
}

fn connect_stream(endpoint: &str, to: &sdk::SocketAddress, security: net::StreamSecurity) {
    let options = net::StreamOptions {
        security,
        connect_timeout_ms: None,
    };
    started(
        endpoint,
        net::stream_connect(to, options).map(Handle::Socket),
    );
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

/// Reports the endpoint available with `note`, as the platform's own state,
/// and remembers it for `restore`.
fn report_note(endpoint: &str, note: &str) {
    let rich = RichPresence {
        availability: Availability::Available,
        activity: None,
        note: Some(note.into()),
    };
    STATE.with_borrow_mut(|state| state.own.insert(endpoint.to_owned(), rich.clone()));
    report::presence(&PresenceUpdate {
        endpoint: endpoint.into(),
        observed_at: None,
        ordering: None,
        origin: UpdateOrigin::Platform,
        telephony: None,
        rich: Some(rich),
        calendar: None,
        valid_for_ms: None,
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
