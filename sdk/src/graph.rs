//! Pieces every Microsoft Graph connector needs (feature `graph`): the
//! application sign-in (OAuth 2.0 client credentials) as a token slot that
//! never hammers the identity platform, Graph's and the identity platform's
//! error answers in operators' words, `Retry-After`, a back-off gate for
//! throttling, and a request budget kept ahead of time.
//!
//! Everything here is pure: the caller sends the requests it is handed and
//! passes the answers back with the current time.

use std::collections::VecDeque;

use serde::Deserialize;

use crate::urlcode;

/// `client_credentials` token requests wait this long after the identity
/// platform refused the app's credentials: an operator must fix them, and
/// asking again at once only counts as failed sign-ins.
pub const REFUSED_RETRY_MS: u64 = 5 * 60_000;
/// Longest wait after an unreachable identity platform or Graph.
pub const MAX_BACKOFF_MS: u64 = 60_000;

/// A token endpoint answer.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    /// Seconds; some deployments write it as a string.
    #[serde(default, deserialize_with = "number_or_string")]
    pub expires_in: Option<u64>,
}

/// An OAuth 2.0 error answer.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct OAuthError {
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub error_description: String,
}

impl OAuthError {
    /// Parse, tolerating bodies that are not JSON.
    pub fn parse(body: &[u8]) -> OAuthError {
        serde_json::from_slice(body).unwrap_or_default()
    }

    /// `error: first line of the description`, for operators.
    pub fn text(&self, status: u16) -> String {
        if self.error.is_empty() {
            format!("HTTP {status}")
        } else if self.error_description.is_empty() {
            self.error.clone()
        } else {
            format!("{}: {}", self.error, first_line(&self.error_description))
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
struct GraphErrorBody {
    #[serde(default)]
    error: GraphError,
}

/// The inner error of a Graph error answer.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GraphError {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// The `error` of a Graph error answer, if the body is one.
pub fn graph_error(body: &[u8]) -> Option<GraphError> {
    serde_json::from_slice::<GraphErrorBody>(body)
        .ok()
        .map(|b| b.error)
        .filter(|e| !e.code.is_empty() || !e.message.is_empty())
}

/// `status code: message` of a Graph error answer, or the status alone.
pub fn graph_error_text(status: u16, body: &[u8]) -> String {
    match graph_error(body) {
        Some(e) => format!("{status} {}: {}", e.code, first_line(&e.message)),
        None => format!("{status}"),
    }
}

fn first_line(s: &str) -> &str {
    // The identity platform appends trace and correlation ids on new lines.
    s.lines().next().unwrap_or("").trim()
}

fn number_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Num(u64),
        Text(String),
    }
    Ok(match Option::<N>::deserialize(d)? {
        Some(N::Num(n)) => Some(n),
        Some(N::Text(t)) => t.trim().parse().ok(),
        None => None,
    })
}

/// How long `Retry-After` asks to wait, in ms: delay-seconds or an
/// HTTP-date (see [`crate::retry::parse_retry_after`]). `None` when absent
/// or unreadable.
pub fn retry_after_ms(headers: &[(String, String)], now_ms: u64) -> Option<u64> {
    let (_, value) = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("retry-after"))?;
    crate::retry::parse_retry_after(value, now_ms)
}

pub use crate::retry::parse_http_date;

/// A Graph answer sorted by what to do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Ok,
    /// 401: the token is no good.
    Unauthorized(String),
    /// 403: a permission is missing (or the mailbox is off limits).
    Forbidden(String),
    /// 404.
    NotFound(String),
    /// 429 or 503; the wait Graph asked for, if it did.
    Throttled(u16, Option<u64>),
    /// Unreachable (no status), or a server error worth retrying.
    Transient(Option<u16>, String),
    /// Another 4xx: retrying the same request will not help.
    Rejected(u16, String),
}

