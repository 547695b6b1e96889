"""Restart recovery of the whole trading system (engine + bus + event log).

A ``TradingSystem`` runs a burst of commands and market data, stops, and a
second one starts on the same database: it must rebuild exactly the state the
first one had, kill switches included, and hand the resting orders back to the
venues so the market can still fill them. The log, decoded and applied to an
empty state, must give the same state as the live system.

Each test runs its own event loop (``asyncio.run``), so no async plugin is
needed. Tests take only ``db_url`` (a fresh, empty database) so
tests/integration/test_postgres_store.py can re-run them on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from app.api.schemas import order_json
from app.config import Settings, TradingConfig, default_trading_config
from app.domain.commands import (
    CancelAll,
    CancelOrder,
    Command,
    ReplaceOrder,
    SetTradingState,
    SubmitOrder,
)
from app.domain.events import OrderSubmitted
from app.domain.market import FundingRate, MarketUpdate, MarkPrice, Quote, TradePrint
from app.domain.orders import (
    TRANSITIONS,
    Liquidity,
    Order,
    OrderSpec,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from app.domain.trading_state import Scope, TradingState
from app.engine.state import EngineState
from app.runtime.bus import StorageUnavailable
from app.runtime.system import TradingSystem
from app.store.event_log import EventLog, make_db_engine
from app.store.tables import OrderRow, TradingStateRow

D = Decimal
BINANCE, BYBIT = "paper-binance", "paper-bybit"
STEP_TIMEOUT = 10.0  # seconds for any one await: a hang fails the test instead


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'perpdesk.db'}"


def settings_for(url: str) -> Settings:
    return Settings(database_url=url, feed="none", demo_credentials=False, migrate=True,
                    config=None)


def run(coro_fn: Callable[[], Awaitable[Any]], timeout: float = 60.0) -> Any:
    """Run an async test body on a fresh loop, bounded in time."""
    async def bounded() -> Any:
        return await asyncio.wait_for(coro_fn(), timeout)
    return asyncio.run(bounded())


def now() -> datetime:
    return datetime.now(UTC)


def quote(venue: str, symbol: str, bid: str, ask: str, size: str) -> Quote:
    return Quote(venue, symbol, D(bid), D(size), D(ask), D(size), now())


def order_spec(client: str, venue: str, symbol: str, side: str, type_: str, qty: str,
               price: str | None = None, **kw: Any) -> OrderSpec:
    return OrderSpec(client=client, venue=venue, symbol=symbol, side=Side(side),
                     type=OrderType(type_), qty=D(qty),
                     price=None if price is None else D(price), **kw)


class Running:
    """A running system plus helpers to drive it through its command bus."""

    def __init__(self, url: str, trading: TradingConfig | None = None):
        self.system = TradingSystem(settings_for(url), trading or default_trading_config())

    @property
    def state(self) -> EngineState:
        return self.system.engine.state

    async def start(self) -> None:
        await asyncio.wait_for(self.system.start(), STEP_TIMEOUT)

    async def stop(self) -> None:
        await asyncio.wait_for(self.system.stop(), STEP_TIMEOUT)

    async def execute(self, command: Command) -> list[Any]:
        committed = await asyncio.wait_for(self.system.bus.execute(command), STEP_TIMEOUT)
        return committed.events

    async def submit(self, *args: Any, **kw: Any) -> Order:
        events = await self.execute(SubmitOrder(order_spec(*args, **kw)))
        submitted = [e for e in events if type(e) is OrderSubmitted]
        assert submitted, f"no order recorded for {args}"
        return self.state.orders[submitted[0].order_id]

    async def market(self, *updates: MarketUpdate) -> None:
        """Queue market data, then wait until the bus has committed it (FIFO barrier)."""
        for update in updates:
            self.system.on_market(update)
        await self.barrier()

    async def barrier(self) -> None:
        # A command that matches nothing: it is processed after everything queued before it.
        await self.execute(CancelAll(client="nobody-at-all"))


def fresh_state(trading: TradingConfig | None = None) -> EngineState:
    """An empty state with only the configured accounts (what a first start has)."""
    return TradingSystem(settings_for("sqlite://"), trading or default_trading_config()
                         ).engine.state


def replay_file(url: str, trading: TradingConfig | None = None) -> EngineState:
    """Decode every stored event and apply it to an empty state."""
    db = make_db_engine(url)
    try:
        state = fresh_state(trading)
        for event in EventLog(db).replay():
            state.apply(event)
        return state
    finally:
        db.dispose()


def open_ids(state: EngineState) -> set[int]:
    return {oid for orders in state.open_orders.values() for oid in orders}


async def first_session(s: Running) -> dict[str, Order]:
    """The burst: fills, rests, a cancel, a replace, a rejection, an idempotent retry,
    funding, a marks update and two kill switches."""
    o: dict[str, Order] = {}
    await s.market(
        quote(BINANCE, "BTC-PERP", "60000.0", "60000.1", "1"),
        quote(BINANCE, "ETH-PERP", "3000.00", "3000.01", "5"),
        quote(BYBIT, "SOL-PERP", "150.00", "150.01", "50"),
        quote(BYBIT, "XRP-PERP", "0.6000", "0.6001", "1000"),
    )
    # demo: a long ETH position with a take-profit resting above, two BTC bids.
    o["demo_eth_buy"] = await s.submit("demo", BINANCE, "ETH-PERP", "buy", "market", "0.05")
    o["demo_tp"] = await s.submit("demo", BINANCE, "ETH-PERP", "sell", "limit", "0.05",
                                  "3100.00", client_order_id="demo-tp")
    o["demo_bid"] = await s.submit("demo", BINANCE, "BTC-PERP", "buy", "limit", "0.004",
                                   "59000.0")
    o["demo_bid2"] = await s.submit("demo", BINANCE, "BTC-PERP", "buy", "limit", "0.003",
                                    "59500.0")
    await s.execute(CancelOrder(o["demo_bid2"].order_id, reason="requested"))
    # demo-2: SOL bid, XRP ask (replaced), a small XRP short and a bid to cover it.
    o["d2_sol_bid"] = await s.submit("demo-2", BYBIT, "SOL-PERP", "buy", "limit", "0.5",
                                     "148.00", client_order_id="sol-1")
    o["d2_xrp_ask"] = await s.submit("demo-2", BYBIT, "XRP-PERP", "sell", "limit", "100",
                                     "0.6200", client_order_id="xrp-ask")
    await s.execute(ReplaceOrder(o["d2_xrp_ask"].order_id, new_price=D("0.6150")))
    o["d2_xrp_ask_r1"] = s.state.orders[o["d2_xrp_ask"].replaced_by]  # type: ignore[index]
    o["d2_xrp_short"] = await s.submit("demo-2", BYBIT, "XRP-PERP", "sell", "market", "50")
    o["d2_xrp_bid"] = await s.submit("demo-2", BYBIT, "XRP-PERP", "buy", "limit", "50",
                                     "0.5900")
    o["d2_eth_bid"] = await s.submit("demo-2", BINANCE, "ETH-PERP", "buy", "limit", "0.03",
                                     "2995.00")
    o["d2_post_only"] = await s.submit("demo-2", BYBIT, "SOL-PERP", "buy", "limit", "0.1",
                                       "150.01", post_only=True)
    # The same client_order_id and parameters again: no second order.
    retry = await s.execute(SubmitOrder(order_spec("demo-2", BYBIT, "SOL-PERP", "buy",
                                                   "limit", "0.5", "148.00",
                                                   client_order_id="sol-1")))
    assert retry == []
    # The market comes down through demo-2's ETH bid; marks and a funding print arrive.
    await s.market(
        quote(BINANCE, "ETH-PERP", "2993.00", "2994.00", "5"),
        MarkPrice(BINANCE, "ETH-PERP", D("2994.50"), now()),
        FundingRate(BINANCE, "ETH-PERP", D("0.0001"), now() - timedelta(seconds=1), now()),
    )
    # Kill switches: demo reduce-only (its BTC bids go, the take-profit stays but may
    # only reduce), demo-2 halted on binance.
    await s.execute(SetTradingState(Scope("demo", None), TradingState.REDUCE_ONLY,
                                    "drawdown", "risk-desk"))
    await s.execute(SetTradingState(Scope("demo-2", BINANCE), TradingState.HALTED,
                                    "investigating", "ops"))
    return o


def check_first_session(s: Running, o: dict[str, Order]) -> None:
    """What the burst did, so the recovery checks are not vacuous."""
    st = s.state
    status = {k: st.orders[v.order_id].status for k, v in o.items()}
    assert status == {
        "demo_eth_buy": OrderStatus.FILLED,
        "demo_tp": OrderStatus.ACCEPTED,
        "demo_bid": OrderStatus.CANCELED,
        "demo_bid2": OrderStatus.CANCELED,
        "d2_sol_bid": OrderStatus.ACCEPTED,
        "d2_xrp_ask": OrderStatus.CANCELED,
        "d2_xrp_ask_r1": OrderStatus.ACCEPTED,
        "d2_xrp_short": OrderStatus.FILLED,
        "d2_xrp_bid": OrderStatus.ACCEPTED,
        "d2_eth_bid": OrderStatus.FILLED,
        "d2_post_only": OrderStatus.CANCELED,  # bybit-v5: accepted, then canceled
    }
    assert st.orders[o["demo_bid"].order_id].cancel_reason == "trading state reduce_only"
    assert st.orders[o["d2_xrp_ask_r1"].order_id].client_order_id == "xrp-ask-r1"  # bybit-v5
    assert st.positions[("demo", BINANCE, "ETH-PERP")].qty == D("0.05")
    assert st.positions[("demo-2", BINANCE, "ETH-PERP")].qty == D("0.03")
    assert st.positions[("demo-2", BYBIT, "XRP-PERP")].qty == D(-50)
    assert st.positions[("demo", BINANCE, "ETH-PERP")].funding < 0  # longs paid
    assert st.trading_states == {Scope("demo", None): TradingState.REDUCE_ONLY,
                                 Scope("demo-2", BINANCE): TradingState.HALTED}
    for account in st.accounts.values():
        assert account.deposits == D(20000)  # the first start funded every account once


def test_restart_rebuilds_the_exact_state(db_url: str) -> None:
    async def body() -> None:
        first = Running(db_url)
        await first.start()
        assert first.system.first_start
        try:
            orders = await first_session(first)
            check_first_session(first, orders)
        finally:
            await first.stop()
        at_stop = copy.deepcopy(first.state.comparable())
        resting = open_ids(first.state)
        assert len(resting) == 4

        # The log alone rebuilds it (decoded events into an empty state).
        assert replay_file(db_url).comparable() == at_stop

        second = Running(db_url)
        await second.start()
        try:
            assert not second.system.first_start  # no second round of deposits
            assert second.state.comparable() == at_stop
            engine = second.system.engine
            assert engine.trading_state("demo", BINANCE)[0] is TradingState.REDUCE_ONLY
            assert engine.trading_state("demo", BYBIT)[0] is TradingState.REDUCE_ONLY
            assert engine.trading_state("demo-2", BINANCE)[0] is TradingState.HALTED
            assert engine.trading_state("demo-2", BYBIT)[0] is TradingState.ACTIVE
            # The kill switch still bites after the restart.
            refused = await second.submit("demo", BINANCE, "BTC-PERP", "buy", "limit",
                                          "0.001", "59000.0")
            assert refused.reject_code == "TRADING_REDUCE_ONLY"
            halted = await second.submit("demo-2", BINANCE, "ETH-PERP", "sell", "limit",
                                         "0.01", "3100.00")
            assert halted.reject_code == "TRADING_HALTED"
        finally:
            await second.stop()
        db = make_db_engine(db_url)
        try:
            with Session(db) as session:
                rows = {(r.scope_client, r.scope_venue): r.state
                        for r in session.exec(select(TradingStateRow))}
        finally:
            db.dispose()
        assert rows == {("demo", ""): "reduce_only", ("demo-2", BINANCE): "halted"}

    run(body)


def test_resting_orders_are_live_again_after_restart(db_url: str) -> None:
    async def body() -> None:
        first = Running(db_url)
        await first.start()
        try:
            orders = await first_session(first)
        finally:
            await first.stop()
        ids = {k: v.order_id for k, v in orders.items()}

        second = Running(db_url)
        await second.start()
        try:
            engine = second.system.engine
            for key in ("demo_tp", "d2_sol_bid", "d2_xrp_ask_r1", "d2_xrp_bid"):
                order = second.state.orders[ids[key]]
                work = engine.venues[order.spec.venue].working(order.order_id)
                assert work is not None, f"{key} is not live at {order.spec.venue}"
                assert work.remaining == order.remaining_qty == order.spec.qty
                assert work.price == order.spec.price
            # In reduce-only, demo's take-profit is kept: the engine's budget (what it
            # may close fits the position) holds it to reducing, not a venue flag.
            tp = second.state.orders[ids["demo_tp"]]
            eth = second.state.positions[("demo", BINANCE, "ETH-PERP")]
            assert tp.is_open and eth.qty > 0 and tp.remaining_qty <= eth.qty
            for key in ("demo_bid", "demo_bid2", "d2_xrp_ask"):
                order = second.state.orders[ids[key]]
                assert engine.venues[order.spec.venue].working(order.order_id) is None

            # The market moves through three of them: they fill as makers at their price.
            await second.market(
                quote(BINANCE, "ETH-PERP", "3100.00", "3100.01", "1"),
                quote(BYBIT, "SOL-PERP", "147.80", "147.90", "5"),
                quote(BYBIT, "XRP-PERP", "0.6150", "0.6151", "500"),
            )
            st = second.state
            for key in ("demo_tp", "d2_sol_bid", "d2_xrp_ask_r1"):
                order = st.orders[ids[key]]
                assert order.status is OrderStatus.FILLED, key
                assert order.avg_fill_price == order.spec.price, key
            assert st.orders[ids["d2_xrp_bid"]].status is OrderStatus.ACCEPTED
            fills = [e for e in second.system.log.replay() if type(e).__name__ == "OrderFilled"
                     and e.order_id in {ids["demo_tp"], ids["d2_sol_bid"],
                                        ids["d2_xrp_ask_r1"]}]
            assert {f.liquidity for f in fills} == {Liquidity.MAKER}
            assert st.positions[("demo", BINANCE, "ETH-PERP")].qty == 0
            assert st.positions[("demo-2", BYBIT, "SOL-PERP")].qty == D("0.5")
            assert st.positions[("demo-2", BYBIT, "XRP-PERP")].qty == D(-150)
            assert len(st.closed_trades) == 1  # demo's ETH long round trip
        finally:
            await second.stop()
        final = copy.deepcopy(second.state.comparable())
        assert replay_file(db_url).comparable() == final
        db = make_db_engine(db_url)
        try:
            with Session(db) as session:
                row = session.get(OrderRow, ids["demo_tp"])
            assert row is not None and row.status == "filled"
        finally:
            db.dispose()

    run(body)


def test_replay_equals_live_state_at_every_restart(db_url: str) -> None:
    """Three generations on one database: each start equals the previous stop and the
    decoded log; what each generation adds is kept by the next."""
    async def body() -> None:
        previous: dict[str, Any] | None = None
        for generation in range(3):
            s = Running(db_url)
            await s.start()
            try:
                if previous is not None:
                    assert s.state.comparable() == previous
                assert s.state.comparable() == replay_file(db_url).comparable()
                if generation == 0:
                    await first_session(s)
                else:
                    await s.market(quote(BYBIT, "SOL-PERP", "151.00", "151.01", "5"))
                    await s.submit("demo-2", BYBIT, "SOL-PERP", "sell", "market", "0.1")
                    await s.submit("demo-2", BYBIT, "XRP-PERP", "buy", "limit", "10",
                                   "0.5000", client_order_id=f"gen-{generation}")
            finally:
                await s.stop()
            previous = copy.deepcopy(s.state.comparable())
        final = replay_file(db_url)
        assert final.comparable() == previous
        coids = {o.client_order_id for o in final.orders.values()}
        assert {"gen-1", "gen-2"} <= coids

    run(body)


def test_stops_and_expiries_keep_working_after_restart(db_url: str) -> None:
    """An untriggered stop is armed again and a GTD order still expires after a restart.
    (On generic venues: Bybit has no GTD, and Binance's is at least 600 s ahead.)"""
    trading = default_trading_config()
    for venue_config in trading.venues:
        venue_config.profile = "generic"

    async def body() -> None:
        s = Running(db_url, trading)
        await s.start()
        try:
            await s.market(quote(BYBIT, "XRP-PERP", "0.6000", "0.6001", "1000"))
            await s.submit("demo", BYBIT, "XRP-PERP", "buy", "market", "100")
            stop = await s.submit("demo", BYBIT, "XRP-PERP", "sell", "stop", "100",
                                  trigger_price=D("0.5800"), reduce_only=True)
            gtd = await s.submit("demo", BYBIT, "XRP-PERP", "buy", "limit", "10", "0.5000",
                                 time_in_force=TimeInForce.GTD,
                                 expire_at=now() + timedelta(seconds=3))
            assert stop.status is OrderStatus.ACCEPTED and gtd.status is OrderStatus.ACCEPTED
        finally:
            await s.stop()

        s2 = Running(db_url, trading)
        await s2.start()
        try:
            st = s2.state
            venue = s2.system.engine.venues[BYBIT]
            assert venue.working(stop.order_id) is not None
            assert venue.working(gtd.order_id) is not None
            # A print below the trigger fires the stop into a fresh book.
            await s2.market(quote(BYBIT, "XRP-PERP", "0.5790", "0.5791", "1000"),
                            TradePrint(BYBIT, "XRP-PERP", D("0.5790"), D("5"), Side.SELL,
                                       now()))
            assert st.orders[stop.order_id].status is OrderStatus.FILLED
            assert st.orders[stop.order_id].triggered_at is not None
            assert st.positions[("demo", BYBIT, "XRP-PERP")].qty == 0
            await _wait_for(lambda: st.orders[gtd.order_id].status is OrderStatus.EXPIRED,
                            "the GTD expiry", timeout=10)
            assert venue.working(gtd.order_id) is None
            await s2.barrier()
        finally:
            await s2.stop()
        assert replay_file(db_url).comparable() == s2.state.comparable()

    run(body)


class CommitCrash(BaseException):
    """The process dies in the middle of a commit (not an error the bus can survive:
    those are RuntimeErrors and are retried, see tests/api/test_storage_outage.py)."""


def test_an_acknowledgement_never_shows_uncommitted_state(db_url: str) -> None:
    """What a caller is told when ``bus.execute`` returns must be durable.

    The order handler (app/api/orders.py place_order) renders its answer with the bus's
    ``respond`` hook. Here the market crosses the new order while its own batch is
    committing; the next batch (the fill) is handled before the caller resumes, and its
    commit never happens (the process dies). The caller must not have been told
    "filled": after the restart the order is only accepted.
    """
    async def body() -> None:
        s = Running(db_url)
        await s.start()
        crashed = False
        try:
            await s.market(quote(BYBIT, "SOL-PERP", "150.00", "150.01", "50"))
            real_commit = s.system.log.commit
            entered, release = threading.Event(), threading.Event()
            calls = 0

            async def commit(prepared: Any) -> tuple[int, int]:
                nonlocal calls
                calls += 1
                if calls == 1:  # the order's own batch: hold it in its commit a moment
                    entered.set()
                    await asyncio.to_thread(release.wait, STEP_TIMEOUT)
                    return await real_commit(prepared)
                raise CommitCrash("the process died during this commit")

            s.system.log.commit = commit  # type: ignore[method-assign]
            def respond(events: list[Any]) -> tuple[int, dict]:
                # Exactly how POST /api/v1/orders builds its answer: at commit time.
                order_id = next(e.order_id for e in events if type(e) is OrderSubmitted)
                return order_id, order_json(s.state.orders[order_id])

            submit = asyncio.ensure_future(asyncio.wait_for(s.system.bus.execute(
                SubmitOrder(order_spec("demo-2", BYBIT, "SOL-PERP", "buy", "limit", "0.5",
                                       "149.00", client_order_id="acked-1")),
                respond=respond), STEP_TIMEOUT))
            await _wait_for(entered.is_set, "the order's commit")
            s.system.on_market(quote(BYBIT, "SOL-PERP", "148.50", "148.60", "50"))
            release.set()
            order_id, acknowledged = (await submit).response
            crashed = True
        finally:
            if crashed:  # the bus task died with the failed commit; tidy up like a crash
                for task in (s.system.clock, s.system.housekeeping):
                    await task.stop()
                with contextlib.suppress(CommitCrash):
                    await s.system.bus.stop()
                s.system.db.dispose()
            else:
                await s.stop()

        s2 = Running(db_url)
        await s2.start()
        try:
            durable = order_json(s2.state.orders[order_id])
        finally:
            await s2.stop()
        assert OrderStatus(durable["status"]) in reachable_statuses(
            OrderStatus(acknowledged["status"])), (
            f"acknowledged {acknowledged['status']} (filled {acknowledged['filled_qty']}), "
            f"but after the restart it is {durable['status']} "
            f"(filled {durable['filled_qty']})")
        assert durable["filled_qty"] == acknowledged["filled_qty"]

    run(body)


def test_a_funding_print_is_not_settled_twice_across_a_restart(db_url: str) -> None:
    """The same settlement print (funding_at already past) delivered again is ignored,
    whether or not the server restarted in between (feeds re-send on reconnect)."""
    async def body() -> None:
        funding_at = now() - timedelta(seconds=5)

        def settlement() -> FundingRate:
            return FundingRate(BYBIT, "SOL-PERP", D("0.0001"), funding_at, now())

        s = Running(db_url)
        await s.start()
        try:
            await s.market(quote(BYBIT, "SOL-PERP", "150.00", "150.01", "50"),
                           MarkPrice(BYBIT, "SOL-PERP", D("150.00"), now()))
            await s.submit("demo", BYBIT, "SOL-PERP", "buy", "market", "0.5")
            await s.market(settlement())
            paid = s.state.accounts[("demo", BYBIT)].funding
            assert paid == D("-0.0075000")  # 0.5 × 150 × 0.0001, paid by the long
            await s.market(settlement())  # re-sent: already settled, ignored
            assert s.state.accounts[("demo", BYBIT)].funding == paid
        finally:
            await s.stop()

        s2 = Running(db_url)
        await s2.start()
        try:
            await s2.market(quote(BYBIT, "SOL-PERP", "150.00", "150.01", "50"),
                            MarkPrice(BYBIT, "SOL-PERP", D("150.00"), now()),
                            settlement())
            assert s2.state.accounts[("demo", BYBIT)].funding == paid, \
                "the print was settled a second time after the restart"
        finally:
            await s2.stop()

    run(body)


def test_a_crash_while_funding_a_new_database_still_funds_every_account(db_url: str) -> None:
    """The first start deposits the configured balances. If the process dies while
    doing it (here: the funding commit fails), the next start must still fund the
    accounts that got nothing, not treat the database as set up."""
    async def body() -> None:
        s = Running(db_url)
        real_commit = s.system.log.commit
        calls = 0

        async def commit(prepared: Any) -> tuple[int, int]:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise CommitCrash("the process died during this commit")
            return await real_commit(prepared)

        s.system.log.commit = commit  # type: ignore[method-assign]
        with pytest.raises((CommitCrash, StorageUnavailable)):
            await s.start()
        for task in (s.system.clock, s.system.housekeeping):
            await task.stop()
        with contextlib.suppress(CommitCrash, StorageUnavailable):
            await s.system.bus.stop()
        s.system.db.dispose()
        funded_before_crash = replay_file(db_url).accounts
        assert sum(a.deposits > 0 for a in funded_before_crash.values()) == 0

        s2 = Running(db_url)
        await s2.start()
        try:
            deposits = {k: a.deposits for k, a in s2.state.accounts.items()}
        finally:
            await s2.stop()
        assert deposits == {k: D(20000) for k in deposits}, deposits

    run(body)


def reachable_statuses(status: OrderStatus) -> set[OrderStatus]:
    """``status`` and every status an order can move to from it."""
    seen, todo = {status}, [status]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _latency_config() -> TradingConfig:
    trading = default_trading_config()
    for venue in trading.venues:
        venue.submit_latency_ms = 400
    return trading


async def _wait_for(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def test_orders_in_flight_at_shutdown_are_settled_on_restart(db_url: str) -> None:
    """With venue latency, a stop can leave an order not yet at the venue (NEW), a cancel
    in flight (PENDING_CANCEL) and a replace in flight (PENDING_REPLACE). Restarting
    sends the first, completes the other two, and the log still replays exactly."""
    trading = _latency_config()

    async def body() -> None:
        s = Running(db_url, trading)
        await s.start()
        try:
            await s.market(quote(BYBIT, "XRP-PERP", "0.6000", "0.6001", "1000"),
                           quote(BYBIT, "SOL-PERP", "150.00", "150.01", "50"))
            to_cancel = await s.submit("demo", BYBIT, "XRP-PERP", "buy", "limit", "20", "0.5800")
            to_replace = await s.submit("demo", BYBIT, "SOL-PERP", "buy", "limit", "0.2",
                                        "145.00", client_order_id="sol-r")
            await _wait_for(lambda: to_cancel.status is OrderStatus.ACCEPTED
                            and to_replace.status is OrderStatus.ACCEPTED, "acceptance")
            # Freeze the engine clock, so however slow this machine is, the requests
            # below are still in flight when the system stops.
            await s.system.clock.stop()
            await s.execute(CancelOrder(to_cancel.order_id))
            await s.execute(ReplaceOrder(to_replace.order_id, new_price=D("146.00")))
            unsent = await s.submit("demo", BYBIT, "XRP-PERP", "buy", "limit", "30", "0.5700")
            assert to_cancel.status is OrderStatus.PENDING_CANCEL
            assert to_replace.status is OrderStatus.PENDING_REPLACE
            assert unsent.status is OrderStatus.NEW
        finally:
            await s.stop()
        at_stop = copy.deepcopy(s.state.comparable())
        assert replay_file(db_url, trading).comparable() == at_stop

        s2 = Running(db_url, trading)
        await s2.start()
        try:
            st = s2.state
            assert st.orders[unsent.order_id].status is OrderStatus.ACCEPTED
            assert st.orders[to_cancel.order_id].status is OrderStatus.CANCELED
            original = st.orders[to_replace.order_id]
            assert original.status is OrderStatus.CANCELED
            assert original.replaced_by is not None
            successor = st.orders[original.replaced_by]
            assert successor.client_order_id == "sol-r-r1"  # bybit-v5: no '.' in ids
            assert successor.spec.price == D("146.00")
            await _wait_for(lambda: successor.status is OrderStatus.ACCEPTED, "the successor")
            venue = s2.system.engine.venues[BYBIT]
            assert venue.working(unsent.order_id) is not None
            assert venue.working(successor.order_id) is not None
            assert venue.working(to_cancel.order_id) is None
            assert not st.pending_replaces
            await s2.barrier()
        finally:
            await s2.stop()
        assert replay_file(db_url, trading).comparable() == s2.state.comparable()

    run(body)
