import logging

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from avatarjax.detection import comparison
from avatarjax.detection.model import ConvAutoencoder, Standardization
from avatarjax.detection.scoring import seed_mean_and_interval, time_step_scores, window_errors
from avatarjax.detection.training import TrainingError, train_ensemble
from avatarjax.errors import InputDataError
from avatarjax.config import AnalysisConfig, ValidateConfig
from avatarjax.validation import count_labelled_in_training, load_labels, restrict, run_analysis

SMALL = ConvAutoencoder(channels=(4, 8), kernel_size=5, latent_channels=2)


@pytest.fixture(scope="module")
def windows(real_segments):
    scale = Standardization.fit(real_segments)
    return scale.apply(real_segments[:512])


@pytest.fixture(scope="module")
def ensemble(windows):
    return train_ensemble(windows, SMALL, seeds=2, epochs=4, batch_size=64, learning_rate=3e-3, progress=False)


def test_model_keeps_length():
    import jax

    for length in (288, 100, 7):
        x = np.zeros((3, length), np.float32)
        params = SMALL.init(jax.random.key(0), x)
        assert SMALL.apply(params, x).shape == (3, length)


def test_standardization_constant_input():
    scale = Standardization.fit(np.full((4, 10), 3.0))
    assert scale.std == 1.0
    assert np.all(scale.apply(np.full((1, 10), 3.0)) == 0.0)


def test_training_loss_decreases(ensemble):
    assert ensemble.epoch_loss.shape == (2, 4)
    assert np.all(ensemble.epoch_loss[:, -1] < ensemble.epoch_loss[:, 0])


def test_training_deterministic(windows, ensemble):
    again = train_ensemble(windows, SMALL, seeds=2, epochs=4, batch_size=64, learning_rate=3e-3, progress=False)
    assert np.array_equal(again.epoch_loss, ensemble.epoch_loss)


def test_seeds_differ(ensemble):
    assert ensemble.epoch_loss[0, 0] != ensemble.epoch_loss[1, 0]


def test_seed_modes_same_result(windows, ensemble):
    other = "vmap" if ensemble.seed_mode == "unroll" else "unroll"
    vmapped = train_ensemble(windows, SMALL, seeds=2, epochs=4, batch_size=64, learning_rate=3e-3,
                             seed_mode=other, progress=False)
    assert np.allclose(vmapped.epoch_loss, ensemble.epoch_loss, rtol=1e-3)


def test_nan_loss_stops_training(windows):
    broken = windows.copy()
    broken[5, 3] = np.nan
    with pytest.raises(TrainingError, match="learning_rate"):
        train_ensemble(broken, SMALL, seeds=1, epochs=2, batch_size=64, learning_rate=1e-3, progress=False)


def test_too_few_windows_rejected(windows):
    with pytest.raises(InputDataError, match="fewer than one batch"):
        train_ensemble(windows[:10], SMALL, seeds=1, epochs=1, batch_size=64, learning_rate=1e-3, progress=False)


def test_window_errors_shape(ensemble, windows):
    errors = window_errors(ensemble, windows[:100])
    expected = ((np.asarray(SMALL.apply({"params": _seed_params(ensemble, 1)}, windows[:100])) - windows[:100]) ** 2).mean(1)
    assert errors.shape == (2, 100)
    assert np.allclose(errors[1], expected, rtol=1e-4)


def _seed_params(ensemble, seed):
    import jax

    return jax.tree_util.tree_map(lambda leaf: leaf[seed], ensemble.params)["params"]


def brute_force_scores(errors, starts, window, n_steps):
    scores = np.full(n_steps, np.nan)
    for t in range(n_steps):
        covering = [e for e, s in zip(errors, starts) if s <= t < s + window]
        if covering:
            scores[t] = np.mean(covering)
    return scores


def test_time_step_scores_match_brute_force():
    rng = np.random.default_rng(0)
    starts = np.concatenate([np.arange(0, 30), np.arange(45, 60)])  # a gap, as after a split
    errors = rng.random(starts.size)
    scores = time_step_scores(errors[None, :], starts, 10, 75)[0]
    expected = brute_force_scores(errors, starts, 10, 75)
    assert np.array_equal(np.isnan(scores), np.isnan(expected))
    assert np.allclose(scores[~np.isnan(scores)], expected[~np.isnan(expected)])


def test_time_step_scores_ends():
    # The first step is covered by one window only: its score is that window's error.
    scores = time_step_scores(np.array([[2.0, 4.0, 6.0]]), np.array([0, 1, 2]), 3, 5)[0]
    assert scores[0] == 2.0
    assert scores[2] == 4.0
    assert scores[4] == 6.0


