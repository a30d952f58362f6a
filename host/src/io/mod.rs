//! Host-owned I/O for connector instances: UDP sockets, TCP/TLS streams, the
//! HTTP client, the WebSocket client and timers.
//!
//! An [`IoContext`] belongs to one run of one connector instance. It hands out
//! handles, starts the work on tokio tasks and pushes what happens back as
//! [`IoEvent`]s tagged with the run's generation, so events of a crashed or
//! replaced run are never delivered to its successor. Dropping the context
//! closes every socket and cancels every timer and request.
//!
//! Grants are checked by the caller (the runtime) before anything here runs.
//! Nothing here waits for DNS inside a call (see `dns.rs`).

mod dns;
pub mod failure;
mod http;
pub mod ldap;
pub mod listener;
mod stream;
pub mod tls;
pub mod tls_server;
mod udp;
mod websocket;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use dns::dns_failures;
pub use failure::{CloseInfo, Failure};
pub use http::{HttpRequest, HttpResponse, forward};
pub use websocket::WsOptions;

/// Most open handles (sockets, streams, requests, timers) per instance run.
pub const MAX_HANDLES: usize = 1024;
/// Most datagrams per name held while the name is resolved.
const MAX_WAITING: usize = 256;

/// Something that happened on an instance's I/O.
#[derive(Debug)]
pub enum IoEvent {
    Datagram {
        socket: u32,
        from: SocketAddr,
        data: Vec<u8>,
    },
    StreamConnected {
        stream: u32,
        local: SocketAddr,
        remote: SocketAddr,
    },
    StreamData {
        stream: u32,
        data: Vec<u8>,
    },
    StreamClosed {
        stream: u32,
        close: CloseInfo,
    },
    HttpResponse {
        request: u32,
        outcome: Result<HttpResponse, Failure>,
    },
    WsOpened {
        socket: u32,
        headers: Vec<(String, String)>,
        subprotocol: Option<String>,
    },
    WsMessage {
        socket: u32,
        payload: WsPayload,
    },
    WsClosed {
        socket: u32,
        close: CloseInfo,
    },
    Timer {
        timer: u32,
    },
}

/// A WebSocket message.
#[derive(Debug)]
pub enum WsPayload {
    Text(String),
    Binary(Vec<u8>),
}

/// An event tagged with the run that caused it.
#[derive(Debug)]
pub struct IoMsg {
    pub generation: u64,
    pub event: IoEvent,
}

/// Where a context's events go, and what to count when that queue is full.
#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::Sender<IoMsg>,
    generation: u64,
    dropped: Arc<AtomicU64>,
    /// Datagrams the plugin sent that never left: the socket's send backlog
    /// was full, or the kernel refused a queued one.
    unsent: Arc<AtomicU64>,
}

impl EventSink {
    pub fn new(tx: mpsc::Sender<IoMsg>, generation: u64, dropped: Arc<AtomicU64>) -> Self {
        Self {
            tx,
            generation,
            dropped,
            unsent: Arc::default(),
        }
    }

    /// Datagrams sent through this sink's contexts that never left (counted,
    /// and logged, where they were dropped).
    pub fn datagrams_unsent(&self) -> u64 {
        self.unsent.load(Ordering::Relaxed)
    }

    /// Queue an event, waiting for room (streams, responses, timers: losing
    /// them would break the protocol).
    async fn send(&self, event: IoEvent) -> bool {
        self.tx
            .send(IoMsg {
                generation: self.generation,
                event,
            })
            .await
            .is_ok()
    }

