//! `/api/v1/presence` and the live feed over Server-Sent Events and
//! WebSocket.

use std::collections::BTreeSet;
use std::convert::Infallible;

use axum::Json;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::error::ApiQuery;
use super::users::Page;
use super::{ApiError, AppState};
use crate::presence::{FeedEvent, Next, Subscription};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PresenceQuery {
    pub q: Option<String>,
    /// Filter by rich state, e.g. `busy`.
    pub rich: Option<String>,
    /// Filter by telephony state, e.g. `forwarded-to-voicemail`.
    pub telephony: Option<String>,
    pub page: Option<usize>,
    pub per_page: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/api/v1/presence",
    tag = "presence",
    summary = "Merged presence of every user, filtered and paged",
    params(PresenceQuery),
    responses(
        (status = 200, description = "One page", body = super::openapi::PresencePage),
        (status = 400, description = "A parameter is out of range", body = super::openapi::ErrorBody)
    )
)]
pub async fn list(
    State(s): State<AppState>,
    ApiQuery(p): ApiQuery<PresenceQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let (page, per_page) = Page {
        q: None,
        page: p.page,
        per_page: p.per_page,
    }
    .bounds()?;
    let (seq, all) = s.presence.snapshot(None).await?;
    let q = p.q.as_deref().map(str::to_lowercase);
    let list: Vec<_> = all
        .into_iter()
        .filter(|u| {
            q.as_deref().is_none_or(|q| {
                u.username.to_lowercase().contains(q) || u.display_name.to_lowercase().contains(q)
            })
        })
        .filter(|u| p.rich.as_deref().is_none_or(|r| u.rich.state.as_str() == r))
        .filter(|u| {
            p.telephony
                .as_deref()
                .is_none_or(|t| u.telephony.state.as_str() == t)
        })
        .collect();
    let total = list.len();
    let users: Vec<_> = list
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    Ok(Json(
        json!({ "seq": seq, "total": total, "page": page, "per_page": per_page, "users": users }),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/presence/{username}",
    tag = "presence",
    summary = "One user's merged presence, every source's report, the reasons and the sync",
    params(("username" = String, Path, description = "Username (canonical form)")),
    responses(
        (status = 200, description = "The detail", body = crate::presence::UserPresenceDetail),
        (status = 404, description = "No such user", body = super::openapi::ErrorBody)
    )
)]
pub async fn one(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(s.presence.detail(&name).await?))
}

/// Which users a feed client follows and where it resumes.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// Comma-separated usernames; absent: everyone.
    pub users: Option<String>,
    /// Resume after this sequence number.
    pub since: Option<u64>,
    /// Accepted for browsers (see auth); not used here.
    #[allow(dead_code)]
    pub access_token: Option<String>,
}

fn follow(q: &FeedQuery) -> Option<BTreeSet<String>> {
    q.users.as_ref().map(|u| {
        u.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
}

fn since(q: &FeedQuery, headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    if let Some(s) = q.since {
        return Ok(Some(s));
    }
    match headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        None => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|_| {
            ApiError::field(
                StatusCode::BAD_REQUEST,
                "Last-Event-ID",
                "a sequence number",
            )
        }),
    }
}

/// The feed's first message: everyone the client follows, as of `seq`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct FeedSnapshot<'a> {
    /// The sequence number the snapshot is current to (resume after it).
    pub seq: u64,
    pub r#type: SnapshotType,
    #[schema(value_type = Vec<crate::presence::UserPresence>)]
    pub users: &'a [std::sync::Arc<crate::presence::UserPresence>],
}

/// The `type` of a snapshot message.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotType {
    Snapshot,
}

/// The feed's last message: the stream ends after it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct FeedNotice {
    pub r#type: NoticeType,
    /// What the client should do, in words.
    pub reason: String,
}

/// Why a feed stream ends.
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NoticeType {
    /// The client fell too far behind: reconnect with `Last-Event-ID`
    /// (SSE) or `since=` (WebSocket) to get what was missed.
    Resync,
    /// The client's token was revoked.
    Revoked,
}

