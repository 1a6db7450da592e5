"""Rebalancing triggers: which conditions call for a recommendation now.

Each evaluation looks at the latest budget and the book:

- REGIME_CHANGE when the regime has just changed (and `regime_change` is on);
  a new regime is a new condition, so it always fires: no cooldown.
- DRIFT when a strategy's drift (see the recommendations module) is above
  `drift_threshold`; each strategy has a cooldown of its own, so one firing
  names every strategy it fires for; severity: the worst of their drifts.
- CORRELATION_SPIKE when the budget's average correlation is above
  `correlation_spike`; severity: the correlation.
- VOL_BREACH when the book's volatility (its ex-ante volatility, over NAV) is above
  `vol_breach` x the budget's vol target; severity: the book's / the target.

Cooldown, for the last three: once a trigger fires at time t it does not fire
again before t + `cooldown`, unless its severity is worse than the one it last
fired with by more than WORSE_MARGIN (relative): a worsening condition is never
held back, while noise around a level does not beat the cooldown. Every firing,
a worse one too, starts the cooldown afresh. When its condition clears, down to
REARM_FRACTION of the threshold, the trigger re-arms: its next firing is a new
condition and not subject to the cooldown. Between that and the threshold it
neither fires nor re-arms, so that a condition flapping across the threshold does
not beat the cooldown at each crossing. A severity that is NaN (not known yet)
neither fires nor re-arms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from .config import RebalancingTriggers
from .types import BudgetSnapshot, RecommendationTrigger, Regime

WORSE_MARGIN = 0.10
"""How much worse, relative to its last firing, a condition must get to beat the cooldown."""
REARM_FRACTION = 0.8
"""How far below its threshold, as a fraction of it, a condition must clear to re-arm."""
DRIFT_KEY = RecommendationTrigger.DRIFT.value + ":"
"""What `fired` keys a strategy's drift by, before the strategy's name."""


@dataclass(frozen=True, slots=True)
class Firing:
    """A trigger that fired: how severe (in the trigger's own units, see the module; 1 for a
    regime change or a manual request) and why."""

    trigger: RecommendationTrigger
    severity: float
    reason: str


class _Latch:
    """One trigger's memory: when it last fired (None: armed) and how severe it was."""

    __slots__ = ("fired_at", "severity")

    def __init__(self) -> None:
        self.fired_at: float | None = None
        self.severity = 0.0

    def fires(self, now: float, severity: float, cooldown: float) -> bool:
        """Whether a condition present at `now` fires; if it does, remember it."""
        due = (self.fired_at is None or now >= self.fired_at + cooldown
               or severity > self.severity * (1 + WORSE_MARGIN))
        if due:
            self.fired_at, self.severity = now, severity
        return due

    def rearm(self) -> None:
        """The condition cleared: the next firing is a new one, free of the cooldown."""
        self.fired_at = None


