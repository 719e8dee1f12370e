"""Blocks of one multi-sensor series: load it, cut shared windows, build the temporal and static blocks.

Every block has the same individuals: sliding windows of `windows.window` shifted by
`windows.stride` on the series grid, never across a long-gap cut (avatarjax.segmentation).
The id of an individual is the series index of its window's first step.

Own sampling period: a block whose `sampling_period` is f times the series period keeps the
mean of each run of f consecutive steps of a window. So a 60-step window of a 1 s series
becomes a 12-reading segment at 5 s. The window must be a whole multiple of f steps.

Static attributes, one categorical value per window:
- "phase": the window's start time placed in `phases` equal spans between the first and the
  last window start, labelled phase_1, phase_2, ...;
- "mode": the window mean of `mode_column` cut at its quantiles into `mode_levels` levels of
  equal counts (pandas.qcut), labelled low/high, low/medium/high, or level_1, level_2, ...
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import logging
import pathlib

import numpy as np
import pandas as pd

from avatarjax.blocks import StaticBlock, TemporalBlock, static_block, temporal_block
from avatarjax.config_blocks import AnonymizeBlocksConfig, BlocksDataConfig, StaticBlockConfig
from avatarjax.data.loading import CleaningPolicy, SensorSeries, load_series
from avatarjax.errors import InputDataError
from avatarjax.segmentation import Segments, sliding_windows, window_steps

logger = logging.getLogger(__name__)

_MODE_LABELS = {2: ("low", "high"), 3: ("low", "medium", "high")}


def bundled_block_dataset_path(name: str) -> pathlib.Path:
    """Return the path of a CSV file bundled in avatarjax/data/skab (GPL-3.0), by name without ".csv".

    NOTE: this assumes the package is installed as plain files (not inside a zip archive).
    """
    folder = importlib.resources.files("avatarjax.data") / "skab"
    available = sorted(entry.name[: -len(".csv")] for entry in folder.iterdir() if entry.name.endswith(".csv"))
    if name not in available:
        raise InputDataError(
            f"unknown bundled multi-sensor dataset {name!r}. Available: {', '.join(available)}. "
            "To load another file, set data.path on the command line."
        )
    return pathlib.Path(str(folder / f"{name}.csv"))


def load_block_series(data: BlocksDataConfig, columns: list[str]) -> SensorSeries:
    """Load the configured file's `columns` with the cleaning policy, keeping the first data.max_steps steps."""
    path = pathlib.Path(data.path) if data.path else bundled_block_dataset_path(data.name)
    _check_columns_exist(path, data, columns)
    policy = CleaningPolicy(duplicates=data.duplicates, period=data.period, off_grid=data.off_grid,
                            max_gap_steps=data.max_gap_steps, long_gap=data.long_gap)
    series = load_series(path, timestamp_column=data.timestamp_column, value_columns=columns, sep=data.sep,
                         policy=policy)
    series.report.log(logger)
    if data.max_steps is not None and data.max_steps < len(series.timestamps):
        series = truncate_series(series, data.max_steps)
        logger.info("Kept the first %d steps of the series (data.max_steps).", data.max_steps)
    return series


def _check_columns_exist(path: pathlib.Path, data: BlocksDataConfig, columns: list[str]) -> None:
    # Checked here so that the message names the blocks' setting, not the single-variable job's.
    if not path.is_file():
        return  # load_series names the missing file
    header = pd.read_csv(path, sep=data.sep, nrows=0).columns.tolist()
    missing = [column for column in columns if column not in header]
    if missing:
        raise InputDataError(
            f"{path.name}: column {missing[0]!r} not found (columns: {header}). Fix blocks[].column or "
            "static.mode_column, or data.sep if the header did not split."
        )


def truncate_series(series: SensorSeries, max_steps: int) -> SensorSeries:
    """Return the first `max_steps` grid steps of a series, with its pieces cut to match."""
    pieces = tuple((start, min(stop, max_steps)) for start, stop in series.pieces if start < max_steps)
    return dataclasses.replace(series, timestamps=series.timestamps[:max_steps], values=series.values[:max_steps],
                               pieces=pieces)


