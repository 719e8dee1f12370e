import jax
import numpy as np
import pandas as pd
import pytest

from avatarjax.avatar import generate_avatars
from avatarjax.errors import InputDataError
from avatarjax.metrics.static_privacy import (
    _link_shares,
    correlation_protection_rate,
    inference_metrics,
    inference_table,
)
from avatarjax.projection.static import fit_static, inverse_transform, transform


def protection(original, avatar, known_columns) -> float:
    return correlation_protection_rate(original, avatar, known_columns)["value"]


@pytest.fixture(scope="module")
def distinct_table() -> pd.DataFrame:
    """Ten rows that differ in every column, with a numeric, a categorical and a bool column."""
    return pd.DataFrame({
        "load": np.arange(10, dtype=np.float64) * 1.5,
        "mode": list("abcdefghij"),
        "alarm": [True, False] * 5,
    })


# --- Correlation protection rate: hand-computed cases ----------------------------------------


def test_identical_avatars_all_linked(distinct_table):
    entry = correlation_protection_rate(distinct_table, distinct_table.copy(), ["load", "mode", "alarm"])
    assert entry["value"] == 0.0
    assert entry["meets"] is False


def test_derangement_none_linked(distinct_table):
    # Every row moves one place, so each original's own avatar is another row and its exact
    # copy is some other avatar at distance 0.
    shuffled = distinct_table.iloc[np.roll(np.arange(10), 1)].reset_index(drop=True)
    entry = correlation_protection_rate(distinct_table, shuffled, ["load", "mode"])
    assert entry["value"] == 100.0
    assert entry["meets"] is True


def test_entry_fields(distinct_table):
    entry = correlation_protection_rate(distinct_table, distinct_table, ["load"])
    assert entry["label"] == "Correlation protection rate"
    assert entry["unit"] == "%"
    assert entry["target"] == "> 95 %"
    assert "1/(m + 1)" in entry["definition"]


def test_tie_rule_categorical_by_hand():
    # mode: originals a a b b c, avatars a b a c c. Squared distances are 0 (same level) or 2.
    # Original 0 (a): own avatar a, tied with avatar 2 (a), so 1/2 linked.
    # Originals 1, 2, 3: another avatar is strictly closer than the own one, so 0 linked.
    # Original 4 (c): own avatar c, tied with avatar 3 (c), so 1/2 linked.
    # Linked: 1 of 5 originals, so the protection is 80 %.
    original = pd.DataFrame({"mode": list("aabbc")})
    avatar = pd.DataFrame({"mode": list("abacc")})
    assert protection(original, avatar, ["mode"]) == pytest.approx(80.0, abs=1e-12)


def test_tie_rule_numeric_by_hand():
    # load: originals 0 1 2 3, avatars 1 1 1 3 (standardizing scales every distance alike).
    # Original 0: own avatar at distance 1, tied with avatars 1 and 2: 1/3 linked.
    # Original 1: own avatar at distance 0, tied with avatars 0 and 2: 1/3 linked.
    # Original 2: own avatar at distance 1, tied with avatars 0, 1 and 3: 1/4 linked.
    # Original 3: own avatar at distance 0, no tie: linked.
    # Linked: 1/3 + 1/3 + 1/4 + 1 = 23/12 of 4, so the protection is 100 (1 - 23/48) %.
    original = pd.DataFrame({"load": [0.0, 1.0, 2.0, 3.0]})
    avatar = pd.DataFrame({"load": [1.0, 1.0, 1.0, 3.0]})
    assert protection(original, avatar, ["load"]) == pytest.approx(100.0 * 25.0 / 48.0, abs=1e-9)


def test_level_missing_from_avatars_never_matches():
    # Original 0 (a): avatar 1 (a) is at 0, closer than its own avatar b: 0 linked.
    # Original 1 (z, which no avatar has): every avatar is at squared distance 2, so its own
    # avatar ties with avatar 0: 1/2 linked. Protection: 100 (1 - 0.5 / 2) = 75 %.
    original = pd.DataFrame({"mode": ["a", "z"]})
    avatar = pd.DataFrame({"mode": ["b", "a"]})
    assert protection(original, avatar, ["mode"]) == pytest.approx(75.0, abs=1e-12)


