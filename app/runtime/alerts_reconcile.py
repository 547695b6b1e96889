"""Reconciliation (seed 003): each account's equity against the sum of its parts,
checked on a schedule (every minute by default) and kept as a bounded history.

    expected equity = deposits - withdrawals + realized - fees + funding + unrealized
    drift           = equity - expected equity

Equity is the running wallet (changed by each cash movement as it happens) plus
the positions' unrealized P&L at mark; the parts are the totals the engine keeps
beside the wallet. They can only differ through a bug (a movement applied to one
and not the other), so drift above the threshold is an ERROR alert.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from app.domain.accounts import AccountSummary
from app.runtime.alerts_store import SCAN_BUDGET


@dataclass(frozen=True, slots=True)
class Reconciliation:
    id: int
    at: datetime
    client: str
    venue: str
    equity: Decimal
    wallet: Decimal
    deposits: Decimal
    withdrawals: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal
    funding: Decimal
    expected_equity: Decimal
    drift: Decimal  # equity - expected equity
    ok: bool  # |drift| within the threshold

    @staticmethod
    def of(record_id: int, at: datetime, s: AccountSummary, max_drift: Decimal
           ) -> Reconciliation:
        expected = (s.deposits - s.withdrawals + s.realized_pnl - s.fees + s.funding
                    + s.unrealized_pnl)
        drift = s.equity - expected
        return Reconciliation(record_id, at, s.client, s.venue, s.equity, s.wallet,
                              s.deposits, s.withdrawals, s.realized_pnl, s.unrealized_pnl,
                              s.fees, s.funding, expected, drift, abs(drift) <= max_drift)

    def as_json(self) -> dict[str, Any]:
        def money(d: Decimal) -> str:
            q = d.quantize(Decimal("0.00000001"))
            return format(q if q else abs(q), "f")  # never "-0.00000000"

        return {"id": self.id, "at": self.at.isoformat(), "client": self.client,
                "venue": self.venue, "equity": money(self.equity),
                "wallet": money(self.wallet), "deposits": money(self.deposits),
                "withdrawals": money(self.withdrawals),
                "realized_pnl": money(self.realized_pnl),
                "unrealized_pnl": money(self.unrealized_pnl), "fees": money(self.fees),
                "funding": money(self.funding),
                "expected_equity": money(self.expected_equity), "drift": money(self.drift),
                "ok": self.ok}


class ReconciliationHistory:
    """The newest ``capacity`` reconciliations (ids consecutive, oldest dropped)."""

    def __init__(self, capacity: int = 10_000):
        self._records: deque[Reconciliation] = deque(maxlen=capacity)
        self._next_id = 1

    def __len__(self) -> int:
        return len(self._records)

    def record(self, at: datetime, summary: AccountSummary, max_drift: Decimal
               ) -> Reconciliation:
        entry = Reconciliation.of(self._next_id, at, summary, max_drift)
        self._next_id += 1
        self._records.append(entry)
        return entry

    def latest(self, client: str, venue: str) -> Reconciliation | None:
        for entry in reversed(self._records):
            if entry.client == client and entry.venue == venue:
                return entry
        return None

    def page(self, clients: frozenset[str] | None, venue: str | None, drifting: bool,
             cursor: int | None, limit: int, budget: int = SCAN_BUDGET
             ) -> tuple[list[Reconciliation], int | None]:
        """Records of ``clients`` (None: all) with ids below ``cursor``, newest first, and
        the next cursor; examines at most ``budget`` records (see AlertBook.page)."""
        records = self._records
        if not records:
            return [], None
        first = records[0].id
        # Ids are consecutive, so the position of an id is arithmetic, not a search.
        end = len(records) if cursor is None else max(0, min(len(records), cursor - first))
        items: list[Reconciliation] = []
        examined = 0
        for index in range(end - 1, -1, -1):
            entry = records[index]
            if examined == budget:
                return items, entry.id + 1
            examined += 1
            if clients is not None and entry.client not in clients:
                continue
            if venue is not None and entry.venue != venue:
                continue
            if drifting and entry.ok:
                continue
            if len(items) == limit:
                return items, items[-1].id
            items.append(entry)
        return items, None
