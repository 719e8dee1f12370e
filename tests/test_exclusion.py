"""Temporal exclusion in the neighbour search and avatar generation (exclude_radius > 0)."""
import jax
import numpy as np
import pytest

from avatarjax.avatar import generate_avatars
from avatarjax.errors import InputDataError
from avatarjax.neighbors import knn, knn_numpy_reference


def _random_rows(n, d=5, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _check_against_brute_force(rows, k, radius, positions, **blocks):
    distance, index = knn(rows, None, k, exclude_radius=radius, positions=positions, **blocks)
    ref_distance, ref_index = knn_numpy_reference(rows, None, k, exclude_radius=radius, positions=positions)
    assert np.allclose(np.asarray(distance), ref_distance, rtol=1e-4, atol=1e-4)
    assert np.mean(np.asarray(index) == ref_index) > 0.999
    position = np.arange(len(rows)) if positions is None else np.asarray(positions)
    assert np.all(np.abs(position[:, None] - position[np.asarray(index)]) >= radius)


@pytest.mark.parametrize("block_size, chunk_size, tile_size", [(64, 4, 64), (100, 8, 128), (512, 16, 2048), (37, 5, 35)])
@pytest.mark.parametrize("radius", [1, 3, 13, 40])
def test_band_matches_brute_force(block_size, chunk_size, tile_size, radius):
    # Radii 13 and 40 span several chunks of 4, 5 and 8 rows, so the band crosses chunk and
    # tile boundaries; n = 301 leaves partly padded chunks, tiles and query blocks.
    rows = _random_rows(301)
    _check_against_brute_force(rows, 6, radius, None, block_size=block_size, chunk_size=chunk_size,
                               tile_size=tile_size)


def test_band_with_near_copies():
    # Rows close in position are also close in space (a slow random walk), like stride-1
    # windows. Without the band in the screening, chunks containing only excluded rows would
    # take the k best screening places and the true eligible neighbours would be missed.
    rng = np.random.default_rng(1)
    rows = np.cumsum(rng.normal(scale=0.05, size=(400, 3)), axis=0).astype(np.float32)
    for radius in (8, 30):
        _check_against_brute_force(rows, 5, radius, None, block_size=50, chunk_size=8, tile_size=64)


def test_band_with_given_positions():
    # Positions in steps, unsorted and with gaps, so the band follows positions, not row order.
    rng = np.random.default_rng(2)
    rows = _random_rows(200, seed=2)
    positions = rng.permutation(np.arange(0, 2000, 10))
    _check_against_brute_force(rows, 4, 55, positions, block_size=64, chunk_size=4, tile_size=64)


def test_radius_zero_is_unchanged():
    rows = _random_rows(300, seed=3)
    for blocks in ({}, {"block_size": 64, "chunk_size": 4, "tile_size": 64}):
        plain = knn(rows, None, 7, **blocks)
        zero = knn(rows, None, 7, exclude_radius=0, positions=np.arange(300)[::-1].copy(), **blocks)
        for a, b in zip(plain, zero):
            assert np.array_equal(np.asarray(a), np.asarray(b))


def test_radius_one_equals_self_exclusion():
    rows = _random_rows(120, seed=4)
    plain = knn(rows, None, 5, chunk_size=4, tile_size=64)
    banded = knn(rows, None, 5, chunk_size=4, tile_size=64, exclude_radius=1)
    assert np.array_equal(np.asarray(plain[1]), np.asarray(banded[1]))


def test_too_few_eligible_rows():
    # Row 10 of 21 keeps rows 0 and 20 only outside the band |i - j| < 10.
    with pytest.raises(InputDataError, match=r"k = 3 .*exclude_radius = 10.*only 2 rows.*lower k or exclude_radius"):
        knn(_random_rows(21), None, 3, exclude_radius=10)
    knn(_random_rows(21), None, 2, exclude_radius=10)


def test_exclusion_needs_self_search():
    with pytest.raises(InputDataError, match="self search"):
        knn(_random_rows(20), _random_rows(30), 3, exclude_radius=2)


@pytest.mark.parametrize("radius", [-1, 2.5])
def test_bad_radius(radius):
    with pytest.raises(InputDataError, match="invalid exclude_radius"):
        knn(_random_rows(20), None, 3, exclude_radius=radius)


def test_bad_positions():
    with pytest.raises(InputDataError, match="shape"):
        knn(_random_rows(20), None, 3, exclude_radius=2, positions=np.arange(19))
    with pytest.raises(InputDataError, match="integer"):
        knn(_random_rows(20), None, 3, exclude_radius=2, positions=np.arange(20.0))


def test_avatars_never_use_neighbours_in_band():
    rng = np.random.default_rng(5)
    coordinates = np.cumsum(rng.normal(scale=0.1, size=(500, 4)), axis=0).astype(np.float32)
    start_index = np.arange(500) * 3  # e.g. windows at stride 3 steps
    radius = 60  # 20 windows either side
    avatars = generate_avatars(jax.random.key(0), coordinates, k=8, exclude_radius=radius, positions=start_index)
    index = np.asarray(avatars.neighbour_index)
    assert np.all(np.abs(start_index[:, None] - start_index[index]) >= radius)
    expected = np.einsum("nk,nkd->nd", np.asarray(avatars.weights), coordinates[index])
    assert np.allclose(np.asarray(avatars.coordinates), expected, atol=1e-5)
    plain = generate_avatars(jax.random.key(0), coordinates, k=8)
    zero = generate_avatars(jax.random.key(0), coordinates, k=8, exclude_radius=0, positions=start_index)
    assert np.array_equal(np.asarray(plain.coordinates), np.asarray(zero.coordinates))
