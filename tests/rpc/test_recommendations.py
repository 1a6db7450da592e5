"""StreamRecommendations and the triggers behind it, against a real server."""

from __future__ import annotations

import asyncio
import dataclasses

import grpc
import pytest

from riskbudget.v1 import risk_budget_admin_pb2 as apb
from riskbudget.v1 import risk_budget_service_pb2 as spb
from riskbudget.v1 import risk_budget_service_pb2_grpc as spb_grpc
from riskbudget.v1 import types_pb2 as pb
from riskbudget_client import AsyncRecommendationFeed, RecommendationFeed, RecommendationsLost, RiskBudgetError
from riskbudget_sidecar.app.serve import stop
from riskbudget_sidecar.engine.recommendations import target_allocation
from riskbudget_sidecar.engine.types import PriceTick, Regime
from riskbudget_sidecar.rpc import servicers
from riskbudget_sidecar.service import sidecar as sidecar_module
from riskbudget_sidecar.service.clock import ManualClock
from riskbudget_sidecar.service.config_file import load_config
from riskbudget_sidecar.service.sidecar import RiskBudgetSidecar
from riskbudget_sidecar.store.errors import StoreError

from .conftest import T0, start_harness, timestamp, write_config

FAST_REGIME = {"regime__confirmation_bars": 1, "regime__min_dwell_bars": 0}
DAY = 86_400.0


async def trigger(harness, reason: str = "test") -> pb.Recommendation:
    reply = await harness.admin.TriggerRebalance(
        apb.TriggerRebalanceRequest(reason=reason, requested_by="pytest"), metadata=harness.admin_metadata)
    return reply.recommendation


async def read_sequences(call, count: int) -> list[int]:
    sequences = []
    while len(sequences) < count:
        message = await asyncio.wait_for(call.read(), timeout=10)
        sequences += [r.sequence for r in message.recommendations]
    return sequences


@pytest.fixture
async def fast_regime(tmp_path):
    running = await start_harness(tmp_path, **FAST_REGIME)
    yield running
    await running.channel.close()
    await stop(running.sidecar, running.server)


async def crash_the_benchmark(harness) -> None:
    """A 40% fall in the benchmark, then the next bar's first tick, which closes the crash bar."""
    prices = await harness.publish_last_prices()
    crashed = {symbol: price * 0.6 for symbol, price in prices.items()}
    await harness.publish(crashed)
    harness.clock.advance(DAY)
    await harness.publish(crashed)


async def test_a_regime_change_from_market_data_is_streamed_at_once(fast_regime):
    call = fast_regime.stub.StreamRecommendations(spb.StreamRecommendationsRequest())

    await crash_the_benchmark(fast_regime)
    message = await asyncio.wait_for(call.read(), timeout=10)
    status = await fast_regime.stub.GetStatus(spb.GetStatusRequest())
    call.cancel()

    recommendation = message.recommendations[0]
    assert recommendation.sequence == 1
    assert pb.RECOMMENDATION_TRIGGER_REGIME_CHANGE in recommendation.triggers
    assert recommendation.budget.regime == pb.REGIME_CRISIS
    assert recommendation.requires_rebalancing
    assert {a.symbol for a in recommendation.target_allocation} == {"AAA", "BBB", "CCC", "DDD"}
    assert len(status.regime_response_seconds) == 1
    assert status.regime_history[-1].regime == pb.REGIME_CRISIS


async def test_a_manual_rebalance_reaches_every_subscriber(harness):
    first = harness.stub.StreamRecommendations(spb.StreamRecommendationsRequest())
    second = harness.stub.StreamRecommendations(spb.StreamRecommendationsRequest())
    await asyncio.sleep(0.05)  # let both subscribe before the recommendation exists

    made = await trigger(harness, "quarter end")

    assert made.triggers == [pb.RECOMMENDATION_TRIGGER_MANUAL]
    assert "quarter end" in made.reason
    assert await read_sequences(first, 1) == [made.sequence]
    assert await read_sequences(second, 1) == [made.sequence]
    first.cancel()
    second.cancel()


