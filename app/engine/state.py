"""Engine state, changed only by ``EngineState.apply(event)``.

The live engine decides, emits an event and applies it; a replay applies
the stored events in order. Both paths run this code, which is why replay
rebuilds the live state exactly.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right, insort
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar, cast

from app.domain.accounts import Account, AccountKey
from app.domain.arbitrage import ArbBook, ArbTradeUpdated, LegOutDetected
from app.domain.events import (
    CloseAllCompleted,
    Event,
    FundingApplied,
    FundingRateMissing,
    FundingSettled,
    FundsDeposited,
    FundsWithdrawn,
    LeverageChanged,
    OrderAccepted,
    OrderAmended,
    OrderAmendRejected,
    OrderAmendRequested,
    OrderCanceled,
    OrderCancelRejected,
    OrderCancelRequested,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderReplaceRequested,
    OrderSubmitted,
    OrderTriggered,
    PositionLiquidated,
    TradeClosed,
    TradingStateChanged,
)
from app.domain.orders import Order, OrderSpec, OrderStatus, OrderType
from app.domain.positions import ClosedTrade, FillOutcome, Position
from app.domain.risk import (
    Breaker,
    BreakerReset,
    BreakerTripped,
    ClientRiskState,
    MarginWindowChanged,
    MarginWindowWarning,
    OrderSizedDown,
    RiskProfile,
    RiskProfileChanged,
    RiskStateRecorded,
)
from app.domain.signals import (
    Bracket,
    BracketClosed,
    BracketLegsPlaced,
    BracketOpened,
    SignalParams,
    SignalParamsChanged,
    SignalReceived,
    SignalRecord,
    SignalResolved,
)
from app.domain.strategies import (
    SavedBar,
    StrategyBarsRecorded,
    StrategyConfigured,
    StrategyCreated,
    StrategyRecord,
    StrategyStarted,
    StrategyStatus,
    StrategyStopped,
)
from app.domain.trading_state import Scope, TradingState
from app.engine.resting import RestingBook
from app.engine.retention import (
    DEFAULT_RETAIN_FINISHED,
    DEFAULT_RETAIN_TRADES,
    EvictedIds,
)

PositionKey = tuple[str, str, str]  # (client, venue, symbol)
# Signals kept in memory (with their brackets); older ones are in the event log.
DEFAULT_RETAIN_SIGNALS = 20_000


@dataclass(frozen=True, slots=True)
class PendingReplace:
    new_order_id: int
    spec: OrderSpec
    qty_from_remaining: bool = False


@dataclass
class EngineState:
    accounts: dict[AccountKey, Account] = field(default_factory=dict)
    positions: dict[PositionKey, Position] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)
    by_client_order_id: dict[tuple[str, str, str], int] = field(default_factory=dict)
    # Every order id of a client, ascending: a client's blotter pages from any cursor
    # without walking other clients' orders.
    order_ids_by_client: dict[str, list[int]] = field(default_factory=dict)
    # Open orders per account, and per account, symbol and side with running totals
    # (for margin and limit checks without a scan).
    open_orders: dict[AccountKey, dict[int, Order]] = field(default_factory=dict)
    resting: RestingBook = field(default_factory=RestingBook)
    pending_replaces: dict[int, PendingReplace] = field(default_factory=dict)
    trading_states: dict[Scope, TradingState] = field(default_factory=dict)
    closed_trades: list[ClosedTrade] = field(default_factory=list)
    # The same trades per client (oldest first) and each client's (trades, wins): a
    # client's exits and win rate without walking everybody's history.
    closed_trades_by_client: dict[str, list[ClosedTrade]] = field(default_factory=dict)
    trade_counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    # (venue, symbol) -> the latest funding time already settled
    funding_settled: dict[tuple[str, str], datetime] = field(default_factory=dict)
    # Funding instants reported without a rate: the positions and mark at the instant,
    # waiting for a late rate to charge exactly them.
    funding_unpriced: dict[tuple[str, str, datetime], FundingRateMissing] = field(
        default_factory=dict)
    # Strategies on the host, by id: what they are and whether they run.
    strategies: dict[str, StrategyRecord] = field(default_factory=dict)
    # Bumped by every change to ``strategies``: the strategy host re-reads them only
    # when it moved (not part of what defines the state).
    strategies_version: int = 0
    # Funding-rate arbitrage (app/domain/arbitrage.py): each arbitrage strategy's
    # trades, leg-outs and totals, by strategy id.
    arb: dict[str, ArbBook] = field(default_factory=dict)
    # The latest closed bars of each strategy, per (symbol, interval in seconds): what
    # a restart feeds its indicators again (bounded: KEPT_BARS each).
    strategy_bars: dict[str, dict[tuple[str, int], deque[SavedBar]]] = field(
        default_factory=dict)
    # What each strategy's own fills realized and paid in fees, by strategy id (its
    # orders carry its id): P&L per strategy, whoever else trades the account.
    strategy_pnl: dict[str, StrategyPnl] = field(default_factory=dict)
    # Risk controls (app/domain/risk.py): each client's profile, and what its
    # breakers track.
    risk_profiles: dict[str, RiskProfile] = field(default_factory=dict)
    risk: dict[str, ClientRiskState] = field(default_factory=dict)
    # The margin window in force per venue (by name; absent: none), as last recorded.
    margin_windows: dict[str, str | None] = field(default_factory=dict)
    # Signals (app/domain/signals.py): the newest ``retain_signals`` by id, oldest
    # first in ``signal_order``; each client's parameters set by an operator; the OCO
    # brackets by id (the entry's order id), with the open ones indexed by the orders
    # they hold and by position; positions whose brackets need looking at.
    signals: dict[str, SignalRecord] = field(default_factory=dict)
    signal_order: deque[str] = field(default_factory=deque)
    signal_seq: int = 0
    retain_signals: int = DEFAULT_RETAIN_SIGNALS
    signal_params: dict[str, SignalParams] = field(default_factory=dict)
    brackets: dict[int, Bracket] = field(default_factory=dict)
    bracket_of_order: dict[int, int] = field(default_factory=dict)
    brackets_by_key: dict[PositionKey, set[int]] = field(default_factory=dict)
    bracket_dirty: set[PositionKey] = field(default_factory=set)
    last_order_id: int = 0
    last_fill_id: int = 0
    # Bounded memory (app/engine/retention.py): finished orders, oldest first, of which
    # the newest ``retain_finished`` stay; the keys of those that left; how many left.
    retain_finished: int = DEFAULT_RETAIN_FINISHED
    retain_trades: int = DEFAULT_RETAIN_TRADES
    finished: deque[int] = field(default_factory=deque)
    evicted_ids: EvictedIds = field(default_factory=EvictedIds)
    evicted_orders: int = 0

    # ---- reading ----------------------------------------------------------

    def account(self, client: str, venue: str) -> Account | None:
        return self.accounts.get((client, venue))

    def position(self, client: str, venue: str, symbol: str) -> Position:
        key = (client, venue, symbol)
        pos = self.positions.get(key)
        if pos is None:
            pos = self.positions[key] = Position(client, venue, symbol)
        return pos

    def order_by_client_id(self, client: str, venue: str, coid: str) -> Order | None:
        order_id = self.by_client_order_id.get((client, venue, coid))
        return None if order_id is None else self.orders[order_id]

    def may_have_evicted(self, client: str, venue: str, coid: str) -> bool:
        """Might an order with this client order id have left memory? (No: certain.)"""
        return self.evicted_ids.may_contain((client, venue, coid))

    @property
    def oldest_retained_id(self) -> int:
        """Every finished order with an id below this may have left memory."""
        return self.finished[0] if self.finished else self.last_order_id + 1

    def order_ids_newest_first(self, clients: Iterable[str], start: int) -> Iterator[int]:
        """The order ids of ``clients`` at or below ``start``, newest first, from each
        client's own index: nothing of other clients' history is walked."""
        streams = []
        for client in clients:
            ids = self.order_ids_by_client.get(client)
            if ids:
                streams.append(_descending(ids, bisect_right(ids, start)))
        if len(streams) == 1:
            return streams[0]
        return heapq.merge(*streams, reverse=True)

    def comparable(self) -> dict[str, Any]:
        """Everything that defines the state, for replay-equality checks."""
        return {
            "accounts": self.accounts,
            "positions": {k: p for k, p in self.positions.items()},
            "orders": self.orders,
            "by_client_order_id": self.by_client_order_id,
            "open_orders": {k: sorted(v) for k, v in self.open_orders.items() if v},
            "pending_replaces": self.pending_replaces,
            "trading_states": {k: v for k, v in self.trading_states.items()},
            "closed_trades": self.closed_trades,
            "funding_settled": self.funding_settled,
            "last_order_id": self.last_order_id,
            "last_fill_id": self.last_fill_id,
            "strategies": self.strategies,
            "arb": self.arb,
            "strategy_bars": self.strategy_bars,
            "strategy_pnl": self.strategy_pnl,
            "risk_profiles": self.risk_profiles,
            "risk": self.risk,
            "margin_windows": self.margin_windows,
            "signals": self.signals,
            "signal_order": list(self.signal_order),
            "signal_seq": self.signal_seq,
            "signal_params": self.signal_params,
            "brackets": self.brackets,
            "bracket_of_order": self.bracket_of_order,
            "brackets_by_key": {k: v for k, v in self.brackets_by_key.items() if v},
            "finished": list(self.finished),
            "evicted_ids": self.evicted_ids,
            "evicted_orders": self.evicted_orders,
        }

    # ---- applying -----------------------------------------------------------

    def apply(self, event: Event) -> FillOutcome | None:
        # One dict lookup by exact type, whatever the number of event kinds.
        return _APPLY[type(event)](self, event)

    def _deposited(self, e: FundsDeposited) -> None:
        self.accounts[(e.client, e.venue)].deposit(e.amount)
        self._shift_equity_references(e.client, e.amount)

    def _withdrawn(self, e: FundsWithdrawn) -> None:
        self.accounts[(e.client, e.venue)].withdraw(e.amount)
        self._shift_equity_references(e.client, -e.amount)

    def risk_of(self, client: str) -> ClientRiskState:
        state = self.risk.get(client)
        if state is None:
            state = self.risk[client] = ClientRiskState()
        return state

    def _shift_equity_references(self, client: str, amount: Decimal) -> None:
        # Money moved in or out is neither profit nor loss: the drawdown and daily-loss
        # references move with it.
        state = self.risk.get(client)
        if state is not None:
            if state.peak_equity is not None:
                state.peak_equity += amount
            if state.day_open_equity is not None:
                state.day_open_equity += amount

    def _risk_profile_changed(self, e: RiskProfileChanged) -> None:
        self.risk_profiles[e.client] = e.profile

    def _breaker_tripped(self, e: BreakerTripped) -> None:
        self.risk_of(e.client).tripped[e.breaker] = e

    def _breaker_reset(self, e: BreakerReset) -> None:
        state = self.risk_of(e.client)
        state.tripped.pop(e.breaker, None)
        if e.breaker is Breaker.CONSECUTIVE_LOSSES:
            state.consecutive_losses = 0
        elif e.breaker is Breaker.DRAWDOWN:
            state.peak_equity = e.equity
        elif e.breaker is Breaker.DAILY_LOSS:
            state.day_open_equity = e.equity
        else:  # a session breaker: a new session
            state.session_started, state.session_trades = e.at, 0

    def _margin_window_changed(self, e: MarginWindowChanged) -> None:
        self.margin_windows[e.venue] = e.current

    def _risk_state_recorded(self, e: RiskStateRecorded) -> None:
        state = self.risk_of(e.client)
        state.peak_equity, state.day, state.day_open_equity = (
            e.peak_equity, e.day, e.day_open_equity)

    def _submitted(self, e: OrderSubmitted) -> None:
        spec = e.spec
        assert spec.client_order_id is not None
        order = Order(order_id=e.order_id, spec=spec, client_order_id=spec.client_order_id,
                      created_at=e.at, updated_at=e.at, replaces=e.replaces,
                      requested_qty=e.requested_qty, arrival_price=e.arrival_mid)
        self.orders[e.order_id] = order
        self.by_client_order_id[(spec.client, spec.venue, spec.client_order_id)] = e.order_id
        ids = self.order_ids_by_client.setdefault(spec.client, [])
        if not ids or ids[-1] < e.order_id:
            ids.append(e.order_id)
        else:  # a replace's successor: its id was reserved when the replace was asked for
            insort(ids, e.order_id)
        self.open_orders.setdefault((spec.client, spec.venue), {})[e.order_id] = order
        self.resting.add(order)
        if e.order_id > self.last_order_id:
            self.last_order_id = e.order_id
        if e.replaces is not None:
            self.orders[e.replaces].replaced_by = e.order_id
            self.pending_replaces.pop(e.replaces, None)

    def _accepted(self, e: OrderAccepted) -> None:
        order = self.orders[e.order_id]
        if order.status in (OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_REPLACE):
            # The ack overtook our cancel: a refused cancel now returns to ACCEPTED.
            order.status_before_pending = OrderStatus.ACCEPTED
            order.updated_at = e.at
        else:
            order.transition(OrderStatus.ACCEPTED, e.at)

    def _rejected(self, e: OrderRejected) -> None:
        order = self.orders[e.order_id]
        order.transition(OrderStatus.REJECTED, e.at)
        order.reject_code, order.reject_message = e.code, e.message
        self._closed(order)

    def _triggered(self, e: OrderTriggered) -> None:
        order = self.orders[e.order_id]
        if e.qty is not None:  # a close-position order: now the size it closes
            self._respec(order, replace(order.spec, qty=e.qty), e.at)
        order.triggered_at = e.at
        # A conditional order reaches the market when it triggers: its arrival price
        # is the mid then (the price that triggered it without a two-sided book), not
        # the mid when it was placed.
        order.arrival_price = e.arrival_mid if e.arrival_mid is not None else e.trigger_price
        if order.status is OrderStatus.ACCEPTED:
            order.transition(OrderStatus.TRIGGERED, e.at)

    def _filled(self, e: OrderFilled) -> FillOutcome:
        order = self.orders[e.order_id]
        order.record_fill(e.qty, e.price, e.fee, e.at)
        self.resting.filled(order, e.qty)
        if e.fill_id > self.last_fill_id:
            self.last_fill_id = e.fill_id
        if self.bracket_of_order:  # most of the time there is no bracket at all
            self._bracket_fill(e)
        outcome = self.position(e.client, e.venue, e.symbol).apply_fill(
            e.side, e.qty, e.price, e.fee, e.at, exit_reason_of(order), order.arrival_price)
        account = self.accounts[(e.client, e.venue)]
        if outcome.realized_pnl:
            account.realize(outcome.realized_pnl)
        account.charge_fee(e.fee)
        strategy = order.spec.tags.strategy
        if strategy is not None:
            pnl = self.strategy_pnl.get(strategy)
            if pnl is None:
                pnl = self.strategy_pnl[strategy] = StrategyPnl()
            pnl.realized += outcome.realized_pnl
            pnl.fees += e.fee
            pnl.fills += 1
        if not order.is_open:
            self._closed(order)
        return outcome

    def _cancel_requested(self, e: OrderCancelRequested) -> None:
        order = self.orders[e.order_id]
        order.transition(OrderStatus.PENDING_CANCEL, e.at)
        order.cancel_in_flight = True

    def _replace_requested(self, e: OrderReplaceRequested) -> None:
        order = self.orders[e.order_id]
        order.transition(OrderStatus.PENDING_REPLACE, e.at)
        order.cancel_in_flight = True
        self.pending_replaces[e.order_id] = PendingReplace(e.new_order_id, e.new_spec,
                                                           e.qty_from_remaining)
        if e.new_order_id > self.last_order_id:
            self.last_order_id = e.new_order_id

    def _amended(self, e: OrderAmended) -> None:
        order = self.orders[e.order_id]
        self._respec(order, replace(order.spec, qty=e.qty, price=e.price), e.at)

    def _respec(self, order: Order, spec: OrderSpec, at: datetime) -> None:
        # Out of its resting group and in again: the group's sums follow the new qty
        # and price.
        self.resting.remove(order)
        order.respec(spec, at)
        if order.is_open:
            self.resting.add(order)

    def _canceled(self, e: OrderCanceled) -> None:
        order = self.orders[e.order_id]
        order.transition(OrderStatus.CANCELED, e.at)
        order.cancel_reason = e.reason
        order.cancel_in_flight = False
        self._closed(order)

    def _cancel_rejected(self, e: OrderCancelRejected) -> None:
        order = self.orders[e.order_id]
        self.pending_replaces.pop(e.order_id, None)
        order.cancel_in_flight = False
        if order.status in (OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_REPLACE):
            previous = order.status_before_pending
            order.transition(OrderStatus.ACCEPTED if previous is None else previous, e.at)

    def _expired(self, e: OrderExpired) -> None:
        order = self.orders[e.order_id]
        order.transition(OrderStatus.EXPIRED, e.at)
        self._closed(order)

    def _funding(self, e: FundingApplied) -> None:
        self.position(e.client, e.venue, e.symbol).apply_funding(e.amount)
        self.accounts[(e.client, e.venue)].settle_funding(e.amount)

    def _funding_missing(self, e: FundingRateMissing) -> None:
        self.funding_unpriced[(e.venue, e.symbol, e.funding_at)] = e

    def _funding_settled(self, e: FundingSettled) -> None:
        self.funding_unpriced.pop((e.venue, e.symbol, e.funding_at), None)
        key = (e.venue, e.symbol)
        previous = self.funding_settled.get(key)
        if previous is None or e.funding_at > previous:
            self.funding_settled[key] = e.funding_at

    def _trade_closed(self, e: TradeClosed) -> None:
        trade = e.trade
        self.closed_trades.append(trade)
        mine = self.closed_trades_by_client.setdefault(trade.client, [])
        mine.append(trade)
        # Bounded: the newest trades stay (in batches, so trimming is cheap).
        if len(mine) > self.retain_trades * 2:
            del mine[:-self.retain_trades]
        if len(self.closed_trades) > self.retain_trades * 2:
            del self.closed_trades[:-self.retain_trades]
        count, wins = self.trade_counts.get(trade.client, (0, 0))
        self.trade_counts[trade.client] = (count + 1, wins + trade.is_win)
        risk = self.risk_of(trade.client)
        if trade.net_pnl < 0:
            risk.consecutive_losses += 1
        elif trade.net_pnl > 0:
            risk.consecutive_losses = 0
        risk.session_trades += 1
        if risk.session_started is None:
            risk.session_started = trade.opened_at

    def _leverage_changed(self, e: LeverageChanged) -> None:
        self.accounts[(e.client, e.venue)].symbol_leverage[e.symbol] = e.leverage

    def _liquidated(self, e: PositionLiquidated) -> None:
        # The closing order's fills arrive as their own events; here only the fee.
        if e.fee:
            self.accounts[(e.client, e.venue)].charge_fee(e.fee)
            self.position(e.client, e.venue, e.symbol).fees += e.fee

    def _state_changed(self, e: TradingStateChanged) -> None:
        if e.state is TradingState.ACTIVE:
            self.trading_states.pop(e.scope, None)
        else:
            self.trading_states[e.scope] = e.state

    def _noop(self, e: Event) -> None:
        return None

    # ---- strategies ---------------------------------------------------------

    def _strategy_created(self, e: StrategyCreated) -> None:
        self.strategies_version += 1
        self.strategies[e.strategy_id] = StrategyRecord(
            e.strategy_id, e.kind, e.client, e.venue, e.params, e.at)

    def _strategy_started(self, e: StrategyStarted) -> None:
        self.strategies_version += 1
        record = self.strategies[e.strategy_id]
        record.status, record.status_reason, record.updated_at = (
            StrategyStatus.RUNNING, f"started by {e.actor}", e.at)
        record.starts += 1

    def _strategy_stopped(self, e: StrategyStopped) -> None:
        self.strategies_version += 1
        record = self.strategies[e.strategy_id]
        record.status = StrategyStatus.FAILED if e.failed else StrategyStatus.STOPPED
        record.status_reason, record.updated_at = e.reason, e.at

    def _strategy_configured(self, e: StrategyConfigured) -> None:
        self.strategies_version += 1
        record = self.strategies[e.strategy_id]
        record.params, record.updated_at = e.params, e.at

    def _strategy_bars(self, e: StrategyBarsRecorded) -> None:
        kept = self.strategy_bars.setdefault(e.strategy_id, {})
        for bar in e.bars:
            key = (bar.symbol, bar.interval_s)
            series = kept.get(key)
            if series is None:
                series = kept[key] = deque(maxlen=KEPT_BARS)
            series.append(bar)

    def _arb_trade_updated(self, e: ArbTradeUpdated) -> None:
        self.arb.setdefault(e.trade.strategy_id, ArbBook()).apply_trade(e.trade)

    def _leg_out_detected(self, e: LegOutDetected) -> None:
        self.arb.setdefault(e.leg_out.strategy_id, ArbBook()).apply_leg_out(e.leg_out)

    # ---- signals and brackets ------------------------------------------------

    def _signal_received(self, e: SignalReceived) -> None:
        self.signals[e.signal_id] = SignalRecord(
            e.signal_id, e.client, e.venue, e.symbol, e.signal, e.strategy, e.strength,
            e.signal_at, e.at, e.actor)
        self.signal_order.append(e.signal_id)
        self.signal_seq += 1
        while len(self.signal_order) > self.retain_signals:
            old = self.signals.pop(self.signal_order.popleft(), None)
            if old is not None and old.bracket_id is not None:
                bracket = self.brackets.get(old.bracket_id)
                if bracket is not None and bracket.closed is not None:
                    del self.brackets[old.bracket_id]

    def _signal_resolved(self, e: SignalResolved) -> None:
        record = self.signals.get(e.signal_id)
        if record is not None:
            record.resolved = e

    def _signal_params_changed(self, e: SignalParamsChanged) -> None:
        self.signal_params[e.client] = e.params

    def _bracket_opened(self, e: BracketOpened) -> None:
        self.brackets[e.bracket_id] = Bracket(
            e.bracket_id, e.signal_id, e.strategy, e.client, e.venue, e.symbol, e.entry_side,
            e.take_profit_frac, e.stop_loss_frac, e.at)
        self.bracket_of_order[e.bracket_id] = e.bracket_id
        key = (e.client, e.venue, e.symbol)
        self.brackets_by_key.setdefault(key, set()).add(e.bracket_id)
        record = self.signals.get(e.signal_id)
        if record is not None:
            record.bracket_id = e.bracket_id

    def _bracket_legs(self, e: BracketLegsPlaced) -> None:
        bracket = self.brackets[e.bracket_id]
        for order_id in (e.take_profit_order_id, e.stop_loss_order_id):
            if order_id is not None and order_id not in self.bracket_of_order:
                # A new leg: what it filled before it was linked counts too.
                self.bracket_of_order[order_id] = e.bracket_id
                bracket.legs.append(order_id)
                order = self.orders.get(order_id)
                if order is not None and order.filled_qty:
                    bracket.exit_filled += order.filled_qty
                if order is not None and not order.is_open:
                    self.bracket_dirty.add((bracket.client, bracket.venue, bracket.symbol))
        bracket.take_profit_order_id = e.take_profit_order_id
        bracket.stop_loss_order_id = e.stop_loss_order_id
        bracket.qty = e.qty

    def _bracket_closed(self, e: BracketClosed) -> None:
        bracket = self.brackets[e.bracket_id]
        bracket.closed = e.reason
        bracket.take_profit_order_id = bracket.stop_loss_order_id = None
        bracket.qty = Decimal(0)
        for order_id in (bracket.bracket_id, *bracket.legs):
            self.bracket_of_order.pop(order_id, None)
        key = (bracket.client, bracket.venue, bracket.symbol)
        ids = self.brackets_by_key.get(key)
        if ids is not None:
            ids.discard(e.bracket_id)
            if not ids:
                del self.brackets_by_key[key]

    def _bracket_fill(self, e: OrderFilled) -> None:
        bracket_id = self.bracket_of_order.get(e.order_id)
        if bracket_id is None:
            key = (e.client, e.venue, e.symbol)
            if key in self.brackets_by_key:  # the position of a bracket moved
                self.bracket_dirty.add(key)
            return
        bracket = self.brackets[bracket_id]
        if e.order_id == bracket_id:
            bracket.entry_filled += e.qty
            bracket.entry_notional += e.qty * e.price
        else:
            bracket.exit_filled += e.qty
        self.bracket_dirty.add((e.client, e.venue, e.symbol))

    def _closed(self, order: Order) -> None:
        if order.order_id in self.bracket_of_order:
            spec = order.spec
            self.bracket_dirty.add((spec.client, spec.venue, spec.symbol))
        key = order.spec.account
        open_for_account = self.open_orders.get(key)
        if open_for_account is not None:
            open_for_account.pop(order.order_id, None)
        self.resting.remove(order)
        if order.status is not OrderStatus.CANCELED:
            self.pending_replaces.pop(order.order_id, None)
        self.finished.append(order.order_id)
        if len(self.finished) > self.retain_finished:
            self._evict(self.finished.popleft())

    def _evict(self, order_id: int) -> None:
        """A finished order leaves memory (the projection keeps it)."""
        order = self.orders.get(order_id)
        if order is None or order.is_open or order_id in self.pending_replaces:
            return  # (finished twice, or reopened by a late report: keep it)
        del self.orders[order_id]
        spec = order.spec
        key = (spec.client, spec.venue, order.client_order_id)
        if self.by_client_order_id.get(key) == order_id:
            del self.by_client_order_id[key]
        self.evicted_ids.add(key)
        self.evicted_orders += 1
        if self.evicted_orders % COMPACT_EVERY == 0:
            self._compact_ids()

    def _compact_ids(self) -> None:
        """Drop the ids of orders that left memory from the per-client indexes (now and
        then: the readers skip ids they cannot find meanwhile)."""
        orders = self.orders
        for client, ids in self.order_ids_by_client.items():
            self.order_ids_by_client[client] = [i for i in ids if i in orders]


@dataclass(slots=True)
class StrategyPnl:
    """What one strategy's fills did: realized P&L (before fees), fees, fill count."""

    realized: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    fills: int = 0

    @property
    def net(self) -> Decimal:
        return self.realized - self.fees


