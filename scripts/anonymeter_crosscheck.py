"""Compare avatarjax's linkability and inference risks with anonymeter's on the same exported split.

Usage: `.venv/bin/python scripts/anonymeter_crosscheck.py [--n-attacks 500] [--venv .venv-anonymeter]`.

1. avatarjax cuts the bundled NAB series into 6-hour windows every 6 steps, holds out whole
   days as controls (avatarjax.attack_evaluation.holdout_split), anonymizes the targets
   (FPCA, 10 components, k = 10) and flattens every window to 12 columns, each the mean of 6
   steps. The second-half mean is the inference secret.
2. It writes originals.csv (targets), avatars.csv (shuffled) and control.csv to a temporary
   folder. No row carries an id, so nothing links the avatars to the originals.
3. anonymeter 1.1.0 needs numpy < 1.27 and avatarjax needs numpy >= 2, so anonymeter runs in
   its own virtual environment, created at the first run with `pip install anonymeter==1.1.0`,
   through scripts/anonymeter_side.py.
4. avatarjax runs its own attacks on the same tables, with anonymeter's choices where its
   attacks allow them: columns scaled by their range over the three tables, one neighbour for
   linkability, and the relative 5 % tolerance of anonymeter's numeric inference. Both tools
   draw their own attack samples, once per seed (`--seeds`, five by default), because one
   evaluation of 500 attacks varies from seed to seed by about as much as its interval is wide.

The figures need not agree exactly, for two known reasons. anonymeter measures L1 (Gower)
distances, avatarjax Euclidean ones. And anonymeter reports the Wilson centre as the rate and
propagates a symmetric error to the risk, clipped to [0, 1]; avatarjax reports the plain rate
and combines the two Wilson intervals at their extremes (avatarjax.metrics.attacks).

The random-guess column differs for inference for a third reason. anonymeter 1.1.0 aligns its
random guesses with the attacked rows by row label (`reindex_like`). A guess whose avatar row
label is not among the attacked rows' labels becomes NaN and fails. Its random-guess rate is
therefore lower than the rate of guessing a random avatar's secret, which avatarjax reports.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger("avatarjax.anonymeter_crosscheck")

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
WINDOW, STRIDE, COLUMNS = 72, 6, 12
NCP, K, SEED = 10, 10, 0
CONTROL_SHARE, CONTROL_RUN = 0.2, 3
ANONYMETER = "anonymeter==1.1.0"


def export_split(folder: Path) -> dict:
    """Anonymize the targets with avatarjax and write the three flattened tables; return the sizes."""
    import jax

    from avatarjax.attack_evaluation import holdout_split
    from avatarjax.avatar import generate_avatars
    from avatarjax.data.loading import bundled_dataset_path, load_series
    from avatarjax.metrics.entity_privacy import entity_of_segments
    from avatarjax.projection.fpca import fit_fpca, inverse_transform, transform
    from avatarjax.segmentation import sliding_windows

    series = load_series(bundled_dataset_path("machine_temperature_system_failure"))
    segments = sliding_windows(series, window=WINDOW, stride=STRIDE)
    curves = segments.values[:, :, 0]
    entities = entity_of_segments(segments.start_index, WINDOW, series.timestamps, "1D")
    split = holdout_split(entities, segments.start_index, WINDOW, CONTROL_SHARE, CONTROL_RUN, SEED)

    fpca = fit_fpca(curves[split.target], ncp=NCP)
    avatars = generate_avatars(jax.random.key(SEED), transform(fpca, curves[split.target]), K, progress=False)
    avatar_curves = np.asarray(inverse_transform(fpca, avatars.coordinates), dtype=np.float64)
    avatar_curves = avatar_curves[np.random.default_rng(SEED).permutation(avatar_curves.shape[0])]

    names = [f"c{i:02d}" for i in range(COLUMNS)]
    columns = {"first": names[:COLUMNS // 2], "second": names[COLUMNS // 2:], "secret": "second_half_mean"}
    for name, rows in (("originals", curves[split.target]), ("avatars", avatar_curves),
                       ("control", curves[split.control])):
        flat = rows.reshape(rows.shape[0], COLUMNS, -1).mean(axis=2)
        table = pd.DataFrame(flat, columns=names)
        table[columns["secret"]] = flat[:, COLUMNS // 2:].mean(axis=1)
        table.to_csv(folder / f"{name}.csv", index=False)
    (folder / "columns.json").write_text(json.dumps(columns))
    return {"targets": int(split.target.size), "controls": int(split.control.size), "avatars": int(avatar_curves.shape[0]),
            "buffer": split.buffer_segments, "control_days": split.control_entities, "days": split.entities}


def ensure_anonymeter(venv: Path) -> Path:
    """Return the Python of a virtual environment with anonymeter, creating it when missing."""
    python = venv / "bin" / "python"
    if not python.exists():
        logger.info("creating %s with %s (a few minutes, once)", venv, ANONYMETER)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", ANONYMETER], check=True)
    return python


def avatarjax_risks(folder: Path, n_attacks: int, seed: int) -> dict:
    """avatarjax's linkability and inference risks on the exported tables, anonymeter's settings where possible."""
    from avatarjax.metrics.attacks import SuccessRate, attack_risk, inference, linkability, random_baseline

    columns = json.loads((folder / "columns.json").read_text())
    tables = {name: pd.read_csv(folder / f"{name}.csv") for name in ("originals", "avatars", "control")}
    features = columns["first"] + columns["second"]
    together = pd.concat([table[features] for table in tables.values()])
    span = (together.max() - together.min()).replace(0.0, 1.0)
    scaled = {name: (table[features] - together.min()) / span for name, table in tables.items()}
    rng = np.random.default_rng(seed)
    picks = {name: rng.choice(len(tables[name]), min(n_attacks, len(tables[name])), replace=False)
             for name in ("originals", "control")}
    avatars = scaled["avatars"]

    linked = [linkability(scaled[name].iloc[rows][columns["first"]], scaled[name].iloc[rows][columns["second"]],
                          avatars[columns["first"]], avatars[columns["second"]], k=1, progress=False)
              for name, rows in picks.items()]
    secret_avatars = tables["avatars"][columns["secret"]].to_numpy()
    inferred = [inference(scaled[name].iloc[rows][columns["first"]], tables[name][columns["secret"]].to_numpy()[rows],
                          avatars[columns["first"]], secret_avatars, tolerance=0.05, progress=False, relative=True)
                for name, rows in picks.items()]
    # Random guessing with anonymeter's relative rule: the guess is a random avatar's secret.
    guesses = secret_avatars[rng.integers(0, len(secret_avatars), len(picks["originals"]))]
    truths = tables["originals"][columns["secret"]].to_numpy()[picks["originals"]]
    guessed = np.abs(guesses - truths) <= 0.05 * np.abs(guesses)
    baseline = SuccessRate.from_counts(int(guessed.sum()), guessed.size)
    return {
        "linkability": {**attack_risk(*linked), "baseline_rate": random_baseline(len(avatars), 1)},
        "inference": {**attack_risk(*inferred), "baseline_rate": baseline.rate},
    }


def _inside(value: float, low: float, high: float) -> bool:
    return low <= value <= high


def comparison_lines(sizes: dict, ours: dict, theirs: dict, n_attacks: int) -> list[str]:
    """Format one row per seed and attack, then how often each tool's risk lies in the other's interval."""
    seeds = list(ours)
    lines = [
        f"Split: {sizes['targets']} target windows anonymized into {sizes['avatars']} avatars, {sizes['controls']} "
        f"control windows ({sizes['control_days']} of {sizes['days']} days), {sizes['buffer']} overlapping windows "
        f"left out; {n_attacks} attacks per set at most; seeds {', '.join(map(str, seeds))} (each tool draws its "
        "own samples with the seed).",
        "",
        "| attack | seed | anonymeter risk [95 % interval] | avatarjax risk [95 % interval] | anonymeter success "
        "targets / controls / random | avatarjax success targets / controls / random |",
        "| --- | ---: | --- | --- | --- | --- |",
    ]
    summary = []
    for attack in ("linkability", "inference"):
        inside = 0
        for seed in seeds:
            a, b = theirs[str(seed)][attack], ours[seed][attack]
            inside += _inside(a["risk"], b["low"], b["high"]) and _inside(b["value"], a["risk_low"], a["risk_high"])
            lines.append(f"| {attack} | {seed} | {a['risk']:.3f} [{a['risk_low']:.3f}, {a['risk_high']:.3f}] | "
                         f"{b['value']:.3f} [{b['low']:.3f}, {b['high']:.3f}] | {a['attack_rate']:.3f} / "
                         f"{a['control_rate']:.3f} / {a['baseline_rate']:.3f} | {b['attack_rate']:.3f} / "
                         f"{b['control_rate']:.3f} / {b['baseline_rate']:.3f} |")
        mean_theirs = np.mean([theirs[str(seed)][attack]["risk"] for seed in seeds])
        mean_ours = np.mean([ours[seed][attack]["value"] for seed in seeds])
        summary.append(f"{attack}: mean risk anonymeter {mean_theirs:.3f}, avatarjax {mean_ours:.3f}; each risk "
                       f"inside the other tool's interval for {inside} of {len(seeds)} seeds.")
    return lines + [""] + summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-attacks", type=int, default=500, help="attacks per set (default: 500)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                        help="one evaluation per seed with each tool (default: 0 1 2 3 4)")
    parser.add_argument("--venv", type=Path, default=REPOSITORY_ROOT / ".venv-anonymeter",
                        help="virtual environment for anonymeter (default: .venv-anonymeter, created when missing)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("jax").setLevel(logging.WARNING)

    python = ensure_anonymeter(args.venv)
    with tempfile.TemporaryDirectory(prefix="anonymeter_crosscheck_") as folder:
        folder = Path(folder)
        sizes = export_split(folder)
        logger.info("exported the split to %s; running anonymeter", folder)
        completed = subprocess.run([str(python), str(Path(__file__).with_name("anonymeter_side.py")), str(folder),
                                    str(args.n_attacks), *map(str, args.seeds)], capture_output=True, text=True)
        if completed.returncode != 0:
            logger.error("anonymeter failed with exit status %d:\n%s", completed.returncode, completed.stderr[-3000:])
            return 1
        theirs = json.loads(completed.stdout.strip().splitlines()[-1])
        ours = {seed: avatarjax_risks(folder, args.n_attacks, seed) for seed in args.seeds}
    print("\n".join(comparison_lines(sizes, ours, theirs, args.n_attacks)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
