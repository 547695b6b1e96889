"""Funding-rate arbitrage (seed 001): the trade, its leg-outs and the portfolio.

A trade holds one perp long on one venue and short on another, to collect the
difference of their funding rates (and any price spread between them). It is
one explicit state machine:

    pending ──► active ──► exiting ──► closed
       │  ╲                    (a lagging exit leg is market-completed: a leg-out exit)
       │   ╲─► legging_out ──► legged_out    (the second leg did not fill in time)
       └─────► cancelled                     (the first leg never filled: no trade)

Every change of a trade is recorded as an ``ArbTradeUpdated`` event carrying the
whole trade, so the engine's ``ArbBook`` (rebuilt by replaying the log) holds
each trade in whatever state it was, and the strategy resumes from there after a
restart. The trade keeps one record per order it placed, with what of that order
it has counted, so fills are counted once even when they are noticed late (from
the order's own state rather than its fill event).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from app.domain.orders import Side

ZERO = Decimal(0)
# Closed trades and leg-outs an arbitrage keeps in memory for its views (all are in
# the event log and the projection).
KEPT_CLOSED = 200
KEPT_LEG_OUTS = 200
# Orders one trade may place (entry, hedges, exits, completions): a bound on its
# record; beyond it hedges are batched on the strategy's next tick.
MAX_TRADE_ORDERS = 40


class ArbStatus(StrEnum):
    PENDING = "pending"  # entering: the harder leg and its hedges are working
    ACTIVE = "active"  # both legs on, matched
    EXITING = "exiting"  # both exit orders working
    LEGGING_OUT = "legging_out"  # a leg missed its 500 ms: cancels pending, then closing
    CLOSED = "closed"
    LEGGED_OUT = "legged_out"  # ended by an entry leg-out: flat again, loss booked
    CANCELLED = "cancelled"  # the first leg never filled: no position, not a trade

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def holds_capital(self) -> bool:
        """Capital is deducted from the pool only while the trade is on (seed 001)."""
        return self in (ArbStatus.ACTIVE, ArbStatus.EXITING)


_TERMINAL = frozenset({ArbStatus.CLOSED, ArbStatus.LEGGED_OUT, ArbStatus.CANCELLED})

# The transitions a trade may make; anything else is a bug in the strategy.
TRANSITIONS: dict[ArbStatus, frozenset[ArbStatus]] = {
    ArbStatus.PENDING: frozenset({ArbStatus.PENDING, ArbStatus.ACTIVE,
                                  ArbStatus.LEGGING_OUT, ArbStatus.CANCELLED}),
    ArbStatus.ACTIVE: frozenset({ArbStatus.ACTIVE, ArbStatus.EXITING}),
    ArbStatus.EXITING: frozenset({ArbStatus.EXITING, ArbStatus.CLOSED}),
    ArbStatus.LEGGING_OUT: frozenset({ArbStatus.LEGGING_OUT, ArbStatus.LEGGED_OUT}),
    ArbStatus.CLOSED: frozenset(),
    ArbStatus.LEGGED_OUT: frozenset(),
    ArbStatus.CANCELLED: frozenset(),
}


class OrderRole(StrEnum):
    ENTRY = "entry"  # the harder leg's limit order
    HEDGE = "hedge"  # the easier leg, for what the entry filled
    EXIT = "exit"  # an exit limit order
    CLOSE = "close"  # a market completion: a leg-out, a lagging exit, hedge debt


@dataclass(frozen=True, slots=True)
class ArbOrder:
    """One order a trade placed, and what of it the trade has counted. Known by its
    client order id from the moment it is asked for; ``order_id`` once the engine has
    taken it (an order the engine refused outright never gets one)."""

    coid: str
    order_id: int | None
    venue: str
    side: Side
    role: OrderRole
    qty: Decimal
    placed_at: datetime
    filled: Decimal = ZERO
    notional: Decimal = ZERO  # Σ qty × price of the counted fills
    fees: Decimal = ZERO
    done: bool = False  # finished at the venue (filled, canceled, rejected, expired)
    cancel_requested: bool = False

    @property
    def signed_filled(self) -> Decimal:
        return self.filled * self.side.sign

    @property
    def cash(self) -> Decimal:
        """What its fills paid (−) or received (+), fees included."""
        return -self.side.sign * self.notional - self.fees


@dataclass(frozen=True, slots=True)
class ArbTrade:
    """One arbitrage trade. Frozen: every change makes a new one (and an event)."""

    trade_id: str
    strategy_id: str
    client: str
    symbol: str
    long_venue: str
    short_venue: str
    harder_venue: str  # the less liquid venue: its leg goes first, as a limit order
    status: ArbStatus
    created_at: datetime
    target_qty: Decimal  # per leg, on the coarser step of the two venues
    entry_spread_bps: Decimal  # short venue's bid over long venue's ask, at the decision
    funding_delta_entry: Decimal  # short venue's rate minus long venue's, per 8 h
    projected_profit: Decimal  # net of the four legs' fees and slippage, over the horizon
    confidence: int
    # The entry prices the decision assumed: a hedge may cost at most its slippage
    # allowance beyond its leg's (a market that ran away is a leg-out, not a chase).
    planned_long_price: Decimal = ZERO
    planned_short_price: Decimal = ZERO
    position_size_usd: Decimal = ZERO  # capital allocated while active
    orders: tuple[ArbOrder, ...] = ()
    funding_long: Decimal = ZERO  # funding the long leg received (+) or paid (−)
    funding_short: Decimal = ZERO
    first_fill_at: datetime | None = None  # of the phase now working (entry or exit)
    deadline: datetime | None = None  # when the phase now working times out
    entered_at: datetime | None = None
    exit_started_at: datetime | None = None
    closed_at: datetime | None = None
    exit_reason: str | None = None
    actual_profit: Decimal | None = None
    note: str = ""  # why it is where it is (a leg-out's cause, a refusal)

    # ---- reading -----------------------------------------------------------------------

    @property
    def easier_venue(self) -> str:
        return self.short_venue if self.harder_venue == self.long_venue else self.long_venue

    def side_on(self, venue: str) -> Side:
        """The entry side of the leg on ``venue``."""
        return Side.BUY if venue == self.long_venue else Side.SELL

    def position_on(self, venue: str) -> Decimal:
        """The signed position the trade holds on ``venue`` (what it counted)."""
        return sum((o.signed_filled for o in self.orders if o.venue == venue), ZERO)

    @property
    def long_qty(self) -> Decimal:
        return self.position_on(self.long_venue)

    @property
    def short_qty(self) -> Decimal:
        return -self.position_on(self.short_venue)

    @property
    def matched_qty(self) -> Decimal:
        """What is hedged: the smaller of the two legs (each ≥ 0)."""
        return max(ZERO, min(self.long_qty, self.short_qty))

    @property
    def imbalance(self) -> Decimal:
        """Long qty minus short qty: what is naked (0 when hedged)."""
        return self.long_qty - self.short_qty

    @property
    def working(self) -> tuple[ArbOrder, ...]:
        return tuple(o for o in self.orders if not o.done)

    def order(self, coid: str) -> ArbOrder | None:
        return next((o for o in self.orders if o.coid == coid), None)

    def entry_price(self, venue: str) -> Decimal | None:
        """The average entry price of the leg on ``venue``."""
        side = self.side_on(venue)
        legs = [o for o in self.orders if o.venue == venue and o.side is side and o.filled]
        qty = sum((o.filled for o in legs), ZERO)
        return sum((o.notional for o in legs), ZERO) / qty if qty else None

    @property
    def fees(self) -> Decimal:
        return sum((o.fees for o in self.orders), ZERO)

    @property
    def funding(self) -> Decimal:
        return self.funding_long + self.funding_short

    @property
    def cash(self) -> Decimal:
        """Sold minus bought, less fees, plus funding: the profit once both legs are flat."""
        return sum((o.cash for o in self.orders), ZERO) + self.funding

    # ---- changing ----------------------------------------------------------------------

    def moved(self, status: ArbStatus, **changes: object) -> ArbTrade:
        """The trade in ``status`` (a transition the table allows) with ``changes``."""
        if status not in TRANSITIONS[self.status]:
            raise ValueError(f"trade {self.trade_id}: {self.status} -> {status} "
                             "is not a transition")
        return replace(self, status=status, **changes)  # type: ignore[arg-type]

    def with_order(self, order: ArbOrder) -> ArbTrade:
        """With ``order`` added, or replacing the record of the same client order id."""
        if any(o.coid == order.coid for o in self.orders):
            orders = tuple(order if o.coid == order.coid else o for o in self.orders)
        else:
            orders = (*self.orders, order)
        return replace(self, orders=orders)


@dataclass(frozen=True, slots=True)
class LegOut:
    """A leg that did not fill in time, and what closing the other cost (seed 001's
    ``LegOutEvent``). ``phase`` is "entry" (the trade ended legged out) or "exit" (a
    lagging exit leg was completed at market)."""

    trade_id: str
    strategy_id: str
    client: str
    symbol: str
    phase: str
    filled_leg: str  # "long" | "short"
    filled_venue: str
    unfilled_leg: str
    unfilled_venue: str
    filled_at: datetime | None
    detected_at: datetime
    filled_qty: Decimal
    filled_price: Decimal | None
    missing_qty: Decimal  # what the lagging leg lacked when its time was up
    hedge_executed: bool
    hedge_qty: Decimal
    hedge_price: Decimal | None
    loss: Decimal  # ≥ 0
    reason: str  # "timeout", "kill_switch", "rejected", "strategy_stopped"
    at: datetime


# ---- commands (a strategy records its trades through the engine) -------------------------

@dataclass(frozen=True, slots=True)
class RecordArbTrade:
    trade: ArbTrade
    change: str  # what happened, in a few words ("entry placed", "hedged 0.01")
    actor: str = "system"


@dataclass(frozen=True, slots=True)
class RecordLegOut:
    leg_out: LegOut
    actor: str = "system"


# ---- events -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ArbTradeUpdated:
    """A trade changed (``change`` says how); ``trade`` is all of it, after."""

    client: str
    venue: str  # the strategy's venue (its account for the event's routing)
    trade: ArbTrade
    change: str
    at: datetime


@dataclass(frozen=True, slots=True)
class LegOutDetected:
    client: str
    venue: str
    leg_out: LegOut
    at: datetime


# ---- the portfolio, as the engine keeps it -------------------------------------------------

@dataclass(slots=True)
class ArbBook:
    """One arbitrage strategy's trades and totals (seed 001's ``PortfolioState`` less
    the starting capital, which is a parameter). Mutated only by applying events."""

    open: dict[str, ArbTrade] = field(default_factory=dict)
    closed: deque[ArbTrade] = field(default_factory=lambda: deque(maxlen=KEPT_CLOSED))
    leg_outs: deque[LegOut] = field(default_factory=lambda: deque(maxlen=KEPT_LEG_OUTS))
    trades: int = 0  # closed trades that held a position (cancelled entries are not)
    wins: int = 0
    losses: int = 0
    cumulative_pnl: Decimal = ZERO  # Σ actual profit of closed trades (leg-outs included)
    leg_out_count: int = 0
    leg_out_loss: Decimal = ZERO
    exit_reasons: dict[str, int] = field(default_factory=dict)
    first_trade_at: datetime | None = None

    def apply_trade(self, trade: ArbTrade) -> None:
        if self.first_trade_at is None:
            self.first_trade_at = trade.created_at
        if not trade.status.terminal:
            self.open[trade.trade_id] = trade
            return
        if self.open.pop(trade.trade_id, None) is None and any(
                t.trade_id == trade.trade_id for t in self.closed):
            return  # recorded closed already
        self.closed.append(trade)
        if trade.status is ArbStatus.CANCELLED:
            return
        profit = trade.actual_profit if trade.actual_profit is not None else ZERO
        self.trades += 1
        if profit > 0:
            self.wins += 1
        else:
            self.losses += 1
        self.cumulative_pnl += profit
        reason = trade.exit_reason or trade.status.value
        self.exit_reasons[reason] = self.exit_reasons.get(reason, 0) + 1

    def apply_leg_out(self, leg_out: LegOut) -> None:
        self.leg_outs.append(leg_out)
        self.leg_out_count += 1
        self.leg_out_loss += leg_out.loss

    @property
    def allocated(self) -> Decimal:
        """Capital in trades that are on."""
        return sum((t.position_size_usd for t in self.open.values()
                    if t.status.holds_capital), ZERO)
