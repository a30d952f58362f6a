//! `presence:connector@0.1.0`, frozen: its bindings, its imports served by
//! the newest version's host functions, and the conversions between its
//! values and the newest version's.
//!
//! What 0.1.0 cannot say is filled in conservatively: its presence updates
//! come from the platform (no echo marks) and compare their `sequence` per
//! endpoint in one epoch, as 0.1.0 promised; its writes report no outcome;
//! `clear` is the newest version's `restore`; it declares no endpoint kinds,
//! so its instances watch the user attribute the operator picks (default
//! `username`).

use super::since_v0_2_0 as latest;
use super::since_v0_2_0::guest as new_guest;
use super::since_v0_2_0::types as new;
use crate::runtime::host::InstanceState;

wasmtime::component::bindgen!({
    path: "../wit/since_v0.1.0",
    world: "connector-plugin",
    imports: { default: trappable },
    exports: { default: async },
});

use exports::presence::connector::connector as old_guest;
use presence::connector::types as old;
use presence::connector::{http, kv, log, net, report, timers, websocket};

type R<T> = wasmtime::Result<T>;

// ---- values from 0.1.0 to the newest version -------------------------------

fn addr(a: old::SocketAddress) -> new::SocketAddress {
    new::SocketAddress {
        host: a.host,
        port: a.port,
    }
}

fn headers(h: Vec<old::Header>) -> Vec<new::Header> {
    h.into_iter()
        .map(|h| new::Header {
            name: h.name,
            value: h.value,
        })
        .collect()
}

fn availability(a: old::Availability) -> new::Availability {
    match a {
        old::Availability::Available => new::Availability::Available,
        old::Availability::Away => new::Availability::Away,
        old::Availability::Busy => new::Availability::Busy,
        old::Availability::DoNotDisturb => new::Availability::DoNotDisturb,
        old::Availability::Offline => new::Availability::Offline,
        old::Availability::Unknown => new::Availability::Unknown,
    }
}

fn activity(a: old::Activity) -> new::Activity {
    match a {
        old::Activity::InACall => new::Activity::InACall,
        old::Activity::InAConference => new::Activity::InAConference,
        old::Activity::InAMeeting => new::Activity::InAMeeting,
        old::Activity::Presenting => new::Activity::Presenting,
        old::Activity::OutOfOffice => new::Activity::OutOfOffice,
        old::Activity::BeRightBack => new::Activity::BeRightBack,
        old::Activity::OffWork => new::Activity::OffWork,
        old::Activity::Inactive => new::Activity::Inactive,
        old::Activity::Other(s) => new::Activity::Other(s),
    }
}

fn presence_update(u: old::PresenceUpdate) -> new::PresenceUpdate {
    new::PresenceUpdate {
        endpoint: u.endpoint,
        observed_at: u.observed_at,
        // 0.1.0 compared sequences per endpoint for good: one epoch.
        ordering: u.sequence.map(|sequence| new::Ordering {
            epoch: String::new(),
            sequence,
        }),
        origin: new::UpdateOrigin::Platform,
        telephony: u.telephony.map(|t| new::TelephonyPresence {
            line: match t.line {
                old::LineState::Idle => new::LineState::Idle,
                old::LineState::Ringing => new::LineState::Ringing,
                old::LineState::Dialing => new::LineState::Dialing,
                old::LineState::InCall => new::LineState::InCall,
                old::LineState::OnHold => new::LineState::OnHold,
                old::LineState::Unknown => new::LineState::Unknown,
            },
            do_not_disturb: t.do_not_disturb,
            forward: t.forward.map(|f| match f {
                old::ForwardTarget::Voicemail => new::ForwardTarget::Voicemail,
                old::ForwardTarget::Number(n) => new::ForwardTarget::Number(n),
            }),
            source: match t.source {
                old::TelephonySource::PbxLine => new::TelephonySource::PbxLine,
                old::TelephonySource::SipDerived => new::TelephonySource::SipDerived,
            },
        }),
        rich: u.rich.map(|r| new::RichPresence {
            availability: availability(r.availability),
            activity: r.activity.map(activity),
            note: r.note,
        }),
        calendar: None,
        valid_for_ms: None,
        raw: u
            .raw
            .into_iter()
            .map(|v| new::VendorValue {
                name: v.name,
                value: v.value,
            })
            .collect(),
    }
}

