//! A connector built from an I/O-free protocol core.
//!
//! Many connectors keep their protocol logic in a state machine that never
//! touches the host: it takes the clock as an argument, reads plain inputs
//! ([`Response`], text, [`CloseInfo`]) and queues [`Action`]s. Such a core
//! implements [`Core`]; its crate adds the few things only the component
//! knows ([`Component`]: its description, how a configuration and the
//! host's store become a core) and registers [`Plain`]:
//!
//! ```ignore
//! sdk::register_connector!(sdk::plain::Plain<Core>);
//! ```
//!
//! [`Plain`] is the one adapter between such a core and [`Connector`]: each
//! event becomes the matching hook with [`Cx::now`], and what the core
//! queued is drained and carried out by [`Cx::apply`] after every hook.

use std::fmt;
use std::hash::Hash;

use super::{Action, Response};
use crate::config::Config;
use crate::connector::{Connector, Cx, HttpError};
use crate::exports::presence::connector::connector::{
    WebhookRequest, WebhookResponse, WebsocketOpen, WsPayload,
};
use crate::presence::connector::http;
use crate::types::{CloseInfo, ConnectorError, EndpointId, PluginInfo, WriteRequest};

/// The actions a [`Core`] queues, with its own key types.
pub type CoreAction<C> =
    Action<<C as Core>::TimerKey, <C as Core>::RequestKey, <C as Core>::SocketKey>;

/// A connector's protocol logic as a state machine free of I/O.
///
/// Every hook takes `now` (Unix milliseconds, read once per call) and plain
/// inputs, and queues what it wants done; [`take_actions`](Core::take_actions)
/// hands the queue over. The defaults match [`Connector`]'s: events the core
/// does not expect are ignored, webhooks answer 404, writes are refused as
/// unsupported, `watch`/`unwatch` accept. Unit tests drive a core directly,
/// with no host and no [`Cx`].
pub trait Core: Sized + 'static {
    /// Names the core's timers (as [`Connector::TimerKey`]).
    type TimerKey: Clone + Eq + Hash + fmt::Debug;
    /// Tags its HTTP requests (as [`Connector::RequestKey`]).
    type RequestKey: Clone + Eq + Hash + fmt::Debug;
    /// Names its WebSockets (as [`Connector::SocketKey`]; `()` for none).
    type SocketKey: Clone + Eq + Hash + fmt::Debug;

    /// What the core asked for since the last call, in order; the queue is
    /// left empty.
    fn take_actions(&mut self) -> Vec<CoreAction<Self>>;

    /// Runs once, right after [`Component::build`] (and after a
    /// reconfiguration's build).
    fn start(&mut self, now: u64) {
        let _ = now;
    }

    /// The timer `key` is due.
    fn on_timer(&mut self, key: Self::TimerKey, now: u64) {
        let _ = (key, now);
    }

    /// The outcome of the request `key`: the answer, or why there is none
    /// in operators' words (see [`outcome`](super::outcome)).
    fn on_http(&mut self, key: Self::RequestKey, outcome: Result<Response, String>, now: u64) {
        let _ = (key, outcome, now);
    }

    /// The WebSocket `key` is up.
    fn on_ws_open(&mut self, key: Self::SocketKey, now: u64) {
        let _ = (key, now);
    }

    /// A text frame arrived on the WebSocket `key`.
    fn on_ws_text(&mut self, key: Self::SocketKey, text: &str, now: u64) {
        let _ = (key, text, now);
    }

    /// A binary frame arrived on the WebSocket `key`. The default ignores
    /// it.
    fn on_ws_binary(&mut self, key: Self::SocketKey, data: &[u8], now: u64) {
        let _ = (key, data, now);
    }

    /// The WebSocket `key` closed, failed, or was refused by the host (then
    /// `close.failure` is [`Failure::Other`](crate::Failure::Other) holding
    /// the rendered host error, e.g. `not-granted: wss://push.example.com:443`).
    fn on_ws_closed(&mut self, key: Self::SocketKey, close: &CloseInfo, now: u64) {
        let _ = (key, close, now);
    }

    /// Answers an inbound request on `/hooks/{instance}/...` (headers in
    /// the answer as `(name, value)` pairs). The default answers 404.
    fn webhook(&mut self, request: WebhookRequest, now: u64) -> Response {
        let _ = (request, now);
        Response {
            status: 404,
            headers: Vec::new(),
            body: b"no webhooks here".to_vec(),
        }
    }

    /// Starts watching these endpoints (in addition to those watched).
    fn watch(&mut self, endpoints: &[EndpointId], now: u64) {
        let _ = (endpoints, now);
    }

    /// Stops watching these endpoints.
    fn unwatch(&mut self, endpoints: &[EndpointId], now: u64) {
        let _ = (endpoints, now);
    }

    /// Starts a write-back: `Ok` means accepted, and exactly one
    /// [`Action::WriteOutcome`] follows for it, now or later; an error
    /// means refused, and none follows. The default refuses as
    /// unsupported.
    fn write(&mut self, request: WriteRequest, now: u64) -> Result<(), ConnectorError> {
        let _ = (request, now);
        Err(ConnectorError::Unsupported(
            "this connector cannot write presence".into(),
        ))
    }

    /// The instance stops: unsubscribe, say goodbye. What is queued now is
    /// still carried out, and answers keep arriving for the host's grace
    /// period.
    fn shutdown(&mut self, now: u64) {
        let _ = now;
    }

    /// A new configuration replaces this core within the instance: it
    /// settles what it must before its timers, sockets and requests in
    /// flight are dropped. The default says goodbye as
    /// [`shutdown`](Core::shutdown) does.
    fn make_way(&mut self, now: u64) {
        self.shutdown(now);
    }

    /// Endpoints the next core, after a reconfiguration, is to watch at
    /// once. The default is none: the host watches anew.
    fn watched(&self) -> Vec<EndpointId> {
        Vec::new()
    }
}

