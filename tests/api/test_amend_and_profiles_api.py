"""PATCH /api/v1/orders/{id} (amend in place), the new order types, and the demo
venues' profiles (paper-binance: Binance USD-M rules, paper-bybit: Bybit v5) as
scripts see them."""

from __future__ import annotations

BYBIT = {"venue": "paper-bybit"}


def amend(api, order_id: int, who: str = "trader", **body):
    return api.request("PATCH", f"/api/v1/orders/{order_id}", who, json=body)


# ---- amend -------------------------------------------------------------------------------------


def test_amend_keeps_the_ids_and_changes_qty_and_price(market_api):
    placed = market_api.place(qty="0.003", price="59000.0", client_order_id="am-1")
    body = market_api.ok(amend(market_api, placed["id"], qty="0.002"))
    assert (body["id"], body["client_order_id"]) == (placed["id"], "am-1")
    assert (body["qty"], body["remaining_qty"], body["status"]) == ("0.002", "0.002",
                                                                   "accepted")
    body = market_api.ok(amend(market_api, placed["id"], price="59100.0"))
    assert body["price"] == "59100.0" and body["qty"] == "0.002"
    assert market_api.order_by_id(placed["id"])["price"] == "59100.0"
    events = market_api.ok(market_api.get("/api/v1/events?after=0"))
    kinds = [e["type"] for e in events["items"] if e.get("order_id") == placed["id"]
             or e["data"].get("order_id") == placed["id"]]
    assert kinds.count("OrderAmendRequested") == 2 and kinds.count("OrderAmended") == 2
    requested = [e for e in events["items"] if e["type"] == "OrderAmendRequested"]
    assert requested[0]["data"]["actor"].startswith("key:")
    assert requested[0]["data"]["qty"] == "0.002"  # decimals as strings


def test_a_post_only_amend_that_would_cross_answers_the_canceled_order(market_api):
    placed = market_api.place(post_only=True, **BYBIT)
    body = market_api.ok(amend(market_api, placed["id"], price="60000.1"))
    assert body["status"] == "canceled"
    assert body["cancel_reason"] == "post-only amend would cross"


def test_amend_refusals_use_the_one_error_shape(market_api):
    placed = market_api.place()
    r = amend(market_api, placed["id"])
    assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_ORDER"
    r = amend(market_api, placed["id"], qty="-1")
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "qty"
    r = amend(market_api, placed["id"], qty="0.002", side="sell")
    assert r.status_code == 422  # nothing but price and qty
    r = amend(market_api, 999_999, qty="0.002")
    assert r.status_code == 404
    r = amend(market_api, placed["id"], who="viewer", qty="0.002")
    assert r.status_code == 403
    market_api.ok(market_api.delete(f"/api/v1/orders/{placed['id']}"))
    r = amend(market_api, placed["id"], qty="0.002")
    assert r.status_code == 409 and r.json()["error"]["code"] == "ORDER_NOT_OPEN"


def test_binance_amends_only_limit_orders(market_api):
    stop = market_api.place(type="stop", price=None, trigger_price="61000.0")
    r = amend(market_api, stop["id"], qty="0.002")
    assert r.status_code == 400 and r.json()["error"]["code"] == "UNSUPPORTED_BY_VENUE"


# ---- new order types -----------------------------------------------------------------------------


def test_trailing_stop_and_close_position_through_the_api(market_api):
    market_api.buy_market("0.002")
    trail = market_api.place(side="sell", type="trailing_stop", price=None,
                             callback_rate="1.5", activation_price="60500.0")
    assert (trail["type"], trail["callback_rate"], trail["activation_price"]) == (
        "trailing_stop", "1.5", "60500.0")
    closer = market_api.place(side="sell", type="stop", price=None, qty=None,
                              trigger_price="58000.0", close_position=True)
    assert closer["close_position"] is True and closer["qty"] == "0"
    assert market_api.order_by_id(closer["id"])["close_position"] is True


def test_close_position_and_qty_go_together_only_one_way(market_api):
    r = market_api.order(side="sell", type="stop", price=None, trigger_price="58000.0",
                         close_position=True)  # with the default qty
    assert r.status_code == 422 and r.json()["error"]["code"] == "VALIDATION_ERROR"
    r = market_api.order(qty=None)
    assert r.status_code == 422
    assert "qty is required" in r.json()["error"]["message"]


# ---- profiles ----------------------------------------------------------------------------------


def test_binance_post_only_crossing_is_refused_and_the_client_order_id_is_reusable(market_api):
    r = market_api.order(price="60000.1", post_only=True, client_order_id="gtx-1")
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "POST_ONLY_WOULD_CROSS" and "order" not in error["details"]
    placed = market_api.place(price="59000.0", post_only=True, client_order_id="gtx-1")
    assert placed["client_order_id"] == "gtx-1"


def test_bybit_post_only_crossing_is_accepted_then_canceled(market_api):
    r = market_api.order(price="60000.1", post_only=True, **BYBIT)
    body = market_api.ok(r, 201)
    assert body["status"] == "canceled"
    assert body["cancel_reason"].startswith("POST_ONLY_WOULD_CROSS")


def test_bybit_client_order_ids_and_replace_successors(market_api):
    r = market_api.order(client_order_id="a.b", **BYBIT)
    assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_CLIENT_ORDER_ID"
    placed = market_api.place(client_order_id="by-1", **BYBIT)
    successor = market_api.ok(market_api.post(f"/api/v1/orders/{placed['id']}/replace",
                                              "trader", json={"price": "59010.0"}))
    assert successor["client_order_id"] == "by-1-r1"


def test_binance_gtd_needs_ten_minutes_and_a_price_near_the_mark(market_api):
    from datetime import UTC, datetime, timedelta

    soon = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    r = market_api.order(time_in_force="gtd", expire_at=soon)
    assert r.status_code == 400 and r.json()["error"]["code"] == "GTD_TOO_SOON"
    r = market_api.order(price="50000.0")
    assert r.status_code == 400 and r.json()["error"]["code"] == "PRICE_OUT_OF_BAND"
    r = market_api.order(price="50000.0", **BYBIT)  # no band on bybit-v5 here
    assert r.status_code == 201