def cut_windows(series: SensorSeries, window: str, stride: str) -> Segments:
    """Cut the shared sliding windows; window and stride as durations or numbers of steps."""
    steps = window_steps(window, series.period)
    stride_steps = window_steps(stride, series.period)
    if stride_steps < 1:
        raise InputDataError(f"windows.stride={stride!r} is shorter than one sampling period; use at least one step.")
    return sliding_windows(series, steps, stride_steps)


def period_factor(sampling_period: str | None, series: SensorSeries, window: int, name: str) -> int:
    """Return how many series steps make one reading of the block; 1 when sampling_period is null."""
    if sampling_period is None:
        return 1
    try:
        factor = window_steps(sampling_period, series.period)
    except InputDataError as error:
        raise InputDataError(f"block {name!r}: sampling_period {error}") from error
    if factor < 1 or window % factor:
        raise InputDataError(
            f"block {name!r}: sampling_period={sampling_period!r} is {factor} series steps, which does not divide "
            f"the window of {window} steps; choose a period that divides the window."
        )
    return factor


def downsample(values: np.ndarray, factor: int) -> np.ndarray:
    """Average each run of `factor` consecutive steps of every row: (n, L) to (n, L / factor)."""
    n, length = values.shape
    return values.reshape(n, length // factor, factor).mean(axis=2)


def derive_static_frame(segments: Segments, cfg: StaticBlockConfig) -> pd.DataFrame:
    """Derive the configured categorical attributes of every window (see the module docstring)."""
    columns = {}
    for attribute in cfg.attributes:
        if attribute == "phase":
            columns["phase"] = _phases(segments.start_time, cfg.phases)
        else:
            columns["mode"] = _modes(segments, cfg.mode_column, cfg.mode_levels)
    return pd.DataFrame(columns)


def _phases(start_time: np.ndarray, phases: int) -> np.ndarray:
    seconds = (start_time - start_time[0]) / np.timedelta64(1, "s")
    span = seconds[-1] if len(seconds) and seconds[-1] > 0 else 1.0
    index = np.minimum((seconds / span * phases).astype(int), phases - 1)
    return np.array([f"phase_{i + 1}" for i in index], dtype=object)


def _modes(segments: Segments, column: str, levels: int) -> np.ndarray:
    if column not in segments.columns:
        raise InputDataError(f"static.mode_column={column!r} is not a loaded column; choose one of {list(segments.columns)}.")
    means = segments.values[:, :, segments.columns.index(column)].mean(axis=1)
    labels = _MODE_LABELS.get(levels, tuple(f"level_{i + 1}" for i in range(levels)))
    try:
        modes = pd.qcut(means, q=levels, labels=list(labels))
    except ValueError as error:
        raise InputDataError(
            f"static.mode_column={column!r}: its window means do not split into {levels} quantile levels "
            f"({error}); lower static.mode_levels."
        ) from error
    return np.asarray(modes.astype(str), dtype=object)


def build_blocks(series: SensorSeries, cfg: AnonymizeBlocksConfig) -> tuple[Segments, list[TemporalBlock], StaticBlock | None]:
    """Cut the windows and build one temporal block per configured sensor and the static block."""
    segments = cut_windows(series, cfg.windows.window, cfg.windows.stride)
    ids = segments.start_index.astype(np.int64)
    period_seconds = float(series.period / np.timedelta64(1, "s"))

    temporal = []
    for block_cfg in cfg.blocks:
        factor = period_factor(block_cfg.sampling_period, series, segments.window_steps, block_cfg.name)
        values = downsample(segments.values[:, :, segments.columns.index(block_cfg.column)], factor)
        temporal.append(temporal_block(block_cfg.name, ids, values, block_cfg.projection,
                                       sampling_period_seconds=period_seconds * factor))

    static = None
    if cfg.static.attributes:
        frame = derive_static_frame(segments, cfg.static)
        static = static_block("static", ids, frame, cfg.static.ncp, cfg.static.rare_levels)
    return segments, temporal, static


def columns_to_load(cfg: AnonymizeBlocksConfig) -> list[str]:
    """Return the CSV columns the run needs, each once, in block order."""
    columns = [block.column for block in cfg.blocks]
    if "mode" in cfg.static.attributes:
        columns.append(cfg.static.mode_column)
    return list(dict.fromkeys(columns))
