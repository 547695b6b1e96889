"""What runs after a commit: handlers registered by event type.

The command bus hands every committed batch to ``PostCommit.dispatch`` once, as
``Recorded`` events (numbered, with their account, encoded once). Each handler
gets the batch's events of the types it registered for (or all of them), in log
order. A handler that raises is logged and skipped: nothing after a commit may
stop the bus, and the commit is durable whatever a handler does.

Registered today (see ``TradingSystem``): the broadcast to sockets and
dashboards, the alert rules, the Prometheus counters.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from app.store.event_log import Recorded

log = logging.getLogger(__name__)

Handler = Callable[[list[Recorded]], None]


@dataclass(frozen=True, slots=True)
class _Registration:
    name: str
    handler: Handler
    types: frozenset[type] | None  # None: every event


class PostCommit:
    def __init__(self) -> None:
        self._registrations: list[_Registration] = []

    def on(self, name: str, handler: Handler, *types: type) -> None:
        """Call ``handler`` after each commit with the batch's events of ``types``
        (all events if none are named). ``name`` is for the log."""
        self._registrations.append(_Registration(name, handler,
                                                 frozenset(types) if types else None))

    @property
    def names(self) -> list[str]:
        return [r.name for r in self._registrations]

    def dispatch(self, records: list[Recorded]) -> None:
        if not records:
            return
        for registration in self._registrations:
            wanted = registration.types
            mine = records if wanted is None else [r for r in records
                                                   if type(r.event) in wanted]
            if not mine:
                continue
            try:
                registration.handler(mine)
            except Exception:
                log.exception("post-commit handler %s failed on %d events",
                              registration.name, len(mine))
