"""Fan-out of recommendations to stream subscribers, with resume from the log.

A subscriber registers its queue *before* it reads the history it missed, then
drains the queue skipping what the history already covered: so it gets every
recommendation after its resume point exactly once, in order, even while new
ones arrive. Each queue is bounded; a subscriber that falls behind is cut off
(its stream ends with the sequence to resume from) and never slows the others.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable

from ..engine.types import Recommendation
from .errors import ResumeOutOfRange, ShuttingDown, StreamEnded, SubscriberOverflow

HISTORY_PAGE = 500


@dataclass(eq=False)
class _Subscriber:
    """Its queue is unbounded so that an end marker always fits; the bound is enforced on put."""

    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    ended: bool = False


class RecommendationHub:
    """Lives on the event loop: publish() and subscribe() are called there only."""

    def __init__(self, *, read_after: Callable[[int, int], list[Recommendation]],
                 bounds: Callable[[], tuple[int, int]], log_id: str, queue_size: int) -> None:
        self._read_after = read_after
        self._bounds = bounds
        self.log_id = log_id
        self._queue_size = queue_size
        self._subscribers: set[_Subscriber] = set()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def lags(self) -> list[int]:
        """How many recommendations each subscriber has yet to receive."""
        return [subscriber.queue.qsize() for subscriber in self._subscribers]

    def publish(self, recommendation: Recommendation) -> None:
        for subscriber in self._subscribers:
            if subscriber.ended:
                continue
            if subscriber.queue.qsize() >= self._queue_size:
                self._end(subscriber, SubscriberOverflow)
            else:
                subscriber.queue.put_nowait(recommendation)

    def end_streams(self, why: type[StreamEnded] = ShuttingDown) -> None:
        """Every stream attached now ends with its resume point, `why`; later ones are taken."""
        for subscriber in self._subscribers:
            self._end(subscriber, why)

    @staticmethod
    def _end(subscriber: _Subscriber, why: type[StreamEnded]) -> None:
        if not subscriber.ended:
            subscriber.ended = True
            subscriber.queue.put_nowait(why)

    async def subscribe(self, after_sequence: int, *, from_latest: bool = False, log_id: str = ""
                        ) -> AsyncIterator[list[Recommendation]]:
        """Batches in sequence order: the missed ones from the log, then live ones. A `log_id`
        other than this log's: `after_sequence` counts in another log, so it is out of range."""
        subscriber = _Subscriber()
        self._subscribers.add(subscriber)
        try:
            oldest, newest = self._bounds()
            if from_latest:
                after_sequence = newest
            elif log_id and log_id != self.log_id:
                raise ResumeOutOfRange(after_sequence, oldest, newest, other_log=(log_id, self.log_id))
            elif after_sequence > newest or (oldest and after_sequence + 1 < oldest):
                raise ResumeOutOfRange(after_sequence, oldest, newest)
            last = after_sequence
            while page := self._read_after(last, HISTORY_PAGE):
                if page[0].sequence != last + 1:  # trimmed while the pages before were sent: the
                    break  # queue has the rest if it came since this subscriber registered, else a gap
                last = page[-1].sequence
                yield page
            while True:
                item = await subscriber.queue.get()
                batch = [item]
                while not subscriber.queue.empty():
                    batch.append(subscriber.queue.get_nowait())
                live = []
                for entry in batch:
                    if isinstance(entry, type) or entry.sequence > last + 1:
                        if live:
                            yield live
                        if isinstance(entry, type):  # the stream ends: why, with its resume point
                            raise entry(last)
                        oldest, newest = self._bounds()  # trimmed while history was sent: never sent
                        raise ResumeOutOfRange(last, oldest, newest)
                    if entry.sequence > last:
                        live.append(entry)
                        last = entry.sequence
                if live:
                    yield live
        finally:
            self._subscribers.discard(subscriber)
