//! The test kit (feature `testkit`): one connector, in-process, under a
//! minimal fake host, so a connector is tested with `cargo test` and no hub.
//!
//! [`TestHub`] drives the connector through the same [`Runtime`] the
//! component uses (so keyed timers, handle maps and refusals behave as they
//! will in the hub) over a [`FakeHost`] that records what the connector does
//! and answers from scripts:
//!
//! ```ignore
//! use presence_connector_sdk::testkit::{TestHub, response};
//!
//! let mut hub = TestHub::<MyConnector>::new();
//! hub.script_http("GET", "/presence", response(200, r#"{"status":"busy"}"#));
//! hub.configure(&[("server", "https://pbx.example.com".into())]).unwrap();
//! hub.watch(&["201"]).unwrap();
//! hub.advance(30_000); // fires the poll timer; the scripted answer is delivered
//! assert_eq!(hub.presence().len(), 1);
//! ```
//!
//! Time only moves when the test says so ([`TestHub::advance`]); scripted
//! HTTP answers are delivered as soon as a call returns; everything else
//! (WebSocket messages, datagrams, stream bytes, timers, webhooks) happens
//! when the test calls it.

use std::collections::BTreeMap;

use crate::connector::{Connector, Host, Report};
use crate::exports::presence::connector::connector::{
    Datagram, Event, HttpResult, StreamClosed, StreamData, StreamInfo, WebhookRequest,
    WebhookResponse, WebsocketClosed, WebsocketOpen, WsMessage, WsPayload,
};
use crate::presence::connector::http;
use crate::presence::connector::instance::InstanceInfo;
use crate::presence::connector::log::Level;
use crate::presence::connector::net::{StreamOptions, UdpSocket};
use crate::presence::connector::websocket::ConnectOptions;
use crate::runtime::Runtime;
use crate::types::{
    CloseInfo, ConfigEntry, ConfigValue, ConnectorError, ConnectorStatus, EndpointId,
    EndpointState, Failure, Header, HostError, PresenceUpdate, RequestId, SocketAddress, SocketId,
    TimerId, WebsocketId, WriteOutcome, WriteRequest,
};

/// Start of the fake clock: 2026-01-01T00:00:00Z.
pub const EPOCH_MS: u64 = 1_767_225_600_000;

/// A request the connector sent.
#[derive(Debug, Clone, PartialEq)]
pub struct SentRequest {
    pub id: RequestId,
    pub request: http::Request,
    /// Whether an outcome was delivered (or it was cancelled).
    pub done: bool,
}

impl SentRequest {
    /// The body as text (lossy UTF-8).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.request.body).into_owned()
    }

    /// The first header of this name, ignoring case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.request
            .headers
            .iter()
            .find(|header| header.name.eq_ignore_ascii_case(name))
            .map(|header| header.value.as_str())
    }
}

/// A WebSocket the connector opened.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeSocket {
    pub id: WebsocketId,
    pub url: String,
    pub options: ConnectOptions,
    /// What the connector sent on it, in order.
    pub sent: Vec<WsPayload>,
    /// The code and reason the connector closed it with.
    pub closed_by_connector: Option<(u16, String)>,
    /// Whether the test closed it (or it was never opened).
    pub gone: bool,
}

struct Script {
    method: String,
    url_contains: String,
    outcome: Result<http::Response, Failure>,
    /// `None`: answers every matching request.
    remaining: Option<usize>,
}

/// The fake host: a controllable clock, timers, HTTP and WebSocket fakes,
/// an in-memory key-value store, and a record of reports and log lines.
pub struct FakeHost {
    pub now: u64,
    next_handle: u32,
    /// Host timers set and not yet fired or cancelled: (fires at, id).
    pub timers: Vec<(u64, TimerId)>,
    pub requests: Vec<SentRequest>,
    pub sockets: Vec<FakeSocket>,
    pub kv: BTreeMap<String, Vec<u8>>,
    /// UDP sockets bound: (socket, toward).
    pub udp: Vec<(SocketId, SocketAddress)>,
    /// Datagrams sent: (socket, to, bytes).
    pub datagrams: Vec<(SocketId, SocketAddress, Vec<u8>)>,
    /// Streams opened: (socket, to).
    pub streams: Vec<(SocketId, SocketAddress)>,
    /// Bytes queued on streams: (socket, bytes).
    pub stream_sent: Vec<(SocketId, Vec<u8>)>,
    /// UDP sockets and streams the connector closed.
    pub net_closed: Vec<SocketId>,
    pub reports: Vec<Report>,
    pub logs: Vec<(Level, String)>,
    pub instance: InstanceInfo,
    /// URLs (by prefix) the host refuses, with the error it returns; UDP
    /// binds and streams are matched as `host:port`.
    pub refusals: Vec<(String, HostError)>,
    scripts: Vec<Script>,
    random_counter: u8,
    /// UDP sockets and streams the test ended (the server's side).
    dropped: Vec<SocketId>,
}

