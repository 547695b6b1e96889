"""Which account (client, venue) an event belongs to — worked out in one place.

Most events name their account (``client``/``venue``, or a ``spec``, ``trade``
or ``scope`` holding them); order events name only their order, whose spec
does. A kill switch's scope may name only a client, only a venue or neither
(global): those parts are None.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol


class _HasSpec(Protocol):
    @property
    def spec(self) -> Any: ...


Account = tuple[str | None, str | None]
_NO_ACCOUNT: Account = (None, None)

# event class -> (where its client and venue are: "" on the event itself, or the name
# of the field holding them, or None; the field naming its order, or None)
_WHERE: dict[type, tuple[str | None, str | None]] = {}


def _where(cls: type) -> tuple[str | None, str | None]:
    names = {f.name for f in dataclasses.fields(cls)}
    if {"client", "venue"} <= names:
        return "", "order_id" if "order_id" in names else None
    holder = next((h for h in ("spec", "trade", "scope") if h in names),
                  "" if names & {"client", "venue"} else None)
    return holder, "order_id" if "order_id" in names else None


def order_id_of(event: object) -> int | None:
    where = _WHERE.get(type(event)) or _WHERE.setdefault(type(event), _where(type(event)))
    return getattr(event, where[1]) if where[1] else None


def account_of(event: object, orders: Mapping[int, _HasSpec]) -> Account:
    """The event's (client, venue), each None where it does not name one."""
    where = _WHERE.get(type(event))
    if where is None:
        where = _WHERE[type(event)] = _where(type(event))
    holder, order_field = where
    client: str | None
    venue: str | None
    if holder == "":
        client, venue = getattr(event, "client", None), getattr(event, "venue", None)
    elif holder is not None:
        # spec (orders), trade (closed trades), scope (kill switches; None = global)
        inner = getattr(event, holder)
        client, venue = inner.client, inner.venue
    else:
        client = venue = None
    if client is None and order_field is not None:
        order = orders.get(getattr(event, order_field))
        if order is not None:
            return order.spec.client, order.spec.venue
    return (client, venue) if client is not None or venue is not None else _NO_ACCOUNT
