"""A tripped circuit breaker is still tripped after the real server is killed and
started again on the same database (seed 004 Fix Pack 3), and only an operator's
reset gives trading back.

``perpdesk serve`` runs as a subprocess on a SQLite file with the synthetic feed;
the demo client's profile trips after a single losing trade.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.integration.test_crash_recovery import Server, clean_env, create_key

CONFIG_YAML = """\
limits: {}
risk:
  default:
    price_band_pct: null
    breakers: {consecutive_losses: 1, daily_loss_pct: null, max_drawdown_pct: null}
"""


def _wait_for_book(http: httpx.Client) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        markets = http.get("/api/v1/markets").json()
        if any(m["symbol"] == "BTC-PERP" and m["bid"] for m in markets):
            return
        time.sleep(0.1)
    raise AssertionError("no BTC-PERP book from the synthetic feed")


def _order(http: httpx.Client, side: str) -> httpx.Response:
    return http.post("/api/v1/orders", json={
        "client": "demo", "venue": "paper-binance", "symbol": "BTC-PERP", "side": side,
        "type": "market", "qty": "0.001"})


def _breaker(http: httpx.Client) -> dict:
    body = http.get("/api/v1/risk/demo").json()
    return {b["breaker"]: b for b in body["breakers"]}["consecutive_losses"]


def test_a_tripped_breaker_survives_a_sigkill(tmp_path: Path) -> None:
    config = tmp_path / "perpdesk.yaml"
    config.write_text(CONFIG_YAML)
    url = f"sqlite:///{tmp_path / 'breaker.db'}"
    env = clean_env(url, config)
    key = create_key(url, env, tmp_path)
    headers = {"Authorization": f"Bearer {key}"}

    first = Server(url, env, tmp_path, "first")
    first.start()
    try:
        first.wait_ready()
        with httpx.Client(base_url=first.base_url, headers=headers, timeout=5) as http:
            _wait_for_book(http)
            for _ in range(5):  # buy at the ask, sell at the bid: a loss, unless the
                assert _order(http, "buy").status_code == 201  # market jumped between
                assert _order(http, "sell").status_code == 201
                if _breaker(http)["tripped"]:
                    break
            trip = _breaker(http)["tripped"]
            assert trip is not None and trip["state"] == "reduce_only"
    finally:
        first.kill()

    second = Server(url, env, tmp_path, "second")
    second.start()
    try:
        second.wait_ready()
        with httpx.Client(base_url=second.base_url, headers=headers, timeout=5) as http:
            _wait_for_book(http)
            again = _breaker(http)["tripped"]
            assert again == trip  # the same trip, figures and all
            entry = _order(http, "buy")
            assert entry.json()["error"]["code"] == "TRADING_REDUCE_ONLY"
            reset = http.post("/api/v1/risk/demo/reset-breaker",
                              json={"breaker": "consecutive_losses", "reason": "reviewed"})
            assert reset.status_code == 200, reset.text
            assert _order(http, "buy").status_code == 201
    finally:
        second.stop()
