"""Request dependencies: the running system, the caller, their role and scope."""

from __future__ import annotations

import hmac
import secrets
import time
from typing import Annotated, Any

from fastapi import Depends, Request

from app.api.errors import ApiError
from app.auth.principal import Principal, Role, parse_clients
from app.auth.store import AuthStore
from app.runtime.system import TradingSystem
from app.services.queries import Reader
from app.services.scope import check_client, ensure_role, visible_clients

__all__ = ["Admin", "CurrentPrincipal", "Operator", "Reads", "System", "Trader", "Viewer",
           "authenticate", "check_client", "ensure_role", "visible_clients"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


# Dependencies are ``async def`` on purpose: FastAPI runs plain ``def`` ones in a
# thread pool, a hop per dependency per request on the order path.

async def get_system(request: Request) -> TradingSystem:
    return request.app.state.system


def get_auth(request: Request) -> AuthStore:
    return request.app.state.auth


class RateLimiter:
    """A token bucket per principal: ``rate`` requests a second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, who: str) -> float:
        """0 if allowed, else seconds until the next request would be."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        tokens, last = self._buckets.get(who, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[who] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[who] = (tokens - 1, now)
        return 0.0


def session_principal(request: Request) -> Principal | None:
    """The logged-in user of a browser session, if its session is still open."""
    session = request.session if "session" in request.scope else {}
    data, session_id = session.get("user"), session.get("sid")
    if not data or not session_id or not get_auth(request).session_open(session_id):
        return None
    return Principal(data["name"], Role(data["role"]), parse_clients(data.get("clients", "")),
                     "session")


def start_session(request: Request, principal: Principal) -> str:
    """Log ``principal`` in on this browser: a new session (any earlier one on this
    cookie is ended) and its CSRF token, which is returned."""
    end_session(request)
    csrf = secrets.token_urlsafe(24)
    request.session.update({
        "sid": get_auth(request).open_session(principal.name),
        "user": {"name": principal.name, "role": principal.role.value,
                 "clients": ",".join(sorted(principal.clients or ()))},
        "csrf": csrf,
    })
    return csrf


def end_session(request: Request) -> None:
    """Log out: the session ends for every copy of the cookie, then this one is cleared."""
    session_id = request.session.get("sid")
    if session_id:
        get_auth(request).close_session(session_id)
    request.session.clear()


def throttle(app_state: Any, who: str) -> None:
    wait = app_state.rate_limiter.allow(who)
    if wait:
        raise ApiError(429, "RATE_LIMITED", "too many requests; slow down",
                       {"retry_after_s": f"{wait:.3f}"},
                       headers={"Retry-After": str(max(1, round(wait)))})


def bearer_token(authorization: str) -> str | None:
    """The key in an ``Authorization: Bearer <key>`` header, if that is what it is."""
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None


def key_principal(app_state: Any, key: str, client_host: str | None) -> Principal:
    """The caller behind an API key, throttled; 401 if the key is not valid."""
    principal = app_state.auth.authenticate_key(key)
    if principal is None:
        # Failed attempts share a per-address budget: key guessing is throttled.
        throttle(app_state, f"anon:{client_host or '?'}")
        raise ApiError(401, "UNAUTHENTICATED", "the API key is not valid or was revoked",
                       headers={"WWW-Authenticate": "Bearer"})
    throttle(app_state, principal.actor)
    return principal


async def authenticate(request: Request) -> Principal:
    key = bearer_token(request.headers.get("authorization", ""))
    if key is not None:
        return key_principal(request.app.state, key,
                             request.client.host if request.client else None)
    principal = session_principal(request)
    if principal is None:
        raise ApiError(401, "UNAUTHENTICATED",
                       "send 'Authorization: Bearer <api key>' or log in",
                       headers={"WWW-Authenticate": "Bearer"})
    if request.method not in SAFE_METHODS:
        check_csrf(request)
    throttle(request.app.state, principal.actor)
    return principal


def check_csrf(request: Request) -> None:
    """Cookie-authenticated writes must echo the session's CSRF token."""
    expected = request.session.get("csrf", "")
    given = request.headers.get("x-csrf-token", "")
    if not expected or not hmac.compare_digest(expected, given):
        raise ApiError(403, "CSRF_FAILED",
                       "missing or wrong CSRF token (send the X-CSRF-Token header)")


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]
System = Annotated[TradingSystem, Depends(get_system)]


def require(role: Role):
    # One dependency (authenticate, then check the role) rather than two chained
    # ones: dependency solving is a visible share of every request.
    async def check(request: Request) -> Principal:
        return ensure_role(await authenticate(request), role)
    return check


Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Trader = Annotated[Principal, Depends(require(Role.TRADER))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]


async def get_reader(request: Request) -> Reader:
    """The read side as a viewer (or above) may see it."""
    principal = ensure_role(await authenticate(request), Role.VIEWER)
    return Reader(request.app.state.system, principal)


Reads = Annotated[Reader, Depends(get_reader)]
