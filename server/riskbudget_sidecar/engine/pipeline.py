"""The numeric path from prices to a budget: market state -> regime -> allocation.

One object holds what the live sidecar's worker thread and the backtest's replay
both need, so that the two run the same code:

- `apply_tick` records a price; the first tick of a later bar closes the open bar,
  and each closed bar moves the regime detector (benchmark close, and the
  portfolio's average pairwise correlation over closed bars only).
- `advance_to` closes the open bar once time has passed its end (the sidecar's
  monitoring tick), with the same effect on the regime. The bar's close alone calls for
  no new budget when the last one already folded that bar in (provisionally) and
  nothing moved: no regime change, no symbol newly with enough data.
- `recompute` computes a new budget snapshot, versioned one above the last, when
  anything has changed since the last one (a tick, a closed bar that moved the
  estimates or the regime, the overrides in force (`set_overrides`), the config,
  `invalidate`), and returns None otherwise. The regime is the detector's, or `regime.initial`
  while `risk_budgeting.enabled` is false, or the one a FORCE_REGIME override
  forces (its `regime_since` is that override's creation time).

Time is passed in, never read: the caller's clock (live) or the data's (replay).
One thread feeds it prices and recomputes; readers take the immutable `snapshot`.
Another thread may change its other inputs (`set_overrides`, `reconfigure`, `invalidate`)
meanwhile: a recompute takes the pending change before it reads them, so a change
made while it runs is either in its budget or makes the next recompute run.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .allocation import compute_budget
from .config import Config
from .market_state import ClosedBar, MarketState
from .overrides import forced_regime
from .regime import RegimeChange, RegimeDetector
from .types import BudgetSnapshot, Override, OverrideKind, PriceTick


class BudgetPipeline:
    """Prices in, versioned budget snapshots out, incrementally (never replaying history)."""

    def __init__(self, config: Config, *, start_time: float) -> None:
        self._config = config
        self._started_at = start_time
        self.market = MarketState(config.universe, config.market_data)
        self.regime = RegimeDetector(
            config.regime, periods_per_year=config.market_data.periods_per_year,
            ewma_lambda=config.market_data.ewma_lambda, start_time=start_time)
        self._correlation_symbols = sorted(config.portfolio.symbols)
        self._snapshot: BudgetSnapshot | None = None
        self._versions_after = 0
        self._needs_recompute = True
        self._overrides: Sequence[Override] = ()
        self._changes = 0
        """How many times the overrides or the config were changed."""
        self._changes_in_snapshot = 0
        """How many of those the last snapshot was computed after."""
        self._budget_inputs: tuple[np.ndarray, np.ndarray] | None = None
        """(covariance, enough_data) of the market when the last budget was computed."""

    @property
    def config(self) -> Config:
        return self._config

    def reconfigure(self, config: Config) -> None:
        """Swap in a reloaded config. The market, regime and universe settings must be the
        same (a reload that changes them needs a restart); the next recompute uses it."""
        self._config = config
        self._correlation_symbols = sorted(config.portfolio.symbols)
        self._changes += 1
        self._needs_recompute = True

    @property
    def started_at(self) -> float:
        return self._started_at

    @property
    def snapshot(self) -> BudgetSnapshot | None:
        """The last budget computed (None before the first `recompute`)."""
        return self._snapshot

    @property
    def version(self) -> int:
        """The last budget's version; before the first, the one it continues after (0)."""
        return self._snapshot.version if self._snapshot is not None else self._versions_after

    def continue_versions_after(self, version: int) -> None:
        """Number the budgets from `version` + 1 on (before the first: a restart continues the
        versions of the run before it, which the state file keeps)."""
        self._versions_after = version

    @property
    def needs_recompute(self) -> bool:
        return self._needs_recompute or self._snapshot is None

    def invalidate(self) -> None:
        """Something outside the prices changed: recompute next time."""
        self._needs_recompute = True

    def set_overrides(self, overrides: Sequence[Override]) -> None:
        """The (active) overrides the next budget applies."""
        self._overrides = tuple(overrides)
        self._changes += 1
        self._needs_recompute = True

    @property
    def changes_made(self) -> int:
        """A count of the changes to the overrides and the config. Read it after a change: the
        snapshot has the change once `changes_in_snapshot` has reached that count."""
        return self._changes

    @property
    def changes_in_snapshot(self) -> int:
        return self._changes_in_snapshot

    def apply_tick(self, tick: PriceTick) -> list[RegimeChange]:
        """Record a price; return the regime changes of the bars it closed (at most one)."""
        changes = [change for bar in self.market.apply_tick(tick)
                   if (change := self._on_bar(bar)) is not None]
        self._needs_recompute = True
        return changes

    def advance_to(self, now: float) -> list[RegimeChange]:
        """Close the open bar if `now` is past its end; the regime changes that caused."""
        changes = [change for bar in self.market.advance_to(now)
                   if (change := self._on_bar(bar)) is not None]
        if changes or self._market_moved():
            self._needs_recompute = True
        return changes

    def recompute(self, now: float) -> BudgetSnapshot | None:
        """A new snapshot if anything changed since the last one (else None), with the
        overrides of `set_overrides` applied."""
        if not self.needs_recompute:
            return None
        # Taken before the inputs are read: cleared after, it would drop a change made meanwhile.
        self._needs_recompute = False
        changes = self._changes  # read before the inputs: they are at least this new
        try:
            self._snapshot = self._compute(now, self._config, self._overrides)
        except BaseException:
            self._needs_recompute = True
            raise
        self._changes_in_snapshot = changes
        return self._snapshot

    def _compute(self, now: float, config: Config, overrides: Sequence[Override]) -> BudgetSnapshot:
        regime, since = self.regime.regime, self.regime.since
        if not config.risk_budgeting.enabled:  # the dynamic budget is off: no regime moves
            regime, since = config.regime.initial, self._started_at
        forced = forced_regime(overrides)
        if forced is not None:
            regime = forced
            since = max(o.created_at for o in overrides
                        if o.kind is OverrideKind.FORCE_REGIME and o.regime is forced)
        self._budget_inputs = (self.market.covariance(), self.market.enough_data())
        return compute_budget(
            config, self.market, regime, regime_since=since, version=self.version + 1,
            now=now, previous=self._snapshot, overrides=overrides)

    def _market_moved(self) -> bool:
        """Whether the market estimates differ from those the last budget was computed on.

        Closing a bar that the budget already saw provisionally (its prices unchanged since)
        leaves the covariance as it was (the very same array, see MarketState.covariance):
        then only a symbol reaching `min_observations` with that bar changes the budget.
        """
        if self._budget_inputs is None:
            return True
        covariance, enough_data = self._budget_inputs
        return (self.market.covariance() is not covariance
                or not np.array_equal(self.market.enough_data(), enough_data))

    def _on_bar(self, bar: ClosedBar) -> RegimeChange | None:
        close = float(bar.closes[self.market.index(self._config.regime.benchmark)])
        correlation = self.market.average_correlation(self._correlation_symbols, provisional=False)
        return self.regime.on_bar(bar.time, close, correlation)
