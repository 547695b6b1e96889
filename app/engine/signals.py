"""Signals to orders, and OCO brackets, as engine policy (seed 002).

``SignalDesk`` turns a ``SubmitSignal`` into orders with the client's
``SignalParams``: a close (reduce-only market) when the position must go or turn,
and an entry sized and priced by the parameters, through the same ``_place`` (risk
gate, kill switches, venue) as any order. What came of it is ``SignalResolved``:
the orders, or the reason there were none.

An entry with a take profit or a stop loss opens a bracket (``BracketOpened``,
recorded before the entry is placed, so every fill of it counts). After every
step in which a bracket's orders or position changed, ``police`` makes each open
bracket's legs — a reduce-only take-profit and a reduce-only stop, priced from the
entry's average fill — protect exactly what is open of it: ``min(entry filled −
exits filled, position)``. So the legs follow partial fills of the entry, a fill of
one leg shrinks (or cancels) the other, and both go when the position does.

Kill switches: legs are the engine's own protective orders. They are reduce-only
and never larger than the position, so REDUCE_ONLY lets them through as it lets
any reducing order; under HALTED they are placed too (as close-all's orders are):
a halt stops new exposure, and stripping a position of its stop because an entry
filled after the halt would leave it unprotected without anyone deciding so.

Candles: the desk keeps, per (venue, symbol), the open of the current candle and a
bounded window of closes, sampled from the venue's reference price at candle
boundaries (one comparison per market update; gaps are flat candles). Volatility
exits use the sample standard deviation of the simple returns of the last
``volatility_window`` closes. Candles are market state, not events: after a restart
the window refills from the feed (a volatility signal meanwhile says
``VOLATILITY_NOT_READY``); what a signal decided is in its events.
"""

from __future__ import annotations

import itertools
from collections import deque
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from app.domain.events import Event
from app.domain.instruments import Instrument, Rounding
from app.domain.orders import Order, OrderSpec, OrderStatus, OrderTags, OrderType, Side
from app.domain.orders import TimeInForce as TIF
from app.domain.rejections import CommandRefused, RejectCode
from app.domain.signals import (
    Bracket,
    BracketClosed,
    BracketLegsPlaced,
    BracketOpened,
    EntryOrder,
    EntryPoint,
    ExitMode,
    NoOrderReason,
    PositionMode,
    SetSignalParams,
    SignalParams,
    SignalParamsChanged,
    SignalReceived,
    SignalResolved,
    SizeMode,
    SubmitSignal,
)

if TYPE_CHECKING:
    from app.engine.engine import Engine

R = RejectCode
N = NoOrderReason
ZERO = Decimal(0)
BPS = Decimal(10_000)
HUNDRED = Decimal(100)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_INTERVAL = timedelta(minutes=1)
MAX_WINDOW = 1000  # closes kept per (venue, symbol), whatever a client asks for
MAX_SIGNAL_ID = 64
_POLICE_ROUNDS = 8
_PENDING = (OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_REPLACE)
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:/-")


def valid_signal_id(value: str) -> bool:
    return 0 < len(value) <= MAX_SIGNAL_ID and value[0].isalnum() and value.isascii() \
        and all(c in _ID_CHARS for c in value)


def stdev_of_returns(closes: list[Decimal]) -> Decimal | None:
    """The sample standard deviation of the simple returns of ``closes`` (None: fewer
    than two returns, or a close that is not positive)."""
    if len(closes) < 3 or any(c <= 0 for c in closes):
        return None
    returns = [b / a - 1 for a, b in itertools.pairwise(closes)]
    mean = sum(returns, ZERO) / len(returns)
    variance = sum(((r - mean) ** 2 for r in returns), ZERO) / (len(returns) - 1)
    return variance.sqrt()


class _Candles:
    """The current candle's open and the last closes of one (venue, symbol)."""

    __slots__ = ("closes", "end", "open")

    def __init__(self, end: datetime, window: int):
        self.end = end
        self.open: Decimal | None = None
        self.closes: deque[Decimal] = deque(maxlen=window)


