"""A recommendation feed that survives disconnects: how a rebalancer consumes
StreamRecommendations.

The sidecar keeps a log of recommendations with strictly increasing sequence
numbers (never reused, also across restarts). A subscriber asks for everything
after the last sequence it handled and gets it in order, then live ones. The
feed builds on that:

- it yields recommendations one at a time, in sequence order, and records the
  sequence of each one it yields in `last_sequence`: once the caller asks for
  the next, the one before counts as handled;
- when the stream breaks (UNAVAILABLE, CANCELLED, DEADLINE_EXCEEDED,
  RESOURCE_EXHAUSTED because the subscriber fell behind, a refused connection,
  or the server ending the stream) it waits (exponential backoff with jitter)
  and subscribes again after `last_sequence`, so nothing is missed and nothing
  is handled twice;
- a recommendation at or below `last_sequence` is dropped (counted in
  `duplicates_dropped`); one that skips a sequence raises `FeedGapError`: the
  feed never skips silently;
- when the sidecar refuses its resume point (OUT_OF_RANGE: the recommendations
  it needs are no longer kept, or it counts in another log, or it is ahead of the
  newest recommendation), it raises `RecommendationsLost`, whose message starts
  with which of these; any other failure (UNIMPLEMENTED, UNAUTHENTICATED, ...)
  raises `RiskBudgetError`. Either ends the feed.

Checkpointing: persist `recommendation.sequence` (or `feed.last_sequence`)
after handling each recommendation, with `feed.log_id`, and pass them back as
`after_sequence` and `log_id` on the next start. The log id names the log the
sequence counts in: a sidecar on a new or replaced state file (or the memory
store, restarted) starts another log, numbered from 1 again, and a checkpoint
of the old log raises `RecommendationsLost` there instead of skipping the new
log's recommendations up to it. A feed started without a log id learns it from
the sidecar (`GetStatus`) before it first resumes after a sequence, or from the
first message when it starts from the beginning, and checks it from then on. With no checkpoint, `after_sequence=0` asks for every
recommendation since the first; once the log was trimmed that raises
`RecommendationsLost` too (some are gone), so a consumer without a checkpoint
starts from `max(client.get_status().oldest_recommendation_sequence - 1, 0)` for every
one still kept, or with `from_latest=True` for the ones made from now on: the
feed takes the newest sequence and its log from `GetStatus` just before it
first subscribes, and from then on is a feed resuming after that sequence in
that log (a disconnect before the next recommendation misses none). A consumer
starting so has no past to fold in: it reads what it needs of the present from
the sidecar (`get_budget`).

Resyncing after `RecommendationsLost`: the recommendations between your
checkpoint and `error.oldest_available` are gone, so state you built by folding
them in is stale. Each recommendation carries a complete target and current
allocation, so a consumer that only needs the newest picture (a rebalancer)
resyncs by rebuilding its state from the sidecar (`get_budget`) and starting a
new feed after `client.get_status().last_recommendation_sequence - 1` (the newest
one first) or after `error.resume_after` (everything still kept). A consumer
that needs every recommendation cannot get the lost ones back and must treat it
as an incident.

`RecommendationFeed` is a blocking iterator (its `close()` may be called from
another thread); `AsyncRecommendationFeed` is its asyncio twin. Both share one
policy (`_FeedPolicy`) and differ only in how they read and wait.
"""

from __future__ import annotations

import asyncio
import logging
import math
import numbers
import random as random_module
import re
import reprlib
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import grpc

from riskbudget.v1 import risk_budget_service_pb2 as service_pb2
from riskbudget.v1 import types_pb2
from riskbudget_client._common import RiskBudgetError, flag
from riskbudget_client.aio import AsyncRiskBudgetClient
from riskbudget_client.sync import RiskBudgetClient

logger = logging.getLogger(__name__)

OLDEST_SEQUENCE_METADATA = "riskbudget-oldest-sequence"
"""Trailing metadata of OUT_OF_RANGE: the oldest sequence the sidecar still keeps."""

RESUME_AFTER_METADATA = "riskbudget-resume-after"
"""Trailing metadata of RESOURCE_EXHAUSTED: the last sequence sent to the slow subscriber."""

