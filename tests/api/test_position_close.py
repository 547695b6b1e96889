"""POST /api/v1/positions/close: one position flattened by a reduce-only market order,
scoped, audited, safe to retry."""

from __future__ import annotations

from app.store.tables import AuditRow

CLOSE = "/api/v1/positions/close"
BTC = {"client": "demo", "venue": "paper-binance", "symbol": "BTC-PERP"}


def _positions(api) -> dict[tuple[str, str, str], str]:
    return {(p["client"], p["venue"], p["symbol"]): p["qty"]
            for p in api.ok(api.get("/api/v1/positions"))}


def test_close_flattens_a_long_with_a_reduce_only_market_sell(market_api):
    market_api.buy_market("0.003")
    market_api.buy_market("0.001", venue="paper-bybit")  # another account: untouched
    body = market_api.ok(market_api.post(CLOSE, "trader",
                                         json={**BTC, "reason": "desk: take profit"}), 201)
    assert body["qty_before"] == "0.003" and body["qty"] == "0" and body["flat"] is True
    order = body["order"]
    assert (order["side"], order["type"], order["qty"]) == ("sell", "market", "0.003")
    assert order["reduce_only"] is True and order["status"] == "filled"
    assert order == market_api.order_by_id(order["id"])  # the order as the API shows it
    assert _positions(market_api) == {("demo", "paper-bybit", "BTC-PERP"): "0.001"}
    trade = market_api.ok(market_api.get("/api/v1/trades"))[0]
    assert trade["symbol"] == "BTC-PERP" and trade["venue"] == "paper-binance"

    (row,) = [r for r in market_api.rows(AuditRow) if r.action == "position-close"]
    assert row.actor == "key:trader" and row.reason == "desk: take profit"
    assert row.scope == "client demo, venue paper-binance"
    assert row.details["symbol"] == "BTC-PERP" and row.details["qty_before"] == "0.003"
    assert row.details["order_id"] == order["id"] and row.details["status"] == "filled"


def test_close_buys_back_a_short(market_api):
    market_api.sell_market("0.002")
    body = market_api.ok(market_api.post(CLOSE, "trader", json=BTC), 201)
    assert body["qty_before"] == "-0.002" and body["flat"] is True
    assert body["order"]["side"] == "buy" and body["order"]["qty"] == "0.002"
    assert _positions(market_api) == {}


def test_a_retry_when_already_flat_is_200_and_places_nothing(market_api):
    market_api.buy_market("0.001")
    first = market_api.ok(market_api.post(CLOSE, "trader", json=BTC), 201)
    orders_before = market_api.ok(market_api.get("/api/v1/orders"))["items"]
    again = market_api.ok(market_api.post(CLOSE, "trader", json=BTC), 200)
    assert again == {**BTC, "qty_before": "0", "qty": "0", "flat": True, "order": None}
    assert market_api.ok(market_api.get("/api/v1/orders"))["items"] == orders_before
    assert first["order"]["id"] == orders_before[0]["id"]
    # Only the close that did something is audited.
    assert [r.action for r in market_api.rows(AuditRow)
            if r.action == "position-close"] == ["position-close"]


def test_no_position_is_404_and_unknown_names_are_404(market_api):
    r = market_api.post(CLOSE, "trader", json=BTC)
    assert r.status_code == 404 and r.json()["error"]["code"] == "NO_POSITION"
    r = market_api.post(CLOSE, "trader", json={**BTC, "client": "nobody"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "UNKNOWN_CLIENT"
    r = market_api.post(CLOSE, "trader", json={**BTC, "venue": "nowhere"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "UNKNOWN_VENUE"
    r = market_api.post(CLOSE, "trader", json={**BTC, "symbol": "DOGE-PERP"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "NO_POSITION"


def test_roles_and_client_scope(market_api):
    market_api.buy_market("0.001", client="demo-2")
    r = market_api.post(CLOSE, "viewer", json={**BTC, "client": "demo-2"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"
    # The scoped key (demo only) may not close demo-2's position, and learns nothing of it.
    r = market_api.post(CLOSE, "scoped", json={**BTC, "client": "demo-2"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "CLIENT_FORBIDDEN"
    r = market_api.post(CLOSE, "scoped", json={**BTC, "client": "not-a-client"})
    assert r.status_code == 403
    assert _positions(market_api) == {("demo-2", "paper-binance", "BTC-PERP"): "0.001"}
    market_api.buy_market("0.001")
    assert market_api.ok(market_api.post(CLOSE, "scoped", json=BTC), 201)["flat"] is True


def test_inputs_are_bounded(market_api):
    for body, field in (({**BTC, "reason": "x" * 501}, "reason"),
                        ({**BTC, "reason": "bidi \u202e"}, "reason"),
                        ({**BTC, "symbol": "BTC PERP"}, "symbol"),
                        ({**BTC, "qty": "1"}, "qty")):
        r = market_api.post(CLOSE, "trader", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["details"]["field"] == field


def test_reduce_only_allows_a_close_and_halted_refuses_it(market_api):
    market_api.buy_market("0.002")
    market_api.ok(market_api.control("reduce-only", client="demo"))
    assert market_api.ok(market_api.post(CLOSE, "trader", json=BTC), 201)["flat"] is True

    market_api.buy_market("0.001", client="demo-2")
    market_api.ok(market_api.control("disable-trading", client="demo-2"))
    r = market_api.post(CLOSE, "trader", json={**BTC, "client": "demo-2"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "TRADING_HALTED"
    assert _positions(market_api) == {("demo-2", "paper-binance", "BTC-PERP"): "0.001"}


def test_a_close_never_flips_the_position(market_api):
    """The order is clipped to what is left when it reaches the engine: a position
    shrunk in between is closed, not reversed."""
    market_api.buy_market("0.003")
    market_api.sell_market("0.002")  # what a concurrent fill would do
    body = market_api.ok(market_api.post(CLOSE, "trader", json=BTC), 201)
    assert body["qty_before"] == "0.001" and body["order"]["qty"] == "0.001"
    assert body["flat"] is True and _positions(market_api) == {}


def test_openapi_documents_the_endpoint(api):
    doc = api.ok(api.get("/openapi.json", None))
    operation = doc["paths"][CLOSE]["post"]
    assert {"200", "201", "400", "403", "404", "422"} <= set(operation["responses"])
    schema = doc["components"]["schemas"]["PositionClose"]
    assert set(schema["properties"]) == {"client", "venue", "symbol", "reason"}
    assert set(schema["required"]) == {"client", "venue", "symbol"}
