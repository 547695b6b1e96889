"""/api/v1/controls: kill switches over HTTP — idempotent, audited, scoped."""

from __future__ import annotations

import pytest

from app.store.tables import AuditRow

ACTIONS = {"reduce-only": "reduce_only", "disable-trading": "halted",
           "enable-trading": "active"}


def _audit(api) -> list[AuditRow]:
    """The kill-switch audit rows (user, key and login entries are tested elsewhere)."""
    return sorted((r for r in api.rows(AuditRow) if r.scope != "auth"), key=lambda r: r.id)


SCOPES = [
    ({}, "global"),
    ({"client": "demo"}, "client demo"),
    ({"venue": "paper-bybit"}, "venue paper-bybit"),
    ({"client": "demo", "venue": "paper-binance"}, "client demo, venue paper-binance"),
]


@pytest.mark.parametrize("action", ["reduce-only", "disable-trading"])
@pytest.mark.parametrize(("scope", "described"), SCOPES, ids=[d for _, d in SCOPES])
def test_set_state_is_idempotent_and_audited(api, action, scope, described):
    state = ACTIONS[action]
    first = api.ok(api.control(action, reason="incident 42", **scope))
    assert first["state"] == state and first["previous"] == "active"
    assert first["changed"] is True
    assert first["scope"] == described
    assert first["client"] == scope.get("client") and first["venue"] == scope.get("venue")
    second = api.ok(api.control(action, reason="incident 42 again", **scope))
    assert second["state"] == state and second["previous"] == state
    assert second["changed"] is False

    rows = _audit(api)
    assert len(rows) == 2
    assert [r.action for r in rows] == [action, action]
    assert all(r.actor == "key:operator" and r.scope == described for r in rows)
    assert [r.reason for r in rows] == ["incident 42", "incident 42 again"]
    assert [r.previous for r in rows] == ["active", state]
    assert [r.details["changed"] for r in rows] == [True, False]
    assert all(r.details["state"] == state for r in rows)
    assert all(r.at.tzinfo is not None for r in rows)

    # Exactly one state change is in the event log.
    changes = [e for e in api.events()["items"] if e["type"] == "TradingStateChanged"]
    assert len(changes) == 1 and changes[0]["data"]["state"] == state

    # Back to normal, also audited and idempotent.
    enabled = api.ok(api.control("enable-trading", reason="resolved", **scope))
    assert enabled["state"] == "active" and enabled["previous"] == state
    assert enabled["changed"] is True
    assert api.ok(api.control("enable-trading", reason="resolved", **scope))["changed"] is False
    rows = _audit(api)
    assert [(r.action, r.previous) for r in rows[2:]] == [("enable-trading", state),
                                                         ("enable-trading", "active")]


def test_get_controls_lists_every_scope(api):
    assert api.ok(api.get("/api/v1/controls", "viewer")) == [
        {"client": None, "venue": None, "scope": "global", "state": "active"}]
    api.ok(api.control("reduce-only", client="demo"))
    api.ok(api.control("disable-trading", venue="paper-bybit"))
    api.ok(api.control("disable-trading", client="demo-2", venue="paper-binance"))
    listed = api.ok(api.get("/api/v1/controls", "viewer"))
    assert listed[0] == {"client": None, "venue": None, "scope": "global", "state": "active"}
    assert {(c["scope"], c["state"]) for c in listed[1:]} == {
        ("client demo", "reduce_only"), ("venue paper-bybit", "halted"),
        ("client demo-2, venue paper-binance", "halted")}
    # A demo-scoped key does not see demo-2's scopes.
    scoped = api.ok(api.get("/api/v1/controls", "scoped"))
    assert {c["scope"] for c in scoped} == {"global", "client demo", "venue paper-bybit"}