/// An HTTP answer as [`classify`] reads it: status, headers, body.
pub type RawAnswer<'a> = (u16, &'a [(String, String)], &'a [u8]);

/// Sort an answer (or a transport failure, `Err`) by what to do with it.
pub fn classify(result: Result<RawAnswer<'_>, &str>, now_ms: u64) -> Outcome {
    let (status, headers, body) = match result {
        Ok(r) => r,
        Err(e) => return Outcome::Transient(None, e.to_string()),
    };
    let text = || graph_error_text(status, body);
    match status {
        200..=299 => Outcome::Ok,
        401 => Outcome::Unauthorized(text()),
        403 => Outcome::Forbidden(text()),
        404 => Outcome::NotFound(text()),
        429 | 503 => Outcome::Throttled(status, retry_after_ms(headers, now_ms)),
        500..=599 => Outcome::Transient(Some(status), text()),
        _ => Outcome::Rejected(status, text()),
    }
}

/// What became of a token request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenEvent {
    /// A token; the slot holds it.
    Obtained,
    /// The identity platform refused the credentials (wrong secret, unknown
    /// app or tenant, no consent); asked again only after
    /// [`REFUSED_RETRY_MS`]. The text names the platform's answer.
    Refused(String),
    /// Unreachable or failing; asked again after a growing pause.
    Unreachable(String),
}

/// The application's sign-in with client credentials: one token, requested
/// when missing or due, never more than one request at a time, and after a
/// refusal not again before [`REFUSED_RETRY_MS`].
///
/// `Debug` leaves the secret and the token out.
pub struct AppToken {
    token_url: String,
    client_id: String,
    client_secret: String,
    scope: String,
    access: Option<String>,
    expires_at: u64,
    obtained_at: u64,
    inflight: bool,
    /// Graph refused the token (401): fetch a new one before sending more.
    stale: bool,
    retry_at: u64,
    failures: u32,
    /// Token requests sent so far.
    pub requests: u64,
}

impl std::fmt::Debug for AppToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppToken")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("has_token", &self.access.is_some())
            .field("expires_at", &self.expires_at)
            .field("inflight", &self.inflight)
            .field("retry_at", &self.retry_at)
            .finish()
    }
}

/// A token request to send: `POST url` with a form body.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub url: String,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The body carries the client secret.
        f.debug_struct("TokenRequest")
            .field("url", &self.url)
            .finish()
    }
}

impl AppToken {
    /// A slot for `{authority}/{tenant}/oauth2/v2.0/token` asking for
    /// `scope` (`{graph origin}/.default`).
    pub fn new(
        authority: &str,
        tenant: &str,
        client_id: &str,
        client_secret: &str,
        scope: &str,
    ) -> AppToken {
        AppToken {
            token_url: format!(
                "{}/{}/oauth2/v2.0/token",
                authority.trim_end_matches('/'),
                tenant
            ),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            scope: scope.into(),
            access: None,
            expires_at: 0,
            obtained_at: 0,
            inflight: false,
            stale: false,
            retry_at: 0,
            failures: 0,
            requests: 0,
        }
    }

    /// The access token, if it may be sent now (not within the last tenth of
    /// its life, at most 30 s, before expiry).
    pub fn usable(&self, now: u64) -> Option<&str> {
        let skew = (self.expires_at.saturating_sub(self.obtained_at) / 10).min(30_000);
        let access = self.access.as_deref()?;
        (!self.stale && now + skew < self.expires_at).then_some(access)
    }

    /// Whether a token was ever obtained.
    pub fn signed_in(&self) -> bool {
        self.access.is_some()
    }

    /// When the token should be renewed ahead of expiry: five minutes
    /// before, or at two thirds of a shorter life.
    pub fn refresh_at(&self) -> u64 {
        let life = self.expires_at.saturating_sub(self.obtained_at);
        self.expires_at - (life / 3).min(5 * 60_000)
    }

