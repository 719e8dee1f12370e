"""Time normalization and linear resampling of segments onto a common grid.

Every segment's time axis is mapped to [0, 1] (first step at 0, last at 1) and the values are
linearly interpolated at `n_points` equally spaced points of [0, 1]. FPCA needs curves on one
grid. The same function maps avatars from the grid back to the window length for release.
"""

from __future__ import annotations

from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np

from avatarjax.errors import InputDataError


def normalized_grid(n_points: int) -> np.ndarray:
    """Equally spaced points of normalized time [0, 1], both ends included."""
    return np.linspace(0.0, 1.0, n_points)


@lru_cache(maxsize=16)
def interpolation_matrix(n_source: int, n_target: int) -> np.ndarray:
    """Matrix M (n_source, n_target) such that values @ M is the linear interpolation.

    Each column has at most two nonzero entries that sum to 1, so a constant segment stays
    exactly constant up to float rounding.
    """
    source = normalized_grid(n_source)
    target = normalized_grid(n_target)
    right = np.clip(np.searchsorted(source, target, side="right"), 1, n_source - 1)
    left = right - 1
    fraction = (target - source[left]) / (source[right] - source[left])
    matrix = np.zeros((n_source, n_target))
    matrix[left, np.arange(n_target)] = 1.0 - fraction
    matrix[right, np.arange(n_target)] += fraction
    return matrix


@jax.jit
def _apply(values, matrix):
    return values @ matrix


def resample(values, n_points: int):
    """Resample each row of `values` (n_segments, n_source) onto n_points of normalized time."""
    values = jnp.asarray(values, dtype=jnp.float32)
    if values.ndim != 2:
        raise InputDataError(f"resample expects segments as a 2-D array (n_segments, steps); got shape {values.shape}.")
    n_source = values.shape[1]
    if n_source < 2 or n_points < 2:
        raise InputDataError(
            f"resampling needs at least 2 points on both grids; got {n_source} steps and {n_points} grid points."
        )
    if n_source == n_points:
        return values
    return _apply(values, jnp.asarray(interpolation_matrix(n_source, n_points), dtype=jnp.float32))
