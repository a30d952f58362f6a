//! Signing in to the Microsoft identity platform with the SDK's OAuth 2.0
//! client ([`oauth::TokenClient`]): the configured flow (client
//! credentials, device code, or authorization code with PKCE) for reads and
//! subscriptions, and client credentials beside a delegated flow for writes
//! to other users. This file only routes the client's steps into the core's
//! actions and its answers into the core's status.

use presence_connector_sdk::ConnectorStatus;
use presence_connector_sdk::oauth::{
    self, CallKind, ClientAuth, Flow, OAuthConfig, Step, TimerKind, TokenClient, TokenEvent,
};

use super::{Action, Core, Hook, HookAnswer, OpClass, Purpose, Request, Response, TimerKey};
use crate::settings::{AuthFlow, Settings};

/// Which sign-in a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Slot {
    /// The configured flow; reads, subscriptions (and writes when there is
    /// no application sign-in).
    Primary,
    /// Client credentials beside a delegated flow, for writes to other
    /// users' presence.
    App,
}

impl Slot {
    /// Where the slot's tokens are kept.
    pub fn key(self) -> &'static str {
        match self {
            Slot::Primary => super::keys::TOKEN_PRIMARY,
            Slot::App => super::keys::TOKEN_APP,
        }
    }
}

/// The OAuth client of a slot, with what the key-value store held for it.
pub fn client(slot: Slot, s: &Settings, stored: Option<&[u8]>, now: u64) -> TokenClient {
    let flow = match (slot, s.flow) {
        (Slot::App, _) | (Slot::Primary, AuthFlow::ClientCredentials) => Flow::ClientCredentials,
        (Slot::Primary, AuthFlow::DeviceCode) => Flow::DeviceCode {
            device_authorization_url: s.devicecode_url(),
        },
        (Slot::Primary, AuthFlow::AuthorizationCode) => Flow::AuthorizationCode {
            authorize_url: s.authorize_url(),
            redirect_uri: s.redirect_url.clone().unwrap_or_default(),
            pkce: true,
        },
    };
    let name = match slot {
        Slot::Primary => "primary",
        Slot::App => "app",
    };
    let mut cfg = OAuthConfig::new(name, s.token_url(), &s.client_id, flow);
    cfg.scopes = match slot {
        Slot::Primary => s.scopes.clone(),
        Slot::App => vec![s.app_scope()],
    };
    cfg.timeout_ms = super::HTTP_TIMEOUT_MS;
    // A device-code client is public and must not send the secret.
    if (slot == Slot::App || s.flow != AuthFlow::DeviceCode)
        && let Some(secret) = &s.client_secret
    {
        cfg = cfg.secret(secret, ClientAuth::Post);
    }
    let mut client = TokenClient::new(cfg);
    client.restore(stored, now);
    client
}

impl Core {
    pub(super) fn client(&self, slot: Slot) -> Option<&TokenClient> {
        match slot {
            Slot::Primary => Some(&self.primary),
            Slot::App => self.app.as_ref(),
        }
    }

