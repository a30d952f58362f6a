//! UDP sockets.
//!
//! Receiving is batched: once the socket is readable, the reader drains up to
//! [`RECV_BATCH`] datagrams with non-blocking reads into one reused buffer and
//! hands them to the instance's queue together (one reservation, one wake-up
//! of the actor), which then passes them to the plugin as one batch when the
//! plugin takes batches.
//!
//! Sending goes straight to the socket from the plugin's call. Only when the
//! kernel's send buffer is full does a datagram wait, in a bounded per-socket
//! backlog written by a task; until that backlog is empty every later datagram
//! joins it, so datagrams leave in the order the plugin sent them. A datagram
//! that finds the backlog full, or that the kernel refuses later, is counted
//! (see [`super::EventSink::datagrams_unsent`]) and logged, never dropped
//! silently.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{EventSink, IoError, IoEvent};

/// Largest datagram we accept (the UDP maximum).
pub(super) const MAX_DATAGRAM: usize = 65_535;
/// Receive buffer asked of the kernel (it grants up to
/// `net.core.rmem_max`). The default (~200 KiB, about a hundred small
/// datagrams on loopback) overflows when a server answers a burst of
/// SUBSCRIBEs, and every datagram lost then costs a retransmission timeout.
const RECV_BUFFER: usize = 4 << 20;
/// Most datagrams read per wake-up of the reader and queued together.
const RECV_BATCH: usize = 64;
/// Most datagrams waiting per socket for room in the kernel's send buffer.
const SEND_BACKLOG: usize = 1024;

/// A bound socket, its reader and, once the kernel has pushed back, its
/// send backlog.
pub(super) struct Socket {
    sock: Arc<UdpSocket>,
    reader: JoinHandle<()>,
    backlog: Option<Backlog>,
    unsent: Arc<AtomicU64>,
}

/// Datagrams waiting for room in the kernel's send buffer.
struct Backlog {
    tx: mpsc::Sender<(SocketAddr, Vec<u8>)>,
    /// Queued and not yet handed to the kernel (including the one the writer
    /// is sending): while non-zero, new datagrams queue behind them.
    pending: Arc<AtomicUsize>,
    writer: JoinHandle<()>,
}

impl Socket {
    /// Send a datagram to `to`: directly when nothing waits and the kernel
    /// takes it, queued otherwise.
    pub(super) fn send(&mut self, to: SocketAddr, data: &[u8]) -> Result<(), IoError> {
        if data.len() > MAX_DATAGRAM {
            return Err(IoError::Invalid(format!(
                "datagram of {} bytes exceeds {MAX_DATAGRAM}",
                data.len()
            )));
        }
        let waiting = self
            .backlog
            .as_ref()
            .is_some_and(|b| b.pending.load(Ordering::Acquire) > 0);
        if !waiting {
            match self.sock.try_send_to(data, to) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(IoError::Io(format!("send to {to}: {e}"))),
            }
        }
        self.enqueue(to, data);
        Ok(())
    }

    /// Queue a datagram behind the ones already waiting, or count it when
    /// the backlog is full.
    fn enqueue(&mut self, to: SocketAddr, data: &[u8]) {
        let sock = &self.sock;
        let unsent = &self.unsent;
        let backlog = self
            .backlog
            .get_or_insert_with(|| Backlog::start(sock.clone(), unsent.clone()));
        backlog.pending.fetch_add(1, Ordering::AcqRel);
        if backlog.tx.try_send((to, data.to_vec())).is_err() {
            backlog.pending.fetch_sub(1, Ordering::AcqRel);
            let n = self.unsent.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    to = %to,
                    unsent = n,
                    "udp send backlog full ({SEND_BACKLOG} datagrams); datagram dropped"
                );
            }
        }
    }

    /// The socket itself, for datagrams sent once a name is resolved.
    pub(super) fn shared(&self) -> Arc<UdpSocket> {
        self.sock.clone()
    }

    /// Stop reading. Datagrams still waiting are sent by the writer, which
    /// then ends and closes the socket.
    pub(super) fn close(self) {
        self.reader.abort();
        if let Some(b) = self.backlog {
            drop(b.tx);
            // The writer sees the closed channel once it has sent the rest.
            drop(b.writer);
        }
    }

    /// Stop everything now, waiting datagrams included.
    pub(super) fn abort(&self) {
        self.reader.abort();
        if let Some(b) = &self.backlog {
            b.writer.abort();
        }
    }
}

impl Backlog {
    fn start(sock: Arc<UdpSocket>, unsent: Arc<AtomicU64>) -> Self {
        let (tx, mut rx) = mpsc::channel::<(SocketAddr, Vec<u8>)>(SEND_BACKLOG);
        let pending = Arc::new(AtomicUsize::new(0));
        let left = pending.clone();
        let writer = tokio::spawn(async move {
            while let Some((to, data)) = rx.recv().await {
                if let Err(e) = sock.send_to(&data, to).await {
                    let n = unsent.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::warn!(to = %to, error = %e, unsent = n, "queued udp send failed");
                }
                left.fetch_sub(1, Ordering::AcqRel);
            }
        });
        Self {
            tx,
            pending,
            writer,
        }
    }
}

