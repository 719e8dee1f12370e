import copy
import logging
import warnings

import jax
import numpy as np
import pandas as pd
import pytest

from avatarjax.errors import InputDataError
from avatarjax.projection.static import (
    available_dimensions,
    encode,
    fit_static,
    inverse_transform,
    reconstruct,
    reconstruct_encoded,
    transform,
)

NUMERIC = ["mean", "std", "max", "min"]
CATEGORICAL = ["weekday", "month_phase", "level"]


@pytest.fixture(scope="module")
def daily_table(machine_temperature) -> pd.DataFrame:
    """One row per calendar day of the NAB machine temperature series (79 rows).

    Days with fewer than 144 readings (half a day at 5 minutes) are left out, so each row
    summarizes a comparable stretch of signal.
    """
    series = pd.Series(machine_temperature.values[:, 0], index=pd.DatetimeIndex(machine_temperature.timestamps))
    days = series.groupby(series.index.floor("D"))
    table = pd.DataFrame({"mean": days.mean(), "std": days.std(), "max": days.max(), "min": days.min()})
    table["readings"] = days.size()
    table = table[table["readings"] >= 144]

    day = table.index
    table["weekday"] = pd.Categorical(day.day_name().str[:3])
    table["month_phase"] = np.where(day.day <= 10, "early", np.where(day.day <= 20, "mid", "late"))
    table["level"] = np.where(table["mean"] > table["mean"].median(), "high", "low")
    table["weekend"] = day.day_of_week >= 5
    return table.reset_index(drop=True)


def _equal_variance_groups(ratio: np.ndarray) -> list[list[int]]:
    # Components whose variances agree to 1e-4 (relative) span a subspace in which the SVD
    # may pick any orthonormal basis. MCA has such groups when a variable is independent of
    # the others (here, weekday gives three components of variance 1/q each).
    groups = [[0]]
    for index in range(1, len(ratio)):
        if abs(ratio[index] - ratio[index - 1]) <= 1e-4 * ratio[index - 1]:
            groups[-1].append(index)
        else:
            groups.append([index])
    return groups


def _assert_coordinates_match(mine: np.ndarray, reference: np.ndarray, ratio: np.ndarray, tolerance: float):
    """Compare coordinates up to the sign of each component, or up to a rotation within a group."""
    scale = np.abs(reference).max()
    for group in _equal_variance_groups(ratio):
        if len(group) == 1:
            (index,) = group
            sign = np.sign(mine[:, index] @ reference[:, index])
            assert np.abs(sign * mine[:, index] - reference[:, index]).max() < tolerance * scale, f"component {index}"
        else:
            gram = mine[:, group] @ mine[:, group].T
            reference_gram = reference[:, group] @ reference[:, group].T
            assert np.abs(gram - reference_gram).max() < tolerance * scale ** 2, f"components {group}"


def _saiph_fit(frame: pd.DataFrame):
    saiph = pytest.importorskip("saiph")
    # nf=None makes saiph run an exact full SVD. With nf < 0.8 min(shape) it switches to a
    # randomized SVD (saiph/reduction/utils/svd.py), which is only approximate.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        coordinates, model = saiph.fit_transform(frame)
    return coordinates.to_numpy(), model


def _saiph_truncated(model, ncp: int):
    # The first ncp right singular vectors do not depend on how many are kept, so slicing
    # the full model equals an exact rank-ncp fit.
    truncated = copy.deepcopy(model)
    truncated.V = truncated.V[:ncp]
    truncated.nf = ncp
    return truncated


# Float32 rounding (about 1e-7) grows with sigma_max / (gap to the nearest other singular
# value), which reaches 244 for MCA on this table. Measured with this test on CPU, the error
# is at most 2.1e-5 of the largest coordinate (MCA), so 1e-4 leaves a margin of about 5.
COORDINATE_TOLERANCE = 1e-4


@pytest.mark.parametrize(
    ("columns", "method"),
    [(NUMERIC, "pca"), (CATEGORICAL, "mca"), (NUMERIC + CATEGORICAL, "famd")],
)
def test_coordinates_match_saiph(daily_table, columns, method):
    frame = daily_table[columns]
    reference, model = _saiph_fit(frame)
    projection = fit_static(frame)
    mine = np.asarray(transform(projection, frame), dtype=np.float64)
    ratio = np.asarray(projection.explained_variance_ratio, dtype=np.float64)
    n = len(frame)

    assert projection.method == method
    _assert_coordinates_match(mine, reference[:, : projection.ncp], ratio, COORDINATE_TOLERANCE)
    assert np.allclose(ratio, model.explained_var_ratio[: projection.ncp], rtol=1e-4)
    # saiph takes the SVD of the scaled table times the row weights 1/n (not their square
    # roots) and divides the squared singular values by n - 1. Its MCA table carries a further
    # 1/sqrt(n) (correspondence analysis of the indicator table divided by its total). So its
    # explained_var is the variance of its own coordinates divided by n^2, or n^3 for MCA.
    factor = n**3 if method == "mca" else n**2
    assert np.allclose(projection.explained_variance, model.explained_var[: projection.ncp] * factor, rtol=1e-4)


