"""Order lifecycle: the transition table, fills, client order ids, retries."""

from __future__ import annotations

import itertools
import string
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.orders import (
    TERMINAL_STATUSES,
    TRANSITIONS,
    Order,
    OrderSpec,
    OrderStatus,
    OrderTags,
    OrderType,
    Side,
    TimeInForce,
    can_transition,
    valid_client_order_id,
)
from app.domain.rejections import DomainError, IllegalTransition

S = OrderStatus
T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(seconds=1)
T2 = T0 + timedelta(seconds=2)
T3 = T0 + timedelta(seconds=3)
D = Decimal


def make_spec(**overrides) -> OrderSpec:
    fields = dict(
        client="c1", venue="paper", symbol="BTCUSDT", side=Side.BUY, type=OrderType.LIMIT,
        qty=D("3"), price=D("100"), client_order_id="o-1",
    )
    fields.update(overrides)
    return OrderSpec(**fields)


def make_order(status: OrderStatus = S.NEW, **spec_overrides) -> Order:
    spec = make_spec(**spec_overrides)
    return Order(order_id=7, spec=spec, client_order_id=spec.client_order_id or "o-1",
                 created_at=T0, status=status, updated_at=T0)


# Written out by hand from the lifecycle rules (not copied from the code): an
# order is acknowledged or rejected; working orders trigger, fill, expire or
# are canceled; pending cancel/replace may race fills and may be refused.
LEGAL: dict[OrderStatus, set[OrderStatus]] = {
    S.NEW: {S.ACCEPTED, S.REJECTED, S.PENDING_CANCEL},
    S.ACCEPTED: {S.TRIGGERED, S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL,
                 S.PENDING_REPLACE, S.CANCELED, S.EXPIRED},
    S.TRIGGERED: {S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.PENDING_REPLACE,
                  S.CANCELED, S.EXPIRED},
    S.PARTIALLY_FILLED: {S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.PENDING_REPLACE,
                         S.CANCELED, S.EXPIRED},
    # A refused cancel returns to the state the order had, NEW included (never acked).
    S.PENDING_CANCEL: {S.CANCELED, S.PARTIALLY_FILLED, S.FILLED, S.EXPIRED, S.REJECTED,
                       S.NEW, S.ACCEPTED, S.TRIGGERED},
    S.PENDING_REPLACE: {S.CANCELED, S.PARTIALLY_FILLED, S.FILLED, S.EXPIRED,
                        S.ACCEPTED, S.TRIGGERED},
    S.FILLED: set(),
    S.CANCELED: set(),
    S.EXPIRED: set(),
    S.REJECTED: set(),
}

ALL_PAIRS = list(itertools.product(list(OrderStatus), repeat=2))


# ---- the table ---------------------------------------------------------------------


def test_table_has_a_row_for_every_status_and_matches_the_rules():
    assert set(TRANSITIONS) == set(OrderStatus)
    assert {k: set(v) for k, v in TRANSITIONS.items()} == LEGAL


def test_terminal_statuses():
    assert {S.FILLED, S.CANCELED, S.EXPIRED, S.REJECTED} == TERMINAL_STATUSES
    for status in OrderStatus:
        assert status.is_terminal is (status in TERMINAL_STATUSES)
        assert status.is_open is (status not in TERMINAL_STATUSES)
        assert make_order(status).is_open is status.is_open


@pytest.mark.parametrize(("start", "target"), ALL_PAIRS, ids=lambda s: s.value)
def test_every_transition_pair(start: OrderStatus, target: OrderStatus):
    order = make_order(start)
    assert can_transition(start, target) is (target in LEGAL[start])
    if target in LEGAL[start]:
        order.transition(target, T1)
        assert order.status is target
        assert order.updated_at == T1
    else:
        with pytest.raises(IllegalTransition) as info:
            order.transition(target, T1)
        assert start.value in str(info.value) and target.value in str(info.value)
        # a refused transition changes nothing
        assert order.status is start
        assert order.updated_at == T0
        assert order.status_before_pending is None


