//! The API listener: accepts connections and serves HTTP/1.1 on them, with
//! every wait bounded, so that a client on the LAN cannot hold the hub's
//! descriptors or memory by being slow.
//!
//! - a request's head must arrive within the header timeout, which is also
//!   how long a keep-alive connection may sit idle between requests;
//! - a request's body must arrive within the body timeout (counted from its
//!   head, however slowly the bytes trickle in);
//! - a connection on which no byte moves either way for the idle timeout
//!   (a client that stopped reading its answer) is closed;
//! - at most `max_connections` are open at once (WebSocket sessions
//!   included), and fewer when `RLIMIT_NOFILE` is low: `fd_reserve`
//!   descriptors are always left to the plugins' sockets, the store and the
//!   compiled-plugin cache. When all are taken, the oldest connection that
//!   has not sent a whole request head yet is closed for the new one; when
//!   every one has, the new one is answered `503` in JSON and closed;
//! - when accepting fails for want of descriptors or memory, the loop backs
//!   off (up to [`timing::ACCEPT_BACKOFF_MAX`]) and logs once per second,
//!   instead of spinning and filling the log.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::tls_server::ServerTls;
use crate::timing;

/// Aborts a background task when the serve loop that owns it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The limits of the API listener (see the module documentation).
#[derive(Debug, Clone)]
pub struct ListenLimits {
    pub max_connections: usize,
    pub fd_reserve: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
}

/// What a connection over the cap is told before it is closed.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 85\r\n\r\n\
{\"error\":\"too many connections to the hub; retry later or raise HUB_MAX_CONNECTIONS\"}";

/// How many connections the listener takes at once: the configured cap,
/// lowered so that `fd_reserve` descriptors stay free for everything else.
/// Raises the soft descriptor limit to the hard one first.
pub fn connection_cap(limits: &ListenLimits) -> usize {
    let nofile = raise_nofile();
    // Logged as a number (or `unknown`), not as a Rust `Some(..)`.
    let limit = nofile.map_or_else(|| "unknown".to_string(), |n| n.to_string());
    let cap = match nofile {
        Some(n) => limits.max_connections.min(
            usize::try_from(n)
                .unwrap_or(usize::MAX)
                .saturating_sub(limits.fd_reserve),
        ),
        None => limits.max_connections,
    };
    if cap < 8 {
        tracing::warn!(
            nofile = %limit,
            fd_reserve = limits.fd_reserve,
            "very few descriptors are left for API connections ({cap}); raise the \
             process's RLIMIT_NOFILE (ulimit -n) or lower HUB_FD_RESERVE"
        );
    }
    let cap = cap.max(1);
    tracing::info!(
        cap,
        nofile = %limit,
        fd_reserve = limits.fd_reserve,
        "API connection cap"
    );
    cap
}

/// The soft `RLIMIT_NOFILE`, raised to the hard limit when that is higher.
fn raise_nofile() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    (lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

/// Serve `app` on `listener` until `shutdown` resolves; then stop accepting,
/// let connections finish their request (for at most
/// [`timing::SERVE_DRAIN`]) and return.
///
/// With `tls`, every connection is TLS (handshake within the header
/// timeout); the certificate is reloaded while serving (see
/// [`super::tls_server`]).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ListenLimits,
    tls: Option<ServerTls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let _reloader = AbortOnDrop(match &tls {
        Some(t) => t.watch(),
        None => tokio::spawn(ignore_hangups()),
    });
    let cap = connection_cap(&limits);
    let slots = Arc::new(Semaphore::new(cap));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut backoff = Backoff::default();
    let waiting = Waiting::default();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => {
                backoff.reset();
                tcp
            }
            Err(e) => {
                if let Some(wait) = backoff.on_error(&e) {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = &mut shutdown => break,
                    }
                }
                continue;
            }
        };
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            // Full: a connection that has not finished its first request
            // head in all this time gives way to the new one, so clients
            // that only open connections cannot lock everyone out.
            Err(_) if waiting.evict_oldest() => {
                match tokio::time::timeout(timing::EVICT_WAIT, slots.clone().acquire_owned()).await
                {
                    Ok(Ok(p)) => p,
                    _ => {
                        refuse(tcp);
                        continue;
                    }
                }
            }
            Err(_) => {
                refuse(tcp);
                continue;
            }
        };
        // No Nagle: a live-feed event is a small write that must leave at
        // once, not wait (up to the peer's delayed ACK, ~40 ms) for the
        // previous one to be acknowledged.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let waiter = waiting.add();
        tokio::spawn(connection(
            tcp,
            tls.clone(),
            permit,
            app.clone(),
            limits.clone(),
            stop_rx.clone(),
            waiter,
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a slot until it ends: all slots back means all
    // connections are done.
    let all = u32::try_from(cap).unwrap_or(u32::MAX);
    if tokio::time::timeout(timing::SERVE_DRAIN, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::info!(
            open = cap - slots.available_permits(),
            "connections still open after the drain time; closing them"
        );
    }
}

/// Without TLS there is nothing to reload; `SIGHUP` (a service manager's
/// `reload`) must not end the process as its default action would.
async fn ignore_hangups() {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!(
            "SIGHUP: nothing to reload (no TLS configured); restart the hub to apply \
             configuration changes"
        );
    }
}

