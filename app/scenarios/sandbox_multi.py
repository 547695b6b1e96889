"""Seed 000 scenario 3: BTC-PERP and ETH-PERP with strict filters and conservative
sizing (``--max-spread-bps 5 --min-vol-1m 100000 --sizing-mode conservative``).

Here the filters and the sizing are the client's risk profile, enforced by the
engine for every order (app/engine/risk_controls.py), and each ``ma_crossover``
also applies them to its own entries and asks for conservative sizing. Default
market: the synthetic market (both symbols; ``--seed``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from app.domain.events import OrderRejected, OrderSubmitted
from app.domain.rejections import RejectCode
from app.domain.risk import OrderSizedDown, SizingMode, SizingPolicy
from app.scenarios.harness import synthetic_market
from app.scenarios.report import Check, Report
from app.scenarios.sandbox import SANDBOX_PROFILE, Sandbox, entry_filters

NAME = "sandbox-multi"
VENUE = "paper-binance"
DEFAULT_MINUTES = 9 * 60.0  # past the 08:00 UTC funding settlement
# The synthetic market's own step: about $300,000 a minute trades on each symbol, so
# the seed's $100,000 1-minute volume filter passes most minutes, not all.
STEP = timedelta(milliseconds=250)
MAX_SPREAD_BPS = Decimal(5)
MIN_VOLUME_1M = Decimal(100000)
PROFILE = replace(SANDBOX_PROFILE, sizing=SizingPolicy(
    mode=SizingMode.CONSERVATIVE, max_spread_bps=MAX_SPREAD_BPS,
    min_volume_1m_notional=MIN_VOLUME_1M))


def params(symbol: str) -> dict[str, object]:
    return {"symbol": symbol, "interval": "1m", "fast_period": 10, "slow_period": 30,
            "order_notional": "100", "max_spread_bps": str(MAX_SPREAD_BPS),
            "min_volume_1m": str(MIN_VOLUME_1M), "sizing_mode": "conservative"}


def run(minutes: float | None = DEFAULT_MINUTES, seed: int = 7,
        data: Path | None = None) -> Report:
    if data is not None:
        raise ValueError(f"{NAME} runs two symbols on the synthetic market; --data is not "
                         "used by it")
    sb = Sandbox(NAME, "BTC-PERP + ETH-PERP, strict filters, conservative sizing",
                 synthetic_market(("BTC-PERP", "ETH-PERP"), VENUE, seed, STEP),
                 {"multi-btc": params("BTC-PERP"), "multi-eth": params("ETH-PERP")},
                 PROFILE, Decimal(5))
    sb.start(minutes)
    return sb.report(_lines)


def _lines(sb: Sandbox) -> list[Check]:
    out = [entry_filters(sb, f"Every entry placed with spread ≤ {MAX_SPREAD_BPS} bps",
                         max_spread_bps=MAX_SPREAD_BPS)]
    run = sb.run
    ours = {e.order_id: e.spec for e in run.events if type(e) is OrderSubmitted
            and e.spec.tags.strategy in sb.params}
    symbols = sorted({s.symbol for s in ours.values() if not s.reduce_only})
    line = "Both symbols traded under the filters"
    out.append(Check.of(line, symbols == ["BTC-PERP", "ETH-PERP"],
                        f"entries on {', '.join(symbols) or 'none'}")
               if ours else Check.na(line, "no order was placed in this run"))
    enforced = [e for e in run.events if type(e) is OrderRejected and e.order_id in ours
                and e.code in (RejectCode.SPREAD_TOO_WIDE, RejectCode.VOLUME_TOO_LOW,
                               RejectCode.IMPACT_TOO_HIGH)]
    sized = [e for e in run.events if type(e) is OrderSizedDown and e.order_id in ours]
    line = "Conservative sizing: entries downsized to 50 bps of impact, never rejected for it"
    strict = [e for e in enforced if e.code == RejectCode.IMPACT_TOO_HIGH]
    bad = [e.order_id for e in sized if e.impact_bps > e.max_impact_bps
           or e.mode is not SizingMode.CONSERVATIVE]
    out.append(Check.of(line, not bad and not strict,
                        f"{len(sized)} sized down (each within {PROFILE.sizing.max_impact_bps} "
                        f"bps after), {len(strict)} IMPACT_TOO_HIGH; filter rejections by the "
                        f"engine: {len(enforced) - len(strict)}"))
    return out
