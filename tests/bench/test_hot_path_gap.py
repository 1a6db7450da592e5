"""bench/hot_path.py's checks with a gap before each, the event loop asleep or spinning: checked
for what the run does (each gap taken, one latency per check), never for speed."""

from __future__ import annotations

import time

import pytest

from bench import hot_path


@pytest.mark.parametrize("gap", ["idle", "busy"])
async def test_each_check_comes_after_the_gap(gap, tmp_path, monkeypatch) -> None:
    gaps_taken = []
    pause = hot_path.pause_between_checks

    async def counted(kind: str, seconds: float) -> None:
        began = time.perf_counter()
        await pause(kind, seconds)
        gaps_taken.append((kind, time.perf_counter() - began >= seconds - 1e-6))  # asyncio may wake a clock tick early

    monkeypatch.setattr(hot_path, "pause_between_checks", counted)

    latencies = await hot_path.check_latencies("memory", 30, str(tmp_path), "", gap, 0.0005)

    assert len(latencies) == 30 and all(latency > 0 for latency in latencies)
    assert gaps_taken == [(gap, True)] * 30

