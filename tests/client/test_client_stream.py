"""StreamRecommendations hands out recommendations one at a time, whatever
batches they arrive in."""

import asyncio

import grpc
import pytest

from riskbudget.v1 import types_pb2
from riskbudget_client import AsyncRiskBudgetClient, RiskBudgetClient, RiskBudgetError


def recommendations(*sequences):
    return [types_pb2.Recommendation(sequence=sequence) for sequence in sequences]


def test_stream_recommendations_flattens_batches_in_order(sidecar, target):
    sidecar.recommendation_batches = [recommendations(4, 5), recommendations(6)]

    with RiskBudgetClient(target) as client:
        received = list(client.stream_recommendations(after_sequence=3))

    assert [recommendation.sequence for recommendation in received] == [4, 5, 6]
    assert sidecar.requests["StreamRecommendations"].after_sequence == 3


async def test_async_stream_recommendations_flattens_batches_in_order(sidecar, target):
    sidecar.recommendation_batches = [recommendations(4, 5), recommendations(6)]

    async with AsyncRiskBudgetClient(target) as client:
        received = [recommendation async for recommendation in client.stream_recommendations(3)]

    assert [recommendation.sequence for recommendation in received] == [4, 5, 6]
    assert sidecar.requests["StreamRecommendations"].after_sequence == 3


def test_stream_recommendations_from_latest_asks_for_live_ones_only(sidecar, target):
    with RiskBudgetClient(target) as client:
        list(client.stream_recommendations(from_latest=True))

    assert sidecar.requests["StreamRecommendations"].from_latest


async def test_async_stream_recommendations_from_latest_asks_for_live_ones_only(sidecar, target):
    async with AsyncRiskBudgetClient(target) as client:
        [recommendation async for recommendation in client.stream_recommendations(0, True)]

    assert sidecar.requests["StreamRecommendations"].from_latest


@pytest.mark.parametrize("after_sequence", [-1, 1.5, None, 2**64])
def test_stream_recommendations_refuses_a_bad_sequence_before_calling(
    sidecar, target, after_sequence
):
    with RiskBudgetClient(target) as client, pytest.raises(ValueError, match="after_sequence"):
        client.stream_recommendations(after_sequence)

    assert "StreamRecommendations" not in sidecar.requests


async def test_async_stream_recommendations_refuses_a_bad_sequence_before_calling(
    sidecar, target
):
    async with AsyncRiskBudgetClient(target) as client:
        with pytest.raises(ValueError, match="after_sequence"):
            client.stream_recommendations(-1)

    assert "StreamRecommendations" not in sidecar.requests


def test_closing_the_recommendation_iterator_cancels_the_stream(sidecar, target):
    sidecar.recommendation_batches = [recommendations(1, 2)]
    sidecar.hang = True

    with RiskBudgetClient(target) as client:
        stream = client.stream_recommendations()
        next(stream)
        stream.close()

        assert sidecar.stream_ended.wait()


async def test_closing_the_async_recommendation_iterator_cancels_the_stream(sidecar, target):
    sidecar.recommendation_batches = [recommendations(1, 2)]
    sidecar.hang = True

    async with AsyncRiskBudgetClient(target) as client:
        stream = client.stream_recommendations()
        await anext(stream)
        await stream.aclose()

        assert await asyncio.to_thread(sidecar.stream_ended.wait)


def test_stream_recommendations_raises_risk_budget_error_when_the_stream_fails(sidecar, target):
    sidecar.failure = (grpc.StatusCode.UNAUTHENTICATED, "no token")

    with RiskBudgetClient(target) as client, pytest.raises(RiskBudgetError) as raised:
        list(client.stream_recommendations())

    assert raised.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert raised.value.method == "StreamRecommendations"


async def test_async_stream_recommendations_raises_risk_budget_error_when_the_stream_fails(
    sidecar, target
):
    sidecar.failure = (grpc.StatusCode.UNAUTHENTICATED, "no token")

    async with AsyncRiskBudgetClient(target) as client:
        with pytest.raises(RiskBudgetError) as raised:
            [recommendation async for recommendation in client.stream_recommendations()]

    assert raised.value.code == grpc.StatusCode.UNAUTHENTICATED
