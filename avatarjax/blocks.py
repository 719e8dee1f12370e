"""Blocks of variables anonymized together: checks, block weighting, concatenation and split.

A block is one group of variables of the same individuals: a temporal block holds one sensor's
segment per individual, on its own time grid, and the static block holds a table of
attributes. Each block is projected on its own (FPCA or a fixed basis, or PCA/MCA/FAMD). The
coordinates are weighted and concatenated per individual, and avatars are drawn in that joint
space. Their joint coordinates are then split back per block, unweighted and inverted.

Block weighting, multiplying all coordinates of block b by one factor s_b:
- "inertia" (the default): s_b = 1 / sqrt(total variance of the block's coordinates), so every
  block has total variance 1. The mean squared Euclidean distance between two individuals is
  twice the total variance of the joint space. So with this weighting every block has the
  same expected share of the squared distances that the neighbour search ranks, whatever
  its number of components and its units. That is the property the joint neighbour search needs.
- "mfa": s_b = 1 / sqrt(first eigenvalue of the covariance of the block's coordinates), as in
  multiple factor analysis (Escofier and Pagès). No block can dominate the first joint axis,
  but a block with many components of similar variance keeps a larger share of the distances.
- "none": s_b = 1. Blocks count with their own units and number of components.
Variances are computed on the kept coordinates with divisor n - 1. A block whose coordinates
have zero variance gets s_b = 1 with a warning, because it is constant and adds nothing to
the distances. The factors are undone before inverting, so the released values are in each
block's units.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from avatarjax.config import ProjectionConfig
from avatarjax.errors import InputDataError

logger = logging.getLogger(__name__)

BLOCK_WEIGHTINGS = ("inertia", "mfa", "none")
# Ids shown in a message, at most.
_SHOWN_IDS = 5


def _plain(value):
    """Return a NumPy scalar as the Python scalar it holds, so messages show 'w3', not np.str_('w3')."""
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class TemporalBlock:
    """One sensor's segments: one row per individual, all rows of the same length."""

    name: str
    ids: np.ndarray  # (n,), individual ids, unique, in row order
    values: np.ndarray  # (n, steps), float64, finite
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    sampling_period_seconds: float | None = None  # seconds between readings, for the report

    @property
    def steps(self) -> int:
        return self.values.shape[1]


@dataclass(frozen=True)
class StaticBlock:
    """Attributes of each individual: one table row per individual, columns numeric or categorical."""

    name: str
    ids: np.ndarray  # (n,), individual ids, unique, in row order
    frame: pd.DataFrame  # (n, columns), index ignored: rows follow `ids`
    ncp: int | None = None  # components kept; None keeps every dimension


def temporal_block(name: str, ids, rows, projection: ProjectionConfig | None = None,
                   sampling_period_seconds: float | None = None) -> TemporalBlock:
    """Build a checked temporal block from ids and rows (a 2-D array or a sequence of 1-D rows).

    Raises InputDataError when rows have different lengths, when a value is not finite, or when
    ids and rows differ in count or an id repeats.
    """
    ids = _check_ids(name, ids)
    if isinstance(rows, np.ndarray) and rows.ndim == 2:
        values = np.asarray(rows, dtype=np.float64)
    else:
        values = _stack_equal_rows(name, ids, rows)
    if values.shape[0] != len(ids):
        raise InputDataError(
            f"block {name!r} has {values.shape[0]} rows but {len(ids)} ids; give one id per row."
        )
    if values.shape[1] < 2:
        raise InputDataError(f"block {name!r} has {values.shape[1]} step(s) per individual; a segment needs at least 2.")
    finite = np.isfinite(values).all(axis=1)
    if not finite.all():
        first = int(np.flatnonzero(~finite)[0])
        raise InputDataError(
            f"block {name!r}: individual {_plain(ids[first])!r} has NaN or infinite values "
            f"({int((~finite).sum())} individuals in all); interpolate or drop them before anonymizing."
        )
    return TemporalBlock(name, ids, values, projection or ProjectionConfig(), sampling_period_seconds)


def _stack_equal_rows(name: str, ids: np.ndarray, rows) -> np.ndarray:
    rows = [np.asarray(row, dtype=np.float64).ravel() for row in rows]
    lengths = np.array([len(row) for row in rows])
    if len(rows) and np.any(lengths != lengths[0]):
        # The most common length is taken as the expected one, so the message names an outlier.
        values, counts = np.unique(lengths, return_counts=True)
        expected = int(values[np.argmax(counts)])
        odd = int(np.flatnonzero(lengths != expected)[0])
        label = _plain(ids[odd]) if odd < len(ids) else odd
        raise InputDataError(
            f"block {name!r}: individual {label!r} has {lengths[odd]} steps but most have {expected} "
            f"({int(np.sum(lengths != expected))} individuals differ). A block needs one length per "
            "individual: cut every segment to the same duration at the same sampling period, or "
            "resample each one onto a common number of points first."
        )
    return np.stack(rows) if rows else np.zeros((0, 0))


def static_block(name: str, ids, frame: pd.DataFrame, ncp: int | None = None,
                 rare_levels: str = "error") -> StaticBlock:
    """Build a checked static block.

    Missing values, a column that is all missing and a categorical column with one level raise
    InputDataError (checks of avatarjax.projection.static_table, run when the block is fitted).
    A level seen in one row only raises InputDataError with rare_levels="error", and is kept
    with a warning with rare_levels="keep".
    """
    ids = _check_ids(name, ids)
    if len(frame) != len(ids):
        raise InputDataError(f"static block {name!r} has {len(frame)} rows but {len(ids)} ids; give one id per row.")
    frame = frame.reset_index(drop=True)
    if rare_levels == "error":
        _reject_rare_levels(name, frame)
    elif rare_levels != "keep":
        raise InputDataError(f"rare_levels={rare_levels!r} is invalid; choose 'error' or 'keep'.")
    return StaticBlock(name, ids, frame, ncp)


