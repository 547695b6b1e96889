"""Configuration: environment settings plus an optional YAML file.

Environment (prefix ``PERPDESK_``): ``DATABASE_URL``, ``CONFIG`` (YAML path),
``MIGRATE``, ``RATE_LIMIT_PER_S`` ... A complete default is built in, so
``perpdesk serve`` works with no file. A YAML file overrides any part of it::

    venues:
      - name: paper-binance
        profile: binance-usdm            # the exchange's order rules (venue_profiles.py)
        submit_latency_ms: 5
        time_in_force: [gtc, ioc]        # gate FOK and GTD on this venue
    clients:
      - name: fund-a
        leverage: 3
        deposits: {paper-binance: 50000}
    instruments: [...]                   # symbol, venue, tick_size, step_size, ...
    limits:
      BTC-PERP: {max_position_size: "0.5", max_position_notional: "30000"}
    alerts:                              # thresholds and sinks (README "Alerts")
      sinks: [{type: log}, {type: webhook, url: "https://hooks.example/perpdesk"}]
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from app import defaults
from app.domain.instruments import (
    Instrument,
    InstrumentKind,
    LeverageBracket,
    VenueCapabilities,
)
from app.domain.orders import TimeInForce
from app.domain.risk import (
    Breaker,
    BreakerPolicy,
    MarginWindow,
    RiskProfile,
    SizingMode,
    SizingPolicy,
    SymbolLimits,
)
from app.domain.signals import (
    EntryOrder,
    EntryPoint,
    ExitMode,
    PositionMode,
    SignalParams,
    SizeMode,
)
from app.domain.venue_profiles import PROFILES
from app.engine.risk import RiskLimits


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PERPDESK_")

    database_url: str = "sqlite:///./perpdesk.db"
    config: Path | None = None
    migrate: bool = True  # run Alembic migrations on start
    feed: str = "synthetic"  # "synthetic" | "none" (tests drive market data themselves)
    feed_step_ms: int = 250
    feed_seed: int = 7
    # A demo: the synthetic market and the engine's clock run this many times faster
    # than the wall clock (1: real time), and the arbitrage starts by itself.
    demo_speed: float = Field(default=1.0, ge=1.0, le=1000.0)
    # Simulation (``perpdesk serve --replay FILE``): replay this bar file (CSV or Parquet
    # OHLCV) in place of the synthetic feed, on the data's clock (app/runtime/replay.py).
    replay: Path | None = None
    replay_speed: str = "60"  # times real time; "max" or 0: as fast as the bus takes it
    replay_symbol: str = Field(default="BTC-PERP", min_length=1, max_length=32)
    replay_venue: str | None = Field(default=None, max_length=64)  # None: the first venue
    replay_funding: Path | None = None  # a funding-rate file merged into the replay
    replay_interval: str | None = None  # the bar interval (e.g. 5m); None: detected
    # Recorded signals submitted at their times (app/marketdata/recorded_signals.py), for
    # the first configured client unless a row names its own.
    replay_signals: Path | None = None
    rate_limit_per_s: float = 2000.0  # per principal; 0 disables
    rate_limit_burst: int = 4000
    ws_queue_size: int = 1000
    max_body_bytes: int = 1_048_576  # larger request bodies are refused (413); 0: no cap
    demo_credentials: bool = True  # print a demo key and login on the first start
    stale_mark_seconds: float = 30.0
    session_secret: str | None = None  # signs browser sessions; random per start if unset
    secure_cookies: bool = False  # set behind HTTPS so the session cookie is never sent in clear
    # PostgreSQL: how long a write may wait for a lock, or a statement run, before it
    # fails (the bus then answers 503 and retries) instead of hanging.
    db_lock_timeout_ms: int = Field(default=5_000, ge=1)
    db_statement_timeout_ms: int = Field(default=30_000, ge=1)
    # Finished orders (and closed trades per client) the engine keeps in memory; older
    # ones are read from the database (see "Bounded memory" in the README).
    retain_finished_orders: int = Field(default=20_000, ge=100, le=10_000_000)
    retain_closed_trades: int = Field(default=1_000, ge=10, le=1_000_000)
    # The garbage collector's full sweep, the one long pause (app/runtime/gc_tuning.py):
    # hours between sweeps (0: never).
    gc_sweep_hours: float = Field(default=24.0, ge=0, le=8760)
    # Backtests started from the API and the dashboard (README "Backtests from the API").
    # Bar files are picked by name from this directory (None: $PERPDESK_DATA_DIR, else
    # the shared data directory the demos use); never a path from a caller.
    backtest_data_dir: Path | None = None
    # Each run's report directory goes here (None: "backtests" beside the SQLite
    # database, or in the working directory for another database).
    backtest_reports_dir: Path | None = None
    backtest_workers: int = Field(default=1, ge=1, le=4)  # worker processes
    # Runs queued or running at once; one more is refused (429 BACKTEST_QUEUE_FULL).
    backtest_queue_size: int = Field(default=4, ge=1, le=100)


# ---- bounded decimal settings (YAML and the API's risk profile) ---------------------------

_PLAIN = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def plain_decimal(value: Any) -> Any:
    """A setting's decimal: a number, or plain decimal text (no sign, exponent or spaces:
    ``"0.8"``, not ``"8e-1"``); YAML's floats are taken by their shortest text."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    if isinstance(value, str) and not _PLAIN.fullmatch(value):
        raise ValueError("must be plain decimal text such as \"0.8\" (no sign, exponent "
                         "or spaces)")
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


