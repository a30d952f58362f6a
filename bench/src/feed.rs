//! Live-feed clients: Server-Sent Events over a raw HTTP/1.1 connection
//! and WebSocket (tokio-tungstenite), both feeding a [`FeedSink`] that
//! counts presence events, keeps each user's last value and, when send
//! times are known, the latency of each update.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::sipserver::Stamps;

/// What a user showed in the last event a client got: note number and
/// whether the telephony channel said busy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    pub note: u64,
    pub busy: Option<bool>,
}

/// Where clients put what they receive.
pub struct FeedSink {
    /// Presence events received (snapshots not counted).
    pub events: AtomicU64,
    /// Clients whose stream ended early (resync, error), with why.
    pub ended: Mutex<Vec<String>>,
    /// Clients that got their snapshot (connected and following).
    pub ready: AtomicU64,
    last: Option<Mutex<HashMap<usize, Seen>>>,
    stamps: Option<Arc<Stamps>>,
    /// Latencies in microseconds.
    latencies: Mutex<Vec<u32>>,
}

impl FeedSink {
    /// `track_last`: keep each user's last value; `stamps`: measure
    /// latency of presence updates by note number.
    pub fn new(track_last: bool, stamps: Option<Arc<Stamps>>) -> Arc<FeedSink> {
        Arc::new(FeedSink {
            events: AtomicU64::new(0),
            ended: Mutex::new(Vec::new()),
            ready: AtomicU64::new(0),
            last: track_last.then(|| Mutex::new(HashMap::new())),
            stamps,
            latencies: Mutex::new(Vec::new()),
        })
    }

    /// Each user's last value.
    pub fn last(&self) -> HashMap<usize, Seen> {
        self.last
            .as_ref()
            .map(|m| m.lock().unwrap().clone())
            .unwrap_or_default()
    }

    /// Take the latencies gathered so far (µs).
    pub fn take_latencies(&self) -> Vec<u32> {
        std::mem::take(&mut self.latencies.lock().unwrap())
    }

    fn on_message(&self, text: &str) {
        if text.contains("\"type\":\"snapshot\"") {
            self.ready.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if !text.contains("\"type\":\"presence\"") {
            if text.contains("\"type\":\"resync\"") {
                self.ended.lock().unwrap().push("resync (too slow)".into());
            }
            return;
        }
        let now = self
            .stamps
            .as_ref()
            .map(|s| s.epoch.elapsed().as_nanos() as u64);
        self.events.fetch_add(1, Ordering::Relaxed);
        let note = field(text, "\"note\":\"b").and_then(|n| n.parse::<u64>().ok());
        if let (Some(stamps), Some(now), Some(n)) = (&self.stamps, now, note)
            && let Some(sent) = stamps.at.get(n as usize).map(|a| a.load(Ordering::Relaxed))
            && sent > 0
        {
            let us = now.saturating_sub(sent) / 1000;
            self.latencies
                .lock()
                .unwrap()
                .push(us.min(u64::from(u32::MAX)) as u32);
        }
        if let Some(last) = &self.last
            && let Some(user) =
                field(text, "\"username\":\"u").and_then(|u| u.parse::<usize>().ok())
        {
            let busy = field(text, "\"telephony\":{\"state\":\"").map(|s| s == "busy");
            let mut m = last.lock().unwrap();
            let e = m.entry(user).or_default();
            if let Some(n) = note {
                e.note = n;
            }
            if busy.is_some() {
                e.busy = busy;
            }
        }
    }
}

/// The text after `key` up to the next quote.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let start = text.find(key)? + key.len();
    let len = text[start..].find('"')?;
    Some(&text[start..start + len])
}

/// Follow the SSE feed (`users`: comma-separated, or everyone) until `stop`.
pub async fn sse(
    hub: SocketAddr,
    token: String,
    users: Option<String>,
    sink: Arc<FeedSink>,
    stop: watch::Receiver<bool>,
) {
    let run = sse_inner(hub, &token, users.as_deref(), &sink);
    until_stopped("sse", run, &sink, stop).await;
}