/// What only the component knows about its [`Core`]: how it describes
/// itself and how a configuration (and the host's store, instance facts
/// and randomness, through `cx`) becomes a core.
pub trait Component: Core {
    /// Name, version, configuration fields, endpoint kinds, capabilities
    /// (as [`Connector::describe`]).
    fn describe() -> PluginInfo;

    /// Builds a core from a configuration. An error (typically
    /// [`ConnectorError::InvalidConfig`] naming the field) goes back to the
    /// host and leaves the connector not configured. `cx` answers the store
    /// and the instance facts at once; anything queued on it is carried out
    /// before what the core queues in [`Core::start`].
    fn build(cx: &mut Cx<Plain<Self>>, config: &Config) -> Result<Self, ConnectorError>;
}

/// The [`Connector`] made of a [`Component`]'s core: register it with
/// `register_connector!(Plain<MyCore>)`.
///
/// Each call runs the matching [`Core`] hook with [`Cx::now`], then carries
/// out the core's queued actions with [`Cx::apply`]. HTTP outcomes reach
/// the core as [`outcome`](super::outcome) renders them; a binary
/// WebSocket frame goes to [`Core::on_ws_binary`]. A reconfiguration lets
/// the old core [`make_way`](Core::make_way), drops its timers, sockets and
/// requests, builds and starts the next core, and has it watch what the old
/// one named in [`watched`](Core::watched).
pub struct Plain<C>(pub C);

impl<C: Component> Plain<C> {
    /// The core.
    pub fn core(&self) -> &C {
        &self.0
    }

    /// Carries out what the core queued.
    fn drain(&mut self, cx: &mut Cx<Self>) {
        for action in self.0.take_actions() {
            cx.apply(action);
        }
    }

    /// Runs `hook` on the core with the call's clock, then carries out
    /// what it queued.
    fn run<T>(&mut self, cx: &mut Cx<Self>, hook: impl FnOnce(&mut C, u64) -> T) -> T {
        let answer = hook(&mut self.0, cx.now());
        self.drain(cx);
        answer
    }
}

impl<C: Component> Connector for Plain<C> {
    type TimerKey = C::TimerKey;
    type RequestKey = C::RequestKey;
    type SocketKey = C::SocketKey;

    fn describe() -> PluginInfo {
        C::describe()
    }

    fn new(cx: &mut Cx<Self>, config: &Config) -> Result<Self, ConnectorError> {
        let mut plain = Plain(C::build(cx, config)?);
        plain.run(cx, C::start);
        Ok(plain)
    }

    fn reconfigure(&mut self, cx: &mut Cx<Self>, config: &Config) -> Result<(), ConnectorError> {
        let watched = self.0.watched();
        self.run(cx, C::make_way);
        cx.reset();
        *self = Self::new(cx, config)?;
        if !watched.is_empty() {
            self.run(cx, |core, now| core.watch(&watched, now));
        }
        Ok(())
    }

    fn on_timer(&mut self, cx: &mut Cx<Self>, key: C::TimerKey) {
        self.run(cx, |core, now| core.on_timer(key, now));
    }

    fn on_http(
        &mut self,
        cx: &mut Cx<Self>,
        key: C::RequestKey,
        outcome: Result<http::Response, HttpError>,
    ) {
        let outcome = super::outcome(outcome);
        self.run(cx, |core, now| core.on_http(key, outcome, now));
    }

    fn on_ws_open(&mut self, cx: &mut Cx<Self>, key: C::SocketKey, _: WebsocketOpen) {
        self.run(cx, |core, now| core.on_ws_open(key, now));
    }

    fn on_ws_message(&mut self, cx: &mut Cx<Self>, key: C::SocketKey, payload: WsPayload) {
        self.run(cx, |core, now| match payload {
            WsPayload::Text(text) => core.on_ws_text(key, &text, now),
            WsPayload::Binary(data) => core.on_ws_binary(key, &data, now),
        });
    }

    fn on_ws_closed(&mut self, cx: &mut Cx<Self>, key: C::SocketKey, close: CloseInfo) {
        self.run(cx, |core, now| core.on_ws_closed(key, &close, now));
    }

    fn on_shutdown(&mut self, cx: &mut Cx<Self>) {
        self.run(cx, C::shutdown);
    }

    fn webhook(&mut self, cx: &mut Cx<Self>, request: WebhookRequest) -> WebhookResponse {
        let answer = self.run(cx, |core, now| core.webhook(request, now));
        WebhookResponse {
            status: answer.status,
            headers: super::headers(answer.headers),
            body: answer.body,
        }
    }

    fn watch(
        &mut self,
        cx: &mut Cx<Self>,
        endpoints: Vec<EndpointId>,
    ) -> Result<(), ConnectorError> {
        self.run(cx, |core, now| core.watch(&endpoints, now));
        Ok(())
    }

    fn unwatch(
        &mut self,
        cx: &mut Cx<Self>,
        endpoints: Vec<EndpointId>,
    ) -> Result<(), ConnectorError> {
        self.run(cx, |core, now| core.unwatch(&endpoints, now));
        Ok(())
    }

    fn write(&mut self, cx: &mut Cx<Self>, request: WriteRequest) -> Result<(), ConnectorError> {
        self.run(cx, |core, now| core.write(request, now))
    }
}

#[cfg(test)]
mod tests;
