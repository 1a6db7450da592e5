"""The README's `buf curl` commands (section "Any language: buf curl through server reflection"),
read from the README and run against a real sidecar through its server reflection: the README
stays true."""

from __future__ import annotations

import json
import os
import re
import subprocess

from tests.contract import BUF, ROOT
from tests.e2e.test_crash_recovery import ADMIN_TOKEN

README_ADDRESS = "127.0.0.1:50051"


def readme_commands() -> list[str]:
    """The commands of the first sh block after the section's heading, continuation lines joined."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Any language: `buf curl` through server reflection"):]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [command.strip() for command in block.replace("\\\n", " ").splitlines()]


def run(command: str, target: str) -> str:
    """`command` in bash, on the sidecar at `target`, with this repository's buf."""
    runnable = command.replace(README_ADDRESS, target).replace("npx buf ", f"{BUF} ", 1)
    completed = subprocess.run(["bash", "-c", runnable], cwd=ROOT, capture_output=True, text=True, timeout=60,
                               env={**os.environ, "RISKBUDGET_ADMIN_TOKEN": ADMIN_TOKEN})
    assert completed.returncode == 0, f"{runnable}\nexited {completed.returncode}: {completed.stderr}"
    return completed.stdout


def test_the_readmes_buf_curl_commands_call_the_sidecar_through_reflection(tcp_sidecar):
    commands = readme_commands()

    outputs = {}  # by the RPC called, or "--list-methods"
    for command in commands:
        called = "--list-methods" if "--list-methods" in command else command.split()[-1].rsplit("/", 1)[-1]
        outputs[called] = run(command, tcp_sidecar.target)

    assert len(commands) == 4 and all(command.startswith("npx buf curl ") for command in commands)
    assert {"riskbudget.v1.RiskBudgetService/CheckTrade", "riskbudget.v1.RiskBudgetService/StreamRecommendations",
            "riskbudget.v1.RiskBudgetAdminService/TriggerRebalance"} <= set(outputs["--list-methods"].split())
    budget = json.loads(outputs["GetBudget"])["budget"]
    assert budget["ref"]["regime"].startswith("REGIME_")
    assert {strategy["strategy"] for strategy in budget["strategies"]} == {"equity_momentum", "defensive_carry"}
    decision = json.loads(outputs["CheckTrade"])
    assert (decision["clientOrderId"], decision["decision"]) == ("curl-1", "DECISION_REJECTED")
    assert [reason["code"] for reason in decision["reasons"]] == ["REASON_CODE_STALE_MARKET_DATA"]  # warm-up prices only
    recommendation = json.loads(outputs["TriggerRebalance"])["recommendation"]
    assert recommendation["triggers"] == ["RECOMMENDATION_TRIGGER_MANUAL"]
    assert recommendation["reason"] == "month end (requested by ops)"
