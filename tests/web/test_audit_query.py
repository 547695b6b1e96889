"""The audit page's query (no browser): filters in SQL, a page examines a bounded stretch
of ids whatever the filter, and a short page links on to the older entries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session, SQLModel

from app.services import audit_log as routes
from app.services.audit_log import AuditFilters, read_audit
from app.store.tables import AuditRow

T0 = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    SQLModel.metadata.create_all(engine, tables=[AuditRow.__table__])  # type: ignore[list-item]
    scopes = ["global", "auth", "client demo", "client demo, venue paper-bybit",
              "client demo-2, venue paper-bybit", "venue paper-bybit"]
    with Session(engine) as session:
        for i in range(300):  # ids 1..300, one a minute
            actor = "key:rare-one" if i == 0 else f"key:ops-{i % 3}"
            session.add(AuditRow(at=T0 + timedelta(minutes=i), actor=actor,
                                 action="login" if i % 6 == 1 else "reduce-only",
                                 scope=scopes[i % 6], reason=f"entry {i + 1}",
                                 details={"state": "reduce_only"}))
        session.commit()
    return engine


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routes, "AUDIT_PAGE", 10)
    monkeypatch.setattr(routes, "AUDIT_SCAN", 50)


def _ids(rows: list[AuditRow]) -> list[int]:
    return [r.id for r in rows if r.id is not None]


def test_newest_first_in_pages(db, small_pages) -> None:
    rows, older = read_audit(db, AuditFilters(), None)
    assert _ids(rows) == list(range(300, 290, -1))
    assert older == 291
    rows, older = read_audit(db, AuditFilters(before=older), None)
    assert _ids(rows) == list(range(290, 280, -1))


def test_a_rare_match_is_reached_window_by_window(db, small_pages) -> None:
    """Only entry 1 matches: each page examines at most 50 ids, so the first pages come
    back empty, each with the cursor to go on from, until the window that holds it."""
    f = AuditFilters(actor="RARE")  # any case
    found: list[int] = []
    pages, before = 0, None
    while True:
        rows, before = read_audit(db, AuditFilters(actor=f.actor, before=before), None)
        pages += 1
        found += _ids(rows)
        if before is None:
            break
        assert rows == [] and before == 301 - 50 * pages
    assert found == [1] and pages == 6  # 300 ids, 50 a window
    # A time range is mapped to ids through the index on `at`: one window away.
    rows, before = read_audit(db, AuditFilters(actor="rare", until=T0), None)
    assert _ids(rows) == [1] and before is None


def test_each_query_reads_a_bounded_range(db, small_pages) -> None:
    statements: list[str] = []
    sa.event.listen(db, "before_cursor_execute",
                    lambda conn, cursor, statement, *args: statements.append(statement))
    read_audit(db, AuditFilters(actor="nobody", since=T0 + timedelta(minutes=10),
                                until=T0 + timedelta(hours=3)), None)
    main = [s for s in statements if "audit_log.reason" in s]
    assert len(main) == 1, statements
    assert "audit_log.id >=" in main[0] and "audit_log.id <=" in main[0]
    assert "LIMIT" in main[0]
    others = [s for s in statements if s not in main]
    assert all("LIMIT" in s or "max(" in s for s in others), others


def test_filters(db, small_pages) -> None:
    rows, _ = read_audit(db, AuditFilters(action="login"), None)
    assert rows and {r.action for r in rows} == {"login"}
    rows, _ = read_audit(db, AuditFilters(client="demo"), None)
    assert rows and {r.scope for r in rows} == {"client demo",
                                                "client demo, venue paper-bybit"}
    rows, _ = read_audit(db, AuditFilters(scope="venue paper-bybit"), None)
    assert rows and {r.scope for r in rows} == {"venue paper-bybit"}
    since, until = T0 + timedelta(minutes=100), T0 + timedelta(minutes=104)
    rows, older = read_audit(db, AuditFilters(since=since, until=until), None)
    assert _ids(rows) == [105, 104, 103, 102, 101] and older is None
    rows, older = read_audit(db, AuditFilters(until=T0 - timedelta(days=1)), None)
    assert rows == [] and older is None
    rows, older = read_audit(db, AuditFilters(since=T0 + timedelta(days=1)), None)
    assert rows == [] and older is None


def test_a_scoped_user_gets_global_and_their_clients_entries_only(db, small_pages) -> None:
    rows, _ = read_audit(db, AuditFilters(), frozenset({"demo"}))
    assert len(rows) == 10
    # Not "client demo-2, ..." (a prefix of the name is not the client), not auth, not
    # venue-only scopes.
    assert {r.scope for r in rows} == {"global", "client demo",
                                       "client demo, venue paper-bybit"}
