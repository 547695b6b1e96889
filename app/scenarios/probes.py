"""Probe orders for the checklist lines no strategy exercises by itself: post-only
that would cross, GTC and IOC, cancel/replace, GTD. Placed by the scenario's
``probe`` client at the end of the run, on the last market, at the smallest size
the instrument allows; each probe says what it expected and what happened."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_UP, Decimal

from app.domain.commands import CancelOrder, ReplaceOrder, SubmitOrder
from app.domain.events import (
    OrderCanceled,
    OrderRejected,
    OrderReplaceRequested,
    OrderSubmitted,
)
from app.domain.instruments import Instrument, Rounding
from app.domain.orders import (
    Order,
    OrderSpec,
    OrderStatus,
    OrderTags,
    OrderType,
    Side,
    TimeInForce,
)
from app.scenarios.harness import PROBE_CLIENT, Run
from app.scenarios.report import Check

PROBE = PROBE_CLIENT
ACTOR = "scenario:probe"


@dataclass(slots=True)
class Probe:
    run: Run
    symbol: str
    now: datetime
    seq: int = 0

    @property
    def inst(self) -> Instrument:
        return self.run.engine.instruments[(self.run.venue, self.symbol)]

    def top(self) -> tuple[Decimal, Decimal]:
        top = self.run.engine.venues[self.run.venue].book(self.symbol)
        if top.bid is None or top.ask is None:
            raise ValueError(f"no two-sided {self.symbol} book to probe")
        return top.bid, top.ask

    def qty(self) -> Decimal:
        """The least qty that meets the instrument's minimums (with room to spare)."""
        inst = self.inst
        _, ask = self.top()
        by_notional = (inst.min_notional * Decimal("1.5") / ask / inst.step_size).to_integral_value(
            rounding=ROUND_UP) * inst.step_size
        return max(inst.min_qty, by_notional)

    def submit(self, side: Side, kind: OrderType, price: Decimal | None, *,
               tif: TimeInForce = TimeInForce.GTC, post_only: bool = False,
               expire_at: datetime | None = None) -> tuple[Order | None, str]:
        """Place one probe order; the order (None: refused outright) and the refusal or
        rejection code, if any."""
        self.seq += 1
        spec = OrderSpec(PROBE, self.run.venue, self.symbol, side, kind, self.qty(),
                         price=price, time_in_force=tif, post_only=post_only,
                         expire_at=expire_at, client_order_id=f"probe-{self.symbol}-{self.seq}",
                         tags=OrderTags(strategy=None, exit_reason="probe"))
        before = len(self.run.refusals)
        events = self.run.command(SubmitOrder(spec, actor=ACTOR), self.now)
        if len(self.run.refusals) > before:
            return None, self.run.refusals[-1].code
        oid = next(e.order_id for e in events if isinstance(e, OrderSubmitted))
        code = next((e.code for e in events if type(e) is OrderRejected), "")
        return self.run.engine.state.orders[oid], code

    def away(self, side: Side, pct: Decimal) -> Decimal:
        """A price ``pct`` % behind the touch (a bid below the bid, an ask above the ask)."""
        bid, ask = self.top()
        if side is Side.BUY:
            return self.inst.round_price(bid * (1 - pct / 100), Rounding.DOWN)
        return self.inst.round_price(ask * (1 + pct / 100), Rounding.UP)


def post_only(p: Probe, line: str = "Post-only orders rejected when crossing") -> Check:
    _, ask = p.top()
    crossing, code = p.submit(Side.BUY, OrderType.LIMIT, ask, post_only=True)
    resting, _ = p.submit(Side.BUY, OrderType.LIMIT, p.away(Side.BUY, Decimal(1)),
                          post_only=True)
    crossed_ok = (crossing is None and code == "POST_ONLY_WOULD_CROSS") or (
        crossing is not None and not crossing.filled_qty
        and crossing.status in (OrderStatus.REJECTED, OrderStatus.CANCELED, OrderStatus.EXPIRED))
    rested_ok = resting is not None and resting.status is OrderStatus.ACCEPTED
    rested = resting.status.value if resting is not None else "refused"
    if resting is not None and resting.status.is_open:
        p.run.command(CancelOrder(resting.order_id, ACTOR, "probe done"), p.now)
    outcome = ("refused " + code if crossing is None
               else f"{crossing.status.value}{' ' + code if code else ''}")
    return Check.of(line, crossed_ok and rested_ok,
                    f"buy post-only at the ask {ask}: {outcome}, nothing filled; one 1 % "
                    f"below the bid rests ({rested})")


