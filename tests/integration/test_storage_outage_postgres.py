"""The real server on real PostgreSQL loses its writes in the middle of an order storm
(another session holds an EXCLUSIVE lock on the event log, so every append waits its
``lock_timeout`` and fails), then gets them back (issue 8).

Callers get 503 STORAGE_UNAVAILABLE, /readyz says not ready, nothing acknowledged is
lost, the server's state equals a replay of the log, orders are accepted again without
a restart, and SIGTERM stops the server within seconds even while writes fail.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.integration.test_crash_recovery import (
    CONFIG_YAML,
    REQUEST_TIMEOUT,
    WORKERS,
    Server,
    Storm,
    assert_acks_stand,
    assert_matches_log,
    clean_env,
    create_key,
)

LOCK_TIMEOUT_MS = 500
OUTAGE_SECONDS = 3.0


class EventLogLock:
    """Another session's EXCLUSIVE lock on ``event_log``: reads go on, writes wait."""

    def __init__(self, url: str):
        self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        self.conn: sa.Connection | None = None

    def take(self) -> None:
        self.conn = self.engine.connect()
        self.conn.begin()
        self.conn.execute(sa.text("LOCK TABLE event_log IN EXCLUSIVE MODE"))

    def release(self) -> None:
        if self.conn is not None:
            self.conn.rollback()
            self.conn.close()
            self.conn = None

    def close(self) -> None:
        self.release()
        self.engine.dispose()


def _wait(predicate, what: str, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def test_writes_refused_mid_storm_then_back(postgres_url: str, tmp_path: Path) -> None:
    config = tmp_path / "trading.yaml"
    config.write_text(CONFIG_YAML)
    env = clean_env(postgres_url, config)
    env["PERPDESK_DB_LOCK_TIMEOUT_MS"] = str(LOCK_TIMEOUT_MS)
    key = create_key(postgres_url, env, tmp_path)
    headers = {"Authorization": f"Bearer {key}"}
    server = Server(postgres_url, env, tmp_path, "outage")
    lock = EventLogLock(postgres_url)
    threads: list[threading.Thread] = []
    storm: Storm | None = None
    try:
        server.start()
        server.wait_ready()
        http = httpx.Client(base_url=server.base_url, headers=headers, timeout=10)
        markets = [m for m in http.get("/api/v1/markets").json()
                   if m["bid"] is not None and m["ask"] is not None]
        storm = Storm(server.base_url, key, markets)
        threads = [threading.Thread(target=storm.worker, args=(i,), daemon=True)
                   for i in range(WORKERS)]
        for t in threads:
            t.start()
        time.sleep(1.0)

        # ---- writes go away in the middle of the storm -----------------------------
        lock.take()
        took_at = time.monotonic()
        _wait(lambda: http.get("/readyz").status_code == 503, "/readyz to say not ready",
              timeout=10)
        problems = http.get("/readyz").json()["problems"]
        assert any("not writable" in p for p in problems), problems
        refused = http.post("/api/v1/orders", json={
            "client": "demo", "venue": "paper-binance", "symbol": "BTC-PERP",
            "side": "buy", "type": "market", "qty": "0.001",
            "client_order_id": "during-the-outage"})
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "STORAGE_UNAVAILABLE"
        assert "Retry-After" in refused.headers
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - took_at)))
        lock.release()

        # ---- and come back: no restart ----------------------------------------------
        back_after = _wait(lambda: http.get("/readyz").status_code == 200,
                           "/readyz to be ready again", timeout=20)
        time.sleep(1.0)
        storm.stop.set()
        for t in threads:
            t.join(timeout=REQUEST_TIMEOUT + 5)
        assert not any(t.is_alive() for t in threads), "a storm client hung"
        assert not storm.errors, f"requests failed outright: {storm.errors[:5]}"
        assert not storm.unexpected, storm.unexpected[:5]
        assert storm.unavailable, "no caller was told the log could not be written"
        assert len(storm.acks) >= 40, len(storm.acks)
        acks_after = [a for a in storm.acks if a.client_order_id]
        print(f"\noutage test: {len(storm.acks)} acks, {len(storm.unavailable)} answered 503, "
              f"ready again {back_after:.2f} s after the lock was released")

        # The order refused during the outage never happened: its retry is new.
        retried = http.post("/api/v1/orders", json={
            "client": "demo", "venue": "paper-binance", "symbol": "BTC-PERP",
            "side": "buy", "type": "market", "qty": "0.001",
            "client_order_id": "during-the-outage"})
        assert retried.status_code == 201, retried.text
        assert_acks_stand(http, acks_after)
        assert_matches_log(http, postgres_url, config)

        # ---- SIGTERM while writes fail: the server still stops within seconds ---------
        lock.take()
        _wait(lambda: http.post("/api/v1/orders", json={
            "client": "demo", "venue": "paper-binance", "symbol": "BTC-PERP",
            "side": "buy", "type": "market", "qty": "0.001"}).status_code == 503,
            "a 503 under the second lock", timeout=10)
        http.close()
        assert server.proc is not None
        started = time.monotonic()
        server.proc.terminate()
        server.proc.wait(timeout=15)
        assert time.monotonic() - started < 12, "SIGTERM took too long"
    finally:
        if storm is not None:
            storm.stop.set()
        for t in threads:
            t.join(timeout=1)
        lock.close()
        server.kill()
