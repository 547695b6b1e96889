"""Recorded signals (seed 002's simulation mode): a file of a strategy's signals,
replayed beside the market data they were made on (``perpdesk serve --replay FILE
--replay-signals SIGNALS``), each submitted at its time as ``POST /api/v1/signals``
would submit it — the engine turns it into orders with the client's signal
parameters and their bracket (app/engine/signals.py).

The file is a CSV (``.gz`` or a one-file ``.zip`` too) or Parquet file whose header
names its columns (case and punctuation ignored):

* the signal's time: ``timestamp`` / ``time`` / ``signal_at`` / ``datetime`` / ...
  (ISO 8601, naive = UTC, or an epoch number in s, ms, µs or ns, as bar files);
* the signal: ``signal`` (or ``target``, ``position``, ``side``): ``1`` long, ``0``
  flat, ``-1`` short, or the words ``long``, ``flat``, ``short``;
* optional: ``client`` (default: the one given), ``venue`` and ``symbol`` (default:
  the replayed market's; a row for another market is skipped and counted),
  ``strategy`` (default ``replay``), ``strength`` (0 < s <= 1) and ``signal_id``
  (default ``<file name>:<line>``: a replay into a database that holds the same
  signals already does not act on them twice — signals are idempotent on their id).

Rows must be in time order. A row that is not one stops the replay there, with its
line (``ValueError``), as a bad bar does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from app.domain.signals import SubmitSignal
from app.marketdata.bars import (
    TIME_COLUMNS,
    StrPath,
    find_column,
    parse_time,
    table_header,
    table_rows,
)

_TIME = ("signalat", *TIME_COLUMNS, "at")
_SIGNAL = ("signal", "target", "position", "side")
_WORDS = {"long": 1, "buy": 1, "flat": 0, "close": 0, "short": -1, "sell": -1}
DEFAULT_STRATEGY = "replay"
ACTOR = "replay"


@dataclass(frozen=True, slots=True)
class RecordedSignal:
    """One row of the file: the command it submits, and where it was written."""

    line: int
    command: SubmitSignal

    @property
    def ts(self) -> datetime:
        return self.command.signal_at


@dataclass(slots=True)
class SignalCounts:
    """What became of a file's signals: a replay's status, a backtest's metrics."""

    submitted: int = 0  # taken by the engine (committed, in a replay)
    refused: int = 0  # refused by the engine (an unknown client, say)
    last_refusal: str | None = None  # "line N: why"
    outside_data: int = 0  # before the first market update or after the last
    other_markets: int = 0  # rows for another venue or symbol

    def refuse(self, recorded: RecordedSignal, why: str) -> None:
        self.refused += 1
        self.last_refusal = f"line {recorded.line}: {why}"[:300]

    def as_json(self) -> dict[str, int | str | None]:
        return asdict(self)


def check_signal_file(path: StrPath) -> None:
    """Fail (``ValueError``, ``OSError``) unless the file names a time and a signal
    column (its header alone is read): what a server start says before it runs
    anything, and what a listing of datasets asks of every file."""
    header = table_header(path)
    if not header:
        raise ValueError(f"{path}: empty file or no header row")
    _columns(path, header)


class SignalFile:
    """A file's recorded signals for one market (``venue``, ``symbol``), read lazily:
    iterate it for them in time order; rows for another market are counted in
    ``counts.other_markets``, and the reader of the signals counts the rest there."""

    def __init__(self, path: StrPath, *, venue: str, symbol: str, client: str):
        self.path = Path(path)
        self.venue, self.symbol, self.client = venue, symbol, client
        self.counts = SignalCounts()
        self._prefix = re.sub(r"[^A-Za-z0-9._-]", "-", self.path.name)[:40]

    def check(self) -> None:
        check_signal_file(self.path)

    def __iter__(self) -> Iterator[RecordedSignal]:
        columns: dict[str, str | None] | None = None
        last: datetime | None = None
        for line, row, header in table_rows(self.path):
            if columns is None:
                columns = _columns(self.path, header)
            recorded = self._row(line, row, columns)
            if last is not None and recorded.ts < last:
                raise ValueError(f"{self.path} line {line}: {recorded.ts} is before {last} "
                                 "(signals must be in time order)")
            last = recorded.ts
            command = recorded.command
            if command.venue != self.venue or command.symbol != self.symbol:
                self.counts.other_markets += 1
                continue
            yield recorded

    def _row(self, line: int, row: dict[str, str], columns: dict[str, str | None]
             ) -> RecordedSignal:
        def text(name: str) -> str:
            column = columns[name]
            return (row.get(column) or "").strip() if column is not None else ""

        where = f"{self.path} line {line}"
        try:
            at = parse_time(text("time"))
        except ValueError as exc:
            raise ValueError(f"{where}: {columns['time']}: {exc}") from None
        signal = _signal(text("signal"))
        if signal is None:
            raise ValueError(f"{where}: {columns['signal']} must be 1, 0 or -1 (or long, "
                             f"flat, short), not {text('signal')!r}")
        strength: Decimal | None = None
        if text("strength"):
            try:
                strength = Decimal(text("strength"))
            except InvalidOperation:
                strength = None
            if strength is None or not (strength.is_finite() and 0 < strength <= 1):
                raise ValueError(f"{where}: strength must lie in (0, 1], not "
                                 f"{text('strength')!r}")
        return RecordedSignal(line, SubmitSignal(
            client=text("client") or self.client, venue=text("venue") or self.venue,
            symbol=text("symbol") or self.symbol, signal=signal,
            strategy=text("strategy") or DEFAULT_STRATEGY, signal_at=at, strength=strength,
            signal_id=text("signal_id") or f"{self._prefix}:{line}", actor=ACTOR))


def _columns(path: StrPath, header: list[str]) -> dict[str, str | None]:
    """The file's column for each part of a signal (None: not in the file)."""
    time, signal = find_column(header, _TIME), find_column(header, _SIGNAL)
    if time is None or signal is None:
        raise ValueError(f"{path}: a signal file needs a time and a signal column "
                         f"(columns: {', '.join(header)})")
    return {"time": time, "signal": signal,
            **{name: find_column(header, (name.replace("_", ""),))
               for name in ("client", "venue", "symbol", "strategy", "strength",
                            "signal_id")}}


def _signal(text: str) -> int | None:
    """1, 0 or -1 from ``1``/``+1``/``1.0``/``long``... (None: not a signal)."""
    word = _WORDS.get(text.lower())
    if word is not None:
        return word
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if value.is_finite() and value in (-1, 0, 1):
        return int(value)
    return None
