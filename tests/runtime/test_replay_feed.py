"""``serve --replay`` parts (app/runtime/replay.py): the replay clock, the feed's
backpressure and end, bad input. A paced replay through the real app is
tests/api/test_serve_replay.py; the equality of a max-speed replay with a backtest is
tests/runtime/test_replay_equals_backtest.py.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.defaults import demo_instruments
from app.domain.market import MarketUpdate
from app.domain.rejections import CommandRefused, RejectCode
from app.domain.signals import SubmitSignal
from app.marketdata.bars import read_bars
from app.runtime.bus import StorageUnavailable
from app.runtime.replay import HIGH_WATER, Replay, ReplayClock, ReplaySpec, parse_speed

T0 = datetime(2022, 1, 1, tzinfo=UTC)
BTC = next(i for i in demo_instruments(("paper-binance",)) if i.symbol == "BTC-PERP")


def bar_file(path: Path, bars: int, *, bad_row_at: int | None = None) -> Path:
    rows = ["timestamp,open,high,low,close,volume"]
    for i in range(bars):
        at = (T0 + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S")
        close = "oops" if i == bad_row_at else f"{46000 + i % 7}.0"
        rows.append(f"{at},46000.0,46010.0,45990.0,{close},1000000")
    path.write_text("\n".join(rows) + "\n")
    return path


def spec(path: Path, speed: float | None = None) -> ReplaySpec:
    return ReplaySpec(path, "BTC-PERP", "paper-binance", speed)


class Wall:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_speed_text() -> None:
    assert parse_speed("60") == 60.0
    assert parse_speed("max") is None and parse_speed("0") is None and parse_speed(0) is None
    for bad in ("-1", "fast", "nan", "1e9"):
        with pytest.raises(ValueError):
            parse_speed(bad)


def test_at_max_speed_the_clock_is_the_data_processed() -> None:
    clock = ReplayClock(T0, None)
    clock.start()
    assert clock() == T0
    clock.advance_to(T0 + timedelta(seconds=15))
    clock.advance_to(T0 + timedelta(seconds=5))  # never back
    assert clock() == T0 + timedelta(seconds=15)


def test_a_paced_clock_runs_speed_times_the_wall_and_stops_with_the_data() -> None:
    wall = Wall()
    clock = ReplayClock(T0, 60.0, wall)
    assert clock() == T0  # not started: the file's first timestamp
    clock.start()
    wall.now += timedelta(seconds=2)
    assert clock() == T0 + timedelta(minutes=2)
    clock.advance_to(T0 + timedelta(minutes=5))  # the data got ahead of the pace
    assert clock() == T0 + timedelta(minutes=5)
    clock.stop()
    wall.now += timedelta(hours=1)
    assert clock() == T0 + timedelta(minutes=5)


def test_a_paced_clock_waits_for_late_data_then_paces_on_from_it() -> None:
    """A slow start or a busy bus must not run time ahead of the data (its marks would
    look stale, its orders expire early): the clock holds at the next update's time."""
    wall = Wall()
    clock = ReplayClock(T0, 60.0, wall)
    clock.start()
    clock.hold_at(T0 + timedelta(minutes=1))
    wall.now += timedelta(seconds=10)  # 10 minutes of pace, but the data is 1 minute in
    assert clock() == T0 + timedelta(minutes=1)
    clock.hold_at(T0 + timedelta(minutes=3))  # fed: the next update is further on
    wall.now += timedelta(seconds=1)
    assert clock() == T0 + timedelta(minutes=2)  # paced on from where it waited
    wall.now += timedelta(seconds=5)
    assert clock() == T0 + timedelta(minutes=3)
    clock.stop()
    wall.now += timedelta(hours=1)
    assert clock() == T0 + timedelta(minutes=3)


def test_a_max_speed_replay_never_runs_more_than_high_water_ahead(tmp_path: Path) -> None:
    path = bar_file(tmp_path / "bars.csv", 1200)  # 14,400 updates
    expected = list(read_bars(path, venue="paper-binance", symbol="BTC-PERP",
                              tick=BTC.tick_size, size_step=BTC.step_size))
    replay = Replay(spec(path), BTC)
    assert replay.first_at == T0 and replay.clock() == T0
    got: list[MarketUpdate] = []
    queue: asyncio.Queue[MarketUpdate] = asyncio.Queue()
    deepest = 0
    drained_after: list[int] = []

    async def consumer() -> None:  # a slow bus: a few updates per turn of the loop
        while True:
            for _ in range(min(queue.qsize(), 50)):
                got.append(queue.get_nowait())
            await asyncio.sleep(0)

    def sink(update: MarketUpdate) -> None:
        nonlocal deepest
        queue.put_nowait(update)
        deepest = max(deepest, queue.qsize())

    async def drained() -> None:
        while queue.qsize():
            await asyncio.sleep(0)
        drained_after.append(len(got))

    async def run() -> None:
        task = asyncio.create_task(consumer())
        replay.start(sink, queue.qsize, drained)
        await replay.wait()
        task.cancel()

    asyncio.run(run())
    assert got == expected
    assert deepest <= HIGH_WATER
    assert drained_after == [len(expected)]  # "ended" only once the bus had it all
    assert replay.state == "ended" and replay.updates == len(expected)
    assert replay.last_at == expected[-1].ts
    assert replay.status()["speed"] == "max"


