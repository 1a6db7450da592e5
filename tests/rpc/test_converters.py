import dataclasses

import pytest

from riskbudget.v1 import risk_budget_service_pb2 as spb
from riskbudget.v1 import types_pb2 as pb
from riskbudget_sidecar.engine import types as d
from riskbudget_sidecar.rpc import converters as convert
from riskbudget_sidecar.service.errors import InvalidInput
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


# -- CheckTrade --------------------------------------------------------------------------------

def order_request(**change):
    fields = {"client_order_id": "o-1", "strategy": "trend", "symbol": "AAA", "side": pb.SIDE_SELL,
              "quantity": 5.0, **change}
    return spb.CheckTradeRequest(**fields)


def test_check_trade_request_converts_a_well_formed_order_at_the_limits():
    request = order_request(client_order_id="x" * convert.MAX_ID_LENGTH, quantity=convert.MAX_QUANTITY,
                            limit_price=convert.MAX_PRICE, dry_run=True)

    order = convert.check_trade_request(request)

    assert order == d.OrderRequest("x" * convert.MAX_ID_LENGTH, "trend", "AAA", d.Side.SELL,
                                   convert.MAX_QUANTITY, convert.MAX_PRICE, True)


def test_check_trade_request_without_a_limit_price_is_a_market_order():
    assert convert.check_trade_request(order_request()).limit_price == 0.0


ONE_WRONG_FIELD = [
    ("client_order_id", ""), ("client_order_id", "x" * (convert.MAX_ID_LENGTH + 1)),
    ("client_order_id", "bad\x00id"), ("strategy", ""), ("strategy", "s" * (convert.MAX_NAME_LENGTH + 1)),
    ("symbol", "bad\nsymbol"), ("side", pb.SIDE_UNSPECIFIED), ("side", 7), ("quantity", 0.0), ("quantity", -1.0),
    ("quantity", float("nan")), ("quantity", float("inf")), ("quantity", convert.MAX_QUANTITY * 2),
    ("limit_price", -1.0), ("limit_price", float("nan")), ("limit_price", convert.MAX_PRICE * 2),
]


@pytest.mark.parametrize("field, value", ONE_WRONG_FIELD, ids=[f"{f}={v!r}" for f, v in ONE_WRONG_FIELD])
def test_check_trade_request_with_one_wrong_field_names_it(field, value):
    with pytest.raises(InvalidInput) as refused:
        convert.check_trade_request(order_request(**{field: value}))

    assert [name for name, _ in refused.value.violations] == [field]


def test_check_trade_request_names_every_wrong_field_at_once():
    request = order_request(client_order_id="", symbol="bad\x00", side=pb.SIDE_UNSPECIFIED,
                            quantity=float("nan"), limit_price=-1.0)

    with pytest.raises(InvalidInput) as refused:
        convert.check_trade_request(request)

    assert [field for field, _ in refused.value.violations] == [
        "client_order_id", "symbol", "side", "quantity", "limit_price"]


def decision(**change):
    fields = {"client_order_id": "o-1", "decision": d.Decision.RESIZED, "requested_quantity": 10.0,
              "approved_quantity": 4.0, "reasons": (), "budget_version": 3, "regime": d.Regime.BEAR,
              "budget_computed_at": 1_700_000_000.25, "reduces_exposure": False, "reference_price": 101.5}
    return d.TradeDecision(**{**fields, **change})


def test_trade_decision_carries_every_field_of_the_decision():
    reasons = (d.Reason(d.ReasonCode.MAX_ORDER_NOTIONAL, "too big", 1000.0, 1015.0),
               d.Reason(d.ReasonCode.SHADOW_MODE, "shadow mode: would have been resized"))

    response = convert.trade_decision(decision(
        reasons=reasons, reserved=True, reservation_expires_at=1_700_000_030.5,
        shadow_decision=d.Decision.RESIZED, override_ids=("ovr-1", "ovr-2")))

    assert response == spb.CheckTradeResponse(
        client_order_id="o-1", decision=pb.DECISION_RESIZED, requested_quantity=10.0, approved_quantity=4.0,
        reasons=[pb.Reason(code=pb.REASON_CODE_MAX_ORDER_NOTIONAL, message="too big", limit=1000.0, value=1015.0),
                 pb.Reason(code=pb.REASON_CODE_SHADOW_MODE, message="shadow mode: would have been resized")],
        budget=pb.BudgetRef(version=3, regime=pb.REGIME_BEAR, computed_at=convert.timestamp(1_700_000_000.25)),
        reserved=True, reference_price=101.5, override_ids=["ovr-1", "ovr-2"],
        reservation_expires_at=convert.timestamp(1_700_000_030.5), shadow_decision=pb.DECISION_RESIZED)


def test_trade_decision_without_a_budget_has_an_empty_budget_ref_and_no_expiry():
    response = convert.trade_decision(decision(budget_version=0, regime=None, budget_computed_at=0.0,
                                               decision=d.Decision.REJECTED, approved_quantity=0.0))

    assert response.HasField("budget") and response.budget == pb.BudgetRef()
    assert not response.HasField("reservation_expires_at")


def test_trade_decisions_against_one_budget_do_not_share_its_budget_ref():
    first = convert.trade_decision(decision())
    first.budget.version = 99

    assert convert.trade_decision(decision()).budget.version == 3
