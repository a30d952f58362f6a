//! The [`Connector`] trait and its effects context [`Cx`].
//!
//! A connector is a plain Rust value with `&mut self` methods. It never calls
//! the host itself: it asks its [`Cx`] to set a timer, send a request, open a
//! WebSocket or report something, and the runtime behind
//! [`register_connector!`](crate::register_connector) carries that out after
//! the method returns. Handles never reach the connector: timers, requests
//! and WebSockets are named by keys of the connector's own types, and what
//! comes back (a timer firing, a response, a message) is delivered by key.
//!
//! Because every host call goes through the [`Host`] trait, the same
//! connector runs natively under the test kit's fake host (feature
//! `testkit`), and its logic can be unit-tested with `cargo test`.

use std::fmt;
use std::hash::Hash;

use crate::config::Config;
use crate::exports::presence::connector::connector::{
    WebhookRequest, WebhookResponse, WebsocketOpen, WsPayload,
};
use crate::presence::connector::instance::InstanceInfo;
use crate::presence::connector::log::Level;
use crate::presence::connector::net::{StreamOptions, UdpSocket};
use crate::presence::connector::websocket::ConnectOptions;
use crate::presence::connector::{http, report};
use crate::types::{
    CloseInfo, ConnectorError, ConnectorStatus, DirectoryEntry, EndpointId, EndpointState, Failure,
    HostError, LoginStep, PluginInfo, PresenceUpdate, RequestId, SocketAddress, SocketId, TimerId,
    WebsocketId, WriteId, WriteOutcome, WriteRequest,
};