def test_interval_matches_scipy():
    rng = np.random.default_rng(1)
    scores = rng.random((10, 5))
    mean, low, high = seed_mean_and_interval(scores)
    reference = stats.t.interval(0.95, 9, loc=scores.mean(0), scale=stats.sem(scores, axis=0))
    assert np.allclose(low, reference[0])
    assert np.allclose(high, reference[1])


def test_outside_interval_classes():
    test = np.ones(5, bool)
    original = np.array([1.0, 1.0, 1.0, 1.0, 1.0])
    low, high = original - 0.1, original + 0.1
    avatar = np.array([1.05, 1.3, 2.0, 0.2, 0.95])
    result = comparison.outside_interval_differences(test, original, low, high, avatar)
    assert result["outside_interval"] == 3
    assert result["classes"] == {"near_zero": 1, "false_positive_risk": 1, "false_negative_risk": 1}


def test_alerts_strictly_above_threshold():
    times = pd.date_range("2024-01-30", periods=4, freq="1D").to_numpy()
    scores = {"original": np.array([1.0, 2.0, 3.0, 2.0]), "avatar": np.array([2.0, 2.0, 2.0, 2.0])}
    table = comparison.alerts_per_month(times, np.ones(4, bool), scores, {"original": 2.0, "avatar": 2.0})
    assert table["2024-02"]["original"]["alerts"] == 1
    assert table["2024-01"]["avatar"]["alerts"] == 0


def test_labelled_window_peak():
    times = pd.date_range("2024-01-01", periods=10, freq="1h").to_numpy()
    score = np.arange(10.0)
    rows = comparison.labelled_windows(times, [("2024-01-01 02:00", "2024-01-01 04:00")],
                                       {"original": score}, {"original": 3.5})
    assert rows[0]["original"]["peak_score"] == 4.0
    assert rows[0]["original"]["alert"] is True


def test_pearson_constant_is_nan():
    assert np.isnan(comparison.pearson(np.ones(5), np.arange(5.0)))


def test_restrict_outside_series(machine_temperature):
    with pytest.raises(InputDataError, match="outside the series"):
        restrict(machine_temperature, "2020-01-01", "2020-02-01")


def test_restrict_empty_period(machine_temperature):
    with pytest.raises(InputDataError, match="empty"):
        restrict(machine_temperature, "2014-01-10", "2014-01-01")


def test_restrict_keeps_bounds(machine_temperature):
    part = restrict(machine_temperature, "2013-12-18", "2013-12-19")
    assert part.timestamps[0] == np.datetime64("2013-12-18T00:00")
    assert part.timestamps[-1] == np.datetime64("2013-12-18T23:55")
    assert part.pieces == ((0, 288),)


def test_restrict_message_names_analysis(machine_temperature):
    with pytest.raises(InputDataError, match="outside the series") as error:
        restrict(machine_temperature, "2020-01-01", "2020-02-01", analysis="main", keys=("test_start", "test_end"))
    message = str(error.value)
    assert "analysis 'main'" in message
    assert "[test_start=2020-01-01, test_end=2020-02-01)" in message
    assert "(2013-12-02 21:15 to 2014-02-19 15:25)" in message
    assert "00.000000000" not in message


def test_restrict_null_bound_named(machine_temperature):
    with pytest.raises(InputDataError, match=r"\[train_start=2020-01-01, train_end=null\)"):
        restrict(machine_temperature, "2020-01-01", None, analysis="main", keys=("train_start", "train_end"))


def test_restrict_clips_with_warning(machine_temperature, caplog):
    with caplog.at_level(logging.WARNING, logger="avatarjax.validation"):
        part = restrict(machine_temperature, "2013-01-01", "2020-01-01", analysis="main",
                        keys=("train_start", "train_end"))
    assert part.timestamps.size == machine_temperature.timestamps.size
    messages = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(messages) == 2
    assert "train_start=2013-01-01" in messages[0]
    assert "clipped to its first step, 2013-12-02 21:15" in messages[0]
    assert "train_end=2020-01-01" in messages[1]
    assert "clipped so that the period ends with its last step, 2014-02-19 15:25" in messages[1]


