"""Attack-based privacy risks of one anonymization setting, measured on a held-out design.

An attack's success on the anonymized segments alone does not show a leak: the avatars
describe the population, so an attacker also succeeds on segments that were never
anonymized. The design therefore holds out control segments (avatarjax.metrics.attacks):

1. Split. A share of the protected entities (calendar days, for example) is drawn at random,
   in runs of consecutive entities; their segments are the controls. Target segments that share
   a step with any control segment are left out of both sets (the buffer), because an
   overlapping window is nearly a copy of a control and would make the controls look
   anonymized.
2. Anonymize the targets only, with the run's settings (projection, k, weights, seed,
   exclusion radius). The released avatars of the run are not these: they come from all segments.
3. Attack an equal number of sampled targets and controls with the avatars of step 2, in the
   value unit of the resampled curves, and report each risk with its Wilson-based interval and
   the success of random guessing.

Attacks, the first three on the first and second halves of the curve grid:
- linkability: both halves of a segment lead to the same closest avatar (k = 1);
- inference: the mean of the second half, guessed from the avatar closest on the first half,
  within `inference_tolerance` standard deviations of that mean over the evaluated segments;
- membership: the closest avatar lies within the median closest-avatar distance of the pooled
  targets and controls;
- singling out: a predicate on per-curve features (mean, spread, extremes, half means), built
  from the avatars to isolate one avatar, isolates exactly one segment of the attacked set
  (avatarjax.metrics.singling_out).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from avatarjax.config import PrivacyConfig
from avatarjax.errors import InputDataError
from avatarjax.metrics.attacks import (MIN_CONTROL_TRIALS, attack_risk, closest_avatar_distances, inference,
                                       inference_baseline, linkability, membership, random_baseline)
from avatarjax.metrics.singling_out import FEATURES, curve_features, singling_out

logger = logging.getLogger(__name__)

LINKABILITY_K = 1


@dataclass(frozen=True)
class HoldoutSplit:
    """Segment indices of the targets and controls, and what the split left out."""

    target: np.ndarray
    control: np.ndarray
    buffer_segments: int
    control_entities: int
    entities: int


def _control_codes(codes: np.ndarray, share: float, run: int, rng: np.random.Generator) -> np.ndarray:
    """Draw about share * len(codes) entity codes, as whole runs of `run` consecutive codes."""
    runs = [codes[i:i + run] for i in range(0, codes.size, run)]
    requested = max(1, int(round(share * codes.size)))
    n_runs = -(-requested // run)
    if n_runs >= len(runs):
        raise InputDataError(
            f"privacy.control_share={share} with privacy.control_run={run} would hold out {n_runs} of the "
            f"{len(runs)} runs of entities ({codes.size} entities in all), leaving no targets. Lower "
            "privacy.control_share or privacy.control_run; on a series of a few entities, set "
            "privacy.attacks=false."
        )
    chosen = np.sort(rng.choice(len(runs), n_runs, replace=False))
    return np.concatenate([runs[i] for i in chosen])


def holdout_split(entities, start_index, window_steps: int, share: float, run: int, seed: int) -> HoldoutSplit:
    """Hold out the segments of randomly drawn entity runs as controls; see the module docstring."""
    entities = np.asarray(entities)
    start_index = np.asarray(start_index, dtype=np.int64)
    codes = np.unique(entities)
    control_codes = _control_codes(codes, share, run, np.random.default_rng(seed))
    is_control = np.isin(entities, control_codes)

    # Steps covered by some control segment, then each segment's count of covered steps.
    end = int(start_index.max()) + window_steps
    change = np.zeros(end + 1, np.int64)
    np.add.at(change, start_index[is_control], 1)
    np.add.at(change, start_index[is_control] + window_steps, -1)
    covered = np.concatenate([[0], np.cumsum(np.cumsum(change)[:end] > 0)])
    overlaps = covered[start_index + window_steps] - covered[start_index] > 0

    target = np.flatnonzero(~is_control & ~overlaps)
    control = np.flatnonzero(is_control)
    if target.size == 0:
        raise InputDataError(
            f"privacy.control_share={share} leaves no target segment ({codes.size} entities in all): every "
            "segment is a control or overlaps one. Lower privacy.control_share; on a series of a few entities, "
            "set privacy.attacks=false."
        )
    if control.size < MIN_CONTROL_TRIALS:
        raise InputDataError(
            f"The control set has {control.size} segments ({control_codes.size} entities), fewer than "
            f"{MIN_CONTROL_TRIALS}, so the risk intervals would not be meaningful. Raise privacy.control_share "
            "or use a shorter privacy.entity that still covers one window; on a short series, set "
            "privacy.attacks=false."
        )
    return HoldoutSplit(target=target, control=control, buffer_segments=int(entities.size - target.size - control.size),
                        control_entities=int(control_codes.size), entities=int(codes.size))


def _risk_entry(attack, control, baseline: float, **facts) -> dict:
    return {**attack_risk(attack, control), "baseline_rate": baseline, **facts}


def evaluate_attacks(curves: np.ndarray, split: HoldoutSplit, start_index,
                     anonymize: Callable[[np.ndarray, np.ndarray], np.ndarray], cfg: PrivacyConfig,
                     progress: bool | None = None) -> dict:
    """Run the attacks on a hold-out split (`holdout_split`); return the metrics-file section.

    `curves` (n, T) are the originals on the projection grid and `start_index` one value per
    segment. `anonymize(curves, start_index)` returns one avatar curve per given curve, with
    the run's settings.
    """
    curves = np.asarray(curves, dtype=np.float64)
    logger.info("attack evaluation: %d target and %d control segments (%d of %d entities held out), "
                "%d overlapping segments left out", split.target.size, split.control.size,
                split.control_entities, split.entities, split.buffer_segments)
    avatars = np.asarray(anonymize(curves[split.target], np.asarray(start_index)[split.target]), dtype=np.float64)

    rng = np.random.default_rng(cfg.seed + 1)
    trials = min(cfg.attack_trials, split.control.size)
    targets = curves[rng.choice(split.target, trials, replace=False)]
    controls = curves[rng.choice(split.control, trials, replace=False)]
    half = curves.shape[1] // 2

    linked = [linkability(rows[:, :half], rows[:, half:], avatars[:, :half], avatars[:, half:], LINKABILITY_K,
                          progress=progress) for rows in (targets, controls)]

    secret = {name: rows[:, half:].mean(axis=1) for name, rows in (("targets", targets), ("controls", controls))}
    secret_avatars = avatars[:, half:].mean(axis=1)
    tolerance = cfg.inference_tolerance * float(np.std(np.concatenate(list(secret.values()))))
    inferred = [inference(rows[:, :half], secret[name], avatars[:, :half], secret_avatars, tolerance,
                          progress=progress) for name, rows in (("targets", targets), ("controls", controls))]
    guessed = inference_baseline(secret["targets"], secret_avatars, tolerance, key_seed=cfg.seed)

    member, non_member, threshold = membership(closest_avatar_distances(targets, avatars, progress),
                                               closest_avatar_distances(controls, avatars, progress))
    # Predicates isolate one avatar among as many avatars as there are attacked rows, so that
    # they are as specific as the sets they run on.
    sampled_avatars = avatars[rng.choice(avatars.shape[0], trials, replace=False)]
    singled = singling_out(curve_features(targets), curve_features(controls), curve_features(sampled_avatars),
                           seed=cfg.seed)

    return {
        "design": {
            "entity": cfg.entity, "target_segments": int(split.target.size), "control_segments": int(split.control.size),
            "buffer_segments": split.buffer_segments, "control_entities": split.control_entities,
            "entities": split.entities, "trials": int(trials), "known_part": f"first {half} of {curves.shape[1]} grid points",
        },
        "linkability": _risk_entry(*linked, random_baseline(avatars.shape[0], LINKABILITY_K), k=LINKABILITY_K),
        "inference": _risk_entry(*inferred, guessed.rate, tolerance=tolerance,
                                 secret="mean of the second half of the curve"),
        "membership": _risk_entry(member, non_member, 0.5, threshold=threshold),
        "singling_out": _risk_entry(singled[0], singled[1], singled[2].rate, features=list(FEATURES)),
    }
