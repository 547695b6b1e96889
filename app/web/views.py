"""View models: plain dicts for the templates, computed from the read side
(app/services/queries.py) for the clients a principal may see. No HTML here,
no I/O."""

from __future__ import annotations

from collections import deque
from datetime import datetime
from decimal import Decimal
from typing import Any

from app.domain.trading_state import GLOBAL, Scope, TradingState, effective_state
from app.runtime.system import TradingSystem
from app.services import risk as risk_service
from app.services.audit_log import AUDIT_ACTIONS as AUDIT_ACTIONS
from app.services.queries import Reader, equity_by_client, markets, utc_now
from app.services.recaps import RecapShown

ZERO = Decimal(0)
CENT = Decimal("0.01")


def money(d: Decimal | None, places: str = "0.01") -> str:
    if d is None:
        return "—"
    q = d.quantize(Decimal(places))
    return f"{q if q else abs(q):,f}"  # never "-0.00"


def signed_money(d: Decimal) -> str:
    q = d.quantize(CENT)
    if not q:
        return "0.00"  # never "-0.00"
    return f"+{q:,f}" if q > 0 else f"{q:,f}"


def average(d: Decimal | None) -> str:
    """An average price: at most 4 decimals, no trailing zeros."""
    if d is None:
        return "—"
    return format(d.quantize(Decimal("0.0001")).normalize(), "f")


def price(d: Decimal | None) -> str:
    if d is None:
        return "—"
    return format(d.normalize(), "f") if d == d.to_integral() else format(d, "f")


def tone(d: Decimal) -> str:
    """CSS class for a P&L figure, as displayed (to the cent): pos / neg / flat."""
    q = d.quantize(CENT)
    return "pos" if q > 0 else "neg" if q < 0 else "flat"


def summary(reader: Reader, clients: list[str], first_event_at: datetime | None
            ) -> dict[str, Any]:
    """Seed 001's portfolio summary, plus equity, funding and fees."""
    sums: dict[str, Decimal] = {}
    for s in reader.summaries(clients):
        for field in ("deposits", "withdrawals", "equity", "wallet", "available",
                      "margin_used", "realized_pnl", "unrealized_pnl", "fees", "funding"):
            sums[field] = sums.get(field, ZERO) + getattr(s, field)
    capital = sums.get("deposits", ZERO) - sums.get("withdrawals", ZERO)
    trades, wins = reader.trade_counts(clients)
    cumulative = (sums.get("realized_pnl", ZERO) - sums.get("fees", ZERO)
                  + sums.get("funding", ZERO))
    equity = sums.get("equity", ZERO)
    total_pnl = cumulative + sums.get("unrealized_pnl", ZERO)
    pct = total_pnl / capital * 100 if capital else ZERO
    elapsed = (utc_now() - first_event_at) if first_event_at else None
    elapsed_days = (Decimal(elapsed.days) + Decimal(elapsed.seconds) / 86400
                    if elapsed else ZERO)
    # Realistic APR (seed 001): (P&L / capital) / (days elapsed / 365); meaningless
    # over minutes, so shown only after an hour.
    apr = ((pct / (elapsed_days / 365)).quantize(CENT)
           if elapsed_days * 24 >= 1 and capital else None)
    margin = sums.get("margin_used", ZERO)
    return {
        "capital": money(capital), "equity": money(equity), "wallet": money(sums.get("wallet")),
        "available": money(sums.get("available")),
        "utilization": money(margin / equity * 100 if equity > 0 else ZERO),
        "realized": signed_money(sums.get("realized_pnl", ZERO)),
        "realized_tone": tone(sums.get("realized_pnl", ZERO)),
        "unrealized": signed_money(sums.get("unrealized_pnl", ZERO)),
        "unrealized_tone": tone(sums.get("unrealized_pnl", ZERO)),
        "fees": money(sums.get("fees", ZERO)), "funding": signed_money(sums.get("funding", ZERO)),
        "pnl": signed_money(total_pnl), "pnl_pct": money(pct, "0.001"),
        "pnl_tone": tone(total_pnl), "trades": trades,
        "win_rate": money(Decimal(wins) / trades * 100, "0.1") if trades else "—",
        "apr": f"{apr}%" if apr is not None else "—",
        "leg_outs": 0,
    }


