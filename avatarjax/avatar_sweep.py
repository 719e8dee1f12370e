"""All avatar sets of a sweep over k and the seed, in one compiled call.

A sweep point is a pair (k, seed). `generate_avatar_sets` runs one neighbour search with
k_max = max(ks), then one jitted call. Inside it, the random draws of the weights are made
once per distinct seed (vmapped over seeds). A vmap over the points then turns them into the
weights of point p with `active=k_p` on the shared k_max table, and averages the neighbours.
k is a traced int, so sweeps with the same number of points, of distinct seeds and the same
k_max reuse one compiled program, whatever their values of k.

The weight draws are prefix-consistent in k (see `avatarjax.avatar`), so point p equals
`generate_avatars(seed_keys(seed_p)[0], coordinates, k_p)` up to float rounding. The
exception is a row with two neighbours whose distances around the k-th column are equal
within float32 rounding. The search with k and the search with k_max may then list
different ones, because `knn` screens with float32 distances and can swap such neighbours.

Memory: the call keeps the draws of every distinct seed (three (n, k_max) arrays each) and
the (n, k_max) weights of all P points at once, next to the (n, k_max, d) neighbour
coordinates. scripts/benchmark_sweep.py reports the measured peak RSS.
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp

from avatarjax.avatar import WEIGHT_METHODS, seed_keys, weight_draws, weighted_neighbour_mean, weights_from_draws
from avatarjax.errors import InputDataError
from avatarjax.neighbors import knn


@dataclass(frozen=True)
class AvatarSets:
    """Avatar coordinates of every sweep point, and the neighbour table they share."""

    coordinates: jax.Array  # (P, n, d): row i of point p is the avatar of individual i
    ks: tuple[int, ...]  # (P,): k of each point
    seeds: tuple[int, ...]  # (P,): seed of each point; its avatar key is seed_keys(seed)[0]
    neighbour_index: jax.Array  # (n, k_max), sorted by increasing distance
    neighbour_distance: jax.Array  # (n, k_max)


def sweep_grid(ks: Sequence[int], seeds: Sequence[int]) -> tuple[list[int], list[int]]:
    """Return the (ks, seeds) lists of every combination of k and seed, k varying slowest."""
    pairs = list(itertools.product(ks, seeds))
    return [k for k, _ in pairs], [seed for _, seed in pairs]


def _check_sweep(n: int, ks: Sequence[int], seeds: Sequence[int], method: str) -> None:
    if len(ks) == 0 or len(seeds) == 0:
        raise ValueError(f"a sweep needs at least one point; got {len(ks)} values of k and {len(seeds)} "
                         f"seeds. Pass one k and one seed per point (sweep_grid builds every combination).")
    if len(ks) != len(seeds):
        raise ValueError(f"got {len(ks)} values of k but {len(seeds)} seeds; point p is (ks[p], seeds[p]), "
                         f"so pass lists of equal length (sweep_grid builds every combination).")
    for name, values in (("k", ks), ("seed", seeds)):
        for value in values:
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"{name} = {value!r} is invalid; every {name} of the sweep must be an integer.")
    for k in ks:
        if k < 1:
            raise InputDataError(f"k = {k} is invalid; every k of the sweep must be at least 1 neighbour.")
        if k > n - 1:
            raise InputDataError(
                f"k = {k} neighbours requested but each of the {n} rows has only {n - 1} other rows; "
                f"choose every k between 1 and {n - 1}, or provide more segments."
            )
    if method not in WEIGHT_METHODS:
        raise ValueError(f"weight method {method!r} is unknown; use one of {', '.join(WEIGHT_METHODS)}.")


@partial(jax.jit, static_argnames="method")
def _avatar_sets(keys, point_seed, ks, coordinates, neighbour_index, neighbour_distance, method):
    """Return the avatars (P, n, d) of points p = (ks[p], keys[point_seed[p]])."""
    n, k_max = neighbour_distance.shape

    # The draws depend on the seed only, so they are made once per distinct seed.
    draws = jax.vmap(lambda key: weight_draws(key, n, k_max, method))(keys)

    def one_point(seed_index, k):
        point_draws = jax.tree.map(lambda draw: draw[seed_index], draws)
        weights = weights_from_draws(point_draws, neighbour_distance, k, method)
        return weighted_neighbour_mean(coordinates, neighbour_index, weights)

    return jax.vmap(one_point)(point_seed, ks)


def generate_avatar_sets(coordinates, ks: Sequence[int], seeds: Sequence[int], method: str = "avatar",
                         progress: bool | None = None) -> AvatarSets:
    """Generate the avatars of every sweep point (ks[p], seeds[p]) from one k_max neighbour search.

    `coordinates` is (n, d). Each seed is turned into its avatar key with `seed_keys`, as the
    pipeline does, so a point reproduces the pipeline's avatars for that k and seed.
    Raises InputDataError when a k is outside 1..n-1, and ValueError for empty or unequal
    lists, a non-integer k or seed, or an unknown method.
    """
    coordinates = jnp.asarray(coordinates, jnp.float32)
    if coordinates.ndim != 2:
        raise InputDataError(f"coordinates must be a 2-D (n, d) array; got shape {coordinates.shape}.")
    if coordinates.shape[0] < 2:
        raise InputDataError(f"got {coordinates.shape[0]} rows of coordinates; avatars need at least 2 rows, "
                             f"so each row has another one as neighbour.")
    ks, seeds = list(ks), list(seeds)
    _check_sweep(coordinates.shape[0], ks, seeds, method)
    ks, seeds = tuple(int(k) for k in ks), tuple(int(seed) for seed in seeds)

    # 1. One neighbour search for the largest k; a smaller k uses the first k columns.
    distance, index = knn(coordinates, None, max(ks), progress=progress)

    # 2. One compiled call over all points, with the avatar keys the pipeline derives.
    distinct_seeds = sorted(set(seeds))
    keys = jnp.stack([seed_keys(seed)[0] for seed in distinct_seeds])
    point_seed = jnp.asarray([distinct_seeds.index(seed) for seed in seeds], jnp.int32)
    avatars = _avatar_sets(keys, point_seed, jnp.asarray(ks, jnp.int32), coordinates, index, distance,
                           method=method)
    return AvatarSets(coordinates=avatars, ks=ks, seeds=seeds, neighbour_index=index, neighbour_distance=distance)
