"""Request and response bodies. Decimals travel as strings, both ways."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer

from app.api.inputs import (
    ClientOrderId,
    Name,
    PositiveAmount,
    Reason,
    SymbolName,
)
from app.domain.orders import Order, OrderType, Side, TimeInForce, TriggerSource

Dec = Annotated[Decimal, PlainSerializer(lambda d: format(d, "f"), return_type=str,
                                         when_used="json")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrderTagsIn(Strict):
    strategy: Name | None = None
    signal_id: Name | None = None
    parent_trade_id: Annotated[str, Field(max_length=200, pattern=r"^[A-Za-z0-9._:/-]+$")
                               ] | None = None


class OrderCreate(Strict):
    """An order to place. Decimals follow the input rules (app/api/inputs.py)."""

    client: Name
    venue: Name
    symbol: SymbolName
    side: Side
    type: OrderType
    qty: PositiveAmount
    price: PositiveAmount | None = None
    trigger_price: PositiveAmount | None = None
    trigger_source: TriggerSource = TriggerSource.LAST
    time_in_force: TimeInForce = TimeInForce.GTC
    expire_at: AwareDatetime | None = None
    post_only: bool = False
    reduce_only: bool = False
    client_order_id: ClientOrderId | None = None
    clip_to_position: bool = Field(
        default=False, description="in reduce-only, shrink an order that would flip the "
                                   "position to the position's size instead of rejecting it")
    tags: OrderTagsIn | None = None


class OrderReplace(Strict):
    price: PositiveAmount | None = None
    qty: PositiveAmount | None = None
    trigger_price: PositiveAmount | None = None


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


def _dec(d: Decimal | None) -> str | None:
    return None if d is None else format(d, "f")


def _instant(t: datetime | None) -> str | None:
    # As pydantic renders an aware UTC datetime: ISO 8601 with "Z".
    if t is None:
        return None
    text = t.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


_AVG_PLACES = Decimal("1e-10")  # an average price is shown to 10 places


def order_json(o: Order) -> dict[str, Any]:
    """An order as ``OrderPublic`` renders it in JSON, built directly: placing an order
    is the hottest path, and validating a model only to serialize it doubled its cost.
    The tests hold this to ``OrderPublic``'s own rendering."""
    s = o.spec
    avg = o.avg_fill_price
    return {
        "id": o.order_id, "client_order_id": o.client_order_id, "client": s.client,
        "venue": s.venue, "symbol": s.symbol, "side": s.side.value, "type": s.type.value,
        "status": o.status.value, "qty": _dec(s.qty), "price": _dec(s.price),
        "trigger_price": _dec(s.trigger_price), "trigger_source": s.trigger_source.value,
        "time_in_force": s.time_in_force.value, "expire_at": _instant(s.expire_at),
        "post_only": s.post_only, "reduce_only": s.reduce_only,
        "filled_qty": _dec(o.filled_qty), "remaining_qty": _dec(o.remaining_qty),
        "avg_fill_price": None if avg is None else _dec(avg.quantize(_AVG_PLACES).normalize()),
        "fees": _dec(o.fees), "reason": o.reject_code, "reason_message": o.reject_message,
        "cancel_reason": o.cancel_reason, "replaces": o.replaces,
        "replaced_by": o.replaced_by, "created_at": _instant(o.created_at),
        "updated_at": _instant(o.updated_at)}


class OrderPage(BaseModel):
    items: list[OrderPublic]
    next_cursor: int | None


class ControlRequest(Strict):
    client: Name | None = None
    venue: Name | None = None
    reason: Reason
