"""The recommendation hub's resume: history pages, then the live queue, never a silent gap."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from riskbudget_sidecar.service import hub as hub_module
from riskbudget_sidecar.service.errors import ResumeOutOfRange
from riskbudget_sidecar.service.hub import RecommendationHub
from tests.store.builders import recommendation


class TrimmedLog:
    """A log keeping the newest `retention` recommendations, published to a hub as appended."""

    def __init__(self, retention: int) -> None:
        self.kept: list = []
        self.retention = retention
        self.hub = RecommendationHub(read_after=self.read_after, bounds=self.bounds, log_id="log",
                                     queue_size=10_000)

    def read_after(self, sequence: int, limit: int) -> list:
        return [kept for kept in self.kept if kept.sequence > sequence][:limit]

    def bounds(self) -> tuple[int, int]:
        return (self.kept[0].sequence, self.kept[-1].sequence) if self.kept else (0, 0)

    def append(self, count: int) -> None:
        for _ in range(count):
            newest = self.kept[-1].sequence if self.kept else 0
            self.kept.append(dataclasses.replace(recommendation(str(newest + 1)), sequence=newest + 1))
            del self.kept[:-self.retention]
            self.hub.publish(self.kept[-1])


async def received(stream, until: int) -> list[int]:
    sequences: list[int] = []
    while not sequences or sequences[-1] < until:
        sequences += [kept.sequence for kept in await asyncio.wait_for(anext(stream), 5)]
    return sequences


async def test_what_was_trimmed_between_history_pages_comes_from_the_live_queue(monkeypatch):
    monkeypatch.setattr(hub_module, "HISTORY_PAGE", 5)
    log = TrimmedLog(retention=5)
    log.append(5)
    stream = log.hub.subscribe(0)

    first = [kept.sequence for kept in await anext(stream)]
    log.append(10)  # 6..15 arrive while the first page is out; the log keeps 11..15

    assert first + await received(stream, 15) == list(range(1, 16))


async def test_what_was_trimmed_between_history_pages_before_it_was_queued_is_out_of_range(monkeypatch):
    monkeypatch.setattr(hub_module, "HISTORY_PAGE", 5)
    log = TrimmedLog(retention=20)
    log.append(20)  # 1..20, all kept, none in the queue
    stream = log.hub.subscribe(0)

    first = [kept.sequence for kept in await anext(stream)]
    log.append(20)  # the log now keeps 21..40: 6..20 were never sent
    with pytest.raises(ResumeOutOfRange) as lost:
        await received(stream, 40)

    assert first == [1, 2, 3, 4, 5]
    assert lost.value.oldest_available == 21
