"""The registered strategy kinds, by name. A kind registers itself on import;
``KINDS`` imports the built-in ones."""

from __future__ import annotations

from app.strategies.base import StrategyKind

_KINDS: dict[str, StrategyKind] = {}


def register(kind: StrategyKind) -> StrategyKind:
    if kind.name in _KINDS and _KINDS[kind.name] is not kind:
        raise ValueError(f"strategy kind {kind.name!r} is registered twice")
    _KINDS[kind.name] = kind
    return kind


def kinds() -> dict[str, StrategyKind]:
    """Every registered kind (the built-in ones are always there)."""
    from app.strategies import (  # noqa: F401  (register themselves)
        arbitrage,
        atr_trend,
        demo,
        ma_crossover,
    )

    return dict(sorted(_KINDS.items()))


def kind(name: str) -> StrategyKind | None:
    return kinds().get(name)
