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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request, Response, WebSocket
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ValidationError

from app.api.controls import close_result_json
from app.api.deps import (
    check_csrf,
    end_session,
    ensure_role,
    session_principal,
    start_session,
)
from app.api.errors import ApiError
from app.api.inputs import Name, Reason
from app.api.positions import PositionClose
from app.api.schemas import (
    ControlRequest,
    OrderCreate,
    OrderReplace,
    order_json,
    order_spec,
    sizing_request,
)
from app.auth.login_guard import LoginRefused, guard_for
from app.auth.principal import Principal, Role
from app.domain.orders import OrderStatus, OrderType, Side, TimeInForce, TriggerSource
from app.domain.risk import Breaker
from app.domain.trading_state import Scope, TradingState
from app.services import arbitrage as arbitrage_service
from app.services import audit_log, controls, orders, positions, recaps, rejections
from app.services import risk as risk_service
from app.services import strategies as strategies_service
from app.services.alerts import dashboard_alerts
from app.services.audit_log import AuditFilters
from app.services.queries import Reader
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
        "clients": Reader(system, principal).clients(), "venues": system.venue_names,
        "symbols": sorted({i.symbol for i in system.instruments}),
        **extra,
    }


def fragment_context(system: Any, name: str, principal: Principal, params: dict[str, str]
                     ) -> dict[str, Any]:
    reader = Reader(system, principal)
    clients = reader.clients()
    ctx: dict[str, Any] = {"can_trade": principal.role.allows(Role.TRADER),
                           "can_operate": principal.role.allows(Role.OPERATOR)}
    if name == "banner":
        ctx["banner"] = views.banner(reader)
        # The global brake: only an operator over every client may act on "global".
        ctx["can_brake"] = principal.role.allows(Role.OPERATOR) and principal.clients is None
    elif name == "summary":
        ctx["s"] = views.summary(reader, clients, system.first_event_at)
    elif name == "positions":
        ctx["positions"] = views.positions(reader, clients)
    elif name == "orders":
        ctx["orders"] = views.open_orders(reader, clients)
    elif name == "blotter":
        ctx["orders"] = views.blotter(reader, params.get("status") or None,
                                      params.get("symbol") or None)
    elif name == "exits":
        limit = params.get("limit", "20")
        ctx["exits"] = views.exits(reader, clients,
                                   limit=min(int(limit), 1000) if limit.isdecimal() else 20)
    elif name == "alerts":
        ctx["alerts"] = dashboard_alerts(reader)
    elif name == "marks":
        ctx["marks"] = views.marks(reader)
        ctx["replay"] = views.replay_status(system)
    elif name == "equity":
        ctx["series"] = json.dumps(system.equity.series(clients))
    elif name == "controls":
        ctx["scopes"] = views.scopes(reader)
    elif name == "risk":
        ctx["cards"] = views.risk_cards(system, principal, clients)
        ctx["sized_down"] = system.sized_down.recent(clients)
    elif name == "strategies":
        ctx["strategies"] = views.strategies(strategies_service.overview(system, principal))
    elif name == "legouts":
        ctx["legouts"] = views.leg_outs(_arb_leg_outs(system, principal))
    elif name == "arb":
        ctx["arb"] = _arb_panel(system, principal)
    elif name == "backtests":
        runs = system.backtests.runs(BACKTESTS_SHOWN) if system.backtests is not None else []
        ctx["backtests"] = views.backtests(runs)
    elif name == "recap":
        day = recaps.recap_day(recaps.recap_choice(params.get("recap")))
        ctx["r"] = views.recap(recaps.recap_board(system).shown(principal, day), clients)
    return ctx


BACKTESTS_SHOWN = 30  # the newest runs on the Backtests page (the API pages back further)


def _arb_panel(system: Any, principal: Principal) -> dict[str, Any] | None:
    """The arbitrage's panel, or None for a viewer outside its client."""
    try:
        return views.arbitrage(arbitrage_service.view(system, principal))
    except ApiError:
        return None


def _arb_leg_outs(system: Any, principal: Principal) -> list[Any]:
    try:
        return arbitrage_service.leg_outs(system, principal, limit=20)
    except ApiError:
        return []


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
    order = Reader(system, principal).order_or_none(order_id)
    if order is None or not _in_table(order, table, params):
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


