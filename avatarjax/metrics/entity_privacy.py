"""Entity-level privacy metrics: hidden rate and local cloaking per protected entity.

With sliding windows at stride 1, the nearest avatars of segment i are often the avatars of
its shifted copies i - 1, i + 1, ..., which cover nearly the same hours. The segment-level
hidden rate (avatarjax.metrics.privacy) counts such a match as hidden, although an attacker
who finds it has found the right hours. These metrics count a match as found when the avatar
comes from any segment of the same protected entity: a calendar span (a day, for example) or
an id such as a machine or a session.

Entity of a segment (entity_of_segments, rule "majority"): the entity that contains more than
half of the window's steps. When no entity does (a window split evenly between two entities,
or spread over several), the segment takes the entity of its middle step, the step at
start_index + window_steps // 2. For an even window this is the later of the two central
steps.

Rule "start": the entity of the segment's first step. It suits segments that an entity starts,
such as peak-centred windows assigned to the day of their start. For windows that straddle two
entities, it assigns the segment to the entity of its smaller part more often than "majority".

Definitions, with x_i original i, a_j the avatar generated for original j, e(j) the entity of
segment j, and d(i, j) = |x_i - a_j|^2 in the projected space:
- own distance o_i = min over j with e(j) = e(i) of d(i, j). It includes a_i, so it exists;
- entity closer count c_i = the number of avatars j with e(j) != e(i) and
  d(i, j) < o_i - 1e-12 (|x_i|^2 + |a_j|^2), the tie margin of avatarjax.metrics.privacy;
- entity hidden rate = percentage of originals with c_i >= 1. An original whose closest
  distance is shared by an avatar of its own entity and one of another entity is found;
- entity local cloaking = median over originals of c_i.
Because o_i <= d(i, i) and only other-entity avatars count, c_i never exceeds the
segment-level count up to float64 rounding, so both metrics are at most their segment-level
versions.

Memory: originals run in blocks and avatars in tiles, two passes over the tiles per block
(first o_i, then c_i), so no array grows with n squared. The distances run in float64 for the
reason given in avatarjax.metrics.privacy.
"""

from __future__ import annotations

from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax.sharding import Mesh
from pandas.tseries.frequencies import to_offset

from avatarjax.errors import InputDataError
from avatarjax.metrics.privacy import BLOCK_SIZE, TIE_MARGIN, TILE_SIZE
from avatarjax.metrics.targets import ENTITY_PRIVACY_TARGETS, metric_entry
from avatarjax.sharding import map_row_blocks

ENTITY_RULES = ("majority", "start")

# Windows per chunk when the majority rule gathers step entities, so the (chunk, window_steps)
# array stays small for long series.
_RULE_CHUNK = 4096


def _step_entities_from_frequency(timestamps: np.ndarray, entity: str, window_steps: int) -> np.ndarray:
    """Return per-step entity codes: the floor of each timestamp to `entity`, coded in time order."""
    try:
        offset = to_offset(entity)
    except ValueError as error:
        raise InputDataError(
            f"entity={entity!r} is not a pandas frequency; use for example '1D' or '12h', "
            "or pass a per-step id array."
        ) from error
    try:
        entity_ns = offset.nanos
    except ValueError as error:
        raise InputDataError(
            f"entity={entity!r} is a non-fixed frequency (calendar weeks or months have no fixed floor); "
            "use a fixed one such as '7D', or pass a per-step id array, for example from "
            "pandas.DatetimeIndex.to_period('W')."
        ) from error

    # The window duration uses the median sampling period, so a long gap between pieces,
    # which no window crosses, does not inflate it.
    steps = np.diff(timestamps.astype("datetime64[ns]").astype(np.int64))
    period_ns = int(np.median(steps)) if steps.size else 0
    window_ns = window_steps * period_ns
    if 2 * entity_ns <= window_ns:
        raise InputDataError(
            f"entity={entity!r} ({pd.Timedelta(entity_ns, 'ns')}) is not longer than half the window "
            f"({window_steps} steps = {pd.Timedelta(window_ns, 'ns')}), so no entity can contain more than "
            "half of a window's steps; use an entity at least as long as the window, for example "
            f"'{pd.Timedelta(window_ns, 'ns').ceil('1D').days}D'."
        )

    floored = pd.DatetimeIndex(timestamps.astype("datetime64[ns]")).floor(offset)
    _, codes = np.unique(floored.asi8, return_inverse=True)
    return codes


