import math

import jax
import numpy as np
import pytest

from avatarjax.avatar import generate_avatars
from avatarjax.errors import InputDataError
from avatarjax.metrics.attacks import SuccessRate, attack_risk, linkability, random_baseline, wilson_interval
from avatarjax.projection.fpca import fit_fpca, inverse_transform, transform

Z95 = 1.959963984540054


def hand_wilson(successes, trials, z=Z95):
    """Wilson score interval written out: (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)."""
    p = successes / trials
    center = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return center - half, center + half


@pytest.mark.parametrize("successes, trials", [(0, 10), (5, 10), (10, 10), (81, 100)])
def test_wilson_matches_formula(successes, trials):
    low, high = wilson_interval(successes, trials)
    expected_low, expected_high = hand_wilson(successes, trials)
    assert low == pytest.approx(max(expected_low, 0.0), abs=1e-12)
    assert high == pytest.approx(min(expected_high, 1.0), abs=1e-12)


def test_wilson_known_values():
    # Rounded 95 % values, independent of hand_wilson, so an error shared by both would show.
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_interval(81, 100) == pytest.approx((0.7222, 0.8749), abs=1e-4)


def test_wilson_other_confidence():
    z90 = 1.6448536269514722
    assert wilson_interval(5, 10, confidence=0.90) == pytest.approx(hand_wilson(5, 10, z=z90), abs=1e-12)
    assert wilson_interval(5, 10, confidence=0.90)[1] < wilson_interval(5, 10)[1]


@pytest.mark.parametrize("successes, trials, confidence, name", [
    (0, 0, 0.95, "trials"), (-1, 10, 0.95, "successes"), (11, 10, 0.95, "successes"),
    (5, 10, 0.0, "confidence"), (5, 10, 1.0, "confidence"),
])
def test_wilson_invalid_inputs(successes, trials, confidence, name):
    with pytest.raises(ValueError, match=name):
        wilson_interval(successes, trials, confidence)


def test_success_rate_from_counts():
    rate = SuccessRate.from_counts(81, 100)
    assert rate.successes == 81
    assert rate.trials == 100
    assert rate.rate == 0.81
    assert (rate.low, rate.high) == pytest.approx(hand_wilson(81, 100), abs=1e-12)


def test_risk_hand_example():
    attack = SuccessRate(successes=60, trials=100, rate=0.6, low=0.5, high=0.7)
    control = SuccessRate(successes=20, trials=100, rate=0.2, low=0.1, high=0.3)
    risk = attack_risk(attack, control)
    assert risk["value"] == pytest.approx((0.6 - 0.2) / (1 - 0.2))
    assert risk["value"] == pytest.approx(0.5)
    assert risk["low"] == pytest.approx((0.5 - 0.3) / (1 - 0.3))
    assert risk["high"] == pytest.approx((0.7 - 0.1) / (1 - 0.1))
    assert risk["attack_rate"] == 0.6
    assert risk["control_rate"] == 0.2


def test_risk_interval_from_wilson():
    attack = SuccessRate.from_counts(60, 100)
    control = SuccessRate.from_counts(20, 100)
    attack_low, attack_high = hand_wilson(60, 100)
    control_low, control_high = hand_wilson(20, 100)
    risk = attack_risk(attack, control)
    assert risk["low"] == pytest.approx((attack_low - control_high) / (1 - control_high))
    assert risk["high"] == pytest.approx((attack_high - control_low) / (1 - control_low))
    assert risk["low"] < risk["value"] < risk["high"]


def test_risk_negative_not_clipped():
    attack = SuccessRate.from_counts(10, 100)
    control = SuccessRate.from_counts(40, 100)
    assert attack_risk(attack, control)["value"] == pytest.approx((0.1 - 0.4) / 0.6)


def test_risk_small_control_rejected():
    attack = SuccessRate.from_counts(50, 100)
    with pytest.raises(InputDataError, match="29 segments"):
        attack_risk(attack, SuccessRate.from_counts(5, 29))


def test_risk_control_rate_one_rejected():
    attack = SuccessRate.from_counts(50, 100)
    with pytest.raises(InputDataError, match="control success rate is 1"):
        attack_risk(attack, SuccessRate.from_counts(100, 100))


def split_halves(curves):
    half = curves.shape[1] // 2
    return curves[:, :half], curves[:, half:]