def _view_params(items: Any) -> dict[str, str]:
    """The query parameters a page's fragments depend on (the blotter's filters, the
    recap's day, made valid: it travels on in the WebSocket's URL)."""
    items = list(items)
    params = {k: v for k, v in items if k in ("status", "symbol") and v}
    recap = next((v for k, v in items if k == "recap"), None)
    if recap is not None:
        params["recap"] = recaps.recap_choice(recap)
    return params


def _page(request: Request, template: str, page: str, **extra: Any) -> Response:
    principal = session_principal(request)
    if principal is None:
        return _login_redirect(request)
    system = _system(request)
    params = _view_params(request.query_params.items())
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
    principal = session_principal(request)
    choice = recaps.recap_choice(request.query_params.get("recap"))
    day = recaps.recap_day(choice)
    if principal is not None:  # the first render shows the recap, not "computing"
        await recaps.recap_board(_system(request)).ensure(principal, day)
    return _page(request, "dashboard.html", "dashboard", recap_choice=choice,
                 recap_day=day.isoformat())


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


@router.get("/risk", response_class=HTMLResponse)
async def risk_page(request: Request) -> Response:
    """Limits and their usage, breakers, sized-down orders (live), and the rejection
    breakdown of the last 24 hours (as of the page load)."""
    principal = session_principal(request)
    if principal is None:
        return _login_redirect(request)
    found = await rejections.breakdown(_system(request), principal)
    return _page(request, "risk.html", "risk", rejections=found)


@router.get("/trades", response_class=HTMLResponse)
async def trades_page(request: Request) -> Response:
    return _page(request, "trades.html", "trades", trades=_all_trades(request))


TRADES_PAGE = 500


def _all_trades(request: Request) -> list[dict[str, Any]]:
    principal = session_principal(request)
    system = _system(request)
    if principal is None:
        return []
    reader = Reader(system, principal)
    # The newest page only: the full history is the CSV export's job (it streams).
    return views.exits(reader, reader.clients(), limit=TRADES_PAGE)


# /trades.csv (and /orders.csv, /fills.csv): app/web/exports.py


# Accepted times (UTC), each with how much later its "to" bound ends: "to 10:05" takes
# in 10:05:59, "to 2030-01-01" the whole day.
_AUDIT_TIME_FORMATS = (("%Y-%m-%dT%H:%M:%S", timedelta(0)), ("%Y-%m-%d %H:%M:%S", timedelta(0)),
                       ("%Y-%m-%dT%H:%M", timedelta(minutes=1)),
                       ("%Y-%m-%d %H:%M", timedelta(minutes=1)),
                       ("%Y-%m-%d", timedelta(days=1)))


def _audit_filters(request: Request, clients: list[str]) -> tuple[AuditFilters, list[str]]:
    """The filters in the query string, and what was wrong with them (ignored)."""
    q = request.query_params
    problems: list[str] = []

    def text(name: str, limit: int) -> str:
        value = q.get(name, "").strip()
        if len(value) > limit or any(not ch.isprintable() for ch in value):
            problems.append(f"{name}: at most {limit} printable characters")
            return ""
        return value

    def when(name: str, end: bool = False) -> datetime | None:
        value = q.get(name, "").strip()
        if not value:
            return None
        for fmt, span in _AUDIT_TIME_FORMATS:
            try:
                at = datetime.strptime(value[:19], fmt).replace(tzinfo=UTC)
            except ValueError:
                continue
            return at + span - timedelta(microseconds=1) if end and span else at
        problems.append(f"{name}: not a date and time (YYYY-MM-DD HH:MM, UTC)")
        return None

    action = text("action", 64)
    if action and action not in views.AUDIT_ACTIONS:
        problems.append(f"action: one of {', '.join(views.AUDIT_ACTIONS)}")
        action = ""
    client = text("client", 64)
    if client and client not in clients:
        problems.append(f"client: no client {client!r}")
        client = ""
    before_text = q.get("before", "")
    before = int(before_text) if before_text.isdecimal() and len(before_text) <= 18 else None
    return AuditFilters(actor=text("actor", 64), action=action, scope=text("scope", 200),
                        client=client, since=when("since"), until=when("until", end=True),
                        before=before or None), problems