# Closed bars kept per strategy, symbol and interval for its restart: enough for a
# 200-period indicator and its seed (seed 004's 1 h EMA200) with room to spare.
KEPT_BARS = 500
# Evictions between two compactions of the per-client order-id indexes.
COMPACT_EVERY = 4096


def _descending(ids: list[int], stop: int) -> Iterator[int]:
    for i in range(stop - 1, -1, -1):
        yield ids[i]


def exit_reason_of(order: Order) -> str:
    """Why a position-reducing fill happened, for the closed-trade record."""
    if order.spec.tags.exit_reason:
        return order.spec.tags.exit_reason
    kind = order.spec.type
    if kind.is_stop:
        return "stop"
    if kind.is_take_profit:
        return "take_profit"
    if kind is OrderType.TRAILING_STOP:
        return "trailing_stop"
    return "manual"


_Applier = Callable[[EngineState, Event], FillOutcome | None]
_E = TypeVar("_E", bound=Event)


def _applier(kind: type[_E], apply: Callable[[EngineState, _E], FillOutcome | None]
             ) -> tuple[type, _Applier]:
    """An entry of ``_APPLY``: the checker makes sure ``apply`` takes a ``kind``.

    ``EngineState.apply`` looks the handler up by ``type(event)``, so it only ever
    passes a ``kind``; the cast tells the checker so (it cannot relate a dict's keys
    to its values)."""
    return kind, cast(_Applier, apply)


