//! The runtime behind [`register_connector!`](crate::register_connector):
//! it owns the one connector instance, answers `not-configured` before the
//! first good configuration, turns host events into keyed calls and carries
//! out each call's effects — keyed timers multiplexed on one host timer,
//! request, WebSocket, UDP socket and stream handles mapped back to keys,
//! refusals fed back.
//!
//! It is generic over the [`Host`], so the test kit runs exactly this code
//! under its fake host.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use crate::config::Config;
use crate::connector::{Connector, Cx, Effect, Host, HttpError};
use crate::exports::presence::connector::connector::{Event, WebhookRequest, WebhookResponse};
use crate::presence::connector::log::Level;
use crate::types::{
    CloseInfo, ConfigEntry, ConnectorError, EndpointId, Failure, HostError, RequestId,
    SocketAddress, TimerId, WriteRequest,
};

/// How many rounds of fed-back refusals one call may cause before the
/// runtime gives up (a connector that retries a refused request at once,
/// forever).
const MAX_FEEDBACK_ROUNDS: usize = 64;

/// Logical timers by key, ordered by deadline (then by when they were set).
#[derive(Debug)]
pub(crate) struct TimerMux<K> {
    by_key: HashMap<K, (u64, u64)>,
    queue: BTreeMap<(u64, u64), K>,
    seq: u64,
}

impl<K> Default for TimerMux<K> {
    fn default() -> Self {
        Self {
            by_key: HashMap::new(),
            queue: BTreeMap::new(),
            seq: 0,
        }
    }
}

impl<K: Clone + Eq + Hash> TimerMux<K> {
    pub(crate) fn set(&mut self, key: K, deadline: u64) {
        self.cancel(&key);
        self.seq += 1;
        let slot = (deadline, self.seq);
        self.queue.insert(slot, key.clone());
        self.by_key.insert(key, slot);
    }

    pub(crate) fn cancel(&mut self, key: &K) {
        if let Some(slot) = self.by_key.remove(key) {
            self.queue.remove(&slot);
        }
    }

    /// Removes and returns the keys due at `now`, earliest first.
    pub(crate) fn due(&mut self, now: u64) -> Vec<K> {
        let mut due = Vec::new();
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            self.by_key.remove(&key);
            due.push(key);
        }
        due
    }

    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.queue.keys().next().map(|(deadline, _)| *deadline)
    }

    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    pub(crate) fn clear(&mut self) {
        self.by_key.clear();
        self.queue.clear();
    }
}

/// What goes back to the connector after its effects: something the host
/// refused, or a UDP socket it bound (with the local address).
enum Feedback<C: Connector> {
    Http(C::RequestKey, HttpError),
    WsClosed(C::SocketKey, CloseInfo),
    NetOpen(C::SocketKey, SocketAddress),
    NetClosed(C::SocketKey, CloseInfo),
}

/// A refused connect, as the connector's close callbacks see it:
/// `failure` is `Other("not-granted: wss://host:443")`, as
/// [`render_failure`](crate::render_failure) shows it.
fn refused(error: &HostError) -> CloseInfo {
    CloseInfo {
        code: None,
        reason: String::new(),
        failure: Some(Failure::Other(crate::render_host_error(error))),
    }
}

/// Handles and keys both ways, for one kind of connection.
#[derive(Debug)]
struct Handles<K> {
    keys: HashMap<u32, K>,
    handles: HashMap<K, u32>,
}

impl<K> Default for Handles<K> {
    fn default() -> Self {
        Self {
            keys: HashMap::new(),
            handles: HashMap::new(),
        }
    }
}

impl<K: Clone + Eq + Hash> Handles<K> {
    fn insert(&mut self, key: K, handle: u32) {
        self.keys.insert(handle, key.clone());
        self.handles.insert(key, handle);
    }

    fn key(&self, handle: u32) -> Option<K> {
        self.keys.get(&handle).cloned()
    }

    fn handle(&self, key: &K) -> Option<u32> {
        self.handles.get(key).copied()
    }

