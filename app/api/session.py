"""Browser login: a signed session cookie (naming a server-side session that logout
ends) plus a CSRF token for writes.

Logins go through the login guard (``app.auth.login_guard``), like the browser
form: throttled per address, per user and per (user, address) pair with
exponential backoff (429 ``RATE_LIMITED`` + ``Retry-After``), password checks on
a small dedicated executor (503 ``LOGIN_BUSY`` when too many are waiting), and
audited."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from app.api.deps import CurrentPrincipal, end_session, start_session
from app.api.errors import ApiError
from app.auth.login_guard import LoginRefused, guard_for
from app.auth.principal import Role

router = APIRouter(prefix="/auth", tags=["auth"])


class Login(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)


class LoggedIn(BaseModel):
    name: str
    role: Role
    clients: list[str] | None = Field(description="null: every client")
    csrf_token: str = Field(description="send it as X-CSRF-Token on cookie-authenticated "
                                        "writes")


class LoggedOut(BaseModel):
    logged_out: str


class Me(BaseModel):
    name: str
    role: Role
    via: Literal["key", "session"]
    clients: list[str] | None = Field(description="null: every client")


def refused_error(exc: LoginRefused) -> ApiError:
    """A refused login in the API's one error shape, with ``Retry-After``."""
    return ApiError(exc.status, exc.code, exc.message,
                    {"retry_after_s": f"{exc.retry_after:.3f}"},
                    headers={"Retry-After": exc.retry_after_header})


@router.post("/login", summary="Log in (sets the session cookie; returns the CSRF token)",
             responses={429: {"description": "too many failed logins (see Retry-After)"},
                        503: {"description": "too many logins being checked at once"}})
async def login(body: Login, request: Request) -> LoggedIn:
    try:
        principal = await guard_for(request.app.state).login(
            body.name, body.password, request.client.host if request.client else None, "api")
    except LoginRefused as exc:
        raise refused_error(exc) from None
    if principal is None:
        raise ApiError(401, "BAD_CREDENTIALS", "wrong user name or password")
    csrf = await asyncio.to_thread(start_session, request, principal)
    return LoggedIn(name=principal.name, role=principal.role,
                    clients=sorted(principal.clients) if principal.clients else None,
                    csrf_token=csrf)


@router.post("/logout", summary="Log out")
async def logout(request: Request, principal: CurrentPrincipal) -> LoggedOut:
    await asyncio.to_thread(end_session, request)
    return LoggedOut(logged_out=principal.name)


@router.get("/me", summary="Who am I")
async def me(principal: CurrentPrincipal) -> Me:
    return Me(name=principal.name, role=principal.role, via=principal.via,  # type: ignore[arg-type]
              clients=sorted(principal.clients) if principal.clients else None)