_APPLY: dict[type, _Applier] = dict([
    _applier(FundsDeposited, EngineState._deposited),
    _applier(FundsWithdrawn, EngineState._withdrawn),
    _applier(OrderSubmitted, EngineState._submitted),
    _applier(OrderAccepted, EngineState._accepted),
    _applier(OrderRejected, EngineState._rejected),
    _applier(OrderTriggered, EngineState._triggered),
    _applier(OrderFilled, EngineState._filled),
    _applier(OrderCancelRequested, EngineState._cancel_requested),
    _applier(OrderReplaceRequested, EngineState._replace_requested),
    _applier(OrderAmendRequested, EngineState._noop),  # a request: the order waits
    _applier(OrderAmended, EngineState._amended),
    _applier(OrderAmendRejected, EngineState._noop),  # refused: the order is as it was
    _applier(OrderCanceled, EngineState._canceled),
    _applier(OrderCancelRejected, EngineState._cancel_rejected),
    _applier(OrderExpired, EngineState._expired),
    _applier(FundingApplied, EngineState._funding),
    _applier(FundingSettled, EngineState._funding_settled),
    _applier(TradeClosed, EngineState._trade_closed),
    _applier(TradingStateChanged, EngineState._state_changed),
    _applier(LeverageChanged, EngineState._leverage_changed),
    _applier(PositionLiquidated, EngineState._liquidated),
    _applier(FundingRateMissing, EngineState._funding_missing),
    _applier(CloseAllCompleted, EngineState._noop),
    _applier(StrategyCreated, EngineState._strategy_created),
    _applier(StrategyStarted, EngineState._strategy_started),
    _applier(StrategyStopped, EngineState._strategy_stopped),
    _applier(StrategyConfigured, EngineState._strategy_configured),
    _applier(RiskProfileChanged, EngineState._risk_profile_changed),
    _applier(BreakerTripped, EngineState._breaker_tripped),
    _applier(BreakerReset, EngineState._breaker_reset),
    _applier(RiskStateRecorded, EngineState._risk_state_recorded),
    _applier(OrderSizedDown, EngineState._noop),
    _applier(MarginWindowChanged, EngineState._margin_window_changed),
    _applier(MarginWindowWarning, EngineState._noop),
    _applier(ArbTradeUpdated, EngineState._arb_trade_updated),
    _applier(StrategyBarsRecorded, EngineState._strategy_bars),
    _applier(LegOutDetected, EngineState._leg_out_detected),
    _applier(SignalReceived, EngineState._signal_received),
    _applier(SignalResolved, EngineState._signal_resolved),
    _applier(SignalParamsChanged, EngineState._signal_params_changed),
    _applier(BracketOpened, EngineState._bracket_opened),
    _applier(BracketLegsPlaced, EngineState._bracket_legs),
    _applier(BracketClosed, EngineState._bracket_closed),
])
