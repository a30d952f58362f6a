"""Run a connector under plain CPython with scripted fakes: no wasm, no hub.

    h = Harness(GenesysConnector, now=1_700_000_000_000)
    h.configure({"client_id": "id", "client_secret": "s"})
    req = h.take_request("POST", "https://login.mypurecloud.com/oauth/token")
    h.respond(req, 200, {"access_token": "t", "token_type": "bearer", "expires_in": 86400})
    h.advance(30_000)                       # fires due timers on the fake clock
    ws = h.socket("wss://streaming.example/channels/c1")
    h.ws_open(ws); h.ws_text(ws, '{"topicName": ...}')
    assert h.presence("user-1").rich_presence.availability == "busy"

Everything the connector asks for is recorded: `requests` (open and
answered), `sockets` (with the text they were sent), `timers`, `kv`,
`reports` (("presence", Update), ("status", status, detail), ...).
"""

import json

from .connector import Host, Response, Runtime
from .errors import HostError, HttpError
from .model import CloseInfo


class FakeRequest:
    """A request the connector sent: `handle`, `method`, `url`, `headers`,
    `body`, `answered`. `json()` parses the body; `query()` the URL's query."""

    def __init__(self, handle, request):
        self.handle = handle
        self.method = request.method
        self.url = request.url
        self.headers = list(request.headers)
        self.body = request.body
        self.answered = False
        self.cancelled = False

    def header(self, name):
        n = name.lower()
        return next((v for k, v in self.headers if k.lower() == n), None)

    def json(self):
        return json.loads(self.body.decode()) if self.body else None

    def path(self):
        rest = self.url.split("://", 1)[-1]
        p = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
        return p.split("?", 1)[0]

    def query(self):
        q = self.url.split("?", 1)[1] if "?" in self.url else ""
        return dict(p.split("=", 1) if "=" in p else (p, "") for p in q.split("&") if p)

    def __repr__(self):
        return f"<{self.method} {self.url}{' answered' if self.answered else ''}>"


class FakeSocket:
    """A WebSocket the connector opened: `url`, `headers`, `sent` (texts),
    `open`, `closed` ((code, reason) once the connector closed it)."""

    def __init__(self, handle, url, headers, ping):
        self.handle = handle
        self.url = url
        self.headers = headers
        self.ping_interval_ms = ping
        self.sent = []
        self.open = False
        self.closed = None

    def __repr__(self):
        return f"<ws {self.url}>"


class FakeHost(Host):
    """In-memory host: a controllable clock, timers, HTTP, WebSockets, kv
    and the reports. `refuse_http` (a predicate on the URL) makes the host
    refuse a request as `not-granted`."""

    def __init__(self, now, instance_id="test"):
        self.clock = now
        self.id = instance_id
        self.next_handle = 1
        self.timers = {}      # handle -> due
        self.requests = []
        self.sockets = []
        self.kv = {}
        self.reports = []
        self.logs = []
        self.refuse_http = None

    def _handle(self):
        h = self.next_handle
        self.next_handle += 1
        return h

    def now(self):
        return self.clock

    def set_timer(self, after_ms):
        h = self._handle()
        self.timers[h] = self.clock + after_ms
        return h

    def cancel_timer(self, handle):
        self.timers.pop(handle, None)

    def http_send(self, request):
        if self.refuse_http and self.refuse_http(request.url):
            raise HostError("not-granted", request.url)
        h = self._handle()
        self.requests.append(FakeRequest(h, request))
        return h

    def http_cancel(self, handle):
        for r in self.requests:
            if r.handle == handle:
                r.cancelled = True

    def ws_connect(self, url, headers, ping, pong, connect_timeout):
        h = self._handle()
        self.sockets.append(FakeSocket(h, url, headers, ping))
        return h

    def _socket(self, handle):
        s = next((s for s in self.sockets if s.handle == handle and s.closed is None), None)
        if s is None:
            raise HostError("unknown-handle", str(handle))
        return s

    def ws_send_text(self, handle, text):
        self._socket(handle).sent.append(text)

    def ws_send_binary(self, handle, data):
        self._socket(handle).sent.append(data)

    def ws_close(self, handle, code, reason):
        for s in self.sockets:
            if s.handle == handle and s.closed is None:
                s.closed = (code, reason)

    def kv_get(self, key):
        return self.kv.get(key)

    def kv_set(self, key, value):
        self.kv[key] = bytes(value)

    def kv_delete(self, key):
        self.kv.pop(key, None)

    def kv_list(self, prefix):
        return sorted(k for k in self.kv if k.startswith(prefix))

    def random_bytes(self, n):
        return bytes(range(n % 256)) if n < 256 else bytes(n)

    def instance_id(self):
        return self.id

    def log(self, level, message):
        self.logs.append((level, message))

    def report_presence(self, update):
        self.reports.append(("presence", update))

    def report_endpoint_state(self, endpoint, state, detail):
        self.reports.append(("endpoint-state", endpoint, state, detail))

    def report_status(self, status, detail):
        self.reports.append(("status", status, detail))

    def report_directory(self, entries, complete):
        self.reports.append(("directory", list(entries), complete))

    def report_write_outcome(self, write_id, outcome):
        self.reports.append(("write-outcome", write_id, outcome))


