//! One API on every node of a cluster: a request that needs a connector
//! instance's running plugin (a write-back, a change the plugin must
//! accept, enable and disable, a webhook) is passed to the node that runs
//! the instance, once, and answered with that node's status, headers and
//! body.
//!
//! A passed request carries [`FORWARDED`]. A node that gets one for an
//! instance it does not run answers 503 naming the node it believes runs
//! it, rather than handling it (a change it stored would skip the plugin's
//! check) or passing it on (two nodes whose lease views disagree for a
//! moment would bounce it between them); the client retries once the
//! views have settled. Webhooks (`hooks.rs`) follow the same rule, so a
//! platform's webhook that arrives while its instance is taken over gets
//! 503 with Retry-After (Graph and RingCentral deliver again), not 404.

use axum::RequestExt;
use axum::body::Bytes;
use axum::extract::{FromRequest, MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::{ApiError, AppState};
use crate::io::Failure;
use crate::runtime::{Placement, Runtime};
use crate::timing::{LEASE_CHECK, LEASE_TTL};

/// Marks a request one node passed to another; its value is the id of
/// the node that passed it.
pub const FORWARDED: &str = "x-presence-hub-forwarded";

/// The admin routes that need their connector instance's running plugin
/// (method, path as routed; the instance is the path parameter `id`): a
/// write-back, a change the plugin must accept (PATCH, PUT, watches),
/// enable and disable, a delete (the run says goodbye before its data
/// goes), and the instance's write records, which the node that made the
/// writes keeps. Reads of what every node shares (the instance, its
/// status, its observations) are answered where they arrive. The OpenAPI
/// description documents these routes' 502 and 503 from this list.
pub const ROUTES: &[(&str, &str)] = &[
    ("patch", "/api/v1/connectors/{id}"),
    ("put", "/api/v1/connectors/{id}"),
    ("delete", "/api/v1/connectors/{id}"),
    ("post", "/api/v1/connectors/{id}/enable"),
    ("post", "/api/v1/connectors/{id}/disable"),
    ("put", "/api/v1/connectors/{id}/watches"),
    (
        "post",
        "/api/v1/connectors/{id}/endpoints/{endpoint}/presence",
    ),
    ("get", "/api/v1/connectors/{id}/writes"),
];

/// Marks (as a response extension) an answer another node made: it is
/// passed on as made, and the operator-change entry of the event log is
/// that node's, not written twice.
#[derive(Clone, Copy)]
pub struct Passed;

/// Whether another node passed this request here.
pub fn is_forwarded(headers: &HeaderMap) -> bool {
    headers.contains_key(FORWARDED)
}

/// This node's id in a cluster (empty on a single hub).
pub fn node_id(runtime: &Runtime) -> String {
    match runtime.placement() {
        Placement::Held(book) => book.node_id().to_string(),
        Placement::All => String::new(),
    }
}

/// A request as received, its body read (within the route's limit, as a
/// handler would read it).
pub struct Received {
    pub method: Method,
    pub uri: axum::http::Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Read `req` whole; the error is the answer to give (413 over the limit).
pub async fn receive(req: Request) -> Result<Received, Response> {
    let (parts, body) = req.into_parts();
    let (method, uri, headers) = (
        parts.method.clone(),
        parts.uri.clone(),
        parts.headers.clone(),
    );
    let body = Bytes::from_request(Request::from_parts(parts, body), &())
        .await
        .map_err(IntoResponse::into_response)?;
    Ok(Received {
        method,
        uri,
        headers,
        body,
    })
}

/// A request's path and query as received (still percent-encoded), to
/// pass on.
pub fn target(uri: &axum::http::Uri) -> String {
    uri.path_and_query()
        .map_or_else(|| uri.path().to_string(), |p| p.as_str().to_string())
}

/// Seconds to wait while an instance has no holder (its lease lapsed and
/// a takeover is under way): a lease check, after which the node it
/// belongs on has taken it.
fn retry_after_takeover() -> u64 {
    LEASE_CHECK.as_millis().div_ceil(1000) as u64
}

/// Seconds to wait when its holder refuses connections (it stopped or
/// died): its lease lapses within a lease time, and a lease check later
/// another node runs the instance.
fn retry_after_holder_down() -> u64 {
    (LEASE_TTL + LEASE_CHECK).as_millis().div_ceil(1000) as u64
}

/// A 503 that says when to try again.
pub(super) fn later(message: String, seconds: u64) -> Response {
    let mut resp = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message).into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    resp
}

/// Headers that belong to one connection (RFC 9110 section 7.6.1, and the
/// older `keep-alive`, `proxy-connection`), the length, which the next hop
/// sets again, and `host`, which names the next hop.
fn per_hop(name: &str, connection: &[String]) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
            | "host"
    ) || connection.iter().any(|c| c == name)
}

