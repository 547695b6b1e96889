"""Request and response bodies. Decimals travel as strings, both ways."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)

from app.api.inputs import (
    ClientOrderId,
    Instant,
    Name,
    PositiveAmount,
    Reason,
    SymbolName,
    parse_decimal,
)
from app.domain.instruments import InstrumentKind
from app.domain.orders import (
    NO_TAGS,
    Liquidity,
    Order,
    OrderSpec,
    OrderTags,
    OrderType,
    Side,
    TimeInForce,
    TriggerSource,
)
from app.domain.risk import SizingMode, SizingRequest
from app.domain.trading_state import TradingState

Dec = Annotated[Decimal, PlainSerializer(lambda d: format(d, "f"), return_type=str,
                                         when_used="json")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrderTagsIn(Strict):
    strategy: Name | None = None
    signal_id: Name | None = None
    parent_trade_id: Annotated[str, Field(max_length=200, pattern=r"^[A-Za-z0-9._:/-]+$")
                               ] | None = None


class SizingIn(Strict):
    """Impact-aware sizing for this order (seed 000 §2): ``conservative`` downsizes
    to fit ``max_impact_bps`` (the client's default when left out), ``strict``
    rejects ``IMPACT_TOO_HIGH``, ``aggressive`` allows up to the client's higher cap,
    ``none`` turns it off."""

    mode: SizingMode
    max_impact_bps: Annotated[Decimal, BeforeValidator(parse_decimal),
                              Field(gt=0, le=10_000)] | None = None


class OrderCreate(Strict):
    """An order to place. Decimals follow the input rules (app/api/inputs.py)."""

    client: Name
    venue: Name
    symbol: SymbolName
    side: Side
    type: OrderType
    qty: PositiveAmount | None = Field(
        default=None, description="required, except for a close_position order (it closes "
                                  "whatever position there is when it triggers)")
    price: PositiveAmount | None = None
    trigger_price: PositiveAmount | None = Field(
        default=None, description="stop: buys trigger at or above it, sells at or below; "
                                  "take_profit: the other way round")
    trigger_source: TriggerSource = TriggerSource.LAST
    time_in_force: TimeInForce = TimeInForce.GTC
    expire_at: Instant | None = None
    post_only: bool = False
    reduce_only: bool = False
    client_order_id: ClientOrderId | None = None
    clip_to_position: bool = Field(
        default=False, description="in reduce-only, shrink an order that would flip the "
                                   "position to the position's size instead of rejecting it")
    tags: OrderTagsIn | None = None
    callback_rate: PositiveAmount | None = Field(
        default=None, description="trailing_stop: the callback in percent, 0.1 to 10")
    activation_price: PositiveAmount | None = Field(
        default=None, description="trailing_stop: the price that arms it (default: at once)")
    close_position: bool = Field(
        default=False, description="stop or take_profit (market) without qty: closes the "
                                   "whole position when it triggers (reduce-only)")
    sizing: SizingIn | None = None

    @model_validator(mode="after")
    def _qty_unless_closing(self) -> OrderCreate:
        if self.qty is None and not self.close_position:
            raise ValueError("qty is required (only a close_position order has none)")
        if self.qty is not None and self.close_position:
            raise ValueError("a close_position order takes no qty: it closes the position")
        return self


def sizing_request(body: OrderCreate) -> SizingRequest | None:
    if body.sizing is None:
        return None
    return SizingRequest(body.sizing.mode, body.sizing.max_impact_bps)


def order_spec(body: OrderCreate) -> OrderSpec:
    """The domain's order from the request."""
    tags = OrderTags(**body.tags.model_dump()) if body.tags else NO_TAGS
    return OrderSpec(
        client=body.client, venue=body.venue, symbol=body.symbol, side=body.side,
        type=body.type, qty=Decimal(0) if body.qty is None else body.qty, price=body.price,
        trigger_price=body.trigger_price,
        trigger_source=body.trigger_source, time_in_force=body.time_in_force,
        expire_at=body.expire_at, post_only=body.post_only, reduce_only=body.reduce_only,
        client_order_id=body.client_order_id, tags=tags, callback_rate=body.callback_rate,
        activation_price=body.activation_price, close_position=body.close_position)


class OrderReplace(Strict):
    price: PositiveAmount | None = None
    qty: PositiveAmount | None = None
    trigger_price: PositiveAmount | None = None


class OrderAmend(Strict):
    """An amend in place: the same order id and client order id."""

    price: PositiveAmount | None = None
    qty: PositiveAmount | None = Field(
        default=None, description="the order's new total qty (filled included); at or "
                                  "below what has filled, the rest is canceled")


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
    callback_rate: Dec | None
    activation_price: Dec | None
    close_position: bool
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
        "callback_rate": _dec(s.callback_rate), "activation_price": _dec(s.activation_price),
        "close_position": s.close_position,
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


# ---- responses built as plain dicts -------------------------------------------------------
# As a route's ``response_model`` each documents the shape. FastAPI holds a read's answer
# to it (a field that breaks it is a 500, not a silent change of contract); the writes
# answer as built (see app/api/controls.py) and tests/api/test_openapi_fuzz.py holds them.

# A decimal as the API renders it: plain notation, never an exponent ("1E-8") or NaN.
DecimalText = Annotated[str, Field(pattern=r"^-?[0-9]+(\.[0-9]+)?$", examples=["0.001"])]


class PositionPublic(BaseModel):
    client: str
    venue: str
    symbol: str
    side: Literal["long", "short", "flat"]
    qty: DecimalText = Field(description="signed: negative when short")
    avg_entry_price: DecimalText
    mark_price: DecimalText
    notional: DecimalText
    unrealized_pnl: DecimalText
    realized_pnl: DecimalText
    fees: DecimalText
    funding: DecimalText
    margin: DecimalText = Field(description="initial margin: notional / leverage")
    leverage: DecimalText = Field(description="in force for this symbol (the account's "
                                              "choice, capped by the instrument)")
    maintenance_margin: DecimalText = Field(description="by the instrument's notional tiers")
    liquidation_price: DecimalText | None = Field(
        description="the mark at which the account would be liquidated, its other "
                    "positions held at their marks (cross margin); null if none would")
    opened_at: datetime | None


class BalancePublic(BaseModel):
    client: str
    venue: str
    wallet: DecimalText
    equity: DecimalText
    available: DecimalText
    margin_used: DecimalText
    order_margin: DecimalText
    margin_ratio: Annotated[str, Field(pattern=r"^([0-9]+(\.[0-9]+)?|inf)$",
                                       description="\"inf\" with no equity")]
    maintenance_margin: DecimalText
    maintenance_ratio: Annotated[str, Field(
        pattern=r"^([0-9]+(\.[0-9]+)?|inf)$",
        description="maintenance margin / equity: 1 is liquidation (\"inf\" with no "
                    "equity)")]
    unrealized_pnl: DecimalText
    realized_pnl: DecimalText
    fees: DecimalText
    funding: DecimalText
    deposits: DecimalText
    withdrawals: DecimalText


class PortfolioRollup(BaseModel):
    name: str = Field(description="the client, or \"total\"")
    equity: DecimalText
    wallet: DecimalText
    available: DecimalText
    margin_used: DecimalText
    utilization_pct: DecimalText
    realized_pnl: DecimalText
    unrealized_pnl: DecimalText
    fees: DecimalText
    funding: DecimalText
    capital: DecimalText
    pnl: DecimalText
    pnl_pct: DecimalText


class PortfolioPublic(BaseModel):
    clients: list[PortfolioRollup]
    total: PortfolioRollup


class TradePublic(BaseModel):
    trade_id: str
    client: str
    venue: str
    symbol: str
    direction: Literal["long", "short"]
    qty: DecimalText
    entry_price: DecimalText
    exit_price: DecimalText
    realized_pnl: DecimalText
    fees: DecimalText
    funding: DecimalText
    net_pnl: DecimalText
    pnl_pct: DecimalText
    opened_at: datetime
    closed_at: datetime
    exit_reason: str


class FillPublic(BaseModel):
    fill_id: int
    order_id: int
    client: str
    venue: str
    symbol: str
    side: Side
    qty: DecimalText
    price: DecimalText
    fee: DecimalText
    liquidity: Liquidity
    at: datetime


class FillPage(BaseModel):
    items: list[FillPublic]
    next_cursor: int | None


class EventPublic(BaseModel):
    seq: int
    type: str
    client: str | None
    venue: str | None
    created_at: datetime
    data: dict[str, Any] = Field(description="the event's fields, as stored")


class EventPage(BaseModel):
    items: list[EventPublic]
    last_seq: int
    more: bool


class MarketPublic(BaseModel):
    venue: str
    symbol: str
    kind: InstrumentKind
    base: str
    quote: str
    tick_size: DecimalText
    step_size: DecimalText
    min_qty: DecimalText
    min_notional: DecimalText
    max_leverage: DecimalText
    maker_fee_rate: DecimalText
    taker_fee_rate: DecimalText
    max_position_size: DecimalText | None
    max_position_notional: DecimalText | None
    bid: DecimalText | None
    ask: DecimalText | None
    last: DecimalText | None
    mark: DecimalText | None
    funding_rate: DecimalText | None
    next_funding_at: datetime | None
    mark_updated_at: datetime | None


class CancelAllResult(BaseModel):
    canceled: list[int] = Field(description="ids of the orders canceled")
    count: int


class TradingStatePublic(BaseModel):
    client: str | None
    venue: str | None
    scope: str = Field(examples=["global", "client demo", "client demo, venue paper-bybit"])
    state: TradingState


class TradingStateChange(TradingStatePublic):
    previous: TradingState
    changed: bool


class CloseResultPublic(BaseModel):
    client: str
    venue: str
    symbol: str
    qty_before: DecimalText
    order_id: int | None
    filled_qty: DecimalText
    avg_price: DecimalText | None
    status: Literal["closed", "partial", "pending", "failed"]
    message: str


class CloseAllPublic(TradingStatePublic):
    previous: TradingState
    results: list[CloseResultPublic] = Field(description="one per position closed")


class Health(BaseModel):
    status: Literal["ok"]


def _leverage_in_range(value: int) -> int:
    if not 1 <= value <= 125:
        raise ValueError("must be a whole number from 1 to 125")
    return value


class LeverageRequest(Strict):
    client: Name
    venue: Name
    symbol: SymbolName
    # Bounds checked by a validator, not declared as minimum/maximum: FastAPI renders
    # those as floats in the OpenAPI document, and it carries no floats.
    leverage: Annotated[int, AfterValidator(_leverage_in_range)] = Field(
        description="a whole number from 1 to 125; at most what the instrument allows")


class LeveragePublic(BaseModel):
    client: str
    venue: str
    symbol: str
    leverage: int
    previous: int
    changed: bool
    max_notional: DecimalText = Field(description="the largest position allowed at it")
