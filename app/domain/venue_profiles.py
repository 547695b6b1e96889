"""Venue profiles: the order-entry rules in which real exchanges differ.

A paper venue follows one profile (chosen in configuration, ``profile:`` per venue),
so a paper run meets the same refusals and outcomes the exchange would give. Each
rule cites the exchange's own documentation:

* Binance USD-M futures, "New Order (TRADE)" (POST /fapi/v1/order), "Modify Order
  (TRADE)" (PUT /fapi/v1/order), its filters (PERCENT_PRICE, MIN_NOTIONAL) and its
  error codes: https://developers.binance.com/docs/derivatives/usds-margined-futures
* Bybit v5, "Place Order" / "Amend Order" (POST /v5/order/create, /v5/order/amend):
  https://bybit-exchange.github.io/docs/v5/order/create-order

``generic`` is perpdesk's own behaviour before profiles (and the default): every
rejection is recorded, post-only crossing is rejected, nothing else is added.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from functools import cached_property


class Outcome(StrEnum):
    """What a venue does with an order it will not execute as asked."""

    REFUSE = "refuse"  # answered at once with an error: no order exists (id reusable)
    REJECT = "reject"  # the order exists, REJECTED
    CANCEL = "cancel"  # accepted, then canceled (the order exists, CANCELED)


_ALL_TYPES = frozenset({"market", "limit", "stop", "stop_limit", "take_profit",
                        "take_profit_limit", "trailing_stop"})
_ALL_TIFS = frozenset({"gtc", "ioc", "fok", "gtd"})


@dataclass(frozen=True)  # no slots: the compiled patterns are cached on the instance
class VenueProfile:
    name: str
    # What the venue offers by default (a YAML venue may narrow it).
    order_types: frozenset[str] = _ALL_TYPES
    time_in_force: frozenset[str] = _ALL_TIFS
    # Client order ids: the venue's character set (1-36 characters everywhere), and
    # how a cancel/replace successor's id is derived from its original's (``abc`` ->
    # ``abc.r1``): the separator must be in the character set.
    client_order_id_chars: str = r"A-Za-z0-9._:/-"
    replace_separator: str = "."
    post_only_cross: Outcome = Outcome.REJECT
    fok_unfillable: Outcome = Outcome.REJECT
    # GTD: the least time between now and expire_at.
    gtd_min_lead: timedelta = timedelta(0)
    # A conditional order whose trigger is already reached: refused (True) or
    # triggered at once (False).
    reject_immediate_trigger: bool = False
    # Is the margin of a conditional order checked when it is placed (True), or only
    # once it triggers (False: the venue checks then)?
    margin_check_untriggered: bool = True
    # A reduce-only order left with nothing to reduce: EXPIRED (True) or CANCELED.
    expire_unreducible: bool = False
    # A limit price farther than this fraction from the mark is refused (None: no band).
    price_band: Decimal | None = None
    # Min notional also for orders that close a position without reduce-only (only
    # reduce-only orders are exempt), else for every order that does not increase it.
    min_notional_when_closing: bool = False
    # An amend that only lowers the qty keeps the order's place in the queue.
    amend_keeps_priority: bool = True
    # Which order types may be amended in place (the others: cancel/replace).
    amend_types: frozenset[str] = _ALL_TYPES - {"market"}

    @cached_property
    def adds_entry_checks(self) -> bool:
        """Does it add pre-trade checks (``app/engine/venue_rules.py``)? Orders on
        venues without any skip them (the order path is hot)."""
        return bool(self.gtd_min_lead or self.reject_immediate_trigger
                    or self.price_band is not None)

    @cached_property
    def refuses_unrecorded(self) -> bool:
        """Does the venue answer some orders with an error before any order exists?"""
        return Outcome.REFUSE in (self.post_only_cross, self.fok_unfillable)

    @cached_property
    def _coid(self) -> re.Pattern[str]:
        return re.compile(f"^[{self.client_order_id_chars}]{{1,36}}$")

    def valid_client_order_id(self, value: str) -> bool:
        return bool(self._coid.fullmatch(value))

    @cached_property
    def replace_suffix(self) -> re.Pattern[str]:
        """A derived id: ``<base><separator>r<n>``."""
        return re.compile(rf"^(?P<base>.*){re.escape(self.replace_separator)}r(?P<n>\d+)$")


GENERIC = VenueProfile("generic")

BINANCE_USDM = VenueProfile(
    "binance-usdm",
    # newClientOrderId: ^[\.A-Z\:/a-z0-9_-]{1,36}$ (New Order).
    client_order_id_chars=r"A-Za-z0-9._:/-",
    replace_separator=".",
    # -5022 "Due to the order could not be executed as maker, the Post Only order will
    # be rejected" and -5021 "... the FOK order has been rejected": errors of the
    # request itself, so no order exists and its client order id can be sent again.
    post_only_cross=Outcome.REFUSE,
    fok_unfillable=Outcome.REFUSE,
    # goodTillDate: "must be greater than the current time plus 600 seconds".
    gtd_min_lead=timedelta(seconds=600),
    # -2021 "Order would immediately trigger."
    reject_immediate_trigger=True,
    # Conditional orders take margin when they trigger, not while they wait.
    margin_check_untriggered=False,
    # A reduce-only order that can no longer reduce (the position closed) is EXPIRED.
    expire_unreducible=True,
    # PERCENT_PRICE: price <= mark x multiplierUp and >= mark x multiplierDown
    # (1.05 / 0.95 on BTCUSDT): -4016 "Limit price can't be higher than ...",
    # -4024 "... lower than ...".
    price_band=Decimal("0.05"),
    # -4164 "Order's notional must be no smaller than 5 (unless you choose reduce only)".
    min_notional_when_closing=True,
    # Modify Order: "currently only LIMIT order modification is supported, modified
    # orders will be reordered in the match queue".
    amend_keeps_priority=False,
    amend_types=frozenset({"limit"}),
)

BYBIT_V5 = VenueProfile(
    "bybit-v5",
    # No GTD (timeInForce: GTC, IOC, FOK, PostOnly). Trailing stops are set on a
    # position (/v5/position/trading-stop), not placed as orders.
    order_types=_ALL_TYPES - {"trailing_stop"},
    time_in_force=frozenset({"gtc", "ioc", "fok"}),
    # orderLinkId: "numbers, letters (upper and lower cases), dashes, and
    # underscores", at most 36: no '.', ':' or '/', so successors are ``abc-r1``.
    client_order_id_chars=r"A-Za-z0-9_-",
    replace_separator="-",
    # A PostOnly order that would take liquidity is created and then cancelled
    # (rejectReason EC_PostOnlyWillTakeLiquidity); an unfillable FOK likewise
    # (EC_CancelForNoFullFill).
    post_only_cross=Outcome.CANCEL,
    fok_unfillable=Outcome.CANCEL,
    # Amend: "decreasing qty does not affect queue position"; raising it or moving
    # the price does.
    amend_keeps_priority=True,
)

PROFILES: dict[str, VenueProfile] = {p.name: p for p in (GENERIC, BINANCE_USDM, BYBIT_V5)}
