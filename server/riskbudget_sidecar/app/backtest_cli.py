"""`riskbudget backtest`: replay prices through the engine and compare the dynamic budget
with static allocation. `add_backtest_command(commands)` registers it on the `riskbudget`
parser; `python -m riskbudget_sidecar.app.backtest_cli` runs it alone."""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from typing import TextIO

from ..backtest.prices import (
    DATASETS, EXTRA_HINT, PriceDataError, describe_datasets, load_dataset, read_prices,
)
from ..backtest.replay import Rebalance, ReplaySettings
from ..service.config_file import ConfigError, load_config

DESCRIPTION = f"""\
Replay daily (or intraday) prices through the engine the live sidecar runs (market state,
regime, budgets, triggers, pre-trade checks), with no look-ahead, and compare the dynamic
budget with a static allocation built from the same config and with one at the same
average exposure. Prints the table; with --out, writes report.md, report.json and PNG
charts there.

Prices: --prices FILE (.csv, .csv.gz, .parquet: a date/time column first, then one column
per symbol; the config's symbols and benchmark must be columns), or --dataset NAME, real
daily data shipped inside the skfolio wheel (read offline; needs the extra:
pip install 'riskbudget[backtest]'):
{describe_datasets()}
"""


def add_backtest_command(commands) -> argparse.ArgumentParser:
    """Register `backtest` on the `riskbudget` subparsers object."""
    parser = commands.add_parser(
        "backtest", help="backtest the dynamic budget against static allocation on prices",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    configure_parser(parser)
    parser.set_defaults(run=run_backtest_command)
    return parser


def configure_parser(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prices", metavar="FILE", help="CSV or Parquet price file")
    source.add_argument("--dataset", choices=sorted(DATASETS), help="S&P 500 data shipped in skfolio")
    parser.add_argument("--config", required=True, metavar="FILE", help="the sidecar config to backtest")
    parser.add_argument("--out", metavar="DIR", help="write report.md, report.json and charts here")
    parser.add_argument("--rebalance", choices=[r.value for r in Rebalance], default=Rebalance.BAR.value,
                        help="bar: at every bar close (daily on daily data; default); "
                             "recommendations: only when a rebalancing recommendation fires")
    parser.add_argument("--cost-bps", type=float, default=0.0,
                        help="transaction cost per notional traded, in basis points (default 0)")
    parser.add_argument("--risk-free", type=float, default=0.0,
                        help="annual rate on cash and borrowing; Sharpe is of returns above it (default 0)")
    parser.add_argument("--warmup", type=int, metavar="ROWS",
                        help="rows fed to the engine before trading starts (default: the regime's "
                             "trend window or min_observations + 1, whichever is longer)")
    parser.add_argument("--static-leverage", type=float, metavar="X",
                        help="the static portfolio's gross leverage (default limits.static.total_leverage)")
    parser.add_argument("--start", help="first row to use (a date or time as in the data)")
    parser.add_argument("--end", help="last row to use")
    parser.add_argument("--title", default="", help="title of the report and charts")
    parser.add_argument("--no-charts", action="store_true", help="skip the PNG charts (no matplotlib needed)")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


class ProgressPrinter:
    """Progress of a long replay on stderr: one updating line on a terminal, else a line a 10%."""

    def __init__(self, stream: TextIO, label: str) -> None:
        self._stream = stream
        self._label = label
        self._tty = stream.isatty()
        self._last_tenth = -1

    def __call__(self, done: int, total: int, seconds: float) -> None:
        tenth = done * 10 // total
        if not self._tty and tenth == self._last_tenth and done != total:
            return
        self._last_tenth = tenth
        rate = done / seconds if seconds > 0 else 0.0
        text = (f"{self._label}: {done:,}/{total:,} rows ({done / total:.0%}) in {seconds:.1f} s"
                f", {rate:,.0f} rows/s")
        if self._tty:
            self._stream.write("\r" + text + ("\n" if done == total else ""))
        else:
            self._stream.write(text + "\n")
        self._stream.flush()


def run_backtest_command(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    from ..backtest.report import format_table, write_report
    from ..backtest.run import run_backtest

    config = load_config(args.config)  # ConfigError: the caller prints it, exit 2
    if args.out and not args.no_charts and importlib.util.find_spec("matplotlib") is None:
        print(f"riskbudget backtest: charts need matplotlib: {EXTRA_HINT} (or pass --no-charts)",
              file=sys.stderr)
        return 2
    try:
        settings = ReplaySettings(  # before the prices: a bad setting is told at once
            rebalance=Rebalance(args.rebalance), warmup=args.warmup, cost_bps=args.cost_bps,
            risk_free=args.risk_free, static_leverage=args.static_leverage)
        table = load_dataset(args.dataset) if args.dataset else read_prices(args.prices)
        if args.start or args.end:
            table = table.between(args.start, args.end)
        table = table.select(config.universe)
        progress = None if args.quiet else ProgressPrinter(sys.stderr, f"backtest {Path(args.config).name}")
        result = run_backtest(config, table, settings, progress=progress)
    except (PriceDataError, ValueError) as exc:
        print(f"riskbudget backtest: {exc}", file=sys.stderr)
        return 2
    title = args.title or f"{Path(args.config).stem} on {args.dataset or Path(args.prices).name}"
    print(title)
    print(format_table(result))
    if args.out:
        try:
            written = write_report(result, args.out, title=title, config_label=args.config,
                                   runtime_seconds=time.perf_counter() - began, charts=not args.no_charts)
        except (OSError, RuntimeError) as exc:
            print(f"riskbudget backtest: cannot write the report: {exc}", file=sys.stderr)
            return 1
        print("wrote " + ", ".join(str(p) for p in written))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="riskbudget backtest", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    configure_parser(parser)
    args = parser.parse_args(argv)
    try:
        return run_backtest_command(args)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
