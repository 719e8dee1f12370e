import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from avatarjax.config import AnonymizeConfig, AvatarConfig, ReleaseConfig, SegmentationConfig
from avatarjax.data.loading import bundled_dataset_path
from avatarjax.errors import InputDataError
from avatarjax.pipeline import anonymize, anonymize_series
from avatarjax.release import write_outputs

ROOT = Path(__file__).resolve().parents[1]


def small_config(**avatar) -> AnonymizeConfig:
    """Six-hour windows every 6 steps: about 3 770 real segments, seconds on a CPU."""
    return AnonymizeConfig(segmentation=SegmentationConfig(window="6h", stride=6),
                           avatar=AvatarConfig(k=avatar.get("k", 10), seed=avatar.get("seed", 0)))


@pytest.fixture(scope="module")
def result(machine_temperature):
    return anonymize_series(machine_temperature, small_config(), progress=False)


def run_job(*overrides, cwd=ROOT):
    return subprocess.run([sys.executable, str(ROOT / "experiments" / "anonymize.py"), *overrides],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


def test_released_rows_are_shuffled_avatars(result):
    assert np.array_equal(result.released_segments, result.avatar_segments[result.release_order])
    assert not np.array_equal(result.release_order, np.arange(len(result.release_order)))


def test_avatars_differ_from_originals(result):
    assert result.avatar_segments.shape == result.original_segments.shape
    assert not np.any(np.all(np.isclose(result.avatar_segments, result.original_segments), axis=1))


def test_metrics_have_targets(result):
    for section in ("privacy", "utility"):
        for name, entry in result.metrics[section].items():
            assert entry["target"], name
            assert entry["meets"] in (True, False, None), name


def test_same_seed_same_metrics(machine_temperature, result):
    again = anonymize_series(machine_temperature, small_config(), progress=False)
    assert again.metrics["privacy"] == result.metrics["privacy"]


def test_other_seed_other_avatars(machine_temperature, result):
    other = anonymize_series(machine_temperature, small_config(seed=1), progress=False)
    assert not np.allclose(other.avatar_segments, result.avatar_segments)


def test_too_few_segments(machine_temperature):
    config = AnonymizeConfig(segmentation=SegmentationConfig(method="fixed", window="7D"))
    with pytest.raises(InputDataError, match="only 11 segments for k = 20"):
        anonymize_series(machine_temperature, config, progress=False)


def test_write_outputs_files(result, tmp_path):
    paths = write_outputs(result, small_config(), tmp_path)
    released = pd.read_csv(paths["avatars_csv"])
    assert released.shape == (result.segments.n_segments, 1 + 72)
    assert released["avatar_id"].tolist() == list(range(result.segments.n_segments))
    assert not any("time" in column for column in released.columns)
    assert pd.read_parquet(paths["avatars_parquet"]).shape == released.shape
    assert not (tmp_path / "private").exists()


def test_release_values_match_written(result, tmp_path):
    paths = write_outputs(result, small_config(), tmp_path)
    written = pd.read_csv(paths["avatars_csv"]).drop(columns="avatar_id").to_numpy()
    assert np.allclose(written, result.released_segments, rtol=1e-6)


def test_link_file_only_on_request(result, tmp_path):
    config = small_config()
    config.release = ReleaseConfig(save_link=True)
    paths = write_outputs(result, config, tmp_path)
    link = pd.read_csv(paths["link"])
    assert paths["link"].parent.name == "private"
    assert link["original_segment"].tolist() == result.release_order.tolist()


def test_metrics_json_and_report(result, tmp_path):
    paths = write_outputs(result, small_config(), tmp_path)
    metrics = json.loads(paths["metrics"].read_text())
    report = paths["report"].read_text()
    assert set(metrics["privacy"]) == {"hidden_rate", "local_cloaking", "distance_to_closest",
                                       "closest_distance_ratio", "row_direct_match_protection"}
    assert metrics["environment"]["backend"] == "cpu"
    assert "Table 1. Privacy metrics" in report
    assert "Table 2. Utility metrics" in report
    assert (paths["report"].parent / "figures" / "curves.png").stat().st_size > 10_000


def test_job_on_bundled_file(tmp_path):
    source = bundled_dataset_path("machine_temperature_system_failure")
    before = hashlib.sha256(source.read_bytes()).hexdigest()
    completed = run_job("segmentation.window=6h", "segmentation.stride=12", "avatar.k=5",
                        f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr
    assert f"under {tmp_path}" in completed.stdout
    assert (tmp_path / "release" / "avatars.csv").exists()
    assert (tmp_path / "report" / "report.md").exists()
    assert "sorted 12 out-of-order rows" in completed.stderr + (tmp_path / "report" / "report.md").read_text()
    assert hashlib.sha256(source.read_bytes()).hexdigest() == before


def test_job_invalid_config_exit_code(tmp_path):
    completed = run_job("avatar.k=0", f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 2
    assert "avatar.k=0 is invalid" in completed.stderr


def test_job_bad_csv_exit_code(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,value\n2024-01-01 00:00:00,1.0\n2024-01-01 00:05:00,abc\n")
    completed = run_job("data=csv", f"data.path={bad}", f"hydra.run.dir={tmp_path / 'run'}")
    assert completed.returncode == 2
    assert "abc" in completed.stderr
    assert not (tmp_path / "run" / "release").exists()


@pytest.mark.slow
def test_default_run_reports_targets():
    """The README's main job: one-day sliding windows, stride 1, k = 20, FPCA with 20 components."""
    result = anonymize(AnonymizeConfig(), progress=False)
    privacy = result.metrics["privacy"]
    assert result.segments.n_segments == 22683 - 288 + 1
    assert privacy["hidden_rate"]["target"] == "> 90 %"
    assert privacy["local_cloaking"]["target"] == ">= 5"
    assert 0.0 <= privacy["hidden_rate"]["value"] <= 100.0


def test_constant_series_no_nan(tmp_path):
    from avatarjax.data.loading import load_series

    path = tmp_path / "constant.csv"
    times = pd.date_range("2024-01-01", periods=3 * 288, freq="5min")
    pd.DataFrame({"timestamp": times, "value": 42.0}).to_csv(path, index=False)
    result = anonymize_series(load_series(path), small_config(k=5), progress=False)
    privacy = result.metrics["privacy"]
    utility = result.metrics["utility"]
    assert np.allclose(result.avatar_segments, 42.0)
    assert privacy["hidden_rate"]["value"] == 0.0
    assert privacy["closest_distance_ratio"]["value"] == 1.0
    assert privacy["row_direct_match_protection"]["meets"] is False
    assert utility["hellinger"]["value"] == 0.0
    assert all(entry["value"] is not None for entry in utility.values())


def test_job_warns_when_targets_missed(tmp_path):
    completed = run_job("segmentation.window=6h", "segmentation.stride=12", "avatar.k=2", f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr
    assert "privacy targets are not met" in completed.stdout


def test_metrics_hide_input_path(tmp_path, machine_temperature):
    config = small_config()
    config.data.path = "/home/site-alpha/customer-42/sensor.csv"
    result = anonymize_series(machine_temperature, config, progress=False)
    assert result.metrics["run"]["dataset"] == "sensor.csv"
