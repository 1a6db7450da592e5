"""End to end: `riskbudget serve` as its own process, called over loopback by the client."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml

from riskbudget.v1 import types_pb2
from riskbudget_client import RiskBudgetClient

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 60.0


def read_events(process: subprocess.Popen, until: str, timeout: float = STARTUP_TIMEOUT) -> list[dict]:
    """JSON log lines from the process until one whose event is `until`."""
    events = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                break
            continue
        event = json.loads(line)
        events.append(event)
        if event["event"] == until:
            return events
    raise AssertionError(f"no {until!r} event; got {events}, exit code {process.poll()}")


def default_config_in(tmp_path) -> Path:
    """default.yaml on ephemeral loopback ports, its state file in tmp_path."""
    config = yaml.safe_load((ROOT / "config" / "default.yaml").read_text())
    config["sidecar"]["listen"] = "127.0.0.1:0"
    config["http"] = {"listen": "127.0.0.1:0"}
    config["store"] = {"path": str(tmp_path / "state.sqlite3")}
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def sidecar_process(tmp_path):
    path = default_config_in(tmp_path)
    env = {**os.environ, "RISKBUDGET_ADMIN_TOKEN": "e2e-token"}
    process = subprocess.Popen(
        [sys.executable, "-m", "riskbudget_sidecar.app.cli", "serve", "--config", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        serving = read_events(process, "serving")[-1]
        process.http_url = serving["http_url"]  # for the tests of the admin HTTP port
        yield process, serving["target"]
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def test_serve_starts_with_a_live_budget_and_answers_the_client(sidecar_process):
    process, target = sidecar_process

    with RiskBudgetClient(target, admin_token="e2e-token") as client:
        budget = client.get_budget().budget
        last_prices = {s.symbol: s.last_price for s in budget.symbols}
        client.publish_market_data([(symbol, price, time.time()) for symbol, price in last_prices.items()])
        decision = client.check_trade("e2e-1", "equity_momentum", "SPY", "buy", 10)
        utilization = client.get_utilization()

    assert budget.ref.version >= 1
    assert decision.decision == types_pb2.DECISION_APPROVED
    assert decision.approved_quantity == 10
    assert utilization.total.gross_exposure > 0


def test_sigterm_shuts_down_gracefully(sidecar_process):
    process, _ = sidecar_process

    process.send_signal(signal.SIGTERM)
    events = read_events(process, "stopped", timeout=30)
    code = process.wait(timeout=30)

    assert [e["event"] for e in events][:1] == ["shutting_down"]
    assert code == 0


@contextlib.contextmanager
def killed_if_left(process: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """`process`, killed at the end of the block if it is still running (a failed assertion)."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def test_serve_with_stderr_closed_still_serves(tmp_path):
    """Found by a reviewer: with stderr closed (2>&-), enabling faulthandler raised, and serve
    exited 1 before it bound anything, without a word."""
    path = default_config_in(tmp_path)
    with killed_if_left(subprocess.Popen(
            [sys.executable, "-m", "riskbudget_sidecar.app.cli", "serve", "--config", str(path)],
            stdout=subprocess.PIPE, text=True, preexec_fn=lambda: os.close(2))) as process:
        serving = read_events(process, "serving")[-1]
        stderr_is = os.readlink(f"/proc/{process.pid}/fd/2")
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)

    assert serving["target"] and code == 0
    # Not the state database or the journal, which would take the number left free: what gRPC's C
    # core writes to stderr would land in it.
    assert stderr_is == os.devnull


