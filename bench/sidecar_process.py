"""`riskbudget serve` as a child process on a generated config, for the gRPC benchmarks.

The config starts from config/default.yaml and is made safe to run beside anything
else: loopback only, ephemeral ports (the real ones are read from the `serving` log
event), state and logs in the caller's directory. The process is stopped on leaving
the `with` block, also on an error.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
RISKBUDGET = Path(sys.executable).with_name("riskbudget")
"""The console script installed beside the interpreter running the benchmark (.venv/bin)."""
START_TIMEOUT = 180.0
STOP_TIMEOUT = 10.0


@dataclasses.dataclass(frozen=True)
class ThreadCpu:
    """Nanoseconds each thread of a process has run on a CPU, from /proc schedstat (finer
    than utime's clock ticks)."""

    pid: int
    ran_ns: dict[int, int]
    """By thread id; the main thread's id is the pid (the sidecar's event loop runs there)."""

    @classmethod
    def read(cls, pid: int) -> ThreadCpu:
        ran = {}
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                ran[int(tid)] = int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
            except FileNotFoundError:  # the thread ended between the listing and the read
                continue
        return cls(pid, ran)

    def since(self, earlier: ThreadCpu) -> tuple[int, int]:
        """(main thread, all other threads) ns run between `earlier` and this reading; a
        thread that ended in between counts for nothing, one that started for all it ran."""
        used = {tid: ns - earlier.ran_ns.get(tid, 0) for tid, ns in self.ran_ns.items()}
        main = used.pop(self.pid, 0)
        return main, sum(used.values())


def symbol_names(count: int) -> list[str]:
    return [f"S{index:04d}" for index in range(count)]


def merged(base: dict, changes: dict) -> dict:
    """`base` with `changes` applied, nested dicts key by key (neither argument is modified)."""
    result = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def bench_config(directory: Path, *, listen: str, store: str, symbols: int | None = None,
                 changes: dict | None = None) -> dict:
    """default.yaml on ephemeral loopback ports with its state in `directory`.

    With `symbols`, the universe is that many synthetic symbols split between the two
    default strategies, the first one the regime benchmark. `changes` come last.
    """
    config = yaml.safe_load((ROOT / "config" / "default.yaml").read_text())
    config = merged(config, {
        "sidecar": {"listen": listen},
        "http": {"listen": "127.0.0.1:0"},
        "store": {"backend": store, "path": str(directory / "state.sqlite3")},
    })
    if symbols is not None:
        names = symbol_names(symbols)
        first, second = list(config["portfolio"]["strategies"])
        half = max(len(names) // 2, 1)
        config["portfolio"]["strategies"][first]["symbols"] = names[:half]
        config["portfolio"]["strategies"][second]["symbols"] = names[half:] or names[:1]
        config["regime"]["benchmark"] = names[0]
    return merged(config, changes or {})


class SidecarProcess:
    """A running sidecar: `target` (host:port or unix:/path) once started, `pid`, its memory."""

    def __init__(self, config: dict, directory: Path, cpus: frozenset[int] | None = None) -> None:
        """`cpus`: the CPUs the process (every thread of it) may run on; None, any."""
        self._config = config
        self._directory = directory
        self._cpus = cpus
        self._log_path = directory / "sidecar.log"
        self._process: subprocess.Popen | None = None
        self.target = ""
        self.startup_seconds = 0.0

    def __enter__(self) -> SidecarProcess:
        self._directory.mkdir(parents=True, exist_ok=True)
        config_path = self._directory / "sidecar.yaml"
        config_path.write_text(yaml.safe_dump(self._config))
        began = time.monotonic()
        with self._log_path.open("w") as log:  # a file, not a pipe: a full pipe would stall the sidecar
            self._process = subprocess.Popen([str(RISKBUDGET), "serve", "--config", str(config_path)],
                                             stdout=log, stderr=subprocess.STDOUT, cwd=self._directory,
                                             preexec_fn=None if self._cpus is None else self._pin)
        try:
            self.target = self._wait_for_event("serving")["target"]
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def _pin(self) -> None:
        """In the child before exec: its threads, all started later, inherit the affinity."""
        os.sched_setaffinity(0, self._cpus)

    @property
    def pid(self) -> int:
        assert self._process is not None, "not started"
        return self._process.pid

    def thread_cpu(self) -> ThreadCpu:
        return ThreadCpu.read(self.pid)

    def memory_mb(self) -> dict[str, float]:
        """Resident memory now (VmRSS) and at its peak (VmHWM), in MiB, from /proc."""
        fields = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) / 1024  # the kernel reports kB
        return {"vm_rss_mb": round(fields["VmRSS"], 1), "vm_hwm_mb": round(fields["VmHWM"], 1)}

    def stop(self) -> None:
        """SIGTERM (a graceful stop), SIGKILL if it does not exit in time."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])

    def _wait_for_event(self, name: str) -> dict:
        """The first JSON log event called `name`; fails if the process exits or times out first."""
        deadline = time.monotonic() + START_TIMEOUT
        pending = b""
        with self._log_path.open("rb") as log:
            while time.monotonic() < deadline:
                pending += log.readline()
                if not pending.endswith(b"\n"):  # nothing new yet, or a line still being written
                    if self._process.poll() is not None:
                        raise RuntimeError(f"the sidecar exited with {self._process.returncode}:\n"
                                           f"{self.log_tail()}")
                    time.sleep(0.02)
                    continue
                line, pending = pending, b""
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if event.get("event") == name:
                    return event
        raise TimeoutError(f"no {name!r} event within {START_TIMEOUT:.0f} s:\n{self.log_tail()}")