DecimalSetting = Annotated[Decimal, BeforeValidator(plain_decimal)]


def _decimal(default: Decimal | None, *, le: Decimal | int, gt: int | None = 0,
             ge: int | None = None) -> Any:
    """A bounded decimal setting (digits and range): no NaN, no 40-digit inputs."""
    return Field(default=default, gt=gt, ge=ge, le=le, max_digits=24, decimal_places=12,
                 allow_inf_nan=False)


def _amount() -> Any:
    return _decimal(None, le=Decimal(10) ** 12)


class MarginWindowConfig(BaseModel):
    """A time of day (UTC) in which the venue scales margin (seed 003; e.g. Coinbase's
    overnight requirements): ``start``/``end`` as HH:MM, ``end`` before ``start``
    wraps past midnight."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    start: time
    end: time
    initial_multiplier: DecimalSetting = _decimal(Decimal(1), le=100)
    maintenance_multiplier: DecimalSetting = _decimal(Decimal(1), le=100)

    def to_domain(self) -> MarginWindow:
        return MarginWindow(self.name, self.start.replace(tzinfo=None),
                            self.end.replace(tzinfo=None), self.initial_multiplier,
                            self.maintenance_multiplier)


class VenueConfig(BaseModel):
    name: str
    margin_windows: list[MarginWindowConfig] = Field(default_factory=list, max_length=24)
    # "paper": the exchange simulator (book walking, queues, latency); "mock": fills at
    # the mark after ``latency_ms``, ``fill_ratio`` of each order (app/venues/mock.py).
    kind: Literal["paper", "mock"] = "paper"
    latency_ms: int = Field(default=50, ge=0, le=60_000)  # kind mock
    fill_ratio: DecimalSetting = _decimal(Decimal(1), le=1)  # kind mock: (0, 1]
    # Whose order-entry rules the paper venue follows (app/domain/venue_profiles.py).
    profile: Literal["generic", "binance-usdm", "bybit-v5"] = "generic"
    submit_latency_ms: int = 0
    response_latency_ms: int = 0
    # Left out: what the profile offers.
    order_types: list[str] | None = None
    time_in_force: list[str] | None = None
    post_only: bool = True
    reduce_only: bool = True
    queue_model: str = "queue_position"
    # Paper venue fidelity (see README "The paper exchange").
    through_fill: Literal["print", "full"] = "print"
    self_trade_prevention: Literal["none", "expire_taker", "expire_maker",
                                   "expire_both"] = "none"
    max_book_age_s: float | None = Field(default=30.0, gt=0)  # None: books never go stale

    @property
    def capabilities(self) -> VenueCapabilities:
        profile = PROFILES[self.profile]
        return VenueCapabilities(
            order_types=(profile.order_types if self.order_types is None
                         else frozenset(self.order_types)),
            time_in_force=(profile.time_in_force if self.time_in_force is None
                           else frozenset(self.time_in_force)),
            post_only=self.post_only, reduce_only=self.reduce_only, profile=profile)

    @property
    def submit_latency(self) -> timedelta:
        return timedelta(milliseconds=self.submit_latency_ms)

    @property
    def response_latency(self) -> timedelta:
        return timedelta(milliseconds=self.response_latency_ms)


class BracketConfig(BaseModel):
    """One notional tier of a perp's margin table (see ``LeverageBracket``)."""

    notional_cap: Decimal
    max_leverage: Decimal
    maintenance_rate: Decimal
    maintenance_amount: Decimal = Decimal(0)


