"""Price tables for the backtest: CSV (stdlib), Parquet (pandas), and the S&P 500 data
that skfolio ships inside its wheel (read from the installed package, no network).

A table is one row per observation and one column per symbol; the first column is the
row's date or time:

- a date (`2020-03-16`) is that day's close: the row's time is the end of that UTC day;
- a date and time (`2020-03-16T15:30:00`, naive means UTC) or epoch seconds is the
  moment the prices were seen, the end of the period they close.

Empty cells (or NaN) mean no price that row: the symbol's last price carries on.
Rows must be in strictly increasing time order. Prices must lie within MIN_PRICE..MAX_PRICE.
A time column of plain numbers that all look like YYYYMMDD dates (`19900102`) is refused:
read as epoch seconds they would be days of August 1970.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import math
import zlib
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..engine.types import MAX_PRICE, MIN_PRICE

DAY = 86_400.0
# Epoch seconds in this range are days of August 1970; as YYYYMMDD they are 1900-01-01..2100-12-31.
_YYYYMMDD_LOW, _YYYYMMDD_HIGH = 19_000_101, 21_001_231
EXTRA_HINT = "install the optional extra: pip install 'riskbudget[backtest]'"


class PriceDataError(ValueError):
    """The price data cannot be used; the message names the file, row or column."""


@dataclass(frozen=True)
class PriceTable:
    times: np.ndarray
    """Per row, seconds since the epoch: when the row's prices were seen (strictly increasing)."""
    labels: tuple[str, ...]
    """Per row, the first column as written (for reports)."""
    symbols: tuple[str, ...]
    values: np.ndarray
    """Shape (rows, symbols): positive prices, NaN where a row has none."""
    source: str = ""

    def __post_init__(self) -> None:
        rows = len(self.times)
        if self.values.shape != (rows, len(self.symbols)):
            raise PriceDataError(f"{self.source}: values have shape {self.values.shape}, "
                                 f"expected ({rows}, {len(self.symbols)})")
        if len(self.labels) != rows:
            raise PriceDataError(f"{self.source}: {len(self.labels)} labels for {rows} rows")
        if len(set(self.symbols)) != len(self.symbols):
            raise PriceDataError(f"{self.source}: repeated column names")
        if rows > 1 and not np.all(np.diff(self.times) > 0):
            bad = int(np.argmin(np.diff(self.times) > 0)) + 1
            raise PriceDataError(f"{self.source}: row {self.labels[bad]!r} is not after "
                                 f"{self.labels[bad - 1]!r}: rows must be in increasing time order")
        finite = np.isfinite(self.values)
        if (self.values[finite] <= 0).any():
            row, column = np.argwhere(finite & (np.nan_to_num(self.values, nan=1.0) <= 0))[0]
            raise PriceDataError(f"{self.source}: price of {self.symbols[column]} on "
                                 f"{self.labels[row]} must be positive, got {_plain(self.values[row, column])}")
        if np.isinf(self.values).any():
            row, column = np.argwhere(np.isinf(self.values))[0]
            raise PriceDataError(f"{self.source}: price of {self.symbols[column]} on "
                                 f"{self.labels[row]} is infinite")
        outside = finite & ((self.values < MIN_PRICE) | (self.values > MAX_PRICE))  # NaN: False
        if outside.any():
            row, column = np.argwhere(outside)[0]
            raise PriceDataError(
                f"{self.source}: price of {self.symbols[column]} on {self.labels[row]} is "
                f"{_plain(self.values[row, column])}, outside the range the sidecar accepts "
                f"({MIN_PRICE:g} to {MAX_PRICE:g})")

    @property
    def rows(self) -> int:
        return len(self.times)

    def select(self, symbols: Iterable[str]) -> "PriceTable":
        """The columns named, in that order; a missing one is an error naming it."""
        wanted = list(dict.fromkeys(symbols))
        missing = [s for s in wanted if s not in self.symbols]
        if missing:
            raise PriceDataError(
                f"{self.source}: no price column for {', '.join(missing)} (the config's symbols and "
                f"benchmark must be columns; it has {', '.join(self.symbols[:25])}"
                f"{', ...' if len(self.symbols) > 25 else ''})")
        index = [self.symbols.index(s) for s in wanted]
        return PriceTable(self.times, self.labels, tuple(wanted), self.values[:, index], self.source)

    def between(self, start: str | None = None, end: str | None = None) -> "PriceTable":
        """The rows from `start` to `end` (inclusive; dates or times as in the file)."""
        keep = np.ones(self.rows, dtype=bool)
        if start:
            if _looks_like_yyyymmdd([start]):
                raise _yyyymmdd_error("--start", "the value", start)
            keep &= self.times >= parse_time(start, where="--start")[0]
        if end:
            if _looks_like_yyyymmdd([end]):
                raise _yyyymmdd_error("--end", "the value", end)
            keep &= self.times <= parse_time(end, where="--end")[0]
        if not keep.any():
            raise PriceDataError(f"{self.source}: no rows between {start or 'the start'} and {end or 'the end'}")
        labels = tuple(label for label, kept in zip(self.labels, keep) if kept)
        return PriceTable(self.times[keep], labels, self.symbols, self.values[keep], self.source)

    def head(self, rows: int) -> "PriceTable":
        return PriceTable(self.times[:rows], self.labels[:rows], self.symbols, self.values[:rows], self.source)

    def with_values(self, values: np.ndarray) -> "PriceTable":
        return PriceTable(self.times, self.labels, self.symbols, np.asarray(values, dtype=float), self.source)

    def to_csv(self, path: str | Path) -> None:
        """Write it back as a CSV the reader accepts (the labels as the first column)."""
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["time", *self.symbols])
            for label, row in zip(self.labels, self.values):
                writer.writerow([label, *("" if math.isnan(v) else repr(float(v)) for v in row)])


