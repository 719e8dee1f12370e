"""Summarize a finished sweep into a privacy-utility frontier: `python experiments/frontier.py SWEEP_FOLDER`.

SWEEP_FOLDER is the folder a multirun wrote (for example multirun/k_sweep/<date>_<time>),
holding one folder per run with its metrics.json. Writes runs.csv, frontier.csv,
frontier.md and frontier.png to SWEEP_FOLDER/frontier/ and prints their paths.
`experiment=k_sweep` runs this by itself at the end of the sweep.
"""

from __future__ import annotations

import argparse
import logging
import sys

from avatarjax.sweeps.frontier import write_frontier


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_folder", help="folder written by a Hydra multirun of anonymize.py or validate.py")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        paths = write_frontier(args.sweep_folder)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote the privacy-utility frontier of {args.sweep_folder}:")
    for name, path in paths.items():
        print(f"  {name:8s} {path}")
    for line in paths["markdown"].read_text().splitlines():
        if line.startswith(("Best setting", "No setting")):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
