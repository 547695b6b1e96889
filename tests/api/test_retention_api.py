"""Orders that left the engine's memory are still there for every caller: read by
id, listed page by page, canceled (idempotently), refused for replace, and a retried
client order id answers the first order (never a second one)."""

from __future__ import annotations

from typing import Any

WINDOW = 100  # the smallest window the settings allow


def churn(api: Any, n: int) -> list[dict]:
    """``n`` limit orders placed and canceled; each as its cancel answered."""
    done = []
    for i in range(n):
        order = api.ok(api.order(client_order_id=f"old-{i}"), 201)
        done.append(api.ok(api.delete(f"/api/v1/orders/{order['id']}", "trader")))
    return done


def test_orders_beyond_the_window_are_read_from_the_database(make_api) -> None:
    api = make_api(retain_finished_orders=WINDOW)
    api.push_btc()
    theirs = api.ok(api.order(client="demo-2", client_order_id="theirs"), 201)
    api.ok(api.delete(f"/api/v1/orders/{theirs['id']}", "trader"))
    done = churn(api, WINDOW + 50)
    state = api.system.engine.state
    assert state.evicted_orders == 51 and len(state.orders) == WINDOW
    first = done[0]
    assert first["id"] not in state.orders
    # By id: the same answer as when it was in memory.
    assert api.ok(api.get(f"/api/v1/orders/{first['id']}", "viewer")) == first
    # Listed: every order, newest first, in full pages, whatever left memory.
    seen, cursor = [], None
    while True:
        params = {"limit": 40, **({"cursor": cursor} if cursor else {})}
        page = api.ok(api.get("/api/v1/orders", "viewer", params=params))
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [o["id"] for o in seen] == [o["id"] for o in reversed(done)] + [theirs["id"]]
    assert seen[-2] == first
    # Scoped as ever: a reader of client demo sees demo's old orders, not demo-2's.
    assert api.get(f"/api/v1/orders/{first['id']}", "scoped").status_code == 200
    assert api.get(f"/api/v1/orders/{theirs['id']}", "scoped").status_code == 404
    scoped = api.ok(api.get("/api/v1/orders", "scoped", params={"limit": 500}))
    assert {o["client"] for o in scoped["items"]} == {"demo"}
    assert api.get("/api/v1/orders/999999", "viewer").status_code == 404


def test_old_orders_cancel_idempotently_and_refuse_replace(make_api) -> None:
    api = make_api(retain_finished_orders=WINDOW)
    api.push_btc()
    done = churn(api, WINDOW + 5)
    first = done[0]
    again = api.ok(api.delete(f"/api/v1/orders/{first['id']}", "trader"))
    assert again == first  # nothing to do: it is canceled
    r = api.post(f"/api/v1/orders/{first['id']}/replace", "trader",
                 json={"price": "58000.0"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "ORDER_NOT_OPEN"
    assert r.json()["error"]["details"]["order"]["id"] == first["id"]


def test_a_retried_client_order_id_answers_the_first_order(make_api) -> None:
    api = make_api(retain_finished_orders=WINDOW)
    api.push_btc()
    done = churn(api, WINDOW + 5)
    first = done[0]
    orders_before = api.system.engine.state.last_order_id
    retry = api.order(client_order_id="old-0")
    assert retry.status_code == 200 and retry.json() == first
    other = api.order(client_order_id="old-0", price="58000.0")
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "DUPLICATE_CLIENT_ORDER_ID"
    assert api.system.engine.state.last_order_id == orders_before  # nothing new
    # A fresh id is still a new order.
    assert api.order(client_order_id="new-1").status_code == 201