@pytest.mark.parametrize(("columns", "ncp"), [(NUMERIC, 2), (NUMERIC + CATEGORICAL, 4)])
def test_reconstruction_matches_saiph(daily_table, columns, ncp):
    saiph_inverse_transform = pytest.importorskip("saiph.inverse_transform").inverse_transform
    frame = daily_table[columns]
    reference, model = _saiph_fit(frame)
    expected = saiph_inverse_transform(pd.DataFrame(reference[:, :ncp]), _saiph_truncated(model, ncp))
    projection = fit_static(frame, ncp=ncp)
    back = inverse_transform(projection, transform(projection, frame))

    numeric = [name for name in columns if name in NUMERIC]
    # Float32 rounding of the reconstructed values, measured at most 4.3e-7 of the largest value.
    tolerance = 1e-5 * np.abs(frame[numeric].to_numpy()).max()
    assert np.abs(back[numeric].to_numpy() - expected[numeric].to_numpy()).max() < tolerance
    for name in columns:
        if name not in NUMERIC:
            assert (back[name].astype(str) == expected[name].astype(str)).all(), name
            assert back[name].dtype == frame[name].dtype, name


def test_mca_indicators_match_saiph(daily_table):
    """MCA reconstructs indicators d; saiph's MCA inverse returns d - p (no frequency added back)."""
    frame = daily_table[CATEGORICAL]
    reference, model = _saiph_fit(frame)
    ncp = 2
    truncated = _saiph_truncated(model, ncp)
    # The de-scaling step of saiph/inverse_transform.py for MCA, before its argmax.
    expected = (reference[:, :ncp] @ (truncated.D_c @ truncated.V.T).T) / truncated.dummies_col_prop

    projection = fit_static(frame, ncp=ncp)
    indicators = np.asarray(reconstruct_encoded(projection, transform(projection, frame)), dtype=np.float64)
    frequency = np.asarray(projection.center, dtype=np.float64)
    names = [f"{name}___{level}" for name, levels in zip(CATEGORICAL, projection.layout.levels) for level in levels]
    order = [model.dummy_categorical.index(name) for name in names]

    assert np.abs((indicators - frequency) - expected[:, order]).max() < 1e-5


@pytest.mark.parametrize("columns", [NUMERIC, CATEGORICAL, NUMERIC + CATEGORICAL + ["readings", "weekend"]])
def test_round_trip_all_components(daily_table, columns):
    frame = daily_table[columns]
    projection = fit_static(frame)
    back = inverse_transform(projection, transform(projection, frame))

    assert projection.ncp == available_dimensions(projection.layout, len(frame))
    assert list(back.columns) == columns
    for name in columns:
        assert back[name].dtype == frame[name].dtype, name
        if name in NUMERIC:
            scale = frame[name].abs().max()
            assert np.allclose(back[name], frame[name], rtol=0, atol=1e-5 * scale), name
        else:
            assert (back[name].to_numpy() == frame[name].to_numpy()).all(), name


def test_round_trip_keeps_unused_categories(daily_table):
    frame = daily_table[NUMERIC + ["month_phase"]].copy()
    frame["month_phase"] = pd.Categorical(frame["month_phase"], categories=["early", "mid", "late", "never"])
    projection = fit_static(frame)
    back = inverse_transform(projection, transform(projection, frame))

    assert projection.layout.levels == (("early", "mid", "late"),)
    assert back["month_phase"].dtype == frame["month_phase"].dtype
    assert (back["month_phase"] == frame["month_phase"]).all()


def test_integer_column_rounded_not_truncated():
    frame = pd.DataFrame({"count": [1, 2, 3, 4, 5, 6], "x": [0.5, 0.1, 0.9, 0.3, 0.7, 0.2]})
    projection = fit_static(frame)
    coordinates = transform(projection, frame)
    back = inverse_transform(projection, coordinates * (1 - 1e-6))

    assert back["count"].dtype == np.int64
    assert back["count"].tolist() == frame["count"].tolist()


def test_constant_numeric_column_kept(daily_table):
    frame = daily_table[NUMERIC].assign(constant=3.5)
    projection = fit_static(frame)
    back = inverse_transform(projection, transform(projection, frame))

    assert float(projection.scale[-1]) == 1.0
    assert np.allclose(back["constant"], 3.5)


def test_level_seen_once_kept_with_warning(daily_table, caplog):
    frame = daily_table[NUMERIC + ["level"]].copy()
    frame.loc[7, "level"] = "extreme"
    with caplog.at_level(logging.WARNING):
        projection = fit_static(frame)
    back = inverse_transform(projection, transform(projection, frame))

    assert "appear in one row only" in caplog.text
    assert "extreme" in caplog.text
    assert back.loc[7, "level"] == "extreme"


def test_method_from_column_types(daily_table):
    assert fit_static(daily_table[["mean", "readings"]]).method == "pca"
    assert fit_static(daily_table[["weekend", "level"]]).method == "mca"
    assert fit_static(daily_table[["mean", "weekend"]]).method == "famd"