def test_illegal_transition_is_a_domain_error():
    assert issubclass(IllegalTransition, DomainError)


# ---- business-critical paths, spelled out ---------------------------------------------


def test_happy_path_new_accepted_triggered_partial_filled():
    order = make_order(type=OrderType.STOP_LIMIT, trigger_price=D("99"))
    order.transition(S.ACCEPTED, T1)
    assert order.status is S.ACCEPTED
    order.transition(S.TRIGGERED, T2)
    assert order.status is S.TRIGGERED
    order.transition(S.PARTIALLY_FILLED, T3)
    assert order.status is S.PARTIALLY_FILLED
    order.transition(S.FILLED, T3)
    assert order.status is S.FILLED
    assert not order.is_open


def test_accepted_pending_cancel_canceled():
    order = make_order(S.ACCEPTED)
    order.transition(S.PENDING_CANCEL, T1)
    assert order.status is S.PENDING_CANCEL
    assert order.status_before_pending is S.ACCEPTED
    order.transition(S.CANCELED, T2)
    assert order.status is S.CANCELED
    assert order.updated_at == T2


def test_pending_replace_to_canceled():
    order = make_order(S.PARTIALLY_FILLED)
    order.transition(S.PENDING_REPLACE, T1)
    assert order.status_before_pending is S.PARTIALLY_FILLED
    order.transition(S.CANCELED, T2)
    assert order.status is S.CANCELED


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATUSES), ids=lambda s: s.value)
def test_terminal_states_have_no_exits(terminal: OrderStatus):
    assert TRANSITIONS[terminal] == frozenset()
    for target in OrderStatus:
        order = make_order(terminal)
        with pytest.raises(IllegalTransition):
            order.transition(target, T1)
        assert order.status is terminal


@pytest.mark.parametrize(
    ("start", "target"),
    [(S.FILLED, S.CANCELED), (S.CANCELED, S.FILLED), (S.REJECTED, S.ACCEPTED),
     (S.NEW, S.FILLED), (S.NEW, S.CANCELED), (S.ACCEPTED, S.REJECTED),
     (S.ACCEPTED, S.NEW), (S.PENDING_CANCEL, S.PENDING_REPLACE)],
    ids=lambda s: s.value,
)
def test_named_illegal_transitions(start, target):
    with pytest.raises(IllegalTransition):
        make_order(start).transition(target, T1)


@pytest.mark.parametrize("working", [S.ACCEPTED, S.TRIGGERED, S.PARTIALLY_FILLED],
                         ids=lambda s: s.value)
@pytest.mark.parametrize("pending", [S.PENDING_CANCEL, S.PENDING_REPLACE],
                         ids=lambda s: s.value)
def test_refused_cancel_or_replace_returns_to_the_working_status(working, pending):
    order = make_order(working)
    order.transition(pending, T1)
    assert order.status_before_pending is working
    order.transition(order.status_before_pending, T2)
    assert order.status is working


@pytest.mark.parametrize(
    "start", [s for s in OrderStatus if S.PENDING_CANCEL in TRANSITIONS[s]],
    ids=lambda s: s.value,
)
def test_refused_cancel_always_has_a_legal_way_back(start):
    """Whatever ``status_before_pending`` a cancel remembers, returning to it
    on a refusal must be a legal transition (the engine does exactly that)."""
    order = make_order(start)
    order.transition(S.PENDING_CANCEL, T1)
    remembered = order.status_before_pending
    assert remembered is start
    order.transition(remembered, T2)
    assert order.status is start


# ---- fills ---------------------------------------------------------------------------


