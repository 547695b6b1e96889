"""Order rate limits per client (seed 004: 5 a second and 60 a minute for
strategies; configurable per client, API callers too).

A sliding log of the client's recent order times per window: exact (no bucket
edges to burst across) and bounded (a window never holds more than its limit).
The caller passes the clock, so the strategy host limits on the engine's clock
(deterministic in a replay or a backtest) and the API on the wall clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)


@dataclass(slots=True)
class _Window:
    span: timedelta
    times: deque[datetime] = field(default_factory=deque)

    def wait(self, now: datetime, limit: int) -> timedelta | None:
        """How long until one more fits (None: it fits now)."""
        times = self.times
        horizon = now - self.span
        while times and times[0] <= horizon:
            times.popleft()
        while len(times) > limit:  # the limit was lowered: keep only what it allows
            times.popleft()
        if len(times) < limit:
            return None
        return times[0] + self.span - now


@dataclass(frozen=True, slots=True)
class RateRefusal:
    window: str  # "second" | "minute"
    limit: int
    retry_after: timedelta


class OrderRates:
    """Per client: may another order go now? ``take`` records it when it may."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[_Window, _Window]] = {}
        self.refused: dict[str, int] = {}  # per client, since the start

    def take(self, client: str, now: datetime, per_second: int | None,
             per_minute: int | None) -> RateRefusal | None:
        if per_second is None and per_minute is None:
            return None
        windows = self._windows.get(client)
        if windows is None:
            windows = self._windows[client] = (_Window(SECOND), _Window(MINUTE))
        second, minute = windows
        for window, limit, name in ((second, per_second, "second"),
                                    (minute, per_minute, "minute")):
            if limit is None:
                continue
            wait = window.wait(now, limit)
            if wait is not None:
                self.refused[client] = self.refused.get(client, 0) + 1
                return RateRefusal(name, limit, wait)
        if per_second is not None:
            second.times.append(now)
        if per_minute is not None:
            minute.times.append(now)
        return None

    def recent(self, client: str, now: datetime) -> tuple[int, int]:
        """Orders in the last second and minute (for the risk page's usage bars)."""
        windows = self._windows.get(client)
        if windows is None:
            return 0, 0
        return tuple(sum(1 for t in w.times if t > now - w.span)  # type: ignore[return-value]
                     for w in windows)
