"""Exact k nearest neighbours in blocks, so memory never grows with n squared.

The search runs in three steps for each block of queries, all inside one jitted function:

1. Screening. The reference rows are cut into chunks of `chunk_size` consecutive rows. A scan
   over reference tiles computes squared distances by the expansion |q|^2 + |r|^2 - 2 q.r
   (one matrix product per tile, so the work is GEMM) and keeps only the minimum of each
   chunk. Only a (block_size, n / chunk_size) array of chunk minima is ever stored.
2. Selection. The k true nearest neighbours lie in the k chunks with the smallest minima
   (each of those chunks contains at least one distance no larger than the k-th chunk minimum).
   For large n the chunks are grouped by GROUP_SIZE and the same argument picks k groups first.
3. Refinement. The rows of the k chosen chunks are gathered, distances are recomputed exactly
   as sum((q - r)^2), and `lax.top_k` runs over k * chunk_size candidates instead of n.

Temporal exclusion (`exclude_radius` > 0, self search only): reference row j is not a
candidate for query i when |positions[i] - positions[j]| < exclude_radius. The band is masked
to +inf in screening and refinement. Masking only the refinement would be wrong: a chunk whose minimum is an
excluded row could win a screening place while it contains no eligible row, and push out a chunk
that contains a true neighbour. With the mask in the screening, every chunk minimum is a minimum
over eligible rows (inf when it has none), so the argument above holds for eligible rows; when
fewer than k chunks have a finite minimum, all of them are selected and contain every eligible row.

On CPU this replaces a selection over n values per query, which dominates a plain blocked
`lax.top_k`, by one cheap min-reduction; see scripts/benchmark_pipeline.py for measurements.
"""

from __future__ import annotations

import logging
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from avatarjax.errors import InputDataError
from avatarjax.sharding import map_row_blocks

logger = logging.getLogger(__name__)

# Block shapes are fixed per (n, d, k), so a second search with the same shapes reuses the
# compiled program. Peak memory per block is about block_size * (tile_size + n / chunk_size)
# float32 values: 512 * (2048 + 12 500) * 4 bytes = 30 MB at n = 200 000.
DEFAULT_BLOCK_SIZE = 512
DEFAULT_CHUNK_SIZE = 16
DEFAULT_TILE_SIZE = 2048
# Chunks per group of the two-level chunk selection. On a 2-core CPU it cut the search at
# n = 200 000 from 39.1 s to 36.3 s (top_k over 12 500 chunk minima per query was the cost).
GROUP_SIZE = 16


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@partial(jax.jit, static_argnames=("k", "chunk_size", "tile_size", "n_reference", "exclude_radius", "group_size"))
def _knn_block(queries, query_index, query_position, reference, reference_sq, reference_position,
               *, k, chunk_size, tile_size, n_reference, exclude_radius=0, group_size=1):
    """Return squared distances and indices of the k nearest reference rows of each query.

    `query_index` holds each query's row index in the reference set, or -1 when the query
    must not be excluded; `reference` is padded to a multiple of `tile_size` and its padded
    rows have `reference_sq` = inf. With `exclude_radius` > 0, `query_position` (block,) and
    `reference_position` (padded,) are int32 positions and rows closer than the radius are
    masked as well. `exclude_radius` is static, so radius 0 compiles a program without the
    band, which never reads the positions.
    """

    block = queries.shape[0]
    n_tiles = reference.shape[0] // tile_size
    chunks_per_tile = tile_size // chunk_size

    # Screening: chunk minima of the squared distance, tile by tile. The |q|^2 term is the same
    # along a row, so it is left out of the screening.
    def screen_tile(carry, tile):
        rows = jax.lax.dynamic_slice_in_dim(reference, tile * tile_size, tile_size)
        rows_sq = jax.lax.dynamic_slice_in_dim(reference_sq, tile * tile_size, tile_size)
        partial_sq = rows_sq[None, :] - 2.0 * (queries @ rows.T)
        column = tile * tile_size + jnp.arange(tile_size)
        excluded = column[None, :] == query_index[:, None]
        if exclude_radius > 0:
            tile_position = jax.lax.dynamic_slice_in_dim(reference_position, tile * tile_size, tile_size)
            excluded = excluded | (jnp.abs(query_position[:, None] - tile_position[None, :]) < exclude_radius)
        partial_sq = jnp.where(excluded, jnp.inf, partial_sq)
        return carry, partial_sq.reshape(block, chunks_per_tile, chunk_size).min(axis=-1)

    _, chunk_min = jax.lax.scan(screen_tile, None, jnp.arange(n_tiles))
    chunk_min = jnp.transpose(chunk_min, (1, 0, 2)).reshape(block, -1)
    if group_size > 1:
        # Two-level selection. The k best chunks lie in the k groups with the smallest minima: the
        # chunk argument again, one level up. So top_k runs over n / (chunk_size * group_size)
        # group minima and k * group_size chunk minima instead of n / chunk_size values.
        group_min = chunk_min.reshape(block, -1, group_size).min(axis=-1)
        _, best_groups = jax.lax.top_k(-group_min, k)
        group_chunks = (best_groups[:, :, None] * group_size + jnp.arange(group_size)).reshape(block, -1)
        _, position = jax.lax.top_k(-jnp.take_along_axis(chunk_min, group_chunks, axis=1), k)
        best_chunks = jnp.take_along_axis(group_chunks, position, axis=1)
    else:
        _, best_chunks = jax.lax.top_k(-chunk_min, k)

    # Refinement: exact distances to every row of the k best chunks, then the k smallest.
    chunked = reference.reshape(-1, chunk_size, reference.shape[1])
    candidates = chunked[best_chunks]  # (block, k, chunk_size, d)
    candidate_index = (best_chunks[:, :, None] * chunk_size + jnp.arange(chunk_size)).reshape(block, -1)
    sq = jnp.sum((queries[:, None, None, :] - candidates) ** 2, axis=-1).reshape(block, -1)
    invalid = (candidate_index == query_index[:, None]) | (candidate_index >= n_reference)
    if exclude_radius > 0:
        candidate_position = reference_position[candidate_index]  # padded rows have a position too
        invalid = invalid | (jnp.abs(query_position[:, None] - candidate_position) < exclude_radius)
    sq = jnp.where(invalid, jnp.inf, sq)
    neg_sq, position = jax.lax.top_k(-sq, k)
    return -neg_sq, jnp.take_along_axis(candidate_index, position, axis=1)


