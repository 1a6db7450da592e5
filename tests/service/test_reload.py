"""The parts of a config reload that need no server: reloads one at a time, the keys a reload
changes, the holdings a config has no place for."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from riskbudget_sidecar.engine.book import Book
from riskbudget_sidecar.engine.types import Position, Reservation
from riskbudget_sidecar.service.config_file import parse_config
from riskbudget_sidecar.service.reload import Holding, OneAtATime, changed_keys, holdings_outside

from ..rpc.conftest import config_data


def config_with(change=lambda data: None):
    data = config_data()
    change(data)
    return parse_config(data, source="test.yaml")


async def test_work_run_one_at_a_time_starts_only_once_the_work_before_it_ended():
    runner, release, events = OneAtATime(), asyncio.Event(), []

    async def first() -> None:
        events.append("first began")
        await release.wait()
        events.append("first ended")

    async def second() -> None:
        events.append("second began")

    both = asyncio.gather(runner.run(first), runner.run(second))
    for _ in range(5):  # turns of the event loop in which the second could have begun
        await asyncio.sleep(0)
    began_while_first_waited = "second began" in events
    release.set()
    await both

    assert not began_while_first_waited
    assert events == ["first began", "first ended", "second began"]


async def nothing() -> None:
    pass


async def start_then_stop_waiting(runner: OneAtATime, work) -> None:
    """Run `work` and cancel the caller's wait at once, as a client's deadline does."""
    caller = asyncio.ensure_future(runner.run(work))
    await asyncio.sleep(0)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller


async def test_work_whose_caller_stops_waiting_runs_to_its_end():
    runner, release, ended = OneAtATime(), asyncio.Event(), []

    async def work() -> None:
        await release.wait()
        ended.append("work")

    await start_then_stop_waiting(runner, work)
    release.set()
    await runner.run(nothing)  # its turn comes once the work before it ended

    assert ended == ["work"]


async def test_work_that_fails_after_its_caller_stopped_waiting_is_logged():
    runner, release = OneAtATime(), asyncio.Event()

    async def failing() -> None:
        await release.wait()
        raise RuntimeError("the recompute failed")

    await start_then_stop_waiting(runner, failing)
    with capture_logs() as logs:
        release.set()
        await runner.run(nothing)

    [logged] = [entry for entry in logs if entry["event"] == "unawaited_task_failed"]
    assert logged["log_level"] == "error" and str(logged["exc_info"]) == "the recompute failed"


def test_changed_keys_are_dotted_paths_with_keys_added_or_removed_and_lists_whole():
    def change(data):
        data["limits"]["max_order_notional"] = 1_000
        data["portfolio"]["strategies"]["carry"]["symbols"] = ["CCC"]
        data["portfolio"]["strategies"]["trend"]["symbols"] = ["AAA", "BBB", "DDD"]
        data["sidecar"]["shadow_mode"] = True

    assert changed_keys(config_with(), config_with(change)) == [
        "sidecar.shadow_mode", "portfolio.strategies.trend.symbols", "portfolio.strategies.carry.symbols",
        "limits.max_order_notional"]


def test_a_renamed_strategy_changes_the_old_name_and_the_new_one():
    def rename(data):
        strategies = data["portfolio"]["strategies"]
        strategies["carry_v2"] = strategies.pop("carry")

    assert changed_keys(config_with(), config_with(rename)) == [
        "portfolio.strategies.carry", "portfolio.strategies.carry_v2"]


def test_holdings_outside_a_config_are_its_missing_pairs_with_what_each_holds_not_expired_reservations():
    book = Book()
    book.set_positions([Position("trend", "AAA", 10), Position("trend", "CCC", -5), Position("gone", "BBB", 2)])
    book.reserve(Reservation("o-1", "trend", "CCC", 3, expires_at=100.0))
    book.reserve(Reservation("o-2", "trend", "CCC", 3, expires_at=100.0))
    book.reserve(Reservation("o-3", "trend", "DDD", 1, expires_at=100.0))
    book.reserve(Reservation("o-old", "carry", "AAA", 1, expires_at=50.0))  # expired: gone at the next tick

    stranded = holdings_outside(book, config_with(), now=60.0)

    assert stranded == [Holding("gone", "BBB", 2, 0), Holding("trend", "CCC", -5, 2), Holding("trend", "DDD", 0, 1)]
    assert [str(h) for h in stranded] == [
        "a position of 2", "a position of -5 and 2 open reservations", "1 open reservation"]
