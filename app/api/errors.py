"""One error shape for every failure:

    {"error": {"code": "...", "message": "...", "details": {...}}}
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.schemas import order_json
from app.domain.rejections import CommandRefused
from app.runtime.bus import StorageUnavailable
from app.services.errors import ServiceError, refused, status_for, storage_unavailable

log = logging.getLogger(__name__)

# The one error type: the use cases raise it, and so do the routes for what only they
# check (a bad header, a body too large).
ApiError = ServiceError
__all__ = ["ApiError", "error_response", "invalid", "refused", "status_for",
           "storage_unavailable"]


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def invalid(errors: Sequence[Any]) -> ApiError:
    """422 for schema errors (pydantic's or FastAPI's), naming the first bad field."""
    problems = []
    for e in errors:
        loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path")]
        problems.append({"field": ".".join(loc), "message": e.get("msg", "invalid")})
    first = problems[0] if problems else {"field": "", "message": "invalid request"}
    message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    return ApiError(422, "VALIDATION_ERROR", message,
                    {"field": first["field"], "errors": problems})


def error_response(exc: ServiceError) -> JSONResponse:
    details = exc.details
    if exc.order is not None:  # the order concerned, as the API shows orders
        details = {**details, "order": order_json(exc.order)}
    return JSONResponse(error_body(exc.code, exc.message, details),
                        status_code=exc.status, headers=exc.headers)


# The 500 is answered outside every added middleware (Starlette's outermost error
# layer), so it carries the security headers itself.
_ERROR_HEADERS = {"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
                  "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
                  "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


def internal_error(request_id: str) -> JSONResponse:
    return JSONResponse(
        error_body("INTERNAL_ERROR", "the server failed on this request; it was logged "
                   f"with request id {request_id}", {"request_id": request_id}),
        status_code=500, headers={**_ERROR_HEADERS, "X-Request-ID": request_id})


_HTTP_CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "FORBIDDEN",
               404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 406: "NOT_ACCEPTABLE",
               413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE", 429: "RATE_LIMITED"}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(CommandRefused)
    async def _refused(request: Request, exc: CommandRefused) -> JSONResponse:
        return error_response(refused(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(invalid(exc.errors()))

    @app.exception_handler(StorageUnavailable)
    async def _storage(request: Request, exc: StorageUnavailable) -> JSONResponse:
        return error_response(storage_unavailable(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A bug: the caller gets the error shape and an id to quote, the log the rest.
        request_id = secrets.token_hex(8)
        log.error("request %s %s %s failed", request_id, request.method, request.url.path,
                  exc_info=exc)
        return internal_error(request_id)
