"""Rule 4 of cleaning: fill short gaps and missing values, cut the series at long gaps.

Times are int64 nanoseconds since the epoch, as in avatarjax.data.cleaning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatarjax.data.cleaning import CleaningPolicy, Rows, RuleCount, count_noun, format_period, format_time
from avatarjax.errors import InputDataError


@dataclass(frozen=True)
class GridSeries:
    """Cleaned series: regular within each piece, long gaps left out between pieces."""

    times: np.ndarray  # int64 ns, strictly increasing
    values: np.ndarray  # float64 (n, n_columns), no NaN
    pieces: tuple[tuple[int, int], ...]  # contiguous [start, stop) index ranges
    rules: tuple[RuleCount, RuleCount, RuleCount]  # missing_values, short_gaps, long_gaps


def fill_gaps(
    rows: Rows, period: int, policy: CleaningPolicy, source: str, columns: tuple[str, ...]
) -> GridSeries:
    """Fill short runs of missing grid steps by linear interpolation and cut at long runs.

    A run is counted per column: consecutive grid steps where that column has no value,
    because the row is absent or its cell is missing. Runs of at most max_gap_steps steps are
    interpolated in time. Longer runs drop their steps from every column and split the series.
    Interpolation never reaches across a cut, so each piece depends on its own rows only.
    Missing values at the start or end of a piece cannot be interpolated, so those steps are
    dropped too. rows must be on the grid with strictly increasing times.
    """
    grid_steps = (rows.times - rows.times[0]) // period
    absent = np.diff(grid_steps) - 1  # absent grid steps after each row but the last
    long_absent = absent > policy.max_gap_steps
    if policy.long_gap == "error" and long_absent.any():
        first = int(np.flatnonzero(long_absent)[0])
        raise _long_gap_error(source, rows, first, int(absent[first]), period, policy.max_gap_steps)

    # Insert a NaN row for every absent step of a short run. Long runs stay out.
    # NOTE: memory grows with the number of inserted steps, so a very large max_gap_steps on a
    # file with a long gap can exhaust memory.
    inserted = np.append(np.where(long_absent, 0, absent), 0)
    block = 1 + inserted
    block_starts = np.cumsum(block) - block
    grid = np.repeat(grid_steps, block) + np.arange(block.sum()) - np.repeat(block_starts, block)
    values = np.full((grid.size, len(columns)), np.nan)
    values[block_starts] = rows.values
    present = np.zeros(grid.size, dtype=bool)
    present[block_starts] = True
    line_before = np.repeat(rows.lines, block)  # line of the last file row at or before a step

    keep, first_long = _find_kept_steps(grid, values, policy.max_gap_steps, policy.long_gap)
    if first_long is not None:
        column, step, length = first_long
        place = f"line {line_before[step]}" if present[step] else f"after line {line_before[step]}"
        raise InputDataError(
            f"{source}, column {columns[column]!r}: no value for "
            f"{count_noun(length, 'grid step')} in a row from "
            f"{format_time(rows.times[0] + grid[step] * period)} ({place}), more than "
            f"max_gap_steps={policy.max_gap_steps}. Set long_gap='split' to cut the series there, "
            f"raise max_gap_steps to at least {length}, or fill the values in the file."
        )
    if keep.sum() < 2:
        raise InputDataError(
            f"{source}: fewer than 2 grid steps remain after removing missing values. "
            "Fill the missing values in the file, or raise max_gap_steps."
        )

    kept_grid = grid[keep]
    kept_values = values[keep]
    for column in range(kept_values.shape[1]):
        missing = np.isnan(kept_values[:, column])
        if missing.any():
            known = ~missing
            kept_values[missing, column] = np.interp(
                kept_grid[missing], kept_grid[known], kept_values[known, column]
            )

    cuts = np.flatnonzero(np.diff(kept_grid) > 1) + 1
    bounds = np.r_[0, cuts, kept_grid.size]
    pieces = tuple((int(start), int(stop)) for start, stop in zip(bounds[:-1], bounds[1:]))
    rules = _gap_rule_counts(grid, present, values, keep, len(pieces), policy.max_gap_steps)
    return GridSeries(rows.times[0] + kept_grid * period, kept_values, pieces, rules)


def _find_kept_steps(
    grid: np.ndarray, values: np.ndarray, max_gap_steps: int, long_gap: str
) -> tuple[np.ndarray, tuple[int, int, int] | None]:
    """Return the mask of grid steps that stay, after dropping long and unbounded missing runs.

    Dropping steps makes new piece edges, and a missing run at a new edge has lost its value
    on one side, so the search repeats until no step is dropped. With long_gap="error" it
    stops at the first long run inside the series and also returns (column, step, length).
    """
    keep = np.ones(grid.size, dtype=bool)
    while True:
        index = np.flatnonzero(keep)
        if index.size == 0:
            return keep, None
        drop, first_long = _runs_to_drop(grid[index], values[index], max_gap_steps)
        if first_long is not None and long_gap == "error":
            column, start, length = first_long
            return keep, (column, int(index[start]), length)
        if not drop.any():
            return keep, None
        keep[index[drop]] = False


def _runs_to_drop(
    grid: np.ndarray, values: np.ndarray, max_gap_steps: int
) -> tuple[np.ndarray, tuple[int, int, int] | None]:
    """Mark steps in missing runs that are too long or touch a piece edge.

    Also return (column, start, length) of the first run that is too long and lies inside the
    series (not at its first or last step), or None.
    """
    is_cut = np.diff(grid) > 1
    piece_start = np.r_[True, is_cut]
    piece_end = np.r_[is_cut, True]
    drop = np.zeros(grid.size, dtype=bool)
    first_long = None
    for column in range(values.shape[1]):
        missing = np.isnan(values[:, column])
        if not missing.any():
            continue
        follows_missing = np.r_[False, missing[:-1]] & ~piece_start
        run_starts = np.flatnonzero(missing & ~follows_missing)
        run_of_step = np.cumsum(missing & ~follows_missing) - 1
        lengths = np.bincount(run_of_step[missing], minlength=run_starts.size)
        run_ends = run_starts + lengths - 1
        too_long = lengths > max_gap_steps
        dropped_runs = too_long | piece_start[run_starts] | piece_end[run_ends]
        drop |= missing & dropped_runs[np.maximum(run_of_step, 0)]

        inside = too_long & (run_starts > 0) & (run_ends < grid.size - 1)
        if first_long is None and inside.any():
            run = int(np.flatnonzero(inside)[0])
            first_long = (column, int(run_starts[run]), int(lengths[run]))
    return drop, first_long


def _gap_rule_counts(
    grid: np.ndarray,
    present: np.ndarray,
    values: np.ndarray,
    keep: np.ndarray,
    piece_count: int,
    max_gap_steps: int,
) -> tuple[RuleCount, RuleCount, RuleCount]:
    kept_positions = np.flatnonzero(keep)
    position = np.arange(grid.size)
    at_edge = (position < kept_positions[0]) | (position > kept_positions[-1])
    has_missing = np.isnan(values).any(axis=1)
    missing_rows = present & has_missing

    filled = int((missing_rows & keep).sum())
    left_out = int((missing_rows & ~keep & ~at_edge).sum())
    trimmed = int((missing_rows & at_edge).sum())
    missing_count = int(missing_rows.sum())
    if missing_count == 0:
        missing_rule = RuleCount("missing_values", 0, "no row had a missing value")
    else:
        cells = int(np.isnan(values[present]).sum())
        missing_rule = RuleCount(
            "missing_values",
            missing_count,
            f"found {count_noun(missing_count, 'row')} with a missing value "
            f"({count_noun(cells, 'cell')}). Filled by linear interpolation: {filled}; left out "
            f"with long gaps: {left_out}; dropped at the start or end of the series, where "
            f"interpolation has no value on one side: {trimmed}",
        )

    inserted = int((~present & keep).sum())
    short_count = inserted + filled
    if short_count == 0:
        short_rule = RuleCount("short_gaps", 0, "no grid step needed interpolation")
    else:
        short_rule = RuleCount(
            "short_gaps",
            short_count,
            f"filled {count_noun(short_count, 'grid step')} by linear interpolation, in runs of at "
            f"most {max_gap_steps} steps (without a row in the file: {inserted}; with a missing "
            f"value: {filled})",
        )

    cut_count = piece_count - 1
    kept_grid = grid[keep]
    left_out_steps = int(kept_grid[-1] - kept_grid[0] + 1 - kept_grid.size)
    if cut_count == 0:
        long_rule = RuleCount("long_gaps", 0, f"no gap was longer than {max_gap_steps} grid steps")
    else:
        long_rule = RuleCount(
            "long_gaps",
            left_out_steps,
            f"cut the series into {piece_count} pieces at {count_noun(cut_count, 'gap')} longer "
            f"than {max_gap_steps} grid steps, leaving out "
            f"{count_noun(left_out_steps, 'grid step')}",
        )
    return missing_rule, short_rule, long_rule


def _long_gap_error(
    source: str, rows: Rows, before: int, length: int, period: int, max_gap_steps: int
) -> InputDataError:
    return InputDataError(
        f"{source}, lines {rows.lines[before]} and {rows.lines[before + 1]}: the file has no row "
        f"for {count_noun(length, 'grid step')} of {format_period(period)} between "
        f"{format_time(rows.times[before])} and {format_time(rows.times[before + 1])}, more than "
        f"max_gap_steps={max_gap_steps}. Set long_gap='split' to cut the series there, or raise "
        f"max_gap_steps to at least {length}."
    )
