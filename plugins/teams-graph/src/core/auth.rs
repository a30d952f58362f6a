//! Signing in to the Microsoft identity platform: client credentials,
//! device code, authorization code, refresh tokens, and keeping tokens in
//! the key-value store so a restart needs no new login.

use presence_connector_sdk::{ConnectorStatus, LoginStep};
use serde::{Deserialize, Serialize};

use super::{Action, Core, Hook, HookAnswer, Level, Purpose, Request, Response, TimerKey, keys};
use crate::settings::{AuthFlow, Settings};
use crate::wire::{self, DeviceCodeResponse, OAuthError, TokenResponse};

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

/// The grant a token request uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    ClientCredentials,
    Refresh,
    DeviceCode,
    AuthorizationCode,
}

/// Tokens as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub access: String,
    pub refresh: Option<String>,
    pub expires_at: u64,
    pub obtained_at: u64,
}

/// What is written to the key-value store: the tokens and what they belong
/// to.
#[derive(Debug, Serialize, Deserialize)]
struct StoredTokens {
    fingerprint: String,
    scopes: Vec<String>,
    tokens: Tokens,
}

/// When to refresh: five minutes before expiry, or at two thirds of a
/// shorter lifetime.
pub fn refresh_at(t: &Tokens) -> u64 {
    let life = t.expires_at.saturating_sub(t.obtained_at);
    t.expires_at - (life / 3).min(5 * 60_000)
}

/// The margin before expiry inside which a token is no longer sent (a request
/// may take a while to arrive).
fn skew(t: &Tokens) -> u64 {
    (t.expires_at.saturating_sub(t.obtained_at) / 10).min(30_000)
}

/// One sign-in's tokens and request state.
#[derive(Debug)]
pub struct TokenSlot {
    pub slot: Slot,
    pub tokens: Option<Tokens>,
    fingerprint: String,
    scopes: Vec<String>,
    pub inflight: bool,
    /// Graph refused the access token (401) or a lifecycle event asks for a
    /// fresh one: do not send it again.
    pub stale: bool,
    /// The refresh timer fired.
    pub refresh_due: bool,
    /// 401s in a row since the last answer Graph accepted.
    pub rejected: u32,
    /// No new token request before this time (after a failure).
    pub retry_at: u64,
    failures: u32,
}

impl TokenSlot {
    /// A slot with what the key-value store held, if it belongs to this
    /// configuration.
    pub fn load(slot: Slot, stored: Option<&[u8]>, fingerprint: &str, s: &Settings) -> TokenSlot {
        let scopes = match slot {
            Slot::Primary => s.scopes.clone(),
            Slot::App => vec![s.app_scope()],
        };
        let tokens = stored
            .and_then(|b| serde_json::from_slice::<StoredTokens>(b).ok())
            .filter(|st| st.fingerprint == fingerprint && st.scopes == scopes)
            .map(|st| st.tokens);
        TokenSlot {
            slot,
            tokens,
            fingerprint: fingerprint.to_string(),
            scopes,
            inflight: false,
            stale: false,
            refresh_due: false,
            rejected: 0,
            retry_at: 0,
            failures: 0,
        }
    }

    /// The access token, if it may be sent now.
    pub fn usable(&self, now: u64) -> Option<&str> {
        let t = self.tokens.as_ref()?;
        (!self.stale && now + skew(t) < t.expires_at).then_some(t.access.as_str())
    }

    fn key(&self) -> &'static str {
        match self.slot {
            Slot::Primary => keys::TOKEN_PRIMARY,
            Slot::App => keys::TOKEN_APP,
        }
    }

    fn stored(&self) -> Option<Vec<u8>> {
        let tokens = self.tokens.clone()?;
        serde_json::to_vec(&StoredTokens {
            fingerprint: self.fingerprint.clone(),
            scopes: self.scopes.clone(),
            tokens,
        })
        .ok()
    }
}