def test_reduce_only_blocks_increasing_orders_and_cancels_resting_ones(market_api):
    market_api.buy_market("0.002")
    resting_buy = market_api.place(price="59000.0")
    resting_sell = market_api.place(side="sell", price="61000.0")
    body = market_api.ok(market_api.control("reduce-only", client="demo"))
    assert body["changed"] is True
    assert market_api.order_by_id(resting_buy["id"])["status"] == "canceled"
    assert market_api.order_by_id(resting_sell["id"])["status"] == "accepted"
    assert market_api.ok(market_api.get("/api/v1/controls"))[1]["state"] == "reduce_only"
    assert _audit(market_api)[-1].details["canceled_orders"] == 1

    r = market_api.order(side="buy", type="market", price=None)
    assert r.status_code == 400 and r.json()["error"]["code"] == "TRADING_REDUCE_ONLY"
    # Reducing is fine; demo-2 is not affected.
    assert market_api.sell_market("0.001")["status"] == "filled"
    assert market_api.buy_market(client="demo-2")["status"] == "filled"


def test_venue_scoped_reduce_only_affects_only_that_venue(market_api):
    market_api.ok(market_api.control("reduce-only", venue="paper-bybit"))
    r = market_api.order(venue="paper-bybit")
    assert r.status_code == 400 and r.json()["error"]["code"] == "TRADING_REDUCE_ONLY"
    assert market_api.order(venue="paper-binance").status_code == 201
    assert market_api.order(venue="paper-bybit", client="demo-2").status_code == 400


def test_disable_trading_rejects_orders_but_cancels_still_work(market_api):
    market_api.buy_market("0.001")
    exit_order = market_api.place(side="sell", price="61000.0")  # reduces: survives the halt
    market_api.ok(market_api.control("disable-trading", client="demo", reason="halt"))
    assert market_api.order_by_id(exit_order["id"])["status"] == "accepted"

    r = market_api.order()
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "TRADING_HALTED"
    r = market_api.order(side="sell", type="market", price=None)  # even a reducing one
    assert r.json()["error"]["code"] == "TRADING_HALTED"

    canceled = market_api.ok(market_api.delete(f"/api/v1/orders/{exit_order['id']}", "trader"))
    assert canceled["status"] == "canceled"
    # Other clients trade on.
    assert market_api.order(client="demo-2").status_code == 201

    market_api.ok(market_api.control("enable-trading", client="demo", reason="over"))
    assert market_api.order().status_code == 201


def test_cancel_all_works_while_halted_globally(market_api):
    market_api.buy_market("0.001")
    exit_order = market_api.place(side="sell", price="61000.0")
    market_api.ok(market_api.control("disable-trading"))
    r = market_api.ok(market_api.delete("/api/v1/orders", "trader"))
    assert r == {"canceled": [exit_order["id"]], "count": 1}


def test_close_all_for_one_account_flattens_it_and_leaves_reduce_only(market_api):
    market_api.buy_market("0.002")  # demo long on binance
    market_api.sell_market("0.001", venue="paper-bybit")  # demo short on bybit
    market_api.buy_market("0.001", client="demo-2")
    resting = market_api.place(price="59000.0")

    body = market_api.ok(market_api.control("close-all", client="demo",
                                            venue="paper-binance", reason="flatten"))
    assert body["state"] == "reduce_only" and body["previous"] == "active"
    assert body["scope"] == "client demo, venue paper-binance"
    assert len(body["results"]) == 1
    result = body["results"][0]
    assert (result["client"], result["venue"], result["symbol"]) == (
        "demo", "paper-binance", "BTC-PERP")
    assert result["qty_before"] == "0.002" and result["filled_qty"] == "0.002"
    assert result["status"] == "closed"
    close_order = market_api.order_by_id(result["order_id"])
    assert close_order["side"] == "sell" and close_order["type"] == "market"
    assert close_order["reduce_only"] is True and close_order["status"] == "filled"
    assert market_api.order_by_id(resting["id"])["status"] == "canceled"

    positions = {(p["client"], p["venue"]): p["qty"]
                 for p in market_api.ok(market_api.get("/api/v1/positions"))}
    assert positions == {("demo", "paper-bybit"): "-0.001", ("demo-2", "paper-binance"): "0.001"}
    trade = market_api.ok(market_api.get("/api/v1/trades"))[0]
    assert trade["exit_reason"] == "close_all"

    rows = _audit(market_api)
    assert rows[-1].action == "close-all" and rows[-1].previous == "active"
    assert rows[-1].reason == "flatten" and rows[-1].actor == "key:operator"
    assert [r["status"] for r in rows[-1].details["results"]] == ["closed"]

    r = market_api.order()  # a new buy would add exposure on the closed account
    assert r.status_code == 400 and r.json()["error"]["code"] == "TRADING_REDUCE_ONLY"