/// Over the cap: say so and close. The answer is small enough to fit any
/// fresh socket's send buffer, so a non-blocking write suffices and the
/// accept loop never waits for a refused client.
fn refuse(tcp: TcpStream) {
    let _ = tcp.try_write(REFUSAL);
    tracing::debug!("API connection refused: connection cap reached");
}

/// One connection: HTTP/1.1 with the head timeout, a deadline on each
/// request body, and the idle watchdog. Its slot is held by the socket, so
/// an upgraded WebSocket keeps it until it closes.
async fn connection(
    tcp: TcpStream,
    tls: Option<ServerTls>,
    permit: OwnedSemaphorePermit,
    app: Router,
    limits: ListenLimits,
    stop: watch::Receiver<bool>,
    waiter: Waiter,
) {
    let activity = Arc::new(Activity::new());
    let watched = Watched {
        inner: tcp,
        activity: activity.clone(),
        _slot: permit,
    };
    let Some(tls) = tls else {
        return http(watched, activity, app, limits, stop, waiter).await;
    };
    // The handshake counts as part of the first request's head: a client
    // that opens TLS slowly is bounded like one that sends its head slowly,
    // and can be evicted meanwhile.
    let handshake = tokio::time::timeout(limits.header_timeout, tls.acceptor().accept(watched));
    let stream = tokio::select! {
        r = handshake => match r {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "API connection closed: TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!("API connection closed: no TLS handshake within the header timeout");
                return;
            }
        },
        _ = waiter.evicted.notified() => return,
    };
    http(stream, activity, app, limits, stop, waiter).await
}

/// HTTP/1.1 on one (plain or TLS) connection until it ends.
async fn http<S>(
    io: S,
    activity: Arc<Activity>,
    app: Router,
    limits: ListenLimits,
    mut stop: watch::Receiver<bool>,
    waiter: Waiter,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let body_timeout = limits.body_timeout;
    let Waiter { head_seen, evicted } = waiter;
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        head_seen.store(true, Ordering::Relaxed);
        let mut app = app.clone();
        let expired = Arc::new(AtomicBool::new(false));
        let req = req.map(|b| Body::new(DeadlineBody::new(b, body_timeout, expired.clone())));
        async move {
            let resp = tower_service::Service::call(&mut app, req).await;
            let resp = resp.unwrap_or_else(|e| match e {});
            // Whatever the handler made of its failed read, the client is
            // told the truth, and the connection (mid-body) is not reused.
            if expired.load(Ordering::Relaxed) {
                return Ok::<_, Infallible>(body_timeout_answer(body_timeout));
            }
            Ok(resp)
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let conn = http.serve_connection(io, service).with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let idle = limits.idle_timeout;
    let tick = (idle / 4).max(Duration::from_millis(50));
    let mut stopping = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "API connection ended");
                }
                return;
            }
            _ = tokio::time::sleep(tick) => {
                if activity.quiet_for() >= idle {
                    tracing::debug!(?idle, "API connection closed: idle");
                    return;
                }
            }
            _ = evicted.notified() => {
                tracing::debug!("API connection closed: it sent no request head and its slot was needed");
                return;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// The open connections in the order they came, with whether each has sent
/// a complete request head yet: those that have not are the ones to close
/// when the cap is reached.
#[derive(Default)]
struct Waiting(
    std::sync::Mutex<std::collections::VecDeque<(Arc<AtomicBool>, Arc<tokio::sync::Notify>)>>,
);

impl Waiting {
    /// Note a new connection: its head flag and the signal that evicts it.
    fn add(&self) -> Waiter {
        let entry = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(tokio::sync::Notify::new()),
        );
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Forget connections that have sent a head or ended (only the queue
        // still holds them): the queue stays as long as the waiting ones.
        q.retain(|(head, evict)| !head.load(Ordering::Relaxed) && Arc::strong_count(evict) > 1);
        q.push_back(entry.clone());
        Waiter {
            head_seen: entry.0,
            evicted: entry.1,
        }
    }

    /// Evict the oldest connection still waiting for its first head; false
    /// when there is none.
    fn evict_oldest(&self) -> bool {
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((head, evict)) = q.pop_front() {
            if !head.load(Ordering::Relaxed) && Arc::strong_count(&evict) > 1 {
                evict.notify_one();
                return true;
            }
        }
        false
    }
}

/// A connection's place in [`Waiting`]: it sets `head_seen` at its first
/// request head, and ends when `evicted` is signalled.
struct Waiter {
    head_seen: Arc<AtomicBool>,
    evicted: Arc<tokio::sync::Notify>,
}

/// When a connection last moved a byte.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// A socket that notes every read or write that made progress, and holds
/// its connection slot for as long as it lives.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
    _slot: OwnedSemaphorePermit,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = ready!(Pin::new(&mut self.inner).poll_read(cx, buf));
        if buf.filled().len() > before {
            self.activity.touch();
        }
        Poll::Ready(r)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = ready!(Pin::new(&mut self.inner).poll_write(cx, buf));
        if matches!(r, Ok(n) if n > 0) {
            self.activity.touch();
        }
        Poll::Ready(r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, bufs));
        if matches!(r, Ok(n) if n > 0) {
            self.activity.touch();
        }
        Poll::Ready(r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request body that must be complete within a time counted from the
/// request's head: a trickle of one byte a second does not keep it alive.
struct DeadlineBody {
    inner: Incoming,
    timeout: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    expired: Arc<AtomicBool>,
}

impl DeadlineBody {
    fn new(inner: Incoming, timeout: Duration, expired: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            expired,
        }
    }
}

