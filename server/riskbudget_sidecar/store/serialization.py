"""Domain dataclasses to and from JSON-ready dicts, for the durable store and the logs.

Enums are written by name, tuples as lists, nested dataclasses as dicts. Reading
follows the dataclass's type hints, so every domain type round-trips without a
converter of its own.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")

_PLAIN = (str, int, float, type(None))


def to_dict(value: Any) -> dict[str, Any]:
    """A dataclass instance as a dict of JSON types."""
    return {name: _encode(getattr(value, name)) for name in _field_names(type(value))}


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """The `cls` instance `to_dict` wrote as `data`."""
    hints = _hints(cls)
    return cls(**{name: _decode(hints[name], item) for name, item in data.items()})


def _encode(value: Any) -> Any:
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, tuple):
        return [_encode(item) for item in value]
    return to_dict(value)


def _decode(hint: Any, value: Any) -> Any:
    """`value` read as `hint`: a dataclass, an enum, tuple[X, ...], X | None or a JSON type."""
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        (hint,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _decode(hint, value)
    if origin is tuple:
        item = typing.get_args(hint)[0]
        return tuple(_decode(item, element) for element in value)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint[value]
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value)
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(cls))
