"""The Genesys Cloud connector under the SDK's test kit: plain CPython, no
wasm, no hub. Run from plugins/genesys-cloud: `python3 -m unittest -v`."""

import base64
import json
import unittest

from genesys import GenesysCloud, USERS_PER_CHANNEL
from presence_sdk.testkit import Harness

API = "https://api.mypurecloud.ie"
LOGIN = "https://login.mypurecloud.ie/oauth/token"
T0 = 1_795_978_800_000  # 2026-11-29T19:00:00Z
CONFIG = {"region": "mypurecloud.ie", "client_id": "cid", "client_secret": "s3cret"}
ALICE = "a1a1a1a1-0000-4000-8000-000000000001"
BOB = "b2b2b2b2-0000-4000-8000-000000000002"

DEFS = {"entities": [
    {"id": "def-available", "systemPresence": "Available", "primary": True,
     "languageLabels": {"en_US": "Available"}},
    {"id": "def-onqueue", "systemPresence": "On Queue", "primary": True, "languageLabels": {"en_US": "On Queue"}},
    {"id": "def-meeting", "systemPresence": "Meeting", "primary": True, "languageLabels": {"en_US": "Meeting"}},
    {"id": "def-lunch-walk", "systemPresence": "Meal", "primary": False,
     "languageLabels": {"en_US": "Lunch walk"}},
], "pageCount": 1}


def user(uid, name, email, ext, system="AVAILABLE", def_id="def-available"):
    return {"id": uid, "name": name, "email": email, "state": "active",
            "addresses": [{"mediaType": "PHONE", "type": "WORK", "extension": ext}],
            "presence": {"presenceDefinition": {"id": def_id, "systemPresence": system},
                         "modifiedDate": "2026-11-29T18:00:00.000Z", "message": ""},
            "routingStatus": {"status": "OFF_QUEUE"}}


def signed_in(config=CONFIG, users=None):
    """A harness past sign-in, presence definitions and the directory."""
    h = Harness(GenesysCloud, now=T0)
    h.configure(config)
    tok = h.take_request("POST", LOGIN)
    h.respond(tok, 200, {"access_token": "tok-1", "token_type": "bearer", "expires_in": 86400})
    h.respond(h.take_request("GET", API + "/api/v2/presencedefinitions"), 200, DEFS)
    page = h.take_request("GET", API + "/api/v2/users?")
    h.respond(page, 200, {"entities": users or [user(ALICE, "Alice", "alice@example.com", "1001"),
                                                 user(BOB, "Bob", "bob@example.com", "1002")],
                          "pageSize": 100, "pageNumber": 1, "pageCount": 1, "total": 2})
    return h


def connected(h, *endpoints):
    """Watch endpoints and bring the channel up; returns its socket."""
    h.watch(*endpoints)
    h.advance(300)
    ch = h.take_request("POST", API + "/api/v2/notifications/channels")
    h.respond(ch, 200, {"id": "streaming-0-abc", "connectUri": "wss://streaming.mypurecloud.ie/channels/streaming-0-abc",
                        "expires": "2026-11-30T19:00:00.000Z"})
    ws = h.socket("wss://streaming.mypurecloud.ie/channels/streaming-0-abc")
    h.ws_open(ws)
    subs = h.take_request("PUT", API + "/api/v2/notifications/channels/streaming-0-abc/subscriptions")
    h.respond(subs, 200, {"entities": subs.json()})
    return ws


def event(topic, body):
    return json.dumps({"topicName": topic, "eventBody": body, "version": "2", "metadata": {"CorrelationId": "x"}})