fn endpoint_state(s: old::EndpointState) -> new::EndpointState {
    match s {
        old::EndpointState::Active => new::EndpointState::Active,
        old::EndpointState::Requesting => new::EndpointState::Requesting,
        old::EndpointState::NotFound => new::EndpointState::NotFound,
        old::EndpointState::AccessDenied => new::EndpointState::AccessDenied,
        old::EndpointState::Error => new::EndpointState::Error,
    }
}

fn connector_status(s: old::ConnectorStatus) -> new::ConnectorStatus {
    match s {
        old::ConnectorStatus::NotConfigured => new::ConnectorStatus::NotConfigured,
        old::ConnectorStatus::Disabled => new::ConnectorStatus::Disabled,
        old::ConnectorStatus::Forbidden => new::ConnectorStatus::Forbidden,
        old::ConnectorStatus::ConnectionError => new::ConnectorStatus::ConnectionError,
        old::ConnectorStatus::UpAndRunning => new::ConnectorStatus::UpAndRunning,
        old::ConnectorStatus::CredentialsNotFound => new::ConnectorStatus::CredentialsNotFound,
        old::ConnectorStatus::LoginRequired => new::ConnectorStatus::LoginRequired,
        old::ConnectorStatus::Throttled => new::ConnectorStatus::Throttled,
    }
}

fn field_kind(k: old::FieldKind) -> new::FieldKind {
    match k {
        old::FieldKind::Text => new::FieldKind::Text,
        old::FieldKind::Integer => new::FieldKind::Integer,
        old::FieldKind::Boolean => new::FieldKind::Boolean,
        old::FieldKind::Choice(c) => new::FieldKind::Choice(c),
        old::FieldKind::ServerAddress(p) => new::FieldKind::ServerAddress(p),
        old::FieldKind::Url => new::FieldKind::Url,
    }
}

/// A 0.1.0 description: no endpoint kinds (the operator picks the attribute;
/// `username` by default), and no capabilities beyond writing rich presence
/// and webhooks, which 0.1.0 offered every plugin.
pub fn plugin_info(i: old::PluginInfo) -> new::PluginInfo {
    new::PluginInfo {
        name: i.name,
        version: i.version,
        description: i.description,
        config_fields: i
            .config_fields
            .into_iter()
            .map(|f| new::ConfigField {
                name: f.name,
                label: f.label,
                description: f.description,
                kind: field_kind(f.kind),
                default_value: f.default_value,
                required: f.required,
                secret: f.secret,
            })
            .collect(),
        endpoint_kinds: vec![new::EndpointKind {
            attribute: "username".into(),
            label: "Username".into(),
            feeds: new::Channels::RICH | new::Channels::TELEPHONY,
        }],
        capabilities: new::Capabilities {
            writes: new::Channels::RICH,
            dnd_scopes: Vec::new(),
            restore: true,
            expiry: false,
            webhooks: true,
            batched_events: false,
        },
    }
}

pub fn connector_error(e: old::ConnectorError) -> new::ConnectorError {
    match e {
        old::ConnectorError::InvalidConfig(f) => {
            new::ConnectorError::InvalidConfig(new::FieldError {
                field: f.field,
                message: f.message,
            })
        }
        old::ConnectorError::NotConfigured => new::ConnectorError::NotConfigured,
        old::ConnectorError::UnknownEndpoint(e) => new::ConnectorError::UnknownEndpoint(e),
        old::ConnectorError::Unsupported(m) => new::ConnectorError::Unsupported(m),
        old::ConnectorError::Other(m) => new::ConnectorError::Other(m),
    }
}

pub fn webhook_response(r: old_guest::WebhookResponse) -> new_guest::WebhookResponse {
    new_guest::WebhookResponse {
        status: r.status,
        headers: headers(r.headers),
        body: r.body,
    }
}

