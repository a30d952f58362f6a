"""A presence connector written in Python (componentize-py).

Senders push presence to the hub on `POST /hooks/{instance}/presence`,
signed with HMAC-SHA256 over `<timestamp>.<body>` keyed with the instance's
`shared_secret` (the same signing as the hub's http-push connector). The
connector validates each push, keeps the last state of every endpoint in
its key-value store, and reports it for the endpoints the hub watches; a
restart re-reports what the store holds. A heartbeat timer refreshes the
connector status. See README.md.
"""

import hashlib
import hmac
import json

import wit_world
from componentize_py_types import Err
from wit_world.exports import connector as c
from wit_world.imports import kv, log, report, timers
from wit_world.imports import types as t

NAME = "example-python"
VERSION = "0.1.0"
MAX_UPDATES = 100
MAX_ENDPOINT = 256
MAX_NOTE = 1024
STATE_PREFIX = "state/"

AVAILABILITY = {
    "available": t.Availability.AVAILABLE,
    "away": t.Availability.AWAY,
    "busy": t.Availability.BUSY,
    "do-not-disturb": t.Availability.DO_NOT_DISTURB,
    "offline": t.Availability.OFFLINE,
    "unknown": t.Availability.UNKNOWN,
}
ACTIVITY = {
    "in-a-call": t.Activity_InACall,
    "in-a-conference": t.Activity_InAConference,
    "in-a-meeting": t.Activity_InAMeeting,
    "presenting": t.Activity_Presenting,
    "out-of-office": t.Activity_OutOfOffice,
    "be-right-back": t.Activity_BeRightBack,
    "off-work": t.Activity_OffWork,
    "inactive": t.Activity_Inactive,
}
LINE = {
    "idle": t.LineState.IDLE,
    "ringing": t.LineState.RINGING,
    "dialing": t.LineState.DIALING,
    "in-call": t.LineState.IN_CALL,
    "on-hold": t.LineState.ON_HOLD,
    "unknown": t.LineState.UNKNOWN,
}
SOURCE = {
    "pbx-line": t.TelephonySource.PBX_LINE,
    "sip-derived": t.TelephonySource.SIP_DERIVED,
}


class BadInput(Exception):
    """A push that does not validate: the message and the JSON path at fault."""

    def __init__(self, field, message):
        super().__init__(message)
        self.field = field
        self.message = message


# --------------------------------------------------------------------------
# Validation: JSON in, a canonical dict out (the form kept in kv).


def _obj(v, path):
    if not isinstance(v, dict):
        raise BadInput(path, "must be an object")
    return v


def _known(v, path, allowed):
    for k in v:
        if k not in allowed:
            raise BadInput(f"{path}.{k}" if path else k, "unknown field")


def _str(v, path, max_len):
    if not isinstance(v, str) or not v or len(v) > max_len:
        raise BadInput(path, f"must be a non-empty string of at most {max_len} characters")
    return v


def _u64(v, path):
    # bool is an int in Python: refuse it explicitly.
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**64:
        raise BadInput(path, "must be an unsigned 64-bit integer")
    return v


def _choice(v, path, table):
    if v not in table:
        raise BadInput(path, "must be one of " + ", ".join(table))
    return v


