"""The durable event log on a real database file (SQLite here; the same tests run
against PostgreSQL from tests/integration/test_postgres_store.py).

An engine with paper venues is driven through a realistic session and every
batch of events is appended exactly as the command bus does it: ``append``
must hand out contiguous sequence numbers, ``replay`` must give back exactly
what was appended, the projection tables must equal the engine's own state,
and a failed append must leave nothing behind.

Every test takes only ``db_url`` (a fresh, empty database; not yet migrated) so
another module can re-run them on another backend by providing that fixture.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import Session, SQLModel, select

import app.store.event_log as event_log_module
import app.store.projections as projections_module
from app.defaults import VENUES, demo_instruments
from app.domain.commands import CancelOrder as Cancel
from app.domain.commands import (
    CloseAll,
    Command,
    Deposit,
    ReplaceOrder,
    SetTradingState,
    SubmitOrder,
    Withdraw,
)
from app.domain.events import (
    CloseAllCompleted,
    Event,
    FundingApplied,
    FundsDeposited,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderTriggered,
    TradeClosed,
    TradingStateChanged,
)
from app.domain.market import FundingRate, MarketUpdate, MarkPrice, Quote, TradePrint
from app.domain.orders import OrderSpec, OrderStatus, OrderType, Side, TimeInForce
from app.domain.trading_state import Scope, TradingState
from app.engine.engine import AccountSetup, Engine, EngineConfig
from app.engine.state import EngineState
from app.store.bulk import StatementBatch
from app.store.event_log import EventLog, make_db_engine
from app.store.migrate import alembic_config, upgrade
from app.store.tables import (
    AuditRow,
    BalanceRow,
    ClosedTradeRow,
    EventRow,
    FillRow,
    OrderRow,
    PositionRow,
    TradingStateRow,
)
from app.venues.paper.venue import PaperVenue

D = Decimal
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
BINANCE, BYBIT = VENUES
CLIENTS = ("demo", "demo-2")
LEVERAGE = D(5)
PROJECTION_TABLES = (EventRow, OrderRow, FillRow, PositionRow, BalanceRow, ClosedTradeRow,
                     TradingStateRow, AuditRow)


# ---- fixtures and helpers (shared with the PostgreSQL and recovery tests) --------------


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A fresh SQLite database file (WAL, as the server uses it)."""
    return f"sqlite:///{tmp_path / 'events.db'}"


@contextmanager
def open_log(url: str) -> Iterator[EventLog]:
    """Migrate ``url`` and open an event log on it; the engine is disposed afterwards."""
    upgrade(url)
    db = make_db_engine(url)
    try:
        yield EventLog(db)
    finally:
        db.dispose()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def build_engine() -> Engine:
    """Both demo venues, the four demo perps on each, demo and demo-2 at 5x, no limits."""
    accounts = [AccountSetup(c, v, LEVERAGE) for c in CLIENTS for v in VENUES]
    venues = {v: PaperVenue(v) for v in VENUES}
    return Engine(EngineConfig(demo_instruments(), accounts), venues)  # type: ignore[arg-type]


def fresh_state() -> EngineState:
    """An empty state with the accounts the configuration creates (nothing else)."""
    return build_engine().state


def replayed(events: list[Event]) -> EngineState:
    state = fresh_state()
    for e in events:
        state.apply(e)
    return state


def spec(client: str, venue: str, symbol: str, side: str, type_: str, qty: str,
         price: str | None = None, **kw: Any) -> OrderSpec:
    return OrderSpec(client=client, venue=venue, symbol=symbol, side=Side(side),
                     type=OrderType(type_), qty=D(qty), price=None if price is None else D(price),
                     **kw)


@dataclass
class Driver:
    """Runs an engine and appends every batch of events, like the command bus."""

    log: EventLog
    engine: Engine = field(default_factory=build_engine)
    batches: list[tuple[int, int, list[Event]]] = field(default_factory=list)

    @property
    def events(self) -> list[Event]:
        return [e for _, _, batch in self.batches for e in batch]

    def do(self, command: Command, seconds: float) -> list[Event]:
        return self._commit(self.engine.handle(command, at(seconds)))

    def market(self, update: MarketUpdate) -> list[Event]:
        return self._commit(self.engine.on_market(update, update.ts))

    def advance(self, seconds: float) -> list[Event]:
        return self._commit(self.engine.advance(at(seconds)))

    def submit(self, seconds: float, *args: Any, **kw: Any) -> int:
        """Submit an order; return its id."""
        events = self.do(SubmitOrder(spec(*args, **kw)), seconds)
        return events[0].order_id  # type: ignore[union-attr]

    def _commit(self, events: list[Event]) -> list[Event]:
        if events:
            first, last = self.log.append(events, self.engine.state)
            self.batches.append((first, last, events))
        return events


