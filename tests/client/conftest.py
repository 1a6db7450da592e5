"""Scripted sidecars served by a real gRPC server on an ephemeral loopback
port, and clients and recommendation feeds of both kinds to call them."""

import asyncio
import socket
import threading
from collections import deque
from concurrent import futures
from dataclasses import dataclass

import grpc
import pytest

from riskbudget.v1 import risk_budget_admin_pb2 as admin_pb2
from riskbudget.v1 import risk_budget_admin_pb2_grpc as admin_grpc
from riskbudget.v1 import risk_budget_service_pb2 as service_pb2
from riskbudget.v1 import risk_budget_service_pb2_grpc as service_grpc
from riskbudget.v1 import types_pb2
from riskbudget_client import (
    AsyncRecommendationFeed,
    AsyncRiskBudgetClient,
    RecommendationFeed,
    RiskBudgetClient,
)

ADMIN_TOKEN = "test-admin-token"
CHECK_TRADE_TIMEOUT = 2.0
"""Generous: a reply after the deadline is the client's own rejection, and on a busy machine
the first call of a channel (its connection) can take longer than a real deadline."""


class FakeSidecar(
    service_grpc.RiskBudgetServiceServicer, admin_grpc.RiskBudgetAdminServiceServicer
):
    """Answers as scripted by its attributes and records what each call received."""

    def __init__(self):
        self.requests = {}
        self.metadata = {}
        self.failure = None  # (status code, details) every call aborts with
        self.check_trade_reply = None  # None approves each order as asked
        self.hang = False  # CheckTrade answers, and streams end, only once released
        self.released = threading.Event()
        self.stream_ended = threading.Event()
        self.budget = types_pb2.Budget()
        self.recommendation_batches = []
        self.alerts = []
        self.status = service_pb2.GetStatusResponse()

    def _receive(self, method, request, context):
        self.requests[method] = request
        self.metadata[method] = dict(context.invocation_metadata())
        if self.failure is not None:
            context.abort(*self.failure)

    def GetBudget(self, request, context):
        self._receive("GetBudget", request, context)
        return service_pb2.GetBudgetResponse(budget=self.budget)

    def GetUtilization(self, request, context):
        self._receive("GetUtilization", request, context)
        return service_pb2.GetUtilizationResponse(near_limit_fraction=0.8)

    def CheckTrade(self, request, context):
        self._receive("CheckTrade", request, context)
        if self.hang:
            self.released.wait()
        if self.check_trade_reply is not None:
            return self.check_trade_reply
        return service_pb2.CheckTradeResponse(
            client_order_id=request.client_order_id,
            decision=types_pb2.DECISION_APPROVED,
            requested_quantity=request.quantity,
            approved_quantity=request.quantity,
        )

    def StreamRecommendations(self, request, context):
        self._receive("StreamRecommendations", request, context)
        context.add_callback(self.stream_ended.set)
        for batch in self.recommendation_batches:
            yield service_pb2.StreamRecommendationsResponse(recommendations=batch)
        if self.hang:
            self.released.wait()

    def PublishMarketData(self, request, context):
        self._receive("PublishMarketData", request, context)
        return service_pb2.PublishMarketDataResponse(accepted=len(request.ticks))

    def ReportFill(self, request, context):
        self._receive("ReportFill", request, context)
        position = types_pb2.Position(
            strategy=request.strategy, symbol=request.symbol, quantity=request.quantity
        )
        return service_pb2.ReportFillResponse(position=position)

    def SetPositions(self, request, context):
        self._receive("SetPositions", request, context)
        return service_pb2.SetPositionsResponse(positions=len(request.positions))

    def ReleaseOrder(self, request, context):
        self._receive("ReleaseOrder", request, context)
        return service_pb2.ReleaseOrderResponse(released=True)

    def ListAlerts(self, request, context):
        self._receive("ListAlerts", request, context)
        return service_pb2.ListAlertsResponse(alerts=self.alerts)

    def GetStatus(self, request, context):
        self._receive("GetStatus", request, context)
        return self.status

    def TriggerRebalance(self, request, context):
        self._receive("TriggerRebalance", request, context)
        return admin_pb2.TriggerRebalanceResponse(
            recommendation=types_pb2.Recommendation(sequence=1, reason=request.reason)
        )

    def SetOverride(self, request, context):
        self._receive("SetOverride", request, context)
        override = types_pb2.Override()
        override.CopyFrom(request.override)
        override.id = "ovr-1"
        return admin_pb2.SetOverrideResponse(override=override)

    def ClearOverride(self, request, context):
        self._receive("ClearOverride", request, context)
        return admin_pb2.ClearOverrideResponse(cleared=True)

    def ListOverrides(self, request, context):
        self._receive("ListOverrides", request, context)
        return admin_pb2.ListOverridesResponse(overrides=[types_pb2.Override(id="ovr-1")])

    def SetTradingState(self, request, context):
        self._receive("SetTradingState", request, context)
        return admin_pb2.SetTradingStateResponse(state=request.state, strategy=request.strategy)

    def ReloadConfig(self, request, context):
        self._receive("ReloadConfig", request, context)
        return admin_pb2.ReloadConfigResponse(reloaded=True)


