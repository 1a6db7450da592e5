"""The sidecar under load over gRPC (issue 7): a real `riskbudget serve` process, called
from separate client processes, each with its own channel.

1. CheckTrade against a no-op on the same server (grpc.health.v1 Health/Check: the
   transport floor), with 1, 4 and 16 client processes, over TCP loopback and a unix
   socket; rounds of the two alternate, so that machine noise hits both alike.
2. CheckTrade on a 500-symbol sidecar, idle, and loaded: a feeder publishing every
   symbol's price each monitoring interval (each publish and each closed bar
   recomputes the budget) and 50 recommendation streams attached and reading. Idle and
   loaded rounds alternate.
3. Regime response: from the publish whose bar turns the regime to the REGIME_CHANGE
   recommendation arriving at a subscriber (another process; one monotonic clock).
4. Resident memory of the sidecar against the number of symbols, after warm-up and one
   recompute.

    PYTHONPATH=. .venv/bin/python bench/rpc_load.py [--quick] [--store sqlite|memory] [--out FILE]

Prints a table (metric, value, target, verdict) and writes the results as JSON.

Each client sends its next call when the last one returns (a closed loop): a stall of the
sidecar delays one call per client, so stalls show in p99.9 more than in p99.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import queue
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import grpc
import numpy as np

from bench.load_clients import (
    CONTEXT, Arrival, ClientPool, OrderFlow, RoundResult, StreamFailure, background, feed_prices, subscribe,
)
from bench.sidecar_process import SidecarProcess, bench_config
from riskbudget.v1 import types_pb2
from riskbudget_client import RiskBudgetClient

DEFAULT_OUT = Path("bench-results/rpc_load.json")
WRITER_SETTLE = 0.1
"""Seconds after each round of the transport floor before the sidecar's CPU is read again:
the SQLite writer folds a round's last checks after its linger (20 ms), and they count in
their own round, not the next."""


@dataclasses.dataclass(frozen=True)
class Settings:
    store: str = "sqlite"
    """The shipped default (a durable write per check); `memory` shows the transport alone."""
    transports: tuple[str, ...] = ("tcp", "unix")
    client_counts: tuple[int, ...] = (1, 4, 16)
    samples: int = 6000
    """Calls of each kind per transport and client count, split over `rounds` rounds each."""
    rounds: int = 6
    round_time_limit: float = 30.0
    """Seconds after which a round stops starting calls (it then has fewer)."""
    load_symbols: int = 500
    load_subscribers: int = 50
    load_clients: int = 4
    load_samples: int = 10_000
    """CheckTrade calls idle, and as many loaded: rounds of a few seconds, so that each
    loaded round spans several recomputes."""
    load_rounds: int = 4
    monitoring_interval: float = 1.0
    """Seconds; also the bar interval and the feeder's publishing interval under load."""
    regime_changes: int = 40
    regime_bar_interval: float = 0.01
    memory_symbols: tuple[int, ...] = (10, 100, 500, 1000, 2000)
    warmup_bars: int = 60
    """Synthetic warm-up bars for the many-symbol sidecars: past min_observations (20), so the
    budget is dynamic, and short enough that 2,000 symbols start in seconds."""

    @property
    def pool_size(self) -> int:
        return max(*self.client_counts, self.load_clients)


QUICK = dataclasses.replace(
    Settings(), client_counts=(1,), samples=20, rounds=2, load_symbols=20, load_subscribers=2,
    load_clients=1, load_samples=20, load_rounds=1, regime_changes=2, memory_symbols=(10, 20))


# -- numbers -------------------------------------------------------------------------------