/// The header names `Connection` values list (per hop too), lower case.
fn connection_listed<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    values
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Pass a request to the node at `url` (its API base, from the shared
/// database, never from the request) and answer with that node's status,
/// headers and body. `target` is the path and query as received;
/// `headers` are passed on, the caller's `Authorization` included (every
/// node takes the same tokens), minus per-hop ones, with [`FORWARDED`]
/// set to `from` (this node's id). `who` names the other node in errors:
/// 503 with Retry-After when it refuses connections (nothing was sent;
/// it stopped, and another node takes its instances over), 502 when it
/// fails otherwise or does not answer within
/// [`crate::timing::IDLE_TIMEOUT`] (a change waits there for the plugin's
/// `configure`, which may take longer than an outbound request's 30 s).
pub async fn pass(
    url: &str,
    target: &str,
    method: &Method,
    headers: &HeaderMap,
    body: Bytes,
    from: &str,
    who: &str,
) -> Response {
    let connection = connection_listed(
        headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    let mut out_headers: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| !per_hop(k.as_str(), &connection) && k.as_str() != FORWARDED)
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    out_headers.push((FORWARDED.into(), from.into()));
    let answer = crate::io::forward(crate::io::HttpRequest {
        method: method.to_string(),
        url: format!("{}{target}", url.trim_end_matches('/')),
        headers: out_headers,
        body: body.to_vec(),
        timeout: Some(crate::timing::IDLE_TIMEOUT),
    })
    .await;
    let answer = match answer {
        Ok(a) => a,
        Err(Failure::Refused) => {
            tracing::warn!(to = %url, "the node a request was passed to refuses connections");
            let wait = retry_after_holder_down();
            return later(
                format!(
                    "{who} refuses connections: it may have stopped; another node takes its \
                     instances over within {wait} s: retry"
                ),
                wait,
            );
        }
        Err(e) => {
            tracing::warn!(to = %url, error = %e, "the node a request was passed to did not answer");
            return ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("{who} did not answer: {e}"),
            )
            .into_response();
        }
    };
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut out = (status, answer.body).into_response();
    // The other node's answer as it made it: json_errors leaves it alone,
    // and its headers (Content-Type, Location, Retry-After) replace the
    // defaults; a header it repeats keeps every value.
    out.extensions_mut().insert(super::error::PluginAnswer);
    out.extensions_mut().insert(Passed);
    let listed = connection_listed(
        answer
            .headers
            .iter()
            .filter(|(k, _)| k == "connection")
            .map(|(_, v)| v.as_str()),
    );
    let mut set = std::collections::HashSet::new();
    for (name, value) in answer.headers {
        if per_hop(&name, &listed) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            if set.insert(name.clone()) {
                out.headers_mut().insert(name, value);
            } else {
                out.headers_mut().append(name, value);
            }
        }
    }
    out
}

/// What this node knows of one instance, for [`decide`].
#[derive(Debug, Default)]
struct Facts<'a> {
    /// This node's id.
    me: &'a str,
    /// The instance is stored (known to this node).
    exists: bool,
    /// This node holds its lease.
    held_here: bool,
    /// The live node that holds its lease, when another one does.
    holder: Option<&'a str>,
    /// Where that node answers, when known.
    holder_url: Option<&'a str>,
    /// It should run somewhere (enabled, its plugin loaded here): a node
    /// holds its lease, or will.
    runnable: bool,
    /// The request was passed here by another node.
    forwarded: bool,
}

/// Where a request for one connector instance is answered.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Route {
    /// On this node: it runs the instance; or no node runs it and none
    /// will (an unknown instance, answered 404 here; a disabled one, or
    /// one whose plugin this node lacks, which no lease is held for).
    Here,
    /// On `node`, at `url`.
    There { node: String, url: String },
    /// Not now: 503 with this message, Retry-After this many seconds.
    Later(String, u64),
}

fn decide(instance: &str, f: &Facts<'_>) -> Route {
    if f.held_here || !f.exists {
        return Route::Here;
    }
    let me = f.me;
    match (f.holder, f.holder_url) {
        (Some(node), _) if f.forwarded => Route::Later(
            format!(
                "connector {instance} is run by node {node} as this node ({me}) sees it, not \
                 here; a request one node passed to another is not passed on again: retry"
            ),
            retry_after_takeover(),
        ),
        (Some(node), Some(url)) => Route::There {
            node: node.to_string(),
            url: url.to_string(),
        },
        (Some(node), None) => Route::Later(
            format!(
                "connector {instance} is run by node {node}, whose address this node ({me}) \
                 does not know yet: retry"
            ),
            retry_after_takeover(),
        ),
        (None, _) if !f.runnable => Route::Here,
        (None, _) => Route::Later(
            format!(
                "connector {instance} is being taken over: no live node holds its lease now \
                 (the node running it stopped or lost it), and another node starts it within \
                 seconds: retry"
            ),
            retry_after_takeover(),
        ),
    }
}

