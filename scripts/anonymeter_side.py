"""Run anonymeter's linkability and inference evaluators on an exported split; print JSON.

Runs inside the separate virtual environment that scripts/anonymeter_crosscheck.py creates
(anonymeter 1.1.0 needs numpy < 1.27, while avatarjax needs numpy >= 2). Usage:
`.venv-anonymeter/bin/python scripts/anonymeter_side.py FOLDER N_ATTACKS SEED ...`, where FOLDER
has originals.csv, avatars.csv, control.csv and columns.json from the export. anonymeter draws its
attack samples from numpy's global generator, so each SEED seeds it and gives one evaluation.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from anonymeter.evaluators import InferenceEvaluator, LinkabilityEvaluator


def risk_entry(evaluator) -> dict:
    """anonymeter's risk with its interval, and the three success rates behind it."""
    risk = evaluator.risk(confidence_level=0.95)
    results = evaluator.results(confidence_level=0.95)
    return {
        "risk": risk.value, "risk_low": risk.ci[0], "risk_high": risk.ci[1],
        "attack_rate": results.attack_rate.value, "attack_error": results.attack_rate.error,
        "control_rate": results.control_rate.value, "control_error": results.control_rate.error,
        "baseline_rate": results.baseline_rate.value,
    }


def evaluate(originals, avatars, control, columns: dict, n_attacks: int, seed: int) -> dict:
    """Both evaluators with numpy's global generator seeded by `seed`."""
    np.random.seed(seed)
    linkability = LinkabilityEvaluator(ori=originals, syn=avatars, control=control, n_attacks=n_attacks,
                                       aux_cols=(columns["first"], columns["second"]), n_neighbors=1)
    linkability_entry = risk_entry(linkability.evaluate(n_jobs=1))
    inference = InferenceEvaluator(ori=originals, syn=avatars, control=control, n_attacks=n_attacks,
                                   aux_cols=columns["first"], secret=columns["secret"], regression=True)
    return {"linkability": linkability_entry, "inference": risk_entry(inference.evaluate(n_jobs=1))}


def main() -> None:
    folder, n_attacks, seeds = Path(sys.argv[1]), int(sys.argv[2]), [int(seed) for seed in sys.argv[3:]]
    columns = json.loads((folder / "columns.json").read_text())
    originals = pd.read_csv(folder / "originals.csv")
    avatars = pd.read_csv(folder / "avatars.csv")
    control = pd.read_csv(folder / "control.csv")
    print(json.dumps({seed: evaluate(originals, avatars, control, columns, n_attacks, seed) for seed in seeds}))


if __name__ == "__main__":
    main()
