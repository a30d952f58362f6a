//! TCP and TLS byte streams.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::failure::{self, CloseInfo, Failure};
use super::{EventSink, IoEvent};

const READ_CHUNK: usize = 64 * 1024;

/// Connect (optionally over TLS) on a task; returns the writer side at once.
pub(super) fn connect(
    host: String,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    connect_timeout: std::time::Duration,
    handle: u32,
    sink: EventSink,
) -> (mpsc::UnboundedSender<Vec<u8>>, JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let close = match run(&host, port, tls, connect_timeout, handle, &sink, rx).await {
            Ok(()) => CloseInfo::default(),
            Err(f) => CloseInfo::failed(f),
        };
        sink.send(IoEvent::StreamClosed {
            stream: handle,
            close,
        })
        .await;
    });
    (tx, task)
}

async fn run(
    host: &str,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    connect_timeout: std::time::Duration,
    handle: u32,
    sink: &EventSink,
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
) -> Result<(), Failure> {
    let deadline = tokio::time::Instant::now() + connect_timeout;
    // Resolve apart from connecting, so that a name that does not resolve
    // is reported as DNS, not as a refused connection.
    let addrs: Vec<std::net::SocketAddr> =
        tokio::time::timeout_at(deadline, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| Failure::Timeout)?
            .map_err(|e| failure::dns(host, &e))?
            .collect();
    let tcp = tokio::time::timeout_at(deadline, TcpStream::connect(&addrs[..]))
        .await
        .map_err(|_| Failure::Timeout)?
        .map_err(|e| failure::io(&e))?;
    let _ = tcp.set_nodelay(true);
    let local = tcp.local_addr().map_err(|e| failure::io(&e))?;
    let remote = tcp.peer_addr().map_err(|e| failure::io(&e))?;
    match tls {
        None => {
            sink.send(IoEvent::StreamConnected {
                stream: handle,
                local,
                remote,
            })
            .await;
            pump(tcp, handle, sink, rx).await
        }
        Some(cfg) => {
            let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                .map_err(|e| Failure::Tls(format!("invalid TLS server name {host}: {e}")))?;
            let stream = tokio::time::timeout_at(
                deadline,
                tokio_rustls::TlsConnector::from(cfg).connect(name, tcp),
            )
            .await
            .map_err(|_| Failure::Timeout)?
            .map_err(|e| failure::io(&e))?;
            sink.send(IoEvent::StreamConnected {
                stream: handle,
                local,
                remote,
            })
            .await;
            pump(stream, handle, sink, rx).await
        }
    }
}

async fn pump<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    handle: u32,
    sink: &EventSink,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
) -> Result<(), Failure> {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        tokio::select! {
            n = rd.read(&mut buf) => match n {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    if !sink.send(IoEvent::StreamData { stream: handle, data: buf[..n].to_vec() }).await {
                        return Ok(());
                    }
                }
                Err(e) => return Err(failure::io(&e)),
            },
            out = rx.recv() => match out {
                Some(data) => wr.write_all(&data).await.map_err(|e| failure::io(&e))?,
                None => {
                    let _ = wr.shutdown().await;
                    return Ok(());
                }
            },
        }
    }
}
