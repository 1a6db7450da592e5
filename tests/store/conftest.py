"""Stores under test: each contract test runs against every backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from riskbudget_sidecar.engine.config import StoreSettings
from riskbudget_sidecar.store import SqliteStore, Store, open_store

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


@pytest.fixture(params=["memory", "sqlite"])
def open_any(request: pytest.FixtureRequest, db_path: Path) -> Iterator[OpenStore]:
    """Open a store of each backend in turn, through `open_store`."""
    opened: list[Store] = []

    def open_(**settings: Any) -> Store:
        store = open_store(StoreSettings(backend=request.param, path=str(db_path), **settings))
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def store(open_any: OpenStore) -> Store:
    return open_any()

