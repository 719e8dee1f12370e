"""Load a sensor CSV file into a series on a regular time grid, with a report of every repair.

load_series reads a timestamp column and numeric value columns, then applies the cleaning
rules of avatarjax.data.cleaning in order. Input that the policy does not allow to repair
raises InputDataError with the file, the line and the value at fault. The file is only read.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
import pathlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from avatarjax.data.cleaning import (
    CleaningPolicy,
    Rows,
    RuleCount,
    duplicate_rule_counts,
    format_period,
    infer_period,
    parse_period,
    resolve_duplicates,
    snap_to_grid,
    sort_rows,
)
from avatarjax.data.gaps import fill_gaps
from avatarjax.errors import InputDataError

__all__ = [
    "CleaningPolicy",
    "CleaningReport",
    "RuleCount",
    "SensorSeries",
    "bundled_dataset_path",
    "load_series",
]

logger = logging.getLogger(__name__)

# Separators to suggest when the header does not split on the one given.
_COMMON_SEPARATORS = (",", ";", "\t", "|")


@dataclass(frozen=True)
class CleaningReport:
    """Rows read and the outcome of every cleaning rule, including rules that changed nothing."""

    rows_read: int  # data rows in the file, blank lines not counted
    rules: tuple[RuleCount, ...]

    def as_dicts(self) -> list[dict]:
        """Return one {"rule", "rows", "action"} dict per rule, for the metrics JSON and report."""
        return [
            {"rule": rule.rule, "rows": rule.rows, "action": rule.action} for rule in self.rules
        ]

    def log(self, logger: logging.Logger) -> None:
        """Log one INFO line per rule that touched rows, then one summary line."""
        changed = [rule for rule in self.rules if rule.rows > 0]
        for rule in changed:
            logger.info("cleaning rule %s: %s", rule.rule, rule.action)
        logger.info(
            "cleaning: read %d rows, %d of %d rules changed the data",
            self.rows_read,
            len(changed),
            len(self.rules),
        )


@dataclass(frozen=True)
class SensorSeries:
    """A cleaned series on a regular time grid, cut into pieces at long gaps."""

    timestamps: np.ndarray  # datetime64[ns], strictly increasing, regular within each piece
    values: np.ndarray  # float64, shape (N, n_columns), no NaN
    columns: tuple[str, ...]  # value column names, in file order
    period: np.timedelta64  # grid step, in ns
    # Contiguous [start, stop) index ranges into timestamps and values. Steps of a long gap
    # are left out, not filled, so a piece boundary is a jump in time.
    pieces: tuple[tuple[int, int], ...]
    report: CleaningReport
    source: str  # file path as given


def load_series(
    path: str | os.PathLike,
    timestamp_column: str = "timestamp",
    value_columns: Sequence[str] | None = None,
    sep: str = ",",
    policy: CleaningPolicy = CleaningPolicy(),
) -> SensorSeries:
    """Read a CSV file and clean it into a SensorSeries, as the policy allows.

    value_columns=None takes every column except the timestamp column, and a single string
    names one column. Timestamps with a UTC offset are converted to UTC and stored without
    a time zone. Raises InputDataError on input that cannot be read or repaired.
    """
    source = str(path)
    frame = _read_text_table(path, source, sep)
    columns = _select_value_columns(frame, timestamp_column, value_columns, source, sep)
    times = _parse_timestamps(frame, timestamp_column, source)
    values = _parse_values(frame, columns, source, sep)
    rows = Rows(times, values, lines=frame.index.to_numpy(dtype=np.int64), file_times=times)

    rows, order_rule = sort_rows(rows, policy, source)
    rows, in_file = resolve_duplicates(rows, policy.duplicates, source, columns)
    if policy.period is None:
        period = infer_period(rows.times, source)
    else:
        period = parse_period(policy.period)
    rows, off_grid_rule = snap_to_grid(rows, period, policy, source)
    rows, after_snap = resolve_duplicates(rows, policy.duplicates, source, columns)
    exact_rule, conflict_rule = duplicate_rule_counts(in_file, after_snap, policy.duplicates)
    series = fill_gaps(rows, period, policy, source, columns)

    report = CleaningReport(
        rows_read=len(frame),
        rules=(order_rule, exact_rule, conflict_rule, off_grid_rule, *series.rules),
    )
    loaded = SensorSeries(
        timestamps=series.times.astype("datetime64[ns]"),
        values=series.values,
        columns=columns,
        period=np.timedelta64(period, "ns"),
        pieces=series.pieces,
        report=report,
        source=source,
    )
    logger.info(
        "loaded %s: %d grid steps of %s in %d piece(s), columns %s",
        source,
        len(series.times),
        format_period(period),
        len(series.pieces),
        ", ".join(columns),
    )
    return loaded


def bundled_dataset_path(name: str) -> pathlib.Path:
    """Return the path of a CSV file bundled in avatarjax/data/nab, by name without ".csv".

    NOTE: this assumes the package is installed as plain files (not inside a zip archive).
    """
    folder = importlib.resources.files("avatarjax.data") / "nab"
    available = sorted(
        entry.name[: -len(".csv")] for entry in folder.iterdir() if entry.name.endswith(".csv")
    )
    if name not in available:
        raise InputDataError(
            f"unknown bundled dataset {name!r}. Available: {', '.join(available)}. "
            "To load another file, set data.path on the command line (or pass its path to load_series)."
        )
    return pathlib.Path(str(folder / f"{name}.csv"))


def _read_text_table(path: str | os.PathLike, source: str, sep: str) -> pd.DataFrame:
    """Read every cell as text, indexed by the 1-based line number of its row in the file.

    Blank lines are dropped after numbering, so the line numbers in messages match an editor.
    NOTE: a quoted field that spans several lines shifts the line numbers of later rows.
    """
    file_path = pathlib.Path(path)
    if not file_path.exists():
        raise InputDataError(f"{source}: file not found. Check the path and the working directory.")
    if file_path.is_dir():
        raise InputDataError(f"{source}: is a directory. Pass the path of a CSV file.")

    try:
        frame = pd.read_csv(file_path, sep=sep, dtype=str, skip_blank_lines=False)
    except pd.errors.EmptyDataError:
        raise InputDataError(
            f"{source}: the file is empty. Expected a header line and at least 2 data rows."
        ) from None
    except pd.errors.ParserError as error:
        raise InputDataError(
            f"{source}: cannot be parsed as CSV with sep={sep!r} ({str(error).strip()}). "
            "Check the separator and that every row has as many fields as the header."
        ) from None
    except UnicodeDecodeError as error:
        raise InputDataError(
            f"{source}: the file is not UTF-8 text ({error}). Convert it to UTF-8."
        ) from None

    frame.index = pd.RangeIndex(2, len(frame) + 2)  # line 1 is the header
    frame = frame[frame.notna().any(axis=1)]
    if len(frame) == 0:
        raise InputDataError(
            f"{source}: the file has a header but no data rows. Expected at least 2 data rows."
        )
    if len(frame) < 2:
        raise InputDataError(
            f"{source}: the file has only 1 data row, but at least 2 are needed to infer the "
            "sampling period. Use a longer file."
        )
    return frame


def _select_value_columns(
    frame: pd.DataFrame,
    timestamp_column: str,
    value_columns: Sequence[str] | str | None,
    source: str,
    sep: str,
) -> tuple[str, ...]:
    existing = [str(column) for column in frame.columns]
    listing = ", ".join(repr(column) for column in existing)
    if timestamp_column not in existing:
        raise InputDataError(
            f"{source}: timestamp column {timestamp_column!r} not found. The columns are: "
            f"{listing}. Set data.timestamp_column (timestamp_column in Python) to one of them.{_separator_hint(existing, sep)}"
        )

    if value_columns is None:
        selected = tuple(column for column in existing if column != timestamp_column)
        if not selected:
            raise InputDataError(
                f"{source}: the file has only the timestamp column {timestamp_column!r} and no "
                f"value column.{_separator_hint(existing, sep)}"
            )
        return selected

    selected = (value_columns,) if isinstance(value_columns, str) else tuple(value_columns)
    if not selected:
        raise InputDataError(f"{source}: value_columns is empty. Name at least one of: {listing}.")
    missing = [column for column in selected if column not in existing]
    if missing:
        raise InputDataError(
            f"{source}: value column {missing[0]!r} not found. The columns are: {listing}. "
            "Set data.value_column to one of them (in Python, fix value_columns or pass None for every column but the timestamp)."
        )
    if timestamp_column in selected:
        raise InputDataError(
            f"{source}: {timestamp_column!r} is the timestamp column and cannot also be a value "
            "column. Remove it from value_columns."
        )
    repeated = sorted({column for column in selected if selected.count(column) > 1})
    if repeated:
        raise InputDataError(
            f"{source}: value_columns names {repeated[0]!r} twice. Name each column once."
        )
    return selected


def _separator_hint(columns: list[str], sep: str) -> str:
    """Suggest another separator when the header looks unsplit, else return ""."""
    for candidate in _COMMON_SEPARATORS:
        if candidate != sep and any(candidate in column for column in columns):
            return (
                f" The header contains {candidate!r}: set data.sep={candidate!r} (sep in Python) if that is the "
                "separator."
            )
    return ""


def _parse_timestamps(frame: pd.DataFrame, column: str, source: str) -> np.ndarray:
    """Parse the timestamp column to int64 ns since the epoch, in UTC if an offset is given."""
    text = frame[column]
    empty = text.isna().to_numpy()
    if empty.any():
        line = int(frame.index[np.flatnonzero(empty)[0]])
        raise InputDataError(
            f"{source}, line {line}, column {column!r}: the timestamp is empty. "
            "Give every row a timestamp, or delete the row."
        )

    # ISO 8601 covers most sensor exports and accepts a mix of its forms (with or without
    # seconds, 'T' or space). Other formats fall back to pandas' format inference.
    parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    if parsed.isna().any():
        with warnings.catch_warnings():
            # pandas warns when it cannot infer one format and parses row by row.
            warnings.simplefilter("ignore", UserWarning)
            inferred = pd.to_datetime(text, errors="coerce", utc=True)
        if inferred.isna().sum() < parsed.isna().sum():
            parsed = inferred
    invalid = parsed.isna().to_numpy()
    if invalid.any():
        first = np.flatnonzero(invalid)[0]
        raise InputDataError(
            f"{source}, line {frame.index[first]}, column {column!r}: cannot parse "
            f"{text.iloc[first]!r} as a timestamp (failing rows: {int(invalid.sum())}). Write "
            "every timestamp in one format, preferably ISO 8601 such as '2014-01-07 02:00:00'."
        )

    try:
        return parsed.dt.tz_convert(None).dt.as_unit("ns").to_numpy().view(np.int64)
    except pd.errors.OutOfBoundsDatetime:
        raise InputDataError(
            f"{source}, column {column!r}: a timestamp lies outside the years 1677-2262, which "
            "datetime64[ns] cannot store. Check the timestamps for typos."
        ) from None


def _parse_values(
    frame: pd.DataFrame, columns: tuple[str, ...], source: str, sep: str
) -> np.ndarray:
    """Parse the value columns to float64, NaN where a cell is empty or reads "NaN" or "NA"."""
    values = np.empty((len(frame), len(columns)), dtype=np.float64)
    for position, column in enumerate(columns):
        text = frame[column]
        numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
        invalid = text.notna().to_numpy() & np.isnan(numbers)
        if invalid.any():
            raise _value_error(frame, column, invalid, "is not a number", source, sep)
        infinite = np.isinf(numbers)
        if infinite.any():
            raise _value_error(frame, column, infinite, "is infinite", source, sep)
        if np.isnan(numbers).all():
            raise _empty_column_error(column, source)
        values[:, position] = numbers
    return values


def _empty_column_error(column: str, source: str) -> InputDataError:
    hint = ""
    if column.startswith("Unnamed: "):
        # pandas names a column "Unnamed: <position>" when its header cell is empty.
        hint = " A separator at the end of every line creates such an unnamed column."
    return InputDataError(
        f"{source}, column {column!r}: every value is missing. Name the columns to load in "
        f"value_columns, or fill the column in the file.{hint}"
    )


def _value_error(
    frame: pd.DataFrame, column: str, failing: np.ndarray, problem: str, source: str, sep: str
) -> InputDataError:
    row = int(np.flatnonzero(failing)[0])
    text = frame[column].iloc[row]
    hint = ""
    if "," in text and sep != ",":
        hint = " If the file uses a decimal comma, convert it to a decimal point."
    return InputDataError(
        f"{source}, line {frame.index[row]}, column {column!r}: the value {text!r} {problem} "
        f"(failing rows in this column: {int(failing.sum())}). Clean the file so that value "
        f"columns contain only finite numbers, and leave a cell empty to mark a missing value."
        f"{hint}"
    )
