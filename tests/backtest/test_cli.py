"""`riskbudget backtest`: the command, its table, its reports and its errors."""

from __future__ import annotations

import argparse
import json

import pytest
import yaml

from riskbudget_sidecar.app.backtest_cli import add_backtest_command, main

from .builders import config_data, daily_table



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


def test_an_absurd_setting_exits_2_naming_it_before_the_prices_are_read(tmp_path, files, capsys):
    _, config = files

    assert main(["--prices", str(tmp_path / "not-read.csv"), "--config", str(config), "--quiet",
                 "--cost-bps", "1e6"]) == 2
    assert "cost_bps must be between 0 and 10,000" in capsys.readouterr().err


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


def test_the_example_config_runs_on_the_shipped_sp500_data(capsys):
    from pathlib import Path

    config = Path(__file__).resolve().parents[2] / "examples" / "backtest" / "sp500.yaml"

    code = main(["--dataset", "sp500", "--config", str(config), "--end", "1991-06-28", "--quiet"])

    out = capsys.readouterr().out
    assert code == 0
    assert "period: 1990-03-14 to 1991-06-28" in out
    assert "x 21 symbols" in out


@pytest.mark.parametrize("name", ["sp500.yaml", "sp500_index.yaml", "sp500_vol_target.yaml"])
def test_the_example_configs_are_valid_and_name_the_shipped_tickers(name):
    from pathlib import Path

    from riskbudget_sidecar.backtest.prices import SKFOLIO_TICKERS
    from riskbudget_sidecar.service.config_file import load_config

    config = load_config(Path(__file__).resolve().parents[2] / "examples" / "backtest" / name)

    assert set(config.universe) <= SKFOLIO_TICKERS


def test_charts_without_matplotlib_fail_fast_with_the_extra_to_install(files, tmp_path, capsys, monkeypatch):
    import importlib.util as util

    prices, config = files
    real = util.find_spec
    monkeypatch.setattr(util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))

    assert main(["--prices", str(prices), "--config", str(config), "--out", str(tmp_path / "r")]) == 2
    assert "pip install 'riskbudget[backtest]'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_yyyymmdd_price_file_exits_2_instead_of_a_nonsense_report(tmp_path, files, capsys):
    """Dates exported as 20260101 once ran as epoch seconds and printed returns of 6e58%."""
    prices, config = files
    compact = tmp_path / "compact.csv"
    lines = prices.read_text().splitlines()
    compact.write_text("\n".join([lines[0], *(line[:10].replace("-", "") + line[10:] for line in lines[1:])]))

    assert main(["--prices", str(compact), "--config", str(config), "--quiet", "--warmup", "15"]) == 2
    err = capsys.readouterr().err
    assert "compact.csv:2: time column 'time': '20260101' looks like a YYYYMMDD date" in err
    assert "write ISO dates instead (2026-01-01)" in err
