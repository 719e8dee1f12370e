"""Projections on a fixed orthonormal basis: discrete cosine transform (DCT-II) and real Fourier.

Unlike FPCA, the basis does not depend on the data: the mean curve is removed and each
centred curve is expanded on the first `ncp` basis functions in frequency order (the
constant first, then rising frequencies). Keeping the low frequencies is the usual way to
compress smooth signals with these transforms, and needs no fit beyond the mean.

The result is an `FPCA` object with `method` "dct" or "fourier", so transform and
inverse_transform of avatarjax/projection/fpca.py apply unchanged. Each basis function has
mean square 1 over the T points and the quadrature weights are the rectangle rule 1/T, so the
functions are orthonormal in sum_t w_t f_t g_t. A score is then the discrete L2 inner product over
normalized time, in the unit of the values, as for FPCA.

Explained variance of basis function j: the variance of its scores over the curves, and its
ratio to the total variance of the centred curves (the energy share a truncation keeps).

Bases (T points, t = 0..T-1):
- DCT-II: b_0 = 1, b_k(t) = sqrt(2) cos(pi k (t + 1/2) / T) for k >= 1.
- Real Fourier: b_0 = 1, then for k = 1, 2, ...: sqrt(2) cos(2 pi k t / T) and
  sqrt(2) sin(2 pi k t / T); for even T the last function is cos(pi t) (the Nyquist term).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from avatarjax.errors import InputDataError
from avatarjax.projection.fpca import FPCA, _choose_ncp

BASES = ("dct", "fourier")


def dct_basis(n_points: int) -> np.ndarray:
    """Return the (T, T) DCT-II basis, one function per row, with mean square 1 over the T points."""
    t = np.arange(n_points)
    k = np.arange(n_points)[:, None]
    basis = np.sqrt(2.0) * np.cos(np.pi * k * (t + 0.5) / n_points)
    basis[0] = 1.0
    return basis


def fourier_basis(n_points: int) -> np.ndarray:
    """Return the (T, T) real Fourier basis, one function per row, with mean square 1 over the T points."""
    t = np.arange(n_points)
    rows = [np.ones(n_points)]
    frequency = 1
    while len(rows) < n_points:
        angle = 2.0 * np.pi * frequency * t / n_points
        if 2 * frequency == n_points:
            rows.append(np.cos(angle))  # Nyquist term: cos(pi t) = (-1)^t, already of mean square 1
        else:
            rows.append(np.sqrt(2.0) * np.cos(angle))
            if len(rows) < n_points:
                rows.append(np.sqrt(2.0) * np.sin(angle))
        frequency += 1
    return np.stack(rows)


def _basis(method: str, n_points: int) -> np.ndarray:
    if method == "dct":
        return dct_basis(n_points)
    if method == "fourier":
        return fourier_basis(n_points)
    raise InputDataError(f"basis {method!r} is unknown; choose one of {', '.join(BASES)}.")


@jax.jit
def _centred_scores(curves, basis):
    mean = curves.mean(axis=0)
    return mean, (curves - mean) @ basis.T / basis.shape[1]


def fit_fixed_basis(curves, method: str = "dct", ncp: int | None = 20,
                    variance_share: float | None = None) -> FPCA:
    """Expand curves (n, T) on the first ncp functions of the `method` basis (dct or fourier).

    With variance_share set, keep the fewest leading functions whose scores reach that share
    of the total variance (at most ncp). ncp is capped at T with a warning.
    """
    curves = jnp.asarray(curves, dtype=jnp.float32)
    if curves.ndim != 2:
        raise InputDataError(f"the {method} projection expects curves as a 2-D array (n, T); got shape {curves.shape}.")
    n, n_points = curves.shape
    if n < 2:
        raise InputDataError(f"the {method} projection needs at least 2 curves; got {n}.")
    if not bool(jnp.all(jnp.isfinite(curves))):
        raise InputDataError(f"the {method} projection input contains NaN or infinite values; clean or interpolate them first.")

    basis = _basis(method, n_points)
    mean, scores = _centred_scores(curves, jnp.asarray(basis, dtype=jnp.float32))
    variance = np.asarray(scores, dtype=np.float64).var(axis=0, ddof=1)
    total = variance.sum()
    ratio = variance / total if total > 0 else np.zeros_like(variance)
    # Leading functions in frequency order: the share reached is cumulative in that order.
    n_kept = _choose_ncp(ncp, variance_share, ratio, n_points)
    return FPCA(
        mean=mean,
        components=jnp.asarray(basis[:n_kept], dtype=jnp.float32),
        weights=jnp.full((n_points,), 1.0 / n_points, dtype=jnp.float32),
        explained_variance=jnp.asarray(variance[:n_kept], dtype=jnp.float32),
        explained_variance_ratio=jnp.asarray(ratio[:n_kept], dtype=jnp.float32),
        method=method,
    )
