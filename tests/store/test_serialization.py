"""Domain types to JSON-ready dicts and back, as the store writes and reads them."""

from __future__ import annotations

import dataclasses
import json

from riskbudget_sidecar.engine.types import (
    DecisionRecord, OrderRequest, Override, Recommendation, Side, TradeDecision,
)
from riskbudget_sidecar.store.serialization import from_dict, to_dict
from tests.engine.builders import order
from tests.store.builders import decision, decision_record, override, recommendation


def through_json(value):
    return from_dict(type(value), json.loads(json.dumps(to_dict(value))))


def test_enums_are_written_by_name_and_tuples_as_lists() -> None:
    written = to_dict(decision(order(Side.SELL, 100), approved=60))

    assert written["decision"] == "RESIZED"
    assert written["regime"] == "BULL"
    assert written["reasons"] == [{"code": "SYMBOL_POSITION_LIMIT", "message": "limit",
                                   "limit": 1_000.0, "value": 1_200.0}]
    assert written["override_ids"] == ["ovr-1"]


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
