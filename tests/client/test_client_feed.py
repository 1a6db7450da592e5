"""The recommendation feed resumes across disconnects with no gap and no
duplicate, and stops loudly when it cannot. Each scenario runs against a real
gRPC server implementing the stream's semantics from a list, with both the
blocking and the asyncio feed."""

import asyncio
import threading

import grpc
import pytest

from riskbudget_client import (
    AsyncRecommendationFeed,
    AsyncRiskBudgetClient,
    FeedDisconnected,
    FeedGapError,
    RecommendationFeed,
    RecommendationsLost,
    RiskBudgetClient,
    RiskBudgetError,
)

from .conftest import Episode

FAST = {"jitter": 0.0}


def sequences(recommendations):
    return [recommendation.sequence for recommendation in recommendations]


def take(feed, count):
    return sequences(next(feed) for _ in range(count))


def asked_after(log_sidecar):
    return [request.after_sequence for request in log_sidecar.requests]


def test_the_feed_yields_every_recommendation_after_the_checkpoint_in_order(
    open_feed, log_sidecar, log_server, sleeps
):
    log_sidecar.publish(1, 2, 3, 4, 5)
    feed = open_feed(log_server.target, 2, sleep=sleeps)

    assert feed.last_sequence == 2
    assert take(feed, 3) == [3, 4, 5]
    assert feed.last_sequence == 5
    assert asked_after(log_sidecar) == [2]
    assert sleeps == []


def test_the_feed_hands_out_live_recommendations_as_they_come(
    open_feed, log_sidecar, log_server, sleeps
):
    log_sidecar.publish(1)
    feed = open_feed(log_server.target, sleep=sleeps)
    assert take(feed, 1) == [1]

    threading.Timer(0.05, log_sidecar.publish, (2, 3)).start()

    assert take(feed, 2) == [2, 3]


def test_the_feed_resumes_after_the_last_recommendation_handled_when_the_stream_breaks(
    open_feed, log_sidecar, log_server, sleeps
):
    log_sidecar.publish(1, 2, 3, 4, 5, 6)
    log_sidecar.script(Episode(send=2), Episode(send=1, code=grpc.StatusCode.CANCELLED))
    feed = open_feed(log_server.target, sleep=sleeps, **FAST)

    assert take(feed, 6) == [1, 2, 3, 4, 5, 6]
    assert asked_after(log_sidecar) == [0, 2, 3]
    assert feed.duplicates_dropped == 0
    assert len(sleeps) == 2


def test_the_feed_continues_the_sequence_across_a_sidecar_restart(
    open_feed, log_sidecar, log_server, sleeps
):
    log_sidecar.publish(1, 2, 3)
    feed = open_feed(log_server.target, sleep=sleeps)
    assert take(feed, 3) == [1, 2, 3]

    log_server.restart()
    log_sidecar.publish(4, 5)

    assert take(feed, 2) == [4, 5]
    assert asked_after(log_sidecar)[-1] == 3
    assert feed.reconnects == 0


def test_a_subscriber_cut_off_for_falling_behind_resumes_where_it_was(
    open_feed, log_sidecar, log_server, sleeps
):
    log_sidecar.publish(1, 2, 3, 4)
    log_sidecar.script(
        Episode(
            send=3,
            code=grpc.StatusCode.RESOURCE_EXHAUSTED,
            details="subscriber fell behind",
            resume_metadata=True,
        )
    )
    disconnects = []
    feed = open_feed(log_server.target, sleep=sleeps, on_disconnect=disconnects.append, **FAST)

    assert take(feed, 4) == [1, 2, 3, 4]
    [disconnect] = disconnects
    assert disconnect.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert disconnect.details == "subscriber fell behind"
    assert (disconnect.server_resume_after, disconnect.last_sequence) == (3, 3)
    assert (disconnect.attempt, disconnect.delay) == (1, 0.1)
    assert asked_after(log_sidecar) == [0, 3]


def test_the_server_ending_the_stream_is_a_disconnect_like_any_other(
    open_feed, log_sidecar, log_server, sleeps
):
    log_sidecar.publish(1, 2, 3)
    log_sidecar.script(Episode(send=2, code=grpc.StatusCode.OK))
    disconnects = []
    feed = open_feed(log_server.target, sleep=sleeps, on_disconnect=disconnects.append)

    assert take(feed, 3) == [1, 2, 3]
    assert [disconnect.code for disconnect in disconnects] == [grpc.StatusCode.OK]


