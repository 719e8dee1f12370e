"""Markdown report of the downstream validation, rendered from each analysis's metrics and figures.

Each analysis's metrics dict is AnalysisResult.metrics without "normalized_differences", plus
"name" (the analysis name) and optionally "anonymization" (the run facts of the training
anonymization, for the distance units under its privacy table). Sections that a dict lacks
are left out of the report.

Reference values marked "white paper" come from the Octopize / Confiance.ai white paper
"Anonymizing strategic data with avatar" (2024), the source of the targets in
avatarjax.metrics.targets. They were measured on another sensor, so they show orders of
magnitude, not numbers this dataset must reproduce.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pandas as pd

from avatarjax.detection.comparison import NEAR_ZERO_LIMIT
from avatarjax.report.markdown import (
    NOT_AVAILABLE,
    _distance_note,
    _figure_link,
    _metric_table,
    _table,
    format_number,
    format_percent,
)

CAUTION = "This report shows original signal values (zoom figures). It is for the data owner."

MODELS = ("original", "avatar")
MODEL_LABELS = {"original": "Original model", "avatar": "Avatar model"}

# White-paper reference values: window MSE per (model, data) in standardized units, the
# Pearson correlation of the two models' scores, and the extra alerts of the avatar model.
# NOTE: these values were not checked against the paper's text in this repository, so the
# report marks each of them with UNCHECKED.
UNCHECKED = "as quoted, not checked against the paper's text"
WHITE_PAPER_MSE = {("original", "original"): 0.04, ("avatar", "original"): 0.03, ("avatar", "avatar"): 0.02}
WHITE_PAPER_CORRELATION = "0.74 to 0.99 per month and 0.96 overall"
WHITE_PAPER_EXTRA_ALERTS = "the avatar model raised about 5 more alerts per month than the original model"

FIGURE_CAPTIONS = {
    "scores": "Anomaly scores of both models over the whole series: seed mean (line), 95 % interval "
              "over seeds (band) and alert threshold (dashed). Green: training stretch. Red: labelled "
              "anomaly windows.",
    "score_scatter": "Avatar model score against original model score on the test steps, with the line "
                     "y = x and both thresholds (dashed).",
    "normalized_differences": "Histogram of the normalized differences (avatar - original) / original on "
                              "the test steps where the avatar score leaves the original model's 95 % "
                              f"interval. Dashed lines: ±{NEAR_ZERO_LIMIT}, the class limits.",
    "training_loss": "Mean training MSE (standardized windows) per epoch, one line per seed.",
}
# {number} is the window's row in the "Labelled anomaly windows" table.
ZOOM_CAPTION = ("Zoom on labelled anomaly window {number} of the table above, with one day on each side: the "
                "original signal (top) and both models' scores with their intervals and thresholds (bottom).")

RUN_LABELS = {
    "dataset": "Dataset",
    "column": "Column",
    "labels": "Labelled anomaly windows",
    "analyses": "Analyses",
    "detector_window": "Detector window",
    "train_stride": "Training stride (steps)",
    "channels": "Encoder channels",
    "kernel_size": "Kernel size",
    "latent_channels": "Latent channels",
    "learning_rate": "Learning rate",
    "batch_size": "Batch size",
    "epochs": "Epochs",
    "seeds": "Seeds per ensemble",
    "alert_percentile": "Alert threshold (percentile of training window errors)",
    "projection": "Projection",
    "ncp": "Components (ncp)",
    "variance_share": "Explained variance share target (none: ncp is fixed)",
    "k": "Neighbours (k)",
    "weights": "Weights",
    "seed": "Avatar seed",
}


class _Numbers:
    """Running numbers of the report's tables and figures."""

    def __init__(self) -> None:
        self._tables: Iterator[int] = itertools.count(1)
        self._figures: Iterator[int] = itertools.count(1)

    def table(self) -> int:
        return next(self._tables)

    def figure(self) -> int:
        return next(self._figures)


