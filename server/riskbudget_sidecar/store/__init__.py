"""Trading state the sidecar keeps: positions, reservations, decisions, trading states,
overrides and the recommendation and decision logs, behind the Store protocol."""

from __future__ import annotations

from typing import Any, Callable

from ..engine.config import StoreSettings
from .base import Store
from .errors import StoreError
from .memory import MemoryStore
from .sqlite import SqliteStore

__all__ = ["MemoryStore", "SqliteStore", "Store", "StoreError", "open_store"]


def open_store(settings: StoreSettings, *,
               fallback_log: Callable[[dict[str, Any]], None] | None = None) -> Store:
    """The backend `settings.backend` names; `fallback_log` takes the decisions the
    decision log cannot (the memory backend never needs it)."""
    if settings.backend == "memory":
        return MemoryStore(settings)
    return SqliteStore(settings, fallback_log=fallback_log, busy_timeout=settings.busy_timeout)
