import dataclasses

import numpy as np
import pytest

from avatarjax.errors import InputDataError
from avatarjax.metrics.entity_privacy import (entity_closer_avatar_counts, entity_hidden_rate, entity_local_cloaking,
                                              entity_of_segments, entity_privacy_metrics)
from avatarjax.metrics.privacy import closer_avatar_counts, hidden_rate, local_cloaking


def hourly(start: str, n: int) -> np.ndarray:
    return np.arange(np.datetime64(start, "ns"), np.datetime64(start, "ns") + np.timedelta64(n, "h"),
                     np.timedelta64(1, "h"))


def brute_force_entity_counts(originals, avatars, entities):
    """Reference in float64: other-entity avatars closer than the closest own-entity avatar by the margin."""
    originals = originals.astype(np.float64)
    avatars = avatars.astype(np.float64)
    sq = ((originals[:, None, :] - avatars[None, :, :]) ** 2).sum(-1)
    same = entities[:, None] == entities[None, :]
    own = np.where(same, sq, np.inf).min(axis=1)[:, None]
    margin = 1e-12 * ((originals ** 2).sum(1)[:, None] + (avatars ** 2).sum(1)[None, :])
    return ((sq < own - margin) & ~same).sum(axis=1)


# Entity of segments.

def test_entity_windows_across_midnight_even():
    # 20:00 on day 1 to 07:00 on day 2, windows of 4 hourly steps.
    timestamps = hourly("2024-01-01T20:00", 12)
    codes = entity_of_segments(np.arange(9), 4, timestamps, entity="1D")
    # start 0: 20-23 all day 1; start 1: 3 of 4 in day 1; start 2: 22, 23 | 0, 1 is an exact
    # half split, so the middle step (index 2, 00:00) decides day 2; later starts are day 2.
    assert codes.tolist() == [0, 0, 1, 1, 1, 1, 1, 1, 1]


def test_entity_windows_across_midnight_odd():
    timestamps = hourly("2024-01-01T20:00", 12)
    codes = entity_of_segments(np.arange(8), 5, timestamps, entity="1D")
    # start 1: 21, 22, 23 | 0, 1 keeps 3 of 5 steps in day 1; start 2: 22, 23 | 0, 1, 2 is day 2.
    assert codes.tolist() == [0, 0, 1, 1, 1, 1, 1, 1]


def test_entity_explicit_ids_majority_and_half():
    ids = np.array(["m2", "m2", "m1", "m1", "m1", "m2", "m2", "m2"])
    timestamps = hourly("2024-01-01T00:00", ids.size)
    codes = entity_of_segments(np.arange(5), 4, timestamps, entity=ids)
    labels = np.unique(ids)[codes].tolist()
    # start 0: m2 m2 | m1 m1 splits evenly, the middle step (index 2) is m1;
    # start 1: m2 m1 m1 m1; start 2: m1 m1 m1 m2; start 3: m1 m1 | m2 m2 -> middle m2;
    # start 4: m1 m2 m2 m2.
    assert labels == ["m1", "m1", "m1", "m2", "m2"]


def test_entity_spread_window_uses_middle():
    # Three entities in one window of 5 steps, none with more than half of them.
    ids = np.array([0, 0, 1, 2, 2, 7])
    codes = entity_of_segments(np.array([0, 1]), 5, hourly("2024-01-01", 6), entity=ids)
    assert codes.tolist() == [1, 2]  # start 0: middle step 2 -> id 1; start 1: 2 of 5 are id 2, middle -> 2


def test_entity_real_segments_match_day(machine_temperature):
    from avatarjax.segmentation import sliding_windows

    segments = sliding_windows(machine_temperature, window=72, stride=1)
    codes = entity_of_segments(segments.start_index, segments.window_steps, machine_temperature.timestamps)
    middle_day = (segments.start_time + np.timedelta64(36 * 5, "m")).astype("datetime64[D]")
    # With 72 steps, the day of the middle step contains at least 36 steps, so it is the
    # entity. Codes index the distinct days of all steps of the series.
    days = np.unique(machine_temperature.timestamps.astype("datetime64[D]"))
    expected = np.searchsorted(days, middle_day)
    assert np.array_equal(codes, expected)


