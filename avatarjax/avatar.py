"""Avatar generation: one synthetic individual per original, from its k nearest neighbours.

For individual i with neighbours j = 1..k at distances d_j (itself excluded by index), the
avatar is the weighted mean of the neighbours' coordinates with normalized weights
- "avatar": w_j = (1 / d_j) * E_j * 2^(-P_j), E_j ~ Exponential(1) independent and P a
  uniformly random permutation of 1..k. This is the rule of Guillaudeau et al., "Patient-centric
  synthetic data generation, no reason to risk re-identification in biomedical data
  analysis" (npj Digital Medicine, 2023); Octopize's exact constants are not published.
- "dirichlet": w_j = E_j / sum(E): a Dirichlet(1, ..., 1) draw, without the 1/d and 2^-P factors.

Zero distances: each d_j is floored at 1e-3 times the largest of the individual's k
distances, so through 1/d one neighbour weighs at most 1000 times more than another. When all
k distances are 0 (k identical copies), the 1/d factor is 1 for all. Weights are always finite.

How the draws are made. `key` is split into one key per individual (row). For "avatar", each
row key is split again into an exponential part and a permutation part, and "dirichlet" uses
the row key as its exponential part. The value of column j is drawn from
`jax.random.fold_in(part, j)`: E_j from the exponential part and 32 uniform random bits U_j
from the permutation part. P_j is the rank of U_j among the k columns in use (equal draws,
which are rare, are ordered by column). So the draw of column j does not depend on k, and
the weights for k neighbours are those of a padded table of k_max >= k columns with
`active=k`: the extra columns get weight 0 and take no part in the floor, the ranks or the
normalization. This is what lets a sweep over k share one k_max neighbour table and one
compiled program (`avatarjax.avatar_sweep`). `weight_draws` makes the random part once per
key and `weights_from_draws` turns it into weights for any active <= k_max.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from avatarjax.neighbors import knn

# Floor of each neighbour distance, relative to the individual's largest neighbour distance.
RELATIVE_DISTANCE_FLOOR = 1e-3

WEIGHT_METHODS = ("avatar", "dirichlet")


def seed_keys(seed: int) -> tuple[jax.Array, jax.Array]:
    """Derive (avatar key, release-order key) from an integer seed.

    The pipeline and the batched sweep both call this, so a seed gives the same avatars in both.
    """
    key_avatars, key_release = jax.random.split(jax.random.key(seed))
    return key_avatars, key_release


class WeightDraws(NamedTuple):
    """Random draws behind the weights of n rows of k_max neighbour columns, for any active <= k_max.

    `order` and `position` are None for the "dirichlet" method, which has no permutation.
    """

    exponential: jax.Array  # (n, k_max) float32, E_j ~ Exponential(1)
    order: jax.Array | None  # (n, k_max) int32: columns sorted by their uniform draw U_j
    position: jax.Array | None  # (n, k_max) int32: the place of each column in `order`


def _column_draws(key, n_columns: int, draw) -> jax.Array:
    """Draw one value per column j from fold_in(key, j), so a column's value does not depend on n_columns."""
    return jax.vmap(lambda column: draw(jax.random.fold_in(key, column)))(jnp.arange(n_columns))


def _exponential(key):
    return jax.random.exponential(key, dtype=jnp.float32)


def _uniform_bits(key):
    return jax.random.bits(key, dtype=jnp.uint32)


def _sort_columns(uniform):
    # A stable sort orders equal draws by column, so the order is a strict total order.
    order = jnp.argsort(uniform, stable=True).astype(jnp.int32)
    position = jnp.zeros_like(order).at[order].set(jnp.arange(len(order), dtype=jnp.int32))
    return order, position


def _row_draws(key, k_max: int, method: str) -> WeightDraws:
    if method == "dirichlet":
        return WeightDraws(_column_draws(key, k_max, _exponential), None, None)
    key_exponential, key_permutation = jax.random.split(key)
    exponential = _column_draws(key_exponential, k_max, _exponential)
    order, position = _sort_columns(_column_draws(key_permutation, k_max, _uniform_bits))
    return WeightDraws(exponential, order, position)


@partial(jax.jit, static_argnames=("n", "k_max", "method"))
def weight_draws(key, n: int, k_max: int, method: str = "avatar") -> WeightDraws:
    """Draw the random part of the weights of n rows of k_max columns, shared by every active <= k_max.

    One key per row is split from `key`. This is the step a sweep shares between all points
    with the same seed.
    """
    keys = jax.random.split(key, n)
    return jax.vmap(_row_draws, in_axes=(0, None, None))(keys, k_max, method)


def _ranks_from_order(order, position, active):
    # The rank of active column j is 1 + the number of active columns sorted before it, which
    # is the count of active columns in `order` up to and including j's place.
    active_in_order = (order < active).astype(jnp.int32)
    rank = jnp.cumsum(active_in_order)[position]
    return jnp.where(jnp.arange(len(order)) < active, rank, 0)


def permutation_ranks(uniform, active) -> jax.Array:
    """Rank each of the first `active` entries of `uniform` (k_max,) among those entries: 1..active.

    The rank of entry j is 1 + the number of active entries smaller than it, with equal values
    ordered by column, so the active ranks are always a permutation of 1..active. Entries at
    columns >= active get rank 0.
    """
    order, position = _sort_columns(jnp.asarray(uniform))
    return _ranks_from_order(order, position, active)


