"""`riskbudget backtest`: the command, its table, its reports and its errors."""

from __future__ import annotations

import argparse
import importlib.util
import json

import pytest
import yaml

from riskbudget_sidecar.app.backtest_cli import add_backtest_command, main

from .builders import config_data, daily_table

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


@pytest.fixture
def files(tmp_path):
    prices = tmp_path / "prices.csv"
    daily_table(120, seed=4).to_csv(prices)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(config_data()))
    return prices, config


def test_the_command_prints_the_comparison_table(files, capsys):
    prices, config = files

    code = main(["--prices", str(prices), "--config", str(config), "--warmup", "15", "--quiet"])

    out = capsys.readouterr().out
    assert code == 0
    for label in ("annual return", "annual volatility", "Sharpe ratio", "max drawdown", "Calmar ratio",
                  "worst day", "volatility of volatility", "turnover per year", "average gross exposure",
                  "average budget utilization", "drawdown reduction", "regime changes", "static, matched"):
        assert label in out
    assert "replayed 120 rows x 5 symbols" in out


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="charts need the backtest extra (matplotlib)")
def test_out_writes_markdown_json_and_charts(files, tmp_path, capsys):
    prices, config = files
    out = tmp_path / "report"

    code = main(["--prices", str(prices), "--config", str(config), "--out", str(out), "--warmup", "15",
                 "--cost-bps", "2", "--title", "tiny"])

    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "drawdown.png", "equity.png", "leverage.png", "report.json", "report.md"]
    data = json.loads((out / "report.json").read_text())
    assert set(data["portfolios"]) == {"dynamic", "static", "matched"}
    assert data["settings"]["cost_bps"] == 2
    assert data["evaluation"]["periods"] == 120 - 15 - 1
    assert {"vs_static", "vs_matched"} == set(data["drawdown_reduction"])
    assert data["runtime_seconds"] > 0
    markdown = (out / "report.md").read_text()
    assert "| max drawdown |" in markdown and "![equity](equity.png)" in markdown
    assert "rows (" in capsys.readouterr().err  # progress on stderr


def test_no_charts_writes_only_the_reports(files, tmp_path):
    prices, config = files

    assert main(["--prices", str(prices), "--config", str(config), "--out", str(tmp_path / "r"),
                 "--no-charts", "--quiet", "--warmup", "15"]) == 0
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["report.json", "report.md"]


def test_a_price_file_without_the_configs_symbols_exits_2_naming_them(tmp_path, files, capsys):
    _, config = files
    prices = tmp_path / "few.csv"
    prices.write_text("date,AAA\n2020-01-02,1\n2020-01-03,2\n")

    assert main(["--prices", str(prices), "--config", str(config), "--quiet"]) == 2
    assert "no price column for BBB, CCC, DDD, IDX" in capsys.readouterr().err


def test_a_bad_config_exits_2_with_the_key_path(tmp_path, files, capsys):
    prices, _ = files
    bad = tmp_path / "bad.yaml"
    data = config_data()
    data["regime"]["trend_windw"] = 3
    bad.write_text(yaml.safe_dump(data))

    assert main(["--prices", str(prices), "--config", str(bad), "--quiet"]) == 2
    assert "regime.trend_windw" in capsys.readouterr().err


def test_add_backtest_command_registers_backtest_on_a_subparsers_object(files):
    prices, config = files
    parser = argparse.ArgumentParser(prog="riskbudget")
    commands = parser.add_subparsers(dest="command", required=True)

    add_backtest_command(commands)
    args = parser.parse_args(["backtest", "--prices", str(prices), "--config", str(config), "--quiet",
                              "--warmup", "15"])

    assert args.command == "backtest" and args.run(args) == 0
    with pytest.raises(SystemExit):
        parser.parse_args(["backtest", "--config", str(config)])  # --prices or --dataset is required
