"""The one error convention of every use case.

A use case either returns its result or raises ``ServiceError``: a refusal in
which nothing was done (not allowed, unknown, storage down, the engine refused
the command). An order the engine *rejected* is not a refusal: it exists, with
an id and status REJECTED, in the event log, so the use case returns it and
the caller (route, page, CLI) decides how to show it (``rejection_error``).

Each error carries the HTTP status a route answers with, a stable code and a
message a person understands; the api maps it to the one error shape.
"""

from __future__ import annotations

from typing import Any

from app.domain.orders import Order
from app.domain.rejections import CommandRefused, RejectCode
from app.runtime.bus import StorageUnavailable

# Engine refusals that are not plain 400s.
_STATUS = {
    RejectCode.UNKNOWN_ORDER: 404,
    RejectCode.DUPLICATE_CLIENT_ORDER_ID: 409,
    RejectCode.ORDER_NOT_OPEN: 409,
    RejectCode.DUPLICATE_SIGNAL_ID: 409,
}


class ServiceError(Exception):
    """A use case refused: nothing was done. ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, code: str, message: str,
                 details: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
                 order: Order | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or {}
        self.headers = headers
        # The order concerned (a rejected one, one that was not open): each caller
        # shows it in its own form (the api as ``details.order``).
        self.order = order


def status_for(code: str) -> int:
    try:
        return _STATUS.get(RejectCode(code), 400)
    except ValueError:
        return 400


def refused(exc: CommandRefused) -> ServiceError:
    return ServiceError(status_for(exc.code), exc.code.value, exc.rejection.message,
                        dict(exc.rejection.details))


def storage_unavailable(exc: StorageUnavailable) -> ServiceError:
    """The event log could not commit: nothing was done, and the caller may retry."""
    return ServiceError(503, "STORAGE_UNAVAILABLE", str(exc),
                        {"retry_after_s": f"{exc.retry_after:.3f}"},
                        headers={"Retry-After": str(max(1, round(exc.retry_after)))})


def not_found(code: str, message: str) -> ServiceError:
    return ServiceError(404, code, message)


def forbidden_client(client: str) -> ServiceError:
    return ServiceError(403, "CLIENT_FORBIDDEN", f"you may not act for client {client!r}")
