"""The value a validation run returns to a Hydra sweeper: utility loss under privacy constraints.

Smaller is better. The utility loss is 1 - r, with r the overall Pearson correlation of the
original and avatar models' anomaly scores (objective "score_correlation", in [0, 2]), or the
pointwise Hellinger distance (objective "hellinger", in [0, 1]). Every privacy target the
setting misses adds PENALTY plus its relative shortfall |target - value| / target, so any
setting that meets every privacy target ranks before any that does not, and among the
others the one closest to the targets ranks first. An undefined metric counts as a miss
with shortfall 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from avatarjax.metrics.targets import PRIVACY_TARGETS

# Larger than the largest utility loss (2 for a correlation of -1).
PENALTY = 2.0


def utility_loss(analysis: Mapping, objective: str) -> float:
    """Return the utility loss of one analysis's metrics; NaN becomes the worst value."""
    if objective == "score_correlation":
        correlation = analysis["correlation"]["overall"]
        return 2.0 if correlation is None or math.isnan(correlation) else 1.0 - float(correlation)
    if objective == "hellinger":
        value = analysis["utility"]["hellinger"]["value"]
        return 1.0 if value is None else float(value)
    raise ValueError(f"objective={objective!r} is unknown; choose score_correlation or hellinger.")


def privacy_penalty(privacy: Mapping[str, Mapping]) -> float:
    """Return the penalty of the missed privacy targets (0 when every target is met)."""
    penalty = 0.0
    for name, entry in privacy.items():
        if entry.get("meets") is True or name not in PRIVACY_TARGETS:
            continue
        target = PRIVACY_TARGETS[name]
        value = entry.get("value")
        shortfall = 1.0 if value is None else abs(target.threshold - float(value)) / target.threshold
        penalty += PENALTY + shortfall
    return penalty


def constrained_objective(analysis: Mapping, objective: str) -> float:
    """Utility loss of an analysis plus the penalty of its missed privacy targets."""
    return utility_loss(analysis, objective) + privacy_penalty(analysis["privacy"])