@pytest.mark.parametrize("metadata", [True, False], ids=["metadata", "message only"])
def test_recommendations_no_longer_kept_raise_recommendations_lost_with_the_oldest(
    open_feed, log_sidecar, log_server, sleeps, metadata
):
    log_sidecar.publish(10, 11, 12)
    log_sidecar.oldest_metadata = metadata
    feed = open_feed(log_server.target, 3, sleep=sleeps)

    with pytest.raises(RecommendationsLost) as raised:
        next(feed)

    lost = raised.value
    assert (lost.after_sequence, lost.oldest_available, lost.resume_after) == (3, 10, 9)
    assert "oldest available is 10" in lost.details
    assert str(lost).startswith("recommendations after 3 are no longer kept (oldest available: 10)")
    assert sleeps == []


OTHER_LOG = (
    "after_sequence 40 counts in recommendation log 'deadbeef', and this sidecar's log is "
    "'8749c0' (a new or replaced state file, or the memory store restarted): the "
    "recommendations after it are not kept; oldest available is 34"
)
AHEAD = (
    "after_sequence 64 is ahead of the newest recommendation 63: it comes from another sidecar "
    "or a lost log; oldest available is 34"
)
AHEAD_OF_EMPTY = (
    "after_sequence 68 is ahead of the newest recommendation 0: it comes from another sidecar "
    "or a lost log; oldest available is 0"
)


@pytest.mark.parametrize(
    ("details", "oldest", "after", "head"),
    [
        (
            OTHER_LOG,
            34,
            40,
            "sequence 40 counts in another recommendation log than the sidecar's (a new or "
            "replaced state file, or the memory store restarted)",
        ),
        (
            AHEAD,
            34,
            64,
            "sequence 64 is ahead of the sidecar's newest recommendation, 63 (a checkpoint of "
            "another sidecar or of a lost log)",
        ),
        (
            AHEAD_OF_EMPTY,
            0,
            68,
            "sequence 68 is ahead of the sidecar's log, which holds no recommendation (a "
            "checkpoint of another sidecar or of a lost log)",
        ),
        (
            "recommendations up to 55 are no longer kept; oldest available is 56",
            56,
            10,
            "recommendations after 10 are no longer kept (oldest available: 56)",
        ),
        (
            "out of range; oldest available is 34",
            34,
            40,
            "the sidecar refused to resume after 40 as out of range (oldest available: 34)",
        ),
    ],
    ids=["other log", "ahead of the newest", "ahead of an empty log", "trimmed", "unexplained"],
)
def test_recommendations_lost_names_the_true_cause_first(
    open_feed, log_sidecar, log_server, sleeps, details, oldest, after, head
):
    """Only a trimmed log is "no longer kept": a checkpoint of another log, or one ahead of the
    newest, says so at the head of the message, not only in the sidecar's details after it."""
    log_sidecar.refusal = (details, oldest)
    feed = open_feed(log_server.target, after, log_id="deadbeef", sleep=sleeps)

    with pytest.raises(RecommendationsLost) as raised:
        next(feed)

    lost = raised.value
    assert str(lost) == f"{head}; resync your state and subscribe again: {details}"
    assert (lost.after_sequence, lost.oldest_available, lost.details) == (after, oldest, details)
    assert lost.resume_after == max(oldest - 1, 0)


def test_recommendations_lost_of_a_stream_of_another_log_says_so_first(
    open_feed, log_sidecar, log_server, sleeps
):
    log_sidecar.publish(1, 2, 3)
    log_sidecar.log_id = "new"
    feed = open_feed(log_server.target, after_sequence=1, log_id="old", sleep=sleeps)

    with pytest.raises(RecommendationsLost) as raised:
        next(feed)
    assert str(raised.value).startswith(
        "sequence 1 counts in another recommendation log than the sidecar's"
    )


