"""A venue of ``kind: mock`` in the YAML (seed 002's local-dev profile) runs in the
server: an order placed through the API is acknowledged, reaches the mock after its
latency (the bus's clock ticks carry it there), and fills at the mark, by the
configured fill ratio, the rest expiring."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

CONFIG = """\
venues:
  - {name: paper-binance, kind: mock, latency_ms: 50, fill_ratio: 0.5}
  - {name: paper-bybit, profile: bybit-v5}
risk:
  default:
    price_band_pct: null
    max_open_orders: null
    max_margin_ratio: null
    breakers: {consecutive_losses: null, daily_loss_pct: null, max_drawdown_pct: null}
"""


def test_an_api_order_fills_at_the_mark_by_the_fill_ratio(make_api: Callable[..., Any],
                                                          tmp_path: Path) -> None:
    config = tmp_path / "mock.yaml"
    config.write_text(CONFIG)
    api = make_api(config=config)
    # A mark away from the quote's mid: the mock fills at the mark, not at the ask.
    api.push_btc(bid=Decimal("60000.0"), ask=Decimal("60010.0"), mark=Decimal("60004.0"))
    order = api.buy_market(qty="0.004", venue="paper-binance")
    order_id = order["id"]
    assert order["status"] == "new"  # on its way: the mock answers after 50 ms

    def done() -> bool:
        return api.order_by_id(order_id)["status"] not in ("new", "accepted",
                                                           "partially_filled")

    api.wait_for(done, "the mock venue to execute the order")
    final = api.order_by_id(order_id)
    assert final["status"] == "expired"  # a market order's unfilled rest, as venues say
    assert Decimal(final["filled_qty"]) == Decimal("0.002")
    fills = api.ok(api.get(f"/api/v1/fills?order_id={order_id}"))["items"]
    assert [(Decimal(f["qty"]), Decimal(f["price"]), f["liquidity"]) for f in fills] == [
        (Decimal("0.002"), Decimal("60004.0"), "taker")]
