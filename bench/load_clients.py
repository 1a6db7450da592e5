"""Client processes for the gRPC benchmark, each with its own channel.

Every process stamps time with time.monotonic_ns (CLOCK_MONOTONIC, one clock for the
whole host), so stamps taken in different processes compare. Processes are spawned,
not forked: a fork would copy the parent's gRPC threads' state.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Callable, Iterator, NamedTuple

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from riskbudget.v1 import risk_budget_service_pb2 as service_pb2
from riskbudget.v1 import risk_budget_service_pb2_grpc as service_grpc
from riskbudget.v1 import types_pb2
from riskbudget_client import RiskBudgetClient

CONTEXT = multiprocessing.get_context("spawn")
CHANNEL_OPTIONS = (("grpc.enable_http_proxy", 0),)  # loopback: never through a proxy
CALL_TIMEOUT = 5.0
WARMUP_CALLS = 20
"""Unmeasured calls of each kind after connecting: the channel and both code paths warm."""
REPLY_TIMEOUT = 120.0
"""Seconds the pool waits for a client process to answer a command before giving up."""


@dataclass(frozen=True)
class OrderFlow:
    """The orders the CheckTrade clients send: 1-share market buys, round robin over `symbols`."""

    strategy: str
    symbols: tuple[str, ...]


@dataclass
class RoundResult:
    """One measurement round of one kind of call, over one or more client processes."""

    latencies_ns: np.ndarray
    """Of the calls that succeeded, in no particular order."""
    errors: int
    outcomes: Counter
    """Decision names for CheckTrade, the serving status for the no-op."""
    seconds: float
    """From the first call's start to the last call's end, over all the clients."""

    @property
    def calls(self) -> int:
        return len(self.latencies_ns) + self.errors


class _ClientRound(NamedTuple):
    latencies_ns: np.ndarray
    errors: int
    outcomes: Counter
    began_ns: int
    ended_ns: int


class _Caller:
    """One client process's channel and the two calls it measures: (request maker, RPC, outcome)."""

    _order_numbers = itertools.count()  # per process; the name keeps ids unique across processes

    def __init__(self, target: str, flow: OrderFlow, name: str) -> None:
        self._channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        self._flow = flow
        self._name = name
        service = service_grpc.RiskBudgetServiceStub(self._channel)
        health = health_pb2_grpc.HealthStub(self._channel)
        no_op_request = health_pb2.HealthCheckRequest()
        self._calls: dict[str, tuple[Callable[[], Any], Callable[..., Any], Callable[[Any], str]]] = {
            "check_trade": (self._order, service.CheckTrade,
                            lambda reply: types_pb2.Decision.Name(reply.decision)),
            "no_op": (lambda: no_op_request, health.Check,
                      lambda reply: health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)),
        }

    def _order(self) -> service_pb2.CheckTradeRequest:
        number = next(self._order_numbers)
        return service_pb2.CheckTradeRequest(
            client_order_id=f"{self._name}-{number}", strategy=self._flow.strategy,
            symbol=self._flow.symbols[number % len(self._flow.symbols)], side=types_pb2.SIDE_BUY,
            quantity=1.0)

    def warm_up(self) -> None:
        for make, rpc, _ in self._calls.values():
            for _ in range(WARMUP_CALLS):
                rpc(make(), timeout=CALL_TIMEOUT)

    def measure(self, kind: str, count: int, start_at_ns: int, deadline_ns: int) -> _ClientRound:
        """Up to `count` calls one after another from `start_at_ns`, none started after the
        deadline; only the round trip is timed (the request is built before)."""
        make, rpc, outcome = self._calls[kind]
        latencies, errors, outcomes = [], 0, Counter()
        time.sleep(max(start_at_ns - time.monotonic_ns(), 0) / 1e9)
        began = time.monotonic_ns()
        for _ in range(count):
            request = make()
            sent = time.monotonic_ns()
            if sent > deadline_ns:
                break
            try:
                reply = rpc(request, timeout=CALL_TIMEOUT)
            except grpc.RpcError as error:
                errors += 1
                outcomes[f"error {error.code().name}"] += 1
                continue
            latencies.append(time.monotonic_ns() - sent)
            outcomes[outcome(reply)] += 1
        return _ClientRound(np.array(latencies, dtype=np.int64), errors, outcomes, began, time.monotonic_ns())

    def close(self) -> None:
        self._channel.close()


def _client_process(connection: Connection, index: int) -> None:
    """Serve the pool's commands: ("connect", target, flow) and ("measure", kind, ...)."""
    caller: _Caller | None = None
    try:
        while (command := connection.recv())[0] != "close":
            try:
                if command[0] == "connect":
                    if caller is not None:
                        caller.close()
                    caller = _Caller(command[1], command[2], name=f"c{index}")
                    caller.warm_up()
                    connection.send(("ok", None))
                else:
                    connection.send(("ok", caller.measure(*command[1:])))
            except Exception:
                connection.send(("error", traceback.format_exc()))
    finally:
        if caller is not None:
            caller.close()


def _pinned(cpus: frozenset[int] | None, serve: Callable[[Connection, int], None], connection: Connection,
            index: int) -> None:
    if cpus is not None:
        os.sched_setaffinity(0, cpus)
    serve(connection, index)


