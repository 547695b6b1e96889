"""Funding-rate arbitrage across two venues (seed 001): kind ``funding_arb``.

``params`` (the knobs and their seed defaults), ``opportunities`` (detection and
sizing), ``trader`` (the trade state machine on the strategy host).
"""

from __future__ import annotations

from datetime import timedelta

from app.strategies.arbitrage.params import ArbParams
from app.strategies.arbitrage.trader import FundingArbTrader
from app.strategies.base import StrategyKind
from app.strategies.registry import register

FUNDING_ARB = register(StrategyKind(
    name="funding_arb",
    description="funding-rate arbitrage: long the venue that pays less funding, short the "
                "one that pays more, with leg-out protection (seed 001)",
    params=ArbParams, factory=FundingArbTrader,
    # Fine enough for the 500 ms leg deadlines; monitoring and scans run every
    # ``monitor_every_ms`` within it.
    timer=timedelta(milliseconds=100), market_updates=False))

__all__ = ["FUNDING_ARB", "ArbParams", "FundingArbTrader"]