impl FeedNotice {
    /// The message as the feed sends it.
    fn json(r#type: NoticeType, reason: &str) -> String {
        serde_json::to_string(&FeedNotice {
            r#type,
            reason: reason.to_string(),
        })
        .unwrap_or_default()
    }
}

/// The snapshot's JSON, made once for every client that starts following
/// everyone at the same sequence number and shared by them (at 100k users
/// it is ~29 MB: one copy per client took gigabytes).
#[derive(Default)]
pub struct SnapshotCache(std::sync::Mutex<Option<(u64, Bytes)>>);

impl SnapshotCache {
    fn json(&self, sub: &mut Subscription, everyone: bool) -> Option<Bytes> {
        let snap = sub.snapshot.take()?;
        // Written straight from the users (no JSON value tree in between,
        // which took ten times the text's size).
        let make = |snap: &[std::sync::Arc<crate::presence::UserPresence>]| {
            Bytes::from(
                serde_json::to_vec(&FeedSnapshot {
                    seq: sub.seq,
                    r#type: SnapshotType::Snapshot,
                    users: snap,
                })
                .unwrap_or_default(),
            )
        };
        if !everyone {
            return Some(make(&snap));
        }
        let mut cached = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((seq, bytes)) = cached.as_ref()
            && *seq == sub.seq
        {
            return Some(bytes.clone());
        }
        let bytes = make(&snap);
        *cached = Some((sub.seq, bytes.clone()));
        Some(bytes)
    }
}

/// What a client gets first: the snapshot (shared bytes) or the replay,
/// as (event name, JSON, id).
fn first_messages(
    s: &AppState,
    sub: &mut Subscription,
    everyone: bool,
) -> Vec<(String, Bytes, Option<u64>)> {
    let mut out = Vec::new();
    if let Some(bytes) = s.snapshots.json(sub, everyone) {
        out.push(("snapshot".to_string(), bytes, Some(sub.seq)));
    }
    for ev in &sub.replay {
        out.push((kind(ev), Bytes::from(ev.json().to_string()), Some(ev.seq)));
    }
    out
}

/// One SSE event as bytes; `data` is JSON, which has no raw newline, so one
/// `data:` line holds it, and the shared bytes are not copied.
fn sse_event(event: &str, id: Option<u64>, data: Bytes) -> [Bytes; 3] {
    let mut head = format!("event: {event}\n");
    if let Some(id) = id {
        head.push_str(&format!("id: {id}\n"));
    }
    head.push_str("data: ");
    [Bytes::from(head), data, Bytes::from_static(b"\n\n")]
}

fn kind(ev: &FeedEvent) -> String {
    match ev.kind {
        crate::presence::FeedKind::Presence(_) => "presence".into(),
        crate::presence::FeedKind::Removed { .. } => "removed".into(),
    }
}

/// How many live-feed streams are open, in all and per token: each holds
/// a subscription (its backlog) and a connection, so an authenticated
/// console cannot open them without bound.
pub struct FeedSlots {
    total: usize,
    per_token: usize,
    open: std::sync::Mutex<(usize, std::collections::HashMap<String, usize>)>,
}

/// One open feed stream; its slot is given back when it is dropped.
pub struct FeedSlot {
    slots: std::sync::Arc<FeedSlots>,
    token: String,
}

impl FeedSlots {
    pub fn new(total: usize, per_token: usize) -> Self {
        Self {
            total,
            per_token,
            open: Default::default(),
        }
    }

    /// A slot for a stream of `caller`, or the 429 that says which cap.
    pub fn take(self: &std::sync::Arc<Self>, caller: &Caller) -> Result<FeedSlot, ApiError> {
        let token = caller.token_id.clone().unwrap_or_else(|| "admin".into());
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.0 >= self.total {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "the hub serves {} live-feed streams at most; retry later or raise HUB_MAX_FEEDS",
                    self.total
                ),
            ));
        }
        let mine = open.1.entry(token.clone()).or_default();
        if *mine >= self.per_token {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "this token has {} live-feed streams open, the most one token may; close one \
                     or raise HUB_MAX_FEEDS_PER_TOKEN",
                    self.per_token
                ),
            ));
        }
        *mine += 1;
        open.0 += 1;
        Ok(FeedSlot {
            slots: self.clone(),
            token,
        })
    }
}

