"""Anonymize a sensor series: `python experiments/anonymize.py [overrides]`.

Examples: `avatar.k=10`, `segmentation=fixed`, `projection.ncp=10`, `data=csv data.path=my.csv`.
Writes release/avatars.csv (and .parquet), metrics.json and report/report.md under the run's
output folder, sends the metrics and the shareable figures to the `logger` tracker and prints
the paths.
"""

from __future__ import annotations

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from avatarjax.config import register_configs, validate
from avatarjax.errors import ConfigError, InputDataError
from avatarjax.report.privacy_levels import console_summary

logger = logging.getLogger("avatarjax.anonymize")
# JAX logs at INFO that it found no TPU on every CPU-only start; that line is noise here.
logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="anonymize")
def main(cfg: DictConfig) -> None:
    try:
        config = validate(cfg)
    except ConfigError as error:
        logger.error("%s", error)
        sys.exit(2)

    # JAX is imported only after the config is valid, so a typo fails in well under a second.
    from avatarjax.pipeline import anonymize
    from avatarjax.release import write_outputs
    from avatarjax.tracking import tracker_for_hydra_job
    from avatarjax.tracking.records import track_anonymization

    try:
        result = anonymize(config)
    except InputDataError as error:
        logger.error("%s", error)
        sys.exit(2)

    output_dir = HydraConfig.get().runtime.output_dir
    paths = write_outputs(result, config, output_dir)
    figures = {name.removeprefix("figures/"): path for name, path in paths.items() if name.startswith("figures/")}
    with tracker_for_hydra_job("anonymize", config) as tracker:
        track_anonymization(tracker, result.metrics, figures)
    print(f"Wrote the outputs of {result.segments.n_segments} segments under {output_dir}:")
    width = max(len(name) for name in paths)
    for name, path in paths.items():
        print(f"  {name:{width}s} {path}")
    for line in console_summary(result.metrics):
        print(line)


if __name__ == "__main__":
    main()
