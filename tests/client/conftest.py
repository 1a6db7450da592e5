"""A scripted sidecar served by a real gRPC server on an ephemeral loopback
port, and clients of both kinds to call it."""

import asyncio
import socket
import threading
from concurrent import futures

import grpc
import pytest

from riskbudget.v1 import risk_budget_admin_pb2 as admin_pb2
from riskbudget.v1 import risk_budget_admin_pb2_grpc as admin_grpc
from riskbudget.v1 import risk_budget_service_pb2 as service_pb2
from riskbudget.v1 import risk_budget_service_pb2_grpc as service_grpc
from riskbudget.v1 import types_pb2
from riskbudget_client import AsyncRiskBudgetClient, RiskBudgetClient

ADMIN_TOKEN = "test-admin-token"
CHECK_TRADE_TIMEOUT = 0.1


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

    def TriggerRebalance(self, request, context):
        self._receive("TriggerRebalance", request, context)
        return admin_pb2.TriggerRebalanceResponse(
            recommendation=types_pb2.Recommendation(sequence=1, reason=request.reason)
        )

    def SetOverride(self, request, context):
        self._receive("SetOverride", request, context)
        override = admin_pb2.Override()
        override.CopyFrom(request.override)
        override.id = "ovr-1"
        return admin_pb2.SetOverrideResponse(override=override)

    def ClearOverride(self, request, context):
        self._receive("ClearOverride", request, context)
        return admin_pb2.ClearOverrideResponse(cleared=True)

    def ListOverrides(self, request, context):
        self._receive("ListOverrides", request, context)
        return admin_pb2.ListOverridesResponse(overrides=[admin_pb2.Override(id="ovr-1")])

    def SetTradingState(self, request, context):
        self._receive("SetTradingState", request, context)
        return admin_pb2.SetTradingStateResponse(state=request.state, strategy=request.strategy)

    def ReloadConfig(self, request, context):
        self._receive("ReloadConfig", request, context)
        return admin_pb2.ReloadConfigResponse(reloaded=True)


class BlockingAsyncClient:
    """Runs each call of an AsyncRiskBudgetClient on a private event loop, so
    that one test body covers both clients."""

    def __init__(self, target, **options):
        self._loop = asyncio.new_event_loop()
        self._client = self._loop.run_until_complete(self._build(target, options))

    @staticmethod
    async def _build(target, options):
        return AsyncRiskBudgetClient(target, **options)

    def __getattr__(self, name):
        method = getattr(self._client, name)
        return lambda *args, **kwargs: self._loop.run_until_complete(method(*args, **kwargs))

    def close(self):
        self._loop.run_until_complete(self._client.close())
        self._loop.close()


def serve(sidecar, address):
    """Start a server for `sidecar` on `address`; return it and its port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    service_grpc.add_RiskBudgetServiceServicer_to_server(sidecar, server)
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
