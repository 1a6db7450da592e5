"""Builders for store tests: decisions, overrides, recommendations and what a store holds."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from riskbudget_sidecar.engine.types import (
    Decision, DecisionRecord, OrderRequest, Override, OverrideKind, OverrideScope, Reason,
    ReasonCode, Recommendation, RecommendationTrigger, Regime, SymbolAllocation, TradeDecision,
)
from tests.engine.builders import NOW, order

def decision(request: OrderRequest, *, approved: float | None = None) -> TradeDecision:
    approved = request.quantity if approved is None else approved
    resized = approved < request.quantity
    return TradeDecision(
        client_order_id=request.client_order_id,
        decision=Decision.RESIZED if resized else Decision.APPROVED,
        requested_quantity=request.quantity, approved_quantity=approved,
        reasons=(Reason(ReasonCode.SYMBOL_POSITION_LIMIT, "limit", 1_000.0, 1_200.0),) if resized else (),
        budget_version=7, regime=Regime.BULL, budget_computed_at=NOW - 10, reduces_exposure=False,
        reference_price=100.0, reserved=True, reservation_expires_at=NOW + 60,
        override_ids=("ovr-1",))


def decision_record(client_order_id: str, *, at: float = NOW) -> DecisionRecord:
    request = order(client_order_id=client_order_id)
    return DecisionRecord(at, request, decision(request))


def override(override_id: str, *, value: float = 0.5, expires_at: float | None = None) -> Override:
    return Override(override_id, OverrideScope.STRATEGY, "alpha", OverrideKind.SCALE_LEVERAGE, value,
                    None, "ops", "calm down", NOW, expires_at)


def recommendation(reason: str = "drift", *, created_at: float = NOW) -> Recommendation:
    """A recommendation as the service drafts it: sequence 0, for the log to number."""
    allocation = (SymbolAllocation("alpha", "AAA", 0.25, 250_000.0),)
    return Recommendation(0, (RecommendationTrigger.DRIFT,), reason, 7, Regime.BEAR, NOW - 10,
                          allocation, allocation, True, created_at)


def held_by(store: Any) -> dict[str, Any]:
    """Everything a store holds, in a form two stores can be compared by."""
    states = {name: store.own_trading_state(name) for name in ("alpha", "beta")}
    return {
        "positions": sorted(store.book.positions(), key=repr),
        "reservations": sorted(store.book.reservations(), key=repr),
        "exposures": {symbol: store.book.net_exposure(symbol) for symbol in ("AAA", "BBB", "CCC")},
        "remembered": {key: store.remembered(key) for key in ("o-1", "o-2", "o-3", "o-4")},
        "trading_states": (store.trading_state(), states),
        "overrides": store.overrides(),
        "recommendations": store.recommendations_after(0, 1_000),
    }


@contextmanager
def write_lock(path: Path) -> Iterator[None]:
    """Hold the database's write lock from another connection, as a stuck writer would."""
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield
        other.execute("ROLLBACK")
    finally:
        other.close()