def quote(venue: str, symbol: str, bid: str, ask: str, size: str, seconds: float) -> Quote:
    return Quote(venue, symbol, D(bid), D(size), D(ask), D(size), at(seconds))


def run_session(log: EventLog) -> tuple[Driver, dict[str, int]]:
    """A realistic session: cash, quotes, market and limit orders, partial and full fills,
    a cancel, a replace, a rejection, a GTD expiry, a stop trigger, funding, kill
    switches and a close-all. Returns the driver and the named order ids."""
    d = Driver(log)
    ids: dict[str, int] = {}
    d.do(Deposit("demo", BINANCE, D("20000")), 0)
    d.do(Deposit("demo", BYBIT, D("5000")), 0)
    d.do(Deposit("demo-2", BINANCE, D("10000")), 0)
    d.do(Deposit("demo-2", BYBIT, D("10000.5")), 0)
    d.do(Withdraw("demo", BYBIT, D("1000.25")), 0.5)

    d.market(quote(BINANCE, "BTC-PERP", "60000.0", "60000.1", "0.5", 1))
    d.market(quote(BINANCE, "ETH-PERP", "3000.00", "3000.01", "1", 1))
    d.market(quote(BYBIT, "BTC-PERP", "60001.0", "60001.5", "2", 1))
    d.market(MarkPrice(BINANCE, "BTC-PERP", D("60000.05"), at(1)))

    # Walks two levels: 0.5 at the touch, 0.5 one tick behind it.
    ids["btc_buy"] = d.submit(2, "demo", BINANCE, "BTC-PERP", "buy", "market", "1.0")
    ids["btc_tp"] = d.submit(3, "demo", BINANCE, "BTC-PERP", "sell", "limit", "0.4", "60100.0")
    ids["btc_bid"] = d.submit(3, "demo", BINANCE, "BTC-PERP", "buy", "limit", "0.2", "59900.0")
    ids["btc_far"] = d.submit(3, "demo", BINANCE, "BTC-PERP", "buy", "limit", "0.1", "59000.0",
                              client_order_id="far-1")
    ids["eth_bid"] = d.submit(3, "demo-2", BINANCE, "ETH-PERP", "buy", "limit", "2", "2990.00")
    ids["eth_ask"] = d.submit(3, "demo-2", BINANCE, "ETH-PERP", "sell", "limit", "1", "3010.00",
                              client_order_id="eth-s")
    ids["eth_gtd"] = d.submit(3, "demo-2", BINANCE, "ETH-PERP", "buy", "limit", "0.5", "2900.00",
                              time_in_force=TimeInForce.GTD, expire_at=at(7.5))
    ids["bybit_short"] = d.submit(3, "demo-2", BYBIT, "BTC-PERP", "sell", "market", "0.5")
    ids["post_only"] = d.submit(3.5, "demo", BINANCE, "ETH-PERP", "buy", "limit", "0.1",
                                "3000.01", post_only=True)

    d.do(Cancel(ids["btc_bid"], reason="changed my mind"), 4)
    d.do(ReplaceOrder(ids["eth_ask"], new_price=D("3005.00")), 4)
    ids["eth_ask_r1"] = d.engine.state.orders[ids["eth_ask"]].replaced_by  # type: ignore[assignment]

    # The bid moves onto the resting sell: it fills as maker at its own price.
    d.market(quote(BINANCE, "BTC-PERP", "60100.0", "60100.1", "0.5", 5))
    # The ask drops through the resting ETH bid: it fills as maker.
    d.market(quote(BINANCE, "ETH-PERP", "2989.00", "2989.50", "1", 5))
    # A print through the replaced ETH sell fills it completely.
    d.market(TradePrint(BINANCE, "ETH-PERP", D("3006.00"), D("5"), Side.BUY, at(5.5)))
    # A stop on what is left of demo-2's ETH long, triggered by a print below it.
    ids["eth_stop"] = d.submit(5.6, "demo-2", BINANCE, "ETH-PERP", "sell", "stop", "0.5",
                               trigger_price=D("2950.00"), reduce_only=True)
    d.market(TradePrint(BINANCE, "ETH-PERP", D("2949.00"), D("0.1"), Side.SELL, at(5.7)))

    # Settlement prints (funding_at already past): applied at once.
    d.market(FundingRate(BINANCE, "BTC-PERP", D("0.0001"), at(5), at(6)))
    d.market(FundingRate(BYBIT, "BTC-PERP", D("-0.0002"), at(5), at(6)))

    d.do(SetTradingState(Scope(None, BYBIT), TradingState.HALTED, "maintenance", "ops"), 7)
    d.advance(8)  # the GTD bid expires
    d.do(SetTradingState(Scope(None, BYBIT), TradingState.ACTIVE, "done", "ops"), 8.5)
    d.do(SetTradingState(Scope("demo-2", BINANCE), TradingState.REDUCE_ONLY, "limit", "risk"),
         8.6)
    d.do(CloseAll(Scope("demo", None), "end of day", "ops"), 9)
    return d, ids


