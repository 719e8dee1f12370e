"""Anonymize a sensor series: `python experiments/anonymize.py [overrides]`.

Examples: `avatar.k=10`, `segmentation=fixed`, `projection.ncp=10`, `data=csv data.path=my.csv`.
Writes release/avatars.csv (and .parquet), metrics.json and report/report.md under the run's
output folder and prints their paths.
"""

from __future__ import annotations

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from avatarjax.config import register_configs, validate
from avatarjax.errors import ConfigError, InputDataError

logger = logging.getLogger("avatarjax.anonymize")

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="anonymize")
def main(cfg: DictConfig) -> None:
    from avatarjax.pipeline import anonymize
    from avatarjax.release import write_outputs

    try:
        config = validate(cfg)
        result = anonymize(config)
    except (ConfigError, InputDataError) as error:
        logger.error("%s", error)
        sys.exit(2)

    output_dir = HydraConfig.get().runtime.output_dir
    paths = write_outputs(result, config, output_dir)
    privacy = result.metrics["privacy"]
    logger.info("Hidden rate %.1f %%, local cloaking %.0f (targets > 90 %%, >= 5).",
                privacy["hidden_rate"]["value"], privacy["local_cloaking"]["value"])
    print(f"Wrote the outputs of {result.segments.n_segments} segments under {output_dir}:")
    for name, path in paths.items():
        print(f"  {name:16s} {path}")


if __name__ == "__main__":
    main()
