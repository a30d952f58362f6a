//! The connector around [`Core`]: the link to the server (one UDP socket or
//! TCP/TLS stream, reconnected with backoff), stream framing, and the core's
//! actions turned into effects. The SDK's runtime owns the instance, the
//! timers (multiplexed on one host timer: a few hundred subscriptions each
//! keep several) and the socket handles.

use presence_connector_sdk::net::{StreamOptions, StreamSecurity};
use presence_connector_sdk::{
    CloseInfo, Config, Connector, ConnectorError, ConnectorStatus, Cx, EndpointId, PluginInfo,
    SocketAddress, WriteRequest,
};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

use crate::core::{Action, Core, TimerKey};
use crate::settings::{Settings, Transport};
use crate::sip::framing::{Frame, Framer};
use crate::sip::request::Local;

/// What a timer stands for: one of the core's, or the next connect attempt.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Timer {
    Core(TimerKey),
    Reconnect,
}

/// The one connection, to the configured server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Server;

pub struct SipSimple {
    core: Core,
    /// A UDP socket or stream is open (or connecting) under [`Server`].
    linked: bool,
    framer: Framer,
    reconnect_failures: u32,
    /// The `shutdown` event came: the link stays up, without reconnecting,
    /// until the core's goodbyes are answered (the host keeps delivering
    /// I/O for a grace period).
    stopping: bool,
}

impl SipSimple {
    fn server(&self) -> SocketAddress {
        let s = self.core.settings();
        SocketAddress {
            host: s.server_host.clone(),
            port: s.server_port,
        }
    }

    fn transport(&self) -> Transport {
        self.core.settings().transport
    }

    /// Opens the transport to the server; [`Connector::on_net_open`] or
    /// [`Connector::on_net_closed`] follows.
    fn connect(&mut self, cx: &mut Cx<Self>) {
        let server = self.server();
        let security = match self.transport() {
            Transport::Udp => {
                cx.udp_bind(Server, server);
                self.linked = true;
                return;
            }
            Transport::Tcp => StreamSecurity::Plain,
            Transport::Tls => StreamSecurity::Tls,
        };
        let options = StreamOptions {
            security,
            connect_timeout_ms: None,
        };
        cx.stream_connect(Server, server, options);
        self.linked = true;
    }

    fn link_failed(&mut self, cx: &mut Cx<Self>, why: &str) {
        self.linked = false;
        self.core.transport_down(why);
        if self.stopping {
            return;
        }
        self.reconnect_failures += 1;
        let ms = (1000u64 << self.reconnect_failures.min(5)).min(30_000);
        cx.set_timer(Timer::Reconnect, ms);
    }

    fn close_link(&mut self, cx: &mut Cx<Self>) {
        if std::mem::take(&mut self.linked) {
            cx.net_close(Server);
        }
        self.framer.clear();
    }

    /// Carries out what the core asked for, then closes the link once a
    /// stopping core has no goodbyes left (closing at once would drop an
    /// un-SUBSCRIBE still queued on a stream and leave digest challenges to
    /// it unanswered).
    fn run(&mut self, cx: &mut Cx<Self>) {
        for action in self.core.take_actions() {
            match action {
                // No link (waiting to reconnect): the core retransmits or
                // times the transaction out.
                Action::Send(_) if !self.linked => {}
                Action::Send(bytes) => match self.transport() {
                    Transport::Udp => cx.udp_send(Server, self.server(), bytes),
                    Transport::Tcp | Transport::Tls => cx.stream_send(Server, bytes),
                },
                Action::SetTimer(key, ms) => cx.set_timer(Timer::Core(key), ms),
                Action::CancelTimer(key) => cx.cancel_timer(Timer::Core(key)),
                Action::Presence(update) => cx.presence(update),
                Action::EndpointState(endpoint, state, detail) => {
                    cx.endpoint_state(endpoint, state, detail.as_deref())
                }
                Action::Status(status, detail) => cx.status(status, detail.as_deref()),
                Action::Outcome(write, outcome) => cx.write_outcome(write, outcome),
                Action::Warn(message) => cx.warn(message),
                Action::Info(message) => cx.info(message),
            }
        }
        if self.stopping && !self.core.saying_goodbye() {
            self.close_link(cx);
        }
    }
}