    /// Forgets the connection under `key`; its handle, if there was one.
    fn remove_key(&mut self, key: &K) -> Option<u32> {
        let handle = self.handles.remove(key)?;
        self.keys.remove(&handle);
        Some(handle)
    }

    /// Forgets the connection `handle` (it ended); its key, if known.
    fn remove_handle(&mut self, handle: u32) -> Option<K> {
        let key = self.keys.remove(&handle)?;
        if self.handles.get(&key) == Some(&handle) {
            self.handles.remove(&key);
        }
        Some(key)
    }

    fn len(&self) -> usize {
        self.handles.len()
    }

    fn drain(&mut self) -> Vec<u32> {
        self.handles.clear();
        self.keys.drain().map(|(handle, _)| handle).collect()
    }
}

/// One connector instance and the host state around it.
pub struct Runtime<C: Connector, H: Host> {
    host: H,
    connector: Option<C>,
    timers: TimerMux<C::TimerKey>,
    /// The one host timer in use, and when it fires.
    armed: Option<(TimerId, u64)>,
    requests: HashMap<RequestId, C::RequestKey>,
    websockets: Handles<C::SocketKey>,
    /// UDP sockets and streams.
    net: Handles<C::SocketKey>,
}

impl<C: Connector, H: Host> Runtime<C, H> {
    pub fn new(host: H) -> Self {
        Self {
            host,
            connector: None,
            timers: TimerMux::default(),
            armed: None,
            requests: HashMap::new(),
            websockets: Handles::default(),
            net: Handles::default(),
        }
    }

    pub fn host(&self) -> &H {
        &self.host
    }

    pub fn host_mut(&mut self) -> &mut H {
        &mut self.host
    }

    /// The connector, once configured.
    pub fn connector(&self) -> Option<&C> {
        self.connector.as_ref()
    }

    pub fn connector_mut(&mut self) -> Option<&mut C> {
        self.connector.as_mut()
    }

    /// Logical timers set, requests in flight, connections open (WebSockets,
    /// UDP sockets and streams).
    pub fn pending(&self) -> (usize, usize, usize) {
        (
            self.timers.len(),
            self.requests.len(),
            self.websockets.len() + self.net.len(),
        )
    }

    /// `configure`: builds the connector or reconfigures it.
    pub fn configure(&mut self, entries: Vec<ConfigEntry>) -> Result<(), ConnectorError> {
        let config = Config::new(entries);
        let mut cx = Cx::new(&mut self.host);
        let result = match self.connector.as_mut() {
            Some(connector) => connector.reconfigure(&mut cx, &config),
            None => C::new(&mut cx, &config).map(|connector| self.connector = Some(connector)),
        };
        let effects = cx.take_effects();
        if result.is_err() {
            self.connector = None;
        }
        self.execute(effects);
        if result.is_err() {
            self.reset();
        }
        result
    }

