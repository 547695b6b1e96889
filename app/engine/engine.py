"""The trading engine: commands and market data in, events out.

Synchronous, no I/O, clock passed in. Every decision is turned into an
event and applied to ``EngineState`` before the next decision, so what the
engine returned is exactly what a replay of those events rebuilds.

Timers (GTD expiry, latency, funding) advance on the clock the caller passes:
``on_market`` advances the venue the update is for; the runtime calls
``advance(now)`` on a clock tick so time also passes when no data arrives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeVar, cast

from app.domain.accounts import ONE, Account, AccountSummary, summarize
from app.domain.arbitrage import (
    TRANSITIONS,
    ArbStatus,
    ArbTradeUpdated,
    LegOutDetected,
    RecordArbTrade,
    RecordLegOut,
)
from app.domain.commands import (
    AmendOrder,
    CancelAll,
    CancelOrder,
    CloseAll,
    Command,
    Deposit,
    ReplaceOrder,
    SetLeverage,
    SetTradingState,
    SubmitOrder,
    Withdraw,
)
from app.domain.events import (
    CloseAllCompleted,
    CloseResult,
    Event,
    FundingApplied,
    FundingPosition,
    FundingRateMissing,
    FundingSettled,
    FundsDeposited,
    FundsWithdrawn,
    LeverageChanged,
    OrderAccepted,
    OrderAmended,
    OrderAmendRejected,
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
from app.domain.instruments import Instrument, Rounding
from app.domain.market import FundingRate, MarketUpdate, MarkPrice, TradePrint
from app.domain.orders import (
    Order,
    OrderSpec,
    OrderStatus,
    OrderTags,
    OrderType,
    Side,
    valid_client_order_id,
)
from app.domain.positions import Position
from app.domain.rejections import CommandRefused, RejectCode
from app.domain.risk import (
    UNLIMITED,
    MarginWindow,
    OrderSizedDown,
    ResetBreaker,
    RiskProfile,
    SetRiskProfile,
    SizingRequest,
)
from app.domain.signals import DEFAULT_SIGNAL_PARAMS, SetSignalParams, SignalParams, SubmitSignal
from app.domain.strategies import (
    ConfigureStrategy,
    CreateStrategy,
    RecordBars,
    StartStrategy,
    StopStrategy,
    StrategyBarsRecorded,
    StrategyConfigured,
    StrategyCreated,
    StrategyRecord,
    StrategyStarted,
    StrategyStopped,
)
from app.domain.trading_state import Scope, TradingState, effective_state
from app.engine.amend import amend_order
from app.engine.margin_windows import MarginWindows
from app.engine.retention import DEFAULT_RETAIN_FINISHED, DEFAULT_RETAIN_TRADES
from app.engine.risk import OrderContext, RiskLimits, check_order
from app.engine.risk_controls import RiskControls
from app.engine.signals import DEFAULT_INTERVAL, SignalDesk
from app.engine.state import DEFAULT_RETAIN_SIGNALS, EngineState
from app.venues.base import (
    Accepted,
    Amended,
    AmendRefused,
    Canceled,
    CancelRefused,
    Expired,
    Filled,
    Rejected,
    Report,
    Triggered,
    Venue,
)

ZERO = Decimal(0)
NEVER = datetime.max.replace(tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# How long after an instant a rate may still arrive before the gap is reported.
FUNDING_GRACE = timedelta(minutes=1)
_PENDING = (OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_REPLACE)
# Rejections a smaller order might not get (impact-aware sizing may shrink it).
_SIZE_DEPENDENT = frozenset({RejectCode.INSUFFICIENT_MARGIN, RejectCode.MAX_POSITION_SIZE,
                             RejectCode.MAX_POSITION_NOTIONAL,
                             RejectCode.MAX_POSITION_AT_LEVERAGE})
R = RejectCode


# Bars one RecordBars may carry (a strategy closes a few at a time).
MAX_BARS_RECORDED = 50


@dataclass(frozen=True, slots=True)
class AccountSetup:
    client: str
    venue: str
    leverage: Decimal = Decimal(1)


@dataclass
class EngineConfig:
    instruments: list[Instrument]
    accounts: list[AccountSetup]
    limits: dict[str, RiskLimits] = field(default_factory=dict)  # by symbol
    client_limits: dict[tuple[str, str], RiskLimits] = field(default_factory=dict)  # (client, sym)
    # Finished orders and closed trades per client kept in memory (app/engine/retention.py).
    retain_finished: int = DEFAULT_RETAIN_FINISHED
    retain_trades: int = DEFAULT_RETAIN_TRADES
    # Clients' risk profiles (app/domain/risk.py) from the configuration, and the one
    # for clients without their own; RiskProfileChanged events override both.
    risk_profiles: dict[str, RiskProfile] = field(default_factory=dict)
    default_risk_profile: RiskProfile = UNLIMITED
    # Venues' margin windows (seed 003), by venue.
    margin_windows: dict[str, tuple[MarginWindow, ...]] = field(default_factory=dict)
    # Clients' signal order parameters (app/domain/signals.py) from the configuration,
    # and those of clients without their own; SignalParamsChanged events override both.
    signal_params: dict[str, SignalParams] = field(default_factory=dict)
    default_signal_params: SignalParams = DEFAULT_SIGNAL_PARAMS
    # The candle of signals' entry prices and volatility (None: no candles kept).
    signal_interval: timedelta | None = DEFAULT_INTERVAL
    retain_signals: int = DEFAULT_RETAIN_SIGNALS

    def limits_for(self, client: str, symbol: str) -> RiskLimits:
        return self.client_limits.get((client, symbol)) or self.limits.get(symbol) or _NO_LIMITS


_NO_LIMITS = RiskLimits()


class Engine:
    def __init__(self, config: EngineConfig, venues: Mapping[str, Venue],
                 state: EngineState | None = None):
        self.config = config
        self.venues = venues
        self.state = state or EngineState(retain_finished=config.retain_finished,
                                          retain_trades=config.retain_trades,
                                          retain_signals=config.retain_signals)
        self.instruments: dict[tuple[str, str], Instrument] = {}
        self._symbols_by_venue: dict[str, list[str]] = {}
        self._instruments_by_venue: dict[str, dict[str, Instrument]] = {}
        for inst in config.instruments:
            self.instruments[(inst.venue, inst.symbol)] = inst
            self._symbols_by_venue.setdefault(inst.venue, []).append(inst.symbol)
            self._instruments_by_venue.setdefault(inst.venue, {})[inst.symbol] = inst
            venues[inst.venue].add_instrument(inst)
        for setup in config.accounts:
            if (setup.client, setup.venue) not in self.state.accounts:
                self.state.accounts[(setup.client, setup.venue)] = Account(
                    setup.client, setup.venue, leverage=setup.leverage)
        # (venue, symbol) -> {funding_at: rate}: several periods may be announced ahead.
        self._funding_pending: dict[tuple[str, str], dict[datetime, Decimal]] = {}
        # (client, venue) -> when to try again a liquidation whose order was refused
        self._liquidation_blocked: dict[tuple[str, str], datetime] = {}
        # Funding instants on each perp's schedule (every funding_interval from 00:00
        # UTC): the next one per instrument, and those passed with no rate yet, kept
        # with the positions and mark of the instant for a rate that arrives late.
        self._instants: dict[tuple[str, str], datetime] = {}
        self._awaiting: dict[tuple[str, str, datetime],
                             tuple[Decimal | None, dict[str, Decimal]]] = {}
        # The next time funding work is due; the first call sets up the schedule.
        self._next_funding_at = EPOCH
        self.risk = RiskControls(self, config.risk_profiles, config.default_risk_profile)
        self.margin = MarginWindows(self, config.margin_windows)
        self.signals = SignalDesk(self, config.signal_params, config.default_signal_params,
                                  config.signal_interval)
        # Dispatch by exact type: one dict lookup to a bound method, as cheap as an
        # ``is`` chain's first test, and each handler is typed for its own kind.
        self._commands: dict[type, _CommandHandler] = dict([
            _on_command(SubmitOrder, self._submit),
            _on_command(CancelOrder, self._cancel),
            _on_command(ReplaceOrder, self._replace),
            _on_command(AmendOrder, self._amend),
            _on_command(CancelAll, self._cancel_all),
            _on_command(SetTradingState, self._set_trading_state),
            _on_command(CloseAll, self._close_all),
            _on_command(Deposit, self._deposit),
            _on_command(Withdraw, self._withdraw),
            _on_command(SetLeverage, self._set_leverage),
            _on_command(CreateStrategy, self._create_strategy),
            _on_command(StartStrategy, self._start_strategy),
            _on_command(StopStrategy, self._stop_strategy),
            _on_command(ConfigureStrategy, self._configure_strategy),
            _on_command(SetRiskProfile, self.risk.set_profile),
            _on_command(ResetBreaker, self.risk.reset),
            _on_command(RecordArbTrade, self._record_arb_trade),
            _on_command(RecordLegOut, self._record_leg_out),
            _on_command(RecordBars, self._record_bars),
            _on_command(SubmitSignal, self.signals.submit),
            _on_command(SetSignalParams, self.signals.set_params),
        ])
        self._reports: dict[type, _ReportHandler] = dict([
            _on_report(Filled, self._on_filled),
            _on_report(Accepted, self._on_accepted),
            _on_report(Canceled, self._on_canceled_report),
            _on_report(Rejected, self._on_rejected),
            _on_report(Triggered, self._on_triggered),
            _on_report(CancelRefused, self._on_cancel_refused),
            _on_report(Expired, self._on_expired),
            _on_report(Amended, self._on_amended),
            _on_report(AmendRefused, self._on_amend_refused),
        ])

    # ---- public entry points ---------------------------------------------------

    def handle(self, command: Command, now: datetime) -> list[Event]:
        """Apply one command. Raises ``CommandRefused`` (nothing recorded) for
        commands that cannot be taken at all; order-level rejections are
        returned as ``OrderRejected`` events on a recorded order."""
        out: list[Event] = []
        self._commands[type(command)](command, now, out)
        if self.state.bracket_dirty:
            self.signals.police(now, out)
        if self.risk.due:
            self.risk.after_step(now, out)
        return out

    def on_reports(self, reports: list[Report], now: datetime) -> list[Event]:
        """Apply what a venue reported on its own: an asynchronous (live) venue's
        acknowledgements, fills, cancels and expiries, as the command bus receives
        them. The same translation as for the paper venue's synchronous answers; a
        report on an order the engine does not hold (or no longer holds open) is
        ignored, as a duplicate or late report must be."""
        out: list[Event] = []
        self._on_reports(reports, out)
        if self.state.bracket_dirty:
            self.signals.police(now, out)
        if self.risk.due:
            self.risk.after_step(now, out)
        return out

    def on_market(self, update: MarketUpdate, now: datetime) -> list[Event]:
        venue = self.venues.get(update.venue)
        if venue is None:
            return []
        if self.risk.track_volume and type(update) is TradePrint:
            self.risk.on_trade_print(update)
        signals = self.signals
        candle_work = now >= signals.idle_until  # (SignalDesk's fast path, inline)
        if candle_work:
            signals.before_market(update.venue, update.symbol, now)
        reports = venue.on_market(update, now)
        if candle_work:
            signals.after_market(update.venue, update.symbol)
        if not reports and now < self._next_funding_at:
            kind = type(update)
            if kind is not MarkPrice and kind is not FundingRate:
                return []  # most ticks: nothing happened to our orders, nothing due
        if type(update) is FundingRate:
            return self._on_funding_rate(update, reports, now)
        out: list[Event] = []
        if reports:
            self._on_reports(reports, out)
        if now >= self._next_funding_at:
            self._settle_funding(now, out)
        if type(update) is MarkPrice:
            self._check_liquidations(update.venue, update.symbol, now, out)
        if self.state.bracket_dirty:
            self.signals.police(now, out)
        if self.risk.due:
            self.risk.after_step(now, out)
        return out

    def advance(self, now: datetime) -> list[Event]:
        """Let time pass with no market data: latency queues, GTD expiry, funding."""
        out: list[Event] = []
        for venue in self.venues.values():
            reports = venue.advance(now)
            if reports:
                self._on_reports(reports, out)
        if now >= self._next_funding_at:
            self._settle_funding(now, out)
        self.margin.step(now, out)
        if self.state.bracket_dirty:
            self.signals.police(now, out)
        self.risk.on_time(now)
        if self.risk.due:
            self.risk.after_step(now, out)
        return out

    def recover(self, events: Iterable[Event], now: datetime) -> list[Event]:
        """Rebuild state from the event log, then hand live orders back to the venues.

        Returns the events that restoring produced (orders that had not reached
        a venue are sent now); the caller appends them to the log.
        """
        self.replay(events)
        return self.restore_venues(now)

    def replay(self, events: Iterable[Event]) -> None:
        """Apply logged events to the state (the venues are not told)."""
        apply = self.state.apply
        for event in events:
            apply(event)
        # Each step policed its brackets before it was committed: nothing is owed.
        self.state.bracket_dirty.clear()

    def restore_venues(self, now: datetime) -> list[Event]:
        """Hand every live order and position back to the venues; returns the events
        that produced, for the caller to append to the log."""
        out: list[Event] = []
        for name, venue in self.venues.items():
            orders = [o for o in self._open_orders() if o.spec.venue == name]
            positions = {(c, s): p.qty for (c, v, s), p in self.state.positions.items()
                         if v == name and p.qty}
            reports = venue.restore(orders, positions, now)
            self._on_reports(reports, out)
        for client, venue_name, symbol in sorted({
                (o.spec.client, o.spec.venue, o.spec.symbol) for o in self._open_orders()}):
            self._police_reduce_only(client, venue_name, symbol, now, out)
        if self.state.bracket_dirty:
            self.signals.police(now, out)
        return out

    # ---- reading ----------------------------------------------------------------

    def trading_state(self, client: str, venue: str) -> tuple[TradingState, Scope]:
        return effective_state(self.state.trading_states, client, venue)

    def funding_schedule(self, venue: str, symbol: str) -> tuple[Decimal | None, datetime | None]:
        """The next settlement: the announced (predicted) rate if one is known, and when
        it settles (the next instant on the schedule when no rate is announced yet)."""
        pending = self._funding_pending.get((venue, symbol))
        if pending:
            at = min(pending)
            return pending[at], at
        return None, self._instants.get((venue, symbol))

    def positions_of(self, client: str, venue: str) -> dict[str, Position]:
        positions = self.state.positions
        out = {}
        for symbol in self._symbols_by_venue.get(venue, ()):
            pos = positions.get((client, venue, symbol))
            if pos is not None:
                out[symbol] = pos
        return out

    def prices(self, venue: str) -> dict[str, Decimal | None]:
        v = self.venues[venue]
        return {s: v.reference_price(s) for s in self._symbols_by_venue.get(venue, ())}

    def summary(self, client: str, venue: str, exclude_order: int | None = None
                ) -> AccountSummary:
        account = self.state.accounts[(client, venue)]
        positions = self.positions_of(client, venue)
        prices = self.prices(venue)
        instruments = self._instruments_by_venue.get(venue, {})
        reserved = ZERO
        for (symbol, _), group in self.state.resting.groups(client, venue):
            if group.orders:
                leverage = account.leverage_for(symbol, instruments.get(symbol))
                reserved += group.margin(positions.get(symbol), prices.get(symbol),
                                         leverage, exclude_order)
        marks = {s: p for s, p in prices.items() if p is not None}
        initial, maintenance = self.margin.multipliers(venue)
        return summarize(account, positions.values(), marks, reserved * initial, instruments,
                         initial, maintenance)

    def equity(self, client: str, venue: str) -> Decimal:
        """The account's equity: ``summary(...).equity`` without the margin figures
        (a backtest samples it every bar)."""
        return self._equity_and_maintenance(client, venue, maintenance=False)[0]

    def _equity_and_maintenance(self, client: str, venue: str, *, maintenance: bool = True,
                                marked: tuple[str, Decimal] | None = None
                                ) -> tuple[Decimal, Decimal]:
        """``summary``'s equity and maintenance margin, computed the same way, without
        its order margin and ratios: every mark of a held symbol needs the two.
        ``marked``: a symbol and a mark to value it at instead of its own."""
        unrealized = required = ZERO
        positions = self.state.positions
        venue_obj = self.venues[venue]
        instruments = self._instruments_by_venue.get(venue, {})
        for symbol in self._symbols_by_venue.get(venue, ()):
            p = positions.get((client, venue, symbol))
            if p is None or not p.qty:
                continue
            mark = venue_obj.reference_price(symbol) if marked is None or marked[0] != symbol \
                else marked[1]
            if mark is None:
                mark = p.avg_entry
            unrealized += p.unrealized_pnl(mark)
            if maintenance:
                inst = instruments.get(symbol)
                if inst is not None:
                    required += inst.maintenance_margin(p.notional(mark))
        if required:
            _, multiplier = self.margin.multipliers(venue)
            if multiplier != ONE:
                required *= multiplier
        # Summed as ``summarize`` sums, so the figures are the same to the last digit.
        return self.state.accounts[(client, venue)].wallet + unrealized, required

    def _open_orders(self) -> Iterator[Order]:
        for orders in self.state.open_orders.values():
            yield from list(orders.values())

    # ---- events -----------------------------------------------------------------

    def _emit(self, event: Event, out: list[Event]) -> None:
        outcome = self.state.apply(event)
        out.append(event)
        if outcome is not None and outcome.closed_trade is not None:
            closed = TradeClosed(outcome.closed_trade, event.at)
            self.state.apply(closed)
            out.append(closed)
            self.risk.note(closed)

    def _on_reports(self, reports: list[Report], out: list[Event]) -> None:
        orders, handlers = self.state.orders, self._reports
        for r in reports:
            order = orders.get(r.order_id)
            if order is not None:
                handlers[type(r)](r, order, out)

    # What each venue report becomes, given the order's state as the engine knows it.

    def _on_filled(self, r: Filled, order: Order, out: list[Event]) -> None:
        if order.is_open and r.qty <= order.remaining_qty:
            spec = order.spec
            self._emit(OrderFilled(
                order.order_id, self.state.last_fill_id + 1, spec.client, spec.venue,
                spec.symbol, spec.side, r.qty, r.price, r.fee, r.liquidity, r.at), out)
            if self.state.trading_states:  # most of the time no scope is restricted
                self._police_reduce_only(spec.client, spec.venue, spec.symbol, r.at, out)

    def _on_accepted(self, r: Accepted, order: Order, out: list[Event]) -> None:
        if order.status is OrderStatus.NEW or (
                order.status in _PENDING and order.status_before_pending is OrderStatus.NEW):
            self._emit(OrderAccepted(r.order_id, r.at), out)

    def _on_canceled_report(self, r: Canceled, order: Order, out: list[Event]) -> None:
        if order.is_open:
            self._on_canceled(order, r.reason, r.at, out)

    def _on_rejected(self, r: Rejected, order: Order, out: list[Event]) -> None:
        if order.status in (OrderStatus.NEW, OrderStatus.PENDING_CANCEL):
            self._emit(OrderRejected(r.order_id, r.code, r.message, r.at), out)

    def _on_triggered(self, r: Triggered, order: Order, out: list[Event]) -> None:
        if order.is_open and order.triggered_at is None:
            self._emit(OrderTriggered(r.order_id, r.price, r.at, r.qty,
                                      self._arrival_mid(order.spec)), out)
            if self.state.trading_states:  # a stop joins the working orders' budget
                spec = order.spec
                self._police_reduce_only(spec.client, spec.venue, spec.symbol, r.at, out)

    def _on_cancel_refused(self, r: CancelRefused, order: Order, out: list[Event]) -> None:
        if order.cancel_in_flight:  # answer the request, even if the order is done
            self._emit(OrderCancelRejected(r.order_id, r.reason, r.at), out)

    def _on_expired(self, r: Expired, order: Order, out: list[Event]) -> None:
        if order.is_open:
            self._emit(OrderExpired(r.order_id, r.at), out)

    def _on_amended(self, r: Amended, order: Order, out: list[Event]) -> None:
        if order.is_open and r.qty > order.filled_qty:
            self._emit(OrderAmended(r.order_id, r.qty, r.price, r.kept_priority, r.at), out)

    def _on_amend_refused(self, r: AmendRefused, order: Order, out: list[Event]) -> None:
        self._emit(OrderAmendRejected(r.order_id, r.reason, r.at), out)

    def _on_canceled(self, order: Order, reason: str, at: datetime, out: list[Event]) -> None:
        pending = self.state.pending_replaces.get(order.order_id)
        if pending is None:
            self._emit(OrderCanceled(order.order_id, reason, at), out)
            return
        spec = pending.spec
        if pending.qty_from_remaining and order.remaining_qty != spec.qty:
            spec = replace(spec, qty=order.remaining_qty)  # filled while the cancel flew
        self._emit(OrderCanceled(order.order_id, "replaced", at,
                                 replaced_by=pending.new_order_id), out)
        self._place(spec, at, out, order_id=pending.new_order_id, replaces=order.order_id)

    # ---- placing orders ---------------------------------------------------------

    def _submit(self, cmd: SubmitOrder, now: datetime, out: list[Event]) -> None:
        spec = cmd.spec
        if (spec.client, spec.venue) not in self.state.accounts:
            raise CommandRefused(R.UNKNOWN_ACCOUNT,
                                 f"client {spec.client!r} has no account on {spec.venue!r}")
        if (spec.venue, spec.symbol) not in self.instruments and (
                len(spec.symbol) > MAX_SYMBOL_LENGTH or not spec.symbol.isprintable()):
            # Not even recordable as a rejected order: no symbol is that long or holds
            # control characters (the API refuses them first; this guards strategies).
            raise CommandRefused(R.UNKNOWN_SYMBOL, f"no such symbol on {spec.venue}")
        venue = self.venues[spec.venue]
        if spec.client_order_id is not None:
            if not valid_client_order_id(spec.client_order_id):
                raise CommandRefused(
                    R.INVALID_CLIENT_ORDER_ID,
                    "client_order_id must be 1-36 characters of A-Z a-z 0-9 . _ : / -")
            profile = venue.capabilities.profile
            if not profile.valid_client_order_id(spec.client_order_id):
                raise CommandRefused(
                    R.INVALID_CLIENT_ORDER_ID,
                    f"client_order_id must be 1-36 characters of "
                    f"{profile.client_order_id_chars} on {spec.venue} ({profile.name})")
            existing = self.state.order_by_client_id(spec.client, spec.venue,
                                                     spec.client_order_id)
            if existing is not None:
                if existing.same_request(spec):
                    return  # an idempotent retry: the first order stands
                raise CommandRefused(
                    R.DUPLICATE_CLIENT_ORDER_ID,
                    f"client_order_id {spec.client_order_id!r} is already used by order "
                    f"{existing.order_id} with different parameters",
                    order_id=str(existing.order_id))
        refusal = venue.precheck(spec, now)
        if refusal is not None:  # the venue's own "no": no order exists, the id is free
            raise CommandRefused(refusal.code, refusal.message)
        self._place(spec, now, out, clip=cmd.clip_to_position, actor=cmd.actor,
                    sizing=cmd.sizing)

    def _place(self, spec: OrderSpec, now: datetime, out: list[Event], *,
               order_id: int | None = None, replaces: int | None = None, clip: bool = False,
               bypass_halt: bool = False, actor: str = "system",
               sizing: SizingRequest | None = None) -> Order:
        """Record an order, run the pre-trade checks, and send it if they pass."""
        state = self.state
        oid = order_id if order_id is not None else state.last_order_id + 1
        if spec.client_order_id is None:
            spec = replace(spec, client_order_id=self._generated_client_id(spec, oid))
        inst = self.instruments.get((spec.venue, spec.symbol))
        if inst is None:
            self._emit(OrderSubmitted(oid, spec, now, replaces, actor), out)
            self._emit(OrderRejected(oid, R.UNKNOWN_SYMBOL,
                                     f"{spec.symbol} is not traded on {spec.venue}", now), out)
            return state.orders[oid]
        ctx = self._context(spec, inst, now, clip, bypass_halt, exclude=replaces)
        rejection, qty = check_order(spec, ctx)
        sized = None
        if not bypass_halt and (rejection is None or rejection.code in _SIZE_DEPENDENT):
            # The client's own limits, filters and sizing; the engine's own closing
            # orders (close-all, liquidation) are never held to them. An order refused
            # only for its size may fit once sizing has shrunk it: it is checked again
            # at the size that would go out.
            asked = replace(spec, qty=qty) if rejection is None and qty != spec.qty else spec
            limited, sized_qty, sized = self.risk.check(asked, asked.qty, ctx, sizing, now)
            if sized is not None:
                rejection, qty = check_order(replace(spec, qty=sized_qty), ctx)
                if rejection is not None:
                    sized = None  # refused all the same: nothing was sized
            elif rejection is None:
                rejection, qty = limited, sized_qty
        requested = None
        if rejection is None and qty != spec.qty:
            requested, spec = spec.qty, replace(spec, qty=qty)
        self._emit(OrderSubmitted(oid, spec, now, replaces, actor, requested,
                                  self._arrival_mid(spec)), out)
        order = state.orders[oid]
        if sized is not None:
            self._emit(OrderSizedDown(oid, spec.client, spec.venue, spec.symbol,
                                      sized.requested_qty, sized.qty,
                                      sized.requested_impact_bps, sized.impact_bps,
                                      sized.max_impact_bps, sized.mode, now), out)
        if rejection is not None:
            self._emit(OrderRejected(oid, rejection.code, rejection.message, now), out)
            return order
        # In a restricted scope the order goes out reduce-only, as a live venue's
        # reduceOnly flag: the venue itself then never lets it grow the position.
        enforce = ctx.trading_state is not TradingState.ACTIVE
        reports = self.venues[spec.venue].submit(order, now, enforce)
        if reports:
            self._on_reports(reports, out)
        return order

    def _arrival_mid(self, spec: OrderSpec) -> Decimal | None:
        """The mid of the order's book as it is submitted (its arrival price), or None
        without a two-sided book."""
        top = self.venues[spec.venue].book(spec.symbol)
        bid, ask = top.bid, top.ask
        return (bid + ask) / 2 if bid is not None and ask is not None else None

    def _context(self, spec: OrderSpec, inst: Instrument, now: datetime, clip: bool,
                 bypass_halt: bool, exclude: int | None) -> OrderContext:
        client, venue = spec.client, spec.venue
        account = self.state.accounts[(client, venue)]
        summary = self.summary(client, venue, exclude_order=exclude)
        trading_state, _ = self.trading_state(client, venue)
        leverage = account.leverage_for(spec.symbol, inst)
        position = self.state.positions.get((client, venue, spec.symbol)) or Position(
            client, venue, spec.symbol)
        resting = self.state.resting.group(client, venue, spec.symbol, spec.side)
        venue_view = self.venues[venue]
        resting_qty = ZERO
        if resting is not None:
            resting_qty = resting.qty
            excluded = resting.orders.get(exclude) if exclude is not None else None
            if excluded is not None:
                resting_qty -= excluded.remaining_qty
        return OrderContext(
            now=now, instrument=inst, capabilities=self.venues[venue].capabilities,
            position=position, trading_state=trading_state,
            reference_price=self.venues[venue].reference_price(spec.symbol),
            leverage=leverage,
            available=summary.available, resting_qty=resting_qty,
            limits=self.position_limits(client, spec.symbol),
            clip_to_position=clip, bypass_halt=bypass_halt,
            max_notional_at_leverage=inst.max_notional_at(leverage) if inst.is_perp else None,
            margin_in_use=summary.margin_used + summary.order_margin, equity=summary.equity,
            margin_multiplier=self.margin.multipliers(venue)[0],
            last_price=venue_view.last.get(spec.symbol),
            mark_price=venue_view.marks.get(spec.symbol),
        )

    def position_limits(self, client: str, symbol: str) -> RiskLimits:
        """A client's own per-symbol position limits (its risk profile) where it has
        them, else the configuration's for the client or the symbol."""
        own = self.risk.profile(client).for_symbol(symbol)
        if own is not None and (own.max_position_size is not None
                                or own.max_position_notional is not None):
            return RiskLimits(own.max_position_size, own.max_position_notional)
        return self.config.limits_for(client, symbol)

    def _generated_client_id(self, spec: OrderSpec, order_id: int) -> str:
        candidate, n = f"pd-{order_id}", 0
        while (spec.client, spec.venue, candidate) in self.state.by_client_order_id:
            n += 1
            candidate = f"pd-{order_id}-{n}"
        return candidate

    # ---- cancel / replace ---------------------------------------------------------

    def _order(self, order_id: int) -> Order:
        order = self.state.orders.get(order_id)
        if order is None:
            raise CommandRefused(R.UNKNOWN_ORDER, f"there is no order {order_id}")
        return order

    def _cancel(self, cmd: CancelOrder, now: datetime, out: list[Event]) -> None:
        order = self._order(cmd.order_id)
        if self._successor_spec(order) is not None:
            # Canceled only to be replaced: its successor is (or will be) live, and
            # "canceled" would be an answer that did not happen.
            raise CommandRefused(R.ORDER_NOT_OPEN, _replaced_message(order, self.state))
        if order.status is OrderStatus.CANCELED or order.status in _PENDING:
            return  # already canceled or on its way: a retry changes nothing
        if not order.is_open:
            raise CommandRefused(R.ORDER_NOT_OPEN,
                                 f"order {order.order_id} is {order.status.value}; "
                                 "nothing to cancel")
        self._request_cancel(order, now, cmd.actor, cmd.reason, out)

    def _request_cancel(self, order: Order, now: datetime, actor: str, reason: str,
                        out: list[Event]) -> None:
        self._emit(OrderCancelRequested(order.order_id, now, actor), out)
        self._on_reports(self.venues[order.spec.venue].cancel(order.order_id, now, reason), out)

    def _replace(self, cmd: ReplaceOrder, now: datetime, out: list[Event]) -> None:
        order = self._order(cmd.order_id)
        successor = self._successor_spec(order)
        if successor is not None:
            if _asks_for(cmd, order.spec, successor):
                return  # this replace already happened (or is under way): idempotent retry
            raise CommandRefused(R.ORDER_NOT_OPEN, _replaced_message(order, self.state))
        if not order.is_open or order.status in _PENDING:
            raise CommandRefused(R.ORDER_NOT_OPEN,
                                 f"order {order.order_id} is {order.status.value}; "
                                 "it cannot be replaced")
        if order.status is OrderStatus.NEW:
            raise CommandRefused(R.ORDER_NOT_OPEN,
                                 f"order {order.order_id} is not acknowledged by the venue "
                                 "yet; retry the replace")
        if cmd.new_price is None and cmd.new_qty is None and cmd.new_trigger_price is None:
            raise CommandRefused(R.INVALID_ORDER, "a replace needs a new price, qty or trigger")
        if cmd.new_price is not None and not order.spec.type.has_limit_price:
            raise CommandRefused(R.INVALID_ORDER,
                                 f"a {order.spec.type.value} order has no price to replace")
        spec = order.spec
        new_spec = replace(
            spec,
            price=cmd.new_price if cmd.new_price is not None else spec.price,
            trigger_price=(cmd.new_trigger_price if cmd.new_trigger_price is not None
                           else spec.trigger_price),
            qty=cmd.new_qty if cmd.new_qty is not None else order.remaining_qty,
            client_order_id=self._derived_client_id(order),
        )
        inst = self.instruments[(spec.venue, spec.symbol)]
        ctx = self._context(new_spec, inst, now, False, False, exclude=order.order_id)
        rejection, _ = check_order(new_spec, ctx)
        if rejection is None:
            rejection = self.venues[spec.venue].precheck(new_spec, now)
        if rejection is not None:  # nothing is half-applied: the original stays as it was
            raise CommandRefused(rejection.code, f"replacement refused: {rejection.message}")
        new_id = self.state.last_order_id + 1
        self._emit(OrderReplaceRequested(order.order_id, new_id, new_spec, now, cmd.actor,
                                         qty_from_remaining=cmd.new_qty is None), out)
        self._on_reports(self.venues[spec.venue].cancel(order.order_id, now, "replaced"), out)

    def _amend(self, cmd: AmendOrder, now: datetime, out: list[Event]) -> None:
        amend_order(self, cmd, now, out)

    def _successor_spec(self, order: Order) -> OrderSpec | None:
        """What ``order`` is being (or was) replaced with, if it was replaced."""
        pending = self.state.pending_replaces.get(order.order_id)
        if pending is not None:
            return pending.spec
        if order.replaced_by is not None:
            successor = self.state.orders.get(order.replaced_by)
            # A successor that left memory finished long ago: nothing to protect.
            return None if successor is None else successor.spec
        return None

    def _derived_client_id(self, order: Order) -> str:
        """``abc`` -> ``abc.r1`` -> ``abc.r2``: deterministic, so a retried replace
        maps to the same successor (seed 000 §1.3), and within the 36-char limit. The
        separator is the venue's (``abc-r1`` where ``.`` is not allowed, on Bybit)."""
        spec = order.spec
        profile = self.venues[spec.venue].capabilities.profile
        match = profile.replace_suffix.match(order.client_order_id)
        base, n = (match["base"], int(match["n"])) if match else (order.client_order_id, 0)
        while True:
            n += 1
            suffix = f"{profile.replace_separator}r{n}"
            candidate = base[: 36 - len(suffix)] + suffix
            if (spec.client, spec.venue, candidate) not in self.state.by_client_order_id:
                return candidate

    def _cancel_all(self, cmd: CancelAll, now: datetime, out: list[Event]) -> None:
        for order in self._matching_open_orders(cmd.client, cmd.venue, cmd.symbol, cmd.side):
            if order.status not in _PENDING and order.is_open:
                self._request_cancel(order, now, cmd.actor, cmd.reason, out)

    def _matching_open_orders(self, client: str | None, venue: str | None,
                              symbol: str | None = None, side: Side | None = None
                              ) -> list[Order]:
        candidates: Iterable[Order]
        if client is not None and venue is not None:
            if symbol is not None and side is not None:  # one group: no filtering at all
                group = self.state.resting.group(client, venue, symbol, side)
                return [] if group is None else list(group.orders.values())
            candidates = list(self.state.open_orders.get((client, venue), {}).values())
        else:
            candidates = self._open_orders()
        return [o for o in candidates
                if (client is None or o.spec.client == client)
                and (venue is None or o.spec.venue == venue)
                and (symbol is None or o.spec.symbol == symbol)
                and (side is None or o.spec.side is side)]

    # ---- kill switches ------------------------------------------------------------

    def _set_trading_state(self, cmd: SetTradingState, now: datetime, out: list[Event]) -> None:
        self._change_state(cmd.scope, cmd.state, cmd.reason, cmd.actor, now, out)

    def _change_state(self, scope: Scope, new: TradingState, reason: str, actor: str,
                      now: datetime, out: list[Event]) -> None:
        previous = self.state.trading_states.get(scope, TradingState.ACTIVE)
        if previous is new:
            return
        self._emit(TradingStateChanged(scope, new, previous, reason, actor, now), out)
        if new is not TradingState.ACTIVE:
            self._restrict_open_orders(scope, new, actor, now, out)

    def _restrict_open_orders(self, scope: Scope, new: TradingState, actor: str,
                              now: datetime, out: list[Event]) -> None:
        """Cancel what could add exposure; the rest may only reduce from now on."""
        for client, venue, symbol in sorted({
                (o.spec.client, o.spec.venue, o.spec.symbol)
                for o in self._matching_open_orders(scope.client, scope.venue)}):
            self._police_reduce_only(client, venue, symbol, now, out,
                                     actor=actor, reason=f"trading state {new.value}")

    def _police_reduce_only(self, client: str, venue: str, symbol: str, now: datetime,
                            out: list[Event], *, actor: str = "risk",
                            reason: str = "reduce-only: exceeds the position") -> None:
        """Reduce-only as engine policy, whatever the venue can do: in a restricted
        scope, the working orders of one account and symbol may together at most
        close the position, never grow or flip it.

        Orders on the growing side are canceled. On the reducing side, the oldest
        are kept while their remaining quantities fit in the position; the rest are
        canceled. Working orders and untriggered stops are budgeted separately:
        a take-profit and a stop-loss for the whole position can't both execute in
        one price move, and a kill switch must not strip a position of its stop.
        A stop that triggers joins the working orders first in line (the market has
        come to it; the others are further away). Run when the scope becomes
        restricted, after every fill (the position shrank, so the budget did) and
        trigger in it, and when orders are handed back after a restart.
        """
        state, _ = self.trading_state(client, venue)
        if state is TradingState.ACTIVE:
            return
        position = self.state.positions.get((client, venue, symbol))
        qty = position.qty if position is not None else ZERO
        reducing = Side.SELL if qty > 0 else Side.BUY
        budgets = {False: abs(qty), True: abs(qty)}  # keyed by "is an untriggered stop"
        orders = sorted((o for o in self.state.open_orders.get((client, venue), {}).values()
                         if o.spec.symbol == symbol and o.status not in _PENDING),
                        key=lambda o: (o.triggered_at is None, o.order_id))
        for order in orders:
            lane = order.spec.type.is_stop and order.triggered_at is None
            remaining = order.remaining_qty
            if qty and order.spec.side is reducing and remaining <= budgets[lane]:
                budgets[lane] -= remaining
                continue
            self._request_cancel(order, now, actor, reason, out)

    def _close_all(self, cmd: CloseAll, now: datetime, out: list[Event]) -> None:
        self._change_state(cmd.scope, TradingState.REDUCE_ONLY, cmd.reason, cmd.actor, now, out)
        for order in self._matching_open_orders(cmd.scope.client, cmd.scope.venue):
            if order.is_open and order.status not in _PENDING:
                self._request_cancel(order, now, cmd.actor, "close-all", out)
        results = []
        for (client, venue, symbol), pos in sorted(self.state.positions.items()):
            if not pos.qty or not cmd.scope.covers(client, venue):
                continue
            qty_before = pos.qty
            spec = OrderSpec(
                client=client, venue=venue, symbol=symbol,
                side=Side.SELL if qty_before > 0 else Side.BUY, type=OrderType.MARKET,
                qty=abs(qty_before), reduce_only=True, tags=OrderTags(exit_reason="close_all"))
            order = self._place(spec, now, out, bypass_halt=True, actor=cmd.actor)
            results.append(_close_result(order, client, venue, symbol, qty_before))
        self._emit(CloseAllCompleted(cmd.scope, tuple(results), cmd.reason, cmd.actor, now), out)

    # ---- leverage and liquidation -------------------------------------------------------

    def _set_leverage(self, cmd: SetLeverage, now: datetime, out: list[Event]) -> None:
        account = self._account_for(cmd.client, cmd.venue)
        inst = self.instruments.get((cmd.venue, cmd.symbol))
        if inst is None:
            raise CommandRefused(R.UNKNOWN_SYMBOL, f"{cmd.symbol} is not traded on {cmd.venue}")
        if not inst.is_perp:
            raise CommandRefused(R.INVALID_ORDER, f"{cmd.symbol} is spot: it has no leverage")
        if not 1 <= cmd.leverage <= inst.max_leverage or cmd.leverage % 1:
            raise CommandRefused(R.LEVERAGE_TOO_HIGH,
                                 f"leverage must be a whole number from 1 to "
                                 f"{inst.max_leverage} for {cmd.symbol}")
        previous = account.leverage_for(cmd.symbol, inst)
        if cmd.leverage == account.symbol_leverage.get(cmd.symbol):
            return  # already so: nothing to record
        position = self.state.positions.get((cmd.client, cmd.venue, cmd.symbol))
        price = self.venues[cmd.venue].reference_price(cmd.symbol)
        if position is not None and position.qty and price is not None:
            notional = abs(position.qty) * price
            cap = inst.max_notional_at(cmd.leverage)
            if notional > cap:
                raise CommandRefused(
                    R.MAX_POSITION_AT_LEVERAGE,
                    f"the {cmd.symbol} position ({notional:.2f}) is larger than the "
                    f"{cap} allowed at {cmd.leverage}x")
        self._emit(LeverageChanged(cmd.client, cmd.venue, cmd.symbol, cmd.leverage, previous,
                                   cmd.actor, now), out)

    def _check_liquidations(self, venue: str, symbol: str, now: datetime,
                            out: list[Event]) -> None:
        """A new mark: any account holding ``symbol`` whose equity has fallen to its
        maintenance margin is liquidated (cross margin: the whole account)."""
        for (client, v, s), position in list(self.state.positions.items()):
            if v != venue or s != symbol or not position.qty:
                continue
            self.risk.marked(client, now)  # its equity moved: breakers may be due
            equity, maintenance = self._equity_and_maintenance(client, venue)
            if equity > maintenance:
                continue
            blocked = self._liquidation_blocked.get((client, venue))
            if blocked is not None and now < blocked:
                continue  # its last closing order was refused (no book): not every mark
            self._liquidate(client, venue, self.summary(client, venue), now, out)

    def _liquidate(self, client: str, venue: str, summary: AccountSummary, now: datetime,
                   out: list[Event]) -> None:
        """Cancel the account's open orders on ``venue`` and close each position with a
        reduce-only market order walking the book; a liquidation fee is charged on the
        notional each closes."""
        for order in list(self.state.open_orders.get((client, venue), {}).values()):
            if order.is_open and order.status not in _PENDING:
                self._request_cancel(order, now, "liquidation", "liquidation", out)
        prices = self.prices(venue)
        for symbol, position in sorted(self.positions_of(client, venue).items()):
            qty_before = position.qty
            if not qty_before:
                continue
            inst = self.instruments[(venue, symbol)]
            mark = prices.get(symbol) or position.avg_entry
            realized_before, fees_before = position.realized_pnl, position.fees
            spec = OrderSpec(
                client=client, venue=venue, symbol=symbol,
                side=Side.SELL if qty_before > 0 else Side.BUY, type=OrderType.MARKET,
                qty=abs(qty_before), reduce_only=True,
                tags=OrderTags(exit_reason="liquidation"))
            order = self._place(spec, now, out, bypass_halt=True, actor="liquidation")
            if order.status is OrderStatus.REJECTED:
                # No book to walk (invalid, stale, empty): the position stays, and the
                # next attempt waits a second of engine time rather than every mark.
                self._liquidation_blocked[(client, venue)] = now + LIQUIDATION_RETRY
                continue
            self._liquidation_blocked.pop((client, venue), None)
            filled = order.filled_qty
            price = order.avg_fill_price
            fee = (filled * (price or mark) * inst.liquidation_fee_rate).quantize(
                _FEE_PLACES) if filled else ZERO
            loss = -(position.realized_pnl - realized_before) \
                + (position.fees - fees_before) + fee
            self._emit(PositionLiquidated(
                client, venue, symbol, qty_before, mark, price, filled, fee, loss,
                summary.equity, summary.maintenance_margin, order.order_id, now), out)

    def liquidation_price(self, client: str, venue: str, symbol: str,
                          summary: AccountSummary | None = None) -> Decimal | None:
        """The mark of ``symbol`` at which this account would be liquidated, the other
        positions held at their current marks (cross margin), using the tier of the
        position's current notional; None without a position or when no positive price
        would do it. ``summary``: the account's, when the caller has it already."""
        position = self.state.positions.get((client, venue, symbol))
        if position is None or not position.qty:
            return None
        inst = self.instruments[(venue, symbol)]
        summary = summary or self.summary(client, venue)
        mark = self.prices(venue).get(symbol) or position.avg_entry
        notional = position.notional(mark)
        # A margin window scales maintenance (the summary's total is scaled already).
        _, m = self.margin.multipliers(venue)
        # Equity and maintenance of everything else, this position taken out.
        rest_equity = summary.equity - position.unrealized_pnl(mark)
        rest_maintenance = summary.maintenance_margin - m * inst.maintenance_margin(notional)
        q = position.qty
        tier = inst.bracket(notional)
        price = None
        # Solve with the tier of the notional at the answer: start from the current
        # one and move to the tier the price found falls in (tiers are few).
        for _ in range(len(inst.margin_table) + 1):
            # rest_equity + q (p - entry) = rest_maintenance + m (|q| p rate - amount)
            denominator = q - m * abs(q) * tier.maintenance_rate
            if not denominator:
                return None
            price = (q * position.avg_entry - rest_equity + rest_maintenance
                     - m * tier.maintenance_amount) / denominator
            if price <= 0:
                return None
            at_price = inst.bracket(abs(q) * price)
            if at_price == tier:
                break
            tier = at_price
        if price is None or price <= 0:
            return None
        # The first tick at which it happens: at or below the exact price for a long,
        # at or above it for a short.
        return inst.round_price(price, Rounding.DOWN if q > 0 else Rounding.UP)

    # ---- cash -----------------------------------------------------------------------

    def _account_for(self, client: str, venue: str) -> Account:
        account = self.state.accounts.get((client, venue))
        if account is None:
            raise CommandRefused(R.UNKNOWN_ACCOUNT,
                                 f"client {client!r} has no account on {venue!r}")
        return account

    # ---- strategies (their lifecycle; the host runs them) -------------------------

    def _strategy(self, strategy_id: str) -> StrategyRecord:
        record = self.state.strategies.get(strategy_id)
        if record is None:
            raise CommandRefused(R.UNKNOWN_STRATEGY, f"there is no strategy {strategy_id!r}")
        return record

    def _create_strategy(self, cmd: CreateStrategy, now: datetime, out: list[Event]) -> None:
        existing = self.state.strategies.get(cmd.strategy_id)
        if existing is not None:
            if ((existing.kind, existing.client, existing.venue, existing.params)
                    == (cmd.kind, cmd.client, cmd.venue, cmd.params)):
                return  # a retry of the same creation: nothing new
            raise CommandRefused(R.DUPLICATE_STRATEGY,
                                 f"strategy {cmd.strategy_id!r} already exists "
                                 f"({existing.kind} for {existing.client} on "
                                 f"{existing.venue})")
        self._account_for(cmd.client, cmd.venue)
        self._emit(StrategyCreated(cmd.strategy_id, cmd.kind, cmd.client, cmd.venue,
                                   cmd.params, now, cmd.actor), out)

    def _start_strategy(self, cmd: StartStrategy, now: datetime, out: list[Event]) -> None:
        record = self._strategy(cmd.strategy_id)
        if not record.running:
            self._emit(StrategyStarted(record.strategy_id, record.client, record.venue, now,
                                       cmd.actor), out)

    def _stop_strategy(self, cmd: StopStrategy, now: datetime, out: list[Event]) -> None:
        record = self._strategy(cmd.strategy_id)
        if record.running:
            self._emit(StrategyStopped(record.strategy_id, record.client, record.venue,
                                       cmd.reason, cmd.failed, now, cmd.actor), out)

    def _configure_strategy(self, cmd: ConfigureStrategy, now: datetime, out: list[Event]
                            ) -> None:
        record = self._strategy(cmd.strategy_id)
        if cmd.params != record.params:
            self._emit(StrategyConfigured(record.strategy_id, record.client, record.venue,
                                          cmd.params, record.params, now, cmd.actor), out)

    # ---- arbitrage trades (recorded by their strategy: app/strategies/arbitrage) -------

    def _record_arb_trade(self, cmd: RecordArbTrade, now: datetime, out: list[Event]
                          ) -> None:
        trade = cmd.trade
        record = self._strategy(trade.strategy_id)
        if record.client != trade.client:
            raise CommandRefused(R.UNKNOWN_STRATEGY,
                                 f"strategy {trade.strategy_id!r} trades for {record.client}")
        book = self.state.arb.get(trade.strategy_id)
        before = book.open.get(trade.trade_id) if book is not None else None
        if before is None:
            if book is not None and any(t.trade_id == trade.trade_id for t in book.closed):
                raise CommandRefused(R.INVALID_TRANSITION,
                                     f"trade {trade.trade_id} is closed already")
            if trade.status is not ArbStatus.PENDING:
                raise CommandRefused(R.INVALID_TRANSITION,
                                     f"a new trade starts pending, not {trade.status}")
        elif trade.status not in TRANSITIONS[before.status]:
            raise CommandRefused(R.INVALID_TRANSITION,
                                 f"trade {trade.trade_id}: {before.status} -> {trade.status}")
        self._emit(ArbTradeUpdated(record.client, record.venue, trade, cmd.change[:200], now),
                   out)

    def _record_leg_out(self, cmd: RecordLegOut, now: datetime, out: list[Event]) -> None:
        record = self._strategy(cmd.leg_out.strategy_id)
        if record.client != cmd.leg_out.client:
            raise CommandRefused(R.UNKNOWN_STRATEGY,
                                 f"strategy {record.strategy_id!r} trades for {record.client}")
        self._emit(LegOutDetected(record.client, record.venue, cmd.leg_out, now), out)

    def _record_bars(self, cmd: RecordBars, now: datetime, out: list[Event]) -> None:
        record = self._strategy(cmd.strategy_id)
        if cmd.bars:
            self._emit(StrategyBarsRecorded(record.strategy_id, record.client, record.venue,
                                            cmd.bars[:MAX_BARS_RECORDED], now), out)

    def _deposit(self, cmd: Deposit, now: datetime, out: list[Event]) -> None:
        self._account_for(cmd.client, cmd.venue)
        if cmd.amount <= 0:
            raise CommandRefused(R.INVALID_AMOUNT, "a deposit must be positive")
        self._emit(FundsDeposited(cmd.client, cmd.venue, cmd.amount, now, cmd.actor), out)

    def _withdraw(self, cmd: Withdraw, now: datetime, out: list[Event]) -> None:
        self._account_for(cmd.client, cmd.venue)
        if cmd.amount <= 0:
            raise CommandRefused(R.INVALID_AMOUNT, "a withdrawal must be positive")
        available = self.summary(cmd.client, cmd.venue).available
        if cmd.amount > available:
            raise CommandRefused(R.INSUFFICIENT_BALANCE,
                                 f"only {max(available, ZERO):.2f} is available to withdraw")
        self._emit(FundsWithdrawn(cmd.client, cmd.venue, cmd.amount, now, cmd.actor), out)

    # ---- funding --------------------------------------------------------------------

    def _on_funding_rate(self, update: FundingRate, reports: list[Report], now: datetime
                         ) -> list[Event]:
        out: list[Event] = []
        if reports:
            self._on_reports(reports, out)
        if now >= self._next_funding_at:
            self._settle_funding(now, out)  # settle what was due before the new rate
        inst = self.instruments.get((update.venue, update.symbol))
        key = (update.venue, update.symbol)
        settled = self.state.funding_settled.get(key)
        late = self._instant_of(update.venue, update.symbol, update.funding_at)
        if (inst is not None and update.funding_at <= now
                and (settled is None or update.funding_at > settled)
                and (late in self._awaiting or late in self.state.funding_unpriced)):
            # A rate for an instant already passed: charge the positions of that instant
            # at its mark, not the positions of now.
            if late in self._awaiting:
                mark, positions = self._awaiting.pop(late)
            else:
                missing = self.state.funding_unpriced[late]
                mark, positions = missing.mark, {p.client: p.qty for p in missing.positions}
            self._apply_funding(key, late[2], update.rate, mark, positions, now, out)
            return out
        if inst is not None and inst.is_perp and (settled is None or update.funding_at > settled):
            self._funding_pending.setdefault(key, {})[update.funding_at] = update.rate
            if update.funding_at < self._next_funding_at:
                self._next_funding_at = update.funding_at
            if now >= self._next_funding_at:
                self._settle_funding(now, out)
        return out

    def _settle_funding(self, now: datetime, out: list[Event]) -> None:
        """Funding work that is due: instants passed (a rate announced for one settles
        now, with the positions open at it; one with no rate keeps those positions for
        a late rate, and is reported once the grace period is over)."""
        self._pass_instants(now)
        due = sorted((at, key, rate) for key, periods in self._funding_pending.items()
                     for at, rate in periods.items() if at <= now)
        for funding_at, key, rate in due:
            del self._funding_pending[key][funding_at]
            venue, symbol = key
            self._awaiting.pop((venue, symbol, funding_at), None)
            self._apply_funding(key, funding_at, rate,
                                self.venues[venue].reference_price(symbol),
                                self._open_positions(venue, symbol), now, out)
        for (venue, symbol, at), (mark, positions) in sorted(self._awaiting.items()):
            if now >= at + FUNDING_GRACE:
                del self._awaiting[(venue, symbol, at)]
                self._emit(FundingRateMissing(
                    venue, symbol, at, mark,
                    tuple(FundingPosition(c, q) for c, q in sorted(positions.items())), now),
                    out)
        self._next_funding_at = min(
            [at for periods in self._funding_pending.values() for at in periods]
            + list(self._instants.values())
            + [at + FUNDING_GRACE for (_, _, at) in self._awaiting], default=NEVER)

    def _pass_instants(self, now: datetime) -> None:
        if not self._instants:
            for key, inst in self.instruments.items():
                if inst.is_perp:
                    self._instants[key] = _next_instant(now, inst.funding_interval)
            return
        for key, at in list(self._instants.items()):
            if at > now:
                continue
            interval = self.instruments[key].funding_interval
            while at <= now:
                settled = self.state.funding_settled.get(key)
                announced = at in self._funding_pending.get(key, {})
                if not announced and (settled is None or settled < at):
                    self._awaiting[(key[0], key[1], at)] = (
                        self.venues[key[0]].reference_price(key[1]),
                        self._open_positions(*key))
                at += interval
            self._instants[key] = at

    def _instant_of(self, venue: str, symbol: str, funding_at: datetime
                    ) -> tuple[str, str, datetime]:
        """The passed instant a rate stamped ``funding_at`` is for: recorded prints
        carry the exchange's milliseconds after the hour (00:00:00.017)."""
        for known in (*self._awaiting, *self.state.funding_unpriced):
            if known[0] == venue and known[1] == symbol \
                    and abs(known[2] - funding_at) < FUNDING_GRACE:
                return known
        return (venue, symbol, funding_at)

    def _open_positions(self, venue: str, symbol: str) -> dict[str, Decimal]:
        return {client: pos.qty for (client, v, s), pos in self.state.positions.items()
                if v == venue and s == symbol and pos.qty}

    def _apply_funding(self, key: tuple[str, str], funding_at: datetime, rate: Decimal,
                       mark: Decimal | None, positions: dict[str, Decimal], now: datetime,
                       out: list[Event]) -> None:
        """Each position pays or receives qty × mark × rate (longs pay when the rate is
        positive)."""
        venue, symbol = key
        self._emit(FundingSettled(venue, symbol, rate, mark, funding_at, now), out)
        if mark is None:
            return  # no price to value positions at: recorded, nothing charged
        for client, qty in sorted(positions.items()):
            self._emit(FundingApplied(client, venue, symbol, qty, mark, rate,
                                      -(qty * mark * rate), now), out)


