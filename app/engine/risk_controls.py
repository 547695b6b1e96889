"""The engine's risk controls beyond an order's own rules: each client's profile
(pre-trade limits, impact-aware sizing, liquidity filters) and its circuit
breakers. Runs inside the engine, on its clock, so a breaker trips at the same
event in the server, in ``simulate`` and in a backtest.

Breakers are evaluated after any step in which a client closed a trade, on a
new mark at most once a second of engine time per client (equity moves with
prices), and as time passes (session runtime). A trip records ``BreakerTripped``
and moves the client to its breaker's state (never to a milder one than it is
in); an operator's ``ResetBreaker`` clears it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from app.domain.events import Event, TradeClosed
from app.domain.market import TradePrint
from app.domain.orders import OrderSpec, OrderType, Side
from app.domain.rate_limits import OrderRates
from app.domain.rejections import CommandRefused, RejectCode, Rejection
from app.domain.risk import (
    STRATEGY_ORDERS_PER_MINUTE,
    STRATEGY_ORDERS_PER_SECOND,
    UNLIMITED,
    BreakerReset,
    BreakerTripped,
    ResetBreaker,
    RiskProfile,
    RiskProfileChanged,
    SetRiskProfile,
    SizingMode,
    SizingRequest,
)
from app.domain.trading_state import Scope, TradingState
from app.engine.breakers import breaches, track_equity
from app.engine.client_limits import ClientUsage, check_client_limits
from app.engine.risk import OrderContext
from app.engine.sizing import BPS, Depth, impact_bps, largest_within

if TYPE_CHECKING:
    from app.engine.engine import Engine

R = RejectCode
ZERO = Decimal(0)
MARK_EVALUATION_INTERVAL = timedelta(seconds=1)
VOLUME_WINDOW = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Sized:
    """How impact-aware sizing changed an order (becomes ``OrderSizedDown``)."""

    requested_qty: Decimal
    qty: Decimal
    requested_impact_bps: Decimal | None
    impact_bps: Decimal
    max_impact_bps: Decimal
    mode: SizingMode


class RiskControls:
    def __init__(self, engine: Engine, profiles: dict[str, RiskProfile],
                 default: RiskProfile = UNLIMITED):
        self.engine = engine
        self.configured = profiles  # from the configuration; events override them
        self.default = default
        self._dirty: set[str] = set()  # clients to evaluate after this step
        self._evaluated_at: dict[str, datetime] = {}
        # Traded notional per (venue, symbol) over the last minute, for the volume
        # filter; kept only while some profile uses that filter.
        self._prints: dict[tuple[str, str], deque[tuple[datetime, Decimal]]] = {}
        self._volume: dict[tuple[str, str], Decimal] = {}
        self.track_volume = False
        self._refresh_volume_tracking()
        self.strategy_rates = OrderRates()
        # Trips since the bus last took them (it audits them in the same commit).
        self.trips: list[BreakerTripped] = []

    @property
    def due(self) -> bool:
        """Has this step made a client's breakers due for evaluation?"""
        return bool(self._dirty)

    # ---- profiles ---------------------------------------------------------------------

    def profile(self, client: str) -> RiskProfile:
        return self.engine.state.risk_profiles.get(client) or self.configured.get(client) \
            or self.default

    def set_profile(self, cmd: SetRiskProfile, now: datetime, out: list[Event]) -> None:
        state = self.engine.state
        if not any(c == cmd.client for c, _ in state.accounts):
            raise CommandRefused(R.UNKNOWN_ACCOUNT, f"client {cmd.client!r} has no account")
        self.engine._emit(RiskProfileChanged(cmd.client, cmd.profile, cmd.reason, cmd.actor,
                                             now), out)
        self._refresh_volume_tracking()
        self._dirty.add(cmd.client)  # new limits apply to the current figures at once

    def _refresh_volume_tracking(self) -> None:
        profiles = [*self.configured.values(), *self.engine.state.risk_profiles.values(),
                    self.default]
        self.track_volume = any(p.sizing.min_volume_1m_notional is not None for p in profiles)

    # ---- pre-trade ----------------------------------------------------------------------

    def check(self, spec: OrderSpec, qty: Decimal, ctx: OrderContext,
              request: SizingRequest | None, now: datetime
              ) -> tuple[Rejection | None, Decimal, Sized | None]:
        """The client's limits, liquidity filters and sizing for an order that passed
        its own checks; returns the rejection, or the qty to send and how sizing
        changed it."""
        engine = self.engine
        profile = self.profile(spec.client)
        if profile is UNLIMITED and request is None and spec.tags.strategy is None:
            return None, qty, None  # the fast path: nothing configured
        if spec.tags.strategy is not None:
            # Strategies are held to seed 004's caps on the engine clock, so a replay
            # or a backtest refuses the same orders (API callers get a 429 before
            # their order reaches the engine: app/services/orders.py).
            refusal = self.strategy_rates.take(
                spec.client, now, profile.orders_per_second or STRATEGY_ORDERS_PER_SECOND,
                profile.orders_per_minute or STRATEGY_ORDERS_PER_MINUTE)
            if refusal is not None:
                return Rejection(R.RATE_LIMITED,
                                 f"more than {refusal.limit} orders a {refusal.window} for "
                                 f"{spec.client}; retry in "
                                 f"{refusal.retry_after.total_seconds():.3f} s"), qty, None
        venue = engine.venues[spec.venue]
        increases = ctx.position.would_increase(spec.side, qty)
        price = _valuation_price(spec, ctx)
        if price is None:
            return None, qty, None  # check_order refused it already
        open_orders = sum(len(engine.state.open_orders.get((spec.client, v), ()))
                          for v in engine.venues)
        usage = ClientUsage(open_orders=open_orders, mark=venue.marks.get(spec.symbol),
                            leverage=ctx.leverage, margin_used=ctx.margin_in_use,
                            equity=ctx.equity)
        rejection = check_client_limits(spec, qty, price, increases, profile, usage)
        if rejection is not None or not increases:
            return rejection, qty, None
        rejection = self._liquidity_filters(spec, profile, now)
        if rejection is not None:
            return rejection, qty, None
        return self._size(spec, qty, ctx, profile, request)

    def _liquidity_filters(self, spec: OrderSpec, profile: RiskProfile, now: datetime
                           ) -> Rejection | None:
        policy = profile.sizing
        venue = self.engine.venues[spec.venue]
        if policy.max_spread_bps is not None:
            top = venue.book(spec.symbol)
            bid, ask = top.bid, top.ask
            if bid is None or ask is None or bid <= 0:
                return Rejection(R.SPREAD_TOO_WIDE, f"{spec.symbol} has no two-sided quote")
            spread = (ask - bid) / ((ask + bid) / 2) * BPS
            if spread > policy.max_spread_bps:
                return Rejection(R.SPREAD_TOO_WIDE,
                                 f"the {spec.symbol} spread is {spread:.1f} bps; the limit "
                                 f"is {policy.max_spread_bps} bps")
        if policy.min_l1_depth_notional is not None:
            first = next(iter(venue.liquidity(spec.symbol, spec.side)), None)
            depth = first[0] * first[1] if first is not None else ZERO
            if depth < policy.min_l1_depth_notional:
                return Rejection(R.DEPTH_TOO_THIN,
                                 f"the best {spec.symbol} level holds {depth:.2f}; at least "
                                 f"{policy.min_l1_depth_notional} is required")
        if policy.min_volume_1m_notional is not None:
            volume = self.volume_1m(spec.venue, spec.symbol, now)
            if volume < policy.min_volume_1m_notional:
                return Rejection(R.VOLUME_TOO_LOW,
                                 f"{volume:.2f} of {spec.symbol} traded in the last minute; "
                                 f"at least {policy.min_volume_1m_notional} is required")
        return None

    def _size(self, spec: OrderSpec, qty: Decimal, ctx: OrderContext, profile: RiskProfile,
              request: SizingRequest | None
              ) -> tuple[Rejection | None, Decimal, Sized | None]:
        policy = profile.sizing
        mode = request.mode if request is not None else policy.mode
        if request is None and mode is SizingMode.NONE and spec.tags.strategy is not None:
            mode = SizingMode.CONSERVATIVE  # strategies size to the book by default
        if mode is SizingMode.NONE or not _takes_liquidity(spec, self.engine, ctx):
            return None, qty, None
        cap = request.max_impact_bps if request is not None and request.max_impact_bps \
            is not None else policy.cap_bps(mode)
        venue = self.engine.venues[spec.venue]
        top = venue.book(spec.symbol)
        if top.bid is None or top.ask is None:
            return None, qty, None  # one-sided: the venue's own checks decide
        mid = (top.bid + top.ask) / 2
        limit = spec.price
        levels = ((p, s) for p, s in venue.liquidity(spec.symbol, spec.side)
                  if limit is None or (p <= limit if spec.side is Side.BUY else p >= limit))
        depth = Depth.of(levels, enough=qty)
        # A limit caps what is taken now; the rest would rest, costing no impact.
        taking = qty if limit is None else min(qty, depth.total_qty)
        impact = impact_bps(depth, taking, mid)
        if impact is not None and impact <= cap:
            return None, qty, None
        shown = "more than the book holds" if impact is None else f"{impact:.1f} bps"
        if mode is SizingMode.STRICT:
            return Rejection(R.IMPACT_TOO_HIGH,
                             f"expected impact {shown} is above {cap} bps"), qty, None
        inst = ctx.instrument
        sized = largest_within(depth, mid, cap, taking, inst.step_size)
        if limit is not None:
            sized += qty - taking  # the resting part stays
        if sized < inst.min_qty or sized * mid < inst.min_notional:
            return Rejection(R.IMPACT_TOO_HIGH,
                             f"expected impact {shown} is above {cap} bps, and the largest "
                             f"size within it is below the instrument's minimum"), qty, None
        after = impact_bps(depth, min(sized, depth.total_qty), mid) or ZERO
        return None, sized, Sized(qty, sized, impact, after.quantize(Decimal("0.01")), cap,
                                  mode)

    # ---- 1-minute volume ------------------------------------------------------------

    def on_trade_print(self, update: TradePrint) -> None:
        key = (update.venue, update.symbol)
        prints = self._prints.get(key)
        if prints is None:
            prints = self._prints[key] = deque()
        notional = update.price * update.qty
        prints.append((update.ts, notional))
        self._volume[key] = self._volume.get(key, ZERO) + notional
        self._expire(key, update.ts)

    def volume_1m(self, venue: str, symbol: str, now: datetime) -> Decimal:
        self._expire((venue, symbol), now)
        return self._volume.get((venue, symbol), ZERO)

    def _expire(self, key: tuple[str, str], now: datetime) -> None:
        prints = self._prints.get(key)
        if not prints:
            return
        horizon = now - VOLUME_WINDOW
        total = self._volume[key]
        while prints and prints[0][0] <= horizon:
            total -= prints.popleft()[1]
        self._volume[key] = total

    # ---- breakers --------------------------------------------------------------------------

    def note(self, event: Event) -> None:
        """Called for every emitted event: a closed trade makes its client due."""
        if type(event) is TradeClosed:
            self._dirty.add(event.trade.client)

    def marked(self, client: str, now: datetime) -> None:
        """A new mark for a symbol ``client`` holds (the engine's liquidation pass
        calls this per holder): due again at most once a second of engine time."""
        last = self._evaluated_at.get(client)
        if last is None or now - last >= MARK_EVALUATION_INTERVAL:
            self._dirty.add(client)

    def marked_quietly(self, client: str, times: Iterable[datetime]) -> None:
        """``marked`` then ``after_step`` at each of ``times``, for a client whose
        breakers are all off and nothing else due (quiet points, app/engine/quiet.py):
        all an evaluation would change is when it last happened."""
        last = self._evaluated_at.get(client)
        for now in times:
            if last is None or now - last >= MARK_EVALUATION_INTERVAL:
                last = now
        if last is not None:
            self._evaluated_at[client] = last

    def on_time(self, now: datetime) -> None:
        """Session runtime limits trip with time alone."""
        for client, state in self.engine.state.risk.items():
            if state.session_started is not None and \
                    self.profile(client).breakers.session_max_runtime_minutes is not None:
                last = self._evaluated_at.get(client)
                if last is None or now - last >= MARK_EVALUATION_INTERVAL:
                    self._dirty.add(client)

    def after_step(self, now: datetime, out: list[Event]) -> None:
        """Evaluate the clients this step made due."""
        while self._dirty:
            client = min(self._dirty)  # a fixed order: replays must match
            self._dirty.discard(client)
            self.evaluate(client, now, out)

    def take_trips(self) -> list[BreakerTripped]:
        trips, self.trips = self.trips, []
        return trips

    def client_equity(self, client: str) -> Decimal:
        engine = self.engine
        return sum((engine.summary(c, v).equity for c, v in engine.state.accounts
                    if c == client), ZERO)

    def evaluate(self, client: str, now: datetime, out: list[Event]) -> None:
        engine = self.engine
        policy = self.profile(client).breakers
        self._evaluated_at[client] = now
        if not policy.any_on:
            return
        equity = self.client_equity(client)
        state = engine.state.risk_of(client)
        if policy.daily_loss_pct is not None or policy.max_drawdown_pct is not None:
            record = track_equity(client, state, equity, now)
            if record is not None:
                engine._emit(record, out)
        for breaker, message, figures in breaches(policy, state, equity, now):
            action = policy.action(breaker)
            trip = BreakerTripped(client, breaker, action, message, figures, now)
            engine._emit(trip, out)
            self.trips.append(trip)
            scope = Scope(client, None)
            current = engine.state.trading_states.get(scope, TradingState.ACTIVE)
            if action.severity > current.severity:
                engine._change_state(scope, action, f"{breaker.tag}: {message}",
                                     f"breaker:{breaker.value}", now, out)

    def reset(self, cmd: ResetBreaker, now: datetime, out: list[Event]) -> None:
        engine = self.engine
        state = engine.state.risk.get(cmd.client)
        trip = state.tripped.get(cmd.breaker) if state is not None else None
        if state is None or trip is None:
            raise CommandRefused(R.BREAKER_NOT_TRIPPED,
                                 f"the {cmd.breaker.value} breaker of {cmd.client} is not "
                                 "tripped")
        engine._emit(BreakerReset(cmd.client, cmd.breaker, cmd.reason, cmd.actor,
                                  self.client_equity(cmd.client), now), out)
        # Give trading back only if the trip is what holds the client, and no other
        # trip does: a state an operator set (or a stricter one) stays.
        scope = Scope(cmd.client, None)
        if not state.tripped and engine.state.trading_states.get(scope) is trip.state:
            engine._change_state(scope, TradingState.ACTIVE,
                                 f"breaker {cmd.breaker.value} reset: {cmd.reason}",
                                 cmd.actor, now, out)


def _valuation_price(spec: OrderSpec, ctx: OrderContext) -> Decimal | None:
    if spec.type.has_limit_price:
        return spec.price
    if spec.type is OrderType.STOP:
        return spec.trigger_price
    return ctx.reference_price


def _takes_liquidity(spec: OrderSpec, engine: Engine, ctx: OrderContext) -> bool:
    """Market orders, and limits that cross the book now (post-only never does)."""
    if spec.type is OrderType.MARKET:
        return True
    if spec.type is not OrderType.LIMIT or spec.post_only or spec.price is None:
        return False
    top = engine.venues[spec.venue].book(spec.symbol)
    if spec.side is Side.BUY:
        return top.ask is not None and spec.price >= top.ask
    return top.bid is not None and spec.price <= top.bid
