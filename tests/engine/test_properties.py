"""Property-based tests: random command and market-data sequences against the engine.

Hypothesis builds sequences of up to 60 steps (quotes, trade prints, marks,
funding, order submits of every kind, cancels, replaces, amends in place,
market gaps that liquidate, cancel-all, kill switches, close-all, deposits,
withdrawals, clock advances) and runs them
against a real engine with two paper venues. After *every* step the harness
checks the invariants of DESIGN.md and the seeds against a reference model
rebuilt from the event stream alone:

1. capital conservation (seed 001 property 1), to the cent;
2. equity reconciliation (seed 003): equity = wallet + Σ unrealized,
   wallet = deposits − withdrawals + realized − fees + funding;
3. replaying the events into a fresh state rebuilds the live state
   (checked mid-way and at the end of each example);
4. no order fills more than its quantity, whatever amends did to it (an
   amend never sets a qty at or below what has filled);
5. in REDUCE_ONLY or HALTED no fill grows or flips a position;
6. realized P&L = Σ closed trades + Σ realized of still-open trades
   (seed 001 property 5);
7. isolation: one account's events never change another account.

Along the way it also checks what the reference model makes cheap to check:
fills on the tick grid, at or better than the limit, at the published fee,
post-only only as maker; GTD expiry only after ``expire_at``; every due
funding period paid exactly once per open position at
−qty × mark × rate; every round trip closed by a fill reported once.

Steps are abstract ("3 ticks more aggressive than the touch", "the second
most recent order") and resolved against the live engine when run, so every
generated sequence is meaningful and shrinks to a short readable example.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from app.domain.commands import (
    AmendOrder,
    CancelAll,
    CancelOrder,
    CloseAll,
    Command,
    Deposit,
    ReplaceOrder,
    SetTradingState,
    SubmitOrder,
    Withdraw,
)
from app.domain.events import (
    Event,
    FundingApplied,
    FundsDeposited,
    FundsWithdrawn,
    OrderAmended,
    OrderExpired,
    OrderFilled,
    OrderReplaceRequested,
    OrderSubmitted,
    OrderTriggered,
    PositionLiquidated,
    TradeClosed,
    TradingStateChanged,
)
from app.domain.instruments import Instrument, InstrumentKind
from app.domain.market import FundingRate, MarketUpdate, MarkPrice, Quote, TradePrint
from app.domain.orders import Liquidity, OrderSpec, OrderType, Side, TimeInForce, TriggerSource
from app.domain.rejections import CommandRefused
from app.domain.risk import UNLIMITED, Breaker, BreakerPolicy, BreakerTripped, RiskProfile
from app.domain.trading_state import Scope, TradingState
from app.engine import Engine, EngineConfig, EngineState
from app.engine.engine import AccountSetup
from app.venues.paper.venue import PaperVenue, PaperVenueConfig

ZERO = Decimal(0)
CENT = Decimal("0.01")
T0 = datetime(2024, 3, 1, tzinfo=UTC)
STEP_TIME = timedelta(milliseconds=10)  # the clock moves at least this much per step
VENUE_A, VENUE_B = "paper-a", "paper-b"
VENUES = (VENUE_A, VENUE_B)
BTC, ETH = "BTC-PERP", "ETH-PERP"
STARTING_DEPOSIT = Decimal(20000)
NO_LATENCY = timedelta(0)
SOME_LATENCY = timedelta(milliseconds=30)

AccountKey = tuple[str, str]


@dataclass(frozen=True)
class Contract:
    symbol: str
    base: str
    tick: Decimal
    step: Decimal
    min_notional: Decimal
    start_bid: Decimal


CONTRACTS = {
    BTC: Contract(BTC, "BTC", Decimal("0.1"), Decimal("0.001"), Decimal(5), Decimal("30000.0")),
    ETH: Contract(ETH, "ETH", Decimal("0.01"), Decimal("0.01"), Decimal(5), Decimal("2000.00")),
}
# alice trades on one venue; bob has an account on each (isolation across venues).
LEVERAGE: dict[AccountKey, Decimal] = {
    ("alice", VENUE_A): Decimal(5),
    ("bob", VENUE_A): Decimal(10),
    ("bob", VENUE_B): Decimal(8),
}
ACCOUNTS = tuple(LEVERAGE)
NO_SUCH_ACCOUNT = ("alice", VENUE_B)  # alice has no account there: refused
SCOPES = (
    Scope(),
    Scope("alice"), Scope("bob"),
    Scope(None, VENUE_A), Scope(None, VENUE_B),
    Scope("alice", VENUE_A), Scope("bob", VENUE_A), Scope("bob", VENUE_B),
)


# Breakers set to trip often: one losing trade, 0.5 % down on the day or from the peak.
TIGHT_BREAKERS = RiskProfile(
    price_band_pct=None, max_open_orders=None, margin_ratio_cap=None,
    breakers=BreakerPolicy(consecutive_losses=1, daily_loss_pct=Decimal("0.5"),
                           max_drawdown_pct=Decimal("0.5"), halt_on=(Breaker.DAILY_LOSS,)))


def make_engine(latency_b: timedelta = NO_LATENCY, profile: RiskProfile = UNLIMITED
                ) -> Engine:
    """Two perps on two paper venues; ``paper-b`` optionally has submit and response latency."""
    instruments = [
        Instrument(symbol=c.symbol, venue=venue, kind=InstrumentKind.PERP, base=c.base,
                   quote="USDT", tick_size=c.tick, step_size=c.step, min_qty=c.step,
                   min_notional=c.min_notional)
        for venue in VENUES for c in CONTRACTS.values()
    ]
    venues = {
        VENUE_A: PaperVenue(VENUE_A),
        VENUE_B: PaperVenue(VENUE_B, PaperVenueConfig(submit_latency=latency_b,
                                                      response_latency=latency_b)),
    }
    setups = [AccountSetup(client, venue, lev) for (client, venue), lev in LEVERAGE.items()]
    return Engine(EngineConfig(instruments, setups, default_risk_profile=profile), venues)


def replay(events: list[Event]) -> EngineState:
    """A fresh state (accounts as configured, nothing else) with ``events`` applied."""
    state = make_engine().state
    for event in events:
        state.apply(event)
    return state


# ---- steps: abstract, resolved against the live engine when run ------------------------


@dataclass(frozen=True)
class MoveQuote:
    venue: str
    symbol: str
    move_ticks: int
    spread_ticks: int
    bid_units: int
    ask_units: int


@dataclass(frozen=True)
class PrintTrade:
    venue: str
    symbol: str
    aggressor: Side
    through_ticks: int  # 0 = at the touch
    qty_units: int


@dataclass(frozen=True)
class PublishMark:
    venue: str
    symbol: str
    offset_ticks: int


@dataclass(frozen=True)
class AnnounceFunding:
    venue: str
    symbol: str
    rate_bp: int  # basis points
    due_in_s: int  # 0 = settles now


@dataclass(frozen=True)
class Submit:
    account: AccountKey
    symbol: str
    side: Side
    type: OrderType
    tif: TimeInForce
    qty_units: int
    aggression_ticks: int  # limit price: ticks beyond our own touch toward the other side
    trigger_ticks: int
    trigger_source: TriggerSource
    expire_in_s: int
    post_only: bool
    reduce_only: bool
    clip: bool
    coid: str | None


@dataclass(frozen=True)
class Cancel:
    pick: int  # 0 = the most recent open order


@dataclass(frozen=True)
class Replace:
    pick: int
    aggression_ticks: int | None
    qty_units: int | None
    trigger_ticks: int | None


@dataclass(frozen=True)
class Amend:
    pick: int
    aggression_ticks: int | None
    qty_units: int | None


@dataclass(frozen=True)
class MarkShock:
    """The market gaps: quote and mark move ``percent`` at once (liquidations)."""

    venue: str
    symbol: str
    percent: int


@dataclass(frozen=True)
class CancelEverything:
    client: str | None
    venue: str | None
    symbol: str | None
    side: Side | None


@dataclass(frozen=True)
class ChangeState:
    scope: Scope
    state: TradingState


@dataclass(frozen=True)
class ResumeTrading:
    """The operator sets every restricted scope back to ACTIVE."""


@dataclass(frozen=True)
class Flatten:
    scope: Scope


@dataclass(frozen=True)
class DepositFunds:
    account: AccountKey
    amount: int


@dataclass(frozen=True)
class WithdrawFunds:
    account: AccountKey
    amount: int


@dataclass(frozen=True)
class AdvanceClock:
    ms: int


Step = (
    MoveQuote | PrintTrade | PublishMark | AnnounceFunding | Submit | Cancel | Replace
    | Amend | MarkShock | CancelEverything | ChangeState | ResumeTrading | Flatten
    | DepositFunds | WithdrawFunds | AdvanceClock
)

# ---- strategies -------------------------------------------------------------------------

# Weighted toward paper-a and BTC so orders and the moves that fill them meet often.
venues = st.sampled_from((VENUE_A, VENUE_A, VENUE_B))
symbols = st.sampled_from((BTC, BTC, ETH))
sides = st.sampled_from(Side)
sometimes = st.integers(0, 3).map(lambda n: n == 3)  # about one time in four
rarely = st.integers(0, 7).map(lambda n: n == 7)
order_accounts = st.sampled_from((*ACCOUNTS, *ACCOUNTS, NO_SUCH_ACCOUNT))

quote_moves = st.builds(
    MoveQuote, venue=venues, symbol=symbols, move_ticks=st.integers(-5, 5),
    spread_ticks=st.integers(1, 3), bid_units=st.integers(1, 3000),
    ask_units=st.integers(1, 3000))
trade_prints = st.builds(
    PrintTrade, venue=venues, symbol=symbols, aggressor=sides,
    through_ticks=st.integers(0, 3), qty_units=st.integers(1, 5000))
mark_prices = st.builds(PublishMark, venue=venues, symbol=symbols,
                        offset_ticks=st.integers(-8, 8))
funding_rates = st.builds(AnnounceFunding, venue=venues, symbol=symbols,
                          rate_bp=st.integers(-10, 10), due_in_s=st.integers(0, 90))


@st.composite
def order_submits(draw: st.DrawFn) -> Submit:
    """Any order type and side; the time in force and post-only fit the type (the
    malformed combinations are unit-tested elsewhere), reduce-only now and then."""
    order_type = draw(st.sampled_from((OrderType.LIMIT, OrderType.MARKET, OrderType.STOP,
                                       OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT,
                                       OrderType.TAKE_PROFIT_LIMIT)))
    if order_type.has_limit_price:
        tif = draw(st.sampled_from((TimeInForce.GTC, TimeInForce.GTD, TimeInForce.IOC,
                                    TimeInForce.FOK)))
    else:
        tif = draw(st.sampled_from((TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK)))
    resting = order_type.has_limit_price and tif in (TimeInForce.GTC, TimeInForce.GTD)
    return Submit(
        account=draw(order_accounts), symbol=draw(symbols), side=draw(sides), type=order_type,
        tif=tif, qty_units=draw(st.integers(1, 3000)),
        aggression_ticks=draw(st.integers(-4, 4)), trigger_ticks=draw(st.integers(-5, 5)),
        trigger_source=draw(st.sampled_from(TriggerSource)),
        expire_in_s=draw(st.integers(1, 120)),
        post_only=resting and draw(sometimes), reduce_only=draw(rarely), clip=draw(sometimes),
        coid=draw(st.sampled_from((None, None, None, "o-1", "o-2", "o-3"))))


cancels = st.builds(Cancel, pick=st.integers(0, 20))
replaces = st.builds(
    Replace, pick=st.integers(0, 20), aggression_ticks=st.none() | st.integers(-4, 4),
    qty_units=st.none() | st.integers(1, 3000), trigger_ticks=st.none() | st.integers(-5, 5))
amends = st.builds(
    Amend, pick=st.integers(0, 20), aggression_ticks=st.none() | st.integers(-4, 4),
    qty_units=st.none() | st.integers(1, 3000))
mark_shocks = st.builds(MarkShock, venue=venues, symbol=symbols,
                        percent=st.sampled_from((-75, -50, -25, 25, 50, 75)))
cancel_alls = st.builds(
    CancelEverything, client=st.none() | st.sampled_from(("alice", "bob")),
    venue=st.none() | venues, symbol=st.none() | symbols, side=st.none() | sides)
state_changes = st.builds(ChangeState, scope=st.sampled_from(SCOPES),
                          state=st.sampled_from(TradingState))
close_alls = st.builds(Flatten, scope=st.sampled_from(SCOPES))
deposits = st.builds(DepositFunds, account=order_accounts, amount=st.integers(0, 5000))
withdrawals = st.builds(WithdrawFunds, account=order_accounts, amount=st.integers(0, 30000))
clock_advances = st.builds(AdvanceClock, ms=st.integers(1, 120_000))

resumes = st.just(ResumeTrading())
kill_switches = st.one_of(state_changes, close_alls)


def _same(step: Step) -> Step:
    return step


def weighted(*choices: tuple[int, st.SearchStrategy[Step]]) -> st.SearchStrategy[Step]:
    """``one_of`` with weights. Hypothesis merges a branch listed twice into one, so
    each repeat is a distinct (identity-mapped) copy."""
    return st.one_of(*[strategy.map(_same) for weight, strategy in choices
                       for _ in range(weight)])


# Orders and market data dominate; kill switches are rarer (and trading resumes as
# often as it is restricted) so most of a run trades.
steps: st.SearchStrategy[Step] = weighted(
    (4, order_submits()), (5, quote_moves), (4, trade_prints), (1, mark_prices),
    (1, funding_rates), (1, cancels), (2, replaces), (2, amends), (1, mark_shocks),
    (1, clock_advances), (1, deposits),
    (1, withdrawals), (1, cancel_alls), (1, kill_switches), (1, resumes),
)
# A length first, then that many steps: plain st.lists averages only a handful of steps.
scenarios = st.integers(1, 60).flatmap(lambda n: st.lists(steps, min_size=n, max_size=n))


def submit(account: AccountKey, symbol: str, side: Side, order_type: OrderType, qty_units: int,
           *, aggression: int = 0, trigger: int = 0, reduce_only: bool = False,
           tif: TimeInForce = TimeInForce.GTC) -> Submit:
    """A Submit step with the common defaults filled in."""
    return Submit(account, symbol, side, order_type, tif, qty_units, aggression, trigger,
                  TriggerSource.LAST, 60, False, reduce_only, False, None)


@st.composite
def resting_orders(draw: st.DrawFn, account: AccountKey, symbol: str, opened: Side) -> Submit:
    """A passive limit, stop or stop-limit, mostly on the side that reduces the position
    ``opened``, reduce-only half the time."""
    order_type = draw(st.sampled_from((OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT)))
    side = draw(st.sampled_from((opened.opposite, opened.opposite, opened)))
    return submit(account, symbol, side, order_type, draw(st.integers(1, 1500)),
                  aggression=draw(st.integers(-3, 0)), trigger=draw(st.integers(-3, 3)),
                  reduce_only=draw(st.booleans()))


@st.composite
def sweeps(draw: st.DrawFn, venue: str, symbol: str) -> Step:
    """The market runs through resting orders: a quote jump or a print through the touch."""
    if draw(st.booleans()):
        return MoveQuote(venue, symbol, draw(st.sampled_from((-1, 1))) * draw(st.integers(1, 6)),
                         draw(st.integers(1, 2)), draw(st.integers(1, 3000)),
                         draw(st.integers(1, 3000)))
    return PrintTrade(venue, symbol, draw(sides), draw(st.integers(0, 3)),
                      draw(st.integers(1, 5000)))


@st.composite
def kill_switch_sessions(draw: st.DrawFn) -> list[Step]:
    """Open a position, rest orders around it, throw a kill switch (or close-all) on a
    scope covering the account, let the market run through, then anything at all."""
    account = draw(st.sampled_from(ACCOUNTS))
    venue, symbol = account[1], draw(symbols)
    scope = draw(st.sampled_from([s for s in SCOPES if s.covers(*account)]))
    switch = draw(st.sampled_from((
        ChangeState(scope, TradingState.REDUCE_ONLY), ChangeState(scope, TradingState.HALTED),
        ChangeState(scope, TradingState.REDUCE_ONLY), Flatten(scope))))
    opened = draw(sides)
    return [
        submit(account, symbol, opened, OrderType.MARKET, draw(st.integers(10, 1500))),
        *draw(st.lists(resting_orders(account, symbol, opened), min_size=1, max_size=6)),
        switch,
        *draw(st.lists(sweeps(venue, symbol), min_size=1, max_size=10)),
        *draw(st.lists(steps, max_size=10)),
    ]


# ---- the reference model: rebuilt from the event stream alone ---------------------------


@dataclass
class RefAccount:
    deposits: Decimal = ZERO
    withdrawals: Decimal = ZERO
    realized: Decimal = ZERO
    fees: Decimal = ZERO
    funding: Decimal = ZERO
    closed_realized: Decimal = ZERO  # Σ realized of round trips that completed

    @property
    def wallet(self) -> Decimal:
        return self.deposits - self.withdrawals + self.realized - self.fees + self.funding


@dataclass
class RefPosition:
    """Average-cost netting position, written independently of app.domain.positions."""

    qty: Decimal = ZERO
    avg: Decimal = ZERO
    trade_realized: Decimal = ZERO  # realized since the position last opened

    def grows(self, signed: Decimal) -> bool:
        """Would a fill of ``signed`` qty grow |position| or flip it?"""
        if not self.qty or (self.qty > 0) == (signed > 0):
            return True
        return abs(signed) > abs(self.qty)

    def fill(self, signed: Decimal, price: Decimal) -> tuple[Decimal, Decimal | None]:
        """Apply a fill; return (realized, realized of the round trip it closed, if any)."""
        qty = abs(signed)
        if not self.qty or (self.qty > 0) == (signed > 0):
            held = abs(self.qty)
            self.avg = price if not held else (held * self.avg + qty * price) / (held + qty)
            self.qty += signed
            return ZERO, None
        direction = 1 if self.qty > 0 else -1
        closing = min(qty, abs(self.qty))
        realized = (price - self.avg) * closing * direction
        self.trade_realized += realized
        self.qty -= closing * direction
        if self.qty:
            return realized, None
        closed, self.trade_realized, self.avg = self.trade_realized, ZERO, ZERO
        opening = qty - closing
        if opening:
            self.qty, self.avg = -direction * opening, price
        return realized, closed


FEE_RATE = {Liquidity.MAKER: Decimal("0.0002"), Liquidity.TAKER: Decimal("0.0005")}


def close(a: Decimal, b: Decimal, tol: Decimal = CENT) -> bool:
    return abs(a - b) <= tol


def severity(state: TradingState) -> int:
    return {TradingState.ACTIVE: 0, TradingState.REDUCE_ONLY: 1, TradingState.HALTED: 2}[state]


@dataclass
class Ledger:
    """Everything the properties need, derived only from the events seen so far."""

    latent_venues: frozenset[str]
    accounts: dict[AccountKey, RefAccount] = field(
        default_factory=lambda: {k: RefAccount() for k in ACCOUNTS})
    positions: dict[tuple[str, str, str], RefPosition] = field(
        default_factory=lambda: defaultdict(RefPosition))
    specs: dict[int, OrderSpec] = field(default_factory=dict)
    filled: dict[int, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    submitted_restricted: dict[int, bool] = field(default_factory=dict)
    trading_states: dict[Scope, TradingState] = field(default_factory=dict)
    order_ids: list[int] = field(default_factory=list)
    closing: dict[tuple[str, str, str], Decimal] = field(default_factory=dict)

    def effective_state(self, client: str, venue: str) -> TradingState:
        found = [self.trading_states.get(s, TradingState.ACTIVE) for s in (
            Scope(), Scope(client, None), Scope(None, venue), Scope(client, venue))]
        return max(found, key=severity)

    def account_of(self, event: Event) -> AccountKey | None:
        """The account an event belongs to (None for account-less events)."""
        if isinstance(event, FundsDeposited | FundsWithdrawn | OrderFilled | FundingApplied):
            return (event.client, event.venue)
        if isinstance(event, OrderSubmitted):
            return event.spec.account
        if isinstance(event, TradeClosed):
            return (event.trade.client, event.trade.venue)
        order_id = getattr(event, "order_id", None)
        if order_id is not None:
            return self.specs[order_id].account
        return None

    def apply(self, e: Event) -> None:
        if isinstance(e, FundsDeposited):
            self.accounts[(e.client, e.venue)].deposits += e.amount
        elif isinstance(e, FundsWithdrawn):
            self.accounts[(e.client, e.venue)].withdrawals += e.amount
        elif isinstance(e, OrderSubmitted):
            assert e.order_id not in self.specs or e.replaces is not None, e
            self.specs[e.order_id] = e.spec
            self.order_ids.append(e.order_id)
            self.submitted_restricted[e.order_id] = (
                self.effective_state(*e.spec.account) is not TradingState.ACTIVE)
        elif isinstance(e, OrderReplaceRequested):
            self.specs[e.new_order_id] = e.new_spec
        elif isinstance(e, OrderAmended):
            # An amend never leaves an order at or below what has filled.
            assert e.qty > self.filled[e.order_id], (e, self.filled[e.order_id])
            self.specs[e.order_id] = replace(self.specs[e.order_id], qty=e.qty, price=e.price)
        elif isinstance(e, OrderTriggered) and e.qty is not None:
            self.specs[e.order_id] = replace(self.specs[e.order_id], qty=e.qty)
        elif isinstance(e, PositionLiquidated):
            self.accounts[(e.client, e.venue)].fees += e.fee
        elif isinstance(e, OrderFilled):
            self._filled(e)
        elif isinstance(e, FundingApplied):
            pos = self.positions[(e.client, e.venue, e.symbol)]
            assert e.position_qty == pos.qty != 0, (e, pos)
            assert e.amount == -(e.position_qty * e.mark * e.rate), e
            self.accounts[(e.client, e.venue)].funding += e.amount
        elif isinstance(e, TradeClosed):
            self._trade_closed(e)
        elif isinstance(e, OrderExpired):
            spec = self.specs[e.order_id]
            if spec.type.executes_at_market:
                pass  # larger than the book: the rest expires, as Binance reports it
            else:
                assert spec.time_in_force is TimeInForce.GTD, ("only GTD orders expire", e)
                assert spec.expire_at is not None and spec.expire_at <= e.at, (spec, e)
        elif isinstance(e, TradingStateChanged):
            assert e.previous is self.trading_states.get(e.scope, TradingState.ACTIVE), e
            assert e.state is not e.previous, e
            if e.state is TradingState.ACTIVE:
                self.trading_states.pop(e.scope, None)
            else:
                self.trading_states[e.scope] = e.state

    def _filled(self, e: OrderFilled) -> None:
        spec = self.specs[e.order_id]
        assert (e.client, e.venue, e.symbol, e.side) == (
            spec.client, spec.venue, spec.symbol, spec.side), ("fill on the wrong book", e)
        # Fills happen on the grid, at or better than the limit, at the published fee.
        contract = CONTRACTS[e.symbol]
        assert e.qty > 0 and e.price % contract.tick == 0, e
        assert e.fee == e.qty * e.price * FEE_RATE[e.liquidity], e
        if spec.price is not None:
            assert (e.price <= spec.price) if e.side is Side.BUY else (e.price >= spec.price), (
                f"order {e.order_id} limited at {spec.price} filled at {e.price}")
        assert not spec.post_only or e.liquidity is Liquidity.MAKER, e
        # Property 4: an order never fills more than its quantity.
        self.filled[e.order_id] += e.qty
        assert self.filled[e.order_id] <= spec.qty, (
            f"order {e.order_id} filled {self.filled[e.order_id]} of {spec.qty}")
        pos = self.positions[(e.client, e.venue, e.symbol)]
        signed = e.qty if e.side is Side.BUY else -e.qty
        # Property 5: restricted accounts only ever shrink positions.
        state = self.effective_state(e.client, e.venue)
        if e.venue in self.latent_venues:
            # With latency a cancel can race a fill, so only orders the venue itself
            # holds to reduce-only are judged: reduce-only ones and those placed restricted.
            must_reduce = spec.reduce_only or self.submitted_restricted[e.order_id]
        else:
            must_reduce = state is not TradingState.ACTIVE or spec.reduce_only
        if must_reduce:
            assert not pos.grows(signed), (
                f"order {e.order_id} ({spec.side.value} {spec.qty}, reduce_only="
                f"{spec.reduce_only}) filled {e.qty} with position {pos.qty} while the account "
                f"is {state.value}")
        realized, closed = pos.fill(signed, e.price)
        account = self.accounts[(e.client, e.venue)]
        account.realized += realized
        account.fees += e.fee
        if closed is not None:
            self.closing[(e.client, e.venue, e.symbol)] = closed  # a TradeClosed must follow

    def _trade_closed(self, e: TradeClosed) -> None:
        t = e.trade
        expected = self.closing.pop((t.client, t.venue, t.symbol), None)
        assert expected is not None, ("a trade closed that the fills did not close", t)
        assert close(t.realized_pnl, expected), (t, expected)
        self.accounts[(t.client, t.venue)].closed_realized += t.realized_pnl


@dataclass
class FundingSchedule:
    """When funding must settle, per (venue, symbol): each announced period settles
    once, at the first clock reading at or after its ``funding_at``; an announcement
    for a time no later than the last settled period is ignored."""

    pending: dict[tuple[str, str], dict[datetime, Decimal]] = field(
        default_factory=lambda: defaultdict(dict))
    settled: dict[tuple[str, str], datetime] = field(default_factory=dict)

    def settle_due(self, now: datetime) -> list[tuple[tuple[str, str], Decimal]]:
        due = sorted((at, key, rate) for key, periods in self.pending.items()
                     for at, rate in periods.items() if at <= now)
        for at, key, _ in due:
            del self.pending[key][at]
            self.settled[key] = max(at, self.settled.get(key, at))
        return [(key, rate) for _, key, rate in due]

    def announce(self, key: tuple[str, str], rate: Decimal, at: datetime, now: datetime
                 ) -> list[tuple[tuple[str, str], Decimal]]:
        due = self.settle_due(now)
        last = self.settled.get(key)
        if last is None or at > last:
            self.pending[key][at] = rate
        return due + self.settle_due(now)


# ---- the harness -------------------------------------------------------------------------


def log(message: str) -> None:
    """Record what a step resolved to; hypothesis prints it with a failing example."""
    if currently_in_test_context():
        note(message)


class Harness:
    def __init__(self, latency_b: timedelta = NO_LATENCY, profile: RiskProfile = UNLIMITED):
        self.engine = make_engine(latency_b, profile)
        self.now = T0
        self.events: list[Event] = []
        latent = frozenset({VENUE_B}) if latency_b > NO_LATENCY else frozenset()
        self.ledger = Ledger(latent_venues=latent)
        self.touch: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}
        self.funding = FundingSchedule()
        self.funding_due: list[tuple[tuple[str, str], Decimal]] = []
        for venue in VENUES:
            for c in CONTRACTS.values():
                self.run(MoveQuote(venue, c.symbol, 0, 1, 2000, 2000), first=True)
        for client, venue in ACCOUNTS:
            self.run(DepositFunds((client, venue), int(STARTING_DEPOSIT)))

    # ---- running one step ---------------------------------------------------

    def run(self, step: Step, first: bool = False) -> None:
        self.now += STEP_TIME
        before = {key: self.snapshot(key) for key in ACCOUNTS}
        self.funding_due = []
        events, allowed, market_venue = self.execute(step, first)
        self.events.extend(events)
        for event in events:
            self.ledger.apply(event)
        assert not self.ledger.closing, ("a fill closed a trade but no TradeClosed followed",
                                         self.ledger.closing)
        self.check_funding(events)
        self.check_isolation(events, before, allowed, market_venue)
        self.check_invariants()

    def execute(self, step: Step, first: bool
                ) -> tuple[list[Event], set[AccountKey], str | None]:
        """Run ``step``; return its events, the accounts it may touch, and its market venue."""
        engine = self.engine
        if isinstance(step, AdvanceClock):
            self.now += timedelta(milliseconds=step.ms)
            log(f"advance to {self.now.isoformat()}")
            self.funding_due = self.funding.settle_due(self.now)
            return engine.advance(self.now), set(ACCOUNTS), None
        if isinstance(step, MarkShock):
            c = CONTRACTS[step.symbol]
            bid, ask = self.touch[(step.venue, step.symbol)]
            moved = max((bid * (100 + step.percent) / 100).quantize(c.tick), c.tick)
            self.touch[(step.venue, step.symbol)] = (moved, moved + (ask - bid))
            quote = Quote(step.venue, step.symbol, moved, 2000 * c.step, moved + (ask - bid),
                          2000 * c.step, self.now)
            mark = MarkPrice(step.venue, step.symbol, moved, self.now)
            log(f"market shock {quote} {mark}")
            self.funding_due = self.funding.settle_due(self.now)
            on_venue = {k for k in ACCOUNTS if k[1] == step.venue}
            return (engine.on_market(quote, self.now) + engine.on_market(mark, self.now),
                    on_venue, step.venue)
        if isinstance(step, MoveQuote | PrintTrade | PublishMark | AnnounceFunding):
            update = self.market_update(step, first)
            log(f"market {update}")
            if isinstance(update, FundingRate):
                self.funding_due = self.funding.announce(
                    (update.venue, update.symbol), update.rate, update.funding_at, self.now)
            else:
                self.funding_due = self.funding.settle_due(self.now)
            on_venue = {k for k in ACCOUNTS if k[1] == step.venue}
            return engine.on_market(update, self.now), on_venue, step.venue
        if isinstance(step, ResumeTrading):
            events: list[Event] = []
            for scope in list(self.ledger.trading_states):
                log(f"command resume {scope}")
                events += engine.handle(
                    SetTradingState(scope, TradingState.ACTIVE, "resume"), self.now)
            return events, set(ACCOUNTS), None
        command, allowed = self.command(step)
        log(f"command {command}")
        try:
            return engine.handle(command, self.now), allowed, None
        except CommandRefused as refused:
            log(f"  refused {refused.code}")
            return [], set(), None

    def market_update(self, step: Step, first: bool) -> MarketUpdate:
        c = CONTRACTS[step.symbol]
        key = (step.venue, step.symbol)
        if isinstance(step, MoveQuote):
            if first:
                bid = c.start_bid
            else:
                bid = max(self.touch[key][0] + step.move_ticks * c.tick, c.tick)
            ask = bid + step.spread_ticks * c.tick
            self.touch[key] = (bid, ask)
            return Quote(step.venue, step.symbol, bid, step.bid_units * c.step, ask,
                         step.ask_units * c.step, self.now)
        bid, ask = self.touch[key]
        if isinstance(step, PrintTrade):
            if step.aggressor is Side.SELL:
                price = max(bid - step.through_ticks * c.tick, c.tick)
            else:
                price = ask + step.through_ticks * c.tick
            return TradePrint(step.venue, step.symbol, price, step.qty_units * c.step,
                              step.aggressor, self.now)
        if isinstance(step, PublishMark):
            return MarkPrice(step.venue, step.symbol,
                             max(bid + step.offset_ticks * c.tick, c.tick), self.now)
        assert isinstance(step, AnnounceFunding)
        rate = Decimal(step.rate_bp) / Decimal(10000)
        due = self.now + timedelta(seconds=step.due_in_s)
        return FundingRate(step.venue, step.symbol, rate, due, self.now)

    def command(self, step: Step) -> tuple[Command, set[AccountKey]]:
        if isinstance(step, Submit):
            return SubmitOrder(self.order_spec(step), clip_to_position=step.clip), {step.account}
        if isinstance(step, Cancel | Replace | Amend):
            order_id = self.pick_order(step.pick)
            allowed = {self.ledger.specs[order_id].account} if order_id in self.ledger.specs \
                else set()
            if isinstance(step, Cancel):
                return CancelOrder(order_id), allowed
            if isinstance(step, Amend):
                return self.amend_command(step, order_id), allowed
            return self.replace_command(step, order_id), allowed
        if isinstance(step, CancelEverything):
            allowed = {k for k in ACCOUNTS if (step.client in (None, k[0]))
                       and (step.venue in (None, k[1]))}
            return CancelAll(step.client, step.venue, step.symbol, step.side), allowed
        if isinstance(step, ChangeState):
            allowed = {k for k in ACCOUNTS if step.scope.covers(*k)}
            return SetTradingState(step.scope, step.state, "property test"), allowed
        if isinstance(step, Flatten):
            allowed = {k for k in ACCOUNTS if step.scope.covers(*k)}
            return CloseAll(step.scope, "property test"), allowed
        if isinstance(step, DepositFunds):
            return Deposit(*step.account, Decimal(step.amount)), {step.account}
        assert isinstance(step, WithdrawFunds)
        return Withdraw(*step.account, Decimal(step.amount)), {step.account}

    def pick_order(self, pick: int) -> int:
        """An open order if there is one (0 = the newest), else any order we know of."""
        ids = sorted(o.order_id for orders in self.engine.state.open_orders.values()
                     for o in orders.values()) or self.ledger.order_ids
        if not ids:
            return 1  # no order yet: refused as UNKNOWN_ORDER
        return ids[-1 - pick % len(ids)]

    def limit_price(self, venue: str, symbol: str, side: Side, aggression: int) -> Decimal:
        """A price on tick ``aggression`` ticks from our own touch toward the other side."""
        c = CONTRACTS[symbol]
        bid, ask = self.touch[(venue, symbol)]
        if side is Side.BUY:
            return max(bid + aggression * c.tick, c.tick)
        return max(ask - aggression * c.tick, c.tick)

    def trigger_price(self, venue: str, symbol: str, ticks: int) -> Decimal:
        c = CONTRACTS[symbol]
        return max(self.touch[(venue, symbol)][0] + ticks * c.tick, c.tick)

    def order_spec(self, step: Submit) -> OrderSpec:
        client, venue = step.account
        c = CONTRACTS[step.symbol]
        price = trigger = expire_at = None
        if step.type.has_limit_price:
            price = self.limit_price(venue, step.symbol, step.side, step.aggression_ticks)
        if step.type.is_conditional:
            trigger = self.trigger_price(venue, step.symbol, step.trigger_ticks)
        if step.tif is TimeInForce.GTD:
            expire_at = self.now + timedelta(seconds=step.expire_in_s)
        return OrderSpec(
            client=client, venue=venue, symbol=step.symbol, side=step.side, type=step.type,
            qty=step.qty_units * c.step, price=price, trigger_price=trigger,
            trigger_source=step.trigger_source, time_in_force=step.tif, expire_at=expire_at,
            post_only=step.post_only, reduce_only=step.reduce_only, client_order_id=step.coid)

    def replace_command(self, step: Replace, order_id: int) -> ReplaceOrder:
        spec = self.ledger.specs.get(order_id)
        if spec is None:
            return ReplaceOrder(order_id, new_qty=Decimal(1))
        c = CONTRACTS[spec.symbol]
        return ReplaceOrder(
            order_id,
            new_price=None if step.aggression_ticks is None else self.limit_price(
                spec.venue, spec.symbol, spec.side, step.aggression_ticks),
            new_qty=None if step.qty_units is None else step.qty_units * c.step,
            new_trigger_price=None if step.trigger_ticks is None else self.trigger_price(
                spec.venue, spec.symbol, step.trigger_ticks))

    def amend_command(self, step: Amend, order_id: int) -> AmendOrder:
        spec = self.ledger.specs.get(order_id)
        if spec is None:
            return AmendOrder(order_id, new_qty=Decimal(1))
        c = CONTRACTS[spec.symbol]
        price = None
        if step.aggression_ticks is not None and spec.type.has_limit_price:
            price = self.limit_price(spec.venue, spec.symbol, spec.side, step.aggression_ticks)
        return AmendOrder(order_id, new_price=price,
                          new_qty=None if step.qty_units is None else step.qty_units * c.step)

    def drain(self) -> None:
        """Let every latency queue empty out (and funding come due), checking as usual."""
        self.run(AdvanceClock(120_000))

    # ---- checks ---------------------------------------------------------------

    def snapshot(self, key: AccountKey) -> tuple:
        state = self.engine.state
        a = state.accounts[key]
        positions = {s: (p.qty, p.avg_entry, p.realized_pnl, p.fees, p.funding)
                     for (c, v, s), p in state.positions.items() if (c, v) == key}
        return (a.wallet, a.deposits, a.withdrawals, a.realized_pnl, a.fees, a.funding,
                positions)

    def check_funding(self, events: list[Event]) -> None:
        """Each due settlement pays every open position on its book exactly once, at the
        announced rate and the venue's current reference price."""
        expected: Counter[tuple[str, str, str, Decimal]] = Counter()
        for (venue, symbol), rate in self.funding_due:
            for client, v in ACCOUNTS:
                if v == venue and self.ledger.positions[(client, venue, symbol)].qty:
                    expected[(client, venue, symbol, rate)] += 1
        applied = [e for e in events if isinstance(e, FundingApplied)]
        assert Counter((e.client, e.venue, e.symbol, e.rate) for e in applied) == expected, (
            applied, self.funding_due)
        for e in applied:
            assert e.at == self.now, e
            assert e.mark == self.engine.venues[e.venue].reference_price(e.symbol), e

    def check_isolation(self, events: list[Event], before: dict[AccountKey, tuple],
                        allowed: set[AccountKey], market_venue: str | None) -> None:
        """Property 7: a step changes only the accounts its events belong to, and those
        events belong only to the accounts the step addressed."""
        touched = set()
        # A breaker acts on its client as a whole (equity and streaks are the client's,
        # across venues): a trip opens every account of that client to the step.
        allowed = allowed | {(c, v) for e in events if isinstance(e, BreakerTripped)
                             for c, v in ACCOUNTS if c == e.client}
        for event in events:
            key = self.ledger.account_of(event)
            if key is None:
                continue
            touched.add(key)
            if isinstance(event, FundingApplied) and market_venue is not None:
                continue  # the clock settles any venue's due funding (checked on its own)
            assert key in allowed, f"{type(event).__name__} for {key} from a step for {allowed}"
        for key in ACCOUNTS:
            if key not in touched:
                assert self.snapshot(key) == before[key], f"{key} changed without its own event"

    def check_invariants(self) -> None:
        engine, ledger = self.engine, self.ledger
        state = engine.state
        closed_by_account: dict[AccountKey, Decimal] = defaultdict(Decimal)
        for trade in state.closed_trades:
            closed_by_account[(trade.client, trade.venue)] += trade.realized_pnl

        for key in ACCOUNTS:
            client, venue = key
            account = state.accounts[key]
            summary = engine.summary(client, venue)
            ref = ledger.accounts[key]
            prices = {s: engine.venues[venue].reference_price(s) for s in CONTRACTS}

            # Positions: the engine's agree with the event-stream reference.
            unrealized = ref_unrealized = open_trade_realized = ZERO
            for symbol in CONTRACTS:
                pos = state.positions.get((client, venue, symbol))
                mine = ledger.positions[(client, venue, symbol)]
                qty = pos.qty if pos is not None else ZERO
                assert qty == mine.qty, (key, symbol, qty, mine.qty)
                if pos is None:
                    continue
                open_trade_realized += pos.realized_pnl
                if pos.qty:
                    assert close(pos.avg_entry, mine.avg, Decimal("1e-9")), (pos, mine)
                    mark = prices[symbol] if prices[symbol] is not None else pos.avg_entry
                    unrealized += pos.qty * (mark - pos.avg_entry)
                    ref_unrealized += mine.qty * (mark - mine.avg)

            # 1. Capital conservation: free capital + capital in positions is the wallet
            #    (engine's own summary) and matches the totals rebuilt from the events.
            in_positions = summary.margin_used - summary.unrealized_pnl
            free = summary.available + summary.order_margin
            expected = (summary.deposits - summary.withdrawals + summary.realized_pnl
                        - summary.fees + summary.funding)
            assert close(free + in_positions, expected), (key, free, in_positions, expected)
            assert close(free + in_positions, ref.wallet), (key, free + in_positions, ref)
            assert account.deposits == ref.deposits, (key, account, ref)
            assert account.withdrawals == ref.withdrawals, (key, account, ref)
            assert account.fees == ref.fees, (key, account, ref)
            assert account.funding == ref.funding, (key, account, ref)
            assert close(account.realized_pnl, ref.realized), (key, account, ref)
            assert close(account.wallet, ref.wallet), (key, account.wallet, ref.wallet)

            # 2. Equity reconciliation (seed 003).
            assert close(summary.equity, account.wallet + unrealized), (key, summary)
            assert close(summary.unrealized_pnl, unrealized), (key, summary, unrealized)
            assert close(unrealized, ref_unrealized), (key, unrealized, ref_unrealized)
            assert close(account.wallet, account.expected_wallet), (key, account)

            # 6. P&L accuracy (seed 001): realized = Σ closed trades + Σ open-trade realized.
            assert close(account.realized_pnl,
                         closed_by_account[key] + open_trade_realized), (
                key, account.realized_pnl, closed_by_account[key], open_trade_realized)
            open_ref = sum((ledger.positions[(client, venue, s)].trade_realized
                            for s in CONTRACTS), ZERO)
            assert close(ref.realized, ref.closed_realized + open_ref), (key, ref, open_ref)

        # 4. No order fills beyond its quantity.
        for order in state.orders.values():
            assert ZERO <= order.filled_qty <= order.spec.qty, order

        # 7. The running totals kept per (account, symbol, side) equal a scan of the
        #    open orders, and so does the margin they reserve.
        for key in ACCOUNTS:
            client, venue = key
            open_orders = list(state.open_orders.get(key, {}).values())
            for (symbol, side), group in state.resting.groups(client, venue):
                mine = [o for o in open_orders if (o.spec.symbol, o.spec.side) == (symbol, side)]
                assert sorted(group.orders) == sorted(o.order_id for o in mine)
                assert group.qty == sum((o.remaining_qty for o in mine), ZERO)
            assert close(engine.summary(client, venue).order_margin,
                         scanned_order_margin(engine, client, venue)), key

    def check_replay(self) -> None:
        """3. The events alone rebuild exactly the live state."""
        rebuilt = replay(self.events)
        live = self.engine.state.comparable()
        again = rebuilt.comparable()
        assert again.keys() == live.keys()
        for part in live:
            assert again[part] == live[part], f"replay differs in {part}"


