"""Tests of load_series on the real NAB and SKAB files and on small hand-written bad files.

Expected counts on the real files are measured here with plain pandas, independently of the
cleaning code, so a test fails if either side miscounts.
"""

from __future__ import annotations

import hashlib
import logging
import pathlib

import numpy as np
import pandas as pd
import pytest

from avatarjax.data.loading import CleaningPolicy, bundled_dataset_path, load_series
from avatarjax.errors import InputDataError

# The shared data folder sits next to the repository checkout.
SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
MACHINE = "machine_temperature_system_failure"
AMBIENT = SHARED / "nab" / "ambient_temperature_system_failure.csv"
SKAB = SHARED / "skab" / "anomaly-free.csv"

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="shared data folder not present")


def rule_rows(series, name: str) -> int:
    return {rule.rule: rule.rows for rule in series.report.rules}[name]


def write_csv(tmp_path: pathlib.Path, text: str, name: str = "input.csv") -> pathlib.Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def five_minute_rows(values: list[str]) -> str:
    """Return a CSV text with one 5-minute row per value, starting at 2024-01-01 00:00."""
    start = pd.Timestamp("2024-01-01")
    lines = ["timestamp,value"]
    for step, value in enumerate(values):
        lines.append(f"{start + pd.Timedelta(minutes=5 * step)},{value}")
    return "\n".join(lines) + "\n"


# --- real files ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def machine_file() -> pd.DataFrame:
    frame = pd.read_csv(bundled_dataset_path(MACHINE))
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    return frame


@pytest.fixture(scope="module")
def machine_series():
    return load_series(bundled_dataset_path(MACHINE))


def test_machine_out_of_order_count(machine_file, machine_series):
    times = machine_file["timestamp"]
    backwards = np.flatnonzero(times.diff() < pd.Timedelta(0))
    assert backwards.size == 1
    jump = int(backwards[0])
    # Rows from the backward jump until time passes the last timestamp before the jump.
    repeated = int((times.iloc[jump:] <= times.iloc[jump - 1]).sum())
    assert repeated == 12
    assert rule_rows(machine_series, "out_of_order") == repeated


def test_machine_conflicting_count(machine_file, machine_series):
    counts = machine_file.groupby("timestamp")["value"].agg(["size", "nunique"])
    conflicting = int(((counts["size"] > 1) & (counts["nunique"] > 1)).sum())
    assert conflicting == 12
    assert rule_rows(machine_series, "conflicting_duplicates") == conflicting
    assert rule_rows(machine_series, "exact_duplicates") == 0


def test_machine_duplicates_averaged(machine_file, machine_series):
    expected = machine_file.groupby("timestamp")["value"].mean()
    assert len(machine_series.timestamps) == len(expected)
    assert np.array_equal(
        machine_series.timestamps, expected.index.to_numpy(dtype="datetime64[ns]")
    )
    assert np.allclose(machine_series.values[:, 0], expected.to_numpy())


def test_machine_grid_and_shape(machine_series):
    assert machine_series.period == np.timedelta64(5, "m")
    assert machine_series.pieces == ((0, len(machine_series.timestamps)),)
    assert machine_series.columns == ("value",)
    assert machine_series.values.dtype == np.float64
    assert machine_series.timestamps.dtype == np.dtype("datetime64[ns]")
    assert np.all(np.diff(machine_series.timestamps) == machine_series.period)


def test_machine_first_keeps_file_order(machine_file):
    series = load_series(bundled_dataset_path(MACHINE), policy=CleaningPolicy(duplicates="first"))
    expected = machine_file.groupby("timestamp")["value"].first()
    assert np.array_equal(series.values[:, 0], expected.to_numpy())


def test_machine_unsorted_raises(machine_file):
    jump = int(np.flatnonzero(machine_file["timestamp"].diff() < pd.Timedelta(0))[0])
    with pytest.raises(InputDataError) as error:
        load_series(bundled_dataset_path(MACHINE), policy=CleaningPolicy(sort=False))
    assert f"line {jump + 2}" in str(error.value)  # line 1 is the header
    assert "sort=True" in str(error.value)


def test_machine_duplicates_error_raises():
    with pytest.raises(InputDataError) as error:
        load_series(bundled_dataset_path(MACHINE), policy=CleaningPolicy(duplicates="error"))
    assert "2014-01-07 02:00:00" in str(error.value)
    assert "duplicates='mean'" in str(error.value)