# Formatting of single values.


def _yes_no(value: Any) -> str:
    if value is None:
        return NOT_AVAILABLE
    return "yes" if value else "no"


def _time(text: Any) -> str:
    """Format a timestamp string as "YYYY-MM-DD HH:MM:SS", or return it unchanged when pandas cannot parse it."""
    if text is None:
        return NOT_AVAILABLE
    try:
        return str(pd.Timestamp(text))
    except (TypeError, ValueError):
        return str(text)


def _share(value: Any) -> str:
    """Format a fraction in [0, 1] in percent."""
    return NOT_AVAILABLE if value is None else format_percent(100.0 * float(value))


def _pearson(value: Any) -> str:
    """Format a correlation with 3 decimals, because 3 significant digits round 0.9996 to "1"."""
    if value is None or math.isnan(float(value)):
        return NOT_AVAILABLE
    return f"{float(value):.3f}"


def _share_of(count: int | None, total: int | None) -> str:
    return _share(count / total) if count is not None and total else NOT_AVAILABLE


def _caption(number: int, text: str) -> list[str]:
    return [f"**Table {number}. {text}**", ""]


def _alert_totals(metrics: Mapping[str, Any]) -> dict[str, int]:
    months = (metrics.get("alerts_per_month") or {}).values()
    return {name: sum(row[name]["alerts"] for row in months) for name in MODELS}


# Sections.


def _summary(metrics: Mapping[str, Any]) -> list[str]:
    training = metrics.get("training") or {}
    parts = [f"**Analysis {metrics.get('name', NOT_AVAILABLE)}.**"]
    if training:
        parts.append(f"Training stretch {_time(training.get('start'))} to {_time(training.get('end'))}: "
                     f"{format_number(training.get('windows'))} training windows of "
                     f"{format_number(training.get('window_steps'))} steps.")
    inside = training.get("labelled_windows_inside")
    if inside:
        parts.append(f"**Warning:** the training stretch overlaps {inside} labelled anomaly "
                     f"{'window' if inside == 1 else 'windows'}, but the protocol assumes a stretch free of "
                     "anomalies.")
    parts.append(f"Test steps: {format_number(metrics.get('test_steps'))}.")
    correlation = metrics.get("correlation")
    if correlation:
        parts.append(f"Overall Pearson correlation of the two models' scores: "
                     f"{_pearson(correlation.get('overall'))}.")
    if metrics.get("alerts_per_month"):
        totals = _alert_totals(metrics)
        parts.append(f"Alerts on test steps: {totals['original']} (original model) and "
                     f"{totals['avatar']} (avatar model).")
    outside = metrics.get("outside_interval")
    if outside:
        false_negative = outside["classes"]["false_negative_risk"]
        parts.append(f"Test steps at false-negative risk: {false_negative} "
                     f"({_share_of(false_negative, outside.get('test_steps'))}).")
    return [" ".join(parts), ""]


def _reconstruction(metrics: Mapping[str, Any], numbers: _Numbers) -> list[str]:
    rows = metrics.get("reconstruction_error")
    if not rows:
        return []

    n_seeds = len((metrics.get("final_training_loss") or {}).get("original", []))
    table_rows = [
        [MODEL_LABELS[row["model"]], f"{row['data']} windows",
         f"{format_number(row['mse'])} ± {format_number(row['mse_seed_std'])}"]
        for row in rows
    ]
    lines = ["### Reconstruction error", ""]
    lines += _caption(numbers.table(), "Reconstruction error on the training windows")
    lines += _table(["Model", "Data", "MSE (mean ± std over seeds)"], table_rows, align=["l", "l", "r"])
    lines.append("")

    scale = (metrics.get("training") or {}).get("standardization") or {}
    note = ("MSE of standardized windows: each window is standardized with the mean "
            f"({format_number(scale.get('mean'))}) and standard deviation ({format_number(scale.get('std'))}) "
            "of the original training windows, in signal units, and its squared errors are averaged over its "
            "steps and then over the windows.")
    if n_seeds:
        note += f" Mean and standard deviation over {n_seeds} seeds."
    references = ", ".join(f"{format_number(value)} for the {model} model on {data} windows"
                           for (model, data), value in WHITE_PAPER_MSE.items())
    note += f" White paper ({UNCHECKED}), measured on another sensor: {references}."
    lines += [note, ""]

    final_loss = metrics.get("final_training_loss") or {}
    if all(final_loss.get(name) for name in MODELS):
        means = {name: sum(final_loss[name]) / len(final_loss[name]) for name in MODELS}
        lines += [f"Training MSE of the last epoch, mean over seeds: {format_number(means['original'])} "
                  f"(original model), {format_number(means['avatar'])} (avatar model).", ""]
    return lines


