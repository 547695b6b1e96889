"""The bus survives a failed commit: callers get 503, /readyz says so, nothing of the
failed batch stays in the engine, and orders are accepted again by themselves once
the database takes writes (the same on real PostgreSQL: tests/integration)."""

from __future__ import annotations

import threading
from typing import Any

import sqlalchemy as sa

from app.store.event_log import EventLog
from tests.store.test_recovery import replay_file


class Outage:
    """Makes the app's event log refuse every write while ``down`` is set, the way a
    database does that lost its disk, a privilege or its connection."""

    def __init__(self, log: EventLog):
        self.down = threading.Event()
        real_commit, real_probe = log.commit, log.probe_write

        async def commit(prepared: Any) -> tuple[int, int]:
            if self.down.is_set():
                raise sa.exc.OperationalError("INSERT", {}, Exception("disk full (injected)"))
            return await real_commit(prepared)

        def probe() -> None:
            if self.down.is_set():
                raise sa.exc.OperationalError("INSERT", {}, Exception("disk full (injected)"))
            real_probe()

        log.commit = commit  # type: ignore[method-assign]
        log.probe_write = probe  # type: ignore[method-assign]


def test_a_failed_commit_answers_503_and_the_bus_resumes_by_itself(market_api) -> None:
    api = market_api
    api.push_all_marks()
    before = api.place(client_order_id="before-outage")
    outage = Outage(api.system.log)
    outage.down.set()

    # The commit of this order fails: the caller is told so, in the error shape.
    r = api.order(client_order_id="during-outage")
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["error"]["code"] == "STORAGE_UNAVAILABLE"
    assert "retry" in body["error"]["message"]
    assert int(r.headers["Retry-After"]) >= 1
    # Every later command is refused at once, kill switches and cancels included.
    assert api.order(client_order_id="during-outage-2").status_code == 503
    assert api.control("reduce-only").status_code == 503
    assert api.delete(f"/api/v1/orders/{before['id']}", "trader").status_code == 503
    ready = api.get("/readyz", None)
    assert ready.status_code == 503
    assert any("not writable" in p for p in ready.json()["problems"])
    # Reads keep working, and never show what was not committed.
    api.wait_for(lambda: api.system.bus._engine_dirty is False, "the engine rebuilt")
    coids = [o["client_order_id"] for o in api.ok(api.get("/api/v1/orders"))["items"]]
    assert "during-outage" not in coids and "before-outage" in coids

    outage.down.clear()
    api.wait_for(lambda: api.system.bus.writable, "the bus to accept commands again",
                 timeout=15)
    after = api.place(client_order_id="after-outage")
    assert after["status"] == "accepted"
    # The retried order is new (its first attempt left nothing behind).
    retried = api.ok(api.order(client_order_id="during-outage"), 201)
    assert retried["client_order_id"] == "during-outage"
    assert api.ok(api.get(f"/api/v1/orders/{before['id']}"))["status"] == "accepted"
    api.push_all_marks()
    assert api.get("/readyz", None).status_code == 200
    api.settle()
    replayed = replay_file(api.system.settings.database_url)
    live = api.system.engine.state
    assert replayed.comparable() == live.comparable()


def test_market_data_during_an_outage_is_applied_after_it(market_api) -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    from app.domain.market import MarkPrice, Quote

    api = market_api
    outage = Outage(api.system.log)
    outage.down.set()
    assert api.order(client_order_id="fails").status_code == 503
    now = datetime.now(UTC)
    api.push(Quote("paper-binance", "BTC-PERP", Decimal("61000.0"), Decimal(1),
                   Decimal("61000.1"), Decimal(1), now),
             MarkPrice("paper-binance", "BTC-PERP", Decimal("61000.0"), now))
    outage.down.clear()
    api.wait_for(lambda: api.system.bus.writable, "writes to work again", timeout=15)

    def marked() -> bool:
        rows = api.ok(api.get("/api/v1/markets", "viewer"))
        btc = next(m for m in rows if m["symbol"] == "BTC-PERP"
                   and m["venue"] == "paper-binance")
        return btc["mark"] == "61000.0" and btc["bid"] == "61000.0"

    api.wait_for(marked, "the mark and quote held during the outage")