def test_constant_column_divided_by_one():
    # The original column is constant (std 0), so it is divided by 1, not by 0.
    # Original 0: own avatar at distance 0 and alone there: linked. Originals 1 and 2: avatar
    # 0 is closer than their own: 0 linked. Protection: 100 (1 - 1/3) %.
    original = pd.DataFrame({"load": [5.0, 5.0, 5.0]})
    avatar = pd.DataFrame({"load": [5.0, 6.0, 7.0]})
    assert protection(original, avatar, ["load"]) == pytest.approx(100.0 * 2.0 / 3.0, abs=1e-9)


def test_rows_aligned_by_position_not_index(distinct_table):
    relabelled = distinct_table.copy()
    relabelled.index = relabelled.index[::-1]
    assert protection(distinct_table, relabelled, ["load"]) == 0.0


def brute_force_link_shares(originals: np.ndarray, avatars: np.ndarray) -> np.ndarray:
    """Float64 reference of the tie rule on the full n-by-n distance table (small inputs only)."""
    sq = ((originals[:, None, :] - avatars[None, :, :]) ** 2).sum(-1)
    own = np.diag(sq)[:, None]
    margin = 1e-12 * ((originals ** 2).sum(1)[:, None] + (avatars ** 2).sum(1)[None, :])
    closer = sq < own - margin
    tied = np.abs(sq - own) <= margin
    np.fill_diagonal(closer, False)
    np.fill_diagonal(tied, False)
    return np.where(closer.sum(1) > 0, 0.0, 1.0 / (1.0 + tied.sum(1)))


def test_link_shares_match_brute_force():
    # Values on a coarse grid make many exact ties, and small blocks and tiles exercise the
    # padding of both.
    rng = np.random.default_rng(3)
    originals = rng.integers(0, 3, size=(300, 2)).astype(np.float64)
    avatars = rng.integers(0, 3, size=(300, 2)).astype(np.float64)
    shares = _link_shares(originals, avatars, block_size=64, tile_size=96)
    expected = brute_force_link_shares(originals, avatars)
    assert np.mean(expected > 0) > 0.05  # the case does contain links through ties
    assert np.allclose(shares, expected, rtol=0, atol=1e-15)


def test_link_shares_block_size_independent():
    rng = np.random.default_rng(4)
    originals = rng.normal(size=(257, 3))
    avatars = originals + rng.normal(scale=0.3, size=originals.shape)
    small = _link_shares(originals, avatars, block_size=32, tile_size=50)
    large = _link_shares(originals, avatars, block_size=257, tile_size=257)
    assert np.array_equal(small, large)


# --- Inference metrics ---------------------------------------------------------------------


def test_inference_exact_numeric_function():
    # Distinct predictor values and k = 1: each original's nearest avatar is its own copy.
    load = np.linspace(0.0, 9.0, 40)
    table = pd.DataFrame({"load": load, "power": 3.0 * load + 1.0})
    entry = inference_metrics(table, table.copy(), "power", k=1)
    assert entry["kind"] == "numeric"
    assert entry["value"] == 0.0
    assert entry["baseline"] > 1.0


def test_inference_exact_categorical_function():
    # Each of 4 modes appears 6 times, so all 5 neighbours of a row share its mode (distance
    # 0) and the state, a function of the mode, is always right. The baseline always predicts
    # the most frequent state, run, which is right on 12 of 24 rows.
    mode = np.repeat(list("abcd"), 6)
    state = pd.Series(mode).map({"a": "idle", "b": "run", "c": "run", "d": "stop"})
    table = pd.DataFrame({"mode": mode, "state": state})
    entry = inference_metrics(table, table.copy(), "state", k=5)
    assert entry["kind"] == "categorical"
    assert entry["unit"] == "%"
    assert entry["value"] == 100.0
    assert entry["baseline"] == 50.0