class InstrumentConfig(BaseModel):
    symbol: str
    venue: str
    kind: InstrumentKind = InstrumentKind.PERP
    base: str
    quote: str = "USDT"
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    min_notional: Decimal = Decimal(5)
    max_leverage: Decimal = Decimal(20)
    maker_fee_rate: Decimal = Decimal("0.0002")
    taker_fee_rate: Decimal = Decimal("0.0005")
    funding_interval_hours: int = 8
    # Notional tiers, ascending; left out: Binance-shaped tiers from max_leverage.
    brackets: list[BracketConfig] = Field(default_factory=list)
    liquidation_fee_rate: Decimal = Decimal("0.005")

    def to_domain(self) -> Instrument:
        return Instrument(self.symbol, self.venue, self.kind, self.base, self.quote,
                          self.tick_size, self.step_size, self.min_qty, self.min_notional,
                          self.max_leverage, self.maker_fee_rate, self.taker_fee_rate,
                          timedelta(hours=self.funding_interval_hours),
                          tuple(LeverageBracket(**b.model_dump()) for b in self.brackets),
                          self.liquidation_fee_rate)


class LimitsConfig(BaseModel):
    max_position_size: Decimal | None = None
    max_position_notional: Decimal | None = None


class ClientConfig(BaseModel):
    name: str
    leverage: Decimal = defaults.DEFAULT_LEVERAGE
    deposits: dict[str, Decimal] = Field(default_factory=dict)  # venue -> initial deposit
    # This client's position limits by symbol, in place of the top-level ``limits``.
    limits: dict[str, LimitsConfig] = Field(default_factory=dict)


# ---- risk profiles (YAML ``risk:`` and PUT /api/v1/risk/{client} share these) ----------

class SizingConfig(BaseModel):
    """Impact-aware sizing and seed 000's liquidity filters (null: filter off)."""

    model_config = ConfigDict(extra="forbid")
    mode: SizingMode = SizingMode.NONE
    max_impact_bps: DecimalSetting = _decimal(Decimal(50), le=10_000)
    aggressive_max_impact_bps: DecimalSetting = _decimal(Decimal(150), le=10_000)
    max_spread_bps: DecimalSetting | None = _decimal(None, le=10_000)
    min_l1_depth_notional: DecimalSetting | None = _amount()
    min_volume_1m_notional: DecimalSetting | None = _amount()

    def to_domain(self) -> SizingPolicy:
        return SizingPolicy(**self.model_dump())


class BreakersConfig(BaseModel):
    """Seed 004's circuit breakers (null: that breaker is off)."""

    model_config = ConfigDict(extra="forbid")
    consecutive_losses: int | None = Field(default=3, ge=1, le=10_000)
    daily_loss_pct: DecimalSetting | None = _decimal(Decimal(5), le=100)
    max_drawdown_pct: DecimalSetting | None = _decimal(Decimal(10), le=100)
    session_max_trades: int | None = Field(default=None, ge=1, le=10_000_000)
    session_max_runtime_minutes: int | None = Field(default=None, ge=1, le=525_600)
    # Breakers whose trip halts the client; the others move it to reduce-only.
    halt_on: list[Breaker] = Field(default_factory=list, max_length=len(Breaker))

    def to_domain(self) -> BreakerPolicy:
        values = self.model_dump()
        values["halt_on"] = tuple(dict.fromkeys(self.halt_on))
        return BreakerPolicy(**values)


class SymbolLimitsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_order_qty: DecimalSetting | None = _amount()
    max_order_notional: DecimalSetting | None = _amount()
    max_position_size: DecimalSetting | None = _amount()
    max_position_notional: DecimalSetting | None = _amount()


class RiskProfileConfig(BaseModel):
    """One client's risk profile (app/domain/risk.py); the defaults are the seeds'."""

    model_config = ConfigDict(extra="forbid")
    max_order_qty: DecimalSetting | None = _amount()
    max_order_notional: DecimalSetting | None = _amount()
    max_leverage: DecimalSetting | None = _decimal(None, gt=None, ge=1, le=200)
    price_band_pct: DecimalSetting | None = _decimal(Decimal(10), le=100)
    max_open_orders: int | None = Field(default=1000, ge=1, le=100_000)
    orders_per_second: int | None = Field(default=None, ge=1, le=100_000)
    orders_per_minute: int | None = Field(default=None, ge=1, le=6_000_000)
    max_margin_ratio: DecimalSetting | None = _decimal(Decimal("0.80"), le=1)
    symbols: dict[Annotated[str, StringConstraints(min_length=1, max_length=32,
                                                   pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")],
                  SymbolLimitsConfig] = Field(default_factory=dict, max_length=500)
    sizing: SizingConfig = Field(default_factory=SizingConfig)
    breakers: BreakersConfig = Field(default_factory=BreakersConfig)

    def to_domain(self) -> RiskProfile:
        return RiskProfile(
            max_order_qty=self.max_order_qty, max_order_notional=self.max_order_notional,
            max_leverage=self.max_leverage, price_band_pct=self.price_band_pct,
            max_open_orders=self.max_open_orders, orders_per_second=self.orders_per_second,
            orders_per_minute=self.orders_per_minute, margin_ratio_cap=self.max_margin_ratio,
            symbols=tuple(SymbolLimits(symbol, **limits.model_dump())
                          for symbol, limits in sorted(self.symbols.items())),
            sizing=self.sizing.to_domain(), breakers=self.breakers.to_domain())

    @classmethod
    def of(cls, profile: RiskProfile) -> RiskProfileConfig:
        """The configuration that gives ``profile`` (for showing and editing it)."""
        return cls(
            max_order_qty=profile.max_order_qty, max_order_notional=profile.max_order_notional,
            max_leverage=profile.max_leverage, price_band_pct=profile.price_band_pct,
            max_open_orders=profile.max_open_orders,
            orders_per_second=profile.orders_per_second,
            orders_per_minute=profile.orders_per_minute,
            max_margin_ratio=profile.margin_ratio_cap,
            symbols={s.symbol: SymbolLimitsConfig(
                max_order_qty=s.max_order_qty, max_order_notional=s.max_order_notional,
                max_position_size=s.max_position_size,
                max_position_notional=s.max_position_notional) for s in profile.symbols},
            sizing=SizingConfig(**{f: getattr(profile.sizing, f)
                                   for f in SizingConfig.model_fields}),
            breakers=BreakersConfig(
                consecutive_losses=profile.breakers.consecutive_losses,
                daily_loss_pct=profile.breakers.daily_loss_pct,
                max_drawdown_pct=profile.breakers.max_drawdown_pct,
                session_max_trades=profile.breakers.session_max_trades,
                session_max_runtime_minutes=profile.breakers.session_max_runtime_minutes,
                halt_on=list(profile.breakers.halt_on)))


# ---- signal order parameters (YAML ``signals:`` and PUT /api/v1/signals/params/{client}) --

class SignalParamsConfig(BaseModel):
    """One client's signal order parameters (app/domain/signals.py); the defaults are
    the seeds' (002: market orders, GTC, 10 bps slippage, take_profit_sd 1.0,
    stop_loss_sd 2.0; 000: limit_price_offset_bps 5)."""

    model_config = ConfigDict(extra="forbid")
    mode: PositionMode = PositionMode.LONG_SHORT
    entry_at: EntryPoint = EntryPoint.CURRENT_OPEN
    order_type: EntryOrder = EntryOrder.MARKET
    limit_price_offset_bps: DecimalSetting = _decimal(Decimal(5), gt=None, ge=0, le=10_000)
    time_in_force: Literal["gtc", "ioc", "fok"] = "gtc"  # of limit entries; market: IOC
    max_slippage_bps: DecimalSetting | None = _decimal(Decimal(10), le=10_000)
    size_mode: SizeMode = SizeMode.BALANCE_FRACTION
    fixed_qty: DecimalSetting | None = _amount()
    balance_fraction: DecimalSetting = _decimal(Decimal("0.1"), le=100)  # of equity
    risk_fraction: DecimalSetting = _decimal(Decimal("0.01"), le=1)  # of equity
    exit_mode: ExitMode = ExitMode.VOLATILITY
    take_profit_sd: DecimalSetting | None = _decimal(Decimal("1.0"), le=100)
    stop_loss_sd: DecimalSetting | None = _decimal(Decimal("2.0"), le=100)
    take_profit_pct: DecimalSetting | None = _decimal(None, le=1000)
    stop_loss_pct: DecimalSetting | None = _decimal(None, le=99)
    volatility_window: int = Field(default=20, ge=2, le=1000)
    scale_by_strength: bool = True

    @model_validator(mode="after")
    def _complete(self) -> SignalParamsConfig:
        if self.size_mode is SizeMode.FIXED and self.fixed_qty is None:
            raise ValueError("size_mode fixed needs fixed_qty")
        if self.exit_mode is ExitMode.FIXED_PCT and self.take_profit_pct is None \
                and self.stop_loss_pct is None:
            raise ValueError("exit_mode fixed_pct needs take_profit_pct and/or stop_loss_pct")
        if self.exit_mode is ExitMode.VOLATILITY and self.take_profit_sd is None \
                and self.stop_loss_sd is None:
            raise ValueError("exit_mode volatility needs take_profit_sd and/or stop_loss_sd")
        return self

    def to_domain(self) -> SignalParams:
        values = self.model_dump()
        values["time_in_force"] = TimeInForce(self.time_in_force)
        return SignalParams(**values)

    @classmethod
    def of(cls, params: SignalParams) -> SignalParamsConfig:
        values = {f: getattr(params, f) for f in cls.model_fields}
        values["time_in_force"] = params.time_in_force.value
        return cls(**values)


class SignalsConfig(BaseModel):
    """``signals:`` in the YAML: the candle the signal desk keeps (entry prices and
    volatility), the parameters of every client without its own, and per-client
    parameters (each replaces the default whole)."""

    model_config = ConfigDict(extra="forbid")
    candle_seconds: int = Field(default=60, ge=1, le=86_400)
    default: SignalParamsConfig = Field(default_factory=SignalParamsConfig)
    clients: dict[str, SignalParamsConfig] = Field(default_factory=dict)


class RiskConfig(BaseModel):
    """``risk:`` in the YAML: the profile of every client without its own, and
    per-client profiles (each replaces the default whole)."""

    model_config = ConfigDict(extra="forbid")
    default: RiskProfileConfig = Field(default_factory=RiskProfileConfig)
    clients: dict[str, RiskProfileConfig] = Field(default_factory=dict)
# ---- alerts (README "Alerts"): thresholds and sinks ---------------------------------------

AlertSeverity = Literal["info", "warning", "error", "critical"]
_SINK_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"  # a /metrics label: short, plain
_HeaderName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,100}$")]
_HeaderValue = Annotated[str, StringConstraints(pattern=r"^[\x20-\x7e]{0,2000}$")]


class LogSinkConfig(BaseModel):
    """One ``ALERT[...]`` / ``ALERT_RESOLVED[...]`` log line per alert event."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["log"] = "log"
    name: str = Field(default="log", pattern=_SINK_NAME)
    min_severity: AlertSeverity = "info"


class WebhookSinkConfig(BaseModel):
    """HTTP POST of each alert event as JSON, from its own task, with retries."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["webhook"]
    name: str = Field(default="webhook", pattern=_SINK_NAME)
    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2000)
    min_severity: AlertSeverity = "info"
    headers: dict[_HeaderName, _HeaderValue] = Field(default_factory=dict, max_length=20)
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    queue_size: int = Field(default=1000, ge=1, le=100_000)  # full: the oldest is dropped
    backoff_initial_s: float = Field(default=0.5, gt=0, le=60)
    backoff_max_s: float = Field(default=30.0, gt=0, le=3600)
    # An event not delivered this long after it was raised is dropped (and counted).
    retry_horizon_s: float = Field(default=600.0, gt=0, le=86_400)


