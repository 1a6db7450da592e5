"""The sidecar held under load for minutes, then overloaded (issue 8): a real `riskbudget serve`
process (SQLite store, the default) called over loopback from separate client processes.

1. Capacity: the highest paced rate the sidecar sustains, measured the way the soak loads
   it. A few closed-loop rounds (a few calls in flight, each sent when the last one returns)
   give an estimate, their best round, which overstates what paced arrivals get; then a ramp
   of 4-second open-loop steps from 50% to 120% of that estimate by 5%, stopped at the first
   step not sustained (any error, the OK calls' rate short of the rate asked, the clients
   behind their schedule, or a latency p50 or p99 that shows a queue building: see
   `shortfalls`). The capacity is the highest step sustained. Both run through the same
   client processes that then carry the soak, so that the load's own client work counts in it.
2. Soak: open-loop load (arrivals paced on a schedule, whatever the replies do) at 80% of
   that capacity for `--minutes`, sampling the sidecar's resident memory (VmRSS), open file
   descriptors (/proc/PID/fd), CPU time and state directory size every few seconds. Reports
   errors, whether memory and descriptors stay flat after warm-up (the last third's maximum
   against the first third's, and a fitted slope), and latency per third of the run.
3. Overload, on a second sidecar with `sidecar.max_concurrent_rpcs` low (16, or
   `--max-concurrent-rpcs`): 80% of capacity
   (baseline), then 3x capacity open loop, then 80% again (recovery), then a burst of 3x the
   limit in flight (closed loops), then 80% again. Reports how fast the excess is turned away
   (RESOURCE_EXHAUSTED from the limit, CANCELLED from grpc core's backlog of calls not yet
   taken), the admitted calls' latency against the baseline's, that no approval is lost or
   corrupted (every approval received is reserved: the reserved quantity the sidecar reports
   is at least the approvals' sum, and at most that plus the calls that failed unseen by the
   client, e.g. past their deadline; a sample of approved ids replays the same approval; a
   sample of turned-away ids was never recorded), and the recovery.

With two CPUs or more, the sidecar runs on one of its own and the client processes on the
others (`--no-pin`: anywhere).

    PYTHONPATH=. .venv/bin/python bench/soak.py [--minutes 10] [--max-concurrent-rpcs 16] [--quick]
        [--no-pin] [--out FILE]

Prints a table (metric, value, target, verdict) and writes the results as JSON. Latency in
the open-loop phases counts from each call's scheduled arrival, so a client that fell behind
its schedule shows in it too (no coordinated omission); `send_lag` reports how far behind
the clients were. No figure here is asserted by a test: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import json
import math
import os
import random
import signal
import sys
import tempfile
import time
import traceback
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, NamedTuple

import grpc
import numpy as np

from bench.load_clients import CHANNEL_OPTIONS, OrderFlow, ProcessPool
from bench.rpc_load import _ratio, _round, fresh_prices, machine, order_flow, publish
from bench.sidecar_process import SidecarProcess, bench_config
from riskbudget.v1 import risk_budget_service_pb2 as service_pb2
from riskbudget.v1 import risk_budget_service_pb2_grpc as service_grpc
from riskbudget.v1 import types_pb2
from riskbudget_client import RiskBudgetClient

DEFAULT_OUT = Path("bench-results/soak.json")


@dataclasses.dataclass(frozen=True)
class Settings:
    minutes: float = 10.0
    """Length of the soak at `load_fraction` of capacity."""
    capacity_clients: tuple[int, ...] = (4, 8)
    """Calls in flight per closed-loop round (over the open-loop clients); the best round is
    the estimate that the paced ramp's rates are fractions of."""
    capacity_seconds: float = 5.0
    ramp_fractions: tuple[float, ...] = tuple(round(0.5 + 0.05 * step, 2) for step in range(15))
    """The paced ramp's rates, as fractions of the closed-loop estimate: 0.5 to 1.2 by 0.05."""
    ramp_step_seconds: float = 4.0
    """Length of each ramp step: long enough for a queue to build past the p99 bound when the
    rate is a few percent over capacity, short enough for the ramp to take about a minute."""
    load_fraction: float = 0.8
    overload_factor: float = 3.0
    open_loop_clients: int = 4
    """Client processes sharing the open-loop arrivals."""
    sample_interval: float = 5.0
    """Seconds between samples of the sidecar's memory and descriptors."""
    warmup_fraction: float = 0.1
    warmup_max_seconds: float = 60.0
    """Samples before min(warmup_fraction of the soak, this) are left out of the flatness check."""
    max_concurrent_rpcs: int = 16
    baseline_seconds: float = 15.0
    overload_seconds: float = 20.0
    recovery_seconds: float = 15.0
    replay_sample: int = 300
    """Approved (and refused) order ids re-sent after the overload."""
    call_timeout: float = 5.0
    """The open-loop clients' deadline: generous, so that a slow reply is a latency, not an error."""
    pin: bool = True
    """Give the sidecar a CPU of its own and the clients the others (with two or more), as a
    sidecar is deployed beside a trading process: the load's clients then do not take the
    sidecar's CPU from it, and its capacity does not swing with theirs."""


def cpu_split(pin: bool) -> tuple[frozenset[int] | None, frozenset[int] | None]:
    """(the sidecar's CPUs, the clients' CPUs): the last usable CPU and the rest, or no pinning."""
    usable = sorted(os.sched_getaffinity(0))
    if not pin or len(usable) < 2:
        return None, None
    return frozenset(usable[-1:]), frozenset(usable[:-1])


QUICK = Settings(minutes=0.05, capacity_clients=(2,), capacity_seconds=1.0, ramp_fractions=(0.5, 0.75, 1.0),
                 ramp_step_seconds=1.0, open_loop_clients=2,
                 sample_interval=0.3, baseline_seconds=1.0, overload_seconds=1.0, recovery_seconds=1.0,
                 replay_sample=20)

