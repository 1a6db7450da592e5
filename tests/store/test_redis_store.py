"""RedisStore, the sidecar's side of the shared state, against a real valkey-server that
restarts empty: what the sidecars hold comes back, and changes still reach them all."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator

import pytest

from riskbudget_sidecar.engine.config import SharedSettings, StoreSettings
from riskbudget_sidecar.engine.types import FirmLimits, Position, Side, TradingState
from riskbudget_sidecar.store import RedisStore, StoreError
from riskbudget_sidecar.store.redis_ledger import LedgerUnavailable, RedisLedger
from riskbudget_sidecar.store.serialization import to_json
from riskbudget_sidecar.store.sqlite import SqliteStore
from tests.engine.builders import NOW, fill, order, reservation
from tests.store.builders import override
from tests.store.test_redis_ledger import server_time_ms
from tests.store.valkey import ValkeyProcess

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def valkey(tmp_path: Path) -> Iterator[ValkeyProcess]:
    with ValkeyProcess(tmp_path / "valkey") as running:
        yield running


@pytest.fixture
async def open_store(tmp_path: Path, valkey: ValkeyProcess) -> AsyncIterator[Callable[..., Any]]:
    """Start a RedisStore with its own state file under `name`, trading `strategies`, its
    clock `now`; each one still open is stopped after the test (`stop` stops one before)."""
    running: list[RedisStore] = []

    async def open_(name: str, *strategies: str, now: Callable[[], float] = lambda: NOW) -> RedisStore:
        store = RedisStore(StoreSettings(path=str(tmp_path / name / "state.sqlite3")),
                           SharedSettings(url=valkey.url, timeout=2.0),
                           lot_size_of=lambda symbol: 1.0, price_of=lambda symbol: 100.0,
                           live_price_of=lambda symbol: 100.0,
                           strategies=strategies, now=now)
        running.append(store)
        await store.start()
        return store

    async def stop(store: RedisStore) -> None:
        running.remove(store)
        await store.stop()

    open_.stop = stop
    yield open_
    for store in running:
        await store.stop()


@pytest.fixture
async def elsewhere(valkey: ValkeyProcess) -> AsyncIterator[RedisLedger]:
    """The ledger as a third sidecar sees it."""
    ledger = RedisLedger(valkey.url, timeout=2.0)
    yield ledger
    await ledger.close()


async def eventually(condition: Callable[[], Awaitable[bool] | bool], timeout: float = 30.0) -> None:
    """Wait for what travels through the server: a change, a reconnect and its resync."""
    async with asyncio.timeout(timeout):
        while not await _holds(condition):
            await asyncio.sleep(0.05)


async def _holds(condition: Callable[[], Awaitable[bool] | bool]) -> bool:
    """Whether the condition holds; not while the server does not answer (a connection the
    restart closed fails once)."""
    try:
        result = condition()
        return await result if asyncio.iscoroutine(result) else result
    except LedgerUnavailable:
        return False


async def test_the_operator_state_outlives_a_server_that_lost_it_and_clears_still_reach_all(
        open_store, valkey: ValkeyProcess, elsewhere: RedisLedger) -> None:
    first, second = await open_store("first", "alpha"), await open_store("second", "beta")
    await first.set_trading_state(TradingState.HALTED, "alpha")
    await first.add_override(override("ovr-1"))
    await eventually(lambda: second.overrides() == [override("ovr-1")])

    valkey.stop()
    valkey.start()  # empty: nothing was saved
    await elsewhere.put_override("ovr-2", to_json(override("ovr-2")))  # a change made after it
    await eventually(lambda: all(override("ovr-2") in store.overrides() for store in (first, second)))

    for store in (first, second):
        assert store.own_trading_state("alpha") is TradingState.HALTED
        assert store.overrides() == [override("ovr-1"), override("ovr-2")]
    assert await elsewhere.trading_states() == {"alpha": "HALTED"}
    assert set(await elsewhere.overrides()) == {"ovr-1", "ovr-2"}

    await second.remove_override("ovr-1")  # the server's word stands again: a clear reaches all
    await second.set_trading_state(TradingState.ACTIVE, "alpha")
    await eventually(lambda: first.own_trading_state("alpha") is TradingState.ACTIVE)
    assert first.overrides() == [override("ovr-2")]


async def test_a_sidecar_that_made_no_call_while_the_server_was_down_reasserts_its_book(
        open_store, valkey: ValkeyProcess, elsewhere: RedisLedger) -> None:
    store = await open_store("first", "alpha")
    await store.reserve(reservation(30, client_order_id="o-1"))
    await store.apply_fill(fill(Side.BUY, 10, client_order_id="o-1"))
    held = (await elsewhere.reservations(), await elsewhere.positions())

    valkey.stop()
    valkey.start()

    async def reasserted() -> bool:
        return (await elsewhere.reservations(), await elsewhere.positions()) == held
    await eventually(reasserted)
    assert held == ([("o-1", "alpha", "AAA", 20, round((NOW + 60) * 1000))], [("alpha", "AAA", 10)])


async def test_after_the_server_lost_its_data_no_grant_counts_without_the_sidecars_not_yet_back(
        open_store, valkey: ValkeyProcess, elsewhere: RedisLedger) -> None:
    first, second = await open_store("first", "alpha", now=time.time), await open_store("second", "beta")
    await second.apply_fill(fill(Side.BUY, 90, strategy="beta", client_order_id="o-beta"))
    await open_store.stop(second)  # not back yet when the first one is
    firm = FirmLimits(100.0, 1.0, symbol_limit=100 * 100.0, total_limit=1e9)  # 100 shares of AAA
    request = order(quantity=50, client_order_id="o-alpha")

    valkey.stop()
    valkey.start()  # empty: nothing was saved
    await eventually(first.ledger.asserted)  # the first one found the loss and put its book back
    with pytest.raises(StoreError, match="lost its data"):
        await first.hold_firm_wide(request, 50, firm, expires_at=time.time() + 60)
    await open_store("second", "beta")  # back: its 90 shares are on the server again
    await elsewhere._run("close the window", lambda redis: redis.set(elsewhere._keys["resync_until"], 0))
    grant = await first.hold_firm_wide(request, 50, firm, expires_at=time.time() + 60)

    assert grant.quantity == 10 and grant.symbol_limited


async def test_no_grant_reaches_a_server_that_lost_its_data_before_the_sidecar_put_its_book_back(
        open_store, valkey: ValkeyProcess, elsewhere: RedisLedger) -> None:
    first = await open_store("first", "alpha", now=time.time)
    firm = FirmLimits(100.0, 1.0, symbol_limit=100 * 100.0, total_limit=1e9)

    valkey.stop()
    valkey.start()  # empty, and the first call finds out: none may be granted before re-assertion
    outcomes = []
    for number in range(5):
        try:
            await first.hold_firm_wide(order(quantity=50, client_order_id=f"o-{number}"), 50, firm,
                                       expires_at=time.time() + 60)
            outcomes.append("granted")
        except StoreError:
            outcomes.append("refused")

    assert outcomes == ["refused"] * 5
    assert await elsewhere.reservations() == []


async def test_a_state_file_from_before_markers_were_remembered_counts_as_having_marked(
        open_store, valkey: ValkeyProcess, elsewhere: RedisLedger, tmp_path: Path) -> None:
    await open_store.stop(await open_store("first", "alpha"))
    with sqlite3.connect(tmp_path / "first" / "state.sqlite3") as db:
        db.execute("DROP TABLE shared_marked")  # as written by the version before

    valkey.stop()
    valkey.start()  # and the server lost its data meanwhile
    await open_store("first", "alpha")

    assert await elsewhere._run("read", lambda redis: redis.exists(elsewhere._keys["resync_until"])) == 1


async def test_a_sidecar_that_makes_no_call_puts_its_book_back_on_a_server_flushed_without_a_restart(
        open_store, elsewhere: RedisLedger) -> None:
    store = await open_store("first", "alpha")
    await store.apply_fill(fill(Side.BUY, 90, client_order_id="o-1"))

    await elsewhere._run("flush", lambda redis: redis.flushall())  # no connection breaks

    async def put_back() -> bool:
        return await elsewhere.positions() == [("alpha", "AAA", 90)]
    await eventually(put_back, timeout=10)
    assert await elsewhere._run("read", lambda redis: redis.exists(elsewhere._keys["resync_until"])) == 1


async def test_a_new_sidecar_on_an_empty_server_grants_at_once(open_store, elsewhere: RedisLedger) -> None:
    store = await open_store("first", "alpha", now=time.time)  # it never marked a server: nothing lost
    firm = FirmLimits(100.0, 1.0, symbol_limit=1e9, total_limit=1e9)

    grant = await store.hold_firm_wide(order(quantity=10), 10, firm, expires_at=time.time() + 60)

    assert grant.quantity == 10
    assert await elsewhere._run("read", lambda redis: redis.exists(elsewhere._keys["resync_until"])) == 0


async def test_only_the_sidecar_holding_a_reservation_frees_it_also_after_a_restart(
        open_store, elsewhere: RedisLedger) -> None:
    first, second = await open_store("first", "alpha"), await open_store("second", "beta")
    await first.reserve(reservation(30, client_order_id="o-1"))

    released = await second.release("o-1")
    await second.apply_fill(fill(Side.SELL, 5, strategy="beta", symbol="CCC", client_order_id="o-1"))

    assert released is False
    assert [r.client_order_id for r in await elsewhere.reservations()] == ["o-1"]
    assert await elsewhere.positions() == [("beta", "CCC", -5)]
    await open_store.stop(first)
    restarted = await open_store("first", "alpha")  # the same state file: the same holder
    assert await restarted.release("o-1") is True
    assert await elsewhere.reservations() == []


async def test_a_sidecar_whose_clock_runs_behind_the_servers_is_refused_firm_wide_grants(
        open_store, valkey: ValkeyProcess) -> None:
    clock = [await server_time_ms(valkey) / 1000 - 60]  # a minute behind: others would free its
    store = await open_store("first", "alpha", now=lambda: clock[0])  # reservations that early
    request, firm = order(quantity=10), FirmLimits(100.0, 1.0, symbol_limit=1e9, total_limit=1e9)

    with pytest.raises(StoreError, match="clock runs 6.\\.[0-9]+ s behind the shared server's"):
        await store.hold_firm_wide(request, 10, firm, expires_at=clock[0] + 60)
    clock[0] = await server_time_ms(valkey) / 1000 + 5  # set right (ahead does no harm)
    await store.expire(clock[0])  # the monitoring tick measures it again
    grant = await store.hold_firm_wide(request, 10, firm, expires_at=clock[0] + 60)

    assert grant.quantity == 10


async def test_a_fill_on_the_server_but_not_yet_in_the_book_survives_a_reassertion(
        open_store, elsewhere: RedisLedger, monkeypatch: pytest.MonkeyPatch) -> None:
    store = await open_store("first", "alpha")
    on_the_server = asyncio.Event()
    book_fill = SqliteStore.apply_fill

    async def slow_book_fill(self, fill_, **options):  # the server has it; the local book not yet
        on_the_server.set()
        await asyncio.sleep(0.05)
        return await book_fill(self, fill_, **options)
    monkeypatch.setattr(SqliteStore, "apply_fill", slow_book_fill)
    forget_marker = lambda redis: redis.hdel(store.ledger._keys["instances"], store.ledger.instance)

    filling = asyncio.create_task(store.apply_fill(fill(Side.BUY, 7)))
    await on_the_server.wait()
    await store.ledger._run("forget the marker", forget_marker)
    await store._reconcile(only_if_lost=True)  # re-asserts the book's positions
    await filling

    assert [(p.strategy, p.symbol, p.lots) for p in await elsewhere.positions()] == [("alpha", "AAA", 7)]


async def test_a_reservation_written_before_holders_were_named_is_read_and_released(
        open_store, elsewhere: RedisLedger) -> None:
    store = await open_store("first", "alpha")
    await store.reserve(reservation(30, client_order_id="o-old"))
    keys = store.ledger._keys
    legacy = lambda redis: redis.hset(keys["reservations"], "o-old", f"alpha\x1fAAA\x1f30\x1f{int(NOW * 1000) + 60_000}")
    await store.ledger._run("write the format before holders", legacy)

    held = await elsewhere.reservations()
    released = await elsewhere.release("o-old")  # anyone's, as before

    assert [r.client_order_id for r in held] == ["o-old"] and released


async def test_positions_put_back_without_live_prices_keep_the_servers_values_and_estimate_only_the_missing(
        tmp_path: Path, valkey: ValkeyProcess) -> None:
    store = RedisStore(StoreSettings(path=str(tmp_path / "restarted" / "state.sqlite3")),
                       SharedSettings(url=valkey.url, timeout=2.0),
                       lot_size_of=lambda symbol: 1.0, price_of=lambda symbol: 100.0,  # a warm-up's estimate
                       live_price_of=lambda symbol: None, strategies=("alpha",), now=lambda: NOW)
    other = RedisLedger(valkey.url, timeout=2.0, instance="other")
    await store.start()
    try:
        await other.set_positions([("beta", "AAA", 100)], "beta", {"AAA": 13_000})  # valued live at 130
        await store.set_positions([Position("alpha", "AAA", 10), Position("alpha", "BBB", 5)], "alpha")
        marks = await store.ledger._run("marks", lambda redis: redis.hgetall(store.ledger._keys["marks"]))
    finally:
        await other.close()
        await store.stop()

    assert marks == {"AAA": "13000", "BBB": "10000"}  # BBB, new to the server: the estimate


async def test_a_reservation_put_back_without_live_prices_keeps_the_servers_value(tmp_path: Path) -> None:
    def restartable(live_price_of: Callable[[str], float | None]) -> RedisStore:
        return RedisStore(StoreSettings(path=str(tmp_path / "alpha" / "state.sqlite3")),
                          SharedSettings(url=valkey.url, timeout=2.0),
                          lot_size_of=lambda symbol: 1.0, price_of=lambda symbol: 100.0,  # a warm-up's estimate
                          live_price_of=live_price_of, strategies=("alpha",), now=lambda: NOW)

    with ValkeyProcess(tmp_path / "valkey") as valkey:
        store = restartable(lambda symbol: 100.0)
        await store.start()
        await store.reserve(reservation(30, client_order_id="o-1"))
        await store.stop()
        valkey.stop()
        valkey.start()  # the server lost its data
        other = RedisLedger(valkey.url, timeout=2.0, instance="other")
        await other.set_positions([("beta", "AAA", 100)], "beta", {"AAA": 13_000})  # back at its live value
        store = restartable(lambda symbol: None)  # restarted before any live price
        await store.start()
        try:
            marks = await other._run("marks", lambda redis: redis.hgetall(other._keys["marks"]))
            held = [r.client_order_id for r in await other.reservations()]
        finally:
            await store.stop()
            await other.close()

    assert held == ["o-1"] and marks == {"AAA": "13000"}
