"""Database tables: the event log, the projections built from it, and auth.

Decimals are stored as their exact text (``DecimalText``): SQLite has no exact
decimal type and a float column would round money. Timestamps are stored as
timezone-aware UTC. The event log is the source of truth; every other table
except users/keys/audit can be rebuilt from it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class DecimalText(TypeDecorator):
    """A Decimal stored as its exact string form."""

    impl = sa.String(64)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        return None if value is None else Decimal(value)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC in and out, on SQLite (naive storage) and PostgreSQL alike."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _dec(nullable: bool = False) -> Any:
    return Field(sa_column=sa.Column(DecimalText(), nullable=nullable))


def _ts(nullable: bool = False, index: bool = False) -> Any:
    return Field(sa_column=sa.Column(UTCDateTime(), nullable=nullable, index=index))


class EventRow(SQLModel, table=True):
    __tablename__ = "event_log"

    seq: int | None = Field(
        default=None, sa_column=sa.Column(sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                                          primary_key=True, autoincrement=True))
    # Indexed only by what the log is read by (sequence, and client for scoped reads):
    # every index is paid on every event appended.
    type: str = Field(max_length=40)
    client: str | None = Field(default=None, max_length=64, index=True)
    venue: str | None = Field(default=None, max_length=64)
    order_id: int | None = None
    payload: dict = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    created_at: datetime = _ts()


class OrderRow(SQLModel, table=True):
    __tablename__ = "orders"
    __table_args__ = (sa.UniqueConstraint("client", "venue", "client_order_id"),
                      sa.Index("ix_orders_client_order_id", "client", "order_id"))

    order_id: int = Field(primary_key=True)
    client: str = Field(max_length=64)
    venue: str = Field(max_length=64)
    symbol: str = Field(max_length=32)
    client_order_id: str = Field(max_length=36)
    side: str = Field(max_length=4)
    type: str = Field(max_length=20)  # "take_profit_limit" (migration 0007)
    status: str = Field(max_length=20, index=True)
    qty: Decimal = _dec()
    price: Decimal | None = _dec(nullable=True)
    trigger_price: Decimal | None = _dec(nullable=True)
    time_in_force: str = Field(max_length=4)
    post_only: bool = False
    reduce_only: bool = False
    filled_qty: Decimal = _dec()
    avg_fill_price: Decimal | None = _dec(nullable=True)
    fees: Decimal = _dec()
    reject_code: str | None = Field(default=None, max_length=40)
    reject_message: str | None = Field(default=None, max_length=500)
    cancel_reason: str | None = Field(default=None, max_length=200)
    replaces: int | None = None
    replaced_by: int | None = None
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    trigger_source: str = Field(default="last", max_length=8)
    expire_at: datetime | None = _ts(nullable=True)
    strategy: str | None = Field(default=None, max_length=64, index=True)
    # Trailing stops and close-position stops (migration 0006).
    callback_rate: Decimal | None = _dec(nullable=True)
    activation_price: Decimal | None = _dec(nullable=True)
    close_position: bool = Field(default=False, sa_column=sa.Column(
        sa.Boolean, nullable=False, server_default=sa.false()))


class FillRow(SQLModel, table=True):
    __tablename__ = "fills"
    # A client's fills newest first, a page at a time, without reading anyone else's.
    __table_args__ = (sa.Index("ix_fills_client_fill_id", "client", "fill_id"),)

    fill_id: int = Field(primary_key=True)
    order_id: int = Field(index=True)
    client: str = Field(max_length=64)
    venue: str = Field(max_length=64)
    symbol: str = Field(max_length=32)
    side: str = Field(max_length=4)
    qty: Decimal = _dec()
    price: Decimal = _dec()
    fee: Decimal = _dec()
    liquidity: str = Field(max_length=5)
    at: datetime = _ts()


class PositionRow(SQLModel, table=True):
    __tablename__ = "positions"

    client: str = Field(primary_key=True, max_length=64)
    venue: str = Field(primary_key=True, max_length=64)
    symbol: str = Field(primary_key=True, max_length=32)
    qty: Decimal = _dec()
    avg_entry: Decimal = _dec()
    realized_pnl: Decimal = _dec()
    fees: Decimal = _dec()
    funding: Decimal = _dec()
    opened_at: datetime | None = _ts(nullable=True)


class ClosedTradeRow(SQLModel, table=True):
    __tablename__ = "closed_trades"
    __table_args__ = (sa.Index("ix_closed_trades_client_closed_at", "client", "closed_at"),)

    trade_id: str = Field(primary_key=True, max_length=200)
    client: str = Field(max_length=64)
    venue: str = Field(max_length=64)
    symbol: str = Field(max_length=32)
    direction: str = Field(max_length=5)
    qty: Decimal = _dec()
    entry_price: Decimal = _dec()
    exit_price: Decimal = _dec()
    realized_pnl: Decimal = _dec()
    fees: Decimal = _dec()
    funding: Decimal = _dec()
    net_pnl: Decimal = _dec()
    pnl_pct: Decimal = _dec()
    opened_at: datetime = _ts()
    closed_at: datetime = _ts(index=True)
    exit_reason: str = Field(max_length=64)
    entry_arrival: Decimal | None = _dec(nullable=True)
    exit_arrival: Decimal | None = _dec(nullable=True)


class BalanceRow(SQLModel, table=True):
    __tablename__ = "balances"

    client: str = Field(primary_key=True, max_length=64)
    venue: str = Field(primary_key=True, max_length=64)
    deposits: Decimal = _dec()
    withdrawals: Decimal = _dec()
    realized_pnl: Decimal = _dec()
    fees: Decimal = _dec()
    funding: Decimal = _dec()
    wallet: Decimal = _dec()


class TradingStateRow(SQLModel, table=True):
    __tablename__ = "trading_states"

    # "" stands for "any" (a global or partial scope); primary keys cannot be NULL.
    scope_client: str = Field(primary_key=True, max_length=64)
    scope_venue: str = Field(primary_key=True, max_length=64)
    state: str = Field(max_length=12)
    reason: str = Field(max_length=500)
    actor: str = Field(max_length=64)
    updated_at: datetime = _ts()


class AuditRow(SQLModel, table=True):
    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _ts(index=True)
    actor: str = Field(max_length=64)
    action: str = Field(max_length=64)
    scope: str = Field(max_length=200)
    reason: str = Field(max_length=500)
    previous: str | None = Field(default=None, max_length=64)
    details: dict = Field(default_factory=dict, sa_column=sa.Column(sa.JSON, nullable=False))


class UserRow(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True)
    role: str = Field(max_length=16)
    clients: str = Field(default="", max_length=500)  # comma-separated; "" = all clients
    password_hash: str = Field(max_length=200)
    created_at: datetime = _ts()


class ApiKeyRow(SQLModel, table=True):
    __tablename__ = "api_keys"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64)
    # Shown in listings and used to find the row; the key itself is never stored.
    prefix: str = Field(max_length=16, unique=True)
    key_hash: str = Field(max_length=200)
    role: str = Field(max_length=16)
    clients: str = Field(default="", max_length=500)
    created_at: datetime = _ts()
    revoked_at: datetime | None = _ts(nullable=True)


class SessionRow(SQLModel, table=True):
    """A browser login. The cookie carries the id (signed); only its hash is stored, and
    logging out revokes the row, so a copied cookie stops working too."""

    __tablename__ = "sessions"

    id_hash: str = Field(primary_key=True, max_length=64)
    user_name: str = Field(max_length=64, index=True)
    created_at: datetime = _ts()
    revoked_at: datetime | None = _ts(nullable=True)


class ArbTradeRow(SQLModel, table=True):
    """Funding-rate arbitrage trades (app/domain/arbitrage.py), each as it last stood:
    the columns the views filter and sort by, and the whole trade (``record``, as the
    event log encodes it). The engine keeps only the latest closed ones in memory."""

    __tablename__ = "arb_trades"
    __table_args__ = (sa.Index("ix_arb_trades_strategy_created", "strategy_id", "created_at"),)

    trade_id: str = Field(primary_key=True, max_length=40)
    strategy_id: str = Field(max_length=64)
    client: str = Field(max_length=64, index=True)
    symbol: str = Field(max_length=32)
    long_venue: str = Field(max_length=64)
    short_venue: str = Field(max_length=64)
    status: str = Field(max_length=16)
    created_at: datetime = _ts()
    closed_at: datetime | None = _ts(nullable=True)
    exit_reason: str | None = Field(default=None, max_length=40)
    projected_profit: Decimal = _dec()
    actual_profit: Decimal | None = _dec(nullable=True)
    record: str = Field(sa_column=sa.Column(sa.Text, nullable=False))


class ArbLegOutRow(SQLModel, table=True):
    """Leg-outs of arbitrage trades (at most one at entry and one at exit each)."""

    __tablename__ = "arb_leg_outs"

    trade_id: str = Field(primary_key=True, max_length=40)
    phase: str = Field(primary_key=True, max_length=8)
    strategy_id: str = Field(max_length=64)
    client: str = Field(max_length=64, index=True)
    symbol: str = Field(max_length=32)
    at: datetime = _ts()
    loss: Decimal = _dec()
    record: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
