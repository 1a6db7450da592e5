"""Stores under test: each contract test runs against every backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator

import pytest

from riskbudget_sidecar.engine.config import SharedSettings, StoreSettings
from riskbudget_sidecar.store import SqliteStore, Store, open_store
from tests.engine.builders import NOW
from tests.store.valkey import ValkeyProcess

OpenStore = Callable[..., Any]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "riskbudget.sqlite3"


@pytest.fixture
def open_sqlite(db_path: Path) -> Iterator[OpenStore]:
    """Open SqliteStores on one file (`open_sqlite(**settings, fallback_log=..., busy_timeout=...)`);
    each is closed after the test."""
    opened: list[SqliteStore] = []

    def open_(*, fallback_log: Callable[[dict], None] | None = None, busy_timeout: float = 5.0,
              **settings: Any) -> SqliteStore:
        store = SqliteStore(StoreSettings(path=str(db_path), **settings),
                            fallback_log=fallback_log, busy_timeout=busy_timeout)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def open_any(request: pytest.FixtureRequest, db_path: Path, tmp_path: Path) -> AsyncIterator[OpenStore]:
    """Open a store of each backend in turn, through `open_store`; "redis" is SQLite shared
    through a real valkey-server started for the test."""
    valkey = ValkeyProcess(tmp_path / "valkey").start() if request.param == "redis" else None
    shared = SharedSettings(url=valkey.url, timeout=2.0) if valkey else None
    opened: list[Store] = []

    def open_(**settings: Any) -> Store:
        backend = "memory" if request.param == "memory" else "sqlite"
        store = open_store(StoreSettings(backend=backend, path=str(db_path), **settings), shared=shared,
                           lot_size_of=lambda symbol: 1.0, price_of=lambda symbol: 100.0,
                           strategies=("alpha", "beta"), now=lambda: NOW)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        await store.stop()
    if valkey:
        valkey.stop()


@pytest.fixture
async def store(open_any: OpenStore) -> Store:
    """Started, as the sidecar starts it (a shared store takes no change before it reconciled)."""
    opened = open_any()
    await opened.start()
    return opened