def _correlation(metrics: Mapping[str, Any], numbers: _Numbers) -> list[str]:
    correlation = metrics.get("correlation")
    if not correlation:
        return []

    rows = [[month, row["steps"], _pearson(row["pearson"])] for month, row in correlation.get("per_month", {}).items()]
    rows.append(["Overall", metrics.get("test_steps"), _pearson(correlation.get("overall"))])
    lines = ["### Correlation of anomaly scores", ""]
    lines += _caption(numbers.table(), "Pearson correlation of the two models' mean scores on test steps")
    lines += _table(["Month", "Test steps", "Pearson r"], rows, align=["l", "r", "r"])
    lines += ["", f"White paper ({UNCHECKED}): {WHITE_PAPER_CORRELATION}. n/a: fewer than 2 steps or a constant "
                  "score.", ""]
    return lines


def _outside_interval(metrics: Mapping[str, Any], numbers: _Numbers) -> list[str]:
    outside = metrics.get("outside_interval")
    if not outside:
        return []

    total = outside.get("test_steps")
    classes = outside["classes"]
    cases = [
        ("Outside the interval, all classes", outside["outside_interval"]),
        (f"Near 0: |d| <= {NEAR_ZERO_LIMIT}", classes["near_zero"]),
        (f"False-positive risk: d > {NEAR_ZERO_LIMIT}", classes["false_positive_risk"]),
        (f"False-negative risk: d < -{NEAR_ZERO_LIMIT}", classes["false_negative_risk"]),
    ]
    rows = [[label, count, _share_of(count, total)] for label, count in cases]
    lines = ["### Steps outside the original model's 95 % interval", ""]
    lines += _caption(numbers.table(), "Test steps where the avatar model's mean score leaves the original "
                                       "model's 95 % interval over seeds")
    lines += _table(["Class", "Steps", "Share of test steps"], rows, align=["l", "r", "r"])
    lines += ["", f"d = (avatar score - original score) / original score, on {format_number(total)} test steps "
                  "with both scores. A false-positive risk step scores much higher under the avatar model, and "
                  "a false-negative risk step much lower.", ""]
    return lines