class Harness:
    """One connector class under a `FakeHost`, driven like the hub drives
    it. Methods raise AssertionError with what was there when an expected
    request or socket is missing."""

    def __init__(self, cls, now=1_700_000_000_000, kv=None):
        self.host = FakeHost(now)
        if kv:
            self.host.kv.update(kv)
        self.rt = Runtime(cls, self.host)

    @property
    def connector(self):
        return self.rt.connector

    # ----- driving
    def configure(self, values):
        self.rt.configure(values)

    def watch(self, *endpoints):
        self.rt.watch(endpoints)

    def unwatch(self, *endpoints):
        self.rt.unwatch(endpoints)

    def shutdown(self):
        self.rt.shutdown()

    def advance(self, ms):
        """Move the clock by `ms`, firing due timers in deadline order."""
        end = self.host.clock + ms
        for _ in range(100_000):
            due = [(d, h) for h, d in self.host.timers.items() if d <= end]
            if not due:
                break
            d, h = min(due)
            self.host.clock = max(self.host.clock, d)
            del self.host.timers[h]
            self.rt.timer_fired(h)
        self.host.clock = end

    # ----- HTTP
    def open_requests(self):
        return [r for r in self.host.requests if not r.answered and not r.cancelled]

    def take_request(self, method, url_prefix):
        """The oldest open request with this method whose URL starts with
        `url_prefix`."""
        for r in self.open_requests():
            if r.method == method and r.url.startswith(url_prefix):
                return r
        raise AssertionError(f"no open {method} {url_prefix}...; open: {self.open_requests()}")

    def respond(self, request, status, body=None, headers=()):
        """Answer `request`; `body` a dict/list (sent as JSON), bytes or None."""
        hdrs = list(headers)
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            hdrs.append(("content-type", "application/json"))
        else:
            data = body or b""
        request.answered = True
        self.rt.http_result(request.handle, Response(status, hdrs, data))

    def fail(self, request, kind="refused", detail="connection refused"):
        request.answered = True
        self.rt.http_result(request.handle, HttpError("failed", f"{kind}: {detail}"))

    # ----- WebSockets
    def socket(self, url_prefix="", open_only=True):
        """The newest socket whose URL starts with `url_prefix`."""
        for s in reversed(self.host.sockets):
            if s.url.startswith(url_prefix) and (not open_only or s.closed is None):
                return s
        raise AssertionError(f"no socket {url_prefix}...; sockets: {self.host.sockets}")

    def ws_open(self, sock):
        sock.open = True
        self.rt.ws_opened(sock.handle, [])

    def ws_text(self, sock, text):
        self.rt.ws_message(sock.handle, text if isinstance(text, str) else json.dumps(text))

    def ws_close(self, sock, code=1000, reason="", failure=None):
        sock.closed = sock.closed or (code, reason)
        self.rt.ws_closed(sock.handle, CloseInfo(code, reason, failure))

    # ----- what was reported
    def presences(self, endpoint):
        return [r[1] for r in self.host.reports if r[0] == "presence" and r[1].endpoint == endpoint]

    def presence(self, endpoint):
        """The last update reported for `endpoint` (AssertionError if none)."""
        p = self.presences(endpoint)
        assert p, f"no presence reported for {endpoint}; reports: {self.host.reports}"
        return p[-1]

    def status(self):
        """The last (status, detail) reported, or None."""
        s = [r[1:] for r in self.host.reports if r[0] == "status"]
        return s[-1] if s else None

    def endpoint_state(self, endpoint):
        s = [r[2:] for r in self.host.reports if r[0] == "endpoint-state" and r[1] == endpoint]
        return s[-1] if s else None

    def directory(self):
        """Every directory entry reported, and whether the last page said complete."""
        pages = [r for r in self.host.reports if r[0] == "directory"]
        return [e for p in pages for e in p[1]], bool(pages) and pages[-1][2]