def test_a_log_trimmed_while_the_feed_was_away_raises_recommendations_lost(
    open_feed, log_sidecar, log_server, sleeps
):
    log_sidecar.publish(1, 2, 3, 4, 5, 6)
    log_sidecar.script(Episode(send=2))
    feed = open_feed(log_server.target, sleep=sleeps)
    assert take(feed, 2) == [1, 2]

    log_sidecar.trim(oldest=5)

    with pytest.raises(RecommendationsLost) as raised:
        next(feed)
    assert (raised.value.after_sequence, raised.value.oldest_available) == (2, 5)
    assert feed.last_sequence == 2


def test_a_stream_of_another_log_raises_recommendations_lost_and_yields_nothing(
    open_feed, log_sidecar, log_server, sleeps
):
    log_sidecar.publish(1, 2, 3)
    log_sidecar.log_id = "new"
    feed = open_feed(log_server.target, after_sequence=1, log_id="old", sleep=sleeps)

    with pytest.raises(RecommendationsLost, match="the stream is of recommendation log 'new'"):
        next(feed)
    assert feed.last_sequence == 1 and feed.log_id == "old"


def test_a_feed_of_a_sidecar_that_names_no_log_goes_on_unchecked(
    open_feed, log_sidecar, log_server, sleeps
):
    log_sidecar.publish(1, 2, 3)
    feed = open_feed(log_server.target, after_sequence=1, log_id="mine", sleep=sleeps)

    assert take(feed, 2) == [2, 3]
    assert [request.log_id for request in log_sidecar.requests] == ["mine"]


def test_a_feed_resuming_with_no_log_id_takes_the_sidecars_log_before_it_subscribes(
    open_feed, log_sidecar, log_server, sleeps
):
    log_sidecar.publish(1, 2, 3)
    log_sidecar.log_id = "now"
    resumed = open_feed(log_server.target, after_sequence=2, sleep=sleeps)
    from_start = open_feed(log_server.target, sleep=sleeps)

    assert take(resumed, 1) == [3] and take(from_start, 1) == [1]
    assert sorted(request.log_id for request in log_sidecar.requests) == ["", "now"]


def test_a_feed_of_a_sidecar_that_will_not_tell_its_log_id_subscribes_unchecked(
    open_feed, log_sidecar, log_server, sleeps
):
    log_sidecar.publish(1, 2, 3)
    log_sidecar.status_error = grpc.StatusCode.UNIMPLEMENTED
    feed = open_feed(log_server.target, after_sequence=2, sleep=sleeps)

    assert take(feed, 1) == [3]
    assert [request.log_id for request in log_sidecar.requests] == [""]


def test_a_feed_asks_again_for_the_log_id_while_the_sidecar_is_away(open_feed, log_sidecar, log_server):
    log_sidecar.publish(1, 2, 3)
    log_sidecar.log_id = "now"
    log_sidecar.status_error = grpc.StatusCode.UNAVAILABLE
    waits = []

    def sleep(seconds):  # the sidecar is back after the first wait
        waits.append(seconds)
        log_sidecar.status_error = None
    feed = open_feed(log_server.target, after_sequence=2, sleep=sleep)

    assert take(feed, 1) == [3]
    assert len(waits) == 1
    assert [request.log_id for request in log_sidecar.requests] == ["now"]  # never unchecked


def test_a_duplicate_replayed_by_the_sidecar_is_dropped(
    open_feed, log_sidecar, log_server, sleeps
):
    log_sidecar.publish(1, 2, 3, 4)
    log_sidecar.script(Episode(send=2), Episode(rewind=2))
    feed = open_feed(log_server.target, sleep=sleeps)

    assert take(feed, 4) == [1, 2, 3, 4]
    assert feed.duplicates_dropped == 2


def test_a_duplicate_inside_a_batch_is_dropped(open_feed, log_sidecar, log_server, sleeps):
    log_sidecar.publish(1, 2, 2, 3)
    feed = open_feed(log_server.target, sleep=sleeps)

    assert take(feed, 3) == [1, 2, 3]
    assert feed.duplicates_dropped == 1


def test_a_gap_raises_feed_gap_error_after_the_recommendations_before_it(
    open_feed, log_sidecar, log_server, sleeps
):
    log_sidecar.publish(1, 2, 5, 6)
    feed = open_feed(log_server.target, sleep=sleeps)
    assert take(feed, 2) == [1, 2]

    with pytest.raises(FeedGapError) as raised:
        next(feed)

    assert (raised.value.last_sequence, raised.value.received) == (2, 5)
    assert str(raised.value) == (
        "recommendation 5 arrived after 2: sequences 3 to 4 are missing; "
        "the feed stops rather than skip them"
    )
    assert feed.last_sequence == 2
    assert feed.closed
    with pytest.raises(StopIteration):
        next(feed)


