"""Privacy metrics of static variables: the correlation protection rate and inference metrics.

Static variables are per-individual attributes (machine type, operating mode, numeric
summaries) that an attacker may hold from an external source. Both metrics compare the
original and avatar tables column by column, not in the projected space.

Encoding for distances. A numeric column x becomes (x - mean) / std, with the mean and the
population std (ddof = 0) of a reference table, and a constant column is divided by 1. A
categorical column (any non-numeric dtype, bool included) becomes one unscaled 0/1 indicator
per level seen in either table. So a level mismatch adds 2 to a squared distance, and a level
that one table lacks never matches a row of the other. The reference table is the originals
for the correlation protection rate (the attacker's data) and the avatars for the inference
metrics (the attacker's training data).

Correlation protection rate. The attacker links each original to its closest avatar
(Euclidean) on the known columns. Tie rule: when the own avatar is closest together with m
other avatars, the attacker picks one of the m + 1 uniformly at random, so the original counts
as 1/(m + 1) linked (the expected value, which is deterministic). It counts as 0 linked when
another avatar is strictly closer. Avatar j ties with the own avatar a_i of original x_i when
| |x_i - a_j|^2 - |x_i - a_i|^2 | <= 1e-12 (|x_i|^2 + |a_j|^2) in float64, the margin of
avatarjax.metrics.privacy, so rounding of the distance expansion cannot split an exact tie.

Inference metrics. The attacker fits a k-nearest-neighbour model on the avatars only and
predicts the target variable of each original from its predictor columns: the mean of the k
neighbours' values for a numeric target, the majority level for a categorical one. Each
metric comes with the score of a constant prediction (the avatars' mean or most frequent
level), because an error or accuracy means little without that scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from avatarjax.errors import InputDataError
from avatarjax.metrics.targets import STATIC_PRIVACY_TARGETS, metric_entry
from avatarjax.neighbors import knn
from avatarjax.projection.static_table import as_frame, check_table, is_numeric_column

TIE_MARGIN = 1e-12
# Originals per block and avatars per tile of the link counts. Peak memory per block is about
# two (BLOCK_SIZE, TILE_SIZE) float64 arrays (distances and tie margins), 17 MB: an estimate.
BLOCK_SIZE = 512
TILE_SIZE = 2048
# A std at or below this is treated as 0, as in avatarjax.projection.static.
_ZERO_STD = np.finfo(np.float64).tiny


@dataclass(frozen=True)
class _ColumnEncoding:
    """Encoding of one column for distances: a standardized value, or indicators of its levels."""

    name: object
    center: float  # mean in the reference table, or 0 for a categorical column
    scale: float  # population std in the reference table (1 when constant), or 1 for a categorical column
    levels: tuple | None  # levels seen in either table for a categorical column, or None for a numeric one


def _column_list(columns, argument: str) -> list:
    if isinstance(columns, str):
        raise InputDataError(
            f"{argument}={columns!r} is a single string. Pass a list of column names, e.g. [{columns!r}]."
        )
    columns = list(columns)
    if not columns:
        raise InputDataError(f"{argument} is empty. Pass at least one column name.")
    duplicated = sorted({repr(name) for name in columns if columns.count(name) > 1})
    if duplicated:
        raise InputDataError(f"{argument} lists column(s) {', '.join(duplicated)} more than once. List each once.")
    return columns


def _check_frames(original, avatar, columns: list) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check that both tables contain `columns` without missing values and with equal dtypes.

    Returns both tables as DataFrames.
    """
    original = as_frame(original)
    avatar = as_frame(avatar)
    for frame, table in ((original, "original"), (avatar, "avatar")):
        unknown = [name for name in columns if name not in frame.columns]
        if unknown:
            raise InputDataError(
                f"column(s) {unknown} not found in the {table} table, whose columns are "
                f"{list(frame.columns)}. Pass names of columns present in both tables."
            )
        try:
            check_table(frame[columns], min_rows=1)
        except InputDataError as error:
            raise InputDataError(f"{table} table: {error}") from error

    mismatched = [name for name in columns if original[name].dtype != avatar[name].dtype]
    if mismatched:
        details = ", ".join(f"{name!r} ({original[name].dtype} in the original table, {avatar[name].dtype} "
                            "in the avatar table)" for name in mismatched)
        raise InputDataError(
            f"column dtypes differ between the tables: {details}. Cast the avatar columns to the original "
            "dtypes, e.g. avatar.astype(original.dtypes[columns].to_dict())."
        )
    return original, avatar


