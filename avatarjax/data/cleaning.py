"""Cleaning rules that turn parsed sensor rows into a series on a regular time grid.

The rules run in this order: sort by timestamp, merge duplicate timestamps, snap timestamps
to the grid, then fill short gaps by linear interpolation and cut the series at long ones
(avatarjax.data.gaps).
A clash after snapping goes through the duplicate rule again. Each rule either repairs the
rows and counts what it changed, or raises InputDataError where the policy requires it.

Times are int64 nanoseconds since the epoch throughout, so that grid arithmetic is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from avatarjax.errors import InputDataError

DUPLICATE_MODES = ("mean", "first", "error")
OFF_GRID_MODES = ("snap", "error")
LONG_GAP_MODES = ("split", "error")


@dataclass(frozen=True)
class CleaningPolicy:
    """Repairs that load_series applies, and the problems it raises InputDataError for instead."""

    # Sort rows by timestamp. If False, out-of-order rows raise InputDataError.
    sort: bool = True
    # Conflicting duplicate timestamps (same time, different values): "mean" averages each
    # column (ignoring missing cells), "first" keeps the first row in file order, "error" raises.
    # Exact duplicate rows (same time and same values) are always dropped and counted.
    duplicates: str = "mean"
    # Sampling period as a fixed pandas offset string ("5min", "1s"). None infers it as the most
    # common positive difference between consecutive distinct timestamps.
    period: str | None = None
    # Timestamps off the grid origin + i * period: "snap" moves each to the nearest grid point
    # (a clash after snapping goes through the duplicates rule), "error" raises.
    off_grid: str = "snap"
    # Runs of at most this many missing grid steps (absent rows or missing values) are filled by
    # linear interpolation. The unit is grid steps, so the duration depends on the period
    # (12 steps is one hour of 5-minute readings).
    max_gap_steps: int = 12
    # A longer run: "split" cuts the series into contiguous pieces, "error" raises.
    long_gap: str = "split"

    def __post_init__(self) -> None:
        if not isinstance(self.sort, bool):
            raise InputDataError(f"invalid cleaning policy: sort={self.sort!r}. Use True or False.")
        _check_choice("duplicates", self.duplicates, DUPLICATE_MODES)
        _check_choice("off_grid", self.off_grid, OFF_GRID_MODES)
        _check_choice("long_gap", self.long_gap, LONG_GAP_MODES)
        steps = self.max_gap_steps
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise InputDataError(
                f"invalid cleaning policy: max_gap_steps={steps!r}. "
                "Use an integer >= 0 (0 fills no gap)."
            )
        if self.period is not None:
            parse_period(self.period)


def _check_choice(key: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        options = ", ".join(repr(choice) for choice in choices)
        raise InputDataError(f"invalid cleaning policy: {key}={value!r}. Use one of {options}.")


@dataclass(frozen=True)
class RuleCount:
    """Outcome of one cleaning rule: how many rows or grid steps it touched, and what it did."""

    rule: str  # short name, e.g. "out_of_order" or "long_gaps"
    rows: int  # rows, timestamps or grid steps touched; the action names which
    action: str  # plain sentence for the report


@dataclass(frozen=True)
class Rows:
    """Parsed rows of one file, kept aligned through the rules.

    times: int64 ns, possibly already snapped to the grid. values: float64 (n, n_columns),
    NaN for a missing cell. lines: 1-based line of the file each row came from.
    file_times: int64 ns as written in the file, for error messages after snapping.
    """

    times: np.ndarray
    values: np.ndarray
    lines: np.ndarray
    file_times: np.ndarray

    def take(self, index: np.ndarray) -> Rows:
        return Rows(
            self.times[index], self.values[index], self.lines[index], self.file_times[index]
        )


@dataclass(frozen=True)
class DuplicateCounts:
    """Counts of what one pass of the duplicate rule removed or merged."""

    exact_rows: int  # rows dropped because an earlier row had the same time and values
    conflicting_timestamps: int  # timestamps that had several rows with different values
    max_copies: int  # largest number of rows that shared one conflicting timestamp


def parse_period(text: str) -> int:
    """Convert a fixed pandas offset string ("5min", "1s") to a positive number of nanoseconds."""
    try:
        step = pd.Timedelta(pd.tseries.frequencies.to_offset(text))
    except (ValueError, TypeError) as error:
        raise InputDataError(
            f"invalid cleaning policy: period={text!r} is not a fixed time step ({error}). "
            "Use a pandas offset string such as '5min', '1h' or '1s'."
        ) from None
    if step <= pd.Timedelta(0):
        raise InputDataError(
            f"invalid cleaning policy: period={text!r} is not positive. Use a step such as '5min'."
        )
    return int(step.value)


def count_noun(count: int, noun: str) -> str:
    """Return "1 row" or "2 rows": the count with the noun in singular or plural."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def format_time(ns: int) -> str:
    return str(pd.Timestamp(int(ns)))