def _candle_start(candles: _Candles | None, now: datetime, interval: timedelta) -> datetime:
    """The start of the candle ``now`` begins."""
    if candles is not None and now < candles.end + interval:
        return candles.end  # the candle right after the last one (the grid's)
    return EPOCH + (now - EPOCH) // interval * interval


def _close_candles(candles: _Candles, start: datetime, close: Decimal,
                   interval: timedelta) -> None:
    """The candles up to ``start`` closed at ``close``: the last one, and any with no
    update in between (flat)."""
    if start == candles.end:  # most often: the candle right after
        candles.closes.append(close)
        return
    flat = min((start - candles.end) // interval, MAX_WINDOW)
    candles.closes.extend([close] * (flat + 1))


class SignalDesk:
    def __init__(self, engine: Engine, params: dict[str, SignalParams],
                 default: SignalParams, interval: timedelta | None = DEFAULT_INTERVAL):
        self.engine = engine
        self.configured = params  # from the configuration; events override them
        self.default = default
        self.interval = interval  # None: no candles (volatility exits never ready)
        self._candles: dict[tuple[str, str], _Candles] = {}
        self.pending_open: set[tuple[str, str]] = set()
        # The engine's fast path (most ticks fall inside a candle that every symbol has
        # already seen): ``before_market`` is needed only once the current candle ends
        # or while some symbol has not had its first update of the candle yet.
        self.candle_end = EPOCH if interval is not None else datetime.max.replace(tzinfo=UTC)
        self.unseen: set[tuple[str, str]] = set()
        # Until when there is nothing to do: the candle's end once every symbol has had
        # its first update (and open) of it; the epoch while one has not.
        self.idle_until = self.candle_end

    # ---- parameters -------------------------------------------------------------------

    def params(self, client: str) -> SignalParams:
        return self.engine.state.signal_params.get(client) or self.configured.get(client) \
            or self.default

    def source(self, client: str) -> str:
        if client in self.engine.state.signal_params:
            return "set"
        return "configured" if client in self.configured else "default"

    def set_params(self, cmd: SetSignalParams, now: datetime, out: list[Event]) -> None:
        if not any(c == cmd.client for c, _ in self.engine.state.accounts):
            raise CommandRefused(R.UNKNOWN_ACCOUNT, f"client {cmd.client!r} has no account")
        self.engine._emit(SignalParamsChanged(cmd.client, cmd.params, cmd.reason, cmd.actor,
                                              now), out)

    # ---- candles ------------------------------------------------------------------------

    def before_market(self, venue: str, symbol: str, now: datetime) -> None:
        """Called before the venue takes a market update: at a candle boundary, the
        price before the update is the close of the candle that ended."""
        interval = self.interval
        if interval is None:
            return
        key = (venue, symbol)
        if now >= self.candle_end:  # a new candle for everyone (they share the grid)
            self.candle_end = self._candle_end_after(now, interval)
            # Every instrument waits for its first update of the candle (one never fed
            # keeps the slow path on: correct, only slower).
            self.unseen = set(self.engine.instruments)
        self.unseen.discard(key)
        candles = self._candles.get(key)
        if candles is not None and now < candles.end:
            return
        start = _candle_start(candles, now, interval)
        if candles is None:
            if (venue, symbol) not in self.engine.instruments:
                return
            self._candles[key] = _Candles(start + interval, MAX_WINDOW + 1)
        else:
            close = self.engine.venues[venue].reference_price(symbol)
            if close is not None:
                _close_candles(candles, start, close, interval)
            candles.end, candles.open = start + interval, None
        self.pending_open.add(key)

    def open_quietly(self, venue: str, symbol: str, now: datetime, reference: Decimal
                     ) -> bool:
        """``before_market``, an update that leaves the symbol's reference price at
        ``reference``, then ``after_market``, in one call, where that is simple: the
        symbol is the only instrument, already has candles, and ``now`` begins a
        candle (a backtest takes a bar's open so: app/engine/quiet.py). False, with
        nothing done, where it is not."""
        interval = self.interval
        key = (venue, symbol)
        candles = self._candles.get(key)
        if interval is None or candles is None or now < self.candle_end \
                or now < candles.end or self.pending_open or self.unseen \
                or len(self.engine.instruments) != 1:
            return False
        self.candle_end = self._candle_end_after(now, interval)
        # ``unseen`` would hold the one instrument, then lose it; ``pending_open`` gain
        # the key, then lose it (the reference is known): both stay empty.
        start = _candle_start(candles, now, interval)
        _close_candles(candles, start, reference, interval)
        candles.end, candles.open = start + interval, reference
        self.idle_until = self.candle_end
        return True

    def _candle_end_after(self, now: datetime, interval: timedelta) -> datetime:
        end = self.candle_end + interval  # most often the very next one
        return end if now < end else EPOCH + ((now - EPOCH) // interval + 1) * interval

    def after_market(self, venue: str, symbol: str) -> None:
        """After the venue took the update: the first price of a candle is its open."""
        key = (venue, symbol)
        if key not in self.pending_open:
            self._settle_idle()
            return
        price = self.engine.venues[venue].reference_price(symbol)
        if price is not None:
            self._candles[key].open = price
            self.pending_open.discard(key)
        self._settle_idle()

    def _settle_idle(self) -> None:
        self.idle_until = EPOCH if self.unseen or self.pending_open else self.candle_end

    def reference(self, venue: str, symbol: str, entry_at: EntryPoint, now: datetime
                  ) -> Decimal | None:
        """The candle price an entry refers to: the current candle's open, or the
        previous candle's close."""
        candles = self._candles.get((venue, symbol))
        if candles is None:
            return None
        if now >= candles.end:  # no update since the candle ended: nothing moved
            return self.engine.venues[venue].reference_price(symbol)
        if entry_at is EntryPoint.CURRENT_OPEN:
            return candles.open
        return candles.closes[-1] if candles.closes else None

    def volatility(self, venue: str, symbol: str, window: int) -> Decimal | None:
        candles = self._candles.get((venue, symbol))
        if candles is None or len(candles.closes) < window + 1:
            return None
        closes = list(candles.closes)[-(window + 1):]
        return stdev_of_returns(closes)

    def closes(self, venue: str, symbol: str) -> list[Decimal]:
        candles = self._candles.get((venue, symbol))
        return list(candles.closes) if candles is not None else []

    # ---- signals ------------------------------------------------------------------------

    def submit(self, cmd: SubmitSignal, now: datetime, out: list[Event]) -> None:
        engine, state = self.engine, self.engine.state
        if cmd.signal not in (-1, 0, 1):
            raise CommandRefused(R.INVALID_SIGNAL, "signal must be 1, 0 or -1")
        if cmd.strength is not None and not ZERO < cmd.strength <= 1:
            raise CommandRefused(R.INVALID_SIGNAL, "strength must lie in (0, 1]")
        if not cmd.strategy or not valid_signal_id(cmd.strategy):
            raise CommandRefused(R.INVALID_SIGNAL,
                                 "strategy must be 1-64 characters of A-Z a-z 0-9 . _ : / -")
        engine._account_for(cmd.client, cmd.venue)
        signal_id = cmd.signal_id
        if signal_id is None:
            signal_id = f"sig-{state.signal_seq + 1}"
            n = 0
            while signal_id in state.signals:
                n += 1
                signal_id = f"sig-{state.signal_seq + 1}-{n}"
        elif not valid_signal_id(signal_id):
            raise CommandRefused(R.INVALID_SIGNAL,
                                 "signal_id must be 1-64 characters of A-Z a-z 0-9 . _ : / -")
        existing = state.signals.get(signal_id)
        if existing is not None:
            if existing.same_request(cmd):
                return  # an idempotent retry: the first signal stands
            raise CommandRefused(R.DUPLICATE_SIGNAL_ID,
                                 f"signal_id {signal_id!r} is already used by another signal")
        engine._emit(SignalReceived(signal_id, cmd.client, cmd.venue, cmd.symbol, cmd.signal,
                                    cmd.strategy, cmd.strength, cmd.signal_at, now,
                                    cmd.actor), out)
        engine._emit(self._act(cmd, signal_id, now, out), out)

    def _act(self, cmd: SubmitSignal, signal_id: str, now: datetime, out: list[Event]
             ) -> SignalResolved:
        engine, state = self.engine, self.engine.state
        client, venue, symbol = cmd.client, cmd.venue, cmd.symbol
        params = self.params(client)

        def resolved(order_ids: list[int], reason: NoOrderReason | None, message: str,
                     reference: Decimal | None = None, tp: Decimal | None = None,
                     sl: Decimal | None = None) -> SignalResolved:
            return SignalResolved(signal_id, client, venue, symbol, tuple(order_ids), reason,
                                  message, reference, tp, sl, now)

        inst = engine.instruments.get((venue, symbol))
        if inst is None:
            return resolved([], N.UNKNOWN_SYMBOL, f"{symbol} is not traded on {venue}")
        tags = OrderTags(strategy=cmd.strategy, signal_id=signal_id)
        # A new signal supersedes the entries of earlier ones still working here.
        self._cancel_entries(client, venue, symbol, signal_id, now, out)
        position = state.positions.get((client, venue, symbol))
        qty = position.qty if position is not None else ZERO
        target = cmd.signal
        if target < 0 and params.mode is PositionMode.LONG_ONLY:
            target = 0
        current = (qty > 0) - (qty < 0)
        if current == target:
            if target:
                return resolved([], N.ALREADY_POSITIONED,
                                f"already {'long' if target > 0 else 'short'} {abs(qty)} "
                                f"{symbol}")
            why = " (long-only: -1 only closes a long)" if cmd.signal < 0 else ""
            return resolved([], N.NOTHING_TO_CLOSE, f"no {symbol} position to close{why}")
        order_ids: list[int] = []
        if qty:
            close = engine._place(OrderSpec(
                client, venue, symbol, Side.SELL if qty > 0 else Side.BUY, OrderType.MARKET,
                abs(qty), reduce_only=True,
                tags=OrderTags(cmd.strategy, signal_id, exit_reason="signal")),
                now, out, clip=True, actor=cmd.actor)
            order_ids.append(close.order_id)
            if close.status is OrderStatus.REJECTED:
                return resolved(order_ids, N.ORDER_REJECTED,
                                f"the close was rejected: {close.reject_code}: "
                                f"{close.reject_message}")
            if not target:
                return resolved(order_ids, None, f"closing {qty} {symbol}")
        return self._enter(cmd, params, inst, Side.BUY if target > 0 else Side.SELL, tags,
                           order_ids, resolved, now, out)

    def _enter(self, cmd: SubmitSignal, params: SignalParams, inst: Instrument, side: Side,
               tags: OrderTags, order_ids: list[int], resolved: _Resolve, now: datetime,
               out: list[Event]) -> SignalResolved:
        engine, state = self.engine, self.engine.state
        client, venue, symbol = cmd.client, cmd.venue, cmd.symbol
        done = "after the close: " if order_ids else ""
        reference = self.reference(venue, symbol, params.entry_at, now)
        if reference is None or reference <= 0:
            return resolved(order_ids, N.NO_CANDLE,
                            f"{done}no {params.entry_at.value.replace('_', ' ')} of {symbol} "
                            "yet to enter at")
        tp_frac: Decimal | None = None
        sl_frac: Decimal | None = None
        if params.exit_mode is ExitMode.VOLATILITY:
            sd = self.volatility(venue, symbol, params.volatility_window)
            if sd is None:
                return resolved(order_ids, N.VOLATILITY_NOT_READY,
                                f"{done}fewer than {params.volatility_window + 1} candles of "
                                f"{symbol} for the volatility exits", reference)
            tp_frac = params.take_profit_sd * sd if params.take_profit_sd else None
            sl_frac = params.stop_loss_sd * sd if params.stop_loss_sd else None
        elif params.exit_mode is ExitMode.FIXED_PCT:
            tp_frac = params.take_profit_pct / HUNDRED if params.take_profit_pct else None
            sl_frac = params.stop_loss_pct / HUNDRED if params.stop_loss_pct else None
        tp_frac = tp_frac or None  # a zero distance is no exit
        sl_frac = sl_frac or None
        # Size
        equity = engine.summary(client, venue).equity
        if params.size_mode is SizeMode.FIXED:
            qty = params.fixed_qty or ZERO
        elif params.size_mode is SizeMode.BALANCE_FRACTION:
            qty = max(equity, ZERO) * params.balance_fraction / reference
        else:
            if sl_frac is None:
                return resolved(order_ids, N.NO_STOP_DISTANCE,
                                f"{done}risk sizing needs a stop loss distance", reference,
                                tp_frac)
            qty = max(equity, ZERO) * params.risk_fraction / (reference * sl_frac)
        if cmd.strength is not None and params.scale_by_strength:
            qty *= cmd.strength
        qty = inst.round_qty(qty)
        if qty < inst.min_qty or qty <= 0:
            return resolved(order_ids, N.SIZE_TOO_SMALL,
                            f"{done}the size ({qty}) is below {symbol}'s minimum "
                            f"{inst.min_qty}", reference, tp_frac, sl_frac)
        # Price
        view = engine.venues[venue]
        book = view.book(symbol)
        bid, ask = book.bid, book.ask
        price: Decimal | None = None
        tif = params.time_in_force
        if params.order_type is EntryOrder.LIMIT:
            if bid is None or ask is None:
                return resolved(order_ids, N.NO_MARKET_DATA,
                                f"{done}no bid and ask of {symbol} for a limit price",
                                reference, tp_frac, sl_frac)
            mid = (bid + ask) / 2
            offset = params.limit_price_offset_bps / BPS
            price = inst.round_price(mid * (1 - offset), Rounding.DOWN) if side is Side.BUY \
                else inst.round_price(mid * (1 + offset), Rounding.UP)
            kind = OrderType.LIMIT
        elif params.max_slippage_bps is None:
            kind, tif = OrderType.MARKET, TIF.IOC
        else:
            # A marketable limit: fills no worse than the slippage cap from the
            # candle price, and what does not fill at once is canceled.
            slip = params.max_slippage_bps / BPS
            if side is Side.BUY:
                price = inst.round_price(reference * (1 + slip), Rounding.DOWN)
                touch = ask if ask is not None else view.reference_price(symbol)
                beyond = touch is not None and touch > price
            else:
                price = inst.round_price(reference * (1 - slip), Rounding.UP)
                touch = bid if bid is not None else view.reference_price(symbol)
                beyond = touch is not None and touch < price
            if beyond:
                return resolved(order_ids, N.SLIPPAGE_TOO_HIGH,
                                f"{done}{symbol} is at {touch}, beyond {params.max_slippage_bps}"
                                f" bps from the {params.entry_at.value.replace('_', ' ')} "
                                f"{reference}", reference, tp_frac, sl_frac)
            kind, tif = OrderType.LIMIT, TIF.IOC
        spec = OrderSpec(client, venue, symbol, side, kind, qty, price=price, time_in_force=tif,
                         tags=tags)
        order_id = state.last_order_id + 1
        if tp_frac is not None or sl_frac is not None:
            engine._emit(BracketOpened(order_id, tags.signal_id or "", cmd.strategy, client,
                                       venue, symbol, side, tp_frac, sl_frac, now), out)
        entry = engine._place(spec, now, out, order_id=order_id, actor=cmd.actor)
        order_ids.append(entry.order_id)
        if entry.status is OrderStatus.REJECTED:
            return resolved(order_ids, N.ORDER_REJECTED,
                            f"{done}the entry was rejected: {entry.reject_code}: "
                            f"{entry.reject_message}", reference, tp_frac, sl_frac)
        return resolved(order_ids, None,
                        f"{done}{side.value} {qty} {symbol} ({kind.value} {tif.value})",
                        reference, tp_frac, sl_frac)

    def _cancel_entries(self, client: str, venue: str, symbol: str, signal_id: str,
                        now: datetime, out: list[Event]) -> None:
        for order in list(self.engine.state.open_orders.get((client, venue), {}).values()):
            spec = order.spec
            if (spec.symbol == symbol and spec.tags.signal_id and not spec.reduce_only
                    and order.status not in _PENDING):
                self.engine._request_cancel(order, now, "signal",
                                            f"superseded by signal {signal_id}", out)

    # ---- brackets ---------------------------------------------------------------------

    def police(self, now: datetime, out: list[Event]) -> None:
        """Bring the legs of every bracket whose orders or position changed in line."""
        state = self.engine.state
        for _ in range(_POLICE_ROUNDS):
            if not state.bracket_dirty:
                return
            keys = sorted(state.bracket_dirty)
            state.bracket_dirty.clear()
            for key in keys:
                for bracket_id in sorted(state.brackets_by_key.get(key, ())):
                    bracket = state.brackets.get(bracket_id)
                    if bracket is not None and bracket.closed is None:
                        self._police(bracket, now, out)

    def _police(self, b: Bracket, now: datetime, out: list[Event]) -> None:
        engine, state = self.engine, self.engine.state
        emit = engine._emit
        orders = state.orders
        inst = engine.instruments[(b.venue, b.symbol)]
        entry = orders.get(b.bracket_id)
        entry_open = entry is not None and entry.is_open
        position = state.positions.get((b.client, b.venue, b.symbol))
        held = position.qty if position is not None else ZERO
        held = max(held if b.entry_side is Side.BUY else -held, ZERO)
        target = inst.round_qty(min(b.open_qty, held))
        if target < inst.min_qty:
            target = ZERO
        tp = orders.get(b.take_profit_order_id) if b.take_profit_order_id else None
        sl = orders.get(b.stop_loss_order_id) if b.stop_loss_order_id else None
        # A current leg that ended without filling was not ended by the bracket (it
        # takes a leg off before it cancels it): the bracket is done (OCO), unless the
        # market is already past the leg, when what it protects closes at market.
        for leg, name in ((tp, "take profit"), (sl, "stop loss")):
            if leg is None or leg.is_open or leg.status is OrderStatus.FILLED:
                continue
            other = sl if leg is tp else tp
            emit(BracketLegsPlaced(b.bracket_id, b.client, b.venue, None, None, ZERO, now), out)
            if other is not None and other.is_open and other.status not in _PENDING:
                engine._request_cancel(other, now, "bracket", f"oco: {name} leg ended", out)
            if (leg.status is OrderStatus.REJECTED and target
                    and leg.reject_code == R.WOULD_IMMEDIATELY_TRIGGER):
                engine._place(OrderSpec(
                    b.client, b.venue, b.symbol, b.entry_side.opposite, OrderType.MARKET,
                    target, reduce_only=True, tags=OrderTags(
                        b.strategy, b.signal_id,
                        exit_reason="take_profit" if leg is tp else "stop_loss")),
                    now, out, clip=True, bypass_halt=True, actor="bracket")
                emit(BracketClosed(b.bracket_id, b.client, b.venue,
                                   f"the market was past the {name}: closed at market",
                                   now), out)
            else:
                why = (f"{leg.reject_code}: {leg.reject_message}"
                       if leg.status is OrderStatus.REJECTED
                       else leg.cancel_reason or leg.status.value)
                emit(BracketClosed(b.bracket_id, b.client, b.venue,
                                   f"{name} leg {leg.status.value} ({why})", now), out)
            return
        if not target:
            if (tp is not None and tp.is_open) or (sl is not None and sl.is_open):
                emit(BracketLegsPlaced(b.bracket_id, b.client, b.venue, None, None, ZERO, now), out)
                for leg in (tp, sl):
                    if leg is not None and leg.is_open and leg.status not in _PENDING:
                        engine._request_cancel(leg, now, "bracket", "oco: nothing left to "
                                               "protect", out)
            if not entry_open:
                reason = "the position is closed" if b.entry_filled else \
                    "the entry ended unfilled"
                emit(BracketClosed(b.bracket_id, b.client, b.venue, reason, now), out)
            return
        price = b.entry_price
        if price is None:
            return
        wanted = {"tp": b.take_profit_frac is not None, "sl": b.stop_loss_frac is not None}
        legs = {"tp": tp, "sl": sl}
        if any(leg is not None and leg.status in _PENDING for leg in legs.values()):
            return  # someone is canceling a leg: decide once it is done
        fine = {k: legs[k] is not None and _working(legs[k], target) for k in legs}
        if all(fine[k] or not wanted[k] for k in legs):
            return
        kept = {k: legs[k] if fine[k] else None for k in legs}
        if any(leg is not None and not fine[k] for k, leg in legs.items()):
            # Off the bracket before they are canceled: their end is not a detachment.
            emit(BracketLegsPlaced(b.bracket_id, b.client, b.venue, _id(kept["tp"]),
                                   _id(kept["sl"]), target if any(kept.values()) else ZERO,
                                   now), out)
        for k, leg in legs.items():
            if leg is not None and not fine[k] and leg.is_open:
                engine._request_cancel(leg, now, "bracket", "bracket resized", out)
        exit_side = b.entry_side.opposite
        up = b.entry_side is Side.BUY
        placed: dict[str, Order | None] = dict(kept)
        for k in ("tp", "sl"):
            if not wanted[k] or fine[k]:
                continue
            if k == "tp":
                frac = b.take_profit_frac or ZERO
                trigger = inst.round_price(price * (1 + frac), Rounding.UP) if up \
                    else inst.round_price(price * (1 - frac), Rounding.DOWN)
                kind, reason = OrderType.TAKE_PROFIT, "take_profit"
            else:
                frac = b.stop_loss_frac or ZERO
                trigger = inst.round_price(price * (1 - frac), Rounding.DOWN) if up \
                    else inst.round_price(price * (1 + frac), Rounding.UP)
                kind, reason = OrderType.STOP, "stop_loss"
            if trigger <= 0:
                continue
            spec = OrderSpec(b.client, b.venue, b.symbol, exit_side, kind, target,
                             trigger_price=trigger, reduce_only=True,
                             tags=OrderTags(b.strategy, b.signal_id, exit_reason=reason))
            placed[k] = engine._place(spec, now, out, clip=True, bypass_halt=True,
                                      actor="bracket")
        emit(BracketLegsPlaced(b.bracket_id, b.client, b.venue, _id(placed["tp"]),
                               _id(placed["sl"]), target, now), out)


def _working(order: Order | None, qty: Decimal) -> bool:
    return order is not None and order.is_open and order.remaining_qty == qty


def _id(order: Order | None) -> int | None:
    return None if order is None else order.order_id


class _Resolve(Protocol):
    """The type of ``_act``'s ``resolved`` helper (for the checker)."""

    def __call__(self, order_ids: list[int], reason: NoOrderReason | None, message: str,
                 reference: Decimal | None = None, tp: Decimal | None = None,
                 sl: Decimal | None = None) -> SignalResolved: ...
