import jax
import jax.numpy as jnp
import numpy as np
import pytest

from avatarjax.avatar import (
    generate_avatars,
    neighbour_weights,
    permutation_ranks,
    release_order,
    seed_keys,
    weight_draws,
    weights_from_draws,
)
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


def _distances(n, k_max, seed=0):
    return np.abs(np.random.default_rng(seed).normal(size=(n, k_max))).astype(np.float32)


@pytest.mark.parametrize("method", ["avatar", "dirichlet"])
def test_weights_prefix_consistent_in_k(method):
    # The weights for k columns must be the padded k_max weights with the extra columns at 0.
    distances = _distances(300, 12)
    key = jax.random.key(11)
    padded_all = np.asarray(neighbour_weights(key, distances, method))
    for k in (1, 5, 12):
        own = np.asarray(neighbour_weights(key, distances[:, :k], method))
        padded = np.asarray(neighbour_weights(key, distances, method, active=k))
        assert np.allclose(padded[:, :k], own, rtol=1e-6, atol=1e-7), f"k = {k}"
        assert np.all(padded[:, k:] == 0.0), f"k = {k}"
    assert np.array_equal(np.asarray(neighbour_weights(key, distances, method, active=12)), padded_all)


def test_weights_traced_active_matches_int():
    distances = _distances(300, 12)
    key = jax.random.key(12)
    traced = jax.jit(lambda active: neighbour_weights(key, distances, active=active))
    for k in (1, 4, 12):
        assert np.allclose(np.asarray(traced(k)), np.asarray(neighbour_weights(key, distances, active=k)),
                           rtol=1e-6, atol=1e-7), f"k = {k}"


@pytest.mark.parametrize("method", ["avatar", "dirichlet"])
def test_padded_weights_sum_to_one(method):
    distances = _distances(300, 12)
    distances[:50] = 0.0  # rows whose neighbours are all identical copies
    for k in (1, 3, 12):
        weights = np.asarray(neighbour_weights(jax.random.key(13), distances, method, active=k))
        assert np.all(np.isfinite(weights)), f"k = {k}"
        assert np.all(weights >= 0.0), f"k = {k}"
        assert np.allclose(weights.sum(axis=1), 1.0, atol=1e-5), f"k = {k}"


def test_inactive_distance_ignored_by_floor():
    # A huge distance beyond `active` must not raise the floor of the active columns: with
    # the floor taken over all columns, the zero distance would be floored at 1e-3 * 1e6.
    distances = np.tile(np.array([[0.0, 1.0, 1e6]], np.float32), (2000, 1))
    weights = np.asarray(neighbour_weights(jax.random.key(14), distances, "avatar", active=2))
    assert np.all(weights[:, 2] == 0.0)
    # The zero distance is floored at 1e-3 * 1, so column 0 outweighs column 1 in most rows.
    assert np.mean(weights[:, 0] > weights[:, 1]) > 0.95


def _brute_force_ranks(uniform, active):
    ranks = np.zeros(len(uniform), dtype=np.int64)
    for j in range(active):
        ranks[j] = 1 + sum(1 for i in range(active) if (uniform[i], i) < (uniform[j], j))
    return ranks


def test_permutation_ranks_match_counting():
    rng = np.random.default_rng(0)
    ranks_of = jax.jit(permutation_ranks)
    for trial in range(50):
        active = int(rng.integers(1, 9))
        # Few distinct values, so equal draws occur and the column tie-break is exercised.
        uniform = rng.integers(0, 4, size=8).astype(np.uint32)
        ranks = np.asarray(ranks_of(jnp.asarray(uniform), active))
        assert np.array_equal(ranks, _brute_force_ranks(uniform, active)), f"{uniform}, active {active}"
        assert sorted(ranks[:active].tolist()) == list(range(1, active + 1)), f"{uniform}, active {active}"


def test_weights_use_each_rank_once():
    # With equal distances, w_j / E_j is proportional to 2^-P_j, so the ranks can be read back
    # from the weights and the exponential draws. Each row must use every rank 1..k once.
    n, k_max = 400, 9
    key = jax.random.key(15)
    draws = weight_draws(key, n, k_max)
    distances = jnp.ones((n, k_max), jnp.float32)
    for k in (1, 4, 9):
        weights = np.asarray(weights_from_draws(draws, distances, k), np.float64)[:, :k]
        ratio = weights / np.asarray(draws.exponential, np.float64)[:, :k]
        ranks = np.rint(1.0 - np.log2(ratio / ratio.max(axis=1, keepdims=True))).astype(int)
        assert np.all(np.sort(ranks, axis=1) == np.arange(1, k + 1)), f"k = {k}"


def test_weight_draws_match_neighbour_weights():
    distances = _distances(300, 12)
    key = jax.random.key(16)
    for method in ("avatar", "dirichlet"):
        from_draws = weights_from_draws(weight_draws(key, 300, 12, method), jnp.asarray(distances), 3, method)
        assert np.array_equal(np.asarray(from_draws), np.asarray(neighbour_weights(key, distances, method, active=3)))


def test_weights_reject_invalid_arguments():
    distances = _distances(10, 5)
    with pytest.raises(ValueError, match="active = 0"):
        neighbour_weights(jax.random.key(0), distances, active=0)
    with pytest.raises(ValueError, match="active = 6"):
        neighbour_weights(jax.random.key(0), distances, active=6)
    with pytest.raises(ValueError, match="'gaussian' is unknown"):
        neighbour_weights(jax.random.key(0), distances, "gaussian")


def test_seed_keys_split_the_seed_key():
    # Runs recorded before seed_keys existed derived their keys this way, so seed_keys must keep it.
    avatar_key, release_key = seed_keys(42)
    expected = jax.random.split(jax.random.key(42))
    assert np.array_equal(jax.random.key_data(avatar_key), jax.random.key_data(expected[0]))
    assert np.array_equal(jax.random.key_data(release_key), jax.random.key_data(expected[1]))
