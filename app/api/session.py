"""Browser login: a signed session cookie (naming a server-side session that logout
ends) plus a CSRF token for writes."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from app.api.deps import CurrentPrincipal, end_session, get_auth, start_session
from app.api.errors import ApiError

router = APIRouter(prefix="/auth", tags=["auth"])


class Login(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)


@router.post("/login", summary="Log in (sets the session cookie; returns the CSRF token)")
async def login(body: Login, request: Request) -> dict:
    principal = await asyncio.to_thread(get_auth(request).login, body.name, body.password)
    if principal is None:
        raise ApiError(401, "BAD_CREDENTIALS", "wrong user name or password")
    csrf = await asyncio.to_thread(start_session, request, principal)
    return {"name": principal.name, "role": principal.role.value,
            "clients": sorted(principal.clients) if principal.clients else None,
            "csrf_token": csrf}


@router.post("/logout", summary="Log out")
async def logout(request: Request, principal: CurrentPrincipal) -> dict:
    await asyncio.to_thread(end_session, request)
    return {"logged_out": principal.name}


@router.get("/me", summary="Who am I")
async def me(principal: CurrentPrincipal) -> dict:
    return {"name": principal.name, "role": principal.role.value, "via": principal.via,
            "clients": sorted(principal.clients) if principal.clients else None}