def positions(reader: Reader, clients: list[str]) -> list[dict[str, Any]]:
    rows = []
    for v in reader.positions(clients):
        p = v.position
        pnl = p.unrealized_pnl(v.mark)
        liquidation = v.liquidation_price
        rows.append({"client": v.client, "venue": v.venue, "symbol": v.symbol,
                     "side": p.direction, "qty": price(abs(p.qty)),
                     "entry": average(p.avg_entry), "mark": price(v.mark),
                     "liq": price(liquidation) if liquidation is not None else "—",
                     "pnl": signed_money(pnl), "tone": tone(pnl),
                     "notional": money(v.notional), "fees": money(p.fees),
                     "funding": signed_money(p.funding)})
    return rows


def strategies(rows: list[Any]) -> list[dict[str, Any]]:
    """The strategies panel: ``rows`` from ``services.strategies.overview``."""
    out = []
    for v in rows:
        r = v.record
        pnl = v.realized_pnl + (v.unrealized_pnl or ZERO)
        signal = {1: "long", -1: "short", 0: "flat"}.get(v.last_signal, "—") \
            if v.last_signal is not None else "—"
        out.append({"id": r.strategy_id, "kind": r.kind, "client": r.client, "venue": r.venue,
                    "symbol": v.symbol or "—", "status": r.status.value,
                    "position": price(v.position_qty) if v.position_qty else "flat",
                    "entry": average(v.avg_entry), "pnl": signed_money(pnl), "tone": tone(pnl),
                    "signal": signal, "signal_reason": v.last_signal_reason,
                    "signal_at": v.last_signal_at.strftime("%H:%M:%S")
                    if v.last_signal_at is not None else ""})
    return out


def backtests(runs: list[Any]) -> list[dict[str, Any]]:
    """The backtests panel: ``runs`` from ``services.backtests`` (newest first)."""
    out = []
    for run in runs:
        m = run.metrics
        pnl = Decimal(m["total_pnl"]) if m.get("total_pnl") else None
        pct = run.progress_pct
        out.append({
            "id": run.run_id, "status": run.status.value, "strategy": run.request.strategy,
            "dataset": run.request.dataset, "symbol": run.request.symbol,
            "venue": run.request.venue, "bars_done": run.bars_done,
            "bars_total": run.bars_total, "progress": str(pct) if pct is not None else "",
            "progress_text": f"{run.bars_done:,}/{run.bars_total:,} bars" if run.bars_total
            else f"{run.bars_done:,} bars",
            "trades": "—" if run.trades is None else run.trades,
            "pnl": signed_money(pnl) if pnl is not None else "—",
            "tone": tone(pnl) if pnl is not None else "flat",
            "return": _percent(m.get("total_return")), "sharpe": _ratio(m.get("sharpe")),
            "max_dd": _percent(m.get("max_drawdown_pct"), already=True),
            "error": run.error, "requested_by": run.requested_by,
            "created": run.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            "done": run.status.value == "done"})
    return out


def _percent(text: str | None, already: bool = False) -> str:
    if not text:
        return "—"
    value = Decimal(text) if already else Decimal(text) * 100
    return f"{value.quantize(CENT):f}%"


def _ratio(text: str | None) -> str:
    return "—" if not text else f"{Decimal(text).quantize(CENT):f}"


def open_orders(reader: Reader, clients: list[str], limit: int = 50) -> list[dict[str, Any]]:
    return [order_row(o) for o in reader.open_orders(clients, limit)]


def order_row(o: Any) -> dict[str, Any]:
    s = o.spec
    return {"id": o.order_id, "coid": o.client_order_id, "client": s.client, "venue": s.venue,
            "symbol": s.symbol, "side": s.side.value, "type": s.type.value.replace("_", " "),
            "qty": price(s.qty), "price": price(s.price), "trigger": price(s.trigger_price),
            "tif": s.time_in_force.value.upper(), "filled": price(o.filled_qty),
            "avg": average(o.avg_fill_price),
            "status": o.status.value, "status_label": o.status.value.replace("_", " "),
            "reason": o.reject_code or o.cancel_reason or "",
            "reason_text": o.reject_message or o.cancel_reason or "",
            "open": o.is_open, "post_only": s.post_only, "reduce_only": s.reduce_only,
            "created": o.created_at.strftime("%H:%M:%S")}


