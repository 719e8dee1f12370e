"""Human-readable report of a run: PNG figures and a Markdown file for the data owner."""

from avatarjax.report.figures import plot_components, plot_curves, plot_explained_variance
from avatarjax.report.markdown import render_report, write_report

__all__ = [
    "plot_components",
    "plot_curves",
    "plot_explained_variance",
    "render_report",
    "write_report",
]