@router.get("/audit", response_class=HTMLResponse)
async def audit_page(request: Request) -> Response:
    """The audit log, newest first, filtered (actor, action, scope, client, time range),
    as the user may see it (see app/services/audit_log.py): kill switches, position closes and,
    for users over every client, logins, failed logins, users and keys."""
    principal = session_principal(request)
    if principal is None:  # before reading anything
        return _login_redirect(request)
    system = _system(request)
    reader = Reader(system, principal)
    filters, problems = _audit_filters(request, reader.clients())
    rows, older = await audit_log.audit_page(system, principal, filters)
    scope_options = [s["label"] for s in views.scopes(reader)]
    if principal.clients is None:
        scope_options.insert(1, "auth")
    form = {k: request.query_params.get(k, "") for k in
            ("actor", "action", "scope", "client", "since", "until")}
    older_query = None
    if older is not None:
        older_query = urlencode({**{k: v for k, v in form.items() if v}, "before": older})
    return _page(request, "audit.html", "audit", audit=[views.audit_entry(r) for r in rows],
                 filters=form, problems=problems, actions=views.AUDIT_ACTIONS,
                 scope_options=scope_options, older_query=older_query,
                 filtered=any(form.values()) or filters.before is not None)


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


TICKET_CLEARED_AFTER_SUBMIT = frozenset({"qty", "price", "client_order_id"})


@router.post("/ui/orders", response_class=HTMLResponse)
async def ticket_submit(request: Request) -> Response:
    try:
        principal = _actor(request, Role.TRADER)
    except ApiError as exc:
        return _error_fragment(exc.message, exc.status)
    form = await request.form()
    values = {k: str(v) for k, v in form.items()}
    raw: dict[str, str | bool] = {k: v for k, v in values.items()
                                  if v != "" and k in OrderCreate.model_fields}
    for flag in ("post_only", "reduce_only", "clip_to_position", "close_position"):
        raw[flag] = flag in values
    if values.get("sizing_mode"):
        sizing: dict[str, str] = {"mode": values["sizing_mode"]}
        if values.get("sizing_max_impact_bps"):
            sizing["max_impact_bps"] = values["sizing_max_impact_bps"]
        raw["sizing"] = sizing  # type: ignore[assignment]
    errors: dict[str, str] = {}
    result = None
    try:
        body = OrderCreate.model_validate(raw)
        placed = await orders.place(_system(request), principal, order_spec(body),
                                    body.clip_to_position, sizing_request(body))
        if placed.rejected:
            raise orders.rejection_error(placed.order)
        order = order_json(placed.order)
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
    # After a refusal everything typed stays, to be corrected; after a success the
    # ticket is ready for the next order on the same account and symbol: only the qty,
    # price and client order id (unique per order) are cleared.
    kept = values if errors else {k: v for k, v in values.items()
                                  if k not in TICKET_CLEARED_AFTER_SUBMIT}
    ctx = _base(request, principal, "orders", sides=[s.value for s in Side],
                types=[t.value for t in OrderType], tifs=[t.value for t in TimeInForce],
                sources=[t.value for t in TriggerSource], errors=errors,
                values=kept, result=result)
    ctx["clients"] = Reader(system, principal).clients()
    return templates.TemplateResponse(request, "fragments/ticket.html", ctx,
                                      status_code=422 if errors else 200)


@router.get("/ui/orders/{order_id}", response_class=HTMLResponse)
async def order_details(request: Request, order_id: int) -> Response:
    """One order's details, for the drawer the blotter and open orders open."""
    principal = session_principal(request)
    if principal is None:
        return _error_fragment("your session ended; log in again", 401)
    order = Reader(_system(request), principal).order_or_none(order_id)
    if order is None:
        return _error_fragment(f"there is no order {order_id}", 404)
    html = templates.get_template("fragments/order_details.html").render(
        d=views.order_details(order))
    return HTMLResponse(html)


@router.post("/ui/orders/{order_id}/cancel", response_class=HTMLResponse)
async def cancel(request: Request, order_id: int) -> Response:
    try:
        principal = _actor(request, Role.TRADER)
        order = await orders.cancel(_system(request), principal, order_id)
    except ApiError as exc:
        return _error_fragment(f"{exc.code}: {exc.message}", exc.status)
    html = templates.get_template("fragments/toast.html").render(
        level="ok", message=f"Order {order.order_id} {order.status.value}")
    return HTMLResponse(html)


