"""Wiring: the admin port starts with the sidecar (or not), logs its URL, and refuses a taken port."""

from __future__ import annotations

import socket

import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer

from riskbudget_sidecar.app.serve import start, stop
from riskbudget_sidecar.http.server import build_app
from riskbudget_sidecar.rpc.auth import AdminAuth
from riskbudget_sidecar.service.clock import ManualClock
from riskbudget_sidecar.service.config_file import load_config
from riskbudget_sidecar.service.sidecar import RiskBudgetSidecar
from tests.rpc.conftest import T0, write_config


async def test_start_logs_http_serving_with_the_bound_url_and_exposes_it(tmp_path):
    with structlog.testing.capture_logs() as logs:
        sidecar, servers = await start(load_config(write_config(tmp_path)), clock=ManualClock(T0))
    try:
        (event,) = [entry for entry in logs if entry["event"] == "http_serving"]
        serving = next(entry for entry in logs if entry["event"] == "serving")

        assert servers.http_url == event["url"] == serving["http_url"]
        assert servers.http_url.startswith("http://127.0.0.1:") and not servers.http_url.endswith(":0")
    finally:
        await stop(sidecar, servers)


async def test_with_http_disabled_there_is_no_admin_port(tmp_path):
    sidecar, servers = await start(load_config(write_config(tmp_path, http__enabled=False)), clock=ManualClock(T0))
    try:
        assert servers.http is None and servers.http_url is None
    finally:
        await stop(sidecar, servers)


async def test_a_taken_http_port_stops_the_start_and_leaves_nothing_running(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = load_config(write_config(tmp_path, http__listen=f"127.0.0.1:{port}"))

        with pytest.raises(OSError, match=f"cannot listen on http 127.0.0.1:{port}"):
            await start(config, clock=ManualClock(T0), listen="127.0.0.1:0")


async def test_before_the_first_budget_status_is_503_and_liveness_and_metrics_answer(tmp_path):
    class Health:
        serving, shutting_down = False, False

    sidecar = RiskBudgetSidecar(load_config(write_config(tmp_path)), clock=ManualClock(T0))
    app = build_app(sidecar, health=Health(), auth=AdminAuth("token"))
    try:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            status = await client.get("/api/status")
            ready = await client.get("/readyz")
            alive = await client.get("/healthz")
            metrics = await client.get("/metrics")

            assert status.status == 503
            assert (await status.json())["error"] == "no budget has been computed yet"
            assert (ready.status, alive.status, metrics.status) == (503, 200, 200)
    finally:
        await sidecar.stop()