class BlockingAsyncClient:
    """Runs each call of an AsyncRiskBudgetClient on a private event loop, so
    that one test body covers both clients."""

    def __init__(self, target, loop=None, **options):
        self._owns_loop = loop is None
        self._loop = asyncio.new_event_loop() if loop is None else loop
        self._client = self._loop.run_until_complete(self._build(target, options))

    @staticmethod
    async def _build(target, options):
        return AsyncRiskBudgetClient(target, **options)

    def __getattr__(self, name):
        method = getattr(self._client, name)
        return lambda *args, **kwargs: self._loop.run_until_complete(method(*args, **kwargs))

    def close(self):
        self._loop.run_until_complete(self._client.close())
        if self._owns_loop:
            self._loop.close()


def serve(sidecar, address):
    """Start a server for `sidecar` on `address`; return it and its port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    service_grpc.add_RiskBudgetServiceServicer_to_server(sidecar, server)
    if isinstance(sidecar, admin_grpc.RiskBudgetAdminServiceServicer):
        admin_grpc.add_RiskBudgetAdminServiceServicer_to_server(sidecar, server)
    port = server.add_insecure_port(address)
    server.start()
    return server, port


@pytest.fixture
def sidecar():
    return FakeSidecar()


@pytest.fixture
def start_server(sidecar):
    """Serve the sidecar on an address; stop every server at teardown."""
    servers = []

    def start(address):
        server, port = serve(sidecar, address)
        servers.append(server)
        return port

    yield start
    sidecar.released.set()
    for server in servers:
        server.stop(grace=None).wait()


@pytest.fixture
def target(start_server):
    return f"127.0.0.1:{start_server('127.0.0.1:0')}"


@pytest.fixture
def dead_target():
    """A loopback address where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"127.0.0.1:{port}"


@pytest.fixture(params=["sync", "asyncio"])
def connect(request):
    """Build a client of each kind; close it at teardown."""
    kind = RiskBudgetClient if request.param == "sync" else BlockingAsyncClient
    clients = []

    def build(target, **options):
        options.setdefault("admin_token", ADMIN_TOKEN)
        options.setdefault("check_trade_timeout", CHECK_TRADE_TIMEOUT)
        clients.append(kind(target, **options))
        return clients[-1]

    yield build
    for client in clients:
        client.close()


@pytest.fixture
def client(connect, target):
    return connect(target)


# -- a sidecar with a recommendation log, for the feed ------------------------


def recommendation(sequence):
    return types_pb2.Recommendation(sequence=sequence, reason=f"recommendation {sequence}")


@dataclass
class Episode:
    """How the log sidecar answers one StreamRecommendations call."""

    send: int | None = None
    """Recommendations to send before the stream ends; None: every one, then live ones."""
    code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    """How the stream ends after `send` (OK: it just ends)."""
    details: str = "sidecar shutting down"
    resume_metadata: bool = False
    """Trailing `riskbudget-resume-after: <last sequence sent>`, as for a slow subscriber."""
    rewind: int = 0
    """Start this many sequences before the one asked for: a faulty replay."""


