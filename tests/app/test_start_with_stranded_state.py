"""A state holding positions or reservations the config has no place for stops the start, naming
the state file and each (strategy, symbol) pair: they would count in the book's total under no
strategy's limits, and could be neither reduced, filled nor set."""

from __future__ import annotations

import subprocess
import sys

import pytest

from riskbudget.v1 import risk_budget_service_pb2 as spb
from riskbudget.v1 import types_pb2 as pb
from riskbudget_sidecar.app.serve import start, stop
from riskbudget_sidecar.service.clock import ManualClock
from riskbudget_sidecar.service.config_file import load_config
from riskbudget_sidecar.service.errors import HoldingsOutsideConfig

from ..rpc.conftest import T0, start_harness, write_config

EXPECTED = """\
the state file {state} (store.path) holds positions or reservations that the config has no place for:
  strategy 'carry', symbol 'CCC': 1 open reservation (the config has no such strategy)
  strategy 'trend', symbol 'AAA': a position of 10 ('AAA' is not among the strategy's symbols)
Start with the config they were made under and close or release them (SetPositions, ReleaseOrder), \
or put them back in portfolio.strategies; to start afresh, move the state file away."""


@pytest.fixture
async def config_without_what_the_state_holds(tmp_path):
    """A state holding a position of trend in AAA and a reservation of carry in CCC, and a config
    that moves AAA to another strategy and renames carry."""
    harness = await start_harness(tmp_path)
    await harness.publish_last_prices()
    await harness.stub.SetPositions(spb.SetPositionsRequest(positions=[
        pb.Position(strategy="trend", symbol="AAA", quantity=10)]))
    await harness.check("o-held", 1, strategy="carry", symbol="CCC")
    await harness.channel.close()
    await stop(harness.sidecar, harness.server)
    return write_config(tmp_path, portfolio__strategies={
        "trend": {"risk_share": 0.6, "symbols": ["BBB"]},
        "carry_v2": {"risk_share": 0.4, "symbols": ["AAA", "CCC", "DDD"]}})


async def test_a_state_with_pairs_the_config_lacks_stops_the_start_naming_the_state_file_and_each_pair(
        config_without_what_the_state_holds, tmp_path):
    path = config_without_what_the_state_holds

    with pytest.raises(HoldingsOutsideConfig) as refused:
        await start(load_config(path), clock=ManualClock(T0), config_path=str(path))

    assert str(refused.value) == EXPECTED.format(state=tmp_path / "state.sqlite3")


async def test_riskbudget_serve_refuses_it_in_a_message_without_a_traceback(
        config_without_what_the_state_holds, tmp_path):
    path = config_without_what_the_state_holds

    serve = subprocess.Popen([sys.executable, "-m", "riskbudget_sidecar.app.cli", "serve", "--config", str(path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    served = any('"event": "serving"' in line for line in serve.stdout)  # read to the end: it exits
    if served:
        serve.kill()
    serve.wait()

    assert not served
    assert serve.returncode == 1
    expected = "riskbudget: cannot start: " + EXPECTED.format(state=tmp_path / "state.sqlite3") + "\n"
    assert serve.stderr.read() == expected
