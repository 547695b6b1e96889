"""The single writer: commands and market data in, events out. No I/O."""

from app.engine.engine import Engine, EngineConfig
from app.engine.state import EngineState

__all__ = ["Engine", "EngineConfig", "EngineState"]
