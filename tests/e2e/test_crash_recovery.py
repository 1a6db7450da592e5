"""kill -9 of the sidecar process, then a restart: nothing acknowledged is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import grpc
import pytest
import yaml
from google.protobuf.timestamp_pb2 import Timestamp

from riskbudget.v1 import risk_budget_admin_pb2 as apb
from riskbudget.v1 import risk_budget_admin_pb2_grpc
from riskbudget.v1 import risk_budget_service_pb2 as spb
from riskbudget.v1 import risk_budget_service_pb2_grpc
from riskbudget.v1 import types_pb2 as pb

from .test_serve_process import ROOT, read_events

ADMIN_TOKEN = "crash-token"
TOKEN = (("authorization", f"Bearer {ADMIN_TOKEN}"),)


def start_sidecar(config_path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "riskbudget_sidecar.app.cli", "serve", "--config", str(config_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "RISKBUDGET_ADMIN_TOKEN": ADMIN_TOKEN})
    return process, read_events(process, "serving")[-1]["target"]


@pytest.fixture
def config_path(tmp_path):
    config = yaml.safe_load((ROOT / "config" / "default.yaml").read_text())
    config["sidecar"]["listen"] = f"unix:{tmp_path}/run/sidecar.sock"
    config["http"] = {"listen": "127.0.0.1:0"}
    config["store"] = {"path": str(tmp_path / "state.sqlite3")}
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def stubs(target):
    channel = grpc.insecure_channel(target)
    return (channel, risk_budget_service_pb2_grpc.RiskBudgetServiceStub(channel),
            risk_budget_admin_pb2_grpc.RiskBudgetAdminServiceStub(channel))


def test_after_kill_9_and_a_restart_every_acknowledged_change_is_still_there(config_path):
    process, target = start_sidecar(config_path)
    try:
        channel, service, admin = stubs(target)
        prices = {s.symbol: s.last_price for s in service.GetBudget(spb.GetBudgetRequest()).budget.symbols}
        now = time.time()
        service.PublishMarketData(spb.PublishMarketDataRequest(ticks=[
            pb.PriceTick(symbol=s, price=p, time=Timestamp(seconds=int(now))) for s, p in prices.items()]))
        override = admin.SetOverride(apb.SetOverrideRequest(override=pb.Override(
            scope=pb.OVERRIDE_SCOPE_SYMBOL, target="QQQ", kind=pb.OVERRIDE_KIND_RESTRICT_SYMBOL,
            set_by="ops", reason="crash test")), metadata=TOKEN).override
        admin.SetTradingState(apb.SetTradingStateRequest(state=pb.TRADING_STATE_REDUCING,
                                                         strategy="defensive_carry", set_by="ops"),
                              metadata=TOKEN)
        service.SetPositions(spb.SetPositionsRequest(positions=[
            pb.Position(strategy="equity_momentum", symbol="SPY", quantity=300)]))
        reserved = service.CheckTrade(spb.CheckTradeRequest(
            client_order_id="before-crash", strategy="equity_momentum", symbol="IWM", side=pb.SIDE_BUY,
            quantity=100))
        sequences = [admin.TriggerRebalance(apb.TriggerRebalanceRequest(reason=f"r{i}", requested_by="ops"),
                                            metadata=TOKEN).recommendation.sequence for i in range(3)]
        channel.close()
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

    restarted, target = start_sidecar(config_path)
    try:
        channel, service, admin = stubs(target)
        overrides = admin.ListOverrides(apb.ListOverridesRequest(), metadata=TOKEN).overrides
        budget = service.GetBudget(spb.GetBudgetRequest()).budget
        repeat = service.CheckTrade(spb.CheckTradeRequest(
            client_order_id="before-crash", strategy="equity_momentum", symbol="IWM", side=pb.SIDE_BUY,
            quantity=100))
        utilization = service.GetUtilization(spb.GetUtilizationRequest())
        history = service.StreamRecommendations(spb.StreamRecommendationsRequest(after_sequence=0))
        replayed = []
        while len(replayed) < 4:
            replayed += [r.sequence for r in next(history).recommendations]
        history.cancel()
        next_one = admin.TriggerRebalance(apb.TriggerRebalanceRequest(reason="after", requested_by="ops"),
                                          metadata=TOKEN)
        channel.close()
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=30)

    assert reserved.decision == pb.DECISION_APPROVED
    assert [o.id for o in overrides] == [override.id]
    carry = {s.strategy: s for s in budget.strategies}["defensive_carry"]
    assert carry.trading_state == pb.TRADING_STATE_REDUCING
    assert repeat.replayed and repeat.approved_quantity == reserved.approved_quantity
    spy = {s.symbol: s for s in utilization.symbols}["SPY"]
    iwm = {s.symbol: s for s in utilization.symbols}["IWM"]
    assert spy.net_quantity == 300
    assert iwm.position_notional > 0  # the reservation survived
    assert replayed == [1, *sequences] == [1, 2, 3, 4]  # 1: the restriction moved the targets
    assert next_one.recommendation.sequence == 5


def test_the_recommendation_feed_resumes_across_a_sidecar_crash_with_no_gap_or_duplicate(config_path):
    from riskbudget_client.feed import RecommendationFeed

    process, target = start_sidecar(config_path)
    restarted = None
    try:
        channel, _, admin = stubs(target)
        for i in range(3):
            admin.TriggerRebalance(apb.TriggerRebalanceRequest(reason=f"before {i}", requested_by="ops"),
                                   metadata=TOKEN)
        channel.close()
        feed = RecommendationFeed(target, after_sequence=0, initial_backoff=0.05, max_backoff=0.5)
        handled = [next(feed).sequence, next(feed).sequence]

        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        restarted, target = start_sidecar(config_path)
        channel, _, admin = stubs(target)
        for i in range(2):
            admin.TriggerRebalance(apb.TriggerRebalanceRequest(reason=f"after {i}", requested_by="ops"),
                                   metadata=TOKEN)
        channel.close()
        handled += [next(feed).sequence for _ in range(3)]
        feed.close()
    finally:
        for running in (process, restarted):
            if running is not None and running.poll() is None:
                running.kill()
                running.wait(timeout=30)

    assert handled == [1, 2, 3, 4, 5]