class SignIn(unittest.TestCase):
    def test_client_credentials_with_basic_auth_at_the_regions_login_host(self):
        h = Harness(GenesysCloud, now=T0)
        h.configure(CONFIG)
        tok = h.take_request("POST", LOGIN)
        self.assertEqual(tok.header("authorization"), "Basic " + base64.b64encode(b"cid:s3cret").decode())
        self.assertEqual(tok.body, b"grant_type=client_credentials")
        self.assertEqual(tok.header("content-type"), "application/x-www-form-urlencoded")
        h.respond(tok, 200, {"access_token": "tok-1", "token_type": "bearer", "expires_in": 86400})
        defs = h.take_request("GET", API + "/api/v2/presencedefinitions")
        self.assertEqual(defs.header("authorization"), "Bearer tok-1")
        # The secret is nowhere in the log.
        self.assertFalse(any("s3cret" in m for _, m in h.host.logs))

    def test_token_kept_across_a_restart_and_refreshed_ahead_of_expiry(self):
        h = signed_in()
        kv = dict(h.host.kv)
        h2 = Harness(GenesysCloud, now=T0 + 3_600_000, kv=kv)
        h2.configure(CONFIG)
        self.assertEqual([r for r in h2.open_requests() if r.url.startswith(LOGIN)], [])
        self.assertEqual(h2.take_request("GET", API + "/api/v2/users?").header("authorization"), "Bearer tok-1")
        # 10 % of the 24 h lifetime before expiry: a new token, unasked.
        h2.advance(86_400_000 - 8_640_000 - 3_600_000 - 1)
        self.assertEqual([r for r in h2.open_requests() if r.url.startswith(LOGIN)], [])
        h2.advance(2)
        h2.take_request("POST", LOGIN)

    def test_wrong_credentials_are_forbidden_naming_what_to_check(self):
        h = Harness(GenesysCloud, now=T0)
        h.configure(CONFIG)
        h.respond(h.take_request("POST", LOGIN), 400,
                  {"error": "invalid_client", "description": "client not found", "error_description": "client not found"})
        status, detail = h.status()
        self.assertEqual(status, "forbidden")
        self.assertIn("invalid_client", detail)
        self.assertIn("client_id and client_secret", detail)

    def test_a_missing_permission_is_named(self):
        h = signed_in()
        h.watch(ALICE)
        h.advance(300)
        h.respond(h.take_request("POST", API + "/api/v2/notifications/channels"), 403, {
            "message": "You are missing the following permission(s): [notifications:channel:add]",
            "code": "missing.any.permissions", "status": 403,
            "messageParams": {"permissions": "[notifications:channel:add]"}})
        status, detail = h.status()
        self.assertEqual(status, "forbidden")
        self.assertIn("missing.any.permissions", detail)
        self.assertIn("notifications:channel:add", detail)

    def test_bad_region_is_refused_naming_the_field(self):
        from presence_sdk import InvalidConfig
        h = Harness(GenesysCloud, now=T0)
        with self.assertRaises(InvalidConfig) as e:
            h.configure(dict(CONFIG, region="example.com"))
        self.assertEqual(e.exception.field, "region")
        with self.assertRaises(InvalidConfig) as e:
            h.configure({"client_id": "x"})
        self.assertEqual(e.exception.field, "client_secret")


class Directory(unittest.TestCase):
    def test_paged_and_reported_with_email_and_extension(self):
        h = Harness(GenesysCloud, now=T0)
        h.configure(CONFIG)
        h.respond(h.take_request("POST", LOGIN), 200, {"access_token": "t", "token_type": "bearer", "expires_in": 60})
        h.respond(h.take_request("GET", API + "/api/v2/presencedefinitions"), 200, DEFS)
        p1 = h.take_request("GET", API + "/api/v2/users?")
        self.assertEqual(p1.query()["pageNumber"], "1")
        self.assertIn("expand=presence&expand=routingStatus", p1.url)
        h.respond(p1, 200, {"entities": [user(ALICE, "Alice", "alice@example.com", "1001")], "pageCount": 2})
        self.assertEqual(h.directory()[1], False)
        p2 = h.take_request("GET", API + "/api/v2/users?")
        self.assertEqual(p2.query()["pageNumber"], "2")
        h.respond(p2, 200, {"entities": [user(BOB, "Bob", "bob@example.com", "1002")], "pageCount": 2})
        entries, complete = h.directory()
        self.assertTrue(complete)
        self.assertEqual([(e.endpoint, e.email, e.display_name, e.extension) for e in entries],
                         [(ALICE, "alice@example.com", "Alice", "1001"), (BOB, "bob@example.com", "Bob", "1002")])

    def test_an_email_endpoint_resolves_and_an_unknown_one_is_not_found(self):
        h = signed_in()
        connected(h, "Alice@Example.com", "nobody@example.com")
        self.assertEqual(h.endpoint_state("nobody@example.com")[0], "not-found")
        self.assertEqual(h.presence("Alice@Example.com").rich_presence.availability, "available")