def _alerts(metrics: Mapping[str, Any], run: Mapping[str, Any], numbers: _Numbers) -> list[str]:
    months = metrics.get("alerts_per_month")
    if not months:
        return []

    rows = []
    for month, row in months.items():
        difference = row["avatar"]["alerts"] - row["original"]["alerts"]
        rows.append([month, row["steps"], row["original"]["alerts"], _share(row["original"]["share"]),
                     row["avatar"]["alerts"], _share(row["avatar"]["share"]), f"{difference:+d}"])
    totals = _alert_totals(metrics)
    steps = sum(row["steps"] for row in months.values())
    rows.append(["Total", steps, totals["original"], _share_of(totals["original"], steps),
                 totals["avatar"], _share_of(totals["avatar"], steps), f"{totals['avatar'] - totals['original']:+d}"])

    lines = ["### Alerts per month", ""]
    lines += _caption(numbers.table(), "Alerts of each model per month of the test period")
    lines += _table(["Month", "Test steps", "Original alerts", "Original share", "Avatar alerts", "Avatar share",
                     "Avatar - original"], rows, align=["l", "r", "r", "r", "r", "r", "r"])
    lines.append("")

    percentile = format_number(run.get("alert_percentile", 99.0))
    thresholds = metrics.get("thresholds") or {}
    source = ("the original training windows, for both models" if run.get("threshold_windows", "original") == "original"
              else "its own training windows (avatar windows for the avatar model)")
    lines += [f"Threshold of each model: percentile {percentile} of its window errors on {source} "
              f"({format_number(thresholds.get('original'))} for the original model, "
              f"{format_number(thresholds.get('avatar'))} for the avatar model). A test step is an alert when "
              f"its mean score is greater than the threshold. Here the avatar model raised "
              f"{_alert_difference((totals['avatar'] - totals['original']) / len(months))}, on average over "
              f"{len(months)} test months, some of them partial. In the white paper ({UNCHECKED}), "
              f"{WHITE_PAPER_EXTRA_ALERTS}.", ""]
    return lines


def _alert_difference(per_month: float) -> str:
    """Word the mean monthly difference (avatar - original) of alert counts with "more", "fewer" or "as many"."""
    if per_month == 0:
        return "as many alerts per month as the original model"
    direction = "more" if per_month > 0 else "fewer"
    return f"{format_number(abs(per_month))} {direction} alerts per month than the original model"


def _labelled_windows(metrics: Mapping[str, Any], numbers: _Numbers) -> list[str]:
    windows = metrics.get("labelled_windows")
    if windows is None:
        return []

    lines = ["### Labelled anomaly windows", ""]
    if not windows:
        return lines + ["The dataset has no labelled anomaly window.", ""]
    rows = [[_time(row["start"]), _time(row["end"]), row["steps"], _yes_no(row.get("in_test")),
             _yes_no(row["original"]["alert"]), row["original"]["peak_score"],
             _yes_no(row["avatar"]["alert"]), row["avatar"]["peak_score"]]
            for row in windows]
    lines += _caption(numbers.table(), "Alerts and peak scores on the test steps inside the labelled anomaly windows")
    lines += _table(["Start", "End", "Steps", "In test period", "Original alert", "Original peak score",
                     "Avatar alert", "Avatar peak score"], rows, align=["l", "l", "r", "c", "c", "r", "c", "r"])
    lines += ["", "Steps: steps of the series inside the window, training steps included. In test period: yes when "
                  "the window contains at least one test step. Only those test steps count: alert is yes when the "
                  "model's mean score exceeds its threshold at one of them, and the peak score is their maximum. "
                  f"A window outside the test period is no test result, so its alerts and peak scores are "
                  f"{NOT_AVAILABLE}.", ""]
    return lines


def _anonymization_tables(metrics: Mapping[str, Any], numbers: _Numbers) -> list[str]:
    """Render the training anonymization's privacy and utility tables as the anonymization report does."""
    lines: list[str] = []
    for kind in ("privacy", "utility"):
        if not metrics.get(kind):
            continue
        table = _metric_table(metrics, kind, number=numbers.table())
        # _metric_table starts with a level-2 heading, which becomes level 3 under an analysis.
        table[0] = f"### {kind.capitalize()} of the training anonymization"
        lines += table
        if kind == "privacy":
            lines += _distance_note(metrics.get("anonymization") or {})
    return lines


def _figures(figures: Mapping[str, str], numbers: _Numbers) -> list[str]:
    if not figures:
        return []

    lines = ["### Figures", ""]
    for key, relative in figures.items():
        number = numbers.figure()
        if key.startswith("zoom_"):
            caption = ZOOM_CAPTION.format(number=key.removeprefix("zoom_"))
        else:
            caption = FIGURE_CAPTIONS.get(key, key.replace("_", " ").capitalize() + ".")
        lines += [f"![Figure {number}]({_figure_link(str(relative))})", "", f"*Figure {number}. {caption}*", ""]
    return lines


