"""/readyz names a paper book that is invalid (a feed gap) or stale, and drops it again
once a snapshot arrives. The app runs in-process (TestClient, lifespan included) on a
fresh SQLite file with no feed, so only what the test pushes moves."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from app.config import Settings
from app.domain.market import BookInvalidated, BookSnapshot, MarketUpdate, MarkPrice
from app.server import create_app

with warnings.catch_warnings():  # starlette nags about httpx2; httpx is what we test with
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

VENUES = ("paper-binance", "paper-bybit")
MARKS = {"BTC-PERP": "60000.0", "ETH-PERP": "3000.00", "SOL-PERP": "150.00",
         "XRP-PERP": "0.5000"}
BOOKS = "order books not ready for market orders: "


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'perpdesk.db'}", config=None,
                        migrate=True, feed="none", demo_credentials=False,
                        rate_limit_per_s=0, stale_mark_seconds=3600.0,
                        session_secret="perpdesk-readyz-books-test-secret-0123456789")
    with TestClient(create_app(settings)) as client:
        yield client


def push(client: TestClient, *updates: MarketUpdate) -> None:
    system = client.app.state.system
    for update in updates:
        client.portal.call(system.on_market, update)


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def problems(client: TestClient) -> list[str]:
    return client.get("/readyz").json()["problems"]


def book_problems(client: TestClient) -> list[str]:
    return [p for p in problems(client) if p.startswith(BOOKS)]


def snapshot(at: datetime) -> BookSnapshot:
    return BookSnapshot("paper-binance", "BTC-PERP", ((Decimal("60000.0"), Decimal(1)),),
                        ((Decimal("60000.1"), Decimal(1)),), at)


def test_readyz_lists_an_invalid_book_until_the_next_snapshot(client: TestClient) -> None:
    now = datetime.now(UTC)
    push(client, *(MarkPrice(v, s, Decimal(p), now) for v in VENUES for s, p in MARKS.items()))
    push(client, snapshot(now))
    wait_for(lambda: client.get("/readyz").status_code == 200, "/readyz ready")

    push(client, BookInvalidated("paper-binance", "BTC-PERP", "gap: u=9 after u=7", now))
    wait_for(lambda: bool(book_problems(client)), "the invalid book on /readyz")
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["problems"] == [
        BOOKS + "paper-binance:BTC-PERP (invalid (gap: u=9 after u=7))"]

    push(client, snapshot(datetime.now(UTC)))
    wait_for(lambda: client.get("/readyz").status_code == 200, "/readyz ready again")


def test_readyz_lists_a_stale_book(client: TestClient) -> None:
    old = datetime.now(UTC) - timedelta(minutes=5)
    push(client, snapshot(old))
    wait_for(lambda: bool(book_problems(client)), "the stale book on /readyz")
    (problem,) = book_problems(client)
    assert problem.startswith(BOOKS + "paper-binance:BTC-PERP (stale (last update ")
    assert problem.endswith(" s ago, limit 30 s))")