@router.post("/ui/orders/{order_id}/replace", response_class=HTMLResponse)
async def replace(request: Request, order_id: int, price: str = Form(""), qty: str = Form("")
                  ) -> Response:
    try:
        principal = _actor(request, Role.TRADER)
        body = OrderReplace.model_validate({k: v for k, v in (("price", price), ("qty", qty))
                                            if v})
        order = await orders.replace(_system(request), principal, order_id, price=body.price,
                                     qty=body.qty, trigger_price=body.trigger_price)
        if order.status is OrderStatus.REJECTED:
            raise orders.rejection_error(order)
    except ValidationError as exc:
        return _error_fragment(exc.errors()[0]["msg"], 422)
    except ApiError as exc:
        return _error_fragment(f"{exc.code}: {exc.message}", exc.status)
    html = templates.get_template("fragments/toast.html").render(
        level="ok", message=f"Replaced by order {order.order_id} at "
                            f"{order_json(order)['price']}")
    return HTMLResponse(html)


# The kill switches the panel offers: the state each sets (None: close-all).
CONTROL_ACTIONS: dict[str, TradingState | None] = {
    "reduce-only": TradingState.REDUCE_ONLY, "disable-trading": TradingState.HALTED,
    "enable-trading": TradingState.ACTIVE, "close-all": None,
}


@router.post("/ui/controls/{action}", response_class=HTMLResponse)
async def control(request: Request, action: str, reason: str = Form(""),
                  client: str = Form(""), venue: str = Form(""), cascade: str = Form("")
                  ) -> Response:
    """A kill switch from the panel or the banner's brake. ``enable-trading`` with
    ``cascade`` also enables every narrower scope restricted by its own setting;
    ``enable-narrower`` does only that. Each scope is one audited use case. The
    answer is the panel's result block, or a toast when the page has no panel."""
    if action not in CONTROL_ACTIONS and action != "enable-narrower":
        return _error_fragment(f"unknown action {action}", 404)
    if not reason.strip():
        return _error_fragment("A reason is required for the audit log.", 422)
    system = _system(request)
    try:
        principal = _actor(request, Role.OPERATOR)
        body = ControlRequest(client=client or None, venue=venue or None, reason=reason.strip())
        result = None
        if action == "close-all":
            result = _change_view(await controls.close_all(
                system, principal, body.client, body.venue, body.reason), close_all=True)
        elif action in CONTROL_ACTIONS:
            result = _change_view(await controls.set_trading_state(
                system, principal, body.client, body.venue,
                CONTROL_ACTIONS[action] or TradingState.ACTIVE, body.reason))
        scope = Scope(body.client, body.venue)
        cascaded = []
        reader = Reader(system, principal)
        if action == "enable-narrower" or (action == "enable-trading" and cascade):
            for inner in views.narrower_restricted(reader, scope):
                cascaded.append(_change_view(await controls.set_trading_state(
                    system, principal, inner.client, inner.venue, TradingState.ACTIVE,
                    body.reason)))
    except ValidationError as exc:
        return _error_fragment(exc.errors()[0]["msg"], 422)
    except ApiError as exc:
        return _error_fragment(f"{exc.code}: {exc.message}", exc.status)
    # What enabling left restricted underneath (said, and offered to clear).
    still = ([{"label": s.describe(), "state": reader.state_of(s).value}
              for s in views.narrower_restricted(reader, scope)]
             if action in ("enable-trading", "enable-narrower") else [])
    if request.headers.get("hx-target") != "control-result":
        return HTMLResponse(templates.get_template("fragments/toast.html").render(
            level="ok", message=_control_summary(action, result, cascaded, still)))
    html = templates.get_template("fragments/control_result.html").render(
        action=action, result=result, cascade=cascaded, still=still, reason=body.reason,
        scope_client=client, scope_venue=venue, scope_label=scope.describe(),
        can_operate=principal.role.allows(Role.OPERATOR))
    return HTMLResponse(html)


def _change_view(change: controls.StateChange, close_all: bool = False) -> dict[str, Any]:
    """A kill switch's outcome for the result block: the state change and, for
    close-all, a row per position."""
    view: dict[str, Any] = {"scope": change.scope.describe(), "state": change.state.value,
                            "previous": change.previous.value}
    if not close_all:
        view["changed"] = change.changed
        return view
    view["results"] = [close_result_json(r) for r in change.results]
    return view