RECONNECT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
"""Statuses after which the feed reconnects (a refused connection is UNAVAILABLE)."""

_OLDEST_IN_DETAILS = re.compile(r"oldest available is (\d+)")
_OTHER_LOG_IN_DETAILS = re.compile(r"counts in recommendation log|the stream is of recommendation log")
"""The sidecar's (and the feed's own) words for a resume point of another log."""
_AHEAD_IN_DETAILS = re.compile(r"is ahead of the newest recommendation(?: (\d+))?")
"""The sidecar's words for a resume point past its newest recommendation (which it names)."""
_TRIMMED_IN_DETAILS = re.compile(r"(?:are|is) no longer kept")
"""The sidecar's words for a resume point trimmed from the log."""
_METHOD = "StreamRecommendations"

Recommendation = types_pb2.Recommendation


class FeedError(Exception):
    """The feed stopped and cannot go on by itself."""


class FeedGapError(FeedError):
    """A recommendation arrived that skips sequences: the ones in between were
    never received. The sidecar promises no gaps, so this is a fault to report,
    not a case to handle; the feed stops rather than skip them."""

    def __init__(self, last_sequence: int, received: int) -> None:
        super().__init__(
            f"recommendation {received} arrived after {last_sequence}: sequences "
            f"{last_sequence + 1} to {received - 1} are missing; the feed stops "
            f"rather than skip them"
        )
        self.last_sequence = last_sequence
        self.received = received


class RecommendationsLost(FeedError):
    """The sidecar refused to resume after `after_sequence` (OUT_OF_RANGE): the
    recommendations after it are no longer kept, or it counts in another log than
    the sidecar's, or it is ahead of the sidecar's newest recommendation; the
    message starts with which, from the sidecar's `details`. The oldest it has is
    `oldest_available` (None if the sidecar did not say). Resync your state, then
    start a new feed: see the module's documentation."""

    def __init__(self, after_sequence: int, oldest_available: int | None, details: str) -> None:
        super().__init__(
            f"{_lost_cause(after_sequence, oldest_available, details)}; resync your state and "
            f"subscribe again: {details}"
        )
        self.after_sequence = after_sequence
        self.oldest_available = oldest_available
        self.details = details

    @property
    def resume_after(self) -> int | None:
        """The `after_sequence` that replays everything still kept."""
        return None if self.oldest_available is None else max(self.oldest_available - 1, 0)


def _lost_cause(after_sequence: int, oldest_available: int | None, details: str) -> str:
    """Why a feed cannot resume after `after_sequence`, as the head of RecommendationsLost's
    message: from the sidecar's OUT_OF_RANGE details (or the feed's own, for a stream of
    another log), else from the numbers. Only a resume point older than the oldest kept is said
    to be "no longer kept"."""
    oldest = "unknown" if oldest_available is None else str(oldest_available)
    if _OTHER_LOG_IN_DETAILS.search(details):
        return (
            f"sequence {after_sequence} counts in another recommendation log than the sidecar's "
            "(a new or replaced state file, or the memory store restarted)"
        )
    if ahead := _AHEAD_IN_DETAILS.search(details):
        newest = ahead.group(1)
        where = (
            "newest recommendation"
            if newest is None
            else "log, which holds no recommendation"
            if newest == "0"
            else f"newest recommendation, {newest}"
        )
        return (
            f"sequence {after_sequence} is ahead of the sidecar's {where} (a checkpoint of "
            "another sidecar or of a lost log)"
        )
    if _TRIMMED_IN_DETAILS.search(details) or (
        oldest_available is not None and after_sequence + 1 < oldest_available
    ):
        return f"recommendations after {after_sequence} are no longer kept (oldest available: {oldest})"
    return (
        f"the sidecar refused to resume after {after_sequence} as out of range "
        f"(oldest available: {oldest})"
    )


