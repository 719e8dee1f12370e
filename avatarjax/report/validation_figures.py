"""PNG figures of the downstream validation: anomaly scores, zooms, scatter, differences, losses.

Like avatarjax.report.figures, every figure is drawn on a matplotlib Figure with the Agg
canvas, never through pyplot, and saved atomically at figures.DPI (120 dpi). Scores are the
seed-mean reconstruction errors (MSE of standardized windows) averaged onto time steps, with
the 95 % interval across seeds as a band.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from avatarjax.detection.comparison import NEAR_ZERO_LIMIT, pearson
from avatarjax.report.figures import (
    AVATAR_COLOR,
    MAX_SCATTER_POINTS,
    ORIGINAL_COLOR,
    _check_png_path,
    _new_figure,
    _save_png,
)

logger = logging.getLogger(__name__)

MODELS = ("original", "avatar")
MODEL_COLORS = {"original": ORIGINAL_COLOR, "avatar": AVATAR_COLOR}
TRAINING_COLOR = "tab:green"
LABELLED_COLOR = "tab:red"
SIGNAL_COLOR = "0.2"
# A y axis turns logarithmic when its positive values span more than this ratio (two decades).
LOG_SPAN = 100.0
# Time shown on each side of a labelled anomaly window in its zoom figure.
ZOOM_MARGIN = pd.Timedelta(days=1)


def _datetime_axis(ax: Axes) -> None:
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _positive_range(arrays: Sequence[np.ndarray]) -> tuple[float, float] | None:
    """Return (min, max) of the finite positive values of all arrays, or None when there are none."""
    values = np.concatenate([np.asarray(array, dtype=float).ravel() for array in arrays])
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0:
        return None
    return float(values.min()), float(values.max())


def _wants_log(arrays: Sequence[np.ndarray]) -> bool:
    span = _positive_range(arrays)
    return span is not None and span[1] > LOG_SPAN * span[0]


def _draw_scores(ax: Axes, times: np.ndarray, scores: Mapping[str, Mapping[str, np.ndarray]],
                 thresholds: Mapping[str, float]) -> None:
    """Draw each model's mean score, 95 % band and dashed threshold, on a log y axis above two decades."""
    means = [scores[name]["mean"] for name in MODELS]
    log_scale = _wants_log(means)
    floor = None
    if log_scale:
        # A log axis cannot show a band bound <= 0, which the t interval gives for a near-zero
        # score with a wide seed spread. Such bounds are clipped to the bottom of the axis,
        # half the smallest mean score.
        floor = 0.5 * _positive_range(means)[0]

    for name in MODELS:
        color = MODEL_COLORS[name]
        low = np.asarray(scores[name]["low"], dtype=float)
        high = np.asarray(scores[name]["high"], dtype=float)
        if floor is not None:
            low = np.where(np.isfinite(low), np.maximum(low, floor), low)
        ax.fill_between(times, low, high, color=color, alpha=0.25, linewidth=0)
        ax.plot(times, scores[name]["mean"], color=color, linewidth=0.7)
        ax.axhline(thresholds[name], color=color, linestyle="--", linewidth=1.0)

    if log_scale:
        ax.set_yscale("log")
        ax.set_ylim(bottom=floor)
    ax.set_ylabel("anomaly score (MSE, standardized)")


def _score_legend_handles() -> list:
    handles = []
    for name in MODELS:
        color = MODEL_COLORS[name]
        handles += [
            Line2D([], [], color=color, linewidth=1.0, label=f"{name} model: mean score"),
            Patch(facecolor=color, alpha=0.25, label=f"{name} model: 95 % interval over seeds"),
            Line2D([], [], color=color, linestyle="--", linewidth=1.0, label=f"{name} model: threshold"),
        ]
    return handles


