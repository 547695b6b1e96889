"""The ceiling for ``bench/api_orders.py``: one POST endpoint, nothing behind it.

It validates the body with perpdesk's own request schema (``OrderCreate``) and
answers a small JSON 201, so the difference to the real endpoint is what
perpdesk adds: auth, the command bus, the engine, the durable commit and the
response. Served by uvicorn exactly as ``perpdesk serve`` is (same loop and
HTTP parser, no access log).
"""

from __future__ import annotations

import itertools

from fastapi import FastAPI

from app.api.schemas import OrderCreate

app = FastAPI(title="bare ceiling")
_ids = itertools.count(1)


@app.post("/api/v1/orders", status_code=201)
async def place_order(body: OrderCreate) -> dict:
    return {"id": next(_ids), "status": "accepted", "client": body.client,
            "symbol": body.symbol, "side": body.side.value, "qty": format(body.qty, "f")}
