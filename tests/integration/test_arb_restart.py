"""An arbitrage trade that is on when the real server is killed is managed to its exit
by the next server on the same database (seed 001: the trade's state machine
survives a restart in whatever state it was).

``perpdesk serve`` runs as a subprocess on a SQLite file with the synthetic feed;
the arbitrage starts with the server and takes any edge, so a trade opens within
seconds; the server is SIGKILLed with it active, started again, and an exit is
made due (funding convergence at any delta), which the restarted strategy takes.
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import httpx

from tests.integration.test_crash_recovery import Server, clean_env, create_key

CONFIG_YAML = """\
venues:
  - {name: paper-binance, profile: binance-usdm, queue_model: volume_threshold}
  - {name: paper-bybit, profile: bybit-v5, queue_model: volume_threshold}
arbitrage:
  autostart: true
  params:
    min_confidence: 0
    min_edge_ratio: "0"
    min_entry_delta: "0"
    convergence_delta: "0"
    horizon_hours: "720"
    profit_target: "10"
    loss_limit: "10"
    min_hold_s: 0
    cooldown_s: 0
"""


def _trades(http: httpx.Client, status: str) -> list[dict]:
    response = http.get("/api/v1/arb/trades", params={"status": status})
    assert response.status_code == 200, response.text
    return response.json()


def _wait(what: str, check, timeout: float):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_an_active_trade_is_managed_to_its_exit_after_a_sigkill(tmp_path: Path) -> None:
    config = tmp_path / "perpdesk.yaml"
    config.write_text(CONFIG_YAML)
    url = f"sqlite:///{tmp_path / 'arb.db'}"
    env = clean_env(url, config)
    key = create_key(url, env, tmp_path)
    headers = {"Authorization": f"Bearer {key}"}

    first = Server(url, env, tmp_path, "first")
    first.start()
    try:
        first.wait_ready()
        with httpx.Client(base_url=first.base_url, headers=headers, timeout=5) as http:
            active = _wait("an active arbitrage trade",
                           lambda: [t for t in _trades(http, "open")
                                    if t["status"] == "active"], timeout=120)
            trade = active[0]
    finally:
        first.kill()

    second = Server(url, env, tmp_path, "second")
    second.start()
    try:
        second.wait_ready()
        with httpx.Client(base_url=second.base_url, headers=headers, timeout=5) as http:
            status = http.get("/api/v1/arb").json()
            assert status["running"], "the arbitrage resumed with the server"
            again = {t["trade_id"]: t for t in _trades(http, "open")}
            assert trade["trade_id"] in again, "the trade is still there after the kill"
            # Make its exit due: the delta is below any convergence threshold now.
            changed = http.put("/api/v1/arb/config", json={
                "params": {"convergence_delta": "0.05", "min_entry_delta": "0.05",
                           "convergence_checks": 1, "enabled_entries": False},
                "reason": "test: exit everything"})
            assert changed.status_code == 200, changed.text

            def closed() -> dict | None:
                done = {t["trade_id"]: t for t in _trades(http, "closed")}
                return done.get(trade["trade_id"])

            exited = _wait("the restarted strategy to exit the trade", closed, timeout=60)
            assert exited["status"] == "closed"
            assert exited["exit_reason"] in ("funding_convergence", "position_mismatch")
            _wait("every open trade to finish", lambda: not _trades(http, "open"), 60)
            positions = http.get("/api/v1/positions", params={"client": "arb"}).json()
            assert all(Decimal(p["qty"]) == 0 for p in positions)
            portfolio = http.get("/api/v1/arb/portfolio").json()
            assert Decimal(portfolio["available_capital"]) == (
                Decimal(portfolio["starting_capital"]) + Decimal(portfolio["cumulative_pnl"]))
    finally:
        second.stop()
