"""Checks and encoding of a table of static variables, one row per individual.

A column is numeric when pandas types it as a number other than bool (float, int), and
categorical otherwise (object, str, category, bool). The encoded table has the numeric
columns first, as they are, then one 0/1 indicator column per observed level of each
categorical column (complete disjunctive coding). Missing values are rejected, never imputed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from avatarjax.errors import InputDataError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableLayout:
    """Column names, dtypes and levels of a fitted table. Hashable, so jit can treat it as static."""

    columns: tuple  # every column name, in input order
    dtypes: tuple  # the pandas dtype of each column, in input order
    numeric: tuple  # numeric column names, in input order
    categorical: tuple  # categorical column names, in input order
    levels: tuple[tuple, ...]  # observed levels of each categorical column, in pandas category order

    @property
    def n_encoded(self) -> int:
        """Number of columns of the encoded table: numeric columns plus all levels."""
        return len(self.numeric) + sum(len(levels) for levels in self.levels)

    def level_slices(self) -> tuple[slice, ...]:
        """Return the columns of the encoded table that hold each categorical column's indicators."""
        slices = []
        start = len(self.numeric)
        for levels in self.levels:
            slices.append(slice(start, start + len(levels)))
            start += len(levels)
        return tuple(slices)


def as_frame(data) -> pd.DataFrame:
    """Return `data` as a DataFrame, converting a mapping of column names to 1-D arrays."""
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, Mapping):
        return pd.DataFrame(dict(data))
    raise InputDataError(
        f"static variables must be a pandas DataFrame or a mapping of column names to 1-D arrays, "
        f"got {type(data).__name__}. Wrap an array with pd.DataFrame(array, columns=names)."
    )


def is_numeric_column(dtype) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def check_table(frame: pd.DataFrame, min_rows: int) -> None:
    """Raise InputDataError on a table that cannot be encoded: shape, column types, missing values."""
    if frame.shape[1] == 0:
        raise InputDataError("the static table has no columns. Pass at least one variable.")
    if len(frame) < min_rows:
        raise InputDataError(
            f"the static table has {len(frame)} row(s), but at least {min_rows} are needed "
            "to estimate means and level frequencies. Pass one row per individual."
        )
    duplicated = frame.columns[frame.columns.duplicated()].tolist()
    if duplicated:
        raise InputDataError(f"the static table has duplicate column names {duplicated}. Rename them.")

    for name in frame.columns:
        dtype = frame[name].dtype
        if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
            raise InputDataError(
                f"column {name!r} has dtype {dtype}, which is neither numeric nor categorical. "
                "Convert it to a number (e.g. seconds since the epoch) or to a category first."
            )
        if pd.api.types.is_complex_dtype(dtype):
            raise InputDataError(f"column {name!r} is complex ({dtype}). Split it into real and imaginary parts.")

    _check_missing(frame)


def _check_missing(frame: pd.DataFrame) -> None:
    missing = frame.isna()
    empty = frame.columns[missing.all(axis=0)].tolist()
    if empty:
        raise InputDataError(
            f"column(s) {empty} contain only missing values. Drop them before fitting."
        )
    if missing.to_numpy().any():
        per_column = missing.sum(axis=0)
        details = ", ".join(f"{name!r} ({count})" for name, count in per_column[per_column > 0].items())
        raise InputDataError(
            f"{int(missing.any(axis=1).sum())} of {len(frame)} rows contain missing values, in columns "
            f"{details}. Static projections do not impute: drop those rows or impute them first."
        )

    numeric = [name for name in frame.columns if is_numeric_column(frame[name].dtype)]
    infinite = [name for name in numeric if not np.isfinite(frame[name].to_numpy(dtype=np.float64)).all()]
    if infinite:
        raise InputDataError(f"column(s) {infinite} contain infinite values. Replace them or drop those rows.")