def _control_summary(action: str, result: dict | None, cascaded: list[dict],
                     still: list[dict]) -> str:
    """A kill switch's result in one line, for a toast."""
    parts = []
    if result is not None:
        change = (f"{result['previous']} → {result['state']}" if result.get("changed", True)
                  else f"{result['state']} (already in force)")
        parts.append(f"{action.replace('-', ' ').capitalize()} — {result['scope']}: "
                     + change.replace("_", "-"))
    parts += [f"enabled {r['scope']}" for r in cascaded]
    if still:
        parts.append("still restricted: " + ", ".join(
            f"{s['label']} ({s['state'].replace('_', '-')})" for s in still))
    return "; ".join(parts)


@router.post("/ui/positions/close", response_class=HTMLResponse)
async def close_position(request: Request, client: str = Form(""), venue: str = Form(""),
                         symbol: str = Form(""), reason: str = Form("")) -> Response:
    """Close one position from the positions table (POST /api/v1/positions/close)."""
    try:
        principal = _actor(request, Role.TRADER)
        body = PositionClose(client=client, venue=venue, symbol=symbol,
                             reason=reason.strip() or None)
        closed = await positions.close_position(_system(request), principal, body.client,
                                                body.venue, body.symbol, body.reason)
    except ValidationError as exc:
        return _error_fragment(exc.errors()[0]["msg"], 422)
    except ApiError as exc:
        return _error_fragment(f"{exc.code}: {exc.message}", exc.status)
    order = None if closed.order is None else order_json(closed.order)
    if order is None:
        message = f"{symbol} on {venue} ({client}) is already flat"
    else:
        done = "closed" if closed.flat else f"now {positions.qty_text(closed.qty)}"
        message = (f"{symbol} on {venue} ({client}) {done}: order {order['id']} "
                   f"{order['status']}, {order['side']} {order['filled_qty']}"
                   + (f" @ {order['avg_fill_price']}" if order["avg_fill_price"] else ""))
    html = templates.get_template("fragments/toast.html").render(
        level="ok" if closed.flat else "error", message=message)
    return HTMLResponse(html)


@router.post("/ui/risk/reset-breaker", response_class=HTMLResponse)
async def reset_breaker(request: Request, client: str = Form(""), breaker: str = Form(""),
                        reason: str = Form("")) -> Response:
    """Reset a tripped breaker from the risk page (POST /api/v1/risk/{client}/reset-breaker)."""
    try:
        principal = _actor(request, Role.OPERATOR)
        body = BreakerResetForm.model_validate({"client": client, "breaker": breaker,
                                                "reason": reason.strip()})
        _, changed = await risk_service.reset_breaker(_system(request), principal,
                                                      body.client, body.breaker, body.reason)
    except ValidationError as exc:
        return _error_fragment(exc.errors()[0]["msg"], 422)
    except ApiError as exc:
        return _error_fragment(f"{exc.code}: {exc.message}", exc.status)
    name = body.breaker.value.replace("_", " ")
    html = templates.get_template("fragments/toast.html").render(
        level="ok", message=f"{name} breaker of {body.client} reset" if changed
        else f"{name} breaker of {body.client} was not tripped")
    return HTMLResponse(html)


@router.post("/ui/arb/{action}", response_class=HTMLResponse)
async def arb_action(request: Request, action: str) -> Response:
    """Start or stop the arbitrage from the dashboard (POST /api/v1/arb/start, /stop)."""
    if action not in ("start", "stop"):
        return _error_fragment("unknown action: start or stop", 404)
    try:
        principal = _actor(request, Role.OPERATOR)
        system = _system(request)
        if action == "start":
            await arbitrage_service.start(system, principal, "dashboard")
        else:
            await arbitrage_service.stop(system, principal, "dashboard")
    except ApiError as exc:
        return _error_fragment(f"{exc.code}: {exc.message}", exc.status)
    html = templates.get_template("fragments/toast.html").render(
        level="ok", message=f"arbitrage {'started' if action == 'start' else 'stopped'}")
    return HTMLResponse(html)


class BreakerResetForm(BaseModel):
    client: Name
    breaker: Breaker
    reason: Reason


# ---- live ----------------------------------------------------------------------------------

@router.websocket("/ui/ws")
async def live(ws: WebSocket) -> None:
    principal = session_principal(ws)  # type: ignore[arg-type]
    if principal is None:
        await ws.close(code=4401)
        return
    await ws.accept()
    page = ws.query_params.get("page", "dashboard")
    params = tuple(sorted(_view_params(ws.query_params.items()).items()))
    await _hub(ws).serve(Connection(ws, principal, page, params))
