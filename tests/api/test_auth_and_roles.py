"""Authentication, roles, client scope, browser sessions with CSRF, and rate limiting."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app.auth.principal import Role
from app.auth.store import AuthStore

NEEDS = {"viewer": 0, "trader": 1, "operator": 2, "admin": 3}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # "{id}": an open demo order created for the test
    needs: str
    ok_status: int
    body: dict[str, Any] | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


ENDPOINTS = [
    # writes
    Endpoint("POST", "/api/v1/orders", "trader", 201,
             {"client": "demo-2", "venue": "paper-binance", "symbol": "BTC-PERP",
              "side": "buy", "type": "limit", "qty": "0.001", "price": "59000.0"}),
    Endpoint("DELETE", "/api/v1/orders", "trader", 200),
    Endpoint("DELETE", "/api/v1/orders/{id}", "trader", 200),
    Endpoint("POST", "/api/v1/orders/{id}/replace", "trader", 200, {"price": "58900.0"}),
    Endpoint("POST", "/api/v1/controls/reduce-only", "operator", 200,
             {"client": "demo-2", "reason": "matrix"}),
    Endpoint("POST", "/api/v1/controls/disable-trading", "operator", 200,
             {"client": "demo-2", "reason": "matrix"}),
    Endpoint("POST", "/api/v1/controls/enable-trading", "operator", 200,
             {"client": "demo-2", "reason": "matrix"}),
    Endpoint("POST", "/api/v1/controls/close-all", "operator", 200,
             {"client": "demo-2", "reason": "matrix"}),
    # Past the role check, parameters the strategy refuses: 422, and no run is started
    # (a real run is tests/api/test_backtests_api.py's).
    Endpoint("POST", "/api/v1/backtests", "operator", 422,
             {"strategy": "ma_crossover", "dataset": "btc-perp-2022-01_1m.csv",
              "params": {"fast_period": "not-a-number"}}),
    # reads
    Endpoint("GET", "/api/v1/orders", "viewer", 200),
    Endpoint("GET", "/api/v1/orders/{id}", "viewer", 200),
    Endpoint("GET", "/api/v1/positions", "viewer", 200),
    Endpoint("GET", "/api/v1/balances", "viewer", 200),
    Endpoint("GET", "/api/v1/portfolio", "viewer", 200),
    Endpoint("GET", "/api/v1/trades", "viewer", 200),
    Endpoint("GET", "/api/v1/fills", "viewer", 200),
    Endpoint("GET", "/api/v1/events", "viewer", 200),
    Endpoint("GET", "/api/v1/markets", "viewer", 200),
    Endpoint("GET", "/api/v1/controls", "viewer", 200),
    Endpoint("GET", "/api/v1/auth/me", "viewer", 200),
    Endpoint("GET", "/api/v1/backtests", "viewer", 200),
    Endpoint("GET", "/api/v1/backtests/datasets", "viewer", 200),
]


@pytest.fixture
def matrix(shared_api):
    """The module's app, put back to a clean state after each case."""
    yield shared_api
    shared_api.ok(shared_api.delete("/api/v1/orders"))
    for scope in ({"client": "demo-2"}, {}):
        shared_api.ok(shared_api.control("enable-trading", who="admin", reason="reset",
                                         **scope))


def _call(api, endpoint: Endpoint, who: str | None):
    path = endpoint.path
    if "{id}" in path:
        order = api.place("admin", client="demo", price="59000.0")
        path = path.replace("{id}", str(order["id"]))
    return api.request(endpoint.method, path, who, json=endpoint.body)


@pytest.mark.parametrize("role", list(NEEDS))
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_role_matrix(matrix, endpoint, role):
    r = _call(matrix, endpoint, role)
    if NEEDS[role] >= NEEDS[endpoint.needs]:
        assert r.status_code == endpoint.ok_status, r.text
    else:
        assert r.status_code == 403, r.text
        err = r.json()["error"]
        assert err["code"] == "FORBIDDEN"
        assert endpoint.needs in err["message"]


