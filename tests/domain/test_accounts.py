"""Accounts: the wallet identity and the point-in-time summary."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.accounts import Account, summarize
from app.domain.positions import Position

D = Decimal


def position(symbol: str, qty: str, entry: str) -> Position:
    return Position("c1", "paper", symbol, qty=D(qty), avg_entry=D(entry))


def test_each_cash_movement_keeps_wallet_equal_to_its_parts():
    a = Account("c1", "paper")
    steps = [
        (a.deposit, "10000", "10000"),
        (a.withdraw, "500", "9500"),
        (a.realize, "120", "9620"),
        (a.realize, "-20", "9600"),
        (a.charge_fee, "3.5", "9596.5"),
        (a.settle_funding, "-1.25", "9595.25"),
        (a.settle_funding, "0.5", "9595.75"),
    ]
    for op, amount, wallet in steps:
        op(D(amount))
        assert a.wallet == D(wallet)
        assert a.wallet == a.expected_wallet
    assert a.deposits == D(10000)
    assert a.withdrawals == D(500)
    assert a.realized_pnl == D(100)
    assert a.fees == D("3.5")
    assert a.funding == D("-0.75")
    assert a.key == ("c1", "paper")


_amounts = st.decimals(min_value=D("-100000"), max_value=D("100000"), places=6,
                       allow_nan=False, allow_infinity=False)
_ops = st.lists(
    st.tuples(st.sampled_from(["deposit", "withdraw", "realize", "charge_fee",
                               "settle_funding"]), _amounts.map(abs) | _amounts),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(_ops)
def test_wallet_identity_holds_for_any_sequence(ops):
    a = Account("c1", "paper")
    for name, amount in ops:
        getattr(a, name)(amount)
        assert a.wallet == a.expected_wallet
    assert a.expected_wallet == (a.deposits - a.withdrawals + a.realized_pnl - a.fees
                                 + a.funding)


def _funded(wallet_deposit: str = "8300", fee: str = "10", leverage: str = "5") -> Account:
    a = Account("c1", "paper", leverage=D(leverage))
    a.deposit(D(wallet_deposit))
    a.charge_fee(D(fee))
    return a


def test_summarize_hand_computed():
    account = _funded()  # wallet 8290, leverage 5
    positions = [
        position("BTCUSDT", "2", "100"),  # mark 110: +20, notional 220
        position("ETHUSDT", "-10", "50"),  # mark 51: −10, notional 510
        position("SOLUSDT", "4", "25"),  # no mark: valued at entry, notional 100
        position("XRPUSDT", "0", "0"),  # flat: ignored even with a mark
    ]
    marks = {"BTCUSDT": D(110), "ETHUSDT": D(51), "XRPUSDT": D("0.5")}
    s = summarize(account, positions, marks, order_margin=D(44))
    assert s.client == "c1" and s.venue == "paper"
    assert s.wallet == D(8290)
    assert s.unrealized_pnl == D(10)
    assert s.equity == D(8300)  # 8290 + 10
    assert s.margin_used == D(166)  # (220 + 510 + 100) / 5
    assert s.order_margin == D(44)
    assert s.available == D(8090)  # 8300 − 166 − 44
    assert s.margin_ratio == D("0.02")  # 166 / 8300
    assert s.fees == D(10)
    assert s.deposits == D(8300)
    assert s.withdrawals == 0
    assert s.realized_pnl == 0
    assert s.funding == 0


def test_position_without_mark_is_valued_at_entry_not_zero():
    account = _funded("1000", "0", "2")
    s = summarize(account, [position("SOLUSDT", "-4", "25")], {})
    assert s.unrealized_pnl == 0
    assert s.equity == D(1000)
    assert s.margin_used == D(50)  # 4 × 25 / 2
    assert s.available == D(950)
    assert s.margin_ratio == D("0.05")


def test_summarize_without_positions():
    s = summarize(_funded("500", "0", "10"), [], {"BTCUSDT": D(1)})
    assert s.equity == D(500)
    assert s.margin_used == 0
    assert s.available == D(500)
    assert s.margin_ratio == 0


def test_summarize_with_leverage_one_and_order_margin_default():
    account = _funded("1000", "0", "1")
    s = summarize(account, [position("BTCUSDT", "1", "100")], {"BTCUSDT": D(120)})
    assert s.unrealized_pnl == D(20)
    assert s.equity == D(1020)
    assert s.margin_used == D(120)
    assert s.order_margin == 0
    assert s.available == D(900)


def test_margin_ratio_is_infinite_when_underwater_with_positions():
    account = _funded("10", "0", "1")
    s = summarize(account, [position("BTCUSDT", "1", "100")], {"BTCUSDT": D(80)})
    assert s.unrealized_pnl == D(-20)
    assert s.equity == D(-10)
    assert s.margin_used == D(80)
    assert s.available == D(-90)
    assert s.margin_ratio == D("Infinity")


@pytest.mark.parametrize("wallet", ["0", "-5"])
def test_margin_ratio_is_zero_with_no_equity_and_nothing_used(wallet):
    a = Account("c1", "paper")
    a.realize(D(wallet))
    s = summarize(a, [], {})
    assert s.margin_ratio == 0
    assert s.equity == D(wallet)


@settings(max_examples=100, deadline=None)
@given(
    wallet=st.decimals(min_value=D(0), max_value=D(10**6), places=2),
    qtys=st.lists(st.decimals(min_value=D(-50), max_value=D(50), places=3), max_size=5),
    lev=st.sampled_from([D(1), D(2), D(5), D(20)]),
)
def test_summary_identities(wallet, qtys, lev):
    a = Account("c1", "paper", leverage=lev)
    a.deposit(wallet)
    positions = [position(f"S{i}", str(q), str(100 + i)) for i, q in enumerate(qtys)]
    marks = {f"S{i}": D(105) for i in range(0, len(qtys), 2)}  # odd symbols have no mark
    s = summarize(a, positions, marks, order_margin=D(3))
    marked = [(p, marks.get(p.symbol, p.avg_entry)) for p in positions]
    assert s.unrealized_pnl == sum((p.qty * (m - p.avg_entry) for p, m in marked), D(0))
    assert s.equity == s.wallet + s.unrealized_pnl
    assert s.margin_used == sum((abs(p.qty) * m for p, m in marked), D(0)) / lev
    assert s.available == s.equity - s.margin_used - D(3)