def test_entity_errors():
    timestamps = np.arange(np.datetime64("2024-01-01", "ns"), np.datetime64("2024-01-03", "ns"),
                           np.timedelta64(5, "m"))
    starts = np.arange(0, 200)
    with pytest.raises(InputDataError, match="'1h'.*half the window"):
        entity_of_segments(starts, 288, timestamps, entity="1h")
    with pytest.raises(InputDataError, match="'12h'.*half the window"):
        entity_of_segments(starts, 288, timestamps, entity="12h")
    with pytest.raises(InputDataError, match="one entity"):
        entity_of_segments(starts, 288, timestamps, entity=np.full(timestamps.size, "m1"))
    with pytest.raises(InputDataError, match="one id per step"):
        entity_of_segments(starts, 288, timestamps, entity=np.zeros(timestamps.size - 1))
    with pytest.raises(InputDataError, match="'median' is unknown"):
        entity_of_segments(starts, 288, timestamps, rule="median")
    with pytest.raises(InputDataError, match="not a pandas frequency"):
        entity_of_segments(starts, 288, timestamps, entity="daily")
    with pytest.raises(InputDataError, match="non-fixed"):
        entity_of_segments(starts, 288, timestamps, entity="W")
    with pytest.raises(InputDataError, match="do not fit"):
        entity_of_segments(np.array([timestamps.size - 10]), 288, timestamps)


def test_entity_13h_allowed_for_one_day_window():
    # 13 h is longer than half a 24 h window, so a majority can exist.
    timestamps = np.arange(np.datetime64("2024-01-01", "ns"), np.datetime64("2024-01-04", "ns"),
                           np.timedelta64(1, "h"))
    codes = entity_of_segments(np.arange(0, 48), 24, timestamps, entity="13h")
    assert np.unique(codes).size >= 2


# Metrics against brute force.

@pytest.mark.parametrize("block_size, tile_size", [(64, 100), (128, 256), (700, 700), (1000, 3000)])
def test_counts_match_brute_force(block_size, tile_size):
    rng = np.random.default_rng(5)
    originals = rng.normal(size=(700, 5))
    avatars = originals + rng.normal(scale=0.6, size=originals.shape)
    entities = rng.integers(0, 9, size=700)
    counts = entity_closer_avatar_counts(originals, avatars, entities, block_size=block_size, tile_size=tile_size)
    assert np.array_equal(counts, brute_force_entity_counts(originals, avatars, entities))


def test_metrics_match_brute_force():
    rng = np.random.default_rng(8)
    originals = rng.normal(size=(300, 4))
    avatars = originals + rng.normal(scale=1.0, size=originals.shape)
    entities = rng.choice(np.array(["a", "b", "c", "d", "e", "f"]), size=300)
    expected = brute_force_entity_counts(originals, avatars, entities)
    assert 0 < np.mean(expected >= 1) < 1  # the case is not degenerate
    hidden = entity_hidden_rate(originals, avatars, entities, block_size=64, tile_size=128)
    cloaking = entity_local_cloaking(originals, avatars, entities, block_size=64, tile_size=128)
    both = entity_privacy_metrics(originals, avatars, entities)
    assert hidden["value"] == pytest.approx(np.mean(expected >= 1) * 100.0)
    assert cloaking["value"] == float(np.median(expected))
    assert both["entity_hidden_rate"]["value"] == hidden["value"]
    assert both["entity_local_cloaking"]["value"] == cloaking["value"]
    assert hidden["target"] == "> 90 %"
    assert cloaking["target"] == ">= 5"


