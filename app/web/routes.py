"""Browser pages and their htmx actions.

Pages are server-rendered Jinja2; actions (order ticket, cancel, replace,
kill switches) are htmx posts that call the same code as the REST API, so
the rules, rejections and audit are identical. Every write needs the
session's CSRF token (htmx sends it as ``X-CSRF-Token`` from the page).
Roles and client scope decide what is shown: no action buttons for viewers,
no kill-switch buttons below operator, only the caller's clients.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Form, Request, Response, WebSocket
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from sqlmodel import Session, select

from app.api import controls as controls_api
from app.api import orders as orders_api
from app.api.deps import (
    check_csrf,
    end_session,
    ensure_role,
    session_principal,
    start_session,
)
from app.api.errors import ApiError
from app.api.schemas import ControlRequest, OrderCreate, OrderReplace
from app.auth.login_guard import LoginRefused, guard_for
from app.auth.principal import Principal, Role
from app.domain.orders import OrderType, Side, TimeInForce, TriggerSource
from app.store.tables import AuditRow
from app.web import views
from app.web.live import PAGE_FRAGMENTS, Connection, LiveHub

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)

# Which ticket field a rejection code belongs next to.
FIELD_OF_CODE = {
    "PRICE_NOT_ON_TICK": "price", "POST_ONLY_WOULD_CROSS": "price", "QTY_NOT_ON_STEP": "qty",
    "MIN_QTY": "qty", "MIN_NOTIONAL": "qty", "MAX_POSITION_SIZE": "qty",
    "MAX_POSITION_NOTIONAL": "qty", "INSUFFICIENT_MARGIN": "qty", "FOK_NOT_FILLABLE": "qty",
    "GTD_IN_PAST": "expire_at", "UNKNOWN_SYMBOL": "symbol", "UNSUPPORTED_BY_VENUE": "type",
    "REDUCE_ONLY_WOULD_INCREASE": "reduce_only", "DUPLICATE_CLIENT_ORDER_ID": "client_order_id",
    "INVALID_CLIENT_ORDER_ID": "client_order_id", "NO_MARKET_DATA": "symbol",
}


# ---- helpers ----------------------------------------------------------------------------

def _system(request: Request | WebSocket) -> Any:
    return request.app.state.system


def _hub(request: Request | WebSocket) -> LiveHub:
    return request.app.state.live


def _login_redirect(request: Request) -> RedirectResponse:
    return RedirectResponse(f"/login?next={request.url.path}", status_code=303)


def _base(request: Request, principal: Principal, page: str, **extra: Any) -> dict[str, Any]:
    system = _system(request)
    return {
        "request": request, "principal": principal, "page": page,
        "csrf": request.session.get("csrf", ""),
        "can_trade": principal.role.allows(Role.TRADER),
        "can_operate": principal.role.allows(Role.OPERATOR),
        "clients": views.visible(principal, system), "venues": system.venue_names,
        "symbols": sorted({i.symbol for i in system.instruments}),
        **extra,
    }


def fragment_context(system: Any, name: str, principal: Principal, params: dict[str, str]
                     ) -> dict[str, Any]:
    clients = views.visible(principal, system)
    ctx: dict[str, Any] = {"can_trade": principal.role.allows(Role.TRADER),
                           "can_operate": principal.role.allows(Role.OPERATOR)}
    if name == "banner":
        ctx["banner"] = views.banner(system, principal)
    elif name == "summary":
        ctx["s"] = views.summary(system, clients, system.first_event_at)
    elif name == "positions":
        ctx["positions"] = views.positions(system, clients)
    elif name == "orders":
        ctx["orders"] = views.open_orders(system, clients)
    elif name == "blotter":
        ctx["orders"] = views.blotter(system, clients, params.get("status") or None,
                                      params.get("symbol") or None)
    elif name == "exits":
        limit = params.get("limit", "20")
        ctx["exits"] = views.exits(system, clients,
                                   limit=min(int(limit), 1000) if limit.isdecimal() else 20)
    elif name == "alerts":
        ctx["alerts"] = system.alerts.recent(clients)
    elif name == "marks":
        ctx["marks"] = views.marks(system)
    elif name == "equity":
        ctx["series"] = json.dumps(system.equity.series(clients))
    elif name == "controls":
        ctx["scopes"] = views.scopes(system, principal)
    elif name == "legouts":
        ctx["legouts"] = []  # filled by the arbitrage feature's LegOutDetected events
    return ctx


def _in_table(order: Any, table: str, params: dict[str, str]) -> bool:
    """Does ``order`` belong in this order table (dashboard: open orders; blotter: filters)?"""
    if table == "orders":
        return order.is_open
    status, symbol = params.get("status") or None, params.get("symbol") or None
    if symbol and order.spec.symbol != symbol:
        return False
    return not status or order.status.value == status or (status == "open" and order.is_open)


def render_order_row(system: Any, order_id: int, principal: Principal, table: str,
                     params: dict[str, str]) -> str | None:
    """One order's row for a live table, or None if it is not (or no longer) in it."""
    order = system.engine.state.orders.get(order_id)
    if (order is None or not principal.can_access(order.spec.client)
            or not _in_table(order, table, params)):
        return None
    return templates.get_template("fragments/_order_row.html").render(
        o=views.order_row(order), body_id=f"{table}-body",
        can_trade=principal.role.allows(Role.TRADER))


