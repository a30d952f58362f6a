"""Genesys Cloud CX presence, written only against the hub's contract and
the Python SDK (`presence_sdk`). Sources for every protocol fact are listed
in README.md.

- Sign-in: OAuth client credentials at `https://login.{region}/oauth/token`
  (Basic client authentication); the token is kept in kv and refreshed
  ahead of its expiry.
- Directory: `GET /api/v2/users` paged (pageSize, pageNumber; entities,
  pageCount) with `expand=presence` and `expand=routingStatus`, reported for
  the hub's mapping by email; the state it carries is the first state.
- Presence: the Notifications API. A channel (`POST
  /api/v2/notifications/channels`) per 333 watched users (three topics
  each, 1,000 topics per channel): `v2.users.{id}.presence`,
  `v2.users.{id}.routingStatus`, `v2.users.{id}.conversations`. Its
  WebSocket carries a heartbeat every 30 s; a silent socket is replaced.
  Before a channel expires (24 h) or when the service warns
  (`v2.system.socket_closing`) a new channel takes over its topics, and the
  state of its users is read again (`GET
  /api/v2/users/{id}/presences/purecloud`, `GET
  /api/v2/users/{id}/routingstatus`).
- 429 answers are retried after their Retry-After (the SDK's `Retry`).
- A refusal names what is missing in a `forbidden` status.
"""

import json

from presence_sdk import (Backoff, Capabilities, Choice, ClientCredentials, Connector, DirectoryEntry, EndpointKind,
                          Field, HttpError, InvalidConfig, OAuthError, Retry, Update, iso_ms, quote)

#: Genesys Cloud regions by their domain: the API is `api.{domain}`, the
#: login `login.{domain}`, the notification WebSockets `streaming.{domain}`.
REGIONS = (
    "mypurecloud.com",        # Americas (US East)
    "use2.us-gov-pure.cloud",  # Americas (US East 2, FedRAMP)
    "usw2.pure.cloud",        # Americas (US West)
    "cac1.pure.cloud",        # Americas (Canada)
    "sae1.pure.cloud",        # Americas (São Paulo)
    "mypurecloud.ie",         # EMEA (Dublin)
    "euw2.pure.cloud",        # EMEA (London)
    "mypurecloud.de",         # EMEA (Frankfurt)
    "euc2.pure.cloud",        # EMEA (Zurich)
    "mec1.pure.cloud",        # EMEA (UAE)
    "aps1.pure.cloud",        # Asia Pacific (Mumbai)
    "apne2.pure.cloud",       # Asia Pacific (Seoul)
    "mypurecloud.com.au",     # Asia Pacific (Sydney)
    "mypurecloud.jp",         # Asia Pacific (Tokyo)
    "apne3.pure.cloud",       # Asia Pacific (Osaka)
)

PAGE_SIZE = 100
TOPICS_PER_USER = 3
#: Genesys allows 1,000 topics per channel.
USERS_PER_CHANNEL = 1000 // TOPICS_PER_USER
#: The service sends a heartbeat every 30 s; three missed ones mean a dead socket.
SILENCE_MS = 95_000
#: A channel lives 24 h; take over this long before it expires.
RENEW_BEFORE_MS = 10 * 60_000
#: State reads in flight at once after a (re)connect.
READS_IN_FLIGHT = 8
DIRECTORY_EVERY_MS = 60 * 60_000

#: Genesys system presences (`systemPresence`, upper case in events,
#: "On Queue" style in presence definitions) → (availability, activity).
SYSTEM = {
    "AVAILABLE": ("available", None),
    "AWAY": ("away", None),
    "BUSY": ("busy", None),
    "BREAK": ("away", "break"),
    "MEAL": ("away", "meal"),
    "MEETING": ("busy", "in-a-meeting"),
    "TRAINING": ("busy", "training"),
    "ON_QUEUE": ("available", "on-queue"),
    "OFFLINE": ("offline", None),
    "IDLE": ("away", "inactive"),
    "OUT_OF_OFFICE": ("away", "out-of-office"),
}
#: Routing status (while On Queue) → (availability, activity).
ROUTING = {
    "IDLE": ("available", "on-queue"),
    "INTERACTING": ("busy", "interacting"),
    "COMMUNICATING": ("busy", "communicating"),
    "NOT_RESPONDING": ("away", "not-responding"),
}
#: A call's state for the user's participant → line state.
CALL_LINE = {
    "alerting": "ringing", "offering": "ringing",
    "dialing": "dialing", "contacting": "dialing",
    "connected": "in-call",
}
LINE_RANK = ("in-call", "on-hold", "ringing", "dialing")


