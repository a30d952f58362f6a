#!/usr/bin/env python3
"""OpenAPI check for the RingCentral simulator (tests/src/rc_sim.rs).

A long-lived sidecar: it loads RingCentral's OpenAPI 3.0.3 description once
(`ringcentral-openapi.yml` beside this file, a copy of
tylerlong/ringcentral-open-api-parser `rc-public-openapi.yml`) and then
validates one request per stdin line with openapi-core 0.23.1.

Protocol (one JSON object per line each way):
  first line out:  {"ready": true} or {"ready": false, "error": "..."}
  in:  {"method", "path", "query", "content_type", "body_b64", "ws": bool}
       (`headers` is accepted and ignored, see "Security" below)
  out: {"ok": bool, "operation": "<operationId>"|null,
        "group": "<x-throttling-group>"|null, "errors": ["..."]}

What is checked: that the path and method name an operation of the
description, and the operation's parameters (path, query; types, enums,
required) and request body (media type and schema).

Security: the description's schemes are not checked here (openapi-core
warns "Unsupported scheme type" for the `OAuth2` scheme, and `getToken`
names an `OauthBasicScheme` the description never defines). The
simulator checks `Authorization` itself and answers 401 as RingCentral does.

Two adjustments to the description, both applied in memory:
- openapi-core 0.23.1 decodes an `application/x-www-form-urlencoded` body
  by walking the schema's `allOf` members, and skips every member without a
  `type` (validation/schemas/validators.py, `iter_all_of_schemas`).
  `PublicGetTokenRequest` is `allOf[..., anyOf[AuthCode|Jwt|Refresh]]`, so
  `grant_type`, `assertion`, `refresh_token` and `code` were dropped and
  every token request failed. Composition members whose every branch is an
  object get `type: object` added: that changes nothing a form or JSON
  object body can be, it only lets the decoder see them.
- Requests carried in WebSocket `ClientRequest` frames (`"ws": true`) are
  checked against a copy in which `AnyPublicDeliveryModeRequest` also
  admits the description's own `WebSocketDeliveryMode`
  (`{"transportType": "WebSocket"}`): the public description maps only
  `WebHook`, while the WebSocket guide
  (docs/notifications/websockets/subscribing.md) creates WebSocket
  subscriptions with exactly that body over the socket. Over plain REST a
  WebSocket delivery mode stays invalid.
"""

import base64
import copy
import json
import os
import sys
import warnings
from urllib.parse import parse_qs

warnings.simplefilter("ignore")

try:
    import yaml
    from openapi_core import Config, OpenAPI
    from openapi_core.templating.paths.exceptions import PathError
    from openapi_core.testing import MockRequest
    from openapi_core.validation.request.validators import V30RequestValidator
except ImportError as e:  # pragma: no cover - reported to the Rust side
    print(json.dumps({"ready": False, "error": f"{e}"}), flush=True)
    sys.exit(0)

HOST = "https://platform.ringcentral.com"
SPEC = os.environ.get(
    "RC_OPENAPI_SPEC",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "ringcentral-openapi.yml"),
)


class NoSecurityValidator(V30RequestValidator):
    """Path, operation, parameters and body; security is the simulator's."""

    def _get_security(self, parameters, operation):
        return {}


def resolve(d, node):
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            return node
        cur = d
        for part in ref[2:].split("/"):
            cur = cur[part]
        node = cur
    return node


def is_object(d, node, depth=0):
    node = resolve(d, node)
    if not isinstance(node, dict) or depth > 8:
        return False
    if node.get("type") == "object":
        return True
    for key in ("allOf", "anyOf", "oneOf"):
        if key in node:
            return all(is_object(d, m, depth + 1) for m in node[key])
    return "properties" in node


def type_compositions(d):
    """Give untyped object compositions `type: object` (see module doc)."""
    seen = set()

    def walk(node):
        if isinstance(node, dict):
            if id(node) in seen:
                return
            seen.add(id(node))
            if "$ref" not in node and "type" not in node:
                for key in ("anyOf", "oneOf"):
                    if key in node and all(is_object(d, m) for m in node[key]):
                        node["type"] = "object"
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(d)


def build(d):
    return NoSecurityValidator(OpenAPI.from_dict(d, config=Config(spec_validator_cls=None)).spec)


def explain(e):
    out = [str(e)]
    c = e.__cause__
    while c is not None:
        for se in getattr(c, "schema_errors", None) or []:
            where = "/".join(str(p) for p in se.absolute_path) or "(body)"
            out.append(f"{where}: {se.message}")
            # anyOf/oneOf failures: say why each branch refused.
            for sub in list(getattr(se, "context", None) or [])[:8]:
                sub_where = "/".join(str(p) for p in sub.absolute_path) or where
                out.append(f"  {sub_where}: {sub.message}")
        if not getattr(c, "schema_errors", None):
            out.append(f"{type(c).__name__}: {c}")
        c = c.__cause__
    return out


def main():
    with open(SPEC, "rb") as f:
        d = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    type_compositions(d)
    rest = build(d)
    ws_validator = None

    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            validator = rest
            if req.get("ws"):
                if ws_validator is None:
                    w = copy.deepcopy(d)
                    modes = w["components"]["schemas"]["AnyPublicDeliveryModeRequest"]
                    modes["anyOf"].append({"$ref": "#/components/schemas/WebSocketDeliveryMode"})
                    modes.get("discriminator", {}).get("mapping", {})["WebSocket"] = (
                        "#/components/schemas/WebSocketDeliveryMode"
                    )
                    ws_validator = build(w)
                validator = ws_validator
            body = base64.b64decode(req.get("body_b64") or "") or None
            r = MockRequest(
                HOST,
                req["method"].lower(),
                req["path"],
                args=parse_qs(req.get("query") or "", keep_blank_values=True),
                data=body,
                content_type=req.get("content_type") or "application/json",
            )
            operation = group = None
            try:
                _, op, _, _, _ = validator._find_path(r)
                contents = op.read_value()
                operation = contents.get("operationId")
                group = contents.get("x-throttling-group")
            except PathError as e:
                out = {"ok": False, "operation": None, "group": None, "errors": [str(e)]}
                print(json.dumps(out), flush=True)
                continue
            errors = []
            for e in validator.iter_errors(r):
                errors.extend(explain(e))
            out = {"ok": not errors, "operation": operation, "group": group, "errors": errors}
        except Exception as e:  # a broken request line is a failed check, not a crash
            out = {"ok": False, "operation": None, "group": None, "errors": [f"checker: {type(e).__name__}: {e}"]}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
