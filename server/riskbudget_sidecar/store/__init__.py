"""Trading state the sidecar keeps: positions, reservations, decisions, trading states,
overrides and the recommendation and decision logs, behind the Store protocol."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from ..engine.config import SharedSettings, StoreSettings
from .base import Store
from .errors import StoreError
from .memory import MemoryStore
from .redis import RedisStore
from .sqlite import SqliteStore

__all__ = ["MemoryStore", "RedisStore", "SqliteStore", "Store", "StoreError", "open_store"]


def open_store(settings: StoreSettings, *, shared: SharedSettings | None = None,
               fallback_log: Callable[[dict[str, Any]], None] | None = None,
               lot_size_of: Callable[[str], float] = lambda symbol: 1.0,
               price_of: Callable[[str], float | None] = lambda symbol: None,
               live_price_of: Callable[[str], float | None] = lambda symbol: None,
               strategies: Sequence[str] = (), now: Callable[[], float] = lambda: 0.0,
               lot_sizes: str = "") -> Store:
    """The backend `settings.backend` names, shared through Redis/Valkey if `shared` is given.

    `fallback_log` takes the decisions the decision log cannot (the memory backend never
    needs it); the shared backend values lots with `lot_size_of` and `live_price_of`, else (a
    symbol the server has no value for either) `price_of`, an estimate such as a warm-up's; it re-asserts
    the positions of `strategies` (this sidecar's) and reads the time from `now`; `lot_sizes`
    (the config's, as text) must be the same in every sidecar sharing the server.
    """
    if shared is not None:
        return RedisStore(settings, shared, lot_size_of=lot_size_of, price_of=price_of, live_price_of=live_price_of,
                          strategies=strategies, now=now, lot_sizes=lot_sizes, fallback_log=fallback_log,
                          busy_timeout=settings.busy_timeout)
    if settings.backend == "memory":
        return MemoryStore(settings)
    return SqliteStore(settings, fallback_log=fallback_log, busy_timeout=settings.busy_timeout)