def _majority_entities(step_codes: np.ndarray, start_index: np.ndarray, window_steps: int) -> np.ndarray:
    """Apply the majority rule of the module docstring to every window."""
    offsets = np.arange(window_steps)
    middle = window_steps // 2
    result = np.empty(start_index.shape[0], dtype=np.int64)
    for begin in range(0, start_index.shape[0], _RULE_CHUNK):
        starts = start_index[begin:begin + _RULE_CHUNK]
        window_codes = step_codes[starts[:, None] + offsets[None, :]]

        # An entity that contains more than half of a window's steps fills the middle position
        # of the sorted window, so that position is the only candidate for the majority.
        candidate = np.sort(window_codes, axis=1)[:, middle]
        has_majority = 2 * np.sum(window_codes == candidate[:, None], axis=1) > window_steps
        result[begin:begin + starts.shape[0]] = np.where(has_majority, candidate, window_codes[:, middle])
    return result


def entity_of_segments(start_index, window_steps: int, timestamps, entity="1D", rule: str = "majority") -> np.ndarray:
    """Map every segment to its protected entity; see the module docstring for the rule.

    start_index indexes the first step of each segment in `timestamps` (Segments.start_index).
    entity is a fixed pandas frequency (a step belongs to the span its timestamp floors to) or
    an array of one id per step. Returns int64 codes of shape (n_segments,): indices into the
    sorted distinct floors or ids of all steps in `timestamps`, so calendar codes are in time
    order and a day that contains no segment's majority leaves a gap in the codes.
    """
    if rule not in ENTITY_RULES:
        raise InputDataError(f"rule={rule!r} is unknown; use one of {', '.join(ENTITY_RULES)}.")
    timestamps = np.asarray(timestamps)
    start_index = np.asarray(start_index, dtype=np.int64)
    if window_steps < 1:
        raise InputDataError(f"window_steps={window_steps} is invalid; a segment needs at least 1 step.")
    if start_index.size and (start_index.min() < 0 or start_index.max() + window_steps > timestamps.shape[0]):
        raise InputDataError(
            f"segments starting at steps {start_index.min()}..{start_index.max()} with {window_steps} steps "
            f"do not fit in the {timestamps.shape[0]} timestamps; pass the timestamps of the segmented series."
        )

    if isinstance(entity, str):
        step_codes = _step_entities_from_frequency(timestamps, entity, window_steps)
    else:
        ids = np.asarray(entity)
        if ids.shape != (timestamps.shape[0],):
            raise InputDataError(
                f"the entity id array has shape {ids.shape} but there are {timestamps.shape[0]} timestamps; "
                "give one id per step of the series."
            )
        _, step_codes = np.unique(ids, return_inverse=True)
        step_codes = step_codes.reshape(-1)

    if rule == "start":
        codes = step_codes[start_index]
    else:
        codes = _majority_entities(step_codes, start_index, window_steps)
    distinct = np.unique(codes)
    if distinct.size < 2:
        raise InputDataError(
            f"every segment falls in one entity ({entity if isinstance(entity, str) else 'id array'}, "
            f"code {distinct[0] if distinct.size else 'none'}), so no match can come from another entity "
            "and the entity metrics are meaningless; use a shorter entity span or a finer id column."
        )
    return codes


@partial(jax.jit, static_argnames=("tile_size",))
def _entity_count_block(originals, original_entity, avatars, avatars_sq, avatar_entity, *, tile_size):
    originals_sq = jnp.sum(originals ** 2, axis=1)
    n_tiles = avatars.shape[0] // tile_size

    def tile_terms(tile):
        rows = jax.lax.dynamic_slice_in_dim(avatars, tile * tile_size, tile_size)
        rows_sq = jax.lax.dynamic_slice_in_dim(avatars_sq, tile * tile_size, tile_size)
        rows_entity = jax.lax.dynamic_slice_in_dim(avatar_entity, tile * tile_size, tile_size)
        sq = originals_sq[:, None] + rows_sq[None, :] - 2.0 * (originals @ rows.T)
        margin = TIE_MARGIN * (originals_sq[:, None] + rows_sq[None, :])
        valid = rows_entity[None, :] >= 0  # padded avatar rows carry entity -1
        same = rows_entity[None, :] == original_entity[:, None]
        return sq, margin, valid, same

    # Pass 1: squared distance to the closest avatar of the original's own entity.
    def own_tile(own, tile):
        sq, _, valid, same = tile_terms(tile)
        return jnp.minimum(own, jnp.min(jnp.where(valid & same, sq, jnp.inf), axis=1)), None

    own, _ = jax.lax.scan(own_tile, jnp.full(originals.shape[0], jnp.inf, originals.dtype), jnp.arange(n_tiles))

    # Pass 2: avatars of other entities strictly closer than that, beyond the tie margin.
    def count_tile(count, tile):
        sq, margin, valid, same = tile_terms(tile)
        closer = (sq < own[:, None] - margin) & valid & ~same
        return count + jnp.sum(closer, axis=1, dtype=jnp.int32), None

    count, _ = jax.lax.scan(count_tile, jnp.zeros(originals.shape[0], jnp.int32), jnp.arange(n_tiles))
    return (count,)


