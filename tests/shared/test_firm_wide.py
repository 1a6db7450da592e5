"""Several sidecars sharing firm-wide limits through a real Valkey server."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from pathlib import Path

import grpc
import pytest
import redis.asyncio
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from riskbudget.v1 import risk_budget_admin_pb2 as apb
from riskbudget.v1 import risk_budget_service_pb2 as spb
from riskbudget.v1 import types_pb2 as pb
from riskbudget_sidecar.app.serve import stop
from riskbudget_sidecar.rpc.converters import timestamp
from riskbudget_sidecar.store.errors import StoreError
from riskbudget_sidecar.store.redis_ledger import LedgerUnavailable, RedisLedger
from riskbudget_sidecar.store.sqlite import SqliteStore
from riskbudget_sidecar.store.serialization import to_json
from tests.rpc.conftest import T0, start_harness
from tests.store.builders import override
from tests.store.valkey import ValkeyProcess


@pytest.fixture
def valkey(tmp_path):
    server = ValkeyProcess(tmp_path / "valkey").start()
    yield server
    server.stop()


async def sidecar(tmp_path, name: str, valkey: ValkeyProcess, **overrides):
    directory = tmp_path / name
    directory.mkdir()
    return await start_harness(directory, shared__url=valkey.url, shared__timeout=0.2,
                               shared__resync_window=1.0, **overrides)


BOTH_IN_AAA = {"trend": {"risk_share": 0.6, "symbols": ["AAA", "BBB"]},
               "carry": {"risk_share": 0.4, "symbols": ["AAA", "CCC", "DDD"]}}
"""Strategies of two sidecars that both trade AAA."""


@contextlib.asynccontextmanager
async def two_sidecars(tmp_path, valkey: ValkeyProcess, **overrides):
    """A sidecar trading trend and one trading carry, on one server and config `overrides`."""
    first = await sidecar(tmp_path, "first", valkey, shared__owned_strategies=["trend"], **overrides)
    second = await sidecar(tmp_path, "second", valkey, shared__owned_strategies=["carry"], **overrides)
    try:
        yield first, second
    finally:
        for running in (first, second):
            await running.channel.close()
            await stop(running.sidecar, running.server)


@pytest.fixture
async def pair(tmp_path, valkey):
    async with two_sidecars(tmp_path, valkey, portfolio__strategies=BOTH_IN_AAA) as both:
        yield both


async def eventually(condition, timeout: float = 5.0) -> None:
    """Wait for a change that travels through the server's channel."""
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.02)


def own_strategy(running) -> str:
    """The strategy a sidecar of `two_sidecars` trades (another sidecar's orders it rejects)."""
    return running.sidecar.config.owned_strategies[0]


async def deafened(running):
    """Its store, its change listener stopped: deaf to the server's channel, as while it is down."""
    store = running.sidecar.store
    listener = next(task for task in store._tasks if task.get_name() == "ledger-listen")
    listener.cancel()
    await asyncio.gather(listener, return_exceptions=True)
    return store


async def halted(running) -> bool:
    """Whether a halt has reached a sidecar: it rejects a fresh order."""
    order_id = f"o-{asyncio.get_running_loop().time()}"
    return (await running.check(order_id, 1, strategy=own_strategy(running))).decision == pb.DECISION_REJECTED


async def test_two_sidecars_never_jointly_pass_a_symbols_limit(pair):
    first, second = pair
    prices = await first.publish_last_prices()
    await second.publish(prices)
    limit = first.sidecar.snapshot.symbols["AAA"].max_position_notional
    most = int(limit / prices["AAA"])

    one = await first.check("o-first", round(most * 0.7))
    other = await second.check("o-second", round(most * 0.7), strategy="carry")

    assert one.decision == pb.DECISION_APPROVED
    assert other.decision == pb.DECISION_RESIZED
    assert (one.approved_quantity + other.approved_quantity) * prices["AAA"] <= limit
    firm_wide = [r for r in other.reasons if "firm-wide" in r.message]
    assert [r.code for r in firm_wide] == [pb.REASON_CODE_SYMBOL_POSITION_LIMIT]


async def test_a_dry_run_answers_what_the_firm_wide_limits_would_grant_and_holds_nothing(pair):
    """Found by a tester: a dry run approved 5,000 where the same order, checked, was resized to
    the 50 the firm had room for: a trader pre-sizing with dry runs was misled."""
    first, second = pair
    prices = await first.publish_last_prices()
    await second.publish(prices)
    limit = first.sidecar.snapshot.symbols["AAA"].max_position_notional
    most = int(limit / prices["AAA"])
    await second.stub.SetPositions(spb.SetPositionsRequest(positions=[
        pb.Position(strategy="carry", symbol="AAA", quantity=most - 50)]))

    dry = await first.check("o-dry", 1000, dry_run=True)
    reservations = await first.sidecar.store.ledger.reservations()
    real = await first.check("o-dry", 1000)

    assert (dry.decision, dry.approved_quantity, dry.reserved) == (pb.DECISION_RESIZED, 50, False)
    assert any("firm-wide" in r.message for r in dry.reasons)
    assert reservations == []
    assert (real.decision, real.approved_quantity, real.reserved) == (pb.DECISION_RESIZED, 50, True)


async def test_a_halt_set_through_one_sidecar_reaches_the_other(pair):
    first, second = pair
    await second.publish_last_prices()

    await first.admin.SetTradingState(apb.SetTradingStateRequest(state=pb.TRADING_STATE_HALTED, set_by="pytest"),
                                      metadata=first.admin_metadata)

    await eventually(lambda: halted(second))
    decision = await second.check("o-halted", 1, strategy="carry")
    assert [r.code for r in decision.reasons] == [pb.REASON_CODE_TRADING_HALTED]


