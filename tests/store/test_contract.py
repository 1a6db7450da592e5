"""The Store contract, run against every backend (memory and SQLite)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from riskbudget_sidecar.engine.config import StoreSettings
from riskbudget_sidecar.engine.types import Position, Side, SymbolExposure, TradingState
from riskbudget_sidecar.store import MemoryStore, SqliteStore, Store, open_store
from tests.engine.builders import NOW, fill, order, reservation
from tests.store.builders import decision, decision_record, override, recommendation

# -- the book ---------------------------------------------------------------------------------


async def test_reserve_holds_the_order_in_the_book(store: Store) -> None:
    await store.reserve(reservation(30, client_order_id="o-1"))

    assert store.book.reservation("o-1") == reservation(30, client_order_id="o-1")
    assert store.book.exposure("alpha", "AAA") == SymbolExposure(0, pending_buy=30)


async def test_reserving_the_same_order_again_holds_it_once(store: Store) -> None:
    await store.reserve(reservation(30))

    await store.reserve(reservation(30))

    assert store.book.reservations() == [reservation(30)]
    assert store.book.exposure("alpha", "AAA") == SymbolExposure(0, pending_buy=30)


async def test_a_reservation_the_book_refuses_changes_nothing(store: Store) -> None:
    with pytest.raises(ValueError):
        await store.reserve(reservation(0))

    assert store.book.reservations() == []


async def test_release_frees_the_reservation(store: Store) -> None:
    await store.reserve(reservation(30))

    released = await store.release("o-1")

    assert released is True
    assert store.book.reservations() == []


async def test_release_of_an_order_without_reservation_says_so(store: Store) -> None:
    assert await store.release("never-reserved") is False


async def test_fill_moves_the_position_and_settles_its_reservation(store: Store) -> None:
    await store.reserve(reservation(100))

    position, remaining = await store.apply_fill(fill(Side.BUY, 100))

    assert (position, remaining) == (Position("alpha", "AAA", 100), 0.0)
    assert store.book.reservations() == []
    assert store.book.positions() == [Position("alpha", "AAA", 100)]


async def test_a_fill_with_an_execution_id_is_applied_once_until_the_id_is_forgotten(store: Store) -> None:
    await store.reserve(reservation(100))
    executed = dataclasses.replace(fill(Side.BUY, 40), execution_id="x-1")

    first = await store.apply_fill(executed, forget_after=NOW + 60)
    again = await store.apply_fill(executed, forget_after=NOW + 60)
    kept = store.remembered_fill("x-1")
    forgotten = store.forget_fills_before(NOW + 60)
    after = await store.apply_fill(executed, forget_after=NOW + 120)

    assert first == again == (Position("alpha", "AAA", 40), 60.0)
    assert kept.fill == executed and kept.position == Position("alpha", "AAA", 40)
    assert forgotten == 1
    assert after == (Position("alpha", "AAA", 80), 20.0)


async def test_partial_fill_leaves_the_rest_reserved(store: Store) -> None:
    await store.reserve(reservation(100))

    _, remaining = await store.apply_fill(fill(Side.BUY, 40))

    assert remaining == 60
    assert store.book.reservation("o-1") == reservation(60)


async def test_set_positions_replaces_the_whole_book(store: Store) -> None:
    await store.apply_fill(fill(Side.BUY, 10, strategy="beta", symbol="CCC"))

    held = await store.set_positions([Position("alpha", "AAA", 5), Position("alpha", "BBB", 0)], None)

    assert held == 1
    assert store.book.positions() == [Position("alpha", "AAA", 5)]


async def test_set_positions_of_one_strategy_leaves_the_others(store: Store) -> None:
    await store.apply_fill(fill(Side.BUY, 10, strategy="beta", symbol="CCC"))
    await store.apply_fill(fill(Side.BUY, 10, strategy="alpha", symbol="BBB"))

    await store.set_positions([Position("alpha", "AAA", -5)], "alpha")

    assert sorted(store.book.positions(), key=repr) == [
        Position("alpha", "AAA", -5), Position("beta", "CCC", 10)]


async def test_expire_drops_the_reservations_due_by_now(store: Store) -> None:
    await store.reserve(reservation(10, client_order_id="due", expires_at=NOW))
    await store.reserve(reservation(10, client_order_id="later", expires_at=NOW + 1))

    expired = await store.expire(NOW)

    assert [r.client_order_id for r in expired] == ["due"]
    assert [r.client_order_id for r in store.book.reservations()] == ["later"]


async def test_expire_and_forget_with_a_limit_take_the_soonest_due_and_leave_the_rest(store: Store) -> None:
    for n in (3, 1, 2):
        await store.reserve(reservation(10, client_order_id=f"o-{n}", expires_at=NOW + n))
        request = order(client_order_id=f"o-{n}")
        store.remember(request, decision(request), forget_after=NOW + n)

    first = await store.expire(NOW + 5, limit=2)
    forgotten_first = store.forget_decisions_before(NOW + 5, limit=2)
    rest = await store.expire(NOW + 5, limit=2)
    forgotten_rest = store.forget_decisions_before(NOW + 5, limit=2)

    assert [r.client_order_id for r in first] == ["o-1", "o-2"]
    assert [r.client_order_id for r in rest] == ["o-3"]
    assert (forgotten_first, forgotten_rest) == (2, 1)
    assert store.book.reservations() == [] and store.remembered("o-3") is None


# -- remembered decisions ------------------------------------------------------------------------


def test_remember_keeps_the_decision_for_its_order_id(store: Store) -> None:
    request = order(client_order_id="o-1")

    store.remember(request, decision(request), forget_after=NOW + 120)

    kept = store.remembered("o-1")
    assert (kept.order, kept.decision, kept.forget_after) == (request, decision(request), NOW + 120)
    assert store.remembered("o-2") is None


def test_forget_drops_the_decisions_due_by_now(store: Store) -> None:
    for client_order_id, forget_after in (("o-1", NOW), ("o-2", NOW + 1)):
        request = order(client_order_id=client_order_id)
        store.remember(request, decision(request), forget_after=forget_after)

    forgotten = store.forget_decisions_before(NOW)

    assert forgotten == 1
    assert store.remembered("o-1") is None
    assert store.remembered("o-2") is not None


async def test_record_check_reserves_and_remembers_together(store: Store) -> None:
    request = order(client_order_id="o-1")

    await store.record_check(request, decision(request), reservation(100), forget_after=NOW + 120, decided_at=NOW)

    assert store.book.reservations() == [reservation(100)]
    assert store.remembered("o-1").decision == decision(request)


async def test_record_check_of_a_rejection_remembers_without_reserving(store: Store) -> None:
    request = order(client_order_id="o-1")

    await store.record_check(request, decision(request, approved=0), None, forget_after=NOW + 120, decided_at=NOW)

    assert store.book.reservations() == []
    assert store.remembered("o-1").decision.approved_quantity == 0


# -- trading states ------------------------------------------------------------------------------


def test_trading_state_starts_active(store: Store) -> None:
    assert store.trading_state() is TradingState.ACTIVE
    assert store.trading_state("alpha") is TradingState.ACTIVE


async def test_trading_state_in_force_is_the_stricter_of_book_and_strategy(store: Store) -> None:
    await store.set_trading_state(TradingState.REDUCING)
    await store.set_trading_state(TradingState.HALTED, "alpha")

    assert store.trading_state("alpha") is TradingState.HALTED
    assert store.trading_state("beta") is TradingState.REDUCING
    assert store.own_trading_state("beta") is TradingState.ACTIVE


# -- overrides -----------------------------------------------------------------------------------


async def test_overrides_are_listed_in_the_order_they_were_added(store: Store) -> None:
    for override_id in ("b", "a", "c"):
        await store.add_override(override(override_id))

    assert [o.id for o in store.overrides()] == ["b", "a", "c"]


async def test_an_override_set_again_is_replaced_in_its_place(store: Store) -> None:
    await store.add_override(override("a"))
    await store.add_override(override("b"))

    await store.add_override(override("a", value=0.25))

    assert store.overrides() == [override("a", value=0.25), override("b")]


async def test_remove_override_returns_it_and_drops_it(store: Store) -> None:
    await store.add_override(override("a"))
    await store.add_override(override("b"))

    removed = await store.remove_override("a")

    assert removed == override("a")
    assert store.overrides() == [override("b")]


async def test_remove_of_an_unknown_override_returns_none(store: Store) -> None:
    assert await store.remove_override("nope") is None


# -- recommendation log --------------------------------------------------------------------------


def test_recommendation_sequences_start_at_one_and_increase_by_one(store: Store) -> None:
    logged = [store.append_recommendation(recommendation(str(n))) for n in range(3)]

    assert [r.sequence for r in logged] == [1, 2, 3]
    assert logged[1] == dataclasses.replace(recommendation("1"), sequence=2)


def test_recommendations_after_a_sequence_come_in_order_up_to_the_limit(store: Store) -> None:
    for n in range(5):
        store.append_recommendation(recommendation(str(n)))

    after = store.recommendations_after(1, limit=2)

    assert [(r.sequence, r.reason) for r in after] == [(2, "1"), (3, "2")]
    assert store.recommendations_after(5, limit=10) == []


def test_recommendation_bounds_are_zero_before_the_first(store: Store) -> None:
    assert store.recommendation_bounds() == (0, 0)


async def test_retention_keeps_only_the_newest_recommendations(open_any) -> None:
    store = open_any(recommendation_retention=3)
    await store.start()
    for n in range(5):
        store.append_recommendation(recommendation(str(n)))

    assert store.recommendation_bounds() == (3, 5)
    assert [r.sequence for r in store.recommendations_after(0, limit=10)] == [3, 4, 5]


# -- decision log --------------------------------------------------------------------------------


def test_logged_decisions_are_read_back_newest_last(store: Store) -> None:
    for client_order_id in ("o-1", "o-2", "o-3"):
        store.log_decision(decision_record(client_order_id))

    assert store.flush(timeout=10) is True
    newest = store.decisions(limit=2)

    assert [d["order"]["client_order_id"] for d in newest] == ["o-2", "o-3"]
    assert newest[0]["decision"]["decision"] == "approved"
    assert store.decision_log_stats() == (0, 0)


def test_open_store_opens_the_backend_the_settings_name(tmp_path: Path) -> None:
    path = str(tmp_path / "state.sqlite3")
    memory = open_store(StoreSettings(backend="memory", path=path))
    sqlite = open_store(StoreSettings(backend="sqlite", path=path))
    try:
        assert type(memory) is MemoryStore
        assert type(sqlite) is SqliteStore
    finally:
        sqlite.close()
