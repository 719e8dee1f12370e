"""Privacy and utility of a multi-block anonymization.

- Joint privacy (hidden rate, local cloaking, DTC, CDR) on the weighted joint coordinates,
  where the avatars were drawn: distances there are those the neighbour search used.
- Row direct match protection per temporal block, on the released values at release precision.
- Utility per temporal block (avatarjax.metrics.utility) and per static column
  (avatarjax.metrics.static_utility).
- Static privacy (avatarjax.metrics.static_privacy): correlation protection rate and the
  inference table, on an attack table with the static attributes and, per temporal block, its
  window mean "<block>_mean". The window means stand for what an attacker could read from
  another source, such as a logbook of the average current or temperature of a period.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from avatarjax.metrics.privacy import (
    closer_avatar_counts,
    closest_distance_ratio,
    closest_original_distances,
    distance_to_closest,
    hidden_rate,
    local_cloaking,
    row_direct_match_protection,
)
from avatarjax.metrics.static_utility import static_utility_metrics
from avatarjax.metrics.targets import PRIVACY_TARGETS, metric_entry
from avatarjax.metrics.utility import utility_metrics

logger = logging.getLogger(__name__)

STATIC_PRIVACY_MODULE = "avatarjax.metrics.static_privacy"


def joint_privacy_metrics(original_joint, avatar_joint, progress: bool | None = None) -> dict:
    """Hidden rate, local cloaking, DTC and CDR on the joint coordinates; avatars in original order."""
    counts = closer_avatar_counts(original_joint, avatar_joint, progress=progress)
    closest, second = closest_original_distances(original_joint, avatar_joint, progress=progress)
    values = {
        "hidden_rate": hidden_rate(counts),
        "local_cloaking": local_cloaking(counts),
        "distance_to_closest": distance_to_closest(closest),
        "closest_distance_ratio": closest_distance_ratio(closest, second),
    }
    return {name: metric_entry(PRIVACY_TARGETS[name], value) for name, value in values.items()}


def row_match_metrics(original: Mapping[str, np.ndarray], released: Mapping[str, np.ndarray],
                      significant_digits: int) -> dict:
    """Row direct match protection of each temporal block, keyed "row_direct_match_protection/<block>"."""
    entries = {}
    for name, original_rows in original.items():
        value = row_direct_match_protection(original_rows, released[name], significant_digits)
        entry = metric_entry(PRIVACY_TARGETS["row_direct_match_protection"], value)
        entry["label"] = f"{entry['label']} ({name})"
        entries[f"row_direct_match_protection/{name}"] = entry
    return entries


def utility_by_block(original: Mapping[str, np.ndarray], avatar: Mapping[str, np.ndarray],
                     original_static: pd.DataFrame | None, avatar_static: pd.DataFrame | None) -> dict:
    """Utility metrics per temporal block, and per static column under "static"."""
    utility = {name: utility_metrics(values, avatar[name]) for name, values in original.items()}
    if original_static is not None:
        utility["static"] = static_utility_metrics(original_static, avatar_static)
    return utility


def attack_table(temporal: Mapping[str, np.ndarray], static: pd.DataFrame | None) -> pd.DataFrame:
    """Return the table of the static privacy metrics: static attributes, then "<block>_mean" columns."""
    table = static.reset_index(drop=True).copy() if static is not None else pd.DataFrame()
    for name, values in temporal.items():
        table[f"{name}_mean"] = np.asarray(values, dtype=np.float64).mean(axis=1)
    return table


def static_privacy_metrics(original: pd.DataFrame, avatar: pd.DataFrame, known_columns, inference_targets,
                           inference_k: int, progress: bool | None = None) -> dict:
    """Run the correlation protection rate and the inference table; rows of `avatar` align with `original`.

    Returns {"correlation_protection_rate": entry, "inference": rows}, or {"status": reason}
    when avatarjax.metrics.static_privacy is not installed.
    """
    try:
        from avatarjax.metrics import static_privacy
    except ModuleNotFoundError as error:
        if error.name != STATIC_PRIVACY_MODULE:
            raise
        status = f"not computed: {STATIC_PRIVACY_MODULE} is not available in this installation."
        logger.warning("Static privacy metrics %s", status)
        return {"status": status}

    entry = dict(static_privacy.correlation_protection_rate(original, avatar, list(known_columns),
                                                            progress=progress))
    # The report and privacy_summary read these keys; the entry may leave them out.
    entry.setdefault("label", "Correlation protection rate")
    entry.setdefault("unit", "%")
    entry["known_columns"] = list(known_columns)
    rows = static_privacy.inference_table(original, avatar,
                                          targets=None if inference_targets is None else list(inference_targets),
                                          k=inference_k)
    return {"correlation_protection_rate": entry, "inference": [dict(row) for row in rows]}
