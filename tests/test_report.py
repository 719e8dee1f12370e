"""Tests of the report figures, the Markdown report and the atomic writes it relies on."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from avatarjax.io import atomic_path, write_json_atomic, write_text_atomic
from avatarjax.metrics.targets import PRIVACY_TARGETS, UTILITY_TARGETS, metric_entry
from avatarjax.report import (
    plot_components,
    plot_curves,
    plot_explained_variance,
    render_report,
    write_report,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIGURES = {
    "curves": "figures/curves.png",
    "components": "figures/components.png",
    "explained_variance": "figures/explained_variance.png",
}


def png_size(path: Path) -> tuple[int, int]:
    """Return (width, height) in pixels from the IHDR chunk, which follows the signature."""
    header = path.read_bytes()[:24]
    return struct.unpack(">II", header[16:24])


def segments(n: int, steps: int = 96, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 2.0 * np.pi, steps)
    return np.sin(t)[None, :] + 0.2 * rng.standard_normal((n, steps))


def metrics_dict() -> dict:
    """Return a metrics dict with 1 failed, 1 undefined and 3 met privacy targets."""
    privacy_values = {
        "hidden_rate": 95.34,
        "local_cloaking": 3.0,  # fails ">= 5"
        "distance_to_closest": 0.45,
        "closest_distance_ratio": float("nan"),  # no value, so "n/a"
        "row_direct_match_protection": 100.0,
    }
    utility_values = {key: 1.0 for key in UTILITY_TARGETS}
    utility_values["hellinger"] = 0.05
    return {
        "run": {"dataset": "machine_temperature_system_failure", "n_segments": 22401,
                "window_steps": 288, "ncp": 20, "k": 20, "projection": "fpca",
                "explained_variance_share": 0.95,
                "distance_scale": "Distances are Euclidean in FPCA score units."},
        "cleaning": {
            "rows_read": 22695,
            "rules": [{"rule": "out_of_order", "rows": 12, "action": "sorted by timestamp"}],
        },
        "segmentation": {"segments": 22401, "dropped": [{"reason": "steps after the last full window of a piece", "count": 3}]},
        "privacy": {k: metric_entry(PRIVACY_TARGETS[k], v) for k, v in privacy_values.items()},
        "utility": {k: metric_entry(UTILITY_TARGETS[k], v) for k, v in utility_values.items()},
        "timings_s": {"load": 0.3, "segment": 0.1},
        "environment": {"jax": "0.4.30", "backend": "cpu"},
        "outputs": {"avatars_csv": "release/avatars.csv"},
    }


def table_row(report: str, label: str) -> str:
    """Return the table line whose first cell is label."""
    rows = [line for line in report.splitlines() if line.startswith(f"| {label} |")]
    assert len(rows) == 1, f"expected one row for {label!r}, found {len(rows)}"
    return rows[0]


# Figures.


def test_curves_png_written(tmp_path):
    path = plot_curves(segments(80), segments(60, seed=2), tmp_path / "sub" / "curves.png")
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert 10_000 < len(data) < 5_000_000
    # 12 x 4.5 inches at 120 dpi.
    assert png_size(path) == (1440, 540)


def test_curves_fewer_than_requested(tmp_path):
    path = plot_curves(segments(5), segments(3), tmp_path / "curves.png", n_curves=50)
    assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_curves_rejects_1d(tmp_path):
    with pytest.raises(ValueError, match=r"shape \(96,\)"):
        plot_curves(np.zeros(96), segments(3), tmp_path / "curves.png")


def test_curves_rejects_non_png_name(tmp_path):
    with pytest.raises(ValueError, match=r"\.png"):
        plot_curves(segments(3), segments(3), tmp_path / "curves.jpg")


def test_components_png_written(tmp_path):
    rng = np.random.default_rng(0)
    path = plot_components(rng.normal(size=(500, 4)), rng.normal(size=(400, 4)),
                           tmp_path / "components.png")
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert 10_000 < len(data) < 5_000_000


def test_components_large_input_subsampled(tmp_path):
    rng = np.random.default_rng(0)
    path = plot_components(rng.normal(size=(20_500, 2)), rng.normal(size=(20_500, 2)),
                           tmp_path / "components.png")
    assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_components_rejects_one_column(tmp_path):
    with pytest.raises(ValueError, match=r"shape \(10, 1\)"):
        plot_components(np.zeros((10, 1)), np.zeros((10, 2)), tmp_path / "components.png")


def test_explained_variance_png_written(tmp_path):
    ratio = np.array([0.5, 0.2, 0.1, 0.05, 0.05])
    path = plot_explained_variance(ratio, tmp_path / "explained_variance.png")
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert 5_000 < len(data) < 5_000_000


def test_explained_variance_rejects_percent(tmp_path):
    with pytest.raises(ValueError, match="fractions"):
        plot_explained_variance(np.array([50.0, 20.0]), tmp_path / "explained_variance.png")


def test_explained_variance_rejects_2d(tmp_path):
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        plot_explained_variance(np.full((2, 2), 0.1), tmp_path / "explained_variance.png")


# Markdown report.


def test_report_has_both_tables():
    report = render_report(metrics_dict(), FIGURES)
    assert "Table 1. Privacy metrics" in report
    assert "Table 2. Utility metrics" in report
    assert "| Metric | Value | Target | Met |" in report


def test_report_failed_target_cross():
    row = table_row(render_report(metrics_dict(), FIGURES), "Local cloaking (median)")
    assert row.rstrip().endswith("| ❌ |")


def test_report_met_target_check():
    row = table_row(render_report(metrics_dict(), FIGURES), "Hidden rate")
    assert row.rstrip().endswith("| ✅ |")


def test_report_percent_format():
    row = table_row(render_report(metrics_dict(), FIGURES), "Hidden rate")
    assert "| 95.3 % |" in row


def test_report_none_value_na():
    row = table_row(render_report(metrics_dict(), FIGURES), "Closest distance ratio (median)")
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "n/a"
    assert cells[3] == "n/a"


def test_report_summary_counts():
    report = render_report(metrics_dict(), FIGURES)
    assert "3 of 5 privacy targets met" in report
    assert "Not met: Local cloaking (median)" in report
    assert "7 of 7 utility targets met" in report


def test_report_caution_present():
    report = render_report(metrics_dict(), FIGURES)
    caution = ("This report shows original segments (Figure 1). It is for the data owner: "
               "release only the files in the release folder.")
    assert caution in report
    # The caution comes before the first table.
    assert report.index(caution) < report.index("Table 1.")


def test_report_figure_links_relative():
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", render_report(metrics_dict(), FIGURES))
    assert links == list(FIGURES.values())


def test_report_rejects_absolute_figure():
    with pytest.raises(ValueError, match="relative"):
        render_report(metrics_dict(), {"curves": "/tmp/curves.png"})


def test_report_empty_metrics():
    report = render_report({}, {})
    assert report.startswith("# Avatar anonymization report\n")
    assert "Table" not in report


def test_write_report_matches_render(tmp_path):
    path = write_report(tmp_path / "out" / "report.md", metrics_dict(), FIGURES)
    assert path.read_text(encoding="utf-8") == render_report(metrics_dict(), FIGURES)


# Atomic writes.


def test_atomic_path_failure_keeps_target(tmp_path):
    target = tmp_path / "avatars.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("partial")
            raise RuntimeError("writer failed")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["avatars.csv"]


def test_atomic_path_success_replaces(tmp_path):
    target = tmp_path / "avatars.csv"
    target.write_text("old\n")
    with atomic_path(target) as temporary:
        assert temporary.parent == tmp_path
        assert temporary.suffix == ".csv"
        temporary.write_text("new\n")
    assert target.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["avatars.csv"]


def test_text_atomic_creates_parents(tmp_path):
    path = write_text_atomic(tmp_path / "a" / "b" / "note.txt", "x\r\ny")
    assert path.read_bytes() == b"x\r\ny"


def test_json_atomic_nan_and_numpy(tmp_path):
    obj = {"nan": float("nan"), "f32": np.float32(1.5), "i64": np.int64(3),
           "array": np.array([1.0, np.nan]), "path": Path("release/avatars.csv")}
    path = write_json_atomic(tmp_path / "metrics.json", obj)
    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == {"nan": None, "f32": 1.5, "i64": 3, "array": [1.0, None],
                                "path": "release/avatars.csv"}
    assert '\n  "nan": null' in text


def test_json_atomic_unencodable_keeps_target(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("{}\n")
    with pytest.raises(TypeError):
        write_json_atomic(target, {"bad": object()})
    assert target.read_text() == "{}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
