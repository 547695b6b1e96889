"""Binance USD-M futures diff depth: a REST snapshot plus ``depthUpdate`` events
assembled into ``BookSnapshot`` / ``BookDelta`` / ``BookInvalidated``.

Binance's rules ("How to manage a local order book correctly", USD-M futures):

1. buffer the stream's events, then take a REST snapshot (``lastUpdateId``);
2. drop every event whose final update id ``u`` is < ``lastUpdateId``;
3. the first event applied must straddle the snapshot:
   ``U <= lastUpdateId <= u`` (``U``: the event's first update id);
4. from then on each event's ``pu`` (previous final update id) must equal the
   ``u`` of the event before it; otherwise updates were lost: start again
   from step 1 with a new snapshot.

Here a lost update emits ``BookInvalidated`` once (the paper venue then refuses
market orders on that book) and no delta is emitted until a new snapshot has
been taken and a buffered event straddles it. Events already applied (``u`` not
beyond the last applied ``u``) are dropped as stale, as are snapshots older
than the book we already have. Sizes are absolute; 0 deletes the level.

Timestamps: an event is stamped with its transaction time ``T`` (when the
matching engine changed the book), else its event time ``E``; a snapshot the
same way from the REST answer (USD-M returns both), else from the time the
caller gives. Buffered events can carry times a little earlier than the
snapshot they follow, so output stamps never go backwards (each is at least the
previous one): replays stay ordered for ``merge_by_time``.
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from app.domain.market import BookDelta, BookInvalidated, BookSnapshot
from app.marketdata.sequencing import (
    SequenceStats,
    from_millis,
    parse_levels,
    snapshot_of,
)

BookUpdate = BookSnapshot | BookDelta | BookInvalidated
# Events kept while waiting for a snapshot. Binance asks for buffering while the REST
# call runs; beyond this many, the oldest go (a straddling event is then usually
# lost too, which the next snapshot's straddle check notices).
DEFAULT_BUFFER = 10_000


def _event_time(message: Mapping[str, Any]) -> datetime | None:
    stamp = message.get("T", message.get("E"))
    return None if stamp is None else from_millis(stamp)


class BinanceDepthAssembler:
    """One symbol's diff-depth stream, checked and turned into book updates.

    Feed it REST snapshots (``on_snapshot``) and ``depthUpdate`` events
    (``on_event``) in the order they were received; each call returns the
    updates that became certain (possibly none). ``valid`` says whether the
    book the emitted updates describe is the exchange's right now.
    """

    def __init__(self, venue: str, symbol: str, *, buffer: int = DEFAULT_BUFFER):
        self.venue = venue
        self.symbol = symbol
        self.stats = SequenceStats()
        self._buffer: deque[Mapping[str, Any]] = deque(maxlen=buffer)
        # lastUpdateId of the snapshot in force, until its straddling event is applied.
        self._snapshot_id: int | None = None
        # u of the last event applied; None while no event has been applied since
        # the snapshot (or while there is no valid book at all).
        self._last_u: int | None = None
        self._valid = False
        self._last_ts: datetime | None = None

    @property
    def valid(self) -> bool:
        """True while a snapshot is in force and no update has been lost since."""
        return self._valid

    # ---- input ------------------------------------------------------------------------

    def on_snapshot(self, snapshot: Mapping[str, Any], ts: datetime | None = None
                    ) -> list[BookUpdate]:
        """A REST ``/fapi/v1/depth`` answer: ``lastUpdateId``, ``bids``, ``asks`` (and
        ``E``/``T``; ``ts`` is used when the answer carries no time)."""
        last_id = int(snapshot["lastUpdateId"])
        newest = self._last_u if self._last_u is not None else self._snapshot_id
        if self._valid and newest is not None and last_id <= newest:
            self.stats.stale += 1  # older than (or the same as) the book we have
            return []
        stamp = _event_time(snapshot) or ts
        if stamp is None:
            raise ValueError("a depth snapshot needs a time: E/T in it, or ts")
        out: list[BookUpdate] = [snapshot_of(
            self.venue, self.symbol, parse_levels(snapshot["bids"]),
            parse_levels(snapshot["asks"]), self._stamp(stamp))]
        self.stats.snapshots += 1
        self._snapshot_id, self._last_u, self._valid = last_id, None, True
        buffered = list(self._buffer)
        self._buffer.clear()
        for event in buffered:
            out.extend(self.on_event(event))
        return out

    def on_event(self, event: Mapping[str, Any]) -> list[BookUpdate]:
        """A ``depthUpdate`` event: ``U``, ``u``, ``pu``, ``b``, ``a``, ``E``/``T``."""
        if not self._valid:
            self._buffer.append(event)  # kept for the next snapshot to start from
            self.stats.waiting += 1
            return []
        first, last, previous = int(event["U"]), int(event["u"]), int(event["pu"])
        if self._last_u is None:  # the first event after the snapshot
            snapshot_id = self._snapshot_id
            assert snapshot_id is not None
            if last < snapshot_id:
                self.stats.stale += 1  # already in the snapshot
                return []
            if first > snapshot_id:
                return self._gap(event, f"first event U={first} is after the snapshot's "
                                        f"lastUpdateId={snapshot_id}")
        elif last <= self._last_u:
            self.stats.stale += 1  # applied already (a duplicate or a late copy)
            return []
        elif previous != self._last_u:
            return self._gap(event, f"gap: pu={previous} but the last applied u="
                                    f"{self._last_u}")
        self._last_u = last
        self.stats.deltas += 1
        stamp = _event_time(event)
        if stamp is None:
            raise ValueError(f"depth event u={last} has no E or T time")
        return [BookDelta(self.venue, self.symbol, parse_levels(event["b"]),
                          parse_levels(event["a"]), self._stamp(stamp))]

    # ---- internals --------------------------------------------------------------------

    def _gap(self, event: Mapping[str, Any], reason: str) -> list[BookUpdate]:
        self.stats.gaps += 1
        self._valid, self._snapshot_id, self._last_u = False, None, None
        self._buffer.clear()
        self._buffer.append(event)  # it may straddle the next snapshot
        stamp = _event_time(event) or self._last_ts
        assert stamp is not None
        return [BookInvalidated(self.venue, self.symbol, reason, self._stamp(stamp))]

    def _stamp(self, ts: datetime) -> datetime:
        if self._last_ts is not None and ts < self._last_ts:
            ts = self._last_ts
        self._last_ts = ts
        return ts


def _unwrap(message: Mapping[str, Any]) -> Mapping[str, Any]:
    # Combined streams wrap each event: {"stream": "btcusdt@depth", "data": {...}}.
    data = message.get("data")
    return data if isinstance(data, Mapping) else message


def assemble_binance_depth(messages: Iterable[Mapping[str, Any]], *, venue: str, symbol: str
                           ) -> Iterator[BookUpdate]:
    """Snapshots (objects with ``lastUpdateId``) and ``depthUpdate`` events, in the order
    they were received, as checked book updates (see the module docstring)."""
    assembler = BinanceDepthAssembler(venue, symbol)
    for raw in messages:
        message = _unwrap(raw)
        if "lastUpdateId" in message:
            yield from assembler.on_snapshot(message)
        elif "U" in message and "u" in message:
            yield from assembler.on_event(message)
        else:
            raise ValueError(f"not a Binance depth snapshot or depthUpdate: {sorted(message)}")


def read_binance_depth(path: str | os.PathLike[str], *, venue: str, symbol: str
                       ) -> Iterator[BookUpdate]:
    """A recording of one symbol's USD-M depth, one JSON object a line: REST snapshots
    and ``depthUpdate`` events (bare or in a combined-stream wrapper) in arrival order."""

    def lines() -> Iterator[Mapping[str, Any]]:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)

    return assemble_binance_depth(lines(), venue=venue, symbol=symbol)
