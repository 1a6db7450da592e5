"""The backtest sits on the engine alone: numpy and the stdlib at import time, the optional
extra (pandas, pyarrow, matplotlib, skfolio) only inside the functions that need it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "server" / "riskbudget_sidecar" / "backtest"
OPTIONAL = ("pandas", "pyarrow", "matplotlib", "skfolio")


def module_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


def test_the_backtest_imports_only_the_engine_numpy_and_the_stdlib_at_module_level():
    offenders = []
    for path in PACKAGE.glob("*.py"):
        for name in module_level_imports(path):
            sibling = name.startswith(".") and not name.startswith("..")
            if name.startswith(".") and not (sibling or name.startswith("..engine")):
                offenders.append(f"{path.name}: {name}")  # service, store, rpc, app: not below it
            elif name.split(".")[0] in (*OPTIONAL, "grpc", "google", "riskbudget"):
                offenders.append(f"{path.name}: {name}")
    assert offenders == []


def test_importing_the_backtest_loads_no_optional_package_and_no_transport():
    probe = ("import sys, riskbudget_sidecar.backtest, riskbudget_sidecar.backtest.report\n"
             f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(OPTIONAL) | {'grpc'}!r}))")

    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    assert loaded.stdout.strip() == "[]"