async def test_a_halt_binds_a_sidecar_that_has_not_heard_of_it_at_the_server(pair):
    """Found by a reviewer: a sidecar whose change channel was down (reconnecting, backing off up
    to 5 s) never heard of a halt set through another, and approved 44 adding orders in 2.3 s;
    and a halt landing while a check awaited the server let that check through. The server now
    refuses an adding grant under a halt it holds, in the same step as the grant."""
    first, second = pair
    await second.publish_last_prices()
    await second.stub.SetPositions(spb.SetPositionsRequest(positions=[
        pb.Position(strategy="carry", symbol="CCC", quantity=100)]))
    store = await deafened(second)  # as while it reconnects

    await first.admin.SetTradingState(apb.SetTradingStateRequest(state=pb.TRADING_STATE_HALTED, set_by="pytest"),
                                      metadata=first.admin_metadata)
    heard_before = store.trading_state()
    adding = await second.check("o-adds", 10, strategy="carry", symbol="CCC")
    reducing = await second.check("o-reduces", 10, strategy="carry", symbol="CCC", side=pb.SIDE_SELL)

    assert heard_before.name == "ACTIVE"
    assert adding.decision == pb.DECISION_REJECTED and not adding.reserved
    assert [r.code for r in adding.reasons] == [pb.REASON_CODE_TRADING_HALTED]
    assert "the shared server holds HALTED for the book" in adding.reasons[0].message
    assert reducing.decision == pb.DECISION_APPROVED
    await eventually(lambda: asyncio.sleep(0, result=store.trading_state().name == "HALTED"))  # read since


async def test_an_override_set_through_one_sidecar_applies_in_the_other_and_names_itself(pair):
    first, second = pair
    await second.publish_last_prices()

    reply = await first.admin.SetOverride(apb.SetOverrideRequest(override=pb.Override(
        scope=pb.OVERRIDE_SCOPE_SYMBOL, target="CCC", kind=pb.OVERRIDE_KIND_RESTRICT_SYMBOL,
        set_by="ops", reason="test")), metadata=first.admin_metadata)

    async def restricted() -> bool:
        budget = (await second.stub.GetBudget(spb.GetBudgetRequest())).budget
        return [o.id for o in budget.overrides] == [reply.override.id]
    await eventually(restricted)
    decision = await second.check("o-restricted", 1, strategy="carry", symbol="CCC")
    assert decision.decision == pb.DECISION_REJECTED
    assert list(decision.override_ids) == [reply.override.id]


async def test_an_override_set_elsewhere_reaches_a_sidecar_whose_change_channel_is_down(pair):
    """Found by a tester: with its change channel down (the server at maxclients), a sidecar
    never heard of a restriction set through another and approved orders in the symbol, SERVING,
    for as long as the channel stayed down."""
    first, second = pair
    await second.publish_last_prices()
    store = await deafened(second)

    reply = await first.admin.SetOverride(apb.SetOverrideRequest(override=pb.Override(
        scope=pb.OVERRIDE_SCOPE_SYMBOL, target="CCC", kind=pb.OVERRIDE_KIND_RESTRICT_SYMBOL,
        set_by="ops", reason="test")), metadata=first.admin_metadata)

    async def restricted() -> bool:
        decision = await second.check(f"o-{second.clock.now()}-{len(store.overrides())}", 1,
                                      strategy="carry", symbol="CCC", dry_run=True)
        return decision.decision == pb.DECISION_REJECTED
    await eventually(restricted)
    assert [o.id for o in store.overrides()] == [reply.override.id]


async def test_a_state_file_refusing_an_override_once_does_not_stop_the_reading_of_later_ones(pair, monkeypatch):
    """Found by a reviewer: one StoreError applying the operator state read every second (a
    state file locked past busy_timeout) ended that watch for good, and with its change
    channel down the sidecar then approved orders in a symbol restricted later."""
    first, second = pair
    await second.publish_last_prices()
    store = await deafened(second)
    add_override, refusals = SqliteStore.add_override, []

    async def refused_once(self, override):
        if self is store and not refusals:
            refusals.append(override.id)
            raise StoreError("database is locked")
        await add_override(self, override)
    monkeypatch.setattr(SqliteStore, "add_override", refused_once)

    def restriction(symbol: str) -> apb.SetOverrideRequest:
        return apb.SetOverrideRequest(override=pb.Override(
            scope=pb.OVERRIDE_SCOPE_SYMBOL, target=symbol, kind=pb.OVERRIDE_KIND_RESTRICT_SYMBOL,
            set_by="ops", reason="test"))
    await first.admin.SetOverride(restriction("CCC"), metadata=first.admin_metadata)
    await eventually(lambda: asyncio.sleep(0, bool(refusals)))
    later = await first.admin.SetOverride(restriction("DDD"), metadata=first.admin_metadata)

    async def restricted() -> bool:
        return later.override.id in [o.id for o in store.overrides()]
    await eventually(restricted)
    decision = await second.check("o-ddd", 1, strategy="carry", symbol="DDD", dry_run=True)
    assert decision.decision == pb.DECISION_REJECTED


async def test_without_the_server_checks_fail_closed_health_drops_and_all_recovers(pair, valkey):
    first, second = pair
    await first.publish_last_prices()
    held = await first.check("o-before", 10)
    health = health_pb2_grpc.HealthStub(first.channel)

    valkey.stop()
    refused = await first.check("o-during", 10)
    # found by a tester: while the shared state is away, a halt set through another sidecar may
    # not have reached this one, so the approval of before is not sent again
    retried = await first.check("o-before", 10)

    async def not_serving() -> bool:
        reply = await health.Check(health_pb2.HealthCheckRequest())
        return reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
    await eventually(not_serving)
    valkey.start()

    async def serving() -> bool:
        reply = await health.Check(health_pb2.HealthCheckRequest())
        return reply.status == health_pb2.HealthCheckResponse.SERVING
    await eventually(serving)

    async def approved() -> bool:  # once the sidecars had time to put their books back
        return (await first.check("o-after", 10)).decision == pb.DECISION_APPROVED  # refusals are not kept
    await eventually(approved)
    reserved = {r.client_order_id for r in await first.sidecar.store.ledger.reservations()}
    alerts = await first.stub.ListAlerts(spb.ListAlertsRequest())

    assert held.decision == pb.DECISION_APPROVED
    assert refused.decision == pb.DECISION_REJECTED
    assert [r.code for r in refused.reasons] == [pb.REASON_CODE_STATE_UNAVAILABLE]
    assert (retried.decision, retried.replayed) == (pb.DECISION_REJECTED, False)
    assert [r.code for r in retried.reasons] == [pb.REASON_CODE_STATE_UNAVAILABLE]
    assert {"o-before", "o-after"} <= reserved  # the server came back empty: reconciled
    assert any("unavailable" in a.message for a in alerts.alerts)
    assert any("lost its data: firm-wide grants are refused until" in a.message for a in alerts.alerts)


