"""`make breaking-proto` checks the contract against the contract as released
(proto/released/riskbudget-v1.binpb): a change that would break existing clients fails it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from . import ROOT

SERVICE_PROTO = Path("proto/riskbudget/v1/risk_budget_service.proto")
TYPES_PROTO = Path("proto/riskbudget/v1/types.proto")
LIMIT_PRICE = "  double limit_price = 6;\n"


def breaking_check(tree: Path) -> subprocess.CompletedProcess:
    """The Makefile's own target, on the contract in `tree`."""
    return subprocess.run(["make", "-s", "breaking-proto", f"PROTO_TREE={tree}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def changed_contract(tmp_path: Path, path: Path, old: str, new: str) -> Path:
    """A copy of the contract (proto/ and buf.yaml) with `old` replaced by `new` in `path`."""
    shutil.copytree(ROOT / "proto", tmp_path / "proto")
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    source = (tmp_path / path).read_text()
    assert source.count(old) == 1
    (tmp_path / path).write_text(source.replace(old, new))
    return tmp_path


def test_the_contract_as_it_stands_breaks_no_client_of_the_released_one():
    result = breaking_check(ROOT)

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("new, reported", [
    ("", 'Previously present field "6" with name "limit_price" on message "CheckTradeRequest" was deleted.'),
    ("  double limit_price = 16;\n",
     'Previously present field "6" with name "limit_price" on message "CheckTradeRequest" was deleted.'),
    ("  float limit_price = 6;\n",
     'Field "6" with name "limit_price" on message "CheckTradeRequest" changed type from "double" to "float".'),
], ids=["deleted", "renumbered", "retyped"])
def test_a_field_change_that_breaks_released_clients_fails_the_check(tmp_path, new, reported):
    tree = changed_contract(tmp_path, SERVICE_PROTO, LIMIT_PRICE, new)

    result = breaking_check(tree)

    assert result.returncode != 0
    assert f"{tree / SERVICE_PROTO}:" in result.stdout
    assert reported in result.stdout


def test_a_message_moved_to_another_file_fails_the_check_because_generated_code_would_move(tmp_path):
    # FILE, the strictest rule set: Go, Java and C++ generate code per file, so a type that
    # changes files changes its import for their clients, though the wire format stays.
    source = (ROOT / SERVICE_PROTO).read_text()
    period = re.search(r"// A period spent in one regime\.\nmessage RegimePeriod \{.*?\n\}\n\n", source, re.S).group(0)
    tree = changed_contract(tmp_path, SERVICE_PROTO, period, "")
    with (tree / TYPES_PROTO).open("a") as types:
        types.write("\n" + period.rstrip() + "\n")

    result = breaking_check(tree)

    assert result.returncode != 0
    assert 'Previously present message "RegimePeriod" was deleted from file.' in result.stdout
