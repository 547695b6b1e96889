"""Browser login: a signed session cookie plus a CSRF token for writes."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from app.api.deps import CurrentPrincipal, get_auth
from app.api.errors import ApiError

router = APIRouter(prefix="/auth", tags=["auth"])


class Login(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)


@router.post("/login", summary="Log in (sets the session cookie; returns the CSRF token)")
async def login(body: Login, request: Request) -> dict:
    import asyncio

    principal = await asyncio.to_thread(get_auth(request).login, body.name, body.password)
    if principal is None:
        raise ApiError(401, "BAD_CREDENTIALS", "wrong user name or password")
    csrf = secrets.token_urlsafe(24)
    request.session.clear()
    request.session.update({
        "user": {"name": principal.name, "role": principal.role.value,
                 "clients": ",".join(sorted(principal.clients or ()))},
        "csrf": csrf,
    })
    return {"name": principal.name, "role": principal.role.value,
            "clients": sorted(principal.clients) if principal.clients else None,
            "csrf_token": csrf}


@router.post("/logout", summary="Log out")
async def logout(request: Request, principal: CurrentPrincipal) -> dict:
    request.session.clear()
    return {"logged_out": principal.name}


@router.get("/me", summary="Who am I")
async def me(principal: CurrentPrincipal) -> dict:
    return {"name": principal.name, "role": principal.role.value, "via": principal.via,
            "clients": sorted(principal.clients) if principal.clients else None}