def test_restrict_inside_series_silent(machine_temperature, caplog):
    with caplog.at_level(logging.WARNING, logger="avatarjax.validation"):
        restrict(machine_temperature, "2013-12-18", None)
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_labelled_window_outside_test():
    times = pd.date_range("2024-01-01", periods=10, freq="1h").to_numpy()
    score = np.arange(10.0)
    test_mask = np.arange(10) < 4
    rows = comparison.labelled_windows(times, [("2024-01-01 02:00", "2024-01-01 05:00"),
                                               ("2024-01-01 06:00", "2024-01-01 08:00")],
                                       {"original": score}, {"original": 3.5}, test_mask)
    # Only the test steps 02:00 and 03:00 of the first window count, and 3.0 is below the threshold.
    assert rows[0]["in_test"] is True
    assert rows[0]["steps"] == 4
    assert rows[0]["test_steps"] == 2
    assert rows[0]["original"] == {"alert": False, "peak_score": 3.0}
    assert rows[1]["in_test"] is False
    assert rows[1]["original"]["alert"] is None
    assert np.isnan(rows[1]["original"]["peak_score"])


def test_steps_inside_windows():
    times = pd.date_range("2024-01-01", periods=10, freq="1h").to_numpy()
    mask = np.arange(10) >= 5
    counts = comparison.steps_inside_windows(times, [("2024-01-01 00:00", "2024-01-01 04:00"),
                                                     ("2024-01-01 04:00", "2024-01-01 06:00")], mask)
    assert counts == [0, 2]


def test_labelled_training_overlap_warns(machine_temperature, caplog):
    times = machine_temperature.timestamps
    labels = load_labels("nab", "machine_temperature_system_failure", None)
    overlapping = (times >= np.datetime64("2013-12-11")) & (times < np.datetime64("2013-12-21"))
    with caplog.at_level(logging.WARNING, logger="avatarjax.validation"):
        assert count_labelled_in_training(times, overlapping, labels, "main") == 2
    assert "overlaps 2 labelled anomaly windows" in caplog.text
    assert "2013-12-15 17:50 to 2013-12-17 17:00" in caplog.text


def test_label_free_training_silent(machine_temperature, caplog):
    times = machine_temperature.timestamps
    labels = load_labels("nab", "machine_temperature_system_failure", None)
    label_free = (times >= np.datetime64("2013-12-18")) & (times < np.datetime64("2014-01-17"))
    with caplog.at_level(logging.WARNING, logger="avatarjax.validation"):
        assert count_labelled_in_training(times, label_free, labels, "main") == 0
    assert caplog.text == ""


def test_window_longer_than_training_rejected(machine_temperature):
    analysis = AnalysisConfig(name="short", train_start="2013-12-18", train_end="2013-12-18 12:00")
    cfg = ValidateConfig(analyses=[analysis])
    with pytest.raises(InputDataError, match="detector.window=1D") as error:
        run_analysis(machine_temperature, analysis, cfg, labels=[], progress=False)
    message = str(error.value)
    assert "(288 steps)" in message
    assert "analysis 'short'" in message
    assert "144 steps from 2013-12-18 00:00 to 2013-12-18 11:55" in message
    assert "shorter detector.window or a longer training stretch" in message


def test_smoke_experiment_end_to_end(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    completed = subprocess.run([sys.executable, str(root / "experiments" / "validate.py"), "experiment=smoke",
                                f"hydra.run.dir={tmp_path}"], capture_output=True, text=True, cwd=root, timeout=600)
    assert completed.returncode == 0, completed.stderr
    assert "smoke: score correlation" in completed.stdout
    assert "smoke: training anonymization:" in completed.stdout
    assert "privacy targets" in completed.stdout
    assert f"scores/smoke {tmp_path / 'scores' / 'smoke.csv'}" in completed.stdout
    assert "Scoring 22396 windows of the whole series with the 3 seeds of the avatar model" in completed.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    rows = metrics["analyses"][0]["reconstruction_error"]
    assert [(row["model"], row["data"]) for row in rows][:3] == [("original", "original"), ("avatar", "original"),
                                                                  ("avatar", "avatar")]
    assert (tmp_path / "report" / "report.md").exists()
    assert (tmp_path / "scores" / "smoke.csv").exists()


def test_validate_bad_dates_exit_code(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    completed = subprocess.run([sys.executable, str(root / "experiments" / "validate.py"), "experiment=smoke",
                                "analyses.0.train_start=2020-01-01", "analyses.0.train_end=2020-01-05",
                                f"hydra.run.dir={tmp_path}"], capture_output=True, text=True, cwd=root, timeout=600)
    assert completed.returncode == 2
    assert "outside the series" in completed.stderr


def test_score_interval_lower_bound_not_negative():
    from avatarjax.detection.scoring import seed_mean_and_interval

    scores = np.array([[0.0, 1.0], [0.0, 1.1], [0.3, 0.9]])
    mean, low, high = seed_mean_and_interval(scores)
    assert low[0] == 0.0
    assert high[0] > mean[0] > 0.0
    assert 0.0 < low[1] < mean[1] < high[1]
