"""PNG figures of a run: segments, projection scores and explained variance.

The figures are drawn on matplotlib Figure objects with the Agg canvas, never through
pyplot. So no window opens and the caller's pyplot backend stays as it is. No pyplot
registry keeps a reference, so each figure is freed by garbage collection once saved.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from avatarjax.io import atomic_path

logger = logging.getLogger(__name__)

DPI = 120
# Maximum points per array in the component scatter. Above this count, markers overlap into a
# solid area anyway and the PNG grows without showing more.
MAX_SCATTER_POINTS = 20_000

ORIGINAL_COLOR = "tab:blue"
AVATAR_COLOR = "tab:orange"


def _new_figure(width_in: float, height_in: float) -> Figure:
    figure = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _check_png_path(path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    if target.suffix.lower() != ".png":
        raise ValueError(f"figure path {target} must end with .png, because figures are PNG files")
    return target


def _save_png(figure: Figure, target: Path) -> Path:
    with atomic_path(target) as temporary:
        figure.savefig(temporary, format="png", dpi=DPI)
    logger.info("saved figure %s", target)
    return target


def _check_matrix(array: np.ndarray, name: str, min_columns: int = 1) -> np.ndarray:
    """Return array as a float matrix, or raise ValueError naming its shape."""
    matrix = np.asarray(array, dtype=float)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {matrix.shape}")
    if matrix.shape[0] == 0 or matrix.shape[1] < min_columns:
        raise ValueError(
            f"{name} must have at least 1 row and {min_columns} column(s), got shape {matrix.shape}"
        )
    return matrix


def _sample_rows(matrix: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Return count distinct rows drawn at random, in their original order, or all rows if fewer."""
    if matrix.shape[0] <= count:
        return matrix
    rows = np.sort(rng.choice(matrix.shape[0], size=count, replace=False))
    return matrix[rows]


def plot_curves(
    original: np.ndarray,
    avatars: np.ndarray,
    path: str | os.PathLike[str],
    n_curves: int = 50,
    seed: int = 0,
    step_label: str = "step",
    value_label: str = "value",
) -> Path:
    """Draw random original and avatar segments in two panels with a shared y axis.

    original and avatars have shape (segments, steps). Each panel shows n_curves segments,
    or all of them if there are fewer, drawn without replacement by
    numpy.random.default_rng(seed): first the originals, then the avatars from the same
    generator. Returns the path of the saved PNG.
    """
    target = _check_png_path(path)
    original = _check_matrix(original, "original")
    avatars = _check_matrix(avatars, "avatars")
    if n_curves < 1:
        raise ValueError(f"n_curves must be at least 1, got {n_curves}")

    rng = np.random.default_rng(seed)
    panels = [
        ("Original", original, _sample_rows(original, n_curves, rng), ORIGINAL_COLOR),
        ("Avatar", avatars, _sample_rows(avatars, n_curves, rng), AVATAR_COLOR),
    ]

    figure = _new_figure(12.0, 4.5)
    axes = figure.subplots(1, 2, sharey=True)
    for ax, (kind, segments, shown, color) in zip(axes, panels):
        steps = np.arange(shown.shape[1])
        ax.plot(steps, shown.T, color=color, linewidth=0.6, alpha=0.35)
        ax.set_title(f"{kind} segments ({shown.shape[0]} of {segments.shape[0]})")
        ax.set_xlabel(step_label)
    axes[0].set_ylabel(value_label)
    return _save_png(figure, target)


