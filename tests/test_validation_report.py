"""Tests of the validation outputs: figures, report, scores CSV and metrics file of a real smoke run.

One short analysis (3 training days, 3 seeds, 2 epochs, a small network) runs once for the
module, which took about 70 s on a shared 2-core CPU.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from avatarjax.config import AnalysisConfig, AvatarConfig, DetectorConfig, ValidateConfig
from avatarjax.io import to_json_compatible
from avatarjax.report.validation_figures import plot_normalized_differences
from avatarjax.report.validation_markdown import CAUTION, UNCHECKED, render_validation_report
from avatarjax.validation import agreement, load_labels, validate
from avatarjax.validation_outputs import analysis_metrics, run_facts, write_validation_outputs

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NAME = "smoke"
TABLE_HEADINGS = [
    "### Reconstruction error",
    "### Correlation of anomaly scores",
    "### Steps outside the original model's 95 % interval",
    "### Alerts per month",
    "### Labelled anomaly windows",
    "### Privacy of the training anonymization",
    "### Utility of the training anonymization",
]
SCORE_COLUMNS = [
    "timestamp", "in_training", "in_test",
    "original_mean", "original_low", "original_high",
    "avatar_mean", "avatar_low", "avatar_high",
]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One real analysis and the files written from it."""
    cfg = ValidateConfig(
        analyses=[AnalysisConfig(name=NAME, train_start="2013-12-18", train_end="2013-12-21",
                                 test_end="2014-01-10")],
        detector=DetectorConfig(seeds=3, epochs=2, channels=[4, 8], batch_size=128),
        avatar=AvatarConfig(k=10),
    )
    results = validate(cfg, progress=False)
    output_dir = tmp_path_factory.mktemp("validation")
    paths = write_validation_outputs(results, agreement(results), cfg, output_dir)
    return SimpleNamespace(cfg=cfg, result=results[0], paths=paths, output_dir=output_dir,
                           report=paths["report"].read_text(encoding="utf-8"))


def figure_paths(smoke) -> dict:
    return {key: path for key, path in smoke.paths.items() if key.startswith("figures/")}


def test_figures_are_png(smoke):
    figures = figure_paths(smoke)
    assert figures
    for key, path in figures.items():
        assert path.read_bytes()[:8] == PNG_SIGNATURE, key


def test_figure_files_are_prefixed(smoke):
    for path in figure_paths(smoke).values():
        assert path.name.startswith(f"{NAME}_"), path.name


def test_zoom_count_matches_windows(smoke):
    times = smoke.result.timestamps
    first, last = pd.Timestamp(times[0]), pd.Timestamp(times[-1])
    windows = load_labels(smoke.cfg.labels, smoke.cfg.data.name, smoke.cfg.data.path)
    overlapping = [w for w in windows if pd.Timestamp(w[0]) <= last and pd.Timestamp(w[1]) >= first]
    zooms = [key for key in smoke.paths if key.startswith(f"figures/{NAME}/zoom_")]
    assert overlapping, "the bundled labels should overlap the series, or this test checks nothing"
    assert len(zooms) == len(overlapping)


def test_empty_differences_figure(tmp_path):
    counts = {"near_zero": 0, "false_positive_risk": 0, "false_negative_risk": 0}
    path = plot_normalized_differences(np.empty(0), counts, tmp_path / "differences.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.parametrize("heading", TABLE_HEADINGS)
def test_report_has_table_heading(smoke, heading):
    assert f"\n{heading}\n" in smoke.report


def test_report_has_caution(smoke):
    assert CAUTION in smoke.report


def test_report_figure_links_exist(smoke):
    links = re.findall(r"!\[Figure \d+\]\(([^)]+)\)", smoke.report)
    assert len(links) == len(figure_paths(smoke))
    for link in links:
        assert (smoke.paths["report"].parent / link).is_file(), link


def test_single_analysis_has_no_agreement(smoke):
    assert "## Do the analyses agree?" not in smoke.report


def test_failed_conclusion_shows_no(smoke):
    first = to_json_compatible(analysis_metrics(smoke.result))
    second = copy.deepcopy(first)
    second["name"] = "copy"
    failed, agreeing = list(first["conclusions"])[:2]
    first["conclusions"][failed] = True
    second["conclusions"][failed] = False
    second["conclusions"][agreeing] = first["conclusions"][agreeing]
    agreed = {key: first["conclusions"][key] == second["conclusions"][key] for key in first["conclusions"]}

    report = render_validation_report([first, second], agreed, {}, run_facts(smoke.cfg))
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in report.splitlines() if line.startswith("| ")}
    assert "## Do the analyses agree?" in report
    assert rows[failed] == f"| {failed} | yes | no | no |"
    assert rows[agreeing].endswith("| yes |")


