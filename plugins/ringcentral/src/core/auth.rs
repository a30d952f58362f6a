//! Signing in (facts C7): the JWT bearer grant (RFC 7523) or the
//! authorization code grant, refresh tokens (single-use, rotating: the new
//! one is stored at once), tokens kept in the key-value store across
//! restarts. Every token request is `POST /restapi/oauth/token`, form body
//! (`GetTokenRequest`: `JwtTokenRequest`, `AuthCodeTokenRequest`,
//! `RefreshTokenRequest`), client authentication `Authorization: Basic
//! base64(client_id:client_secret)`; Auth throttling group.

use base64::Engine as _;
use presence_connector_sdk::backoff::Backoff;
use presence_connector_sdk::urlcode;
use presence_connector_sdk::{ConnectorStatus, LoginStep};
use serde::{Deserialize, Serialize};

use super::{Action, Core, Hook, HookAnswer, Level, Purpose, Request, Response, TimerKey, keys};
use crate::budget::{Group, retry_after_ms};
use crate::settings::AuthMode;
use crate::wire::{self, TokenInfo};

/// The grant of a token request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    Jwt,
    Refresh,
    AuthCode,
}

/// Tokens as kept (times in ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub access: String,
    pub refresh: Option<String>,
    pub expires_at: u64,
    pub refresh_expires_at: Option<u64>,
    pub obtained_at: u64,
}

#[derive(Serialize, Deserialize)]
struct StoredTokens {
    fingerprint: String,
    tokens: Tokens,
}

/// When to refresh: a fifth of the lifetime before expiry, at most ten
/// minutes before (an hour's token: at 50 minutes).
pub fn refresh_at(t: &Tokens) -> u64 {
    let life = t.expires_at.saturating_sub(t.obtained_at);
    t.expires_at - (life / 5).min(10 * 60_000)
}

/// A sign-in waiting for an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LoginPending {
    state: String,
    url: String,
}

/// The sign-in state.
#[derive(Debug)]
pub struct Auth {
    pub tokens: Option<Tokens>,
    fingerprint: String,
    pub inflight: bool,
    pub refresh_due: bool,
    /// RingCentral refused the access token (401): get a new one.
    stale: bool,
    retry_at: u64,
    backoff: Backoff,
    /// Why the connector cannot sign in until an operator acts.
    pub problem: Option<(ConnectorStatus, String)>,
    login: Option<LoginPending>,
    /// An authorization code from the redirect, to exchange.
    code: Option<String>,
}

impl Auth {
    /// The tokens the store held, if they belong to this configuration.
    pub fn load(stored: Option<&[u8]>, fingerprint: &str) -> Auth {
        let tokens = stored
            .and_then(|b| serde_json::from_slice::<StoredTokens>(b).ok())
            .filter(|s| s.fingerprint == fingerprint)
            .map(|s| s.tokens);
        Auth {
            tokens,
            fingerprint: fingerprint.to_string(),
            inflight: false,
            refresh_due: false,
            stale: false,
            retry_at: 0,
            backoff: Backoff::new(2_000, 5 * 60_000),
            problem: None,
            login: None,
            code: None,
        }
    }

    /// The access token, if it may be sent now (not refused, not within
    /// the last tenth of its life, at most 30 s, before expiry).
    pub fn usable(&self, now: u64) -> Option<&str> {
        let t = self.tokens.as_ref()?;
        let skew = (t.expires_at.saturating_sub(t.obtained_at) / 10).min(30_000);
        (!self.stale && now + skew < t.expires_at).then_some(t.access.as_str())
    }

    /// RingCentral answered 401 to an API call.
    pub fn rejected(&mut self, _why: &str) {
        self.stale = true;
    }

    /// The status detail while an operator must sign in.
    pub fn login_message(&self) -> Option<String> {
        self.login.as_ref().map(|l| {
            format!(
                "sign a RingCentral user in: open {} (shown as the login step) and authorize the app",
                l.url
            )
        })
    }

    fn stored(&self) -> Option<Vec<u8>> {
        serde_json::to_vec(&StoredTokens {
            fingerprint: self.fingerprint.clone(),
            tokens: self.tokens.clone()?,
        })
        .ok()
    }
}

