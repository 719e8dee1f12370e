"""The multi-block Hydra job: configs compose, a small SKAB slice runs end to end, releases carry no link."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from avatarjax.config import register_configs
from avatarjax.config_blocks import AnonymizeBlocksConfig, register_block_experiments, validate_blocks
from avatarjax.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
JOB = ROOT / "experiments" / "anonymize_blocks.py"
# 400 steps of 1 s: 35 windows of 60 s every 10 s, enough for k = 10.
SMALL_SLICE = ["experiment=skab_multisensor", "data.max_steps=400", "avatar.k=10", "logger=jsonl"]
BLOCKS = ["accelerometer1", "accelerometer2", "current", "pressure", "temperature", "thermocouple", "voltage",
          "volume_flow", "static"]


def compose_blocks(overrides=()):
    register_configs()
    register_block_experiments(CONF_DIR / "experiment_blocks")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="anonymize_blocks", overrides=list(overrides))


def test_skab_experiment_composes():
    config = validate_blocks(compose_blocks(["experiment=skab_multisensor"]))
    assert isinstance(config, AnonymizeBlocksConfig)
    assert [block.name for block in config.blocks] == BLOCKS[:-1]
    assert config.block_weighting == "inertia"
    temperature = config.blocks[4]
    assert (temperature.sampling_period, temperature.projection.method) == ("5s", "dct")


def test_every_block_experiment_validates():
    for path in sorted((CONF_DIR / "experiment_blocks").glob("*.yaml")):
        assert isinstance(validate_blocks(compose_blocks([f"experiment={path.stem}"])), AnonymizeBlocksConfig)


def test_no_experiment_rejected():
    with pytest.raises(ConfigError, match="blocks is empty"):
        validate_blocks(compose_blocks())


def _run_job(tmp_path: Path, overrides: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, str(JOB), *overrides, f"hydra.run.dir={tmp_path}"],
                          capture_output=True, text=True, timeout=timeout, cwd=tmp_path, env=env)


def test_config_error_exits_before_jax(tmp_path):
    code = (
        "import runpy, sys\n"
        f"sys.argv = [{str(JOB)!r}, 'experiment=skab_multisensor', 'block_weighting=equal', 'hydra.run.dir={tmp_path}']\n"
        "try:\n"
        f"    runpy.run_path({str(JOB)!r}, run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    print('jax imported:', 'jax' in sys.modules)\n"
        "    raise\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert completed.returncode == 2
    assert "block_weighting='equal' is invalid" in completed.stderr
    assert "jax imported: False" in completed.stdout


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """The SKAB job on the first 400 steps of the packaged file, run once in a subprocess."""
    run_dir = tmp_path_factory.mktemp("skab_small")
    completed = _run_job(run_dir, SMALL_SLICE)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return run_dir, completed


def test_small_run_writes_every_output(small_run):
    run_dir, completed = small_run
    for block in BLOCKS:
        assert (run_dir / "release" / f"{block}.csv").is_file()
        assert (run_dir / "release" / f"{block}.parquet").is_file()
        assert f"release/{block}.csv" in completed.stdout
    assert "privacy targets" in completed.stdout.splitlines()[-1]
    assert not (run_dir / "private").exists()

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["run"]["n_individuals"] == 35
    assert {"hidden_rate", "local_cloaking", "distance_to_closest", "closest_distance_ratio",
            "row_direct_match_protection/temperature"} <= set(metrics["privacy"])
    assert set(metrics["utility"]) == set(BLOCKS)

    report = (run_dir / "report" / "report.md").read_text()
    assert "## Utility per temporal block" in report
    assert "| temperature | temporal | 12 | 5 s |" in report

    events = [json.loads(line) for line in (run_dir / "tracking" / "events.jsonl").read_text().splitlines()]
    tables = {event["name"] for event in events if event["event"] == "table"}
    assert {"privacy", "utility/temperature", "utility/static"} <= tables


def test_small_run_static_privacy_reported(small_run):
    pytest.importorskip("avatarjax.metrics.static_privacy")
    run_dir, _ = small_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert "correlation_protection_rate" in metrics["privacy"]
    assert [row["variable"] for row in metrics["inference"]][:2] == ["phase", "mode"]
    assert "Inference attack" in (run_dir / "report" / "report.md").read_text()


def test_release_has_no_timestamps_or_original_ids(small_run):
    run_dir, _ = small_run
    tables = {block: pd.read_csv(run_dir / "release" / f"{block}.csv") for block in BLOCKS}
    for block, table in tables.items():
        assert table.columns[0] == "avatar_id"
        assert table["avatar_id"].tolist() == list(range(35))
        rest = list(table.columns[1:])
        if block == "static":
            assert rest == ["phase", "mode"]
        else:
            assert all(column.startswith(f"{block}_") for column in rest)
            assert all(pd.api.types.is_float_dtype(table[column]) for column in rest)
        for column in table.columns:
            assert not any(word in column.lower() for word in ("time", "date", "start", "original", "segment"))
    parquet = pd.read_parquet(run_dir / "release" / "temperature.parquet")
    pd.testing.assert_frame_equal(parquet, tables["temperature"], check_dtype=False)
    # Text cells could hide a timestamp; only the static attributes' levels are text.
    assert set(tables["static"]["phase"]) <= {"phase_1", "phase_2", "phase_3", "phase_4"}