def _reject_rare_levels(name: str, frame: pd.DataFrame) -> None:
    for column in frame.columns:
        series = frame[column]
        if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
            continue
        counts = series.value_counts()
        once = counts[counts == 1].index.tolist()
        if once:
            raise InputDataError(
                f"static block {name!r}, column {column!r}: level {once[0]!r} appears in one row only "
                f"({len(once)} such levels), which singles that individual out. Merge rare levels into "
                "a broader one, or set static.rare_levels=keep (rare_levels='keep') to keep them."
            )


def _check_ids(name: str, ids) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise InputDataError(f"ids of block {name!r} must be a 1-D array, got shape {ids.shape}.")
    values, counts = np.unique(ids, return_counts=True)
    if np.any(counts > 1):
        raise InputDataError(
            f"block {name!r}: id {_plain(values[counts > 1][0])!r} appears {int(counts.max())} times; "
            "each individual needs a unique id."
        )
    return ids


def check_matching_ids(blocks: Sequence[TemporalBlock | StaticBlock]) -> np.ndarray:
    """Return the common ids, after checking that every block has the same ids in the same order.

    Rows are concatenated by position, so a block in another order or with other individuals
    would pair one individual's values with another's. Raises InputDataError naming the first
    difference.
    """
    if not blocks:
        raise InputDataError("no blocks given; pass at least one temporal or static block.")
    reference = blocks[0]
    for block in blocks[1:]:
        if np.array_equal(block.ids, reference.ids):
            continue
        only_here = np.setdiff1d(block.ids, reference.ids)[:_SHOWN_IDS].tolist()
        only_there = np.setdiff1d(reference.ids, block.ids)[:_SHOWN_IDS].tolist()
        if not only_here and not only_there and len(block.ids) == len(reference.ids):
            row = int(np.flatnonzero(block.ids != reference.ids)[0])
            raise InputDataError(
                f"blocks {block.name!r} and {reference.name!r} have the same ids in a different order "
                f"(row {row}: {_plain(block.ids[row])!r} versus {_plain(reference.ids[row])!r}). Sort every block by id, "
                "or reorder each block to the ids of the first one."
            )
        raise InputDataError(
            f"blocks {block.name!r} and {reference.name!r} do not have the same individuals: ids only in "
            f"{block.name!r}: {only_here}, only in {reference.name!r}: {only_there} (first {_SHOWN_IDS} shown; "
            f"{len(block.ids)} versus {len(reference.ids)} ids). Keep only the individuals present in "
            "every block, in the same order."
        )
    return reference.ids


def block_scale(coordinates, weighting: str = "inertia", name: str = "block") -> float:
    """Return the factor that multiplies a block's coordinates (n, ncp); see the module docstring."""
    if weighting not in BLOCK_WEIGHTINGS:
        raise InputDataError(f"block weighting {weighting!r} is unknown; choose one of {', '.join(BLOCK_WEIGHTINGS)}.")
    if weighting == "none":
        return 1.0
    coordinates = np.asarray(coordinates, dtype=np.float64)
    centred = coordinates - coordinates.mean(axis=0)
    n = coordinates.shape[0]
    if weighting == "inertia":
        variance = float(np.sum(centred ** 2) / (n - 1))
    else:
        largest_singular = float(np.linalg.svd(centred, compute_uv=False)[0]) if centred.size else 0.0
        variance = largest_singular ** 2 / (n - 1)
    if not variance > 0.0:
        logger.warning("block %r has coordinates of zero variance; it gets weight 1 and adds nothing to distances.", name)
        return 1.0
    return 1.0 / np.sqrt(variance)


@dataclass(frozen=True)
class BlockLayout:
    """Block names and column counts, in the order of the blocks' coordinates in the joint space."""

    names: tuple[str, ...]
    widths: tuple[int, ...]

    def slices(self) -> dict[str, slice]:
        starts = np.concatenate([[0], np.cumsum(self.widths)]).astype(int)
        return {name: slice(int(starts[i]), int(starts[i + 1])) for i, name in enumerate(self.names)}

    @property
    def width(self) -> int:
        return int(sum(self.widths))


def concatenate_blocks(parts: Sequence[tuple[str, np.ndarray]]) -> tuple[np.ndarray, BlockLayout]:
    """Concatenate (name, coordinates (n, ncp_b)) pairs column-wise into the joint (n, sum ncp_b) space."""
    names = tuple(name for name, _ in parts)
    arrays = [np.asarray(array) for _, array in parts]
    rows = {array.shape[0] for array in arrays}
    if len(rows) != 1:
        raise InputDataError(f"blocks {list(names)} have different numbers of rows {[a.shape[0] for a in arrays]}.")
    layout = BlockLayout(names, tuple(array.shape[1] for array in arrays))
    return np.concatenate(arrays, axis=1), layout


def split_blocks(joint, layout: BlockLayout) -> dict[str, np.ndarray]:
    """Split joint coordinates (n, width) back into one array per block, in layout order."""
    joint = np.asarray(joint)
    if joint.ndim != 2 or joint.shape[1] != layout.width:
        raise InputDataError(f"joint coordinates must have shape (n, {layout.width}), got {joint.shape}.")
    return {name: joint[:, part] for name, part in layout.slices().items()}