/// A presence connector.
///
/// Only [`describe`](Connector::describe) and [`new`](Connector::new) are
/// required; every other method has a default that fits a connector which
/// does not use the feature (events it does not expect are ignored, webhooks
/// answer 404, writes are refused as unsupported).
///
/// The three key types name the connector's timers, HTTP requests and
/// connections (WebSockets, UDP sockets, TCP/TLS streams). Use `()` for a
/// kind the connector never uses, an enum where it has several
/// (`enum Timer { Refresh, Renew(String) }`).
pub trait Connector: Sized + 'static {
    /// Names a logical timer. Setting a key again moves its deadline.
    type TimerKey: Clone + Eq + Hash + fmt::Debug;
    /// Tags an HTTP request; its response comes back with the same key.
    type RequestKey: Clone + Eq + Hash + fmt::Debug;
    /// Names a connection: a WebSocket ([`Cx::ws_connect`]) or a UDP socket
    /// or stream ([`Cx::udp_bind`], [`Cx::stream_connect`]). WebSockets and
    /// UDP sockets/streams are separate namespaces: one key may name a
    /// WebSocket and a stream at once.
    type SocketKey: Clone + Eq + Hash + fmt::Debug;

    /// Name, version, configuration fields, endpoint kinds, capabilities.
    fn describe() -> PluginInfo;

    /// Builds the connector from its first valid configuration. An error
    /// goes back to the host, and the connector stays not configured: until
    /// a later configuration succeeds, `watch`, `unwatch` and `write` answer
    /// `not-configured` and webhooks answer 503.
    fn new(cx: &mut Cx<Self>, config: &Config) -> Result<Self, ConnectorError>;

    /// Applies a changed configuration. The default replaces the connector:
    /// the old one says goodbye ([`on_shutdown`](Connector::on_shutdown)),
    /// its timers and WebSockets are dropped, requests in flight are
    /// forgotten, and [`new`](Connector::new) builds the next one. An error
    /// leaves the connector not configured.
    fn reconfigure(&mut self, cx: &mut Cx<Self>, config: &Config) -> Result<(), ConnectorError> {
        self.on_shutdown(cx);
        cx.reset();
        *self = Self::new(cx, config)?;
        Ok(())
    }

    /// A timer set with [`Cx::set_timer`] is due.
    fn on_timer(&mut self, cx: &mut Cx<Self>, key: Self::TimerKey) {
        let _ = (cx, key);
    }

    /// The outcome of a request sent with [`Cx::http`]. A request the host
    /// refused (a missing grant, a limit) comes back here too, as
    /// [`HttpError::Refused`].
    fn on_http(
        &mut self,
        cx: &mut Cx<Self>,
        key: Self::RequestKey,
        outcome: Result<http::Response, HttpError>,
    ) {
        let _ = (cx, key, outcome);
    }

    /// A WebSocket opened with [`Cx::ws_connect`] is up.
    fn on_ws_open(&mut self, cx: &mut Cx<Self>, key: Self::SocketKey, open: WebsocketOpen) {
        let _ = (cx, key, open);
    }

    /// A message arrived on a WebSocket.
    fn on_ws_message(&mut self, cx: &mut Cx<Self>, key: Self::SocketKey, payload: WsPayload) {
        let _ = (cx, key, payload);
    }

    /// A WebSocket closed, failed to connect, or was refused by the host
    /// (then `close.failure` is [`Failure::Other`] holding the rendered host
    /// error, e.g. `not-granted: wss://push.example.com:443`).
    fn on_ws_closed(&mut self, cx: &mut Cx<Self>, key: Self::SocketKey, close: CloseInfo) {
        let _ = (cx, key, close);
    }

    /// The UDP socket `key` is bound (delivered right after the call that
    /// asked for it, with the local address peers should answer to), or
    /// the stream `key` is connected (`local` is our end of it).
    fn on_net_open(&mut self, cx: &mut Cx<Self>, key: Self::SocketKey, local: SocketAddress) {
        let _ = (cx, key, local);
    }

    /// A datagram from `from` arrived on the UDP socket `key`.
    fn on_datagram(
        &mut self,
        cx: &mut Cx<Self>,
        key: Self::SocketKey,
        from: SocketAddress,
        data: Vec<u8>,
    ) {
        let _ = (cx, key, from, data);
    }

    /// Bytes arrived on the stream `key` (any slice of the byte stream:
    /// the connector does its own framing).
    fn on_stream_data(&mut self, cx: &mut Cx<Self>, key: Self::SocketKey, data: Vec<u8>) {
        let _ = (cx, key, data);
    }

    /// The stream `key` closed or failed to connect, or the host refused
    /// to bind or connect `key` (then `close.failure` is [`Failure::Other`]
    /// holding the rendered host error, e.g. `not-granted: pbx.example.com:5061`).
    /// Not called after [`Cx::net_close`].
    fn on_net_closed(&mut self, cx: &mut Cx<Self>, key: Self::SocketKey, close: CloseInfo) {
        let _ = (cx, key, close);
    }

    /// The instance is stopping (or, with the default
    /// [`reconfigure`](Connector::reconfigure), being replaced): unsubscribe,
    /// say goodbye. What is asked for now is still carried out.
    fn on_shutdown(&mut self, cx: &mut Cx<Self>) {
        let _ = cx;
    }

    /// Answers an inbound request on `/hooks/{instance}/...`. The default
    /// answers 404.
    fn webhook(&mut self, cx: &mut Cx<Self>, request: WebhookRequest) -> WebhookResponse {
        let _ = (cx, request);
        WebhookResponse {
            status: 404,
            headers: Vec::new(),
            body: b"no webhooks here".to_vec(),
        }
    }

    /// Starts watching these endpoints (in addition to those watched).
    fn watch(
        &mut self,
        cx: &mut Cx<Self>,
        endpoints: Vec<EndpointId>,
    ) -> Result<(), ConnectorError> {
        let _ = (cx, endpoints);
        Ok(())
    }

    /// Stops watching these endpoints.
    fn unwatch(
        &mut self,
        cx: &mut Cx<Self>,
        endpoints: Vec<EndpointId>,
    ) -> Result<(), ConnectorError> {
        let _ = (cx, endpoints);
        Ok(())
    }

    /// Starts a write-back. `Ok` means accepted: report exactly one outcome
    /// for it ([`Cx::write_outcome`]), now or later. An error means refused,
    /// and no outcome follows. The default refuses as unsupported.
    fn write(&mut self, cx: &mut Cx<Self>, request: WriteRequest) -> Result<(), ConnectorError> {
        let _ = (cx, request);
        Err(ConnectorError::Unsupported(
            "this connector cannot write presence".into(),
        ))
    }
}

/// Why an HTTP request produced no response.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpError {
    /// The host refused to send it (a missing grant, a limit, a bad URL).
    Refused(HostError),
    /// It was sent and failed: DNS, refused connection, timeout, TLS.
    Failed(Failure),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused(error) => write!(
                f,
                "refused by the host: {}",
                crate::render_host_error(error)
            ),
            Self::Failed(failure) => f.write_str(&crate::render_failure(failure)),
        }
    }
}

