"""`riskbudget status`: the rendering on hand-built replies, and the command
against a real sidecar."""

from __future__ import annotations

import asyncio
import re
import socket
import sys

import pytest

from riskbudget.v1 import risk_budget_service_pb2 as spb
from riskbudget.v1 import types_pb2 as pb
from riskbudget_sidecar.app import status_view as view
from riskbudget_sidecar.app.cli import main
from riskbudget_sidecar.app.serve import stop
from riskbudget_sidecar.rpc.converters import timestamp

from ..rpc.conftest import start_harness

NOW = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC


def usage(used: float, limit: float, capital: float, leverage_limit: float,
          near_limit_fraction: float = 0.8) -> pb.Usage:
    utilization = used / limit
    return pb.Usage(gross_exposure=used, gross_exposure_limit=limit, allocated_capital=capital,
                    leverage_limit=leverage_limit, utilization=utilization,
                    near_limit=utilization >= near_limit_fraction, breached=utilization > 1)


def budget_reply(**fields) -> spb.GetBudgetResponse:
    budget = pb.Budget(
        ref=pb.BudgetRef(version=7, regime=pb.REGIME_BEAR, computed_at=timestamp(NOW - 5)),
        net_asset_value=10_000_000, equity_allocation=0.4, vol_target=0.08, total_leverage_limit=0.5,
        limit_source=pb.LIMIT_SOURCE_DYNAMIC, regime_since=timestamp(NOW - 2 * 3600 - 300),
        trading_state=pb.TRADING_STATE_ACTIVE,
        strategies=[pb.StrategyBudget(strategy=name, trading_state=pb.TRADING_STATE_ACTIVE)
                    for name in ("calm", "close_call", "over")],
        **fields)
    return spb.GetBudgetResponse(budget=budget)


def utilization_reply() -> spb.GetUtilizationResponse:
    return spb.GetUtilizationResponse(
        budget=pb.BudgetRef(version=7, regime=pb.REGIME_BEAR),
        total=usage(2_610_000, 5_000_000, 10_000_000, 0.5),
        strategies=[
            pb.StrategyUtilization(strategy="calm", usage=usage(300_000, 1_200_000, 2_000_000, 0.6)),
            pb.StrategyUtilization(strategy="close_call", usage=usage(910_000, 1_000_000, 1_000_000, 1.0)),
            pb.StrategyUtilization(strategy="over", usage=usage(1_400_000, 1_250_000, 1_000_000, 1.25)),
        ],
        symbols=[
            pb.SymbolUtilization(symbol="AAA", net_quantity=1500, position_notional=150_000,
                                 max_position_notional=1_000_000, utilization=0.15),
            pb.SymbolUtilization(symbol="BBB", net_quantity=-2_500.5, position_notional=850_000,
                                 max_position_notional=1_000_000, utilization=0.85, near_limit=True),
            pb.SymbolUtilization(symbol="CCC", net_quantity=12_000, position_notional=1_200_000,
                                 max_position_notional=1_000_000, utilization=1.2, near_limit=True,
                                 breached=True),
        ],
        near_limit_fraction=0.8, as_of=timestamp(NOW))


def status_reply(**fields) -> spb.GetStatusResponse:
    return spb.GetStatusResponse(
        budget=pb.BudgetRef(version=7, regime=pb.REGIME_BEAR),
        regime_history=[spb.RegimePeriod(regime=pb.REGIME_BULL, since=timestamp(NOW - 86_400)),
                        spb.RegimePeriod(regime=pb.REGIME_BEAR, since=timestamp(NOW - 2 * 3600 - 300))],
        regime_response_seconds=[0.004, 0.010], last_recommendation_sequence=42,
        oldest_recommendation_sequence=3, subscribers=2, active_overrides=1, **fields)


def alert(n: int, severity: int, message: str = "") -> pb.Alert:
    return pb.Alert(id=n, kind=pb.ALERT_KIND_LIMIT_NEAR, severity=severity,
                    message=message or f"alert number {n}", raised_at=timestamp(NOW - 60 * n))


def alerts_reply(count: int = 7) -> spb.ListAlertsResponse:
    severities = (pb.ALERT_SEVERITY_CRITICAL, pb.ALERT_SEVERITY_WARNING, pb.ALERT_SEVERITY_INFO)
    return spb.ListAlertsResponse(alerts=[alert(n, severities[n % 3]) for n in range(1, count + 1)])


def rendered(**kwargs) -> str:
    replies = dict(budget=budget_reply(), utilization=utilization_reply(), status=status_reply(),
                   alerts=alerts_reply())
    replies.update(kwargs)
    return view.render_status(**replies, target="127.0.0.1:50051")


def row(text: str, name: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(name + " "))


# -- cells -------------------------------------------------------------------------------------

def test_percentages_have_one_decimal_and_thousands_separators():
    assert [view.percent(f) for f in (0, 0.9581, 1.2, 14.311, float("inf"))] == [
        "0.0%", "95.8%", "120.0%", "1,431.1%", ">9,999%"]


