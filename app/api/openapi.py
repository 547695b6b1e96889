"""The OpenAPI contract says every status an endpoint can answer, each failure with
the one error schema.

FastAPI documents only what a route declares, and its default 422 schema is not
the shape perpdesk answers. Rather than repeat the same ``responses=`` on every
route (and forget one), the generated document is completed here from rules
that follow how the app is built:

* every operation can fail unexpectedly (500) and, with parameters or a body,
  fail validation (422); a body that cannot even be decoded (not UTF-8) is 400,
  as FastAPI answers it;
* every ``/api/v1`` operation but login authenticates (401), checks a role or
  a client scope (403) and is rate-limited (429);
* every write can carry a body over the cap (413) and may find the event log
  unwritable (503, with ``Retry-After``); an ``/api/v1`` write can be refused
  by the engine (400) or name a client or venue that does not exist (404);
* a path id or a ``client`` filter can name nothing (404).

Whatever a route declared itself (400 rejections, 409 conflicts...) is kept and
given the error schema too.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from prometheus_client import CONTENT_TYPE_LATEST

# What a route passes as ``responses=``: status (or "default") -> its OpenAPI entry.
Responses = dict[int | str, dict[str, Any]]

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["code", "message", "details"],
        "properties": {
            "code": {"type": "string", "description": "stable, machine-readable",
                     "examples": ["VALIDATION_ERROR"]},
            "message": {"type": "string", "description": "for a person"},
            "details": {"type": "object", "description": "e.g. the field, the order"},
        },
    }},
}
_REF = {"$ref": "#/components/schemas/Error"}
_READY = {"type": "object", "required": ["status", "problems"], "properties": {
    "status": {"type": "string", "enum": ["ready", "not_ready"]},
    "problems": {"type": "array", "items": {"type": "string"}}}}
_DESCRIPTIONS = {
    "400": "rejected (error.code is the reason), or a body that cannot be decoded",
    "401": "not authenticated",
    "403": "not allowed (role or client scope)", "404": "no such thing",
    "409": "conflicts with the current state", "413": "request body too large",
    "422": "invalid input (error.details.field names it)", "429": "too many requests",
    "500": "unexpected failure (error.details.request_id is logged)",
    "503": "not available now; retry after Retry-After seconds",
}
_WRITES = frozenset({"post", "put", "patch", "delete"})
_PUBLIC = frozenset({"/api/v1/auth/login"})
_METRICS_TEXT = CONTENT_TYPE_LATEST


def _codes(path: str, method: str, operation: dict[str, Any]) -> set[str]:
    codes = {"500"}
    params = operation.get("parameters", [])
    if params or "requestBody" in operation:
        codes.add("422")
    if "requestBody" in operation:
        codes.add("400")  # FastAPI's "There was an error parsing the body"
    if path.startswith("/api/v1/"):
        codes |= {"401", "429"} if path in _PUBLIC else {"401", "403", "429"}
    if method in _WRITES:
        codes |= {"413", "503"}
        if path.startswith("/api/v1/") and path not in _PUBLIC:
            codes |= {"400", "404"}  # refused by the engine; a client or venue unknown
    if "{" in path or any(p.get("name") == "client" for p in params):
        codes.add("404")
    return codes


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """Add the error responses and the error schema to a generated document."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for code in _codes(path, method, operation) | {c for c in responses
                                                            if c[0] in "45"}:
                entry = responses.setdefault(code, {})
                entry["description"] = entry.get("description") or _DESCRIPTIONS[code]
                if path == "/readyz" and code == "503":  # not ready: the readiness report
                    entry["content"] = {"application/json": {"schema": _READY}}
                    continue
                entry["content"] = {"application/json": {"schema": _REF}}
                if code in ("429", "503"):
                    entry["headers"] = {"Retry-After": {
                        "description": "seconds to wait", "schema": {"type": "string"}}}
    ready = document.get("paths", {}).get("/readyz", {}).get("get")
    if ready is not None:
        ready["responses"]["200"]["content"] = {"application/json": {"schema": _READY}}
    metrics = document.get("paths", {}).get("/metrics", {}).get("get")
    if metrics is not None:
        metrics["responses"]["200"]["content"] = {_METRICS_TEXT: {"schema": {"type": "string"}}}
    return _whole_numbers(document)


def _whole_numbers(value: Any) -> Any:
    """Bounds as integers: FastAPI's schema model types every ``minimum``/``maximum`` as
    a float (``10000.0``), and the document, like every answer, carries no floats."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    return value


def install(app: FastAPI) -> None:
    """Serve the completed document (built once, on first request)."""
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