def latency_summary(rounds: list[RoundResult]) -> dict[str, Any]:
    """Percentiles over every call of the rounds; throughput over the rounds' summed wall time."""
    latencies_ms = np.concatenate([r.latencies_ns for r in rounds]) / 1e6
    p50, p99, p999 = np.percentile(latencies_ms, [50, 99, 99.9]) if len(latencies_ms) else [math.nan] * 3
    seconds = sum(r.seconds for r in rounds)
    return {
        "calls": sum(r.calls for r in rounds), "errors": sum(r.errors for r in rounds),
        "outcomes": dict(sum((r.outcomes for r in rounds), Counter())), "rounds": len(rounds),
        "p50_ms": _round(p50), "p99_ms": _round(p99), "p999_ms": _round(p999),
        "max_ms": _round(latencies_ms.max() if len(latencies_ms) else math.nan),
        "throughput_per_s": _round(len(latencies_ms) / seconds if seconds else math.nan, 1),
    }


def _round(value: float, digits: int = 3) -> float | None:
    return None if math.isnan(value) else round(float(value), digits)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return None if not numerator or not denominator else round(numerator / denominator, 3)


def alternating(first: str, second: str, rounds: int) -> Iterator[str]:
    """first, second, second, first, first, second, ...: neither side always goes first."""
    for index in range(rounds):
        yield from (first, second) if index % 2 == 0 else (second, first)


# -- helpers shared by the phases ----------------------------------------------------------

def fresh_prices(client: RiskBudgetClient) -> dict[str, float]:
    """Publish every symbol's last price, stamped now (the warm-up prices are history, so
    stale); return them."""
    prices = {s.symbol: s.last_price for s in client.get_budget().budget.symbols}
    now = time.time()
    client.publish_market_data((symbol, price, now) for symbol, price in prices.items())
    return prices


def order_flow(config: dict) -> OrderFlow:
    strategy, settings = next(iter(config["portfolio"]["strategies"].items()))
    return OrderFlow(strategy, tuple(settings["symbols"]))