class LogSidecar(service_grpc.RiskBudgetServiceServicer):
    """StreamRecommendations as the sidecar implements it, from a list: every
    kept recommendation after after_sequence, in batches, then live ones as
    they are published; OUT_OF_RANGE when after_sequence is older than the log
    keeps. Each call follows the next scripted Episode (then the default one).
    The log is served as it is: a duplicate or a gap in it reaches the client."""

    def __init__(self, sequences=(), batch_size=2):
        self.log = [recommendation(sequence) for sequence in sequences]
        self.batch_size = batch_size
        self.episodes = deque()
        self.requests = []
        self.oldest_metadata = True
        self.log_id = ""
        """Stamped on every message, unchecked: an older sidecar's messages carry none."""
        self.status_error: grpc.StatusCode | None = None
        """GetStatus fails with it, if set."""
        self.budget = types_pb2.Budget()
        """What GetBudget answers."""
        self.budget_errors: deque[grpc.StatusCode] = deque()
        """GetBudget fails with each of these in turn, then answers."""
        self.refusal: tuple[str, int] | None = None
        """(details, oldest): every StreamRecommendations call fails with OUT_OF_RANGE, these
        details and `riskbudget-oldest-sequence: <oldest>`, as the sidecar refuses a resume point
        of another log or ahead of its newest recommendation."""
        self.stopped = False
        self.ended = threading.Semaphore(0)
        self._changed = threading.Condition()

    def script(self, *episodes):
        self.episodes.extend(episodes)

    def publish(self, *sequences):
        with self._changed:
            self.log.extend(recommendation(sequence) for sequence in sequences)
            self._changed.notify_all()

    def trim(self, oldest):
        with self._changed:
            self.log = [kept for kept in self.log if kept.sequence >= oldest]

    def stop(self):
        with self._changed:
            self.stopped = True
            self._changed.notify_all()

    def GetStatus(self, request, context):
        if self.status_error is not None:
            context.abort(self.status_error, "GetStatus refused")
        with self._changed:
            sequences = [kept.sequence for kept in self.log]
        return service_pb2.GetStatusResponse(
            last_recommendation_sequence=max(sequences, default=0),
            oldest_recommendation_sequence=min(sequences, default=0),
            recommendation_log_id=self.log_id,
        )

    def GetBudget(self, request, context):
        if self.budget_errors:
            context.abort(self.budget_errors.popleft(), "GetBudget refused")
        return service_pb2.GetBudgetResponse(budget=self.budget)

    def StreamRecommendations(self, request, context):
        context.add_callback(self.ended.release)
        with self._changed:
            self.requests.append(request)
        if self.refusal is not None:
            details, oldest = self.refusal
            context.set_trailing_metadata((("riskbudget-oldest-sequence", str(oldest)),))
            context.abort(grpc.StatusCode.OUT_OF_RANGE, details)
        with self._changed:
            episode = self.episodes.popleft() if self.episodes else Episode()
            oldest = self.log[0].sequence if self.log else 1
            after = request.after_sequence
            if request.from_latest:
                after = self.log[-1].sequence if self.log else 0
        if after < oldest - 1:
            if self.oldest_metadata:
                context.set_trailing_metadata((("riskbudget-oldest-sequence", str(oldest)),))
            context.abort(
                grpc.StatusCode.OUT_OF_RANGE,
                f"after_sequence {after} is no longer kept: oldest available is {oldest}",
            )
        start = after - episode.rewind
        position = next(
            (index for index, kept in enumerate(self.log) if kept.sequence > start), len(self.log)
        )
        sent, last_sent = 0, after
        while episode.send is None or sent < episode.send:
            with self._changed:
                while position >= len(self.log) and context.is_active() and not self.stopped:
                    self._changed.wait(0.05)
                if self.stopped or not context.is_active():
                    return
                batch = self.log[position : position + self.batch_size]
            if episode.send is not None:
                batch = batch[: episode.send - sent]
            yield service_pb2.StreamRecommendationsResponse(recommendations=batch, log_id=self.log_id)
            position, sent, last_sent = position + len(batch), sent + len(batch), batch[-1].sequence
        if episode.code == grpc.StatusCode.OK:
            return
        if episode.resume_metadata:
            context.set_trailing_metadata((("riskbudget-resume-after", str(last_sent)),))
        context.abort(episode.code, episode.details)


@pytest.fixture
def log_sidecar():
    return LogSidecar()


@pytest.fixture
def log_server(log_sidecar):
    """Serve the log sidecar; `restart()` stops it and serves it again on the same port."""

    class Served:
        def __init__(self):
            self.server, self.port = serve(log_sidecar, "127.0.0.1:0")
            self.target = f"127.0.0.1:{self.port}"

        def stop(self):
            self.server.stop(grace=None).wait()

        def restart(self):
            self.stop()
            self.server, _ = serve(log_sidecar, f"127.0.0.1:{self.port}")

    served = Served()
    yield served
    log_sidecar.stop()
    served.stop()


class BlockingAsyncFeed:
    """An AsyncRecommendationFeed driven from blocking code on an event loop of
    the test's, so that one test body covers both feeds."""

    def __init__(self, loop, source, *args, sleep=None, **options):
        self._loop = loop
        if sleep is not None:
            options["sleep"] = self._async(sleep)
        if isinstance(source, BlockingAsyncClient):
            source = source._client
        self.feed = self._loop.run_until_complete(self._build(source, args, options))

    @staticmethod
    def _async(sleep):
        async def wait(seconds):
            sleep(seconds)

        return wait

    @staticmethod
    async def _build(source, args, options):
        return AsyncRecommendationFeed(source, *args, **options)

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return self._loop.run_until_complete(anext(self.feed))
        except StopAsyncIteration:
            raise StopIteration from None

    def __getattr__(self, name):
        return getattr(self.feed, name)

    def close(self):
        self._loop.run_until_complete(self.feed.close())


@pytest.fixture(params=["sync", "asyncio"])
def open_feed(request):
    """Build a feed of each kind (`open_feed.client(target)`: a client of the
    same kind to build one on); close them at teardown."""
    loop = asyncio.new_event_loop()
    opened = []

    def build(source, *args, **options):
        if request.param == "sync":
            opened.append(RecommendationFeed(source, *args, **options))
        else:
            opened.append(BlockingAsyncFeed(loop, source, *args, **options))
        return opened[-1]

    def client(target):
        if request.param == "sync":
            opened.append(RiskBudgetClient(target))
        else:
            opened.append(BlockingAsyncClient(target, loop=loop))
        return opened[-1]

    build.client = client
    yield build
    for feed_or_client in reversed(opened):
        feed_or_client.close()
    loop.close()


class Sleeps(list):
    """An injectable sleep that records the waits instead of waiting."""

    def __call__(self, seconds):
        self.append(seconds)


@pytest.fixture
def sleeps():
    return Sleeps()
