"""The bridge to the WIT bindings componentize-py generates
(`presence:connector@0.2.0`, world `connector-plugin`).

`register(MyConnector)` creates the one `Runtime` that owns the connector
and returns the class componentize-py exports; the app module binds it to
the name `Connector`:

    Connector = register(GenesysConnector)

Under plain CPython (the test kit) there are no bindings and `register`
returns None, so the same module imports in tests.
"""

from .connector import Host, Response, Runtime
from .errors import (ConnectorError, HostError, HttpError, InvalidConfig, NotConfigured, Other,
                     UnknownEndpoint, Unsupported)
from .model import CloseInfo, WebhookRequest, Update

try:  # present only inside componentize-py's build
    import wit_world
    from componentize_py_types import Err, Ok
    from wit_world.exports import connector as c
    from wit_world.imports import http, instance, kv, log, report, timers, websocket
    from wit_world.imports import types as t
except ImportError:  # plain CPython
    wit_world = None


def _enum(cls, name):
    return cls[name.upper().replace("-", "_")]


def _channels(names):
    flags = t.Channels(0)
    for n in names:
        flags |= _enum(t.Channels, n)
    return flags


_ACTIVITY = {}


def _activity(a):
    if a is None:
        return None
    known = _ACTIVITY.get(a)
    return known() if known else t.Activity_Other(a)


def _host_error(e):
    v = e.value
    kind = type(v).__name__.split("_", 1)[-1]
    kebab = "".join("-" + ch.lower() if ch.isupper() else ch for ch in kind).lstrip("-")
    return HostError(kebab, str(getattr(v, "value", "")))


def _failure(f):
    if f is None:
        return None
    kind = type(f).__name__.split("_", 1)[-1].lower()
    v = getattr(f, "value", None)
    if v is None:
        return kind
    if hasattr(v, "status"):
        return f"{kind}: HTTP {v.status}"
    return f"{kind}: {v}"


def to_wit_update(u):
    tel = None
    if u.telephony_presence is not None:
        x = u.telephony_presence
        fwd = None
        if x.forward_voicemail:
            fwd = t.ForwardTarget_Voicemail()
        elif x.forward:
            fwd = t.ForwardTarget_Number(x.forward)
        tel = t.TelephonyPresence(line=_enum(t.LineState, x.line), do_not_disturb=x.dnd, forward=fwd,
                                  source=_enum(t.TelephonySource, x.source))
    rich = None
    if u.rich_presence is not None:
        x = u.rich_presence
        rich = t.RichPresence(availability=_enum(t.Availability, x.availability),
                              activity=_activity(x.activity), note=x.note)
    if u.origin == "platform":
        origin = t.UpdateOrigin_Platform()
    elif u.origin[0] == "hub-write":
        origin = t.UpdateOrigin_HubWrite(u.origin[1])
    else:
        origin = t.UpdateOrigin_ConnectorRule(u.origin[1])
    ordering = t.Ordering(epoch=u.ordering[0], sequence=u.ordering[1]) if u.ordering else None
    return t.PresenceUpdate(endpoint=u.endpoint, observed_at=u.observed_at, ordering=ordering, origin=origin,
                            telephony=tel, rich=rich, calendar=None, valid_for_ms=u.valid_for_ms,
                            raw=[t.VendorValue(n, v) for n, v in u.raw_values])


class WitHost(Host):
    """`Host` over the WIT imports."""

    def now(self):
        return timers.now()

    def set_timer(self, after_ms):
        return timers.set_timer(after_ms)

    def cancel_timer(self, handle):
        timers.cancel(handle)

    def http_send(self, r):
        try:
            return http.send(http.Request(method=r.method, url=r.url,
                                          headers=[t.Header(k, v) for k, v in r.headers],
                                          body=r.body, timeout_ms=r.timeout_ms))
        except Err as e:
            raise _host_error(e)

    def http_cancel(self, handle):
        http.cancel(handle)

    def ws_connect(self, url, headers, ping, pong, connect_timeout):
        try:
            return websocket.connect(url, websocket.ConnectOptions(
                headers=[t.Header(k, v) for k, v in headers], subprotocols=[],
                connect_timeout_ms=connect_timeout, ping_interval_ms=ping, pong_timeout_ms=pong))
        except Err as e:
            raise _host_error(e)

    def ws_send_text(self, handle, text):
        try:
            websocket.send_text(handle, text)
        except Err as e:
            raise _host_error(e)

    def ws_send_binary(self, handle, data):
        try:
            websocket.send_binary(handle, data)
        except Err as e:
            raise _host_error(e)

    def ws_close(self, handle, code, reason):
        websocket.close(handle, code, reason)

    def kv_get(self, key):
        try:
            return kv.get(key)
        except Err as e:
            raise _host_error(e)

    def kv_set(self, key, value):
        try:
            kv.set(key, value)
        except Err as e:
            raise _host_error(e)

    def kv_delete(self, key):
        try:
            kv.delete(key)
        except Err as e:
            raise _host_error(e)

    def kv_list(self, prefix):
        try:
            return kv.list_keys(prefix)
        except Err as e:
            raise _host_error(e)

    def random_bytes(self, n):
        return instance.random_bytes(n)

    def instance_id(self):
        return instance.info().id

    def log(self, level, message):
        log.log(_enum(log.Level, level), message)

    def report_presence(self, update):
        report.presence(to_wit_update(update))

    def report_endpoint_state(self, endpoint, state, detail):
        report.endpoint_state(endpoint, _enum(t.EndpointState, state), detail)

    def report_status(self, status, detail):
        report.status(_enum(t.ConnectorStatus, status), detail)

    def report_directory(self, entries, complete):
        report.directory([t.DirectoryEntry(e.endpoint, e.email, e.display_name, e.extension)
                          for e in entries], complete)

    def report_write_outcome(self, write_id, outcome):
        report.write_outcome(write_id, outcome)


