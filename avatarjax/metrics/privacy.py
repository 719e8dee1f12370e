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

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from avatarjax.metrics.targets import PRIVACY_TARGETS, metric_entry
from avatarjax.neighbors import knn

TIE_MARGIN = 1e-12
BLOCK_SIZE = 512
TILE_SIZE = 2048


@partial(jax.jit, static_argnames=("tile_size", "n_avatars"))
def _closer_count_block(originals, own_avatars, original_index, avatars, avatars_sq, *, tile_size, n_avatars):
    originals_sq = jnp.sum(originals ** 2, axis=1)
    own_sq = jnp.sum((originals - own_avatars) ** 2, axis=1)

    def count_tile(count, tile):
        rows = jax.lax.dynamic_slice_in_dim(avatars, tile * tile_size, tile_size)
        rows_sq = jax.lax.dynamic_slice_in_dim(avatars_sq, tile * tile_size, tile_size)
        sq = originals_sq[:, None] + rows_sq[None, :] - 2.0 * (originals @ rows.T)
        margin = TIE_MARGIN * (originals_sq[:, None] + rows_sq[None, :])
        column = tile * tile_size + jnp.arange(tile_size)
        valid = (column[None, :] < n_avatars) & (column[None, :] != original_index[:, None])
        closer = (sq < own_sq[:, None] - margin) & valid
        return count + jnp.sum(closer, axis=1, dtype=jnp.int32), None

    count, _ = jax.lax.scan(count_tile, jnp.zeros(originals.shape[0], jnp.int32),
                            jnp.arange(avatars.shape[0] // tile_size))
    return count


def closer_avatar_counts(originals, avatars, *, block_size: int = BLOCK_SIZE, tile_size: int = TILE_SIZE,
                         progress: bool | None = None) -> np.ndarray:
    """Count, per original i, the avatars strictly closer to x_i than its own avatar a_i.

    `avatars` is in original order: row i is the avatar of original i, which never counts.
    """
    with jax.enable_x64(True):
        return _closer_avatar_counts_float64(np.asarray(originals, np.float64), np.asarray(avatars, np.float64),
                                             block_size, tile_size, progress)


def _closer_avatar_counts_float64(originals, avatars, block_size, tile_size, progress) -> np.ndarray:
    """Run the blocked count on float64 copies; the caller enables x64."""
    originals = jnp.asarray(originals, jnp.float64)
    avatars = jnp.asarray(avatars, jnp.float64)
    n = originals.shape[0]
    tile_size = min(tile_size, n)
    padded = -(-n // tile_size) * tile_size
    avatars_padded = jnp.zeros((padded, avatars.shape[1]), jnp.float64).at[:n].set(avatars)
    avatars_sq = jnp.sum(avatars_padded ** 2, axis=1)

    block_size = min(block_size, n)
    n_blocks = -(-n // block_size)
    rows = n_blocks * block_size
    originals_padded = jnp.zeros((rows, originals.shape[1]), jnp.float64).at[:n].set(originals)
    own_padded = jnp.zeros((rows, avatars.shape[1]), jnp.float64).at[:n].set(avatars)

    counts = []
    blocks = range(n_blocks)
    if progress is not False and n_blocks >= 8:
        blocks = tqdm(blocks, desc="local cloaking", unit="block", disable=None if progress is None else False)
    for b in blocks:
        part = slice(b * block_size, (b + 1) * block_size)
        original_index = jnp.arange(b * block_size, (b + 1) * block_size, dtype=jnp.int32)
        counts.append(_closer_count_block(originals_padded[part], own_padded[part], original_index,
                                          avatars_padded, avatars_sq,
                                          tile_size=tile_size, n_avatars=n))
    return np.asarray(jnp.concatenate(counts)[:n])


def hidden_rate(closer_counts: np.ndarray) -> float:
    """Percentage of originals with at least one avatar strictly closer than their own."""
    return float(np.mean(closer_counts >= 1) * 100.0)


def local_cloaking(closer_counts: np.ndarray) -> float:
    """Median number of avatars strictly closer to an original than its own avatar."""
    return float(np.median(closer_counts))


def closest_original_distances(originals, avatars, progress: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return, per avatar, the distances to its closest and second-closest originals."""
    distance, _ = knn(avatars, originals, k=2, progress=progress)
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
                    significant_digits: int = 7, progress: bool | None = None) -> dict:
    """Compute every privacy metric; avatars in original order, released rows in any order."""
    counts = closer_avatar_counts(original_coordinates, avatar_coordinates, progress=progress)
    closest, second = closest_original_distances(original_coordinates, avatar_coordinates, progress=progress)
    values = {
        "hidden_rate": hidden_rate(counts),
        "local_cloaking": local_cloaking(counts),
        "distance_to_closest": distance_to_closest(closest),
        "closest_distance_ratio": closest_distance_ratio(closest, second),
        "row_direct_match_protection": row_direct_match_protection(original_rows, released_rows, significant_digits),
    }
    return {name: metric_entry(PRIVACY_TARGETS[name], value) for name, value in values.items()}
