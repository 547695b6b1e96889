"""Request and response bodies. Decimals travel as strings, both ways."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer

from app.domain.orders import Order, OrderType, Side, TimeInForce, TriggerSource

Dec = Annotated[Decimal, PlainSerializer(lambda d: format(d, "f"), return_type=str,
                                         when_used="json")]
COID_PATTERN = r"^[A-Za-z0-9._:/-]{1,36}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrderTagsIn(Strict):
    strategy: str | None = Field(default=None, max_length=64)
    signal_id: str | None = Field(default=None, max_length=64)
    parent_trade_id: str | None = Field(default=None, max_length=200)


class OrderCreate(Strict):
    client: str = Field(min_length=1, max_length=64)
    venue: str = Field(min_length=1, max_length=64)
    symbol: str = Field(min_length=1, max_length=32)
    side: Side
    type: OrderType
    qty: Decimal = Field(gt=0)
    price: Decimal | None = Field(default=None, gt=0)
    trigger_price: Decimal | None = Field(default=None, gt=0)
    trigger_source: TriggerSource = TriggerSource.LAST
    time_in_force: TimeInForce = TimeInForce.GTC
    expire_at: AwareDatetime | None = None
    post_only: bool = False
    reduce_only: bool = False
    client_order_id: str | None = Field(default=None, pattern=COID_PATTERN)
    clip_to_position: bool = Field(
        default=False, description="in reduce-only, shrink an order that would flip the "
                                   "position to the position's size instead of rejecting it")
    tags: OrderTagsIn | None = None


class OrderReplace(Strict):
    price: Decimal | None = Field(default=None, gt=0)
    qty: Decimal | None = Field(default=None, gt=0)
    trigger_price: Decimal | None = Field(default=None, gt=0)


class OrderPublic(BaseModel):
    id: int
    client_order_id: str
    client: str
    venue: str
    symbol: str
    side: Side
    type: OrderType
    status: str
    qty: Dec
    price: Dec | None
    trigger_price: Dec | None
    trigger_source: TriggerSource
    time_in_force: TimeInForce
    expire_at: datetime | None
    post_only: bool
    reduce_only: bool
    filled_qty: Dec
    remaining_qty: Dec
    avg_fill_price: Dec | None
    fees: Dec
    reason: str | None = Field(description="rejection reason code, if rejected")
    reason_message: str | None
    cancel_reason: str | None
    replaces: int | None
    replaced_by: int | None
    created_at: datetime
    updated_at: datetime | None

    @classmethod
    def of(cls, o: Order) -> OrderPublic:
        s = o.spec
        avg = o.avg_fill_price
        return cls(
            id=o.order_id, client_order_id=o.client_order_id, client=s.client, venue=s.venue,
            symbol=s.symbol, side=s.side, type=s.type, status=o.status.value, qty=s.qty,
            price=s.price, trigger_price=s.trigger_price, trigger_source=s.trigger_source,
            time_in_force=s.time_in_force, expire_at=s.expire_at, post_only=s.post_only,
            reduce_only=s.reduce_only, filled_qty=o.filled_qty, remaining_qty=o.remaining_qty,
            avg_fill_price=None if avg is None else avg.quantize(Decimal("1e-10")).normalize(),
            fees=o.fees, reason=o.reject_code, reason_message=o.reject_message,
            cancel_reason=o.cancel_reason, replaces=o.replaces, replaced_by=o.replaced_by,
            created_at=o.created_at, updated_at=o.updated_at)


class OrderPage(BaseModel):
    items: list[OrderPublic]
    next_cursor: int | None


class ControlRequest(Strict):
    client: str | None = Field(default=None, max_length=64)
    venue: str | None = Field(default=None, max_length=64)
    reason: str = Field(min_length=1, max_length=500)