_FEE_PLACES = Decimal("0.00000001")
LIQUIDATION_RETRY = timedelta(seconds=1)
MAX_SYMBOL_LENGTH = 32  # the orders table's column

_CommandHandler = Callable[[Command, datetime, list[Event]], None]
_ReportHandler = Callable[[Report, Order, list[Event]], None]
_C = TypeVar("_C", bound=Command)
_R = TypeVar("_R", bound=Report)


# Entries of the engine's dispatch tables. The checker makes sure each handler takes
# the kind it is registered for; the table is looked up by ``type(x)``, so a handler
# only ever gets its own kind, which the casts tell the checker (it cannot relate a
# dict's keys to its values).

def _on_command(kind: type[_C], handle: Callable[[_C, datetime, list[Event]], None]
                ) -> tuple[type, _CommandHandler]:
    return kind, cast(_CommandHandler, handle)


def _on_report(kind: type[_R], handle: Callable[[_R, Order, list[Event]], None]
               ) -> tuple[type, _ReportHandler]:
    return kind, cast(_ReportHandler, handle)


def _next_instant(now: datetime, interval: timedelta) -> datetime:
    """The first funding instant after ``now``: every ``interval`` from 00:00 UTC."""
    passed = (now - EPOCH) // interval
    return EPOCH + (passed + 1) * interval