    /// Queue an event or drop it when the queue is full (datagrams: UDP is
    /// lossy anyway, and a flood must not stall the socket task).
    fn offer(&self, event: IoEvent) -> bool {
        match self.tx.try_send(IoMsg {
            generation: self.generation,
            event,
        }) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queue a batch of events (emptying `events`) with one reservation, so
    /// the actor is woken once for all of them; when the queue has room for
    /// only part, what fits goes in order and the rest is dropped and counted
    /// as [`offer`](Self::offer) does. False once the queue is closed.
    fn offer_all(&self, events: &mut Vec<IoEvent>) -> bool {
        if events.is_empty() {
            return !self.tx.is_closed();
        }
        match self.tx.try_reserve_many(events.len()) {
            Ok(permits) => {
                for (permit, event) in permits.zip(events.drain(..)) {
                    permit.send(IoMsg {
                        generation: self.generation,
                        event,
                    });
                }
                true
            }
            Err(mpsc::error::TrySendError::Closed(())) => false,
            Err(mpsc::error::TrySendError::Full(())) => {
                events.drain(..).all(|event| self.offer(event))
            }
        }
    }
}

/// An I/O failure reported to the guest.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("no open handle {0}")]
    UnknownHandle(u32),
    #[error("{0}")]
    Limit(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Io(String),
}

enum Resource {
    Udp(udp::Socket),
    Stream(mpsc::UnboundedSender<Vec<u8>>, JoinHandle<()>),
    WebSocket(mpsc::UnboundedSender<websocket::Outgoing>, JoinHandle<()>),
    Request(JoinHandle<()>),
    Timer(JoinHandle<()>),
}

/// The kinds of handle, each its own space for the calls that end one: a
/// stale timer number can never close a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandleKind {
    /// UDP sockets and streams.
    Socket,
    Request,
    WebSocket,
    Timer,
}

impl Resource {
    fn kind(&self) -> HandleKind {
        match self {
            Resource::Udp(..) | Resource::Stream(..) => HandleKind::Socket,
            Resource::WebSocket(..) => HandleKind::WebSocket,
            Resource::Request(_) => HandleKind::Request,
            Resource::Timer(_) => HandleKind::Timer,
        }
    }

    fn abort(&self) {
        match self {
            Resource::Udp(s) => s.abort(),
            Resource::Stream(_, t)
            | Resource::WebSocket(_, t)
            | Resource::Request(t)
            | Resource::Timer(t) => t.abort(),
        }
    }
}

/// One run's I/O.
pub struct IoContext {
    sink: EventSink,
    next: u32,
    resources: HashMap<u32, Resource>,
    tls: Arc<rustls::ClientConfig>,
    http: reqwest::Client,
    resolver: Arc<dns::Resolver>,
    /// Datagrams to names still being resolved, by name.
    waiting: HashMap<String, Arc<Mutex<Waiting>>>,
}

/// Datagrams sent to one name before its address was known, in order.
#[derive(Default)]
struct Waiting {
    /// `(socket, port, data)`.
    datagrams: Vec<(Arc<tokio::net::UdpSocket>, u16, Vec<u8>)>,
    /// The answer came and every held datagram went: later ones go direct.
    done: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Drop for IoContext {
    fn drop(&mut self) {
        for (_, r) in self.resources.drain() {
            match r {
                // Closing the writer lets the task flush what the guest queued
                // last (an unsubscribe at shutdown) and then close the stream.
                Resource::Stream(tx, _) => drop(tx),
                Resource::WebSocket(tx, _) => drop(tx),
                // Datagrams waiting for the kernel still leave.
                Resource::Udp(s) => s.close(),
                r => r.abort(),
            }
        }
    }
}

impl IoContext {
    /// A context whose TLS trusts the system roots plus `extra_ca_pem`.
    pub fn new(sink: EventSink, tls: Arc<rustls::ClientConfig>) -> Result<Self, IoError> {
        let http = http::client(&tls).map_err(|e| IoError::Io(e.to_string()))?;
        Ok(Self {
            sink,
            next: 1,
            resources: HashMap::new(),
            tls,
            http,
            resolver: dns::SYSTEM.clone(),
            waiting: HashMap::new(),
        })
    }

    fn alloc(&mut self) -> Result<u32, IoError> {
        if self.resources.len() >= MAX_HANDLES {
            return Err(IoError::Limit(format!(
                "{MAX_HANDLES} handles open; close sockets and cancel timers you no longer need"
            )));
        }
        let h = self.next;
        self.next = self.next.wrapping_add(1).max(1);
        Ok(h)
    }

