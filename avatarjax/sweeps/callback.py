"""Hydra callback that writes the privacy-utility frontier when a multirun ends.

Enable it in a config with
    hydra:
      callbacks:
        frontier:
          _target_: avatarjax.sweeps.callback.FrontierCallback
The sweep folder is read from the config Hydra passes at the end of the multirun. A failure
to summarize is logged and does not fail the sweep, whose runs are already written.
"""

from __future__ import annotations

import logging

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

logger = logging.getLogger(__name__)


class FrontierCallback(Callback):
    """Summarize the sweep folder into <sweep>/frontier/ at the end of a multirun."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from avatarjax.sweeps.frontier import write_frontier

        sweep_dir = config.hydra.sweep.dir
        try:
            paths = write_frontier(sweep_dir)
        except (OSError, ValueError, KeyError) as error:
            logger.error("Could not summarize the sweep in %s: %s", sweep_dir, error)
            return
        print(f"Wrote the privacy-utility frontier of {sweep_dir}:")
        for name, path in paths.items():
            print(f"  {name:8s} {path}")
