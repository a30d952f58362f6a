//! Plain-data HTTP for connectors whose protocol core is free of I/O.
//!
//! Such a core returns what it wants done as [`Action`]s (requests as
//! [`Request`], with headers as `(name, value)` pairs, the shape
//! `graph` module (feature `graph`) reads too), gets its answers as [`Response`] or
//! as the rendered reason there was none ([`outcome`]), and names log
//! levels with [`Level`]. Such a core implements [`Core`], and [`Plain`]
//! makes it a [`Connector`], handing each action to [`Cx::apply`] (see
//! [`component`]). Nothing here calls the host, so cores and their unit
//! tests use these types natively.

use std::fmt;

pub mod component;
pub use component::{Component, Core, CoreAction, Plain};

use crate::builders::WsOptions;
use crate::connector::{Connector, Cx, HttpError};
use crate::presence::connector::http;
use crate::types::{
    ConnectorStatus, DirectoryEntry, EndpointState, Header, LoginStep, PresenceUpdate, WriteId,
    WriteOutcome,
};

/// Log levels (the contract's `log.level`).
pub use crate::presence::connector::log::Level;

/// An HTTP request as a core writes it.
///
/// `Debug` shows only the method and the URL: headers carry bearer tokens
/// and Basic credentials, and a token request's body the client secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: &'static str,
    pub url: String,
    /// `(name, value)`, in order; names as written.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The whole exchange's limit, milliseconds.
    pub timeout_ms: u32,
}

impl Request {
    /// The first header of this name, ignoring case.
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.url)
    }
}

impl From<Request> for http::Request {
    fn from(request: Request) -> Self {
        http::Request {
            method: request.method.into(),
            url: request.url,
            headers: headers(request.headers),
            body: request.body,
            timeout_ms: Some(request.timeout_ms),
        }
    }
}

/// An HTTP answer as a core reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// `(name, value)`, as received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// An answer with one header, `content-type` (as a webhook gives it).
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
        }
    }

    /// The first header of this name, ignoring case.
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }
}

impl From<http::Response> for Response {
    fn from(response: http::Response) -> Self {
        Response {
            status: response.status,
            headers: pairs(response.headers),
            body: response.body,
        }
    }
}

/// What [`Connector::on_http`] received, as a core takes it: the answer,
/// or why there is none in operators' words — a host refusal as
/// [`render_host_error`](crate::render_host_error) shows it
/// (`not-granted: https://ews.example.com:443`), a failure as
/// [`render_failure`](crate::render_failure) does (`connection refused`).
pub fn outcome(outcome: Result<http::Response, HttpError>) -> Result<Response, String> {
    match outcome {
        Ok(response) => Ok(response.into()),
        Err(HttpError::Refused(error)) => Err(crate::render_host_error(&error)),
        Err(HttpError::Failed(failure)) => Err(crate::render_failure(&failure)),
    }
}

/// What an HTTP-speaking core wants done, as data its unit tests can
/// inspect; `T` names its timers, `R` its requests, `S` its WebSocket
/// connections (the connector's [`Connector::TimerKey`],
/// [`Connector::RequestKey`] and [`Connector::SocketKey`]; a core without
/// sockets leaves `S` as `()`).
// Nearly every action is a request or a report; boxing saves nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Action<T, R, S = ()> {
    /// Send; the outcome comes back to the core with this key.
    Http(R, Request),
    /// Open WebSocket `S` to this URL (`wss://...`; it may carry a
    /// single-use token, so it is never logged).
    WsConnect(S, String, WsOptions),
    /// Send a text frame on WebSocket `S`.
    WsSend(S, String),
    /// Close WebSocket `S` with this close code (RFC 6455 §7.4) and reason.
    WsClose(S, u16, String),
    /// Fire the timer `T` after this many milliseconds (moves it if set).
    SetTimer(T, u64),
    CancelTimer(T),
    /// Store a value in the instance's key-value store.
    KvSet(String, Vec<u8>),
    KvDelete(String),
    Presence(PresenceUpdate),
    /// An endpoint's state, with a detail for operators.
    EndpointState(String, EndpointState, Option<String>),
    Status(ConnectorStatus, Option<String>),
    LoginStep(Option<LoginStep>),
    /// Directory entries; `true` when this is the whole directory.
    Directory(Vec<DirectoryEntry>, bool),
    WriteOutcome(WriteId, WriteOutcome),
    Log(Level, String),
}

