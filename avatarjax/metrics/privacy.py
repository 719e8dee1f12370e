"""Privacy metrics of the avatar method, computed in the projected space and in blocks.

x_i is original i and a_i its avatar, both as coordinates of the fitted projection. Distances
are Euclidean in that space; with FPCA they approximate L2 distances between curves in
value units (see avatarjax.projection.fpca). No function here builds an n-by-n array: the
counts scan avatar tiles for one block of originals at a time.

Tie rule: an avatar j counts as strictly closer to x_i than a_i when
|x_i - a_j|^2 < |x_i - a_i|^2 - 1e-12 (|x_i|^2 + |a_j|^2). The counts run in float64, because
near neighbours of overlapping windows are much closer to each other than to the origin and
float32 rounding of the distance expansion (about 1e-7 (|x|^2 + |a|^2)) would decide their
order. The margin covers float64 rounding only, so exact duplicates of a_i are ties, and
ties are not counted. An original whose own avatar ties for closest is therefore not hidden.
"""

from __future__ import annotations

from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from avatarjax.metrics.targets import PRIVACY_TARGETS, metric_entry
from avatarjax.neighbors import knn
from avatarjax.sharding import map_row_blocks

TIE_MARGIN = 1e-12
BLOCK_SIZE = 512
TILE_SIZE = 2048


