"""The example rebalancer (examples/rebalancer.py): its merge of the budget into
the strategies' allocation, the trades it plans, its checkpoint, and a run
against a sidecar that resumes after a restart of the rebalancer."""

import importlib.util
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import pytest

from riskbudget.v1 import types_pb2

from .conftest import Episode

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rebalancer.py"
_spec = importlib.util.spec_from_file_location("rebalancer_example", EXAMPLE)
rebalancer = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = rebalancer  # dataclasses look their module up by name
_spec.loader.exec_module(rebalancer)

Trade = rebalancer.Trade


def rows(*entries):
    return [
        types_pb2.SymbolAllocation(
            strategy=strategy, symbol=symbol, weight=weight, notional=weight * 1e7
        )
        for strategy, symbol, weight in entries
    ]


def budget(version, nav, strategies, symbols=None):
    """A Budget of `{strategy: (max gross exposure, {symbol: weight})}` and
    `{symbol: (max position notional, restricted)}`."""
    return types_pb2.Budget(
        ref=types_pb2.BudgetRef(version=version, regime=types_pb2.REGIME_BEAR),
        net_asset_value=nav,
        strategies=[
            types_pb2.StrategyBudget(
                strategy=name,
                max_gross_exposure=gross,
                symbols=[
                    types_pb2.StrategySymbolWeight(symbol=symbol, weight=weight)
                    for symbol, weight in weights.items()
                ],
            )
            for name, (gross, weights) in strategies.items()
        ],
        symbols=[
            types_pb2.SymbolBudget(symbol=symbol, max_position_notional=limit, restricted=restricted)
            for symbol, (limit, restricted) in (symbols or {}).items()
        ],
    )


def recommendation(sequence, target, current, requires_rebalancing=True):
    return types_pb2.Recommendation(
        sequence=sequence,
        triggers=[types_pb2.RECOMMENDATION_TRIGGER_REGIME_CHANGE],
        reason="regime changed",
        budget=types_pb2.BudgetRef(version=7, regime=types_pb2.REGIME_BEAR),
        target_allocation=rows(*target),
        current_allocation=rows(*current),
        requires_rebalancing=requires_rebalancing,
    )


# -- merge ------------------------------------------------------------------


def test_the_budget_caps_a_strategy_target_it_is_tighter_than():
    merged = rebalancer.merge_allocations({("mom", "SPY"): 0.20}, {("mom", "SPY"): 0.12})

    assert merged == {("mom", "SPY"): 0.12}


def test_a_strategy_wanting_less_than_the_budget_allows_keeps_its_own_target():
    merged = rebalancer.merge_allocations({("mom", "SPY"): 0.05}, {("mom", "SPY"): 0.12})

    assert merged == {("mom", "SPY"): 0.05}


def test_the_cap_bounds_the_size_of_a_short_and_keeps_its_sign():
    merged = rebalancer.merge_allocations({("mom", "SPY"): -0.20}, {("mom", "SPY"): 0.08})

    assert merged == {("mom", "SPY"): -0.08}


def test_a_position_the_budget_does_not_cover_is_targeted_flat():
    merged = rebalancer.merge_allocations(
        {("mom", "SPY"): 0.20, ("mom", "EEM"): 0.05}, {("mom", "SPY"): 0.30}
    )

    assert merged == {("mom", "SPY"): 0.20, ("mom", "EEM"): 0.0}


def test_the_budget_adds_no_position_the_strategies_do_not_want():
    merged = rebalancer.merge_allocations({("mom", "SPY"): 0.20}, {("carry", "TLT"): 0.15})

    assert merged == {("mom", "SPY"): 0.0}


def test_the_same_symbol_in_two_strategies_is_merged_per_strategy():
    merged = rebalancer.merge_allocations(
        {("mom", "SPY"): 0.20, ("carry", "SPY"): 0.05},
        {("mom", "SPY"): 0.10, ("carry", "SPY"): 0.10},
    )

    assert merged == {("mom", "SPY"): 0.10, ("carry", "SPY"): 0.05}


# -- the budget's targets (a new rebalancer's start) ---------------------------


