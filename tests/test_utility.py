import numpy as np
import pytest
from scipy.stats import entropy as scipy_entropy

from avatarjax.metrics.utility import (hellinger_distance, relative_difference, series_features,
                                       utility_metrics)


def test_hellinger_identical_zero(real_segments):
    assert hellinger_distance(real_segments, real_segments) == pytest.approx(0.0, abs=1e-3)


def test_hellinger_disjoint_one():
    assert hellinger_distance(np.zeros(100), np.ones(100)) == pytest.approx(1.0)


def test_hellinger_matches_numpy(real_segments):
    original = real_segments[:500]
    avatar = real_segments[500:1000]
    low = min(original.min(), avatar.min())
    high = max(original.max(), avatar.max())
    p, _ = np.histogram(original, bins=100, range=(low, high))
    q, _ = np.histogram(avatar, bins=100, range=(low, high))
    expected = np.sqrt(1 - np.sum(np.sqrt(p / p.sum() * q / q.sum())))
    assert hellinger_distance(original, avatar) == pytest.approx(expected, abs=1e-4)


def test_hellinger_constant_values():
    assert hellinger_distance(np.full(50, 3.0), np.full(50, 3.0)) == 0.0


def test_entropy_matches_scipy(real_segments):
    rows = real_segments[:50]
    expected = np.mean([scipy_entropy(np.histogram(row, bins=20, range=(row.min(), row.max()))[0]) for row in rows])
    assert float(series_features(rows)["entropy"]) == pytest.approx(expected, rel=1e-4)


def test_autocorrelation_matches_numpy(real_segments):
    rows = real_segments[:50].astype(np.float64)
    centred = rows - rows.mean(axis=1, keepdims=True)
    expected = np.mean((centred[:, :-10] * centred[:, 10:]).sum(1) / (centred ** 2).sum(1))
    assert float(series_features(rows)["autocorrelation_lag10"]) == pytest.approx(expected, rel=1e-4)


def test_constant_series_finite():
    features = series_features(np.full((4, 40), 5.0))
    assert all(np.isfinite(float(value)) for value in features.values())
    assert float(features["entropy"]) == 0.0
    assert float(features["autocorrelation_lag10"]) == 0.0


def test_relative_difference_zero_cases():
    assert relative_difference(0.0, 0.0) == 0.0
    assert np.isnan(relative_difference(0.0, 1.0))
    assert relative_difference(2.0, 2.2) == pytest.approx(10.0)


def test_metrics_identical_data_all_met(real_segments):
    metrics = utility_metrics(real_segments, real_segments)
    assert all(entry["meets"] for entry in metrics.values())
    assert metrics["mean"]["value"] == 0.0


def test_metrics_constant_zero_series():
    metrics = utility_metrics(np.zeros((5, 30)), np.zeros((5, 30)))
    assert metrics["hellinger"]["value"] == 0.0
    assert metrics["mean"]["value"] == 0.0


def test_metrics_shifted_data_fail(real_segments):
    metrics = utility_metrics(real_segments, real_segments * 1.2)
    assert metrics["mean"]["meets"] is False
    assert metrics["mean"]["value"] == pytest.approx(20.0, rel=1e-3)