// ---- values from the newest version to 0.1.0 --------------------------------

fn old_addr(a: new::SocketAddress) -> old::SocketAddress {
    old::SocketAddress {
        host: a.host,
        port: a.port,
    }
}

fn old_headers(h: Vec<new::Header>) -> Vec<old::Header> {
    h.into_iter()
        .map(|h| old::Header {
            name: h.name,
            value: h.value,
        })
        .collect()
}

fn old_host_error(e: new::HostError) -> old::HostError {
    match e {
        new::HostError::NotGranted(m) => old::HostError::NotGranted(m),
        new::HostError::InvalidArgument(m) => old::HostError::InvalidArgument(m),
        new::HostError::UnknownHandle(h) => old::HostError::UnknownHandle(h),
        new::HostError::LimitExceeded(m) => old::HostError::LimitExceeded(m),
        new::HostError::Io(m) => old::HostError::Io(m),
        new::HostError::Other(m) => old::HostError::Other(m),
    }
}

fn old_availability(a: new::Availability) -> old::Availability {
    match a {
        new::Availability::Available => old::Availability::Available,
        new::Availability::Away => old::Availability::Away,
        new::Availability::Busy => old::Availability::Busy,
        new::Availability::DoNotDisturb => old::Availability::DoNotDisturb,
        new::Availability::Offline => old::Availability::Offline,
        new::Availability::Unknown => old::Availability::Unknown,
    }
}

fn old_activity(a: new::Activity) -> old::Activity {
    match a {
        new::Activity::InACall => old::Activity::InACall,
        new::Activity::InAConference => old::Activity::InAConference,
        new::Activity::InAMeeting => old::Activity::InAMeeting,
        new::Activity::Presenting => old::Activity::Presenting,
        new::Activity::OutOfOffice => old::Activity::OutOfOffice,
        new::Activity::BeRightBack => old::Activity::BeRightBack,
        new::Activity::OffWork => old::Activity::OffWork,
        new::Activity::Inactive => old::Activity::Inactive,
        new::Activity::Other(s) => old::Activity::Other(s),
    }
}

pub fn config_entry(e: new::ConfigEntry) -> old::ConfigEntry {
    old::ConfigEntry {
        name: e.name,
        value: match e.value {
            new::ConfigValue::Text(t) => old::ConfigValue::Text(t),
            new::ConfigValue::Integer(i) => old::ConfigValue::Integer(i),
            new::ConfigValue::Boolean(b) => old::ConfigValue::Boolean(b),
        },
    }
}

/// `restore` is 0.1.0's `clear` (remove what the hub set); 0.1.0 has no
/// DND scope.
pub fn presence_write(a: new::WriteAction) -> old::PresenceWrite {
    match a {
        new::WriteAction::Set(i) => old::PresenceWrite::Set(old::PresenceIntent {
            availability: old_availability(i.availability),
            activity: i.activity.map(old_activity),
            note: i.note,
            expires_in_ms: i.expires_in_ms,
        }),
        new::WriteAction::Restore => old::PresenceWrite::Clear,
    }
}

fn closed(handle: u32, c: new::CloseInfo) -> old_guest::Closed {
    old_guest::Closed {
        handle,
        error: c.failure.map(|f| crate::runtime::convert::failure_text(&f)),
    }
}