AlertSinkConfig = Annotated[LogSinkConfig | WebhookSinkConfig, Field(discriminator="type")]


def _default_sinks() -> list[AlertSinkConfig]:
    return [LogSinkConfig()]


class AlertsConfig(BaseModel):
    """Alert thresholds (seed 003, issue 11's liquidation risk) and where alerts go. The
    mark-staleness limit is ``PERPDESK_STALE_MARK_SECONDS`` (shared with /readyz)."""

    model_config = ConfigDict(extra="forbid")
    margin_warning: Decimal = Field(default=Decimal("0.20"), gt=0)  # margin used / equity
    margin_critical: Decimal = Field(default=Decimal("0.50"), gt=0)
    liquidation_warning: Decimal = Field(default=Decimal("0.50"), gt=0)  # maint. / equity
    liquidation_critical: Decimal = Field(default=Decimal("0.80"), gt=0)
    max_drift: Decimal = Field(default=Decimal(1), ge=0)  # reconciliation, in the quote
    reconcile_every_s: float = Field(default=60.0, ge=1, le=86_400)
    reconciliation_history: int = Field(default=10_000, ge=10, le=1_000_000)
    history: int = Field(default=1_000, ge=10, le=100_000)  # alerts kept in memory
    sinks: list[AlertSinkConfig] = Field(default_factory=_default_sinks, max_length=20)

    @model_validator(mode="after")
    def _ordered(self) -> AlertsConfig:
        if self.margin_warning >= self.margin_critical:
            raise ValueError("margin_warning must be below margin_critical")
        if self.liquidation_warning >= self.liquidation_critical:
            raise ValueError("liquidation_warning must be below liquidation_critical")
        names = [s.name for s in self.sinks]
        if len(set(names)) != len(names):
            raise ValueError("alert sinks need distinct names")
        return self


