"""The JSON status of the admin port: one document for operators and the dashboard.

Budget, utilization, overrides, alerts and recommendations are the protobuf
messages gRPC answers with (the same converters), rendered by json_format with
the proto field names: one mapping, not two. Enum values are their proto names
(`REGIME_BULL`), 64-bit integers are strings, times are RFC 3339. The decisions
are the decision log's own records. Recent lists come newest first.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from riskbudget.v1 import types_pb2 as pb

from ..rpc import converters as convert
from ..service.sidecar import RiskBudgetSidecar

RECENT_RECOMMENDATIONS = 20
RECENT_DECISIONS = 50
RECENT_ALERTS = 50


def as_json(message: Message) -> dict[str, Any]:
    """A protobuf message as gRPC-JSON with the proto field names, zero values included."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


def _time(seconds: float) -> str:
    return convert.timestamp(seconds).ToJsonString()


def status(sidecar: RiskBudgetSidecar) -> dict[str, Any]:
    """Everything the dashboard shows; raises NotReady before the first budget."""
    snapshot = sidecar.require_snapshot()
    now = sidecar.now()
    store = sidecar.store
    book_state = sidecar.trading_state()
    strategy_states = {name: sidecar.strategy_trading_state(name) for name in snapshot.strategies}
    report = sidecar.utilization()
    sidecar.refresh_metrics(report)  # also folds the present into the success metrics
    oldest, newest = store.recommendation_bounds()
    recent = store.recommendations_after(max(newest - RECENT_RECOMMENDATIONS, 0), RECENT_RECOMMENDATIONS)
    backlog, overflowed = store.decision_log_stats()
    return {
        "now": _time(now),
        "budget": as_json(convert.budget(snapshot, book_state=book_state, strategy_states=strategy_states,
                                         strategy=None, checked_price=sidecar.checked_price)),
        "utilization": as_json(convert.utilization(report, snapshot)),
        "regime_history": [as_json(convert.regime_period(regime, since))
                           for regime, since in sidecar.regime_history],
        "regime_response_seconds": list(sidecar.regime_response_seconds),
        "recommendations": [as_json(convert.recommendation(r)) for r in reversed(recent)],
        "decisions": list(reversed(store.decisions(RECENT_DECISIONS))),
        "alerts": [as_json(convert.alert(a)) for a in sidecar.alerts.recent(RECENT_ALERTS)],
        "overrides": [as_json(convert.override(o)) for o in sidecar.overrides],
        "trading_states": {
            "book": _state_name(book_state),
            "strategies": {name: _state_name(state) for name, state in strategy_states.items()},
        },
        "success": dataclasses.asdict(sidecar.success.summary(now)),
        "stream": {"subscribers": sidecar.hub.subscriber_count, "max_lag": max(sidecar.hub.lags(), default=0),
                   "oldest_sequence": oldest, "last_sequence": newest},
        "decision_log": {"backlog": backlog, "overflowed": overflowed},
    }


def _state_name(state) -> str:
    return pb.TradingState.Name(convert.TRADING_STATE_TO_PB[state])
