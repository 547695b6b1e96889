"""/api/v1/signals: signals in over HTTP, orders (or the reason for none) out, and the
clients' signal order parameters (operator, audited)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from app.store.tables import AuditRow

SIGNALS = "/api/v1/signals"
PARAMS = "/api/v1/signals/params/demo"
NO_RISK = Path(__file__).resolve().parent.parent / "no_risk_controls.yaml"
BID, ASK, ONE = Decimal("60000.0"), Decimal("60000.1"), Decimal(1)


@pytest.fixture
def signal_api(make_api, tmp_path):
    """The test demo with fixed-size signals (0.005) and a 3 % / 1.5 % bracket for
    ``demo`` from the YAML, and BTC quoted."""
    config = yaml.safe_load(NO_RISK.read_text())
    config["signals"] = {"candle_seconds": 60, "clients": {"demo": {
        "size_mode": "fixed", "fixed_qty": "0.005", "exit_mode": "fixed_pct",
        "take_profit_pct": "3", "stop_loss_pct": "1.5"}}}
    path = tmp_path / "signals.yaml"
    path.write_text(yaml.safe_dump(config))
    api = make_api(config=path)
    api.push_btc()
    return api


def body(**fields):
    return {"client": "demo", "venue": "paper-binance", "symbol": "BTC-PERP", "signal": 1,
            "at": datetime.now(UTC).isoformat(), "strategy": "ma-cross", **fields}


def test_a_signal_places_an_entry_with_its_bracket(signal_api) -> None:
    api = signal_api
    sent = body(signal_id="s-1", strength="1")
    created = api.ok(api.post(SIGNALS, "trader", json=sent), 201)
    assert (created["signal_id"], created["reason"], created["resolved"]) == ("s-1", None,
                                                                               True)
    (entry,) = created["orders"]
    assert (entry["side"], entry["type"], entry["time_in_force"], entry["status"]) == (
        "buy", "limit", "ioc", "filled")
    assert (entry["qty"], entry["strategy"], entry["signal_id"]) == ("0.005", "ma-cross",
                                                                     "s-1")
    bracket = created["bracket"]
    assert bracket["bracket_id"] == entry["id"] and bracket["protected_qty"] == "0.005"
    assert (bracket["take_profit_frac"], bracket["stop_loss_frac"]) == ("0.03", "0.015")
    tp, sl = bracket["legs"]
    assert (tp["type"], sl["type"]) == ("take_profit", "stop")
    for leg in (tp, sl):
        assert leg["reduce_only"] and leg["qty"] == "0.005" and leg["side"] == "sell"
        assert (leg["strategy"], leg["signal_id"]) == ("ma-cross", "s-1")
    # A retry answers the first signal; the id with another signal is refused.
    again = api.post(SIGNALS, "trader", json=sent)
    assert again.status_code == 200 and again.json()["orders"][0]["id"] == entry["id"]
    clash = api.post(SIGNALS, "trader", json={**sent, "signal": -1})
    assert clash.status_code == 409
    assert clash.json()["error"]["code"] == "DUPLICATE_SIGNAL_ID"
    # Read back by anyone who sees the client.
    read = api.ok(api.get(f"{SIGNALS}/s-1", "viewer"))
    assert read["orders"][0]["id"] == entry["id"] and read["bracket"]["closed"] is None


def test_a_signal_without_an_order_says_why(signal_api) -> None:
    api = signal_api
    flat = api.ok(api.post(SIGNALS, "trader", json=body(signal=0)), 201)
    assert flat["orders"] == [] and flat["reason"] == "NOTHING_TO_CLOSE"
    assert flat["signal_id"].startswith("sig-")
    read = api.ok(api.get(f"{SIGNALS}/{flat['signal_id']}", "viewer"))
    assert read["reason"] == "NOTHING_TO_CLOSE" and "no BTC-PERP position" in read["message"]
    assert api.get(f"{SIGNALS}/nope", "viewer").json()["error"]["code"] == "UNKNOWN_SIGNAL"
    slashed = api.ok(api.post(SIGNALS, "trader", json=body(signal=0, signal_id="ma/1:x")), 201)
    assert api.ok(api.get(f"{SIGNALS}/ma/1:x", "viewer"))["signal_id"] == slashed["signal_id"]


def test_signals_need_a_trader_of_the_client(signal_api) -> None:
    api = signal_api
    assert api.post(SIGNALS, "viewer", json=body()).status_code == 403
    assert api.post(SIGNALS, "scoped", json=body(client="demo-2")).status_code == 403
    assert api.post(SIGNALS, None, json=body()).status_code == 401
    unknown = api.post(SIGNALS, "trader", json=body(venue="paper-nowhere"))
    assert unknown.status_code == 404


@pytest.mark.parametrize("bad", [
    {"signal": 2}, {"signal": "1"}, {"strength": "1.5"}, {"strength": "0"},
    {"strength": 0.5}, {"signal_id": "a b"}, {"signal_id": "x" * 65}, {"bogus": 1},
    {"at": "2024-01-01T00:00:00"}, {"strategy": ""}, {"symbol": "B" * 33},
])
def test_bad_signals_are_422(signal_api, bad) -> None:
    api = signal_api
    response = api.post(SIGNALS, "trader", json=body(**bad))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert not api.system.engine.state.signals


def test_params_are_read_set_by_operators_and_audited(signal_api) -> None:
    api = signal_api
    shown = api.ok(api.get(PARAMS, "viewer"))
    assert shown["source"] == "configured"
    assert shown["params"]["fixed_qty"] == "0.005" and shown["params"]["take_profit_sd"] == "1.0"
    default = api.ok(api.get("/api/v1/signals/params/demo-2", "viewer"))
    assert default["source"] == "default"
    assert default["params"]["limit_price_offset_bps"] == "5"
    assert default["params"]["stop_loss_sd"] == "2.0"
    assert default["params"]["max_slippage_bps"] == "10"
    update = {"params": {"mode": "long_only", "size_mode": "fixed", "fixed_qty": "0.008",
                         "exit_mode": "none"}, "reason": "desk says long only"}
    assert api.request("PUT", PARAMS, who="trader", json=update).status_code == 403
    done = api.ok(api.request("PUT", PARAMS, who="operator", json=update))
    assert done["source"] == "set" and done["params"]["mode"] == "long_only"
    [row] = api.rows(AuditRow, AuditRow.action == "signal-params")
    assert row.reason == "desk says long only"
    assert row.details["before"]["fixed_qty"] == "0.005"
    assert row.details["after"]["fixed_qty"] == "0.008"
    short = api.ok(api.post(SIGNALS, "trader", json=body(signal=-1)), 201)
    assert short["reason"] == "NOTHING_TO_CLOSE" and "long-only" in short["message"]
    long = api.ok(api.post(SIGNALS, "trader", json=body(signal=1)), 201)
    assert long["orders"][0]["qty"] == "0.008" and long["bracket"] is None


@pytest.mark.parametrize("bad", [
    {"size_mode": "fixed"}, {"exit_mode": "fixed_pct"}, {"volatility_window": 1},
    {"limit_price_offset_bps": "-1"}, {"time_in_force": "gtd"}, {"balance_fraction": "0"},
    {"risk_fraction": "2"}, {"mode": "sideways"}, {"bogus": True},
    {"take_profit_sd": "1e3"},
])
def test_bad_params_are_422_and_change_nothing(signal_api, bad) -> None:
    api = signal_api
    response = api.request("PUT", PARAMS, who="operator", json={"params": bad,
                                                               "reason": "x"})
    assert response.status_code == 422, response.text
    assert api.ok(api.get(PARAMS, "viewer"))["source"] == "configured"


def test_signal_events_are_in_the_log_with_their_topic(signal_api) -> None:
    api = signal_api
    api.ok(api.post(SIGNALS, "trader", json=body(signal_id="logged")), 201)
    items = api.events()["items"]
    kinds = [e["type"] for e in items if e["type"].startswith(("Signal", "Bracket"))]
    # The legs are placed once the step's fills are in, after the signal resolved.
    assert kinds == ["SignalReceived", "BracketOpened", "SignalResolved",
                     "BracketLegsPlaced"]
    received = next(e for e in items if e["type"] == "SignalReceived")
    assert received["client"] == "demo" and received["data"]["signal_id"] == "logged"


def test_parameters_signals_and_brackets_survive_a_restart(tmp_path) -> None:
    """Stop the server and start it again on the same database: the parameters an
    operator set, the signal (idempotency included) and its bracket are back."""
    import warnings

    from app.auth.principal import Role
    from app.config import Settings
    from app.domain.market import MarkPrice, Quote
    from app.server import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'restart.db'}", config=NO_RISK,
                        feed="none", demo_credentials=False, rate_limit_per_s=0,
                        session_secret="x" * 40, stale_mark_seconds=3600.0)
    update = {"params": {"size_mode": "fixed", "fixed_qty": "0.005",
                         "exit_mode": "fixed_pct", "take_profit_pct": "3",
                         "stop_loss_pct": "1.5"}, "reason": "restart test"}
    sent = body(signal_id="kept")
    with TestClient(create_app(settings)) as client:
        key = client.app.state.auth.create_key(Role.ADMIN, name="admin")
        headers = {"Authorization": f"Bearer {key}"}
        now = datetime.now(UTC)
        for update_ in (Quote("paper-binance", "BTC-PERP", BID, ONE, ASK, ONE, now),
                        MarkPrice("paper-binance", "BTC-PERP", BID, now)):
            client.portal.call(client.app.state.system.on_market, update_)
        assert client.put(PARAMS, headers=headers, json=update).status_code == 200
        first = client.post(SIGNALS, headers=headers, json=sent)
        assert first.status_code == 201, first.text
        before = first.json()
        assert before["bracket"]["take_profit_order_id"] is not None
    with TestClient(create_app(settings)) as client:
        headers = {"Authorization": f"Bearer {key}"}
        params = client.get(PARAMS, headers=headers).json()
        assert params["source"] == "set" and params["params"]["fixed_qty"] == "0.005"
        after = client.get(f"{SIGNALS}/kept", headers=headers).json()
        assert after["bracket"] == before["bracket"]
        assert [o["id"] for o in after["orders"]] == [o["id"] for o in before["orders"]]
        retry = client.post(SIGNALS, headers=headers, json=sent)
        assert retry.status_code == 200
        assert retry.json()["orders"][0]["id"] == before["orders"][0]["id"]