pub fn event(e: new_guest::Event) -> old_guest::Event {
    use new_guest::Event as N;
    use old_guest::Event as O;
    match e {
        N::Datagram(d) => O::Datagram(old_guest::Datagram {
            socket: d.socket,
            from: old_addr(d.from),
            data: d.data,
        }),
        N::StreamConnected(s) => O::StreamConnected(old_guest::StreamInfo {
            stream: s.socket,
            local: old_addr(s.local),
            remote: old_addr(s.remote),
        }),
        N::StreamData(s) => O::StreamData(old_guest::StreamData {
            stream: s.socket,
            data: s.data,
        }),
        N::StreamClosed(c) => O::StreamClosed(closed(c.socket, c.close)),
        N::HttpResponse(r) => O::HttpResponse(old_guest::HttpResult {
            request: r.request,
            outcome: r
                .outcome
                .map(|r| http::Response {
                    status: r.status,
                    headers: old_headers(r.headers),
                    body: r.body,
                })
                .map_err(|f| crate::runtime::convert::failure_text(&f)),
        }),
        N::WebsocketOpened(o) => O::WebsocketOpened(o.socket),
        N::WebsocketMessage(m) => O::WebsocketMessage(old_guest::WsMessage {
            socket: m.socket,
            payload: match m.payload {
                new_guest::WsPayload::Text(t) => old_guest::WsPayload::Text(t),
                new_guest::WsPayload::Binary(b) => old_guest::WsPayload::Binary(b),
            },
        }),
        N::WebsocketClosed(c) => O::WebsocketClosed(closed(c.socket, c.close)),
        N::Timer(t) => O::Timer(t),
        N::Shutdown => O::Shutdown,
    }
}

pub fn webhook_request(r: new_guest::WebhookRequest) -> old_guest::WebhookRequest {
    old_guest::WebhookRequest {
        method: r.method,
        path: r.path,
        query: r.query,
        headers: old_headers(r.headers),
        body: r.body,
    }
}

// ---- 0.1.0 imports, served by the newest version's host functions --------

impl old::Host for InstanceState {}

impl log::Host for InstanceState {
    fn log(&mut self, level: log::Level, message: String) -> R<()> {
        use latest::presence::connector::log::{Host, Level};
        let level = match level {
            log::Level::Trace => Level::Trace,
            log::Level::Debug => Level::Debug,
            log::Level::Info => Level::Info,
            log::Level::Warn => Level::Warn,
            log::Level::Error => Level::Error,
        };
        Host::log(self, level, message)
    }
}

impl net::Host for InstanceState {
    fn udp_bind(
        &mut self,
        toward: old::SocketAddress,
    ) -> R<Result<net::UdpSocket, old::HostError>> {
        use latest::presence::connector::net::Host;
        Ok(Host::udp_bind(self, addr(toward))?
            .map(|s| net::UdpSocket {
                handle: s.socket,
                local: old_addr(s.local),
            })
            .map_err(old_host_error))
    }

    fn udp_send(
        &mut self,
        socket: u32,
        to: old::SocketAddress,
        data: Vec<u8>,
    ) -> R<Result<(), old::HostError>> {
        use latest::presence::connector::net::Host;
        Ok(Host::udp_send(self, socket, addr(to), data)?.map_err(old_host_error))
    }

    fn stream_connect(
        &mut self,
        to: old::SocketAddress,
        security: net::StreamSecurity,
    ) -> R<Result<u32, old::HostError>> {
        use latest::presence::connector::net::{Host, StreamOptions, StreamSecurity};
        let options = StreamOptions {
            security: match security {
                net::StreamSecurity::Plain => StreamSecurity::Plain,
                net::StreamSecurity::Tls => StreamSecurity::Tls,
            },
            connect_timeout_ms: None,
        };
        Ok(Host::stream_connect(self, addr(to), options)?.map_err(old_host_error))
    }

    fn stream_send(&mut self, stream: u32, data: Vec<u8>) -> R<Result<(), old::HostError>> {
        use latest::presence::connector::net::Host;
        Ok(Host::stream_send(self, stream, data)?.map_err(old_host_error))
    }

    fn close(&mut self, handle: u32) -> R<()> {
        use latest::presence::connector::net::Host;
        Host::close(self, handle)
    }
}

impl http::Host for InstanceState {
    fn send(&mut self, request: http::Request) -> R<Result<u32, old::HostError>> {
        use latest::presence::connector::http::{Host, Request};
        let request = Request {
            method: request.method,
            url: request.url,
            headers: headers(request.headers),
            body: request.body,
            timeout_ms: request.timeout_ms,
        };
        Ok(Host::send(self, request)?.map_err(old_host_error))
    }
}