def _check_time_series(timestamps: np.ndarray, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """Return timestamps as datetime64[ns], or raise ValueError when an array's length differs."""
    times = np.asarray(timestamps, dtype="datetime64[ns]")
    if times.ndim != 1 or times.size == 0:
        raise ValueError(f"timestamps must be a non-empty 1-D array, got shape {times.shape}")
    for name, array in arrays.items():
        if np.shape(array) != times.shape:
            raise ValueError(f"{name} has shape {np.shape(array)}, but timestamps have shape {times.shape}")
    return times


def _score_arrays(scores: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {f"scores[{name!r}][{part!r}]": scores[name][part] for name in MODELS for part in ("mean", "low", "high")}


def overlapping_windows(
    timestamps: np.ndarray, windows: Sequence[tuple[str, str]]
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Return the labelled windows [start, end] that overlap the span of timestamps, as Timestamps."""
    first, last = pd.Timestamp(timestamps[0]), pd.Timestamp(timestamps[-1])
    overlapping = []
    for start, end in windows:
        start, end = pd.Timestamp(start), pd.Timestamp(end)
        if start <= last and end >= first:
            overlapping.append((start, end))
    return overlapping


def plot_scores(
    timestamps: np.ndarray,
    scores: Mapping[str, Mapping[str, np.ndarray]],
    thresholds: Mapping[str, float],
    train_mask: np.ndarray,
    labelled_windows: Sequence[tuple[str, str]],
    path: str | os.PathLike[str],
    title: str = "Anomaly scores",
) -> Path:
    """Draw both models' scores over the whole series, with the training stretch and labelled windows.

    scores maps "original" and "avatar" to {"mean", "low", "high"} arrays per time step (NaN
    where no window contains the step). The training stretch is shaded from its first to its
    last step. Labelled windows are (start, end) pairs parsed by pandas, and only those that
    overlap the series are shaded. Returns the path of the saved PNG.
    """
    target = _check_png_path(path)
    times = _check_time_series(timestamps, {**_score_arrays(scores), "train_mask": train_mask})

    figure = _new_figure(13.0, 5.5)
    ax = figure.subplots()
    _draw_scores(ax, times, scores, thresholds)

    handles = _score_legend_handles()
    training_steps = times[np.asarray(train_mask, dtype=bool)]
    if training_steps.size:
        ax.axvspan(training_steps[0], training_steps[-1], color=TRAINING_COLOR, alpha=0.15, linewidth=0)
        handles.append(Patch(facecolor=TRAINING_COLOR, alpha=0.15, label="training stretch"))
    overlapping = overlapping_windows(times, labelled_windows)
    for start, end in overlapping:
        ax.axvspan(start, end, color=LABELLED_COLOR, alpha=0.15, linewidth=0)
    if overlapping:
        handles.append(Patch(facecolor=LABELLED_COLOR, alpha=0.15, label="labelled anomaly window"))

    ax.set_xlim(times[0], times[-1])
    _datetime_axis(ax)
    ax.set_title(title)
    # Below the axes, because inside them the legend would hide scores.
    figure.legend(handles=handles, loc="outside lower center", fontsize="small", ncols=4)
    return _save_png(figure, target)


def plot_window_zoom(
    timestamps: np.ndarray,
    signal: np.ndarray,
    scores: Mapping[str, Mapping[str, np.ndarray]],
    thresholds: Mapping[str, float],
    window: tuple[str, str],
    path: str | os.PathLike[str],
    signal_label: str = "value",
) -> Path:
    """Draw the signal (top) and both models' scores (bottom) around one labelled anomaly window.

    The view spans ZOOM_MARGIN (one day) before the window's start to one day after its end,
    cut to the series. The signal is in original units, so this figure shows original data.
    Raises ValueError when the window does not overlap the series. Returns the PNG's path.
    """
    target = _check_png_path(path)
    times = _check_time_series(timestamps, {**_score_arrays(scores), "signal": signal})
    if not overlapping_windows(times, [window]):
        raise ValueError(
            f"labelled window {window} lies outside the series ({times[0]} to {times[-1]}); "
            "draw zooms only for windows that overlap it"
        )

    start, end = pd.Timestamp(window[0]), pd.Timestamp(window[1])
    view = (times >= np.datetime64(start - ZOOM_MARGIN)) & (times <= np.datetime64(end + ZOOM_MARGIN))
    zoom_scores = {name: {part: np.asarray(values)[view] for part, values in parts.items()}
                   for name, parts in scores.items()}

    figure = _new_figure(11.0, 7.5)
    signal_ax, score_ax = figure.subplots(2, 1, sharex=True, height_ratios=[1.0, 1.3])
    if not view.any():
        # The window overlaps the series' span but sits inside a gap longer than the margins.
        signal_ax.set_title(f"Labelled anomaly window {start} to {end}")
        signal_ax.text(0.5, 0.5, "no step within one day of the window", ha="center", va="center",
                       transform=signal_ax.transAxes)
        return _save_png(figure, target)
    signal_ax.plot(times[view], np.asarray(signal)[view], color=SIGNAL_COLOR, linewidth=0.8)
    signal_ax.set_ylabel(signal_label)
    signal_ax.set_title(f"Labelled anomaly window {start} to {end}, with one day on each side")
    _draw_scores(score_ax, times[view], zoom_scores, thresholds)
    for ax in (signal_ax, score_ax):
        ax.axvspan(start, end, color=LABELLED_COLOR, alpha=0.15, linewidth=0)

    handles = _score_legend_handles()
    handles.append(Patch(facecolor=LABELLED_COLOR, alpha=0.15, label="labelled anomaly window"))
    figure.legend(handles=handles, loc="outside lower center", fontsize="small", ncols=4)
    score_ax.set_xlim(times[view][0], times[view][-1])
    _datetime_axis(score_ax)
    return _save_png(figure, target)


def plot_score_scatter(
    original_mean: np.ndarray,
    avatar_mean: np.ndarray,
    test_mask: np.ndarray,
    thresholds: Mapping[str, float],
    path: str | os.PathLike[str],
    seed: int = 0,
) -> Path:
    """Scatter the avatar model's mean score against the original model's on the test steps.

    Both axes share one range, logarithmic when the scores span more than two decades, with
    the line y = x and each model's threshold dashed. Steps where either score is NaN are
    left out. Above MAX_SCATTER_POINTS steps, a random subsample drawn with
    numpy.random.default_rng(seed) is drawn, and the title states the sample size. Returns the PNG's path.
    """
    target = _check_png_path(path)
    original_mean = np.asarray(original_mean, dtype=float)
    avatar_mean = np.asarray(avatar_mean, dtype=float)
    test_mask = np.asarray(test_mask, dtype=bool)
    if not original_mean.shape == avatar_mean.shape == test_mask.shape:
        raise ValueError(
            f"original_mean {original_mean.shape}, avatar_mean {avatar_mean.shape} and test_mask "
            f"{test_mask.shape} must have the same shape"
        )
    keep = test_mask & np.isfinite(original_mean) & np.isfinite(avatar_mean)
    x, y = original_mean[keep], avatar_mean[keep]

    figure = _new_figure(6.5, 6.5)
    ax = figure.subplots()
    title = "Mean anomaly scores on test steps"
    if x.size == 0:
        ax.text(0.5, 0.5, "no test step with both scores", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title)
        return _save_png(figure, target)

    sample = np.arange(x.size)
    if x.size > MAX_SCATTER_POINTS:
        sample = np.sort(np.random.default_rng(seed).choice(x.size, size=MAX_SCATTER_POINTS, replace=False))
        title += f"\nrandom subsample: {MAX_SCATTER_POINTS} of {x.size} steps"
    ax.scatter(x[sample], y[sample], s=3, color=AVATAR_COLOR, alpha=0.3, linewidths=0)

    log_scale = _wants_log([x, y])
    if log_scale:
        low, high = _positive_range([x, y])
        low, high = low / 1.5, high * 1.5
        ax.set_xscale("log")
        ax.set_yscale("log")
    else:
        low, high = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        margin = 0.05 * (high - low) or 1.0
        low, high = low - margin, high + margin
    ax.plot([low, high], [low, high], color="black", linewidth=0.8, label="y = x")
    ax.axvline(thresholds["original"], color=ORIGINAL_COLOR, linestyle="--", linewidth=1.0,
               label="original model threshold")
    ax.axhline(thresholds["avatar"], color=AVATAR_COLOR, linestyle="--", linewidth=1.0,
               label="avatar model threshold")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("original model score")
    ax.set_ylabel("avatar model score")
    ax.set_title(f"{title}\n{x.size} steps, Pearson r = {pearson(x, y):.3f}")
    ax.legend(loc="upper left", fontsize="small")
    return _save_png(figure, target)


def plot_normalized_differences(
    differences: np.ndarray,
    classes: Mapping[str, int],
    path: str | os.PathLike[str],
) -> Path:
    """Draw the histogram of (avatar - original) / original on the steps outside the original interval.

    differences has one value per such test step. classes contains the counts "near_zero",
    "false_positive_risk" and "false_negative_risk", shown in the legend. Dashed lines mark
    -NEAR_ZERO_LIMIT and +NEAR_ZERO_LIMIT (±0.5), the class limits. An empty array gives a
    figure with the text "no step outside the interval". Returns the path of the saved PNG.
    """
    target = _check_png_path(path)
    differences = np.asarray(differences, dtype=float)
    if differences.ndim != 1:
        raise ValueError(f"differences must be a 1-D array, got shape {differences.shape}")

    figure = _new_figure(7.5, 4.5)
    ax = figure.subplots()
    ax.set_title("Normalized differences (avatar - original) / original\n"
                 "on test steps outside the original model's 95 % interval")
    finite = differences[np.isfinite(differences)]
    if finite.size == 0:
        ax.text(0.5, 0.5, "no step outside the interval", ha="center", va="center", transform=ax.transAxes,
                fontsize="large")
        ax.set_xticks([])
        ax.set_yticks([])
        return _save_png(figure, target)

    # sqrt(n) bins, between 10 and 60, because extreme ratios would give numpy's "auto" rule
    # thousands of empty bins.
    bins = int(np.clip(np.sqrt(finite.size), 10, 60))
    ax.hist(finite, bins=bins, color=AVATAR_COLOR, alpha=0.8)
    labels = {
        "near_zero": f"near 0, |d| <= {NEAR_ZERO_LIMIT}",
        "false_positive_risk": f"false-positive risk, d > {NEAR_ZERO_LIMIT}",
        "false_negative_risk": f"false-negative risk, d < -{NEAR_ZERO_LIMIT}",
    }
    handles = [Line2D([], [], color="black", linestyle="--", linewidth=1.0, label=f"±{NEAR_ZERO_LIMIT}")]
    handles += [Patch(facecolor="none", edgecolor="none", label=f"{text}: {classes.get(key, 0)} steps")
                for key, text in labels.items()]
    for limit in (-NEAR_ZERO_LIMIT, NEAR_ZERO_LIMIT):
        ax.axvline(limit, color="black", linestyle="--", linewidth=1.0)
    ax.set_xlabel("normalized difference d")
    ax.set_ylabel("test steps")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(handles=handles, loc="upper right", fontsize="small")
    return _save_png(figure, target)


def plot_training_loss(epoch_loss: Mapping[str, np.ndarray], path: str | os.PathLike[str]) -> Path:
    """Draw the mean training MSE per epoch, one thin line per seed, one colour per model.

    epoch_loss maps "original" and "avatar" to arrays of shape (n_seeds, epochs). Returns the
    path of the saved PNG.
    """
    target = _check_png_path(path)
    losses = {}
    for name in MODELS:
        loss = np.asarray(epoch_loss[name], dtype=float)
        if loss.ndim != 2 or loss.size == 0:
            raise ValueError(
                f"epoch_loss[{name!r}] must be a non-empty (n_seeds, epochs) array, got shape {loss.shape}"
            )
        losses[name] = loss

    figure = _new_figure(7.5, 4.5)
    ax = figure.subplots()
    handles = []
    for name, loss in losses.items():
        epochs = np.arange(1, loss.shape[1] + 1)
        # Markers keep a run of a single epoch visible, where a line has no length.
        ax.plot(epochs, loss.T, color=MODEL_COLORS[name], linewidth=0.8, alpha=0.7, marker="o", markersize=2.5)
        handles.append(Line2D([], [], color=MODEL_COLORS[name], marker="o", markersize=2.5,
                              label=f"{name} model ({loss.shape[0]} seeds)"))
    if _wants_log(list(losses.values())):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean training MSE (standardized)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Training loss per epoch and seed")
    ax.legend(handles=handles, loc="upper right")
    return _save_png(figure, target)


def plot_analysis_figures(result, folder: str | os.PathLike[str], prefix: str | None = None) -> dict[str, Path]:
    """Draw every figure of one analysis into folder and return {figure key: PNG path}.

    result is an avatarjax.validation.AnalysisResult. File names start with prefix (default:
    the analysis name) and an underscore. Keys, in report order: "scores", "zoom_<i>" for each
    labelled window that overlaps the series (i is its 1-based position in
    metrics["labelled_windows"]), "score_scatter", "normalized_differences", "training_loss".
    """
    folder = Path(folder)
    prefix = result.name if prefix is None else prefix
    metrics = result.metrics
    windows = [(row["start"], row["end"]) for row in metrics.get("labelled_windows", [])]

    paths = {"scores": plot_scores(result.timestamps, result.scores, result.thresholds, result.train_mask,
                                   windows, folder / f"{prefix}_scores.png",
                                   title=f"Anomaly scores of analysis {result.name}")}
    for number, window in enumerate(windows, start=1):
        if not overlapping_windows(result.timestamps, [window]):
            continue
        paths[f"zoom_{number}"] = plot_window_zoom(result.timestamps, result.signal, result.scores,
                                                   result.thresholds, window, folder / f"{prefix}_zoom_{number}.png")
    paths["score_scatter"] = plot_score_scatter(result.scores["original"]["mean"], result.scores["avatar"]["mean"],
                                                result.test_mask, result.thresholds,
                                                folder / f"{prefix}_score_scatter.png")
    paths["normalized_differences"] = plot_normalized_differences(
        metrics.get("normalized_differences", np.empty(0)), metrics["outside_interval"]["classes"],
        folder / f"{prefix}_normalized_differences.png")
    paths["training_loss"] = plot_training_loss({name: result.ensembles[name].epoch_loss for name in MODELS},
                                                folder / f"{prefix}_training_loss.png")
    return paths