def test_scores_csv_has_no_signal(smoke):
    frame = pd.read_csv(smoke.paths[f"scores/{NAME}"])
    assert "signal" not in frame.columns
    assert "value" not in frame.columns
    assert list(frame.columns) == SCORE_COLUMNS


def test_scores_csv_row_count(smoke):
    frame = pd.read_csv(smoke.paths[f"scores/{NAME}"])
    assert len(frame) == smoke.result.timestamps.size


def test_scores_csv_matches_result(smoke):
    frame = pd.read_csv(smoke.paths[f"scores/{NAME}"], parse_dates=["timestamp"])
    assert np.array_equal(frame["timestamp"].to_numpy(dtype="datetime64[ns]"), smoke.result.timestamps)
    assert np.array_equal(frame["in_test"].to_numpy(), smoke.result.test_mask)
    np.testing.assert_allclose(frame["avatar_mean"], smoke.result.scores["avatar"]["mean"], rtol=1e-12)


def test_metrics_json_has_no_nan(smoke):
    text = smoke.paths["metrics"].read_text(encoding="utf-8")
    constants = []
    metrics = json.loads(text, parse_constant=constants.append)
    assert constants == []
    assert metrics["analyses"][0]["name"] == NAME
    assert "normalized_differences" not in metrics["analyses"][0]


def test_metrics_json_has_agreement_and_environment(smoke):
    metrics = json.loads(smoke.paths["metrics"].read_text(encoding="utf-8"))
    assert "agreement" in metrics
    assert metrics["environment"]["packages"]["avatarjax"]


def test_unsafe_name_writes_nothing(smoke, tmp_path):
    renamed = dataclasses.replace(smoke.result, name="../escape")
    with pytest.raises(ValueError, match="file name"):
        write_validation_outputs([renamed], {}, smoke.cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_labelled_rows_mark_test_period(smoke):
    # The smoke test period ends on 2014-01-10, before the last two NAB windows.
    rows = {row["start"][:10]: row for row in smoke.result.metrics["labelled_windows"]}
    assert [rows[day]["in_test"] for day in ("2013-12-10", "2013-12-15")] == [True, True]
    for day in ("2014-01-27", "2014-02-07"):
        assert rows[day]["in_test"] is False
        assert rows[day]["test_steps"] == 0
        assert rows[day]["original"]["alert"] is None
        assert rows[day]["avatar"]["alert"] is None


def test_report_window_outside_test_has_no_alert(smoke):
    header = next(line for line in smoke.report.splitlines() if line.startswith("| Start |"))
    row = next(line for line in smoke.report.splitlines() if line.startswith("| 2014-01-27 14:20:00 |"))
    assert "| In test period |" in header
    assert row.endswith("| no | n/a | n/a | n/a | n/a |")
    assert "A window outside the test period is no test result" in smoke.report


def test_training_overlap_count_in_metrics(smoke):
    assert smoke.result.metrics["training"]["labelled_windows_inside"] == 0
    assert "**Warning:** the training stretch overlaps" not in smoke.report


def test_report_warns_training_overlap():
    metrics = {"name": "main", "training": {"start": "2013-12-10 00:00:00", "end": "2013-12-20 00:00:00",
                                            "windows": 2592, "window_steps": 288, "labelled_windows_inside": 2}}
    report = render_validation_report([metrics], {}, {}, {})
    assert "**Warning:** the training stretch overlaps 2 labelled anomaly windows" in report


def test_report_marks_white_paper_unchecked(smoke):
    assert smoke.report.count(UNCHECKED) == 3


def alert_metrics(original: int, avatar: int) -> dict:
    """Return a metrics dict whose only section is one month of alerts."""
    month = {"steps": 1000, "original": {"alerts": original, "share": original / 1000},
             "avatar": {"alerts": avatar, "share": avatar / 1000}}
    return {"name": "main", "alerts_per_month": {"2014-01": month}, "thresholds": {"original": 1.0, "avatar": 1.0}}


@pytest.mark.parametrize("original,avatar,phrase", [
    (250, 50, "raised 200 fewer alerts per month than the original model"),
    (50, 250, "raised 200 more alerts per month than the original model"),
    (50, 50, "raised as many alerts per month as the original model"),
])
def test_report_alert_difference_wording(original, avatar, phrase):
    report = render_validation_report([alert_metrics(original, avatar)], {}, {}, {})
    assert phrase in report
    assert "-200 more" not in report