impl Drop for FeedSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|p| p.into_inner());
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.token) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.1.remove(&self.token);
            }
        }
    }
}

/// Resolves when the caller's token is revoked (never for the admin
/// token).
async fn revoked(mut rx: tokio::sync::watch::Receiver<bool>) {
    if rx.wait_for(|r| *r).await.is_err() {
        // The sender lives as long as the token: gone means revoked.
    }
}

/// Server-Sent Events: a `snapshot` (or the missed changes when resuming
/// with `since` / `Last-Event-ID`), then `presence` and `removed` events whose
/// `id` is the sequence number. A client that falls behind gets `resync` and
/// is disconnected.
#[utoipa::path(
    get,
    path = "/api/v1/feed/sse",
    tag = "presence",
    summary = "Live feed over Server-Sent Events",
    params(FeedQuery, ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this sequence number (what the browser sends on reconnect)")),
    responses(
        (status = 200, description = "An event stream: each event is named by the message's `type`, its `id` is the `seq`, its `data` one FeedMessage", content_type = "text/event-stream", body = super::openapi::FeedMessage),
        (status = 400, description = "Last-Event-ID or since is not a sequence number", body = super::openapi::ErrorBody),
        (status = 429, description = "Too many feed streams, in all or for this token", body = super::openapi::ErrorBody)
    )
)]
pub async fn sse(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<FeedQuery>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let since = since(&q, &headers)?;
    let slot = s.feeds.take(&caller)?;
    let client = s.metrics.feed_client("sse");
    let follow = follow(&q);
    let everyone = follow.is_none();
    let mut sub = s.presence.subscribe(follow, since).await?;
    let first = first_messages(&s, &mut sub, everyone);
    let mut gone = Box::pin(revoked(caller.revoked.clone()));
    let stream = async_stream::stream! {
        let _slot = slot;
        let _client = client;
        for (event, data, id) in first {
            for part in sse_event(&event, id, data) {
                yield Ok::<_, Infallible>(part);
            }
        }
        let mut keepalive = tokio::time::interval(crate::timing::FEED_KEEPALIVE);
        keepalive.tick().await;
        loop {
            let next = tokio::select! {
                n = sub.next() => n,
                _ = keepalive.tick() => {
                    yield Ok(Bytes::from_static(b":\n\n"));
                    continue;
                }
                _ = &mut gone => {
                    for part in sse_event("revoked", None, Bytes::from(FeedNotice::json(NoticeType::Revoked, "the token was revoked"))) {
                        yield Ok(part);
                    }
                    break;
                }
            };
            match next {
                Next::Event(ev) => {
                    for part in sse_event(&kind(&ev), Some(ev.seq), Bytes::from(ev.json().to_string())) {
                        yield Ok(part);
                    }
                }
                Next::Lagged => {
                    for part in sse_event("resync", None, Bytes::from(FeedNotice::json(NoticeType::Resync, "client too slow; reconnect with Last-Event-ID"))) {
                        yield Ok(part);
                    }
                    break;
                }
                Next::Closed => break,
            }
        }
    };
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        axum::body::Body::from_stream(stream),
    ))
}

