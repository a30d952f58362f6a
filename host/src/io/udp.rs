//! UDP sockets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use super::{EventSink, IoError, IoEvent};

/// Largest datagram we accept (the UDP maximum).
const MAX_DATAGRAM: usize = 65_535;
/// Receive buffer asked of the kernel (it grants up to
/// `net.core.rmem_max`). The default (~200 KiB, about a hundred small
/// datagrams on loopback) overflows when a server answers a burst of
/// SUBSCRIBEs, and every datagram lost then costs a retransmission timeout.
const RECV_BUFFER: usize = 4 << 20;

/// Bind on the local address that routes toward `toward` and start reading.
pub(super) fn bind(
    toward: SocketAddr,
    handle: u32,
    sink: EventSink,
) -> Result<(Arc<UdpSocket>, SocketAddr, JoinHandle<()>), IoError> {
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
    let reader = sock.clone();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            match reader.recv_from(&mut buf).await {
                Ok((n, from)) => {
                    let event = IoEvent::Datagram {
                        socket: handle,
                        from,
                        data: buf[..n].to_vec(),
                    };
                    if !sink.offer(event) {
                        return;
                    }
                }
                // ICMP port unreachable surfaces as an error on Linux; the
                // socket stays usable.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "udp receive failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    });
    Ok((sock, local, task))
}

pub(super) fn send(sock: &UdpSocket, to: SocketAddr, data: &[u8]) -> Result<(), IoError> {
    if data.len() > MAX_DATAGRAM {
        return Err(IoError::Invalid(format!(
            "datagram of {} bytes exceeds {MAX_DATAGRAM}",
            data.len()
        )));
    }
    match sock.try_send_to(data, to) {
        Ok(_) => Ok(()),
        // A full socket buffer drops the datagram, as the network would.
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(IoError::Io(format!("send to {to}: {e}"))),
    }
}
