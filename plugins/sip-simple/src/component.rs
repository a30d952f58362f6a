//! The component glue: host transport, timers and reports around [`Core`].

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use presence_connector_sdk::{
    self as sdk, Config, ConfigEntry, ConnectorError, ConnectorStatus, EndpointId, Event, Guest,
    PluginInfo, SocketAddress, SocketId, TimerId, WebhookRequest, WebhookResponse, WriteRequest,
    instance, net, report, timers,
};

use crate::core::{Action, Core, TimerKey};
use crate::settings::{Settings, Transport};
use crate::sip::framing::{Frame, Framer};
use crate::sip::request::Local;

/// What a core or component timer stands for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Timer {
    Core(TimerKey),
    Reconnect,
}

#[derive(Default)]
struct Link {
    udp: Option<SocketId>,
    stream: Option<SocketId>,
    framer: Framer,
    reconnect_failures: u32,
}

/// The core's timers and the reconnect timer, multiplexed onto one host
/// timer: the host allows an instance a bounded number of open handles
/// (1024), and one host timer per SIP timer would run out of them at a few
/// hundred watched endpoints (each subscription keeps a refresh timer, and
/// a SUBSCRIBE in flight three more). Setting and cancelling a timer is then
/// a map operation inside the component instead of two host calls.
#[derive(Default)]
struct Timers {
    /// When each pending timer is due, and its tie-breaking serial number.
    due: HashMap<Timer, (Instant, u64)>,
    /// The same timers in due order.
    queue: BTreeMap<(Instant, u64), Timer>,
    serial: u64,
    /// The host timer that is set, and when it fires.
    armed: Option<(TimerId, Instant)>,
}

impl Timers {
    fn set(&mut self, t: Timer, ms: u64) {
        self.cancel(&t);
        let at = Instant::now() + Duration::from_millis(ms);
        self.serial += 1;
        self.due.insert(t.clone(), (at, self.serial));
        self.queue.insert((at, self.serial), t);
        self.arm();
    }

    fn cancel(&mut self, t: &Timer) {
        if let Some(k) = self.due.remove(t) {
            self.queue.remove(&k);
        }
    }

    /// Make sure the host timer fires no later than the earliest deadline.
    /// A host timer that fires with nothing due just re-arms.
    fn arm(&mut self) {
        let Some(&(next, _)) = self.queue.keys().next() else {
            return;
        };
        if let Some((h, at)) = self.armed {
            if at <= next {
                return;
            }
            timers::cancel(h);
        }
        let ms = next
            .saturating_duration_since(Instant::now())
            .as_micros()
            .div_ceil(1000) as u64;
        self.armed = Some((timers::set_timer(ms), next));
    }

    /// The host timer `h` fired: the timers now due, in order.
    fn fired(&mut self, h: TimerId) -> Vec<Timer> {
        if self.armed.is_some_and(|(a, _)| a == h) {
            self.armed = None;
        }
        let now = Instant::now();
        let mut out = Vec::new();
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let t = entry.remove();
            self.due.remove(&t);
            out.push(t);
        }
        out
    }
}

#[derive(Default)]
struct State {
    core: Option<Core>,
    link: Link,
    timers: Timers,
    /// The `shutdown` event came: the link stays up, without reconnecting,
    /// until the core's goodbyes are answered (the host keeps delivering
    /// I/O for a grace period).
    stopping: bool,
}

thread_local! {
    // A component instance is single-threaded; the host serialises calls.
    static STATE: RefCell<State> = RefCell::new(State::default());
}

impl State {
    fn set_timer(&mut self, t: Timer, ms: u64) {
        self.timers.set(t, ms);
    }

    fn cancel_timer(&mut self, t: &Timer) {
        self.timers.cancel(t);
    }

    fn server(&self) -> Option<SocketAddress> {
        let s = self.core.as_ref()?.settings();
        Some(SocketAddress {
            host: s.server_host.clone(),
            port: s.server_port,
        })
    }