impl Default for FakeHost {
    fn default() -> Self {
        Self {
            now: EPOCH_MS,
            next_handle: 0,
            timers: Vec::new(),
            requests: Vec::new(),
            sockets: Vec::new(),
            kv: BTreeMap::new(),
            udp: Vec::new(),
            datagrams: Vec::new(),
            streams: Vec::new(),
            stream_sent: Vec::new(),
            net_closed: Vec::new(),
            reports: Vec::new(),
            logs: Vec::new(),
            instance: InstanceInfo {
                id: "test".into(),
                webhook_base_url: Some("https://hub.example.com/hooks/test".into()),
                hub_version: "test".into(),
            },
            refusals: Vec::new(),
            scripts: Vec::new(),
            random_counter: 0,
            dropped: Vec::new(),
        }
    }
}

impl FakeHost {
    /// Whether the UDP socket or stream `id` is still open on both sides.
    fn net_open(&self, id: SocketId) -> bool {
        !self.net_closed.contains(&id) && !self.dropped.contains(&id)
    }

    fn handle(&mut self) -> u32 {
        self.next_handle += 1;
        self.next_handle
    }

    fn refusal(&self, url: &str) -> Option<HostError> {
        self.refusals
            .iter()
            .find(|(prefix, _)| url.starts_with(prefix.as_str()))
            .map(|(_, error)| error.clone())
    }

    /// The first unanswered request a script matches, and the outcome.
    fn scripted(&mut self) -> Option<(RequestId, Result<http::Response, Failure>)> {
        for sent in self.requests.iter_mut().filter(|sent| !sent.done) {
            let script = self.scripts.iter_mut().find(|script| {
                script.remaining != Some(0)
                    && script.method.eq_ignore_ascii_case(&sent.request.method)
                    && sent.request.url.contains(&script.url_contains)
            });
            if let Some(script) = script {
                if let Some(remaining) = script.remaining.as_mut() {
                    *remaining -= 1;
                }
                sent.done = true;
                return Some((sent.id, script.outcome.clone()));
            }
        }
        None
    }
}

