"""Singling-out attack on per-curve features, after the multivariate attack of anonymeter.

Threat model: the attacker wants a predicate that isolates one real segment, for example "mean
of at least 93, maximum of at most 95 and second-half mean of at least 92". The attacker
builds predicates from the avatars: take a random avatar, a few random features, and for each
feature the condition "at least" or "at most" the avatar's value. A predicate is kept when it
matches exactly that one avatar. It succeeds on a set of segments when it matches exactly one
of them.

Targets, controls and the avatars the predicates come from are compared at one size: the
caller samples as many avatars as targets and controls. So the control success measures how
often such predicates single out one segment of any set of that size, and only the excess
counts as risk (avatarjax.metrics.attacks.attack_risk). With more avatars than attacked rows,
a predicate that isolates one avatar would usually match no attacked row at all. The random baseline draws each feature value of the
"avatar" independently from that feature's values among the avatars, which keeps the marginals
but breaks the joint shape.
"""

from __future__ import annotations

import numpy as np

from avatarjax.errors import InputDataError
from avatarjax.metrics.attacks import SuccessRate

FEATURES = ("mean", "std", "min", "max", "first_half_mean", "second_half_mean")
CONDITIONS_PER_PREDICATE = 3
# Candidate predicates drawn per requested predicate, because most candidates match more than
# one avatar and are dropped.
CANDIDATES_PER_QUERY = 20
# Compared values per block of predicates (rows x predicates x conditions), about 130 MB of
# float64, so memory stays bounded for any number of rows.
BLOCK_VALUES = 2**24


def curve_features(curves) -> np.ndarray:
    """Return the FEATURES of every curve (row) as an (n, 6) float64 array, in the unit of the values."""
    curves = np.asarray(curves, dtype=np.float64)
    half = curves.shape[1] // 2
    return np.column_stack([curves.mean(axis=1), curves.std(axis=1), curves.min(axis=1), curves.max(axis=1),
                            curves[:, :half].mean(axis=1), curves[:, half:].mean(axis=1)])


def _matches(rows: np.ndarray, columns: np.ndarray, values: np.ndarray, at_least: np.ndarray) -> np.ndarray:
    """Count, per predicate, the rows that satisfy all its conditions. Predicate inputs are (q, c) arrays."""
    counts = np.empty(columns.shape[0], np.int64)
    block = max(1, BLOCK_VALUES // (rows.shape[0] * CONDITIONS_PER_PREDICATE))
    for start in range(0, columns.shape[0], block):
        part = slice(start, start + block)
        selected = rows[:, columns[part]]  # (n, q, c)
        satisfied = np.where(at_least[part], selected >= values[part], selected <= values[part])
        counts[part] = satisfied.all(axis=2).sum(axis=0)
    return counts


def _draw_predicates(source: np.ndarray, features: np.ndarray, n_candidates: int, rng: np.random.Generator):
    """Draw candidate predicates from rows of `source` and keep those matching one row of `features`."""
    n_features = features.shape[1]
    anchor = source[rng.integers(0, source.shape[0], n_candidates)]
    columns = np.argsort(rng.random((n_candidates, n_features)), axis=1)[:, :CONDITIONS_PER_PREDICATE]
    values = np.take_along_axis(anchor, columns, axis=1)
    at_least = rng.random((n_candidates, CONDITIONS_PER_PREDICATE)) < 0.5
    unique = _matches(features, columns, values, at_least) == 1
    return columns[unique], values[unique], at_least[unique]


def singling_out(target_features, control_features, avatar_features, n_queries: int = 500, seed: int = 0,
                 confidence: float = 0.95) -> tuple[SuccessRate, SuccessRate, SuccessRate]:
    """Return the success rates on targets, on controls and of random predicates.

    Feature arrays are (rows, features) as built by `curve_features`. Targets and controls must
    have the same number of rows, because both rates must refer to sets of one size. Raises
    InputDataError when they differ, or when fewer than 30 predicates single out one avatar.
    """
    target_features = np.asarray(target_features, dtype=np.float64)
    control_features = np.asarray(control_features, dtype=np.float64)
    avatar_features = np.asarray(avatar_features, dtype=np.float64)
    if target_features.shape != control_features.shape:
        raise InputDataError(
            f"targets {target_features.shape} and controls {control_features.shape} differ in shape; sample "
            "as many targets as controls so both success rates refer to sets of one size."
        )
    rng = np.random.default_rng(seed)
    columns, values, at_least = _draw_predicates(avatar_features, avatar_features,
                                                 n_queries * CANDIDATES_PER_QUERY, rng)
    if columns.shape[0] < 30:
        raise InputDataError(
            f"only {columns.shape[0]} of {n_queries * CANDIDATES_PER_QUERY} candidate predicates single out one "
            "avatar, too few for an interval; the avatars are too few or too alike for this attack."
        )
    columns, values, at_least = columns[:n_queries], values[:n_queries], at_least[:n_queries]
    rates = [SuccessRate.from_counts(int(np.sum(_matches(rows, columns, values, at_least) == 1)), columns.shape[0],
                                     confidence) for rows in (target_features, control_features)]

    # Random predicates: each feature of the anchor drawn on its own from the avatars' values.
    shuffled = np.column_stack([rng.permutation(avatar_features[:, j]) for j in range(avatar_features.shape[1])])
    columns, values, at_least = _draw_predicates(shuffled, avatar_features, n_queries * CANDIDATES_PER_QUERY, rng)
    columns, values, at_least = columns[:n_queries], values[:n_queries], at_least[:n_queries]
    hits = int(np.sum(_matches(target_features, columns, values, at_least) == 1)) if columns.size else 0
    baseline = SuccessRate.from_counts(hits, max(columns.shape[0], 1), confidence)
    return rates[0], rates[1], baseline