def order_details(o: Any) -> dict[str, Any]:
    """Everything about one order, for the details drawer (label, value pairs)."""
    s = o.spec
    tags = s.tags
    flags = [name for name, on in (("post-only", s.post_only), ("reduce-only", s.reduce_only))
             if on]
    facts: list[tuple[str, str]] = [
        ("Client order id", o.client_order_id or "—"),
        ("Account", f"{s.client} · {s.venue}"),
        ("Instrument", s.symbol),
        ("Side", s.side.value),
        ("Type", s.type.value.replace("_", " ")),
        ("Time in force", s.time_in_force.value.upper()
         + (f" until {stamp(s.expire_at)}" if s.expire_at else "")),
        ("Flags", ", ".join(flags) or "none"),
        ("Quantity", price(s.qty)),
        ("Limit price", price(s.price)),
        ("Trigger", f"{price(s.trigger_price)} on {s.trigger_source.value}"
         if s.trigger_price is not None else "—"),
        ("Filled", price(o.filled_qty)),
        ("Average fill", average(o.avg_fill_price)),
        ("Fees", money(o.fees, "0.0001")),
        ("Status", o.status.value.replace("_", " ")),
    ]
    if o.reject_code:
        facts.append(("Rejected", f"{o.reject_code}: {o.reject_message or ''}".rstrip(": ")))
    if o.cancel_reason:
        facts.append(("Cancel reason", o.cancel_reason))
    if o.replaces is not None:
        facts.append(("Replaces", f"#{o.replaces}"))
    if o.replaced_by is not None:
        facts.append(("Replaced by", f"#{o.replaced_by}"))
    for label, value in (("Strategy", tags.strategy), ("Signal", tags.signal_id),
                         ("Parent trade", tags.parent_trade_id),
                         ("Exit reason", tags.exit_reason)):
        if value:
            facts.append((label, value))
    facts.append(("Created (UTC)", stamp(o.created_at)))
    if o.updated_at is not None:
        facts.append(("Updated (UTC)", stamp(o.updated_at)))
    return {"id": o.order_id, "status": o.status.value, "facts": facts}


def stamp(at: datetime) -> str:
    """A timestamp for people: UTC to the second."""
    return at.strftime("%Y-%m-%d %H:%M:%S")


def blotter(reader: Reader, status: str | None = None, symbol: str | None = None,
            limit: int = 100) -> list[dict[str, Any]]:
    """The newest orders matching the filters: one page of the read side's order list
    (which examines a bounded number of orders, like the API's pages)."""
    page = reader.recent_orders(status=status, symbol=symbol, limit=limit)
    return [order_row(o) for o in page.orders]


def exits(reader: Reader, clients: list[str], limit: int = 20) -> list[dict[str, Any]]:
    """The newest ``limit`` closed trades of ``clients``."""
    return [trade_row(t) for t in reader.recent_trades(clients, limit)]


def trade_row(t: Any) -> dict[str, Any]:
    return {"id": t.trade_id, "client": t.client, "venue": t.venue, "symbol": t.symbol,
            "direction": t.direction, "qty": price(t.qty),
            "entry": average(t.entry_price), "exit": average(t.exit_price),
            "pnl": signed_money(t.net_pnl), "pnl_pct": money(t.pnl_pct, "0.001"),
            "tone": tone(t.net_pnl), "fees": money(t.fees), "funding": signed_money(t.funding),
            "reason": t.exit_reason, "opened": t.opened_at.strftime("%Y-%m-%d %H:%M:%S"),
            "closed": t.closed_at.strftime("%Y-%m-%d %H:%M:%S"),
            "duration": f"{t.duration_seconds:.0f}s"}


def marks(reader: Reader) -> list[dict[str, Any]]:
    replay = getattr(reader.system, "replay", None)
    # A replay's marks carry the data's time: their age is on its clock.
    now = replay.clock() if replay is not None else utc_now()
    limit = reader.system.settings.stale_mark_seconds
    rows = []
    for m in markets(reader.system):
        age = m.mark_age(now)
        rows.append({"venue": m.instrument.venue, "symbol": m.instrument.symbol,
                     "mark": price(m.mark), "bid": price(m.bid), "ask": price(m.ask),
                     "age": f"{age:.0f}s" if age is not None else "never",
                     "stale": age is None or age > limit})
    return rows


