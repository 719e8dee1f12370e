import numpy as np
import pytest

from avatarjax.avatar import generate_avatars, seed_keys
from avatarjax.avatar_sweep import _avatar_sets, generate_avatar_sets, sweep_grid
from avatarjax.config import AnonymizeConfig, AvatarConfig, SegmentationConfig
from avatarjax.errors import InputDataError
from avatarjax.neighbors import knn, knn_numpy_reference
from avatarjax.pipeline import anonymize_series
from avatarjax.projection.fpca import fit_fpca, transform


@pytest.fixture(scope="module")
def gaussian():
    return np.random.default_rng(0).normal(size=(400, 5)).astype(np.float32)


@pytest.fixture(scope="module")
def coordinates(real_segments):
    fpca = fit_fpca(real_segments, ncp=6)
    return np.asarray(transform(fpca, real_segments))


def _one_by_one(coordinates, k, seed, method="avatar"):
    return generate_avatars(seed_keys(seed)[0], coordinates, k, method)


def test_sweep_grid_lists_every_pair():
    ks, seeds = sweep_grid([2, 5], [0, 1, 2])
    assert ks == [2, 2, 2, 5, 5, 5]
    assert seeds == [0, 1, 2, 0, 1, 2]


@pytest.mark.parametrize("method", ["avatar", "dirichlet"])
def test_batched_equals_one_by_one_gaussian(gaussian, method):
    # Not a grid: repeated seeds with different k, and one seed used only once.
    ks, seeds = [1, 3, 7, 20, 7, 3], [0, 0, 5, 11, 11, 2]
    sets = generate_avatar_sets(gaussian, ks, seeds, method)
    assert sets.coordinates.shape == (len(ks), *gaussian.shape)
    assert sets.ks == tuple(ks)
    assert sets.seeds == tuple(seeds)
    for p, (k, seed) in enumerate(zip(ks, seeds)):
        expected = np.asarray(_one_by_one(gaussian, k, seed, method).coordinates)
        assert np.allclose(np.asarray(sets.coordinates[p]), expected, rtol=1e-5, atol=1e-5), f"k = {k}, seed = {seed}"


def test_batched_points_differ(gaussian):
    sets = np.asarray(generate_avatar_sets(gaussian, [5, 5, 6], [0, 1, 0]).coordinates)
    assert not np.allclose(sets[0], sets[1]), "seeds 0 and 1 gave the same avatars"
    assert not np.allclose(sets[0], sets[2]), "k = 5 and k = 6 gave the same avatars"


def _near_tie_rows(coordinates, k, own_index, shared_index):
    """Return the rows whose two neighbour lists differ, after checking that each is a near-tie.

    knn screens with the float32 expansion |q|^2 + |r|^2 - 2 q.r, so neighbours whose squared
    distances differ by less than its rounding can be swapped between searches of different k.
    Both lists of such a row must have the same exact (float64) squared distances within that
    rounding bound.
    """
    differ = np.flatnonzero(np.any(own_index != shared_index, axis=1))
    data = coordinates.astype(np.float64)
    squared_norm = np.sum(data ** 2, axis=1)
    for row in differ:
        bound = 16 * np.finfo(np.float32).eps * (squared_norm[row] + squared_norm.max())
        own = np.sort(np.sum((data[own_index[row]] - data[row]) ** 2, axis=1))
        shared = np.sort(np.sum((data[shared_index[row]] - data[row]) ** 2, axis=1))
        assert np.all(np.abs(own - shared) <= bound), f"row {row}, k = {k}: {own} against {shared}"
    return differ


