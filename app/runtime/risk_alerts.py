"""The risk controls' alerts: a tripped breaker is a CRITICAL condition until an
operator resets it (raised again at start-up for trips that survived a restart),
and a margin window about to raise requirements beyond an account's headroom is
a WARNING until the window has begun."""

from __future__ import annotations

from typing import Any

from app.domain.risk import BreakerReset, BreakerTripped, MarginWindowChanged, MarginWindowWarning
from app.runtime.alerts import AlertMonitor


def breaker_key(client: str, breaker: str) -> str:
    return f"breaker:{breaker}:{client}"


def window_key(venue: str, client: str) -> str:
    return f"margin_window:{venue}:{client}"


def _tripped(monitor: AlertMonitor, e: BreakerTripped) -> None:
    monitor.raise_alert("critical", f"Breaker tripped: {e.breaker.value.replace('_', ' ')}",
                        f"{e.client} moved to {e.state.value.replace('_', '-')}: {e.message}",
                        e.client, key=breaker_key(e.client, e.breaker.value))


def _reset(monitor: AlertMonitor, e: BreakerReset) -> None:
    monitor.resolve(breaker_key(e.client, e.breaker.value),
                    f"reset by {e.actor}: {e.reason}")


def _window_warning(monitor: AlertMonitor, e: MarginWindowWarning) -> None:
    monitor.raise_alert("warning", "Margin window ahead",
                        f"{e.client} on {e.venue}: from {e.starts_at:%H:%M} UTC "
                        f"({e.window or 'base'} requirements) margin would be "
                        f"{e.margin_then:.2f} against equity {e.equity:.2f}",
                        e.client, key=window_key(e.venue, e.client))


def _window_changed(monitor: AlertMonitor, e: MarginWindowChanged) -> None:
    for snapshot in e.snapshots:
        monitor.resolve(window_key(e.venue, snapshot.client),
                        f"window {e.current or 'base'} began")


def install(monitor: AlertMonitor) -> None:
    monitor.rule(BreakerTripped, _tripped)
    monitor.rule(BreakerReset, _reset)
    monitor.rule(MarginWindowWarning, _window_warning)
    monitor.rule(MarginWindowChanged, _window_changed)


def raise_standing(monitor: AlertMonitor, engine: Any) -> None:
    """After recovery: the trips that survived a restart are alerts again."""
    for client in sorted(engine.state.risk):
        for trip in engine.state.risk[client].tripped.values():
            _tripped(monitor, trip)
