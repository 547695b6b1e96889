"""The funding-rate arbitrage's parameters: seed 001's numbers are the defaults."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import Field, model_validator

from app.strategies.base import StrategyParams

VenueName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Symbol = Annotated[str, Field(pattern=r"^[A-Z0-9]{1,20}-[A-Z0-9]{1,20}$")]


def _dec(default: str, *, ge: str | int = 0, le: str | int, places: int = 8
         ) -> Decimal:
    return Field(default=Decimal(default), ge=Decimal(ge), le=Decimal(le),
                 decimal_places=places)  # type: ignore[no-any-return]


class ArbParams(StrategyParams):
    # Where: the strategy's own venue is one leg's; ``venues`` names both.
    venues: Annotated[tuple[VenueName, VenueName], Field()] = ("paper-binance", "paper-bybit")
    symbols: Annotated[tuple[Symbol, ...], Field(max_length=50)] = ()  # empty: every perp on both
    # Capital (seed 001's portfolio).
    starting_capital: Decimal = _dec("20000", ge=100, le=1_000_000_000, places=2)
    max_position_fraction: Decimal = _dec("0.5", ge="0.01", le=1, places=4)
    min_trade_usd: Decimal = _dec("100", ge=1, le=1_000_000, places=2)
    max_open_trades: Annotated[int, Field(ge=1, le=50)] = 4
    # Detection.
    min_confidence: Annotated[int, Field(ge=0, le=100)] = 70
    # A candidate's projected net edge must be at least this many times what putting
    # the trade on and off costs (fees, slippage, funding paid): with less, seed 001's
    # loss limit (30 % of the projection) sits inside the spread's everyday noise and
    # trades are stopped out by it, paying four fees each time.
    min_edge_ratio: Decimal = _dec("1", ge=0, le=100, places=2)
    horizon_hours: Decimal = _dec("24", ge="0.25", le=720, places=2)
    # Entry needs the funding delta (short venue's rate minus the long venue's, per
    # 8 h) at least this; exit on convergence below ``convergence_delta``: the gap is
    # the hysteresis that keeps a wobbling quote from churning trades.
    min_entry_delta: Decimal = _dec("0.0001", ge=0, le="0.05")
    convergence_delta: Decimal = _dec("0.00005", ge=0, le="0.05")
    convergence_checks: Annotated[int, Field(ge=1, le=600)] = 3
    min_hold_s: Annotated[int, Field(ge=0, le=7 * 86_400)] = 60
    cooldown_s: Annotated[int, Field(ge=0, le=86_400)] = 30
    persistence_full_s: Annotated[int, Field(ge=0, le=86_400)] = 300
    max_impact_bps: Decimal = _dec("5", ge="0.1", le=500, places=2)
    stale_after_s: Annotated[int, Field(ge=1, le=3_600)] = 10
    # Execution.
    leg_timeout_ms: Annotated[int, Field(ge=50, le=60_000)] = 500
    hedge_slippage_bps: Decimal = _dec("10", ge=0, le=500, places=2)
    # Exits (seed 001): profit target and loss limit as fractions of the projection.
    profit_target: Decimal = _dec("0.9", ge="0.01", le=10, places=4)
    loss_limit: Decimal = _dec("0.3", ge="0.01", le=10, places=4)
    max_margin_ratio: Decimal = _dec("0.8", ge="0.05", le=1, places=4)
    monitor_every_ms: Annotated[int, Field(ge=100, le=60_000)] = 1_000
    # How often every symbol is scanned for a new entry (funding rates move once a
    # minute, the spread between venues over tens of seconds).
    scan_every_ms: Annotated[int, Field(ge=100, le=600_000)] = 2_000
    enabled_entries: bool = True

    @model_validator(mode="after")
    def _two_venues(self) -> ArbParams:
        if self.venues[0] == self.venues[1]:
            raise ValueError("venues: two different venues are needed")
        if self.convergence_delta > self.min_entry_delta:
            raise ValueError("convergence_delta: must not exceed min_entry_delta "
                             "(exits would fire on entry)")
        return self
