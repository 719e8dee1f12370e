"""Markdown report of a run, rendered from its metrics file and its figures.

The metrics dict has the sections run, cleaning, segmentation, privacy, utility,
timings_s, environment and outputs. Any of them may be missing, and the report renders
the sections that are present. Privacy and utility entries are the dicts built by
avatarjax.metrics.targets.metric_entry.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import quote, urlsplit

import numpy as np

from avatarjax.io import write_text_atomic

logger = logging.getLogger(__name__)

CAUTION = (
    "This report shows original segments (Figure 1). "
    "It is for the data owner: release only the files in the release folder."
)
# Used when the report has no curves figure: FPCA scores and statistics of the originals
# still describe the original data.
CAUTION_WITHOUT_CURVES = (
    "This report describes the original data. "
    "It is for the data owner: release only the files in the release folder."
)

MET_SYMBOLS = {True: "✅", False: "❌", None: "n/a"}
NOT_AVAILABLE = "n/a"

# Known figures in report order, with their captions. Other keys follow in the order given.
FIGURE_CAPTIONS = {
    "curves": "Randomly chosen original segments (left) and avatar segments (right) on a "
              "shared y axis.",
    "components": "Originals and avatars on the first two components of the projection.",
    "explained_variance": "Explained-variance ratio per projection component (bars) and its "
                          "cumulative share (line).",
}

RUN_LABELS = {
    "dataset": "Dataset",
    "n_segments": "Segments",
    "window_steps": "Window (steps)",
    "window": "Window (duration)",
    "stride": "Stride (steps)",
    "segmentation": "Segmentation",
    "grid_points": "Grid points",
    "projection": "Projection",
    "ncp": "Components (ncp)",
    "explained_variance_share": "Explained variance share",
    "k": "Neighbours (k)",
    "weights": "Weights",
    "seed": "Seed",
    "exclude_radius_steps": "Exclusion radius (steps)",
    "privacy_entity": "Protected entity",
    "privacy_attacks": "Attack evaluation",
    "control_share": "Control share of entities",
    "control_run": "Control run (entities)",
    "attack_trials": "Attack trials per set",
    "inference_tolerance": "Inference tolerance (standard deviations)",
}
# Run keys holding a fraction in [0, 1] that the report shows in percent.
RUN_SHARE_KEYS = {"explained_variance_share", "control_share"}


# Formatting of single values.


def format_number(value: Any) -> str:
    """Format a number with 3 significant digits and no exponent between 1e-4 and 1e6.

    Integers are written in full, None and NaN as "n/a", and other types with str().
    """
    if value is None:
        return NOT_AVAILABLE
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if not isinstance(value, (float, np.floating)):
        return str(value)

    number = float(value)
    if math.isnan(number):
        return NOT_AVAILABLE
    if math.isinf(number):
        return "∞" if number > 0 else "-∞"
    if number == 0.0 or 1e-4 <= abs(number) < 1e6:
        return np.format_float_positional(number, precision=3, unique=False, fractional=False,
                                          trim="-")
    return f"{number:.3g}"


def format_percent(value: float | None) -> str:
    """Format a value that is already in percent with 1 decimal, as "95.3 %"."""
    if value is None or math.isnan(float(value)):
        return NOT_AVAILABLE
    return f"{float(value):.1f} %"


def format_entry_value(entry: Mapping[str, Any]) -> str:
    """Format the value of a metric entry in its unit, or "n/a" when it has none."""
    if entry.get("unit") == "%":
        return format_percent(entry.get("value"))
    text = format_number(entry.get("value"))
    unit = entry.get("unit") or ""
    if unit and text != NOT_AVAILABLE:
        text += f" {unit}"
    return text


def _cell(value: Any) -> str:
    """Return value as the text of one table cell, with pipes escaped and no line breaks."""
    text = value if isinstance(value, str) else format_number(value)
    return " ".join(text.split()).replace("|", "\\|")


def _table(header: list[str], rows: list[list[Any]], align: list[str] | None = None) -> list[str]:
    """Return the lines of a Markdown table. align contains "l", "r" or "c" per column."""
    markers = {"l": "---", "r": "---:", "c": ":---:"}
    align = align or ["l"] * len(header)
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(markers[a] for a in align) + " |",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_cell(value) for value in row) + " |")
    return lines


def _label(key: str, labels: Mapping[str, str]) -> str:
    return labels.get(key, key.replace("_", " ").capitalize())


# Sections.


def _title(metrics: Mapping[str, Any]) -> list[str]:
    dataset = (metrics.get("run") or {}).get("dataset")
    title = "Avatar anonymization report"
    return [f"# {title}: {dataset}" if dataset else f"# {title}", ""]


def _count_targets(entries: Mapping[str, Mapping[str, Any]], kind: str) -> str:
    """Return a sentence such as "4 of 5 privacy targets met." naming the targets not met."""
    met = [e for e in entries.values() if e.get("meets") is True]
    failed = [e.get("label", key) for key, e in entries.items() if e.get("meets") is False]
    unknown = [e.get("label", key) for key, e in entries.items() if e.get("meets") is None]

    sentence = f"{len(met)} of {len(entries)} {kind} targets met."
    if failed:
        sentence += f" ❌ Not met: {', '.join(failed)}."
    if unknown:
        sentence += f" Not evaluated (no value): {', '.join(unknown)}."
    return sentence


def _summary(metrics: Mapping[str, Any]) -> list[str]:
    run = metrics.get("run") or {}
    n_segments = run.get("n_segments", (metrics.get("segmentation") or {}).get("segments"))

    sentence = "This run replaced "
    sentence += f"{n_segments} segments" if n_segments is not None else "the segments"
    if run.get("window_steps") is not None:
        sentence += f" of {run['window_steps']} steps"
    if run.get("window"):
        sentence += f" ({run['window']} windows)"
    sentence += " with avatars"
    if run.get("k") is not None:
        sentence += f", each drawn from the k = {run['k']} nearest neighbours of its original"
    if run.get("ncp") is not None:
        projection = str(run.get("projection", "projected")).upper()
        sentence += f" in a {run['ncp']}-component {projection} space"
    parts = [sentence + "."]

    for kind, label in (("privacy", "privacy"), ("entity_privacy", "per-entity privacy"), ("utility", "utility")):
        entries = _entries(metrics, kind)
        if entries:
            parts.append(_count_targets(entries, label))
    return [" ".join(parts), ""]


def _caution(figures: Mapping[str, str]) -> list[str]:
    text = CAUTION if "curves" in figures else CAUTION_WITHOUT_CURVES
    return [f"> ⚠️ **Caution:** {text}", ""]


def _entries(metrics: Mapping[str, Any], kind: str) -> dict[str, Mapping[str, Any]]:
    """Return the metric entries of section kind, or raise ValueError on one that is not a dict."""
    entries = metrics.get(kind) or {}
    for key, entry in entries.items():
        if not isinstance(entry, Mapping):
            raise ValueError(
                f"metrics[{kind!r}][{key!r}] must be a dict built by metric_entry, "
                f"got {type(entry).__name__}"
            )
    return dict(entries)


def _metric_table(metrics: Mapping[str, Any], kind: str, number: int) -> list[str]:
    entries = _entries(metrics, kind)
    if not entries:
        return []

    rows = [
        [
            entry.get("label", key),
            format_entry_value(entry),
            entry.get("target") or NOT_AVAILABLE,
            MET_SYMBOLS.get(entry.get("meets"), NOT_AVAILABLE),
        ]
        for key, entry in entries.items()
    ]
    title = "Privacy metrics per segment" if kind == "privacy" else f"{kind.capitalize()} metrics"
    lines = [f"## {kind.capitalize()}", "", f"**Table {number}. {title}**", ""]
    lines += _table(["Metric", "Value", "Target", "Met"], rows, align=["l", "r", "l", "c"])
    lines.append("")

    definitions = [
        f"- **{entry.get('label', key)}**: {entry['definition']}"
        for key, entry in entries.items()
        if entry.get("definition")
    ]
    if definitions:
        lines += ["Definitions:", "", *definitions, ""]
    return lines


def _distance_note(run: Mapping[str, Any]) -> list[str]:
    scale = run.get("distance_scale")
    return [f"Distance units: {scale}", ""] if scale else []


def _facts(section: Mapping[str, Any], skip: set[str], labels: Mapping[str, str]) -> list[str]:
    """Return a bullet list of the scalar entries of section, except the keys in skip."""
    lines = []
    for key, value in section.items():
        if key in skip or isinstance(value, (Mapping, list, tuple)):
            continue
        lines.append(f"- {_label(key, labels)}: {format_number(value)}")
    return lines + [""] if lines else []


def _cleaning(metrics: Mapping[str, Any]) -> list[str]:
    cleaning = metrics.get("cleaning")
    if not cleaning:
        return []

    lines = ["## Data cleaning", ""]
    lines += _facts(cleaning, skip={"rules"}, labels={"rows_read": "Rows read"})
    rules = cleaning.get("rules") or []
    if rules:
        rows = [[rule.get("rule", ""), rule.get("rows"), rule.get("action", "")] for rule in rules]
        lines += _table(["Rule", "Rows", "Action"], rows, align=["l", "r", "l"]) + [""]
    else:
        lines += ["No cleaning rule changed any row.", ""]
    return lines


def _segmentation(metrics: Mapping[str, Any]) -> list[str]:
    segmentation = metrics.get("segmentation")
    if not segmentation:
        return []

    labels = {"segments": "Segments", "remainder_policy": "Remainder policy"}
    lines = ["## Segmentation", ""]
    lines += _facts(segmentation, skip={"dropped"}, labels=labels)
    dropped = segmentation.get("dropped") or []
    if dropped:
        rows = [[item.get("reason", ""), item.get("count")] for item in dropped]
        lines += ["Left out of segmentation:", ""]
        lines += _table(["What", "Count"], rows, align=["l", "r"]) + [""]
    return lines


def _figure_link(relative: str) -> str:
    """Return relative as a URL path for a Markdown link, or raise ValueError if it is absolute."""
    posix = relative.replace("\\", "/")
    if (
        PurePosixPath(posix).is_absolute()
        or PureWindowsPath(relative).drive
        or urlsplit(posix).scheme
    ):
        raise ValueError(
            f"figure path {relative!r} must be relative to the report's folder, "
            "so that the report and its figures can be moved together"
        )
    return quote(posix, safe="/")


def _ordered_figures(figures: Mapping[str, str]) -> list[tuple[str, str]]:
    known = [(key, figures[key]) for key in FIGURE_CAPTIONS if key in figures]
    other = [(key, path) for key, path in figures.items() if key not in FIGURE_CAPTIONS]
    return known + other


def _figures(figures: Mapping[str, str]) -> list[str]:
    if not figures:
        return []

    lines = ["## Figures", ""]
    for number, (key, relative) in enumerate(_ordered_figures(figures), start=1):
        caption = FIGURE_CAPTIONS.get(key, _label(key, {}) + ".")
        lines += [
            f"![Figure {number}]({_figure_link(str(relative))})",
            "",
            f"*Figure {number}. {caption}*",
            "",
        ]
    return lines


def _run_configuration(run: Mapping[str, Any], with_distance_scale: bool) -> list[str]:
    rows = []
    for key, value in run.items():
        if key == "distance_scale":
            continue
        if key in RUN_SHARE_KEYS and isinstance(value, (int, float)):
            text = format_percent(100.0 * value)
        else:
            text = format_number(value)
        rows.append([_label(key, RUN_LABELS), text])

    lines = ["### Configuration", ""]
    lines += _table(["Setting", "Value"], rows) + [""]
    if with_distance_scale:
        lines += _distance_note(run)
    return lines


def _timings(timings: Mapping[str, Any]) -> list[str]:
    rows = [[stage, seconds] for stage, seconds in timings.items()]
    numbers = [
        seconds for seconds in timings.values()
        if isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
    ]
    if "total" not in timings and numbers:
        rows.append(["Total of these stages (writing files not included)", float(sum(numbers))])
    return ["### Timings", "", *_table(["Stage", "Seconds"], rows, align=["l", "r"]), ""]


def _run(metrics: Mapping[str, Any]) -> list[str]:
    run = metrics.get("run") or {}
    timings = metrics.get("timings_s") or {}
    environment = metrics.get("environment") or {}
    outputs = metrics.get("outputs") or {}
    if not (run or timings or environment or outputs):
        return []

    lines = ["## Run", ""]
    if run:
        # With a privacy table, the distance units go under Table 1, next to the distances.
        lines += _run_configuration(run, with_distance_scale=not metrics.get("privacy"))
    if timings:
        lines += _timings(timings)
    if environment:
        rows = [[key, value] for key, value in environment.items() if not isinstance(value, Mapping)]
        for key, value in environment.items():
            if isinstance(value, Mapping):
                rows += [[f"{key}: {name}", version] for name, version in value.items()]
        lines += ["### Environment", "", *_table(["Item", "Value"], rows), ""]
    if outputs:
        lines += ["### Outputs", ""]
        lines += [f"- {key}: `{path}`" for key, path in outputs.items()]
        lines.append("")
    return lines


def render_report(metrics: Mapping[str, Any], figures: Mapping[str, str]) -> str:
    """Render the Markdown report of a run.

    metrics is the content of the run's metrics file. figures maps a figure key
    ("curves", "components", "explained_variance" or another) to the PNG's path relative
    to the report's folder. Raises ValueError on an absolute figure path or a metric entry
    that is not a dict.
    """
    lines: list[str] = []
    lines += _title(metrics)
    lines += _caution(figures)
    lines += _summary(metrics)
    from avatarjax.report.privacy_levels import attack_lines, entity_level_lines  # imports this module

    number = 1
    lines += _metric_table(metrics, "privacy", number=number)
    if metrics.get("privacy"):
        lines += _distance_note(metrics.get("run") or {})
        number += 1
    for section in (entity_level_lines, attack_lines):
        added = section(metrics, number)
        lines += added
        number += 1 if added else 0
    lines += _metric_table(metrics, "utility", number=number)
    lines += _cleaning(metrics)
    lines += _segmentation(metrics)
    lines += _figures(figures)
    lines += _run(metrics)

    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


def write_report(
    path: str | os.PathLike[str], metrics: Mapping[str, Any], figures: Mapping[str, str]
) -> Path:
    """Render the report and write it to path atomically. Returns the path.

    A figure whose file does not exist relative to the report's folder is logged as a
    warning, and its link is still written.
    """
    target = Path(path)
    text = render_report(metrics, figures)
    for key, relative in figures.items():
        if not (target.parent / relative).is_file():
            logger.warning("figure %r not found at %s", key, target.parent / relative)
    return write_text_atomic(target, text)