@partial(jax.jit, static_argnames=("tile_size",))
def _closer_count_block(originals, own_avatars, avatars_augmented, *, tile_size):
    """Count closer avatars for one block of originals (float64).

    `avatars_augmented` (padded, d + 1) contains a_j and (1 + TIE_MARGIN) |a_j|^2 per row, and
    [0, inf] on padded rows. The tie rule |x - a_j|^2 < |x - a_i|^2 - m (|x|^2 + |a_j|^2)
    rearranges to -2 x.a_j + (1 + m) |a_j|^2 < |x - a_i|^2 - (1 + m) |x|^2, whose left side is
    one matrix product with [-2 x, 1] and whose right side is one threshold per original. So
    each tile costs one GEMM, one comparison and one sum, with no mask. The own avatar needs no
    mask either: for it the two sides differ by m (|x|^2 + |a_i|^2), far above float64 rounding,
    so it never counts; padded avatars give +inf on the left and never count.
    """
    originals_sq = jnp.sum(originals ** 2, axis=1)
    own_sq = jnp.sum((originals - own_avatars) ** 2, axis=1)
    threshold = own_sq - (1.0 + TIE_MARGIN) * originals_sq
    left = jnp.concatenate([-2.0 * originals, jnp.ones((originals.shape[0], 1), originals.dtype)], axis=1)

    def count_tile(count, tile):
        rows = jax.lax.dynamic_slice_in_dim(avatars_augmented, tile * tile_size, tile_size)
        closer = (left @ rows.T) < threshold[:, None]
        return count + jnp.sum(closer, axis=1, dtype=jnp.int32), None

    count, _ = jax.lax.scan(count_tile, jnp.zeros(originals.shape[0], jnp.int32),
                            jnp.arange(avatars_augmented.shape[0] // tile_size))
    return (count,)


@lru_cache(maxsize=16)
def _count_function(tile_size: int):
    # One stable function object per tile size, so sharded wrappers are built once.
    return partial(_closer_count_block, tile_size=tile_size)


def closer_avatar_counts(originals, avatars, *, block_size: int = BLOCK_SIZE, tile_size: int = TILE_SIZE,
                         progress: bool | None = None, mesh: Mesh | None = None) -> np.ndarray:
    """Count, per original i, the avatars strictly closer to x_i than its own avatar a_i.

    `avatars` is in original order: row i is the avatar of original i, which never counts.
    With a `mesh` (avatarjax.sharding.device_mesh) the originals are split across its devices
    and the avatars replicated; the counts are the same as on one device.
    """
    with jax.enable_x64(True):
        return _closer_avatar_counts_float64(np.asarray(originals, np.float64), np.asarray(avatars, np.float64),
                                             block_size, tile_size, progress, mesh)


def augmented_avatars(avatars: np.ndarray, tile_size: int) -> np.ndarray:
    """Return [a_j, (1 + TIE_MARGIN) |a_j|^2] per avatar, padded with [0, inf] rows to whole tiles (float64)."""
    n, d = avatars.shape
    padded = -(-n // tile_size) * tile_size
    augmented = np.zeros((padded, d + 1), np.float64)
    augmented[:n, :d] = avatars
    augmented[:n, d] = (1.0 + TIE_MARGIN) * np.sum(avatars ** 2, axis=1)
    augmented[n:, d] = np.inf
    return augmented


def _closer_avatar_counts_float64(originals, avatars, block_size, tile_size, progress, mesh) -> np.ndarray:
    """Run the blocked count on float64 copies; the caller enables x64."""
    n = originals.shape[0]
    tile_size = min(tile_size, n)
    block_size = min(block_size, n)
    augmented = jnp.asarray(augmented_avatars(avatars, tile_size))
    (counts,) = map_row_blocks(_count_function(tile_size), (jnp.asarray(originals), jnp.asarray(avatars)),
                               (augmented,), block_size=block_size, mesh=mesh, progress=progress,
                               description="local cloaking")
    return np.asarray(counts)


def hidden_rate(closer_counts: np.ndarray) -> float:
    """Percentage of originals with at least one avatar strictly closer than their own."""
    return float(np.mean(closer_counts >= 1) * 100.0)


def local_cloaking(closer_counts: np.ndarray) -> float:
    """Median number of avatars strictly closer to an original than its own avatar."""
    return float(np.median(closer_counts))


def closest_original_distances(originals, avatars, progress: bool | None = None,
                               mesh: Mesh | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return, per avatar, the distances to its closest and second-closest originals."""
    distance, _ = knn(avatars, originals, k=2, progress=progress, mesh=mesh)
    distance = np.asarray(distance, dtype=np.float64)
    return distance[:, 0], distance[:, 1]


def distance_to_closest(closest: np.ndarray) -> float:
    """Median over avatars of the distance to the closest original."""
    return float(np.median(closest))


def closest_distance_ratio(closest: np.ndarray, second: np.ndarray) -> float:
    """Median over avatars of closest / second-closest original distance, 1 where the second is 0."""
    safe_second = np.where(second > 0, second, 1.0)
    ratio = np.where(second > 0, closest / safe_second, 1.0)
    return float(np.median(ratio))


def round_significant(values: np.ndarray, significant_digits: int) -> np.ndarray:
    """Round every value to `significant_digits` (half to even on the scaled value).

    The release rounds with this function before writing, so printf-style formatting of the
    rounded values reproduces them exactly. The comparison thus uses the values as written.
    """
    values = np.asarray(values, dtype=np.float64)
    magnitude = np.floor(np.log10(np.where(values == 0, 1.0, np.abs(values))))
    scale = 10.0 ** (significant_digits - 1 - magnitude)
    return np.round(values * scale) / scale


def row_direct_match_protection(original_rows: np.ndarray, avatar_rows: np.ndarray,
                                significant_digits: int = 7) -> float:
    """Percentage of original rows (segments) that appear nowhere among the avatar rows.

    Rows are compared after rounding every value to `significant_digits`, the release
    precision, by hashing; memory is linear in n.
    """
    avatar_keys = {row.tobytes() for row in round_significant(avatar_rows, significant_digits)}
    original_rounded = round_significant(original_rows, significant_digits)
    matched = sum(row.tobytes() in avatar_keys for row in original_rounded)
    return float((1.0 - matched / original_rounded.shape[0]) * 100.0)


def privacy_metrics(original_coordinates, avatar_coordinates, original_rows, released_rows,
                    significant_digits: int = 7, progress: bool | None = None, mesh: Mesh | None = None) -> dict:
    """Compute every privacy metric; avatars in original order, released rows in any order.

    With a `mesh` the two blocked searches split their rows across its devices.
    """
    counts = closer_avatar_counts(original_coordinates, avatar_coordinates, progress=progress, mesh=mesh)
    closest, second = closest_original_distances(original_coordinates, avatar_coordinates, progress=progress,
                                                 mesh=mesh)
    values = {
        "hidden_rate": hidden_rate(counts),
        "local_cloaking": local_cloaking(counts),
        "distance_to_closest": distance_to_closest(closest),
        "closest_distance_ratio": closest_distance_ratio(closest, second),
        "row_direct_match_protection": row_direct_match_protection(original_rows, released_rows, significant_digits),
    }
    return {name: metric_entry(PRIVACY_TARGETS[name], value) for name, value in values.items()}