def test_bar_fills_one_cell_per_ten_percent_as_shown_and_is_full_past_the_limit():
    assert view.bar(0) == "[..........]"
    assert view.bar(0.8999999) == "[#########.]"  # shown as 90.0%
    assert view.bar(0.999) == "[#########.]"
    assert view.bar(1.0) == view.bar(3.5) == view.bar(float("inf")) == "[##########]"


def test_money_and_quantities_have_thousands_separators():
    assert view.money(1_234_567.8) == "1,234,568"
    assert view.quantity(-2_500.5) == "-2,500.50"
    assert view.quantity(12_000.0) == "12,000"


# -- sections ----------------------------------------------------------------------------------

def test_a_near_limit_strategy_is_flagged_near_and_a_breached_one_breached():
    text = view.render_strategies(utilization_reply())

    assert row(text, "calm").endswith("25.0% [##........]")
    assert row(text, "close_call").endswith("91.0% [#########.] NEAR")
    assert row(text, "over").endswith("112.0% [##########] BREACHED")
    assert row(text, "(total)").endswith("52.2% [#####.....]")


def test_strategy_rows_show_capital_leverage_limit_max_gross_and_gross_used():
    cells = row(view.render_strategies(utilization_reply()), "over").split()

    assert cells[:5] == ["over", "1,000,000", "1.250", "1,250,000", "1,400,000"]


def test_symbols_show_limit_position_and_utilization_with_flags():
    text = view.render_symbols(utilization_reply())

    assert row(text, "AAA").split()[:5] == ["AAA", "1,500", "1,000,000", "150,000", "15.0%"]
    assert row(text, "BBB").split()[1] == "-2,500.50"
    assert row(text, "BBB").endswith("NEAR")
    assert row(text, "CCC").endswith("120.0% [##########] BREACHED")


@pytest.mark.parametrize("section, labels", [
    ("strategies", ["capital", "lev limit", "max gross", "gross used", "used"]),
    ("symbols", ["net qty", "limit", "position", "used"]),
])
def test_numbers_are_right_aligned_under_their_headers(section, labels):
    reply = utilization_reply()
    header, *rows = (view.render_strategies(reply) if section == "strategies"
                     else view.render_symbols(reply)).splitlines()
    label_ends = []
    for label in labels:  # each after the one before ("used" is also in "gross used")
        label_ends.append(header.index(label, label_ends[-1] if label_ends else 0) + len(label))

    for line in rows:
        number_ends = [m.end() for m in re.finditer(r"(?<= )-?[\d,.]+%?(?= )", line)]
        assert number_ends == label_ends, (header, line)


def test_every_line_fits_in_a_hundred_columns_even_with_long_names_and_messages():
    long_name = pb.StrategyUtilization(strategy="a_strategy_with_a_very_long_name_indeed",
                                       usage=usage(1_400_000_000, 1_250_000_000, 1_000_000_000, 1.25))
    wide = utilization_reply()
    wide.strategies.append(long_name)
    chatty = spb.ListAlertsResponse(alerts=[alert(1, pb.ALERT_SEVERITY_WARNING, "word " * 80)])

    text = rendered(utilization=wide, alerts=chatty)

    assert max(len(line) for line in text.splitlines()) <= view.WIDTH
    assert re.search(r"^a_strategy_\w+~ +1,000,000,000 ", text, re.MULTILINE)  # cut, marked, aligned


def test_overview_shows_the_regime_since_when_the_budget_version_and_limit_source():
    override = pb.Override(scope=pb.OVERRIDE_SCOPE_STRATEGY, target="over",
                           kind=pb.OVERRIDE_KIND_CAP_LEVERAGE, value=0.5)
    text = view.render_overview(budget_reply(overrides=[override]), utilization_reply(), status_reply(),
                                target="127.0.0.1:50051")

    assert "127.0.0.1:50051  as of 2027-01-15 08:00:00 UTC" in text
    assert "regime     BEAR since 2027-01-15 05:55:00 UTC (2h 05m ago); 1 change since start, " \
           "previously BULL" in text
    assert "budget     v7  limits dynamic" in text
    assert "overrides  1 in force: cap_leverage over 0.5" in text


def test_a_halted_strategy_and_shadow_mode_show_in_the_overview():
    reply = budget_reply(shadow_mode=True)
    reply.budget.strategies[2].trading_state = pb.TRADING_STATE_HALTED

    text = view.render_overview(reply, utilization_reply(), status_reply())

    assert "trading    ACTIVE; over HALTED; SHADOW MODE" in text


def test_metrics_show_regime_response_times_overrides_and_the_alerts_count():
    text = view.render_metrics(utilization_reply(), status_reply(), alerts_reply(7))

    assert "regime response   2 regime changes: last 10.0 ms, median 7.0 ms, max 10.0 ms" in text
    assert "overrides         1 active" in text
    assert "alerts            7 (2 critical, 3 warning, 2 info)" in text
    assert "budget used       52.2% of the book's limit" in text