    /// Bind a UDP socket on the local address that routes toward `host:port`.
    ///
    /// Errors: [`IoError::Io`] when `host` is a name whose address is not
    /// known yet (its lookup starts; the call does not wait for it, the
    /// plugin tries again) or does not resolve.
    pub fn udp_bind(&mut self, host: &str, port: u16) -> Result<(u32, SocketAddr), IoError> {
        let ip = match self.resolver.peek(host) {
            dns::Known::Addr(ip) => ip,
            dns::Known::Failed(e) => {
                return Err(IoError::Io(format!("cannot resolve {host}: {e}")));
            }
            dns::Known::Pending => {
                return Err(IoError::Io(format!(
                    "resolving {host}: its address is not known yet (the hub does not wait for DNS inside a call); try again in a moment"
                )));
            }
        };
        let h = self.alloc()?;
        let (sock, local) = udp::bind(SocketAddr::new(ip, port), h, self.sink.clone())?;
        self.resources.insert(h, Resource::Udp(sock));
        Ok((h, local))
    }

    /// Send a datagram from socket `h`. To a name whose address is not known
    /// yet, the datagram (and any that follow to that name) waits for the
    /// lookup and leaves once it completes; the call returns at once. Held
    /// datagrams that cannot leave (the name does not resolve, more than
    /// [`MAX_WAITING`] held) are counted in
    /// [`EventSink::datagrams_unsent`] and logged.
    ///
    /// Errors: unknown handle; an oversized datagram; a name whose last
    /// lookup failed; the kernel's refusal of a direct send.
    pub fn udp_send(&mut self, h: u32, host: &str, port: u16, data: &[u8]) -> Result<(), IoError> {
        let Some(Resource::Udp(sock)) = self.resources.get_mut(&h) else {
            return Err(IoError::UnknownHandle(h));
        };
        if data.len() > udp::MAX_DATAGRAM {
            return Err(IoError::Invalid(format!(
                "datagram of {} bytes exceeds {}",
                data.len(),
                udp::MAX_DATAGRAM
            )));
        }
        let name = host.to_ascii_lowercase();
        // Behind datagrams still held for this name, to keep their order.
        if let Some(w) = self.waiting.get(&name) {
            let mut w = lock(w);
            if !w.done {
                if w.datagrams.len() < MAX_WAITING {
                    w.datagrams.push((sock.shared(), port, data.to_vec()));
                } else {
                    count_unsent(
                        &self.sink.unsent,
                        1,
                        host,
                        "too many datagrams wait for the name",
                    );
                }
                return Ok(());
            }
            drop(w);
            self.waiting.remove(&name);
        }
        match self.resolver.peek(host) {
            dns::Known::Addr(ip) => sock.send(SocketAddr::new(ip, port), data),
            dns::Known::Failed(e) => Err(IoError::Io(format!("cannot resolve {host}: {e}"))),
            dns::Known::Pending => {
                let held = Arc::new(Mutex::new(Waiting {
                    datagrams: vec![(sock.shared(), port, data.to_vec())],
                    done: false,
                }));
                self.waiting.retain(|_, w| !lock(w).done);
                self.waiting.insert(name.clone(), held.clone());
                tokio::spawn(send_when_resolved(
                    self.resolver.clone(),
                    name,
                    held,
                    self.sink.unsent.clone(),
                ));
                Ok(())
            }
        }
    }

    /// Start connecting a stream; events follow.
    pub fn stream_connect(
        &mut self,
        host: &str,
        port: u16,
        tls: bool,
        connect_timeout: Option<Duration>,
    ) -> Result<u32, IoError> {
        let h = self.alloc()?;
        let tls = tls.then(|| self.tls.clone());
        let timeout = connect_timeout.unwrap_or(crate::timing::CONNECT_TIMEOUT);
        let (tx, task) = stream::connect(host.to_owned(), port, tls, timeout, h, self.sink.clone());
        self.resources.insert(h, Resource::Stream(tx, task));
        Ok(h)
    }

    /// Queue bytes on stream `h`.
    pub fn stream_send(&mut self, h: u32, data: Vec<u8>) -> Result<(), IoError> {
        match self.resources.get(&h) {
            Some(Resource::Stream(tx, _)) => tx
                .send(data)
                .map_err(|_| IoError::Io(format!("stream {h} is closed"))),
            _ => Err(IoError::UnknownHandle(h)),
        }
    }

