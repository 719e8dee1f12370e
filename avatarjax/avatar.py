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
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp

from avatarjax.neighbors import knn

# Floor of each neighbour distance, relative to the individual's largest neighbour distance.
RELATIVE_DISTANCE_FLOOR = 1e-3


def _avatar_weights_one(key, distances):
    k = distances.shape[0]
    key_exponential, key_permutation = jax.random.split(key)
    exponential = jax.random.exponential(key_exponential, (k,), dtype=jnp.float32)
    rank = jax.random.permutation(key_permutation, k) + 1
    largest = jnp.max(distances)
    floor = jnp.where(largest > 0, RELATIVE_DISTANCE_FLOOR * largest, 1.0)
    raw = exponential * jnp.exp2(-rank.astype(jnp.float32)) / jnp.maximum(distances, floor)
    return raw / jnp.sum(raw)


def _dirichlet_weights_one(key, distances):
    exponential = jax.random.exponential(key, distances.shape, dtype=jnp.float32)
    return exponential / jnp.sum(exponential)


@partial(jax.jit, static_argnames="method")
def neighbour_weights(key, distances, method: str = "avatar") -> jax.Array:
    """Draw normalized weights (n, k) for every individual's k neighbour distances (n, k).

    One key per individual is split from `key`, so the draw is a pure function of the key.
    """
    keys = jax.random.split(key, distances.shape[0])
    weights_for_one = _avatar_weights_one if method == "avatar" else _dirichlet_weights_one
    return jax.vmap(weights_for_one)(keys, jnp.asarray(distances, jnp.float32))


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


def generate_avatars(key, coordinates, k: int = 20, method: str = "avatar", progress: bool | None = None) -> Avatars:
    """Generate one avatar per row of `coordinates` (n, d) from its k nearest other rows."""
    coordinates = jnp.asarray(coordinates, jnp.float32)
    distance, index = knn(coordinates, None, k, progress=progress)
    weights = neighbour_weights(key, distance, method=method)
    avatars = weighted_neighbour_mean(coordinates, index, weights)
    return Avatars(coordinates=avatars, neighbour_index=index, neighbour_distance=distance, weights=weights)


def release_order(key, n: int) -> jax.Array:
    """Return a random permutation: released avatar j is the avatar of original order[j].

    Privacy: the released file is written in this order with fresh ids, so its row order
    carries no link to the originals. The permutation itself is the link and stays private.
    """
    return jax.random.permutation(key, n)