def _avatar_weights_one(draws: WeightDraws, distances, active):
    is_active = jnp.arange(distances.shape[0]) < active
    rank = _ranks_from_order(draws.order, draws.position, active)

    # Distances are >= 0, so masking the inactive ones with 0 leaves the largest active distance.
    largest = jnp.max(jnp.where(is_active, distances, 0.0))
    floor = jnp.where(largest > 0, RELATIVE_DISTANCE_FLOOR * largest, 1.0)
    inverse_distance = 1.0 / jnp.maximum(jnp.where(is_active, distances, floor), floor)
    # NOTE: 2^-rank underflows to 0 in float32 beyond rank 126 (149 where subnormals are kept),
    # so with k above that the last ranks weigh 0.
    raw = jnp.where(is_active, draws.exponential * jnp.exp2(-rank.astype(jnp.float32)) * inverse_distance, 0.0)
    return raw / jnp.sum(raw)


def _dirichlet_weights_one(draws: WeightDraws, distances, active):
    is_active = jnp.arange(distances.shape[0]) < active
    raw = jnp.where(is_active, draws.exponential, 0.0)
    return raw / jnp.sum(raw)


@partial(jax.jit, static_argnames="method")
def weights_from_draws(draws: WeightDraws, distances, active, method: str = "avatar") -> jax.Array:
    """Compute normalized weights (n, k_max) from `draws` and distances (n, k_max), using the first `active` columns.

    `active` may be traced. It is not checked here, so it must follow the contract of neighbour_weights.
    """
    weights_for_one = _avatar_weights_one if method == "avatar" else _dirichlet_weights_one
    return jax.vmap(weights_for_one, in_axes=(0, 0, None))(draws, distances, active)


def neighbour_weights(key, distances, method: str = "avatar", active=None) -> jax.Array:
    """Draw normalized weights (n, k_max) for every individual's neighbour distances (n, k_max).

    Only the first `active` columns are used (None: all k_max). `active` may be a Python int or
    a traced int scalar, so one compiled program serves every k up to k_max. Columns >= active
    get weight exactly 0. A Python int outside 1..k_max raises ValueError. A traced value is
    not checked: the caller must keep it in that range, because active = 0 gives NaN weights.

    One key per individual is split from `key`, so the draw is a pure function of the key.
    """
    if method not in WEIGHT_METHODS:
        raise ValueError(f"weight method {method!r} is unknown; use one of {', '.join(WEIGHT_METHODS)}.")
    distances = jnp.asarray(distances, jnp.float32)
    k_max = distances.shape[1]
    if active is None:
        active = k_max
    elif isinstance(active, numbers.Integral) and not 1 <= active <= k_max:
        raise ValueError(f"active = {active} columns requested from a table of {k_max} neighbour columns; "
                         f"choose active between 1 and {k_max}.")
    return _neighbour_weights(key, distances, active, method=method)


@partial(jax.jit, static_argnames="method")
def _neighbour_weights(key, distances, active, method):
    draws = weight_draws(key, distances.shape[0], distances.shape[1], method)
    return weights_from_draws(draws, distances, active, method)


@jax.jit
def weighted_neighbour_mean(coordinates, neighbour_index, weights):
    """Return each avatar's coordinates: the weighted mean of its neighbours' coordinates."""
    return jnp.einsum("nk,nkd->nd", weights, coordinates[neighbour_index])


@dataclass(frozen=True)
class Avatars:
    """Avatar coordinates in original order (row i is the avatar of individual i), and their neighbourhoods."""

    coordinates: jax.Array  # (n, d)
    neighbour_index: jax.Array  # (n, k)
    neighbour_distance: jax.Array  # (n, k)
    weights: jax.Array  # (n, k)


def generate_avatars(key, coordinates, k: int = 20, method: str = "avatar", progress: bool | None = None,
                     exclude_radius: int = 0, positions=None, mesh=None) -> Avatars:
    """Generate one avatar per row of `coordinates` (n, d) from its k nearest other rows.

    With `exclude_radius` > 0, rows whose `positions` (n,) differ from the row's own by less
    than the radius are not neighbours (see `avatarjax.neighbors.knn`). For stride-1 sliding
    windows, positions = start_index and radius = window length in steps keep every window
    that overlaps the original out of its avatar. Radius 0 gives exactly the avatars without
    exclusion. With a `mesh` (avatarjax.sharding.device_mesh) the neighbour search splits its
    rows across the mesh's devices, with the same result as on one device.
    """
    coordinates = jnp.asarray(coordinates, jnp.float32)
    distance, index = knn(coordinates, None, k, progress=progress, exclude_radius=exclude_radius,
                          positions=positions, mesh=mesh)
    weights = neighbour_weights(key, distance, method=method)
    avatars = weighted_neighbour_mean(coordinates, index, weights)
    return Avatars(coordinates=avatars, neighbour_index=index, neighbour_distance=distance, weights=weights)


def release_order(key, n: int) -> jax.Array:
    """Return a random permutation: released avatar j is the avatar of original order[j].

    Privacy: the released file is written in this order with fresh ids, so its row order
    carries no link to the originals. The permutation itself is the link and stays private.
    """
    return jax.random.permutation(key, n)
