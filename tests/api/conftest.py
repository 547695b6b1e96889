"""Fixtures for the HTTP/WebSocket API tests (starlette's TestClient, lifespan included).

Every app runs on a fresh SQLite file with ``feed="none"`` (nothing moves unless a
test pushes market data), no demo credentials, no rate limit and a fixed session
secret. Tests never import this module; they use the fixtures:

* ``api`` — an ``Api`` around a started app, with API keys for every role
  (``viewer``/``trader``/``operator``/``admin``, unscoped) and ``scoped``
  (operator, so trader + operator rights, for client ``demo`` only).
  ``api.get/post/delete(path, who=...)`` send the request as ``who`` (a key name
  above, a raw key, or None for no credentials) and fail the test if a JSON
  response contains a float anywhere.
* ``market_api`` — ``api`` after ``push_btc()``: a Quote (bid 60000.0 / ask
  60000.1, sizes 1) and a MarkPrice (60000.0) for BTC-PERP on both venues,
  visible in GET /api/v1/markets.
* ``make_api(**settings)`` — start another app (e.g. ``rate_limit_per_s=1``,
  ``ws_queue_size=5``, ``config=path``) on its own database.
* ``shared_api`` — one app per test module, for tables of cheap checks.
* ``no_floats`` — the float-walker: ``no_floats(body)`` fails on any float.
* ``ws_recv(ws, timeout)`` / ``ws_silent(ws, timeout)`` — WebSocket reads that
  cannot hang the suite.
"""

from __future__ import annotations

import itertools
import json
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from sqlmodel import Session, select

from app.auth.principal import Role
from app.config import Settings
from app.domain.commands import CancelAll
from app.domain.market import MarketUpdate, MarkPrice, Quote
from app.server import create_app

with warnings.catch_warnings():  # starlette nags about httpx2; httpx is what we test with
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient, WebSocketTestSession

SESSION_SECRET = "perpdesk-api-tests-fixed-session-secret-0123456789"
# The demo without the default risk profile's controls (tests/no_risk_controls.yaml);
# ``make_api(config=None)`` gives the built-in default, seed risk profile and all.
NO_RISK_CONTROLS = Path(__file__).resolve().parent.parent / "no_risk_controls.yaml"
VENUES = ("paper-binance", "paper-bybit")
ROLES = ("viewer", "trader", "operator", "admin")
BID, ASK, MARK = Decimal("60000.0"), Decimal("60000.1"), Decimal("60000.0")
ALL_MARKS = {"BTC-PERP": Decimal("60000.0"), "ETH-PERP": Decimal("3000.00"),
             "SOL-PERP": Decimal("150.00"), "XRP-PERP": Decimal("0.5000")}
DEFAULT_ORDER = {"client": "demo", "venue": "paper-binance", "symbol": "BTC-PERP",
                 "side": "buy", "type": "limit", "qty": "0.001", "price": "59000.0"}


# ---- the float walker -------------------------------------------------------------------

def find_floats(value: Any, path: str = "$") -> list[str]:
    """Paths of every float inside a decoded JSON value (bools and ints are fine)."""
    if isinstance(value, float):
        return [f"{path} = {value!r}"]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in find_floats(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in find_floats(v, f"{path}[{i}]")]
    return []


def assert_no_floats(body: Any) -> None:
    floats = find_floats(body)
    assert not floats, f"floats in a JSON response (decimals must be strings): {floats}"


def assert_json_no_floats(text: str) -> Any:
    """Decode JSON text and fail on any float in it."""
    body = json.loads(text)
    assert_no_floats(body)
    return body


# ---- the app wrapper -----------------------------------------------------------------------

def api_settings(db_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{db_path}", "config": NO_RISK_CONTROLS, "migrate": True,
        "feed": "none", "demo_credentials": False, "rate_limit_per_s": 0,
        "session_secret": SESSION_SECRET, "stale_mark_seconds": 3600.0,
    }
    values.update(overrides)
    return Settings(**values)