    fn send(&mut self, bytes: &[u8]) {
        let Some(server) = self.server() else { return };
        let result = match (self.link.udp, self.link.stream) {
            (Some(sock), _) => net::udp_send(sock, &server, bytes),
            (None, Some(stream)) => net::stream_send(stream, bytes),
            _ => return,
        };
        if let Err(e) = result {
            sdk::warn!("send failed: {}", sdk::render_host_error(&e));
        }
    }

    /// Carry out what the core asked for.
    fn run(&mut self) {
        let Some(core) = self.core.as_mut() else {
            return;
        };
        let actions = core.take_actions();
        for a in actions {
            match a {
                Action::Send(bytes) => self.send(&bytes),
                Action::SetTimer(k, ms) => self.set_timer(Timer::Core(k), ms),
                Action::CancelTimer(k) => self.cancel_timer(&Timer::Core(k)),
                Action::Presence(u) => report::presence(&u),
                Action::EndpointState(ep, st, detail) => {
                    report::endpoint_state(&ep, st, detail.as_deref())
                }
                Action::Status(st, detail) => report::status(st, detail.as_deref()),
                Action::Outcome(id, outcome) => report::write_outcome(id, &outcome),
                Action::Warn(m) => sdk::warn!("{m}"),
                Action::Info(m) => sdk::info!("{m}"),
            }
        }
    }

    /// Open the transport to the server.
    fn connect(&mut self) {
        let Some(server) = self.server() else { return };
        let transport = self.core.as_ref().map(|c| c.settings().transport);
        match transport {
            Some(Transport::Udp) => match net::udp_bind(&server) {
                Ok(sock) => {
                    self.link.udp = Some(sock.socket);
                    let local = Local {
                        transport: "UDP",
                        host: sock.local.host,
                        port: sock.local.port,
                    };
                    if let Some(c) = self.core.as_mut() {
                        c.transport_up(local);
                    }
                }
                Err(e) => self.link_failed(&sdk::render_host_error(&e)),
            },
            Some(t) => {
                let security = if t == Transport::Tls {
                    net::StreamSecurity::Tls
                } else {
                    net::StreamSecurity::Plain
                };
                let options = net::StreamOptions {
                    security,
                    connect_timeout_ms: None,
                };
                match net::stream_connect(&server, options) {
                    Ok(h) => self.link.stream = Some(h),
                    Err(e) => self.link_failed(&sdk::render_host_error(&e)),
                }
            }
            None => {}
        }
    }

    fn link_failed(&mut self, why: &str) {
        if let Some(c) = self.core.as_mut() {
            c.transport_down(why);
        }
        if self.stopping {
            return;
        }
        self.link.reconnect_failures += 1;
        let ms = (1000u64 << self.link.reconnect_failures.min(5)).min(30_000);
        self.set_timer(Timer::Reconnect, ms);
    }

