"""A config reload besides the swap itself: the file read off the event loop, what the book holds
that a config has no place for, the keys a reload changes, and reloads run one at a time."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, TypeVar

import structlog

from ..engine.book import Book
from ..engine.config import Config
from .config_file import load_config
from .errors import MAX_PROBLEM_LINE_LENGTH, RiskBudgetError, capped
from .warmup import check_warmup_file

T = TypeVar("T")
log = structlog.get_logger("riskbudget.reload")
_ABSENT = object()


def read_new_config(path: str, current: Config) -> Config:
    """The config file for a reload: ConfigError if it is invalid, or if it changes the warm-up
    to one the next start could not read (only a start reads it). Seconds for a large file: call
    it in a worker thread."""
    new = load_config(path)
    if new.warmup != current.warmup:
        check_warmup_file(new)
    return new


def changed_keys(old: Config, new: Config) -> list[str]:
    """The dotted paths of the keys whose values differ (`limits.max_order_notional`); a key
    added or removed counts, a list is compared whole."""
    return _differences(old.model_dump(), new.model_dump(), "")


def _differences(old: Any, new: Any, path: str) -> list[str]:
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [] if old == new else [path]
    keys = [*old, *(key for key in new if key not in old)]
    return [difference for key in keys
            for difference in _differences(old.get(key, _ABSENT), new.get(key, _ABSENT),
                                           f"{path}.{key}" if path else str(key))]


@dataclass(frozen=True)
class Holding:
    """What the book holds under one (strategy, symbol) pair."""

    strategy: str
    symbol: str
    position: float
    reservations: int

    def __str__(self) -> str:
        held = [f"a position of {self.position:g}"] if self.position else []
        if self.reservations:
            held.append(f"{self.reservations} open reservation{'s' if self.reservations > 1 else ''}")
        return " and ".join(held)


def holdings_outside(book: Book, config: Config, now: float) -> list[Holding]:
    """What the book holds under (strategy, symbol) pairs that `config` does not have: a strategy
    it lacks, or a symbol not among that strategy's. Such holdings count in the book's total yet
    under no strategy's limits, and their strategy can neither reduce, fill nor set them.
    Reservations past their expiry (the next monitoring tick removes them) do not count."""
    positions = book.quantities()
    reservations = Counter((r.strategy, r.symbol) for r in book.reservations() if r.expires_at > now)
    strategies = config.portfolio.strategies
    return [Holding(strategy, symbol, positions.get((strategy, symbol), 0.0), reservations[strategy, symbol])
            for strategy, symbol in sorted(positions.keys() | reservations.keys())
            if strategy not in strategies or symbol not in strategies[strategy].symbols]


def stranded_by_reload(holding: Holding, new: Config) -> str:
    """Why a reload to `new` is refused for `holding`, and what to do."""
    strategy, symbol = holding.strategy, holding.symbol
    if strategy not in new.portfolio.strategies:
        return (f"portfolio.strategies: {strategy!r} still holds {holding} in {symbol!r}; close or release "
                "them (SetPositions, ReleaseOrder) before removing the strategy")
    return (f"portfolio.strategies.{strategy}.symbols: {strategy!r} still holds {holding} in {symbol!r}; "
            f"close or release them (SetPositions, ReleaseOrder) before moving {symbol!r} out of it")


def stranded_at_start(holdings: list[Holding], config: Config) -> str:
    """Why the sidecar does not start with `config` on a state holding `holdings`, and what to do."""
    lines = capped([f"strategy {h.strategy!r}, symbol {h.symbol!r}: {h} ({_not_in(config, h)})"
                    for h in holdings], MAX_PROBLEM_LINE_LENGTH)
    return "\n".join([
        f"the state file {config.store.path} (store.path) holds positions or reservations that the "
        "config has no place for:",
        *(f"  {line}" for line in lines),
        "Start with the config they were made under and close or release them (SetPositions, "
        "ReleaseOrder), or put them back in portfolio.strategies; to start afresh, move the state "
        "file away."])


def _not_in(config: Config, holding: Holding) -> str:
    if holding.strategy in config.portfolio.strategies:
        return f"{holding.symbol!r} is not among the strategy's symbols"
    return "the config has no such strategy"


class OneAtATime:
    """Runs work as tasks one after another, each to its end: a caller that stops waiting (an RPC
    cancelled at its deadline) ends its own wait, never the work, which reports its own outcome
    (a reload: a log line and an alert, whether applied or refused)."""

    def __init__(self) -> None:
        self._turn = asyncio.Lock()
        self._running: set[asyncio.Task] = set()
        """Held until done: the event loop keeps only weak references to tasks."""

    async def run(self, work: Callable[[], Awaitable[T]]) -> T:
        task = asyncio.ensure_future(self._in_turn(work))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(_log_unexpected_failure)  # no one else will see how it ends
            raise

    async def _in_turn(self, work: Callable[[], Awaitable[T]]) -> T:
        async with self._turn:
            return await work()


def _log_unexpected_failure(task: asyncio.Task) -> None:
    """The end of work whose caller stopped waiting: a refusal (a RiskBudgetError) the work
    reported itself; anything else is logged here."""
    error = None if task.cancelled() else task.exception()
    if error is not None and not isinstance(error, RiskBudgetError):
        log.error("unawaited_task_failed", task=task.get_name(), exc_info=error)