class TriggerMonitor:
    """Decides, evaluation by evaluation, which rebalancing triggers fire."""

    def __init__(self, settings: RebalancingTriggers) -> None:
        self._settings = settings
        self._latches = {trigger: _Latch() for trigger in (
            RecommendationTrigger.CORRELATION_SPIKE, RecommendationTrigger.VOL_BREACH)}
        self._drift_latches: dict[str, _Latch] = {}
        """Per strategy: one strategy's drift, in its cooldown, must not hold back another's."""

    def reconfigure(self, settings: RebalancingTriggers) -> None:
        """New thresholds and cooldown; what fired, and when, is kept: a config reload must not
        send a recommendation again within its cooldown."""
        self._settings = settings

    def fired(self) -> dict[str, tuple[float, float]]:
        """(when, how severe) each trigger last fired, of those still in their cooldown's
        memory (not re-armed): what a restart must keep, not to send them again. Keyed by the
        trigger's value, and drift by strategy ('drift:<strategy>')."""
        latches = {**{trigger.value: latch for trigger, latch in self._latches.items()},
                   **{DRIFT_KEY + strategy: latch for strategy, latch in self._drift_latches.items()}}
        return {key: (latch.fired_at, latch.severity)
                for key, latch in latches.items() if latch.fired_at is not None}

    def restore(self, fired: Mapping[str, tuple[float, float]]) -> None:
        """Take up what `fired` returned before a restart (a key it does not know is dropped)."""
        for trigger, latch in self._latches.items():
            latch.fired_at, latch.severity = fired.get(trigger.value, (None, 0.0))
        self._drift_latches = {}
        for key, (fired_at, severity) in fired.items():
            if key.startswith(DRIFT_KEY):
                latch = self._drift_latches[key.removeprefix(DRIFT_KEY)] = _Latch()
                latch.fired_at, latch.severity = fired_at, severity

    def evaluate(
        self,
        *,
        now: float,
        regime_changed: bool,
        previous_regime: Regime | None,
        snapshot: BudgetSnapshot,
        drift: Mapping[str, float],
        book_volatility: float,
    ) -> list[Firing]:
        """The triggers that fire now, in the order above.

        `drift` is per strategy (`strategy_drift`); `book_volatility` is the annualized
        volatility the book runs at as a fraction of NAV: the ex-ante volatility of the
        positions held at the live covariance.
        """
        settings = self._settings
        firings = []
        if regime_changed and settings.regime_change:
            before = f"from {previous_regime.value} " if previous_regime is not None else ""
            firings.append(Firing(RecommendationTrigger.REGIME_CHANGE, 1.0,
                                  f"regime changed {before}to {snapshot.regime.value}"))

        firings += self._drift_firings(now, drift)

        correlation = snapshot.average_correlation
        firings += self._check(
            RecommendationTrigger.CORRELATION_SPIKE, now, correlation, settings.correlation_spike,
            f"average correlation {correlation:.2f} above the {settings.correlation_spike:g} spike level")

        target = snapshot.vol_target
        ratio = book_volatility / target
        firings += self._check(
            RecommendationTrigger.VOL_BREACH, now, ratio, settings.vol_breach,
            f"the book's ex-ante volatility {book_volatility:.1%} is {ratio:.2f}x the {_percent(target)} "
            f"target, above the {settings.vol_breach:g}x breach level")
        return firings

    @staticmethod
    def manual(reason: str) -> Firing:
        """An operator's request for a recommendation: fires whatever the conditions."""
        return Firing(RecommendationTrigger.MANUAL, 1.0, reason)

    def _drift_firings(self, now: float, drift: Mapping[str, float]) -> list[Firing]:
        """One DRIFT firing naming, worst first, each strategy whose own latch lets its drift fire
        (a strategy missing from `drift` is left as it was)."""
        threshold = self._settings.drift_threshold
        fired = [(strategy, severity) for strategy, severity in sorted(drift.items(), key=lambda item: (-item[1], item[0]))
                 if self._fires(self._drift_latches.setdefault(strategy, _Latch()), now, severity, threshold)]
        if not fired:
            return []
        return [Firing(RecommendationTrigger.DRIFT, fired[0][1], "; ".join(
            f"drift {severity:.1%} in {strategy} above the {_percent(threshold)} threshold"
            for strategy, severity in fired))]

    def _check(self, trigger: RecommendationTrigger, now: float, severity: float, threshold: float,
               reason: str) -> list[Firing]:
        """[the firing] if the condition is present and its latch lets it fire, else []."""
        if not self._fires(self._latches[trigger], now, severity, threshold):
            return []
        return [Firing(trigger, severity, reason)]

    def _fires(self, latch: _Latch, now: float, severity: float, threshold: float) -> bool:
        """Whether a condition of `severity` fires `latch` now: re-armed once it cleared to
        REARM_FRACTION of the threshold, left alone just below the threshold and when unknown (NaN)."""
        if math.isnan(severity):
            return False
        if severity <= threshold:
            if severity <= threshold * REARM_FRACTION:
                latch.rearm()
            return False
        return latch.fires(now, severity, self._settings.cooldown)


def _percent(fraction: float) -> str:
    """0.1 -> '10%', 0.125 -> '12.5%'."""
    return f"{fraction * 100:g}%"
