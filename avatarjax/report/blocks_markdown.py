"""Markdown report of a multi-block anonymization, rendered from its metrics dict.

The metrics dict has the sections run, data, privacy, utility (one dict of entries per
temporal block, and "static" per static column), inference, timings_s and outputs. Sections
that are missing are left out.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from avatarjax.io import write_text_atomic
from avatarjax.metrics.targets import UTILITY_TARGETS
from avatarjax.report.markdown import (
    CAUTION_WITHOUT_CURVES,
    MET_SYMBOLS,
    NOT_AVAILABLE,
    _count_targets,
    _distance_note,
    _metric_table,
    _table,
    format_entry_value,
    format_number,
)


def _title(metrics: Mapping[str, Any]) -> list[str]:
    dataset = (metrics.get("data") or {}).get("dataset")
    title = "Multi-block avatar anonymization report"
    return [f"# {title}: {dataset}" if dataset else f"# {title}", "", f"> ⚠️ **Caution:** {CAUTION_WITHOUT_CURVES}", ""]


def _summary(metrics: Mapping[str, Any]) -> list[str]:
    run = metrics.get("run") or {}
    blocks = run.get("blocks") or []
    temporal = [block["name"] for block in blocks if block.get("kind") == "temporal"]
    static = [block for block in blocks if block.get("kind") == "static"]
    sentence = (f"This run replaced {run.get('n_individuals', 'the')} individuals with avatars drawn jointly from "
                f"{len(temporal)} temporal blocks")
    if static:
        sentence += f" and a static block of {len(static[0].get('columns', []))} columns"
    sentence += (f", each avatar from the k = {run.get('k')} nearest neighbours of its original in a "
                 f"{run.get('joint_dimensions')}-dimensional joint space with '{run.get('block_weighting')}' block weighting.")
    parts = [sentence]
    if metrics.get("privacy"):
        parts.append(_count_targets(metrics["privacy"], "privacy"))
    return [" ".join(parts), ""]


def _blocks(run: Mapping[str, Any]) -> list[str]:
    rows = []
    for block in run.get("blocks") or []:
        period = block.get("sampling_period_seconds")
        rows.append([
            block["name"], block["kind"], block.get("steps", len(block.get("columns", []))),
            f"{format_number(period)} s" if period is not None else NOT_AVAILABLE,
            block.get("grid_points", NOT_AVAILABLE), str(block["projection"]).upper(), block["ncp"],
            f"{100 * block['explained_variance_share']:.1f} %", block["scale"],
        ])
    if not rows:
        return []
    header = ["Block", "Kind", "Steps or columns", "Sampling period", "Grid points", "Projection", "ncp",
              "Explained variance", "Weight factor"]
    return ["## Blocks", "", *_table(header, rows, align=["l", "l", "r", "r", "r", "l", "r", "r", "r"]), ""]


def _utility(metrics: Mapping[str, Any], number: int) -> list[str]:
    utility = metrics.get("utility") or {}
    temporal = {name: entries for name, entries in utility.items() if name != "static"}
    lines = []
    if temporal:
        names = list(UTILITY_TARGETS)
        header = ["Block"] + [f"{UTILITY_TARGETS[name].label} ({UTILITY_TARGETS[name].text()})" for name in names]
        rows = []
        for block, entries in temporal.items():
            cells = [block]
            for name in names:
                entry = entries.get(name) or {}
                cells.append(f"{format_entry_value(entry)} {MET_SYMBOLS.get(entry.get('meets'), NOT_AVAILABLE)}")
            rows.append(cells)
        lines += ["## Utility per temporal block", "",
                  f"**Table {number}. Pointwise Hellinger distance and relative differences of per-series features "
                  "(avatar versus original), each block at its own sampling period**", ""]
        lines += _table(header, rows, align=["l"] + ["r"] * len(names)) + [""]
    static = utility.get("static") or {}
    if static:
        rows = [[column, entry["label"].split(": ", 1)[-1], format_entry_value(entry), entry.get("target"),
                 MET_SYMBOLS.get(entry.get("meets"), NOT_AVAILABLE)] for column, entry in static.items()]
        lines += ["## Utility of the static block", "",
                  f"**Table {number + 1}. Distribution distance per static column**", ""]
        lines += _table(["Column", "Metric", "Value", "Target", "Met"], rows, align=["l", "l", "r", "l", "c"]) + [""]
        definitions = {entry["label"].split(": ", 1)[-1]: entry["definition"] for entry in static.values()}
        lines += [f"- **{label}**: {text}" for label, text in definitions.items()] + [""]
    return lines


def _static_privacy(metrics: Mapping[str, Any], number: int) -> list[str]:
    lines = []
    entry = (metrics.get("privacy") or {}).get("correlation_protection_rate")
    if entry:
        lines += ["## Correlation protection and inference", "",
                  f"Correlation protection rate on the known columns {entry.get('known_columns')}: "
                  f"{format_entry_value(entry)} (target {entry.get('target')}, "
                  f"{MET_SYMBOLS.get(entry.get('meets'), NOT_AVAILABLE)}).", ""]
    if metrics.get("static_privacy_status"):
        lines += ["## Correlation protection and inference", "", f"Static privacy metrics {metrics['static_privacy_status']}", ""]
    rows = [[row.get("variable"), row.get("kind"), format_entry_value(row),
             format_entry_value({"value": row.get("baseline"), "unit": row.get("unit")}), row.get("k")]
            for row in metrics.get("inference") or []]
    if rows:
        lines += [f"**Table {number}. Inference attack: each variable predicted from the others by a k-nearest-"
                  "neighbour model trained on the avatars (numeric: mean absolute error; categorical: accuracy)**", ""]
        lines += _table(["Target variable", "Kind", "Attack score", "Constant-prediction baseline", "k"], rows,
                        align=["l", "l", "r", "r", "r"]) + [""]
        lines += ["An attack score close to its baseline means the avatars teach the attacker little beyond the "
                  "overall distribution.", ""]
    return lines


def _facts(metrics: Mapping[str, Any]) -> list[str]:
    data = metrics.get("data") or {}
    run = metrics.get("run") or {}
    rows = []
    for key, value in data.items():
        if key == "cleaning":
            continue
        if key == "dropped":
            value = "; ".join(f"{item['count']} {item['reason']}" for item in value) or "none"
        rows.append([key.replace("_", " ").capitalize(), value])
    rows += [[key.replace("_", " ").capitalize(), run[key]] for key in ("k", "weights", "seed", "block_weighting") if key in run]
    timings = metrics.get("timings_s") or {}
    rows += [[f"Time: {stage}", f"{format_number(seconds)} s"] for stage, seconds in timings.items()]
    return ["## Run", "", *_table(["Setting", "Value"], rows), ""] if rows else []


def render_blocks_report(metrics: Mapping[str, Any]) -> str:
    """Render the Markdown report of a multi-block run from its metrics dict."""
    lines: list[str] = []
    lines += _title(metrics)
    lines += _summary(metrics)
    lines += _metric_table(metrics, "privacy", number=1)
    if metrics.get("privacy"):
        lines += _distance_note(metrics.get("run") or {})
    lines += _utility(metrics, number=2)
    lines += _static_privacy(metrics, number=4)
    lines += _blocks(metrics.get("run") or {})
    lines += _facts(metrics)
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


def write_blocks_report(path: str | os.PathLike[str], metrics: Mapping[str, Any]) -> Path:
    """Render the report and write it to path atomically. Returns the path."""
    return write_text_atomic(Path(path), render_blocks_report(metrics))
