"""presence_sdk: write a presence connector for the hub in Python.

The Python counterpart of the Rust SDK (`sdk/`, guide `sdk/GUIDE.md`): a
`Connector` base class with defaults, typed configuration declared once
(`Field`), keyed timers, HTTP and WebSockets through `Cx`, OAuth client
credentials with the token kept in kv (`oauth.ClientCredentials`), retry
with Retry-After (`Retry`, `Backoff`), presence builders (`Update`), one
registration call (`component.register`) and a test kit that runs a
connector under plain CPython (`testkit.Harness`). Contract: WIT
`presence:connector@0.2.0` (`wit/since_v0.2.0/connector.wit`).
"""

from .backoff import Backoff
from .config import Choice, Config, Field, ServerAddress
from .connector import Connector, Cx, Request, Response, Retry, form_encode, quote
from .errors import (ConnectorError, HostError, HttpError, InvalidConfig, NotConfigured, Other,
                     UnknownEndpoint, Unsupported)
from .model import (Capabilities, CloseInfo, DirectoryEntry, EndpointKind, Rich, Telephony, Update,
                    WebhookRequest, WebhookResponse)
from .oauth import ClientCredentials, OAuthError
from .timeutil import iso_ms, retry_after_ms

__all__ = [
    "Backoff", "Choice", "Config", "Field", "ServerAddress", "Connector", "Cx", "Request", "Response",
    "Retry", "form_encode", "quote", "ConnectorError", "HostError", "HttpError", "InvalidConfig",
    "NotConfigured", "Other", "UnknownEndpoint", "Unsupported", "Capabilities", "CloseInfo",
    "DirectoryEntry", "EndpointKind", "Rich", "Telephony", "Update", "WebhookRequest", "WebhookResponse",
    "ClientCredentials", "OAuthError", "iso_ms", "retry_after_ms",
]
