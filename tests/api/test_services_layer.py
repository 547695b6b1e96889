"""The use cases and the read side, called as every caller calls them (the routes,
the web pages, the CLI and strategies): one error convention, scoped reads, nothing
half-applied on a refusal."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from app.auth.principal import Principal, Role
from app.domain.orders import OrderSpec, OrderStatus, OrderType, Side
from app.domain.trading_state import TradingState
from app.services import controls, orders, positions
from app.services.errors import ServiceError
from app.services.queries import Reader, markets

D = Decimal
SCOPED = Principal("scoped", Role.OPERATOR, frozenset({"demo"}), "key")
ANYONE = Principal("ops", Role.OPERATOR, None, "key")


def call(api: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
    async def run() -> Any:
        return await fn(*args, **kwargs)
    return api.client.portal.call(run)


def limit(client: str = "demo", price: str = "59000.0", qty: str = "0.001",
          **kw: Any) -> OrderSpec:
    return OrderSpec(client, "paper-binance", "BTC-PERP", Side.BUY, OrderType.LIMIT, D(qty),
                     price=D(price), **kw)


def refusal(api: Any, fn: Any, *args: Any, **kwargs: Any) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        call(api, fn, *args, **kwargs)
    return caught.value


# ---- the read side's scope ---------------------------------------------------------------

def test_a_scoped_reader_sees_only_its_clients_and_learns_nothing_of_others(api) -> None:
    reader = Reader(api.system, SCOPED)
    assert reader.clients() == ["demo"]
    for other in ("demo-2", "no-such-client"):  # exists or not: the same 403
        with pytest.raises(ServiceError) as caught:
            reader.clients(other)
        assert (caught.value.status, caught.value.code) == (403, "CLIENT_FORBIDDEN")
    with pytest.raises(ServiceError) as caught:
        Reader(api.system, ANYONE).clients("no-such-client")
    assert (caught.value.status, caught.value.code) == (404, "UNKNOWN_CLIENT")


def test_orders_of_another_client_are_not_there_for_a_scoped_reader(market_api) -> None:
    api = market_api
    mine = call(api, orders.place, api.system, ANYONE, limit("demo"))
    theirs = call(api, orders.place, api.system, ANYONE, limit("demo-2"))
    reader = Reader(api.system, SCOPED)
    assert reader.order(mine.order.order_id).spec.client == "demo"
    with pytest.raises(ServiceError) as caught:
        reader.order(theirs.order.order_id)
    assert (caught.value.status, caught.value.code) == (404, "UNKNOWN_ORDER")
    page = reader.recent_orders()
    assert {o.spec.client for o in page.orders} == {"demo"}
    assert [o.order_id for o in reader.open_orders(reader.clients())] == [mine.order.order_id]
    assert all(v.client == "demo" for v in reader.positions(reader.clients(),
                                                             include_flat=True))
    assert {s.client for s in reader.summaries(reader.clients())} == {"demo"}


def test_the_market_view_is_venue_neutral_and_says_how_fresh(market_api) -> None:
    views = {(m.instrument.venue, m.instrument.symbol): m for m in markets(market_api.system)}
    btc = views[("paper-binance", "BTC-PERP")]
    assert (btc.bid, btc.ask, btc.mark) == (D("60000.0"), D("60000.1"), D("60000.0"))
    assert btc.mark_updated_at is not None
    eth = views[("paper-binance", "ETH-PERP")]
    assert eth.mark is None and eth.mark_updated_at is None


# ---- one error convention ----------------------------------------------------------------

def test_a_refused_use_case_raises_and_records_nothing(market_api) -> None:
    api = market_api
    before = api.last_seq()
    error = refusal(api, orders.place, api.system, SCOPED, limit("demo-2"))
    assert (error.status, error.code) == (403, "CLIENT_FORBIDDEN")
    error = refusal(api, controls.set_trading_state, api.system, SCOPED, None, None,
                    TradingState.HALTED, "no global brake for a scoped operator")
    assert (error.status, error.code) == (403, "CLIENT_FORBIDDEN")
    error = refusal(api, orders.cancel, api.system, ANYONE, 10**9)
    assert (error.status, error.code) == (404, "UNKNOWN_ORDER")
    assert api.last_seq() == before


def test_a_rejected_order_is_a_result_not_an_error(market_api) -> None:
    api = market_api
    placed = call(api, orders.place, api.system, ANYONE, limit(price="59000.05"))
    assert placed.created and placed.rejected
    assert placed.order.status is OrderStatus.REJECTED
    assert placed.order.reject_code == "PRICE_NOT_ON_TICK"
    # Recorded: it has an id, and the read side finds it.
    assert Reader(api.system, ANYONE).order(placed.order.order_id).reject_code == (
        "PRICE_NOT_ON_TICK")
    error = orders.rejection_error(placed.order)
    assert (error.status, error.code, error.order) == (400, "PRICE_NOT_ON_TICK", placed.order)


def test_an_idempotent_retry_answers_the_first_order(market_api) -> None:
    api = market_api
    first = call(api, orders.place, api.system, ANYONE, limit(client_order_id="svc-1"))
    again = call(api, orders.place, api.system, ANYONE, limit(client_order_id="svc-1"))
    assert first.created and not again.created
    assert again.order.order_id == first.order.order_id


def test_answers_are_the_order_at_its_commit_not_the_live_one(market_api) -> None:
    api = market_api
    placed = call(api, orders.place, api.system, ANYONE, limit())
    canceled = call(api, orders.cancel, api.system, ANYONE, placed.order.order_id)
    assert placed.order.status is not OrderStatus.CANCELED  # the copy taken at its commit
    assert canceled.status is OrderStatus.CANCELED


def test_replacing_a_finished_order_is_refused(market_api) -> None:
    api = market_api
    placed = call(api, orders.place, api.system, ANYONE, limit())
    call(api, orders.cancel, api.system, ANYONE, placed.order.order_id)
    error = refusal(api, orders.replace, api.system, ANYONE, placed.order.order_id,
                    price=D("58000.0"))
    assert (error.status, error.code) == (409, "ORDER_NOT_OPEN")


def test_close_position_and_close_all_through_the_services(market_api) -> None:
    api = market_api
    api.buy_market("0.002")
    closed = call(api, positions.close_position, api.system, ANYONE, "demo",
                  "paper-binance", "BTC-PERP", "test")
    assert closed.qty_before == D("0.002") and closed.flat and closed.order is not None
    again = call(api, positions.close_position, api.system, ANYONE, "demo",
                 "paper-binance", "BTC-PERP")
    assert again.order is None and again.flat  # a safe retry
    error = refusal(api, positions.close_position, api.system, ANYONE, "demo",
                    "paper-binance", "SOL-PERP")
    assert (error.status, error.code) == (404, "NO_POSITION")
    change = call(api, controls.close_all, api.system, SCOPED, "demo", None, "test")
    assert change.state is TradingState.REDUCE_ONLY and change.previous is TradingState.ACTIVE
    assert Reader(api.system, SCOPED).state_in_force("demo", "paper-binance")[0] is (
        TradingState.REDUCE_ONLY)


def test_deposit_and_withdraw_are_audited_and_bounded(market_api) -> None:
    from app.services import accounts
    from app.store.tables import AuditRow

    api = market_api
    before = Reader(api.system, ANYONE).summaries(["demo"], "paper-binance")[0].wallet
    call(api, accounts.deposit, api.system, ANYONE, "demo", "paper-binance", D("100"),
         "top up")
    call(api, accounts.withdraw, api.system, ANYONE, "demo", "paper-binance", D("40"),
         "pay out")
    after = Reader(api.system, ANYONE).summaries(["demo"], "paper-binance")[0].wallet
    assert after - before == D("60")
    error = refusal(api, accounts.withdraw, api.system, ANYONE, "demo", "paper-binance",
                    D("1000000000"), "too much")
    assert (error.status, error.code) == (400, "INSUFFICIENT_BALANCE")
    error = refusal(api, accounts.deposit, api.system, SCOPED, "demo-2", "paper-binance",
                    D("1"), "not mine")
    assert (error.status, error.code) == (403, "CLIENT_FORBIDDEN")
    actions = [r.action for r in api.rows(AuditRow) if r.action in ("deposit", "withdraw")]
    assert actions == ["deposit", "withdraw", "withdraw"]  # the refused one too