    /// `handle-events`.
    pub fn handle_events(&mut self, events: Vec<Event>) -> Result<(), ConnectorError> {
        for event in events {
            self.event(event);
        }
        Ok(())
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Timer(handle) => {
                if self.armed.is_some_and(|(armed, _)| armed == handle) {
                    self.armed = None;
                }
                let now = self.host.now();
                let due = self.timers.due(now);
                if !due.is_empty() {
                    self.call(|connector, cx| {
                        for key in due {
                            connector.on_timer(cx, key);
                        }
                    });
                }
                self.rearm();
            }
            Event::HttpResponse(result) => {
                let Some(key) = self.requests.remove(&result.request) else {
                    return;
                };
                let outcome = result.outcome.map_err(HttpError::Failed);
                self.call(|connector, cx| connector.on_http(cx, key, outcome));
            }
            Event::WebsocketOpened(open) => {
                let Some(key) = self.websockets.key(open.socket) else {
                    return;
                };
                self.call(|connector, cx| connector.on_ws_open(cx, key, open));
            }
            Event::WebsocketMessage(message) => {
                let Some(key) = self.websockets.key(message.socket) else {
                    return;
                };
                self.call(|connector, cx| connector.on_ws_message(cx, key, message.payload));
            }
            Event::WebsocketClosed(closed) => {
                let Some(key) = self.websockets.remove_handle(closed.socket) else {
                    return;
                };
                self.call(|connector, cx| connector.on_ws_closed(cx, key, closed.close));
            }
            Event::Datagram(datagram) => {
                let Some(key) = self.net.key(datagram.socket) else {
                    return;
                };
                self.call(|connector, cx| {
                    connector.on_datagram(cx, key, datagram.from, datagram.data)
                });
            }
            Event::StreamConnected(info) => {
                let Some(key) = self.net.key(info.socket) else {
                    return;
                };
                self.call(|connector, cx| connector.on_net_open(cx, key, info.local));
            }
            Event::StreamData(data) => {
                let Some(key) = self.net.key(data.socket) else {
                    return;
                };
                self.call(|connector, cx| connector.on_stream_data(cx, key, data.data));
            }
            Event::StreamClosed(closed) => {
                let Some(key) = self.net.remove_handle(closed.socket) else {
                    return;
                };
                self.call(|connector, cx| connector.on_net_closed(cx, key, closed.close));
            }
            Event::Shutdown => {
                self.call(|connector, cx| connector.on_shutdown(cx));
            }
        }
    }

    /// `handle-webhook`: 503 before the connector is configured.
    pub fn handle_webhook(&mut self, request: WebhookRequest) -> WebhookResponse {
        self.call(|connector, cx| connector.webhook(cx, request))
            .unwrap_or_else(|| WebhookResponse {
                status: 503,
                headers: vec![crate::types::Header {
                    name: "content-type".into(),
                    value: "application/json".into(),
                }],
                body: br#"{"error":"the connector is not configured"}"#.to_vec(),
            })
    }

    pub fn watch(&mut self, endpoints: Vec<EndpointId>) -> Result<(), ConnectorError> {
        self.call(|connector, cx| connector.watch(cx, endpoints))
            .unwrap_or(Err(ConnectorError::NotConfigured))
    }

    pub fn unwatch(&mut self, endpoints: Vec<EndpointId>) -> Result<(), ConnectorError> {
        self.call(|connector, cx| connector.unwatch(cx, endpoints))
            .unwrap_or(Err(ConnectorError::NotConfigured))
    }

    pub fn write_presence(&mut self, request: WriteRequest) -> Result<(), ConnectorError> {
        self.call(|connector, cx| connector.write(cx, request))
            .unwrap_or(Err(ConnectorError::NotConfigured))
    }

    /// Runs `f` on the connector with a fresh context, then carries out what
    /// it asked for. `None` when not configured.
    fn call<R>(&mut self, f: impl FnOnce(&mut C, &mut Cx<'_, C>) -> R) -> Option<R> {
        let connector = self.connector.as_mut()?;
        let mut cx = Cx::new(&mut self.host);
        let result = f(connector, &mut cx);
        let effects = cx.take_effects();
        self.execute(effects);
        Some(result)
    }

    /// Carries out effects; refusals go back to the connector, whose answer
    /// is carried out in turn, for a bounded number of rounds.
    fn execute(&mut self, mut effects: Vec<Effect<C>>) {
        for _ in 0..MAX_FEEDBACK_ROUNDS {
            let feedback = self.apply(effects);
            self.rearm();
            if feedback.is_empty() {
                return;
            }
            let Some(connector) = self.connector.as_mut() else {
                return;
            };
            let mut cx = Cx::new(&mut self.host);
            for item in feedback {
                match item {
                    Feedback::Http(key, error) => connector.on_http(&mut cx, key, Err(error)),
                    Feedback::WsClosed(key, close) => connector.on_ws_closed(&mut cx, key, close),
                    Feedback::NetOpen(key, local) => connector.on_net_open(&mut cx, key, local),
                    Feedback::NetClosed(key, close) => connector.on_net_closed(&mut cx, key, close),
                }
            }
            effects = cx.take_effects();
        }
        self.host.log(
            Level::Error,
            "the connector kept retrying refused requests; dropped the rest",
        );
    }

    fn apply(&mut self, effects: Vec<Effect<C>>) -> Vec<Feedback<C>> {
        let mut feedback = Vec::new();
        let now = self.host.now();
        for effect in effects {
            match effect {
                Effect::SetTimer(key, after_ms) => {
                    self.timers.set(key, now.saturating_add(after_ms));
                }
                Effect::CancelTimer(key) => self.timers.cancel(&key),
                Effect::Http(key, request) => match self.host.http_send(&request) {
                    Ok(handle) => {
                        self.requests.insert(handle, key);
                    }
                    Err(error) => feedback.push(Feedback::Http(key, HttpError::Refused(error))),
                },
                Effect::CancelHttp(key) => {
                    let handles: Vec<RequestId> = self
                        .requests
                        .iter()
                        .filter(|(_, k)| **k == key)
                        .map(|(handle, _)| *handle)
                        .collect();
                    for handle in handles {
                        self.requests.remove(&handle);
                        self.host.http_cancel(handle);
                    }
                }
                Effect::WsConnect(key, url, options) => {
                    if let Some(old) = self.websockets.remove_key(&key) {
                        self.host.ws_close(old, 1000, "replaced");
                    }
                    match self.host.ws_connect(&url, &options) {
                        Ok(handle) => self.websockets.insert(key, handle),
                        Err(error) => feedback.push(Feedback::WsClosed(key, refused(&error))),
                    }
                }
                Effect::WsSend(key, payload) => match self.websockets.handle(&key) {
                    Some(handle) => {
                        let sent = self.host.ws_send(handle, &payload);
                        self.warn_refused("WebSocket", &key, sent);
                    }
                    None => self.warn_not_open("WebSocket", &key),
                },
                Effect::WsClose(key, code, reason) => {
                    if let Some(handle) = self.websockets.handle(&key) {
                        self.host.ws_close(handle, code, &reason);
                    }
                }
                Effect::UdpBind(key, toward) => {
                    self.close_net(&key);
                    match self.host.udp_bind(&toward) {
                        Ok(bound) => {
                            self.net.insert(key.clone(), bound.socket);
                            feedback.push(Feedback::NetOpen(key, bound.local));
                        }
                        Err(error) => feedback.push(Feedback::NetClosed(key, refused(&error))),
                    }
                }
                Effect::UdpSend(key, to, data) => match self.net.handle(&key) {
                    Some(handle) => {
                        let sent = self.host.udp_send(handle, &to, &data);
                        self.warn_refused("UDP socket", &key, sent);
                    }
                    None => self.warn_not_open("UDP socket", &key),
                },
                Effect::StreamConnect(key, to, options) => {
                    self.close_net(&key);
                    match self.host.stream_connect(&to, options) {
                        Ok(handle) => self.net.insert(key, handle),
                        Err(error) => feedback.push(Feedback::NetClosed(key, refused(&error))),
                    }
                }
                Effect::StreamSend(key, data) => match self.net.handle(&key) {
                    Some(handle) => {
                        let sent = self.host.stream_send(handle, &data);
                        self.warn_refused("stream", &key, sent);
                    }
                    None => self.warn_not_open("stream", &key),
                },
                Effect::NetClose(key) => self.close_net(&key),
                Effect::Report(report) => self.host.report(report),
                Effect::Log(level, message) => self.host.log(level, &message),
                Effect::Reset => self.reset(),
            }
        }
        feedback
    }

    /// Closes the UDP socket or stream `key`, if open; its later events
    /// are dropped.
    fn close_net(&mut self, key: &C::SocketKey) {
        if let Some(handle) = self.net.remove_key(key) {
            self.host.net_close(handle);
        }
    }

    fn warn_not_open(&mut self, kind: &str, key: &C::SocketKey) {
        let message = format!("{kind} {key:?} is not open; message dropped");
        self.host.log(Level::Warn, &message);
    }

    fn warn_refused(&mut self, kind: &str, key: &C::SocketKey, sent: Result<(), HostError>) {
        if let Err(error) = sent {
            let message = format!(
                "{kind} {key:?}: send refused: {}",
                crate::render_host_error(&error)
            );
            self.host.log(Level::Warn, &message);
        }
    }

    /// Drops every timer, WebSocket, UDP socket and stream and forgets
    /// requests in flight.
    fn reset(&mut self) {
        self.timers.clear();
        self.requests.clear();
        for handle in self.websockets.drain() {
            self.host.ws_close(handle, 1000, "reconfigured");
        }
        for handle in self.net.drain() {
            self.host.net_close(handle);
        }
    }

    /// Keeps one host timer armed for the earliest logical deadline. A host
    /// timer that would fire later than needed is replaced; one that fires
    /// early (its key was cancelled) is left to fire and re-arm.
    fn rearm(&mut self) {
        let Some(deadline) = self.timers.next_deadline() else {
            if let Some((handle, _)) = self.armed.take() {
                self.host.cancel_timer(handle);
            }
            return;
        };
        if let Some((handle, armed_at)) = self.armed {
            if armed_at <= deadline {
                return;
            }
            self.host.cancel_timer(handle);
        }
        let now = self.host.now();
        let handle = self.host.set_timer(deadline.saturating_sub(now));
        self.armed = Some((handle, deadline));
    }
}

