//! An OAuth 2.0 token client (feature `oauth`): the four grants a connector
//! signs in with, token storage in the key-value store, refresh ahead of
//! expiry, and the token endpoint's errors mapped to a connector status.
//!
//! - **client credentials** (RFC 6749 §4.4): the connector acts as itself;
//! - **JWT bearer** (RFC 7523 §2.1): the connector presents a signed JWT (an
//!   assertion it was given, such as a RingCentral JWT credential; the SDK
//!   does not sign one);
//! - **authorization code** (RFC 6749 §4.1) with PKCE (RFC 7636, `S256`): an
//!   operator opens the URL shown as the login step, the identity provider
//!   redirects to the connector's webhook, and refresh tokens (§6) rotate;
//! - **device code** (RFC 8628): the user code and verification URI are shown
//!   as the login step while the client polls, slowing down on `slow_down`
//!   and asking for a new code on `expired_token`.
//!
//! [`TokenClient`] is a pure state machine: it is handed the current time,
//! the answers and a source of random bytes, and returns [`Step`]s (send this
//! request, set this timer, store these bytes, show this login step). A
//! connector built on [`Connector`] drives it through its [`Cx`] with the
//! `handle_*` methods, which carry the steps out with keys of the connector's
//! own types (`From<Call>` and `From<Timer>`); a core with its own outbox
//! calls the pure methods and turns the steps into its own actions.
//!
//! Errors map to statuses: `invalid_client`, `unauthorized_client`,
//! `invalid_scope` and a refused assertion are an operator's to fix
//! (`forbidden`, asked again after [`REFUSED_RETRY_MS`]); a refused refresh
//! token or authorization code needs a new sign-in (`login-required`); a
//! transport failure, 429 or 5xx is retried after the `Retry-After` the
//! server gave, else after a growing, jittered pause (`connection-error`, or
//! `throttled` for 429, while no usable token is left). Secrets, tokens and
//! request bodies never appear in `Debug` output or log lines.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::connector::{Connector, Cx, HttpError};
use crate::presence::connector::http;
use crate::presence::connector::log::Level;
use crate::retry::{Retry, retry_after_ms, retryable_status};
use crate::types::{ConnectorStatus, Header, LoginStep};
use crate::urlcode;

/// After the token endpoint refused the client's credentials or grant, ask
/// again only after this long (ms): an operator must fix them, and asking at
/// once only counts as failed sign-ins.
pub const REFUSED_RETRY_MS: u64 = 5 * 60_000;
/// Longest pause (ms) after an unreachable token endpoint that gave no
/// `Retry-After`.
pub const MAX_BACKOFF_MS: u64 = 60_000;
/// A token refused by the resource server is fetched anew at most this often
/// (ms), should the server keep refusing fresh tokens.
pub const REJECTED_MIN_GAP_MS: u64 = 60_000;
/// Lifetime assumed when the answer has no `expires_in` (seconds).
pub const DEFAULT_LIFETIME_S: u64 = 3600;
/// RFC 8628 §3.5: polling interval when the answer gives none, and how much
/// `slow_down` adds (seconds).
pub const DEVICE_INTERVAL_S: u64 = 5;

const GRANT_DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";
const GRANT_JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// How the connector signs in.
#[derive(Clone, PartialEq, Eq)]
pub enum Flow {
    /// RFC 6749 §4.4: needs a client secret.
    ClientCredentials,
    /// RFC 7523 §2.1: `assertion` is the signed JWT presented as the grant.
    JwtBearer { assertion: String },
    /// RFC 6749 §4.1. `authorize_url` is the authorization endpoint,
    /// `redirect_uri` the connector's webhook URL registered with the
    /// provider; `pkce` adds an `S256` code challenge (RFC 7636).
    AuthorizationCode {
        authorize_url: String,
        redirect_uri: String,
        pkce: bool,
    },
    /// RFC 8628: `device_authorization_url` is the device authorization
    /// endpoint.
    DeviceCode { device_authorization_url: String },
}

impl Flow {
    /// Whether a person signs in (authorization code, device code).
    pub fn delegated(&self) -> bool {
        matches!(
            self,
            Flow::AuthorizationCode { .. } | Flow::DeviceCode { .. }
        )
    }
}

/// How a confidential client authenticates to the token endpoint (RFC 6749
/// §2.3.1). Without a secret the client is public and sends only its
/// `client_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// `client_id` and `client_secret` in the form body.
    #[default]
    Post,
    /// `Authorization: Basic base64(client_id:client_secret)`.
    Basic,
}

/// What the client needs to sign in. `Debug` leaves the secret and the
/// assertion out.
#[derive(Clone)]
pub struct OAuthConfig {
    /// Names this client's keys ([`Call`], [`Timer`]) and its stored tokens
    /// (`oauth/{name}`), so one connector may hold several clients.
    pub name: &'static str,
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub client_auth: ClientAuth,
    /// Sent space-separated as `scope`; none: no `scope` parameter.
    pub scopes: Vec<String>,
    pub flow: Flow,
    /// More parameters for every token request (e.g. `resource`).
    pub extra_params: Vec<(String, String)>,
    /// Timeout of each request to the provider, ms.
    pub timeout_ms: u32,
    /// How long before expiry the access token is renewed.
    pub renew_ahead: RenewAhead,
}

/// How long before expiry a token is renewed: `1/life_divisor` of its life,
/// at most `max_ms`. The default (a third, at most five minutes) renews an
/// hour's token at 55 minutes; a provider that wants renewal earlier (e.g.
/// RingCentral: a fifth, at most ten minutes, so an hour's token at 50
/// minutes) sets its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenewAhead {
    /// The share of the lifetime (`life / life_divisor`); 0 counts as 1.
    pub life_divisor: u64,
    /// The longest lead, ms.
    pub max_ms: u64,
}

impl Default for RenewAhead {
    fn default() -> Self {
        Self {
            life_divisor: 3,
            max_ms: 5 * 60_000,
        }
    }
}