class FeedDisconnected(FeedError):
    """The feed gave up: `max_reconnects` reconnects in a row brought no new
    recommendation. `code` and `details` are those of the last failure (OK when
    the server ended the stream)."""

    def __init__(
        self, code: grpc.StatusCode, details: str, reconnects: int, last_sequence: int
    ) -> None:
        super().__init__(
            f"{_METHOD} gave up after {reconnects} reconnects without a new recommendation "
            f"(last sequence {last_sequence}): {code.name}: {details}"
        )
        self.code = code
        self.details = details
        self.reconnects = reconnects
        self.last_sequence = last_sequence


@dataclass(frozen=True, slots=True)
class Disconnect:
    """What `on_disconnect` is told before the feed waits to reconnect."""

    code: grpc.StatusCode
    """Why the stream ended; OK when the server ended it without an error."""
    details: str
    last_sequence: int
    """The feed resumes after this sequence."""
    server_resume_after: int | None
    """The `riskbudget-resume-after` trailing metadata (RESOURCE_EXHAUSTED: the last
    sequence the sidecar sent), for diagnosis; the feed resumes after
    `last_sequence`, what the caller has actually handled."""
    attempt: int
    """1 for the first reconnect since the last new recommendation, then 2, ..."""
    delay: float
    """Seconds the feed waits before subscribing again."""