def _asks_for(cmd: ReplaceOrder, original: OrderSpec, successor: OrderSpec) -> bool:
    """Does ``cmd`` ask for the replacement that ``successor`` already is (a retry)?"""
    price = cmd.new_price if cmd.new_price is not None else original.price
    trigger = (cmd.new_trigger_price if cmd.new_trigger_price is not None
               else original.trigger_price)
    return (price == successor.price and trigger == successor.trigger_price
            and (cmd.new_qty is None or cmd.new_qty == successor.qty))


def _replaced_message(order: Order, state: EngineState) -> str:
    pending = state.pending_replaces.get(order.order_id)
    successor = pending.new_order_id if pending is not None else order.replaced_by
    return (f"order {order.order_id} was replaced by order {successor}; "
            f"act on order {successor} instead")


def _close_result(order: Order, client: str, venue: str, symbol: str, qty_before: Decimal
                  ) -> CloseResult:
    if order.status is OrderStatus.FILLED:
        status, message = "closed", ""
    elif order.status is OrderStatus.REJECTED:
        status, message = "failed", f"{order.reject_code}: {order.reject_message}"
    elif order.status is OrderStatus.EXPIRED:  # a market order larger than the book
        status = "partial" if order.filled_qty else "failed"
        message = "not enough liquidity: the rest of the market order expired"
    elif order.filled_qty:
        status, message = "partial", order.cancel_reason or "not enough liquidity"
    elif order.status is OrderStatus.CANCELED:
        status, message = "failed", order.cancel_reason or "canceled"
    else:
        status, message = "pending", "the close order is on its way to the venue"
    return CloseResult(client, venue, symbol, qty_before, order.order_id, order.filled_qty,
                       order.avg_fill_price, status, message)
