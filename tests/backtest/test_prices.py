"""Reading prices: CSV, Parquet, the datasets skfolio ships; errors name the file, row and column."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from riskbudget_sidecar.backtest.prices import (
    DAY, PriceDataError, from_dataframe, load_dataset, parse_time, read_csv, read_prices,
)



def write(tmp_path, text: str, name: str = "prices.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_date_is_that_days_close_at_the_end_of_the_utc_day():
    assert parse_time("2020-03-16", where="x") == (1584316800.0 + DAY, True)
    assert parse_time("2020-03-16T15:30:00", where="x") == (1584372600.0, False)
    assert parse_time("2020-03-16T15:30:00+01:00", where="x") == (1584369000.0, False)
    assert parse_time("1584372600", where="x") == (1584372600.0, False)


def test_a_csv_with_gaps_reads_into_a_table_with_nan(tmp_path):
    path = write(tmp_path, "date,AAA,BBB\n2020-01-02,10,\n2020-01-03,11,20.5\n2020-01-06,12,21\n")

    table = read_prices(path)

    assert table.symbols == ("AAA", "BBB")
    assert table.labels == ("2020-01-02", "2020-01-03", "2020-01-06")
    assert table.times[0] == parse_time("2020-01-02", where="x")[0]
    assert np.isnan(table.values[0, 1]) and table.values[1, 1] == 20.5


def test_a_gzipped_csv_reads_too(tmp_path):
    path = tmp_path / "prices.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("time,AAA\n2020-01-02,10\n2020-01-03,11\n")

    assert read_csv(path).values.ravel().tolist() == [10.0, 11.0]


@pytest.mark.parametrize("text, message", [
    ("date,AAA\n2020-01-03,10\n2020-01-02,11\n", "increasing time order"),
    ("date,AAA\n2020-01-02,10\n2020-01-02,11\n", "increasing time order"),
    ("date,AAA\n2020-01-02,-1\n", "must be positive"),
    ("date,AAA\n2020-01-02,abc\n", "prices.csv:2 (AAA): 'abc' is not a number"),
    ("date,AAA\nyesterday,1\n", "prices.csv:2: 'yesterday' is not a date"),
    ("date\n2020-01-02\n", "at least one symbol"),
    ("date,AAA\n", "no rows of prices"),
])
def test_bad_price_files_are_refused_with_where_and_why(tmp_path, text, message):
    with pytest.raises(PriceDataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_prices(write(tmp_path, text))


@pytest.mark.parametrize("content, message", [
    (gzip.compress(b"time,AAA\n2020-01-02,10\n")[:-8], "prices.csv.gz: not a complete gzip file"),  # no trailer
    (b"time,AAA\n2020-01-02,1\xe9\n", "prices.csv.gz: not UTF-8 text: byte 0xe9"),
    (b"time,AAA\n2020-01-02," + b"9" * 200_000 + b"\n", "prices.csv.gz: not a readable CSV"),
], ids=["truncated", "latin-1", "huge-field"])
def test_a_file_that_does_not_read_as_text_csv_is_refused_naming_it(tmp_path, content, message):
    path = tmp_path / "prices.csv.gz"
    path.write_bytes(content if content.startswith(b"\x1f\x8b") else gzip.compress(content))

    with pytest.raises(PriceDataError, match=message):
        read_csv(path)


def test_selecting_a_symbol_the_file_lacks_names_it(tmp_path):
    table = read_prices(write(tmp_path, "date,AAA,BBB\n2020-01-02,1,2\n"))

    with pytest.raises(PriceDataError, match="no price column for CCC"):
        table.select(["AAA", "CCC"])
    assert table.select(["BBB", "AAA"]).values.tolist() == [[2.0, 1.0]]


def test_an_unknown_format_is_refused(tmp_path):
    with pytest.raises(PriceDataError, match="unknown format"):
        read_prices(tmp_path / "prices.xlsx")


def test_between_keeps_the_rows_from_start_to_end_inclusive(tmp_path):
    table = read_prices(write(tmp_path, "date,A\n2020-01-02,1\n2020-01-03,2\n2020-01-06,3\n2020-01-07,4\n"))

    assert table.between("2020-01-03", "2020-01-06").labels == ("2020-01-03", "2020-01-06")
    with pytest.raises(PriceDataError, match="no rows"):
        table.between("2021-01-01")


def test_parquet_reads_like_csv(tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"AAA": [10.0, 11.0, np.nan], "BBB": [1.0, 2.0, 3.0]},
                         index=pd.to_datetime(["2020-01-02", "2020-01-03", "2020-01-06"]))
    frame.index.name = "date"
    frame.to_parquet(tmp_path / "prices.parquet")
    csv = read_prices(write(tmp_path, "date,AAA,BBB\n2020-01-02,10,1\n2020-01-03,11,2\n2020-01-06,,3\n"))

    table = read_prices(tmp_path / "prices.parquet")

    assert table.symbols == csv.symbols and table.labels == csv.labels
    np.testing.assert_array_equal(table.times, csv.times)
    np.testing.assert_array_equal(table.values, csv.values)


def test_dates_at_local_midnight_in_a_time_zone_read_as_the_same_dates():
    import pandas as pd

    days = pd.to_datetime(["2024-01-02", "2024-07-02"])  # one in winter, one in summer time
    local = pd.DataFrame({"AAA": [10.0, 11.0]}, index=days.tz_localize("America/New_York"))
    naive = pd.DataFrame({"AAA": [10.0, 11.0]}, index=days)

    table, dates = from_dataframe(local), from_dataframe(naive)

    assert table.labels == dates.labels == ("2024-01-02", "2024-07-02")
    np.testing.assert_array_equal(table.times, dates.times)  # each date's close, as in a CSV


def test_the_sp500_data_skfolio_ships_loads_offline():
    table = load_dataset("sp500")

    assert table.rows == 8313
    assert table.labels[0] == "1990-01-02" and table.labels[-1] == "2022-12-28"
    assert table.symbols[0] == "SP500" and len(table.symbols) == 21
    assert {"AAPL", "MSFT", "XOM", "JPM"} <= set(table.symbols)
    assert np.isfinite(table.values).all()
    assert table.values[0, 0] == 359.69 and table.values[-1, 0] == 3783.22


def test_an_unknown_dataset_lists_the_known_ones():
    with pytest.raises(PriceDataError, match="sp500-index"):
        load_dataset("ftse")


def test_the_known_tickers_are_the_shipped_columns():
    from riskbudget_sidecar.backtest.prices import SKFOLIO_TICKERS

    assert set(load_dataset("sp500").symbols) == SKFOLIO_TICKERS


# -- YYYYMMDD dates: refused, not read as epoch seconds in August 1970 -----------------------------

def test_a_yyyymmdd_time_column_is_refused_naming_the_column_and_a_row(tmp_path):
    """19900102 would be 1970-08-20 as epoch seconds: refuse it and say how to write it."""
    path = write(tmp_path, "Date,AAA\n19900102,10\n19900103,11\n19900104,12\n")

    with pytest.raises(PriceDataError) as refused:
        read_prices(path)

    message = str(refused.value)
    assert "prices.csv:2" in message and "'Date'" in message and "'19900102'" in message
    assert "YYYYMMDD" in message and "1990-01-02" in message


def test_a_yyyymmdd_parquet_column_is_refused(tmp_path):
    """The same in Parquet, where the exporter wrote the dates as integers."""
    import pandas as pd

    pd.DataFrame({"date": [20200102, 20200103], "AAA": [10.0, 11.0]}).to_parquet(tmp_path / "p.parquet")

    with pytest.raises(PriceDataError, match=r"'date'.*'20200102'.*YYYYMMDD.*2020-01-02"):
        read_prices(tmp_path / "p.parquet")


@pytest.mark.parametrize("bound", ["start", "end"])
def test_a_yyyymmdd_start_or_end_is_refused(tmp_path, bound):
    """--start 20200103 would filter from 1970-08-22: refused like the file's column."""
    table = read_prices(write(tmp_path, "date,A\n2020-01-02,1\n2020-01-03,2\n"))

    with pytest.raises(PriceDataError, match=rf"--{bound}: .*'20200103'.*2020-01-03"):
        table.between(**{bound: "20200103"})


