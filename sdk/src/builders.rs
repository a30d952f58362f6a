//! Builders for the normalized presence types and for HTTP requests.

use crate::presence::connector::http;
use crate::presence::connector::websocket::ConnectOptions;
use crate::types::{
    Activity, Availability, CalendarPresence, Capabilities, Channels, ForwardTarget, Header,
    LineState, Ordering, PresenceUpdate, RichPresence, TelephonyPresence, TelephonySource,
    TimestampMs, UpdateOrigin, VendorValue, WriteId,
};

/// A [`PresenceUpdate`] for one endpoint, built channel by channel. Channels
/// left out are not changed; the origin defaults to the platform.
///
/// ```
/// use presence_connector_sdk::{Availability, LineState, Presence};
/// let update = Presence::new("201")
///     .available(Availability::Busy)
///     .note("in a call")
///     .line(LineState::InCall)
///     .build();
/// assert_eq!(update.rich.unwrap().availability, Availability::Busy);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Presence(PresenceUpdate);

impl Presence {
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self(PresenceUpdate {
            endpoint: endpoint.into(),
            observed_at: None,
            ordering: None,
            origin: UpdateOrigin::Platform,
            telephony: None,
            rich: None,
            calendar: None,
            valid_for_ms: None,
            raw: Vec::new(),
        })
    }

    fn rich_mut(&mut self) -> &mut RichPresence {
        self.0.rich.get_or_insert(RichPresence {
            availability: Availability::Unknown,
            activity: None,
            note: None,
        })
    }

    fn telephony_mut(&mut self) -> &mut TelephonyPresence {
        self.0.telephony.get_or_insert(TelephonyPresence {
            line: LineState::Unknown,
            do_not_disturb: false,
            forward: None,
            source: TelephonySource::PbxLine,
        })
    }

    /// Rich presence: availability (the channel is added if absent).
    pub fn available(mut self, availability: Availability) -> Self {
        self.rich_mut().availability = availability;
        self
    }

    /// Rich presence: activity.
    pub fn activity(mut self, activity: Activity) -> Self {
        self.rich_mut().activity = Some(activity);
        self
    }

    /// Rich presence: note.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.rich_mut().note = Some(note.into());
        self
    }

    /// Telephony: line state (the channel is added if absent, sourced from a
    /// PBX line unless [`sip_derived`](Self::sip_derived)).
    pub fn line(mut self, line: LineState) -> Self {
        self.telephony_mut().line = line;
        self
    }

    /// Telephony: do-not-disturb.
    pub fn dnd(mut self, on: bool) -> Self {
        self.telephony_mut().do_not_disturb = on;
        self
    }

    /// Telephony: call forwarding.
    pub fn forward(mut self, target: ForwardTarget) -> Self {
        self.telephony_mut().forward = Some(target);
        self
    }

    /// Telephony derived from SIP presence rather than a PBX line.
    pub fn sip_derived(mut self) -> Self {
        self.telephony_mut().source = TelephonySource::SipDerived;
        self
    }

    /// The whole calendar channel.
    pub fn calendar(mut self, calendar: CalendarPresence) -> Self {
        self.0.calendar = Some(calendar);
        self
    }

    /// The source's own time for this state.
    pub fn observed_at(mut self, at: TimestampMs) -> Self {
        self.0.observed_at = Some(at);
        self
    }

    /// The source's ordering (epoch and sequence).
    pub fn ordering(mut self, epoch: impl Into<String>, sequence: u64) -> Self {
        self.0.ordering = Some(Ordering {
            epoch: epoch.into(),
            sequence,
        });
        self
    }

    /// The echo of the hub's write with this id.
    pub fn from_hub_write(mut self, write: WriteId) -> Self {
        self.0.origin = UpdateOrigin::HubWrite(write);
        self
    }

    /// Caused by a named rule of the connector itself.
    pub fn from_rule(mut self, rule: impl Into<String>) -> Self {
        self.0.origin = UpdateOrigin::ConnectorRule(rule.into());
        self
    }

    /// How long this state holds without another report.
    pub fn valid_for_ms(mut self, ms: u64) -> Self {
        self.0.valid_for_ms = Some(ms);
        self
    }

    /// A vendor value kept for diagnostics.
    pub fn raw(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.raw.push(VendorValue {
            name: name.into(),
            value: value.into(),
        });
        self
    }

    pub fn build(self) -> PresenceUpdate {
        self.0
    }
}

