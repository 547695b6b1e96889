"""POST /api/v1/leverage and what positions and balances say about margin (issue 11)."""

from __future__ import annotations

from decimal import Decimal

from app.domain.commands import Withdraw
from app.store.tables import AuditRow

D = Decimal


def leverage(api, who: str = "trader", **body):
    return api.post("/api/v1/leverage", who, json={
        "client": "demo", "venue": "paper-binance", "symbol": "BTC-PERP", **body})


def test_set_leverage_answers_changes_and_audits(market_api) -> None:
    api = market_api
    r = api.ok(leverage(api, leverage=10))
    assert (r["leverage"], r["previous"], r["changed"]) == (10, 5, True)
    assert D(r["max_notional"]) == D(50_000_000)  # the 16x tier is the last to allow 10x
    again = api.ok(leverage(api, leverage=10))
    assert again["changed"] is False and again["previous"] == 10
    rows = [row for row in api.rows(AuditRow) if row.action == "leverage"]
    assert len(rows) == 2 and rows[0].details["changed"] is True
    assert rows[1].details["changed"] is False


def test_leverage_is_bounded_by_the_instrument_and_the_role(market_api) -> None:
    api = market_api
    r = leverage(api, leverage=126)
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "leverage"
    r = leverage(api, symbol="XRP-PERP", leverage=51)  # XRP allows 50x
    assert r.status_code == 400 and r.json()["error"]["code"] == "LEVERAGE_TOO_HIGH"
    assert leverage(api, "viewer", leverage=3).status_code == 403
    assert leverage(api, "scoped", client="demo-2", leverage=3).status_code == 403
    r = leverage(api, symbol="NOPE-PERP", leverage=3)
    assert r.status_code == 404 and r.json()["error"]["code"] == "UNKNOWN_SYMBOL"


def test_positions_show_leverage_maintenance_and_liquidation_price(market_api) -> None:
    api = market_api
    api.buy_market("0.005")
    (position,) = [p for p in api.ok(api.get("/api/v1/positions"))
                   if p["venue"] == "paper-binance"]
    assert position["leverage"] == "5"
    notional = D(position["notional"])
    assert D(position["maintenance_margin"]) == (notional * D("0.004")).quantize(
        D("0.00000001"))
    # 20,000 in the account against 300 of BTC: no positive price liquidates it
    assert position["liquidation_price"] is None
    (balance,) = [b for b in api.ok(api.get("/api/v1/balances", params={"client": "demo"}))
                  if b["venue"] == "paper-binance"]
    assert D(balance["maintenance_margin"]) == D(position["maintenance_margin"])
    assert D(balance["maintenance_ratio"]) < D("0.001")


def test_the_dashboard_positions_show_the_liquidation_price(make_api) -> None:
    """Under the mark, the positions table shows the price the API reports."""
    from app.auth.principal import Principal, Role
    from app.services.queries import Reader
    from app.web import views

    api = make_api(config=None)
    api.push_btc()
    api.ok(leverage(api, leverage=20))
    api.run(Withdraw("demo", "paper-binance", D(19_980)))  # 20 left against 60 of BTC
    api.buy_market("0.001")
    reader = Reader(api.system, Principal("v", Role.VIEWER, None, "key"))
    (row,) = [r for r in views.positions(reader, ["demo"]) if r["venue"] == "paper-binance"]
    (position,) = [p for p in api.ok(api.get("/api/v1/positions"))
                   if p["venue"] == "paper-binance"]
    assert position["liquidation_price"] is not None
    assert D(row["liq"]) == D(position["liquidation_price"])