class ProcessPool:
    """`size` spawned processes, each running `serve(connection, index)` and answering the
    commands sent down its pipe; ("close",) ends one. `cpus`: the CPUs they may run on
    (None: any)."""

    def __init__(self, size: int, serve: Callable[[Connection, int], None], name: str,
                 cpus: frozenset[int] | None = None) -> None:
        self._connections: list[Connection] = []
        self._processes = []
        for index in range(size):
            ours, theirs = CONTEXT.Pipe()
            process = CONTEXT.Process(target=_pinned, args=(cpus, serve, theirs, index), name=f"{name}-{index}",
                                      daemon=True)
            process.start()
            theirs.close()
            self._connections.append(ours)
            self._processes.append(process)

    def __enter__(self) -> ProcessPool:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        for connection, process in zip(self._connections, self._processes):
            if process.is_alive():
                with contextlib.suppress(OSError):
                    connection.send(("close",))
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()


class ClientPool(ProcessPool):
    """`size` client processes, spawned once and pointed at one sidecar after another."""

    def __init__(self, size: int) -> None:
        super().__init__(size, _client_process, "rpc-load-client")

    def connect(self, target: str, flow: OrderFlow) -> None:
        """Every client opens a channel to `target` and warms it up."""
        self._ask(self._connections, ("connect", target, flow))

    def run_round(self, kind: str, clients: int, calls_per_client: int, time_limit: float) -> RoundResult:
        """`clients` processes call at once, each up to `calls_per_client` times within `time_limit`."""
        start_at = time.monotonic_ns() + 50_000_000  # time for every client to get the command
        deadline = start_at + int(time_limit * 1e9)
        parts: list[_ClientRound] = self._ask(self._connections[:clients],
                                              ("measure", kind, calls_per_client, start_at, deadline))
        return RoundResult(
            latencies_ns=np.concatenate([part.latencies_ns for part in parts]),
            errors=sum(part.errors for part in parts),
            outcomes=sum((part.outcomes for part in parts), Counter()),
            seconds=(max(p.ended_ns for p in parts) - min(p.began_ns for p in parts)) / 1e9)

    def _ask(self, connections: list[Connection], command: tuple) -> list:
        for connection in connections:
            connection.send(command)
        replies = []
        for connection in connections:
            if not connection.poll(REPLY_TIMEOUT):
                raise TimeoutError(f"a client process did not answer {command[0]!r} in {REPLY_TIMEOUT:.0f} s")
            status, value = connection.recv()
            if status == "error":
                raise RuntimeError(f"a client process failed on {command[0]!r}:\n{value}")
            replies.append(value)
        return replies


@contextlib.contextmanager
def background(target: Callable[..., None], *args: Any) -> Iterator[Any]:
    """`target(*args)` in a spawned process for the length of the block, then terminated."""
    process = CONTEXT.Process(target=target, args=args, name=f"rpc-load-{target.__name__}", daemon=True)
    process.start()
    try:
        yield process
    finally:
        process.terminate()
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join()


def feed_prices(target: str, prices: dict[str, float], interval: float, running: Any, seed: int) -> None:
    """While `running` is set: every `interval`, one publish of a random-walk price for every
    symbol, stamped now (a process body, for `background`)."""
    rng = np.random.default_rng(seed)
    symbols, levels = list(prices), np.array(list(prices.values()))
    with RiskBudgetClient(target) as client:
        due = time.monotonic()
        while True:
            running.wait()
            levels *= np.exp(rng.normal(0.0, 0.01, len(levels)))
            now = time.time()
            client.publish_market_data((symbol, price, now) for symbol, price in zip(symbols, levels.tolist()))
            due = max(due + interval, time.monotonic())
            time.sleep(max(due - time.monotonic(), 0.0))


class Arrival(NamedTuple):
    """A recommendation as a subscriber received it."""

    received_ns: int
    budget_version: int
    triggers: tuple[str, ...]


class StreamFailure(NamedTuple):
    """A stream that ended with an error other than its own cancellation."""

    code: str
    details: str


def subscribe(target: str, streams: int, attached: Any, received: Any) -> None:
    """`streams` recommendation streams, each on its own channel, open while `attached` is set;
    every recommendation that arrives is put on `received` as an Arrival (a process body)."""
    request = service_pb2.StreamRecommendationsRequest(from_latest=True)
    stubs = [service_grpc.RiskBudgetServiceStub(grpc.insecure_channel(target, options=CHANNEL_OPTIONS))
             for _ in range(streams)]
    while True:
        attached.wait()
        calls = [stub.StreamRecommendations(request) for stub in stubs]
        readers = [threading.Thread(target=_read_stream, args=(call, received), daemon=True) for call in calls]
        for reader in readers:
            reader.start()
        while attached.is_set():
            time.sleep(0.02)
        for call in calls:
            call.cancel()
        for reader in readers:
            reader.join()


def _read_stream(call: Any, received: Any) -> None:
    try:
        for batch in call:
            arrived = time.monotonic_ns()
            for recommendation in batch.recommendations:
                triggers = tuple(types_pb2.RecommendationTrigger.Name(t) for t in recommendation.triggers)
                received.put(Arrival(arrived, recommendation.budget.version, triggers))
    except grpc.RpcError as error:
        if error.code() is not grpc.StatusCode.CANCELLED:
            received.put(StreamFailure(error.code().name, error.details() or ""))
