"""Collect the runs of a sweep into a privacy-utility frontier: a table and a plot.

Input: a sweep folder whose runs each wrote metrics.json (experiments/anonymize.py or
experiments/validate.py under Hydra's multirun, any sweeper or launcher). Output, in
`<sweep>/frontier/`:
- runs.csv: one row per run with its setting, privacy and utility metrics;
- frontier.csv and frontier.md: one row per setting (every sweep key except the seed), with
  the mean and standard deviation over seeds, whether every seed met every privacy target,
  whether the setting is on the frontier, and the best setting;
- frontier.png: hidden rate and local cloaking against the Hellinger distance and, for
  validation runs, against the anomaly-score correlation.

Definitions. A setting "meets privacy" when every run of it meets every privacy target. A
setting is on the frontier when no other setting dominates it on the two axes of the
trade-off. The first axis is the mean hidden rate (higher is better). The second is the mean
utility: the score correlation where measured (higher is better), otherwise the Hellinger
distance (lower is better). Setting B dominates A when B is at least as good on both and strictly better on one.
The best setting is the one that meets privacy with the smallest mean objective
(avatarjax/sweeps/objective.py).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from avatarjax.io import atomic_path, write_text_atomic
from avatarjax.metrics.targets import PRIVACY_TARGETS
from avatarjax.sweeps.objective import constrained_objective

logger = logging.getLogger(__name__)

FRONTIER_DIR = "frontier"
SETTING_KEYS = ("projection", "k", "ncp", "weights", "window", "stride")
PRIVACY_KEYS = tuple(PRIVACY_TARGETS)
UTILITY_KEYS = ("hellinger", "autocorrelation_lag10")
# Entity-level metrics and attack risks, read when the runs measured them (privacy.entity,
# privacy.attacks); they are shown beside the segment-level figures but do not enter privacy_met.
ENTITY_KEYS = ("entity_hidden_rate", "entity_local_cloaking")
ATTACK_KEYS = ("linkability", "inference", "membership", "singling_out")
LEVEL_KEYS = ENTITY_KEYS + tuple(f"{name}_risk" for name in ATTACK_KEYS)


def _run_row(path: Path, sweep_dir: Path) -> dict | None:
    """Return one run's row, or None (with a warning) for a metrics file of another kind."""
    metrics = json.loads(path.read_text())
    row = {"run": path.parent.relative_to(sweep_dir).as_posix()}
    if "analyses" in metrics:  # a validation run: the first analysis is the main one
        analysis = metrics["analyses"][0]
        anonymization = analysis.get("anonymization", {})
        run = metrics["run"]
        row.update(job="validate", projection=run.get("projection", "fpca"), k=run["k"],
                   ncp=anonymization.get("ncp", run.get("ncp")), seed=run["seed"],
                   explained_variance_share=anonymization.get("explained_variance_share", math.nan),
                   weights=run["weights"], window=str(run["detector_window"]), stride=run["train_stride"],
                   score_correlation=analysis["correlation"]["overall"],
                   objective=constrained_objective(analysis, metrics.get("config", {}).get("objective",
                                                                                         "score_correlation")))
        privacy, utility = analysis["privacy"], analysis["utility"]
    elif "privacy" in metrics:
        run = metrics["run"]
        row.update(job="anonymize", projection=run.get("projection", "fpca"), k=run["k"], ncp=run["ncp"],
                   seed=run["seed"], explained_variance_share=run.get("explained_variance_share", math.nan),
                   weights=run["weights"],
                   window=str(run["window"]), stride=run["stride"], score_correlation=math.nan)
        privacy, utility = metrics["privacy"], metrics["utility"]
        row["objective"] = constrained_objective({"privacy": privacy, "utility": utility}, "hellinger")
    else:
        logger.warning("Skipping %s: it is neither an anonymization nor a validation metrics file.", path)
        return None
    for key in PRIVACY_KEYS:
        entry = privacy.get(key, {})
        row[key] = math.nan if entry.get("value") is None else entry["value"]
        row[f"{key}_meets"] = entry.get("meets")
    row["privacy_met"] = all(row[f"{key}_meets"] is True for key in PRIVACY_KEYS if key in privacy)
    for key in UTILITY_KEYS:
        value = utility.get(key, {}).get("value")
        row[key] = math.nan if value is None else value
    entity, attacks = metrics.get("entity_privacy") or {}, metrics.get("attacks") or {}
    for key in ENTITY_KEYS:
        value = entity.get(key, {}).get("value")
        row[key] = math.nan if value is None else value
    for name in ATTACK_KEYS:
        value = attacks.get(name, {}).get("value")
        row[f"{name}_risk"] = math.nan if value is None else value
    return row