def list_order_rows(system: Any, principal: Principal, table: str, params: dict[str, str]
                    ) -> list[int]:
    """The order ids a full render of that table shows (what the browser then has)."""
    ctx = fragment_context(system, table, principal, params)
    return [row["id"] for row in ctx["orders"]]


def render_fragment(system: Any, name: str, principal: Principal, params: dict[str, str],
                    oob: bool = True) -> str:
    ctx = fragment_context(system, name, principal, params)
    return templates.get_template(f"fragments/{name}.html").render(oob=oob, **ctx)


def _page(request: Request, template: str, page: str, **extra: Any) -> Response:
    principal = session_principal(request)
    if principal is None:
        return _login_redirect(request)
    system = _system(request)
    params = {k: v for k, v in request.query_params.items() if k in ("status", "symbol")}
    fragments = {name: render_fragment(system, name, principal, params, oob=False)
                 for name in PAGE_FRAGMENTS[page]}
    ws_query = "&".join([f"page={page}"] + [f"{k}={v}" for k, v in params.items()])
    return templates.TemplateResponse(request, template, _base(
        request, principal, page, f=fragments, ws_url=f"/ui/ws?{ws_query}", params=params,
        **extra))


# ---- login ---------------------------------------------------------------------------------

@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str = "/") -> Response:
    return templates.TemplateResponse(request, "login.html", {"next": next, "error": None})


@router.post("/login")
async def login_submit(request: Request, name: str = Form(...), password: str = Form(...),
                       next: str = Form("/")) -> Response:
    """The login form: the same login guard as ``POST /api/v1/auth/login`` (throttle,
    bounded password checks, audit); a refusal is shown on the form."""
    def form_error(message: str, status: int, headers: dict[str, str] | None = None
                   ) -> Response:
        return templates.TemplateResponse(request, "login.html",
                                           {"next": next, "error": message},
                                           status_code=status, headers=headers)

    # The API's bounds (its Login schema): nothing longer is checked or audited.
    if not 1 <= len(name) <= 64 or not 1 <= len(password) <= 200:
        return form_error("Wrong user name or password.", 401)
    try:
        principal = await guard_for(request.app.state).login(
            name, password, request.client.host if request.client else None, "web")
    except LoginRefused as exc:
        message = (f"Too many failed logins. Try again in {exc.retry_after_header} s."
                   if exc.status == 429 else "The server is busy. Try again in a moment.")
        return form_error(message, exc.status, {"Retry-After": exc.retry_after_header})
    if principal is None:
        return form_error("Wrong user name or password.", 401)
    await asyncio.to_thread(start_session, request, principal)
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    return RedirectResponse(target, status_code=303)


@router.post("/logout")
async def logout(request: Request, csrf: str = Form("")) -> Response:
    if request.session.get("csrf") and secrets.compare_digest(request.session["csrf"], csrf):
        await asyncio.to_thread(end_session, request)
    return RedirectResponse("/login", status_code=303)


# ---- pages -----------------------------------------------------------------------------------

@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request) -> Response:
    return _page(request, "dashboard.html", "dashboard")