impl OAuthConfig {
    /// A public client (no secret) for `flow`, with no scopes.
    pub fn new(
        name: &'static str,
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        flow: Flow,
    ) -> Self {
        Self {
            name,
            token_url: token_url.into(),
            client_id: client_id.into(),
            client_secret: None,
            client_auth: ClientAuth::Post,
            scopes: Vec::new(),
            flow,
            extra_params: Vec::new(),
            timeout_ms: 30_000,
            renew_ahead: RenewAhead::default(),
        }
    }

    /// Renew `1/life_divisor` of the token's life before expiry, at most
    /// `max_ms` early (see [`RenewAhead`]).
    pub fn renew_ahead(mut self, life_divisor: u64, max_ms: u64) -> Self {
        self.renew_ahead = RenewAhead {
            life_divisor,
            max_ms,
        };
        self
    }

    /// A confidential client authenticating with `secret` as `auth` says.
    pub fn secret(mut self, secret: impl Into<String>, auth: ClientAuth) -> Self {
        self.client_secret = Some(secret.into());
        self.client_auth = auth;
        self
    }

    pub fn scopes<S: Into<String>>(mut self, scopes: impl IntoIterator<Item = S>) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra_params.push((name.into(), value.into()));
        self
    }

    /// The key-value key the tokens are kept under.
    pub fn storage_key(&self) -> String {
        format!("oauth/{}", self.name)
    }

    /// Identifies what stored tokens belong to: endpoint, client, scopes,
    /// flow and (for the flows where the connector acts as itself) the
    /// credential, so a changed configuration does not reuse old tokens.
    fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for part in [
            self.token_url.as_str(),
            self.client_id.as_str(),
            &self.scopes.join(" "),
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        match &self.flow {
            Flow::ClientCredentials => {
                h.update(b"cc\0");
                h.update(self.client_secret.as_deref().unwrap_or("").as_bytes());
            }
            Flow::JwtBearer { assertion } => {
                h.update(b"jwt\0");
                h.update(assertion.as_bytes());
            }
            Flow::AuthorizationCode { redirect_uri, .. } => {
                h.update(b"code\0");
                h.update(redirect_uri.as_bytes());
            }
            Flow::DeviceCode { .. } => h.update(b"device\0"),
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for OAuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flow = match &self.flow {
            Flow::ClientCredentials => "client_credentials",
            Flow::JwtBearer { .. } => "jwt-bearer",
            Flow::AuthorizationCode { .. } => "authorization_code",
            Flow::DeviceCode { .. } => "device_code",
        };
        f.debug_struct("OAuthConfig")
            .field("name", &self.name)
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("has_secret", &self.client_secret.is_some())
            .field("scopes", &self.scopes)
            .field("flow", &flow)
            .finish()
    }
}

/// Tokens as kept: Unix ms for the times. `Debug` leaves the tokens out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_at: u64,
    pub obtained_at: u64,
    /// The scopes granted, when the answer names them.
    #[serde(default)]
    pub scope: Option<String>,
    /// When the refresh token expires (Unix ms), where the provider says
    /// (`refresh_token_expires_in`, as RingCentral and others send beside
    /// RFC 6749 §5.1's fields); past it the refresh token is not sent.
    #[serde(default)]
    pub refresh_expires_at: Option<u64>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("expires_at", &self.expires_at)
            .field("obtained_at", &self.obtained_at)
            .finish()
    }
}

impl Tokens {
    /// When to renew: five minutes before expiry, or at two thirds of a
    /// shorter life.
    pub fn refresh_at(&self) -> u64 {
        self.renew_at(RenewAhead::default())
    }

    /// When to renew, `ahead` of expiry.
    pub fn renew_at(&self, ahead: RenewAhead) -> u64 {
        let life = self.expires_at.saturating_sub(self.obtained_at);
        self.expires_at - (life / ahead.life_divisor.max(1)).min(ahead.max_ms)
    }

    /// The refresh token, if there is one and it has not expired at `now`.
    pub fn usable_refresh_token(&self, now: u64) -> Option<&str> {
        let alive = self.refresh_expires_at.is_none_or(|at| now < at);
        self.refresh_token.as_deref().filter(|_| alive)
    }

    /// Whether the access token may still be sent at `now`: not within the
    /// last tenth of its life (at most 30 s) before expiry, as a request may
    /// take that long to arrive.
    pub fn fresh(&self, now: u64) -> bool {
        let skew = (self.expires_at.saturating_sub(self.obtained_at) / 10).min(30_000);
        now.saturating_add(skew) < self.expires_at
    }
}

#[derive(Serialize, Deserialize)]
struct Stored {
    fingerprint: String,
    tokens: Tokens,
}

/// A successful token answer (RFC 6749 §5.1).
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    /// Seconds; some providers write it as a string.
    #[serde(default, deserialize_with = "number_or_string")]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
    /// Seconds; not in RFC 6749, sent by RingCentral and others.
    #[serde(default, deserialize_with = "number_or_string")]
    refresh_token_expires_in: Option<u64>,
    #[serde(default)]
    scope: Option<String>,
}

/// A device authorization answer (RFC 8628 §3.2).
#[derive(Deserialize)]
struct DeviceAnswer {
    device_code: String,
    user_code: String,
    /// Older Microsoft endpoints wrote `verification_url`.
    #[serde(alias = "verification_url")]
    verification_uri: String,
    #[serde(default)]
    verification_uri_complete: Option<String>,
    #[serde(default, deserialize_with = "number_or_string")]
    expires_in: Option<u64>,
    #[serde(default, deserialize_with = "number_or_string")]
    interval: Option<u64>,
    /// Microsoft's ready-made instruction.
    #[serde(default)]
    message: Option<String>,
}

/// An error answer (RFC 6749 §5.2).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorAnswer {
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub error_description: String,
}

