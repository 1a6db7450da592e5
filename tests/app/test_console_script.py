"""The `riskbudget` console script: a SIGHUP before `serve` installs its reload handler (during the
imports and the config read) no longer ends the process; other commands keep SIGHUP's default."""

from __future__ import annotations

import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HIT_BY_SIGHUP = """
import os, signal, sys
from riskbudget_sidecar.app import cli, entry

def hit_by_sighup(args):  # where the command would begin: its imports done, nothing else
    os.kill(os.getpid(), signal.SIGHUP)
    return 0

cli._serve = cli._budget = hit_by_sighup
sys.argv = ["riskbudget", *sys.argv[1:]]
sys.exit(entry.main())
"""


def test_the_console_script_is_the_entry_that_handles_sighup_first():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]

    assert scripts["riskbudget"] == "riskbudget_sidecar.app.entry:main"


@pytest.mark.parametrize("argv, exit_code", [
    (["serve", "--config", "sidecar.yaml"], 0),
    (["budget"], -signal.SIGHUP),
], ids=["serve-lives-on", "a-client-command-still-ends"])
def test_a_sighup_before_serve_handles_it_leaves_serve_running(argv, exit_code):
    run = subprocess.run([sys.executable, "-c", HIT_BY_SIGHUP, *argv], capture_output=True, text=True)

    assert run.returncode == exit_code, run.stderr
