"""A halt wins over an approval not yet sent, and a dry run changes nothing under it: two cases a
reviewer found."""

from __future__ import annotations

import asyncio

import pytest

from riskbudget.v1 import risk_budget_admin_pb2 as apb
from riskbudget.v1 import types_pb2 as pb
from riskbudget_sidecar.app.serve import stop
from riskbudget_sidecar.engine.types import TradingState
from tests.rpc.conftest import start_harness
from tests.store.valkey import ValkeyProcess


async def test_a_dry_run_of_an_approved_orders_id_under_a_halt_changes_nothing(harness):
    """A dry run reserves nothing and changes nothing: before, under a halt, one carrying the id of
    an approved (possibly working) order released that order's reservation."""
    await harness.publish_last_prices()
    live = await harness.check("o-live", 10)
    await harness.admin.SetTradingState(apb.SetTradingStateRequest(
        strategy="trend", state=pb.TRADING_STATE_HALTED, set_by="pytest", reason="test"),
        metadata=harness.admin_metadata)
    held_before = harness.sidecar.store.book.reservation("o-live")

    await harness.check("o-live", 10, dry_run=True)

    assert live.decision == pb.DECISION_APPROVED and held_before is not None
    assert harness.sidecar.store.book.reservation("o-live") == held_before, \
        "a dry run released the reservation of a live order"


@pytest.mark.parametrize("strategy, state, whose, what", [
    ("", pb.TRADING_STATE_HALTED, "the book", "halted"),
    ("trend", pb.TRADING_STATE_HALTED, "trend", "halted"),
    ("", pb.TRADING_STATE_REDUCING, "the book", "reducing-only"),
    ("trend", pb.TRADING_STATE_REDUCING, "trend", "reducing-only"),
])
async def test_a_rejection_under_a_trading_state_says_whose_state_it_is(harness, strategy, state, whose, what):
    """Found by a tester: a replay under a book's halt read "trading of trend is halted", and a new
    order read "trading is halted" whether the book or the strategy was."""
    await harness.publish_last_prices()
    await harness.check("o-before", 10)
    await harness.admin.SetTradingState(apb.SetTradingStateRequest(
        strategy=strategy, state=state, set_by="pytest", reason="test"), metadata=harness.admin_metadata)

    replay = await harness.check("o-before", 10)
    new = await harness.check("o-new", 10)

    assert replay.reasons[0].message.startswith(f"trading of {whose} is {what} since order 'o-before' was approved")
    assert new.reasons[0].message.startswith(f"trading of {whose} is {what}: only reducing orders pass")


@pytest.fixture
def valkey(tmp_path):
    server = ValkeyProcess(tmp_path / "valkey").start()
    yield server
    server.stop()


async def test_a_shared_check_in_flight_when_a_halt_lands_is_not_approved_after_the_halt(tmp_path, valkey):
    """On the shared (Redis) path the decision is made, then the firm-wide hold awaits the
    server: before, a halt that completed meanwhile was not looked at again, and the approval
    went out after the operator was told the strategy is halted."""
    (tmp_path / "one").mkdir()
    running = await start_harness(tmp_path / "one", shared__url=valkey.url, shared__timeout=2.0,
                                  shared__resync_window=1.0)
    try:
        await running.publish_last_prices()
        store = running.sidecar.store
        original_hold = store._hold
        in_hold = asyncio.Event()

        async def slow_hold(*args, **kwargs):  # a slow round trip to the shared server
            in_hold.set()
            await asyncio.sleep(0.3)
            return await original_hold(*args, **kwargs)
        store._hold = slow_hold

        checking = asyncio.ensure_future(running.check("o-racing", 10))
        await asyncio.wait_for(in_hold.wait(), 5)
        await running.admin.SetTradingState(apb.SetTradingStateRequest(
            strategy="trend", state=pb.TRADING_STATE_HALTED, set_by="pytest", reason="kill switch"),
            metadata=running.admin_metadata)
        halted_at_answer = running.sidecar.store.trading_state("trend")
        answer = await checking

        assert halted_at_answer is TradingState.HALTED
        assert answer.decision != pb.DECISION_APPROVED, \
            "an order not reducing was approved after the halt had been acknowledged"
        assert [r.code for r in answer.reasons] == [pb.REASON_CODE_TRADING_HALTED]
        assert running.sidecar.store.book.reservation("o-racing") is None
    finally:
        await running.channel.close()
        await stop(running.sidecar, running.server)
