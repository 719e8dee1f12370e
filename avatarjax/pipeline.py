"""One anonymization run: load, segment, resample, project, generate, invert, measure.

`anonymize` reads top to bottom as the steps of the avatar method and returns everything in
memory; `avatarjax.release` writes the files. The original-to-avatar link exists only in the
returned object (`release_order`), never in the released arrays.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import jax
import numpy as np

from avatarjax.avatar import generate_avatars, release_order, seed_keys
from avatarjax.attack_evaluation import evaluate_attacks, holdout_split
from avatarjax.config import AnonymizeConfig, DataConfig, exclusion_steps, parse_devices
from avatarjax.data.loading import CleaningPolicy, SensorSeries, bundled_dataset_path, load_series
from avatarjax.errors import InputDataError
from avatarjax.metrics.entity_privacy import entity_of_segments, entity_privacy_metrics
from avatarjax.metrics.privacy import privacy_metrics
from avatarjax.metrics.utility import utility_metrics
from avatarjax.projection.fixed_basis import fit_fixed_basis
from avatarjax.projection.fpca import FPCA, fit_fpca, inverse_transform, transform
from avatarjax.resampling import resample
from avatarjax.segmentation import Segments, segment_series
from avatarjax.sharding import device_mesh

logger = logging.getLogger(__name__)


@dataclass
class AnonymizationResult:
    """Arrays and metrics of one run. Only `released_segments` is meant for release."""

    series: SensorSeries
    segments: Segments
    fpca: FPCA
    original_coordinates: np.ndarray  # (n, ncp), original order
    avatar_coordinates: np.ndarray  # (n, ncp), original order: row i is the avatar of segment i
    original_segments: np.ndarray  # (n, window_steps), the anonymized column
    avatar_segments: np.ndarray  # (n, window_steps), original order
    release_order: np.ndarray  # (n,), released avatar j is the avatar of segment release_order[j]
    released_segments: np.ndarray  # (n, window_steps), shuffled, no link to the originals
    metrics: dict
    timings_s: dict = field(default_factory=dict)


@contextmanager
def timed_stage(timings: dict, stage: str):
    """Time the block under `stage` in timings (seconds, 3 decimals) and log it."""
    start = time.perf_counter()
    yield
    timings[stage] = round(time.perf_counter() - start, 3)
    logger.info("%s took %.2f s.", stage, timings[stage])


def load_configured_series(data: DataConfig) -> SensorSeries:
    """Load the configured CSV (or the bundled dataset) with the configured cleaning policy."""
    path = data.path if data.path else bundled_dataset_path(data.name)
    policy = CleaningPolicy(duplicates=data.duplicates, period=data.period, off_grid=data.off_grid,
                            max_gap_steps=data.max_gap_steps, long_gap=data.long_gap)
    series = load_series(path, timestamp_column=data.timestamp_column, value_columns=[data.value_column],
                         sep=data.sep, policy=policy)
    series.report.log(logger)
    return series


def _check_segment_count(segments: Segments, k: int) -> None:
    if segments.n_segments < k + 1:
        raise InputDataError(
            f"only {segments.n_segments} segments for k = {k} neighbours; each avatar needs k other "
            f"segments. Lower avatar.k to at most {segments.n_segments - 1}, shorten the window or "
            f"use a smaller stride."
        )


def anonymize_series(series: SensorSeries, cfg: AnonymizeConfig, progress: bool | None = None) -> AnonymizationResult:
    """Run every step of the avatar method on a loaded series."""
    timings: dict = {}
    seg_cfg, proj_cfg, avatar_cfg = cfg.segmentation, cfg.projection, cfg.avatar
    mesh = device_mesh(parse_devices(cfg.devices))

    # 1. Segment: each segment is an individual.
    with timed_stage(timings, "segment"):
        segments = segment_series(series, seg_cfg.method, seg_cfg.window, seg_cfg.stride,
                                  seg_cfg.peak_prominence, seg_cfg.peak_distance)
        _check_segment_count(segments, avatar_cfg.k)
        original_segments = segments.values[:, :, 0]
        # Entities and the attack split are checked here, so a series too short for them fails
        # before the expensive steps.
        entities, split = _entities_and_split(cfg, series, segments)

    # 2. Normalize time to [0, 1] and resample onto the common grid of T points.
    grid_points = proj_cfg.grid_points or segments.window_steps
    with timed_stage(timings, "resample"):
        curves = resample(original_segments, grid_points)

    # 3. Project with functional PCA.
    with timed_stage(timings, "project"):
        fpca = _fit_projection(curves, proj_cfg)
        coordinates = jax.block_until_ready(transform(fpca, curves))

    # 4. Generate one avatar per segment from its k nearest neighbours.
    key_avatars, key_release = seed_keys(avatar_cfg.seed)
    radius = exclusion_steps(avatar_cfg.exclude_radius, segments.window_steps, series.period)
    with timed_stage(timings, "generate"):
        avatars = generate_avatars(key_avatars, coordinates, avatar_cfg.k, avatar_cfg.weights, progress=progress,
                                   exclude_radius=radius, positions=segments.start_index, mesh=mesh)
        jax.block_until_ready(avatars.coordinates)

    # 5. Invert the projection and map the grid back to the window's steps.
    with timed_stage(timings, "inverse"):
        avatar_curves = inverse_transform(fpca, avatars.coordinates)
        avatar_segments = np.asarray(resample(avatar_curves, segments.window_steps), dtype=np.float64)

    # 6. Shuffle for release: the released rows carry no index of the originals.
    order = np.asarray(release_order(key_release, segments.n_segments))
    released = avatar_segments[order]

    # 7. Measure privacy in the projected space and utility on the value scale.
    with timed_stage(timings, "privacy_metrics"):
        privacy = privacy_metrics(coordinates, avatars.coordinates, original_segments, released,
                                  cfg.release.significant_digits, progress=progress, mesh=mesh)
    with timed_stage(timings, "utility_metrics"):
        utility = utility_metrics(original_segments, avatar_segments)
    levels = _entity_and_attack_metrics(cfg, segments, entities, split, curves, coordinates, avatars.coordinates,
                                        radius, timings, mesh, progress)

    metrics = {
        "run": _run_facts(cfg, series, segments, fpca, grid_points),
        "cleaning": {"rows_read": series.report.rows_read, "rules": series.report.as_dicts()},
        "segmentation": {"segments": segments.n_segments, "dropped": list(segments.dropped),
                         "remainder_policy": _REMAINDER_POLICY[segments.method]},
        "privacy": privacy,
        **levels,
        "utility": utility,
        "timings_s": timings,
    }
    return AnonymizationResult(
        series=series, segments=segments, fpca=fpca,
        original_coordinates=np.asarray(coordinates), avatar_coordinates=np.asarray(avatars.coordinates),
        original_segments=original_segments, avatar_segments=avatar_segments,
        release_order=order, released_segments=released, metrics=metrics, timings_s=timings,
    )


def _fit_projection(curves, proj_cfg) -> FPCA:
    if proj_cfg.method == "fpca":
        return fit_fpca(curves, proj_cfg.ncp, proj_cfg.variance_share, proj_cfg.quadrature)
    return fit_fixed_basis(curves, proj_cfg.method, proj_cfg.ncp, proj_cfg.variance_share)


def _entities_and_split(cfg: AnonymizeConfig, series: SensorSeries, segments: Segments):
    """Return the segments' entity codes and the attack hold-out split, each None when not requested."""
    privacy_cfg = cfg.privacy
    if privacy_cfg.entity is None:
        if privacy_cfg.attacks:
            logger.warning("privacy.attacks=true is ignored: the attacks hold out whole entities and "
                           "privacy.entity is null.")
        return None, None
    entities = entity_of_segments(segments.start_index, segments.window_steps, series.timestamps,
                                  privacy_cfg.entity, privacy_cfg.entity_rule)
    if not privacy_cfg.attacks:
        return entities, None
    split = holdout_split(entities, segments.start_index, segments.window_steps, privacy_cfg.control_share,
                          privacy_cfg.control_run, privacy_cfg.seed)
    return entities, split