/// Registers a [`Connector`] as the component's export. Write it once, at
/// the crate root (it adds a hidden module there):
///
/// ```ignore
/// presence_connector_sdk::register_connector!(MyConnector);
/// ```
///
/// The macro owns the single instance (one per component instance; the host
/// serialises calls), answers `not-configured` before the first good
/// configuration, and exports the WIT `connector` interface.
#[macro_export]
macro_rules! register_connector {
    ($connector:ty) => {
        // A public module at the crate root keeps the connector alive for the
        // dead-code lint in native builds too, where nothing is exported.
        #[doc(hidden)]
        pub mod __presence_connector_export {
            #[allow(unused_imports)]
            use super::*;
            use ::std::cell::RefCell;
            use $crate::__private::{
                ConfigEntry, ConnectorError, EndpointId, Event, Guest, PluginInfo, Runtime,
                WebhookRequest, WebhookResponse, WitHost, WriteRequest,
            };

            ::std::thread_local! {
                static RUNTIME: RefCell<Runtime<$connector, WitHost>> =
                    RefCell::new(Runtime::new(WitHost));
            }

            pub struct Export;

            impl Guest for Export {
                fn describe() -> PluginInfo {
                    <$connector as $crate::Connector>::describe()
                }
                fn configure(config: Vec<ConfigEntry>) -> Result<(), ConnectorError> {
                    RUNTIME.with_borrow_mut(|rt| rt.configure(config))
                }
                fn handle_events(events: Vec<Event>) -> Result<(), ConnectorError> {
                    RUNTIME.with_borrow_mut(|rt| rt.handle_events(events))
                }
                fn handle_webhook(request: WebhookRequest) -> WebhookResponse {
                    RUNTIME.with_borrow_mut(|rt| rt.handle_webhook(request))
                }
                fn watch(endpoints: Vec<EndpointId>) -> Result<(), ConnectorError> {
                    RUNTIME.with_borrow_mut(|rt| rt.watch(endpoints))
                }
                fn unwatch(endpoints: Vec<EndpointId>) -> Result<(), ConnectorError> {
                    RUNTIME.with_borrow_mut(|rt| rt.unwatch(endpoints))
                }
                fn write_presence(request: WriteRequest) -> Result<(), ConnectorError> {
                    RUNTIME.with_borrow_mut(|rt| rt.write_presence(request))
                }
            }

            // Exported only in the component: natively the export's symbol
            // names (`presence:connector/...`) cannot be linked into a
            // cdylib, and tests drive the connector through the test kit.
            #[cfg(target_arch = "wasm32")]
            $crate::export!(Export with_types_in $crate);
        }
    };
}

#[cfg(test)]
mod tests;
