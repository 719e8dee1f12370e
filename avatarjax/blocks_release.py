"""Write the outputs of a multi-block run: one avatar table per block, metrics.json, the report, the tracker records.

Folder layout under the run's output folder:
- release/<block>.csv and .parquet: one table per input block, the only files meant to leave
  the data owner. Every table has the same rows in the same shuffled order, so `avatar_id`
  (0..n-1 in file order) joins them. They carry no original id and no timestamp, because a
  window's start time would identify the original it came from.
  A temporal block has the columns avatar_id, <block>_00, <block>_01, ... (one per reading at
  the block's own sampling period); the static block has avatar_id and its attributes.
- metrics.json: aggregate metrics and run facts, no original values.
- report/report.md.
- private/link_original_to_avatar.csv: only with release.save_link=true.
Every file is written atomically (temporary file, then rename).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.csv

from avatarjax.config_blocks import AnonymizeBlocksConfig
from avatarjax.io import atomic_path, write_json_atomic
from avatarjax.metrics.privacy import round_significant
from avatarjax.multiblock_pipeline import BlockAnonymizationResult
from avatarjax.projection.static_table import is_numeric_column
from avatarjax.provenance import environment
from avatarjax.report.blocks_markdown import write_blocks_report
from avatarjax.tracking.base import Tracker
from avatarjax.tracking.records import TABLE_COLUMNS, metric_values, privacy_met, target_table_rows

logger = logging.getLogger(__name__)


def released_tables(result: BlockAnonymizationResult, significant_digits: int) -> dict[str, pd.DataFrame]:
    """Build one released table per block, rows in release order, numbers rounded to the release precision.

    Rounding happens here, so CSV and Parquet hold the same values and row direct match
    protection compares exactly what is written.
    """
    tables = {}
    for name, values in result.released_temporal().items():
        width = len(str(values.shape[1] - 1))
        columns = [f"{name}_{step:0{width}d}" for step in range(values.shape[1])]
        tables[name] = pd.DataFrame(round_significant(values, significant_digits), columns=columns)
    static = result.released_static()
    if static is not None:
        static = static.copy()
        for column in static.columns:
            if is_numeric_column(static[column].dtype) and not pd.api.types.is_integer_dtype(static[column].dtype):
                static[column] = round_significant(static[column].to_numpy(np.float64), significant_digits)
        tables[result.static_name] = static
    for table in tables.values():
        table.insert(0, "avatar_id", np.arange(len(table)))
    return tables


def write_block_release(result: BlockAnonymizationResult, cfg: AnonymizeBlocksConfig,
                        output_dir: Path) -> dict[str, Path]:
    """Write every block's avatar table (CSV and/or Parquet) and, on request, the private link file."""
    paths: dict[str, Path] = {}
    tables = released_tables(result, cfg.release.significant_digits)
    logger.info("Writing %d avatar tables of %d rows to %s.", len(tables), len(result.ids), output_dir / "release")
    for name, table in tables.items():
        if "csv" in cfg.release.formats:
            paths[f"{name}_csv"] = output_dir / "release" / f"{name}.csv"
            # Arrow writes each float64 in its shortest round-trip form, so rounded values keep
            # at most `significant_digits` digits.
            with atomic_path(paths[f"{name}_csv"]) as temporary:
                pyarrow.csv.write_csv(pyarrow.Table.from_pandas(table, preserve_index=False), temporary)
        if "parquet" in cfg.release.formats:
            paths[f"{name}_parquet"] = output_dir / "release" / f"{name}.parquet"
            with atomic_path(paths[f"{name}_parquet"]) as temporary:
                table.to_parquet(temporary, index=False, compression="zstd")
    if cfg.release.save_link:
        paths["link"] = output_dir / "private" / "link_original_to_avatar.csv"
        link = pd.DataFrame({"avatar_id": np.arange(len(result.release_order)),
                             "original_id": result.ids[result.release_order]})
        with atomic_path(paths["link"]) as temporary:
            link.to_csv(temporary, index=False)
        logger.warning("Wrote the original-to-avatar link to %s; keep it private.", paths["link"])
    return paths


def write_block_outputs(result: BlockAnonymizationResult, cfg: AnonymizeBlocksConfig,
                        output_dir: str | Path) -> dict[str, Path]:
    """Write every output of a multi-block run and return their paths."""
    output_dir = Path(output_dir)
    paths = write_block_release(result, cfg, output_dir)
    paths["metrics"] = output_dir / "metrics.json"
    metrics = dict(result.metrics)
    metrics["environment"] = environment()
    metrics["outputs"] = {name: str(path.relative_to(output_dir)) for name, path in paths.items()}
    if cfg.report.enabled:
        paths["report"] = output_dir / "report" / "report.md"
        metrics["outputs"]["report"] = str(paths["report"].relative_to(output_dir))
        write_blocks_report(paths["report"], metrics)
    write_json_atomic(paths["metrics"], metrics)
    return paths


def block_summary(metrics: Mapping) -> dict:
    """Summary values of a multi-block run: run facts, privacy, utility per block, timings."""
    run = metrics["run"]
    summary = {f"run/{key}": run[key] for key in ("n_individuals", "joint_dimensions", "k", "seed") if key in run}
    for block in run.get("blocks", []):
        summary[f"run/{block['name']}/ncp"] = block["ncp"]
        summary[f"run/{block['name']}/scale"] = block["scale"]
    summary.update(metric_values("privacy", metrics["privacy"]))
    summary["privacy/all_targets_met"] = privacy_met(metrics["privacy"])
    for block, entries in metrics["utility"].items():
        summary.update(metric_values(f"utility/{block}", entries))
    summary.update({f"timings_s/{stage}": seconds for stage, seconds in metrics.get("timings_s", {}).items()})
    return summary


def track_block_anonymization(tracker: Tracker, metrics: Mapping) -> None:
    """Send a multi-block run's privacy, utility and inference tables and its summary to the tracker."""
    tracker.log_table("privacy", TABLE_COLUMNS, target_table_rows(metrics["privacy"]))
    for block, entries in metrics["utility"].items():
        tracker.log_table(f"utility/{block}", TABLE_COLUMNS, target_table_rows(entries))
    inference = metrics.get("inference") or []
    if inference:
        tracker.log_table("inference", ["variable", "kind", "value", "unit", "baseline", "k"],
                          [[row["variable"], row["kind"], row["value"], row["unit"], row["baseline"], row["k"]]
                           for row in inference])
    tracker.summary(block_summary(metrics))
