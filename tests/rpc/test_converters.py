import dataclasses

from riskbudget_sidecar.rpc import converters as convert
from tests.store.builders import recommendation


def numbered(sequence: int, reason: str = "drift"):
    return dataclasses.replace(recommendation(reason), sequence=sequence)


def test_converted_recommendations_convert_each_sequence_once():
    cache = convert.ConvertedRecommendations()

    first, again = cache(numbered(1)), cache(numbered(1))

    assert first is again
    assert first == convert.recommendation(numbered(1))


def test_converted_recommendations_forget_the_oldest_past_capacity():
    cache = convert.ConvertedRecommendations(capacity=2)
    oldest = cache(numbered(1))
    cache(numbered(2))
    cache(numbered(3))

    assert cache(numbered(1)) is not oldest


def test_recommendation_messages_when_converted_by_the_cache_keep_it_unchanged():
    cache = convert.ConvertedRecommendations()
    batch = [numbered(1), numbered(2)]

    (message,) = convert.recommendation_messages(batch, 1 << 20, cache)
    message.recommendations[0].reason = "edited by a stream"

    assert [r.sequence for r in message.recommendations] == [1, 2]
    assert cache(numbered(1)).reason == "drift"
