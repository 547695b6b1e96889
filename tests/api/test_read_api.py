"""The read side over HTTP: positions, balances, portfolio, trades, fills, events, markets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from app.domain.commands import Withdraw
from app.domain.market import FundingRate

MONEY = D("0.00000001")
TAKER = D("0.0005")


def _money(value: D) -> str:
    return format(value.quantize(MONEY), "f")


def test_positions_after_a_fill(market_api):
    market_api.buy_market("0.002")
    rows = market_api.ok(market_api.get("/api/v1/positions"))
    assert len(rows) == 1
    p = rows[0]
    assert (p["client"], p["venue"], p["symbol"], p["side"]) == (
        "demo", "paper-binance", "BTC-PERP", "long")
    assert p["qty"] == "0.002"
    assert D(p["avg_entry_price"]) == D("60000.1")
    assert D(p["mark_price"]) == D("60000.0")
    # 0.002 × (60000.0 − 60000.1)
    assert p["unrealized_pnl"] == "-0.00020000"
    assert p["notional"] == "120.00000000"
    assert p["margin"] == "24.00000000"  # 120 / 5x
    assert p["fees"] == _money(D("0.002") * D("60000.1") * TAKER)
    assert p["realized_pnl"] == "0.00000000" and p["funding"] == "0.00000000"
    assert p["opened_at"] is not None

    # A new mark moves unrealized P&L.
    market_api.push_btc(bid=D("60100.0"), ask=D("60100.1"), mark=D("60100.0"))
    p = market_api.ok(market_api.get("/api/v1/positions"))[0]
    assert D(p["mark_price"]) == D("60100.0")
    assert p["unrealized_pnl"] == _money(D("0.002") * (D("60100.0") - D("60000.1")))

    # Filters.
    assert market_api.ok(market_api.get("/api/v1/positions",
                                        params={"venue": "paper-bybit"})) == []
    assert market_api.ok(market_api.get("/api/v1/positions", params={"client": "demo-2"})) == []


def test_short_position_side_and_unrealized(market_api):
    market_api.sell_market("0.001", venue="paper-bybit")
    p = market_api.ok(market_api.get("/api/v1/positions"))[0]
    assert p["side"] == "short" and p["qty"] == "-0.001"
    assert D(p["avg_entry_price"]) == D("60000.0")
    assert D(p["unrealized_pnl"]) == 0
    assert D(p["notional"]) == D("60.0")


def test_money_fields_never_render_negative_zero(market_api):
    """A short marked at its entry has no P&L: "0.00000000", not "-0.00000000"."""
    market_api.sell_market("0.001", venue="paper-bybit")
    p = market_api.ok(market_api.get("/api/v1/positions"))[0]
    balances = market_api.ok(market_api.get("/api/v1/balances"))
    portfolio = market_api.ok(market_api.get("/api/v1/portfolio"))
    texts = [p["unrealized_pnl"], *(b["unrealized_pnl"] for b in balances),
             portfolio["total"]["unrealized_pnl"]]
    assert "-0.00000000" not in texts, texts


def test_balances_per_account_and_the_wallet_identity(market_api):
    market_api.buy_market("0.001")  # demo on binance
    market_api.run(Withdraw("demo", "paper-binance", D("100"), actor="tests"))
    now = datetime.now(UTC)
    market_api.push(FundingRate("paper-binance", "BTC-PERP", D("0.0001"),
                                now - timedelta(seconds=1), now))
    market_api.settle()

    rows = market_api.ok(market_api.get("/api/v1/balances"))
    assert {(b["client"], b["venue"]) for b in rows} == {
        (c, v) for c in ("demo", "demo-2", "arb") for v in ("paper-binance", "paper-bybit")}
    for b in rows:
        wallet = (D(b["deposits"]) - D(b["withdrawals"]) + D(b["realized_pnl"])
                  - D(b["fees"]) + D(b["funding"]))
        assert D(b["wallet"]) == wallet, b
        assert D(b["equity"]) == D(b["wallet"]) + D(b["unrealized_pnl"]), b
        assert D(b["available"]) == D(b["equity"]) - D(b["margin_used"]) - D(b["order_margin"])

    demo = next(b for b in rows if (b["client"], b["venue"]) == ("demo", "paper-binance"))
    fee = D("0.001") * D("60000.1") * TAKER
    funding = -(D("0.001") * D("60000.0") * D("0.0001"))  # longs pay: −0.006
    assert demo["deposits"] == "20000.00000000" and demo["withdrawals"] == "100.00000000"
    assert demo["fees"] == _money(fee)
    assert demo["funding"] == _money(funding)
    assert demo["wallet"] == _money(D(20000) - D(100) - fee + funding)
    assert demo["unrealized_pnl"] == "-0.00010000"
    assert demo["margin_used"] == "12.00000000"
    untouched = next(b for b in rows if (b["client"], b["venue"]) == ("demo-2", "paper-bybit"))
    assert untouched["wallet"] == untouched["equity"] == "20000.00000000"
    assert untouched["margin_ratio"] == "0.0000"

    only = market_api.ok(market_api.get("/api/v1/balances",
                                        params={"client": "demo", "venue": "paper-binance"}))
    assert only == [demo]


def test_portfolio_per_client_and_total(market_api):
    market_api.buy_market("0.001")
    market_api.sell_market("0.001", client="demo-2", venue="paper-bybit")
    body = market_api.ok(market_api.get("/api/v1/portfolio"))
    clients = {c["name"]: c for c in body["clients"]}
    assert set(clients) == {"demo", "demo-2", "arb"}  # arb: the arbitrage's own
    total = body["total"]
    assert total["name"] == "total"
    for field in ("equity", "wallet", "realized_pnl", "unrealized_pnl", "fees", "funding",
                  "capital", "margin_used", "pnl"):
        assert D(total[field]) == sum(D(c[field]) for c in clients.values()), field
    demo = clients["demo"]
    fee = D("0.001") * D("60000.1") * TAKER
    assert demo["capital"] == "40000.00000000"  # 20,000 on each venue
    assert D(demo["pnl"]) == D(demo["realized_pnl"]) - D(demo["fees"]) + D(
        demo["funding"]) + D(demo["unrealized_pnl"])
    assert demo["fees"] == _money(fee)
    assert D(demo["equity"]) == D(40000) - fee - D("0.0001")
    assert demo["margin_used"] == "12.00000000"
    assert D(demo["utilization_pct"]) == (D(12) / D(demo["equity"]) * 100).quantize(D("0.01"))

    only = market_api.ok(market_api.get("/api/v1/portfolio", params={"client": "demo-2"}))
    assert [c["name"] for c in only["clients"]] == ["demo-2"]
    assert only["total"]["equity"] == clients["demo-2"]["equity"]


def test_trades_after_a_round_trip(market_api):
    market_api.buy_market("0.001")
    market_api.sell_market("0.001")
    trades = market_api.ok(market_api.get("/api/v1/trades"))
    assert len(trades) == 1
    t = trades[0]
    fees = D("0.001") * D("60000.1") * TAKER + D("0.001") * D("60000.0") * TAKER
    realized = (D("60000.0") - D("60000.1")) * D("0.001")
    net = realized - fees
    assert t["trade_id"] == "demo:paper-binance:BTC-PERP:1"
    assert (t["client"], t["venue"], t["symbol"], t["direction"]) == (
        "demo", "paper-binance", "BTC-PERP", "long")
    assert D(t["qty"]) == D("0.001")
    assert D(t["entry_price"]) == D("60000.1") and D(t["exit_price"]) == D("60000.0")
    assert D(t["realized_pnl"]) == realized
    assert D(t["fees"]) == fees
    assert D(t["funding"]) == 0
    assert D(t["net_pnl"]) == net
    assert D(t["pnl_pct"]) == net / (D("0.001") * D("60000.1")) * 100
    assert t["exit_reason"] == "manual"
    assert t["opened_at"] <= t["closed_at"]
    assert market_api.ok(market_api.get("/api/v1/positions")) == []
    assert market_api.ok(market_api.get("/api/v1/trades", params={"venue": "paper-bybit"})) == []


def test_fills_with_cursor(market_api):
    order_ids = []
    for i in range(5):
        order = market_api.buy_market() if i % 2 == 0 else market_api.sell_market()
        order_ids.append(order["id"])
    first = market_api.ok(market_api.get("/api/v1/fills", params={"limit": 2}))
    assert [f["fill_id"] for f in first["items"]] == [5, 4]
    assert first["next_cursor"] == 4
    second = market_api.ok(market_api.get("/api/v1/fills", params={"limit": 2, "cursor": 4}))
    assert [f["fill_id"] for f in second["items"]] == [3, 2]
    third = market_api.ok(market_api.get("/api/v1/fills",
                                         params={"limit": 2, "cursor": second["next_cursor"]}))
    assert [f["fill_id"] for f in third["items"]] == [1]
    assert third["next_cursor"] is None
    f = first["items"][0]
    assert f["order_id"] == order_ids[4] and f["side"] == "buy"
    assert D(f["price"]) == D("60000.1") and f["qty"] == "0.001"
    assert D(f["fee"]) == D("0.001") * D("60000.1") * TAKER
    assert f["liquidity"] == "taker" and f["client"] == "demo"
    by_order = market_api.ok(market_api.get("/api/v1/fills",
                                           params={"order_id": order_ids[1]}))["items"]
    assert [x["order_id"] for x in by_order] == [order_ids[1]]


def test_events_after_seq_are_ordered_and_complete(market_api):
    start = market_api.last_seq()
    assert start > 0  # deposits and market data already in the log
    order = market_api.buy_market()
    page = market_api.events(after=start)
    seqs = [e["seq"] for e in page["items"]]
    assert seqs == list(range(start + 1, start + 1 + len(seqs)))
    assert page["last_seq"] == seqs[-1] and page["more"] is False
    assert [e["type"] for e in page["items"]] == ["OrderSubmitted", "OrderAccepted",
                                                  "OrderFilled"]
    for e in page["items"]:
        assert e["client"] == "demo" and e["venue"] == "paper-binance"
        assert e["data"]["order_id"] == order["id"]
    assert page["items"][0]["data"]["spec"]["qty"] == "0.001"

    # Paging through the whole log with a small limit sees every seq once.
    seen, after = [], 0
    while True:
        chunk = market_api.events(after=after, limit=4)
        seen.extend(e["seq"] for e in chunk["items"])
        after = chunk["last_seq"]
        if not chunk["more"]:
            break
    assert seen == list(range(1, seqs[-1] + 1))
    assert market_api.events(after=seqs[-1]) == {"items": [], "last_seq": seqs[-1],
                                                 "more": False}


def test_events_for_a_scoped_key_never_include_demo_2_orders(market_api):
    start = market_api.last_seq()
    market_api.buy_market(client="demo-2")
    market_api.place(client="demo-2", price="59000.0")
    mine = market_api.buy_market(client="demo")
    items = market_api.events(after=start, who="scoped")["items"]
    assert items, "the scoped key sees its own client's events"
    assert {e["client"] for e in items} == {"demo"}
    assert {e["data"]["order_id"] for e in items} == {mine["id"]}
    everything = market_api.events(after=start)["items"]
    assert {e["client"] for e in everything} == {"demo", "demo-2"}


def test_events_for_a_scoped_key_never_include_demo_2_kill_switches(market_api):
    """A kill switch set on client demo-2 (and close-all for it) is demo-2's business."""
    start = market_api.last_seq()
    market_api.sell_market(client="demo-2")
    market_api.ok(market_api.control("reduce-only", client="demo-2"))
    market_api.ok(market_api.control("close-all", client="demo-2"))
    market_api.buy_market(client="demo")
    items = market_api.events(after=start, who="scoped")["items"]
    leaked = [e for e in items if "demo-2" in repr(e)]
    assert not leaked, f"a demo-scoped key saw demo-2 events: {[e['type'] for e in leaked]}"


