"""Attack-based privacy risk of avatar segments, measured against a control set.

Method: Giomi et al., "A Unified Framework for Quantifying Privacy Risk in Synthetic Data",
PoPETs 2023 (the approach of the anonymeter package by Statice). An attack runs three times:
on the target originals, which were anonymized, on control originals, which were kept out of
anonymization, and as random guessing. The control measures what the attacker gains from the
avatars describing the population in general. Only success beyond the control counts as risk:

    risk = (attack rate - control rate) / (1 - control rate)

so 0 means the avatars leak nothing specific to their originals and 1 means every target the
control misses is found. Each rate comes with a Wilson score interval.

Linkability attack. Threat model: the attacker has two disjoint parts of one original segment
from two different sources, for example the first and the second half of a window in value
units. The attacker wants to know whether both parts come from the same record. The attacker searches
each part among the same part of every avatar segment (Euclidean distance, so in the value
unit of the series). The attack succeeds on a segment when the k avatars closest on the first
part and the k avatars closest on the second part share at least one avatar. A success rate is
the share of segments with a success. The same attack on control segments succeeds only
because similar curves have similar avatars, and random guessing succeeds with the
probability that two random k-subsets of the n avatars intersect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from avatarjax.errors import InputDataError
from avatarjax.neighbors import knn

# Below 30 control segments the 95 % Wilson interval of a control rate near 0.5 is wider than
# +-0.17, too wide for a useful risk interval. This is a rule of thumb, not a derived bound.
MIN_CONTROL_TRIALS = 30


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Return the Wilson score interval (low, high) of a binomial proportion successes / trials."""
    if trials < 1:
        raise ValueError(f"trials = {trials} is invalid; a success rate needs at least 1 trial.")
    if not 0 <= successes <= trials:
        raise ValueError(f"successes = {successes} is invalid; it must lie in [0, trials = {trials}].")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence = {confidence} is invalid; it must lie strictly between 0 and 1.")

    z = float(norm.ppf(1.0 - (1.0 - confidence) / 2.0))
    p = successes / trials
    denominator = 1.0 + z * z / trials
    center = (p + z * z / (2.0 * trials)) / denominator
    half_width = z / denominator * math.sqrt(p * (1.0 - p) / trials + z * z / (4.0 * trials * trials))

    # In exact arithmetic the lower bound is 0 at p = 0 and the upper bound 1 at p = 1; float
    # rounding leaves residues such as 4e-19, so those ends are set exactly.
    low = 0.0 if successes == 0 else max(0.0, center - half_width)
    high = 1.0 if successes == trials else min(1.0, center + half_width)
    return low, high


@dataclass(frozen=True)
class SuccessRate:
    """Successes of an attack out of its trials, with the rate and its Wilson interval."""

    successes: int
    trials: int
    rate: float
    low: float
    high: float

    @classmethod
    def from_counts(cls, successes: int, trials: int, confidence: float = 0.95) -> SuccessRate:
        """Build the rate successes / trials and its Wilson interval at `confidence`."""
        low, high = wilson_interval(successes, trials, confidence)
        return cls(successes=int(successes), trials=int(trials), rate=successes / trials, low=low, high=high)