async def test_a_positions_snapshot_is_refused_for_a_strategy_of_another_sidecar(pair):
    first, _ = pair

    with pytest.raises(Exception) as refused:
        await first.stub.SetPositions(spb.SetPositionsRequest(positions=[
            pb.Position(strategy="carry", symbol="CCC", quantity=5)]))

    assert "traded through another sidecar" in str(refused.value)


async def test_a_fill_for_a_strategy_of_another_sidecar_is_refused(pair):
    first, _ = pair
    await first.publish_last_prices()

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await first.stub.ReportFill(spb.ReportFillRequest(
            client_order_id="o-elsewhere", strategy="carry", symbol="CCC", side=pb.SIDE_SELL, quantity=5,
            price=100.0, time=timestamp(T0), execution_id="x-1"))

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "traded through another sidecar" in refused.value.details()
    assert await first.sidecar.store.ledger.positions() == []


@pytest.mark.parametrize("dry_run", [False, True])
async def test_an_order_of_a_strategy_another_sidecar_trades_is_rejected(pair, dry_run):
    """Found by a tester: a check sent to the wrong sidecar was approved against a book without
    the strategy's positions (the strategy went to 110% of its limit)."""
    first, _ = pair
    await first.publish_last_prices()

    decision = await first.check("o-elsewhere", 10, strategy="carry", symbol="CCC", dry_run=dry_run)

    assert decision.decision == pb.DECISION_REJECTED
    assert [r.code for r in decision.reasons] == [pb.REASON_CODE_UNKNOWN_STRATEGY]
    assert "traded through another sidecar" in decision.reasons[0].message
    assert await first.sidecar.store.ledger.reservations() == []


async def test_a_second_sidecar_trading_the_same_strategies_changes_nothing_there_until_the_first_stops(
        tmp_path, valkey):
    """Found by a tester: two sidecars both left to trade every strategy (no owned_strategies),
    and one's whole-book snapshot erased the other's positions on the server: the firm went to
    twice a symbol's limit. A strategy is now owned by one sidecar at a time on the server."""
    first = await sidecar(tmp_path, "first", valkey)
    try:
        prices = await first.publish_last_prices()
        await first.stub.SetPositions(spb.SetPositionsRequest(positions=[
            pb.Position(strategy="trend", symbol="AAA", quantity=100)]))
        second = await sidecar(tmp_path, "second", valkey)
        await second.publish(prices)
        refused_check = await second.check("o-second", 10)
        with pytest.raises(grpc.aio.AioRpcError) as refused_snapshot:
            await second.stub.SetPositions(spb.SetPositionsRequest(positions=[
                pb.Position(strategy="carry", symbol="CCC", quantity=5)]))
        health = await health_pb2_grpc.HealthStub(second.channel).Check(health_pb2.HealthCheckRequest())
        positions = await first.sidecar.store.ledger.positions()
    finally:
        await first.channel.close()
        await stop(first.sidecar, first.server)  # releases its strategies
    try:
        async def approved() -> bool:
            second.clock.advance(0.001)
            return (await second.check(f"o-{second.clock.now()}", 10)).decision == pb.DECISION_APPROVED
        await eventually(approved)
        taken_over = await second.sidecar.store.ledger.positions()  # found by a reviewer: wiped at the handover
        book = [(p.strategy, p.symbol, p.quantity) for p in second.sidecar.store.book.positions()]
    finally:
        await second.channel.close()
        await stop(second.sidecar, second.server)

    assert [(p.strategy, p.symbol, p.lots) for p in taken_over] == [("trend", "AAA", 100)]
    assert book == [("trend", "AAA", 100)]
    assert refused_check.decision == pb.DECISION_REJECTED
    assert [r.code for r in refused_check.reasons] == [pb.REASON_CODE_STATE_UNAVAILABLE]
    assert "shared.owned_strategies" in refused_check.reasons[0].message
    assert refused_snapshot.value.code() == grpc.StatusCode.UNAVAILABLE
    assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert [(p.strategy, p.symbol, p.lots) for p in positions] == [("trend", "AAA", 100)]


async def test_a_sidecar_counting_in_other_lot_sizes_grants_nothing_while_the_other_trades(tmp_path, valkey):
    """Found by a reviewer: a sidecar started with lots of 1 for AAA beside one counting in lots
    of 100 added its lots to the other's on the server, and the firm went to 1.74 times the limit."""
    async with contextlib.AsyncExitStack() as running:
        first = await sidecar(tmp_path, "first", valkey, shared__owned_strategies=["trend"],
                              portfolio__strategies=BOTH_IN_AAA, portfolio__lot_sizes={"AAA": 100})
        running.push_async_callback(stop, first.sidecar, first.server)
        running.push_async_callback(first.channel.close)
        second = await sidecar(tmp_path, "second", valkey, shared__owned_strategies=["carry"],
                               portfolio__strategies=BOTH_IN_AAA)
        running.push_async_callback(stop, second.sidecar, second.server)
        running.push_async_callback(second.channel.close)
        await second.publish(await first.publish_last_prices())

        refused = await second.check("o-lots", 10, strategy="carry")

    assert [r.code for r in refused.reasons] == [pb.REASON_CODE_STATE_UNAVAILABLE]
    assert "counts in other lot sizes" in refused.reasons[0].message


