"""/api/v1/risk, /api/v1/rejections and the API's order rate limit, over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from app.domain.market import BookSnapshot
from app.store.tables import AuditRow

RISK = "/api/v1/risk/demo"


def profile(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"price_band_pct": None, "max_open_orders": None,
                            "max_margin_ratio": None,
                            "breakers": {"consecutive_losses": None, "daily_loss_pct": None,
                                         "max_drawdown_pct": None}}
    body.update(fields)
    return body


def test_the_defaults_are_the_seeds(make_api) -> None:
    api = make_api(config=None)  # the built-in configuration
    body = api.ok(api.get(RISK, who="viewer"))
    assert body["source"] == "default"
    p = body["profile"]
    assert (p["price_band_pct"], p["max_margin_ratio"], p["max_open_orders"]) == (
        "10", "0.80", 1000)
    assert p["sizing"]["max_impact_bps"] == "50"
    assert p["breakers"]["consecutive_losses"] == 3
    assert (p["breakers"]["daily_loss_pct"], p["breakers"]["max_drawdown_pct"]) == ("5", "10")
    breakers = {b["breaker"]: b for b in body["breakers"]}
    assert breakers["consecutive_losses"] == {
        "breaker": "consecutive_losses", "limit": "3", "current": "0",
        "action": "reduce_only", "tripped": None}
    assert breakers["session_trades"]["limit"] is None
    # Equity is the client's, all venues together (20,000 on each of two).
    assert body["usage"]["open_orders"] == 0 and body["equity"] == "40000"


def test_only_operators_change_a_profile_and_it_is_audited(market_api) -> None:
    api = market_api
    body = {"profile": profile(max_order_qty="0.001"), "reason": "desk limit"}
    assert api.request("PUT", RISK, who="trader", json=body).status_code == 403
    done = api.ok(api.request("PUT", RISK, who="operator", json=body))
    assert done["source"] == "set" and done["profile"]["max_order_qty"] == "0.001"
    refused = api.order(qty="0.002")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "MAX_ORDER_SIZE"
    assert api.order(qty="0.001").status_code == 201
    [row] = api.rows(AuditRow, AuditRow.action == "risk-profile")
    assert row.reason == "desk limit" and row.details["after"]["max_order_qty"] == "0.001"
    assert row.details["before"]["max_order_qty"] is None


def test_bad_profiles_are_422_and_change_nothing(api) -> None:
    for bad in ({"max_open_orders": 0}, {"price_band_pct": "NaN"}, {"bogus": 1},
                {"max_margin_ratio": "1.5"}, {"sizing": {"mode": "wild"}},
                {"max_order_qty": "1e9"}, {"max_order_qty": "-1"}, {"max_order_qty": True},
                {"symbols": {"BTC PERP": {}}}):
        response = api.request("PUT", RISK, json={"profile": bad, "reason": "x"})
        assert response.status_code == 422, bad
        assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    missing_reason = api.request("PUT", RISK, json={"profile": {}})
    assert missing_reason.status_code == 422
    assert api.ok(api.get(RISK))["source"] == "default"


def test_scoped_callers_see_and_change_only_their_clients(api) -> None:
    assert api.get("/api/v1/risk/demo-2", who="scoped").status_code == 403
    assert api.get("/api/v1/risk/nobody", who="scoped").status_code == 403
    assert api.get("/api/v1/risk/nobody").status_code == 404
    put = api.request("PUT", "/api/v1/risk/demo-2", who="scoped",
                      json={"profile": {}, "reason": "x"})
    assert put.status_code == 403
    assert api.get(RISK, who="scoped").status_code == 200


def test_reset_of_an_untripped_breaker_changes_nothing_and_says_so(api) -> None:
    body = api.ok(api.post(f"{RISK}/reset-breaker", who="operator",
                           json={"breaker": "drawdown", "reason": "check"}))
    assert body["changed"] is False  # idempotent, as the kill switches are
    assert api.post(f"{RISK}/reset-breaker", who="trader",
                    json={"breaker": "drawdown", "reason": "x"}).status_code == 403
    assert api.post(f"{RISK}/reset-breaker", json={"breaker": "nope", "reason": "x"}
                    ).status_code == 422


def test_a_breaker_trips_shows_and_resets_over_http(market_api) -> None:
    api = market_api
    api.ok(api.request("PUT", RISK, json={
        "profile": profile(breakers={"consecutive_losses": 1, "daily_loss_pct": None,
                                     "max_drawdown_pct": None}), "reason": "tight"}))
    api.buy_market("0.005")
    api.push_btc()
    api.sell_market("0.005")  # a loss: the spread and two fees
    body = api.ok(api.get(RISK))
    trip = {b["breaker"]: b for b in body["breakers"]}["consecutive_losses"]["tripped"]
    assert trip["state"] == "reduce_only" and trip["figures"]["consecutive_losses"] == "1"
    entry = api.order(qty="0.001")
    assert entry.json()["error"]["code"] == "TRADING_REDUCE_ONLY"
    [audit] = api.rows(AuditRow, AuditRow.action == "breaker-trip")
    assert audit.actor == "breaker:consecutive_losses"
    assert audit.details["figures"] == {"consecutive_losses": "1", "limit": "1"}
    alerts = api.ok(api.get("/api/v1/alerts?key_prefix=breaker:&state=active"))
    [alert] = alerts["items"]
    assert alert["key"] == "breaker:consecutive_losses:demo"
    assert alert["severity"] == "critical" and alert["client"] == "demo"

    reset = api.ok(api.post(f"{RISK}/reset-breaker", who="operator",
                            json={"breaker": "consecutive_losses", "reason": "reviewed"}))
    assert reset["changed"] is True
    assert all(b["tripped"] is None for b in reset["breakers"])
    again = api.ok(api.post(f"{RISK}/reset-breaker", who="operator",
                            json={"breaker": "consecutive_losses", "reason": "retry"}))
    assert again["changed"] is False  # a retried reset is not an error
    assert api.order(qty="0.001").status_code == 201
    row = api.rows(AuditRow, AuditRow.action == "breaker-reset")[0]
    assert row.reason == "reviewed" and row.previous == "reduce_only"
    resolved = api.ok(api.get("/api/v1/alerts?key_prefix=breaker:&state=resolved"))
    assert [a["key"] for a in resolved["items"]] == ["breaker:consecutive_losses:demo"]


def test_api_order_rate_limit_answers_429_with_retry_after(market_api) -> None:
    api = market_api
    api.ok(api.request("PUT", RISK, json={"profile": profile(orders_per_second=2),
                                          "reason": "throttle"}))
    statuses = [api.order(qty="0.001").status_code for _ in range(3)]
    assert statuses[:2] == [201, 201]
    third = api.order(qty="0.001")
    assert third.status_code == 429
    assert third.json()["error"]["code"] == "RATE_LIMITED"
    assert int(third.headers["Retry-After"]) >= 1
    # A retry of an order already placed is not a new order.
    first = api.order(qty="0.001", client_order_id="same-1")
    assert first.status_code in (201, 429)
    breakdown = api.ok(api.get("/api/v1/rejections?client=demo"))
    assert breakdown["rate_limited_api"]["demo"] >= 1


def test_rejections_break_down_by_code_client_symbol_strategy(market_api) -> None:
    api = market_api
    api.ok(api.request("PUT", RISK, json={"profile": profile(max_order_qty="0.001"),
                                          "reason": "x"}))
    for _ in range(2):
        api.order(qty="0.002")
    api.order(qty="0.002", tags={"strategy": "s-9"})
    api.order(price="59000.05")  # off the tick
    body = api.ok(api.get("/api/v1/rejections"))
    assert body["by_code"] == {"MAX_ORDER_SIZE": 3, "PRICE_NOT_ON_TICK": 1}
    rows = {(r["code"], r["strategy"]): r["count"] for r in body["rows"]}
    assert rows[("MAX_ORDER_SIZE", None)] == 2 and rows[("MAX_ORDER_SIZE", "s-9")] == 1
    only = api.ok(api.get("/api/v1/rejections?strategy=s-9"))
    assert only["total"] == 1
    scoped = api.ok(api.get("/api/v1/rejections?code=PRICE_NOT_ON_TICK", who="scoped"))
    assert scoped["total"] == 1
    assert api.get("/api/v1/rejections?client=demo-2", who="scoped").status_code == 403
    bad = api.get("/api/v1/rejections?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z")
    assert bad.status_code == 422
    wide = api.get("/api/v1/rejections?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z")
    assert wide.status_code == 422


def test_an_order_may_ask_for_its_own_sizing(market_api) -> None:
    api = market_api
    now = datetime.now(UTC)
    api.push(BookSnapshot("paper-binance", "BTC-PERP",
                          ((Decimal("60000.0"), Decimal(1)),),
                          ((Decimal("60000.1"), Decimal("0.001")),
                           (Decimal("60100.0"), Decimal("0.001")),
                           (Decimal("61000.0"), Decimal(1))), now))
    # 0.003 walks to 61000.0: about 61 bps from the mid.
    strict = api.order(type="market", qty="0.003", price=None,
                       sizing={"mode": "strict", "max_impact_bps": "50"})
    assert strict.status_code == 400
    assert strict.json()["error"]["code"] == "IMPACT_TOO_HIGH"
    sized = api.ok(api.order(type="market", qty="0.003", price=None,
                             sizing={"mode": "conservative", "max_impact_bps": "50"}), 201)
    assert (sized["qty"], sized["status"]) == ("0.002", "filled")
    assert api.order(type="market", qty="0.001", price=None,
                     sizing={"mode": "sideways"}).status_code == 422
    assert api.order(type="market", qty="0.001", price=None,
                     sizing={"mode": "strict", "max_impact_bps": "0"}).status_code == 422
