"""Inference and membership attacks on hand-built sets whose success rates are known.

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