async def test_recommendation_streams_cannot_take_every_slot_from_the_trading_calls(tmp_path):
    """Found by a tester: 256 recommendation streams (anyone with a read token can open them)
    held every call slot, and every CheckTrade was turned away. They may hold half of them."""
    running = await start_harness(tmp_path, sidecar__max_concurrent_rpcs=8)
    try:
        await running.publish_last_prices()
        await trigger(running)
        streams = [running.stub.StreamRecommendations(spb.StreamRecommendationsRequest()) for _ in range(5)]
        held = [await read_sequences(stream, 1) for stream in streams[:4]]  # attached: each holds a slot
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await streams[4].read()
        check = await running.check("o-streams-open", 1)
        for stream in streams:
            stream.cancel()
    finally:
        await running.channel.close()
        await stop(running.sidecar, running.server)

    assert held == [[1]] * 4
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "at most 4 recommendation streams" in refused.value.details()
    assert check.decision == pb.DECISION_APPROVED


@pytest.mark.parametrize("pairs, client_receives", [(800, None), (300, 16 * 1024)])
async def test_a_recommendation_too_large_to_send_ends_the_stream_with_a_status_no_retry_can_pass(
        tmp_path, monkeypatch, pairs, client_receives):
    """Found by a tester: a recommendation larger than sidecar.max_message_bytes (64 KiB here)
    failed the stream with RESOURCE_EXHAUSTED at every reconnect, which the feed took for a
    passing failure and retried forever, silent. It now ends the stream FAILED_PRECONDITION,
    naming the setting, with its resume point, and the feed raises. A reviewer then found the
    same below the setting, past what clients receive (4 MiB; 16 KiB stands in for it here)."""
    if client_receives is not None:
        monkeypatch.setattr(servicers, "CLIENT_RECEIVE_BYTES", client_receives)
    symbols = [f"SYMBOL-WITH-A-LONG-NAME-{n:03d}-{'X' * 30}" for n in range(pairs)]
    strategies = {"trend": {"risk_share": 0.5, "symbols": symbols[:pairs // 2]},
                  "carry": {"risk_share": 0.5, "symbols": symbols[pairs // 2:]}}
    running = await start_harness(tmp_path, portfolio__strategies=strategies, regime__benchmark=symbols[0],
                                  warmup={"source": "synthetic", "bars": 60, "seed": 1})
    try:
        with pytest.raises(grpc.aio.AioRpcError) as made:  # its target allocation alone is some 70 KB
            await trigger(running)
        call = running.stub.StreamRecommendations(spb.StreamRecommendationsRequest())
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await asyncio.wait_for(call.read(), timeout=10)
        with pytest.raises(RiskBudgetError, match="sidecar.max_message_bytes"):
            await asyncio.wait_for(first_from_feed(running), timeout=10)
    finally:
        await running.channel.close()
        await stop(running.sidecar, running.server)

    assert made.value.code() == ended.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert made.value.details().startswith("made and recorded, but recommendation 1 takes")
    assert "recommendation 1 takes" in ended.value.details()
    assert ("riskbudget-resume-after", "0") in tuple(ended.value.trailing_metadata())


async def first_from_feed(harness):
    async with AsyncRecommendationFeed(harness.server.target, after_sequence=0) as feed:
        async for recommendation in feed:
            return recommendation


async def test_a_subscriber_resumes_after_its_last_sequence_with_no_gap_and_no_duplicate(harness):
    for _ in range(5):
        await trigger(harness)

    call = harness.stub.StreamRecommendations(spb.StreamRecommendationsRequest(after_sequence=2))
    missed = await read_sequences(call, 3)
    live = await trigger(harness)
    after = await read_sequences(call, 1)
    call.cancel()

    assert missed == [3, 4, 5]
    assert after == [live.sequence] == [6]


async def test_from_latest_skips_the_history(harness):
    for _ in range(3):
        await trigger(harness)

    call = harness.stub.StreamRecommendations(spb.StreamRecommendationsRequest(from_latest=True))
    await asyncio.sleep(0.05)
    live = await trigger(harness)
    received = await read_sequences(call, 1)
    call.cancel()

    assert received == [live.sequence] == [4]


async def test_a_resume_point_older_than_the_log_is_out_of_range_naming_the_oldest(tmp_path):
    running = await start_harness(tmp_path, store__recommendation_retention=3)
    try:
        for _ in range(5):
            await trigger(running)
        call = running.stub.StreamRecommendations(spb.StreamRecommendationsRequest(after_sequence=0))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call.read()
        trailing = dict(await call.trailing_metadata())
    finally:
        await running.channel.close()
        await stop(running.sidecar, running.server)

    assert refused.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert "oldest available is 3" in refused.value.details()
    assert trailing["riskbudget-oldest-sequence"] == "3"


async def test_a_subscriber_that_stops_reading_is_cut_off_with_a_resume_point_while_checks_answer(tmp_path):
    wide = {"wide": {"risk_share": 1.0, "symbols": [f"S{i:03d}" for i in range(200)]}}
    running = await start_harness(tmp_path, stream__subscriber_queue=1, portfolio__strategies=wide,
                                  warmup__bars=30)
    try:
        await running.publish_last_prices()
        # Its own connection with a fixed flow-control window, so that not reading soon blocks the server.
        stalled_channel = grpc.aio.insecure_channel(running.server.target, options=[("grpc.http2.bdp_probe", 0)])
        stalled = spb_grpc.RiskBudgetServiceStub(stalled_channel).StreamRecommendations(
            spb.StreamRecommendationsRequest())
        healthy = running.stub.StreamRecommendations(spb.StreamRecommendationsRequest())
        await asyncio.sleep(0.05)
        made = 300  # each ~10 KB: far more than the connection's flow-control window holds
        for _ in range(made):
            await trigger(running)
            await asyncio.wait_for(healthy.read(), timeout=10)  # this one keeps up
        check = await running.check("o-during", 1, strategy="wide", symbol="S001")
        received = []
        with pytest.raises(grpc.aio.AioRpcError) as cut_off:
            while True:
                message = await asyncio.wait_for(stalled.read(), timeout=10)
                received += [r.sequence for r in message.recommendations]
        resume_after = int(dict(await stalled.trailing_metadata())["riskbudget-resume-after"])
        resumed = running.stub.StreamRecommendations(spb.StreamRecommendationsRequest(after_sequence=resume_after))
        rest = await read_sequences(resumed, made - resume_after)
        resumed.cancel()
        healthy.cancel()
        await stalled_channel.close()
    finally:
        await running.channel.close()
        await stop(running.sidecar, running.server)

    assert cut_off.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert check.decision == pb.DECISION_APPROVED
    assert received == list(range(1, resume_after + 1))
    assert rest == list(range(resume_after + 1, made + 1))


async def test_drift_produces_a_recommendation_once_within_the_cooldown(harness):
    prices = await harness.publish_last_prices()
    await harness.stub.SetPositions(spb.SetPositionsRequest(positions=[
        pb.Position(strategy="trend", symbol="AAA", quantity=1000)]))  # all in one of two symbols

    await harness.sidecar.monitor_once()
    await harness.sidecar.monitor_once()
    status = await harness.stub.GetStatus(spb.GetStatusRequest())
    call = harness.stub.StreamRecommendations(spb.StreamRecommendationsRequest())
    first = (await call.read()).recommendations[0]
    call.cancel()

    assert status.last_recommendation_sequence == 1
    assert pb.RECOMMENDATION_TRIGGER_DRIFT in first.triggers
    current = {(a.strategy, a.symbol): a.notional for a in first.current_allocation}
    assert current[("trend", "AAA")] == pytest.approx(1000 * prices["AAA"])


async def test_a_drift_whose_recommendation_could_not_be_recorded_is_recommended_at_the_next_tick(
        harness, monkeypatch):
    await harness.publish_last_prices()
    await harness.stub.SetPositions(spb.SetPositionsRequest(positions=[
        pb.Position(strategy="trend", symbol="AAA", quantity=1000)]))
    append = harness.sidecar.store.append_recommendation

    def refused(recommendation):
        raise StoreError("the disk is full")
    monkeypatch.setattr(harness.sidecar.store, "append_recommendation", refused)
    await harness.sidecar.monitor_once()
    monkeypatch.setattr(harness.sidecar.store, "append_recommendation", append)
    await harness.sidecar.monitor_once()  # within the cooldown of the firing that was lost

    recommended = await recommendations_after(harness, 0)
    assert [list(r.triggers) for r in recommended] == [[pb.RECOMMENDATION_TRIGGER_DRIFT]]


async def test_after_a_restart_drift_waits_for_live_prices_not_the_warm_ups(tmp_path):
    first = await start_harness(tmp_path)
    warm = await first.publish_last_prices()
    live = {**warm, "AAA": warm["AAA"] * 1.5, "BBB": warm["BBB"] * 0.7}  # far from the warm-up's
    await first.publish(live)
    targets = {a.symbol: a.notional for a in target_allocation(first.sidecar.snapshot) if a.strategy == "trend"}
    await first.stub.SetPositions(spb.SetPositionsRequest(positions=[  # on target at the live prices
        pb.Position(strategy="trend", symbol=symbol, quantity=notional / live[symbol])
        for symbol, notional in targets.items()]))
    await first.sidecar.monitor_once()
    made = (await first.stub.GetStatus(spb.GetStatusRequest())).last_recommendation_sequence
    await close(first)

    second = await start_harness(tmp_path)
    try:
        await second.sidecar.monitor_once()  # no live price yet: the warm-up's would make a drift
        unpriced = (await second.stub.GetStatus(spb.GetStatusRequest())).last_recommendation_sequence
        await second.publish(live)
        await second.sidecar.monitor_once()
        priced = (await second.stub.GetStatus(spb.GetStatusRequest())).last_recommendation_sequence
    finally:
        await close(second)

    assert made == unpriced == priced


async def test_budget_versions_keep_increasing_across_restarts(tmp_path):
    seen = []
    for _ in range(3):
        running = await start_harness(tmp_path)
        try:
            await running.publish_last_prices()
            seen.append((await running.stub.GetBudget(spb.GetBudgetRequest())).budget.ref.version)
            seen.append((await trigger(running)).budget.version)
        finally:
            await close(running)

    assert seen == sorted(seen) and len(set(seen[::2])) == 3, seen


async def test_the_budget_versions_reserved_stay_ahead_of_the_versions_used(harness, monkeypatch):
    monkeypatch.setattr(sidecar_module, "BUDGET_VERSION_BLOCK", 4)
    margins = []
    for _ in range(10):
        await harness.publish_last_prices()
        margins.append(harness.sidecar.store.budget_versions_reserved() - harness.sidecar.snapshot.version)

    assert min(margins) >= 2, margins


async def test_after_a_restart_a_volatility_breach_waits_for_live_prices(tmp_path):
    def start(at):
        return start_harness(tmp_path, at=at, risk_budgeting__rebalancing_triggers={
            "vol_breach": 0.01, "drift_threshold": 0.99, "cooldown": 60})  # any book breaches

    async def vol_breaches(harness) -> int:
        return sum(pb.RECOMMENDATION_TRIGGER_VOL_BREACH in r.triggers for r in await recommendations_after(harness, 0))

    first = await start(T0)
    await first.publish_last_prices()
    await first.stub.SetPositions(spb.SetPositionsRequest(positions=[
        pb.Position(strategy="trend", symbol="AAA", quantity=1000)]))
    await first.sidecar.monitor_once()
    fired = await vol_breaches(first)
    await close(first)

    second = await start(T0 + 120)  # past the cooldown
    try:
        await second.sidecar.monitor_once()  # no live price yet: the warm-up's values the book
        unpriced = await vol_breaches(second)
        await second.publish_last_prices()
        await second.sidecar.monitor_once()
        priced = await vol_breaches(second)
    finally:
        await close(second)

    assert (fired, unpriced, priced) == (1, 1, 2)


async def test_a_restart_does_not_send_a_recommendation_again_within_its_cooldown(tmp_path):
    first = await start_harness(tmp_path)
    await first.publish_last_prices()
    await first.stub.SetPositions(spb.SetPositionsRequest(positions=[
        pb.Position(strategy="trend", symbol="AAA", quantity=1000)]))
    await first.sidecar.monitor_once()
    sent = (await first.stub.GetStatus(spb.GetStatusRequest())).last_recommendation_sequence
    await close(first)

    second = await start_harness(tmp_path, at=T0 + 60)  # within the 300 s cooldown
    try:
        await second.publish_last_prices()
        await second.sidecar.monitor_once()
        again = await recommendations_after(second, sent)
    finally:
        await close(second)

    assert sent == 1 and again == []  # the same drift, not sent twice


async def test_a_config_reload_does_not_send_a_recommendation_again_within_its_cooldown(harness):
    await harness.publish_last_prices()
    await harness.stub.SetPositions(spb.SetPositionsRequest(positions=[
        pb.Position(strategy="trend", symbol="AAA", quantity=1000)]))
    await harness.sidecar.monitor_once()

    reply = await harness.admin.ReloadConfig(apb.ReloadConfigRequest(requested_by="pytest"),
                                             metadata=harness.admin_metadata)
    await harness.sidecar.monitor_once()
    status = await harness.stub.GetStatus(spb.GetStatusRequest())

    assert reply.reloaded
    assert status.last_recommendation_sequence == 1


async def test_an_operator_change_that_moves_the_targets_is_recommended_at_once(tmp_path):
    """Found by a tester: a leverage cap (or a reload swapping risk shares) cut a strategy's
    targets several times over, and the rebalancer was never told: drift compares mixes only."""
    from .test_overrides import set_override

    running = await start_harness(tmp_path)
    try:
        await running.publish_last_prices()
        slight = await set_override(running, scope=pb.OVERRIDE_SCOPE_STRATEGY, target="carry",
                                    kind=pb.OVERRIDE_KIND_SCALE_LEVERAGE, value=0.95)  # 5%: under the 10% drift threshold
        capped = await set_override(running, scope=pb.OVERRIDE_SCOPE_STRATEGY, target="trend",
                                    kind=pb.OVERRIDE_KIND_SCALE_LEVERAGE, value=0.5)
        targets = {a.symbol: a.notional for a in (await recommendations_after(running, 0))[-1].target_allocation
                   if a.strategy == "trend"}
        budget = (await running.stub.GetBudget(spb.GetBudgetRequest())).budget
        await running.admin.ClearOverride(apb.ClearOverrideRequest(id=capped.id, cleared_by="pytest", reason="test"),
                                          metadata=running.admin_metadata)
        made = await recommendations_after(running, 0)
    finally:
        await running.channel.close()
        await stop(running.sidecar, running.server)

    assert slight.id and [(list(r.triggers), r.reason) for r in made] == [
        ([pb.RECOMMENDATION_TRIGGER_MANUAL],  # the slight change is not recommended yet: it is named too
         f"override {slight.id} set; override {capped.id} set moved the targets: trend by 50% of its target"),
        ([pb.RECOMMENDATION_TRIGGER_MANUAL], f"override {capped.id} cleared moved the targets: trend by 50% of its target")]
    trend = next(s for s in budget.strategies if s.strategy == "trend")
    assert sum(abs(n) for n in targets.values()) == pytest.approx(trend.max_gross_exposure)


async def test_a_reload_that_moves_the_targets_is_recommended_and_one_that_does_not_is_not(harness):
    from .test_reload_and_alerts import edit_config, reload

    def swap_shares(data):
        strategies = data["portfolio"]["strategies"]
        strategies["trend"]["risk_share"], strategies["carry"]["risk_share"] = 0.4, 0.6

    await harness.publish_last_prices()
    edit_config(harness, lambda data: data["limits"].update(near_limit_fraction=0.85))  # no target moves
    quiet = await reload(harness)
    edit_config(harness, swap_shares)
    swapped = await reload(harness)
    made = await recommendations_after(harness, 0)

    assert quiet.reloaded and swapped.reloaded
    assert [list(r.triggers) for r in made] == [[pb.RECOMMENDATION_TRIGGER_MANUAL]]
    assert made[0].reason.startswith("a config reload moved the targets: ")
    assert {"trend", "carry"} <= {part.split(" by ")[0] for part in made[0].reason.split(": ")[1].split(", ")}


async def test_a_reload_that_changed_nothing_is_not_named_among_the_causes_of_a_move(harness):
    """Found by a tester: a reload that changed nothing (or only rotated a token) was named with
    the override that moved the targets."""
    from .test_overrides import set_override

    await harness.publish_last_prices()
    unchanged = await harness.admin.ReloadConfig(apb.ReloadConfigRequest(requested_by="pytest"),
                                                 metadata=harness.admin_metadata)
    capped = await set_override(harness, scope=pb.OVERRIDE_SCOPE_STRATEGY, target="trend",
                                kind=pb.OVERRIDE_KIND_SCALE_LEVERAGE, value=0.5)
    made = await recommendations_after(harness, 0)

    assert unchanged.reloaded
    assert [r.reason for r in made] == [f"override {capped.id} set moved the targets: trend by 50% of its target"]


async def test_streams_end_with_their_resume_point_on_shutdown(tmp_path):
    running = await start_harness(tmp_path)
    await trigger(running)
    call = running.stub.StreamRecommendations(spb.StreamRecommendationsRequest())
    await read_sequences(call, 1)

    await stop(running.sidecar, running.server)
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await call.read()
    trailing = dict(await call.trailing_metadata() or ())
    await running.channel.close()

    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    assert trailing.get("riskbudget-resume-after") == "1"


async def test_a_long_replay_reaches_a_client_with_grpcs_default_message_limit(tmp_path):
    running = await start_harness(tmp_path, sidecar__max_message_bytes=16 * 1024 * 1024)
    try:
        await trigger(running)
        [first] = running.sidecar.store.recommendations_after(0, 1)
        for n in range(500):  # about 5 MB of history, past what a client takes in one message
            running.sidecar.store.append_recommendation(
                dataclasses.replace(first, reason=f"{n} " + "x" * 10_000))
        with RecommendationFeed(running.server.target, max_reconnects=0) as feed:
            sequences = await asyncio.to_thread(lambda: [next(feed).sequence for _ in range(501)])
    finally:
        await close(running)

    assert sequences == list(range(1, 502))


async def test_a_resume_point_ahead_of_the_log_is_out_of_range(harness):
    await trigger(harness)

    call = harness.stub.StreamRecommendations(spb.StreamRecommendationsRequest(after_sequence=50))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call.read()

    assert refused.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert "ahead of the newest recommendation 1" in refused.value.details()


async def test_every_stream_message_names_the_log_its_sequences_count_in(harness):
    await trigger(harness)
    await trigger(harness)

    call = harness.stub.StreamRecommendations(spb.StreamRecommendationsRequest())
    message = await call.read()
    status = await harness.stub.GetStatus(spb.GetStatusRequest())
    resumed = harness.stub.StreamRecommendations(spb.StreamRecommendationsRequest(
        after_sequence=1, log_id=status.recommendation_log_id))
    rest = await resumed.read()
    call.cancel()
    resumed.cancel()

    assert len(status.recommendation_log_id) == 32
    assert message.log_id == rest.log_id == status.recommendation_log_id
    assert [r.sequence for r in rest.recommendations] == [2]


async def test_a_resume_point_in_another_log_is_out_of_range_though_its_sequence_exists(harness):
    await trigger(harness)
    await trigger(harness)

    call = harness.stub.StreamRecommendations(spb.StreamRecommendationsRequest(after_sequence=1, log_id="f" * 32))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call.read()
    latest = harness.stub.StreamRecommendations(spb.StreamRecommendationsRequest(from_latest=True, log_id="f" * 32))
    await asyncio.sleep(0.05)
    await trigger(harness)
    live = await latest.read()
    latest.cancel()

    assert refused.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert f"counts in recommendation log {'f' * 32!r}" in refused.value.details()
    assert dict(refused.value.trailing_metadata())["riskbudget-oldest-sequence"] == "1"
    assert [r.sequence for r in live.recommendations] == [3]  # from_latest resumes nowhere: not checked


@pytest.mark.parametrize("log_id", ["x" * 129, "a\x01b"], ids=["long", "control"])
async def test_a_log_id_that_is_no_log_id_is_invalid_argument_naming_it(harness, log_id):
    call = harness.stub.StreamRecommendations(spb.StreamRecommendationsRequest(after_sequence=1, log_id=log_id))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call.read()

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "log_id" in refused.value.details() and len(refused.value.details()) < 300


async def test_a_checkpoint_of_a_replaced_state_file_is_out_of_range_once_the_new_log_passes_it(tmp_path):
    first = await start_harness(tmp_path)
    for _ in range(2):
        await trigger(first)
    old_log = (await first.stub.GetStatus(spb.GetStatusRequest())).recommendation_log_id
    await close(first)
    (tmp_path / "state.sqlite3").rename(tmp_path / "old.sqlite3")
    second = await start_harness(tmp_path)  # a new state file: its log numbers from 1 again
    try:
        made = [(await trigger(second, f"new {n}")).sequence for n in range(3)]
        call = second.stub.StreamRecommendations(spb.StreamRecommendationsRequest(after_sequence=2, log_id=old_log))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call.read()
    finally:
        await close(second)

    assert made == [1, 2, 3]
    assert refused.value.code() == grpc.StatusCode.OUT_OF_RANGE  # not 3 alone: 1 and 2 are new too


@pytest.mark.parametrize("feed_class", [RecommendationFeed, AsyncRecommendationFeed])
async def test_a_feed_resuming_from_a_lost_log_raises_recommendations_lost(harness, feed_class):
    await trigger(harness)
    checkpoint = 1_000_000  # ahead of this sidecar's log: a long message in a binary rich status

    def read_one():
        with RecommendationFeed(harness.server.target, after_sequence=checkpoint) as feed:
            next(feed)

    async def read_one_async():
        async with AsyncRecommendationFeed(harness.server.target, after_sequence=checkpoint) as feed:
            await anext(feed)

    with pytest.raises(RecommendationsLost) as lost:
        if feed_class is RecommendationFeed:
            await asyncio.to_thread(read_one)
        else:
            await read_one_async()

    assert lost.value.after_sequence == checkpoint and lost.value.oldest_available == 1


@pytest.mark.parametrize("feed_class", [RecommendationFeed, AsyncRecommendationFeed])
async def test_a_feed_learns_the_log_and_a_checkpoint_of_another_log_raises_recommendations_lost(
        harness, feed_class):
    for _ in range(3):
        await trigger(harness)
    status = await harness.stub.GetStatus(spb.GetStatusRequest())

    def read(**start):
        with RecommendationFeed(harness.server.target, **start) as feed:
            return next(feed).sequence, feed.log_id

    async def read_async(**start):
        async with AsyncRecommendationFeed(harness.server.target, **start) as feed:
            return (await anext(feed)).sequence, feed.log_id

    async def read_one(**start):
        if feed_class is RecommendationFeed:
            return await asyncio.to_thread(read, **start)
        return await read_async(**start)

    learned = await read_one(after_sequence=1)
    checked = await read_one(after_sequence=1, log_id=status.recommendation_log_id)
    with pytest.raises(RecommendationsLost) as lost:
        await read_one(after_sequence=1, log_id="0" * 32)

    assert learned == checked == (2, status.recommendation_log_id)
    assert lost.value.after_sequence == 1 and lost.value.oldest_available == 1


async def test_a_feed_reconnecting_to_a_sidecar_on_a_new_state_file_raises_instead_of_skipping(tmp_path):
    listen = {"sidecar__listen": f"unix:{tmp_path}/socket/riskbudget.sock"}
    first = await start_harness(tmp_path, **listen)
    await trigger(first)
    feed = RecommendationFeed(first.server.target, initial_backoff=0.01, max_backoff=0.05)
    seen = [(await asyncio.to_thread(next, feed)).sequence]
    await close(first)
    (tmp_path / "state.sqlite3").rename(tmp_path / "old.sqlite3")
    second = await start_harness(tmp_path, **listen)
    try:
        for n in range(3):  # the new log passes the feed's checkpoint before it reconnects
            await trigger(second, f"new {n}")
        with pytest.raises(RecommendationsLost) as lost:
            seen.append((await asyncio.to_thread(next, feed)).sequence)
    finally:
        feed.close()
        await close(second)

    assert seen == [1]  # never 2 of the new log, which would skip its 1
    assert "counts in recommendation log" in lost.value.details


async def close(harness) -> None:
    await harness.channel.close()
    await stop(harness.sidecar, harness.server)


async def recommendations_after(harness, sequence: int) -> list[pb.Recommendation]:
    status = await harness.stub.GetStatus(spb.GetStatusRequest())
    if status.last_recommendation_sequence <= sequence:
        return []
    call = harness.stub.StreamRecommendations(spb.StreamRecommendationsRequest(after_sequence=sequence))
    wanted, got = status.last_recommendation_sequence - sequence, []
    while len(got) < wanted:
        got.extend((await call.read()).recommendations)
    call.cancel()
    return got


async def test_a_restart_keeps_a_crisis_the_warm_up_cannot_know(tmp_path):
    first = await start_harness(tmp_path, **FAST_REGIME)
    await crash_the_benchmark(first)
    before = (await first.stub.GetBudget(spb.GetBudgetRequest())).budget
    await close(first)

    second = await start_harness(tmp_path, at=T0 + 2 * DAY, **FAST_REGIME)  # warm-up: a calm market
    try:
        after = (await second.stub.GetBudget(spb.GetBudgetRequest())).budget
        new = await recommendations_after(second, 1)
    finally:
        await close(second)

    assert before.ref.regime == after.ref.regime == pb.REGIME_CRISIS
    assert after.regime_since == before.regime_since
    assert after.equity_allocation == before.equity_allocation == 0.2
    assert new == []  # the same regime as before the restart: nothing to recommend


async def test_a_crisis_carried_over_is_the_first_budget_and_prices_published_while_starting_keep_it(
        tmp_path, monkeypatch):
    first = await start_harness(tmp_path, **FAST_REGIME)
    await crash_the_benchmark(first)
    crashed = {s.symbol: s.last_price for s in (await first.stub.GetBudget(spb.GetBudgetRequest())).budget.symbols}
    await close(first)
    sidecar = RiskBudgetSidecar(load_config(write_config(tmp_path, **FAST_REGIME)), clock=ManualClock(T0 + 2 * DAY))
    store_start = type(sidecar.store).start

    async def start_while_prices_come(store):  # as a shared store does: it awaits its server
        for when in (T0 + 2 * DAY - 1, T0 + 2 * DAY):  # far below the warm-up's: the second confirms
            await sidecar.publish_prices([PriceTick(s, p, when) for s, p in crashed.items()])
        await store_start(store)
    monkeypatch.setattr(type(sidecar.store), "start", start_while_prices_come)
    versions_before = sidecar.store.budget_versions_reserved()  # the first run's, continued after

    await sidecar.start()
    try:
        budget, record = sidecar.snapshot, sidecar.store.regime_record()
    finally:
        await sidecar.stop()

    assert budget.regime is Regime.CRISIS and record.detected is record.effective is Regime.CRISIS
    assert budget.version == versions_before + 2  # the warm-up's budget was already in crisis; the prices made +2


async def test_a_regime_change_whose_recommendation_could_not_be_recorded_is_recommended_later(
        fast_regime, monkeypatch):
    append = fast_regime.sidecar.store.append_recommendation

    def refused(recommendation):
        raise StoreError("the disk is full")
    monkeypatch.setattr(fast_regime.sidecar.store, "append_recommendation", refused)
    for _ in range(3):  # the prices are in, and each retry of the recommendation is refused
        await crash_the_benchmark(fast_regime)
    kept = fast_regime.sidecar.store.regime_record()
    alerts = (await fast_regime.stub.ListAlerts(spb.ListAlertsRequest(limit=100))).alerts
    monkeypatch.setattr(fast_regime.sidecar.store, "append_recommendation", append)
    await fast_regime.publish_last_prices()  # the next recompute
    status = await fast_regime.stub.GetStatus(spb.GetStatusRequest())
    after = (await fast_regime.stub.ListAlerts(spb.ListAlertsRequest(limit=100))).alerts

    assert kept.effective is not Regime.CRISIS  # not taken as known while unrecommended
    assert pb.ALERT_KIND_STORE_ERROR in [a.kind for a in alerts]
    assert pb.ALERT_KIND_REGIME_CHANGE not in [a.kind for a in alerts]
    assert [r.budget.regime for r in await recommendations_after(fast_regime, 0)] == [pb.REGIME_CRISIS]
    assert fast_regime.sidecar.store.regime_record().effective is Regime.CRISIS
    assert [p.regime for p in status.regime_history].count(pb.REGIME_CRISIS) == 1
    assert [a.kind for a in after].count(pb.ALERT_KIND_REGIME_CHANGE) == 1


async def test_a_forced_regime_that_ended_while_the_sidecar_was_down_is_recommended_at_start(tmp_path):
    first = await start_harness(tmp_path)
    await first.admin.SetOverride(apb.SetOverrideRequest(override=pb.Override(
        scope=pb.OVERRIDE_SCOPE_GLOBAL, kind=pb.OVERRIDE_KIND_FORCE_REGIME, regime=pb.REGIME_CRISIS,
        expires_at=timestamp(T0 + 60), set_by="pytest", reason="drill")), metadata=first.admin_metadata)
    await close(first)

    second = await start_harness(tmp_path, at=T0 + 120)  # the override ended meanwhile
    try:
        budget = (await second.stub.GetBudget(spb.GetBudgetRequest())).budget
        new = await recommendations_after(second, 1)
    finally:
        await close(second)

    assert budget.ref.regime != pb.REGIME_CRISIS
    assert [list(r.triggers) for r in new] == [[pb.RECOMMENDATION_TRIGGER_REGIME_CHANGE]]
    assert new[0].budget.regime == budget.ref.regime
