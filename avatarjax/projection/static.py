"""PCA, MCA and FAMD of static variables (one row per individual), with an exact inverse.

The method follows from the column types: all numeric gives PCA, all categorical gives MCA,
and a mix gives FAMD. Each is one SVD of a centred and scaled table, with the conventions
of Octopize's saiph package (version 3.0.2, saiph/reduction/{pca,mca,famd}.py):
- a numeric column x becomes (x - mean) / std, with the population std (ddof = 0) and a
  constant column divided by 1;
- in FAMD, the 0/1 indicator d of a level of frequency p becomes (d - p) / sqrt(p);
- in MCA, it becomes (d - p) / sqrt(q p), with q the number of categorical columns. These
  are the principal row coordinates of correspondence analysis of the indicator table. saiph
  computes them from the uncentred row profiles d / q, which gives the same values on every
  component of non-zero variance, because those components are orthogonal to the centroid.
Coordinates are the scaled rows times the right singular vectors, so they are dimensionless
(a numeric column counts in units of its std). The inverse multiplies by the components,
undoes the scaling, and recovers each categorical column as the level with the largest
reconstructed indicator value d. saiph's MCA inverse (saiph/inverse_transform.py) takes the
largest d - p instead, which favours rare levels when components are left out. Here p is
added back in MCA as in FAMD, so both give the same level rule.

NOTE: transform and inverse_transform run in float32, like the rest of the pipeline. So a
numeric column whose mean is much larger than its std (a timestamp in seconds, for instance)
loses precision. Subtract an offset from such a column before fitting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from avatarjax.errors import InputDataError
from avatarjax.projection.static_table import (
    TableLayout,
    as_frame,
    check_same_columns,
    check_table,
    decode_table,
    describe_table,
    encode_table,
)

# A std at or below this is treated as 0, as saiph does with sys.float_info.min.
_ZERO_STD = np.finfo(np.float64).tiny


@partial(jax.tree_util.register_dataclass,
         data_fields=["center", "scale", "components", "explained_variance", "explained_variance_ratio"],
         meta_fields=["method", "layout"])
@dataclass(frozen=True)
class StaticProjection:
    """A fitted PCA, MCA or FAMD: column scaling, components and the table layout to decode."""

    center: jax.Array  # (m,), per encoded column: the numeric mean, or the level frequency p
    scale: jax.Array  # (m,), per encoded column: std (1 if constant), sqrt(p) (FAMD) or sqrt(q p) (MCA)
    components: jax.Array  # (ncp, m), orthonormal rows: right singular vectors of the scaled table
    # (ncp,), variance of each coordinate over the fit rows (divided by n - 1). saiph's
    # explained_var is this divided by n^2 (PCA, FAMD) or n^3 (MCA), because of how it weights rows.
    explained_variance: jax.Array
    explained_variance_ratio: jax.Array  # (ncp,), share of the total variance of the scaled table
    method: str  # "pca", "mca" or "famd"
    layout: TableLayout  # column names, dtypes and levels, for encoding and decoding

    @property
    def ncp(self) -> int:
        return self.components.shape[0]


def choose_method(layout: TableLayout) -> str:
    """Return "pca" for numeric columns only, "mca" for categorical only, "famd" for a mix."""
    if not layout.categorical:
        return "pca"
    if not layout.numeric:
        return "mca"
    return "famd"


def available_dimensions(layout: TableLayout, n_rows: int) -> int:
    """Return the largest useful ncp: the maximum rank of the centred, scaled table.

    The indicators of one categorical column sum to 1 in every row, so once centred they span
    one dimension less than the column's number of levels. And n centred rows span at most n - 1.
    """
    n_levels = sum(len(levels) for levels in layout.levels)
    return min(n_rows - 1, len(layout.numeric) + n_levels - len(layout.categorical))


def _centers_and_scales(encoded: np.ndarray, layout: TableLayout, method: str) -> tuple[np.ndarray, np.ndarray]:
    center = encoded.mean(axis=0)
    n_numeric = len(layout.numeric)

    std = encoded[:, :n_numeric].std(axis=0)
    numeric_scale = np.where(std <= _ZERO_STD, 1.0, std)

    # Every observed level has p >= 1/n > 0, so these scales are never 0.
    frequency = center[n_numeric:]
    if method == "mca":
        level_scale = np.sqrt(len(layout.categorical) * frequency)
    else:
        level_scale = np.sqrt(frequency)
    return center, np.concatenate([numeric_scale, level_scale])


def _check_ncp(ncp: int, maximum: int, layout: TableLayout, n_rows: int) -> None:
    if isinstance(ncp, bool) or not isinstance(ncp, (int, np.integer)) or ncp < 1:
        raise InputDataError(f"ncp={ncp!r} is invalid. Pass a positive integer number of components.")
    if ncp > maximum:
        n_levels = sum(len(levels) for levels in layout.levels)
        raise InputDataError(
            f"ncp={ncp} exceeds the {maximum} dimensions available: min(n - 1, numeric columns + levels "
            f"- categorical columns) = min({n_rows - 1}, {len(layout.numeric)} + {n_levels} - "
            f"{len(layout.categorical)}). Pass ncp <= {maximum}, or ncp=None to keep them all."
        )


@jax.jit
def _singular_decomposition(scaled):
    """Return the singular values and right singular vectors of the scaled table (n, m)."""
    _, singular, right = jnp.linalg.svd(scaled, full_matrices=False)
    return singular, right


def fit_static(data, ncp: int | None = None) -> StaticProjection:
    """Fit PCA, MCA or FAMD (chosen from the column types) on a table of static variables.

    `data` is a DataFrame (or a mapping of column names to 1-D arrays) with one row per
    individual. ncp=None keeps every available dimension, which makes the inverse exact.
    Raises InputDataError on missing values, a single-level categorical column, fewer than 2
    rows, or ncp outside [1, available_dimensions]. Each component's sign is fixed so that its
    largest absolute loading is positive.
    """
    frame = as_frame(data)
    check_table(frame, min_rows=2)
    layout = describe_table(frame)
    method = choose_method(layout)
    n_rows = len(frame)
    maximum = available_dimensions(layout, n_rows)
    ncp = maximum if ncp is None else ncp
    _check_ncp(ncp, maximum, layout, n_rows)

    encoded = encode_table(layout, frame)
    center, scale = _centers_and_scales(encoded, layout, method)
    scaled = jnp.asarray((encoded - center) / scale, dtype=jnp.float32)
    singular, right = _singular_decomposition(scaled)

    variance = np.asarray(singular, dtype=np.float64) ** 2 / (n_rows - 1)
    total = variance.sum()
    # A table of constant numeric columns has no variance: every ratio is 0, not 0 / 0.
    ratio = variance / total if total > 0 else np.zeros_like(variance)

    components = right[:ncp]
    peak = jnp.take_along_axis(components, jnp.argmax(jnp.abs(components), axis=1)[:, None], axis=1)
    components = components * jnp.where(peak < 0, -1.0, 1.0)
    return StaticProjection(
        center=jnp.asarray(center, dtype=jnp.float32),
        scale=jnp.asarray(scale, dtype=jnp.float32),
        components=components,
        explained_variance=jnp.asarray(variance[:ncp], dtype=jnp.float32),
        explained_variance_ratio=jnp.asarray(ratio[:ncp], dtype=jnp.float32),
        method=method,
        layout=layout,
    )


def encode(projection: StaticProjection, data) -> jax.Array:
    """Check a table against the fitted layout and return it encoded, (n, m) float32.

    The encoded table contains the numeric values, then one 0/1 indicator per fitted level. It is
    the array input of the jittable `transform`.
    """
    frame = as_frame(data)
    check_table(frame, min_rows=1)
    check_same_columns(projection.layout, frame)
    return jnp.asarray(encode_table(projection.layout, frame), dtype=jnp.float32)


def transform(projection: StaticProjection, data) -> jax.Array:
    """Project a table (DataFrame, or an array from `encode`) to coordinates (n, ncp).

    With an encoded array, this function is jittable.
    """
    if isinstance(data, (pd.DataFrame, Mapping)):
        data = encode(projection, data)
    return _project(projection, data)


@jax.jit
def _project(projection: StaticProjection, encoded) -> jax.Array:
    scaled = (jnp.asarray(encoded, jnp.float32) - projection.center) / projection.scale
    return scaled @ projection.components.T


@jax.jit
def reconstruct_encoded(projection: StaticProjection, coordinates) -> jax.Array:
    """Map coordinates (n, ncp) back to the encoded table (n, m), undoing the column scaling.

    Numeric columns come back on their original scale and level indicators on the 0/1 scale
    (a reconstructed indicator can fall outside [0, 1] when components are left out).
    """
    scaled = jnp.asarray(coordinates, jnp.float32) @ projection.components
    return scaled * projection.scale + projection.center


@jax.jit
def reconstruct(projection: StaticProjection, coordinates) -> tuple[jax.Array, jax.Array]:
    """Map coordinates (n, ncp) back to numeric values (n, numeric columns) and level codes.

    The level code of each categorical column (n, categorical columns), int32, indexes
    `layout.levels` and is the level with the largest reconstructed indicator value. A tie
    goes to the first level in that order.
    """
    encoded = reconstruct_encoded(projection, coordinates)
    n_numeric = len(projection.layout.numeric)
    codes = [jnp.argmax(encoded[:, block], axis=1) for block in projection.layout.level_slices()]
    codes = jnp.stack(codes, axis=1) if codes else jnp.zeros((encoded.shape[0], 0), jnp.int32)
    return encoded[:, :n_numeric], codes.astype(jnp.int32)


def inverse_transform(projection: StaticProjection, coordinates) -> pd.DataFrame:
    """Map coordinates (n, ncp) back to a DataFrame with the fitted column names, dtypes and levels.

    With all available components, this recovers the fitted rows up to float32 rounding
    (integer columns are rounded to the nearest integer). The index is a new RangeIndex.
    """
    coordinates = jnp.asarray(coordinates, jnp.float32)
    if coordinates.ndim != 2 or coordinates.shape[1] != projection.ncp:
        raise InputDataError(
            f"coordinates must have shape (n, {projection.ncp}), got {tuple(coordinates.shape)}. "
            "Pass the output of transform, or avatars in the same coordinates."
        )
    numeric_values, codes = reconstruct(projection, coordinates)
    return decode_table(projection.layout, np.asarray(numeric_values, np.float64), np.asarray(codes))
