"""The Python SDK's own tests, under plain CPython: `cd sdk/python &&
python3 -m unittest -v`."""

import json
import unittest

from presence_sdk import (Choice, ClientCredentials, Connector, Field, HttpError, InvalidConfig, OAuthError,
                          Retry, Update, WebhookRequest, iso_ms, retry_after_ms)
from presence_sdk.config import parse
from presence_sdk.testkit import Harness


class Echo(Connector):
    """A small connector: polls a URL on a timer, keyed requests and sockets."""
    CONFIG = [
        Field("url", "URL", "what to poll", kind="url", required=True),
        Field("every", "Every (s)", "poll interval", kind="integer", default=30, min=1, max=3600),
        Field("mode", "Mode", "how", kind=Choice(["a", "b"]), default="a"),
        Field("token", "Token", "secret", secret=True),
    ]

    def __init__(self, cx, cfg):
        self.cfg = cfg
        self.seen = []
        cx.set_timer("poll", cfg.every * 1000)

    def on_timer(self, cx, key):
        self.seen.append(("timer", key))
        cx.http(("get", 1), "GET", self.cfg.url, retry=Retry(attempts=3))
        cx.set_timer("poll", self.cfg.every * 1000)

    def on_http(self, cx, key, outcome):
        self.seen.append(("http", key, outcome.status if not isinstance(outcome, HttpError) else outcome.kind))
        if not isinstance(outcome, HttpError) and outcome.ok:
            cx.presence(Update("e1").rich("busy", note=outcome.json()["note"]))
            cx.ws_connect("live", "wss://example.com/live")

    def on_ws_message(self, cx, key, payload):
        self.seen.append(("ws", key, payload))
        cx.ws_send(key, "ack")


class ConfigTests(unittest.TestCase):
    def test_defaults_kinds_and_errors_name_the_field(self):
        c = parse(Echo.CONFIG, {"url": "https://x.example"})
        self.assertEqual((c.url, c.every, c.mode, c.token), ("https://x.example", 30, "a", None))
        for entries, field in [({}, "url"), ({"url": "ftp://x"}, "url"), ({"url": "http://x", "every": 0}, "every"),
                               ({"url": "http://x", "mode": "c"}, "mode"), ({"url": "http://x", "nope": 1}, "nope"),
                               ({"url": "http://x", "every": True}, "every")]:
            with self.assertRaises(InvalidConfig) as e:
                parse(Echo.CONFIG, entries)
            self.assertEqual(e.exception.field, field, entries)


class RuntimeTests(unittest.TestCase):
    def test_keys_map_to_handles_and_retry_after_is_honoured(self):
        h = Harness(Echo, now=1_000_000)
        h.configure({"url": "https://x.example/p", "every": 10})
        h.advance(9_999)
        self.assertEqual(h.open_requests(), [])
        h.advance(1)
        r = h.take_request("GET", "https://x.example/p")
        h.respond(r, 429, {"message": "slow down"}, headers=[("Retry-After", "5")])
        self.assertEqual(h.status()[0], "throttled")
        self.assertNotIn(("http", ("get", 1), 429), h.connector.seen, "the 429 is not delivered while retrying")
        h.advance(4_999)
        self.assertEqual(h.open_requests(), [])
        h.advance(1)
        r2 = h.take_request("GET", "https://x.example/p")
        h.respond(r2, 200, {"note": "hi"})
        self.assertEqual(h.presence("e1").rich_presence.note, "hi")
        ws = h.socket("wss://example.com/live")
        h.ws_open(ws)
        h.ws_text(ws, "hello")
        self.assertEqual(ws.sent, ["ack"])
        self.assertIn(("ws", "live", "hello"), h.connector.seen)

    def test_retries_back_off_then_deliver_the_last_answer(self):
        h = Harness(Echo)
        h.configure({"url": "https://x.example/p", "every": 3600})
        h.advance(3_600_000)
        h.respond(h.take_request("GET", "https://x.example/p"), 503, b"")
        h.advance(999)
        self.assertEqual(h.open_requests(), [])
        h.advance(1)  # backoff: 1 s, then 2 s
        h.respond(h.take_request("GET", "https://x.example/p"), 503, b"")
        h.advance(2_000)
        h.respond(h.take_request("GET", "https://x.example/p"), 503, b"")
        self.assertIn(("http", ("get", 1), 503), h.connector.seen, "three attempts in all, then delivered")

    def test_a_refused_request_comes_back_as_an_error(self):
        h = Harness(Echo)
        h.host.refuse_http = lambda url: True
        h.configure({"url": "https://x.example/p", "every": 1})
        h.advance(1_000)
        self.assertIn(("http", ("get", 1), "refused"), h.connector.seen)

    def test_defaults_webhook_404_write_unsupported_not_configured(self):
        from presence_sdk import NotConfigured, Unsupported
        h = Harness(Echo)
        with self.assertRaises(NotConfigured):
            h.watch("x")
        self.assertEqual(h.rt.webhook(WebhookRequest("GET", "/", "", [], b"")).status, 503)
        h.configure({"url": "https://x.example"})
        self.assertEqual(h.rt.webhook(WebhookRequest("GET", "/", "", [], b"")).status, 404)
        with self.assertRaises(Unsupported):
            h.rt.write(object())

    def test_reconfigure_replaces_the_connector_and_drops_its_timers(self):
        h = Harness(Echo)
        h.configure({"url": "https://x.example", "every": 5})
        first = h.connector
        h.configure({"url": "https://x.example", "every": 50})
        self.assertIsNot(h.connector, first)
        self.assertEqual(len(h.host.timers), 1)


