"""Kind ``demo``: a small, seeded random trader for demos and soak runs.

At most every ``order_every_s`` seconds of market time it picks one of its
venue's instruments and places a small order on it — at market, or as a
passive limit ``limit_offset_bps`` away from the price — of a random notional
between ``min_notional`` and ``max_notional`` (capped at a quarter of the
account's position limit). Deterministic for a seed: the same market data
gives the same orders, in the server and in ``perpdesk simulate``.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated

from pydantic import Field

from app.domain.instruments import Rounding
from app.domain.market import MarketUpdate
from app.domain.orders import OrderType, Side
from app.strategies.base import (
    BaseStrategy,
    Commands,
    StrategyContext,
    StrategyKind,
    StrategyParams,
)
from app.strategies.registry import register


class DemoParams(StrategyParams):
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 7
    order_every_s: Annotated[Decimal, Field(gt=0, le=86_400, decimal_places=3)] = Decimal(5)
    min_notional: Annotated[int, Field(ge=1, le=1_000_000)] = 20
    max_notional: Annotated[int, Field(ge=1, le=1_000_000)] = 60
    market_share: Annotated[Decimal, Field(ge=0, le=1, decimal_places=2)] = Decimal("0.5")
    limit_offset_bps: Annotated[Decimal, Field(ge=0, le=1000, decimal_places=2)] = Decimal(5)
    symbols: Annotated[tuple[Annotated[str, Field(pattern=r"^[A-Z0-9]{1,20}-[A-Z0-9]{1,20}$")],
                             ...], Field(max_length=50)] = ()  # empty: all of its venue


class DemoTrader(BaseStrategy):
    def __init__(self, params: DemoParams):
        if params.max_notional < params.min_notional:
            raise ValueError("max_notional is below min_notional")
        self.p = params
        self.rng = random.Random(params.seed)
        self.next_order_at: datetime | None = None

    def on_market(self, update: MarketUpdate, ctx: StrategyContext) -> Commands:
        now = ctx.now
        if self.next_order_at is not None and now < self.next_order_at:
            return None
        self.next_order_at = now + timedelta(seconds=float(self.p.order_every_s))
        instruments = [i for i in ctx.instruments()
                       if not self.p.symbols or i.symbol in self.p.symbols]
        if not instruments:
            return None
        inst = self.rng.choice(instruments)
        price = ctx.price(inst.symbol)
        if price is None:
            return None
        qty = Decimal(self.rng.randint(self.p.min_notional, self.p.max_notional)) / price
        cap = ctx.limits(inst.symbol).max_position_size
        if cap is not None:  # a quarter of the cap at most
            qty = min(qty, cap / 4)
        qty = inst.round_qty(qty)
        if qty < inst.min_qty:
            return None
        side = self.rng.choice((Side.BUY, Side.SELL))
        if self.rng.random() < self.p.market_share:
            return [ctx.submit(inst.symbol, side, OrderType.MARKET, qty)]
        offset = price * self.p.limit_offset_bps / 10_000 * side.sign
        limit = inst.round_price(price - offset,
                                 Rounding.DOWN if side is Side.BUY else Rounding.UP)
        return [ctx.submit(inst.symbol, side, OrderType.LIMIT, qty, price=limit)]

    def on_stop(self, ctx: StrategyContext) -> Commands:
        return [ctx.cancel(o.order_id, "strategy stopped") for o in ctx.open_orders()]


DEMO = register(StrategyKind(
    name="demo", description="a seeded random trader: small market and passive limit orders",
    params=DemoParams, factory=DemoTrader))
