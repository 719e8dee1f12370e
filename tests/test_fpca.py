import logging
import warnings

import numpy as np
import pytest

from avatarjax.errors import InputDataError
from avatarjax.projection.fpca import fit_fpca, inverse_transform, quadrature_weights, transform


def test_round_trip_all_components(real_segments):
    fpca = fit_fpca(real_segments, ncp=real_segments.shape[1])
    back = np.asarray(inverse_transform(fpca, transform(fpca, real_segments)))
    scale = np.abs(real_segments).max()
    assert fpca.ncp == real_segments.shape[1]
    assert np.max(np.abs(back - real_segments)) < 1e-5 * scale


def test_mean_curve_scores_zero(real_segments):
    fpca = fit_fpca(real_segments, ncp=5)
    scores = np.asarray(transform(fpca, np.asarray(fpca.mean)[None, :]))
    assert np.allclose(scores, 0.0, atol=1e-3)


def test_scores_centred(real_segments):
    fpca = fit_fpca(real_segments, ncp=5)
    scores = np.asarray(transform(fpca, real_segments))
    assert np.allclose(scores.mean(axis=0), 0.0, atol=1e-2 * scores.std())


def test_eigenfunctions_orthonormal(real_segments):
    fpca = fit_fpca(real_segments, ncp=10)
    phi = np.asarray(fpca.components, dtype=np.float64)
    gram = (phi * np.asarray(fpca.weights)) @ phi.T
    assert np.allclose(gram, np.eye(10), atol=1e-4)


def test_score_variance_matches_explained(real_segments):
    fpca = fit_fpca(real_segments, ncp=5)
    scores = np.asarray(transform(fpca, real_segments), dtype=np.float64)
    assert np.allclose(scores.var(axis=0, ddof=1), np.asarray(fpca.explained_variance), rtol=1e-3)


def test_ncp_capped_with_warning(caplog):
    curves = np.random.default_rng(0).normal(size=(6, 40))
    with caplog.at_level(logging.WARNING):
        fpca = fit_fpca(curves, ncp=30)
    assert fpca.ncp == 5
    assert "exceeds min(n - 1, T)" in caplog.text


def test_variance_share_choice(real_segments):
    fpca = fit_fpca(real_segments, ncp=None, variance_share=0.9)
    cumulative = np.cumsum(np.asarray(fpca.explained_variance_ratio))
    assert cumulative[-1] >= 0.9 - 1e-6
    assert fpca.ncp == 1 or cumulative[-2] < 0.9


def test_rejects_ncp_zero(real_segments):
    with pytest.raises(InputDataError, match="ncp=0"):
        fit_fpca(real_segments, ncp=0)


def test_rejects_nan():
    curves = np.ones((5, 10))
    curves[2, 3] = np.nan
    with pytest.raises(InputDataError, match="NaN"):
        fit_fpca(curves, ncp=2)


def test_constant_data_no_nan():
    fpca = fit_fpca(np.full((20, 30), 7.0), ncp=3)
    assert np.all(np.isfinite(np.asarray(fpca.explained_variance_ratio)))
    assert np.all(np.isfinite(np.asarray(transform(fpca, np.full((2, 30), 7.0)))))


@pytest.mark.parametrize("rule", ["trapezoid", "simpson"])
def test_quadrature_integrates_polynomial(rule):
    weights = quadrature_weights(101, rule)
    t = np.linspace(0.0, 1.0, 101)
    assert np.isclose(weights.sum(), 1.0)
    assert np.isclose(weights @ t, 0.5)
    assert np.isclose(weights @ t ** 2, 1.0 / 3.0, atol=1e-4 if rule == "trapezoid" else 1e-10)


def test_matches_scikit_fda(real_segments):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from skfda import FDataGrid
        from skfda.preprocessing.dim_reduction import FPCA as ReferenceFPCA

    curves = real_segments[:400].astype(np.float64)
    grid = np.linspace(0.0, 1.0, curves.shape[1])
    reference = ReferenceFPCA(n_components=5)
    reference_scores = reference.fit_transform(FDataGrid(curves, grid_points=grid))
    reference_back = reference.inverse_transform(reference_scores).data_matrix[..., 0]

    fpca = fit_fpca(curves, ncp=5, quadrature="simpson")
    scores = np.asarray(transform(fpca, curves), dtype=np.float64)
    back = np.asarray(inverse_transform(fpca, scores), dtype=np.float64)

    signs = np.sign(np.sum(scores * reference_scores, axis=0))
    scale = np.abs(reference_scores).max()
    assert np.max(np.abs(scores * signs - reference_scores)) < 1e-4 * scale
    assert np.max(np.abs(back - reference_back)) < 1e-4 * np.abs(curves).max()
    assert np.allclose(np.asarray(fpca.explained_variance), reference.explained_variance_, rtol=1e-3)
