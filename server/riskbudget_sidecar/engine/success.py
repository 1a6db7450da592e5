"""The seed's success metrics, accumulated as the sidecar runs.

- budget utilization: the time-weighted average, since start, of the book's
  utilization (the largest used / limit fraction of its budget);
- regime response time: seconds from the market-data update that changed the
  regime to the recommendation being logged (the median and the worst);
- override frequency: operator overrides set per day since start (over at least
  one day, so that one override in the first minute does not read as thousands a day);
- capital efficiency: return per unit of risk since start, a Sharpe-like ratio:
  the book's mark-to-market gain over NAV, divided by its time-averaged ex-ante
  volatility scaled to the elapsed time (vol x sqrt(years)). 0 until a year
  fraction with some risk has passed.

Time is passed in; nothing here reads the clock.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Mapping

SECONDS_PER_YEAR = 365.25 * 86_400.0


@dataclass(frozen=True, slots=True)
class SuccessSummary:
    budget_utilization: float
    regime_response_p50: float
    regime_response_max: float
    regime_responses: int
    overrides_per_day: float
    capital_efficiency: float
    return_since_start: float
    average_volatility: float


class SuccessMetrics:
    def __init__(self, *, start: float, net_asset_value: float) -> None:
        if net_asset_value <= 0:
            raise ValueError(f"net_asset_value must be positive, got {net_asset_value}")
        self._start = start
        self._nav = net_asset_value
        self._last_time = start
        self._utilization = 0.0
        self._volatility = 0.0
        self._utilization_area = 0.0
        self._volatility_area = 0.0
        self._gain = 0.0
        self._marks: dict[str, float] = {}
        self._responses: list[float] = []
        self._overrides = 0

    def observe(self, now: float, *, utilization: float, ex_ante_volatility: float,
                net_positions: Mapping[str, float], prices: Mapping[str, float]) -> None:
        """Fold in the time since the last observation, and the book's gain at `prices`."""
        elapsed = max(now - self._last_time, 0.0)
        self._utilization_area += self._utilization * elapsed
        self._volatility_area += self._volatility * elapsed
        for symbol, quantity in net_positions.items():
            price = prices.get(symbol)
            mark = self._marks.get(symbol)
            if price is not None and mark is not None:
                self._gain += quantity * (price - mark)
        self._marks.update(prices)
        self._last_time = max(now, self._last_time)
        self._utilization = utilization if math.isfinite(utilization) else 0.0
        self._volatility = ex_ante_volatility if math.isfinite(ex_ante_volatility) else 0.0

    def record_regime_response(self, seconds: float) -> None:
        self._responses.append(seconds)

    def record_override(self) -> None:
        self._overrides += 1

    def summary(self, now: float) -> SuccessSummary:
        elapsed = max(now - self._start, 0.0)
        tail = max(now - self._last_time, 0.0)
        utilization_area = self._utilization_area + self._utilization * tail
        volatility_area = self._volatility_area + self._volatility * tail
        average_utilization = utilization_area / elapsed if elapsed > 0 else self._utilization
        average_volatility = volatility_area / elapsed if elapsed > 0 else self._volatility
        years = elapsed / SECONDS_PER_YEAR
        gain = self._gain / self._nav
        risk = average_volatility * math.sqrt(years)
        return SuccessSummary(
            budget_utilization=average_utilization,
            regime_response_p50=statistics.median(self._responses) if self._responses else 0.0,
            regime_response_max=max(self._responses, default=0.0),
            regime_responses=len(self._responses),
            overrides_per_day=self._overrides / max(elapsed / 86_400.0, 1.0),
            capital_efficiency=gain / risk if risk > 0 else 0.0,
            return_since_start=gain,
            average_volatility=average_volatility,
        )