HIGH_VOLUME = {
    # A big book: 1-share orders by the hundred thousand stay far from every limit (APPROVED);
    # prices stay fresh for the whole run once published. In the soak reservations expire
    # after 2 s, as if the orders filled that fast (and the remembered decisions after 4 s),
    # so the open book and the idempotency records stay at a steady size.
    "portfolio": {"net_asset_value": 1_000_000_000_000},
    "limits": {"max_staleness": 86_400, "reservation_ttl": 2, "max_order_notional": 1e12},
    "risk_budgeting": {"monitoring_interval": 1},  # expiries happen at the monitoring tick
}
OVERLOAD_TTL = 3600
"""In the overload phases nothing expires: every approval is still reserved when counted."""

OK_CODES = {types_pb2.DECISION_APPROVED: "DECISION_APPROVED", types_pb2.DECISION_RESIZED: "DECISION_RESIZED",
            types_pb2.DECISION_REJECTED: "DECISION_REJECTED"}
CORRUPT = 99
"""Outcome code of a reply that does not answer the order sent (wrong id or quantity)."""
ERROR_BASE = 100
"""Outcome code of a failed call: ERROR_BASE + the gRPC status code's number."""
STATUS_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}
SHED = (ERROR_BASE + grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], ERROR_BASE + grpc.StatusCode.CANCELLED.value[0])
"""Outcomes of a call the sidecar turned away unseen: RESOURCE_EXHAUSTED from the aio server's
max_concurrent_rpcs, CANCELLED from grpc core's backlog of calls the server has not yet taken
(random early drop between 1000 and 3000 waiting calls by default)."""


