"""Errors a connector raises to the host (WIT `connector-error`) and the
host's refusals (WIT `host-error`)."""


class ConnectorError(Exception):
    """Base of the errors a connector method may raise to the host."""


class InvalidConfig(ConnectorError):
    """A configuration value is wrong: names the field and what is allowed."""

    def __init__(self, field, message):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotConfigured(ConnectorError):
    pass


class UnknownEndpoint(ConnectorError):
    def __init__(self, endpoint):
        super().__init__(endpoint)
        self.endpoint = endpoint


class Unsupported(ConnectorError):
    pass


class Other(ConnectorError):
    pass


class HostError(Exception):
    """The host refused a call. `kind` is the WIT case (`not-granted`,
    `invalid-argument`, `unknown-handle`, `limit-exceeded`, `io`, `other`),
    the message says what (a missing grant names it:
    `tcp://pbx.example.com:5061`)."""

    def __init__(self, kind, message):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


class HttpError(Exception):
    """A request produced no response: `refused` by the host (a missing
    grant, a limit) or `failed` on the way (dns, refused, timeout, reset,
    tls, ...); `detail` says which and why."""

    def __init__(self, kind, detail):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