/// Run a client until it ends or `stop` is set; why it ended early (an
/// error) goes into `sink.ended`.
async fn until_stopped(
    what: &str,
    run: impl std::future::Future<Output = anyhow::Result<()>>,
    sink: &FeedSink,
    mut stop: watch::Receiver<bool>,
) {
    let why = tokio::select! {
        r = run => r.err().map(|e| format!("{what}: {e}")),
        _ = stop.wait_for(|s| *s) => None,
    };
    if let Some(w) = why {
        sink.ended.lock().unwrap().push(w);
    }
}

async fn sse_inner(
    hub: SocketAddr,
    token: &str,
    users: Option<&str>,
    sink: &FeedSink,
) -> anyhow::Result<()> {
    let mut conn = TcpStream::connect(hub).await?;
    conn.set_nodelay(true)?;
    let query = users.map(|u| format!("?users={u}")).unwrap_or_default();
    let req = format!(
        "GET /api/v1/feed/sse{query} HTTP/1.1\r\nHost: {hub}\r\nAuthorization: Bearer {token}\r\n\
Accept: text/event-stream\r\n\r\n"
    );
    conn.write_all(req.as_bytes()).await?;
    let mut raw: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut buf = vec![0u8; 1 << 16];
    // Response head.
    let body_start = loop {
        let n = conn.read(&mut buf).await?;
        anyhow::ensure!(n > 0, "connection closed before the response");
        raw.extend_from_slice(&buf[..n]);
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&raw[..body_start]).to_ascii_lowercase();
    anyhow::ensure!(
        head.starts_with("http/1.1 200"),
        "{}",
        head.lines().next().unwrap_or("")
    );
    let chunked = head.contains("transfer-encoding: chunked");
    raw.drain(..body_start);
    // De-chunked body, split into events at blank lines.
    let mut body: Vec<u8> = Vec::with_capacity(1 << 16);
    loop {
        if chunked {
            while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
                let size_text = std::str::from_utf8(&raw[..eol])?;
                let size =
                    usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)?;
                if raw.len() < eol + 2 + size + 2 {
                    break;
                }
                anyhow::ensure!(size > 0, "the feed ended");
                body.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
                raw.drain(..eol + 2 + size + 2);
            }
        } else {
            body.append(&mut raw);
        }
        let mut start = 0;
        while let Some(p) = body[start..].windows(2).position(|w| w == b"\n\n") {
            let event = std::str::from_utf8(&body[start..start + p])?;
            for line in event.lines() {
                if let Some(data) = line.strip_prefix("data:") {
                    sink.on_message(data.trim_start());
                }
            }
            start += p + 2;
        }
        body.drain(..start);
        let n = conn.read(&mut buf).await?;
        anyhow::ensure!(n > 0, "the hub closed the feed");
        raw.extend_from_slice(&buf[..n]);
    }
}

/// Follow the WebSocket feed until `stop`.
pub async fn ws(
    hub: SocketAddr,
    token: String,
    users: Option<String>,
    sink: Arc<FeedSink>,
    stop: watch::Receiver<bool>,
) {
    let run = ws_inner(hub, &token, users.as_deref(), &sink);
    until_stopped("ws", run, &sink, stop).await;
}

async fn ws_inner(
    hub: SocketAddr,
    token: &str,
    users: Option<&str>,
    sink: &FeedSink,
) -> anyhow::Result<()> {
    let query = users.map(|u| format!("?users={u}")).unwrap_or_default();
    let mut req = format!("ws://{hub}/api/v1/feed/ws{query}").into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let stream = TcpStream::connect(hub).await?;
    stream.set_nodelay(true)?;
    let (mut ws, _) = tokio_tungstenite::client_async(req, stream).await?;
    while let Some(msg) = ws.next().await {
        match msg? {
            Message::Text(t) => sink.on_message(t.as_str()),
            Message::Close(_) => anyhow::bail!("the hub closed the feed"),
            _ => {}
        }
    }
    anyhow::bail!("the feed ended")
}

/// p-th percentile (0-100) of sorted values.
pub fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    f64::from(sorted[rank.min(sorted.len() - 1)])
}