impl ErrorAnswer {
    /// Parses, tolerating bodies that are not JSON.
    pub fn parse(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_default()
    }

    /// `error: first line of the description`, or `HTTP {status}`.
    pub fn text(&self, status: u16) -> String {
        // The Microsoft identity platform appends trace ids on new lines.
        let desc = self.error_description.lines().next().unwrap_or("").trim();
        match (self.error.is_empty(), desc.is_empty()) {
            (true, _) => format!("HTTP {status}"),
            (false, true) => self.error.clone(),
            (false, false) => format!("{}: {desc}", self.error),
        }
    }
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

/// Which endpoint a request of the client goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CallKind {
    Token,
    DeviceAuthorization,
}

/// The request key of a client's calls; the connector's `RequestKey` wraps
/// it (`impl From<Call> for MyRequestKey`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Call {
    /// [`OAuthConfig::name`] of the client.
    pub client: &'static str,
    pub kind: CallKind,
}

/// What a client's timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKind {
    /// Renew ahead of expiry, or retry after a failure.
    Renew,
    /// Poll for the device code sign-in.
    DevicePoll,
}

/// The timer key of a client; the connector's `TimerKey` wraps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timer {
    pub client: &'static str,
    pub kind: TimerKind,
}

/// Which grant a token request uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantKind {
    ClientCredentials,
    JwtBearer,
    AuthorizationCode,
    DeviceCode,
    RefreshToken,
}

/// One thing the client asks its driver to do.
#[derive(Clone, PartialEq)]
pub enum Step {
    Send(CallKind, http::Request),
    SetTimer(TimerKind, u64),
    CancelTimer(TimerKind),
    /// Keep these bytes under [`OAuthConfig::storage_key`]; `None`: delete.
    Store(Option<Vec<u8>>),
    /// Show (or clear) what an operator must do to sign in.
    LoginStep(Option<LoginStep>),
    Log(Level, String),
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Bodies carry secrets, codes and tokens.
            Step::Send(kind, r) => write!(f, "Send({kind:?}, {} {})", r.method, r.url),
            Step::SetTimer(kind, ms) => write!(f, "SetTimer({kind:?}, {ms})"),
            Step::CancelTimer(kind) => write!(f, "CancelTimer({kind:?})"),
            Step::Store(bytes) => write!(f, "Store({})", bytes.is_some()),
            Step::LoginStep(step) => write!(f, "LoginStep({step:?})"),
            Step::Log(level, text) => write!(f, "Log({level:?}, {text})"),
        }
    }
}

/// What became of an answer from the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenEvent {
    /// A token was obtained; [`TokenClient::access_token`] gives it.
    Obtained,
    /// The sign-in goes on with nothing to report (a device-code poll, a
    /// retry while the current token is still good).
    Pending,
    /// No usable token, for this reason; report the status.
    Problem(ConnectorStatus, String),
}

/// Why an authorization redirect was not accepted; the connector answers
/// its webhook with [`status`](RedirectError::status) and the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectError {
    /// No authorization-code sign-in is waiting.
    NoLoginPending,
    /// `state` is missing or not the current one (an old link, or forged).
    StateMismatch,
    /// The provider sent an `error` (e.g. `access_denied`), with its text.
    Denied(String),
    /// Neither `code` nor `error`.
    MissingCode,
}

impl RedirectError {
    /// 409 when no sign-in is pending, else 400.
    pub fn status(&self) -> u16 {
        match self {
            RedirectError::NoLoginPending => 409,
            _ => 400,
        }
    }
}

impl fmt::Display for RedirectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedirectError::NoLoginPending => f.write_str("no sign-in is pending for this connector"),
            RedirectError::StateMismatch => f.write_str(
                "this sign-in link is not the current one; open the URL in the connector status again",
            ),
            RedirectError::Denied(text) => write!(f, "sign-in failed: {text}"),
            RedirectError::MissingCode => f.write_str("the redirect carries no authorization code"),
        }
    }
}

impl std::error::Error for RedirectError {}

#[derive(Clone, PartialEq, Eq)]
enum Login {
    None,
    Requesting,
    Device {
        device_code: String,
        interval_ms: u64,
        expires_at: u64,
    },
    AuthCode {
        state: String,
        verifier: String,
    },
}

/// A source of random bytes (the host's `random-bytes`).
pub type Rng<'a> = &'a mut dyn FnMut(u32) -> Vec<u8>;

/// One OAuth 2.0 client's sign-in: at most one token request at a time,
/// renewal ahead of expiry, retries spaced out. `Debug` leaves secrets and
/// tokens out.
pub struct TokenClient {
    cfg: OAuthConfig,
    fingerprint: String,
    tokens: Option<Tokens>,
    inflight: Option<CallKind>,
    inflight_grant: Option<GrantKind>,
    /// The resource server refused the token: do not send it again.
    stale: bool,
    refresh_due: bool,
    retry: Retry,
    login: Login,
    problem: Option<(ConnectorStatus, String)>,
    steps: Vec<Step>,
    /// Tokens obtained (or restored) so far, to tell a refused replacement
    /// from the token it replaced.
    generation: u64,
    /// The generation the resource server last refused.
    rejected_generation: Option<u64>,
    /// Requests sent to the provider so far.
    pub requests: u64,
}

impl fmt::Debug for TokenClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenClient")
            .field("config", &self.cfg)
            .field("tokens", &self.tokens)
            .field("inflight", &self.inflight)
            .field("problem", &self.problem)
            .finish()
    }
}

fn random_u32(rng: Rng<'_>) -> u32 {
    let b = rng(4);
    b.iter()
        .take(4)
        .fold(0u32, |acc, x| (acc << 8) | u32::from(*x))
}

