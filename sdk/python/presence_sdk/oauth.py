"""OAuth 2.0 client credentials (RFC 6749 §4.4) with Basic client
authentication (§2.3.1), the token kept in the instance's kv store (so a
restart does not sign in again) and refreshed ahead of its expiry.

    self.auth = ClientCredentials(token_url, cfg.client_id, cfg.client_secret)
    if not self.auth.load(cx):
        self.auth.request(cx)
    ...
    def on_http(self, cx, key, outcome):
        if key == self.auth.request_key:
            try:
                self.auth.accept(cx, outcome)   # stores it, sets the refresh timer
            except OAuthError as e:
                cx.status("forbidden", str(e))
    def on_timer(self, cx, key):
        if key == self.auth.timer_key:
            self.auth.request(cx)

Tokens and secrets are never logged.
"""

import base64

from .connector import Response, Retry
from .errors import HttpError


class OAuthError(Exception):
    """The token endpoint refused: `error` (RFC 6749 §5.2: invalid_client,
    invalid_grant, unauthorized_client, invalid_scope, ...), its
    `description`, the HTTP `status` (None when the request failed)."""

    def __init__(self, error, description, status):
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description
        self.status = status


class ClientCredentials:
    """A client-credentials token for `client_id` at `token_url`. `kv_key`
    names the stored token; the refresh is due at `margin` of the lifetime
    before the expiry (10 %, at least 60 s)."""

    request_key = ("__oauth__", "token")
    timer_key = ("__oauth__", "refresh")

    def __init__(self, token_url, client_id, client_secret, scope=None, kv_key="oauth/token"):
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret
        self.scope = scope
        self.kv_key = kv_key
        self.access_token = None
        self.expires_at = 0

    def __repr__(self):
        return f"ClientCredentials({self.token_url!r}, {self.client_id!r}, <secret>)"

    def load(self, cx):
        """Take the stored token if it belongs to this client and endpoint
        and is not due for refresh; sets the refresh timer. True when one
        was taken."""
        doc = cx.kv_get_json(self.kv_key)
        if not isinstance(doc, dict) or doc.get("client_id") != self.client_id \
                or doc.get("token_url") != self.token_url:
            return False
        token, expires_at, issued_at = doc.get("access_token"), doc.get("expires_at"), doc.get("issued_at", 0)
        if not isinstance(token, str) or not isinstance(expires_at, int):
            return False
        self.access_token, self.expires_at = token, expires_at
        due = self._refresh_at(issued_at)
        if due <= cx.now():
            self.access_token = None
            return False
        cx.set_timer(self.timer_key, due - cx.now())
        return True

    def _refresh_at(self, issued_at):
        life = max(0, self.expires_at - issued_at)
        return self.expires_at - max(60_000, life // 10)

    def valid(self, cx):
        return self.access_token is not None and cx.now() < self.expires_at

    def header(self):
        """The `Authorization: Bearer` header for API requests."""
        return ("Authorization", f"Bearer {self.access_token}")

    def request(self, cx):
        """Ask for a token; the answer comes to `on_http(request_key)`. 429
        and 503 are retried after their Retry-After."""
        basic = base64.b64encode(f"{self.client_id}:{self._secret}".encode()).decode()
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        cx.http(self.request_key, "POST", self.token_url,
                headers=[("Authorization", f"Basic {basic}"), ("Accept", "application/json")],
                form=form, retry=Retry())

    def forget(self, cx):
        """Drop the token (after the API refused it with 401)."""
        self.access_token = None
        cx.kv_delete(self.kv_key)

    def accept(self, cx, outcome):
        """Take the token endpoint's answer: stores the token, sets the
        refresh timer and returns the token; raises `OAuthError` for an
        error answer and `HttpError` when the request failed."""
        if isinstance(outcome, HttpError):
            raise outcome
        assert isinstance(outcome, Response)
        doc = outcome.json()
        if outcome.status != 200:
            err = doc.get("error") if isinstance(doc, dict) else None
            desc = None
            if isinstance(doc, dict):
                desc = doc.get("error_description") or doc.get("description") or doc.get("message")
            raise OAuthError(err or f"HTTP {outcome.status}", desc, outcome.status)
        if not isinstance(doc, dict) or not isinstance(doc.get("access_token"), str) \
                or str(doc.get("token_type", "")).lower() != "bearer":
            raise OAuthError("invalid_response", "the token answer has no bearer access_token", outcome.status)
        expires_in = doc.get("expires_in")
        if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in <= 0:
            expires_in = 3600
        now = cx.now()
        self.access_token = doc["access_token"]
        self.expires_at = now + expires_in * 1000
        cx.kv_set_json(self.kv_key, {
            "client_id": self.client_id, "token_url": self.token_url,
            "access_token": self.access_token, "issued_at": now, "expires_at": self.expires_at,
        })
        cx.set_timer(self.timer_key, self._refresh_at(now) - now)
        return self.access_token
