"""The inputs that once stopped the command bus on PostgreSQL (issue 8), sent to an app
on the real PostgreSQL: each is a 4xx, and the bus goes on committing. Plus the same
values pushed in-process past the API, as a strategy could."""

from __future__ import annotations

import warnings
from decimal import Decimal
from pathlib import Path

import pytest

from app.auth.principal import Role
from app.domain.commands import SubmitOrder
from app.domain.orders import OrderSpec, OrderType, Side
from app.domain.rejections import CommandRefused
from app.server import create_app
from tests.api.conftest import api_settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

ORDER = {"client": "demo", "venue": "paper-binance", "symbol": "BTC-PERP", "side": "buy",
         "type": "limit", "qty": "0.001", "price": "59000.0"}
ZEROS = "0" * 80


@pytest.fixture
def pg_client(postgres_url: str, tmp_path: Path):
    app = create_app(api_settings(tmp_path / "unused.db", database_url=postgres_url))
    with TestClient(app) as client:
        key = app.state.auth.create_key(Role.OPERATOR, name="pg-inputs")
        client.headers["Authorization"] = f"Bearer {key}"
        yield client


def test_the_inputs_that_stopped_the_bus_are_4xx_and_the_bus_goes_on(pg_client) -> None:
    bad_orders = [{"qty": "0.001" + ZEROS}, {"price": "30000." + ZEROS},
                  {"symbol": "BTC\u0000"}, {"price": "1" * 700}, {"price": "1e999999"},
                  {"qty": "1" + "0" * 27}]
    for bad in bad_orders:
        r = pg_client.post("/api/v1/orders", json={**ORDER, **bad})
        assert r.status_code == 422, (bad, r.text)
    r = pg_client.post("/api/v1/controls/reduce-only", json={"reason": "stop\u0000"})
    assert r.status_code == 422
    system = pg_client.app.state.system
    assert system.bus.writable
    r = pg_client.post("/api/v1/orders", json={**ORDER, "client_order_id": "after"})
    assert r.status_code == 201 and r.json()["client_order_id"] == "after"
    assert system.bus.writable


def test_values_past_the_api_are_refused_by_the_engine_not_the_database(pg_client) -> None:
    system = pg_client.app.state.system
    portal = pg_client.portal
    spec = OrderSpec("demo", "paper-binance", "X" * 300, Side.BUY, OrderType.LIMIT,
                     Decimal("0.001"), price=Decimal("1"))
    with pytest.raises(CommandRefused):
        portal.call(system.bus.execute, SubmitOrder(spec))
    spec = OrderSpec("demo", "paper-binance", "BTC-PERP", Side.BUY, OrderType.LIMIT,
                     Decimal("0.001"), price=Decimal("1" * 40))
    committed = portal.call(system.bus.execute, SubmitOrder(spec))
    (order,) = [system.engine.state.orders[e.order_id] for e in committed.events
                if type(e).__name__ == "OrderSubmitted"]
    assert order.reject_code == "INVALID_ORDER" and len(order.reject_message) < 200
    assert system.bus.writable