def test_events_rejects_a_negative_after(api):
    r = api.get("/api/v1/events", params={"after": -1})
    assert r.status_code == 422
    assert r.json()["error"]["details"]["field"] == "after"


def test_markets_fields(market_api):
    rows = market_api.ok(market_api.get("/api/v1/markets", "viewer"))
    assert {(m["venue"], m["symbol"]) for m in rows} == {
        (v, s) for v in ("paper-binance", "paper-bybit")
        for s in ("BTC-PERP", "ETH-PERP", "SOL-PERP", "XRP-PERP")}
    btc = next(m for m in rows if (m["venue"], m["symbol"]) == ("paper-binance", "BTC-PERP"))
    assert btc["kind"] == "perp" and btc["base"] == "BTC" and btc["quote"] == "USDT"
    assert btc["tick_size"] == "0.1" and btc["step_size"] == "0.001"
    assert btc["min_qty"] == "0.001" and D(btc["min_notional"]) == 5
    assert D(btc["maker_fee_rate"]) == D("0.0002") and D(btc["taker_fee_rate"]) == TAKER
    assert D(btc["max_position_size"]) == D("0.01")
    assert D(btc["max_position_notional"]) == 500
    assert D(btc["bid"]) == D("60000.0") and D(btc["ask"]) == D("60000.1")
    assert D(btc["mark"]) == D("60000.0")
    assert btc["mark_updated_at"] is not None
    # no rate announced yet: the next instant on the 8-hour schedule (00, 08, 16 UTC)
    assert btc["funding_rate"] is None
    next_at = datetime.fromisoformat(btc["next_funding_at"].replace("Z", "+00:00"))
    assert next_at.hour % 8 == 0 and next_at.minute == 0 and next_at.second == 0
    assert timedelta(0) < next_at - datetime.now(UTC) <= timedelta(hours=8)
    eth = next(m for m in rows if (m["venue"], m["symbol"]) == ("paper-bybit", "ETH-PERP"))
    assert eth["bid"] is None and eth["mark"] is None and eth["mark_updated_at"] is None
    assert eth["tick_size"] == "0.01"

    later = datetime.now(UTC) + timedelta(hours=1)
    market_api.push(FundingRate("paper-binance", "BTC-PERP", D("0.0001"), later,
                                datetime.now(UTC)))
    market_api.settle()
    btc = next(m for m in market_api.ok(market_api.get("/api/v1/markets"))
               if (m["venue"], m["symbol"]) == ("paper-binance", "BTC-PERP"))
    assert D(btc["funding_rate"]) == D("0.0001")
    assert datetime.fromisoformat(btc["next_funding_at"].replace("Z", "+00:00")) == later