def plot_components(
    original_scores: np.ndarray,
    avatar_scores: np.ndarray,
    path: str | os.PathLike[str],
    seed: int = 0,
    method: str = "fpca",
) -> Path:
    """Scatter the first two projection scores (method "fpca", "dct" or "fourier") of originals and avatars.

    Both arrays have shape (segments, components) with at least 2 components. An array with
    more than MAX_SCATTER_POINTS rows is drawn as a random subsample of that many rows,
    drawn with numpy.random.default_rng(seed), and the title states the sample sizes.
    Returns the path of the saved PNG.
    """
    target = _check_png_path(path)
    original_scores = _check_matrix(original_scores, "original_scores", min_columns=2)
    avatar_scores = _check_matrix(avatar_scores, "avatar_scores", min_columns=2)

    rng = np.random.default_rng(seed)
    shown_original = _sample_rows(original_scores, MAX_SCATTER_POINTS, rng)
    shown_avatars = _sample_rows(avatar_scores, MAX_SCATTER_POINTS, rng)

    figure = _new_figure(6.5, 6.0)
    ax = figure.subplots()
    for scores, color in ((shown_original, ORIGINAL_COLOR), (shown_avatars, AVATAR_COLOR)):
        ax.scatter(scores[:, 0], scores[:, 1], s=3, color=color, alpha=0.3, linewidths=0)
    ax.set_xlabel(f"{method.upper()} 1")
    ax.set_ylabel(f"{method.upper()} 2")
    ax.set_title(_components_title(original_scores, shown_original, avatar_scores, shown_avatars, method))

    # Proxy handles, because handles taken from the scatter would copy its tiny, faint markers.
    handles = [
        Line2D([], [], linestyle="", marker="o", color=ORIGINAL_COLOR, label="originals"),
        Line2D([], [], linestyle="", marker="o", color=AVATAR_COLOR, label="avatars"),
    ]
    ax.legend(handles=handles, loc="best")
    return _save_png(figure, target)


def _components_title(
    original: np.ndarray, shown_original: np.ndarray, avatars: np.ndarray, shown_avatars: np.ndarray,
    method: str = "fpca",
) -> str:
    title = f"First two {method.upper()} components"
    if shown_original.shape[0] < original.shape[0] or shown_avatars.shape[0] < avatars.shape[0]:
        title += (
            f"\nrandom subsample: {shown_original.shape[0]} of {original.shape[0]} originals, "
            f"{shown_avatars.shape[0]} of {avatars.shape[0]} avatars"
        )
    return title


def plot_explained_variance(ratio: np.ndarray, path: str | os.PathLike[str], method: str = "fpca") -> Path:
    """Draw the explained-variance ratio per component as bars and its cumulative sum as a line.

    ratio has shape (ncp,) and contains fractions in [0, 1], not percentages. Both are
    drawn in percent, the cumulative line on a second y axis. Returns the path of the PNG.
    """
    target = _check_png_path(path)
    ratio = np.asarray(ratio, dtype=float)
    if ratio.ndim != 1 or ratio.shape[0] == 0:
        raise ValueError(f"ratio must be a non-empty 1-D array, got shape {ratio.shape}")
    # The tolerance admits rounding in a ratio computed from eigenvalues.
    if not np.all(np.isfinite(ratio)) or ratio.min() < 0.0 or ratio.sum() > 1.0 + 1e-6:
        raise ValueError(
            "ratio must contain finite fractions in [0, 1] that sum to at most 1, got "
            f"min {ratio.min()}, sum {ratio.sum()}; pass fractions, not percentages"
        )

    components = np.arange(1, ratio.shape[0] + 1)
    percent = 100.0 * ratio
    cumulative = np.cumsum(percent)

    figure = _new_figure(7.5, 4.5)
    ax = figure.subplots()
    ax.bar(components, percent, color=ORIGINAL_COLOR, label="per component")
    ax.set_xlabel(f"{method.upper()} component")
    ax.set_ylabel("explained variance (%)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0.4, ratio.shape[0] + 0.6)

    cumulative_ax = ax.twinx()
    cumulative_ax.plot(components, cumulative, color="black", marker="o", markersize=3,
                       label="cumulative")
    cumulative_ax.set_ylabel("cumulative explained variance (%)")
    cumulative_ax.set_ylim(0.0, 105.0)

    ax.set_title(f"Explained variance of {ratio.shape[0]} components "
                 f"(cumulative {cumulative[-1]:.1f} %)")
    bar_handles, bar_labels = ax.get_legend_handles_labels()
    line_handles, line_labels = cumulative_ax.get_legend_handles_labels()
    ax.legend(bar_handles + line_handles, bar_labels + line_labels, loc="center right")
    return _save_png(figure, target)
