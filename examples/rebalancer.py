"""An example rebalancer wired to the risk budget: the seed's fifth gap
("rebalancing bypasses budget recommendations"), closed over the contract.

    python examples/rebalancer.py --target 127.0.0.1:50051 --checkpoint /tmp/rebal.seq

It subscribes to the sidecar's recommendations with `RecommendationFeed` and,
for each one that requires rebalancing, merges the budget's target allocation
into the strategies' own (`merge_allocations`, the seed's `_merge_allocations`),
prints the trades that would take the book there from the recommendation's
current allocation, and records the recommendation's sequence, with the id of
the log it counts in, in the checkpoint file. A restart resumes after the
checkpoint: nothing is missed (a sidecar on a new state file, whose log numbers
from 1 again, refuses the old log's sequence), and only a
crash between handling a recommendation and writing the checkpoint hands that
one recommendation out again (so handling must be idempotent; here it only
prints: it sends no orders).

The merge rule: the strategies say what they want, the budget says how much
risk they may take. For each (strategy, symbol) a strategy targets, the merged
weight is the strategy's own, capped in size at the budget's target weight
(keeping the strategy's sign, since the sidecar's limits bound the absolute
position); a position the budget does not cover gets 0 (fail closed: the
sidecar would not approve adding to it). The budget never adds a position the
strategies do not want.

With no checkpoint file (a new rebalancer) there is nothing to resume and no
state to resync: it takes the newest recommendation's sequence and the log's id
(`GetStatus`), then reads the current budget (`GetBudget`), prints the targets
it merges from it (`budget_allocation`: the target allocation a recommendation
carries, computed as the sidecar does), and starts its feed after that
sequence: a recommendation made while it read the budget is handled, not lost
between the two. The first one handled writes the checkpoint. Asking for every
recommendation since sequence 0 instead would fail on a sidecar whose log was
trimmed, and replay history a new rebalancer has no use for.

If the sidecar no longer keeps the recommendations after the checkpoint
(`RecommendationsLost`: its log was trimmed past it, or its state file was
restored from a backup), the rebalancer resyncs as a new one starts: from the
current budget, and the recommendations made from then on. It does not handle
the newest recommendation again: found by a tester, after a restore that one
was a copy of a recommendation already handled, its current allocation stale,
and handling it planned the same trades twice.

The pure functions (`strategy_allocation_from_config`, `allocation_from_rows`,
`budget_allocation`, `merge_allocations`, `trades`, the checkpoint) are tested in
tests/client/test_client_rebalancer_example.py.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import tempfile
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeVar

from riskbudget.v1 import types_pb2
from riskbudget_client import (
    FeedError,
    RecommendationFeed,
    RecommendationsLost,
    RiskBudgetClient,
    RiskBudgetError,
)
from riskbudget_client.feed import RECONNECT_CODES

T = TypeVar("T")

Key = tuple[str, str]
"""(strategy, symbol)"""
Allocation = dict[Key, float]
"""Signed weight in NAV per (strategy, symbol)."""

STRATEGY_ALLOCATION: dict[str, dict[str, float]] = {
    # What the strategies want, as a trading system's config would say it:
    # weight in NAV per symbol. The budget caps these; it never raises them.
    "equity_momentum": {"SPY": 0.20, "QQQ": 0.15, "IWM": 0.05, "EFA": 0.05, "EEM": 0.05},
    "defensive_carry": {"TLT": 0.15, "IEF": 0.10, "GLD": 0.05, "LQD": 0.05},
}


@dataclass(frozen=True, slots=True)
class Trade:
    strategy: str
    symbol: str
    current: float
    target: float

    @property
    def change(self) -> float:
        return self.target - self.current

    @property
    def side(self) -> str:
        return "buy" if self.change > 0 else "sell"


def strategy_allocation_from_config(config: Mapping[str, Mapping[str, float]]) -> Allocation:
    """`{strategy: {symbol: weight}}` as an Allocation; refuses what is not a
    finite weight, naming where it is."""
    if not isinstance(config, Mapping):
        raise ValueError(f"must map strategies to {{symbol: weight}}, got {config!r}")
    allocation: Allocation = {}
    for strategy, weights in config.items():
        if not isinstance(weights, Mapping):
            raise ValueError(f"{strategy}: must map symbols to weights, got {weights!r}")
        for symbol, weight in weights.items():
            if isinstance(weight, bool) or not isinstance(weight, int | float):
                raise ValueError(f"{strategy}.{symbol}: must be a weight, got {weight!r}")
            if not math.isfinite(weight):
                raise ValueError(f"{strategy}.{symbol}: must be finite, got {weight!r}")
            allocation[(strategy, symbol)] = float(weight)
    return allocation


def allocation_from_rows(rows: Iterable[types_pb2.SymbolAllocation]) -> Allocation:
    """A recommendation's target or current allocation as an Allocation
    (rows for the same strategy and symbol add up)."""
    allocation: Allocation = {}
    for row in rows:
        key = (row.strategy, row.symbol)
        allocation[key] = allocation.get(key, 0.0) + row.weight
    return allocation


def budget_allocation(budget: types_pb2.Budget) -> Allocation:
    """A budget's target allocation, as a recommendation made from it carries it
    (`target_allocation`): per strategy and symbol, the strategy's max gross exposure
    times the symbol's weight in it, as a weight of NAV; where the strategies' targets
    in a symbol add up to more than its position limit, each scaled down alike, and a
    restricted symbol's 0. Empty for a budget with no NAV (none computed yet)."""
    nav = budget.net_asset_value
    if not (math.isfinite(nav) and nav > 0):
        return {}
    limits = {
        entry.symbol: 0.0 if entry.restricted else entry.max_position_notional
        for entry in budget.symbols
    }
    wanted = [
        ((strategy.strategy, entry.symbol), strategy.max_gross_exposure * entry.weight)
        for strategy in budget.strategies
        for entry in strategy.symbols
    ]
    per_symbol: dict[str, float] = defaultdict(float)
    for (_, symbol), notional in wanted:
        per_symbol[symbol] += abs(notional)
    allocation: Allocation = {}
    for key, notional in wanted:
        limit, total = limits.get(key[1], math.inf), per_symbol[key[1]]
        scaled = notional * (limit / total if total > limit else 1.0)
        allocation[key] = allocation.get(key, 0.0) + scaled / nav
    return allocation