/// `408` in the API's error shape, closing the connection.
fn body_timeout_answer(timeout: Duration) -> axum::response::Response {
    let body = serde_json::json!({ "error": BodyTimeout(timeout).to_string() }).to_string();
    http::Response::builder()
        .status(http::StatusCode::REQUEST_TIMEOUT)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::CONNECTION, "close")
        .body(Body::from(body))
        .unwrap_or_default()
}

/// The body did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error(
    "the request body did not arrive within {0:?}; send it faster or raise HUB_BODY_TIMEOUT_MS"
)]
pub struct BodyTimeout(pub Duration);

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.expired.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(self.timeout)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        http_body::Body::is_end_stream(&self.inner)
    }

    fn size_hint(&self) -> SizeHint {
        http_body::Body::size_hint(&self.inner)
    }
}

/// The accept loop's back-off: on a shortage of descriptors or memory, wait
/// (doubling up to a bound) so the loop does not spin; log once a second
/// with the number of failures in between.
#[derive(Default)]
struct Backoff {
    wait: Option<Duration>,
    last_log: Option<Instant>,
    unlogged: u64,
}

impl Backoff {
    fn reset(&mut self) {
        self.wait = None;
    }

    /// What to wait after `e`; `None` for errors of one connection only
    /// (reset before accept), which need no wait.
    fn on_error(&mut self, e: &io::Error) -> Option<Duration> {
        let shortage = matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        );
        if !shortage {
            tracing::debug!(error = %e, "accept failed for one connection");
            return None;
        }
        let wait = self.wait.map_or(timing::ACCEPT_BACKOFF_MIN, |w| {
            (w * 2).min(timing::ACCEPT_BACKOFF_MAX)
        });
        self.wait = Some(wait);
        self.unlogged += 1;
        if self
            .last_log
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            tracing::warn!(
                error = %e,
                failures = self.unlogged,
                ?wait,
                "cannot accept API connections: out of descriptors or memory; backing off \
                 (raise RLIMIT_NOFILE or lower HUB_MAX_CONNECTIONS)"
            );
            self.last_log = Some(Instant::now());
            self.unlogged = 0;
        }
        Some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_bound_and_resets() {
        let mut b = Backoff::default();
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let first = b.on_error(&emfile).unwrap();
        assert_eq!(first, timing::ACCEPT_BACKOFF_MIN);
        assert_eq!(b.on_error(&emfile).unwrap(), first * 2);
        for _ in 0..40 {
            b.on_error(&emfile);
        }
        assert_eq!(b.on_error(&emfile).unwrap(), timing::ACCEPT_BACKOFF_MAX);
        b.reset();
        assert_eq!(b.on_error(&emfile).unwrap(), timing::ACCEPT_BACKOFF_MIN);
        let aborted = io::Error::from_raw_os_error(libc::ECONNABORTED);
        assert_eq!(b.on_error(&aborted), None);
    }

    #[test]
    fn refusal_is_well_formed() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, body.len());
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(v["error"].as_str().unwrap().contains("HUB_MAX_CONNECTIONS"));
    }
}