async def test_a_sidecar_refused_one_strategy_takes_it_over_when_its_owner_stops_whatever_else_it_trades(
        tmp_path, valkey):
    """Found by a reviewer: a refused sidecar that also traded a strategy no sidecar had claimed
    took that one for a loss of the server's data, and never took over the one released."""
    async with contextlib.AsyncExitStack() as running:
        first = await sidecar(tmp_path, "first", valkey, shared__owned_strategies=["trend"])
        second = await sidecar(tmp_path, "second", valkey)  # every strategy: trend, and carry, claimed by none
        running.push_async_callback(stop, second.sidecar, second.server)
        running.push_async_callback(second.channel.close)
        refused = second.sidecar.available
        await first.channel.close()
        await stop(first.sidecar, first.server)  # releases trend

        await eventually(lambda: asyncio.sleep(0.05, second.sidecar.available))

    assert not refused


async def test_after_the_server_lost_its_data_the_owner_claims_its_strategies_again_not_the_one_refused(
        tmp_path, valkey):
    """Found by a reviewer: after a FLUSHALL the refused sidecar's probe (every 0.25 s) claimed
    the strategies before the owner noticed (every second), and put its own empty book for them
    there, the owner's positions gone; and each of its refused probes raised a critical alert."""
    async with contextlib.AsyncExitStack() as running:
        first = await sidecar(tmp_path, "first", valkey)
        running.push_async_callback(stop, first.sidecar, first.server)
        running.push_async_callback(first.channel.close)
        await first.publish_last_prices()
        await first.stub.SetPositions(spb.SetPositionsRequest(positions=[
            pb.Position(strategy="trend", symbol="AAA", quantity=100)]))
        second = await sidecar(tmp_path, "second", valkey)
        running.push_async_callback(stop, second.sidecar, second.server)
        running.push_async_callback(second.channel.close)
        alerts_before = len(second.sidecar.alerts.recent(1000, None))
        flushed = redis.asyncio.Redis.from_url(valkey.url)
        await flushed.flushall()
        await flushed.aclose()

        async def owner_back() -> bool:
            positions = await first.sidecar.store.ledger.positions()
            return [(p.strategy, p.symbol, p.lots) for p in positions] == [("trend", "AAA", 100)]
        await eventually(owner_back)
        await asyncio.sleep(1.0)  # four of the refused sidecar's probes
        positions = await first.sidecar.store.ledger.positions()
        for task in first.sidecar.store._tasks:  # the owner deaf to a loss, as if slow to notice it
            task.cancel()
        flushed = redis.asyncio.Redis.from_url(valkey.url)
        await flushed.flushall()  # again; found by a reviewer: an owner slower than the refused one lost all
        await flushed.aclose()
        await asyncio.sleep(5.5)  # past the 5 s a first fix waited (an outage outlasted it)
        claims = await first.sidecar.store.ledger.unclaimed(["trend", "carry"])
        alerts_after = len(second.sidecar.alerts.recent(1000, None))

    assert [(p.strategy, p.symbol, p.lots) for p in positions] == [("trend", "AAA", 100)]
    assert not second.sidecar.available
    assert alerts_after == alerts_before
    assert claims == ["trend", "carry"]  # the refused sidecar waits for the owner, however long it takes


async def test_a_refused_sidecar_raises_no_alert_at_each_probe_after_the_server_lost_its_data(tmp_path, valkey):
    """Found by a reviewer: a refused sidecar that had marked the server before took each of its
    probes (four a second) after a loss for a new loss, and raised a critical alert each time."""
    refused = await sidecar(tmp_path, "refused", valkey)  # marks the server once, alone
    await refused.channel.close()
    await stop(refused.sidecar, refused.server)
    async with contextlib.AsyncExitStack() as running:
        owner = await sidecar(tmp_path, "owner", valkey)
        running.push_async_callback(stop, owner.sidecar, owner.server)
        running.push_async_callback(owner.channel.close)
        again = await start_harness(tmp_path / "refused", shared__url=valkey.url, shared__timeout=0.2,
                                    shared__resync_window=1.0)
        running.push_async_callback(stop, again.sidecar, again.server)
        running.push_async_callback(again.channel.close)
        flushed = redis.asyncio.Redis.from_url(valkey.url)
        await flushed.flushall()
        await flushed.aclose()
        before = len(again.sidecar.alerts.recent(1000, None))
        await asyncio.sleep(1.5)
        after = len(again.sidecar.alerts.recent(1000, None))

    assert not again.sidecar.available
    assert after - before <= 1


async def test_with_its_state_file_lost_a_sidecar_puts_no_fill_on_the_shared_server(pair):
    """Found by a reviewer: the server took the fill before the lost file refused it, once per
    retry of the refused call (10, 0, -10, -20 on the server; 10 in the book)."""
    first, _ = pair
    prices = await first.publish_last_prices()
    await first.check("o-fill", 10)
    database = Path(first.sidecar.config.store.path)
    database.rename(database.with_name("moved.sqlite3"))
    await first.sidecar.monitor_once()
    before = await first.sidecar.store.ledger.positions()

    for attempt in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await first.stub.ReportFill(spb.ReportFillRequest(
                client_order_id="o-fill", strategy="trend", symbol="AAA", side=pb.SIDE_BUY, quantity=10,
                price=prices["AAA"], time=timestamp(first.clock.now()), execution_id="x-lost"))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(grpc.aio.AioRpcError):  # nor an operator change: found by a reviewer
        await first.admin.SetTradingState(apb.SetTradingStateRequest(
            state=pb.TRADING_STATE_HALTED, set_by="pytest"), metadata=first.admin_metadata)
    assert await first.sidecar.store.ledger.positions() == before
    assert await first.sidecar.store.ledger.trading_states() == {}


