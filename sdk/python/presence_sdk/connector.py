"""The `Connector` base class, its effects context `Cx` and the `Runtime`
that owns the instance.

A connector is a plain Python object. It never calls the host itself: it
asks its `Cx` to set a timer, send a request, open a WebSocket or report
something. Timers, requests and WebSockets are named by keys of the
connector's own choosing (any hashable: `"token"`, `("presence", user_id)`);
the runtime maps keys to the host's handles, so what comes back (a timer
firing, a response, a message) is delivered by key, and setting a key again
replaces the earlier timer, request or socket.

Every host call goes through a `Host` object: `presence_sdk.component`
implements it over the WIT imports, `presence_sdk.testkit` over in-memory
fakes, so the same connector runs under plain CPython in its tests.
"""

import json
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from . import config as _config
from .backoff import Backoff
from .errors import ConnectorError, HostError, HttpError, NotConfigured, Unsupported
from .model import CloseInfo, WebhookResponse
from .timeutil import retry_after_ms


# --------------------------------------------------------------------- HTTP

@dataclass
class Request:
    """An outgoing HTTP request; `timeout_ms` None means the host's 30 s."""
    method: str
    url: str
    headers: List[Tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    timeout_ms: Optional[int] = None

    def header(self, name):
        n = name.lower()
        return next((v for k, v in self.headers if k.lower() == n), None)


@dataclass
class Response:
    """An HTTP answer: `status`, `headers` [(name, value)], `body` bytes."""
    status: int
    headers: List[Tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name):
        """The first value of header `name` (case-insensitive), or None."""
        n = name.lower()
        return next((v for k, v in self.headers if k.lower() == n), None)

    def json(self):
        """The body as JSON; None when it is empty or not JSON."""
        try:
            return json.loads(self.body.decode("utf-8")) if self.body else None
        except (UnicodeDecodeError, ValueError):
            return None

    @property
    def ok(self):
        return 200 <= self.status < 300


@dataclass
class Retry:
    """Retry policy for one request: on a status in `statuses` (429 and 503
    by default) the runtime waits the answer's `Retry-After`, else the
    backoff's next delay, and sends the same request again, at most
    `attempts` times in all; then the last answer is delivered. While it
    waits, `Connector.on_throttled` is told (the default reports the
    `throttled` status)."""
    attempts: int = 5
    statuses: Tuple[int, ...] = (429, 503)
    backoff: Backoff = field(default_factory=lambda: Backoff(1_000, 60_000))


# ---------------------------------------------------------------- connector

class Connector:
    """Base class of a connector. Class attributes describe it:

    - `NAME`, `VERSION`, `DESCRIPTION`: shown to operators;
    - `CONFIG`: a list of `config.Field`, parsed into the `Config` given to
      `__init__` and `reconfigure`;
    - `ENDPOINT_KINDS`: list of `model.EndpointKind`, the first is the default;
    - `CAPABILITIES`: a `model.Capabilities` (read-only by default).

    `__init__(self, cx, config)` builds the connector from its first valid
    configuration (raise `InvalidConfig` to refuse it). Every other method
    has a default: events it does not expect are ignored, webhooks answer
    404, writes are refused as unsupported.
    """

    NAME = "connector"
    VERSION = "0.0.0"
    DESCRIPTION = ""
    CONFIG = []
    ENDPOINT_KINDS = []
    CAPABILITIES = None

    def __init__(self, cx, config):
        pass

    def reconfigure(self, cx, config):
        """A changed configuration. The default replaces the connector: this
        one says goodbye (`on_shutdown`), its timers and sockets are dropped,
        requests in flight forgotten, and the class builds the next one.
        Return the connector to keep (the default returns the new one)."""
        self.on_shutdown(cx)
        cx.reset()
        return type(self)(cx, config)

    def on_timer(self, cx, key):
        """The timer set with `cx.set_timer(key, ...)` is due."""

    def on_http(self, cx, key, outcome):
        """The outcome of `cx.http(key, ...)`: a `Response`, or an `HttpError`
        (refused by the host, or failed: dns, refused, timeout, ...)."""

    def on_throttled(self, cx, key, wait_ms, response):
        """A request with a `Retry` policy got `response` (429, 503) and is
        sent again in `wait_ms`. The default reports `throttled`."""
        cx.status("throttled", f"the platform answered {response.status}; retrying in {wait_ms // 1000} s")

    def on_ws_open(self, cx, key, headers):
        """The WebSocket opened with `cx.ws_connect(key, ...)` is up."""

    def on_ws_message(self, cx, key, payload):
        """A message arrived: `str` for text, `bytes` for binary."""

    def on_ws_closed(self, cx, key, close):
        """The WebSocket closed, failed to connect or was refused by the host
        (`close.failure` says why); a `model.CloseInfo`."""

    def on_shutdown(self, cx):
        """The instance is stopping: unsubscribe, say goodbye."""

    def webhook(self, cx, request):
        """Answer a request on `/hooks/{instance}/...`; the default is 404."""
        return WebhookResponse(404, [("content-type", "text/plain")], b"no webhooks here")

    def watch(self, cx, endpoints):
        """Start watching these endpoints (in addition to those watched)."""

    def unwatch(self, cx, endpoints):
        """Stop watching these endpoints."""

    def write(self, cx, request):
        """Start a write-back; the default refuses it as unsupported."""
        raise Unsupported("this connector cannot write presence")


# ---------------------------------------------------------------- the host

class Host:
    """Every host call the SDK makes. Handles are ints, unique per kind.
    Methods that the WIT declares fallible raise `HostError`."""

    def now(self): raise NotImplementedError
    def set_timer(self, after_ms): raise NotImplementedError
    def cancel_timer(self, handle): raise NotImplementedError
    def http_send(self, request): raise NotImplementedError
    def http_cancel(self, handle): raise NotImplementedError
    def ws_connect(self, url, headers, ping_interval_ms, pong_timeout_ms, connect_timeout_ms): raise NotImplementedError
    def ws_send_text(self, handle, text): raise NotImplementedError
    def ws_send_binary(self, handle, data): raise NotImplementedError
    def ws_close(self, handle, code, reason): raise NotImplementedError
    def kv_get(self, key): raise NotImplementedError
    def kv_set(self, key, value): raise NotImplementedError
    def kv_delete(self, key): raise NotImplementedError
    def kv_list(self, prefix): raise NotImplementedError
    def random_bytes(self, n): raise NotImplementedError
    def instance_id(self): raise NotImplementedError
    def log(self, level, message): raise NotImplementedError
    def report_presence(self, update): raise NotImplementedError
    def report_endpoint_state(self, endpoint, state, detail): raise NotImplementedError
    def report_status(self, status, detail): raise NotImplementedError
    def report_directory(self, entries, complete): raise NotImplementedError
    def report_write_outcome(self, write_id, outcome): raise NotImplementedError


class Cx:
    """What a connector may ask for. Keys are the connector's own names."""

    def __init__(self, runtime):
        self._rt = runtime
        self._host = runtime.host

    # time and randomness
    def now(self):
        """Wall clock, Unix milliseconds."""
        return self._host.now()

    def random_bytes(self, n):
        return self._host.random_bytes(n)

    def instance_id(self):
        return self._host.instance_id()

    # timers
    def set_timer(self, key, after_ms):
        """Fire `on_timer(key)` once after `after_ms`; setting a key again
        moves its deadline."""
        self._rt.set_timer(key, after_ms)

    def cancel_timer(self, key):
        self._rt.cancel_timer(key)

    def has_timer(self, key):
        return key in self._rt.timers

    # HTTP
    def http(self, key, method, url, headers=(), body=b"", json_body=None, form=None,
             timeout_ms=None, retry=None):
        """Send a request; `on_http(key, outcome)` follows. `json_body` sends
        JSON (with its content type), `form` a dict as
        application/x-www-form-urlencoded; `retry` a `Retry` policy. A key
        still in flight is cancelled and replaced."""
        headers = list(headers)
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":")).encode()
            headers.append(("content-type", "application/json"))
        elif form is not None:
            body = form_encode(form).encode()
            headers.append(("content-type", "application/x-www-form-urlencoded"))
        self._rt.http(key, Request(method, url, headers, body, timeout_ms), retry)

    def cancel_http(self, key):
        self._rt.cancel_http(key)

    def in_flight(self, key):
        return key in self._rt.requests or key in self._rt.retrying

    # WebSockets
    def ws_connect(self, key, url, headers=(), ping_interval_ms=None, pong_timeout_ms=None,
                   connect_timeout_ms=None):
        """Open a WebSocket; `on_ws_open` or `on_ws_closed` follows. A socket
        already open under `key` is closed first."""
        self._rt.ws_connect(key, url, list(headers), ping_interval_ms, pong_timeout_ms, connect_timeout_ms)

    def ws_send(self, key, payload):
        """Send text (`str`) or binary (`bytes`); False when `key` has no
        open socket or the host refused."""
        return self._rt.ws_send(key, payload)

    def ws_close(self, key, code=1000, reason=""):
        self._rt.ws_close(key, code, reason)

    def ws_is_open(self, key):
        return key in self._rt.sockets

    # key-value store
    def kv_get(self, key):
        """bytes or None; raises `HostError`."""
        return self._host.kv_get(key)

    def kv_set(self, key, value):
        self._host.kv_set(key, value if isinstance(value, bytes) else value.encode())

    def kv_delete(self, key):
        self._host.kv_delete(key)

    def kv_list(self, prefix):
        return self._host.kv_list(prefix)

    def kv_get_json(self, key):
        raw = self._host.kv_get(key)
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    def kv_set_json(self, key, value):
        self._host.kv_set(key, json.dumps(value, separators=(",", ":")).encode())

    # reports
    def presence(self, update):
        """Report a `model.Update`."""
        self._host.report_presence(update)

    def endpoint_state(self, endpoint, state, detail=None):
        self._host.report_endpoint_state(endpoint, state, detail)

    def status(self, status, detail=None):
        """Report the instance's status (a `model.CONNECTOR_STATUS` name);
        a repeat of the last status and detail is not sent again."""
        if self._rt.last_status != (status, detail):
            self._rt.last_status = (status, detail)
            self._host.report_status(status, detail)

    def directory(self, entries, complete):
        """Report a page of `model.DirectoryEntry`; `complete` on the last."""
        self._host.report_directory(entries, complete)

    def write_outcome(self, write_id, outcome):
        self._host.report_write_outcome(write_id, outcome)

    # logging
    def log(self, level, message):
        self._host.log(level, message)

    def debug(self, message):
        self._host.log("debug", message)

    def info(self, message):
        self._host.log("info", message)

    def warn(self, message):
        self._host.log("warn", message)

    def error(self, message):
        self._host.log("error", message)

    def reset(self):
        """Drop every timer and WebSocket, forget requests in flight."""
        self._rt.reset()