def format_period(ns: int) -> str:
    """Return the period as a pandas offset string, with an explicit 1 ("1s", not "s")."""
    text = pd.tseries.frequencies.to_offset(pd.Timedelta(int(ns))).freqstr
    return text if text[0].isdigit() else f"1{text}"


# --- Rule 1: order -----------------------------------------------------------------------


def find_out_of_order(times: np.ndarray) -> np.ndarray:
    """Mark the rows that sorting must move.

    A row is out of order when its time is earlier than a row above it, or equal to the
    latest time above it while the row just above is earlier. The second case is a repeated
    block such as 02:00 ... 02:55, 02:00 ... 02:55, where the second 02:55 is also misplaced.
    A row that repeats the time of the row just above is not out of order, because only the
    duplicate rule concerns it.
    """
    out_of_order = np.zeros(len(times), dtype=bool)
    if len(times) < 2:
        return out_of_order
    latest_above = np.maximum.accumulate(times)[:-1]
    current = times[1:]
    earlier = current < latest_above
    repeats_earlier_block = (current == latest_above) & (current != times[:-1])
    out_of_order[1:] = earlier | repeats_earlier_block
    return out_of_order


def sort_rows(rows: Rows, policy: CleaningPolicy, source: str) -> tuple[Rows, RuleCount]:
    """Sort rows by time (stable, so equal times keep file order), or raise if sort is off."""
    out_of_order = find_out_of_order(rows.times)
    count = int(out_of_order.sum())
    if count == 0:
        return rows, RuleCount("out_of_order", 0, "no row was out of timestamp order")

    if not policy.sort:
        first = int(np.flatnonzero(out_of_order)[0])
        latest_above = int(rows.times[:first].max())
        raise InputDataError(
            f"{source}, line {rows.lines[first]}: timestamp {format_time(rows.times[first])} "
            f"comes after {format_time(latest_above)} "
            f"({count_noun(count, 'row')} out of order in total). "
            "Set sort=True in the cleaning policy, or sort the file by timestamp."
        )

    order = np.argsort(rows.times, kind="stable")
    return rows.take(order), RuleCount(
        "out_of_order", count, f"sorted {count_noun(count, 'out-of-order row')} by timestamp"
    )


# --- Rule 2: duplicate timestamps --------------------------------------------------------