/// Bind on the local address that routes toward `toward` and start reading.
pub(super) fn bind(
    toward: SocketAddr,
    handle: u32,
    sink: EventSink,
) -> Result<(Socket, SocketAddr), IoError> {
    let io = |e: std::io::Error| IoError::Io(e.to_string());
    let unspecified: IpAddr = if toward.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    // Connecting a throwaway socket sends nothing; it asks the kernel which
    // local address routes toward the peer (what goes into Via/Contact).
    let probe = std::net::UdpSocket::bind(SocketAddr::new(unspecified, 0)).map_err(io)?;
    probe.connect(toward).map_err(io)?;
    let local_ip = probe.local_addr().map_err(io)?.ip();
    let raw = socket2::Socket::new(
        socket2::Domain::for_address(toward),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .map_err(io)?;
    if let Err(e) = raw.set_recv_buffer_size(RECV_BUFFER) {
        tracing::debug!(error = %e, "cannot enlarge the UDP receive buffer");
    }
    raw.bind(&SocketAddr::new(local_ip, 0).into()).map_err(io)?;
    raw.set_nonblocking(true).map_err(io)?;
    let std_sock: std::net::UdpSocket = raw.into();
    let sock = Arc::new(UdpSocket::from_std(std_sock).map_err(io)?);
    let local = sock.local_addr().map_err(io)?;
    let unsent = sink.unsent.clone();
    let reader = tokio::spawn(read(sock.clone(), handle, sink));
    let socket = Socket {
        sock,
        reader,
        backlog: None,
        unsent,
    };
    Ok((socket, local))
}

/// Read batches until the instance's queue closes.
async fn read(sock: Arc<UdpSocket>, handle: u32, sink: EventSink) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut batch = Vec::with_capacity(RECV_BATCH);
    loop {
        if let Err(e) = sock.readable().await {
            tracing::warn!(error = %e, "udp socket not readable");
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let mut failed = false;
        // Each pass takes one datagram or one queued error, so a flood of
        // ICMP errors cannot keep the reader here.
        for _ in 0..RECV_BATCH {
            match sock.try_recv_from(&mut buf) {
                Ok((n, from)) => batch.push(IoEvent::Datagram {
                    socket: handle,
                    from,
                    data: buf[..n].to_vec(),
                }),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // ICMP port unreachable surfaces as an error on Linux; the
                // socket stays usable.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                Err(e) => {
                    tracing::warn!(error = %e, "udp receive failed");
                    failed = true;
                    break;
                }
            }
        }
        if !sink.offer_all(&mut batch) {
            return;
        }
        if failed {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::IoMsg;
    use super::*;

    fn sink(capacity: usize) -> (EventSink, mpsc::Receiver<IoMsg>, Arc<AtomicU64>) {
        let (tx, rx) = mpsc::channel(capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        (EventSink::new(tx, 1, dropped.clone()), rx, dropped)
    }

    async fn next_datagram(rx: &mut mpsc::Receiver<IoMsg>) -> (u32, SocketAddr, Vec<u8>) {
        let work = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a datagram within 5 s")
            .expect("queue open");
        match work {
            IoMsg {
                generation: 1,
                event: IoEvent::Datagram { socket, from, data },
            } => (socket, from, data),
            _ => panic!("expected a datagram of generation 1"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_datagrams_arrives_whole_and_in_order() {
        const BURST: u32 = 500;
        let (sink, mut rx, dropped) = sink(1024);
        let (socket, local) = bind("127.0.0.1:9".parse().unwrap(), 7, sink).expect("bind");
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").expect("peer");
        let peer_addr = peer.local_addr().unwrap();
        for i in 0..BURST {
            peer.send_to(format!("datagram {i}").as_bytes(), local)
                .expect("send");
        }
        for i in 0..BURST {
            let (handle, from, data) = next_datagram(&mut rx).await;
            assert_eq!(handle, 7);
            assert_eq!(from, peer_addr);
            assert_eq!(data, format!("datagram {i}").into_bytes());
        }
        assert_eq!(dropped.load(Ordering::Relaxed), 0);
        assert!(rx.try_recv().is_err(), "nothing more than was sent");
        socket.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn datagrams_sent_while_some_wait_queue_behind_them() {
        let (sink, _rx, _) = sink(16);
        let unsent = sink.unsent.clone();
        let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = peer.local_addr().unwrap();
        let (mut socket, _) = bind(to, 1, sink).expect("bind");
        // As if the kernel had pushed back: the first ten wait in the
        // backlog, and the rest must not overtake them.
        for i in 0..10u8 {
            socket.enqueue(to, &[i]);
        }
        for i in 10..200u8 {
            socket.send(to, &[i]).expect("send");
        }
        let mut buf = [0u8; 16];
        for i in 0..200u8 {
            let (n, _) = tokio::time::timeout(Duration::from_secs(5), peer.recv_from(&mut buf))
                .await
                .expect("within 5 s")
                .unwrap();
            assert_eq!(&buf[..n], &[i]);
        }
        assert_eq!(unsent.load(Ordering::Relaxed), 0);
        socket.close();
    }

    #[tokio::test]
    async fn a_full_backlog_counts_what_it_cannot_keep() {
        let (sink, _rx, _) = sink(16);
        let unsent = sink.unsent.clone();
        let (mut socket, _) = bind("127.0.0.1:9".parse().unwrap(), 1, sink).expect("bind");
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        // On a current-thread runtime the writer cannot run while this test
        // does, so the backlog fills.
        for _ in 0..SEND_BACKLOG + 5 {
            socket.enqueue(to, b"x");
        }
        assert_eq!(unsent.load(Ordering::Relaxed), 5);
        socket.abort();
    }
}