def scanned_order_margin(engine: Engine, client: str, venue: str) -> Decimal:
    """The reference: every open order's part that would add exposure, at its limit
    price (else the reference price), over the leverage."""
    account = engine.state.accounts[(client, venue)]
    total = ZERO
    for order in engine.state.open_orders.get((client, venue), {}).values():
        spec = order.spec
        pos = engine.state.positions.get((client, venue, spec.symbol))
        reducible = ZERO
        if pos is not None and (pos.qty > 0) == (spec.side is Side.SELL) and pos.qty:
            reducible = abs(pos.qty)
        adding = order.remaining_qty - reducible
        price = spec.price or engine.venues[venue].reference_price(spec.symbol)
        if adding > 0 and price is not None:
            total += adding * price / account.leverage
    return total


def run_scenario(scenario: list[Step], latency_b: timedelta = NO_LATENCY,
                 profile: RiskProfile = UNLIMITED) -> Harness:
    harness = Harness(latency_b, profile)
    for i, step in enumerate(scenario):
        harness.run(step)
        if i == len(scenario) // 2:
            harness.check_replay()
    harness.drain()
    harness.check_replay()
    return harness


@st.composite
def liquidation_sessions(draw: st.DrawFn) -> list[Step]:
    """A leveraged position, orders around it, then the market gaps against it (the venue
    liquidates on the new mark), the book runs on, then anything at all."""
    account = draw(st.sampled_from(ACCOUNTS))
    venue, symbol = account[1], draw(symbols)
    opened = draw(sides)
    against = -1 if opened is Side.BUY else 1
    return [
        submit(account, symbol, opened, OrderType.MARKET, draw(st.integers(1500, 3000))),
        *draw(st.lists(resting_orders(account, symbol, opened), max_size=4)),
        *draw(st.lists(amends, max_size=2)),
        MarkShock(venue, symbol, against * draw(st.sampled_from((25, 50, 75)))),
        *draw(st.lists(sweeps(venue, symbol), max_size=5)),
        *draw(st.lists(steps, max_size=10)),
    ]