def replay_status(system: Any) -> dict[str, Any] | None:
    """``serve --replay``: what is replayed and how far it has got (None: no replay)."""
    replay = getattr(system, "replay", None)
    if replay is None:
        return None
    status = replay.status()
    return {**status, "data_at": f"{replay.clock():%Y-%m-%d %H:%M:%S} UTC"}


def scopes(reader: Reader) -> list[dict[str, Any]]:
    """Every scope an operator might act on: its own setting (``state``), the state in
    force for the accounts it covers (``in_force``: each distinct state with the scope
    that sets it and the accounts concerned), and the narrower scopes that are
    restricted on their own (``narrower``: what enabling this scope leaves in force)."""
    states = reader.trading_states()
    principal = reader.principal
    clients = reader.clients()
    venues = reader.venues()
    accounts = [(c, v) for c in clients for v in venues]
    effective = {account: effective_state(states, *account) for account in accounts}
    candidates: list[Scope] = [GLOBAL] if principal.clients is None else []
    for c in clients:
        candidates.append(Scope(c, None))
        candidates.extend(Scope(c, v) for v in venues)
    if principal.clients is None:
        candidates.extend(Scope(None, v) for v in venues)
    out = []
    for scope in candidates:
        state = states.get(scope, TradingState.ACTIVE)
        groups: dict[tuple[TradingState, Scope], list[str]] = {}
        for (c, v), (in_force, source) in effective.items():
            if scope.covers(c, v):
                groups.setdefault((in_force, source), []).append(f"{c} · {v}")
        in_force_rows = [
            {"state": s.value, "source": src.describe(), "own": src == scope,
             "accounts": names}
            for (s, src), names in sorted(groups.items(),
                                          key=lambda g: (-g[0][0].severity, _order(g[0][1])))]
        narrower = [{"label": other.describe(), "state": states[other].value}
                    for other in narrower_restricted(reader, scope)]
        out.append({"client": scope.client or "", "venue": scope.venue or "",
                    "label": scope.describe(), "state": state.value,
                    "account": scope.client is not None and scope.venue is not None,
                    "in_force": in_force_rows, "narrower": narrower})
    return out


def _order(scope: Scope) -> tuple[bool, str]:
    """A sort key for scopes (their fields may be None, which do not compare): global,
    then clients (each with its accounts), then venues, as the panel lists them."""
    return (not scope.is_global, scope.describe())


def _narrower(inner: Scope, outer: Scope) -> bool:
    """Does ``outer`` cover every account ``inner`` covers (and is it wider)?"""
    return inner != outer and (outer.client is None or outer.client == inner.client) and (
        outer.venue is None or outer.venue == inner.venue)


def narrower_restricted(reader: Reader, scope: Scope) -> list[Scope]:
    """The restricted scopes inside ``scope`` that the reader may act on."""
    states = reader.trading_states()
    principal = reader.principal
    return [other for other, state in sorted(states.items(), key=lambda i: _order(i[0]))
            if state is not TradingState.ACTIVE and _narrower(other, scope)
            and (other.client is not None or principal.clients is None)
            and (other.client is None or principal.can_access(other.client))]


def banner(reader: Reader) -> dict[str, Any]:
    """The loudest state among what this principal can see."""
    worst, where = TradingState.ACTIVE, "global"
    for c in reader.clients():
        for v in reader.venues():
            state, scope = reader.state_in_force(c, v)
            if state.severity > worst.severity:
                worst, where = state, scope.describe()
    restricted = [s for s in scopes(reader) if s["state"] != "active"]
    return {"state": worst.value, "where": where, "restricted": restricted}


class EquityHistory:
    """A bounded per-client history of equity samples for the equity curve."""

    def __init__(self, maxlen: int = 2000):
        self._samples: dict[str, deque[tuple[int, Decimal]]] = {}
        self.maxlen = maxlen

    def sample(self, system: TradingSystem) -> None:
        ts = int(utc_now().timestamp())
        for c, equity in equity_by_client(system).items():
            series = self._samples.setdefault(c, deque(maxlen=self.maxlen))
            if series and series[-1][0] == ts:
                series.pop()
            series.append((ts, equity))

    def series(self, clients: list[str]) -> list[dict[str, Any]]:
        by_time: dict[int, Decimal] = {}
        for c in clients:
            for ts, eq in self._samples.get(c, ()):
                by_time[ts] = by_time.get(ts, ZERO) + eq
        return [{"time": ts, "value": str(eq.quantize(CENT))} for ts, eq in sorted(by_time.items())]