def test_the_budgets_targets_are_gross_exposure_times_weight_over_nav():
    targets = rebalancer.budget_allocation(
        budget(1, 1e6, {"mom": (500_000, {"SPY": 0.6, "QQQ": 0.4}), "carry": (200_000, {"TLT": 1.0})},
               {"SPY": (1e6, False), "QQQ": (1e6, False), "TLT": (1e6, False)})
    )

    assert targets == pytest.approx({("mom", "SPY"): 0.3, ("mom", "QQQ"): 0.2, ("carry", "TLT"): 0.2})


def test_strategies_over_a_symbols_position_limit_are_scaled_down_alike():
    targets = rebalancer.budget_allocation(
        budget(1, 1e6, {"mom": (300_000, {"SPY": 1.0}), "carry": (100_000, {"SPY": 1.0})},
               {"SPY": (200_000, False)})
    )

    assert targets == pytest.approx({("mom", "SPY"): 0.15, ("carry", "SPY"): 0.05})


def test_a_restricted_symbol_is_targeted_flat_and_one_with_no_limit_is_not_capped():
    targets = rebalancer.budget_allocation(
        budget(1, 1e6, {"mom": (400_000, {"SPY": 0.5, "EEM": 0.5})}, {"EEM": (1e9, True)})
    )

    assert targets == pytest.approx({("mom", "SPY"): 0.2, ("mom", "EEM"): 0.0})


def test_a_budget_with_no_nav_targets_nothing():
    assert rebalancer.budget_allocation(types_pb2.Budget()) == {}


# -- trades -----------------------------------------------------------------


def test_trades_are_the_difference_from_the_current_allocation_in_order():
    planned = rebalancer.trades(
        {("mom", "SPY"): 0.12, ("carry", "TLT"): 0.15},
        {("mom", "SPY"): 0.20, ("carry", "TLT"): 0.10},
    )

    assert planned == [Trade("carry", "TLT", 0.10, 0.15), Trade("mom", "SPY", 0.20, 0.12)]
    assert [(trade.side, round(trade.change, 10)) for trade in planned] == [
        ("buy", 0.05),
        ("sell", -0.08),
    ]


def test_a_position_held_but_not_targeted_is_closed_and_a_new_one_opened():
    planned = rebalancer.trades({("mom", "QQQ"): 0.1}, {("mom", "IWM"): 0.05})

    assert planned == [Trade("mom", "IWM", 0.05, 0.0), Trade("mom", "QQQ", 0.0, 0.1)]


def test_changes_no_larger_than_the_minimum_are_not_traded():
    planned = rebalancer.trades(
        {("mom", "SPY"): 0.1004, ("mom", "QQQ"): 0.2},
        {("mom", "SPY"): 0.1, ("mom", "QQQ"): 0.1},
        min_change=0.0005,
    )

    assert [trade.symbol for trade in planned] == ["QQQ"]


def test_a_recommendation_needing_no_rebalancing_plans_nothing():
    rec = recommendation(1, [("mom", "SPY", 0.1)], [("mom", "SPY", 0.2)], False)

    assert rebalancer.plan(rec, {("mom", "SPY"): 0.2}, 0.0) is None


def test_a_recommendation_is_planned_from_the_merged_target_and_its_current_allocation():
    rec = recommendation(
        3, [("mom", "SPY", 0.12), ("mom", "QQQ", 0.3)], [("mom", "SPY", 0.2), ("mom", "QQQ", 0.1)]
    )

    planned = rebalancer.plan(rec, {("mom", "SPY"): 0.2, ("mom", "QQQ"): 0.15}, 0.0)

    assert planned == [Trade("mom", "QQQ", 0.1, 0.15), Trade("mom", "SPY", 0.2, 0.12)]
    assert rebalancer.describe(rec, planned).splitlines() == [
        "#3 [REGIME_CHANGE] budget v7 BEAR: regime changed",
        "  mom                QQQ    buy    +5.00% of NAV (10.00% -> 15.00%)         +500,000",
        "  mom                SPY    sell   -8.00% of NAV (20.00% -> 12.00%)         -800,000",
    ]


# -- config and checkpoint ----------------------------------------------------