def knn(queries, reference=None, k: int = 20, *, block_size: int = DEFAULT_BLOCK_SIZE,
        chunk_size: int = DEFAULT_CHUNK_SIZE, tile_size: int = DEFAULT_TILE_SIZE,
        progress: bool | None = None, exclude_radius: int = 0,
        positions=None, mesh: Mesh | None = None) -> tuple[jax.Array, jax.Array]:
    """Find the k nearest reference rows (Euclidean) of every query row.

    With `reference=None` the queries are their own reference set and each row is excluded
    by its index, not by its position: an identical duplicate row is still a neighbour at
    distance 0. Returns (distances, indices), both of shape (n_queries, k), sorted by
    increasing distance; ties are broken arbitrarily.

    Temporal exclusion, self search only: with `exclude_radius` > 0, row j is not a neighbour
    of row i when |positions[i] - positions[j]| < exclude_radius. `positions` is an integer
    array (n,) in the same unit as the radius, e.g. the segments' start_index in steps, so a
    radius of one window length keeps overlapping sliding windows out; None means arange(n).
    Radius 0 ignores `positions` and gives exactly the search without exclusion. Raises
    InputDataError when some row has fewer than k eligible rows.

    With a `mesh` (avatarjax.sharding.device_mesh) the query rows are split across its devices
    and the reference set is replicated; the results equal those of one device exactly.

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

    if isinstance(exclude_radius, bool) or not isinstance(exclude_radius, (int, np.integer)) or exclude_radius < 0:
        raise InputDataError(f"invalid exclude_radius {exclude_radius!r}: expected a non-negative integer (0 turns the exclusion off).")
    exclude_radius = int(exclude_radius)
    if exclude_radius > 0:
        if not exclude_self:
            raise InputDataError(
                "exclude_radius applies only to a self search (reference=None). With an external "
                "reference set, leave exclude_radius at 0 or drop the rows to exclude from the reference."
            )
        positions = _eligible_positions(positions, n_reference, exclude_radius, k)

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
    # Padded rows (reference and queries) get position 0: padded reference rows already have an
    # infinite distance and padded query rows are cut from the result, so any value works.
    reference_position = np.zeros(padded, np.int32)
    query_position = np.zeros(n_queries, np.int32)
    if exclude_radius > 0:
        reference_position[:n_reference] = positions
        query_position[:] = positions
    query_index = (jnp.arange(n_queries, dtype=jnp.int32) if exclude_self
                   else jnp.full((n_queries,), -1, dtype=jnp.int32))
    n_chunks = padded // chunk_size
    group_size = GROUP_SIZE if n_chunks % GROUP_SIZE == 0 and n_chunks // GROUP_SIZE >= k else 1
    block_function = _block_function(k, chunk_size, tile_size, n_reference, exclude_radius, group_size)
    sq, index = map_row_blocks(block_function, (queries, query_index, jnp.asarray(query_position)),
                               (reference_padded, reference_sq, jnp.asarray(reference_position)),
                               block_size=block_size, mesh=mesh, progress=progress,
                               description=f"{k}-NN search")
    return jnp.sqrt(jnp.maximum(sq, 0.0)), index


@lru_cache(maxsize=64)
def _block_function(k: int, chunk_size: int, tile_size: int, n_reference: int, exclude_radius: int,
                    group_size: int):
    # One stable function object per static setting, so a sharded wrapper is built once and
    # later searches with the same shapes reuse its compiled program.
    return partial(_knn_block, k=k, chunk_size=chunk_size, tile_size=tile_size, n_reference=n_reference,
                   exclude_radius=exclude_radius, group_size=group_size)


# Positions and the radius are compared as int32 differences inside the jitted kernel, so both
# are kept below 2^30: any difference then fits in int32.
_POSITION_LIMIT = 2**30


def _eligible_positions(positions, n: int, exclude_radius: int, k: int) -> np.ndarray:
    """Check `positions` (n,) for a self search with exclusion band `exclude_radius` and return them as int32.

    Raises InputDataError when some row keeps fewer than k rows outside its band.
    """
    positions = np.arange(n) if positions is None else np.asarray(positions)
    if positions.shape != (n,) or not np.issubdtype(positions.dtype, np.integer):
        raise InputDataError(
            f"invalid positions: expected an integer array of shape ({n},), one per row, got dtype "
            f"{positions.dtype} and shape {positions.shape}."
        )
    if n and (np.abs(positions).max() >= _POSITION_LIMIT or exclude_radius >= _POSITION_LIMIT):
        raise InputDataError(
            "positions and exclude_radius must lie below 2^30 in absolute value; shift the positions "
            "(only differences matter) or use a coarser unit."
        )
    # Rows inside the open band (p - r, p + r) are excluded, and the row itself is one of them.
    wide = positions.astype(np.int64)  # p + r can exceed the int32 range
    ordered = np.sort(wide)
    inside = (np.searchsorted(ordered, wide + exclude_radius, side="left")
              - np.searchsorted(ordered, wide - exclude_radius, side="right"))
    eligible = n - inside
    fewest = int(eligible.min())
    if fewest < k:
        row = int(eligible.argmin())
        raise InputDataError(
            f"k = {k} nearest neighbours requested with exclude_radius = {exclude_radius}, but row {row} "
            f"keeps only {fewest} rows outside its exclusion band; lower k or exclude_radius, or provide "
            f"more segments."
        )
    return positions.astype(np.int32)


def knn_numpy_reference(queries: np.ndarray, reference: np.ndarray | None, k: int,
                        exclude_radius: int = 0, positions=None):
    """Brute-force float64 k nearest neighbours, for tests on small inputs only (O(n^2) memory).

    `exclude_radius` and `positions` follow the contract of `knn` (self search only).
    """
    exclude_self = reference is None
    reference = queries if exclude_self else reference
    q = np.asarray(queries, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    sq = ((q[:, None, :] - r[None, :, :]) ** 2).sum(-1)
    if exclude_self:
        np.fill_diagonal(sq, np.inf)
        if exclude_radius > 0:
            position = np.arange(len(q)) if positions is None else np.asarray(positions, dtype=np.int64)
            sq[np.abs(position[:, None] - position[None, :]) < exclude_radius] = np.inf
    order = np.argsort(sq, axis=1, kind="stable")[:, :k]
    return np.sqrt(np.take_along_axis(sq, order, axis=1)), order
