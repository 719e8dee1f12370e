import os

import numpy as np
import pandas as pd
import pytest

from avatarjax.data.loading import load_series
from avatarjax.errors import InputDataError
from avatarjax.segmentation import (fixed_windows, peak_windows, segment_series, sliding_window_count,
                                    sliding_windows, window_steps)
from tests.conftest import SHARED_NAB


def write_series(path, values, period="5min"):
    times = pd.date_range("2024-01-01", periods=len(values), freq=period)
    pd.DataFrame({"timestamp": times, "value": values}).to_csv(path, index=False)
    return load_series(path)


def test_sliding_count_formula():
    assert sliding_window_count(52, 10, 10) == 5
    assert sliding_window_count(52, 10, 1) == 43
    assert sliding_window_count(9, 10, 1) == 0


def test_sliding_remainder_dropped(tmp_path):
    series = write_series(tmp_path / "s.csv", np.arange(52.0))
    segments = sliding_windows(series, window=10, stride=10)
    assert segments.n_segments == 5
    assert segments.start_index.tolist() == [0, 10, 20, 30, 40]
    assert segments.dropped[0]["count"] == 2


def test_sliding_values_match_series(machine_temperature):
    segments = sliding_windows(machine_temperature, window=288, stride=7)
    i = 100
    start = segments.start_index[i]
    assert np.array_equal(segments.values[i, :, 0], machine_temperature.values[start:start + 288, 0])
    assert segments.start_time[i] == machine_temperature.timestamps[start]
    assert segments.end_time[i] == machine_temperature.timestamps[start + 287]


def test_sliding_count_on_real_file(machine_temperature):
    segments = sliding_windows(machine_temperature, window=288, stride=1)
    n = machine_temperature.values.shape[0]
    assert segments.n_segments == (n - 288) // 1 + 1


def test_fixed_windows_exclusive(machine_temperature):
    segments = fixed_windows(machine_temperature, window=288)
    covered = (segments.start_index[:, None] + np.arange(288)).ravel()
    assert len(np.unique(covered)) == covered.size
    assert segments.n_segments == machine_temperature.values.shape[0] // 288


def test_window_duration_equals_steps(machine_temperature):
    by_duration = segment_series(machine_temperature, "fixed", "1D")
    by_steps = segment_series(machine_temperature, "fixed", "288")
    assert by_duration.window_steps == 288
    assert np.array_equal(by_duration.values, by_steps.values)


def test_window_not_whole_periods():
    with pytest.raises(InputDataError, match="not a whole number of sampling periods"):
        window_steps("7min", np.timedelta64(5, "m"))


def test_window_unparseable():
    with pytest.raises(InputDataError, match="neither a number of steps nor a duration"):
        window_steps("one day", np.timedelta64(5, "m"))


def test_window_longer_than_series(tmp_path):
    series = write_series(tmp_path / "short.csv", np.arange(20.0))
    with pytest.raises(InputDataError, match="longer than the longest contiguous piece"):
        sliding_windows(series, window=21)


def test_peak_windows_centre_peak(tmp_path):
    t = np.arange(2000)
    values = np.sin(2 * np.pi * t / 100.0)
    series = write_series(tmp_path / "cyclic.csv", values)
    segments = peak_windows(series, window=100)
    centre = segments.values[:, 50, 0]
    assert segments.n_segments >= 18
    assert np.allclose(centre, 1.0, atol=1e-3)


def test_peak_windows_edges_dropped(tmp_path):
    t = np.arange(1000)
    values = np.sin(2 * np.pi * (t - 10) / 100.0)  # first peak at step 35, too close to the start
    series = write_series(tmp_path / "edge.csv", values)
    segments = peak_windows(series, window=100)
    assert segments.start_index.min() >= 0
    assert sum(item["count"] for item in segments.dropped) >= 1


@pytest.mark.skipif(not os.path.isdir(SHARED_NAB), reason="shared data folder not present")
def test_segments_never_cross_long_gap():
    series = load_series(os.path.join(SHARED_NAB, "ambient_temperature_system_failure.csv"))
    segments = sliding_windows(series, window=24, stride=1)
    period = np.timedelta64(1, "h")
    spans = segments.end_time - segments.start_time
    assert len(series.pieces) > 1
    assert np.all(spans == 23 * period)