class Auth(Connector):
    CONFIG = [Field("id", "id", "id", required=True), Field("secret", "s", "s", required=True, secret=True)]

    def __init__(self, cx, cfg):
        self.auth = ClientCredentials("https://login.example/oauth/token", cfg.id, cfg.secret)
        self.error = None
        if not self.auth.load(cx):
            self.auth.request(cx)

    def on_http(self, cx, key, out):
        if key == self.auth.request_key:
            try:
                self.auth.accept(cx, out)
            except OAuthError as e:
                self.error = e

    def on_timer(self, cx, key):
        if key == self.auth.timer_key:
            self.auth.request(cx)


class OAuthTests(unittest.TestCase):
    def test_token_stored_reused_and_refreshed_ahead_of_expiry(self):
        h = Harness(Auth, now=0)
        h.configure({"id": "me", "secret": "pw"})
        r = h.take_request("POST", "https://login.example/oauth/token")
        self.assertEqual(r.header("authorization"), "Basic bWU6cHc=")
        self.assertEqual(r.body, b"grant_type=client_credentials")
        h.respond(r, 200, {"access_token": "AT", "token_type": "Bearer", "expires_in": 3600})
        stored = json.loads(h.host.kv["oauth/token"])
        self.assertEqual((stored["access_token"], stored["expires_at"]), ("AT", 3_600_000))
        self.assertNotIn("pw", h.host.kv["oauth/token"].decode())
        # A restart takes the stored token; another client does not.
        h2 = Harness(Auth, now=1_000, kv=dict(h.host.kv))
        h2.configure({"id": "me", "secret": "pw"})
        self.assertEqual(h2.open_requests(), [])
        self.assertEqual(h2.connector.auth.access_token, "AT")
        h3 = Harness(Auth, now=1_000, kv=dict(h.host.kv))
        h3.configure({"id": "other", "secret": "pw"})
        self.assertEqual(len(h3.open_requests()), 1)
        # Refreshed 360 s (10 %) before expiry.
        h.advance(3_240_000 - 1)
        self.assertEqual(h.open_requests(), [])
        h.advance(1)
        h.take_request("POST", "https://login.example/oauth/token")

    def test_an_error_answer_is_typed(self):
        h = Harness(Auth)
        h.configure({"id": "me", "secret": "pw"})
        h.respond(h.take_request("POST", "https://login.example"), 401,
                  {"error": "invalid_client", "error_description": "unknown client"})
        e = h.connector.error
        self.assertEqual((e.error, e.description, e.status), ("invalid_client", "unknown client", 401))


class TimeTests(unittest.TestCase):
    def test_iso_and_retry_after(self):
        self.assertEqual(iso_ms("2026-11-29T19:00:00Z"), 1_795_978_800_000)
        self.assertEqual(iso_ms("2026-11-29T20:00:00.5+01:00"), 1_795_978_800_500)
        self.assertIsNone(iso_ms("yesterday"))
        self.assertEqual(retry_after_ms("120", 0), 120_000)
        self.assertEqual(retry_after_ms("Sun, 29 Nov 2026 19:00:10 GMT", 1_795_978_800_000), 10_000)
        self.assertIsNone(retry_after_ms("soon", 0))


if __name__ == "__main__":
    unittest.main()
