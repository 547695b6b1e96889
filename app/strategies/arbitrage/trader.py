"""Kind ``funding_arb``: seed 001's funding-rate arbitrage paper trader.

Every trade goes through the state machine of ``app/domain/arbitrage.py``, and
every step of it is level-triggered: on any event of one of its orders, and on
every tick of its timer, the trader first counts what the engine says the trade's
orders did (so a fill is counted once, however late it is noticed), then decides
from the trade as it now stands. What it decides is orders plus a record of the
trade's new state, run together through the engine, so a restart finds each trade
exactly where it was and carries on from there.

Execution (seed 001, with what a desk adds to it):

* **Entry.** The harder leg (the thinner book within the impact limit) rests first,
  post-only at its own touch; it has ``leg_timeout_ms`` to fill, as the paper
  venue's queue model decides, and is then cancelled. Every fill of it is hedged on
  the other venue at once for the filled amount, with an IOC limit that may cross
  the book by ``hedge_slippage_bps`` at most. A hedge that cannot be sent yet
  because the amount is below the other venue's minimum is carried as hedge debt
  and settled when the entry is over: hedged once it reaches the minimum, else the
  excess of the harder leg is closed.
* **Leg-out.** When a fill is still unhedged ``leg_timeout_ms`` after the first
  fill (or a kill switch forbids the hedge), every working order of the trade is
  cancelled, the cancels are pending until the venue confirms them (a fill that
  arrives meanwhile is counted), then whatever is filled is closed at market and a
  ``LegOut`` is recorded with its loss.
* **Monitoring**, every ``monitor_every_ms``: the spread, unrealized P&L at the
  exit-side prices (fees and funding included) and seed 001's exits in its order.
* **Exit.** Reduce-only limit orders at the touch on both venues; what is left of
  either after ``leg_timeout_ms`` is completed at market, and a lagging single leg
  is recorded as an exit leg-out.
* **Kill switches.** REDUCE_ONLY lets exits and leg-out closes run (they reduce)
  and blocks entries; a hedge would open a position on the second venue, so an
  entry caught by REDUCE_ONLY is legged out at once (its filled part closed).
  HALTED stops everything but cancels: trades wait, unmanaged, until it lifts.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from app.domain.arbitrage import (
    MAX_TRADE_ORDERS,
    ArbOrder,
    ArbStatus,
    ArbTrade,
    LegOut,
    OrderRole,
)
from app.domain.arbitrage_rules import BPS, exit_reason, per_eight_hours, round_down_to
from app.domain.commands import Command
from app.domain.events import Event, FundingApplied
from app.domain.instruments import Instrument, Rounding
from app.domain.market import MarketUpdate
from app.domain.orders import OrderType, Side, TimeInForce
from app.domain.risk import SizingMode, SizingRequest
from app.domain.trading_state import TradingState
from app.strategies.arbitrage.opportunities import (
    Opportunity,
    Persistence,
    scan_symbol,
    symbols_of,
)
from app.strategies.arbitrage.params import ArbParams
from app.strategies.base import BaseStrategy, Commands, StrategyContext

ZERO = Decimal(0)
# Each leg's account margin is looked at this often (a valuation of the whole account:
# the venue's own liquidation is the backstop between two looks).
MARGIN_CHECK_EVERY = timedelta(seconds=10)
# Hedges and closes must go out whole: no impact sizing may shrink them.
WHOLE = SizingRequest(SizingMode.NONE)


class TradeMark:
    """A trade valued now: for monitoring and for the views."""

    __slots__ = ("booked", "current_spread_bps", "funding_delta", "unrealized")

    def __init__(self, unrealized: Decimal, booked: Decimal,
                 current_spread_bps: Decimal | None, funding_delta: Decimal | None):
        self.unrealized = unrealized
        self.booked = booked
        self.current_spread_bps = current_spread_bps
        self.funding_delta = funding_delta


def mark_trade(ctx: StrategyContext, t: ArbTrade) -> TradeMark | None:
    """``t`` valued now (None without two-sided books on both venues):

    * ``unrealized`` — seed 001's: what the prices did to both legs since their entry
      (at the venues' mids) plus the funding they collected, before fees;
    * ``booked`` — what closing now would book: the exit-side prices (the long's bid,
      the short's ask), every fee paid and the exit's fees;
    * the spread between the venues' mids and the funding delta in the trade's favour
      (short venue's rate minus the long venue's, per 8 h).
    """
    lt, st = ctx.book(t.symbol, t.long_venue), ctx.book(t.symbol, t.short_venue)
    if lt.bid is None or lt.ask is None or st.bid is None or st.ask is None:
        return None
    li, si = ctx.instrument(t.symbol, t.long_venue), ctx.instrument(t.symbol, t.short_venue)
    long_qty, short_qty = t.long_qty, t.short_qty
    l_mid, s_mid = (lt.bid + lt.ask) / 2, (st.bid + st.ask) / 2
    long_entry = t.entry_price(t.long_venue) or l_mid
    short_entry = t.entry_price(t.short_venue) or s_mid
    unrealized = ((l_mid - long_entry) * long_qty + (short_entry - s_mid) * short_qty
                  + t.funding)
    exit_fees = ZERO
    if li is not None and si is not None:
        exit_fees = long_qty * lt.bid * li.taker_fee_rate + short_qty * st.ask * si.taker_fee_rate
    booked = t.cash + long_qty * lt.bid - short_qty * st.ask - exit_fees
    spread = ((s_mid - l_mid) / ((l_mid + s_mid) / 2) * BPS).quantize(Decimal("0.01"))
    delta = None
    (lr, _), (sr, _) = ctx.funding(t.symbol, t.long_venue), ctx.funding(t.symbol, t.short_venue)
    if lr is not None and sr is not None and li is not None and si is not None:
        delta = (per_eight_hours(sr, si.funding_interval)
                 - per_eight_hours(lr, li.funding_interval))
    return TradeMark(unrealized, booked, spread, delta)


class FundingArbTrader(BaseStrategy):
    def __init__(self, params: ArbParams):
        self.p = params
        self.timeout = timedelta(milliseconds=params.leg_timeout_ms)
        self.every = timedelta(milliseconds=params.monitor_every_ms)
        self.trades: dict[str, ArbTrade] = {}
        self.next_check: datetime | None = None
        self.next_scan: datetime | None = None
        self.scan_every = timedelta(milliseconds=params.scan_every_ms)
        self.next_margin_check = datetime.min.replace(tzinfo=UTC)
        self.persistence: dict[str, Persistence] = {}
        self.converged: dict[str, int] = {}  # trade id -> consecutive converged checks
        self.cooldown_until: dict[str, datetime] = {}
        self.marks: dict[str, TradeMark] = {}  # trade id -> its last valuation
        self.last_scan: list[Opportunity] = []

    # ---- the host's calls --------------------------------------------------------------

    def on_start(self, ctx: StrategyContext) -> Commands:
        book = ctx.arb_book()
        self.trades = dict(book.open) if book is not None else {}
        return self._tick(ctx)

    def on_market(self, update: MarketUpdate, ctx: StrategyContext) -> Commands:
        return None  # the timer does the work: on the engine clock, at a steady pace

    def on_timer(self, ctx: StrategyContext) -> Commands:
        return self._tick(ctx)

    def on_event(self, event: Event, ctx: StrategyContext) -> Commands:
        if isinstance(event, FundingApplied):
            return self._funding(event, ctx)
        order_id = getattr(event, "order_id", None)
        if order_id is None:
            return None
        order = ctx.order(order_id)
        if order is None or order.spec.tags.strategy != ctx.strategy_id:
            return None
        trade = self.trades.get(order.spec.tags.parent_trade_id or "")
        if trade is None:
            return None
        return self._progress(ctx, trade)

    def on_stop(self, ctx: StrategyContext) -> Commands:
        """Stopped by an operator: nothing is left naked. Entries are legged out (their
        filled part closed at market), exits completed at market; trades that are on
        stay on, hedged, unmanaged until the strategy starts again."""
        out: list[Command] = []
        for trade in list(self.trades.values()):
            t = self._synced(ctx, trade)
            if t.status is ArbStatus.PENDING:
                t = t.moved(ArbStatus.LEGGING_OUT, note="strategy_stopped",
                            exit_started_at=ctx.now, deadline=None)
            if t.status in (ArbStatus.LEGGING_OUT, ArbStatus.EXITING):
                t = self._cancel_working(ctx, t, out)
                t = self._close_positions(ctx, t, out, only_if_idle=False)
            self._record(ctx, trade, t, out, "strategy stopped")
        return out

    # ---- the clock -----------------------------------------------------------------------

    def _tick(self, ctx: StrategyContext) -> list[Command]:
        out: list[Command] = []
        for trade in list(self.trades.values()):
            out.extend(self._progress(ctx, trade))
        if self.next_check is not None and ctx.now < self.next_check:
            return out
        self.next_check = ctx.now + self.every
        for trade in list(self.trades.values()):
            if trade.status is ArbStatus.ACTIVE:
                out.extend(self._monitor(ctx, trade))
        if ctx.now >= self.next_margin_check:
            self.next_margin_check = ctx.now + MARGIN_CHECK_EVERY
        if self.next_scan is None or ctx.now >= self.next_scan:
            self.next_scan = ctx.now + self.scan_every
            out.extend(self._scan(ctx))
        return out

    def _progress(self, ctx: StrategyContext, trade: ArbTrade) -> list[Command]:
        out: list[Command] = []
        t = self._synced(ctx, trade)
        if t.status is ArbStatus.PENDING:
            t = self._entering(ctx, t, out)
        if t.status is ArbStatus.LEGGING_OUT:
            t = self._legging_out(ctx, t, out)
        elif t.status is ArbStatus.EXITING:
            t = self._exiting(ctx, t, out)
        self._record(ctx, trade, t, out, _change(trade, t))
        return out

    # ---- counting what the orders did ----------------------------------------------------

    def _synced(self, ctx: StrategyContext, t: ArbTrade) -> ArbTrade:
        for o in t.orders:
            if o.done:
                continue
            order = (ctx.order(o.order_id) if o.order_id is not None
                     else ctx.order_by_client_id(o.coid, o.venue))
            if order is None:
                # Asked for in an earlier call and never taken (refused outright), or
                # finished so long ago it left memory: either way it works no more.
                t = t.with_order(replace(o, done=True))
                continue
            fresh = replace(o, order_id=order.order_id, filled=order.filled_qty,
                            notional=order.filled_notional, fees=order.fees,
                            done=not order.is_open)
            if fresh != o:
                t = t.with_order(fresh)
        return t

    def _funding(self, e: FundingApplied, ctx: StrategyContext) -> Commands:
        for trade in self.trades.values():
            if trade.symbol != e.symbol or not trade.position_on(e.venue):
                continue
            if e.venue == trade.long_venue:
                t = replace(trade, funding_long=trade.funding_long + e.amount)
            else:
                t = replace(trade, funding_short=trade.funding_short + e.amount)
            out: list[Command] = []
            self._record(ctx, trade, t, out, f"funding {e.amount:+.4f} on {e.venue}")
            return out
        return None

    # ---- entry ---------------------------------------------------------------------------

    def _entering(self, ctx: StrategyContext, t: ArbTrade, out: list[Command]) -> ArbTrade:
        now, harder, easier = ctx.now, t.harder_venue, t.easier_venue
        filled = abs(t.position_on(harder))
        hedged = abs(t.position_on(easier))
        if filled > 0 and t.first_fill_at is None:
            t = replace(t, first_fill_at=now, deadline=now + self.timeout)
        if self._restricted(ctx, t):
            return self._begin_leg_out(ctx, t, "kill_switch", out)
        entry = next((o for o in t.orders if o.role is OrderRole.ENTRY), None)
        if (entry is not None and not entry.done and not entry.cancel_requested
                and now >= t.created_at + self.timeout):
            t = self._cancel(ctx, t, entry, out, "entry leg not filled in time")
        ei = ctx.instrument(t.symbol, easier)
        if ei is None:
            return self._begin_leg_out(ctx, t, "instrument_missing", out)
        in_flight = sum((o.qty - o.filled for o in t.working if o.role is OrderRole.HEDGE), ZERO)
        unhedged = filled - hedged - in_flight
        qty = round_down_to(unhedged, ei.step_size)
        deadline_passed = t.deadline is not None and now >= t.deadline
        # An IOC hedge that came back short is tried again at the next event or tick,
        # not in a loop within one instant.
        if (qty >= ei.min_qty and not deadline_passed and in_flight == 0
                and not _failed_at(t, OrderRole.HEDGE, now)
                and len(t.orders) < MAX_TRADE_ORDERS):
            t = self._hedge(ctx, t, ei, qty, out)
            return t
        if t.working:
            if deadline_passed and filled - hedged >= ei.min_qty:
                return self._begin_leg_out(ctx, t, "timeout", out)
            return t  # fills, hedges or cancels still to come
        if filled == 0 and hedged == 0:
            return t.moved(ArbStatus.CANCELLED, closed_at=now, actual_profit=ZERO,
                           exit_reason="entry_not_filled", deadline=None,
                           note="the harder leg did not fill in time")
        debt = filled - hedged
        if debt >= ei.min_qty:
            # Unhedged: tried again until the deadline, then legged out.
            return self._begin_leg_out(ctx, t, "timeout", out) if deadline_passed else t
        if debt != 0:
            if hedged == 0:
                return self._begin_leg_out(ctx, t, "below_minimum", out)
            # Hedge debt below the other venue's minimum: settle it by closing the
            # harder leg's excess, then the trade is on, matched.
            return self._close_positions(ctx, t, out, only_if_idle=True, matched=True)
        long_price = t.entry_price(t.long_venue) or ZERO
        size = (t.matched_qty * long_price).quantize(Decimal("0.01"))
        return t.moved(ArbStatus.ACTIVE, entered_at=now, first_fill_at=None, deadline=None,
                       position_size_usd=size)

    def _hedge(self, ctx: StrategyContext, t: ArbTrade, ei: Instrument, qty: Decimal,
               out: list[Command]) -> ArbTrade:
        side = t.side_on(ei.venue)
        planned = t.planned_long_price if side is Side.BUY else t.planned_short_price
        if planned <= 0:
            top = ctx.book(t.symbol, ei.venue)
            touch = top.ask if side is Side.BUY else top.bid
            if touch is None:
                return t
            planned = touch
        slip = self.p.hedge_slippage_bps / BPS
        limit = ei.round_price(planned * (1 + slip) if side is Side.BUY
                               else planned * (1 - slip),
                               Rounding.DOWN if side is Side.BUY else Rounding.UP)
        return self._submit(ctx, t, ei.venue, side, OrderType.LIMIT, qty, OrderRole.HEDGE,
                            out, price=limit, tif=TimeInForce.IOC)

    # ---- leg-out --------------------------------------------------------------------------------

    def _begin_leg_out(self, ctx: StrategyContext, t: ArbTrade, reason: str,
                       out: list[Command]) -> ArbTrade:
        t = t.moved(ArbStatus.LEGGING_OUT, note=reason, exit_started_at=ctx.now,
                    deadline=None)
        t = self._cancel_working(ctx, t, out)
        return self._legging_out(ctx, t, out)

    def _legging_out(self, ctx: StrategyContext, t: ArbTrade, out: list[Command]) -> ArbTrade:
        if t.working:
            # Cancels pending (wait for the venue to confirm them: a fill may still
            # come), or market completions on their way.
            return self._cancel_working(ctx, t, out)
        if t.position_on(t.long_venue) or t.position_on(t.short_venue):
            return self._close_positions(ctx, t, out, only_if_idle=True)
        profit = t.cash  # exact: the accounts must match it to the last digit
        done = t.moved(ArbStatus.LEGGED_OUT, closed_at=ctx.now, actual_profit=profit,
                       exit_reason="leg_out")
        out.append(ctx.record_leg_out(self._leg_out(ctx, done, "entry", t.note or "timeout")))
        return done

    def _leg_out(self, ctx: StrategyContext, t: ArbTrade, phase: str, reason: str) -> LegOut:
        """The record of a leg-out: the leg that filled (more), the one that lagged."""
        if phase == "entry":
            filled_venue = t.harder_venue
            roles: tuple[OrderRole, ...] = (OrderRole.ENTRY, OrderRole.HEDGE)
        else:  # the leg that needed no market completion filled; the other lagged
            completed = {o.venue for o in t.orders if o.role is OrderRole.CLOSE and o.filled}
            filled_venue = t.long_venue if t.short_venue in completed else t.short_venue
            roles = (OrderRole.EXIT,)
        unfilled_venue = t.short_venue if filled_venue == t.long_venue else t.long_venue
        entered = [o for o in t.orders if o.role in roles and o.venue == filled_venue
                   and o.filled]
        qty = sum((o.filled for o in entered), ZERO)
        price = sum((o.notional for o in entered), ZERO) / qty if qty else None
        lagging = sum((o.filled for o in t.orders if o.role in roles
                       and o.venue == unfilled_venue), ZERO)
        closes = [o for o in t.orders if o.role is OrderRole.CLOSE and o.filled]
        hedge_qty = sum((o.filled for o in closes), ZERO)
        hedge_price = (sum((o.notional for o in closes), ZERO) / hedge_qty
                       if hedge_qty else None)
        if phase == "entry":
            loss = max(ZERO, -(t.actual_profit or ZERO))
        else:  # what completing at market cost against the exit limits' prices
            loss = ZERO
            for o in closes:
                limit = next((x for x in t.orders if x.role is OrderRole.EXIT
                              and x.venue == o.venue), None)
                if limit is not None and o.filled:
                    ref = ctx.order(limit.order_id) if limit.order_id is not None else None
                    ref_price = ref.spec.price if ref is not None else None
                    if ref_price is not None:
                        avg = o.notional / o.filled
                        loss += max(ZERO, (avg - ref_price) * o.side.sign * o.filled)
                loss += o.fees
        leg = "long" if filled_venue == t.long_venue else "short"
        return LegOut(
            trade_id=t.trade_id, strategy_id=t.strategy_id, client=t.client, symbol=t.symbol,
            phase=phase, filled_leg=leg, filled_venue=filled_venue,
            unfilled_leg="short" if leg == "long" else "long", unfilled_venue=unfilled_venue,
            # (An exit's legs went out together: when they did stands for the fill.)
            filled_at=t.first_fill_at if phase == "entry" else t.exit_started_at,
            detected_at=t.exit_started_at or ctx.now if phase == "entry" else ctx.now,
            filled_qty=qty, filled_price=price, missing_qty=max(ZERO, qty - lagging),
            hedge_executed=hedge_qty > 0, hedge_qty=hedge_qty, hedge_price=hedge_price,
            loss=loss, reason=reason, at=ctx.now)

    # ---- monitoring and exit -------------------------------------------------------------

    def _monitor(self, ctx: StrategyContext, t: ArbTrade) -> list[Command]:
        out: list[Command] = []
        if ctx.trading_state(t.long_venue) is TradingState.HALTED or \
                ctx.trading_state(t.short_venue) is TradingState.HALTED:
            return out
        reason: str | None = None
        margins_due = ctx.now >= self.next_margin_check
        for venue in (t.long_venue, t.short_venue):
            if ctx.position_qty(t.symbol, venue) != t.position_on(venue):
                reason = "position_mismatch"  # liquidated, or traded by someone else
            elif margins_due and ctx.summary(venue).margin_ratio >= self.p.max_margin_ratio:
                reason = f"margin_{venue}"
        mark = mark_trade(ctx, t)
        if mark is not None:
            self.marks[t.trade_id] = mark
        if reason is None and mark is not None:
            delta = mark.funding_delta
            streak = self.converged.get(t.trade_id, 0)
            streak = streak + 1 if delta is not None and delta < self.p.convergence_delta else 0
            self.converged[t.trade_id] = streak
            held = t.entered_at is not None and ctx.now - t.entered_at >= timedelta(
                seconds=self.p.min_hold_s)
            reason = exit_reason(mark.booked, mark.unrealized, t.projected_profit, delta,
                                 profit_target=self.p.profit_target,
                                 loss_limit=self.p.loss_limit,
                                 convergence=self.p.convergence_delta,
                                 held_long_enough=held, converged_checks=streak,
                                 confirm_checks=self.p.convergence_checks)
        if reason is None:
            return out
        t2 = self._begin_exit(ctx, t, reason, out)
        self._record(ctx, t, t2, out, f"exit: {reason}")
        return out

    def _begin_exit(self, ctx: StrategyContext, t: ArbTrade, reason: str,
                    out: list[Command]) -> ArbTrade:
        t = t.moved(ArbStatus.EXITING, exit_reason=reason, exit_started_at=ctx.now,
                    deadline=ctx.now + self.timeout)
        for venue in (t.long_venue, t.short_venue):
            qty = t.position_on(venue)
            inst = ctx.instrument(t.symbol, venue)
            top = ctx.book(t.symbol, venue)
            if not qty or inst is None:
                continue
            side = Side.SELL if qty > 0 else Side.BUY
            touch = top.bid if side is Side.SELL else top.ask
            if touch is None:
                continue  # completed at market when its time is up
            t = self._submit(ctx, t, venue, side, OrderType.LIMIT, abs(qty), OrderRole.EXIT,
                             out, price=touch, reduce_only=True)
        return t

    def _exiting(self, ctx: StrategyContext, t: ArbTrade, out: list[Command]) -> ArbTrade:
        due = t.deadline is None or ctx.now >= t.deadline
        if t.working:
            if due:
                t = self._cancel_working(ctx, t, out)
            return t
        if t.position_on(t.long_venue) or t.position_on(t.short_venue):
            if not due:
                return t  # an exit order was refused: complete at its time
            return self._close_positions(ctx, t, out, only_if_idle=True)
        completed = {o.venue for o in t.orders if o.role is OrderRole.CLOSE and o.filled}
        profit = t.cash  # exact: the accounts must match it to the last digit
        done = t.moved(ArbStatus.CLOSED, closed_at=ctx.now, actual_profit=profit,
                       deadline=None)
        if len(completed) == 1:
            out.append(ctx.record_leg_out(self._leg_out(ctx, done, "exit", "timeout")))
        self.cooldown_until[t.symbol] = ctx.now + timedelta(seconds=self.p.cooldown_s)
        return done

    # ---- entering new trades -------------------------------------------------------------

    def _scan(self, ctx: StrategyContext) -> list[Command]:
        p = self.p
        listed = ctx.instruments(p.venues[0])
        available = self._available(ctx)
        found: list[Opportunity] = []
        for symbol in symbols_of(ctx, p, listed):
            persistence = self.persistence.get(symbol)
            persisted = ctx.now - persistence.since if persistence is not None else timedelta(0)
            opp = scan_symbol(ctx, p, symbol, available, persisted)
            if opp is None:
                self.persistence.pop(symbol, None)
                continue
            if opp.funding_delta >= p.min_entry_delta:
                if persistence is None or persistence.long_venue != opp.long_venue:
                    self.persistence[symbol] = Persistence(opp.long_venue, ctx.now)
            else:
                self.persistence.pop(symbol, None)
            found.append(opp)
        self.last_scan = found
        if not p.enabled_entries or any(t.status is ArbStatus.PENDING
                                        for t in self.trades.values()):
            return []
        if len(self.trades) >= p.max_open_trades:
            return []
        if any(ctx.trading_state(v) is not TradingState.ACTIVE for v in p.venues):
            return []
        busy = {t.symbol for t in self.trades.values()}
        candidates = [o for o in found if o.candidate and o.symbol not in busy
                      and ctx.now >= self.cooldown_until.get(o.symbol, ctx.now)]
        if not candidates:
            return []
        best = max(candidates, key=lambda o: (o.projected_profit, o.symbol))
        return self._enter(ctx, best)

    def _available(self, ctx: StrategyContext) -> Decimal:
        book = ctx.arb_book()
        cumulative = book.cumulative_pnl if book is not None else ZERO
        allocated = sum((t.position_size_usd for t in self.trades.values()
                         if t.status.holds_capital), ZERO)
        return self.p.starting_capital + cumulative - allocated

    def _enter(self, ctx: StrategyContext, o: Opportunity) -> list[Command]:
        out: list[Command] = []
        base = o.symbol.split("-")[0][:8]
        trade_id = f"{base}-{int(ctx.now.timestamp() * 1000)}"
        t = ArbTrade(
            trade_id=trade_id, strategy_id=ctx.strategy_id, client=ctx.client,
            symbol=o.symbol, long_venue=o.long_venue, short_venue=o.short_venue,
            harder_venue=o.harder_venue, status=ArbStatus.PENDING, created_at=ctx.now,
            target_qty=o.qty, entry_spread_bps=o.spread_bps,
            funding_delta_entry=o.funding_delta, projected_profit=o.projected_profit,
            confidence=o.confidence, planned_long_price=o.long_price,
            planned_short_price=o.short_price)
        side = t.side_on(o.harder_venue)
        price = o.long_price if side is Side.BUY else o.short_price
        t = self._submit(ctx, t, o.harder_venue, side, OrderType.LIMIT, o.qty,
                         OrderRole.ENTRY, out, price=price, post_only=True)
        out.insert(0, ctx.record_trade(t, f"opened: {o.qty} {o.symbol} long "
                                          f"{o.long_venue} short {o.short_venue}"))
        self.trades[trade_id] = t
        return out

    # ---- orders --------------------------------------------------------------------------

    def _submit(self, ctx: StrategyContext, t: ArbTrade, venue: str, side: Side,
                type: OrderType, qty: Decimal, role: OrderRole, out: list[Command], *,
                price: Decimal | None = None, tif: TimeInForce = TimeInForce.GTC,
                post_only: bool = False, reduce_only: bool = False) -> ArbTrade:
        coid = f"{t.trade_id}-{len(t.orders)}"
        out.append(ctx.submit(
            t.symbol, side, type, qty, price=price, time_in_force=tif, post_only=post_only,
            reduce_only=reduce_only, client_order_id=coid, venue=venue,
            parent_trade_id=t.trade_id, sizing=WHOLE,
            exit_reason=t.exit_reason if role in (OrderRole.EXIT, OrderRole.CLOSE) else None))
        return t.with_order(ArbOrder(coid, None, venue, side, role, qty, ctx.now))

    def _cancel(self, ctx: StrategyContext, t: ArbTrade, o: ArbOrder, out: list[Command],
                reason: str) -> ArbTrade:
        if o.order_id is not None:
            out.append(ctx.cancel(o.order_id, reason))
        return t.with_order(replace(o, cancel_requested=True))

    def _cancel_working(self, ctx: StrategyContext, t: ArbTrade, out: list[Command]
                        ) -> ArbTrade:
        for o in t.working:
            # Market completions are never called back: they are what closes the risk.
            if not o.cancel_requested and o.role is not OrderRole.CLOSE:
                t = self._cancel(ctx, t, o, out, "arbitrage leg-out" if
                                 t.status is ArbStatus.LEGGING_OUT else "arbitrage exit")
        return t

    def _close_positions(self, ctx: StrategyContext, t: ArbTrade, out: list[Command], *,
                         only_if_idle: bool, matched: bool = False) -> ArbTrade:
        """Market-close what the trade holds on each venue (``matched``: only the harder
        leg's excess over the hedge), unless a close is still working."""
        if only_if_idle and t.working:
            return t
        if any(ctx.trading_state(v) is TradingState.HALTED
               for v in (t.long_venue, t.short_venue)):
            return t  # nothing but cancels may go out: wait for the switch to lift
        if len(t.orders) >= MAX_TRADE_ORDERS:
            return replace(t, note="order budget spent: needs an operator")
        if _failed_at(t, OrderRole.CLOSE, ctx.now):
            return t  # refused or short just now: again at the next tick
        for venue in (t.long_venue, t.short_venue):
            qty = t.position_on(venue)
            if matched:
                if venue != t.harder_venue:
                    continue
                qty = qty - t.matched_qty * Decimal(1).copy_sign(qty)
            if not qty:
                continue
            side = Side.SELL if qty > 0 else Side.BUY
            inst = ctx.instrument(t.symbol, venue)
            size = abs(qty)
            if inst is not None:
                # Whole lots, rounded up: reduce-only never closes more than is there.
                size = max(inst.round_qty(size, Rounding.UP), inst.min_qty)
            t = self._submit(ctx, t, venue, side, OrderType.MARKET, size, OrderRole.CLOSE,
                             out, reduce_only=True)
        return t

    # ---- recording -----------------------------------------------------------------------

    def _record(self, ctx: StrategyContext, before: ArbTrade, after: ArbTrade,
                out: list[Command], change: str) -> None:
        if after == before:
            return
        out.append(ctx.record_trade(after, change))
        if after.status.terminal:
            self.trades.pop(after.trade_id, None)
            self.converged.pop(after.trade_id, None)
            self.marks.pop(after.trade_id, None)
        else:
            self.trades[after.trade_id] = after

    def _restricted(self, ctx: StrategyContext, t: ArbTrade) -> bool:
        return any(ctx.trading_state(v) is not TradingState.ACTIVE
                   for v in (t.long_venue, t.short_venue))


def _failed_at(t: ArbTrade, role: OrderRole, now: datetime) -> bool:
    """Did an order of ``role`` placed at ``now`` come back short (refused, or an IOC
    that found too little)? It is tried again at the next event or tick, not in a
    loop within one instant."""
    return any(o.role is role and o.placed_at == now and o.done and o.filled < o.qty
               for o in t.orders)


def _change(before: ArbTrade, after: ArbTrade) -> str:
    if before.status is not after.status:
        return f"{before.status} -> {after.status}" + (f" ({after.note})" if after.note
                                                       and after.note != before.note else "")
    filled = [o for o in after.orders if o not in before.orders]
    if filled:
        return ", ".join(f"{o.role} {o.venue} {o.filled}/{o.qty}" for o in filled)[:200]
    return "updated"
