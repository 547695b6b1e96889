"""The YAML's ``risk:`` section and a venue's ``margin_windows``: what the README shows
loads into the engine's values, and bad settings are refused with the field named."""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import RiskProfileConfig, load_trading_config
from app.domain.risk import DEFAULT_PROFILE, Breaker, SizingMode

README_EXAMPLE = """
venues:
  - name: paper-binance
    profile: binance-usdm
    margin_windows:
      - {name: overnight, start: "21:00", end: "09:00", initial_multiplier: 2,
         maintenance_multiplier: 1.5}
  - {name: paper-bybit, profile: bybit-v5}
risk:
  default:
    max_open_orders: 200
    sizing: {mode: conservative, max_impact_bps: 50}
  clients:
    demo:
      max_order_notional: "25000"
      orders_per_second: 5
      orders_per_minute: 60
      symbols:
        BTC-PERP: {max_order_qty: "0.5", max_position_notional: "30000"}
      breakers: {consecutive_losses: 3, daily_loss_pct: 5, max_drawdown_pct: 10,
                 session_max_trades: 50, halt_on: [daily_loss]}
"""


def test_the_readme_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "perpdesk.yaml"
    path.write_text(README_EXAMPLE)
    config = load_trading_config(path)
    [window] = [w.to_domain() for w in config.venues[0].margin_windows]
    assert (window.start, window.end, window.initial_multiplier,
            window.maintenance_multiplier) == (time(21), time(9), Decimal(2), Decimal("1.5"))
    demo = config.risk_profiles()["demo"]
    assert demo.max_order_notional == Decimal(25000) and demo.orders_per_second == 5
    btc = demo.for_symbol("BTC-PERP")
    assert btc is not None and btc.max_order_qty == Decimal("0.5")
    assert demo.breakers.action(Breaker.DAILY_LOSS).value == "halted"
    assert demo.breakers.action(Breaker.DRAWDOWN).value == "reduce_only"
    default = config.risk.default.to_domain()
    assert default.sizing.mode is SizingMode.CONSERVATIVE


def test_the_built_in_default_is_the_seeds() -> None:
    assert RiskProfileConfig().to_domain() == DEFAULT_PROFILE
    assert RiskProfileConfig.of(DEFAULT_PROFILE) == RiskProfileConfig()


@pytest.mark.parametrize("bad", [
    {"price_band_pct": "-1"}, {"price_band_pct": "5e1"}, {"max_margin_ratio": 2},
    {"breakers": {"halt_on": ["nope"]}}, {"breakers": {"consecutive_losses": 0}},
    {"sizing": {"max_impact_bps": "0"}}, {"max_leverage": "0.5"}, {"extra": 1},
])
def test_bad_settings_are_refused(bad: dict) -> None:
    with pytest.raises(ValidationError):
        RiskProfileConfig.model_validate(bad)
