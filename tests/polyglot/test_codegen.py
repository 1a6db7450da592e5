"""The buf generate templates in examples/codegen (README, "Go, Java and C++ with buf generate")
generate messages and gRPC client stubs; the Java output compiles with javac and the C++
headers with g++. Go code is generated but not compiled: there is no Go toolchain here. The
plugins, jars and headers are Debian's (make codegen-tools)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from riskbudget.v1 import risk_budget_admin_pb2, risk_budget_service_pb2, types_pb2
from tests.contract import BUF, ROOT

TEMPLATES = ROOT / "examples" / "codegen"
FILES = (types_pb2.DESCRIPTOR, risk_budget_service_pb2.DESCRIPTOR, risk_budget_admin_pb2.DESCRIPTOR)
MESSAGES = sorted(name for file in FILES for name in file.message_types_by_name)
ENUMS = sorted(name for file in FILES for name in file.enum_types_by_name)
JAVA_CLASSPATH = ":".join(f"/usr/share/java/{jar}.jar" for jar in (
    "protobuf", "grpc-api", "grpc-stub", "grpc-protobuf", "guava", "geronimo-annotation-1.3-spec"))


def run(*command: str | Path, cwd: Path = ROOT) -> None:
    completed = subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True, text=True,
                               timeout=300)
    assert completed.returncode == 0, f"{command} exited {completed.returncode}:\n{completed.stdout}{completed.stderr}"


@pytest.fixture
def generate(tmp_path):
    def generate(language: str) -> Path:
        run(BUF, "generate", "--template", TEMPLATES / f"buf.gen.{language}.yaml", "-o", tmp_path)
        return tmp_path / "gen" / language / ("com/riskbudget/v1" if language == "java" else "riskbudget/v1")
    return generate


def test_the_go_template_generates_every_message_and_both_client_stubs(generate):
    package = generate("go")

    assert sorted(path.name for path in package.iterdir()) == [
        "risk_budget_admin.pb.go", "risk_budget_admin_grpc.pb.go", "risk_budget_service.pb.go",
        "risk_budget_service_grpc.pb.go", "types.pb.go"]
    sources = {path.name: path.read_text() for path in package.iterdir()}
    messages = "".join(text for name, text in sources.items() if "_grpc" not in name)
    assert all(f"\ntype {name} struct {{" in messages for name in MESSAGES)
    assert all(f"\ntype {name} int32" in messages for name in ENUMS)
    assert all("\npackage riskbudgetv1\n" in text for text in sources.values())  # managed mode's go_package
    assert "func NewRiskBudgetServiceClient(" in sources["risk_budget_service_grpc.pb.go"]
    assert "func NewRiskBudgetAdminServiceClient(" in sources["risk_budget_admin_grpc.pb.go"]


def test_the_java_template_generates_every_message_and_both_stubs_and_they_compile(generate, tmp_path):
    package = generate("java")
    classes = tmp_path / "classes"

    run("javac", "-nowarn", "-d", classes, "-cp", JAVA_CLASSPATH, *sorted(package.glob("*.java")))

    compiled = {path.stem for path in (classes / "com/riskbudget/v1").glob("*.class")}
    assert set(MESSAGES) | set(ENUMS) <= compiled
    assert {"RiskBudgetServiceGrpc$RiskBudgetServiceBlockingStub",
            "RiskBudgetAdminServiceGrpc$RiskBudgetAdminServiceBlockingStub"} <= compiled


def test_the_cpp_template_generates_every_message_and_both_stubs_and_the_headers_compile(generate, tmp_path):
    package = generate("cpp")
    headers = sorted(path.relative_to(package.parents[1]) for path in package.glob("*.h"))
    source = tmp_path / "all_headers.cc"
    source.write_text("".join(f'#include "{header}"\n' for header in headers))

    run("g++", "-std=c++17", "-fsyntax-only", "-I", package.parents[1], source)

    declarations = "".join((package / name).read_text() for name in ("types.pb.h", "risk_budget_service.pb.h",
                                                                      "risk_budget_admin.pb.h"))
    assert all(f"class {name} final" in declarations for name in MESSAGES)
    assert all(f"enum {name} : int" in declarations for name in ENUMS)
    assert "class RiskBudgetService final" in (package / "risk_budget_service.grpc.pb.h").read_text()
    assert "class RiskBudgetAdminService final" in (package / "risk_budget_admin.grpc.pb.h").read_text()