def _entity_and_attack_metrics(cfg: AnonymizeConfig, segments: Segments, entities, split, curves,
                               coordinates, avatar_coordinates, radius: int, timings: dict, mesh,
                               progress: bool | None) -> dict:
    """Return the entity_privacy and attacks sections that cfg.privacy requests (possibly none)."""
    if entities is None:
        return {}
    sections = {}
    with timed_stage(timings, "entity_privacy"):
        sections["entity_privacy"] = entity_privacy_metrics(coordinates, avatar_coordinates, entities, mesh=mesh,
                                                            progress=progress)
    if split is not None:
        def anonymize_targets(target_curves, positions):
            # The run's own settings on the targets only; see avatarjax.attack_evaluation.
            fpca = _fit_projection(target_curves, cfg.projection)
            result = generate_avatars(seed_keys(cfg.avatar.seed)[0], transform(fpca, target_curves), cfg.avatar.k,
                                      cfg.avatar.weights, progress=progress, exclude_radius=radius,
                                      positions=positions, mesh=mesh)
            return inverse_transform(fpca, result.coordinates)

        with timed_stage(timings, "attacks"):
            sections["attacks"] = evaluate_attacks(curves, split, segments.start_index, anonymize_targets,
                                                   cfg.privacy, progress)
    return sections