def test_serve_with_stdout_closed_still_serves(tmp_path):
    """Found by a reviewer: with stdout closed (`>&-`) the log, written to Python's stdout (None),
    ended the start with an AttributeError."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    path = default_config_in(tmp_path)
    socket_path = tmp_path / "run" / "s.sock"
    config = yaml.safe_load(path.read_text())
    config["sidecar"]["listen"] = f"unix:{socket_path}"
    path.write_text(yaml.safe_dump(config))
    with killed_if_left(subprocess.Popen(
            [sys.executable, "-m", "riskbudget_sidecar.app.cli", "serve", "--config", str(path)],
            stderr=subprocess.PIPE, text=True, preexec_fn=lambda: os.close(1))) as process:
        with grpc.insecure_channel(f"unix:{socket_path}") as channel:
            grpc.channel_ready_future(channel).result(timeout=20)
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)

    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert code == 0, process.stderr.read()


def test_a_client_command_with_stdout_closed_says_why_it_failed_on_stderr(tmp_path):
    """Found by a reviewer: `riskbudget status >&-` ended in an AttributeError (stdout was None);
    every command now gives a closed standard descriptor a stream first."""
    result = subprocess.run(
        [sys.executable, "-m", "riskbudget_sidecar.app.cli", "status", "--target", f"unix:{tmp_path}/none.sock"],
        stderr=subprocess.PIPE, text=True, preexec_fn=lambda: os.close(1), timeout=60)

    assert result.returncode == 1
    assert result.stderr.startswith("riskbudget status: no answer from the sidecar"), result.stderr


def test_a_fatal_signal_leaves_a_python_traceback_on_stderr(sidecar_process):
    """Found by a tester: a check journal made unwritable under the sidecar ended it with SIGBUS
    and not a line of output. Such a fault cannot be caught; it can at least be told."""
    process, _ = sidecar_process

    process.send_signal(signal.SIGBUS)
    output = process.stdout.read()  # stderr goes there too
    code = process.wait(timeout=30)

    assert code == -signal.SIGBUS
    assert "Fatal Python error: Bus error" in output
    assert "Current thread" in output or "Thread 0x" in output


def test_malformed_http_requests_leave_json_lines_without_their_bytes_and_no_traceback(sidecar_process):
    """aiohttp's own report of a request it cannot parse is a multi-line traceback on stderr that
    quotes the offending header; the sidecar's is one JSON line that does not."""
    process, _ = sidecar_process
    secret = "Bearer e2e-secret-token-part"
    host, port = process.http_url.removeprefix("http://").rsplit(":", 1)
    requests = [
        b"POST /api/rebalance HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: " + secret.encode() * 3000
        + b"\r\nContent-Length: 2\r\n\r\n{}",
        b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + secret.encode() + b"\r\n\r\n",
    ]
    for request in requests:
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            connection.sendall(request)
            assert connection.recv(100).split(b"\r\n")[0].endswith(b" 400 Bad Request")

    process.send_signal(signal.SIGTERM)
    output = process.stdout.read()  # stderr goes there too
    assert process.wait(timeout=30) == 0

    events = [json.loads(line) for line in output.splitlines()]  # every line is JSON
    assert [(event["peer"], event["error"]) for event in events if event["event"] == "http_bad_request"] == [
        ("127.0.0.1", "LineTooLong"), ("127.0.0.1", "BadHttpMessage")]
    assert "e2e-secret" not in output


def test_a_second_sidecar_on_the_same_port_refuses_to_start(sidecar_process, tmp_path):
    _, target = sidecar_process
    config = yaml.safe_load((ROOT / "config" / "default.yaml").read_text())
    config["sidecar"]["listen"] = target
    config["http"] = {"listen": "127.0.0.1:0"}
    config["store"] = {"path": str(tmp_path / "second.sqlite3")}
    path = tmp_path / "second.yaml"
    path.write_text(yaml.safe_dump(config))

    second = subprocess.run(
        [sys.executable, "-m", "riskbudget_sidecar.app.cli", "serve", "--config", str(path)],
        capture_output=True, text=True, timeout=STARTUP_TIMEOUT)

    assert second.returncode == 1
    assert "cannot start" in second.stderr


def run_cli(*args: str, target: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "riskbudget_sidecar.app.cli", *args, "--target", target],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "RISKBUDGET_ADMIN_TOKEN": "e2e-token"})


