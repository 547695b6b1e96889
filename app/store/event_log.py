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

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlmodel import Session, create_engine, select

from app.domain.events import Event
from app.engine.state import EngineState
from app.store.codec import decode_event, encode_event
from app.store.projections import project
from app.store.tables import AuditRow, EventRow

_EVENTS = EventRow.__table__
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


class EventLog:
    def __init__(self, db: sa.Engine):
        self.db = db

    def append(self, events: Sequence[Event], state: EngineState,
               audit: Sequence[AuditRow] = ()) -> tuple[int, int]:
        """Durably append ``events`` (with projections and audit rows).

        Returns the first and last sequence numbers written ((0, 0) for none).
        """
        if not events and not audit:
            return 0, 0
        now = datetime.now(UTC)
        rows = []
        for e in events:
            type_name, payload = encode_event(e)
            client, venue, order_id = _scope_of(e, state)
            rows.append({"type": type_name, "client": client, "venue": venue,
                         "order_id": order_id, "payload": payload, "created_at": now})
        seqs: list[int] = []
        with self.db.begin() as conn:
            if rows:
                seqs = list(conn.execute(
                    sa.insert(_EVENTS).returning(_EVENTS.c.seq, sort_by_parameter_order=True),
                    rows).scalars())
            if audit:
                conn.execute(sa.insert(_AUDIT), [a.model_dump(exclude={"id"}) for a in audit])
            project(conn, events, state)
        if not seqs:
            return 0, 0
        return seqs[0], seqs[-1]

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