def table_rows(db: sa.Engine, model: type[SQLModel]) -> list[dict[str, Any]]:
    with Session(db) as session:
        return [row.model_dump() for row in session.exec(select(model))]


def snapshot(db: sa.Engine) -> dict[str, list[dict[str, Any]]]:
    return {m.__tablename__: sorted(table_rows(db, m), key=repr)  # type: ignore[attr-defined]
            for m in PROJECTION_TABLES}


def assert_projections_match(db: sa.Engine, state: EngineState, events: list[Event]) -> None:
    """Every projection table equals what the engine state (and the fills) say."""
    orders = {r["order_id"]: r for r in table_rows(db, OrderRow)}
    assert set(orders) == set(state.orders)
    for oid, o in state.orders.items():
        r, s = orders[oid], o.spec
        assert r == {
            "order_id": oid, "client": s.client, "venue": s.venue, "symbol": s.symbol,
            "client_order_id": o.client_order_id, "side": s.side.value, "type": s.type.value,
            "status": o.status.value, "qty": s.qty, "price": s.price,
            "trigger_price": s.trigger_price, "time_in_force": s.time_in_force.value,
            "post_only": s.post_only, "reduce_only": s.reduce_only,
            "filled_qty": o.filled_qty, "avg_fill_price": o.avg_fill_price, "fees": o.fees,
            "reject_code": o.reject_code, "reject_message": o.reject_message,
            "cancel_reason": o.cancel_reason, "replaces": o.replaces,
            "replaced_by": o.replaced_by, "created_at": o.created_at,
            "updated_at": o.updated_at or o.created_at,
            "trigger_source": s.trigger_source.value, "expire_at": s.expire_at,
            "strategy": s.tags.strategy, "callback_rate": s.callback_rate,
            "activation_price": s.activation_price, "close_position": s.close_position,
        }, f"order {oid}"

    fills = sorted(table_rows(db, FillRow), key=lambda r: r["fill_id"])
    expected_fills = [e for e in events if type(e) is OrderFilled]
    assert [r["fill_id"] for r in fills] == [e.fill_id for e in expected_fills]
    for r, e in zip(fills, expected_fills, strict=True):
        assert r == {"fill_id": e.fill_id, "order_id": e.order_id, "client": e.client,
                     "venue": e.venue, "symbol": e.symbol, "side": e.side.value, "qty": e.qty,
                     "price": e.price, "fee": e.fee, "liquidity": e.liquidity.value,
                     "at": e.at}

    positions = {(r["client"], r["venue"], r["symbol"]): r for r in table_rows(db, PositionRow)}
    assert set(positions) == set(state.positions)
    for key, p in state.positions.items():
        assert positions[key] == {
            "client": key[0], "venue": key[1], "symbol": key[2], "qty": p.qty,
            "avg_entry": p.avg_entry, "realized_pnl": p.realized_pnl, "fees": p.fees,
            "funding": p.funding, "opened_at": p.opened_at}, f"position {key}"

    balances = {(r["client"], r["venue"]): r for r in table_rows(db, BalanceRow)}
    touched = {k for k, a in state.accounts.items() if a.deposits}
    assert set(balances) == touched
    for key in touched:
        a = state.accounts[key]
        assert balances[key] == {
            "client": a.client, "venue": a.venue, "deposits": a.deposits,
            "withdrawals": a.withdrawals, "realized_pnl": a.realized_pnl, "fees": a.fees,
            "funding": a.funding, "wallet": a.wallet}, f"balance {key}"

    trades = sorted(table_rows(db, ClosedTradeRow), key=lambda r: (r["closed_at"], r["trade_id"]))
    expected_trades = sorted(state.closed_trades, key=lambda t: (t.closed_at, t.trade_id))
    assert [r["trade_id"] for r in trades] == [t.trade_id for t in expected_trades]
    for r, t in zip(trades, expected_trades, strict=True):
        assert r == {name: getattr(t, name) for name in r}, f"trade {t.trade_id}"

    rows = table_rows(db, TradingStateRow)
    in_force = {Scope(r["scope_client"] or None, r["scope_venue"] or None):
                TradingState(r["state"]) for r in rows}
    assert {s: v for s, v in in_force.items() if v is not TradingState.ACTIVE} == \
        state.trading_states
    last_change = {}
    for e in events:
        if type(e) is TradingStateChanged:
            last_change[e.scope] = e
    assert set(in_force) == set(last_change)
    for r in rows:
        e = last_change[Scope(r["scope_client"] or None, r["scope_venue"] or None)]
        assert (r["state"], r["reason"], r["actor"], r["updated_at"]) == (
            e.state.value, e.reason, e.actor, e.at)