impl Host for FakeHost {
    fn now(&mut self) -> u64 {
        self.now
    }
    fn log(&mut self, level: Level, message: &str) {
        self.logs.push((level, message.to_string()));
    }
    fn instance_info(&mut self) -> InstanceInfo {
        self.instance.clone()
    }
    fn random_bytes(&mut self, len: u32) -> Vec<u8> {
        // Deterministic, and different on every call.
        self.random_counter = self.random_counter.wrapping_add(1);
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ self.random_counter)
            .collect()
    }
    fn set_timer(&mut self, after_ms: u64) -> TimerId {
        let id = self.handle();
        self.timers.push((self.now + after_ms, id));
        id
    }
    fn cancel_timer(&mut self, timer: TimerId) {
        self.timers.retain(|(_, id)| *id != timer);
    }
    fn http_send(&mut self, request: &http::Request) -> Result<RequestId, HostError> {
        if let Some(error) = self.refusal(&request.url) {
            return Err(error);
        }
        let id = self.handle();
        self.requests.push(SentRequest {
            id,
            request: request.clone(),
            done: false,
        });
        Ok(id)
    }
    fn http_cancel(&mut self, request: RequestId) {
        if let Some(sent) = self.requests.iter_mut().find(|sent| sent.id == request) {
            sent.done = true;
        }
    }
    fn ws_connect(
        &mut self,
        url: &str,
        options: &ConnectOptions,
    ) -> Result<WebsocketId, HostError> {
        if let Some(error) = self.refusal(url) {
            return Err(error);
        }
        let id = self.handle();
        self.sockets.push(FakeSocket {
            id,
            url: url.to_string(),
            options: options.clone(),
            sent: Vec::new(),
            closed_by_connector: None,
            gone: false,
        });
        Ok(id)
    }
    fn ws_send(&mut self, socket: WebsocketId, payload: &WsPayload) -> Result<(), HostError> {
        match self.sockets.iter_mut().find(|s| s.id == socket && !s.gone) {
            Some(fake) => {
                fake.sent.push(payload.clone());
                Ok(())
            }
            None => Err(HostError::UnknownHandle(socket)),
        }
    }
    fn ws_close(&mut self, socket: WebsocketId, code: u16, reason: &str) {
        if let Some(fake) = self.sockets.iter_mut().find(|s| s.id == socket) {
            fake.closed_by_connector = Some((code, reason.to_string()));
        }
    }
    fn kv_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        Ok(self.kv.get(key).cloned())
    }
    fn kv_set(&mut self, key: &str, value: &[u8]) -> Result<(), HostError> {
        self.kv.insert(key.to_string(), value.to_vec());
        Ok(())
    }
    fn kv_delete(&mut self, key: &str) -> Result<(), HostError> {
        self.kv.remove(key);
        Ok(())
    }
    fn kv_list(&mut self, prefix: &str) -> Result<Vec<String>, HostError> {
        Ok(self
            .kv
            .keys()
            .filter(|key| key.starts_with(prefix))
            .cloned()
            .collect())
    }
    fn udp_bind(&mut self, toward: &SocketAddress) -> Result<UdpSocket, HostError> {
        if let Some(error) = self.refusal(&format!("{}:{}", toward.host, toward.port)) {
            return Err(error);
        }
        let socket = self.handle();
        self.udp.push((socket, toward.clone()));
        Ok(UdpSocket {
            socket,
            local: SocketAddress {
                host: "192.0.2.1".into(),
                port: 5060,
            },
        })
    }
    fn udp_send(
        &mut self,
        socket: SocketId,
        to: &SocketAddress,
        data: &[u8],
    ) -> Result<(), HostError> {
        self.datagrams.push((socket, to.clone(), data.to_vec()));
        Ok(())
    }
    fn stream_connect(
        &mut self,
        to: &SocketAddress,
        _: StreamOptions,
    ) -> Result<SocketId, HostError> {
        if let Some(error) = self.refusal(&format!("{}:{}", to.host, to.port)) {
            return Err(error);
        }
        let socket = self.handle();
        self.streams.push((socket, to.clone()));
        Ok(socket)
    }
    fn stream_send(&mut self, socket: SocketId, data: &[u8]) -> Result<(), HostError> {
        self.stream_sent.push((socket, data.to_vec()));
        Ok(())
    }
    fn net_close(&mut self, socket: SocketId) {
        self.net_closed.push(socket);
    }
    fn report(&mut self, report: Report) {
        self.reports.push(report);
    }
}

/// A text configuration value.
pub fn text(value: &str) -> ConfigValue {
    ConfigValue::Text(value.into())
}

/// An HTTP response with a body.
pub fn response(status: u16, body: &str) -> Result<http::Response, Failure> {
    Ok(http::Response {
        status,
        headers: Vec::new(),
        body: body.as_bytes().to_vec(),
    })
}

/// An HTTP response with a JSON body.
pub fn json_response(status: u16, body: &str) -> Result<http::Response, Failure> {
    Ok(http::Response {
        status,
        headers: vec![Header {
            name: "content-type".into(),
            value: "application/json".into(),
        }],
        body: body.as_bytes().to_vec(),
    })
}