def attack_risk(attack: SuccessRate, control: SuccessRate) -> dict:
    """Compute the risk (attack - control) / (1 - control) and its interval from the two rates.

    risk = 1 - (1 - attack) / (1 - control) increases with the attack rate and decreases with
    the control rate. Its extremes over the two Wilson intervals are therefore
    low = (attack.low - control.high) / (1 - control.high) and
    high = (attack.high - control.low) / (1 - control.low).
    NOTE: this conservative propagation is ours; anonymeter may combine the two intervals
    differently. The value and the bounds are not clipped: a negative risk means the attack
    did worse on the targets than on the controls, and clipping at 0 would hide that.
    """
    if control.trials < MIN_CONTROL_TRIALS:
        raise InputDataError(
            f"The control set has {control.trials} segments, fewer than {MIN_CONTROL_TRIALS}, so the "
            f"interval of the risk is not meaningful; hold out at least {MIN_CONTROL_TRIALS} original "
            "segments as controls."
        )
    if control.high >= 1.0:
        raise InputDataError(
            f"The control success rate is {control.rate:.4g} with upper bound {control.high:.4g}. At 1 the "
            "attack succeeds by similarity alone, so no risk is measurable. Use an attack with a smaller "
            "k or controls less similar to the targets."
        )

    return {
        "value": (attack.rate - control.rate) / (1.0 - control.rate),
        "low": (attack.low - control.high) / (1.0 - control.high),
        "high": (attack.high - control.low) / (1.0 - control.low),
        "attack_rate": attack.rate,
        "attack_low": attack.low,
        "attack_high": attack.high,
        "attack_trials": attack.trials,
        "control_rate": control.rate,
        "control_low": control.low,
        "control_high": control.high,
        "control_trials": control.trials,
    }


def linkability(first_part_originals, second_part_originals, first_part_avatars, second_part_avatars,
                k: int = 1, confidence: float = 0.95, progress: bool | None = None) -> SuccessRate:
    """Run the linkability attack: success when both parts of an original share a k-nearest avatar.

    Originals are (m, T1) and (m, T2) and avatars (n, T1) and (n, T2), with one row per segment.
    The two parts are disjoint columns of the same segments. Avatars may be in any order,
    because success does not use the link from originals to avatars.
    NOTE: knn breaks distance ties arbitrarily, so exact duplicate avatars can change a success.
    """
    first_part_originals = np.asarray(first_part_originals)
    second_part_originals = np.asarray(second_part_originals)
    n_avatars = np.shape(first_part_avatars)[0]
    if first_part_originals.shape[0] != second_part_originals.shape[0]:
        raise InputDataError(
            f"The two parts of the originals have {first_part_originals.shape[0]} and "
            f"{second_part_originals.shape[0]} rows; pass both parts of the same segments."
        )
    if np.shape(second_part_avatars)[0] != n_avatars:
        raise InputDataError(
            f"The two parts of the avatars have {n_avatars} and {np.shape(second_part_avatars)[0]} rows; "
            "pass both parts of the same avatar segments."
        )

    _, first_index = knn(first_part_originals, first_part_avatars, k, progress=progress)
    _, second_index = knn(second_part_originals, second_part_avatars, k, progress=progress)

    # This step compares (m, k, k) indices, so its memory does not depend on n.
    first_index = np.asarray(first_index)
    second_index = np.asarray(second_index)
    shared = (first_index[:, :, None] == second_index[:, None, :]).any(axis=(1, 2))
    return SuccessRate.from_counts(int(shared.sum()), int(shared.shape[0]), confidence)


def random_baseline(n_avatars: int, k: int) -> float:
    """Return the probability that two independent uniform k-subsets of n avatars intersect.

    This is the linkability success rate of an attacker who picks both k-subsets at random:
    1 - C(n - k, k) / C(n, k), exact (hypergeometric probability of no common avatar).
    """
    if n_avatars < 1:
        raise ValueError(f"n_avatars = {n_avatars} is invalid; at least 1 avatar is needed.")
    if not 1 <= k <= n_avatars:
        raise ValueError(f"k = {k} is invalid; it must lie in [1, n_avatars = {n_avatars}].")

    # math.comb is exact on integers, and int / int division rounds the ratio once, even when
    # both binomials exceed the float range.
    return 1.0 - math.comb(n_avatars - k, k) / math.comb(n_avatars, k)