def test_same_entity_closest_found():
    # Two entities of two originals each. Each avatar sits on the other original of its pair,
    # so the closest avatar of every original comes from its own entity.
    originals = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [11.0, 0.0]])
    avatars = originals[[1, 0, 3, 2]]
    entities = np.array([0, 0, 1, 1])
    segment_counts = closer_avatar_counts(originals, avatars)
    assert hidden_rate(segment_counts) == 100.0
    assert local_cloaking(segment_counts) == 1.0
    assert entity_hidden_rate(originals, avatars, entities)["value"] == 0.0
    assert entity_local_cloaking(originals, avatars, entities)["value"] == 0.0
    assert entity_hidden_rate(originals, avatars, entities)["meets"] is False


def test_tie_with_own_entity_counts_as_found():
    # Original 0 sits halfway between its own avatar (entity 0) and avatar 1 (entity 1): a tie.
    # Original 1's closest avatar, avatar 0, is of the other entity, so it is hidden.
    originals = np.array([[0.0], [5.0]])
    avatars = np.array([[1.0], [-1.0]])
    counts = entity_closer_avatar_counts(originals, avatars, np.array([0, 1]))
    assert counts.tolist() == [0, 1]
    assert entity_hidden_rate(originals, avatars, np.array([0, 1]))["value"] == 50.0


def test_metric_shape_errors():
    originals = np.zeros((4, 2))
    with pytest.raises(InputDataError, match="do not match"):
        entity_closer_avatar_counts(originals, np.zeros((3, 2)), np.arange(4))
    with pytest.raises(InputDataError, match="do not match"):
        entity_closer_avatar_counts(originals, originals, np.arange(5))


# Real data: stride-1 windows of the machine temperature series.

def test_real_entity_hidden_rate_not_above_segment(machine_temperature):
    from avatarjax.avatar import generate_avatars, seed_keys
    from avatarjax.projection.fpca import fit_fpca, transform
    from avatarjax.segmentation import sliding_windows

    n_steps = 2000
    head = dataclasses.replace(machine_temperature, timestamps=machine_temperature.timestamps[:n_steps],
                               values=machine_temperature.values[:n_steps], pieces=((0, n_steps),))
    segments = sliding_windows(head, window=72, stride=1)
    curves = segments.values[:, :, 0]
    originals = np.asarray(transform(fit_fpca(curves, ncp=10), curves))
    avatars = np.asarray(generate_avatars(seed_keys(0)[0], originals, k=10).coordinates)

    entities = entity_of_segments(segments.start_index, segments.window_steps, head.timestamps, entity="1D")
    segment_counts = closer_avatar_counts(originals, avatars)
    entity = entity_privacy_metrics(originals, avatars, entities)
    segment_hidden = hidden_rate(segment_counts)
    segment_cloaking = local_cloaking(segment_counts)
    figures = (f"n={originals.shape[0]} segments, {np.unique(entities).size} days: "
               f"segment hidden rate {segment_hidden:.2f} %, entity hidden rate "
               f"{entity['entity_hidden_rate']['value']:.2f} %; segment local cloaking {segment_cloaking:g}, "
               f"entity local cloaking {entity['entity_local_cloaking']['value']:g}")
    print(figures)
    assert entity["entity_hidden_rate"]["value"] <= segment_hidden, figures
    assert entity["entity_local_cloaking"]["value"] <= segment_cloaking, figures
    assert np.array_equal(entity_closer_avatar_counts(originals, avatars, entities),
                          brute_force_entity_counts(originals, avatars, entities)), figures


def test_start_rule_takes_first_step_entity():
    # Windows of 4 steps of 6 hours, so a window starting at 18:00 has 1 step that day and 3 the next.
    timestamps = np.arange("2024-01-01T00", "2024-01-04T00", 6, dtype="datetime64[h]")
    starts = np.array([0, 3, 4, 7])
    start = entity_of_segments(starts, 4, timestamps, "1D", rule="start")
    majority = entity_of_segments(starts, 4, timestamps, "1D", rule="majority")
    assert start.tolist() == [0, 0, 1, 1]
    assert majority.tolist() == [0, 1, 1, 2]