impl websocket::Host for InstanceState {
    fn connect(&mut self, url: String, hdrs: Vec<old::Header>) -> R<Result<u32, old::HostError>> {
        use latest::presence::connector::websocket::{ConnectOptions, Host};
        let options = ConnectOptions {
            headers: headers(hdrs),
            subprotocols: Vec::new(),
            connect_timeout_ms: None,
            ping_interval_ms: None,
            pong_timeout_ms: None,
        };
        Ok(Host::connect(self, url, options)?.map_err(old_host_error))
    }

    fn send_text(&mut self, socket: u32, text: String) -> R<Result<(), old::HostError>> {
        use latest::presence::connector::websocket::Host;
        Ok(Host::send_text(self, socket, text)?.map_err(old_host_error))
    }

    fn send_binary(&mut self, socket: u32, data: Vec<u8>) -> R<Result<(), old::HostError>> {
        use latest::presence::connector::websocket::Host;
        Ok(Host::send_binary(self, socket, data)?.map_err(old_host_error))
    }

    fn close(&mut self, socket: u32, code: u16, reason: String) -> R<()> {
        use latest::presence::connector::websocket::Host;
        Host::close(self, socket, code, reason)
    }
}

impl timers::Host for InstanceState {
    fn set_timer(&mut self, after_ms: u64) -> R<u32> {
        use latest::presence::connector::timers::Host;
        Host::set_timer(self, after_ms)
    }

    fn cancel(&mut self, timer: u32) -> R<()> {
        use latest::presence::connector::timers::Host;
        Host::cancel(self, timer)
    }

    fn now(&mut self) -> R<u64> {
        use latest::presence::connector::timers::Host;
        Host::now(self)
    }
}

impl kv::Host for InstanceState {
    fn get(&mut self, key: String) -> R<Result<Option<Vec<u8>>, old::HostError>> {
        use latest::presence::connector::kv::Host;
        Ok(Host::get(self, key)?.map_err(old_host_error))
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> R<Result<(), old::HostError>> {
        use latest::presence::connector::kv::Host;
        Ok(Host::set(self, key, value)?.map_err(old_host_error))
    }

    fn delete(&mut self, key: String) -> R<Result<(), old::HostError>> {
        use latest::presence::connector::kv::Host;
        Ok(Host::delete(self, key)?.map_err(old_host_error))
    }

    fn list_keys(&mut self, prefix: String) -> R<Result<Vec<String>, old::HostError>> {
        use latest::presence::connector::kv::Host;
        Ok(Host::list_keys(self, prefix)?.map_err(old_host_error))
    }
}

impl report::Host for InstanceState {
    fn presence(&mut self, update: old::PresenceUpdate) -> R<()> {
        use latest::presence::connector::report::Host;
        Host::presence(self, presence_update(update))
    }

    fn endpoint_state(
        &mut self,
        endpoint: String,
        state: old::EndpointState,
        detail: Option<String>,
    ) -> R<()> {
        use latest::presence::connector::report::Host;
        Host::endpoint_state(self, endpoint, endpoint_state(state), detail)
    }

    fn status(&mut self, status: old::ConnectorStatus, detail: Option<String>) -> R<()> {
        use latest::presence::connector::report::Host;
        Host::status(self, connector_status(status), detail)
    }

    fn login_step(&mut self, step: Option<old::LoginStep>) -> R<()> {
        use latest::presence::connector::report::Host;
        Host::login_step(
            self,
            step.map(|s| new::LoginStep {
                message: s.message,
                url: s.url,
                user_code: s.user_code,
                expires_at: s.expires_at,
            }),
        )
    }

    fn directory(&mut self, entries: Vec<old::DirectoryEntry>, complete: bool) -> R<()> {
        use latest::presence::connector::report::Host;
        let entries = entries
            .into_iter()
            .map(|e| new::DirectoryEntry {
                endpoint: e.endpoint,
                email: e.email,
                display_name: e.display_name,
                extension: e.extension,
            })
            .collect();
        Host::directory(self, entries, complete)
    }
}