def test_the_strategy_allocation_config_becomes_weights_per_strategy_and_symbol():
    allocation = rebalancer.strategy_allocation_from_config({"mom": {"SPY": 0.2, "QQQ": 1}})

    assert allocation == {("mom", "SPY"): 0.2, ("mom", "QQQ"): 1.0}


@pytest.mark.parametrize(
    "config, message",
    [
        ({"mom": {"SPY": "lots"}}, "mom.SPY: must be a weight"),
        ({"mom": {"SPY": float("nan")}}, "mom.SPY: must be finite"),
        ({"mom": [0.2]}, "mom: must map symbols to weights"),
        ([["mom", "SPY", 0.2]], "must map strategies to"),
    ],
)
def test_a_bad_strategy_allocation_config_is_refused_naming_the_entry(config, message):
    with pytest.raises(ValueError, match=message):
        rebalancer.strategy_allocation_from_config(config)


def test_the_built_in_strategy_allocation_is_valid():
    assert rebalancer.strategy_allocation_from_config(rebalancer.STRATEGY_ALLOCATION)


def test_no_checkpoint_file_means_a_new_rebalancer(tmp_path):
    assert rebalancer.read_checkpoint(tmp_path / "rebal.seq") is None


def test_a_checkpoint_reads_back_what_was_written(tmp_path):
    path = tmp_path / "state" / "rebal.seq"

    rebalancer.write_checkpoint(path, rebalancer.Checkpoint(41, "0f" * 16))
    rebalancer.write_checkpoint(path, rebalancer.Checkpoint(42, "0f" * 16))

    assert rebalancer.read_checkpoint(path) == (42, "0f" * 16)
    assert [entry.name for entry in path.parent.iterdir()] == ["rebal.seq"]


def test_a_checkpoint_of_an_earlier_version_is_its_sequence_in_a_log_not_known(tmp_path):
    path = tmp_path / "rebal.seq"
    path.write_text("42\n")

    assert rebalancer.read_checkpoint(path) == (42, "")


@pytest.mark.parametrize("text", ["forty-two", "42 not-a-log-id", "-1 0f0f", "\u00b2", str(2**64)])
def test_a_corrupt_checkpoint_is_refused_naming_the_file(tmp_path, text):
    path = tmp_path / "rebal.seq"
    path.write_text(text)

    with pytest.raises(ValueError, match="rebal.seq: a checkpoint holds a sequence number and a log id"):
        rebalancer.read_checkpoint(path)


def test_a_checkpoint_that_cannot_be_read_stops_the_rebalancer_with_a_message(tmp_path):
    unreadable = tmp_path / "rebal.seq"
    unreadable.write_bytes(b"4\xe92\n")  # not UTF-8
    printed = []

    status = rebalancer.run("127.0.0.1:1", unreadable, {}, out=printed.append)

    assert status == 2 and printed[0].startswith("cannot start: ")


# -- running against a sidecar ------------------------------------------------


def test_the_rebalancer_resumes_after_its_checkpoint_when_restarted(
    log_sidecar, log_server, tmp_path
):
    made = [
        recommendation(1, [("mom", "SPY", 0.12)], [("mom", "SPY", 0.20)]),
        recommendation(2, [("mom", "SPY", 0.12)], [("mom", "SPY", 0.12)]),
        recommendation(3, [("mom", "SPY", 0.30)], [("mom", "SPY", 0.12)], False),
    ]
    log_sidecar.budget = budget(7, 1e7, {"mom": (2e6, {"SPY": 1.0})})
    log_sidecar.script(Episode(send=1))
    log_sidecar.log_id = "a1"
    checkpoint = tmp_path / "rebal.seq"
    printed = []
    options = {"feed_options": {"sleep": lambda seconds: None}, "out": printed.append}
    allocation = {("mom", "SPY"): 0.20}

    # a new rebalancer (no checkpoint), on a log still empty: made once it is subscribed
    threading.Timer(0.3, lambda: log_sidecar.log.extend(made) or log_sidecar.publish()).start()
    first = rebalancer.run(log_server.target, checkpoint, allocation, limit=2, **options)
    assert (first, rebalancer.read_checkpoint(checkpoint)) == (0, (2, "a1"))
    second = rebalancer.run(log_server.target, checkpoint, allocation, limit=1, **options)

    assert second == 0
    assert rebalancer.read_checkpoint(checkpoint) == (3, "a1")
    # 0: the newest when the new rebalancer subscribed, in the log GetStatus named
    assert [(r.after_sequence, r.log_id) for r in log_sidecar.requests] == [(0, "a1"), (1, "a1"), (2, "a1")]
    assert "\n".join(printed).splitlines() == [
        "no checkpoint: starting from the current budget, v7 BEAR, and the recommendations "
        "made from now on",
        "  mom                SPY    target  20.00% of NAV        2,000,000",
        f"subscribing to {log_server.target} after the newest recommendation, sequence 0",
        "#1 [REGIME_CHANGE] budget v7 BEAR: regime changed",
        "  mom                SPY    sell   -8.00% of NAV (20.00% -> 12.00%)         -800,000",
        "#2 [REGIME_CHANGE] budget v7 BEAR: regime changed",
        "  no trades: the book is on target",
        f"subscribing to {log_server.target} after sequence 2",
        "#3 [REGIME_CHANGE] budget v7 BEAR: regime changed",
        "  no rebalancing required",
    ]