def inference(known_originals, secret_originals, known_avatars, secret_avatars, tolerance: float,
              confidence: float = 0.95, progress: bool | None = None, relative: bool = False) -> SuccessRate:
    """Run the inference attack: guess each original's secret from the avatar closest on the known part.

    Threat model: the attacker has part of a segment (`known_originals`, (m, T1), for example
    its first half) and wants a secret value about the rest (`secret_originals`, (m,), for
    example the mean of the second half). The attacker takes the avatar closest on the known
    part (Euclidean) and guesses its secret. A guess succeeds when |guess - secret| <= tolerance,
    in the secret's unit, or with `relative` when |guess - secret| <= tolerance * |guess|, the
    rule of anonymeter's numeric inference. Avatars may be in any order: no link to the
    originals is used.
    """
    known_originals = np.asarray(known_originals)
    secret_originals = np.asarray(secret_originals, dtype=np.float64)
    secret_avatars = np.asarray(secret_avatars, dtype=np.float64)
    if known_originals.shape[0] != secret_originals.shape[0]:
        raise InputDataError(
            f"{known_originals.shape[0]} known parts but {secret_originals.shape[0]} secrets; pass one secret "
            "per original segment."
        )
    if np.shape(known_avatars)[0] != secret_avatars.shape[0]:
        raise InputDataError(
            f"{np.shape(known_avatars)[0]} avatar known parts but {secret_avatars.shape[0]} avatar secrets; "
            "pass one secret per avatar segment."
        )
    if not tolerance > 0:
        raise InputDataError(f"tolerance = {tolerance} is invalid; give a positive distance in the secret's unit.")
    _, nearest = knn(known_originals, known_avatars, 1, progress=progress)
    guesses = secret_avatars[np.asarray(nearest)[:, 0]]
    limit = tolerance * np.abs(guesses) if relative else tolerance
    correct = np.abs(guesses - secret_originals) <= limit
    return SuccessRate.from_counts(int(correct.sum()), int(correct.shape[0]), confidence)


def inference_baseline(secret_originals, secret_avatars, tolerance: float, key_seed: int = 0,
                       confidence: float = 0.95) -> SuccessRate:
    """Guess each secret from a uniformly drawn avatar: the success of an attacker who ignores the known part."""
    secret_originals = np.asarray(secret_originals, dtype=np.float64)
    secret_avatars = np.asarray(secret_avatars, dtype=np.float64)
    rng = np.random.default_rng(key_seed)
    guesses = secret_avatars[rng.integers(0, secret_avatars.shape[0], secret_originals.shape[0])]
    correct = np.abs(guesses - secret_originals) <= tolerance
    return SuccessRate.from_counts(int(correct.sum()), int(correct.shape[0]), confidence)


def closest_avatar_distances(segments, avatars, progress: bool | None = None) -> np.ndarray:
    """Distance from every segment (row) to its closest avatar, as float64."""
    distance, _ = knn(segments, avatars, 1, progress=progress)
    return np.asarray(distance, dtype=np.float64)[:, 0]


def membership(target_distances, control_distances, confidence: float = 0.95) -> tuple[SuccessRate, SuccessRate, float]:
    """Run the membership attack on distances to the closest avatar; return (targets, controls, threshold).

    Threat model: the attacker has candidate segments, some anonymized (targets) and some not
    (controls), and calls a candidate a member when its closest avatar lies within a threshold.
    The threshold is the median distance over all candidates, which the attacker can compute
    without knowing who is a member. Success on targets is the share called members (true
    positives); success on controls is the share wrongly called members, so the risk formula
    gives the advantage of the attack over a guess that does not depend on membership.
    """
    target_distances = np.asarray(target_distances, dtype=np.float64)
    control_distances = np.asarray(control_distances, dtype=np.float64)
    threshold = float(np.median(np.concatenate([target_distances, control_distances])))
    # Candidates at the threshold are called members on both sides alike, so ties favour no side.
    targets = SuccessRate.from_counts(int(np.sum(target_distances <= threshold)), target_distances.size, confidence)
    controls = SuccessRate.from_counts(int(np.sum(control_distances <= threshold)), control_distances.size,
                                       confidence)
    return targets, controls, threshold