def expected_client(event: Event, state: EngineState) -> str | None:
    """Which client an event concerns (what scoped reads filter on). Kill-switch and
    close-all events concern their scope's client (None: every client, e.g. global)."""
    scope = getattr(event, "scope", None)
    if scope is not None:
        return scope.client
    s = getattr(event, "spec", None)
    if s is not None:
        return s.client
    trade = getattr(event, "trade", None)
    if trade is not None:
        return trade.client
    client = getattr(event, "client", None)
    if client is not None:
        return client
    order_id = getattr(event, "order_id", None)
    if order_id is not None:
        return state.orders[order_id].spec.client
    return None


# ---- tests ---------------------------------------------------------------------------


def test_session_did_what_it_says(db_url: str) -> None:
    """Guard for the tests below: the session really exercises every kind of event."""
    with open_log(db_url) as log:
        d, ids = run_session(log)
    orders = d.engine.state.orders
    kinds = {type(e) for e in d.events}
    for kind in (FundsDeposited, OrderFilled, OrderRejected, OrderExpired, OrderTriggered,
                 FundingApplied, TradeClosed, TradingStateChanged, CloseAllCompleted):
        assert kind in kinds, kind.__name__
    assert orders[ids["btc_buy"]].status is OrderStatus.FILLED
    assert [e.qty for e in d.events if type(e) is OrderFilled
            and e.order_id == ids["btc_buy"]] == [D("0.5"), D("0.5")]
    assert orders[ids["btc_tp"]].status is OrderStatus.FILLED
    assert orders[ids["btc_bid"]].status is OrderStatus.CANCELED
    # Close-all's reduce-only switch cancels the bid that could add exposure.
    assert orders[ids["btc_far"]].status is OrderStatus.CANCELED
    assert orders[ids["btc_far"]].cancel_reason == "trading state reduce_only"
    assert orders[ids["eth_bid"]].status is OrderStatus.FILLED
    assert orders[ids["eth_ask"]].status is OrderStatus.CANCELED
    assert orders[ids["eth_ask_r1"]].client_order_id == "eth-s.r1"
    assert orders[ids["eth_ask_r1"]].status is OrderStatus.FILLED
    assert orders[ids["eth_gtd"]].status is OrderStatus.EXPIRED
    assert orders[ids["post_only"]].reject_code == "POST_ONLY_WOULD_CROSS"
    assert orders[ids["eth_stop"]].status is OrderStatus.FILLED
    state = d.engine.state
    assert state.positions[("demo", BINANCE, "BTC-PERP")].qty == 0  # flattened
    assert state.positions[("demo-2", BYBIT, "BTC-PERP")].qty == D("-0.5")
    assert state.positions[("demo-2", BINANCE, "ETH-PERP")].qty == D("0.5")
    assert len([e for e in d.events if type(e) is FundingApplied]) == 2
    assert state.trading_states == {Scope("demo", None): TradingState.REDUCE_ONLY,
                                    Scope("demo-2", BINANCE): TradingState.REDUCE_ONLY}


