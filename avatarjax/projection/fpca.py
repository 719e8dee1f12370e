"""Functional PCA of curves on a common grid of normalized time [0, 1].

On a regular grid, FPCA is the PCA of the discretized curves in the L2 inner product
<f, g> = integral f(t) g(t) dt, approximated by quadrature weights w: <f, g> ~ sum_t w_t f_t g_t.
The centred curves are multiplied by sqrt(w) before the SVD and the eigenfunctions are
divided by sqrt(w) after it, so they are orthonormal in that inner product (Wang, Chiou &
Mueller, "Functional data analysis", Annual Review of Statistics and Its Application, 2016). The mean function is subtracted once, in `transform`; `inverse_transform` adds it back.

Units: a score is an L2 inner product over normalized time, so it has the unit of the values
(times the square root of normalized time, which is dimensionless). Euclidean distances
between score vectors therefore approximate L2 distances between curves in value units.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate import simpson

from avatarjax.errors import InputDataError
from avatarjax.resampling import normalized_grid

logger = logging.getLogger(__name__)


@partial(jax.tree_util.register_dataclass,
         data_fields=["mean", "components", "weights", "explained_variance", "explained_variance_ratio"],
         meta_fields=["method"])
@dataclass(frozen=True)
class FPCA:
    """A fitted linear projection of curves: mean function, orthonormal basis functions and their variance.

    `method` is "fpca" for the eigenfunctions of the data. avatarjax/projection/fixed_basis.py
    builds the same object on a fixed DCT or Fourier basis, so transform and
    inverse_transform serve every method.
    """

    mean: jax.Array  # (T,), mean curve in value units
    components: jax.Array  # (ncp, T), eigenfunctions, orthonormal: sum_t w_t phi_i phi_j = delta_ij
    weights: jax.Array  # (T,), quadrature weights on normalized time, summing to 1
    explained_variance: jax.Array  # (ncp,), variance of each score (divided by n - 1)
    explained_variance_ratio: jax.Array  # (ncp,), share of the total functional variance
    method: str = "fpca"

    @property
    def ncp(self) -> int:
        return self.components.shape[0]


def quadrature_weights(n_points: int, rule: str = "trapezoid") -> np.ndarray:
    """Quadrature weights of `rule` on n_points equally spaced points of [0, 1]."""
    grid = normalized_grid(n_points)
    if rule == "trapezoid":
        weights = np.full(n_points, 1.0 / (n_points - 1))
        weights[[0, -1]] *= 0.5
        return weights
    if rule == "simpson":
        # Simpson's rule is linear in the values, so integrating each unit vector gives its
        # weight. scipy handles an even number of points with a corrected end interval.
        return simpson(np.eye(n_points), x=grid, axis=1)
    raise InputDataError(f"quadrature rule {rule!r} is unknown; choose trapezoid or simpson.")


@jax.jit
def _weighted_svd(curves, sqrt_weights):
    """Return mean, singular values and right singular vectors of the weighted centred curves."""
    mean = curves.mean(axis=0)
    weighted = (curves - mean) * sqrt_weights
    if weighted.shape[0] > weighted.shape[1]:
        # Tall matrix: a QR first leaves an SVD of a T-by-T matrix, about 1.5 times faster on CPU.
        _, r = jnp.linalg.qr(weighted)
        _, singular, right = jnp.linalg.svd(r, full_matrices=False)
    else:
        _, singular, right = jnp.linalg.svd(weighted, full_matrices=False)
    return mean, singular, right


def _choose_ncp(ncp: int | None, variance_share: float | None, ratio: np.ndarray, maximum: int) -> int:
    if ncp is not None and ncp < 1:
        raise InputDataError(f"ncp={ncp} is invalid; keep at least 1 component.")
    limit = maximum if ncp is None else ncp
    if limit > maximum:
        logger.warning("ncp=%d exceeds min(n - 1, T) = %d; keeping %d components.", limit, maximum, maximum)
        limit = maximum
    if variance_share is None:
        return limit
    reached = int(np.searchsorted(np.cumsum(ratio), variance_share - 1e-12) + 1)
    return min(reached, limit)


def fit_fpca(curves, ncp: int | None = 20, variance_share: float | None = None,
             quadrature: str = "trapezoid") -> FPCA:
    """Fit FPCA on curves (n, T); keep `ncp` components or the fewest reaching `variance_share`.

    ncp is capped at min(n - 1, T) with a warning, because centred data has at most that rank.
    Each eigenfunction's sign is fixed so that its largest absolute value is positive.
    """
    curves = jnp.asarray(curves, dtype=jnp.float32)
    if curves.ndim != 2:
        raise InputDataError(f"FPCA expects curves as a 2-D array (n, T); got shape {curves.shape}.")
    n, n_points = curves.shape
    if n < 2:
        raise InputDataError(f"FPCA needs at least 2 curves; got {n}.")
    if not bool(jnp.all(jnp.isfinite(curves))):
        raise InputDataError("FPCA input contains NaN or infinite values; clean or interpolate them first.")

    weights = quadrature_weights(n_points, quadrature)
    sqrt_weights = jnp.asarray(np.sqrt(weights), dtype=jnp.float32)
    mean, singular, right = _weighted_svd(curves, sqrt_weights)

    variance = np.asarray(singular, dtype=np.float64) ** 2 / (n - 1)
    total = variance.sum()
    # A constant data set has no variance: every ratio is 0, not 0 / 0.
    ratio = variance / total if total > 0 else np.zeros_like(variance)
    n_kept = _choose_ncp(ncp, variance_share, ratio, min(n - 1, n_points))

    components = right[:n_kept] / sqrt_weights
    peak = jnp.take_along_axis(components, jnp.argmax(jnp.abs(components), axis=1)[:, None], axis=1)
    components = components * jnp.where(peak < 0, -1.0, 1.0)
    return FPCA(
        mean=mean,
        components=components,
        weights=jnp.asarray(weights, dtype=jnp.float32),
        explained_variance=jnp.asarray(variance[:n_kept], dtype=jnp.float32),
        explained_variance_ratio=jnp.asarray(ratio[:n_kept], dtype=jnp.float32),
    )


@jax.jit
def transform(fpca: FPCA, curves) -> jax.Array:
    """Project curves (n, T) onto the eigenfunctions: scores (n, ncp), the mean removed once."""
    return ((jnp.asarray(curves, jnp.float32) - fpca.mean) * fpca.weights) @ fpca.components.T


@jax.jit
def inverse_transform(fpca: FPCA, scores) -> jax.Array:
    """Map scores (n, ncp) back to curves (n, T) on the grid: mean + scores @ eigenfunctions."""
    return fpca.mean + jnp.asarray(scores, jnp.float32) @ fpca.components