def test_the_backoff_grows_to_its_maximum_and_resets_after_a_new_recommendation(
    open_feed, log_sidecar, log_server, sleeps
):
    log_sidecar.publish(1, 2)
    log_sidecar.script(
        *[Episode(send=0)] * 4, Episode(send=1), *[Episode(send=0)] * 2
    )
    feed = open_feed(
        log_server.target,
        sleep=sleeps,
        initial_backoff=0.1,
        backoff_multiplier=2.0,
        max_backoff=0.3,
        **FAST,
    )

    assert take(feed, 2) == [1, 2]
    assert sleeps == pytest.approx([0.1, 0.2, 0.3, 0.3, 0.1, 0.2, 0.3])
    assert asked_after(log_sidecar) == [0, 0, 0, 0, 0, 1, 1, 1]


def test_jitter_shortens_each_wait_by_at_most_its_fraction(
    open_feed, log_sidecar, log_server, sleeps
):
    log_sidecar.publish(1)
    log_sidecar.script(*[Episode(send=0)] * 3)
    draws = iter([0.0, 0.5, 0.999])
    feed = open_feed(
        log_server.target, sleep=sleeps, jitter=0.2, random=lambda: next(draws)
    )

    assert take(feed, 1) == [1]
    assert sleeps == pytest.approx([0.1, 0.2 * 0.9, 0.4 * (1 - 0.2 * 0.999)])


def test_the_default_backoff_starts_at_a_tenth_of_a_second_and_stops_growing_at_five(
    open_feed, log_sidecar, log_server, sleeps
):
    log_sidecar.publish(1)
    log_sidecar.script(*[Episode(send=0)] * 8)
    feed = open_feed(log_server.target, sleep=sleeps, random=lambda: 0.0)

    assert take(feed, 1) == [1]
    assert sleeps == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0])


def test_the_feed_gives_up_after_max_reconnects_in_a_row(
    open_feed, log_sidecar, log_server, sleeps
):
    log_sidecar.publish(1)
    log_sidecar.script(*[Episode(send=0, details="down")] * 3)
    feed = open_feed(log_server.target, sleep=sleeps, max_reconnects=2)

    with pytest.raises(FeedDisconnected) as raised:
        next(feed)

    assert (raised.value.code, raised.value.details) == (grpc.StatusCode.UNAVAILABLE, "down")
    assert (raised.value.reconnects, raised.value.last_sequence) == (2, 0)
    assert len(sleeps) == 2


def test_max_reconnects_counts_only_reconnects_without_a_new_recommendation(
    open_feed, log_sidecar, log_server, sleeps
):
    log_sidecar.publish(1, 2, 3)
    log_sidecar.script(Episode(send=0), Episode(send=1), Episode(send=1))
    feed = open_feed(log_server.target, sleep=sleeps, max_reconnects=1)

    assert take(feed, 3) == [1, 2, 3]
    assert len(sleeps) == 3


def test_a_feed_with_no_sidecar_to_reach_keeps_trying_until_told_to_stop(
    open_feed, dead_target, sleeps
):
    feed = open_feed(dead_target, sleep=sleeps, max_reconnects=3)

    with pytest.raises(FeedDisconnected) as raised:
        next(feed)

    assert raised.value.code == grpc.StatusCode.UNAVAILABLE
    assert len(sleeps) == 3


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNIMPLEMENTED]
)
def test_a_failure_that_reconnecting_cannot_fix_raises_risk_budget_error(
    open_feed, log_sidecar, log_server, sleeps, code
):
    log_sidecar.script(Episode(send=0, code=code, details="no"))
    feed = open_feed(log_server.target, sleep=sleeps)

    with pytest.raises(RiskBudgetError) as raised:
        next(feed)

    assert (raised.value.method, raised.value.code, raised.value.details) == (
        "StreamRecommendations",
        code,
        "no",
    )
    assert sleeps == []
    assert feed.closed


