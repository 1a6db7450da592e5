"""Deadlines against a real sidecar: a client deadline of a few milliseconds ends the call with
DEADLINE_EXCEEDED, and a timeout never turns into an approval. The client library's
pre-trade gate treats DEADLINE_EXCEEDED, UNAVAILABLE and RESOURCE_EXHAUSTED as a rejection
(fail closed), also when the sidecar goes on to approve the order after the client gave up.

The sidecar is made slow by holding its CheckTrade until the test lets it go (the work then
runs to the end whatever the client did), made unreachable by stopping it, and made full by
`sidecar.max_concurrent_rpcs: 1` with one check held. No test asserts a time.
"""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import pytest

from riskbudget.v1 import risk_budget_service_pb2 as spb
from riskbudget.v1 import types_pb2 as pb
from riskbudget_client import AsyncPreTradeGate, AsyncRiskBudgetClient, PreTradeGate, RiskBudgetClient
from riskbudget_sidecar.app.serve import stop

from .conftest import start_harness

FEW_MS = 0.005
ONE_MICROSECOND = 1e-6
ARRIVAL_WAIT = 10.0
"""Seconds to wait for a timed-out check to reach the held sidecar (a wait, not a bound)."""


class HeldChecks:
    """Stands in for the sidecar's check_trade: each check waits until `release` is set, then
    runs the real one to its end in a task of its own, so that a client giving up (a
    deadline) cannot cancel the work: the sidecar decides, and reserves, after the client left."""

    def __init__(self, sidecar) -> None:
        self._real = sidecar.check_trade
        self.release = asyncio.Event()
        self.arrived = asyncio.Event()
        self.late: list[asyncio.Task] = []

    async def __call__(self, order):
        task = asyncio.ensure_future(self._decide(order))
        self.late.append(task)
        return await asyncio.shield(task)

    async def _decide(self, order):
        self.arrived.set()
        await self.release.wait()
        return await self._real(order)

    async def decisions(self) -> list:
        """Let every held check go, and what the sidecar decided for each. A check whose deadline
        passed before it reached the sidecar never arrives: after a wait, none is expected."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.arrived.wait(), ARRIVAL_WAIT)
        self.release.set()
        return await asyncio.gather(*self.late)


@pytest.fixture
def held(harness, monkeypatch) -> HeldChecks:
    checks = HeldChecks(harness.sidecar)
    monkeypatch.setattr(harness.sidecar, "check_trade", checks)
    return checks


def gate_check(kind: str, target: str, order_id: str, *, timeout: float = 5.0):
    """The order through the client library's gate (sync or asyncio) with that CheckTrade
    deadline; an awaitable of its GateResult (the sync gate runs in a thread, so that the
    sidecar on this event loop can answer meanwhile)."""
    order = (order_id, "trend", "AAA", "buy", 10)
    if kind == "sync":
        def check():
            with RiskBudgetClient(target, check_trade_timeout=timeout) as client:
                return PreTradeGate(client).check(*order)
        return asyncio.to_thread(check)

    async def check_async():
        async with AsyncRiskBudgetClient(target, check_trade_timeout=timeout) as client:
            return await AsyncPreTradeGate(client).check(*order)
    return check_async()


def assert_failed_closed(result, status: grpc.StatusCode) -> None:
    """The gate's own rejection: nothing may be sent, and the reason names the failed call."""
    assert not result.allowed
    assert result.quantity == 0.0
    assert result.decision == pb.DECISION_REJECTED
    assert result.response.approved_quantity == 0.0
    [(code, message)] = result.reasons
    assert code == "REASON_CODE_SIDECAR_UNAVAILABLE"
    assert status.name in message


async def test_a_deadline_of_a_few_milliseconds_ends_the_call_with_deadline_exceeded(harness, held):
    await harness.publish_last_prices()

    with pytest.raises(grpc.aio.AioRpcError) as timed_out:
        await harness.stub.CheckTrade(spb.CheckTradeRequest(
            client_order_id="o-few-ms", strategy="trend", symbol="AAA", side=pb.SIDE_BUY, quantity=10),
            timeout=FEW_MS)
    late = await held.decisions()

    assert timed_out.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # what the client would have got had it waited (the sidecar answers once let go)
    assert [d.approved_quantity for d in late] in ([10], [])


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_check_that_times_out_is_a_rejection_though_the_sidecar_approves_it_later(harness, held, kind):
    await harness.publish_last_prices()

    result = await gate_check(kind, harness.server.target, f"o-late-{kind}", timeout=FEW_MS)
    late = await held.decisions()

    assert_failed_closed(result, grpc.StatusCode.DEADLINE_EXCEEDED)
    # the sidecar approved and reserved it, after the client had given up
    assert [(d.approved_quantity, d.reserved) for d in late] in ([(10, True)], [])


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_deadline_of_one_microsecond_is_a_rejection_never_an_approval(harness, kind):
    await harness.publish_last_prices()
    healthy = await harness.check("o-healthy", 10)

    result = await gate_check(kind, harness.server.target, f"o-1us-{kind}", timeout=ONE_MICROSECOND)

    assert healthy.decision == pb.DECISION_APPROVED  # the same order would pass, given time
    assert_failed_closed(result, grpc.StatusCode.DEADLINE_EXCEEDED)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_stopped_sidecar_is_a_rejection_never_an_approval(tmp_path, kind):
    running = await start_harness(tmp_path)
    await running.publish_last_prices()
    before = await running.check("o-before", 10)
    await running.channel.close()
    await stop(running.sidecar, running.server)

    result = await gate_check(kind, running.server.target, f"o-stopped-{kind}", timeout=1.0)

    assert before.decision == pb.DECISION_APPROVED
    assert_failed_closed(result, grpc.StatusCode.UNAVAILABLE)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_full_sidecar_is_a_rejection_never_an_approval(tmp_path, monkeypatch, kind):
    running = await start_harness(tmp_path, sidecar__max_concurrent_rpcs=1)
    try:
        await running.publish_last_prices()
        held = HeldChecks(running.sidecar)
        monkeypatch.setattr(running.sidecar, "check_trade", held)
        holding = asyncio.ensure_future(running.check("o-holding", 10))  # the one RPC it serves at once
        await held.arrived.wait()  # no deadline on it: it arrives

        result = await gate_check(kind, running.server.target, f"o-full-{kind}")
        decisions = await held.decisions()
        first = await holding
    finally:
        await running.channel.close()
        await stop(running.sidecar, running.server)

    assert_failed_closed(result, grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert [d.client_order_id for d in decisions] == ["o-holding"]  # the refused order never got in
    assert first.decision == pb.DECISION_APPROVED