async def test_with_its_state_file_lost_a_sidecar_still_puts_its_book_back_on_a_server_that_lost_it(pair, valkey):
    """Found by a reviewer: reading whether it had marked the server went through the refusing
    state file, so after a loss of the server's data the book was never put back there: the
    firm undercounted this sidecar's positions for good."""
    first, _ = pair
    await first.publish_last_prices()
    await first.stub.SetPositions(spb.SetPositionsRequest(positions=[
        pb.Position(strategy="trend", symbol="AAA", quantity=50)]))
    database = Path(first.sidecar.config.store.path)
    database.rename(database.with_name("moved.sqlite3"))
    await first.sidecar.monitor_once()
    flushed = redis.asyncio.Redis.from_url(valkey.url)
    await flushed.flushall()
    await flushed.aclose()

    async def put_back() -> bool:
        positions = await first.sidecar.store.ledger.positions()
        return [(p.strategy, p.symbol, p.lots) for p in positions] == [("trend", "AAA", 50)]
    await eventually(put_back)


async def test_a_sidecar_stops_though_redis_py_turned_its_watchs_cancellation_into_an_error(tmp_path, valkey):
    """Found in a CI run: redis-py turns a cancellation into its own error; the marker watch,
    which now goes on after any error, went on after that one too, and the stopping sidecar hung."""
    running = await sidecar(tmp_path, "first", valkey)
    store, waiting = running.sidecar.store, asyncio.Event()

    async def asserted_interrupted() -> bool:
        if asyncio.current_task().get_name() != "ledger-marker":
            return True
        waiting.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            raise RuntimeError("what redis-py raises for a read cut short") from None
        return True
    store.ledger.asserted = asserted_interrupted
    await asyncio.wait_for(waiting.wait(), 10)  # the watch is inside its call to the server
    await running.channel.close()

    await asyncio.wait_for(stop(running.sidecar, running.server), 30)


async def test_a_loss_of_the_server_while_the_probe_takes_the_operator_state_in_is_probed_again(pair):
    """Found by a reviewer: the probe marked the store available, then took the operator state
    in; lost again meanwhile, no other probe started (this one was still running), and the
    sidecar stayed NOT_SERVING for good with the server answering."""
    first, _ = pair
    store = first.sidecar.store
    refresh, blips = store._refresh_operator_state, []

    async def lost_once(**options):
        if not blips:
            blips.append(1)
            store._lost(LedgerUnavailable("a blip"))
            return
        await refresh(**options)
    store._refresh_operator_state = lost_once
    store._lost(LedgerUnavailable("an outage"))

    await eventually(lambda: asyncio.sleep(0.05, store.available and bool(blips)))


async def test_a_halt_outlives_a_restart_of_the_server_that_lost_it(pair, valkey):
    first, second = pair
    await first.publish_last_prices()
    await second.publish_last_prices()
    await first.admin.SetTradingState(apb.SetTradingStateRequest(state=pb.TRADING_STATE_HALTED, set_by="pytest"),
                                      metadata=first.admin_metadata)
    await eventually(lambda: halted(second))
    valkey.stop()
    valkey.start()  # empty: nothing was saved
    elsewhere = RedisLedger(valkey.url, timeout=2.0)
    try:
        later = dataclasses.replace(override("ovr-after"), target="carry")
        await elsewhere.put_override(later.id, to_json(later))

        async def resynced() -> bool:  # each sidecar has heard of the change made after the restart
            budgets = [(await running.stub.GetBudget(spb.GetBudgetRequest())).budget for running in pair]
            return all([o.id for o in budget.overrides] == ["ovr-after"] for budget in budgets)
        await eventually(resynced, timeout=30)
        decisions = [await running.check("o-after-restart", 1, strategy=own_strategy(running)) for running in pair]
        states = await elsewhere.trading_states()
    finally:
        await elsewhere.close()

    assert [[r.code for r in d.reasons] for d in decisions] == [[pb.REASON_CODE_TRADING_HALTED]] * 2
    assert states == {"": "HALTED"}


async def test_a_sidecar_whose_clock_runs_ahead_frees_no_reservation_of_another_early(pair):
    first, second = pair
    prices = await first.publish_last_prices()
    limit = first.sidecar.snapshot.symbols["AAA"].max_position_notional
    most = int(limit / prices["AAA"])
    held = await first.check("o-first", round(most * 0.7))

    second.clock.advance(first.sidecar.config.limits.reservation_ttl + 45)  # past o-first's expiry
    await second.publish(prices)
    await second.sidecar.monitor_once()  # its tick reclaims what expired by its clock
    other = await second.check("o-second", round(most * 0.7), strategy="carry")

    assert held.decision == pb.DECISION_APPROVED
    assert other.decision == pb.DECISION_RESIZED
    assert (held.approved_quantity + other.approved_quantity) * prices["AAA"] <= limit


async def test_a_sidecar_frees_or_settles_no_reservation_of_another_under_the_same_order_id(pair):
    first, second = pair
    prices = await first.publish_last_prices()
    await second.publish(prices)
    held = await first.check("ord-X", 10)

    reused = await second.check("ord-X", 10, strategy="carry", symbol="CCC")
    released = await second.stub.ReleaseOrder(spb.ReleaseOrderRequest(client_order_id="ord-X"))
    filled = await second.stub.ReportFill(spb.ReportFillRequest(
        client_order_id="ord-X", strategy="carry", symbol="CCC", side=pb.SIDE_BUY, quantity=10,
        price=prices["CCC"], time=timestamp(second.clock.now())))
    reservations = await first.sidecar.store.ledger.reservations()

    assert held.decision == pb.DECISION_APPROVED
    assert [r.code for r in reused.reasons] == [pb.REASON_CODE_ORDER_ID_REUSED]
    assert released.released is False
    assert (filled.position.quantity, filled.reserved_quantity_remaining) == (10, 0)
    assert [(r.client_order_id, r.strategy, r.signed_lots) for r in reservations] == [
        ("ord-X", "trend", 10)]


