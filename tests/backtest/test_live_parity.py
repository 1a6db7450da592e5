"""The backtest decides what the live sidecar decides: the same prices and the same book fed
through the gRPC API of a real sidecar (manual clock, ephemeral port) give, after every step,
the same budget (version, regime, every limit), the same recommendations and the same
pre-trade decisions as the replay."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from riskbudget.v1 import risk_budget_service_pb2 as spb
from riskbudget.v1 import risk_budget_service_pb2_grpc, types_pb2 as pb
from riskbudget_sidecar.backtest.replay import Replay, ReplaySettings, Rebalance
from riskbudget_sidecar.engine.addresses import parse_listen_address
from riskbudget_sidecar.engine.types import BudgetSnapshot, Side
from riskbudget_sidecar.rpc.converters import timestamp
from riskbudget_sidecar.rpc.server import start_server
from riskbudget_sidecar.service.clock import ManualClock
from riskbudget_sidecar.service.sidecar import RiskBudgetSidecar
from riskbudget_sidecar.store.memory import MemoryStore

from .builders import daily_table, make_config


def assert_same_budget(budget: pb.Budget, snapshot: BudgetSnapshot, where: str) -> None:
    assert budget.ref.version == snapshot.version, where
    assert pb.Regime.Name(budget.ref.regime) == f"REGIME_{snapshot.regime.name}", where
    assert budget.total_leverage_limit == snapshot.total_leverage_limit, where
    assert budget.forecast_volatility == snapshot.forecast_volatility, where
    assert budget.vol_target == snapshot.vol_target, where
    assert pb.LimitSource.Name(budget.limit_source) == f"LIMIT_SOURCE_{snapshot.limit_source.name}", where
    strategies = {s.strategy: s for s in budget.strategies}
    assert set(strategies) == set(snapshot.strategies), where
    for name, expected in snapshot.strategies.items():
        got = strategies[name]
        assert (got.allocated_capital, got.leverage_limit, got.max_gross_exposure) == (
            expected.allocated_capital, expected.leverage_limit, expected.max_gross_exposure), (where, name)
        assert [(w.symbol, w.weight) for w in got.symbols] == [
            (w.symbol, w.weight) for w in expected.symbols], (where, name)
    symbols = {s.symbol: s.max_position_notional for s in budget.symbols}
    assert symbols == {s: b.max_position_notional for s, b in snapshot.symbols.items()}, where


class LiveSidecar:
    def __init__(self, config, start: float) -> None:
        self.clock = ManualClock(start)
        self.sidecar = RiskBudgetSidecar(config, clock=self.clock, store=MemoryStore())
        self.config = config

    async def __aenter__(self) -> "LiveSidecar":
        self.server = await start_server(self.sidecar, parse_listen_address("127.0.0.1:0"), admin_token=None,
                                         max_message_bytes=self.config.sidecar.max_message_bytes)
        await self.sidecar.start()
        self.channel = grpc.aio.insecure_channel(self.server.target)
        self.stub = risk_budget_service_pb2_grpc.RiskBudgetServiceStub(self.channel)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.channel.close()
        await self.server.stop(0)
        await self.sidecar.stop()

    async def budget(self) -> pb.Budget:
        return (await self.stub.GetBudget(spb.GetBudgetRequest())).budget

    async def set_positions(self, positions) -> None:
        await self.stub.SetPositions(spb.SetPositionsRequest(positions=[
            pb.Position(strategy=p.strategy, symbol=p.symbol, quantity=p.quantity) for p in positions]))

    async def recommendations(self, count: int) -> list:
        received = []
        call = self.stub.StreamRecommendations(spb.StreamRecommendationsRequest(after_sequence=0))
        async def collect():
            async for reply in call:
                received.extend(reply.recommendations)
                if len(received) >= count:
                    return
        await asyncio.wait_for(collect(), timeout=10)
        call.cancel()
        return received


@pytest.mark.parametrize("rebalance", [Rebalance.BAR, Rebalance.RECOMMENDATIONS])
async def test_the_replay_decides_as_the_live_sidecar_fed_the_same_prices_through_grpc(rebalance):
    config = make_config(limits={"max_order_notional": 25_000, "max_staleness": 30})
    table = daily_table(70, seed=11, volatility=0.35)
    replay = Replay(config, table, ReplaySettings(rebalance=rebalance, warmup=12), trace=True)
    result = replay.run()
    trace = result.trace
    assert result.regime.min() != result.regime.max(), "the data must move the regime"
    assert {r for o in trace.orders for r in o.reasons} >= {"max_order_notional", "strategy_exposure_limit"}, \
        "the checks must bind, and orders be sliced"

    async with LiveSidecar(config, start=float(trace.tick_times[0])) as live:
        assert (await live.budget()).ref.version == 1
        # With no warm-up, the live sidecar holds each symbol's first price until a later one
        # confirms it; the replay takes its history as it is. The same prices half a second
        # earlier, in the same bar, are the feed's first: row 0 confirms them.
        primed = await live.stub.PublishMarketData(spb.PublishMarketDataRequest(ticks=[
            pb.PriceTick(symbol=s, price=float(p), time=timestamp(trace.tick_times[0] - 0.5))
            for s, p in zip(result.table.symbols, result.table.values[0])]))
        assert primed.accepted == 0
        orders = iter(trace.orders)
        pending = next(orders, None)
        for i in range(result.table.rows):
            # the rebalancer's book as the replay held it when the row's prices came in
            await live.set_positions(trace.positions_at_publish[i])
            live.clock.set(trace.tick_times[i])
            reply = await live.stub.PublishMarketData(spb.PublishMarketDataRequest(ticks=[
                pb.PriceTick(symbol=s, price=float(p), time=timestamp(trace.tick_times[i]))
                for s, p in zip(result.table.symbols, result.table.values[i])]))
            assert reply.budget.version == trace.publish_snapshots[i].version
            assert_same_budget(await live.budget(), trace.publish_snapshots[i], f"row {i} publish")

            if trace.monitor_times[i] is not None:
                live.clock.set(trace.monitor_times[i])
                await live.sidecar.monitor_once()  # the sidecar's own monitoring tick
                assert_same_budget(await live.budget(), trace.monitor_snapshots[i], f"row {i} monitor")

            # every order the replay's rebalancer sent this row, checked by the live sidecar
            while pending is not None and pending.row == i:
                await live.set_positions(pending.positions_before)
                order = pending.order
                answer = await live.stub.CheckTrade(spb.CheckTradeRequest(
                    client_order_id=order.client_order_id, strategy=order.strategy, symbol=order.symbol,
                    side=pb.SIDE_BUY if order.side is Side.BUY else pb.SIDE_SELL,
                    quantity=order.quantity, dry_run=True))
                where = f"row {i} order {order.client_order_id}"
                assert pb.Decision.Name(answer.decision) == f"DECISION_{pending.decision.name}", where
                assert answer.approved_quantity == pending.approved_quantity, where
                assert tuple(pb.ReasonCode.Name(r.code).removeprefix("REASON_CODE_").lower()
                             for r in answer.reasons) == pending.reasons, where
                pending = next(orders, None)
        assert pending is None

        expected = [(row, step, triggers) for row, step, triggers in trace.firings]
        streamed = await live.recommendations(len(expected))

    assert expected, "the data must fire recommendations"
    assert [tuple(pb.RecommendationTrigger.Name(t).removeprefix("RECOMMENDATION_TRIGGER_").lower()
                  for t in r.triggers) for r in streamed] == [
        tuple(t.value for t in triggers) for _, _, triggers in expected]
    when = [r.created_at.seconds for r in streamed]
    assert when == [int(trace.tick_times[row] if step == "publish" else trace.monitor_times[row])
                    for row, step, _ in expected]
