//! `/api/v1/presence` and the live feed over Server-Sent Events and
//! WebSocket.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiQuery;
use super::users::Page;
use super::{ApiError, AppState};
use crate::presence::{FeedEvent, Next, Subscription};

#[derive(Debug, Deserialize)]
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

pub async fn one(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(s.presence.detail(&name).await?))
}

/// Which users a feed client follows and where it resumes.
#[derive(Debug, Deserialize)]
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

fn first_messages(sub: &Subscription) -> Vec<(String, String, Option<u64>)> {
    let mut out = Vec::new();
    if let Some(snap) = &sub.snapshot {
        out.push((
            "snapshot".to_string(),
            json!({ "type": "snapshot", "seq": sub.seq, "users": snap }).to_string(),
            Some(sub.seq),
        ));
    }
    for ev in &sub.replay {
        out.push((kind(ev), ev.json().to_string(), Some(ev.seq)));
    }
    out
}

fn kind(ev: &FeedEvent) -> String {
    match ev.kind {
        crate::presence::FeedKind::Presence(_) => "presence".into(),
        crate::presence::FeedKind::Removed { .. } => "removed".into(),
    }
}

/// Server-Sent Events: a `snapshot` (or the missed changes when resuming
/// with `since` / `Last-Event-ID`), then `presence` and `removed` events whose
/// `id` is the sequence number. A client that falls behind gets `resync` and
/// is disconnected.
pub async fn sse(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<FeedQuery>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let since = since(&q, &headers)?;
    let mut sub = s.presence.subscribe(follow(&q), since).await?;
    let first = first_messages(&sub);
    let stream = async_stream::stream! {
        for (event, data, id) in first {
            let mut e = Event::default().event(event).data(data);
            if let Some(id) = id { e = e.id(id.to_string()); }
            yield Ok::<_, Infallible>(e);
        }
        loop {
            match sub.next().await {
                Next::Event(ev) => {
                    let e = Event::default()
                        .event(kind(&ev))
                        .id(ev.seq.to_string())
                        .data(ev.json());
                    yield Ok(e);
                }
                Next::Lagged => {
                    yield Ok(Event::default().event("resync").data(r#"{"type":"resync","reason":"client too slow; reconnect with Last-Event-ID"}"#));
                    break;
                }
                Next::Closed => break,
            }
        }
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(crate::timing::FEED_KEEPALIVE)))
}

/// WebSocket: the same messages as JSON text frames.
pub async fn ws(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<FeedQuery>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Result<impl IntoResponse, ApiError> {
    let since = since(&q, &headers)?;
    let sub = s.presence.subscribe(follow(&q), since).await?;
    // A console only ever sends a close frame: a small read buffer (the
    // default is 128 KiB per client) keeps 10,000 clients cheap.
    Ok(upgrade
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(WS_WRITE_BUFFER)
        .on_upgrade(move |socket| ws_session(socket, sub)))
}

/// Per WebSocket client: what it may send (close frames, pings) and what is
/// gathered before a write.
const WS_READ_BUFFER: usize = 4 * 1024;
const WS_WRITE_BUFFER: usize = 16 * 1024;

async fn ws_session(socket: WebSocket, mut sub: Subscription) {
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
    for (_, data, _) in first_messages(&sub) {
        if socket.send(Message::Text(data.into())).await.is_err() {
            return;
        }
    }
    // Pings keep a quiet feed's connection from looking idle and show a
    // dead client (its pings' writes stall) to the send timeout below.
    let mut ping = tokio::time::interval(crate::timing::FEED_KEEPALIVE);
    ping.tick().await;
    loop {
        tokio::select! {
            _ = ping.tick() => {
                match tokio::time::timeout(Duration::from_secs(5), socket.send(Message::Ping(Default::default()))).await {
                    Ok(Ok(())) => {}
                    _ => return,
                }
            }
            next = sub.next() => match next {
                Next::Event(ev) => {
                    let text = ev.json().to_string();
                    // A client that cannot take a message within 5 s is cut off.
                    match tokio::time::timeout(Duration::from_secs(5), socket.send(Message::Text(text.into()))).await {
                        Ok(Ok(())) => {}
                        _ => return,
                    }
                }
                Next::Lagged => {
                    let _ = socket.send(Message::Text(r#"{"type":"resync","reason":"client too slow; reconnect with since"}"#.into())).await;
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
                Next::Closed => return,
            },
            _ = &mut closed => return,
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
