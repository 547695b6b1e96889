"""``perpdesk backtest --venue-kind mock``: the same strategy over the real BTC-PERP
bars, on the mock venue (app/venues/mock.py): every fill is at the mark of the
moment the order arrived (no book walked, so no spread paid), taker fees on it, and
the run is deterministic."""

from __future__ import annotations

import bisect
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from app.backtest.runner import BacktestConfig, run_backtest
from app.defaults import demo_instruments
from app.domain.market import MarkPrice
from app.marketdata.bars import read_bars
from app.venues.mock import MockVenueConfig

PARAMS = {"interval": "5m", "fast_period": 5, "slow_period": 20}
BARS = 720  # half a day of 1-minute bars


def test_a_mock_venue_backtest_fills_at_the_mark(data_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "btc.csv"
    with (data_dir / "btc-perp-2022-01_1m.csv").open() as source:
        data.write_text("".join(next(source) for _ in range(BARS + 1)))
    mock = MockVenueConfig(latency=timedelta(milliseconds=50), fill_ratio=Decimal(1))
    config = BacktestConfig("ma_crossover", data, params=PARAMS, mock=mock)
    result = run_backtest(config)
    assert len(result.trades) > 3
    assert "mock venue (50 ms, fill ratio 1)" in result.description

    inst = next(i for i in demo_instruments(("paper-binance",)) if i.symbol == "BTC-PERP")
    marks = [u for u in read_bars(data, venue="paper-binance", symbol="BTC-PERP",
                                  tick=inst.tick_size, size_step=inst.step_size)
             if isinstance(u, MarkPrice)]
    times = [m.ts for m in marks]

    def mark_at(at):  # type: ignore[no-untyped-def]
        return marks[bisect.bisect_right(times, at) - 1].price

    for trade in result.trades:
        # Sent on a bar point, filled 50 ms later at the mark of that moment.
        assert trade.opened_at - timedelta(milliseconds=50) in times
        assert trade.entry_price == mark_at(trade.opened_at)
        assert trade.exit_price == mark_at(trade.closed_at)
        assert trade.fees == trade.qty * (trade.entry_price + trade.exit_price) \
            * inst.taker_fee_rate

    again = run_backtest(config)
    assert again.trades == result.trades
    paper = run_backtest(BacktestConfig("ma_crossover", data, params=PARAMS))
    # The paper venue's buys pay the ask (a tick above the mark): not the same fills.
    assert [t.entry_price for t in paper.trades] != [t.entry_price for t in result.trades]