_StrategyParamValue = (Annotated[str, Field(max_length=200)] | int | bool | None
                       | Annotated[list[Annotated[str, Field(max_length=64)]],
                                   Field(max_length=50)])


class ArbitrageConfig(BaseModel):
    """``arbitrage:`` in the YAML: the funding-rate arbitrage that ``/api/v1/arb``
    starts and stops (a ``funding_arb`` strategy; seed 001). ``params`` are the
    kind's (validated when the arbitrage is created or reconfigured); unset ones
    take the seed's defaults."""

    model_config = ConfigDict(extra="forbid")

    strategy_id: str = Field(default="funding-arb", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    client: str = defaults.ARB_CLIENT
    # Start it with the server the first time (later, the log and the API decide).
    autostart: bool = False
    params: dict[str, _StrategyParamValue] = Field(default_factory=dict, max_length=64)

    @model_validator(mode="after")
    def _arbitrage_accepts(self) -> ArbitrageConfig:
        from app.strategies.arbitrage import FUNDING_ARB  # the kinds import the engine

        FUNDING_ARB.build(FUNDING_ARB.validate(self.params))  # InvalidParams: a ValueError
        return self

    def strategy(self, venues: list[str]) -> StrategyConfig:
        """The arbitrage as a strategy entry (on the first two venues by default)."""
        params = {"venues": venues[:2], **self.params}
        chosen = params["venues"]
        venue = chosen[0] if isinstance(chosen, list) and chosen else venues[0]
        return StrategyConfig(id=self.strategy_id, kind="funding_arb", client=self.client,
                              venue=venue, params=params, start=True)


class StrategyConfig(BaseModel):
    """A strategy created at startup if the log does not know its id yet (later
    changes go through the strategy API: the log, not the file, is then the truth).
    ``params`` are the kind's, in snake_case, validated by the kind when loaded."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    kind: str = Field(min_length=1, max_length=64)
    client: str = Field(min_length=1, max_length=64)
    venue: str = Field(min_length=1, max_length=64)
    params: dict[str, _StrategyParamValue] = Field(default_factory=dict, max_length=64)
    start: bool = True

    @model_validator(mode="after")
    def _kind_accepts(self) -> StrategyConfig:
        from app.strategies.registry import kind  # the kinds import the engine

        found = kind(self.kind)
        if found is None:
            raise ValueError(f"strategy {self.id}: unknown kind {self.kind!r}")
        found.build(found.validate(self.params))  # InvalidParams is a ValueError
        return self


class TradingConfig(BaseModel):
    venues: list[VenueConfig]
    instruments: list[InstrumentConfig]
    clients: list[ClientConfig]
    limits: dict[str, LimitsConfig] = Field(default_factory=dict)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    arbitrage: ArbitrageConfig = Field(default_factory=ArbitrageConfig)
    strategies: list[StrategyConfig] = Field(default_factory=list, max_length=1000)
    signals: SignalsConfig = Field(default_factory=SignalsConfig)

    def signal_params(self) -> dict[str, SignalParams]:
        return {c: p.to_domain() for c, p in self.signals.clients.items()}

    def risk_profiles(self) -> dict[str, RiskProfile]:
        return {c: p.to_domain() for c, p in self.risk.clients.items()}

    def risk_limits(self) -> dict[str, RiskLimits]:
        return {s: RiskLimits(v.max_position_size, v.max_position_notional)
                for s, v in self.limits.items()}

    def client_limits(self) -> dict[tuple[str, str], RiskLimits]:
        return {(c.name, s): RiskLimits(v.max_position_size, v.max_position_notional)
                for c in self.clients for s, v in c.limits.items()}


def default_trading_config() -> TradingConfig:
    venues = [VenueConfig(name=v, profile=defaults.VENUE_PROFILES[v]) for v in defaults.VENUES]
    instruments = [
        InstrumentConfig(symbol=i.symbol, venue=i.venue, kind=i.kind, base=i.base,
                         quote=i.quote, tick_size=i.tick_size, step_size=i.step_size,
                         min_qty=i.min_qty, min_notional=i.min_notional,
                         max_leverage=i.max_leverage)
        for i in defaults.demo_instruments()
    ]
    clients = [ClientConfig(name=c, deposits={v: defaults.STARTING_BALANCE
                                              for v in defaults.VENUES})
               for c in defaults.CLIENTS]
    clients.append(ClientConfig(
        name=defaults.ARB_CLIENT, deposits={v: defaults.STARTING_BALANCE for v in defaults.VENUES},
        limits={s: LimitsConfig(max_position_size=lim.max_position_size,
                                max_position_notional=lim.max_position_notional)
                for s, lim in defaults.ARB_LIMITS.items()}))
    # A hedged pair closes one leg at a loss as often as not: the consecutive-loss
    # breaker means nothing for it, the loss and drawdown breakers do. Its hedges
    # come in bursts, so its strategy may send more than seed 004's 5 orders a second.
    risk = RiskConfig(clients={defaults.ARB_CLIENT: RiskProfileConfig(
        orders_per_second=20, orders_per_minute=600,
        breakers=BreakersConfig(consecutive_losses=None))})
    limits = {s: LimitsConfig(max_position_size=lim.max_position_size,
                              max_position_notional=lim.max_position_notional)
              for s, lim in defaults.DEMO_LIMITS.items()}
    return TradingConfig(venues=venues, instruments=instruments, clients=clients,
                         limits=limits, risk=risk)


def load_trading_config(path: Path | None) -> TradingConfig:
    """The built-in default, with the top-level sections of the YAML file replacing it."""
    base = default_trading_config().model_dump()
    if path is not None:
        override = yaml.safe_load(Path(path).read_text()) or {}
        unknown = set(override) - set(base)
        if unknown:
            raise ValueError(f"unknown section(s) in {path}: {', '.join(sorted(unknown))}")
        base.update(override)
    return TradingConfig.model_validate(base)