def validate_update(u, path):
    u = _obj(u, path or None)
    p = f"{path}." if path else ""
    _known(u, path, ("endpoint", "observed_at", "sequence", "telephony", "rich"))
    if "endpoint" not in u:
        raise BadInput(p + "endpoint", "is required")
    out = {"endpoint": _str(u["endpoint"], p + "endpoint", MAX_ENDPOINT)}
    if u.get("observed_at") is not None:
        out["observed_at"] = _u64(u["observed_at"], p + "observed_at")
    if u.get("sequence") is not None:
        out["sequence"] = _u64(u["sequence"], p + "sequence")
    if u.get("telephony") is None and u.get("rich") is None:
        raise BadInput(path or None, "needs `telephony`, `rich` or both")
    if u.get("telephony") is not None:
        tp = p + "telephony"
        tel = _obj(u["telephony"], tp)
        _known(tel, tp, ("line", "dnd", "forward", "source"))
        if "line" not in tel:
            raise BadInput(tp + ".line", "is required")
        o = {"line": _choice(tel["line"], tp + ".line", LINE)}
        dnd = tel.get("dnd", False)
        if not isinstance(dnd, bool):
            raise BadInput(tp + ".dnd", "must be true or false")
        o["dnd"] = dnd
        o["source"] = _choice(tel.get("source", "pbx-line"), tp + ".source", SOURCE)
        fwd = tel.get("forward")
        if fwd is not None:
            fwd = _obj(fwd, tp + ".forward")
            if fwd == {"voicemail": True}:
                o["forward"] = {"voicemail": True}
            elif list(fwd) == ["number"]:
                o["forward"] = {"number": _str(fwd["number"], tp + ".forward.number", 64)}
            else:
                raise BadInput(tp + ".forward", 'must be {"voicemail": true} or {"number": "..."}')
        out["telephony"] = o
    if u.get("rich") is not None:
        rp = p + "rich"
        rich = _obj(u["rich"], rp)
        _known(rich, rp, ("availability", "activity", "note"))
        if "availability" not in rich:
            raise BadInput(rp + ".availability", "is required")
        o = {"availability": _choice(rich["availability"], rp + ".availability", AVAILABILITY)}
        if rich.get("activity") is not None:
            o["activity"] = _str(rich["activity"], rp + ".activity", 64)
        if rich.get("note") is not None:
            if not isinstance(rich["note"], str) or len(rich["note"]) > MAX_NOTE:
                raise BadInput(rp + ".note", f"must be a string of at most {MAX_NOTE} characters")
            o["note"] = rich["note"]
        out["rich"] = o
    return out


def validate_body(body):
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise BadInput(None, f"the body is not JSON: {e}")
    if isinstance(doc, dict) and "updates" in doc:
        _known(doc, "", ("updates",))
        ups = doc["updates"]
        if not isinstance(ups, list) or not 1 <= len(ups) <= MAX_UPDATES:
            raise BadInput("updates", f"must be a list of 1 to {MAX_UPDATES} updates")
        return [validate_update(u, f"updates[{i}]") for i, u in enumerate(ups)]
    if not isinstance(doc, dict):
        raise BadInput(None, "the body must be a JSON object")
    return [validate_update(doc, "")]


# --------------------------------------------------------------------------
# The canonical dict to the contract's presence update.


def to_update(s, replay):
    tel = None
    if "telephony" in s:
        x = s["telephony"]
        fwd = None
        if "forward" in x:
            f = x["forward"]
            fwd = t.ForwardTarget_Voicemail() if "voicemail" in f else t.ForwardTarget_Number(f["number"])
        tel = t.TelephonyPresence(
            line=LINE[x["line"]], do_not_disturb=x["dnd"], forward=fwd, source=SOURCE[x["source"]]
        )
    rich = None
    if "rich" in s:
        x = s["rich"]
        act = None
        if "activity" in x:
            known = ACTIVITY.get(x["activity"])
            act = known() if known else t.Activity_Other(x["activity"])
        rich = t.RichPresence(availability=AVAILABILITY[x["availability"]], activity=act, note=x.get("note"))
    ordering = t.Ordering(epoch="push", sequence=s["sequence"]) if "sequence" in s else None
    return t.PresenceUpdate(
        endpoint=s["endpoint"],
        observed_at=s.get("observed_at", s["received_at"]),
        ordering=ordering,
        origin=t.UpdateOrigin_Platform(),
        telephony=tel,
        rich=rich,
        calendar=None,
        valid_for_ms=None,
        raw=[t.VendorValue("delivery", "kv-replay" if replay else "webhook")],
    )


def respond(status, doc, extra=()):
    headers = [t.Header("content-type", "application/json")] + list(extra)
    return c.WebhookResponse(status=status, headers=headers, body=json.dumps(doc).encode())


def error(status, message, field=None, extra=()):
    doc = {"error": message}
    if status == 400:
        doc["field"] = field
    return respond(status, doc, extra)