async def test_an_order_sent_again_after_the_sidecar_forgot_it_gets_no_spent_grant_back(pair):
    """Found by a tester: a sidecar keeps an order id for twice the reservation's ttl, the server
    its grant for longer; the filled order sent again in between got the server's grant replayed
    and was approved with nothing reserved there, taking the firm past a symbol's limit."""
    first, _ = pair
    prices = await first.publish_last_prices()
    approved = await first.check("ord-R", 10)
    await first.stub.ReportFill(spb.ReportFillRequest(
        client_order_id="ord-R", strategy="trend", symbol="AAA", side=pb.SIDE_BUY, quantity=10,
        price=prices["AAA"], time=timestamp(first.clock.now())))
    first.clock.advance(2 * first.sidecar.config.limits.reservation_ttl + 1)
    await first.sidecar.monitor_once()  # the sidecar forgets ord-R; the server keeps its grant
    await first.publish(prices)

    again = await first.check("ord-R", 10)

    assert approved.decision == pb.DECISION_APPROVED
    assert again.decision == pb.DECISION_REJECTED
    assert [r.code for r in again.reasons] == [pb.REASON_CODE_ORDER_ID_REUSED]
    assert "its reservation has ended" in again.reasons[0].message
    assert await first.sidecar.store.ledger.reservations() == []


@pytest.fixture
async def pair_in_lots(tmp_path, valkey):
    """Two sidecars whose AAA trades in lots of 100."""
    async with two_sidecars(tmp_path, valkey, portfolio__strategies=BOTH_IN_AAA,
                            portfolio__lot_sizes={"AAA": 100}) as both:
        yield both


async def test_a_reload_changing_lot_sizes_is_refused_with_a_shared_store(pair_in_lots):
    """Found by a tester: the store kept the lot size it started with, so after a reload to lots
    of 100 a grant of 50 lots of 1 share became an approval of 5,000 shares."""
    first, _ = pair_in_lots
    path = first.sidecar._config_path
    data = yaml.safe_load(open(path).read())
    data["portfolio"]["lot_sizes"] = {"AAA": 1}
    with open(path, "w") as handle:
        handle.write(yaml.safe_dump(data, sort_keys=False))

    reply = await first.admin.ReloadConfig(apb.ReloadConfigRequest(requested_by="pytest"),
                                           metadata=first.admin_metadata)

    assert not reply.reloaded
    assert any(error.startswith("portfolio.lot_sizes: with a shared store") for error in reply.errors)
    assert first.sidecar.config.portfolio.lot_size("AAA") == 100


async def test_an_order_smaller_than_a_lot_is_held_firm_wide_as_a_lot(pair_in_lots):
    first, second = pair_in_lots
    prices = await first.publish_last_prices()
    await second.publish(prices)
    limit = first.sidecar.snapshot.symbols["AAA"].max_position_notional
    at_limit = int(limit / (prices["AAA"] * 100)) * 100
    await first.stub.SetPositions(spb.SetPositionsRequest(positions=[
        pb.Position(strategy="trend", symbol="AAA", quantity=at_limit)]))

    odd_lots = [await second.check(f"o-{n}", 99, strategy="carry") for n in range(3)]

    assert [reply.decision for reply in odd_lots] == [pb.DECISION_REJECTED] * 3
    assert "firm-wide" in odd_lots[0].reasons[-1].message
    assert await second.sidecar.store.ledger.reservations() == []


async def test_odd_lot_fills_and_positions_count_firm_wide_as_the_lots_that_cover_them(pair_in_lots):
    first, _ = pair_in_lots
    prices = await first.publish_last_prices()

    async def report(quantity: float, execution_id: str) -> spb.ReportFillResponse:
        return await first.stub.ReportFill(spb.ReportFillRequest(
            client_order_id="o-odd", strategy="trend", symbol="AAA", side=pb.SIDE_BUY, quantity=quantity,
            price=prices["AAA"], time=timestamp(T0), execution_id=execution_id))

    async def ledger() -> tuple[list, list]:
        store = first.sidecar.store.ledger
        return ([(p.symbol, p.lots) for p in await store.positions()],
                [(r.client_order_id, r.signed_lots) for r in await store.reservations()])

    approved = await first.check("o-odd", 250)
    partly = await report(37, "x-1")
    after_partial = await ledger()
    rest = await report(213, "x-2")
    after_all = await ledger()
    await first.stub.SetPositions(spb.SetPositionsRequest(positions=[
        pb.Position(strategy="trend", symbol="AAA", quantity=149)]))
    after_snapshot = await ledger()

    assert approved.decision == pb.DECISION_APPROVED
    assert (partly.position.quantity, partly.reserved_quantity_remaining) == (37, 213)
    assert after_partial == ([("AAA", 1)], [("o-odd", 3)])  # 37 is covered by a lot; 213 by 3
    assert (rest.position.quantity, rest.reserved_quantity_remaining) == (250, 0)
    assert after_all == ([("AAA", 3)], [])
    assert after_snapshot == ([("AAA", 2)], [])  # 149 is 2 lots, never 1


async def test_checks_sent_at_once_through_one_sidecar_never_jointly_pass_a_strategys_limit(pair):
    first, _ = pair
    prices = await first.publish_last_prices()
    snapshot = first.sidecar.snapshot
    limit = snapshot.strategies["trend"].max_gross_exposure
    wanted = {symbol: min(0.7 * limit, 0.95 * snapshot.symbols[symbol].max_position_notional) / prices[symbol]
              for symbol in ("AAA", "BBB")}

    replies = await asyncio.gather(*(first.check(f"o-{symbol}", quantity, symbol=symbol)
                                     for symbol, quantity in wanted.items()))

    held = sum(reply.approved_quantity * prices[symbol] for reply, symbol in zip(replies, wanted))
    assert sum(quantity * prices[symbol] for symbol, quantity in wanted.items()) > limit  # together, too much
    assert held <= limit * (1 + 1e-9)