def test_machine_file_unchanged():
    path = bundled_dataset_path(MACHINE)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    load_series(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_report_lists_every_rule(machine_series):
    names = [entry["rule"] for entry in machine_series.report.as_dicts()]
    assert names == [
        "out_of_order",
        "exact_duplicates",
        "conflicting_duplicates",
        "off_grid",
        "missing_values",
        "short_gaps",
        "long_gaps",
    ]
    assert machine_series.report.rows_read == 22695
    for entry in machine_series.report.as_dicts():
        assert set(entry) == {"rule", "rows", "action"}
        assert isinstance(entry["rows"], int)
        assert entry["action"]


def test_report_log_lines(machine_series, caplog):
    with caplog.at_level(logging.INFO):
        machine_series.report.log(logging.getLogger("test"))
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 3  # two rules touched rows, plus the summary
    assert "out_of_order" in messages[0]
    assert "read 22695 rows" in messages[-1]


def test_bundled_path_unknown_name():
    with pytest.raises(InputDataError) as error:
        bundled_dataset_path("nyc_taxi_missing")
    assert MACHINE in str(error.value)


@needs_shared
def test_bundled_copy_matches_shared():
    shared = SHARED / "nab" / f"{MACHINE}.csv"
    assert bundled_dataset_path(MACHINE).read_bytes() == shared.read_bytes()


@pytest.fixture(scope="module")
def ambient_gaps() -> pd.Series:
    """Missing hourly steps after each row of the ambient file, measured with pandas."""
    times = pd.to_datetime(pd.read_csv(AMBIENT)["timestamp"])
    return (times.diff().dropna() // pd.Timedelta(hours=1) - 1).astype(int)


@needs_shared
def test_ambient_split_pieces(ambient_gaps):
    series = load_series(AMBIENT)
    long_gaps = ambient_gaps[ambient_gaps > 12]
    assert int((ambient_gaps > 0).sum()) == 10
    assert len(series.pieces) == len(long_gaps) + 1
    assert rule_rows(series, "long_gaps") == int(long_gaps.sum())
    assert rule_rows(series, "short_gaps") == int(ambient_gaps[ambient_gaps <= 12].sum())


@needs_shared
def test_ambient_pieces_regular():
    series = load_series(AMBIENT)
    for start, stop in series.pieces:
        steps = np.diff(series.timestamps[start:stop])
        assert np.all(steps == series.period), (start, stop)
    between = [
        series.timestamps[start] - series.timestamps[start - 1] for start, _ in series.pieces[1:]
    ]
    assert all(jump > 13 * series.period for jump in between)
    assert np.timedelta64(174, "h") in between


@needs_shared
def test_ambient_short_gap_linear():
    frame = pd.read_csv(AMBIENT)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    after = int(np.flatnonzero(frame["timestamp"].diff() == pd.Timedelta(hours=2))[0]) - 1
    before_value, after_value = frame["value"].iloc[after], frame["value"].iloc[after + 1]
    series = load_series(AMBIENT)
    filled_time = np.datetime64(frame["timestamp"].iloc[after] + pd.Timedelta(hours=1), "ns")
    filled = series.values[np.flatnonzero(series.timestamps == filled_time)[0], 0]
    assert filled == pytest.approx((before_value + after_value) / 2)


@needs_shared
def test_ambient_long_gap_error(ambient_gaps):
    first_long = int(np.flatnonzero(ambient_gaps.to_numpy() > 12)[0])
    times = pd.to_datetime(pd.read_csv(AMBIENT)["timestamp"])
    with pytest.raises(InputDataError) as error:
        load_series(AMBIENT, policy=CleaningPolicy(long_gap="error"))
    assert str(times.iloc[first_long]) in str(error.value)
    assert f"{ambient_gaps.iloc[first_long]} grid steps" in str(error.value)


@needs_shared
def test_ambient_large_max_fills_all(ambient_gaps):
    series = load_series(AMBIENT, policy=CleaningPolicy(max_gap_steps=200))
    assert len(series.pieces) == 1
    assert len(series.timestamps) == 7267 + int(ambient_gaps.sum())


@pytest.fixture(scope="module")
def skab_file() -> pd.DataFrame:
    frame = pd.read_csv(SKAB, sep=";")
    frame["datetime"] = pd.to_datetime(frame["datetime"])
    return frame


@needs_shared
def test_skab_one_second_grid(skab_file):
    # SKAB logs about every 1.06 s with whole-second timestamps, so a second is skipped every
    # ~17 rows. The default infers a 1 s period and fills each skipped second.
    series = load_series(
        SKAB, timestamp_column="datetime", sep=";", value_columns=["Current", "Pressure"]
    )
    steps = skab_file["datetime"].diff().dropna()
    skipped = int((steps // pd.Timedelta(seconds=1) - 1).sum())
    assert series.period == np.timedelta64(1, "s")
    assert rule_rows(series, "off_grid") == 0
    assert rule_rows(series, "short_gaps") == skipped
    assert len(series.timestamps) == len(skab_file) + skipped
    assert series.columns == ("Current", "Pressure")


@needs_shared
def test_skab_file_values_kept(skab_file):
    series = load_series(
        SKAB, timestamp_column="datetime", sep=";", value_columns=["Current", "Pressure"]
    )
    in_file = np.isin(series.timestamps, skab_file["datetime"].to_numpy(dtype="datetime64[ns]"))
    assert np.array_equal(series.values[in_file], skab_file[["Current", "Pressure"]].to_numpy())


@needs_shared
def test_skab_default_columns(skab_file):
    series = load_series(SKAB, timestamp_column="datetime", sep=";")
    assert series.columns == tuple(skab_file.columns[1:])
    assert series.values.shape[1] == 8


@needs_shared
def test_skab_wrong_separator_hint():
    with pytest.raises(InputDataError) as error:
        load_series(SKAB, timestamp_column="datetime")
    assert "sep=';'" in str(error.value)


# --- small files: repairs -----------------------------------------------------------------


def test_constant_series_valid(tmp_path):
    series = load_series(write_csv(tmp_path, five_minute_rows(["7.5"] * 4)))
    assert np.all(series.values == 7.5)
    assert len(series.timestamps) == 4


def test_exact_duplicates_dropped(tmp_path):
    text = five_minute_rows(["1", "2", "3"]) + "2024-01-01 00:05:00,2\n"
    series = load_series(write_csv(tmp_path, text))
    assert rule_rows(series, "exact_duplicates") == 1
    assert rule_rows(series, "conflicting_duplicates") == 0
    assert np.array_equal(series.values[:, 0], [1.0, 2.0, 3.0])


def test_short_nan_run_interpolated(tmp_path):
    series = load_series(write_csv(tmp_path, five_minute_rows(["0", "", "NaN", "3"])))
    assert np.allclose(series.values[:, 0], [0.0, 1.0, 2.0, 3.0])
    assert rule_rows(series, "missing_values") == 2
    assert rule_rows(series, "short_gaps") == 2


def test_long_nan_run_splits(tmp_path):
    text = five_minute_rows(["1", "2"] + [""] * 3 + ["6", "7"])
    series = load_series(write_csv(tmp_path, text), policy=CleaningPolicy(max_gap_steps=2))
    assert series.pieces == ((0, 2), (2, 4))
    assert np.array_equal(series.values[:, 0], [1.0, 2.0, 6.0, 7.0])
    assert rule_rows(series, "long_gaps") == 3


def test_edge_nan_trimmed(tmp_path):
    series = load_series(write_csv(tmp_path, five_minute_rows(["", "1", "2", ""])))
    assert np.array_equal(series.values[:, 0], [1.0, 2.0])
    assert series.timestamps[0] == np.datetime64("2024-01-01T00:05:00", "ns")


def test_long_run_one_column_cuts_all(tmp_path):
    lines = ["timestamp,a,b"]
    for step, a in enumerate(["1", "2", "", "", "", "6", "7"]):
        lines.append(f"2024-01-01 00:0{step}:00,{a},{10 + step}")
    series = load_series(
        write_csv(tmp_path, "\n".join(lines)), policy=CleaningPolicy(max_gap_steps=2)
    )
    assert series.pieces == ((0, 2), (2, 4))
    assert np.array_equal(series.values[:, 1], [10.0, 11.0, 15.0, 16.0])


def test_piece_edge_not_interpolated(tmp_path):
    # Column b misses the step before a's long run; with a cut there, b has no right neighbour.
    lines = ["timestamp,a,b"]
    a_values = ["1", "2", "3", "", "", "", "7", "8"]
    b_values = ["1", "2", "", "4", "5", "6", "7", "8"]
    for step, (a, b) in enumerate(zip(a_values, b_values)):
        lines.append(f"2024-01-01 00:0{step}:00,{a},{b}")
    series = load_series(
        write_csv(tmp_path, "\n".join(lines)), policy=CleaningPolicy(max_gap_steps=2)
    )
    assert series.pieces == ((0, 2), (2, 4))
    assert np.array_equal(series.values[:, 0], [1.0, 2.0, 7.0, 8.0])


def test_off_grid_snapped_and_merged(tmp_path):
    text = (
        "timestamp,value\n"
        "2024-01-01 00:00:00,1\n"
        "2024-01-01 00:05:00,2\n"
        "2024-01-01 00:09:58,4\n"  # snaps to 00:10 and clashes with the next row
        "2024-01-01 00:10:00,6\n"
        "2024-01-01 00:15:00,7\n"
    )
    series = load_series(write_csv(tmp_path, text))
    assert rule_rows(series, "off_grid") == 1
    assert rule_rows(series, "conflicting_duplicates") == 1
    assert np.array_equal(series.values[:, 0], [1.0, 2.0, 5.0, 7.0])


def test_off_grid_first_row(tmp_path):
    text = five_minute_rows(["1", "2", "3", "4"]).replace(
        "2024-01-01 00:00:00", "2024-01-01 00:00:07"
    )
    series = load_series(write_csv(tmp_path, text))
    assert rule_rows(series, "off_grid") == 1
    assert series.timestamps[0] == np.datetime64("2024-01-01T00:00:00", "ns")


def test_explicit_period_fills(tmp_path):
    series = load_series(
        write_csv(tmp_path, five_minute_rows(["0", "10"])), policy=CleaningPolicy(period="1min")
    )
    assert len(series.timestamps) == 6
    assert np.allclose(series.values[:, 0], [0.0, 2.0, 4.0, 6.0, 8.0, 10.0])


def test_utc_offset_converted(tmp_path):
    text = "timestamp,value\n2024-01-01T01:00:00+01:00,1\n2024-01-01T01:05:00+01:00,2\n"
    series = load_series(write_csv(tmp_path, text))
    assert series.timestamps[0] == np.datetime64("2024-01-01T00:00:00", "ns")


def test_blank_lines_skipped(tmp_path):
    text = (
        five_minute_rows(["1", "2"]).replace("\n2024-01-01 00:05", "\n\n2024-01-01 00:05") + "\n\n"
    )
    series = load_series(write_csv(tmp_path, text))
    assert series.report.rows_read == 2


# --- small files: errors ------------------------------------------------------------------


def test_error_file_not_found(tmp_path):
    missing = tmp_path / "absent.csv"
    with pytest.raises(InputDataError) as error:
        load_series(missing)
    assert str(missing) in str(error.value)
    assert "not found" in str(error.value)


def test_error_empty_file(tmp_path):
    path = write_csv(tmp_path, "")
    with pytest.raises(InputDataError) as error:
        load_series(path)
    assert "empty" in str(error.value)
    assert str(path) in str(error.value)


def test_error_header_only(tmp_path):
    with pytest.raises(InputDataError) as error:
        load_series(write_csv(tmp_path, "timestamp,value\n"))
    assert "no data rows" in str(error.value)


def test_error_one_row(tmp_path):
    with pytest.raises(InputDataError) as error:
        load_series(write_csv(tmp_path, five_minute_rows(["1"])))
    assert "only 1 data row" in str(error.value)


def test_error_one_distinct_timestamp(tmp_path):
    text = "timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:00:00,1\n"
    with pytest.raises(InputDataError) as error:
        load_series(write_csv(tmp_path, text))
    assert "2 distinct timestamps" in str(error.value)


def test_error_missing_timestamp_column(tmp_path):
    with pytest.raises(InputDataError) as error:
        load_series(write_csv(tmp_path, "time,value\n2024-01-01,1\n2024-01-02,2\n"))
    assert "'timestamp' not found" in str(error.value)
    assert "'time', 'value'" in str(error.value)


def test_error_missing_value_column(tmp_path):
    with pytest.raises(InputDataError) as error:
        load_series(
            write_csv(tmp_path, five_minute_rows(["1", "2"])), value_columns=["temperature"]
        )
    assert "'temperature' not found" in str(error.value)
    assert "'timestamp', 'value'" in str(error.value)


def test_error_unparseable_timestamp(tmp_path):
    text = five_minute_rows(["1", "2", "3"]).replace("2024-01-01 00:05:00", "yesterday")
    with pytest.raises(InputDataError) as error:
        load_series(write_csv(tmp_path, text))
    assert "line 3" in str(error.value)
    assert "'yesterday'" in str(error.value)


def test_error_empty_timestamp(tmp_path):
    text = five_minute_rows(["1", "2", "3"]).replace("2024-01-01 00:05:00", "")
    with pytest.raises(InputDataError) as error:
        load_series(write_csv(tmp_path, text))
    assert "line 3" in str(error.value)


def test_error_non_numeric_value(tmp_path):
    with pytest.raises(InputDataError) as error:
        load_series(write_csv(tmp_path, five_minute_rows(["1", "2", "hot", "4"])))
    message = str(error.value)
    assert "line 4" in message
    assert "column 'value'" in message
    assert "'hot'" in message
    assert "Clean the file" in message


def test_error_decimal_comma_hint(tmp_path):
    text = "timestamp;value\n2024-01-01 00:00:00;1,5\n2024-01-01 00:05:00;2,5\n"
    with pytest.raises(InputDataError) as error:
        load_series(write_csv(tmp_path, text), sep=";")
    assert "decimal comma" in str(error.value)


def test_error_infinite_value(tmp_path):
    with pytest.raises(InputDataError) as error:
        load_series(write_csv(tmp_path, five_minute_rows(["1", "inf", "3"])))
    assert "'inf' is infinite" in str(error.value)


def test_error_all_nan_column(tmp_path):
    text = "timestamp,a,b\n2024-01-01 00:00:00,1,\n2024-01-01 00:05:00,2,NaN\n"
    with pytest.raises(InputDataError) as error:
        load_series(write_csv(tmp_path, text))
    assert "column 'b'" in str(error.value)
    assert "every value is missing" in str(error.value)


def test_error_conflicting_duplicates(tmp_path):
    text = five_minute_rows(["1", "2", "3"]) + "2024-01-01 00:05:00,9\n"
    with pytest.raises(InputDataError) as error:
        load_series(write_csv(tmp_path, text), policy=CleaningPolicy(duplicates="error"))
    assert "lines 3, 5" in str(error.value)
    assert "(2, 9)" in str(error.value)


def test_error_long_gap(tmp_path):
    text = five_minute_rows(["1", "2", "3"]) + "2024-01-01 02:00:00,4\n"
    with pytest.raises(InputDataError) as error:
        load_series(write_csv(tmp_path, text), policy=CleaningPolicy(long_gap="error"))
    assert "lines 4 and 5" in str(error.value)
    assert "21 grid steps" in str(error.value)


def test_error_long_nan_run(tmp_path):
    text = five_minute_rows(["1"] + [""] * 13 + ["2"])
    with pytest.raises(InputDataError) as error:
        load_series(write_csv(tmp_path, text), policy=CleaningPolicy(long_gap="error"))
    assert "13 grid steps" in str(error.value)
    assert "column 'value'" in str(error.value)


def test_error_off_grid(tmp_path):
    # Enough rows that 5 minutes stays the most common step after one row moves.
    text = five_minute_rows(["1", "2", "3", "4", "5", "6"]).replace("00:10:00", "00:11:30")
    with pytest.raises(InputDataError) as error:
        load_series(write_csv(tmp_path, text), policy=CleaningPolicy(off_grid="error"))
    assert "line 4" in str(error.value)
    assert "00:11:30" in str(error.value)
    assert "off_grid='snap'" in str(error.value)


def test_error_bad_file_unchanged(tmp_path):
    path = write_csv(tmp_path, five_minute_rows(["1", "x"]))
    before = path.read_bytes()
    with pytest.raises(InputDataError):
        load_series(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "field, value",
    [
        ("duplicates", "median"),
        ("off_grid", "drop"),
        ("long_gap", "fill"),
        ("sort", "yes"),
        ("max_gap_steps", -1),
        ("max_gap_steps", 2.5),
        ("period", "1M"),
        ("period", "fortnight"),
        ("period", "0s"),
    ],
)
def test_policy_invalid_value(field, value):
    with pytest.raises(InputDataError) as error:
        CleaningPolicy(**{field: value})
    assert field in str(error.value)