def wait_for_subscribers(client: RiskBudgetClient, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while client.get_status().subscribers != count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the sidecar did not reach {count} stream subscribers in {timeout:.0f} s")
        time.sleep(0.02)


def progress(message: str) -> None:
    print(f"[rpc_load {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


HIGH_VOLUME = {
    # A big book: 1-share orders by the thousand stay far from every limit (APPROVED). Their
    # reservations expire after 2 s, as if the orders filled that fast: the open book and the
    # state file stay at a steady size, and every monitoring tick has expiries to do.
    "portfolio": {"net_asset_value": 1_000_000_000},
    "limits": {"max_staleness": 3600, "reservation_ttl": 2},
    "risk_budgeting": {"monitoring_interval": 1},  # expiries happen at the monitoring tick
}
FEEDER_SEED = 7


# -- 1. CheckTrade against the transport floor ---------------------------------------------

def measure_transport_floor(pool: ClientPool, settings: Settings, directory: Path) -> dict:
    results = {}
    for transport in settings.transports:
        home = directory / f"floor-{transport}"
        home.mkdir()
        listen = "127.0.0.1:0"
        if transport == "unix":
            (home / "socket").mkdir(mode=0o700)  # only this user may reach the socket
            listen = f"unix:{home / 'socket' / 'sidecar.sock'}"
        config = bench_config(home, listen=listen, store=settings.store, changes=HIGH_VOLUME)
        with SidecarProcess(config, home) as sidecar, RiskBudgetClient(sidecar.target) as client:
            fresh_prices(client)
            pool.connect(sidecar.target, order_flow(config))
            results[transport] = {str(clients): compare_with_floor(pool, sidecar, transport, clients, settings)
                                  for clients in settings.client_counts}
    return results


def compare_with_floor(pool: ClientPool, sidecar: SidecarProcess, transport: str, clients: int,
                       settings: Settings) -> dict:
    """The two kinds of call in alternating rounds: latency, throughput, and the sidecar's CPU
    per call (its event loop, and its other threads: where a ratio's gap is spent)."""
    progress(f"CheckTrade against the no-op over {transport}, {clients} client(s)")
    calls = max(math.ceil(settings.samples / settings.rounds / clients), 1)
    rounds: dict[str, list[RoundResult]] = {"check_trade": [], "no_op": []}
    cpu_ns = {kind: [0, 0] for kind in rounds}
    for kind in alternating("check_trade", "no_op", settings.rounds):
        before = sidecar.thread_cpu()
        rounds[kind].append(pool.run_round(kind, clients, calls, settings.round_time_limit))
        time.sleep(WRITER_SETTLE)
        main, others = sidecar.thread_cpu().since(before)
        cpu_ns[kind][0] += main
        cpu_ns[kind][1] += others
    check, floor = latency_summary(rounds["check_trade"]), latency_summary(rounds["no_op"])
    for kind, summary in (("check_trade", check), ("no_op", floor)):
        main, others = (ns / 1000 / max(summary["calls"], 1) for ns in cpu_ns[kind])
        summary["sidecar_cpu_us_per_call"] = {"event_loop": _round(main, 1), "other_threads": _round(others, 1)}
    return {"check_trade": check, "no_op": floor, "ratios": {
        "p50": _ratio(check["p50_ms"], floor["p50_ms"]), "p99": _ratio(check["p99_ms"], floor["p99_ms"]),
        "throughput": _ratio(check["throughput_per_s"], floor["throughput_per_s"])}}


# -- 2. CheckTrade while the sidecar recomputes and streams ---------------------------------

def measure_under_load(pool: ClientPool, settings: Settings, directory: Path) -> dict:
    home = directory / "load"
    home.mkdir()
    interval = settings.monitoring_interval
    config = bench_config(home, listen="127.0.0.1:0", store=settings.store, symbols=settings.load_symbols,
                          changes={**HIGH_VOLUME,
                                   "risk_budgeting": {"monitoring_interval": interval,
                                                      # a recommendation every tick: the streams carry data
                                                      "rebalancing_triggers": {"cooldown": 0}},
                                   "market_data": {"bar_interval": interval},
                                   "warmup": {"bars": settings.warmup_bars}})
    flow = order_flow(config)
    progress(f"CheckTrade idle and under load: {settings.load_symbols} symbols, "
             f"{settings.load_subscribers} subscribers, {settings.load_clients} client(s)")
    with SidecarProcess(config, home) as sidecar, RiskBudgetClient(sidecar.target) as client:
        prices = fresh_prices(client)
        # A book all in one symbol drifts from its target: DRIFT fires at every monitoring tick.
        client.set_positions([(flow.strategy, flow.symbols[0], 1000.0)])
        pool.connect(sidecar.target, flow)
        loaded, arrivals = CONTEXT.Event(), CONTEXT.Queue()
        calls = max(math.ceil(settings.load_samples / settings.load_rounds / settings.load_clients), 1)
        rounds: dict[str, list[RoundResult]] = {"idle": [], "loaded": []}
        recomputes = Counter()
        with background(feed_prices, sidecar.target, prices, interval, loaded, FEEDER_SEED) as feeder, \
                background(subscribe, sidecar.target, settings.load_subscribers, loaded, arrivals) as streams:
            previous = "idle"
            for condition in alternating("idle", "loaded", settings.load_rounds):
                if condition == "loaded":
                    loaded.set()
                    wait_for_subscribers(client, settings.load_subscribers)
                else:
                    loaded.clear()
                    wait_for_subscribers(client, 0)
                    if previous == "loaded":  # the last loaded bar closes, and recomputes, at a tick
                        time.sleep(2 * interval)
                previous = condition
                version = client.get_status().budget.version
                rounds[condition].append(pool.run_round("check_trade", settings.load_clients, calls,
                                                        settings.round_time_limit))
                recomputes[condition] += client.get_status().budget.version - version
                for helper in (feeder, streams):
                    if not helper.is_alive():
                        raise RuntimeError(f"{helper.name} died (exit code {helper.exitcode})")
            loaded.clear()
            received = drain(arrivals)
    idle, busy = latency_summary(rounds["idle"]), latency_summary(rounds["loaded"])
    failures = [item for item in received if isinstance(item, StreamFailure)]
    return {
        "symbols": settings.load_symbols, "subscribers": settings.load_subscribers,
        "clients": settings.load_clients, "monitoring_interval_s": interval,
        "idle": idle, "loaded": busy, "budget_recomputes": dict(recomputes),
        "recommendations_received": len(received) - len(failures),
        "stream_failures": [f"{f.code}: {f.details}" for f in failures],
        "ratios": {quantile: _ratio(busy[f"{quantile}_ms"], idle[f"{quantile}_ms"])
                   for quantile in ("p50", "p99", "p999")},
    }


def drain(items: Any) -> list:
    result = []
    while True:
        try:
            result.append(items.get(timeout=0.2))
        except queue.Empty:
            return result


# -- 3. Regime response time ---------------------------------------------------------------

FAST_REGIME = {
    "risk_budgeting": {"monitoring_interval": 3600},  # bars close on published ticks only, never by the clock
    "limits": {"max_staleness": 3600},
    # Drawdown and trend decide (volatility thresholds out of reach), over short windows, so a
    # few bars of falling or rising prices turn the regime.
    "regime": {"trend_window": 5, "drawdown_window": 20, "confirmation_bars": 2, "min_dwell_bars": 2,
               "bear": {"volatility": 5.0, "drawdown": 0.10}, "crisis": {"volatility": 10.0, "drawdown": 0.20}},
}
STEP = {types_pb2.REGIME_CRISIS: 0.93, types_pb2.REGIME_BULL: 1.07}
"""The benchmark's price move per bar while driving the regime towards the key."""
MAX_BARS_PER_CHANGE = 30
"""A bound on the phase: with FAST_REGIME a change takes a handful of bars."""
ARRIVAL_TIMEOUT = 2.0


def measure_regime_response(settings: Settings, directory: Path) -> dict:
    """Drive the benchmark down into CRISIS and back up into BULL, bar by bar; time every
    change from its publish to the recommendation's arrival at a subscriber process."""
    progress(f"regime response, {settings.regime_changes} changes")
    home = directory / "regime"
    home.mkdir()
    bar = settings.regime_bar_interval
    config = bench_config(home, listen="127.0.0.1:0", store=settings.store,
                          changes={**FAST_REGIME, "market_data": {"bar_interval": bar}})
    benchmark = config["regime"]["benchmark"]
    samples_ms, transitions, missed = [], Counter(), 0
    attached, arrivals = CONTEXT.Event(), CONTEXT.Queue()
    attached.set()
    with SidecarProcess(config, home) as sidecar, RiskBudgetClient(sidecar.target) as client, \
            background(subscribe, sidecar.target, 1, attached, arrivals):
        wait_for_subscribers(client, 1)
        budget = client.get_budget().budget
        price = next(s.last_price for s in budget.symbols if s.symbol == benchmark)
        regime = budget.ref.regime
        target = types_pb2.REGIME_BULL if regime == types_pb2.REGIME_CRISIS else types_pb2.REGIME_CRISIS
        for _ in range(settings.regime_changes * MAX_BARS_PER_CHANGE):
            if len(samples_ms) + missed >= settings.regime_changes:
                break
            time.sleep(bar)  # the next tick falls in a later bar and closes the one before
            price *= STEP[target]
            sent = time.monotonic_ns()
            ref = client.publish_market_data([(benchmark, price, time.time())]).budget
            if ref.regime == regime:
                continue
            transitions[f"{_regime_name(regime)}->{_regime_name(ref.regime)}"] += 1
            regime = ref.regime
            if regime == target:
                target = types_pb2.REGIME_BULL if target == types_pb2.REGIME_CRISIS else types_pb2.REGIME_CRISIS
            arrival = arrival_of(arrivals, ref.version)
            if arrival is None:
                missed += 1
            else:
                samples_ms.append((arrival.received_ns - sent) / 1e6)
        changes = len(samples_ms) + missed
        server_seconds = list(client.get_status().regime_response_seconds)[-changes:] if changes else []
    p50, p99 = np.percentile(samples_ms, [50, 99]) if samples_ms else [math.nan] * 2
    return {
        "changes": changes, "measured": len(samples_ms), "missed": missed,
        "transitions": dict(transitions), "bar_interval_s": bar,
        "p50_ms": _round(p50), "p99_ms": _round(p99), "max_ms": _round(max(samples_ms, default=math.nan)),
        "server_p50_ms": _round(np.median(server_seconds) * 1e3 if server_seconds else math.nan),
    }


def arrival_of(arrivals: Any, version: int) -> Arrival | None:
    """The REGIME_CHANGE recommendation computed from budget `version`, skipping any before it."""
    deadline = time.monotonic() + ARRIVAL_TIMEOUT
    while (left := deadline - time.monotonic()) > 0:
        try:
            item = arrivals.get(timeout=left)
        except queue.Empty:
            break
        if isinstance(item, StreamFailure):
            raise RuntimeError(f"the subscriber's stream failed: {item.code}: {item.details}")
        if item.budget_version >= version and "RECOMMENDATION_TRIGGER_REGIME_CHANGE" in item.triggers:
            return item
    return None


def _regime_name(regime: int) -> str:
    return types_pb2.Regime.Name(regime).removeprefix("REGIME_").lower()


# -- 4. Memory against the number of symbols -------------------------------------------------

def measure_memory(settings: Settings, directory: Path) -> dict:
    results = {}
    for count in settings.memory_symbols:
        progress(f"memory with {count} symbols")
        home = directory / f"memory-{count}"
        home.mkdir()
        config = bench_config(home, listen="127.0.0.1:0", store=settings.store, symbols=count,
                              changes={"warmup": {"bars": settings.warmup_bars}})
        with SidecarProcess(config, home) as sidecar, RiskBudgetClient(sidecar.target) as client:
            fresh_prices(client)  # a publish recomputes before it answers
            results[str(count)] = {**sidecar.memory_mb(), "startup_s": round(sidecar.startup_seconds, 2)}
    return results


# -- the report ----------------------------------------------------------------------------

TARGETS = {  # issue 7's targets
    "regime response p99 (ms)": ("<=", 100.0),
    "VmRSS at 1000 symbols (MiB)": ("<=", 200.0),
    "CheckTrade/no-op p50": ("<=", 1.25),
    "CheckTrade/no-op p99": ("<=", 2.0),
    "CheckTrade/no-op throughput": (">=", 0.8),
    "loaded/idle CheckTrade p99": ("<=", 1.5),
}


def table_rows(results: dict) -> list[tuple[str, str, str, str]]:
    """(metric, value, target, verdict) for every figure; the verdict is "-" where no target applies."""
    rows = []

    def add(metric: str, value: str, target_key: str | None = None, number: float | None = None) -> None:
        if target_key is None:
            rows.append((metric, value, "", "-"))
            return
        sense, limit = TARGETS[target_key]
        passed = number is not None and (number <= limit if sense == "<=" else number >= limit)
        rows.append((metric, value, f"{sense} {limit:g}", "pass" if passed else "FAIL"))

    def latencies(summary: dict) -> str:
        return (f"{summary['p50_ms']} / {summary['p99_ms']} / {summary['p999_ms']} ms, "
                f"{summary['throughput_per_s']}/s, n={summary['calls']}")

    for transport, by_clients in results["transport_floor"].items():
        most = max(by_clients, key=int)
        for clients, cell in by_clients.items():
            where = f"{transport} x{clients}"
            approved = cell["check_trade"]["outcomes"].get("DECISION_APPROVED", 0)
            add(f"{where} CheckTrade p50/p99/p99.9, rate", latencies(cell["check_trade"])
                + f", approved {approved}")
            add(f"{where} no-op      p50/p99/p99.9, rate", latencies(cell["no_op"]))
            check_cpu, floor_cpu = (cell[kind]["sidecar_cpu_us_per_call"] for kind in ("check_trade", "no_op"))
            add(f"{where} sidecar CPU per call (us), CheckTrade / no-op",
                f"event loop {check_cpu['event_loop']} / {floor_cpu['event_loop']}, "
                f"other threads {check_cpu['other_threads']} / {floor_cpu['other_threads']}")
            add(f"{where} CheckTrade/no-op p50", str(cell["ratios"]["p50"]), "CheckTrade/no-op p50",
                cell["ratios"]["p50"])
            add(f"{where} CheckTrade/no-op p99", str(cell["ratios"]["p99"]), "CheckTrade/no-op p99",
                cell["ratios"]["p99"])
            if clients == most:
                add(f"{where} CheckTrade/no-op throughput", str(cell["ratios"]["throughput"]),
                    "CheckTrade/no-op throughput", cell["ratios"]["throughput"])

    load = results["under_load"]
    where = f"{load['symbols']} symbols x{load['clients']}"
    add(f"{where} idle   CheckTrade p50/p99/p99.9, rate", latencies(load["idle"]))
    add(f"{where} loaded CheckTrade p50/p99/p99.9, rate", latencies(load["loaded"]))
    add(f"{where} recomputes idle/loaded, recommendations streamed",
        f"{load['budget_recomputes'].get('idle', 0)} / {load['budget_recomputes'].get('loaded', 0)}, "
        f"{load['recommendations_received']} to {load['subscribers']} subscribers")
    add(f"{where} loaded/idle CheckTrade p99", str(load["ratios"]["p99"]), "loaded/idle CheckTrade p99",
        load["ratios"]["p99"])

    regime = results["regime_response"]
    add("regime response p50 (ms)", f"{regime['p50_ms']} (server side {regime['server_p50_ms']}), "
        f"{regime['measured']} of {regime['changes']} changes")
    add("regime response p99 (ms)", str(regime["p99_ms"]), "regime response p99 (ms)", regime["p99_ms"])

    for count, memory in results["memory"].items():
        metric = f"VmRSS at {count} symbols (MiB)"
        value = f"{memory['vm_rss_mb']} (peak {memory['vm_hwm_mb']}, start {memory['startup_s']} s)"
        if metric in TARGETS:
            add(metric, value, metric, memory["vm_rss_mb"])
        else:
            add(metric, value)
    return rows


def format_table(rows: list[tuple[str, str, str, str]]) -> str:
    header = ("metric", "value", "target", "verdict")
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in (header, *rows)]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def publish(results: dict[str, Any], out: Path, preamble: list[str]) -> None:
    """Write the results as JSON to `out`; print the `preamble` lines, the table and where."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print("\n".join(preamble) + "\n")
    print(format_table([tuple(row.values()) for row in results["table"]]))
    print(f"\nwritten to {out}")


def machine() -> dict[str, Any]:
    models = [line.partition(":")[2].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
              if line.startswith("model name")]
    return {
        "platform": platform.platform(), "cpu_model": models[0] if models else platform.processor(),
        "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(), "grpcio": grpc.__version__, "numpy": np.__version__,
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
    }


def run(settings: Settings, directory: Path) -> dict[str, Any]:
    """Every phase, in order; the sidecars and client processes are gone when it returns."""
    began = time.monotonic()
    results: dict[str, Any] = {"machine": machine(), "settings": dataclasses.asdict(settings)}
    with ClientPool(settings.pool_size) as pool:
        results["transport_floor"] = measure_transport_floor(pool, settings, directory)
        results["under_load"] = measure_under_load(pool, settings, directory)
    results["regime_response"] = measure_regime_response(settings, directory)
    results["memory"] = measure_memory(settings, directory)
    results["seconds"] = round(time.monotonic() - began, 1)
    results["table"] = [dict(zip(("metric", "value", "target", "verdict"), row)) for row in table_rows(results)]
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the smallest run (the smoke test's)")
    parser.add_argument("--store", choices=("sqlite", "memory"), default=Settings.store)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON results (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    settings = dataclasses.replace(QUICK if args.quick else Settings(), store=args.store)
    with tempfile.TemporaryDirectory(prefix="rpc_load-") as directory:
        results = run(settings, Path(directory))
    publish(results, args.out, [f"machine: {json.dumps(results['machine'])}",
                                 f"store: {settings.store}; {results['seconds']} s"])
    return results


if __name__ == "__main__":
    # SIGTERM unwinds like an error, so that the sidecar and the clients are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    main()
