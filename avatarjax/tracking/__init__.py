"""Experiment trackers: W&B, a JSON-lines file, or none, picked by the `logger` config group."""

from __future__ import annotations

from pathlib import Path

from avatarjax.config import LoggerConfig
from avatarjax.tracking.base import NullTracker, Tracker
from avatarjax.tracking.jsonl import JsonlTracker

__all__ = ["Tracker", "NullTracker", "JsonlTracker", "open_tracker", "hydra_run_identity", "tracker_for_hydra_job"]


def open_tracker(cfg: LoggerConfig, run_dir: str | Path, name: str, group: str | None, config: dict,
                 environment: dict, log_originals: bool = False) -> Tracker:
    """Start the tracker that cfg.kind names, for the run whose outputs are in run_dir."""
    group = cfg.group or group
    if cfg.kind == "none":
        return NullTracker(log_originals)
    if cfg.kind == "jsonl":
        return JsonlTracker(run_dir, name, group, config, environment, log_originals)
    from avatarjax.tracking.wandb_run import WandbTracker

    return WandbTracker(run_dir, name, group, config, environment, project=cfg.project, entity=cfg.entity,
                        mode=cfg.mode, tags=cfg.tags, log_originals=log_originals)


def hydra_run_identity(job: str) -> tuple[str, str | None, list[str]]:
    """Return (run name, group, overrides) of the running Hydra job.

    In a multirun, every point of the sweep shares one group named after the sweep folder, and
    the run name adds the job number. A single run has no group.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    overrides = list(hydra_cfg.overrides.task)
    if hydra_cfg.mode == RunMode.MULTIRUN:
        group = f"{job}-{Path(hydra_cfg.sweep.dir).name}"
        return f"{group}-{hydra_cfg.job.num}", group, overrides
    return f"{job}-{Path(hydra_cfg.runtime.output_dir).name}", None, overrides


def _shareable_overrides(overrides: list[str]) -> list[str]:
    # A full data path may name a site or a customer; only its file name is recorded.
    recorded = []
    for override in overrides:
        key, _, value = override.partition("=")
        recorded.append(f"{key}={Path(value).name}" if key.lstrip("+~") == "data.path" and value else override)
    return recorded


def tracker_for_hydra_job(job: str, cfg) -> Tracker:
    """Open the configured tracker for the running Hydra job, with its config, overrides and environment."""
    from hydra.core.hydra_config import HydraConfig

    from avatarjax.provenance import environment
    from avatarjax.tracking.records import shareable_config

    name, group, overrides = hydra_run_identity(job)
    config = {**shareable_config(cfg), "overrides": _shareable_overrides(overrides)}
    return open_tracker(cfg.logger, HydraConfig.get().runtime.output_dir, name, group, config, environment(),
                        cfg.log_originals)