impl Connector for SipSimple {
    type TimerKey = Timer;
    type RequestKey = ();
    type SocketKey = Server;

    fn describe() -> PluginInfo {
        crate::info::plugin_info()
    }

    fn new(cx: &mut Cx<Self>, config: &Config) -> Result<Self, ConnectorError> {
        let settings = Settings::from_config(config)?;
        cx.info(format!(
            "configured for {}:{} over {:?} as {}",
            settings.server_host,
            settings.server_port,
            settings.transport,
            settings.aor()
        ));
        // Tags, Call-IDs, branches and cnonces must be unguessable: a
        // ChaCha20 generator seeded from the host's cryptographic one (one
        // host call per instance, not one per identifier).
        let seed: [u8; 32] = cx
            .random_bytes(32)
            .try_into()
            .map_err(|_| ConnectorError::Other("the host gave no random seed".into()))?;
        let mut rng = ChaCha20Rng::from_seed(seed);
        let random = Box::new(move |len: u32| {
            let mut bytes = vec![0; len as usize];
            rng.fill_bytes(&mut bytes);
            bytes
        });
        let mut sip = SipSimple {
            core: Core::new(settings, random),
            linked: false,
            framer: Framer::default(),
            reconnect_failures: 0,
            stopping: false,
        };
        cx.status(ConnectorStatus::ConnectionError, Some("connecting"));
        sip.connect(cx);
        sip.run(cx);
        Ok(sip)
    }

    fn on_timer(&mut self, cx: &mut Cx<Self>, key: Timer) {
        match key {
            Timer::Core(key) => self.core.on_timer(key),
            Timer::Reconnect if self.stopping => {}
            Timer::Reconnect => self.connect(cx),
        }
        self.run(cx);
    }

    fn on_net_open(&mut self, cx: &mut Cx<Self>, _: Server, local: SocketAddress) {
        let transport = match self.transport() {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        };
        if transport != "UDP" {
            self.reconnect_failures = 0;
        }
        self.core.transport_up(Local {
            transport,
            host: local.host,
            port: local.port,
        });
        self.run(cx);
    }

    fn on_datagram(&mut self, cx: &mut Cx<Self>, _: Server, _from: SocketAddress, data: Vec<u8>) {
        self.core.on_message(&data);
        self.run(cx);
    }

    fn on_stream_data(&mut self, cx: &mut Cx<Self>, _: Server, data: Vec<u8>) {
        for frame in self.framer.push(&data) {
            match frame {
                Frame::Message(message) => self.core.on_message(&message),
                Frame::Broken(why) => {
                    cx.warn(format!("stream out of sync ({why}); reconnecting"));
                    self.close_link(cx);
                    self.link_failed(cx, &why);
                    break;
                }
            }
        }
        self.run(cx);
    }

    fn on_net_closed(&mut self, cx: &mut Cx<Self>, _: Server, close: CloseInfo) {
        self.framer.clear();
        let why = crate::close::describe(&close);
        if self.transport() != Transport::Udp {
            cx.warn(format!("stream to the server closed: {why}"));
        }
        self.link_failed(cx, &why);
        self.run(cx);
    }

    fn on_shutdown(&mut self, cx: &mut Cx<Self>) {
        self.stopping = true;
        self.core.shutdown();
        self.run(cx);
    }

    fn watch(
        &mut self,
        cx: &mut Cx<Self>,
        endpoints: Vec<EndpointId>,
    ) -> Result<(), ConnectorError> {
        self.core.watch(&endpoints);
        self.run(cx);
        Ok(())
    }

    fn unwatch(
        &mut self,
        cx: &mut Cx<Self>,
        endpoints: Vec<EndpointId>,
    ) -> Result<(), ConnectorError> {
        self.core.unwatch(&endpoints);
        self.run(cx);
        Ok(())
    }

    fn write(&mut self, cx: &mut Cx<Self>, request: WriteRequest) -> Result<(), ConnectorError> {
        let accepted = self.core.write(request, cx.now());
        self.run(cx);
        accepted
    }
}

#[cfg(test)]
mod tests;