def test_append_returns_contiguous_sequence_numbers(db_url: str) -> None:
    with open_log(db_url) as log:
        assert log.last_seq() == 0
        d, _ = run_session(log)
        expected_first = 1
        for first, last, events in d.batches:
            assert (first, last) == (expected_first, expected_first + len(events) - 1)
            expected_first = last + 1
        assert log.last_seq() == len(d.events) == expected_first - 1
        assert log.append([], d.engine.state) == (0, 0)
        assert log.last_seq() == len(d.events)
        # Each batch's rows carry that batch's events, in order, at those numbers.
        rows = log.read()
        assert [r.seq for r in rows] == list(range(1, len(d.events) + 1))
        for first, last, events in d.batches:
            batch_rows = rows[first - 1:last]
            assert [r.type for r in batch_rows] == [type(e).__name__ for e in events]


def test_replay_returns_exactly_what_was_appended(db_url: str) -> None:
    with open_log(db_url) as log:
        d, _ = run_session(log)
        assert list(log.replay()) == d.events
        assert list(log.replay(batch=7)) == d.events  # paging changes nothing
        assert [r.seq for r in log.read(after=10, limit=5)] == [11, 12, 13, 14, 15]
        assert log.read(after=log.last_seq()) == []
    # A brand-new connection (nothing cached) reads the same thing.
    db = make_db_engine(db_url)
    try:
        assert list(EventLog(db).replay()) == d.events
    finally:
        db.dispose()


def test_replaying_the_log_rebuilds_the_live_state(db_url: str) -> None:
    with open_log(db_url) as log:
        d, _ = run_session(log)
        rebuilt = replayed(list(log.replay()))
    assert rebuilt.comparable() == d.engine.state.comparable()


SCOPED_EVENTS = (TradingStateChanged, CloseAllCompleted)


def test_rows_are_scoped_to_the_client_they_concern(db_url: str) -> None:
    """Order, fill, cash and trade rows carry their client (scoped reads filter on it)."""
    with open_log(db_url) as log:
        d, _ = run_session(log)
        state = d.engine.state
        rows = log.read()
        for row, event in zip(rows, d.events, strict=True):
            assert row.order_id == getattr(event, "order_id", None)
            if type(event) not in SCOPED_EVENTS:
                assert row.client == expected_client(event, state), row.type
        for client in CLIENTS:
            mine = [e for e in d.events if expected_client(e, state) == client
                    and type(e) not in SCOPED_EVENTS]
            assert mine
            got = [r.payload for r in log.read(client=client) if r.type not in
                   {k.__name__ for k in SCOPED_EVENTS}]
            assert got == [event_log_module.encode_event(e)[1] for e in mine]


def test_kill_switch_and_close_all_rows_are_scoped_to_their_client(db_url: str) -> None:
    """A client's kill switch and close-all report (which lists that client's positions)
    belong to that client: a reader scoped to another client must not get them, and
    only global-scope rows may be unscoped."""
    with open_log(db_url) as log:
        d, _ = run_session(log)
        scoped = [(row, e) for row, e in zip(log.read(), d.events, strict=True)
                  if type(e) in SCOPED_EVENTS]
        assert any(e.scope.client == "demo" for _, e in scoped)  # close-all for demo
        wrong = [(row.seq, row.type, row.client, e.scope) for row, e in scoped
                 if (row.client, row.venue) != (e.scope.client, e.scope.venue)]
        assert not wrong, f"rows not scoped to their client/venue: {wrong}"


def test_projections_match_the_engine_state(db_url: str) -> None:
    with open_log(db_url) as log:
        d, _ = run_session(log)
        assert_projections_match(log.db, d.engine.state, d.events)
        # And every projection equals the one a replay of the log would write.
        assert_projections_match(log.db, replayed(list(log.replay())), d.events)