def test_the_rebalancer_resyncs_from_the_current_budget_when_some_were_lost(
    log_sidecar, log_server, tmp_path
):
    """Found by a tester: it resynced by handling the newest recommendation again, which after
    a restore from a backup was one it had handled, its current allocation stale: the same
    trades twice. It now starts from the current budget, as a new rebalancer does."""
    log_sidecar.publish(20, 21, 22)
    log_sidecar.log_id = "b2"
    log_sidecar.budget = budget(8, 1e7, {"mom": (2e6, {"SPY": 1.0})})
    checkpoint = tmp_path / "rebal.seq"
    rebalancer.write_checkpoint(checkpoint, rebalancer.Checkpoint(5))
    made = recommendation(23, [("mom", "SPY", 0.1)], [("mom", "SPY", 0.2)])
    threading.Timer(0.5, lambda: log_sidecar.log.append(made) or log_sidecar.publish()).start()
    printed = []

    status = rebalancer.run(log_server.target, checkpoint, {("mom", "SPY"): 0.2}, limit=1, out=printed.append)

    assert (status, rebalancer.read_checkpoint(checkpoint)) == (0, (23, "b2"))
    assert [(r.after_sequence, r.log_id) for r in log_sidecar.requests] == [(5, "b2"), (22, "b2")]  # 5: the log now
    assert printed[1].startswith("lost recommendations: recommendations after 5 are no longer")
    assert printed[2].startswith("resyncing: starting from the current budget, v8 BEAR")
    assert [line.split(" ")[0] for line in printed if line.startswith("#")] == ["#23"]  # 22, the newest then, not again


def test_the_rebalancer_gives_up_on_a_gap(log_sidecar, log_server, tmp_path):
    log_sidecar.publish(1, 3)
    checkpoint = tmp_path / "rebal.seq"
    rebalancer.write_checkpoint(checkpoint, rebalancer.Checkpoint(0))
    printed = []

    status = rebalancer.run(log_server.target, checkpoint, {}, out=printed.append)

    assert status == 1
    assert printed[-1].startswith("giving up: recommendation 3 arrived after 1")


def test_the_example_runs_as_a_script(tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--help"], capture_output=True, text=True, check=True
    )

    assert "--checkpoint" in result.stdout


