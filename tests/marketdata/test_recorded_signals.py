"""Recorded signal files (app/marketdata/recorded_signals.py): what a row becomes, the
column and value variants a signal export has, and rows that are refused with their
line."""

from __future__ import annotations

import gzip
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from app.domain.signals import SubmitSignal
from app.marketdata.recorded_signals import SignalFile

T0 = datetime(2022, 1, 1, tzinfo=UTC)


def signals_of(path: Path, **kw: str) -> list[SubmitSignal]:
    file = SignalFile(path, venue=kw.get("venue", "paper-binance"),
                      symbol=kw.get("symbol", "BTC-PERP"), client=kw.get("client", "alice"))
    return [recorded.command for recorded in file]


def test_a_minimal_file_is_the_replayed_market_s_signals_for_the_given_client(
        tmp_path: Path) -> None:
    path = tmp_path / "my model.csv"
    path.write_text("timestamp,signal\n2022-01-01 00:02:00,1\n1640995500000,0\n"
                    "2022-01-01T00:07:00Z,-1\n")
    assert signals_of(path) == [
        SubmitSignal("alice", "paper-binance", "BTC-PERP", 1, "replay",
                     T0 + timedelta(minutes=2), None, "my-model.csv:2", "replay"),
        SubmitSignal("alice", "paper-binance", "BTC-PERP", 0, "replay",
                     T0 + timedelta(minutes=5), None, "my-model.csv:3", "replay"),
        SubmitSignal("alice", "paper-binance", "BTC-PERP", -1, "replay",
                     T0 + timedelta(minutes=7), None, "my-model.csv:4", "replay"),
    ]


def test_every_column_a_row_may_name(tmp_path: Path) -> None:
    path = tmp_path / "signals.csv.gz"
    path.write_bytes(gzip.compress(
        b"Signal_At,Client,Venue,Symbol,Strategy,Target,Strength,Signal_ID\n"
        b"2022-01-01 00:01:00,bob,paper-binance,BTC-PERP,trend-v2,long,0.5,s-1\n"
        b"2022-01-01 00:02:00,bob,paper-binance,ETH-PERP,trend-v2,short,,s-2\n"
        b"2022-01-01 00:03:00,bob,paper-bybit,BTC-PERP,trend-v2,short,,s-3\n"
        b"2022-01-01 00:04:00,,,,,+1.0,1,\n"))
    file = SignalFile(path, venue="paper-binance", symbol="BTC-PERP", client="alice")
    got = [recorded.command for recorded in file]
    assert got == [
        SubmitSignal("bob", "paper-binance", "BTC-PERP", 1, "trend-v2",
                     T0 + timedelta(minutes=1), Decimal("0.5"), "s-1", "replay"),
        SubmitSignal("alice", "paper-binance", "BTC-PERP", 1, "replay",
                     T0 + timedelta(minutes=4), Decimal(1), "signals.csv.gz:5", "replay"),
    ]
    assert file.counts.other_markets == 2  # another symbol, another venue: not this replay's market


@pytest.mark.parametrize(("rows", "says"), [
    ("2022-01-01 00:01:00,2\n", "line 2: signal must be 1, 0 or -1 (or long, flat, short), "
                                "not '2'"),
    ("2022-01-01 00:01:00,buy now\n", "line 2: signal must be 1, 0 or -1"),
    ("2022-01-01 00:01:00,NaN\n", "line 2: signal must be 1, 0 or -1"),
    ("2022-01-01 00:01:00,1\nlater,1\n", "line 3: timestamp: not an ISO 8601 time"),
    ("2022-01-01 00:02:00,1\n2022-01-01 00:01:00,0\n", "line 3: 2022-01-01 00:01:00+00:00 is "
                                                       "before 2022-01-01 00:02:00+00:00"),
])
def test_a_row_that_is_no_signal_is_refused_with_its_line(tmp_path: Path, rows: str,
                                                          says: str) -> None:
    path = tmp_path / "s.csv"
    path.write_text("timestamp,signal\n" + rows)
    with pytest.raises(ValueError, match=re.escape(says)):
        signals_of(path)


@pytest.mark.parametrize("strength", ["0", "1.5", "-0.2", "inf", "strong"])
def test_a_strength_outside_zero_to_one_is_refused(tmp_path: Path, strength: str) -> None:
    path = tmp_path / "s.csv"
    path.write_text(f"timestamp,signal,strength\n2022-01-01,1,{strength}\n")
    with pytest.raises(ValueError, match=rf"line 2: strength must lie in \(0, 1\], not "
                                         rf"'{strength}'"):
        signals_of(path)


def test_a_file_without_a_time_or_a_signal_column_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("when,what\n2022-01-01,1\n")
    file = SignalFile(path, venue="paper-binance", symbol="BTC-PERP", client="alice")
    with pytest.raises(ValueError, match="needs a time and a signal column"):
        file.check()
    header_only = tmp_path / "header-only.csv"
    header_only.write_text("timestamp,signal\n")
    quiet = SignalFile(header_only, venue="paper-binance", symbol="BTC-PERP", client="alice")
    quiet.check()  # a model that said nothing: no signal, no error
    assert list(quiet) == []
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty file or no header row"):
        SignalFile(empty, venue="paper-binance", symbol="BTC-PERP", client="alice").check()
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    parquet = tmp_path / "signals.parquet"
    pq.write_table(pa.table({"signal_at": pa.array([T0], pa.timestamp("ms", "UTC")),
                             "signal": pa.array([-1], pa.int8())}), parquet)
    file = SignalFile(parquet, venue="paper-binance", symbol="BTC-PERP", client="alice")
    file.check()
    assert [(r.command.signal, r.ts) for r in file] == [(-1, T0)]