def test_projections_match_after_every_batch(db_url: str) -> None:
    """Projections are exact at every commit, not only at the end."""
    with open_log(db_url) as log:
        d = Driver(log)
        original = d._commit

        def checked(events: list[Event]) -> list[Event]:
            out = original(events)
            assert_projections_match(log.db, d.engine.state, d.events)
            return out

        d._commit = checked  # type: ignore[method-assign]
        d.do(Deposit("demo", BINANCE, D(1000)), 0)
        d.do(Deposit("demo-2", BINANCE, D(1000)), 0)
        d.market(quote(BINANCE, "SOL-PERP", "150.00", "150.01", "3", 1))
        oid = d.submit(2, "demo", BINANCE, "SOL-PERP", "buy", "limit", "2", "149.50")
        d.submit(2, "demo-2", BINANCE, "SOL-PERP", "sell", "market", "4")
        d.market(quote(BINANCE, "SOL-PERP", "149.40", "149.50", "1", 3))  # 1 of 2 fills
        assert d.engine.state.orders[oid].status is OrderStatus.PARTIALLY_FILLED
        d.market(quote(BINANCE, "SOL-PERP", "148.00", "148.10", "5", 4))
        assert d.engine.state.orders[oid].status is OrderStatus.FILLED
        d.submit(5, "demo", BINANCE, "SOL-PERP", "sell", "market", "2")
        assert len(d.engine.state.closed_trades) == 1


class Boom(RuntimeError):
    pass


def _break_mid_projection(monkeypatch: pytest.MonkeyPatch) -> None:
    """The events and the first projection tables are written, then a statement fails."""

    def broken(self: StatementBatch, conn: Any) -> None:
        assert len(self.statements) > 3
        for sql, rows in self.statements[:3]:
            conn.exec_driver_sql(sql, rows)
        raise Boom("projection failed")

    monkeypatch.setattr(StatementBatch, "execute", broken)


def _break_after_projection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Everything is projected and written to the database, then the commit never comes."""
    real = StatementBatch.execute

    def broken(self: StatementBatch, conn: Any) -> None:
        real(self, conn)
        raise Boom("failed just before commit")

    monkeypatch.setattr(StatementBatch, "execute", broken)


def _append_from_the_event_loop(log: EventLog, events: list[Event], state: EngineState,
                                audit: list[AuditRow]) -> tuple[int, int]:
    # How the command bus appends: prepare on its thread, then ``await commit``.
    return asyncio.run(log.commit(log.prepare(events, state, audit)))


@pytest.mark.parametrize("append", [EventLog.append, _append_from_the_event_loop],
                         ids=["append", "commit"])
@pytest.mark.parametrize("breakage", [_break_mid_projection, _break_after_projection],
                         ids=["mid-projection", "after-projection"])
def test_failed_append_leaves_nothing_behind(db_url: str, monkeypatch: pytest.MonkeyPatch,
                                             breakage: Any, append: Any) -> None:
    with open_log(db_url) as log:
        d, _ = run_session(log)
        before = snapshot(log.db)
        last_before = log.last_seq()
        engine = d.engine
        # A batch touching every projection: a deposit, a fill that closes a trade,
        # a kill switch, and an audit row.
        events = engine.handle(Deposit("demo-2", BYBIT, D(5)), at(20))
        events += engine.handle(SubmitOrder(spec("demo-2", BYBIT, "BTC-PERP", "buy",
                                                 "market", "0.5")), at(20))
        events += engine.handle(SetTradingState(Scope(), TradingState.HALTED, "x", "y"),
                                at(20))
        assert {type(e) for e in events} >= {FundsDeposited, OrderFilled, TradeClosed,
                                            TradingStateChanged}
        audit = [AuditRow(at=at(20), actor="y", action="halt", scope="global", reason="x")]
        breakage(monkeypatch)
        with pytest.raises(Boom):
            append(log, events, engine.state, audit)
        monkeypatch.undo()

        assert log.last_seq() == last_before
        assert snapshot(log.db) == before
        assert list(log.replay()) == d.events

        # The log is not poisoned: the next append works and only it is visible.
        later = [FundsDeposited("demo", BINANCE, D(1), at(21))]
        engine.state.apply(later[0])
        first, last = append(log, later, engine.state, [])
        assert first == last > last_before
        assert list(log.replay()) == d.events + later


def test_audit_rows_commit_with_the_events(db_url: str) -> None:
    with open_log(db_url) as log:
        engine = build_engine()
        events = engine.handle(Deposit("demo", BINANCE, D(10)), at(0))
        audit = [AuditRow(at=at(0), actor="alice", action="deposit", scope="client demo",
                          reason="seed", details={"amount": "10"})]
        assert log.append(events, engine.state, audit) == (1, 1)
        assert log.append([], engine.state, [AuditRow(at=at(1), actor="bob", action="noop",
                                                      scope="global", reason="r")]) == (0, 0)
        rows = sorted(table_rows(log.db, AuditRow), key=lambda r: r["id"])
        assert [(r["actor"], r["details"], r["at"]) for r in rows] == [
            ("alice", {"amount": "10"}, at(0)), ("bob", {}, at(1))]


def test_decimals_and_timestamps_are_stored_exactly(db_url: str) -> None:
    """No float column anywhere: 28-digit averages and microseconds come back exactly."""
    with open_log(db_url) as log:
        d = Driver(log)
        d.do(Deposit("demo", BINANCE, D("20000.00000001")), 0)
        d.market(quote(BINANCE, "XRP-PERP", "0.6000", "0.6001", "100", 1))
        oid = d.submit(1.000001, "demo", BINANCE, "XRP-PERP", "buy", "market", "300.0")
        order = d.engine.state.orders[oid]
        assert order.avg_fill_price is not None
        assert len(str(order.avg_fill_price)) > 20  # a long, inexact-in-binary average
        row = table_rows(log.db, OrderRow)[0]
        assert row["avg_fill_price"] == order.avg_fill_price
        assert row["created_at"] == at(1.000001)
        assert row["created_at"].utcoffset() == timedelta(0)
        (balance,) = table_rows(log.db, BalanceRow)
        assert balance["deposits"] == D("20000.00000001")
        assert balance["wallet"] == d.engine.state.accounts[("demo", BINANCE)].wallet


def test_migrations_match_the_models(db_url: str) -> None:
    """Alembic's head schema is exactly what the SQLModel tables declare (no drift)."""
    upgrade(db_url)
    db = make_db_engine(db_url)
    try:
        with db.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, SQLModel.metadata) == []
    finally:
        db.dispose()


