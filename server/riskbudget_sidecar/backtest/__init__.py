"""Backtest the dynamic risk budget against static allocation, through the engine code the
live sidecar runs (see replay.py for the schedule and run.py for the comparison).

The replay and metrics need numpy only; Parquet, the shipped S&P 500 data and the charts
need the optional extra: pip install 'riskbudget[backtest]'.
"""

from .metrics import Performance, performance
from .prices import DATASETS, PriceDataError, PriceTable, load_dataset, read_prices, table_from_arrays
from .replay import Rebalance, Replay, ReplayResult, ReplaySettings
from .run import BacktestResult, evaluate_replay, run_backtest

__all__ = [
    "DATASETS", "BacktestResult", "Performance", "PriceDataError", "PriceTable", "Rebalance", "Replay",
    "ReplayResult", "ReplaySettings", "evaluate_replay", "load_dataset", "performance", "read_prices",
    "run_backtest", "table_from_arrays",
]
