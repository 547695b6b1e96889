"""Events <-> JSON-ready dicts, driven by the dataclasses' own type hints.

Decimals travel as strings (never floats), datetimes as ISO 8601 with their
UTC offset, enums as their values, nested dataclasses as objects. Decoding
rebuilds the exact same frozen values, so a decoded log replays into the
same state as the live one.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import datetime
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any, TypeVar

from app.domain import events as domain_events
from app.domain.events import Event

_T = TypeVar("_T")

EVENT_TYPES: dict[str, type] = {
    cls.__name__: cls for cls in typing.get_args(domain_events.Event)
}


def encode(value: Any) -> Any:
    """A JSON-ready rendering of a domain value."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    raise TypeError(f"cannot encode {type(value).__name__}")


def encode_event(event: Event) -> tuple[str, dict[str, Any]]:
    # Widened to ``type``: mypy takes ``type[SomeDataclass]`` for unhashable (it reads
    # the instances' ``__hash__``), though every class is hashable.
    cls: type = type(event)
    return cls.__name__, _encoder(cls)(event)


# ---- compiled encoders -----------------------------------------------------------------
# ``encode`` inspects every value; on the order path that reflection cost more than
# the SQL. An event class's encoder is built once from its type hints and renders
# exactly what ``encode`` would.

Encoder = typing.Callable[[Any], Any]


@cache
def _encoder(cls: type) -> Encoder:
    hints = _hints(cls)
    parts = tuple((f.name, _field_encoder(hints[f.name])) for f in dataclasses.fields(cls))

    def encode_dataclass(value: Any) -> dict[str, Any]:
        return {name: getattr(value, name) if enc is None else enc(getattr(value, name))
                for name, enc in parts}
    return encode_dataclass


_last_instant: tuple[datetime | None, str] = (None, "")


def _isoformat(value: datetime) -> str:
    # The events of one engine step share one clock reading (the same object):
    # render it once.
    global _last_instant
    last = _last_instant
    if last[0] is value:
        return last[1]
    text = value.isoformat()
    _last_instant = (value, text)
    return text


def _field_encoder(hint: Any) -> Encoder | None:
    """How to render a value of ``hint``; None when it is already JSON-ready."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        inner = _field_encoder(options[0]) if len(options) == 1 else encode
        if inner is None:
            return None
        return lambda v: None if v is None else inner(v)
    if origin in (tuple, list) or origin is dict:
        return encode
    if hint in (str, int, bool):
        return None
    if hint is Decimal:
        return str
    if hint is datetime:
        return _isoformat
    if isinstance(hint, type) and issubclass(hint, Enum):
        return lambda v: v.value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _encoder(hint)
    return encode


def decode_value(cls: type[_T], raw: Any) -> _T:
    """A domain value (a dataclass) back from what ``encode`` made of it."""
    value: _T = _decode(cls, raw)
    return value


def decode_event(type_name: str, payload: dict[str, Any]) -> Event:
    cls = EVENT_TYPES.get(type_name)
    if cls is None:
        raise ValueError(f"unknown event type {type_name!r}")
    event: Event = _decode(cls, payload)
    return event


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _decode(hint: Any, raw: Any) -> Any:
    if raw is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _decode(options[0], raw)
    if origin is tuple:
        args = typing.get_args(hint)
        item = args[0]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(item, v) for v in raw)
        return tuple(_decode(a, v) for a, v in zip(args, raw, strict=True))
    if origin is list:
        return [_decode(typing.get_args(hint)[0], v) for v in raw]
    if origin is dict:
        _, value_hint = typing.get_args(hint)
        return {k: _decode(value_hint, v) for k, v in raw.items()}
    if hint is Decimal:
        return Decimal(raw)
    if hint is datetime:
        return datetime.fromisoformat(raw)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(raw)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = _hints(hint)
        return hint(**{f.name: _decode(hints[f.name], raw[f.name])
                       for f in dataclasses.fields(hint) if f.name in raw})
    return raw