/// A delegated sign-in waiting for an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    None,
    /// Asking for a device code.
    Requesting,
    DeviceCode {
        device_code: String,
        interval_ms: u64,
        expires_at: u64,
        message: String,
    },
    AuthCode {
        state: String,
        url: String,
    },
}

impl Login {
    /// The status detail while an operator must act.
    pub fn pending_message(&self) -> Option<String> {
        match self {
            Login::None | Login::Requesting => None,
            Login::DeviceCode { message, .. } => Some(message.clone()),
            Login::AuthCode { url, .. } => Some(format!(
                "sign the service account in: open {url} (shown as the login step)"
            )),
        }
    }
}

fn form_request(url: String, pairs: &[(&str, &str)]) -> Request {
    Request {
        method: "POST",
        url,
        headers: vec![
            (
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            ),
            ("Accept".into(), "application/json".into()),
        ],
        body: wire::form(pairs),
        timeout_ms: super::HTTP_TIMEOUT_MS,
    }
}

impl Core {
    /// Ask for a token if the slot has none that may be sent (or its refresh
    /// is due), none is being asked for, and no failure says to wait.
    pub(super) fn ensure_token(&mut self, slot: Slot, now: u64) {
        let Some(t) = self.slot(slot) else { return };
        let needed = t.usable(now).is_none() || t.refresh_due;
        if !needed || t.inflight || now < t.retry_at {
            return;
        }
        let refresh = t.tokens.as_ref().and_then(|t| t.refresh.clone());
        let scopes = t.scopes.join(" ");
        let client_id = self.s.client_id.clone();
        let secret = self.s.client_secret.clone();
        let delegated = slot == Slot::Primary && self.s.flow.delegated();
        let (grant, req) = if let (true, Some(refresh)) = (delegated, refresh) {
            let mut pairs = vec![
                ("grant_type", "refresh_token"),
                ("client_id", client_id.as_str()),
                ("refresh_token", refresh.as_str()),
                ("scope", scopes.as_str()),
            ];
            // A confidential client (authorization code with a secret)
            // authenticates its refreshes; a device-code public client must not.
            if self.s.flow == AuthFlow::AuthorizationCode
                && let Some(secret) = secret.as_deref()
            {
                pairs.push(("client_secret", secret));
            }
            (Grant::Refresh, form_request(self.s.token_url(), &pairs))
        } else if delegated {
            if self.login == Login::None {
                self.start_login();
            }
            return;
        } else {
            let Some(secret) = secret else { return };
            let pairs = [
                ("grant_type", "client_credentials"),
                ("client_id", client_id.as_str()),
                ("client_secret", secret.as_str()),
                ("scope", scopes.as_str()),
            ];
            (
                Grant::ClientCredentials,
                form_request(self.s.token_url(), &pairs),
            )
        };
        if let Some(t) = self.slot_mut(slot) {
            t.inflight = true;
            t.refresh_due = false;
        }
        self.send(Purpose::Token(slot, grant), req);
    }

    /// Begin a delegated sign-in an operator completes.
    fn start_login(&mut self) {
        match self.s.flow {
            AuthFlow::DeviceCode => {
                self.login = Login::Requesting;
                let scopes = self.s.scopes.join(" ");
                let req = form_request(
                    self.s.devicecode_url(),
                    &[("client_id", &self.s.client_id), ("scope", &scopes)],
                );
                self.send(Purpose::DeviceCode, req);
            }
            AuthFlow::AuthorizationCode => {
                let state = self.random();
                let redirect = self.s.redirect_url.clone().unwrap_or_default();
                let url = format!(
                    "{}?client_id={}&response_type=code&redirect_uri={}&response_mode=query&scope={}&state={}",
                    self.s.authorize_url(),
                    wire::encode(&self.s.client_id),
                    wire::encode(&redirect),
                    wire::encode(&self.s.scopes.join(" ")),
                    state
                );
                self.out.push(Action::LoginStep(Some(LoginStep {
                    message: "Open the URL and sign in with the service account the connector should act as; the identity platform sends you back to the hub".into(),
                    url: Some(url.clone()),
                    user_code: None,
                    expires_at: None,
                })));
                self.log(
                    Level::Warn,
                    "login required: open the authorization URL shown in the connector status",
                );
                self.login = Login::AuthCode { state, url };
            }
            AuthFlow::ClientCredentials => {}
        }
    }

