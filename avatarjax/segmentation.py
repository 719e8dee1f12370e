"""Cut a regular series into segments, the individuals of the avatar method.

Three ways, all on the regular grid that loading produced, never across a long-gap cut:
- sliding windows of `window` steps shifted by `stride` steps: floor((N - L) / stride) + 1
  windows per contiguous piece of N steps. Remainder policy: windows start at the first step
  of the piece, and the last N - ((count - 1) * stride + L) steps, fewer than a stride, are
  left out (they are counted in `dropped`);
- fixed exclusive windows: sliding windows with stride = window, so each step belongs to at
  most one segment;
- peak-centred windows: one window of `window` steps centred on each detected peak, for
  cyclic signals. A peak whose window would leave its piece is left out and counted.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.signal import find_peaks

from avatarjax.data.cleaning import format_period
from avatarjax.errors import InputDataError

logger = logging.getLogger(__name__)

_STEPS_PATTERN = re.compile(r"^\s*\d+\s*$")


@dataclass(frozen=True)
class Segments:
    """Equal-length segments of a series, in time order, with their time spans."""

    values: np.ndarray  # (n_segments, window_steps, n_columns), float64
    start_index: np.ndarray  # (n_segments,), index of the first step in the series arrays
    start_time: np.ndarray  # (n_segments,), datetime64[ns]
    end_time: np.ndarray  # (n_segments,), datetime64[ns] of the last step (inclusive)
    columns: tuple[str, ...]
    method: str
    window_steps: int
    stride: int | None
    dropped: tuple[dict, ...]  # {"reason": ..., "count": ...}; the reason names the unit

    @property
    def n_segments(self) -> int:
        return self.values.shape[0]


def window_steps(window: str | int, period: np.timedelta64) -> int:
    """Convert a window given as a duration ('1D') or as steps ('288') into a number of steps."""
    text = str(window)
    if _STEPS_PATTERN.match(text):
        return int(text)
    try:
        duration = pd.Timedelta(text)
    except ValueError as error:
        raise InputDataError(
            f"segmentation.window={text!r} is neither a number of steps nor a duration; use for example '288' or '1D'."
        ) from error
    period_text = format_period(int(pd.Timedelta(period).value))
    steps, remainder = divmod(duration, pd.Timedelta(period))
    if remainder != pd.Timedelta(0):
        raise InputDataError(
            f"segmentation.window={text!r} is not a whole number of sampling periods ({period_text}); "
            f"use a multiple of {period_text} or give the window in steps."
        )
    return int(steps)


def sliding_window_count(n_steps: int, window: int, stride: int) -> int:
    """Number of sliding windows of `window` steps, shifted by `stride`, in n_steps steps."""
    if n_steps < window:
        return 0
    return (n_steps - window) // stride + 1


def _check_fits(series, window: int) -> None:
    longest = max(stop - start for start, stop in series.pieces)
    if window > longest:
        raise InputDataError(
            f"window of {window} steps is longer than the longest contiguous piece of the series "
            f"({longest} steps of {format_period(int(pd.Timedelta(series.period).value))}); choose a shorter window."
        )


def _cut(series, starts: np.ndarray, window: int, method: str, stride, dropped) -> Segments:
    offsets = starts[:, None] + np.arange(window)[None, :]
    values = series.values[offsets]
    return Segments(
        values=values,
        start_index=starts,
        start_time=series.timestamps[starts],
        end_time=series.timestamps[starts + window - 1],
        columns=tuple(series.columns),
        method=method,
        window_steps=window,
        stride=stride,
        dropped=tuple(dropped),
    )


def sliding_windows(series, window: int, stride: int = 1, method: str = "sliding") -> Segments:
    """Cut sliding windows in every contiguous piece; see the module docstring for the remainder."""
    if stride < 1:
        raise InputDataError(f"stride={stride} is invalid; use a stride of at least 1 step.")
    if window < 2:
        raise InputDataError(f"window={window} steps is invalid; a segment needs at least 2 steps.")
    _check_fits(series, window)

    starts, dropped = [], []
    for start, stop in series.pieces:
        count = sliding_window_count(stop - start, window, stride)
        if count == 0:
            dropped.append({"reason": "steps of a piece shorter than the window", "count": stop - start})
            continue
        starts.append(start + stride * np.arange(count))
        remainder = (stop - start) - ((count - 1) * stride + window)
        if remainder > 0:
            dropped.append({"reason": "steps after the last full window of a piece", "count": int(remainder)})
    segments = _cut(series, np.concatenate(starts), window, method, stride, dropped)
    logger.info("Cut %d %s windows of %d steps (stride %d).", segments.n_segments, method, window, stride)
    return segments


def fixed_windows(series, window: int) -> Segments:
    """Cut exclusive windows: each step belongs to at most one segment."""
    return sliding_windows(series, window, stride=window, method="fixed")


def peak_windows(series, window: int, prominence: float | None = None,
                 distance: int | None = None, column: int = 0) -> Segments:
    """Cut one window centred on each peak of `column`, so the peak sits at normalized time 0.5."""
    _check_fits(series, window)
    half = window // 2
    starts, dropped = [], []
    for start, stop in series.pieces:
        signal = series.values[start:stop, column]
        piece_prominence = float(np.std(signal)) if prominence is None else prominence
        peaks, _ = find_peaks(signal, prominence=piece_prominence, distance=distance or window)
        inside = (peaks - half >= 0) & (peaks - half + window <= stop - start)
        if np.any(~inside):
            dropped.append({"reason": "peaks whose window would leave the piece", "count": int(np.sum(~inside))})
        starts.append(start + peaks[inside] - half)
    starts = np.concatenate(starts).astype(np.int64)
    if starts.size == 0:
        raise InputDataError(
            "peak detection found no peak with a full window around it; lower "
            "segmentation.peak_prominence or use segmentation=sliding."
        )
    segments = _cut(series, starts, window, "peak", None, dropped)
    logger.info("Cut %d peak-centred windows of %d steps.", segments.n_segments, window)
    return segments


def segment_series(series, method: str, window: str | int, stride: int = 1,
                   peak_prominence: float | None = None, peak_distance: str | None = None) -> Segments:
    """Segment a loaded series with one of the three methods; the window as duration or steps."""
    steps = window_steps(window, series.period)
    if method == "sliding":
        return sliding_windows(series, steps, stride)
    if method == "fixed":
        return fixed_windows(series, steps)
    if method == "peak":
        distance = None if peak_distance is None else window_steps(peak_distance, series.period)
        return peak_windows(series, steps, peak_prominence, distance)
    raise InputDataError(f"segmentation method {method!r} is unknown; choose sliding, fixed or peak.")
