"""Prometheus metrics of one sidecar, in a registry of its own (several may share a process)."""

from __future__ import annotations

import bisect
import itertools
import math
import time
from typing import Iterator

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram
from prometheus_client.metrics_core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from ..engine.types import Decision, ReasonCode, Regime, TradeDecision

LATENCY_BUCKETS = (10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 50e-3)


class _Latencies:
    """One decision's share of CheckTradeLatency."""

    __slots__ = ("counts", "sum", "created")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * buckets
        self.sum = 0.0
        self.created = time.time()


class CheckTradeLatency(Collector):
    """riskbudget_check_trade_seconds: a histogram by decision, exported exactly as
    prometheus_client's Histogram exports it, but observed without its two locks per call
    (1.3 us a check, against 0.5 us here). No lock is needed: the event loop both observes
    and serves the scrapes."""

    name = "riskbudget_check_trade_seconds"
    documentation = "CheckTrade's own work (sidecar side), by decision"

    def __init__(self, buckets: tuple[float, ...], registry: CollectorRegistry) -> None:
        self._bounds = (*buckets, math.inf)
        self._by_decision = {decision: _Latencies(len(self._bounds)) for decision in Decision}
        registry.register(self)

    def observe(self, decision: Decision, seconds: float) -> None:
        latencies = self._by_decision[decision]
        latencies.counts[bisect.bisect_left(self._bounds, seconds)] += 1  # the first bound >= seconds
        latencies.sum += seconds

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=["decision"])
        for decision, latencies in self._by_decision.items():
            family.add_metric([decision.value], list(zip(map(floatToGoString, self._bounds),
                                                         itertools.accumulate(latencies.counts))),
                              sum_value=latencies.sum)
            family.add_sample(f"{self.name}_created", {"decision": decision.value}, latencies.created)
        yield family


class SidecarMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.check_seconds = CheckTradeLatency(LATENCY_BUCKETS, registry=r)
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
        self.decision_log_backlog = Gauge("riskbudget_decision_log_backlog",
                                          "Decisions waiting to be written", registry=r)
        self.decision_log_overflowed = Gauge(
            "riskbudget_decision_log_overflowed", "Decisions sent to the fallback log", registry=r)
        self.overrides = Gauge("riskbudget_overrides_active", "Active operator overrides", registry=r)
        self.success = Gauge("riskbudget_success", "The seed's success metrics", ["metric"], registry=r)
        self._approved = self.decisions.labels(Decision.APPROVED.value, "none")
        self._decided_for: dict[tuple[Decision, ReasonCode], Counter] = {}
        """riskbudget_decisions by (decision, reason code), looked up once each: labels() costs
        more than the increment. Filled as they occur, so only codes seen are exported."""

    def observe_check(self, decision: TradeDecision, seconds: float) -> None:
        """The hot path's share: about a microsecond."""
        self.check_seconds.observe(decision.decision, seconds)
        if not decision.reasons:
            self._approved.inc()
        for reason in decision.reasons:
            self._decided(decision.decision, reason.code).inc()

    def _decided(self, decision: Decision, code: ReasonCode) -> Counter:
        counter = self._decided_for.get((decision, code))
        if counter is None:
            counter = self._decided_for[decision, code] = self.decisions.labels(decision.value, code.value)
        return counter