    /// Runs `f` on the slot's client with the host's generator, then turns
    /// the client's steps into the core's actions.
    fn with_client<R>(
        &mut self,
        slot: Slot,
        f: impl FnOnce(&mut TokenClient, oauth::Rng<'_>) -> R,
    ) -> Option<R> {
        let client = match slot {
            Slot::Primary => &mut self.primary,
            Slot::App => self.app.as_mut()?,
        };
        let result = f(client, &mut *self.entropy);
        let steps = client.take_steps();
        for step in steps {
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
                    self.send(Purpose::OAuth(slot, kind), req);
                }
                Step::SetTimer(kind, ms) => self.set_timer(TimerKey::OAuth(slot, kind), ms),
                Step::CancelTimer(kind) => self.cancel_timer(TimerKey::OAuth(slot, kind)),
                Step::Store(Some(bytes)) => self.out.push(Action::KvSet(slot.key().into(), bytes)),
                Step::Store(None) => self.out.push(Action::KvDelete(slot.key().into())),
                Step::LoginStep(step) => self.out.push(Action::LoginStep(step)),
                Step::Log(level, text) => self.log(level, text),
            }
        }
        Some(result)
    }

    /// Carries out what the clients asked for while being built (the
    /// renewal timers of stored tokens).
    pub(super) fn start_clients(&mut self) {
        for slot in [Slot::Primary, Slot::App] {
            self.with_client(slot, |_, _| ());
        }
    }

    /// Asks for a token if the slot needs one and may ask now.
    pub(super) fn ensure_token(&mut self, slot: Slot, now: u64) {
        self.with_client(slot, |c, rng| c.ensure(now, rng));
    }

    pub(super) fn token_timer(&mut self, slot: Slot, kind: TimerKind, now: u64) {
        self.with_client(slot, |c, rng| c.on_timer(kind, now, rng));
    }

    /// Whether the primary sign-in can renew without an operator (while
    /// stopping, no interactive sign-in is started).
    pub(super) fn silent_sign_in(&self) -> bool {
        !self.s.flow.delegated()
            || self
                .primary
                .tokens()
                .is_some_and(|t| t.refresh_token.is_some())
    }

    /// The identity platform answered a request of a slot's client.
    pub(super) fn on_oauth(
        &mut self,
        slot: Slot,
        kind: CallKind,
        result: Result<Response, String>,
        now: u64,
    ) {
        let headers: Vec<presence_connector_sdk::Header> = match &result {
            Ok(r) => r
                .headers
                .iter()
                .map(|(name, value)| presence_connector_sdk::Header {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        let answer = match &result {
            Ok(r) => Ok((r.status, headers.as_slice(), r.body.as_slice())),
            Err(e) => Err(e.clone()),
        };
        let event = self.with_client(slot, |c, rng| c.on_response(kind, answer, now, rng));
        match (slot, event) {
            // The client keeps its own problem (`sign_in_problem`).
            (Slot::Primary, Some(TokenEvent::Obtained)) => self.auth_problem = None,
            (Slot::App, Some(TokenEvent::Problem(ConnectorStatus::Forbidden, text))) => {
                let detail = format!("application sign-in (for write-back): {text}");
                self.forbidden.insert(OpClass::Write, detail);
            }
            _ => {}
        }
    }

    /// Why the primary sign-in has no token (a login step pending, a
    /// refusal, an unreachable identity platform), in operators' words.
    pub(super) fn sign_in_problem(&self) -> Option<(ConnectorStatus, String)> {
        self.primary
            .problem()
            .map(|(status, text)| (*status, format!("Microsoft identity platform: {text}")))
    }

    /// `GET /auth/callback?code=...&state=...` from the identity platform.
    pub(super) fn on_auth_callback(&mut self, hook: &Hook<'_>) -> HookAnswer {
        match self.with_client(Slot::Primary, |c, _| c.on_redirect(hook.query)) {
            Some(Ok(())) => HookAnswer::html(
                200,
                "Signed in. The presence hub is completing the sign-in; you can close this window.",
            ),
            Some(Err(e)) => HookAnswer::html(e.status(), &e.to_string()),
            None => HookAnswer::html(409, "No sign-in is pending for this connector."),
        }
    }

    /// Graph answered 401: the token is replaced; a fresh one refused again
    /// means the token is wrong for Graph (audience, tenant, consent).
    pub(super) fn unauthorized(&mut self, slot: Slot, msg: &str, now: u64) {
        let rejected = self.rejected.entry(slot).or_default();
        *rejected += 1;
        let rejected = *rejected;
        self.with_client(slot, |c, rng| c.rejected(now, rng));
        if rejected > 2 {
            self.auth_problem = Some((
                ConnectorStatus::Forbidden,
                format!(
                    "Graph rejects the access token ({msg}); check the tenant, the Graph URL and consent"
                ),
            ));
        }
    }

    /// A lifecycle event asks for a fresh token before reauthorizing.
    pub(super) fn force_refresh(&mut self) {
        self.primary.invalidate();
    }
}
