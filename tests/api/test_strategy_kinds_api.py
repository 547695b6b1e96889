"""The built-in trend kinds through /api/v1/strategies: listed with their parameter
schemas, created with seed defaults filled in, started, reconfigured and stopped;
bad parameters are a 422 naming the field."""

from __future__ import annotations

import pytest


def test_the_trend_kinds_are_listed_with_their_parameters(api):
    # The kinds' JSON schemas carry pydantic's numeric bounds of decimal fields as
    # JSON numbers (the demo kind's too), so this read skips the float-walker.
    response = api.client.get("/api/v1/strategies/kinds", headers=api.headers("admin"))
    listed = {k["name"]: k for k in api.ok(response)}
    assert {"ma_crossover", "atr_trend"} <= set(listed)
    atr = listed["atr_trend"]["params"]["properties"]
    for knob in ("htf_interval", "atr_stop_multiple", "hard_stop_min_pct",
                 "max_ema_distance_atr", "wick_atr_buffer", "atr_risk_scaling_threshold"):
        assert knob in atr
    ma = listed["ma_crossover"]["params"]["properties"]
    assert {"ma_cross_epsilon_bps", "ma_cross_confirm_bars", "stop_pct"} <= set(ma)


@pytest.mark.parametrize(("kind", "params", "defaults"), [
    ("ma_crossover", {"fast_period": 9, "slow_period": 21, "ma_cross_confirm_bars": 1,
                      "max_spread_bps": "10", "min_l1_depth": "50000",
                      "sizing_mode": "conservative"},
     {"ma_cross_epsilon_bps": "1", "stop_pct": "2", "limit_offset_bps": "5"}),
    ("atr_trend", {"symbol": "ETH-PERP", "atr_stop_multiple": "2", "tp2_multiple": "3",
                   "use_rsi_filter": True, "max_bars_in_trade": 36},
     {"htf_interval": "1h", "entry_interval": "5m", "atr_period": 14,
      "trend_ema_period": 200}),
])
def test_create_start_configure_stop(api, kind, params, defaults):
    created = api.ok(api.post("/api/v1/strategies", json={
        "kind": kind, "client": "demo", "venue": "paper-binance", "params": params,
        "id": f"{kind}-1", "start": True, "reason": "test"}), 201)
    assert created["kind"] == kind and created["status"] == "running"
    for name, value in {**params, **defaults}.items():
        assert created["params"][name] == value
    changed = api.ok(api.request("PUT", f"/api/v1/strategies/{kind}-1/config", "admin",
                                 json={"params": {**params, "sizing_mode": "strict"},
                                       "reason": "tighter"}))
    assert changed["params"]["sizing_mode"] == "strict"
    stopped = api.ok(api.post(f"/api/v1/strategies/{kind}-1/stop", json={"reason": "done"}))
    assert stopped["status"] == "stopped"


@pytest.mark.parametrize(("kind", "params", "field"), [
    ("ma_crossover", {"ma_cross_epsilon_bps": "-1"}, "ma_cross_epsilon_bps"),
    ("ma_crossover", {"fastPeriod": 3}, "fastPeriod"),
    ("atr_trend", {"atr_period": 0}, "atr_period"),
    ("atr_trend", {"htf_interval": "1w"}, "htf_interval"),
])
def test_bad_parameters_are_refused_naming_the_field(api, kind, params, field):
    response = api.post("/api/v1/strategies", json={
        "kind": kind, "client": "demo", "venue": "paper-binance", "params": params})
    assert response.status_code == 422
    assert field in response.text


def test_the_dashboard_panel_shows_each_strategy_with_state_position_and_signal(api):
    from app.auth.principal import Principal, Role
    from app.web.routes import render_fragment

    api.ok(api.post("/api/v1/strategies", json={
        "kind": "atr_trend", "client": "demo", "venue": "paper-binance",
        "params": {"symbol": "BTC-PERP"}, "id": "trend-btc", "start": True}), 201)
    api.ok(api.post("/api/v1/strategies", json={
        "kind": "ma_crossover", "client": "demo-2", "venue": "paper-bybit",
        "params": {"symbol": "ETH-PERP"}, "id": "cross-eth"}), 201)
    admin = Principal("admin", Role.ADMIN, None, "session")
    html = render_fragment(api.system, "strategies", admin, {}, oob=False)
    assert 'data-strategy="trend-btc"' in html and 'data-strategy="cross-eth"' in html
    assert "running" in html and "stopped" in html
    assert "BTC-PERP" in html and "ETH-PERP" in html and "flat" in html
    # Scoped: a principal of demo-2 sees only its own.
    scoped = Principal("s", Role.VIEWER, frozenset({"demo-2"}), "session")
    html = render_fragment(api.system, "strategies", scoped, {}, oob=False)
    assert "cross-eth" in html and "trend-btc" not in html


STRATEGIES_YAML = """
strategies:
  - id: trend-btc
    kind: atr_trend
    client: demo
    venue: paper-binance
    params: {symbol: BTC-PERP, atr_stop_multiple: "2", max_bars_in_trade: 36,
             use_rsi_filter: true}
  - id: cross-eth
    kind: ma_crossover
    client: demo-2
    venue: paper-bybit
    params: {symbol: ETH-PERP, ma_cross_epsilon_bps: "2", ma_cross_confirm_bars: 1}
    start: false
"""


def test_strategies_from_the_yaml_file_are_created_once(make_api, tmp_path):
    path = tmp_path / "with-strategies.yaml"
    path.write_text(STRATEGIES_YAML)
    api = make_api(config=path)
    listed = {s["id"]: s for s in api.ok(api.get("/api/v1/strategies"))}
    assert listed["trend-btc"]["status"] == "running"
    assert listed["trend-btc"]["params"]["atr_stop_multiple"] == "2"
    assert listed["trend-btc"]["params"]["hard_stop_min_pct"] == "0.5"  # the default
    assert listed["cross-eth"]["status"] == "stopped"
    assert listed["cross-eth"]["params"]["ma_cross_confirm_bars"] == 1


@pytest.mark.parametrize("bad", [
    "strategies: [{id: a, kind: atr_trend, client: demo, venue: paper-binance, "
    "params: {atrStopMultiple: '2'}}]",
    "strategies: [{id: a, kind: nope, client: demo, venue: paper-binance}]",
    "strategies: [{id: a, kind: ma_crossover, client: demo, venue: paper-binance, "
    "params: {fast_period: 50, slow_period: 10}}]",
])
def test_bad_strategies_in_the_yaml_file_are_refused_at_load(tmp_path, bad):
    from app.config import load_trading_config

    path = tmp_path / "bad.yaml"
    path.write_text(bad)
    with pytest.raises(ValueError):
        load_trading_config(path)
