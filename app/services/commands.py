"""Running a command on the bus, with every failure as a ``ServiceError``."""

from __future__ import annotations

from typing import Any

from app.domain.commands import Command
from app.domain.rejections import CommandRefused
from app.runtime.bus import Committed, StorageUnavailable
from app.runtime.system import TradingSystem
from app.services.errors import refused, storage_unavailable


async def run(system: TradingSystem, command: Command, **hooks: Any) -> Committed:
    """Run ``command`` and return once it is durable (``hooks``: ``audit``, ``respond``,
    see ``CommandBus.execute``). A refusal of the engine or the log is raised as the
    ``ServiceError`` a caller answers with."""
    try:
        return await system.bus.execute(command, **hooks)
    except CommandRefused as exc:
        raise refused(exc) from None
    except StorageUnavailable as exc:
        raise storage_unavailable(exc) from None