async def test_a_sidecar_restarted_before_live_prices_keeps_the_servers_values_of_its_book(tmp_path, valkey):
    settings = dict(shared__url=valkey.url, shared__timeout=0.2, shared__resync_window=1.0,
                    shared__owned_strategies=["trend"])
    (tmp_path / "first").mkdir()
    first = await start_harness(tmp_path / "first", **settings)
    prices = await first.publish_last_prices()
    for _ in range(2):  # live, far from the warm-up's: the second, later, confirms the jump
        first.clock.advance(1)
        await first.publish({"AAA": prices["AAA"] * 1.3})
    await first.check("o-open", 10)  # a reservation put back at the restart too
    await first.stub.SetPositions(spb.SetPositionsRequest(positions=[
        pb.Position(strategy="trend", symbol="AAA", quantity=1000)]))
    before = (await first.sidecar.store.ledger.firm_exposure()).total_gross_cents
    await first.channel.close()
    await stop(first.sidecar, first.server)

    again = await start_harness(tmp_path / "first", **settings)
    try:
        after = (await again.sidecar.store.ledger.firm_exposure()).total_gross_cents
    finally:
        await again.channel.close()
        await stop(again.sidecar, again.server)

    assert before == pytest.approx(1010 * prices["AAA"] * 1.3 * 100, rel=1e-4)  # valued at the live price
    assert after == before


async def test_a_strategy_flattens_a_symbol_whose_other_holders_net_it_to_zero(tmp_path, valkey):
    """Found by a tester: the server drops the value of a symbol the firm holds net zero of, and
    an empty snapshot sent none, so flattening one side was refused for want of a mark."""
    first = await sidecar(tmp_path, "first", valkey, shared__owned_strategies=["trend"],
                          portfolio__strategies=BOTH_IN_AAA)
    second = await sidecar(tmp_path, "second", valkey, shared__owned_strategies=["carry"],
                           portfolio__strategies=BOTH_IN_AAA)
    try:
        prices = await first.publish_last_prices()
        await second.publish(prices)
        await first.stub.SetPositions(spb.SetPositionsRequest(
            strategy="trend", positions=[pb.Position(strategy="trend", symbol="AAA", quantity=1000)]))
        await second.stub.SetPositions(spb.SetPositionsRequest(
            strategy="carry", positions=[pb.Position(strategy="carry", symbol="AAA", quantity=-1000)]))

        flattened = await first.stub.SetPositions(spb.SetPositionsRequest(strategy="trend", positions=[]))
        usage = await first.stub.GetUtilization(spb.GetUtilizationRequest())
    finally:
        for running in (first, second):
            await running.channel.close()
            await stop(running.sidecar, running.server)

    assert flattened.positions == 0  # none left: the call succeeds
    assert not [s for s in usage.strategies if s.strategy == "trend" and s.usage.gross_exposure]


async def test_health_is_not_serving_while_the_server_grants_nothing_after_a_loss(pair, valkey):
    """Found by a tester: for the window after the server lost its data, every check failed
    closed while health and /readyz said SERVING."""
    first, second = pair
    await first.publish_last_prices()
    assert (await first.check("o-before", 1)).decision == pb.DECISION_APPROVED
    health = health_pb2_grpc.HealthStub(first.channel)

    async def health_is(wanted) -> bool:
        return (await health.Check(health_pb2.HealthCheckRequest())).status == wanted

    elsewhere = RedisLedger(valkey.url, timeout=2.0)
    try:
        await elsewhere._run("flush", lambda redis: redis.flushall())  # no connection breaks
        await eventually(lambda: health_is(health_pb2.HealthCheckResponse.NOT_SERVING))
        refused = await first.check("o-in-the-window", 1)
        await eventually(lambda: health_is(health_pb2.HealthCheckResponse.SERVING))  # the window: 1 s
        approved = await first.check("o-after-the-window", 1)
    finally:
        await elsewhere.close()

    assert refused.decision == pb.DECISION_REJECTED
    assert [r.code for r in refused.reasons] == [pb.REASON_CODE_STATE_UNAVAILABLE]
    assert approved.decision == pb.DECISION_APPROVED


STATIC_HALF = dict(risk_budgeting__enabled=False,
                   limits__static={"strategy_leverage": 1.0, "total_leverage": 0.5, "symbol_max_notional": 1_000_000})
"""Static limits: the firm's total gross at half the NAV (500,000), each symbol's far above."""


@pytest.fixture
async def static_pair(tmp_path, valkey):
    async with two_sidecars(tmp_path, valkey, **STATIC_HALF) as both:
        yield both


async def marked(running, at_least: float) -> None:
    """Wait for the prices' marks, sent in the background, to take the firm's total this far."""
    async def reached() -> bool:
        return (await running.sidecar.store.ledger.firm_exposure()).total_gross_cents >= 0.999 * at_least * 100
    await eventually(reached)


async def firm_room_left_to_second(first, second, prices) -> float:
    """The notional of CCC the second sidecar is granted of an order past the firm's total."""
    await second.publish(prices)
    decision = await second.check(f"o-ccc-{second.clock.now()}", 300_000 / prices["CCC"], strategy="carry",
                                  symbol="CCC", dry_run=False)
    return decision.approved_quantity * prices["CCC"]


async def test_the_firm_total_is_held_at_market_prices_not_at_the_last_orders(static_pair):
    """Found by a reviewer: the server valued each symbol at its last order's or fill's price, so
    a rally in what the firm held never counted, and another sidecar's orders took the firm to
    1.8 times its total limit. Then, marked by every batch, a sidecar whose feed lagged marked the
    rally down again (1.16 times)."""
    first, second = static_pair
    prices = await first.publish_last_prices()
    await first.stub.SetPositions(spb.SetPositionsRequest(positions=[
        pb.Position(strategy="trend", symbol="BBB", quantity=round(400_000 / prices["BBB"]))]))
    first.clock.advance(1)
    rallied = {**prices, "BBB": prices["BBB"] * 1.2}
    await first.publish(rallied)  # 480,000 held now
    await marked(first, 480_000)
    second.clock.advance(1)
    await second.publish(prices)  # a feed that lags, or quotes lower, marks nothing down

    room = await firm_room_left_to_second(first, second, {**prices, "CCC": prices["CCC"]})

    assert room <= 500_000 - 480_000 + prices["CCC"]
    assert (await first.sidecar.store.ledger.firm_exposure()).total_gross_cents >= 479_000 * 100


