"""Validate avatar utility downstream: `python experiments/validate.py experiment=white_paper`.

Trains 1D-CNN autoencoder ensembles on original and on avatar windows of each configured
training stretch, scores the real series with both and writes metrics.json, per-step score
files and report/report.md under the run's output folder. `experiment=smoke` runs a tiny
version in under a minute, as a plumbing check whose figures mean nothing (2 epochs).
"""

from __future__ import annotations

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from avatarjax.config import register_configs, validate_detector_config
from avatarjax.errors import ConfigError, InputDataError

logger = logging.getLogger("avatarjax.validate")
# JAX logs at INFO that it found no TPU on every CPU-only start; that line is noise here.
logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="validate")
def main(cfg: DictConfig) -> float:
    try:
        config = validate_detector_config(cfg)
    except ConfigError as error:
        logger.error("%s", error)
        sys.exit(2)

    # JAX and flax are imported only after the config is valid, so a typo fails fast.
    from avatarjax.detection.training import TrainingError
    from avatarjax.metrics.targets import privacy_summary
    from avatarjax.sweeps.objective import constrained_objective
    from avatarjax.tracking import tracker_for_hydra_job
    from avatarjax.tracking.records import track_validation
    from avatarjax.validation import agreement, validate
    from avatarjax.validation_outputs import analysis_metrics, write_validation_outputs

    try:
        results = validate(config)
    except (InputDataError, TrainingError) as error:
        logger.error("%s", error)
        sys.exit(2)

    output_dir = HydraConfig.get().runtime.output_dir
    agreed = agreement(results)
    paths = write_validation_outputs(results, agreed, config, output_dir)
    objective = constrained_objective(results[0].metrics, config.objective)
    with tracker_for_hydra_job("validate", config) as tracker:
        figures = {result.name: {key.split("/", 2)[2]: path for key, path in paths.items()
                                 if key.startswith(f"figures/{result.name}/")} for result in results}
        analyses = [(result.name, analysis_metrics(result),
                     {name: ensemble.epoch_loss.tolist() for name, ensemble in result.ensembles.items()})
                    for result in results]
        track_validation(tracker, analyses, figures, agreed, objective)
    for result in results:
        metrics = result.metrics
        alerts = {name: sum(row[name]["alerts"] for row in metrics["alerts_per_month"].values())
                  for name in ("original", "avatar")}
        print(f"{result.name}: score correlation {metrics['correlation']['overall']:.3f}, "
              f"alerts original {alerts['original']} / avatar {alerts['avatar']}, "
              f"false-negative risk steps {metrics['outside_interval']['classes']['false_negative_risk']}")
        # A missed target warns against releasing avatars made with these avatar and projection settings.
        print(f"{result.name}: training anonymization: {privacy_summary(metrics['privacy'])}")
    if agreed:
        print("analyses agree on every conclusion" if all(agreed.values())
              else f"analyses disagree on: {', '.join(key for key, same in agreed.items() if not same)}")
    print(f"Wrote the validation outputs under {output_dir}:")
    listed = ["metrics", "report", *(f"scores/{result.name}" for result in results)]
    width = max(len(name) for name in listed)
    for name in listed:
        if name in paths:
            print(f"  {name:{width}s} {paths[name]}")
    print(f"objective ({config.objective}, lower is better): {objective:.4g}")
    # Hydra sweepers such as Optuna minimize this value.
    return objective


if __name__ == "__main__":
    main()