def parse_time(text: str, *, where: str) -> tuple[float, bool]:
    """(seconds since the epoch, whether it was a date alone). A date alone is the end of that
    UTC day (its close); a naive date and time is UTC; a plain number is epoch seconds."""
    text = text.strip()
    try:
        return float(text), False
    except ValueError:
        pass
    try:
        day = date.fromisoformat(text)
    except ValueError:
        day = None
    if day is not None and len(text) <= 10:
        midnight = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        return midnight.timestamp() + DAY, True
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise PriceDataError(f"{where}: {text!r} is not a date, a date and time, or epoch seconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp(), False


def _plain(value: float) -> str:
    """A number as the user would write it (`-5.0`, `1e+308`), not numpy's repr."""
    return repr(float(value))


def _looks_like_yyyymmdd(texts: Sequence[str]) -> bool:
    """Whether every value is a plain integer between 19000101 and 21001231: YYYYMMDD dates that
    float() would take for epoch seconds in August 1970. Such a column is refused, not read as
    dates: the number is ambiguous, and the sidecar's warm-up CSV reader takes it as seconds."""
    for text in texts:
        try:
            number = float(text)
        except ValueError:
            return False
        if not (number.is_integer() and _YYYYMMDD_LOW <= number <= _YYYYMMDD_HIGH):
            return False
    return bool(texts)


def _yyyymmdd_error(where: str, what: str, text: str) -> PriceDataError:
    digits = f"{int(float(text)):08d}"
    return PriceDataError(
        f"{where}: {what} {text.strip()!r} looks like a YYYYMMDD date, which would be read as seconds "
        f"since 1970; write ISO dates instead ({digits[:4]}-{digits[4:6]}-{digits[6:]})")


def _parse_price(text: str, *, where: str) -> float:
    text = text.strip()
    if not text or text.lower() in ("nan", "na", "null", "none"):
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise PriceDataError(f"{where}: {text!r} is not a number") from None


def _from_rows(rows: Iterable[Sequence[str]], source: str) -> PriceTable:
    iterator = iter(rows)
    header = next(iterator, None)
    if not header or len(header) < 2:
        raise PriceDataError(f"{source}: the first line must name a date/time column and at least one symbol")
    symbols = tuple(name.strip() for name in header[1:])
    if any(not s for s in symbols):
        raise PriceDataError(f"{source}: a price column has no name")
    times, labels, values, lines = [], [], [], []
    for line, row in enumerate(iterator, start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) > len(header):
            raise PriceDataError(f"{source}:{line}: {len(row)} cells for {len(header)} columns")
        moment, _ = parse_time(row[0], where=f"{source}:{line}")
        lines.append(line)
        times.append(moment)
        labels.append(row[0].strip())
        cells = list(row[1:]) + [""] * (len(header) - len(row))
        values.append([_parse_price(cell, where=f"{source}:{line} ({symbols[i]})")
                       for i, cell in enumerate(cells)])
    if not times:
        raise PriceDataError(f"{source}: no rows of prices")
    if _looks_like_yyyymmdd(labels):
        raise _yyyymmdd_error(f"{source}:{lines[0]}", f"time column {header[0].strip()!r}:", labels[0])
    return PriceTable(np.array(times), tuple(labels), symbols,
                      np.array(values, dtype=float).reshape(len(times), len(symbols)), source)


def read_csv(path: str | Path) -> PriceTable:
    """A CSV (or .csv.gz) file: the date/time column first, then one column per symbol."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", newline="", encoding="utf-8") as handle:
            return _from_rows(csv.reader(handle), str(path))
    except OSError as exc:
        raise PriceDataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (EOFError, zlib.error) as exc:  # a truncated or corrupt .gz
        raise PriceDataError(f"{path}: not a complete gzip file: {exc}") from None
    except UnicodeDecodeError as exc:
        raise PriceDataError(f"{path}: not UTF-8 text: byte {exc.object[exc.start]:#04x}") from None
    except csv.Error as exc:
        raise PriceDataError(f"{path}: not a readable CSV: {exc}") from None


def read_parquet(path: str | Path) -> PriceTable:
    """A Parquet file: the date/time as the index or the first column, one column per symbol."""
    path = Path(path)
    try:
        import pandas as pd
    except ImportError:
        raise PriceDataError(f"{path}: reading Parquet needs pandas and pyarrow: {EXTRA_HINT}") from None
    try:
        frame = pd.read_parquet(path)
    except ImportError as exc:
        raise PriceDataError(f"{path}: {exc}; {EXTRA_HINT}") from None
    except (OSError, ValueError) as exc:
        raise PriceDataError(f"{path}: cannot read as Parquet: {exc}") from None
    return from_dataframe(frame, source=str(path))


def from_dataframe(frame, *, source: str = "DataFrame") -> PriceTable:
    """A pandas DataFrame indexed by date/time (or with it as the first column)."""
    import pandas as pd

    if isinstance(frame.index, pd.RangeIndex) and len(frame.columns) > 1:
        frame = frame.set_index(frame.columns[0])
    index = frame.index
    if isinstance(index, pd.DatetimeIndex):
        # Dates are midnights in the index's own time zone (daily data from a vendor is often
        # local midnight): each is that date's close, as a date in a CSV is.
        date_only = bool((index == index.normalize()).all())
        if date_only and index.tz is not None:
            index = index.tz_localize(None)
        stamps = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
        labels = tuple(index.strftime("%Y-%m-%d" if date_only else "%Y-%m-%dT%H:%M:%S%z"))
        epoch = pd.Timestamp(0, tz="UTC")
        times = np.asarray((stamps - epoch) / pd.Timedelta(seconds=1), dtype=float)
        if date_only:
            times = times + DAY
    else:
        texts = [str(v) for v in index]
        if _looks_like_yyyymmdd(texts):
            name = "index" if index.name is None else str(index.name)
            raise _yyyymmdd_error(f"{source} (first row)", f"time column {name!r}:", texts[0])
        parsed = [parse_time(text, where=f"{source} index") for text in texts]
        times = np.array([t for t, _ in parsed])
        labels = tuple(str(v) for v in index)
    values = frame.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    return PriceTable(times, labels, tuple(str(c) for c in frame.columns), values, source)


def read_prices(path: str | Path) -> PriceTable:
    """CSV or Parquet, by the file's extension."""
    name = str(path).lower()
    if name.endswith((".parquet", ".pq")):
        return read_parquet(path)
    if name.endswith((".csv", ".csv.gz", ".txt")):
        return read_csv(path)
    raise PriceDataError(f"{path}: unknown format; use .csv, .csv.gz, .parquet or .pq")


# -- data that ships inside a PyPI package -------------------------------------------------------

DATASETS = {
    "sp500-index": "the S&P 500 index (column SP500), daily closes 1990-01-02 to 2022-12-28",
    "sp500-stocks": "20 S&P 500 constituents, daily adjusted closes 1990-01-02 to 2022-12-28",
    "sp500": "both: the index (SP500) and the 20 stocks",
}
_SKFOLIO_FILES = {"sp500-index": "sp500_index.csv.gz", "sp500-stocks": "sp500_dataset.csv.gz"}
SKFOLIO_TICKERS = frozenset({
    "SP500", "AAPL", "AMD", "BAC", "BBY", "CVX", "GE", "HD", "JNJ", "JPM", "KO", "LLY", "MRK", "MSFT",
    "PEP", "PFE", "PG", "RRC", "UNH", "WMT", "XOM"})
"""The columns of the "sp500" dataset."""


def _skfolio_file(name: str) -> Path | None:
    """The data file inside the installed skfolio wheel, found without importing skfolio
    (whose import pulls scikit-learn and cvxpy); None if not where it should be."""
    spec = importlib.util.find_spec("skfolio")
    if spec is None or not spec.submodule_search_locations:
        raise PriceDataError(f"dataset {name!r} is read from the skfolio package: {EXTRA_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / _SKFOLIO_FILES[name]
    return path if path.is_file() else None


def _skfolio_table(name: str) -> PriceTable:
    path = _skfolio_file(name)
    if path is not None:
        table = read_csv(path)
        return PriceTable(table.times, table.labels, table.symbols, table.values, f"skfolio:{path.name}")
    # Fallback: the public loaders (bundled data, read with importlib.resources: no network).
    from skfolio import datasets

    loader = {"sp500-index": datasets.load_sp500_index, "sp500-stocks": datasets.load_sp500_dataset}[name]
    return from_dataframe(loader(), source=f"skfolio.datasets.{loader.__name__}")


def load_dataset(name: str) -> PriceTable:
    """One of DATASETS, from the files skfolio ships in its wheel (no network, ever)."""
    if name not in DATASETS:
        raise PriceDataError(f"unknown dataset {name!r}; one of: {', '.join(DATASETS)}")
    if name != "sp500":
        return _skfolio_table(name)
    index, stocks = _skfolio_table("sp500-index"), _skfolio_table("sp500-stocks")
    if index.rows != stocks.rows or not np.array_equal(index.times, stocks.times):
        raise PriceDataError("skfolio's S&P 500 index and stock files do not share their dates")
    return PriceTable(index.times, index.labels, index.symbols + stocks.symbols,
                      np.hstack([index.values, stocks.values]), "skfolio:sp500_index+sp500_dataset")


def describe_datasets() -> str:
    return "\n".join(f"  {name:<14}{text}" for name, text in DATASETS.items())


def table_from_arrays(times: Sequence[float], symbols: Sequence[str], values, *,
                      labels: Sequence[str] | None = None, source: str = "arrays") -> PriceTable:
    """A table from plain arrays (tests, notebooks)."""
    times = np.asarray(times, dtype=float)
    labels = tuple(labels) if labels is not None else tuple(f"{t:g}" for t in times)
    return PriceTable(times, labels, tuple(symbols), np.asarray(values, dtype=float), source)


__all__ = ["DATASETS", "MAX_PRICE", "MIN_PRICE", "PriceDataError", "PriceTable", "describe_datasets",
           "from_dataframe", "load_dataset", "parse_time", "read_csv", "read_parquet", "read_prices",
           "table_from_arrays"]
