"""Schemathesis over perpdesk's own OpenAPI document, in-process.

Every operation of ``/openapi.json`` is called with generated requests (the
document's examples, schemathesis' boundary "coverage" cases and hypothesis
fuzzing, valid and invalid), as an admin (API key), a viewer and without
credentials, and as an admin logged in with a session cookie. Each response must
hold to the contract:

* no 5xx (``not_a_server_error``): a 500 is a missing input bound or a bug;
* its status is one the operation declares (``status_code_conformance``);
* its content type, headers and body match what is declared for that status
  (``content_type_conformance``, ``response_headers_conformance``,
  ``response_schema_conformance``);
* invalid input is refused with a 4xx (``negative_data_rejection``).

The app is the one the API tests use (``make_api``): market data is pushed so
orders fill, and the kill-switch operations flip trading states as they are
fuzzed; runs are derandomized and operations run in the document's order, so
each run sends the same requests in the same order.

Every operation is fuzzed, but not by every caller (``CALLERS``): the logged-in
admin does not log out (its session would end), and login, which answers the same
whoever calls, is fuzzed once. Login only ever meets wrong credentials (401, then
the login guard's 429). The kill switches are fuzzed like the rest: trading states
flip, close-all flattens, and later orders meet reduce-only or halted (400s).

Schemathesis drives the app through its in-process ASGI transport. The app
itself runs on the event loop of the fixture's ``TestClient`` (its lifespan
started the trading system there, and the bus only takes commands on that
loop), so ``OnLoopOf`` carries each request over to that loop and the
response back.

tests/integration/test_openapi_fuzz_postgres.py runs the same tests on
PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import hypothesis
import hypothesis.strategies as st
import pytest
import schemathesis
from hypothesis import HealthCheck

from app.auth.principal import Role

Message = dict[str, Any]
Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]


class OnLoopOf:
    """An ASGI app that serves each HTTP request with ``client.app`` on the event loop
    of the started ``TestClient`` ``client``.

    The request body is read on the caller's loop, the app runs on the client's
    (its portal), and the messages it sent are replayed to the caller: a plain
    request/response, which is all the REST API speaks. The lifespan is the
    client's, so it is acknowledged here and nothing is started twice."""

    def __init__(self, client: Any) -> None:
        self.client: Any = client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        assert scope["type"] == "http", scope["type"]  # the OpenAPI has no WebSockets
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        sent = await anyio.to_thread.run_sync(self._serve, scope, bytes(body))
        for message in sent:
            await send(message)

    def _serve(self, scope: Scope, body: bytes) -> list[Message]:
        if self.client is None:
            raise RuntimeError("the app under test was stopped")
        return self.client.portal.call(self._run, scope, body)

    async def _run(self, scope: Scope, body: bytes) -> list[Message]:
        sent: list[Message] = []
        done = anyio.Event()
        delivered = False

        async def receive() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()  # a real server reports the disconnect only after the response
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                done.set()

        await self.client.app(scope, receive, send)
        return sent


# ---- what is fuzzed, and how -------------------------------------------------------------

# Per operation and phase, for the admins (``CALLERS``): ~25 operations, four callers,
# both databases' runs together take a minute and a half on a 2-core machine.
MAX_EXAMPLES = 25
SEED = 8  # any fixed seed: with derandomize, every run sends the same requests

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.negative_data_rejection,
]

# Valid values the generator could not guess: with only what the schema says, every
# valid order names an unknown client, venue or symbol and never reaches the engine.
# Most valid cases get these instead (``flatmap_case``).
KNOWN = {
    "client": st.sampled_from(("demo", "demo-2")),
    "venue": st.sampled_from(("paper-binance", "paper-bybit")),
    "symbol": st.sampled_from(("BTC-PERP", "BTC-PERP", "ETH-PERP")),  # BTC has a book
    "qty": st.sampled_from(("0.001", "0.002", "0.005", "0.01")),
    "price": st.sampled_from(("59000.0", "59999.9", "60000.1", "61000")),
    "trigger_price": st.sampled_from(("59000", "60000.0", "61000.5")),
    "order_id": st.integers(min_value=1, max_value=30),  # the orders placed so far
    "client_order_id": st.sampled_from(("fuzz-1", "fuzz-2")),  # retries and reuses
}


def _steered(container: Any, values: dict[str, Any]) -> Any:
    if not isinstance(container, dict):
        return container
    steered = {name: values[name] if name in values and value is not None else value
               for name, value in container.items()}
    # An order of a type that needs a price or a trigger gets one (both are optional
    # in the schema, so the case stays valid): otherwise most orders are refused.
    if steered.get("type") in ("limit", "stop_limit"):
        steered["price"] = values["price"]
    if steered.get("type") in ("stop", "stop_limit"):
        steered["trigger_price"] = values["trigger_price"]
    return steered