/// `(name, value)` pairs as the contract's headers.
pub fn headers(pairs: Vec<(String, String)>) -> Vec<Header> {
    pairs
        .into_iter()
        .map(|(name, value)| Header { name, value })
        .collect()
}

/// The contract's headers as `(name, value)` pairs.
pub fn pairs(headers: Vec<Header>) -> Vec<(String, String)> {
    headers.into_iter().map(|h| (h.name, h.value)).collect()
}

fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

impl<C: Connector> Cx<'_, C> {
    /// Carries out a core's [`Action`]: requests and timers by key, reports
    /// and log lines in order, key-value writes at once (a refusal logged).
    pub fn apply(&mut self, action: Action<C::TimerKey, C::RequestKey, C::SocketKey>) {
        match action {
            Action::Http(key, request) => self.http(key, request),
            Action::WsConnect(key, url, options) => self.ws_connect(key, url, options),
            Action::WsSend(key, text) => self.ws_send_text(key, text),
            Action::WsClose(key, code, reason) => self.ws_close(key, code, reason),
            Action::SetTimer(key, ms) => self.set_timer(key, ms),
            Action::CancelTimer(key) => self.cancel_timer(key),
            Action::KvSet(key, value) => self.kv_set_logged(&key, &value),
            Action::KvDelete(key) => self.kv_delete_logged(&key),
            Action::Presence(update) => self.presence(update),
            Action::EndpointState(endpoint, state, detail) => {
                self.endpoint_state(endpoint, state, detail.as_deref())
            }
            Action::Status(status, detail) => self.status(status, detail.as_deref()),
            Action::LoginStep(step) => self.login_step(step),
            Action::Directory(entries, complete) => self.directory(entries, complete),
            Action::WriteOutcome(write, outcome) => self.write_outcome(write, outcome),
            Action::Log(level, message) => self.log(level, message),
        }
    }

    /// Stores `value` under `key`; a refusal is logged as an error naming
    /// the key (the value is never logged: it may hold tokens).
    pub fn kv_set_logged(&mut self, key: &str, value: &[u8]) {
        if let Err(error) = self.kv_set(key, value) {
            self.error(format!(
                "storing {key}: {}",
                crate::render_host_error(&error)
            ));
        }
    }

    /// Deletes `key`; a refusal is logged as a warning.
    pub fn kv_delete_logged(&mut self, key: &str) {
        if let Err(error) = self.kv_delete(key) {
            self.warn(format!(
                "deleting {key}: {}",
                crate::render_host_error(&error)
            ));
        }
    }

    /// Every `(suffix, value)` stored under keys that start with `prefix`,
    /// sorted by key; keys that vanish or fail to read are skipped.
    pub fn kv_under(&mut self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        let keys = self.kv_list(prefix).unwrap_or_default();
        keys.into_iter()
            .filter_map(|key| {
                let value = self.kv_get(&key).ok().flatten()?;
                Some((key.strip_prefix(prefix)?.to_string(), value))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::FakeHost;
    use crate::types::{Capabilities, Failure, HostError, PluginInfo};
    use crate::{Config, ConnectorError};

    /// A connector type to give the context its keys.
    struct Probe;

    impl Connector for Probe {
        type TimerKey = &'static str;
        type RequestKey = u64;
        type SocketKey = ();
        fn describe() -> PluginInfo {
            PluginInfo {
                name: "probe".into(),
                version: "0".into(),
                description: String::new(),
                config_fields: Vec::new(),
                endpoint_kinds: Vec::new(),
                capabilities: Capabilities::default(),
            }
        }
        fn new(_: &mut Cx<Self>, _: &Config) -> Result<Self, ConnectorError> {
            Ok(Probe)
        }
    }

    #[test]
    fn apply_carries_out_each_action_in_order() {
        let mut host = FakeHost::default();
        let mut cx = Cx::<Probe>::new(&mut host);
        cx.apply(Action::Http(7, request()));
        cx.apply(Action::SetTimer("poll", 30_000));
        cx.apply(Action::CancelTimer("poll"));
        cx.apply(Action::KvSet("auth/guard".into(), b"1".to_vec()));
        cx.apply(Action::Status(
            ConnectorStatus::UpAndRunning,
            Some("ok".into()),
        ));
        cx.apply(Action::Log(Level::Warn, "careful".into()));
        let effects: Vec<String> = cx.take_effects().iter().map(|e| format!("{e:?}")).collect();
        assert_eq!(
            effects,
            [
                "Http(7, POST https://login.example.com/token)",
                "SetTimer(\"poll\", 30000)",
                "CancelTimer(\"poll\")",
                "Report(Status { status: ConnectorStatus::UpAndRunning, detail: Some(\"ok\") })",
                "Log(Level::Warn, careful)",
            ]
        );
        // The store answers at once.
        assert_eq!(
            host.kv.get("auth/guard").map(Vec::as_slice),
            Some(&b"1"[..])
        );
    }

    /// A connector whose WebSockets are numbered.
    struct Sockets;

    impl Connector for Sockets {
        type TimerKey = ();
        type RequestKey = ();
        type SocketKey = u64;
        fn describe() -> PluginInfo {
            Probe::describe()
        }
        fn new(_: &mut Cx<Self>, _: &Config) -> Result<Self, ConnectorError> {
            Ok(Sockets)
        }
    }

    #[test]
    fn apply_carries_out_websocket_and_directory_actions() {
        let mut host = FakeHost::default();
        let mut cx = Cx::<Sockets>::new(&mut host);
        let options = crate::WsOptions::default()
            .connect_timeout_ms(15_000)
            .ping(30_000, 10_000);
        cx.apply(Action::WsConnect(
            3,
            "wss://ws.example.com/ws?access_token=t".into(),
            options.clone(),
        ));
        cx.apply(Action::WsSend(3, "[{\"type\":\"Heartbeat\"}]".into()));
        cx.apply(Action::WsClose(3, 1000, "shutdown".into()));
        cx.apply(Action::Directory(Vec::new(), true));
        let effects = cx.take_effects();
        assert_eq!(effects.len(), 4, "{effects:?}");
        let shown: Vec<String> = effects.iter().map(|e| format!("{e:?}")).collect();
        assert!(shown[0].starts_with("WsConnect(3, "), "{}", shown[0]);
        assert!(shown[1].starts_with("WsSend(3, "), "{}", shown[1]);
        assert!(shown[2].starts_with("WsClose(3, 1000, "), "{}", shown[2]);
        assert!(shown[3].contains("Directory"), "{}", shown[3]);
        let crate::connector::Effect::WsConnect(_, url, sent) = &effects[0] else {
            unreachable!("checked above");
        };
        assert_eq!(url, "wss://ws.example.com/ws?access_token=t");
        let expected: crate::presence::connector::websocket::ConnectOptions = options.into();
        assert_eq!(format!("{sent:?}"), format!("{expected:?}"));
    }

    fn request() -> Request {
        Request {
            method: "POST",
            url: "https://login.example.com/token".into(),
            headers: vec![("Authorization".into(), "Bearer s3cret".into())],
            body: b"client_secret=s3cret".to_vec(),
            timeout_ms: 20_000,
        }
    }

    #[test]
    fn a_request_converts_with_its_headers_body_and_timeout() {
        let wire: http::Request = request().into();
        assert_eq!(wire.method, "POST");
        assert_eq!(wire.url, "https://login.example.com/token");
        assert_eq!(wire.headers[0].name, "Authorization");
        assert_eq!(wire.headers[0].value, "Bearer s3cret");
        assert_eq!(wire.body, b"client_secret=s3cret");
        assert_eq!(wire.timeout_ms, Some(20_000));
        assert_eq!(request().header("authorization"), Some("Bearer s3cret"));
    }

    #[test]
    fn debug_shows_no_header_or_body() {
        let shown = format!("{:?}", request());
        assert_eq!(shown, "POST https://login.example.com/token");
    }

    #[test]
    fn outcomes_keep_the_answer_or_render_why_there_is_none() {
        let answer = outcome(Ok(http::Response {
            status: 429,
            headers: vec![Header {
                name: "Retry-After".into(),
                value: "7".into(),
            }],
            body: b"slow down".to_vec(),
        }))
        .unwrap();
        assert_eq!(answer.status, 429);
        assert_eq!(answer.header("retry-after"), Some("7"));
        assert_eq!(answer.body, b"slow down");
        assert_eq!(
            outcome(Err(HttpError::Refused(HostError::NotGranted(
                "https://ews.example.com:443".into()
            )))),
            Err("not-granted: https://ews.example.com:443".into())
        );
        assert_eq!(
            outcome(Err(HttpError::Failed(Failure::Refused))),
            Err("connection refused".into())
        );
    }
}