    /// When the next token request may go (after a failure), if later than
    /// now.
    pub fn retry_at(&self) -> u64 {
        self.retry_at
    }

    /// The token request to send now, if one is needed and allowed.
    pub fn request(&mut self, now: u64) -> Option<TokenRequest> {
        let due = self.usable(now).is_none() || now >= self.refresh_at();
        if !due || self.inflight || now < self.retry_at {
            return None;
        }
        self.inflight = true;
        self.requests += 1;
        let body = urlcode::form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &self.client_id),
            ("client_secret", &self.client_secret),
            ("scope", &self.scope),
        ]);
        Some(TokenRequest {
            url: self.token_url.clone(),
            body: body.into_bytes(),
        })
    }

    /// The token endpoint's answer (`Err`: a transport failure).
    pub fn on_response(&mut self, result: Result<(u16, &[u8]), &str>, now: u64) -> TokenEvent {
        self.inflight = false;
        let (status, body) = match result {
            Ok(r) => r,
            Err(e) => return self.unreachable(e.to_string(), now),
        };
        if (200..300).contains(&status) {
            return match serde_json::from_slice::<TokenResponse>(body) {
                Ok(t) => {
                    let life = t.expires_in.unwrap_or(3600).max(1) * 1000;
                    self.access = Some(t.access_token);
                    self.obtained_at = now;
                    self.expires_at = now + life;
                    self.stale = false;
                    self.failures = 0;
                    self.retry_at = 0;
                    TokenEvent::Obtained
                }
                Err(e) => self.refused(format!("unreadable token answer: {e}"), now),
            };
        }
        if status >= 500 || status == 429 {
            return self.unreachable(format!("HTTP {status}"), now);
        }
        self.refused(OAuthError::parse(body).text(status), now)
    }

    fn refused(&mut self, text: String, now: u64) -> TokenEvent {
        self.access = None;
        self.retry_at = now + REFUSED_RETRY_MS;
        TokenEvent::Refused(text)
    }

    fn unreachable(&mut self, text: String, now: u64) -> TokenEvent {
        self.failures = self.failures.saturating_add(1);
        let wait = (1000u64 << (self.failures - 1).min(6)).min(MAX_BACKOFF_MS);
        self.retry_at = now + wait;
        TokenEvent::Unreachable(format!("{text}; retrying in {} s", wait.div_ceil(1000)))
    }

    /// Graph answered 401: the token is fetched anew, but not more often
    /// than every `min_gap_ms` should Graph keep refusing fresh tokens.
    pub fn rejected(&mut self, now: u64, min_gap_ms: u64) {
        self.stale = true;
        if now.saturating_sub(self.obtained_at) < min_gap_ms {
            self.retry_at = self.retry_at.max(self.obtained_at + min_gap_ms);
        }
    }
}

/// Holds requests back while Graph throttles or cannot be reached: the
/// `Retry-After` it gave, else a doubling pause.
#[derive(Debug, Clone, Default)]
pub struct Gate {
    until: u64,
    failures: u32,
}

impl Gate {
    /// Whether requests may go at `now`.
    pub fn open(&self, now: u64) -> bool {
        now >= self.until
    }

    /// When it opens.
    pub fn until(&self) -> u64 {
        self.until
    }

    /// Graph answered: the pause starts from scratch next time.
    pub fn success(&mut self) {
        self.failures = 0;
    }

    /// Graph throttled (with its `Retry-After`, if any) or failed; returns
    /// the wait in ms. Without a `Retry-After` the wait doubles from
    /// `min_ms` up to [`MAX_BACKOFF_MS`].
    pub fn close(&mut self, retry_after: Option<u64>, min_ms: u64, now: u64) -> u64 {
        self.failures = self.failures.saturating_add(1);
        let wait = match retry_after {
            Some(ms) => ms.min(10 * 60_000),
            None => (min_ms << (self.failures - 1).min(6)).min(MAX_BACKOFF_MS.max(min_ms)),
        };
        self.until = self.until.max(now + wait);
        self.until - now
    }
}