def test_the_alerts_count_says_when_there_are_more_than_were_fetched():
    text = view.render_metrics(utilization_reply(), status_reply(), alerts_reply(100), alerts_fetched=100)

    assert "alerts            100+ (" in text


def test_recent_alerts_are_the_newest_five_with_their_severity():
    text = view.render_alerts(alerts_reply(7))

    lines = text.splitlines()
    assert lines[0] == "recent alerts (newest first)"
    assert lines[1] == "  2027-01-15 07:59:00  WARNING   alert number 1"
    assert lines[2] == "  2027-01-15 07:58:00  INFO      alert number 2"
    assert lines[3].split()[2] == "CRITICAL"
    assert len(lines) == 6


def test_no_alerts_render_as_none():
    empty = spb.ListAlertsResponse()

    assert view.render_alerts(empty) == "recent alerts: none"
    assert "alerts            0\n" in view.render_metrics(utilization_reply(), status_reply(), empty)


def test_the_whole_view_has_its_sections_in_order():
    text = rendered()

    sections = [line for line in text.splitlines()
                if line.startswith(("riskbudget status", "strategy ", "symbol ", "metrics", "recent alerts"))]
    assert [s.split()[0] for s in sections] == ["riskbudget", "strategy", "symbol", "metrics", "recent"]


# -- the command against a real sidecar ----------------------------------------------------------

async def test_status_shows_the_regime_and_each_strategy_of_a_running_sidecar(tmp_path, capsys):
    harness = await start_harness(tmp_path)
    try:
        await harness.publish_last_prices()
        await harness.stub.SetPositions(spb.SetPositionsRequest(positions=[
            pb.Position(strategy="trend", symbol="AAA", quantity=1_000_000)]))
        budget = (await harness.stub.GetBudget(spb.GetBudgetRequest())).budget

        code = await asyncio.to_thread(
            main, ["status", "--target", harness.server.target, "--iterations", "2", "--watch", "0.1"])
    finally:
        await harness.channel.close()
        await stop(harness.sidecar, harness.server)

    out = capsys.readouterr().out
    out = out[out.index("riskbudget status "):]  # after the sidecar's own log lines
    assert code == 0
    assert "\x1b[" not in out  # not a terminal: no screen clearing
    first, second = out.split("\n\nriskbudget status  ")
    assert first.startswith(f"riskbudget status  {harness.server.target}  as of 2027-01-15 08:00:00 UTC")
    assert f"regime     {pb.Regime.Name(budget.ref.regime).removeprefix('REGIME_')} since" in first
    assert f"budget     v{budget.ref.version}  limits dynamic" in first
    assert row(first, "trend").endswith("BREACHED")
    assert row(first, "carry")
    assert row(first, "(total)")
    assert row(first, "AAA").endswith("BREACHED")
    assert second.startswith(harness.server.target)


async def test_status_on_a_terminal_clears_the_screen_before_each_draw(tmp_path, capsys, monkeypatch):
    harness = await start_harness(tmp_path)
    try:
        monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
        code = await asyncio.to_thread(
            main, ["status", "--target", harness.server.target, "--iterations", "3", "--watch", "0.1"])
    finally:
        await harness.channel.close()
        await stop(harness.sidecar, harness.server)

    out = capsys.readouterr().out
    assert code == 0
    assert out.count("\x1b[H\x1b[2Jriskbudget status ") == 3


async def test_ctrl_c_ends_a_watch_quietly_with_exit_code_0(tmp_path, capsys, monkeypatch):
    from riskbudget_sidecar.app import cli

    def interrupted(seconds):
        raise KeyboardInterrupt

    harness = await start_harness(tmp_path)
    try:
        monkeypatch.setattr(cli.time, "sleep", interrupted)
        code = await asyncio.to_thread(main, ["status", "--target", harness.server.target, "--watch", "5"])
    finally:
        monkeypatch.undo()
        await harness.channel.close()
        await stop(harness.sidecar, harness.server)

    captured = capsys.readouterr()
    assert code == 0
    assert captured.out.count("riskbudget status ") == 1
    assert captured.err == ""


def test_status_of_an_unreachable_sidecar_is_one_line_and_exit_code_1(capsys):
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        target = f"127.0.0.1:{probe.getsockname()[1]}"

    code = main(["status", "--target", target])

    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith(f"riskbudget status: no answer from the sidecar at {target} (GetBudget: UNAVAILABLE")


@pytest.mark.parametrize("argv", [["--watch", "-1"], ["--watch", "0"], ["--watch", "soon"], ["--iterations", "0"]])
def test_status_refuses_a_bad_watch_or_iterations(argv, capsys):
    with pytest.raises(SystemExit) as refused:
        main(["status", *argv])

    assert refused.value.code == 2
    assert "riskbudget status: error: argument" in capsys.readouterr().err
