"""Anonymize several sensors and static attributes jointly: `python experiments/anonymize_blocks.py experiment=skab_multisensor`.

Experiments are the files of conf/experiment_blocks/ (this job's `experiment` group). Overrides
such as `avatar.k=30`, `block_weighting=mfa` or `data.max_steps=600` apply on top. Writes
release/<block>.csv (and .parquet) per block, metrics.json and report/report.md under the run's
output folder, sends the metrics to the `logger` tracker and prints the paths and a privacy
summary line.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from avatarjax.config import register_configs
from avatarjax.config_blocks import register_block_experiments, validate_blocks
from avatarjax.errors import ConfigError, InputDataError

logger = logging.getLogger("avatarjax.anonymize_blocks")
# JAX logs at INFO that it found no TPU on every CPU-only start; that line is noise here.
logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)

register_configs()
register_block_experiments(Path(__file__).resolve().parents[1] / "conf" / "experiment_blocks")


@hydra.main(version_base="1.3", config_path="../conf", config_name="anonymize_blocks")
def main(cfg: DictConfig) -> None:
    try:
        config = validate_blocks(cfg)
    except ConfigError as error:
        logger.error("%s", error)
        sys.exit(2)

    # JAX is imported only after the config is valid, so a typo fails in well under a second.
    from avatarjax.blocks_release import track_block_anonymization, write_block_outputs
    from avatarjax.metrics.targets import privacy_summary
    from avatarjax.multiblock_pipeline import anonymize_configured_blocks
    from avatarjax.tracking import tracker_for_hydra_job

    try:
        result = anonymize_configured_blocks(config)
    except InputDataError as error:
        logger.error("%s", error)
        sys.exit(2)

    output_dir = HydraConfig.get().runtime.output_dir
    paths = write_block_outputs(result, config, output_dir)
    with tracker_for_hydra_job("anonymize_blocks", config) as tracker:
        track_block_anonymization(tracker, result.metrics)
    print(f"Wrote the outputs of {len(result.ids)} individuals in {len(result.layout.names)} blocks under {output_dir}:")
    width = max(len(name) for name in paths)
    for name, path in paths.items():
        print(f"  {name:{width}s} {path}")
    print(privacy_summary(result.metrics["privacy"]))


if __name__ == "__main__":
    main()
