"""Hypothesis properties for issue 11's margin and funding rules, over random paths:

* an account's equity never falls below minus its fees (liquidation fees included),
  whatever the mark does, as long as it moves in steps a venue's mark can take;
* funding for an instant charges exactly the positions open at that instant, whenever
  its rate arrives: no position opened after the instant ever pays for it.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain.events import FundingApplied, FundingSettled, OrderFilled, PositionLiquidated
from app.domain.instruments import LeverageBracket
from app.engine.engine import AccountSetup
from tests.engine.conftest import (
    CLIENT,
    SYMBOL,
    T0,
    VENUE,
    MarketPusher,
    build_engine,
    instrument,
    place_order,
)

D = Decimal
TIERS = (LeverageBracket(D(50_000), D(20), D("0.025")),
         LeverageBracket(D(500_000), D(10), D("0.05"), D(1250)))
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
market = MarketPusher()


@SETTINGS
@given(side=st.sampled_from(["buy", "sell"]),
       leverage=st.integers(min_value=2, max_value=20),
       steps=st.lists(st.integers(min_value=-150, max_value=150), min_size=5, max_size=60))
def test_equity_never_falls_below_minus_fees(side: str, leverage: int,
                                             steps: list[int]) -> None:
    """A leveraged position rides a random mark path (each step at most ±1.5 %); the
    venue liquidates it in time, so the account never owes more than its fees."""
    engine = build_engine(instruments=[instrument(brackets=TIERS)],
                          accounts=[AccountSetup(CLIENT, VENUE, D(leverage))],
                          deposits={(CLIENT, VENUE): D(2000)})
    price = D("60000.0")
    market.quote(engine, T0, bid=price, ask=price + D("0.1"), bid_size="50", ask_size="50")
    market.mark(engine, T0, price)
    qty = (D(1900) * leverage / price).quantize(D("0.001"), rounding="ROUND_DOWN")
    place_order(engine, T0 + timedelta(seconds=1), side=side, type="market", qty=str(qty))
    for i, bps in enumerate(steps, start=2):
        price = (price * (1 + D(bps) / 10_000)).quantize(D("0.1"))
        now = T0 + timedelta(seconds=i)
        market.quote(engine, now, bid=price, ask=price + D("0.1"), bid_size="50",
                     ask_size="50")
        market.mark(engine, now, price)
        account = engine.state.accounts[(CLIENT, VENUE)]
        summary = engine.summary(CLIENT, VENUE)
        assert summary.equity >= -account.fees, (summary, account)
        assert account.wallet == account.expected_wallet
        position = engine.state.positions[(CLIENT, VENUE, SYMBOL)]
        if position.qty:
            # still open: the account is above its maintenance margin
            assert summary.equity > summary.maintenance_margin


@SETTINGS
@given(plan=st.lists(
    st.tuples(st.integers(min_value=1, max_value=16 * 60),  # minute of the day
              st.sampled_from(["demo", "other"]),
              st.sampled_from(["buy", "sell"])),
    min_size=1, max_size=12),
       rate_delay=st.integers(min_value=0, max_value=600))
def test_funding_charges_exactly_the_positions_of_its_instant(
        plan: list[tuple[int, str, str]], rate_delay: int) -> None:
    """Orders at random minutes around 08:00; the 08:00 rate arrives ``rate_delay``
    seconds after the instant (0: on time, as a print)."""
    engine = build_engine(accounts=[AccountSetup(CLIENT, VENUE, D(5)),
                                    AccountSetup("other", VENUE, D(5))])
    eight = T0 + timedelta(hours=8)
    rate_at = eight + timedelta(seconds=rate_delay)
    at_instant: dict[str, Decimal] | None = None
    held = {"demo": D(0), "other": D(0)}
    events: list = []
    rate_sent = False
    for minute, client, side in sorted(plan):
        now = T0 + timedelta(minutes=minute)
        if not rate_sent and now >= rate_at:
            events += market.funding(engine, rate_at, "0.0001", eight)
            rate_sent = True
        if at_instant is None and now >= eight:
            at_instant = dict(held)
        market.mark(engine, now, "60000.0")
        market.quote(engine, now)
        _, placed = place_order(engine, now, client=client, side=side, type="market",
                                qty="0.01")
        events += placed
        for e in placed:
            if isinstance(e, OrderFilled):
                held[e.client] += e.qty if e.side.value == "buy" else -e.qty
    if at_instant is None:
        at_instant = dict(held)
    end = max(rate_at, eight) + timedelta(minutes=5)
    if not rate_sent:
        market.mark(engine, rate_at, "60000.0")
        events += market.funding(engine, rate_at, "0.0001", eight)
    events += engine.advance(end)
    settled = [e for e in events if isinstance(e, FundingSettled)
               and e.funding_at == eight]
    assert len(settled) == 1
    paid = {e.client: e.position_qty for e in events if isinstance(e, FundingApplied)}
    assert paid == {c: q for c, q in at_instant.items() if q}
    assert not any(isinstance(e, PositionLiquidated) for e in events)