/// Something the connector tells the hub (the `report` interface).
// Nearly every report is a presence update; boxing it saves nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Presence(PresenceUpdate),
    EndpointState {
        endpoint: EndpointId,
        state: EndpointState,
        detail: Option<String>,
    },
    Status {
        status: ConnectorStatus,
        detail: Option<String>,
    },
    LoginStep(Option<LoginStep>),
    Directory {
        entries: Vec<DirectoryEntry>,
        complete: bool,
    },
    WriteOutcome {
        write: WriteId,
        outcome: WriteOutcome,
    },
}

/// One thing a connector asked for, carried out after its method returns.
pub enum Effect<C: Connector> {
    SetTimer(C::TimerKey, u64),
    CancelTimer(C::TimerKey),
    Http(C::RequestKey, http::Request),
    CancelHttp(C::RequestKey),
    WsConnect(C::SocketKey, String, ConnectOptions),
    WsSend(C::SocketKey, WsPayload),
    WsClose(C::SocketKey, u16, String),
    UdpBind(C::SocketKey, SocketAddress),
    UdpSend(C::SocketKey, SocketAddress, Vec<u8>),
    StreamConnect(C::SocketKey, SocketAddress, StreamOptions),
    StreamSend(C::SocketKey, Vec<u8>),
    NetClose(C::SocketKey),
    Report(Report),
    Log(Level, String),
    /// Drop every timer, WebSocket, UDP socket and stream; forget requests
    /// in flight.
    Reset,
}

impl<C: Connector> fmt::Debug for Effect<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SetTimer(key, ms) => write!(f, "SetTimer({key:?}, {ms})"),
            Self::CancelTimer(key) => write!(f, "CancelTimer({key:?})"),
            Self::Http(key, request) => {
                write!(f, "Http({key:?}, {} {})", request.method, request.url)
            }
            Self::CancelHttp(key) => write!(f, "CancelHttp({key:?})"),
            Self::WsConnect(key, url, _) => write!(f, "WsConnect({key:?}, {url})"),
            Self::WsSend(key, payload) => write!(f, "WsSend({key:?}, {payload:?})"),
            Self::WsClose(key, code, reason) => write!(f, "WsClose({key:?}, {code}, {reason})"),
            Self::UdpBind(key, toward) => {
                write!(f, "UdpBind({key:?}, {}:{})", toward.host, toward.port)
            }
            Self::UdpSend(key, to, data) => {
                write!(
                    f,
                    "UdpSend({key:?}, {}:{}, {} bytes)",
                    to.host,
                    to.port,
                    data.len()
                )
            }
            Self::StreamConnect(key, to, options) => write!(
                f,
                "StreamConnect({key:?}, {}:{}, {:?})",
                to.host, to.port, options.security
            ),
            Self::StreamSend(key, data) => write!(f, "StreamSend({key:?}, {} bytes)", data.len()),
            Self::NetClose(key) => write!(f, "NetClose({key:?})"),
            Self::Report(report) => write!(f, "Report({report:?})"),
            Self::Log(level, message) => write!(f, "Log({level:?}, {message})"),
            Self::Reset => f.write_str("Reset"),
        }
    }
}

/// Every host call the SDK makes, as a trait: the component implements it
/// over the WIT imports, the test kit over in-memory fakes.
pub trait Host {
    fn now(&mut self) -> u64;
    fn log(&mut self, level: Level, message: &str);
    fn instance_info(&mut self) -> InstanceInfo;
    fn random_bytes(&mut self, len: u32) -> Vec<u8>;
    fn set_timer(&mut self, after_ms: u64) -> TimerId;
    fn cancel_timer(&mut self, timer: TimerId);
    fn http_send(&mut self, request: &http::Request) -> Result<RequestId, HostError>;
    fn http_cancel(&mut self, request: RequestId);
    fn ws_connect(&mut self, url: &str, options: &ConnectOptions)
    -> Result<WebsocketId, HostError>;
    fn ws_send(&mut self, socket: WebsocketId, payload: &WsPayload) -> Result<(), HostError>;
    fn ws_close(&mut self, socket: WebsocketId, code: u16, reason: &str);
    fn kv_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, HostError>;
    fn kv_set(&mut self, key: &str, value: &[u8]) -> Result<(), HostError>;
    fn kv_delete(&mut self, key: &str) -> Result<(), HostError>;
    fn kv_list(&mut self, prefix: &str) -> Result<Vec<String>, HostError>;
    fn udp_bind(&mut self, toward: &SocketAddress) -> Result<UdpSocket, HostError>;
    fn udp_send(
        &mut self,
        socket: SocketId,
        to: &SocketAddress,
        data: &[u8],
    ) -> Result<(), HostError>;
    fn stream_connect(
        &mut self,
        to: &SocketAddress,
        options: StreamOptions,
    ) -> Result<SocketId, HostError>;
    fn stream_send(&mut self, socket: SocketId, data: &[u8]) -> Result<(), HostError>;
    fn net_close(&mut self, socket: SocketId);
    fn report(&mut self, report: Report);
}