def test_partial_then_full_fill():
    order = make_order(S.ACCEPTED)  # buy 3 @ 100 limit
    assert order.avg_fill_price is None
    assert order.remaining_qty == D(3)

    order.record_fill(D("1"), D("100"), D("0.02"), T1)
    assert order.status is S.PARTIALLY_FILLED
    assert order.filled_qty == D(1)
    assert order.remaining_qty == D(2)
    assert order.avg_fill_price == D(100)
    assert order.fees == D("0.02")
    assert order.updated_at == T1

    order.record_fill(D("0.5"), D("101"), D("0.01"), T2)
    assert order.status is S.PARTIALLY_FILLED
    assert order.filled_notional == D("150.5")

    order.record_fill(D("1.5"), D("103"), D("0.03"), T3)
    assert order.status is S.FILLED
    assert order.filled_qty == D(3)
    assert order.remaining_qty == D(0)
    # (100 + 50.5 + 154.5) / 3 = 305 / 3
    assert order.filled_notional == D("305")
    assert order.avg_fill_price == D(305) / D(3)
    assert order.fees == D("0.06")
    assert order.updated_at == T3
    assert not order.is_open


def test_single_full_fill_goes_straight_to_filled():
    order = make_order(S.ACCEPTED)
    order.record_fill(D(3), D("99.5"), D("0.1"), T1)
    assert order.status is S.FILLED
    assert order.avg_fill_price == D("99.5")


def test_triggered_order_fills():
    order = make_order(S.TRIGGERED, type=OrderType.STOP, price=None, trigger_price=D("99"))
    order.record_fill(D(1), D("99"), D("0.05"), T1)
    assert order.status is S.PARTIALLY_FILLED


@pytest.mark.parametrize("qty", ["4", "3.0001", "0", "-1"])
def test_overfill_and_nonpositive_fills_raise_and_change_nothing(qty):
    order = make_order(S.ACCEPTED)
    with pytest.raises(IllegalTransition):
        order.record_fill(D(qty), D("100"), D("0.01"), T1)
    assert order.filled_qty == 0
    assert order.filled_notional == 0
    assert order.fees == 0
    assert order.status is S.ACCEPTED


def test_overfill_after_partial_raises():
    order = make_order(S.ACCEPTED)
    order.record_fill(D(2), D("100"), D("0.01"), T1)
    with pytest.raises(IllegalTransition):
        order.record_fill(D("1.5"), D("100"), D("0.01"), T2)
    assert order.filled_qty == D(2)
    assert order.status is S.PARTIALLY_FILLED
    order.record_fill(D(1), D("100"), D("0.01"), T2)
    assert order.status is S.FILLED


@pytest.mark.parametrize("status", [S.CANCELED, S.EXPIRED, S.REJECTED, S.NEW],
                         ids=lambda s: s.value)
def test_fill_in_a_status_that_cannot_fill_raises_and_changes_nothing(status):
    """A refused fill must not leave the order half-updated (quantity counted,
    status unchanged): the caller gets an exception and an intact order."""
    order = make_order(status)
    with pytest.raises(IllegalTransition):
        order.record_fill(D(1), D("100"), D("0.01"), T1)
    assert order.status is status
    assert order.filled_qty == 0
    assert order.filled_notional == 0
    assert order.fees == 0


@pytest.mark.parametrize("pending", [S.PENDING_CANCEL, S.PENDING_REPLACE],
                         ids=lambda s: s.value)
def test_partial_fill_while_pending_keeps_pending_and_remembers_partial(pending):
    order = make_order(S.ACCEPTED)
    order.transition(pending, T1)
    assert order.status_before_pending is S.ACCEPTED

    order.record_fill(D(1), D("100"), D("0.02"), T2)
    assert order.status is pending
    assert order.status_before_pending is S.PARTIALLY_FILLED
    assert order.filled_qty == D(1)
    assert order.updated_at == T2

    # the cancel/replace is refused: back to the working status, now partial
    order.transition(order.status_before_pending, T3)
    assert order.status is S.PARTIALLY_FILLED
    assert order.remaining_qty == D(2)


def test_fill_completing_order_during_pending_cancel_moves_to_filled():
    order = make_order(S.ACCEPTED)
    order.transition(S.PENDING_CANCEL, T1)
    order.record_fill(D(1), D("100"), D("0"), T2)
    order.record_fill(D(2), D("100"), D("0"), T3)
    assert order.status is S.FILLED
    with pytest.raises(IllegalTransition):
        order.transition(S.CANCELED, T3)