class _FeedPolicy:
    """Everything both feeds decide: what to ask for, which recommendations to
    pass on, whether and when to reconnect. No I/O."""

    def __init__(
        self,
        after_sequence: int,
        *,
        log_id: str | None,
        from_latest: bool,
        initial_backoff: float,
        backoff_multiplier: float,
        max_backoff: float,
        jitter: float,
        max_reconnects: int | None,
        random: Callable[[], float] | None,
        on_disconnect: Callable[[Disconnect], None] | None,
    ) -> None:
        if not _is_whole(after_sequence) or not 0 <= after_sequence < 2**64:
            raise ValueError(
                f"after_sequence must be a sequence number, 0 or more, got {after_sequence!r}"
            )
        _require(
            log_id is None or isinstance(log_id, str),
            "log_id must be None or the log id string a feed reported",
            log_id,
        )
        from_latest = flag(from_latest, "from_latest")
        if from_latest and (after_sequence or log_id):
            raise TypeError(
                "from_latest starts after the sidecar's newest recommendation: it takes no "
                "after_sequence or log_id (a checkpoint to resume from), got after_sequence "
                f"{after_sequence!r}, log_id {log_id!r}"
            )
        _require(
            _is_real(initial_backoff) and initial_backoff > 0,
            "initial_backoff must be a positive number of seconds",
            initial_backoff,
        )
        _require(
            _is_real(backoff_multiplier) and backoff_multiplier >= 1,
            "backoff_multiplier must be 1 or more",
            backoff_multiplier,
        )
        _require(
            _is_real(max_backoff) and max_backoff >= initial_backoff,
            "max_backoff must be seconds, at least initial_backoff",
            max_backoff,
        )
        _require(
            _is_real(jitter) and 0 <= jitter < 1,
            "jitter must be a fraction from 0 up to (not including) 1",
            jitter,
        )
        _require(
            max_reconnects is None or (_is_whole(max_reconnects) and max_reconnects >= 0),
            "max_reconnects must be None (forever) or a whole number, 0 or more",
            max_reconnects,
        )
        self.last_sequence = after_sequence
        self.log_id = log_id or ""
        # Until the first subscription: start after the sidecar's newest recommendation.
        self._from_latest = from_latest
        self._log_asked = False
        self.reconnects = 0
        self.duplicates_dropped = 0
        self._initial_backoff = float(initial_backoff)
        self._backoff_multiplier = float(backoff_multiplier)
        self._max_backoff = float(max_backoff)
        self._jitter = float(jitter)
        self._max_reconnects = max_reconnects
        self._random = random or random_module.random
        self._on_disconnect = on_disconnect
        self._backoff = self._initial_backoff

    def asks_status(self) -> bool:
        """Whether to ask the sidecar (GetStatus) before the first subscription: for its newest
        sequence and log (`from_latest`), or for its log id, given a sequence to resume after and
        no log id for it (a checkpoint from before log ids, or a start from the newest). Learned
        from the first message only, the log id would go unchecked until a recommendation came,
        and a log replaced meanwhile would be resumed in silently."""
        return self._from_latest or not (self._log_asked or self.log_id or not self.last_sequence)

    def status_received(self, status: service_pb2.GetStatusResponse) -> None:
        """What GetStatus said (see `asks_status`). A feed `from_latest` takes the newest sequence
        (`last_recommendation_sequence`) as the one it resumes after, and its log: the next
        recommendation is the first it yields, and a disconnect before it resumes there, with no
        gap. Otherwise the log the sidecar reported ("": it names none) is the one
        `last_sequence` is taken to count in, if the feed has none."""
        if self._from_latest:
            self._from_latest = False
            self.last_sequence = status.last_recommendation_sequence
        self._assume_log(status.recommendation_log_id)

    def _assume_log(self, log_id: str) -> None:
        self._log_asked = True
        self.log_id = self.log_id or log_id

    def status_failed(self, error: RiskBudgetError) -> float | None:
        """GetStatus failed: the seconds to wait before asking again (the sidecar is away: a
        subscription now could resume in a log replaced meanwhile, or, `from_latest`, after a
        newest sequence not known), or None to go on unchecked (it will not tell, as one from
        before log ids). A feed `from_latest` raises `error` instead: without the newest sequence
        it cannot start after it."""
        if error.code in RECONNECT_CODES:
            return self.disconnected(error.code, error.details, (), error)
        if self._from_latest:
            raise error
        self._assume_log("")
        return None

    def request(self) -> service_pb2.StreamRecommendationsRequest:
        return service_pb2.StreamRecommendationsRequest(
            after_sequence=self.last_sequence, log_id=self.log_id
        )

    def received(
        self, message: service_pb2.StreamRecommendationsResponse
    ) -> Iterable[Recommendation]:
        """The recommendations of a stream message, once its log is known to be the feed's."""
        if not self.log_id:
            self.log_id = message.log_id
        elif message.log_id and message.log_id != self.log_id:
            raise RecommendationsLost(
                self.last_sequence,
                None,
                f"the stream is of recommendation log {message.log_id!r}, the feed's "
                f"sequences count in {self.log_id!r}",
            )
        return message.recommendations

    def take(self, recommendation: Recommendation) -> bool:
        """Whether to yield `recommendation` now; if so, it is the caller's
        from here on: `last_sequence` moves to it and the backoff resets."""
        sequence = recommendation.sequence
        if sequence <= self.last_sequence:
            self.duplicates_dropped += 1
            logger.warning(
                "dropped recommendation %d, a duplicate: the feed is at %d",
                sequence,
                self.last_sequence,
            )
            return False
        if sequence != self.last_sequence + 1:
            raise FeedGapError(self.last_sequence, sequence)
        self.last_sequence = sequence
        self.reconnects = 0
        self._backoff = self._initial_backoff
        return True

    def disconnected(
        self,
        code: grpc.StatusCode,
        details: str,
        trailing_metadata: Iterable[tuple[str, Any]] | None,
        cause: BaseException | None = None,
    ) -> float:
        """The seconds to wait before subscribing again after the stream ended
        with `code`; raises when the feed must stop instead."""
        metadata = _metadata_dict(trailing_metadata)
        if code == grpc.StatusCode.OUT_OF_RANGE:
            oldest = _int_or_none(metadata.get(OLDEST_SEQUENCE_METADATA))
            if oldest is None:
                match = _OLDEST_IN_DETAILS.search(details)
                oldest = int(match.group(1)) if match else None
            raise RecommendationsLost(self.last_sequence, oldest, details) from cause
        if code != grpc.StatusCode.OK and code not in RECONNECT_CODES:
            raise RiskBudgetError(_METHOD, code, details) from cause
        if self._max_reconnects is not None and self.reconnects >= self._max_reconnects:
            raise FeedDisconnected(code, details, self.reconnects, self.last_sequence) from cause
        self.reconnects += 1
        delay = self._backoff * (1.0 - self._jitter * self._random())
        self._backoff = min(self._backoff * self._backoff_multiplier, self._max_backoff)
        event = Disconnect(
            code=code,
            details=details,
            last_sequence=self.last_sequence,
            server_resume_after=_int_or_none(metadata.get(RESUME_AFTER_METADATA)),
            attempt=self.reconnects,
            delay=delay,
        )
        logger.warning(
            "recommendation stream ended (%s: %s); resubscribing after %d in %.3f s (attempt %d)",
            code.name,
            details,
            self.last_sequence,
            delay,
            self.reconnects,
        )
        if self._on_disconnect is not None:
            self._on_disconnect(event)
        return delay


