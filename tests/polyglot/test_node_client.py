"""The Node.js client (client/node): its own tests under Node's test runner, against a scripted
server and against a real sidecar process that they may kill and restart, and its example."""

from __future__ import annotations

import os
import subprocess
import time

import yaml

from riskbudget_client import RiskBudgetClient
from tests.e2e.test_crash_recovery import ADMIN_TOKEN
from tests.e2e.test_serve_process import ROOT

from .conftest import CLIENT_TOKEN

NODE_CLIENT = ROOT / "client" / "node"
NODE_TIMEOUT = 100.0


def run_node(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`node ARGS` in client/node; its whole output in the assertion message when it fails."""
    completed = subprocess.run(
        ["node", *args], cwd=NODE_CLIENT, env={**os.environ, **(env or {})},
        capture_output=True, text=True, timeout=NODE_TIMEOUT)
    assert completed.returncode == 0, (
        f"node {' '.join(args)} exited {completed.returncode}\n"
        f"--- stdout\n{completed.stdout}\n--- stderr\n{completed.stderr}")
    return completed


def sidecar_environment(sidecar, control_url: str = "") -> dict[str, str]:
    return {
        "RISKBUDGET_TARGET": sidecar.target,
        "RISKBUDGET_CLIENT_TOKEN": CLIENT_TOKEN,
        "RISKBUDGET_ADMIN_TOKEN": ADMIN_TOKEN,
        "RISKBUDGET_CONTROL_URL": control_url,
    }


def test_the_node_client_fails_closed_and_resumes_against_a_scripted_server():
    completed = run_node("--test", "test/unit/")

    assert "# fail 0" in completed.stdout


def test_the_node_gate_approves_resizes_and_rejects_and_fails_closed_against_a_real_sidecar(
        sidecar, control_url):
    completed = run_node("--test", "test/sidecar/gate.test.js", env=sidecar_environment(sidecar, control_url))

    assert "# pass 6" in completed.stdout


def test_the_node_feed_resumes_across_a_sidecar_restart_with_no_gap_or_duplicate(sidecar, control_url):
    completed = run_node("--test", "test/sidecar/feed.test.js", env=sidecar_environment(sidecar, control_url))

    assert "# pass 1" in completed.stdout


def test_the_node_feed_refuses_a_checkpoint_of_another_recommendation_log(sidecar, control_url):
    state_path = yaml.safe_load(sidecar.config_path.read_text())["store"]["path"]
    completed = run_node("--test", "test/sidecar/feed_log.test.js",
                         env={**sidecar_environment(sidecar, control_url), "RISKBUDGET_STATE_PATH": state_path})

    assert "# pass 3" in completed.stdout


def test_the_node_example_checks_an_order_and_follows_the_feed(sidecar):
    with RiskBudgetClient(sidecar.target, client_token=CLIENT_TOKEN, admin_token=ADMIN_TOKEN) as client:
        budget = client.get_budget().budget
        client.publish_market_data([(symbol.symbol, symbol.last_price, time.time()) for symbol in budget.symbols])
        checkpoint = client.get_status().last_recommendation_sequence
        for reason in ("first", "second"):
            client.trigger_rebalance(reason, "polyglot test")

    completed = run_node(
        "examples/gate_and_feed.js", "--target", sidecar.target, "--symbol", "SPY", "--quantity", "10",
        "--follow", "2", "--after", str(checkpoint), env={"RISKBUDGET_CLIENT_TOKEN": CLIENT_TOKEN})

    assert completed.stdout.splitlines() == [
        "DECISION_APPROVED: send 10",
        f"recommendation {checkpoint + 1} [MANUAL] first (requested by polyglot test): 9 target weights",
        f"recommendation {checkpoint + 2} [MANUAL] second (requested by polyglot test): 9 target weights",
    ]
