"""docs/contract.md is generated from the proto's comments (tools/contract_reference.py) and names
every service, RPC, message, field, enum and enum value; an element without a comment is refused.
(`make contract-docs-check`, part of make test, fails when the committed file is out of date.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from google.protobuf.descriptor_pb2 import FileDescriptorSet

from . import BUF, ROOT

GENERATOR = ROOT / "tools" / "contract_reference.py"


def descriptor_set(tree: Path) -> bytes:
    return subprocess.run([str(BUF), "build", str(tree), "--exclude-imports", "-o", "-"],
                          cwd=ROOT, capture_output=True, check=True, timeout=60).stdout


def generate(descriptors: bytes) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(GENERATOR)], input=descriptors, capture_output=True,
                          timeout=60)


def test_the_reference_names_every_service_rpc_message_field_enum_and_value_with_its_comment():
    descriptors = descriptor_set(ROOT)
    reference = generate(descriptors).stdout.decode()

    names = []
    for file in FileDescriptorSet.FromString(descriptors).file:
        for service in file.service:
            names += [f"### {service.name}\n"] + [f"| `{method.name}` |" for method in service.method]
        for message in file.message_type:
            names += [f"### {message.name}\n"] + [f"| `{field.name}` | {field.number} |" for field in message.field]
        for enum in file.enum_type:
            names += [f"### {enum.name}\n"] + [f"| `{value.name}` | {value.number} |" for value in enum.value]
    assert len(names) > 300
    assert [name for name in names if name not in reference] == []
    assert ("| `CheckTrade` | [`CheckTradeRequest`](#checktraderequest) | [`CheckTradeResponse`](#checktraderesponse) "
            "| Pre-trade check: approve, resize or reject an order, with reasons. A rejection is a normal reply "
            "(status OK), not an error. |") in reference
    assert ("| `StreamRecommendations` | [`StreamRecommendationsRequest`](#streamrecommendationsrequest) "
            "| stream [`StreamRecommendationsResponse`](#streamrecommendationsresponse) |") in reference
    assert "| `as_of` | 6 | `google.protobuf.Timestamp` | When the utilization was measured. |" in reference
    assert "| `DECISION_RESIZED` | 2 | The order fits only at a smaller quantity, given in approved_quantity. |" in reference


def test_an_element_without_a_comment_is_refused_by_name(tmp_path):
    shutil.copytree(ROOT / "proto", tmp_path / "proto")
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    service = tmp_path / "proto" / "riskbudget" / "v1" / "risk_budget_service.proto"
    service.write_text(service.read_text().replace("  // Limit price; 0 for a market order (the last price is used).\n", "")
                       + "\n// Has one undocumented nested message.\nmessage Outer {\n  message Inner {}\n}\n")

    result = generate(descriptor_set(tmp_path))

    assert result.returncode == 1
    assert result.stderr.decode() == (
        "contract reference: no comment on: riskbudget/v1/risk_budget_service.proto: CheckTradeRequest.limit_price, "
        "riskbudget/v1/risk_budget_service.proto: Outer.Inner\n")
