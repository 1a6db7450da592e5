"""Several sidecar processes on one Valkey server, under random concurrent orders:
the exposure they accept together never passes a firm-wide limit."""

from __future__ import annotations

import asyncio
import random
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import yaml
from google.protobuf.timestamp_pb2 import Timestamp

from riskbudget.v1 import risk_budget_service_pb2 as spb
from riskbudget.v1 import risk_budget_service_pb2_grpc
from riskbudget.v1 import types_pb2 as pb
from riskbudget_sidecar.store.redis_ledger import RedisLedger
from tests.store.valkey import ValkeyProcess

from .test_crash_recovery import start_sidecar
from .test_serve_process import ROOT

SIDECARS = 3
ORDERS_PER_SIDECAR = 150
SYMBOLS = ["SPY", "QQQ", "IWM"]


@pytest.fixture
def valkey(tmp_path):
    server = ValkeyProcess(tmp_path / "valkey").start()
    yield server
    server.stop()


def sidecar_config(tmp_path, index: int, url: str):
    config = yaml.safe_load((ROOT / "config" / "default.yaml").read_text())
    config["sidecar"]["listen"] = f"unix:{tmp_path}/run{index}/sidecar.sock"
    config["http"] = {"listen": "127.0.0.1:0"}
    config["store"] = {"path": str(tmp_path / f"state{index}.sqlite3")}
    config["shared"] = {"url": url, "timeout": 0.5}
    config["limits"]["max_order_notional"] = 10_000_000
    path = tmp_path / f"sidecar{index}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def fire_orders(target: str, seed: int) -> list[tuple[str, float, float]]:
    """Random buys and sells, fresh prices first; returns (symbol, signed approved, price)."""
    rng = random.Random(seed)
    with grpc.insecure_channel(target) as channel:
        stub = risk_budget_service_pb2_grpc.RiskBudgetServiceStub(channel)
        budget = stub.GetBudget(spb.GetBudgetRequest()).budget
        prices = {s.symbol: s.last_price for s in budget.symbols}
        now = int(time.time())
        stub.PublishMarketData(spb.PublishMarketDataRequest(ticks=[
            pb.PriceTick(symbol=s, price=p, time=Timestamp(seconds=now)) for s, p in prices.items()]))
        budget = stub.GetBudget(spb.GetBudgetRequest()).budget  # the limits the checks will use
        limits = {s.symbol: s.max_position_notional for s in budget.symbols}
        accepted = []
        for n in range(ORDERS_PER_SIDECAR):
            symbol = rng.choice(SYMBOLS)
            side = pb.SIDE_BUY if rng.random() < 0.8 else pb.SIDE_SELL
            quantity = max(1, int(rng.uniform(0.05, 0.4) * limits[symbol] / prices[symbol]))
            reply = stub.CheckTrade(spb.CheckTradeRequest(
                client_order_id=f"s{seed}-{n}", strategy="equity_momentum", symbol=symbol, side=side,
                quantity=quantity), timeout=5)
            sign = 1 if side == pb.SIDE_BUY else -1
            accepted.append((symbol, sign * reply.approved_quantity, prices[symbol]))
        return accepted, limits, budget.total_leverage_limit * budget.net_asset_value


def test_concurrent_orders_through_several_sidecars_never_pass_a_firm_wide_limit(tmp_path, valkey):
    processes = [start_sidecar(sidecar_config(tmp_path, i, valkey.url)) for i in range(SIDECARS)]
    try:
        with ThreadPoolExecutor(SIDECARS) as pool:
            results = list(pool.map(fire_orders, [target for _, target in processes], range(SIDECARS)))

        async def firm_exposure():
            ledger = RedisLedger(valkey.url, timeout=2)
            await ledger.connect()
            try:
                return await ledger.firm_exposure()
            finally:
                await ledger.close()
        exposure = asyncio.run(firm_exposure())
    finally:
        for process, _ in processes:
            process.terminate()
            process.wait(timeout=30)

    _, limits, total_limit = results[0]
    longs = {symbol: 0.0 for symbol in SYMBOLS}
    shorts = {symbol: 0.0 for symbol in SYMBOLS}
    for accepted, _, _ in results:
        for symbol, signed, _ in accepted:
            (longs if signed > 0 else shorts)[symbol] += abs(signed)
    prices = {symbol: price for accepted, _, _ in results for symbol, _, price in accepted}
    worst = {symbol: max(longs[symbol], shorts[symbol]) * prices[symbol] for symbol in SYMBOLS}
    assert sum(abs(signed) for accepted, _, _ in results for _, signed, _ in accepted) > 0
    for symbol in SYMBOLS:
        assert worst[symbol] <= limits[symbol] * (1 + 1e-9), symbol
    assert sum(worst.values()) <= total_limit * (1 + 1e-9)
    assert exposure.total_gross_cents <= total_limit * 100
