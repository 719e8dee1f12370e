"""Utility metrics: how closely the avatar segments reproduce the originals' distributions.

Choices where the white paper publishes no detail:
- Pointwise Hellinger distance: all values of all segments, 100 equal-width bins spanning the
  joint range of originals and avatars; H = sqrt(1 - sum sqrt(p q)). Identical ranges of a
  single value (a constant data set) give one bin and H = 0.
- Per-series entropy: Shannon entropy in nats of a 20-bin histogram spanning the series'
  own [min, max]; a constant series has all values in one bin, so entropy 0.
- Per-series autocorrelation at lag 10: sum((x_t - m)(x_{t+10} - m)) / sum((x_t - m)^2),
  with m the series mean; a constant series has no variance and gets 0.
- Relative difference in %: 100 |avatar average - original average| / |original average|;
  0 when both are 0, undefined (NaN, shown as n/a) when only the original average is 0.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from avatarjax.metrics.targets import UTILITY_TARGETS, metric_entry

HELLINGER_BINS = 100
ENTROPY_BINS = 20
AUTOCORRELATION_LAG = 10


@partial(jax.jit, static_argnames="bins")
def _histogram(values, valid, low, high, bins: int):
    """Counts of the valid rows' values in `bins` equal-width bins of [low, high]; high falls in the last bin."""
    position = jnp.floor((values - low) / (high - low) * bins).astype(jnp.int32)
    weights = jnp.broadcast_to(valid[:, None], values.shape).astype(jnp.float32)
    return jnp.bincount(jnp.clip(position, 0, bins - 1).ravel(), weights=weights.ravel(), length=bins)


def _row_blocks(values: np.ndarray):
    """Yield (block, valid) pairs of FEATURE_BLOCK_ROWS float32 rows, zero-padded, with a mask of real rows."""
    n, length = values.shape
    rows = min(FEATURE_BLOCK_ROWS, n)
    for start in range(0, n, rows):
        block = np.zeros((rows, length), np.float32)
        part = values[start:start + rows]
        block[:part.shape[0]] = part
        yield jnp.asarray(block), jnp.asarray(np.arange(rows) < part.shape[0])


def _blocked_histogram(values: np.ndarray, low: float, high: float, bins: int) -> np.ndarray:
    counts = np.zeros(bins)
    for block, valid in _row_blocks(values):
        counts += np.asarray(_histogram(block, valid, low, high, bins), np.float64)
    return counts


def hellinger_distance(original_values, avatar_values, bins: int = HELLINGER_BINS) -> float:
    """Hellinger distance between the histograms of two sets of values on shared bins.

    Values are binned in float32, in blocks of rows, so memory does not grow with their number.
    """
    original_values = np.asarray(original_values, np.float32)
    avatar_values = np.asarray(avatar_values, np.float32)
    low = float(min(original_values.min(), avatar_values.min()))
    high = float(max(original_values.max(), avatar_values.max()))
    if not high > low:
        return 0.0
    p = _blocked_histogram(original_values.reshape(original_values.shape[0], -1), low, high, bins)
    q = _blocked_histogram(avatar_values.reshape(avatar_values.shape[0], -1), low, high, bins)
    p = p / p.sum()
    q = q / q.sum()
    affinity = np.sum(np.sqrt(p * q))
    return float(np.sqrt(max(1.0 - affinity, 0.0)))


def _entropy_one(series):
    low, high = series.min(), series.max()
    width = jnp.where(high > low, high - low, 1.0)
    position = jnp.floor((series - low) / width * ENTROPY_BINS).astype(jnp.int32)
    position = jnp.clip(position, 0, ENTROPY_BINS - 1)
    counts = jnp.zeros(ENTROPY_BINS).at[position].add(1.0)
    p = counts / series.shape[0]
    return -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0))


def _autocorrelation_one(series):
    centred = series - series.mean()
    denominator = jnp.sum(centred ** 2)
    numerator = jnp.sum(centred[:-AUTOCORRELATION_LAG] * centred[AUTOCORRELATION_LAG:])
    return jnp.where(denominator > 0, numerator / jnp.where(denominator > 0, denominator, 1.0), 0.0)


# Rows per block of the feature sums: 4 096 rows of 288 steps are 4.7 MB of float32, so memory
# stays flat in n and every block has the same shape (one compiled program).
FEATURE_BLOCK_ROWS = 4096


@jax.jit
def _feature_sums(segments, valid) -> dict:
    """Sums over the valid rows of one block of each per-series feature (float32 per block)."""
    features = {
        "mean": segments.mean(axis=1),
        "min": segments.min(axis=1),
        "max": segments.max(axis=1),
        "sum": segments.sum(axis=1),
        "entropy": jax.vmap(_entropy_one)(segments),
    }
    if segments.shape[1] > AUTOCORRELATION_LAG:
        features["autocorrelation_lag10"] = jax.vmap(_autocorrelation_one)(segments)
    return {name: jnp.sum(jnp.where(valid, values, 0.0)) for name, values in features.items()}


def series_features(segments) -> dict:
    """Average over series (rows of `segments`) of mean, min, max, sum, entropy and lag-10 autocorrelation.

    Each feature is computed in float32 per series; the block sums are added in float64.
    """
    segments = np.asarray(segments)
    totals: dict[str, float] = {}
    for block, valid in _row_blocks(segments):
        for name, value in _feature_sums(block, valid).items():
            totals[name] = totals.get(name, 0.0) + float(value)
    return {name: total / segments.shape[0] for name, total in totals.items()}


def relative_difference(original: float, avatar: float) -> float:
    """Relative difference in %, 0 when both are 0 and NaN when only the original is 0."""
    if original == 0.0:
        return 0.0 if avatar == 0.0 else float("nan")
    return abs(avatar - original) / abs(original) * 100.0


def utility_metrics(original_segments, avatar_segments) -> dict:
    """Compute the Hellinger distance and the per-series feature differences, with their targets."""
    original_features = {k: float(v) for k, v in series_features(original_segments).items()}
    avatar_features = {k: float(v) for k, v in series_features(avatar_segments).items()}
    metrics = {"hellinger": metric_entry(UTILITY_TARGETS["hellinger"],
                                         hellinger_distance(original_segments, avatar_segments))}
    for name in UTILITY_TARGETS:
        if name == "hellinger":
            continue
        if name not in original_features:
            metrics[name] = metric_entry(UTILITY_TARGETS[name], float("nan"))
            continue
        entry = metric_entry(UTILITY_TARGETS[name], relative_difference(original_features[name], avatar_features[name]))
        entry["original_average"] = original_features[name]
        entry["avatar_average"] = avatar_features[name]
        metrics[name] = entry
    return metrics
