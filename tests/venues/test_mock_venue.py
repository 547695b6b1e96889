"""The mock venue (app/venues/mock.py, seed 002's local-dev profile): fills at the
mark after a latency on the engine's clock, ``fill_ratio`` of each order, the rest
canceled; the engine's kill switches apply to it as to any venue; the same inputs
always give the same events.

Each test runs the real engine with a ``MockVenue`` and feeds it market data and
commands at explicit times.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import VenueConfig, load_trading_config
from app.domain.commands import CancelOrder, Deposit, SetTradingState, SubmitOrder
from app.domain.events import (
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    OrderTriggered,
)
from app.domain.instruments import Instrument, InstrumentKind
from app.domain.market import MarkPrice, Quote, TradePrint
from app.domain.orders import (
    Liquidity,
    OrderSpec,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    TriggerSource,
)
from app.domain.risk import UNLIMITED
from app.domain.trading_state import Scope, TradingState
from app.engine.engine import AccountSetup, Engine, EngineConfig
from app.venues.mock import FILL_RATIO_REASON, MockVenue, MockVenueConfig

T0 = datetime(2024, 1, 1, tzinfo=UTC)
VENUE, SYMBOL, CLIENT = "mock", "BTC-PERP", "demo"
MS = timedelta(milliseconds=1)
TAKER, MAKER = D("0.0005"), D("0.0002")


def engine_with(latency_ms: int = 50, fill_ratio: str = "1") -> Engine:
    inst = Instrument(SYMBOL, VENUE, InstrumentKind.PERP, "BTC", "USDT", D("0.1"), D("0.001"),
                      D("0.001"), D(5), maker_fee_rate=MAKER, taker_fee_rate=TAKER)
    venue = MockVenue(VENUE, MockVenueConfig(latency=latency_ms * MS, fill_ratio=D(fill_ratio)))
    engine = Engine(EngineConfig([inst], [AccountSetup(CLIENT, VENUE, D(5))],
                                 default_risk_profile=UNLIMITED), {VENUE: venue})
    engine.handle(Deposit(CLIENT, VENUE, D(20000)), T0)
    engine.on_market(Quote(VENUE, SYMBOL, D("59990.0"), D(1), D("60010.0"), D(1), T0), T0)
    engine.on_market(TradePrint(VENUE, SYMBOL, D("60005.0"), D(1), Side.BUY, T0), T0)
    engine.on_market(MarkPrice(VENUE, SYMBOL, D("60000.0"), T0), T0)
    return engine


def submit(engine: Engine, now: datetime, side: str = "buy", type_: str = "market",
           qty: str = "0.1", price: str | None = None, **more: object) -> tuple[int, list[Event]]:
    spec = OrderSpec(client=CLIENT, venue=VENUE, symbol=SYMBOL, side=Side(side),
                     type=OrderType(type_), qty=D(qty),
                     price=D(price) if price is not None else None, **more)  # type: ignore[arg-type]
    events = engine.handle(SubmitOrder(spec), now)
    submitted = [e for e in events if isinstance(e, OrderSubmitted)]
    assert submitted, events
    return submitted[0].order_id, events


def mark(engine: Engine, now: datetime, price: str) -> list[Event]:
    return engine.on_market(MarkPrice(VENUE, SYMBOL, D(price), now), now)


def of(events: list[Event], kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


def test_an_order_arrives_after_the_latency_and_fills_at_the_mark_of_that_moment() -> None:
    engine = engine_with(latency_ms=50)
    order_id, events = submit(engine, T0, qty="0.1")
    assert not of(events, OrderAccepted) and not of(events, OrderFilled)
    assert engine.state.orders[order_id].status is OrderStatus.NEW

    assert mark(engine, T0 + 20 * MS, "60100.0") == []  # still on its way
    assert engine.advance(T0 + 49 * MS) == []
    events = engine.advance(T0 + 50 * MS)

    accepted, (fill,) = of(events, OrderAccepted), of(events, OrderFilled)
    assert [a.order_id for a in accepted] == [order_id]
    # The mark when it arrived (not the ask: no book is walked), taker fee, at arrival.
    assert (fill.qty, fill.price, fill.liquidity) == (D("0.1"), D("60100.0"), Liquidity.TAKER)
    assert fill.fee == D("0.1") * D("60100.0") * TAKER
    assert fill.at == T0 + 50 * MS
    assert engine.state.orders[order_id].status is OrderStatus.FILLED
    assert engine.state.positions[(CLIENT, VENUE, SYMBOL)].qty == D("0.1")


def test_no_latency_fills_at_once_and_size_does_not_move_the_price() -> None:
    engine = engine_with(latency_ms=0)
    _, events = submit(engine, T0, qty="1.2")  # more than the quote's 1 BTC
    (fill,) = of(events, OrderFilled)
    assert (fill.qty, fill.price) == (D("1.2"), D("60000.0"))


def test_fill_ratio_fills_that_fraction_and_the_rest_of_a_market_order_expires() -> None:
    engine = engine_with(latency_ms=0, fill_ratio="0.5")
    order_id, events = submit(engine, T0, qty="0.003")
    (fill,) = of(events, OrderFilled)
    assert fill.qty == D("0.001")  # 0.0015 rounded down to the 0.001 step
    assert [e.order_id for e in of(events, OrderExpired)] == [order_id]
    order = engine.state.orders[order_id]
    assert order.filled_qty == D("0.001") and not order.is_open


def test_fill_ratio_cancels_the_rest_of_a_limit_and_fok_is_refused() -> None:
    engine = engine_with(latency_ms=0, fill_ratio="0.5")
    limit_id, events = submit(engine, T0, type_="limit", qty="0.1", price="60500.0")
    assert [f.qty for f in of(events, OrderFilled)] == [D("0.05")]
    (canceled,) = of(events, OrderCanceled)
    assert (canceled.order_id, canceled.reason) == (limit_id, FILL_RATIO_REASON)

    fok_id, events = submit(engine, T0, type_="limit", qty="0.1", price="60500.0",
                            time_in_force=TimeInForce.FOK)
    assert not of(events, OrderFilled)
    assert [(r.order_id, r.code) for r in of(events, OrderRejected)] == [
        (fok_id, "FOK_NOT_FILLABLE")]


def test_a_resting_limit_fills_at_its_price_as_maker_when_the_mark_reaches_it() -> None:
    engine = engine_with(latency_ms=0)
    order_id, events = submit(engine, T0, type_="limit", qty="0.1", price="59900.0")
    assert of(events, OrderAccepted) and not of(events, OrderFilled)
    assert mark(engine, T0 + MS, "59950.0") == []
    events = mark(engine, T0 + 2 * MS, "59850.0")
    (fill,) = of(events, OrderFilled)
    assert (fill.order_id, fill.price, fill.liquidity) == (order_id, D("59900.0"), Liquidity.MAKER)
    assert fill.fee == D("0.1") * D("59900.0") * MAKER


def test_post_only_that_would_fill_at_once_is_rejected() -> None:
    engine = engine_with(latency_ms=0)
    _, events = submit(engine, T0, type_="limit", qty="0.1", price="60500.0", post_only=True)
    assert [r.code for r in of(events, OrderRejected)] == ["POST_ONLY_WOULD_CROSS"]


def test_a_stop_triggers_on_the_mark_and_fills_there() -> None:
    engine = engine_with(latency_ms=0)
    submit(engine, T0, qty="0.1")
    stop_id, events = submit(engine, T0, side="sell", type_="stop", qty="0.1",
                             trigger_price=D("59000.0"), trigger_source=TriggerSource.MARK,
                             reduce_only=True)
    assert not of(events, OrderFilled)
    events = mark(engine, T0 + MS, "58990.0")
    assert [t.order_id for t in of(events, OrderTriggered)] == [stop_id]
    (fill,) = of(events, OrderFilled)
    assert (fill.qty, fill.price) == (D("0.1"), D("58990.0"))
    assert engine.state.positions[(CLIENT, VENUE, SYMBOL)].qty == 0


def test_a_cancel_also_takes_the_latency_and_catches_a_resting_order() -> None:
    engine = engine_with(latency_ms=50)
    order_id, _ = submit(engine, T0, type_="limit", qty="0.1", price="59000.0")
    engine.advance(T0 + 50 * MS)
    engine.handle(CancelOrder(order_id), T0 + 60 * MS)
    assert engine.state.orders[order_id].status is OrderStatus.PENDING_CANCEL
    events = engine.advance(T0 + 110 * MS)
    assert [c.order_id for c in of(events, OrderCanceled)] == [order_id]
    assert mark(engine, T0 + 120 * MS, "58000.0") == []  # gone: nothing fills


def test_kill_switches_are_the_engines_and_apply_to_the_mock_venue() -> None:
    engine = engine_with(latency_ms=0)
    resting_id, _ = submit(engine, T0, type_="limit", qty="0.1", price="59000.0")
    events = engine.handle(SetTradingState(Scope(CLIENT, None), TradingState.HALTED, "test"),
                           T0)
    # Halting cancels what rests at the venue, mock or not.
    assert [c.order_id for c in of(events, OrderCanceled)] == [resting_id]
    spec = OrderSpec(client=CLIENT, venue=VENUE, symbol=SYMBOL, side=Side.BUY,
                     type=OrderType.MARKET, qty=D("0.1"))
    events = engine.handle(SubmitOrder(spec), T0)
    assert [r.code for r in of(events, OrderRejected)] == ["TRADING_HALTED"]
    assert not of(events, OrderFilled)
    engine.handle(SetTradingState(Scope(CLIENT, None), TradingState.ACTIVE, "test"), T0)
    events = engine.handle(SubmitOrder(spec), T0)
    assert [f.qty for f in of(events, OrderFilled)] == [D("0.1")]


def _script(engine: Engine) -> list[Event]:
    out: list[Event] = []
    out += submit(engine, T0, qty="0.013")[1]
    out += submit(engine, T0 + 10 * MS, type_="limit", side="sell", qty="0.007",
                  price="60200.0")[1]
    for i, price in enumerate(("60050.0", "60210.0", "59900.0", "60300.0"), start=1):
        out += mark(engine, T0 + i * 40 * MS, price)
    out += engine.advance(T0 + 500 * MS)
    return out


def test_the_same_inputs_give_the_same_events() -> None:
    first = _script(engine_with(latency_ms=50, fill_ratio="0.7"))
    second = _script(engine_with(latency_ms=50, fill_ratio="0.7"))
    assert of(first, OrderFilled), "the script must fill something"
    assert first == second


def test_fill_ratio_and_latency_are_bounded() -> None:
    for ratio in ("0", "1.5"):
        with pytest.raises(ValueError):
            MockVenueConfig(fill_ratio=D(ratio))
    with pytest.raises(ValidationError):
        VenueConfig(name="m", kind="mock", fill_ratio="0")
    with pytest.raises(ValidationError):
        VenueConfig(name="m", kind="mock", latency_ms=-1)
    with pytest.raises(ValidationError):
        VenueConfig(name="m", kind="exotic")


def test_a_yaml_venue_of_kind_mock_is_seed_002s_local_dev_profile(tmp_path: Path) -> None:
    path = tmp_path / "perpdesk.yaml"
    path.write_text("venues:\n"
                    "  - {name: paper-binance, kind: mock, latency_ms: 50, fill_ratio: 1.0}\n"
                    "  - {name: paper-bybit}\n")
    config = load_trading_config(path)
    mock = config.venues[0]
    assert (mock.kind, mock.latency_ms, mock.fill_ratio) == ("mock", 50, D("1.0"))
    assert config.venues[1].kind == "paper"