def form_encode(pairs):
    """A dict as application/x-www-form-urlencoded (RFC 3986 unreserved
    characters kept, space as %20)."""
    return "&".join(f"{quote(str(k))}={quote(str(v))}" for k, v in pairs.items())


_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def quote(text):
    """Percent-encode everything but RFC 3986 unreserved characters."""
    return "".join(chr(b) if b in _UNRESERVED else "%%%02X" % b for b in text.encode("utf-8"))


# ------------------------------------------------------------------ runtime

class _RetryTimer:
    """Internal timer key: the resend of a throttled request."""

    def __init__(self, key):
        self.key = key

    def __hash__(self):
        return hash(("__retry__", self.key))

    def __eq__(self, other):
        return isinstance(other, _RetryTimer) and other.key == self.key


class Runtime:
    """Owns one connector instance and the key ↔ handle maps. The component
    bridge and the test kit call its entry points with plain values."""

    def __init__(self, cls, host):
        self.cls = cls
        self.host = host
        self.connector = None
        self.timers = {}          # key -> handle
        self.timer_keys = {}      # handle -> key
        self.requests = {}        # key -> (handle, request, retry, attempt)
        self.request_keys = {}    # handle -> key
        self.retrying = {}        # key -> (request, retry, attempt)
        self.sockets = {}         # key -> handle
        self.socket_keys = {}     # handle -> key
        self.deferred = []        # (kind, key, value) delivered after the call
        self.last_status = None
        self.cx = Cx(self)

    # ----- describe / configure
    def describe(self):
        return self.cls

    def configure(self, entries):
        """`entries` {name: value}. Raises ConnectorError."""
        cfg = _config.parse(self.cls.CONFIG, entries)
        if self.connector is None:
            self.connector = self.cls(self.cx, cfg)
        else:
            self.connector = self.connector.reconfigure(self.cx, cfg) or self.connector
        self._drain()

    def _need(self):
        if self.connector is None:
            raise NotConfigured("not configured")
        return self.connector

    # ----- events (plain values)
    def timer_fired(self, handle):
        key = self.timer_keys.pop(handle, None)
        if key is None:
            return
        self.timers.pop(key, None)
        if isinstance(key, _RetryTimer):
            req, retry, attempt = self.retrying.pop(key.key)
            self._send(key.key, req, retry, attempt)
        elif self.connector is not None:
            self.connector.on_timer(self.cx, key)
        self._drain()

    def http_result(self, handle, outcome):
        """`outcome`: a `Response` or an `HttpError`."""
        key = self.request_keys.pop(handle, None)
        if key is None:
            return
        _, req, retry, attempt = self.requests.pop(key)
        if (retry is not None and isinstance(outcome, Response) and outcome.status in retry.statuses
                and attempt + 1 < retry.attempts):
            wait = retry_after_ms(outcome.header("retry-after"), self.host.now())
            if wait is None:
                wait = retry.backoff.delay(attempt)
            self.retrying[key] = (req, retry, attempt + 1)
            self.set_timer(_RetryTimer(key), wait)
            if self.connector is not None:
                self.connector.on_throttled(self.cx, key, wait, outcome)
        elif self.connector is not None:
            self.connector.on_http(self.cx, key, outcome)
        self._drain()

    def ws_opened(self, handle, headers):
        key = self.socket_keys.get(handle)
        if key is not None and self.connector is not None:
            self.connector.on_ws_open(self.cx, key, headers)
        self._drain()

    def ws_message(self, handle, payload):
        key = self.socket_keys.get(handle)
        if key is not None and self.connector is not None:
            self.connector.on_ws_message(self.cx, key, payload)
        self._drain()

    def ws_closed(self, handle, close):
        key = self.socket_keys.pop(handle, None)
        if key is None:
            return
        self.sockets.pop(key, None)
        if self.connector is not None:
            self.connector.on_ws_closed(self.cx, key, close)
        self._drain()

    def shutdown(self):
        if self.connector is not None:
            self.connector.on_shutdown(self.cx)
        self._drain()

    def webhook(self, request):
        if self.connector is None:
            return WebhookResponse(503, [("content-type", "text/plain")], b"not configured")
        r = self.connector.webhook(self.cx, request)
        self._drain()
        return r

    def watch(self, endpoints):
        self._need().watch(self.cx, list(endpoints))
        self._drain()

    def unwatch(self, endpoints):
        self._need().unwatch(self.cx, list(endpoints))
        self._drain()

    def write(self, request):
        self._need().write(self.cx, request)
        self._drain()

    # ----- effects
    def set_timer(self, key, after_ms):
        self.cancel_timer(key)
        h = self.host.set_timer(max(0, int(after_ms)))
        self.timers[key] = h
        self.timer_keys[h] = key

    def cancel_timer(self, key):
        h = self.timers.pop(key, None)
        if h is not None:
            self.timer_keys.pop(h, None)
            self.host.cancel_timer(h)

    def http(self, key, req, retry):
        self.cancel_http(key)
        self._send(key, req, retry, 0)

    def _send(self, key, req, retry, attempt):
        try:
            h = self.host.http_send(req)
        except HostError as e:
            self.deferred.append(("http", key, HttpError("refused", str(e))))
            return
        self.requests[key] = (h, req, retry, attempt)
        self.request_keys[h] = key

    def cancel_http(self, key):
        entry = self.requests.pop(key, None)
        if entry is not None:
            self.request_keys.pop(entry[0], None)
            self.host.http_cancel(entry[0])
        if self.retrying.pop(key, None) is not None:
            self.cancel_timer(_RetryTimer(key))

    def ws_connect(self, key, url, headers, ping, pong, connect_timeout):
        self.ws_close(key, 1000, "replaced")
        try:
            h = self.host.ws_connect(url, headers, ping, pong, connect_timeout)
        except HostError as e:
            self.deferred.append(("ws", key, CloseInfo(None, "", f"refused by the host: {e}")))
            return
        self.sockets[key] = h
        self.socket_keys[h] = key

    def ws_send(self, key, payload):
        h = self.sockets.get(key)
        if h is None:
            return False
        try:
            if isinstance(payload, str):
                self.host.ws_send_text(h, payload)
            else:
                self.host.ws_send_binary(h, payload)
        except HostError:
            return False
        return True

    def ws_close(self, key, code, reason):
        h = self.sockets.pop(key, None)
        if h is not None:
            self.socket_keys.pop(h, None)
            self.host.ws_close(h, code, reason)

    def reset(self):
        for key in list(self.timers):
            self.cancel_timer(key)
        for key in list(self.requests):
            self.cancel_http(key)
        self.retrying.clear()
        for key in list(self.sockets):
            self.ws_close(key, 1001, "going away")
        self.deferred.clear()

    def _drain(self):
        # Refusals are delivered after the method that caused them returns,
        # like any other outcome; bounded, since a handler may cause more.
        for _ in range(1000):
            if not self.deferred or self.connector is None:
                return
            kind, key, value = self.deferred.pop(0)
            if kind == "http":
                self.connector.on_http(self.cx, key, value)
            else:
                self.connector.on_ws_closed(self.cx, key, value)
