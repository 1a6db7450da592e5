"""A real sidecar (gRPC and the admin HTTP port on ephemeral loopback ports) and an HTTP client."""

from __future__ import annotations

import aiohttp
import pytest

from riskbudget_sidecar.app.serve import stop
from tests.rpc.conftest import ADMIN_TOKEN, start_harness

ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def harness(tmp_path):
    running = await start_harness(tmp_path)
    yield running
    await running.channel.close()
    await stop(running.sidecar, running.server)


@pytest.fixture
async def http(harness):
    """A client of the harness's admin HTTP port: paths are relative to its URL."""
    async with aiohttp.ClientSession(base_url=harness.server.http_url) as session:
        yield session