impl TokenClient {
    pub fn new(cfg: OAuthConfig) -> Self {
        Self {
            fingerprint: cfg.fingerprint(),
            cfg,
            tokens: None,
            inflight: None,
            inflight_grant: None,
            stale: false,
            refresh_due: false,
            retry: Retry::new(1_000, MAX_BACKOFF_MS),
            login: Login::None,
            problem: None,
            steps: Vec::new(),
            generation: 0,
            rejected_generation: None,
            requests: 0,
        }
    }

    pub fn config(&self) -> &OAuthConfig {
        &self.cfg
    }

    /// Takes tokens from what the key-value store held under
    /// [`OAuthConfig::storage_key`], if they belong to this configuration,
    /// and sets the renewal timer for them. Returns whether they did.
    pub fn restore(&mut self, stored: Option<&[u8]>, now: u64) -> bool {
        let Some(tokens) = stored
            .and_then(|b| serde_json::from_slice::<Stored>(b).ok())
            .filter(|s| s.fingerprint == self.fingerprint)
            .map(|s| s.tokens)
        else {
            return false;
        };
        self.take_tokens(tokens, now);
        true
    }

    fn take_tokens(&mut self, tokens: Tokens, now: u64) {
        let renew = tokens.renew_at(self.cfg.renew_ahead).saturating_sub(now);
        self.tokens = Some(tokens);
        self.generation += 1;
        self.steps.push(Step::SetTimer(TimerKind::Renew, renew));
    }

    /// Takes tokens kept elsewhere (a connector's storage from before it
    /// used this client), stores them under
    /// [`OAuthConfig::storage_key`] and sets their renewal timer, so moving
    /// to this client does not cost a new sign-in. The caller vouches that
    /// they belong to this configuration.
    pub fn adopt(&mut self, tokens: Tokens, now: u64) {
        self.store(&tokens);
        self.take_tokens(tokens, now);
    }

    fn store(&mut self, tokens: &Tokens) {
        if let Ok(bytes) = serde_json::to_vec(&Stored {
            fingerprint: self.fingerprint.clone(),
            tokens: tokens.clone(),
        }) {
            self.steps.push(Step::Store(Some(bytes)));
        }
    }

    /// Sends no request to the provider before `at` (Unix ms); a request
    /// due earlier waits, with the renewal timer set for `at`. For a
    /// connector whose token endpoint shares a rate budget with its other
    /// calls (RingCentral's Auth group): while the budget is spent it
    /// defers the client, which cannot count calls it does not see.
    pub fn defer_until(&mut self, at: u64) {
        self.retry.hold_until(at);
    }

    /// Whether [`ensure`](Self::ensure) at `now` would send a request to the
    /// provider (a token, or a device code), so a connector with a request
    /// budget can check for room first ([`defer_until`](Self::defer_until)).
    pub fn would_send(&self, now: u64) -> bool {
        if self.inflight.is_some() || !self.retry.ready(now) {
            return false;
        }
        if self.access_token(now).is_some() && !self.refresh_due {
            return false;
        }
        let refresh = self
            .tokens
            .as_ref()
            .is_some_and(|t| t.usable_refresh_token(now).is_some());
        refresh
            || match self.cfg.flow {
                Flow::ClientCredentials | Flow::JwtBearer { .. } => true,
                Flow::AuthorizationCode { .. } => false,
                Flow::DeviceCode { .. } => self.login == Login::None,
            }
    }

    /// The current access token is not to be sent again (the resource
    /// server refused it, or asks for a fresh one): the next
    /// [`ensure`](Self::ensure) fetches another, with the refresh token
    /// where there is one.
    pub fn invalidate(&mut self) {
        self.stale = true;
        self.refresh_due = true;
    }

    /// The access token, if one may be sent at `now`.
    pub fn access_token(&self, now: u64) -> Option<&str> {
        let t = self.tokens.as_ref()?;
        (!self.stale && t.fresh(now)).then_some(t.access_token.as_str())
    }

    /// The tokens held (possibly expired).
    pub fn tokens(&self) -> Option<&Tokens> {
        self.tokens.as_ref()
    }

    /// Why there is no token, as a status and a detail for operators.
    pub fn problem(&self) -> Option<&(ConnectorStatus, String)> {
        self.problem.as_ref()
    }

    /// Whether an operator's sign-in is awaited.
    pub fn login_pending(&self) -> bool {
        matches!(self.login, Login::Device { .. } | Login::AuthCode { .. })
    }

    /// When the next request to the provider may go after a failure (Unix
    /// ms; 0 when unrestricted).
    pub fn retry_at(&self) -> u64 {
        self.retry.not_before()
    }

    /// The steps asked for so far, in order.
    pub fn take_steps(&mut self) -> Vec<Step> {
        std::mem::take(&mut self.steps)
    }

    fn log(&mut self, level: Level, text: impl Into<String>) {
        self.steps.push(Step::Log(level, text.into()));
    }

    /// Replaces the JWT of the JWT-bearer flow (a connector that signs short
    /// -lived assertions gives each new one here before it is needed).
    pub fn set_assertion(&mut self, jwt: impl Into<String>) {
        if let Flow::JwtBearer { assertion } = &mut self.cfg.flow {
            *assertion = jwt.into();
        }
    }

    /// Forgets the tokens, here and in the store.
    pub fn sign_out(&mut self) {
        self.tokens = None;
        self.stale = false;
        self.steps.push(Step::Store(None));
    }

