"""The ceiling for ``bench/api_orders.py``: one POST endpoint, nothing behind it.

It validates an order-shaped JSON body with pydantic (the same field types and
constraints as the real ``OrderCreate``) and answers a small JSON 201, so the
difference to the real endpoint is what perpdesk adds: auth, the command bus,
the engine, the durable commit and the response model. Served by uvicorn
exactly as ``perpdesk serve`` is (same loop and HTTP parser, no access log).
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from enum import StrEnum

from fastapi import FastAPI
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class TimeInForce(StrEnum):
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"
    GTD = "gtd"


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client: str = Field(min_length=1, max_length=64)
    venue: str = Field(min_length=1, max_length=64)
    symbol: str = Field(min_length=1, max_length=32)
    side: Side
    type: OrderType
    qty: Decimal = Field(gt=0)
    price: Decimal | None = Field(default=None, gt=0)
    trigger_price: Decimal | None = Field(default=None, gt=0)
    time_in_force: TimeInForce = TimeInForce.GTC
    expire_at: AwareDatetime | None = None
    post_only: bool = False
    reduce_only: bool = False
    client_order_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._:/-]{1,36}$")


app = FastAPI(title="bare ceiling")
_ids = itertools.count(1)


@app.post("/api/v1/orders", status_code=201)
async def place_order(body: OrderIn) -> dict:
    return {"id": next(_ids), "status": "accepted", "client": body.client,
            "symbol": body.symbol, "side": body.side.value, "qty": format(body.qty, "f")}
