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
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

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
    /// Latencies in microseconds, with the note number of the update.
    latencies: Mutex<Vec<(u64, u32)>>,
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

    /// One user's last value, if tracked and seen.
    pub fn last_of(&self, user: usize) -> Option<Seen> {
        self.last.as_ref()?.lock().unwrap().get(&user).copied()
    }

    /// Take the latencies gathered so far: (note number, µs).
    pub fn take_latencies(&self) -> Vec<(u64, u32)> {
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
                .push((n, us.min(u64::from(u32::MAX)) as u32));
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
    // Small buffers (they grow when needed): 10,000 clients run at once.
    let mut raw: Vec<u8> = Vec::with_capacity(4096);
    let mut buf = vec![0u8; 16 << 10];
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
    let mut body: Vec<u8> = Vec::with_capacity(4096);
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
    // A small read buffer (the default is 128 KiB): 10,000 clients run at
    // once. The client writes nothing but pongs.
    let config = WebSocketConfig::default()
        .read_buffer_size(16 << 10)
        .write_buffer_size(0);
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(req, stream, Some(config)).await?;
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

/// Feed clients following users `0..users`: half of them on SSE, half on
/// WebSocket, each following an equal slice of the users, so that every
/// update reaches one client of each kind.
pub struct Clients {
    pub sse: Arc<FeedSink>,
    pub ws: Arc<FeedSink>,
    /// Clients per transport.
    pub per_transport: usize,
    /// Users each client follows.
    pub per_client: usize,
    /// Seconds until every client had its snapshot.
    pub connect_secs: f64,
    /// Dropping it (or sending `true`) ends every client.
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Clients {
    /// Connect `clients` clients (rounded down to an even number), at most
    /// `max_pending` of them connecting at a time (so that the hub's accept
    /// queue never overflows), and wait until each has its snapshot.
    pub async fn connect(
        hub: SocketAddr,
        token: &str,
        users: usize,
        clients: usize,
        stamps: Option<Arc<Stamps>>,
        max_pending: usize,
        limit: std::time::Duration,
    ) -> anyhow::Result<Clients> {
        let start = std::time::Instant::now();
        let deadline = start + limit;
        let sse_sink = FeedSink::new(false, stamps.clone());
        let ws_sink = FeedSink::new(false, stamps);
        let (stop, stop_rx) = watch::channel(false);
        let half = clients / 2;
        let per_client = users.div_ceil(half.max(1));
        let mut group = Clients {
            sse: sse_sink,
            ws: ws_sink,
            per_transport: half,
            per_client,
            connect_secs: 0.0,
            stop,
            tasks: Vec::with_capacity(2 * half),
        };
        let settled = |g: &Clients| {
            g.sse.ready.load(Ordering::Relaxed)
                + g.ws.ready.load(Ordering::Relaxed)
                + (g.sse.ended.lock().unwrap().len() + g.ws.ended.lock().unwrap().len()) as u64
        };
        for c in 0..half {
            let follow: Vec<String> = (c * per_client..((c + 1) * per_client).min(users))
                .map(|i| format!("u{i}"))
                .collect();
            let follow = Some(follow.join(","));
            group.tasks.push(tokio::spawn(sse(
                hub,
                token.to_string(),
                follow.clone(),
                group.sse.clone(),
                stop_rx.clone(),
            )));
            group.tasks.push(tokio::spawn(ws(
                hub,
                token.to_string(),
                follow,
                group.ws.clone(),
                stop_rx.clone(),
            )));
            while group.tasks.len() as u64 > settled(&group) + max_pending as u64 {
                anyhow::ensure!(
                    std::time::Instant::now() < deadline,
                    "{} of {} clients connected within {limit:?}",
                    settled(&group),
                    2 * half
                );
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        }
        while settled(&group) < (2 * half) as u64 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let (r_sse, r_ws) = (
            group.sse.ready.load(Ordering::Relaxed),
            group.ws.ready.load(Ordering::Relaxed),
        );
        anyhow::ensure!(
            r_sse + r_ws >= (2 * half) as u64,
            "only {r_sse} SSE and {r_ws} WebSocket clients of {half} each got their snapshot within {limit:?}; ended: {:?} {:?}",
            group.sse.ended.lock().unwrap().first(),
            group.ws.ended.lock().unwrap().first()
        );
        group.connect_secs = start.elapsed().as_secs_f64();
        Ok(group)
    }

    /// Clients whose stream ended early, both transports.
    pub fn ended(&self) -> usize {
        self.sse.ended.lock().unwrap().len() + self.ws.ended.lock().unwrap().len()
    }

    /// End every client and wait (up to 10 s) until they are gone.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut self.tasks);
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            futures::future::join_all(tasks),
        )
        .await;
    }
}
