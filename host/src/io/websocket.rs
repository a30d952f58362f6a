//! Outbound WebSocket connections.

use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use super::{EventSink, IoError, IoEvent, WsPayload};

/// What the guest sends on a WebSocket.
#[derive(Debug)]
pub enum Outgoing {
    Text(String),
    Binary(Vec<u8>),
    Close(u16, String),
}

pub(super) fn connect(
    url: String,
    headers: Vec<(String, String)>,
    tls: Arc<rustls::ClientConfig>,
    handle: u32,
    sink: EventSink,
) -> Result<(mpsc::UnboundedSender<Outgoing>, JoinHandle<()>), IoError> {
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| IoError::Invalid(format!("websocket URL {url:?}: {e}")))?;
    for (name, value) in headers {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| IoError::Invalid(format!("invalid header name {name:?}")))?;
        let value = http::HeaderValue::from_str(&value)
            .map_err(|_| IoError::Invalid(format!("invalid value for header {name}")))?;
        request.headers_mut().insert(name, value);
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let error = run(request, tls, handle, &sink, rx).await.err();
        sink.send(IoEvent::WsClosed {
            socket: handle,
            error,
        })
        .await;
    });
    Ok((tx, task))
}

async fn run(
    request: http::Request<()>,
    tls: Arc<rustls::ClientConfig>,
    handle: u32,
    sink: &EventSink,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) -> Result<(), String> {
    let connector = tokio_tungstenite::Connector::Rustls(tls);
    let (ws, _) = tokio::time::timeout(
        std::time::Duration::from_secs(15),
        tokio_tungstenite::connect_async_tls_with_config(request, None, true, Some(connector)),
    )
    .await
    .map_err(|_| "websocket connect timed out".to_string())?
    .map_err(|e| e.to_string())?;
    sink.send(IoEvent::WsOpened { socket: handle }).await;
    let (mut wr, mut rd) = ws.split();
    loop {
        tokio::select! {
            msg = rd.next() => match msg {
                None => return Ok(()),
                Some(Err(e)) => return Err(e.to_string()),
                Some(Ok(Message::Text(t))) => {
                    sink.send(IoEvent::WsMessage { socket: handle, payload: WsPayload::Text(t.to_string()) }).await;
                }
                Some(Ok(Message::Binary(b))) => {
                    sink.send(IoEvent::WsMessage { socket: handle, payload: WsPayload::Binary(b.to_vec()) }).await;
                }
                Some(Ok(Message::Close(_))) => return Ok(()),
                // Pings are answered by tungstenite itself.
                Some(Ok(_)) => {}
            },
            out = rx.recv() => match out {
                Some(Outgoing::Text(t)) => wr.send(Message::Text(t.into())).await.map_err(|e| e.to_string())?,
                Some(Outgoing::Binary(b)) => wr.send(Message::Binary(b.into())).await.map_err(|e| e.to_string())?,
                Some(Outgoing::Close(code, reason)) => {
                    let frame = CloseFrame { code: code.into(), reason: reason.into() };
                    let _ = wr.send(Message::Close(Some(frame))).await;
                    return Ok(());
                }
                None => return Ok(()),
            },
        }
    }
}
