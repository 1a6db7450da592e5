"""The layering rules of DESIGN.md, enforced."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "server" / "riskbudget_sidecar"
TRANSPORT = ("grpc", "google.protobuf", "riskbudget.v1", "grpc_status", "grpc_health")


def imported_modules(path: Path) -> set[str]:
    """Absolute module names a file imports; relative ones resolved against its package."""
    package = [path.parent.parent.name, path.parent.name] if path.parent != PACKAGE else [PACKAGE.name]
    package = [part for part in package if part not in ("server", "client")]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) + 1 - node.level]
            names.add(".".join(base + ([node.module] if node.module else [])))
    return names


def test_engine_source_imports_no_transport():
    offenders = {
        f"{path.name}: {name}"
        for path in (PACKAGE / "engine").glob("*.py")
        for name in imported_modules(path)
        if name.startswith(TRANSPORT)
    }

    assert offenders == set()


def test_importing_the_engine_loads_no_grpc_or_protobuf():
    modules = [f"riskbudget_sidecar.engine.{p.stem}" for p in (PACKAGE / "engine").glob("*.py")
               if p.stem != "__init__"]
    probe = ("import sys, importlib\n"
             f"for m in {modules!r}: importlib.import_module(m)\n"
             "print(sorted(m for m in sys.modules if m.startswith(('grpc', 'google.protobuf'))))")

    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    assert loaded.stdout.strip() == "[]"


def test_engine_and_store_never_read_the_clock():
    clock_reads = ("time.time", "time.monotonic", "datetime.now", "datetime.utcnow")
    offenders = [
        path.name for layer in ("engine", "store") for path in (PACKAGE / layer).glob("*.py")
        if any(call in path.read_text() for call in clock_reads)
    ]

    assert offenders == []


def test_lower_layers_never_import_upper_ones():
    order = ["engine", "store", "service", "rpc", "http", "app"]
    offenders = []
    for rank, layer in enumerate(order):
        upper = tuple(f"riskbudget_sidecar.{u}" for u in order[rank + 1:])
        for path in (PACKAGE / layer).glob("*.py"):
            offenders += [f"{layer}/{path.name} imports {name}"
                          for name in imported_modules(path) if name.startswith(upper)]

    assert offenders == []


def test_client_package_depends_on_nothing_of_the_server():
    client = Path(__file__).resolve().parents[1] / "client" / "riskbudget_client"
    offenders = [f"{path.name}: {name}" for path in client.glob("*.py")
                 for name in imported_modules(path) if name.startswith("riskbudget_sidecar")]

    assert offenders == []


def test_every_name_a_module_exports_exists():
    client = Path(__file__).resolve().parents[1] / "client" / "riskbudget_client"
    modules = [f"{package.name}.{'.'.join(path.relative_to(package).with_suffix('').parts)}"
               for package in (PACKAGE, client) for path in package.rglob("*.py")
               if path.stem != "__init__" and "__all__" in path.read_text()]
    probe = ("import importlib\n"
             f"for m in {modules!r}:\n"
             "    module = importlib.import_module(m)\n"
             "    for name in module.__all__:\n"
             "        if not hasattr(module, name): print(f'{m}.{name}')")

    missing = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    assert modules and missing.stdout.split() == []