def collect_runs(sweep_dir: str | Path) -> pd.DataFrame:
    """Read every run's metrics.json under sweep_dir (not the frontier folder) into one table."""
    sweep_dir = Path(sweep_dir)
    if sweep_dir.is_file():
        raise NotADirectoryError(f"{sweep_dir} is a file; give the sweep folder a multirun wrote.")
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep folder {sweep_dir} does not exist; give the folder a multirun wrote.")
    if (sweep_dir / "metrics.json").exists():
        raise ValueError(f"{sweep_dir} is the folder of one run; give its sweep folder, {sweep_dir.parent}.")
    # Runs sit one level down (Hydra's sweep subdir is the job number). Deeper metrics files
    # belong to other sweeps nested below, which must not be mixed in.
    paths = sorted(sweep_dir.glob("*/metrics.json"))
    rows = [row for row in (_run_row(path, sweep_dir) for path in paths) if row is not None]
    if not rows:
        raise FileNotFoundError(
            f"no run metrics under {sweep_dir}; it should hold one folder per run with a metrics.json. "
            "Did the sweep finish?"
        )
    frame = pd.DataFrame(rows)
    if frame["job"].nunique() > 1:
        raise ValueError(f"{sweep_dir} mixes anonymization and validation runs; summarize each sweep on its own.")
    return frame.sort_values(["projection", "k", "ncp", "seed", "run"], kind="stable").reset_index(drop=True)


def summarize_settings(runs: pd.DataFrame) -> pd.DataFrame:
    """Group runs by setting (all sweep keys but the seed): mean and std over seeds, flags."""
    measured = ["explained_variance_share", *PRIVACY_KEYS, *LEVEL_KEYS, *UTILITY_KEYS, "score_correlation",
                "objective"]
    grouped = runs.groupby(list(SETTING_KEYS), sort=True, dropna=False)
    table = grouped[measured].mean()
    spread = grouped[measured].std(ddof=1).add_suffix("_std")
    table = table.join(spread)
    table["seeds"] = grouped.size()
    table["privacy_met"] = grouped["privacy_met"].all()
    table = table.reset_index()
    table["frontier"] = frontier_mask(table)
    table["best"] = False
    feasible = table[table["privacy_met"]]
    if not feasible.empty:
        table.loc[feasible["objective"].idxmin(), "best"] = True
    return table


def frontier_mask(table: pd.DataFrame) -> np.ndarray:
    """True for settings that no other setting dominates (see the module docstring)."""
    # Oriented so that larger is better in both columns.
    utility = (table["score_correlation"].to_numpy(float) if table["score_correlation"].notna().all()
               else -table["hellinger"].to_numpy(float))
    values = np.column_stack([table["hidden_rate"].to_numpy(float), utility])
    mask = np.ones(len(table), dtype=bool)
    for i in range(len(table)):
        others = np.delete(values, i, axis=0)
        dominated = np.all(others >= values[i], axis=1) & np.any(others > values[i], axis=1)
        mask[i] = not dominated.any()
    return mask