def test_inference_numeric_group_mean():
    mode = np.repeat(list("abcd"), 6)
    table = pd.DataFrame({"mode": mode, "power": pd.Series(mode).map({"a": 1.0, "b": 2.5, "c": 4.0, "d": 8.0})})
    entry = inference_metrics(table, table.copy(), "power", k=5)
    assert entry["value"] == pytest.approx(0.0, abs=1e-12)


def test_inference_entry_has_no_target():
    table = pd.DataFrame({"load": np.arange(8.0), "mode": list("abababab")})
    entry = inference_metrics(table, table, "mode", k=3)
    assert entry["variable"] == "mode"
    assert entry["target"] is None
    assert entry["meets"] is None
    assert entry["predictors"] == ["load"]
    assert entry["k"] == 3
    assert "No target threshold" in entry["definition"]


def test_majority_vote_tie_goes_to_first_level():
    # The original at load 0.5 has avatars 0 (mode b) and 1 (mode a) as its two neighbours,
    # both at 0.5. The vote ties, so the prediction is a, the first level in sorted order.
    original = pd.DataFrame({"load": [0.5], "mode": ["a"]})
    avatar = pd.DataFrame({"load": [0.0, 1.0, 10.0, 11.0, 12.0], "mode": ["b", "a", "c", "c", "c"]})
    entry = inference_metrics(original, avatar, "mode", k=2)
    assert entry["value"] == 100.0
    assert entry["baseline"] == 0.0  # c is the most frequent avatar level


def test_inference_category_order_breaks_ties():
    # With a category dtype, the declared order decides: b comes first here.
    dtype = pd.CategoricalDtype(["b", "a", "c"])
    original = pd.DataFrame({"load": [0.5], "mode": pd.Series(["b"], dtype=dtype)})
    avatar = pd.DataFrame({"load": [0.0, 1.0, 10.0], "mode": pd.Series(["b", "a", "c"], dtype=dtype)})
    entry = inference_metrics(original, avatar, "mode", k=2)
    assert entry["value"] == 100.0
    assert entry["baseline"] == 100.0  # all three levels tie, b is first