def test_mapping_input_accepted(daily_table):
    arrays = {name: daily_table[name].to_numpy() for name in NUMERIC}
    projection = fit_static(arrays, ncp=2)
    assert np.allclose(transform(projection, arrays), transform(projection, daily_table[NUMERIC]))


def test_rejects_all_missing_column(daily_table):
    frame = daily_table[NUMERIC].assign(empty=np.nan)
    with pytest.raises(InputDataError, match=r"\['empty'\] contain only missing values"):
        fit_static(frame)


def test_rejects_missing_values(daily_table):
    frame = daily_table[NUMERIC + ["level"]].copy()
    frame.loc[[3, 5], "mean"] = np.nan
    frame.loc[5, "level"] = None
    with pytest.raises(InputDataError, match=r"2 of 79 rows contain missing values") as error:
        fit_static(frame)
    assert "'mean' (2)" in str(error.value)
    assert "'level' (1)" in str(error.value)


def test_rejects_infinite_values(daily_table):
    frame = daily_table[NUMERIC].copy()
    frame.loc[0, "max"] = np.inf
    with pytest.raises(InputDataError, match="infinite"):
        fit_static(frame)


def test_rejects_single_level_column(daily_table):
    frame = daily_table[NUMERIC].assign(site="plant A")
    with pytest.raises(InputDataError, match="'site' has a single level 'plant A'"):
        fit_static(frame)


@pytest.mark.parametrize(("columns", "maximum"), [(NUMERIC, 4), (CATEGORICAL, 9), (NUMERIC + CATEGORICAL, 13)])
def test_rejects_ncp_above_available(daily_table, columns, maximum):
    with pytest.raises(InputDataError, match=f"exceeds the {maximum} dimensions available"):
        fit_static(daily_table[columns], ncp=maximum + 1)


def test_rejects_ncp_above_rows():
    frame = pd.DataFrame({"a": [1.0, 2.0, 4.0], "b": [0.0, 1.0, 0.0], "c": [5.0, 3.0, 1.0]})
    with pytest.raises(InputDataError, match=r"min\(2, 3"):
        fit_static(frame, ncp=3)


@pytest.mark.parametrize("ncp", [0, -1, 2.5, True])
def test_rejects_invalid_ncp(daily_table, ncp):
    with pytest.raises(InputDataError, match="ncp="):
        fit_static(daily_table[NUMERIC], ncp=ncp)


def test_rejects_single_row(daily_table):
    with pytest.raises(InputDataError, match="1 row"):
        fit_static(daily_table[NUMERIC].iloc[:1])


def test_rejects_datetime_column():
    frame = pd.DataFrame({"x": [1.0, 2.0], "day": pd.to_datetime(["2024-01-01", "2024-01-02"])})
    with pytest.raises(InputDataError, match="'day' has dtype datetime64"):
        fit_static(frame)


def test_transform_rejects_unseen_level(daily_table):
    projection = fit_static(daily_table[NUMERIC + ["level"]])
    frame = daily_table[NUMERIC + ["level"]].iloc[:3].copy()
    frame.loc[1, "level"] = "medium"
    with pytest.raises(InputDataError, match="'level' has level.*'medium'.*not seen at fit"):
        transform(projection, frame)


def test_transform_rejects_other_columns(daily_table):
    projection = fit_static(daily_table[NUMERIC])
    with pytest.raises(InputDataError, match=r"missing \['min'\], unexpected \['level'\]"):
        transform(projection, daily_table[["mean", "std", "max", "level"]])


def test_inverse_rejects_wrong_shape(daily_table):
    projection = fit_static(daily_table[NUMERIC], ncp=2)
    with pytest.raises(InputDataError, match=r"shape \(n, 2\)"):
        inverse_transform(projection, np.zeros((4, 3)))


def test_transform_under_jit(daily_table):
    frame = daily_table[NUMERIC + CATEGORICAL]
    projection = fit_static(frame, ncp=5)
    encoded = encode(projection, frame)
    jitted = np.asarray(jax.jit(transform)(projection, encoded))

    assert jitted.shape == (len(frame), 5)
    assert np.allclose(jitted, transform(projection, frame), atol=1e-6 * np.abs(jitted).max())


def test_inverse_under_jit(daily_table):
    frame = daily_table[NUMERIC + CATEGORICAL]
    projection = fit_static(frame)
    coordinates = transform(projection, frame)
    numeric_values, codes = jax.jit(reconstruct)(projection, coordinates)
    encoded = jax.jit(reconstruct_encoded)(projection, coordinates)

    assert codes.dtype == np.int32
    assert np.allclose(numeric_values, frame[NUMERIC].to_numpy(), atol=1e-5 * frame[NUMERIC].abs().to_numpy().max())
    assert np.allclose(encoded, encode(projection, frame), atol=1e-4)
    for index, name in enumerate(CATEGORICAL):
        levels = np.asarray(projection.layout.levels[index], dtype=object)
        assert (levels[np.asarray(codes[:, index])] == frame[name].to_numpy()).all(), name