# ---- the audit log ------------------------------------------------------------------------

_STATE_ACTIONS = frozenset({"reduce-only", "disable-trading", "enable-trading"})


def state_text(value: str | None) -> str:
    return (value or "active").replace("_", "-")


def audit_entry(row: Any) -> dict[str, Any]:
    """One audit entry for people: the state change as ``active → reduce-only``, the
    facts worth reading as label/value pairs, close-all results as rows; never raw
    JSON (details the page does not know are listed as they are)."""
    d = dict(row.details or {})
    change = None
    facts: list[tuple[str, str]] = []
    results = None
    action = row.action
    if action in _STATE_ACTIONS:
        change = f"{state_text(row.previous)} → {state_text(d.pop('state', None))}"
        if d.pop("changed", True) is False:
            facts.append(("", "already in force: nothing changed"))
        canceled = d.pop("canceled_orders", 0)
        if canceled:
            facts.append(("Orders canceled", str(canceled)))
    elif action == "close-all":
        change = f"{state_text(row.previous)} → reduce-only" if row.previous else None
        results = [{"client": r.get("client", ""), "venue": r.get("venue", ""),
                    "symbol": r.get("symbol", ""), "qty_before": r.get("qty_before", ""),
                    "filled": r.get("filled_qty", ""), "avg": r.get("avg_price") or "—",
                    "status": r.get("status", ""), "message": r.get("message") or ""}
                   for r in d.pop("results", []) if isinstance(r, dict)]
    elif action == "position-close":
        change = (f"{d.pop('symbol', '')} {d.pop('qty_before', '')} → "
                  f"{d.pop('qty_after', '')}")
        order_id, status = d.pop("order_id", None), d.pop("status", "")
        filled, avg = d.pop("filled_qty", ""), d.pop("avg_price", None)
        if order_id is not None:
            facts.append(("Order", f"#{order_id} {status}, filled {filled}"
                          + (f" @ {avg}" if avg else "")))
    elif action == "login-failed":
        facts += [("Wrong password", str(d.pop("failures", 0))),
                  ("Throttled", str(d.pop("refused", 0))),
                  ("From", str(d.pop("address", ""))),
                  ("Via", ", ".join(d.pop("via", [])) or "—")]
        d.pop("name", None)
        window = d.pop("window_start", None)
        d.pop("window_s", None)
        if window:
            facts.append(("Minute from", str(window)[:19].replace("T", " ")))
    elif action == "login":
        facts += [("From", str(d.pop("address", ""))), ("Via", str(d.pop("via", "")))]
        d.pop("name", None)
    elif action in ("user-add", "user-remove"):
        facts += [("User", str(d.pop("user", ""))), ("Role", str(d.pop("role", ""))),
                  ("Clients", str(d.pop("clients", "")) or "all")]
        if "sessions_ended" in d:
            facts.append(("Sessions ended", str(d.pop("sessions_ended"))))
    elif action == "key-create":
        facts += [("Key", f"{d.pop('name', '')} ({d.pop('prefix', '')})"),
                  ("Role", str(d.pop("role", ""))),
                  ("Clients", str(d.pop("clients", "")) or "all")]
    elif action == "key-revoke":
        keys = d.pop("keys", [])
        facts.append(("Keys", ", ".join(f"{k.get('name')} ({k.get('prefix')}, {k.get('role')})"
                                        for k in keys if isinstance(k, dict)) or "—"))
        d.pop("match", None)
    # Whatever is left (a newer writer's details): listed, readable, never dropped.
    facts += [(key.replace("_", " ").capitalize(), _plain(value)) for key, value in d.items()]
    return {"id": row.id, "at": stamp(row.at), "actor": row.actor, "action": action,
            "scope": row.scope, "reason": row.reason, "change": change, "facts": facts,
            "results": results}


def _plain(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value) or "—"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_plain(v)}" for k, v in value.items()) or "—"
    return "—" if value is None else str(value)


# ---- the risk page ------------------------------------------------------------------------

