"""Races answer what happened (issue 8): a replace that arrives after another replace,
or a cancel that arrives after a replace, is 409 ORDER_NOT_OPEN naming the successor;
an identical retry of the replace still returns the successor."""

from __future__ import annotations


def test_replace_after_replace_and_cancel_after_replace_answer_409(market_api) -> None:
    api = market_api
    original = api.place(client_order_id="racer")
    successor = api.ok(api.post(f"/api/v1/orders/{original['id']}/replace", "trader",
                                json={"price": "59100.0"}))
    assert successor["price"] == "59100.0"

    again = api.post(f"/api/v1/orders/{original['id']}/replace", "trader",
                     json={"price": "59200.0"})
    assert again.status_code == 409, again.text
    error = again.json()["error"]
    assert error["code"] == "ORDER_NOT_OPEN"
    assert f"replaced by order {successor['id']}" in error["message"]

    cancel = api.delete(f"/api/v1/orders/{original['id']}", "trader")
    assert cancel.status_code == 409 and cancel.json()["error"]["code"] == "ORDER_NOT_OPEN"
    assert api.order_by_id(successor["id"])["status"] == "accepted"

    retry = api.ok(api.post(f"/api/v1/orders/{original['id']}/replace", "trader",
                            json={"price": "59100.0"}))
    assert retry["id"] == successor["id"] and retry["price"] == "59100.0"
    assert api.ok(api.delete(f"/api/v1/orders/{successor['id']}", "trader"))["status"] \
        == "canceled"