# ---- the tests ----------------------------------------------------------------------------

FAST = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SLOW = settings(max_examples=5000, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FAST
@given(scenarios)
def test_invariants_hold_after_every_step(scenario: list[Step]) -> None:
    run_scenario(scenario)


@FAST
@given(scenarios)
def test_invariants_hold_with_venue_latency(scenario: list[Step]) -> None:
    run_scenario(scenario, latency_b=SOME_LATENCY)


@FAST
@given(liquidation_sessions())
def test_capital_conservation_and_replay_hold_through_liquidations(
        scenario: list[Step]) -> None:
    """Liquidations (reduce-only market orders and a fee, from the venue's mark) keep
    every invariant: capital conservation, equity reconciliation, replay identity."""
    run_scenario(scenario)


@FAST
@given(kill_switch_sessions())
def test_kill_switches_hold_resting_orders_to_reducing(scenario: list[Step]) -> None:
    run_scenario(scenario)


@FAST
@given(scenarios | kill_switch_sessions())
def test_no_fill_grows_a_position_a_breaker_restricted(scenario: list[Step]) -> None:
    """Breakers move accounts to reduce-only or halted on their own (the trading-state
    events say so); the ledger's property 5 then holds every fill to shrinking, and the
    risk state (trips, peaks, losing streaks) must replay exactly."""
    run_scenario(scenario, profile=TIGHT_BREAKERS)


@pytest.mark.slow
@SLOW
@given(st.sampled_from((NO_LATENCY, SOME_LATENCY)), scenarios | kill_switch_sessions())
def test_invariants_hold_after_every_step_many_examples(
        latency_b: timedelta, scenario: list[Step]) -> None:
    run_scenario(scenario, latency_b)


# ---- the harness itself must be able to fail ------------------------------------------------


def test_harness_runs_a_round_trip_with_exact_numbers() -> None:
    """A known sequence through the harness: buy, mark up, sell; every check runs."""
    h = run_scenario([
        submit(("alice", VENUE_A), BTC, Side.BUY, OrderType.MARKET, 1000),
        PublishMark(VENUE_A, BTC, 10),
        submit(("alice", VENUE_A), BTC, Side.SELL, OrderType.MARKET, 1000),
    ])
    account = h.engine.state.accounts[("alice", VENUE_A)]
    # Bought 1 BTC at the 30000.1 ask, sold 1 at the 30000.0 bid: -0.1 realized;
    # taker fees 0.05 % of 30000.1 + 0.05 % of 30000.0 = 15.00005 + 15.
    assert account.realized_pnl == Decimal("-0.1")
    assert account.fees == Decimal("30.00005")
    assert account.wallet == Decimal("19969.89995")
    assert h.ledger.accounts[("alice", VENUE_A)].closed_realized == Decimal("-0.1")
    assert [t.realized_pnl for t in h.engine.state.closed_trades] == [Decimal("-0.1")]


def test_harness_detects_a_wallet_that_drifts() -> None:
    h = Harness()
    h.engine.state.accounts[("bob", VENUE_B)].wallet += CENT * 2
    with pytest.raises(AssertionError):
        h.check_invariants()


def test_harness_detects_a_change_to_another_account() -> None:
    h = Harness()
    before = {key: h.snapshot(key) for key in ACCOUNTS}
    h.engine.state.accounts[("bob", VENUE_A)].fees += CENT
    with pytest.raises(AssertionError, match="without its own event"):
        h.check_isolation([], before, set(), None)


def test_harness_detects_a_replay_mismatch() -> None:
    h = Harness()
    h.events.pop()  # forget the last deposit
    with pytest.raises(AssertionError, match="replay differs"):
        h.check_replay()
