"""/healthz and /readyz agree with grpc.health.v1: both read what the gRPC server set."""

from __future__ import annotations

import aiohttp
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from riskbudget_sidecar.app.serve import stop
from tests.rpc.conftest import start_harness

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def grpc_health(harness) -> int:
    reply = await health_pb2_grpc.HealthStub(harness.channel).Check(health_pb2.HealthCheckRequest(service=""))
    return reply.status


async def http_status(http, path: str) -> tuple[int, dict]:
    async with http.get(path) as response:
        return response.status, await response.json()


async def test_while_serving_both_say_ok_and_grpc_says_serving(harness, http):
    assert await grpc_health(harness) == SERVING
    assert await http_status(http, "/healthz") == (200, {"status": "ok"})
    assert await http_status(http, "/readyz") == (200, {"status": "SERVING"})


async def test_when_the_sidecar_cannot_serve_checks_readyz_follows_grpc_and_liveness_stays(harness, http):
    await harness.server.grpc.set_serving(False)  # what the store's outage listener does

    assert await grpc_health(harness) == NOT_SERVING
    assert await http_status(http, "/readyz") == (503, {"status": "NOT_SERVING"})
    assert await http_status(http, "/healthz") == (200, {"status": "ok"})

    await harness.server.grpc.set_serving(True)

    assert await grpc_health(harness) == SERVING
    assert (await http_status(http, "/readyz"))[0] == 200


async def test_once_shutdown_begins_both_say_503_and_grpc_says_not_serving_for_good(harness, http):
    await harness.server.grpc.begin_shutdown()  # the first step of app.serve.stop
    await harness.server.grpc.set_serving(True)  # a late availability change cannot undo it

    assert await grpc_health(harness) == NOT_SERVING
    assert await http_status(http, "/healthz") == (503, {"status": "shutting_down"})
    assert await http_status(http, "/readyz") == (503, {"status": "NOT_SERVING"})


async def test_after_stop_the_admin_port_no_longer_listens(tmp_path):
    running = await start_harness(tmp_path)
    url = running.server.http_url
    await running.channel.close()

    await stop(running.sidecar, running.server)

    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            async with session.get(url + "/healthz"):
                pass