    pub(super) fn on_device_code(&mut self, result: Result<Response, String>, now: u64) {
        let resp = match result {
            Ok(r) if (200..300).contains(&r.status) => r,
            Ok(r) => {
                let e = OAuthError::parse(&r.body);
                self.login = Login::None;
                self.sign_in_refused(Slot::Primary, &e.text(r.status), now);
                return;
            }
            Err(e) => {
                self.login = Login::None;
                self.identity_unreachable(Slot::Primary, &e, now);
                return;
            }
        };
        let dc = match serde_json::from_slice::<DeviceCodeResponse>(&resp.body) {
            Ok(dc) => dc,
            Err(e) => {
                self.login = Login::None;
                self.sign_in_refused(
                    Slot::Primary,
                    &format!("unreadable device code answer: {e}"),
                    now,
                );
                return;
            }
        };
        let expires_at = now + dc.expires_in.unwrap_or(900) * 1000;
        let interval_ms = dc.interval.unwrap_or(5).max(1) * 1000;
        let message = dc.message.clone().unwrap_or_else(|| {
            format!(
                "To sign in, open {} and enter the code {}",
                dc.verification_uri, dc.user_code
            )
        });
        self.out.push(Action::LoginStep(Some(LoginStep {
            message: message.clone(),
            url: Some(dc.verification_uri.clone()),
            user_code: Some(dc.user_code.clone()),
            expires_at: Some(expires_at),
        })));
        self.log(
            Level::Warn,
            "login required: a device code is shown in the connector status",
        );
        self.login = Login::DeviceCode {
            device_code: dc.device_code,
            interval_ms,
            expires_at,
            message,
        };
        self.set_timer(TimerKey::DevicePoll, interval_ms);
    }

