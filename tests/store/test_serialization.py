"""Domain types to JSON and back, as the store writes and reads them."""

from __future__ import annotations

import dataclasses
import json

from riskbudget_sidecar.engine.types import (
    DecisionRecord, OrderRequest, Override, Recommendation, Side, TradeDecision,
)
from riskbudget_sidecar.store.serialization import from_dict, to_dict, to_json
from tests.engine.builders import order
from tests.store.builders import decision, decision_record, override, recommendation


def through_json(value):
    return from_dict(type(value), json.loads(to_json(value)))


def resized_sale() -> DecisionRecord:
    request = order(Side.SELL, 100)
    return DecisionRecord(1_000.0, request, decision(request, approved=60))


def test_enums_are_written_by_value_and_tuples_as_lists() -> None:
    written = json.loads(to_json(resized_sale()))

    assert written["order"]["side"] == -1
    assert written["decision"]["decision"] == "resized"
    assert written["decision"]["regime"] == "bull"
    assert written["decision"]["reasons"] == [{"code": "symbol_position_limit", "message": "limit",
                                               "limit": 1_000.0, "value": 1_200.0}]
    assert written["decision"]["override_ids"] == ["ovr-1"]


def test_to_dict_is_what_to_json_writes() -> None:
    record = decision_record("o-1")

    assert to_dict(record) == json.loads(to_json(record))


def test_enums_written_by_name_by_an_earlier_version_still_read() -> None:
    current = resized_sale()
    by_name = json.loads(to_json(current))
    by_name["order"]["side"] = "SELL"
    by_name["decision"].update(decision="RESIZED", regime="BULL")
    by_name["decision"]["reasons"][0]["code"] = "SYMBOL_POSITION_LIMIT"

    assert from_dict(DecisionRecord, by_name) == current


def test_every_stored_type_reads_back_equal_through_json() -> None:
    stored = [order(Side.SELL, 5, limit_price=99.5), decision(order(), approved=60),
              override("a", expires_at=1_500.0), recommendation("drift"), decision_record("o-9")]

    assert [through_json(value) for value in stored] == stored
    assert [type(value) for value in stored] == [
        OrderRequest, TradeDecision, Override, Recommendation, DecisionRecord]


def test_none_in_an_optional_field_reads_back_as_none() -> None:
    undecided = dataclasses.replace(decision(order()), regime=None, reservation_expires_at=None,
                                    shadow_decision=None)

    assert through_json(undecided) == undecided
