import numpy as np
import pytest

from avatarjax.errors import InputDataError
from avatarjax.neighbors import knn, knn_numpy_reference
from avatarjax.projection.fpca import fit_fpca, transform


@pytest.fixture(scope="module")
def coordinates(real_segments):
    fpca = fit_fpca(real_segments, ncp=8)
    return np.asarray(transform(fpca, real_segments))


def test_self_search_matches_brute_force(coordinates):
    # Small blocks, chunks and tiles so that padding and many blocks are exercised.
    distance, index = knn(coordinates, None, 7, block_size=100, chunk_size=4, tile_size=64)
    ref_distance, ref_index = knn_numpy_reference(coordinates, None, 7)
    assert np.allclose(np.asarray(distance), ref_distance, rtol=1e-4, atol=1e-3)
    assert np.mean(np.asarray(index) == ref_index) > 0.999


def test_external_reference_matches_brute_force(coordinates):
    queries, reference = coordinates[:300], coordinates[300:]
    distance, index = knn(queries, reference, 3, block_size=64, chunk_size=8, tile_size=256)
    ref_distance, ref_index = knn_numpy_reference(queries, reference, 3)
    assert np.allclose(np.asarray(distance), ref_distance, rtol=1e-4, atol=1e-3)
    assert np.mean(np.asarray(index) == ref_index) > 0.999


def test_self_never_own_neighbour(coordinates):
    _, index = knn(coordinates, None, 5)
    rows = np.arange(coordinates.shape[0])[:, None]
    assert not np.any(np.asarray(index) == rows)


def test_identical_rows_excluded_by_index():
    rows = np.zeros((10, 3), dtype=np.float32)
    distance, index = knn(rows, None, 9)
    index = np.asarray(index)
    assert np.all(np.asarray(distance) == 0.0)
    for i in range(10):
        assert sorted(index[i].tolist()) == [j for j in range(10) if j != i]


def test_duplicates_among_distinct_rows():
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(50, 4)).astype(np.float32)
    rows[10] = rows[20]
    distance, index = knn(rows, None, 1)
    assert int(index[10, 0]) == 20
    assert int(index[20, 0]) == 10
    assert float(distance[10, 0]) == 0.0


def test_distances_sorted(coordinates):
    distance, _ = knn(coordinates, None, 10)
    assert np.all(np.diff(np.asarray(distance), axis=1) >= 0)


def test_k_too_large():
    with pytest.raises(InputDataError, match="only 4 candidate rows"):
        knn(np.ones((5, 2)), None, 5)


def test_k_zero():
    with pytest.raises(InputDataError, match="k = 0"):
        knn(np.ones((5, 2)), None, 0)


def test_column_mismatch():
    with pytest.raises(InputDataError, match="same number of columns"):
        knn(np.ones((5, 2)), np.ones((5, 3)), 1)


def test_block_memory_bounded_at_200k():
    # Compile, without running, the block program for n = 200 000 rows and check that its
    # scratch memory is far from an n-by-n distance matrix (160 GB in float32).
    import jax
    import jax.numpy as jnp

    from avatarjax.neighbors import _knn_block

    n, padded, d, block = 200_000, 200_704, 20, 512
    spec = jax.ShapeDtypeStruct
    compiled = _knn_block.lower(spec((block, d), jnp.float32), spec((block,), jnp.int32), spec((block,), jnp.int32),
                                spec((padded, d), jnp.float32), spec((padded,), jnp.float32),
                                spec((padded,), jnp.int32), k=20, chunk_size=16, tile_size=2048, n_reference=n).compile()
    scratch = compiled.memory_analysis().temp_size_in_bytes
    assert scratch < 256 * 2**20
    assert scratch < 1e-3 * n * n * 4
