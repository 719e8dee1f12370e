"""Comparison of the original and avatar models' anomaly scores on the same real test steps.

Conventions:
- Pearson correlation of the two models' seed-mean scores, per calendar month and over the
  whole test period, on the test steps where both scores exist.
- Normalized difference (avatar - original) / original of the seed-mean scores, only on steps
  where the avatar mean falls outside the original model's 95 % interval. Classes: near 0
  for [-0.5, 0.5], false-positive risk above 0.5, false-negative risk below -0.5.
- An alert is a step whose seed-mean score is strictly greater (`>`) than the model's threshold.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NEAR_ZERO_LIMIT = 0.5


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation on the positions where both are finite; NaN when either is constant."""
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 2 or np.std(x[keep]) == 0 or np.std(y[keep]) == 0:
        return float("nan")
    return float(np.corrcoef(x[keep], y[keep])[0, 1])


def month_labels(timestamps: np.ndarray) -> np.ndarray:
    """Calendar month of every timestamp as 'YYYY-MM'."""
    return pd.DatetimeIndex(timestamps).strftime("%Y-%m").to_numpy()


def correlations(timestamps, test_mask, original_mean, avatar_mean) -> dict:
    """Pearson correlation per test month and overall."""
    months = month_labels(timestamps)
    per_month = {}
    for month in pd.unique(months[test_mask]):
        in_month = test_mask & (months == month)
        per_month[month] = {"steps": int(in_month.sum()),
                            "pearson": pearson(original_mean[in_month], avatar_mean[in_month])}
    overall = pearson(original_mean[test_mask], avatar_mean[test_mask])
    return {"overall": overall, "per_month": per_month}


def outside_interval_differences(test_mask, original_mean, original_low, original_high, avatar_mean) -> dict:
    """Normalized differences on test steps where the avatar mean leaves the original interval."""
    valid = test_mask & np.isfinite(original_mean) & np.isfinite(avatar_mean)
    outside = valid & ((avatar_mean < original_low) | (avatar_mean > original_high))
    difference = (avatar_mean[outside] - original_mean[outside]) / original_mean[outside]
    counts = {
        "near_zero": int(np.sum(np.abs(difference) <= NEAR_ZERO_LIMIT)),
        "false_positive_risk": int(np.sum(difference > NEAR_ZERO_LIMIT)),
        "false_negative_risk": int(np.sum(difference < -NEAR_ZERO_LIMIT)),
    }
    return {"test_steps": int(valid.sum()), "outside_interval": int(outside.sum()),
            "classes": counts, "differences": difference}


def alerts_per_month(timestamps, test_mask, scores: dict[str, np.ndarray], thresholds: dict[str, float]) -> dict:
    """Alert counts and shares per test month for each model."""
    months = month_labels(timestamps)
    table = {}
    for month in pd.unique(months[test_mask]):
        in_month = test_mask & (months == month)
        steps = int(np.sum(in_month & np.isfinite(next(iter(scores.values())))))
        row = {"steps": steps}
        for name, score in scores.items():
            count = int(np.sum(score[in_month] > thresholds[name]))
            row[name] = {"alerts": count, "share": count / steps if steps else float("nan")}
        table[month] = row
    return table


def steps_inside_windows(timestamps, windows: list[tuple[str, str]], mask: np.ndarray) -> list[int]:
    """Count, for each labelled window [start, end] (bounds inclusive), the steps inside it where mask is true."""
    times = pd.DatetimeIndex(timestamps)
    mask = np.asarray(mask, dtype=bool)
    counts = []
    for start, end in windows:
        inside = (times >= pd.Timestamp(start)) & (times <= pd.Timestamp(end))
        counts.append(int(np.sum(inside & mask)))
    return counts


def labelled_windows(timestamps, windows: list[tuple[str, str]], scores: dict[str, np.ndarray],
                     thresholds: dict[str, float], test_mask: np.ndarray | None = None) -> list[dict]:
    """For each labelled anomaly window: its steps, whether it overlaps the test steps, and each model's result.

    Only the window's test steps count: "alert" is whether the model's score exceeds its
    threshold at one of them, and "peak_score" is their maximum score. A window without test
    steps ("in_test" false) gets alert None and peak_score NaN, because it is no test result.
    test_mask None makes every step a test step.
    """
    times = pd.DatetimeIndex(timestamps)
    test_mask = np.ones(len(times), dtype=bool) if test_mask is None else np.asarray(test_mask, dtype=bool)
    rows = []
    for start, end in windows:
        inside = (times >= pd.Timestamp(start)) & (times <= pd.Timestamp(end))
        tested = inside & test_mask
        row = {"start": str(pd.Timestamp(start)), "end": str(pd.Timestamp(end)), "steps": int(inside.sum()),
               "test_steps": int(tested.sum()), "in_test": bool(tested.any())}
        for name, score in scores.items():
            values = score[tested]
            finite = values[np.isfinite(values)]
            if finite.size == 0:
                row[name] = {"alert": None, "peak_score": float("nan")}
                continue
            peak = float(finite.max())
            row[name] = {"alert": bool(peak > thresholds[name]), "peak_score": peak}
        rows.append(row)
    return rows
