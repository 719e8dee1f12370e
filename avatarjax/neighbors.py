"""Exact k nearest neighbours in blocks, so memory never grows with n squared.

The search runs in two phases for each block of queries, both inside one jitted function:

1. Screening. The reference rows are cut into chunks of `chunk_size` consecutive rows. A scan
   over reference tiles computes squared distances by the expansion |q|^2 + |r|^2 - 2 q.r
   (one matrix product per tile, so the work is GEMM) and keeps only the minimum of each
   chunk. Only a (block_size, n / chunk_size) array of chunk minima is ever stored.
2. Refinement. The k true nearest neighbours lie in the k chunks with the smallest minima
   (each of those chunks contains at least one distance no larger than the k-th chunk minimum).
   Their rows are gathered, distances are recomputed exactly as sum((q - r)^2), and
   `lax.top_k` runs over k * chunk_size candidates instead of n.

On CPU this replaces a selection over n values per query, which dominates a plain blocked
`lax.top_k`, by one cheap min-reduction; see scripts/benchmark_pipeline.py for measurements.
"""

from __future__ import annotations

import logging
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from avatarjax.errors import InputDataError

logger = logging.getLogger(__name__)

# Block shapes are fixed per (n, d, k), so a second search with the same shapes reuses the
# compiled program. Peak memory per block is about block_size * (tile_size + n / chunk_size)
# float32 values: 512 * (2048 + 12 500) * 4 bytes = 30 MB at n = 200 000.
DEFAULT_BLOCK_SIZE = 512
DEFAULT_CHUNK_SIZE = 16
DEFAULT_TILE_SIZE = 2048


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@partial(jax.jit, static_argnames=("k", "chunk_size", "tile_size", "n_reference"))
def _knn_block(queries, query_index, reference, reference_sq, *, k, chunk_size, tile_size,
               n_reference):
    """Return squared distances and indices of the k nearest reference rows of each query.

    `query_index` holds each query's row index in the reference set, or -1 when the query
    must not be excluded; `reference` is padded to a multiple of `tile_size` and its padded
    rows have `reference_sq` = inf.
    """
    block = queries.shape[0]
    n_tiles = reference.shape[0] // tile_size
    chunks_per_tile = tile_size // chunk_size

    # Phase 1: chunk minima of the squared distance, tile by tile. The |q|^2 term is the same
    # along a row, so it is left out of the screening.
    def screen_tile(carry, tile):
        rows = jax.lax.dynamic_slice_in_dim(reference, tile * tile_size, tile_size)
        rows_sq = jax.lax.dynamic_slice_in_dim(reference_sq, tile * tile_size, tile_size)
        partial_sq = rows_sq[None, :] - 2.0 * (queries @ rows.T)
        column = tile * tile_size + jnp.arange(tile_size)
        partial_sq = jnp.where(column[None, :] == query_index[:, None], jnp.inf, partial_sq)
        return carry, partial_sq.reshape(block, chunks_per_tile, chunk_size).min(axis=-1)

    _, chunk_min = jax.lax.scan(screen_tile, None, jnp.arange(n_tiles))
    chunk_min = jnp.transpose(chunk_min, (1, 0, 2)).reshape(block, -1)
    _, best_chunks = jax.lax.top_k(-chunk_min, k)

    # Phase 2: exact distances to every row of the k best chunks, then the k smallest.
    chunked = reference.reshape(-1, chunk_size, reference.shape[1])
    candidates = chunked[best_chunks]  # (block, k, chunk_size, d)
    candidate_index = (best_chunks[:, :, None] * chunk_size + jnp.arange(chunk_size)).reshape(block, -1)
    sq = jnp.sum((queries[:, None, None, :] - candidates) ** 2, axis=-1).reshape(block, -1)
    invalid = (candidate_index == query_index[:, None]) | (candidate_index >= n_reference)
    sq = jnp.where(invalid, jnp.inf, sq)
    neg_sq, position = jax.lax.top_k(-sq, k)
    return -neg_sq, jnp.take_along_axis(candidate_index, position, axis=1)