def merge_allocations(strategy_allocation: Allocation, budget_allocation: Allocation) -> Allocation:
    """The seed's `_merge_allocations`: each position the strategies want, capped
    in size at the budget's target for it (0 where the budget has none), with the
    strategy's sign. Positions only the budget names are left out."""
    merged: Allocation = {}
    for key, wanted in strategy_allocation.items():
        allowed = abs(budget_allocation.get(key, 0.0))
        merged[key] = math.copysign(min(abs(wanted), allowed), wanted)
    return merged


def trades(target: Allocation, current: Allocation, min_change: float = 0.0) -> list[Trade]:
    """What takes `current` to `target`: one trade per (strategy, symbol) whose
    weight changes by more than `min_change`, in strategy and symbol order. A
    position held but not in the target is closed."""
    changes = []
    for key in sorted(target.keys() | current.keys()):
        before, after = current.get(key, 0.0), target.get(key, 0.0)
        if abs(after - before) > min_change:
            changes.append(Trade(key[0], key[1], before, after))
    return changes


def net_asset_value(rows: Iterable[types_pb2.SymbolAllocation]) -> float | None:
    """The NAV the rows are weighted against (notional / weight), if any row says."""
    for row in rows:
        if row.weight != 0 and math.isfinite(row.notional / row.weight):
            return abs(row.notional / row.weight)
    return None


class Checkpoint(NamedTuple):
    """The last sequence handled, and the recommendation log it counts in ("": not known)."""

    sequence: int
    log_id: str = ""


