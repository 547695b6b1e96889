"""What seed 000's three sandbox scenarios share: ``ma_crossover`` strategies on a
paper venue, run through the strategy host as in the server, reported, then seed
000's validation checklist (app/scenarios/seed000.py) and the scenario's own lines."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from app.domain.events import (
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    TradeClosed,
)
from app.domain.risk import DEFAULT_PROFILE, OrderSizedDown, RiskProfile, SizingMode
from app.domain.strategies import CreateStrategy
from app.scenarios import checks, seed000
from app.scenarios.harness import PROBE_CLIENT, Market, Run, build_run
from app.scenarios.report import Check, Report
from app.strategies.bars import Bar
from app.strategies.common import BPS
from app.strategies.ma_crossover import MA_CROSSOVER, MaCrossover, MaSignal

CLIENT = "sandbox"
# The platform's default profile without seed 004's losing-streak breaker: a day of
# small crossover trades would otherwise leave the client reduce-only after three
# losses, and the scenario validates order handling over the whole day (the daily
# loss and drawdown breakers stay on).
SANDBOX_PROFILE = replace(DEFAULT_PROFILE, breakers=replace(DEFAULT_PROFILE.breakers,
                                                            consecutive_losses=None))
ZERO = Decimal(0)


@dataclass(slots=True)
class Entry:
    """An entry a strategy placed, with the strategy's RSI when it decided."""

    order_id: int
    strategy: str
    rsi: Decimal | None


