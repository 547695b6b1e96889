"""CSV exports (/trades.csv, /orders.csv, /fills.csv): authenticated like every other
read (API key or browser session), client-scoped, filtered like the JSON endpoints,
streamed a page at a time from reads off the event loop, decimals written exactly."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlmodel import Session

from app.auth.principal import Role
from app.store.tables import ClosedTradeRow
from app.web import exports

EXPORTS = ("/trades.csv", "/orders.csv", "/fills.csv")
PASSWORD = "csv-password-123"
PLAIN_DECIMAL = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


def parse(response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    return list(csv.DictReader(io.StringIO(response.text)))


def header(response) -> list[str]:
    return next(csv.reader(io.StringIO(response.text)))


def login(api, name: str, role: Role = Role.VIEWER, clients: str = "") -> None:
    api.auth.add_user(name, role, PASSWORD, clients=clients)
    r = api.client.post("/login", data={"name": name, "password": PASSWORD, "next": "/"},
                        follow_redirects=False)
    assert r.status_code == 303, r.text


@pytest.fixture
def traded(market_api):
    """demo: a round trip on paper-binance (one closed trade, two fills) and a resting
    limit order; demo-2: a round trip on paper-bybit."""
    api = market_api
    api.buy_market("0.002")
    api.sell_market("0.002")
    api.place(client_order_id="resting-1")
    api.buy_market("0.001", client="demo-2", venue="paper-bybit")
    api.sell_market("0.001", client="demo-2", venue="paper-bybit")
    api.settle()
    return api


# ---- authentication -----------------------------------------------------------------------

@pytest.mark.parametrize("path", EXPORTS)
def test_an_api_key_works_and_no_credentials_is_the_apis_401(traded, path):
    assert parse(traded.get(path, "viewer"))  # the lowest role is enough

    r = traded.get(path, None)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "UNAUTHENTICATED"
    assert set(r.json()["error"]) == {"code", "message", "details"}
    assert r.headers["www-authenticate"] == "Bearer"

    r = traded.get(path, "pdk_not_a_key")
    assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize("path", EXPORTS)
def test_a_missing_login_is_checked_before_the_query(api, path):
    # As on the JSON endpoints: no credentials is 401 whatever the query says.
    r = api.get(path + "?client=no%20such&from=yesterday", None)
    assert r.status_code == 401, r.text


def test_a_browser_without_a_session_goes_to_the_login_page(api):
    for path in EXPORTS:
        r = api.client.get(path, headers={"Accept": "text/html,application/xhtml+xml"},
                           follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == f"/login?next={path}"
    # A wrong key is an answer for a script even with a browser's Accept header.
    r = api.client.get("/trades.csv", follow_redirects=False, headers={
        "Accept": "text/html", "Authorization": "Bearer pdk_wrong"})
    assert r.status_code == 401


def test_a_browser_session_downloads_every_export(traded):
    login(traded, "watcher")
    for path in EXPORTS:
        r = traded.client.get(path, headers={"Accept": "text/html"})
        rows = parse(r)
        assert rows, path
        assert r.headers["content-disposition"] == f"attachment; filename={path[1:]}"
        assert r.headers["cache-control"] == "no-store"


# ---- scope ----------------------------------------------------------------------------------

@pytest.mark.parametrize("path", EXPORTS)
def test_a_scoped_key_sees_only_its_clients(traded, path):
    everyone = {row["client"] for row in parse(traded.get(path, "admin"))}
    assert everyone == {"demo", "demo-2"}
    assert {row["client"] for row in parse(traded.get(path, "scoped"))} == {"demo"}

    r = traded.get(path + "?client=demo-2", "scoped")
    assert r.status_code == 403 and r.json()["error"]["code"] == "CLIENT_FORBIDDEN"
    r = traded.get(path + "?client=nobody", "admin")
    assert r.status_code == 404 and r.json()["error"]["code"] == "UNKNOWN_CLIENT"


def test_a_scoped_browser_session_sees_only_its_clients(traded):
    login(traded, "demo-only", Role.TRADER, clients="demo")
    for path in EXPORTS:
        assert {row["client"] for row in parse(traded.client.get(path))} == {"demo"}, path


# ---- columns and values -------------------------------------------------------------------

def test_trades_columns_and_exact_decimals(traded):
    r = traded.get("/trades.csv")
    assert header(r) == [
        "trade_id", "client", "venue", "symbol", "direction", "qty", "entry_price",
        "exit_price", "realized_pnl", "fees", "funding", "net_pnl", "pnl_pct", "opened_at",
        "closed_at", "duration_s", "exit_reason"]
    rows = parse(r)
    by_id = {t["trade_id"]: t for t in traded.ok(traded.get("/api/v1/trades"))}
    assert [row["trade_id"] for row in rows] == list(by_id)  # newest first, like the JSON
    for row in rows:
        trade = by_id[row["trade_id"]]
        # Exactly what the JSON says (the stored decimals, as text)...
        for column in ("qty", "entry_price", "exit_price", "realized_pnl", "fees", "funding",
                       "net_pnl"):
            assert row[column] == trade[column], column
            assert PLAIN_DECIMAL.fullmatch(row[column]), (column, row[column])
        # ...but the percentage at a fixed 4 places (it is a quotient: 28 digits stored).
        assert re.fullmatch(r"-?[0-9]+\.[0-9]{4}", row["pnl_pct"]), row["pnl_pct"]
        assert Decimal(row["pnl_pct"]) == Decimal(trade["pnl_pct"]).quantize(Decimal("0.0001"))
        assert row["closed_at"].endswith("Z") and row["opened_at"].endswith("Z")
        closed = datetime.fromisoformat(row["closed_at"])
        opened = datetime.fromisoformat(row["opened_at"])
        assert Decimal(row["duration_s"]) == Decimal(
            (closed - opened) // timedelta(microseconds=1)).scaleb(-6)
        assert re.fullmatch(r"[0-9]+\.[0-9]{6}", row["duration_s"])
    demo = next(row for row in rows if row["client"] == "demo")
    assert demo["qty"] == "0.002" and demo["direction"] == "long"
    assert demo["venue"] == "paper-binance" and demo["symbol"] == "BTC-PERP"


def test_orders_columns_and_values_as_the_json_renders_them(traded):
    r = traded.get("/orders.csv")
    assert header(r) == [
        "id", "client_order_id", "client", "venue", "symbol", "side", "type", "status", "qty",
        "price", "trigger_price", "time_in_force", "post_only", "reduce_only", "filled_qty",
        "remaining_qty", "avg_fill_price", "fees", "reason", "reason_message",
        "cancel_reason", "replaces", "replaced_by", "created_at", "updated_at"]
    rows = parse(r)
    page = traded.ok(traded.get("/api/v1/orders"))["items"]
    assert [int(row["id"]) for row in rows] == [o["id"] for o in page]
    for row, order in zip(rows, page, strict=True):
        for column in ("client_order_id", "client", "venue", "symbol", "side", "type",
                       "status", "qty", "filled_qty", "remaining_qty", "fees",
                       "time_in_force", "created_at"):
            assert row[column] == (order[column] or ""), column
        assert row["price"] == (order["price"] or "")  # a market order has none: empty
        assert row["avg_fill_price"] == (order["avg_fill_price"] or "")
        assert row["post_only"] == str(order["post_only"]).lower()
    resting = next(row for row in rows if row["client_order_id"] == "resting-1")
    assert resting["price"] == "59000.0"  # as the caller wrote it, not 59000 or 5.9E+4
    assert resting["status"] == "accepted" and resting["avg_fill_price"] == ""
    assert resting["reduce_only"] == "false" and resting["filled_qty"] == "0"


def test_fills_columns_and_exact_decimals(traded):
    r = traded.get("/fills.csv")
    assert header(r) == ["fill_id", "order_id", "client", "venue", "symbol", "side", "qty",
                         "price", "fee", "liquidity", "at"]
    rows = parse(r)
    page = traded.ok(traded.get("/api/v1/fills"))["items"]
    assert len(rows) == len(page) == 4
    for row, fill in zip(rows, page, strict=True):
        assert int(row["fill_id"]) == fill["fill_id"]
        for column in ("client", "venue", "symbol", "side", "qty", "price", "fee",
                       "liquidity"):
            assert row[column] == fill[column], column
        assert row["at"].endswith("Z")
    assert {row["price"] for row in rows if row["venue"] == "paper-binance"} == {
        "60000.1", "60000.0"}


def test_a_text_cell_never_runs_as_a_spreadsheet_formula(market_api):
    market_api.place(client_order_id="-A1")  # a valid id that Excel would evaluate
    rows = parse(market_api.get("/orders.csv"))
    assert rows[0]["client_order_id"] == "'-A1"
    assert exports.text("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")"
    assert exports.text("@SUM(A1)") == "'@SUM(A1)" and exports.text("plain") == "plain"
    assert exports.exact(Decimal("-0.00")) == "0.00"  # never "-0"
    assert exports.exact(Decimal("1E-8")) == "0.00000001"  # never an exponent


# ---- filters --------------------------------------------------------------------------------

def test_filters_like_the_json_endpoints(traded):
    def ids(path: str, column: str) -> list[str]:
        return [row[column] for row in parse(traded.get(path))]

    assert {r["venue"] for r in parse(traded.get("/trades.csv?venue=paper-bybit"))} == {
        "paper-bybit"}
    assert ids("/trades.csv?symbol=ETH-PERP", "trade_id") == []
    assert ids("/fills.csv?client=demo", "fill_id") == [
        str(f["fill_id"]) for f in traded.ok(traded.get("/api/v1/fills?client=demo"))["items"]]
    open_orders = parse(traded.get("/orders.csv?status=open"))
    assert [r["client_order_id"] for r in open_orders] == ["resting-1"]
    assert ids("/orders.csv?status=filled&client=demo-2", "status") == ["filled", "filled"]
    order_id = parse(traded.get("/orders.csv?status=filled&client=demo"))[0]["id"]
    assert {r["order_id"] for r in parse(traded.get(f"/fills.csv?order_id={order_id}"))} == {
        order_id}

    r = traded.get("/orders.csv?status=bogus")
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "status"
    r = traded.get("/fills.csv?symbol=BTC%20PERP")
    assert r.status_code == 422 and r.json()["error"]["code"] == "VALIDATION_ERROR"


def test_from_and_to_select_a_time_window(traded):
    fills = parse(traded.get("/fills.csv"))
    times = sorted(datetime.fromisoformat(row["at"]) for row in fills)
    middle = times[len(times) // 2]
    stamp = middle.isoformat().replace("+00:00", "Z")
    later = parse(traded.get("/fills.csv", params={"from": stamp}))
    earlier = parse(traded.get("/fills.csv", params={"to": stamp}))
    assert len(later) + len(earlier) == len(fills)  # from inclusive, to exclusive
    assert all(datetime.fromisoformat(r["at"]) >= middle for r in later)
    assert all(datetime.fromisoformat(r["at"]) < middle for r in earlier)
    # No offset means UTC.
    naive = middle.replace(tzinfo=None).isoformat()
    assert parse(traded.get("/fills.csv", params={"from": naive})) == later

    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert parse(traded.get("/trades.csv", params={"from": future})) == []
    assert parse(traded.get("/orders.csv", params={"to": "2000-01-01T00:00:00Z"})) == []
    r = traded.get("/trades.csv", params={"from": future, "to": "2000-01-01T00:00:00Z"})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "to"
    r = traded.get("/trades.csv", params={"from": "last tuesday"})
    assert r.status_code == 422


# ---- bounded ------------------------------------------------------------------------------

def test_long_exports_stream_in_pages_read_off_the_event_loop(api, monkeypatch):
    """Pages of 3 rows: every row once, in order, one header, each read in a worker
    thread; trades closed at the same instant are told apart by their id (keyset)."""
    base = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    with Session(api.system.db) as session:
        for i in range(10):
            session.add(ClosedTradeRow(
                trade_id=f"t{i:02d}", client="demo", venue="paper-binance",
                symbol="BTC-PERP", direction="long", qty=Decimal("0.001"),
                entry_price=Decimal("60000"), exit_price=Decimal("60001"),
                realized_pnl=Decimal("0.001"), fees=Decimal("0"), funding=Decimal("0"),
                net_pnl=Decimal("0.001"), pnl_pct=Decimal("0.00166666666666666666666667"),
                opened_at=base, closed_at=base + timedelta(seconds=i // 4),
                exit_reason="test"))
        session.commit()

    reads: list[bool] = []
    read_page = exports.read_page

    def recording(*args):
        try:
            asyncio.get_running_loop()
            reads.append(False)  # on the event loop: what must not happen
        except RuntimeError:
            reads.append(True)
        return read_page(*args)

    monkeypatch.setattr(exports, "PAGE_ROWS", 3)
    monkeypatch.setattr(exports, "read_page", recording)
    r = api.get("/trades.csv")
    rows = parse(r)
    expected = sorted((f"t{i:02d}" for i in range(10)),
                      key=lambda t: (int(t[1:]) // 4, t), reverse=True)
    assert [row["trade_id"] for row in rows] == expected
    assert r.text.count("trade_id,") == 1
    assert reads == [True] * 4  # 3 + 3 + 3 + 1 rows
    assert {row["pnl_pct"] for row in rows} == {"0.0017"}