    fn close_link(&mut self) {
        for h in [self.link.udp.take(), self.link.stream.take()]
            .into_iter()
            .flatten()
        {
            net::close(h);
        }
        self.link.framer.clear();
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Datagram(d) if Some(d.socket) == self.link.udp => {
                if let Some(c) = self.core.as_mut() {
                    c.on_message(&d.data);
                }
            }
            Event::StreamConnected(info) if Some(info.socket) == self.link.stream => {
                self.link.reconnect_failures = 0;
                let transport = match self.core.as_ref().map(|c| c.settings().transport) {
                    Some(Transport::Tls) => "TLS",
                    _ => "TCP",
                };
                let local = Local {
                    transport,
                    host: info.local.host,
                    port: info.local.port,
                };
                if let Some(c) = self.core.as_mut() {
                    c.transport_up(local);
                }
            }
            Event::StreamData(d) if Some(d.socket) == self.link.stream => {
                for frame in self.link.framer.push(&d.data) {
                    match frame {
                        Frame::Message(m) => {
                            if let Some(c) = self.core.as_mut() {
                                c.on_message(&m);
                            }
                        }
                        Frame::Broken(why) => {
                            sdk::warn!("stream out of sync ({why}); reconnecting");
                            self.close_link();
                            self.link_failed(&why);
                            break;
                        }
                    }
                }
            }
            Event::StreamClosed(c) if Some(c.socket) == self.link.stream => {
                self.link.stream = None;
                self.link.framer.clear();
                let why = crate::close::describe(&c.close);
                sdk::warn!("stream to the server closed: {why}");
                self.link_failed(&why);
            }
            Event::Timer(h) => {
                for t in self.timers.fired(h) {
                    match t {
                        Timer::Core(k) => {
                            if let Some(c) = self.core.as_mut() {
                                c.on_timer(k);
                            }
                        }
                        Timer::Reconnect if self.stopping => {}
                        Timer::Reconnect => self.connect(),
                    }
                    // Carry out each timer's actions before the next fires.
                    self.run();
                }
                self.timers.arm();
            }
            Event::Shutdown => {
                self.stopping = true;
                if let Some(c) = self.core.as_mut() {
                    c.shutdown();
                }
            }
            _ => {}
        }
        self.run();
        // Closing at once would drop an un-SUBSCRIBE still queued on a
        // stream and leave digest challenges to it unanswered.
        if self.stopping && !self.core.as_ref().is_some_and(Core::saying_goodbye) {
            self.close_link();
        }
    }
}

struct SipSimple;

impl Guest for SipSimple {
    fn describe() -> PluginInfo {
        crate::info::plugin_info()
    }

    fn configure(entries: Vec<ConfigEntry>) -> Result<(), ConnectorError> {
        let settings = Settings::from_config(&Config::new(entries))?;
        STATE.with_borrow_mut(|st| {
            if let Some(c) = st.core.as_mut() {
                c.shutdown();
                st.run();
            }
            st.close_link();
            st.stopping = false;
            sdk::info!(
                "configured for {}:{} over {:?} as {}",
                settings.server_host,
                settings.server_port,
                settings.transport,
                settings.aor()
            );
            st.core = Some(Core::new(settings, Box::new(instance::random_bytes)));
            report::status(ConnectorStatus::ConnectionError, Some("connecting"));
            st.connect();
            st.run();
        });
        Ok(())
    }

    fn handle_events(events: Vec<Event>) -> Result<(), ConnectorError> {
        // A backed-up host queue hands over several datagrams at once;
        // each is handled (and its actions carried out) before the next.
        STATE.with_borrow_mut(|st| events.into_iter().for_each(|e| st.event(e)));
        Ok(())
    }

    fn handle_webhook(_request: WebhookRequest) -> WebhookResponse {
        WebhookResponse {
            status: 404,
            headers: vec![],
            body: b"sip-simple has no webhooks".to_vec(),
        }
    }

    fn watch(endpoints: Vec<EndpointId>) -> Result<(), ConnectorError> {
        STATE.with_borrow_mut(|st| {
            let core = st.core.as_mut().ok_or(ConnectorError::NotConfigured)?;
            core.watch(&endpoints);
            st.run();
            Ok(())
        })
    }

    fn unwatch(endpoints: Vec<EndpointId>) -> Result<(), ConnectorError> {
        STATE.with_borrow_mut(|st| {
            let core = st.core.as_mut().ok_or(ConnectorError::NotConfigured)?;
            core.unwatch(&endpoints);
            st.run();
            Ok(())
        })
    }

    fn write_presence(request: WriteRequest) -> Result<(), ConnectorError> {
        STATE.with_borrow_mut(|st| {
            let core = st.core.as_mut().ok_or(ConnectorError::NotConfigured)?;
            let r = core.write(request, timers::now());
            st.run();
            r
        })
    }
}

// Exported only in the component: natively (tests, benchmarks) the crate is
// a plain library, and the component's export names are not valid symbols.
#[cfg(target_arch = "wasm32")]
sdk::export!(SipSimple);
