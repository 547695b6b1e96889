"""The append-only event log.

``append`` writes a batch of events, their projections and any audit entries
in one transaction and returns only after it committed: callers acknowledge
nothing before that. Batching many commands' events into one ``append`` is
the group commit that keeps throughput from collapsing to one fsync per order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlmodel import Session, create_engine, select

from app.domain.events import Event
from app.engine.state import EngineState
from app.store.bulk import BulkWriter
from app.store.codec import decode_event, encode_event
from app.store.projections import project
from app.store.tables import AuditRow, EventRow

_JSON = frozenset({"payload"})
_AUDIT = AuditRow.__table__


def make_db_engine(url: str) -> sa.Engine:
    """A SQLAlchemy engine; SQLite gets WAL, full fsync and a busy timeout."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa_event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def _scope_of(event: Event, state: EngineState) -> tuple[str | None, str | None, int | None]:
    """Which client and venue an event belongs to (for scoped reads), and its order."""
    client = getattr(event, "client", None)
    venue = getattr(event, "venue", None)
    spec = getattr(event, "spec", None)
    if spec is not None:
        client, venue = spec.client, spec.venue
    trade = getattr(event, "trade", None)
    if trade is not None:
        client, venue = trade.client, trade.venue
    scope = getattr(event, "scope", None)
    if scope is not None:  # kill switches: the scope's client (None = global)
        client, venue = scope.client, scope.venue
    order_id = getattr(event, "order_id", None)
    if client is None and order_id is not None:
        order = state.orders.get(order_id)
        if order is not None:
            client, venue = order.spec.client, order.spec.venue
    return client, venue, order_id


EVENT_COLUMNS = ("seq", "type", "client", "venue", "order_id", "payload", "created_at")


class EventLog:
    """The log has one writer (the command bus), so it numbers events itself: no
    RETURNING round trip, and a second process appending to the same log fails
    on the primary key instead of interleaving with it."""

    def __init__(self, db: sa.Engine):
        self.db = db
        self._next_seq: int | None = None

    def append(self, events: Sequence[Event], state: EngineState,
               audit: Sequence[AuditRow] = ()) -> tuple[int, int]:
        """Durably append ``events`` (with projections and audit rows).

        Returns the first and last sequence numbers written ((0, 0) for none).
        """
        if not events and not audit:
            return 0, 0
        if self._next_seq is None:
            self._next_seq = self.last_seq() + 1
        first = self._next_seq
        try:
            with self.db.begin() as conn:
                out = BulkWriter(conn)
                now = out.timestamp(datetime.now(UTC))
                rows = []
                for seq, e in enumerate(events, first):
                    type_name, payload = encode_event(e)
                    client, venue, order_id = _scope_of(e, state)
                    rows.append((seq, type_name, client, venue, order_id,
                                 orjson.dumps(payload).decode(), now))
                out.insert("event_log", EVENT_COLUMNS, rows, json_columns=_JSON)
                if audit:
                    conn.execute(sa.insert(_AUDIT),
                                 [a.model_dump(exclude={"id"}) for a in audit])
                project(out, events, state)
        except BaseException:
            self._next_seq = None  # unknown now: read it back before the next append
            raise
        if not events:
            return 0, 0
        self._next_seq = first + len(events)
        return first, first + len(events) - 1

    def read(self, after: int = 0, limit: int | None = None,
             client: str | None = None) -> list[EventRow]:
        with Session(self.db) as session:
            query = select(EventRow).where(EventRow.seq > after).order_by(EventRow.seq)
            if client is not None:
                query = query.where(EventRow.client == client)
            if limit is not None:
                query = query.limit(limit)
            return list(session.exec(query))

    def replay(self, batch: int = 5000) -> Iterator[Event]:
        """Every stored event, decoded, in sequence order."""
        after = 0
        while True:
            rows = self.read(after, batch)
            if not rows:
                return
            for row in rows:
                yield decode_event(row.type, row.payload)
            after = rows[-1].seq or after

    def first_created_at(self) -> datetime | None:
        with Session(self.db) as session:
            return session.exec(select(EventRow.created_at).order_by(EventRow.seq).limit(1)
                                ).first()

    def last_seq(self) -> int:
        with Session(self.db) as session:
            return session.exec(select(sa.func.max(EventRow.seq))).one() or 0