    /// Asks for a token if none may be sent (or renewal is due), none is
    /// being asked for and no failure says to wait; for the delegated flows
    /// without a refresh token, starts the operator's sign-in.
    pub fn ensure(&mut self, now: u64, rng: Rng<'_>) {
        if self.inflight.is_some() {
            return;
        }
        let needed = self.access_token(now).is_none() || self.refresh_due;
        if !needed {
            return;
        }
        if !self.retry.ready(now) {
            let wait = self.retry.not_before() - now;
            self.steps.push(Step::SetTimer(TimerKind::Renew, wait));
            return;
        }
        let scope = self.cfg.scopes.join(" ");
        if let Some(refresh) = self
            .tokens
            .as_ref()
            .and_then(|t| t.usable_refresh_token(now).map(str::to_string))
        {
            let mut pairs = vec![
                ("grant_type", "refresh_token".to_string()),
                ("refresh_token", refresh),
            ];
            if !scope.is_empty() {
                pairs.push(("scope", scope));
            }
            self.send_grant(GrantKind::RefreshToken, pairs);
            return;
        }
        match self.cfg.flow.clone() {
            Flow::ClientCredentials => {
                let mut pairs = vec![("grant_type", "client_credentials".to_string())];
                if !scope.is_empty() {
                    pairs.push(("scope", scope));
                }
                self.send_grant(GrantKind::ClientCredentials, pairs);
            }
            Flow::JwtBearer { assertion } => {
                let mut pairs = vec![
                    ("grant_type", GRANT_JWT_BEARER.to_string()),
                    ("assertion", assertion),
                ];
                if !scope.is_empty() {
                    pairs.push(("scope", scope));
                }
                self.send_grant(GrantKind::JwtBearer, pairs);
            }
            Flow::AuthorizationCode {
                authorize_url,
                redirect_uri,
                pkce,
            } => {
                if self.login == Login::None {
                    self.start_authorization(&authorize_url, &redirect_uri, pkce, rng);
                }
            }
            Flow::DeviceCode {
                device_authorization_url,
            } => {
                if self.login == Login::None {
                    self.login = Login::Requesting;
                    let mut pairs = Vec::new();
                    if !scope.is_empty() {
                        pairs.push(("scope", scope));
                    }
                    let req = self.form(&device_authorization_url, pairs);
                    self.send(CallKind::DeviceAuthorization, req);
                }
            }
        }
    }

    fn start_authorization(
        &mut self,
        authorize_url: &str,
        redirect_uri: &str,
        pkce: bool,
        rng: Rng<'_>,
    ) {
        let state = URL_SAFE_NO_PAD.encode(rng(16));
        // 32 random octets: a 43-character verifier (RFC 7636 §4.1).
        let verifier = URL_SAFE_NO_PAD.encode(rng(32));
        let mut pairs = vec![
            ("response_type", "code".to_string()),
            ("client_id", self.cfg.client_id.clone()),
            ("redirect_uri", redirect_uri.to_string()),
        ];
        if !self.cfg.scopes.is_empty() {
            pairs.push(("scope", self.cfg.scopes.join(" ")));
        }
        pairs.push(("state", state.clone()));
        if pkce {
            let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            pairs.push(("code_challenge", challenge));
            pairs.push(("code_challenge_method", "S256".to_string()));
        }
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let sep = if authorize_url.contains('?') {
            '&'
        } else {
            '?'
        };
        let url = format!("{authorize_url}{sep}{}", urlcode::form(&refs));
        self.steps.push(Step::LoginStep(Some(LoginStep {
            message: "Open the URL and sign in with the account the connector should act as; the provider sends you back to the hub".into(),
            url: Some(url),
            user_code: None,
            expires_at: None,
        })));
        self.log(
            Level::Warn,
            "login required: open the authorization URL shown as the login step",
        );
        self.problem = Some((
            ConnectorStatus::LoginRequired,
            "sign in: open the authorization URL shown as the login step".into(),
        ));
        self.login = Login::AuthCode { state, verifier };
    }