class Api:
    """A started app plus the keys and helpers the tests share."""

    def __init__(self, client: TestClient, keys: dict[str, str]):
        self.client = client
        self.keys = keys

    # ---- plumbing ----

    @property
    def app(self) -> Any:
        return self.client.app

    @property
    def system(self) -> Any:
        return self.client.app.state.system

    @property
    def auth(self) -> Any:
        return self.client.app.state.auth

    def headers(self, who: str | None) -> dict[str, str]:
        if who is None:
            return {}
        key = self.keys.get(who, who)
        return {"Authorization": f"Bearer {key}"}

    def request(self, method: str, path: str, who: str | None = "admin",
                **kwargs: Any) -> httpx.Response:
        headers = {**self.headers(who), **kwargs.pop("headers", {})}
        response = self.client.request(method, path, headers=headers, **kwargs)
        if response.headers.get("content-type", "").startswith("application/json"):
            assert_json_no_floats(response.text)
        return response

    def get(self, path: str, who: str | None = "admin", **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, who, **kwargs)

    def post(self, path: str, who: str | None = "admin", **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, who, **kwargs)

    def delete(self, path: str, who: str | None = "admin", **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, who, **kwargs)

    def ok(self, response: httpx.Response, status: int = 200) -> Any:
        assert response.status_code == status, (response.status_code, response.text)
        return response.json()

    # ---- orders and controls ----

    def order(self, who: str | None = "trader", **fields: Any) -> httpx.Response:
        """POST /api/v1/orders: a demo BTC-PERP limit buy 0.001 @ 59000.0 unless overridden
        (a field set to None is left out)."""
        body = {**DEFAULT_ORDER, **fields}
        body = {k: v for k, v in body.items() if v is not None}
        return self.post("/api/v1/orders", who, json=body)

    def place(self, who: str | None = "trader", **fields: Any) -> dict:
        """Place an order that must be accepted (201); return its JSON."""
        return self.ok(self.order(who, **fields), 201)

    def buy_market(self, qty: str = "0.001", who: str = "trader", **fields: Any) -> dict:
        return self.place(who, side="buy", type="market", qty=qty, price=None, **fields)

    def sell_market(self, qty: str = "0.001", who: str = "trader", **fields: Any) -> dict:
        return self.place(who, side="sell", type="market", qty=qty, price=None, **fields)

    def control(self, action: str, who: str | None = "operator", reason: str = "test",
                **scope: Any) -> httpx.Response:
        return self.post(f"/api/v1/controls/{action}", who, json={"reason": reason, **scope})

    def order_by_id(self, order_id: int) -> dict:
        return self.ok(self.get(f"/api/v1/orders/{order_id}"))

    # ---- market data and the bus ----

    def push(self, *updates: MarketUpdate) -> None:
        """Queue market data on the app's bus (through the app's own event loop)."""
        for update in updates:
            self.client.portal.call(self.system.on_market, update)

    def push_btc(self, bid: Decimal = BID, ask: Decimal = ASK, mark: Decimal = MARK,
                 size: Decimal = Decimal(1), venues: tuple[str, ...] = VENUES) -> None:
        """Quote + MarkPrice for BTC-PERP, then wait until GET /markets shows them."""
        now = datetime.now(UTC)
        for venue in venues:
            self.push(Quote(venue, "BTC-PERP", bid, size, ask, size, now),
                      MarkPrice(venue, "BTC-PERP", mark, now))

        def shown() -> bool:
            rows = self.ok(self.get("/api/v1/markets", "viewer"))
            btc = [m for m in rows if m["symbol"] == "BTC-PERP" and m["venue"] in venues]
            return len(btc) == len(venues) and all(
                m["bid"] is not None and Decimal(m["bid"]) == bid
                and Decimal(m["ask"]) == ask and Decimal(m["mark"]) == mark for m in btc)

        self.wait_for(shown, "BTC-PERP quotes and marks in GET /api/v1/markets")

    def push_all_marks(self, at: datetime | None = None) -> None:
        """A MarkPrice for every instrument on every venue (what /readyz wants)."""
        at = at or datetime.now(UTC)
        for venue in VENUES:
            for symbol, price in ALL_MARKS.items():
                self.push(MarkPrice(venue, symbol, price, at))
        self.settle()

    def settle(self) -> None:
        """Wait until everything queued on the bus so far is processed and committed: the
        bus is FIFO, so a no-op command queued now resolves only after all of it."""
        self.run(CancelAll(client="__barrier__", actor="tests"))

    def wait_for(self, predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.01)

    def run(self, command: Any) -> Any:
        """Execute an engine command on the bus (e.g. a Withdraw the API has no route for)."""
        return self.client.portal.call(self.system.bus.execute, command)

    def rows(self, model: Any, *where: Any) -> list[Any]:
        with Session(self.system.db) as session:
            query = select(model)
            for clause in where:
                query = query.where(clause)
            return list(session.exec(query))

    def last_seq(self) -> int:
        return self.system.bus.last_committed_seq

    def events(self, after: int = 0, who: str = "admin", **params: Any) -> dict:
        return self.ok(self.get("/api/v1/events", who, params={"after": after, **params}))

    # ---- websockets ----

    def ws(self, who: str | None = "admin", **params: Any) -> WebSocketTestSession:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return self.client.websocket_connect("/ws" + (f"?{query}" if query else ""),
                                             headers=self.headers(who))


