"""Netting positions: average cost, realized P&L, fees, funding, flips, closed trades.

Every number below is computed by hand in the comment next to it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from app.domain.orders import Side
from app.domain.positions import ClosedTrade, FillOutcome, Position

D = Decimal
BUY, SELL = Side.BUY, Side.SELL
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def pos() -> Position:
    return Position("c1", "paper", "BTCUSDT")


def fill(p: Position, side: Side, qty: str, price: str, fee: str, minute: int,
         reason: str = "signal") -> FillOutcome:
    return p.apply_fill(side, D(qty), D(price), D(fee), at(minute), reason)


# ---- long round trip ---------------------------------------------------------------------


def test_open_long():
    p = pos()
    out = fill(p, BUY, "3", "100", "0.12", 0)
    assert out == FillOutcome(D(0), None)
    assert p.qty == D(3)
    assert p.avg_entry == D(100)
    assert p.direction == "long"
    assert not p.is_flat
    assert p.fees == D("0.12")
    assert p.opened_at == at(0)
    assert p.trade_sign == 1


def test_increase_moves_average_entry():
    p = pos()
    fill(p, BUY, "3", "100", "0.12", 0)
    out = fill(p, BUY, "1", "104", "0.04", 10)
    # (3 × 100 + 1 × 104) / 4 = 101
    assert out.realized_pnl == 0 and out.closed_trade is None
    assert p.qty == D(4)
    assert p.avg_entry == D(101)
    assert p.fees == D("0.16")
    assert p.opened_at == at(0)  # an increase does not restart the trade


def test_partial_reduce_realizes_exit_minus_avg_times_qty():
    p = pos()
    fill(p, BUY, "3", "100", "0.12", 0)
    fill(p, BUY, "1", "104", "0.04", 10)
    out = fill(p, SELL, "2", "105", "0.04", 20)
    # (105 − 101) × 2 = 8
    assert out.realized_pnl == D(8)
    assert out.closed_trade is None
    assert p.qty == D(2)
    assert p.avg_entry == D(101)  # a reduction never moves the average entry
    assert p.realized_pnl == D(8)
    assert p.fees == D("0.20")


def test_full_close_long_produces_closed_trade():
    p = pos()
    fill(p, BUY, "3", "100", "0.12", 0)
    fill(p, BUY, "1", "104", "0.04", 10)
    p.apply_funding(D("-1.2"))  # longs pay
    fill(p, SELL, "2", "105", "0.04", 20)
    p.apply_funding(D("-0.4"))
    out = fill(p, SELL, "2", "103", "0.10", 150, reason="take_profit")

    # (103 − 101) × 2 = 4
    assert out.realized_pnl == D(4)
    trade = out.closed_trade
    assert isinstance(trade, ClosedTrade)
    assert trade.trade_id == "c1:paper:BTCUSDT:1"
    assert (trade.client, trade.venue, trade.symbol) == ("c1", "paper", "BTCUSDT")
    assert trade.direction == "long"
    assert trade.qty == D(4)
    assert trade.entry_price == D(101)  # (300 + 104) / 4
    assert trade.exit_price == D(104)  # (2 × 105 + 2 × 103) / 4 = 416 / 4
    assert trade.realized_pnl == D(12)  # 8 + 4
    assert trade.fees == D("0.30")  # 0.12 + 0.04 + 0.04 + 0.10
    assert trade.funding == D("-1.6")
    assert trade.net_pnl == D("10.1")  # 12 − 0.30 − 1.6
    assert trade.pnl_pct == D("2.5")  # 10.1 / 404 × 100
    assert trade.opened_at == at(0)
    assert trade.closed_at == at(150)
    assert trade.duration_seconds == D(9000)
    assert trade.exit_reason == "take_profit"
    assert trade.is_win

    # the position is flat and its per-trade accumulators are reset
    assert p.is_flat and p.direction == "flat"
    assert p.qty == 0 and p.avg_entry == 0
    assert p.realized_pnl == 0 and p.fees == 0 and p.funding == 0
    assert p.opened_at is None
    assert p.trades_closed == 1
    assert p.unrealized_pnl(D(500)) == 0


def test_losing_long_and_trade_ids_increment():
    p = pos()
    fill(p, BUY, "1", "100", "0.05", 0)
    first = fill(p, SELL, "1", "90", "0.05", 5).closed_trade
    assert first is not None
    assert first.trade_id.endswith(":1")
    assert first.realized_pnl == D(-10)
    assert first.net_pnl == D("-10.10")
    assert first.pnl_pct == D("-10.1")  # −10.10 / 100 × 100
    assert not first.is_win

    fill(p, BUY, "2", "50", "0", 10)
    second = fill(p, SELL, "2", "55", "0", 11).closed_trade
    assert second is not None
    assert second.trade_id == "c1:paper:BTCUSDT:2"
    assert second.opened_at == at(10)  # not the first trade's open time
    assert second.entry_price == D(50)
    assert second.realized_pnl == D(10)
    assert second.fees == 0  # fees of the first trade do not leak into the second


# ---- shorts -------------------------------------------------------------------------------


def test_short_open_increase_reduce_close():
    p = pos()
    fill(p, SELL, "4", "50", "0.10", 0)
    assert p.qty == D(-4) and p.direction == "short" and p.avg_entry == D(50)
    fill(p, SELL, "4", "52", "0.10", 1)
    assert p.qty == D(-8) and p.avg_entry == D(51)  # (200 + 208) / 8
    out = fill(p, BUY, "3", "48", "0.06", 2)
    assert out.realized_pnl == D(9)  # (51 − 48) × 3 for a short
    assert out.closed_trade is None
    assert p.qty == D(-5) and p.avg_entry == D(51)
    p.apply_funding(D("0.75"))  # shorts receive on a positive rate
    out = fill(p, BUY, "5", "53", "0.14", 60, reason="stop")
    assert out.realized_pnl == D(-10)  # (51 − 53) × 5
    trade = out.closed_trade
    assert trade is not None
    assert trade.direction == "short"
    assert trade.qty == D(8)
    assert trade.entry_price == D(51)
    assert trade.exit_price == D("51.125")  # (144 + 265) / 8 = 409 / 8
    assert trade.realized_pnl == D(-1)
    assert trade.fees == D("0.40")
    assert trade.funding == D("0.75")
    assert trade.net_pnl == D("-0.65")  # −1 − 0.40 + 0.75
    assert trade.pnl_pct == D("-0.65") / D(408) * 100
    assert trade.exit_reason == "stop"
    assert trade.duration_seconds == D(3600)
    assert p.is_flat


# ---- flips --------------------------------------------------------------------------------


def test_flip_long_to_short_in_one_fill():
    p = pos()
    fill(p, BUY, "2", "100", "0.08", 0)
    p.apply_funding(D("-0.5"))
    out = fill(p, SELL, "5", "110", "0.5", 30, reason="reverse")

    # closes 2 (fee 0.5 × 2/5 = 0.2), opens 3 short (fee 0.3)
    assert out.realized_pnl == D(20)  # (110 − 100) × 2
    trade = out.closed_trade
    assert trade is not None
    assert trade.direction == "long"
    assert trade.qty == D(2)
    assert trade.entry_price == D(100)
    assert trade.exit_price == D(110)
    assert trade.realized_pnl == D(20)
    assert trade.fees == D("0.28")  # 0.08 + 0.2
    assert trade.funding == D("-0.5")
    assert trade.net_pnl == D("19.22")  # 20 − 0.28 − 0.5
    assert trade.pnl_pct == D("9.61")  # 19.22 / 200 × 100
    assert trade.closed_at == at(30)
    assert trade.exit_reason == "reverse"

    # the new short trade
    assert p.qty == D(-3)
    assert p.direction == "short"
    assert p.avg_entry == D(110)
    assert p.fees == D("0.3")
    assert p.funding == 0
    assert p.realized_pnl == 0
    assert p.opened_at == at(30)
    assert p.trade_sign == -1

    # ... which closes on its own terms
    p.apply_funding(D("0.3"))
    out = fill(p, BUY, "3", "105", "0.15", 90)
    assert out.realized_pnl == D(15)  # (110 − 105) × 3
    trade2 = out.closed_trade
    assert trade2 is not None
    assert trade2.trade_id == "c1:paper:BTCUSDT:2"
    assert trade2.direction == "short"
    assert trade2.qty == D(3)
    assert trade2.entry_price == D(110)
    assert trade2.exit_price == D(105)
    assert trade2.fees == D("0.45")  # 0.3 + 0.15
    assert trade2.funding == D("0.3")
    assert trade2.net_pnl == D("14.85")  # 15 − 0.45 + 0.3
    assert trade2.pnl_pct == D("4.5")  # 14.85 / 330 × 100
    assert trade2.opened_at == at(30)
    assert trade2.duration_seconds == D(3600)


def test_flip_short_to_long_in_one_fill():
    p = pos()
    fill(p, SELL, "4", "50", "0.1", 0)
    out = fill(p, BUY, "6", "45", "0.6", 10)
    # closes 4 (fee 0.6 × 4/6 = 0.4), opens 2 long (fee 0.2)
    assert out.realized_pnl == D(20)  # (50 − 45) × 4
    trade = out.closed_trade
    assert trade is not None
    assert trade.direction == "short"
    assert trade.qty == D(4)
    assert trade.entry_price == D(50)
    assert trade.exit_price == D(45)
    assert trade.fees == D("0.5")
    assert trade.net_pnl == D("19.5")
    assert trade.pnl_pct == D("9.75")  # 19.5 / 200 × 100
    assert trade.opened_at == at(0) and trade.closed_at == at(10)

    assert p.qty == D(2)
    assert p.direction == "long"
    assert p.avg_entry == D(45)
    assert p.fees == D("0.2")
    assert p.opened_at == at(10)
    assert p.entry_qty == D(2) and p.entry_notional == D(90)
    assert p.exit_qty == 0 and p.exit_notional == 0


def test_flip_fee_split_is_exact_even_when_not_a_round_fraction():
    p = pos()
    fill(p, BUY, "1", "100", "0", 0)
    out = fill(p, SELL, "3", "100", "0.1", 1)
    trade = out.closed_trade
    assert trade is not None
    assert trade.fees == D("0.1") / 3
    # nothing is lost or invented by the split
    assert trade.fees + p.fees == D("0.1")


def test_exact_close_takes_the_whole_fee():
    p = pos()
    fill(p, SELL, "2", "10", "0", 0)
    trade = fill(p, BUY, "2", "10", "0.07", 1).closed_trade
    assert trade is not None
    assert trade.fees == D("0.07")
    assert trade.net_pnl == D("-0.07")
    assert p.fees == 0


# ---- funding & unrealized --------------------------------------------------------------------


def test_funding_accrues_to_the_open_trade():
    p = pos()
    fill(p, BUY, "1", "100", "0", 0)
    p.apply_funding(D("-0.01"))
    p.apply_funding(D("-0.02"))
    p.apply_funding(D("0.005"))
    assert p.funding == D("-0.025")
    trade = fill(p, SELL, "1", "100", "0", 480).closed_trade
    assert trade is not None
    assert trade.funding == D("-0.025")
    assert trade.net_pnl == D("-0.025")
    assert p.funding == 0


@pytest.mark.parametrize(
    ("side", "qty", "entry", "mark", "expected"),
    [
        (BUY, "2", "100", "103", "6"),  # 2 × (103 − 100)
        (BUY, "2", "100", "97.5", "-5"),
        (SELL, "3", "110", "112", "-6"),  # −3 × (112 − 110)
        (SELL, "3", "110", "100", "30"),
        (BUY, "0.5", "20000", "20000", "0"),
    ],
)
def test_unrealized_pnl_at_mark(side, qty, entry, mark, expected):
    p = pos()
    fill(p, side, qty, entry, "0", 0)
    assert p.unrealized_pnl(D(mark)) == D(expected)
    assert p.notional(D(mark)) == D(qty) * D(mark)


def test_unrealized_pnl_flat_is_zero():
    assert pos().unrealized_pnl(D(123)) == 0


# ---- would_increase ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("held", "side", "qty", "expected"),
    [
        ("0", BUY, "1", True),
        ("0", SELL, "1", True),
        ("2", BUY, "1", True),  # grows a long
        ("2", SELL, "1", False),  # reduces
        ("2", SELL, "2", False),  # closes exactly
        ("2", SELL, "2.0001", True),  # flips
        ("2", SELL, "3", True),
        ("-2", SELL, "1", True),  # grows a short
        ("-2", BUY, "1", False),
        ("-2", BUY, "2", False),
        ("-2", BUY, "3", True),
    ],
)
def test_would_increase_truth_table(held, side, qty, expected):
    p = pos()
    if D(held):
        fill(p, BUY if D(held) > 0 else SELL, str(abs(D(held))), "100", "0", 0)
    assert p.qty == D(held)
    assert p.would_increase(side, D(qty)) is expected


# ---- arrival prices (slippage against arrival) ---------------------------------------------


def test_arrival_prices_are_weighted_by_quantity_and_split_at_a_flip():
    from app.domain.analytics import trade_record

    p = pos()
    # Entry: 1 @ 101 (arrival 100) + 3 @ 103 (arrival 102): arrival (100 + 306) / 4.
    p.apply_fill(BUY, D(1), D(101), D(0), at(0), "signal", D(100))
    p.apply_fill(BUY, D(3), D(103), D(0), at(1), "signal", D(102))
    # One sell of 6 @ 99 (arrival 100): 4 close the long, 2 open a short.
    out = p.apply_fill(SELL, D(6), D(99), D(0), at(2), "signal", D(100))
    long = out.closed_trade
    assert long is not None
    assert long.entry_arrival == D("101.5") and long.exit_arrival == D(100)
    record = trade_record(long)
    # entry VWAP 102.5: (102.5 − 101.5) × 4 = 4 paid; exit (100 − 99) × 4 = 4 paid.
    assert (record.entry_slippage, record.exit_slippage, record.slippage) == (D(4), D(4), D(8))
    # The short's entry is the other 2 of that fill: arrival 100, sold at 99: 2 paid.
    out = p.apply_fill(BUY, D(2), D(98), D(0), at(3), "signal", None)  # arrival unknown
    short = out.closed_trade
    assert short is not None and short.direction == "short"
    assert short.entry_arrival == D(100) and short.exit_arrival is None
    record = trade_record(short)
    assert record.entry_slippage == D(2) and record.entry_slippage_bps == D(100)
    assert record.exit_slippage is None and record.slippage is None
    assert record.slippage_bps is None
    # A new trade starts with fresh accumulators: its arrivals are known again.
    p.apply_fill(BUY, D(1), D(50), D(0), at(4), "signal", D(50))
    out = p.apply_fill(SELL, D(1), D(50), D(0), at(5), "signal", D(50))
    assert out.closed_trade is not None
    assert trade_record(out.closed_trade).slippage == D(0)


def test_fills_without_an_arrival_leave_the_trades_slippage_unknown():
    p = pos()
    fill(p, BUY, "1", "100", "0", 0)
    trade = fill(p, SELL, "1", "101", "0", 1).closed_trade
    assert trade is not None and trade.entry_arrival is None and trade.exit_arrival is None