_REMAINDER_POLICY = {
    "sliding": "Windows start at the first step of each contiguous piece; the last steps of a piece "
               "that do not fill one more stride are left out.",
    "fixed": "Exclusive windows start at the first step of each contiguous piece; the last steps of a "
             "piece that do not fill a whole window are left out.",
    "peak": "One window centred on each detected peak; peaks too close to a piece's ends for a full "
            "window are left out.",
}


def _run_facts(cfg: AnonymizeConfig, series: SensorSeries, segments: Segments, fpca: FPCA, grid_points: int) -> dict:
    period = np.timedelta64(series.period, "s").astype(int)
    return {
        # Only the file name: a full path could name a site or a customer.
        "dataset": Path(cfg.data.path).name if cfg.data.path else cfg.data.name,
        "column": cfg.data.value_column,
        "sampling_period_seconds": int(period),
        "n_segments": segments.n_segments,
        "segmentation": segments.method,
        "window": str(cfg.segmentation.window),
        "window_steps": segments.window_steps,
        "stride": segments.stride,
        "grid_points": grid_points,
        "projection": cfg.projection.method,
        # Fixed bases use the rectangle rule; only FPCA uses the configured quadrature.
        "quadrature": cfg.projection.quadrature if cfg.projection.method == "fpca" else "rectangle",
        "ncp": fpca.ncp,
        "explained_variance_share": float(np.sum(np.asarray(fpca.explained_variance_ratio))),
        "k": cfg.avatar.k,
        "weights": cfg.avatar.weights,
        "seed": cfg.avatar.seed,
        "exclude_radius_steps": exclusion_steps(cfg.avatar.exclude_radius, segments.window_steps, series.period),
        "privacy_entity": cfg.privacy.entity,
        "privacy_attacks": bool(cfg.privacy.attacks and cfg.privacy.entity is not None),
        "control_share": cfg.privacy.control_share,
        "control_run": cfg.privacy.control_run,
        "attack_trials": cfg.privacy.attack_trials,
        "inference_tolerance": cfg.privacy.inference_tolerance,
        "distance_scale": (
            f"Distances are Euclidean between {cfg.projection.method.upper()} score vectors; a score is an L2 inner product "
            f"over normalized time [0, 1], so distances are in the unit of '{cfg.data.value_column}' "
            "and approximate the L2 distance between curves."
        ),
    }


def anonymize(cfg: AnonymizeConfig, progress: bool | None = None) -> AnonymizationResult:
    """Load the configured series and anonymize it."""
    device_mesh(parse_devices(cfg.devices))  # fails on too many devices before any data is read
    start = time.perf_counter()
    series = load_configured_series(cfg.data)
    load_s = round(time.perf_counter() - start, 3)
    result = anonymize_series(series, cfg, progress=progress)
    result.timings_s["load"] = load_s
    result.metrics["timings_s"] = {"load": load_s, **result.metrics["timings_s"]}
    return result
