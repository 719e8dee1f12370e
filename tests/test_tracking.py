"""Trackers: the JSON-lines file and W&B offline, the privacy rule, and what a tracked run sends."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from avatarjax.config import LoggerConfig
from avatarjax.tracking import JsonlTracker, NullTracker, open_tracker
from avatarjax.tracking.jsonl import read_events
from avatarjax.tracking.records import (
    anonymization_summary,
    metric_values,
    shows_originals,
    track_training_losses,
)

pytest.importorskip("wandb")


@pytest.fixture
def png(tmp_path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2, 2))
    FigureCanvasAgg(figure)
    figure.subplots().plot([0, 1], [1, 0])
    path = tmp_path / "figure.png"
    figure.savefig(path)
    return path


def test_jsonl_tracker_records_every_event(tmp_path, png):
    with JsonlTracker(tmp_path, "run-1", "sweep-a", {"avatar": {"k": 5}}, {"backend": "cpu"}) as tracker:
        tracker.log_metrics({"loss": np.float32(0.5), "epoch": 1}, step=1)
        tracker.log_metrics({"loss": float("nan")}, step=2)  # skipped: W&B charts reject NaN
        tracker.log_table("privacy", ["metric", "value"], [["hidden rate", 91.0]])
        tracker.log_figure("figures/loss", png)
        tracker.summary({"privacy/hidden_rate": 91.0, "bad": float("inf")})
    events = read_events(tmp_path)
    assert [event["event"] for event in events] == ["start", "metrics", "table", "figure", "summary", "finish"]
    assert events[0]["config"] == {"avatar": {"k": 5}}
    assert events[0]["group"] == "sweep-a"
    assert events[1]["values"] == {"loss": 0.5, "epoch": 1}
    assert events[1]["step"] == 1
    assert events[3]["path"] == "figure.png"
    summary = json.loads((tmp_path / "tracking" / "summary.json").read_text())
    assert summary == {"privacy/hidden_rate": 91.0, "bad": None}


def test_figures_showing_originals_are_withheld_unless_allowed(tmp_path, png):
    with JsonlTracker(tmp_path / "a", "a", None, {}, {}) as tracker:
        tracker.log_figure("figures/curves", png, shows_originals=True)
        tracker.log_table("originals", ["value"], [[73.5]], shows_originals=True)
    assert [event["event"] for event in read_events(tmp_path / "a")] == ["start", "finish"]
    assert tracker.dropped == ["figures/curves", "originals"]

    with JsonlTracker(tmp_path / "b", "b", None, {}, {}, log_originals=True) as tracker:
        tracker.log_figure("figures/curves", png, shows_originals=True)
    assert [event["event"] for event in read_events(tmp_path / "b")] == ["start", "figure", "finish"]


def test_tracker_rejects_arrays_and_bad_tables(tmp_path, png):
    tracker = NullTracker()
    with pytest.raises(TypeError, match="scalars only"):
        tracker.log_metrics({"values": np.arange(3.0)})
    with pytest.raises(ValueError, match="2 cells for 1 columns"):
        tracker.log_table("t", ["a"], [[1, 2]])
    with pytest.raises(FileNotFoundError, match="missing.png"):
        tracker.log_figure("f", tmp_path / "missing.png")


def test_figure_privacy_classes():
    for key in ("curves", "components", "zoom_3"):
        assert shows_originals(key)
    assert not any(shows_originals(key) for key in ("explained_variance", "scores", "score_scatter",
                                                    "normalized_differences", "training_loss"))


def test_metric_values_flatten_target_entries():
    entries = {"hidden_rate": {"label": "Hidden rate", "value": 91.0, "meets": True},
               "dtc": {"label": "DTC", "value": 0.1, "meets": False},
               "undefined": {"label": "x", "value": None, "meets": None}}
    assert metric_values("privacy", entries) == {
        "privacy/hidden_rate": 91.0, "privacy/hidden_rate_meets": True,
        "privacy/dtc": 0.1, "privacy/dtc_meets": False, "privacy/undefined": None,
    }


def test_training_losses_are_logged_per_epoch(tmp_path):
    with JsonlTracker(tmp_path, "r", None, {}, {}) as tracker:
        track_training_losses(tracker, "main", {"original": [[1.0, 0.5], [3.0, 1.5]], "avatar": [[2.0, 1.0]]})
    steps = [event for event in read_events(tmp_path) if event["event"] == "metrics"]
    assert [event["step"] for event in steps] == [1, 2]
    assert steps[0]["values"]["main/train_loss/original_mean"] == 2.0
    assert steps[1]["values"]["main/train_loss/original_max"] == 1.5
    assert steps[1]["values"]["main/train_loss/avatar_min"] == 1.0


def test_wandb_offline_stays_in_the_run_folder(tmp_path, png, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_DIR", "/nonexistent/elsewhere")
    run_dir = tmp_path / "run"
    cfg = LoggerConfig(kind="wandb", group="g")
    with open_tracker(cfg, run_dir, "run-0", None, {"avatar": {"k": 3}}, {"backend": "cpu"}) as tracker:
        tracker.log_metrics({"loss": 0.25}, step=1)
        tracker.log_table("privacy", ["metric", "value"], [["hidden rate", 91.0]])
        tracker.log_figure("figures/loss", png)
        tracker.summary({"privacy/hidden_rate": 91.0})
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    assert list(offline[0].glob("run-*.wandb"))
    assert list(offline[0].rglob("*.table.json"))
    assert list(offline[0].rglob("*.png"))
    assert not [path for path in home.rglob("*") if "wandb" in path.as_posix()]
    assert os.environ["WANDB_DIR"] == "/nonexistent/elsewhere"  # restored after the run


def test_anonymization_summary_has_every_metric():
    metrics = {
        "run": {"n_segments": 10, "k": 3, "ncp": 2, "seed": 0},
        "privacy": {"hidden_rate": {"label": "h", "value": 95.0, "meets": True},
                    "local_cloaking": {"label": "c", "value": 2.0, "meets": False}},
        "utility": {"hellinger": {"label": "H", "value": 0.05, "meets": True}},
        "timings_s": {"generate": 1.5},
        "cleaning": {"rows_read": 100},
    }
    summary = anonymization_summary(metrics)
    assert summary["privacy/all_targets_met"] is False
    assert summary["utility/hellinger"] == 0.05
    assert summary["timings_s/generate"] == 1.5
    assert summary["run/k"] == 3
    assert not any(isinstance(value, float) and math.isnan(value) for value in summary.values())


def test_git_dirty_follows_tracked_changes(tmp_path):
    import subprocess

    from avatarjax.provenance import git_dirty, git_revision

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "a.txt").write_text("one\n")
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "first")
    assert git_dirty(tmp_path) is False
    assert len(git_revision(tmp_path)) == 40
    (tmp_path / "a.txt").write_text("two\n")
    assert git_dirty(tmp_path) is True
    assert git_dirty(tmp_path.parent / "not_a_repository_folder") is None
