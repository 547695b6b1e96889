"""Crash test: SIGKILL the real server in the middle of an order storm.

The invariant (DESIGN.md): an order acknowledged to a caller is durable; after a
crash and restart it is there, in the state it was acknowledged in or a later
one. And the restarted server's positions and balances are exactly what a
replay of the stored log gives.

Per backend (SQLite file, PostgreSQL schema): create an operator key with the
CLI (which migrates the database), start ``perpdesk serve`` as a subprocess
with the synthetic feed, wait for /readyz, run 8 concurrent clients placing
limit orders away from the touch, market orders and cancels, SIGKILL the
server after ~2 s, restart it on the same database and check.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings, load_trading_config
from app.domain.orders import TRANSITIONS, OrderStatus
from app.engine.state import EngineState
from app.runtime.system import TradingSystem
from app.store.codec import decode_event
from app.store.event_log import EventLog, make_db_engine

D = Decimal
WORKERS = 8
STORM_SECONDS = 2.0
READY_TIMEOUT = 20.0
REQUEST_TIMEOUT = 5.0
MONEY = D("0.00000001")
# No position limits and no risk controls: the storm is about durability, not about the
# demo's tiny limits or its losing streaks tripping a breaker.
CONFIG_YAML = """\
limits: {}
risk:
  default:
    price_band_pct: null
    max_open_orders: null
    max_margin_ratio: null
    breakers: {consecutive_losses: null, daily_loss_pct: null, max_drawdown_pct: null}