def describe_table(frame: pd.DataFrame) -> TableLayout:
    """Split the columns of a checked table into numeric and categorical, and list observed levels.

    A categorical column with a single level is rejected: it carries no information, and in
    MCA it would still count as a variable and shrink every coordinate by sqrt(q_without / q_with).
    A level seen in only one row is kept, with a warning (see `_warn_rare_levels`).
    """
    numeric = tuple(name for name in frame.columns if is_numeric_column(frame[name].dtype))
    categorical = tuple(name for name in frame.columns if name not in numeric)
    levels = tuple(_observed_levels(frame[name]) for name in categorical)

    for name, column_levels in zip(categorical, levels):
        if len(column_levels) == 1:
            raise InputDataError(
                f"categorical column {name!r} has a single level {column_levels[0]!r} in all "
                f"{len(frame)} rows, so it carries no information. Drop it before fitting and "
                "add it back as a constant after inverse_transform."
            )
    _warn_rare_levels(frame, categorical)

    return TableLayout(
        columns=tuple(frame.columns),
        dtypes=tuple(frame[name].dtype for name in frame.columns),
        numeric=numeric,
        categorical=categorical,
        levels=levels,
    )


def _observed_levels(column: pd.Series) -> tuple:
    # Unused categories of a category dtype are left out: a level of frequency 0 would get an
    # infinite scaled indicator. The output dtype still lists them.
    if isinstance(column.dtype, pd.CategoricalDtype):
        categories = column.cat.remove_unused_categories().cat.categories
    else:
        categories = pd.Categorical(column).categories
    return tuple(categories.tolist())


def _warn_rare_levels(frame: pd.DataFrame, categorical: tuple) -> None:
    # A level of frequency p = 1/n has the scaled indicator (1 - p) / sqrt(p), about sqrt(n), in
    # its row, so that row can take a component to itself. The level also singles its row out,
    # which matters for privacy. It is kept and can be reconstructed like any other level.
    for name in categorical:
        counts = frame[name].value_counts()
        once = counts[counts == 1].index.tolist()
        if once:
            logger.warning(
                "categorical column %r: level(s) %s appear in one row only. Such a row weighs about "
                "sqrt(n) in the projection and is easy to single out. Consider merging rare levels.",
                name, once,
            )


def check_same_columns(layout: TableLayout, frame: pd.DataFrame) -> None:
    """Raise InputDataError unless `frame` has the fitted columns, each of the fitted kind."""
    missing = [name for name in layout.columns if name not in frame.columns]
    extra = [name for name in frame.columns if name not in layout.columns]
    if missing or extra:
        raise InputDataError(
            f"the static table does not match the fitted columns: missing {missing}, unexpected {extra}."
        )
    wrong_kind = [name for name in layout.numeric if not is_numeric_column(frame[name].dtype)]
    wrong_kind += [name for name in layout.categorical if is_numeric_column(frame[name].dtype)]
    if wrong_kind:
        raise InputDataError(
            f"column(s) {wrong_kind} changed between numeric and categorical since the fit. "
            "Cast them to their fitted dtypes."
        )


def encode_table(layout: TableLayout, frame: pd.DataFrame) -> np.ndarray:
    """Return the encoded table (n, n_encoded) in float64: numeric values, then 0/1 indicators."""
    blocks = [frame[list(layout.numeric)].to_numpy(dtype=np.float64)]
    for name, levels in zip(layout.categorical, layout.levels):
        codes = pd.Index(levels, dtype=object).get_indexer(frame[name].to_numpy(dtype=object))
        unknown = frame[name][codes < 0]
        if len(unknown):
            raise InputDataError(
                f"categorical column {name!r} has level(s) {sorted(map(repr, unknown.unique()))} that were "
                f"not seen at fit (known: {list(levels)}). Refit, or map them to known levels."
            )
        blocks.append(np.eye(len(levels))[codes])
    return np.concatenate(blocks, axis=1)


def decode_table(layout: TableLayout, numeric_values: np.ndarray, codes: np.ndarray) -> pd.DataFrame:
    """Build a DataFrame with the fitted column names, order and dtypes from values and level codes.

    Integer columns are rounded to the nearest integer before the cast, because a plain cast
    truncates (2.9999 would become 2).
    """
    columns = {}
    for index, name in enumerate(layout.numeric):
        columns[name] = numeric_values[:, index]
    for index, (name, levels) in enumerate(zip(layout.categorical, layout.levels)):
        columns[name] = np.asarray(levels, dtype=object)[codes[:, index]]

    frame = pd.DataFrame(columns)
    for name, dtype in zip(layout.columns, layout.dtypes):
        if pd.api.types.is_integer_dtype(dtype):
            frame[name] = np.rint(frame[name].to_numpy(dtype=np.float64))
        frame[name] = frame[name].astype(dtype)
    return frame[list(layout.columns)]