def test_a_new_rebalancer_starts_from_the_budget_and_the_newest_recommendation_on_a_trimmed_log(
    log_sidecar, log_server, tmp_path
):
    """No checkpoint: nothing to resume, no state to resync. From sequence 0 a trimmed log
    would be "lost recommendations"; from the newest it is the next one made."""
    log_sidecar.log = [recommendation(sequence, [("mom", "SPY", 0.1)], []) for sequence in (10, 11, 12)]
    log_sidecar.log_id = "c3"
    log_sidecar.budget = budget(
        9, 1e7, {"mom": (3e6, {"SPY": 0.5, "QQQ": 0.5})}, {"SPY": (1e6, False), "QQQ": (1e7, False)}
    )
    checkpoint = tmp_path / "rebal.seq"
    printed = []
    made = recommendation(13, [("mom", "SPY", 0.1)], [("mom", "SPY", 0.2)])
    threading.Timer(0.3, lambda: log_sidecar.log.append(made) or log_sidecar.publish()).start()

    status = rebalancer.run(
        log_server.target, checkpoint, {("mom", "SPY"): 0.2, ("mom", "QQQ"): 0.2}, limit=1,
        out=printed.append,
    )

    assert (status, rebalancer.read_checkpoint(checkpoint)) == (0, (13, "c3"))
    assert [(r.after_sequence, r.log_id, r.from_latest) for r in log_sidecar.requests] == [(12, "c3", False)]
    assert "\n".join(printed).splitlines() == [
        "no checkpoint: starting from the current budget, v9 BEAR, and the recommendations "
        "made from now on",
        "  mom                QQQ    target  15.00% of NAV        1,500,000",
        "  mom                SPY    target  10.00% of NAV        1,000,000",
        f"subscribing to {log_server.target} after the newest recommendation, sequence 12",
        "#13 [REGIME_CHANGE] budget v7 BEAR: regime changed",
        "  mom                SPY    sell  -10.00% of NAV (20.00% -> 10.00%)       -1,000,000",
    ]


def test_a_new_rebalancer_asks_again_for_the_budget_while_the_sidecar_is_away(
    log_sidecar, log_server, tmp_path
):
    log_sidecar.budget_errors.extend([grpc.StatusCode.UNAVAILABLE])
    log_sidecar.budget = budget(2, 1e7, {"mom": (1e6, {"SPY": 1.0})})
    made = recommendation(1, [("mom", "SPY", 0.1)], [])
    threading.Timer(0.5, lambda: log_sidecar.log.append(made) or log_sidecar.publish()).start()
    printed = []

    status = rebalancer.run(log_server.target, tmp_path / "rebal.seq", {}, limit=1, out=printed.append)

    assert status == 0
    assert printed[0] == "cannot read the budget yet (UNAVAILABLE): asking again in 0.1 s"
    assert printed[1].startswith("no checkpoint: starting from the current budget, v2 BEAR")


def test_a_new_rebalancer_the_sidecar_refuses_the_budget_gives_up(log_sidecar, log_server, tmp_path):
    log_sidecar.budget_errors.extend([grpc.StatusCode.PERMISSION_DENIED])
    log_sidecar.script(Episode(send=0, code=grpc.StatusCode.UNIMPLEMENTED))  # never asked
    printed = []

    status = rebalancer.run(log_server.target, tmp_path / "rebal.seq", {}, out=printed.append)

    assert status == 1
    assert printed == ["giving up: GetBudget failed: PERMISSION_DENIED: GetBudget refused"]
    assert log_sidecar.requests == []


async def test_the_budgets_targets_are_those_the_real_sidecar_recommends(tmp_path):
    """budget_allocation computes what a recommendation made from the same budget carries
    (strategies sharing a symbol, a restricted one)."""
    from riskbudget.v1 import risk_budget_admin_pb2 as admin_pb2
    from riskbudget.v1 import risk_budget_service_pb2 as service_pb2
    from riskbudget_sidecar.app.serve import stop
    from tests.rpc.conftest import start_harness

    harness = await start_harness(
        tmp_path,
        portfolio__strategies={
            "trend": {"risk_share": 0.6, "symbols": ["AAA", "BBB", "CCC"]},
            "carry": {"risk_share": 0.4, "symbols": ["CCC", "DDD"]},
        },
        limits__restricted_symbols=["DDD"],
    )
    try:
        reply = await harness.admin.TriggerRebalance(
            admin_pb2.TriggerRebalanceRequest(reason="parity", requested_by="pytest"),
            metadata=harness.admin_metadata,
        )
        budget_now = (await harness.stub.GetBudget(service_pb2.GetBudgetRequest())).budget
    finally:
        await harness.channel.close()
        await stop(harness.sidecar, harness.server)

    made = reply.recommendation
    assert made.budget.version == budget_now.ref.version
    assert rebalancer.budget_allocation(budget_now) == pytest.approx(
        rebalancer.allocation_from_rows(made.target_allocation), rel=1e-12, abs=1e-15
    )
    assert rebalancer.budget_allocation(budget_now)[("carry", "DDD")] == 0.0
