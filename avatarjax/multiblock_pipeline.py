"""One anonymization of several blocks at once: project each block, generate avatars jointly, invert each block.

`anonymize_blocks` reads top to bottom as the steps of the avatar method for several blocks
(weighting and the joint space are described in avatarjax/blocks.py). It returns everything
in memory; avatarjax/blocks_release.py writes the files. The original-to-avatar link exists
only in the returned object (`release_order`), never in the released tables.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jax
import numpy as np
import pandas as pd

from avatarjax.avatar import generate_avatars, release_order, seed_keys
from avatarjax.block_data import build_blocks, columns_to_load, load_block_series
from avatarjax.blocks import (
    BlockLayout,
    StaticBlock,
    TemporalBlock,
    block_scale,
    check_matching_ids,
    concatenate_blocks,
    split_blocks,
)
from avatarjax.config import AvatarConfig
from avatarjax.config_blocks import AnonymizeBlocksConfig, AttackConfig
from avatarjax.errors import InputDataError
from avatarjax.multiblock_metrics import (
    attack_table,
    joint_privacy_metrics,
    row_match_metrics,
    static_privacy_metrics,
    utility_by_block,
)
from avatarjax.pipeline import timed_stage
from avatarjax.projection import static as static_projection
from avatarjax.projection.fixed_basis import fit_fixed_basis
from avatarjax.projection.fpca import FPCA, fit_fpca, inverse_transform, transform
from avatarjax.resampling import resample

logger = logging.getLogger(__name__)


@dataclass
class BlockAnonymizationResult:
    """Arrays and metrics of one multi-block run. Only the `released_*` tables are meant for release."""

    ids: np.ndarray  # (n,), original individual ids, original order
    layout: BlockLayout  # block names and their columns in the joint space
    scales: dict[str, float]  # weighting factor of each block
    projections: dict  # block name -> FPCA or StaticProjection
    original_coordinates: np.ndarray  # (n, d), weighted joint coordinates, original order
    avatar_coordinates: np.ndarray  # (n, d), weighted; row i is the avatar of individual i
    neighbour_index: np.ndarray  # (n, k), rows of the neighbours each avatar was drawn from
    neighbour_weights: np.ndarray  # (n, k), their normalized weights
    original_temporal: dict[str, np.ndarray]  # block -> (n, steps)
    avatar_temporal: dict[str, np.ndarray]  # block -> (n, steps), original order
    original_static: pd.DataFrame | None
    avatar_static: pd.DataFrame | None  # original order
    static_name: str | None
    release_order: np.ndarray  # (n,), released avatar j is the avatar of individual release_order[j]
    metrics: dict
    timings_s: dict = field(default_factory=dict)

    def released_temporal(self) -> dict[str, np.ndarray]:
        """Avatar segments of each temporal block in release order (shuffled, no link to the originals)."""
        return {name: values[self.release_order] for name, values in self.avatar_temporal.items()}

    def released_static(self) -> pd.DataFrame | None:
        """Avatar static table in release order, with a new RangeIndex."""
        if self.avatar_static is None:
            return None
        return self.avatar_static.iloc[self.release_order].reset_index(drop=True)


def _fit_temporal(block: TemporalBlock) -> tuple[FPCA, int, jax.Array]:
    """Resample a block onto its grid, fit its projection and return (projection, grid points, coordinates)."""
    settings = block.projection
    grid_points = settings.grid_points or block.steps
    curves = resample(block.values, grid_points)
    if settings.method == "fpca":
        projection = fit_fpca(curves, settings.ncp, settings.variance_share, settings.quadrature)
    else:
        projection = fit_fixed_basis(curves, settings.method, settings.ncp, settings.variance_share)
    return projection, grid_points, transform(projection, curves)


def _check_inputs(temporal: Sequence[TemporalBlock], static: StaticBlock | None, k: int) -> np.ndarray:
    blocks = [*temporal, *([static] if static is not None else [])]
    names = [block.name for block in blocks]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InputDataError(f"block name {repeated[0]!r} is used twice; give each block its own name.")
    ids = check_matching_ids(blocks)
    if len(ids) < k + 1:
        raise InputDataError(
            f"only {len(ids)} individuals for k = {k} neighbours; each avatar needs k other individuals. "
            f"Lower avatar.k to at most {len(ids) - 1}, or cut more windows (longer data or a smaller stride)."
        )
    return ids


def anonymize_blocks(temporal: Sequence[TemporalBlock], static: StaticBlock | None = None, *,
                     weighting: str = "inertia", avatar: AvatarConfig | None = None,
                     significant_digits: int = 7, attack: AttackConfig | None = None,
                     progress: bool | None = None) -> BlockAnonymizationResult:
    """Anonymize temporal blocks and an optional static block of the same individuals in one joint space.

    Raises InputDataError on blocks whose ids differ, too few individuals for k, or a block its
    projection rejects. With `attack`, the static privacy metrics are computed too.
    """
    avatar = avatar or AvatarConfig()
    timings: dict = {}

    # 1. Check that every block has the same individuals in the same order.
    ids = _check_inputs(temporal, static, avatar.k)

    # 2-3. Resample each temporal block onto its own grid and project every block.
    projections, grids, coordinates = {}, {}, {}
    with timed_stage(timings, "project"):
        for block in temporal:
            projections[block.name], grids[block.name], coordinates[block.name] = _fit_temporal(block)
        if static is not None:
            projection = static_projection.fit_static(static.frame, static.ncp)
            projections[static.name] = projection
            coordinates[static.name] = static_projection.transform(projection, static.frame)

    # 4. Weight each block and concatenate the coordinates per individual.
    scales = {name: block_scale(values, weighting, name) for name, values in coordinates.items()}
    original_joint, layout = concatenate_blocks([(name, np.asarray(values, np.float64) * scales[name])
                                                 for name, values in coordinates.items()])

    # 5. Generate one avatar per individual in the joint space.
    key_avatars, key_release = seed_keys(avatar.seed)
    with timed_stage(timings, "generate"):
        avatars = generate_avatars(key_avatars, original_joint, avatar.k, avatar.weights, progress=progress)
        avatar_joint = np.asarray(jax.block_until_ready(avatars.coordinates), np.float64)

    # 6. Split per block, undo the weights and invert each block's projection.
    with timed_stage(timings, "inverse"):
        avatar_parts = {name: part / scales[name] for name, part in split_blocks(avatar_joint, layout).items()}
        avatar_temporal = {}
        for block in temporal:
            curves = inverse_transform(projections[block.name], avatar_parts[block.name])
            avatar_temporal[block.name] = np.asarray(resample(curves, block.steps), dtype=np.float64)
        avatar_static = None
        if static is not None:
            avatar_static = static_projection.inverse_transform(projections[static.name], avatar_parts[static.name])

    # 7. Shuffle for release: released tables carry no index of the originals.
    order = np.asarray(release_order(key_release, len(ids)))
    original_temporal = {block.name: block.values for block in temporal}
    result = BlockAnonymizationResult(
        ids=ids, layout=layout, scales=scales, projections=projections,
        original_coordinates=original_joint, avatar_coordinates=avatar_joint,
        neighbour_index=np.asarray(avatars.neighbour_index), neighbour_weights=np.asarray(avatars.weights),
        original_temporal=original_temporal, avatar_temporal=avatar_temporal,
        original_static=static.frame if static is not None else None, avatar_static=avatar_static,
        static_name=static.name if static is not None else None,
        release_order=order, metrics={}, timings_s=timings,
    )

    # 8. Measure privacy in the joint space and per block, utility per block.
    result.metrics = _measure(result, significant_digits, attack, progress, timings)
    result.metrics["run"] = _run_facts(temporal, static, result, grids, weighting, avatar)
    result.metrics["timings_s"] = timings
    return result


def _measure(result: BlockAnonymizationResult, significant_digits: int, attack: AttackConfig | None,
             progress: bool | None, timings: dict) -> dict:
    with timed_stage(timings, "privacy_metrics"):
        privacy = joint_privacy_metrics(result.original_coordinates, result.avatar_coordinates, progress)
        privacy.update(row_match_metrics(result.original_temporal, result.released_temporal(), significant_digits))
    metrics: dict = {"privacy": privacy}
    if attack is not None:
        with timed_stage(timings, "static_privacy_metrics"):
            original_table = attack_table(result.original_temporal, result.original_static)
            avatar_table = attack_table(result.avatar_temporal, result.avatar_static)
            static_privacy = static_privacy_metrics(original_table, avatar_table, attack.known_columns,
                                                    attack.inference_targets, attack.inference_k, progress)
        if "status" in static_privacy:
            metrics["static_privacy_status"] = static_privacy["status"]
        else:
            privacy["correlation_protection_rate"] = static_privacy["correlation_protection_rate"]
            metrics["inference"] = static_privacy["inference"]
    with timed_stage(timings, "utility_metrics"):
        metrics["utility"] = utility_by_block(result.original_temporal, result.avatar_temporal,
                                              result.original_static, result.avatar_static)
    return metrics


_DISTANCE_SCALES = {
    "inertia": "every block is scaled to total variance 1, so distances are dimensionless and the mean "
               "squared distance between two individuals is about 2 per block",
    "mfa": "every block is scaled to a first eigenvalue of 1, so distances are dimensionless",
    "none": "blocks keep their own units (value units for temporal blocks, standardized units for the "
            "static block), so distances mix units",
}


def _run_facts(temporal, static, result: BlockAnonymizationResult, grids: dict, weighting: str,
               avatar: AvatarConfig) -> dict:
    blocks = []
    for block in temporal:
        projection = result.projections[block.name]
        blocks.append({
            "name": block.name, "kind": "temporal", "steps": block.steps,
            "sampling_period_seconds": block.sampling_period_seconds, "grid_points": grids[block.name],
            "projection": projection.method, "ncp": projection.ncp,
            "explained_variance_share": float(np.sum(np.asarray(projection.explained_variance_ratio))),
            "scale": result.scales[block.name],
        })
    if static is not None:
        projection = result.projections[static.name]
        blocks.append({
            "name": static.name, "kind": "static", "columns": list(static.frame.columns),
            "projection": projection.method, "ncp": projection.ncp,
            "explained_variance_share": float(np.sum(np.asarray(projection.explained_variance_ratio))),
            "scale": result.scales[static.name],
        })
    return {
        "n_individuals": int(len(result.ids)),
        "joint_dimensions": result.layout.width,
        "block_weighting": weighting,
        "k": avatar.k,
        "weights": avatar.weights,
        "seed": avatar.seed,
        "blocks": blocks,
        "distance_scale": (f"Distances are Euclidean in the joint space of weighted block coordinates; "
                           f"{_DISTANCE_SCALES[weighting]}."),
    }


def anonymize_configured_blocks(cfg: AnonymizeBlocksConfig, progress: bool | None = None) -> BlockAnonymizationResult:
    """Load the configured file, cut its windows into blocks and anonymize them jointly."""
    start = time.perf_counter()
    series = load_block_series(cfg.data, columns_to_load(cfg))
    segments, temporal, static = build_blocks(series, cfg)
    load_s = round(time.perf_counter() - start, 3)

    result = anonymize_blocks(temporal, static, weighting=cfg.block_weighting, avatar=cfg.avatar,
                              significant_digits=cfg.release.significant_digits, attack=cfg.attack,
                              progress=progress)
    result.metrics["data"] = {
        # Only the file name: a full path could name a site or a customer.
        "dataset": Path(cfg.data.path).name if cfg.data.path else f"{cfg.data.name}.csv",
        "rows_read": series.report.rows_read,
        "series_steps": len(series.timestamps),
        "sampling_period_seconds": float(series.period / np.timedelta64(1, "s")),
        "window": cfg.windows.window,
        "stride": cfg.windows.stride,
        "window_steps": segments.window_steps,
        "stride_steps": segments.stride,
        "windows": segments.n_segments,
        "dropped": list(segments.dropped),
        "cleaning": series.report.as_dicts(),
    }
    result.timings_s["load"] = load_s
    result.metrics["timings_s"] = {"load": load_s, **result.timings_s}
    return result