@dataclass(slots=True)
class Sandbox:
    name: str
    title: str
    market: Market
    params: dict[str, dict[str, Any]]  # strategy id -> ma_crossover parameters
    profile: RiskProfile
    leverage: Decimal
    run: Run = field(init=False)
    entries: list[Entry] = field(default_factory=list)
    rsi_refusals: int = 0
    filtered: Counter[str] = field(default_factory=Counter)
    _cursor: int = 0
    _watched: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.run = build_run(self.market, (CLIENT, PROBE_CLIENT), leverage=self.leverage,
                             profile=self.profile)

    def start(self, minutes: float | None) -> None:
        creates = [CreateStrategy(sid, MA_CROSSOVER.name, CLIENT, self.market.venue,
                                  MA_CROSSOVER.validate(p), "scenario")
                   for sid, p in self.params.items()]
        self.run.run(minutes, strategies=creates, on_step=self._watch)

    def _watch(self, run: Run, now: datetime) -> None:
        """After each step: note each new entry with the RSI its strategy decided on,
        and each signal the RSI or the filters stopped."""
        new, self._cursor = run.events[self._cursor:], len(run.events)
        for e in new:
            if type(e) is not OrderSubmitted:
                continue
            sid = e.spec.tags.strategy
            if sid is not None and sid in self.params and not e.spec.reduce_only:
                self.entries.append(Entry(e.order_id, sid, self._strategy(sid).model.rsi.value))
        for sid in self.params:
            last = self._strategy(sid).last_signal
            if last is not None and last.at == now and last.reason.startswith("filtered"):
                self.filtered[last.reason.split(":", 1)[1].split()[0]] += 1

    def _strategy(self, sid: str) -> MaCrossover:
        instance = self.run.host.instance(sid)
        assert isinstance(instance, MaCrossover)
        if sid not in self._watched:  # count the crosses RSI refused, as they happen
            self._watched.add(sid)
            decide = instance.model.on_bar

            def watched(bar: Bar) -> MaSignal:
                decision = decide(bar)
                if "does not confirm" in decision.reason:
                    self.rsi_refusals += 1
                return decision

            instance.model.on_bar = watched  # type: ignore[method-assign]
        return instance

    def report(self, extra: Callable[[Sandbox], list[Check]]) -> Report:
        run = self.run
        report = Report(self.name, self.title)
        report.add(f"market: {self.market.description}")
        if run.first_at is not None and run.last_at is not None:
            report.add(f"ran {run.updates} updates, {run.first_at:%Y-%m-%d %H:%M} → "
                       f"{run.last_at:%Y-%m-%d %H:%M} UTC")
        for sid, p in self.params.items():
            report.add(f"strategy {sid}: ma_crossover "
                       + ", ".join(f"{k}={v}" for k, v in sorted(p.items())))
        mode = self.profile.sizing.mode.value
        if self.profile.sizing.mode is SizingMode.NONE:
            mode += " (strategies' orders: conservative, the engine's default for them)"
        report.add(f"risk profile: sizing {mode} (max impact "
                   f"{self.profile.sizing.max_impact_bps} bps), spread ≤ "
                   f"{self.profile.sizing.max_spread_bps or '-'} bps, L1 ≥ "
                   f"{self.profile.sizing.min_l1_depth_notional or '-'}, 1m volume ≥ "
                   f"{self.profile.sizing.min_volume_1m_notional or '-'}; leverage "
                   f"{self.leverage}x; seed 003's position limits")
        ours = [e for e in run.events if type(e) is OrderSubmitted
                and e.spec.tags.strategy in self.params]
        kinds = Counter(f"{e.spec.type.value}{' reduce-only' if e.spec.reduce_only else ''}"
                        for e in ours)
        ids = {e.order_id for e in ours}
        rejected = Counter(e.code for e in run.events
                           if type(e) is OrderRejected and e.order_id in ids)
        fills = [e for e in run.events if type(e) is OrderFilled and e.order_id in ids]
        sized = [e for e in run.events if type(e) is OrderSizedDown and e.order_id in ids]
        trades = [e.trade for e in run.events if type(e) is TradeClosed
                  and e.trade.client == CLIENT]
        by_kind = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
        report.add(f"orders: {len(ours)} ({by_kind})"
                   f"; fills {len(fills)}; sized down {len(sized)}")
        if rejected:
            report.add("rejections: " + ", ".join(f"{k}={v}" for k, v in sorted(rejected.items())))
        report.add(f"signals stopped: RSI {self.rsi_refusals}, strategy filters "
                   + (", ".join(f"{k} {v}" for k, v in sorted(self.filtered.items())) or "0"))
        net = sum((t.net_pnl for t in trades), ZERO)
        report.add(f"closed trades: {len(trades)}, net {checks.money(net)}")
        for t in trades[-3:]:
            report.add(f"  {t.symbol} {t.direction} qty {t.qty} entry {t.entry_price:.2f} "
                       f"exit {t.exit_price:.2f} net {checks.money(t.net_pnl)} ({t.exit_reason})")
        s = run.engine.summary(CLIENT, self.market.venue)
        report.add(f"account {CLIENT}: equity {checks.money(s.equity)}, realized "
                   f"{checks.money(s.realized_pnl)}, fees {checks.money(s.fees)}, funding "
                   f"{checks.money(s.funding)}, unrealized {checks.money(s.unrealized_pnl)}")
        first = next(iter(self.params.values()))
        seed_lines = seed000.checklist(
            run, strategies=set(self.params), symbol=first["symbol"],
            limit_offset_bps=Decimal(str(first.get("limit_offset_bps", 5))),
            stop_pct=Decimal(str(first.get("stop_pct", 2))),
            stop_spread_bps=Decimal(str(first.get("stop_limit_spread_bps", 10))))
        for c in seed_lines:
            report.check(c)
        for c in extra(self):
            report.check(c)
        return report


def entry_filters(sb: Sandbox, line: str, *, max_spread_bps: Decimal | None = None,
                  min_l1_depth: Decimal | None = None) -> Check:
    """Every entry went out on a book inside the filters (checked on the book the
    strategy decided on, as recorded)."""
    if not sb.entries:
        return Check.na(line, "no entry was placed in this run")
    bad = []
    for entry in sb.entries:
        top = sb.run.tops[entry.order_id]
        spread = top.spread_bps
        spec = next(e.spec for e in sb.run.events if type(e) is OrderSubmitted
                    and e.order_id == entry.order_id)
        depth = top.ask_depth if spec.side.sign > 0 else top.bid_depth
        too_wide = max_spread_bps is not None and (spread is None or spread > max_spread_bps)
        too_thin = min_l1_depth is not None and depth < min_l1_depth
        if too_wide or too_thin:
            bad.append(entry.order_id)
    widest = max((sb.run.tops[e.order_id].spread_bps or ZERO for e in sb.entries), default=ZERO)
    return Check.of(line, not bad,
                    f"{len(sb.entries)} entries; widest spread at entry {widest:.2f} bps"
                    + (f"; {len(bad)} outside: {bad[:5]}" if bad else ""))


__all__ = ["BPS", "CLIENT", "Entry", "Sandbox", "entry_filters"]
