"""PNG of a sweep's privacy-utility frontier: privacy metrics against utility, one point per setting.

Rows: hidden rate (%) and local cloaking. Columns: Hellinger distance and, for validation
sweeps, the anomaly-score correlation. Each point is a setting's mean over seeds with its
standard deviation as error bars. Filled markers meet every privacy target in every run and
hollow ones do not. The colour shows k and a dashed line the privacy target. A ring marks
the settings on the frontier and a star the best setting (avatarjax/sweeps/frontier.py
defines both).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize
from matplotlib.lines import Line2D

from avatarjax.metrics.targets import PRIVACY_TARGETS
from avatarjax.report.figures import _check_png_path, _new_figure, _save_png

_ROWS = (("hidden_rate", "Hidden rate (%)"), ("local_cloaking", "Local cloaking (median)"))
_COLUMNS = (("hellinger", "Hellinger distance (lower is better)"),
            ("score_correlation", "Anomaly-score correlation (higher is better)"))


def _error(table: pd.DataFrame, name: str) -> np.ndarray | None:
    spread = table.get(f"{name}_std")
    if spread is None or spread.isna().all():
        return None
    return spread.fillna(0.0).to_numpy(float)


def plot_frontier(table: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Draw the frontier of a settings table (summarize_settings) and save it as PNG."""
    target = _check_png_path(path)
    columns = [column for column in _COLUMNS if table[column[0]].notna().any()]
    # At least 7 inches wide, so the title fits above a single column of panels.
    figure = _new_figure(max(5.0 * len(columns), 7.0), 7.5)
    axes = np.asarray(figure.subplots(len(_ROWS), len(columns), squeeze=False))
    ks = table["k"].to_numpy(float)
    norm = LogNorm(ks.min(), ks.max()) if ks.min() > 0 and ks.max() > ks.min() else Normalize(ks.min(), ks.max() + 1)
    cmap = colormaps["viridis"]
    several_projections = "projection" in table and table["projection"].nunique() > 1
    for row_index, (y_name, y_label) in enumerate(_ROWS):
        for column_index, (x_name, x_label) in enumerate(columns):
            ax = axes[row_index, column_index]
            x, y = table[x_name].to_numpy(float), table[y_name].to_numpy(float)
            ax.errorbar(x, y, xerr=_error(table, x_name), yerr=_error(table, y_name), fmt="none",
                        ecolor="0.6", elinewidth=0.8, zorder=1)
            for i in range(len(table)):
                colour = cmap(norm(ks[i]))
                met = bool(table["privacy_met"].iloc[i])
                ax.scatter(x[i], y[i], s=46, marker="o", zorder=3, linewidths=1.4,
                           facecolors=colour if met else "white", edgecolors=colour)
                if bool(table["frontier"].iloc[i]):
                    ax.scatter(x[i], y[i], s=140, marker="o", facecolors="none", edgecolors="black",
                               linewidths=0.8, zorder=2)
                if bool(table["best"].iloc[i]):
                    ax.scatter(x[i], y[i], s=220, marker="*", color="crimson", zorder=4)
                ncp = table["ncp"].iloc[i]
                label = f"k={table['k'].iloc[i]}" + ("" if pd.isna(ncp) else f", ncp={ncp}")
                if several_projections:
                    label = f"{table['projection'].iloc[i]} {label}"
                # Alternate labels above and below their points, so neighbours with the same y
                # (for example one k at two ncp) do not print over each other.
                ax.annotate(label, (x[i], y[i]), textcoords="offset points",
                            xytext=(5, 4) if i % 2 == 0 else (5, -11), fontsize=7, color="0.25")
            threshold = PRIVACY_TARGETS[y_name].threshold
            ax.axhline(threshold, color="crimson", linestyle="--", linewidth=0.9)
            ax.set_xlabel(x_label)
            ax.set_ylabel(y_label)
            ax.grid(alpha=0.3)
    legend = [
        Line2D([], [], marker="o", linestyle="none", color="0.3", label="meets every privacy target"),
        Line2D([], [], marker="o", linestyle="none", markerfacecolor="white", color="0.3",
               label="misses a privacy target"),
        Line2D([], [], marker="o", linestyle="none", markerfacecolor="none", markeredgecolor="black",
               markersize=10, label="on the frontier"),
        Line2D([], [], marker="*", linestyle="none", color="crimson", markersize=12, label="best setting"),
        Line2D([], [], color="crimson", linestyle="--", label="privacy target"),
    ]
    figure.legend(handles=legend, loc="outside lower center", ncols=3, fontsize=8)
    if ks.max() > ks.min():
        colorbar = figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes.ravel().tolist(), label="k",
                                   shrink=0.6)
        # Ticks at the swept values of k, in plain numbers rather than powers of ten.
        swept = sorted(set(ks.tolist()))
        colorbar.minorticks_off()
        colorbar.set_ticks(swept, labels=[f"{value:g}" for value in swept])
    figure.suptitle("Privacy-utility frontier (mean over seeds, bars: standard deviation)")
    return _save_png(figure, target)
