#!/usr/bin/env python3
"""Validate real HTTP exchanges against an OpenAPI 3.x description.

Used by the end-to-end tests (tests/src/openapi.rs) to hold the hub's
served description (`GET /api/v1/openapi.json`) to what the hub really
takes and answers. A long-lived sidecar: it loads the description named
on the command line once, then checks one exchange per stdin line with
openapi-core 0.23.1 (installed into target/openapi-venv by
`.ci/install-test-deps.sh`).

    check.py SPEC            (SPEC: a JSON or YAML file)

Protocol (one JSON object per line each way):
  first line out: {"ready": true} or {"ready": false, "error": "..."}
  in, an exchange:
      {"method", "path", "query", "headers": {name: value},
       "content_type", "body_b64",            # the request
       "check_request": bool,                 # also validate the request
       "status", "response_content_type", "response_body_b64"}
  in, one message against a named schema (e.g. a feed message):
      {"schema": "FeedMessage", "body_b64"}
  out: {"ok": bool, "operation": "<METHOD path-template>"|null, "errors": ["..."]}

What is checked: that the path and method name an operation; with
`check_request`, its security (a bearer token is present where one is
required), parameters (path, query, header; types, enums, required) and
request body; always, that the status is documented for the operation and
the answer's body matches the schema documented for that status and media
type.
"""

import base64
import json
import sys
import warnings
from urllib.parse import parse_qs

warnings.simplefilter("ignore")

try:
    import yaml
    from jsonschema import Draft202012Validator
    from openapi_core import Config, OpenAPI
    from openapi_core.templating.paths.exceptions import PathError
    from openapi_core.testing import MockRequest, MockResponse
except ImportError as e:  # pragma: no cover - reported to the Rust side
    print(json.dumps({"ready": False, "error": f"{e}"}), flush=True)
    sys.exit(0)

HOST = "http://127.0.0.1"


def short(text, limit=600):
    text = str(text)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


def explain(e):
    out = [short(f"{type(e).__name__}: {e}")]
    c = e.__cause__
    while c is not None:
        errs = getattr(c, "schema_errors", None) or []
        for se in errs:
            where = "/".join(str(p) for p in se.absolute_path) or "(body)"
            out.append(short(f"{where}: {se.message}"))
            for sub in list(getattr(se, "context", None) or [])[:8]:
                sub_where = "/".join(str(p) for p in sub.absolute_path) or where
                out.append(short(f"  {sub_where}: {sub.message}"))
        if not errs:
            out.append(short(f"{type(c).__name__}: {c}"))
        c = c.__cause__
    return out


def main():
    if len(sys.argv) != 2:
        print(json.dumps({"ready": False, "error": "usage: check.py SPEC"}), flush=True)
        return
    with open(sys.argv[1], "rb") as f:
        text = f.read()
    try:
        d = json.loads(text)
    except ValueError:
        d = yaml.safe_load(text)
    try:
        api = OpenAPI.from_dict(d, config=Config())
    except Exception as e:  # an invalid description is reported, not a crash
        print(json.dumps({"ready": False, "error": f"invalid description: {e}"}), flush=True)
        return
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            out = check(api, d, json.loads(line))
        except Exception as e:  # a broken line is a failed check, not a crash
            out = {"ok": False, "operation": None, "errors": [f"checker: {type(e).__name__}: {e}"]}
        print(json.dumps(out), flush=True)


def check(api, d, req):
    if "schema" in req:
        schema = {"$ref": f"#/components/schemas/{req['schema']}"}
        v = Draft202012Validator(dict(schema, components=d.get("components", {})))
        body = json.loads(base64.b64decode(req.get("body_b64") or ""))
        errors = [
            f"{'/'.join(str(p) for p in e.absolute_path) or '(message)'}: {e.message}"
            for e in v.iter_errors(body)
        ]
        return {"ok": not errors, "operation": None, "errors": errors}
    body = base64.b64decode(req.get("body_b64") or "") or None
    if body is not None and (req.get("content_type") or "").startswith("text/"):
        # As for answers below: text is given to the schema as text.
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            pass
    r = MockRequest(
        HOST,
        req["method"].lower(),
        req["path"],
        args=parse_qs(req.get("query") or "", keep_blank_values=True),
        headers=req.get("headers") or {},
        data=body,
        content_type=req.get("content_type") or "application/json",
    )
    try:
        path, _, _, _, _ = api.request_validator._find_path(r)
        operation = f"{req['method'].upper()} {path.parts[-1]}"
    except PathError as e:
        return {"ok": False, "operation": None, "errors": [f"undocumented: {e}"]}
    errors = []
    if req.get("check_request"):
        for e in api.request_validator.iter_errors(r):
            errors.extend("request: " + x for x in explain(e))
    data = base64.b64decode(req.get("response_body_b64") or "")
    rtype = (req.get("response_content_type") or "application/json").split(";")[0].strip()
    if not (rtype == "application/json" or rtype.endswith("+json")):
        # openapi-core 0.23 hands a body of a media type it has no
        # deserializer for (text/event-stream, OpenMetrics text) to the
        # schema as bytes, which no `type: string` schema takes: text is
        # given as text.
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    resp = MockResponse(
        data,
        status_code=int(req["status"]),
        content_type=req.get("response_content_type") or "application/json",
    )
    for e in api.response_validator.iter_errors(r, resp):
        errors.extend(f"response {req['status']}: " + x for x in explain(e))
    return {"ok": not errors, "operation": operation, "errors": errors}


if __name__ == "__main__":
    main()
