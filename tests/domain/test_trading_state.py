"""Kill-switch states: scopes, coverage and the effective state of an account."""

from __future__ import annotations

import itertools

import pytest

from app.domain.trading_state import GLOBAL, Scope, TradingState, effective_state

ACTIVE, REDUCE, HALTED = TradingState.ACTIVE, TradingState.REDUCE_ONLY, TradingState.HALTED
C, V = "c1", "binance"
SCOPES = {
    "global": GLOBAL,
    "client": Scope(C, None),
    "venue": Scope(None, V),
    "account": Scope(C, V),
}


def test_severity_order():
    assert ACTIVE.severity < REDUCE.severity < HALTED.severity


def test_nothing_set_is_active_globally():
    assert effective_state({}, C, V) == (ACTIVE, GLOBAL)


@pytest.mark.parametrize("where", list(SCOPES))
@pytest.mark.parametrize("state", [REDUCE, HALTED])
def test_a_single_state_on_any_covering_scope_applies(where, state):
    scope = SCOPES[where]
    assert effective_state({scope: state}, C, V) == (state, scope)


@pytest.mark.parametrize("where", list(SCOPES))
def test_active_on_a_scope_is_just_active(where):
    state, _ = effective_state({SCOPES[where]: ACTIVE}, C, V)
    assert state is ACTIVE


@pytest.mark.parametrize(
    "assignment",
    list(itertools.product([None, ACTIVE, REDUCE, HALTED], repeat=4)),
    ids=lambda a: "-".join(s.value if s else "unset" for s in a),
)
def test_most_severe_of_the_four_scopes_wins(assignment):
    states = {scope: s for scope, s in zip(SCOPES.values(), assignment, strict=True)
              if s is not None}
    state, scope = effective_state(states, C, V)
    expected = max((s for s in assignment if s is not None), key=lambda s: s.severity,
                   default=ACTIVE)
    assert state is expected
    if expected is not ACTIVE:
        # the reported scope really holds that state; ties go to the broadest scope
        assert states[scope] is expected
        broadest = next(sc for sc, s in zip(SCOPES.values(), assignment, strict=True)
                        if s is expected)
        assert scope == broadest


def test_account_active_does_not_lift_a_global_halt():
    states = {GLOBAL: HALTED, Scope(C, V): ACTIVE}
    assert effective_state(states, C, V) == (HALTED, GLOBAL)


def test_client_reduce_only_and_venue_halt_report_the_venue():
    states = {Scope(C, None): REDUCE, Scope(None, V): HALTED}
    assert effective_state(states, C, V) == (HALTED, Scope(None, V))


def test_account_halt_beats_global_reduce_only():
    states = {GLOBAL: REDUCE, Scope(C, V): HALTED}
    assert effective_state(states, C, V) == (HALTED, Scope(C, V))


def test_states_on_scopes_that_do_not_cover_the_account_are_ignored():
    states = {
        Scope("c2", None): HALTED,
        Scope(None, "bybit"): HALTED,
        Scope("c2", V): HALTED,
        Scope(C, "bybit"): HALTED,
    }
    assert effective_state(states, C, V) == (ACTIVE, GLOBAL)
    assert effective_state(states, "c2", "okx") == (HALTED, Scope("c2", None))
    assert effective_state(states, C, "bybit")[0] is HALTED


@pytest.mark.parametrize(
    ("scope", "client", "venue", "covers"),
    [
        (GLOBAL, "c1", "binance", True),
        (GLOBAL, "anyone", "anywhere", True),
        (Scope("c1", None), "c1", "binance", True),
        (Scope("c1", None), "c1", "bybit", True),
        (Scope("c1", None), "c2", "binance", False),
        (Scope(None, "binance"), "c1", "binance", True),
        (Scope(None, "binance"), "c2", "binance", True),
        (Scope(None, "binance"), "c1", "bybit", False),
        (Scope("c1", "binance"), "c1", "binance", True),
        (Scope("c1", "binance"), "c1", "bybit", False),
        (Scope("c1", "binance"), "c2", "binance", False),
        (Scope("c1", "binance"), "c2", "bybit", False),
    ],
)
def test_scope_covers(scope, client, venue, covers):
    assert scope.covers(client, venue) is covers


def test_is_global():
    assert GLOBAL.is_global
    assert Scope().is_global
    assert not Scope("c1").is_global
    assert not Scope(None, "binance").is_global


@pytest.mark.parametrize(
    ("scope", "text"),
    [
        (GLOBAL, "global"),
        (Scope("c1", None), "client c1"),
        (Scope(None, "binance"), "venue binance"),
        (Scope("c1", "binance"), "client c1, venue binance"),
    ],
)
def test_describe(scope, text):
    assert scope.describe() == text


def test_scopes_are_usable_as_mapping_keys():
    assert Scope("c1", "binance") == Scope("c1", "binance")
    assert hash(Scope("c1", None)) == hash(Scope("c1", None))
    assert {Scope("c1", None): HALTED}[Scope("c1")] is HALTED