def test_linkability_avatars_equal_originals():
    rng = np.random.default_rng(3)
    originals = rng.normal(size=(300, 24)).astype(np.float32)
    first, second = split_halves(originals)
    result = linkability(first, second, first, second, k=1)
    assert result.successes == 300
    assert result.trials == 300
    assert result.rate == 1.0


def test_linkability_shuffled_avatar_order_irrelevant():
    rng = np.random.default_rng(4)
    originals = rng.normal(size=(200, 24)).astype(np.float32)
    avatars = originals[rng.permutation(200)]
    first, second = split_halves(originals)
    avatar_first, avatar_second = split_halves(avatars)
    assert linkability(first, second, avatar_first, avatar_second, k=1).rate == 1.0


def test_linkability_unrelated_avatars_near_baseline():
    # Independent noise curves: the two halves of an original carry no information about each
    # other, so the attack can only match the random baseline.
    rng = np.random.default_rng(5)
    n, k = 2000, 5
    originals = rng.normal(size=(n, 24)).astype(np.float32)
    avatars = rng.normal(size=(n, 24)).astype(np.float32)[rng.permutation(n)]
    first, second = split_halves(originals)
    avatar_first, avatar_second = split_halves(avatars)
    result = linkability(first, second, avatar_first, avatar_second, k=k)
    baseline = 1 - math.comb(n - k, k) / math.comb(n, k)
    assert result.low <= baseline <= result.high
    assert abs(result.rate - baseline) < 0.01


def test_linkability_mismatched_rows_rejected():
    parts = np.zeros((10, 4), np.float32)
    with pytest.raises(InputDataError, match="10 and 9 rows"):
        linkability(parts, parts[:9], parts, parts)
    with pytest.raises(InputDataError, match="10 and 8 rows"):
        linkability(parts, parts, parts, parts[:8])


@pytest.mark.parametrize("n, k", [(10, 1), (10, 3), (10, 6), (100, 5), (1000, 20)])
def test_random_baseline_formula(n, k):
    no_overlap = 1.0
    for i in range(k):
        # The second subset avoids the first one: draw k of the n - k others, one at a time.
        no_overlap *= (n - k - i) / (n - i)
    assert random_baseline(n, k) == pytest.approx(1 - no_overlap, abs=1e-12)


def test_random_baseline_simple_cases():
    assert random_baseline(10, 1) == pytest.approx(0.1)
    assert random_baseline(10, 6) == 1.0
    assert random_baseline(200_000, 20) == pytest.approx(1 - (1 - 20 / 200_000) ** 20, rel=1e-3)


def test_random_baseline_monte_carlo():
    rng = np.random.default_rng(0)
    n, k, draws = 50, 4, 20_000
    hits = 0
    for _ in range(draws):
        first = set(rng.choice(n, size=k, replace=False).tolist())
        second = set(rng.choice(n, size=k, replace=False).tolist())
        hits += bool(first & second)
    estimate = hits / draws
    standard_error = math.sqrt(estimate * (1 - estimate) / draws)
    assert abs(random_baseline(n, k) - estimate) < 4 * standard_error


@pytest.mark.parametrize("n, k", [(0, 1), (10, 0), (10, 11)])
def test_random_baseline_invalid_inputs(n, k):
    with pytest.raises(ValueError):
        random_baseline(n, k)


def test_linkability_risk_real_segments(real_segments):
    rng = np.random.default_rng(1)
    order = rng.permutation(real_segments.shape[0])
    half = real_segments.shape[0] // 2
    targets = real_segments[order[:half]]
    controls = real_segments[order[half:]]

    fpca = fit_fpca(targets, ncp=10)
    avatar_coordinates = generate_avatars(jax.random.key(0), transform(fpca, targets), k=10).coordinates
    avatars = np.asarray(inverse_transform(fpca, avatar_coordinates))
    avatar_first, avatar_second = split_halves(avatars)

    attack = linkability(*split_halves(targets), avatar_first, avatar_second, k=1)
    control = linkability(*split_halves(controls), avatar_first, avatar_second, k=1)
    risk = attack_risk(attack, control)

    assert attack.trials == half
    assert control.trials == real_segments.shape[0] - half
    for key in ("value", "low", "high"):
        assert math.isfinite(risk[key])
        assert -1.0 <= risk[key] <= 1.0
    assert risk["low"] <= risk["value"] <= risk["high"]
    assert control.rate > random_baseline(avatars.shape[0], 1)
