"""Fan-out of committed events to WebSocket subscribers.

Each subscriber has a bounded queue. Publishing never waits: a subscriber
whose queue is full is marked overflowed and unsubscribed at once (nothing more
is queued for it), and its ``on_overflow`` tells the connection, which sends
what was queued and a resync hint (the last sequence it received) and closes,
all within a bounded time (``SLOW_CONSUMER_SECONDS`` in app/api/ws.py; a
connection whose sends stall is aborted). So one slow client can never slow
the engine or the others, nor hold more than its queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.runtime.topics import visible_to

Message = dict[str, Any]
log = logging.getLogger(__name__)


@dataclass(eq=False)
class Subscriber:
    topics: frozenset[str] | None  # None = every topic
    clients: frozenset[str] | None  # None = every client (unscoped principal)
    queue: asyncio.Queue[Message]
    overflowed: bool = False
    last_seq: int = 0
    on_overflow: Callable[[], None] | None = field(default=None, repr=False)

    def view(self, message: Message) -> Message | None:
        """The message as this subscriber may see it, or None if not at all."""
        if self.topics is not None and message["topic"] not in self.topics:
            return None
        return visible_to(message, self.clients)


class Broadcaster:
    def __init__(self, queue_size: int = 1000):
        self.queue_size = queue_size
        self._subscribers: set[Subscriber] = set()

    @property
    def count(self) -> int:
        return len(self._subscribers)

    def subscribe(self, topics: frozenset[str] | None, clients: frozenset[str] | None
                  ) -> Subscriber:
        sub = Subscriber(topics, clients, asyncio.Queue(self.queue_size))
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)

    def publish(self, messages: list[Message]) -> None:
        for sub in list(self._subscribers):
            for message in messages:
                seen = sub.view(message)
                if seen is None:
                    continue
                try:
                    sub.queue.put_nowait(seen)
                except asyncio.QueueFull:
                    sub.overflowed = True
                    self._subscribers.discard(sub)
                    if sub.on_overflow is not None:
                        try:
                            sub.on_overflow()
                        except Exception:  # one subscriber's bug must not stop the others
                            log.exception("on_overflow of a subscriber failed")
                    break