def time_in_force(p: Probe, line: str = "TIF mappings work (GTC, IOC)"
                  ) -> tuple[Check, Order | None]:
    """GTC behind the touch rests; IOC behind the touch ends unfilled; IOC through the
    touch fills and leaves nothing resting. Returns the resting GTC order."""
    gtc, _ = p.submit(Side.BUY, OrderType.LIMIT, p.away(Side.BUY, Decimal(1)))
    ioc_away, _ = p.submit(Side.BUY, OrderType.LIMIT, p.away(Side.BUY, Decimal(1)),
                           tif=TimeInForce.IOC)
    _, ask = p.top()
    through = p.inst.round_price(ask * Decimal("1.001"), Rounding.UP)
    ioc_through, _ = p.submit(Side.BUY, OrderType.LIMIT, through, tif=TimeInForce.IOC)
    gtc_ok = gtc is not None and gtc.status is OrderStatus.ACCEPTED
    away_ok = ioc_away is not None and not ioc_away.filled_qty and ioc_away.status in (
        OrderStatus.CANCELED, OrderStatus.EXPIRED)
    through_ok = ioc_through is not None and ioc_through.filled_qty > 0 \
        and ioc_through.status.is_terminal
    detail = (f"GTC 1 % below the bid: {gtc.status.value if gtc else 'refused'}; "
              f"IOC 1 % below: {ioc_away.status.value if ioc_away else 'refused'}, "
              f"filled {ioc_away.filled_qty if ioc_away else 0}; IOC through the ask: "
              f"{ioc_through.status.value if ioc_through else 'refused'}, filled "
              f"{ioc_through.filled_qty if ioc_through else 0}")
    if ioc_through is not None and ioc_through.filled_qty:  # give the probe's fill back
        back = SubmitOrder(OrderSpec(PROBE, p.run.venue, p.symbol, Side.SELL, OrderType.MARKET,
                                     ioc_through.filled_qty, reduce_only=True,
                                     tags=OrderTags(exit_reason="probe")), actor=ACTOR)
        p.run.command(back, p.now)
    return Check.of(line, gtc_ok and away_ok and through_ok, detail), gtc


def cancel_replace(p: Probe, order: Order | None,
                   line: str = "Cancel/replace maintains position intent") -> Check:
    if order is None or not order.status.is_open:
        return Check.na(line, "no resting probe order to replace")
    new_price = p.inst.round_price(order.spec.price * Decimal("0.995") if order.spec.price
                                   else Decimal(0), Rounding.DOWN)
    events = p.run.command(ReplaceOrder(order.order_id, new_price=new_price, actor=ACTOR),
                           p.now)
    asked = next((e for e in events if type(e) is OrderReplaceRequested), None)
    canceled = next((e for e in events if type(e) is OrderCanceled), None)
    if asked is None:
        return Check.of(line, False, "the replace was refused")
    successor = p.run.engine.state.orders.get(asked.new_order_id)
    old, new = order.spec, successor.spec if successor is not None else None
    same = new is not None and (old.side, old.type, old.time_in_force, old.post_only,
                                old.reduce_only, old.tags, old.qty) == (
        new.side, new.type, new.time_in_force, new.post_only, new.reduce_only, new.tags,
        new.qty)
    ok = (same and new is not None and new.price == new_price
          and order.status is OrderStatus.CANCELED and successor is not None
          and successor.status.is_open and canceled is not None)
    if successor is not None and successor.status.is_open:
        p.run.command(CancelOrder(successor.order_id, ACTOR, "probe done"), p.now)
    return Check.of(line, ok,
                    f"order {order.order_id} → {asked.new_order_id} "
                    f"({new.client_order_id if new else '?'}): price {old.price} → {new_price}; "
                    f"side, type, TIF, flags, qty and tags kept; original canceled")


def gtd_gated(p: Probe, line: str = "GTD orders remain gated") -> Check:
    profile = p.run.engine.venues[p.run.venue].capabilities.profile
    expire = p.now + timedelta(hours=1)
    order, code = p.submit(Side.BUY, OrderType.LIMIT, p.away(Side.BUY, Decimal(1)),
                           tif=TimeInForce.GTD, expire_at=expire)
    if "gtd" in profile.time_in_force:
        if order is not None and order.status.is_open:
            p.run.command(CancelOrder(order.order_id, ACTOR, "probe done"), p.now)
        return Check.na(line, f"{p.run.venue} follows {profile.name}, which offers GTD "
                              f"(the seed's venue gated it); run with --venue paper-bybit")
    gated = code == "UNSUPPORTED_BY_VENUE" and (
        order is None or order.status is OrderStatus.REJECTED)
    return Check.of(line, gated,
                    f"a GTD limit on {p.run.venue} ({profile.name}): "
                    f"{'refused' if order is None else order.status.value} {code}".rstrip())