    /// The authorization redirect arrived on the connector's webhook with
    /// this query string (`code=...&state=...`, or `error=...`). On `Ok`
    /// the code is being exchanged for tokens.
    pub fn on_redirect(&mut self, query: &str) -> Result<(), RedirectError> {
        let Login::AuthCode { state, verifier } = &self.login else {
            return Err(RedirectError::NoLoginPending);
        };
        if urlcode::query_value(query, "state").as_deref() != Some(state.as_str()) {
            return Err(RedirectError::StateMismatch);
        }
        if let Some(error) = urlcode::query_value(query, "error") {
            let desc = urlcode::query_value(query, "error_description").unwrap_or_default();
            let text = ErrorAnswer {
                error,
                error_description: desc,
            }
            .text(400);
            // The same link stays valid: the operator may try again.
            self.log(Level::Warn, format!("sign-in failed: {text}"));
            self.problem = Some((
                ConnectorStatus::LoginRequired,
                format!("sign-in failed: {text}"),
            ));
            return Err(RedirectError::Denied(text));
        }
        let Some(code) = urlcode::query_value(query, "code") else {
            return Err(RedirectError::MissingCode);
        };
        let Flow::AuthorizationCode {
            redirect_uri, pkce, ..
        } = &self.cfg.flow
        else {
            return Err(RedirectError::NoLoginPending);
        };
        let mut pairs = vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code),
            ("redirect_uri", redirect_uri.clone()),
        ];
        if *pkce {
            pairs.push(("code_verifier", verifier.clone()));
        }
        if !self.cfg.scopes.is_empty() {
            pairs.push(("scope", self.cfg.scopes.join(" ")));
        }
        self.send_grant(GrantKind::AuthorizationCode, pairs);
        Ok(())
    }

    /// A timer of this client is due.
    pub fn on_timer(&mut self, kind: TimerKind, now: u64, rng: Rng<'_>) {
        match kind {
            TimerKind::Renew => {
                let ahead = self.cfg.renew_ahead;
                if self
                    .tokens
                    .as_ref()
                    .is_some_and(|t| now >= t.renew_at(ahead))
                {
                    self.refresh_due = true;
                }
                self.ensure(now, rng);
            }
            TimerKind::DevicePoll => {
                let Login::Device {
                    device_code,
                    expires_at,
                    ..
                } = &self.login
                else {
                    return;
                };
                if now >= *expires_at {
                    self.log(Level::Warn, "the device code expired; asking for a new one");
                    self.login = Login::None;
                    self.ensure(now, rng);
                    return;
                }
                let pairs = vec![
                    ("grant_type", GRANT_DEVICE_CODE.to_string()),
                    ("device_code", device_code.clone()),
                ];
                self.send_grant(GrantKind::DeviceCode, pairs);
            }
        }
    }

    /// The resource server refused the access token (HTTP 401): a new one
    /// is fetched at once. Should the server refuse that replacement too
    /// within [`REJECTED_MIN_GAP_MS`] of its issue, the next is fetched only
    /// that long after it was issued, so a server that refuses every token
    /// (wrong audience, no consent) does not make the client hammer the
    /// provider. The same token refused again (requests that were in
    /// flight) changes nothing.
    pub fn rejected(&mut self, now: u64, rng: Rng<'_>) {
        self.invalidate();
        let replacement = self
            .rejected_generation
            .is_some_and(|g| g + 1 == self.generation);
        if replacement
            && let Some(t) = &self.tokens
            && now.saturating_sub(t.obtained_at) < REJECTED_MIN_GAP_MS
        {
            let at = t.obtained_at + REJECTED_MIN_GAP_MS;
            self.retry.hold_until(at);
        }
        self.rejected_generation = Some(self.generation);
        self.ensure(now, rng);
    }

    /// The answer to a request of this client: `(status, headers, body)`,
    /// or a transport failure's text.
    pub fn on_response(
        &mut self,
        kind: CallKind,
        result: Result<(u16, &[Header], &[u8]), String>,
        now: u64,
        rng: Rng<'_>,
    ) -> TokenEvent {
        self.inflight = None;
        let grant = self.inflight_grant.take();
        let event = match kind {
            CallKind::DeviceAuthorization => self.on_device_authorization(result, now, rng),
            CallKind::Token => match grant {
                Some(grant) => self.on_token(grant, result, now, rng),
                None => TokenEvent::Pending,
            },
        };
        if let TokenEvent::Problem(status, text) = &event {
            self.problem = Some((*status, text.clone()));
        }
        event
    }

    fn on_device_authorization(
        &mut self,
        result: Result<(u16, &[Header], &[u8]), String>,
        now: u64,
        rng: Rng<'_>,
    ) -> TokenEvent {
        self.login = Login::None;
        let (status, headers, body) = match result {
            Ok(r) => r,
            Err(e) => return self.transient(None, &e, None, now, rng),
        };
        if retryable_status(status) {
            let after = retry_after_ms(headers, now);
            return self.transient(None, &format!("HTTP {status}"), after, now, rng);
        }
        if !(200..300).contains(&status) {
            let text = ErrorAnswer::parse(body).text(status);
            return self.refused(
                ConnectorStatus::Forbidden,
                format!("the device authorization endpoint refused: {text}"),
                now,
            );
        }
        let answer = match serde_json::from_slice::<DeviceAnswer>(body) {
            Ok(a) => a,
            Err(e) => {
                return self.refused(
                    ConnectorStatus::ConnectionError,
                    format!("unreadable device authorization answer: {e}"),
                    now,
                );
            }
        };
        let expires_at = now + answer.expires_in.unwrap_or(900) * 1000;
        let interval_ms = answer.interval.unwrap_or(DEVICE_INTERVAL_S).max(1) * 1000;
        let message = answer.message.clone().unwrap_or_else(|| {
            format!(
                "To sign in, open {} and enter the code {}",
                answer.verification_uri, answer.user_code
            )
        });
        self.steps.push(Step::LoginStep(Some(LoginStep {
            message: message.clone(),
            url: Some(
                answer
                    .verification_uri_complete
                    .unwrap_or(answer.verification_uri),
            ),
            user_code: Some(answer.user_code),
            expires_at: Some(expires_at),
        })));
        self.log(
            Level::Warn,
            "login required: a device code is shown as the login step",
        );
        self.login = Login::Device {
            device_code: answer.device_code,
            interval_ms,
            expires_at,
        };
        self.steps
            .push(Step::SetTimer(TimerKind::DevicePoll, interval_ms));
        TokenEvent::Problem(ConnectorStatus::LoginRequired, message)
    }

    fn on_token(
        &mut self,
        grant: GrantKind,
        result: Result<(u16, &[Header], &[u8]), String>,
        now: u64,
        rng: Rng<'_>,
    ) -> TokenEvent {
        let (status, headers, body) = match result {
            Ok(r) => r,
            Err(e) => return self.transient(Some(grant), &e, None, now, rng),
        };
        if (200..300).contains(&status) {
            return match serde_json::from_slice::<TokenAnswer>(body) {
                Ok(answer) => self.obtained(grant, answer, now),
                Err(e) => self.refused(
                    ConnectorStatus::ConnectionError,
                    format!("unreadable token answer: {e}"),
                    now,
                ),
            };
        }
        if retryable_status(status) {
            let after = retry_after_ms(headers, now);
            return self.transient(Some(grant), &format!("HTTP {status}"), after, now, rng);
        }
        let e = ErrorAnswer::parse(body);
        let text = e.text(status);
        match (grant, e.error.as_str()) {
            (GrantKind::DeviceCode, "authorization_pending") => {
                self.poll_again(0);
                TokenEvent::Pending
            }
            (GrantKind::DeviceCode, "slow_down") => {
                self.poll_again(DEVICE_INTERVAL_S * 1000);
                TokenEvent::Pending
            }
            (GrantKind::DeviceCode, "expired_token" | "code_expired" | "bad_verification_code") => {
                self.log(
                    Level::Warn,
                    format!("device sign-in ended ({}); asking for a new code", e.error),
                );
                self.login = Login::None;
                self.steps.push(Step::CancelTimer(TimerKind::DevicePoll));
                self.ensure(now, rng);
                TokenEvent::Problem(
                    ConnectorStatus::LoginRequired,
                    format!("the device code expired ({text}); a new one is shown"),
                )
            }
            (GrantKind::DeviceCode, "access_denied" | "authorization_declined") => {
                self.login = Login::None;
                self.steps.push(Step::LoginStep(None));
                self.refused(
                    ConnectorStatus::LoginRequired,
                    format!(
                        "the user declined the sign-in ({text}); a new code follows in {} min",
                        REFUSED_RETRY_MS / 60_000
                    ),
                    now,
                )
            }
            (GrantKind::RefreshToken, "invalid_grant") if self.cfg.flow.delegated() => {
                // Revoked, expired, password changed: only a new sign-in helps.
                self.sign_out();
                self.log(
                    Level::Warn,
                    format!("refresh token refused ({text}); a new sign-in is needed"),
                );
                self.ensure(now, rng);
                TokenEvent::Problem(
                    ConnectorStatus::LoginRequired,
                    format!("the refresh token was refused ({text}); sign in again"),
                )
            }
            (GrantKind::RefreshToken, "invalid_grant") => {
                // The connector's own grant still works: use it again.
                self.sign_out();
                self.log(
                    Level::Info,
                    format!("refresh token refused ({text}); signing in anew"),
                );
                self.ensure(now, rng);
                TokenEvent::Pending
            }
            (GrantKind::AuthorizationCode, "invalid_grant") => {
                // A used, expired or mismatched code: a new link.
                self.login = Login::None;
                self.ensure(now, rng);
                TokenEvent::Problem(
                    ConnectorStatus::LoginRequired,
                    format!("the authorization code was refused ({text}); sign in again"),
                )
            }
            _ => self.refused(
                ConnectorStatus::Forbidden,
                format!(
                    "the token endpoint refused the {} grant: {text}",
                    grant_name(grant)
                ),
                now,
            ),
        }
    }

    fn poll_again(&mut self, slower_ms: u64) {
        if let Login::Device { interval_ms, .. } = &mut self.login {
            *interval_ms += slower_ms;
            let wait = *interval_ms;
            self.steps.push(Step::SetTimer(TimerKind::DevicePoll, wait));
        }
    }

    fn obtained(&mut self, grant: GrantKind, answer: TokenAnswer, now: u64) -> TokenEvent {
        let life = answer.expires_in.unwrap_or(DEFAULT_LIFETIME_S).max(1) * 1000;
        let refresh_expires_at = answer.refresh_token_expires_in.map(|s| now + s * 1000);
        // Refresh tokens rotate (RFC 6749 §6, RFC 9700 §4.14); where none
        // comes back the old one holds, with its expiry.
        let (refresh_token, refresh_expires_at) = match answer.refresh_token {
            Some(new) => (Some(new), refresh_expires_at),
            None => match self.tokens.as_ref() {
                Some(old) => (
                    old.refresh_token.clone(),
                    refresh_expires_at.or(old.refresh_expires_at),
                ),
                None => (None, None),
            },
        };
        let tokens = Tokens {
            access_token: answer.access_token,
            refresh_token,
            expires_at: now + life,
            obtained_at: now,
            scope: answer.scope,
            refresh_expires_at,
        };
        let renew = tokens.renew_at(self.cfg.renew_ahead).saturating_sub(now);
        let no_refresh = tokens.refresh_token.is_none();
        // Single-use refresh tokens: the new one is stored before anything
        // else happens.
        self.store(&tokens);
        self.tokens = Some(tokens);
        self.generation += 1;
        self.stale = false;
        self.refresh_due = false;
        self.retry.succeeded();
        self.problem = None;
        self.steps.push(Step::SetTimer(TimerKind::Renew, renew));
        if self.login != Login::None {
            self.login = Login::None;
            self.steps.push(Step::CancelTimer(TimerKind::DevicePoll));
            self.steps.push(Step::LoginStep(None));
            self.log(Level::Info, "signed in");
        }
        if self.cfg.flow.delegated() && grant != GrantKind::RefreshToken && no_refresh {
            self.log(
                Level::Warn,
                "no refresh token came back (ask for offline_access?): the sign-in lasts only until the token expires",
            );
        }
        self.log(
            Level::Debug,
            format!(
                "{} token obtained by {}, valid {} s",
                self.cfg.name,
                grant_name(grant),
                life / 1000
            ),
        );
        TokenEvent::Obtained
    }

    /// An operator must fix something: wait [`REFUSED_RETRY_MS`].
    fn refused(&mut self, status: ConnectorStatus, detail: String, now: u64) -> TokenEvent {
        self.log(Level::Error, detail.clone());
        self.retry.hold_until(now + REFUSED_RETRY_MS);
        self.steps
            .push(Step::SetTimer(TimerKind::Renew, REFUSED_RETRY_MS));
        TokenEvent::Problem(status, detail)
    }

    /// Unreachable, throttled or failing: the server's `Retry-After`, else a
    /// growing pause.
    fn transient(
        &mut self,
        grant: Option<GrantKind>,
        text: &str,
        retry_after: Option<u64>,
        now: u64,
        rng: Rng<'_>,
    ) -> TokenEvent {
        let wait = self.retry.failed(retry_after, random_u32(rng), now);
        let detail = format!(
            "cannot reach the token endpoint: {text}; retrying in {} s",
            wait.div_ceil(1000)
        );
        self.log(Level::Warn, detail.clone());
        if grant == Some(GrantKind::DeviceCode) && matches!(self.login, Login::Device { .. }) {
            // Keep polling the same code, later.
            self.steps.push(Step::SetTimer(TimerKind::DevicePoll, wait));
            return TokenEvent::Pending;
        }
        self.steps.push(Step::SetTimer(TimerKind::Renew, wait));
        if self.access_token(now).is_some() {
            return TokenEvent::Pending;
        }
        let status = if text == "HTTP 429" {
            ConnectorStatus::Throttled
        } else {
            ConnectorStatus::ConnectionError
        };
        TokenEvent::Problem(status, detail)
    }

    fn form(&self, url: &str, mut pairs: Vec<(&'static str, String)>) -> http::Request {
        let mut headers = vec![
            Header {
                name: "Content-Type".into(),
                value: "application/x-www-form-urlencoded".into(),
            },
            Header {
                name: "Accept".into(),
                value: "application/json".into(),
            },
        ];
        match (&self.cfg.client_secret, self.cfg.client_auth) {
            (Some(secret), ClientAuth::Basic) => {
                // RFC 6749 §2.3.1: both parts form-encoded first.
                let user = format!(
                    "{}:{}",
                    urlcode::encode_component(&self.cfg.client_id),
                    urlcode::encode_component(secret)
                );
                headers.push(Header {
                    name: "Authorization".into(),
                    value: format!("Basic {}", STANDARD.encode(user)),
                });
            }
            (Some(secret), ClientAuth::Post) => {
                pairs.push(("client_id", self.cfg.client_id.clone()));
                pairs.push(("client_secret", secret.clone()));
            }
            (None, _) => pairs.push(("client_id", self.cfg.client_id.clone())),
        }
        let mut refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        refs.extend(
            self.cfg
                .extra_params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        http::Request {
            method: "POST".into(),
            url: url.to_string(),
            headers,
            body: urlcode::form(&refs).into_bytes(),
            timeout_ms: Some(self.cfg.timeout_ms),
        }
    }

    fn send_grant(&mut self, grant: GrantKind, pairs: Vec<(&'static str, String)>) {
        let req = self.form(&self.cfg.token_url.clone(), pairs);
        self.inflight_grant = Some(grant);
        self.refresh_due = false;
        self.send(CallKind::Token, req);
    }

    fn send(&mut self, kind: CallKind, req: http::Request) {
        self.inflight = Some(kind);
        self.requests += 1;
        self.steps.push(Step::Send(kind, req));
    }

    // ---- driven through a connector's effects context -------------------

    /// Takes the tokens the key-value store holds for this client, if they
    /// belong to this configuration (see [`restore`](Self::restore)); the
    /// renewal timer is set with the next flush ([`start`](Self::start)).
    pub fn restore_from<C: Connector>(&mut self, cx: &mut Cx<C>) -> bool {
        let stored = cx.kv_get(&self.cfg.storage_key()).ok().flatten();
        self.restore(stored.as_deref(), cx.now())
    }

    /// [`ensure`](Self::ensure) a token, through `cx`.
    pub fn start<C: Connector>(&mut self, cx: &mut Cx<C>)
    where
        C::RequestKey: From<Call>,
        C::TimerKey: From<Timer>,
    {
        let now = cx.now();
        self.ensure(now, &mut |n| cx.random_bytes(n));
        self.flush(cx);
    }

    /// A timer of this client fired (`timer.client` is this client's name).
    pub fn handle_timer<C: Connector>(&mut self, cx: &mut Cx<C>, timer: Timer)
    where
        C::RequestKey: From<Call>,
        C::TimerKey: From<Timer>,
    {
        let now = cx.now();
        self.on_timer(timer.kind, now, &mut |n| cx.random_bytes(n));
        self.flush(cx);
    }

    /// The outcome of a request of this client.
    pub fn handle_http<C: Connector>(
        &mut self,
        cx: &mut Cx<C>,
        call: Call,
        outcome: Result<http::Response, HttpError>,
    ) -> TokenEvent
    where
        C::RequestKey: From<Call>,
        C::TimerKey: From<Timer>,
    {
        let now = cx.now();
        let result = match &outcome {
            Ok(r) => Ok((r.status, r.headers.as_slice(), r.body.as_slice())),
            Err(e) => Err(e.to_string()),
        };
        let event = self.on_response(call.kind, result, now, &mut |n| cx.random_bytes(n));
        self.flush(cx);
        event
    }

    /// The authorization redirect arrived with this query string.
    pub fn handle_redirect<C: Connector>(
        &mut self,
        cx: &mut Cx<C>,
        query: &str,
    ) -> Result<(), RedirectError>
    where
        C::RequestKey: From<Call>,
        C::TimerKey: From<Timer>,
    {
        let result = self.on_redirect(query);
        self.flush(cx);
        result
    }

    /// The resource server answered 401 to this client's token.
    pub fn handle_rejected<C: Connector>(&mut self, cx: &mut Cx<C>)
    where
        C::RequestKey: From<Call>,
        C::TimerKey: From<Timer>,
    {
        let now = cx.now();
        self.rejected(now, &mut |n| cx.random_bytes(n));
        self.flush(cx);
    }

    /// Carries out the steps asked for through `cx`.
    pub fn flush<C: Connector>(&mut self, cx: &mut Cx<C>)
    where
        C::RequestKey: From<Call>,
        C::TimerKey: From<Timer>,
    {
        let client = self.cfg.name;
        for step in self.take_steps() {
            match step {
                Step::Send(kind, req) => cx.http(Call { client, kind }.into(), req),
                Step::SetTimer(kind, ms) => cx.set_timer(Timer { client, kind }.into(), ms),
                Step::CancelTimer(kind) => cx.cancel_timer(Timer { client, kind }.into()),
                Step::Store(bytes) => {
                    let key = self.cfg.storage_key();
                    let result = match bytes {
                        Some(bytes) => cx.kv_set(&key, &bytes),
                        None => cx.kv_delete(&key),
                    };
                    if let Err(e) = result {
                        cx.error(format!("storing {key}: {}", crate::render_host_error(&e)));
                    }
                }
                Step::LoginStep(step) => cx.login_step(step),
                Step::Log(level, text) => cx.log(level, text),
            }
        }
    }
}

fn grant_name(grant: GrantKind) -> &'static str {
    match grant {
        GrantKind::ClientCredentials => "client_credentials",
        GrantKind::JwtBearer => "jwt-bearer",
        GrantKind::AuthorizationCode => "authorization_code",
        GrantKind::DeviceCode => "device_code",
        GrantKind::RefreshToken => "refresh_token",
    }
}

#[cfg(test)]
mod tests;