def _fit_encoding(reference: pd.DataFrame, other: pd.DataFrame, columns: list) -> list[_ColumnEncoding]:
    """Take the numeric scaling from `reference` and the categorical levels from both tables."""
    encodings = []
    for name in columns:
        if is_numeric_column(reference[name].dtype):
            values = reference[name].to_numpy(dtype=np.float64)
            std = values.std()
            encodings.append(_ColumnEncoding(name, values.mean(), 1.0 if std <= _ZERO_STD else std, None))
        else:
            both = np.concatenate([reference[name].to_numpy(dtype=object), other[name].to_numpy(dtype=object)])
            encodings.append(_ColumnEncoding(name, 0.0, 1.0, tuple(pd.unique(both))))
    return encodings


def _encode(frame: pd.DataFrame, encodings: list[_ColumnEncoding]) -> np.ndarray:
    """Return the encoded table (n, numeric columns + levels) in float64."""
    blocks = []
    for encoding in encodings:
        if encoding.levels is None:
            values = frame[encoding.name].to_numpy(dtype=np.float64)
            blocks.append(((values - encoding.center) / encoding.scale)[:, None])
        else:
            codes = pd.Index(encoding.levels, dtype=object).get_indexer(frame[encoding.name].to_numpy(dtype=object))
            blocks.append(np.eye(len(encoding.levels))[codes])
    return np.concatenate(blocks, axis=1)


# --- Correlation protection rate ------------------------------------------------------------


