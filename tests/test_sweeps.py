"""Sweeps end to end: a Hydra multirun with both trackers, the frontier summary and the privacy of tracker files."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from avatarjax.data.loading import bundled_dataset_path
from avatarjax.sweeps.frontier import collect_runs, frontier_mask, summarize_settings, write_frontier
from avatarjax.sweeps.objective import PENALTY, constrained_objective
from avatarjax.tracking import JsonlTracker

pytest.importorskip("wandb")

ROOT = Path(__file__).resolve().parents[1]
CALLBACK = "+hydra.callbacks.frontier._target_=avatarjax.sweeps.callback.FrontierCallback"
# Rows of the bundled file in the small CSV: about ten days of 5-minute steps.
SMALL_ROWS = 3000


def _run(script: str, overrides: list[str], home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(home), "JAX_PLATFORMS": "cpu"}
    env.pop("WANDB_MODE", None)
    completed = subprocess.run([sys.executable, str(ROOT / "experiments" / script), *overrides],
                               capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "plant_7_temperature.csv"
    pd.read_csv(bundled_dataset_path("machine_temperature_system_failure")).head(SMALL_ROWS).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def anonymize_sweep(tmp_path_factory, small_csv):
    """Four anonymization runs in one multirun: k = 3 and 5, each with the JSON-lines and the W&B tracker."""
    base = tmp_path_factory.mktemp("anonymize_sweep")
    home = base / "home"
    home.mkdir()
    sweep = base / "sweep"
    completed = _run("anonymize.py", ["-m", "data=csv", f"data.path={small_csv}", "segmentation.stride=6",
                                      "avatar.k=3,5", "logger=jsonl,wandb", "report.n_curves=5",
                                      f"hydra.sweep.dir={sweep}", CALLBACK], home)
    return {"sweep": sweep, "home": home, "stdout": completed.stdout}


def _original_needles(csv_path: Path) -> tuple[list[str], list[bytes]]:
    """Original values as the CSV writes them (6 or more significant digits) and as float64 bytes."""
    frame = pd.read_csv(csv_path, dtype={"value": str})
    texts = sorted({text for text in frame["value"] if len(text.replace(".", "").lstrip("0")) >= 6})
    numbers = frame["value"].astype(float).to_numpy()
    packed = [struct.pack("<d", value) for value in np.unique(numbers)]
    return texts, packed


def _files_with_originals(folder: Path, texts: list[str], packed: list[bytes]) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        hits = [text for text in texts if text.encode() in data] + [repr(value) for value in packed if value in data]
        if hits:
            found.append(f"{path}: {hits[:3]}")
    return found


def test_sweep_runs_every_point_with_both_trackers(anonymize_sweep):
    sweep = anonymize_sweep["sweep"]
    runs = sorted(path.parent for path in sweep.glob("*/metrics.json"))
    assert len(runs) == 4
    kinds = []
    for run in runs:
        overrides = (run / ".hydra" / "overrides.yaml").read_text()
        if "logger=wandb" in overrides:
            offline = list((run / "wandb").glob("offline-run-*/run-*.wandb"))
            assert offline, f"no offline W&B run in {run}"
            kinds.append("wandb")
        else:
            events = [json.loads(line) for line in (run / "tracking" / "events.jsonl").read_text().splitlines()]
            assert events[0]["event"] == "start"
            assert events[-1]["event"] == "finish"
            assert events[0]["group"]
            assert events[0]["environment"]["backend"] == "cpu"
            summary = json.loads((run / "tracking" / "summary.json").read_text())
            metrics = json.loads((run / "metrics.json").read_text())
            assert summary["privacy/hidden_rate"] == pytest.approx(metrics["privacy"]["hidden_rate"]["value"])
            assert "figures/explained_variance" in {event.get("name") for event in events}
            kinds.append("jsonl")
    assert sorted(kinds) == ["jsonl", "jsonl", "wandb", "wandb"]
    # W&B wrote nothing into the home folder.
    assert not [path for path in anonymize_sweep["home"].rglob("*") if "wandb" in path.as_posix()]


def test_tracker_files_hold_no_original_value(anonymize_sweep, small_csv):
    texts, packed = _original_needles(small_csv)
    assert len(texts) > 100
    leaks = []
    for run in anonymize_sweep["sweep"].glob("*/metrics.json"):
        for folder in ("tracking", "wandb"):
            if (run.parent / folder).exists():
                leaks += _files_with_originals(run.parent / folder, texts, packed)
                leaks += _files_with_originals(run.parent / folder, [str(small_csv.parent)], [])
    assert not leaks, leaks[:5]


def test_leak_check_finds_logged_originals(tmp_path, small_csv):
    # The check above can fail: a run that sends original values (allowed here) is caught.
    texts, packed = _original_needles(small_csv)
    values = pd.read_csv(small_csv)["value"].head(5).tolist()
    with JsonlTracker(tmp_path, "r", None, {}, {}, log_originals=True) as tracker:
        tracker.log_table("originals", ["value"], [[value] for value in values], shows_originals=True)
    assert _files_with_originals(tmp_path / "tracking", texts, packed)


def test_frontier_matches_the_runs_it_read(anonymize_sweep):
    sweep = anonymize_sweep["sweep"]
    assert "Wrote the privacy-utility frontier" in anonymize_sweep["stdout"]
    for name in ("runs.csv", "frontier.csv", "frontier.md", "frontier.png"):
        assert (sweep / "frontier" / name).stat().st_size > 0
    runs = pd.read_csv(sweep / "frontier" / "runs.csv", dtype={"run": str})
    assert len(runs) == 4
    for _, row in runs.iterrows():
        metrics = json.loads((sweep / row["run"] / "metrics.json").read_text())
        assert row["k"] == metrics["run"]["k"]
        assert row["hidden_rate"] == pytest.approx(metrics["privacy"]["hidden_rate"]["value"])
        assert row["hellinger"] == pytest.approx(metrics["utility"]["hellinger"]["value"])
    table = pd.read_csv(sweep / "frontier" / "frontier.csv")
    assert sorted(table["k"]) == [3, 5]
    assert set(table["seeds"]) == {2}
    for _, setting in table.iterrows():
        same = runs[runs["k"] == setting["k"]]
        assert setting["hidden_rate"] == pytest.approx(same["hidden_rate"].mean())
        assert setting["privacy_met"] == bool(same["privacy_met"].all())
    markdown = (sweep / "frontier" / "frontier.md").read_text()
    assert "| k | ncp |" in markdown
    assert "frontier.png" in markdown


def _write_run(folder: Path, k: int, seed: int, hidden: float, cloaking: float, hellinger: float) -> None:
    entry = lambda value, meets: {"label": "x", "value": value, "unit": "", "target": "", "meets": meets}  # noqa: E731
    metrics = {
        "run": {"k": k, "ncp": 10, "seed": seed, "weights": "avatar", "window": "1D", "stride": 1},
        "privacy": {"hidden_rate": entry(hidden, hidden > 90), "local_cloaking": entry(cloaking, cloaking >= 5),
                    "distance_to_closest": entry(0.5, True), "closest_distance_ratio": entry(0.5, True),
                    "row_direct_match_protection": entry(100.0, True)},
        "utility": {"hellinger": entry(hellinger, True), "autocorrelation_lag10": entry(1.0, True)},
    }
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))


def test_frontier_flags_and_best_setting(tmp_path):
    # k=2 is private enough nowhere; k=10 and k=20 meet privacy, k=10 with less utility loss;
    # k=5 is dominated by k=10 (less private, worse Hellinger).
    for number, (k, seed, hidden, cloaking, hellinger) in enumerate([
        (2, 0, 60.0, 1.0, 0.01), (2, 1, 62.0, 1.0, 0.01), (5, 0, 85.0, 3.0, 0.05),
        (10, 0, 92.0, 6.0, 0.04), (20, 0, 95.0, 9.0, 0.08),
    ]):
        _write_run(tmp_path / str(number), k, seed, hidden, cloaking, hellinger)
    table = summarize_settings(collect_runs(tmp_path))
    by_k = table.set_index("k")
    assert by_k.loc[2, "seeds"] == 2
    assert by_k.loc[2, "hidden_rate"] == pytest.approx(61.0)
    assert list(by_k["privacy_met"]) == [False, False, True, True]
    assert list(by_k["frontier"]) == [True, False, True, True]
    assert list(by_k["best"]) == [False, False, True, False]
    paths = write_frontier(tmp_path)
    assert "k = 10" in paths["markdown"].read_text()


def test_frontier_mask_by_hand():
    table = pd.DataFrame({"hidden_rate": [90.0, 80.0, 95.0], "local_cloaking": [5.0, 5.0, 4.0],
                          "hellinger": [0.1, 0.1, 0.2], "score_correlation": [np.nan] * 3})
    assert list(frontier_mask(table)) == [True, False, True]


def test_frontier_errors_name_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        collect_runs(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="no run metrics"):
        collect_runs(tmp_path)


def test_objective_penalizes_missed_privacy_targets():
    entry = lambda value, meets: {"value": value, "meets": meets}  # noqa: E731
    privacy = {"hidden_rate": entry(95.0, True), "local_cloaking": entry(6.0, True)}
    analysis = {"correlation": {"overall": 0.9}, "privacy": privacy, "utility": {"hellinger": entry(0.05, True)}}
    assert constrained_objective(analysis, "score_correlation") == pytest.approx(0.1)
    assert constrained_objective(analysis, "hellinger") == pytest.approx(0.05)
    analysis["privacy"] = {"hidden_rate": entry(81.0, False), "local_cloaking": entry(6.0, True)}
    # Shortfall |90 - 81| / 90 = 0.1.
    assert constrained_objective(analysis, "score_correlation") == pytest.approx(0.1 + PENALTY + 0.1)
    analysis["correlation"]["overall"] = float("nan")
    assert constrained_objective(analysis, "score_correlation") == pytest.approx(2.0 + PENALTY + 0.1)


def test_validation_sweep_returns_objective_and_reuses_original_model(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    sweep = tmp_path / "sweep"
    completed = _run("validate.py", ["-m", "experiment=smoke", "avatar.k=3,5", "detector.epochs=1",
                                     "detector.seeds=2", "detector.channels=[4]", "report.enabled=false",
                                     "logger=jsonl", "analyses.0.test_end=2013-12-28",
                                     f"hydra.sweep.dir={sweep}", CALLBACK], home)
    assert completed.stdout.count("objective (score_correlation") == 2
    assert "Reusing the original model" in completed.stderr
    scores = [pd.read_csv(sweep / str(number) / "scores" / "smoke.csv") for number in (0, 1)]
    # The reused original model scores exactly as the first run's; the avatar models differ.
    assert np.array_equal(scores[0]["original_mean"].to_numpy(), scores[1]["original_mean"].to_numpy(),
                          equal_nan=True)
    assert not np.array_equal(scores[0]["avatar_mean"].to_numpy(), scores[1]["avatar_mean"].to_numpy(),
                              equal_nan=True)
    runs = pd.read_csv(sweep / "frontier" / "runs.csv", dtype={"run": str})
    assert sorted(runs["k"]) == [3, 5]
    assert runs["score_correlation"].notna().all()
    for _, row in runs.iterrows():
        summary = json.loads((sweep / row["run"] / "tracking" / "summary.json").read_text())
        assert summary["objective"] == pytest.approx(row["objective"])
        assert summary["smoke/correlation/overall"] == pytest.approx(row["score_correlation"])


def test_frontier_rejects_run_folder_and_file(tmp_path):
    _write_run(tmp_path / "0", 5, 0, 92.0, 6.0, 0.05)
    with pytest.raises(ValueError, match="folder of one run"):
        collect_runs(tmp_path / "0")
    with pytest.raises(NotADirectoryError, match="is a file"):
        collect_runs(tmp_path / "0" / "metrics.json")


def test_frontier_ignores_nested_sweeps(tmp_path):
    _write_run(tmp_path / "0", 5, 0, 92.0, 6.0, 0.05)
    _write_run(tmp_path / "old_sweep" / "0", 50, 0, 99.0, 9.0, 0.09)
    runs = collect_runs(tmp_path)
    assert list(runs["k"]) == [5]