@router.get("/controls", response_class=HTMLResponse)
async def controls_page(request: Request) -> Response:
    return _page(request, "controls.html", "controls")


@router.get("/orders", response_class=HTMLResponse)
async def orders_page(request: Request) -> Response:
    return _page(request, "orders.html", "orders", sides=[s.value for s in Side],
                 types=[t.value for t in OrderType], tifs=[t.value for t in TimeInForce],
                 sources=[t.value for t in TriggerSource], errors={}, values={})


@router.get("/positions", response_class=HTMLResponse)
async def positions_page(request: Request) -> Response:
    return _page(request, "positions.html", "positions")


@router.get("/trades", response_class=HTMLResponse)
async def trades_page(request: Request) -> Response:
    return _page(request, "trades.html", "trades", trades=_all_trades(request))


def _all_trades(request: Request) -> list[dict[str, Any]]:
    principal = session_principal(request)
    system = _system(request)
    clients = views.visible(principal, system) if principal else []
    return views.exits(system, clients, limit=10_000)


# /trades.csv (and /orders.csv, /fills.csv): app/web/exports.py


@router.get("/audit", response_class=HTMLResponse)
async def audit_page(request: Request) -> Response:
    """The audit log, newest first, as the user may see it (see ``_audit_for``)."""
    principal = session_principal(request)
    if principal is None:  # before reading anything
        return _login_redirect(request)
    system = _system(request)

    def read() -> list[AuditRow]:
        with Session(system.db) as session:
            return list(session.exec(select(AuditRow).order_by(AuditRow.id.desc())  # type: ignore[union-attr]
                                     .limit(500)))

    rows = await asyncio.to_thread(read)
    if principal.clients is not None:
        rows = [seen for r in rows if (seen := _audit_for(r, principal.clients)) is not None]
    return _page(request, "audit.html", "audit", audit=rows)


# Details of a global entry that say nothing about any one client. Anything else (the
# number of orders a global switch cancelled, over every client) is left out for a user
# scoped to clients; close-all ``results`` are cut down to their own positions.
_CLIENT_NEUTRAL_DETAILS = frozenset({"state", "changed"})


def _audit_for(row: AuditRow, clients: frozenset[str]) -> AuditRow | None:
    """The entry as a user scoped to ``clients`` may see it, or None.

    Entries on their own clients' scopes are shown whole. Global entries are shown (a
    global kill switch concerns everyone, and explains their own state) with details
    cut down to what concerns their clients. Entries on other clients' scopes, on
    venues alone (a venue close-all's results name every client there) and about
    authentication (``scope="auth"``) are hidden.
    """
    if row.scope != "global":
        return row if _audit_visible(row.scope, clients) else None
    details = {k: v for k, v in row.details.items() if k in _CLIENT_NEUTRAL_DETAILS}
    if "results" in row.details:
        details["results"] = [r for r in row.details["results"]
                              if isinstance(r, dict) and r.get("client") in clients]
    return AuditRow(**{**row.model_dump(), "details": details})


def _audit_visible(scope: str, clients: frozenset[str]) -> bool:
    """Scoped users see global entries and their own clients' (scope = Scope.describe())."""
    first = scope.split(", ")[0]
    return scope == "global" or (first.startswith("client ") and first[7:] in clients)


# ---- actions (htmx) ---------------------------------------------------------------------------

def _actor(request: Request, role: Role) -> Principal:
    principal = session_principal(request)
    if principal is None:
        raise ApiError(401, "UNAUTHENTICATED", "your session ended; log in again")
    check_csrf(request)
    return ensure_role(principal, role)


def _error_fragment(message: str, status: int) -> HTMLResponse:
    html = templates.get_template("fragments/toast.html").render(level="error", message=message)
    return HTMLResponse(html, status_code=status)


