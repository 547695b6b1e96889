"""``perpdesk export``: seed 003's artifacts of a server's run, read from its event log.

The log is replayed into a fresh ``EngineState`` (the same ``apply`` a restart uses),
so every figure is what the server's state held at that event. Files (JSON Schemas of
the JSON ones in ``app/export/schemas/``; decimals as strings, times ISO 8601):

* ``reconciliation_history.json`` — each account's wallet against the sum of its
  parts (deposits − withdrawals + realized − fees + funding) after every event that
  moved its cash. The log holds no market data, so this is the realized side of the
  server's live reconciliation (which adds unrealized P&L at mark).
* ``sized_down_events.json`` — every ``OrderSizedDown`` (original and adjusted size).
* ``margin_snapshots.json`` — every ``MarginWindowChanged``: the window transition and
  each account's margin utilization before and after it.
* ``execution_logs.json`` — every order lifecycle event, in log order.
* ``rejection_breakdown.json`` — rejections by code per account, and acceptance rates.
* ``trades.csv`` / ``.parquet`` — closed trades, the backtest's columns, with their
  slippage against arrival price (``schemas/trades.schema.json`` documents a row).
* ``equity.csv`` / ``.parquet`` — each account's wallet (realized equity) after every
  change, with its drawdown (%) from the running peak (deposits and withdrawals move
  the peak with them: they are not drawdown).

``client`` keeps one client's records; ``since`` / ``until`` keep events at or after /
before those times (the replay still reads all of the log: state needs it).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from app.backtest.report import (
    RATIO_PLACES,
    TRADE_COLUMNS,
    trade_rows,
    write_csv,
    write_parquet,
)
from app.domain.accounts import Account
from app.domain.analytics import trade_record
from app.domain.event_accounts import account_of, order_id_of
from app.domain.events import OrderAccepted, OrderRejected, OrderSubmitted, TradeClosed
from app.domain.risk import MarginWindowChanged, OrderSizedDown
from app.engine.state import EngineState
from app.store.codec import encode_event
from app.store.event_log import EventLog, make_db_engine

JSON_ARTIFACTS = ("reconciliation_history", "sized_down_events", "margin_snapshots",
                  "execution_logs", "rejection_breakdown")
EQUITY_COLUMNS = ["at", "client", "venue", "equity", "drawdown_pct"]
_Q = Decimal("0.00000001")


def money(d: Decimal) -> str:
    q = d.quantize(_Q)
    return format(q if q else abs(q), "f")


def _plain(value: Any) -> Any:
    """Event payload values as JSON: decimals as strings, times ISO 8601."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class ExportFilter:
    client: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def keeps(self, at: datetime | None, client: str | None) -> bool:
        if self.client is not None and client != self.client:
            return False
        if at is not None and self.since is not None and at < self.since:
            return False
        return not (at is not None and self.until is not None and at >= self.until)

    def as_json(self) -> dict[str, Any]:
        return {"client": self.client,
                "from": self.since.isoformat() if self.since else None,
                "to": self.until.isoformat() if self.until else None}