def test_a_feed_closed_between_recommendations_yields_no_more(
    open_feed, log_sidecar, log_server, sleeps
):
    log_sidecar.publish(1, 2, 3)
    feed = open_feed(log_server.target, sleep=sleeps)
    assert take(feed, 1) == [1]

    feed.close()

    assert list(feed) == []
    assert feed.last_sequence == 1
    assert log_sidecar.ended.acquire(timeout=5)


def test_a_feed_built_on_a_client_leaves_the_client_open(
    open_feed, log_sidecar, log_server, sleeps
):
    log_sidecar.publish(1, 2)
    client = open_feed.client(log_server.target)
    feed = open_feed(client, sleep=sleeps)
    assert take(feed, 2) == [1, 2]

    feed.close()

    assert client.get_status().last_recommendation_sequence == 2


@pytest.mark.parametrize(
    "options, message",
    [
        ({"after_sequence": -1}, "after_sequence must be a sequence number"),
        ({"after_sequence": 1.0}, "after_sequence must be a sequence number"),
        ({"initial_backoff": 0}, "initial_backoff must be a positive number of seconds"),
        ({"initial_backoff": float("inf")}, "initial_backoff must be a positive"),
        ({"backoff_multiplier": 0.5}, "backoff_multiplier must be 1 or more"),
        ({"max_backoff": 0.05}, "max_backoff must be seconds, at least initial_backoff"),
        ({"jitter": 1.0}, "jitter must be a fraction"),
        ({"max_reconnects": -1}, "max_reconnects must be None"),
        ({"max_reconnects": True}, "max_reconnects must be None"),
        ({"log_id": 7}, "log_id must be None or the log id string"),
    ],
)
@pytest.mark.parametrize("kind", [RecommendationFeed, AsyncRecommendationFeed])
def test_a_feed_refuses_bad_settings(kind, options, message):
    with pytest.raises(ValueError, match=message):
        kind("127.0.0.1:1", **options)


# -- closing from elsewhere ---------------------------------------------------


def test_close_from_another_thread_ends_a_feed_waiting_for_live_recommendations(
    log_sidecar, log_server
):
    log_sidecar.publish(1)
    with RecommendationFeed(log_server.target) as feed:
        assert take(feed, 1) == [1]

        threading.Timer(0.1, feed.close).start()

        assert list(feed) == []
    assert log_sidecar.ended.acquire(timeout=5)


def test_close_from_another_thread_cuts_a_backoff_wait_short(dead_target):
    def close_soon(disconnect):
        threading.Timer(0.05, feed.close).start()

    feed = RecommendationFeed(
        dead_target, initial_backoff=60.0, max_backoff=60.0, on_disconnect=close_soon
    )

    assert list(feed) == []
    assert feed.reconnects == 1


async def test_closing_an_async_feed_from_another_task_ends_its_wait(log_sidecar, log_server):
    log_sidecar.publish(1)
    async with AsyncRecommendationFeed(log_server.target) as feed:
        assert (await anext(feed)).sequence == 1
        waiting = asyncio.create_task(anext(feed, None))
        await asyncio.sleep(0.1)

        await feed.close()

        assert await waiting is None
    assert await asyncio.to_thread(log_sidecar.ended.acquire, timeout=5)


async def test_closing_an_async_feed_cuts_a_backoff_wait_short(dead_target):
    waiting_to_reconnect = asyncio.Event()
    feed = AsyncRecommendationFeed(
        dead_target,
        initial_backoff=60.0,
        max_backoff=60.0,
        on_disconnect=lambda disconnect: waiting_to_reconnect.set(),
    )
    waiting = asyncio.create_task(anext(feed, None))
    await waiting_to_reconnect.wait()

    await feed.aclose()

    assert await waiting is None
    assert feed.reconnects == 1


async def test_cancelling_the_task_reading_an_async_feed_cancels_it(log_sidecar, log_server):
    feed = AsyncRecommendationFeed(log_server.target)
    waiting = asyncio.create_task(anext(feed))
    await asyncio.sleep(0.1)

    waiting.cancel()

    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert feed.closed