def progress(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- open-loop client processes --------------------------------------------------------------

class OpenLoopRun(NamedTuple):
    """One client process's calls in one phase, in schedule order (monotonic_ns stamps)."""

    numbers: np.ndarray
    """The order number of each call: its client order id is f"{prefix}-{number}"."""
    intended_ns: np.ndarray
    sent_ns: np.ndarray
    done_ns: np.ndarray
    outcomes: np.ndarray
    """A Decision value, CORRUPT, or ERROR_BASE + a status code number."""
    approved: np.ndarray
    """approved_quantity of each reply (0 for a failed call)."""
    prefix: str


async def _open_loop(stub: Any, flow: OrderFlow, prefix: str, rate: float, seconds: float,
                     start_at_ns: int, timeout: float) -> OpenLoopRun:
    """Calls scheduled every 1/rate seconds from start_at_ns for `seconds`, each sent at its time
    whether or not the earlier ones have returned."""
    count = max(int(rate * seconds), 1)
    step_ns = 1e9 / rate
    intended = start_at_ns + (np.arange(count) * step_ns).astype(np.int64)
    sent = np.zeros(count, dtype=np.int64)
    done = np.zeros(count, dtype=np.int64)
    outcomes = np.zeros(count, dtype=np.int16)
    approved = np.zeros(count, dtype=np.float64)

    async def one(index: int) -> None:
        request = service_pb2.CheckTradeRequest(
            client_order_id=f"{prefix}-{index}", strategy=flow.strategy,
            symbol=flow.symbols[index % len(flow.symbols)], side=types_pb2.SIDE_BUY, quantity=1.0)
        sent[index] = time.monotonic_ns()
        try:
            reply = await stub.CheckTrade(request, timeout=timeout)
        except grpc.aio.AioRpcError as error:
            done[index] = time.monotonic_ns()
            outcomes[index] = ERROR_BASE + error.code().value[0]
            return
        done[index] = time.monotonic_ns()
        if reply.client_order_id != request.client_order_id or not 0 <= reply.approved_quantity <= 1.0:
            outcomes[index] = CORRUPT
            return
        outcomes[index] = reply.decision
        approved[index] = reply.approved_quantity

    tasks = set()
    index = 0
    while index < count:
        now = time.monotonic_ns()
        while index < count and intended[index] <= now:
            task = asyncio.create_task(one(index))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            index += 1
        if index < count:
            await asyncio.sleep(max(intended[index] - time.monotonic_ns(), 0) / 1e9)
    while tasks:
        await asyncio.gather(*list(tasks))
    return OpenLoopRun(np.arange(count), intended, sent, done, outcomes, approved, prefix)


async def _closed_loop(stub: Any, flow: OrderFlow, prefix: str, concurrency: int, seconds: float,
                       start_at_ns: int, timeout: float) -> OpenLoopRun:
    """`concurrency` calls in flight at all times for `seconds`: each of that many workers sends
    its next call when the last one returns (a closed loop)."""
    end_ns = start_at_ns + int(seconds * 1e9)
    numbers, sent, done, outcomes, approved = [], [], [], [], []
    counter = iter(range(10**12))

    async def worker() -> None:
        while (began := time.monotonic_ns()) < end_ns:
            number = next(counter)
            request = service_pb2.CheckTradeRequest(
                client_order_id=f"{prefix}-{number}", strategy=flow.strategy,
                symbol=flow.symbols[number % len(flow.symbols)], side=types_pb2.SIDE_BUY, quantity=1.0)
            try:
                reply = await stub.CheckTrade(request, timeout=timeout)
                outcome, quantity = reply.decision, reply.approved_quantity
                if reply.client_order_id != request.client_order_id or not 0 <= quantity <= 1.0:
                    outcome, quantity = CORRUPT, 0.0
            except grpc.aio.AioRpcError as error:
                outcome, quantity = ERROR_BASE + error.code().value[0], 0.0
            numbers.append(number), sent.append(began), done.append(time.monotonic_ns())
            outcomes.append(outcome), approved.append(quantity)

    await asyncio.sleep(max(start_at_ns - time.monotonic_ns(), 0) / 1e9)
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    sent_ns = np.array(sent, dtype=np.int64)
    return OpenLoopRun(np.array(numbers, dtype=np.int64), sent_ns, sent_ns, np.array(done, dtype=np.int64),
                       np.array(outcomes, dtype=np.int16), np.array(approved, dtype=np.float64), prefix)


async def _client_main(connection: Connection, index: int) -> None:
    """Serve the parent's commands: ("connect", target, flow), ("run", tag, rate, seconds,
    start_at_ns, timeout), ("close",)."""
    channel, stub, flow = None, None, None
    loop = asyncio.get_running_loop()
    try:
        while True:
            command = await loop.run_in_executor(None, connection.recv)
            if command[0] == "close":
                break
            try:
                if command[0] == "connect":
                    if channel is not None:
                        await channel.close()
                    channel = grpc.aio.insecure_channel(command[1], options=CHANNEL_OPTIONS)
                    stub = service_grpc.RiskBudgetServiceStub(channel)
                    flow = command[2]
                    for number in range(20):  # warm the channel and the code path
                        await stub.CheckTrade(service_pb2.CheckTradeRequest(
                            client_order_id=f"warm-{index}-{time.monotonic_ns()}-{number}",
                            strategy=flow.strategy, symbol=flow.symbols[0], side=types_pb2.SIDE_BUY,
                            quantity=1.0, dry_run=True), timeout=5.0)
                    connection.send(("ok", None))
                else:
                    kind, tag, amount, seconds, start_at_ns, timeout = command
                    body = _open_loop if kind == "run" else _closed_loop
                    run = await body(stub, flow, f"{tag}-c{index}", amount, seconds, start_at_ns, timeout)
                    connection.send(("ok", run))
            except Exception:
                connection.send(("error", traceback.format_exc()))
    finally:
        if channel is not None:
            await channel.close()


def _client_process(connection: Connection, index: int) -> None:
    asyncio.run(_client_main(connection, index))


class OpenLoopPool(ProcessPool):
    """`size` client processes, each with an asyncio channel, sharing an arrival rate."""

    def __init__(self, size: int, cpus: frozenset[int] | None = None) -> None:
        super().__init__(size, _client_process, "soak-client", cpus)

    def connect(self, target: str, flow: OrderFlow) -> None:
        for connection in self._connections:
            connection.send(("connect", target, flow))
        self._collect(timeout=120.0)

    def run(self, tag: str, rate: float, seconds: float, timeout: float,
            every: float | None = None, sample: Any = None) -> list[OpenLoopRun]:
        """`rate` calls a second in all, for `seconds`; `sample()` every `every` seconds meanwhile."""
        start_at = time.monotonic_ns() + 200_000_000  # time for every client to get the command
        share = rate / len(self._connections)
        for connection in self._connections:
            connection.send(("run", tag, share, seconds, start_at, timeout))
        return self._collect(timeout=seconds + timeout + 120.0, every=every, sample=sample)

    def burst(self, tag: str, in_flight: int, seconds: float, timeout: float) -> list[OpenLoopRun]:
        """`in_flight` calls outstanding at all times (closed loops shared by the processes)."""
        start_at = time.monotonic_ns() + 200_000_000
        size = len(self._connections)
        for index, connection in enumerate(self._connections):
            connection.send(("closed", tag, in_flight // size + (index < in_flight % size), seconds, start_at,
                             timeout))
        return self._collect(timeout=seconds + timeout + 120.0)

    def _collect(self, timeout: float, every: float | None = None, sample: Any = None) -> list:
        deadline = time.monotonic() + timeout
        pending = {connection: index for index, connection in enumerate(self._connections)}
        replies: list[Any] = [None] * len(self._connections)
        next_sample = time.monotonic()
        while pending:
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(f"{len(pending)} client process(es) did not answer in {timeout:.0f} s")
            if sample is not None and now >= next_sample:
                sample()
                next_sample += every
                while next_sample < now:  # a stalled parent skips samples rather than bunching them
                    next_sample += every
            wake = min(deadline, next_sample if sample is not None else deadline)
            for connection in wait(list(pending), timeout=max(wake - time.monotonic(), 0.0)):
                status, value = connection.recv()
                if status == "error":
                    raise RuntimeError(f"a soak client process failed:\n{value}")
                replies[pending.pop(connection)] = value
        return replies


# -- what the runs say ----------------------------------------------------------------------

def merged_runs(runs: list[OpenLoopRun]) -> dict[str, np.ndarray]:
    return {field: np.concatenate([getattr(run, field) for run in runs])
            for field in ("intended_ns", "sent_ns", "done_ns", "outcomes", "approved")}


def outcome_name(code: int) -> str:
    if code in OK_CODES:
        return OK_CODES[code]
    if code == CORRUPT:
        return "corrupt reply"
    status = STATUS_BY_NUMBER.get(code - ERROR_BASE)
    return f"error {status.name if status else code - ERROR_BASE}"


def percentiles_ms(values_ns: np.ndarray) -> dict[str, float | None]:
    if not len(values_ns):
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    p50, p99 = np.percentile(values_ns / 1e6, [50, 99])
    return {"p50_ms": _round(p50), "p99_ms": _round(p99), "max_ms": _round(values_ns.max() / 1e6)}


def open_loop_summary(calls: dict[str, np.ndarray], rate: float, seconds: float) -> dict[str, Any]:
    """Outcomes, latency from the scheduled arrival (all answered calls, the admitted ones, the
    refused ones), how far behind schedule the calls went out, and the rates achieved."""
    outcomes = calls["outcomes"]
    latency = calls["done_ns"] - calls["intended_ns"]
    admitted = outcomes < ERROR_BASE
    refused = np.isin(outcomes, SHED)
    span = (calls["done_ns"].max() - calls["intended_ns"].min()) / 1e9 if len(outcomes) else math.nan
    sends = (calls["sent_ns"].max() - calls["sent_ns"].min()) / 1e9 if len(outcomes) > 1 else math.nan
    errors = int((outcomes >= ERROR_BASE).sum() + (outcomes == CORRUPT).sum())
    return {
        "target_rate_per_s": _round(rate, 1), "seconds": seconds, "calls": int(len(outcomes)),
        "outcomes": {outcome_name(int(code)): int(n) for code, n in zip(*np.unique(outcomes, return_counts=True))},
        "errors": errors, "refused": int(refused.sum()),
        "offered_rate_per_s": _round(len(outcomes) / sends if sends else math.nan, 1),
        "admitted_rate_per_s": _round(admitted.sum() / span if span else math.nan, 1),
        "all": percentiles_ms(latency),
        "admitted": percentiles_ms(latency[admitted]),
        "admitted_service": percentiles_ms((calls["done_ns"] - calls["sent_ns"])[admitted]),
        "refused_latency": percentiles_ms(latency[refused]),
        "errors_by_code": {outcome_name(code): {"calls": int((outcomes == code).sum()),
                                                **percentiles_ms(latency[outcomes == code])}
                           for code in np.unique(outcomes[outcomes >= ERROR_BASE]).tolist()},
        "send_lag": percentiles_ms(calls["sent_ns"] - calls["intended_ns"]),
    }


def thirds(calls: dict[str, np.ndarray], start_ns: int, end_ns: int) -> list[dict[str, Any]]:
    """Latency of the calls scheduled in each third of the run."""
    bounds = np.linspace(start_ns, end_ns, 4)
    result = []
    for low, high in zip(bounds[:-1], bounds[1:]):
        inside = (calls["intended_ns"] >= low) & (calls["intended_ns"] < high)
        result.append({"calls": int(inside.sum()),
                       **percentiles_ms((calls["done_ns"] - calls["intended_ns"])[inside])})
    return result


class Sample(NamedTuple):
    t_s: float
    rss_mb: float
    fds: int
    cpu_s: float
    state_mb: float


class Sampler:
    """The sidecar's VmRSS, open descriptors, CPU seconds and state directory size, from /proc."""

    def __init__(self, pid: int, state_dir: Path) -> None:
        self._pid, self._state_dir = pid, state_dir
        self._began = time.monotonic()
        self._ticks = os.sysconf("SC_CLK_TCK")
        self.samples: list[Sample] = []

    def __call__(self) -> None:
        status = Path(f"/proc/{self._pid}/status").read_text()
        rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        fds = len(os.listdir(f"/proc/{self._pid}/fd"))
        stat = Path(f"/proc/{self._pid}/stat").read_text().rpartition(")")[2].split()
        cpu = (int(stat[11]) + int(stat[12])) / self._ticks  # utime, stime
        state = sum(path.stat().st_size for path in self._state_dir.rglob("*")
                    if path.is_file() and not path.name.endswith(".log"))
        self.samples.append(Sample(round(time.monotonic() - self._began, 2), round(rss_kb / 1024, 2), fds,
                                   round(cpu, 2), round(state / 2**20, 2)))


def flatness(samples: list[Sample], field: str, warmup_s: float) -> dict[str, Any]:
    """After warm-up: the first and last thirds' maxima, the growth between them, and a
    least-squares slope per minute."""
    kept = [s for s in samples if s.t_s >= warmup_s] or samples
    values = np.array([getattr(s, field) for s in kept], dtype=float)
    times = np.array([s.t_s for s in kept], dtype=float)
    third = max(len(values) // 3, 1)
    first, last = float(values[:third].max()), float(values[-third:].max())
    first_median, last_median = float(np.median(values[:third])), float(np.median(values[-third:]))
    slope = float(np.polyfit(times / 60, values, 1)[0]) if len(values) >= 3 and np.ptp(times) > 0 else 0.0
    return {"samples": len(values), "first_third_max": _round(first, 2), "last_third_max": _round(last, 2),
            "growth": _round(last - first, 2), "growth_pct": _round((last - first) / first * 100 if first else 0, 2),
            "first_third_median": _round(first_median, 2), "last_third_median": _round(last_median, 2),
            "median_growth": _round(last_median - first_median, 2),
            "slope_per_min": _round(slope, 3), "min": _round(float(values.min()), 2),
            "max": _round(float(values.max()), 2)}


RSS_FLAT = (4.0, 0.05)
"""Memory is flat when the last third's median is at most this many MiB, or this fraction,
above the first third's, whichever is larger (medians: resident memory swings by tens of MiB
with the calls queued at a moment, a leak moves the whole level)."""
FD_FLAT = 2
"""Descriptors are flat when the last third's maximum is at most this many above the first's."""


def rss_is_flat(summary: dict) -> bool:
    return summary["median_growth"] <= max(RSS_FLAT[0], RSS_FLAT[1] * summary["first_third_median"])


def fds_are_flat(summary: dict) -> bool:
    return summary["growth"] <= FD_FLAT


# -- 1. capacity ------------------------------------------------------------------------------

ACHIEVED_MIN = 0.95
"""A sustained step's OK calls came at this fraction of the rate asked or more (not all of it:
the span they are counted over runs to the last reply, so the tail's latency stretches it)."""
SEND_LAG_P99_MAX_MS = 10.0
"""A sustained step's clients sent 99% of their calls within this of schedule: further behind,
the clients, not the sidecar, set the rate."""
P50_GROWTH_MAX = 3.0
"""A sustained step's median latency is at most this many times the ramp's first (lightest)
step's: over capacity, calls queue deeper through the step and the median call waits about
half of it (on the 2-core development machine p50 was 3-11 ms below capacity and 20 ms or
more once a queue was building), whereas a stall moves the tail, not the median."""
P99_MAX_MS = 200.0
"""A sustained step's latency p99 is at most this: a rate one ramp step (5%) over capacity
queues calls 0.05 x 4 s = 200 ms deep by a step's end, however fast the machine, while stalls
that have nothing to do with the rate (the disk, other jobs) reached 80-140 ms in steps far
below capacity on the 2-core development machine."""


def closed_loop_rounds(pool: OpenLoopPool, settings: Settings) -> dict[str, dict[str, Any]]:
    """Throughput with each number of calls in flight of `capacity_clients`, keyed by it."""
    rounds = {}
    for in_flight in settings.capacity_clients:
        progress(f"capacity: {in_flight} call(s) in flight for {settings.capacity_seconds:g} s")
        calls = merged_runs(pool.burst(f"capacity-{in_flight}", in_flight, settings.capacity_seconds,
                                       settings.call_timeout))
        summary = open_loop_summary(calls, math.nan, settings.capacity_seconds)
        rounds[str(in_flight)] = {**summary, "throughput_per_s": summary["admitted_rate_per_s"],
                                  "p50_ms": summary["admitted"]["p50_ms"]}
    return rounds


def ramp_step(summary: dict[str, Any]) -> dict[str, Any]:
    """What a paced step's verdict rests on, from its open-loop summary."""
    return {**{key: summary[key] for key in ("target_rate_per_s", "offered_rate_per_s", "admitted_rate_per_s",
                                             "calls", "errors", "outcomes")},
            "p50_ms": summary["all"]["p50_ms"], "p99_ms": summary["all"]["p99_ms"],
            "send_lag_p99_ms": summary["send_lag"]["p99_ms"]}


def shortfalls(step: dict[str, Any], first: dict[str, Any]) -> list[str]:
    """Why a ramp step was not sustained (none if it was); `first` is the ramp's first step."""
    p50_bound = P50_GROWTH_MAX * first["p50_ms"]
    achieved = step["admitted_rate_per_s"] or 0.0
    checks = (
        (step["errors"] > 0, f"{step['errors']} errors"),
        (achieved < ACHIEVED_MIN * step["target_rate_per_s"],
         f"achieved {achieved:g}/s < {ACHIEVED_MIN:.0%} of {step['target_rate_per_s']:g}/s"),
        (step["send_lag_p99_ms"] > SEND_LAG_P99_MAX_MS,
         f"send lag p99 {step['send_lag_p99_ms']:g} ms > {SEND_LAG_P99_MAX_MS:g} ms"),
        (step["p50_ms"] > p50_bound, f"p50 {step['p50_ms']:g} ms > {p50_bound:g} ms"),
        (step["p99_ms"] > P99_MAX_MS, f"p99 {step['p99_ms']:g} ms > {P99_MAX_MS:g} ms"),
    )
    return [reason for failed, reason in checks if failed]


def sustained_rate(steps: list[dict[str, Any]]) -> float | None:
    """The highest rate asked of the steps before the first not sustained (None if that is the
    first): the ramp's rates rise, so that is the last of them."""
    sustained = list(itertools.takewhile(lambda step: not step["shortfalls"], steps))
    return sustained[-1]["target_rate_per_s"] if sustained else None


def measure_capacity(pool: OpenLoopPool, settings: Settings) -> dict[str, Any]:
    """The closed-loop rounds' best as an estimate, then paced steps at `ramp_fractions` of it
    until one is not sustained. The capacity is the highest step sustained, or the first step's
    rate if none was (reported as not sustained)."""
    rounds = closed_loop_rounds(pool, settings)
    best = max(rounds, key=lambda clients: rounds[clients]["throughput_per_s"])
    estimate = rounds[best]["throughput_per_s"]
    steps: list[dict[str, Any]] = []
    for number, fraction in enumerate(settings.ramp_fractions):
        rate = fraction * estimate
        progress(f"capacity ramp: {rate:.0f} CheckTrade/s open loop for {settings.ramp_step_seconds:g} s "
                 f"({fraction:.0%} of the closed-loop estimate)")
        calls = merged_runs(pool.run(f"ramp-{number}", rate, settings.ramp_step_seconds, settings.call_timeout))
        step = ramp_step(open_loop_summary(calls, rate, settings.ramp_step_seconds))
        steps.append(step)
        step["shortfalls"] = shortfalls(step, steps[0])
        if step["shortfalls"]:
            progress(f"capacity ramp: {rate:.0f}/s not sustained: {'; '.join(step['shortfalls'])}")
            break
    capacity = sustained_rate(steps)
    return {"rounds": rounds, "clients": int(best), "closed_loop_per_s": estimate, "ramp": steps,
            "sustained": capacity is not None,
            "throughput_per_s": capacity if capacity is not None else steps[0]["target_rate_per_s"]}


# -- 2. soak ------------------------------------------------------------------------------------

def soak(pool: OpenLoopPool, sidecar: SidecarProcess, home: Path, rate: float,
         settings: Settings) -> dict[str, Any]:
    seconds = settings.minutes * 60
    progress(f"soak: {rate:.0f} CheckTrade/s open loop for {seconds:g} s, "
             f"sampling every {settings.sample_interval:g} s")
    sampler = Sampler(sidecar.pid, home)
    runs = pool.run("soak", rate, seconds, settings.call_timeout, every=settings.sample_interval, sample=sampler)
    sampler()
    calls = merged_runs(runs)
    start = int(calls["intended_ns"].min())
    warmup = min(settings.warmup_fraction * seconds, settings.warmup_max_seconds)
    memory, fds = flatness(sampler.samples, "rss_mb", warmup), flatness(sampler.samples, "fds", warmup)
    samples = sampler.samples
    cpu = (samples[-1].cpu_s - samples[0].cpu_s) / (samples[-1].t_s - samples[0].t_s) if len(samples) > 1 else None
    return {
        **open_loop_summary(calls, rate, seconds), "warmup_s": warmup,
        "thirds": thirds(calls, start, start + int(seconds * 1e9)),
        "rss_mb": {**memory, "flat": rss_is_flat(memory)}, "fds": {**fds, "flat": fds_are_flat(fds)},
        "sidecar_cpu_cores": _round(cpu, 2) if cpu is not None else None,
        "state_mb": {"first": samples[0].state_mb, "last": samples[-1].state_mb},
        "samples": [s._asdict() for s in samples],
    }


# -- 3. overload ------------------------------------------------------------------------------

def overload(pool: OpenLoopPool, client: RiskBudgetClient, target: str, flow: OrderFlow, capacity: float,
             settings: Settings) -> dict[str, Any]:
    load, over = settings.load_fraction * capacity, settings.overload_factor * capacity
    phases = {}
    runs_by_phase = {}
    in_flight = int(settings.overload_factor * settings.max_concurrent_rpcs)
    for name, rate, seconds in (("baseline", load, settings.baseline_seconds),
                                ("overload", over, settings.overload_seconds),
                                ("recovery", load, settings.recovery_seconds),
                                ("burst", None, settings.overload_seconds),
                                ("recovery_after_burst", load, settings.recovery_seconds)):
        if rate is None:
            progress(f"overload test, {name}: {in_flight} CheckTrade calls in flight (closed loops) for "
                     f"{seconds:g} s (max_concurrent_rpcs {settings.max_concurrent_rpcs})")
            runs_by_phase[name] = pool.burst(name, in_flight, seconds, settings.call_timeout)
        else:
            progress(f"overload test, {name}: {rate:.0f} CheckTrade/s open loop for {seconds:g} s "
                     f"(max_concurrent_rpcs {settings.max_concurrent_rpcs})")
            runs_by_phase[name] = pool.run(name, rate, seconds, settings.call_timeout)
        calls = merged_runs(runs_by_phase[name])
        phases[name] = open_loop_summary(calls, rate or math.nan, seconds)
        if name.startswith("recovery"):
            phases[name]["first_second"] = first_second(calls)
    phases["burst"]["in_flight"] = in_flight
    integrity = check_integrity(client, target, flow, runs_by_phase, settings)
    base, overloaded, recovered = phases["baseline"], phases["overload"], phases["recovery"]
    return {
        "max_concurrent_rpcs": settings.max_concurrent_rpcs, **phases, "integrity": integrity,
        "ratios": {
            "admitted_p50_overload_vs_baseline": _ratio(overloaded["admitted"]["p50_ms"], base["admitted"]["p50_ms"]),
            "admitted_p99_overload_vs_baseline": _ratio(overloaded["admitted"]["p99_ms"], base["admitted"]["p99_ms"]),
            "p50_recovery_vs_baseline": _ratio(recovered["admitted"]["p50_ms"], base["admitted"]["p50_ms"]),
            "p99_recovery_vs_baseline": _ratio(recovered["admitted"]["p99_ms"], base["admitted"]["p99_ms"]),
            "admitted_p50_burst_vs_baseline": _ratio(phases["burst"]["admitted"]["p50_ms"],
                                                     base["admitted"]["p50_ms"]),
            "admitted_p99_burst_vs_baseline": _ratio(phases["burst"]["admitted"]["p99_ms"],
                                                     base["admitted"]["p99_ms"]),
            "p50_recovery_after_burst_vs_baseline": _ratio(phases["recovery_after_burst"]["admitted"]["p50_ms"],
                                                           base["admitted"]["p50_ms"]),
        },
    }


def first_second(calls: dict[str, np.ndarray]) -> dict[str, Any]:
    """The recovery's first second: did calls succeed at once, and how fast."""
    start = calls["intended_ns"].min()
    inside = calls["intended_ns"] < start + 1_000_000_000
    outcomes = calls["outcomes"][inside]
    ok = outcomes < ERROR_BASE
    return {"calls": int(inside.sum()), "errors": int((~ok).sum()),
            **percentiles_ms((calls["done_ns"] - calls["intended_ns"])[inside][ok])}


def check_integrity(client: RiskBudgetClient, target: str, flow: OrderFlow,
                    runs_by_phase: dict[str, list[OpenLoopRun]], settings: Settings) -> dict[str, Any]:
    """Every approval the clients received is reserved, no refused call left a trace, no reply
    was corrupt: the sidecar's reserved quantity against the approvals, and sampled replays."""
    runs = [run for runs in runs_by_phase.values() for run in runs]
    approved_total = float(sum(run.approved.sum() for run in runs))
    corrupt = int(sum((run.outcomes == CORRUPT).sum() for run in runs))
    lost_in_flight = int(sum(((run.outcomes >= ERROR_BASE) & ~np.isin(run.outcomes, SHED)).sum()
                             for run in runs))
    prices = {s.symbol: s.last_price for s in client.get_budget().budget.symbols}
    utilization = client.get_utilization()
    reserved = sum(s.position_notional / prices[s.symbol] for s in utilization.symbols if s.symbol in flow.symbols)
    approved_ids = [(run.prefix, int(n)) for run in runs for n in run.numbers[run.approved > 0]]
    refused_ids = [(run.prefix, int(n)) for run in runs for n in run.numbers[np.isin(run.outcomes, SHED)]]
    rng = random.Random(8)
    approved_sample = rng.sample(approved_ids, min(settings.replay_sample, len(approved_ids)))
    refused_sample = rng.sample(refused_ids, min(settings.replay_sample, len(refused_ids)))
    channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
    stub = service_grpc.RiskBudgetServiceStub(channel)

    def resend(prefix: str, number: int) -> service_pb2.CheckTradeResponse:
        return stub.CheckTrade(service_pb2.CheckTradeRequest(
            client_order_id=f"{prefix}-{number}", strategy=flow.strategy,
            symbol=flow.symbols[number % len(flow.symbols)], side=types_pb2.SIDE_BUY, quantity=1.0,
            dry_run=True), timeout=settings.call_timeout)

    try:
        replays_ok = sum(1 for prefix, number in approved_sample
                         if (reply := resend(prefix, number)).replayed and reply.approved_quantity == 1.0
                         and reply.decision == types_pb2.DECISION_APPROVED)
        # dry_run: a refused id, never recorded, is evaluated afresh and reserves nothing now
        refused_unrecorded = sum(1 for prefix, number in refused_sample if not resend(prefix, number).replayed)
    finally:
        channel.close()
    # Every approval received is reserved (none lost); beyond them, only calls the client saw fail
    # other than by refusal (a deadline passed, or gRPC cancelled it) may have been reserved too,
    # unacknowledged: the client treated them as rejections and they lapse at expiry.
    slack = 1e-6 * max(approved_total, 1)
    none_lost = reserved >= approved_total - slack
    none_made_up = reserved <= approved_total + lost_in_flight + slack
    return {
        "approved_total": approved_total, "reserved_reported": _round(reserved, 3),
        "reserved_beyond_approved": _round(reserved - approved_total, 3),
        "failed_other_than_refused": lost_in_flight, "none_lost": none_lost, "none_made_up": none_made_up,
        "corrupt_replies": corrupt,
        "approved_replayed": f"{replays_ok}/{len(approved_sample)}",
        "refused_not_recorded": f"{refused_unrecorded}/{len(refused_sample)}",
        "ok": (none_lost and none_made_up and corrupt == 0
               and replays_ok == len(approved_sample) and refused_unrecorded == len(refused_sample)),
    }


# -- the report ---------------------------------------------------------------------------------

def ramp_line(capacity: dict[str, Any]) -> str:
    """The paced ramp in a line: the capacity, the sustained steps' tails, where it stopped and why."""
    ramp = capacity["ramp"]
    sustained = [step for step in ramp if not step["shortfalls"]]
    parts = [f"{capacity['throughput_per_s']:g} ({capacity['throughput_per_s'] / capacity['closed_loop_per_s']:.0%} "
             f"of the estimate; steps from {ramp[0]['target_rate_per_s']:g})"]
    if sustained:
        parts.append(f"sustained steps p99 {min(step['p99_ms'] for step in sustained):g}-"
                     f"{max(step['p99_ms'] for step in sustained):g} ms, send lag p99 <= "
                     f"{max(step['send_lag_p99_ms'] for step in sustained):g} ms")
    if ramp[-1]["shortfalls"]:
        parts.append(f"stopped at {ramp[-1]['target_rate_per_s']:g}: {', '.join(ramp[-1]['shortfalls'])}")
    else:
        parts.append("every step sustained (the capacity is at least this)")
    return "; ".join(parts)


def table_rows(results: dict) -> list[tuple[str, str, str, str]]:
    rows = []

    def add(metric: str, value: Any, target: str = "", passed: bool | None = None) -> None:
        rows.append((metric, str(value), target, "-" if passed is None else ("pass" if passed else "FAIL")))

    def lat(summary: dict) -> str:
        return f"{summary['p50_ms']} / {summary['p99_ms']} ms"

    capacity = results["capacity"]
    add("capacity: closed-loop CheckTrade/s (best of calls in flight: the ramp's estimate)",
        f"{capacity['closed_loop_per_s']} with {capacity['clients']} in flight; "
        + ", ".join(f"{c}: {r['throughput_per_s']}/s p50 {r['p50_ms']} ms" for c, r in capacity["rounds"].items()))
    add(f"capacity: highest paced CheckTrade/s sustained ({len(capacity['ramp'])} of "
        f"{len(results['settings']['ramp_fractions'])} ramp steps, {results['settings']['ramp_step_seconds']:g} s "
        "each)", ramp_line(capacity),
        f"a step with no errors, achieved >= {ACHIEVED_MIN:.0%} of rate, send lag p99 <= {SEND_LAG_P99_MAX_MS:g} ms, "
        f"p50 <= {P50_GROWTH_MAX:g}x first step's, p99 <= {P99_MAX_MS:g} ms",
        capacity["sustained"])
    s = results["soak"]
    add("soak: target / offered rate, length",
        f"{s['target_rate_per_s']} / {s['offered_rate_per_s']} per s, {s['seconds']:g} s, n={s['calls']}")
    add("soak: errors", s["errors"], "== 0", s["errors"] == 0)
    add("soak: outcomes", ", ".join(f"{k} {v}" for k, v in s["outcomes"].items())
        + "".join(f"; {name} {lat(e)}" for name, e in s["errors_by_code"].items()))
    add("soak: latency p50 / p99 (from scheduled arrival)", lat(s["all"]))
    add("soak: latency p50 / p99 by third", "; ".join(lat(t) for t in s["thirds"]))
    add("soak: send lag p50 / p99 (client behind schedule)", lat(s["send_lag"]))
    r, f = s["rss_mb"], s["fds"]
    add("soak: VmRSS MiB first / last third median (max), slope",
        f"{r['first_third_median']} / {r['last_third_median']} ({r['first_third_max']} / {r['last_third_max']}), "
        f"{r['slope_per_min']} MiB/min", f"median growth <= max({RSS_FLAT[0]:g} MiB, {RSS_FLAT[1]:.0%})", r["flat"])
    add("soak: open fds first / last third max, slope",
        f"{f['first_third_max']:g} / {f['last_third_max']:g}, {f['slope_per_min']} /min",
        f"growth <= {FD_FLAT}", f["flat"])
    add("soak: sidecar CPU (cores), state dir MiB first / last (per 1000 checks)",
        f"{s['sidecar_cpu_cores']}, {s['state_mb']['first']} / {s['state_mb']['last']} "
        f"({(s['state_mb']['last'] - s['state_mb']['first']) / max(s['calls'], 1) * 1000:.2f})")
    o = results["overload"]
    b, ov, rc = o["baseline"], o["overload"], o["recovery"]
    add(f"overload: max_concurrent_rpcs, rates 80% / {results['settings']['overload_factor']:g}x target (offered)",
        f"{o['max_concurrent_rpcs']}, {b['target_rate_per_s']} ({b['offered_rate_per_s']}) / "
        f"{ov['target_rate_per_s']} ({ov['offered_rate_per_s']}) per s")
    add("overload: turned away (RESOURCE_EXHAUSTED or CANCELLED) of calls", f"{ov['refused']} of {ov['calls']}",
        "> 0", ov["refused"] > 0)
    add("overload: turned-away latency p50 / p99", lat(ov["refused_latency"]))
    add("overload: errors by status: calls, p50 / p99", "; ".join(
        f"{name.removeprefix('error ')} {e['calls']}, {lat(e)}" for name, e in ov["errors_by_code"].items()))
    add("overload: admitted rate per s", f"{ov['admitted_rate_per_s']} (baseline {b['admitted_rate_per_s']})")
    add("overload: admitted p50 / p99 vs baseline (80%) vs soak",
        f"{lat(ov['admitted'])} vs {lat(b['admitted'])} vs {lat(s['all'])}")
    add("overload: admitted service time p50 / p99 (from send)",
        f"{lat(ov['admitted_service'])} (baseline {lat(b['admitted_service'])})")
    add("overload: admitted p99 / baseline p99", o["ratios"]["admitted_p99_overload_vs_baseline"])
    add("overload: errors other than turned away (e.g. DEADLINE_EXCEEDED)",
        ov["errors"] - ov["refused"], "== 0", ov["errors"] == ov["refused"])
    i = o["integrity"]
    add("overload: approvals received / reserved by the sidecar (calls failed unrefused)",
        f"{i['approved_total']:g} / {i['reserved_reported']:g} ({i['failed_other_than_refused']})",
        "approved <= reserved <= approved + failed", i["none_lost"] and i["none_made_up"])
    add("overload: approved ids replayed, refused ids unrecorded, corrupt replies",
        f"{i['approved_replayed']}, {i['refused_not_recorded']}, {i['corrupt_replies']}", "all, all, 0", i["ok"])
    add("recovery: errors (first second), p50 / p99",
        f"{rc['errors']} ({rc['first_second']['errors']}), {lat(rc['admitted'])}", "== 0", rc["errors"] == 0)
    add("recovery p50 / baseline p50", o["ratios"]["p50_recovery_vs_baseline"])
    add("baseline errors (80% with the low limit)", f"{b['errors']}: " + ", ".join(
        f"{k} {v}" for k, v in b["outcomes"].items() if k.startswith("error")))
    bu, rb = o["burst"], o["recovery_after_burst"]
    add(f"burst: {bu['in_flight']} calls in flight, turned away of calls",
        f"{bu['refused']} of {bu['calls']}" + "".join(
            f"; {name.removeprefix('error ')} {e['calls']}, {lat(e)}" for name, e in bu["errors_by_code"].items()))
    add("burst: admitted rate per s, p50 / p99", f"{bu['admitted_rate_per_s']}, {lat(bu['admitted'])}")
    add("burst: errors other than turned away", bu["errors"] - bu["refused"], "== 0",
        bu["errors"] == bu["refused"])
    add("recovery after burst: errors, p50 / p99 (p50 / baseline p50)",
        f"{rb['errors']}, {lat(rb['admitted'])} ({o['ratios']['p50_recovery_after_burst_vs_baseline']})",
        "== 0", rb["errors"] == 0)
    return rows


def run(settings: Settings, directory: Path) -> dict[str, Any]:
    began = time.monotonic()
    sidecar_cpus, client_cpus = cpu_split(settings.pin)
    results: dict[str, Any] = {"machine": machine(), "settings": dataclasses.asdict(settings),
                               "cpus": {"sidecar": sorted(sidecar_cpus or ()), "clients": sorted(client_cpus or ())},
                               "loadavg_before": os.getloadavg()}
    home = directory / "soak"
    config = bench_config(home, listen="127.0.0.1:0", store="sqlite", changes=HIGH_VOLUME)
    flow = order_flow(config)
    with OpenLoopPool(settings.open_loop_clients, client_cpus) as pool:
        with SidecarProcess(config, home, sidecar_cpus) as sidecar, RiskBudgetClient(sidecar.target) as client:
            fresh_prices(client)
            pool.connect(sidecar.target, flow)
            results["capacity"] = measure_capacity(pool, settings)
            capacity = results["capacity"]["throughput_per_s"]
            results["soak"] = soak(pool, sidecar, home, settings.load_fraction * capacity, settings)
        home = directory / "overload"
        config = bench_config(home, listen="127.0.0.1:0", store="sqlite", changes={
            **HIGH_VOLUME, "limits": {**HIGH_VOLUME["limits"], "reservation_ttl": OVERLOAD_TTL},
            "sidecar": {"max_concurrent_rpcs": settings.max_concurrent_rpcs}})
        with SidecarProcess(config, home, sidecar_cpus) as sidecar, RiskBudgetClient(sidecar.target) as client:
            fresh_prices(client)
            pool.connect(sidecar.target, flow)
            results["overload"] = overload(pool, client, sidecar.target, flow, capacity, settings)
    results["loadavg_after"] = os.getloadavg()
    results["seconds"] = round(time.monotonic() - began, 1)
    results["table"] = [dict(zip(("metric", "value", "target", "verdict"), row)) for row in table_rows(results)]
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=Settings.minutes, help="soak length (default 10)")
    parser.add_argument("--quick", action="store_true", help="the smallest run (the smoke test's)")
    parser.add_argument("--max-concurrent-rpcs", type=int, default=Settings.max_concurrent_rpcs,
                        help="the overloaded sidecar's sidecar.max_concurrent_rpcs "
                             f"(default {Settings.max_concurrent_rpcs})")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="let the sidecar and the clients run on any CPU")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON results (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    settings = dataclasses.replace(QUICK if args.quick else Settings(minutes=args.minutes), pin=args.pin,
                                   max_concurrent_rpcs=args.max_concurrent_rpcs)
    if not settings.minutes > 0:
        parser.error("--minutes must be positive")
    if settings.max_concurrent_rpcs < 1:
        parser.error("--max-concurrent-rpcs must be 1 or more")
    with tempfile.TemporaryDirectory(prefix="soak-") as directory:
        results = run(settings, Path(directory))
    publish(results, args.out, [
        f"machine: {json.dumps(results['machine'])}",
        f"CPUs: sidecar {results['cpus']['sidecar'] or 'any'}, clients {results['cpus']['clients'] or 'any'}",
        f"load average before / after: {results['loadavg_before']} / {results['loadavg_after']}; "
        f"{results['seconds']} s"])
    return results


if __name__ == "__main__":
    # SIGTERM unwinds like an error, so that the sidecar and the clients are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    main()
