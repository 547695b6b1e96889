"""The event-log, projection and recovery tests of tests/store, on PostgreSQL.

The store tests take one fixture, ``db_url`` (a fresh, empty database). Here
it is an empty schema in this session's scratch PostgreSQL database, and the
very same test functions are collected again, so both backends are held to
the same checks without a second copy of them.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.store.event_log import EventLog, make_db_engine
from app.store.migrate import upgrade

_STORE_TESTS = str(Path(__file__).resolve().parents[1] / "store")
if _STORE_TESTS not in sys.path:
    sys.path.insert(0, _STORE_TESTS)
event_log_tests = importlib.import_module("test_event_log")
recovery_tests = importlib.import_module("test_recovery")


@pytest.fixture
def db_url(postgres_url: str) -> str:
    return postgres_url


# ---- 2. the event log and its projections -------------------------------------------

test_session_did_what_it_says = event_log_tests.test_session_did_what_it_says
test_append_returns_contiguous_sequence_numbers = (
    event_log_tests.test_append_returns_contiguous_sequence_numbers)
test_replay_returns_exactly_what_was_appended = (
    event_log_tests.test_replay_returns_exactly_what_was_appended)
test_replaying_the_log_rebuilds_the_live_state = (
    event_log_tests.test_replaying_the_log_rebuilds_the_live_state)
test_rows_are_scoped_to_the_client_they_concern = (
    event_log_tests.test_rows_are_scoped_to_the_client_they_concern)
test_projections_match_the_engine_state = event_log_tests.test_projections_match_the_engine_state
test_projections_match_after_every_batch = (
    event_log_tests.test_projections_match_after_every_batch)
test_failed_append_leaves_nothing_behind = (
    event_log_tests.test_failed_append_leaves_nothing_behind)
test_audit_rows_commit_with_the_events = event_log_tests.test_audit_rows_commit_with_the_events
test_decimals_and_timestamps_are_stored_exactly = (
    event_log_tests.test_decimals_and_timestamps_are_stored_exactly)
test_kill_switch_and_close_all_rows_are_scoped_to_their_client = (
    event_log_tests.test_kill_switch_and_close_all_rows_are_scoped_to_their_client)
test_migrations_match_the_models = event_log_tests.test_migrations_match_the_models
test_alembic_upgrade_is_idempotent = event_log_tests.test_alembic_upgrade_is_idempotent

# ---- 3. recovery ---------------------------------------------------------------------

test_restart_rebuilds_the_exact_state = recovery_tests.test_restart_rebuilds_the_exact_state
test_resting_orders_are_live_again_after_restart = (
    recovery_tests.test_resting_orders_are_live_again_after_restart)
test_replay_equals_live_state_at_every_restart = (
    recovery_tests.test_replay_equals_live_state_at_every_restart)
test_stops_and_expiries_keep_working_after_restart = (
    recovery_tests.test_stops_and_expiries_keep_working_after_restart)
test_an_acknowledgement_never_shows_uncommitted_state = (
    recovery_tests.test_an_acknowledgement_never_shows_uncommitted_state)
test_a_funding_print_is_not_settled_twice_across_a_restart = (
    recovery_tests.test_a_funding_print_is_not_settled_twice_across_a_restart)
test_a_crash_while_funding_a_new_database_still_funds_every_account = (
    recovery_tests.test_a_crash_while_funding_a_new_database_still_funds_every_account)
test_orders_in_flight_at_shutdown_are_settled_on_restart = (
    recovery_tests.test_orders_in_flight_at_shutdown_are_settled_on_restart)


# ---- PostgreSQL specifics --------------------------------------------------------------


def test_it_really_is_postgresql_in_its_own_schema(db_url: str) -> None:
    """Guard: the re-collected tests above do run on PostgreSQL, isolated per test."""
    upgrade(db_url)
    db = make_db_engine(db_url)
    try:
        assert db.dialect.name == "postgresql"
        with db.connect() as conn:
            schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
            tables = set(conn.execute(sa.text(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
                {"s": schema}).scalars())
            seq_type = conn.execute(sa.text(
                "SELECT data_type FROM information_schema.columns WHERE table_schema = :s "
                "AND table_name = 'event_log' AND column_name = 'seq'"),
                {"s": schema}).scalar_one()
            at_type = conn.execute(sa.text(
                "SELECT data_type FROM information_schema.columns WHERE table_schema = :s "
                "AND table_name = 'fills' AND column_name = 'at'"), {"s": schema}).scalar_one()
        assert schema.startswith("t_")
        assert {"event_log", "orders", "fills", "positions", "balances", "closed_trades",
                "trading_states", "alembic_version"} <= tables
        assert seq_type == "bigint"  # a long-lived log outgrows 32 bits
        assert at_type == "timestamp with time zone"
        assert EventLog(db).last_seq() == 0
    finally:
        db.dispose()
