"""The built-in demo configuration: venues, instruments, clients and limits.

``perpdesk`` runs on this with no configuration file: two paper venues (following
Binance USD-M's and Bybit v5's order rules), four
perps on each, clients ``demo`` and ``demo-2`` with 20,000 USDT per venue, and
seed 003's conservative per-symbol position limits.
"""

from __future__ import annotations

from decimal import Decimal as D
from typing import Literal

from app.domain.instruments import Instrument, InstrumentKind
from app.engine.risk import RiskLimits

VENUES = ("paper-binance", "paper-bybit")
# Each demo venue follows its exchange's order rules (app/domain/venue_profiles.py).
VENUE_PROFILES: dict[str, Literal["generic", "binance-usdm", "bybit-v5"]] = {
    "paper-binance": "binance-usdm", "paper-bybit": "bybit-v5"}
CLIENTS = ("demo", "demo-2")
# The funding-rate arbitrage's own client (seed 001's $20,000 of capital per venue),
# kept apart from the demo traders' so its positions are its own.
ARB_CLIENT = "arb"
STARTING_BALANCE = D(20000)
DEFAULT_LEVERAGE = D(5)

# symbol -> (base, tick, step, min qty, min notional, max leverage of the first tier, as
# Binance USD-M lists them; the tiers above follow default_brackets' Binance-like shape)
_CONTRACTS = {
    "BTC-PERP": ("BTC", D("0.1"), D("0.001"), D("0.001"), D(5), D(125)),
    "ETH-PERP": ("ETH", D("0.01"), D("0.001"), D("0.001"), D(5), D(100)),
    "SOL-PERP": ("SOL", D("0.01"), D("0.01"), D("0.01"), D(5), D(50)),
    "XRP-PERP": ("XRP", D("0.0001"), D("0.1"), D("0.1"), D(5), D(50)),
}

# Seed 003, "Position Limits (Conservative)", mapped from its -USD symbols to our perps.
DEMO_LIMITS = {
    "BTC-PERP": RiskLimits(max_position_size=D("0.01"), max_position_notional=D(500)),
    "ETH-PERP": RiskLimits(max_position_size=D("0.1"), max_position_notional=D(300)),
    "SOL-PERP": RiskLimits(max_position_size=D(10), max_position_notional=D(100)),
    "XRP-PERP": RiskLimits(max_position_size=D(200), max_position_notional=D(100)),
}


# The arbitrage sizes to its capital (up to half of $20,000 a leg), not to seed 003's
# conservative demo limits.
ARB_LIMITS = {symbol: RiskLimits(max_position_notional=D(10000)) for symbol in _CONTRACTS}


def demo_instruments(venues: tuple[str, ...] = VENUES) -> list[Instrument]:
    return [
        Instrument(symbol, venue, InstrumentKind.PERP, base, "USDT", tick, step, min_qty,
                   min_notional, max_leverage)
        for venue in venues
        for symbol, (base, tick, step, min_qty, min_notional, max_leverage)
        in _CONTRACTS.items()
    ]