def _analysis(metrics: Mapping[str, Any], figures: Mapping[str, str], run: Mapping[str, Any],
              numbers: _Numbers) -> list[str]:
    lines = [f"## Analysis {metrics.get('name', NOT_AVAILABLE)}", ""]
    lines += _reconstruction(metrics, numbers)
    lines += _correlation(metrics, numbers)
    lines += _outside_interval(metrics, numbers)
    lines += _alerts(metrics, run, numbers)
    lines += _labelled_windows(metrics, numbers)
    lines += _anonymization_tables(metrics, numbers)
    lines += _figures(figures, numbers)
    return lines


def _agreement(results_metrics: Sequence[Mapping[str, Any]], agreement: Mapping[str, bool],
               numbers: _Numbers) -> list[str]:
    if len(results_metrics) < 2:
        return []

    names = [str(metrics.get("name", NOT_AVAILABLE)) for metrics in results_metrics]
    rows = []
    for conclusion in (results_metrics[0].get("conclusions") or {}):
        answers = [_yes_no((metrics.get("conclusions") or {}).get(conclusion)) for metrics in results_metrics]
        rows.append([conclusion, *answers, _yes_no(agreement.get(conclusion))])
    lines = ["## Do the analyses agree?", ""]
    lines += _caption(numbers.table(), "Conclusions of each analysis and whether all analyses reach the same one")
    lines += _table(["Conclusion", *names, "Agreed"], rows, align=["l", *["c"] * len(names), "c"])
    lines += ["", "Agreed: yes when every analysis gives the same answer, whether yes or no.", ""]
    return lines


def _run(run: Mapping[str, Any]) -> list[str]:
    settings = {key: value for key, value in run.items() if key != "environment"}
    environment = run.get("environment") or {}
    if not (settings or environment):
        return []

    lines = ["## Run", ""]
    if settings:
        rows = []
        for key, value in settings.items():
            if isinstance(value, (list, tuple)):
                text = ", ".join(format_number(item) for item in value)
            else:
                text = "none" if value is None else value
            rows.append([RUN_LABELS.get(key, key.replace("_", " ").capitalize()), text])
        lines += ["### Configuration", "", *_table(["Setting", "Value"], rows), ""]
    if environment:
        rows = []
        for key, value in environment.items():
            # Nested dicts, such as the package versions, get one row per entry.
            if isinstance(value, Mapping):
                rows += [[f"{key}: {name}", item] for name, item in value.items()]
            else:
                rows.append([key, value])
        lines += ["### Environment", "", *_table(["Item", "Value"], rows), ""]
    return lines


def render_validation_report(
    results_metrics: list[dict],
    agreement: dict,
    figures: dict[str, dict[str, str]],
    run: dict,
) -> str:
    """Render the Markdown report of a downstream validation.

    results_metrics contains one metrics dict per analysis (see the module docstring). agreement
    maps each conclusion to whether all analyses agree (avatarjax.validation.agreement).
    figures maps an analysis name to {figure key: PNG path relative to the report's folder},
    in display order. run contains the configuration facts, and its "environment" entry is
    the dict of avatarjax.provenance.environment(). Raises ValueError on an absolute figure path.
    """
    numbers = _Numbers()
    dataset = run.get("dataset")
    title = "Downstream validation report"
    lines = [f"# {title}: {dataset}" if dataset else f"# {title}", ""]
    lines += [f"> ⚠️ **Caution:** {CAUTION}", ""]

    lines += ["## Summary", ""]
    for metrics in results_metrics:
        lines += _summary(metrics)
    for metrics in results_metrics:
        lines += _analysis(metrics, figures.get(str(metrics.get("name")), {}), run, numbers)
    lines += _agreement(results_metrics, agreement, numbers)
    lines += _run(run)

    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"