def _wit_error(e):
    if isinstance(e, InvalidConfig):
        return Err(t.ConnectorError_InvalidConfig(t.FieldError(e.field, e.message)))
    if isinstance(e, NotConfigured):
        return Err(t.ConnectorError_NotConfigured())
    if isinstance(e, UnknownEndpoint):
        return Err(t.ConnectorError_UnknownEndpoint(e.endpoint))
    if isinstance(e, Unsupported):
        return Err(t.ConnectorError_Unsupported(str(e)))
    return Err(t.ConnectorError_Other(str(e)))


def _describe(cls):
    fields = []
    for f in cls.CONFIG:
        k = f.kind
        if k == "text":
            kind = t.FieldKind_Text()
        elif k == "integer":
            kind = t.FieldKind_Integer()
        elif k == "boolean":
            kind = t.FieldKind_Boolean()
        elif k == "url":
            kind = t.FieldKind_Url()
        elif hasattr(k, "values"):
            kind = t.FieldKind_Choice(list(k.values))
        else:
            kind = t.FieldKind_ServerAddress(k.default_port)
        fields.append(t.ConfigField(name=f.name, label=f.label, description=f.description, kind=kind,
                                    default_value=f.default_text(), required=f.required, secret=f.secret))
    caps = cls.CAPABILITIES
    return t.PluginInfo(
        name=cls.NAME, version=cls.VERSION, description=cls.DESCRIPTION, config_fields=fields,
        endpoint_kinds=[t.EndpointKind(k.attribute, k.label, _channels(k.feeds)) for k in cls.ENDPOINT_KINDS],
        capabilities=t.Capabilities(
            writes=_channels(caps.writes) if caps else t.Channels(0),
            dnd_scopes=[_enum(t.DndScope, s) for s in caps.dnd_scopes] if caps else [],
            restore=bool(caps and caps.restore), expiry=bool(caps and caps.expiry),
            webhooks=bool(caps and caps.webhooks), batched_events=True if caps is None else caps.batched_events))


def register(cls):
    """Create the runtime that owns `cls`'s one instance and return the
    class componentize-py exports (bind it to `Connector` in the app
    module); None under plain CPython."""
    if wit_world is None:
        return None
    _ACTIVITY.update({
        "in-a-call": t.Activity_InACall, "in-a-conference": t.Activity_InAConference,
        "in-a-meeting": t.Activity_InAMeeting, "presenting": t.Activity_Presenting,
        "out-of-office": t.Activity_OutOfOffice, "be-right-back": t.Activity_BeRightBack,
        "off-work": t.Activity_OffWork, "inactive": t.Activity_Inactive,
    })
    rt = Runtime(cls, WitHost())
    info = _describe(cls)

    def guarded(f):
        try:
            f()
        except ConnectorError as e:
            raise _wit_error(e)

    class Exported(wit_world.exports.Connector):
        def describe(self):
            return info

        def configure(self, config):
            guarded(lambda: rt.configure({e.name: e.value.value for e in config}))

        def handle_events(self, events):
            for ev in events:
                if isinstance(ev, c.Event_Timer):
                    rt.timer_fired(ev.value)
                elif isinstance(ev, c.Event_HttpResponse):
                    o = ev.value.outcome
                    if isinstance(o, Ok):
                        r = o.value
                        out = Response(r.status, [(h.name, h.value) for h in r.headers], r.body)
                    else:
                        out = HttpError("failed", _failure(o.value))
                    rt.http_result(ev.value.request, out)
                elif isinstance(ev, c.Event_WebsocketOpened):
                    rt.ws_opened(ev.value.socket, [(h.name, h.value) for h in ev.value.headers])
                elif isinstance(ev, c.Event_WebsocketMessage):
                    rt.ws_message(ev.value.socket, ev.value.payload.value)
                elif isinstance(ev, c.Event_WebsocketClosed):
                    ci = ev.value.close
                    rt.ws_closed(ev.value.socket, CloseInfo(ci.code, ci.reason, _failure(ci.failure)))
                elif isinstance(ev, c.Event_Shutdown):
                    rt.shutdown()

        def handle_webhook(self, request):
            r = rt.webhook(WebhookRequest(request.method, request.path, request.query,
                                          [(h.name, h.value) for h in request.headers], request.body))
            return c.WebhookResponse(status=r.status, headers=[t.Header(k, v) for k, v in r.headers], body=r.body)

        def watch(self, endpoints):
            guarded(lambda: rt.watch(endpoints))

        def unwatch(self, endpoints):
            guarded(lambda: rt.unwatch(endpoints))

        def write_presence(self, request):
            guarded(lambda: rt.write(request))

    # componentize-py snapshots the interpreter at build time; a module first
    # imported while handling a call would need the (stubbed) file system.
    # Run the conversions once now so everything they use is loaded.
    to_wit_update(Update("warm-up").rich("busy", "in-a-call", "n").telephony("on-hold", forward="voicemail")
                  .ordered("e", 1).raw("k", "v"))
    _wit_error(InvalidConfig("f", "m")), _wit_error(Other("x"))
    _failure(t.Failure_Timeout()), _failure(t.Failure_Other("x"))
    return Exported
