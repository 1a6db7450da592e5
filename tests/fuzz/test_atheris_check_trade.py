"""The coverage-guided fuzz target tests/fuzz/atheris_check_trade.py, run in a process of its
own (libFuzzer owns the process), with a fixed seed and number of runs: the same inputs on
every run. It fails on the first input whose refusal or decision breaks the contract."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

RUNS = 50_000
ROOT = Path(__file__).resolve().parents[2]


def test_no_input_in_fifty_thousand_breaks_check_trade(tmp_path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.atheris_check_trade", f"-runs={RUNS}", "-seed=1",
         # long inputs from the start: most field-by-field requests need more than a few bytes
         "-len_control=0", "-max_len=512", f"-artifact_prefix={tmp_path}/"],
        cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": "0"},  # the same paths, so the same inputs
        capture_output=True, text=True, timeout=600)

    assert completed.returncode == 0, completed.stderr[-4000:]
    assert f"Done {RUNS} runs" in completed.stderr
    assert not list(tmp_path.iterdir())  # no crashing input written
