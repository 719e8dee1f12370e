import jax
import numpy as np
import pytest

from avatarjax.avatar import generate_avatars, neighbour_weights, release_order
from avatarjax.projection.fpca import fit_fpca, transform


@pytest.fixture(scope="module")
def coordinates(real_segments):
    fpca = fit_fpca(real_segments, ncp=6)
    return np.asarray(transform(fpca, real_segments))


def test_weights_sum_to_one():
    distances = np.abs(np.random.default_rng(0).normal(size=(100, 20))).astype(np.float32)
    for method in ("avatar", "dirichlet"):
        weights = np.asarray(neighbour_weights(jax.random.key(0), distances, method))
        assert np.allclose(weights.sum(axis=1), 1.0, atol=1e-5)
        assert np.all(weights >= 0)


def test_zero_distances_finite_weights():
    weights = np.asarray(neighbour_weights(jax.random.key(1), np.zeros((10, 9), np.float32), "avatar"))
    assert np.all(np.isfinite(weights))
    assert np.allclose(weights.sum(axis=1), 1.0, atol=1e-5)


def test_ten_identical_segments_finite_avatars():
    segments = np.tile(np.sin(np.linspace(0, 6, 50)), (10, 1))
    coords = np.asarray(transform(fit_fpca(segments, ncp=3), segments))
    avatars = generate_avatars(jax.random.key(2), coords, k=5)
    assert np.all(np.isfinite(np.asarray(avatars.coordinates)))
    assert np.all(np.isfinite(np.asarray(avatars.weights)))


def test_deterministic_for_seed(coordinates):
    first = generate_avatars(jax.random.key(7), coordinates, k=10)
    second = generate_avatars(jax.random.key(7), coordinates, k=10)
    assert np.array_equal(np.asarray(first.coordinates), np.asarray(second.coordinates))


def test_different_across_seeds(coordinates):
    first = generate_avatars(jax.random.key(7), coordinates, k=10)
    second = generate_avatars(jax.random.key(8), coordinates, k=10)
    assert not np.allclose(np.asarray(first.coordinates), np.asarray(second.coordinates))


def test_avatar_is_weighted_mean(coordinates):
    avatars = generate_avatars(jax.random.key(3), coordinates, k=4)
    i = 17
    index = np.asarray(avatars.neighbour_index[i])
    weights = np.asarray(avatars.weights[i])
    expected = weights @ coordinates[index]
    assert np.allclose(np.asarray(avatars.coordinates[i]), expected, rtol=1e-5, atol=1e-4)


def test_avatar_weights_match_numpy_simulation():
    # Equal distances make 1/d constant, so weights are Exp(1) * 2^-P normalized. The mean
    # sorted weights must match an independent numpy draw of the same rule.
    n, k = 40000, 3
    weights = np.asarray(neighbour_weights(jax.random.key(4), np.ones((n, k), np.float32), "avatar"))
    rng = np.random.default_rng(0)
    rank = np.argsort(rng.random((n, k)), axis=1) + 1
    raw = rng.exponential(size=(n, k)) * 2.0 ** -rank
    simulated = raw / raw.sum(axis=1, keepdims=True)
    assert np.allclose(np.sort(weights, axis=1).mean(axis=0), np.sort(simulated, axis=1).mean(axis=0), atol=0.01)


def test_dirichlet_weights_match_theory():
    # The largest of 3 Dirichlet(1, 1, 1) weights has mean (1 + 1/2 + 1/3) / 3.
    weights = np.asarray(neighbour_weights(jax.random.key(6), np.ones((40000, 3), np.float32), "dirichlet"))
    assert np.isclose(np.sort(weights, axis=1)[:, -1].mean(), (1 + 1 / 2 + 1 / 3) / 3, atol=0.01)


def test_inverse_distance_favours_close_neighbour():
    distances = np.tile(np.array([[0.1, 10.0]], np.float32), (5000, 1))
    weights = np.asarray(neighbour_weights(jax.random.key(5), distances, "avatar"))
    assert np.mean(weights[:, 0] > weights[:, 1]) > 0.9


def test_release_order_is_permutation():
    order = np.asarray(release_order(jax.random.key(0), 1000))
    assert sorted(order.tolist()) == list(range(1000))
    assert not np.array_equal(order, np.arange(1000))