def test_recorded_signals_go_in_after_the_market_at_their_time(tmp_path: Path) -> None:
    """Each signal after the updates at or before its time, before the first later one;
    one before the data or after it has no market to act on (counted, not sent). A
    refusal is counted and the replay goes on; a log that refuses writes is waited out."""
    path = bar_file(tmp_path / "bars.csv", 4)  # 00:00 to 00:03:45
    signals = tmp_path / "signals.csv"
    signals.write_text("timestamp,signal,client\n"
                       "2021-12-31 23:59:00,1,alice\n"  # before the data
                       "2022-01-01 00:01:00,1,alice\n"  # at a point's time: after it
                       "2022-01-01 00:01:20,0,nobody\n"  # between points: refused
                       "2022-01-01 00:02:00,-1,alice\n"  # the log refuses it once
                       "2022-01-01 00:09:00,0,alice\n")  # after the data
    replay = Replay(ReplaySpec(path, "BTC-PERP", "paper-binance", None, signals=signals,
                               client="alice"), BTC)
    assert replay.description.endswith(", signals from signals.csv")
    seen: list[object] = []
    storage_down = [True]

    async def submit(command: SubmitSignal) -> None:
        if command.client == "nobody":
            raise CommandRefused(RejectCode.UNKNOWN_ACCOUNT, "no account nobody")
        if command.signal == -1 and storage_down:
            storage_down.pop()
            raise StorageUnavailable("the log refuses writes")
        seen.append(command)

    async def run() -> None:
        replay.start(seen.append, lambda: 0, None, submit)
        await replay.wait()

    asyncio.run(run())
    assert replay.state == "ended"
    sent = [(i, x) for i, x in enumerate(seen) if isinstance(x, SubmitSignal)]
    assert [(x.signal, x.signal_id) for _, x in sent] == [(1, "signals.csv:3"),
                                                          (-1, "signals.csv:5")]
    for index, command in sent:
        before, after = seen[index - 1], seen[index + 1]
        assert not isinstance(before, SubmitSignal) and not isinstance(after, SubmitSignal)
        assert before.ts == command.signal_at < after.ts
    assert replay.status()["signals"] == {
        "file": "signals.csv", "submitted": 2, "refused": 1,
        "last_refusal": "line 4: no account nobody", "other_markets": 0, "outside_data": 2}


def test_a_replay_with_signals_needs_a_way_to_submit_them(tmp_path: Path) -> None:
    signals = tmp_path / "signals.csv"
    signals.write_text("timestamp,signal\n2022-01-01 00:01:00,1\n")
    replay = Replay(ReplaySpec(bar_file(tmp_path / "bars.csv", 2), "BTC-PERP", "paper-binance",
                               None, signals=signals, client="alice"), BTC)
    with pytest.raises(ValueError, match="needs a way to submit them"):
        replay.start(lambda update: None, lambda: 0)
    signals.write_text("when,what\n2022-01-01,1\n")
    with pytest.raises(ValueError, match="needs a time and a signal column"):
        Replay(ReplaySpec(bar_file(tmp_path / "bars.csv", 2), "BTC-PERP", "paper-binance",
                          None, signals=signals, client="alice"), BTC)


def test_a_bad_row_halfway_stops_the_replay_there(tmp_path: Path) -> None:
    path = bar_file(tmp_path / "bars.csv", 10, bad_row_at=6)
    replay = Replay(spec(path), BTC)
    got: list[MarketUpdate] = []

    async def run() -> None:
        replay.start(got.append, lambda: 0)
        await replay.wait()

    asyncio.run(run())
    assert replay.state == "failed"
    assert "close is not a number" in (replay.error or "")
    assert len(got) == 6 * 12  # the six good bars, twelve updates each


def test_a_file_that_is_not_bars_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_text("name,value\na,1\n")
    with pytest.raises(ValueError, match="no timestamp"):
        Replay(spec(path), BTC)
    with pytest.raises(OSError):
        Replay(spec(tmp_path / "missing.csv"), BTC)


@pytest.mark.parametrize(("args", "says"), [
    (["--replay", "{missing}"], "No such file"),
    (["--replay", "{bars}", "--replay-symbol", "DOGE-PERP"], "DOGE-PERP on paper-binance is "
                                                               "not configured"),
    (["--replay", "{bars}", "--replay-venue", "nowhere"], "on nowhere is not configured"),
    (["--replay", "{bars}", "--speed", "fast"], "must be a number or 'max'"),
    (["--replay", "{bars}", "--replay-interval", "7x"], "not a bar interval"),
    (["--replay-symbol", "BTC-PERP"], "need --replay FILE"),
    (["--speed", "max"], "need --replay FILE"),
    (["--replay", "{bars}", "--demo-speed", "60"], "do not go together"),
    (["--replay-signals", "{bars}"], "need --replay FILE"),
    (["--replay", "{bars}", "--replay-signals", "{bars}"], "needs a time and a signal column"),
    (["--replay", "{bars}", "--replay-signals", "{missing}"], "No such file"),
])
def test_serve_refuses_a_bad_replay_before_starting(
        args: list[str], says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main

    for name in ("CONFIG", "DATABASE_URL", "DEMO_SPEED", "REPLAY", "REPLAY_SPEED",
                 "REPLAY_SYMBOL", "REPLAY_VENUE", "REPLAY_FUNDING", "REPLAY_INTERVAL",
                 "REPLAY_SIGNALS"):
        # serve sets them: recorded here (set, then removed) so the teardown undoes it
        monkeypatch.setenv(f"PERPDESK_{name}", "")
        monkeypatch.delenv(f"PERPDESK_{name}")
    bars = bar_file(tmp_path / "bars.csv", 3)
    argv = [a.format(bars=bars, missing=tmp_path / "missing.csv") for a in args]
    assert main(["serve", "--database-url", f"sqlite:///{tmp_path / 'x.db'}", *argv]) == 2
    assert says in capsys.readouterr().err
