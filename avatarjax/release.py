"""Write the outputs of a run: released avatars, the metrics file, the report and its figures.

Folder layout under the run's output folder:
- release/: the avatar segments, the only files meant to leave the data owner. Rows are
  shuffled, ids are fresh (0..n-1 in file order), and there are no timestamps, because a
  segment's start time would identify the original it came from.
- metrics.json: aggregate metrics and run facts, no original values.
- report/: report.md and its PNG figures. Figure 1 shows original segments.
- private/link_original_to_avatar.csv: only with release.save_link=true.
Every file is written atomically (temporary file, then rename).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.csv

from avatarjax.config import AnonymizeConfig
from avatarjax.io import atomic_path, write_json_atomic
from avatarjax.metrics.privacy import round_significant
from avatarjax.pipeline import AnonymizationResult
from avatarjax.provenance import environment
from avatarjax.report import plot_components, plot_curves, plot_explained_variance, write_report

logger = logging.getLogger(__name__)


def released_frame(result: AnonymizationResult, column: str, significant_digits: int) -> pd.DataFrame:
    """Build the released table: one row per avatar, `avatar_id` then one column per step.

    Values are rounded to the release precision here, so CSV and Parquet hold the same values
    and row direct match protection compares exactly what is written.
    """
    steps = result.released_segments.shape[1]
    width = len(str(steps - 1))
    names = [f"{column}_{step:0{width}d}" for step in range(steps)]
    frame = pd.DataFrame(round_significant(result.released_segments, significant_digits), columns=names)
    frame.insert(0, "avatar_id", np.arange(len(frame)))
    return frame


def write_release(result: AnonymizationResult, cfg: AnonymizeConfig, output_dir: Path) -> dict[str, Path]:
    """Write the avatar segments (CSV and/or Parquet) and, on request, the private link file."""
    paths: dict[str, Path] = {}
    digits = cfg.release.significant_digits
    frame = released_frame(result, cfg.data.value_column, digits)
    logger.info("Writing %d avatars of %d steps to %s.", len(frame), frame.shape[1] - 1, output_dir / "release")
    if "csv" in cfg.release.formats:
        paths["avatars_csv"] = output_dir / "release" / "avatars.csv"
        # Arrow writes each float64 in its shortest round-trip form, so the rounded values
        # appear with at most `digits` significant digits, about 10 times faster than pandas.
        with atomic_path(paths["avatars_csv"]) as temporary:
            pyarrow.csv.write_csv(pyarrow.Table.from_pandas(frame, preserve_index=False), temporary)
    if "parquet" in cfg.release.formats:
        paths["avatars_parquet"] = output_dir / "release" / "avatars.parquet"
        with atomic_path(paths["avatars_parquet"]) as temporary:
            frame.to_parquet(temporary, index=False, compression="zstd")
    if cfg.release.save_link:
        paths["link"] = output_dir / "private" / "link_original_to_avatar.csv"
        link = pd.DataFrame({
            "avatar_id": np.arange(len(result.release_order)),
            "original_segment": result.release_order,
            "original_start_time": result.segments.start_time[result.release_order],
        })
        with atomic_path(paths["link"]) as temporary:
            link.to_csv(temporary, index=False)
        logger.warning("Wrote the original-to-avatar link to %s; keep it private.", paths["link"])
    return paths


def write_figures(result: AnonymizationResult, cfg: AnonymizeConfig, report_dir: Path) -> dict[str, str]:
    """Draw the report's figures; return their paths relative to the report folder."""
    figures = {
        "curves": plot_curves(result.original_segments, result.avatar_segments, report_dir / "figures" / "curves.png",
                              n_curves=cfg.report.n_curves, seed=cfg.avatar.seed, value_label=cfg.data.value_column),
        "components": plot_components(result.original_coordinates, result.avatar_coordinates,
                                      report_dir / "figures" / "components.png", method=result.fpca.method),
        "explained_variance": plot_explained_variance(np.asarray(result.fpca.explained_variance_ratio),
                                                      report_dir / "figures" / "explained_variance.png",
                                                      method=result.fpca.method),
    }
    return {name: str(Path(path).relative_to(report_dir)) for name, path in figures.items()}


def write_outputs(result: AnonymizationResult, cfg: AnonymizeConfig, output_dir: str | Path) -> dict[str, Path]:
    """Write every output of a run and return their paths."""
    output_dir = Path(output_dir)
    paths = write_release(result, cfg, output_dir)
    paths["metrics"] = output_dir / "metrics.json"
    metrics = dict(result.metrics)
    metrics["environment"] = environment()
    metrics["outputs"] = {name: str(path.relative_to(output_dir)) for name, path in paths.items()}
    if cfg.report.enabled:
        report_dir = output_dir / "report"
        logger.info("Drawing the report's figures in %s.", report_dir)
        figures = write_figures(result, cfg, report_dir)
        paths.update({f"figures/{name}": report_dir / relative for name, relative in figures.items()})
        paths["report"] = report_dir / "report.md"
        metrics["outputs"]["report"] = str(paths["report"].relative_to(output_dir))
        write_report(paths["report"], metrics, figures)
    write_json_atomic(paths["metrics"], metrics)
    return paths