def norm_system(s):
    return s.upper().replace(" ", "_") if isinstance(s, str) else None


def rich_of(presence, routing, defs):
    """(availability, activity, note, raw) for a user's presence and routing
    status. An organization-defined presence keeps its own label as the
    activity; the availability follows its system presence."""
    system = norm_system(presence.get("system"))
    avail, activity = SYSTEM.get(system, ("unknown", None))
    raw = [("systemPresence", system or "")]
    d = defs.get(presence.get("def_id"))
    if d is not None:
        raw.append(("presenceDefinitionId", presence["def_id"]))
        raw.append(("presence", d["label"]))
        if not d["primary"]:
            activity = d["label"]
    if system == "ON_QUEUE" and routing:
        avail, activity = ROUTING.get(routing, (avail, activity))
    if routing:
        raw.append(("routingStatus", routing))
    return avail, activity, presence.get("message") or None, raw


def line_of(calls):
    states = set(calls.values())
    return next((s for s in LINE_RANK if s in states), "idle")


class Group:
    """The notification channel of one slice of the watched users."""

    def __init__(self, idx):
        self.idx = idx
        self.gen = 0
        self.users = []
        self.channel_id = None
        self.expires = None
        self.ready = False
        self.subscribed = []
        self.old_keys = []
        self.backoff = Backoff(1_000, 120_000)

    def ws_key(self, gen=None):
        return ("ws", self.idx, self.gen if gen is None else gen)


