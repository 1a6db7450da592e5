"""Warm-up price history, so that a fresh sidecar has a live budget at once."""

from __future__ import annotations

import csv
import io
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from ..engine.config import Config, CsvWarmup, SyntheticWarmup
from ..engine.synthetic import synthetic_prices
from ..engine.types import PriceTick
from .config_file import ConfigError, open_regular_file


def warmup_ticks(config: Config, *, now: float) -> Iterator[PriceTick]:
    """Ticks in time order, every one in a closed bar before the one holding `now`."""
    source = config.warmup
    if isinstance(source, SyntheticWarmup):
        yield from _synthetic_ticks(config, source, now=now)
    elif isinstance(source, CsvWarmup):
        yield from _csv_ticks(config, Path(source.path))


def check_warmup_file(config: Config) -> None:
    """Read a CSV warm-up through as a start would: ConfigError naming what would stop it (the
    other sources read no file)."""
    if isinstance(config.warmup, CsvWarmup):
        for _ in _csv_ticks(config, Path(config.warmup.path)):
            pass


def _synthetic_ticks(config: Config, source: SyntheticWarmup, *, now: float) -> Iterator[PriceTick]:
    interval = config.market_data.bar_interval
    symbols = config.universe
    prices = synthetic_prices(
        symbols, bars=source.bars, seed=source.seed, annual_volatility=source.annual_volatility,
        annual_drift=source.annual_drift, correlation=source.correlation,
        periods_per_year=config.market_data.periods_per_year)
    current_bar = math.floor(now / interval)
    for row_index, row in enumerate(prices):
        # Mid-bar times: the last warm-up bar is the one just before now's bar.
        time = (current_bar - source.bars + row_index + 0.5) * interval
        for symbol, price in zip(symbols, row):
            yield PriceTick(symbol, float(price), time)


def _parse_time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()


def _csv_ticks(config: Config, path: Path) -> Iterator[PriceTick]:
    """A `time` column then one column per symbol; empty cells are skipped."""
    universe = set(config.universe)
    try:
        handle = io.TextIOWrapper(open_regular_file(path), newline="", encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"warmup.path: cannot read {path}: {exc.strerror or exc}"]) from None
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header or header[0] != "time":
            raise ConfigError([f"{path}: the first column must be 'time'"])
        columns = [(i, name) for i, name in enumerate(header[1:], start=1) if name in universe]
        for line_number, row in enumerate(reader, start=2):
            try:
                time = _parse_time(row[0])
                for index, symbol in columns:
                    if index < len(row) and row[index].strip():
                        price = float(row[index])
                        if not math.isfinite(price) or price <= 0:
                            raise ValueError(f"price {row[index]!r} for {symbol}")
                        yield PriceTick(symbol, price, time)
            except (ValueError, IndexError) as exc:
                raise ConfigError([f"{path}:{line_number}: {exc}"]) from None