    /// Start an HTTP request; an event carries the outcome.
    pub fn http_send(&mut self, req: HttpRequest) -> Result<u32, IoError> {
        let h = self.alloc()?;
        let task = http::spawn(self.http.clone(), req, h, self.sink.clone())?;
        self.resources.insert(h, Resource::Request(task));
        Ok(h)
    }

    /// Start a WebSocket connection; events follow.
    pub fn ws_connect(&mut self, url: &str, options: WsOptions) -> Result<u32, IoError> {
        let h = self.alloc()?;
        let (tx, task) = websocket::connect(
            url.to_owned(),
            options,
            self.tls.clone(),
            h,
            self.sink.clone(),
        )?;
        self.resources.insert(h, Resource::WebSocket(tx, task));
        Ok(h)
    }

    /// Queue a WebSocket message (or a close) on `h`.
    pub fn ws_send(&mut self, h: u32, msg: websocket::Outgoing) -> Result<(), IoError> {
        match self.resources.get(&h) {
            Some(Resource::WebSocket(tx, _)) => tx
                .send(msg)
                .map_err(|_| IoError::Io(format!("websocket {h} is closed"))),
            _ => Err(IoError::UnknownHandle(h)),
        }
    }

    /// Fire a timer event after `after`.
    pub fn set_timer(&mut self, after: Duration) -> Result<u32, IoError> {
        let h = self.alloc()?;
        let sink = self.sink.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(after).await;
            sink.send(IoEvent::Timer { timer: h }).await;
        });
        self.resources.insert(h, Resource::Timer(task));
        Ok(h)
    }

    /// Close or cancel `h` if it is a handle of `kind`; anything else, and
    /// unknown handles, are ignored.
    pub fn close(&mut self, kind: HandleKind, h: u32) {
        if self.resources.get(&h).map(Resource::kind) != Some(kind) {
            return;
        }
        if let Some(r) = self.resources.remove(&h) {
            match r {
                // Let the writer flush and close gracefully.
                Resource::WebSocket(tx, _) => {
                    let _ = tx.send(websocket::Outgoing::Close(1000, String::new()));
                }
                Resource::Stream(tx, task) => {
                    drop(tx);
                    // The task sees the closed channel and shuts the stream down.
                    drop(task);
                }
                Resource::Udp(s) => s.close(),
                r => r.abort(),
            }
        }
    }

    /// HTTP requests started and not yet answered.
    pub fn requests_in_flight(&self) -> usize {
        self.resources
            .values()
            .filter(|r| r.kind() == HandleKind::Request)
            .count()
    }

    /// Forget a handle whose work finished by itself (a fired timer, a
    /// completed request, a closed stream).
    pub fn finished(&mut self, h: u32) {
        self.resources.remove(&h);
    }
}

pub use websocket::Outgoing as WsOutgoing;

/// Resolve `name`, then send what was held for it, in order, until nothing
/// more is; then mark it done so later datagrams go direct.
async fn send_when_resolved(
    resolver: Arc<dns::Resolver>,
    name: String,
    held: Arc<Mutex<Waiting>>,
    unsent: Arc<AtomicU64>,
) {
    let answer = resolver.resolve(&name).await;
    loop {
        let batch = {
            let mut w = lock(&held);
            if w.datagrams.is_empty() {
                w.done = true;
                return;
            }
            std::mem::take(&mut w.datagrams)
        };
        let ip = match &answer {
            Ok(ip) => *ip,
            Err(e) => {
                let why = format!("cannot resolve the name: {e}");
                count_unsent(&unsent, batch.len() as u64, &name, &why);
                continue;
            }
        };
        for (sock, port, data) in batch {
            if let Err(e) = sock.send_to(&data, SocketAddr::new(ip, port)).await {
                count_unsent(&unsent, 1, &name, &e.to_string());
            }
        }
    }
}