def header(req, name):
    """The value of a header sent exactly once, else None."""
    vals = [h.value for h in req.headers if h.name.lower() == name]
    return vals[0] if len(vals) == 1 else None


# --------------------------------------------------------------------------
# The connector: one instance per component instance.


class State:
    """What the connector instance knows. Module-level, so that it does not
    depend on how often the bindings create the `Connector` object."""

    def __init__(self):
        self.secret = None  # bytes, once configured
        self.max_skew_s = 300
        self.heartbeat_ms = 60_000
        self.timer = None
        self.beats = 0
        self.pushes = 0
        self.watched = set()


S = State()


class Connector(wit_world.exports.Connector):

    def describe(self):
        both = t.Channels.RICH | t.Channels.TELEPHONY
        return t.PluginInfo(
            name="Python example connector",
            version=VERSION,
            description="Presence pushed over an HMAC-signed webhook, kept per endpoint; written in Python",
            config_fields=[
                t.ConfigField(
                    name="shared_secret",
                    label="Shared secret",
                    description="HMAC-SHA256 key the sender signs each push with; at least 16 characters",
                    kind=t.FieldKind_Text(),
                    default_value=None,
                    required=True,
                    secret=True,
                ),
                t.ConfigField(
                    name="max_skew_seconds",
                    label="Allowed clock skew (s)",
                    description="How far a push's X-Hub-Timestamp may be from the hub's clock, 1 to 3600",
                    kind=t.FieldKind_Integer(),
                    default_value="300",
                    required=False,
                    secret=False,
                ),
                t.ConfigField(
                    name="heartbeat_seconds",
                    label="Heartbeat (s)",
                    description="How often the connector refreshes its status, 1 to 3600",
                    kind=t.FieldKind_Integer(),
                    default_value="60",
                    required=False,
                    secret=False,
                ),
            ],
            endpoint_kinds=[
                t.EndpointKind("extension", "Extension number", both),
                t.EndpointKind("username", "Username", both),
            ],
            capabilities=t.Capabilities(
                writes=t.Channels(0),
                dnd_scopes=[],
                restore=False,
                expiry=False,
                webhooks=True,
                batched_events=True,
            ),
        )

    def configure(self, config):
        values = {e.name: e.value.value for e in config}
        secret = values.get("shared_secret")
        if not isinstance(secret, str) or len(secret) < 16:
            S.secret = None
            raise Err(t.ConnectorError_InvalidConfig(t.FieldError("shared_secret", "must be at least 16 characters")))
        skew = values.get("max_skew_seconds", 300)
        if not 1 <= skew <= 3600:
            raise Err(t.ConnectorError_InvalidConfig(t.FieldError("max_skew_seconds", "must be 1 to 3600")))
        beat = values.get("heartbeat_seconds", 60)
        if not 1 <= beat <= 3600:
            raise Err(t.ConnectorError_InvalidConfig(t.FieldError("heartbeat_seconds", "must be 1 to 3600")))
        S.secret = secret.encode()
        S.max_skew_s = skew
        S.heartbeat_ms = beat * 1000
        if S.timer is not None:
            timers.cancel(S.timer)
        S.timer = timers.set_timer(S.heartbeat_ms)
        stored = len(kv.list_keys(STATE_PREFIX))
        report.status(t.ConnectorStatus.UP_AND_RUNNING, f"ready; {stored} endpoint states in store")
        log.log(log.Level.INFO, f"configured: heartbeat every {beat} s, {stored} stored states")

    def handle_events(self, events):
        for ev in events:
            if isinstance(ev, c.Event_Timer) and ev.value == S.timer:
                S.beats += 1
                S.timer = timers.set_timer(S.heartbeat_ms)
                report.status(
                    t.ConnectorStatus.UP_AND_RUNNING,
                    f"heartbeat {S.beats}: {len(S.watched)} watched, {S.pushes} pushes since start",
                )
            elif isinstance(ev, c.Event_Shutdown):
                log.log(log.Level.INFO, f"shutting down after {S.pushes} pushes")
            # This connector opens no sockets: other events cannot come.

    def watch(self, endpoints):
        for ep in endpoints:
            S.watched.add(ep)
            stored = load(ep)
            if stored is None:
                report.endpoint_state(ep, t.EndpointState.REQUESTING, "no push for this endpoint yet")
            else:
                report.presence(to_update(stored, replay=True))
                report.endpoint_state(ep, t.EndpointState.ACTIVE, f"restored from kv (received at {stored['received_at']})")

    def unwatch(self, endpoints):
        for ep in endpoints:
            S.watched.discard(ep)

    def write_presence(self, request):
        raise Err(t.ConnectorError_Unsupported("the push source is read-only: this connector cannot write presence"))

    def handle_webhook(self, req):
        if S.secret is None:
            return error(503, "the connector is not configured")
        if req.path == "/presence":
            if req.method != "POST":
                return error(405, "use POST", extra=[t.Header("allow", "POST")])
        elif req.path.startswith("/state/"):
            if req.method != "GET":
                return error(405, "use GET", extra=[t.Header("allow", "GET")])
        else:
            return error(404, f"no route {req.path}; push to /presence")
        bad = self.check_signature(req)
        if bad:
            return error(401, bad)
        if req.method == "GET":
            stored = load(req.path[len("/state/"):])
            return respond(200, stored) if stored else error(404, "no state stored for this endpoint")
        try:
            updates = validate_body(req.body)
        except BadInput as e:
            return error(400, e.message, e.field)
        now = timers.now()
        reported = 0
        for s in updates:
            s["received_at"] = now
            try:
                kv.set(STATE_PREFIX + s["endpoint"], json.dumps(s).encode())
            except Err as e:
                # The store refused (its quota): say so rather than trap.
                return error(503, f"cannot keep the state of {s['endpoint']}: {e.value}")
            if s["endpoint"] in S.watched:
                report.presence(to_update(s, replay=False))
                report.endpoint_state(s["endpoint"], t.EndpointState.ACTIVE, None)
                reported += 1
        S.pushes += len(updates)
        return respond(202, {"accepted": len(updates), "reported": reported})

    def check_signature(self, req):
        """None when the request is signed right, else why not."""
        ts = header(req, "x-hub-timestamp")
        sig = header(req, "x-hub-signature")
        if ts is None or sig is None:
            return "X-Hub-Timestamp and X-Hub-Signature are required, once each"
        if not ts.isdigit() or not sig.startswith("sha256="):
            return "X-Hub-Timestamp must be Unix seconds and X-Hub-Signature sha256=<hex>"
        if abs(timers.now() // 1000 - int(ts)) > S.max_skew_s:
            return "X-Hub-Timestamp is outside the allowed skew: is the sender's clock right?"
        want = hmac.new(S.secret, ts.encode() + b"." + req.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want.encode(), sig[len("sha256="):].lower().encode()):
            return "the signature does not match"
        return None


def load(endpoint):
    raw = kv.get(STATE_PREFIX + endpoint)
    return json.loads(raw) if raw else None


def _warm_up():
    """componentize-py runs this module at build time and snapshots the
    result. Built with `--stub-wasi`, the component has no file system at
    run time, so a module that Python first imports while handling a call
    traps (in `stat`). Run every path that may import lazily once, now."""
    key, msg = b"0123456789abcdef", b"1700000000.{}"
    want = hmac.new(key, msg, hashlib.sha256).hexdigest()
    hmac.compare_digest(want.encode(), b"sha256=" + want.encode())
    for body in (b"not json", b"\xff", b"[]", b'{"updates": [{"endpoint": ""}]}'):
        try:
            validate_body(body)
        except BadInput as e:
            f"{e.field}: {e.message}"
    doc = b'{"endpoint": "e", "sequence": 1, "telephony": {"line": "idle", "forward": {"voicemail": true}},' \
        b' "rich": {"availability": "busy", "activity": "lunch", "note": "n"}}'
    for s in validate_body(doc):
        s["received_at"] = 0
        to_update(json.loads(json.dumps(s)), replay=True)
    respond(202, {"accepted": 1})
    error(400, "x", "y")


_warm_up()