class GenesysCloud(Connector):
    NAME = "Genesys Cloud CX"
    VERSION = "0.1.0"
    DESCRIPTION = ("Genesys Cloud CX presence, routing status and voice calls over the Notifications API; "
                   "users mapped by email; OAuth client credentials; written in Python on the SDK")
    CONFIG = [
        Field("region", "Region", "The Genesys Cloud region of the organization, by its domain "
              "(mypurecloud.com is US East, mypurecloud.ie Dublin, mypurecloud.de Frankfurt, ...)",
              kind=Choice(REGIONS), default="mypurecloud.com"),
        Field("client_id", "Client ID", "The OAuth client (grant type Client Credentials) of the organization",
              required=True),
        Field("client_secret", "Client secret", "The OAuth client's secret", required=True, secret=True),
        Field("api_url", "API URL", "Instead of https://api.{region}: a proxy or a test double",
              kind="url"),
        Field("login_url", "Login URL", "Instead of https://login.{region}: a proxy or a test double",
              kind="url"),
    ]
    ENDPOINT_KINDS = [
        EndpointKind("genesys-user-id", "Genesys user id"),
        EndpointKind("email", "Email address of the Genesys user"),
    ]
    CAPABILITIES = Capabilities()

    def __init__(self, cx, cfg):
        for name in ("api_url", "login_url"):
            v = getattr(cfg, name)
            if v is not None and not v.startswith(("http://", "https://")):
                raise InvalidConfig(name, "must be an http(s) URL")
        self.api = (cfg.api_url or f"https://api.{cfg.region}").rstrip("/")
        login = (cfg.login_url or f"https://login.{cfg.region}").rstrip("/")
        self.auth = ClientCredentials(login + "/oauth/token", cfg.client_id, cfg.client_secret)
        self.defs = {}
        self.users = {}         # id -> {name, email, ext}
        self.by_email = {}
        self.directory_done = False
        self.presence = {}      # id -> {system, def_id, message, modified}
        self.routing = {}       # id -> status
        self.calls = {}         # id -> {conversation id: line state}
        self.watched = set()    # endpoints as the hub gave them
        self.fresh = set()      # watched, state not reported yet
        self.groups = []
        self.reads = []         # (kind, user id) waiting
        self.reading = set()
        self.fresh_token = False
        self.resume = False
        self.throttled = False
        self.forbidden = None
        if self.auth.load(cx):
            self.start(cx)
        else:
            self.sign_in(cx)

    # ------------------------------------------------------------ sign-in
    def sign_in(self, cx):
        self.fresh_token = True
        self.auth.request(cx)

    def start(self, cx):
        self.get(cx, "defs", "/api/v2/presencedefinitions?pageSize=100&pageNumber=1")
        self.page(cx, 1)

    def headers(self):
        return [self.auth.header(), ("Accept", "application/json")]

    def get(self, cx, key, path):
        cx.http(key, "GET", self.api + path, headers=self.headers(), retry=Retry(attempts=6))

    def page(self, cx, n):
        self.get(cx, ("users", n), f"/api/v2/users?pageSize={PAGE_SIZE}&pageNumber={n}"
                 "&expand=presence&expand=routingStatus&state=active")

    # ------------------------------------------------------------- events
    def on_timer(self, cx, key):
        if key == self.auth.timer_key:
            self.auth.request(cx)
        elif key == "directory":
            self.page(cx, 1)
        elif key == "regroup":
            self.regroup(cx)
        elif key == "retry-start":
            self.start(cx)
        elif key[0] == "silent":
            g = self.group(key[1])
            if g is not None:
                cx.warn(f"channel {g.channel_id}: no heartbeat for {SILENCE_MS // 1000} s; replacing it")
                self.replace(cx, g)
        elif key[0] == "renew":
            g = self.group(key[1])
            if g is not None:
                self.replace(cx, g)
        elif key[0] == "recreate":
            g = self.group(key[1])
            if g is not None:
                g.gen += 1
                g.channel_id = None
                self.create(cx, g)

    def on_http(self, cx, key, out):
        if key == self.auth.request_key:
            return self.on_token(cx, out)
        if key[0] in ("presence", "routing"):
            self.reading.discard(key)
        if isinstance(out, HttpError):
            cx.status("connection-error", f"Genesys Cloud at {self.api}: {out.detail}")
            return self.retry_later(cx, key)
        if out.status == 401:
            # The token was revoked or expired early: sign in again once.
            if self.fresh_token:
                return cx.status("forbidden", f"Genesys Cloud at {self.api} refused a token it had just "
                                 "issued (401): is api_url the API host of the login_url's region?")
            self.auth.forget(cx)
            self.resume = True
            if not cx.in_flight(self.auth.request_key):
                self.sign_in(cx)
            return
        if out.status == 403:
            return self.refused(cx, key, out)
        if out.ok:
            self.fresh_token = False
        if self.throttled and out.ok:
            self.throttled = False
            self.health(cx)
        doc = out.json()
        if key == "defs":
            if not out.ok:
                return self.unexpected(cx, "GET /api/v2/presencedefinitions", out)
            for e in (doc or {}).get("entities", []):
                label = (e.get("languageLabels") or {}).get("en_US") or e.get("systemPresence") or e["id"]
                self.defs[e["id"]] = {"system": e.get("systemPresence"), "label": label,
                                      "primary": bool(e.get("primary"))}
            self.refresh_all(cx)
        elif key[0] == "users":
            if not out.ok:
                return self.unexpected(cx, "GET /api/v2/users", out)
            self.on_users(cx, key[1], doc or {})
        elif key[0] == "channel":
            self.on_channel(cx, key, out, doc)
        elif key[0] == "subs":
            self.on_subscribed(cx, key, out)
        elif key[0] in ("presence", "routing"):
            if out.ok and doc:
                uid = key[1]
                if key[0] == "presence":
                    self.take_presence(uid, doc)
                else:
                    self.routing[uid] = doc.get("status")
                self.refresh(cx, uid)
            elif out.status == 404:
                for ep in self.endpoints_of(key[1]):
                    cx.endpoint_state(ep, "not-found", "Genesys Cloud does not know this user any more")
            self.pump(cx)

    def on_throttled(self, cx, key, wait_ms, response):
        self.throttled = True
        cx.status("throttled", f"Genesys Cloud answered {response.status} (rate limit); "
                  f"retrying in {max(1, wait_ms // 1000)} s as its Retry-After says")

    def on_token(self, cx, out):
        try:
            self.auth.accept(cx, out)
        except OAuthError as e:
            if e.status is not None and e.status < 500 and e.status != 429:
                self.forbidden = e
                return cx.status("forbidden", f"Genesys Cloud refused the client credentials at "
                                 f"{self.auth.token_url} ({e}): check client_id and client_secret, and that "
                                 "the OAuth client's grant type is Client Credentials")
            cx.status("connection-error", f"sign-in at {self.auth.token_url}: {e}")
            return cx.set_timer("retry-start", 30_000)
        except HttpError as e:
            cx.status("connection-error", f"sign-in at {self.auth.token_url}: {e.detail}")
            return cx.set_timer(self.auth.timer_key, 30_000)
        if self.forbidden is not None or not self.directory_done or self.resume:
            self.forbidden = None
            self.resume = False
            self.start(cx)

    def refused(self, cx, key, out):
        doc = out.json() or {}
        what = {"defs": "reading presence definitions", "users": "reading the user directory",
                "channel": "creating a notification channel", "subs": "subscribing to topics",
                "presence": "reading a user's presence", "routing": "reading a user's routing status",
                }.get(key if isinstance(key, str) else key[0], str(key))
        missing = (doc.get("messageParams") or {}).get("permissions") if isinstance(doc, dict) else None
        detail = f"Genesys Cloud refused {what} ({doc.get('code', 'HTTP 403')}): {doc.get('message', '')}"
        if missing:
            detail += f"; give the OAuth client's role the permission(s) {missing}"
        self.forbidden = detail
        cx.status("forbidden", detail)
        if isinstance(key, tuple) and key[0] in ("channel", "subs"):
            # A role can be fixed without touching the connector: try again.
            g = self.group(key[1])
            if g is not None:
                cx.set_timer(("recreate", g.idx), 5 * 60_000)

    def unexpected(self, cx, what, out):
        doc = out.json()
        msg = doc.get("message") if isinstance(doc, dict) else None
        cx.status("connection-error", f"{what} answered {out.status}: {msg or 'no message'}")
        cx.set_timer("retry-start", 60_000)

    def retry_later(self, cx, key):
        if key[0] in ("channel", "subs"):
            g = self.group(key[1])
            if g is not None:
                cx.set_timer(("recreate", g.idx), 10_000)
        elif key[0] in ("presence", "routing"):
            self.pump(cx)
        else:
            cx.set_timer("retry-start", 30_000)

    # ----------------------------------------------------------- directory
    def on_users(self, cx, n, doc):
        entries = []
        for u in doc.get("entities", []):
            uid = u.get("id")
            if not isinstance(uid, str):
                continue
            email = u.get("email")
            ext = next((a.get("extension") for a in u.get("addresses", [])
                        if a.get("mediaType") == "PHONE" and a.get("extension")), None)
            self.users[uid] = {"name": u.get("name"), "email": email, "ext": ext}
            if email:
                self.by_email[email.lower()] = uid
            entries.append(DirectoryEntry(uid, email, u.get("name"), ext))
            if isinstance(u.get("presence"), dict) and uid not in self.presence:
                self.take_presence(uid, u["presence"])
            rs = u.get("routingStatus")
            if isinstance(rs, dict) and uid not in self.routing:
                self.routing[uid] = rs.get("status")
        pages = doc.get("pageCount") or 1
        last = n >= pages or not entries
        cx.directory(entries, last)
        if not last:
            return self.page(cx, n + 1)
        self.directory_done = True
        cx.set_timer("directory", DIRECTORY_EVERY_MS)
        cx.info(f"directory: {len(self.users)} users")
        self.regroup(cx)
        self.refresh_all(cx)

    def take_presence(self, uid, body):
        d = body.get("presenceDefinition") or {}
        self.presence[uid] = {"system": d.get("systemPresence"), "def_id": d.get("id"),
                              "message": body.get("message"),
                              "modified": iso_ms(body.get("modifiedDate"))}

    # ------------------------------------------------------------ watching
    def user_of(self, ep):
        if ep in self.users:
            return ep
        return self.by_email.get(ep.lower())

    def endpoints_of(self, uid):
        return [ep for ep in self.watched if self.user_of(ep) == uid]

    def watch(self, cx, endpoints):
        self.watched.update(endpoints)
        self.fresh.update(endpoints)
        for ep in endpoints:
            cx.endpoint_state(ep, "requesting", None)
        if self.directory_done:
            cx.set_timer("regroup", 200)

    def unwatch(self, cx, endpoints):
        self.watched.difference_update(endpoints)
        if self.directory_done:
            cx.set_timer("regroup", 200)

    def regroup(self, cx):
        """Spread the watched users over channels of at most 333 users and
        bring each channel's subscriptions up to date."""
        uids = set()
        for ep in sorted(self.watched):
            uid = self.user_of(ep)
            if uid is None:
                cx.endpoint_state(ep, "not-found", "no Genesys Cloud user with this id or email")
            else:
                uids.add(uid)
        ordered = sorted(uids)
        slices = [ordered[i:i + USERS_PER_CHANNEL] for i in range(0, len(ordered), USERS_PER_CHANNEL)]
        for i, users in enumerate(slices):
            if i == len(self.groups):
                self.groups.append(Group(i))
            g = self.groups[i]
            new = [u for u in users if u not in g.users]
            g.users = users
            if g.channel_id is None:
                if not cx.in_flight(("channel", g.idx, g.gen)) and not cx.has_timer(("recreate", g.idx)):
                    self.create(cx, g)
            elif cx.ws_is_open(g.ws_key()) and not cx.in_flight(("subs", g.idx, g.gen)):
                # Subscribed already (the topics changed) or refused before
                # (a new token, a fixed role): PUT replaces the whole set.
                self.subscribe(cx, g)
                if g.ready:
                    for uid in new:
                        self.read(cx, uid)
        for g in self.groups[len(slices):]:
            for k in [g.ws_key()] + g.old_keys:
                cx.ws_close(k, 1000, "no users left")
            cx.cancel_timer(("silent", g.idx))
            cx.cancel_timer(("renew", g.idx))
        del self.groups[len(slices):]
        # What the directory said is the first state; the channel's re-read follows.
        for uid in {self.user_of(ep) for ep in self.fresh} - {None}:
            self.refresh(cx, uid)
        self.fresh.clear()
        self.health(cx)

    def group(self, idx):
        return self.groups[idx] if idx < len(self.groups) else None

    # ------------------------------------------------------------ channels
    def create(self, cx, g):
        g.ready = False
        cx.http(("channel", g.idx, g.gen), "POST", self.api + "/api/v2/notifications/channels",
                headers=self.headers(), body=b"", retry=Retry(attempts=6))

    def replace(self, cx, g):
        """A new channel takes over this group's topics; the old socket stays
        until the new one is subscribed."""
        g.old_keys.append(g.ws_key())
        g.gen += 1
        g.channel_id = None
        self.create(cx, g)

    def on_channel(self, cx, key, out, doc):
        g = self.group(key[1])
        if g is None or key[2] != g.gen:
            return
        if out.status != 200 or not isinstance(doc, dict) or "connectUri" not in doc:
            cx.status("connection-error", f"POST /api/v2/notifications/channels answered {out.status}")
            return cx.set_timer(("recreate", g.idx), 30_000)
        g.channel_id = doc.get("id")
        g.expires = iso_ms(doc.get("expires"))
        cx.ws_connect(g.ws_key(), doc["connectUri"])

    def on_ws_open(self, cx, key, headers):
        g = self.group(key[1])
        if g is None or key[2] != g.gen:
            return
        cx.set_timer(("silent", g.idx), SILENCE_MS)
        self.subscribe(cx, g)

    def subscribe(self, cx, g):
        topics = [f"v2.users.{u}.{t}" for u in g.users for t in ("presence", "routingStatus", "conversations")]
        g.subscribed = topics
        cx.http(("subs", g.idx, g.gen), "PUT",
                f"{self.api}/api/v2/notifications/channels/{quote(g.channel_id)}/subscriptions",
                headers=self.headers(), json_body=[{"id": t} for t in topics], retry=Retry(attempts=6))

    def on_subscribed(self, cx, key, out):
        g = self.group(key[1])
        if g is None or key[2] != g.gen:
            return
        if not out.ok:
            doc = out.json() or {}
            cx.status("connection-error", f"subscribing {len(g.subscribed)} topics on channel {g.channel_id} "
                      f"answered {out.status}: {doc.get('message', '')}")
            return cx.set_timer(("recreate", g.idx), 30_000)
        was_ready = g.ready
        g.ready = True
        g.backoff.reset()
        self.forbidden = None
        for k in g.old_keys:
            cx.ws_close(k, 1000, "replaced by a new channel")
        g.old_keys = []
        if g.expires is not None:
            cx.set_timer(("renew", g.idx), max(60_000, g.expires - RENEW_BEFORE_MS - cx.now()))
        if not was_ready:
            # What changed while no channel listened is read again.
            for uid in g.users:
                self.read(cx, uid)
        self.health(cx)

    def on_ws_message(self, cx, key, payload):
        g = self.group(key[1])
        if g is None:
            return
        if key[2] == g.gen:
            cx.set_timer(("silent", g.idx), SILENCE_MS)
        try:
            msg = json.loads(payload) if isinstance(payload, str) else None
        except ValueError:
            msg = None
        if not isinstance(msg, dict):
            return cx.warn("a notification that is not a JSON object was ignored")
        topic = msg.get("topicName") or ""
        body = msg.get("eventBody") or {}
        if topic == "channel.metadata":
            return
        if topic == "v2.system.socket_closing":
            if key[2] == g.gen:
                cx.info(f"channel {g.channel_id}: the service closes the socket soon; moving to a new channel")
                self.replace(cx, g)
            return
        parts = topic.split(".")
        if len(parts) != 4 or parts[:2] != ["v2", "users"] or parts[2] not in self.users:
            return
        uid, kind = parts[2], parts[3]
        if kind == "presence":
            self.take_presence(uid, body)
            self.refresh(cx, uid, rich=True, tel=False)
        elif kind == "routingStatus":
            self.routing[uid] = (body.get("routingStatus") or {}).get("status")
            self.refresh(cx, uid, rich=True, tel=False)
        elif kind == "conversations":
            self.take_conversation(uid, body)
            self.refresh(cx, uid, rich=False, tel=True)

    def on_ws_closed(self, cx, key, close):
        g = self.group(key[1])
        if g is None:
            return
        if key in g.old_keys:
            g.old_keys.remove(key)
            return
        if key[2] != g.gen:
            return
        why = close.failure or f"closed {close.code}: {close.reason}"
        cx.status("connection-error", f"the notification socket of channel {g.channel_id} ended ({why}); "
                  "opening a new channel")
        g.ready = False
        g.channel_id = None
        g.gen += 1
        cx.cancel_timer(("silent", g.idx))
        cx.set_timer(("recreate", g.idx), g.backoff.next())

    def take_conversation(self, uid, conv):
        cid = conv.get("id")
        if not isinstance(cid, str):
            return
        mine = [p for p in conv.get("participants", []) if p.get("userId") == uid]
        state = None
        if mine:
            calls = mine[-1].get("calls") or []
            if calls:
                c = calls[-1]
                st = c.get("state")
                if st in ("disconnected", "terminated"):
                    state = None
                elif st == "connected" and c.get("held"):
                    state = "on-hold"
                else:
                    state = CALL_LINE.get(st)
        calls = self.calls.setdefault(uid, {})
        if state is None:
            calls.pop(cid, None)
        else:
            calls[cid] = state

    # ------------------------------------------------------------- reports
    def read(self, cx, uid):
        for kind in ("presence", "routing"):
            if (kind, uid) not in self.reads and (kind, uid) not in self.reading:
                self.reads.append((kind, uid))
        self.pump(cx)

    def pump(self, cx):
        while self.reads and len(self.reading) < READS_IN_FLIGHT:
            kind, uid = self.reads.pop(0)
            self.reading.add((kind, uid))
            path = f"/api/v2/users/{quote(uid)}/" + ("presences/purecloud" if kind == "presence" else "routingstatus")
            self.get(cx, (kind, uid), path)

    def refresh_all(self, cx):
        for uid in {self.user_of(ep) for ep in self.watched} - {None}:
            self.refresh(cx, uid)

    def refresh(self, cx, uid, rich=True, tel=True):
        eps = self.endpoints_of(uid)
        p = self.presence.get(uid)
        if not eps or (p is None and not tel):
            return
        for ep in eps:
            u = Update(ep).raw("userId", uid)
            if rich and p is not None:
                avail, activity, note, raw = rich_of(p, self.routing.get(uid), self.defs)
                u.rich(avail, activity, note)
                u.raw_values.extend(raw)
                if p.get("modified"):
                    u.observed(p["modified"])
            if tel:
                u.telephony(line_of(self.calls.get(uid, {})))
            cx.presence(u)
            cx.endpoint_state(ep, "active", None)

    def health(self, cx):
        if self.forbidden is not None or self.throttled:
            return
        if not self.groups:
            cx.status("up-and-running", f"signed in; {len(self.users)} users in the directory, none watched")
        elif all(g.ready for g in self.groups):
            n = sum(len(g.users) for g in self.groups)
            cx.status("up-and-running", f"{n} users on {len(self.groups)} notification channel(s)")
