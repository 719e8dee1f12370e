"""Files of a downstream validation run: metrics, per-step scores, figures and the Markdown report.

Layout under the output folder:
- metrics.json: every analysis's metrics, the agreement of the analyses, the run facts, the
  whole config and the environment.
- scores/<analysis>.csv: both models' scores per time step, without the signal values, so
  that the raw series is not copied.
- report/figures/<analysis>_<figure>.png and report/report.md, for the data owner only,
  because the zoom figures show original signal values.
Every file is written atomically.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from avatarjax.config import ANALYSIS_NAME, ValidateConfig
from avatarjax.io import atomic_path, to_json_compatible, write_json_atomic, write_text_atomic
from avatarjax.provenance import environment
from avatarjax.report.validation_figures import plot_analysis_figures
from avatarjax.report.validation_markdown import render_validation_report
from avatarjax.tracking.records import shareable_config
from avatarjax.validation import MODELS, AnalysisResult

logger = logging.getLogger(__name__)

SCORE_PARTS = ("mean", "low", "high")


def _check_names(results: Sequence[AnalysisResult]) -> None:
    # AnalysisConfig rejects such names before any data is read. This guard covers results
    # built or renamed in code, before a name can reach a file path.
    for result in results:
        if not ANALYSIS_NAME.fullmatch(result.name):
            raise ValueError(
                f"analysis name {result.name!r} cannot be used as a file name; use letters, digits, "
                "'.', '_' or '-', starting with a letter or digit"
            )


def analysis_metrics(result: AnalysisResult) -> dict:
    """Return the JSON-ready metrics of one analysis: its name, config, anonymization run facts and metrics.

    The per-step array "normalized_differences" is left out. Its class counts are in
    "outside_interval".
    """
    metrics = {key: value for key, value in result.metrics.items() if key != "normalized_differences"}
    return {
        "name": result.name,
        "analysis": dataclasses.asdict(result.config),
        "anonymization": result.anonymization.metrics.get("run", {}),
        **metrics,
    }


def run_facts(cfg: ValidateConfig) -> dict:
    """Return the settings that the report's Run section lists, as a flat dict."""
    detector, projection, avatar = cfg.detector, cfg.projection, cfg.avatar
    return {
        "dataset": cfg.data.path or cfg.data.name,
        "column": cfg.data.value_column,
        "labels": cfg.labels,
        "analyses": len(cfg.analyses),
        "detector_window": detector.window,
        "train_stride": detector.train_stride,
        "channels": list(detector.channels),
        "kernel_size": detector.kernel_size,
        "latent_channels": detector.latent_channels,
        "learning_rate": detector.learning_rate,
        "batch_size": detector.batch_size,
        "epochs": detector.epochs,
        "seeds": detector.seeds,
        "alert_percentile": detector.alert_percentile,
        "threshold_windows": detector.threshold_windows,
        "projection": projection.method,
        "ncp": projection.ncp,
        "variance_share": projection.variance_share,
        "k": avatar.k,
        "weights": avatar.weights,
        "seed": avatar.seed,
    }


def write_scores_csv(result: AnalysisResult, path: str | os.PathLike[str]) -> Path:
    """Write one row per time step: timestamp, in_training, in_test and each model's mean, low and high score.

    The signal column is left out on purpose. Scores are MSE of standardized windows, and an
    empty cell means that no window contains the step. Returns the path.
    """
    columns = {
        "timestamp": pd.DatetimeIndex(result.timestamps),
        "in_training": result.train_mask,
        "in_test": result.test_mask,
    }
    for name in MODELS:
        for part in SCORE_PARTS:
            columns[f"{name}_{part}"] = result.scores[name][part]
    frame = pd.DataFrame(columns)

    target = Path(path)
    with atomic_path(target) as temporary:
        frame.to_csv(temporary, index=False, date_format="%Y-%m-%dT%H:%M:%S")
    return target


def write_validation_outputs(
    results: Sequence[AnalysisResult],
    agreement: dict,
    cfg: ValidateConfig,
    output_dir: str | os.PathLike[str],
) -> dict[str, Path]:
    """Write the metrics file, one scores CSV per analysis, the figures and the report.

    With cfg.report.enabled false, the figures and report.md are skipped. Returns the written
    paths under the keys "metrics", "report", "scores/<analysis>" and "figures/<analysis>/<figure>".
    Raises ValueError before writing anything when an analysis name is not a safe file name.
    """
    _check_names(results)
    output_dir = Path(output_dir)
    report_dir = output_dir / "report"
    paths: dict[str, Path] = {}
    env = environment()
    run = run_facts(cfg)

    for result in results:
        paths[f"scores/{result.name}"] = write_scores_csv(result, output_dir / "scores" / f"{result.name}.csv")

    all_metrics = [analysis_metrics(result) for result in results]
    paths["metrics"] = write_json_atomic(output_dir / "metrics.json", {
        "run": run,
        "analyses": all_metrics,
        "agreement": agreement,
        "config": shareable_config(cfg),
        "environment": env,
    })

    if cfg.report.enabled:
        figures: dict[str, dict[str, str]] = {}
        for result in results:
            drawn = plot_analysis_figures(result, report_dir / "figures")
            figures[result.name] = {key: path.relative_to(report_dir).as_posix() for key, path in drawn.items()}
            paths.update({f"figures/{result.name}/{key}": path for key, path in drawn.items()})
        # The report's tables read the same JSON-ready values as metrics.json, so NaN shows as n/a.
        text = render_validation_report(to_json_compatible(all_metrics), agreement, figures,
                                        {**run, "environment": env})
        paths["report"] = write_text_atomic(report_dir / "report.md", text)

    logger.info("Wrote the validation outputs of %d analyses to %s.", len(results), output_dir)
    return paths
