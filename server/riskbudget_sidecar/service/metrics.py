"""Prometheus metrics of one sidecar, in a registry of its own (several may share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram

from ..engine.types import Decision, ReasonCode, Regime, TradeDecision

LATENCY_BUCKETS = (10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 50e-3)


class SidecarMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.check_seconds = Histogram(
            "riskbudget_check_trade_seconds", "CheckTrade's own work (sidecar side), by decision",
            ["decision"], buckets=LATENCY_BUCKETS, registry=r)
        self.decisions = Counter(
            "riskbudget_decisions", "CheckTrade decisions by decision and reason code",
            ["decision", "reason"], registry=r)
        self.utilization = Gauge(
            "riskbudget_utilization", "Used / limit of each budget (the largest fraction)",
            ["scope", "name"], registry=r)
        self.regime = Enum("riskbudget_regime", "The regime of the current budget",
                           states=[regime.value for regime in Regime], registry=r)
        self.budget_version = Gauge("riskbudget_budget_version", "Version of the current budget",
                                    registry=r)
        self.recompute_seconds = Histogram(
            "riskbudget_recompute_seconds", "Time to compute a budget snapshot",
            buckets=(1e-4, 5e-4, 1e-3, 5e-3, 10e-3, 50e-3, 0.1, 0.5, 1.0), registry=r)
        self.subscribers = Gauge("riskbudget_stream_subscribers", "Recommendation stream subscribers",
                                 registry=r)
        self.subscriber_lag = Gauge(
            "riskbudget_stream_max_lag", "Recommendations the slowest subscriber has yet to receive",
            registry=r)
        self.recommendations = Counter("riskbudget_recommendations", "Recommendations by trigger",
                                       ["trigger"], registry=r)
        self.regime_response = Histogram(
            "riskbudget_regime_response_seconds",
            "From the market-data update that changed the regime to the recommendation in the log",
            buckets=(1e-3, 5e-3, 10e-3, 25e-3, 50e-3, 0.1, 0.25, 1.0), registry=r)
        self.store_errors = Counter("riskbudget_store_errors", "Changes the state store refused",
                                    registry=r)
        self.replays = Counter(
            "riskbudget_check_trade_replays",
            "CheckTrades answered with the first answer to their client order id (not decisions)",
            registry=r)
        self.decision_log_backlog = Gauge("riskbudget_decision_log_backlog",
                                          "Decisions waiting to be written", registry=r)
        self.decision_log_overflowed = Gauge(
            "riskbudget_decision_log_overflowed", "Decisions sent to the fallback log", registry=r)
        self.disk_free = Gauge("riskbudget_state_disk_free_bytes",
                               "Bytes free on the filesystem of the state database (SQLite only: a "
                               "labelled gauge, so that a store writing no file exports none)",
                               ["database"], registry=r)
        self.overrides = Gauge("riskbudget_overrides_active", "Active operator overrides", registry=r)
        self.success = Gauge("riskbudget_success", "The seed's success metrics", ["metric"], registry=r)
        self._checks = {decision: self.check_seconds.labels(decision.value) for decision in Decision}
        self._approved = self.decisions.labels(Decision.APPROVED.value, "none")
        self._utilization_labels: set[tuple[str, str]] = set()
        self._decided_for: dict[tuple[Decision, ReasonCode], Counter] = {}
        """riskbudget_decisions by (decision, reason code), looked up once each: labels() costs
        more than the increment. Filled as they occur, so only codes seen are exported."""

    def observe_check(self, decision: TradeDecision, seconds: float) -> None:
        """The hot path's share: a few microseconds."""
        self._checks[decision.decision].observe(seconds)
        if not decision.reasons:
            self._approved.inc()
        for reason in decision.reasons:
            self._decided(decision.decision, reason.code).inc()

    def set_utilization(self, fractions: dict[tuple[str, str], float]) -> None:
        """riskbudget_utilization by (scope, name), exactly these: a strategy or symbol a reload
        took out of the config loses its series, which would otherwise stay at its last value."""
        for gone in self._utilization_labels - fractions.keys():
            self.utilization.remove(*gone)
        for labels, fraction in fractions.items():
            self.utilization.labels(*labels).set(fraction)
        self._utilization_labels = set(fractions)

    def _decided(self, decision: Decision, code: ReasonCode) -> Counter:
        counter = self._decided_for.get((decision, code))
        if counter is None:
            counter = self._decided_for[decision, code] = self.decisions.labels(decision.value, code.value)
        return counter
