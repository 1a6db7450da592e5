"""`riskbudget serve` with a log that cannot be written: its reader gone, or stalled.

Found by a tester: the log was written on the event loop, so a reader gone (EPIPE) failed
every admin call (a halt included) while checks went on being approved, and a reader that
stalled froze every call, and SIGTERM, once the pipe was full."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import grpc

from riskbudget.v1 import types_pb2
from riskbudget_client import RiskBudgetClient, RiskBudgetError

from .test_serve_process import default_config_in, killed_if_left, read_events

TOKEN = "e2e-log-token"
ALERT_WAIT = 30.0
"""Seconds to wait for the dropped lines' alert (the sidecar looks every 5 s): a hang guard."""


def serve(tmp_path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "riskbudget_sidecar.app.cli", "serve", "--config", str(default_config_in(tmp_path))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "RISKBUDGET_ADMIN_TOKEN": TOKEN})


def refused_admin_calls(target: str, count: int) -> None:
    """`count` admin calls with a wrong token: each writes audit and alert lines to the log."""
    with RiskBudgetClient(target, admin_token="not-the-token", timeout=10) as intruder:
        for _ in range(count):
            try:
                intruder.trigger_rebalance("probe", "intruder")
            except RiskBudgetError as error:
                assert error.code == grpc.StatusCode.PERMISSION_DENIED


def test_with_the_logs_reader_gone_a_halt_works_an_alert_says_so_and_it_stops_cleanly(tmp_path):
    with killed_if_left(serve(tmp_path)) as process:
        target = read_events(process, "serving")[-1]["target"]
        process.stdout.close()  # the log shipper died: every write is EPIPE from here on
        with RiskBudgetClient(target, admin_token=TOKEN, timeout=10) as client:
            prices = {s.symbol: s.last_price for s in client.get_budget().budget.symbols}
            client.publish_market_data([(symbol, price, time.time()) for symbol, price in prices.items()])
            client.set_trading_state("halted", reason="log test", set_by="pytest")
            halted = client.check_trade("log-1", "equity_momentum", "SPY", "buy", 10)
            deadline = time.monotonic() + ALERT_WAIT
            while not (alerts := [a for a in client.list_alerts().alerts
                                  if a.kind == types_pb2.ALERT_KIND_LOG_LINES_DROPPED]):
                assert time.monotonic() < deadline, "no alert of the dropped log lines"
                time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        stderr = process.stderr.read()

    assert halted.decision == types_pb2.DECISION_REJECTED
    assert [r.code for r in halted.reasons] == [types_pb2.REASON_CODE_TRADING_HALTED]
    assert "Broken pipe" in alerts[0].message
    assert code == 0, stderr
    assert "Traceback" not in stderr and "cannot start" not in stderr


def test_with_the_logs_reader_stalled_calls_are_answered_and_sigterm_ends_it(tmp_path):
    with killed_if_left(serve(tmp_path)) as process:
        target = read_events(process, "serving")[-1]["target"]
        refused_admin_calls(target, 600)  # far more lines than the pipe holds; nobody reads them
        with RiskBudgetClient(target, admin_token=TOKEN, timeout=10) as client:
            prices = {s.symbol: s.last_price for s in client.get_budget().budget.symbols}
            client.publish_market_data([(symbol, price, time.time()) for symbol, price in prices.items()])
            decision = client.check_trade("log-2", "equity_momentum", "SPY", "buy", 10)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)  # the last lines are given up after 2 s

    assert decision.decision == types_pb2.DECISION_APPROVED
    assert code == 0