@partial(jax.jit, static_argnames=("tile_size", "n_avatars"))
def _count_block(originals, own_avatars, original_index, avatars, avatars_sq, *, tile_size, n_avatars):
    """Count, per original of the block, the other avatars strictly closer than its own and tied with it."""
    originals_sq = jnp.sum(originals ** 2, axis=1)
    own_sq = jnp.sum((originals - own_avatars) ** 2, axis=1)

    def count_tile(counts, tile):
        closer, tied = counts
        rows = jax.lax.dynamic_slice_in_dim(avatars, tile * tile_size, tile_size)
        rows_sq = jax.lax.dynamic_slice_in_dim(avatars_sq, tile * tile_size, tile_size)
        sq = originals_sq[:, None] + rows_sq[None, :] - 2.0 * (originals @ rows.T)
        margin = TIE_MARGIN * (originals_sq[:, None] + rows_sq[None, :])
        column = tile * tile_size + jnp.arange(tile_size)
        other = (column[None, :] < n_avatars) & (column[None, :] != original_index[:, None])
        closer = closer + jnp.sum((sq < own_sq[:, None] - margin) & other, axis=1, dtype=jnp.int32)
        tied = tied + jnp.sum((jnp.abs(sq - own_sq[:, None]) <= margin) & other, axis=1, dtype=jnp.int32)
        return (closer, tied), None

    zeros = jnp.zeros(originals.shape[0], jnp.int32)
    (closer, tied), _ = jax.lax.scan(count_tile, (zeros, zeros), jnp.arange(avatars.shape[0] // tile_size))
    return closer, tied


def _closer_and_tied_counts(originals, avatars, block_size, tile_size, progress) -> tuple[np.ndarray, np.ndarray]:
    """Run the blocked counts on float64 copies; the caller enables x64."""
    originals = jnp.asarray(originals, jnp.float64)
    avatars = jnp.asarray(avatars, jnp.float64)
    n, width = originals.shape

    tile_size = min(tile_size, n)
    padded = -(-n // tile_size) * tile_size
    avatars_padded = jnp.zeros((padded, width), jnp.float64).at[:n].set(avatars)
    avatars_sq = jnp.sum(avatars_padded ** 2, axis=1)

    block_size = min(block_size, n)
    n_blocks = -(-n // block_size)
    rows = n_blocks * block_size
    originals_padded = jnp.zeros((rows, width), jnp.float64).at[:n].set(originals)
    own_padded = jnp.zeros((rows, width), jnp.float64).at[:n].set(avatars)

    closer, tied = [], []
    blocks = range(n_blocks)
    if progress is not False and n_blocks >= 8:
        blocks = tqdm(blocks, desc="correlation protection", unit="block", disable=None if progress is None else False)
    for b in blocks:
        part = slice(b * block_size, (b + 1) * block_size)
        original_index = jnp.arange(b * block_size, (b + 1) * block_size, dtype=jnp.int32)
        block_closer, block_tied = _count_block(originals_padded[part], own_padded[part], original_index,
                                                avatars_padded, avatars_sq, tile_size=tile_size, n_avatars=n)
        closer.append(block_closer)
        tied.append(block_tied)
    return np.asarray(jnp.concatenate(closer))[:n], np.asarray(jnp.concatenate(tied))[:n]


def _link_shares(originals, avatars, *, block_size: int = BLOCK_SIZE, tile_size: int = TILE_SIZE,
                 progress: bool | None = None) -> np.ndarray:
    """Return, per original, how much it counts as linked to its own avatar: 0 or 1/(m + 1).

    Both arrays are encoded (n, width), and row i of `avatars` is the avatar of original i.
    The counts scan avatar tiles block by block, so memory is about block_size * tile_size
    float64 values. avatarjax.neighbors.knn does not fit here: the tie rule needs the number
    of tied avatars, which no fixed k bounds, compared in float64.
    """
    with jax.enable_x64(True):
        closer, tied = _closer_and_tied_counts(np.asarray(originals, np.float64), np.asarray(avatars, np.float64),
                                               block_size, tile_size, progress)
    return np.where(closer > 0, 0.0, 1.0 / (1.0 + tied))


def correlation_protection_rate(original: pd.DataFrame, avatar: pd.DataFrame, known_columns: Sequence[str],
                                progress: bool | None = None) -> dict:
    """Compute the share (%) of originals not linked to their own avatar on `known_columns`.

    Row i of `avatar` is the avatar of row i of `original`, by position (indexes are ignored),
    so pass the avatars before the release shuffle. Returns the metrics-file entry of
    STATIC_PRIVACY_TARGETS["correlation_protection_rate"]. Raises InputDataError on empty,
    repeated or unknown known columns, tables of different lengths, missing or infinite
    values in the known columns, or a known column whose dtype differs between the tables.
    """
    columns = _column_list(known_columns, "known_columns")
    original, avatar = _check_frames(original, avatar, columns)
    if len(original) != len(avatar):
        raise InputDataError(
            f"the original table has {len(original)} rows but the avatar table has {len(avatar)}. The "
            "correlation protection rate needs one avatar per original, with row i of the avatar table "
            "generated from original i: pass the avatars in original order, before the release shuffle."
        )

    encodings = _fit_encoding(original, avatar, columns)
    shares = _link_shares(_encode(original, encodings), _encode(avatar, encodings), progress=progress)
    rate = 100.0 * (1.0 - float(np.mean(shares)))
    return metric_entry(STATIC_PRIVACY_TARGETS["correlation_protection_rate"], rate)


# --- Inference metrics ----------------------------------------------------------------------


def _predictor_list(original: pd.DataFrame, target, predictors) -> list:
    if target not in original.columns:
        raise InputDataError(
            f"target {target!r} is not a column of the original table, whose columns are "
            f"{list(original.columns)}. Pass one of them."
        )
    if predictors is None:
        predictors = [name for name in original.columns if name != target]
        if not predictors:
            raise InputDataError(
                f"the tables have no column besides the target {target!r}, so nothing predicts it. "
                "Pass tables with at least one other column."
            )
        return predictors
    predictors = _column_list(predictors, "predictors")
    if target in predictors:
        raise InputDataError(f"predictors include the target {target!r}. Remove it from predictors.")
    return predictors


def _check_k(k, n_avatars: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputDataError(f"k={k!r} is invalid. Pass a positive integer number of neighbours.")
    # With exactly k avatars every original gets all of them as neighbours, so the prediction
    # is the same constant for all and the metric only repeats the baseline.
    if n_avatars < k + 1:
        fix = f"Lower k to {n_avatars - 1} or less." if n_avatars >= 2 else "Pass at least 2 avatar rows."
        raise InputDataError(
            f"inference with k = {k} neighbours needs at least k + 1 = {k + 1} avatar rows, but the avatar "
            f"table has {n_avatars}. {fix}"
        )


def _level_codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Return the levels of a categorical column in pandas category order, and each row's code (int64)."""
    categorical = column if isinstance(column.dtype, pd.CategoricalDtype) else column.astype("category")
    levels = categorical.cat.categories.to_numpy(dtype=object)
    return levels, categorical.cat.codes.to_numpy(dtype=np.int64)


def _majority_vote(codes: np.ndarray) -> np.ndarray:
    """Return, per row of codes (n, k), the most frequent code; a tie goes to the smallest code."""
    votes = np.zeros(codes.shape, np.int64)
    for column in range(codes.shape[1]):
        votes += codes == codes[:, column:column + 1]
    best = votes.max(axis=1, keepdims=True)
    return np.where(votes == best, codes, np.iinfo(np.int64).max).min(axis=1)


def _numeric_inference(truth: pd.Series, known: pd.Series, neighbours: np.ndarray) -> tuple[float, float]:
    """Return (mean absolute error of the neighbour mean, that of the avatars' mean), in the target's unit."""
    truth = truth.to_numpy(dtype=np.float64)
    known = known.to_numpy(dtype=np.float64)
    prediction = known[neighbours].mean(axis=1)
    return float(np.mean(np.abs(truth - prediction))), float(np.mean(np.abs(truth - known.mean())))


def _categorical_inference(truth: pd.Series, known: pd.Series, neighbours: np.ndarray) -> tuple[float, float]:
    """Return (accuracy % of the neighbour majority vote, that of the most frequent avatar level)."""
    levels, codes = _level_codes(known)
    prediction = levels[_majority_vote(codes[neighbours])]
    # argmax returns the first maximum, so a tie between frequencies goes to the smallest code.
    most_frequent = levels[np.argmax(np.bincount(codes, minlength=len(levels)))]
    truth = truth.to_numpy(dtype=object)
    return float(np.mean(prediction == truth) * 100.0), float(np.mean(truth == most_frequent) * 100.0)


def inference_metrics(original: pd.DataFrame, avatar: pd.DataFrame, target: str,
                      predictors: Sequence[str] | None = None, k: int = 5) -> dict:
    """Measure how well a k-nearest-neighbour attacker trained on the avatars infers `target` of the originals.

    `predictors` defaults to every other column of the original table. The rows of the two
    tables need not be aligned. Returns an entry with the keys variable (the target column),
    kind ("numeric" or "categorical"), label, value, unit, baseline, target and meets (both
    None: no target threshold is defined), definition, k and predictors. A numeric target
    gives the mean absolute error in the target's unit (unit ""), a categorical one the
    accuracy in %. Raises InputDataError on an unknown target or predictor, a target listed
    as a predictor, missing or infinite values, dtypes that differ between the tables, an
    invalid k, or fewer than k + 1 avatar rows.
    """
    original = as_frame(original)
    predictors = _predictor_list(original, target, predictors)
    original, avatar = _check_frames(original, avatar, [target, *predictors])
    _check_k(k, len(avatar))

    encodings = _fit_encoding(avatar, original, predictors)
    # NOTE: knn breaks ties at the k-th distance arbitrarily (but deterministically). With only
    # categorical predictors many avatars tie, and which of them vote depends on the avatar order.
    _, neighbours = knn(_encode(original, encodings), _encode(avatar, encodings), k=k)
    neighbours = np.asarray(neighbours, dtype=np.int64)

    where = f"a {k}-nearest-neighbour attacker trained on the avatars, with predictors {list(predictors)}"
    no_target = "No target threshold is defined for this metric, so none is checked."
    if is_numeric_column(original[target].dtype):
        value, baseline = _numeric_inference(original[target], avatar[target], neighbours)
        kind, label, unit = "numeric", f"Inference of {target}: mean absolute error", ""
        definition = (f"Mean absolute error, in the unit of {target!r}, of {where}, that predicts each original's "
                      f"value as the mean over its k closest avatars. Baseline: the error of always predicting "
                      f"the avatars' mean. {no_target}")
    else:
        value, baseline = _categorical_inference(original[target], avatar[target], neighbours)
        kind, label, unit = "categorical", f"Inference of {target}: accuracy", "%"
        definition = (f"Share of originals whose {target!r} is predicted exactly by {where}, by majority vote "
                      f"over the k closest avatars (a tie goes to the first level in category order). Baseline: "
                      f"the accuracy of always predicting the most frequent avatar level. {no_target}")
    return {"variable": target, "kind": kind, "label": label, "value": value, "unit": unit, "baseline": baseline,
            "target": None, "meets": None, "definition": definition, "k": k, "predictors": list(predictors)}


def inference_table(original: pd.DataFrame, avatar: pd.DataFrame, targets: Sequence[str] | None = None,
                    k: int = 5) -> list[dict]:
    """Run inference_metrics for each target column, with every other column as predictors.

    `targets` defaults to every column of the original table, in table order.
    """
    original = as_frame(original)
    targets = list(original.columns) if targets is None else _column_list(targets, "targets")
    return [inference_metrics(original, avatar, target, None, k) for target in targets]
