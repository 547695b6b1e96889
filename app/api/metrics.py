"""Prometheus metrics: order outcomes by reason, fills, command latency,
WebSocket clients, trading states, event-log lag, alerts and their sinks.

``/metrics`` needs no login (scrapers), so nothing in it names a client: the
trading state is labelled for the global scope and for venues, and the kill
switches on clients (or on one client's account at a venue) are only counted,
per state.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.domain.events import Event, OrderAccepted, OrderFilled, OrderRejected
from app.domain.trading_state import GLOBAL, TradingState
from app.runtime import gc_tuning
from app.runtime.alerts_store import SEVERITIES
from app.runtime.system import TradingSystem
from app.services.queries import Recorded, trading_states


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.orders = Counter("perpdesk_orders_total", "Orders by outcome and reason code",
                              ["outcome", "reason"], registry=r)
        self.fills = Counter("perpdesk_fills_total", "Fills", ["liquidity"], registry=r)
        self.latency = Histogram(
            "perpdesk_command_latency_seconds", "Command submitted -> durable, seconds",
            buckets=(.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5), registry=r)
        self.batch = Histogram("perpdesk_commit_batch_events", "Events per group commit",
                               buckets=(1, 2, 5, 10, 20, 50, 100, 500), registry=r)
        self.ws_clients = Gauge("perpdesk_ws_clients", "Connected WebSocket clients",
                                registry=r)
        self.trading_state = Gauge("perpdesk_trading_state",
                                   "1 for the state in force, globally and per venue",
                                   ["scope", "state"], registry=r)
        self.client_scopes = Gauge("perpdesk_client_scopes_restricted",
                                   "Client (or client and venue) scopes whose kill switch is "
                                   "in this state", ["state"], registry=r)
        self.log_lag = Gauge("perpdesk_event_log_lag",
                             "Work items queued for the engine and not yet committed",
                             registry=r)
        self.last_seq = Gauge("perpdesk_event_log_last_seq", "Last committed event sequence",
                              registry=r)
        self._alerts: AlertMetrics | None = None
        self.registry.register(GcMetrics())

    def observe_records(self, records: list[Recorded]) -> None:
        """A post-commit handler (registered for fills, acceptances and rejections)."""
        self.observe_events([r.event for r in records])

    def observe_events(self, events: list[Event]) -> None:
        for e in events:
            match e:
                case OrderFilled():
                    self.fills.labels(e.liquidity.value).inc()
                case OrderAccepted():
                    self.orders.labels("accepted", "").inc()
                case OrderRejected():
                    self.orders.labels("rejected", e.code).inc()

    def observe(self, kind: str, seconds: float, events: int) -> None:
        if kind == "command":
            self.latency.observe(seconds)
        elif kind == "batch" and events:
            self.batch.observe(events)

    def refresh(self, system: TradingSystem, ws_clients: int) -> None:
        if self._alerts is None:  # read from the monitor at each scrape
            self._alerts = AlertMetrics(system.alerts)
            self.registry.register(self._alerts)
        self.ws_clients.set(ws_clients)
        self.log_lag.set(system.bus.backlog)
        self.last_seq.set(system.bus.last_committed_seq)
        self.trading_state.clear()
        states = trading_states(system)
        self.trading_state.labels("global",
                                  states.get(GLOBAL, TradingState.ACTIVE).value).set(1)
        restricted = {state: 0 for state in TradingState if state is not TradingState.ACTIVE}
        for scope, state in states.items():
            if scope.client is not None:
                if state in restricted:
                    restricted[state] += 1
            elif not scope.is_global:  # a venue: names no client
                self.trading_state.labels(scope.describe(), state.value).set(1)
        for state, n in restricted.items():
            self.client_scopes.labels(state.value).set(n)


class GcMetrics(Collector):
    """The garbage collector's passes under ``tuned_gc`` (app/runtime/gc_tuning.py): how
    many per generation (2: the sweeps), the longest pause and its CPU time, and how
    many objects are frozen out of the passes."""

    def collect(self) -> Iterator[Metric]:
        pacer = gc_tuning.current
        if pacer is None:  # outside the server's lifespan
            return
        stats = pacer.stats
        passes = CounterMetricFamily("perpdesk_gc_passes", "Cycle-collector passes by generation "
                                     "(2: full sweeps)", labels=["generation"])
        longest = GaugeMetricFamily("perpdesk_gc_pause_max_seconds",
                                    "Longest cycle-collector pause by generation",
                                    labels=["generation"])
        longest_cpu = GaugeMetricFamily("perpdesk_gc_pause_max_cpu_seconds",
                                        "CPU time of the longest pause by generation (the "
                                        "rest of it waited for a core)",
                                        labels=["generation"])
        for g in range(3):
            passes.add_metric([str(g)], stats.passes[g])
            longest.add_metric([str(g)], stats.max_s[g])
            longest_cpu.add_metric([str(g)], stats.max_cpu_s[g])
        frozen = GaugeMetricFamily("perpdesk_gc_frozen_objects",
                                   "Objects frozen out of the cycle collector's passes",
                                   value=gc.get_freeze_count())
        yield from (passes, longest, longest_cpu, frozen)


class AlertMetrics(Collector):
    """Alerts active by severity, alert events, and each sink's deliveries, retries,
    queue and drops (a full webhook queue drops its oldest event: ``overflow``)."""

    def __init__(self, monitor: Any):
        self.monitor = monitor

    def collect(self) -> Iterator[Metric]:
        m = self.monitor
        active = GaugeMetricFamily("perpdesk_alerts_active", "Active alerts by severity",
                                   labels=["severity"])
        levels = [a.level for a in m.book.active_alerts()]
        for severity in SEVERITIES:
            active.add_metric([severity], levels.count(severity))
        events = CounterMetricFamily("perpdesk_alert_events",
                                     "Alert events: raised, escalated, resolved",
                                     labels=["event"])
        for kind in ("raised", "escalated", "resolved"):
            events.add_metric([kind], m.events_total[kind])
        delivered = CounterMetricFamily("perpdesk_alert_sink_delivered",
                                        "Alert events a sink delivered", labels=["sink"])
        retries = CounterMetricFamily("perpdesk_alert_sink_retries",
                                      "Delivery attempts a sink retried", labels=["sink"])
        dropped = CounterMetricFamily("perpdesk_alert_sink_dropped",
                                      "Alert events a sink dropped: overflow (queue full), "
                                      "expired (retry horizon), rejected (4xx)",
                                      labels=["sink", "reason"])
        queued = GaugeMetricFamily("perpdesk_alert_sink_queue",
                                   "Alert events waiting in a sink", labels=["sink"])
        for stats in m.sink_stats():
            delivered.add_metric([stats.name], stats.delivered)
            retries.add_metric([stats.name], stats.retries)
            queued.add_metric([stats.name], stats.queued)
            for reason in ("overflow", "expired", "rejected"):
                dropped.add_metric([stats.name, reason], stats.dropped.get(reason, 0))
        yield from (active, events, delivered, retries, dropped, queued)