async def test_an_async_feed_on_a_client_reads_recommendations_in_order(
    log_sidecar, log_server
):
    log_sidecar.publish(4, 5, 6)
    log_sidecar.script(Episode(send=1))
    async with AsyncRiskBudgetClient(log_server.target) as client:
        feed = AsyncRecommendationFeed(client, 3, initial_backoff=0.01, max_backoff=0.01)
        received = []
        async for recommendation in feed:
            received.append(recommendation.sequence)
            if recommendation.sequence == 6:
                await feed.close()

        assert received == [4, 5, 6]
        assert (await client.get_status()).last_recommendation_sequence == 6


def test_a_blocking_feed_on_a_client_reads_recommendations_in_order(log_sidecar, log_server):
    log_sidecar.publish(1, 2)
    with RiskBudgetClient(log_server.target) as client:
        with RecommendationFeed(client) as feed:
            assert take(feed, 2) == [1, 2]


# -- from_latest ---------------------------------------------------------------


def requested(log_sidecar):
    """(after_sequence, log_id, from_latest) of each subscription."""
    return [(r.after_sequence, r.log_id, r.from_latest) for r in log_sidecar.requests]


def test_a_feed_from_latest_starts_after_the_newest_recommendation_of_a_trimmed_log(
    open_feed, log_sidecar, log_server, sleeps
):
    """A new subscriber has no checkpoint: after_sequence 0 on a trimmed log is lost, from_latest
    starts with the next recommendation made, in the log GetStatus names."""
    log_sidecar.publish(10, 11, 12)
    log_sidecar.log_id = "now"
    feed = open_feed(log_server.target, from_latest=True, sleep=sleeps)
    assert (feed.last_sequence, feed.log_id) == (0, "")

    threading.Timer(0.1, log_sidecar.publish, (13, 14)).start()

    assert take(feed, 2) == [13, 14]
    assert (feed.last_sequence, feed.log_id) == (14, "now")
    assert requested(log_sidecar) == [(12, "now", False)]  # never from_latest on the wire
    assert sleeps == []


def test_a_feed_from_latest_on_an_empty_log_yields_the_first_one_made(
    open_feed, log_sidecar, log_server, sleeps
):
    log_sidecar.log_id = "new"
    feed = open_feed(log_server.target, from_latest=True, sleep=sleeps)

    threading.Timer(0.1, log_sidecar.publish, (1,)).start()

    assert take(feed, 1) == [1]
    assert requested(log_sidecar) == [(0, "new", False)]


def test_a_feed_from_latest_disconnected_before_its_first_recommendation_misses_none(
    open_feed, log_sidecar, log_server, sleeps
):
    """The ones made while the stream was down are the feed's: it resumes after the newest it
    started from, not after the newest at the reconnect."""
    log_sidecar.publish(1, 2, 3)
    log_sidecar.log_id = "now"
    log_sidecar.script(Episode(send=0))

    def sleep(seconds):  # recommendations made during the outage, and one after
        sleeps(seconds)
        log_sidecar.publish(4, 5)
        threading.Timer(0.3, log_sidecar.publish, (6,)).start()

    feed = open_feed(log_server.target, from_latest=True, sleep=sleep, **FAST)

    assert take(feed, 1) == [4]
    assert take(feed, 2) == [5, 6]
    assert requested(log_sidecar) == [(3, "now", False), (3, "now", False)]
    assert len(sleeps) == 1


def test_a_feed_from_latest_asks_again_while_the_sidecar_is_away(
    open_feed, log_sidecar, log_server
):
    log_sidecar.publish(1, 2, 3)
    log_sidecar.log_id = "now"
    log_sidecar.status_error = grpc.StatusCode.UNAVAILABLE
    waits, disconnects = [], []

    def sleep(seconds):  # the sidecar is back after the first wait
        waits.append(seconds)
        log_sidecar.status_error = None

    feed = open_feed(
        log_server.target, from_latest=True, sleep=sleep, on_disconnect=disconnects.append
    )
    threading.Timer(0.5, log_sidecar.publish, (4,)).start()  # made once the feed is subscribed

    assert take(feed, 1) == [4]
    assert len(waits) == 1
    assert [d.code for d in disconnects] == [grpc.StatusCode.UNAVAILABLE]
    assert requested(log_sidecar) == [(3, "now", False)]


