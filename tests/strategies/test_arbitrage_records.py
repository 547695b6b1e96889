"""An arbitrage trade is recorded only along its state machine (seed 001): the engine
refuses a record that skips or reverses a step, or belongs to another strategy."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import pytest

from app.domain.arbitrage import TRANSITIONS, ArbBook, ArbStatus, ArbTrade, RecordArbTrade
from app.domain.rejections import CommandRefused, RejectCode
from tests.strategies.arb_support import T0, A, B, TwoVenues

TRADE = ArbTrade("BTC-1", "funding-arb", "arb", "BTC-PERP", A, B, B, ArbStatus.PENDING, T0,
                 D("0.1"), D("1"), D("0.0009"), D("10"), 80)


def refused(m: TwoVenues, trade: ArbTrade) -> RejectCode:
    with pytest.raises(CommandRefused) as info:
        m.engine.handle(RecordArbTrade(trade, "test"), m.now)
    return info.value.rejection.code


def test_a_trade_starts_pending_and_moves_only_as_the_table_says() -> None:
    m = TwoVenues.make(params={"enabled_entries": False})
    assert refused(m, replace(TRADE, status=ArbStatus.ACTIVE)) is RejectCode.INVALID_TRANSITION
    m.engine.handle(RecordArbTrade(TRADE, "opened"), m.now)
    assert refused(m, replace(TRADE, status=ArbStatus.CLOSED)) is RejectCode.INVALID_TRANSITION
    m.engine.handle(RecordArbTrade(replace(TRADE, status=ArbStatus.CANCELLED), "gone"), m.now)
    assert refused(m, TRADE) is RejectCode.INVALID_TRANSITION, "closed is closed"


def test_another_strategys_trade_is_refused() -> None:
    m = TwoVenues.make(params={"enabled_entries": False})
    assert refused(m, replace(TRADE, strategy_id="ghost")) is RejectCode.UNKNOWN_STRATEGY
    assert refused(m, replace(TRADE, client="demo")) is RejectCode.UNKNOWN_STRATEGY


def test_the_transition_table_ends_in_terminal_states_only() -> None:
    for status, onward in TRANSITIONS.items():
        assert status.terminal == (not onward)
    with pytest.raises(ValueError):
        TRADE.moved(ArbStatus.CLOSED)


def test_the_book_counts_a_closed_trade_once_and_cancelled_entries_not_at_all() -> None:
    book = ArbBook()
    book.apply_trade(TRADE)
    active = replace(TRADE, status=ArbStatus.ACTIVE, position_size_usd=D("6000"))
    book.apply_trade(active)
    assert book.allocated == D("6000")
    closed = replace(active, status=ArbStatus.CLOSED, actual_profit=D("4.5"))
    book.apply_trade(closed)
    book.apply_trade(closed)
    assert (book.trades, book.wins, book.cumulative_pnl, book.allocated) == (1, 1, D("4.5"), 0)
    book.apply_trade(replace(TRADE, trade_id="BTC-2", status=ArbStatus.CANCELLED))
    assert book.trades == 1 and len(book.closed) == 2
