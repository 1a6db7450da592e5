"""Domain dataclasses to and from JSON, for the durable store and the logs.

Written by pydantic's compiled serializer: a CheckTrade's order and decision are
serialized on the hot path, and walking the dataclass in Python cost ten times as much.
Enums are written by value, tuples as lists, nested dataclasses as objects. Reading
follows the dataclass's type hints, so every domain type round-trips without a
converter of its own; it also takes enums by name, as earlier versions of the store
wrote them, so an older state file still loads.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from typing import Any, TypeVar

import pydantic

T = TypeVar("T")


def to_json(value: Any) -> str:
    """A dataclass instance (or a float, a tuple of plain values, None) as JSON text."""
    return _adapter(type(value)).dump_json(value, warnings=False).decode()


def to_dict(value: Any) -> dict[str, Any]:
    """A dataclass instance as a dict of JSON types (what `to_json` writes, parsed)."""
    return _adapter(type(value)).dump_python(value, mode="json", warnings=False)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """The `cls` instance `to_dict` wrote as `data`."""
    hints = _hints(cls)
    return cls(**{name: _decode(hints[name], item) for name, item in data.items()})


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
        return hint[value] if isinstance(value, str) and value in hint.__members__ else hint(value)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value)
    return value


@functools.cache
def _adapter(cls: type) -> pydantic.TypeAdapter:
    return pydantic.TypeAdapter(cls)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)
