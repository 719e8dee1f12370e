"""DCT and real Fourier projections: orthonormal bases, exact inversion, agreement with scipy and numpy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft

from avatarjax.config import AnonymizeConfig, AvatarConfig, ProjectionConfig, SegmentationConfig
from avatarjax.errors import InputDataError
from avatarjax.pipeline import anonymize_series
from avatarjax.projection.fixed_basis import dct_basis, fit_fixed_basis, fourier_basis
from avatarjax.projection.fpca import inverse_transform, transform


@pytest.mark.parametrize("basis_of", [dct_basis, fourier_basis])
@pytest.mark.parametrize("n_points", [7, 8, 72])
def test_basis_orthonormal_under_rectangle_rule(basis_of, n_points):
    basis = basis_of(n_points)
    assert basis.shape == (n_points, n_points)
    np.testing.assert_allclose(basis @ basis.T / n_points, np.eye(n_points), atol=1e-12)


@pytest.mark.parametrize("method", ["dct", "fourier"])
def test_full_basis_inverts_exactly(method, real_segments):
    projection = fit_fixed_basis(real_segments, method, ncp=real_segments.shape[1])
    assert projection.method == method
    rebuilt = np.asarray(inverse_transform(projection, transform(projection, real_segments)))
    np.testing.assert_allclose(rebuilt, real_segments, atol=2e-3)
    assert float(np.sum(np.asarray(projection.explained_variance_ratio))) == pytest.approx(1.0, abs=1e-5)


def test_dct_scores_match_scipy(real_segments):
    n_points = real_segments.shape[1]
    projection = fit_fixed_basis(real_segments, "dct", ncp=10)
    centred = real_segments - real_segments.mean(axis=0)
    expected = scipy.fft.dct(centred, type=2, norm="ortho", axis=1)[:, :10] / np.sqrt(n_points)
    np.testing.assert_allclose(np.asarray(transform(projection, real_segments)), expected, atol=2e-3)


def test_fourier_scores_match_numpy(real_segments):
    n_points = real_segments.shape[1]
    projection = fit_fixed_basis(real_segments, "fourier", ncp=5)
    centred = real_segments - real_segments.mean(axis=0)
    spectrum = np.fft.rfft(centred, axis=1)
    scale = np.sqrt(2.0) / n_points
    expected = np.column_stack([spectrum[:, 0].real / n_points,
                                scale * spectrum[:, 1].real, -scale * spectrum[:, 1].imag,
                                scale * spectrum[:, 2].real, -scale * spectrum[:, 2].imag])
    np.testing.assert_allclose(np.asarray(transform(projection, real_segments)), expected, atol=2e-3)


def test_variance_share_keeps_leading_functions(real_segments):
    full = fit_fixed_basis(real_segments, "dct", ncp=None, variance_share=1.0)
    cumulative = np.cumsum(np.asarray(full.explained_variance_ratio))
    chosen = fit_fixed_basis(real_segments, "dct", ncp=None, variance_share=0.95)
    assert cumulative[chosen.ncp - 1] >= 0.95 - 1e-6
    assert cumulative[chosen.ncp - 2] < 0.95


def test_fixed_basis_rejects_bad_input():
    with pytest.raises(InputDataError, match="at least 2 curves"):
        fit_fixed_basis(np.ones((1, 8)), "dct")
    with pytest.raises(InputDataError, match="NaN"):
        fit_fixed_basis(np.array([[1.0, np.nan], [2.0, 3.0]]), "dct")
    with pytest.raises(InputDataError, match="'wavelet' is unknown"):
        fit_fixed_basis(np.ones((3, 8)), "wavelet")


@pytest.mark.parametrize("method", ["dct", "fourier"])
def test_pipeline_runs_with_fixed_basis(method, machine_temperature):
    cfg = AnonymizeConfig(segmentation=SegmentationConfig(window="6h", stride=12),
                          projection=ProjectionConfig(method=method, ncp=10), avatar=AvatarConfig(k=10))
    result = anonymize_series(machine_temperature, cfg, progress=False)
    run = result.metrics["run"]
    assert run["projection"] == method
    assert run["quadrature"] == "rectangle"
    assert run["ncp"] == 10
    assert 0.5 < run["explained_variance_share"] <= 1.0
    assert result.metrics["privacy"]["hidden_rate"]["value"] is not None
    assert result.avatar_segments.shape == result.original_segments.shape
