"""The admin HTTP port sits beside rpc: it may use service (and rpc's converters and auth); nothing uses it."""

from __future__ import annotations

import ast

from tests.test_layers import PACKAGE, imported_modules

HTTP = "riskbudget_sidecar.http"


def test_no_lower_layer_imports_the_http_package():
    offenders = [f"{layer}/{path.name} imports {name}"
                 for layer in ("engine", "store", "service", "rpc")
                 for path in (PACKAGE / layer).glob("*.py")
                 for name in imported_modules(path) if name.startswith(HTTP)]

    assert offenders == []


def rpc_modules_used(path) -> set[str]:
    """`from ..rpc import converters` and `from ..rpc.auth import AdminAuth` alike, as rpc module names."""
    used = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 2 and node.module == "rpc":
            used.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 2 and (node.module or "").startswith("rpc."):
            used.add(node.module.split(".", 1)[1])
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            used.update(n for n in names if n.startswith("riskbudget_sidecar.rpc"))
    return used


def test_the_http_package_takes_from_rpc_only_the_converters_and_auth():
    used = set().union(*(rpc_modules_used(path) for path in (PACKAGE / "http").glob("*.py")))

    assert used == {"converters", "auth"}
    assert not any(name.startswith("riskbudget_sidecar.app") for path in (PACKAGE / "http").glob("*.py")
                   for name in imported_modules(path))
