"""The command bus lets kill switches overtake orders queued in the same batch, and
only restrictions: an enable never lets through an order sent while trading was halted."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from app.config import Settings, default_trading_config
from app.domain.commands import SetTradingState, SubmitOrder
from app.domain.market import MarkPrice, Quote
from app.domain.orders import OrderSpec, OrderStatus, OrderType, Side
from app.domain.rejections import RejectCode
from app.domain.trading_state import Scope, TradingState
from app.runtime.system import TradingSystem

D = Decimal
VENUE = "paper-binance"


def _order(n: int) -> SubmitOrder:
    return SubmitOrder(OrderSpec("demo", VENUE, "BTC-PERP", Side.BUY, OrderType.LIMIT,
                                 D("0.001"), D("59000.0"), client_order_id=f"o-{n}"))


def _status(system: TradingSystem, n: int) -> tuple[OrderStatus, str | None]:
    order = system.engine.state.order_by_client_id("demo", VENUE, f"o-{n}")
    assert order is not None
    return order.status, order.reject_code


async def _in_one_batch(system: TradingSystem, *commands) -> list:
    # Queued in one loop turn, before the bus task runs again: one batch.
    return await asyncio.gather(*(system.bus.execute(c) for c in commands),
                                return_exceptions=True)


@pytest.fixture
def system(tmp_path: Path):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'bus.db'}", feed="none",
                        demo_credentials=False, config=None)
    return TradingSystem(settings, default_trading_config())


def test_a_halt_overtakes_orders_queued_before_it(system: TradingSystem) -> None:
    async def body() -> None:
        await system.start()
        try:
            now = datetime.now(UTC)
            system.on_market(Quote(VENUE, "BTC-PERP", D("60000.0"), D(1), D("60000.1"), D(1),
                                   now))
            system.on_market(MarkPrice(VENUE, "BTC-PERP", D("60000.0"), now))
            await _in_one_batch(system, _order(1))
            assert _status(system, 1) == (OrderStatus.ACCEPTED, None)

            halt = SetTradingState(Scope(), TradingState.HALTED, "test", "op")
            await _in_one_batch(system, _order(2), _order(3), halt, _order(4))
            for n in (2, 3, 4):  # queued before the halt, and after it: all refused
                assert _status(system, n) == (OrderStatus.REJECTED,
                                              RejectCode.TRADING_HALTED.value)
            assert _status(system, 1)[0] is OrderStatus.CANCELED  # resting: cancelled

            enable = SetTradingState(Scope(), TradingState.ACTIVE, "test", "op")
            await _in_one_batch(system, _order(5), enable, _order(6))
            # The enable keeps its place: the order sent before it is still refused.
            assert _status(system, 5) == (OrderStatus.REJECTED,
                                          RejectCode.TRADING_HALTED.value)
            assert _status(system, 6) == (OrderStatus.ACCEPTED, None)
        finally:
            await system.stop()

    asyncio.run(asyncio.wait_for(body(), 30))