def read_checkpoint(path: Path) -> Checkpoint | None:
    """The last sequence handled, with its log; None when there is no checkpoint file
    yet (a new rebalancer). A checkpoint of an earlier version holds the sequence alone."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    sequence, _, log_id = text.partition(" ")
    if not (sequence.isascii() and sequence.isdigit() and int(sequence) < 2**64) or not all(
        c in "0123456789abcdef" for c in log_id
    ):
        raise ValueError(
            f"{path}: a checkpoint holds a sequence number and a log id, found {text[:80]!r}"
        )
    return Checkpoint(int(sequence), log_id)


def write_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Record `checkpoint` as handled, atomically: a crash leaves the old value or
    the new one, never a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(f"{checkpoint.sequence} {checkpoint.log_id}".strip() + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def describe(recommendation: types_pb2.Recommendation, planned: list[Trade] | None) -> str:
    """A recommendation and the trades planned for it (None: no action needed)."""
    triggers = ",".join(
        types_pb2.RecommendationTrigger.Name(trigger).removeprefix("RECOMMENDATION_TRIGGER_")
        for trigger in recommendation.triggers
    )
    regime = types_pb2.Regime.Name(recommendation.budget.regime).removeprefix("REGIME_")
    lines = [
        f"#{recommendation.sequence} [{triggers or '-'}] budget v{recommendation.budget.version} "
        f"{regime}: {recommendation.reason}"
    ]
    nav = net_asset_value(recommendation.target_allocation)
    if planned is None:
        lines.append("  no rebalancing required")
    elif not planned:
        lines.append("  no trades: the book is on target")
    for trade in planned or ():
        notional = "" if nav is None else f"  {trade.change * nav:>+15,.0f}"
        lines.append(
            f"  {trade.strategy:<18} {trade.symbol:<6} {trade.side:<4} "
            f"{trade.change:>+8.2%} of NAV ({trade.current:.2%} -> {trade.target:.2%}){notional}"
        )
    return "\n".join(lines)


def describe_budget(budget: types_pb2.Budget, target: Allocation, why: str = "no checkpoint") -> str:
    """The budget a rebalancer with no checkpoint (or one that lost its place: `why`) starts
    from, and the targets merged from it (there is no current allocation to trade from: a
    recommendation brings one)."""
    regime = types_pb2.Regime.Name(budget.ref.regime).removeprefix("REGIME_")
    lines = [
        f"{why}: starting from the current budget, v{budget.ref.version} {regime}, "
        "and the recommendations made from now on"
    ]
    nav = budget.net_asset_value
    for (strategy, symbol), weight in sorted(target.items()):
        notional = f"  {weight * nav:>15,.0f}" if math.isfinite(nav) and nav > 0 else ""
        lines.append(f"  {strategy:<18} {symbol:<6} target {weight:>7.2%} of NAV{notional}")
    return "\n".join(lines)


def asked(
    call: Callable[[], T], what: str, stop: threading.Event, out: Callable[[str], None]
) -> T | None:
    """`call()`'s answer; while the sidecar is away, asked again (None once `stop` is set).
    Any other failure raises RiskBudgetError."""
    delay = 0.1
    while True:
        try:
            return call()
        except RiskBudgetError as error:
            if error.code not in RECONNECT_CODES:
                raise
            out(f"cannot read {what} yet ({error.code.name}): asking again in {delay:g} s")
        if stop.wait(delay):
            return None
        delay = min(delay * 2, 5.0)


def plan(
    recommendation: types_pb2.Recommendation, strategy_allocation: Allocation, min_change: float
) -> list[Trade] | None:
    """The trades for one recommendation, or None when it requires no rebalancing."""
    if not recommendation.requires_rebalancing:
        return None
    target = merge_allocations(
        strategy_allocation, allocation_from_rows(recommendation.target_allocation)
    )
    return trades(target, allocation_from_rows(recommendation.current_allocation), min_change)


def from_the_present(
    client: RiskBudgetClient, strategy_allocation: Allocation, why: str, stop: threading.Event,
    out: Callable[[str], None],
) -> Checkpoint | None:
    """Where a rebalancer with no past (or one that lost it) starts: the newest
    recommendation's sequence and log (`GetStatus`), read first so that one made while
    the budget is read is handled, then the current budget's targets (`GetBudget`),
    printed. None once `stop` is set; RiskBudgetError if the sidecar refuses."""
    status = asked(client.get_status, "the sidecar's status", stop, out)
    budget = status and asked(lambda: client.get_budget().budget, "the budget", stop, out)
    if budget is None:
        return None
    out(describe_budget(budget, merge_allocations(strategy_allocation, budget_allocation(budget)), why))
    return Checkpoint(status.last_recommendation_sequence, status.recommendation_log_id)


def run(
    target: str,
    checkpoint: Path,
    strategy_allocation: Allocation,
    *,
    min_change: float = 0.0005,
    limit: int | None = None,
    out: Callable[[str], None] = print,
    feed_options: Mapping[str, object] | None = None,
    on_feed: Callable[[RecommendationFeed], None] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Rebalance on every recommendation after the checkpoint until `stop` is
    set (or `limit` handled). Returns the process exit status."""
    stop = stop or threading.Event()
    try:
        after = read_checkpoint(checkpoint)
    except (OSError, ValueError) as error:  # UnicodeDecodeError too: a file that is no checkpoint
        out(f"cannot start: {error}")
        return 2
    handled = 0
    with RiskBudgetClient(target) as client:
        why = "no checkpoint"
        if after is not None:
            out(f"subscribing to {target} after sequence {after.sequence}")
        while not stop.is_set() and (limit is None or handled < limit):
            if after is None:  # no past to resume (or it was lost): the present from the budget
                try:
                    after = from_the_present(client, strategy_allocation, why, stop, out)
                except RiskBudgetError as error:
                    out(f"giving up: {error}")
                    return 1
                if after is None:
                    out("stopped")
                    return 0
                out(f"subscribing to {target} after the newest recommendation, sequence {after.sequence}")
            feed = RecommendationFeed(client, after_sequence=after.sequence, log_id=after.log_id or None,
                                      **(feed_options or {}))
            if on_feed is not None:
                on_feed(feed)
            try:
                with feed:
                    for recommendation in feed:
                        planned = plan(recommendation, strategy_allocation, min_change)
                        out(describe(recommendation, planned))
                        after = Checkpoint(recommendation.sequence, feed.log_id)
                        write_checkpoint(checkpoint, after)
                        handled += 1
                        if limit is not None and handled >= limit:
                            break
                    else:
                        out("stopped")
                        return 0
            except RecommendationsLost as lost:
                out(f"lost recommendations: {lost}")
                after, why = None, "resyncing"
            except (FeedError, RiskBudgetError) as error:
                out(f"giving up: {error}")
                return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="127.0.0.1:50051", help="the sidecar's address")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        help="file holding the last sequence handled and its log",
    )
    parser.add_argument(
        "--allocation",
        type=Path,
        help="JSON {strategy: {symbol: weight in NAV}}; default: a built-in example",
    )
    parser.add_argument(
        "--min-change",
        type=float,
        default=0.0005,
        help="smallest weight change worth a trade (default 0.0005)",
    )
    parser.add_argument("--limit", type=int, help="stop after this many recommendations")
    arguments = parser.parse_args(argv)
    try:
        config = (
            json.loads(arguments.allocation.read_text())
            if arguments.allocation
            else STRATEGY_ALLOCATION
        )
        strategy_allocation = strategy_allocation_from_config(config)
    except (OSError, ValueError) as error:
        parser.error(f"--allocation {arguments.allocation}: {error}")

    feeds: list[RecommendationFeed] = []
    stop = threading.Event()

    def terminate(signum: int, frame: object) -> None:
        # Like Ctrl-C: stop reading; the checkpoint is already on disk.
        stop.set()
        for feed in feeds:
            feed.close()

    signal.signal(signal.SIGTERM, terminate)
    try:
        return run(
            arguments.target,
            arguments.checkpoint,
            strategy_allocation,
            min_change=arguments.min_change,
            limit=arguments.limit,
            on_feed=feeds.append,
            stop=stop,
        )
    except KeyboardInterrupt:
        print("interrupted")
        return 0


if __name__ == "__main__":
    sys.exit(main())