def test_the_command_line_walk_through_publishes_checks_and_reads(sidecar_process):
    _, target = sidecar_process
    with RiskBudgetClient(target) as client:
        prices = {s.symbol: s.last_price for s in client.get_budget().budget.symbols}

    published = run_cli("publish", *(f"{s}={p}" for s, p in prices.items()), target=target)
    approved = run_cli("check-trade", "--strategy", "equity_momentum", "--symbol", "SPY", "--side", "buy",
                       "--quantity", "10", "--order-id", "cli-1", target=target)
    halted = run_cli("set-trading-state", "halted", "--reason", "e2e", target=target)
    rejected = run_cli("check-trade", "--strategy", "equity_momentum", "--symbol", "SPY", "--side", "buy",
                       "--quantity", "10", target=target)
    budget = run_cli("budget", target=target)
    utilization = run_cli("utilization", "--json", target=target)

    assert published.returncode == 0 and "accepted 9 prices" in published.stdout
    assert approved.returncode == 0 and json.loads(approved.stdout)["decision"] == "DECISION_APPROVED"
    assert halted.returncode == 0 and "TRADING_STATE_HALTED" in halted.stdout
    assert rejected.returncode == 3 and "REASON_CODE_TRADING_HALTED" in rejected.stdout
    assert budget.returncode == 0 and "equity_momentum" in budget.stdout
    assert json.loads(utilization.stdout)["total"]["gross_exposure"] > 0


def test_the_operator_commands_set_list_and_clear_an_override_and_read_alerts(sidecar_process):
    _, target = sidecar_process

    made = run_cli("set-override", "--scope", "symbol", "--kind", "restrict_symbol", "--on", "EEM",
                   "--reason", "e2e", "--expires-in", "600", target=target)
    listed = run_cli("overrides", target=target)
    override_id = json.loads(made.stdout)["override"]["id"]
    rebalance = run_cli("rebalance", "--reason", "e2e", target=target)
    cleared = run_cli("clear-override", override_id, target=target)
    alerts = run_cli("alerts", "--min-severity", "info", target=target)
    status = run_cli("sidecar-status", target=target)

    assert made.returncode == 0, made.stderr
    assert [o["id"] for o in json.loads(listed.stdout)["overrides"]] == [override_id]
    assert json.loads(rebalance.stdout)["recommendation"]["triggers"] == ["RECOMMENDATION_TRIGGER_MANUAL"]
    assert json.loads(cleared.stdout)["cleared"] is True
    kinds = {a["kind"] for a in json.loads(alerts.stdout)["alerts"]}
    assert {"ALERT_KIND_OVERRIDE_SET", "ALERT_KIND_OVERRIDE_ENDED"} <= kinds
    # 1: the restriction moved equity_momentum's targets; 2: the rebalance; 3: the clearing moved them back
    assert json.loads(rebalance.stdout)["recommendation"]["sequence"] == "2"
    assert json.loads(status.stdout)["last_recommendation_sequence"] == "3"


def test_sighup_reloads_a_valid_config_and_refuses_a_broken_one_keeping_the_old(sidecar_process, tmp_path):
    process, target = sidecar_process
    path = tmp_path / "sidecar.yaml"
    config = yaml.safe_load(path.read_text())

    config["limits"]["max_order_notional"] = 1234.0
    path.write_text(yaml.safe_dump(config))
    process.send_signal(signal.SIGHUP)
    read_events(process, "config_reloaded", timeout=30)
    path.write_text("risk_budgeting: [truncated")
    process.send_signal(signal.SIGHUP)
    refused = read_events(process, "alert", timeout=30)[-1]
    with RiskBudgetClient(target) as client:
        prices = {s.symbol: s.last_price for s in client.get_budget().budget.symbols}
        client.publish_market_data([(symbol, price, time.time()) for symbol, price in prices.items()])
        decision = client.check_trade("hup-1", "equity_momentum", "SPY", "buy", 1000)
    process.send_signal(signal.SIGTERM)
    output = process.stdout.read()

    assert refused["kind"] == "config_reload_refused" and "not valid YAML" in refused["message"]
    assert decision.approved_quantity * decision.reference_price <= 1234.0
    assert types_pb2.REASON_CODE_MAX_ORDER_NOTIONAL in [r.code for r in decision.reasons]
    assert "e2e-token" not in output
