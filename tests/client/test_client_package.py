"""The client package stands alone: grpcio and protobuf, nothing of the server."""

import subprocess
import sys
from importlib.resources import files

import riskbudget_client


def test_importing_the_client_loads_nothing_of_the_server():
    probe = (
        "import sys, riskbudget_client\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('riskbudget_sidecar', 'numpy', 'pandas', 'pydantic', 'yaml', 'structlog')))"
    )

    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )

    assert loaded.stdout.strip() == "[]"


def test_the_client_package_is_marked_typed():
    assert files(riskbudget_client).joinpath("py.typed").is_file()
