"""A real sidecar process for the clients in other languages: on a unix socket, with a client
token, and restartable on the same state and address, also by the client under test through a
small HTTP control server."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

# config_path is a fixture: default.yaml on a unix socket, with its state in the test's directory.
from tests.e2e.test_crash_recovery import config_path, start_sidecar

CLIENT_TOKEN = "polyglot-client-token"


class RestartableSidecar:
    """`riskbudget serve` on `config_path`; started again on the same state file and socket."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.process: subprocess.Popen | None = None
        self.target = ""

    def start(self) -> None:
        self.process, self.target = start_sidecar(self.config_path)

    def kill(self) -> None:
        """SIGKILL, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


def running_sidecar(config_path: Path, sidecar_settings: dict) -> Iterator[RestartableSidecar]:
    """A sidecar on `config_path` with `sidecar_settings` in its `sidecar` section, killed at the end."""
    config = yaml.safe_load(config_path.read_text())
    config["sidecar"].update(sidecar_settings)
    config_path.write_text(yaml.safe_dump(config))
    running = RestartableSidecar(config_path)
    running.start()
    try:
        yield running
    finally:
        running.kill()


@pytest.fixture
def sidecar(config_path, tmp_path) -> Iterator[RestartableSidecar]:
    """On a unix socket, every RiskBudgetService call needing CLIENT_TOKEN."""
    token_file = tmp_path / "client.token"
    token_file.write_text(CLIENT_TOKEN)
    yield from running_sidecar(config_path, {"client_token_file": str(token_file)})


@pytest.fixture
def tcp_sidecar(config_path) -> Iterator[RestartableSidecar]:
    """On an ephemeral loopback port, as `make run` listens, with no client token."""
    yield from running_sidecar(config_path, {"listen": "127.0.0.1:0"})


@pytest.fixture
def control_url(sidecar) -> Iterator[str]:
    """POST <url>/kill and <url>/start kill the sidecar and start it again (204 once done)."""
    actions = {"/kill": sidecar.kill, "/start": sidecar.start}

    class Control(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            action = actions.get(self.path)
            if action is not None:
                action()
            self.send_response(404 if action is None else 204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            """Quiet: the Node run's own output says what it asked for."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Control)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