def test_epoch_seconds_still_read_as_times(tmp_path):
    """Epoch seconds (ten digits today) are not mistaken for YYYYMMDD dates."""
    table = read_prices(write(tmp_path, "time,AAA\n1584372600,10\n1584459000,11\n"))

    assert table.times.tolist() == [1584372600.0, 1584459000.0]


# -- prices outside what the sidecar accepts ----------------------------------------------------------

@pytest.mark.parametrize("price", ["1e308", "1e-300", "2e12", "5e-13"])
def test_a_price_outside_the_sidecars_range_is_refused_naming_symbol_and_row(tmp_path, price):
    """An absurd price would overflow the replay's returns; refuse it where it is."""
    path = write(tmp_path, f"date,AAA,BBB\n2020-01-02,10,20\n2020-01-03,11,{price}\n")

    with pytest.raises(PriceDataError) as refused:
        read_prices(path)

    message = str(refused.value)
    assert "price of BBB on 2020-01-03" in message
    assert f"is {float(price)!r}, outside the range the sidecar accepts (1e-12 to 1e+12)" in message


def test_prices_at_the_sidecars_bounds_are_accepted(tmp_path):
    table = read_prices(write(tmp_path, "date,AAA\n2020-01-02,1e-12\n2020-01-03,1e12\n"))

    assert table.values.ravel().tolist() == [1e-12, 1e12]


def test_a_non_positive_price_is_reported_as_a_plain_number(tmp_path):
    """The message shows -5.0, not numpy's repr np.float64(-5.0)."""
    with pytest.raises(PriceDataError) as refused:
        read_prices(write(tmp_path, "date,AAA\n2020-01-02,-5\n"))

    assert str(refused.value).endswith("price of AAA on 2020-01-02 must be positive, got -5.0")
