"""Bybit v5 ``orderbook.<depth>.<symbol>`` messages checked by their ``u`` and ``seq``.

Bybit's rules (v5 public WebSocket, Orderbook): the first message after
subscribing is a ``snapshot``; ``delta`` messages follow, each ``u`` (update
id) one more than the last; a new ``snapshot`` means "reset your local book";
and "occasionally you'll receive ``u`` = 1, which is snapshot data due to the
restart of the service — overwrite your local orderbook". ``seq`` is the
matching engine's cross sequence: a smaller one was generated earlier.

So, per message:

* ``snapshot``, or any message with ``u == 1``: a ``BookSnapshot`` (the book is
  valid again) — unless its ``seq`` is below the last one applied (a late copy
  of something older than the book we have: dropped);
* ``delta`` before any snapshot: skipped (nothing to apply it to);
* ``delta`` whose ``seq`` does not increase or whose ``u`` is not beyond the
  last: stale or duplicated, dropped;
* ``delta`` whose ``u`` is not the last ``u`` + 1: updates were lost — one
  ``BookInvalidated``, then every delta is dropped until the next snapshot;
* otherwise a ``BookDelta`` (absolute sizes; 0 deletes the level).

Messages are stamped with their ``ts`` (ms, when Bybit's market-data service
produced them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.domain.market import BookDelta, BookInvalidated, BookSnapshot
from app.marketdata.sequencing import SequenceStats, from_millis, parse_levels, snapshot_of

BookUpdate = BookSnapshot | BookDelta | BookInvalidated


class BybitBookAssembler:
    """One ``orderbook.<depth>.<symbol>`` topic, checked and turned into book updates."""

    def __init__(self, venue: str, symbol: str):
        self.venue = venue
        self.symbol = symbol
        self.stats = SequenceStats()
        self._last_u: int | None = None  # of the last message applied
        self._last_seq: int | None = None
        self._valid = False

    @property
    def valid(self) -> bool:
        """True while a snapshot is in force and no update has been lost since."""
        return self._valid

    def on_message(self, message: Mapping[str, Any]) -> list[BookUpdate]:
        """One parsed message (``topic``, ``type``, ``ts``, ``data`` {s, b, a, u, seq});
        returns the updates it produced (possibly none)."""
        kind, data = message["type"], message["data"]
        if kind not in ("snapshot", "delta"):
            raise ValueError(f"unknown Bybit message type {kind!r}")
        u, seq = int(data["u"]), int(data["seq"])
        ts = from_millis(message["ts"])
        if kind == "snapshot" or u == 1:
            if self._last_seq is not None and seq < self._last_seq and u != 1:
                self.stats.stale += 1
                return []
            self._last_u, self._last_seq = u, seq
            self._valid = True
            self.stats.snapshots += 1
            return [snapshot_of(self.venue, self.symbol, parse_levels(data["b"]),
                                parse_levels(data["a"]), ts)]
        if not self._valid:
            self.stats.waiting += 1  # before the first snapshot, or after a gap
            return []
        assert self._last_u is not None and self._last_seq is not None
        if seq <= self._last_seq or u <= self._last_u:
            self.stats.stale += 1
            return []
        if u != self._last_u + 1:
            self.stats.gaps += 1
            self._valid = False
            reason = f"gap: u={u} after u={self._last_u}"
            return [BookInvalidated(self.venue, self.symbol, reason, ts)]
        self._last_u, self._last_seq = u, seq
        self.stats.deltas += 1
        return [BookDelta(self.venue, self.symbol, parse_levels(data["b"]),
                          parse_levels(data["a"]), ts)]