def flatmap_case(context: Any, case: Any) -> st.SearchStrategy:
    """A valid case as generated, or with known clients, venues, symbols, sizes near the
    market and ids of existing orders where it has such fields (still valid)."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return st.just(case)

    def steer(values: dict[str, Any]) -> Any:
        case.body = _steered(case.body, values)
        case.query = _steered(case.query, values)
        case.path_parameters = _steered(case.path_parameters, values)
        return case

    # Steered first: hypothesis favours the first alternative.
    return st.one_of(st.fixed_dictionaries(KNOWN).map(steer), st.just(case))


def fuzz_config(max_examples: int, coverage: bool, *, excluded: tuple[str, ...] = ()
                ) -> schemathesis.Config:
    return schemathesis.Config.from_dict({
        "seed": SEED,
        "cache": {"enabled": False},  # nothing written next to the tests
        "generation": {"mode": "all", "max-examples": max_examples, "deterministic": True,
                       "database": "none"},
        "phases": {"coverage": {"enabled": coverage}},
        "operations": [{"include-path": path, "enabled": False} for path in excluded],
    })


@dataclass(frozen=True)
class Caller:
    """Who calls, and how hard they are fuzzed."""

    max_examples: int
    coverage: bool  # schemathesis' boundary and type-confusion cases, besides fuzzing
    excluded: tuple[str, ...] = ()


# An admin reaches every code path, with an API key (so orders take the order lane)
# and logged in (the FastAPI routes, the session and its CSRF check). A viewer and an
# anonymous caller mostly meet 403s and 401s: fuzzing alone, fewer examples.
# Login answers the same whoever calls (and each failed attempt costs a password
# check, the slowest thing here), so only the admin's run fuzzes it.
LOGIN, LOGOUT = "/api/v1/auth/login", "/api/v1/auth/logout"
CALLERS = {
    "admin": Caller(MAX_EXAMPLES, coverage=True),
    # Logging out would end the session the rest of this run is authenticated with.
    "session": Caller(MAX_EXAMPLES, coverage=True, excluded=(LOGIN, LOGOUT)),
    "viewer": Caller(10, coverage=False, excluded=(LOGIN,)),
    "anonymous": Caller(10, coverage=False, excluded=(LOGIN,)),
}
ADMIN_USER, ADMIN_PASSWORD = "fuzz-admin", "fuzz-admin-password"


@pytest.fixture(params=list(CALLERS))
def caller(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def app_settings() -> dict[str, Any]:
    """Settings of the app under test beyond the API tests' (none here: SQLite;
    the PostgreSQL variant names its database)."""
    return {}


@pytest.fixture
def fuzz_app(make_api: Callable[..., Any], app_settings: dict[str, Any]) -> Any:
    """The app under test: quotes on BTC-PERP (so orders fill) and a mark everywhere."""
    api = make_api(**app_settings)
    api.push_btc()
    api.push_all_marks()
    return api


@pytest.fixture
def credentials(fuzz_app: Any, caller: str) -> dict[str, Any]:
    """What ``caller`` sends with every request: ``headers`` and ``cookies``."""
    if caller == "anonymous":
        return {"headers": {}}
    if caller != "session":
        return {"headers": fuzz_app.headers(caller)}
    fuzz_app.auth.add_user(ADMIN_USER, Role.ADMIN, ADMIN_PASSWORD)
    login = fuzz_app.ok(fuzz_app.post("/api/v1/auth/login", None,
                                      json={"name": ADMIN_USER, "password": ADMIN_PASSWORD}))
    cookie = fuzz_app.client.cookies["perpdesk_session"]
    fuzz_app.client.cookies.clear()  # the fixture's own requests stay key-authenticated
    return {"headers": {"X-CSRF-Token": login["csrf_token"]},
            "cookies": {"perpdesk_session": cookie}}


@pytest.fixture
def fuzz_schema(fuzz_app: Any, caller: str) -> Iterator[Any]:
    target = OnLoopOf(fuzz_app.client)
    who = CALLERS[caller]
    loaded = schemathesis.openapi.from_asgi(
        "/openapi.json", target,
        config=fuzz_config(who.max_examples, who.coverage, excluded=who.excluded))
    loaded.hook(flatmap_case)
    yield loaded
    target.client = None  # schemathesis keeps its apps for the process; let this one go


schema = schemathesis.pytest.from_fixture("fuzz_schema")


@schema.parametrize()
@hypothesis.settings(deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                            HealthCheck.data_too_large])
def test_every_operation_holds_to_its_contract(case: Any, credentials: dict[str, Any],
                                               fuzz_app: Any) -> None:
    keep_market_fresh(fuzz_app)
    case.call_and_validate(**credentials, checks=CHECKS)


# A caller's run can outlast the paper venue's max book age (30 s): past it, /readyz
# rightly answers 503 and market orders BOOK_NOT_READY. Market data is pushed again
# well before, as a live feed would.
MARKET_REFRESH_S = 10.0
_pushed_at: dict[int, float] = {}


def keep_market_fresh(api: Any) -> None:
    now = time.monotonic()
    if now - _pushed_at.setdefault(id(api), now) > MARKET_REFRESH_S:
        api.push_btc()
        api.push_all_marks()
        _pushed_at[id(api)] = now