class Notifications(unittest.TestCase):
    def test_topics_subscribed_and_state_read_again(self):
        h = signed_in()
        h.watch(ALICE, BOB)
        h.advance(300)
        ch = h.take_request("POST", API + "/api/v2/notifications/channels")
        h.respond(ch, 200, {"id": "c1", "connectUri": "wss://streaming.mypurecloud.ie/channels/c1",
                            "expires": "2026-11-30T19:00:00Z"})
        ws = h.socket("wss://streaming.mypurecloud.ie/channels/c1")
        h.ws_open(ws)
        subs = h.take_request("PUT", API + "/api/v2/notifications/channels/c1/subscriptions")
        self.assertEqual(sorted(t["id"] for t in subs.json()), sorted(
            f"v2.users.{u}.{t}" for u in (ALICE, BOB) for t in ("presence", "routingStatus", "conversations")))
        h.respond(subs, 200, {"entities": subs.json()})
        reads = sorted(r.path() for r in h.open_requests())
        self.assertEqual(reads, sorted([f"/api/v2/users/{ALICE}/presences/purecloud",
                                        f"/api/v2/users/{ALICE}/routingstatus",
                                        f"/api/v2/users/{BOB}/presences/purecloud",
                                        f"/api/v2/users/{BOB}/routingstatus"]))
        self.assertEqual(h.status()[0], "up-and-running")

    def test_presence_routing_and_org_defined_presences(self):
        h = signed_in()
        ws = connected(h, ALICE)
        h.ws_text(ws, event(f"v2.users.{ALICE}.presence", {
            "source": "PURECLOUD", "presenceDefinition": {"id": "def-meeting", "systemPresence": "MEETING"},
            "primary": True, "message": "weekly", "modifiedDate": "2026-11-29T19:05:00.000Z"}))
        p = h.presence(ALICE)
        self.assertEqual((p.rich_presence.availability, p.rich_presence.activity, p.rich_presence.note),
                         ("busy", "in-a-meeting", "weekly"))
        self.assertEqual(p.observed_at, T0 + 300_000)
        self.assertIn(("systemPresence", "MEETING"), p.raw_values)
        h.ws_text(ws, event(f"v2.users.{ALICE}.presence", {
            "presenceDefinition": {"id": "def-lunch-walk", "systemPresence": "MEAL"}, "message": ""}))
        p = h.presence(ALICE)
        self.assertEqual((p.rich_presence.availability, p.rich_presence.activity), ("away", "Lunch walk"))
        h.ws_text(ws, event(f"v2.users.{ALICE}.presence", {
            "presenceDefinition": {"id": "def-onqueue", "systemPresence": "ON_QUEUE"}}))
        h.ws_text(ws, event(f"v2.users.{ALICE}.routingStatus", {
            "routingStatus": {"status": "INTERACTING", "startTime": "2026-11-29T19:06:00.000Z"}}))
        p = h.presence(ALICE)
        self.assertEqual((p.rich_presence.availability, p.rich_presence.activity), ("busy", "interacting"))
        for system, want in [("BREAK", ("away", "break")), ("TRAINING", ("busy", "training")),
                             ("OFFLINE", ("offline", None)), ("AWAY", ("away", None)), ("BUSY", ("busy", None))]:
            h.ws_text(ws, event(f"v2.users.{ALICE}.presence", {"presenceDefinition": {"id": "x", "systemPresence": system}}))
            r = h.presence(ALICE).rich_presence
            self.assertEqual((r.availability, r.activity), want, system)

    def test_a_call_rings_connects_holds_and_ends(self):
        h = signed_in()
        ws = connected(h, ALICE)

        def conv(state, held=False):
            return event(f"v2.users.{ALICE}.conversations", {"id": "conv-1", "participants": [
                {"id": "p-cust", "purpose": "customer", "calls": [{"id": "c0", "state": "connected"}]},
                {"id": "p-agent", "purpose": "agent", "userId": ALICE,
                 "calls": [{"id": "c1", "state": state, "held": held, "direction": "inbound"}]}]})

        for (state, held), line in [(("alerting", False), "ringing"), (("connected", False), "in-call"),
                                    (("connected", True), "on-hold"), (("connected", False), "in-call"),
                                    (("disconnected", False), "idle")]:
            h.ws_text(ws, conv(state, held))
            p = h.presence(ALICE)
            self.assertEqual(p.telephony_presence.line, line, state)
            self.assertIsNone(p.rich_presence, "a call does not restate rich presence")

    def test_socket_closing_moves_to_a_new_channel_and_reads_again(self):
        h = signed_in()
        ws = connected(h, ALICE)
        for r in h.open_requests():
            h.respond(r, 200, {"presenceDefinition": {"id": "def-available", "systemPresence": "AVAILABLE"}}
                      if "presences" in r.url else {"status": "OFF_QUEUE"})
        h.ws_text(ws, event("v2.system.socket_closing", {"message": "Socket closing"}))
        ch = h.take_request("POST", API + "/api/v2/notifications/channels")
        h.respond(ch, 200, {"id": "c2", "connectUri": "wss://streaming.mypurecloud.ie/channels/c2",
                            "expires": "2026-11-30T19:10:00Z"})
        ws2 = h.socket("wss://streaming.mypurecloud.ie/channels/c2")
        self.assertIsNone(ws.closed, "the old socket stays until the new channel is subscribed")
        h.ws_open(ws2)
        subs = h.take_request("PUT", API + "/api/v2/notifications/channels/c2/subscriptions")
        self.assertEqual(len(subs.json()), 3)
        h.respond(subs, 200, {"entities": subs.json()})
        self.assertEqual(ws.closed[0], 1000)
        self.assertEqual(sorted(r.path() for r in h.open_requests()),
                         [f"/api/v2/users/{ALICE}/presences/purecloud", f"/api/v2/users/{ALICE}/routingstatus"])

    def test_channel_renewed_before_it_expires(self):
        h = signed_in()
        ws = connected(h, ALICE)
        for r in h.open_requests():
            h.respond(r, 404, {"code": "not.found"})
        heartbeat = event("channel.metadata", {"message": "WebSocket Heartbeat"})
        # The service's heartbeat every 30 s keeps the socket; the renewal
        # comes 10 minutes before the channel's `expires`.
        for _ in range((24 * 3_600_000 - 10 * 60_000) // 30_000 - 1):
            h.advance(30_000)
            h.ws_text(ws, heartbeat)
        self.assertEqual([r for r in h.open_requests() if "channels" in r.url], [])
        h.advance(30_001)
        h.take_request("POST", API + "/api/v2/notifications/channels")

    def test_a_silent_socket_is_replaced(self):
        h = signed_in()
        ws = connected(h, ALICE)
        h.advance(60_000)
        h.ws_text(ws, event("channel.metadata", {"message": "WebSocket Heartbeat"}))
        h.advance(90_000)
        self.assertEqual([r for r in h.open_requests() if "notifications/channels" in r.url], [])
        h.advance(6_000)
        h.take_request("POST", API + "/api/v2/notifications/channels")

    def test_a_dropped_socket_reconnects_with_backoff(self):
        h = signed_in()
        ws = connected(h, ALICE)
        h.ws_close(ws, None, "", failure="reset")
        self.assertEqual(h.status()[0], "connection-error")
        self.assertEqual([r for r in h.open_requests() if "notifications/channels" in r.url], [])
        h.advance(1_000)
        h.take_request("POST", API + "/api/v2/notifications/channels")

    def test_topics_spread_over_channels_of_1000(self):
        users = [user(f"u{i:04d}", f"U{i}", f"u{i}@example.com", str(2000 + i)) for i in range(USERS_PER_CHANNEL + 5)]
        h = signed_in(users=users)
        h.watch(*(u["id"] for u in users))
        h.advance(300)
        chans = [r for r in h.open_requests() if r.url.endswith("/api/v2/notifications/channels")]
        self.assertEqual(len(chans), 2)


class Tokens(unittest.TestCase):
    def test_a_401_signs_in_again_and_resubscribes(self):
        h = signed_in()
        h.watch(ALICE)
        h.advance(300)
        ch = h.take_request("POST", API + "/api/v2/notifications/channels")
        h.respond(ch, 200, {"id": "c1", "connectUri": "wss://streaming.mypurecloud.ie/channels/c1",
                            "expires": "2026-11-30T19:00:00Z"})
        h.ws_open(h.socket("wss://streaming.mypurecloud.ie/channels/c1"))
        h.respond(h.take_request("PUT", API + "/api/v2/notifications/channels/c1/"), 401,
                  {"message": "Invalid login credentials.", "code": "bad.credentials", "status": 401})
        self.assertNotIn("oauth/token", h.host.kv)
        tok = h.take_request("POST", LOGIN)
        h.respond(tok, 200, {"access_token": "tok-2", "token_type": "bearer", "expires_in": 86400})
        h.respond(h.take_request("GET", API + "/api/v2/presencedefinitions"), 200, DEFS)
        h.respond(h.take_request("GET", API + "/api/v2/users?"), 200,
                  {"entities": [user(ALICE, "Alice", "alice@example.com", "1001")], "pageCount": 1})
        subs = h.take_request("PUT", API + "/api/v2/notifications/channels/c1/subscriptions")
        self.assertEqual(subs.header("authorization"), "Bearer tok-2")
        h.respond(subs, 200, {"entities": subs.json()})
        self.assertEqual(h.status()[0], "up-and-running")
        # Later, a 401 signs in again; a 401 right after a new token does
        # not loop: forbidden.
        r = h.take_request("GET", API + f"/api/v2/users/{ALICE}/")
        h.respond(r, 401, {"code": "bad.credentials"})
        h.respond(h.take_request("POST", LOGIN), 200, {"access_token": "tok-3", "token_type": "bearer", "expires_in": 86400})
        h.respond(h.take_request("GET", API + "/api/v2/presencedefinitions"), 401, {"code": "bad.credentials"})
        status, detail = h.status()
        self.assertEqual(status, "forbidden")
        self.assertIn("refused a token it had just issued", detail)
        self.assertEqual([r for r in h.open_requests() if r.url.startswith(LOGIN)], [])


class RateLimits(unittest.TestCase):
    def test_429_waits_for_retry_after_and_reports_throttled(self):
        h = Harness(GenesysCloud, now=T0)
        h.configure(CONFIG)
        h.respond(h.take_request("POST", LOGIN), 200, {"access_token": "t", "token_type": "bearer", "expires_in": 86400})
        h.respond(h.take_request("GET", API + "/api/v2/presencedefinitions"), 200, DEFS)
        page = h.take_request("GET", API + "/api/v2/users?")
        h.respond(page, 429, {"message": "Rate limit exceeded the maximum. Retry the request in [7] seconds",
                              "code": "too.many.requests", "status": 429}, headers=[("Retry-After", "7")])
        self.assertEqual(h.status()[0], "throttled")
        h.advance(6_999)
        self.assertEqual([r for r in h.open_requests() if "/api/v2/users" in r.url], [])
        h.advance(1)
        again = h.take_request("GET", API + "/api/v2/users?")
        h.respond(again, 200, {"entities": [], "pageCount": 1})
        self.assertEqual(h.status()[0], "up-and-running")


if __name__ == "__main__":
    unittest.main()