"""


def reachable(status: OrderStatus) -> set[OrderStatus]:
    """Every status an order can be in from ``status`` on (itself included)."""
    seen, todo = {status}, [status]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(url: str, config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERPDESK_")}
    env.update(PERPDESK_DATABASE_URL=url, PERPDESK_DEMO_CREDENTIALS="0",
               PERPDESK_CONFIG=str(config), PYTHONUNBUFFERED="1")
    return env


def create_key(url: str, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "keys", "create", "--role", "operator",
         "--name", "crash-test", "--database-url", url],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip().splitlines()[0]
    assert key.startswith("pdk_"), done.stdout
    return key


@dataclass
class Server:
    """``perpdesk serve`` in a subprocess; output goes to a log file for diagnosis."""

    url: str
    env: dict[str, str]
    workdir: Path
    name: str
    port: int = 0
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    def start(self) -> None:
        self.port = free_port()
        self.log_path = self.workdir / f"{self.name}.log"
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port),
             "--database-url", self.url, "--log-level", "warning"],
            env=self.env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path else ""

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> float:
        assert self.proc is not None
        started = time.monotonic()
        last = ""
        with httpx.Client(base_url=self.base_url, timeout=2.0) as client:
            while time.monotonic() - started < timeout:
                if self.proc.poll() is not None:
                    pytest.fail(f"{self.name} exited with {self.proc.returncode}:\n"
                                f"{self.output()}")
                try:
                    r = client.get("/readyz")
                    if r.status_code == 200:
                        return time.monotonic() - started
                    last = r.text
                except httpx.HTTPError as exc:
                    last = repr(exc)
                time.sleep(0.1)
        pytest.fail(f"{self.name} not ready after {timeout} s (last: {last}):\n{self.output()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Ack:
    """One acknowledged response: what the server said the order was."""

    order_id: int
    client_order_id: str
    status: OrderStatus
    body: dict[str, Any]
    request: dict[str, Any] | None = None  # the POST body, for an idempotent retry


@dataclass
class Storm:
    base_url: str
    key: str
    markets: list[dict[str, Any]]
    acks: list[Ack] = field(default_factory=list)
    errors: list[tuple[float, str]] = field(default_factory=list)  # (monotonic time, what)
    unexpected: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: int = 0
    # 503 STORAGE_UNAVAILABLE answers (expected only where a test takes writes away).
    unavailable: list[float] = field(default_factory=list)

    def ack(self, body: dict[str, Any], request: dict[str, Any] | None = None) -> None:
        a = Ack(body["id"], body["client_order_id"], OrderStatus(body["status"]), body, request)
        with self.lock:
            self.acks.append(a)

    def worker(self, index: int) -> None:
        rng = random.Random(index)
        client_name = "demo" if index % 2 == 0 else "demo-2"
        resting: list[int] = []
        n = 0
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=self.base_url, headers=headers,
                          timeout=REQUEST_TIMEOUT) as http:
            while not self.stop.is_set():
                n += 1
                roll = rng.random()
                try:
                    if roll < 0.2 and resting:
                        oid = resting.pop(rng.randrange(len(resting)))
                        r = http.delete(f"/api/v1/orders/{oid}")
                        self._record(r, None)
                    else:
                        body = self._order(rng, client_name, f"w{index}-{n}",
                                           market=roll < 0.4)
                        r = http.post("/api/v1/orders", json=body)
                        order = self._record(r, body)
                        if order is not None and order["status"] == "accepted":
                            resting.append(order["id"])
                except httpx.HTTPError as exc:
                    with self.lock:
                        self.errors.append((time.monotonic(), repr(exc)))
                    return  # the server is gone (or broken): this client stops
                with self.lock:
                    self.sent += 1

    def _record(self, r: httpx.Response, request: dict[str, Any] | None
                ) -> dict[str, Any] | None:
        if r.status_code in (200, 201):
            body = r.json()
            self.ack(body, request)
            return body
        details = r.json().get("error", {}).get("details") or {}
        order = details.get("order")
        if order is not None:  # a recorded rejection (or cancel refused): also durable
            self.ack(order, request)
            return order
        code = r.json().get("error", {}).get("code")
        if r.status_code == 503 and code == "STORAGE_UNAVAILABLE":
            with self.lock:
                self.unavailable.append(time.monotonic())
            return None
        if code != "ORDER_NOT_OPEN":  # cancel racing a fill is fine; anything else is not
            with self.lock:
                self.unexpected.append(f"{r.status_code} {r.text[:300]}")
        return None

    def _order(self, rng: random.Random, client: str, coid: str, market: bool
               ) -> dict[str, Any]:
        m = rng.choice(self.markets)
        tick, step = D(m["tick_size"]), D(m["step_size"])
        bid, ask = D(m["bid"]), D(m["ask"])
        side = rng.choice(["buy", "sell"])
        ref = ask if side == "buy" else bid
        notional = D(rng.randint(20, 60))
        qty = max(D(m["min_qty"]), (notional / ref / step).to_integral_value(ROUND_CEILING)
                  * step)
        body: dict[str, Any] = {"client": client, "venue": m["venue"], "symbol": m["symbol"],
                                "side": side, "qty": format(qty, "f"),
                                "client_order_id": coid}
        if market:
            body["type"] = "market"
        else:
            away = D(rng.randint(100, 300)) / D(10000)  # 1–3 % from the touch
            if side == "buy":
                price = (bid * (1 - away) / tick).to_integral_value(ROUND_FLOOR) * tick
            else:
                price = (ask * (1 + away) / tick).to_integral_value(ROUND_CEILING) * tick
            body.update(type="limit", price=format(price, "f"))
        return body


def replay_until(url: str, last_seq: int, config: Path) -> EngineState:
    """A fresh state (configured accounts only) with the stored events up to ``last_seq``."""
    state = TradingSystem(Settings(database_url="sqlite://", feed="none"),
                          load_trading_config(config)).engine.state
    db = make_db_engine(url)
    try:
        log = EventLog(db)
        after = 0
        while after < last_seq:
            rows = log.read(after, 2000)
            if not rows:
                break
            for row in rows:
                if row.seq > last_seq:
                    return state
                state.apply(decode_event(row.type, row.payload))
            after = rows[-1].seq
        return state
    finally:
        db.dispose()


def last_seq(url: str) -> int:
    db = make_db_engine(url)
    try:
        return EventLog(db).last_seq()
    finally:
        db.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    fixture = {"sqlite": "sqlite_url", "postgresql": "postgres_url"}[request.param]
    return request.getfixturevalue(fixture)


def test_acknowledged_orders_survive_sigkill(database_url: str, tmp_path: Path) -> None:
    config = tmp_path / "trading.yaml"
    config.write_text(CONFIG_YAML)
    env = clean_env(database_url, config)
    key = create_key(database_url, env, tmp_path)
    headers = {"Authorization": f"Bearer {key}"}
    first = Server(database_url, env, tmp_path, "first")
    second = Server(database_url, env, tmp_path, "second")
    threads: list[threading.Thread] = []
    storm: Storm | None = None
    try:
        # ---- the storm, and the crash -------------------------------------------------
        first.start()
        first.wait_ready()
        with httpx.Client(base_url=first.base_url, headers=headers, timeout=5) as http:
            markets = [m for m in http.get("/api/v1/markets").json()
                       if m["bid"] is not None and m["ask"] is not None]
        assert len(markets) == 8
        storm = Storm(first.base_url, key, markets)
        threads = [threading.Thread(target=storm.worker, args=(i,), daemon=True)
                   for i in range(WORKERS)]
        for t in threads:
            t.start()
        time.sleep(STORM_SECONDS)
        alive_at_kill = sum(t.is_alive() for t in threads)
        killed_at = time.monotonic()
        first.kill()
        storm.stop.set()
        for t in threads:
            t.join(timeout=REQUEST_TIMEOUT + 5)
        assert not any(t.is_alive() for t in threads), "a storm client hung"
        assert first.proc is not None and first.proc.returncode == -signal.SIGKILL

        acks = list(storm.acks)
        assert alive_at_kill == WORKERS, f"clients died before the crash: {storm.errors}"
        early = [e for t, e in storm.errors if t < killed_at]
        assert not early, f"requests failed before the crash: {early}"
        assert not storm.unexpected, storm.unexpected[:5]
        assert len(acks) >= 40, f"the storm was too small to mean anything ({len(acks)} acks)"
        statuses = {a.status for a in acks}
        assert OrderStatus.FILLED in statuses and OrderStatus.ACCEPTED in statuses
        assert OrderStatus.CANCELED in statuses
        coids = {(a.body["client"], a.body["venue"], a.client_order_id): a.order_id
                 for a in acks}
        assert len(set(coids.values())) == len(coids), "two orders share a client_order_id"

        # ---- restart on the same database ---------------------------------------------
        second.start()
        ready_after = second.wait_ready()
        counts = {s.value: sum(a.status is s for a in acks) for s in statuses}
        print(f"\ncrash test: {len(acks)} acks in {STORM_SECONDS:g} s from {WORKERS} clients "
              f"({storm.sent} requests answered, {len(storm.errors)} cut off by the kill); "
              f"{counts}; restarted and ready in {ready_after:.2f} s")
        with httpx.Client(base_url=second.base_url, headers=headers, timeout=10) as http:
            assert_acks_stand(http, acks)
            assert_matches_log(http, database_url, config)
    finally:
        if storm is not None:
            storm.stop.set()
        first.kill()
        second.kill()
        for t in threads:
            t.join(timeout=1)


def assert_acks_stand(http: httpx.Client, acks: list[Ack]) -> None:
    """Every acknowledged order is there, as acknowledged or further in its lifecycle,
    and a retry of its client_order_id returns it."""
    lost, regressed = [], []
    for a in acks:
        r = http.get(f"/api/v1/orders/{a.order_id}")
        if r.status_code != 200:
            lost.append((a.order_id, a.client_order_id, a.status.value, r.status_code))
            continue
        now = r.json()
        for name in ("client_order_id", "client", "venue", "symbol", "side", "type",
                     "qty", "price"):
            assert now[name] == a.body[name], (a.order_id, name)
        if OrderStatus(now["status"]) not in reachable(a.status):
            regressed.append((a.order_id, a.status.value, now["status"]))
    assert not lost, f"{len(lost)} acknowledged orders lost: {lost[:10]}"
    assert not regressed, f"orders went back in their lifecycle: {regressed[:10]}"

    # client_order_id idempotency: a retry returns the first order.
    retried = [a for a in acks if a.request is not None
               and a.status is not OrderStatus.REJECTED][:6]
    assert retried
    for a in retried:
        r = http.post("/api/v1/orders", json=a.request)
        assert r.status_code == 200, r.text
        assert r.json()["id"] == a.order_id


def assert_matches_log(http: httpx.Client, database_url: str, config: Path) -> None:
    """The server's positions and balances are exactly a replay of the stored log."""
    # Quiet the market side (nothing may fill any more), then compare with the log.
    assert http.delete("/api/v1/orders").status_code == 200
    for _ in range(20):
        seq_before = last_seq(database_url)
        positions = http.get("/api/v1/positions", params={"include_flat": "true"}).json()
        balances = http.get("/api/v1/balances").json()
        time.sleep(0.1)
        if last_seq(database_url) == seq_before:
            break
    else:
        pytest.fail("the log kept growing after every order was canceled")
    replayed = replay_until(database_url, seq_before, config)

    api_positions = {(p["client"], p["venue"], p["symbol"]): p for p in positions}
    assert set(api_positions) == set(replayed.positions)
    assert any(p.qty for p in replayed.positions.values()), "no position was opened"
    for k, p in replayed.positions.items():
        got = api_positions[k]
        assert D(got["qty"]) == p.qty, k
        assert D(got["avg_entry_price"]) == p.avg_entry, k
        assert D(got["realized_pnl"]) == p.realized_pnl.quantize(MONEY), k
        assert D(got["fees"]) == p.fees.quantize(MONEY), k
        assert D(got["funding"]) == p.funding.quantize(MONEY), k
    api_balances = {(b["client"], b["venue"]): b for b in balances}
    assert set(api_balances) == set(replayed.accounts)
    for k, acct in replayed.accounts.items():
        got = api_balances[k]
        for name in ("wallet", "realized_pnl", "fees", "funding", "deposits",
                     "withdrawals"):
            assert D(got[name]) == getattr(acct, name).quantize(MONEY), (k, name)
        assert acct.deposits == D(20000)  # funded once, not again on a restart