/// WebSocket: the same messages as JSON text frames.
#[utoipa::path(
    get,
    path = "/api/v1/feed/ws",
    tag = "presence",
    summary = "Live feed over WebSocket",
    params(FeedQuery, ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this sequence number (what the browser sends on reconnect)")),
    responses(
        (status = 101, description = "Switching to WebSocket: every text frame the hub sends is one FeedMessage (components/schemas/FeedMessage); the client only sends close frames and pings"),
        (status = 400, description = "Not a WebSocket upgrade, or since is not a sequence number", body = super::openapi::ErrorBody),
        (status = 429, description = "Too many feed streams, in all or for this token", body = super::openapi::ErrorBody)
    )
)]
pub async fn ws(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<FeedQuery>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Result<impl IntoResponse, ApiError> {
    let since = since(&q, &headers)?;
    let slot = s.feeds.take(&caller)?;
    let follow = follow(&q);
    let everyone = follow.is_none();
    let mut sub = s.presence.subscribe(follow, since).await?;
    let first = first_messages(&s, &mut sub, everyone);
    let gone = revoked(caller.revoked.clone());
    let metrics = s.metrics.clone();
    // A console only ever sends a close frame: a small read buffer (the
    // default is 128 KiB per client) keeps 10,000 clients cheap.
    Ok(upgrade
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(WS_WRITE_BUFFER)
        .max_frame_size(WS_MAX_MESSAGE)
        .max_message_size(WS_MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            let _slot = slot;
            let _client = metrics.feed_client("websocket");
            ws_session(socket, sub, first, gone).await
        }))
}

/// Per WebSocket client: what it may send (close frames, pings) and what is
/// gathered before a write.
const WS_READ_BUFFER: usize = 4 * 1024;
const WS_WRITE_BUFFER: usize = 16 * 1024;
/// The largest frame or message a console may send: it only ever sends
/// close frames and pings, so anything bigger ends the session instead of
/// being buffered (the default would take 64 MiB).
pub const WS_MAX_MESSAGE: usize = 4 * 1024;
/// What is sent to a WebSocket client waits for its flush, so a session
/// holds at most one message for a client that does not read, and for a
/// bounded time.
use crate::timing::{
    FEED_SEND_TIMEOUT as WS_SEND_TIMEOUT, FEED_SNAPSHOT_TIMEOUT as WS_SNAPSHOT_TIMEOUT,
};

async fn ws_session(
    socket: WebSocket,
    mut sub: Subscription,
    first: Vec<(String, Bytes, Option<u64>)>,
    gone: impl Future<Output = ()>,
) {
    let mut gone = std::pin::pin!(gone);
    let (mut socket, mut incoming) = socket.split();
    // The client only ever closes. Its side is read by a task of its own:
    // polling it from the loop below would read (and re-buffer) the socket
    // on every wake-up of the loop.
    let mut closed = tokio::spawn(async move {
        while let Some(Ok(m)) = incoming.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    });
    let _reader = AbortOnDrop(closed.abort_handle());
    for (_, data, _) in first {
        // JSON made from Rust strings is UTF-8: the shared bytes are sent
        // as they are.
        let Ok(text) = axum::extract::ws::Utf8Bytes::try_from(data) else {
            return;
        };
        match tokio::time::timeout(WS_SNAPSHOT_TIMEOUT, socket.send(Message::Text(text))).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
    // Pings keep a quiet feed's connection from looking idle and show a
    // dead client (its pings' writes stall) to the send timeout below.
    let mut ping = tokio::time::interval(crate::timing::FEED_KEEPALIVE);
    ping.tick().await;
    loop {
        tokio::select! {
            _ = ping.tick() => {
                match tokio::time::timeout(WS_SEND_TIMEOUT, socket.send(Message::Ping(Default::default()))).await {
                    Ok(Ok(())) => {}
                    _ => return,
                }
            }
            next = sub.next() => match next {
                Next::Event(ev) => {
                    let text = ev.json().to_string();
                    // A client that cannot take a message in time is cut off.
                    match tokio::time::timeout(WS_SEND_TIMEOUT, socket.send(Message::Text(text.into()))).await {
                        Ok(Ok(())) => {}
                        _ => return,
                    }
                }
                Next::Lagged => {
                    let _ = socket.send(Message::Text(FeedNotice::json(NoticeType::Resync, "client too slow; reconnect with since").into())).await;
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
                Next::Closed => return,
            },
            _ = &mut closed => return,
            _ = &mut gone => {
                let _ = socket.send(Message::Text(FeedNotice::json(NoticeType::Revoked, "the token was revoked").into())).await;
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
        }
    }
}

/// Ends a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
