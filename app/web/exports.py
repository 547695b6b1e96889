"""CSV exports: ``/trades.csv``, ``/orders.csv`` and ``/fills.csv``.

One download for a spreadsheet or a script, with the filters of the matching
JSON endpoint (``client``, ``venue``, ``symbol``; ``status`` for orders,
``order_id`` for fills) plus a time window ``from``/``to`` (ISO 8601, UTC when
no offset is given; ``from`` inclusive, ``to`` exclusive) on the time the row
is about: a trade's ``closed_at``, an order's ``created_at``, a fill's ``at``.

* **Auth** is the API's (``authenticate``): ``Authorization: Bearer <key>`` or
  the browser session, any role. Without either, a browser navigation (one that
  accepts HTML) is sent to the login page; anything else gets the API's 401.
  A caller scoped to clients gets only their rows (and 403 for another client).
* **Bounded**: rows are read from the database a page at a time
  (``PAGE_ROWS``), each page read and written as CSV in a worker thread, and
  streamed; memory stays at one page however long the history. Pages follow a
  keyset cursor (newest first), so rows committed during a download are not
  mixed in. The first page is read before the response starts, so a database
  failure is still a proper error answer.
* **Values**: decimals exactly as stored (plain notation, never an exponent,
  never ``-0``), except ``pnl_pct`` (4 places, rounded half-even like the JSON
  API's percentages), ``avg_fill_price`` (at most 10 places, as in the JSON) and
  ``duration_s`` (seconds to the microsecond, 6 places); timestamps ISO 8601 UTC
  with ``Z``; booleans ``true``/``false``; nothing is an empty cell. Column
  names are the JSON field names.
* A text cell that a spreadsheet would run as a formula (starting with ``=``,
  ``+``, ``-``, ``@``, tab or CR) is prefixed with ``'`` (OWASP's CSV-injection
  advice). Only text columns: numbers are written as they are.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse

from app.api.deps import System, authenticate, ensure_role, visible_clients
from app.api.errors import ApiError
from app.api.inputs import ClientQuery, IdQuery, SymbolQuery, VenueQuery
from app.auth.principal import Principal, Role
from app.domain.orders import OrderStatus
from app.runtime.system import TradingSystem
from app.services import history

router = APIRouter(include_in_schema=False)

# Rows per database read (and per chunk sent): big enough that a long export is a
# few hundred short reads, small enough that one read never holds the database long.
PAGE_ROWS = 1000
PCT_PLACES = Decimal("0.0001")
AVG_PLACES = Decimal("1e-10")  # as the JSON renders an order's average fill price
DURATION_PLACES = Decimal("0.000001")  # microseconds: what the timestamps hold
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
STATUSES = frozenset(s.value for s in OrderStatus)

FromQuery = Annotated[datetime | None, Query(
    alias="from", description="rows at or after this time (ISO 8601; UTC if no offset)")]
ToQuery = Annotated[datetime | None, Query(
    alias="to", description="rows before this time (ISO 8601; UTC if no offset)")]


# ---- cell formatting ----------------------------------------------------------------------

def exact(d: Decimal | None) -> str:
    """A decimal exactly as stored, in plain notation; never ``-0``."""
    if d is None:
        return ""
    return format(d if d else abs(d), "f")


def fixed(d: Decimal | None, places: Decimal) -> str:
    """A decimal rounded (half-even, as the JSON API rounds) to a fixed scale."""
    if d is None:
        return ""
    return exact(d.quantize(places, rounding=ROUND_HALF_EVEN))


def instant(t: datetime | None) -> str:
    """ISO 8601 UTC with ``Z``, as the JSON API writes instants."""
    if t is None:
        return ""
    text = t.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def text(value: str | None) -> str:
    """A text cell that no spreadsheet will run as a formula."""
    if not value:
        return ""
    return "'" + value if value.startswith(_FORMULA_START) else value


def flag(value: bool) -> str:
    """A boolean as the JSON spells it."""
    return "true" if value else "false"


def number(value: int | None) -> str:
    """An id, or an empty cell for none."""
    return "" if value is None else str(value)


# ---- the three exports ----------------------------------------------------------------------

@dataclass(frozen=True)
class Export:
    """What one CSV export reads (a history table) and how it writes a row."""

    filename: str
    table: history.Table
    columns: tuple[str, ...]
    row: Callable[[Any], list[str]]


def _trade_row(t: Any) -> list[str]:
    duration = Decimal((t.closed_at - t.opened_at) // timedelta(microseconds=1)).scaleb(-6)
    return [text(t.trade_id), t.client, t.venue, t.symbol, t.direction, exact(t.qty),
            exact(t.entry_price), exact(t.exit_price), exact(t.realized_pnl), exact(t.fees),
            exact(t.funding), exact(t.net_pnl), fixed(t.pnl_pct, PCT_PLACES),
            instant(t.opened_at), instant(t.closed_at), fixed(duration, DURATION_PLACES),
            text(t.exit_reason)]


def _order_row(o: Any) -> list[str]:
    avg = None if o.avg_fill_price is None else o.avg_fill_price.quantize(AVG_PLACES).normalize()
    return [number(o.order_id), text(o.client_order_id), o.client, o.venue, o.symbol, o.side,
            o.type, o.status, exact(o.qty), exact(o.price), exact(o.trigger_price),
            o.time_in_force, flag(o.post_only), flag(o.reduce_only), exact(o.filled_qty),
            exact(o.qty - o.filled_qty), exact(avg), exact(o.fees), text(o.reject_code),
            text(o.reject_message), text(o.cancel_reason), number(o.replaces),
            number(o.replaced_by), instant(o.created_at), instant(o.updated_at)]


def _fill_row(f: Any) -> list[str]:
    return [number(f.fill_id), number(f.order_id), f.client, f.venue, f.symbol, f.side,
            exact(f.qty), exact(f.price), exact(f.fee), f.liquidity, instant(f.at)]


TRADES = Export(
    "trades.csv", history.TRADES,
    ("trade_id", "client", "venue", "symbol", "direction", "qty", "entry_price",
     "exit_price", "realized_pnl", "fees", "funding", "net_pnl", "pnl_pct", "opened_at",
     "closed_at", "duration_s", "exit_reason"),
    _trade_row)
ORDERS = Export(
    "orders.csv", history.ORDERS,
    ("id", "client_order_id", "client", "venue", "symbol", "side", "type", "status", "qty",
     "price", "trigger_price", "time_in_force", "post_only", "reduce_only", "filled_qty",
     "remaining_qty", "avg_fill_price", "fees", "reason", "reason_message", "cancel_reason",
     "replaces", "replaced_by", "created_at", "updated_at"),
    _order_row)
FILLS = Export(
    "fills.csv", history.FILLS,
    ("fill_id", "order_id", "client", "venue", "symbol", "side", "qty", "price", "fee",
     "liquidity", "at"),
    _fill_row)


# ---- reading and streaming ------------------------------------------------------------------

def read_page(system: TradingSystem, export: Export, where: list[Any],
              cursor: tuple[Any, ...] | None) -> list[Any]:
    """One page of rows, newest first, after ``cursor`` (blocking: run it in a thread)."""
    return history.read_page(system, export.table, where, cursor, PAGE_ROWS)


def page_csv(system: TradingSystem, export: Export, where: list[Any],
             cursor: tuple[Any, ...] | None) -> tuple[str, tuple[Any, ...] | None]:
    """One page as CSV text (with the header on the first) and the cursor of the next
    page (None after the last). Blocking: the read and the formatting both run in a
    worker thread, so the event loop only passes text on."""
    rows = read_page(system, export, where, cursor)
    out = io.StringIO()
    writer = csv.writer(out)  # RFC 4180: CRLF line ends, quotes where needed
    if cursor is None:
        writer.writerow(export.columns)
    writer.writerows(export.row(r) for r in rows)
    more = len(rows) == PAGE_ROWS
    return out.getvalue(), (export.table.cursor_of(rows[-1]) if more else None)


async def stream_csv(system: TradingSystem, export: Export, where: list[Any]) -> Response:
    """The whole export, streamed a page at a time (see the module's docstring)."""
    first, cursor = await asyncio.to_thread(page_csv, system, export, where, None)

    async def body() -> AsyncIterator[str]:
        text, after = first, cursor
        yield text
        while after is not None:
            text, after = await asyncio.to_thread(page_csv, system, export, where, after)
            yield text

    return StreamingResponse(body(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f"attachment; filename={export.filename}"})


async def caller(request: Request) -> Principal | Response:
    """The caller as the API authenticates them; a browser with no session (and no key)
    is sent to the login page instead of getting the API's 401.

    A dependency, so it runs before the query is validated: no credentials is a 401
    (or the login page) whatever the query says, as on the JSON endpoints."""
    try:
        return ensure_role(await authenticate(request), Role.VIEWER)
    except ApiError as exc:
        browser = "text/html" in request.headers.get("accept", "")
        if (exc.status == 401 and browser
                and "authorization" not in request.headers):
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        raise


Caller = Annotated[Principal | Response, Depends(caller)]


# ---- routes ---------------------------------------------------------------------------------

@router.get("/trades.csv")
async def trades_csv(principal: Caller, system: System, client: ClientQuery = None,
                     venue: VenueQuery = None, symbol: SymbolQuery = None,
                     start: FromQuery = None, end: ToQuery = None) -> Response:
    """Closed trades, newest first (by ``closed_at``)."""
    if isinstance(principal, Response):
        return principal
    where = history.HistoryFilter(visible_clients(principal, system, client), venue, symbol,
                                  start, end).clauses(TRADES.table)
    return await stream_csv(system, TRADES, where)


@router.get("/orders.csv")
async def orders_csv(principal: Caller, system: System, client: ClientQuery = None,
                     venue: VenueQuery = None, symbol: SymbolQuery = None,
                     status: Annotated[str | None, Query(
                         description="a status, or 'open'")] = None,
                     start: FromQuery = None, end: ToQuery = None) -> Response:
    """Orders, newest first (by id), in the state they are in now."""
    if isinstance(principal, Response):
        return principal
    if status is not None and status != "open" and status not in STATUSES:
        raise ApiError(422, "VALIDATION_ERROR",
                       f"status: must be 'open' or one of {', '.join(sorted(STATUSES))}",
                       {"field": "status"})
    where = history.HistoryFilter(visible_clients(principal, system, client), venue, symbol,
                                  start, end, status=status).clauses(ORDERS.table)
    return await stream_csv(system, ORDERS, where)


@router.get("/fills.csv")
async def fills_csv(principal: Caller, system: System, client: ClientQuery = None,
                    venue: VenueQuery = None, symbol: SymbolQuery = None,
                    order_id: IdQuery = None, start: FromQuery = None,
                    end: ToQuery = None) -> Response:
    """Fills, newest first (by ``fill_id``)."""
    if isinstance(principal, Response):
        return principal
    where = history.HistoryFilter(visible_clients(principal, system, client), venue, symbol,
                                  start, end, order_id=order_id).clauses(FILLS.table)
    return await stream_csv(system, FILLS, where)
