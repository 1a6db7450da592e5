"""SidecarMetrics.observe_check: what one CheckTrade adds to the sidecar's registry."""

from __future__ import annotations

from riskbudget_sidecar.engine.types import Decision, Reason, ReasonCode, Regime, TradeDecision
from riskbudget_sidecar.service.metrics import SidecarMetrics


def decided(decision: Decision, *codes: ReasonCode) -> TradeDecision:
    return TradeDecision(client_order_id="o-1", decision=decision, requested_quantity=10.0, approved_quantity=5.0,
                         reasons=tuple(Reason(code, code.value) for code in codes), budget_version=1,
                         regime=Regime.BULL, budget_computed_at=0.0, reduces_exposure=False, reference_price=100.0)


def decisions_total(metrics: SidecarMetrics) -> dict[tuple[str, str], float]:
    (family,) = [f for f in metrics.registry.collect() if f.name == "riskbudget_decisions"]
    return {(s.labels["decision"], s.labels["reason"]): s.value for s in family.samples if s.name.endswith("_total")}


def test_observe_check_counts_each_reason_under_its_decision_and_exports_only_codes_seen():
    metrics = SidecarMetrics()

    metrics.observe_check(decided(Decision.APPROVED), 20e-6)
    metrics.observe_check(decided(Decision.RESIZED, ReasonCode.MAX_ORDER_NOTIONAL), 30e-6)
    metrics.observe_check(decided(Decision.RESIZED, ReasonCode.MAX_ORDER_NOTIONAL,
                                  ReasonCode.SYMBOL_POSITION_LIMIT), 30e-6)
    metrics.observe_check(decided(Decision.REJECTED, ReasonCode.MAX_ORDER_NOTIONAL), 30e-6)

    assert decisions_total(metrics) == {
        ("approved", "none"): 1, ("resized", "max_order_notional"): 2, ("resized", "symbol_position_limit"): 1,
        ("rejected", "max_order_notional"): 1}


def test_observe_check_puts_each_check_in_its_decisions_latency_histogram():
    metrics = SidecarMetrics()

    metrics.observe_check(decided(Decision.APPROVED), 20e-6)
    metrics.observe_check(decided(Decision.APPROVED), 2e-3)
    metrics.observe_check(decided(Decision.REJECTED, ReasonCode.NO_BUDGET), 7e-6)

    def sample(name: str, **labels: str) -> float:
        return metrics.registry.get_sample_value(f"riskbudget_check_trade_seconds_{name}", labels)

    assert sample("count", decision="approved") == 2
    assert sample("bucket", decision="approved", le="2.5e-05") == 1
    assert sample("bucket", decision="approved", le="0.0025") == 2
    assert sample("sum", decision="approved") == 20e-6 + 2e-3
    assert sample("count", decision="rejected") == 1
    assert sample("bucket", decision="rejected", le="1e-05") == 1
    assert sample("count", decision="resized") == 0
