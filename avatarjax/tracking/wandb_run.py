"""A tracker that logs to Weights & Biases, offline unless the user asks for online.

Every folder W&B writes to is placed inside the run's output folder, because wandb otherwise
writes its cache, artifact staging and settings into the home folder:
- `<run>/wandb/offline-run-<time>-<id>/`: the run itself (`wandb sync` uploads it later);
- `<run>/wandb/cache`, `<run>/wandb/data`, `<run>/wandb/config`, `<run>/wandb/artifacts`.
The environment variables that move them are set for the run and restored at finish.

Privacy: console capture, code saving and wandb's metadata (command line) are off, the host
name is replaced by "hidden", and folders below the working folder are given to wandb as
relative paths. So W&B receives only what the run logs through this class (see
avatarjax/tracking/base.py for the rule on original series).
NOTE: wandb still records the absolute path of its staging folder for each logged table
(<run>/wandb/data/artifacts/staging), so a synced run shows where the run folder was.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from avatarjax.tracking.base import Tracker

logger = logging.getLogger(__name__)

# W&B environment variable -> folder under the run's output folder ("" is the folder itself,
# under which wandb creates its own "wandb" folder).
_FOLDERS = {
    "WANDB_DIR": "",
    "WANDB_CACHE_DIR": "wandb/cache",
    "WANDB_DATA_DIR": "wandb/data",
    "WANDB_CONFIG_DIR": "wandb/config",
    "WANDB_ARTIFACT_DIR": "wandb/artifacts",
}


def _import_wandb():
    try:
        import wandb
    except ImportError as error:
        raise ImportError(
            "logger=wandb needs the wandb package; install it with `pip install -e \".[sweep]\"` "
            "or choose logger=jsonl."
        ) from error
    return wandb


def _shown_path(path: Path) -> str:
    """Return path relative to the working folder when it lies below it, else absolute.

    wandb copies these paths into its run files (for example the staging path of each
    logged table), and an absolute path can name the user or the site.
    """
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


class WandbTracker(Tracker):
    """One W&B run whose files live under `<run_dir>/wandb/`."""

    def __init__(self, run_dir: str | Path, name: str, group: str | None, config: dict, environment: dict,
                 project: str = "avatarjax", entity: str | None = None, mode: str = "offline",
                 tags: list[str] | None = None, log_originals: bool = False) -> None:
        super().__init__(log_originals)
        wandb = _import_wandb()
        self._wandb = wandb
        self.run_dir = Path(run_dir).resolve()
        self._saved_environment = {variable: os.environ.get(variable) for variable in _FOLDERS}
        for variable, folder in _FOLDERS.items():
            path = self.run_dir / folder
            path.mkdir(parents=True, exist_ok=True)
            os.environ[variable] = _shown_path(path)
        # The host name is replaced, because wandb records it in every run file.
        options = {"console": "off", "save_code": False, "disable_code": True, "silent": True, "host": "hidden"}
        # wandb's metadata contains the command line, whose data.path may name a site. The
        # config's "environment" entry records the versions, backend and git revision instead.
        if "x_disable_meta" in getattr(wandb.Settings, "model_fields", {}):
            options["x_disable_meta"] = True
        settings = wandb.Settings(**options)
        self.run = wandb.init(
            project=project, entity=entity, mode=mode, dir=_shown_path(self.run_dir), name=name, group=group,
            tags=list(tags or []), config={**config, "environment": environment}, settings=settings,
            reinit="create_new",
        )
        self.offline_folder = Path(self.run.dir).parent if mode == "offline" else None

    def _write_metrics(self, values, step) -> None:
        # W&B's own step must only grow, but a run logs several series with their own epochs.
        # So the step is logged as a value, which the UI can use as the x axis.
        self.run.log(values if step is None else {**values, "step": step})

    def _write_table(self, name, columns, rows) -> None:
        self.run.log({name: self._wandb.Table(columns=columns, data=rows)})

    def _write_figure(self, name, path) -> None:
        self.run.log({name: self._wandb.Image(str(path))})

    def _write_summary(self, values) -> None:
        self.run.summary.update(values)

    def _close(self) -> None:
        try:
            self.run.finish()
        finally:
            for variable, value in self._saved_environment.items():
                if value is None:
                    os.environ.pop(variable, None)
                else:
                    os.environ[variable] = value
        if self.offline_folder is not None:
            logger.info("W&B run stored offline in %s; upload it with `wandb sync %s`.",
                        self.offline_folder, self.offline_folder)
