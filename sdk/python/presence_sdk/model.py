"""The contract's presence model as plain Python values, with builders.

The names are the WIT contract's (`wit/since_v0.2.0/connector.wit`,
`presence:connector@0.2.0`) in its own kebab-case spelling, so a connector
never touches the generated bindings and runs unchanged under CPython (the
test kit) and inside the component (`presence_sdk.component`).

    update = Update("u-1").rich("busy", activity="in-a-meeting", note="1:1") \\
                          .telephony("in-call").observed(1_700_000_000_000) \\
                          .raw("systemPresence", "MEETING")
"""

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

AVAILABILITY = ("available", "away", "busy", "do-not-disturb", "offline", "unknown")
#: The contract's well-known activities; any other text is `other(text)`.
ACTIVITIES = (
    "in-a-call", "in-a-conference", "in-a-meeting", "presenting",
    "out-of-office", "be-right-back", "off-work", "inactive",
)
LINE_STATES = ("idle", "ringing", "dialing", "in-call", "on-hold", "unknown")
TELEPHONY_SOURCES = ("pbx-line", "sip-derived")
CONNECTOR_STATUS = (
    "not-configured", "disabled", "forbidden", "connection-error", "up-and-running",
    "credentials-not-found", "login-required", "throttled",
)
ENDPOINT_STATES = ("active", "requesting", "not-found", "access-denied", "error")
CHANNELS = ("rich", "telephony", "calendar")


def _check(value, allowed, what):
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")
    return value


@dataclass
class Rich:
    """Rich presence: `availability` (one of AVAILABILITY), `activity` (a
    well-known ACTIVITIES name or any other text), `note`."""
    availability: str
    activity: Optional[str] = None
    note: Optional[str] = None

    def __post_init__(self):
        _check(self.availability, AVAILABILITY, "availability")


@dataclass
class Telephony:
    """A line: `line` (LINE_STATES), do-not-disturb, `forward` (None,
    "voicemail" or a number), `source` (TELEPHONY_SOURCES)."""
    line: str
    dnd: bool = False
    forward: Optional[str] = None
    forward_voicemail: bool = False
    source: str = "pbx-line"

    def __post_init__(self):
        _check(self.line, LINE_STATES, "line")
        _check(self.source, TELEPHONY_SOURCES, "telephony source")


@dataclass
class Update:
    """One observation of one endpoint (WIT `presence-update`). Channels left
    None are not changed. `observed_at` and `valid_for_ms` in milliseconds;
    `ordering` is (epoch, sequence); `origin` is "platform",
    ("hub-write", id) or ("connector-rule", name)."""
    endpoint: str
    rich_presence: Optional[Rich] = None
    telephony_presence: Optional[Telephony] = None
    observed_at: Optional[int] = None
    ordering: Optional[Tuple[str, int]] = None
    origin: object = "platform"
    valid_for_ms: Optional[int] = None
    raw_values: List[Tuple[str, str]] = field(default_factory=list)

    def rich(self, availability, activity=None, note=None):
        self.rich_presence = Rich(availability, activity, note)
        return self

    def telephony(self, line, dnd=False, forward=None, source="pbx-line"):
        self.telephony_presence = Telephony(line, dnd, forward, forward == "voicemail", source)
        return self

    def observed(self, ms):
        self.observed_at = ms
        return self

    def ordered(self, epoch, sequence):
        self.ordering = (epoch, sequence)
        return self

    def raw(self, name, value):
        self.raw_values.append((name, str(value)))
        return self


@dataclass
class DirectoryEntry:
    """One user of the source's directory, for mapping users by email."""
    endpoint: str
    email: Optional[str] = None
    display_name: Optional[str] = None
    extension: Optional[str] = None


@dataclass
class EndpointKind:
    """A user attribute the connector watches (`email`, `extension`, or the
    plugin's own lowercase name) and the channels it feeds."""
    attribute: str
    label: str
    feeds: Tuple[str, ...] = ("rich", "telephony")


@dataclass
class Capabilities:
    """What the connector can do beyond reading (WIT `capabilities`)."""
    writes: Tuple[str, ...] = ()
    dnd_scopes: Tuple[str, ...] = ()
    restore: bool = False
    expiry: bool = False
    webhooks: bool = False
    batched_events: bool = True


@dataclass
class CloseInfo:
    """How a WebSocket ended: the peer's close `code` (RFC 6455 §7.4) and
    `reason`, and `failure` (text) when it did not end in an orderly close."""
    code: Optional[int]
    reason: str
    failure: Optional[str] = None


@dataclass
class WebhookRequest:
    method: str
    path: str
    query: str
    headers: List[Tuple[str, str]]
    body: bytes


@dataclass
class WebhookResponse:
    status: int
    headers: List[Tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
