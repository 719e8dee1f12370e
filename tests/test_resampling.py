import numpy as np
import pytest

from avatarjax.errors import InputDataError
from avatarjax.resampling import interpolation_matrix, resample


def test_same_length_is_identity(real_segments):
    out = np.asarray(resample(real_segments, real_segments.shape[1]))
    assert np.array_equal(out, real_segments.astype(np.float32))


def test_linear_curve_exact():
    t = np.linspace(0.0, 1.0, 37)
    line = (3.0 * t - 1.0)[None, :]
    out = np.asarray(resample(line, 101))
    assert np.allclose(out[0], 3.0 * np.linspace(0.0, 1.0, 101) - 1.0, atol=1e-5)


def test_endpoints_kept(real_segments):
    out = np.asarray(resample(real_segments, 50))
    assert np.allclose(out[:, 0], real_segments[:, 0], rtol=1e-6)
    assert np.allclose(out[:, -1], real_segments[:, -1], rtol=1e-6)


def test_constant_curve_stays_constant():
    out = np.asarray(resample(np.full((3, 288), 42.5), 100))
    assert np.allclose(out, 42.5, rtol=1e-6)


def test_matrix_columns_sum_to_one():
    matrix = interpolation_matrix(288, 97)
    assert np.allclose(matrix.sum(axis=0), 1.0)


def test_matches_numpy_interp(real_segments):
    out = np.asarray(resample(real_segments[:5], 200))
    expected = np.stack([np.interp(np.linspace(0, 1, 200), np.linspace(0, 1, 72), row) for row in real_segments[:5]])
    assert np.allclose(out, expected, rtol=1e-5)


def test_rejects_one_point():
    with pytest.raises(InputDataError, match="at least 2 points"):
        resample(np.ones((4, 1)), 10)
