"""Fill models for resting limit orders.

* ``QueuePosition`` (default): on arrival the order joins the back of the
  queue — everything displayed at its price is ahead of it. Trades at the
  price eat the queue first; only volume beyond it fills us. When the level
  shrinks without trades (cancellations) the queue ahead can be no larger
  than what is left, and we assume nothing more: that is the conservative
  bound.
* ``VolumeThreshold`` (seed 001): the order fills once the cumulative traded
  volume at its price reaches a fraction (20 %) of the depth resting there
  when it arrived.

A trade *through* the price (a sell below our bid) means the whole level was
consumed, us included; the simulator handles that for both models.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

ZERO = Decimal(0)


class QueueState(Protocol):
    remaining: Decimal
    queue_ahead: Decimal | None
    depth_at_entry: Decimal
    traded_at_price: Decimal


class QueueModel(Protocol):
    name: str

    def on_rest(self, order: QueueState, level_size: Decimal) -> None: ...

    def on_level_size(self, order: QueueState, level_size: Decimal) -> None: ...

    def on_trade(self, order: QueueState, qty: Decimal) -> Decimal:
        """Traded ``qty`` at the order's price; return how much of it reaches the order."""
        ...


class QueuePosition:
    name = "queue_position"

    def on_rest(self, order: QueueState, level_size: Decimal) -> None:
        order.queue_ahead = level_size
        order.depth_at_entry = level_size

    def on_level_size(self, order: QueueState, level_size: Decimal) -> None:
        # None: restored after a restart, so rejoin at the back of the level.
        if order.queue_ahead is None or level_size < order.queue_ahead:
            order.queue_ahead = level_size

    def on_trade(self, order: QueueState, qty: Decimal) -> Decimal:
        ahead = order.queue_ahead or ZERO
        if qty <= ahead:
            order.queue_ahead = ahead - qty
            return ZERO
        order.queue_ahead = ZERO
        return qty - ahead


class VolumeThreshold:
    name = "volume_threshold"

    def __init__(self, threshold: Decimal = Decimal("0.20")):
        self.threshold = threshold

    def on_rest(self, order: QueueState, level_size: Decimal) -> None:
        order.depth_at_entry = level_size
        order.queue_ahead = level_size
        order.traded_at_price = ZERO

    def on_level_size(self, order: QueueState, level_size: Decimal) -> None:
        if order.queue_ahead is None:
            self.on_rest(order, level_size)

    def on_trade(self, order: QueueState, qty: Decimal) -> Decimal:
        order.traded_at_price += qty
        if order.traded_at_price >= order.depth_at_entry * self.threshold:
            return order.remaining
        return ZERO


def make_queue_model(name: str, threshold: Decimal = Decimal("0.20")) -> QueueModel:
    if name == QueuePosition.name:
        return QueuePosition()
    if name == VolumeThreshold.name:
        return VolumeThreshold(threshold)
    raise ValueError(f"unknown queue model {name!r}")
