"""``POST /api/v1/orders`` for API-key callers, served ahead of the framework.

Placing orders is what scripts do thousands of times a second, and the
framework's per-request pipeline (session middleware, routing over every
route, dependency solving, the exception-handling layers) cost more CPU than
the engine and the durable commit together. This ASGI middleware answers
exactly that request — POST, that path, an ``Authorization: Bearer`` key —
with the same steps the FastAPI route takes, through the same functions:

    key_principal   authenticate, rate-limit     (app/api/deps.py)
    ensure_role     trader or above
    OrderCreate     the documented request schema (pydantic, from the raw JSON)
    place_response  the use case (app/services/orders.py), rendered
                                                 (app/api/orders.py)
    error_response  the one error shape          (app/api/errors.py)

Everything else, including cookie-session (browser) order posts, which need the
session and its CSRF check, goes on to the app, whose route also documents this
endpoint in the OpenAPI schema.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.deps import bearer_token, ensure_role, key_principal
from app.api.errors import ApiError, error_response, invalid
from app.api.orders import place_response
from app.api.schemas import OrderCreate
from app.auth.principal import Role

PATH = "/api/v1/orders"


class OrderLane:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == PATH:
            key = bearer_token(_header(scope, b"authorization"))
            if key is not None:
                response = await self._place(scope, receive, key)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _place(self, scope: Scope, receive: Receive, key: str) -> Any:
        state = scope["app"].state
        try:
            client = scope.get("client")
            principal = ensure_role(key_principal(state, key, client[0] if client else None),
                                    Role.TRADER)
            body = _parse(_header(scope, b"content-type"), await _read_body(receive))
            return await place_response(state.system, principal, body)
        except ApiError as exc:  # the one error type of every refusal
            return error_response(exc)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return ""


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            raise ApiError(400, "BAD_REQUEST", "the request body did not arrive")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _parse(content_type: str, raw: bytes) -> OrderCreate:
    media = content_type.split(";", 1)[0].strip().lower()
    if media and media != "application/json" and not media.endswith("+json"):
        raise ApiError(422, "VALIDATION_ERROR",
                       f"send the order as JSON (Content-Type: application/json), not {media}",
                       {"field": "", "errors": []})
    if not raw:
        raise invalid([{"loc": ("body",), "msg": "Field required"}])
    try:
        return OrderCreate.model_validate_json(raw)
    except ValidationError as exc:
        errors: list[Any] = exc.errors(include_url=False)
        if errors and errors[0]["type"] == "json_invalid":
            errors = [{"loc": (), "msg": f"the body is not valid JSON ({errors[0]['msg']})"}]
        raise invalid(errors) from None