class _FeedBase:
    """Settings and counters common to both feeds."""

    def __init__(
        self,
        after_sequence: int,
        *,
        log_id: str | None,
        from_latest: bool,
        initial_backoff: float,
        backoff_multiplier: float,
        max_backoff: float,
        jitter: float,
        max_reconnects: int | None,
        random: Callable[[], float] | None,
        on_disconnect: Callable[[Disconnect], None] | None,
    ) -> None:
        self._policy = _FeedPolicy(
            after_sequence,
            log_id=log_id,
            from_latest=from_latest,
            initial_backoff=initial_backoff,
            backoff_multiplier=backoff_multiplier,
            max_backoff=max_backoff,
            jitter=jitter,
            max_reconnects=max_reconnects,
            random=random,
            on_disconnect=on_disconnect,
        )
        self._pending: deque[Recommendation] = deque()
        self._call: Any = None
        self._closed = False

    @property
    def last_sequence(self) -> int:
        """The sequence of the last recommendation yielded (the caller's
        `after_sequence` before any; `from_latest`: 0, then the sidecar's newest
        once the feed asked for it): the feed resumes after it."""
        return self._policy.last_sequence

    @property
    def log_id(self) -> str:
        """The log `last_sequence` counts in: the caller's `log_id`, else the sidecar's
        (GetStatus, before the first resume after a sequence or the start `from_latest`), else
        the first message's ("" until then); keep it with the checkpoint."""
        return self._policy.log_id

    @property
    def reconnects(self) -> int:
        """Reconnects since the last new recommendation."""
        return self._policy.reconnects

    @property
    def duplicates_dropped(self) -> int:
        """Recommendations dropped because the feed had already yielded them."""
        return self._policy.duplicates_dropped

    @property
    def closed(self) -> bool:
        return self._closed

    def _next_pending(self) -> Recommendation | None:
        """The next pending recommendation to yield, dropping duplicates."""
        while self._pending:
            recommendation = self._pending.popleft()
            if self._policy.take(recommendation):
                return recommendation
        return None


