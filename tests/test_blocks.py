"""Blocks anonymized jointly: weighting, concatenate and split, per-block inversion, release alignment, bad input."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from avatarjax.block_data import (
    bundled_block_dataset_path,
    build_blocks,
    downsample,
    load_block_series,
    period_factor,
)
from avatarjax.blocks import (
    block_scale,
    check_matching_ids,
    concatenate_blocks,
    split_blocks,
    static_block,
    temporal_block,
)
from avatarjax.blocks_release import released_tables
from avatarjax.config import AvatarConfig, ProjectionConfig
from avatarjax.config_blocks import AnonymizeBlocksConfig, BlocksDataConfig, TemporalBlockConfig, WindowConfig
from avatarjax.errors import ConfigError, InputDataError
from avatarjax.metrics.static_utility import static_utility_metrics, total_variation_distance
from avatarjax.multiblock_pipeline import anonymize_blocks

N = 40


@pytest.fixture(scope="module")
def skab_slice():
    """Two temporal blocks of the packaged SKAB file (1 s and 5 s) and a static block, 55 windows."""
    cfg = AnonymizeBlocksConfig(
        data=BlocksDataConfig(max_steps=600),
        windows=WindowConfig(window="60s", stride="10s"),
        blocks=[
            TemporalBlockConfig(name="current", column="Current", projection=ProjectionConfig(ncp=20)),
            TemporalBlockConfig(name="temperature", column="Temperature", sampling_period="5s",
                                projection=ProjectionConfig(method="dct", ncp=12)),
        ],
    )
    series = load_block_series(cfg.data, ["Current", "Temperature"])
    return build_blocks(series, cfg)


def _random_blocks(rng):
    ids = np.arange(100, 100 + N)
    fast = temporal_block("fast", ids, rng.normal(size=(N, 12)).cumsum(axis=1) * 50.0,
                          ProjectionConfig(method="fpca", ncp=12))
    slow = temporal_block("slow", ids, rng.normal(size=(N, 5)) + np.linspace(0, 1, 5),
                          ProjectionConfig(method="dct", ncp=5))
    frame = pd.DataFrame({"load": rng.normal(10.0, 3.0, N), "hours": rng.uniform(0, 1000, N)})
    return ids, fast, slow, static_block("static", ids, frame)


# Block weighting.


def test_inertia_equalizes_total_variance():
    rng = np.random.default_rng(0)
    blocks = [rng.normal(size=(200, 3)) * 100.0, rng.normal(size=(200, 15)) * 0.01, rng.normal(size=(200, 1))]
    for coordinates in blocks:
        weighted = coordinates * block_scale(coordinates, "inertia")
        assert np.isclose(weighted.var(axis=0, ddof=1).sum(), 1.0)


def test_mfa_equalizes_first_eigenvalue():
    rng = np.random.default_rng(1)
    mixing = rng.normal(size=(6, 6))
    blocks = [rng.normal(size=(300, 6)) @ mixing * 40.0, rng.normal(size=(300, 2)) * 0.5]
    for coordinates in blocks:
        weighted = coordinates * block_scale(coordinates, "mfa")
        first = np.linalg.eigvalsh(np.cov(weighted, rowvar=False))[-1]
        assert np.isclose(first, 1.0)


def test_none_weighting_keeps_scale():
    assert block_scale(np.random.default_rng(2).normal(size=(10, 3)) * 7.0, "none") == 1.0


def test_zero_variance_block_gets_weight_one(caplog):
    with caplog.at_level(logging.WARNING):
        assert block_scale(np.ones((10, 3)), "inertia", name="flat") == 1.0
    assert "flat" in caplog.text


def test_unknown_weighting_rejected():
    with pytest.raises(InputDataError, match="'equal'"):
        block_scale(np.ones((4, 2)), "equal")


# Concatenation and split.


def test_concatenate_then_split_is_identity():
    rng = np.random.default_rng(3)
    parts = [("a", rng.normal(size=(7, 3))), ("b", rng.normal(size=(7, 1))), ("c", rng.normal(size=(7, 4)))]
    joint, layout = concatenate_blocks(parts)
    assert joint.shape == (7, 8)
    assert layout.names == ("a", "b", "c")
    split = split_blocks(joint, layout)
    for name, values in parts:
        np.testing.assert_array_equal(split[name], values)


def test_split_rejects_wrong_width():
    _, layout = concatenate_blocks([("a", np.zeros((3, 2))), ("b", np.zeros((3, 2)))])
    with pytest.raises(InputDataError, match=r"\(n, 4\)"):
        split_blocks(np.zeros((3, 5)), layout)


# The joint run.


def test_inversion_matches_weighted_neighbour_means():
    """With every component kept, each block's avatar is the weighted mean of its neighbours' originals.

    The projections are then linear and exact, so this holds only if the joint coordinates are
    split at the right columns and each block's weight is undone before inverting.
    """
    ids, fast, slow, static = _random_blocks(np.random.default_rng(4))
    result = anonymize_blocks([fast, slow], static, weighting="inertia", avatar=AvatarConfig(k=5))
    assert not np.allclose(list(result.scales.values()), 1.0)

    index, weights = result.neighbour_index, result.neighbour_weights
    for block in (fast, slow):
        expected = np.einsum("nk,nkt->nt", weights, block.values[index])
        np.testing.assert_allclose(result.avatar_temporal[block.name], expected, rtol=1e-4, atol=1e-3 * np.abs(block.values).max())
    for column in static.frame.columns:
        expected = np.einsum("nk,nk->n", weights, static.frame[column].to_numpy()[index])
        np.testing.assert_allclose(result.avatar_static[column], expected, rtol=1e-4, atol=1e-3)


def test_avatar_joint_is_weighted_neighbour_mean():
    ids, fast, slow, static = _random_blocks(np.random.default_rng(5))
    result = anonymize_blocks([fast, slow], static, avatar=AvatarConfig(k=4))
    expected = np.einsum("nk,nkd->nd", result.neighbour_weights, result.original_coordinates[result.neighbour_index])
    np.testing.assert_allclose(result.avatar_coordinates, expected, rtol=1e-4, atol=1e-5)


def test_release_aligned_and_shuffled(skab_slice):
    _, temporal, static = skab_slice
    result = anonymize_blocks(temporal, static, avatar=AvatarConfig(k=10))
    tables = released_tables(result, significant_digits=7)
    order = result.release_order

    assert set(tables) == {"current", "temperature", "static"}
    assert not np.array_equal(order, np.arange(len(order)))
    assert sorted(order.tolist()) == list(range(len(order)))
    for name, table in tables.items():
        np.testing.assert_array_equal(table["avatar_id"], np.arange(len(order)))
    # Row j of every table is the avatar of the same individual, order[j].
    for name in ("current", "temperature"):
        values = tables[name].drop(columns="avatar_id").to_numpy()
        np.testing.assert_allclose(values, result.avatar_temporal[name][order], rtol=1e-6)
    pd.testing.assert_frame_equal(tables["static"].drop(columns="avatar_id"),
                                  result.avatar_static.iloc[order].reset_index(drop=True))


def test_each_block_keeps_own_sampling(skab_slice):
    segments, temporal, static = skab_slice
    result = anonymize_blocks(temporal, static, avatar=AvatarConfig(k=10))
    assert result.avatar_temporal["current"].shape == (segments.n_segments, 60)
    assert result.avatar_temporal["temperature"].shape == (segments.n_segments, 12)
    facts = {block["name"]: block for block in result.metrics["run"]["blocks"]}
    assert facts["temperature"]["sampling_period_seconds"] == 5.0
    assert facts["temperature"]["projection"] == "dct"
    assert set(result.metrics["utility"]) == {"current", "temperature", "static"}
    assert "row_direct_match_protection/temperature" in result.metrics["privacy"]


def test_static_privacy_metrics_reported(skab_slice):
    from avatarjax.config_blocks import AttackConfig

    pytest.importorskip("avatarjax.metrics.static_privacy")
    _, temporal, static = skab_slice
    result = anonymize_blocks(temporal, static, avatar=AvatarConfig(k=10),
                              attack=AttackConfig(known_columns=["phase", "current_mean"]))
    entry = result.metrics["privacy"]["correlation_protection_rate"]
    assert 0.0 <= entry["value"] <= 100.0
    variables = [row["variable"] for row in result.metrics["inference"]]
    assert variables == ["phase", "mode", "current_mean", "temperature_mean"]


def test_same_seed_same_avatars(skab_slice):
    _, temporal, static = skab_slice
    first = anonymize_blocks(temporal, static, avatar=AvatarConfig(k=10, seed=3))
    second = anonymize_blocks(temporal, static, avatar=AvatarConfig(k=10, seed=3))
    np.testing.assert_array_equal(first.release_order, second.release_order)
    np.testing.assert_array_equal(first.avatar_temporal["current"], second.avatar_temporal["current"])


# Bad input.


def test_rows_of_different_lengths_rejected():
    rows = [np.zeros(10), np.zeros(10), np.zeros(8), np.zeros(10)]
    with pytest.raises(InputDataError, match=r"individual 'w3' has 8 steps but most have 10") as error:
        temporal_block("current", ["w1", "w2", "w3", "w4"], rows)
    assert "same duration" in str(error.value)


def test_nan_values_rejected():
    values = np.ones((3, 4))
    values[1, 2] = np.nan
    with pytest.raises(InputDataError, match="individual 11 has NaN"):
        temporal_block("current", [10, 11, 12], values)


def test_duplicate_ids_rejected():
    with pytest.raises(InputDataError, match="id 5 appears 2 times"):
        temporal_block("current", [5, 5, 6], np.ones((3, 4)))


def test_mismatched_ids_rejected():
    first = temporal_block("current", [1, 2, 3], np.ones((3, 4)))
    other = temporal_block("pressure", [1, 2, 4], np.ones((3, 4)))
    with pytest.raises(InputDataError, match=r"only in 'pressure': \[4\], only in 'current': \[3\]"):
        check_matching_ids([first, other])


def test_reordered_ids_rejected():
    first = temporal_block("current", [1, 2, 3], np.ones((3, 4)))
    other = static_block("static", [1, 3, 2], pd.DataFrame({"x": [1.0, 2.0, 3.0]}))
    with pytest.raises(InputDataError, match="same ids in a different order") as error:
        check_matching_ids([first, other])
    assert "Sort every block by id" in str(error.value)


def test_mismatched_ids_stop_the_run():
    ids, fast, slow, static = _random_blocks(np.random.default_rng(6))
    shifted = static_block("static", ids + 1, static.frame)
    with pytest.raises(InputDataError, match="do not have the same individuals"):
        anonymize_blocks([fast, slow], shifted, avatar=AvatarConfig(k=3))


def test_level_seen_once_rejected():
    frame = pd.DataFrame({"mode": ["low"] * 5 + ["high"] * 4 + ["rare"]})
    with pytest.raises(InputDataError, match=r"level 'rare' appears in one row only") as error:
        static_block("static", np.arange(10), frame)
    assert "rare_levels" in str(error.value)


def test_level_seen_once_kept_on_request():
    frame = pd.DataFrame({"mode": ["low"] * 5 + ["high"] * 4 + ["rare"]})
    block = static_block("static", np.arange(10), frame, rare_levels="keep")
    assert block.frame["mode"].tolist()[-1] == "rare"


def test_single_level_column_rejected():
    ids, fast, slow, _ = _random_blocks(np.random.default_rng(7))
    frame = pd.DataFrame({"site": ["A"] * N, "load": np.arange(N, dtype=float)})
    with pytest.raises(InputDataError, match="'site' has a single level 'A'"):
        anonymize_blocks([fast, slow], static_block("static", ids, frame), avatar=AvatarConfig(k=3))


def test_all_missing_column_rejected():
    ids, fast, slow, _ = _random_blocks(np.random.default_rng(8))
    frame = pd.DataFrame({"load": np.arange(N, dtype=float), "empty": [np.nan] * N})
    with pytest.raises(InputDataError, match=r"\['empty'\] contain only missing values"):
        anonymize_blocks([fast, slow], static_block("static", ids, frame), avatar=AvatarConfig(k=3))


def test_too_few_individuals_for_k():
    ids, fast, slow, static = _random_blocks(np.random.default_rng(9))
    with pytest.raises(InputDataError, match=f"only {N} individuals for k = {N}"):
        anonymize_blocks([fast, slow], static, avatar=AvatarConfig(k=N))


def test_sampling_period_must_divide_window():
    series = load_block_series(BlocksDataConfig(max_steps=100), ["Temperature"])
    with pytest.raises(InputDataError, match="sampling_period='7s' is 7 series steps"):
        period_factor("7s", series, 60, "temperature")


def test_downsample_averages_runs():
    values = np.arange(12, dtype=float).reshape(2, 6)
    np.testing.assert_array_equal(downsample(values, 3), [[1.0, 4.0], [7.0, 10.0]])


def test_missing_column_named():
    with pytest.raises(InputDataError, match="column 'Flow' not found"):
        load_block_series(BlocksDataConfig(), ["Current", "Flow"])


# Static utility.


def test_total_variation_distance():
    original = pd.Series(["a", "a", "b", "b"])
    assert total_variation_distance(original, original) == 0.0
    assert total_variation_distance(original, pd.Series(["a", "a", "a", "a"])) == pytest.approx(0.5)
    assert total_variation_distance(original, pd.Series(["c", "c"])) == pytest.approx(1.0)


def test_static_utility_picks_metric_by_type():
    original = pd.DataFrame({"mode": ["low", "high"] * 10, "load": np.linspace(0, 1, 20)})
    metrics = static_utility_metrics(original, original)
    assert metrics["mode"]["label"] == "mode: Total variation distance"
    assert metrics["load"]["label"] == "load: Hellinger distance"
    assert metrics["mode"]["value"] == 0.0
    assert metrics["load"]["value"] == 0.0


# Packaged data and configs.


def test_skab_packaged_with_license():
    path = bundled_block_dataset_path("anomaly-free")
    assert path.is_file()
    assert (path.parent / "LICENSE").read_text().lstrip().startswith("GNU GENERAL PUBLIC LICENSE")
    assert "GPL-3.0" in (path.parent / "SOURCE.txt").read_text()


def test_static_attributes_derived(skab_slice):
    segments, _, static = skab_slice
    assert list(static.frame.columns) == ["phase", "mode"]
    assert set(static.frame["phase"]) == {"phase_1", "phase_2", "phase_3", "phase_4"}
    assert set(static.frame["mode"]) == {"low", "medium", "high"}
    np.testing.assert_array_equal(static.ids, segments.start_index)


@pytest.mark.parametrize("changes,message", [
    ({"blocks": []}, "blocks is empty"),
    ({"block_weighting": "equal"}, "block_weighting='equal'"),
    ({"blocks": [TemporalBlockConfig(name="a", column="x"), TemporalBlockConfig(name="a", column="y")]},
     "'a' is used twice"),
])
def test_invalid_block_configs_rejected(changes, message):
    settings = {"blocks": [TemporalBlockConfig(name="current", column="Current")], **changes}
    with pytest.raises(ConfigError, match=message):
        AnonymizeBlocksConfig(**settings)


def test_invalid_block_name_rejected():
    with pytest.raises(ConfigError, match="'flow rate' is invalid because it becomes a file name"):
        TemporalBlockConfig(name="flow rate", column="Volume Flow RateRMS")


def test_unknown_attack_column_rejected():
    from avatarjax.config_blocks import AttackConfig

    with pytest.raises(ConfigError, match="attack column 'voltage_mean' is not in the attack table"):
        AnonymizeBlocksConfig(blocks=[TemporalBlockConfig(name="current", column="Current")],
                              attack=AttackConfig(known_columns=["voltage_mean"]))
