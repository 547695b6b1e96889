"""What the order-book assemblers of every venue share.

An exchange's L2 feed is a snapshot followed by deltas, each numbered. The
numbers are what tell a client that its copy of the book is still the
exchange's: a delta that does not follow the last one applied means updates
were lost, and the copy is wrong until a new snapshot. The assemblers
(``binance_depth``, ``bybit_book``) check those numbers and turn raw messages
into ``BookSnapshot`` / ``BookDelta`` / ``BookInvalidated``; this module holds
the bits they have in common.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from app.domain.market import BookSnapshot

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Levels = tuple[tuple[Decimal, Decimal], ...]


@dataclass(slots=True)
class SequenceStats:
    """What an assembler did with the messages it was given (for tests and logs)."""

    snapshots: int = 0  # snapshots applied (emitted)
    deltas: int = 0  # deltas applied (emitted)
    stale: int = 0  # dropped: already applied, duplicated or older than the book
    gaps: int = 0  # sequence gaps seen (each emitted one BookInvalidated)
    waiting: int = 0  # deltas that arrived with no valid book to apply them to


def from_millis(ms: int | str) -> datetime:
    """An exchange's epoch milliseconds as an aware UTC datetime (exact: no float)."""
    return EPOCH + timedelta(milliseconds=int(ms))


def parse_levels(raw: Iterable[Sequence[str]]) -> Levels:
    """``[[price, size], ...]`` as exchange text -> ``Decimal`` pairs (never via float)."""
    return tuple((Decimal(level[0]), Decimal(level[1])) for level in raw)


def snapshot_of(venue: str, symbol: str, bids: Levels, asks: Levels, ts: datetime
                ) -> BookSnapshot:
    """A ``BookSnapshot`` with both sides best-first, whatever order the exchange sent."""
    return BookSnapshot(
        venue, symbol,
        tuple(sorted(bids, key=lambda level: level[0], reverse=True)),
        tuple(sorted(asks, key=lambda level: level[0])),
        ts,
    )