def knn(queries, reference=None, k: int = 20, *, block_size: int = DEFAULT_BLOCK_SIZE,
        chunk_size: int = DEFAULT_CHUNK_SIZE, tile_size: int = DEFAULT_TILE_SIZE,
        progress: bool | None = None) -> tuple[jax.Array, jax.Array]:
    """Find the k nearest reference rows (Euclidean) of every query row.

    With `reference=None` the queries are their own reference set and each row is excluded
    by its index, not by its position: an identical duplicate row is still a neighbour at
    distance 0. Returns (distances, indices), both of shape (n_queries, k), sorted by
    increasing distance; ties are broken arbitrarily.

    NOTE: chunks are screened with the float32 distance expansion, so a neighbour whose
    distance differs from the k-th by less than float32 rounding can be swapped with it.
    """
    exclude_self = reference is None
    queries = jnp.asarray(queries, dtype=jnp.float32)
    reference = queries if exclude_self else jnp.asarray(reference, dtype=jnp.float32)
    if queries.ndim != 2 or reference.ndim != 2 or queries.shape[1] != reference.shape[1]:
        raise InputDataError(
            f"knn expects 2-D arrays with the same number of columns; got queries "
            f"{queries.shape} and reference {reference.shape}."
        )
    n_reference = reference.shape[0]
    available = n_reference - 1 if exclude_self else n_reference
    if k < 1 or k > available:
        raise InputDataError(
            f"k = {k} nearest neighbours requested but only {available} candidate rows exist; "
            f"choose k between 1 and {available}, or provide more segments."
        )

    # Small reference sets: chunks of one row, so at least k chunks exist.
    if n_reference < k * chunk_size:
        chunk_size = 1
    tile_size = min(tile_size, _round_up(n_reference, chunk_size))
    tile_size = _round_up(tile_size, chunk_size)
    padded = _round_up(n_reference, tile_size)
    reference_padded = jnp.zeros((padded, reference.shape[1]), jnp.float32).at[:n_reference].set(reference)
    reference_sq = jnp.where(jnp.arange(padded) < n_reference,
                             jnp.sum(reference_padded ** 2, axis=1), jnp.inf)

    n_queries = queries.shape[0]
    block_size = min(block_size, n_queries)
    n_blocks = -(-n_queries // block_size)
    queries_padded = jnp.zeros((n_blocks * block_size, queries.shape[1]), jnp.float32).at[:n_queries].set(queries)

    distances, indices = [], []
    blocks = range(n_blocks)
    if progress is not False and n_blocks >= 8:
        blocks = tqdm(blocks, desc=f"{k}-NN search", unit="block", disable=None if progress is None else False)
    for b in blocks:
        start = b * block_size
        if exclude_self:
            query_index = jnp.arange(start, start + block_size, dtype=jnp.int32)
        else:
            query_index = jnp.full((block_size,), -1, dtype=jnp.int32)
        sq, index = _knn_block(queries_padded[start:start + block_size], query_index, reference_padded,
                               reference_sq, k=k, chunk_size=chunk_size, tile_size=tile_size,
                               n_reference=n_reference)
        distances.append(sq)
        indices.append(index)
    sq = jnp.concatenate(distances)[:n_queries]
    return jnp.sqrt(jnp.maximum(sq, 0.0)), jnp.concatenate(indices)[:n_queries]


def knn_numpy_reference(queries: np.ndarray, reference: np.ndarray | None, k: int):
    """Brute-force float64 k nearest neighbours, for tests on small inputs only (O(n^2) memory)."""
    exclude_self = reference is None
    reference = queries if exclude_self else reference
    q = np.asarray(queries, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    sq = ((q[:, None, :] - r[None, :, :]) ** 2).sum(-1)
    if exclude_self:
        np.fill_diagonal(sq, np.inf)
    order = np.argsort(sq, axis=1, kind="stable")[:, :k]
    return np.sqrt(np.take_along_axis(sq, order, axis=1)), order
