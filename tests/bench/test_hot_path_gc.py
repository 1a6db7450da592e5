"""The garbage collector as `riskbudget serve` sets it, and bench/hot_path.py's measure of it
in a small run: checked for what it reports and that it leaves the collector as it found it,
never for speed."""

from __future__ import annotations

import gc

import pytest

from bench import hot_path
from riskbudget_sidecar.app.serve import GC_THRESHOLDS, tune_garbage_collector


@pytest.fixture
def collector_restored():
    yield
    gc.unfreeze()
    gc.set_threshold(*hot_path.PYTHON_DEFAULT_GC_THRESHOLDS)


def test_serving_freezes_what_start_up_built_and_collects_less_often(collector_restored) -> None:
    built_at_start_up = [object() for _ in range(3)]

    tune_garbage_collector()

    assert gc.get_threshold() == GC_THRESHOLDS
    assert GC_THRESHOLDS[0] > hot_path.PYTHON_DEFAULT_GC_THRESHOLDS[0]
    assert gc.get_freeze_count() >= len(built_at_start_up)


@pytest.mark.parametrize("tuned", [False, True])
async def test_the_collector_measure_reports_each_generation_and_restores_the_default(
        tuned, tmp_path, collector_restored) -> None:
    callbacks_before = list(gc.callbacks)

    report = await hot_path.collector_pauses(tuned, 300, str(tmp_path))

    assert report["checks"] == 300
    assert set(report["collections_by_generation"]) == {0, 1, 2}
    assert 0.0 <= report["share_of_check_time"] < 1.0
    assert report["longest_pause_ms"] >= 0.0
    assert gc.get_threshold() == hot_path.PYTHON_DEFAULT_GC_THRESHOLDS
    assert gc.get_freeze_count() == 0
    assert gc.callbacks == callbacks_before
