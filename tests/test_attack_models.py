"""Inference, membership and singling-out attacks on hand-built sets whose success rates are known."""

import numpy as np
import pytest

from avatarjax.errors import InputDataError
from avatarjax.metrics.attacks import closest_avatar_distances, inference, inference_baseline, membership


def test_inference_exact_copies_always_succeed():
    rng = np.random.default_rng(0)
    known = rng.normal(size=(200, 6))
    secret = rng.normal(size=200)
    result = inference(known, secret, known, secret, tolerance=1e-9)
    assert result.successes == 200
    assert result.trials == 200


def test_inference_counts_guesses_within_tolerance():
    # Each original's closest avatar is avatar i; avatar secrets are off by 0, 0.5, 1, 1.5, ...
    known = np.arange(10, dtype=float)[:, None] * 100.0
    secret = np.zeros(10)
    avatar_secret = np.arange(10) * 0.5
    result = inference(known, secret, known, avatar_secret, tolerance=1.0)
    assert result.successes == 3  # errors 0, 0.5 and 1.0 are within 1.0
    assert result.rate == pytest.approx(0.3)


def test_inference_baseline_matches_share_within_tolerance():
    # Avatar secrets 0..99 and original secrets 0: a random avatar is within 4.5 for 5 of 100.
    result = inference_baseline(np.zeros(20_000), np.arange(100.0), tolerance=4.5, key_seed=1)
    assert result.rate == pytest.approx(0.05, abs=0.01)


def test_inference_mismatched_rows_rejected():
    with pytest.raises(InputDataError, match="one secret per original"):
        inference(np.zeros((5, 2)), np.zeros(4), np.zeros((5, 2)), np.zeros(5), tolerance=1.0)
    with pytest.raises(InputDataError, match="positive distance"):
        inference(np.zeros((5, 2)), np.zeros(5), np.zeros((5, 2)), np.zeros(5), tolerance=0.0)


def test_closest_avatar_distances_by_hand():
    segments = np.array([[0.0, 0.0], [3.0, 4.0]])
    avatars = np.array([[0.0, 1.0], [3.0, 0.0], [10.0, 10.0]])
    assert np.allclose(closest_avatar_distances(segments, avatars), [1.0, 4.0])


def test_membership_separated_distances_full_risk():
    targets, controls, threshold = membership(np.full(50, 0.1), np.full(50, 5.0))
    assert threshold == pytest.approx(2.55)
    assert targets.rate == 1.0
    assert controls.rate == 0.0


def test_membership_same_distances_no_advantage():
    distances = np.linspace(0.0, 1.0, 101)
    targets, controls, _ = membership(distances, distances)
    assert targets.rate == controls.rate


def test_curve_features_by_hand():
    from avatarjax.metrics.singling_out import curve_features

    features = curve_features(np.array([[1.0, 3.0, 5.0, 7.0]]))
    assert np.allclose(features, [[4.0, np.sqrt(5.0), 1.0, 7.0, 2.0, 6.0]])


def test_singling_out_avatars_as_targets_always_succeed():
    from avatarjax.metrics.singling_out import singling_out

    rng = np.random.default_rng(0)
    avatars = rng.normal(size=(300, 6))
    # Targets are the avatars themselves: a predicate that isolates one avatar isolates one target.
    far_controls = rng.normal(size=(300, 6)) * 0.01
    targets, controls, baseline = singling_out(avatars, far_controls, avatars, n_queries=200)
    assert targets.rate == 1.0
    assert targets.trials == 200
    assert controls.rate < 0.5
    assert 0.0 <= baseline.rate <= 1.0


def test_singling_out_same_population_no_advantage():
    from avatarjax.metrics.singling_out import singling_out

    rng = np.random.default_rng(1)
    avatars, targets, controls = (rng.normal(size=(2000, 6)) for _ in range(3))
    on_targets, on_controls, _ = singling_out(targets[:500], controls[:500], avatars, n_queries=400)
    assert abs(on_targets.rate - on_controls.rate) < 0.1


def test_singling_out_shape_mismatch_rejected():
    from avatarjax.metrics.singling_out import singling_out

    with pytest.raises(InputDataError, match="sample as many targets as controls"):
        singling_out(np.zeros((10, 6)), np.zeros((12, 6)), np.zeros((50, 6)))


def test_wilson_ends_exact_at_zero_and_all():
    from avatarjax.metrics.attacks import wilson_interval

    assert wilson_interval(0, 500)[0] == 0.0
    assert wilson_interval(500, 500)[1] == 1.0
