"""What a strategy is, what it sees, and how it asks for orders.

A strategy receives market updates, the committed events of its own account and
timer ticks, and answers each with commands (or nothing). It reads the world
through its ``StrategyContext`` only — its account's positions, its own open
orders, the market, the engine's clock — and keeps no clock, randomness or I/O
of its own beyond what its parameters seed, so the same strategy on the same
market data does the same thing in the server, in ``simulate`` and in backtests.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError

from app.domain.accounts import AccountSummary
from app.domain.arbitrage import ArbBook, ArbTrade, LegOut, RecordArbTrade, RecordLegOut
from app.domain.commands import CancelOrder, Command, ReplaceOrder, SubmitOrder
from app.domain.events import Event
from app.domain.instruments import Instrument
from app.domain.market import MarketUpdate, PriceBar
from app.domain.orders import Order, OrderSpec, OrderTags, OrderType, Side, TimeInForce
from app.domain.positions import Position
from app.domain.risk import SizingRequest
from app.domain.signals import SubmitSignal
from app.domain.strategies import Params, RecordBars, SavedBar, StrategyRecord
from app.domain.trading_state import TradingState
from app.engine import Engine
from app.engine.risk import RiskLimits
from app.venues.base import TopOfBook

Commands = Sequence[Command] | None


class Strategy(Protocol):
    """One running strategy. Every method answers with the commands it wants run
    (orders, cancels, replaces of its own account), or None."""

    def on_start(self, ctx: StrategyContext) -> Commands: ...

    def on_market(self, update: MarketUpdate, ctx: StrategyContext) -> Commands: ...

    def on_event(self, event: Event, ctx: StrategyContext) -> Commands: ...

    def on_timer(self, ctx: StrategyContext) -> Commands: ...

    def on_stop(self, ctx: StrategyContext) -> Commands: ...

    def quiet_until(self, symbol: str) -> datetime | None:
        """Until when ``on_market`` only takes ``symbol``'s prices in (answers nothing,
        whatever the update); None: it may answer any update. With ``absorb_points``
        it lets a backtest skip stepping it through quiet bar points
        (app/engine/quiet.py)."""
        ...

    def absorb_points(self, symbol: str, bar: PriceBar, first: int, stop: int = 4, *,
                      quoted: bool = False) -> None:
        """Take points ``first`` to ``stop`` (excluded) of ``bar``, all before
        ``quiet_until``, as ``on_market`` would take each one's quote, print and
        mark (``quoted``: point ``first``'s quote went through ``on_market``
        already)."""
        ...

    def absorb_bars(self, symbol: str, bars: Sequence[PriceBar], quoted: bool = False
                    ) -> None:
        """Take whole bars, all before ``quiet_until``: ``absorb_points`` over each
        (``quoted``: the first bar's first quote went through ``on_market``)."""
        ...


class BaseStrategy:
    """Does nothing on every call: a kind overrides what it needs."""

    def on_start(self, ctx: StrategyContext) -> Commands:
        return None

    def on_market(self, update: MarketUpdate, ctx: StrategyContext) -> Commands:
        return None

    def on_event(self, event: Event, ctx: StrategyContext) -> Commands:
        return None

    def on_timer(self, ctx: StrategyContext) -> Commands:
        return None

    def on_stop(self, ctx: StrategyContext) -> Commands:
        return None

    def quiet_until(self, symbol: str) -> datetime | None:
        return None  # unknown: every update goes through on_market

    def absorb_points(self, symbol: str, bar: PriceBar, first: int, stop: int = 4, *,
                      quoted: bool = False) -> None:
        raise NotImplementedError("a strategy with quiet_until() must take points")

    def absorb_bars(self, symbol: str, bars: Sequence[PriceBar], quoted: bool = False
                    ) -> None:
        for i, bar in enumerate(bars):
            self.absorb_points(symbol, bar, 0, quoted=quoted and not i)


class StrategyParams(BaseModel):
    """A kind's parameters: every field bounded, nothing unknown accepted."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class InvalidParams(ValueError):
    """Parameters a kind refuses; ``problems`` names each field and what is wrong."""

    def __init__(self, problems: list[dict[str, str]]):
        first = problems[0] if problems else {"field": "", "message": "invalid"}
        super().__init__(f"{first['field']}: {first['message']}" if first["field"]
                         else first["message"])
        self.problems = problems


@dataclass(frozen=True)
class StrategyKind:
    """A registered kind: its name, what it does, its parameters and its factory."""

    name: str
    description: str
    params: type[StrategyParams]
    factory: Callable[[Any], Strategy]
    # How often ``on_timer`` runs (on a grid of the engine clock), or never.
    timer: timedelta | None = None
    # Whether ``on_market`` is called for every update of its venues (a kind that reads
    # the market on its timer only says no, and costs nothing per update).
    market_updates: bool = True

    def validate(self, raw: Mapping[str, Any]) -> Params:
        """Parameters as the log stores them: validated by the kind's model, every
        field (defaults included) as JSON text, sorted by name."""
        try:
            model = self.params.model_validate(dict(raw))
        except ValidationError as exc:
            raise InvalidParams([
                {"field": ".".join(str(p) for p in e.get("loc", ())),
                 "message": e.get("msg", "invalid")} for e in exc.errors()]) from None
        dumped = model.model_dump(mode="json")
        return tuple(sorted((name, json.dumps(value, sort_keys=True))
                            for name, value in dumped.items()))

    def parse(self, params: Params) -> StrategyParams:
        return self.params.model_validate({k: json.loads(v) for k, v in params})

    def build(self, params: Params) -> Strategy:
        return self.factory(self.parse(params))

    def venues_of(self, record: StrategyRecord) -> frozenset[str]:
        """The venues a strategy trades on: its own, and those its parameters name
        (a ``venues`` parameter: an arbitrage trades two)."""
        extra = getattr(self.parse(record.params), "venues", ())
        return frozenset((record.venue, *extra))


def params_dict(params: Params) -> dict[str, Any]:
    """Stored parameters as plain values (for the API)."""
    return {name: json.loads(text) for name, text in params}


class StrategyContext:
    """What one strategy may read and ask for, at one engine step.

    A strategy trades its client's accounts on its venues: its own (``venue``) and,
    for kinds that trade several (an arbitrage), those its parameters name. Reads
    and orders default to its own venue."""

    __slots__ = ("_engine", "now", "record", "venues")

    def __init__(self, record: StrategyRecord, engine: Engine, now: datetime,
                 venues: frozenset[str] | None = None):
        self.record = record
        self._engine = engine
        self.now = now
        self.venues = venues if venues is not None else frozenset((record.venue,))

    @property
    def strategy_id(self) -> str:
        return self.record.strategy_id

    @property
    def client(self) -> str:
        return self.record.client

    @property
    def venue(self) -> str:
        return self.record.venue

    # ---- reads ----------------------------------------------------------------------

    def instrument(self, symbol: str, venue: str | None = None) -> Instrument | None:
        return self._engine.instruments.get((venue or self.venue, symbol))

    def instruments(self, venue: str | None = None) -> list[Instrument]:
        venue = venue or self.venue
        return [i for (v, _), i in sorted(self._engine.instruments.items()) if v == venue]

    def price(self, symbol: str, venue: str | None = None) -> Decimal | None:
        """The venue's reference price (mark, else last, else mid)."""
        return self._engine.venues[venue or self.venue].reference_price(symbol)

    def book(self, symbol: str, venue: str | None = None) -> TopOfBook:
        """The venue's best bid and offer (and when its book last changed)."""
        return self._engine.venues[venue or self.venue].book(symbol)

    def liquidity(self, symbol: str, taker_side: Side, venue: str | None = None
                  ) -> Iterator[tuple[Decimal, Decimal]]:
        """The (price, size) levels a taker on ``taker_side`` would meet, best first
        (lazily: take what you need)."""
        return self._engine.venues[venue or self.venue].liquidity(symbol, taker_side)

    def funding(self, symbol: str, venue: str | None = None
                ) -> tuple[Decimal | None, datetime | None]:
        """The venue's announced next funding rate (None: none yet) and when it settles."""
        return self._engine.funding_schedule(venue or self.venue, symbol)

    def trading_state(self, venue: str | None = None) -> TradingState:
        """The kill-switch state in force for this client on the venue."""
        return self._engine.trading_state(self.client, venue or self.venue)[0]

    def position(self, symbol: str, venue: str | None = None) -> Position | None:
        return self._engine.state.positions.get((self.client, venue or self.venue, symbol))

    def position_qty(self, symbol: str, venue: str | None = None) -> Decimal:
        position = self.position(symbol, venue)
        return position.qty if position is not None else Decimal(0)

    def open_orders(self, symbol: str | None = None, venue: str | None = None) -> list[Order]:
        """This strategy's own open orders (by their strategy tag), oldest first, on
        ``venue`` or on all its venues."""
        found: list[Order] = []
        for v in sorted(self.venues) if venue is None else (venue,):
            orders = self._engine.state.open_orders.get((self.client, v), {})
            found.extend(o for o in orders.values()
                         if o.spec.tags.strategy == self.strategy_id
                         and (symbol is None or o.spec.symbol == symbol))
        return sorted(found, key=lambda o: o.order_id) if len(self.venues) > 1 and \
            venue is None else found

    def order(self, order_id: int) -> Order | None:
        order = self._engine.state.orders.get(order_id)
        if order is None or order.spec.client != self.client:
            return None
        return order

    def order_by_client_id(self, client_order_id: str, venue: str | None = None
                           ) -> Order | None:
        """One of its account's orders by client order id (None: never placed, or
        finished so long ago that it left memory)."""
        return self._engine.state.order_by_client_id(self.client, venue or self.venue,
                                                     client_order_id)

    def limits(self, symbol: str) -> RiskLimits:
        """The account's pre-trade limits on ``symbol``."""
        return self._engine.config.limits_for(self.client, symbol)

    def summary(self, venue: str | None = None) -> AccountSummary:
        return self._engine.summary(self.client, venue or self.venue)

    def saved_bars(self) -> list[list[SavedBar]]:
        """The closed bars it recorded (``record_bars``), per symbol and interval, oldest
        first: what a restarted strategy feeds its indicators again."""
        kept = self._engine.state.strategy_bars.get(self.strategy_id, {})
        return [list(series) for _, series in sorted(kept.items())]

    def arb_book(self) -> ArbBook | None:
        """This strategy's arbitrage trades and totals, as recorded (None: none yet)."""
        return self._engine.state.arb.get(self.strategy_id)

    # ---- asks ------------------------------------------------------------------------

    def submit(self, symbol: str, side: Side, type: OrderType, qty: Decimal, *,
               price: Decimal | None = None, trigger_price: Decimal | None = None,
               time_in_force: TimeInForce = TimeInForce.GTC, post_only: bool = False,
               reduce_only: bool = False, client_order_id: str | None = None,
               signal_id: str | None = None, exit_reason: str | None = None,
               venue: str | None = None, parent_trade_id: str | None = None,
               sizing: SizingRequest | None = None) -> SubmitOrder:
        """An order of this strategy (tagged with its id) on its account (on ``venue``,
        one of its venues); ``sizing`` chooses the engine's impact-aware sizing mode
        (None: the client's default)."""
        tags = OrderTags(strategy=self.strategy_id, signal_id=signal_id,
                         parent_trade_id=parent_trade_id, exit_reason=exit_reason)
        return SubmitOrder(OrderSpec(
            self.client, venue or self.venue, symbol, side, type, qty, price=price,
            trigger_price=trigger_price, time_in_force=time_in_force, post_only=post_only,
            reduce_only=reduce_only, client_order_id=client_order_id, tags=tags),
            actor=self.actor, sizing=sizing)

    def signal(self, symbol: str, signal: int, *, strength: Decimal | None = None,
               signal_id: str | None = None) -> SubmitSignal:
        """A signal of this strategy (1 long, 0 flat, -1 short) on its account: the
        engine turns it into orders with the client's signal parameters, as it does
        the API's ``POST /api/v1/signals``."""
        return SubmitSignal(self.client, self.venue, symbol, signal, self.strategy_id,
                            self.now, strength, signal_id, actor=self.actor)

    def cancel(self, order_id: int, reason: str = "strategy") -> CancelOrder:
        return CancelOrder(order_id, actor=self.actor, reason=reason)

    def replace(self, order_id: int, price: Decimal | None = None,
                qty: Decimal | None = None) -> ReplaceOrder:
        return ReplaceOrder(order_id, price, qty, actor=self.actor)

    def record_bars(self, bars: Sequence[SavedBar]) -> RecordBars:
        """Keep the bars it just closed, for its restart (an event in the log)."""
        return RecordBars(self.strategy_id, tuple(bars), actor=self.actor)

    def record_trade(self, trade: ArbTrade, change: str) -> RecordArbTrade:
        """Record an arbitrage trade's new state (an event in the log)."""
        return RecordArbTrade(trade, change, actor=self.actor)

    def record_leg_out(self, leg_out: LegOut) -> RecordLegOut:
        return RecordLegOut(leg_out, actor=self.actor)

    @property
    def actor(self) -> str:
        return f"strategy:{self.strategy_id}"
