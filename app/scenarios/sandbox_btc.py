"""Seed 000 scenario 1: BTC-PERP market + limit orders, with offsets and the spread
and depth filters (``--use-limit-orders --limit-offset-bps 5 --max-spread-bps 10
--min-depth-l1 50000``).

``ma_crossover`` on 1-minute bars enters with limits 5 bps from the mid (the
seed's ``limit_offset_bps``) when the spread is at most 10 bps and the best level
it would take holds $50,000; its stop-limits and closes are market-side orders.
Default market: the real BTC-PERP 1-minute bars (../shared/data), replayed on
``paper-binance`` (binance-usdm rules): the synthetic book's touch (about $5,000)
would never pass the seed's $50,000 L1 filter.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from app.scenarios.harness import bar_market
from app.scenarios.report import Check, Report
from app.scenarios.sandbox import SANDBOX_PROFILE, Sandbox, entry_filters

NAME = "sandbox-btc"
VENUE = "paper-binance"
DEFAULT_MINUTES = 24 * 60.0
MAX_SPREAD_BPS = Decimal(10)
MIN_L1_DEPTH = Decimal(50000)
PARAMS = {
    "symbol": "BTC-PERP", "interval": "1m", "fast_period": 10, "slow_period": 30,
    "use_limit_orders": True, "limit_offset_bps": "5", "order_notional": "100",
    "max_spread_bps": str(MAX_SPREAD_BPS), "min_l1_depth": str(MIN_L1_DEPTH),
}


def run(minutes: float | None = DEFAULT_MINUTES, seed: int = 7,
        data: Path | None = None) -> Report:
    """``seed`` is unused: the bar file is the market (kept for a uniform CLI)."""
    sb = Sandbox(NAME, "BTC-PERP market + limit, offsets, spread/depth filters",
                 bar_market(data, "BTC-PERP", VENUE), {"btc-limit": PARAMS},
                 SANDBOX_PROFILE, Decimal(5))
    sb.start(minutes)
    return sb.report(_lines)


def _lines(sb: Sandbox) -> list[Check]:
    return [entry_filters(sb, f"Every entry placed with spread ≤ {MAX_SPREAD_BPS} bps and "
                              f"L1 depth ≥ ${MIN_L1_DEPTH:,}",
                          max_spread_bps=MAX_SPREAD_BPS, min_l1_depth=MIN_L1_DEPTH)]