@lru_cache(maxsize=16)
def _count_function(tile_size: int):
    # One stable function object per tile size, so a sharded wrapper is built once.
    return partial(_entity_count_block, tile_size=tile_size)


def entity_closer_avatar_counts(original_coords, avatar_coords, entities, *, block_size: int = BLOCK_SIZE,
                                tile_size: int = TILE_SIZE, mesh: Mesh | None = None,
                                progress: bool | None = None) -> np.ndarray:
    """Count, per original i, the other-entity avatars strictly closer than its own entity's closest.

    Row j of `avatar_coords` is the avatar of original j and belongs to entity entities[j].
    Returns int32 counts c_i of shape (n,), defined in the module docstring. With a `mesh`
    the originals are split across its devices, with the same counts as on one device.
    """
    original_coords = np.asarray(original_coords, np.float64)
    avatar_coords = np.asarray(avatar_coords, np.float64)
    entities = np.asarray(entities)
    n = original_coords.shape[0]
    if avatar_coords.shape != original_coords.shape or entities.shape != (n,):
        raise InputDataError(
            f"originals {original_coords.shape}, avatars {avatar_coords.shape} and entities {entities.shape} "
            "do not match; pass one avatar per original, in original order, and one entity per original."
        )
    # Codes 0..m-1, so -1 can mark padded rows.
    _, codes = np.unique(entities, return_inverse=True)
    codes = codes.reshape(-1).astype(np.int32)

    with jax.enable_x64(True):
        return _entity_counts_float64(original_coords, avatar_coords, codes, block_size, tile_size, mesh, progress)


def _entity_counts_float64(originals, avatars, codes, block_size, tile_size, mesh, progress) -> np.ndarray:
    """Run the blocked two-pass count on float64 copies; the caller enables x64."""
    n, d = originals.shape
    tile_size = min(tile_size, n)
    padded = -(-n // tile_size) * tile_size
    avatars_padded = jnp.zeros((padded, d), jnp.float64).at[:n].set(avatars)
    avatars_sq = jnp.sum(avatars_padded ** 2, axis=1)
    avatar_entity = jnp.full(padded, -1, jnp.int32).at[:n].set(codes)
    # Padded original rows (zeros, entity 0) get counts too, which map_row_blocks cuts off.
    (counts,) = map_row_blocks(_count_function(tile_size), (jnp.asarray(originals), jnp.asarray(codes)),
                               (avatars_padded, avatars_sq, avatar_entity), block_size=min(block_size, n),
                               mesh=mesh, progress=progress, description="entity privacy")
    return np.asarray(counts)


def entity_hidden_rate(original_coords, avatar_coords, entities, **blocks) -> dict:
    """Measure the percentage of originals whose closest avatar comes from another entity.

    Returns the metric entry (avatarjax.metrics.targets.metric_entry); `blocks` passes
    block_size, tile_size, mesh and progress on to entity_closer_avatar_counts.
    """
    counts = entity_closer_avatar_counts(original_coords, avatar_coords, entities, **blocks)
    value = float(np.mean(counts >= 1) * 100.0)
    return metric_entry(ENTITY_PRIVACY_TARGETS["entity_hidden_rate"], value)


def entity_local_cloaking(original_coords, avatar_coords, entities, **blocks) -> dict:
    """Measure the median count of other-entity avatars closer than the own entity's closest avatar.

    Returns the metric entry; `blocks` passes block_size, tile_size, mesh and progress on.
    """
    counts = entity_closer_avatar_counts(original_coords, avatar_coords, entities, **blocks)
    return metric_entry(ENTITY_PRIVACY_TARGETS["entity_local_cloaking"], float(np.median(counts)))


def entity_privacy_metrics(original_coords, avatar_coords, entities, **blocks) -> dict:
    """Compute both entity metrics from one count pass, keyed like ENTITY_PRIVACY_TARGETS."""
    counts = entity_closer_avatar_counts(original_coords, avatar_coords, entities, **blocks)
    values = {
        "entity_hidden_rate": float(np.mean(counts >= 1) * 100.0),
        "entity_local_cloaking": float(np.median(counts)),
    }
    return {name: metric_entry(ENTITY_PRIVACY_TARGETS[name], value) for name, value in values.items()}
