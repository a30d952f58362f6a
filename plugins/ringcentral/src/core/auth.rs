//! Signing in (facts C7) with the SDK's OAuth 2.0 client
//! ([`oauth::TokenClient`]): the JWT bearer grant (RFC 7523, the JWT
//! credential from the Developer Console as the assertion) or the
//! authorization code grant, at `POST /restapi/oauth/token` with
//! `Authorization: Basic base64(client_id:client_secret)`; refresh tokens
//! rotate (single-use: the new one is stored at once) and expire
//! (`refresh_token_expires_in`); tokens are kept in the key-value store
//! across restarts and renewed at a fifth of their life, at most ten
//! minutes early. Every request to the token endpoint waits for room in the
//! Auth throttling group. This file routes the client's steps into the
//! core's actions and its answers into RingCentral's status words.

use presence_connector_sdk::ConnectorStatus;
use presence_connector_sdk::oauth::{
    self, CallKind, ClientAuth, Flow, OAuthConfig, Step, TimerKind, TokenClient, TokenEvent, Tokens,
};
use serde::Deserialize;

use super::{Action, Core, Hook, HookAnswer, Level, Purpose, Request, Response, TimerKey, keys};
use crate::budget::{Group, retry_after_ms};
use crate::settings::{AuthMode, Settings};

/// Tokens as this connector kept them before it used the SDK's client
/// (times in ms since the epoch); read once, then stored anew.
#[derive(Deserialize)]
struct LegacyTokens {
    access: String,
    refresh: Option<String>,
    expires_at: u64,
    refresh_expires_at: Option<u64>,
    obtained_at: u64,
}

#[derive(Deserialize)]
struct LegacyStored {
    fingerprint: String,
    tokens: LegacyTokens,
}

/// The OAuth client for `s`, with what the key-value store held under
/// [`keys::TOKENS`] (in the client's format, or once in the older one).
pub fn client(s: &Settings, stored: Option<&[u8]>, now: u64) -> TokenClient {
    let flow = match s.auth {
        AuthMode::Jwt => Flow::JwtBearer {
            assertion: s.jwt.clone().unwrap_or_default(),
        },
        AuthMode::AuthorizationCode => Flow::AuthorizationCode {
            authorize_url: format!("{}/restapi/oauth/authorize", s.server),
            redirect_uri: s.redirect_url().unwrap_or_default(),
            // RingCentral's confidential apps sign in without PKCE; the
            // client secret authenticates the code exchange.
            pkce: false,
        },
    };
    let token_url = format!("{}/restapi/oauth/token", s.server);
    let mut cfg = OAuthConfig::new("ringcentral", token_url, &s.client_id, flow)
        .secret(&s.client_secret, ClientAuth::Basic)
        // An hour's token at 50 minutes (RingCentral's advice).
        .renew_ahead(5, 10 * 60_000);
    cfg.timeout_ms = super::HTTP_TIMEOUT_MS;
    let mut client = TokenClient::new(cfg);
    if !client.restore(stored, now)
        && let Some(old) = stored
            .and_then(|b| serde_json::from_slice::<LegacyStored>(b).ok())
            .filter(|o| o.fingerprint == s.fingerprint())
    {
        let t = old.tokens;
        client.adopt(
            Tokens {
                access_token: t.access,
                refresh_token: t.refresh,
                expires_at: t.expires_at,
                obtained_at: t.obtained_at,
                scope: None,
                refresh_expires_at: t.refresh_expires_at,
            },
            now,
        );
    }
    client
}