/// Count datagrams that never left, and say why (never their content).
fn count_unsent(unsent: &AtomicU64, n: u64, host: &str, why: &str) {
    let total = unsent.fetch_add(n, Ordering::Relaxed) + n;
    // Rate-limited: a plugin sending into a name that does not resolve must
    // not flood the log (the resolver logs each failed lookup).
    if (total - n..total).any(|t| (t + 1).is_power_of_two()) {
        tracing::warn!(%host, datagrams = n, unsent = total, "udp datagrams to a name dropped: {why}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> (IoContext, mpsc::Receiver<IoMsg>) {
        let (tx, rx) = mpsc::channel(16);
        let sink = EventSink::new(tx, 1, Arc::default());
        let tls = tls::client_config(None).expect("default TLS");
        (IoContext::new(sink, tls).expect("context"), rx)
    }

    #[tokio::test]
    async fn a_send_to_a_name_returns_at_once_and_leaves_once_resolved() {
        let (mut io, _rx) = context();
        let (resolver, gate, asked) = dns::tests::gated();
        io.resolver = resolver;
        let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = peer.local_addr().unwrap().port();
        let (socket, _) = io.udp_bind("127.0.0.1", port).expect("bind");
        assert_eq!(asked.load(Ordering::SeqCst), 0, "a literal needs no lookup");
        // The resolver has no answer and never will until the gate opens:
        // these calls return at once all the same.
        for i in 0..3u8 {
            io.udp_send(socket, "Peer.example", port, &[i])
                .expect("send");
        }
        let bind = io.udp_bind("peer.example", port);
        assert!(matches!(&bind, Err(IoError::Io(m)) if m.starts_with("resolving peer.example")));
        let mut buf = [0u8; 8];
        tokio::task::yield_now().await;
        assert!(peer.try_recv_from(&mut buf).is_err(), "nothing left yet");

        gate.send_replace(Some(Ok("127.0.0.1".parse().unwrap())));
        for i in 0..4u8 {
            if i == 1 {
                // Sent while the held ones may still be leaving: stays behind them.
                io.udp_send(socket, "peer.example", port, &[3])
                    .expect("send");
            }
            let (n, _) = tokio::time::timeout(Duration::from_secs(5), peer.recv_from(&mut buf))
                .await
                .expect("within 5 s")
                .unwrap();
            assert_eq!(&buf[..n], &[i]);
        }
        // Known now: a bind toward the name works without waiting.
        io.udp_bind("peer.example", port).expect("bind by name");
        assert_eq!(io.sink.datagrams_unsent(), 0);
    }

    #[tokio::test]
    async fn datagrams_to_a_name_that_does_not_resolve_are_counted() {
        let (mut io, _rx) = context();
        let (resolver, gate, _) = dns::tests::gated();
        io.resolver = resolver;
        let (socket, _) = io.udp_bind("127.0.0.1", 9).expect("bind");
        for _ in 0..3 {
            io.udp_send(socket, "nx.example", 9, b"x").expect("send");
        }
        gate.send_replace(Some(Err("no such name".into())));
        let counted = async {
            while io.sink.datagrams_unsent() < 3 {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), counted)
            .await
            .expect("counted");
        // The failure is remembered: the next send says so.
        assert!(matches!(
            io.udp_send(socket, "nx.example", 9, b"x"),
            Err(IoError::Io(m)) if m == "cannot resolve nx.example: no such name"
        ));
    }

    #[tokio::test]
    async fn a_call_for_one_kind_never_ends_a_handle_of_another() {
        let (mut io, mut rx) = context();
        let (socket, _) = io.udp_bind("127.0.0.1", 9).expect("bind");
        let timer = io.set_timer(Duration::from_millis(20)).expect("timer");
        // Cancelling a "timer" with the socket's number, or closing a
        // "socket" with the timer's, touches nothing.
        io.close(HandleKind::Timer, socket);
        io.close(HandleKind::Socket, timer);
        io.close(HandleKind::WebSocket, socket);
        io.close(HandleKind::Request, timer);
        assert!(io.udp_send(socket, "127.0.0.1", 9, b"x").is_ok());
        let fired = tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .expect("the timer still fires");
        assert!(matches!(
            fired,
            Some(IoMsg { event: IoEvent::Timer { timer: t }, .. }) if t == timer
        ));
        // The right kind ends it.
        io.close(HandleKind::Socket, socket);
        assert!(matches!(
            io.udp_send(socket, "127.0.0.1", 9, b"x"),
            Err(IoError::UnknownHandle(_))
        ));
    }
}