/// The effects context a connector's methods receive: the clock, the
/// key-value store and the instance facts, which answer at once, and an
/// outbox for everything else (timers, HTTP, WebSockets, UDP sockets and
/// streams, reports, log lines), which the runtime carries out in order when
/// the method returns.
pub struct Cx<'h, C: Connector> {
    host: &'h mut dyn Host,
    now: u64,
    outbox: Vec<Effect<C>>,
}

impl<'h, C: Connector> Cx<'h, C> {
    /// A context over `host`, reading its clock once. The runtime makes one
    /// per call; a unit test may make one over the test kit's fake host and
    /// inspect [`take_effects`](Cx::take_effects).
    pub fn new(host: &'h mut dyn Host) -> Self {
        let now = host.now();
        Self {
            host,
            now,
            outbox: Vec::new(),
        }
    }

    /// What was asked for so far, in order; the outbox is left empty.
    pub fn take_effects(&mut self) -> Vec<Effect<C>> {
        std::mem::take(&mut self.outbox)
    }

    /// Wall-clock time when the call began, Unix milliseconds.
    pub fn now(&self) -> u64 {
        self.now
    }

    fn push(&mut self, effect: Effect<C>) {
        self.outbox.push(effect);
    }

    // ---- timers -------------------------------------------------------

    /// Fires [`Connector::on_timer`] with `key` after `after_ms`; a timer
    /// already set with this key is moved. There is no limit on keys: the
    /// runtime multiplexes them on one host timer.
    pub fn set_timer(&mut self, key: C::TimerKey, after_ms: u64) {
        self.push(Effect::SetTimer(key, after_ms));
    }

    /// Cancels the timer with this key, if set.
    pub fn cancel_timer(&mut self, key: C::TimerKey) {
        self.push(Effect::CancelTimer(key));
    }

    // ---- HTTP ---------------------------------------------------------

    /// Sends a request; [`Connector::on_http`] gets its outcome with `key`.
    /// Several requests may share a key.
    pub fn http(&mut self, key: C::RequestKey, request: impl Into<http::Request>) {
        self.push(Effect::Http(key, request.into()));
    }

    /// Abandons every request in flight with this key; no outcome follows.
    pub fn cancel_http(&mut self, key: C::RequestKey) {
        self.push(Effect::CancelHttp(key));
    }

    // ---- WebSockets ----------------------------------------------------

    /// Opens a WebSocket named `key` (closing one already open under it);
    /// [`Connector::on_ws_open`] or [`Connector::on_ws_closed`] follows.
    pub fn ws_connect(
        &mut self,
        key: C::SocketKey,
        url: impl Into<String>,
        options: impl Into<ConnectOptions>,
    ) {
        self.push(Effect::WsConnect(key, url.into(), options.into()));
    }

    /// Sends text on the WebSocket `key`; dropped with a warning when none
    /// is open under that key.
    pub fn ws_send_text(&mut self, key: C::SocketKey, text: impl Into<String>) {
        self.push(Effect::WsSend(key, WsPayload::Text(text.into())));
    }

    /// Sends bytes on the WebSocket `key`.
    pub fn ws_send_binary(&mut self, key: C::SocketKey, data: Vec<u8>) {
        self.push(Effect::WsSend(key, WsPayload::Binary(data)));
    }

    /// Closes the WebSocket `key`; `on_ws_closed` follows when the peer
    /// answers.
    pub fn ws_close(&mut self, key: C::SocketKey, code: u16, reason: impl Into<String>) {
        self.push(Effect::WsClose(key, code, reason.into()));
    }