def resolve_duplicates(
    rows: Rows, mode: str, source: str, columns: tuple[str, ...]
) -> tuple[Rows, DuplicateCounts]:
    """Drop exact duplicate rows, then merge rows that share a time by the policy's mode.

    rows must be sorted by time. The result has strictly increasing times.
    """
    if len(rows.times) < 2 or not np.any(np.diff(rows.times) == 0):
        return rows, DuplicateCounts(0, 0, 0)

    frame = pd.DataFrame(rows.values)
    frame.insert(0, "time", rows.times)
    exact = frame.duplicated(keep="first").to_numpy()  # NaN equals NaN here
    rows = rows.take(np.flatnonzero(~exact))

    starts = np.flatnonzero(np.r_[True, np.diff(rows.times) != 0])
    sizes = np.diff(np.r_[starts, len(rows.times)])
    conflicting = sizes > 1
    counts = DuplicateCounts(
        int(exact.sum()), int(conflicting.sum()), int(sizes.max()) if conflicting.any() else 0
    )
    if not conflicting.any():
        return rows, counts

    if mode == "error":
        raise _conflict_error(
            rows, int(starts[conflicting][0]), int(sizes[conflicting][0]), source, columns, counts
        )
    if mode == "first":
        return rows.take(starts), counts

    present = ~np.isnan(rows.values)
    sums = np.add.reduceat(np.where(present, rows.values, 0.0), starts, axis=0)
    cells = np.add.reduceat(present.astype(np.int64), starts, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(cells > 0, sums / cells, np.nan)  # NaN only where every copy is missing
    merged = rows.take(starts)
    return Rows(merged.times, means, merged.lines, merged.file_times), counts


def _conflict_error(
    rows: Rows,
    start: int,
    size: int,
    source: str,
    columns: tuple[str, ...],
    counts: DuplicateCounts,
) -> InputDataError:
    group = slice(start, start + size)
    lines = ", ".join(str(line) for line in rows.lines[group])
    differing = int(np.flatnonzero(~_columns_equal(rows.values[group]))[0])
    values = ", ".join(f"{value:g}" for value in rows.values[group, differing])
    file_times = {format_time(time) for time in rows.file_times[group]}
    snapped = (
        f" after snapping {', '.join(sorted(file_times))} to the grid"
        if len(file_times) > 1
        else ""
    )
    return InputDataError(
        f"{source}, lines {lines}: timestamp {format_time(rows.times[start])}{snapped} has "
        f"different values in column {columns[differing]!r} ({values}). Conflicting timestamps "
        f"in total: {counts.conflicting_timestamps}. Set duplicates='mean' to average them or "
        "'first' to keep the first row, or remove the extra rows from the file."
    )


def _columns_equal(block: np.ndarray) -> np.ndarray:
    """Return, per column, whether every row of block has the same value (NaN equal to NaN)."""
    same = (block == block[0]) | (np.isnan(block) & np.isnan(block[0]))
    return same.all(axis=0)


def duplicate_rule_counts(
    in_file: DuplicateCounts, after_snap: DuplicateCounts, mode: str
) -> tuple[RuleCount, RuleCount]:
    """Build the report entries for both passes of the duplicate rule."""
    exact = in_file.exact_rows + after_snap.exact_rows
    if exact == 0:
        exact_action = "no row repeated another row exactly"
    else:
        exact_action = (
            f"dropped {count_noun(exact, 'row')} that repeated an earlier row exactly "
            "(same timestamp and values)"
        )
        if after_snap.exact_rows:
            exact_action += (
                f", including {after_snap.exact_rows} that matched only after snapping to the grid"
            )

    conflicting = in_file.conflicting_timestamps + after_snap.conflicting_timestamps
    if conflicting == 0:
        return RuleCount("exact_duplicates", exact, exact_action), RuleCount(
            "conflicting_duplicates", 0, "no timestamp appeared with different values"
        )
    copies = "twice" if max(in_file.max_copies, after_snap.max_copies) == 2 else "more than once"
    verb = "averaged" if mode == "mean" else "kept the first row of"
    conflict_action = (
        f"{verb} {count_noun(conflicting, 'timestamp')} that appeared {copies} "
        "with different values"
    )
    if after_snap.conflicting_timestamps:
        conflict_action += (
            f", including {count_noun(after_snap.conflicting_timestamps, 'grid point')} that "
            "several rows snapped to"
        )
    return RuleCount("exact_duplicates", exact, exact_action), RuleCount(
        "conflicting_duplicates", conflicting, conflict_action
    )


# --- Rule 3: the time grid ---------------------------------------------------------------


def infer_period(times: np.ndarray, source: str) -> int:
    """Return the most common positive difference between consecutive times, in ns.

    A tie goes to the smallest difference. times must be sorted and distinct.
    NOTE: for timestamps with continuous jitter (no difference repeats), the result is the
    smallest difference, which is too short. Set the period explicitly for such files.
    """
    steps = np.diff(times)
    if steps.size == 0:
        raise InputDataError(
            f"{source}: only one distinct timestamp remains after merging duplicates, so no "
            "sampling period can be inferred. The file needs at least 2 distinct timestamps."
        )
    distinct, counts = np.unique(steps, return_counts=True)
    return int(distinct[np.argmax(counts)])


def snap_to_grid(
    rows: Rows, period: int, policy: CleaningPolicy, source: str
) -> tuple[Rows, RuleCount]:
    """Move each time to the nearest point of a grid with the given period (ns).

    The grid's phase is the most common phase among the rows, so one late first row does not
    shift every other row. A time exactly halfway between two grid points moves to the later point.
    rows must be sorted by time, and stay sorted because snapping never reorders rows.
    """
    phases = (rows.times - rows.times[0]) % period
    distinct, counts = np.unique(phases, return_counts=True)
    phase = int(distinct[np.argmax(counts)])
    anchor = int(rows.times[0]) + phase
    steps = np.floor_divide(rows.times - anchor + period // 2, period)
    snapped = anchor + steps * period

    off_grid = phases != phase
    count = int(off_grid.sum())
    grid_text = f"the {format_period(period)} grid anchored at {format_time(anchor)}"
    # Rule counts reach metrics.json, which may be shared, so they do not give the anchor time:
    # the recording's start time is metadata of the original data.
    shared_grid_text = f"the {format_period(period)} grid of the most common phase"
    if count == 0:
        return rows, RuleCount("off_grid", 0, f"every timestamp was on {shared_grid_text}")

    if policy.off_grid == "error":
        first = int(np.flatnonzero(off_grid)[0])
        raise InputDataError(
            f"{source}, line {rows.lines[first]}: timestamp {format_time(rows.times[first])} "
            f"is not on {grid_text} ({count_noun(count, 'row')} off the grid in total). "
            "Set off_grid='snap' to move such rows to the nearest grid point, or set period to "
            "the file's sampling period."
        )

    moved = Rows(snapped, rows.values, rows.lines, rows.file_times)
    return moved, RuleCount(
        "off_grid", count, f"moved {count_noun(count, 'row')} to the nearest point of {shared_grid_text}"
    )
