import numpy as np
import pytest

from avatarjax.metrics.privacy import (closer_avatar_counts, closest_distance_ratio, closest_original_distances,
                                       distance_to_closest, hidden_rate, local_cloaking, round_significant,
                                       row_direct_match_protection)


def brute_force_counts(originals, avatars):
    """Reference in float64: avatars closer than the own avatar by more than 1e-12 (|x|^2 + |a|^2)."""
    originals = originals.astype(np.float64)
    avatars = avatars.astype(np.float64)
    sq = ((originals[:, None, :] - avatars[None, :, :]) ** 2).sum(-1)
    own = np.diag(sq)[:, None]
    margin = 1e-12 * ((originals ** 2).sum(1)[:, None] + (avatars ** 2).sum(1)[None, :])
    closer = sq < own - margin
    np.fill_diagonal(closer, False)
    return closer.sum(axis=1)


@pytest.fixture(scope="module")
def points():
    rng = np.random.default_rng(11)
    originals = rng.normal(size=(700, 5)).astype(np.float32)
    avatars = (originals + rng.normal(scale=0.6, size=originals.shape)).astype(np.float32)
    return originals, avatars


def test_counts_match_brute_force(points):
    originals, avatars = points
    counts = closer_avatar_counts(originals, avatars, block_size=128, tile_size=256)
    assert np.array_equal(counts, brute_force_counts(originals, avatars))


def test_counts_match_brute_force_real_windows(real_segments):
    # Overlapping real windows: neighbours are far closer to each other than to the origin,
    # which is where float32 rounding of the distance expansion would change the counts.
    import jax

    from avatarjax.avatar import generate_avatars
    from avatarjax.projection.fpca import fit_fpca, transform

    originals = np.asarray(transform(fit_fpca(real_segments, ncp=10), real_segments))
    avatars = np.asarray(generate_avatars(jax.random.key(0), originals, k=10).coordinates)
    counts = closer_avatar_counts(originals, avatars, block_size=256, tile_size=512)
    assert np.array_equal(counts, brute_force_counts(originals, avatars))


def test_counts_block_size_independent(points):
    originals, avatars = points
    small = closer_avatar_counts(originals, avatars, block_size=64, tile_size=100)
    large = closer_avatar_counts(originals, avatars, block_size=700, tile_size=700)
    assert np.array_equal(small, large)


def test_avatars_equal_originals_not_hidden(points):
    originals, _ = points
    counts = closer_avatar_counts(originals, originals)
    assert hidden_rate(counts) == 0.0
    assert local_cloaking(counts) == 0.0


def test_duplicate_avatars_are_ties():
    # Ten identical originals whose avatars are all equal: every avatar ties with the own one.
    originals = np.ones((10, 3), np.float32)
    avatars = np.full((10, 3), 2.0, np.float32)
    counts = closer_avatar_counts(originals, avatars)
    assert np.all(counts == 0)
    assert hidden_rate(counts) == 0.0


def test_hidden_rate_and_cloaking_values():
    counts = np.array([0, 1, 2, 5, 9])
    assert hidden_rate(counts) == 80.0
    assert local_cloaking(counts) == 2.0


def test_closest_distances_match_brute_force(points):
    originals, avatars = points
    closest, second = closest_original_distances(originals, avatars)
    sq = ((avatars[:, None, :].astype(np.float64) - originals[None, :, :]) ** 2).sum(-1)
    ordered = np.sort(np.sqrt(sq), axis=1)
    assert np.allclose(closest, ordered[:, 0], rtol=1e-4, atol=1e-5)
    assert np.allclose(second, ordered[:, 1], rtol=1e-4, atol=1e-5)


def test_distance_ratio_second_zero():
    closest = np.array([0.0, 0.0, 1.0])
    second = np.array([0.0, 0.0, 4.0])
    assert closest_distance_ratio(closest, second) == 1.0
    assert distance_to_closest(closest) == 0.0


def test_distance_ratio_duplicate_originals():
    originals = np.array([[0.0, 0.0], [0.0, 0.0], [5.0, 5.0]], np.float32)
    avatars = np.array([[0.0, 0.0], [0.0, 0.0], [5.0, 5.0]], np.float32)
    closest, second = closest_original_distances(originals, avatars)
    ratio = np.where(second > 0, closest / np.where(second > 0, second, 1), 1.0)
    assert ratio[0] == 1.0


def test_direct_match_copies(real_segments):
    assert row_direct_match_protection(real_segments, real_segments[::-1]) == 0.0


def test_direct_match_none(real_segments):
    assert row_direct_match_protection(real_segments, real_segments + 0.5) == 100.0


def test_direct_match_partial(real_segments):
    avatars = real_segments + 0.5
    avatars[:10] = real_segments[:10]
    expected = (1 - 10 / real_segments.shape[0]) * 100
    assert np.isclose(row_direct_match_protection(real_segments, avatars), expected)


def test_direct_match_release_precision(real_segments):
    # A copy rounded and written with 7 significant digits, as the release does, still matches.
    written = np.vectorize(lambda v: float(f"{v:.7g}"))(round_significant(real_segments, 7))
    assert row_direct_match_protection(real_segments, written, significant_digits=7) == 0.0


def test_count_block_memory_bounded_at_200k():
    # The float64 count program for n = 200 000 avatars must not allocate an n-by-n array.
    import jax
    import jax.numpy as jnp

    from avatarjax.metrics.privacy import _closer_count_block

    n, block, d = 200_704, 512, 20
    spec = jax.ShapeDtypeStruct
    with jax.enable_x64(True):
        compiled = _closer_count_block.lower(
            spec((block, d), jnp.float64), spec((block, d), jnp.float64), spec((n, d + 1), jnp.float64),
            tile_size=2048).compile()
    scratch = compiled.memory_analysis().temp_size_in_bytes
    assert scratch < 256 * 2**20
    assert scratch < 1e-3 * n * n * 8


def test_privacy_summary_lists_missed_targets():
    from avatarjax.metrics.targets import PRIVACY_TARGETS, metric_entry, privacy_summary

    privacy = {"hidden_rate": metric_entry(PRIVACY_TARGETS["hidden_rate"], 80.0),
               "local_cloaking": metric_entry(PRIVACY_TARGETS["local_cloaking"], 7.0),
               "distance_to_closest": metric_entry(PRIVACY_TARGETS["distance_to_closest"], float("nan"))}
    summary = privacy_summary(privacy)
    assert summary.startswith("WARNING: 1 of 3 privacy targets are not met")
    assert "Hidden rate 80 % (target > 90 %)" in summary
    assert "Local cloaking" not in summary


def test_privacy_summary_all_met():
    from avatarjax.metrics.targets import PRIVACY_TARGETS, metric_entry, privacy_summary

    privacy = {"hidden_rate": metric_entry(PRIVACY_TARGETS["hidden_rate"], 95.0)}
    assert privacy_summary(privacy) == "All 1 privacy targets are met."


def test_privacy_summary_undefined_not_met():
    from avatarjax.metrics.targets import PRIVACY_TARGETS, metric_entry, privacy_summary

    privacy = {"hidden_rate": metric_entry(PRIVACY_TARGETS["hidden_rate"], 95.0),
               "distance_to_closest": metric_entry(PRIVACY_TARGETS["distance_to_closest"], float("nan"))}
    assert privacy_summary(privacy) == "1 of 2 privacy targets are met; undefined: Distance to closest (median)."