/// A sliding-window request budget: at most `limit` requests in any
/// `window_ms`, so the connector stays below Graph's limits instead of
/// running into them.
#[derive(Debug, Clone)]
pub struct Budget {
    limit: usize,
    window_ms: u64,
    sent: VecDeque<u64>,
}

impl Budget {
    pub fn new(limit: usize, window_ms: u64) -> Budget {
        Budget {
            limit: limit.max(1),
            window_ms,
            sent: VecDeque::new(),
        }
    }

    fn expire(&mut self, now: u64) {
        while self.sent.front().is_some_and(|t| t + self.window_ms <= now) {
            self.sent.pop_front();
        }
    }

    /// Requests that may go now.
    pub fn room(&mut self, now: u64) -> usize {
        self.expire(now);
        self.limit.saturating_sub(self.sent.len())
    }

    /// Count one request sent at `now`.
    pub fn spend(&mut self, now: u64) {
        self.sent.push_back(now);
    }

    /// When the next request may go, if none may now.
    pub fn next_room_at(&mut self, now: u64) -> Option<u64> {
        (self.room(now) == 0).then(|| self.sent.front().map_or(now, |t| t + self.window_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_secret_waits_minutes_and_unreachable_backs_off() {
        let mut t = AppToken::new("https://login/", "t", "c", "s", "g/.default");
        let r = t.request(0).expect("asks for a token");
        assert_eq!(r.url, "https://login/t/oauth2/v2.0/token");
        assert!(!format!("{r:?}").contains("client_secret"));
        assert!(t.request(1).is_none(), "one at a time");
        let e = t.on_response(
            Ok((
                401,
                br#"{"error":"invalid_client","error_description":"AADSTS7000215: bad\r\nTrace"}"#,
            )),
            10,
        );
        assert_eq!(
            e,
            TokenEvent::Refused("invalid_client: AADSTS7000215: bad".into())
        );
        assert!(t.request(10 + REFUSED_RETRY_MS - 1).is_none());
        assert!(t.request(10 + REFUSED_RETRY_MS).is_some());
        let e = t.on_response(Err("connection refused"), 0);
        assert!(matches!(e, TokenEvent::Unreachable(_)));
        assert!(t.request(999).is_none());
        assert!(t.request(1000).is_some());
        let e = t.on_response(
            Ok((200, br#"{"access_token":"a","expires_in":"3600"}"#)),
            2000,
        );
        assert_eq!(e, TokenEvent::Obtained);
        assert_eq!(t.usable(2001), Some("a"));
        assert!(t.request(2001).is_none());
        assert_eq!(t.refresh_at(), 2000 + 3_300_000);
        assert!(t.request(t.refresh_at()).is_some());
        assert_eq!(t.requests, 4);
    }

    #[test]
    fn gate_budget_and_errors() {
        let mut g = Gate::default();
        assert!(g.open(0));
        assert_eq!(g.close(Some(3000), 1000, 0), 3000);
        assert!(!g.open(2999));
        assert!(g.open(3000));
        assert_eq!(g.close(None, 1000, 5000), 2000);
        let mut b = Budget::new(2, 1000);
        assert_eq!(b.room(0), 2);
        b.spend(0);
        b.spend(10);
        assert_eq!(b.room(500), 0);
        assert_eq!(b.next_room_at(500), Some(1000));
        assert_eq!(b.room(1000), 1);
        assert_eq!(
            graph_error_text(
                403,
                br#"{"error":{"code":"ErrorAccessDenied","message":"Access is denied."}}"#
            ),
            "403 ErrorAccessDenied: Access is denied."
        );
        let h = vec![("Retry-After".to_string(), "2".to_string())];
        assert_eq!(
            classify(Ok((429, &h, b"")), 0),
            Outcome::Throttled(429, Some(2000))
        );
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777_000)
        );
    }
}