def test_forbidden_writes_change_nothing(matrix):
    before = matrix.last_seq()
    assert matrix.order("viewer").status_code == 403
    assert matrix.control("disable-trading", who="trader").status_code == 403
    assert matrix.control("close-all", who="viewer").status_code == 403
    assert matrix.last_seq() == before
    assert matrix.ok(matrix.get("/api/v1/controls"))[0]["state"] == "active"


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
@pytest.mark.parametrize("credentials", ["none", "garbage", "wrong-secret"])
def test_no_or_bad_key_is_401(shared_api, endpoint, credentials):
    path = endpoint.path.replace("{id}", "1")
    headers = {}
    if credentials == "garbage":
        headers = {"Authorization": "Bearer not-a-key"}
    elif credentials == "wrong-secret":  # a real prefix with the wrong secret
        real = shared_api.keys["admin"]
        headers = {"Authorization": f"Bearer {real[:-4]}AAAA"}
    r = shared_api.request(endpoint.method, path, None, json=endpoint.body, headers=headers)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "UNAUTHENTICATED"
    assert r.headers["www-authenticate"] == "Bearer"


def test_revoked_key_is_401(api):
    key = api.auth.create_key(Role.TRADER, name="short-lived")
    assert api.get("/api/v1/orders", key).status_code == 200
    assert api.auth.revoke_key("short-lived") == 1
    r = api.get("/api/v1/orders", key)
    assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHENTICATED"
    assert api.order(key).status_code == 401


def test_key_revoked_elsewhere_stops_working_after_the_cache_window(api):
    """``perpdesk keys revoke`` runs in another process: the server's 5 s cache may keep
    the key alive until it expires; after the window (simulated by clearing the
    cache) the key is refused."""
    key = api.auth.create_key(Role.TRADER, name="cli-revoked")
    assert api.get("/api/v1/orders", key).status_code == 200
    other_process = AuthStore(api.system.db)
    assert other_process.revoke_key("cli-revoked") == 1
    assert other_process.authenticate_key(key) is None
    api.auth._key_cache.clear()  # the cache window has passed
    assert api.get("/api/v1/orders", key).status_code == 401
    assert api.order(key).status_code == 401
    # Other keys are unaffected.
    assert api.get("/api/v1/orders", "trader").status_code == 200


# ---- client scope --------------------------------------------------------------------------

@pytest.fixture
def two_clients(market_api):
    """demo and demo-2 each with a fill (a position and, for demo-2, a closed trade)
    and a resting order."""
    api = market_api
    api.buy_market()
    api.buy_market(client="demo-2")
    api.sell_market(client="demo-2")
    api.buy_market(client="demo-2", venue="paper-bybit")
    mine = api.place(client="demo", price="59000.0")
    theirs = api.place(client="demo-2", price="59000.0")
    return api, mine, theirs


def test_scoped_key_never_sees_another_client(two_clients):
    api, mine, theirs = two_clients

    def clients_in(rows):
        return {r["client"] for r in rows}

    assert clients_in(api.ok(api.get("/api/v1/positions", "scoped"))) == {"demo"}
    assert clients_in(api.ok(api.get("/api/v1/balances", "scoped"))) == {"demo"}
    assert clients_in(api.ok(api.get("/api/v1/orders", "scoped"))["items"]) == {"demo"}
    assert clients_in(api.ok(api.get("/api/v1/fills", "scoped"))["items"]) == {"demo"}
    assert api.ok(api.get("/api/v1/trades", "scoped")) == []
    assert api.ok(api.get("/api/v1/trades", "admin")) != []
    portfolio = api.ok(api.get("/api/v1/portfolio", "scoped"))
    assert [c["name"] for c in portfolio["clients"]] == ["demo"]
    assert portfolio["total"]["equity"] == portfolio["clients"][0]["equity"]
    events = api.ok(api.get("/api/v1/events", "scoped"))["items"]
    assert events and all(e["client"] in ("demo", None) for e in events)

    r = api.get(f"/api/v1/orders/{theirs['id']}", "scoped")
    assert r.status_code == 404 and r.json()["error"]["code"] == "UNKNOWN_ORDER"
    assert api.get(f"/api/v1/orders/{mine['id']}", "scoped").status_code == 200
    for path in ("/api/v1/positions", "/api/v1/balances", "/api/v1/orders", "/api/v1/fills",
                 "/api/v1/trades", "/api/v1/portfolio"):
        r = api.get(path, "scoped", params={"client": "demo-2"})
        assert r.status_code == 403, path
        assert r.json()["error"]["code"] == "CLIENT_FORBIDDEN"