@router.post("/ui/orders", response_class=HTMLResponse)
async def ticket_submit(request: Request) -> Response:
    try:
        principal = _actor(request, Role.TRADER)
    except ApiError as exc:
        return _error_fragment(exc.message, exc.status)
    form = await request.form()
    values = {k: str(v) for k, v in form.items()}
    raw = {k: v for k, v in values.items() if v != "" and k in OrderCreate.model_fields}
    for flag in ("post_only", "reduce_only", "clip_to_position"):
        raw[flag] = flag in values
    errors: dict[str, str] = {}
    result = None
    try:
        body = OrderCreate.model_validate(raw)
        placed = await orders_api.submit_order(_system(request), principal, body)
        if isinstance(placed, ApiError):
            raise placed
        order, _ = placed
        result = {"level": "ok", "message": f"Order {order['id']} {order['status']}: "
                  f"{order['side']} {order['qty']} {order['symbol']} "
                  f"({order['client_order_id']})"}
    except ValidationError as exc:
        for e in exc.errors():
            field = ".".join(str(p) for p in e["loc"]) or "form"
            errors.setdefault(field, e["msg"])
    except ApiError as exc:
        errors[FIELD_OF_CODE.get(exc.code, "form")] = f"{exc.code}: {exc.message}"
    system = _system(request)
    ctx = _base(request, principal, "orders", sides=[s.value for s in Side],
                types=[t.value for t in OrderType], tifs=[t.value for t in TimeInForce],
                sources=[t.value for t in TriggerSource], errors=errors,
                values=values if errors else {}, result=result)
    ctx["clients"] = views.visible(principal, system)
    return templates.TemplateResponse(request, "fragments/ticket.html", ctx,
                                      status_code=422 if errors else 200)


@router.post("/ui/orders/{order_id}/cancel", response_class=HTMLResponse)
async def cancel(request: Request, order_id: int) -> Response:
    try:
        principal = _actor(request, Role.TRADER)
        order = await orders_api.cancel(_system(request), principal, order_id)
    except ApiError as exc:
        return _error_fragment(f"{exc.code}: {exc.message}", exc.status)
    html = templates.get_template("fragments/toast.html").render(
        level="ok", message=f"Order {order['id']} {order['status']}")
    return HTMLResponse(html)


@router.post("/ui/orders/{order_id}/replace", response_class=HTMLResponse)
async def replace(request: Request, order_id: int, price: str = Form(""), qty: str = Form("")
                  ) -> Response:
    try:
        principal = _actor(request, Role.TRADER)
        body = OrderReplace.model_validate({k: v for k, v in (("price", price), ("qty", qty))
                                            if v})
        order = await orders_api.replace(_system(request), principal, order_id, body)
    except ValidationError as exc:
        return _error_fragment(exc.errors()[0]["msg"], 422)
    except ApiError as exc:
        return _error_fragment(f"{exc.code}: {exc.message}", exc.status)
    html = templates.get_template("fragments/toast.html").render(
        level="ok", message=f"Replaced by order {order['id']} at {order['price']}")
    return HTMLResponse(html)


CONTROL_ACTIONS = {
    "reduce-only": controls_api.reduce_only, "disable-trading": controls_api.disable_trading,
    "enable-trading": controls_api.enable_trading, "close-all": controls_api.close_all,
}


@router.post("/ui/controls/{action}", response_class=HTMLResponse)
async def control(request: Request, action: str, reason: str = Form(""),
                  client: str = Form(""), venue: str = Form("")) -> Response:
    handler = CONTROL_ACTIONS.get(action)
    if handler is None:
        return _error_fragment(f"unknown action {action}", 404)
    if not reason.strip():
        return _error_fragment("A reason is required for the audit log.", 422)
    try:
        principal = _actor(request, Role.OPERATOR)
        body = ControlRequest(client=client or None, venue=venue or None, reason=reason.strip())
        result = await handler(body, principal, _system(request))
    except ApiError as exc:
        return _error_fragment(f"{exc.code}: {exc.message}", exc.status)
    html = templates.get_template("fragments/control_result.html").render(
        action=action, result=result)
    return HTMLResponse(html)


# ---- live ----------------------------------------------------------------------------------

@router.websocket("/ui/ws")
async def live(ws: WebSocket) -> None:
    principal = session_principal(ws)  # type: ignore[arg-type]
    if principal is None:
        await ws.close(code=4401)
        return
    await ws.accept()
    page = ws.query_params.get("page", "dashboard")
    params = tuple(sorted((k, v) for k, v in ws.query_params.items()
                          if k in ("status", "symbol") and v))
    await _hub(ws).serve(Connection(ws, principal, page, params))