def test_alembic_upgrade_is_idempotent(db_url: str) -> None:
    head = ScriptDirectory.from_config(alembic_config(db_url)).get_current_head()
    upgrade(db_url)
    upgrade(db_url)
    db = make_db_engine(db_url)
    try:
        with db.connect() as conn:
            versions = [r[0] for r in conn.execute(sa.text("SELECT version_num "
                                                           "FROM alembic_version"))]
        assert versions == [head]
        inspector = sa.inspect(db)
        tables = set(inspector.get_table_names())
        assert set(SQLModel.metadata.tables) <= tables
        for name, table in SQLModel.metadata.tables.items():
            columns = {c["name"] for c in inspector.get_columns(name)}
            assert columns == {c.name for c in table.columns}, name

        # Data written between upgrades survives another upgrade.
        log = EventLog(db)
        engine = build_engine()
        events = engine.handle(Deposit("demo", BINANCE, D(7)), at(0))
        log.append(events, engine.state)
        upgrade(db_url)
        assert list(log.replay()) == events
        with db.connect() as conn:
            versions = [r[0] for r in conn.execute(sa.text("SELECT version_num "
                                                           "FROM alembic_version"))]
        assert versions == [head]
    finally:
        db.dispose()


@pytest.mark.parametrize("table, columns", [
    (EventRow, event_log_module.EVENT_COLUMNS),
    (AuditRow, ("id", *event_log_module.AUDIT_COLUMNS)),  # id: the database numbers them
    (OrderRow, projections_module.ORDER_COLUMNS),
    (FillRow, projections_module.FILL_COLUMNS),
    (PositionRow, projections_module.POSITION_COLUMNS),
    (ClosedTradeRow, projections_module.TRADE_COLUMNS),
    (BalanceRow, projections_module.BALANCE_COLUMNS),
    (TradingStateRow, projections_module.STATE_COLUMNS),
], ids=lambda v: getattr(v, "__tablename__", ""))
def test_bulk_writes_name_every_column_of_their_table(table: Any, columns: tuple) -> None:
    # The commit path writes rows as plain tuples; a column added to a table must be
    # added to its tuple too (or the projection silently leaves it at its default).
    assert sorted(columns) == sorted(c.name for c in table.__table__.columns)
    assert len(set(columns)) == len(columns)