impl Core {
    fn token_request(&self, pairs: &[(&str, &str)]) -> Request {
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.s.client_id, self.s.client_secret));
        Request {
            method: "POST",
            url: self.url("/restapi/oauth/token"),
            headers: vec![
                (
                    "Content-Type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
                ("Accept".into(), "application/json".into()),
                ("Authorization".into(), format!("Basic {basic}")),
            ],
            body: urlcode::form(pairs).into_bytes(),
            timeout_ms: super::HTTP_TIMEOUT_MS,
        }
    }

    /// Ask for a token if none may be sent (or its refresh is due), none is
    /// being asked for, and no failure says to wait.
    pub(super) fn ensure_token(&mut self, now: u64) {
        let a = &self.auth;
        if a.inflight || now < a.retry_at {
            return;
        }
        let code = a.code.clone();
        let needed = code.is_some() || a.usable(now).is_none() || a.refresh_due;
        if !needed {
            return;
        }
        if a.problem.is_some() && code.is_none() {
            // Waits for the operator (or for retry_at, which has passed: try
            // the JWT once more).
            if self.s.auth == AuthMode::AuthorizationCode {
                return;
            }
        }
        let refresh = a
            .tokens
            .as_ref()
            .filter(|t| t.refresh_expires_at.is_none_or(|at| now < at))
            .and_then(|t| t.refresh.clone());
        let (grant, pairs): (Grant, Vec<(&str, String)>) = if let Some(code) = code {
            let redirect = self.s.redirect_url().unwrap_or_default();
            (
                Grant::AuthCode,
                vec![
                    ("grant_type", "authorization_code".into()),
                    ("code", code),
                    ("redirect_uri", redirect),
                ],
            )
        } else if let Some(r) = refresh {
            (
                Grant::Refresh,
                vec![("grant_type", "refresh_token".into()), ("refresh_token", r)],
            )
        } else {
            match (self.s.auth, self.s.jwt.clone()) {
                (AuthMode::Jwt, Some(jwt)) => (
                    Grant::Jwt,
                    vec![
                        (
                            "grant_type",
                            "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
                        ),
                        ("assertion", jwt),
                    ],
                ),
                _ => {
                    self.begin_login();
                    return;
                }
            }
        };
        if !self.room(Group::Auth, now) {
            return;
        }
        if grant == Grant::AuthCode {
            self.auth.code = None;
        }
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let req = self.token_request(&pairs);
        self.auth.inflight = true;
        self.send(Purpose::Token(grant), req, now);
    }

    /// Show the authorization URL as the login step (once).
    fn begin_login(&mut self) {
        if self.auth.login.is_some() {
            return;
        }
        let Some(redirect) = self.s.redirect_url() else {
            // The status says HUB_PUBLIC_URL is missing.
            return;
        };
        let state = self.random();
        let url = format!(
            "{}?{}",
            self.url("/restapi/oauth/authorize"),
            urlcode::form(&[
                ("response_type", "code"),
                ("client_id", &self.s.client_id),
                ("redirect_uri", &redirect),
                ("state", &state),
            ])
        );
        self.auth.login = Some(LoginPending {
            state,
            url: url.clone(),
        });
        self.out.push(Action::LoginStep(Some(LoginStep {
            message: "Open this address, sign in with the RingCentral user whose access the hub should use, and authorize the app".into(),
            url: Some(url),
            user_code: None,
            expires_at: None,
        })));
    }

    /// The OAuth redirect: `GET /hooks/{instance}/oauth/callback?code&state`
    /// (or `?error&error_description`).
    pub(super) fn on_auth_callback(&mut self, hook: &Hook<'_>, now: u64) -> HookAnswer {
        let q = |k: &str| urlcode::query_value(hook.query, k);
        let Some(pending) = self.auth.login.clone() else {
            return HookAnswer::html(
                400,
                "No sign-in is waiting. If you meant to sign in, start again from the connector's login step.",
            );
        };
        if !q("state").is_some_and(|s| wire::same_secret(&s, &pending.state)) {
            return HookAnswer::html(
                400,
                "This sign-in is unknown or out of date; use the newest login step.",
            );
        }
        if let Some(err) = q("error") {
            let desc = q("error_description").unwrap_or_default();
            self.log(
                Level::Warn,
                format!("sign-in refused by RingCentral: {err} {desc}"),
            );
            return HookAnswer::html(
                400,
                &format!("RingCentral refused the sign-in: {err} {desc}"),
            );
        }
        let Some(code) = q("code").filter(|c| !c.is_empty()) else {
            return HookAnswer::html(400, "The redirect carries no authorization code.");
        };
        self.auth.code = Some(code);
        self.auth.problem = None;
        self.ensure_token(now);
        HookAnswer::html(
            200,
            "Signed in: the presence hub now exchanges the code for tokens. You can close this window.",
        )
    }

    fn token_retry(&mut self, wait: u64, now: u64) {
        self.auth.retry_at = now + wait;
        self.set_timer(TimerKey::Token, wait);
    }

    /// The answer of a token request.
    pub(super) fn on_token(&mut self, grant: Grant, result: Result<Response, String>, now: u64) {
        self.auth.inflight = false;
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                self.unreachable = Some(e.clone());
                let r = self.random_u32();
                let wait = self.auth.backoff.next_delay(r);
                self.log(
                    Level::Warn,
                    format!(
                        "token request failed: {e}; retrying in {} s",
                        wait.div_ceil(1000)
                    ),
                );
                self.token_retry(wait, now);
                return;
            }
        };
        let text = wire::error_text(resp.status, &resp.body);
        match resp.status {
            200..=299 => match serde_json::from_slice::<TokenInfo>(&resp.body) {
                Ok(info) => self.took_token(grant, info, now),
                Err(e) => {
                    let r = self.random_u32();
                    let wait = self.auth.backoff.next_delay(r);
                    self.log(Level::Warn, format!("token answer unreadable: {e}"));
                    self.token_retry(wait, now);
                }
            },
            429 => {
                let until = self
                    .budget
                    .penalize(Group::Auth, retry_after_ms(&resp.headers), now);
                self.store_penalties(now);
                self.token_retry(until - now, now);
            }
            500..=599 => {
                let r = self.random_u32();
                let wait = self.auth.backoff.next_delay(r);
                self.log(Level::Warn, format!("token request failed: {text}"));
                self.token_retry(wait, now);
            }
            _ => self.token_refused(grant, &resp.body, &text, now),
        }
    }

    fn took_token(&mut self, grant: Grant, info: TokenInfo, now: u64) {
        let a = &mut self.auth;
        let kept_refresh = a.tokens.as_ref().and_then(|t| t.refresh.clone());
        let refresh = info.refresh_token.or(if grant == Grant::Refresh {
            kept_refresh
        } else {
            None
        });
        let tokens = Tokens {
            access: info.access_token,
            refresh,
            expires_at: now + info.expires_in.max(1) * 1000,
            refresh_expires_at: info.refresh_token_expires_in.map(|s| now + s * 1000),
            obtained_at: now,
        };
        let at = refresh_at(&tokens);
        a.tokens = Some(tokens);
        a.stale = false;
        a.refresh_due = false;
        a.problem = None;
        a.retry_at = 0;
        a.backoff.reset();
        // Refresh tokens are single-use: the new one is stored before
        // anything else happens.
        if let Some(bytes) = self.auth.stored() {
            self.out.push(Action::KvSet(keys::TOKENS.into(), bytes));
        }
        if self.auth.login.take().is_some() || grant == Grant::AuthCode {
            self.out.push(Action::LoginStep(None));
        }
        self.log(
            Level::Info,
            format!(
                "signed in ({}); access token refreshed in {} s",
                match grant {
                    Grant::Jwt => "JWT",
                    Grant::Refresh => "refresh token",
                    Grant::AuthCode => "authorization code",
                },
                at.saturating_sub(now) / 1000
            ),
        );
        self.set_timer(TimerKey::Token, at.saturating_sub(now));
    }

    fn token_refused(&mut self, grant: Grant, body: &[u8], text: &str, now: u64) {
        let error = wire::oauth_error(body).unwrap_or_default();
        match grant {
            Grant::Refresh => {
                self.log(
                    Level::Warn,
                    format!("RingCentral refused the refresh token ({text}): it was revoked or has expired"),
                );
                self.auth.tokens = None;
                self.out.push(Action::KvDelete(keys::TOKENS.into()));
                match self.s.auth {
                    // Present the JWT again at once.
                    AuthMode::Jwt => {}
                    AuthMode::AuthorizationCode => self.begin_login(),
                }
            }
            Grant::Jwt => {
                let msg = if error == "invalid_client" || error == "unauthorized_client" {
                    format!(
                        "RingCentral refused the app's credentials ({text}): check client_id and client_secret, and that the app allows the JWT auth flow"
                    )
                } else {
                    format!(
                        "RingCentral refused the JWT credential ({text}): create a new JWT for the service user in the Developer Console (Credentials) and set it in the field jwt"
                    )
                };
                self.log(Level::Error, msg.clone());
                self.auth.problem = Some((ConnectorStatus::CredentialsNotFound, msg));
                self.auth.tokens = None;
                // Tried again now and then, in case the refusal was the
                // platform's passing mood; the Auth budget is small.
                self.token_retry(10 * 60_000, now);
            }
            Grant::AuthCode => {
                self.log(
                    Level::Warn,
                    format!("RingCentral refused the authorization code ({text})"),
                );
                self.auth.login = None;
                self.begin_login();
            }
        }
    }
}
