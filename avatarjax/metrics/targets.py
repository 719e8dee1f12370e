"""Targets of the avatar method's privacy and utility metrics, and the entries the report shows.

Targets follow the Octopize / Confiance.ai white paper "Anonymizing strategic data with
avatar" (2024), Tables 1 and 2. Each entry of a metrics file has the same keys, so the JSON
file, the report and later trackers read one structure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    label: str
    comparison: str  # one of ">", ">=", "<"
    threshold: float
    unit: str  # "%" for percentages, "" for plain numbers
    definition: str

    def is_met(self, value: float) -> bool | None:
        """Return whether value meets the target, or None when the value is undefined (NaN)."""
        if value is None or math.isnan(value):
            return None
        if self.comparison == ">":
            return value > self.threshold
        if self.comparison == ">=":
            return value >= self.threshold
        return value < self.threshold

    def text(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.comparison} {self.threshold:g}{unit}"


PRIVACY_TARGETS: dict[str, Target] = {
    "hidden_rate": Target(
        "Hidden rate", ">", 90.0, "%",
        "Share of originals whose closest avatar is not their own avatar; a tie with the own "
        "avatar counts as found.",
    ),
    "local_cloaking": Target(
        "Local cloaking (median)", ">=", 5.0, "",
        "Per original, the number of avatars strictly closer to it than its own avatar "
        "(ties are not counted); median over originals.",
    ),
    "distance_to_closest": Target(
        "Distance to closest (median)", ">", 0.2, "",
        "Per avatar, the Euclidean distance to its closest original in the projected space; "
        "median over avatars.",
    ),
    "closest_distance_ratio": Target(
        "Closest distance ratio (median)", ">", 0.3, "",
        "Per avatar, closest over second-closest original distance (1 when the second is 0); "
        "median over avatars.",
    ),
    "row_direct_match_protection": Target(
        "Row direct match protection", ">", 90.0, "%",
        "Share of original segments that do not appear exactly among the released avatar "
        "segments, compared at the release precision.",
    ),
}

# Privacy targets of static variables (one value per individual), which an attacker may hold
# in an external source.
STATIC_PRIVACY_TARGETS: dict[str, Target] = {
    "correlation_protection_rate": Target(
        "Correlation protection rate", ">", 95.0, "%",
        "Share of originals not linked to their own avatar by an attacker who knows some static "
        "variables of the originals and picks the closest avatar on them. When the own avatar ties "
        "with m other avatars for closest, the original counts as 1/(m + 1) linked.",
    ),
}

# Entity-level privacy targets (avatarjax.metrics.entity_privacy): a match to an avatar of the
# same protected entity (a day, a machine) counts as found. Thresholds are those of the
# segment-level hidden rate and local cloaking.
ENTITY_PRIVACY_TARGETS: dict[str, Target] = {
    "entity_hidden_rate": Target(
        "Entity hidden rate", ">", 90.0, "%",
        "Share of originals whose closest avatar was generated from a segment of another entity; "
        "a tie with an avatar of the own entity counts as found.",
    ),
    "entity_local_cloaking": Target(
        "Entity local cloaking (median)", ">=", 5.0, "",
        "Per original, the number of avatars of other entities strictly closer to it than the "
        "closest avatar of its own entity (ties are not counted); median over originals.",
    ),
}

UTILITY_TARGETS: dict[str, Target] = {
    "hellinger": Target(
        "Hellinger distance (pointwise)", "<", 0.2, "",
        "Hellinger distance between the histograms of all original and all avatar values "
        "on shared bins.",
    ),
    "mean": Target("Mean", "<", 5.0, "%", "Relative difference of the average per-series mean."),
    "min": Target("Minimum", "<", 10.0, "%", "Relative difference of the average per-series minimum."),
    "max": Target("Maximum", "<", 10.0, "%", "Relative difference of the average per-series maximum."),
    "sum": Target("Sum of values", "<", 5.0, "%", "Relative difference of the average per-series sum."),
    "entropy": Target(
        "Entropy (20 bins)", "<", 5.0, "%",
        "Relative difference of the average per-series Shannon entropy of a 20-bin histogram.",
    ),
    "autocorrelation_lag10": Target(
        "Autocorrelation (lag 10)", "<", 5.0, "%",
        "Relative difference of the average per-series autocorrelation at lag 10.",
    ),
}


def metric_entry(target: Target, value: float) -> dict:
    """Build the metrics-file entry of one measured value: label, value, unit, target, meets."""
    value = float(value)
    return {
        "label": target.label,
        "value": None if math.isnan(value) else value,
        "unit": target.unit,
        "target": target.text(),
        "meets": target.is_met(value),
        "definition": target.definition,
    }


def privacy_summary(privacy: dict, advice: str = "for example with a larger avatar.k") -> str:
    """Return one line on the privacy targets, with a warning against release when any is missed.

    privacy maps metric keys to entries built by metric_entry. An undefined value (meets None)
    counts neither as met nor as missed. `advice` ends the warning.
    """
    missed = [f"{entry['label']} {entry['value']:.3g}{' %' if entry['unit'] == '%' else ''} (target {entry['target']})"
              for entry in privacy.values() if entry["meets"] is False]
    undefined = [entry["label"] for entry in privacy.values() if entry["meets"] is None]
    if not missed and not undefined:
        return f"All {len(privacy)} privacy targets are met."
    if not missed:
        return (f"{len(privacy) - len(undefined)} of {len(privacy)} privacy targets are met; "
                f"undefined: {', '.join(undefined)}.")
    return (f"WARNING: {len(missed)} of {len(privacy)} privacy targets are not met: {'; '.join(missed)}. "
            f"Review the report before releasing the avatars, {advice}.")