def test_scoped_key_cannot_change_another_client(two_clients):
    api, mine, theirs = two_clients
    r = api.order("scoped", client="demo-2")
    assert r.status_code == 403 and r.json()["error"]["code"] == "CLIENT_FORBIDDEN"
    r = api.delete(f"/api/v1/orders/{theirs['id']}", "scoped")
    assert r.status_code == 404
    r = api.post(f"/api/v1/orders/{theirs['id']}/replace", "scoped", json={"price": "58000.0"})
    assert r.status_code == 404
    r = api.delete("/api/v1/orders", "scoped", params={"client": "demo-2"})
    assert r.status_code == 403
    r = api.control("disable-trading", who="scoped", client="demo-2")
    assert r.status_code == 403
    assert api.order_by_id(theirs["id"])["status"] == "accepted"
    assert api.order_by_id(theirs["id"])["price"] == "59000.0"

    # A cancel-all without filters only touches its own client.
    r = api.ok(api.delete("/api/v1/orders", "scoped"))
    assert r == {"canceled": [mine["id"]], "count": 1}
    assert api.order_by_id(theirs["id"])["status"] == "accepted"
    # And it may trade for its own client.
    assert api.order("scoped", client="demo").status_code == 201


# ---- browser sessions --------------------------------------------------------------------------