async def test_a_fill_at_a_stray_price_does_not_revalue_the_firms_position(static_pair):
    """Found by a reviewer: a fill of one share at 0.0001 revalued the firm's whole position in
    the symbol at that price, and the other sidecar got 1.44 times the total limit approved."""
    first, second = static_pair
    prices = await first.publish_last_prices()
    await first.stub.SetPositions(spb.SetPositionsRequest(positions=[
        pb.Position(strategy="trend", symbol="BBB", quantity=round(400_000 / prices["BBB"]))]))
    await first.stub.ReportFill(spb.ReportFillRequest(
        client_order_id="o-stray", strategy="trend", symbol="BBB", side=pb.SIDE_SELL, quantity=1,
        price=0.0001, time=timestamp(first.clock.now()), execution_id="x-stray"))

    room = await firm_room_left_to_second(first, second, prices)

    assert room <= 500_000 - 400_000 + prices["CCC"]


async def test_a_bad_print_held_back_marks_nothing_and_a_rally_taken_back_comes_down(static_pair):
    """Found by a reviewer: a bad print held by the screen was sent as the mark (the stricter price
    checks use), and marks only raised values: the firm's total stayed at 3 times its limit for
    good, refusing every other order; a rally taken back stayed at its peak."""
    first, second = static_pair
    prices = await first.publish_last_prices()
    await first.stub.SetPositions(spb.SetPositionsRequest(positions=[
        pb.Position(strategy="trend", symbol="BBB", quantity=round(300_000 / prices["BBB"]))]))
    first.clock.advance(1)
    await first.publish({**prices, "BBB": prices["BBB"] * 5})  # held back
    if (marking := first.sidecar.store._marking) is not None:
        await marking  # what the batch marked, sent
    held = (await first.sidecar.store.ledger.firm_exposure()).total_gross_cents
    first.clock.advance(1)
    await first.publish({**prices, "BBB": prices["BBB"] * 1.2})
    await marked(first, 360_000)
    first.clock.advance(1)
    await first.publish(prices)  # back where it was

    async def back_down() -> bool:
        return (await first.sidecar.store.ledger.firm_exposure()).total_gross_cents <= 300_100 * 100
    await eventually(back_down)
    room = await firm_room_left_to_second(first, second, prices)

    assert held <= 300_100 * 100
    assert room >= 190_000


@contextlib.asynccontextmanager
async def a_rally_one_sidecar_sees(tmp_path, valkey):
    """Two sidecars trading AAA; the first holds 400,000 of it, rallied to 480,000 on the server by
    its marks; the second's feed lags at the old prices. Yields both and those prices."""
    async with two_sidecars(tmp_path, valkey, portfolio__strategies=BOTH_IN_AAA, **STATIC_HALF) as (first, second):
        prices = await first.publish_last_prices()
        await first.stub.SetPositions(spb.SetPositionsRequest(positions=[
            pb.Position(strategy="trend", symbol="AAA", quantity=round(400_000 / prices["AAA"]))]))
        first.clock.advance(1)
        await first.publish({**prices, "AAA": prices["AAA"] * 1.2})
        await marked(first, 480_000)
        await second.publish(prices)
        yield first, second, prices


async def test_an_order_at_a_lagging_price_does_not_mark_a_rally_down(tmp_path, valkey):
    """Found by a reviewer: marks could not lower a rally another sidecar saw, but an order (or a
    fill) of one share at the lagging sidecar's price revalued the firm's whole position at it, and
    that sidecar then took the firm to 1.16 times its total limit."""
    async with a_rally_one_sidecar_sees(tmp_path, valkey) as (first, second, prices):
        tiny = await second.check("o-tiny", 1, strategy="carry", symbol="AAA")
        total = (await first.sidecar.store.ledger.firm_exposure()).total_gross_cents

        room = await firm_room_left_to_second(first, second, prices)

    assert tiny.decision == pb.DECISION_APPROVED
    assert total >= 0.999 * 480_000 * 100
    assert room <= 500_000 - 480_000 + prices["CCC"]


async def test_a_positions_snapshot_at_a_lagging_price_does_not_mark_a_rally_down(tmp_path, valkey):
    """As an order's or a fill's, a snapshot's own prices value its symbols at no less than the
    highest fresh mark another sidecar sent."""
    async with a_rally_one_sidecar_sees(tmp_path, valkey) as (first, second, prices):
        await second.stub.SetPositions(spb.SetPositionsRequest(strategy="carry", positions=[
            pb.Position(strategy="carry", symbol="AAA", quantity=1)]))
        total = (await first.sidecar.store.ledger.firm_exposure()).total_gross_cents

        room = await firm_room_left_to_second(first, second, prices)

    assert total >= 0.999 * 480_000 * 100
    assert room <= 500_000 - 480_000 + 2 * prices["CCC"]


async def test_prices_that_come_while_a_mark_is_sent_go_next_the_latest_of_each(static_pair):
    """Coalesced while a mark is on its way, a symbol's latest price goes next: the highest would
    keep a fall from reaching the server."""
    first, _ = static_pair
    prices = await first.publish_last_prices()
    quantity = round(300_000 / prices["BBB"])
    await first.stub.SetPositions(spb.SetPositionsRequest(positions=[
        pb.Position(strategy="trend", symbol="BBB", quantity=quantity)]))
    store = first.sidecar.store

    store.mark_firm_wide({"BBB": prices["BBB"] * 1.2})
    store.mark_firm_wide({"BBB": prices["BBB"] * 1.1})  # before the first went: both go in one call
    await store._marking

    total = (await store.ledger.firm_exposure()).total_gross_cents
    assert total == pytest.approx(quantity * prices["BBB"] * 1.1 * 100, rel=1e-4)