    /// Drops every timer, WebSocket, UDP socket and stream and forgets the
    /// requests in flight (they run on; their outcomes are not delivered). The default
    /// [`Connector::reconfigure`] uses it between the old and the new
    /// connector.
    pub fn reset(&mut self) {
        self.push(Effect::Reset);
    }

    // ---- key-value store (answers at once) ------------------------------

    pub fn kv_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        self.host.kv_get(key)
    }

    pub fn kv_set(&mut self, key: &str, value: &[u8]) -> Result<(), HostError> {
        self.host.kv_set(key, value)
    }

    pub fn kv_delete(&mut self, key: &str) -> Result<(), HostError> {
        self.host.kv_delete(key)
    }

    /// Keys that start with `prefix`, sorted.
    pub fn kv_list(&mut self, prefix: &str) -> Result<Vec<String>, HostError> {
        self.host.kv_list(prefix)
    }

    // ---- instance ------------------------------------------------------

    pub fn instance_info(&mut self) -> InstanceInfo {
        self.host.instance_info()
    }

    /// `len` bytes (at most 4096) from the host's cryptographic generator.
    pub fn random_bytes(&mut self, len: u32) -> Vec<u8> {
        self.host.random_bytes(len)
    }

    // ---- UDP sockets and streams (keyed, like WebSockets) ---------------

    /// Binds a UDP socket named `key` for talking to `toward` (closing one
    /// already open under it). [`Connector::on_net_open`] follows with the
    /// local address, or [`Connector::on_net_closed`] if the host refuses;
    /// datagrams arrive in [`Connector::on_datagram`].
    pub fn udp_bind(&mut self, key: C::SocketKey, toward: SocketAddress) {
        self.push(Effect::UdpBind(key, toward));
    }

    /// Sends one datagram to `to` from the UDP socket `key`; dropped with a
    /// warning when none is bound under that key or the host refuses it.
    pub fn udp_send(&mut self, key: C::SocketKey, to: SocketAddress, data: impl Into<Vec<u8>>) {
        self.push(Effect::UdpSend(key, to, data.into()));
    }

    /// Opens a TCP or TLS stream named `key` to `to` (closing one already
    /// open under it). [`Connector::on_net_open`] or
    /// [`Connector::on_net_closed`] follows; bytes arrive in
    /// [`Connector::on_stream_data`].
    pub fn stream_connect(&mut self, key: C::SocketKey, to: SocketAddress, options: StreamOptions) {
        self.push(Effect::StreamConnect(key, to, options));
    }

    /// Queues bytes on the stream `key` (the host sends them once it is
    /// connected); dropped with a warning when none is open under that key.
    pub fn stream_send(&mut self, key: C::SocketKey, data: impl Into<Vec<u8>>) {
        self.push(Effect::StreamSend(key, data.into()));
    }

    /// Closes the UDP socket or stream `key`, after what was queued before;
    /// no event for it follows.
    pub fn net_close(&mut self, key: C::SocketKey) {
        self.push(Effect::NetClose(key));
    }

    // ---- reports -------------------------------------------------------

    /// Reports anything, as a [`Report`] value (for a core that returns
    /// its reports rather than calling the context).
    pub fn report(&mut self, report: Report) {
        self.push(Effect::Report(report));
    }

    /// Reports a presence update (see [`crate::Presence`] for a builder).
    pub fn presence(&mut self, update: impl Into<PresenceUpdate>) {
        self.push(Effect::Report(Report::Presence(update.into())));
    }

    pub fn endpoint_state(
        &mut self,
        endpoint: impl Into<EndpointId>,
        state: EndpointState,
        detail: Option<&str>,
    ) {
        self.push(Effect::Report(Report::EndpointState {
            endpoint: endpoint.into(),
            state,
            detail: detail.map(Into::into),
        }));
    }

    pub fn status(&mut self, status: ConnectorStatus, detail: Option<&str>) {
        self.push(Effect::Report(Report::Status {
            status,
            detail: detail.map(Into::into),
        }));
    }

    /// Sets (or clears, with `None`) the login step an operator must take.
    pub fn login_step(&mut self, step: Option<LoginStep>) {
        self.push(Effect::Report(Report::LoginStep(step)));
    }

    /// A page of the source's user directory; `complete` marks the last.
    pub fn directory(&mut self, entries: Vec<DirectoryEntry>, complete: bool) {
        self.push(Effect::Report(Report::Directory { entries, complete }));
    }

    /// What became of an accepted write.
    pub fn write_outcome(&mut self, write: WriteId, outcome: WriteOutcome) {
        self.push(Effect::Report(Report::WriteOutcome { write, outcome }));
    }

    /// A line for the hub's log, in order with the reports.
    pub fn log(&mut self, level: Level, message: impl Into<String>) {
        self.push(Effect::Log(level, message.into()));
    }

    pub fn debug(&mut self, message: impl Into<String>) {
        self.log(Level::Debug, message);
    }

    pub fn info(&mut self, message: impl Into<String>) {
        self.log(Level::Info, message);
    }

    pub fn warn(&mut self, message: impl Into<String>) {
        self.log(Level::Warn, message);
    }

    pub fn error(&mut self, message: impl Into<String>) {
        self.log(Level::Error, message);
    }
}