def test_login_sets_a_session_cookie_and_writes_need_the_csrf_token(market_api):
    api = market_api
    api.auth.add_user("alice", Role.TRADER, "correct horse battery")
    r = api.post("/api/v1/auth/login", None,
                 json={"name": "alice", "password": "correct horse battery"})
    body = api.ok(r)
    assert body["name"] == "alice" and body["role"] == "trader" and body["clients"] is None
    csrf = body["csrf_token"]
    assert csrf
    set_cookie = r.headers["set-cookie"]
    assert "perpdesk_session=" in set_cookie
    assert "httponly" in set_cookie.lower() and "samesite=strict" in set_cookie.lower()
    assert api.client.cookies.get("perpdesk_session")

    me = api.ok(api.get("/api/v1/auth/me", None))
    assert me == {"name": "alice", "role": "trader", "via": "session", "clients": None}
    assert api.get("/api/v1/orders", None).status_code == 200

    r = api.order(None)  # cookie, no CSRF header
    assert r.status_code == 403 and r.json()["error"]["code"] == "CSRF_FAILED"
    r = api.post("/api/v1/orders", None, json={"client": "demo", "venue": "paper-binance",
                                              "symbol": "BTC-PERP", "side": "buy",
                                              "type": "limit", "qty": "0.001",
                                              "price": "59000.0"},
                 headers={"X-CSRF-Token": "wrong"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "CSRF_FAILED"
    assert api.ok(api.get("/api/v1/orders"))["items"] == []

    r = api.post("/api/v1/orders", None, json={"client": "demo", "venue": "paper-binance",
                                              "symbol": "BTC-PERP", "side": "buy",
                                              "type": "limit", "qty": "0.001",
                                              "price": "59000.0"},
                 headers={"X-CSRF-Token": csrf})
    order = api.ok(r, 201)
    r = api.delete(f"/api/v1/orders/{order['id']}", None)
    assert r.status_code == 403  # DELETE is a write too
    assert api.ok(api.delete(f"/api/v1/orders/{order['id']}", None,
                             headers={"X-CSRF-Token": csrf}))["status"] == "canceled"
    # A trader session may not use the kill switches.
    r = api.post("/api/v1/controls/disable-trading", None, json={"reason": "x"},
                 headers={"X-CSRF-Token": csrf})
    assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"

    # The audit trail names the session user.
    events = api.events()["items"]
    submitted = next(e for e in events if e["type"] == "OrderSubmitted")
    assert submitted["data"]["actor"] == "session:alice"

    # Logout is a write (CSRF) and ends the session.
    assert api.post("/api/v1/auth/logout", None).status_code == 403
    out = api.ok(api.post("/api/v1/auth/logout", None, headers={"X-CSRF-Token": csrf}))
    assert out == {"logged_out": "alice"}
    assert api.get("/api/v1/auth/me", None).status_code == 401
    assert api.get("/api/v1/orders", None).status_code == 401


def test_logout_ends_the_session_for_a_copied_cookie_too(api):
    api.auth.add_user("erin", Role.TRADER, "correct horse battery")
    body = api.ok(api.post("/api/v1/auth/login", None,
                           json={"name": "erin", "password": "correct horse battery"}))
    cookie = api.client.cookies.get("perpdesk_session")
    # Someone copied the cookie (a shared machine, a stolen backup...).
    with httpx.Client(transport=api.client._transport, base_url=str(api.client.base_url),
                      cookies={"perpdesk_session": cookie}) as thief:
        assert thief.get("/api/v1/auth/me").status_code == 200
        api.ok(api.post("/api/v1/auth/logout", None,
                        headers={"X-CSRF-Token": body["csrf_token"]}))
        assert thief.get("/api/v1/auth/me").status_code == 401
        assert thief.get("/api/v1/orders").status_code == 401
    # Logging in again opens a new session; the old cookie stays dead.
    api.ok(api.post("/api/v1/auth/login", None,
                    json={"name": "erin", "password": "correct horse battery"}))
    assert api.get("/api/v1/auth/me", None).status_code == 200
    assert api.client.cookies.get("perpdesk_session") != cookie


def test_removing_a_user_ends_their_sessions(api):
    api.auth.add_user("frank", Role.TRADER, "correct horse battery")
    api.ok(api.post("/api/v1/auth/login", None,
                    json={"name": "frank", "password": "correct horse battery"}))
    assert api.get("/api/v1/auth/me", None).status_code == 200
    assert api.auth.remove_user("frank", actor="test") is True
    assert api.get("/api/v1/auth/me", None).status_code == 401
    r = api.post("/api/v1/auth/login", None,
                 json={"name": "frank", "password": "correct horse battery"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "BAD_CREDENTIALS"
    assert api.auth.remove_user("frank") is False


def test_bad_login_is_401_and_sets_no_session(api):
    api.auth.add_user("bob", Role.VIEWER, "a-long-password")
    r = api.post("/api/v1/auth/login", None, json={"name": "bob", "password": "nope-nope"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "BAD_CREDENTIALS"
    r = api.post("/api/v1/auth/login", None, json={"name": "nobody", "password": "whatever1"})
    assert r.status_code == 401
    assert api.get("/api/v1/auth/me", None).status_code == 401


def test_a_client_scoped_login_is_scoped(market_api):
    api = market_api
    api.auth.add_user("carol", Role.OPERATOR, "operator-pass", clients="demo")
    body = api.ok(api.post("/api/v1/auth/login", None,
                           json={"name": "carol", "password": "operator-pass"}))
    assert body["clients"] == ["demo"]
    csrf = {"X-CSRF-Token": body["csrf_token"]}
    r = api.post("/api/v1/controls/reduce-only", None, headers=csrf,
                 json={"client": "demo-2", "reason": "x"})
    assert r.status_code == 403
    assert api.ok(api.post("/api/v1/controls/reduce-only", None, headers=csrf,
                           json={"client": "demo", "reason": "x"}))["state"] == "reduce_only"


def test_bearer_writes_need_no_csrf_even_with_a_session_cookie(api):
    api.auth.add_user("dave", Role.VIEWER, "viewer-pass")
    api.ok(api.post("/api/v1/auth/login", None, json={"name": "dave", "password": "viewer-pass"}))
    # The key, not the (viewer) cookie, decides, and a key needs no CSRF token.
    order = api.ok(api.order("trader", price="59000.0"), 201)
    assert api.events()["items"][-1]["data"]["order_id"] == order["id"]
    submitted = next(e for e in api.events()["items"] if e["type"] == "OrderSubmitted")
    assert submitted["data"]["actor"] == "key:trader"


# ---- rate limiting -----------------------------------------------------------------------------

def test_rate_limit_429_with_retry_after(make_api):
    api = make_api(rate_limit_per_s=0.5, rate_limit_burst=3)
    codes = [api.get("/api/v1/markets", "viewer").status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    r = api.get("/api/v1/markets", "viewer")
    assert r.status_code == 429
    err = r.json()["error"]
    assert err["code"] == "RATE_LIMITED"
    retry_after = int(r.headers["retry-after"])
    assert 1 <= retry_after <= 2
    assert 0 < float(err["details"]["retry_after_s"]) <= 2.0
    # Writes count too, and nothing is executed when limited.
    before = api.last_seq()
    assert api.order("viewer").status_code == 429
    assert api.last_seq() == before
    # Per principal: another key still has its burst; health probes are not limited.
    assert api.get("/api/v1/markets", "trader").status_code == 200
    assert all(api.get("/healthz", None).status_code == 200 for _ in range(5))


def test_rate_limit_refills_over_time(make_api):
    api = make_api(rate_limit_per_s=2, rate_limit_burst=2)
    assert [api.get("/api/v1/markets", "viewer").status_code for _ in range(3)][-1] == 429
    time.sleep(0.6)  # 2/s: one token back after 0.5 s
    assert api.get("/api/v1/markets", "viewer").status_code == 200


# ---- request size ------------------------------------------------------------------------------

def _padded_order(size: int) -> bytes:
    body = json.dumps({"client": "demo", "venue": "paper-binance", "symbol": "BTC-PERP",
                       "side": "buy", "type": "limit", "qty": "0.001", "price": "59000.0",
                       "tags": {"strategy": "x"}}).encode()
    return body[:-2] + b" " * max(0, size - len(body)) + body[-2:]


def test_a_body_over_the_cap_is_413_on_the_order_lane_and_elsewhere(make_api):
    api = make_api(max_body_bytes=2000)
    headers = {"content-type": "application/json"}
    r = api.post("/api/v1/orders", "trader", content=_padded_order(2001), headers=headers)
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert error["code"] == "PAYLOAD_TOO_LARGE" and "2000 bytes" in error["message"]
    r = api.post("/api/v1/controls/disable-trading", "operator", headers=headers,
                 content=json.dumps({"reason": "x" * 3000}).encode())
    assert r.status_code == 413 and r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert [c["state"] for c in api.ok(api.get("/api/v1/controls"))] == ["active"]
    # Just under the cap is an ordinary request.
    r = api.post("/api/v1/orders", "trader", content=_padded_order(2000), headers=headers)
    assert r.status_code == 201, r.text


def test_a_chunked_body_is_cut_off_at_the_cap(make_api):
    api = make_api(max_body_bytes=2000)
    body = _padded_order(5000)

    def chunks():  # no Content-Length: the server only finds out while reading
        for i in range(0, len(body), 500):
            yield body[i:i + 500]

    r = api.post("/api/v1/orders", "trader", content=chunks(),
                 headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert api.ok(api.get("/api/v1/orders"))["items"] == []
