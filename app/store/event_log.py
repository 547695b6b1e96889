"""The append-only event log.

``append`` writes a batch of events, their projections and any audit entries
in one transaction and returns only after it committed: callers acknowledge
nothing before that. Batching many commands' events into one ``append`` is
the group commit that keeps throughput from collapsing to one fsync per order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlmodel import Session, col, create_engine, select

from app.domain.event_accounts import account_of, order_id_of
from app.domain.events import Event
from app.engine.state import EngineState
from app.store.bulk import StatementBatch
from app.store.codec import decode_event, encode_event
from app.store.projections import project
from app.store.tables import AuditRow, EventRow

_JSON = frozenset({"payload"})
_EVENT_LOG: sa.Table = EventRow.__table__  # type: ignore[attr-defined]
_AUDIT_JSON = frozenset({"details"})


def make_db_engine(url: str, lock_timeout_ms: int = 5_000,
                   statement_timeout_ms: int = 30_000) -> sa.Engine:
    """A SQLAlchemy engine; SQLite gets WAL, full fsync and a busy timeout, PostgreSQL
    bounded lock and statement waits."""
    if url.startswith("sqlite"):
        # A writer waits at most 10 s for another process's lock, then the commit fails
        # (and the bus answers 503) instead of hanging.
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})

        @sa_event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    # No statement waits without bound for a lock or runs away: a commit that cannot
    # go through fails (the bus answers 503 and retries) and a shutdown is never
    # stuck behind one.
    options = (f"-c lock_timeout={lock_timeout_ms} -c statement_timeout={statement_timeout_ms}"
               " -c idle_in_transaction_session_timeout=60000")
    given = sa.engine.make_url(url).query.get("options")  # e.g. a search_path: kept
    if given:
        options = f"{given if isinstance(given, str) else ' '.join(given)} {options}"
    return create_engine(url, pool_pre_ping=True,
                         connect_args={"options": options, "connect_timeout": 5})


EVENT_COLUMNS = ("seq", "type", "client", "venue", "order_id", "payload", "created_at")
AUDIT_COLUMNS = ("at", "actor", "action", "scope", "reason", "previous", "details")


@dataclass(frozen=True, slots=True)
class Recorded:
    """An event as the log records it: numbered, its account worked out and its
    payload encoded once — what every post-commit handler receives."""

    seq: int
    type: str
    client: str | None
    venue: str | None
    order_id: int | None
    payload: dict[str, Any]
    event: Event


@dataclass(frozen=True, slots=True)
class PreparedAppend:
    statements: StatementBatch
    first: int  # sequence numbers of the events (last = 0: no events)
    last: int
    records: list[Recorded]

    @property
    def sequence_range(self) -> tuple[int, int]:
        return (self.first, self.last) if self.last else (0, 0)


class EventLog:
    """The log has one writer (the command bus), so it numbers events itself: no
    RETURNING round trip, and a second process appending to the same log fails
    on the primary key instead of interleaving with it."""

    def __init__(self, db: sa.Engine):
        self.db = db
        self._sqlite = db.dialect.name == "sqlite"
        self._next_seq: int | None = None

    def append(self, events: Sequence[Event], state: EngineState,
               audit: Sequence[AuditRow] = ()) -> tuple[int, int]:
        """Durably append ``events`` (with projections and audit rows).

        Returns the first and last sequence numbers written ((0, 0) for none).
        """
        return self.write(self.prepare(events, state, audit))

    def prepare(self, events: Sequence[Event], state: EngineState,
                audit: Sequence[AuditRow] = ()) -> PreparedAppend:
        """Number the events and build every row the append writes, from ``state`` as
        it is right after these events. No I/O: the command bus runs this on the
        engine's own thread and hands only ``write`` to a worker thread."""
        if self._next_seq is None:
            self._next_seq = self.last_seq() + 1
        first = self._next_seq
        out = StatementBatch(self.db.dialect.name)
        now = out.timestamp(datetime.now(UTC))
        rows = []
        records = []
        orders = state.orders
        for seq, e in enumerate(events, first):
            type_name, payload = encode_event(e)
            client, venue = account_of(e, orders)
            order_id = order_id_of(e)
            records.append(Recorded(seq, type_name, client, venue, order_id, payload, e))
            rows.append((seq, type_name, client, venue, order_id,
                         orjson.dumps(payload).decode(), now))
        out.insert("event_log", EVENT_COLUMNS, rows, json_columns=_JSON)
        out.insert("audit_log", AUDIT_COLUMNS,
                   [(out.timestamp(a.at), a.actor, a.action, a.scope, a.reason, a.previous,
                     orjson.dumps(a.details).decode()) for a in audit],
                   json_columns=_AUDIT_JSON)
        project(out, events, state)
        self._next_seq = first + len(events)
        return PreparedAppend(out, first, first + len(events) - 1 if events else 0, records)

    def write(self, prepared: PreparedAppend) -> tuple[int, int]:
        """Write a prepared append in one transaction; returns once it is committed."""
        if prepared.statements.statements:
            with self._failure_forgets_numbering(), self.db.begin() as conn:
                prepared.statements.execute(conn)
        return prepared.sequence_range

    async def commit(self, prepared: PreparedAppend) -> tuple[int, int]:
        """``write`` for the event loop: returns once the append is committed, without
        blocking the loop on the disk.

        SQLite runs in this process: its inserts do no I/O until COMMIT (they fill the
        page cache), but they need the GIL row by row, so on a worker thread they would
        queue behind request handling for every row. They run here; only COMMIT (the
        WAL write and fsync, without the GIL) goes to a worker thread. A server database
        answers every statement over the network, so there the whole write goes to the
        worker.
        """
        if not self._sqlite:
            return await asyncio.to_thread(self.write, prepared)
        if prepared.statements.statements:
            with self._failure_forgets_numbering(), self.db.connect() as conn:
                transaction = conn.begin()
                prepared.statements.execute(conn)
                await asyncio.to_thread(transaction.commit)
        return prepared.sequence_range

    @contextmanager
    def _failure_forgets_numbering(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            self._next_seq = None  # unknown now: read it back before the next append
            raise

    def probe_write(self) -> None:
        """Raise unless the log would take a write now: an insert into the event log in
        a transaction that is rolled back (it checks the connection, privileges and
        locks; a failure at commit time shows on the next real append)."""
        with self.db.connect() as conn, conn.begin() as transaction:
            conn.execute(sa.text(
                "INSERT INTO event_log (seq, type, payload, created_at) "
                "VALUES (:seq, 'WriteProbe', '{}', :at)"),
                {"seq": (conn.execute(sa.text("SELECT MAX(seq) FROM event_log")).scalar()
                         or 0) + 1, "at": datetime.now(UTC).replace(tzinfo=None)})
            transaction.rollback()

    def read(self, after: int = 0, limit: int | None = None,
             client: str | None = None) -> list[sa.Row[Any]]:
        """Stored rows after ``after``, in sequence order, as plain rows (``row.seq``,
        ``row.type``, ``row.payload``...), not ORM objects: a page of 5,000 events as
        ORM objects was ~60,000 objects for the garbage collector to walk (identity
        map, instance state, weak references) and took longer to build."""
        seq = _EVENT_LOG.c.seq
        query = sa.select(_EVENT_LOG).where(seq > after).order_by(seq)
        if client is not None:
            query = query.where(_EVENT_LOG.c.client == client)
        if limit is not None:
            query = query.limit(limit)
        with self.db.connect() as conn:
            return list(conn.execute(query).all())

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
            return session.exec(select(EventRow.created_at).order_by(col(EventRow.seq)).limit(1)
                                ).first()

    def last_seq(self) -> int:
        with Session(self.db) as session:
            return session.exec(select(sa.func.max(EventRow.seq))).one() or 0
