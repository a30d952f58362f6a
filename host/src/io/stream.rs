//! TCP and TLS byte streams.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{EventSink, IoEvent};

const READ_CHUNK: usize = 64 * 1024;
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Connect (optionally over TLS) on a task; returns the writer side at once.
pub(super) fn connect(
    host: String,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    handle: u32,
    sink: EventSink,
) -> (mpsc::UnboundedSender<Vec<u8>>, JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let error = run(&host, port, tls, handle, &sink, rx).await.err();
        sink.send(IoEvent::StreamClosed {
            stream: handle,
            error,
        })
        .await;
    });
    (tx, task)
}

async fn run(
    host: &str,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    handle: u32,
    sink: &EventSink,
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
) -> Result<(), String> {
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port)))
        .await
        .map_err(|_| format!("connect to {host}:{port} timed out"))?
        .map_err(|e| format!("connect to {host}:{port}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let local = tcp.local_addr().map_err(|e| e.to_string())?;
    let remote = tcp.peer_addr().map_err(|e| e.to_string())?;
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
                .map_err(|e| format!("invalid TLS server name {host}: {e}"))?;
            let stream = tokio_rustls::TlsConnector::from(cfg)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake with {host}:{port}: {e}"))?;
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
) -> Result<(), String> {
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
                Err(e) => return Err(e.to_string()),
            },
            out = rx.recv() => match out {
                Some(data) => wr.write_all(&data).await.map_err(|e| e.to_string())?,
                None => {
                    let _ = wr.shutdown().await;
                    return Ok(());
                }
            },
        }
    }
}