    /// Ask the token endpoint whether the operator has signed in.
    pub(super) fn device_poll(&mut self, now: u64) {
        let Login::DeviceCode {
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
            return;
        }
        let req = form_request(
            self.s.token_url(),
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", &self.s.client_id),
                ("device_code", device_code),
            ],
        );
        self.primary.inflight = true;
        self.send(Purpose::Token(Slot::Primary, Grant::DeviceCode), req);
    }

    /// `GET /auth/callback?code=...&state=...` from the identity platform.
    pub(super) fn on_auth_callback(&mut self, hook: &Hook<'_>) -> HookAnswer {
        let Login::AuthCode { state, .. } = &self.login else {
            return HookAnswer::html(409, "No sign-in is pending for this connector.");
        };
        if wire::query_param(hook.query, "state").as_deref() != Some(state.as_str()) {
            return HookAnswer::html(
                400,
                "This sign-in link is not the current one; open the URL in the connector status again.",
            );
        }
        if let Some(error) = wire::query_param(hook.query, "error") {
            let desc = wire::query_param(hook.query, "error_description").unwrap_or_default();
            let text = format!("sign-in failed: {error}: {desc}");
            self.log(Level::Warn, text.clone());
            return HookAnswer::html(400, &text);
        }
        let Some(code) = wire::query_param(hook.query, "code") else {
            return HookAnswer::html(400, "The redirect carries no authorization code.");
        };
        let scopes = self.s.scopes.join(" ");
        let redirect = self.s.redirect_url.clone().unwrap_or_default();
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("client_id", self.s.client_id.as_str()),
            ("code", code.as_str()),
            ("redirect_uri", redirect.as_str()),
            ("scope", scopes.as_str()),
        ];
        let secret = self.s.client_secret.clone();
        if let Some(secret) = secret.as_deref() {
            pairs.push(("client_secret", secret));
        }
        let req = form_request(self.s.token_url(), &pairs);
        self.primary.inflight = true;
        self.send(Purpose::Token(Slot::Primary, Grant::AuthorizationCode), req);
        HookAnswer::html(
            200,
            "Signed in. The presence hub is completing the sign-in; you can close this window.",
        )
    }

    pub(super) fn on_token(
        &mut self,
        slot: Slot,
        grant: Grant,
        result: Result<Response, String>,
        now: u64,
    ) {
        if let Some(t) = self.slot_mut(slot) {
            t.inflight = false;
        }
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                if grant == Grant::DeviceCode {
                    self.device_pending(0);
                }
                self.identity_unreachable(slot, &e, now);
                return;
            }
        };
        if (200..300).contains(&resp.status) {
            match serde_json::from_slice::<TokenResponse>(&resp.body) {
                Ok(tr) => self.got_tokens(slot, grant, tr, now),
                Err(e) => self.sign_in_refused(slot, &format!("unreadable token answer: {e}"), now),
            }
            return;
        }
        if resp.status >= 500 {
            if grant == Grant::DeviceCode {
                self.device_pending(0);
            }
            self.identity_unreachable(slot, &format!("HTTP {}", resp.status), now);
            return;
        }
        let e = OAuthError::parse(&resp.body);
        match (grant, e.error.as_str()) {
            (Grant::DeviceCode, "authorization_pending") => self.device_pending(0),
            (Grant::DeviceCode, "slow_down") => self.device_pending(5_000),
            (
                Grant::DeviceCode,
                "expired_token"
                | "code_expired"
                | "bad_verification_code"
                | "authorization_declined"
                | "access_denied",
            ) => {
                self.log(
                    Level::Warn,
                    format!("device sign-in ended ({}); asking for a new code", e.error),
                );
                self.login = Login::None;
            }
            (Grant::Refresh, _) => {
                // The refresh token is no longer good (revoked, expired,
                // password changed): only a new sign-in helps.
                let text = e.text(resp.status);
                self.log(
                    Level::Warn,
                    format!("refresh token refused ({text}); a new sign-in is needed"),
                );
                if let Some(t) = self.slot_mut(slot) {
                    t.tokens = None;
                    t.stale = false;
                }
                self.out.push(Action::KvDelete(keys::TOKEN_PRIMARY.into()));
                self.login = Login::None;
            }
            _ => self.sign_in_refused(slot, &e.text(resp.status), now),
        }
    }

    fn device_pending(&mut self, slower_ms: u64) {
        if let Login::DeviceCode { interval_ms, .. } = &mut self.login {
            *interval_ms += slower_ms;
            let wait = *interval_ms;
            self.set_timer(TimerKey::DevicePoll, wait);
        }
    }

    fn got_tokens(&mut self, slot: Slot, grant: Grant, tr: TokenResponse, now: u64) {
        let life = tr.expires_in.unwrap_or(3600).max(1) * 1000;
        let Some(t) = self.slot_mut(slot) else { return };
        let old_refresh = t.tokens.as_ref().and_then(|t| t.refresh.clone());
        let tokens = Tokens {
            access: tr.access_token,
            // Refresh tokens rotate; where none comes back the old one holds.
            refresh: tr.refresh_token.or(old_refresh),
            expires_at: now + life,
            obtained_at: now,
        };
        let refresh = refresh_at(&tokens);
        t.tokens = Some(tokens);
        t.stale = false;
        t.failures = 0;
        t.retry_at = 0;
        let key = t.key();
        let stored = t.stored();
        if let Some(bytes) = stored {
            self.out.push(Action::KvSet(key.into(), bytes));
        }
        self.set_timer(TimerKey::Token(slot), refresh.saturating_sub(now));
        if slot == Slot::Primary {
            self.auth_problem = None;
            if self.login != Login::None {
                self.login = Login::None;
                self.cancel_timer(TimerKey::DevicePoll);
                self.out.push(Action::LoginStep(None));
                self.log(Level::Info, "signed in");
            }
            if self.s.flow.delegated()
                && grant != Grant::Refresh
                && self
                    .primary
                    .tokens
                    .as_ref()
                    .is_some_and(|t| t.refresh.is_none())
            {
                self.log(
                    Level::Warn,
                    "no refresh token came back: add offline_access to the scopes, or the sign-in lasts only until the token expires",
                );
            }
        }
        self.log(
            Level::Debug,
            format!(
                "{slot:?} token obtained by {grant:?}, valid {} s",
                life / 1000
            ),
        );
    }

    /// The identity platform refused: wrong secret, unknown tenant or app,
    /// missing consent. Reported as forbidden; asked again after a while in
    /// case an administrator fixes it without touching the configuration.
    fn sign_in_refused(&mut self, slot: Slot, text: &str, now: u64) {
        let what = match slot {
            Slot::Primary => "sign-in",
            Slot::App => "application sign-in (for write-back)",
        };
        let detail = format!("the Microsoft identity platform refused the {what}: {text}");
        self.log(Level::Error, detail.clone());
        if slot == Slot::Primary {
            self.auth_problem = Some((ConnectorStatus::Forbidden, detail));
        } else {
            self.forbidden.insert(super::OpClass::Write, detail);
        }
        let wait = 5 * 60_000;
        if let Some(t) = self.slot_mut(slot) {
            t.retry_at = now + wait;
        }
        self.set_timer(TimerKey::Token(slot), wait);
    }

    fn identity_unreachable(&mut self, slot: Slot, text: &str, now: u64) {
        let Some(t) = self.slot_mut(slot) else { return };
        t.failures = t.failures.saturating_add(1);
        let wait = (1000u64 << (t.failures - 1).min(6)).min(super::MAX_BACKOFF_MS);
        t.retry_at = now + wait;
        let usable = t.usable(now).is_some();
        let detail = format!(
            "cannot reach the Microsoft identity platform: {text}; retrying in {} s",
            wait / 1000
        );
        self.log(Level::Warn, detail.clone());
        if slot == Slot::Primary && !usable {
            self.auth_problem = Some((ConnectorStatus::ConnectionError, detail));
        }
        self.set_timer(TimerKey::Token(slot), wait);
    }

    /// Graph answered 401.
    pub(super) fn unauthorized(&mut self, slot: Slot, msg: &str, now: u64) {
        let Some(t) = self.slot_mut(slot) else { return };
        t.rejected += 1;
        // A token Graph refuses is refreshed once; a fresh one refused again
        // means the token is wrong for Graph (audience, tenant, consent).
        t.stale = true;
        let rejected = t.rejected;
        if rejected > 2 {
            t.retry_at = now + 60_000;
            self.set_timer(TimerKey::Token(slot), 60_000);
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
        self.primary.refresh_due = true;
        self.primary.stale = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(obtained: u64, life: u64) -> Tokens {
        Tokens {
            access: "a".into(),
            refresh: None,
            expires_at: obtained + life,
            obtained_at: obtained,
        }
    }

    #[test]
    fn refresh_five_minutes_ahead_or_at_two_thirds() {
        let hour = tokens(1_000, 3_600_000);
        assert_eq!(refresh_at(&hour), 1_000 + 3_300_000);
        let short = tokens(1_000, 6_000);
        assert_eq!(refresh_at(&short), 1_000 + 4_000);
    }

    #[test]
    fn usable_until_shortly_before_expiry() {
        let mut slot = TokenSlot {
            slot: Slot::Primary,
            tokens: Some(tokens(0, 3_600_000)),
            fingerprint: String::new(),
            scopes: vec![],
            inflight: false,
            stale: false,
            refresh_due: false,
            rejected: 0,
            retry_at: 0,
            failures: 0,
        };
        assert!(slot.usable(3_500_000).is_some());
        assert!(slot.usable(3_570_001).is_none(), "30 s of skew");
        slot.stale = true;
        assert!(slot.usable(0).is_none());
    }
}