/// A webhook request.
pub fn webhook(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> WebhookRequest {
    WebhookRequest {
        method: method.into(),
        path: path.into(),
        query: String::new(),
        headers: headers
            .iter()
            .map(|(name, value)| Header {
                name: (*name).into(),
                value: (*value).into(),
            })
            .collect(),
        body: body.to_vec(),
    }
}

/// One connector under the fake host.
pub struct TestHub<C: Connector> {
    runtime: Runtime<C, FakeHost>,
}

impl<C: Connector> Default for TestHub<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Connector> TestHub<C> {
    pub fn new() -> Self {
        Self {
            runtime: Runtime::new(FakeHost::default()),
        }
    }

    /// The fake host, to read or to arrange (kv, refusals, instance info).
    pub fn host(&mut self) -> &mut FakeHost {
        self.runtime.host_mut()
    }

    /// The connector, once configured.
    pub fn connector(&self) -> Option<&C> {
        self.runtime.connector()
    }

    /// Logical timers set, requests in flight, WebSockets open, as the
    /// runtime counts them.
    pub fn pending(&self) -> (usize, usize, usize) {
        self.runtime.pending()
    }

    // ---- the calls the hub makes ------------------------------------------

    pub fn configure(&mut self, entries: &[(&str, ConfigValue)]) -> Result<(), ConnectorError> {
        let entries = entries
            .iter()
            .map(|(name, value)| ConfigEntry {
                name: (*name).into(),
                value: value.clone(),
            })
            .collect();
        let result = self.runtime.configure(entries);
        self.deliver_scripted();
        result
    }

    pub fn watch(&mut self, endpoints: &[&str]) -> Result<(), ConnectorError> {
        let result = self.runtime.watch(ids(endpoints));
        self.deliver_scripted();
        result
    }

    pub fn unwatch(&mut self, endpoints: &[&str]) -> Result<(), ConnectorError> {
        let result = self.runtime.unwatch(ids(endpoints));
        self.deliver_scripted();
        result
    }

    pub fn write(&mut self, request: WriteRequest) -> Result<(), ConnectorError> {
        let result = self.runtime.write_presence(request);
        self.deliver_scripted();
        result
    }

    pub fn webhook(&mut self, request: WebhookRequest) -> WebhookResponse {
        let response = self.runtime.handle_webhook(request);
        self.deliver_scripted();
        response
    }

    /// Delivers a raw event, as the host would.
    pub fn event(&mut self, event: Event) {
        let _ = self.runtime.handle_events(vec![event]);
        self.deliver_scripted();
    }

    pub fn shutdown(&mut self) {
        self.event(Event::Shutdown);
    }

    // ---- time ---------------------------------------------------------------

    /// Moves the clock forward by `ms`, firing host timers as they come due
    /// (each at its own time), and delivering scripted answers after each.
    pub fn advance(&mut self, ms: u64) {
        let target = self.host().now + ms;
        loop {
            let next = self
                .host()
                .timers
                .iter()
                .copied()
                .filter(|(at, _)| *at <= target)
                .min();
            let Some((at, id)) = next else { break };
            let host = self.host();
            host.now = host.now.max(at);
            host.timers.retain(|(_, timer)| *timer != id);
            self.event(Event::Timer(id));
        }
        self.host().now = target;
    }

    /// Now, on the fake clock.
    pub fn now(&mut self) -> u64 {
        self.host().now
    }

    // ---- HTTP -----------------------------------------------------------------

    /// Answers every request (method, URL containing `url_contains`) with
    /// this outcome, from now on, as soon as it is sent.
    pub fn script_http(
        &mut self,
        method: &str,
        url_contains: &str,
        outcome: Result<http::Response, Failure>,
    ) {
        self.script(method, url_contains, outcome, None);
    }

    /// Answers the next `times` matching requests only.
    pub fn script_http_times(
        &mut self,
        method: &str,
        url_contains: &str,
        outcome: Result<http::Response, Failure>,
        times: usize,
    ) {
        self.script(method, url_contains, outcome, Some(times));
    }

    fn script(
        &mut self,
        method: &str,
        url_contains: &str,
        outcome: Result<http::Response, Failure>,
        remaining: Option<usize>,
    ) {
        self.host().scripts.push(Script {
            method: method.into(),
            url_contains: url_contains.into(),
            outcome,
            remaining,
        });
        self.deliver_scripted();
    }

    /// Makes the host refuse requests and WebSockets to URLs starting with
    /// `prefix`, and UDP binds and streams to a `host:port` starting with it
    /// (a missing grant).
    pub fn refuse(&mut self, prefix: &str, error: HostError) {
        self.host().refusals.push((prefix.into(), error));
    }

    /// Every request sent, in order.
    pub fn requests(&mut self) -> Vec<SentRequest> {
        self.host().requests.clone()
    }

    /// Requests still waiting for an outcome.
    pub fn open_requests(&mut self) -> Vec<SentRequest> {
        self.host()
            .requests
            .iter()
            .filter(|sent| !sent.done)
            .cloned()
            .collect()
    }

    /// Answers the oldest open request whose URL contains `url_contains`.
    /// Panics when there is none.
    pub fn respond(&mut self, url_contains: &str, outcome: Result<http::Response, Failure>) {
        let host = self.host();
        let sent = host
            .requests
            .iter_mut()
            .find(|sent| !sent.done && sent.request.url.contains(url_contains))
            .unwrap_or_else(|| panic!("no open request to a URL containing {url_contains:?}"));
        sent.done = true;
        let request = sent.id;
        self.event(Event::HttpResponse(HttpResult { request, outcome }));
    }

    fn deliver_scripted(&mut self) {
        for _ in 0..10_000 {
            let Some((request, outcome)) = self.host().scripted() else {
                return;
            };
            let _ = self
                .runtime
                .handle_events(vec![Event::HttpResponse(HttpResult { request, outcome })]);
        }
        panic!("scripted HTTP answers keep causing requests: a loop?");
    }

    // ---- WebSockets ---------------------------------------------------------------

    /// Every WebSocket the connector opened, in order.
    pub fn sockets(&mut self) -> Vec<FakeSocket> {
        self.host().sockets.clone()
    }

    /// The latest socket to a URL containing `url_contains` that is not gone.
    fn socket_id(&mut self, url_contains: &str) -> WebsocketId {
        self.host()
            .sockets
            .iter()
            .rev()
            .find(|socket| !socket.gone && socket.url.contains(url_contains))
            .map(|socket| socket.id)
            .unwrap_or_else(|| panic!("no open WebSocket to a URL containing {url_contains:?}"))
    }

    /// The server accepts the WebSocket.
    pub fn ws_accept(&mut self, url_contains: &str) {
        let socket = self.socket_id(url_contains);
        self.event(Event::WebsocketOpened(WebsocketOpen {
            socket,
            headers: Vec::new(),
            subprotocol: None,
        }));
    }

    /// The server sends a text message.
    pub fn ws_receive(&mut self, url_contains: &str, text: &str) {
        let socket = self.socket_id(url_contains);
        self.event(Event::WebsocketMessage(WsMessage {
            socket,
            payload: WsPayload::Text(text.into()),
        }));
    }

    /// The connection ends (the server closed it, or it failed).
    pub fn ws_drop(&mut self, url_contains: &str, close: CloseInfo) {
        let socket = self.socket_id(url_contains);
        if let Some(fake) = self.host().sockets.iter_mut().find(|s| s.id == socket) {
            fake.gone = true;
        }
        self.event(Event::WebsocketClosed(WebsocketClosed { socket, close }));
    }

    // ---- UDP sockets and streams -------------------------------------------

    /// The latest UDP socket bound toward a host containing `host_contains`
    /// and not closed by the connector.
    fn udp_socket(&mut self, host_contains: &str) -> (SocketId, SocketAddress) {
        let host = self.host();
        host.udp
            .iter()
            .rev()
            .find(|(id, toward)| toward.host.contains(host_contains) && host.net_open(*id))
            .cloned()
            .unwrap_or_else(|| panic!("no UDP socket bound toward {host_contains:?}"))
    }

    /// The latest stream to a host containing `host_contains` that neither
    /// side closed.
    fn stream(&mut self, host_contains: &str) -> (SocketId, SocketAddress) {
        let host = self.host();
        host.streams
            .iter()
            .rev()
            .find(|(id, to)| to.host.contains(host_contains) && host.net_open(*id))
            .cloned()
            .unwrap_or_else(|| panic!("no open stream to {host_contains:?}"))
    }

    /// A datagram arrives on the latest UDP socket bound toward a host
    /// containing `host_contains`, from the address it was bound toward.
    pub fn udp_receive(&mut self, host_contains: &str, data: &[u8]) {
        let (socket, from) = self.udp_socket(host_contains);
        self.event(Event::Datagram(Datagram {
            socket,
            from,
            data: data.to_vec(),
        }));
    }

    /// The stream to a host containing `host_contains` connects; our end is
    /// 192.0.2.1:40000.
    pub fn stream_accept(&mut self, host_contains: &str) {
        let (socket, remote) = self.stream(host_contains);
        self.event(Event::StreamConnected(StreamInfo {
            socket,
            local: SocketAddress {
                host: "192.0.2.1".into(),
                port: 40_000,
            },
            remote,
        }));
    }

    /// Bytes arrive on the stream to a host containing `host_contains`.
    pub fn stream_receive(&mut self, host_contains: &str, data: &[u8]) {
        let (socket, _) = self.stream(host_contains);
        self.event(Event::StreamData(StreamData {
            socket,
            data: data.to_vec(),
        }));
    }

    /// The stream to a host containing `host_contains` ends (the server
    /// closed it, or it failed to connect).
    pub fn stream_drop(&mut self, host_contains: &str, close: CloseInfo) {
        let (socket, _) = self.stream(host_contains);
        self.host().dropped.push(socket);
        self.event(Event::StreamClosed(StreamClosed { socket, close }));
    }

    /// Bytes the connector queued on streams to a host containing
    /// `host_contains`, concatenated, as text (lossy UTF-8).
    pub fn stream_sent_text(&mut self, host_contains: &str) -> String {
        let host = self.host();
        let sockets: Vec<SocketId> = host
            .streams
            .iter()
            .filter(|(_, to)| to.host.contains(host_contains))
            .map(|(id, _)| *id)
            .collect();
        let bytes: Vec<u8> = host
            .stream_sent
            .iter()
            .filter(|(id, _)| sockets.contains(id))
            .flat_map(|(_, data)| data.iter().copied())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Datagrams the connector sent to a host containing `host_contains`,
    /// in order, each as text (lossy UTF-8).
    pub fn datagrams_sent_text(&mut self, host_contains: &str) -> Vec<String> {
        self.host()
            .datagrams
            .iter()
            .filter(|(_, to, _)| to.host.contains(host_contains))
            .map(|(_, _, data)| String::from_utf8_lossy(data).into_owned())
            .collect()
    }

    // ---- raw socket events, by handle ----------------------------------------

    pub fn datagram(&mut self, datagram: Datagram) {
        self.event(Event::Datagram(datagram));
    }

    pub fn stream_connected(&mut self, info: StreamInfo) {
        self.event(Event::StreamConnected(info));
    }

    pub fn stream_data(&mut self, data: StreamData) {
        self.event(Event::StreamData(data));
    }

    pub fn stream_closed(&mut self, closed: StreamClosed) {
        self.event(Event::StreamClosed(closed));
    }

    // ---- what the connector reported ------------------------------------------

    /// Every report, in order.
    pub fn reports(&mut self) -> Vec<Report> {
        self.host().reports.clone()
    }

    /// Every report so far; the record is cleared.
    pub fn take_reports(&mut self) -> Vec<Report> {
        std::mem::take(&mut self.host().reports)
    }

    /// Presence updates reported, in order.
    pub fn presence(&mut self) -> Vec<PresenceUpdate> {
        self.host()
            .reports
            .iter()
            .filter_map(|report| match report {
                Report::Presence(update) => Some(update.clone()),
                _ => None,
            })
            .collect()
    }

    /// Connector statuses reported, in order.
    pub fn statuses(&mut self) -> Vec<(ConnectorStatus, Option<String>)> {
        self.host()
            .reports
            .iter()
            .filter_map(|report| match report {
                Report::Status { status, detail } => Some((*status, detail.clone())),
                _ => None,
            })
            .collect()
    }

    /// The last status reported.
    pub fn status(&mut self) -> Option<ConnectorStatus> {
        self.statuses().last().map(|(status, _)| *status)
    }

    /// Endpoint states reported, in order.
    pub fn endpoint_states(&mut self) -> Vec<(EndpointId, EndpointState, Option<String>)> {
        self.host()
            .reports
            .iter()
            .filter_map(|report| match report {
                Report::EndpointState {
                    endpoint,
                    state,
                    detail,
                } => Some((endpoint.clone(), *state, detail.clone())),
                _ => None,
            })
            .collect()
    }

    /// Write outcomes reported, in order.
    pub fn write_outcomes(&mut self) -> Vec<(u64, WriteOutcome)> {
        self.host()
            .reports
            .iter()
            .filter_map(|report| match report {
                Report::WriteOutcome { write, outcome } => Some((*write, outcome.clone())),
                _ => None,
            })
            .collect()
    }

    /// Log lines, in order.
    pub fn logs(&mut self) -> Vec<(Level, String)> {
        self.host().logs.clone()
    }
}

fn ids(endpoints: &[&str]) -> Vec<EndpointId> {
    endpoints
        .iter()
        .map(|endpoint| (*endpoint).into())
        .collect()
}
