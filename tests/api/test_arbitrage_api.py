"""/api/v1/arb end to end on a started server: operators start and stop the
funding-rate arbitrage, anyone who may see its client reads it, and a forced
leg-out (the second venue's book runs away from the hedge) is detected, hedged at
market, counted and reported (seed 001)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import yaml

from app.domain.market import FundingRate, MarkPrice, Quote, TradePrint
from app.domain.orders import Side
from app.store.tables import ArbLegOutRow, ArbTradeRow, AuditRow
from tests.api.conftest import NO_RISK_CONTROLS, Api

A, B = "paper-binance", "paper-bybit"


def arb_config(tmp_path: Path, **params: object) -> Path:
    """The test servers' configuration plus an arbitrage that takes any edge on BTC."""
    config = yaml.safe_load(NO_RISK_CONTROLS.read_text())
    config["arbitrage"] = {"params": {"symbols": ["BTC-PERP"], "min_confidence": 0,
                                      "min_edge_ratio": "0",
                                      "persistence_full_s": 0, "min_hold_s": 0, **params}}
    path = tmp_path / "arb.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def quote(api: Api, venue: str, bid: str, ask: str, size: str) -> None:
    now = datetime.now(UTC)
    api.push(Quote(venue, "BTC-PERP", D(bid), D(size), D(ask), D(size), now),
             MarkPrice(venue, "BTC-PERP", (D(bid) + D(ask)) / 2, now))


def diverging_market(api: Api) -> None:
    """B (the thinner book) pays shorts 0.1 % a period, A charges longs 0.01 %."""
    quote(api, A, "60000.0", "60000.1", "5")
    quote(api, B, "60000.0", "60000.1", "1")
    now = datetime.now(UTC)
    at = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=8)
    api.push(FundingRate(A, "BTC-PERP", D("0.0001"), at, now),
             FundingRate(B, "BTC-PERP", D("0.0010"), at, now))
    api.settle()


def test_reads_are_scoped_and_changes_are_for_operators(make_api: Callable[..., Api],
                                                        tmp_path: Path) -> None:
    api = make_api(config=arb_config(tmp_path, enabled_entries=False))
    status = api.ok(api.get("/api/v1/arb", "viewer"))
    assert (status["status"], status["running"], status["client"]) == ("not_started", False,
                                                                       "arb")
    for who in ("viewer", "trader"):
        assert api.post("/api/v1/arb/start", who, json={}).status_code == 403
    # An operator scoped to another client learns nothing of the arbitrage.
    assert api.get("/api/v1/arb/portfolio", "scoped").status_code == 403
    assert api.post("/api/v1/arb/start", "scoped", json={}).status_code == 403
    assert api.post("/api/v1/arb/stop", "operator", json={}).status_code == 404  # never started
    started = api.ok(api.post("/api/v1/arb/start", "operator", json={"reason": "desk"}))
    assert started["running"] and started["params"]["starting_capital"] == "20000"
    again = api.ok(api.post("/api/v1/arb/start", "operator", json={}))
    assert api.post("/api/v1/arb/start", "operator").status_code == 422  # a body it is
    assert again["running"]
    changed = api.ok(api.request("PUT", "/api/v1/arb/config", "operator",
                                 json={"params": {"starting_capital": "50000"},
                                       "reason": "more capital"}))
    assert changed["params"]["starting_capital"] == "50000"
    assert changed["params"]["min_confidence"] == 0, "the other parameters are kept"
    bad = api.request("PUT", "/api/v1/arb/config", "operator",
                      json={"params": {"leg_timeout_ms": 10}})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "INVALID_PARAMS"
    stopped = api.ok(api.post("/api/v1/arb/stop", "operator", json={"reason": "done"}))
    assert not stopped["running"]
    actions = [r.action for r in api.rows(AuditRow) if r.action.startswith("strategy-")]
    assert actions[:2] == ["strategy-create", "strategy-start"]
    assert "strategy-config" in actions and actions[-1] == "strategy-stop"
    portfolio = api.ok(api.get("/api/v1/arb/portfolio", "viewer"))
    assert portfolio["starting_capital"] == "50000" and portfolio["total_trades"] == 0


def test_a_forced_leg_out_is_detected_hedged_counted_and_reported(
        make_api: Callable[..., Api], tmp_path: Path) -> None:
    api = make_api(config=arb_config(tmp_path))
    diverging_market(api)
    opportunities = api.ok(api.get("/api/v1/arb/opportunities", "viewer"))
    (btc,) = opportunities
    assert (btc["long_venue"], btc["short_venue"], btc["harder_venue"]) == (A, B, B)
    assert btc["candidate"] and D(btc["projected_profit"]) > 0
    api.ok(api.post("/api/v1/arb/start", "operator", json={}))

    def trades(status: str = "all") -> list[dict]:
        return api.ok(api.get("/api/v1/arb/trades", "viewer", params={"status": status}))

    api.wait_for(lambda: len(trades("open")) == 1, "the entry on B")
    (trade,) = trades("open")
    assert trade["status"] == "pending" and trade["harder_venue"] == B
    # A's offer runs away beyond the hedge's allowance; then B's entry fills in part.
    quote(api, A, "60100.0", "60100.1", "5")
    api.push(TradePrint(B, "BTC-PERP", D("60000.1"), D("1.05"), Side.BUY, datetime.now(UTC)))
    api.wait_for(lambda: bool(api.ok(api.get("/api/v1/arb/leg-outs", "viewer"))),
                 "the leg-out", timeout=10)
    (leg_out,) = api.ok(api.get("/api/v1/arb/leg-outs", "viewer"))
    assert (leg_out["phase"], leg_out["filled_leg"], leg_out["filled_venue"]) == (
        "entry", "short", B)
    assert leg_out["filled_qty"] == "0.05" and leg_out["hedge_executed"]
    assert D(leg_out["loss"]) > 0
    api.wait_for(lambda: not trades("open"), "the trade to close")
    (closed,) = trades("closed")  # (from the store's projection of the trades)
    assert closed["status"] == "legged_out" and closed["exit_reason"] == "leg_out"
    older = api.ok(api.get("/api/v1/arb/trades", "viewer",
                           params={"status": "closed", "before": closed["created_at"]}))
    assert older == [], "the next page back is empty"
    [row] = api.rows(ArbTradeRow)
    assert row.status == "legged_out" and row.actual_profit == D(closed["actual_profit"])
    [leg_row] = api.rows(ArbLegOutRow)
    assert (leg_row.trade_id, leg_row.phase) == (closed["trade_id"], "entry")
    # Nothing naked: both venues flat again.
    positions = api.ok(api.get("/api/v1/positions", "viewer", params={"client": "arb"}))
    assert all(D(p["qty"]) == 0 for p in positions)
    portfolio = api.ok(api.get("/api/v1/arb/portfolio", "viewer"))
    assert (portfolio["total_trades"], portfolio["losses"], portfolio["leg_out_count"]) == (
        1, 1, 1)
    assert D(portfolio["cumulative_pnl"]) == D(closed["actual_profit"]) == -D(leg_out["loss"])
    assert D(portfolio["available_capital"]) + D(portfolio["total_open_positions"]) == \
        D(portfolio["starting_capital"]) + D(portfolio["cumulative_pnl"])
    assert D(portfolio["leg_out_loss"]) == D(leg_out["loss"])