def export(database_url: str, out: Path, where: ExportFilter = ExportFilter()
           ) -> dict[str, int]:
    """Write the artifacts of ``database_url``'s event log into ``out``; returns each
    file's record count."""
    log = EventLog(make_db_engine(database_url))
    state = EngineState()
    reconciliations: list[dict[str, Any]] = []
    sized: list[dict[str, Any]] = []
    margins: list[dict[str, Any]] = []
    executions: list[dict[str, Any]] = []
    trades = []
    equity: list[dict[str, Any]] = []
    peaks: dict[tuple[str, str], Decimal] = {}
    last_flows: dict[tuple[str, str], Decimal] = {}
    last_parts: dict[tuple[str, str], tuple[Decimal, ...]] = {}
    submitted: Counter[tuple[str, str]] = Counter()
    accepted: Counter[tuple[str, str]] = Counter()
    rejected: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    messages: dict[str, str] = {}
    seq = 0
    for event in log.replay():
        seq += 1
        client, venue = account_of(event, state.orders)
        if client and venue and (client, venue) not in state.accounts:
            # The server makes its accounts from its configuration, not from events.
            state.accounts[(client, venue)] = Account(client, venue)
        state.apply(event)
        if client is None:  # an order's first event names it
            client, venue = account_of(event, state.orders)
        at: datetime | None = getattr(event, "at", None)
        if isinstance(event, MarginWindowChanged):
            snaps = [s for s in event.snapshots
                     if where.client is None or s.client == where.client]
            if where.keeps(event.at, None):
                margins.append({
                    "at": event.at.isoformat(), "venue": event.venue,
                    "previous": event.previous, "current": event.current,
                    "initial_multiplier": format(event.initial_multiplier, "f"),
                    "maintenance_multiplier": format(event.maintenance_multiplier, "f"),
                    "accounts": [{"client": s.client, "equity": money(s.equity),
                                  "utilization_before": format(s.utilization_before, "f"),
                                  "utilization_after": format(s.utilization_after, "f")}
                                 for s in snaps]})
            continue
        if not where.keeps(at, client):
            continue
        key = (client or "", venue or "")
        order_id = order_id_of(event)
        if order_id is not None:
            name, payload = encode_event(event)
            order = state.orders.get(order_id)
            executions.append({
                "seq": seq, "at": at.isoformat() if at else None, "event": name,
                "order_id": order_id, "client": client, "venue": venue,
                "symbol": order.spec.symbol if order is not None else None,
                "details": _plain({k: v for k, v in payload.items()
                                   if k not in ("order_id", "at")})})
        if isinstance(event, OrderSubmitted):
            submitted[key] += 1
        elif isinstance(event, OrderAccepted):
            accepted[key] += 1
        elif isinstance(event, OrderRejected):
            rejected[key][event.code] += 1
            messages.setdefault(event.code, event.message)
        elif isinstance(event, OrderSizedDown):
            sized.append({
                "at": event.at.isoformat(), "order_id": event.order_id,
                "client": event.client, "venue": event.venue, "symbol": event.symbol,
                "requested_qty": format(event.requested_qty, "f"),
                "qty": format(event.qty, "f"),
                "requested_impact_bps": None if event.requested_impact_bps is None
                else format(event.requested_impact_bps, "f"),
                "impact_bps": format(event.impact_bps, "f"),
                "max_impact_bps": format(event.max_impact_bps, "f"),
                "mode": str(getattr(event.mode, "value", event.mode))})
        elif isinstance(event, TradeClosed):
            trades.append(trade_record(event.trade, strategy=None))
        account = state.accounts.get(key) if client and venue else None
        if account is None or at is None:
            continue
        parts = (account.wallet, account.deposits, account.withdrawals,
                 account.realized_pnl, account.fees, account.funding)
        if last_parts.get(key) == parts:
            continue
        last_parts[key] = parts
        expected = (account.deposits - account.withdrawals + account.realized_pnl
                    - account.fees + account.funding)
        reconciliations.append({
            "seq": seq, "at": at.isoformat(), "client": key[0], "venue": key[1],
            "wallet": money(account.wallet), "deposits": money(account.deposits),
            "withdrawals": money(account.withdrawals),
            "realized_pnl": money(account.realized_pnl), "fees": money(account.fees),
            "funding": money(account.funding), "expected_wallet": money(expected),
            "drift": money(account.wallet - expected), "ok": account.wallet == expected})
        # Deposits and withdrawals move the peak with them: they are no drawdown.
        flows = account.deposits - account.withdrawals
        shift = flows - last_flows.get(key, flows)
        last_flows[key] = flows
        peak = max(peaks.get(key, account.wallet) + shift, account.wallet)
        peaks[key] = peak
        dd = (peak - account.wallet) / peak * 100 if peak > 0 else Decimal(0)
        equity.append({"at": at, "client": key[0], "venue": key[1],
                       "equity": account.wallet, "drawdown_pct": dd.quantize(RATIO_PLACES)})

    accounts = []
    for key in sorted(set(submitted) | set(rejected) | set(accepted)):
        count = sum(rejected[key].values())
        accounts.append({
            "client": key[0], "venue": key[1], "submitted": submitted[key],
            "accepted": accepted[key], "rejected": count,
            "acceptance_rate": format((Decimal(accepted[key]) / submitted[key]
                                       ).quantize(Decimal("0.0001")), "f")
            if submitted[key] else None,
            "by_code": dict(sorted(rejected[key].items()))})
    totals: Counter[str] = Counter()
    for codes in rejected.values():
        totals.update(codes)
    breakdown: dict[str, Any] = {
        "submitted": sum(submitted.values()), "accepted": sum(accepted.values()),
        "rejected": sum(totals.values()),
        "by_code": [{"code": c, "count": n, "message": messages[c]}
                    for c, n in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))],
        "accounts": accounts}

    out.mkdir(parents=True, exist_ok=True)
    meta = {"source": "event_log", "events": seq, "filter": where.as_json()}
    documents: dict[str, Any] = {
        "reconciliation_history": {**meta, "records": reconciliations},
        "sized_down_events": {**meta, "events_sized_down": sized},
        "margin_snapshots": {**meta, "transitions": margins},
        "execution_logs": {**meta, "entries": executions},
        "rejection_breakdown": {**meta, **breakdown},
    }
    for name, doc in documents.items():
        (out / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    rows = trade_rows(trades)
    write_csv(out / "trades.csv", TRADE_COLUMNS, rows)
    write_parquet(out / "trades.parquet", TRADE_COLUMNS, rows)
    write_csv(out / "equity.csv", EQUITY_COLUMNS, equity)
    write_parquet(out / "equity.parquet", EQUITY_COLUMNS, equity)
    return {"reconciliation_history": len(reconciliations), "sized_down_events": len(sized),
            "margin_snapshots": len(margins), "execution_logs": len(executions),
            "rejection_breakdown": int(breakdown["rejected"]), "trades": len(rows),
            "equity": len(equity)}
