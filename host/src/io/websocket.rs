//! Outbound WebSocket connections.

use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use std::time::Duration;

use super::failure::{self, CloseInfo, Failure};
use super::{EventSink, IoError, IoEvent, WsPayload};

/// What the guest sends on a WebSocket.
#[derive(Debug)]
pub enum Outgoing {
    Text(String),
    Binary(Vec<u8>),
    Close(u16, String),
}

/// How to connect and keep a WebSocket alive.
#[derive(Debug, Clone, Default)]
pub struct WsOptions {
    pub headers: Vec<(String, String)>,
    /// Offered in Sec-WebSocket-Protocol, in order of preference.
    pub subprotocols: Vec<String>,
    pub connect_timeout: Option<Duration>,
    /// Ping this often while idle.
    pub ping_interval: Option<Duration>,
    /// With pings: give up this long after an unanswered ping.
    pub pong_timeout: Option<Duration>,
}

pub(super) fn connect(
    url: String,
    options: WsOptions,
    tls: Arc<rustls::ClientConfig>,
    handle: u32,
    sink: EventSink,
) -> Result<(mpsc::UnboundedSender<Outgoing>, JoinHandle<()>), IoError> {
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| IoError::Invalid(format!("websocket URL {url:?}: {e}")))?;
    for (name, value) in &options.headers {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| IoError::Invalid(format!("invalid header name {name:?}")))?;
        let value = http::HeaderValue::from_str(value)
            .map_err(|_| IoError::Invalid(format!("invalid value for header {name}")))?;
        request.headers_mut().insert(name, value);
    }
    if !options.subprotocols.is_empty() {
        let offered = options.subprotocols.join(", ");
        let value = http::HeaderValue::from_str(&offered)
            .map_err(|_| IoError::Invalid(format!("invalid subprotocols {offered:?}")))?;
        request
            .headers_mut()
            .insert(http::header::SEC_WEBSOCKET_PROTOCOL, value);
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let close = match run(request, &options, tls, handle, &sink, rx).await {
            Ok(close) => close,
            Err(f) => CloseInfo::failed(f),
        };
        sink.send(IoEvent::WsClosed {
            socket: handle,
            close,
        })
        .await;
    });
    Ok((tx, task))
}

/// Classify a tungstenite error; a refused upgrade keeps its HTTP answer.
fn failure(e: WsError) -> Failure {
    match e {
        WsError::Http(resp) => {
            let (parts, body) = resp.into_parts();
            Failure::UpgradeRefused {
                status: parts.status.as_u16(),
                headers: header_list(&parts.headers),
                body: body.unwrap_or_default().to_vec(),
            }
        }
        WsError::Io(e) => failure::io(&e),
        WsError::Tls(e) => failure::classify(&e),
        WsError::Protocol(p) => Failure::Protocol(p.to_string()),
        WsError::Url(u) => Failure::Other(u.to_string()),
        WsError::ConnectionClosed | WsError::AlreadyClosed => Failure::Reset,
        other => failure::classify(&other),
    }
}

fn header_list(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

async fn run(
    request: http::Request<()>,
    options: &WsOptions,
    tls: Arc<rustls::ClientConfig>,
    handle: u32,
    sink: &EventSink,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) -> Result<CloseInfo, Failure> {
    let connector = tokio_tungstenite::Connector::Rustls(tls);
    let (ws, response) = tokio::time::timeout(
        options
            .connect_timeout
            .unwrap_or(crate::timing::CONNECT_TIMEOUT),
        tokio_tungstenite::connect_async_tls_with_config(request, None, true, Some(connector)),
    )
    .await
    .map_err(|_| Failure::Timeout)?
    .map_err(failure)?;
    let subprotocol = response
        .headers()
        .get(http::header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    sink.send(IoEvent::WsOpened {
        socket: handle,
        headers: header_list(response.headers()),
        subprotocol,
    })
    .await;
    let (mut wr, mut rd) = ws.split();
    // Keep-alive: ping when the interval passes; a peer that sends nothing
    // (no pong, no data) for the pong timeout after a ping is dead.
    let ping_every = options.ping_interval;
    let pong_timeout = options.pong_timeout.or(ping_every);
    let mut next_ping = ping_every.map(|d| tokio::time::Instant::now() + d);
    let mut awaiting_since: Option<tokio::time::Instant> = None;
    loop {
        let wake = match (next_ping, awaiting_since.zip(pong_timeout)) {
            (_, Some((since, t))) => Some(since + t),
            (Some(at), None) => Some(at),
            (None, None) => None,
        };
        let timer = async move {
            match wake {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = rd.next() => {
                // Anything from the peer proves it alive.
                awaiting_since = None;
                if let Some(d) = ping_every {
                    next_ping = Some(tokio::time::Instant::now() + d);
                }
                match msg {
                    None => return Err(Failure::Reset),
                    Some(Err(e)) => return Err(failure(e)),
                    Some(Ok(Message::Text(t))) => {
                        sink.send(IoEvent::WsMessage { socket: handle, payload: WsPayload::Text(t.to_string()) }).await;
                    }
                    Some(Ok(Message::Binary(b))) => {
                        sink.send(IoEvent::WsMessage { socket: handle, payload: WsPayload::Binary(b.to_vec()) }).await;
                    }
                    Some(Ok(Message::Close(frame))) => {
                        return Ok(match frame {
                            Some(f) => CloseInfo { code: Some(f.code.into()), reason: f.reason.to_string(), failure: None },
                            None => CloseInfo::default(),
                        });
                    }
                    // Pings are answered by tungstenite itself.
                    Some(Ok(_)) => {}
                }
            },
            out = rx.recv() => match out {
                Some(Outgoing::Text(t)) => wr.send(Message::Text(t.into())).await.map_err(failure)?,
                Some(Outgoing::Binary(b)) => wr.send(Message::Binary(b.into())).await.map_err(failure)?,
                Some(Outgoing::Close(code, reason)) => {
                    let frame = CloseFrame { code: code.into(), reason: reason.clone().into() };
                    let _ = wr.send(Message::Close(Some(frame))).await;
                    return Ok(CloseInfo { code: Some(code), reason, failure: None });
                }
                None => return Ok(CloseInfo::default()),
            },
            _ = timer => {
                if awaiting_since.is_some() {
                    return Err(Failure::Timeout);
                }
                wr.send(Message::Ping(Vec::new().into())).await.map_err(failure)?;
                awaiting_since = Some(tokio::time::Instant::now());
                next_ping = None;
            }
        }
    }
}