def random_tables(seed: int, n: int = 2000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Originals and independent avatars: two normal predictors and targets independent of them."""
    rng = np.random.default_rng(seed)

    def draw():
        return pd.DataFrame({
            "load": rng.normal(size=n),
            "speed": rng.normal(size=n),
            "mode": rng.choice(["a", "b"], size=n),
            "power": rng.normal(loc=10.0, scale=2.0, size=n),
        })

    return draw(), draw()


def test_random_categorical_target_near_baseline():
    # The prediction does not depend on the truth, so the expected accuracy is 50 % for the
    # attacker and the baseline alike. Each accuracy over 2000 originals has a standard
    # deviation of 100 sqrt(0.25 / 2000) = 1.1 points, their difference at most 2.2, and 7
    # points is over 3 of those.
    original, avatar = random_tables(seed=5)
    entry = inference_metrics(original, avatar, "mode", predictors=["load", "speed"], k=5)
    assert abs(entry["value"] - entry["baseline"]) < 7.0
    assert abs(entry["value"] - 50.0) < 5.0


def test_random_numeric_target_error_ratio():
    # For a normal target independent of the predictors, truth minus the mean of k
    # independent avatar values has variance sigma^2 (1 + 1/k), so the expected ratio of the
    # attacker's error to the baseline's is sqrt(1 + 1/k) = 1.095 for k = 5. Each mean absolute
    # error over 2000 originals has a relative standard deviation of about 0.017, and the two
    # share the truth, so their ratio varies less: over seeds 5 to 11 of random_tables it stayed
    # within 0.012 of 1.095. The tolerance 0.05 is 3 standard deviations of either error.
    original, avatar = random_tables(seed=6)
    entry = inference_metrics(original, avatar, "power", predictors=["load", "speed"], k=5)
    assert entry["value"] / entry["baseline"] == pytest.approx(np.sqrt(1.2), abs=0.05)
    assert entry["baseline"] == pytest.approx(2.0 * np.sqrt(2.0 / np.pi), rel=0.1)


def test_inference_table_every_column(distinct_table):
    entries = inference_table(distinct_table, distinct_table, k=3)
    assert [entry["variable"] for entry in entries] == ["load", "mode", "alarm"]
    assert [entry["kind"] for entry in entries] == ["numeric", "categorical", "categorical"]
    assert entries[0]["predictors"] == ["mode", "alarm"]


def test_inference_table_selected_targets(distinct_table):
    entries = inference_table(distinct_table, distinct_table, targets=["alarm"], k=3)
    assert len(entries) == 1
    assert entries[0]["variable"] == "alarm"


# --- Realistic table from the bundled NAB series -------------------------------------------


@pytest.fixture(scope="module")
def daily_table(machine_temperature) -> pd.DataFrame:
    """One row per calendar day of the NAB machine temperature series with at least 144 readings."""
    series = pd.Series(machine_temperature.values[:, 0], index=pd.DatetimeIndex(machine_temperature.timestamps))
    days = series.groupby(series.index.floor("D"))
    table = pd.DataFrame({"mean": days.mean(), "std": days.std(), "max": days.max(), "readings": days.size()})
    table = table[table["readings"] >= 144].drop(columns="readings")

    day = table.index
    table["weekday"] = pd.Categorical(day.day_name().str[:3])
    table["phase"] = np.where(day.day <= 10, "early", np.where(day.day <= 20, "mid", "late"))
    return table.reset_index(drop=True)


@pytest.fixture(scope="module")
def daily_avatars(daily_table) -> pd.DataFrame:
    """Avatars of the daily table: FAMD coordinates, k = 5 avatars, inverse transform, original order."""
    projection = fit_static(daily_table)
    coordinates = transform(projection, daily_table)
    avatars = generate_avatars(jax.random.key(0), coordinates, k=5)
    return inverse_transform(projection, avatars.coordinates)


@pytest.mark.parametrize("known_columns", [["mean", "max"], ["weekday", "phase"], ["mean", "weekday", "phase"]])
def test_nab_protection_in_range_and_deterministic(daily_table, daily_avatars, known_columns):
    first = correlation_protection_rate(daily_table, daily_avatars, known_columns)
    second = correlation_protection_rate(daily_table, daily_avatars, known_columns)
    assert 0.0 <= first["value"] <= 100.0
    assert first == second


def test_nab_identical_avatars_all_linked(daily_table):
    # Daily means differ from day to day, so each day is alone at distance 0 from its copy.
    assert daily_table["mean"].is_unique
    assert protection(daily_table, daily_table.copy(), ["mean", "weekday"]) == 0.0


def test_nab_categorical_ties_give_fractions(daily_table):
    # With identical avatars, a day whose (weekday, phase) pair is shared by g days ties with
    # g - 1 other avatars at distance 0 and counts 1/g linked. Each pair then adds 1 in total,
    # so the linked share is the number of distinct pairs over the number of days.
    pairs = len(daily_table.groupby(["weekday", "phase"], observed=True))
    assert pairs < len(daily_table)
    expected = 100.0 * (1.0 - pairs / len(daily_table))
    assert protection(daily_table, daily_table.copy(), ["weekday", "phase"]) == pytest.approx(expected, abs=1e-9)


def test_nab_inference_in_range_and_deterministic(daily_table, daily_avatars):
    first = inference_table(daily_table, daily_avatars, k=5)
    second = inference_table(daily_table, daily_avatars, k=5)
    assert first == second
    for entry in first:
        if entry["kind"] == "numeric":
            assert entry["value"] >= 0.0, entry["variable"]
            assert entry["baseline"] > 0.0, entry["variable"]
        else:
            assert 0.0 <= entry["value"] <= 100.0, entry["variable"]
            assert 0.0 < entry["baseline"] <= 100.0, entry["variable"]


# --- Errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("known_columns", "message"),
    [
        (["mode", "speed"], "not found in the original table"),
        ([], "known_columns is empty"),
        ("load", "single string"),
        (["load", "load"], "more than once"),
    ],
)
def test_protection_rejects_known_columns(distinct_table, known_columns, message):
    with pytest.raises(InputDataError, match=message):
        correlation_protection_rate(distinct_table, distinct_table, known_columns)


def test_protection_rejects_column_missing_in_avatars(distinct_table):
    with pytest.raises(InputDataError, match="not found in the avatar table"):
        correlation_protection_rate(distinct_table, distinct_table.drop(columns="mode"), ["mode"])


def test_protection_rejects_length_mismatch(distinct_table):
    with pytest.raises(InputDataError, match="10 rows but the avatar table has 9"):
        correlation_protection_rate(distinct_table, distinct_table.iloc[:9], ["load"])


@pytest.mark.parametrize("table", ["original", "avatar"])
def test_protection_rejects_missing_values(distinct_table, table):
    holed = distinct_table.copy()
    holed.loc[3, "load"] = np.nan
    original, avatar = (holed, distinct_table) if table == "original" else (distinct_table, holed)
    with pytest.raises(InputDataError, match=f"{table} table: .*missing values"):
        correlation_protection_rate(original, avatar, ["load"])


def test_protection_ignores_missing_values_in_other_columns(distinct_table):
    holed = distinct_table.copy()
    holed.loc[3, "mode"] = None
    assert protection(holed, distinct_table, ["load"]) == 0.0


def test_protection_rejects_infinite_values(distinct_table):
    holed = distinct_table.copy()
    holed.loc[3, "load"] = np.inf
    with pytest.raises(InputDataError, match="infinite"):
        correlation_protection_rate(distinct_table, holed, ["load"])


def test_protection_rejects_dtype_mismatch(distinct_table):
    avatar = distinct_table.astype({"load": np.float32})
    with pytest.raises(InputDataError, match="dtypes differ.*'load' \\(float64 .* float32"):
        correlation_protection_rate(distinct_table, avatar, ["load", "mode"])


def test_inference_rejects_unknown_target(distinct_table):
    with pytest.raises(InputDataError, match="target 'power' is not a column"):
        inference_metrics(distinct_table, distinct_table, "power")


def test_inference_rejects_target_missing_in_avatars(distinct_table):
    with pytest.raises(InputDataError, match="not found in the avatar table"):
        inference_metrics(distinct_table, distinct_table.drop(columns="alarm"), "alarm", k=3)


def test_inference_rejects_target_as_predictor(distinct_table):
    with pytest.raises(InputDataError, match="predictors include the target"):
        inference_metrics(distinct_table, distinct_table, "load", predictors=["mode", "load"], k=3)


def test_inference_rejects_empty_predictors(distinct_table):
    with pytest.raises(InputDataError, match="predictors is empty"):
        inference_metrics(distinct_table, distinct_table, "load", predictors=[], k=3)


def test_inference_rejects_single_column_table(distinct_table):
    with pytest.raises(InputDataError, match="no column besides the target"):
        inference_metrics(distinct_table[["load"]], distinct_table[["load"]], "load", k=3)


def test_inference_rejects_too_few_avatars(distinct_table):
    with pytest.raises(InputDataError, match="needs at least k \\+ 1 = 6 avatar rows.*has 4. Lower k to 3"):
        inference_metrics(distinct_table, distinct_table.iloc[:4], "load", k=5)


@pytest.mark.parametrize("k", [0, -2, True, 2.5])
def test_inference_rejects_invalid_k(distinct_table, k):
    with pytest.raises(InputDataError, match="is invalid"):
        inference_metrics(distinct_table, distinct_table, "load", k=k)


def test_inference_rejects_missing_target_values(distinct_table):
    holed = distinct_table.copy()
    holed.loc[0, "mode"] = None
    with pytest.raises(InputDataError, match="avatar table: .*missing values"):
        inference_metrics(distinct_table, holed, "mode", k=3)


def test_inference_rejects_dtype_mismatch(distinct_table):
    avatar = distinct_table.astype({"mode": "category"})
    with pytest.raises(InputDataError, match="dtypes differ.*'mode'"):
        inference_metrics(distinct_table, avatar, "load", k=3)
