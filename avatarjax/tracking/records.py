"""Tracker records of each job, built from the same dicts as metrics.json.

Metric names are paths: "privacy/hidden_rate", "utility/hellinger", and for a validation
"<analysis>/correlation/overall". Every metric entry of avatarjax/metrics/targets.py gives a
value and, where it has a target, "<name>_meets" (True or False).

Privacy: the report figures that draw original series ("curves" and "components" of an
anonymization, the "zoom_<i>" figures of a validation, which plot the signal) are marked
`shows_originals`, so the tracker drops them unless the run set log_originals=true. No
original values, segment start times or the original-to-avatar link are sent otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

from avatarjax.tracking.base import Tracker

# Figure keys that draw original values. Validation zoom keys are "zoom_<i>".
ORIGINAL_FIGURES = frozenset({"curves", "components"})
ORIGINAL_FIGURE_PREFIXES = ("zoom_",)


def shows_originals(figure_key: str) -> bool:
    """Return True for the report figures that draw original series or their coordinates."""
    return figure_key in ORIGINAL_FIGURES or figure_key.startswith(ORIGINAL_FIGURE_PREFIXES)


def shareable_config(cfg) -> dict:
    """Return a job config (a dataclass) as a dict with data.path cut to its file name, which may name a site."""
    config = dataclasses.asdict(cfg)
    if config.get("data", {}).get("path"):
        config["data"]["path"] = Path(config["data"]["path"]).name
    return config


def metric_values(section: str, entries: Mapping[str, Mapping]) -> dict:
    """Flatten target-style entries {name: {"value", "meets", ...}} into {"section/name": value, ...}."""
    values = {}
    for name, entry in entries.items():
        values[f"{section}/{name}"] = entry["value"]
        if entry.get("meets") is not None:
            values[f"{section}/{name}_meets"] = bool(entry["meets"])
    return values


def target_table_rows(entries: Mapping[str, Mapping]) -> list[list]:
    """Rows [metric, value, unit, target, meets] of a privacy or utility table."""
    return [[entry["label"], entry["value"], entry.get("unit", ""), entry.get("target"), entry.get("meets")]
            for entry in entries.values()]


TABLE_COLUMNS = ["metric", "value", "unit", "target", "meets"]


def privacy_met(entries: Mapping[str, Mapping]) -> bool:
    """True when every privacy metric that has a target meets it."""
    return all(entry["meets"] is not False for entry in entries.values())


def anonymization_summary(metrics: Mapping) -> dict:
    """Summary values of an anonymization: run facts, privacy, utility and timings."""
    run = metrics["run"]
    summary = {f"run/{key}": run[key] for key in ("n_segments", "window_steps", "stride", "ncp", "k", "seed",
                                                   "explained_variance_share") if key in run}
    summary.update(metric_values("privacy", metrics["privacy"]))
    summary.update(metric_values("utility", metrics["utility"]))
    summary["privacy/all_targets_met"] = privacy_met(metrics["privacy"])
    summary.update({f"timings_s/{stage}": seconds for stage, seconds in metrics.get("timings_s", {}).items()})
    summary["cleaning/rows_read"] = metrics.get("cleaning", {}).get("rows_read")
    return summary


def track_anonymization(tracker: Tracker, metrics: Mapping, figures: Mapping[str, str | Path]) -> None:
    """Send an anonymization's metrics, tables and shareable figures to the tracker."""
    tracker.log_table("privacy", TABLE_COLUMNS, target_table_rows(metrics["privacy"]))
    tracker.log_table("utility", TABLE_COLUMNS, target_table_rows(metrics["utility"]))
    for key, path in figures.items():
        tracker.log_figure(f"figures/{key}", path, shows_originals=shows_originals(key))
    tracker.summary(anonymization_summary(metrics))


def analysis_summary(name: str, metrics: Mapping) -> dict:
    """Summary values of one validation analysis, under "<name>/..."."""
    summary = {f"{name}/correlation/overall": metrics["correlation"]["overall"]}
    summary.update({f"{name}/correlation/{month}": row["pearson"]
                    for month, row in metrics["correlation"].get("per_month", {}).items()})
    for row in metrics["reconstruction_error"]:
        summary[f"{name}/reconstruction_mse/{row['model']}_model_on_{row['data']}"] = row["mse"]
    for model in ("original", "avatar"):
        summary[f"{name}/alerts/{model}"] = sum(month[model]["alerts"] for month in metrics["alerts_per_month"].values())
        summary[f"{name}/threshold/{model}"] = metrics["thresholds"][model]
    for risk, count in metrics["outside_interval"]["classes"].items():
        summary[f"{name}/outside_interval/{risk}"] = count
    summary[f"{name}/test_steps"] = metrics["test_steps"]
    summary.update(metric_values(f"{name}/privacy", metrics["privacy"]))
    summary.update(metric_values(f"{name}/utility", metrics["utility"]))
    summary[f"{name}/privacy/all_targets_met"] = privacy_met(metrics["privacy"])
    return summary


def track_training_losses(tracker: Tracker, name: str, epoch_loss: Mapping[str, Sequence[Sequence[float]]]) -> None:
    """Log the mean, lowest and highest seed loss of each model per epoch, with the epoch as step."""
    models = list(epoch_loss)
    epochs = len(epoch_loss[models[0]][0])
    for epoch in range(epochs):
        values = {}
        for model in models:
            per_seed = [seed_losses[epoch] for seed_losses in epoch_loss[model]]
            values[f"{name}/train_loss/{model}_mean"] = sum(per_seed) / len(per_seed)
            values[f"{name}/train_loss/{model}_min"] = min(per_seed)
            values[f"{name}/train_loss/{model}_max"] = max(per_seed)
        tracker.log_metrics({**values, f"{name}/epoch": epoch + 1}, step=epoch + 1)


def track_validation(tracker: Tracker, analyses: Sequence[tuple[str, Mapping, Mapping]],
                     figures: Mapping[str, Mapping[str, str | Path]], agreement: Mapping[str, bool],
                     objective: float | None = None) -> None:
    """Send every analysis's losses, metrics, tables and shareable figures, then the summary.

    analyses holds (name, metrics, epoch losses {model: seeds x epochs}) per analysis;
    figures maps analysis name -> {figure key: PNG path}.
    """
    summary = {}
    for name, metrics, epoch_loss in analyses:
        track_training_losses(tracker, name, epoch_loss)
        tracker.log_table(f"{name}/privacy", TABLE_COLUMNS, target_table_rows(metrics["privacy"]))
        tracker.log_table(f"{name}/utility", TABLE_COLUMNS, target_table_rows(metrics["utility"]))
        tracker.log_table(f"{name}/reconstruction_error", ["model", "data", "mse", "mse_seed_std"],
                          [[row["model"], row["data"], row["mse"], row["mse_seed_std"]]
                           for row in metrics["reconstruction_error"]])
        for key, path in figures.get(name, {}).items():
            tracker.log_figure(f"{name}/figures/{key}", path, shows_originals=shows_originals(key))
        summary.update(analysis_summary(name, metrics))
    summary.update({f"agreement/{statement}": same for statement, same in agreement.items()})
    if objective is not None:
        summary["objective"] = objective
    tracker.summary(summary)