def test_partial_fill_during_pending_cancel_then_cancel_confirmed():
    order = make_order(S.PARTIALLY_FILLED)
    order.filled_qty, order.filled_notional = D(1), D(100)
    order.transition(S.PENDING_CANCEL, T1)
    order.record_fill(D("0.5"), D("100"), D("0"), T2)
    order.transition(S.CANCELED, T3)
    assert order.status is S.CANCELED
    assert order.filled_qty == D("1.5")
    assert order.remaining_qty == D("1.5")


# ---- client order ids --------------------------------------------------------------------

ALLOWED_CHARS = string.ascii_letters + string.digits + "._:/-"


@pytest.mark.parametrize(
    "value",
    ["a", "Z", "0", "A" * 36, "abc-DEF_123.x:y/z", "strat-1:sig/2024.01.01_0001",
     "-", ".", ":", "/", "_", "9" * 36],
)
def test_valid_client_order_ids(value):
    assert valid_client_order_id(value)


@pytest.mark.parametrize(
    "value",
    ["", "a" * 37, "a b", " a", "a ", "a#b", "#", "ordér", "ü", "订单", "a\tb", "a+b",
     "a@b", "a,b", "a\\b", "ａ",  # fullwidth a
     "abc\n", "a" * 36 + "\n", "\nabc"],
    ids=repr,
)
def test_invalid_client_order_ids(value):
    assert not valid_client_order_id(value)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=ALLOWED_CHARS, min_size=1, max_size=36))
def test_any_allowed_string_of_1_to_36_is_valid(value):
    assert valid_client_order_id(value)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=ALLOWED_CHARS, max_size=36), st.characters(),
       st.text(alphabet=ALLOWED_CHARS, max_size=36))
def test_any_foreign_character_makes_it_invalid(prefix, bad, suffix):
    if bad in ALLOWED_CHARS:
        bad = "#"
    assert not valid_client_order_id(prefix + bad + suffix)


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet=ALLOWED_CHARS, min_size=37, max_size=80))
def test_too_long_is_invalid(value):
    assert not valid_client_order_id(value)


# ---- same_request (idempotent retries) -------------------------------------------------------


def test_same_request_identical_spec():
    order = make_order(S.ACCEPTED)
    assert order.same_request(make_spec())


def test_same_request_ignores_client_order_id_field_of_the_retry():
    order = make_order(S.ACCEPTED)
    assert order.same_request(make_spec(client_order_id=None))


@pytest.mark.parametrize(
    "change",
    [dict(qty=D("3.1")), dict(price=D("100.5")), dict(side=Side.SELL),
     dict(type=OrderType.MARKET, price=None), dict(reduce_only=True), dict(post_only=True),
     dict(time_in_force=TimeInForce.IOC), dict(symbol="ETHUSDT"),
     dict(tags=OrderTags(strategy="s2")), dict(trigger_price=D("90"))],
    ids=lambda c: next(iter(c)),
)
def test_same_request_detects_any_parameter_change(change):
    order = make_order(S.ACCEPTED)
    assert not order.same_request(make_spec(**change))


def test_same_request_equal_numbers_in_different_notation_are_the_same():
    order = make_order(S.ACCEPTED)
    assert order.same_request(make_spec(qty=D("3.000"), price=D("1E2")))


def test_same_request_compares_against_the_requested_qty_when_clipped():
    spec = make_spec(qty=D("0.5"))  # clipped from 3 to the 0.5 position
    order = Order(order_id=1, spec=spec, client_order_id="o-1", created_at=T0,
                  requested_qty=D(3))
    assert order.same_request(make_spec(qty=D(3)))
    assert not order.same_request(make_spec(qty=D("0.5")))


def test_same_request_does_not_depend_on_status_or_fills():
    order = make_order(S.ACCEPTED)
    order.record_fill(D(3), D(100), D(0), T1)
    assert order.status is S.FILLED
    assert order.same_request(replace(make_spec(), client_order_id="o-1"))