# Columns shown with one decimal (percentages and medians of counts); others get 3 significant digits.
_ONE_DECIMAL = {"hidden_rate", "local_cloaking", "row_direct_match_protection", "entity_hidden_rate",
                "entity_local_cloaking"}


def _format(value, column: str = "") -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "n/a"
        if column == "explained_variance_share":
            return f"{value:.4f}"
        return f"{value:.1f}" if column in _ONE_DECIMAL else f"{value:.3g}"
    return str(value)


def render_markdown(table: pd.DataFrame, runs: pd.DataFrame, sweep_dir: Path) -> str:
    """Return the frontier as a Markdown page."""
    has_correlation = table["score_correlation"].notna().all()
    targets = ", ".join(f"{PRIVACY_TARGETS[key].label.lower()} {PRIVACY_TARGETS[key].text()}" for key in PRIVACY_KEYS)
    lines = [
        f"# Privacy-utility frontier of {sweep_dir.name}",
        "",
        f"{len(runs)} runs ({runs['job'].iloc[0]} job), {len(table)} settings, "
        f"{int(table['seeds'].max())} seed(s) per setting at most. Values are means over seeds "
        "(± standard deviation where there are two seeds or more).",
        f"A setting meets privacy when every one of its runs meets every privacy target ({targets}).",
        "objective: utility loss (1 - score correlation, or the Hellinger distance without a detector) "
        "plus 2 and the relative shortfall for each missed privacy target; smaller is better.",
        "",
    ]
    levels = [key for key in LEVEL_KEYS if table[key].notna().any()]
    columns = ["projection", "k", "ncp", "window", "stride", "seeds", "explained_variance_share", "hidden_rate",
               "local_cloaking", "distance_to_closest", *levels, "hellinger"] + \
              (["score_correlation"] if has_correlation else []) + ["objective", "privacy_met", "frontier", "best"]
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "---|" * len(columns))
    for _, row in table.iterrows():
        cells = []
        for name in columns:
            cell = _format(row[name], name)
            spread = row.get(f"{name}_std")
            if spread is not None and isinstance(spread, float) and not math.isnan(spread) and row["seeds"] > 1:
                cell += f" ± {spread:.1f}" if name in _ONE_DECIMAL else f" ± {spread:.2g}"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    best = table[table["best"]]
    lines.append("")
    if best.empty:
        lines.append("No setting meets every privacy target; raise k (or use a larger stride) and sweep again.")
    else:
        row = best.iloc[0]
        lines.append(f"Best setting that meets every privacy target: k = {row['k']}, ncp = {row['ncp']} "
                     f"(objective {row['objective']:.4g}, hidden rate {row['hidden_rate']:.1f} %, "
                     f"Hellinger {row['hellinger']:.3g}"
                     + (f", score correlation {row['score_correlation']:.3f}" if has_correlation else "") + ").")
    lines += ["", "![frontier](frontier.png)", "", "Runs: runs.csv (one row per run).", ""]
    return "\n".join(lines)


def write_frontier(sweep_dir: str | Path) -> dict[str, Path]:
    """Collect the sweep's runs and write runs.csv, frontier.csv, frontier.md and frontier.png."""
    from avatarjax.report.frontier_figure import plot_frontier

    sweep_dir = Path(sweep_dir)
    runs = collect_runs(sweep_dir)
    table = summarize_settings(runs)
    folder = sweep_dir / FRONTIER_DIR
    paths = {"runs": folder / "runs.csv", "table": folder / "frontier.csv", "markdown": folder / "frontier.md"}
    for key, frame in (("runs", runs), ("table", table)):
        with atomic_path(paths[key]) as temporary:
            frame.to_csv(temporary, index=False)
    paths["figure"] = plot_frontier(table, folder / "frontier.png")
    write_text_atomic(paths["markdown"], render_markdown(table, runs, sweep_dir))
    logger.info("Wrote the frontier of %d runs (%d settings) to %s.", len(runs), len(table), folder)
    return paths