impl Core {
    /// Runs `f` on the client with the host's generator, within the Auth
    /// group's room, then turns the client's steps into the core's actions.
    fn with_client<R>(
        &mut self,
        now: u64,
        f: impl FnOnce(&mut TokenClient, oauth::Rng<'_>) -> R,
    ) -> R {
        if let Err(wait) = self.budget.room(Group::Auth, now) {
            self.oauth.defer_until(now + wait);
        }
        let result = f(&mut self.oauth, &mut *self.entropy);
        for step in self.oauth.take_steps() {
            match step {
                Step::Send(kind, r) => {
                    let req = Request {
                        // The client only ever posts forms.
                        method: "POST",
                        url: r.url,
                        headers: r.headers.into_iter().map(|h| (h.name, h.value)).collect(),
                        body: r.body,
                        timeout_ms: r.timeout_ms.unwrap_or(super::HTTP_TIMEOUT_MS),
                    };
                    self.send(Purpose::Token(kind), req, now);
                }
                Step::SetTimer(kind, ms) => self.set_timer(TimerKey::OAuth(kind), ms),
                Step::CancelTimer(kind) => self.cancel_timer(TimerKey::OAuth(kind)),
                Step::Store(Some(bytes)) => {
                    self.out.push(Action::KvSet(keys::TOKENS.into(), bytes))
                }
                Step::Store(None) => self.out.push(Action::KvDelete(keys::TOKENS.into())),
                Step::LoginStep(step) => {
                    self.login_url = step.as_ref().and_then(|s| s.url.clone());
                    self.out.push(Action::LoginStep(step));
                }
                Step::Log(level, text) => self.log(level, text),
            }
        }
        result
    }

    /// Carries out what the client asked for while being built (the
    /// renewal timer of stored tokens, their move to the client's format).
    pub(super) fn start_client(&mut self, now: u64) {
        self.with_client(now, |_, _| ());
    }

    /// The access token, if it may be sent now.
    pub(super) fn usable(&self, now: u64) -> Option<&str> {
        self.oauth.access_token(now)
    }

    /// Asks for a token if none may be sent (or its renewal is due) and the
    /// Auth group has room; without a public URL no sign-in link is shown
    /// (the status names `HUB_PUBLIC_URL`).
    pub(super) fn ensure_token(&mut self, now: u64) {
        if self.s.auth == AuthMode::AuthorizationCode && self.s.redirect_url().is_none() {
            return;
        }
        self.with_client(now, |c, rng| c.ensure(now, rng));
    }

    pub(super) fn token_timer(&mut self, kind: TimerKind, now: u64) {
        self.with_client(now, |c, rng| c.on_timer(kind, now, rng));
    }

    /// RingCentral answered 401 to an API call: a new token, at once (a
    /// refused replacement only after a minute).
    pub(super) fn rejected(&mut self, now: u64) {
        self.with_client(now, |c, rng| c.rejected(now, rng));
    }

    /// The status detail while an operator must sign in.
    pub(super) fn login_message(&self) -> Option<String> {
        let url = self
            .login_url
            .as_ref()
            .filter(|_| self.oauth.login_pending())?;
        Some(format!(
            "sign a RingCentral user in: open {url} (shown as the login step) and authorize the app"
        ))
    }

    /// The OAuth redirect: `GET /hooks/{instance}/oauth/callback?code&state`
    /// (or `?error&error_description`).
    pub(super) fn on_auth_callback(&mut self, hook: &Hook<'_>, now: u64) -> HookAnswer {
        match self.with_client(now, |c, _| c.on_redirect(hook.query)) {
            Ok(()) => {
                self.auth_problem = None;
                HookAnswer::html(
                    200,
                    "Signed in: the presence hub now exchanges the code for tokens. You can close this window.",
                )
            }
            Err(e) => HookAnswer::html(e.status(), &format!("RingCentral sign-in: {e}")),
        }
    }

    /// The answer of a request to the token endpoint.
    pub(super) fn on_token(&mut self, kind: CallKind, result: Result<Response, String>, now: u64) {
        match &result {
            Ok(r) if r.status == 429 => {
                self.budget
                    .penalize(Group::Auth, retry_after_ms(&r.headers), now);
                self.store_penalties(now);
            }
            Err(e) => self.unreachable = Some(e.clone()),
            Ok(_) => {}
        }
        let headers: Vec<presence_connector_sdk::Header> = match &result {
            Ok(r) => presence_connector_sdk::plain::headers(r.headers.clone()),
            Err(_) => Vec::new(),
        };
        let answer = match &result {
            Ok(r) => Ok((r.status, headers.as_slice(), r.body.as_slice())),
            Err(e) => Err(e.clone()),
        };
        let event = self.with_client(now, |c, rng| c.on_response(kind, answer, now, rng));
        match event {
            TokenEvent::Obtained => self.auth_problem = None,
            TokenEvent::Problem(ConnectorStatus::Forbidden, text)
                if self.s.auth == AuthMode::Jwt =>
            {
                let msg = if text.contains("invalid_client") || text.contains("unauthorized_client")
                {
                    format!(
                        "RingCentral refused the app's credentials ({text}): check client_id and client_secret, and that the app allows the JWT auth flow"
                    )
                } else {
                    format!(
                        "RingCentral refused the JWT credential ({text}): create a new JWT for the service user in the Developer Console (Credentials) and set it in the field jwt"
                    )
                };
                self.log(Level::Error, msg.clone());
                self.auth_problem = Some((ConnectorStatus::CredentialsNotFound, msg));
            }
            TokenEvent::Problem(status @ ConnectorStatus::Forbidden, text) => {
                self.auth_problem = Some((status, format!("RingCentral: {text}")));
            }
            _ => {}
        }
    }
}
