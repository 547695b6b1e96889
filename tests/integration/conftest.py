"""Real services for the integration tests.

PostgreSQL: one scratch database per test session (``perpdesk_test_<random>``)
on ``postgresql+psycopg://postgres@127.0.0.1:5432`` (override the server with
``PERPDESK_TEST_POSTGRES``), dropped at the end. Each test gets its own empty
schema in it through the connection's ``search_path``, so tests never see each
other's tables and a connection left open by a killed server cannot block the
next test.

When PostgreSQL is unreachable the tests that need it are skipped with the
reason, unless ``PERPDESK_REQUIRE_SERVICES=1`` (CI), where they fail instead.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

SERVER_URL = os.environ.get("PERPDESK_TEST_POSTGRES",
                            "postgresql+psycopg://postgres@127.0.0.1:5432")
MAINTENANCE_DB = os.environ.get("PERPDESK_TEST_POSTGRES_DB", "test")


def services_required() -> bool:
    return os.environ.get("PERPDESK_REQUIRE_SERVICES", "") == "1"


def _unavailable(reason: str) -> None:
    if services_required():
        pytest.fail(f"{reason} (PERPDESK_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


def _admin_engine() -> sa.Engine:
    return sa.create_engine(f"{SERVER_URL}/{MAINTENANCE_DB}", isolation_level="AUTOCOMMIT",
                            connect_args={"connect_timeout": 3}, poolclass=sa.pool.NullPool)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """The URL of this session's scratch database (created here, dropped at the end)."""
    admin = _admin_engine()
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # any failure to connect means "not available"
        admin.dispose()
        _unavailable(f"PostgreSQL is not reachable at {SERVER_URL}/{MAINTENANCE_DB}: "
                     f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    name = f"perpdesk_test_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{SERVER_URL}/{name}"
    finally:
        with admin.connect() as conn:
            # FORCE: a server process killed mid-test may have left sessions behind.
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url(postgres_database: str) -> str:
    """A fresh, empty schema in the session database, as a URL whose connections use it."""
    schema = f"t_{secrets.token_hex(6)}"
    engine = sa.create_engine(postgres_database, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    finally:
        engine.dispose()
    # libpq "options": every connection of this URL starts with this search_path.
    return f"{postgres_database}?options=-csearch_path%3D{schema}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'perpdesk.db'}"
