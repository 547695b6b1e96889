"""The YAML's ``signals:`` section: what the README shows loads, the defaults are the
seeds', and bad settings are refused."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from app.config import SignalParamsConfig, load_trading_config
from app.domain.orders import TimeInForce
from app.domain.signals import DEFAULT_SIGNAL_PARAMS, EntryOrder, PositionMode, SizeMode

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_signals_yaml() -> str:
    text = README.read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    return next(b for b in blocks if b.startswith("signals:"))


def test_the_readme_example_loads(tmp_path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(readme_signals_yaml())
    config = load_trading_config(path)
    assert config.signals.candle_seconds == 60
    demo = config.signal_params()["demo"]
    assert (demo.mode, demo.order_type, demo.size_mode, demo.fixed_qty) == (
        PositionMode.LONG_ONLY, EntryOrder.LIMIT, SizeMode.FIXED, Decimal("0.005"))
    assert config.signals.default.to_domain().balance_fraction == Decimal("0.05")


def test_the_defaults_are_the_seeds() -> None:
    params = SignalParamsConfig().to_domain()
    assert params == DEFAULT_SIGNAL_PARAMS
    assert (params.take_profit_sd, params.stop_loss_sd) == (Decimal("1.0"), Decimal("2.0"))
    assert params.limit_price_offset_bps == 5 and params.max_slippage_bps == 10
    assert params.time_in_force is TimeInForce.GTC
    assert SignalParamsConfig.of(params) == SignalParamsConfig()


@pytest.mark.parametrize("bad", [
    {"size_mode": "fixed"}, {"exit_mode": "fixed_pct"},
    {"exit_mode": "volatility", "take_profit_sd": None, "stop_loss_sd": None},
    {"volatility_window": 1001}, {"time_in_force": "gtd"}, {"fixed_qty": "1e3"},
    {"max_slippage_bps": "0"}, {"unknown": 1},
])
def test_bad_settings_are_refused(bad) -> None:
    with pytest.raises(ValidationError):
        SignalParamsConfig.model_validate(yaml.safe_load(yaml.safe_dump(bad)))