class RecommendationFeed(_FeedBase):
    """Recommendations after `after_sequence` (of the log `log_id`, when given),
    then live ones, in order, across disconnects and sidecar restarts; see the
    module's documentation.

    `source` is the sidecar's address (the feed makes its own client and closes
    it) or a `RiskBudgetClient` (left open); anything else is a TypeError.
    `from_latest=True` (True or False; not with `after_sequence` or `log_id`,
    a TypeError) starts after the sidecar's newest recommendation, in its log,
    both from GetStatus just before the first subscription (asked again while
    the sidecar is away; a GetStatus it refuses raises `RiskBudgetError`): the
    first yielded is the next one made, and a disconnect before it misses
    none. Reconnects wait `initial_backoff`
    seconds, then `backoff_multiplier` times more each time up to `max_backoff`,
    each wait shortened by a random fraction up to `jitter`; a new
    recommendation resets the wait. After `max_reconnects` reconnects in a row
    without a new recommendation it raises `FeedDisconnected` (None: never
    gives up). `sleep(seconds)` waits (default: a wait that `close()` cuts
    short); `random()` draws the jitter; `on_disconnect(Disconnect)` is told of
    each reconnect.
    """

    def __init__(
        self,
        source: str | RiskBudgetClient,
        after_sequence: int = 0,
        *,
        log_id: str | None = None,
        from_latest: bool = False,
        initial_backoff: float = 0.1,
        backoff_multiplier: float = 2.0,
        max_backoff: float = 5.0,
        jitter: float = 0.2,
        max_reconnects: int | None = None,
        sleep: Callable[[float], object] | None = None,
        random: Callable[[], float] | None = None,
        on_disconnect: Callable[[Disconnect], None] | None = None,
    ) -> None:
        _require_source(source, RiskBudgetClient, AsyncRiskBudgetClient, "AsyncRecommendationFeed")
        super().__init__(
            after_sequence,
            log_id=log_id,
            from_latest=from_latest,
            initial_backoff=initial_backoff,
            backoff_multiplier=backoff_multiplier,
            max_backoff=max_backoff,
            jitter=jitter,
            max_reconnects=max_reconnects,
            random=random,
            on_disconnect=on_disconnect,
        )
        self._owns_client = isinstance(source, str)
        self._client = RiskBudgetClient(source) if isinstance(source, str) else source
        # Reentrant: close() may run in a signal handler on the iterating thread.
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._sleep = sleep if sleep is not None else self._wake.wait

    def __iter__(self) -> RecommendationFeed:
        return self

    def __next__(self) -> Recommendation:
        if self._closed:
            raise StopIteration
        try:
            return self._next()
        except BaseException:
            self.close()
            raise

    def _next(self) -> Recommendation:
        while True:
            recommendation = self._next_pending()
            if recommendation is not None:
                return recommendation
            if self._policy.asks_status():
                try:
                    self._policy.status_received(self._client.get_status())
                except RiskBudgetError as error:
                    if (delay := self._policy.status_failed(error)) is not None:
                        self._sleep(delay)
                        if self._closed:
                            raise StopIteration from None
                        continue
            call = self._open()
            try:
                batch = next(call)
            except StopIteration:
                code, details, trailing, cause = grpc.StatusCode.OK, "the stream ended", (), None
            except grpc.RpcError as error:
                if self._closed:
                    raise StopIteration from None
                failed: Any = error
                code, details = failed.code(), failed.details() or ""
                trailing, cause = failed.trailing_metadata(), error
            else:
                self._pending.extend(self._policy.received(batch))
                continue
            self._drop(call)
            self._sleep(self._policy.disconnected(code, details, trailing, cause))

    def _open(self) -> Any:
        with self._lock:
            if self._closed:
                raise StopIteration
            if self._call is None:
                self._call = self._client._open_recommendation_stream(self._policy.request())
            return self._call

    def _drop(self, call: Any) -> None:
        with self._lock:
            if self._call is call:
                self._call = None
        call.cancel()

    def close(self) -> None:
        """Stop: the current stream is cancelled, a wait is cut short (with the
        default sleep) and iteration ends. Safe from any thread, and twice."""
        with self._lock:
            already, self._closed = self._closed, True
            call, self._call = self._call, None
        self._wake.set()
        if call is not None:
            call.cancel()
        if self._owns_client and not already:
            self._client.close()

    def __enter__(self) -> RecommendationFeed:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncRecommendationFeed(_FeedBase):
    """The asyncio twin of `RecommendationFeed` (same arguments; `source` is an
    address or an `AsyncRiskBudgetClient`, anything else a TypeError; `sleep` a
    coroutine function).
    `await feed.close()` (or `aclose()`) stops it, also from another task."""

    def __init__(
        self,
        source: str | AsyncRiskBudgetClient,
        after_sequence: int = 0,
        *,
        log_id: str | None = None,
        from_latest: bool = False,
        initial_backoff: float = 0.1,
        backoff_multiplier: float = 2.0,
        max_backoff: float = 5.0,
        jitter: float = 0.2,
        max_reconnects: int | None = None,
        sleep: Callable[[float], Awaitable[object]] | None = None,
        random: Callable[[], float] | None = None,
        on_disconnect: Callable[[Disconnect], None] | None = None,
    ) -> None:
        _require_source(source, AsyncRiskBudgetClient, RiskBudgetClient, "RecommendationFeed")
        super().__init__(
            after_sequence,
            log_id=log_id,
            from_latest=from_latest,
            initial_backoff=initial_backoff,
            backoff_multiplier=backoff_multiplier,
            max_backoff=max_backoff,
            jitter=jitter,
            max_reconnects=max_reconnects,
            random=random,
            on_disconnect=on_disconnect,
        )
        # A client made from an address is built on first use, inside the loop.
        self._target = source if isinstance(source, str) else None
        self._client = None if isinstance(source, str) else source
        self._wake = asyncio.Event()
        self._sleep = sleep if sleep is not None else self._wait

    def __aiter__(self) -> AsyncRecommendationFeed:
        return self

    async def __anext__(self) -> Recommendation:
        if self._closed:
            raise StopAsyncIteration
        try:
            return await self._next()
        except StopAsyncIteration:
            raise
        except asyncio.CancelledError:
            # close() cancelled the call under us: the feed ends. A
            # cancellation of the task itself goes on.
            task = asyncio.current_task()
            if self._closed and (task is None or not task.cancelling()):
                raise StopAsyncIteration from None
            await self.close()
            raise
        except BaseException:
            await self.close()
            raise

    async def _next(self) -> Recommendation:
        while True:
            recommendation = self._next_pending()
            if recommendation is not None:
                return recommendation
            if self._policy.asks_status():
                try:
                    self._policy.status_received(await self._connected().get_status())
                except RiskBudgetError as error:
                    if (delay := self._policy.status_failed(error)) is not None:
                        await self._sleep(delay)
                        if self._closed:
                            raise StopAsyncIteration from None
                        continue
            call = self._open()
            try:
                batch = await call.read()
            except grpc.RpcError as error:
                if self._closed:
                    raise StopAsyncIteration from None
                failed: Any = error
                code, details = failed.code(), failed.details() or ""
                trailing, cause = failed.trailing_metadata(), error
            else:
                if batch is not grpc.aio.EOF:
                    self._pending.extend(self._policy.received(batch))
                    continue
                code, details, trailing, cause = grpc.StatusCode.OK, "the stream ended", (), None
            self._drop(call)
            await self._sleep(self._policy.disconnected(code, details, trailing, cause))

    def _connected(self) -> AsyncRiskBudgetClient:
        if self._client is None:
            assert self._target is not None
            self._client = AsyncRiskBudgetClient(self._target)
        return self._client

    def _open(self) -> Any:
        if self._closed:
            raise StopAsyncIteration
        if self._call is None:
            self._call = self._connected()._open_recommendation_stream(self._policy.request())
        return self._call

    def _drop(self, call: Any) -> None:
        if self._call is call:
            self._call = None
        call.cancel()

    async def _wait(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            pass

    async def close(self) -> None:
        """Stop: the current stream is cancelled, a wait is cut short (with the
        default sleep) and iteration ends. Safe to call twice."""
        already, self._closed = self._closed, True
        call, self._call = self._call, None
        self._wake.set()
        if call is not None:
            call.cancel()
        if self._target is not None and self._client is not None and not already:
            await self._client.close()

    aclose = close

    async def __aenter__(self) -> AsyncRecommendationFeed:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


def _is_whole(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _require_source(source: object, kind: type, other_kind: type, other_feed: str) -> None:
    """`source` is the sidecar's target or a client of `kind`; anything else is a TypeError
    naming the argument now, not a failure at the first read (a client of `other_kind` is for
    `other_feed`)."""
    if isinstance(source, (str, kind)):
        return
    got = (
        f"{other_kind.__name__} (a client for {other_feed})"
        if isinstance(source, other_kind)
        else f"{type(source).__name__} {reprlib.repr(source)}"
    )
    raise TypeError(
        f"source must be the sidecar's target (such as '127.0.0.1:50051') or "
        f"{'an' if kind.__name__[0] in 'AEIOU' else 'a'} {kind.__name__}, got {got}"
    )


def _require(condition: bool, message: str, value: object) -> None:
    if not condition:
        raise ValueError(f"{message}, got {value!r}")


def _metadata_dict(metadata: Iterable[tuple[str, Any]] | None) -> dict[str, str]:
    """The text entries of a sync or aio call's trailing metadata as a dict (the last value
    wins). Binary entries (`-bin` keys, such as the rich status gRPC sends with an error)
    are not text and are left out."""
    result: dict[str, str] = {}
    for key, value in metadata or ():
        if key.lower().endswith("-bin"):
            continue
        result[key.lower()] = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    return result


def _int_or_none(value: str | None) -> int | None:
    try:
        return None if value is None else int(value.strip())
    except ValueError:
        return None