def test_batched_equals_one_by_one_real(coordinates):
    ks, seeds = sweep_grid([1, 2, 5, 10, 40], [0, 1])
    sets = generate_avatar_sets(coordinates, ks, seeds)
    scale = np.abs(coordinates).max()
    for p, (k, seed) in enumerate(zip(ks, seeds)):
        single = _one_by_one(coordinates, k, seed)
        own_index = np.asarray(single.neighbour_index)
        differ = _near_tie_rows(coordinates, k, own_index, np.asarray(sets.neighbour_index)[:, :k])
        assert len(differ) <= 0.005 * len(coordinates), f"k = {k}: {len(differ)} rows have other neighbours"
        same = np.ones(len(coordinates), dtype=bool)
        same[differ] = False
        batched = np.asarray(sets.coordinates[p])[same]
        expected = np.asarray(single.coordinates)[same]
        assert np.allclose(batched, expected, rtol=1e-5, atol=1e-5 * scale), f"k = {k}, seed = {seed}"


def test_shared_table_is_exact_knn(coordinates):
    sets = generate_avatar_sets(coordinates, [8], [0])
    reference_distance, _ = knn_numpy_reference(coordinates, None, 8)
    assert sets.neighbour_index.shape == (len(coordinates), 8)
    assert np.allclose(np.asarray(sets.neighbour_distance), reference_distance, rtol=1e-4, atol=1e-3)


def test_one_program_for_every_k(gaussian):
    # k is traced, so other values of k with the same k_max and point count reuse the program.
    generate_avatar_sets(gaussian, [2, 9], [0, 1])
    compiled = _avatar_sets._cache_size()
    generate_avatar_sets(gaussian, [9, 4], [0, 1])
    generate_avatar_sets(gaussian, [1, 9], [0, 1])
    assert _avatar_sets._cache_size() == compiled


def test_deterministic_for_seeds(gaussian):
    first = generate_avatar_sets(gaussian, [4, 6], [3, 3])
    second = generate_avatar_sets(gaussian, [4, 6], [3, 3])
    assert np.array_equal(np.asarray(first.coordinates), np.asarray(second.coordinates))


def test_rejects_invalid_k(gaussian):
    with pytest.raises(InputDataError, match="k = 0 is invalid"):
        generate_avatar_sets(gaussian, [0, 2], [0, 1])
    with pytest.raises(InputDataError, match="k = 400 neighbours requested"):
        generate_avatar_sets(gaussian, [400], [0])
    with pytest.raises(ValueError, match="k = 2.5 is invalid"):
        generate_avatar_sets(gaussian, [2.5], [0])


def test_rejects_invalid_lists(gaussian):
    with pytest.raises(ValueError, match="at least one point"):
        generate_avatar_sets(gaussian, [], [])
    with pytest.raises(ValueError, match="2 values of k but 3 seeds"):
        generate_avatar_sets(gaussian, [2, 3], [0, 1, 2])
    with pytest.raises(ValueError, match="seed = '1' is invalid"):
        generate_avatar_sets(gaussian, [2], ["1"])


def test_rejects_invalid_method_and_shape(gaussian):
    with pytest.raises(ValueError, match="'uniform' is unknown"):
        generate_avatar_sets(gaussian, [2], [0], method="uniform")
    with pytest.raises(InputDataError, match="2-D"):
        generate_avatar_sets(gaussian[0], [2], [0])
    with pytest.raises(InputDataError, match="at least 2 rows"):
        generate_avatar_sets(gaussian[:1], [1], [0])


def test_point_reproduces_pipeline_avatars(machine_temperature):
    # The sweep and the pipeline derive the avatar key from the seed the same way.
    cfg = AnonymizeConfig(segmentation=SegmentationConfig(window="6h", stride=6), avatar=AvatarConfig(k=10, seed=3))
    result = anonymize_series(machine_temperature, cfg, progress=False)
    sets = generate_avatar_sets(result.original_coordinates, [10, 4], [3, 0])
    own_index = np.asarray(knn(result.original_coordinates, None, 10)[1])
    differ = _near_tie_rows(result.original_coordinates, 10, own_index, np.asarray(sets.neighbour_index)[:, :10])
    same = np.ones(len(own_index), dtype=bool)
    same[differ] = False
    scale = np.abs(result.original_coordinates).max()
    assert np.allclose(np.asarray(sets.coordinates[0])[same], result.avatar_coordinates[same],
                       rtol=1e-5, atol=1e-5 * scale)