def test_close_all_global_reports_a_result_per_position(market_api):
    market_api.buy_market("0.001")
    market_api.sell_market("0.001", venue="paper-bybit")
    market_api.sell_market("0.002", client="demo-2")
    body = market_api.ok(market_api.control("close-all", who="admin"))
    assert body["scope"] == "global" and body["state"] == "reduce_only"
    got = {(r["client"], r["venue"], r["symbol"]): (r["qty_before"], r["status"])
           for r in body["results"]}
    assert got == {
        ("demo", "paper-binance", "BTC-PERP"): ("0.001", "closed"),
        ("demo", "paper-bybit", "BTC-PERP"): ("-0.001", "closed"),
        ("demo-2", "paper-binance", "BTC-PERP"): ("-0.002", "closed"),
    }
    assert market_api.ok(market_api.get("/api/v1/positions")) == []
    controls = market_api.ok(market_api.get("/api/v1/controls"))
    assert controls[0]["state"] == "reduce_only"
    # A second close-all has nothing left to do.
    again = market_api.ok(market_api.control("close-all", who="admin"))
    assert again["results"] == [] and again["previous"] == "reduce_only"
    assert [r.action for r in _audit(market_api)] == ["close-all", "close-all"]


def test_close_all_for_a_client_across_venues(market_api):
    market_api.buy_market("0.001")
    market_api.buy_market("0.001", venue="paper-bybit")
    market_api.buy_market("0.001", client="demo-2")
    body = market_api.ok(market_api.control("close-all", client="demo"))
    assert {(r["venue"], r["status"]) for r in body["results"]} == {
        ("paper-binance", "closed"), ("paper-bybit", "closed")}
    assert [(p["client"], p["qty"]) for p in market_api.ok(
        market_api.get("/api/v1/positions"))] == [("demo-2", "0.001")]


def test_close_all_for_a_venue(market_api):
    market_api.buy_market("0.001")
    market_api.buy_market("0.001", venue="paper-bybit", client="demo-2")
    body = market_api.ok(market_api.control("close-all", venue="paper-bybit"))
    assert [(r["client"], r["venue"]) for r in body["results"]] == [("demo-2", "paper-bybit")]
    assert body["scope"] == "venue paper-bybit"
    assert [(p["client"], p["venue"]) for p in market_api.ok(
        market_api.get("/api/v1/positions"))] == [("demo", "paper-binance")]


def test_scoped_operator_cannot_set_global_or_other_clients_states(api):
    r = api.control("disable-trading", who="scoped")
    assert r.status_code == 403 and r.json()["error"]["code"] == "CLIENT_FORBIDDEN"
    r = api.control("disable-trading", who="scoped", venue="paper-binance")
    assert r.status_code == 403
    r = api.control("reduce-only", who="scoped", client="demo-2")
    assert r.status_code == 403 and r.json()["error"]["code"] == "CLIENT_FORBIDDEN"
    r = api.control("close-all", who="scoped", client="demo-2")
    assert r.status_code == 403
    assert api.ok(api.get("/api/v1/controls")) == [
        {"client": None, "venue": None, "scope": "global", "state": "active"}]
    assert _audit(api) == []
    # Its own client is fine.
    body = api.ok(api.control("disable-trading", who="scoped", client="demo"))
    assert body["state"] == "halted"
    assert _audit(api)[-1].actor == "key:scoped-demo"


def test_controls_validate_their_body(api):
    r = api.post("/api/v1/controls/reduce-only", "operator", json={})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "reason"
    r = api.post("/api/v1/controls/reduce-only", "operator", json={"reason": ""})
    assert r.status_code == 422
    r = api.control("reduce-only", client="nobody")
    assert r.status_code == 404 and r.json()["error"]["code"] == "UNKNOWN_CLIENT"
    r = api.control("reduce-only", venue="paper-nowhere")
    assert r.status_code == 404 and r.json()["error"]["code"] == "UNKNOWN_VENUE"
    r = api.post("/api/v1/controls/reduce-only", "operator",
                 json={"reason": "x", "surprise": True})
    assert r.status_code == 422
    assert _audit(api) == []
