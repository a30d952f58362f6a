"""Typed configuration, declared once.

A connector lists its fields; the SDK turns the list into `describe()`'s
config fields and the host's validated values into a `Config` with one
attribute per field (defaults filled in, choices and ranges checked, a
wrong value raised as `InvalidConfig` naming the field):

    CONFIG = [
        Field("client_id", "Client ID", "OAuth client of the org", required=True),
        Field("client_secret", "Client secret", "...", required=True, secret=True),
        Field("region", "Region", "...", kind=Choice(["mypurecloud.com", "mypurecloud.ie"]),
              default="mypurecloud.com"),
        Field("page_size", "Page size", "1 to 500", kind="integer", default=100, min=1, max=500),
    ]
"""

from dataclasses import dataclass
from typing import Optional

from .errors import InvalidConfig


@dataclass(frozen=True)
class Choice:
    """One of `values`."""
    values: tuple

    def __init__(self, values):
        object.__setattr__(self, "values", tuple(values))


@dataclass(frozen=True)
class ServerAddress:
    """`host[:port]`; `default_port` when the operator leaves the port out.
    The operator's value widens the plugin's network grants."""
    default_port: int


#: The simple kinds, by name: "text", "integer", "boolean", "url" (an
#: absolute http(s)/ws(s) URL that widens the plugin's grants to its host).
KINDS = ("text", "integer", "boolean", "url")


@dataclass
class Field:
    """One configuration field (WIT `config-field`): `name` (snake_case, the
    attribute on `Config`), `label` and `description` for operators, `kind`
    (a KINDS name, `Choice` or `ServerAddress`), `default` (a Python value),
    `required`, `secret` (stored encrypted, never shown), and for integers
    an inclusive `min`/`max`."""
    name: str
    label: str
    description: str
    kind: object = "text"
    default: object = None
    required: bool = False
    secret: bool = False
    min: Optional[int] = None
    max: Optional[int] = None

    def __post_init__(self):
        if not isinstance(self.kind, (Choice, ServerAddress)) and self.kind not in KINDS:
            raise ValueError(f"field {self.name}: kind must be one of {KINDS}, a Choice or a ServerAddress")

    def default_text(self):
        """The default as an operator would type it, or None."""
        if self.default is None:
            return None
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        return str(self.default)


class Config:
    """Parsed configuration: one attribute per declared field; `None` for an
    optional field left out without a default. `values()` is a dict copy."""

    def __init__(self, values):
        self.__dict__.update(values)

    def values(self):
        return dict(self.__dict__)

    def __repr__(self):
        return "Config(<%d fields>)" % len(self.__dict__)


def parse(fields, entries):
    """`entries` ({name: value}, the host's validated values: str, int or
    bool) into a `Config`. Raises `InvalidConfig` for a missing required
    field, an unknown name, a value of the wrong type, out of range or not
    among the choices."""
    by_name = {f.name: f for f in fields}
    for name in entries:
        if name not in by_name:
            raise InvalidConfig(name, "is not a field of this connector")
    out = {}
    for f in fields:
        v = entries.get(f.name)
        if isinstance(v, str) and v == "" and not f.required:
            v = None
        if v is None:
            if f.required:
                raise InvalidConfig(f.name, "is required")
            out[f.name] = f.default
            continue
        if f.kind == "integer":
            if isinstance(v, bool) or not isinstance(v, int):
                raise InvalidConfig(f.name, "must be an integer")
            if (f.min is not None and v < f.min) or (f.max is not None and v > f.max):
                raise InvalidConfig(f.name, f"must be {f.min} to {f.max}")
        elif f.kind == "boolean":
            if not isinstance(v, bool):
                raise InvalidConfig(f.name, "must be true or false")
        else:
            if not isinstance(v, str):
                raise InvalidConfig(f.name, "must be text")
            if isinstance(f.kind, Choice) and v not in f.kind.values:
                raise InvalidConfig(f.name, "must be one of " + ", ".join(f.kind.values))
            if f.kind == "url" and not v.split("://", 1)[0] in ("http", "https", "ws", "wss"):
                raise InvalidConfig(f.name, "must be an absolute http(s) or ws(s) URL")
            if f.required and not v.strip():
                raise InvalidConfig(f.name, "is required")
        out[f.name] = v
    return Config(out)
