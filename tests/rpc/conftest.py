"""A real sidecar on an ephemeral loopback port, with a manual clock, per test."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

import grpc
import pytest

from riskbudget.v1 import risk_budget_admin_pb2_grpc, risk_budget_service_pb2 as spb
from riskbudget.v1 import risk_budget_service_pb2_grpc, types_pb2 as pb
from riskbudget_sidecar.app.serve import start, stop
from riskbudget_sidecar.rpc.converters import timestamp
from riskbudget_sidecar.service.clock import ManualClock
from riskbudget_sidecar.service.config_file import load_config

T0 = 1_800_000_000.0
ADMIN_TOKEN = "test-admin-token-0123456789"


def config_data(**overrides: Any) -> dict:
    data = {
        "risk_budgeting": {
            "monitoring_interval": 3600,
            "regime_allocations": {
                "bull": {"equity_allocation": 0.8, "leverage_limit": 1.5, "vol_target": 0.15},
                "bear": {"equity_allocation": 0.4, "leverage_limit": 0.5, "vol_target": 0.08},
                "crisis": {"equity_allocation": 0.2, "leverage_limit": 0.2, "vol_target": 0.05},
            },
        },
        "sidecar": {"listen": "127.0.0.1:0", "max_message_bytes": 65536, "admin_token_env": None},
        "http": {"listen": "127.0.0.1:0"},
        "portfolio": {
            "net_asset_value": 1_000_000,
            "strategies": {
                "trend": {"risk_share": 0.6, "symbols": ["AAA", "BBB"]},
                "carry": {"risk_share": 0.4, "symbols": ["CCC", "DDD"]},
            },
        },
        "limits": {"max_staleness": 30, "reservation_ttl": 60, "max_order_notional": 200_000},
        "market_data": {"bar_interval": 86_400, "min_observations": 20},
        "regime": {"benchmark": "AAA", "initial": "bull"},
        "warmup": {"source": "synthetic", "bars": 120, "seed": 11},
    }
    for dotted, value in overrides.items():  # section__key=value, or section=value for all of it
        if "__" not in dotted:
            data[dotted] = value
            continue
        section, key = dotted.split("__")
        data.setdefault(section, {})[key] = value
    return data


@dataclass
class Harness:
    sidecar: Any
    server: Any
    clock: ManualClock
    channel: grpc.aio.Channel
    stub: risk_budget_service_pb2_grpc.RiskBudgetServiceStub
    admin: risk_budget_admin_pb2_grpc.RiskBudgetAdminServiceStub

    @property
    def admin_metadata(self) -> tuple:
        return (("authorization", f"Bearer {ADMIN_TOKEN}"),)

    async def publish(self, prices: dict[str, float], at: float | None = None) -> spb.PublishMarketDataResponse:
        when = self.clock.now() if at is None else at
        return await self.stub.PublishMarketData(spb.PublishMarketDataRequest(ticks=[
            pb.PriceTick(symbol=s, price=p, time=timestamp(when)) for s, p in prices.items()]))

    async def publish_last_prices(self) -> dict[str, float]:
        """Re-publish each symbol's last warm-up price now, so that prices are fresh."""
        prices = {s: self.sidecar.snapshot.symbols[s].last_price for s in self.sidecar.snapshot.symbols}
        await self.publish(prices)
        return prices

    async def check(self, order_id: str, quantity: float, *, strategy: str = "trend", symbol: str = "AAA",
                    side: int = pb.SIDE_BUY, **fields) -> spb.CheckTradeResponse:
        return await self.stub.CheckTrade(spb.CheckTradeRequest(
            client_order_id=order_id, strategy=strategy, symbol=symbol, side=side,
            quantity=quantity, **fields))


def write_config(tmp_path, **overrides) -> Path:
    """A config file in tmp_path, with its state database and admin token beside it."""
    token_file = tmp_path / "admin-token"
    token_file.write_text(ADMIN_TOKEN)
    data = config_data(**overrides)
    data["sidecar"] = {**data["sidecar"], "admin_token_file": str(token_file)}
    data["store"] = {"path": str(tmp_path / "state.sqlite3"), **data.get("store", {})}
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


async def start_harness(tmp_path, *, at: float = T0, **overrides) -> Harness:
    """A sidecar on the config `overrides` make in tmp_path (its state file there too), its
    clock at `at`."""
    path = write_config(tmp_path, **overrides)
    clock = ManualClock(at)
    sidecar, server = await start(load_config(path), clock=clock, config_path=str(path))
    channel = grpc.aio.insecure_channel(server.target)
    return Harness(sidecar, server, clock, channel,
                   risk_budget_service_pb2_grpc.RiskBudgetServiceStub(channel),
                   risk_budget_admin_pb2_grpc.RiskBudgetAdminServiceStub(channel))


@pytest.fixture
async def harness(tmp_path):
    running = await start_harness(tmp_path)
    yield running
    await running.channel.close()
    await stop(running.sidecar, running.server)