def ws_recv(ws: WebSocketTestSession, timeout: float = 5.0) -> dict:
    """The next JSON message (float-checked); raises WebSocketDisconnect on a close."""

    async def receive() -> Any:
        with anyio.fail_after(timeout):
            return await ws._send_rx.receive()

    try:
        message = ws.portal.call(receive)
    except TimeoutError:
        pytest.fail(f"no WebSocket message within {timeout} s")
    ws._raise_on_close(message)
    return assert_json_no_floats(message["text"])


def ws_silent(ws: WebSocketTestSession, timeout: float = 0.3) -> dict | None:
    """None if nothing arrives within ``timeout``, else the message that did."""

    async def receive() -> Any:
        with anyio.move_on_after(timeout):
            return await ws._send_rx.receive()
        return None

    message = ws.portal.call(receive)
    if message is None:
        return None
    ws._raise_on_close(message)
    return json.loads(message["text"])


def _start(stack: ExitStack, db_path: Path, **overrides: Any) -> Api:
    client = stack.enter_context(TestClient(create_app(api_settings(db_path, **overrides))))
    auth = client.app.state.auth
    keys = {role: auth.create_key(Role(role), name=role) for role in ROLES}
    keys["scoped"] = auth.create_key(Role.OPERATOR, name="scoped-demo", clients="demo")
    return Api(client, keys)


# ---- fixtures -------------------------------------------------------------------------------

@pytest.fixture
def make_api(tmp_path: Path) -> Iterator[Callable[..., Api]]:
    counter = itertools.count()
    with ExitStack() as stack:
        def make(**overrides: Any) -> Api:
            return _start(stack, tmp_path / f"perpdesk-{next(counter)}.db", **overrides)

        yield make


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api()


@pytest.fixture
def market_api(api: Api) -> Api:
    api.push_btc()
    return api


@pytest.fixture(scope="module")
def shared_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with ExitStack() as stack:
        yield _start(stack, tmp_path_factory.mktemp("shared") / "perpdesk.db")


@pytest.fixture
def no_floats() -> Callable[[Any], None]:
    return assert_no_floats


@pytest.fixture(name="ws_recv")
def ws_recv_fixture() -> Callable[..., dict]:
    return ws_recv


@pytest.fixture(name="ws_silent")
def ws_silent_fixture() -> Callable[..., dict | None]:
    return ws_silent