/// Where a request for `instance` is answered, as this node sees the
/// cluster now (always here on a single hub).
pub(super) fn route(runtime: &Runtime, instance: &str, forwarded: bool) -> Route {
    let Placement::Held(book) = runtime.placement() else {
        return Route::Here;
    };
    let holder = book.holder_elsewhere(instance);
    let holder_url = holder.as_deref().and_then(|n| book.url_of(n));
    let facts = Facts {
        me: book.node_id(),
        exists: runtime.connector_now(instance).is_ok(),
        held_here: book.holds(instance),
        holder: holder.as_deref(),
        holder_url: holder_url.as_deref(),
        runnable: runtime.runnable().iter().any(|i| i == instance),
        forwarded,
    };
    decide(instance, &facts)
}

/// Middleware over the admin routes: in a cluster, a request on one of
/// [`ROUTES`] for an instance another node runs is passed to that node
/// (see the module's description).
pub async fn to_holder(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let Placement::Held(book) = s.runtime.placement() else {
        return next.run(req).await;
    };
    let routed = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let method = req.method().as_str().to_ascii_lowercase();
    if !ROUTES.iter().any(|(m, p)| *m == method && *p == routed) {
        return next.run(req).await;
    }
    let Some(instance) = req
        .extract_parts::<RawPathParams>()
        .await
        .ok()
        .and_then(|params| {
            params
                .iter()
                .find(|(k, _)| *k == "id")
                .map(|(_, v)| v.to_string())
        })
    else {
        return next.run(req).await;
    };
    match route(&s.runtime, &instance, is_forwarded(req.headers())) {
        Route::Here => next.run(req).await,
        Route::Later(message, wait) => {
            tracing::debug!(instance = %instance, node = %book.node_id(), "{message}");
            later(message, wait)
        }
        Route::There { node, url } => {
            let r = match receive(req).await {
                Ok(r) => r,
                Err(answer) => return answer,
            };
            let who = format!("node {node}, which runs connector {instance},");
            let span = tracing::info_span!("forward", instance = %instance, node = %node);
            async {
                tracing::debug!(method = %r.method, "passing the request to the node running the connector");
                let target = target(&r.uri);
                pass(&url, &target, &r.method, &r.headers, r.body, book.node_id(), &who).await
            }
            .instrument(span)
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_hop_headers_are_not_passed_on() {
        let listed = connection_listed(["close, X-Trace", ""].into_iter());
        assert_eq!(listed, ["close", "x-trace"]);
        for name in [
            "connection",
            "keep-alive",
            "transfer-encoding",
            "te",
            "upgrade",
            "host",
            "content-length",
            "x-trace",
        ] {
            assert!(per_hop(name, &listed), "{name}");
        }
        for name in ["authorization", "content-type", "location", "retry-after"] {
            assert!(!per_hop(name, &listed), "{name}");
        }
    }

    #[test]
    fn forwarded_routes_are_routes() {
        for r in ROUTES {
            assert!(super::super::ROUTES.contains(r), "{r:?}");
        }
    }

    fn facts() -> Facts<'static> {
        Facts {
            me: "node-b",
            exists: true,
            runnable: true,
            ..Facts::default()
        }
    }

    #[test]
    fn a_request_goes_to_the_holder_once() {
        let there = Facts {
            holder: Some("node-a"),
            holder_url: Some("http://127.0.0.1:1"),
            ..facts()
        };
        assert_eq!(
            decide("pbx", &there),
            Route::There {
                node: "node-a".into(),
                url: "http://127.0.0.1:1".into()
            }
        );
        // Passed here already: never passed on again, whoever holds it.
        let Route::Later(m, wait) = decide(
            "pbx",
            &Facts {
                forwarded: true,
                ..there
            },
        ) else {
            panic!("a passed request was routed on");
        };
        assert!(m.contains("node node-a") && m.contains("(node-b)"), "{m}");
        assert!(wait >= 1);
        // The holder itself handles it, passed or not.
        for forwarded in [false, true] {
            let here = Facts {
                held_here: true,
                forwarded,
                ..facts()
            };
            assert_eq!(decide("pbx", &here), Route::Here);
        }
    }

    #[test]
    fn no_holder_is_a_takeover_unless_nothing_should_run() {
        let Route::Later(m, wait) = decide("pbx", &facts()) else {
            panic!("an instance without a holder was handled here");
        };
        assert!(m.contains("being taken over"), "{m}");
        assert!(
            std::time::Duration::from_secs(wait) >= LEASE_CHECK,
            "{wait}"
        );
        // Disabled (or its plugin missing): no node runs it; the change
        // is this node's to make.
        let idle = Facts {
            runnable: false,
            ..facts()
        };
        assert_eq!(decide("pbx", &idle), Route::Here);
        // Unknown: answered (404) here.
        let unknown = Facts {
            exists: false,
            ..facts()
        };
        assert_eq!(decide("pbx", &unknown), Route::Here);
        // A holder whose address is not known yet.
        let Route::Later(m, _) = decide(
            "pbx",
            &Facts {
                holder: Some("node-a"),
                ..facts()
            },
        ) else {
            panic!("routed without an address");
        };
        assert!(m.contains("address"), "{m}");
    }

    #[test]
    fn a_holder_down_is_waited_for_past_its_lease() {
        assert!(
            std::time::Duration::from_secs(retry_after_holder_down()) >= LEASE_TTL + LEASE_CHECK
        );
    }
}
