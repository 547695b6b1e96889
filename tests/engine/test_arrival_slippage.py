"""Slippage against arrival price, by hand: market orders walking a known L2 book.

The engine records the book's mid in ``OrderSubmitted.arrival_mid`` as the order goes
in; the closed trade carries the quantity-weighted arrival of its entry and exit
fills, and ``trade_record`` turns them into implementation shortfall (positive = a
cost). Every number below is worked out from the books in the test.
"""

from __future__ import annotations

from decimal import Decimal as D

from app.domain.analytics import trade_record, trade_stats
from app.domain.events import OrderFilled, OrderSubmitted, OrderTriggered, TradeClosed


def _closed(events: list) -> TradeClosed:
    closed = [e for e in events if isinstance(e, TradeClosed)]
    assert len(closed) == 1
    return closed[0]


def test_a_market_order_walking_the_book_pays_vwap_minus_arrival_mid(engine, market, place, at):
    # Entry: mid (59990 + 60010) / 2 = 60000; buying 1 takes 0.5 @ 60010 and
    # 0.5 @ 60020, VWAP 60015: 15 of slippage, 15 / 60000 = 2.5 bps.
    market.snapshot(engine, at(0), bids=[("59990", "1"), ("59980", "2")],
                    asks=[("60010", "0.5"), ("60020", "1"), ("60030", "2")])
    _, events = place(engine, at(1), side="buy", type="market", qty="1")
    submitted = next(e for e in events if isinstance(e, OrderSubmitted))
    assert submitted.arrival_mid == D("60000")
    fills = [(e.qty, e.price) for e in events if isinstance(e, OrderFilled)]
    assert fills == [(D("0.5"), D("60010")), (D("0.5"), D("60020"))]

    # Exit: mid (61000 + 61010) / 2 = 61005; selling 1 takes 0.4 @ 61000 and
    # 0.6 @ 60990, VWAP 60994: 11 of slippage, 11 / 61005 × 10,000 bps.
    market.snapshot(engine, at(2), bids=[("61000", "0.4"), ("60990", "1")],
                    asks=[("61010", "1")])
    _, events = place(engine, at(3), side="sell", type="market", qty="1", reduce_only=True)
    trade = _closed(events).trade
    assert (trade.entry_arrival, trade.exit_arrival) == (D("60000"), D("61005"))
    assert (trade.entry_price, trade.exit_price) == (D("60015"), D("60994"))

    record = trade_record(trade)
    assert record.entry_slippage == D("15")
    assert record.entry_slippage_bps == D("2.5")
    assert record.exit_slippage == D("11")
    assert record.exit_slippage_bps == D(11) / D(61005) * 10_000
    assert record.slippage == D("26")
    assert record.slippage_bps == D("2.5") + D(11) / D(61005) * 10_000
    stats = trade_stats([record])
    assert stats.slippage == D("26")
    assert stats.average_slippage_bps == record.slippage_bps


def test_a_short_trade_that_beats_its_arrival_has_negative_slippage(engine, market, place, at):
    # The entry sells into the bid (a cost); the exit, a resting buy below the mid,
    # fills better than its arrival (a gain: negative slippage).
    market.snapshot(engine, at(0), bids=[("99.0", "10")], asks=[("101.0", "10")])
    _, events = place(engine, at(1), side="sell", type="market", qty="2")
    assert next(e for e in events if isinstance(e, OrderSubmitted)).arrival_mid == D("100.0")
    # Sold 2 @ 99 against a mid of 100: 1 × 2 = 2 of cost.
    market.snapshot(engine, at(2), bids=[("89.0", "10")], asks=[("91.0", "10")])
    place(engine, at(3), side="buy", type="limit", price="89.5", qty="2")  # rests, mid 90
    record = trade_record(_closed(market.trade(engine, at(4), "89.0", "5", "sell")).trade)
    assert record.direction == "short"
    assert record.entry_slippage == D("2.0")
    assert record.entry_slippage_bps == D("100")  # 2 / (100 × 2) × 10,000
    # Bought back at 89.5 against an arrival mid of 90: 0.5 × 2 = 1 better: −1.
    assert record.exit_arrival == D("90.0")
    assert record.exit_slippage == D("-1.0")
    assert record.slippage == D("1.0")


def test_a_stop_is_measured_from_the_mid_when_it_triggered(engine, market, place, at):
    market.snapshot(engine, at(0), bids=[("59990", "5")], asks=[("60010", "5")])
    place(engine, at(1), side="buy", type="market", qty="1")
    place(engine, at(2), side="sell", type="stop", qty="1", trigger="59000",
          reduce_only=True)
    # The book drops through the stop: it triggers there (the book's mid 58925 is its
    # last price without a trade), not at the 60000 mid when it was placed, and sells
    # 0.5 @ 58900 + 0.5 @ 58800 (VWAP 58850).
    events = market.snapshot(engine, at(3), bids=[("58900", "0.5"), ("58800", "5")],
                             asks=[("58950", "5")])
    triggered = next(e for e in events if isinstance(e, OrderTriggered))
    assert triggered.arrival_mid == triggered.trigger_price == D("58925")
    trade = _closed(events).trade
    assert trade.exit_arrival == D("58925")
    assert trade.exit_price == D("58850")
    assert trade_record(trade).exit_slippage == D("75")  # (58925 − 58850) × 1
    assert trade.entry_arrival == D("60000")


def test_a_stop_triggered_by_a_trade_away_from_the_book_uses_the_books_mid(
        engine, market, place, at):
    market.snapshot(engine, at(0), bids=[("59990", "5")], asks=[("60010", "5")])
    place(engine, at(1), side="buy", type="market", qty="1")
    place(engine, at(2), side="sell", type="stop", qty="1", trigger="59000",
          reduce_only=True)
    market.snapshot(engine, at(3), bids=[("59500", "0.5"), ("59400", "5")],
                    asks=[("59600", "5")])
    # A print at 58990 crosses the stop while the book's mid is 59550: the order
    # meets that book, selling 0.5 @ 59500 + 0.5 @ 59400 (VWAP 59450), 100 under
    # the mid (against the 58990 print it would look like a 460 gain).
    events = market.trade(engine, at(4), "58990", "0.001", "sell")
    triggered = next(e for e in events if isinstance(e, OrderTriggered))
    assert triggered.trigger_price == D("58990") and triggered.arrival_mid == D("59550")
    trade = _closed(events).trade
    assert (trade.exit_arrival, trade.exit_price) == (D("59550"), D("59450"))
    record = trade_record(trade)
    assert record.exit_slippage == D("100")
    assert record.exit_slippage_bps == D(100) / D(59550) * 10_000