/// The component's host: the WIT imports. Outside a component (native
/// builds) the imports exist but panic when called.
#[derive(Debug, Default)]
pub struct WitHost;

impl Host for WitHost {
    fn now(&mut self) -> u64 {
        crate::timers::now()
    }
    fn log(&mut self, level: Level, message: &str) {
        crate::log::log(level, message)
    }
    fn instance_info(&mut self) -> InstanceInfo {
        crate::instance::info()
    }
    fn random_bytes(&mut self, len: u32) -> Vec<u8> {
        crate::instance::random_bytes(len)
    }
    fn set_timer(&mut self, after_ms: u64) -> TimerId {
        crate::timers::set_timer(after_ms)
    }
    fn cancel_timer(&mut self, timer: TimerId) {
        crate::timers::cancel(timer)
    }
    fn http_send(&mut self, request: &http::Request) -> Result<RequestId, HostError> {
        http::send(request)
    }
    fn http_cancel(&mut self, request: RequestId) {
        http::cancel(request)
    }
    fn ws_connect(
        &mut self,
        url: &str,
        options: &ConnectOptions,
    ) -> Result<WebsocketId, HostError> {
        crate::websocket::connect(url, options)
    }
    fn ws_send(&mut self, socket: WebsocketId, payload: &WsPayload) -> Result<(), HostError> {
        match payload {
            WsPayload::Text(text) => crate::websocket::send_text(socket, text),
            WsPayload::Binary(data) => crate::websocket::send_binary(socket, data),
        }
    }
    fn ws_close(&mut self, socket: WebsocketId, code: u16, reason: &str) {
        crate::websocket::close(socket, code, reason)
    }
    fn kv_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        crate::kv::get(key)
    }
    fn kv_set(&mut self, key: &str, value: &[u8]) -> Result<(), HostError> {
        crate::kv::set(key, value)
    }
    fn kv_delete(&mut self, key: &str) -> Result<(), HostError> {
        crate::kv::delete(key)
    }
    fn kv_list(&mut self, prefix: &str) -> Result<Vec<String>, HostError> {
        crate::kv::list_keys(prefix)
    }
    fn udp_bind(&mut self, toward: &SocketAddress) -> Result<UdpSocket, HostError> {
        crate::net::udp_bind(toward)
    }
    fn udp_send(
        &mut self,
        socket: SocketId,
        to: &SocketAddress,
        data: &[u8],
    ) -> Result<(), HostError> {
        crate::net::udp_send(socket, to, data)
    }
    fn stream_connect(
        &mut self,
        to: &SocketAddress,
        options: StreamOptions,
    ) -> Result<SocketId, HostError> {
        crate::net::stream_connect(to, options)
    }
    fn stream_send(&mut self, socket: SocketId, data: &[u8]) -> Result<(), HostError> {
        crate::net::stream_send(socket, data)
    }
    fn net_close(&mut self, socket: SocketId) {
        crate::net::close(socket)
    }
    fn report(&mut self, item: Report) {
        match item {
            Report::Presence(update) => report::presence(&update),
            Report::EndpointState {
                endpoint,
                state,
                detail,
            } => report::endpoint_state(&endpoint, state, detail.as_deref()),
            Report::Status { status, detail } => report::status(status, detail.as_deref()),
            Report::LoginStep(step) => report::login_step(step.as_ref()),
            Report::Directory { entries, complete } => report::directory(&entries, complete),
            Report::WriteOutcome { write, outcome } => report::write_outcome(write, &outcome),
        }
    }
}
