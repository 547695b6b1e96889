"""GET /api/v1/analytics and GET /api/v1/reports/daily: metrics of the closed trades
and orders in the store, scoped by principal, decimals as strings, bounded inputs,
the one error shape."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal as D


def _round_trips(api) -> list[dict]:
    """A losing round trip (bought at the ask, sold at the bid, fees), then a winning
    one (the market rose 100 before the sale), and a rejected post-only order."""
    api.buy_market("0.002")
    api.sell_market("0.002")
    api.buy_market("0.002")
    api.push_btc(bid=D("60100.0"), ask=D("60100.1"), mark=D("60100.0"))
    api.sell_market("0.002")
    rejected = api.order(side="buy", type="limit", qty="0.011", price="59000.0")
    assert rejected.status_code == 400
    api.settle()
    trades = api.ok(api.get("/api/v1/trades"))
    assert len(trades) == 2
    return trades


def test_analytics_of_closed_trades_and_orders(market_api) -> None:
    trades = _round_trips(market_api)
    body = market_api.ok(market_api.get("/api/v1/analytics", params={"client": "demo"}))
    m = body["metrics"]
    assert body["clients"] == ["demo"] and body["strategy"] is None
    t = m["trades"]
    assert t["trades"] == 2 and t["wins"] == 1 and t["losses"] == 1
    assert D(t["win_rate"]) == D("0.5")
    total = sum(D(x["net_pnl"]) for x in trades)
    assert D(t["total_pnl"]) == total
    assert D(m["total_pnl"]) == total  # the realized curve ends at capital + the trades
    assert D(t["profit_factor"]) == max(D(x["net_pnl"]) for x in trades) / -min(
        D(x["net_pnl"]) for x in trades)
    assert m["long"]["trades"] == 2 and m["short"]["trades"] == 0
    assert m["orders"]["submitted"] == 5 and m["orders"]["rejected"] == 1
    assert m["orders"]["rejections"] == {"MAX_POSITION_SIZE": 1}
    assert D(m["orders"]["fill_rate"]) == 1
    assert set(m["by_venue"]) == {"paper-binance"}
    assert m["periods_per_year"] == 365
    assert D(body["capital"]) > 0
    # No strategy traded: a strategy's analytics are empty.
    none = market_api.ok(market_api.get("/api/v1/analytics",
                                        params={"strategy": "ma-1"}))["metrics"]
    assert none["trades"]["trades"] == 0 and none["trades"]["win_rate"] is None
    assert none["orders"]["submitted"] == 0


def test_analytics_measure_slippage_against_the_arrival_mid(market_api) -> None:
    # Every market order of 0.002 takes the top of an L1 book of size 1: buys pay the
    # ask, sells get the bid, each half a spread (0.05) away from the arrival mid.
    _round_trips(market_api)
    t = market_api.ok(market_api.get("/api/v1/analytics",
                                      params={"client": "demo"}))["metrics"]["trades"]
    half, qty = D("0.05"), D("0.002")
    assert D(t["slippage"]) == 2 * 2 * half * qty  # two legs of two trades
    mid1, mid2 = D("60000.05"), D("60100.05")  # the first book, then the risen one
    first = half / mid1 * 10_000 * 2  # bought and sold on the first book
    second = half / mid1 * 10_000 + half / mid2 * 10_000  # sold on the second
    assert abs(D(t["average_slippage_bps"]) - (first + second) / 2) < D("1e-20")


def test_daily_recap(market_api) -> None:
    trades = _round_trips(market_api)
    day = datetime.fromisoformat(trades[0]["closed_at"]).date().isoformat()
    r = market_api.ok(market_api.get("/api/v1/reports/daily", params={"date": day}))
    assert r["date"] == day and r["trades"] == 2
    assert D(r["win_rate"]) == D("0.5")
    assert D(r["total_pnl"]) == sum(D(x["net_pnl"]) for x in trades)
    assert r["rejections"] == 1 and r["rejections_by_code"] == {"MAX_POSITION_SIZE": 1}
    assert D(r["max_drawdown"]) >= 0
    other = (datetime.fromisoformat(day) - timedelta(days=3)).date().isoformat()
    empty = market_api.ok(market_api.get("/api/v1/reports/daily", params={"date": other}))
    assert empty["trades"] == 0 and empty["rejections"] == 0 and empty["sharpe"] is None


def test_scope_and_bounds(api) -> None:
    # A key scoped to client demo may not read demo-2's analytics.
    denied = api.get("/api/v1/analytics", who="scoped", params={"client": "demo-2"})
    assert denied.status_code == 403 and "code" in denied.json()["error"]
    assert api.get("/api/v1/analytics", params={"client": "nobody"}).status_code == 404
    mine = api.ok(api.get("/api/v1/analytics", who="scoped"))
    assert mine["clients"] == ["demo"]
    assert api.get("/api/v1/analytics", who=None).status_code == 401
    backwards = api.get("/api/v1/analytics", params={
        "from": "2024-02-01T00:00:00Z", "to": "2024-01-01T00:00:00Z"})
    assert backwards.status_code == 422 and backwards.json()["error"]["code"]
    too_long = api.get("/api/v1/analytics", params={
        "from": "2022-01-01T00:00:00Z", "to": "2024-01-01T00:00:00Z"})
    assert too_long.status_code == 422
    for bad in ({"strategy": "x" * 65}, {"strategy": "a b"}, {"from": "yesterday"}):
        assert api.get("/api/v1/analytics", params=bad).status_code == 422
    assert api.get("/api/v1/reports/daily", params={"date": "1999-01-01"}).status_code == 422
    assert api.get("/api/v1/reports/daily", params={"date": "nope"}).status_code == 422


def test_trades_are_attributed_to_the_strategy_of_their_orders(market_api) -> None:
    tagged = {"tags": {"strategy": "scalper"}, "venue": "paper-bybit"}
    market_api.buy_market("0.002", **tagged)
    market_api.sell_market("0.002", **tagged)
    market_api.buy_market("0.002")  # untagged, on paper-binance
    market_api.sell_market("0.002")
    market_api.settle()
    m = market_api.ok(market_api.get("/api/v1/analytics"))["metrics"]
    assert m["trades"]["trades"] == 2
    assert set(m["by_strategy"]) == {"scalper", "-"}
    assert m["by_strategy"]["scalper"]["trades"] == 1
    assert set(m["by_venue"]) == {"paper-binance", "paper-bybit"}
    only = market_api.ok(market_api.get("/api/v1/analytics",
                                        params={"strategy": "scalper"}))["metrics"]
    assert only["trades"]["trades"] == 1 and set(only["by_venue"]) == {"paper-bybit"}
    assert only["orders"]["submitted"] == 2