def test_a_feed_from_latest_gives_up_on_get_status_after_max_reconnects(
    open_feed, log_sidecar, log_server, sleeps
):
    log_sidecar.status_error = grpc.StatusCode.UNAVAILABLE
    log_sidecar.script(*[Episode(send=0)] * 3)  # a subscription would end at once
    feed = open_feed(log_server.target, from_latest=True, sleep=sleeps, max_reconnects=2)

    with pytest.raises(FeedDisconnected):
        next(feed)
    assert len(sleeps) == 2
    assert log_sidecar.requests == []


def test_a_feed_from_latest_whose_get_status_is_refused_raises_and_subscribes_not(
    open_feed, log_sidecar, log_server, sleeps
):
    """Without the newest sequence it cannot start after it (a feed after a sequence would go
    on with its log unchecked; one from the newest would start from 0)."""
    log_sidecar.publish(1, 2, 3)
    log_sidecar.status_error = grpc.StatusCode.UNIMPLEMENTED
    log_sidecar.script(Episode(send=0, code=grpc.StatusCode.UNIMPLEMENTED, details="no stream"))
    feed = open_feed(log_server.target, from_latest=True, sleep=sleeps)

    with pytest.raises(RiskBudgetError) as raised:
        next(feed)

    assert (raised.value.method, raised.value.code) == ("GetStatus", grpc.StatusCode.UNIMPLEMENTED)
    assert log_sidecar.requests == [] and sleeps == []
    assert feed.closed


@pytest.mark.parametrize(
    "options, message",
    [
        ({"after_sequence": 3}, "from_latest starts after the sidecar's newest recommendation: "
         "it takes no after_sequence or log_id"),
        ({"log_id": "abc"}, "it takes no after_sequence or log_id"),
        ({"after_sequence": 3, "log_id": "abc"}, "got after_sequence 3, log_id 'abc'"),
    ],
)
@pytest.mark.parametrize("kind", [RecommendationFeed, AsyncRecommendationFeed])
def test_from_latest_with_a_checkpoint_is_a_type_error(kind, options, message):
    with pytest.raises(TypeError, match=message):
        kind("127.0.0.1:1", from_latest=True, **options)


@pytest.mark.parametrize("value", [1, 0, None, "yes", "False"])
@pytest.mark.parametrize("kind", [RecommendationFeed, AsyncRecommendationFeed])
def test_from_latest_must_be_true_or_false(kind, value):
    with pytest.raises(TypeError, match=f"from_latest must be True or False, got {value!r}"):
        kind("127.0.0.1:1", from_latest=value)


@pytest.mark.parametrize("kind", [RecommendationFeed, AsyncRecommendationFeed])
def test_from_latest_takes_numpys_bools_and_no_checkpoint(kind):
    numpy = pytest.importorskip("numpy")

    kind("127.0.0.1:1", from_latest=numpy.bool_(True))
    kind("127.0.0.1:1", 0, log_id="", from_latest=True)
    kind("127.0.0.1:1", 3, log_id="abc", from_latest=numpy.bool_(False))


# -- the source ------------------------------------------------------------------


@pytest.mark.parametrize(
    "source, got",
    [(50051, "int 50051"), (None, "NoneType None"), (b"127.0.0.1:1", "bytes b'127.0.0.1:1'"),
     (("127.0.0.1", 1), "tuple ('127.0.0.1', 1)")],
)
@pytest.mark.parametrize(
    "kind, client",
    [(RecommendationFeed, "a RiskBudgetClient"), (AsyncRecommendationFeed, "an AsyncRiskBudgetClient")],
)
def test_a_feed_refuses_a_source_that_is_neither_a_target_nor_a_client(kind, client, source, got):
    with pytest.raises(TypeError) as raised:
        kind(source)

    assert str(raised.value) == (
        f"source must be the sidecar's target (such as '127.0.0.1:50051') or {client}, got {got}"
    )


async def test_each_feed_refuses_the_other_feeds_client():
    with RiskBudgetClient("127.0.0.1:1") as blocking:
        with pytest.raises(TypeError, match=r"or an AsyncRiskBudgetClient, got RiskBudgetClient "
                           r"\(a client for RecommendationFeed\)"):
            AsyncRecommendationFeed(blocking)
    async with AsyncRiskBudgetClient("127.0.0.1:1") as asynchronous:
        with pytest.raises(TypeError, match=r"or a RiskBudgetClient, got AsyncRiskBudgetClient "
                           r"\(a client for AsyncRecommendationFeed\)"):
            RecommendationFeed(asynchronous)