impl From<Presence> for PresenceUpdate {
    fn from(presence: Presence) -> Self {
        presence.0
    }
}

/// An outgoing HTTP request, built step by step; pass it to
/// [`Cx::http`](crate::Cx::http).
#[derive(Debug, Clone, PartialEq)]
pub struct Request(http::Request);

impl Request {
    pub fn new(method: &str, url: impl Into<String>) -> Self {
        Self(http::Request {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout_ms: None,
        })
    }

    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }

    pub fn put(url: impl Into<String>) -> Self {
        Self::new("PUT", url)
    }

    pub fn delete(url: impl Into<String>) -> Self {
        Self::new("DELETE", url)
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.headers.push(Header {
            name: name.into(),
            value: value.into(),
        });
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.0.body = body.into();
        self
    }

    /// A JSON body, with its content type.
    pub fn json_text(self, json: impl Into<String>) -> Self {
        self.header("content-type", "application/json")
            .body(json.into().into_bytes())
    }

    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.0.timeout_ms = Some(ms);
        self
    }
}

impl From<Request> for http::Request {
    fn from(request: Request) -> Self {
        request.0
    }
}

/// Reading an HTTP response.
pub trait ResponseExt {
    /// The first header of this name, ignoring case.
    fn header(&self, name: &str) -> Option<&str>;
    /// The body as text (lossy UTF-8).
    fn text(&self) -> String;
    /// Whether the status is 2xx.
    fn is_success(&self) -> bool;
}

impl ResponseExt for http::Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|header| header.name.eq_ignore_ascii_case(name))
            .map(|header| header.value.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// WebSocket connect options, built step by step; pass them to
/// [`Cx::ws_connect`](crate::Cx::ws_connect). `WsOptions::default()` sends no
/// extra headers, offers no subprotocol, sends no pings and takes the host's
/// connect timeout (10 s).
#[derive(Debug, Clone, PartialEq)]
pub struct WsOptions(ConnectOptions);

impl Default for WsOptions {
    fn default() -> Self {
        Self(ConnectOptions {
            headers: Vec::new(),
            subprotocols: Vec::new(),
            connect_timeout_ms: None,
            ping_interval_ms: None,
            pong_timeout_ms: None,
        })
    }
}

impl WsOptions {
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.headers.push(Header {
            name: name.into(),
            value: value.into(),
        });
        self
    }

    /// Offers a subprotocol (in order of preference).
    pub fn subprotocol(mut self, name: impl Into<String>) -> Self {
        self.0.subprotocols.push(name.into());
        self
    }

    pub fn connect_timeout_ms(mut self, ms: u32) -> Self {
        self.0.connect_timeout_ms = Some(ms);
        self
    }

    /// Pings every `interval_ms` while idle; closes with `timeout` when no
    /// frame arrives within `pong_timeout_ms` of a ping.
    pub fn ping(mut self, interval_ms: u32, pong_timeout_ms: u32) -> Self {
        self.0.ping_interval_ms = Some(interval_ms);
        self.0.pong_timeout_ms = Some(pong_timeout_ms);
        self
    }
}

impl From<WsOptions> for ConnectOptions {
    fn from(options: WsOptions) -> Self {
        options.0
    }
}

/// No writes, no restore, no expiry, no webhooks, one event per call: a
/// read-only connector. Name what yours adds:
/// `Capabilities { webhooks: true, ..Capabilities::default() }`.
impl Default for Capabilities {
    fn default() -> Self {
        Self {
            writes: Channels::empty(),
            dnd_scopes: Vec::new(),
            restore: false,
            expiry: false,
            webhooks: false,
            batched_events: false,
        }
    }
}
