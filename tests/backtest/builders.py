"""Configs and price tables for the backtest tests: small, seeded, made in code."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from riskbudget_sidecar.backtest.prices import DAY, PriceTable, table_from_arrays
from riskbudget_sidecar.engine.config import Config
from riskbudget_sidecar.engine.synthetic import synthetic_prices
from riskbudget_sidecar.service.config_file import parse_config

FIRST_DAY = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a day boundary
SYMBOLS = ("AAA", "BBB", "CCC", "DDD", "IDX")

BASE: dict[str, Any] = {
    "risk_budgeting": {
        "monitoring_interval": 3600,
        "regime_allocations": {
            "bull": {"equity_allocation": 0.8, "leverage_limit": 1.5, "vol_target": 0.15},
            "bear": {"equity_allocation": 0.4, "leverage_limit": 0.5, "vol_target": 0.08},
            "crisis": {"equity_allocation": 0.2, "leverage_limit": 0.2, "vol_target": 0.05},
        },
        "rebalancing_triggers": {"drift_threshold": 0.05, "correlation_spike": 0.6, "vol_breach": 1.2},
    },
    "sidecar": {"listen": "127.0.0.1:0", "max_message_bytes": 1_048_576, "admin_token_env": None},
    "http": {"enabled": False},
    "portfolio": {
        "net_asset_value": 1_000_000,
        "strategies": {
            "trend": {"risk_share": 0.6, "symbols": ["AAA", "BBB", "IDX"]},
            "carry": {"risk_share": 0.4, "symbols": ["CCC", "DDD"]},
        },
    },
    "limits": {"max_order_notional": 150_000, "max_staleness": 30},
    "market_data": {"bar_interval": 86_400, "min_observations": 5},
    "regime": {
        "benchmark": "IDX", "initial": "bull", "trend_window": 10, "drawdown_window": 30,
        "bear": {"volatility": 0.22, "drawdown": 0.06},
        "crisis": {"volatility": 0.32, "drawdown": 0.12, "correlation": 0.85},
        "confirmation_bars": 1, "min_dwell_bars": 1,
    },
    "warmup": {"source": "none"},
    "store": {"backend": "memory"},
}


def config_data(**sections: Any) -> dict[str, Any]:
    """BASE with whole sections (or `section__key` entries) replaced."""
    data = copy.deepcopy(BASE)
    for key, value in sections.items():
        if "__" in key:
            section, name = key.split("__")
            data.setdefault(section, {})[name] = value
        else:
            data[key] = value
    return data


def make_config(**sections: Any) -> Config:
    return parse_config(config_data(**sections), source="test")


def daily_table(rows: int = 90, *, seed: int = 3, volatility: float = 0.3, symbols=SYMBOLS,
                drift: float = 0.0) -> PriceTable:
    """Seeded daily closes, one row per calendar day, labelled by date."""
    values = synthetic_prices(symbols, bars=rows, seed=seed, annual_volatility=volatility,
                              annual_drift=drift, correlation=0.5, periods_per_year=252)
    times = FIRST_DAY + DAY * (np.arange(rows) + 1)  # each date's close: the end of that day
    labels = [np.datetime64(int(t - DAY), "s").astype("datetime64[D]").astype(str) for t in times]
    return table_from_arrays(times, symbols, values, labels=labels, source="synthetic")