def _bar(label: str, used: Any, limit: Any, shown: str) -> dict[str, Any]:
    """One usage bar: how much of ``limit`` is used (None: no limit, no bar)."""
    if limit is None or used is None:
        return {"label": label, "shown": shown, "pct": None, "level": "none"}
    pct = min(Decimal(used) / Decimal(limit) * 100, Decimal(100)) if limit else Decimal(100)
    level = "critical" if pct >= 90 else "warning" if pct >= 60 else "ok"
    return {"label": label, "shown": shown, "pct": f"{pct:.0f}", "level": level}


def risk_cards(system: Any, principal: Any, clients: list[str]) -> list[dict[str, Any]]:
    """Per client: usage bars per limit, breaker states (with what tripped them), the
    sizing defaults and where the profile comes from."""
    cards = []
    for client in clients:
        view = risk_service.risk_view(system, principal, client)
        usage, p = view.usage, view.profile
        bars = [
            _bar("Open orders", usage["open_orders"], p.max_open_orders,
                 f"{usage['open_orders']} / {p.max_open_orders or '∞'}"),
            _bar("Orders last second", usage["orders_last_second"], p.orders_per_second,
                 f"{usage['orders_last_second']} / {p.orders_per_second or '∞'}"),
            _bar("Orders last minute", usage["orders_last_minute"], p.orders_per_minute,
                 f"{usage['orders_last_minute']} / {p.orders_per_minute or '∞'}"),
        ]
        for m in usage["margin"]:
            ratio = m["ratio"]
            cap = p.margin_ratio_cap
            bars.append(_bar(f"Margin · {m['venue']}", ratio, cap,
                             f"{ratio * 100:.1f}% / {cap * 100:.0f}%" if ratio is not None
                             and cap is not None else "—"))
        for pos in usage["positions"]:
            bars.append(_bar(f"{pos['symbol']} size · {pos['venue']}", pos["size"],
                             pos["max_size"], f"{pos['size']} / {pos['max_size'] or '∞'}"))
            if pos["notional"] is not None:
                bars.append(_bar(f"{pos['symbol']} notional · {pos['venue']}",
                                 pos["notional"], pos["max_notional"],
                                 f"{pos['notional']:.2f} / {pos['max_notional'] or '∞'}"))
        drawdown = None
        if view.peak_equity and view.peak_equity > 0:
            drawdown = (view.peak_equity - view.equity) / view.peak_equity * 100
        cards.append({
            "client": client, "source": view.source, "bars": bars,
            "equity": f"{view.equity:.2f}", "windows": usage["margin_windows"],
            "peak": f"{view.peak_equity:.2f}" if view.peak_equity is not None else "—",
            "drawdown": f"{max(drawdown, Decimal(0)):.2f}%" if drawdown is not None else "—",
            "breakers": [{"name": b.breaker.value.replace("_", " "), "key": b.breaker.value,
                          "limit": b.limit or "off", "current": b.current,
                          "action": b.action.replace("_", "-"), "tripped": b.tripped,
                          "figures": dict(b.tripped.figures) if b.tripped else {}}
                         for b in view.breakers],
            "sizing": {"mode": p.sizing.mode.value, "max_impact_bps": p.sizing.max_impact_bps,
                       "aggressive": p.sizing.aggressive_max_impact_bps,
                       "max_spread_bps": p.sizing.max_spread_bps,
                       "min_l1": p.sizing.min_l1_depth_notional,
                       "min_volume": p.sizing.min_volume_1m_notional},
        })
    return cards


# ---- the funding-rate arbitrage (seed 001) -----------------------------------------------------

def pct(d: Decimal | None, places: str = "0.01") -> str:
    return "—" if d is None else f"{d.quantize(Decimal(places)):f}"


