"""The state store stops refusing once the database takes changes again, whoever folds the waiting
checks in. Found by a reviewer: only the writer thread's own fold cleared the refusal, so when a
change on the event loop (a fill, a release, an operator's halt) folded them first, nothing was
left for the writer to retry, and every CheckTrade failed closed, health NOT_SERVING, for good."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from riskbudget_sidecar.engine.types import TradingState
from riskbudget_sidecar.store import StoreError
from tests.store.test_sqlite import record_check, table


async def test_refusal_clears_once_the_database_takes_changes_even_if_the_event_loop_folded_first(
        open_sqlite, db_path: Path) -> None:
    store = open_sqlite(busy_timeout=0.05)
    told: list[str | None] = []
    store.watch(on_change=lambda: None, on_availability=lambda available: None,
                on_refusal=told.append)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the writer thread's fold is refused (locked)
    await record_check(store, "o-1")
    deadline = time.monotonic() + 5
    while store.available and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert not store.available  # refused: health NOT_SERVING, checks fail closed (as intended)

    blocker.execute("COMMIT")  # the database takes changes again
    blocker.close()
    # an operator's change (or a fill, a release) lands before the writer's 0.5 s retry;
    # its transaction folds the waiting check in, successfully
    await store.set_trading_state(TradingState.HALTED, "beta")
    assert table(db_path, "SELECT client_order_id FROM reservations") == [("o-1",)]

    await asyncio.sleep(0)  # the callback the store posted to the event loop

    assert store.available, "the store still says it refuses the journaled checks"
    try:
        await record_check(store, "o-2")
    except StoreError as error:
        raise AssertionError(f"a check still fails closed: {error}") from None
    assert told[-1] is None