def arbitrage(v: Any) -> dict[str, Any]:
    """The arbitrage's panel: seed 001's portfolio summary, its active trades with their
    spreads and unrealized P&L, recent exits with their reasons, and whether open
    trades are unmanaged (the arbitrage stopped, or a venue halted)."""
    m = v.metrics
    active = []
    for t in sorted(v.book.open.values(), key=lambda t: t.created_at):
        mark = v.marks.get(t.trade_id)
        pnl = mark.unrealized if mark is not None else None
        active.append({
            "id": t.trade_id, "symbol": t.symbol, "status": t.status.value,
            "legs": f"long {t.long_venue} / short {t.short_venue}",
            "qty": average(t.matched_qty or t.target_qty),
            "entry_spread": pct(t.entry_spread_bps), "size": money(t.position_size_usd),
            "spread": pct(mark.current_spread_bps) if mark is not None else "—",
            "pnl": signed_money(pnl) if pnl is not None else "—",
            "tone": tone(pnl) if pnl is not None else "flat",
            "projected": money(t.projected_profit), "confidence": t.confidence})
    exits = [{"id": t.trade_id, "symbol": t.symbol, "status": t.status.value,
              "closed": stamp(t.closed_at) if t.closed_at else "",
              "profit": signed_money(t.actual_profit or ZERO),
              "tone": tone(t.actual_profit or ZERO),
              "reason": (t.exit_reason or t.status.value).replace("_", " ")}
             for t in list(reversed(v.book.closed))[:20]
             if t.status.value != "cancelled"]
    halted = [venue for venue, state in v.states.items() if state is TradingState.HALTED]
    restricted = [venue for venue, state in v.states.items()
                  if state is TradingState.REDUCE_ONLY]
    warning = ""
    if v.book.open and not v.running:
        warning = (f"The arbitrage is stopped: {len(v.book.open)} open trade(s) are "
                   "unmanaged (hedged, but no exit will be taken) until it starts again.")
    elif v.book.open and halted:
        warning = (f"{', '.join(halted)} halted: open arbitrage trades are unmanaged "
                   "(no exit, no hedge) until the switch is lifted.")
    elif restricted:
        warning = f"{', '.join(restricted)} reduce-only: no new entries; exits still run."
    return {
        "running": v.running,
        "status": v.record.status.value if v.record is not None else "not started",
        "capital": money(m.starting_capital), "available": money(m.available_capital),
        "utilization": pct(m.utilization_pct, "0.1"), "trades": m.total_trades,
        "win_rate": pct(m.win_rate * 100 if m.win_rate is not None else None, "0.1"),
        "pnl": signed_money(m.cumulative_pnl), "pnl_pct": pct(m.pnl_pct, "0.001"),
        "pnl_tone": tone(m.cumulative_pnl),
        "apr": pct(m.realistic_apr_pct, "0.1"), "leg_outs": m.leg_out_count,
        "leg_out_loss": money(m.leg_out_loss), "active": active, "exits": exits,
        "warning": warning}


def leg_outs(records: list[Any]) -> list[dict[str, Any]]:
    return [{"trade": lo.trade_id, "symbol": lo.symbol, "at": stamp(lo.at),
             "phase": lo.phase, "leg": f"{lo.filled_leg} on {lo.filled_venue}",
             "qty": average(lo.filled_qty), "missing": average(lo.missing_qty),
             "hedge": (f"closed {average(lo.hedge_qty)} at {average(lo.hedge_price)}"
                       if lo.hedge_executed else "not hedged"),
             "loss": money(lo.loss), "reason": lo.reason.replace("_", " ")}
            for lo in records]


def recap(shown: RecapShown, clients: list[str]) -> dict[str, Any]:
    """The daily recap panel: seed 000 §3.2's figures as shown (money to the cent,
    rates in %), each with the API's exact value beside it (``exact``)."""
    r = shown.recap
    out: dict[str, Any] = {"day": shown.day.isoformat(), "clients": ", ".join(clients),
                           "error": shown.error, "pending": r is None and not shown.error}
    if r is None:
        return out
    out.update({
        "total_pnl": signed_money(r.total_pnl), "total_pnl_tone": tone(r.total_pnl),
        "win_rate": money(r.win_rate * 100, "0.1") if r.win_rate is not None else "—",
        "max_drawdown": money(r.max_drawdown), "max_drawdown_pct": money(r.max_drawdown_pct),
        "sharpe": money(r.sharpe) if r.sharpe is not None else "—",
        "trades": r.trades, "rejections": r.rejections,
        "rejections_by_code": sorted(r.rejections_by_code.items(), key=lambda kv: (-kv[1], kv[0])),
        "exact": {"total_pnl": str(r.total_pnl),
                  "win_rate": "" if r.win_rate is None else str(r.win_rate),
                  "max_drawdown": str(r.max_drawdown),
                  "max_drawdown_pct": str(r.max_drawdown_pct),
                  "sharpe": "" if r.sharpe is None else str(r.sharpe)},
    })
    return out
